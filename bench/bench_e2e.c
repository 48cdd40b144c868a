/* SPDX-License-Identifier: MIT */
/*
 * bench_e2e - end-to-end: N blocked socket receives under one context, then
 * cancel it; time from the cancel until every receive has returned. The Go
 * side of the comparison is bench/go/e2e (N goroutines blocked in conn.Read
 * under one context, each with a watcher goroutine that sets a read deadline
 * in the past on ctx.Done()); run.sh puts the two side by side.
 *
 * ringctx side: N AF_UNIX stream socketpairs, one receive each, all
 * rctx_submit()ted under the same rctx_with_cancel(background) on one ring
 * run by an owner thread that is blocked in rctx_ring_run() when the main
 * thread calls rctx_cancel(ctx). The time is taken on the main thread, from
 * just before rctx_cancel() until it is woken by the owner thread after the
 * last callback (as Go's main goroutine returns from wg.Wait()).
 * N = 1,000 and 8,000; median of the repetitions, fresh ring each run.
 */
#include "bench.h"

#include <semaphore.h>
#include <sys/socket.h>
#include "ringctx.h"

#define MAXN 8000

static int socks[MAXN][2];
static char rbuf[MAXN][64];

static struct {
	long n, done, bad;
	rctx_t *ctx;
	sem_t ready, finished;
} e;

static void cb(void *arg, int res, uint32_t flags)
{
	(void)arg;
	(void)flags;
	e.done++;
	if (res != -ECANCELED)
		e.bad++;
	if (e.done == e.n)
		sem_post(&e.finished);
}

static void *owner_main(void *arg)
{
	(void)arg;
	rctx_ring_t *ring;
	int ret = rctx_ring_create(&ring, 4096);
	if (ret < 0)
		bench_die("rctx_ring_create", ret);
	struct io_uring_sqe sqe;
	for (long i = 0; i < e.n; i++) {
		memset(&sqe, 0, sizeof sqe);
		io_uring_prep_recv(&sqe, socks[i][0], rbuf[i], sizeof rbuf[i], 0);
		ret = rctx_submit(ring, e.ctx, &sqe, cb, NULL);
		if (ret < 0)
			bench_die("rctx_submit", ret);
	}
	ret = rctx_ring_flush(ring);
	if (ret < 0)
		bench_die("rctx_ring_flush", ret);
	rctx_ring_run(ring, 0);
	sem_post(&e.ready);
	while (e.done < e.n) {
		ret = rctx_ring_run(ring, RCTX_FOREVER);
		if (ret < 0)
			bench_die("rctx_ring_run", ret);
	}
	rctx_ring_destroy(ring);
	return NULL;
}

static double run_once(long n)
{
	e.n = n;
	e.done = e.bad = 0;
	e.ctx = rctx_with_cancel(rctx_background());
	if (!e.ctx)
		bench_die("rctx_with_cancel", ENOMEM);
	pthread_t th;
	int err = pthread_create(&th, NULL, owner_main, NULL);
	if (err)
		bench_die("pthread_create", err);
	sem_wait(&e.ready);
	struct timespec ts = { 0, 50 * 1000000 }; /* as the Go side: let it block */
	nanosleep(&ts, NULL);
	int64_t t0 = rctx_now();
	rctx_cancel(e.ctx);
	while (sem_wait(&e.finished) < 0)
		;
	int64_t t1 = rctx_now();
	pthread_join(th, NULL);
	if (e.bad)
		fprintf(stderr, "bench_e2e: %ld receives did not end with -ECANCELED\n", e.bad);
	rctx_release(e.ctx);
	return (double)(t1 - t0);
}

int main(void)
{
	bench_init("end-to-end: cancel N blocked socket receives under one context");
	sem_init(&e.ready, 0, 0);
	sem_init(&e.finished, 0, 0);
	for (int i = 0; i < MAXN; i++)
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, socks[i]) < 0)
			bench_die("socketpair", errno);
	static const long ns[] = { 1000, 8000 };
	double v[64];
	int reps = bench_reps > 64 ? 64 : bench_reps;
	for (size_t k = 0; k < 2; k++) {
		for (int r = 0; r < reps; r++)
			v[r] = run_once(ns[k]);
		double m = bench_median(v, reps);
		char name[64], a[32];
		snprintf(name, sizeof name, "BlockedReaders/N=%ld", ns[k]);
		printf("%-26s cancel -> all returned: median %s\n", name,
		       bench_fmt_ns(m, a, sizeof a));
		fflush(stdout);
		bench_row("e2e", name, "ns", m, "go:e2e", NAN, NAN, NAN, NAN, NAN);
	}
	bench_finish();
	return 0;
}
