/* SPDX-License-Identifier: MIT */
/*
 * bench_scale - large populations, one row each (median of the repetitions;
 * quick mode uses smaller sizes):
 *
 *  Contexts/N=1000000: N rctx_with_cancel children of one cancellable root
 *    (build time), rctx_cancel(root) (cancel time: the whole tree is done on
 *    return), then rctx_release of every child and the root (release time).
 *    RSS per context: growth of the resident set (/proc/self/statm) over the
 *    build, taken on the first repetition (later ones reuse glibc's freed
 *    heap, which the RSS does not show).
 *  InFlight/N=100000: N pipe reads in flight over one ring per online CPU,
 *    each ring created, filled and run by its own owner thread pinned to its
 *    CPU; 64 pipes that never get data, many reads per pipe (io_uring queues
 *    them all on the pipe's wait queue), so the descriptor count stays small.
 *    Each ring's reads are under its own child of one root. Timed from
 *    rctx_cancel(root) until the last callback. Bytes per request: net heap
 *    bytes (malloc_usable_size, allocated - freed, counted by bench.h's
 *    wrappers) over the submissions, divided by N; the kernel's memory is not
 *    in it.
 *  Deadlines/N=400000: N rctx_with_timeout(background, 1 h) live at once
 *    (create time), then rctx_release of every one (cancel time).
 */
#include "bench.h"

#include <fcntl.h>
#include <semaphore.h>
#include "ringctx.h"

#define MAXRINGS 64
#define PIPES 64
#define HOUR (3600LL * 1000000000LL)

static double per(double ns, long n)
{
	return ns / (double)n;
}

static long rss_bytes(void)
{
	long size, res;
	FILE *f = fopen("/proc/self/statm", "r");
	if (!f)
		return 0;
	int ok = fscanf(f, "%ld %ld", &size, &res) == 2;
	fclose(f);
	return ok ? res * sysconf(_SC_PAGESIZE) : 0;
}

/* ---- 1M live contexts --------------------------------------------------- */

static void contexts(long n, int reps)
{
	rctx_t **c = malloc(sizeof *c * n);
	if (!c)
		bench_die("malloc", ENOMEM);
	double vb[16], vc[16], vr[16], rss = NAN;
	for (int r = 0; r < reps; r++) {
		rctx_t *root = rctx_with_cancel(rctx_background());
		if (!root)
			bench_die("rctx_with_cancel", ENOMEM);
		long rss0 = rss_bytes();
		int64_t t0 = rctx_now();
		for (long i = 0; i < n; i++)
			if (!(c[i] = rctx_with_cancel(root)))
				bench_die("rctx_with_cancel", ENOMEM);
		int64_t t1 = rctx_now();
		if (r == 0)
			rss = (double)(rss_bytes() - rss0) / (double)n;
		rctx_cancel(root);
		int64_t t2 = rctx_now();
		for (long i = 0; i < n; i++)
			rctx_release(c[i]);
		rctx_release(root);
		int64_t t3 = rctx_now();
		vb[r] = (double)(t1 - t0);
		vc[r] = (double)(t2 - t1);
		vr[r] = (double)(t3 - t2);
	}
	free(c);
	double b = bench_median(vb, reps), cc = bench_median(vc, reps);
	double rl = bench_median(vr, reps);
	char name[64], x[32], y[32], z[32];
	snprintf(name, sizeof name, "Contexts/N=%ld", n);
	printf("%-28s build %s, cancel %s, release %s; RSS %.1f B/context\n", name,
	       bench_fmt_ns(b, x, sizeof x), bench_fmt_ns(cc, y, sizeof y),
	       bench_fmt_ns(rl, z, sizeof z), rss);
	fflush(stdout);
	char row[96];
	snprintf(row, sizeof row, "%s/build", name);
	bench_row("scale", row, "ns", b, NULL, NAN, NAN, NAN, NAN, NAN);
	snprintf(row, sizeof row, "%s/cancel", name);
	bench_row("scale", row, "ns", cc, NULL, NAN, NAN, NAN, NAN, NAN);
	snprintf(row, sizeof row, "%s/release", name);
	bench_row("scale", row, "ns", rl, NULL, NAN, NAN, NAN, NAN, NAN);
	snprintf(row, sizeof row, "%s/RSS_per_context", name);
	bench_row("scale", row, "B", rss, NULL, NAN, NAN, NAN, NAN, NAN);
}

/* ---- 100,000 requests in flight over per-core rings --------------------- */

static int pipes[PIPES][2];
static char rbuf[64]; /* never written: the pipes get no data */

struct owner {
	pthread_t th;
	int idx, cpu;
	unsigned entries;
	rctx_t *ctx;
};

static struct {
	long n;
	int nrings;
	_Atomic long done, bad;
	sem_t ready, finished;
	struct owner own[MAXRINGS];
} f;

static void cb(void *arg, int res, uint32_t flags)
{
	(void)arg;
	(void)flags;
	if (res != -ECANCELED)
		atomic_fetch_add(&f.bad, 1);
	if (atomic_fetch_add(&f.done, 1) + 1 == f.n)
		sem_post(&f.finished);
}

static void *owner_main(void *arg)
{
	struct owner *o = arg;
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(o->cpu, &set);
	pthread_setaffinity_np(pthread_self(), sizeof set, &set); /* best effort */
	rctx_ring_t *ring;
	int ret = rctx_ring_create(&ring, o->entries);
	if (ret < 0)
		bench_die("rctx_ring_create", ret);
	struct io_uring_sqe sqe;
	for (long i = o->idx; i < f.n; i += f.nrings) {
		memset(&sqe, 0, sizeof sqe);
		io_uring_prep_read(&sqe, pipes[i % PIPES][0], rbuf, sizeof rbuf, 0);
		ret = rctx_submit(ring, o->ctx, &sqe, cb, NULL);
		if (ret < 0)
			bench_die("rctx_submit", ret);
	}
	ret = rctx_ring_flush(ring);
	if (ret < 0)
		bench_die("rctx_ring_flush", ret);
	rctx_ring_run(ring, 0);
	sem_post(&f.ready);
	while (rctx_ring_pending(ring) > 0) {
		ret = rctx_ring_run(ring, RCTX_FOREVER);
		if (ret < 0)
			bench_die("rctx_ring_run", ret);
	}
	rctx_ring_destroy(ring);
	return NULL;
}

/* SQ entries for a ring that holds `count` requests: its CQ (4 x SQ) must
 * hold every cancelled completion at once. */
static unsigned ring_entries(long count)
{
	unsigned e = 4096;
	while ((long)e * 4 < count + 1024 && e < 32768)
		e *= 2;
	return e;
}

static void in_flight(long n, int nrings, int reps)
{
	for (int i = 0; i < PIPES; i++)
		if (pipe2(pipes[i], O_CLOEXEC) < 0)
			bench_die("pipe2", errno);
	double vs[16], vc[16], vb[16];
	for (int r = 0; r < reps; r++) {
		f.n = n;
		f.nrings = nrings;
		atomic_store(&f.done, 0);
		atomic_store(&f.bad, 0);
		rctx_t *root = rctx_with_cancel(rctx_background());
		if (!root)
			bench_die("rctx_with_cancel", ENOMEM);
		bench_count_start();
		int64_t t0 = rctx_now();
		for (int i = 0; i < nrings; i++) {
			struct owner *o = &f.own[i];
			o->idx = i;
			o->cpu = i;
			o->entries = ring_entries(n / nrings);
			if (!(o->ctx = rctx_with_cancel(root)))
				bench_die("rctx_with_cancel", ENOMEM);
			int err = pthread_create(&o->th, NULL, owner_main, o);
			if (err)
				bench_die("pthread_create", err);
		}
		for (int i = 0; i < nrings; i++)
			while (sem_wait(&f.ready) < 0)
				;
		int64_t t1 = rctx_now();
		struct bench_allocs a = bench_count_stop();
		struct timespec ts = { 0, 20 * 1000000 }; /* let every owner block */
		nanosleep(&ts, NULL);
		int64_t t2 = rctx_now();
		rctx_cancel(root);
		while (sem_wait(&f.finished) < 0)
			;
		int64_t t3 = rctx_now();
		for (int i = 0; i < nrings; i++) {
			pthread_join(f.own[i].th, NULL);
			rctx_release(f.own[i].ctx);
		}
		rctx_release(root);
		if (atomic_load(&f.bad))
			fprintf(stderr, "bench_scale: %ld reads did not end with -ECANCELED\n",
				atomic_load(&f.bad));
		vs[r] = (double)(t1 - t0);
		vc[r] = (double)(t3 - t2);
		/* the rings themselves (SQ/CQ are mmapped, not heap) are not in it */
		vb[r] = (double)a.live / (double)n;
	}
	for (int i = 0; i < PIPES; i++) {
		close(pipes[i][0]);
		close(pipes[i][1]);
	}
	double s = bench_median(vs, reps), c = bench_median(vc, reps);
	double b = bench_median(vb, reps);
	char name[64], x[32], y[32];
	snprintf(name, sizeof name, "InFlight/N=%ld", n);
	printf("%-28s %d per-core rings: submit %s, cancel -> all returned %s, %.1f heap B/request\n",
	       name, nrings, bench_fmt_ns(s, x, sizeof x), bench_fmt_ns(c, y, sizeof y), b);
	fflush(stdout);
	char row[96];
	snprintf(row, sizeof row, "%s/submit", name);
	bench_row("scale", row, "ns", s, NULL, NAN, NAN, NAN, NAN, NAN);
	snprintf(row, sizeof row, "%s/cancel", name);
	bench_row("scale", row, "ns", c, NULL, NAN, NAN, NAN, NAN, NAN);
	snprintf(row, sizeof row, "%s/bytes_per_request", name);
	bench_row("scale", row, "B", b, NULL, NAN, NAN, NAN, NAN, NAN);
}

/* ---- 400,000 live deadlines --------------------------------------------- */

static void deadlines(long n, int reps)
{
	rctx_t **d = malloc(sizeof *d * n);
	if (!d)
		bench_die("malloc", ENOMEM);
	double vc[16], vx[16];
	for (int r = 0; r < reps; r++) {
		int64_t t0 = rctx_now();
		for (long i = 0; i < n; i++)
			if (!(d[i] = rctx_with_timeout(rctx_background(), HOUR)))
				bench_die("rctx_with_timeout", ENOMEM);
		int64_t t1 = rctx_now();
		for (long i = 0; i < n; i++)
			rctx_release(d[i]);
		int64_t t2 = rctx_now();
		vc[r] = (double)(t1 - t0);
		vx[r] = (double)(t2 - t1);
	}
	free(d);
	double c = bench_median(vc, reps), x = bench_median(vx, reps);
	char name[64], a[32], b[32], pa[32], pb[32];
	snprintf(name, sizeof name, "Deadlines/N=%ld", n);
	printf("%-28s create %s (%s each), cancel %s (%s each)\n", name,
	       bench_fmt_ns(c, a, sizeof a), bench_fmt_ns(per(c, n), pa, sizeof pa),
	       bench_fmt_ns(x, b, sizeof b), bench_fmt_ns(per(x, n), pb, sizeof pb));
	fflush(stdout);
	char row[96];
	snprintf(row, sizeof row, "%s/create", name);
	bench_row("scale", row, "ns", c, NULL, NAN, NAN, NAN, NAN, NAN);
	snprintf(row, sizeof row, "%s/cancel", name);
	bench_row("scale", row, "ns", x, NULL, NAN, NAN, NAN, NAN, NAN);
}

int main(void)
{
	bench_init(NULL);
	int reps = bench_reps > 3 ? 3 : bench_reps;
	printf("== scale: 1M contexts, 100,000 reads in flight, 400,000 deadlines "
	       "(%s: smaller sizes; median of %d)\n", bench_quick ? "quick" : "full", reps);
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	if (ncpu < 1)
		ncpu = 1;
	if (ncpu > MAXRINGS)
		ncpu = MAXRINGS;
	sem_init(&f.ready, 0, 0);
	sem_init(&f.finished, 0, 0);
	contexts(BENCH_Q(200000L, 1000000L), reps);
	in_flight(BENCH_Q(20000L, 100000L), (int)ncpu, reps);
	deadlines(BENCH_Q(50000L, 400000L), reps);
	bench_finish();
	return 0;
}
