#!/bin/bash
# SPDX-License-Identifier: MIT
#
# One row of the service benchmark alone, quickly: GET 4 KiB on keep-alive
# connections, ringctx-objd against nginx with open_file_cache (the
# settings of bench/objd/run.sh: 2 worker threads / processes, objd with
# --access-log - as there), with
#   wrk -t2 -c$CONNS -d${DUR}s --latency
# The two servers run side by side for the whole run and are measured in
# turn, ROUNDS rounds; prints each round, the medians and the same-run
# ratios objd / nginx: req/s, and the servers' CPU time per response (user +
# system, from /proc: less sensitive than req/s to other load on the host).
#
# Usage: bench/objd/get4k.sh [BUILD_DIR]     (from anywhere)
# Environment: CONNS (64), DUR (2), ROUNDS (3), OBJD_ARGS (more options for
# ringctx-objd), OBJD_B (another ringctx-objd binary, measured in the same
# rounds as a third column, "objd-b", with OBJD_ARGS too; OBJD_B_ENV: its
# environment, as NAME=VALUE words). Needs wrk, curl, nginx; BUILD/ringctx-objd. Every process
# started here is ended by its id; every wait is bounded.
set -u
umask 022

TOP=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${1:-build}
case $BUILD in /*) ;; *) BUILD=$TOP/$BUILD ;; esac
OBJD=$BUILD/ringctx-objd
CONNS=${CONNS:-64}
DUR=${DUR:-2}
ROUNDS=${ROUNDS:-3}
PIDS=""

say() { echo "$*" >&2; }
# cleanup: SIGTERM first (nginx's master then ends its workers; a SIGKILL
# would leave them behind), SIGKILL what is still there after 10 s.
cleanup() {
	local p
	for p in $PIDS; do kill -TERM "$p" 2>/dev/null; done
	for p in $PIDS; do
		for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	[ -n "${T:-}" ] && rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

NGINX=$(command -v nginx || { [ -x /usr/sbin/nginx ] && echo /usr/sbin/nginx; })
if ! command -v wrk >/dev/null || ! command -v curl >/dev/null || [ ! -x "$OBJD" ] || [ -z "$NGINX" ]; then
	say "get4k benchmark skipped: needs wrk, curl, nginx and $OBJD"
	exit 0
fi
ulimit -n $((CONNS + 4096)) 2>/dev/null
T=$(mktemp -d /tmp/objd-get4k.XXXXXX) || exit 1
mkdir -p "$T/root" "$T/nginx"
head -c 4096 /dev/urandom >"$T/root/4k.bin"

# port FILE: the port of a "listening on 127.0.0.1:PORT" line (10 s).
port() {
	local p
	for _ in $(seq 100); do
		p=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$1" 2>/dev/null)
		[ -n "$p" ] && { echo "$p"; return 0; }
		sleep 0.1
	done
	return 1
}

# up PORT PID: the server answers (10 s), else 1.
up() {
	for _ in $(seq 100); do
		curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$1/4k.bin" && return 0
		kill -0 "$2" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

# shellcheck disable=SC2086 # OBJD_ARGS is a list of options
"$OBJD" --listen 127.0.0.1:0 --threads 2 --device-limit 8 --access-log - \
	${OBJD_ARGS:-} "$T/root" >"$T/objd.out" 2>"$T/objd.log" &
OPID=$!; PIDS="$PIDS $OPID"
if [ -n "${OBJD_B:-}" ]; then
	# shellcheck disable=SC2086 # word lists
	env ${OBJD_B_ENV:-} "$OBJD_B" --listen 127.0.0.1:0 --threads 2 --device-limit 8 \
		--access-log - ${OBJD_ARGS:-} "$T/root" >"$T/objdb.out" 2>"$T/objdb.log" &
	BPID=$!; PIDS="$PIDS $BPID"
fi
# nginx's port: below the local port range (no client socket of wrk's
# holds it), and free.
for _ in $(seq 50); do
	NPORT=$((10000 + RANDOM % 20000))
	ss -Htan "( sport = :$NPORT )" 2>/dev/null | grep -q . || break
done
sed -e "s|@TMP@|$T/nginx|g" -e "s|@PORT@|$NPORT|g" -e "s|@ROOT@|$T/root|g" \
	-e "s|@BODYTMP@|$T/nginx|g" -e "s|@SENDFILE@|off|g" -e "s|@CONNS@|$((CONNS + 1000))|g" \
	-e "s|@NOFILE@|$((CONNS + 4096))|g" \
	-e "s|@OPEN_FILE_CACHE@|open_file_cache max=1000 inactive=20s; open_file_cache_valid 1s; open_file_cache_min_uses 1; open_file_cache_errors on;|" \
	"$TOP/bench/objd/nginx.conf" >"$T/nginx/nginx.conf"
"$NGINX" -p "$T/nginx" -c "$T/nginx/nginx.conf" -g 'daemon off;' >"$T/nginx.out" 2>"$T/nginx.log" &
NPID=$!; PIDS="$PIDS $NPID"
OPORT=$(port "$T/objd.out")
up "$OPORT" "$OPID" || { say "ringctx-objd did not start"; cat "$T/objd.log" >&2; exit 1; }
up "$NPORT" "$NPID" || { say "nginx did not start"; cat "$T/nginx.log" >&2; exit 1; }
[ -z "${OBJD_B:-}" ] || { BPORT=$(port "$T/objdb.out") && up "$BPORT" "$BPID"; } || { say "$OBJD_B did not start"; cat "$T/objdb.log" >&2; exit 1; }

# cpu PID: CPU time (user + system, clock ticks) of PID and its children
# (nginx: master + workers), threads included.
cpu() {
	local p t=0
	for p in "$1" $(cat /proc/"$1"/task/*/children 2>/dev/null); do
		t=$((t + $(awk '{ sub(/.*\) /, ""); print $12 + $13 }' /proc/"$p"/stat 2>/dev/null || echo 0)))
	done
	echo "$t"
}

# wrk_rps PORT PID: 2xx responses per second, p99 (ms) and the server's CPU
# time per response (us) of one run.
wrk_rps() {
	local c0 c1
	c0=$(cpu "$2")
	timeout -k 2 $((DUR + 15)) wrk -t2 -c"$CONNS" -d"${DUR}s" --latency \
		"http://127.0.0.1:$1/4k.bin" >"$T/wrk.txt" 2>&1
	c1=$(cpu "$2")
	awk -v ticks=$((c1 - c0)) -v hz="$(getconf CLK_TCK)" '
		/Requests\/sec:/ { rps = $2 }
		/requests in/ { n = $1 }
		/Non-2xx or 3xx responses:/ { bad = $NF }
		/^ +99%/ { v = $2; u = v; sub(/[a-z]+$/, "", v); sub(/^[0-9.]+/, "", u)
			p99 = (u == "us") ? v / 1000 : (u == "ms") ? v : (u == "s") ? v * 1000 : v * 60000 }
		END { good = (n > 0) ? rps * (n - bad) / n : 0
			printf "%.0f %.3f %.2f\n", good, p99, (n > 0) ? ticks / hz * 1e6 / n : 0 }' "$T/wrk.txt"
}

: >"$T/rounds"
for r in $(seq "$ROUNDS"); do
	echo "objd $(wrk_rps "$OPORT" "$OPID")" >>"$T/rounds"
	[ -z "${OBJD_B:-}" ] || echo "objd-b $(wrk_rps "$BPORT" "$BPID")" >>"$T/rounds"
	echo "nginxofc $(wrk_rps "$NPORT" "$NPID")" >>"$T/rounds"
	tail -n "$([ -n "${OBJD_B:-}" ] && echo 3 || echo 2)" "$T/rounds" | sed "s/^/round $r: /"
done
echo "GET 4 KiB, $CONNS connections, wrk -t2 -d${DUR}s, $ROUNDS round(s) in turn, medians"
awk '
function median(a, n,   i, j, t) {
	for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
	return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
{ s = $1; k = ++n[s]; rps[s, k] = $2; p99[s, k] = $3; us[s, k] = $4
  if (!(s in seen)) { seen[s] = 1; order[++ns] = s } }
END {
	name["objd"] = "ringctx-objd"; name["objd-b"] = "ringctx-objd (b)"
	name["nginxofc"] = "nginx open_file_cache"
	for (i = 1; i <= ns; i++) {
		s = order[i]
		for (k = 1; k <= n[s]; k++) { a1[k] = rps[s, k]; a2[k] = p99[s, k]; a3[k] = us[s, k]
			a4[k] = rps["nginxofc", k] > 0 ? rps[s, k] / rps["nginxofc", k] : 0
			a5[k] = us["nginxofc", k] > 0 ? us[s, k] / us["nginxofc", k] : 0 }
		m1[s] = median(a1, n[s]); m2[s] = median(a2, n[s]); m3[s] = median(a3, n[s])
		m4[s] = median(a4, n[s]); m5[s] = median(a5, n[s])
	}
	printf "%-24s %10s %10s %11s %14s %14s\n", "server", "req/s", "p99 ms", "CPU us/req", "req/s /nginx", "CPU /nginx"
	for (i = 1; i <= ns; i++) {
		s = order[i]
		printf "%-24s %10.0f %10.3f %11.2f %13.3fx %13.3fx\n", name[s], m1[s], m2[s], m3[s], m4[s], m5[s]
	}
	print "(the ratios: medians of each round\x27s ratio to nginx open_file_cache)"
}' "$T/rounds"
exit 0
