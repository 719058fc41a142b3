# shellcheck shell=bash
# Common settings for the harness scripts; sourced, not run.

# Debian's python3 (checkpatch's spdxcheck needs python3-ply), not a pyenv one.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# BUILD: where everything generated goes (cleanroot.sh points it elsewhere).
BUILD=${BUILD:-$TOP/build}
PATCHES=${PATCHES:-$TOP/patches}
SRC_TARBALL=/usr/src/linux-source-6.12.tar.xz
TREE="$BUILD/linux"          # developer tree (make tree / make export)
CHECK_TREE="$BUILD/check"    # worktree that make check applies patches/ to
OBJ=${OBJ:-$BUILD/obj}             # one O= directory per kernel variant
LOGS="$BUILD/logs"
JOBS=${JOBS:-$(nproc)}
# kselftests to build: DIR, or DIR:PROGRAM for one program of DIR (the
# other iommu selftests of Debian's 6.12 tree do not build against its uAPI).
SELFTESTS=${SELFTESTS-vfio iommu:iommufd_noiommu}

export CCACHE_DIR=${CCACHE_DIR:-$HOME/.cache/ccache}
export CCACHE_MAXSIZE=${CCACHE_MAXSIZE:-10G}
# Objects are reused across O= directories and worktrees.
export CCACHE_BASEDIR="$BUILD"
export CCACHE_NOHASHDIR=1
export CCACHE_SLOPPINESS=time_macros,include_file_mtime,include_file_ctime
# Reproducible build-id independent of the host.
export KBUILD_BUILD_USER=harness KBUILD_BUILD_HOST=harness
export KBUILD_BUILD_TIMESTAMP='Thu Jan  1 00:00:00 UTC 2026'

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'ERROR: %s\n' "$*" >&2; exit 1; }

base_version() {
	dpkg-query -W -f='${Version}' linux-source-6.12 2>/dev/null
}

kmake() {
	# kmake SRC OBJDIR [make args...]
	local src=$1 obj=$2
	shift 2
	make -C "$src" O="$obj" -j"$JOBS" CC="ccache gcc" HOSTCC="ccache gcc" \
		KCFLAGS="${KCFLAGS:-}" "$@"
}

variant_objdir() {	# the O= directory (under build/obj) of a kernel variant
	awk -v v="$1" '$1 == v { print $2 }' "$TOP/configs/variants"
}

# variant_arch VARIANT: the kernel ARCH of a variant: the "# ARCH=name" line
# of the last of its fragments that has one, else x86_64.
variant_arch() {
	local f a=x86_64 line
	for f in $(awk -v v="$1" '$1 == v { $1 = $2 = ""; print }' "$TOP/configs/variants"); do
		line=$(sed -n 's/^# ARCH=\([a-z0-9_]*\)$/\1/p' "$TOP/configs/$f.config")
		[ -z "$line" ] || a=$line
	done
	echo "$a"
}

# set_arch ARCH: for a kernel and test programs of ARCH (x86_64, arm64 or
# i386, the last two with Debian's cross compilers), KARGS (kmake's
# arguments), TARGET_CC (static userspace), KIMAGE (the image to boot,
# under the objdir), BIN (the test programs, build/bin for x86_64) and
# BUSYBOX (the guest's static busybox: the host's for x86_64, else Debian's
# busybox-static of ARCH, which deps.sh unpacks under build/busybox/, as
# packages of different architectures cannot be installed side by side).
set_arch() {
	KARCH=$1
	case "$1" in
	x86_64)	KARGS=(ARCH=x86_64) TARGET_CC=gcc KIMAGE=arch/x86/boot/bzImage ;;
	arm64)	KARGS=(ARCH=arm64 CROSS_COMPILE=aarch64-linux-gnu- "CC=ccache aarch64-linux-gnu-gcc")
		TARGET_CC=aarch64-linux-gnu-gcc KIMAGE=arch/arm64/boot/Image ;;
	i386)	KARGS=(ARCH=i386 CROSS_COMPILE=i686-linux-gnu- "CC=ccache i686-linux-gnu-gcc")
		# 64-bit file offsets: VFIO regions sit at index << 40
		TARGET_CC="i686-linux-gnu-gcc -D_FILE_OFFSET_BITS=64"
		KIMAGE=arch/x86/boot/bzImage ;;
	*)	die "unknown ARCH '$1'" ;;
	esac
	BIN=$BUILD/bin BUSYBOX=/bin/busybox
	[ "$1" = x86_64 ] || BIN=$BUILD/bin-$1 BUSYBOX=$BUILD/busybox/$1/bin/busybox
}

# verdict RESULTS NAME FINDINGS: one result line, PASS when FINDINGS is
# empty, else FAIL with the first finding; all findings go to stderr.
verdict() {
	if [ -z "$3" ]; then
		echo "PASS $2" >> "$1"
	else
		echo "FAIL $2: $(echo "$3" | head -1)" >> "$1"
		echo "$3" | sed 's/^/  /' >&2
	fi
}

# guest_results NAME VARIANT RESULTS: tap.py's lines for the guest run NAME
# (build/logs/NAME.tap and .console) of kernel VARIANT, with its .config,
# the tree $CHECK_TREE and the SKIPs guest/skips-NAME.txt allows.  A run
# without a verdict fails: if tap.py crashed (exit code not 0 or 1) or
# added no line, a FAIL line says so.
guest_results() {
	local name=$1 variant=$2 results=$3 rc=0 before
	before=$(wc -l < "$results")
	python3 "$TOP/scripts/tap.py" "$name" "$LOGS/$name.tap" "$LOGS/$name.console" \
		"$results" --config "$OBJ/$(variant_objdir "$variant")/.config" \
		--tree "$CHECK_TREE" --skips "$TOP/guest/skips-$name.txt" || rc=$?
	if [ "$rc" -gt 1 ]; then
		echo "FAIL $name: tap.py failed with exit code $rc (above)" >> "$results"
	elif [ "$(wc -l < "$results")" -le "$before" ]; then
		echo "FAIL $name: tap.py recorded no result for this run" >> "$results"
	fi
	return 0
}

# print_summary RESULTS START WHAT: the failures, the time, and last the
# line "N passed, N failed, N skipped"; false if anything failed.
print_summary() {
	local p f s
	p=$(grep -c '^PASS' "$1")
	f=$(grep -c '^FAIL' "$1")
	s=$(grep -c '^SKIP' "$1")
	if [ "$f" != 0 ]; then
		echo "Failures:"
		grep '^FAIL' "$1" | sed 's/^/  /'
	fi
	echo "$3 took $(($(date +%s) - $2))s; results in ${1#"$TOP"/}"
	echo "$p passed, $f failed, $s skipped"
	[ "$f" = 0 ]
}
