#!/bin/bash
# cleanroot.sh RESULTS: prove the install step on a machine that has nothing
# installed.  In a minimal Debian 12 root (debootstrap --variant=minbase,
# mirror and suites taken from the host's apt sources) it runs
# scripts/deps.sh, then, with the repository bind-mounted read-only at its
# own path and build/check (made by the apply stage) as the source: builds
# the uAPI headers, the demo and the test programs (scripts/tests-build.sh
# with BUILD=build/cleanroot-out; x86_64, and for arm64 and i386 a static
# program links with the cross compiler), configures and prepares a small kernel
# (kconfig, objtool, sign-file, timeconst), and checks that every command a
# harness stage or a guest run needs is there.  Appends PASS/FAIL lines to
# RESULTS; a FAIL names what is missing.
#
# The root is cached in ${CLEANROOT_DIR:-/var/cache/vfio-noiommu-cleanroot}
# (outside the clone) after deps.sh, keyed on deps.sh's package list and
# the suite: taking a package out of deps.sh gives a new root, rebuilt from
# the cached pristine debootstrap tarball, which then lacks it.  The last
# CLEANROOT_KEEP (2) roots are kept.
set -eu
. "$(dirname "$0")/lib.sh"
results=$1
suite=bookworm
format=1                # bump when the way a root is made changes
cache=${CLEANROOT_DIR:-/var/cache/vfio-noiommu-cleanroot}
out="$BUILD/cleanroot-out"      # the root's BUILD: headers, bin, logs, objdirs
start=$(date +%s)
root="" mounted=0 reason="" state=""

N_DEPS="cleanroot: deps.sh installs everything on a minimal Debian 12 root"
N_TESTS="cleanroot: uAPI headers, demo and test programs build on the clean root (x86_64; arm64 and i386: a static program links)"
N_KERNEL="cleanroot: a kernel configures and prepares on the clean root (kconfig, objtool, sign-file)"
N_CMDS="cleanroot: every command the harness and guest runs need is present"

# What each harness stage or guest run calls (guest/init runs on the
# guest's busybox and is not listed).  "needed by: commands".
commands_table() {
	cat <<'EOF'
Makefile and scripts/lib.sh: bash make gcc ccache dpkg-query nproc awk sed grep head wc date dirname
scripts/deps.sh: apt-get dpkg-query id dpkg dpkg-deb apt-cache
scripts/source.sh: tar xz git
scripts/apply.sh: git quilt patch tail
scripts/config.sh: sha1sum find sort
scripts/build.sh (kernel build): flex bison bc perl gzip ld objdump nm strip pahole depmod
scripts/checkpatch.sh: perl python3 git
scripts/lint.sh: sparse comm xargs mktemp python3
scripts/kconfig-matrix.sh: arm-linux-gnueabihf-gcc arm-linux-gnueabihf-ld xz
scripts/tests-build.sh: gcc make aarch64-linux-gnu-gcc i686-linux-gnu-gcc
scripts/boot.sh: cpio timeout qemu-system-x86_64 qemu-system-i386 qemu-system-aarch64 cp find
scripts/check.sh, scripts/tap.py, scripts/stress.sh and scripts/bench-report.py: python3
scripts/bench.sh: size seq
scripts/tree.sh and scripts/export.sh: git
scripts/cleanroot.sh: debootstrap chroot mount umount flock sha256sum readelf
EOF
}

step() { say "clean root [$(($(date +%s) - start))s]: $*"; }
fail_setup() { reason="$*"; die "clean root: $*"; }

# The words of PKGS="..." in deps.sh, one a line, sorted.
deps_packages() {
	awk '/^PKGS="/ { on = 1; sub(/^PKGS="/, "") }
		on { if (sub(/".*/, "")) { print; exit } print }' "$TOP/scripts/deps.sh" |
		tr -s ' \t' '\n' | grep . | sort -u
}

# key: the root's name, from the package list and the suite.
root_key() {
	local pkgs
	pkgs=$(deps_packages)
	[ -n "$pkgs" ] || fail_setup "no PKGS list found in scripts/deps.sh"
	key=$suite-$(printf 'format %s\nsuite %s\n%s\n' "$format" "$suite" "$pkgs" |
		sha256sum | cut -c1-16)
}

# The host's apt source files that name the suite (any of its -updates,
# -security, -backports too).
host_sources() {
	local f
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
		/etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] && grep -q "^[^#]*\b$suite\b" "$f" && echo "$f"
	done
	return 0
}

# The host's mirror for the suite itself: the first URI of an enabled
# deb822 stanza or one-line "deb" entry for it.
host_mirror() {
	local f
	for f in $(host_sources); do
		case "$f" in
		*.sources)
			awk -v s="$suite" 'BEGIN { RS = ""; FS = "\n" }
			{
				t = u = su = ""; en = "yes"
				for (i = 1; i <= NF; i++) {
					if ($i ~ /^Types:/) { t = $i; sub(/^Types:/, "", t) }
					if ($i ~ /^URIs:/) { u = $i; sub(/^URIs:[ \t]*/, "", u) }
					if ($i ~ /^Suites:/) { su = $i; sub(/^Suites:/, "", su) }
					if ($i ~ /^Enabled:/) { en = $i; sub(/^Enabled:[ \t]*/, "", en) }
				}
				if ((t " ") ~ /[ \t]deb[ \t]/ && (su " ") ~ ("[ \t]" s "[ \t]") && en != "no") {
					split(u, a, /[ \t]+/); print a[1]; exit
				}
			}' "$f" ;;
		*)
			awk -v s="$suite" '$1 == "deb" {
				i = 2
				if ($i ~ /^\[/) { while (i < NF && $i !~ /\]$/) i++; i++ }
				if ($(i + 1) == s) { print $i; exit }
			}' "$f" ;;
		esac
	done | head -1
}

# The suites ("bookworm-security/main") the host has linux-source-6.12
# from: those of the installed version, else of the candidate.
host_source_suites() {
	apt-cache policy linux-source-6.12 2>/dev/null | awk '
		$1 == "Installed:" && $2 != "(none)" { want = $2 }
		$1 == "Candidate:" && want == "" { want = $2 }
		/^ \*\*\* / { cur = $2; next }
		/^     [^ ]/ { cur = $1; next }
		/^        / && cur == want && NF >= 4 { print $3 }'
}

# Refuse to delete anything that has a mount below it (a bind of /dev or of
# the repository left by a killed run).
safe_rm() {
	local d=$1
	[ -e "$d" ] || return 0
	if findmnt -rn -o TARGET | grep -q "^$d\(/\|$\)"; then
		umount -R "$d" 2>/dev/null || true
		! findmnt -rn -o TARGET | grep -q "^$d\(/\|$\)" ||
			fail_setup "$d still has mounts below it: not deleting it"
	fi
	rm -rf --one-file-system "$d"
}

# tarball: the pristine minbase root, debootstrapped once and kept.
pristine_tarball() {
	local tmp="$cache/minbase-$suite.new" mirror
	tarball="$cache/minbase-$suite.tar"
	[ -f "$tarball" ] && return 0
	mirror=$(host_mirror)
	[ -n "$mirror" ] || fail_setup "no $suite entry in the host's apt sources (/etc/apt/sources.list*)"
	step "debootstrap --variant=minbase $suite from $mirror"
	safe_rm "$tmp"
	debootstrap --variant=minbase "$suite" "$tmp" "$mirror" > "$out/logs/debootstrap.log" 2>&1 || {
		tail -5 "$out/logs/debootstrap.log" >&2
		fail_setup "debootstrap failed (see ${out#"$TOP"/}/logs/debootstrap.log)"
	}
	tar -C "$tmp" --numeric-owner -cpf "$tarball.new" .
	mv "$tarball.new" "$tarball"
	safe_rm "$tmp"
}

# The host's apt sources (and the keyrings they name) instead of the single
# line debootstrap wrote, so that apt-get in the root sees the same suites.
setup_apt() {
	local f k
	rm -f "$root/etc/apt/sources.list" "$root"/etc/apt/sources.list.d/*
	for f in $(host_sources); do
		cp "$f" "$root$f"
		# shellcheck disable=SC2013	# paths, no blanks
		for k in $(grep -ohiE 'signed-by[:=][[:space:]]*/[^][:space:]]+' "$f" | sed -E 's/^[^/]*//'); do
			[ -e "$root$k" ] || { mkdir -p "$root$(dirname "$k")"; cp "$k" "$root$k"; }
		done
	done
	[ -n "$(host_sources)" ] || fail_setup "no $suite entry in the host's apt sources"
	# No daemon started by a package's postinst inside the root.
	printf '#!/bin/sh\nexit 101\n' > "$root/usr/sbin/policy-rc.d"
	chmod +x "$root/usr/sbin/policy-rc.d"
}

# The cached root for this package list, or a new one from the pristine
# tarball (state=cold) whose deps.sh run is still to come.
open_root() {
	local key tarball
	root_key
	mkdir -p "$cache/apt-archives/partial"
	root="$cache/$key"
	if [ -f "$root/.cleanroot-ready" ]; then
		state=cached
		touch "$root/.cleanroot-ready"
		step "reusing $root"
		return 0
	fi
	state=cold
	safe_rm "$root"
	pristine_tarball
	step "new root $root (from ${tarball##*/})"
	mkdir -p "$root"
	tar -C "$root" --numeric-owner -xpf "$tarball"
	setup_apt
}

# Keep the CLEANROOT_KEEP most recently used roots; drop unfinished ones
# (deps.sh failed in them).
prune_roots() {
	local d
	for d in "$cache"/"$suite"-*/; do
		d=${d%/}
		if [ -d "$d" ] && [ "$d" != "$root" ] && [ ! -f "$d/.cleanroot-ready" ]; then
			step "removing unfinished root $d"
			safe_rm "$d"
		fi
	done
	# shellcheck disable=SC2012
	for d in $(ls -td "$cache"/"$suite"-*/.cleanroot-ready 2>/dev/null |
		tail -n +$((${CLEANROOT_KEEP:-2} + 1))); do
		d=$(dirname "$d")
		[ "$d" = "$root" ] && continue
		step "removing old root $d"
		safe_rm "$d"
	done
}

# /proc, /sys, /dev, a fresh /tmp, the shared apt cache, the repository
# read-only at its own path (build/check's .git names an absolute path)
# and build/cleanroot-out writable.  Everything below a private bind of
# the root itself, so nothing propagates to the host and one umount -R
# undoes it.
mount_root() {
	mount --bind "$root" "$root"
	mounted=1
	mount --make-private "$root"
	mount -t proc proc "$root/proc"
	mount -t sysfs sysfs "$root/sys"
	mount --rbind /dev "$root/dev"
	mount --make-rslave "$root/dev"
	mount -t tmpfs tmpfs "$root/tmp"
	mount --bind "$cache/apt-archives" "$root/var/cache/apt/archives"
	mkdir -p "$root$TOP"
	mount --bind "$TOP" "$root$TOP"
	mount --make-private "$root$TOP"
	mount -o remount,bind,ro "$root$TOP"
	mount --bind "$out" "$root$out"
	mount --make-private "$root$out"
	cp /etc/resolv.conf "$root/etc/resolv.conf"
}

unmount_root() {
	[ "$mounted" = 1 ] || return 0
	umount -R "$root" 2>/dev/null || umount -R -l "$root" ||
		say "clean root: could not unmount $root"
	mounted=0
}

# in_root CMD...: run CMD in the root with a clean environment; BUILD
# sends the harness's outputs to build/cleanroot-out.
in_root() {
	chroot "$root" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM=dumb \
		PATH=/usr/sbin:/usr/bin:/sbin:/bin JOBS="$JOBS" BUILD="$out" "$@"
}

# deps.sh from nothing; on a new root a second run must install nothing,
# and apt must see the suites the host has linux-source-6.12 from.
check_deps() {
	local log="$out/logs/deps.log" s policy
	if ! in_root "$TOP/scripts/deps.sh" > "$log" 2>&1; then
		tail -15 "$log" >&2
		echo "deps.sh failed in the clean root: $(grep -m1 -E '^(E|ERROR):' "$log" || tail -1 "$log") (see ${log#"$TOP"/})"
		return 0
	fi
	if [ "$state" = cold ] && in_root "$TOP/scripts/deps.sh" 2>&1 | grep -q 'installing:'; then
		echo "deps.sh is not idempotent: a second run installs packages again"
	fi
	policy=$(in_root apt-cache policy linux-source-6.12)
	for s in $(host_source_suites); do
		grep -qF " $s " <<< "$policy" ||
			echo "apt in the clean root does not see $s, which the host has linux-source-6.12 from"
	done
}

# All programs for x86_64; for arm64 and i386 (whose programs make check's
# test programs stage builds on the host with the same scripts) a static
# program that uses what they use links with the cross compiler and libc
# deps.sh installs.
check_tests_build() {
	local err="$out/logs/tests-build.err"
	if ! in_root "$TOP/scripts/tests-build.sh" "$CHECK_TREE" x86_64 2> "$err"; then
		cat "$err" >&2
		echo "tests-build.sh in the clean root: $(grep -m1 '^ERROR' "$err" || tail -1 "$err")"
	fi
	# shellcheck disable=SC2016	# expanded in the root
	in_root bash -c '. "$1/scripts/lib.sh"
		for arch in arm64 i386; do
			set_arch "$arch"
			rm -f "/tmp/cross-$arch"
			printf "%s\n" "#include <pthread.h>" "#include <sys/mman.h>" \
				"#include <sys/ioctl.h>" "#include <linux/types.h>" \
				"static void *f(void *p) { return mmap(p, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0); }" \
				"int main(void) { pthread_t t; __u64 x = 0; return pthread_create(&t, 0, f, &x) || ioctl(0, 0); }" |
				$TARGET_CC -static -Wall -Werror -x c -o /tmp/cross-$arch - -lpthread 2>&1 | head -3 |
				sed "s/^/$TARGET_CC -static (scripts\/tests-build.sh, $arch): /" || true
			[ -x /tmp/cross-$arch ] || echo "$TARGET_CC cannot link a static program for $arch (needed by scripts/tests-build.sh)"
		done' _ "$TOP"
}

# tinyconfig plus modules signing (sign-file: openssl headers) and the ORC
# unwinder (objtool: libelf), then "prepare" (kconfig: flex, bison;
# timeconst: bc; perl) in a fresh objdir.
check_kernel() {
	local obj="$out/obj/smoke" log="$out/logs/smoke.log"
	mkdir -p "$obj"
	printf '%s\n' CONFIG_MODULES=y CONFIG_MODULE_SIG=y CONFIG_UNWINDER_ORC=y \
		'# CONFIG_UNWINDER_GUESS is not set' > "$obj/smoke.config"
	# shellcheck disable=SC2016	# expanded in the root
	if ! in_root bash -c '. "$1/scripts/lib.sh"; src=$2 obj=$3
		set -e
		kmake "$src" "$obj" ARCH=x86_64 KCONFIG_CONFIG=.config.tiny tinyconfig
		cd "$obj"
		"$src/scripts/kconfig/merge_config.sh" -m -O "$obj" .config.tiny smoke.config
		kmake "$src" "$obj" ARCH=x86_64 olddefconfig
		for s in OBJTOOL MODULE_SIG_FORMAT; do
			grep -q "^CONFIG_$s=y" .config || { echo "ERROR: CONFIG_$s not set"; exit 1; }
		done
		kmake "$src" "$obj" ARCH=x86_64 prepare
		test -x tools/objtool/objtool && test -x scripts/sign-file' \
		_ "$TOP" "$CHECK_TREE" "$obj" > "$log" 2>&1; then
		grep -E 'error|Error|ERROR|not found' "$log" | head -10 >&2
		echo "kernel tinyconfig + prepare in the clean root: $(grep -m1 -E 'not found|error|Error|ERROR' "$log" || tail -1 "$log") (see ${log#"$TOP"/})"
	fi
}

# Every command of commands_table, the static busybox, the packaged kernel
# source and config, the python modules (checkpatch's, lint's, and what
# each scripts/*.py imports), that perl loads checkpatch.pl,
# get_maintainer.pl and kernel-doc, and QEMU's two machines with edu.
check_commands() {
	# shellcheck disable=SC2016	# expanded in the root
	commands_table | in_root bash -c '
		hint="add its package to scripts/deps.sh"
		declare -A seen
		while IFS=: read -r who cmds; do
			for c in $cmds; do
				[ -z "${seen[$c]:-}" ] || continue
				seen[$c]=1
				command -v "$c" >/dev/null ||
					echo "command '\''$c'\'' not found (needed by $who); $hint"
			done
		done
		if [ ! -x /bin/busybox ]; then
			echo "/bin/busybox not found (needed by scripts/boot.sh); $hint"
		elif ! readelf -l /bin/busybox 2>/dev/null | grep -q "Program Headers" ||
		     readelf -l /bin/busybox | grep -q INTERP; then
			echo "/bin/busybox is not a static executable (needed by scripts/boot.sh: the guest has no libc); add busybox-static to scripts/deps.sh"
		fi
		for f in "$1:scripts/source.sh" "$4/busybox/arm64/bin/busybox:scripts/boot.sh" \
			"$4/busybox/i386/bin/busybox:scripts/boot.sh" \
			/usr/src/linux-config-6.12/config.amd64_none_amd64.xz:scripts/kconfig-matrix.sh; do
			[ -f "${f%%:*}" ] || echo "${f%%:*} not found (needed by ${f#*:}); $hint"
		done
		for m in ply:checkpatch.pl git:checkpatch.pl docutils.core:scripts/lint.sh; do
			python3 -c "import ${m%%:*}" 2>/dev/null ||
				echo "python3 module ${m%%:*} not found (needed by ${m#*:}); $hint"
		done
		for f in "$3"/scripts/*.py; do
			err=$(python3 -c "$(grep -E "^(import|from) " "$f")" 2>&1) ||
				echo "python3 cannot import what ${f#"$3"/} imports: $(echo "$err" | tail -1); $hint"
		done
		for p in checkpatch.pl get_maintainer.pl kernel-doc; do
			perl -c "$2/scripts/$p" >/dev/null 2>&1 ||
				echo "perl cannot load $2/scripts/$p (needed by scripts/checkpatch.sh, scripts/lint.sh): $(perl -c "$2/scripts/$p" 2>&1 | head -1); $hint"
		done
		echo . | cpio -o -H newc --quiet >/dev/null 2>&1 ||
			echo "cpio -o -H newc fails (needed by scripts/boot.sh)"
		for m in "pc" "q35 -device intel-iommu"; do
			rc=0
			# shellcheck disable=SC2086
			timeout 5 qemu-system-x86_64 -machine $m -accel tcg -cpu max -m 256 \
				-nodefaults -display none -monitor none -serial none -S \
				-device edu,dma_mask=0xffffffffffffffff >/tmp/qemu.log 2>&1 </dev/null || rc=$?
			[ $rc = 124 ] || echo "qemu-system-x86_64 -machine $m with edu does not start (needed by scripts/boot.sh): $(head -1 /tmp/qemu.log)"
		done
		rc=0
		timeout 5 qemu-system-aarch64 -machine virt,gic-version=3 -accel tcg -cpu max,pauth-impdef=on \
			-m 256 -nodefaults -display none -monitor none -serial none -S \
			-device virtio-serial-device -device edu,dma_mask=0xffffffffffffffff \
			>/tmp/qemu.log 2>&1 </dev/null || rc=$?
		[ $rc = 124 ] || echo "qemu-system-aarch64 -machine virt with edu does not start (needed by scripts/boot.sh): $(head -1 /tmp/qemu.log)"
		' _ "$SRC_TARBALL" "$CHECK_TREE" "$TOP" "$out"
}

finish() {
	local rc=$?
	unmount_root
	if [ -n "$reason" ] || [ $rc != 0 ]; then
		echo "FAIL cleanroot: setup: ${reason:-unexpected error (exit $rc), see above}" >> "$results"
		echo "  FAIL cleanroot: setup: ${reason:-unexpected error (exit $rc)}" >&2
	fi
	say "clean root: took $(($(date +%s) - start))s (${state:-no} root)"
}

main() {
	local deps before n
	trap finish EXIT
	trap 'exit 130' INT TERM HUP
	: >> "$results"
	[ "$(id -u)" = 0 ] || fail_setup "needs root (debootstrap, mount, chroot)"
	command -v debootstrap >/dev/null || fail_setup "debootstrap is not installed (run scripts/deps.sh)"
	[ -f "$CHECK_TREE/Makefile" ] || fail_setup "${CHECK_TREE#"$TOP"/} does not exist: run scripts/apply.sh (make check's apply stage) first"
	mkdir -p "$cache"
	exec 9> "$cache/lock"
	flock 9
	safe_rm "$out"
	mkdir -p "$out/logs"
	open_root
	mount_root

	before=$(wc -l < "$results")
	step "scripts/deps.sh (log: ${out#"$TOP"/}/logs/deps.log)"
	deps=$(check_deps)
	verdict "$results" "$N_DEPS" "$deps"
	if [ -n "$deps" ]; then
		for n in "$N_TESTS" "$N_KERNEL" "$N_CMDS"; do
			verdict "$results" "$n" "not checked: deps.sh failed in the clean root"
		done
	else
		[ "$state" = cached ] || touch "$root/.cleanroot-ready"
		prune_roots
		step "uAPI headers, demo and test programs (scripts/tests-build.sh)"
		verdict "$results" "$N_TESTS" "$(check_tests_build)"
		step "kernel tinyconfig + prepare"
		verdict "$results" "$N_KERNEL" "$(check_kernel)"
		step "commands of the harness and the guest runs"
		verdict "$results" "$N_CMDS" "$(check_commands)"
	fi
	tail -n +$((before + 1)) "$results" | grep '^FAIL' | sed 's/^FAIL cleanroot: [^:]*: /clean root: /' >&2 || true
}

main
