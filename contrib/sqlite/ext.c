/* SPDX-License-Identifier: MIT */
/*
 * The loadable extension for the stock sqlite3 shell (and any program that
 * loads extensions): `.load PATH/rctxvfs` registers the ringctx VFS as the
 * default (so the next `.open x.db` uses it; `.open file:x.db?vfs=ringctx`
 * also works) and gives every connection opened afterwards (and the one
 * that loaded it) the SQL function
 *
 *     rctx_timeout(MS)   every later statement of this connection runs
 *                        under its own MS-millisecond deadline (0: none);
 *                        returns MS.
 *     rctx_status()      'ok', or how the bound context ended:
 *                        'deadline exceeded' / 'canceled'; after
 *                        rctx_timeout(), whether the context of the
 *                        connection's previous statement had ended when
 *                        that statement did (its own statement has a
 *                        fresh one).
 */
#include <errno.h>

#include "internal.h"

SQLITE_EXTENSION_INIT1

static void timeout_fn(sqlite3_context *cx, int argc, sqlite3_value **argv)
{
	sqlite3_int64 ms = sqlite3_value_int64(argv[0]);
	int rc;

	(void)argc;
	if (ms < 0 || ms > INT64_MAX / 1000000) {
		sqlite3_result_error(cx, "rctx_timeout: milliseconds out of range", -1);
		return;
	}
	rc = rctx_sqlite_statement_timeout(sqlite3_context_db_handle(cx), ms * 1000000);
	if (rc == SQLITE_MISUSE)
		sqlite3_result_error(cx, "rctx_timeout: this database is not open through the "
				     "ringctx VFS (.open file:NAME?vfs=ringctx)", -1);
	else if (rc != SQLITE_OK)
		sqlite3_result_error_code(cx, rc);
	else
		sqlite3_result_int64(cx, ms);
}

static void status_fn(sqlite3_context *cx, int argc, sqlite3_value **argv)
{
	struct rs_file *f = rctx__sqlite_db_file(sqlite3_context_db_handle(cx), "main");
	struct rs_binding *b = f ? f->bind : NULL;
	int err = 0;

	if (b && b->stmt_timeout_ns)
		err = b->prev_err;
	else if (b && b->ctx)
		err = rctx_err(b->ctx);

	(void)argc;
	(void)argv;
	sqlite3_result_text(cx, err == -ETIMEDOUT ? "deadline exceeded" :
				err ? "canceled" : "ok", -1, SQLITE_STATIC);
}

static int add_functions(sqlite3 *db, char **err, const sqlite3_api_routines *api)
{
	(void)err;
	(void)api;
	sqlite3_create_function(db, "rctx_timeout", 1, SQLITE_UTF8, NULL, timeout_fn, NULL, NULL);
	return sqlite3_create_function(db, "rctx_status", 0, SQLITE_UTF8, NULL, status_fn, NULL,
				       NULL);
}

__attribute__((visibility("default")))
int sqlite3_rctxvfs_init(sqlite3 *db, char **err, const sqlite3_api_routines *api)
{
	int rc;

	SQLITE_EXTENSION_INIT2(api);
	rc = rctx_sqlite_register(1);
	if (rc != SQLITE_OK) {
		*err = sqlite3_mprintf("ringctx VFS: the default VFS is not a unix VFS");
		return rc;
	}
	rc = sqlite3_auto_extension((void (*)(void))add_functions);
	if (rc == SQLITE_OK)
		rc = add_functions(db, err, api);
	return rc == SQLITE_OK ? SQLITE_OK_LOAD_PERMANENTLY : rc;
}
