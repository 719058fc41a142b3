#!/bin/bash
# bench.sh: make bench.  Boot the non-debug guest kernel with the edu device,
# run bench/noiommu_bench (cdev no-IOMMU path against the legacy group path
# with pagemap, same guest, same run), measure vmlinux growth against the
# base with the same config, and print the table with the targets.
#   ICOUNT=1  QEMU -icount shift=0: guest time counts instructions (the
#             default: without it the tinyconfig guest cannot calibrate its
#             TSC under TCG and its clock ticks in 4 ms jiffies; ICOUNT=0
#             measures wall time anyway)
#   RUNS=n    boot n times and report how far the runs differ (default 1)
#   REPS=n    repetitions per figure, the median is reported (default 9)
#   ARCH=arm64  the arm64 guest with 64 KiB pages (variant arm64-bench)
#             instead of x86_64; no vmlinux size comparison
set -eu
. "$(dirname "$0")/lib.sh"
export ICOUNT=${ICOUNT:-1}
out="$BUILD/bench"
mkdir -p "$out" "$LOGS"
"$TOP/scripts/deps.sh"
"$TOP/scripts/apply.sh"

arch=${ARCH:-x86_64}
case $arch in
x86_64)
	variant=bench
	# vmlinux size, base and patched, same fragments.  The base is built
	# once in its own worktree (build/base, tag base) and kept in
	# build/obj-base.
	if [ ! -d "$BUILD/base" ]; then
		git -C "$TREE" worktree prune
		git -C "$TREE" worktree add -q --detach "$BUILD/base" base
	fi
	git -C "$BUILD/base" checkout -q --detach base
	OBJ="$BUILD/obj-base" "$TOP/scripts/build.sh" "$BUILD/base" guest ||
		die "base kernel build failed"
	"$TOP/scripts/build.sh" "$CHECK_TREE" guest
	size "$BUILD/obj-base/guest/vmlinux" "$OBJ/guest/vmlinux" > "$out/size.txt"
	size_txt=$out/size.txt ;;
arm64)
	variant=arm64-bench size_txt=- ;;
*)	die "make bench: ARCH=x86_64 or ARCH=arm64" ;;
esac
# The run: the same kernel plus the KUnit suite, whose cost case tells the
# table's own share of MAP and UNMAP (configs/bench.config).
"$TOP/scripts/build.sh" "$CHECK_TREE" "$variant"
"$TOP/scripts/tests-build.sh" "$CHECK_TREE" "$arch"

list="$out/bench-tests.txt"
echo "./noiommu_bench \$EDU_BDF ${REPS:-9}" > "$list"
runs=()
for i in $(seq 1 "${RUNS:-1}"); do
	BOOT_TIMEOUT=${BOOT_TIMEOUT:-2400} "$TOP/scripts/boot.sh" "$variant" "$list" "bench-$i"
	grep -q '^# noiommu_bench: done' "$LOGS/bench-$i.tap" ||
		die "the benchmark did not finish (see build/logs/bench-$i.tap and .console)"
	grep -q 'noiommu_test_cost: cost: [0-9]*K run 1:' "$LOGS/bench-$i.console" ||
		die "the KUnit cost probe did not report (see build/logs/bench-$i.console)"
	runs+=("$LOGS/bench-$i.tap")
done
python3 "$TOP/scripts/bench-report.py" "$out" "$(base_version)" \
	"$ICOUNT" "$size_txt" "${runs[@]}" --arch "$arch"
