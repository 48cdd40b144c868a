// Command objd is the Go net/http peer of ringctx-objd in the service
// benchmark (bench/objd/run.sh): an object server over a directory, written
// the way a Go service would be, with the standard library only.
//
//	GET/HEAD  http.ServeContent of ROOT/<path> (sendfile for the body)
//	PUT       temporary file in the key's directory, write, fsync, rename
//	          onto the key, fsync of the directory; 201 new, 204 replaced
//
// SIGTERM/SIGINT: http.Server.Shutdown with the -drain grace, then exit.
// It prints "listening on ADDR" once it accepts connections. GOMAXPROCS
// comes from the environment (the driver sets 2).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path"
	"path/filepath"
	"syscall"
	"time"
)

type server struct {
	root string
}

// file maps a request path to a file under the root ("" when it is not a
// plain object key).
func (s *server) file(p string) string {
	p = path.Clean("/" + p)
	if p == "/" {
		return ""
	}
	return filepath.Join(s.root, filepath.FromSlash(p))
}

func (s *server) get(w http.ResponseWriter, r *http.Request, name string) {
	f, err := os.Open(name)
	if err != nil {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || st.IsDir() {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	// A type of its own, so that ServeContent does not sniff the content.
	w.Header().Set("Content-Type", "application/octet-stream")
	http.ServeContent(w, r, name, st.ModTime(), f)
}

func (s *server) put(w http.ResponseWriter, r *http.Request, name string) {
	dir := filepath.Dir(name)
	tmp, err := os.CreateTemp(dir, ".goobjd-tmp.")
	if err != nil {
		http.Error(w, err.Error(), http.StatusConflict)
		return
	}
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err = io.Copy(tmp, r.Body); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if err = tmp.Sync(); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	if err = tmp.Close(); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	_, statErr := os.Lstat(name)
	if err = os.Rename(tmp.Name(), name); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	ok = true
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	if statErr == nil {
		w.WriteHeader(http.StatusNoContent)
	} else {
		w.WriteHeader(http.StatusCreated)
	}
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name := s.file(r.URL.Path)
	if name == "" {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		s.get(w, r, name)
	case http.MethodPut:
		s.put(w, r, name)
	default:
		w.Header().Set("Allow", "GET, HEAD, PUT")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address")
	drain := flag.Duration("drain", time.Second, "grace for requests in flight at SIGTERM")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: objd [-listen ADDR] [-drain DUR] ROOT")
		os.Exit(2)
	}
	root, err := filepath.Abs(flag.Arg(0))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	srv := &http.Server{Handler: &server{root: root}}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	done := make(chan struct{})
	go func() {
		<-sigs
		ctx, cancel := context.WithTimeout(context.Background(), *drain)
		defer cancel()
		srv.Shutdown(ctx)
		close(done)
	}()
	fmt.Printf("listening on %s\n", ln.Addr())
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	<-done
}
