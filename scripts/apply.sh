#!/bin/bash
# apply.sh: make build/check the base tree with patches/ applied by git am,
# one commit per patch, after checking that quilt applies the series too.
# Only files the series touches change, so incremental builds stay small.
set -eu
. "$(dirname "$0")/lib.sh"
"$TOP/scripts/source.sh"
mkdir -p "$LOGS"
cd "$TREE"
if [ ! -e "$CHECK_TREE/.git" ]; then
	git worktree prune
	git worktree add -q --detach "$CHECK_TREE" base
fi
cd "$CHECK_TREE"
git am --abort >/dev/null 2>&1 || true
git reset -q --hard
git clean -q -fdx -e /.pc
git checkout -q --detach base
rm -rf .pc

series="$PATCHES/series"
[ -f "$series" ] || die "patches/series is missing"
n=$(grep -cv '^\s*\(#\|$\)' "$series" || true)

# Debian applies its patches with quilt: the series must apply that way too.
if [ "$n" -gt 0 ]; then
	if ! QUILT_PATCHES="$PATCHES" quilt push -a -q --fuzz=0 >"$LOGS/quilt.log" 2>&1; then
		tail -5 "$LOGS/quilt.log" >&2
		die "quilt push -a: $(grep -o 'Applying patch .*' "$LOGS/quilt.log" | tail -1) does not apply"
	fi
	QUILT_PATCHES="$PATCHES" quilt pop -a -q >/dev/null 2>&1
	rm -rf .pc
	git checkout -q --detach base
	git clean -q -fdx
fi

for p in $(grep -v '^\s*\(#\|$\)' "$series"); do
	if ! git am -q --keep-cr "$PATCHES/$p" >"$LOGS/git-am.log" 2>&1; then
		cat "$LOGS/git-am.log" >&2
		git am --abort || true
		die "git am: patches/$p does not apply to $(git log -1 --format=%s base)"
	fi
done
say "applied $n patches to $(git log -1 --format=%s base) in ${CHECK_TREE#"$TOP"/}"
