#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Per-request cost of GET 4 KiB: system calls (strace -c -f, attached to the
# running server after a warm-up) and, for ringctx-objd, io_uring requests
# (/debug/stats rings.submitted before and after), over N GETs of one 4 KiB
# file on one keep-alive connection. Counts, not times: they do not depend
# on the machine's load.
#
# Usage: bench/objd/cost.sh [BUILD_DIR_OR_OBJD_BINARY] [N]   (N: 1000)
# Needs strace, python3, nginx (optional: its column is skipped without it).
# Prints "server syscalls/GET io_uring-requests/GET" and strace's tables
# (kept in BUILD/bench/objd/cost-*.txt).
set -u
TOP=$(cd "$(dirname "$0")/../.." && pwd)
ARG=${1:-build}
N=${2:-1000}
case $ARG in /*) ;; *) ARG=$TOP/$ARG ;; esac
if [ -f "$ARG" ]; then OBJD=$ARG; RAW=$TOP/build/bench/objd
else OBJD=$ARG/ringctx-objd; RAW=$ARG/bench/objd
fi
mkdir -p "$RAW" || exit 1
PIDS=""
T=$(mktemp -d /tmp/objd-cost.XXXXXX) || exit 1
cleanup() {
	local p
	for p in $PIDS; do kill -9 "$p" 2>/dev/null; done
	rm -rf "$T"
}
trap cleanup EXIT
head -c 4096 /dev/urandom >"$T/4k.bin"

# gets PORT N: N GETs of /4k.bin on one keep-alive connection.
gets() {
	timeout 60 python3 - "$1" "$2" <<'EOF'
import socket, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
s = socket.create_connection(("127.0.0.1", port))
req = b"GET /4k.bin HTTP/1.1\r\nHost: x\r\n\r\n"
buf = b""
for _ in range(n):
    s.sendall(req)
    while b"\r\n\r\n" not in buf:
        buf += s.recv(65536)
    head, _, buf = buf.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head[:40]
    cl = [int(l.split(b":")[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")][0]
    while len(buf) < cl:
        buf += s.recv(65536)
    buf = buf[cl:]
s.close()
EOF
}

submitted() {
	curl -s --max-time 5 "http://127.0.0.1:$1/debug/stats" |
		python3 -c 'import json,sys; print(json.load(sys.stdin)["rings"]["submitted"])'
}

# traced NAME PORT PID...: strace -c -f attached to PIDs over N GETs.
traced() {
	local name=$1 port=$2 sp p args=""
	shift 2
	gets "$port" 200 || return 1	# warm-up: page cache, caches
	for p in "$@"; do args="$args -p $p"; done
	# shellcheck disable=SC2086
	strace -c -f -o "$RAW/cost-$name.txt" $args 2>/dev/null &
	sp=$!
	sleep 1
	gets "$port" "$N" || { kill -INT "$sp"; return 1; }
	sleep 0.3
	kill -INT "$sp"
	wait "$sp"
	awk -v n="$N" '$NF == "total" { printf "%.2f", $4 / n }' "$RAW/cost-$name.txt"
}

port_of() { sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$1"; }

# ---- ringctx-objd ------------------------------------------------------------
"$OBJD" --listen 127.0.0.1:0 --threads 2 --access-log - "$T" >"$T/objd.out" 2>"$T/objd.log" &
OPID=$!; PIDS="$PIDS $OPID"
for _ in $(seq 100); do PORT=$(port_of "$T/objd.out"); [ -n "$PORT" ] && break; sleep 0.1; done
[ -n "$PORT" ] || { echo "ringctx-objd did not start"; exit 1; }
gets "$PORT" 200
a=$(submitted "$PORT")
gets "$PORT" "$N"
b=$(submitted "$PORT")
# /debug/stats is itself one request: its recv and send are counted in b.
uring=$(awk -v a="$a" -v b="$b" -v n="$N" 'BEGIN { printf "%.2f", (b - a - 2) / n }')
sys=$(traced objd "$PORT" $(ls /proc/"$OPID"/task))
kill -TERM "$OPID"; wait "$OPID" 2>/dev/null
printf '%-14s %8s syscalls/GET %8s io_uring requests/GET\n' ringctx-objd "$sys" "$uring"

# ---- nginx -------------------------------------------------------------------
NGINX=$(command -v nginx || { [ -x /usr/sbin/nginx ] && echo /usr/sbin/nginx; })
# nginx as configured in nginx.conf (sendfile on), and nginxofc: with
# open_file_cache (sendfile off), the column of bench/objd/run.sh.
OFC="open_file_cache max=1000 inactive=20s; open_file_cache_valid 1s; open_file_cache_min_uses 1; open_file_cache_errors on;"
for ng in nginx nginxofc; do
	[ -n "$NGINX" ] || break
	sf=on; ofc="# no open_file_cache"
	[ "$ng" = nginxofc ] && { sf=off; ofc=$OFC; }
	for _ in $(seq 50); do
		NP=$((20000 + RANDOM % 20000))
		ss -Hltn "sport = :$NP" 2>/dev/null | grep -q . || break
	done
	mkdir -p "$T/$ng"
	sed -e "s|@TMP@|$T/$ng|g" -e "s|@PORT@|$NP|g" -e "s|@ROOT@|$T|g" \
		-e "s|@BODYTMP@|$T/$ng|g" -e "s|@SENDFILE@|$sf|g" -e "s|@CONNS@|1024|g" \
		-e "s|@NOFILE@|$(ulimit -n)|g" -e "s|@OPEN_FILE_CACHE@|$ofc|g" \
		"$TOP/bench/objd/nginx.conf" >"$T/$ng/nginx.conf"
	"$NGINX" -p "$T/$ng" -c "$T/$ng/nginx.conf" -g 'daemon off;' >/dev/null 2>&1 &
	NPID=$!; PIDS="$PIDS $NPID"
	for _ in $(seq 50); do curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$NP/4k.bin" && break; sleep 0.1; done
	kill -0 "$NPID" 2>/dev/null || { echo "$ng did not start:"; cat "$T/$ng/error.log"; exit 1; }
	sys=$(traced "$ng" "$NP" $(cat /proc/"$NPID"/task/*/children))
	kill -TERM "$NPID"; wait "$NPID" 2>/dev/null
	printf '%-14s %8s syscalls/GET %8s io_uring requests/GET\n' "$ng" "$sys" 0
done
for f in "$RAW"/cost-objd.txt "$RAW"/cost-nginx.txt "$RAW"/cost-nginxofc.txt; do
	[ -f "$f" ] && { echo "== $f"; head -n 30 "$f"; }
done
exit 0
