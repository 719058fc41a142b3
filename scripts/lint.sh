#!/bin/bash
# lint.sh RESULTS: for the directories and files the series touches, the
# warnings of sparse (C=2) and W=1 builds, and of scripts/kernel-doc, that
# the patched tree has and the base has not.  Pre-existing 6.12 warnings
# do not count.
set -eu
. "$(dirname "$0")/lib.sh"
results=$1
cd "$CHECK_TREE"
head=$(git rev-parse HEAD)
files=$(git diff --name-only base "$head")
dirs=$(echo "$files" | grep -E '^(drivers|lib|mm|kernel)/.*\.c$' | xargs -r -n1 dirname | sort -u | sed 's|$|/|' | tr '\n' ' ')
out="$LOGS/lint"
mkdir -p "$out"

normalize() {
	sed -E -e "s|^.*/build/check/||" -e 's|^/tmp/[^:]*/||' \
		-e 's|:[0-9]+:[0-9]+:|:|' -e 's|:[0-9]+:|:|' | sort
}

build_warnings() {
	"$TOP/scripts/config.sh" "$CHECK_TREE" lint
	# shellcheck disable=SC2086
	kmake "$CHECK_TREE" "$OBJ/$(variant_objdir lint)" W=1 C=2 $dirs 2>&1 |
		grep -E ': (warning|error):' | normalize
}

if [ -n "$dirs" ]; then
	git checkout -q base
	build_warnings > "$out/base.txt" || true
	git checkout -q "$head"
	build_warnings > "$out/head.txt" || true
	verdict "$results" "lint: no new sparse or W=1 warning in $dirs" \
		"$(comm -13 "$out/base.txt" "$out/head.txt")"
fi

tmp=$(mktemp -d)
for f in $(echo "$files" | grep -E '\.(c|h)$' | grep -v '^tools/'); do
	scripts/kernel-doc -none -Wall "$f" 2>&1 | sed "s|^$f:|x:|" | normalize > "$tmp/head"
	: > "$tmp/base"
	if git cat-file -e "base:$f" 2>/dev/null; then
		git show "base:$f" > "$tmp/$(basename "$f")"
		scripts/kernel-doc -none -Wall "$tmp/$(basename "$f")" 2>&1 |
			sed "s|^$tmp/$(basename "$f"):|x:|" | normalize > "$tmp/base"
	fi
	verdict "$results" "kernel-doc: $f" "$(comm -13 "$tmp/base" "$tmp/head")"
done
# reStructuredText the series touches must stay valid for docutils.
for f in $(echo "$files" | grep -E '^Documentation/.*\.rst$'); do
	verdict "$results" "docutils: $f" "$(python3 -c 'import sys, io, docutils.core
e = io.StringIO()
docutils.core.publish_doctree(open(sys.argv[1]).read(), source_path=sys.argv[1],
	settings_overrides={"warning_stream": e, "report_level": 2})
sys.stdout.write(e.getvalue())' "$f" 2>&1)"
done
rm -rf "$tmp"
