#!/usr/bin/env python3
"""Summarise one guest run: the (K)TAP the tests printed, KUnit's KTAP on
the kernel console, and any kernel splat.

  tap.py NAME TAPLOG CONSOLELOG RESULTS [--config FILE] [--tree DIR]
         [--skips FILE]

Appends one line per test case to RESULTS ("PASS|FAIL|SKIP NAME:PROGRAM:
case") and prints the failures.  Each command the guest ran (# HARNESS-RUN)
is named after its program, leading VAR=value words skipped; a program run
more than once also gets its arguments ($VARIABLES left out), then "#n".

Failures: a missing or empty log, a splat, a crashed program (exit code
without a TAP verdict), fewer or more results than planned, a group of
subtests (a KUnit suite) closed by "not ok", a timeout, a kmemleak that
could not scan or was not reported although the kernel --config has it,
and when the --config builds the KUnit test: a suite iommufd-noiommu that
is missing, whose plan is not the number of KUNIT_CASEs of its source in
the --tree, or that does not report every case.  A plan 1..0 is a SKIP
"PROGRAM: no tests ran".  A SKIP whose name (after "NAME:") matches no glob
of the --skips file (one a line; no such file: guest/skips-all.txt) is a
FAIL.
Exit code 0: all passed, 1: failures, anything else: tap.py itself failed.
"""
import argparse
import fnmatch
import os
import re
import sys
import traceback

RESULT = re.compile(r'^(\s*)(not ok|ok) (\d+)\s*(?:- )?([^#]*?)\s*(?:#\s*(.*))?$')
TIMESTAMP = re.compile(r'^\[\s*\d+\.\d+\]\s?')
SPLATS = [
    r'WARNING: ', r'BUG: ', r'KASAN', r'UBSAN', r'Oops', r'Kernel panic',
    r'general protection fault', r'possible circular locking',
    r'possible recursive locking', r'inconsistent lock state',
    r'suspicious RCU usage', r'DEBUG_LOCKS_WARN_ON', r'INFO: task .* blocked',
    r'kmemleak: \d+ new suspected', r'unreferenced object',
    r'sleeping function called from invalid context', r'list_add corruption',
    r'list_del corruption', r'refcount_t: ', r'Call Trace:', r'soft lockup',
    r'INFO: \S+ (self-)?detected stall',        # RCU and RCU-tasks stalls
    # kmemleak switched itself off: every later scan would find nothing
    r'kmemleak: (Kernel memory leak detector disabled|Cannot allocate a kmemleak_object'
    r'|Cannot insert|Memory pool empty|Automatic memory scanning thread ended)',
]
SPLAT = re.compile('|'.join(SPLATS))
KUNIT_SUITE = 'iommufd-noiommu'
KUNIT_OPTION = 'CONFIG_IOMMUFD_NOIOMMU_KUNIT_TEST'
KUNIT_SOURCE = 'drivers/iommu/iommufd/noiommu_kunit.c'


def run_names(lines):
    """The name of each HARNESS-RUN of LINES, in order (see above)."""
    runs = []                   # (program, program and arguments)
    for line in lines:
        if line.startswith('# HARNESS-RUN '):
            words = line.split()[2:]
            while words and re.match(r'\w+=', words[0]):      # VAR=value
                words.pop(0)
            prog = words[0].removeprefix('./') if words else '?'
            runs.append((prog, ' '.join([prog] + [w for w in words[1:] if w[0] != '$'])))
    progs = [prog for prog, _ in runs]
    names = [full if progs.count(prog) > 1 else prog for prog, full in runs]
    return [f'{n}#{names[:i + 1].count(n)}' if names.count(n) > 1 else n
            for i, n in enumerate(names)]


def parse_tap(lines, prefix, out):
    """Count leaf results; a result line whose predecessor was more deeply
    indented closes a group of subtests: not a test of its own, but its
    "not ok" (a failed KUnit suite) is a failure."""
    names = iter(run_names(lines))
    program, plan, seen, failed, prev_indent = prefix, None, 0, False, -1
    for raw in lines:
        line = raw.rstrip('\n')
        if line.startswith('# HARNESS-RUN '):
            program = f'{prefix}:{next(names)}'
            plan, seen, failed, prev_indent = None, 0, False, -1
            continue
        m = re.match(r'^# HARNESS-EXIT (\d+) ', line)
        if m:
            rc = int(m.group(1))
            if plan is not None and seen != plan:
                out.append(('FAIL', f'{program}: {seen} results, {plan} planned'))
            elif rc != 0 and not failed:
                out.append(('FAIL', f'{program}: exited with {rc}'))
            elif plan == 0:
                out.append(('SKIP', f'{program}: no tests ran (plan 1..0)'))
            elif plan is None and seen == 0:
                out.append(('PASS', program))
            continue
        if line.startswith('# HARNESS-TIMEOUT'):
            out.append(('FAIL', f'{prefix}: {line[2:]}'))
            continue
        m = re.match(r'^1\.\.(\d+)', line)
        if m and plan is None:
            plan = int(m.group(1))
            continue
        m = RESULT.match(line)
        if not m:
            continue
        indent, ok = len(m.group(1)), m.group(2) == 'ok'
        closes_group = prev_indent > indent
        prev_indent = indent
        if indent == 0:
            seen += 1
        if closes_group and ok:     # the group's own "ok": its cases count
            continue
        name = f'{program}: {m.group(4).strip()}'
        if (m.group(5) or '').strip().upper().startswith('SKIP') and not closes_group:
            out.append(('SKIP', name))
        elif ok:
            out.append(('PASS', name))
        else:
            out.append(('FAIL', name))
            failed = True


def check_kunit(con, tree, prefix, out):
    """KUNIT_SUITE ran in full: its "# Subtest:" header, a plan of one case
    per KUNIT_CASE of its source in TREE, a result line for every case and
    then the suite's own result line (parse_tap fails its "not ok")."""
    where = f'{prefix}:kunit: {KUNIT_SUITE}'
    try:
        with open(f'{tree}/{KUNIT_SOURCE}') as f:
            cases = len(re.findall(r'^\s*KUNIT_CASE\w*\(', f.read(), re.M))
    except OSError:
        out.append(('FAIL', f'{where}: cannot count its cases: no {tree}/{KUNIT_SOURCE}'))
        return
    header = re.compile(rf'^(\s*)# Subtest: {re.escape(KUNIT_SUITE)}$')
    start = next((i for i, l in enumerate(con) if header.match(l.rstrip())), None)
    if start is None:
        out.append(('FAIL', f'{where}: the suite did not run ({KUNIT_OPTION}=y)'))
        return
    indent = len(header.match(con[start].rstrip()).group(1))
    plan, reported, closed = None, 0, False
    for line in con[start + 1:]:
        m = re.match(r'^(\s*)1\.\.(\d+)', line)
        if m and len(m.group(1)) == indent and plan is None:
            plan = int(m.group(2))
        m = RESULT.match(line.rstrip('\n'))
        if m and len(m.group(1)) == indent:
            reported += 1
        elif m and len(m.group(1)) < indent:
            closed = True
            break
    problems = []
    if plan != cases:
        problems.append(f'plan 1..{plan}, {KUNIT_SOURCE} has {cases} cases')
    if reported != cases:
        problems.append(f'{reported} of {cases} cases reported')
    if not closed:
        problems.append('no result line for the suite')
    out.extend(('FAIL', f'{where}: {p}') for p in problems)
    if not problems:
        out.append(('PASS', f'{where}: all {cases} cases planned and reported'))


def check_kmemleak(tap, built, done, name, out):
    """init's last kmemleak scan found nothing; it must have run (or said
    "# kmemleak: unusable ...") wherever the kernel has kmemleak."""
    reports = [l[2:].strip() for l in tap if l.startswith('# kmemleak: ')]
    bad = [r for r in reports if r != 'kmemleak: 0 unreferenced objects']
    if bad:
        out.append(('FAIL', f'{name}: {bad[0]}'))
    elif built and done and not reports:
        out.append(('FAIL', f'{name}: the kernel has kmemleak but the guest reported no scan'))


# The SKIPs of a run without its own file: guest/skips-all.txt
SKIPS_ALL = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'guest', 'skips-all.txt')


def expect_skips(out, name, path):
    """Every SKIP whose name after "NAME:" matches no glob of PATH (a run's
    own file), or of SKIPS_ALL where the run has none, fails."""
    globs = []
    if not path or not os.path.exists(path):
        path = SKIPS_ALL
    try:
        with open(path) as f:
            globs = [l.strip() for l in f if l.strip() and not l.startswith('#')]
    except (OSError, TypeError):    # no file (or none given): no SKIP expected
        pass
    for i, (status, test) in enumerate(out):
        if status == 'SKIP' and not any(fnmatch.fnmatchcase(test[len(name) + 1:], g)
                                        for g in globs):
            out[i] = ('FAIL', f'{test}: unexpected SKIP (not in {path})')


def read_log(path, what, name, out):
    """The lines of a log; missing or empty, it is a failure."""
    try:
        with open(path, errors='replace') as f:
            lines = f.readlines()
    except OSError:
        lines = []
    if not lines:
        out.append(('FAIL', f'{name}: no {what} log ({path} is missing or empty)'))
    return lines


def read_config(path, name, out):
    """The CONFIG_X=value lines of a kernel .config, as a dict."""
    try:
        with open(path) as f:
            return dict(l.rstrip('\n').split('=', 1) for l in f if l.startswith('CONFIG_'))
    except OSError:
        out.append(('FAIL', f'{name}: no kernel config {path}'))
        return {}


def main():
    ap = argparse.ArgumentParser(description='Summarise one guest run.')
    for arg in ('name', 'taplog', 'console', 'results'):
        ap.add_argument(arg)
    ap.add_argument('--config', help="the kernel's .config")
    ap.add_argument('--tree', help='the kernel tree it was built from')
    ap.add_argument('--skips', help='globs of the SKIPs this run may have')
    a = ap.parse_args()
    name, out = a.name, []
    tap = read_log(a.taplog, 'test', name, out)
    con = [TIMESTAMP.sub('', l) for l in read_log(a.console, 'console', name, out)]
    config = read_config(a.config, name, out) if a.config else {}
    if tap:
        parse_tap(tap, name, out)
        done = any(l.startswith('# HARNESS-DONE') for l in tap)
        if not done:
            out.append(('FAIL', f'{name}: guest did not finish its run (see {a.console})'))
        check_kmemleak(tap, config.get('CONFIG_DEBUG_KMEMLEAK') == 'y', done, name, out)
    if con:
        # KUnit prints KTAP on the console: take the lines from "KTAP version".
        start = next((i for i, l in enumerate(con) if l.startswith('KTAP version')), len(con))
        parse_tap(con[start:], name + ':kunit', out)
        if config.get(KUNIT_OPTION) == 'y':
            check_kunit(con, a.tree, name, out)
        splats = [l.rstrip() for l in con if SPLAT.search(l)]
        if splats:
            out.append(('FAIL', f'{name}: kernel splat: {splats[0]} (see {a.console})'))
        else:
            out.append(('PASS', f'{name}: no kernel splat'))
    expect_skips(out, name, a.skips)
    with open(a.results, 'a') as f:
        for status, test in out:
            f.write(f'{status} {test}\n')
    for status, test in out:
        if status == 'FAIL':
            print(f'  FAIL {test}')
    counts = [sum(1 for s, _ in out if s == k) for k in ('PASS', 'FAIL', 'SKIP')]
    print(f'  {name}: {counts[0]} passed, {counts[1]} failed, {counts[2]} skipped')
    return 1 if counts[1] else 0


if __name__ == '__main__':
    try:
        sys.exit(main())
    except Exception:           # not a verdict: the callers record a FAIL
        traceback.print_exc()
        sys.exit(3)
