#!/bin/sh
# Run docs/examples/sqlite_deadline on a scratch database, each step under a
# hard time limit, and check its output and exit status: it creates a table,
# counts it (0), has a CPU-bound query cut at its
# deadline (2, "deadline exceeded"), and fails on a missing table (1, a
# genuine error, not the context). The stuck-disk case is the test
# sqlite_stuck::process_exits_while_disk_holds_its_read.
# Prints the output and one closing line
# "examples-sqlite-FLAVOUR: N passed, N failed, 0 skipped".
# Usage: scripts/run-sqlite-example.sh FLAVOUR BUILD/FLAVOUR/examples/sqlite_deadline
set -u
flavour=examples-sqlite-$1
ex=$2
limit=${RCTX_TEST_LIMIT:-120}
pass=0; fail=0; bad=""
T=$(mktemp -d) || exit 1
trap 'rm -rf "$T"' EXIT
db=$T/x.db

# step NAME STATUS TEXT ARGS...: run the example with ARGS; it must exit
# with STATUS and print a line containing TEXT.
step() {
	name=$1 want=$2 text=$3; shift 3
	timeout -k 5 "$limit" "$ex" "$@" >"$T/out" 2>&1 </dev/null
	rc=$?
	if [ $rc -eq "$want" ] && grep -q -- "$text" "$T/out"; then
		pass=$((pass + 1))
		echo "  $flavour: $name (exit $rc)"
	else
		fail=$((fail + 1))
		bad="$bad '$name'"
		echo "---- $flavour: $name FAILED (exit $rc, expected $want and \"$text\")"
	fi
	sed 's/^/    /' "$T/out"
}

step "create" 0 "^ok: " "$db" 10000 \
	"CREATE TABLE t(k INTEGER PRIMARY KEY, v);
	 WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000)
	 INSERT INTO t(v) SELECT x FROM c"
step "count" 0 "^1000$" "$db" 10000
step "CPU-bound query at its deadline" 2 "deadline exceeded" "$db" 100 \
	"WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"
step "genuine error" 1 "no such table" "$db" 10000 "SELECT * FROM missing"

echo "$flavour: $pass passed, $fail failed, 0 skipped"
[ -z "${RCTX_CHECK_SUMMARY:-}" ] ||
	echo "$flavour $pass $fail 0" >>"$RCTX_CHECK_SUMMARY"
[ -z "$bad" ] || { echo "$flavour: failed:$bad"; exit 1; }
