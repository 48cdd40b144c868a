/* SPDX-License-Identifier: MIT */
/*
 * Description: the ringctx SQLite VFS holds writes back and sends them
 * together (contrib/sqlite/defer.c), and nothing SQLite depends on sees the
 * difference. In every rollback journal mode (DELETE, TRUNCATE, PERSIST,
 * and PERSIST under locking_mode=EXCLUSIVE) and at every synchronous level
 * (OFF, NORMAL, FULL), each committed transaction is visible at once to a
 * connection of the default unix VFS, and a transaction that spills pages
 * to the database before its commit reads its own writes back. A writer
 * killed with SIGKILL between transactions (synchronous=OFF: nothing is
 * synced, only the order of the writes protects the database) loses no
 * transaction that it saw committed, and leaves no transaction partly
 * there. A commit sends fewer requests to the library than it changes pages:
 * one per sync, which takes the writes before it along.
 *
 * Only outcomes and orderings are asserted; every wait is bounded.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include "sqlite_util.h"

TestSuite(sqlite_defer, .timeout = 120);

#define ROWS_PER_TXN 25

static char dir[64];

static void setup(void)
{
	su_setup_dir(dir, sizeof(dir), "/tmp/rctx-sqlite-defer-XXXXXX");
}

static void teardown(void)
{
	su_remove_dir(dir);
}

/* Journal mode, synchronous level and locking mode of a connection. */
static void configure(sqlite3 *db, const char *mode, const char *sync, bool exclusive)
{
	char sql[160];

	snprintf(sql, sizeof(sql), "PRAGMA journal_mode=%s; PRAGMA synchronous=%s%s", mode, sync,
		 exclusive ? "; PRAGMA locking_mode=EXCLUSIVE" : "");
	su_ok(db, sql);
}

/* Transaction i: ROWS_PER_TXN rows of i, and every older row's v + 1. */
static const char *txn_sql(int i, char *buf, size_t len)
{
	snprintf(buf, len,
		 "BEGIN; UPDATE t SET v = v + 1; "
		 "WITH RECURSIVE s(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM s WHERE x < %d) "
		 "INSERT INTO t(n, v, pad) SELECT %d, 0, printf('%%.*c', 300 + x * 7, 'p') FROM s; "
		 "COMMIT",
		 ROWS_PER_TXN, i);
	return buf;
}

static void create(sqlite3 *db)
{
	su_ok(db, "CREATE TABLE IF NOT EXISTS t(k INTEGER PRIMARY KEY, n INT, v INT, pad TEXT)");
}

static void visible_at_once(const char *mode, const char *sync)
{
	char path[128], sql[512];
	sqlite3 *db, *other;

	snprintf(path, sizeof(path), "%s/v-%s-%s.db", dir, mode, sync);
	db = su_open(path, RCTX_SQLITE_VFS);
	configure(db, mode, sync, false);
	create(db);
	other = su_open(path, NULL);
	for (int i = 1; i <= 20; i++) {
		long long rows, sum;

		su_ok(db, txn_sql(i, sql, sizeof(sql)));
		rows = su_int(other, "SELECT count(*) FROM t");
		cr_assert_eq(rows, i * ROWS_PER_TXN, "%s/%s: transaction %d not visible", mode, sync, i);
		/* rows of transaction j were updated i - j times */
		sum = su_int(other, "SELECT sum(v) FROM t");
		cr_assert_eq(sum, (long long)ROWS_PER_TXN * (i - 1) * i / 2);
	}
	cr_assert(su_intact(other));
	sqlite3_close(other);
	cr_assert_eq(sqlite3_close(db), SQLITE_OK);
}

Test(sqlite_defer, every_rollback_mode_and_sync_level_is_visible_at_once, .init = setup,
     .fini = teardown)
{
	static const char *const modes[] = { "delete", "truncate", "persist" };
	static const char *const syncs[] = { "off", "normal", "full" };

	for (size_t m = 0; m < 3; m++)
		for (size_t s = 0; s < 3; s++)
			visible_at_once(modes[m], syncs[s]);
}

Test(sqlite_defer, exclusive_locking_mode_reads_back_after_close, .init = setup,
     .fini = teardown)
{
	char path[128], sql[512];
	sqlite3 *db;

	snprintf(path, sizeof(path), "%s/x.db", dir);
	db = su_open(path, RCTX_SQLITE_VFS);
	configure(db, "persist", "normal", true);
	create(db);
	for (int i = 1; i <= 20; i++)
		su_ok(db, txn_sql(i, sql, sizeof(sql)));
	cr_assert_eq(sqlite3_close(db), SQLITE_OK);
	db = su_open(path, NULL);
	cr_assert(su_intact(db));
	cr_assert_eq(su_int(db, "SELECT count(*) FROM t"), 20 * ROWS_PER_TXN);
	sqlite3_close(db);
}

/*
 * A cache of 10 pages: a transaction that changes more pages writes some
 * of them to the database before its commit (a spill), and reads them back.
 */
Test(sqlite_defer, a_transaction_reads_back_what_it_spilled, .init = setup, .fini = teardown)
{
	char path[128], sql[512];
	sqlite3 *db, *other;

	snprintf(path, sizeof(path), "%s/s.db", dir);
	db = su_open(path, RCTX_SQLITE_VFS);
	configure(db, "delete", "normal", false);
	create(db);
	for (int i = 1; i <= 8; i++)
		su_ok(db, txn_sql(i, sql, sizeof(sql)));
	su_ok(db, "PRAGMA cache_size=10");
	su_ok(db, "BEGIN");
	su_ok(db, "UPDATE t SET pad = pad || 'q', v = v + 100");
	cr_assert_eq(su_int(db, "SELECT count(*) FROM t WHERE pad LIKE '%q' AND v >= 100"),
		     8 * ROWS_PER_TXN);
	su_ok(db, "UPDATE t SET v = v - 100");
	su_ok(db, "COMMIT");
	other = su_open(path, NULL);
	cr_assert(su_intact(other));
	cr_assert_eq(su_int(other, "SELECT count(*) FROM t WHERE pad LIKE '%q'"), 8 * ROWS_PER_TXN);
	cr_assert_eq(su_int(other, "SELECT sum(v)"
				   " FROM t"), (long long)ROWS_PER_TXN * 7 * 8 / 2);
	sqlite3_close(other);
	sqlite3_close(db);
}

/* ---- a writer killed between transactions --------------------------------- */

/* The child: transactions until killed; after each COMMIT returns, its
 * number on out. Exits 2 if anything fails. */
/* A child's connection through the ringctx VFS, synchronous=OFF; exits 2
 * if it cannot be made. */
static sqlite3 *child_open(const char *path, const char *mode, bool exclusive)
{
	char sql[160];
	sqlite3 *db;

	if (rctx_sqlite_register(0) != SQLITE_OK ||
	    sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, RCTX_SQLITE_VFS) != SQLITE_OK)
		_exit(2);
	snprintf(sql, sizeof(sql), "PRAGMA journal_mode=%s; PRAGMA synchronous=OFF%s", mode,
		 exclusive ? "; PRAGMA locking_mode=EXCLUSIVE" : "");
	if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK)
		_exit(2);
	return db;
}

static void writer(const char *path, const char *mode, bool exclusive, int out)
{
	sqlite3 *db = child_open(path, mode, exclusive);
	char sql[512];

	for (int i = 1;; i++) {
		if (sqlite3_exec(db, txn_sql(i, sql, sizeof(sql)), NULL, NULL, NULL) != SQLITE_OK)
			_exit(2);
		if (write(out, &i, sizeof(i)) != sizeof(i))
			_exit(2);
	}
}

static void killed_writer(const char *mode, bool exclusive, int kill_after)
{
	char path[128];
	int p[2], last = 0, n, status;
	sqlite3 *db;
	pid_t pid;

	snprintf(path, sizeof(path), "%s/k-%s%s.db", dir, mode, exclusive ? "-x" : "");
	db = su_open(path, NULL);
	create(db);
	sqlite3_close(db);
	cr_assert_eq(pipe(p), 0);
	fflush(NULL);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		close(p[0]);
		writer(path, mode, exclusive, p[1]);
	}
	close(p[1]);
	/* Read the commits as they come; kill it in the middle of the next. */
	for (int64_t end = th_now_ns() + MS(TH_PATIENCE_MS); last < kill_after;) {
		struct pollfd pfd = { .fd = p[0], .events = POLLIN };

		cr_assert_lt(th_now_ns(), end, "the writer committed only %d transactions", last);
		if (poll(&pfd, 1, 100) == 1) {
			n = (int)read(p[0], &last, sizeof(last));
			cr_assert_eq(n, (int)sizeof(last), "the writer failed");
		}
	}
	cr_assert_eq(kill(pid, SIGKILL), 0);
	cr_assert(WAIT_UNTIL(waitpid(pid, &status, WNOHANG) == pid, TH_PATIENCE_MS));
	cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "status %d", status);
	while (read(p[0], &n, sizeof(n)) == sizeof(n))
		last = n;	/* commits reported before the kill */
	close(p[0]);

	db = su_open(path, NULL);	/* rolls a hot journal back */
	cr_assert(su_intact(db), "%s: integrity_check failed", mode);
	n = (int)su_int(db, "SELECT count(*) FROM t");
	cr_assert_eq(n % ROWS_PER_TXN, 0, "%s: a transaction is partly there (%d rows)", mode, n);
	cr_assert_geq(n / ROWS_PER_TXN, last, "%s: %d transactions committed, %d there", mode,
		      last, n / ROWS_PER_TXN);
	cr_assert_leq(n / ROWS_PER_TXN, last + 1, "%s: more transactions than were made", mode);
	cr_assert_eq(su_int(db, "SELECT count(*) FROM t WHERE v != (SELECT max(n) FROM t) - n"),
		     0, "%s: an update is partly there", mode);
	sqlite3_close(db);
}

Test(sqlite_defer, killed_writer_loses_no_commit_delete, .init = setup, .fini = teardown)
{
	killed_writer("delete", false, 40);
}

Test(sqlite_defer, killed_writer_loses_no_commit_truncate, .init = setup, .fini = teardown)
{
	killed_writer("truncate", false, 40);
}

Test(sqlite_defer, killed_writer_loses_no_commit_persist, .init = setup, .fini = teardown)
{
	killed_writer("persist", false, 40);
}

Test(sqlite_defer, killed_writer_loses_no_commit_exclusive, .init = setup, .fini = teardown)
{
	killed_writer("persist", true, 40);
}

/* The child: 5 transactions, then exit at once (no close) after the last
 * COMMIT returned. Exits 2 if anything fails. */
static void exiting_writer(const char *path, const char *mode, bool exclusive)
{
	sqlite3 *db = child_open(path, mode, exclusive);
	char sql[512];

	for (int i = 1; i <= 5; i++)
		if (sqlite3_exec(db, txn_sql(i, sql, sizeof(sql)), NULL, NULL, NULL) != SQLITE_OK)
			_exit(2);
	_exit(0);
}

/*
 * A process that exits right after its COMMIT returned keeps that commit,
 * also where nothing follows the commit in the VFS: no journal file
 * (journal_mode=MEMORY or OFF), no sync (synchronous=OFF), no unlock
 * (locking_mode=EXCLUSIVE).
 */
static void exited_writer(const char *mode, bool exclusive)
{
	char path[128];
	int status;
	sqlite3 *db;
	pid_t pid;

	snprintf(path, sizeof(path), "%s/e-%s%s.db", dir, mode, exclusive ? "-x" : "");
	db = su_open(path, NULL);
	create(db);
	sqlite3_close(db);
	fflush(NULL);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0)
		exiting_writer(path, mode, exclusive);
	cr_assert(WAIT_UNTIL(waitpid(pid, &status, WNOHANG) == pid, TH_PATIENCE_MS));
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s: status %d", mode, status);
	db = su_open(path, NULL);
	cr_assert(su_intact(db), "%s: integrity_check failed", mode);
	cr_assert_eq(su_int(db, "SELECT count(*) FROM t"), 5 * ROWS_PER_TXN,
		     "%s%s: a commit that returned is lost", mode, exclusive ? " exclusive" : "");
	sqlite3_close(db);
}

Test(sqlite_defer, a_process_exiting_after_commit_keeps_it, .init = setup, .fini = teardown)
{
	exited_writer("memory", true);
	exited_writer("off", true);
	exited_writer("memory", false);
	exited_writer("persist", true);
}

/* ---- a journal whose held writes failed -------------------------------------- */

static void file_size_limit(rlim_t n)
{
	struct rlimit r = { n, RLIM_INFINITY };

	cr_assert_eq(setrlimit(RLIMIT_FSIZE, &r), 0);
}

/*
 * The journal's held writes fail (the file size limit: EFBIG); SQLite's
 * rollback must not take the journal for an empty one (and keep the changed
 * pages), and the connection goes on once writes work again, also under
 * locking_mode=EXCLUSIVE, where the journal stays open.
 */
static void lost_journal(const char *mode, bool exclusive)
{
	char path[128], sql[160];
	sqlite3 *db;
	int failed = 0;

	snprintf(path, sizeof(path), "%s/l-%s%s.db", dir, mode, exclusive ? "-x" : "");
	db = su_open(path, RCTX_SQLITE_VFS);
	snprintf(sql, sizeof(sql), "PRAGMA page_size=1024; PRAGMA journal_mode=%s%s", mode,
		 exclusive ? "; PRAGMA locking_mode=EXCLUSIVE" : "");
	su_ok(db, sql);
	su_ok(db, "CREATE TABLE c(x INT); INSERT INTO c VALUES (1)");
	file_size_limit(1024);	/* a journal's header and one record: more */
	cr_assert_neq(su_exec(db, "UPDATE c SET x = x + 1"), SQLITE_OK,
		      "%s: the update succeeded past the file size limit", mode);
	file_size_limit(RLIM_INFINITY);
	for (int i = 0; i < 5; i++)
		failed += su_exec(db, "UPDATE c SET x = x + 1") != SQLITE_OK;
	cr_assert_eq(failed, 0, "%s%s: %d of 5 updates failed once writes worked again", mode,
		     exclusive ? " exclusive" : "", failed);
	cr_assert_eq(su_int(db, "SELECT x FROM c"), 6, "%s: the failed update is there", mode);
	cr_assert(su_intact(db));
	cr_assert_eq(sqlite3_close(db), SQLITE_OK);
}

Test(sqlite_defer, a_lost_journal_write_leaves_the_connection_usable, .init = setup,
     .fini = teardown)
{
	static const char *const modes[] = { "delete", "truncate", "persist" };

	signal(SIGXFSZ, SIG_IGN);
	for (size_t m = 0; m < 3; m++) {
		lost_journal(modes[m], false);
		lost_journal(modes[m], true);
	}
}

/* ---- fewer requests than writes ------------------------------------------------ */

Test(sqlite_defer, a_commit_sends_one_request_per_sync, .init = setup,
     .fini = teardown)
{
	struct rctx_runtime_stats before, after;
	char path[128], sql[512];
	long long pages, sent;
	sqlite3 *db;

	snprintf(path, sizeof(path), "%s/f.db", dir);
	db = su_open(path, RCTX_SQLITE_VFS);
	configure(db, "delete", "full", false);
	create(db);
	for (int i = 1; i <= 8; i++)
		su_ok(db, txn_sql(i, sql, sizeof(sql)));
	pages = su_int(db, "PRAGMA page_count");
	/* Every row is updated: each page of t gets a journal record (three
	 * writes) and a database write; one write each would be 4 x pages. */
	cr_assert_eq(rctx_runtime_stats(&before), 0);
	su_ok(db, txn_sql(9, sql, sizeof(sql)));
	cr_assert_eq(rctx_runtime_stats(&after), 0);
	sent = (long long)(after.kept_submitted - before.kept_submitted);
	cr_assert_lt(sent, pages, "%lld requests for a commit of %lld pages", sent, pages);
	/* Each sync takes the writes before it along: the journal's records,
	 * its directory, its header, the database's pages (the pages read
	 * are in the page cache, read at once without a request). */
	cr_assert_leq(sent, 4, "%lld requests for a commit of %lld pages", sent, pages);
	sqlite3_close(db);
}
