#!/usr/bin/env python3
"""Turn the BENCH lines of make bench's guest runs into the table.

  bench-report.py OUTDIR BASE_VERSION ICOUNT SIZE_TXT|- RUN.tap [RUN.tap...] [--arch ARCH]

Writes OUTDIR/results.tsv (figure, value, unit; the first run, plus the
derived ratios and the targets) and OUTDIR/table.md, and prints the table.
With several runs, prints how far each figure moved between them.
"""
import datetime
import platform
import re
import sys

outdir, base, icount, size_txt = sys.argv[1:5]
guest_arch = 'x86_64'
if '--arch' in sys.argv:
    i = sys.argv.index('--arch')
    guest_arch = sys.argv[i + 1]
    del sys.argv[i:i + 2]
runs = []
for path in sys.argv[5:]:
    figs = {}
    for line in open(path, errors='replace'):
        m = re.match(r'^BENCH (\S+) (\S+) (\S+)', line)
        if m:
            figs[m.group(1)] = (float(m.group(2)), m.group(3))
    # KUnit's noiommu_test_cost, on the console of the same boot
    try:
        con = open(path[:-len('.tap')] + '.console', errors='replace').read()
    except FileNotFoundError:
        con = ''
    for m in re.finditer(r'cost: \d+K run (\d+): map (\d+) unmap (\d+) ns', con):
        figs['table_map_4k_run%s' % m.group(1)] = (float(m.group(2)), 'ns')
        figs['table_unmap_4k_run%s' % m.group(1)] = (float(m.group(3)), 'ns')
    m = re.search(r'cost: huge pages: map (\d+) unmap (\d+) ns', con)
    if m:
        figs['table_map_huge'] = (float(m.group(1)), 'ns')
        figs['table_unmap_huge'] = (float(m.group(2)), 'ns')
    runs.append(figs)
f = runs[0]


def v(name):
    return f[name][0]


def fmt(x):
    if x is None:
        return '-'
    return '%.0f' % x if abs(x) >= 100 else '%.2f' % x


# The guest's page size (noiommu_bench reports it; "4k" in figure names is
# one base page): with 64 KiB pages, 64 MiB is 1024 of them.
page = int(v('page_size')) if 'page_size' in f else 4096
npages = (64 << 20) // page
plabel = '%d KiB' % (page >> 10)

# SIZE_TXT "-": no size comparison (make bench ARCH=arm64)
sizes = [] if size_txt == '-' else [
    l.split() for l in open(size_txt) if l.strip() and not l.lstrip().startswith('text')]

rows = []        # (section, what, cdev, legacy, unit)
rows.append(('GET_PA', 'one 4 KiB page', v('get_pa_4k'), v('pagemap_pread_4k'), 'ns/call'))
rows.append(('GET_PA', '2 MiB hugepage, length 2 MiB', v('get_pa_2m'), v('pagemap_pread_4k'), 'ns/call'))
if 'get_pa_floor' in f:
    rows.append(('GET_PA', 'one 4 KiB page: ioctl floor (a call rejected for its flags: syscall, dispatch, copy, CAP_SYS_RAWIO) / the rest (IOAS, area, domain, table, reply)',
                 v('get_pa_floor'), v('get_pa_4k') - v('get_pa_floor'), 'ns/call'))
rows.append(('GET_PA', '64 MiB of 4 KiB pages, walked (%d calls / %d preads)' % (
    v('get_pa_walk_64m_4k_calls'), v('pagemap_walk_64m_4k_reads')),
    v('get_pa_walk_64m_4k'), v('pagemap_walk_64m_4k'), 'us'))
rows.append(('GET_PA', '64 MiB of 2 MiB pages, walked (%d calls / %d preads)' % (
    v('get_pa_walk_64m_2m_calls'), v('pagemap_walk_64m_2m_reads')),
    v('get_pa_walk_64m_2m'), v('pagemap_walk_64m_2m'), 'us'))
rows.append(('MAP', '64 MiB 4 KiB pages: MAP / mlock', v('map_64m_4k'), v('mlock_64m_4k'), 'us'))
rows.append(('MAP', '64 MiB 4 KiB pages: UNMAP', v('unmap_64m_4k'), None, 'us'))
rows.append(('MAP', '64 MiB 4 KiB pages: MAP + GET_PA walk / mlock + pagemap walk',
             v('cdev_map_walk_64m_4k'), v('legacy_mlock_walk_64m_4k'), 'us'))
rows.append(('MAP', '64 MiB 2 MiB pages: MAP / mlock', v('map_64m_2m'), v('mlock_64m_2m'), 'us'))
rows.append(('MAP', '64 MiB 2 MiB pages: UNMAP', v('unmap_64m_2m'), None, 'us'))
rows.append(('MAP', '64 MiB 2 MiB pages: MAP + GET_PA walk / mlock + pagemap walk',
             v('cdev_map_walk_64m_2m'), v('legacy_mlock_walk_64m_2m'), 'us'))
rows.append(('MAP', '64 MiB 2 MiB pages: pagemap walk per 4 KiB instead', None,
             v('pagemap_walk_64m_2m_per_4k'), 'us'))
# Attribution of MAP: the table's share from the KUnit probe (per page in
# long runs, plus a per-call cost, (run of 1) - (run of 512), for each
# physically contiguous run iommufd maps), the rest is pinning and iommufd.
per_page, per_call = v('table_map_4k_run512'), v('table_map_4k_run1') - v('table_map_4k_run512')
runs_4k = v('get_pa_walk_64m_4k_calls')
table_4k_us = (runs_4k * per_call + npages * per_page) / 1e3
table_2m_us = 32 * v('table_map_huge') / 1e3
rows.append(('MAP', 'table share per 4 KiB page (KUnit probe): runs of 1 / 8 / 512 pages',
             None, None, '%s / %s / %s ns' % (fmt(v('table_map_4k_run1')), fmt(v('table_map_4k_run8')), fmt(per_page))))
rows.append(('MAP', '64 MiB 4 KiB pages: table (%d runs) / pinning + iommufd' % runs_4k,
             table_4k_us, v('map_64m_4k') - table_4k_us, 'us'))
if page == 4096:
    # (with 64 KiB pages a 2 MiB page is 32 entries, no leaf of its own)
    rows.append(('MAP', '64 MiB 2 MiB pages: table (32 huge leaves) / pinning + iommufd',
                 table_2m_us, v('map_64m_2m') - table_2m_us, 'us'))
rows.append(('MAP', 'table share per 4 KiB page in UNMAP: runs of 1 / 512 pages', None, None,
             '%s / %s ns' % (fmt(v('table_unmap_4k_run1')), fmt(v('table_unmap_4k_run512')))))
rows.append(('Open', 'open to ready (cdev: open+bind+IOAS+attach+close; group: group+container+SET_IOMMU+GET_DEVICE_FD+close)',
             v('open_to_ready_cdev'), f.get('open_to_ready_group', (None,))[0], 'us'))
rows.append(('Memory', 'table, 64 MiB of 4 KiB pages at contiguous IOVAs, physically scattered, mapped in random order', v('table_bytes_per_4k_scattered'), None, 'B per 4 KiB'))
rows.append(('Memory', 'table, %d 4 KiB pages at random IOVAs in %d MiB (1 slot in 16)' % (npages, npages * page * 16 >> 20), v('table_bytes_per_4k_sparse_iova'), None, 'B per 4 KiB'))
rows.append(('Memory', 'table pages left after unmapping each of the two above', v('table_pages_left_scattered') + v('table_pages_left_sparse'), None, 'pages'))
rows.append(('Memory', 'table, 2 MiB pages, one 64 MiB mapping', v('table_bytes_per_4k_huge_64m'), None, 'B per 4 KiB'))
rows.append(('Memory', 'table, 2 MiB pages, 64 x 64 MiB (4 GiB)', v('table_bytes_per_4k_huge_4g'), None, 'B per 4 KiB'))
if sizes:
    (bt, bd), (nt, nd) = [(int(s[0]), int(s[1])) for s in sizes[:2]]
    rows.append(('Size', 'vmlinux text + data growth (%d -> %d)' % (bt + bd, nt + nd), nt + nd - bt - bd, None, 'bytes'))

def ratio(a, b):
    return v(a) / v(b) if v(b) else float('inf')


targets = [
    ('GET_PA 2 MiB <= 1.5 x GET_PA 4 KiB', ratio('get_pa_2m', 'get_pa_4k'), 1.5),
    ('GET_PA 4 KiB <= one pagemap pread', ratio('get_pa_4k', 'pagemap_pread_4k'), 1.0),
    ('64 MiB 2 MiB pages: MAP + GET_PA walk <= mlock + pagemap walk',
     ratio('cdev_map_walk_64m_2m', 'legacy_mlock_walk_64m_2m'), 1.0),
    ('table <= 10 B per 4 KiB, 4 KiB pages at contiguous IOVAs (physically scattered)', v('table_bytes_per_4k_scattered'), 10),
    ('table back to its top page after unmapping everything', v('table_pages_left_scattered') + v('table_pages_left_sparse'), 0),
    ('table <= 0.1 B per 4 KiB, 2 MiB pages (4 GiB mapped)', v('table_bytes_per_4k_huge_4g'), 0.1),
    ('MAP 64 MiB 4 KiB pages <= 6.0 ms', v('map_64m_4k') / 1e3, 6.0),
    ('UNMAP 64 MiB 4 KiB pages <= 4.0 ms', v('unmap_64m_4k') / 1e3, 4.0),
    ('table work per 4 KiB page in MAP <= 20 instructions (64 MiB, as mapped)', table_4k_us * 1e3 / npages, 20),
    ('GET_PA one 4 KiB page <= 1.1 us', v('get_pa_4k') / 1e3, 1.1),
]


machine = '%s, %s CPUs' % (platform.machine(), open('/proc/cpuinfo').read().count('processor\t'))
model = re.search(r'model name\s*:\s*(.*)', open('/proc/cpuinfo').read())
if model:
    machine = model.group(1) + ' (' + machine + ')'
lines = []
lines.append('make bench, %s, base Debian linux-source-6.12 %s, guest: %s QEMU TCG%s on %s; median of the repetitions' % (
    datetime.date.today().isoformat(), base, guest_arch, ' -icount shift=0' if icount == '1' else '', machine))
lines.append('')
lines.append('| | measurement | cdev + iommufd | legacy (group, pagemap) | unit |')
lines.append('|---|---|---:|---:|---|')
for sec, what, a, b, unit in rows:
    lines.append('| %s | %s | %s | %s | %s |' % (sec, what.replace('4 KiB', plabel), fmt(a), fmt(b), unit.replace('4 KiB', plabel)))
res = [l for l in open(sys.argv[5], errors='replace') if l.startswith('# clock resolution')]
if res and float(res[0].split()[3]) > 1000:
    lines.append('')
    lines.append('WARNING: the guest clock ticks every %s ns: the times are meaningless, use ICOUNT=1' % res[0].split()[3])
lines.append('')
if page != 4096:
    lines.append('Targets as set for 4 KiB pages, here for pages of %s:' % plabel)
    lines.append('')
lines.append('| target | figure | limit | |')
lines.append('|---|---:|---:|---|')
for what, x, lim in targets:
    lines.append('| %s | %.3f | %s | %s |' % (what.replace('4 KiB', plabel), x, lim, 'met' if x <= lim else 'NOT MET'))
if len(runs) > 1:
    worst = max(((abs(r[k][0] - f[k][0]) / f[k][0] if f[k][0] else 0), k)
                for r in runs[1:] for k in f if k in r)
    lines.append('')
    lines.append('%d runs: the largest difference between runs is %.2f%% (%s)' % (
        len(runs), worst[0] * 100, worst[1]))
text = '\n'.join(lines)
print(text)
open(outdir + '/table.md', 'w').write(text + '\n')
with open(outdir + '/results.tsv', 'w') as tsv:
    tsv.write('figure\tvalue\tunit\n')
    for k, (val, unit) in f.items():
        tsv.write('%s\t%s\t%s\n' % (k, val, unit))
    if sizes:
        tsv.write('vmlinux_text_data_growth\t%d\tbytes\n' % (nt + nd - bt - bd))
    for what, x, lim in targets:
        tsv.write('target: %s\t%.4f\t%s\n' % (what, x, 'met' if x <= lim else 'not met'))
