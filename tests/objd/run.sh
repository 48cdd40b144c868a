#!/bin/bash
# Description: ringctx-objd end to end with real clients (curl, and raw bytes
# through bash's /dev/tcp): round trips with checksums, Range, chunked
# bodies, ETag, Last-Modified and conditional requests (304, 412), the error
# statuses and limits, path escapes, keep-alive and pipelining (random
# pipelines against one request per connection: pipeline.py), HTTP/1.0
# keep-alive (and ApacheBench), a head that trickles (408), a client that
# leaves mid-download (its hang-up cancels its I/O), concurrent PUTs of one
# key under GETs, kill -9 during a PUT, SIGTERM with a request in flight (the
# signal context), grpc-timeout, traceparent and X-Trace-ID, the access
# log's trace id and cause.
# Every wait is bounded; nothing assumes a fast machine.
# With a stuck disk (support/stuckfs, FUSE): 504 at the deadline while the
# kernel still holds the read, other requests served meanwhile, threads bounded,
# grpc-timeout shortening the deadline, /debug/contexts with a pending read,
# a hang-up ending a stuck request, 503 beyond --max-inflight, GETs of one
# key waiting for its one open in flight (and SIGTERM then); and the same
# stuck-disk checks with the root on an overlay mount, on a bind mount, and
# in a chroot in a private mount namespace whose mountinfo lists only its own
# mounts (each skipped, with its reason, where it cannot be made).
# Usage: tests/objd/run.sh BUILD/ringctx-objd [BUILD/objd-stuckfs]
set -u
OBJD=$(readlink -f "$1")
STUCKFS=${2:+$(readlink -f "$2")}
T=$(mktemp -d /tmp/objd-test.XXXXXX)
pass=0; fail=0; skip=0
PIDS=""

MOUNTS=""	# mount points made here, the last made first

cleanup() {
	for p in $PIDS; do kill -9 "$p" 2>/dev/null; done
	wait 2>/dev/null
	for m in $MOUNTS; do umount -l "$m" 2>/dev/null; done
	# Never delete through a mount that is still there.
	if grep -q " $T/" /proc/self/mountinfo; then
		echo "objd: mounts left under $T, not removed:"; grep " $T/" /proc/self/mountinfo
	else
		rm -rf "$T"
	fi
}
trap cleanup EXIT

ok()  { pass=$((pass + 1)); echo "  ok: $1"; }
bad() { fail=$((fail + 1)); echo "  FAILED: $1"; }
check() { # check NAME COMMAND...: passes if COMMAND succeeds
	local name=$1; shift
	if "$@"; then ok "$name"; else bad "$name"; fi
}
sha() { sha256sum "$1" | cut -d' ' -f1; }

# start NAME ROOT ARGS...: run a server, set PORT and SPID.
start() {
	local name=$1 root=$2; shift 2
	mkdir -p "$root"
	launch "$name" "$OBJD" --listen 127.0.0.1:0 --threads 2 "$@" "$root"
}
# launch NAME COMMAND...: run COMMAND (a server that becomes this process,
# by exec), set PORT and SPID.
launch() {
	local name=$1; shift
	"$@" >"$T/$name.out" 2>"$T/$name.log" &
	SPID=$!
	PIDS="$PIDS $SPID"
	for _ in $(seq 100); do
		PORT=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$T/$name.out" 2>/dev/null)
		[ -n "$PORT" ] && return 0
		sleep 0.1
	done
	echo "server $name did not start"; cat "$T/$name.log"; exit 1
}

# stop_wait PID SECONDS: wait for PID to exit; its status in RC (124: no exit).
wait_exit() {
	local p=$1 n=$(($2 * 10))
	RC=124
	for _ in $(seq "$n"); do
		if ! kill -0 "$p" 2>/dev/null; then wait "$p"; RC=$?; return 0; fi
		sleep 0.1
	done
	return 1
}

# raw DATA: send DATA (printf %b escapes) on a new connection, print the reply
# until the server closes (bounded).
raw() {
	timeout 15 bash -c 'exec 3<>/dev/tcp/127.0.0.1/$0 || exit 1; printf "%b" "$1" >&3; cat <&3' \
		"$PORT" "$1"
}
status_of() { head -n 1 | tr -d '\r' | cut -d' ' -f2; }
# code ARGS...: the status of a curl request (body to $OUT or /dev/null).
code() { curl -sS -o "${OUT:-/dev/null}" -w '%{http_code}' --max-time 30 "$@"; }

U() { echo "http://127.0.0.1:$PORT/$1"; }

# ---- main server --------------------------------------------------------
R=$T/root
start main "$R" --header-timeout 1s --max-body 64M --timeout 20s
echo "objd: server on port $PORT"

# Round trips of random sizes.
for size in 0 1 4095 65536 65537 1000003 3000000; do
	head -c "$size" /dev/urandom >"$T/in"
	k="dir$size/obj$size"
	mkdir -p "$R/dir$size"
	c1=$(code -T "$T/in" "$(U "$k")")
	c2=$(OUT=$T/out code "$(U "$k")")
	len=$(curl -sSI --max-time 30 "$(U "$k")" | tr -d '\r' | sed -n 's/^Content-Length: //p')
	c3=$(code -T "$T/in" "$(U "$k")")
	c4=$(code -X DELETE "$(U "$k")")
	c5=$(code "$(U "$k")")
	c6=$(code -X DELETE "$(U "$k")")
	check "round trip $size bytes: PUT 201, GET 200 same sha256, HEAD length, PUT again 204, DELETE 204, then 404" \
		[ "$c1 $c2 $c3 $c4 $c5 $c6 $len" = "201 200 204 204 404 404 $size" -a "$(sha "$T/in")" = "$(sha "$T/out")" ]
done
check "no temporary file left behind" [ -z "$(find "$R" -name '.objd-tmp.*')" ]

# Range.
head -c 100000 /dev/urandom >"$T/r"
curl -sS -o /dev/null -T "$T/r" "$(U ranged)"
c=$(OUT=$T/rp code -r 10-19 "$(U ranged)")
check "Range a-b: 206 and the right bytes" [ "$c" = 206 -a "$(sha "$T/rp")" = "$(head -c 20 "$T/r" | tail -c 10 | sha256sum | cut -d' ' -f1)" ]
c=$(OUT=$T/rp code -r -5 "$(U ranged)")
check "Range -n: 206, the last n bytes" [ "$c" = 206 -a "$(sha "$T/rp")" = "$(tail -c 5 "$T/r" | sha256sum | cut -d' ' -f1)" ]
c=$(OUT=$T/rp code -r 99990- "$(U ranged)")
check "Range a-: 206, from a to the end" [ "$c" = 206 -a "$(stat -c %s "$T/rp")" = 10 ]
cr=$(curl -sS -D - -o /dev/null -r 10-19 "$(U ranged)" | tr -d '\r' | sed -n 's/^Content-Range: //p')
check "Content-Range header" [ "$cr" = "bytes 10-19/100000" ]
check "Range past the end: 416" [ "$(code -r 100000- "$(U ranged)")" = 416 ]

# Chunked request bodies (curl -T - sends Transfer-Encoding: chunked).
head -c 1000003 /dev/urandom >"$T/chunked"
c1=$(code -T - "$(U chunked)" <"$T/chunked")
c2=$(code -T - "$(U chunked)" <"$T/chunked")
check "chunked PUT (curl -T -): 201, then 204, the same sha256" \
	[ "$c1 $c2" = "201 204" -a "$(sha "$R/chunked")" = "$(sha "$T/chunked")" ]
r=$(raw 'PUT /chunked2 HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\nGET /chunked2 HTTP/1.1\r\nConnection: close\r\n\r\n' |
	tr -d '\r' | grep '^HTTP/\|^hello' | tr '\n' ' ')
check "chunked body with an extension and a trailer, then a pipelined GET: 201, 200 'hello world'" \
	[ "$r" = "HTTP/1.1 201 Created HTTP/1.1 200 OK hello world " ]
check "chunked body with a bad chunk size: 400, no object" \
	[ "$(raw 'PUT /chunked3 HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n' | status_of)" = 400 -a ! -e "$R/chunked3" ]
check "chunk data not followed by CRLF: 400, no object" \
	[ "$(raw 'PUT /chunked3 HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n' | status_of)" = 400 -a ! -e "$R/chunked3" ]
check "Transfer-Encoding: gzip, chunked: 501; gzip alone: 400" \
	[ "$(raw 'PUT /te HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n' | status_of) $(raw 'PUT /te HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n' | status_of)" = "501 400" ]
check "Transfer-Encoding in HTTP/1.0: 400" \
	[ "$(raw 'PUT /te HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n' | status_of)" = 400 ]
# A client that leaves mid-body: no object, no temporary file.
timeout 10 bash -c 'exec 3<>/dev/tcp/127.0.0.1/$0; printf "PUT /chunked4 HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n100\r\nabc" >&3; sleep 0.5' "$PORT"
gone=no
for _ in $(seq 50); do
	grep -q '^PUT /chunked4 499 .*cause=client-gone$' "$T/main.log" && { gone=yes; break; }
	sleep 0.1
done
check "chunked PUT cut short by the client: logged client-gone, no object, no temporary file" \
	[ $gone = yes -a ! -e "$R/chunked4" -a -z "$(find "$R" -name '.objd-tmp.*')" ]
# --max-body holds for a chunked body too (a server with a small limit).
mport=$PORT mpid=$SPID
start small "$T/root-small" --max-body 100000
head -c 100000 /dev/urandom >"$T/c100k"
head -c 100001 /dev/urandom >"$T/c100k1"
c1=$(code -T - "$(U fits)" <"$T/c100k")
c2=$(code -T - "$(U over)" <"$T/c100k1")
check "chunked PUT of --max-body bytes: 201; one byte more: 413, no object, no temporary file" \
	[ "$c1 $c2" = "201 413" -a "$(sha "$T/root-small/fits")" = "$(sha "$T/c100k")" -a ! -e "$T/root-small/over" -a \
	  -z "$(find "$T/root-small" -name '.objd-tmp.*')" ]
kill -TERM "$SPID"; wait_exit "$SPID" 30
PORT=$mport SPID=$mpid

# Validators and conditional requests (RFC 9110 8.8, 13).
hdr() { # hdr NAME CURL-ARGS...: that response header's value
	local name=$1; shift
	curl -sS -D - -o /dev/null --max-time 30 "$@" | tr -d '\r' | sed -n "s/^$name: //p"
}
printf 'conditional\n' >"$T/cond"
curl -sS -o /dev/null -T "$T/cond" "$(U cond)"
et=$(hdr ETag "$(U cond)")
lm=$(hdr Last-Modified "$(U cond)")
ns=$(stat -c %.9Y "$R/cond" | tr -d .)
want_et=$(printf '"%x-%x"' "$ns" 12)
want_lm=$(LC_ALL=C date -u -d "@${ns%?????????}" '+%a, %d %b %Y %H:%M:%S GMT')
check "GET: ETag of mtime (ns) and size, quoted ($et)" [ "$et" = "$want_et" ]
check "GET: Last-Modified is the mtime ($lm)" [ "$lm" = "$want_lm" ]
check "GET and HEAD: Accept-Ranges: bytes" \
	[ "$(hdr Accept-Ranges "$(U cond)")" = bytes -a "$(hdr Accept-Ranges -I "$(U cond)")" = bytes ]
check "HEAD: the same ETag and Last-Modified" \
	[ "$(hdr ETag -I "$(U cond)")" = "$et" -a "$(hdr Last-Modified -I "$(U cond)")" = "$lm" ]
r=$(curl -sS -D - -o "$T/c304" -w '%{http_code} %{size_download}' -H "If-None-Match: $et" "$(U cond)" | tr -d '\r')
check "If-None-Match with the ETag: 304, no body, ETag sent" \
	[ "$(echo "$r" | tail -n 1)" = "304 0" -a -n "$(echo "$r" | grep -x "ETag: $et")" ]
check "If-None-Match: a list holding it, and W/ (weak comparison): 304" \
	[ "$(code -H "If-None-Match: \"x\", $et" "$(U cond)") $(code -H "If-None-Match: W/$et" "$(U cond)")" = "304 304" ]
check "If-None-Match: another ETag: 200" [ "$(code -H 'If-None-Match: "x"' "$(U cond)")" = 200 ]
check "HEAD with If-None-Match: 304" [ "$(code -I -H "If-None-Match: $et" "$(U cond)")" = 304 ]
check "If-Modified-Since the Last-Modified (curl -z): 304" [ "$(code -z "$lm" "$(U cond)")" = 304 ]
check "If-Modified-Since 1994: 200; an invalid date: ignored, 200" \
	[ "$(code -H 'If-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT' "$(U cond)") $(code -H 'If-Modified-Since: yesterday' "$(U cond)")" = "200 200" ]
check "If-None-Match wins over If-Modified-Since: 200" \
	[ "$(code -H 'If-None-Match: "x"' -H "If-Modified-Since: $lm" "$(U cond)")" = 200 ]
check "If-Range with the ETag: 206; another: 200, the whole object" \
	[ "$(code -r 0-1 -H "If-Range: $et" "$(U cond)") $(OUT=$T/cr code -r 0-1 -H 'If-Range: "x"' "$(U cond)") $(stat -c %s "$T/cr")" = "206 200 12" ]
printf 'changed\n' >"$T/cond2"
check "PUT If-Match another ETag: 412, the object unchanged" \
	[ "$(code -H 'If-Match: "x"' -T "$T/cond2" "$(U cond)")" = 412 -a "$(cat "$R/cond")" = conditional ]
check "PUT If-None-Match: * on an existing key: 412" [ "$(code -H 'If-None-Match: *' -T "$T/cond2" "$(U cond)")" = 412 ]
check "PUT If-Match: * on a missing key: 412, nothing created" \
	[ "$(code -H 'If-Match: *' -T "$T/cond2" "$(U cond-new)")" = 412 -a ! -e "$R/cond-new" ]
check "PUT If-None-Match: * on a missing key: 201" [ "$(code -H 'If-None-Match: *' -T "$T/cond2" "$(U cond-new)")" = 201 ]
check "PUT If-Match the ETag: 204, replaced; the ETag changes" \
	[ "$(code -H "If-Match: $et" -T "$T/cond2" "$(U cond)")" = 204 -a "$(cat "$R/cond")" = changed -a \
	  "$(hdr ETag "$(U cond)")" != "$et" ]
check "PUT If-Match the old ETag: 412" [ "$(code -H "If-Match: $et" -T "$T/cond" "$(U cond)")" = 412 ]
et=$(hdr ETag "$(U cond)")
check "DELETE If-Match another ETag: 412, the object kept" \
	[ "$(code -X DELETE -H 'If-Match: "x"' "$(U cond)")" = 412 -a -e "$R/cond" ]
check "DELETE If-Match the ETag: 204, deleted" \
	[ "$(code -X DELETE -H "If-Match: $et" "$(U cond)")" = 204 -a ! -e "$R/cond" ]
check "DELETE If-Match: * on a missing key: 404" [ "$(code -X DELETE -H 'If-Match: *' "$(U cond)")" = 404 ]

# Statuses.
check "missing key: 404" [ "$(code "$(U nothere)")" = 404 ]
allow=$(curl -sS -D - -o /dev/null -X POST "$(U ranged)" | tr -d '\r' | sed -n 's/^Allow: //p')
check "POST: 405 with Allow" [ "$(code -X POST "$(U ranged)")" = 405 -a -n "$allow" ]
s=$(raw 'PUT /big HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999\r\n\r\n' | status_of)
check "body over --max-body: 413" [ "$s" = 413 ]
long=$(head -c 9000 /dev/zero | tr '\0' a)
s=$(raw "GET /$long HTTP/1.1\r\nHost: x\r\n\r\n" | status_of)
check "request line over 8 KiB: 414" [ "$s" = 414 ]
hdr=$(head -c 40000 /dev/zero | tr '\0' a)
s=$(raw "GET /ranged HTTP/1.1\r\nHost: x\r\nX-Big: $hdr\r\n\r\n" | status_of)
check "head over 32 KiB: 431" [ "$s" = 431 ]
s=$(raw 'GARBAGE\r\n\r\n' | status_of)
check "malformed request line: 400" [ "$s" = 400 ]
s=$(raw 'GET /ranged HTTP/1.1\r\nBad Header\r\n\r\n' | status_of)
check "malformed header: 400" [ "$s" = 400 ]
s=$(raw 'GET /ranged HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n' | status_of)
check "conflicting Content-Length: 400" [ "$s" = 400 ]
check "bad percent escape: 400" [ "$(code "$(U 'a%zz')")" = 400 ]
check "percent-encoded NUL: 400" [ "$(code "$(U 'a%00b')")" = 400 ]
check "PUT with neither Content-Length nor Transfer-Encoding: 411" \
	[ "$(raw 'PUT /nolen HTTP/1.1\r\n\r\n' | status_of)" = 411 ]
tid=$(curl -sS -D - -o /dev/null -H 'X-Trace-ID: abc123' "$(U ranged)" | tr -d '\r' | sed -n 's/^X-Trace-ID: //p')
check "X-Trace-ID echoed" [ "$tid" = abc123 ]
check "invalid grpc-timeout: 400" [ "$(code -H 'grpc-timeout: 5x' "$(U ranged)")" = 400 ]
check "grpc-timeout over 8 digits: 400" [ "$(code -H 'grpc-timeout: 123456789m' "$(U ranged)")" = 400 ]
check "valid grpc-timeout: served" [ "$(code -H 'grpc-timeout: 10S' "$(U ranged)")" = 200 ]
tin=4bf92f3577b34da6a3ce929d0e0e4736
tp=$(curl -sS -D - -o /dev/null -H "traceparent: 00-$tin-00f067aa0ba902b7-01" "$(U ranged)" |
	tr -d '\r' | sed -n 's/^traceparent: //p')
check "traceparent echoed: same trace id, a new span id ($tp)" \
	sh -c "echo '$tp' | grep -Eq '^00-$tin-[0-9a-f]{16}-01\$' && [ '${tp#00-$tin-}' != '00f067aa0ba902b7-01' ]"
tp=$(curl -sS -D - -o /dev/null -H 'traceparent: 00-zz-00f067aa0ba902b7-01' "$(U ranged)" |
	tr -d '\r' | sed -n 's/^traceparent: //p')
check "invalid traceparent: ignored, a new trace ($tp)" \
	sh -c "echo '$tp' | grep -Eq '^00-[0-9a-f]{32}-[0-9a-f]{16}-01\$'"
check "access log carries the traceparent's trace id" grep -q "^GET /ranged 200 .* trace=$tin xid=- " "$T/main.log"
check "/debug/stats is JSON with counters" sh -c "curl -sS '$(U debug/stats)' | grep -q '\"requests\":[1-9].*\"rings\":{\"submitted\"'"
check "access log has a line per request with status, trace id and X-Trace-ID" grep -Eq '^GET /ranged 200 .* trace=[0-9a-f]{32} xid=abc123 io=[0-9]+/[0-9]+/[0-9]+ cause=-$' "$T/main.log"

# Path escapes.
echo secret >"$T/secret"
ln -s ../secret "$R/out"
ln -s /etc/hostname "$R/abs"
echo inside >"$R/target"
ln -s target "$R/in"
check "'..' segment: 400" [ "$(code --path-as-is "$(U ../secret)")" = 400 ]
check "'%2e%2e' segment: 400" [ "$(code --path-as-is "$(U %2e%2e/secret)")" = 400 ]
check "'%2E%2E' deeper: 400" [ "$(code --path-as-is "$(U a/%2E%2E/%2E%2E/secret)")" = 400 ]
b=$(curl -sS --max-time 30 "$(U out)")
check "symlink out of the root: 404, not served" [ "$(code "$(U out)")" = 404 -a "$b" != secret ]
check "absolute symlink: 404" [ "$(code "$(U abs)")" = 404 ]
check "symlink inside the root: served" [ "$(curl -sS "$(U in)")" = inside ]
printf x >"$T/x"
check "PUT through '..': 400" [ "$(code --path-as-is -T "$T/x" "$(U ../evil)")" = 400 ]
check "PUT into a missing directory: 409" [ "$(code -T "$T/x" "$(U nodir/x)")" = 409 ]
check "Content-Length with Transfer-Encoding: 400" \
	[ "$(raw 'PUT /x HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\nx' | status_of)" = 400 ]
check "temporary names are not served: 404" [ "$(code "$(U .objd-tmp.1)")" = 404 ]

# Keep-alive and pipelining.
r=$(raw 'GET /in HTTP/1.1\r\nHost: x\r\n\r\nHEAD /in HTTP/1.1\r\nHost: x\r\n\r\nGET /nothere HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
n200=$(printf '%s' "$r" | grep -c '^HTTP/1.1 200')
n404=$(printf '%s' "$r" | grep -c '^HTTP/1.1 404')
check "three pipelined requests in one write: 200, 200, 404 in order" \
	[ "$n200 $n404" = "2 1" -a "$(printf '%s' "$r" | grep '^HTTP/1.1' | tr -d '\r' | tr '\n' ' ')" = "HTTP/1.1 200 OK HTTP/1.1 200 OK HTTP/1.1 404 Not Found " ]
# A Range is read after the open and statx: the requests pipelined behind it
# must not overwrite it (they did: 200 with the whole object).
r=$(raw 'GET /ranged HTTP/1.1\r\nRange: bytes=0-9\r\n\r\nHEAD /ranged HTTP/1.1\r\n\r\nGET /ranged HTTP/1.1\r\nRange: bytes=99999-\r\nConnection: close\r\n\r\n' |
	tr -d '\r' | grep -ao 'HTTP/1.1 [0-9]*\|Content-Range: [^ ]* [^ ]*' | tr '\n' ' ')
check "pipelined Range, HEAD, Range: 206 (0-9), 200, 206 (99999-)" \
	[ "$r" = "HTTP/1.1 206 Content-Range: bytes 0-9/100000 HTTP/1.1 200 HTTP/1.1 206 Content-Range: bytes 99999-99999/100000 " ]
r=$(raw 'GET /in HTTP/1.1\r\nContent-Length: 25\r\n\r\nGET /nothere HTTP/1.1\r\n\r\nGET /in HTTP/1.1\r\n\r\n' | grep -ao 'HTTP/1.1 [0-9]*\|Connection: close' | tr '\n' ' ')
check "a GET whose body looks like a request: answered, then closed (the body is not served)" \
	[ "$r" = "HTTP/1.1 200 Connection: close " ]
v=$(curl -sSv "$(U in)" "$(U target)" 2>&1 >/dev/null | grep -ci 're-using\|reusing')
check "curl reuses the connection for a second URL" [ "$v" -ge 1 ]

# Differential: random pipelines in one send get the responses the same
# requests get one per connection (tests/objd/pipeline.py; the seed is
# printed; OBJD_PIPELINE_SEED=N reruns one).
seed=${OBJD_PIPELINE_SEED:-$(date +%s)}
timeout 150 python3 "$(dirname "$0")/pipeline.py" --port "$PORT" --seed "$seed" --count 200 --time 60 \
	>"$T/pipeline.out" 2>&1
prc=$?
sed 's/^/  /' "$T/pipeline.out" | tail -n 20
check "random pipelines of 2-20 requests in one send: the responses of one request per connection (seed $seed)" \
	[ "$prc" = 0 ]

# HTTP/1.0 (RFC 9112 9.3): closed after the response unless the client asks
# for keep-alive, and then the response says so.
t0=$(date +%s)
r=$(raw 'GET /in HTTP/1.0\r\n\r\n' | tr -d '\r')
el=$(($(date +%s) - t0))
check "HTTP/1.0: 200, Connection: close, and closed (in $el s)" \
	[ "$(echo "$r" | status_of)" = 200 -a -n "$(echo "$r" | grep -x 'Connection: close')" -a "$el" -lt 5 ]
r=$(raw 'GET /in HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\nGET /in HTTP/1.0\r\n\r\n' | tr -d '\r' |
	grep '^HTTP/\|^Connection:\|^inside' | tr '\n' ' ')
check "HTTP/1.0 keep-alive: Connection: keep-alive, kept; the next without it: close" \
	[ "$r" = "HTTP/1.1 200 OK Connection: keep-alive inside HTTP/1.1 200 OK Connection: close inside " ]
# ApacheBench speaks HTTP/1.0: with -k it waits for "Connection: keep-alive".
if command -v ab >/dev/null; then
	timeout 30 ab -k -n 10 -c 1 "$(U in)" >"$T/ab-k.out" 2>&1
	check "ab -k -n 10 -c 1: 10 complete, 0 failed, 10 kept alive" \
		sh -c "grep -q '^Complete requests: *10\$' '$T/ab-k.out' && grep -q '^Failed requests: *0\$' '$T/ab-k.out' &&
			grep -q '^Keep-Alive requests: *10\$' '$T/ab-k.out'"
	timeout 30 ab -n 20 -c 4 "$(U in)" >"$T/ab.out" 2>&1
	check "ab -n 20 -c 4 (no keep-alive): 20 complete, 0 failed" \
		sh -c "grep -q '^Complete requests: *20\$' '$T/ab.out' && grep -q '^Failed requests: *0\$' '$T/ab.out'"
else
	skip=$((skip + 1)); echo "  SKIP: ab (apache2-utils) not installed"
fi

# A connection closed after its response reads what its client may still
# send into one buffer of its worker, not into an input buffer of its own
# (96 KiB): 400 lingering at once grow the server's private memory by
# less than 16 KiB each (tests/objd/linger.py).
read -r vm0 vm1 n404 < <(timeout 60 python3 "$(dirname "$0")/linger.py" "$PORT" "$SPID" 400 2>"$T/linger.err")
grow=$((${vm1:-0} - ${vm0:-0}))
check "400 connections lingering after Connection: close: ${n404:-0} x 404, VmData +$grow KiB (< 400 x 16 KiB)" \
	[ "${n404:-0}" = 400 -a -n "$vm1" -a "$grow" -lt $((400 * 16)) ]

# A head that trickles: 408 after --header-timeout (1 s), within 10 s.
t0=$(date +%s)
s=$(raw 'GET /in HTTP/1.1\r\nHost:' | status_of)
check "partial head: 408 after the header deadline" [ "$s" = 408 -a $(($(date +%s) - t0)) -lt 12 ]

# A client that leaves mid-download; the server goes on.
ring_counter() { # ring_counter NAME: that counter of the rings in /debug/stats
	curl -sS --max-time 30 "$(U debug/stats)" | sed -n "s/.*\"rings\":{[^}]*\"$1\":\([0-9]*\).*/\1/p"
}
head -c 20000000 /dev/urandom >"$T/big"
curl -sS -o /dev/null -T "$T/big" "$(U big)"
ab0=$(ring_counter aborted); ci0=$(ring_counter cancels_issued)
timeout 1 curl -sS -o /dev/null --limit-rate 200k "$(U big)" 2>/dev/null
ok2=no
for _ in $(seq 100); do
	j=$(curl -sS "$(U debug/stats)")
	case $j in *'"in_flight":1,'*) ok2=yes; break ;; esac
	sleep 0.1
done
check "client gone mid-download: request ends, server serves on" [ "$ok2" = yes -a "$(code "$(U in)")" = 200 ]
gone=no
for _ in $(seq 50); do
	grep -q '^GET /big 200 [0-9]* .*cause=client-gone$' "$T/main.log" && { gone=yes; break; }
	sleep 0.1
done
[ $gone = yes ] || grep '^GET /big' "$T/main.log"
check "... and the log says the client left" [ $gone = yes ]
check "... its log line has the trace id and the cause" \
	grep -Eq '^GET /big 200 [0-9]+ [0-9.]+ trace=[0-9a-f]{32} xid=- io=[0-9]+/[0-9]+/[0-9]+ cause=client-gone$' "$T/main.log"
# Whether the send fails by itself or the hang-up cancels it first is a
# race here; the stuck-disk part checks the cancel deterministically.
ab1=$(ring_counter aborted); ci1=$(ring_counter cancels_issued)
echo "  (rings: cancels_issued $ci0 -> $ci1, aborted $ab0 -> $ab1)"

# Concurrent PUTs of one key while GETs run: every GET is one whole version.
for v in a b c; do head -c 2000000 /dev/urandom >"$T/v$v"; done
curl -sS -o /dev/null -T "$T/va" "$(U race)"
valid=" $(sha "$T/va") $(sha "$T/vb") $(sha "$T/vc") "
( for _ in 1 2 3 4; do for v in a b c; do curl -sS -o /dev/null -T "$T/v$v" "$(U race)" & done; wait; done ) &
wp=$!
badget=0; ngets=0
for i in $(seq 30); do
	curl -sS -o "$T/g$i" "$(U race)" || true
	case $valid in *" $(sha "$T/g$i") "*) ;; *) badget=$((badget + 1)) ;; esac
	ngets=$((ngets + 1))
done
wait $wp
check "concurrent PUTs: $ngets GETs each saw one whole version" [ "$badget" = 0 ]

# ---- kill -9 during a large PUT: old object or new, never a part --------
R2=$T/root2
start kill9 "$R2"
head -c 1000000 /dev/urandom >"$T/old"
curl -sS -o /dev/null -T "$T/old" "$(U obj)"
curl -sS -o /dev/null --limit-rate 2M --max-time 30 -T "$T/big" "$(U obj)" 2>/dev/null &
cp=$!
sleep 1
kill -9 "$SPID"
wait "$cp" 2>/dev/null
got=$(sha "$R2/obj")
check "kill -9 mid-PUT: the object is the old one or the new one" [ "$got" = "$(sha "$T/old")" -o "$got" = "$(sha "$T/big")" ]

# ---- SIGTERM with a request in flight: it completes, exit status 0 ------
R3=$T/root3
start term "$R3" --drain 20s
curl -sS -o /dev/null -T "$T/big" "$(U big)"
curl -sS -o "$T/drained" --limit-rate 8M --max-time 60 "$(U big)" &
cp=$!
sleep 0.5
kill -TERM "$SPID"
wait "$cp"; crc=$?
wait_exit "$SPID" 30
check "SIGTERM: the download in flight completes whole" [ "$crc" = 0 -a "$(sha "$T/drained")" = "$(sha "$T/big")" ]
check "SIGTERM: exit status 0" [ "$RC" = 0 ]
check "SIGTERM: taken by the signal context (the log names signal 15)" grep -q 'signal 15: draining' "$T/term.log"

# SIGTERM with a request that outlives --drain: cancelled, still exit 0.
start term2 "$R3" --drain 1s
curl -sS -o /dev/null --limit-rate 100k --max-time 60 "$(U big)" 2>/dev/null &
cp=$!
sleep 0.5
kill -TERM "$SPID"
wait_exit "$SPID" 30
wait "$cp" 2>/dev/null
check "SIGTERM past --drain: cancelled, exit status 0" [ "$RC" = 0 ]

# The main server: SIGTERM, exit 0.
kill -TERM "$(echo $PIDS | cut -d' ' -f1)"
wait_exit "$(echo $PIDS | cut -d' ' -f1)" 30
check "main server: SIGTERM, exit 0" [ "$RC" = 0 ]

# ---- --max-conns: 503 with Retry-After beyond it ----------------------
start maxc "$T/root4" --max-conns 1 --header-timeout 10s --threads 1
exec 5<>"/dev/tcp/127.0.0.1/$PORT"
ra=$(curl -sS -D - -o /dev/null --max-time 30 "$(U x)" | tr -d '\r' | sed -n 's/^Retry-After: //p')
check "beyond --max-conns: 503 with Retry-After" [ "$(code "$(U x)")" = 503 -a -n "$ra" ]
exec 5<&-
kill -TERM "$SPID"; wait_exit "$SPID" 30

# ---- the open-file cache: this server's PUT and DELETE seen at once -------
# Two workers, a new connection per request (either worker may take it), the
# key cached in both before each change (several GETs). Outside changes are
# seen within --cache-ttl.
open_cache() {
	local R5=$T/root5 i c ok=yes bad_at="" b etag prev="" hits
	start cache "$R5" --threads 2 --cache-ttl 1s --timeout 20s
	mkdir -p "$R5/d"
	for i in $(seq 200); do
		printf 'version %d %*s' "$i" $((i % 37)) "" >"$T/cv"
		c=$(code -T "$T/cv" "$(U k)")
		for _ in 1 2 3; do
			b=$(curl -sS -D "$T/ch" --max-time 30 "$(U k)")
			etag=$(tr -d '\r' <"$T/ch" | sed -n 's/^ETag: //p')
			if [ "$b" != "$(cat "$T/cv")" ] || [ -z "$etag" ] || [ "$etag" = "$prev" ]; then
				ok=no; bad_at="$i ($c): got '$b' etag $etag after $prev"; break 2
			fi
		done
		prev=$etag
	done
	check "open cache: 200 PUTs, each followed by 3 GETs (new connections, 2 workers): new bytes and ETag every time${bad_at:+ (first miss: $bad_at)}" [ $ok = yes ]
	ok=yes
	for i in $(seq 20); do
		echo "del $i" >"$T/cv"
		code -T "$T/cv" "$(U "d/del$i")" >/dev/null
		for _ in 1 2 3 4; do code "$(U "d/del$i")" >/dev/null; done
		c=$(code -X DELETE "$(U "d/del$i")")
		for _ in 1 2 3; do
			[ "$c $(code "$(U "d/del$i")")" = "204 404" ] || ok=no
		done
	done
	check "open cache: DELETE of a cached key, then GET 404 on either worker (20 keys, 3 GETs each)" [ $ok = yes ]
	# A symbolic link to the key, and a PUT through a symlinked directory.
	echo one >"$R5/tgt"; ln -s tgt "$R5/ln"; ln -s d "$R5/dl"; echo a >"$R5/d/f"
	for _ in 1 2 3 4; do code "$(U ln)" "$(U d/f)" >/dev/null; done
	echo two >"$T/cv"; code -T "$T/cv" "$(U tgt)" >/dev/null
	echo b >"$T/cv2"; code -T "$T/cv2" "$(U dl/f)" >/dev/null
	ok=yes
	for _ in 1 2 3 4; do
		[ "$(curl -sS --max-time 30 "$(U ln)") $(curl -sS --max-time 30 "$(U d/f)")" = "two b" ] || ok=no
	done
	check "open cache: a PUT seen through a symbolic link to its key, and a PUT through a symlinked directory seen by its real name" [ $ok = yes ]
	# Outside the server: replaced (rename) and rewritten in place.
	echo old >"$R5/out1"; echo old >"$R5/out2"
	for _ in 1 2 3 4; do code "$(U out1)" "$(U out2)" >/dev/null; done
	echo new-by-rename >"$R5/.tmp-out1"; mv "$R5/.tmp-out1" "$R5/out1"
	echo new-in-place >"$R5/out2"
	sleep 1.1
	ok=yes
	for _ in 1 2 3 4; do
		b=$(curl -sS -D "$T/ch" --max-time 30 "$(U out2)")
		etag=$(tr -d '\r' <"$T/ch" | sed -n 's/^ETag: //p')
		[ "$(curl -sS --max-time 30 "$(U out1)") $b" = "new-by-rename new-in-place" ] || ok=no
		[ "$(curl -sS -o /dev/null -w '%{http_code}' -H "If-None-Match: $etag" --max-time 30 "$(U out2)")" = 304 ] || ok=no
	done
	check "open cache: files changed outside the server seen within --cache-ttl 1s (replaced, rewritten in place)" [ $ok = yes ]
	hits=$(curl -sS --max-time 30 "$(U debug/stats)" | sed -n 's/.*"open_cache":{"hits":\([0-9]*\).*/\1/p')
	check "open cache: used (/debug/stats open_cache.hits $hits)" [ "${hits:-0}" -gt 100 ]
	kill -TERM "$SPID"; wait_exit "$SPID" 30
	check "open cache: SIGTERM, exit 0" [ "$RC" = 0 ]
}
open_cache

# ---- a stuck disk: 504 at the deadline, the rest served, threads bounded --
# fs_start NAME: mount a new stuckfs; FSDIR is its mount point, FSFD the fd
# of its commands, FSOUT its answers. Returns 1 with FSWHY when FUSE cannot
# be used here.
fs_start() {
	local line
	mkfifo "$T/fsctl.$1"
	FSOUT=$T/fs.$1.out
	"$STUCKFS" <"$T/fsctl.$1" >"$FSOUT" 2>"$T/fs.$1.err" &
	FSPID=$!
	PIDS="$PIDS $FSPID"
	exec {FSFD}>"$T/fsctl.$1"
	for _ in $(seq 100); do
		line=$(head -n 1 "$FSOUT")
		[ -n "$line" ] && break
		sleep 0.1
	done
	case $line in
	"mounted "*) FSDIR=${line#mounted }; return 0 ;;
	esac
	FSWHY=${line:-stuckfs did not start}
	exec {FSFD}>&-
	return 1
}
# fs_ask WORD: send a command to the stuckfs, print its answer's number.
fs_ask() {
	local n
	n=$(wc -l <"$FSOUT")
	echo "$1" >&"$FSFD"
	for _ in $(seq 100); do
		[ "$(wc -l <"$FSOUT")" -gt "$n" ] && break
		sleep 0.05
	done
	tail -n 1 "$FSOUT" | sed -n "s/^[a-z]* \(-*[0-9]*\)\$/\1/p"
}
# fs_stop: unmount the stuckfs and end its server.
fs_stop() {
	exec {FSFD}>&-
	wait_exit "$FSPID" 30
}
# stop_released PID: SIGTERM, and answer the stuck reads until PID exits
# (FUSE splits a read into several requests); its status in RC.
stop_released() {
	kill -TERM "$1" 2>/dev/null
	for _ in $(seq 60); do
		echo release >&"$FSFD"
		wait_exit "$1" 1 && return 0
	done
}

# stuck_checks LAYOUT FSK TK: the checks every layout of the stuck disk
# passes, on the server at PORT whose root holds the stuck file system at
# FSK and an ordinary directory TK holding a copy of $T/plain (the file
# system's own requests queue behind its stuck ones: FUSE's
# max_background, so the healthy file is on another device).
stuck_checks() {
	local lay=$1 fsk=$2 tk=$3 i t0 c wait_codes
	check "stuck disk ($lay): stuckfs's data file served" [ "$(code "$(U "$fsk/data")")" = 200 ]
	# Ten reads that never complete: each answers 504 at its 1 s deadline.
	t0=$(date +%s)
	for i in $(seq 10); do
		rm -f "$T/stuck$i.code"
		OUT=$T/stuck$i code -H 'X-Request-Timeout: 1000' "$(U "$fsk/stuck")" >"$T/stuck$i.code" &
	done
	wait_codes=yes
	for i in $(seq 10); do
		for _ in $(seq 300); do [ -s "$T/stuck$i.code" ] && break; sleep 0.1; done
		[ "$(cat "$T/stuck$i.code")" = 504 ] || wait_codes=no
	done
	check "stuck disk ($lay): 10 reads answer 504 at their deadline (in $(($(date +%s) - t0)) s)" \
		[ $wait_codes = yes -a $(($(date +%s) - t0)) -lt 25 ]
	OUT=$T/plain.got c=$(code "$(U "$tk/plain")")
	[ "$c" = 200 ] || { tail -3 "$T/$lay.log"; ls "/proc/$SPID/task" | wc -l; }
	check "stuck disk ($lay): other files served meanwhile" \
		[ "$c" = 200 -a "$(sha "$T/plain.got")" = "$(sha "$T/plain")" ]
	c=$(curl -sS -o /dev/null -o /dev/null -w '%{http_code} %{num_connects} ' --max-time 30 \
		-H 'X-Request-Timeout: 1000' "$(U "$fsk/stuck")" "$(U "$tk/plain")")
	[ "$c" = "504 1 200 0 " ] || echo "got: $c"
	check "stuck disk ($lay): 504 then 200 on one kept-alive connection" [ "$c" = "504 1 200 0 " ]
	check "stuck disk ($lay): stats count abandoned I/O" \
		sh -c "curl -sS '$(U debug/stats)' | grep -q '\"abandoned_io\":[1-9]'"
}

# Layout 1: the root is the common parent of an ordinary directory ($T)
# and the stuck file system; one worker thread, so that the io-wq bound
# below is exact. The further checks run on this layout only.
stuck_plain() {
	local fsk tk th t0 c
	[ "$(dirname "$FSDIR")" = "$(dirname "$T")" ] || { bad "stuckfs and $T share no parent"; return; }
	fsk=$(basename "$FSDIR")
	tk=$(basename "$T")
	# Each stuck request can hold more than one io-wq worker (its read, the
	# next open of the file waiting on the locked page, the close's flush):
	# the bound leaves room for 10 of them and the healthy requests.
	start plain "$(dirname "$T")" --timeout 30s --threads 1 --device-limit 4 --drain 2s
	stuck_checks plain "$fsk" "$tk"
	th=$(ls "/proc/$SPID/task" | wc -l)
	# main + 1 worker + the runtime thread + io-wq (48 bounded + 4 unbounded).
	check "stuck disk: $th threads with 11 stuck reads (bound: 55)" [ "$th" -le 55 ]
	# grpc-timeout shortens the 30 s server deadline.
	t0=$(date +%s)
	c=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 60 -H 'grpc-timeout: 500m' "$(U "$fsk/stuck")")
	check "stuck disk: grpc-timeout 500m answers 504 before the 30 s default ($(($(date +%s) - t0)) s)" \
		[ "$c" = 504 -a $(($(date +%s) - t0)) -lt 25 ]
	check "stuck disk: its log line has trace id and cause" \
		grep -Eq "^GET /$fsk/stuck 504 [0-9]+ [0-9.]+ trace=[0-9a-f]{32} xid=- io=[0-9]+/[0-9]+/[0-9]+ cause=abandoned-io\$" "$T/plain.log"
	# /debug/contexts while a stuck GET is pending (its deadline 20 s).
	curl -sS -o /dev/null --max-time 60 -H 'X-Request-Timeout: 20000' "$(U "$fsk/stuck")" &
	local gp=$! dump=no
	for _ in $(seq 100); do
		curl -sS --max-time 30 "$(U debug/contexts)" >"$T/contexts"
		# The stuck request is in the kernel (its req line), or waits
		# for its device's lane (the lane's bound is held by earlier
		# stuck requests: the runtime's lane_waiting).
		grep -Eq '^  With(Fd|HangupLazy) .*$' "$T/contexts" && grep -Eq '^    WithDeadline .*left=' "$T/contexts" &&
			{ grep -Eq '^      req ring=0x[0-9a-f]+ op=(READ|OPENAT2) ' "$T/contexts" ||
			  { curl -sS --max-time 30 "$(U debug/stats)" | grep -Eq '"lane_waiting":[1-9]'; }; } &&
			grep -q '^WithCancel ctx=' "$T/contexts" &&
			grep -q '^  signal\.NotifyContext ' "$T/contexts" && { dump=yes; break; }
		sleep 0.1
	done
	[ $dump = yes ] || cat "$T/contexts"
	check "stuck disk: /debug/contexts shows the tree (signal, connection, request) and the pending read (or its lane holds it)" \
		[ $dump = yes ]
	# The client hangs up while its read is stuck: the request ends at
	# once (not at its 20 s deadline), its I/O cancelled.
	local ci0 lw0 gone=no
	ci0=$(curl -sS --max-time 30 "$(U debug/stats)" | sed -n 's/.*"cancels_issued":\([0-9]*\).*/\1/p')
	lw0=$(curl -sS --max-time 30 "$(U debug/stats)" | sed -n 's/.*"lane_waiting":\([0-9]*\).*/\1/p')
	t0=$(date +%s)
	kill "$gp" 2>/dev/null; wait "$gp" 2>/dev/null
	for _ in $(seq 100); do
		grep -q "^GET /$fsk/stuck 499 .* cause=client-gone\$" "$T/plain.log" && { gone=yes; break; }
		sleep 0.1
	done
	local ci1 lw1
	ci1=$(curl -sS --max-time 30 "$(U debug/stats)" | sed -n 's/.*"cancels_issued":\([0-9]*\).*/\1/p')
	lw1=$(curl -sS --max-time 30 "$(U debug/stats)" | sed -n 's/.*"lane_waiting":\([0-9]*\).*/\1/p')
	check "stuck disk: client hang-up ends the stuck request before its deadline, cause=client-gone ($(($(date +%s) - t0)) s)" \
		[ $gone = yes -a $(($(date +%s) - t0)) -lt 15 ]
	# Its file request was in the kernel (a cancel is issued) or still
	# waiting in the stuck device's lane (it leaves the lane).
	check "... and cancels its kernel I/O or leaves its lane (cancels_issued $ci0 -> $ci1, lane_waiting $lw0 -> $lw1)" \
		sh -c '[ -n "$1" ] && [ -n "$2" ] && { [ "${3:-0}" -gt "$1" ] || [ "${4:-0}" -lt "$2" ]; }' \
		_ "$ci0" "$lw0" "$ci1" "$lw1"
	# --max-inflight: stuck requests hold the slots, one more is 503.
	local mport=$PORT mpid=$SPID
	start maxinf "$(dirname "$T")" --timeout 30s --threads 1 --device-limit 4 --max-inflight 2
	curl -sS -o /dev/null --max-time 60 -H 'X-Request-Timeout: 20000' "$(U "$fsk/stuck")" &
	local m1=$!
	curl -sS -o /dev/null --max-time 60 -H 'X-Request-Timeout: 20000' "$(U "$fsk/stuck")" &
	local m2=$! held=no
	for _ in $(seq 100); do
		case $(curl -sS --max-time 30 "$(U debug/stats)") in *'"in_flight":3,'*) held=yes; break ;; esac
		sleep 0.1
	done
	ra=$(curl -sS -D - -o /dev/null --max-time 30 "$(U "$tk/plain")" | tr -d '\r')
	local got=no
	echo "$ra" | grep -q '^HTTP/1.1 503' && echo "$ra" | grep -q '^Retry-After: [0-9]' && got=yes
	check "beyond --max-inflight (2 stuck GETs hold the slots): 503 with Retry-After" \
		[ $held = yes -a $got = yes ]
	check "... logged with cause=max-inflight" grep -q "^GET /$tk/plain 503 .* cause=max-inflight\$" "$T/maxinf.log"
	kill "$m1" "$m2" 2>/dev/null; wait "$m1" "$m2" 2>/dev/null
	kill -TERM "$SPID"
	local ipid=$SPID
	PORT=$mport SPID=$mpid
	stop_released "$SPID"
	[ "$RC" = 0 ] || { echo "exit $RC"; tail -5 "$T/plain.log"; }
	check "stuck disk: once the disk answers, SIGTERM exits 0" [ "$RC" = 0 ]
	stop_released "$ipid"
	check "stuck disk: the --max-inflight server too" [ "$RC" = 0 ]
}

# mount_at WHAT... DIR: mount, and remember DIR for the clean-up.
mount_at() {
	mount "$@" 2>"$T/mount.err" || return 1
	MOUNTS="${!#} $MOUNTS"
}
layout_skip() {
	skip=$((skip + 1)); echo "  SKIP: stuck disk ($1): $2"
}
# A directory for the layouts below: data/plain (a copy of $T/plain) and
# stuck/, an empty directory to mount the stuck file system on.
layout_tree() {
	mkdir -p "$1/data" "$1/stuck"
	cp "$T/plain" "$1/data/plain"
}
stuck_end() { # stuck_end LAYOUT: stop the server, the disk answering
	stop_released "$SPID"
	check "stuck disk ($1): once the disk answers, SIGTERM exits 0" [ "$RC" = 0 ]
}

# Layout 2: the root is an overlay mount (its lower directory holds the
# files; upper and work directories on a tmpfs of their own, as overlayfs
# does not take every file system as upper), the stuck file system bound
# on a directory of the merged tree.
stuck_overlay() {
	local d=$T/ov
	[ "$(id -u)" = 0 ] || { layout_skip overlay "not root (mounts)"; return; }
	grep -qw overlay /proc/filesystems || modprobe -q overlay 2>/dev/null
	grep -qw overlay /proc/filesystems || { layout_skip overlay "no overlayfs in this kernel"; return; }
	mkdir -p "$d"
	mount_at -t tmpfs -o size=16m objd-ov "$d" || { layout_skip overlay "tmpfs: $(head -n 1 "$T/mount.err")"; return; }
	mkdir -p "$d/lower" "$d/upper" "$d/work" "$d/merged"
	layout_tree "$d/lower"
	mount_at -t overlay objd-ov -o "lowerdir=$d/lower,upperdir=$d/upper,workdir=$d/work" "$d/merged" ||
		{ layout_skip overlay "overlay mount: $(head -n 1 "$T/mount.err")"; return; }
	mount_at --bind "$FSDIR" "$d/merged/stuck" ||
		{ bad "stuck disk (overlay): bind of the stuck file system: $(head -n 1 "$T/mount.err")"; return; }
	check "stuck disk (overlay): the root is an overlay mount" \
		[ "$(stat -f -c %T "$d/merged")" = overlayfs -o "$(findmnt -n -o FSTYPE "$d/merged" 2>/dev/null)" = overlay ]
	start overlay "$d/merged" --timeout 30s --threads 1 --device-limit 4 --drain 2s
	stuck_checks overlay stuck data
	stuck_end overlay
}

# Layout 3: the root is a bind mount; the stuck file system is bound on a
# directory of the source tree first, and reaches the root by --rbind.
stuck_bind() {
	local d=$T/bind
	[ "$(id -u)" = 0 ] || { layout_skip bind "not root (mounts)"; return; }
	mkdir -p "$d/root"
	layout_tree "$d/src"
	mount_at --bind "$FSDIR" "$d/src/stuck" ||
		{ layout_skip bind "bind mount: $(head -n 1 "$T/mount.err")"; return; }
	mount_at --rbind "$d/src" "$d/root" ||
		{ layout_skip bind "rbind mount: $(head -n 1 "$T/mount.err")"; return; }
	start bind "$d/root" --timeout 30s --threads 1 --device-limit 4 --drain 2s
	stuck_checks bind stuck data
	stuck_end bind
}

# Layout 4: the server runs in a private mount namespace (unshare -m),
# chrooted into a root that holds only the server, the libraries it needs
# and the dynamic loader, a /proc of its own, and the data directory and
# the stuck file system bound in; curl talks to it over loopback from
# outside. Its /proc/self/mountinfo lists only the mounts in that root.
stuck_chroot() {
	local cr=$T/chroot f lib mi mp
	[ "$(id -u)" = 0 ] || { layout_skip chroot "not root (unshare, chroot)"; return; }
	command -v unshare >/dev/null || { layout_skip chroot "unshare (util-linux) missing"; return; }
	command -v chroot >/dev/null || { layout_skip chroot "chroot missing"; return; }
	# Inside a chroot whose root is not a mount point (a fresh root entered
	# with chroot), / cannot be made private: keep the propagation as it
	# is then, and unmount what the namespace mounted at the end.
	local prop=private
	if ! unshare -m --propagation private true 2>"$T/unshare.err"; then
		prop=unchanged
		unshare -m --propagation unchanged true 2>"$T/unshare.err" ||
			{ layout_skip chroot "unshare -m: $(head -n 1 "$T/unshare.err")"; return; }
	fi
	mkdir -p "$cr/proc" "$cr/srv/data" "$cr/srv/stuck" "$cr/bin"
	cp "$T/plain" "$T/chroot-data.plain"
	mkdir -p "$T/chroot-data"
	mv "$T/chroot-data.plain" "$T/chroot-data/plain"
	cp "$OBJD" "$cr/ringctx-objd"
	cp "$(command -v cat)" "$cr/bin/cat"
	# The libraries and the loader, at the paths they are linked with.
	for f in "$OBJD" "$(command -v cat)"; do
		for lib in $(ldd "$f" | sed -n 's/.*=> \(\/[^ ]*\) .*/\1/p; s/^[[:space:]]*\(\/[^ ]*\) (.*/\1/p'); do
			mkdir -p "$cr$(dirname "$lib")"
			cp -L "$lib" "$cr$lib"
		done
	done
	cat >"$T/chroot.sh" <<-'SH'
		# chroot.sh ROOT DATA STUCKFS COMMAND...: in a private mount namespace.
		set -e
		cr=$1 data=$2 fs=$3
		shift 3
		mount -t proc proc "$cr/proc"
		mount --bind "$data" "$cr/srv/data"
		mount --bind "$fs" "$cr/srv/stuck"
		chroot "$cr" /bin/cat /proc/self/mountinfo >"$cr.mountinfo"
		exec chroot "$cr" "$@"
	SH
	launch chroot unshare -m --propagation "$prop" bash "$T/chroot.sh" "$cr" "$T/chroot-data" "$FSDIR" \
		/ringctx-objd --listen 127.0.0.1:0 --threads 1 --timeout 30s --device-limit 4 --drain 2s /srv
	echo "  /proc/self/mountinfo in the chroot:"
	sed 's/^/    /' "$cr.mountinfo"
	mi=$(cut -d' ' -f5 "$cr.mountinfo" | sort | tr '\n' ' ')
	mp=$(cut -d' ' -f5 "/proc/$SPID/mountinfo" | sort | tr '\n' ' ')
	check "stuck disk (chroot): mountinfo lists only /proc and the two mounts bound in ($mi)" \
		[ "$mi" = "/proc /srv/data /srv/stuck " -a "$mp" = "$mi" ]
	check "stuck disk (chroot): no line for the root file system outside, nor the stuck file system's path outside" \
		[ -z "$(awk '$5 == "/"' "$cr.mountinfo")" -a -z "$(grep -F " $FSDIR " "$cr.mountinfo")" ]
	# Same directory (device and inode): the path shown by readlink depends
	# on the reader's root and namespace (a test itself run in a chroot).
	check "stuck disk (chroot): the server runs chrooted (its root is $cr)" \
		[ "$(stat -L -c %d:%i "/proc/$SPID/root")" = "$(stat -c %d:%i "$cr")" ]
	stuck_checks chroot stuck data
	stuck_end chroot
	[ "$prop" = private ] || umount -l "$cr/srv/stuck" "$cr/srv/data" "$cr/proc" 2>/dev/null || true
}

stuck_disk() {
	head -c 1000000 /dev/urandom >"$T/plain"
	for lay in plain overlay bind chroot; do
		if ! fs_start "$lay"; then
			layout_skip "$lay" "$FSWHY"
			continue
		fi
		"stuck_$lay"
		# A layout that failed early leaves its server to the clean-up.
		fs_stop
	done
}
if [ -n "$STUCKFS" ]; then
	stuck_disk
else
	skip=$((skip + 1)); echo "  SKIP: stuck disk: no stuckfs helper given"
fi

# ---- SIGTERM while stuck reads are held: how soon the process ends ------
# The watch below forks nothing, so that its figures are the server's:
# builtins only, EPOCHREALTIME in microseconds, read -t on a FIFO that no one
# writes to as its sleep.
# ended PID: every thread of PID has exited (a zombie, or reaped).
ended() {
	local tasks=("/proc/$1/task/"*)
	[ ! -e "/proc/$1/stat" ] || { [ "${#tasks[@]}" -le 1 ] && [ "$(main_state "$1")" = Z ]; }
}
main_state() { # the state of PID's main thread (empty once reaped)
	local st
	{ read -r st <"/proc/$1/stat"; } 2>/dev/null || return 0
	st=${st##*) }
	echo "${st%% *}"
}
now_us() { NOW=${EPOCHREALTIME/./}; }
nap() { read -r -t "$1" -u "$NAPFD"; }
ms() { echo $((($2 - $1) / 1000)); }  # ms T0 T1: microseconds to ms
# held_stacks PID: where the threads that are left wait ("comm: top frames").
held_stacks() {
	local t
	for t in /proc/$1/task/*; do
		[ "$(main_state "$1")" != "" ] || return 0
		printf '%s %s: %s\n' "$(sed 's/^.*) \(.\).*/\1/' "$t/stat" 2>/dev/null)" \
			"$(sed 's/-[0-9]*$//' "$t/comm" 2>/dev/null)" \
			"$(sed -n '1,3s/^\[<[0-9a-f]*>\] \([^+]*\)+.*/\1/p' "$t/stack" 2>/dev/null | paste -sd '<')"
	done | sort | uniq -c | sed 's/^ */      /'
}
# stuck_exit N: N GETs of the stuck file held (60 s deadlines), SIGTERM
# with --drain 1s: the times until the main thread has exited, and until
# the process has, with the disk stuck and after it answers. The key is
# opened once in the process (the GETs on the other worker borrow the fd):
# no second open waits in fuse_open for the first read's page, so the
# process ends with the disk still stuck. (--cache-ttl 60s: no open ahead
# of the TTL while the GETs start, however slowly.)
stuck_exit() {
	local n=$1 i seen t0 t1 tmain= tend= trel= cps="" gone_before=no NOW
	fs_start "exit$n" || { layout_skip "exit, $n GETs" "$FSWHY"; return; }
	start "exit$n" "$FSDIR" --timeout 60s --threads 2 --drain 1s --cache-ttl 60s
	for i in $(seq "$n"); do
		curl -sS -o /dev/null --max-time 60 -H 'X-Request-Timeout: 60000' "$(U stuck)" 2>/dev/null &
		cps="$cps $!"
	done
	for _ in $(seq 100); do
		seen=$(fs_ask seen)
		[ "${seen:-0}" -ge 1 ] && break
		sleep 0.1
	done
	sleep 1	# the GETs behind the first reach the kernel
	now_us; t0=$NOW
	kill -TERM "$SPID"
	# Watch for the drain, plus a few seconds: ends the process by itself?
	while ! ended "$SPID"; do
		now_us
		[ $((NOW - t0)) -lt 4000000 ] || break
		[ -z "$tmain" ] && [ "$(main_state "$SPID")" = Z ] && tmain=$NOW
		[ -n "$tmain" ] && [ $((NOW - tmain)) -gt 1000000 ] && break
		nap 0.005
	done
	if ended "$SPID"; then
		now_us; tend=$NOW
		tmain=${tmain:-$tend}
		gone_before=yes
	else
		echo "    held, $n GETs (seen by the FUSE server: $seen); the threads left:"
		held_stacks "$SPID"
	fi
	now_us; t1=$NOW
	for _ in $(seq 300); do
		ended "$SPID" && break
		echo release >&"$FSFD"
		for _ in $(seq 100); do ended "$SPID" && break; nap 0.001; done
	done
	now_us
	ended "$SPID" && trel=$NOW
	wait_exit "$SPID" 30
	kill $cps 2>/dev/null; wait $cps 2>/dev/null
	EXIT_FIGURES="$EXIT_FIGURES; $n GET(s), $seen read seen by the FUSE server: main thread gone ${tmain:+$(ms "$t0" "$tmain") ms}, process ended "
	if [ $gone_before = yes ]; then
		EXIT_FIGURES="$EXIT_FIGURES$(ms "$t0" "$tend") ms after SIGTERM, the disk still stuck"
	else
		EXIT_FIGURES="$EXIT_FIGURES${trel:+$(ms "$t1" "$trel") ms after the disk answered}"
	fi
	check "SIGTERM with $n stuck GET(s): main thread gone before the disk answered (${tmain:+$(ms "$t0" "$tmain") ms; --drain 1s})" \
		[ -n "$tmain" ]
	check "... process ended with status 0 ($(echo "$EXIT_FIGURES" | sed 's/.*process ended //'))" \
		[ -n "$trel" -a "$RC" = 0 ]
	check "... and before the disk answered (one open of the key in the process)" \
		[ $gone_before = yes ]
	fs_stop
}
EXIT_FIGURES=""
if [ -n "$STUCKFS" ]; then
	mkfifo "$T/nap"
	exec {NAPFD}<>"$T/nap"
	stuck_exit 1
	stuck_exit 4
	echo "  exit figures${EXIT_FIGURES#;}"
else
	skip=$((skip + 1)); echo "  SKIP: stuck exit: no stuckfs helper given"
fi

# ---- one open per key in flight ------------------------------------------
# A FUSE open waits, uninterruptibly, for the lock of a page whose read the
# disk holds (fuse_open -> invalidate_inode_pages2_range), and the process
# cannot exit before it ends: GETs of such a key wait for its one open in
# flight instead of issuing one each, so one thread of the server waits
# there (the bound of the device would let 3 do), before and after SIGTERM.
# in_fuse_open PID: how many threads of PID wait in fuse_open (empty when
# their kernel stacks cannot be read).
in_fuse_open() {
	local t n=0
	for t in /proc/$1/task/*; do
		head -c 1 "$t/stack" >/dev/null 2>&1 || return 0
		grep -q '^\[<[0-9a-f]*>\] fuse_open+' "$t/stack" 2>/dev/null && n=$((n + 1))
	done
	echo "$n"
}
stat_of() { curl -sS --max-time 30 "$(U debug/stats)" | sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p"; }
stuck_flight() {
	local i c all=yes cps="" j0 j1 inf nopen
	fs_start flight || { layout_skip "one open per key" "$FSWHY"; return; }
	start flight "$FSDIR" --timeout 60s --threads 1 --device-limit 4 --drain 2s
	# Its read held by the disk (the page stays locked), its open done.
	c=$(code -H 'X-Request-Timeout: 1000' "$(U stuck)")
	j0=$(stat_of opens_joined)
	for i in $(seq 10); do
		rm -f "$T/flight$i.code"
		code -H 'X-Request-Timeout: 1000' "$(U stuck)" >"$T/flight$i.code" &
		cps="$cps $!"
	done
	wait $cps
	for i in $(seq 10); do [ "$(cat "$T/flight$i.code")" = 504 ] || all=no; done
	j1=$(stat_of opens_joined)
	inf=$(stat_of opens_in_flight)
	check "one open per key: the first GET 504 (its read held), then 10 at once 504 at their deadline ($c, then $(for i in $(seq 10); do cat "$T/flight$i.code"; echo; done | sort | uniq -c | xargs))" \
		[ "$c" = 504 -a $all = yes ]
	check "... the 10 waited for one open in flight (opens_in_flight $inf, opens_joined $j0 -> $j1)" \
		[ "$inf" = 1 -a "$((j1 - j0))" = 9 ]
	nopen=$(in_fuse_open "$SPID")
	if [ -n "$nopen" ]; then
		check "... one thread of the server waits in the kernel's fuse_open ($nopen)" [ "$nopen" = 1 ]
	else
		skip=$((skip + 1)); echo "  SKIP: one open per key: kernel stacks unreadable (/proc/PID/task/*/stack)"
	fi
	# Ten more wait for that open (60 s deadlines); SIGTERM: after the
	# drain, what is left of the process while the disk holds the page is
	# that one open; it exits once the disk answers.
	cps=""
	for i in $(seq 10); do
		curl -sS -o /dev/null --max-time 90 -H 'X-Request-Timeout: 60000' "$(U stuck)" 2>/dev/null &
		cps="$cps $!"
	done
	for _ in $(seq 100); do [ "$(stat_of opens_joined)" = $((j1 + 10)) ] && break; sleep 0.1; done
	j0=$(stat_of opens_joined)
	kill -TERM "$SPID"
	for _ in $(seq 300); do [ "$(main_state "$SPID")" = Z ] && break; sleep 0.1; done
	nopen=$(in_fuse_open "$SPID")
	[ "${nopen:-1}" = 1 ] || held_stacks "$SPID"
	check "one open per key: 10 GETs waiting ($((j0 - j1)) joined), SIGTERM: the main thread gone, ${nopen:-an unknown number of} thread(s) left in fuse_open" \
		[ "$((j0 - j1))" = 10 -a "$(main_state "$SPID")" = Z -a "${nopen:-1}" = 1 ]
	stop_released "$SPID"
	check "... once the disk answers, exit status 0" [ "$RC" = 0 ]
	kill $cps 2>/dev/null; wait $cps 2>/dev/null
	fs_stop
}
if [ -n "$STUCKFS" ]; then
	stuck_flight
else
	skip=$((skip + 1)); echo "  SKIP: one open per key: no stuckfs helper given"
fi

echo "objd: $pass passed, $fail failed, $skip skipped"
[ -z "${RCTX_CHECK_SUMMARY:-}" ] || echo "objd $pass $fail $skip" >>"$RCTX_CHECK_SUMMARY"
[ "$fail" = 0 ]
