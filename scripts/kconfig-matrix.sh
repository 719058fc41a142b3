#!/bin/bash
# kconfig-matrix.sh RESULTS: check configs/kconfig-matrix.txt on the patched
# tree: request VFIO_NOIOMMU=y with each row's settings, olddefconfig, and
# compare with the expected values; compile the VFIO and iommufd
# directories for the rows that say so.
set -eu
. "$(dirname "$0")/lib.sh"
results=$1
obj="$OBJ/matrix"
mkdir -p "$obj"
table="$TOP/configs/kconfig-matrix.txt"

arch_of() { [ "$1" = arm ] && echo arm || echo x86_64; }

mk() {	# mk BASE make-args...: make for the row's architecture
	local base=$1
	shift
	if [ "$base" = arm ]; then
		kmake "$CHECK_TREE" "$obj/$base" ARCH=arm CROSS_COMPILE=arm-linux-gnueabihf- \
			CC="ccache arm-linux-gnueabihf-gcc" "$@"
	else
		kmake "$CHECK_TREE" "$obj/$base" ARCH=x86_64 "$@"
	fi
}

base_config() {	# base_config BASE: the row's starting .config
	local base=$1 dir="$obj/$1"
	mkdir -p "$dir"
	[ -f "$dir/.config.base" ] && return 0
	case "$base" in
	guest)
		mk guest -s KCONFIG_CONFIG=.config.tiny tinyconfig >/dev/null
		(cd "$CHECK_TREE" && scripts/kconfig/merge_config.sh -m -O "$dir" \
			"$dir/.config.tiny" "$TOP/configs/guest.config" >/dev/null)
		mv "$dir/.config" "$dir/.config.base" ;;
	debian)
		xz -dc /usr/src/linux-config-6.12/config.amd64_none_amd64.xz > "$dir/.config.base" ;;
	arm)
		mk arm -s ixp4xx_defconfig >/dev/null
		mv "$dir/.config" "$dir/.config.base" ;;
	esac
}

value() {	# value DIR SYMBOL: y, m or n as resolved
	sed -n "s/^CONFIG_$2=\(.*\)/\1/p" "$1/.config" | grep . || echo n
}

while read -r name base settings want_noiommu want_iommufd compile; do
	case "$name" in ''|'#'*) continue ;; esac
	dir="$obj/$base"
	base_config "$base"
	frag="$dir/.fragment"
	echo "CONFIG_VFIO_NOIOMMU=y" > "$frag"
	for s in ${settings//,/ }; do
		[ "$s" = - ] && continue
		if [ "${s#*=}" = n ]; then
			echo "# CONFIG_${s%%=*} is not set" >> "$frag"
		else
			echo "CONFIG_$s" >> "$frag"
		fi
	done
	(cd "$CHECK_TREE" && scripts/kconfig/merge_config.sh -m -O "$dir" \
		"$dir/.config.base" "$frag" >/dev/null)
	mk "$base" -s olddefconfig >/dev/null 2>&1
	errors=""
	for s in ${settings//,/ }; do
		[ "$s" = - ] && continue
		got=$(value "$dir" "${s%%=*}")
		[ "$got" = "${s#*=}" ] || errors="$errors ${s%%=*} requested ${s#*=} but resolved $got;"
	done
	got=$(value "$dir" VFIO_NOIOMMU)
	[ "$got" = "$want_noiommu" ] || errors="$errors VFIO_NOIOMMU expected $want_noiommu, got $got;"
	got=$(value "$dir" IOMMUFD_NOIOMMU)
	[ "$got" = "$want_iommufd" ] || errors="$errors IOMMUFD_NOIOMMU expected $want_iommufd, got $got;"
	if [ -n "$errors" ]; then
		echo "FAIL kconfig: case $name ($base):$errors" >> "$results"
		echo "  kconfig case $name:$errors" >&2
		continue
	fi
	echo "PASS kconfig: case $name ($base): VFIO_NOIOMMU=$want_noiommu IOMMUFD_NOIOMMU=$want_iommufd" >> "$results"
	[ "$compile" = yes ] || continue
	log="$LOGS/matrix-$name.log"
	if mk "$base" drivers/vfio/ drivers/iommu/iommufd/ >"$log" 2>&1 &&
	   ! grep -q -E 'warning:|error:' "$log"; then
		echo "PASS kconfig: case $name ($base) compiles drivers/vfio/ and drivers/iommu/iommufd/ without warnings" >> "$results"
	else
		echo "FAIL kconfig: case $name ($base) compile: $(grep -m1 -E 'warning:|error:' "$log" || tail -1 "$log")" >> "$results"
	fi
done < "$table"
