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

summary() {
	local p f s
	p=$(grep -c '^PASS' "$results")
	f=$(grep -c '^FAIL' "$results")
	s=$(grep -c '^SKIP' "$results")
	if [ "$f" != 0 ]; then
		echo "Failures:"
		grep '^FAIL' "$results" | sed 's/^/  /'
	fi
	echo "make check took $(($(date +%s) - start))s; results in ${results#"$TOP"/}"
	echo "$p passed, $f failed, $s skipped"
	[ "$f" = 0 ]
}

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

# variant  test list (guest/tests-*.txt)
while read -r variant list; do
	case "$variant" in ''|'#'*) continue ;; esac
	stage "guest: $variant kernel, tests of guest/$list"
	if ! "$TOP/scripts/build.sh" "$CHECK_TREE" "$variant"; then
		fail "build: $variant kernel"
		continue
	fi
	"$TOP/scripts/boot.sh" "$variant" "$TOP/guest/$list" "$variant"
	python3 "$TOP/scripts/tap.py" "$variant" "$LOGS/$variant.tap" \
		"$LOGS/$variant.console" "$results" || true
done < "$TOP/guest/runs"

summary
