#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Connections that linger after "Connection: close" (tests/objd/run.sh).

    linger.py PORT PID N

Opens N connections to the server (PID, on 127.0.0.1:PORT), sends on each a
GET of a missing key with "Connection: close", and reads each response to
its end (the server shuts its side down, then reads and discards what the
client may still send until the client closes, or for 2 s). With all N so
lingering, prints

    VMDATA_BEFORE VMDATA_DURING ANSWERED

the server's VmData (KiB) before and while they linger, and how many got
their 404. Then closes them.
"""
import socket
import sys


def vmdata(pid):
    with open("/proc/%s/status" % pid) as f:
        for line in f:
            if line.startswith("VmData:"):
                return int(line.split()[1])
    return -1


def main():
    port, pid, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    before = vmdata(pid)
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(b"GET /lingering-nothere HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        socks.append(s)
    answered = 0
    for s in socks:
        buf = b""
        while True:
            d = s.recv(65536)
            if not d:
                break
            buf += d
        answered += buf.startswith(b"HTTP/1.1 404")
    print(before, vmdata(pid), answered)
    for s in socks:
        s.close()


main()
