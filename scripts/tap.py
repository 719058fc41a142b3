#!/usr/bin/env python3
"""Summarise one guest run: the (K)TAP the tests printed, KUnit's KTAP on
the kernel console, and any kernel splat.

  tap.py NAME TAPLOG CONSOLELOG RESULTS

Appends one line per test case to RESULTS ("PASS|FAIL|SKIP name") and
prints failures with the place they were reported.  A splat, a crashed
program (exit code without a TAP verdict), a missing plan entry or a
timeout count as failures.
"""
import re
import sys

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
    r'RCU stall',
]
SPLAT = re.compile('|'.join(SPLATS))


def parse_tap(lines, prefix, out):
    """Count leaf results; a result line whose predecessor was more deeply
    indented closes a group of subtests and is not a test of its own."""
    prev_indent = -1
    plan = None
    seen = 0
    program = prefix
    for raw in lines:
        line = raw.rstrip('\n')
        m = re.match(r'^# HARNESS-RUN (.*)$', line)
        if m:
            program = prefix + ':' + m.group(1).split()[0].lstrip('./')
            plan, seen, failed_here, prev_indent = None, 0, False, -1
            continue
        m = re.match(r'^# HARNESS-EXIT (\d+) (.*)$', line)
        if m:
            rc = int(m.group(1))
            if plan is not None and seen < plan:
                out.append(('FAIL', f'{program}: ran {seen} of {plan} planned tests'))
            elif rc != 0 and not any(r[0] == 'FAIL' and r[1].startswith(program + ':') for r in out):
                out.append(('FAIL', f'{program}: exited with {rc}'))
            elif plan is None and seen == 0:
                out.append(('PASS' if rc == 0 else 'FAIL', f'{program}'))
            continue
        if line.startswith('# HARNESS-TIMEOUT'):
            out.append(('FAIL', f'{prefix}: {line[2:]}'))
            continue
        m = re.match(r'^\s*1\.\.(\d+)', line)
        if m and plan is None and not line.startswith(' '):
            plan = int(m.group(1))
            continue
        m = RESULT.match(line)
        if not m:
            continue
        indent = len(m.group(1))
        if prev_indent > indent:
            prev_indent = indent
            if indent == 0:
                seen += 1
            continue
        prev_indent = indent
        if indent == 0:
            seen += 1
        name = f'{program}: {m.group(4).strip()}'
        directive = (m.group(5) or '').strip()
        if directive.upper().startswith('SKIP'):
            out.append(('SKIP', name))
        elif m.group(2) == 'ok':
            out.append(('PASS', name))
        else:
            out.append(('FAIL', name))


def main():
    name, taplog, console, results = sys.argv[1:5]
    out = []
    try:
        with open(taplog, errors='replace') as f:
            tap = f.readlines()
    except FileNotFoundError:
        tap = []
    with open(console, errors='replace') as f:
        con = [TIMESTAMP.sub('', l) for l in f.readlines()]
    parse_tap(tap, name, out)
    # KUnit prints KTAP on the console: take the lines from "KTAP version".
    for i, l in enumerate(con):
        if l.startswith('KTAP version'):
            parse_tap(con[i:], name + ':kunit', out)
            break
    if not any(l.startswith('# HARNESS-DONE') for l in tap):
        out.append(('FAIL', f'{name}: guest did not finish its run (see {console})'))
    splats = [l.rstrip() for l in con if SPLAT.search(l)]
    if splats:
        out.append(('FAIL', f'{name}: kernel splat: {splats[0]} (see {console})'))
    else:
        out.append(('PASS', f'{name}: no kernel splat'))
    with open(results, 'a') as f:
        for status, test in out:
            f.write(f'{status} {test}\n')
    for status, test in out:
        if status == 'FAIL':
            print(f'  FAIL {test}')
    p = sum(1 for s, _ in out if s == 'PASS')
    fl = sum(1 for s, _ in out if s == 'FAIL')
    sk = sum(1 for s, _ in out if s == 'SKIP')
    print(f'  {name}: {p} passed, {fl} failed, {sk} skipped')
    return 1 if fl else 0


if __name__ == '__main__':
    sys.exit(main())
