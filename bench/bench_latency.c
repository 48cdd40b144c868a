/* SPDX-License-Identifier: MIT */
/*
 * bench_latency - wake-up latencies, p50 and p99 (each the median over the
 * repetitions of blocks of runs):
 *
 *  CrossThreadCancel: thread A is blocked in rctx_recv(ctx, ...) on an empty
 *    AF_UNIX stream socket; thread B, once A sleeps in the kernel (checked in
 *    /proc), records t0 = rctx_now() and calls rctx_cancel(ctx); A records
 *    t1 when rctx_recv returns (-ECANCELED). Latency t1 - t0.
 *    Reference: the same two threads, A blocked in read() of an eventfd, B
 *    writes it (the machine's floor for a cross-thread wake-up).
 *  DeadlineLateness/wait: ctx = rctx_with_timeout(background, 1 ms), then
 *    rctx_wait(ctx, RCTX_FOREVER); lateness = wake time - deadline.
 *  DeadlineLateness/done_fd: the same, waiting in poll() on rctx_done_fd(ctx).
 *    Reference for both: clock_nanosleep(TIMER_ABSTIME) to now + 1 ms.
 */
#include "bench.h"

#include <poll.h>
#include <semaphore.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <fcntl.h>
#include "ringctx.h"

/* ---- cross-thread ------------------------------------------------------- */

enum { MODE_RCTX, MODE_EVENTFD, MODE_EXIT };

static struct {
	sem_t go, done;
	_Atomic int mode;
	_Atomic pid_t tid;
	rctx_t *ctx;
	int sock[2];
	int efd;
	int64_t t1;
	long res;
} xt;

static void *waiter_main(void *arg)
{
	(void)arg;
	char buf[64];
	atomic_store(&xt.tid, (pid_t)syscall(SYS_gettid));
	for (;;) {
		sem_wait(&xt.go);
		int mode = atomic_load(&xt.mode);
		if (mode == MODE_EXIT)
			return NULL;
		if (mode == MODE_RCTX) {
			xt.res = rctx_recv(xt.ctx, xt.sock[0], buf, sizeof buf, 0);
		} else {
			uint64_t v;
			xt.res = read(xt.efd, &v, sizeof v);
		}
		xt.t1 = rctx_now();
		sem_post(&xt.done);
	}
}

/* True when the waiter thread is asleep in the kernel ('S' in its stat). */
static bool waiter_sleeping(void)
{
	char path[64], buf[256];
	snprintf(path, sizeof path, "/proc/self/task/%d/stat", (int)atomic_load(&xt.tid));
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = 0;
	char *p = strrchr(buf, ')');
	return p && p[1] == ' ' && p[2] == 'S';
}

static void wait_blocked(void)
{
	for (;;) {
		while (!waiter_sleeping())
			sched_yield();
		struct timespec ts = { 0, 50000 };
		nanosleep(&ts, NULL);
		if (waiter_sleeping())
			return;
	}
}

static double cross_thread_once(int mode)
{
	if (mode == MODE_RCTX) {
		xt.ctx = rctx_with_cancel(rctx_background());
		if (!xt.ctx)
			bench_die("rctx_with_cancel", ENOMEM);
	}
	atomic_store(&xt.mode, mode);
	sem_post(&xt.go);
	wait_blocked();
	int64_t t0 = rctx_now();
	if (mode == MODE_RCTX)
		rctx_cancel(xt.ctx);
	else {
		uint64_t one = 1;
		if (write(xt.efd, &one, sizeof one) != sizeof one)
			bench_die("eventfd write", errno);
	}
	while (sem_wait(&xt.done) < 0)
		;
	if (mode == MODE_RCTX) {
		if (xt.res != -ECANCELED)
			fprintf(stderr, "bench_latency: rctx_recv returned %ld, not -ECANCELED\n",
				xt.res);
		rctx_release(xt.ctx);
	}
	return (double)(xt.t1 - t0);
}

/* ---- deadlines ---------------------------------------------------------- */

enum { DL_WAIT, DL_FD, DL_NANOSLEEP };

static double lateness_once(int how)
{
	const int64_t rel = 1000000;
	if (how == DL_NANOSLEEP) {
		int64_t dl = rctx_now() + rel;
		struct timespec ts = { dl / 1000000000, dl % 1000000000 };
		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
			;
		return (double)(rctx_now() - dl);
	}
	rctx_t *ctx = rctx_with_timeout(rctx_background(), rel);
	int64_t dl;
	if (!ctx || !rctx_deadline(ctx, &dl))
		bench_die("rctx_with_timeout", ENOMEM);
	if (how == DL_WAIT) {
		int ret = rctx_wait(ctx, RCTX_FOREVER);
		if (ret < 0)
			bench_die("rctx_wait", ret);
	} else {
		struct pollfd pfd = { .fd = rctx_done_fd(ctx), .events = POLLIN };
		if (pfd.fd < 0)
			bench_die("rctx_done_fd", pfd.fd);
		while (poll(&pfd, 1, -1) < 0 && errno == EINTR)
			;
	}
	int64_t t = rctx_now();
	if (rctx_err(ctx) != -ETIMEDOUT)
		fprintf(stderr, "bench_latency: deadline context ended with %d\n", rctx_err(ctx));
	rctx_release(ctx);
	return (double)(t - dl);
}

/* ---- driver ------------------------------------------------------------- */

struct pct {
	double p50, p99;
};

static struct pct block_pct(double *v, int n)
{
	struct pct p;
	p.p50 = bench_quantile(v, n, 0.50);
	p.p99 = bench_quantile(v, n, 0.99);
	return p;
}

static void print_row(const char *name, struct pct r, struct pct ref, const char *refname)
{
	char a[32], b[32], c[32], d[32];
	printf("%-30s p50 %10s  p99 %10s   | %-20s p50 %10s  p99 %10s\n", name,
	       bench_fmt_ns(r.p50, a, sizeof a), bench_fmt_ns(r.p99, b, sizeof b), refname,
	       bench_fmt_ns(ref.p50, c, sizeof c), bench_fmt_ns(ref.p99, d, sizeof d));
	fflush(stdout);
	char n[96];
	snprintf(n, sizeof n, "%s/p50", name);
	bench_row("latency", n, "ns", r.p50, refname, ref.p50, NAN, NAN, NAN, NAN);
	snprintf(n, sizeof n, "%s/p99", name);
	bench_row("latency", n, "ns", r.p99, refname, ref.p99, NAN, NAN, NAN, NAN);
}

int main(void)
{
	bench_init("wake-up latency (p50/p99 per block of runs, median over blocks)");
	int reps = bench_reps > 16 ? 16 : bench_reps;
	int runs = BENCH_Q(200, 600);
	double *v[3];
	for (int k = 0; k < 3; k++)
		v[k] = malloc(sizeof(double) * runs);
	double p50[3][16], p99[3][16];

	/* cross-thread cancel vs eventfd wake */
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, xt.sock) < 0)
		bench_die("socketpair", errno);
	xt.efd = eventfd(0, EFD_CLOEXEC);
	sem_init(&xt.go, 0, 0);
	sem_init(&xt.done, 0, 0);
	pthread_t th;
	int e = pthread_create(&th, NULL, waiter_main, NULL);
	if (e)
		bench_die("pthread_create", e);
	while (!atomic_load(&xt.tid))
		sched_yield();
	cross_thread_once(MODE_RCTX); /* warm-up: the waiter's ring */
	for (int r = 0; r < reps; r++) {
		for (int i = 0; i < runs; i++) {
			v[0][i] = cross_thread_once(MODE_RCTX);
			v[1][i] = cross_thread_once(MODE_EVENTFD);
		}
		for (int k = 0; k < 2; k++) {
			struct pct p = block_pct(v[k], runs);
			p50[k][r] = p.p50;
			p99[k][r] = p.p99;
		}
	}
	struct pct rc = { bench_median(p50[0], reps), bench_median(p99[0], reps) };
	struct pct re = { bench_median(p50[1], reps), bench_median(p99[1], reps) };
	print_row("CrossThreadCancel", rc, re, "eventfd wake");
	atomic_store(&xt.mode, MODE_EXIT);
	sem_post(&xt.go);
	pthread_join(th, NULL);

	/* deadline lateness */
	for (int r = 0; r < reps; r++) {
		for (int i = 0; i < runs; i++)
			for (int k = 0; k < 3; k++)
				v[k][i] = lateness_once(k);
		for (int k = 0; k < 3; k++) {
			struct pct p = block_pct(v[k], runs);
			p50[k][r] = p.p50;
			p99[k][r] = p.p99;
		}
	}
	struct pct rw = { bench_median(p50[0], reps), bench_median(p99[0], reps) };
	struct pct rf = { bench_median(p50[1], reps), bench_median(p99[1], reps) };
	struct pct rn = { bench_median(p50[2], reps), bench_median(p99[2], reps) };
	print_row("DeadlineLateness/wait", rw, rn, "clock_nanosleep");
	print_row("DeadlineLateness/done_fd", rf, rn, "clock_nanosleep");
	for (int k = 0; k < 3; k++)
		free(v[k]);
	bench_finish();
	return 0;
}
