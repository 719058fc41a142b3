#!/bin/bash
# build.sh SRC VARIANT: configure and build (incrementally, through ccache)
# the guest kernel VARIANT from the tree SRC into build/obj/VARIANT.
set -eu
. "$(dirname "$0")/lib.sh"
src=$1 variant=$2
obj="$OBJ/$(variant_objdir "$variant")"
set_arch "$(variant_arch "$variant")"
mkdir -p "$LOGS"
"$TOP/scripts/config.sh" "$src" "$variant"
log="$LOGS/build-$variant.log"
say "building $variant kernel ($KARCH, $(make -s -C "$src" kernelversion), log: ${log#"$TOP"/})"
start=$(date +%s)
if ! kmake "$src" "$obj" "${KARGS[@]}" "${KIMAGE##*/}" $(grep -q '^CONFIG_MODULES=y' "$obj/.config" && echo modules) >"$log" 2>&1; then
	grep -E 'error|Error' "$log" | head -20 >&2
	die "build of $variant failed (see ${log#"$TOP"/})"
fi
if grep -q '^CONFIG_MODULES=y' "$obj/.config"; then
	rm -rf "$obj/modroot"
	kmake "$src" "$obj" "${KARGS[@]}" -s INSTALL_MOD_PATH="$obj/modroot" INSTALL_MOD_STRIP=1 modules_install >>"$log" 2>&1
fi
say "built $variant in $(($(date +%s) - start))s"
