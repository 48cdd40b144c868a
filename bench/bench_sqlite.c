/* SPDX-License-Identifier: MIT */
/*
 * bench_sqlite - SQLite through the ringctx VFS (contrib/sqlite/).
 *
 *  SQLiteWorkload/<phase>: one fixed workload through the unix VFS (the
 *    default; the reference) and through the ringctx VFS, alternating run by
 *    run (unix first in even runs, ringctx first in odd ones), each run on
 *    a new database file. Phases: insert (rows in transactions), select
 *    (point selects by key, each its own read transaction), scan (range
 *    scans by key), update (updates by key, in transactions); total is the
 *    whole run. Every phase's answers (sums of what was read) must be the
 *    same through both VFSes, or the program fails. Rows in ns per phase;
 *    ratio = ringctx / unix of the medians of this run.
 *
 *  StuckQuery/<peer>: a stuck-disk episode side by side (see episode()).
 *
 * Environment (besides bench.h's): RCTX_BENCH_SQLITE_DIR, the directory of
 * the workload's database (default /var/tmp; run.sh gives BUILD/bench, on
 * the local disk of the build); RCTX_BENCH_SQLITE_PARTS=workload,episode to
 * run only some parts; RCTX_BENCH_SQLITE_ONLY=unix|ringctx, for a
 * profiler: runs of that VFS only, no figures.
 */
#include "bench.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <ringctx_sqlite.h>

#include "stuckfs.h"

#define MS 1000000LL
#define SEC 1000000000LL

static void sq_die(sqlite3 *db, const char *what, int rc)
{
	fprintf(stderr, "bench_sqlite: %s: %s (%d)\n", what,
		db ? sqlite3_errmsg(db) : sqlite3_errstr(rc), rc);
	exit(1);
}

static void sq_exec(sqlite3 *db, const char *sql)
{
	int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);

	if (rc != SQLITE_OK)
		sq_die(db, sql, rc);
}

static sqlite3_stmt *sq_prepare(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);

	if (rc != SQLITE_OK)
		sq_die(db, sql, rc);
	return st;
}

/* Step st to its end (reset it); the sum of its rows' first column. */
static int64_t sq_run(sqlite3 *db, sqlite3_stmt *st)
{
	int64_t sum = 0;
	int rc;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		sum += sqlite3_column_int64(st, 0);
	if (rc != SQLITE_DONE)
		sq_die(db, sqlite3_sql(st), rc);
	sqlite3_reset(st);
	return sum;
}

static uint64_t xorshift(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

/* ---- the fixed workload ---------------------------------------------------- */

enum { PH_INSERT, PH_SELECT, PH_SCAN, PH_UPDATE, PH_TOTAL, NPHASE };
static const char *const phase_name[NPHASE] = { "insert", "select", "scan", "update", "total" };

struct workload {
	const char *dir;
	const char *journal;	/* PRAGMA journal_mode */
	const char *sync;	/* PRAGMA synchronous */
	int rows, per_txn;	/* insert: rows, in transactions of per_txn */
	int selects;		/* point selects */
	int scans, scan_len;	/* range scans of scan_len keys */
	int updates, per_utxn;	/* updates, in transactions of per_utxn */
};

/* One database of a run, and what its phases read (to compare the VFSes). */
struct wdb {
	const char *vfs;	/* NULL: the unix VFS */
	char path[256];
	sqlite3 *db;
	uint64_t rng;		/* the same sequence for both VFSes */
	int64_t ans[NPHASE];
};

/* A row's text column: 100 bytes derived from r. */
static void fill_text(char *b, uint64_t r)
{
	for (int i = 0; i < 100; i++, r = r * 6364136223846793005ULL + 1442695040888963407ULL)
		b[i] = (char)('a' + (r >> 59));
	b[100] = 0;
}

static void wdb_open(const struct workload *w, struct wdb *d, const char *vfs, int k)
{
	char sql[160];
	int rc;

	memset(d, 0, sizeof *d);
	d->vfs = vfs;
	d->rng = 0x9e3779b97f4a7c15ULL;
	snprintf(d->path, sizeof d->path, "%s/rctx-bench-sqlite-%d-%d.db", w->dir, (int)getpid(), k);
	unlink(d->path);
	rc = sqlite3_open_v2(d->path, &d->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, vfs);
	if (rc != SQLITE_OK)
		sq_die(d->db, d->path, rc);
	snprintf(sql, sizeof sql, "PRAGMA journal_mode=%s; PRAGMA synchronous=%s", w->journal,
		 w->sync);
	sq_exec(d->db, sql);
	sq_exec(d->db, "CREATE TABLE t(k INTEGER PRIMARY KEY, a INTEGER NOT NULL, b TEXT NOT NULL)");
}

/* What the updates left, read back; close and remove the database. */
static void wdb_close(struct wdb *d)
{
	sqlite3_stmt *st = sq_prepare(d->db, "SELECT sum(a) FROM t");
	int rc;

	d->ans[PH_TOTAL] = sq_run(d->db, st);
	sqlite3_finalize(st);
	rc = sqlite3_close(d->db);
	if (rc != SQLITE_OK)
		sq_die(NULL, "sqlite3_close", rc);
	unlink(d->path);
}

static void ph_insert(const struct workload *w, struct wdb *d)
{
	sqlite3_stmt *st = sq_prepare(d->db, "INSERT INTO t(k, a, b) VALUES (?1, ?2, ?3)");
	char text[101];

	for (int i = 0; i < w->rows; i += w->per_txn) {
		sq_exec(d->db, "BEGIN");
		for (int j = i; j < i + w->per_txn && j < w->rows; j++) {
			fill_text(text, xorshift(&d->rng));
			sqlite3_bind_int64(st, 1, j + 1);
			sqlite3_bind_int64(st, 2, (int64_t)(xorshift(&d->rng) % 1000000));
			sqlite3_bind_text(st, 3, text, 100, SQLITE_STATIC);
			sq_run(d->db, st);
		}
		sq_exec(d->db, "COMMIT");
	}
	sqlite3_finalize(st);
}

static void ph_select(const struct workload *w, struct wdb *d)
{
	sqlite3_stmt *st = sq_prepare(d->db, "SELECT a FROM t WHERE k = ?1");

	for (int i = 0; i < w->selects; i++) {
		sqlite3_bind_int64(st, 1, (int64_t)(xorshift(&d->rng) % w->rows) + 1);
		d->ans[PH_SELECT] += sq_run(d->db, st);
	}
	sqlite3_finalize(st);
}

static void ph_scan(const struct workload *w, struct wdb *d)
{
	sqlite3_stmt *st = sq_prepare(d->db, "SELECT sum(a + length(b)) FROM t "
					     "WHERE k BETWEEN ?1 AND ?1 + ?2 - 1");

	for (int i = 0; i < w->scans; i++) {
		sqlite3_bind_int64(st, 1, (int64_t)(xorshift(&d->rng) % (w->rows - w->scan_len)) + 1);
		sqlite3_bind_int64(st, 2, w->scan_len);
		d->ans[PH_SCAN] += sq_run(d->db, st);
	}
	sqlite3_finalize(st);
}

static void ph_update(const struct workload *w, struct wdb *d)
{
	sqlite3_stmt *st = sq_prepare(d->db, "UPDATE t SET a = a + 1, b = ?2 WHERE k = ?1");
	char text[101];

	for (int i = 0; i < w->updates; i += w->per_utxn) {
		sq_exec(d->db, "BEGIN");
		for (int j = i; j < i + w->per_utxn && j < w->updates; j++) {
			fill_text(text, xorshift(&d->rng));
			sqlite3_bind_int64(st, 1, (int64_t)(xorshift(&d->rng) % w->rows) + 1);
			sqlite3_bind_text(st, 2, text, 100, SQLITE_STATIC);
			sq_run(d->db, st);
		}
		sq_exec(d->db, "COMMIT");
	}
	sqlite3_finalize(st);
}

static void (*const phase_fn[PH_TOTAL])(const struct workload *, struct wdb *) = {
	ph_insert, ph_select, ph_scan, ph_update,
};

/*
 * One run: a new database per VFS (k = 0: unix, 1: ringctx), the phases in
 * turn, each phase through both VFSes back to back (the first one
 * alternating from phase to phase and from run to run), so that a burst of
 * load on the machine falls on both alike. ns per phase and VFS in t.
 */
static void workload_run(const struct workload *w, int r, int64_t t[2][NPHASE])
{
	static const char *const vfs[2] = { NULL, RCTX_SQLITE_VFS };
	struct wdb d[2];

	for (int k = 0; k < 2; k++)
		wdb_open(w, &d[k], vfs[k], k);
	for (int p = 0; p < PH_TOTAL; p++) {
		for (int i = 0; i < 2; i++) {
			int k = (r + p + i) % 2;
			int64_t t0 = bench_now();

			phase_fn[p](w, &d[k]);
			t[k][p] = bench_now() - t0;
		}
	}
	for (int k = 0; k < 2; k++) {
		t[k][PH_TOTAL] = 0;
		for (int p = 0; p < PH_TOTAL; p++)
			t[k][PH_TOTAL] += t[k][p];
		wdb_close(&d[k]);
	}
	if (memcmp(d[0].ans, d[1].ans, sizeof d[0].ans)) {
		fprintf(stderr, "bench_sqlite: the two VFSes read different answers\n");
		exit(1);
	}
}

/* For a profiler: reps runs of one VFS only (RCTX_BENCH_SQLITE_ONLY). */
static void workload_only(const struct workload *w, const char *only, int reps)
{
	int k = strcmp(only, "unix") != 0;
	struct wdb d;

	for (int r = 0; r < reps; r++) {
		wdb_open(w, &d, k ? RCTX_SQLITE_VFS : NULL, k);
		for (int p = 0; p < PH_TOTAL; p++)
			phase_fn[p](w, &d);
		wdb_close(&d);
	}
	printf("(%d runs through the %s VFS only: no figures)\n", reps, k ? "ringctx" : "unix");
}

static void workload(void)
{
	const char *dir = getenv("RCTX_BENCH_SQLITE_DIR");
	const char *only = getenv("RCTX_BENCH_SQLITE_ONLY");
	struct workload w = {
		.dir = dir && *dir ? dir : "/var/tmp",
		.journal = "DELETE",
		.sync = "FULL",
		.rows = BENCH_Q(20000, 50000),
		.per_txn = 1000,
		.selects = BENCH_Q(20000, 50000),
		.scans = BENCH_Q(2000, 5000),
		.scan_len = 100,
		.updates = BENCH_Q(5000, 10000),
		.per_utxn = 100,
	};
	int reps = bench_reps > 32 ? 32 : bench_reps;
	double v[2][NPHASE][32], med[2][NPHASE], ratio[32], m;
	int64_t t[2][NPHASE];
	struct stat st;

	if (stat(w.dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
		printf("SQLiteWorkload: skipped, no directory %s\n", w.dir);
		return;
	}
	if (only && *only) {
		workload_only(&w, only, reps);
		return;
	}
	printf("(%s, journal_mode=%s, synchronous=%s, SQLite %s; per run and VFS: %d rows "
	       "inserted in transactions of %d, %d point selects, %d range scans of %d keys, "
	       "%d updates in transactions of %d; %d runs after an untimed one, each phase "
	       "through both VFSes back to back, the first alternating)\n",
	       w.dir, w.journal, w.sync, sqlite3_libversion(), w.rows, w.per_txn, w.selects,
	       w.scans, w.scan_len, w.updates, w.per_utxn, reps);
	fflush(stdout);
	workload_run(&w, 0, t);
	for (int r = 0; r < reps; r++) {
		workload_run(&w, r, t);
		for (int k = 0; k < 2; k++)
			for (int p = 0; p < NPHASE; p++)
				v[k][p][r] = (double)t[k][p];
		ratio[r] = (double)t[1][PH_TOTAL] / (double)t[0][PH_TOTAL];
	}
	printf("%-24s %14s %14s %8s\n", "phase", "unix VFS", "ringctx VFS", "ratio");
	for (int p = 0; p < NPHASE; p++) {
		char a[32], b[32], name[64];

		for (int k = 0; k < 2; k++)
			med[k][p] = bench_median(v[k][p], reps);
		snprintf(name, sizeof name, "SQLiteWorkload/%s", phase_name[p]);
		printf("%-24s %14s %14s %7.3fx\n", name, bench_fmt_ns(med[0][p], a, sizeof a),
		       bench_fmt_ns(med[1][p], b, sizeof b), med[1][p] / med[0][p]);
		bench_row("sqlite", name, "ns", med[1][p], "unix VFS", med[0][p], NAN, NAN, NAN, NAN);
	}
	m = bench_median(ratio, reps); /* sorts ratio */
	printf("(total ringctx / unix per run: median %.3fx, from %.3fx to %.3fx)\n", m, ratio[0],
	       ratio[reps - 1]);
	fflush(stdout);
}

int main(int argc, char **argv)
{
	const char *parts = getenv("RCTX_BENCH_SQLITE_PARTS");
	int rc;

	(void)argc;
	(void)argv;
	bench_init("sqlite: the ringctx VFS vs the unix VFS, and a stuck disk side by side");
	rc = rctx_sqlite_register(0);
	if (rc != SQLITE_OK)
		sq_die(NULL, "rctx_sqlite_register", rc);
	if (!parts || strstr(parts, "workload"))
		workload();
	bench_finish();
	return 0;
}
