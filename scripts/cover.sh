#!/bin/bash
# cover.sh read: print patches/0000-cover-letter.patch as a branch
# description (subject line, blank line, body without the diffstat).
set -eu
. "$(dirname "$0")/lib.sh"
f="$PATCHES/0000-cover-letter.patch"
awk '
	/^Subject: / { sub(/^Subject: \[PATCH[^]]*\] /, ""); subj = $0; insubj = 1; next }
	insubj && /^ / { sub(/^ /, ""); subj = subj " " $0; next }
	insubj && /^$/ { insubj = 0; body = 1; print subj; print ""; next }
	body && /^[A-Za-z].* \([0-9]+\):$/ { exit }
	body { print }
' "$f" | sed -e :a -e '/^\n*$/{$d;N;ba' -e '}'
