// SPDX-License-Identifier: GPL-2.0-only
/*
 * The edu device behind an emulated IOMMU (QEMU's intel-iommu), with
 * vfio.enable_unsafe_noiommu_mode=1: it must be an ordinary VFIO device,
 * never a no-IOMMU one, and IOMMU_IOAS_NOIOMMU_GET_PA must refuse its IOAS.
 *
 *   viommu_test BDF [harness options]
 */
#define _GNU_SOURCE
#include <linux/capability.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "kselftest_harness.h"
#include "vfio_edu.h"

#define TAINT_USER	(1UL << 6)

TEST(ordinary_device)
{
	char path[PATH_MAX], link[PATH_MAX];

	snprintf(link, sizeof(link), "/sys/bus/pci/devices/%s/iommu_group/type",
		 bdf);
	ASSERT_EQ(0, access(link, F_OK)) {
		TH_LOG("%s has no IOMMU group: is the guest's IOMMU on?", bdf);
	}
	cdev_path(path, sizeof(path));
	ASSERT_NE(0, path[0]);
	EXPECT_EQ(NULL, strstr(path, "noiommu"));
	EXPECT_NE(NULL, strstr(path, "/dev/vfio/devices/vfio"));
	EXPECT_EQ(0, count_entries("/dev/vfio", "noiommu-"));
	EXPECT_EQ(0, count_entries("/dev/vfio/devices", "noiommu-"));
	EXPECT_EQ(0, read_ull("/proc/sys/kernel/tainted") & TAINT_USER);
}

/* DMA goes through the IOMMU at IOVAs; no physical address is handed out */
TEST(get_pa_refused_dma_by_iova)
{
	uint8_t *buf = alloc_buf(2 * PAGE, false);
	struct edu edu = {};
	struct dev_ctx c;
	uint64_t iova = 0, len = PAGE, pa = 0;

	ASSERT_NE(NULL, buf);
	ASSERT_EQ(0, dev_ctx_open(&c));
	ASSERT_EQ(0, ioas_map(c.iommufd, c.ioas, buf, 2 * PAGE, &iova, false));
	EXPECT_EQ(-1, get_pa(c.iommufd, c.ioas, iova, &len, &pa));
	EXPECT_EQ(EOPNOTSUPP, errno);
	EXPECT_EQ(0, pa);
	ASSERT_EQ(0, edu_open(&edu, c.devfd));
	EXPECT_TRUE(edu_round_trip(&edu, buf, iova, buf + PAGE + 64,
				   iova + PAGE + 64, 9));
	edu_close(&edu);
	dev_ctx_close(&c);
	munmap(buf, 2 * PAGE);
}

/* Only no-IOMMU devices need CAP_SYS_RAWIO: this one opens without it */
TEST(open_without_rawio)
{
	struct __user_cap_header_struct hdr = {
		.version = _LINUX_CAPABILITY_VERSION_3,
	};
	struct __user_cap_data_struct data[2];
	char path[PATH_MAX];
	int status, fd;
	pid_t pid;

	cdev_path(path, sizeof(path));
	ASSERT_NE(0, path[0]);
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		if (syscall(SYS_capget, &hdr, data))
			_exit(2);
		data[CAP_TO_INDEX(CAP_SYS_RAWIO)].effective &=
			~CAP_TO_MASK(CAP_SYS_RAWIO);
		data[CAP_TO_INDEX(CAP_SYS_RAWIO)].permitted &=
			~CAP_TO_MASK(CAP_SYS_RAWIO);
		if (syscall(SYS_capset, &hdr, data))
			_exit(2);
		fd = open(path, O_RDWR);
		_exit(fd < 0 ? 1 : 0);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

EDU_TEST_MAIN((void)0)
