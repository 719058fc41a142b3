#!/bin/bash
# export.sh: regenerate patches/ (format-patch output, cover letter from the
# branch description, quilt series file) from branch "series" of build/linux.
set -eu
. "$(dirname "$0")/lib.sh"
cd "$TREE"
git rev-parse -q --verify refs/heads/series >/dev/null || die "no branch series in build/linux: run make tree"
[ -z "$(git status --porcelain --untracked-files=no)" ] || die "build/linux has uncommitted changes: commit them first"
n=$(git rev-list --count base..series)
rm -f "$PATCHES"/*.patch
# suppressBlankEmpty: a blank context line is an empty line, not a lone
# space (patch, quilt and git am read both), so no line of patches/ ends in
# whitespace even where a tool checks the .patch files as plain text.
git -c diff.suppressBlankEmpty=true format-patch -q --no-signature --zero-commit \
	--cover-letter --cover-from-description=subject \
	--subject-prefix="PATCH 6.12" -o "$PATCHES" base..series
# format-patch names files after subjects: the quilt series lists them.
(cd "$PATCHES" && ls [0-9][0-9][0-9][0-9]-*.patch | grep -v '^0000-cover-letter') > "$PATCHES/series"
say "exported $n patches and the cover letter to patches/"
