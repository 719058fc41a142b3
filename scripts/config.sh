#!/bin/bash
# config.sh SRC VARIANT: write build/obj/VARIANT/.config from tinyconfig and
# the fragments configs/variants lists, with the tree's merge_config.sh.
# Nothing is redone while neither the fragments nor the tree's Kconfig
# files change; kbuild itself only rebuilds what a changed symbol affects.
set -eu
. "$(dirname "$0")/lib.sh"
src=$1 variant=$2
frags=$(awk -v v="$variant" '$1 == v { $1 = $2 = ""; print }' "$TOP/configs/variants")
[ -n "$frags" ] || die "unknown kernel variant '$variant' (see configs/variants)"
obj="$OBJ/$(variant_objdir "$variant")"
set_arch "$(variant_arch "$variant")"
mkdir -p "$obj"
files=()
for f in $frags; do
	files+=("$TOP/configs/$f.config")
done

key=$( (cat "${files[@]}"; git -C "$src" ls-files -s -- '*Kconfig*'
	git -C "$src" diff -- '*Kconfig*') | sha1sum)
if [ -f "$obj/.config" ] && [ "$(cat "$obj/.config.key" 2>/dev/null)" = "$key" ]; then
	exit 0
fi
# The key goes first: a .config that fails the checks below must not be
# taken for the last good one by the next run.
rm -f "$obj/.config.key"

kmake "$src" "$obj" -s "${KARGS[@]}" KCONFIG_CONFIG=.config.tiny tinyconfig >/dev/null
(cd "$src" && scripts/kconfig/merge_config.sh -m -O "$obj" "$obj/.config.tiny" "${files[@]}" >/dev/null)
kmake "$src" "$obj" -s "${KARGS[@]}" olddefconfig

# Every requested value must survive olddefconfig: catch typos and unmet
# dependencies in the fragments.  Symbols that the series introduces are
# skipped on trees that do not have them yet.
find "$src" -name 'Kconfig*' -not -path '*/.git/*' -exec sed -n 's/^\(menu\)\?config \([A-Z0-9_]*\).*/\2/p' {} + |
	sort -u > "$obj/.kconfig-symbols"
declare -A want=()
for f in "${files[@]}"; do	# later fragments override earlier ones
	while IFS= read -r line; do
		case "$line" in CONFIG_*=*) want[${line%%=*}]=${line#*=} ;; esac
	done < "$f"
done
bad=0
for sym in "${!want[@]}"; do
	val=${want[$sym]}
	grep -qx "${sym#CONFIG_}" "$obj/.kconfig-symbols" || continue
	if [ "$val" = n ]; then
		grep -q "^$sym=" "$obj/.config" && { echo "  $sym: wanted n" >&2; bad=1; }
	else
		grep -qx "$sym=$val" "$obj/.config" || { echo "  $sym: wanted $val, got $(grep "^$sym=" "$obj/.config" || echo unset)" >&2; bad=1; }
	fi
done
[ $bad = 0 ] || die "variant $variant: fragment values lost in olddefconfig (above)"
echo "$key" > "$obj/.config.key"
