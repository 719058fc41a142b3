#!/bin/bash
# boot.sh VARIANT TESTLIST LOGNAME [extra kernel args]
# Boot build/obj/VARIANT under QEMU (TCG) with the edu device, run the
# commands of TESTLIST (one per line) from build/bin in the guest, and leave
# build/logs/LOGNAME.console (kernel) and build/logs/LOGNAME.tap (tests).
# MACHINE=viommu boots QEMU's q35 with its intel-iommu in front of edu
# instead of the pc machine without an IOMMU; ICOUNT=1 adds -icount shift=0
# (guest time counts instructions: benchmarks repeat to within 1%).
set -eu
. "$(dirname "$0")/lib.sh"
variant=$1 tests=$2 name=$3
shift 3
# The old logs go before anything that can fail: a run that stops early must
# leave no logs (tap.py fails on that), never the last run's.
console="$LOGS/$name.console" tap="$LOGS/$name.tap"
rm -f "$console" "$tap"
obj="$OBJ/$(variant_objdir "$variant")"
kernel="$obj/arch/x86/boot/bzImage"
[ -f "$kernel" ] || die "no kernel for $variant: run scripts/build.sh first"
root="$BUILD/initramfs/$name"
rm -rf "$root"
mkdir -p "$root"/{bin,sbin,proc,sys,dev,tests,etc} "$LOGS"
cp /bin/busybox "$root/bin/busybox"
cp "$TOP/guest/init" "$root/init"
chmod +x "$root/init"
cp -r "$BUILD/bin/." "$root/tests/"
cp "$tests" "$root/tests.sh"
if [ -n "$(find "$obj/modroot/lib/modules" -name '*.ko' 2>/dev/null | head -1)" ]; then
	mkdir -p "$root/lib"
	cp -r "$obj/modroot/lib/modules" "$root/lib/"
	printf '%s\n' iommufd vfio vfio-pci > "$root/modules.load"
fi
# The kernel's config where Debian keeps it: tests read it to tell a feature
# the kernel was built without (SKIP) from one that fails (vfio_noiommu_test).
mkdir -p "$root/boot"
cp "$obj/.config" "$root/boot/config-$(cat "$obj/include/config/kernel.release")"
# The kernel has kmemleak: init must then scan with it or say why it could not.
if grep -q '^CONFIG_DEBUG_KMEMLEAK=y' "$obj/.config"; then
	: > "$root/kmemleak"
fi
initrd="$BUILD/initramfs/$name.cpio"
(cd "$root" && find . | cpio -o -H newc --quiet) > "$initrd"

say "booting $variant kernel in QEMU ${MACHINE:-pc} ($name, timeout ${BOOT_TIMEOUT:-900}s)"
start=$(date +%s)
# acpi=noirq: the debug kernel has ACPI (for the viommu run), and running
# the _PRT method on every pci_enable_device() takes KASAN under TCG over
# 30 s; the tests use no INTx.
machine=(-machine pc) append="vfio.enable_unsafe_noiommu_mode=1 acpi=noirq"
if [ "${MACHINE:-pc}" = viommu ]; then
	# No interrupt remapping in this guest: iommufd would refuse to bind
	# without isolated MSI, as it does on such hosts.
	machine=(-machine q35 -device intel-iommu)
	append="$append intel_iommu=on iommufd.allow_unsafe_interrupts=1"
fi
[ "${ICOUNT:-0}" = 1 ] && machine+=(-icount shift=0)
rc=0
timeout --foreground -k 10 "${BOOT_TIMEOUT:-900}" \
	qemu-system-x86_64 "${machine[@]}" -accel tcg -cpu max -smp 2 -m 2048 \
	-nographic -no-reboot -nodefaults -display none \
	-kernel "$kernel" -initrd "$initrd" \
	-append "console=ttyS0 panic=-1 oops=panic rdinit=/init hugepagesz=2M hugepages=16 $append $*" \
	-serial "file:$console" -serial "file:$tap" \
	-device edu,dma_mask=0xffffffffffffffff </dev/null || rc=$?
say "guest $name ran $(($(date +%s) - start))s (qemu exit $rc)"
[ $rc = 124 ] && echo "# HARNESS-TIMEOUT after ${BOOT_TIMEOUT:-900}s" >> "$tap"
exit 0
