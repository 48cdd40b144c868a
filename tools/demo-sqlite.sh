#!/bin/bash
# Description: the SQLite part of `make demo`: a query with a 200 ms budget
# on a disk that hangs, through the ringctx VFS and through the stock sqlite3
# shell side by side. On a stuck FUSE file system (support/stuckfs.h, served
# by the objd-stuckfs helper) it makes a database (t.db) and a copy for the
# shell (s.db), drops their page cache and makes the disk hold every read:
#  1. docs/examples/sqlite_deadline on a cold cache (the open's own read of
#     the header hangs): how long it took, the cause it reports, and that
#     the process is gone while the disk still holds its read;
#  2. the header cached, the rest not (a database in use): the stock shell
#     (default VFS, .timeout 200) and the example run the same full scan at
#     the same time; the example as in 1, the shell still in its read after
#     2 s (its state), then whether SIGTERM or SIGKILL ends it;
#  3. the extension in the stock shell (.load rctxvfs, rctx_timeout(200)):
#     the schema read while the disk is healthy, then the disk hangs; the
#     scan fails at its deadline, rctx_status() says why, and the shell
#     exits while the disk holds its read.
# The disk then answers and PRAGMA integrity_check must say ok. Every wait
# is bounded; any exit path answers the held reads, unmounts and removes
# everything. Exit status 0 when the behaviours held (the numbers are not
# judged); skips (status 0) with the reason without SQLite or FUSE.
# Usage: tools/demo-sqlite.sh BUILD/plain/examples/sqlite_deadline BUILD/objd-stuckfs [BUILD/sqlite/rctxvfs.so]
set -u

EX=${1:?usage: demo-sqlite.sh SQLITE_DEADLINE OBJD-STUCKFS [RCTXVFS]}
STUCKFS=${2:?usage: demo-sqlite.sh SQLITE_DEADLINE OBJD-STUCKFS [RCTXVFS]}
EXT=${3:-}
BUDGET=200
ROWS=4000
SCAN="SELECT sum(length(pad)) FROM t"

T=""
FSPID=""	# the stuckfs helper: fd 7 its commands, fd 8 its answers
PIDS=""		# stock shells still running
problems=0

echo
echo "== SQLite on a hung disk: a query with a $BUDGET ms budget ($(nproc) CPUs, load $(cut -d' ' -f1 /proc/loadavg))"
skip() { echo "   skipped: $*"; exit 0; }
problem() { problems=$((problems + 1)); echo "  !! $*"; }
[ -x "$EX" ] || skip "$EX is not built (SQLite: pkg-config sqlite3 found nothing; Debian: libsqlite3-dev)"
[ -x "$STUCKFS" ] || skip "$STUCKFS is not built"
for c in stdbuf mkfifo timeout; do
	command -v "$c" >/dev/null 2>&1 || skip "$c is missing"
done
SHELL3=""
command -v sqlite3 >/dev/null 2>&1 && SHELL3=sqlite3

# ---- helpers ------------------------------------------------------------------
now_ms() { echo $(($(date +%s%N) / 1000000)); }
alive() { kill -0 "$1" 2>/dev/null; }
state() { sed -n 's/^State:[[:space:]]*//p' "/proc/$1/status" 2>/dev/null; }

# fs COMMAND [ARGS]: send a command to the helper (tests/objd/stuckfs-mount.c);
# prints the number of its answer ("released N", "held N"...), or fails.
fs() {
	local line want
	case $1 in release) want=released ;; drop) want=dropped ;; *) want=$1 ;; esac
	echo "$*" >&7 2>/dev/null || return 1
	IFS= read -r -t 10 line <&8 || return 1
	[ "${line%% *}" = "$want" ] || return 1
	echo "${line#* }"
}
held() { fs held || echo "?"; }

# wait_exit PID SECONDS: wait for PID (a child) to end; its status in RC.
wait_exit() {
	local i
	RC=124
	for i in $(seq 0 $(($2 * 20))); do
		if ! alive "$1"; then
			wait "$1" 2>/dev/null; RC=$?
			PIDS=$(tr ' ' '\n' <<<"$PIDS" | grep -vx "$1" | tr '\n' ' ')
			return 0
		fi
		[ "$i" -lt $(($2 * 20)) ] && sleep 0.05
	done
	return 1
}

# wait_for FILE PATTERN SECONDS: until a line of FILE matches PATTERN.
wait_for() {
	local i
	for i in $(seq $(($3 * 20))); do
		grep -q -- "$2" "$1" 2>/dev/null && return 0
		sleep 0.05
	done
	return 1
}

# release_all SECONDS: stop holding new reads and answer the held ones until
# none is left (an answered read can let a waiting one in). Bounded.
release_all() {
	local i
	fs hang none >/dev/null
	for i in $(seq $(($1 * 5))); do
		fs release >/dev/null
		[ "$(held)" = 0 ] && [ "$i" -gt 1 ] && return 0
		sleep 0.2
	done
	return 1
}

cleanup() {
	local p
	trap - EXIT INT TERM HUP PIPE
	[ -n "$FSPID" ] && release_all 5
	for p in $PIDS; do kill -KILL "$p" 2>/dev/null; done
	exec 6>&- 2>/dev/null
	if [ -n "$FSPID" ]; then
		exec 7>&-	# EOF: the helper answers what is pending and unmounts
		wait_exit "$FSPID" 10 || kill -KILL "$FSPID" 2>/dev/null
		FSPID=""
	fi
	for p in $PIDS; do wait_exit "$p" 5; done
	[ -n "$T" ] && rm -rf --one-file-system "$T"
	T=""
}
trap cleanup EXIT
trap 'echo "demo-sqlite: interrupted" >&2; exit 130' INT TERM HUP
trap 'exit 141' PIPE

# ---- set up -------------------------------------------------------------------
T=$(mktemp -d /tmp/sqlite-demo.XXXXXX) || { echo "demo-sqlite: mktemp failed" >&2; exit 1; }
mkfifo "$T/fs.in" "$T/fs.out"
"$STUCKFS" <"$T/fs.in" >"$T/fs.out" 2>"$T/fs.err" &
FSPID=$!
exec 7>"$T/fs.in" 8<"$T/fs.out"
line=""
IFS= read -r -t 15 line <&8
case $line in
"mounted "*) D=${line#mounted } ;;
"skip: "*) skip "FUSE is not usable here: ${line#skip: }" ;;
*) skip "the stuckfs helper did not start: $(head -n 1 "$T/fs.err")" ;;
esac
DB=$D/t.db

out=$(timeout 60 "$EX" "$DB" 30000 "CREATE TABLE t(k INTEGER PRIMARY KEY, v INT, pad TEXT);
	WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < $ROWS)
	INSERT INTO t(v, pad) SELECT x, printf('%.*c', 500, 'p') FROM c" 2>&1) ||
	{ echo "demo-sqlite: making the database failed: $out" >&2; exit 1; }
cp "$DB" "$D/s.db" || { echo "demo-sqlite: cp failed" >&2; exit 1; }
echo "   stuck disk: FUSE file system at $D; t.db: $ROWS rows, $(($(stat -c %s "$DB") / 1024)) KiB," \
	"made through the ringctx VFS; s.db: a copy, for the stock shell"
[ -n "$SHELL3" ] || echo "   (no stock sqlite3 shell here: its parts are skipped; Debian: sqlite3)"

# run_example SQL...: the example on t.db with the budget, bounded; sets
# EX_RC, EX_MS (wall time, this script's measure) and EX_OUT.
run_example() {
	local t0
	t0=$(now_ms)
	EX_OUT=$(timeout -k 2 20 "$EX" "$DB" "$BUDGET" "$@" 2>&1)
	EX_RC=$?
	EX_MS=$(($(now_ms) - t0))
}

# judge_example HELD_BEFORE: the example must have exited with status 2 and
# the deadline as its cause, and the disk hold more reads than HELD_BEFORE
# (those of others) now: its own, given up. Only a release answers a read.
judge_example() {
	local h
	h=$(held)
	echo "   ringctx: sqlite_deadline t.db $BUDGET -> exit status $EX_RC, $EX_MS ms from exec to exit"
	echo "     it says: $(tail -n 1 <<<"$EX_OUT")"
	echo "     the process is gone; the disk holds $h read(s) now, $(($h - $1)) of them this process's"
	[ "$EX_RC" = 2 ] || problem "the example exited with $EX_RC, not 2 (the context ended it)"
	grep -q "deadline exceeded" <<<"$EX_OUT" || problem "the example does not report the deadline"
	[ "$h" != "?" ] && [ "$h" -gt "$1" ] ||
		problem "the disk holds $h reads (others' $1): the process did not exit while it held its own"
}

# ---- 1. cold cache: the open's read hangs ------------------------------------
echo "1. cold cache, the disk holds every read (the first read to hang is the open's, of the header):"
[ "$(fs drop t.db)" = 1 ] && [ "$(fs hang read)" = 0 ] || problem "the helper did not drop the cache or hang reads"
run_example
judge_example 0
release_all 10 || problem "reads still held 10 s after the disk answered"

# ---- 2. side by side: the stock shell and the example ------------------------
echo "2. the header cached (a database in use), the rest not; the disk holds every read; the same scan side by side:"
[ "$(fs drop)" -ge 2 ] 2>/dev/null || problem "the helper did not drop the cache"
head -c 100 "$DB" >/dev/null
head -c 100 "$D/s.db" >/dev/null
[ "$(fs hang read)" = 0 ] || problem "the helper did not hang reads"
SPID=""
if [ -n "$SHELL3" ]; then
	printf '.timeout %s\n.timer on\n%s;\n' "$BUDGET" "$SCAN" >"$T/stock.sql"
	ts=$(now_ms)
	stdbuf -oL -eL sqlite3 "$D/s.db" <"$T/stock.sql" >"$T/stock.out" 2>&1 &
	SPID=$!
	PIDS="$PIDS $SPID"
	for _ in $(seq 200); do [ "$(held)" -ge 1 ] 2>/dev/null && break; sleep 0.05; done
	sleep 0.2	# its readahead's requests all in
	h0=$(held)
	echo "   stock sqlite3 s.db (default VFS, .timeout $BUDGET): started; the disk holds its $h0 read(s)"
	[ "$h0" != "?" ] && [ "$h0" -ge 1 ] || problem "the stock shell's read did not reach the disk"
fi
run_example "$SCAN"
judge_example "${h0:-0}"
if [ -n "$SPID" ]; then
	left=$((ts + 2000 - $(now_ms)))
	[ "$left" -gt 0 ] && sleep "$(awk -v m="$left" 'BEGIN { printf "%.3f", m / 1000 }')"
	if alive "$SPID"; then
		echo "   stock sqlite3 after $((($(now_ms) - ts))) ms: still in its read, no answer; state $(state "$SPID")," \
			"in $(cat "/proc/$SPID/wchan" 2>/dev/null || echo '?')"
		echo "     (.timeout is SQLite's busy timeout, for locks: nothing bounds a read)"
		t0=$(now_ms)
		kill -TERM "$SPID"
		if wait_exit "$SPID" 1; then
			echo "     SIGTERM: the process ended $(($(now_ms) - t0)) ms later (status $RC), the disk still holding" \
				"$(held) read(s): its D state wait is killable, but nothing in it gives up on a deadline"
		else
			echo "     SIGTERM: still there after 1 s, state $(state "$SPID")"
			t0=$(now_ms)
			kill -KILL "$SPID"
			if wait_exit "$SPID" 2; then
				echo "     SIGKILL: ended $(($(now_ms) - t0)) ms later"
			else
				echo "     SIGKILL: still there after 2 s, state $(state "$SPID"): it stays until the disk answers"
				release_all 5
				wait_exit "$SPID" 5 && echo "     it ended once the disk answered"
			fi
		fi
	else
		wait_exit "$SPID" 0
		problem "the stock shell ended before 2 s (status $RC): $(head -c 200 "$T/stock.out")"
	fi
fi
release_all 10 || problem "reads still held 10 s after the disk answered"
for p in $PIDS; do alive "$p" && problem "process $p still there after the disk answered"; done

# ---- 3. the extension in the stock shell --------------------------------------
if [ -z "$SHELL3" ]; then
	echo "3. the extension in the stock shell: skipped (no sqlite3 shell)"
elif [ -z "$EXT" ] || [ ! -f "$EXT" ]; then
	echo "3. the extension in the stock shell: skipped (${EXT:-rctxvfs.so} not built)"
else
	echo "3. the stock shell with the extension: .load ${EXT%.so}, .open t.db, SELECT rctx_timeout($BUDGET);" \
		"the schema read while the disk is healthy, then the disk holds every read:"
	mkfifo "$T/sh.in"
	stdbuf -oL -eL sqlite3 <"$T/sh.in" >"$T/sh.out" 2>&1 &
	XPID=$!
	PIDS="$PIDS $XPID"
	exec 6>"$T/sh.in"
	printf '.load %s\n.open %s\nSELECT rctx_timeout(%s);\nSELECT count(*) FROM t;\n' \
		"${EXT%.so}" "$DB" "$BUDGET" >&6
	if ! wait_for "$T/sh.out" "^$ROWS\$" 10; then
		problem "the shell with the extension did not answer: $(head -c 300 "$T/sh.out")"
	else
		[ "$(fs drop t.db)" = 1 ] && [ "$(fs hang read)" = 0 ] || problem "the helper did not drop the cache or hang reads"
		t0=$(now_ms)
		printf '.timer on\n%s;\n.timer off\nSELECT rctx_status();\n' "$SCAN" >&6
		if wait_for "$T/sh.out" "^deadline exceeded\$\|^ok\$\|^canceled\$" 10; then
			ms=$(($(now_ms) - t0))
			err=$(grep -m 1 "error" "$T/sh.out")
			rt=$(sed -n 's/^Run Time: real \([0-9.]*\).*/\1/p' "$T/sh.out" | tail -n 1)
			st=$(grep "^deadline exceeded\$\|^ok\$\|^canceled\$" "$T/sh.out" | tail -n 1)
			echo "   $SCAN: \"${err:-no error}\" after ${rt:-?} s (the shell's .timer);" \
				"SELECT rctx_status(): '$st' ($ms ms for both)"
			[ -n "$err" ] || problem "the scan did not fail on the hung disk"
			[ "$st" = "deadline exceeded" ] || problem "rctx_status() says '$st'"
		else
			problem "the shell did not come back within 10 s: $(tail -c 300 "$T/sh.out")"
		fi
		h0=$(held)
		exec 6>&-	# EOF: the shell closes the database and exits
		t0=$(now_ms)
		if wait_exit "$XPID" 10; then
			h=$(held)
			echo "   end of input: the shell exited (status $RC: a statement failed) $(($(now_ms) - t0)) ms later;" \
				"the disk holds $h read(s)"
			[ "$h0" != "?" ] && [ "$h" != "?" ] && [ "$h0" -ge 1 ] && [ "$h" -ge 1 ] ||
				problem "the shell did not exit while the disk held its read (held $h0, then $h)"
		else
			problem "the shell did not exit within 10 s while the disk held its read"
		fi
	fi
	release_all 10 || problem "reads still held 10 s after the disk answered"
fi

# ---- the disk answers: intact ---------------------------------------------------
ok=""
for f in t.db s.db; do
	if [ -n "$SHELL3" ]; then
		r=$(timeout 30 sqlite3 "$D/$f" "PRAGMA integrity_check" 2>&1)
	else
		r=$(timeout 30 "$EX" "$D/$f" 30000 "PRAGMA integrity_check" 2>&1 | head -n 1)
	fi
	ok="$ok $f: $r,"
	[ "$r" = ok ] || problem "integrity_check of $f: $r"
done
echo "the disk answers: nothing held ($(held)); integrity_check${ok%,}"

dir=$D
cleanup
left=$(awk -v d="$dir" '$2 == d { n++ } END { print n + 0 }' /proc/mounts)
[ "$left" = 0 ] || problem "$dir is still mounted"
echo "cleaned up: file system unmounted, temporary files removed"
if [ "$problems" != 0 ]; then
	echo "demo-sqlite: $problems problem(s), see the lines marked !!" >&2
	exit 1
fi
