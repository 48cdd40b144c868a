/* SPDX-License-Identifier: MIT */
/*
 * ringctx_sqlite internals: the VFS's file (struct rs_file), the binding of a
 * connection to its context (struct rs_binding), and the process's own
 * descriptors of the files (struct rs_fd).
 *
 * Built twice: as a library against libsqlite3, and (RCTX_SQLITE_EXTENSION)
 * into the loadable extension, where every sqlite3_* call goes through the
 * routine table that the loading SQLite hands over.
 */
#ifndef RINGCTX_SQLITE_INTERNAL_H
#define RINGCTX_SQLITE_INTERNAL_H

#ifdef RCTX_SQLITE_EXTENSION
#include <sqlite3ext.h>
SQLITE_EXTENSION_INIT3
/* The SQLite that loads the extension is initialized already. */
#define rs_initialize() SQLITE_OK
#else
#include <sqlite3.h>
#define rs_initialize() sqlite3_initialize()
#endif
#include <pthread.h>
#include <stdbool.h>
#include <sys/types.h>

#include "ringctx_sqlite.h"

/*
 * One descriptor per file (inode) for the whole process, shared by every
 * ringctx-VFS file open on it and closed when the last one closes: closing
 * any descriptor of a file drops every POSIX lock the process holds on it,
 * and the unix VFS keeps its locks on its own descriptor of the same file.
 */
#define RS_FD_SPARES 4

struct rs_fd {
	dev_t dev;
	ino_t ino;
	int fd;			/* O_RDWR if any opener asked, else O_RDONLY */
	int spare[RS_FD_SPARES];	/* other descriptors of the file, kept */
	int nspare;
	bool writable;
	bool no_nowait;		/* its file system refuses RWF_NOWAIT reads */
	int refs;
	struct rs_fd *next;
};

/* Open (or share) the process's descriptor of path. NULL: -errno in *err. */
struct rs_fd *rctx__sqlite_fd_get(const char *path, bool writable, int *err);
void rctx__sqlite_fd_put(struct rs_fd *f);

/*
 * A connection's context. Shared (reference-counted) by the files of the
 * connection's databases, and by an armed after-func that interrupts the
 * connection when the context ends. mu orders that interrupt against a
 * rebind and against the connection's close (alive).
 */
struct after_arg;

struct rs_binding {
	pthread_mutex_t mu;
	int refs;			/* under mu */
	bool alive;			/* db is open: under mu */
	unsigned gen;			/* bumped at each bind: under mu */
	sqlite3 *db;
	rctx_t *base;			/* what rctx_sqlite_bind gave (ref), or NULL */
	rctx_t *ctx;			/* what the I/O runs under now (ref), or NULL */
	bool ctx_owned;			/* ctx is a per-statement child: release it */
	rctx_after_t *after;		/* interrupts db when ctx ends */
	struct after_arg *arg;		/* after's argument, freed if it never runs */
	int64_t stmt_timeout_ns;	/* per-statement timeout, 0: none */
	int prev_err;			/* with it: rctx_err() of the context of the
					   last statement that ended, as it ended */
};

void rctx__sqlite_binding_unref(struct rs_binding *b);
/* The owning file closes: no more interrupts of its connection. */
void rctx__sqlite_binding_close(struct rs_binding *b);

/* A write held back (defer.c): len bytes of buf (cap allocated) at off. */
struct rs_held {
	int64_t off;
	size_t len, cap;
	char *buf;
};

/* A file of the VFS; the unix VFS's own file follows it (real). */
struct rs_file {
	sqlite3_file base;
	sqlite3_file *real;
	int type;			/* SQLITE_OPEN_MAIN_DB, _MAIN_JOURNAL, _WAL... */
	struct rs_fd *fd;		/* NULL: everything goes to real */
	const char *name;		/* as SQLite passed it (the pager's memory) */
	struct rs_file *main;		/* journal, WAL: its database's file */
	struct rs_binding *bind;	/* main database: the connection's, or NULL */
	bool owns_bind;			/* bind was made for this file's connection */
	bool dirsync;			/* a new journal/WAL: sync its directory once */
	bool lost;			/* journal: writes it held failed to go out
					   (defer.c): its next read or size fails */
	struct rs_file *next;		/* in the registry of open databases */
	struct rs_held *held;		/* writes held back, in order (defer.c) */
	int nheld, capheld;
	size_t held_bytes;
	struct rs_file *holder;		/* main database: the file of its group
					   (itself, its journal) holding writes */
	int nwal;			/* main database: its WAL files open */
	int njournal;			/* main database: its journal files open */
	int dirfd;			/* main database: its directory, once a
					   journal or WAL synced it, or -1 */
};

/*
 * The context the I/O of f runs under now: its connection's; before the
 * connection is bound, that of the rctx_sqlite_open() this thread is in
 * (rctx__sqlite_opening), else rctx_background().
 */
rctx_t *rctx__sqlite_file_ctx(struct rs_file *f);
extern _Thread_local rctx_t *rctx__sqlite_opening;

/* This thread's ring for the VFS's requests, or NULL (out of memory):
 * destroyed when the thread exits (defer.c). */
rctx_ring_t *rctx__sqlite_ring(void);

/* Record err (negative errno) for sqlite3_system_errno(); returns rc. */
int rctx__sqlite_fail(int err, int rc);

/*
 * Writes held back (defer.c). A group is a database and its journal and
 * WAL (f->main). may_hold: would this write of f be held back? hold:
 * hold it (the group's writes of another file are sent first). flush: send
 * f's held writes; flush_group: those of f's group. They return SQLITE_OK or
 * the writes' error (SQLITE_IOERR_WRITE, SQLITE_FULL, SQLITE_IOERR_NOMEM), and
 * hold nothing of f afterwards either way. free_held: at close.
 */
bool rctx__sqlite_may_hold(struct rs_file *f, const void *buf, int amt, int64_t off);
int rctx__sqlite_hold(struct rs_file *f, const void *buf, int amt, int64_t off);
/* Does every write f holds end at or before off? (A read from off on
 * then reads what it would after they are sent.) */
bool rctx__sqlite_held_below(const struct rs_file *f, int64_t off);
int rctx__sqlite_flush(struct rs_file *f);
int rctx__sqlite_flush_group(struct rs_file *f);
/* Send what f's group holds and fdatasync f: f's held writes and the sync
 * as one request when they fit in one. SQLITE_OK, or the error of the
 * writes (SQLITE_IOERR_WRITE; also when the sync went with them, whose
 * error cannot be told from theirs), of a sync alone (SQLITE_IOERR_FSYNC),
 * SQLITE_FULL (ENOSPC). */
int rctx__sqlite_flush_sync(struct rs_file *f);
void rctx__sqlite_drop_held(struct rs_file *f);
void rctx__sqlite_free_held(struct rs_file *f);

/* The ringctx-VFS file of database zDb ("main"...) of db, or NULL. */
struct rs_file *rctx__sqlite_db_file(sqlite3 *db, const char *zDb);

#endif /* RINGCTX_SQLITE_INTERNAL_H */
