#!/bin/bash
# check.sh: every gate and test of the series, in order; each result is one
# "PASS|FAIL|SKIP name" line in build/logs/results.txt, and the last line
# printed is "N passed, N failed, N skipped".
set -u
. "$(dirname "$0")/lib.sh"
results="$LOGS/results.txt"
mkdir -p "$LOGS"
: > "$results"
start=$(date +%s)

pass() { echo "PASS $*" >> "$results"; }
fail() { echo "FAIL $*" >> "$results"; echo "  FAIL $*" >&2; }
stage() { say "[$(($(date +%s) - start))s] $*"; }

summary() { print_summary "$results" "$start" "make check"; }

stage "dependencies and base source"
"$TOP/scripts/deps.sh" || { fail "setup: installing packages"; summary; exit 1; }

stage "applying patches/ (quilt and git am)"
if "$TOP/scripts/apply.sh"; then
	pass "apply: patches/ applies with quilt and git am"
else
	fail "apply: patches/ does not apply (see above)"
	summary
	exit 1
fi

stage "checkpatch --strict on every patch"
"$TOP/scripts/checkpatch.sh" "$results"

stage "lint: sparse, W=1 and kernel-doc against the base"
"$TOP/scripts/lint.sh" "$results"

stage "bisect: the tree builds after every patch"
"$TOP/scripts/bisect-build.sh" "$results" debug || { summary; exit 1; }

stage "Kconfig matrix"
"$TOP/scripts/kconfig-matrix.sh" "$results"

stage "test programs"
if ! "$TOP/scripts/tests-build.sh" "$CHECK_TREE"; then
	fail "tests: the test programs do not build"
	summary
	exit 1
fi

# variant  test list (guest/tests-*.txt)  machine
while read -r variant list machine; do
	case "$variant" in ''|'#'*) continue ;; esac
	name=$variant
	[ "$machine" = pc ] || name=$variant-$machine
	stage "guest: $variant kernel on $machine, tests of guest/$list"
	if ! "$TOP/scripts/build.sh" "$CHECK_TREE" "$variant"; then
		fail "build: $variant kernel"
		continue
	fi
	MACHINE=$machine "$TOP/scripts/boot.sh" "$variant" "$TOP/guest/$list" "$name"
	python3 "$TOP/scripts/tap.py" "$name" "$LOGS/$name.tap" \
		"$LOGS/$name.console" "$results" || true
done < "$TOP/guest/runs"

summary
