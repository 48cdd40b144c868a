#!/bin/bash
# SPDX-License-Identifier: MIT
#
# The service benchmark: ringctx-objd, nginx (as configured in nginx.conf,
# and a second column with open_file_cache) and a Go net/http server
# (bench/go/objd) on the same files, in one run, with wrk on loopback.
# Prints one table with the servers side by side and the targets
# (PASS/MISS from this run's figures), and writes
#   BUILD/bench/objd.tsv          the table's rows (row, unit, objd, nginx,
#                                 nginx-open_file_cache, go)
#   BUILD/bench/objd-targets.tsv  target, value, limit, PASS/MISS
#   BUILD/bench/objd.txt          the printed table and targets
# Raw wrk outputs, the stuck clients' lines, samples (threads, RSS) and
# server logs stay in BUILD/bench/objd/ (phases.txt: when each part began).
#
# Usage: bench/objd/run.sh [BUILD_DIR]       (from anywhere)
# Environment: RCTX_BENCH_QUICK=1 for a short run (1 s per row).
# Needs wrk, curl, nginx (Debian's), go, python3 (the stuck-disk clients,
# stuck-clients.py), ss; BUILD/ringctx-objd and BUILD/objd-stuckfs (make all
# build/objd-stuckfs). A missing peer leaves its column "n/a"; without wrk
# or ringctx-objd nothing is measured. The 10,000-connection rows raise the
# fd limit to the hard limit and are "n/a" (with the reason) when it, or
# the local port range, is too small.
#
# Every wait is bounded, only loopback is used, every process started here
# is ended by its id, and the stuck FUSE reads are always released (answered,
# or the connection aborted) before the script ends.
set -u
umask 022

TOP=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${1:-build}
case $BUILD in /*) ;; *) BUILD=$TOP/$BUILD ;; esac
OUT=$BUILD/bench
RAW=$OUT/objd
mkdir -p "$RAW" || exit 1
rm -f "$RAW"/*.txt "$RAW"/*.log
OBJD=$BUILD/ringctx-objd
STUCKFS=$BUILD/objd-stuckfs

QUICK=${RCTX_BENCH_QUICK:-0}
[ "$QUICK" = "" ] && QUICK=0
if [ "$QUICK" != 0 ]; then
	MODE=quick; DUR=1; ROUNDS=1; ROUNDS_1M=1; ROUND_DUR=1; K10_DUR=2; EP_DUR=1; DEADLINE=1; CLIENT_MAX=1.3; SHUT_MAX=1.2; BUDGET=40
else
	MODE=full; DUR=3; ROUNDS=5; ROUNDS_1M=3; ROUND_DUR=1; K10_DUR=4; EP_DUR=2; DEADLINE=2; CLIENT_MAX=4; SHUT_MAX=3; BUDGET=90
fi
# The episode's wrk run: 0.3 s, a window of EP_DUR s unstuck, 0.3 s, a
# window of EP_DUR s stuck, and time to spare.
EP_WRK=$((2 * EP_DUR + 1))
DRAIN=1
STUCK_CLIENTS=32
# ringctx-objd's settings that the thread bound of the episode is computed
# from: worker threads and file requests per device in the kernel
# (--device-limit, given here so that the bound does not depend on a
# default).
OBJD_THREADS=2
OBJD_DEVICE_LIMIT=8
CPUS=$(getconf _NPROCESSORS_ONLN 2>/dev/null || nproc)
# The 10,000 keep-alive connections: wrk, and each server, need an fd per
# connection, so the fd limit is raised to the hard limit; K10_LIMIT is
# what the servers are allowed (ringctx-objd --max-conns and
# --max-inflight, nginx worker_connections per worker).
K10_CONNS=10000
K10_LIMIT=10240
ulimit -n "$(ulimit -Hn)" 2>/dev/null
K10_NA=""
fds=$(ulimit -n)
if [ "$fds" != unlimited ] && [ "$fds" -lt $((K10_CONNS + 100)) ]; then
	K10_NA="fd limit $fds (hard limit $(ulimit -Hn)) < $((K10_CONNS + 100))"
fi
read -r lo hi </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null
if [ -n "${hi:-}" ] && [ $((hi - lo + 1)) -lt $((K10_CONNS + 100)) ]; then
	K10_NA="${K10_NA:+$K10_NA; }$((hi - lo + 1)) local ports (net.ipv4.ip_local_port_range)"
fi
T0=$EPOCHREALTIME

# Columns: nginx as configured in nginx.conf (sendfile on), and nginx with
# open_file_cache (GET 4 KiB and the 10,000 connections only: the fastest
# nginx for small files, see bench/README.md).
SERVERS="objd nginx nginxofc go"
declare -A NAME=([objd]="ringctx-objd" [nginx]="nginx" [nginxofc]="nginx open_file_cache" [go]="Go net/http")
NGINX_OFC="open_file_cache max=1000 inactive=20s; open_file_cache_valid 1s; open_file_cache_min_uses 1; open_file_cache_errors on;"
NGINX_OFC_SENDFILE=off
declare -A R	# R[row,server] = value shown; RAWV[row,server] = number
declare -A RAWV
declare -A NA	# NA[server] = why the whole column is n/a
PIDS=""		# everything started here, ended by id at exit
FUSE_CONNS=""	# DIR=N: our mounts and their fusectl connection, aborted at exit

# fuse_abort DIR N: abort FUSE connection N (every pending request fails)
# if DIR is still that mount (connection numbers are reused).
fuse_abort() {
	[ "$(mountpoint -d "$1" 2>/dev/null)" = "0:$2" ] || return 0
	echo 1 >"/sys/fs/fuse/connections/$2/abort" 2>/dev/null
}

say() { echo "$*" >&2; }
now() { echo "$EPOCHREALTIME"; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }'; }
# phase NAME: when it began (seconds into the run), into BUILD/bench/objd/phases.txt.
phase() { echo "$(since "$T0") $1" >>"$RAW/phases.txt"; }
# forget PID: PID has been reaped; cleanup must not signal it (its number
# may be reused by then).
forget() { PIDS=" $PIDS "; PIDS=${PIDS// $1 / }; }

cleanup() {
	local p c
	for p in $PIDS; do kill -9 "$p" 2>/dev/null; done
	for c in $FUSE_CONNS; do fuse_abort "${c%%=*}" "${c#*=}"; done
	for p in $PIDS; do timeout 5 tail --pid="$p" -f /dev/null 2>/dev/null; done
	[ -n "${T:-}" ] && rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
trap '' PIPE	# a write to a stuck file system that is gone fails, no more

if ! command -v wrk >/dev/null 2>&1 || ! command -v curl >/dev/null 2>&1 || [ ! -x "$OBJD" ]; then
	say "service benchmark skipped: needs wrk, curl and $OBJD (make deps-bench all)"
	exit 0
fi
NGINX=$(command -v nginx || { [ -x /usr/sbin/nginx ] && echo /usr/sbin/nginx; })
[ -n "$NGINX" ] || { NA[nginx]="nginx not installed"; NA[nginxofc]=${NA[nginx]}; }

# ---- the files ---------------------------------------------------------------
# The stuck file system is mounted at /tmp/rctx-stuckfs-XXXXXX (support/
# stuckfs.c), so the servers' root is /tmp, the parent of both it and our
# directory (as in tests/objd/run.sh): a symbolic link out of the root would
# not be followed by ringctx-objd.
T=$(mktemp -d /tmp/objd-bench.XXXXXX) || exit 1
ROOT=$(dirname "$T")
K=$(basename "$T")
mkdir -p "$T/files" "$T/put" "$T/nginx-body"
chmod 0777 "$T/put" "$T/nginx-body"
mkfifo "$T/tick" && exec 9<>"$T/tick"	# read -t on it: a sleep without a fork
head -c 4096 /dev/urandom >"$T/files/4k.bin"
head -c 1048576 /dev/urandom >"$T/files/1m.bin"
cat >"$T/put.lua" <<'EOF'
wrk.method = "PUT"
wrk.body = string.rep("x", 65536)
wrk.headers["Content-Type"] = "application/octet-stream"
EOF

# ---- the Go server -----------------------------------------------------------
GOBIN=$RAW/go-objd
if command -v go >/dev/null 2>&1; then
	if ! (cd "$TOP/bench/go" && GOCACHE="$OUT/gocache" GOPATH="$OUT/gopath" \
		GOMODCACHE="$OUT/gopath/pkg/mod" GOPROXY=off GOFLAGS="" CGO_ENABLED=0 \
		go build -o "$GOBIN" ./objd) >"$RAW/go-build.log" 2>&1; then
		NA[go]="go build failed (see $RAW/go-build.log)"
	fi
else
	NA[go]="go not installed"
fi

# ---- servers -----------------------------------------------------------------
# sample PID: "THREADS BLOCKED RSS_KB" of PID and its children (nginx:
# master + workers): their threads, those of them in uninterruptible sleep
# (state D: waiting for the disk, say), and the sum of their VmRSS in KiB.
# A thread or process that ends meanwhile is skipped (cat goes on).
sample() {
	local p list=""
	for p in "$1" $(children_of "$1"); do
		list="$list /proc/$p/task/*/stat /proc/$p/status"
	done
	# shellcheck disable=SC2086 # the globs are meant
	cat $list 2>/dev/null | awk '
		/^VmRSS:/ { r += $2; next }
		/^[0-9]+ \(/ { n++; st = $0; sub(/.*\) /, "", st); if (st ~ /^D/) d++ }
		END { printf "%d %d %d\n", n, d, r }'
}
# gone PID: true once PID has exited entirely (no /proc entry, or a zombie
# whose every thread has ended: a leader can be a zombie while other threads
# of it still wait in the kernel). Shell builtins only.
gone() {
	local k v st=""
	read -r _ _ st _ 2>/dev/null <"/proc/$1/stat" || return 0
	[ "$st" = Z ] || return 1
	while read -r k v; do
		[ "$k" = Threads: ] && { [ "$v" -le 1 ]; return; }
	done 2>/dev/null <"/proc/$1/status"
	return 0
}
children_of() { cat /proc/"$1"/task/*/children 2>/dev/null; }

free_port() {
	local p lo=32768 hi=60999 base=20000 span=20000
	# Below the local (ephemeral) port range when there is room, so that
	# no client socket (10,000 of wrk's, some in TIME_WAIT) holds it;
	# and no socket at all on it, in any state.
	read -r lo hi </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null
	[ "$lo" -gt 12000 ] && { base=10000; span=$((lo - 10000)); }
	for _ in $(seq 50); do
		p=$((base + RANDOM % span))
		ss -Htan "( sport = :$p )" 2>/dev/null | grep -q . || { echo "$p"; return 0; }
	done
	return 1
}

# wait_port FILE: PORT from a "listening on 127.0.0.1:PORT" line (10 s).
wait_listening() {
	for _ in $(seq 100); do
		PORT=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$1" 2>/dev/null | head -n 1)
		[ -n "$PORT" ] && return 0
		kill -0 "$SPID" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

# start COLUMN [VARIANT]: a fresh server for that column; VARIANT nosf is
# nginx with sendfile off, k10 the set-up for the 10,000 connections (more
# connections and requests in flight, more fds). Sets SPID and PORT; 1 on
# failure.
start() {
	local s=$1 v=${2:-} log=$RAW/$1${2:+-$2}
	PORT=""
	case $s in
	objd)
		local more=()
		[ "$v" = k10 ] && more=(--max-conns "$K10_LIMIT" --max-inflight "$K10_LIMIT")
		"$OBJD" --listen 127.0.0.1:0 --threads "$OBJD_THREADS" --timeout "${DEADLINE}s" \
			--drain "${DRAIN}s" --device-limit "$OBJD_DEVICE_LIMIT" --access-log - \
			"${more[@]}" "$ROOT" >"$log.out" 2>"$log.log" &
		SPID=$!; PIDS="$PIDS $SPID"
		wait_listening "$log.out" ;;
	go)
		GOMAXPROCS=2 "$GOBIN" -listen 127.0.0.1:0 -drain "${DRAIN}s" "$ROOT" \
			>"$log.out" 2>"$log.log" &
		SPID=$!; PIDS="$PIDS $SPID"
		wait_listening "$log.out" ;;
	nginx | nginxofc)
		local pfx=$T/$s${v:+-$v} sf=on ofc="# no open_file_cache" conns=1024
		[ "$s" = nginxofc ] && { sf=$NGINX_OFC_SENDFILE; ofc=$NGINX_OFC; }
		[ "$v" = nosf ] && sf=off
		[ "$v" = k10 ] && conns=$K10_LIMIT
		PORT=$(free_port) || return 1
		mkdir -p "$pfx"
		sed -e "s|@TMP@|$pfx|g" -e "s|@PORT@|$PORT|g" -e "s|@ROOT@|$ROOT|g" \
			-e "s|@BODYTMP@|$T/nginx-body|g" -e "s|@SENDFILE@|$sf|g" \
			-e "s|@CONNS@|$conns|g" -e "s|@NOFILE@|$(ulimit -n)|g" \
			-e "s|@OPEN_FILE_CACHE@|$ofc|g" \
			"$TOP/bench/objd/nginx.conf" >"$pfx/nginx.conf"
		"$NGINX" -p "$pfx" -c "$pfx/nginx.conf" -g 'daemon off;' >"$log.out" 2>"$log.log" &
		SPID=$!; PIDS="$PIDS $SPID"
		for _ in $(seq 100); do
			curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$PORT/" && return 0
			kill -0 "$SPID" 2>/dev/null || break
			sleep 0.1
		done
		cp "$pfx/error.log" "$log.error.log" 2>/dev/null
		return 1 ;;
	esac
}

# stop PID SECONDS: SIGTERM, wait at most SECONDS; STOP_T = seconds to exit
# or "" when it did not. It is not killed here: finish ends it.
stop() {
	local p=$1 t0 n i
	t0=$(now)
	kill -TERM "$p" 2>/dev/null
	n=$(awk -v s="$2" 'BEGIN { printf "%d", s * 200 }')
	STOP_T=""
	# polled with shell builtins only (no fork between two looks)
	for ((i = 0; i < n; i++)); do
		if gone "$p"; then
			STOP_T=$(since "$t0")
			break
		fi
		read -r -t 0.005 -u 9 _
	done
	return 0
}

# reap PID: wait for a killed or stopped server (bounded), releasing stuck
# reads meanwhile when a stuck file system is up (fd 7).
reap() {
	local p=$1
	for _ in $(seq 100); do
		gone "$p" && { { wait "$p"; } 2>/dev/null; forget "$p"; return 0; }
		[ -n "${FS_UP:-}" ] && echo release >&7 2>/dev/null
		read -r -t 0.1 -u 9 _
	done
	return 1
}

# finish PID: end a server that stop sent SIGTERM. It is waited for first
# (bounded; stuck reads are released meanwhile, so that a server whose
# threads wait for the disk ends by itself, nginx's workers and Go's
# threads included); only one still there then gets SIGKILL, with its
# children, disowned first so that the shell reports no killed job. A
# process still in the kernel's hands is reaped once the disk answers.
finish() {
	local p=$1 kids
	reap "$p" && return 0
	kids=$(children_of "$p")
	echo "$(date +%T) pid $p (children: ${kids//$'\n'/ }) still there: SIGKILL" >>"$RAW/finish.log"
	disown "$p" 2>/dev/null
	kill -9 "$p" $kids 2>/dev/null
	reap "$p"
}

# ---- wrk ---------------------------------------------------------------------
# wrk_row ROW SERVER URL CONNS SECONDS [wrk args]: R[ROW/rps,SERVER] = 2xx
# responses per second, R[ROW/p99,...] in ms, R[ROW/err,...] = non-2xx +
# socket errors.
wrk_row() {
	local row=$1 s=$2 url=$3 c=$4 d=$5 f
	shift 5
	f=$RAW/wrk-$s-${row//[^a-zA-Z0-9]/_}.txt
	timeout -k 2 $((d + 15)) wrk -t2 -c"$c" -d"${d}s" --latency "$@" "$url" >"$f" 2>&1
	wrk_parse "$row" "$s" "$f"
}
# wrk_parse ROW SERVER FILE: wrk_row's figures from wrk's output in FILE;
# also WRK_N, the requests wrk counted.
wrk_parse() {
	local row=$1 s=$2 f=$3 rps="" p99="" err=0 n=""
	eval "$(awk '
	/Requests\/sec:/ { rps = $2 }
	/^ +99%/ { v = $2; u = v; sub(/[a-z]+$/, "", v); sub(/^[0-9.]+/, "", u)
		p99 = (u == "us") ? v / 1000 : (u == "ms") ? v : (u == "s") ? v * 1000 : (u == "m") ? v * 60000 : "" }
	/requests in/ { n = $1 }
	/Non-2xx or 3xx responses:/ { bad = $NF }
	/Socket errors:/ { gsub(/,/, ""); sock = $4 + $6 + $8 + $10 }
	END {
		good = (n > 0) ? rps * (n - bad) / n : 0
		printf "rps=%s p99=%s err=%d n=%s\n", (rps == "" ? "" : sprintf("%.0f", good)), p99, bad + sock, n
	}' "$f")"
	WRK_N=$n
	RAWV[$row/rps,$s]=$rps; RAWV[$row/p99,$s]=$p99; RAWV[$row/err,$s]=$err
	R[$row/rps,$s]=${rps:-fail}
	[ "$err" -gt 0 ] 2>/dev/null && R[$row/rps,$s]="$rps ($err err)"
	R[$row/p99,$s]=$( [ -n "$p99" ] && printf '%.2f ms' "$p99" || echo -)
}

# octets: OCT = the bytes IP has received so far in this network namespace
# (IpExt InOctets of /proc/net/netstat: on loopback, every byte a client or
# a server sends), OCT_T = when it was read. Shell builtins only, so the
# stamp is taken within microseconds of the read.
octets() {
	local -a names vals
	local i
	OCT=""
	while read -r -a names && read -r -a vals; do
		[ "${names[0]}" = IpExt: ] || continue
		for ((i = 1; i < ${#names[@]}; i++)); do
			[ "${names[i]}" = InOctets ] && { OCT=${vals[i]}; OCT_T=$EPOCHREALTIME; return 0; }
		done
	done </proc/net/netstat
	return 1
}
# window_rps A AT B BT BPR: requests per second between two octets
# readings, BPR bytes to a request ("" when a figure is missing).
window_rps() {
	awk -v a="$1" -v at="$2" -v b="$3" -v bt="$4" -v bpr="$5" \
		'BEGIN { if (a != "" && b != "" && bt > at && bpr > 0) printf "%.0f", (b - a) / (bt - at) / bpr }'
}

# sampler FILE PID: a sample every 100 ms into FILE (until killed).
sampler() {
	while :; do sample "$2" >>"$1"; sleep 0.1; done
}
# max_of FILE [COLUMN]: the largest number of that column (default 1).
max_of() { awk -v c="${2:-1}" '$c != "" && (m == "" || $c + 0 > m) { m = $c + 0 } END { print m }' "$1" 2>/dev/null; }

U() { echo "http://127.0.0.1:$PORT/$1"; }

# warm URL: GET URL over WARM_CONNS new connections, so that each of the
# server's workers has most likely served it once (the kernel picks the
# worker of a connection: 2 workers all get one but with odds of 2^-15):
# what a worker keeps per file (ringctx-objd's open-file cache, nginx's
# open_file_cache) is then warm for every connection of the row. Without
# it, the 10,000 connections' first requests on a cold worker all wait for
# its one open of the file, and that burst (not the connections) decided
# ringctx-objd's memory peak (bench/README.md). Prints every status other
# than 200.
WARM_CONNS=16
warm() {
	local i args=()
	for ((i = 0; i < WARM_CONNS; i++)); do args+=(-o /dev/null "$1"); done
	curl -s -H 'Connection: close' --max-time 5 -w '%{http_code}\n' "${args[@]}" | grep -v '^200$'
}

# ---- the stuck-disk episode --------------------------------------------------
# episode SERVER: with SPID/PORT up and R[get4k/...] measured.
episode() {
	local s=$1 line dir conn i smp cpids="" f t0 late_max="" late_min="" late_clock="" bpr
	FS_UP=""
	mkfifo "$T/fsctl-$s"
	"$STUCKFS" <"$T/fsctl-$s" >"$RAW/stuckfs-$s.out" 2>&1 &
	local fspid=$!
	PIDS="$PIDS $fspid"
	exec 7>"$T/fsctl-$s"
	for _ in $(seq 100); do
		line=$(head -n 1 "$RAW/stuckfs-$s.out")
		[ -n "$line" ] && break
		sleep 0.1
	done
	case $line in
	"mounted "*) dir=${line#mounted } ;;
	*) R[ep/why,$s]="stuckfs: ${line:-did not start}"; exec 7>&-; reap "$fspid"; return 1 ;;
	esac
	FS_UP=1
	conn=$(mountpoint -d "$dir" 2>/dev/null | cut -d: -f2)
	[ -n "$conn" ] && FUSE_CONNS="$FUSE_CONNS $dir=$conn"
	if [ "$(dirname "$dir")" != "$ROOT" ]; then
		R[ep/why,$s]="stuckfs mounted outside $ROOT"
	else
		[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$(U "$(basename "$dir")/data")")" = 200 ] ||
			say "objd bench: $s: the stuck file system's data file was not served"
		# Threads just before (the idle kernel workers that earlier rows
		# left are in it), then sampled from wrk's start to the end of
		# the episode.
		RAWV[thr,$s]=$(sample "$SPID" | cut -d' ' -f1)
		sampler "$RAW/threads-$s-stuck.txt" "$SPID" &
		smp=$!; PIDS="$PIDS $smp"
		# The server's own rate without and with the stuck disk, from one
		# wrk run over the same 64 connections: a window of EP_DUR s
		# before the stuck clients start and one of EP_DUR s from 0.3 s
		# after (their requests are in the server by then), the sampler
		# running in both. Each window's rate is the bytes loopback
		# carried in it (octets) over the bytes per request of the whole
		# run. Two wrk runs, or the GET 4 KiB rounds, would not do: here
		# a 2 s rate moves by up to 25% from one wrk run to the next
		# (how the connections fall on the server's threads), where the
		# windows of one run stay within a few percent (bench/README.md).
		f=$RAW/wrk-$s-ep.txt
		octets; o0=$OCT; wt=$OCT_T
		timeout -k 2 $((EP_WRK + 15)) wrk -t2 -c64 -d"${EP_WRK}s" --latency "$(U "$K/files/4k.bin")" >"$f" 2>&1 &
		wpid=$!; PIDS="$PIDS $wpid"
		read -r -t 0.3 -u 9 _
		octets; ua=$OCT; uat=$OCT_T
		read -r -t "$EP_DUR" -u 9 _
		octets; ub=$OCT; ubt=$OCT_T
		t0=$(now)
		timeout -k 1 "$(awk -v m="$CLIENT_MAX" 'BEGIN { printf "%d", m + 5 }')" \
			python3 "$TOP/bench/objd/stuck-clients.py" 127.0.0.1 "$PORT" "/$(basename "$dir")/stuck" \
			"$STUCK_CLIENTS" "$CLIENT_MAX" >"$RAW/stuck-$s.txt" 2>"$RAW/stuck-$s.log" &
		cpids=$!
		PIDS="$PIDS $cpids"
		read -r -t 0.3 -u 9 _
		octets; sa=$OCT; sat=$OCT_T
		read -r -t "$EP_DUR" -u 9 _
		octets; sb=$OCT; sbt=$OCT_T
		wait "$wpid" 2>/dev/null; forget "$wpid"
		octets; o1=$OCT
		wrk_parse ep "$s" "$f"
		# Both windows inside wrk's run, else no figure.
		if [ -n "$WRK_N" ] && [ "$WRK_N" -gt 0 ] && [ -n "$o0" ] && [ -n "$o1" ] &&
			awk -v a="$wt" -v b="$sbt" -v d="$EP_WRK" 'BEGIN { exit !(b - a < d) }'; then
			bpr=$(awk -v o="$((o1 - o0))" -v n="$WRK_N" 'BEGIN { if (o > 0) print o / n }')
			RAWV[ep/base,$s]=$(window_rps "$ua" "$uat" "$ub" "$ubt" "$bpr")
			RAWV[ep/rps,$s]=$(window_rps "$sa" "$sat" "$sb" "$sbt" "$bpr")
		else
			RAWV[ep/base,$s]=""; RAWV[ep/rps,$s]=""
		fi
		R[ep/base,$s]=${RAWV[ep/base,$s]:--}
		R[ep/rps,$s]=${RAWV[ep/rps,$s]:-fail}
		[ "${RAWV[ep/err,$s]:-0}" -gt 0 ] && R[ep/rps,$s]="${R[ep/rps,$s]} (wrk: ${RAWV[ep/err,$s]} err)"
		for i in $cpids; do wait "$i" 2>/dev/null; forget "$i"; done
		R[ep/clients_s,$s]=$(since "$t0")
		kill "$smp" 2>/dev/null; wait "$smp" 2>/dev/null; forget "$smp"
		RAWV[ep/thr,$s]=$(max_of "$RAW/threads-$s-stuck.txt" 1)
		RAWV[ep/blocked,$s]=$(max_of "$RAW/threads-$s-stuck.txt" 2)
		echo seen >&7
		sleep 0.1
		RAWV[ep/seen,$s]=$(sed -n 's/^seen //p' "$RAW/stuckfs-$s.out" | tail -n 1)
		# what the stuck clients got: "32x504 2.00-2.01 s" per status
		R[ep/got,$s]=$(awk '
			{ c = ($3 == 28) ? (($1 == "000") ? "timeout" : $1 "+timeout") : ($3 != 0) ? "error-" $3 : $1; n[c]++
			  if (!(c in lo) || $2 < lo[c]) lo[c] = $2; if ($2 > hi[c]) hi[c] = $2 }
			END { for (c in n) printf "%s%dx%s %.2f-%.2f s", (k++ ? ", " : ""), n[c], c, lo[c], hi[c] }' "$RAW/stuck-$s.txt")
		RAWV[ep/n504,$s]=$(awk '$1 == 504 && $3 == 0' "$RAW/stuck-$s.txt" | wc -l)
		# How late each 504 came: from the request's packet leaving the
		# client to the answer's first packet reaching it, both stamped by
		# the kernel (stuck-clients.py), minus the deadline. The clients'
		# start-up, connect and scheduling on a loaded machine are not in
		# it; the time the server took to read the request is.
		eval "$(awk -v d="$DEADLINE" '$1 == 504 && $3 == 0 {
			l = $4 - d
			if (!n++ || l > hi) hi = l
			if (n == 1 || l < lo) lo = l
			if ($5 != "kernel") user++
		} END { if (n) printf "late_max=%.4f late_min=%.4f late_clock=%s\n", hi, lo, user ? "user" : "kernel"
			else print "late_max= late_min= late_clock=" }' "$RAW/stuck-$s.txt")"
		RAWV[ep/late_max,$s]=$late_max; RAWV[ep/late_min,$s]=$late_min; RAWV[ep/late_clock,$s]=$late_clock
	fi
	# SIGTERM with the stuck reads still held by the kernel.
	stop "$SPID" "$SHUT_MAX"
	RAWV[shut,$s]=$STOP_T
	R[shut,$s]=$( [ -n "$STOP_T" ] && printf '%.3f s' "$STOP_T" || echo "did not exit in $SHUT_MAX s")
	finish "$SPID" || { fuse_abort "$dir" "$conn"; reap "$SPID"; } ||
		say "objd bench: $s (pid $SPID) still there after release"
	echo release >&7 2>/dev/null
	exec 7>&-
	FS_UP=""
	reap "$fspid" || {
		[ -n "$conn" ] && fuse_abort "$dir" "$conn"
		reap "$fspid"
	}
	return 0
}

# ---- one server: every row ---------------------------------------------------
run_server() {
	local s=$1 smp c
	if ! start "$s"; then
		NA[$s]="did not start (see $RAW/$s.log)"
		[ -n "${SPID:-}" ] && { disown "$SPID" 2>/dev/null; kill -9 "$SPID" 2>/dev/null; reap "$SPID"; }
		return
	fi
	c=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -T "$T/files/4k.bin" "$(U "$K/put/probe-$s")")
	case $c in
	2??) wrk_row put "$s" "$(U "$K/put/obj-$s")" 16 "$DUR" -s "$T/put.lua" ;;
	*) R[put/rps,$s]="n/a (PUT: $c)" ;;
	esac
	if [ ! -x "$STUCKFS" ]; then
		R[ep/why,$s]="no $STUCKFS"
	elif ! command -v python3 >/dev/null 2>&1; then
		R[ep/why,$s]="no python3 (the clients)"
	else
		episode "$s"
	fi
	if [ -n "${R[ep/why,$s]:-}" ]; then
		stop "$SPID" "$SHUT_MAX"
		RAWV[shut,$s]=$STOP_T
		R[shut,$s]=$( [ -n "$STOP_T" ] && printf '%.3f s' "$STOP_T" || echo "did not exit in $SHUT_MAX s")
		finish "$SPID"
	fi
	if [ "$s" = nginx ] && start nginx off; then
		wrk_row get1m_nosf nginx "$(U "$K/files/1m.bin")" 16 "$DUR"
		stop "$SPID" "$SHUT_MAX"; finish "$SPID"
	fi
}

# ---- GET 4 KiB: every column up at once, rounds interleaved -----------------
# median NUMBERS...: their median ("" for none).
median() {
	printf '%s\n' "$@" | awk '$1 != "" { v[n++] = $1 + 0 }
		END { if (!n) exit; for (i = 1; i < n; i++) for (j = i; j > 0 && v[j - 1] > v[j]; j--) { t = v[j]; v[j] = v[j - 1]; v[j - 1] = t }
		      print (n % 2) ? v[int(n / 2)] : (v[n / 2 - 1] + v[n / 2]) / 2 }'
}
# interleave ROW FILE CONNS N COLUMNS...: N rounds of ROUND_DUR s of wrk
# (CONNS connections, GETs of FILE) against the running servers of the
# COLUMNS (gport), one column after the other in each round, each round
# starting one column further on, so that every column sees the same load
# from the rest of the machine; per column the median of the rounds' rates
# and of their p99s into ROW.
interleave() {
	local row=$1 file=$2 conns=$3 n=$4 s r i rps p99 err
	shift 4
	local cols=("$@")
	for ((r = 1; r <= n; r++)); do
		for ((i = 0; i < ${#cols[@]}; i++)); do
			s=${cols[(i + r - 1) % ${#cols[@]}]}
			PORT=${gport[$s]}
			wrk_row "${row}_$r" "$s" "$(U "$K/files/$file")" "$conns" "$ROUND_DUR"
		done
	done
	for s in "${cols[@]}"; do
		rps=(); p99=(); err=0
		for ((r = 1; r <= n; r++)); do
			rps+=("${RAWV[${row}_$r/rps,$s]:-}"); p99+=("${RAWV[${row}_$r/p99,$s]:-}")
			err=$((err + ${RAWV[${row}_$r/err,$s]:-0}))
		done
		RAWV[$row/rps,$s]=$(median "${rps[@]}"); RAWV[$row/p99,$s]=$(median "${p99[@]}")
		RAWV[$row/err,$s]=$err
		R[$row/rps,$s]=${RAWV[$row/rps,$s]:-fail}
		[ "$err" -gt 0 ] && R[$row/rps,$s]="${R[$row/rps,$s]} ($err err)"
		R[$row/p99,$s]=$( [ -n "${RAWV[$row/p99,$s]}" ] && printf '%.2f ms' "${RAWV[$row/p99,$s]}" || echo -)
	done
}

# A fresh server per column, warmed; then the GET 4 KiB rounds (every
# column) and the GET 1 MiB rounds (nginx as configured, sendfile on: not
# the open_file_cache column).
get_rounds() {
	local s c cols=() big=()
	declare -A gpid gport
	for s in $SERVERS; do
		[ -n "${NA[$s]:-}" ] && continue
		if ! start "$s"; then
			NA[$s]="did not start (see $RAW/$s.log)"
			[ -n "${SPID:-}" ] && { disown "$SPID" 2>/dev/null; kill -9 "$SPID" 2>/dev/null; reap "$SPID"; }
			continue
		fi
		gpid[$s]=$SPID; gport[$s]=$PORT; cols+=("$s")
		c=$(warm "$(U "$K/files/4k.bin")")
		[ -z "$c" ] || say "objd bench: $s answered $c to GET 4 KiB"
		if [ "$s" != nginxofc ]; then
			big+=("$s")
			c=$(warm "$(U "$K/files/1m.bin")")
			[ -z "$c" ] || say "objd bench: $s answered $c to GET 1 MiB"
		fi
		RAWV[rss_std,$s]=$(sample "$SPID" | cut -d' ' -f3)	# idle, usual set-up
	done
	interleave get4k 4k.bin 64 "$ROUNDS" "${cols[@]}"
	interleave get1m 1m.bin 16 "$ROUNDS_1M" "${big[@]}"
	for s in "${cols[@]}"; do
		stop "${gpid[$s]}" "$SHUT_MAX"; finish "${gpid[$s]}"
	done
}

# ---- 10,000 keep-alive connections ---------------------------------------------
# estab PORT: server-side established TCP connections on PORT.
estab() { ss -Htn state established "( sport = :$1 )" 2>/dev/null | wc -l; }
# k10 COLUMN: a fresh server set up for them (start ... k10); wrk -c10000
# GETs the 4 KiB file; the server's RSS (sum of VmRSS over its processes)
# is sampled every 100 ms during the run, the established connections are
# counted (ss) at 50, 75 and 95 % of it. Memory per connection = (largest
# RSS sample - RSS just before, after the warm-up GETs (warm)) / most connections
# counted; and, for what a server sets aside at start for its connection
# limit (nginx: worker_connections), the same from the idle RSS of its
# usual set-up (GET 4 KiB rows) instead of the RSS just before.
k10() {
	local s=$1 f est before peak smp ssp c
	if ! start "$s" k10; then
		R[k10/rps,$s]="n/a: did not start"
		[ -n "${SPID:-}" ] && { disown "$SPID" 2>/dev/null; kill -9 "$SPID" 2>/dev/null; reap "$SPID"; }
		return
	fi
	c=$(warm "$(U "$K/files/4k.bin")")
	[ -z "$c" ] || say "objd bench: $s answered $c to GET 4 KiB (10k set-up)"
	f=$RAW/k10-$s-samples.txt; est=$RAW/k10-$s-estab.txt
	before=$(sample "$SPID" | cut -d' ' -f3)
	sampler "$f" "$SPID" &
	smp=$!; PIDS="$PIDS $smp"
	(
		for frac in 0.5 0.25 0.2; do
			sleep "$(awk -v d="$K10_DUR" -v f="$frac" 'BEGIN { print d * f }')"; estab "$PORT"
		done
	) >"$est" &
	ssp=$!; PIDS="$PIDS $ssp"
	wrk_row k10 "$s" "$(U "$K/files/4k.bin")" "$K10_CONNS" "$K10_DUR" --timeout 10s
	kill "$smp" 2>/dev/null; wait "$smp" 2>/dev/null; forget "$smp"
	wait "$ssp" 2>/dev/null; forget "$ssp"
	peak=$(max_of "$f" 3)
	RAWV[k10/conns,$s]=$(max_of "$est")
	RAWV[k10/rss0,$s]=$before; RAWV[k10/rss,$s]=$peak
	R[k10/conns,$s]=${RAWV[k10/conns,$s]:--}
	if [ -n "$peak" ] && [ -n "$before" ]; then
		R[k10/rss,$s]=$(awk -v a="$before" -v b="$peak" 'BEGIN { printf "%.1f -> %.1f MiB", a / 1024, b / 1024 }')
	fi
	if [ -n "$peak" ] && [ -n "$before" ] && [ "${RAWV[k10/conns,$s]:-0}" -gt 0 ]; then
		RAWV[k10/mem,$s]=$(awk -v a="$before" -v b="$peak" -v n="${RAWV[k10/conns,$s]}" \
			'BEGIN { printf "%.0f", (b - a) * 1024 / n }')
		R[k10/mem,$s]=$(awk -v m="${RAWV[k10/mem,$s]}" 'BEGIN { printf "%.1f KiB", m / 1024 }')
		if [ -n "${RAWV[rss_std,$s]:-}" ]; then
			RAWV[k10/mem_std,$s]=$(awk -v a="${RAWV[rss_std,$s]}" -v b="$peak" -v n="${RAWV[k10/conns,$s]}" \
				'BEGIN { printf "%.0f", (b - a) * 1024 / n }')
			R[k10/mem_std,$s]=$(awk -v m="${RAWV[k10/mem_std,$s]}" -v a="${RAWV[rss_std,$s]}" \
				'BEGIN { printf "%.1f KiB (idle %.1f MiB)", m / 1024, a / 1024 }')
		fi
	fi
	stop "$SPID" "$SHUT_MAX"; finish "$SPID"
}

say "== service: ringctx-objd vs nginx vs Go net/http ($MODE mode, wrk -t2)"
phase "GET 4 KiB and 1 MiB rounds"
get_rounds
for s in objd nginx go; do
	[ -n "${NA[$s]:-}" ] && continue
	phase "$s: rows, stuck disk"
	run_server "$s"
done
for s in $SERVERS; do
	[ -n "${NA[$s]:-}" ] && continue
	phase "$s: 10k conns"
	if [ -n "$K10_NA" ]; then
		R[k10/rps,$s]="n/a: $K10_NA"
	else
		k10 "$s"
	fi
done

phase "table"
# ---- the table ---------------------------------------------------------------
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b + 0 == 0) print ""; else printf "%.3f", a / b }'; }
for s in $SERVERS; do
	if [ -n "${RAWV[ep/rps,$s]:-}" ] && [ -n "${RAWV[ep/base,$s]:-}" ]; then
		RAWV[ep/ratio,$s]=$(ratio "${RAWV[ep/rps,$s]}" "${RAWV[ep/base,$s]}")
		R[ep/rps,$s]="${R[ep/rps,$s]} (${RAWV[ep/ratio,$s]}x)"
	fi
	[ -n "${RAWV[thr,$s]:-}" ] && R[thr,$s]="${RAWV[thr,$s]} -> ${RAWV[ep/thr,$s]:--}"
	[ -n "${RAWV[ep/blocked,$s]:-}" ] && R[ep/blocked,$s]=${RAWV[ep/blocked,$s]}
	[ -n "${RAWV[ep/seen,$s]:-}" ] && R[ep/seen,$s]=${RAWV[ep/seen,$s]}
	[ -n "${R[ep/why,$s]:-}" ] && R[ep/got,$s]="n/a: ${R[ep/why,$s]}"
done
[ "${R[put/rps,nginx]:-}" = "" ] && [ -z "${NA[nginx]:-}" ] && R[put/rps,nginx]="n/a"

ROWS="get4k/rps|GET 4 KiB, 64 conns|req/s
get4k/p99|GET 4 KiB, 64 conns, p99|ms
get1m/rps|GET 1 MiB, 16 conns (sendfile on)|req/s
get1m/p99|GET 1 MiB, 16 conns, p99|ms
get1m_nosf/rps|GET 1 MiB, 16 conns, sendfile off|req/s
get1m_nosf/p99|GET 1 MiB, sendfile off, p99|ms
put/rps|PUT 64 KiB, 16 conns (fsync: not nginx)|req/s
ep/base|stuck disk: GET 4 KiB, just before|req/s
ep/rps|stuck disk: GET 4 KiB (x own rate)|req/s
thr|stuck disk: threads before -> during (max)|threads
ep/blocked|stuck disk: threads blocked (D state), max|threads
ep/seen|stuck disk: reads seen by the FUSE fs|reads
ep/got|stuck disk: what the $STUCK_CLIENTS clients got|code
shut|SIGTERM: time to exit (stuck reads held)|s
k10/rps|10k conns: GET 4 KiB|req/s
k10/p99|10k conns: GET 4 KiB, p99|ms
k10/conns|10k conns: connections open (server side)|conns
k10/rss|10k conns: server RSS before -> max|MiB
k10/mem|10k conns: memory per connection|bytes
k10/mem_std|10k conns: memory per conn, from usual idle|bytes"

TSV=$OUT/objd.tsv
TXT=$OUT/objd.txt
{
	printf 'row\tunit\tringctx-objd\tnginx\tnginx-open_file_cache\tgo\n'
	echo "$ROWS" | while IFS='|' read -r key label unit; do
		printf '%s\t%s' "$label" "$unit"
		for s in $SERVERS; do
			v=${RAWV[$key,$s]:-${R[$key,$s]:-}}
			case $key in thr | ep/got | k10/rss) v=${R[$key,$s]:-} ;; esac
			printf '\t%s' "$v"
		done
		printf '\n'
	done
} >"$TSV"

# ---- targets -------------------------------------------------------------------
TT=$OUT/objd-targets.tsv
: >"$TT"
pass=0; miss=0; nodata=0
target() { # target DESC OK(1/0/"") SHOWN VALUE LIMIT
	local st
	case $2 in 1) st=PASS; pass=$((pass + 1)) ;; 0) st=MISS; miss=$((miss + 1)) ;; *) st=NODATA; nodata=$((nodata + 1)) ;; esac
	printf '%-7s %-58s %s\n' "$st" "$1" "$3"
	printf '%s\t%s\t%s\t%s\n' "$1" "$4" "$5" "$st" >>"$TT"
}
at_least() { # at_least DESC A B LIMIT: A/B >= LIMIT
	local r
	r=$(ratio "$2" "$3")
	if [ -z "$r" ]; then target "$1" "" "(no measurement)" "" "$4"; return; fi
	target "$1" "$(awk -v r="$r" -v l="$4" 'BEGIN { print (r >= l) ? 1 : 0 }')" "${r}x (limit ${4}x)" "$r" "$4"
}
at_most() { # at_most DESC A B LIMIT: A/B <= LIMIT
	local r
	r=$(ratio "$2" "$3")
	if [ -z "$r" ]; then target "$1" "" "(no measurement)" "" "$4"; return; fi
	target "$1" "$(awk -v r="$r" -v l="$4" 'BEGIN { print (r <= l) ? 1 : 0 }')" "${r}x (limit ${4}x)" "$r" "$4"
}
wall=$(since "$T0")
{
	at_least "GET 4 KiB >= 1.0x nginx" "${RAWV[get4k/rps,objd]:-}" "${RAWV[get4k/rps,nginx]:-}" 1.0
	at_least "GET 4 KiB >= 1.0x nginx open_file_cache" "${RAWV[get4k/rps,objd]:-}" "${RAWV[get4k/rps,nginxofc]:-}" 1.0
	at_least "GET 4 KiB >= 2x Go net/http" "${RAWV[get4k/rps,objd]:-}" "${RAWV[get4k/rps,go]:-}" 2.0
	at_most "GET 4 KiB p99 <= nginx's" "${RAWV[get4k/p99,objd]:-}" "${RAWV[get4k/p99,nginx]:-}" 1.0
	at_most "GET 4 KiB p99 <= nginx open_file_cache's" "${RAWV[get4k/p99,objd]:-}" "${RAWV[get4k/p99,nginxofc]:-}" 1.0
	at_least "GET 1 MiB >= 1.0x nginx (sendfile on)" "${RAWV[get1m/rps,objd]:-}" "${RAWV[get1m/rps,nginx]:-}" 1.0
	at_least "PUT 64 KiB >= 1.0x Go net/http (both fsync)" "${RAWV[put/rps,objd]:-}" "${RAWV[put/rps,go]:-}" 1.0
	at_least "10k conns: GET 4 KiB >= 1.0x nginx" "${RAWV[k10/rps,objd]:-}" "${RAWV[k10/rps,nginx]:-}" 1.0
	at_least "10k conns: GET 4 KiB >= 1.0x nginx open_file_cache" "${RAWV[k10/rps,objd]:-}" "${RAWV[k10/rps,nginxofc]:-}" 1.0
	at_most "10k conns: memory per connection <= nginx's" "${RAWV[k10/mem,objd]:-}" "${RAWV[k10/mem,nginx]:-}" 1.0
	at_most "10k conns: memory per conn <= nginx open_file_cache's" "${RAWV[k10/mem,objd]:-}" "${RAWV[k10/mem,nginxofc]:-}" 1.0
	at_least "stuck disk: GET 4 KiB >= 0.9x its own unstuck rate" "${RAWV[ep/rps,objd]:-}" "${RAWV[ep/base,objd]:-}" 0.9
	n=${RAWV[ep/n504,objd]:-}; l=${RAWV[ep/late_max,objd]:-}
	lo=${RAWV[ep/late_min,objd]:-}; lc=${RAWV[ep/late_clock,objd]:-}
	if [ -z "$n" ]; then
		target "stuck disk: every stuck request 504 <= 50 ms after deadline" "" "(no measurement)" "" 0.05
	else
		# In [0, 50 ms] after the deadline, counted from the request's
		# write (see the episode): all of them, none early.
		ok=$(awk -v n="$n" -v c="$STUCK_CLIENTS" -v l="$l" -v lo="$lo" \
			'BEGIN { print (n == c && l != "" && l <= 0.05 && lo >= 0) ? 1 : 0 }')
		target "stuck disk: every stuck request 504 <= 50 ms after deadline" "$ok" \
			"$(awk -v n="$n" -v c="$STUCK_CLIENTS" -v l="$l" -v lo="$lo" -v lc="$lc" -v d="$DEADLINE" 'BEGIN {
				if (l == "") { printf "%d/%d answered 504", n, c; exit }
				printf "%d/%d answered 504, %.1f-%.1f ms after the %s s deadline (request sent to answer received, %s clock)", n, c, lo * 1000, l * 1000, d, lc }')" "$l" 0.05
	fi
	# What the design lets a stuck device hold (docs/stuck-io.md,
	# lib/lane.c): every file request that may block goes through its
	# device's lane on the runtime thread, at most --device-limit of them
	# in the kernel, each holding one of the runtime thread's io-wq
	# workers; and each worker thread closes files on its own ring
	# (close_async: a FUSE flush may block), whose io-wq has at most
	# min(SQ entries, 4 x CPUs) bound workers (the kernel's default; the
	# rings have 1,024 entries). Other devices' requests find the idle
	# workers already counted before the episode.
	a=${RAWV[thr,objd]:-}; b=${RAWV[ep/thr,objd]:-}
	iowq=$((4 * CPUS)); [ "$iowq" -gt 1024 ] && iowq=1024
	lim=$((${a:-0} + OBJD_DEVICE_LIMIT + OBJD_THREADS * iowq))
	if [ -z "$a" ] || [ -z "$b" ]; then
		target "stuck disk: threads <= before + what the design allows" "" "(no measurement)" "" ""
	else
		target "stuck disk: threads <= before + what the design allows" "$([ "$b" -le "$lim" ] && echo 1 || echo 0)" \
			"$b <= $a before + $OBJD_DEVICE_LIMIT device limit + $OBJD_THREADS workers x $iowq io-wq (closes) = $lim" "$b" "$lim"
	fi
	st=${RAWV[shut,objd]:-}
	lim=$(awk -v d="$DRAIN" 'BEGIN { printf "%.3f", d + 0.1 }')
	if [ -z "${R[shut,objd]:-}" ]; then
		target "SIGTERM with stuck reads: exit <= drain + 100 ms" "" "(no measurement)" "" "$lim"
	elif [ -z "$st" ]; then
		target "SIGTERM with stuck reads: exit <= drain + 100 ms" 0 "did not exit in $SHUT_MAX s (limit $lim s)" "" "$lim"
	else
		target "SIGTERM with stuck reads: exit <= drain + 100 ms" "$(awk -v a="$st" -v l="$lim" 'BEGIN { print (a <= l) ? 1 : 0 }')" \
			"$st s (limit $lim s)" "$st" "$lim"
	fi
	target "service benchmark wall time <= $BUDGET s ($MODE mode)" \
		"$(awk -v a="$wall" -v l="$BUDGET" 'BEGIN { print (a <= l) ? 1 : 0 }')" "$wall s" "$wall" "$BUDGET"
	echo "service targets: $pass PASS, $miss MISS, $nodata NODATA"
} >"$OUT/objd-targets.txt"

{
	echo
	echo "Service: ringctx-objd vs nginx $("$NGINX" -v 2>&1 | sed -n 's|.*nginx/||p') vs Go $(command -v go >/dev/null 2>&1 && go env GOVERSION) net/http"
	echo "($MODE mode; wrk -t2 on loopback; GET 4 KiB: median of $ROUNDS interleaved rounds of $ROUND_DUR s, GET 1 MiB (sendfile on) of $ROUNDS_1M;"
	echo " other rows $DUR s,"
	echo " 10k conns $K10_DUR s (one run); 2 worker threads / processes / GOMAXPROCS each, no pinning;"
	echo " nginx open_file_cache: sendfile $NGINX_OFC_SENDFILE, $NGINX_OFC"
	echo " PUT: ringctx-objd and Go write a temporary file, fsync it, rename it, fsync the directory; nginx (dav) does not fsync;"
	echo " stuck disk: $STUCK_CLIENTS clients read a FUSE file that never answers, ringctx-objd --timeout ${DEADLINE}s --drain ${DRAIN}s"
	echo " --device-limit $OBJD_DEVICE_LIMIT; its GET 4 KiB: one wrk run of $EP_WRK s, a window of $EP_DUR s before the clients and one"
	echo " of $EP_DUR s while they wait, each counted in the bytes loopback carried)"
	printf '%-46s' ""
	for s in $SERVERS; do printf ' %-22s' "${NAME[$s]}"; done
	printf '\n'
	echo "$ROWS" | while IFS='|' read -r key label unit; do
		printf '%-46s' "$label"
		for s in $SERVERS; do
			if [ -n "${NA[$s]:-}" ]; then v="n/a"
			else v=${R[$key,$s]:--}
			fi
			printf ' %-22s' "$v"
		done
		printf '\n'
	done
	for s in $SERVERS; do [ -n "${NA[$s]:-}" ] && echo "  ${NAME[$s]}: n/a: ${NA[$s]}"; done
	echo
	echo "Service targets (ringctx-objd, this run's figures):"
	cat "$OUT/objd-targets.txt"
} | tee "$TXT"
exit 0
