// Command e2e is the Go side of the end-to-end comparison of ringctx's
// bench_e2e: N goroutines blocked reading from unix stream sockets under one
// context, then cancel; time from cancel() until every reader has returned.
//
// Each socket is a real AF_UNIX socketpair (syscall.Socketpair, os.NewFile,
// net.FileConn), read through Go's netpoller. Go 1.19 has no
// context.AfterFunc, so each connection gets the idiomatic watcher goroutine
// that waits on ctx.Done() and sets a read deadline in the past, which makes
// the blocked Read return.
//
// Output: a human line per N and one machine line
// "E2E,BlockedReaders/N=<n>,ns,<median ns>" for bench/run.sh.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

type pair struct {
	conn net.Conn
	peer int
}

func openPairs(n int) ([]pair, error) {
	ps := make([]pair, 0, n)
	for i := 0; i < n; i++ {
		fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
		if err != nil {
			closePairs(ps)
			return nil, fmt.Errorf("socketpair: %w", err)
		}
		f := os.NewFile(uintptr(fds[0]), "sock")
		c, err := net.FileConn(f) // dups the fd
		f.Close()
		if err != nil {
			syscall.Close(fds[1])
			closePairs(ps)
			return nil, fmt.Errorf("FileConn: %w", err)
		}
		ps = append(ps, pair{c, fds[1]})
	}
	return ps, nil
}

func closePairs(ps []pair) {
	for _, p := range ps {
		p.conn.Close()
		syscall.Close(p.peer)
	}
}

var longAgo = time.Unix(1, 0)

// one run: returns the time from cancel() to the return of the last reader.
func run(n int) (time.Duration, error) {
	ps, err := openPairs(n)
	if err != nil {
		return 0, err
	}
	defer closePairs(ps)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var started, done, watchers sync.WaitGroup
	var bad int64
	var mu sync.Mutex
	for _, p := range ps {
		c := p.conn
		started.Add(1)
		done.Add(1)
		watchers.Add(1)
		go func() { // the watcher: context.AfterFunc before Go 1.21
			defer watchers.Done()
			<-ctx.Done()
			c.SetReadDeadline(longAgo)
		}()
		go func() {
			defer done.Done()
			var buf [64]byte
			started.Done()
			_, err := c.Read(buf[:])
			if !os.IsTimeout(err) {
				mu.Lock()
				bad++
				mu.Unlock()
			}
		}()
	}
	started.Wait()
	time.Sleep(50 * time.Millisecond) // let every reader park in the netpoller
	t0 := time.Now()
	cancel()
	done.Wait()
	el := time.Since(t0)
	watchers.Wait()
	if bad != 0 {
		return 0, fmt.Errorf("%d readers did not end with a timeout", bad)
	}
	return el, nil
}

func main() {
	nlist := flag.String("n", "1000,8000", "comma-separated reader counts")
	runs := flag.Int("runs", 5, "runs per count (the median is reported)")
	flag.Parse()
	for _, s := range strings.Split(*nlist, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n <= 0 {
			fmt.Fprintln(os.Stderr, "e2e: bad -n", s)
			os.Exit(2)
		}
		var v []float64
		for r := 0; r < *runs; r++ {
			el, err := run(n)
			if err != nil {
				fmt.Fprintln(os.Stderr, "e2e:", err)
				os.Exit(1)
			}
			v = append(v, float64(el.Nanoseconds()))
		}
		sort.Float64s(v)
		med := v[len(v)/2]
		if len(v)%2 == 0 {
			med = (v[len(v)/2-1] + v[len(v)/2]) / 2
		}
		fmt.Printf("Go: %d blocked readers: cancel -> all returned: median %.1f us (runs %d)\n",
			n, med/1e3, len(v))
		fmt.Printf("E2E,BlockedReaders/N=%d,ns,%.0f\n", n, med)
	}
}
