// SPDX-License-Identifier: GPL-2.0-only
/*
 * What the cdev no-IOMMU path costs next to the legacy group path with
 * /proc/self/pagemap, measured in one guest in one run.
 *
 *   noiommu_bench BDF [REPS]
 *
 * Every figure is the median of REPS (default 9) repetitions.  Prints one
 * "BENCH name value unit" line per figure; scripts/bench.sh turns them into
 * the table and build/bench/results.tsv.
 */
#define _GNU_SOURCE
#include <time.h>

#include "vfio_edu.h"

#define BUF64M		(64UL << 20)
#define NPAGES64M	(BUF64M / PAGE)
#define INNER		2000	/* calls per timed sample of a single call */

static int reps = 9;
static int pagemap_fd;

static void die(const char *what)
{
	fprintf(stderr, "noiommu_bench: %s: %s\n", what, strerror(errno));
	exit(1);
}

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(double *v)
{
	qsort(v, reps, sizeof(*v), cmp_double);
	return v[reps / 2];
}

static void report(const char *name, double value, const char *unit)
{
	printf("BENCH %s %.3f %s\n", name, value, unit);
	fflush(stdout);
}

static uint64_t pagemap_read(void *va)
{
	uint64_t ent;

	if (pread(pagemap_fd, &ent, 8, (uintptr_t)va / PAGE * 8) != 8)
		die("pagemap");
	return ent;
}

/* One cdev context for the whole run, attached to @c->ioas */
static struct dev_ctx c;

static void check(int rc, const char *what)
{
	if (rc)
		die(what);
}

/* ns per call of GET_PA on @iova asking for @len */
static double time_get_pa(uint64_t iova, uint64_t len)
{
	double v[64];
	uint64_t l, pa;
	int r, i;

	for (r = 0; r < reps; r++) {
		double t = now_ns();

		for (i = 0; i < INNER; i++) {
			l = len;
			check(get_pa(c.iommufd, c.ioas, iova, &l, &pa), "GET_PA");
		}
		v[r] = (now_ns() - t) / INNER;
	}
	return median(v);
}

/*
 * ns per GET_PA that the kernel rejects for its flags before any lookup:
 * what every iommufd command pays (system call, dispatch, copy of the
 * command) plus the CAP_SYS_RAWIO check. The rest of a GET_PA is the IOAS,
 * the area, the domain and the table.
 */
static double time_get_pa_floor(uint64_t iova)
{
	struct iommu_ioas_noiommu_get_pa cmd = {
		.size = sizeof(cmd),
		.flags = 1,
		.ioas_id = c.ioas,
		.iova = iova,
		.length = PAGE,
	};
	double v[64];
	int r, i;

	for (r = 0; r < reps; r++) {
		double t = now_ns();

		for (i = 0; i < INNER; i++)
			if (ioctl(c.iommufd, IOMMU_IOAS_NOIOMMU_GET_PA, &cmd) != -1 ||
			    errno != EOPNOTSUPP)
				die("GET_PA with flags 1 is not EOPNOTSUPP");
		v[r] = (now_ns() - t) / INNER;
	}
	return median(v);
}

static double time_pagemap(void *va)
{
	double v[64];
	int r, i;

	for (r = 0; r < reps; r++) {
		double t = now_ns();

		for (i = 0; i < INNER; i++)
			pagemap_read(va);
		v[r] = (now_ns() - t) / INNER;
	}
	return median(v);
}

/* Walk [iova, iova + len) with GET_PA in as few calls as the answers allow */
static unsigned long get_pa_walk(uint64_t iova, uint64_t len)
{
	unsigned long calls = 0;
	uint64_t end = iova + len, l, pa;

	while (iova < end) {
		l = end - iova;
		check(get_pa(c.iommufd, c.ioas, iova, &l, &pa), "GET_PA walk");
		iova += l;
		calls++;
	}
	return calls;
}

static void pagemap_walk(uint8_t *buf, size_t len, size_t step)
{
	size_t off;

	for (off = 0; off < len; off += step)
		pagemap_read(buf + off);
}

/* us for the cdev setup and the legacy setup of one 64 MiB buffer */
static void bench_64m(const char *kind, uint8_t *buf, size_t step)
{
	double map[64], unmap[64], walk[64], cdev[64], lock[64], pm[64], leg[64];
	unsigned long calls = 0;
	char name[64];
	uint64_t iova;
	int r;

	for (r = 0; r < reps; r++) {
		double t0, t1, t2, t3;

		iova = 0;
		t0 = now_ns();
		check(ioas_map(c.iommufd, c.ioas, buf, BUF64M, &iova, false), "MAP 64M");
		t1 = now_ns();
		calls = get_pa_walk(iova, BUF64M);
		t2 = now_ns();
		check(ioas_unmap(c.iommufd, c.ioas, iova, BUF64M), "UNMAP 64M");
		t3 = now_ns();
		map[r] = (t1 - t0) / 1e3;
		walk[r] = (t2 - t1) / 1e3;
		unmap[r] = (t3 - t2) / 1e3;
		cdev[r] = (t2 - t0) / 1e3;

		/* Legacy: lock the buffer, read every page's PA from pagemap */
		t0 = now_ns();
		check(mlock(buf, BUF64M), "mlock");
		t1 = now_ns();
		pagemap_walk(buf, BUF64M, step);
		t2 = now_ns();
		check(munlock(buf, BUF64M), "munlock");
		lock[r] = (t1 - t0) / 1e3;
		pm[r] = (t2 - t1) / 1e3;
		leg[r] = (t2 - t0) / 1e3;
	}
#define R(fmt, arr, unit) \
	do { snprintf(name, sizeof(name), fmt, kind); \
	     report(name, median(arr), unit); } while (0)
	R("map_64m_%s", map, "us");
	R("unmap_64m_%s", unmap, "us");
	R("get_pa_walk_64m_%s", walk, "us");
	snprintf(name, sizeof(name), "get_pa_walk_64m_%s_calls", kind);
	report(name, calls, "calls");
	R("cdev_map_walk_64m_%s", cdev, "us");
	R("mlock_64m_%s", lock, "us");
	R("pagemap_walk_64m_%s", pm, "us");
	snprintf(name, sizeof(name), "pagemap_walk_64m_%s_reads", kind);
	report(name, BUF64M / step, "reads");
	R("legacy_mlock_walk_64m_%s", leg, "us");
#undef R
}

static long long iommu_pages(void)
{
	return vmstat("nr_iommu_pages");
}

static void shuffle(unsigned int *perm, unsigned int n, unsigned int seed)
{
	unsigned int i, j, t;

	for (i = 0; i < n; i++)
		perm[i] = i;
	srand(seed);
	for (i = n - 1; i > 0; i--) {
		j = rand() % (i + 1);
		t = perm[i];
		perm[i] = perm[j];
		perm[j] = t;
	}
}

/*
 * Table bytes per mapped 4 KiB page. The table is indexed by IOVA, so what
 * counts is how the IOVAs are spread, not the physical pages: 16384 pages
 * in random physical order at (a) 64 MiB of contiguous IOVAs, mapped in
 * random order (a DMA buffer), and (b) random IOVAs, one 4 KiB slot in 16
 * of a 1 GiB window (sparse use). After each, everything is unmapped and
 * the table must be back to its top page.
 */
static void bench_memory_scattered(uint8_t *buf)
{
	unsigned int *perm = calloc(NPAGES64M, sizeof(*perm));
	unsigned int *slot = calloc(16 * NPAGES64M, sizeof(*slot));
	uint64_t base = 1UL << 36, iova;
	long long before;
	unsigned int i;

	if (!perm || !slot)
		die("calloc");
	shuffle(perm, NPAGES64M, 1);
	shuffle(slot, 16 * NPAGES64M, 2);

	before = iommu_pages();
	for (i = 0; i < NPAGES64M; i++) {
		iova = base + (uint64_t)perm[(i * 7) % NPAGES64M] * PAGE;
		check(ioas_map(c.iommufd, c.ioas, buf + perm[i] * PAGE, PAGE,
			       &iova, true), "MAP scattered");
	}
	report("table_bytes_per_4k_scattered",
	       (double)(iommu_pages() - before) * PAGE / NPAGES64M, "B");
	check(ioas_unmap(c.iommufd, c.ioas, base, BUF64M), "UNMAP scattered");
	report("table_pages_left_scattered", iommu_pages() - before, "pages");

	for (i = 0; i < NPAGES64M; i++) {
		iova = base + (uint64_t)slot[i] * PAGE;
		check(ioas_map(c.iommufd, c.ioas, buf + perm[i] * PAGE, PAGE,
			       &iova, true), "MAP sparse");
	}
	report("table_bytes_per_4k_sparse_iova",
	       (double)(iommu_pages() - before) * PAGE / NPAGES64M, "B");
	check(ioas_unmap(c.iommufd, c.ioas, base, 16 * BUF64M), "UNMAP sparse");
	report("table_pages_left_sparse", iommu_pages() - before, "pages");
	free(slot);
	free(perm);
}

/* The same for 2 MiB pages: one 64 MiB mapping, then 64 of them (4 GiB) */
static void bench_memory_huge(uint8_t *huge)
{
	uint64_t base = 1UL << 40, iova;
	long long before;
	int i;

	before = iommu_pages();
	iova = base;
	check(ioas_map(c.iommufd, c.ioas, huge, BUF64M, &iova, true), "MAP huge");
	report("table_bytes_per_4k_huge_64m",
	       (double)(iommu_pages() - before) * PAGE / NPAGES64M, "B");
	for (i = 1; i < 64; i++) {
		iova = base + i * BUF64M;
		check(ioas_map(c.iommufd, c.ioas, huge, BUF64M, &iova, true),
		      "MAP huge x64");
	}
	report("table_bytes_per_4k_huge_4g",
	       (double)(iommu_pages() - before) * PAGE / (64 * NPAGES64M), "B");
	check(ioas_unmap(c.iommufd, c.ioas, base, 64 * BUF64M), "UNMAP huge");
}

static void group_node(char *path, size_t len)
{
	char link[PATH_MAX], target[PATH_MAX];
	ssize_t n;

	path[0] = 0;
	snprintf(link, sizeof(link), "/sys/bus/pci/devices/%s/iommu_group", bdf);
	n = readlink(link, target, sizeof(target) - 1);
	if (n < 0)
		return;
	target[n] = 0;
	snprintf(path, len, "/dev/vfio/noiommu-%s", strrchr(target, '/') + 1);
	if (access(path, F_OK))
		path[0] = 0;
}

static void bench_open(void)
{
	double cdev[64], group[64];
	char gpath[PATH_MAX];
	struct dev_ctx d;
	int r, g, k, fd;

	group_node(gpath, sizeof(gpath));
	for (r = 0; r < reps; r++) {
		double t = now_ns();

		check(dev_ctx_open(&d), "cdev open/bind/attach");
		dev_ctx_close(&d);
		cdev[r] = (now_ns() - t) / 1e3;

		if (!gpath[0])
			continue;
		t = now_ns();
		g = open(gpath, O_RDWR);
		k = open("/dev/vfio/vfio", O_RDWR);
		if (g < 0 || k < 0)
			die("group open");
		check(ioctl(g, VFIO_GROUP_SET_CONTAINER, &k), "SET_CONTAINER");
		check(ioctl(k, VFIO_SET_IOMMU, VFIO_NOIOMMU_IOMMU), "SET_IOMMU");
		fd = ioctl(g, VFIO_GROUP_GET_DEVICE_FD, bdf);
		if (fd < 0)
			die("GET_DEVICE_FD");
		close(fd);
		close(g);
		close(k);
		group[r] = (now_ns() - t) / 1e3;
	}
	report("open_to_ready_cdev", median(cdev), "us");
	if (gpath[0])
		report("open_to_ready_group", median(group), "us");
}

int main(int argc, char **argv)
{
	uint8_t *page, *buf4k, *huge64, *huge;
	uint64_t iova_page = 0, iova_huge = 0;

	if (argc < 2) {
		fprintf(stderr, "usage: %s BDF [REPS]\n", argv[0]);
		return 2;
	}
	bdf = argv[1];
	if (argc > 2)
		reps = atoi(argv[2]);
	if (reps < 1 || reps > 64)
		reps = 9;
	pagemap_fd = open("/proc/self/pagemap", O_RDONLY);
	if (pagemap_fd < 0)
		die("pagemap");
	/* 2 MiB pages, whatever the default huge page size */
	write_file("/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages", "48");
	page = alloc_buf(PAGE, false);
	buf4k = alloc_buf(BUF64M, false);
	huge = alloc_buf(HUGE, true);
	huge64 = alloc_buf(BUF64M, true);
	if (!page || !buf4k || !huge || !huge64)
		die("buffers (2 MiB pages: /sys/kernel/mm/hugepages/hugepages-2048kB)");
	check(dev_ctx_open(&c), "cdev open/bind/attach");
	{
		/* The step the clock really moves by (clock_getres() tells the
		 * timer resolution, not this)
		 */
		double t0 = now_ns(), t1;

		do
			t1 = now_ns();
		while (t1 == t0);
		printf("# clock resolution %.0f ns\n", t1 - t0);
	}
	printf("# noiommu_bench: %d repetitions per figure, median reported\n",
	       reps);
	report("page_size", PAGE, "B");

	/* 1. GET_PA against pagemap */
	check(ioas_map(c.iommufd, c.ioas, page, PAGE, &iova_page, false), "MAP");
	check(ioas_map(c.iommufd, c.ioas, huge, HUGE, &iova_huge, false), "MAP");
	report("get_pa_4k", time_get_pa(iova_page, PAGE), "ns");
	report("get_pa_2m", time_get_pa(iova_huge, HUGE), "ns");
	report("get_pa_floor", time_get_pa_floor(iova_page), "ns");
	report("pagemap_pread_4k", time_pagemap(page), "ns");

	/* 2. 64 MiB: MAP + GET_PA walk + UNMAP against mlock + pagemap */
	bench_64m("4k", buf4k, PAGE);
	bench_64m("2m", huge64, HUGE);
	/* DPDK reads one entry per huge page; per 4 KiB page for reference */
	{
		double v[64];
		int r;

		for (r = 0; r < reps; r++) {
			double t = now_ns();

			pagemap_walk(huge64, BUF64M, PAGE);
			v[r] = (now_ns() - t) / 1e3;
		}
		report("pagemap_walk_64m_2m_per_4k", median(v), "us");
	}

	/* 4. Memory of the table */
	bench_memory_scattered(buf4k);
	bench_memory_huge(huge64);

	dev_ctx_close(&c);
	/* 3. Open to ready, both paths */
	bench_open();
	printf("# noiommu_bench: done\n");
	return 0;
}
