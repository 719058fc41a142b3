/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Helpers shared by the harness's guest programs (tests/noiommu_stress.c,
 * tests/viommu_test.c, bench/noiommu_bench.c): the edu device's DMA engine,
 * thin wrappers of the VFIO cdev and iommufd ioctls, pagemap, and the
 * counters that tell whether pins were given back.
 */
#ifndef VFIO_EDU_H
#define VFIO_EDU_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>
#include <linux/iommufd.h>
#include <linux/vfio.h>

#define EDU_LIVE	0x04
#define EDU_DMA_SRC	0x80
#define EDU_DMA_DST	0x88
#define EDU_DMA_CNT	0x90
#define EDU_DMA_CMD	0x98
#define EDU_DMA_START	0x1
#define EDU_DMA_TO_RAM	0x2
#define EDU_BUF		0x40000
/* QEMU 7.2's edu refuses transfers that end at the end of its buffer */
#define EDU_DMA_LEN	2048

/* The CPU page size: 4 KiB, or 16 or 64 KiB on arm64 */
#define PAGE		((unsigned long)sysconf(_SC_PAGESIZE))
#define HUGE		(2UL << 20)
/* 2 MiB huge pages, whatever the default size (512 MiB with 64 KiB pages) */
#define MAP_HUGE_2M	(21 << MAP_HUGE_SHIFT)

static const char *bdf;

/*
 * main() of a kselftest_harness program whose first argument is the BDF of
 * the edu device; the harness options follow it.
 */
#define EDU_TEST_MAIN(setup)						\
int main(int argc, char **argv)						\
{									\
	if (argc < 2 || argv[1][0] == '-') {				\
		fprintf(stderr, "usage: %s BDF [harness options]\n",	\
			argv[0]);					\
		return KSFT_FAIL;					\
	}								\
	bdf = argv[1];							\
	argv[1] = argv[0];						\
	setup;								\
	return test_harness_run(argc - 1, argv + 1);			\
}

static inline int write_file(const char *path, const char *val)
{
	int fd = open(path, O_WRONLY);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = write(fd, val, strlen(val));
	close(fd);
	return n == (ssize_t)strlen(val) ? 0 : -1;
}

/* The device cdev of bdf in /dev/vfio/devices, or "" if it has none */
static inline void cdev_path(char *path, size_t len)
{
	char dir[PATH_MAX];
	struct dirent *de;
	DIR *d;

	path[0] = 0;
	snprintf(dir, sizeof(dir), "/sys/bus/pci/devices/%s/vfio-dev", bdf);
	d = opendir(dir);
	if (!d)
		return;
	while ((de = readdir(d)))
		if (strstr(de->d_name, "vfio"))
			snprintf(path, len, "/dev/vfio/devices/%.64s", de->d_name);
	closedir(d);
	if (path[0] && access(path, F_OK))
		path[0] = 0;
}

/* Number of entries of @dir whose name starts with @prefix */
static inline int count_entries(const char *dir, const char *prefix)
{
	struct dirent *de;
	int n = 0;
	DIR *d = opendir(dir);

	if (!d)
		return 0;
	while ((de = readdir(d)))
		n += !strncmp(de->d_name, prefix, strlen(prefix));
	closedir(d);
	return n;
}

static inline uint64_t pagemap_pa(void *va)
{
	static int fd = -1;
	uint64_t ent = 0;

	if (fd < 0)
		fd = open("/proc/self/pagemap", O_RDONLY);
	if (pread(fd, &ent, 8, (uintptr_t)va / PAGE * 8) != 8)
		ent = 0;
	if (!(ent >> 63))
		return 0;
	return (ent & ((1ULL << 55) - 1)) * PAGE + (uintptr_t)va % PAGE;
}

/* A line "key value" of a /proc file, or -1 */
static inline long long proc_value(const char *file, const char *key)
{
	char line[256];
	long long val = -1;
	size_t klen = strlen(key);
	FILE *f = fopen(file, "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, klen) && (line[klen] == ' ' ||
						  line[klen] == ':' ||
						  line[klen] == '\t')) {
			val = strtoll(line + klen + 1, NULL, 10);
			break;
		}
	fclose(f);
	return val;
}

/* The number a sysfs or /proc file holds, or 0 */
static inline unsigned long long read_ull(const char *path)
{
	char val[64] = "";
	int fd = open(path, O_RDONLY);

	if (fd < 0)
		return 0;
	if (read(fd, val, sizeof(val) - 1) < 0)
		val[0] = 0;
	close(fd);
	return strtoull(val, NULL, 0);
}

/* A counter of /proc/vmstat, with the per-CPU deltas folded in first */
static inline long long vmstat(const char *key)
{
	write_file("/proc/sys/vm/stat_refresh", "1");
	return proc_value("/proc/vmstat", key);
}

/* Pages pinned with FOLL_PIN and not yet unpinned, in the whole guest */
static inline long long pins_held(void)
{
	return vmstat("nr_foll_pin_acquired") - vmstat("nr_foll_pin_released");
}

/* This process's pinned memory as iommufd charges it (kB) */
static inline long long vm_pinned_kb(void)
{
	return proc_value("/proc/self/status", "VmPin");
}

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

/*
 * Back @buf with memory now: 2 MiB pages when it is hugetlb, else 4 KiB
 * pages (guest/init turns transparent huge pages off, as the guest kernel
 * has no madvise(); where it has one, MADV_NOHUGEPAGE does the same).
 */
static inline int populate(void *buf, size_t len, bool huge)
{
	if (!huge)
		madvise(buf, len, MADV_NOHUGEPAGE);
	if (madvise(buf, len, MADV_POPULATE_WRITE))
		memset(buf, 0, len);
	return 0;
}

static inline void *alloc_buf(size_t len, bool huge)
{
	void *buf = mmap(NULL, len, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS |
			 (huge ? MAP_HUGETLB | MAP_HUGE_2M : 0), -1, 0);

	if (buf == MAP_FAILED)
		return NULL;
	if (populate(buf, len, huge)) {
		munmap(buf, len);
		return NULL;
	}
	return buf;
}

struct edu {
	uint8_t *bar0;
	size_t bar_size;
};

/* MMIO: relaxed atomics are single, never elided loads and stores */
static inline uint64_t edu_read(struct edu *edu, unsigned int reg)
{
	return __atomic_load_n((uint64_t *)(edu->bar0 + reg), __ATOMIC_RELAXED);
}

static inline void edu_write(struct edu *edu, unsigned int reg, uint64_t val)
{
	__atomic_store_n((uint64_t *)(edu->bar0 + reg), val, __ATOMIC_RELAXED);
}

/* Enable memory and bus mastering, map BAR0, check the device answers */
static inline int edu_open(struct edu *edu, int devfd)
{
	struct vfio_region_info bar = { .argsz = sizeof(bar),
					.index = VFIO_PCI_BAR0_REGION_INDEX };
	struct vfio_region_info cfg = { .argsz = sizeof(cfg),
					.index = VFIO_PCI_CONFIG_REGION_INDEX };
	uint32_t live = 0x5a5a1234;
	uint16_t cmd;

	if (ioctl(devfd, VFIO_DEVICE_GET_REGION_INFO, &bar) ||
	    ioctl(devfd, VFIO_DEVICE_GET_REGION_INFO, &cfg) ||
	    pread(devfd, &cmd, 2, cfg.offset + 4) != 2)
		return -1;
	cmd |= 0x6;
	if (pwrite(devfd, &cmd, 2, cfg.offset + 4) != 2)
		return -1;
	edu->bar0 = mmap(NULL, bar.size, PROT_READ | PROT_WRITE, MAP_SHARED,
			 devfd, bar.offset);
	if (edu->bar0 == MAP_FAILED)
		return -1;
	edu->bar_size = bar.size;
	__atomic_store_n((uint32_t *)(edu->bar0 + EDU_LIVE), live,
			 __ATOMIC_RELAXED);
	live = __atomic_load_n((uint32_t *)(edu->bar0 + EDU_LIVE),
			       __ATOMIC_RELAXED);
	return live == ~0x5a5a1234u ? 0 : -1;
}

static inline void edu_close(struct edu *edu)
{
	if (edu->bar0 && edu->bar0 != MAP_FAILED)
		munmap(edu->bar0, edu->bar_size);
	edu->bar0 = NULL;
}

static inline int edu_dma(struct edu *edu, uint64_t src, uint64_t dst,
			  uint64_t cmd)
{
	long spins = 0;

	edu_write(edu, EDU_DMA_SRC, src);
	edu_write(edu, EDU_DMA_DST, dst);
	edu_write(edu, EDU_DMA_CNT, EDU_DMA_LEN);
	edu_write(edu, EDU_DMA_CMD, cmd | EDU_DMA_START);
	while (edu_read(edu, EDU_DMA_CMD) & EDU_DMA_START)
		if (++spins > 100000000)
			return -1;
	return 0;
}

/*
 * Copy a pattern from @a (device address @da) into the device and back to
 * @b (device address @db); true if @b then holds the pattern.
 */
static inline bool edu_round_trip(struct edu *edu, uint8_t *a, uint64_t da,
				  uint8_t *b, uint64_t db, uint8_t seed)
{
	int i;

	for (i = 0; i < EDU_DMA_LEN; i++) {
		a[i] = (uint8_t)(i * 13 + seed);
		b[i] = (uint8_t)~a[i];
	}
	if (edu_dma(edu, da, EDU_BUF, 0) ||
	    edu_dma(edu, EDU_BUF, db, EDU_DMA_TO_RAM))
		return false;
	return !memcmp(a, b, EDU_DMA_LEN);
}

static inline int get_pa(int iommufd, uint32_t ioas, uint64_t iova,
			 uint64_t *len, uint64_t *pa)
{
	struct iommu_ioas_noiommu_get_pa cmd = {
		.size = sizeof(cmd),
		.ioas_id = ioas,
		.iova = iova,
		.length = *len,
	};
	int rc = ioctl(iommufd, IOMMU_IOAS_NOIOMMU_GET_PA, &cmd);

	if (!rc) {
		*len = cmd.length;
		*pa = cmd.out_phys;
	}
	return rc;
}

static inline int ioas_alloc(int iommufd, uint32_t *ioas)
{
	struct iommu_ioas_alloc cmd = { .size = sizeof(cmd) };
	int rc = ioctl(iommufd, IOMMU_IOAS_ALLOC, &cmd);

	*ioas = cmd.out_ioas_id;
	return rc;
}

static inline int ioas_map(int iommufd, uint32_t ioas, void *buf, size_t len,
			   uint64_t *iova, bool fixed)
{
	struct iommu_ioas_map cmd = {
		.size = sizeof(cmd),
		.flags = IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE |
			 (fixed ? IOMMU_IOAS_MAP_FIXED_IOVA : 0),
		.ioas_id = ioas,
		.user_va = (uintptr_t)buf,
		.length = len,
		.iova = *iova,
	};
	int rc = ioctl(iommufd, IOMMU_IOAS_MAP, &cmd);

	*iova = cmd.iova;
	return rc;
}

static inline int ioas_copy(int iommufd, uint32_t dst, uint64_t dst_iova,
			    uint32_t src, uint64_t src_iova, uint64_t len)
{
	struct iommu_ioas_copy cmd = {
		.size = sizeof(cmd),
		.flags = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE |
			 IOMMU_IOAS_MAP_WRITEABLE,
		.dst_ioas_id = dst,
		.src_ioas_id = src,
		.length = len,
		.dst_iova = dst_iova,
		.src_iova = src_iova,
	};

	return ioctl(iommufd, IOMMU_IOAS_COPY, &cmd);
}

static inline int ioas_unmap(int iommufd, uint32_t ioas, uint64_t iova,
			     uint64_t len)
{
	struct iommu_ioas_unmap cmd = {
		.size = sizeof(cmd), .ioas_id = ioas, .iova = iova, .length = len,
	};

	return ioctl(iommufd, IOMMU_IOAS_UNMAP, &cmd);
}

static inline int iommufd_destroy(int iommufd, uint32_t id)
{
	struct iommu_destroy cmd = { .size = sizeof(cmd), .id = id };

	return ioctl(iommufd, IOMMU_DESTROY, &cmd);
}

static inline int device_bind(int devfd, int iommufd, uint32_t *devid)
{
	struct vfio_device_bind_iommufd cmd = {
		.argsz = sizeof(cmd), .iommufd = iommufd,
	};
	int rc = ioctl(devfd, VFIO_DEVICE_BIND_IOMMUFD, &cmd);

	*devid = cmd.out_devid;
	return rc;
}

static inline int device_attach(int devfd, uint32_t *pt_id)
{
	struct vfio_device_attach_iommufd_pt cmd = {
		.argsz = sizeof(cmd), .pt_id = *pt_id,
	};
	int rc = ioctl(devfd, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &cmd);

	*pt_id = cmd.pt_id;
	return rc;
}

static inline int device_detach(int devfd)
{
	struct vfio_device_detach_iommufd_pt cmd = { .argsz = sizeof(cmd) };

	return ioctl(devfd, VFIO_DEVICE_DETACH_IOMMUFD_PT, &cmd);
}

/* A device cdev opened, bound to a new iommufd and attached to an IOAS */
struct dev_ctx {
	int devfd;
	int iommufd;
	uint32_t devid;
	uint32_t ioas;
	uint32_t hwpt;
};

static inline void dev_ctx_close(struct dev_ctx *c)
{
	if (c->devfd >= 0)
		close(c->devfd);
	if (c->iommufd >= 0)
		close(c->iommufd);
	c->devfd = c->iommufd = -1;
}

/* Returns 0, or -1 with errno and nothing left open; syscalls only */
static inline int dev_ctx_open_path(struct dev_ctx *c, const char *path)
{
	int err;

	c->devfd = c->iommufd = -1;
	c->devfd = open(path, O_RDWR);
	if (c->devfd < 0)
		goto err;
	c->iommufd = open("/dev/iommu", O_RDWR);
	if (c->iommufd < 0)
		goto err;
	if (device_bind(c->devfd, c->iommufd, &c->devid) ||
	    ioas_alloc(c->iommufd, &c->ioas))
		goto err;
	c->hwpt = c->ioas;
	if (device_attach(c->devfd, &c->hwpt))
		goto err;
	return 0;
err:
	err = errno;
	dev_ctx_close(c);
	errno = err;
	return -1;
}

static inline int dev_ctx_open(struct dev_ctx *c)
{
	char path[PATH_MAX];

	c->devfd = c->iommufd = -1;
	cdev_path(path, sizeof(path));
	if (!path[0]) {
		errno = ENODEV;
		return -1;
	}
	return dev_ctx_open_path(c, path);
}

#endif
