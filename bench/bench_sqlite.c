/* SPDX-License-Identifier: MIT */
/*
 * bench_sqlite - SQLite through the ringctx VFS (contrib/sqlite/).
 *
 *  SQLiteWorkload/<phase>: one fixed workload through the unix VFS (the
 *    default; the reference) and through the ringctx VFS, each run on a new
 *    database per VFS (journal_mode=DELETE, synchronous=FULL: SQLite's
 *    defaults), each phase through both VFSes back to back, the first one
 *    alternating from phase to phase and from run to run. Phases: insert
 *    (rows in transactions), select (point selects by key, each its own read
 *    transaction), scan (range scans by key), update (updates by key, in
 *    transactions); total is their sum. What each phase read (sums) must be
 *    the same through both VFSes, or the program fails. Rows in ns per
 *    phase, medians over the runs; ratio = ringctx / unix of this run.
 *
 *  StuckQuery/ringctx: the stuck-disk episode (episode()): a SELECT on a
 *    database whose disk stops answering reads (support/stuckfs.h, its page
 *    cache dropped), with a budget of 200 ms, in three programs side by
 *    side: the ringctx VFS under a context with that deadline (this
 *    program, exec'd again as a child), Python's sqlite3 module
 *    (bench/sqlite/episode.py: a timer calling interrupt() and a progress
 *    handler) and Go's database/sql with mattn/go-sqlite3 (bench/go/sqlite:
 *    QueryRowContext under context.WithTimeout). For each: when the query
 *    call returned, whether the calling thread goes on (a query on a healthy
 *    database right after), what another thread saw meanwhile, and whether
 *    the process exits while the disk still holds the read (waitpid within
 *    a bound; if not, the threads in D state, then SIGKILL). The disk
 *    answers between peers and at the end, also on every failure path. The
 *    row is the ringctx query's time against its budget.
 *
 * Environment (besides bench.h's): RCTX_BENCH_SQLITE_DIR, the directory of
 * the workload's databases and of the healthy one (default /var/tmp;
 * run.sh gives BUILD/bench, on the local disk of the build);
 * RCTX_BENCH_SQLITE_PARTS=workload,episode to run only some parts;
 * RCTX_BENCH_SQLITE_ONLY=unix|ringctx, for a profiler: workload runs of
 * that VFS only, no figures; RCTX_BENCH_SQLITE_PY (the Python peer's
 * script), RCTX_BENCH_SQLITE_GO (the Go peer's binary) or
 * RCTX_BENCH_SQLITE_GO_WHY (why there is none), RCTX_BENCH_SQLITE_TABLE (a
 * file for the episode's table): set by run.sh.
 */
#include "bench.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
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

/* Remove a database and what a journal mode may leave beside it. */
static void remove_db(const char *path)
{
	static const char *const ext[] = { "", "-journal", "-wal", "-shm" };
	char p[300];

	for (size_t i = 0; i < sizeof ext / sizeof ext[0]; i++) {
		snprintf(p, sizeof p, "%s%s", path, ext[i]);
		unlink(p);
	}
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
	remove_db(d->path);
}

static void ph_insert(const struct workload *w, struct wdb *d)
{
	sqlite3_stmt *st = sq_prepare(d->db, "INSERT INTO t(k, a, b) VALUES (?1, ?2, ?3)");
	char text[101];

	for (int i = 0; i < w->rows; i += w->per_txn) {
		sq_exec(d->db, "BEGIN");
		for (int j = i; j < i + w->per_txn && j < w->rows; j++) {
			fill_text(text, bench_xorshift(&d->rng));
			sqlite3_bind_int64(st, 1, j + 1);
			sqlite3_bind_int64(st, 2, (int64_t)(bench_xorshift(&d->rng) % 1000000));
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
		sqlite3_bind_int64(st, 1, (int64_t)(bench_xorshift(&d->rng) % w->rows) + 1);
		d->ans[PH_SELECT] += sq_run(d->db, st);
	}
	sqlite3_finalize(st);
}

static void ph_scan(const struct workload *w, struct wdb *d)
{
	sqlite3_stmt *st = sq_prepare(d->db, "SELECT sum(a + length(b)) FROM t "
					     "WHERE k BETWEEN ?1 AND ?1 + ?2 - 1");

	for (int i = 0; i < w->scans; i++) {
		sqlite3_bind_int64(st, 1, (int64_t)(bench_xorshift(&d->rng) % (w->rows - w->scan_len)) + 1);
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
			fill_text(text, bench_xorshift(&d->rng));
			sqlite3_bind_int64(st, 1, (int64_t)(bench_xorshift(&d->rng) % w->rows) + 1);
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

/* ---- the stuck-disk episode: the ringctx peer ----------------------------- */

/*
 * Every peer (this one, bench/sqlite/episode.py, bench/go/sqlite) is a
 * process that speaks the same lines on its stdin and stdout:
 *   it opens STUCK_DB and HEALTHY_DB (argv), reads both once, says "ready";
 *   on "go" it starts the clock, runs SELECT sum(length(pad)) FROM t on
 *   STUCK_DB with its best timeout of BUDGET_MS, and says
 *   "query <us> ok <sum>" or "query <us> err <what>" when the call returns;
 *   meanwhile another of its threads, BUDGET_MS / 2 after "go", reads
 *   HEALTHY_DB on a connection of its own: "meanwhile <us> ok <n>";
 *   after the query, the same thread reads HEALTHY_DB:
 *   "healthy <us after the query returned> ok <n>";
 *   on "exit" (or the end of stdin) it exits as a program does.
 */
static pthread_mutex_t say_lock = PTHREAD_MUTEX_INITIALIZER;

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&say_lock);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
	pthread_mutex_unlock(&say_lock);
}

/* The first column of sql's first row into *v: SQLITE_OK or the error. */
static int one_int(sqlite3 *db, const char *sql, int64_t *v)
{
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);

	if (rc != SQLITE_OK)
		return sqlite3_extended_errcode(db);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*v = sqlite3_column_int64(st, 0);
		rc = SQLITE_OK;
	} else {
		rc = sqlite3_extended_errcode(db);
	}
	sqlite3_finalize(st);
	return rc;
}

static sqlite3 *child_open(const char *path)
{
	sqlite3 *db;
	int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, RCTX_SQLITE_VFS);

	if (rc != SQLITE_OK || rctx_sqlite_bind(db, NULL) != SQLITE_OK) {
		fprintf(stderr, "bench_sqlite child: %s: %s\n", path, sqlite3_errstr(rc));
		exit(2);
	}
	return db;
}

struct meanwhile {
	const char *path;
	int64_t t0, at;
};

static void *meanwhile_main(void *p)
{
	struct meanwhile *m = p;
	sqlite3 *db = child_open(m->path);
	int64_t n = 0, now = bench_now();
	int rc;

	if (m->at > now)
		usleep((useconds_t)((m->at - now) / 1000));
	rc = one_int(db, "SELECT count(*) FROM h", &n);
	if (rc == SQLITE_OK)
		say("meanwhile %lld ok %lld", (long long)((bench_now() - m->t0) / 1000), (long long)n);
	else
		say("meanwhile %lld err %s", (long long)((bench_now() - m->t0) / 1000),
		    sqlite3_errstr(rc));
	sqlite3_close(db);
	return NULL;
}

/* The ringctx peer: the query under a context with the budget's deadline. */
static int episode_child(const char *stuck_path, const char *healthy_path, int budget_ms)
{
	char line[64];
	sqlite3 *stuck, *healthy;
	struct meanwhile m;
	pthread_t th;
	int64_t v, t1, t2;
	rctx_t *ctx;
	int rc, err;

	if (rctx_sqlite_register(0) != SQLITE_OK)
		return 2;
	stuck = child_open(stuck_path);
	healthy = child_open(healthy_path);
	if (one_int(stuck, "SELECT count(*) FROM t", &v) || one_int(healthy, "SELECT count(*) FROM h", &v))
		return 2;
	say("ready");
	if (!fgets(line, sizeof line, stdin))
		return 0;
	m = (struct meanwhile){ healthy_path, bench_now(), 0 };
	m.at = m.t0 + budget_ms * MS / 2;
	if (pthread_create(&th, NULL, meanwhile_main, &m))
		return 2;
	ctx = rctx_with_timeout(rctx_background(), budget_ms * MS);
	rctx_sqlite_bind(stuck, ctx);
	rc = one_int(stuck, "SELECT sum(length(pad)) FROM t", &v);
	t1 = bench_now();
	err = rctx_sqlite_ctx_err(stuck, NULL);
	rctx_sqlite_bind(stuck, NULL);
	rctx_release(ctx);
	if (rc == SQLITE_OK)
		say("query %lld ok %lld", (long long)((t1 - m.t0) / 1000), (long long)v);
	else
		say("query %lld err %s (%s; its context: %s)", (long long)((t1 - m.t0) / 1000),
		    rc == SQLITE_IOERR_READ ? "SQLITE_IOERR_READ" :
		    rc == SQLITE_INTERRUPT ? "SQLITE_INTERRUPT" : "SQLite error", sqlite3_errstr(rc),
		    err == -ETIMEDOUT ? "deadline exceeded" : err ? strerror(-err) : "alive");
	rc = one_int(healthy, "SELECT count(*) FROM h", &v);
	t2 = bench_now();
	if (rc == SQLITE_OK)
		say("healthy %lld ok %lld", (long long)((t2 - t1) / 1000), (long long)v);
	else
		say("healthy %lld err %s", (long long)((t2 - t1) / 1000), sqlite3_errstr(rc));
	pthread_join(th, NULL);
	(void)!fgets(line, sizeof line, stdin);	/* "exit", or the end of stdin */
	return 0;
}

/* ---- the stuck-disk episode: side by side ------------------------------------ */

#define HEALTHY_ROWS 7

struct peer {
	const char *name;
	char *argv[8];
	char why[200];			/* not run: why */
	pid_t pid;
	int in, out;			/* its stdin, its stdout */
	char buf[1024];			/* what it said, not yet a whole line */
	size_t len;
	/* what it said (us, -1: nothing) */
	int64_t query_us, healthy_us, meanwhile_us;
	char query[160], healthy[96], meanwhile[96];
	/* what was seen (ns since "go", or since the release of the disk) */
	int held;			/* reads the disk held when the exit was asked */
	int held_after;			/* and once the process had exited, or was
					   given up for the while the disk hangs */
	int64_t exit_ns;		/* exit seen after "exit", -1: not within the bound */
	int64_t kill_ns;		/* exit seen after SIGKILL, -1: not, or not sent */
	char dstate[160];		/* its threads in D state, when it did not exit */
	int64_t after_query_ns;		/* query answered after the release, -1 */
	int64_t after_exit_ns;		/* exit seen after the release, -1 */
	int64_t episode_start;		/* "go", and the release */
	int64_t released;
};

struct episode {
	struct stuckfs fs;
	char stuck[160], healthy[256];
	int budget_ms;
	int64_t query_wait, exit_wait;	/* ns */
};

static void peer_line(struct peer *p, char *l, int64_t now)
{
	char *rest;
	long long us = strtoll(strchr(l, ' ') ? strchr(l, ' ') + 1 : "", &rest, 10);

	rest += *rest == ' ';
	if (!strncmp(l, "query ", 6)) {
		p->query_us = us;
		snprintf(p->query, sizeof p->query, "%s", rest);
		if (p->released)
			p->after_query_ns = now - p->released;
	} else if (!strncmp(l, "healthy ", 8)) {
		p->healthy_us = us;
		snprintf(p->healthy, sizeof p->healthy, "%s", rest);
	} else if (!strncmp(l, "meanwhile ", 10)) {
		p->meanwhile_us = us;
		snprintf(p->meanwhile, sizeof p->meanwhile, "%s", rest);
	}
}

/* Read what p says until cond(p) holds (or, with ready, until it says
 * "ready") or until the absolute time end (ns); true if it did. */
static bool peer_read(struct peer *p, int64_t end, bool (*cond)(struct peer *), bool *ready)
{
	for (;;) {
		struct pollfd pfd = { .fd = p->out, .events = POLLIN };
		int64_t now = bench_now();
		ssize_t n;
		char *nl;

		if (cond(p) || (ready && *ready))
			return true;
		if (now >= end || p->out < 0)
			return false;
		if (poll(&pfd, 1, (int)((end - now) / MS) + 1) <= 0)
			continue;
		n = read(p->out, p->buf + p->len, sizeof p->buf - 1 - p->len);
		if (n <= 0) {
			close(p->out);
			p->out = -1;
			return cond(p);
		}
		p->len += (size_t)n;
		p->buf[p->len] = 0;
		while ((nl = strchr(p->buf, '\n'))) {
			*nl = 0;
			if (ready && !strcmp(p->buf, "ready"))
				*ready = true;
			else
				peer_line(p, p->buf, bench_now());
			p->len -= (size_t)(nl + 1 - p->buf);
			memmove(p->buf, nl + 1, p->len + 1);
		}
	}
}

static bool has_query(struct peer *p)
{
	return p->query_us >= 0;
}

static bool has_query_and_healthy(struct peer *p)
{
	return p->query_us >= 0 && p->healthy_us >= 0 && p->meanwhile_us >= 0;
}

static bool never(struct peer *p)
{
	(void)p;
	return false;
}

/* Start p; false (p->why set) if it cannot run. */
static bool peer_start(struct peer *p)
{
	int in[2], out[2];

	if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC)) {
		snprintf(p->why, sizeof p->why, "pipe: %s", strerror(errno));
		return false;
	}
	fflush(NULL);
	p->pid = fork();
	if (p->pid == 0) {
		/* a fork of a process that uses ringctx: exec at once */
		dup2(in[0], 0);
		dup2(out[1], 1);
		execvp(p->argv[0], p->argv);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	p->in = in[1];
	p->out = out[0];
	if (p->pid < 0) {
		snprintf(p->why, sizeof p->why, "fork: %s", strerror(errno));
		close(p->in);
		close(p->out);
		return false;
	}
	return true;
}

static void peer_tell(struct peer *p, const char *what)
{
	(void)!write(p->in, what, strlen(what));
}

/* Has p exited? (reaps it) */
static bool peer_gone(struct peer *p)
{
	int st;

	if (p->pid <= 0)
		return true;
	if (waitpid(p->pid, &st, WNOHANG) == p->pid) {
		p->pid = 0;
		return true;
	}
	return false;
}

/* Wait up to ns for p to exit: the time it took, or -1. */
static int64_t peer_wait_exit(struct peer *p, int64_t ns)
{
	int64_t t0 = bench_now();

	while (!peer_gone(p)) {
		if (bench_now() - t0 >= ns)
			return -1;
		usleep(1000);
	}
	return bench_now() - t0;
}

/* Which threads of pid are in D state (uninterruptible): "N in D state:
 * name, ...", or "" if none. */
static void d_threads(pid_t pid, char *out, size_t len)
{
	char path[320], stat[512], names[128] = "";
	size_t at = 0;
	struct dirent *e;
	int n = 0;
	DIR *d;

	snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
	out[0] = 0;
	d = opendir(path);
	if (!d)
		return;
	while ((e = readdir(d))) {
		char *lp, *rp;
		FILE *f;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof path, "/proc/%d/task/%s/stat", (int)pid, e->d_name);
		f = fopen(path, "re");
		if (!f)
			continue;
		if (fgets(stat, sizeof stat, f) && (lp = strchr(stat, '(')) &&
		    (rp = strrchr(stat, ')')) && rp[1] == ' ' && rp[2] == 'D') {
			*rp = 0;
			n++;
			if (at < sizeof names)
				at += (size_t)snprintf(names + at, sizeof names - at, "%s%s",
						       at ? ", " : "", lp + 1);
		}
		fclose(f);
	}
	closedir(d);
	if (n)
		snprintf(out, len, "%d in D state: %.100s", n, names);
}

/* Answer every held request of the disk, bounded; true if none is left. */
static bool release_disk(struct stuckfs *fs)
{
	stuckfs_hang(fs, 0);
	for (int64_t end = bench_now() + 5 * SEC; bench_now() < end; usleep(2000)) {
		stuckfs_release(fs);
		if (stuckfs_held(fs) == 0)
			return true;
	}
	return false;
}

/* One peer through the episode. The disk is healthy before and after. */
static void peer_run(struct episode *ep, struct peer *p)
{
	bool ready = false;
	int ret;

	p->query_us = p->healthy_us = p->meanwhile_us = -1;
	p->exit_ns = p->kill_ns = p->after_query_ns = p->after_exit_ns = -1;
	p->held = p->held_after = -1;
	if (p->why[0] || !peer_start(p))
		return;
	if (!peer_read(p, bench_now() + 20 * SEC, never, &ready)) {
		int64_t gone = peer_wait_exit(p, SEC);

		snprintf(p->why, sizeof p->why, "it never said ready (%s)",
			 gone >= 0 ? "it exited: see its error above" : "20 s");
		goto out_kill;
	}
	ret = stuckfs_drop_cache(&ep->fs, "ep.db");
	if (ret < 1 || stuckfs_hang(&ep->fs, STUCKFS_HANG_READ) < 0) {
		snprintf(p->why, sizeof p->why, "stuckfs: could not drop the cache (%d)", ret);
		goto out_kill;
	}
	p->episode_start = bench_now();
	peer_tell(p, "go\n");
	peer_read(p, p->episode_start + ep->budget_ms * MS + ep->query_wait, has_query_and_healthy,
		  NULL);
	p->held = stuckfs_held(&ep->fs);
	/* The disk still holds the read: may the program end? */
	peer_tell(p, "exit\n");
	p->exit_ns = peer_wait_exit(p, ep->exit_wait);
	if (p->exit_ns < 0) {
		d_threads(p->pid, p->dstate, sizeof p->dstate);
		kill(p->pid, SIGKILL);
		p->kill_ns = peer_wait_exit(p, ep->exit_wait);
		if (p->kill_ns < 0)
			d_threads(p->pid, p->dstate, sizeof p->dstate);
	}
	p->held_after = stuckfs_held(&ep->fs);
	if (!release_disk(&ep->fs))
		fprintf(stderr, "bench_sqlite: the disk still holds requests\n");
	p->released = bench_now();
	peer_read(p, p->released + 5 * SEC, has_query, NULL);
	if (p->pid > 0) {
		int64_t t = peer_wait_exit(p, 5 * SEC);

		if (t >= 0)
			p->after_exit_ns = bench_now() - p->released;
	}
out_kill:
	if (p->pid > 0) {
		kill(p->pid, SIGKILL);
		if (peer_wait_exit(p, 10 * SEC) < 0)
			fprintf(stderr, "bench_sqlite: %s (pid %d) left behind\n", p->name, (int)p->pid);
	}
	if (p->in >= 0)
		close(p->in);
	if (p->out >= 0)
		close(p->out);
	p->in = p->out = -1;
}

/* Make the stuck database (on the stuck file system) and the healthy one. */
static bool episode_files(struct episode *ep, const char *dir)
{
	sqlite3 *db;
	char sql[200];

	snprintf(ep->stuck, sizeof ep->stuck, "%s/ep.db", ep->fs.dir);
	snprintf(ep->healthy, sizeof ep->healthy, "%s/rctx-bench-sqlite-healthy-%d.db", dir,
		 (int)getpid());
	unlink(ep->healthy);
	if (sqlite3_open_v2(ep->stuck, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL))
		return false;
	sq_exec(db, "CREATE TABLE t(k INTEGER PRIMARY KEY, pad TEXT);"
		    "WITH RECURSIVE s(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM s WHERE x < 400) "
		    "INSERT INTO t(pad) SELECT printf('%.*c', 500, 'p') FROM s");
	sqlite3_close(db);
	if (sqlite3_open_v2(ep->healthy, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL))
		return false;
	snprintf(sql, sizeof sql, "CREATE TABLE h(x);"
		 "WITH RECURSIVE s(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM s WHERE x < %d) "
		 "INSERT INTO h SELECT x FROM s", HEALTHY_ROWS);
	sq_exec(db, sql);
	sqlite3_close(db);
	return true;
}

static const char *fmt_ms(int64_t ns, char *buf, size_t len)
{
	if (ns < 10 * MS)
		snprintf(buf, len, "%.2f ms", (double)ns / MS);
	else if (ns < SEC)
		snprintf(buf, len, "%.1f ms", (double)ns / MS);
	else
		snprintf(buf, len, "%.2f s", (double)ns / SEC);
	return buf;
}

/* The three cells of p's row (len bytes each), and a line of details. */
static void peer_cells(const struct episode *ep, const struct peer *p, char *q, char *t, char *x,
		       size_t len, char *det, size_t dlen)
{
	char a[32], b[32], after[64] = "", mean[160] = "no answer";

	t[0] = x[0] = det[0] = 0;
	if (p->why[0]) {
		snprintf(q, len, "n/a: %.150s", p->why);
		return;
	}
	if (p->query_us >= 0 && p->after_query_ns < 0)
		snprintf(q, len, "%s", fmt_ms(p->query_us * 1000, a, sizeof a));
	else
		snprintf(q, len, "no (not within %s)",
			 fmt_ms(ep->budget_ms * MS + ep->query_wait, a, sizeof a));
	if (p->query_us >= 0 && p->healthy_us >= 0 && p->after_query_ns < 0)
		snprintf(t, len, "yes (next query %s)", fmt_ms(p->healthy_us * 1000, a, sizeof a));
	else
		snprintf(t, len, "no");
	if (p->exit_ns >= 0)
		snprintf(x, len, "yes (%s)", fmt_ms(p->exit_ns, a, sizeof a));
	else if (p->kill_ns >= 0)
		snprintf(x, len, "no; SIGKILL: %s", fmt_ms(p->kill_ns, a, sizeof a));
	else if (p->after_exit_ns >= 0)
		snprintf(x, len, "no, nor by SIGKILL; %s after the disk answered",
			 fmt_ms(p->after_exit_ns, a, sizeof a));
	else
		snprintf(x, len, "no, nor by SIGKILL, nor after the disk answered");
	if (p->after_query_ns >= 0)
		snprintf(after, sizeof after, " (%s after the disk answered)",
			 fmt_ms(p->after_query_ns, a, sizeof a));
	if (p->meanwhile_us >= 0)
		snprintf(mean, sizeof mean, "%s at %s", p->meanwhile,
			 fmt_ms(p->meanwhile_us * 1000, b, sizeof b));
	snprintf(det, dlen, "query: %s%s; another thread during the hang: %s; reads the disk "
		 "held: %d when the exit was asked, %d after it%s%s",
		 p->query_us >= 0 ? p->query : "no answer", after, mean, p->held, p->held_after,
		 p->dstate[0] ? "; threads when it did not exit: " : "", p->dstate);
}

static void episode_table(const struct episode *ep, struct peer *peers, int n, FILE *f)
{
	char q[160], t[160], x[160], det[640];

	fprintf(f, "StuckQuery: SELECT sum(length(pad)) FROM t (400 rows) on a database whose disk "
		   "stops answering reads\n(stuckfs, page cache dropped), budget %d ms; a healthy "
		   "database on another disk\n", ep->budget_ms);
	fprintf(f, "%-16s %-22s %-24s %s\n", "peer", "query returned after", "thread goes on",
		"process exits while the disk hangs");
	for (int i = 0; i < n; i++) {
		peer_cells(ep, &peers[i], q, t, x, sizeof q, det, sizeof det);
		if (peers[i].why[0])
			fprintf(f, "%-16s %s\n", peers[i].name, q);
		else
			fprintf(f, "%-16s %-22s %-24s %s\n", peers[i].name, q, t, x);
	}
	for (int i = 0; i < n; i++) {
		peer_cells(ep, &peers[i], q, t, x, sizeof q, det, sizeof det);
		if (det[0])
			fprintf(f, "  %s: %s\n", peers[i].name, det);
	}
}

/*
 * The episode: each peer in turn opens the two databases, then the stuck
 * disk's cache is dropped and its reads hang, and the peer runs its query
 * with its best timeout; then it is asked to exit while the disk still
 * hangs (and killed if it does not); then the disk answers.
 */
static void episode(void)
{
	const char *dir = getenv("RCTX_BENCH_SQLITE_DIR");
	const char *py = getenv("RCTX_BENCH_SQLITE_PY");
	const char *go = getenv("RCTX_BENCH_SQLITE_GO");
	const char *gowhy = getenv("RCTX_BENCH_SQLITE_GO_WHY");
	const char *table = getenv("RCTX_BENCH_SQLITE_TABLE");
	static char self[] = "/proc/self/exe", child[] = "--episode-child";
	static char budget[16], python[64] = "python3";
	struct episode ep = { .budget_ms = 200, .query_wait = BENCH_Q(1, 2) * SEC,
			      .exit_wait = BENCH_Q(SEC / 2, SEC) };
	struct peer peers[3] = {
		{ .name = "ringctx VFS", .in = -1, .out = -1 },
		{ .name = "Python sqlite3", .in = -1, .out = -1 },
		{ .name = "Go database/sql", .in = -1, .out = -1 },
	};
	int64_t t0 = bench_now();
	FILE *f;

	signal(SIGPIPE, SIG_IGN);
	if (stuckfs_start(&ep.fs) < 0) {
		printf("StuckQuery: skipped, the stuck disk needs FUSE: %s\n", ep.fs.why);
		return;
	}
	if (!episode_files(&ep, dir && *dir ? dir : "/var/tmp")) {
		printf("StuckQuery: skipped, could not make its databases\n");
		stuckfs_stop(&ep.fs);
		return;
	}
	snprintf(budget, sizeof budget, "%d", ep.budget_ms);
	peers[0].argv[0] = self;
	peers[0].argv[1] = child;
	for (int i = 0; i < 3; i++) {
		int a = i == 2 ? 1 : 2; /* after the program (and its script) */

		peers[i].argv[a] = ep.stuck;
		peers[i].argv[a + 1] = ep.healthy;
		peers[i].argv[a + 2] = budget;
	}
	if (access("/usr/bin/python3", X_OK) == 0)
		snprintf(python, sizeof python, "/usr/bin/python3");
	peers[1].argv[0] = python;
	peers[1].argv[1] = (char *)py;
	if (!py || !*py)
		snprintf(peers[1].why, sizeof peers[1].why, "no script (RCTX_BENCH_SQLITE_PY)");
	else if (system("command -v python3 >/dev/null 2>&1") != 0)
		snprintf(peers[1].why, sizeof peers[1].why, "python3 not installed (apt-get install python3)");
	peers[2].argv[0] = (char *)go;
	if (!go || !*go || access(go, X_OK) != 0)
		snprintf(peers[2].why, sizeof peers[2].why, "%s",
			 gowhy && *gowhy ? gowhy : "not built (RCTX_BENCH_SQLITE_GO)");
	for (int i = 0; i < 3; i++)
		peer_run(&ep, &peers[i]);
	release_disk(&ep.fs);
	stuckfs_stop(&ep.fs);
	unlink(ep.healthy);

	episode_table(&ep, peers, 3, stdout);
	printf("(episode: %.1f s)\n", (double)(bench_now() - t0) / SEC);
	if (table && *table && (f = fopen(table, "w"))) {
		episode_table(&ep, peers, 3, f);
		fclose(f);
	}
	/* the target's row: the ringctx query's time against its budget,
	 * when the query did reach the hung disk and failed with its
	 * context's error (-1: it did not return within the bound) */
	if (peers[0].why[0] || peers[0].held < 1 ||
	    (peers[0].query_us >= 0 && !strstr(peers[0].query, "deadline exceeded")))
		printf("StuckQuery/ringctx: no figure: the query did not wait for the hung disk\n");
	else
		bench_row("sqlite", "StuckQuery/ringctx", "ns",
			  peers[0].query_us >= 0 && peers[0].after_query_ns < 0 ? peers[0].query_us * 1000.0 : -1,
			  "budget", ep.budget_ms * (double)MS, NAN, NAN, NAN, NAN);
	fflush(stdout);
}

int main(int argc, char **argv)
{
	const char *parts = getenv("RCTX_BENCH_SQLITE_PARTS");
	int rc;

	if (argc == 5 && !strcmp(argv[1], "--episode-child"))
		return episode_child(argv[2], argv[3], atoi(argv[4]));
	bench_init("sqlite: the ringctx VFS vs the unix VFS, and a stuck disk side by side");
	rc = rctx_sqlite_register(0);
	if (rc != SQLITE_OK)
		sq_die(NULL, "rctx_sqlite_register", rc);
	if (!parts || strstr(parts, "workload"))
		workload();
	if (!parts || strstr(parts, "episode"))
		episode();
	bench_finish();
	return 0;
}
