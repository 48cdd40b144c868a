/* SPDX-License-Identifier: MIT */
/*
 * Description: the ringctx SQLite VFS is as correct as SQLite's own unix
 * VFS, on a healthy disk. Rollback-journal and WAL databases written
 * through it read back through the default VFS and pass integrity_check;
 * it and the stock sqlite3 shell (another process, default VFS) write the
 * same database at once without losing a row; closing a second connection
 * of the process does not drop the first one's POSIX locks (another
 * process still cannot write under its read transaction); PRAGMA mmap_size
 * maps nothing. Binding: a statement under a cancelled or expired context
 * fails and rctx_sqlite_ctx_err() says so (with the cause), a CPU-bound
 * statement is interrupted at its deadline, rebinding a live context makes
 * the connection work again, and a per-statement timeout starts afresh for
 * each statement. rctx_sqlite_open() runs the open's own read under its
 * context (a context ended before it fails the open) and binds it. The
 * extension loaded into the stock shell: rctx_timeout() interrupts a
 * CPU-bound statement at its deadline, and rctx_status() then says
 * 'deadline exceeded' (and 'ok' after a statement in time).
 *
 * Only outcomes and orderings are asserted; every wait is bounded.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "sqlite_util.h"

TestSuite(sqlite_vfs, .timeout = 120);

static char dir[64];

static void setup(void)
{
	su_setup_dir(dir, sizeof(dir), "/tmp/rctx-sqlite-XXXXXX");
}

static void teardown(void)
{
	su_remove_dir(dir);
}

static void path_of(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s", dir, name);
}

/* Fill t with n rows in transactions of 100, through db. */
static void fill(sqlite3 *db, int n)
{
	su_ok(db, "CREATE TABLE IF NOT EXISTS t(k INTEGER PRIMARY KEY, v TEXT)");
	for (int i = 0; i < n; i += 100) {
		su_ok(db, "BEGIN");
		for (int j = i; j < i + 100 && j < n; j++) {
			char sql[128];

			snprintf(sql, sizeof(sql),
				 "INSERT INTO t(v) VALUES (printf('%%d-%%.*c', %d, 200, 'x'))", j);
			su_ok(db, sql);
		}
		su_ok(db, "COMMIT");
	}
}

static void roundtrip(const char *mode)
{
	char path[128], sql[64];
	sqlite3 *db;

	path_of(path, sizeof(path), "r.db");
	db = su_open(path, RCTX_SQLITE_VFS);
	snprintf(sql, sizeof(sql), "PRAGMA journal_mode=%s", mode);
	su_ok(db, sql);
	fill(db, 2000);
	su_ok(db, "UPDATE t SET v = v || '!' WHERE k % 3 = 0");
	su_ok(db, "DELETE FROM t WHERE k % 7 = 0");
	cr_assert(su_intact(db));
	cr_assert_eq(su_int(db, "SELECT count(*) FROM t"), 2000 - 2000 / 7);
	cr_assert_eq(sqlite3_close(db), SQLITE_OK);

	db = su_open(path, NULL);
	cr_assert(su_intact(db), "the default VFS reads a sound database");
	cr_assert_eq(su_int(db, "SELECT count(*) FROM t"), 2000 - 2000 / 7);
	cr_assert_eq(su_int(db, "SELECT count(*) FROM t WHERE v LIKE '%!'"),
		     2000 / 3 - 2000 / 21);
	sqlite3_close(db);
}

Test(sqlite_vfs, rollback_journal_database_reads_back_intact, .init = setup, .fini = teardown)
{
	roundtrip("delete");
}

Test(sqlite_vfs, wal_database_reads_back_intact, .init = setup, .fini = teardown)
{
	roundtrip("wal");
}

/*
 * This process (ringctx VFS) and the stock shell (default VFS) insert into
 * the same database at once; every row of both is there at the end.
 */
static void two_writers(const char *mode)
{
	char path[128], sql[64];
	sqlite3 *db;
	char *script = malloc(100 * 300 + 32), *p = script;
	struct su_shell shell;

	cr_assert_not_null(script);
	if (!su_have_shell())
		cr_skip_test("needs the sqlite3 shell (Debian: sqlite3)");
	path_of(path, sizeof(path), "c.db");
	db = su_open(path, RCTX_SQLITE_VFS);
	snprintf(sql, sizeof(sql), "PRAGMA journal_mode=%s", mode);
	su_ok(db, sql);
	su_ok(db, "CREATE TABLE t(k INTEGER PRIMARY KEY, who TEXT, n INT)");
	p += sprintf(p, ".timeout 20000\n");
	for (int i = 0; i < 300; i++)
		p += sprintf(p, "BEGIN IMMEDIATE; INSERT INTO t(who, n) VALUES ('shell', %d); "
			     "COMMIT;\n", i);
	shell = su_shell_start(path);
	fputs(script, shell.in);
	fflush(shell.in);
	free(script);
	for (int i = 0; i < 300; i++) {
		char ins[96];

		snprintf(ins, sizeof(ins), "INSERT INTO t(who, n) VALUES ('vfs', %d)", i);
		su_ok(db, ins);
		if (i % 50 == 0)
			cr_assert_geq(su_int(db, "SELECT count(*) FROM t"), i + 1);
	}
	{ int st_ = su_shell_wait(shell); cr_assert_eq(st_, 0, "the shell's inserts failed: status %d", st_); }
	cr_assert_eq(su_int(db, "SELECT count(*) FROM t WHERE who = 'vfs'"), 300);
	cr_assert_eq(su_int(db, "SELECT count(*) FROM t WHERE who = 'shell'"), 300);
	cr_assert_eq(su_int(db, "SELECT count(DISTINCT n) FROM t WHERE who = 'shell'"), 300);
	cr_assert(su_intact(db));
	sqlite3_close(db);
}

Test(sqlite_vfs, writes_with_the_stock_shell_at_once_rollback, .init = setup, .fini = teardown)
{
	two_writers("delete");
}

Test(sqlite_vfs, writes_with_the_stock_shell_at_once_wal, .init = setup, .fini = teardown)
{
	two_writers("wal");
}

/*
 * Connection A holds a read transaction (a SHARED POSIX lock). Connection
 * B of the same process opens the same database, reads, and closes: the
 * process's descriptors of the file must not be closed under A's lock, or
 * another process could write under A's read.
 */
Test(sqlite_vfs, closing_a_second_connection_keeps_the_first_ones_locks, .init = setup,
     .fini = teardown)
{
	char path[128];
	sqlite3 *a, *b;

	if (!su_have_shell())
		cr_skip_test("needs the sqlite3 shell (Debian: sqlite3)");
	path_of(path, sizeof(path), "l.db");
	a = su_open(path, RCTX_SQLITE_VFS);
	fill(a, 10);
	su_ok(a, "BEGIN");
	cr_assert_eq(su_int(a, "SELECT count(*) FROM t"), 10);
	b = su_open(path, RCTX_SQLITE_VFS);
	cr_assert_eq(su_int(b, "SELECT count(*) FROM t"), 10);
	cr_assert_eq(sqlite3_close(b), SQLITE_OK);
	cr_assert_neq(su_shell(path, "INSERT INTO t(v) VALUES ('other');\n"), 0,
		      "another process wrote under our read transaction: a lock was dropped");
	su_ok(a, "COMMIT");
	cr_assert_eq(su_shell(path, ".timeout 10000\nINSERT INTO t(v) VALUES ('other');\n"), 0);
	cr_assert_eq(su_int(a, "SELECT count(*) FROM t"), 11);
	sqlite3_close(a);
}

/* Is a file named like path mapped into this process? */
static bool mapped(const char *path)
{
	char line[512];
	bool found = false;
	FILE *f = fopen("/proc/self/maps", "re");

	cr_assert_not_null(f);
	while (!found && fgets(line, sizeof(line), f))
		found = strstr(line, path) && !strstr(line, "-shm");
	fclose(f);
	return found;
}

Test(sqlite_vfs, mmap_size_maps_nothing, .init = setup, .fini = teardown)
{
	char path[128];
	sqlite3 *db;

	path_of(path, sizeof(path), "m.db");
	db = su_open(path, RCTX_SQLITE_VFS);
	fill(db, 500);
	su_ok(db, "PRAGMA mmap_size = 268435456");
	cr_assert_eq(su_int(db, "SELECT count(*) FROM t"), 500);
	cr_assert_not(mapped(path), "the database is mapped");
	sqlite3_close(db);
}

Test(sqlite_vfs, statement_under_a_cancelled_context_fails_with_its_cause, .init = setup,
     .fini = teardown)
{
	char path[128];
	rctx_t *ctx;
	sqlite3 *db;
	int rc, cause = 0;

	path_of(path, sizeof(path), "b.db");
	db = su_open(path, RCTX_SQLITE_VFS);
	fill(db, 100);
	sqlite3_close(db);
	db = su_open(path, RCTX_SQLITE_VFS);
	ctx = rctx_with_cancel(rctx_background());
	cr_assert_eq(rctx_sqlite_bind(db, ctx), SQLITE_OK);
	cr_assert_eq(rctx_sqlite_context(db), ctx);
	cr_assert_eq(su_int(db, "SELECT count(*) FROM t"), 100);
	cr_assert_eq(rctx_sqlite_ctx_err(db, &cause), 0);
	rctx_cancel_cause(ctx, -ECONNRESET);
	su_int_rc(db, "SELECT count(*) FROM t", &rc);
	cr_assert_neq(rc, SQLITE_OK);
	cr_assert_eq(rctx_sqlite_ctx_err(db, &cause), -ECANCELED);
	cr_assert_eq(cause, -ECONNRESET);
	rc = su_exec(db, "INSERT INTO t(v) VALUES ('no')");
	cr_assert(rc != SQLITE_OK, "a write under a cancelled context succeeded");
	rctx_release(ctx);

	cr_assert_eq(rctx_sqlite_bind(db, NULL), SQLITE_OK);
	su_ok(db, "INSERT INTO t(v) VALUES ('yes')");
	cr_assert_eq(su_int(db, "SELECT count(*) FROM t"), 101, "the cancelled insert left nothing");
	cr_assert_eq(rctx_sqlite_ctx_err(db, NULL), 0);
	cr_assert(su_intact(db));
	sqlite3_close(db);
}

Test(sqlite_vfs, cpu_bound_statement_is_interrupted_at_its_deadline, .init = setup,
     .fini = teardown)
{
	char path[128];
	rctx_t *ctx;
	sqlite3 *db;
	int64_t t0, took;
	int rc;

	path_of(path, sizeof(path), "i.db");
	db = su_open(path, RCTX_SQLITE_VFS);
	fill(db, 10);
	t0 = th_now_ns();	/* before the deadline is set: took >= 200 ms */
	ctx = rctx_with_timeout(rctx_background(), MS(200));
	cr_assert_eq(rctx_sqlite_bind(db, ctx), SQLITE_OK);
	su_int_rc(db, "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
		      "SELECT count(*) FROM c", &rc);
	took = th_now_ns() - t0;
	cr_assert_eq(rc, SQLITE_INTERRUPT);
	cr_assert_geq(took, MS(200), "interrupted before its deadline");
	cr_assert_lt(took, MS(TH_PATIENCE_MS));
	cr_assert_eq(rctx_sqlite_ctx_err(db, NULL), -ETIMEDOUT);
	rctx_release(ctx);
	cr_assert_eq(rctx_sqlite_bind(db, NULL), SQLITE_OK);
	cr_assert_eq(su_int(db, "SELECT count(*) FROM t"), 10);
	sqlite3_close(db);
}

Test(sqlite_vfs, statement_timeout_starts_afresh_for_each_statement, .init = setup,
     .fini = teardown)
{
	char path[128];
	sqlite3 *db;
	int rc;

	path_of(path, sizeof(path), "s.db");
	db = su_open(path, RCTX_SQLITE_VFS);
	fill(db, 10);
	cr_assert_eq(rctx_sqlite_statement_timeout(db, MS(300)), SQLITE_OK);
	cr_assert_eq(su_int(db, "SELECT count(*) FROM t"), 10);
	th_sleep_ms(400);	/* the first statement's deadline is long past */
	cr_assert_eq(su_int(db, "SELECT count(*) FROM t"), 10);
	su_ok(db, "INSERT INTO t(v) VALUES ('in time')");
	su_int_rc(db, "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
		      "SELECT count(*) FROM c", &rc);
	cr_assert_eq(rc, SQLITE_INTERRUPT);
	cr_assert_eq(rctx_sqlite_ctx_err(db, NULL), -ETIMEDOUT);
	cr_assert_eq(rctx_sqlite_statement_timeout(db, 0), SQLITE_OK);
	cr_assert_eq(su_int(db, "SELECT count(*) FROM t"), 11);
	sqlite3_close(db);
}

Test(sqlite_vfs, bind_refuses_a_connection_of_another_vfs, .init = setup, .fini = teardown)
{
	char path[128];
	sqlite3 *db;

	path_of(path, sizeof(path), "o.db");
	db = su_open(path, NULL);
	cr_assert_eq(rctx_sqlite_bind(db, NULL), SQLITE_MISUSE);
	cr_assert_eq(rctx_sqlite_bind(NULL, NULL), SQLITE_MISUSE);
	cr_assert_null(rctx_sqlite_context(db));
	cr_assert_eq(rctx_sqlite_ctx_err(NULL, NULL), -EINVAL);
	cr_assert_eq(rctx_sqlite_statement_timeout(db, -1), SQLITE_MISUSE);
	sqlite3_close(db);
}

Test(sqlite_vfs, open_runs_under_its_context_and_binds_it, .init = setup, .fini = teardown)
{
	char path[128];
	rctx_t *ctx;
	sqlite3 *db;
	int rc, cause = 0;

	path_of(path, sizeof(path), "p.db");
	db = su_open(path, RCTX_SQLITE_VFS);
	fill(db, 10);
	sqlite3_close(db);

	/* Ended before the open: the open's own read (the header) fails. */
	ctx = rctx_with_cancel(rctx_background());
	rctx_cancel_cause(ctx, -ECONNRESET);
	db = NULL;
	rc = rctx_sqlite_open(path, &db, SQLITE_OPEN_READWRITE, ctx);
	cr_assert_eq(rc & 0xff, SQLITE_IOERR, "rc %d", rc);
	cr_assert_not_null(db);
	cr_assert_null(rctx_sqlite_context(db), "a failed open is bound");
	sqlite3_close(db);
	rctx_release(ctx);

	/* A live one is bound: the statements run under it. */
	ctx = rctx_with_cancel(rctx_background());
	cr_assert_eq(rctx_sqlite_open(path, &db, SQLITE_OPEN_READWRITE, ctx), SQLITE_OK);
	cr_assert_eq(rctx_sqlite_context(db), ctx);
	cr_assert_eq(su_int(db, "SELECT count(*) FROM t"), 10);
	rctx_cancel_cause(ctx, -ECONNRESET);
	rctx_release(ctx);	/* the connection keeps its own reference */
	su_int_rc(db, "SELECT count(*) FROM t", &rc);
	cr_assert_neq(rc, SQLITE_OK);
	cr_assert_eq(rctx_sqlite_ctx_err(db, &cause), -ECANCELED);
	cr_assert_eq(cause, -ECONNRESET);
	sqlite3_close(db);

	cr_assert_eq(rctx_sqlite_open(path, NULL, SQLITE_OPEN_READWRITE, NULL), SQLITE_MISUSE);
	db = NULL;
	cr_assert_eq(rctx_sqlite_open(":memory:", &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_MISUSE,
		     "an in-memory database is bound");
	sqlite3_close(db);
}

/*
 * The extension in the stock shell: rctx_timeout() cuts a CPU-bound
 * statement at its deadline, and rctx_status() then tells whether the
 * previous statement's context had ended when that statement did.
 */
Test(sqlite_vfs, extension_in_the_stock_shell_reports_the_statement_deadline, .init = setup,
     .fini = teardown)
{
	char in[128], cmd[512], out[256] = "", want[128];
	int ms = th_under_valgrind() ? 5000 : 1000;
	size_t n;
	FILE *f;

	if (!su_have_shell())
		cr_skip_test("the stock sqlite3 shell is not installed (Debian: sqlite3)");
	path_of(in, sizeof(in), "in.sql");
	f = fopen(in, "w");
	cr_assert_not_null(f);
	/* Every statement gets ms: the quick ones must finish well within it. */
	fprintf(f, ".load %s\n.open %s/e.db\n"
		   "SELECT rctx_timeout(%d);\n"
		   "SELECT rctx_status();\n"
		   "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
		   "SELECT count(*) FROM c;\n"
		   "SELECT rctx_status();\n"
		   "SELECT 'next';\n"
		   "SELECT rctx_status();\n", RCTX_SQLITE_EXT, dir, ms);
	fclose(f);
	/* stdout only: the shell's error line goes to stderr, unordered. */
	snprintf(cmd, sizeof(cmd), "timeout 60 sqlite3 <%s 2>/dev/null", in);
	f = popen(cmd, "r");
	cr_assert_not_null(f);
	n = fread(out, 1, sizeof(out) - 1, f);
	out[n] = '\0';
	pclose(f);
	snprintf(want, sizeof(want), "%d\nok\ndeadline exceeded\nnext\nok\n", ms);
	cr_assert_str_eq(out, want);
}
