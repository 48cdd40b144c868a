/* SPDX-License-Identifier: MIT */
/*
 * bench_e2e - end-to-end: N blocked socket receives under one context tree,
 * then cancel its root; time from the cancel until every receive has
 * returned. The Go side of the comparison is bench/go/e2e (N goroutines
 * blocked in conn.Read under one context, each with a watcher goroutine that
 * sets a read deadline in the past on ctx.Done()); run.sh puts them side by
 * side.
 *
 * ringctx side: N AF_UNIX stream socketpairs, one receive each, in two
 * layouts:
 *
 *   single:   every receive on one ring, run by one owner thread, under one
 *             child context of the root;
 *   per-core: one ring per online CPU, each created, filled and run by its
 *             own owner thread pinned to that CPU, receives spread round
 *             robin; each ring's receives under its own child context of the
 *             root. Cancelling the root queues each ring's requests to that
 *             ring and wakes its owner, so the owners issue their
 *             IORING_OP_ASYNC_CANCELs in parallel.
 *
 * Every owner is blocked in rctx_ring_run() when the main thread calls
 * rctx_cancel(root). The time is taken on the main thread, from just before
 * rctx_cancel() until it is woken by whichever owner ran the last callback
 * (as Go's main goroutine returns from wg.Wait()). N = 1,000 and 8,000;
 * median of the repetitions, fresh rings each run, layouts interleaved.
 */
#include "bench.h"

#include <semaphore.h>
#include <sys/socket.h>
#include "ringctx.h"

#define MAXN 8000
#define MAXRINGS 64

static int socks[MAXN][2];
static char rbuf[MAXN][64];

struct owner {
	pthread_t th;
	int idx, cpu;
	rctx_t *ctx; /* this ring's child of the root */
};

static struct {
	long n;
	int nrings;
	_Atomic long done, bad;
	sem_t ready, finished;
	struct owner own[MAXRINGS];
} e;

static void cb(void *arg, int res, uint32_t flags)
{
	(void)arg;
	(void)flags;
	if (res != -ECANCELED)
		atomic_fetch_add(&e.bad, 1);
	if (atomic_fetch_add(&e.done, 1) + 1 == e.n)
		sem_post(&e.finished);
}

static void pin(int cpu)
{
	if (cpu < 0)
		return;
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	pthread_setaffinity_np(pthread_self(), sizeof set, &set); /* best effort */
}

static void *owner_main(void *arg)
{
	struct owner *o = arg;
	pin(o->cpu);
	rctx_ring_t *ring;
	int ret = rctx_ring_create(&ring, 4096);
	if (ret < 0)
		bench_die("rctx_ring_create", ret);
	struct io_uring_sqe sqe;
	for (long i = o->idx; i < e.n; i += e.nrings) {
		memset(&sqe, 0, sizeof sqe);
		io_uring_prep_recv(&sqe, socks[i][0], rbuf[i], sizeof rbuf[i], 0);
		ret = rctx_submit(ring, o->ctx, &sqe, cb, NULL);
		if (ret < 0)
			bench_die("rctx_submit", ret);
	}
	ret = rctx_ring_flush(ring);
	if (ret < 0)
		bench_die("rctx_ring_flush", ret);
	rctx_ring_run(ring, 0);
	sem_post(&e.ready);
	while (rctx_ring_pending(ring) > 0) {
		ret = rctx_ring_run(ring, RCTX_FOREVER);
		if (ret < 0)
			bench_die("rctx_ring_run", ret);
	}
	rctx_ring_destroy(ring);
	return NULL;
}

/* One run with nrings rings (1: the single layout, unpinned). */
static double run_once(long n, int nrings)
{
	e.n = n;
	e.nrings = nrings;
	atomic_store(&e.done, 0);
	atomic_store(&e.bad, 0);
	rctx_t *root = rctx_with_cancel(rctx_background());
	if (!root)
		bench_die("rctx_with_cancel", ENOMEM);
	for (int i = 0; i < nrings; i++) {
		struct owner *o = &e.own[i];
		o->idx = i;
		o->cpu = nrings > 1 ? i : -1;
		o->ctx = rctx_with_cancel(root);
		if (!o->ctx)
			bench_die("rctx_with_cancel", ENOMEM);
		int err = pthread_create(&o->th, NULL, owner_main, o);
		if (err)
			bench_die("pthread_create", err);
	}
	for (int i = 0; i < nrings; i++)
		while (sem_wait(&e.ready) < 0)
			;
	struct timespec ts = { 0, 50 * 1000000 }; /* as the Go side: let it block */
	nanosleep(&ts, NULL);
	int64_t t0 = rctx_now();
	rctx_cancel(root);
	while (sem_wait(&e.finished) < 0)
		;
	int64_t t1 = rctx_now();
	for (int i = 0; i < nrings; i++) {
		pthread_join(e.own[i].th, NULL);
		rctx_release(e.own[i].ctx);
	}
	if (atomic_load(&e.bad))
		fprintf(stderr, "bench_e2e: %ld receives did not end with -ECANCELED\n",
			atomic_load(&e.bad));
	rctx_release(root);
	return (double)(t1 - t0);
}

static int online_cpus(void)
{
	long c = sysconf(_SC_NPROCESSORS_ONLN);
	if (c < 1)
		c = 1;
	return c > MAXRINGS ? MAXRINGS : (int)c;
}

int main(void)
{
	bench_init("end-to-end: cancel N blocked socket receives under one context tree");
	sem_init(&e.ready, 0, 0);
	sem_init(&e.finished, 0, 0);
	for (int i = 0; i < MAXN; i++)
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, socks[i]) < 0)
			bench_die("socketpair", errno);
	int ncpu = online_cpus();
	static const long ns[] = { 1000, 8000 };
	double vs[64], vp[64];
	int reps = bench_reps > 64 ? 64 : bench_reps;
	for (size_t k = 0; k < 2; k++) {
		for (int r = 0; r < reps; r++) {
			vs[r] = run_once(ns[k], 1);
			vp[r] = run_once(ns[k], ncpu);
		}
		double ms = bench_median(vs, reps), mp = bench_median(vp, reps);
		char name[64], a[32], b[32];
		snprintf(name, sizeof name, "BlockedReaders/N=%ld", ns[k]);
		printf("%-26s cancel -> all returned: median single ring %s, %d per-core rings %s\n",
		       name, bench_fmt_ns(ms, a, sizeof a), ncpu, bench_fmt_ns(mp, b, sizeof b));
		fflush(stdout);
		snprintf(name, sizeof name, "BlockedReaders/N=%ld/single", ns[k]);
		bench_row("e2e", name, "ns", ms, "go:e2e", NAN, NAN, NAN, NAN, NAN);
		snprintf(name, sizeof name, "BlockedReaders/N=%ld/per-core", ns[k]);
		bench_row("e2e", name, "ns", mp, "go:e2e", NAN, NAN, NAN, NAN, NAN);
	}
	bench_finish();
	return 0;
}
