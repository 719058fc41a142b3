#!/bin/bash
# Install what the harness needs from Debian's archive (idempotent).
set -eu
. "$(dirname "$0")/lib.sh"

PKGS="linux-source-6.12 linux-config-6.12 build-essential bc bison flex
libelf-dev libssl-dev dwarves cpio xz-utils kmod ccache sparse quilt git
qemu-system-x86 busybox-static python3 python3-docutils python3-ply python3-git libcap-dev
gcc-arm-linux-gnueabihf debootstrap
qemu-system-arm gcc-aarch64-linux-gnu libc6-dev-arm64-cross
gcc-i686-linux-gnu libc6-dev-i386-cross"

missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' ||
		missing="$missing $p"
done
if [ -n "$missing" ]; then
	[ "$(id -u)" = 0 ] || die "need root to install:$missing"
	say "installing:$missing"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q || say "apt-get update failed for some indexes; trying the install"
	# shellcheck disable=SC2086
	apt-get install -y -q --no-install-recommends $missing
fi

# The guests' busybox for arm64 and i386: Debian's busybox-static of that
# architecture, unpacked (dpkg multiarch finds it; it cannot be installed
# beside the host's).  The cross compilers above cannot be installed with
# gcc-multilib either, hence gcc-i686-linux-gnu for 32-bit userspace.
for arch in arm64 i386; do
	dir="$BUILD/busybox/$arch"
	[ -x "$dir/bin/busybox" ] && continue
	if ! dpkg --print-foreign-architectures | grep -qx "$arch"; then
		[ "$(id -u)" = 0 ] || die "need root to add the $arch architecture"
		dpkg --add-architecture "$arch"
		added=1
	fi
	if [ -n "${added:-}" ] || ! apt-cache show "busybox-static:$arch" >/dev/null 2>&1; then
		apt-get update -q || say "apt-get update failed for some indexes; trying the download"
		added=""
	fi
	mkdir -p "$BUILD/debs" "$dir"
	(cd "$BUILD/debs" && apt-get download -q "busybox-static:$arch") ||
		die "cannot download busybox-static:$arch"
	dpkg-deb -x "$BUILD"/debs/busybox-static_*_"$arch".deb "$dir"
	[ -x "$dir/bin/busybox" ] || die "busybox-static:$arch has no bin/busybox"
done
