// SPDX-License-Identifier: MIT

// The Go peer of bench_sqlite's stuck-disk episode (bench/bench_sqlite.c).
//
// Usage: sqlite STUCK_DB HEALTHY_DB BUDGET_MS, driven through stdin and
// stdout with the lines every peer speaks (see episode_child() there).
//
// The timeout is Go's own: database/sql's QueryRowContext under
// context.WithTimeout, with github.com/mattn/go-sqlite3 (Debian's package,
// against the system's libsqlite3), which calls sqlite3_interrupt() when
// the context ends.
package main

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"

	_ "github.com/mattn/go-sqlite3"
)

var sayMu sync.Mutex

func say(format string, a ...interface{}) {
	sayMu.Lock()
	defer sayMu.Unlock()
	fmt.Fprintf(os.Stdout, format+"\n", a...)
}

func open(path string) *sql.DB {
	db, err := sql.Open("sqlite3", path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	return db
}

func count(db *sql.DB, query string) (int64, error) {
	var n int64
	err := db.QueryRowContext(context.Background(), query).Scan(&n)
	return n, err
}

func meanwhile(path string, t0 time.Time, at time.Duration, done chan<- struct{}) {
	defer close(done)
	db := open(path)
	defer db.Close()
	time.Sleep(time.Until(t0.Add(at)))
	n, err := count(db, "SELECT count(*) FROM h")
	if err != nil {
		say("meanwhile %d err %v", time.Since(t0).Microseconds(), err)
		return
	}
	say("meanwhile %d ok %d", time.Since(t0).Microseconds(), n)
}

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: sqlite STUCK_DB HEALTHY_DB BUDGET_MS")
		os.Exit(2)
	}
	ms, err := strconv.Atoi(os.Args[3])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	budget := time.Duration(ms) * time.Millisecond
	stuck, healthy := open(os.Args[1]), open(os.Args[2])
	if _, err := count(stuck, "SELECT count(*) FROM t"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if _, err := count(healthy, "SELECT count(*) FROM h"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	in := bufio.NewReader(os.Stdin)
	say("ready")
	if _, err := in.ReadString('\n'); err != nil {
		return
	}
	t0 := time.Now()
	done := make(chan struct{})
	go meanwhile(os.Args[2], t0, budget/2, done)
	ctx, cancel := context.WithTimeout(context.Background(), budget)
	var v int64
	err = stuck.QueryRowContext(ctx, "SELECT sum(length(pad)) FROM t").Scan(&v)
	t1 := time.Now()
	cancel()
	if err != nil {
		say("query %d err %v", t1.Sub(t0).Microseconds(), err)
	} else {
		say("query %d ok %d", t1.Sub(t0).Microseconds(), v)
	}
	n, err := count(healthy, "SELECT count(*) FROM h")
	if err != nil {
		say("healthy %d err %v", time.Since(t1).Microseconds(), err)
	} else {
		say("healthy %d ok %d", time.Since(t1).Microseconds(), n)
	}
	<-done
	in.ReadString('\n') // "exit", or the end of stdin
}
