#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Description: differential test of ringctx-objd's pipelining.

Random pipelines of 2-20 requests (GET and HEAD with and without Range,
404, 416, 304, PUT with a Content-Length or chunked body, DELETE, HTTP/1.0
keep-alive), written in one send on one connection, must get exactly the
responses the same requests get one per connection: status line, the
headers that describe the response (Content-Length, Content-Range,
Accept-Ranges, Connection, Allow, and ETag and Last-Modified of the objects
no request writes), and the body. Before each run the written keys are
deleted, so that both runs start from the same state. Loopback only; the
seed is printed so that a failure can be reproduced; bounded in count and
time.

Usage: pipeline.py --port PORT [--seed N] [--count N] [--time SECONDS]
"""
import argparse
import random
import socket
import sys
import time

HOST = "127.0.0.1"
TIMEOUT = 15.0
FIXED = {"pl-f0": 0, "pl-f1": 1, "pl-f100": 100, "pl-f70k": 70000}
WRITTEN = ["pl-w0", "pl-w1", "pl-w2"]
COMPARED = ["content-length", "content-range", "accept-ranges", "connection", "allow"]
VALIDATORS = ["etag", "last-modified"]


class Failure(Exception):
    pass


def connect(port):
    s = socket.create_connection((HOST, port), timeout=TIMEOUT)
    s.settimeout(TIMEOUT)
    return s


class Reader:
    """Responses read off one connection, framed as a client frames them."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise Failure("connection closed before the response was complete")
        self.buf += data

    def response(self, method):
        while b"\r\n\r\n" not in self.buf:
            self.fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = lines[0]
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        code = int(status.split(" ")[1])
        if method == "HEAD" or code in (204, 304) or code < 200:
            n = 0
        elif "content-length" in headers:
            n = int(headers["content-length"])
        else:
            raise Failure("no Content-Length in: %r" % status)
        while len(self.buf) < n:
            self.fill()
        body, self.buf = self.buf[:n], self.buf[n:]
        return status, headers, body

    def at_eof(self):
        """The server closes after the last response, with nothing more."""
        while True:
            data = self.sock.recv(65536)
            if not data:
                return not self.buf
            self.buf += data


class Request:
    def __init__(self, method, key, headers, body=b"", chunked=False, version="1.1"):
        self.method, self.key, self.headers = method, key, list(headers)
        self.body, self.chunked, self.version = body, chunked, version

    def wire(self, rng_chunks):
        h = ["%s /%s HTTP/%s" % (self.method, self.key, self.version), "Host: x"]
        h += ["%s: %s" % kv for kv in self.headers]
        body = self.body
        if self.method == "PUT" and self.chunked:
            h.append("Transfer-Encoding: chunked")
            out, i = b"", 0
            for n in rng_chunks:
                if i >= len(body):
                    break
                out += b"%x\r\n" % len(body[i:i + n]) + body[i:i + n] + b"\r\n"
                i += n
            if i < len(body):
                out += b"%x\r\n" % len(body[i:]) + body[i:] + b"\r\n"
            body = out + b"0\r\n\r\n"
        elif self.method == "PUT":
            h.append("Content-Length: %d" % len(body))
        return ("\r\n".join(h) + "\r\n\r\n").encode() + body

    def describe(self):
        extra = " ".join("%s: %s" % kv for kv in self.headers)
        how = " chunked" if self.chunked else ""
        body = " body=%d%s" % (len(self.body), how) if self.method == "PUT" else ""
        return "%s /%s HTTP/%s %s%s" % (self.method, self.key, self.version, extra, body)


def a_range(rng, size):
    kind = rng.randrange(5)
    if kind == 0 or size == 0:
        return "bytes=%d-" % (size + rng.randrange(3))          # 416
    a = rng.randrange(size)
    if kind == 1:
        return "bytes=%d-%d" % (a, a + rng.randrange(size - a + 5))
    if kind == 2:
        return "bytes=%d-" % a
    if kind == 3:
        return "bytes=-%d" % (1 + rng.randrange(size + 5))
    return "bytes=%d-%d,%d-%d" % (0, 0, 1, 1)                   # ignored: 200


def gen_request(rng, etags):
    kind = rng.randrange(10)
    if kind <= 2:                       # GET or HEAD of a fixed object
        key = rng.choice(sorted(FIXED))
        headers = []
        if rng.random() < 0.6:
            headers.append(("Range", a_range(rng, FIXED[key])))
        return Request(rng.choice(["GET", "GET", "HEAD"]), key, headers)
    if kind == 3:                       # 304, or 200 for another tag
        key = rng.choice(sorted(FIXED))
        tag = etags[key] if rng.random() < 0.7 else '"other"'
        return Request(rng.choice(["GET", "HEAD"]), key, [("If-None-Match", tag)])
    if kind == 4:                       # 404
        return Request(rng.choice(["GET", "HEAD", "DELETE"]), "pl-missing-%d" % rng.randrange(9), [])
    if kind <= 6:                       # PUT of a written key
        n = rng.choice([0, 1, rng.randrange(5000), 70000 + rng.randrange(1000)])
        body = bytes(rng.getrandbits(8) for _ in range(min(n, 2000))) * (n // 2000 + 1)
        return Request("PUT", rng.choice(WRITTEN), [], body[:n], chunked=rng.random() < 0.5)
    if kind == 7:                       # read back a written key
        headers = [("Range", "bytes=0-9")] if rng.random() < 0.3 else []
        return Request(rng.choice(["GET", "HEAD"]), rng.choice(WRITTEN), headers)
    if kind == 8:
        return Request("DELETE", rng.choice(WRITTEN), [])
    return Request("GET", rng.choice(sorted(FIXED)), [("Connection", "keep-alive")], version="1.0")


def gen_pipeline(rng, etags):
    reqs = [gen_request(rng, etags) for _ in range(rng.randint(2, 20))]
    last = reqs[-1]
    if rng.random() < 0.2:              # HTTP/1.0 without keep-alive closes
        last.version = "1.0"
        last.headers = [kv for kv in last.headers if kv[0] != "Connection"]
    else:
        last.headers = [kv for kv in last.headers if kv[0] != "Connection"]
        last.headers.append(("Connection", "close"))
    return reqs


def summary(req, resp):
    status, headers, body = resp
    keep = COMPARED + (VALIDATORS if req.key in FIXED else [])
    seen = {k: headers.get(k) for k in keep}
    if req.key not in FIXED:            # written: present or not, not the value
        seen.update({k: k in headers for k in VALIDATORS})
    return status, seen, body


def one(port, raw, method):
    with connect(port) as s:
        s.sendall(raw)
        return Reader(s).response(method)


def reset(port):
    for key in WRITTEN:
        one(port, ("DELETE /%s HTTP/1.1\r\nHost: x\r\n\r\n" % key).encode(), "DELETE")


def run(port, rng, etags, index):
    reqs = gen_pipeline(rng, etags)
    chunks = [rng.choice([1, 7, 100, 4096, 70000]) for _ in range(64)]
    wires = [r.wire(chunks) for r in reqs]
    reset(port)
    alone = [summary(r, one(port, w, r.method)) for r, w in zip(reqs, wires)]
    reset(port)
    with connect(port) as s:
        s.sendall(b"".join(wires))
        rd = Reader(s)
        try:
            piped = [summary(r, rd.response(r.method)) for r in reqs]
            if not rd.at_eof():
                raise Failure("bytes after the last response")
        except (Failure, OSError) as e:
            raise Failure("pipeline %d: %s\n  %s" % (index, e, "\n  ".join(r.describe() for r in reqs)))
    for i, (r, a, p) in enumerate(zip(reqs, alone, piped)):
        if a != p:
            what = "status" if a[0] != p[0] else "headers" if a[1] != p[1] else "body"
            raise Failure("pipeline %d, request %d of %d (%s): %s differs\n  alone:     %s %s\n"
                          "  pipelined: %s %s\n  the pipeline:\n  %s" %
                          (index, i + 1, len(reqs), r.describe(), what, a[0], a[1], p[0], p[1],
                           "\n  ".join(x.describe() for x in reqs)))
    return len(reqs)


def setup(port, rng):
    etags = {}
    for key, size in FIXED.items():
        body = bytes(rng.getrandbits(8) for _ in range(size))
        raw = ("PUT /%s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (key, size)).encode()
        status = one(port, raw + body, "PUT")[0]
        if " 20" not in status:
            raise Failure("setup: PUT /%s: %s" % (key, status))
        etags[key] = one(port, ("HEAD /%s HTTP/1.1\r\nHost: x\r\n\r\n" % key).encode(), "HEAD")[1]["etag"]
    return etags


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--seed", type=int, default=int(time.time()))
    ap.add_argument("--count", type=int, default=50)
    ap.add_argument("--time", type=float, default=60.0)
    a = ap.parse_args()
    print("pipeline: seed %d (rerun: tests/objd/pipeline.py --port PORT --seed %d)" % (a.seed, a.seed))
    sys.stdout.flush()
    rng = random.Random(a.seed)
    t0 = time.monotonic()
    n = nreq = 0
    try:
        etags = setup(a.port, rng)
        while n < a.count and time.monotonic() - t0 < a.time:
            nreq += run(a.port, rng, etags, n)
            n += 1
    except (Failure, OSError) as e:
        print("pipeline: FAILED after %d pipelines (seed %d): %s" % (n, a.seed, e))
        return 1
    print("pipeline: %d pipelines, %d requests, each as when sent one per connection (seed %d, %.1f s)"
          % (n, nreq, a.seed, time.monotonic() - t0))
    return 0 if n > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
