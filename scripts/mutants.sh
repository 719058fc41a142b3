#!/bin/bash
# mutants.sh [NAME...]: make mutants.  Each mutant of mutants/list (or only
# the NAMEs given) is a small, plausible bug on top of the series; make
# check must reject every one.  In a private tree (build/mutant-tree: tag
# base of build/linux plus patches/, re-applied only when patches/ changes)
# each is applied in turn, the mutant kernel variant (configs/mutant.config:
# the debug variant's test options without KASAN and kmemleak) is rebuilt
# incrementally into build/obj-mutant, booted, and only the tests the
# mutant names are run; then the file is restored and the next one comes.
# Prints per mutant "killed by ..." or "SURVIVED", and last
# "N killed, N survived".  build/check, build/obj and build/logs are not
# touched; the runs' files are in build/mutant.
#   PATCHES=dir       the series to mutate (default patches/)
#   BASELINE=0        skip the run of the unmutated tree (it must pass)
#   CHECK_ONLY=1      only apply the series and check that every old text
#                     of the list is there, exactly once
#   TESTS_TOP=dir     build the harness's test programs (tests/, demo/,
#                     bench/) from that checkout of this repository instead
#   MUTANT_TIMEOUT=n  seconds a guest may run (default 600)
#   NICE=n            niceness of the builds and guests (default 10)
# A mutant is killed when a run of its tests records any FAIL: a named test
# fails, a kernel splat, a run without a verdict (crash, timeout), an
# unexpected SKIP, or KUnit's iommufd-noiommu suite failing or falling
# short; or, for a mutant that names "build", when the build step refuses
# it.  A mutant that does not build without naming "build" is not killed.
set -u
. "$(dirname "$0")/lib.sh"
start=$(date +%s)
list="$TOP/mutants/list"
mtree="$BUILD/mutant-tree"
mobj="$BUILD/obj-mutant"
work="$BUILD/mutant"            # BUILD of the guest runs: bin, logs, initramfs
variant=mutant
nice=(nice -n "${NICE:-10}")
mpy() { python3 "$TOP/scripts/mutants.py" "$list" "$@"; }

mkdir -p "$work/logs" "$work/lists" "$work/results"
mpy names "$@" > "$work/names" || exit 1
"$TOP/scripts/deps.sh" >/dev/null && "$TOP/scripts/source.sh" || die "setup failed (above)"

# The tree: base + patches/, as apply.sh makes build/check, but private.
key=$(cd "$PATCHES" && cat series $(grep -v '^\s*\(#\|$\)' series) | sha1sum)
if [ ! -e "$mtree/.git" ]; then
	git -C "$TREE" worktree prune
	git -C "$TREE" worktree add -q --detach "$mtree" base
	rm -f "$work/tree.key"
fi
cd "$mtree"
if [ "$(cat "$work/tree.key" 2>/dev/null)" != "$key" ]; then
	say "applying patches/ to ${mtree#"$TOP"/}"
	git am --abort >/dev/null 2>&1 || true
	git reset -q --hard
	git checkout -q --detach base
	for p in $(grep -v '^\s*\(#\|$\)' "$PATCHES/series"); do
		git am -q --keep-cr "$PATCHES/$p" >"$work/git-am.log" 2>&1 || {
			cat "$work/git-am.log" >&2
			git am --abort
			die "patches/$p does not apply"
		}
	done
	echo "$key" > "$work/tree.key"
	rm -f "$work/bin.key"
else
	git checkout -q -- .    # a mutation left by an interrupted run
fi
cd "$TOP"
# Every old text must be there, exactly once, before anything is built.
mpy check "$mtree" $(cat "$work/names") || die "mutants/list does not fit the series (above)"
if [ "${CHECK_ONLY:-0}" = 1 ]; then
	say "every mutant's old text is in the series once; nothing built (CHECK_ONLY=1)"
	exit 0
fi

current=""
restore() {
	[ -n "$current" ] && git -C "$mtree" checkout -q -- "$(mpy show "$current" file)"
	current=""
}
trap 'restore' EXIT
trap 'restore; exit 130' INT TERM

# The test programs, from the tree (its kselftests) and tests/, once per
# version of them.
ttop=${TESTS_TOP:-$TOP}
bkey=$( (echo "$key $ttop"; cat "$ttop"/tests/*.c "$ttop"/tests/*.h "$ttop"/bench/*.c "$ttop"/demo/*.c) | sha1sum)
if [ "$(cat "$work/bin.key" 2>/dev/null)" != "$bkey" ] || [ ! -d "$work/bin" ]; then
	BUILD="$work" "${nice[@]}" "$ttop/scripts/tests-build.sh" "$mtree" ||
		die "the test programs do not build"
	echo "$bkey" > "$work/bin.key"
fi

build() {	# build LOG: the mutant variant from the tree; false if it fails
	OBJ="$mobj" "${nice[@]}" "$TOP/scripts/build.sh" "$mtree" "$variant" >"$1" 2>&1 && return 0
	# A .config that failed its checks is not to be reused (config.sh)
	rm -f "$mobj/$(variant_objdir $variant)/.config.key"
	return 1
}

# run NAME RESULTS KILL...: boot for the kill tests (pc and/or viommu) and
# append tap.py's lines to RESULTS.
run() {
	local name=$1 results=$2 machine cmd lst rname
	shift 2
	for machine in pc viommu; do
		lst="$work/lists/$name-$machine.txt"
		: > "$lst"
		for k in "$@"; do
			case "$machine:$k" in
			pc:"guest: "*) cmd=${k#guest: } ;;
			viommu:"viommu: "*) cmd=${k#viommu: } ;;
			*) continue ;;
			esac
			grep -qxF -- "$cmd" "$lst" || echo "$cmd" >> "$lst"
		done
		# KUnit runs at boot: a pc boot checks it even with no command
		if [ ! -s "$lst" ] && ! { [ $machine = pc ] && printf '%s\n' "$@" | grep -qx kunit; }; then
			continue
		fi
		rname="$name"
		[ $machine = pc ] || rname="$name-viommu"
		BUILD="$work" OBJ="$mobj" MACHINE=$machine BOOT_TIMEOUT="${MUTANT_TIMEOUT:-600}" \
			"${nice[@]}" "$TOP/scripts/boot.sh" "$variant" "$lst" "$rname" 2>>"$work/logs/$name.out"
		local rc=0 before
		before=$(wc -l < "$results")
		python3 "$TOP/scripts/tap.py" "$rname" "$work/logs/$rname.tap" \
			"$work/logs/$rname.console" "$results" \
			--config "$mobj/$(variant_objdir $variant)/.config" --tree "$mtree" \
			>>"$work/logs/$name.out" 2>&1 || rc=$?
		if [ $rc -gt 1 ]; then
			echo "FAIL $rname: tap.py failed with exit code $rc" >> "$results"
		elif [ "$(wc -l < "$results")" -le "$before" ]; then
			echo "FAIL $rname: tap.py recorded no result for this run" >> "$results"
		fi
	done
}

# The failures of RESULTS, short: the first two, without the run's name
killers() {
	grep '^FAIL' "$1" | sed -E 's/^FAIL [^: ]+:? ?//; s/^kunit: /KUnit iommufd-noiommu: /; s/ \(see [^)]*\)//' |
		awk '!seen[$0]++' | head -2 | paste -sd ';' | sed 's/;/; /g'
}

say "building the mutant kernel from the unmutated tree"
bstart=$(date +%s)
build "$work/logs/build-baseline.out" || { cat "$work/logs/build-baseline.out" >&2; die "the unmutated tree does not build"; }
say "built in $(($(date +%s) - bstart))s"

# The unmutated tree must pass every test that some mutant names.
if [ "${BASELINE:-1}" = 1 ]; then
	say "baseline: the unmutated series with every test the mutants name"
	mapfile -t all < <(for n in $(cat "$work/names"); do mpy show "$n" kill; done | awk '!seen[$0]++')
	: > "$work/results/baseline.txt"
	rstart=$(date +%s)
	run baseline "$work/results/baseline.txt" "${all[@]}" kunit
	if grep -q '^FAIL' "$work/results/baseline.txt"; then
		grep '^FAIL' "$work/results/baseline.txt" | sed 's/^/  /' >&2
		die "the unmutated series fails the tests above: fix that first"
	fi
	say "baseline passed in $(($(date +%s) - rstart))s ($(grep -c '^PASS' "$work/results/baseline.txt") results)"
fi

killed=0 survived=0
: > "$work/results.tsv"
for name in $(cat "$work/names"); do
	mstart=$(date +%s)
	results="$work/results/$name.txt"
	: > "$results" 
	: > "$work/logs/$name.out"
	mapfile -t kills < <(mpy show "$name" kill)
	current=$name
	mpy apply "$name" "$mtree" || die "cannot apply mutant $name"
	verdict="" bt=0 rt=0
	if build "$work/logs/build-$name.out"; then
		bt=$(($(date +%s) - mstart))
		run "$name" "$results" "${kills[@]}"
		rt=$(($(date +%s) - mstart - bt))
		if grep -q '^FAIL' "$results"; then
			verdict="killed by $(killers "$results")"
		elif printf '%s\n' "${kills[@]}" | grep -qx build; then
			verdict="SURVIVED (it builds)"
		else
			verdict="SURVIVED"
		fi
	else
		bt=$(($(date +%s) - mstart))
		if printf '%s\n' "${kills[@]}" | grep -qx build; then
			verdict="killed by build: $(grep -m1 -E 'ERROR|error|wanted' "$work/logs/build-$name.out" | sed 's/^ *//')"
		else
			verdict="SURVIVED (does not build, which it should: fix the mutant; see ${work#"$TOP"/}/logs/build-$name.out)"
		fi
	fi
	restore
	case "$verdict" in
	killed*) killed=$((killed + 1)) ;;
	*) survived=$((survived + 1)) ;;
	esac
	printf '%s\t%s\t%s\t%s\n' "$name" "$verdict" "$bt" "$rt" >> "$work/results.tsv"
	printf '%-28s %s [build %ss, run %ss]\n' "$name" "$verdict" "$bt" "$rt"
done
echo "make mutants took $(($(date +%s) - start))s; per mutant: ${work#"$TOP"/}/results.tsv, logs in ${work#"$TOP"/}/logs"
echo "$killed killed, $survived survived"
[ "$survived" = 0 ]
