module ringctx.bench/go/sqlite

go 1.19

// Debian's golang-github-mattn-go-sqlite3-dev (cgo, against the system's
// libsqlite3), built offline: GOPROXY=off, GOFLAGS=-mod=mod, CGO_ENABLED=1.
require github.com/mattn/go-sqlite3 v1.14.16

replace github.com/mattn/go-sqlite3 => /usr/share/gocode/src/github.com/mattn/go-sqlite3
