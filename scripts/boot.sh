#!/bin/bash
# boot.sh VARIANT TESTLIST LOGNAME [extra kernel args]
# Boot build/obj/VARIANT under QEMU (TCG) with the edu device, run the
# commands of TESTLIST (one per line) from build/bin in the guest, and leave
# build/logs/LOGNAME.console (kernel) and build/logs/LOGNAME.tap (tests).
# MACHINE=viommu boots QEMU's q35 with its intel-iommu in front of edu
# instead of the pc machine without an IOMMU; ICOUNT=1 adds -icount shift=0
# (guest time counts instructions: benchmarks repeat to within 1%).  The
# variant's ARCH picks the QEMU: x86_64 and i386 (pc), arm64 (virt).
set -eu
. "$(dirname "$0")/lib.sh"
variant=$1 tests=$2 name=$3
shift 3
# The old logs go before anything that can fail: a run that stops early must
# leave no logs (tap.py fails on that), never the last run's.
console="$LOGS/$name.console" tap="$LOGS/$name.tap"
rm -f "$console" "$tap"
obj="$OBJ/$(variant_objdir "$variant")"
set_arch "$(variant_arch "$variant")"
kernel="$obj/$KIMAGE"
[ -f "$kernel" ] || die "no kernel for $variant: run scripts/build.sh first"
root="$BUILD/initramfs/$name"
rm -rf "$root"
mkdir -p "$root"/{bin,sbin,proc,sys,dev,tests,etc} "$LOGS"
cp "$BUSYBOX" "$root/bin/busybox"
cp "$TOP/guest/init" "$root/init"
chmod +x "$root/init"
cp -r "$BIN/." "$root/tests/"
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

say "booting $variant kernel ($KARCH) in QEMU $([ "$KARCH" = arm64 ] && echo virt || echo "${MACHINE:-pc}") ($name, timeout ${BOOT_TIMEOUT:-900}s)"
start=$(date +%s)
# acpi=noirq: the debug kernel has ACPI (for the viommu run), and running
# the _PRT method on every pci_enable_device() takes KASAN under TCG over
# 30 s; the tests use no INTx.
machine=(-machine pc) append="vfio.enable_unsafe_noiommu_mode=1 acpi=noirq"
qemu=qemu-system-${KARCH/arm64/aarch64} mem=2048 tty=ttyS0
serial=(-serial "file:$console" -serial "file:$tap")
huge="hugepagesz=2M hugepages=16"
if [ "${MACHINE:-pc}" = viommu ]; then
	# No interrupt remapping in this guest: iommufd would refuse to bind
	# without isolated MSI, as it does on such hosts.
	machine=(-machine q35 -device intel-iommu)
	append="$append intel_iommu=on iommufd.allow_unsafe_interrupts=1"
fi
case $KARCH in
i386)	# 6 GiB: half of it above 4 GiB, where only PAE's 64-bit physical
	# addresses reach (pinned user pages come from highmem).  An Intel
	# CPU model: "max" has AMD's vendor, and 32-bit kernels warn that
	# such K7 CPUs are not fit for SMP.
	machine+=(-cpu max,vendor=GenuineIntel) mem=6144 ;;
arm64)	# virt: one PL011 (the console), the tests' output on a virtio
	# console (/dev/hvc0); GICv3 with its ITS for edu's MSI.  16 huge
	# pages of 2 MiB (with 64 KiB pages: 32 contiguous PTEs; the tests ask
	# for that size, the default is 512 MiB there), plus one 512 MiB page
	# (a PMD of 64 KiB pages) when it exists.
	machine=(-machine virt,gic-version=3 -cpu max,pauth-impdef=on)
	append="vfio.enable_unsafe_noiommu_mode=1"
	tty=ttyAMA0 mem=3072
	serial=(-serial "file:$console" -device virtio-serial-device
		-chardev "file,id=tap,path=$tap" -device virtconsole,chardev=tap)
	grep -q '^CONFIG_ARM64_64K_PAGES=y' "$obj/.config" &&
		huge="$huge hugepagesz=512M hugepages=1" ;;
esac
[ "$KARCH" != x86_64 ] || machine+=(-cpu max)
[ "${ICOUNT:-0}" = 1 ] && machine+=(-icount shift=0)
rc=0
timeout --foreground -k 10 "${BOOT_TIMEOUT:-900}" \
	"$qemu" "${machine[@]}" -accel tcg -smp 2 -m "$mem" \
	-nographic -no-reboot -nodefaults -display none \
	-kernel "$kernel" -initrd "$initrd" \
	-append "console=$tty panic=-1 oops=panic rdinit=/init $huge $append $*" \
	"${serial[@]}" -device edu,dma_mask=0xffffffffffffffff </dev/null || rc=$?
say "guest $name ran $(($(date +%s) - start))s (qemu exit $rc)"
[ $rc = 124 ] && echo "# HARNESS-TIMEOUT after ${BOOT_TIMEOUT:-900}s" >> "$tap"
exit 0
