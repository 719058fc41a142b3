#!/bin/bash
# stress.sh: make stress, the long reliability runs on the debug kernel
# (KASAN, lockdep, kmemleak, fault injection): the fuzzer with FUZZ_CALLS
# calls (default 100000), RACE_ITERS race iterations per thread, KILL_ROUNDS
# SIGKILLs, a kmemleak scan after every scenario, fail-nth on the mock and
# the real device, HISTORY_STEPS steps of the model-checked random history
# (default 30000), the vIOMMU guest, and the platforms make check leaves
# out: arm64 with 4 KiB pages and 32-bit x86 with PAE (KUnit at boot, real
# DMA; arm64 also the mock and a short history).  SEED=n replays a run
# (default: the date); STRESS_RUNS picks among "pc viommu platforms" (the
# default: all three).  Ends with "N passed, N failed, N skipped".
set -u
. "$(dirname "$0")/lib.sh"
results="$LOGS/stress-results.txt"
start=$(date +%s)
seed=${SEED:-$(date +%Y%m%d)}
runs=${STRESS_RUNS:-pc viommu platforms}
want() { case " $runs " in *" $1 "*) return 0 ;; esac; return 1; }
mkdir -p "$LOGS"
: > "$results"
"$TOP/scripts/deps.sh" && "$TOP/scripts/apply.sh" &&
	"$TOP/scripts/tests-build.sh" "$CHECK_TREE" &&
	{ ! want pc && ! want viommu || "$TOP/scripts/build.sh" "$CHECK_TREE" debug; } || {
	echo "FAIL stress: setup (above)" >> "$results"
	print_summary "$results" "$start" "make stress"
	exit 1
}
list="$BUILD/stress-tests.txt"
cat > "$list" <<LIST
STRESS_KMEMLEAK=1 STRESS_SEED=$seed FUZZ_CALLS=${FUZZ_CALLS:-100000} RACE_ITERS=${RACE_ITERS:-5000} KILL_ROUNDS=${KILL_ROUNDS:-40} ./noiommu_stress \$EDU_BDF
HISTORY_SEED=$seed HISTORY_STEPS=${HISTORY_STEPS:-30000} ./noiommu_history \$EDU_BDF
./iommu/iommufd_noiommu
./vfio/vfio_noiommu_test \$EDU_BDF
LIST
say "stress seed $seed (replay: make stress SEED=$seed)"
for machine in pc viommu; do
	want $machine || continue
	name=stress-$machine
	[ $machine = pc ] || list="$TOP/guest/tests-viommu.txt"
	MACHINE=$machine BOOT_TIMEOUT=${BOOT_TIMEOUT:-3000} \
		"$TOP/scripts/boot.sh" debug "$list" "$name"
	guest_results "$name" debug "$results"
done
# The other platforms: their own kernels (a page or word size recompiles
# everything) and test programs
if ! want platforms; then
	:
elif "$TOP/scripts/tests-build.sh" "$CHECK_TREE" arm64 i386; then
	for run in "arm64-4k tests-arm64.txt" "i386 tests-i386.txt"; do
		# shellcheck disable=SC2086	# variant and list
		set -- $run
		if ! "$TOP/scripts/build.sh" "$CHECK_TREE" "$1"; then
			echo "FAIL build: $1 kernel" >> "$results"
			continue
		fi
		BOOT_TIMEOUT=${BOOT_TIMEOUT:-3000} "$TOP/scripts/boot.sh" "$1" "$TOP/guest/$2" "stress-$1"
		guest_results "stress-$1" "$1" "$results"
	done
else
	echo "FAIL stress: the test programs do not build for arm64 and i386" >> "$results"
fi
# The counts each scenario logged: failure points, calls, iterations
want pc && grep -h 'noiommu_stress.c:[0-9]*:\|iommufd_noiommu.c:[0-9]*:\|^# history: ' "$LOGS/stress-pc.tap" |
	sed 's/^# .*noiommu_stress.c:[0-9]*:/  /; s/^# .*iommufd_noiommu.c:[0-9]*:/  mock: /' || true
print_summary "$results" "$start" "make stress"
