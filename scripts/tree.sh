#!/bin/bash
# tree.sh: give the developer build/linux on branch "series": the base with
# patches/ applied by git am, one commit per patch.  An existing branch is
# kept (it may hold work not exported yet) unless FORCE=1.
set -eu
. "$(dirname "$0")/lib.sh"
"$TOP/scripts/source.sh"
cd "$TREE"
if git rev-parse -q --verify refs/heads/series >/dev/null && [ "${FORCE:-0}" != 1 ]; then
	git checkout -q series
	say "build/linux: branch series kept ($(git rev-list --count base..series) commits on base); FORCE=1 re-creates it from patches/"
	exit 0
fi
git checkout -q -B series base
for p in $(grep -v '^\s*\(#\|$\)' "$PATCHES/series"); do
	git am -q "$PATCHES/$p" || { git am --abort; die "patches/$p does not apply"; }
done
# The cover letter travels as the branch description (format-patch
# --cover-from-description).
if [ -f "$PATCHES/0000-cover-letter.patch" ]; then
	"$TOP/scripts/cover.sh" read > .git/series-description
	git config branch.series.description "$(cat .git/series-description)"
fi
say "build/linux: branch series = base + $(git rev-list --count base..series) patches; edit, commit (rebase -i base to fix a patch), then make export"
