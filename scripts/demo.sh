#!/bin/bash
# demo.sh: the main job. Apply patches/ to Debian's 6.12, build the small
# guest kernel, boot it under QEMU with the edu device and run the DMA demo
# through the no-IOMMU device cdev (DEMO_PATH=group for the legacy path).
set -eu
. "$(dirname "$0")/lib.sh"
"$TOP/scripts/deps.sh"
"$TOP/scripts/apply.sh"
"$TOP/scripts/build.sh" "$CHECK_TREE" guest
SELFTESTS="" "$TOP/scripts/tests-build.sh" "$CHECK_TREE"
list="$BUILD/demo-tests.txt"
echo "./edu-dma --${DEMO_PATH:-cdev} \$EDU_BDF" > "$list"
BOOT_TIMEOUT=300 "$TOP/scripts/boot.sh" guest "$list" demo
sed -n '/^edu DMA/,/^DEMO /p' "$LOGS/demo.tap"
grep -q '^DEMO PASSED' "$LOGS/demo.tap" || die "the demo failed (see build/logs/demo.tap and demo.console)"
