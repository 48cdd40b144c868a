#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The Python peer of bench_sqlite's stuck-disk episode (bench/bench_sqlite.c).

Usage: episode.py STUCK_DB HEALTHY_DB BUDGET_MS, driven through stdin and
stdout with the lines every peer speaks (see episode_child() there).

The timeout is the best Python's sqlite3 module has: the module has no
query timeout (connect(timeout=) is the busy timeout, for locks), so a
program arms a timer that calls Connection.interrupt() at the deadline, and
a progress handler that gives the statement up once the deadline has
passed. Both act between SQLite's virtual-machine steps, not inside a read.
"""
import sqlite3
import sys
import threading
import time


def say(line, lock=threading.Lock()):
    with lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def us(t):
    return int(t * 1e6)


def meanwhile(path, t0, at):
    db = sqlite3.connect(path)
    time.sleep(max(0.0, at - time.monotonic()))
    try:
        n = db.execute("SELECT count(*) FROM h").fetchone()[0]
        say(f"meanwhile {us(time.monotonic() - t0)} ok {n}")
    except sqlite3.Error as e:
        say(f"meanwhile {us(time.monotonic() - t0)} err {e}")


def main():
    stuck_path, healthy_path, budget = sys.argv[1], sys.argv[2], int(sys.argv[3]) / 1000
    stuck = sqlite3.connect(stuck_path)
    healthy = sqlite3.connect(healthy_path)
    stuck.execute("SELECT count(*) FROM t").fetchone()
    healthy.execute("SELECT count(*) FROM h").fetchone()
    say("ready")
    if not sys.stdin.readline():
        return
    t0 = time.monotonic()
    deadline = t0 + budget
    threading.Thread(target=meanwhile, args=(healthy_path, t0, t0 + budget / 2),
                     daemon=True).start()
    timer = threading.Timer(budget, stuck.interrupt)
    timer.start()
    stuck.set_progress_handler(lambda: 1 if time.monotonic() >= deadline else 0, 100)
    try:
        v = stuck.execute("SELECT sum(length(pad)) FROM t").fetchone()[0]
        out = f"ok {v}"
    except sqlite3.Error as e:
        out = f"err {type(e).__name__}: {e}"
    t1 = time.monotonic()
    timer.cancel()
    say(f"query {us(t1 - t0)} {out}")
    try:
        n = healthy.execute("SELECT count(*) FROM h").fetchone()[0]
        say(f"healthy {us(time.monotonic() - t1)} ok {n}")
    except sqlite3.Error as e:
        say(f"healthy {us(time.monotonic() - t1)} err {e}")
    sys.stdin.readline()  # "exit", or the end of stdin


if __name__ == "__main__":
    main()
