#!/bin/sh
# Run Criterion test binaries, each under a hard time limit, and print one
# closing line "<flavour>: N passed, N failed, N skipped".
# Usage: scripts/run-tests.sh FLAVOUR BINARY...
# (--verbose: Criterion names a skipped test and its reason only then; the
# log is shown only for a failed binary, skips are always listed.)
# FLAVOUR "valgrind" runs each binary under valgrind's memcheck.
set -u
flavour=$1; shift
limit=${RCTX_TEST_LIMIT:-300}
pass=0; fail=0; skip=0; bad=""
for t in "$@"; do
	log=$(mktemp)
	case $flavour in
	valgrind)
		# Criterion runs each test in a child it execs: follow it, and
		# judge by valgrind's own logs (Criterion ignores their exit code).
		# The example programs a test execs run natively.
		vglog=$(mktemp -d)
		set -- timeout -k 5 "$limit" valgrind -q --trace-children=yes \
			'--trace-children-skip=*/examples/*' \
			--log-file="$vglog/vg.%p" --error-exitcode=99 \
			--leak-check=full --errors-for-leak-kinds=definite \
			--show-leak-kinds=definite "$t" --jobs=2 --verbose ;;
	*)        set -- timeout -k 5 "$limit" "$t" --jobs=2 --verbose ;;
	esac
	t0=$(date +%s)
	"$@" >"$log" 2>&1
	rc=$?
	secs=$(($(date +%s) - t0))
	if [ "$flavour" = valgrind ]; then
		if [ -n "$(cat "$vglog"/vg.* 2>/dev/null)" ]; then
			cat "$vglog"/vg.* >>"$log"
			[ $rc -ne 0 ] || rc=98
		fi
		rm -rf "$vglog"
	fi
	# Criterion runs each test in a child and ignores how the sanitizers
	# judged it (a leak report at the child's exit keeps exit status 0):
	# their reports fail the binary.
	if grep -aq 'ERROR: LeakSanitizer\|ERROR: AddressSanitizer\|runtime error:\|WARNING: ThreadSanitizer' "$log"; then
		[ $rc -ne 0 ] || rc=97
	fi
	syn=$(grep -a 'Synthesis:' "$log" | tail -n 1)
	np=$(echo "$syn" | sed -n 's/.*Passing: \([0-9]*\).*/\1/p')
	nf=$(echo "$syn" | sed -n 's/.*Failing: \([0-9]*\).*/\1/p')
	nc=$(echo "$syn" | sed -n 's/.*Crashing: \([0-9]*\).*/\1/p')
	nt=$(echo "$syn" | sed -n 's/.*Tested: \([0-9]*\).*/\1/p')
	ns=$(grep -ac '\[SKIP\]' "$log")
	[ -n "$np" ] || np=0; [ -n "$nf" ] || nf=0; [ -n "$nc" ] || nc=0
	pass=$((pass + np)); skip=$((skip + ns))
	if [ $rc -ne 0 ] || [ "$nf" -ne 0 ] || [ -z "$syn" ]; then
		fail=$((fail + nf + 1 - (nf > 0)))
		bad="$bad $(basename "$t")"
		echo "---- $flavour: $(basename "$t") FAILED (exit $rc)"; cat "$log"
	else
		grep -a '\[SKIP\]' "$log" | sed 's/^/    /'
		echo "  $flavour: $(basename "$t"): ${nt:-0} tested, $np passing (${secs} s)"
	fi
	rm -f "$log"
done
echo "$flavour: $pass passed, $fail failed, $skip skipped"
# make check adds the counts of every step up at the end.
[ -z "${RCTX_CHECK_SUMMARY:-}" ] ||
	echo "$flavour $pass $fail $skip" >>"$RCTX_CHECK_SUMMARY"
[ -z "$bad" ] || { echo "$flavour: failed:$bad"; exit 1; }
