/* SPDX-License-Identifier: MIT */
/*
 * bench_hangup - hang-up detection latency, p50 and p99 (each the median
 * over the repetitions of blocks of runs):
 *
 *  Hangup/unix, Hangup/tcp: h = rctx_with_hangup(background, a) on one end
 *    of a connected AF_UNIX stream pair (or loopback TCP pair); once the
 *    keeper counted the poll submitted and a short pause let it reach the
 *    kernel, t0 = rctx_now(), close(b), rctx_wait(h, RCTX_FOREVER) returns
 *    at t1. Latency t1 - t0: the kernel's wake-up of the poll, the runtime
 *    thread's completion and cancel, the futex wake of the waiter.
 *    Reference: a thread blocked in poll(POLLRDHUP) on a, woken by the same
 *    close(b) (the machine's floor for a cross-thread hang-up wake-up).
 */
#include "bench.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <semaphore.h>
#include <sys/socket.h>
#include "ringctx.h"

static void unix_pair(int sv[2])
{
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		bench_die("socketpair", errno);
}

static void tcp_pair(int sv[2])
{
	static int l = -1;
	static struct sockaddr_in a = { .sin_family = AF_INET };

	if (l < 0) {
		socklen_t len = sizeof(a);

		l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) < 0 ||
		    listen(l, 16) < 0 || getsockname(l, (struct sockaddr *)&a, &len) < 0)
			bench_die("tcp listen", errno);
	}
	sv[1] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (sv[1] < 0 || connect(sv[1], (struct sockaddr *)&a, sizeof(a)) < 0)
		bench_die("connect", errno);
	sv[0] = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	if (sv[0] < 0)
		bench_die("accept", errno);
}

static uint64_t kept_submitted(void)
{
	struct rctx_runtime_stats st;

	rctx_runtime_stats(&st);
	return st.kept_submitted;
}

static double hangup_once(void (*pair)(int sv[2]))
{
	uint64_t before = kept_submitted();
	struct timespec pause = { 0, 200 * 1000 };
	int sv[2];
	int64_t t0, t1;
	rctx_t *h;

	pair(sv);
	h = rctx_with_hangup(rctx_background(), sv[0]);
	if (!h)
		bench_die("rctx_with_hangup", ENOMEM);
	while (kept_submitted() == before)
		sched_yield();
	nanosleep(&pause, NULL); /* the same turn submits it to the kernel */
	t0 = rctx_now();
	close(sv[1]);
	rctx_wait(h, RCTX_FOREVER);
	t1 = rctx_now();
	if (rctx_cause(h) != -ECONNRESET) {
		fprintf(stderr, "bench_hangup: cause %d, not -ECONNRESET\n", rctx_cause(h));
		exit(1);
	}
	rctx_release(h);
	close(sv[0]);
	return (double)(t1 - t0);
}

/* ---- reference: a thread in poll(POLLRDHUP) ------------------------------ */

static struct {
	sem_t go, done;
	_Atomic int fd; /* -1: exit */
	_Atomic int in_poll;
	int64_t t1;
} ref;

static void *poller_main(void *arg)
{
	(void)arg;
	for (;;) {
		sem_wait(&ref.go);
		struct pollfd p = { .fd = atomic_load(&ref.fd), .events = POLLRDHUP };
		if (p.fd < 0)
			return NULL;
		atomic_store(&ref.in_poll, 1);
		while (poll(&p, 1, -1) < 0 && errno == EINTR)
			;
		ref.t1 = rctx_now();
		sem_post(&ref.done);
	}
}

static double poll_once(void (*pair)(int sv[2]))
{
	struct timespec pause = { 0, 200 * 1000 };
	int sv[2];
	int64_t t0;

	pair(sv);
	atomic_store(&ref.fd, sv[0]);
	atomic_store(&ref.in_poll, 0);
	sem_post(&ref.go);
	while (!atomic_load(&ref.in_poll))
		sched_yield();
	nanosleep(&pause, NULL); /* asleep in poll() by then */
	t0 = rctx_now();
	close(sv[1]);
	sem_wait(&ref.done);
	close(sv[0]);
	return (double)(ref.t1 - t0);
}

struct pct {
	double p50, p99;
};

static void print_row(const char *name, struct pct r, struct pct ref_p, const char *refname)
{
	char a[32], b[32], c[32], d[32], n[96];

	printf("%-30s p50 %10s  p99 %10s   | %-20s p50 %10s  p99 %10s\n", name,
	       bench_fmt_ns(r.p50, a, sizeof a), bench_fmt_ns(r.p99, b, sizeof b), refname,
	       bench_fmt_ns(ref_p.p50, c, sizeof c), bench_fmt_ns(ref_p.p99, d, sizeof d));
	fflush(stdout);
	snprintf(n, sizeof n, "%s/p50", name);
	bench_row("latency", n, "ns", r.p50, refname, ref_p.p50, NAN, NAN, NAN, NAN);
	snprintf(n, sizeof n, "%s/p99", name);
	bench_row("latency", n, "ns", r.p99, refname, ref_p.p99, NAN, NAN, NAN, NAN);
}

static void measure(const char *name, void (*pair)(int sv[2]), int runs, int reps)
{
	double *v[2] = { malloc(sizeof(double) * runs), malloc(sizeof(double) * runs) };
	double p50[2][16], p99[2][16];

	if (!v[0] || !v[1])
		bench_die("malloc", ENOMEM);
	hangup_once(pair); /* warm-up: the runtime thread */
	for (int r = 0; r < reps; r++) {
		for (int i = 0; i < runs; i++) {
			v[0][i] = hangup_once(pair);
			v[1][i] = poll_once(pair);
		}
		for (int k = 0; k < 2; k++) {
			p50[k][r] = bench_quantile(v[k], runs, 0.50);
			p99[k][r] = bench_quantile(v[k], runs, 0.99);
		}
	}
	print_row(name, (struct pct){ bench_median(p50[0], reps), bench_median(p99[0], reps) },
		  (struct pct){ bench_median(p50[1], reps), bench_median(p99[1], reps) },
		  "poll(POLLRDHUP)");
	free(v[0]);
	free(v[1]);
}

int main(void)
{
	bench_init("hang-up latency: peer close() to rctx_wait() returning (p50/p99 per block, median over blocks)");
	int reps = bench_reps > 16 ? 16 : bench_reps;
	int runs = BENCH_Q(100, 400);
	pthread_t th;
	int e;

	sem_init(&ref.go, 0, 0);
	sem_init(&ref.done, 0, 0);
	e = pthread_create(&th, NULL, poller_main, NULL);
	if (e)
		bench_die("pthread_create", e);
	measure("Hangup/unix", unix_pair, runs, reps);
	measure("Hangup/tcp", tcp_pair, runs, reps);
	atomic_store(&ref.fd, -1);
	sem_post(&ref.go);
	pthread_join(th, NULL);
	bench_finish();
	return 0;
}
