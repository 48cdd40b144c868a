/* SPDX-License-Identifier: MIT */
/*
 * ringctx_sqlite: SQLite under a ringctx context.
 *
 * A VFS (named RCTX_SQLITE_VFS, "ringctx") that wraps SQLite's default unix
 * VFS: every read, write, sync and truncate of a database, its rollback
 * journal and its WAL goes through ringctx's blocking calls (rctx_read,
 * rctx_write, rctx_fsync, rctx_ftruncate) or its abandonable requests
 * (rctx_async_write: writes held back and sent together, docs/sqlite.md)
 * under the context bound to the connection, so a deadline, a cancel or a
 * hang-up ends the statement at that moment whatever the disk does
 * (docs/stuck-io.md: the kernel's late completion is the library's, never
 * the caller's). Locking, shared memory (the WAL index), file names,
 * deletion and everything else that is not data I/O are the unix VFS's own.
 * Memory-mapped I/O is off (a page fault on a hung disk cannot be
 * cancelled): PRAGMA mmap_size has no effect. Temporary files (temp
 * databases, statement journals) are the unix VFS's.
 *
 * When the bound context ends, blocked I/O returns at once with an
 * SQLITE_IOERR_* code and sqlite3_interrupt() stops the CPU-bound work of
 * the connection's running statement (SQLITE_INTERRUPT). After a failed
 * statement, rctx_sqlite_ctx_err() tells a context end from a genuine I/O
 * error. rctx_sqlite_open() puts the open itself (it reads the database
 * header) under a context as well. SQLite's journal or WAL keeps the database intact, as after any
 * I/O error: the transaction rolls back, wholly.
 *
 * Build against it with `pkg-config sqlite3` and -lringctx_sqlite -lringctx.
 * Documentation: docs/sqlite.md, and a man page per function.
 */
#ifndef RINGCTX_SQLITE_H
#define RINGCTX_SQLITE_H

#include <sqlite3.h>
#include <ringctx.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RCTX_SQLITE_VFS "ringctx"

/*
 * Register the VFS RCTX_SQLITE_VFS over the default VFS (which must be a
 * unix VFS: "unix", or one of its variants), as the new default if
 * make_default is nonzero. Connections choose it with sqlite3_open_v2(...,
 * RCTX_SQLITE_VFS) or a URI "file:x.db?vfs=ringctx". Idempotent (a second
 * call only makes it the default if asked); thread-safe (it calls
 * sqlite3_initialize()). The VFS lives until the process exits.
 * Returns SQLITE_OK, SQLITE_ERROR if the default VFS is not a unix VFS,
 * SQLITE_NOMEM, or the code of sqlite3_initialize() or sqlite3_vfs_register().
 */
int rctx_sqlite_register(int make_default);

/*
 * Run the statements that db starts from now on under ctx: every read,
 * write, sync and truncate of its databases' files (main, attached, their
 * journals and WAL) is an rctx blocking call or abandonable request under
 * ctx, and when ctx ends the running statement is interrupted
 * (sqlite3_interrupt(db), from the library's runtime thread). NULL binds
 * rctx_background(): no deadline, no cancel. Call it between statements,
 * from the thread that uses db (the statements of a transaction may run
 * under different contexts; a statement that is running keeps the context it
 * started under only until its next I/O, so do not rebind mid-statement;
 * writes that the VFS held back go out under the context bound when they are
 * sent, at the latest at the transaction's commit). The connection takes a
 * reference to ctx and drops it at the next bind or when db closes; the
 * caller keeps its own. A database attached later runs under the background
 * context until the next rctx_sqlite_bind().
 * Returns SQLITE_OK; SQLITE_MISUSE if db is NULL or its main database is
 * not open through RCTX_SQLITE_VFS; SQLITE_NOMEM.
 */
int rctx_sqlite_bind(sqlite3 *db, rctx_t *ctx);

/*
 * Open a database through RCTX_SQLITE_VFS with the open itself under ctx,
 * and bind ctx to the connection. This is sqlite3_open_v2(filename, db,
 * flags, RCTX_SQLITE_VFS) with the open's own reads under ctx (SQLite
 * reads the database header there, before any statement), then
 * rctx_sqlite_bind(*db, ctx): a deadline or cancel covers the open too,
 * which rctx_sqlite_bind() on an open connection cannot. NULL ctx:
 * rctx_background(). Call rctx_sqlite_register() first. As with
 * sqlite3_open_v2, *db receives a handle (NULL only when SQLite is out of
 * memory) that the caller closes with sqlite3_close(), on failure too; a
 * failed open is not bound, and rctx_err(ctx) tells whether ctx ended it.
 * The connection takes a reference to ctx; the caller keeps its own. Any
 * thread; the connection is then used as after rctx_sqlite_bind().
 * Returns SQLITE_OK; SQLITE_MISUSE if db is NULL; the code of
 * sqlite3_open_v2() (an SQLITE_IOERR_* when ctx ended the open's read,
 * SQLITE_ERROR "no such vfs" before rctx_sqlite_register()); or that of
 * rctx_sqlite_bind() (SQLITE_MISUSE when filename is not a file the VFS
 * opens, such as ":memory:"; SQLITE_NOMEM).
 */
int rctx_sqlite_open(const char *filename, sqlite3 **db, int flags, rctx_t *ctx);

/*
 * The context bound to db (borrowed: valid until the next rctx_sqlite_bind
 * on db or until db closes; take a reference to keep it), or NULL if db is
 * NULL, not open through RCTX_SQLITE_VFS, or never bound. Same thread as
 * rctx_sqlite_bind.
 */
rctx_t *rctx_sqlite_context(sqlite3 *db);

/*
 * After a statement of db failed (any SQLITE_IOERR_*, SQLITE_INTERRUPT,
 * SQLITE_FULL...), did it end because its bound context ended? Returns 0
 * if not (a genuine error: see sqlite3_extended_errcode and
 * sqlite3_system_errno; EBUSY there means the file is fenced behind a
 * write that an earlier context abandoned and the kernel has not finished),
 * or the context's error, -ETIMEDOUT (deadline) or -ECANCELED (cancel,
 * hang-up, signal...), and then *cause (if cause is not NULL) receives
 * rctx_cause() of it (a signal context's cause reads back with
 * rctx_cause_signal()). Same thread as rctx_sqlite_bind; -EINVAL if db is
 * NULL.
 */
int rctx_sqlite_ctx_err(sqlite3 *db, int *cause);

/*
 * Give every statement that db starts from now on a context of its own
 * that times out timeout_ns after the statement starts (a child of the
 * context bound with rctx_sqlite_bind(), or of rctx_background()), as
 * the SQL function rctx_timeout(ms) of the loadable extension does; 0 turns
 * it off. Uses the connection's sqlite3_trace_v2 hook (SQLITE_TRACE_STMT and
 * SQLITE_TRACE_PROFILE):
 * it replaces a trace callback set before, and a later sqlite3_trace_v2
 * call disables the per-statement timeout. Same thread as rctx_sqlite_bind.
 * Returns SQLITE_OK, SQLITE_MISUSE (db NULL or not on RCTX_SQLITE_VFS, a
 * negative timeout_ns), SQLITE_NOMEM.
 */
int rctx_sqlite_statement_timeout(sqlite3 *db, int64_t timeout_ns);

#ifdef __cplusplus
}
#endif

#endif /* RINGCTX_SQLITE_H */
