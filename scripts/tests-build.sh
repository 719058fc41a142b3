#!/bin/bash
# tests-build.sh SRC [ARCH...]: build the guest's test programs for each
# ARCH (default x86_64; arm64 and i386 with Debian's cross compilers) into
# build/bin (x86_64) or build/bin-ARCH against SRC's uAPI headers: the demo,
# the harness's own programs (tests/*.c, on SRC's kselftest_harness.h), and
# the kselftests of SRC with the kernel's own selftest makefiles (static,
# the guest has no libc).
set -eu
. "$(dirname "$0")/lib.sh"
src=$1
shift
mkdir -p "$LOGS"
for arch in "${@:-x86_64}"; do
	set_arch "$arch"
	# The uAPI headers as "make headers" leaves them in its objdir (usr/include):
	# unlike headers_install it needs no rsync.
	hobj="$BUILD/obj/headers"
	[ "$arch" = x86_64 ] || hobj="$hobj-$arch"
	hdr="$hobj/usr"
	bin=$BIN
	cc="$TARGET_CC -static"
	rm -rf "$bin"
	mkdir -p "$bin"
	log="$LOGS/tests-build-$arch.log"
	make -C "$src" -s "${KARGS[@]}" O="$hobj" headers >"$log" 2>&1 ||
		die "make headers ($arch) failed (see ${log#"$TOP"/})"
	$cc -Wall -Wextra -Werror -O2 -isystem "$hdr/include" \
		-o "$bin/edu-dma" "$TOP/demo/edu-dma.c" || die "demo/edu-dma.c does not build ($arch)"
	# (The demo alone, for make, builds with SELFTESTS="".)
	# The harness's own programs take unsigned long for 64 bits (IOVAs past
	# 4 GiB, the fuzzer's sizes): 32-bit guests run the kselftests.
	if [ -n "$SELFTESTS" ] && [ "$arch" != i386 ]; then
		for c in "$TOP"/tests/*.c "$TOP"/bench/*.c; do
			$cc -Wall -Werror -O2 -isystem "$hdr/include" \
				-I "$src/tools/testing/selftests" -I "$TOP/tests" \
				-o "$bin/$(basename "$c" .c)" "$c" -lpthread ||
				die "${c#"$TOP"/} does not build ($arch)"
		done
	fi
	for t in $SELFTESTS; do
		dir=${t%%:*} target=""
		[ "$dir" = "$t" ] || target="$bin/$dir/${t#*:}"
		[ -d "$src/tools/testing/selftests/$dir" ] || continue
		[ -z "$target" ] || grep -q "${t#*:}" "$src/tools/testing/selftests/$dir/Makefile" || continue
		mkdir -p "$bin/$dir"
		if ! make -C "$src/tools/testing/selftests/$dir" -j"$JOBS" OUTPUT="$bin/$dir" \
			KHDR_INCLUDES="-isystem $hdr/include" CC="$cc" $target >>"$log" 2>&1; then
			grep -E 'error|warning' "$log" | head -20 >&2
			die "kselftest $t does not build for $arch (see ${log#"$TOP"/})"
		fi
		find "$bin/$dir" -name '*.o' -delete
	done
	say "test programs built for $arch: $(cd "$bin" && find . -type f -perm -u+x | sed 's|^\./||' | tr '\n' ' ')"
done
