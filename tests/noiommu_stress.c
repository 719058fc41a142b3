// SPDX-License-Identifier: GPL-2.0-only
/*
 * Reliability of VFIO no-IOMMU through the device cdev and iommufd, on the
 * edu device: fault injection, a seeded ioctl fuzzer, races, SIGKILL, sysfs
 * unbind while the device is held, and the no-IOMMU mode switched off.
 * After every scenario the pins are given back, the process's pinned
 * memory is where it started, and the device still does a verified DMA
 * round trip (plus a kmemleak scan with STRESS_KMEMLEAK=1).
 *
 *   noiommu_stress BDF [harness options]
 *
 * Sizes come from the environment: STRESS_SEED (default 1), FUZZ_CALLS
 * (default 10000), RACE_ITERS per thread (default 200), KILL_ROUNDS
 * (default 4).  make check runs the defaults, make stress the long runs.
 */
#define _GNU_SOURCE
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <linux/capability.h>

#include "kselftest_harness.h"
#include "vfio_edu.h"

static unsigned long env_ul(const char *name, unsigned long def)
{
	const char *v = getenv(name);

	return v && *v ? strtoul(v, NULL, 0) : def;
}

/* xorshift64*: the fuzzer's only source of randomness */
static uint64_t rnd_state;

static uint64_t rnd(void)
{
	rnd_state ^= rnd_state >> 12;
	rnd_state ^= rnd_state << 25;
	rnd_state ^= rnd_state >> 27;
	return rnd_state * 2685821657736338717ULL;
}

static uint64_t rnd_below(uint64_t n)
{
	return n ? rnd() % n : 0;
}

static bool kmemleak_each;

/* Only for the timeout: the long runs take far more than the default 30 s */
FIXTURE(stress) {};
FIXTURE_SETUP(stress) {}
FIXTURE_TEARDOWN(stress) {}
#define STRESS_TEST(name) TEST_F_TIMEOUT(stress, name, 3600)

/*
 * New unreferenced objects since the last call (kmemleak needs 5 s), or -1
 * when kmemleak cannot scan: no debugfs file, or kmemleak switched itself
 * off (the scan write then fails). Asked for, it must work.
 */
static int kmemleak_new(void)
{
	static int seen;
	char line[256];
	int n = 0, diff;
	FILE *f;

	if (write_file("/sys/kernel/debug/kmemleak", "scan"))
		return -1;
	sleep(6);
	if (write_file("/sys/kernel/debug/kmemleak", "scan"))
		return -1;
	f = fopen("/sys/kernel/debug/kmemleak", "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		n += !strncmp(line, "unreferenced object", 19);
	if (ferror(f)) {
		fclose(f);
		return -1;
	}
	fclose(f);
	diff = n - seen;
	seen = n;
	return diff;
}

/* One verified DMA round trip on a fresh open, bind and attach */
static bool device_works(void)
{
	struct dev_ctx c;
	struct edu edu = {};
	uint64_t iova = 0, pa, len = PAGE;
	uint8_t *buf = alloc_buf(PAGE, false);
	bool ok = false;

	if (!buf)
		return false;
	if (dev_ctx_open(&c))
		goto out_buf;
	if (edu_open(&edu, c.devfd) ||
	    ioas_map(c.iommufd, c.ioas, buf, PAGE, &iova, false) ||
	    get_pa(c.iommufd, c.ioas, iova, &len, &pa))
		goto out;
	ok = pa == pagemap_pa(buf) &&
	     edu_round_trip(&edu, buf, pa, buf + 2048, pa + 2048, 7);
out:
	edu_close(&edu);
	dev_ctx_close(&c);
out_buf:
	munmap(buf, PAGE);
	return ok;
}

struct baseline {
	long long pins;
	long long vm_pinned;
};

static void baseline_take(struct baseline *b)
{
	b->pins = pins_held();
	b->vm_pinned = vm_pinned_kb();
}

/* Nothing lost: pins, pinned-memory accounting, the device, kmemleak */
#define EXPECT_NOTHING_LOST(b)                                  \
	do {                                                    \
		EXPECT_EQ((b)->pins, pins_held());              \
		EXPECT_EQ((b)->vm_pinned, vm_pinned_kb());      \
		EXPECT_TRUE(device_works());                    \
		if (kmemleak_each)                              \
			EXPECT_EQ(0, kmemleak_new());           \
	} while (0)

/*
 * The whole no-IOMMU life cycle on the real device, syscalls only (the
 * buffers are populated beforehand): open, bind, attach, map 4K pages and
 * a huge page, GET_PA, copy, replace, detach, re-attach, unmap, close.
 * Returns 0 or the errno of the first step that failed; always closes.
 */
static char seq_path[PATH_MAX];

static int vfio_sequence(uint8_t *buf, uint8_t *huge)
{
	struct dev_ctx c;
	uint64_t iova = 0, hiova = 0, pa, len;
	uint32_t ioas2, pt;
	int err = 0;

	if (dev_ctx_open_path(&c, seq_path))
		return errno;
	if (ioas_map(c.iommufd, c.ioas, buf, 4 * PAGE, &iova, false))
		goto fail;
	if (huge && ioas_map(c.iommufd, c.ioas, huge, HUGE, &hiova, false))
		goto fail;
	len = 4 * PAGE;
	if (get_pa(c.iommufd, c.ioas, iova + PAGE, &len, &pa))
		goto fail;
	if (ioas_alloc(c.iommufd, &ioas2) ||
	    ioas_copy(c.iommufd, ioas2, 1UL << 32, c.ioas, iova, 4 * PAGE))
		goto fail;
	pt = ioas2;
	if (device_attach(c.devfd, &pt))
		goto fail;
	len = PAGE;
	if (get_pa(c.iommufd, ioas2, (1UL << 32) + PAGE, &len, &pa))
		goto fail;
	if (device_detach(c.devfd))
		goto fail;
	pt = c.ioas;
	if (device_attach(c.devfd, &pt))
		goto fail;
	len = HUGE;
	if (huge && get_pa(c.iommufd, c.ioas, hiova, &len, &pa))
		goto fail;
	if (ioas_unmap(c.iommufd, c.ioas, iova, 4 * PAGE) ||
	    iommufd_destroy(c.iommufd, ioas2))
		goto fail;
	dev_ctx_close(&c);
	return 0;
fail:
	err = errno;
	dev_ctx_close(&c);
	return err ? err : EIO;
}

static void quiet_fault_injection(void)
{
	struct dirent *de;
	char path[PATH_MAX];
	DIR *d;

	write_file("/sys/kernel/debug/failslab/ignore-gfp-wait", "N");
	write_file("/sys/kernel/debug/fail_page_alloc/ignore-gfp-wait", "N");
	write_file("/sys/kernel/debug/fail_page_alloc/ignore-gfp-highmem", "N");
	d = opendir("/sys/kernel/debug");
	if (!d)
		return;
	while ((de = readdir(d)))
		if (!strncmp(de->d_name, "fail", 4)) {
			snprintf(path, sizeof(path), "/sys/kernel/debug/%s/verbose",
				 de->d_name);
			write_file(path, "0");
		}
	closedir(d);
}

/* 1. Fail the 1st, 2nd, ... allocation of the sequence until it succeeds */
STRESS_TEST(fail_nth_vfio_sequence)
{
	unsigned int nth, injected = 0, errs[256] = {};
	uint8_t *buf = alloc_buf(4 * PAGE, false);
	uint8_t *huge = alloc_buf(HUGE, true);
	struct baseline b;
	char path[64], val[32];
	int nth_fd, rc = 0;
	ssize_t n;

	if (access("/sys/kernel/debug/failslab", F_OK))
		SKIP(return, "no failslab (CONFIG_FAILSLAB=n)");
	ASSERT_NE(NULL, buf);
	cdev_path(seq_path, sizeof(seq_path));
	if (!seq_path[0])
		SKIP(return, "no device cdev");
	quiet_fault_injection();
	/* Reach every lazily allocated kernel state once before counting */
	ASSERT_EQ(0, vfio_sequence(buf, huge));
	baseline_take(&b);
	snprintf(path, sizeof(path), "/proc/self/task/%ld/fail-nth",
		 (long)syscall(SYS_gettid));
	nth_fd = open(path, O_RDWR);
	ASSERT_LE(0, nth_fd);
	for (nth = 1; nth < 2000; nth++) {
		snprintf(val, sizeof(val), "%u", nth);
		ASSERT_LT(0, pwrite(nth_fd, val, strlen(val), 0));
		rc = vfio_sequence(buf, huge);
		/* fail-nth reads 0 once the failure was injected */
		n = pread(nth_fd, val, sizeof(val) - 1, 0);
		ASSERT_LT(0, pwrite(nth_fd, "0", 1, 0));
		if (n < 0)
			n = snprintf(val, sizeof(val), "1");
		val[n] = 0;
		if (atoi(val)) {
			EXPECT_EQ(0, rc);
			break;
		}
		injected++;
		errs[rc & 255]++;
		/* Whatever failed, nothing stays pinned or charged */
		ASSERT_EQ(b.pins, pins_held());
		ASSERT_EQ(b.vm_pinned, vm_pinned_kb());
	}
	close(nth_fd);
	EXPECT_LT(nth, 2000);
	TH_LOG("%u failure points injected: %u ENOMEM, %u other errno, %u absorbed by a fallback (the sequence succeeded); huge page %s",
	       injected, errs[ENOMEM], injected - errs[ENOMEM] - errs[0],
	       errs[0], huge ? "used" : "unavailable");
	/* An injected failure that was swallowed must still end in success */
	EXPECT_LT(10, injected);
	EXPECT_EQ(0, vfio_sequence(buf, huge));
	EXPECT_NOTHING_LOST(&b);
	munmap(buf, 4 * PAGE);
	if (huge)
		munmap(huge, HUGE);
}

/*
 * 2. Fuzzer. Seeded random ioctls on the iommufd and on the device fd (every
 * iommufd command number, bind/attach/detach/info; random sizes, flags, ids,
 * IOVAs and lengths around the edges, bad pointers, random closes and
 * re-opens), and every one of them judged against a model of what the
 * kernel must answer (struct model, below): which objects each iommufd
 * context holds (IOASes with their mappings, allowed ranges, options and
 * software tables, HWPTs, the device, fault queues), the device's binding
 * and attachment, and the iopt_pages behind the mappings. The rules are
 * SPEC.md 6 and iommufd's own code of 6.12 with the series, check by check
 * in the kernel's order:
 *  - the argument: a command number outside the table is ENOTTY; a bad
 *    pointer EFAULT; a size below the command's minimum EINVAL, above its
 *    struct with non-zero bytes after it E2BIG (the argument sits FZ_ARG
 *    bytes before a guard page, so a size past it is EFAULT);
 *  - object IDs are the lowest free ones from 1 (the xarray); DESTROY is
 *    EBUSY for the device, an attached HWPT and an IOAS with a HWPT;
 *  - MAP and COPY: EOPNOTSUPP, EOVERFLOW, EINVAL, ENOENT, EEXIST, EPERM
 *    where due, the IOVA iopt_alloc_iova() picks (allowed ranges, the
 *    alignment of the user address, the offset in the page), the 4 KiB
 *    alignment a table imposes, and EFAULT only when a table pins memory
 *    that is not there (the buffers sit between inaccessible guards);
 *  - UNMAP: ENOENT for nothing or for a mapping sticking out, after the
 *    ones before it were removed; the bytes unmapped;
 *  - GET_PA: EOPNOTSUPP, EINVAL, EOVERFLOW, ENOENT (no IOAS, nothing
 *    mapped), EOPNOTSUPP (no software table), else out_phys equal to
 *    pagemap's address of that byte (offset in the page included) and the
 *    length of the physically contiguous run, cut at the input length and
 *    at the end of the mapping;
 *  - attach and IOMMU_HWPT_ALLOC: the HWPT ID, EADDRINUSE for unaligned
 *    mappings, EFAULT for mappings of memory that is not there; the other
 *    commands (IOVA ranges, options, VFIO compat IOAS, dirty tracking,
 *    invalidate, fault queues, hardware info) likewise.
 * Besides, every new mapping (MAP or COPY destination) is walked with
 * GET_PA where a table is (else must answer EOPNOTSUPP), every unmapped one
 * must answer ENOENT, attaching walks the IOAS's mappings, and every
 * FZ_PINS_EVERY calls the pins held must be what the model's mappings need.
 * Where the model cannot know (a pointer into memory the fuzzer does not
 * own) it allows the set of answers (success or EFAULT) and follows the
 * kernel's. Only IOMMU_TEST_CMD (the selftest ops, on CONFIG_IOMMUFD_TEST
 * kernels) is not judged: when one succeeds, both fds are closed and
 * reopened and the model starts over. A mismatch stops the run with the
 * seed, the call number, the call, the model and a replay line.
 */
#define FZ_BUFS		4
#define FZ_IDS		16
#define FZ_ARG		256	/* argument bytes, followed by a guard page */
#define FZ_PINS_EVERY	250	/* calls between checks of the pins */
#define FZ_WALK_MAX	64	/* GET_PA calls of one walk at most */

#ifndef offsetofend
#define offsetofend(T, m)	(offsetof(T, m) + sizeof(((T *)0)->m))
#endif

typedef unsigned long long ull;

#define M_TASK_TOP	0x00007ffffffff000ULL	/* x86_64 TASK_SIZE_MAX */
#define M_SYZ		(1U << 16)	/* MOCK_FLAGS_ACCESS_SYZ, iommufd_test.h */
#define M_BASE_NR	0x80		/* IOMMUFD_CMD_BASE */
#define M_LAST_NR	0x95		/* IOMMUFD_CMD_IOAS_NOIOMMU_GET_PA */
#define M_TEST_NR	(M_BASE_NR + 32)	/* IOMMU_TEST_CMD */
#define M_RW		(IOMMU_IOAS_MAP_WRITEABLE | IOMMU_IOAS_MAP_READABLE)
#define M_MAP_FLAGS	(M_RW | IOMMU_IOAS_MAP_FIXED_IOVA)
#define M_INVAL_MAX	(1U << 19)	/* IOMMU_HWPT_INVALIDATE_ENTRY_NUM_MAX */

enum { MO_ANY = -1, MO_FREE, MO_IOAS, MO_HWPT, MO_DEVICE, MO_FAULT };
static const char *const mo_names[] = { "free", "IOAS", "HWPT", "device",
					"fault queue" };

struct m_area {			/* a mapping (iopt_area) */
	uint64_t iova, len;	/* len >= 1 */
	uint64_t va;		/* the user address of its first byte */
	int pages;		/* the iopt_pages it is part of */
};

struct m_range {
	uint64_t start, last;
};

struct m_pages {		/* an iopt_pages: made by MAP, shared by COPY */
	uint64_t base;		/* user address of its first page */
	bool writable;
	int refs;		/* mappings on it; 0: free slot */
};

struct m_obj {
	int type;
	/* IOAS */
	struct m_area *areas;	/* sorted by IOVA */
	int nareas, cap;
	struct m_range *allowed;	/* IOMMU_IOAS_ALLOW_IOVAS */
	int nallowed;
	bool nolarge;		/* IOMMU_OPTION_HUGE_PAGES 0 */
	int ntables;		/* HWPTs on it, each a software table */
	/* HWPT */
	uint32_t ioas;
	bool autod;		/* made by attaching the device to the IOAS */
};

struct m_ctx {			/* an iommufd_ctx */
	bool live, fd;		/* exists; our /dev/iommu fd is on it */
	struct m_obj *obj;	/* by ID */
	uint32_t nobj;
	uint32_t vfio_ioas;	/* IOMMU_VFIO_IOAS */
	bool account_mm;	/* IOMMU_OPTION_RLIMIT_MODE */
};

#define M_CTXS	3

struct model {
	struct m_ctx ctx[M_CTXS];
	int cur;		/* the context of fz->iommufd */
	int dev_ctx;		/* the one the device file is bound to, or -1 */
	uint32_t devid, dev_pt;	/* dev_pt: the HWPT attached, or 0 */
	struct m_pages *pages;
	int npages;
};

struct fz_mem {			/* a buffer: valid; the rest of its reservation: not */
	uint64_t start, len, res, res_len;
};

struct fuzz {
	struct __test_metadata *md;
	int iommufd, devfd;
	char path[PATH_MAX];
	uint32_t ids[FZ_IDS];
	uint64_t iovas[FZ_IDS];	/* IOVAs that MAP and COPY handed out */
	unsigned int nids, niovas;
	uint32_t dev_ioas;	/* the IOAS the device was last attached to */
	uint64_t setup_iova, setup_len;	/* what fuzz_setup() mapped there */
	uint8_t *buf[FZ_BUFS];
	size_t buf_len[FZ_BUFS];
	uint8_t *scratch;
	struct fz_mem mem[FZ_BUFS + 1];
	void *arg;		/* FZ_ARG bytes before a guard page */
	struct model m;
	unsigned long seed;
	bool has_test, thp, failed;
	char call[640];		/* the call being judged, for the report */
	long long pins0;
	unsigned long calls, ok, reopens, resyncs;
	unsigned long exact, sets, unjudged;	/* judgments */
	unsigned long pa_checks, walks, probes, ids_checked, pins_checks;
	unsigned long maps, copies, copies_walked, tables, fill_errs, partial;
	unsigned long errnos[256];
};

static const char *errname(int err)
{
	static char other[4][24];
	static unsigned int n;

	switch (err) {
	case 0: return "success";
	case EPERM: return "EPERM";
	case ENOENT: return "ENOENT";
	case EBADF: return "EBADF";
	case ENOMEM: return "ENOMEM";
	case EFAULT: return "EFAULT";
	case EBUSY: return "EBUSY";
	case EEXIST: return "EEXIST";
	case ENODEV: return "ENODEV";
	case EINVAL: return "EINVAL";
	case ENOTTY: return "ENOTTY";
	case ENOSPC: return "ENOSPC";
	case E2BIG: return "E2BIG";
	case EOVERFLOW: return "EOVERFLOW";
	case EBADFD: return "EBADFD";
	case EMSGSIZE: return "EMSGSIZE";
	case EOPNOTSUPP: return "EOPNOTSUPP";
	case EADDRINUSE: return "EADDRINUSE";
	}
	snprintf(other[n % 4], sizeof(other[0]), "errno %d", err);
	return other[n++ % 4];
}

static void m_dump(struct fuzz *fz);

/* The first mismatch: seed, call, what differs, the model; stops the run */
static void __attribute__((format(printf, 2, 3)))
fz_fail(struct fuzz *fz, const char *fmt, ...)
{
	struct __test_metadata *_metadata = fz->md;
	char msg[512];
	va_list ap;

	if (fz->failed)
		return;
	fz->failed = true;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "# MISMATCH seed %lu call %lu\n#   call: %s\n#   %s\n",
		fz->seed, fz->calls, fz->call, msg);
	fprintf(stderr, "#   replay: STRESS_SEED=%lu FUZZ_CALLS=%lu ./noiommu_stress BDF -t fuzz\n",
		fz->seed, fz->calls + 1);
	m_dump(fz);
	EXPECT_TRUE(false) {
		TH_LOG("fuzz seed %lu call %lu: %s: %s", fz->seed, fz->calls,
		       fz->call, msg);
	}
}

/* The answer against the model's: @want, or @alt when that is >= 0 */
static int fz_judge(struct fuzz *fz, int got, int want, int alt)
{
	if (got == want || (alt >= 0 && got == alt)) {
		if (alt >= 0 && alt != want)
			fz->sets++;
		else
			fz->exact++;
	} else if (alt >= 0 && alt != want) {
		fz_fail(fz, "expected %s or %s, got %s", errname(want),
			errname(alt), errname(got));
	} else {
		fz_fail(fz, "expected %s, got %s", errname(want),
			errname(got));
	}
	return got;
}

static int fz_call(struct fuzz *fz, int fd, unsigned long req, void *arg,
		   int want, int alt)
{
	int got = ioctl(fd, req, arg) ? errno : 0;

	return fz_judge(fz, got, want, alt);
}

static void fz_check_val(struct fuzz *fz, const char *what, uint64_t got,
			 uint64_t want)
{
	if (got != want)
		fz_fail(fz, "%s: expected %#llx, got %#llx", what, (ull)want,
			(ull)got);
	fz->ids_checked++;
}

/* The model: objects */

static struct m_obj *m_get(struct m_ctx *x, uint32_t id, int type)
{
	struct m_obj *o;

	if (!x->live || id >= x->nobj)
		return NULL;
	o = &x->obj[id];
	if (o->type == MO_FREE || (type != MO_ANY && o->type != type))
		return NULL;
	return o;
}

static bool m_empty(struct m_ctx *x)
{
	uint32_t id;

	for (id = 0; id < x->nobj; id++)
		if (x->obj[id].type != MO_FREE)
			return false;
	return true;
}

/* xa_alloc() with XA_FLAGS_ALLOC1: the lowest free ID from 1 */
static uint32_t m_free_id(struct m_ctx *x)
{
	uint32_t id = 1;

	while (id < x->nobj && x->obj[id].type != MO_FREE)
		id++;
	return id;
}

/* A new object at @id; pointers into x->obj are stale afterwards */
static struct m_obj *m_new(struct m_ctx *x, uint32_t id, int type)
{
	uint32_t n;

	if (id >= x->nobj) {
		for (n = x->nobj ? x->nobj : 64; n <= id; n *= 2)
			;
		x->obj = realloc(x->obj, n * sizeof(*x->obj));
		if (!x->obj)
			abort();
		memset(x->obj + x->nobj, 0, (n - x->nobj) * sizeof(*x->obj));
		x->nobj = n;
	}
	memset(&x->obj[id], 0, sizeof(x->obj[id]));
	x->obj[id].type = type;
	return &x->obj[id];
}

static int m_pages_new(struct fuzz *fz, uint64_t uptr, bool writable)
{
	struct model *m = &fz->m;
	int p;

	for (p = 0; p < m->npages && m->pages[p].refs; p++)
		;
	if (p == m->npages) {
		m->pages = realloc(m->pages, (m->npages + 64) * sizeof(*m->pages));
		if (!m->pages)
			abort();
		memset(m->pages + m->npages, 0, 64 * sizeof(*m->pages));
		m->npages += 64;
	}
	m->pages[p] = (struct m_pages){ .base = uptr & ~(PAGE - 1),
					.writable = writable };
	return p;	/* free again unless a mapping is added on it */
}

static uint64_t a_last(const struct m_area *a)
{
	return a->iova + (a->len - 1);
}

/* The first mapping whose last byte is at or after @iova (or nareas) */
static int m_first_from(struct m_obj *io, uint64_t iova)
{
	int lo = 0, hi = io->nareas;

	while (lo < hi) {
		int mid = (lo + hi) / 2;

		if (a_last(&io->areas[mid]) < iova)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* The mapping holding @iova, or -1 */
static int m_area_at(struct m_obj *io, uint64_t iova)
{
	int k = m_first_from(io, iova);

	return k < io->nareas && io->areas[k].iova <= iova ? k : -1;
}

static bool m_overlaps(struct m_obj *io, uint64_t first, uint64_t last)
{
	int k = m_first_from(io, first);

	return k < io->nareas && io->areas[k].iova <= last;
}

static void m_area_add(struct fuzz *fz, struct m_obj *io, uint64_t iova,
		       uint64_t len, uint64_t va, int p)
{
	int k = m_first_from(io, iova);

	if (io->nareas == io->cap) {
		io->cap = io->cap ? 2 * io->cap : 8;
		io->areas = realloc(io->areas, io->cap * sizeof(*io->areas));
		if (!io->areas)
			abort();
	}
	memmove(&io->areas[k + 1], &io->areas[k],
		(io->nareas - k) * sizeof(*io->areas));
	io->areas[k] = (struct m_area){ .iova = iova, .len = len, .va = va,
					.pages = p };
	io->nareas++;
	fz->m.pages[p].refs++;
}

static void m_area_del(struct fuzz *fz, struct m_obj *io, int k)
{
	fz->m.pages[io->areas[k].pages].refs--;
	memmove(&io->areas[k], &io->areas[k + 1],
		(io->nareas - k - 1) * sizeof(*io->areas));
	io->nareas--;
}

/* iopt->iova_alignment: a table's 4 KiB page, or large pages disabled */
static uint64_t m_align(struct m_obj *io)
{
	return io->ntables || io->nolarge ? PAGE : 1;
}

static void m_obj_free(struct fuzz *fz, struct m_ctx *x, uint32_t id)
{
	struct m_obj *o = &x->obj[id], *io;

	if (o->type == MO_IOAS) {
		while (o->nareas)
			m_area_del(fz, o, o->nareas - 1);
		free(o->areas);
		free(o->allowed);
		if (x->vfio_ioas == id)
			x->vfio_ioas = 0;
	} else if (o->type == MO_HWPT) {
		io = m_get(x, o->ioas, MO_IOAS);
		if (io)
			io->ntables--;
	}
	memset(o, 0, sizeof(*o));
}

static int m_ctx_open(struct fuzz *fz)
{
	int c;

	for (c = 0; c < M_CTXS && fz->m.ctx[c].live; c++)
		;
	if (c == M_CTXS)
		abort();	/* at most the current one and the device's */
	memset(&fz->m.ctx[c], 0, sizeof(fz->m.ctx[c]));
	fz->m.ctx[c].live = fz->m.ctx[c].fd = true;
	return c;
}

/* iommufd_fops_release(): every object goes, every mapping with it */
static void m_ctx_free(struct fuzz *fz, int c)
{
	struct m_ctx *x = &fz->m.ctx[c];
	uint32_t id;

	for (id = 0; id < x->nobj; id++)
		if (x->obj[id].type == MO_IOAS)
			m_obj_free(fz, x, id);
	free(x->obj);
	memset(x, 0, sizeof(*x));
}

/* Detach: an automatic HWPT goes with it */
static void m_dev_detach(struct fuzz *fz)
{
	struct model *m = &fz->m;
	struct m_ctx *x;
	struct m_obj *h;

	if (m->dev_ctx < 0 || !m->dev_pt)
		return;
	x = &m->ctx[m->dev_ctx];
	h = m_get(x, m->dev_pt, MO_HWPT);
	if (h && h->autod)
		m_obj_free(fz, x, m->dev_pt);
	m->dev_pt = 0;
}

/* close() of the device fd: unbind; a context no fd holds goes */
static void m_dev_close(struct fuzz *fz)
{
	struct model *m = &fz->m;
	int c = m->dev_ctx;

	if (c < 0)
		return;
	m_dev_detach(fz);
	m_obj_free(fz, &m->ctx[c], m->devid);
	m->dev_ctx = -1;
	m->devid = 0;
	if (!m->ctx[c].fd)
		m_ctx_free(fz, c);
}

/* close() of the iommufd and a new open(): the device keeps the old one */
static void m_iommufd_reopen(struct fuzz *fz)
{
	struct model *m = &fz->m;

	m->ctx[m->cur].fd = false;
	if (m->dev_ctx != m->cur)
		m_ctx_free(fz, m->cur);
	m->cur = m_ctx_open(fz);
}

struct m_pin {
	int pages;
	uint64_t first, last;	/* pages of it */
};

static int m_pin_cmp(const void *pa, const void *pb)
{
	const struct m_pin *a = pa, *b = pb;

	if (a->pages != b->pages)
		return a->pages < b->pages ? -1 : 1;
	return a->first < b->first ? -1 : a->first > b->first;
}

/*
 * The pins iommufd must hold (pages.c): each 4 KiB page of an iopt_pages
 * once while a mapping on it that covers the page is in an IOAS with a
 * table (see noiommu_history.c).
 */
static long long m_pins(struct fuzz *fz)
{
	struct m_pin *v = NULL;
	long long total = 0;
	size_t n = 0, cap = 0, i;
	uint64_t last = 0;
	int c, k, p = -1;
	uint32_t id;

	for (c = 0; c < M_CTXS; c++) {
		struct m_ctx *x = &fz->m.ctx[c];

		for (id = 0; x->live && id < x->nobj; id++) {
			struct m_obj *io = &x->obj[id];

			if (io->type != MO_IOAS || !io->ntables)
				continue;
			for (k = 0; k < io->nareas; k++) {
				struct m_area *a = &io->areas[k];
				uint64_t base = fz->m.pages[a->pages].base;

				if (n == cap) {
					cap = cap ? 2 * cap : 64;
					v = realloc(v, cap * sizeof(*v));
					if (!v)
						abort();
				}
				v[n++] = (struct m_pin){
					.pages = a->pages,
					.first = (a->va - base) / PAGE,
					.last = (a_last(a) - a->iova + a->va - base) / PAGE,
				};
			}
		}
	}
	qsort(v, n, sizeof(*v), m_pin_cmp);
	for (i = 0; i < n; i++) {
		if (v[i].pages != p || v[i].first > last) {
			total += v[i].last - v[i].first + 1;
			p = v[i].pages;
			last = v[i].last;
		} else if (v[i].last > last) {
			total += v[i].last - last;
			last = v[i].last;
		}
	}
	free(v);
	return total;
}

/* The model: memory */

enum { MEM_OK, MEM_BAD, MEM_UNKNOWN };

static bool m_vma_at(uint64_t p)
{
	unsigned long long s, e;
	char line[512];
	bool found = false;
	FILE *f = fopen("/proc/self/maps", "r");

	while (f && !found && fgets(line, sizeof(line), f))
		found = sscanf(line, "%llx-%llx", &s, &e) == 2 && s <= p &&
			p < e;
	if (f)
		fclose(f);
	return found;
}

/*
 * Can FOLL_LONGTERM pin the page at @p? Our buffers: yes (*ok_last: the
 * buffer's last byte); their guards, kernel addresses, holes: no (EFAULT);
 * memory of the process that is not ours: unknown.
 */
static int m_page_kind(struct fuzz *fz, uint64_t p, uint64_t *ok_last)
{
	int i;

	for (i = 0; i < FZ_BUFS + 1; i++) {
		struct fz_mem *r = &fz->mem[i];

		if (p >= r->start && p - r->start < r->len) {
			*ok_last = r->start + r->len - 1;
			return MEM_OK;
		}
		if (p >= r->res && p - r->res < r->res_len)
			return MEM_BAD;
	}
	if (p >= M_TASK_TOP)
		return MEM_BAD;
	return m_vma_at(p) ? MEM_UNKNOWN : MEM_BAD;
}

/* The pages of [va, va + len) pinned in order: the first that is not ours */
static int m_mem(struct fuzz *fz, uint64_t va, uint64_t len)
{
	uint64_t p = va & ~(PAGE - 1), last = va + (len - 1), ok_last = 0;
	int kind;

	for (;;) {
		kind = m_page_kind(fz, p, &ok_last);
		if (kind != MEM_OK || ok_last >= last)
			return kind;
		p = ok_last + 1;
	}
}

/* The errno pinning [va, va + len) must give: EFAULT, or 0 (*alt: EFAULT too) */
static int m_mem_errno(struct fuzz *fz, uint64_t va, uint64_t len, int *alt)
{
	int kind = m_mem(fz, va, len);

	if (kind == MEM_UNKNOWN)
		*alt = EFAULT;
	return kind == MEM_BAD ? EFAULT : 0;
}

/*
 * copy_from_user() and copy_to_user() of @n bytes at @p: do they fault?
 * Every byte must be in a VMA with that permission (/proc/self/maps).
 */
static bool u_access(uint64_t p, size_t n, bool write)
{
	unsigned long long s, e;
	char line[512], perm[8];
	uint64_t cur = p, last = p + (n - 1);
	bool progress = true;
	FILE *f;

	if (!n)
		return true;
	if (last < p || last >= M_TASK_TOP)
		return false;
	/* The VMAs come sorted: one pass, each must continue the range */
	f = fopen("/proc/self/maps", "r");
	while (f && progress && fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%llx-%llx %7s", &s, &e, perm) != 3 || e <= cur)
			continue;
		if (s > cur || perm[write ? 1 : 0] == '-') {
			progress = false;
			break;
		}
		if (e - 1 >= last) {
			fclose(f);
			return true;
		}
		cur = e;
	}
	if (f)
		fclose(f);
	return false;
}

static bool u_read(void *dst, uint64_t src, size_t n)
{
	if (!u_access(src, n, false))
		return false;
	memcpy(dst, (void *)(uintptr_t)src, n);
	return true;
}

static bool u_writable(uint64_t dst, size_t n)
{
	return u_access(dst, n, true);
}

/*
 * What GET_PA must answer for the byte at @va: its physical address from
 * pagemap and the physically contiguous bytes from there, at most @limit
 */
static void m_pa_run(uint64_t va, uint64_t limit, uint64_t *pa, uint64_t *len)
{
	static int fd = -1;
	const uint64_t pfn_mask = (1ULL << 55) - 1;
	uint64_t ent[64], page = va / PAGE, run = PAGE - va % PAGE, prev;
	ssize_t n;
	int i = 1;

	if (fd < 0)
		fd = open("/proc/self/pagemap", O_RDONLY);
	*pa = *len = 0;
	n = pread(fd, ent, sizeof(ent), page * 8) / 8;
	if (n < 1 || !(ent[0] >> 63))
		return;
	*pa = (ent[0] & pfn_mask) * PAGE + va % PAGE;
	prev = ent[0] & pfn_mask;
	while (run < limit) {
		if (i == n) {
			page += n;
			n = pread(fd, ent, sizeof(ent), page * 8) / 8;
			i = 0;
			if (n < 1)
				break;
		}
		if (!(ent[i] >> 63) || (ent[i] & pfn_mask) != prev + 1)
			break;
		prev = ent[i++] & pfn_mask;
		run += PAGE;
	}
	*len = run < limit ? run : limit;
}

/*
 * iopt_table_add_domain() of a new software table on @io: the alignment
 * check of every mapping, then each one pinned in IOVA order. *alt is
 * EFAULT when memory of unknown kind decides.
 */
static int m_fill(struct fuzz *fz, struct m_obj *io, int *alt)
{
	int k;

	*alt = -1;
	if (m_align(io) != PAGE)
		for (k = 0; k < io->nareas; k++)
			if (io->areas[k].iova % PAGE ||
			    io->areas[k].len % PAGE || io->areas[k].va % PAGE)
				return EADDRINUSE;
	for (k = 0; k < io->nareas; k++)
		if (m_mem_errno(fz, io->areas[k].va, io->areas[k].len, alt))
			return EFAULT;
	return 0;
}

/* __alloc_iova_check_range() */
static bool m_fits(uint64_t *start, uint64_t last, uint64_t length,
		   uint64_t align, uint64_t page_offset)
{
	uint64_t a;

	if (*start + (align - 1) < *start)
		return false;
	a = ((*start + (align - 1)) & ~(align - 1)) | page_offset;
	if (a >= last || last - a < length - 1)
		return false;
	*start = a;
	return true;
}

static int m_range_cmp(const void *pa, const void *pb)
{
	const struct m_range *a = pa, *b = pb;

	return a->start < b->start ? -1 : a->start > b->start;
}

/*
 * iopt_alloc_iova(): the first hole of the mappings, inside the allowed
 * spans (merged where they touch, within [4 KiB, ULONG_MAX - 4 KiB]), where
 * the length fits at an IOVA aligned to min(roundup_pow_of_two(length), the
 * alignment of the user address, 2 MiB with THP else 4 KiB) with the user
 * address's offset in the page.
 */
static int m_alloc_iova(struct fuzz *fz, struct m_obj *io, uint64_t uptr,
			uint64_t length, uint64_t *iova)
{
	uint64_t align = 1, max_align = fz->thp ? HUGE : PAGE, s, l, cur, hs;
	uint64_t off = uptr % PAGE;
	struct m_range *sp;
	int n = 0, i, k;

	if (!length || length >= ULONG_MAX / 2)
		return EOVERFLOW;
	while (align < length)
		align <<= 1;
	if (uptr && align > (1ULL << __builtin_ctzll(uptr)))
		align = 1ULL << __builtin_ctzll(uptr);
	if (align >= max_align)
		align = max_align;
	if (align < m_align(io))
		return EINVAL;
	sp = calloc(io->nallowed + 1, sizeof(*sp));
	if (!sp)
		abort();
	if (!io->nallowed) {
		sp[n++] = (struct m_range){ PAGE, ULONG_MAX - PAGE };
	} else {
		memcpy(sp, io->allowed, io->nallowed * sizeof(*sp));
		qsort(sp, io->nallowed, sizeof(*sp), m_range_cmp);
		for (i = 0; i < io->nallowed; i++) {
			if (n && (sp[n - 1].last >= sp[i].start ||
				  sp[n - 1].last + 1 == sp[i].start)) {
				if (sp[i].last > sp[n - 1].last)
					sp[n - 1].last = sp[i].last;
			} else {
				sp[n++] = sp[i];
			}
		}
		for (i = 0, k = 0; i < n; i++) {
			if (sp[i].last < PAGE || sp[i].start > ULONG_MAX - PAGE)
				continue;
			if (sp[i].start < PAGE)
				sp[i].start = PAGE;
			if (sp[i].last > ULONG_MAX - PAGE)
				sp[i].last = ULONG_MAX - PAGE;
			sp[k++] = sp[i];
		}
		n = k;
	}
	for (i = 0; i < n; i++) {
		s = sp[i].start;
		l = sp[i].last;
		if (!m_fits(&s, l, length, align, off))
			continue;
		cur = s;
		for (k = m_first_from(io, cur);; k++) {
			bool end = k == io->nareas || io->areas[k].iova > l;

			if (end || io->areas[k].iova > cur) {
				hs = cur;
				if (m_fits(&hs, end ? l : io->areas[k].iova - 1,
					   length, align, off)) {
					*iova = hs;
					free(sp);
					return 0;
				}
			}
			if (end || a_last(&io->areas[k]) >= l)
				break;
			cur = a_last(&io->areas[k]) + 1;
		}
	}
	free(sp);
	return ENOSPC;
}

/* iopt_alloc_area_pages(): length, then the automatic or fixed IOVA */
static int m_place(struct fuzz *fz, struct m_obj *io, uint64_t uptr,
		   uint64_t len, bool fixed, uint64_t *iova)
{
	uint64_t align = m_align(io);

	if ((len & (align - 1)) || !len)
		return EINVAL;
	if (!fixed)
		return m_alloc_iova(fz, io, uptr, len, iova);
	if (*iova & (align - 1))
		return EINVAL;
	if (*iova + (len - 1) < *iova)
		return EOVERFLOW;
	if (m_overlaps(io, *iova, *iova + (len - 1)))
		return EEXIST;
	return 0;
}

static int fz_iommufd(struct fuzz *fz, unsigned long req, void *arg,
		      size_t avail);

/* GET_PA over a new mapping, one call per physically contiguous run */
static void fz_walk(struct fuzz *fz, uint32_t ioas, uint64_t first,
		    uint64_t last)
{
	struct iommu_ioas_noiommu_get_pa g;
	uint64_t iova = first;
	int n;

	for (n = 0; n < FZ_WALK_MAX && !fz->failed; n++) {
		g = (struct iommu_ioas_noiommu_get_pa){
			.size = sizeof(g), .ioas_id = ioas, .iova = iova,
			.length = UINT64_MAX,
		};
		if (fz_iommufd(fz, IOMMU_IOAS_NOIOMMU_GET_PA, &g, sizeof(g)))
			return;
		fz->walks++;
		if (g.length > last - iova)
			return;
		iova += g.length;
	}
}

/* One GET_PA the model judges (EOPNOTSUPP, ENOENT, or an address) */
static void fz_probe(struct fuzz *fz, uint32_t ioas, uint64_t iova)
{
	struct iommu_ioas_noiommu_get_pa g = {
		.size = sizeof(g), .ioas_id = ioas, .iova = iova, .length = PAGE,
	};

	fz_iommufd(fz, IOMMU_IOAS_NOIOMMU_GET_PA, &g, sizeof(g));
	fz->probes++;
}

/* A new mapping of the current context: walked where a table is */
static void fz_after_new(struct fuzz *fz, uint32_t ioas, uint64_t iova,
			 uint64_t len)
{
	struct m_obj *io = m_get(&fz->m.ctx[fz->m.cur], ioas, MO_IOAS);

	if (!io || fz->failed)
		return;
	if (io->ntables)
		fz_walk(fz, ioas, iova, iova + (len - 1));
	else
		fz_probe(fz, ioas, iova);
}

/* After a table was added: its first and last mapping (current context) */
static void fz_walk_ioas(struct fuzz *fz, int c, uint32_t ioas)
{
	struct m_obj *io = m_get(&fz->m.ctx[c], ioas, MO_IOAS);
	struct m_area first, last;

	if (c != fz->m.cur || !io || !io->nareas)
		return;
	first = io->areas[0];
	last = io->areas[io->nareas - 1];
	fz_walk(fz, ioas, first.iova, a_last(&first));
	if (io->nareas > 1)
		fz_walk(fz, ioas, last.iova, a_last(&last));
}

static void fz_check_pins(struct fuzz *fz)
{
	long long want = m_pins(fz), got = pins_held() - fz->pins0;

	snprintf(fz->call, sizeof(fz->call),
		 "nr_foll_pin_acquired - nr_foll_pin_released - baseline");
	if (got != want)
		fz_fail(fz, "pins: expected %lld pinned 4 KiB pages, got %lld",
			want, got);
	fz->pins_checks++;
}

/* The commands of the iommufd, each on the kernel's copy @k of the argument */

static int fzc_destroy(struct fuzz *fz, unsigned long req, void *arg,
		       struct iommu_destroy *k)
{
	struct model *m = &fz->m;
	struct m_ctx *x = &m->ctx[m->cur];
	struct m_obj *o = m_get(x, k->id, MO_ANY);
	int want = 0, err;

	if (!o)
		want = ENOENT;
	else if (o->type == MO_DEVICE || (o->type == MO_IOAS && o->ntables) ||
		 (o->type == MO_HWPT && m->dev_ctx == m->cur &&
		  m->dev_pt == k->id))
		want = EBUSY;
	snprintf(fz->call, sizeof(fz->call), "IOMMU_DESTROY id %u (%s)", k->id,
		 o ? mo_names[o->type] : "no object");
	err = fz_call(fz, fz->iommufd, req, arg, want, -1);
	if (!err && !fz->failed)
		m_obj_free(fz, x, k->id);
	return err;
}

static int fzc_ioas_alloc(struct fuzz *fz, unsigned long req, void *arg,
			  struct iommu_ioas_alloc *k)
{
	struct m_ctx *x = &fz->m.ctx[fz->m.cur];
	uint32_t id = m_free_id(x);
	int err;

	snprintf(fz->call, sizeof(fz->call), "IOMMU_IOAS_ALLOC flags %#x",
		 k->flags);
	err = fz_call(fz, fz->iommufd, req, arg, k->flags ? EOPNOTSUPP : 0, -1);
	if (err || fz->failed)
		return err;
	fz_check_val(fz, "out_ioas_id",
		     ((struct iommu_ioas_alloc *)arg)->out_ioas_id, id);
	m_new(x, id, MO_IOAS);
	return 0;
}

static int fzc_map(struct fuzz *fz, unsigned long req, void *arg,
		   struct iommu_ioas_map *k)
{
	struct m_obj *io = m_get(&fz->m.ctx[fz->m.cur], k->ioas_id, MO_IOAS);
	uint64_t iova = k->iova, len = k->length, uptr = k->user_va;
	bool fixed = k->flags & IOMMU_IOAS_MAP_FIXED_IOVA;
	int want = 0, alt = -1, err;

	if ((k->flags & ~M_MAP_FLAGS) || k->__reserved)
		want = EOPNOTSUPP;
	else if (iova >= ULONG_MAX || len >= ULONG_MAX)
		want = EOVERFLOW;
	else if (!(k->flags & M_RW))
		want = EINVAL;
	else if (!io)
		want = ENOENT;
	else if (len > SIZE_MAX - PAGE || !len)	/* iopt_alloc_pages() */
		want = EINVAL;
	else if (uptr + len < uptr)
		want = EOVERFLOW;
	else
		want = m_place(fz, io, uptr, len, fixed, &iova);
	/* iopt_insert_area(): the offset in the page, then the pins */
	if (!want && ((uptr % PAGE) & (m_align(io) - 1)))
		want = EINVAL;
	if (!want && io->ntables)
		want = m_mem_errno(fz, uptr, len, &alt);
	snprintf(fz->call, sizeof(fz->call),
		 "IOMMU_IOAS_MAP flags %#x ioas %u (%s, %d table(s)) user_va %#llx length %#llx iova %#llx%s",
		 k->flags, k->ioas_id, io ? "IOAS" : "none",
		 io ? io->ntables : 0, (ull)uptr, (ull)len, (ull)k->iova,
		 fixed ? "" : " (automatic)");
	if (!want && !fixed)
		snprintf(fz->call + strlen(fz->call),
			 sizeof(fz->call) - strlen(fz->call),
			 ", the model picks %#llx", (ull)iova);
	err = fz_call(fz, fz->iommufd, req, arg, want, alt);
	if (err || fz->failed)
		return err;
	fz_check_val(fz, "IOMMU_IOAS_MAP iova",
		     ((struct iommu_ioas_map *)arg)->iova, iova);
	m_area_add(fz, io, iova, len, uptr,
		   m_pages_new(fz, uptr, k->flags & IOMMU_IOAS_MAP_WRITEABLE));
	fz->maps++;
	fz_after_new(fz, k->ioas_id, iova, len);
	return 0;
}

/* iopt_get_pages(): the slices of contiguous mappings, or NULL */
static struct m_area *m_contig(struct m_obj *src, uint64_t iova, uint64_t len,
			       int *n)
{
	uint64_t last = iova + (len - 1), cur = iova;
	int k = m_area_at(src, iova);
	struct m_area *el, *a;

	*n = 0;
	if (k < 0)
		return NULL;
	el = calloc(src->nareas, sizeof(*el));
	if (!el)
		abort();
	for (;; k++) {
		a = &src->areas[k];
		el[*n] = (struct m_area){
			.iova = cur, .va = a->va + (cur - a->iova),
			.len = (a_last(a) < last ? a_last(a) : last) - cur + 1,
			.pages = a->pages,
		};
		(*n)++;
		if (a_last(a) >= last)
			return el;
		if (k + 1 == src->nareas ||
		    src->areas[k + 1].iova != a_last(a) + 1)
			break;
		cur = a_last(a) + 1;
	}
	free(el);
	return NULL;
}

static int fzc_copy(struct fuzz *fz, unsigned long req, void *arg,
		    struct iommu_ioas_copy *k)
{
	struct m_ctx *x = &fz->m.ctx[fz->m.cur];
	struct m_obj *src = m_get(x, k->src_ioas_id, MO_IOAS);
	struct m_obj *dst = m_get(x, k->dst_ioas_id, MO_IOAS);
	uint64_t siova = k->src_iova, diova = k->dst_iova, len = k->length;
	uint32_t flags = k->flags;
	struct m_area *el = NULL;
	int want = 0, alt = -1, nel = 0, j, err;

	/* iommufd_test_syz_conv_iova_id() */
	if (fz->has_test && (flags & M_SYZ)) {
		flags &= ~M_SYZ;
		if (src)
			siova = (uint32_t)siova < (uint32_t)src->nareas ?
				src->areas[(uint32_t)siova].iova + (siova >> 32) : 0;
	}
	if (flags & ~M_MAP_FLAGS)
		want = EOPNOTSUPP;
	else if (len >= ULONG_MAX || siova >= ULONG_MAX || diova >= ULONG_MAX)
		want = EOVERFLOW;
	else if (!(flags & M_RW))
		want = EINVAL;
	else if (!src)
		want = ENOENT;
	else if (!len)
		want = EINVAL;
	else if (siova + (len - 1) < siova)
		want = EOVERFLOW;
	else if (!(el = m_contig(src, siova, len, &nel)))
		want = ENOENT;
	else if (!dst)
		want = ENOENT;
	else
		want = m_place(fz, dst, el[0].va, len,
			       flags & IOMMU_IOAS_MAP_FIXED_IOVA, &diova);
	for (j = 0; !want && j < nel; j++)
		if ((flags & IOMMU_IOAS_MAP_WRITEABLE) &&
		    !fz->m.pages[el[j].pages].writable)
			want = EPERM;
		else if ((el[j].va % PAGE) & (m_align(dst) - 1))
			want = EINVAL;
	for (j = 0; !want && dst->ntables && j < nel; j++)
		want = m_mem_errno(fz, el[j].va, el[j].len, &alt);
	snprintf(fz->call, sizeof(fz->call),
		 "IOMMU_IOAS_COPY flags %#x src ioas %u iova %#llx -> dst ioas %u (%d table(s)) iova %#llx%s length %#llx",
		 k->flags, k->src_ioas_id, (ull)siova, k->dst_ioas_id,
		 dst ? dst->ntables : 0, (ull)k->dst_iova,
		 flags & IOMMU_IOAS_MAP_FIXED_IOVA ? "" : " (automatic)",
		 (ull)len);
	err = fz_call(fz, fz->iommufd, req, arg, want, alt);
	if (!err && !fz->failed) {
		fz_check_val(fz, "IOMMU_IOAS_COPY dst_iova",
			     ((struct iommu_ioas_copy *)arg)->dst_iova, diova);
		for (j = 0; j < nel; j++) {
			m_area_add(fz, dst, diova + (el[j].iova - el[0].iova),
				   el[j].len, el[j].va, el[j].pages);
		}
		/* The COPY destination answers GET_PA like any mapping */
		fz->copies++;
		fz->copies_walked += dst->ntables > 0;
		fz_after_new(fz, k->dst_ioas_id, diova, len);
	}
	free(el);
	return err;
}

static int fzc_unmap(struct fuzz *fz, unsigned long req, void *arg,
		     struct iommu_ioas_unmap *k)
{
	struct m_obj *io = m_get(&fz->m.ctx[fz->m.cur], k->ioas_id, MO_IOAS);
	uint64_t iova = k->iova, len = k->length, bytes = 0, gone = 0;
	int want = 0, first = 0, n = 0, j, err;

	if (!io) {
		want = ENOENT;
	} else if (iova == 0 && len == UINT64_MAX) {
		for (n = 0; n < io->nareas; n++)
			bytes += io->areas[n].len;
	} else if (iova >= ULONG_MAX || len >= ULONG_MAX) {
		want = EOVERFLOW;
	} else if (!len) {
		want = EINVAL;
	} else if (iova + (len - 1) < iova) {
		want = EOVERFLOW;
	} else {
		/* Removed in IOVA order until one sticks out: ENOENT */
		first = m_first_from(io, iova);
		for (j = first; j < io->nareas &&
		     io->areas[j].iova <= iova + (len - 1); j++) {
			if (io->areas[j].iova < iova ||
			    a_last(&io->areas[j]) > iova + (len - 1)) {
				want = ENOENT;
				break;
			}
			bytes += io->areas[j].len;
			n++;
		}
		if (!want && !bytes)
			want = ENOENT;
	}
	snprintf(fz->call, sizeof(fz->call),
		 "IOMMU_IOAS_UNMAP ioas %u iova %#llx length %#llx (the model removes %d mapping(s))",
		 k->ioas_id, (ull)iova, (ull)len, n);
	err = fz_call(fz, fz->iommufd, req, arg, want, -1);
	if (fz->failed)
		return err;
	if (n)
		gone = io->areas[first].iova;
	fz->partial += n && err == ENOENT;
	for (j = 0; j < n; j++)
		m_area_del(fz, io, first);
	if (!err)
		fz_check_val(fz, "IOMMU_IOAS_UNMAP length",
			     ((struct iommu_ioas_unmap *)arg)->length, bytes);
	if (n)
		fz_probe(fz, k->ioas_id, gone);
	return err;
}

static int fzc_get_pa(struct fuzz *fz, unsigned long req, void *arg,
		      struct iommu_ioas_noiommu_get_pa *k)
{
	struct m_obj *io = m_get(&fz->m.ctx[fz->m.cur], k->ioas_id, MO_IOAS);
	struct iommu_ioas_noiommu_get_pa *out = arg;
	uint64_t limit, va, pa, len;
	int want = 0, j = -1, err;
	struct m_area *a;

	if (k->flags || k->__reserved)
		want = EOPNOTSUPP;
	else if (!k->length)
		want = EINVAL;
	else if (k->iova >= ULONG_MAX)
		want = EOVERFLOW;
	else if (!io)
		want = ENOENT;
	else if ((j = m_area_at(io, k->iova)) < 0)
		want = ENOENT;
	else if (!io->ntables)
		want = EOPNOTSUPP;
	snprintf(fz->call, sizeof(fz->call),
		 "IOMMU_IOAS_NOIOMMU_GET_PA flags %#x __reserved %#x ioas %u (%s, %d table(s)) iova %#llx length %#llx",
		 k->flags, k->__reserved, k->ioas_id, io ? "IOAS" : "none",
		 io ? io->ntables : 0, (ull)k->iova, (ull)k->length);
	err = fz_call(fz, fz->iommufd, req, arg, want, -1);
	if (err || fz->failed)
		return err;
	a = &io->areas[j];
	va = a->va + (k->iova - a->iova);
	limit = a_last(a) - k->iova + 1;
	if (limit > k->length)
		limit = k->length;
	m_pa_run(va, limit, &pa, &len);
	if (out->out_phys != pa || out->length != len)
		fz_fail(fz, "expected phys %#llx length %#llx (va %#llx, mapping iova %#llx length %#llx), got phys %#llx length %#llx",
			(ull)pa, (ull)len, (ull)va, (ull)a->iova,
			(ull)a->len, (ull)out->out_phys, (ull)out->length);
	fz->pa_checks++;
	return 0;
}

static int fzc_iova_ranges(struct fuzz *fz, unsigned long req, void *arg,
			   struct iommu_ioas_iova_ranges *k)
{
	struct m_obj *io = m_get(&fz->m.ctx[fz->m.cur], k->ioas_id, MO_IOAS);
	struct iommu_ioas_iova_ranges *out = arg;
	struct iommu_iova_range r;
	int want = 0, err;

	/* No reserved IOVA here: one range, the whole space */
	if (k->__reserved)
		want = EOPNOTSUPP;
	else if (!io)
		want = ENOENT;
	else if (k->num_iovas && !u_writable(k->allowed_iovas, sizeof(r)))
		want = EFAULT;
	else if (!k->num_iovas)
		want = EMSGSIZE;
	snprintf(fz->call, sizeof(fz->call),
		 "IOMMU_IOAS_IOVA_RANGES ioas %u num_iovas %u allowed_iovas %#llx",
		 k->ioas_id, k->num_iovas, (ull)k->allowed_iovas);
	err = fz_call(fz, fz->iommufd, req, arg, want, -1);
	if ((err && err != EMSGSIZE) || fz->failed)
		return err;
	fz_check_val(fz, "num_iovas", out->num_iovas, 1);
	fz_check_val(fz, "out_iova_alignment", out->out_iova_alignment,
		     m_align(io));
	if (k->num_iovas && u_read(&r, k->allowed_iovas, sizeof(r))) {
		fz_check_val(fz, "allowed_iovas[0].start", r.start, 0);
		fz_check_val(fz, "allowed_iovas[0].last", r.last, ULONG_MAX);
	}
	return err;
}

static int fzc_allow_iovas(struct fuzz *fz, unsigned long req, void *arg,
			   struct iommu_ioas_allow_iovas *k)
{
	struct m_obj *io = m_get(&fz->m.ctx[fz->m.cur], k->ioas_id, MO_IOAS);
	struct m_range *l = NULL, r;
	int want = 0, n = 0, cap = 0, err, j;
	uint32_t i;

	if (k->__reserved)
		want = EOPNOTSUPP;
	else if (!io)
		want = ENOENT;
	/* iommufd_ioas_load_iovas() */
	for (i = 0; !want && i < k->num_iovas; i++) {
		if (!u_read(&r, k->allowed_iovas + i * sizeof(r), sizeof(r))) {
			want = EFAULT;
			break;
		}
		if (r.start >= r.last) {
			want = EINVAL;
			break;
		}
		for (j = 0; j < n && !want; j++)
			if (r.start <= l[j].last && l[j].start <= r.last)
				want = EINVAL;
		if (want)
			break;
		if (n == cap) {
			cap = cap ? 2 * cap : 4;
			l = realloc(l, cap * sizeof(*l));
			if (!l)
				abort();
		}
		l[n++] = r;
	}
	snprintf(fz->call, sizeof(fz->call),
		 "IOMMU_IOAS_ALLOW_IOVAS ioas %u num_iovas %u allowed_iovas %#llx (%d range(s) read)",
		 k->ioas_id, k->num_iovas, (ull)k->allowed_iovas, n);
	err = fz_call(fz, fz->iommufd, req, arg, want, -1);
	if (!err && !fz->failed) {
		free(io->allowed);
		io->allowed = l;
		io->nallowed = n;
	} else {
		free(l);
	}
	return err;
}

static int fzc_option(struct fuzz *fz, unsigned long req, void *arg,
		      struct iommu_option *k)
{
	struct m_ctx *x = &fz->m.ctx[fz->m.cur];
	struct m_obj *io = NULL;
	uint64_t val = 0;
	int want = 0, err, j;

	if (k->__reserved) {
		want = EOPNOTSUPP;
	} else if (k->option_id == IOMMU_OPTION_RLIMIT_MODE) {
		if (k->object_id)
			want = EOPNOTSUPP;
		else if (k->op == IOMMU_OPTION_OP_GET)
			val = x->account_mm;
		else if (k->op != IOMMU_OPTION_OP_SET)
			want = EOPNOTSUPP;
		else if (!m_empty(x))
			want = EBUSY;
		else if (k->val64 > 1)
			want = EINVAL;
	} else if (k->option_id == IOMMU_OPTION_HUGE_PAGES) {
		io = m_get(x, k->object_id, MO_IOAS);
		if (!io)
			want = ENOENT;
		else if (k->op == IOMMU_OPTION_OP_GET)
			val = !io->nolarge;
		else if (k->op != IOMMU_OPTION_OP_SET)
			want = EOPNOTSUPP;
		else if (k->val64 > 1)
			want = EINVAL;
		else if (k->val64 == 0 && !io->nolarge) {
			/* iopt_disable_large_pages() */
			if (io->ntables && io->nareas)
				want = EINVAL;
			for (j = 0; !want && m_align(io) != PAGE &&
			     j < io->nareas; j++)
				if (io->areas[j].iova % PAGE ||
				    io->areas[j].len % PAGE ||
				    io->areas[j].va % PAGE)
					want = EADDRINUSE;
		}
	} else {
		want = EOPNOTSUPP;
	}
	snprintf(fz->call, sizeof(fz->call),
		 "IOMMU_OPTION option_id %u op %u __reserved %#x object_id %u val64 %#llx",
		 k->option_id, k->op, k->__reserved, k->object_id,
		 (ull)k->val64);
	err = fz_call(fz, fz->iommufd, req, arg, want, -1);
	if (err || fz->failed)
		return err;
	if (k->op == IOMMU_OPTION_OP_GET)
		fz_check_val(fz, "IOMMU_OPTION val64",
			     ((struct iommu_option *)arg)->val64, val);
	else if (io)
		io->nolarge = !k->val64;
	else
		x->account_mm = k->val64;
	return 0;
}

static int fzc_vfio_ioas(struct fuzz *fz, unsigned long req, void *arg,
			 struct iommu_vfio_ioas *k)
{
	struct m_ctx *x = &fz->m.ctx[fz->m.cur];
	int want = 0, err;

	if (k->__reserved)
		want = EOPNOTSUPP;
	else if (k->op == IOMMU_VFIO_IOAS_GET)
		want = m_get(x, x->vfio_ioas, MO_IOAS) ? 0 : ENODEV;
	else if (k->op == IOMMU_VFIO_IOAS_SET)
		want = m_get(x, k->ioas_id, MO_IOAS) ? 0 : ENOENT;
	else if (k->op != IOMMU_VFIO_IOAS_CLEAR)
		want = EOPNOTSUPP;
	snprintf(fz->call, sizeof(fz->call),
		 "IOMMU_VFIO_IOAS op %u ioas %u __reserved %#x (compat IOAS %u)",
		 k->op, k->ioas_id, k->__reserved, x->vfio_ioas);
	err = fz_call(fz, fz->iommufd, req, arg, want, -1);
	if (err || fz->failed)
		return err;
	if (k->op == IOMMU_VFIO_IOAS_GET)
		fz_check_val(fz, "IOMMU_VFIO_IOAS ioas_id",
			     ((struct iommu_vfio_ioas *)arg)->ioas_id,
			     x->vfio_ioas);
	else
		x->vfio_ioas = k->op == IOMMU_VFIO_IOAS_SET ? k->ioas_id : 0;
	return 0;
}

static int fzc_hwpt_alloc(struct fuzz *fz, unsigned long req, void *arg,
			  struct iommu_hwpt_alloc *k)
{
	struct m_ctx *x = &fz->m.ctx[fz->m.cur];
	struct m_obj *dev = m_get(x, k->dev_id, MO_DEVICE);
	struct m_obj *pt = m_get(x, k->pt_id, MO_ANY), *h;
	uint32_t id = m_free_id(x);
	int want = 0, alt = -1, err;

	if (k->__reserved)
		want = EOPNOTSUPP;
	else if ((k->data_type == IOMMU_HWPT_DATA_NONE && k->data_len) ||
		 (k->data_type != IOMMU_HWPT_DATA_NONE && !k->data_len))
		want = EINVAL;
	else if (!dev)
		want = ENOENT;
	else if (!pt)
		want = EINVAL;
	else if (pt->type == MO_HWPT)	/* no nesting without an IOMMU */
		want = EOPNOTSUPP;
	else if (pt->type != MO_IOAS)
		want = EINVAL;
	else if (k->flags || k->data_len)	/* no options without one */
		want = EOPNOTSUPP;
	else
		want = m_fill(fz, pt, &alt);
	snprintf(fz->call, sizeof(fz->call),
		 "IOMMU_HWPT_ALLOC flags %#x dev_id %u (%s) pt_id %u (%s) data_type %u data_len %u",
		 k->flags, k->dev_id, dev ? "device" : "none", k->pt_id,
		 pt ? mo_names[pt->type] : "none", k->data_type, k->data_len);
	err = fz_call(fz, fz->iommufd, req, arg, want, alt);
	fz->fill_errs += err == EFAULT || err == EADDRINUSE;
	if (err || fz->failed)
		return err;
	fz->tables++;
	fz_check_val(fz, "out_hwpt_id",
		     ((struct iommu_hwpt_alloc *)arg)->out_hwpt_id, id);
	h = m_new(x, id, MO_HWPT);
	h->ioas = k->pt_id;
	m_get(x, k->pt_id, MO_IOAS)->ntables++;
	fz_walk_ioas(fz, fz->m.cur, k->pt_id);
	return 0;
}

static int fzc_hw_info(struct fuzz *fz, unsigned long req, void *arg,
		       struct iommu_hw_info *k)
{
	struct m_obj *dev = m_get(&fz->m.ctx[fz->m.cur], k->dev_id, MO_DEVICE);
	int want;

	if (k->flags || k->__reserved[0] || k->__reserved[1] ||
	    k->__reserved[2])
		want = EOPNOTSUPP;
	else
		want = dev ? EOPNOTSUPP : ENOENT;	/* no IOMMU: nothing */
	snprintf(fz->call, sizeof(fz->call),
		 "IOMMU_GET_HW_INFO flags %#x dev_id %u (%s)", k->flags,
		 k->dev_id, dev ? "device" : "none");
	return fz_call(fz, fz->iommufd, req, arg, want, -1);
}

static int fzc_dirty_tracking(struct fuzz *fz, unsigned long req, void *arg,
			      struct iommu_hwpt_set_dirty_tracking *k)
{
	struct m_obj *h = m_get(&fz->m.ctx[fz->m.cur], k->hwpt_id, MO_HWPT);
	int want = EOPNOTSUPP;	/* the software table has no dirty_ops */

	if (!(k->flags & ~IOMMU_HWPT_DIRTY_TRACKING_ENABLE) && !h)
		want = ENOENT;
	snprintf(fz->call, sizeof(fz->call),
		 "IOMMU_HWPT_SET_DIRTY_TRACKING flags %#x hwpt %u", k->flags,
		 k->hwpt_id);
	return fz_call(fz, fz->iommufd, req, arg, want, -1);
}

static int fzc_dirty_bitmap(struct fuzz *fz, unsigned long req, void *arg,
			    struct iommu_hwpt_get_dirty_bitmap *k)
{
	struct m_ctx *x = &fz->m.ctx[fz->m.cur];
	struct m_obj *h = m_get(x, k->hwpt_id, MO_HWPT);
	uint64_t align, last, ps = k->page_size;
	int want = EOPNOTSUPP;

	if ((k->flags & ~IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR) ||
	    k->__reserved) {
		want = EOPNOTSUPP;
	} else if (!h) {
		want = ENOENT;
	} else {
		/* iommufd_check_iova_range() */
		align = m_align(m_get(x, h->ioas, MO_IOAS));
		last = k->iova + (k->length - 1);
		if (!k->length)
			want = EINVAL;
		else if (last < k->iova)
			want = EOVERFLOW;
		else if ((k->iova & (align - 1)) || ((last + 1) & (align - 1)))
			want = EINVAL;
		else if (!ps || (k->iova & (ps - 1)) || ((last + 1) & (ps - 1)))
			want = EINVAL;
	}
	snprintf(fz->call, sizeof(fz->call),
		 "IOMMU_HWPT_GET_DIRTY_BITMAP hwpt %u flags %#x iova %#llx length %#llx page_size %#llx",
		 k->hwpt_id, k->flags, (ull)k->iova, (ull)k->length, (ull)ps);
	return fz_call(fz, fz->iommufd, req, arg, want, -1);
}

static int fzc_invalidate(struct fuzz *fz, unsigned long req, void *arg,
			  struct iommu_hwpt_invalidate *k)
{
	int want = ENOENT, err;	/* there is no nested HWPT */

	if (k->__reserved)
		want = EOPNOTSUPP;
	else if (k->entry_num && (!k->data_uptr || !k->entry_len ||
				  k->entry_len > PAGE ||
				  k->entry_num > M_INVAL_MAX))
		want = EINVAL;
	snprintf(fz->call, sizeof(fz->call),
		 "IOMMU_HWPT_INVALIDATE hwpt %u entry_len %u entry_num %u",
		 k->hwpt_id, k->entry_len, k->entry_num);
	err = fz_call(fz, fz->iommufd, req, arg, want, -1);
	if (!fz->failed)
		fz_check_val(fz, "IOMMU_HWPT_INVALIDATE entry_num",
			     ((struct iommu_hwpt_invalidate *)arg)->entry_num, 0);
	return err;
}

static int fzc_fault_alloc(struct fuzz *fz, unsigned long req, void *arg,
			   struct iommu_fault_alloc *k)
{
	struct m_ctx *x = &fz->m.ctx[fz->m.cur];
	struct iommu_fault_alloc *out = arg;
	uint32_t id = m_free_id(x);
	int err;

	snprintf(fz->call, sizeof(fz->call),
		 "IOMMU_FAULT_QUEUE_ALLOC flags %#x", k->flags);
	err = fz_call(fz, fz->iommufd, req, arg, k->flags ? EOPNOTSUPP : 0, -1);
	if (err || fz->failed)
		return err;
	fz_check_val(fz, "out_fault_id", out->out_fault_id, id);
	if (fcntl(out->out_fault_fd, F_GETFD) < 0)
		fz_fail(fz, "out_fault_fd %u is not open", out->out_fault_fd);
	/* Closed at once: the object can then be destroyed */
	close(out->out_fault_fd);
	m_new(x, id, MO_FAULT);
	return 0;
}

static void fuzz_setup(struct fuzz *fz);

/* Close the fds a selftest op may have left (anon inodes): none is ours */
static void fz_close_strays(void)
{
	char path[64], link[128];
	struct dirent *de;
	DIR *d = opendir("/proc/self/fd");
	ssize_t n;

	while (d && (de = readdir(d))) {
		snprintf(path, sizeof(path), "/proc/self/fd/%.32s", de->d_name);
		n = readlink(path, link, sizeof(link) - 1);
		if (n > 0 && !strncmp(link, "anon_inode:", 11))
			close(atoi(de->d_name));
	}
	if (d)
		closedir(d);
}

/*
 * The selftest ops (IOMMU_TEST_CMD): not judged. One that did something
 * may have left objects, reserved IOVAs, accesses and their fds that the
 * model cannot know: close everything, the model starts over.
 */
static int fz_test_cmd(struct fuzz *fz, unsigned long req, void *arg)
{
	struct __test_metadata *_metadata = fz->md;
	int err = ioctl(fz->iommufd, req, arg) ? errno : 0;

	snprintf(fz->call, sizeof(fz->call), "IOMMU_TEST_CMD op %u (not judged)",
		 ((uint32_t *)arg)[1]);
	fz->unjudged++;
	if (err)
		return err;
	fz->resyncs++;
	close(fz->devfd);
	m_dev_close(fz);
	close(fz->iommufd);
	m_iommufd_reopen(fz);
	fz_close_strays();
	fz->devfd = open(fz->path, O_RDWR);
	fz->iommufd = open("/dev/iommu", O_RDWR);
	ASSERT_LE(0, fz->devfd);
	ASSERT_LE(0, fz->iommufd);
	fz->nids = fz->niovas = 0;
	fuzz_setup(fz);
	return 0;
}

struct fz_op {
	unsigned int nr, ksize, minsz;
};

#define FZ_OP(cmd, type, last) \
	{ _IOC_NR(cmd), sizeof(type), offsetofend(type, last) }

static const struct fz_op fz_ops[] = {
	FZ_OP(IOMMU_DESTROY, struct iommu_destroy, id),
	FZ_OP(IOMMU_IOAS_ALLOC, struct iommu_ioas_alloc, out_ioas_id),
	FZ_OP(IOMMU_IOAS_ALLOW_IOVAS, struct iommu_ioas_allow_iovas,
	      allowed_iovas),
	FZ_OP(IOMMU_IOAS_COPY, struct iommu_ioas_copy, src_iova),
	FZ_OP(IOMMU_IOAS_IOVA_RANGES, struct iommu_ioas_iova_ranges,
	      out_iova_alignment),
	FZ_OP(IOMMU_IOAS_MAP, struct iommu_ioas_map, iova),
	FZ_OP(IOMMU_IOAS_UNMAP, struct iommu_ioas_unmap, length),
	FZ_OP(IOMMU_OPTION, struct iommu_option, val64),
	FZ_OP(IOMMU_VFIO_IOAS, struct iommu_vfio_ioas, __reserved),
	FZ_OP(IOMMU_HWPT_ALLOC, struct iommu_hwpt_alloc, __reserved),
	FZ_OP(IOMMU_GET_HW_INFO, struct iommu_hw_info, __reserved),
	FZ_OP(IOMMU_HWPT_SET_DIRTY_TRACKING,
	      struct iommu_hwpt_set_dirty_tracking, __reserved),
	FZ_OP(IOMMU_HWPT_GET_DIRTY_BITMAP, struct iommu_hwpt_get_dirty_bitmap,
	      data),
	FZ_OP(IOMMU_HWPT_INVALIDATE, struct iommu_hwpt_invalidate, __reserved),
	FZ_OP(IOMMU_FAULT_QUEUE_ALLOC, struct iommu_fault_alloc, out_fault_fd),
	FZ_OP(IOMMU_IOAS_NOIOMMU_GET_PA, struct iommu_ioas_noiommu_get_pa,
	      out_phys),
};

static bool fz_arg_ok(const void *arg)
{
	return arg && (uintptr_t)arg < M_TASK_TOP;
}

/*
 * An ioctl on the iommufd: iommufd_fops_ioctl() (a command number outside
 * the table goes to the VFIO compat ioctls, which know none of ours), then
 * the command on the kernel's copy of the argument. @avail: bytes readable
 * at @arg.
 */
static int fz_iommufd(struct fuzz *fz, unsigned long req, void *arg,
		      size_t avail)
{
	unsigned int nr = _IOC_NR(req), i;
	unsigned int last = fz->has_test ? M_TEST_NR : M_LAST_NR;
	const struct fz_op *op = NULL;
	union {
		uint8_t raw[64];
		struct iommu_destroy destroy;
		struct iommu_ioas_alloc alloc;
		struct iommu_ioas_allow_iovas allow;
		struct iommu_ioas_copy copy;
		struct iommu_ioas_iova_ranges ranges;
		struct iommu_ioas_map map;
		struct iommu_ioas_unmap unmap;
		struct iommu_option option;
		struct iommu_vfio_ioas vfio_ioas;
		struct iommu_hwpt_alloc hwpt;
		struct iommu_hw_info info;
		struct iommu_hwpt_set_dirty_tracking dirty;
		struct iommu_hwpt_get_dirty_bitmap bitmap;
		struct iommu_hwpt_invalidate inval;
		struct iommu_fault_alloc fault;
		struct iommu_ioas_noiommu_get_pa get_pa;
	} k;
	uint32_t usize;
	int want = 0;

	snprintf(fz->call, sizeof(fz->call), "iommufd ioctl %#lx (nr %#x)",
		 req, nr);
	if (nr < M_BASE_NR || nr > last)
		return fz_call(fz, fz->iommufd, req, arg, ENOTTY, -1);
	if (!fz_arg_ok(arg))
		return fz_call(fz, fz->iommufd, req, arg, EFAULT, -1);
	memcpy(&usize, arg, sizeof(usize));
	if (nr == M_TEST_NR)
		return fz_test_cmd(fz, req, arg);
	for (i = 0; i < sizeof(fz_ops) / sizeof(fz_ops[0]); i++)
		if (fz_ops[i].nr == nr)
			op = &fz_ops[i];
	if (!op)
		return fz_call(fz, fz->iommufd, req, arg, ENOTTY, -1);
	snprintf(fz->call + strlen(fz->call), sizeof(fz->call) - strlen(fz->call),
		 " size %u", usize);
	/* copy_struct_from_user() */
	if (usize < op->minsz) {
		want = EINVAL;
	} else if (usize > op->ksize) {
		for (i = op->ksize; i < usize && i < avail; i++)
			if (((uint8_t *)arg)[i])
				break;
		if (i < usize && i < avail)
			want = E2BIG;
		else if (usize > avail)
			want = EFAULT;
	}
	if (want)
		return fz_call(fz, fz->iommufd, req, arg, want, -1);
	memset(&k, 0, sizeof(k));
	memcpy(&k, arg, usize < op->ksize ? usize : op->ksize);
	switch (nr) {
	case _IOC_NR(IOMMU_DESTROY):
		return fzc_destroy(fz, req, arg, &k.destroy);
	case _IOC_NR(IOMMU_IOAS_ALLOC):
		return fzc_ioas_alloc(fz, req, arg, &k.alloc);
	case _IOC_NR(IOMMU_IOAS_ALLOW_IOVAS):
		return fzc_allow_iovas(fz, req, arg, &k.allow);
	case _IOC_NR(IOMMU_IOAS_COPY):
		return fzc_copy(fz, req, arg, &k.copy);
	case _IOC_NR(IOMMU_IOAS_IOVA_RANGES):
		return fzc_iova_ranges(fz, req, arg, &k.ranges);
	case _IOC_NR(IOMMU_IOAS_MAP):
		return fzc_map(fz, req, arg, &k.map);
	case _IOC_NR(IOMMU_IOAS_UNMAP):
		return fzc_unmap(fz, req, arg, &k.unmap);
	case _IOC_NR(IOMMU_OPTION):
		return fzc_option(fz, req, arg, &k.option);
	case _IOC_NR(IOMMU_VFIO_IOAS):
		return fzc_vfio_ioas(fz, req, arg, &k.vfio_ioas);
	case _IOC_NR(IOMMU_HWPT_ALLOC):
		return fzc_hwpt_alloc(fz, req, arg, &k.hwpt);
	case _IOC_NR(IOMMU_GET_HW_INFO):
		return fzc_hw_info(fz, req, arg, &k.info);
	case _IOC_NR(IOMMU_HWPT_SET_DIRTY_TRACKING):
		return fzc_dirty_tracking(fz, req, arg, &k.dirty);
	case _IOC_NR(IOMMU_HWPT_GET_DIRTY_BITMAP):
		return fzc_dirty_bitmap(fz, req, arg, &k.bitmap);
	case _IOC_NR(IOMMU_HWPT_INVALIDATE):
		return fzc_invalidate(fz, req, arg, &k.inval);
	case _IOC_NR(IOMMU_FAULT_QUEUE_ALLOC):
		return fzc_fault_alloc(fz, req, arg, &k.fault);
	default:
		return fzc_get_pa(fz, req, arg, &k.get_pa);
	}
}

/* The device fd: VFIO's cdev ioctls and vfio-pci's */

static int fzd_bind(struct fuzz *fz, void *arg)
{
	struct vfio_device_bind_iommufd *b = arg;
	struct model *m = &fz->m;
	struct m_ctx *x = &m->ctx[m->cur];
	uint32_t id = m_free_id(x);
	int want = 0, err;

	if (!fz_arg_ok(arg))
		want = EFAULT;
	else if (b->argsz < offsetofend(struct vfio_device_bind_iommufd, out_devid) ||
		 b->flags || b->iommufd < 0)
		want = EINVAL;
	else if (m->dev_ctx >= 0)	/* bound already */
		want = EINVAL;
	else if (b->iommufd != fz->iommufd)
		want = fcntl(b->iommufd, F_GETFD) < 0 ? EBADF : EBADFD;
	snprintf(fz->call, sizeof(fz->call),
		 "VFIO_DEVICE_BIND_IOMMUFD argsz %u flags %#x iommufd %d (ours %d; device %s)",
		 fz_arg_ok(arg) ? b->argsz : 0, fz_arg_ok(arg) ? b->flags : 0,
		 fz_arg_ok(arg) ? b->iommufd : -1, fz->iommufd,
		 m->dev_ctx < 0 ? "unbound" :
		 m->dev_ctx == m->cur ? "bound here" : "bound to a closed iommufd");
	err = fz_call(fz, fz->devfd, VFIO_DEVICE_BIND_IOMMUFD, arg, want, -1);
	if (err || fz->failed)
		return err;
	fz_check_val(fz, "out_devid", b->out_devid, id);
	m_new(x, id, MO_DEVICE);
	m->dev_ctx = m->cur;
	m->devid = id;
	m->dev_pt = 0;
	return 0;
}

/*
 * iommufd_device_attach() or _replace() in the device's context: a HWPT
 * is taken as it is, an IOAS gets an automatic HWPT (the one the device is
 * on if it is that IOAS's, else a new table, filled: EADDRINUSE, EFAULT);
 * an automatic HWPT left behind is destroyed.
 */
static int fzd_attach(struct fuzz *fz, struct vfio_device_attach_iommufd_pt *at)
{
	struct model *m = &fz->m;
	int c = m->dev_ctx, want = 0, alt = -1, type, err;
	struct m_ctx *x = &m->ctx[c];
	struct m_obj *pt = m_get(x, at->pt_id, MO_ANY), *h;
	uint32_t pt_id = at->pt_id, out = pt_id, new_id = 0, old;

	type = pt ? pt->type : MO_FREE;
	if (at->argsz < offsetofend(struct vfio_device_attach_iommufd_pt, pt_id) ||
	    at->flags) {
		want = EINVAL;
	} else if (!pt) {
		want = ENOENT;
	} else if (type == MO_IOAS) {
		h = m->dev_pt ? m_get(x, m->dev_pt, MO_HWPT) : NULL;
		if (h && h->autod && h->ioas == pt_id) {
			out = m->dev_pt;
		} else {
			new_id = m_free_id(x);
			out = new_id;
			want = m_fill(fz, pt, &alt);
		}
	} else if (type != MO_HWPT) {
		want = EINVAL;
	}
	snprintf(fz->call, sizeof(fz->call),
		 "VFIO_DEVICE_ATTACH_IOMMUFD_PT argsz %u flags %#x pt_id %u (%s%s), device on HWPT %u",
		 at->argsz, at->flags, pt_id, mo_names[type],
		 c == m->cur ? "" : " of the closed iommufd", m->dev_pt);
	err = fz_call(fz, fz->devfd, VFIO_DEVICE_ATTACH_IOMMUFD_PT, at, want, alt);
	fz->fill_errs += err == EFAULT || err == EADDRINUSE;
	if (err || fz->failed)
		return err;
	fz->tables += new_id != 0;
	fz_check_val(fz, "VFIO_DEVICE_ATTACH_IOMMUFD_PT pt_id", at->pt_id, out);
	old = m->dev_pt;
	if (out == old)
		return 0;
	if (new_id) {
		h = m_new(x, new_id, MO_HWPT);
		h->ioas = pt_id;
		h->autod = true;
		m_get(x, pt_id, MO_IOAS)->ntables++;
	}
	m->dev_pt = out;
	h = old ? m_get(x, old, MO_HWPT) : NULL;
	if (h && h->autod)
		m_obj_free(fz, x, old);
	if (new_id)
		fz_walk_ioas(fz, c, pt_id);
	return 0;
}

static int fz_device(struct fuzz *fz, unsigned long req, void *arg)
{
	struct model *m = &fz->m;
	uint32_t argsz = 0, flags = 0, index = 0;
	int want = 0, err;

	if (req == VFIO_DEVICE_BIND_IOMMUFD)
		return fzd_bind(fz, arg);
	if (fz_arg_ok(arg)) {
		argsz = ((uint32_t *)arg)[0];
		flags = ((uint32_t *)arg)[1];
		index = ((uint32_t *)arg)[2];
	}
	snprintf(fz->call, sizeof(fz->call),
		 "device ioctl %#lx argsz %u flags %#x word2 %u (device %s)",
		 req, argsz, flags, index, m->dev_ctx < 0 ? "unbound" : "bound");
	/* Nothing but BIND before the bind */
	if (m->dev_ctx < 0)
		return fz_call(fz, fz->devfd, req, arg, EINVAL, -1);
	if (!fz_arg_ok(arg))
		return fz_call(fz, fz->devfd, req, arg, EFAULT, -1);
	switch (req) {
	case VFIO_DEVICE_ATTACH_IOMMUFD_PT:
		return fzd_attach(fz, arg);
	case VFIO_DEVICE_DETACH_IOMMUFD_PT:
		if (argsz < offsetofend(struct vfio_device_detach_iommufd_pt, flags) ||
		    flags)
			want = EINVAL;
		err = fz_call(fz, fz->devfd, req, arg, want, -1);
		if (!err && !fz->failed)
			m_dev_detach(fz);
		return err;
	case VFIO_DEVICE_GET_INFO:
		if (argsz < offsetofend(struct vfio_device_info, num_irqs))
			want = EINVAL;
		err = fz_call(fz, fz->devfd, req, arg, want, -1);
		if (!err && !fz->failed) {
			struct vfio_device_info *i = arg;

			fz_check_val(fz, "num_regions", i->num_regions,
				     VFIO_PCI_NUM_REGIONS);
			fz_check_val(fz, "num_irqs", i->num_irqs,
				     VFIO_PCI_NUM_IRQS);
			fz_check_val(fz, "flags & PCI",
				     i->flags & VFIO_DEVICE_FLAGS_PCI,
				     VFIO_DEVICE_FLAGS_PCI);
		}
		return err;
	default:	/* VFIO_DEVICE_GET_REGION_INFO: edu has no VGA region */
		if (argsz < offsetofend(struct vfio_region_info, offset) ||
		    index > VFIO_PCI_CONFIG_REGION_INDEX)
			want = EINVAL;
		err = fz_call(fz, fz->devfd, req, arg, want, -1);
		if (!err && !fz->failed)
			fz_check_val(fz, "region offset",
				     ((struct vfio_region_info *)arg)->offset,
				     (uint64_t)index << 40);
		return err;
	}
}

/* Everything the model holds, for the report */
static void m_dump(struct fuzz *fz)
{
	struct model *m = &fz->m;
	int c, k;
	uint32_t id;

	fprintf(stderr, "# model: device %s, devid %u, attached to HWPT %u; %lld pinned pages expected\n",
		m->dev_ctx < 0 ? "unbound" :
		m->dev_ctx == m->cur ? "bound to our iommufd" :
		"bound to a closed iommufd", m->devid, m->dev_pt, m_pins(fz));
	for (c = 0; c < M_CTXS; c++) {
		struct m_ctx *x = &m->ctx[c];

		if (!x->live)
			continue;
		fprintf(stderr, "#   context %d%s%s: compat IOAS %u, account_mm %d\n",
			c, c == m->cur ? " (our iommufd)" : "",
			c == m->dev_ctx ? " (the device's)" : "", x->vfio_ioas,
			x->account_mm);
		for (id = 0; id < x->nobj; id++) {
			struct m_obj *o = &x->obj[id];

			if (o->type == MO_HWPT)
				fprintf(stderr, "#     %u: HWPT on IOAS %u%s\n", id,
					o->ioas, o->autod ? " (automatic)" : "");
			else if (o->type == MO_DEVICE || o->type == MO_FAULT)
				fprintf(stderr, "#     %u: %s\n", id,
					mo_names[o->type]);
			if (o->type != MO_IOAS)
				continue;
			fprintf(stderr, "#     %u: IOAS, %d table(s), alignment %llu, %d allowed range(s), %d mapping(s)\n",
				id, o->ntables, (ull)m_align(o), o->nallowed,
				o->nareas);
			for (k = 0; k < o->nallowed && k < 4; k++)
				fprintf(stderr, "#       allowed %#llx..%#llx\n",
					(ull)o->allowed[k].start,
					(ull)o->allowed[k].last);
			for (k = 0; k < o->nareas && k < 24; k++)
				fprintf(stderr, "#       iova %#llx..%#llx -> va %#llx (pages %d%s)\n",
					(ull)o->areas[k].iova,
					(ull)a_last(&o->areas[k]),
					(ull)o->areas[k].va, o->areas[k].pages,
					m->pages[o->areas[k].pages].writable ?
					"" : ", read-only");
		}
	}
}

/*
 * A buffer between inaccessible guards (its reservation): a MAP that runs
 * past its end pins nothing else of this process but fails (EFAULT).
 */
static void *alloc_guarded(size_t len, bool huge, struct fz_mem *mem)
{
	uintptr_t start;
	void *res, *buf;

	res = mmap(NULL, len + 2 * HUGE, PROT_NONE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (res == MAP_FAILED)
		return NULL;
	start = ((uintptr_t)res + HUGE - 1) & ~(HUGE - 1);
	buf = mmap((void *)start, len, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED |
		   (huge ? MAP_HUGETLB | MAP_HUGE_2M : 0), -1, 0);
	if (buf == MAP_FAILED || populate(buf, len, huge)) {
		munmap(res, len + 2 * HUGE);
		return NULL;
	}
	*mem = (struct fz_mem){ .start = start, .len = len,
				.res = (uintptr_t)res, .res_len = len + 2 * HUGE };
	return buf;
}

/*
 * The argument of the random ioctls: FZ_ARG bytes just before a guard page,
 * at an address far below the top of the user address space (a size of 4
 * GiB must run into the guard, not past TASK_SIZE).
 */
static void *alloc_arg(void)
{
	uint8_t *p = mmap((void *)(1ULL << 44), 2 * PAGE,
			  PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);

	if (p == MAP_FAILED)
		p = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED || mprotect(p + PAGE, PAGE, PROT_NONE))
		return NULL;
	return p + PAGE - FZ_ARG;
}

static uint32_t fz_id(struct fuzz *fz)
{
	switch (rnd_below(8)) {
	case 0:
		return 0;
	case 1:
		return rnd();
	case 2:
		return rnd_below(64);
	default:
		return fz->ids[rnd_below(fz->nids)];
	}
}

static uint64_t fz_iova(struct fuzz *fz)
{
	const uint64_t edges[] = {
		0, PAGE, HUGE, 1UL << 32, (1UL << 47) - PAGE, 1UL << 47,
		ULONG_MAX - PAGE + 1, ULONG_MAX, 0x10000,
	};

	switch (rnd_below(8)) {
	case 0:
		return edges[rnd_below(sizeof(edges) / sizeof(edges[0]))];
	case 1:
		return rnd();
	case 2:
		return rnd_below(64) * PAGE + (rnd_below(4) ? 0 : rnd_below(PAGE));
	case 3:
		return (1UL << 32) + rnd_below(64) * PAGE;
	default:
		/* Near what is mapped, where the interesting answers are */
		return fz->iovas[rnd_below(fz->niovas)] + rnd_below(8) * PAGE +
		       (rnd_below(4) ? 0 : rnd_below(PAGE));
	}
}

static uint64_t fz_len(void)
{
	const uint64_t edges[] = {
		0, 1, PAGE - 1, PAGE, PAGE + 1, 4 * PAGE, HUGE, HUGE + PAGE,
		ULONG_MAX, ULONG_MAX - PAGE + 1, 1UL << 63,
	};

	if (rnd_below(3))
		return edges[rnd_below(sizeof(edges) / sizeof(edges[0]))];
	return rnd_below(4) ? rnd_below(64) * PAGE : rnd();
}

static uint64_t fz_uptr(struct fuzz *fz)
{
	unsigned int i = rnd_below(FZ_BUFS);

	switch (rnd_below(8)) {
	case 0:
		return 0;
	case 1:
		return 0xffff888000000000ULL;	/* kernel address */
	case 2:
		return (uintptr_t)fz->scratch;
	case 3:
		return (uintptr_t)fz->buf[i] + rnd_below(fz->buf_len[i] + PAGE);
	default:
		return (uintptr_t)fz->buf[i] +
		       rnd_below(fz->buf_len[i] / PAGE) * PAGE;
	}
}

static uint32_t fz_size(uint32_t real)
{
	static const uint32_t sizes[] = { 0, 4, 8, 16, 24, 32, 40, 48, 64, 4096,
					  0xffffffff };

	switch (rnd_below(10)) {
	case 0:
		return sizes[rnd_below(sizeof(sizes) / sizeof(sizes[0]))];
	case 1:
		return real - 4;
	case 2:
		return real + 8;
	default:
		return real;
	}
}

/* A random mapping of a random IOAS of our iommufd (the model's), or NULL */
static struct m_area *fz_pick_area(struct fuzz *fz, uint32_t *ioas)
{
	struct m_ctx *x = &fz->m.ctx[fz->m.cur];
	uint32_t id, n = 0, pick = 0;

	for (id = 1; id < x->nobj; id++)
		if (x->obj[id].type == MO_IOAS && x->obj[id].nareas &&
		    !rnd_below(++n))
			pick = id;
	if (!pick)
		return NULL;
	*ioas = pick;
	return &x->obj[pick].areas[rnd_below(x->obj[pick].nareas)];
}

static void fz_remember_iova(struct fuzz *fz, uint64_t iova)
{
	fz->iovas[fz->niovas < FZ_IDS ? fz->niovas++ : rnd_below(FZ_IDS)] = iova;
}

static void fz_remember_id(struct fuzz *fz, uint32_t id)
{
	fz->ids[fz->nids < FZ_IDS ? fz->nids++ : rnd_below(FZ_IDS)] = id;
}

/*
 * Mostly start from a device that is bound, attached and has memory mapped,
 * so that the random calls reach the deep paths, not just argument checks.
 * These calls are judged too.
 */
static void fuzz_setup(struct fuzz *fz)
{
	struct vfio_device_bind_iommufd bind = {
		.argsz = sizeof(bind), .iommufd = fz->iommufd,
	};
	struct iommu_ioas_alloc alloc = { .size = sizeof(alloc) };
	struct iommu_ioas_map map = { .size = sizeof(map), .flags = M_RW };
	struct vfio_device_attach_iommufd_pt at = { .argsz = sizeof(at) };
	int i = rnd_below(FZ_BUFS);

	if (!rnd_below(8) || fz_device(fz, VFIO_DEVICE_BIND_IOMMUFD, &bind))
		return;
	fz_remember_id(fz, bind.out_devid);
	if (fz_iommufd(fz, IOMMU_IOAS_ALLOC, &alloc, sizeof(alloc)))
		return;
	fz_remember_id(fz, alloc.out_ioas_id);
	map.ioas_id = alloc.out_ioas_id;
	map.user_va = (uintptr_t)fz->buf[i];
	map.length = fz->buf_len[i];
	if (!fz_iommufd(fz, IOMMU_IOAS_MAP, &map, sizeof(map))) {
		fz_remember_iova(fz, map.iova);
		fz->setup_iova = map.iova;
		fz->setup_len = fz->buf_len[i];
	}
	at.pt_id = alloc.out_ioas_id;
	if (!fz_device(fz, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &at)) {
		fz_remember_id(fz, at.pt_id);
		fz->dev_ioas = alloc.out_ioas_id;
	}
}

static void fuzz_reopen(struct __test_metadata *_metadata, struct fuzz *fz,
			bool dev)
{
	if (dev) {
		close(fz->devfd);
		m_dev_close(fz);
		fz->devfd = open(fz->path, O_RDWR);
		ASSERT_LE(0, fz->devfd);
	} else {
		close(fz->iommufd);
		m_iommufd_reopen(fz);
		fz->iommufd = open("/dev/iommu", O_RDWR);
		ASSERT_LE(0, fz->iommufd);
		fz->nids = fz->niovas = 0;
	}
	fz->reopens++;
	fuzz_setup(fz);
}

union fz_arg {
	uint8_t raw[FZ_ARG];
	uint32_t u32[FZ_ARG / 4];
	uint64_t u64[FZ_ARG / 8];
	struct iommu_destroy destroy;
	struct iommu_ioas_alloc alloc;
	struct iommu_ioas_map map;
	struct iommu_ioas_copy copy;
	struct iommu_ioas_unmap unmap;
	struct iommu_ioas_iova_ranges ranges;
	struct iommu_ioas_allow_iovas allow;
	struct iommu_option option;
	struct iommu_hwpt_alloc hwpt;
	struct iommu_hw_info info;
	struct iommu_ioas_noiommu_get_pa get_pa;
	struct vfio_device_bind_iommufd bind;
	struct vfio_device_attach_iommufd_pt attach;
	struct vfio_device_detach_iommufd_pt detach;
	struct vfio_device_info dinfo;
	struct vfio_region_info region;
	struct vfio_irq_info irq;
};

/* One random ioctl, or a close and re-open of one of the two fds */
static void fuzz_one(struct __test_metadata *_metadata, struct fuzz *fz)
{
	union fz_arg *a = fz->arg;
	unsigned long req;
	void *arg = a;
	int fd = fz->iommufd, rc, i, pick = rnd_below(100);
	uint32_t attach_in = 0, sid;
	struct m_area *ar;
	uint64_t np;

	memset(a, 0, sizeof(*a));
	/* Random words in the spare bytes, for the size rules */
	if (!rnd_below(4))
		for (i = 0; i < FZ_ARG / 4; i++)
			a->u32[i] = rnd_below(3) ? 0 : rnd();

	if (!rnd_below(200)) {
		fuzz_reopen(_metadata, fz, rnd_below(2));
		return;
	} else if (pick < 6) {
		req = IOMMU_IOAS_ALLOC;
		a->alloc.size = fz_size(sizeof(a->alloc));
		a->alloc.flags = rnd_below(8) ? 0 : rnd();
	} else if (pick < 12) {
		req = IOMMU_DESTROY;
		a->destroy.size = fz_size(sizeof(a->destroy));
		a->destroy.id = fz_id(fz);
	} else if (pick < 30) {
		req = IOMMU_IOAS_MAP;
		a->map.size = fz_size(sizeof(a->map));
		a->map.flags = rnd_below(8) ? (IOMMU_IOAS_MAP_READABLE |
			       IOMMU_IOAS_MAP_WRITEABLE |
			       (rnd_below(2) ? IOMMU_IOAS_MAP_FIXED_IOVA : 0)) :
			       (uint32_t)rnd();
		a->map.ioas_id = rnd_below(4) ? fz_id(fz) : fz->dev_ioas;
		a->map.user_va = fz_uptr(fz);
		a->map.length = rnd_below(3) ? rnd_below(8) * PAGE : fz_len();
		a->map.iova = fz_iova(fz);
	} else if (pick < 40) {
		req = IOMMU_IOAS_UNMAP;
		a->unmap.size = fz_size(sizeof(a->unmap));
		a->unmap.ioas_id = fz_id(fz);
		a->unmap.iova = fz_iova(fz);
		a->unmap.length = fz_len();
		/* A whole mapping, maybe running on into the next ones */
		if (!rnd_below(4) && (ar = fz_pick_area(fz, &sid))) {
			a->unmap.ioas_id = sid;
			a->unmap.iova = ar->iova;
			a->unmap.length = ar->len + rnd_below(3) * PAGE;
		}
	} else if (pick < 48) {
		req = IOMMU_IOAS_COPY;
		a->copy.size = fz_size(sizeof(a->copy));
		a->copy.flags = rnd_below(8) ? (IOMMU_IOAS_MAP_READABLE |
				(rnd_below(2) ? IOMMU_IOAS_MAP_FIXED_IOVA : 0)) :
				(uint32_t)rnd();
		a->copy.dst_ioas_id = fz_id(fz);
		a->copy.src_ioas_id = fz_id(fz);
		a->copy.length = fz_len();
		a->copy.dst_iova = fz_iova(fz);
		a->copy.src_iova = fz_iova(fz);
		/* Mostly from what is mapped, often to the device's IOAS */
		if (rnd_below(2) && (ar = fz_pick_area(fz, &sid))) {
			np = (ar->len + PAGE - 1) / PAGE;
			a->copy.src_ioas_id = sid;
			a->copy.src_iova = ar->iova + rnd_below(np) * PAGE;
			a->copy.length = (1 + rnd_below(np)) * PAGE;
			if (rnd_below(2))
				a->copy.dst_ioas_id = fz->dev_ioas;
		}
	} else if (pick < 70) {
		req = IOMMU_IOAS_NOIOMMU_GET_PA;
		a->get_pa.size = fz_size(sizeof(a->get_pa));
		a->get_pa.flags = rnd_below(16) ? 0 : rnd();
		a->get_pa.__reserved = rnd_below(16) ? 0 : rnd();
		a->get_pa.ioas_id = rnd_below(2) ? fz->dev_ioas : fz_id(fz);
		a->get_pa.iova = fz_iova(fz);
		if (rnd_below(2))
			a->get_pa.iova = fz->setup_iova +
					 rnd_below(fz->setup_len + PAGE);
		a->get_pa.length = fz_len();
	} else if (pick < 73) {
		req = IOMMU_IOAS_IOVA_RANGES;
		a->ranges.size = fz_size(sizeof(a->ranges));
		a->ranges.ioas_id = fz_id(fz);
		a->ranges.num_iovas = rnd_below(4);
		a->ranges.allowed_iovas = rnd_below(2) ? (uintptr_t)fz->scratch :
					  fz_uptr(fz);
	} else if (pick < 75) {
		req = IOMMU_IOAS_ALLOW_IOVAS;
		a->allow.size = fz_size(sizeof(a->allow));
		a->allow.ioas_id = fz_id(fz);
		a->allow.num_iovas = rnd_below(3);
		a->allow.allowed_iovas = (uintptr_t)fz->scratch;
		for (i = 0; i < 4; i++)
			((uint64_t *)fz->scratch)[i] = fz_iova(fz);
	} else if (pick < 77) {
		req = IOMMU_OPTION;
		a->option.size = fz_size(sizeof(a->option));
		a->option.option_id = rnd_below(3);
		a->option.op = rnd_below(3);
		a->option.object_id = fz_id(fz);
		a->option.val64 = rnd_below(3);
	} else if (pick < 80) {
		req = IOMMU_HWPT_ALLOC;
		a->hwpt.size = fz_size(sizeof(a->hwpt));
		a->hwpt.flags = rnd_below(2) ? 0 : rnd_below(16);
		a->hwpt.dev_id = fz_id(fz);
		a->hwpt.pt_id = fz_id(fz);
	} else if (pick < 82) {
		req = IOMMU_GET_HW_INFO;
		a->info.size = fz_size(sizeof(a->info));
		a->info.dev_id = fz_id(fz);
		a->info.data_len = rnd_below(64);
		a->info.data_uptr = (uintptr_t)fz->scratch;
	} else if (pick < 84) {
		/* Any other iommufd command number, most of them unknown */
		req = _IO(IOMMUFD_TYPE, 0x78 + rnd_below(48));
		for (i = 0; i < 16; i++)
			a->u32[i] = rnd_below(2) ? fz_id(fz) : rnd();
		a->u32[0] = fz_size(rnd_below(128));
	} else {
		fd = fz->devfd;
		switch (rnd_below(12)) {
		case 0:
			req = VFIO_DEVICE_BIND_IOMMUFD;
			a->bind.argsz = fz_size(sizeof(a->bind));
			a->bind.flags = rnd_below(8) ? 0 : rnd();
			a->bind.iommufd = rnd_below(8) ? fz->iommufd :
					  (int)rnd_below(64) - 1;
			break;
		case 1:
		case 2:
		case 3:
			req = VFIO_DEVICE_ATTACH_IOMMUFD_PT;
			a->attach.argsz = fz_size(sizeof(a->attach));
			a->attach.flags = rnd_below(8) ? 0 : rnd();
			a->attach.pt_id = rnd_below(2) ? fz->dev_ioas : fz_id(fz);
			attach_in = a->attach.pt_id;
			break;
		case 4:
			req = VFIO_DEVICE_DETACH_IOMMUFD_PT;
			a->detach.argsz = fz_size(sizeof(a->detach));
			a->detach.flags = rnd_below(8) ? 0 : rnd();
			break;
		case 5:
		case 6:
			req = VFIO_DEVICE_GET_INFO;
			a->dinfo.argsz = fz_size(sizeof(a->dinfo));
			break;
		default:
			req = VFIO_DEVICE_GET_REGION_INFO;
			a->region.argsz = fz_size(sizeof(a->region));
			a->region.index = rnd_below(12);
			break;
		}
	}
	if (!rnd_below(64))
		arg = rnd_below(2) ? NULL : (void *)0xffff888000000000ULL;

	fz->calls++;
	if (fd == fz->iommufd)
		rc = fz_iommufd(fz, req, arg, FZ_ARG);
	else
		rc = fz_device(fz, req, arg);
	if (rc) {
		fz->errnos[rc & 255]++;
		return;
	}
	fz->ok++;
	if (arg != a)
		return;
	/* Remember new objects and IOVAs: more calls then reach them */
	if (req == IOMMU_IOAS_MAP)
		fz_remember_iova(fz, a->map.iova);
	else if (req == IOMMU_IOAS_COPY)
		fz_remember_iova(fz, a->copy.dst_iova);
	if (req == IOMMU_IOAS_ALLOC)
		fz_remember_id(fz, a->alloc.out_ioas_id);
	else if (req == IOMMU_HWPT_ALLOC)
		fz_remember_id(fz, a->hwpt.out_hwpt_id);
	else if (req == VFIO_DEVICE_BIND_IOMMUFD)
		fz_remember_id(fz, a->bind.out_devid);
	else if (req == VFIO_DEVICE_ATTACH_IOMMUFD_PT) {
		fz_remember_id(fz, a->attach.pt_id);
		/* Attached to an IOAS: the kernel answers with the hwpt */
		if (a->attach.pt_id != attach_in)
			fz->dev_ioas = attach_in;
	}
}

STRESS_TEST(fuzz)
{
	unsigned long n = env_ul("FUZZ_CALLS", 10000);
	static struct fuzz fz;
	struct iommu_test_cmd_probe { uint32_t size, op; } *probe;
	struct baseline b;
	struct timespec t0, t1;
	int i;

	memset(&fz, 0, sizeof(fz));
	fz.md = _metadata;
	fz.seed = env_ul("STRESS_SEED", 1);
	cdev_path(fz.path, sizeof(fz.path));
	if (!fz.path[0])
		SKIP(return, "no device cdev");
	TH_LOG("seed %lu, %lu calls (replay: STRESS_SEED=%lu FUZZ_CALLS=%lu)",
	       fz.seed, n, fz.seed, n);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	rnd_state = fz.seed * 0x9e3779b97f4a7c15ULL + 1;
	fz.thp = !access("/sys/kernel/mm/transparent_hugepage", F_OK);
	baseline_take(&b);
	for (i = 0; i < FZ_BUFS; i++) {
		fz.buf_len[i] = i == 0 ? HUGE : (i + 1) * 4 * PAGE;
		fz.buf[i] = alloc_guarded(fz.buf_len[i], i == 0, &fz.mem[i]);
		if (!fz.buf[i]) {
			fz.buf_len[i] = 16 * PAGE;
			fz.buf[i] = alloc_guarded(fz.buf_len[i], false,
						  &fz.mem[i]);
		}
		ASSERT_NE(NULL, fz.buf[i]);
	}
	fz.scratch = alloc_guarded(16 * PAGE, false, &fz.mem[FZ_BUFS]);
	fz.arg = alloc_arg();
	ASSERT_NE(NULL, fz.scratch);
	ASSERT_NE(NULL, fz.arg);
	fz.devfd = open(fz.path, O_RDWR);
	ASSERT_LE(0, fz.devfd);
	fz.iommufd = open("/dev/iommu", O_RDWR);
	ASSERT_LE(0, fz.iommufd);
	/* Does the kernel have IOMMU_TEST_CMD (CONFIG_IOMMUFD_TEST)? */
	probe = fz.arg;
	memset(fz.arg, 0, FZ_ARG);
	probe->size = FZ_ARG;
	fz.has_test = ioctl(fz.iommufd, _IO(IOMMUFD_TYPE, M_TEST_NR), probe) &&
		      errno != ENOTTY;
	fz.m.cur = m_ctx_open(&fz);
	fz.m.dev_ctx = -1;
	fz.pins0 = pins_held();
	fuzz_setup(&fz);

	while (fz.calls < n && !fz.failed) {
		fuzz_one(_metadata, &fz);
		if (fz.calls % FZ_PINS_EVERY == 0 && !fz.failed)
			fz_check_pins(&fz);
	}
	if (!fz.failed)
		fz_check_pins(&fz);
	close(fz.devfd);
	close(fz.iommufd);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	TH_LOG("%lu calls in %ld s (IOMMU_TEST_CMD %s), %lu succeeded, %lu reopens, %lu resyncs after a selftest op",
	       fz.calls, (long)(t1.tv_sec - t0.tv_sec),
	       fz.has_test ? "present" : "absent", fz.ok, fz.reopens,
	       fz.resyncs);
	TH_LOG("judged: %lu answers exact, %lu from a set of two (memory not ours), %lu not judged (selftest ops); %lu GET_PA addresses compared (%lu in walks of new mappings), %lu GET_PA probes, %lu IDs/IOVAs/lengths compared, %lu pin counts",
	       fz.exact, fz.sets, fz.unjudged, fz.pa_checks, fz.walks,
	       fz.probes, fz.ids_checked, fz.pins_checks);
	TH_LOG("%lu MAPs and %lu COPYs succeeded (%lu COPY destinations with a table, walked); %lu UNMAPs removed mappings and then failed ENOENT; %lu software tables made by attach or HWPT_ALLOC, %lu refused for their mappings (EFAULT, EADDRINUSE)",
	       fz.maps, fz.copies, fz.copies_walked, fz.partial, fz.tables,
	       fz.fill_errs);
	TH_LOG("errnos: EINVAL %lu ENOENT %lu EOPNOTSUPP %lu EFAULT %lu EBUSY %lu EEXIST %lu ENOTTY %lu E2BIG %lu EOVERFLOW %lu EADDRINUSE %lu EPERM %lu ENOSPC %lu",
	       fz.errnos[EINVAL], fz.errnos[ENOENT], fz.errnos[EOPNOTSUPP],
	       fz.errnos[EFAULT], fz.errnos[EBUSY], fz.errnos[EEXIST],
	       fz.errnos[ENOTTY], fz.errnos[E2BIG], fz.errnos[EOVERFLOW],
	       fz.errnos[EADDRINUSE], fz.errnos[EPERM], fz.errnos[ENOSPC]);
	/* A fuzzer that never gets past the argument checks proves little */
	EXPECT_LT(n / 50, fz.ok);
	EXPECT_LT(0, fz.pa_checks);
	EXPECT_NOTHING_LOST(&b);
	for (i = 0; i < FZ_BUFS; i++)
		munmap(fz.buf[i], fz.buf_len[i]);
	munmap(fz.scratch, 16 * PAGE);
}

/*
 * 3. Races. Three workers MAP, GET_PA, COPY and UNMAP in private and in
 * overlapping IOVA ranges of two IOASes while the main thread attaches,
 * replaces and detaches the device under their feet. Every call is logged
 * with its answer and with two ticks of a global counter taken just before
 * and just after it (the main thread's calls too), and judged afterwards:
 *  - a worker's private ranges (its own slot in either IOAS, and the slot
 *    it COPYs to in the other one) have an exact shadow: MAP, COPY and
 *    UNMAP must succeed (UNMAP with the exact length), GET_PA must give the
 *    exact address (pagemap's, offset in the page included; the window of
 *    its buffer that is mapped moves every iteration) and length, or
 *    EOPNOTSUPP, each only if the device's attachment during the call (the
 *    main thread's log) allows it: a table that was there the whole time
 *    must answer, one that was not there the whole time must not; after the
 *    UNMAP returned GET_PA must be ENOENT;
 *  - the shared range (16 pages of the first IOAS, where two buffers are
 *    mapped in turn, so the address behind an IOVA changes) is judged
 *    against the shadow of all the mappings that were ever made there: an
 *    answer must be one some serialization of the calls allows. GET_PA:
 *    the address and length of a mapping that may have been there during
 *    the call, ENOENT only if no mapping surely held the IOVA the whole
 *    time, EOPNOTSUPP only if a mapping may have and the table may not
 *    have been there; MAP: EEXIST only if an overlapping mapping may have
 *    existed, success only if none surely did; UNMAP: the bytes of a set of
 *    mappings that may have been there, at least those that surely were,
 *    ENOENT only if one may have stuck out, none surely was inside, or a
 *    MAP inside the range ran at the same time (iommufd's unmap walk drops
 *    its lock between mappings, see race_check_shared()), EBUSY only while
 *    another call worked on the range.
 * The seed (STRESS_SEED) and RACE_ITERS are printed; a mismatch names the
 * worker, iteration, call, ticks and the mappings and calls around it (the
 * interleaving itself does not replay).
 */
#define RACE_WORKERS	3
#define RACE_SHARED	0x10000000UL	/* IOVA of the region all workers use */
#define RACE_PAGES	16
#define RACE_OWN	8	/* pages of a worker's buffer */
#define RACE_WIN	4	/* of which it maps a window at a time */
#define RACE_COPY	(1UL << 27)	/* its copy, in the other IOAS */
#define RACE_NO		UINT64_MAX

enum { RO_MAP, RO_UNMAP, RO_COPY, RO_GET_PA };
enum { RW_OWN, RW_COPY, RW_GONE, RW_SHARED };
static const char *const ro_names[] = { "MAP", "UNMAP", "COPY", "GET_PA" };
static const char *const rw_names[] = {
	"own range", "own copy", "own range after its UNMAP", "shared range",
};

struct rev {			/* one call of a worker and its answer */
	uint64_t s, e;		/* ticks just before and just after it */
	uint64_t iova, len;	/* GET_PA: len is the input length */
	uint64_t va;		/* MAP, COPY: the user address behind iova */
	uint64_t pa, out;	/* GET_PA: the answer; UNMAP: bytes unmapped */
	uint32_t iter;
	uint8_t op, where, ioas, worker;
	int err;
};

struct aev {			/* one attach, replace or detach */
	uint64_t s, e;
	int before, after;	/* index of the IOAS attached, -1 none */
};

struct race {
	struct dev_ctx c;
	uint32_t ioas[2];
	uint8_t *shared[2];
	uint64_t shared_pa[2][RACE_PAGES];
	uint64_t seq;
	unsigned long iters, seed;
	volatile bool stop;
	unsigned int done;
	struct aev *aev;
	unsigned long naev;
	int state0;
	/* the verdict */
	unsigned long fails, exact, pa_exact, flux, nshared, pa_shared;
	unsigned long racy_enoent;	/* UNMAP ENOENTs only a racing MAP explains */
	unsigned long attach_ops;
};

struct worker {
	struct race *r;
	unsigned int id;
	uint64_t seed;
	uint8_t *own;
	uint64_t own_pa[RACE_OWN];
	struct rev *ev;
	unsigned long nev, cap;
};

static uint64_t wrnd(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ULL;
}

static uint64_t race_tick(struct race *r)
{
	return __atomic_fetch_add(&r->seq, 1, __ATOMIC_SEQ_CST);
}

static struct rev *race_rec(struct worker *w, int op, int where, int ioas,
			    uint64_t iova, uint64_t len, uint32_t iter)
{
	if (w->nev == w->cap) {
		w->cap = w->cap ? 2 * w->cap : 1024;
		w->ev = realloc(w->ev, w->cap * sizeof(*w->ev));
		if (!w->ev)
			abort();
	}
	w->ev[w->nev] = (struct rev){
		.op = op, .where = where, .ioas = ioas, .worker = w->id,
		.iova = iova, .len = len, .iter = iter,
	};
	return &w->ev[w->nev++];
}

static int race_unmap(int fd, uint32_t ioas, uint64_t iova, uint64_t len,
		      uint64_t *out)
{
	struct iommu_ioas_unmap cmd = {
		.size = sizeof(cmd), .ioas_id = ioas, .iova = iova, .length = len,
	};
	int rc = ioctl(fd, IOMMU_IOAS_UNMAP, &cmd);

	*out = cmd.length;
	return rc;
}

/* One logged call; its answer in the event */
static void race_do(struct race *r, struct rev *ev)
{
	int fd = r->c.iommufd, rc;
	uint32_t ioas = r->ioas[ev->ioas];
	uint64_t iova = ev->iova, len = ev->len;

	ev->s = race_tick(r);
	switch (ev->op) {
	case RO_MAP:
		rc = ioas_map(fd, ioas, (void *)(uintptr_t)ev->va, len, &iova,
			      true);
		break;
	case RO_COPY:	/* from the other IOAS, same IOVA offset */
		rc = ioas_copy(fd, ioas, iova, r->ioas[!ev->ioas],
			       iova - RACE_COPY, len);
		break;
	case RO_UNMAP:
		rc = race_unmap(fd, ioas, iova, len, &ev->out);
		break;
	default:
		rc = get_pa(fd, ioas, iova, &len, &ev->pa);
		ev->out = len;
		break;
	}
	ev->err = rc ? errno : 0;
	ev->e = race_tick(r);
}

/* A GET_PA input length: to the end of the window, shorter, longer, any */
static uint64_t race_len(uint64_t *s, uint64_t rest)
{
	switch (wrnd(s) % 4) {
	case 0:
		return rest;
	case 1:
		return 1 + wrnd(s) % rest;
	case 2:
		return rest + 1 + wrnd(s) % (2 * PAGE);
	default:
		return UINT64_MAX;
	}
}

static uint64_t race_off(uint64_t *s, uint64_t len)
{
	uint64_t off = wrnd(s) % (len / PAGE) * PAGE;

	return off + (wrnd(s) & 1 ? wrnd(s) % PAGE : 0);
}

static void *race_worker(void *arg)
{
	struct worker *w = arg;
	struct race *r = w->r;
	uint64_t slot = (1UL << 33) + w->id * (1UL << 28), win, off, len;
	const uint64_t wlen = RACE_WIN * PAGE;
	struct rev *ev;
	unsigned long i;
	int x, b;

	for (i = 0; i < r->iters && !r->stop; i++) {
		x = wrnd(&w->seed) & 1;
		win = wrnd(&w->seed) % (RACE_OWN - RACE_WIN + 1);

		/* Own slot: an exact shadow */
		ev = race_rec(w, RO_MAP, RW_OWN, x, slot, wlen, i);
		ev->va = (uintptr_t)w->own + win * PAGE;
		race_do(r, ev);
		if (!ev->err) {
			off = race_off(&w->seed, wlen);
			ev = race_rec(w, RO_GET_PA, RW_OWN, x, slot + off,
				      race_len(&w->seed, wlen - off), i);
			race_do(r, ev);
			ev = race_rec(w, RO_COPY, RW_COPY, !x, slot + RACE_COPY,
				      wlen, i);
			race_do(r, ev);
			if (!ev->err) {
				off = race_off(&w->seed, wlen);
				ev = race_rec(w, RO_GET_PA, RW_COPY, !x,
					      slot + RACE_COPY + off,
					      race_len(&w->seed, wlen - off), i);
				race_do(r, ev);
				ev = race_rec(w, RO_UNMAP, RW_COPY, !x,
					      slot + RACE_COPY, wlen, i);
				race_do(r, ev);
			}
			ev = race_rec(w, RO_UNMAP, RW_OWN, x, slot, wlen, i);
			race_do(r, ev);
			off = race_off(&w->seed, wlen);
			ev = race_rec(w, RO_GET_PA, RW_GONE, x, slot + off,
				      race_len(&w->seed, wlen - off), i);
			race_do(r, ev);
		}

		/* Shared region: overlapping maps, unmaps and lookups */
		off = wrnd(&w->seed) % RACE_PAGES;
		len = (1 + wrnd(&w->seed) % (RACE_PAGES - off)) * PAGE;
		switch (wrnd(&w->seed) % 3) {
		case 0:
			b = wrnd(&w->seed) & 1;
			ev = race_rec(w, RO_MAP, RW_SHARED, 0,
				      RACE_SHARED + off * PAGE, len, i);
			ev->va = (uintptr_t)r->shared[b] + off * PAGE;
			break;
		case 1:
			ev = race_rec(w, RO_UNMAP, RW_SHARED, 0,
				      RACE_SHARED + off * PAGE, len, i);
			break;
		default:
			ev = race_rec(w, RO_GET_PA, RW_SHARED, 0,
				      RACE_SHARED + off * PAGE, 0, i);
			ev->iova += race_off(&w->seed, len);
			ev->len = race_len(&w->seed,
					   RACE_SHARED + off * PAGE + len -
					   ev->iova);
		}
		race_do(r, ev);
	}
	__atomic_add_fetch(&r->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/* The checks, after the run */

static void __attribute__((format(printf, 3, 4)))
race_fail(struct race *r, const struct rev *ev, const char *fmt, ...)
{
	char msg[400];
	va_list ap;

	if (r->fails++ >= 10)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr,
		"# RACE MISMATCH seed %lu worker %u iteration %u: %s %s of IOAS %u iova %#llx length %#llx (ticks %llu..%llu): %s, got %s",
		r->seed, ev->worker, ev->iter, ro_names[ev->op],
		rw_names[ev->where], r->ioas[ev->ioas], (ull)ev->iova,
		(ull)ev->len, (ull)ev->s, (ull)ev->e, msg, errname(ev->err));
	if (ev->op == RO_GET_PA && !ev->err)
		fprintf(stderr, " phys %#llx length %#llx", (ull)ev->pa,
			(ull)ev->out);
	if (ev->op == RO_UNMAP && !ev->err)
		fprintf(stderr, " (%#llx bytes)", (ull)ev->out);
	fprintf(stderr, "\n");
}

/*
 * Was IOAS @i possibly with, possibly without a table between ticks s and
 * e? The device's state is known between the main thread's calls; during
 * one it is the state before or the one after (a replace adds the new table
 * before it removes the old one).
 */
static void race_table(struct race *r, int i, uint64_t s, uint64_t e,
		       bool *with, bool *without)
{
	uint64_t from = 0;
	int st = r->state0;
	unsigned long k;

	*with = *without = false;
#define NOTE(state) do { *with |= (state) == i; *without |= (state) != i; } while (0)
	for (k = 0; k < r->naev; k++) {
		struct aev *a = &r->aev[k];

		if (from < e && a->s > s)
			NOTE(st);
		if (a->s > e)
			return;
		if (a->e > s) {
			NOTE(a->before);
			NOTE(a->after);
		}
		st = a->after;
		from = a->e;
	}
	if (from < e)
		NOTE(st);
#undef NOTE
}

/* pagemap's answer for @va in a buffer whose page addresses are @pas */
static void race_expect(const uint64_t *pas, int npages, uint8_t *base,
			uint64_t va, uint64_t limit, uint64_t *pa,
			uint64_t *len)
{
	int p = (va - (uintptr_t)base) / PAGE;
	uint64_t run = PAGE - va % PAGE;

	*pa = pas[p] + va % PAGE;
	while (run < limit && p + 1 < npages && pas[p + 1] == pas[p] + PAGE) {
		run += PAGE;
		p++;
	}
	*len = run < limit ? run : limit;
}

/* GET_PA against an exact shadow: one mapping, IOVA @base -> user @va */
static void race_check_own(struct race *r, struct worker *w,
			   const struct rev *ev, uint64_t base, uint64_t va)
{
	uint64_t limit = base + RACE_WIN * PAGE - ev->iova, pa, len;
	bool with, without;

	race_table(r, ev->ioas, ev->s, ev->e, &with, &without);
	if (with && without)
		r->flux++;
	else
		r->exact++;
	if (ev->err == EOPNOTSUPP && without)
		return;
	if (ev->err || !with) {
		race_fail(r, ev, "expected %s", with && without ?
			  "the address or EOPNOTSUPP" : with ?
			  "the address" : "EOPNOTSUPP (no table the whole time)");
		return;
	}
	race_expect(w->own_pa, RACE_OWN, w->own, va + (ev->iova - base),
		    ev->len < limit ? ev->len : limit, &pa, &len);
	if (ev->pa != pa || ev->out != len)
		race_fail(r, ev, "expected phys %#llx length %#llx", (ull)pa,
			  (ull)len);
	r->pa_exact++;
}

static void race_check_worker(struct race *r, struct worker *w)
{
	uint64_t va = 0;
	unsigned long k;

	for (k = 0; k < w->nev; k++) {
		const struct rev *ev = &w->ev[k];

		if (ev->where == RW_SHARED)
			continue;
		if (ev->op == RO_MAP)
			va = ev->va;
		if (ev->op == RO_GET_PA && ev->where == RW_GONE) {
			r->exact++;
			if (ev->err != ENOENT)
				race_fail(r, ev, "expected ENOENT (UNMAP returned)");
		} else if (ev->op == RO_GET_PA) {
			/* the slot or its copy: RACE_COPY-aligned */
			race_check_own(r, w, ev, ev->iova & ~(RACE_COPY - 1),
				       va);
		} else {
			r->exact++;
			if (ev->err)
				race_fail(r, ev, "expected success");
			else if (ev->op == RO_UNMAP &&
				 ev->out != RACE_WIN * PAGE)
				race_fail(r, ev, "expected %#lx bytes unmapped",
					  RACE_WIN * PAGE);
		}
	}
}

struct sarea {			/* a mapping some MAP made in the shared range */
	uint64_t iova, last, va, s, e;
	uint64_t dead;		/* surely gone after this tick */
	uint64_t rm1, rm2;	/* starts of the first two UNMAPs that may remove it */
	const struct rev *rm1_ev;
};

static int rev_cmp(const void *pa, const void *pb)
{
	const struct rev *a = *(const struct rev *const *)pa;
	const struct rev *b = *(const struct rev *const *)pb;

	return a->s < b->s ? -1 : a->s > b->s;
}

/* Mapping @a was there during all of [s, e], whatever @ex (an UNMAP) did */
static bool sa_sure(const struct sarea *a, uint64_t s, uint64_t e,
		    const struct rev *ex)
{
	uint64_t rm = a->rm1_ev == ex ? a->rm2 : a->rm1;

	return a->e < s && rm > e;
}

/* It may have been there at some time of [s, e] */
static bool sa_maybe(const struct sarea *a, uint64_t s, uint64_t e)
{
	return a->s < e && a->dead > s;
}

/* For a mismatch in the shared range: the mappings and calls around it */
static void race_dump(struct race *r, const struct rev *q,
		      const struct sarea *sa, unsigned long na,
		      const struct rev **ev, unsigned long n)
{
	uint64_t first = q->iova, last = q->iova + (q->len ? q->len : 1) - 1;
	uint64_t from = q->s > 2000 ? q->s - 2000 : 0, to = q->e + 2000;
	unsigned long i, lines = 0;

	if (r->fails > 3)
		return;
	for (i = 0; i < na && lines < 40; i++)
		if (sa[i].iova <= last && first <= sa[i].last &&
		    sa[i].s < to && sa[i].dead > from && ++lines)
			fprintf(stderr, "#   mapping %#llx..%#llx (va %#llx) made in ticks %llu..%llu, surely gone after %lld, first UNMAPs that may remove it start at %lld, %lld\n",
				(ull)sa[i].iova, (ull)sa[i].last, (ull)sa[i].va,
				(ull)sa[i].s, (ull)sa[i].e,
				(long long)sa[i].dead, (long long)sa[i].rm1,
				(long long)sa[i].rm2);
	for (i = 0; i < n && lines < 80; i++)
		if (ev[i]->op != RO_GET_PA && ev[i]->iova <= last &&
		    first <= ev[i]->iova + ev[i]->len - 1 && ev[i]->s < to &&
		    ev[i]->e > from && ++lines)
			fprintf(stderr, "#   worker %u: %s %#llx..%#llx in ticks %llu..%llu: %s (%#llx)\n",
				ev[i]->worker, ro_names[ev[i]->op],
				(ull)ev[i]->iova,
				(ull)(ev[i]->iova + ev[i]->len - 1),
				(ull)ev[i]->s, (ull)ev[i]->e,
				errname(ev[i]->err), (ull)ev[i]->out);
}

static void race_check_shared(struct race *r, struct worker *w, int nw)
{
	const struct rev **ev = NULL;
	struct sarea *sa = NULL;
	unsigned long n = 0, na = 0, i, j;
	uint8_t *sums;
	int k;

	for (k = 0; k < nw; k++)
		for (i = 0; i < w[k].nev; i++)
			if (w[k].ev[i].where == RW_SHARED)
				n++;
	ev = calloc(n + 1, sizeof(*ev));
	sa = calloc(n + 1, sizeof(*sa));
	sums = calloc(RACE_PAGES * (n + 1) + 1, 1);
	if (!ev || !sa || !sums)
		abort();
	for (n = 0, k = 0; k < nw; k++)
		for (i = 0; i < w[k].nev; i++)
			if (w[k].ev[i].where == RW_SHARED)
				ev[n++] = &w[k].ev[i];
	qsort(ev, n, sizeof(*ev), rev_cmp);
	for (i = 0; i < n; i++)
		if (ev[i]->op == RO_MAP && !ev[i]->err)
			sa[na++] = (struct sarea){
				.iova = ev[i]->iova,
				.last = ev[i]->iova + ev[i]->len - 1,
				.va = ev[i]->va, .s = ev[i]->s, .e = ev[i]->e,
				.dead = RACE_NO, .rm1 = RACE_NO, .rm2 = RACE_NO,
			};
	/* Which UNMAPs may remove each mapping, and which surely did */
	for (j = 0; j < na; j++) {
		struct sarea *a = &sa[j];

		for (i = 0; i < n; i++) {
			const struct rev *u = ev[i];

			if (u->op != RO_UNMAP || u->iova > a->iova ||
			    u->iova + u->len - 1 < a->last || u->e < a->s)
				continue;
			if (!u->err && u->s > a->e && u->e < a->dead)
				a->dead = u->e;
			if (u->s < a->rm1) {
				a->rm2 = a->rm1;
				a->rm1 = u->s;
				a->rm1_ev = u;
			} else if (u->s < a->rm2) {
				a->rm2 = u->s;
			}
		}
	}
	for (i = 0; i < n; i++) {
		const struct rev *q = ev[i];
		uint64_t first = q->iova, last = q->iova + q->len - 1;
		bool maybe = false, sure = false, stick = false, sure_stick = false;
		bool ok = false, busy = false, fresh = false, with, without;
		unsigned long fails = r->fails;
		uint64_t need = 0, pa, len, limit, total = 0, t;

		r->nshared++;
		if (q->op == RO_GET_PA) {
			race_table(r, 0, q->s, q->e, &with, &without);
			for (j = 0; j < na; j++) {
				struct sarea *a = &sa[j];
				int b;

				if (first < a->iova || first > a->last)
					continue;
				sure |= sa_sure(a, q->s, q->e, NULL);
				if (!sa_maybe(a, q->s, q->e))
					continue;
				maybe = true;
				b = a->va - (uintptr_t)r->shared[0] <
				    RACE_PAGES * PAGE ? 0 : 1;
				limit = a->last - first + 1;
				race_expect(r->shared_pa[b], RACE_PAGES,
					    r->shared[b],
					    a->va + (first - a->iova),
					    q->len < limit ? q->len : limit,
					    &pa, &len);
				ok |= pa == q->pa && len == q->out;
			}
			if (!q->err) {
				r->pa_shared++;
				if (!with || !ok)
					race_fail(r, q, "%s", !with ?
						  "no table the whole time" :
						  "the address and length of no mapping that may have been there");
			} else if (q->err == ENOENT) {
				if (sure)
					race_fail(r, q, "a mapping held the IOVA the whole time");
			} else if (q->err != EOPNOTSUPP || !without || !maybe) {
				race_fail(r, q, "expected %s",
					  maybe ? "the address or ENOENT" : "ENOENT");
			}
			if (r->fails != fails)
				race_dump(r, q, sa, na, ev, n);
			continue;
		}
		for (j = 0; j < na; j++) {
			struct sarea *a = &sa[j];
			bool inside = a->iova >= first && a->last <= last;

			if (a->last < first || a->iova > last ||
			    (q->op == RO_MAP && a->s == q->s))
				continue;
			if (q->op == RO_MAP) {
				maybe |= sa_maybe(a, q->s, q->e);
				sure |= sa_sure(a, q->s, q->e, NULL);
			} else if (inside) {
				if (sa_sure(a, q->s, q->e, q))
					need += a->last - a->iova + 1;
				else if (sa_maybe(a, q->s, q->e))
					total += (a->last - a->iova + 1) / PAGE;
				/* made while the UNMAP ran (see below) */
				fresh |= a->s < q->e && a->e > q->s;
			} else {
				stick |= sa_maybe(a, q->s, q->e);
				sure_stick |= sa_sure(a, q->s, q->e, q);
			}
		}
		if (q->op == RO_MAP) {
			if (q->err == EEXIST ? !maybe : q->err || sure)
				race_fail(r, q, "expected %s", sure ? "EEXIST" :
					  maybe ? "success or EEXIST" : "success");
			if (r->fails != fails)
				race_dump(r, q, sa, na, ev, n);
			continue;
		}
		/* UNMAP: EBUSY only with another call on the range */
		for (j = 0; j < n && !busy; j++) {
			const struct rev *v = ev[j];

			busy = v != q && v->s < q->e && v->e > q->s &&
			       (v->op == RO_UNMAP || (v->op == RO_MAP && !v->err)) &&
			       v->iova <= last && first <= v->iova + v->len - 1;
		}
		if (q->err == EBUSY) {
			if (!busy)
				race_fail(r, q, "EBUSY with no other call on the range");
			if (r->fails != fails)
				race_dump(r, q, sa, na, ev, n);
			continue;
		}
		/*
		 * iopt_unmap_iova_range() removes one mapping at a time and
		 * drops the lock in between: a MAP made meanwhile in the part
		 * it has passed, reaching past its cursor, is found starting
		 * before the cursor, which is ENOENT although it lies inside
		 * the range. So ENOENT also when a mapping inside was made
		 * during the UNMAP (iommufd's unmap is not atomic against
		 * racing MAPs of the same range, "Userspace should not race
		 * map/unmap's of the same area").
		 */
		if (q->err == ENOENT) {
			if (!stick && fresh && need && !r->racy_enoent++ &&
			    !r->fails) {
				fprintf(stderr, "# note: UNMAP %#llx..%#llx of worker %u (ticks %llu..%llu) answered ENOENT while %#llx bytes were surely mapped inside, nothing stuck out, and a MAP inside ran at the same time:\n",
					(ull)first, (ull)last, q->worker,
					(ull)q->s, (ull)q->e, (ull)need);
				race_dump(r, q, sa, na, ev, n);
			}
			if (!stick && !fresh && need)
				race_fail(r, q, "%#llx bytes were surely mapped inside, nothing stuck out and nothing was mapped meanwhile",
					  (ull)need);
			if (r->fails != fails)
				race_dump(r, q, sa, na, ev, n);
			continue;
		}
		if (q->err || sure_stick || q->out < need || !q->out ||
		    (q->out - need) % PAGE) {
			race_fail(r, q, "expected %s", need ? "success" :
				  "success or ENOENT");
			race_dump(r, q, sa, na, ev, n);
			continue;
		}
		/* The rest: the sum of mappings that may have been there */
		memset(sums, 0, total + 1);
		sums[0] = 1;
		for (j = 0, t = 0; j < na; j++) {
			struct sarea *a = &sa[j];
			uint64_t np = (a->last - a->iova + 1) / PAGE, m;

			if (a->iova < first || a->last > last ||
			    sa_sure(a, q->s, q->e, q) || !sa_maybe(a, q->s, q->e))
				continue;
			t += np;
			for (m = t; m >= np; m--)
				sums[m] |= sums[m - np];
		}
		if ((q->out - need) / PAGE > total ||
		    !sums[(q->out - need) / PAGE])
			race_fail(r, q, "no set of mappings that may have been there has that size (at least %#llx)",
				  (ull)need);
		if (r->fails != fails)
			race_dump(r, q, sa, na, ev, n);
	}
	free(ev);
	free(sa);
	free(sums);
}

STRESS_TEST(race_map_unmap_get_pa_vs_attach)
{
	static struct race r;
	struct worker w[RACE_WORKERS];
	pthread_t th[RACE_WORKERS];
	struct baseline b;
	struct timespec t0, t1, t2;
	unsigned long cap = 0, nev = 0;
	int i, j, rc, st = 0;
	uint32_t pt;

	memset(&r, 0, sizeof(r));
	memset(w, 0, sizeof(w));
	r.iters = env_ul("RACE_ITERS", 200);
	r.seed = env_ul("STRESS_SEED", 1);
	r.seq = 1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	baseline_take(&b);
	for (i = 0; i < 2; i++) {
		r.shared[i] = alloc_buf(RACE_PAGES * PAGE, false);
		ASSERT_NE(NULL, r.shared[i]);
		for (j = 0; j < RACE_PAGES; j++)
			r.shared_pa[i][j] = pagemap_pa(r.shared[i] + j * PAGE);
	}
	ASSERT_EQ(0, dev_ctx_open(&r.c));
	r.ioas[0] = r.c.ioas;
	ASSERT_EQ(0, ioas_alloc(r.c.iommufd, &r.ioas[1]));
	r.state0 = 0;	/* dev_ctx_open() attached the device to ioas[0] */
	for (i = 0; i < RACE_WORKERS; i++) {
		w[i] = (struct worker){ .r = &r, .id = i,
					.seed = r.seed * 7 + i + 1 };
		w[i].own = alloc_buf(RACE_OWN * PAGE, false);
		ASSERT_NE(NULL, w[i].own);
		for (j = 0; j < RACE_OWN; j++)
			w[i].own_pa[j] = pagemap_pa(w[i].own + j * PAGE);
	}
	for (i = 0; i < RACE_WORKERS; i++)
		ASSERT_EQ(0, pthread_create(&th[i], NULL, race_worker, &w[i]));
	/* Attach, replace and detach under the workers' feet, logged */
	while (__atomic_load_n(&r.done, __ATOMIC_ACQUIRE) < RACE_WORKERS) {
		for (j = 0; j < 2; j++) {
			struct aev *a;

			if (j && r.attach_ops % 5 != 4)
				break;
			if (r.naev == cap) {
				cap = cap ? 2 * cap : 1024;
				r.aev = realloc(r.aev, cap * sizeof(*r.aev));
				ASSERT_NE(NULL, r.aev);
			}
			a = &r.aev[r.naev];
			a->before = st;
			pt = r.ioas[!(r.attach_ops & 1)];
			a->s = race_tick(&r);
			rc = j ? device_detach(r.c.devfd) :
				 device_attach(r.c.devfd, &pt);
			a->e = race_tick(&r);
			EXPECT_EQ(0, rc);
			a->after = rc ? st : j ? -1 : !(r.attach_ops & 1);
			st = a->after;
			r.naev++;
		}
		r.attach_ops++;
		if (_metadata->exit_code)
			r.stop = true;
	}
	for (i = 0; i < RACE_WORKERS; i++)
		pthread_join(th[i], NULL);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	for (i = 0; i < RACE_WORKERS; i++) {
		race_check_worker(&r, &w[i]);
		nev += w[i].nev;
	}
	race_check_shared(&r, w, RACE_WORKERS);
	clock_gettime(CLOCK_MONOTONIC, &t2);
	TH_LOG("seed %lu: %d workers x %lu iterations (%lu calls) against %lu attach/replace/detach in %ld s, checked in %ld s",
	       r.seed, RACE_WORKERS, r.iters, nev, r.naev,
	       (long)(t1.tv_sec - t0.tv_sec), (long)(t2.tv_sec - t1.tv_sec));
	TH_LOG("%lu UNMAPs of the shared range answered ENOENT that only a MAP racing inside the range explains (iommufd's unmap walk is not atomic)",
	       r.racy_enoent);
	TH_LOG("private ranges: %lu answers with one allowed answer (%lu exact GET_PA addresses), %lu GET_PA with the table in flux (address or EOPNOTSUPP); shared range: %lu answers checked against the serializations (%lu addresses); %lu mismatches",
	       r.exact, r.pa_exact, r.flux, r.nshared, r.pa_shared, r.fails);
	EXPECT_EQ(0, r.fails);
	EXPECT_LT(0, r.pa_exact);
	EXPECT_LT(0, r.pa_shared);
	dev_ctx_close(&r.c);
	for (i = 0; i < 2; i++)
		munmap(r.shared[i], RACE_PAGES * PAGE);
	for (i = 0; i < RACE_WORKERS; i++) {
		munmap(w[i].own, RACE_OWN * PAGE);
		free(w[i].ev);
	}
	free(r.aev);
	EXPECT_NOTHING_LOST(&b);
}

/* SIGKILL in the middle of map/GET_PA/unmap/attach */
STRESS_TEST(sigkill_mid_sequence)
{
	unsigned long rounds = env_ul("KILL_ROUNDS", 4), i;
	uint64_t seed = env_ul("STRESS_SEED", 1) * 31 + 5;
	struct baseline b;
	int status, p[2];
	char c;

	baseline_take(&b);
	for (i = 0; i < rounds; i++) {
		pid_t pid;

		ASSERT_EQ(0, pipe(p));
		pid = fork();
		ASSERT_LE(0, pid);
		if (!pid) {
			uint8_t *buf = alloc_buf(64 * PAGE, false);
			uint8_t *huge = alloc_buf(HUGE, true);
			struct dev_ctx ctx;
			uint64_t iova, pa, len;
			uint32_t pt;
			bool told = false;

			close(p[0]);
			if (!buf || dev_ctx_open(&ctx))
				_exit(1);
			for (;;) {
				iova = 0;
				ioas_map(ctx.iommufd, ctx.ioas, buf, 64 * PAGE,
					 &iova, false);
				if (huge)
					ioas_map(ctx.iommufd, ctx.ioas, huge,
						 HUGE, &iova, false);
				len = HUGE;
				get_pa(ctx.iommufd, ctx.ioas, iova, &len, &pa);
				if (!told) {
					told = write(p[1], "x", 1) == 1;
					continue;	/* keep the pins */
				}
				pt = ctx.ioas;
				device_attach(ctx.devfd, &pt);
				ioas_unmap(ctx.iommufd, ctx.ioas, 0, ULONG_MAX);
			}
		}
		close(p[1]);
		ASSERT_EQ(1, read(p[0], &c, 1));
		close(p[0]);
		usleep(wrnd(&seed) % 20000);
		kill(pid, SIGKILL);
		ASSERT_EQ(pid, waitpid(pid, &status, 0));
		ASSERT_TRUE(WIFSIGNALED(status));
		ASSERT_EQ(b.pins, pins_held());
	}
	TH_LOG("%lu processes killed holding the device", rounds);
	EXPECT_NOTHING_LOST(&b);
}

/* vfio-pci unbound while a process holds the cdev: it is asked to let go */
STRESS_TEST(sysfs_unbind_while_open)
{
	struct vfio_irq_set *set;
	char irqbuf[sizeof(*set) + sizeof(int)], path[PATH_MAX];
	struct pollfd pfd;
	struct dev_ctx ctx;
	struct baseline b;
	uint8_t *buf = alloc_buf(4 * PAGE, false);
	uint64_t iova = 0;
	int efd, status;
	pid_t pid;

	baseline_take(&b);
	ASSERT_EQ(0, dev_ctx_open(&ctx));
	ASSERT_EQ(0, ioas_map(ctx.iommufd, ctx.ioas, buf, 4 * PAGE, &iova, false));
	efd = eventfd(0, 0);
	ASSERT_LE(0, efd);
	set = (struct vfio_irq_set *)irqbuf;
	*set = (struct vfio_irq_set){
		.argsz = sizeof(irqbuf),
		.flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
		.index = VFIO_PCI_REQ_IRQ_INDEX,
		.start = 0,
		.count = 1,
	};
	memcpy(set->data, &efd, sizeof(efd));
	ASSERT_EQ(0, ioctl(ctx.devfd, VFIO_DEVICE_SET_IRQS, set));

	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		/* Only the parent holds the device */
		dev_ctx_close(&ctx);
		_exit(write_file("/sys/bus/pci/drivers/vfio-pci/unbind", bdf) ? 1 : 0);
	}
	/* The unbind waits and the holder is told through the request IRQ */
	pfd = (struct pollfd){ .fd = efd, .events = POLLIN };
	EXPECT_EQ(1, poll(&pfd, 1, 30000));
	EXPECT_EQ(0, waitpid(pid, &status, WNOHANG));
	dev_ctx_close(&ctx);
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_TRUE(WIFEXITED(status) && !WEXITSTATUS(status));
	close(efd);
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/driver", bdf);
	EXPECT_NE(0, access(path, F_OK));
	EXPECT_EQ(0, count_entries("/dev/vfio/devices", "noiommu-vfio"));
	EXPECT_EQ(b.pins, pins_held());
	EXPECT_EQ(b.vm_pinned, vm_pinned_kb());

	/* Bound again, it comes back as a no-IOMMU cdev and works */
	ASSERT_EQ(0, write_file("/sys/bus/pci/drivers_probe", bdf));
	ASSERT_EQ(0, access(path, F_OK));
	cdev_path(path, sizeof(path));
	EXPECT_NE(NULL, strstr(path, "noiommu-vfio"));
	munmap(buf, 4 * PAGE);
	EXPECT_NOTHING_LOST(&b);
}

/*
 * A no-IOMMU cdev fd opened with CAP_SYS_RAWIO and handed to a process
 * without it: VFIO_DEVICE_BIND_IOMMUFD checks the capability again and
 * refuses with EPERM (the open's check alone would let the fd carry the
 * privilege); the holder with the capability then binds it.
 */
STRESS_TEST(bind_passed_fd_without_rawio)
{
	struct __user_cap_header_struct hdr = {
		.version = _LINUX_CAPABILITY_VERSION_3,
	};
	struct __user_cap_data_struct data[2];
	char path[PATH_MAX];
	struct baseline b;
	int devfd, iommufd, status;
	uint32_t devid = 0;
	pid_t pid;

	cdev_path(path, sizeof(path));
	ASSERT_NE(0, path[0]);
	baseline_take(&b);
	devfd = open(path, O_RDWR);
	ASSERT_LE(0, devfd);
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		if (syscall(SYS_capget, &hdr, data))
			_exit(100);
		data[CAP_TO_INDEX(CAP_SYS_RAWIO)].effective &= ~CAP_TO_MASK(CAP_SYS_RAWIO);
		data[CAP_TO_INDEX(CAP_SYS_RAWIO)].permitted &= ~CAP_TO_MASK(CAP_SYS_RAWIO);
		if (syscall(SYS_capset, &hdr, data))
			_exit(101);
		iommufd = open("/dev/iommu", O_RDWR);
		if (iommufd < 0)
			_exit(102);
		_exit(device_bind(devfd, iommufd, &devid) ? errno : 0);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_TRUE(WIFEXITED(status));
	EXPECT_EQ(EPERM, WEXITSTATUS(status));
	iommufd = open("/dev/iommu", O_RDWR);
	ASSERT_LE(0, iommufd);
	EXPECT_EQ(0, device_bind(devfd, iommufd, &devid));
	EXPECT_NE(0, devid);
	close(devfd);
	close(iommufd);
	EXPECT_NOTHING_LOST(&b);
}

/* 5. With enable_unsafe_noiommu_mode=0 vfio-pci refuses the device */
STRESS_TEST(mode_off_refuses_device)
{
	const char *mode = "/sys/module/vfio/parameters/enable_unsafe_noiommu_mode";
	char path[PATH_MAX];
	struct baseline b;

	if (access(mode, W_OK))
		SKIP(return, "no writable enable_unsafe_noiommu_mode");
	baseline_take(&b);
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/driver", bdf);
	ASSERT_EQ(0, write_file("/sys/bus/pci/drivers/vfio-pci/unbind", bdf));
	ASSERT_EQ(0, write_file(mode, "0"));
	/* drivers_probe reports no error when no driver takes the device */
	write_file("/sys/bus/pci/drivers_probe", bdf);
	EXPECT_NE(0, access(path, F_OK));
	EXPECT_EQ(0, count_entries("/dev/vfio/devices", "vfio"));
	EXPECT_EQ(0, count_entries("/dev/vfio/devices", "noiommu-"));
	EXPECT_EQ(0, count_entries("/dev/vfio", "noiommu-"));

	ASSERT_EQ(0, write_file(mode, "1"));
	ASSERT_EQ(0, write_file("/sys/bus/pci/drivers_probe", bdf));
	ASSERT_EQ(0, access(path, F_OK));
	EXPECT_NOTHING_LOST(&b);
}

EDU_TEST_MAIN(kmemleak_each = env_ul("STRESS_KMEMLEAK", 0))
