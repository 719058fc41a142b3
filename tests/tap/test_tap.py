"""Unit tests of scripts/tap.py (and of guest_results in scripts/lib.sh):
synthetic guest logs in, the result lines it writes out.

    python3 -m unittest discover -s tests/tap       (make check runs it)
"""
import contextlib
import importlib.util
import io
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path
from unittest import mock

HERE = Path(__file__).resolve().parent
TOP = HERE.parents[1]
TAP_PY = TOP / 'scripts' / 'tap.py'
FIXTURES = HERE / 'fixtures'
TREE = FIXTURES / 'tree'        # its noiommu_kunit.c has 3 KUNIT_CASEs
KUNIT_CONSOLE = (FIXTURES / 'kunit.console').read_text()
CONSOLE = '[    0.000000] Linux version 6.12.117\n[    3.000000] Run /init as init process\n'
KUNIT_Y = 'CONFIG_IOMMUFD_NOIOMMU_KUNIT_TEST=y\n'
_spec = importlib.util.spec_from_file_location('tap', TAP_PY)
tap_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tap_module)


def run(cmd, body='', rc=0):
    """One command of the guest's list, as guest/init logs it."""
    return f'# HARNESS-RUN {cmd}\n{body}# HARNESS-EXIT {rc} {cmd}\n'


def tap(*runs, tail='# kmemleak: 0 unreferenced objects\n# HARNESS-DONE\n'):
    return '# edu device: 0000:00:04.0, driver vfio-pci\n' + ''.join(runs) + tail


def kunit(old, new):
    """The KUnit fixture console with one line changed."""
    assert old in KUNIT_CONSOLE
    return KUNIT_CONSOLE.replace(old, new)


class Tap(unittest.TestCase):
    def tap_py(self, taplog=tap(), console=CONSOLE, config=None, skips=None,
               name='debug', tree=TREE):
        """Run tap.py's main() on these logs (None: no such file); its exit
        code and the lines it wrote (in-process: a new python3 per case is
        too slow on a loaded machine)."""
        with tempfile.TemporaryDirectory() as d:
            d = Path(d)
            args = ['tap.py', name, d / 'run.tap', d / 'run.console',
                    d / 'results', '--tree', tree]
            for fname, text in (('run.tap', taplog), ('run.console', console)):
                if text is not None:
                    (d / fname).write_text(text)
            if config is not None:
                (d / 'config').write_text(config)
                args += ['--config', d / 'config']
            if skips is not None:
                (d / 'skips').write_text(skips)
                args += ['--skips', d / 'skips']
            with mock.patch.object(sys, 'argv', [str(a) for a in args]), \
                    contextlib.redirect_stdout(io.StringIO()):
                rc = tap_module.main()
            return rc, (d / 'results').read_text().splitlines()

    def assertLine(self, lines, start):
        self.assertTrue(any(l.startswith(start) for l in lines),
                        f'no line starting "{start}" in:\n' + '\n'.join(lines))

    def assertNoLine(self, lines, start):
        self.assertFalse(any(l.startswith(start) for l in lines),
                         f'a line starting "{start}" in:\n' + '\n'.join(lines))

    def test_good_run(self):
        rc, lines = self.tap_py(tap(run('./edu-dma --cdev $EDU_BDF', 'DEMO PASSED\n')))
        self.assertEqual(lines, ['PASS debug:edu-dma', 'PASS debug: no kernel splat'])
        self.assertEqual(rc, 0)

    # (8) a run without a verdict fails
    def test_missing_console(self):
        rc, lines = self.tap_py(console=None)
        self.assertLine(lines, 'FAIL debug: no console log')
        self.assertNoLine(lines, 'PASS debug: no kernel splat')
        self.assertEqual(rc, 1)

    def test_empty_console(self):
        rc, lines = self.tap_py(console='')
        self.assertLine(lines, 'FAIL debug: no console log')
        self.assertNoLine(lines, 'PASS debug: no kernel splat')

    def test_missing_and_empty_tap(self):
        for taplog in (None, ''):
            rc, lines = self.tap_py(taplog=taplog)
            self.assertLine(lines, 'FAIL debug: no test log')
            self.assertEqual(rc, 1)

    def test_guest_did_not_finish(self):
        rc, lines = self.tap_py(tap(run('./a'), tail=''))
        self.assertLine(lines, 'FAIL debug: guest did not finish')

    def test_crash_is_not_a_verdict(self):
        with tempfile.TemporaryDirectory() as d:     # RESULTS a directory
            p = subprocess.run([sys.executable, TAP_PY, 'x', d, d, d],
                               capture_output=True, text=True)
        self.assertNotIn(p.returncode, (0, 1))

    # (12) plans, exit codes, names
    def test_plan_1_0_is_a_skip_expected_only_if_listed(self):
        log = tap(run('./prog', 'TAP version 13\n1..0 # SKIP no device\n'))
        rc, lines = self.tap_py(log)
        self.assertLine(lines, 'FAIL debug:prog: no tests ran (plan 1..0): unexpected SKIP')
        rc, lines = self.tap_py(log, skips='prog: no tests ran*\n')
        self.assertLine(lines, 'SKIP debug:prog: no tests ran (plan 1..0)')
        self.assertEqual(rc, 0)

    def test_more_results_than_planned(self):
        rc, lines = self.tap_py(tap(run('./prog', '1..1\nok 1 a\nok 2 b\n')))
        self.assertLine(lines, 'FAIL debug:prog: 2 results, 1 planned')

    def test_fewer_results_than_planned(self):
        rc, lines = self.tap_py(tap(run('./prog', '1..3\nok 1 a\n', rc=139)))
        self.assertLine(lines, 'FAIL debug:prog: 1 results, 3 planned')

    def test_exit_code_of_a_repeated_program_is_not_hidden(self):
        rc, lines = self.tap_py(tap(run('./t', '1..1\nnot ok 1 a\n', rc=1),
                                    run('./t', '', rc=139)))
        self.assertLine(lines, 'FAIL debug:t#1: a')
        self.assertLine(lines, 'FAIL debug:t#2: exited with 139')

    def test_repeated_program_named_by_its_arguments(self):
        rc, lines = self.tap_py(tap(run('./edu-dma --group $EDU_BDF'),
                                    run('./edu-dma --cdev $EDU_BDF', rc=1)))
        self.assertLine(lines, 'PASS debug:edu-dma --group')
        self.assertLine(lines, 'FAIL debug:edu-dma --cdev: exited with 1')

    def test_named_after_the_program_not_its_environment(self):
        cmd = 'STRESS_KMEMLEAK=1 STRESS_SEED=7 ./noiommu_stress $EDU_BDF'
        rc, lines = self.tap_py(tap(run(cmd, '1..1\nok 1 stress.fuzz\n')))
        self.assertEqual(lines[0], 'PASS debug:noiommu_stress: stress.fuzz')

    def test_timeout(self):
        rc, lines = self.tap_py(tap(tail='# HARNESS-TIMEOUT after 900s\n'))
        self.assertLine(lines, 'FAIL debug: HARNESS-TIMEOUT after 900s')

    # (7) the KUnit suite wherever it is built
    def test_kunit_all_good(self):
        rc, lines = self.tap_py(console=KUNIT_CONSOLE, config=KUNIT_Y)
        self.assertEqual(lines, [
            'PASS debug:kunit: noiommu_test_single_page',
            'PASS debug:kunit: noiommu_test_double_map',
            'PASS debug:kunit: noiommu_test_runs',
            'PASS debug:kunit: iommufd-noiommu: all 3 cases planned and reported',
            'PASS debug: no kernel splat'])
        self.assertEqual(rc, 0)

    def test_kunit_missing(self):
        rc, lines = self.tap_py(console=CONSOLE, config=KUNIT_Y)
        self.assertLine(lines, 'FAIL debug:kunit: iommufd-noiommu: the suite did not run')

    def test_kunit_not_configured_not_required(self):
        for config in (None, '# CONFIG_IOMMUFD_NOIOMMU_KUNIT_TEST is not set\n'):
            rc, lines = self.tap_py(console=CONSOLE, config=config)
            self.assertEqual(rc, 0, lines)

    def test_kunit_wrong_plan(self):
        console = kunit('    1..3', '    1..2').replace('    ok 3 noiommu_test_runs\n', '')
        rc, lines = self.tap_py(console=console, config=KUNIT_Y)
        self.assertLine(lines, 'FAIL debug:kunit: iommufd-noiommu: plan 1..2, '
                        'drivers/iommu/iommufd/noiommu_kunit.c has 3 cases')

    def test_kunit_case_missing(self):
        rc, lines = self.tap_py(console=kunit('    ok 2 noiommu_test_double_map\n', ''),
                                config=KUNIT_Y)
        self.assertLine(lines, 'FAIL debug:kunit: iommufd-noiommu: 2 of 3 cases reported')

    def test_kunit_suite_not_ok(self):
        console = kunit('] ok 1 iommufd-noiommu', '] not ok 1 iommufd-noiommu')
        rc, lines = self.tap_py(console=console, config=KUNIT_Y)
        self.assertIn('FAIL debug:kunit: iommufd-noiommu', lines)
        self.assertEqual(rc, 1)

    def test_kunit_suite_unfinished(self):
        rc, lines = self.tap_py(console=kunit('] ok 1 iommufd-noiommu', '] Run /init'),
                                config=KUNIT_Y)
        self.assertLine(lines, 'FAIL debug:kunit: iommufd-noiommu: no result line for the suite')

    def test_kunit_source_missing(self):
        rc, lines = self.tap_py(console=KUNIT_CONSOLE, config=KUNIT_Y, tree=FIXTURES)
        self.assertLine(lines, 'FAIL debug:kunit: iommufd-noiommu: cannot count its cases')

    # (9) splats that used to pass
    def test_rcu_stalls(self):
        for msg in ('rcu: INFO: rcu_sched detected stalls on CPUs/tasks:',
                    'rcu: INFO: rcu_preempt self-detected stall on CPU',
                    'rcu: INFO: rcu_tasks detected stalls on tasks:'):
            rc, lines = self.tap_py(console=CONSOLE + f'[   99.000000] {msg}\n')
            self.assertIn(f'FAIL debug: kernel splat: {msg} (see', lines[-1])

    def test_kmemleak_switched_off(self):
        for msg in ('kmemleak: Kernel memory leak detector disabled',
                    'kmemleak: Cannot allocate a kmemleak_object structure',
                    'kmemleak: Automatic memory scanning thread ended'):
            rc, lines = self.tap_py(console=CONSOLE + f'[   99.000000] {msg}\n')
            self.assertIn(f'FAIL debug: kernel splat: {msg} (see', lines[-1])

    def test_kmemleak_unusable(self):
        rc, lines = self.tap_py(tap(tail='# kmemleak: unusable (scan failed)\n# HARNESS-DONE\n'))
        self.assertLine(lines, 'FAIL debug: kmemleak: unusable (scan failed)')

    def test_kmemleak_configured_but_not_reported(self):
        rc, lines = self.tap_py(tap(tail='# HARNESS-DONE\n'), config='CONFIG_DEBUG_KMEMLEAK=y\n')
        self.assertLine(lines, 'FAIL debug: the kernel has kmemleak but the guest reported no scan')
        rc, lines = self.tap_py(tap(tail='# HARNESS-DONE\n'), config='CONFIG_KUNIT=y\n')
        self.assertEqual(rc, 0, lines)

    def test_kmemleak_leaks(self):
        rc, lines = self.tap_py(tap(tail='# kmemleak: 2 unreferenced objects\n# HARNESS-DONE\n'))
        self.assertLine(lines, 'FAIL debug: kmemleak: 2 unreferenced objects')

    # (1) expected SKIPs per run
    def test_unexpected_and_listed_skip(self):
        log = tap(run('./vfio/t $EDU_BDF',
                      '1..2\nok 1 cdev.dma_4k # SKIP no cdev\nok 2 global.x\n'))
        rc, lines = self.tap_py(log)
        self.assertLine(lines, 'FAIL debug:vfio/t: cdev.dma_4k: unexpected SKIP')
        rc, lines = self.tap_py(log, skips='# comment\nvfio/t: cdev.*\n')
        self.assertEqual(lines[0], 'SKIP debug:vfio/t: cdev.dma_4k')
        self.assertEqual(rc, 0)
        rc, lines = self.tap_py(log, skips='vfio/t: global.*\n')
        self.assertLine(lines, 'FAIL debug:vfio/t: cdev.dma_4k: unexpected SKIP')

    def test_guest_skip_lists(self):
        """guest/skips-case1.txt and -case5.txt accept what those cases skip, no more."""
        case1 = (FIXTURES / 'case1.tap').read_text()
        skips1 = (TOP / 'guest' / 'skips-case1.txt').read_text()
        rc, lines = self.tap_py(case1, name='case1', skips=skips1)
        self.assertEqual(sum(l.startswith('SKIP ') for l in lines), 9, lines)
        self.assertEqual(rc, 0, lines)
        legacy_skips = case1.replace('ok 2 global.legacy_group_vfio_container',
                                     'ok 2 global.legacy_group_vfio_container # SKIP no container')
        rc, lines = self.tap_py(legacy_skips, name='case1', skips=skips1)
        self.assertLine(lines, 'FAIL case1:vfio/vfio_noiommu_test: '
                        'global.legacy_group_vfio_container: unexpected SKIP')
        skips5 = (TOP / 'guest' / 'skips-case5.txt').read_text()
        case5 = tap(run('./vfio/vfio_noiommu_test $EDU_BDF', '1..4\n'
                        'ok 1 global.legacy_group_vfio_container # SKIP no container\n'
                        'ok 2 global.legacy_group_iommufd_compat # SKIP no group node\n'
                        'ok 3 global.group_cdev_exclusion # SKIP needs both\n'
                        'ok 4 cdev.dma_4k # SKIP no device cdev\n'))
        rc, lines = self.tap_py(case5, name='case5', skips=skips5)
        self.assertEqual(sum(l.startswith('SKIP ') for l in lines), 3, lines)
        self.assertLine(lines, 'FAIL case5:vfio/vfio_noiommu_test: cdev.dma_4k: unexpected SKIP')


class GuestResults(unittest.TestCase):
    """guest_results (scripts/lib.sh): a FAIL line when tap.py gives no verdict."""

    def guest_results(self, tap_py=None):
        with tempfile.TemporaryDirectory() as d:
            top = TOP
            if tap_py is not None:      # a stand-in for scripts/tap.py
                top = Path(d) / 'top'
                (top / 'scripts').mkdir(parents=True)
                (top / 'scripts' / 'tap.py').write_text(tap_py)
            script = (f'. "{TOP}/scripts/lib.sh"; TOP="{top}" LOGS="{d}" OBJ="{d}"; '
                      f': > "{d}/results"; guest_results run debug "{d}/results"; '
                      f'echo rc=$?; cat "{d}/results"')
            p = subprocess.run(['bash', '-c', script], capture_output=True, text=True)
            return [l for l in p.stdout.splitlines() if not l.startswith('  ')]

    def test_no_logs(self):
        """tap.py's own FAIL lines, nothing added."""
        lines = self.guest_results()
        self.assertEqual(lines[0], 'rc=0')
        self.assertTrue(any(l.startswith('FAIL run: no test log') for l in lines), lines)
        self.assertFalse(any('tap.py' in l for l in lines), lines)

    def test_tap_py_crashed(self):
        lines = self.guest_results('import sys\nsys.exit(3)\n')
        self.assertEqual(lines, ['rc=0', 'FAIL run: tap.py failed with exit code 3 (above)'])

    def test_tap_py_wrote_nothing(self):
        lines = self.guest_results('raise SystemExit(1)\n')
        self.assertEqual(lines, ['rc=0', 'FAIL run: tap.py recorded no result for this run'])


if __name__ == '__main__':
    unittest.main()
