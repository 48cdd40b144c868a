#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Memory per connection and throughput at many keep-alive connections:
# ringctx-objd, nginx (bench/objd/nginx.conf with its connection limits
# raised) and the Go net/http server (bench/go/objd), one after the other,
# 2 worker threads / processes / GOMAXPROCS each, GET 4 KiB with
#   wrk -t2 -c$CONNS -d${DUR}s --latency
# For each server: its resident memory (VmRSS, summed over nginx's master
# and workers) idle before the run and at the run's peak, sampled every
# 200 ms; (peak - idle) / CONNS = bytes per connection; the most
# connections seen open at once (ESTABLISHED on the server's port: CONNS
# when wrk opened them all); 2xx responses per second and p99 from wrk. ROUNDS rounds, servers in turn in each; the table
# shows medians and the ratios of the medians to nginx.
#
# Usage: bench/objd/conns.sh [BUILD_DIR]     (from anywhere)
# Environment: CONNS (10000), DUR (5), ROUNDS (3), SERVERS ("objd nginx go";
# nginxofc: nginx with open_file_cache, sendfile off, as in run.sh; objdb:
# the ringctx-objd binary OBJD_B, another version, for a same-run ratio).
# Needs wrk, curl; BUILD/ringctx-objd; nginx and go for their columns.
# Raises its open-file soft limit to the hard one (at least CONNS + 4096)
# for wrk and the servers. Every
# process started here is ended by its id; every wait is bounded.
set -u
umask 022

TOP=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${1:-build}
case $BUILD in /*) ;; *) BUILD=$TOP/$BUILD ;; esac
RAW=$BUILD/bench/conns
mkdir -p "$RAW" || exit 1
OBJD=$BUILD/ringctx-objd
CONNS=${CONNS:-10000}
DUR=${DUR:-5}
ROUNDS=${ROUNDS:-3}
SERVERS=${SERVERS:-"objd nginx go"}
NOFILE=$((CONNS + 4096))
HARD=$(ulimit -Hn)
if [ "$HARD" != unlimited ] && [ "$HARD" -ge "$NOFILE" ]; then NOFILE=$HARD; fi
PIDS=""
# nginxofc: nginx with open_file_cache, as the column of bench/objd/run.sh.
NGINX_OFC="open_file_cache max=1000 inactive=20s; open_file_cache_valid 1s; open_file_cache_min_uses 1; open_file_cache_errors on;"

say() { echo "$*" >&2; }
cleanup() {
	local p
	for p in $PIDS; do kill -9 "$p" 2>/dev/null; done
	[ -n "${T:-}" ] && rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

if ! command -v wrk >/dev/null || ! command -v curl >/dev/null || [ ! -x "$OBJD" ]; then
	say "conns benchmark skipped: needs wrk, curl and $OBJD"
	exit 0
fi
if ! ulimit -n "$NOFILE" 2>/dev/null; then
	say "conns benchmark skipped: cannot raise the open-file limit to $NOFILE"
	exit 0
fi
T=$(mktemp -d /tmp/objd-conns.XXXXXX) || exit 1
mkdir -p "$T/root"
head -c 4096 /dev/urandom >"$T/root/4k.bin"

NGINX=$(command -v nginx || { [ -x /usr/sbin/nginx ] && echo /usr/sbin/nginx; })
GOBIN=$RAW/go-objd
if command -v go >/dev/null && (cd "$TOP/bench/go" && GOCACHE="$BUILD/bench/gocache" \
	GOPATH="$BUILD/bench/gopath" GOMODCACHE="$BUILD/bench/gopath/pkg/mod" GOPROXY=off \
	GOFLAGS="" CGO_ENABLED=0 go build -o "$GOBIN" ./objd) >"$RAW/go-build.log" 2>&1; then
	:
else
	GOBIN=""
fi

# rss PID: VmRSS in KiB of PID and its children (nginx: master + workers).
rss() {
	local s=0 p v
	for p in "$1" $(cat /proc/"$1"/task/*/children 2>/dev/null); do
		v=$(awk '/^VmRSS:/ { print $2 }' /proc/"$p"/status 2>/dev/null)
		s=$((s + ${v:-0}))
	done
	echo "$s"
}
established() { ss -Htn state established "( sport = :$1 )" 2>/dev/null | wc -l; }

# start SERVER: sets SPID and PORT; 1 if it did not come up.
start() {
	local log=$RAW/$1
	PORT=$((20000 + RANDOM % 20000))
	case $1 in
	objd | objdb)
		local bin=$OBJD
		[ "$1" = objdb ] && bin=$OBJD_B
		"$bin" --listen 127.0.0.1:"$PORT" --threads 2 --max-conns $((CONNS + 1000)) \
		--max-inflight $((CONNS + 1000)) --access-log - "$T/root" >"$log.out" 2>"$log.log" & ;;
	go) GOMAXPROCS=2 "$GOBIN" -listen 127.0.0.1:"$PORT" "$T/root" >"$log.out" 2>"$log.log" & ;;
	nginx | nginxofc)
		local sf=on ofc="# no open_file_cache"
		[ "$1" = nginxofc ] && { sf=off; ofc=$NGINX_OFC; }
		mkdir -p "$T/$1"
		sed -e "s|@TMP@|$T/$1|g" -e "s|@PORT@|$PORT|g" -e "s|@ROOT@|$T/root|g" \
			-e "s|@BODYTMP@|$T/$1|g" -e "s|@SENDFILE@|$sf|g" \
			-e "s|@CONNS@|$((CONNS + 1000))|g" -e "s|@NOFILE@|$NOFILE|g" \
			-e "s|@OPEN_FILE_CACHE@|$ofc|g" \
			"$TOP/bench/objd/nginx.conf" >"$T/$1/nginx.conf"
		"$NGINX" -p "$T/$1" -c "$T/$1/nginx.conf" -g 'daemon off;' >"$log.out" 2>"$log.log" & ;;
	esac
	SPID=$!
	PIDS="$PIDS $SPID"
	for _ in $(seq 100); do
		curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$PORT/4k.bin" && return 0
		kill -0 "$SPID" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

stop() {
	kill -TERM "$SPID" 2>/dev/null
	for _ in $(seq 100); do kill -0 "$SPID" 2>/dev/null || break; sleep 0.1; done
	kill -9 "$SPID" 2>/dev/null
	wait "$SPID" 2>/dev/null
}

# one SERVER ROUND: prints "rps p99_ms idle_kib peak_kib conns"
one() {
	local s=$1 f=$RAW/wrk-$1-$2.txt idle peak=0 at=0 n wp r
	start "$s" || { say "$s did not start (see $RAW/$s.log)"; stop; return 1; }
	sleep 0.5
	idle=$(rss "$SPID")
	timeout -k 2 $((DUR + 30)) wrk -t2 -c"$CONNS" -d"${DUR}s" --latency \
		"http://127.0.0.1:$PORT/4k.bin" >"$f" 2>&1 &
	wp=$!
	PIDS="$PIDS $wp"
	while kill -0 "$wp" 2>/dev/null; do
		r=$(rss "$SPID")
		[ "$r" -gt "$peak" ] && peak=$r
		n=$(established "$PORT")
		[ "$n" -gt "$at" ] && at=$n
		sleep 0.2
	done
	wait "$wp"
	stop
	awk -v idle="$idle" -v peak="$peak" -v at="$at" '
		/Requests\/sec:/ { rps = $2 }
		/requests in/ { n = $1 }
		/Non-2xx or 3xx responses:/ { bad = $NF }
		/^ +99%/ { v = $2; u = v; sub(/[a-z]+$/, "", v); sub(/^[0-9.]+/, "", u)
			p99 = (u == "us") ? v / 1000 : (u == "ms") ? v : (u == "s") ? v * 1000 : v * 60000 }
		END { good = (n > 0) ? rps * (n - bad) / n : 0; printf "%.0f %s %d %d %d\n", good, p99, idle, peak, at }' "$f"
}

for s in $SERVERS; do
	case $s in
	nginx | nginxofc) [ -n "$NGINX" ] || { say "$s: nginx not installed"; SERVERS=${SERVERS/$s/}; } ;;
	objdb) [ -x "${OBJD_B:-}" ] || { say "objdb: OBJD_B is not an executable"; SERVERS=${SERVERS/objdb/}; } ;;
	go) [ -n "$GOBIN" ] || { say "go: not built (see $RAW/go-build.log)"; SERVERS=${SERVERS/go/}; } ;;
	esac
done
: >"$RAW/rounds.txt"
for r in $(seq "$ROUNDS"); do
	for s in $SERVERS; do
		v=$(one "$s" "$r") && echo "$s $v" | tee -a "$RAW/rounds.txt" >&2
	done
done

echo
echo "Keep-alive connections: $CONNS, GET 4 KiB, wrk -t2 -d${DUR}s, $ROUNDS round(s), medians"
awk -v conns="$CONNS" '
function median(a, n,   i, j, t) {
	for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
	return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
{ s = $1; n[s]++; k = n[s]
  rps[s, k] = $2; p99[s, k] = $3; idle[s, k] = $4; peak[s, k] = $5; at[s, k] = $6
  per[s, k] = ($5 - $4) * 1024 / conns
  if (!(s in seen)) { seen[s] = 1; order[++ns] = s } }
END {
	printf "%-14s %10s %10s %12s %10s %10s %10s %8s\n", "server", "idle KiB", "peak KiB", "B/conn", "conns", "req/s", "p99 ms", "B/conn"
	printf "%-14s %10s %10s %12s %10s %10s %10s %8s\n", "", "", "", "", "(most)", "", "", "/nginx"
	for (i = 1; i <= ns; i++) {
		s = order[i]
		for (k = 1; k <= n[s]; k++) { a1[k] = idle[s, k]; a2[k] = peak[s, k]; a3[k] = per[s, k]; a4[k] = at[s, k]; a5[k] = rps[s, k]; a6[k] = p99[s, k] }
		m1[s] = median(a1, n[s]); m2[s] = median(a2, n[s]); m3[s] = median(a3, n[s])
		m4[s] = median(a4, n[s]); m5[s] = median(a5, n[s]); m6[s] = median(a6, n[s])
	}
	for (i = 1; i <= ns; i++) {
		s = order[i]
		r = ("nginx" in m3 && m3["nginx"] > 0) ? sprintf("%.2fx", m3[s] / m3["nginx"]) : "-"
		printf "%-14s %10d %10d %12.0f %10d %10.0f %10.2f %8s\n", s, m1[s], m2[s], m3[s], m4[s], m5[s], m6[s], r
	}
	if ("nginx" in m5 && m5["nginx"] > 0)
		for (i = 1; i <= ns; i++)
			printf "  %s req/s / nginx: %.2fx\n", order[i], m5[order[i]] / m5["nginx"]
	if ("nginxofc" in m5 && m5["nginxofc"] > 0 && m3["nginxofc"] > 0)
		for (i = 1; i <= ns; i++)
			printf "  %s / nginxofc: req/s %.3fx, B/conn %.3fx\n", order[i],
				m5[order[i]] / m5["nginxofc"], m3[order[i]] / m3["nginxofc"]
}' "$RAW/rounds.txt"
exit 0
