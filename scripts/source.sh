#!/bin/bash
# Unpack Debian's linux-source-6.12 under build/ as a git tree with one base
# commit (tag "base").  Re-used while the package version is unchanged.
set -eu
. "$(dirname "$0")/lib.sh"

ver=$(base_version)
[ -n "$ver" ] || die "linux-source-6.12 is not installed (run scripts/deps.sh)"
stamp="$TREE/.git/debian-source-version"

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$ver" ]; then
	say "base: Debian linux-source-6.12 $ver ($(make -s -C "$TREE" kernelversion)), reusing $TREE"
	exit 0
fi
if [ -d "$TREE" ]; then
	say "package version changed (now $ver): re-creating $TREE"
	rm -rf "$TREE" "$CHECK_TREE" "$OBJ"
fi

mkdir -p "$BUILD"
tmp="$BUILD/unpack.$$"
rm -rf "$tmp" && mkdir -p "$tmp"
say "unpacking $SRC_TARBALL"
tar -C "$tmp" -xf "$SRC_TARBALL"
mv "$tmp"/linux-source-6.12 "$TREE"
rmdir "$tmp"

cd "$TREE"
git init -q -b debian
git config user.name "${GIT_AUTHOR_NAME:-Harness}"
git config user.email "${GIT_AUTHOR_EMAIL:-harness@localhost}"
git config core.abbrev 12
# Debian's tarball appends "/*" and "!/debian/" to .gitignore (packaging
# rules), which would hide every new file from git status and git add.
# Drop them so the tree behaves like upstream, and add everything.
sed -i -e '\#^/\*$#d' -e '\#^!/debian/$#d' .gitignore
git add -f -A .
git commit -q -m "Linux $(make -s kernelversion) (Debian linux-source-6.12 $ver)"
git tag -f base >/dev/null
echo "$ver" > "$stamp"
say "base: Debian linux-source-6.12 $ver ($(make -s kernelversion)), git tree at $TREE"
