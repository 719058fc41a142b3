#!/usr/bin/env python3
"""The mutants of mutants/list (format: see its header), for mutants.sh.

  mutants.py LIST check TREE [NAME...]   every old text occurs exactly once
  mutants.py LIST names [NAME...]        the names, one a line, in list order
  mutants.py LIST show NAME FIELD        file, why, or the kill lines
  mutants.py LIST apply NAME TREE        replace NAME's old text in TREE

Fails loudly (exit 1, message on stderr) on a malformed list, an unknown
name, a kill test that is not one of make check's, and an old text that is
missing or occurs more than once.
"""
import glob
import os
import re
import sys

KILL = re.compile(r'^(?:(guest|viommu): (\S.*)|(kunit)|(build))$')


def fail(msg):
    print(f'mutants: {msg}', file=sys.stderr)
    sys.exit(1)


def bare_command(cmd):
    """CMD without the VAR=value words before it"""
    return re.sub(r'^(\w+=\S*\s+)+', '', cmd)


def guest_commands(top):
    """The commands of guest/tests-*.txt: (machine, command) pairs."""
    cmds = set()
    for path in glob.glob(f'{top}/guest/tests-*.txt'):
        machine = 'viommu' if path.endswith('tests-viommu.txt') else 'guest'
        with open(path) as f:
            for line in f:
                line = line.rstrip('\n')
                if line and not line.startswith('#'):
                    cmds.add((machine, bare_command(line)))
    return cmds


def parse(path):
    top = os.path.dirname(os.path.dirname(os.path.abspath(path)))
    known = guest_commands(top)
    mutants, cur, block = [], None, None
    with open(path) as f:
        lines = f.read().split('\n')
    for n, line in enumerate(lines, 1):
        where = f'{path}:{n}'
        if block is not None:               # inside old or new: verbatim
            if line == ('new' if block == 'old' else 'end'):
                cur[block] = ''.join(l + '\n' for l in cur[block])
                block = None if block == 'new' else 'new'
                if block == 'new':
                    cur['new'] = []
            else:
                cur[block].append(line)
            continue
        if not line.strip() or line.startswith('#'):
            continue
        key, _, val = line.partition(' ')
        if key == 'mutant':
            if not re.fullmatch(r'[a-z0-9-]+', val):
                fail(f'{where}: bad mutant name {val!r}')
            if any(m['name'] == val for m in mutants):
                fail(f'{where}: mutant {val} listed twice')
            cur = {'name': val, 'kill': [], 'where': where}
            mutants.append(cur)
        elif cur is None:
            fail(f'{where}: {key!r} outside a mutant record')
        elif key in ('file', 'why'):
            cur[key] = val
        elif key == 'kill':
            m = KILL.match(val)
            if not m:
                fail(f'{where}: bad kill test {val!r}')
            # VAR=value words before the command (a fixed seed) are allowed
            if m.group(1) and (m.group(1), bare_command(m.group(2))) not in known:
                fail(f'{where}: {val!r} is not a command of guest/tests-*.txt'
                     f'{" (viommu: tests-viommu.txt)" if m.group(1) == "viommu" else ""}')
            cur['kill'].append(val)
        elif key == 'old' and not val:
            block, cur['old'] = 'old', []
        else:
            fail(f'{where}: unexpected line {line!r}')
    if block is not None:
        fail(f'{path}: the last record has no "end"')
    for m in mutants:
        for k in ('file', 'why', 'old', 'new'):
            if k not in m:
                fail(f'{m["where"]}: mutant {m["name"]} has no {k}')
        if not m['kill']:
            fail(f'{m["where"]}: mutant {m["name"]} names no killing test')
        if m['old'] == m['new']:
            fail(f'{m["where"]}: mutant {m["name"]} changes nothing')
    return mutants


def select(mutants, names):
    if not names:
        return mutants
    by = {m['name']: m for m in mutants}
    for n in names:
        if n not in by:
            fail(f'no mutant named {n}')
    return [by[n] for n in names]


def text_of(tree, m, report=fail):
    try:
        with open(f'{tree}/{m["file"]}') as f:
            text = f.read()
    except OSError as e:
        return report(f'{m["name"]}: cannot read {m["file"]}: {e}')
    count = text.count(m['old'])
    if count != 1:
        return report(f'{m["name"]}: its old text occurs {count} times in {m["file"]} '
                      f'(must be exactly once; {m["where"]}):\n{m["old"]}')
    return text


def main():
    if len(sys.argv) < 3:
        fail(__doc__)
    mutants, cmd, args = parse(sys.argv[1]), sys.argv[2], sys.argv[3:]
    if cmd == 'check':
        bad = []
        for m in select(mutants, args[1:]):
            text_of(args[0], m, lambda msg: bad.append(msg))
        for msg in bad:
            print(f'mutants: {msg}', file=sys.stderr)
        if bad:
            fail(f'{len(bad)} mutants do not fit the tree')
    elif cmd == 'names':
        for m in select(mutants, args):
            print(m['name'])
    elif cmd == 'show':
        m = select(mutants, args[:1])[0]
        print('\n'.join(m['kill']) if args[1] == 'kill' else m[args[1]])
    elif cmd == 'apply':
        m, tree = select(mutants, args[:1])[0], args[1]
        text = text_of(tree, m)
        with open(f'{tree}/{m["file"]}', 'w') as f:
            f.write(text.replace(m['old'], m['new'], 1))
    else:
        fail(f'unknown command {cmd}')


if __name__ == '__main__':
    main()
