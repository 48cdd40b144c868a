/* SPDX-License-Identifier: MIT */
/*
 * A SQLite query with a time budget that holds even when the disk hangs.
 *
 *     sqlite_deadline DB [BUDGET_MS [SQL]]
 *
 * Opens DB (a path or a "file:" URI; created if missing, as by the sqlite3
 * shell) through the ringctx VFS and runs SQL (default: SELECT count(*)
 * FROM t), both under a context that ends after BUDGET_MS (default 200) or
 * at SIGINT/SIGTERM; prints the rows, or how long it took and why the
 * context ended it.
 *
 * Go: db.QueryContext(ctx, ...) with ctx from context.WithTimeout and
 * signal.NotifyContext; but a Go program whose read(2) hangs on a dead disk
 * keeps that thread in the kernel. ringctx: rctx_sqlite_open() runs the
 * open and every later read, write and sync of the connection as rctx
 * blocking calls under the context, so at its end the open or the statement
 * fails at once (SQLITE_IOERR_*, or SQLITE_INTERRUPT if it was computing),
 * the library keeps the I/O the kernel still holds, and this process is
 * free to print and exit.
 *
 * Exit status: 0 the SQL ran; 2 the context ended it (deadline or signal);
 * 1 any other error (a genuine I/O error, bad SQL, no such file...).
 */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ringctx_sqlite.h>

#define MS 1000000LL

/* Print a row as the sqlite3 shell does: columns separated by '|'. */
static int print_row(void *arg, int n, char **cols, char **names)
{
	(void)arg; (void)names;
	for (int i = 0; i < n; i++)
		printf("%s%s", i ? "|" : "", cols[i] ? cols[i] : "");
	putchar('\n');
	return 0;
}

/* Why the context ended, from its error and its cause. */
static void describe(int err, int cause, char *buf, size_t len)
{
	int sig = rctx_cause_signal(cause);

	if (err == -ETIMEDOUT)
		snprintf(buf, len, "deadline exceeded");
	else if (sig)
		snprintf(buf, len, "canceled by SIG%s", sigabbrev_np(sig));
	else
		snprintf(buf, len, "canceled (%s)", strerror(-cause));
}

/* Did the context end it? 0 if not; else its error, and its cause. A
 * connection that failed to open was never bound: ask the context. */
static int context_ended(sqlite3 *db, bool opened, rctx_t *ctx, int *cause)
{
	if (opened)
		return rctx_sqlite_ctx_err(db, cause);
	*cause = rctx_cause(ctx);
	return rctx_err(ctx);
}

int main(int argc, char **argv)
{
	const int sigs[] = { SIGINT, SIGTERM };
	const char *sql = argc > 3 ? argv[3] : "SELECT count(*) FROM t";
	long budget = argc > 2 ? strtol(argv[2], NULL, 10) : 200;
	rctx_t *sig, *ctx;
	sqlite3 *db = NULL;
	int rc, err, cause = 0, status = 0;
	bool opened;
	int64_t t0;
	double took;
	char why[64];

	if (argc < 2 || budget <= 0 || budget > 86400000)	/* up to a day */
		return fprintf(stderr, "usage: %s DB [BUDGET_MS [SQL]]\n", argv[0]), 1;
	if (rctx_sqlite_register(0) != SQLITE_OK)
		return fprintf(stderr, "cannot register the ringctx VFS\n"), 1;

	/* The budget starts now: a child of a context that SIGINT or SIGTERM
	 * cancels. It covers the open (SQLite reads the header there) and
	 * every statement of the connection. */
	t0 = rctx_now();
	sig = rctx_with_signals(rctx_background(), sigs, 2);
	ctx = sig ? rctx_with_timeout(sig, budget * MS) : NULL;
	if (!ctx)
		return perror("context"), 1;
	rc = rctx_sqlite_open(argv[1], &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
			      SQLITE_OPEN_URI, ctx);
	opened = rc == SQLITE_OK;
	if (opened)
		rc = sqlite3_exec(db, sql, print_row, NULL, NULL);
	took = (double)(rctx_now() - t0) / MS;

	if (rc == SQLITE_OK) {
		printf("ok: %.1f ms of %ld ms\n", took, budget);
	} else if ((err = context_ended(db, opened, ctx, &cause))) {
		/* The context ended it, not the disk or the SQL. */
		describe(err, cause, why, sizeof(why));
		printf("context ended after %.1f ms (budget %ld ms): %s [SQLite: %s%s]\n", took,
		       budget, why, sqlite3_errstr(sqlite3_extended_errcode(db)),
		       opened ? "" : ", in the open");
		status = 2;
	} else {
		printf("error after %.1f ms: %s [SQLite code %d, errno %d]\n", took,
		       sqlite3_errmsg(db), sqlite3_extended_errcode(db), sqlite3_system_errno(db));
		status = 1;
	}

	/* The kernel may still hold a read: the library keeps it, not us. */
	sqlite3_close(db);
	rctx_release(ctx);
	rctx_release(sig);
	return status;
}
