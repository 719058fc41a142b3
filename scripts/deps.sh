#!/bin/bash
# Install what the harness needs from Debian's archive (idempotent).
set -eu
. "$(dirname "$0")/lib.sh"

PKGS="linux-source-6.12 linux-config-6.12 build-essential bc bison flex
libelf-dev libssl-dev dwarves cpio xz-utils kmod ccache sparse quilt git
qemu-system-x86 busybox-static python3 python3-docutils python3-ply python3-git libcap-dev
gcc-arm-linux-gnueabihf debootstrap"

missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' ||
		missing="$missing $p"
done
if [ -n "$missing" ]; then
	[ "$(id -u)" = 0 ] || die "need root to install:$missing"
	say "installing:$missing"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q
	# shellcheck disable=SC2086
	apt-get install -y -q --no-install-recommends $missing
fi
