#!/bin/bash
# bisect-build.sh RESULTS VARIANT: build VARIANT after each patch of the
# series in build/check (incrementally: each step recompiles what the patch
# touched), ending on the last patch.  Fails if the last build fails.
set -eu
. "$(dirname "$0")/lib.sh"
results=$1 variant=$2
cd "$CHECK_TREE"
head=$(git rev-parse HEAD)
mapfile -t names < <(grep -v '^\s*\(#\|$\)' "$PATCHES/series")
i=0
rc=0
for c in $(git rev-list --reverse base.."$head"); do
	name=${names[$i]:-$c}
	i=$((i + 1))
	git checkout -q "$c"
	if "$TOP/scripts/build.sh" "$CHECK_TREE" "$variant" 2>"$LOGS/bisect-$i.err"; then
		echo "PASS build: $variant kernel after $name" >> "$results"
		rc=0
	else
		echo "FAIL build: $variant kernel after $name: $(grep -m1 -E 'error' "$LOGS/build-$variant.log" || tail -1 "$LOGS/bisect-$i.err")" >> "$results"
		cat "$LOGS/bisect-$i.err" >&2
		rc=1
	fi
done
git checkout -q "$head"
[ $rc = 0 ] || "$TOP/scripts/build.sh" "$CHECK_TREE" "$variant"
