#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The stuck-disk episode's clients (bench/objd/run.sh): N keep-alive-less
GETs of one path, sent at once over N connections, each timed by the kernel.

    stuck-clients.py HOST PORT PATH N MAX_SECONDS

Prints one line per client:

    STATUS TOTAL EXIT ANSWER CLOCK

STATUS is the HTTP status (000: none), TOTAL the seconds from the client's
start to its end, EXIT 0 (a whole answer, or the server closed) or 28 (no
whole answer within MAX_SECONDS, as curl's --max-time), ANSWER the seconds
from the request leaving the client to the answer's first byte reaching it
("-" when none came), CLOCK "kernel" when both ends of ANSWER are the
kernel's software timestamps of the packets (SO_TIMESTAMPING: the request's
transmission on loopback, the answer's reception), else "user" (the clock
read before send() and after recv() returned: it also counts this client's
own scheduling). So ANSWER does not count the client's start-up, nor its
connect, nor how soon a client on a loaded machine gets a CPU back.
"""
import errno
import select
import socket
import struct
import sys
import time

SO_TIMESTAMPING = getattr(socket, "SO_TIMESTAMPING", 37)
SCM_TIMESTAMPING = SO_TIMESTAMPING
TS_TX_SOFTWARE = 1 << 1
TS_RX_SOFTWARE = 1 << 3
TS_SOFTWARE = 1 << 4
TS_OPT_TSONLY = 1 << 11
MSG_ERRQUEUE = getattr(socket, "MSG_ERRQUEUE", 0x2000)
CMSG_SPACE = socket.CMSG_SPACE(3 * 16) + socket.CMSG_SPACE(64)


def stamp(ancdata):
    """The software timestamp (seconds, CLOCK_REALTIME) in a cmsg list."""
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == SCM_TIMESTAMPING and len(data) >= 16:
            sec, nsec = struct.unpack("qq", data[:16])
            if sec or nsec:
                return sec + nsec / 1e9
    return None


class Client:
    def __init__(self, host, port, path):
        self.buf = b""
        self.status = "000"
        self.length = None
        self.head = None
        self.done = False
        self.exit = 28
        self.t_req = self.t_ans = self.t_end = None
        self.kernel = True
        self.req = ("GET %s HTTP/1.1\r\nHost: %s:%d\r\nConnection: close\r\n\r\n"
                    % (path, host, port)).encode()
        self.s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            self.s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPING,
                              TS_TX_SOFTWARE | TS_RX_SOFTWARE | TS_SOFTWARE | TS_OPT_TSONLY)
        except OSError:
            self.kernel = False
        self.s.settimeout(2)
        self.s.connect((host, port))

    def send(self):
        t_user = time.time()
        self.s.sendall(self.req)
        self.s.setblocking(False)
        if self.kernel:
            # The transmission's timestamp is on the error queue as soon
            # as loopback has sent the packet (within send() here).
            for _ in range(100):
                try:
                    _, anc, _, _ = self.s.recvmsg(1, CMSG_SPACE, MSG_ERRQUEUE)
                    self.t_req = stamp(anc)
                    if self.t_req is not None:
                        break
                except BlockingIOError:
                    time.sleep(0.001)
        if self.t_req is None:
            self.kernel = False
            self.t_req = t_user

    def read(self):
        try:
            data, anc, _, _ = self.s.recvmsg(65536, CMSG_SPACE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data, anc = b"", []
        if data and self.t_ans is None:
            t = stamp(anc) if self.kernel else None
            if t is None:
                self.kernel = False
                t = time.time()
            self.t_ans = t
        if not data:  # the server closed: whatever came is the answer
            self.finish(0)
            return
        self.buf += data
        if self.head is None and b"\r\n\r\n" in self.buf:
            self.head, _, _ = self.buf.partition(b"\r\n\r\n")
            lines = self.head.split(b"\r\n")
            parts = lines[0].split()
            if len(parts) >= 2:
                self.status = parts[1].decode(errors="replace")
            for line in lines[1:]:
                k, _, v = line.partition(b":")
                if k.strip().lower() == b"content-length":
                    self.length = int(v.strip() or 0)
        if self.head is not None and self.length is not None and \
                len(self.buf) >= len(self.head) + 4 + self.length:
            self.finish(0)

    def finish(self, code):
        self.t_end = time.time()
        self.done = True
        self.exit = code
        self.s.close()


def main():
    host, port, path, n, limit = sys.argv[1], int(sys.argv[2]), sys.argv[3], \
        int(sys.argv[4]), float(sys.argv[5])
    t0 = time.time()
    clients = []
    for _ in range(n):
        try:
            clients.append(Client(host, port, path))
        except OSError as e:
            print("000 %.6f 7 - user" % (time.time() - t0))
            sys.stderr.write("stuck-clients: connect: %s\n" % e)
    for c in clients:
        c.send()
    poller = select.poll()
    by_fd = {}
    for c in clients:
        poller.register(c.s.fileno(), select.POLLIN)
        by_fd[c.s.fileno()] = c
    left = len(clients)
    while left:
        wait = t0 + limit - time.time()
        if wait <= 0:
            break
        for fd, _ in poller.poll(wait * 1000):
            c = by_fd[fd]
            c.read()
            if c.done:
                poller.unregister(fd)
                left -= 1
    for c in clients:
        if not c.done:
            c.finish(28)
        total = c.t_end - t0
        ans = "-" if c.t_ans is None else "%.6f" % (c.t_ans - c.t_req)
        print("%s %.6f %d %s %s" % (c.status, total, c.exit, ans,
                                     "kernel" if c.kernel else "user"))


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(1)
