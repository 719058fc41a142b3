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
#include <sys/syscall.h>
#include <sys/wait.h>

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

/* 2. Fuzzer */
#define FZ_BUFS		4
#define FZ_IDS		16

struct fuzz {
	int iommufd, devfd;
	char path[PATH_MAX];
	uint32_t ids[FZ_IDS];
	uint64_t iovas[FZ_IDS];	/* IOVAs that MAP and COPY handed out */
	unsigned int nids, niovas;
	uint32_t dev_ioas;	/* the IOAS the device was last attached to */
	uint64_t setup_iova, setup_len;	/* what fuzz_setup() mapped there */
	uint8_t *buf[FZ_BUFS];
	size_t buf_len[FZ_BUFS];
	uint64_t *pas;		/* page frame of every buffer page */
	size_t npas;
	uint8_t *scratch;
	unsigned long calls, ok, get_pa_ok, reopens;
	unsigned long errnos[256];
};

/*
 * A buffer followed by inaccessible memory: a MAP that runs past its end
 * fails instead of pinning some other page of this process, so every page
 * the fuzzer can get mapped is a page of its buffers.
 */
static void *alloc_guarded(size_t len, bool huge)
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
		   (huge ? MAP_HUGETLB : 0), -1, 0);
	if (buf == MAP_FAILED || populate(buf, len, huge)) {
		munmap(res, len + 2 * HUGE);
		return NULL;
	}
	return buf;
}

static void fuzz_learn_pas(struct fuzz *fz)
{
	size_t i, off;

	fz->npas = 0;
	for (i = 0; i < FZ_BUFS; i++)
		for (off = 0; off < fz->buf_len[i]; off += PAGE)
			fz->pas[fz->npas++] = pagemap_pa(fz->buf[i] + off) / PAGE;
	for (off = 0; off < 16 * PAGE; off += PAGE)
		fz->pas[fz->npas++] = pagemap_pa(fz->scratch + off) / PAGE;
}

static bool fuzz_pa_known(struct fuzz *fz, uint64_t pa)
{
	size_t i;

	for (i = 0; i < fz->npas; i++)
		if (fz->pas[i] == pa / PAGE)
			return true;
	return false;
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
	static const uint64_t edges[] = {
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
	static const uint64_t edges[] = {
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
 */
static void fuzz_setup(struct fuzz *fz)
{
	uint32_t devid, ioas, pt;
	uint64_t iova = 0;
	int i = rnd_below(FZ_BUFS);

	if (!rnd_below(8) || device_bind(fz->devfd, fz->iommufd, &devid))
		return;
	fz_remember_id(fz, devid);
	if (ioas_alloc(fz->iommufd, &ioas))
		return;
	fz_remember_id(fz, ioas);
	if (!ioas_map(fz->iommufd, ioas, fz->buf[i], fz->buf_len[i], &iova,
		      false)) {
		fz_remember_iova(fz, iova);
		fz->setup_iova = iova;
		fz->setup_len = fz->buf_len[i];
	}
	pt = ioas;
	if (!device_attach(fz->devfd, &pt)) {
		fz_remember_id(fz, pt);
		fz->dev_ioas = ioas;
	}
}

static void fuzz_reopen(struct __test_metadata *_metadata, struct fuzz *fz,
			bool dev)
{
	if (dev) {
		close(fz->devfd);
		fz->devfd = open(fz->path, O_RDWR);
		ASSERT_LE(0, fz->devfd);
	} else {
		close(fz->iommufd);
		fz->iommufd = open("/dev/iommu", O_RDWR);
		ASSERT_LE(0, fz->iommufd);
		fz->nids = fz->niovas = 0;
	}
	fz->reopens++;
	fuzz_setup(fz);
}

/* One random ioctl, or a close and re-open of one of the two fds */
static void fuzz_one(struct __test_metadata *_metadata, struct fuzz *fz)
{
	union {
		uint8_t raw[256];
		uint32_t u32[64];
		uint64_t u64[32];
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
	} a;
	unsigned long req;
	void *arg = &a;
	int fd = fz->iommufd, rc, i, pick = rnd_below(100);
	uint64_t asked = 0;
	bool check_pa = false;
	uint32_t attach_in = 0;

	memset(&a, 0, sizeof(a));
	/* Random words in the spare bytes, for the size rules */
	if (!rnd_below(4))
		for (i = 0; i < 64; i++)
			a.u32[i] = rnd_below(3) ? 0 : rnd();

	if (!rnd_below(200)) {
		fuzz_reopen(_metadata, fz, rnd_below(2));
		return;
	} else if (pick < 6) {
		req = IOMMU_IOAS_ALLOC;
		a.alloc.size = fz_size(sizeof(a.alloc));
		a.alloc.flags = rnd_below(8) ? 0 : rnd();
	} else if (pick < 12) {
		req = IOMMU_DESTROY;
		a.destroy.size = fz_size(sizeof(a.destroy));
		a.destroy.id = fz_id(fz);
	} else if (pick < 30) {
		req = IOMMU_IOAS_MAP;
		a.map.size = fz_size(sizeof(a.map));
		a.map.flags = rnd_below(8) ? (IOMMU_IOAS_MAP_READABLE |
			      IOMMU_IOAS_MAP_WRITEABLE |
			      (rnd_below(2) ? IOMMU_IOAS_MAP_FIXED_IOVA : 0)) :
			      (uint32_t)rnd();
		a.map.ioas_id = fz_id(fz);
		a.map.user_va = fz_uptr(fz);
		a.map.length = rnd_below(3) ? rnd_below(8) * PAGE : fz_len();
		a.map.iova = fz_iova(fz);
	} else if (pick < 40) {
		req = IOMMU_IOAS_UNMAP;
		a.unmap.size = fz_size(sizeof(a.unmap));
		a.unmap.ioas_id = fz_id(fz);
		a.unmap.iova = fz_iova(fz);
		a.unmap.length = fz_len();
	} else if (pick < 48) {
		req = IOMMU_IOAS_COPY;
		a.copy.size = fz_size(sizeof(a.copy));
		a.copy.flags = rnd_below(8) ? (IOMMU_IOAS_MAP_READABLE |
			       (rnd_below(2) ? IOMMU_IOAS_MAP_FIXED_IOVA : 0)) :
			       (uint32_t)rnd();
		a.copy.dst_ioas_id = fz_id(fz);
		a.copy.src_ioas_id = fz_id(fz);
		a.copy.length = fz_len();
		a.copy.dst_iova = fz_iova(fz);
		a.copy.src_iova = fz_iova(fz);
	} else if (pick < 70) {
		req = IOMMU_IOAS_NOIOMMU_GET_PA;
		a.get_pa.size = fz_size(sizeof(a.get_pa));
		a.get_pa.flags = rnd_below(16) ? 0 : rnd();
		a.get_pa.__reserved = rnd_below(16) ? 0 : rnd();
		a.get_pa.ioas_id = rnd_below(2) ? fz->dev_ioas : fz_id(fz);
		a.get_pa.iova = fz_iova(fz);
		if (rnd_below(2))
			a.get_pa.iova = fz->setup_iova +
					rnd_below(fz->setup_len + PAGE);
		a.get_pa.length = fz_len();
		asked = a.get_pa.length;
		check_pa = arg == &a;
	} else if (pick < 73) {
		req = IOMMU_IOAS_IOVA_RANGES;
		a.ranges.size = fz_size(sizeof(a.ranges));
		a.ranges.ioas_id = fz_id(fz);
		a.ranges.num_iovas = rnd_below(4);
		a.ranges.allowed_iovas = rnd_below(2) ? (uintptr_t)fz->scratch :
					 fz_uptr(fz);
	} else if (pick < 75) {
		req = IOMMU_IOAS_ALLOW_IOVAS;
		a.allow.size = fz_size(sizeof(a.allow));
		a.allow.ioas_id = fz_id(fz);
		a.allow.num_iovas = rnd_below(3);
		a.allow.allowed_iovas = (uintptr_t)fz->scratch;
		for (i = 0; i < 4; i++)
			((uint64_t *)fz->scratch)[i] = fz_iova(fz);
	} else if (pick < 77) {
		req = IOMMU_OPTION;
		a.option.size = fz_size(sizeof(a.option));
		a.option.option_id = rnd_below(3);
		a.option.op = rnd_below(3);
		a.option.object_id = fz_id(fz);
		a.option.val64 = rnd_below(3);
	} else if (pick < 80) {
		req = IOMMU_HWPT_ALLOC;
		a.hwpt.size = fz_size(sizeof(a.hwpt));
		a.hwpt.flags = rnd_below(2) ? 0 : rnd_below(16);
		a.hwpt.dev_id = fz_id(fz);
		a.hwpt.pt_id = fz_id(fz);
	} else if (pick < 82) {
		req = IOMMU_GET_HW_INFO;
		a.info.size = fz_size(sizeof(a.info));
		a.info.dev_id = fz_id(fz);
		a.info.data_len = rnd_below(64);
		a.info.data_uptr = (uintptr_t)fz->scratch;
	} else if (pick < 84) {
		/* Any other iommufd command number, most of them unknown */
		req = _IO(IOMMUFD_TYPE, 0x78 + rnd_below(48));
		for (i = 0; i < 16; i++)
			a.u32[i] = rnd_below(2) ? fz_id(fz) : rnd();
		a.u32[0] = fz_size(rnd_below(128));
	} else {
		fd = fz->devfd;
		switch (rnd_below(12)) {
		case 0:
			req = VFIO_DEVICE_BIND_IOMMUFD;
			a.bind.argsz = fz_size(sizeof(a.bind));
			a.bind.flags = rnd_below(8) ? 0 : rnd();
			a.bind.iommufd = rnd_below(8) ? fz->iommufd : (int)rnd_below(64) - 1;
			break;
		case 1:
		case 2:
		case 3:
			req = VFIO_DEVICE_ATTACH_IOMMUFD_PT;
			a.attach.argsz = fz_size(sizeof(a.attach));
			a.attach.flags = rnd_below(8) ? 0 : rnd();
			a.attach.pt_id = rnd_below(2) ? fz->dev_ioas : fz_id(fz);
			attach_in = a.attach.pt_id;
			break;
		case 4:
			req = VFIO_DEVICE_DETACH_IOMMUFD_PT;
			a.detach.argsz = fz_size(sizeof(a.detach));
			a.detach.flags = rnd_below(8) ? 0 : rnd();
			break;
		case 5:
		case 6:
			req = VFIO_DEVICE_GET_INFO;
			a.dinfo.argsz = fz_size(sizeof(a.dinfo));
			break;
		default:
			req = VFIO_DEVICE_GET_REGION_INFO;
			a.region.argsz = fz_size(sizeof(a.region));
			a.region.index = rnd_below(12);
			break;
		}
	}
	if (!rnd_below(64)) {
		arg = rnd_below(2) ? NULL : (void *)0xffff888000000000ULL;
		check_pa = false;
	}

	rc = ioctl(fd, req, arg);
	fz->calls++;
	if (rc) {
		fz->errnos[errno & 255]++;
		return;
	}
	fz->ok++;
	/* Remember new objects and IOVAs: more calls then reach them */
	if (req == IOMMU_IOAS_MAP && arg == &a)
		fz_remember_iova(fz, a.map.iova);
	else if (req == IOMMU_IOAS_COPY && arg == &a)
		fz_remember_iova(fz, a.copy.dst_iova);
	if (req == IOMMU_IOAS_ALLOC)
		fz_remember_id(fz, a.alloc.out_ioas_id);
	else if (req == IOMMU_HWPT_ALLOC)
		fz_remember_id(fz, a.hwpt.out_hwpt_id);
	else if (req == VFIO_DEVICE_BIND_IOMMUFD)
		fz_remember_id(fz, a.bind.out_devid);
	else if (req == VFIO_DEVICE_ATTACH_IOMMUFD_PT && arg == &a) {
		fz_remember_id(fz, a.attach.pt_id);
		/* Attached to an IOAS: the kernel answers with the hwpt */
		if (a.attach.pt_id != attach_in)
			fz->dev_ioas = attach_in;
	}
	if (check_pa) {
		/* Only ever an address of a page this process mapped */
		fz->get_pa_ok++;
		EXPECT_LT(0, a.get_pa.length);
		EXPECT_GE(asked, a.get_pa.length);
		if (!fuzz_pa_known(fz, a.get_pa.out_phys)) {
			fuzz_learn_pas(fz);
			EXPECT_TRUE(fuzz_pa_known(fz, a.get_pa.out_phys)) {
				TH_LOG("GET_PA answered %#llx, not one of ours",
				       (unsigned long long)a.get_pa.out_phys);
			}
		}
	}
}

STRESS_TEST(fuzz)
{
	unsigned long n = env_ul("FUZZ_CALLS", 10000);
	unsigned long seed = env_ul("STRESS_SEED", 1);
	struct fuzz fz = {};
	struct baseline b;
	size_t total = 0;
	int i;

	cdev_path(fz.path, sizeof(fz.path));
	if (!fz.path[0])
		SKIP(return, "no device cdev");
	TH_LOG("seed %lu, %lu calls (replay: STRESS_SEED=%lu FUZZ_CALLS=%lu)",
	       seed, n, seed, n);
	rnd_state = seed * 0x9e3779b97f4a7c15ULL + 1;
	baseline_take(&b);
	for (i = 0; i < FZ_BUFS; i++) {
		fz.buf_len[i] = i == 0 ? HUGE : (i + 1) * 4 * PAGE;
		fz.buf[i] = alloc_guarded(fz.buf_len[i], i == 0);
		if (!fz.buf[i]) {
			fz.buf_len[i] = 16 * PAGE;
			fz.buf[i] = alloc_guarded(fz.buf_len[i], false);
		}
		ASSERT_NE(NULL, fz.buf[i]);
		total += fz.buf_len[i] / PAGE;
	}
	fz.pas = calloc(total + 16, sizeof(*fz.pas));
	fz.scratch = alloc_guarded(16 * PAGE, false);
	ASSERT_NE(NULL, fz.pas);
	ASSERT_NE(NULL, fz.scratch);
	fuzz_learn_pas(&fz);
	fz.devfd = open(fz.path, O_RDWR);
	ASSERT_LE(0, fz.devfd);
	fz.iommufd = open("/dev/iommu", O_RDWR);
	ASSERT_LE(0, fz.iommufd);
	fuzz_setup(&fz);

	while (fz.calls < n && !_metadata->exit_code)
		fuzz_one(_metadata, &fz);
	close(fz.devfd);
	close(fz.iommufd);
	TH_LOG("%lu calls, %lu succeeded (%lu GET_PA answers checked), %lu reopens; EINVAL %lu ENOENT %lu EOPNOTSUPP %lu EFAULT %lu EBUSY %lu EEXIST %lu ENOTTY %lu",
	       fz.calls, fz.ok, fz.get_pa_ok, fz.reopens, fz.errnos[EINVAL],
	       fz.errnos[ENOENT], fz.errnos[EOPNOTSUPP], fz.errnos[EFAULT],
	       fz.errnos[EBUSY], fz.errnos[EEXIST], fz.errnos[ENOTTY]);
	/* A fuzzer that never gets past the argument checks proves little */
	EXPECT_LT(n / 50, fz.ok);
	EXPECT_LT(0, fz.get_pa_ok);
	EXPECT_NOTHING_LOST(&b);
	for (i = 0; i < FZ_BUFS; i++)
		munmap(fz.buf[i], fz.buf_len[i]);
	munmap(fz.scratch, 16 * PAGE);
	free(fz.pas);
}

/* 3. Races */
#define RACE_WORKERS	3
#define RACE_SHARED	0x10000000UL	/* IOVA of the region all workers use */
#define RACE_PAGES	16

struct race {
	struct __test_metadata *md;
	struct dev_ctx c;
	uint32_t ioas2;
	uint8_t *shared;
	uint64_t shared_pa[RACE_PAGES];
	unsigned long iters;
	volatile bool stop;
	unsigned int done;
	unsigned long attach_ops, stale, wrong_pa, bad_errno, checks;
};

struct worker {
	struct race *r;
	unsigned int id;
	uint64_t seed;
};

static uint64_t wrnd(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ULL;
}

static bool shared_pa_known(struct race *r, uint64_t pa)
{
	int i;

	for (i = 0; i < RACE_PAGES; i++)
		if (r->shared_pa[i] / PAGE == pa / PAGE)
			return true;
	return false;
}

static void *race_worker(void *arg)
{
	struct worker *w = arg;
	struct race *r = w->r;
	uint64_t slot = (1UL << 33) + w->id * (1UL << 28);
	uint8_t *own = alloc_buf(4 * PAGE, false);
	uint64_t own_pa = pagemap_pa(own);
	unsigned long i;

	for (i = 0; i < r->iters && !r->stop; i++) {
		uint64_t iova = slot, pa, len = 4 * PAGE, off;
		uint32_t ioas = wrnd(&w->seed) & 1 ? r->c.ioas : r->ioas2;

		/* Own slot: exact answers, and none after unmap returned */
		if (!ioas_map(r->c.iommufd, ioas, own, 4 * PAGE, &iova, true)) {
			if (!get_pa(r->c.iommufd, ioas, slot, &len, &pa)) {
				__atomic_add_fetch(&r->checks, 1, __ATOMIC_RELAXED);
				if (pa != own_pa)
					__atomic_add_fetch(&r->wrong_pa, 1, __ATOMIC_RELAXED);
			} else if (errno != EOPNOTSUPP) {
				__atomic_add_fetch(&r->bad_errno, 1, __ATOMIC_RELAXED);
			}
			if (!ioas_copy(r->c.iommufd, ioas == r->c.ioas ? r->ioas2 :
				       r->c.ioas, slot + (1UL << 27), ioas, slot,
				       4 * PAGE))
				ioas_unmap(r->c.iommufd, ioas == r->c.ioas ?
					   r->ioas2 : r->c.ioas,
					   slot + (1UL << 27), 4 * PAGE);
			if (ioas_unmap(r->c.iommufd, ioas, slot, 4 * PAGE))
				__atomic_add_fetch(&r->bad_errno, 1, __ATOMIC_RELAXED);
			len = PAGE;
			if (!get_pa(r->c.iommufd, ioas, slot, &len, &pa))
				__atomic_add_fetch(&r->stale, 1, __ATOMIC_RELAXED);
			else if (errno != ENOENT && errno != EOPNOTSUPP)
				__atomic_add_fetch(&r->bad_errno, 1, __ATOMIC_RELAXED);
		} else {
			__atomic_add_fetch(&r->bad_errno, 1, __ATOMIC_RELAXED);
		}

		/* Shared region: overlapping maps, unmaps and lookups */
		off = wrnd(&w->seed) % RACE_PAGES;
		iova = RACE_SHARED + off * PAGE;
		len = (1 + wrnd(&w->seed) % (RACE_PAGES - off)) * PAGE;
		switch (wrnd(&w->seed) % 3) {
		case 0:
			ioas_map(r->c.iommufd, r->c.ioas, r->shared + off * PAGE,
				 len, &iova, true);
			break;
		case 1:
			ioas_unmap(r->c.iommufd, r->c.ioas, iova, len);
			break;
		default:
			if (!get_pa(r->c.iommufd, r->c.ioas, iova, &len, &pa) &&
			    !shared_pa_known(r, pa))
				__atomic_add_fetch(&r->wrong_pa, 1, __ATOMIC_RELAXED);
		}
	}
	munmap(own, 4 * PAGE);
	__atomic_add_fetch(&r->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

STRESS_TEST(race_map_unmap_get_pa_vs_attach)
{
	struct race r = { .md = _metadata };
	struct worker w[RACE_WORKERS];
	pthread_t th[RACE_WORKERS];
	struct baseline b;
	uint32_t pt;
	int i;

	r.iters = env_ul("RACE_ITERS", 200);
	baseline_take(&b);
	r.shared = alloc_buf(RACE_PAGES * PAGE, false);
	ASSERT_NE(NULL, r.shared);
	for (i = 0; i < RACE_PAGES; i++)
		r.shared_pa[i] = pagemap_pa(r.shared + i * PAGE);
	ASSERT_EQ(0, dev_ctx_open(&r.c));
	ASSERT_EQ(0, ioas_alloc(r.c.iommufd, &r.ioas2));
	for (i = 0; i < RACE_WORKERS; i++) {
		w[i] = (struct worker){ .r = &r, .id = i,
					.seed = env_ul("STRESS_SEED", 1) * 7 + i + 1 };
		ASSERT_EQ(0, pthread_create(&th[i], NULL, race_worker, &w[i]));
	}
	/* Attach, replace and detach under the workers' feet */
	while (__atomic_load_n(&r.done, __ATOMIC_ACQUIRE) < RACE_WORKERS) {
		pt = r.attach_ops & 1 ? r.c.ioas : r.ioas2;
		EXPECT_EQ(0, device_attach(r.c.devfd, &pt));
		if (r.attach_ops % 5 == 4) {
			EXPECT_EQ(0, device_detach(r.c.devfd));
		}
		r.attach_ops++;
		if (_metadata->exit_code)
			r.stop = true;
	}
	for (i = 0; i < RACE_WORKERS; i++)
		pthread_join(th[i], NULL);
	TH_LOG("%d workers x %lu iterations, %lu attach/replace/detach, %lu exact GET_PA checks",
	       RACE_WORKERS, r.iters, r.attach_ops, r.checks);
	EXPECT_EQ(0, r.stale);
	EXPECT_EQ(0, r.wrong_pa);
	EXPECT_EQ(0, r.bad_errno);
	EXPECT_LT(0, r.checks);
	dev_ctx_close(&r.c);
	munmap(r.shared, RACE_PAGES * PAGE);
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
