# The VFIO cdev no-IOMMU series for Linux 6.12 and the harness around it.
# Every target is a few lines calling one script in scripts/.

S := scripts

.PHONY: all run check stress bench mutants tree export deps source apply kernel clean help

## make (run): set up, apply patches/, build the guest kernel, boot it and
## run the edu DMA demo through VFIO no-IOMMU.
all run:
	@$(S)/demo.sh

## make check: every gate and test; ends with "N passed, N failed".
check:
	@$(S)/check.sh

## make stress: the long reliability runs (fuzzer, races, SIGKILL, fault
## injection, kmemleak after each) on the debug kernel, then the vIOMMU,
## arm64 4 KiB and i386 PAE guests; SEED=n replays, STRESS_RUNS="pc viommu
## platforms" picks runs.
stress:
	@$(S)/stress.sh

## make bench: cdev no-IOMMU path against the legacy group path, one guest,
## one run, guest time counted in instructions (ICOUNT=0: wall time);
## RUNS=2 to compare runs; ARCH=arm64 on the arm64 64 KiB-page guest.
bench:
	@$(S)/bench.sh

## make mutants: apply each small bug of mutants/list to a private copy of
## the series, rebuild, run the tests it names; "N killed, N survived".
## Not in CI (about 35 minutes); MUTANTS="a b" runs only those.
mutants:
	@$(S)/mutants.sh $(MUTANTS)

## make tree: build/linux on branch "series" = base + patches/, to edit.
tree:
	@$(S)/deps.sh
	@$(S)/tree.sh

## make export: patches/ (and series) from branch "series" of build/linux.
export:
	@$(S)/export.sh

deps:
	@$(S)/deps.sh

clean:
	rm -rf build

help:
	@grep -h '^## ' $(MAKEFILE_LIST) | sed 's/^## //'
