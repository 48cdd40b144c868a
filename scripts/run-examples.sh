#!/bin/sh
# Run the programs of docs/examples, each under a hard time limit. Each one
# exits 0 when what it shows did happen. Prints their output and one closing
# line "examples-FLAVOUR: N passed, N failed, 0 skipped".
# Usage: scripts/run-examples.sh FLAVOUR BINARY...
set -u
flavour=examples-$1; shift
limit=${RCTX_TEST_LIMIT:-120}
pass=0; fail=0; bad=""
for e in "$@"; do
	log=$(mktemp)
	timeout -k 5 "$limit" "$e" >"$log" 2>&1 </dev/null
	rc=$?
	if [ $rc -eq 0 ]; then
		pass=$((pass + 1))
		echo "  $flavour: $(basename "$e")"
	else
		fail=$((fail + 1))
		bad="$bad $(basename "$e")"
		echo "---- $flavour: $(basename "$e") FAILED (exit $rc)"
	fi
	sed 's/^/    /' "$log"
	rm -f "$log"
done
echo "$flavour: $pass passed, $fail failed, 0 skipped"
[ -z "${RCTX_CHECK_SUMMARY:-}" ] ||
	echo "$flavour $pass $fail 0" >>"$RCTX_CHECK_SUMMARY"
[ -z "$bad" ] || { echo "$flavour: failed:$bad"; exit 1; }
