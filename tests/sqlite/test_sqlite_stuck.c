/* SPDX-License-Identifier: MIT */
/*
 * Description: SQLite through the ringctx VFS on a hung disk (the stuck
 * FUSE file system of support/stuckfs.h, its reads, writes or fsyncs held
 * on demand). A SELECT whose reads hang returns at its deadline with the
 * context's error, on a thread that is then free to exit, while a database
 * on a healthy disk keeps working. A process in that state exits: the
 * example program docs/examples/sqlite_deadline (exec'd: a forked child may
 * not use the library without exec), whose SELECT's read hangs, reports
 * the deadline (exit status 2) and is reaped while the disk still holds the
 * read; the same when the read that hangs is its open's (a cold cache:
 * SQLite reads the header at open, under the deadline of
 * rctx_sqlite_open). When what hangs is its commit's write, it reports the
 * deadline while the disk holds the write, and ends once the disk answers
 * (the kernel keeps a process whose io-wq worker waits in FUSE). A COMMIT
 * whose write or fsync hangs fails at its deadline, in rollback-journal and
 * WAL modes; a second transaction tried while the abandoned I/O is still
 * held fails too (after an abandoned write: at once, the library's fence
 * refusing its I/O with EBUSY; after an abandoned fsync: at once or at its
 * own deadline); once the disk answers (the abandoned writes land,
 * after the rollback and the second attempt) the database reopened through
 * the default VFS passes integrity_check, and each transaction is wholly
 * there or wholly absent. The same after kill -9 of a process in the middle
 * of a commit. Skips with the reason when FUSE cannot be mounted.
 *
 * Only orderings and outcomes are asserted; every wait is bounded.
 */
#include <pthread.h>
#include <signal.h>
#include <spawn.h>

#include "sqlite_util.h"
#include "stuckfs.h"

TestSuite(sqlite_stuck, .timeout = 180);

/* Long enough for a statement to reach its hung I/O before it expires: a
 * statement cut off earlier proves nothing. valgrind runs SQLite some 50
 * times slower. */
#define DEADLINE (th_under_valgrind() ? MS(5000) : MS(1000))
#define ROWS 400

static struct stuckfs fs;
static char db_path[128];

/*
 * Mount the stuck file system; unless the test forks a process that uses
 * ringctx (whose runtime thread would not follow a fork), start ringctx.
 */
static void mount_or_skip(bool forks)
{
	if (stuckfs_start(&fs) < 0)
		cr_skip_test("stuck-disk tests need FUSE: %s", fs.why);
	snprintf(db_path, sizeof(db_path), "%s/t.db", fs.dir);
	su_register();
	if (forks)
		return;
	cr_assert_not_null(rctx_thread_ring());
	th_runtime_settle();
}

/* The journal mode of a rollback-journal connection is its own. */
static void set_mode(sqlite3 *db, const char *mode)
{
	char sql[64];

	snprintf(sql, sizeof(sql), "PRAGMA journal_mode=%s", mode);
	su_ok(db, sql);
}

/* A database of ROWS rows (k, v = 0) in the given journal mode, written
 * through vfs. */
static void make_db(const char *mode, const char *vfs)
{
	char sql[64];
	sqlite3 *db = su_open(db_path, vfs);

	snprintf(sql, sizeof(sql), "PRAGMA journal_mode=%s", mode);
	su_ok(db, sql);
	su_ok(db, "CREATE TABLE t(k INTEGER PRIMARY KEY, v INT, pad TEXT)");
	su_ok(db, "BEGIN");
	for (int i = 0; i < ROWS; i++)
		su_ok(db, "INSERT INTO t(v, pad) VALUES (0, printf('%.*c', 500, 'p'))");
	su_ok(db, "COMMIT");
	cr_assert_eq(sqlite3_close(db), SQLITE_OK);
}

/* Answer everything held, and keep answering until nothing is held. */
static void recover_disk(void)
{
	cr_assert_eq(stuckfs_hang(&fs, 0), 0);
	cr_assert(WAIT_UNTIL(stuckfs_release(&fs) >= 0 && stuckfs_held(&fs) == 0 &&
			     (th_sleep_ms(50), stuckfs_held(&fs) == 0), TH_PATIENCE_MS));
}

/* ---- reads ------------------------------------------------------------------ */

struct query {
	sqlite3 *db;
	int rc;
	int ctx_err;
	int64_t took;
};

static void *select_under_deadline(void *p)
{
	struct query *q = p;
	int64_t t0 = th_now_ns();	/* before the deadline is set */
	rctx_t *ctx = rctx_with_timeout(rctx_background(), DEADLINE);

	rctx_sqlite_bind(q->db, ctx);
	su_int_rc(q->db, "SELECT sum(length(pad)) FROM t", &q->rc);
	q->took = th_now_ns() - t0;
	q->ctx_err = rctx_sqlite_ctx_err(q->db, NULL);
	rctx_sqlite_bind(q->db, NULL);
	rctx_release(ctx);
	return NULL;
}

Test(sqlite_stuck, select_on_hung_reads_returns_at_deadline_and_others_work)
{
	struct query q = { 0 };
	char other[64];
	sqlite3 *healthy;
	pthread_t t;

	mount_or_skip(false);
	make_db("delete", RCTX_SQLITE_VFS);
	q.db = su_open(db_path, RCTX_SQLITE_VFS);
	strcpy(other, "/tmp/rctx-sqlite-ok-XXXXXX");
	cr_assert_geq(mkstemp(other), 0);
	healthy = su_open(other, RCTX_SQLITE_VFS);
	su_ok(healthy, "CREATE TABLE h(x); INSERT INTO h VALUES (1)");

	cr_assert_geq(stuckfs_drop_cache(&fs, NULL), 1);
	cr_assert_eq(stuckfs_hang(&fs, STUCKFS_HANG_READ), 0);
	cr_assert_eq(pthread_create(&t, NULL, select_under_deadline, &q), 0);
	cr_assert(WAIT_UNTIL(stuckfs_held(&fs) >= 1, TH_PATIENCE_MS), "no read reached the disk");
	/* Meanwhile, a database on a healthy disk works. */
	su_ok(healthy, "INSERT INTO h VALUES (2)");
	cr_assert_eq(su_int(healthy, "SELECT sum(x) FROM h"), 3);
	cr_assert_eq(pthread_join(t, NULL), 0, "the thread is free to exit");
	cr_assert_eq(q.rc & 0xff, SQLITE_IOERR, "rc %d", q.rc);
	cr_assert_eq(q.ctx_err, -ETIMEDOUT);
	cr_assert_geq(q.took, DEADLINE, "returned before its deadline");
	cr_assert_lt(q.took, MS(TH_PATIENCE_MS));
	cr_assert_geq(stuckfs_held(&fs), 1, "the disk still holds the read");

	recover_disk();
	cr_assert_eq(su_int(q.db, "SELECT count(*) FROM t"), ROWS, "works once the disk answers");
	sqlite3_close(q.db);
	sqlite3_close(healthy);
	unlink(other);
	q.db = su_open(db_path, NULL);
	cr_assert(su_intact(q.db));
	sqlite3_close(q.db);
	stuckfs_stop(&fs);
}

/* ---- a process on a hung disk ------------------------------------------------- */

/*
 * Start the example program (RCTX_SQLITE_EXAMPLE, its path given by the
 * Makefile) on the database, sql under a budget of DEADLINE, its output
 * into the file out. Returns its pid.
 */
static pid_t spawn_example(const char *sql, const char *out)
{
	char ms[24], *argv[] = { RCTX_SQLITE_EXAMPLE, db_path, ms, (char *)sql, NULL };
	posix_spawn_file_actions_t fa;
	pid_t pid;

	snprintf(ms, sizeof(ms), "%lld", (long long)(DEADLINE / MS(1)));
	cr_assert_eq(posix_spawn_file_actions_init(&fa), 0);
	cr_assert_eq(posix_spawn_file_actions_addopen(&fa, 1, out, O_WRONLY | O_TRUNC, 0), 0);
	cr_assert_eq(posix_spawn_file_actions_adddup2(&fa, 1, 2), 0);
	cr_assert_eq(posix_spawn(&pid, argv[0], &fa, NULL, argv, environ), 0,
		     "cannot run %s", argv[0]);
	posix_spawn_file_actions_destroy(&fa);
	return pid;
}

/* Read the database's first page alone (no readahead) into the page cache:
 * the header read of the next open is then served from it, and the first
 * read to reach the disk is a statement's. */
static void cache_first_page(void)
{
	char page[4096];
	int fd = open(db_path, O_RDONLY);

	cr_assert_geq(fd, 0);
	cr_assert_eq(posix_fadvise(fd, 0, 0, POSIX_FADV_RANDOM), 0);
	cr_assert_eq(pread(fd, page, sizeof(page), 0), (ssize_t)sizeof(page));
	close(fd);
}

/*
 * The example runs a SELECT on hung reads (the page cache dropped; with the
 * first page cached if first_page_cached): it must exit, with status 2 and
 * the deadline as its cause, while the disk still holds its read.
 */
static void process_exits_on_hung_reads(bool first_page_cached)
{
	char out[] = "/tmp/rctx-sqlite-out-XXXXXX", text[512] = "";
	int status = 0, fd;
	sqlite3 *db;
	bool exited;
	ssize_t n;
	pid_t pid;

	mount_or_skip(true);	/* this process does not use ringctx */
	make_db("delete", NULL);
	cr_assert_geq(stuckfs_drop_cache(&fs, "t.db"), 1);
	if (first_page_cached)
		cache_first_page();
	cr_assert_eq(stuckfs_hang(&fs, STUCKFS_HANG_READ), 0);
	fd = mkstemp(out);
	cr_assert_geq(fd, 0);

	pid = spawn_example("SELECT sum(length(pad)) FROM t", out);
	exited = WAIT_UNTIL(waitpid(pid, &status, WNOHANG) == pid, TH_PATIENCE_MS);
	if (!exited) {
		kill(pid, SIGKILL);
		recover_disk();
		WAIT_UNTIL(waitpid(pid, &status, WNOHANG) == pid, TH_PATIENCE_MS);
	}
	cr_assert(exited, "the process did not exit while the disk held its read");
	/* Only a release answers a held read: held now means held at exit. */
	cr_assert_geq(stuckfs_held(&fs), 1, "the read did not reach the disk, or was answered");
	n = pread(fd, text, sizeof(text) - 1, 0);
	text[n > 0 ? n : 0] = '\0';
	close(fd);
	unlink(out);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 2, "status %#x: %s", status, text);
	cr_assert_not_null(strstr(text, "deadline exceeded"), "%s", text);
	cr_assert_eq(strstr(text, "in the open") == NULL, first_page_cached,
		     "the wrong read hung: %s", text);

	recover_disk();
	db = su_open(db_path, NULL);
	cr_assert(su_intact(db));
	cr_assert_eq(su_int(db, "SELECT count(*) FROM t"), ROWS);
	sqlite3_close(db);
	stuckfs_stop(&fs);
}

Test(sqlite_stuck, process_exits_while_disk_holds_its_read)
{
	process_exits_on_hung_reads(true);
}

Test(sqlite_stuck, process_exits_while_disk_holds_its_open_read)
{
	process_exits_on_hung_reads(false);
}

/* The text the example printed so far, in out (fd). */
static const char *example_said(int fd, char *text, size_t len)
{
	ssize_t n = pread(fd, text, len - 1, 0);

	text[n > 0 ? n : 0] = '\0';
	return text;
}

/*
 * A commit whose write hangs: the example reports the deadline and ends
 * its work while the disk holds the write. Its process ends only once the
 * disk answers: the thread that submitted the write (the library's
 * runtime thread) cannot finish exiting while its io-wq worker waits in
 * FUSE's request_wait_answer, which no signal interrupts once the request
 * is sent (docs/stuck-io.md). Then the transaction is wholly absent.
 */
Test(sqlite_stuck, commit_write_held_at_exit_reports_the_deadline)
{
	char out[] = "/tmp/rctx-sqlite-out-XXXXXX", text[512] = "";
	int status = 0, fd;
	sqlite3 *db;
	bool said;
	pid_t pid;

	mount_or_skip(true);	/* this process does not use ringctx */
	make_db("delete", NULL);
	cr_assert_eq(stuckfs_hang(&fs, STUCKFS_HANG_WRITE), 0);
	fd = mkstemp(out);
	cr_assert_geq(fd, 0);
	pid = spawn_example("BEGIN; UPDATE t SET v = v + 1; COMMIT", out);
	said = WAIT_UNTIL(strstr(example_said(fd, text, sizeof(text)), "deadline exceeded"),
			  TH_PATIENCE_MS);
	/* Only a release answers a held write: held now means held when the
	 * example reported. */
	cr_assert_geq(stuckfs_held(&fs), 1, "the write did not reach the disk, or was answered");
	recover_disk();
	if (!WAIT_UNTIL(waitpid(pid, &status, WNOHANG) == pid, TH_PATIENCE_MS)) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		cr_assert_fail("the example did not end once the disk answered: %s", text);
	}
	example_said(fd, text, sizeof(text));
	close(fd);
	unlink(out);
	cr_assert(said, "no deadline reported while the disk held the write: %s", text);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 2, "status %#x: %s", status, text);

	db = su_open(db_path, NULL);
	cr_assert(su_intact(db));
	cr_assert_eq(su_int(db, "SELECT count(*) FROM t WHERE v != 0"), 0,
		     "a transaction that failed is there");
	sqlite3_close(db);
	stuckfs_stop(&fs);
}

/* ---- commits ------------------------------------------------------------------ */

/*
 * Run the transaction "v = v + inc for every row, and inc new rows" under a
 * deadline; returns the first failing result code (SQLITE_OK if it
 * committed) and the time it took, and rolls back what is left.
 */
/* Writes, truncates and syncs the library's fence refused so far. */
static uint64_t fenced_count(void)
{
	struct rctx_runtime_stats st;

	cr_assert_eq(rctx_runtime_stats(&st), 0);
	return st.fenced;
}

static int sys_errno;	/* sqlite3_system_errno() of the last transaction() */

static int transaction_within(sqlite3 *db, int inc, int64_t deadline, int64_t *took,
			      int *ctx_err)
{
	int64_t t0 = th_now_ns();	/* before the deadline is set */
	rctx_t *ctx = rctx_with_timeout(rctx_background(), deadline);
	char sql[160];
	int rc;

	rctx_sqlite_bind(db, ctx);
	snprintf(sql, sizeof(sql),
		 "BEGIN; UPDATE t SET v = v + %d; "
		 "INSERT INTO t(v, pad) SELECT %d, pad FROM t LIMIT %d; COMMIT", inc, inc, inc);
	rc = su_exec(db, sql);
	*took = th_now_ns() - t0;
	sys_errno = sqlite3_system_errno(db);
	*ctx_err = rctx_sqlite_ctx_err(db, NULL);
	if (!sqlite3_get_autocommit(db))
		su_exec(db, "ROLLBACK");
	rctx_sqlite_bind(db, NULL);
	rctx_release(ctx);
	return rc;
}

static int transaction(sqlite3 *db, int inc, int64_t *took, int *ctx_err)
{
	return transaction_within(db, inc, DEADLINE, took, ctx_err);
}

/* Each transaction (inc 1: 1 row, inc 2: 2 rows) is wholly there or absent. */
static void check_atomic(void)
{
	sqlite3 *db = su_open(db_path, NULL);
	long long rows, sum;

	cr_assert(su_intact(db), "integrity_check failed");
	rows = su_int(db, "SELECT count(*) FROM t");
	sum = su_int(db, "SELECT count(DISTINCT v) FROM t WHERE k <= " "400");
	cr_assert_eq(sum, 1, "the update is partly there");
	sum = su_int(db, "SELECT v FROM t WHERE k = 1");
	/* v of the old rows says which transactions committed: 0, 1, 2 or 3. */
	cr_assert_eq(rows, ROWS + sum, "rows %lld for v = %lld", rows, sum);
	sqlite3_close(db);
}

static void commit_hangs(const char *mode, unsigned hang)
{
	sqlite3 *db;
	int64_t took, took2;
	int rc, rc2, err, err2, sys2;
	uint64_t fenced;

	mount_or_skip(false);
	make_db(mode, RCTX_SQLITE_VFS);
	db = su_open(db_path, RCTX_SQLITE_VFS);
	set_mode(db, mode);
	cr_assert_eq(su_int(db, "SELECT count(*) FROM t"), ROWS);
	cr_assert_eq(stuckfs_hang(&fs, hang), 0);

	rc = transaction(db, 1, &took, &err);
	cr_assert_neq(rc, SQLITE_OK, "the commit succeeded on a hung disk");
	/* The deadline ends the statement either way: its I/O fails
	 * (SQLITE_IOERR), or the interrupt it also sends reaches SQLite first
	 * (SQLITE_INTERRUPT, seen under valgrind). */
	cr_assert(((rc & 0xff) == SQLITE_IOERR || rc == SQLITE_INTERRUPT), "rc %d", rc);
	cr_assert_eq(err, -ETIMEDOUT);
	cr_assert_geq(took, DEADLINE);
	cr_assert_lt(took, MS(TH_PATIENCE_MS));
	cr_assert_geq(stuckfs_held(&fs), 1);

	/* The disk stops hanging new requests, but still holds the old ones:
	 * a second transaction must not succeed ahead of them. */
	cr_assert_eq(stuckfs_hang(&fs, 0), 0);
	fenced = fenced_count();
	rc2 = transaction(db, 2, &took2, &err2);
	fenced = fenced_count() - fenced;
	sys2 = sys_errno;
	cr_assert_neq(rc2, SQLITE_OK, "a transaction succeeded ahead of abandoned I/O");

	recover_disk();	/* the abandoned writes land now, after both attempts */
	sqlite3_close(db);
	check_atomic();
	db = su_open(db_path, RCTX_SQLITE_VFS);
	set_mode(db, mode);
	cr_assert_eq(transaction_within(db, 3, MS(TH_PATIENCE_MS), &took, &err), SQLITE_OK,
		     "the disk answers again");
	sqlite3_close(db);
	check_atomic();
	stuckfs_stop(&fs);
	if (hang == STUCKFS_HANG_FSYNC && err2 == -ETIMEDOUT)
		return;	/* an abandoned fsync fences nothing: the kernel orders it */
	cr_assert_eq(err2, 0, "the second transaction waited for its deadline");
	cr_assert_geq(fenced, 1, "the fence failed the second transaction at once "
		      "(rc %d, errno %d)", rc2, sys2);
}

Test(sqlite_stuck, commit_with_hung_write_rollback_journal)
{
	commit_hangs("truncate", STUCKFS_HANG_WRITE);
}

Test(sqlite_stuck, commit_with_hung_fsync_rollback_journal)
{
	commit_hangs("truncate", STUCKFS_HANG_FSYNC);
}

/* The journal's records and header are held until its sync, and that is
 * where the write hangs: SQLite's rollback must not take the journal it
 * never wrote for an empty one (and keep its changed pages). */
Test(sqlite_stuck, commit_with_hung_write_delete_journal)
{
	commit_hangs("delete", STUCKFS_HANG_WRITE);
}

Test(sqlite_stuck, commit_with_hung_write_wal)
{
	commit_hangs("wal", STUCKFS_HANG_WRITE);
}

Test(sqlite_stuck, commit_with_hung_fsync_wal)
{
	commit_hangs("wal", STUCKFS_HANG_FSYNC);
}

/* A process killed (SIGKILL) in the middle of a commit whose I/O hangs. */
static void killed_mid_commit(const char *mode, unsigned hang)
{
	int status;
	pid_t pid;

	mount_or_skip(true);
	make_db(mode, NULL);
	cr_assert_eq(stuckfs_hang(&fs, hang), 0);
	fflush(NULL);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		sqlite3 *db;

		if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READWRITE, RCTX_SQLITE_VFS) ||
		    sqlite3_exec(db, !strcmp(mode, "wal") ? "PRAGMA journal_mode=wal" :
				 "PRAGMA journal_mode=truncate", NULL, NULL, NULL))
			_exit(2);
		sqlite3_exec(db, "BEGIN; UPDATE t SET v = v + 1; "
				 "INSERT INTO t(v, pad) SELECT 1, pad FROM t LIMIT 1; COMMIT",
			     NULL, NULL, NULL);
		_exit(3);
	}
	cr_assert(WAIT_UNTIL(stuckfs_held(&fs) >= 1, TH_PATIENCE_MS), "the commit did not hang");
	cr_assert_eq(kill(pid, SIGKILL), 0);
	recover_disk();
	cr_assert(WAIT_UNTIL(waitpid(pid, &status, WNOHANG) == pid, TH_PATIENCE_MS));
	cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	check_atomic();
	stuckfs_stop(&fs);
}

Test(sqlite_stuck, killed_mid_commit_rollback_journal)
{
	killed_mid_commit("truncate", STUCKFS_HANG_FSYNC);
}

Test(sqlite_stuck, killed_mid_commit_wal)
{
	killed_mid_commit("wal", STUCKFS_HANG_WRITE);
}
