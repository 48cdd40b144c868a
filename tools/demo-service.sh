#!/bin/bash
# Description: the service half of `make demo`: ringctx-objd keeping up while
# the disk hangs. Starts the server on a temporary directory (127.0.0.1, a
# free port) with a stuck FUSE file system (support/stuckfs.h) bind-mounted
# inside its root, drives it with wrk and curl, and prints what it measured:
# healthy throughput and latency, a 1 MiB round trip, stuck reads answered
# 504 at their deadline while healthy traffic goes on, a client hanging up
# mid-download, SIGTERM with downloads in flight. Then the stuck reads are
# released and everything is unmounted and removed.
# Every wait is bounded; any exit path cleans up. Exit status 0 when the
# server behaved as it should; the numbers themselves are not judged.
# Usage: tools/demo-service.sh BUILD/ringctx-objd [BUILD/objd-stuckfs]
set -u

OBJD=${1:?usage: demo-service.sh RINGCTX-OBJD [OBJD-STUCKFS]}
STUCKFS=${2:-}
STUCK_CLIENTS=8
STUCK_DEADLINE_MS=2000
WRK_SECONDS=5

T=""
SPID=""		# the server
FSPID=""	# the stuckfs helper; its stdin is fd 7
FSDIR=""	# the stuck file system's own mount point (the helper's)
BIND=""		# its bind mount inside the root
CLIENTS=""	# background curl and wrk processes
problems=0

die() { echo "demo: $*" >&2; exit 1; }
problem() { problems=$((problems + 1)); echo "  !! $*"; }

for c in curl wrk sha256sum timeout mkfifo; do
	command -v "$c" >/dev/null 2>&1 || die "$c is missing (make demo installs it as root on Debian)"
done
[ -x "$OBJD" ] || die "$OBJD not built (run make)"

# ---- cleanup, on every exit path ------------------------------------------
# The order matters: no server left reading the stuck file, its pending
# reads answered, the bind mount gone before the temporary tree is removed.
# release_once: answer the stuck reads pending now; prints how many.
release_once() {
	[ -n "$FSPID" ] || { echo 0; return 0; }
	echo release >&7 2>/dev/null || { echo 0; return 0; }
	read_fs released || echo 0
}

# d_state: how many of the server's threads are in D state.
d_state() { grep -l '^State:.*D' /proc/"$SPID"/task/*/status 2>/dev/null | wc -l; }

# release_all SECONDS: answer stuck reads until none is pending and no server
# thread is in D state (a read answered can let the next one in: FUSE splits
# reads, other readers wait on the page). Bounded.
release_all() {
	local i
	for i in $(seq $(($1 * 5))); do
		[ "$(release_once)" = 0 ] && [ "$(d_state)" = 0 ] && [ "$i" -gt 1 ] && return 0
		sleep 0.2
	done
	return 1
}

# stop_server: SIGTERM, answering the stuck reads meanwhile (a worker's exit
# waits for its io-wq work); SIGKILL if it is still there after 10 s.
stop_server() {
	local i
	kill -TERM "$SPID" 2>/dev/null
	for i in $(seq 50); do
		wait_exit "$SPID" 0 && return 0
		release_once >/dev/null
		sleep 0.2
	done
	echo "demo: ringctx-objd still running 10 s after SIGTERM: SIGKILL" >&2
	kill -KILL "$SPID" 2>/dev/null
	release_all 5
	wait_exit "$SPID" 5
}

cleanup() {
	local p
	trap - EXIT INT TERM HUP PIPE
	for p in $CLIENTS; do kill "$p" 2>/dev/null; done
	if [ -n "$SPID" ] && kill -0 "$SPID" 2>/dev/null; then
		stop_server
	fi
	[ -n "$BIND" ] && umount -l "$BIND" 2>/dev/null
	if [ -n "$FSPID" ]; then
		exec 7>&-	# EOF: the helper answers what is pending and unmounts
		wait_exit "$FSPID" 10 || kill -KILL "$FSPID" 2>/dev/null
	fi
	wait 2>/dev/null
	[ -n "$T" ] && rm -rf --one-file-system "$T"
}
trap cleanup EXIT
trap 'echo "demo: interrupted" >&2; exit 130' INT TERM HUP
trap 'exit 141' PIPE

# wait_exit PID SECONDS: wait for PID (a child) to end; its status in RC.
wait_exit() {
	local p=$1 i
	RC=124
	for i in $(seq 0 $(($2 * 10))); do
		if ! kill -0 "$p" 2>/dev/null; then wait "$p" 2>/dev/null; RC=$?; return 0; fi
		[ "$i" -lt $(($2 * 10)) ] && sleep 0.1
	done
	return 1
}

# ---- helpers ----------------------------------------------------------------
U() { echo "http://127.0.0.1:$PORT/$1"; }
sha() { sha256sum "$1" | cut -d' ' -f1; }
threads() { awk '/^Threads:/ { print $2 }' "/proc/$SPID/status" 2>/dev/null; }
stats() { curl -sS --max-time 5 "$(U debug/stats)"; }
code_of() { curl -sS -o /dev/null -w '%{http_code}' --max-time 10 "$1"; }
# field JSON NAME: the first counter NAME (server-wide); ring_field: of
# "rings". 0 when absent (no answer), so that the arithmetic stays valid.
field() { v=$(grep -o "\"$2\":-\?[0-9]*" <<<"$1" | head -n 1 | cut -d: -f2); echo "${v:-0}"; }
ring_field() { v=$(grep -o "\"rings\":{[^}]*}" <<<"$1" | grep -o "\"$2\":[0-9]*" | cut -d: -f2); echo "${v:-0}"; }
# 31234.5 -> 31,234
num() { printf '%.0f' "$1" | sed ':a;s/\B[0-9]\{3\}\>/,&/;ta'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "-" }'; }
# read_fs WORD: the number of the stuckfs helper's next "WORD N" line.
read_fs() {
	local line
	IFS= read -r -t 10 line <&8 || return 1
	[ "${line%% *}" = "$1" ] || return 1
	echo "${line#* }"
}

# wrk_run SECONDS URL: run wrk, set RPS, P99 and WRK_ERR (errors, if any).
wrk_run() {
	local out
	out=$(timeout $(($1 + 20)) wrk -t1 -c8 -d"${1}s" --timeout 2s --latency "$2" 2>&1) ||
		die "wrk failed: $out"
	RPS=$(awk '/^Requests\/sec:/ { print $2 }' <<<"$out")
	P99=$(awk '$1 == "99%" { print $2 }' <<<"$out")
	WRK_ERR=$( { grep -o 'Socket errors:.*' <<<"$out"; grep -o 'Non-2xx.*' <<<"$out"; } | tr '\n' ' ')
	[ -n "$RPS" ] || die "wrk gave no result: $out"
}

# ---- set up -----------------------------------------------------------------
T=$(mktemp -d /tmp/objd-demo.XXXXXX) || die "mktemp failed"
R=$T/root
mkdir -p "$R"

# The stuck file system: a helper process serving it, fd 7 its commands,
# fd 8 its answers. Mounted by the helper in /tmp, bind-mounted into the root.
stuck=no
why="no stuckfs helper was built"
if [ -n "$STUCKFS" ] && [ -x "$STUCKFS" ]; then
	mkfifo "$T/fs.in" "$T/fs.out"
	"$STUCKFS" <"$T/fs.in" >"$T/fs.out" 2>"$T/fs.err" &
	FSPID=$!
	exec 7>"$T/fs.in" 8<"$T/fs.out"
	line=""
	IFS= read -r -t 15 line <&8
	case $line in
	"mounted "*)
		FSDIR=${line#mounted }
		mkdir "$R/disk"
		if mount --bind "${line#mounted }" "$R/disk" 2>"$T/mount.err"; then
			BIND=$R/disk; stuck=yes
		else
			why="cannot bind-mount it into the root: $(head -n 1 "$T/mount.err")"
		fi ;;
	"skip: "*) why="FUSE is not usable here: ${line#skip: }" ;;
	*) why="the stuckfs helper did not start: $(head -n 1 "$T/fs.err")" ;;
	esac
fi

"$OBJD" --listen 127.0.0.1:0 --timeout 30s --drain 2s --access-log "$T/access.log" "$R" \
	>"$T/objd.out" 2>"$T/objd.err" &
SPID=$!
PORT=""
for _ in $(seq 100); do
	PORT=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$T/objd.out")
	[ -n "$PORT" ] && break
	kill -0 "$SPID" 2>/dev/null || break
	sleep 0.1
done
[ -n "$PORT" ] || die "ringctx-objd did not start: $(cat "$T/objd.err")"
echo
echo "== ringctx-objd on 127.0.0.1:$PORT, root $R ($(nproc) CPUs, load $(cut -d' ' -f1 /proc/loadavg))"
if [ $stuck = yes ]; then
	echo "   stuck disk: FUSE file system at $BIND (reads of disk/stuck never answered)"
else
	echo "   stuck disk: skipped, $why"
fi

# ---- healthy traffic ----------------------------------------------------------
head -c 4096 /dev/urandom >"$T/small"
c=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 10 -T "$T/small" "$(U obj4k)") || c=error
[ "$c" = 201 ] || die "PUT of a 4 KiB object: $c"
wrk_run "$WRK_SECONDS" "$(U obj4k)"
RPS0=$RPS
echo "healthy GET 4 KiB (wrk, 8 connections, ${WRK_SECONDS} s): $(num "$RPS") req/s (p99 $P99) ${WRK_ERR:+[$WRK_ERR]}"

head -c 1048576 /dev/urandom >"$T/mib"
t0=$(date +%s.%N)
cp=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 30 -T "$T/mib" "$(U obj1m)") || cp=error
cg=$(curl -sS -o "$T/mib.got" -w '%{http_code}' --max-time 30 "$(U obj1m)") || cg=error
ms=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.0f", (b - a) * 1000 }')
if [ "$cp $cg" = "201 200" ] && [ "$(sha "$T/mib")" = "$(sha "$T/mib.got")" ]; then
	echo "round trip 1 MiB random: PUT $cp, GET $cg, sha256 matches ($(sha "$T/mib" | cut -c1-16)...), $ms ms"
else
	problem "round trip 1 MiB: PUT $cp, GET $cg, sha256 $(sha "$T/mib" | cut -c1-12) vs $(sha "$T/mib.got" 2>/dev/null | cut -c1-12)"
fi

# ---- a stuck disk -------------------------------------------------------------
stuck_disk() {
	local i th0 th1 seen codes secs n504 t j rps0=$RPS
	th0=$(threads)
	j=$(stats)
	local ci0 ab0
	ci0=$(ring_field "$j" cancels_issued); ab0=$(ring_field "$j" aborted)
	t=$(awk -v ms=$STUCK_DEADLINE_MS 'BEGIN { printf "%.2f", ms / 1000 }')
	for i in $(seq $STUCK_CLIENTS); do
		curl -sS -o /dev/null -w '%{http_code} %{time_total}\n' --max-time 30 \
			-H "X-Request-Timeout: $STUCK_DEADLINE_MS" "$(U disk/stuck)" >"$T/stuck$i" 2>&1 &
		CLIENTS="$CLIENTS $!"
	done
	# Healthy traffic while the kernel holds the stuck reads, before their
	# deadline and after it (an abandoned read stays in the kernel); the
	# server's threads sampled in the middle.
	sleep 0.3
	( sleep 1.5; threads >"$T/threads.during"; echo seen >&7 ) &
	CLIENTS="$CLIENTS $!"
	wrk_run 4 "$(U obj4k)"
	seen=$(read_fs seen) || seen="?"
	th1=$(cat "$T/threads.during" 2>/dev/null)
	for i in $(seq $STUCK_CLIENTS); do
		for _ in $(seq 150); do [ -s "$T/stuck$i" ] && break; sleep 0.1; done
	done
	codes=$(cut -d' ' -f1 "$T"/stuck[0-9]* | sort | uniq -c | awk '{ printf "%s%d x %s", s, $1, $2; s = ", " }')
	secs=$(cut -s -d' ' -f2 "$T"/stuck[0-9]* | sort -n | sed -n '1p;$p' | tr '\n' ' ')
	n504=$(cat "$T"/stuck[0-9]* | grep -c '^504 ')
	printf 'stuck object: %d clients, deadline %s s: %s at %s s' "$STUCK_CLIENTS" "$t" "$codes" \
		"$(awk '{ printf "%.2f-%.2f", $1, $2 }' <<<"$secs")"
	echo " (reads reaching the FUSE server: $seen)"
	[ "$n504" = "$STUCK_CLIENTS" ] || problem "expected $STUCK_CLIENTS x 504, got $codes"
	echo "healthy GET 4 KiB during the stuck reads: $(num "$RPS") req/s (p99 $P99), $(ratio "$RPS" "$rps0") of before ${WRK_ERR:+[$WRK_ERR]}"
	echo "server threads: $th0 before -> ${th1:-?} during (io-wq workers hold the stuck reads; --device-limit bounds them per device)"
	j=$(stats)
	echo "  /debug/stats: 504 answers $(grep -o '"504":[0-9]*' <<<"$j" | cut -d: -f2)," \
		"cancels issued +$(($(ring_field "$j" cancels_issued) - ci0)), aborted +$(($(ring_field "$j" aborted) - ab0))," \
		"abandoned file requests $(field "$j" abandoned_io), still held by the kernel $(ring_field "$j" held_after_cancel)"
}
[ $stuck = yes ] && stuck_disk

# ---- the stuck reads released: nothing left in D state --------------------------
if [ $stuck = yes ]; then
	release_all 5
	d=$(d_state)
	j=$(stats)
	echo "stuck disk answers now: server threads $(threads), $d in D state," \
		"cancelled requests still held by the kernel $(ring_field "$j" held_after_cancel)"
	[ "$d" = 0 ] || problem "$d server threads still in D state"
fi

# ---- a client hanging up mid-download -----------------------------------------
head -c 32000000 /dev/urandom >"$T/big"
c=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 30 -T "$T/big" "$(U big)") || c=error
[ "$c" = 201 ] || die "PUT of a 32 MB object: $c"
j=$(stats)
ab0=$(ring_field "$j" aborted); ci0=$(ring_field "$j" cancels_issued)
curl -sS -o /dev/null --limit-rate 500k --max-time 1 "$(U big)" 2>/dev/null
cc=$?
gone=""
for _ in $(seq 100); do
	gone=$(grep '^GET /big 200 .*cause=client-gone$' "$T/access.log")
	[ -n "$gone" ] && break
	sleep 0.1
done
j=$(stats)
ab1=$(ring_field "$j" aborted); ci1=$(ring_field "$j" cancels_issued)
if [ -n "$gone" ]; then
	echo "client hung up mid-download (curl --limit-rate 500k --max-time 1, exit $cc): the request ended" \
		"after $(cut -d' ' -f4 <<<"$gone") of 32000000 bytes, cause=client-gone"
else
	problem "client hung up mid-download: no 'cause=client-gone' in the access log"
fi
note=""
[ "$((ab1 - ab0))" = 0 ] && note=" (the failing send ended the request: nothing else of it was in the kernel)"
echo "  /debug/stats: kernel requests aborted +$((ab1 - ab0)), cancels issued +$((ci1 - ci0))," \
	"requests in flight $(field "$j" in_flight)$note"
[ "$(code_of "$(U obj4k)")" = 200 ] || problem "the server does not serve after the hang-up"

# ---- SIGTERM with downloads in flight -------------------------------------------
curl -sS -o "$T/fast" -w '%{http_code}' --limit-rate 20M --max-time 30 "$(U big)" >"$T/fast.code" 2>/dev/null &
fp=$!
curl -sS -o "$T/slow" --limit-rate 1M --max-time 30 "$(U big)" 2>/dev/null &
sp=$!
CLIENTS="$CLIENTS $fp $sp"
sleep 0.3
t0=$(date +%s.%N)
kill -TERM "$SPID"
wait_exit "$SPID" 20 || problem "no exit 20 s after SIGTERM"
tx=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
erc=$RC
SPID=""
wait "$fp"; frc=$?
wait "$sp"; src=$?
fsz=$(stat -c %s "$T/fast" 2>/dev/null || echo 0)
ssz=$(stat -c %s "$T/slow" 2>/dev/null || echo 0)
echo "SIGTERM with 2 downloads of 32 MB in flight (--drain 2s): exit status $erc after $tx s"
if [ "$frc" = 0 ] && [ "$(sha "$T/fast")" = "$(sha "$T/big")" ]; then
	echo "  at 20 MB/s: completed whole during the drain (sha256 matches)"
else
	problem "at 20 MB/s: curl exit $frc, $fsz bytes"
fi
echo "  at 1 MB/s: cancelled after the drain, $ssz bytes received (curl exit $src)"
[ "$erc" = 0 ] || problem "exit status $erc after SIGTERM"
[ "$ssz" -lt 32000000 ] || problem "the slow download was not cut at the drain"

# ---- unmount, remove ----------------------------------------------------------------
cleanup
left=$(awk -v t="$T" -v f="${FSDIR:-/nonexistent}" \
	'index($2, t) == 1 || $2 == f { n++ } END { print n + 0 }' /proc/mounts)
[ -e "$T" ] && problem "$T left behind"
[ "$left" = 0 ] || problem "$left mounts left"
echo "cleaned up: stuck reads released, file system unmounted, $T removed"
if [ "$problems" != 0 ]; then
	echo "demo: $problems problem(s), see the lines marked !!" >&2
	exit 1
fi
