#!/bin/bash
# tests-build.sh SRC: build the guest's test programs into build/bin against
# SRC's uAPI headers: the demo, the harness's own programs (tests/*.c, on
# SRC's kselftest_harness.h), and the kselftests of SRC with the kernel's
# own selftest makefiles (static, the guest has no libc).
set -eu
. "$(dirname "$0")/lib.sh"
src=$1
# The uAPI headers as "make headers" leaves them in its objdir (usr/include):
# unlike headers_install it needs no rsync.
hdr="$BUILD/obj/headers/usr"
bin="$BUILD/bin"
rm -rf "$bin"
mkdir -p "$bin" "$LOGS"
log="$LOGS/tests-build.log"
make -C "$src" -s ARCH=x86_64 O="$BUILD/obj/headers" headers >"$log" 2>&1 ||
	die "make headers failed (see ${log#"$TOP"/})"
gcc -Wall -Wextra -Werror -O2 -static -isystem "$hdr/include" \
	-o "$bin/edu-dma" "$TOP/demo/edu-dma.c" || die "demo/edu-dma.c does not build"
# (The demo alone, for make, builds with SELFTESTS="".)
if [ -n "$SELFTESTS" ]; then
	for c in "$TOP"/tests/*.c "$TOP"/bench/*.c; do
		gcc -Wall -Werror -O2 -static -isystem "$hdr/include" \
			-I "$src/tools/testing/selftests" -I "$TOP/tests" \
			-o "$bin/$(basename "$c" .c)" "$c" -lpthread ||
			die "${c#"$TOP"/} does not build"
	done
fi
for t in $SELFTESTS; do
	dir=${t%%:*} target=""
	[ "$dir" = "$t" ] || target="$bin/$dir/${t#*:}"
	[ -d "$src/tools/testing/selftests/$dir" ] || continue
	[ -z "$target" ] || grep -q "${t#*:}" "$src/tools/testing/selftests/$dir/Makefile" || continue
	mkdir -p "$bin/$dir"
	if ! make -C "$src/tools/testing/selftests/$dir" -j"$JOBS" OUTPUT="$bin/$dir" \
		KHDR_INCLUDES="-isystem $hdr/include" CC="gcc -static" $target >>"$log" 2>&1; then
		grep -E 'error|warning' "$log" | head -20 >&2
		die "kselftest $t does not build (see ${log#"$TOP"/})"
	fi
	find "$bin/$dir" -name '*.o' -delete
done
say "test programs built: $(cd "$bin" && find . -type f -perm -u+x | sed 's|^\./||' | tr '\n' ' ')"
