#!/bin/bash
# checkpatch.sh RESULTS: scripts/checkpatch.pl --strict on each patch of
# patches/series, run from the patched tree.  The one warning tolerated is
# "does MAINTAINERS need updating?" when get_maintainer.pl already finds a
# maintainer for every file the patch adds.
set -eu
. "$(dirname "$0")/lib.sh"
results=$1
cd "$CHECK_TREE"
for p in $(grep -v '^\s*\(#\|$\)' "$PATCHES/series"); do
	ignore=""
	added=$(awk '/^--- \/dev\/null$/ { getline; sub(/^\+\+\+ b\//, ""); print }' "$PATCHES/$p")
	covered=1
	for f in $added; do
		scripts/get_maintainer.pl --nogit --nogit-fallback --norolestats -f "$f" 2>/dev/null |
			grep -q '@' || covered=0
	done
	[ -n "$added" ] && [ $covered = 1 ] && ignore="--ignore FILE_PATH_CHANGES"
	# shellcheck disable=SC2086
	out=$(scripts/checkpatch.pl --strict --terse --showfile $ignore "$PATCHES/$p" 2>&1 |
		grep -E '(ERROR|WARNING|CHECK):' || true)
	verdict "$results" "checkpatch: $p" "$out"
done
