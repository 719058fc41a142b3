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
# for the architecture of every guest run, and for i386 (make stress's
# 32-bit guest), so that make check compiles the 32-bit programs too
variants=$(awk '$1 !~ /^#/ && NF { print $1 }' "$TOP/guest/runs" | sort -u)
arches=$({ for variant in $variants; do variant_arch "$variant"; done; echo i386; } | sort -u)
# shellcheck disable=SC2086	# one word each
if ! "$TOP/scripts/tests-build.sh" "$CHECK_TREE" $arches; then
	fail "tests: the test programs do not build"
	summary
	exit 1
fi

# The kernels of the other architectures' runs build in the background
# from here on (nice): the clean root mostly waits on the network and a
# TCG guest keeps about one core busy.  Their runs come last.
declare -A bgbuild=()
for variant in $variants; do
	[ "$(variant_arch "$variant")" != x86_64 ] || continue
	say "building the $variant kernel in the background (log: build/logs/build-$variant.log)"
	nice -n 10 "$TOP/scripts/build.sh" "$CHECK_TREE" "$variant" > "$LOGS/build-$variant.out" 2>&1 &
	bgbuild[$variant]=$!
done

stage "clean root: install step and builds on a minimal Debian 12"
"$TOP/scripts/cleanroot.sh" "$results"

stage "tap.py unit tests and config fragment symbols"
if out=$(cd "$TOP" && PYTHONDONTWRITEBYTECODE=1 python3 -m unittest discover -s tests/tap 2>&1); then
	pass "tap.py: unit tests (tests/tap)"
else
	fail "tap.py: unit tests (tests/tap): $(echo "$out" | grep -m1 '^\(FAIL\|ERROR\):')"
	echo "$out" >&2
fi
# config.sh passes over fragment symbols a tree lacks (the base has none of
# the series'); the patched tree must have them all, or a renamed option
# (the KUnit test's) would drop out of every kernel unnoticed.
verdict "$results" "config: every symbol of configs/*.config is in the patched tree" \
	"$(grep -ho '^CONFIG_[A-Z0-9_]*' "$TOP"/configs/*.config | sed 's/^CONFIG_//' | sort -u |
		grep -vxF -f <(find "$CHECK_TREE" -name 'Kconfig*' -not -path '*/.git/*' \
			-exec sed -n 's/^\(menu\)\?config \([A-Z0-9_]*\).*/\2/p' {} +))"

# variant  test list (guest/tests-*.txt)  machine
while read -r variant list machine; do
	case "$variant" in ''|'#'*) continue ;; esac
	name=$variant
	[ "$machine" = pc ] || name=$variant-$machine
	stage "guest: $variant kernel on $machine, tests of guest/$list"
	if [ -n "${bgbuild[$variant]:-}" ]; then
		rc=0
		wait "${bgbuild[$variant]}" || rc=$?
		unset "bgbuild[$variant]"
		cat "$LOGS/build-$variant.out" >&2
		if [ $rc != 0 ]; then
			fail "build: $variant kernel"
			continue
		fi
	elif ! "$TOP/scripts/build.sh" "$CHECK_TREE" "$variant"; then
		fail "build: $variant kernel"
		continue
	fi
	# The debug run holds the 10,000-step history test (5 to 8 minutes).
	MACHINE=$machine BOOT_TIMEOUT=${BOOT_TIMEOUT:-1800} \
		"$TOP/scripts/boot.sh" "$variant" "$TOP/guest/$list" "$name"
	guest_results "$name" "$variant" "$results"
done < "$TOP/guest/runs"

summary
