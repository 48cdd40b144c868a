/* SPDX-License-Identifier: MIT */
/*
 * bench_memory - heap bytes per context and per tracked request, counted by
 * the malloc wrappers of bench.h while creating 100,000 of them:
 *
 *   requested: the sizes passed to malloc/calloc/realloc/memalign (what the
 *              library asks for).
 *              Cumulative: a realloc'd table counts each of its sizes.
 *   usable:    the same with malloc_usable_size() of each block (what glibc
 *              hands out: its 16-byte rounding, not its 8-byte header);
 *   live:      usable bytes allocated minus freed over the stretch, i.e. the
 *              heap the objects occupy once created (the targets are checked
 *              against this figure).
 *
 * Contexts: rctx_with_cancel, rctx_with_value and rctx_with_timeout (1 hour)
 * children of one cancellable root, none of them asked for a done fd.
 * Tracked requests: 100,000 socket receives in flight under one cancellable
 * context on one ring (SQ 4096), spread over 2,000 AF_UNIX socketpairs;
 * counted from the first rctx_submit() to the rctx_ring_flush() that sends
 * the last ones. Every figure is the median of the repetitions.
 *
 * Allocations per create + cancel, in steady state: per op, one context of
 * each kind is created under a cancellable root and released at once
 * (rctx_release: cancel + drop); after 10,000 ops of warm-up, the wrappers
 * count every malloc/calloc/realloc/memalign of the process (the runtime
 * thread's included) over 100,000 ops. run.sh prints Go's allocs/op beside
 * it, from its own -benchmem output (CommonParentCancel; WithTimeout and
 * WithValue per context, i.e. divided by their 10 contexts per op).
 */
#include "bench.h"

#include <sys/socket.h>
#include "ringctx.h"

#define COUNT 100000
#define PAIRS 2000

enum { K_CANCEL, K_VALUE, K_TIMEOUT };

static char vkey;
static rctx_t *objs[COUNT];

static rctx_t *make_ctx(rctx_t *root, int kind)
{
	switch (kind) {
	case K_CANCEL:
		return rctx_with_cancel(root);
	case K_VALUE:
		return rctx_with_value(root, &vkey, NULL);
	default:
		return rctx_with_timeout(root, 3600LL * 1000000000LL);
	}
}

static struct bench_allocs contexts_once(int kind)
{
	rctx_t *root = rctx_with_cancel(rctx_background());
	if (!root)
		bench_die("rctx_with_cancel", ENOMEM);
	bench_count_start();
	for (int i = 0; i < COUNT; i++) {
		objs[i] = make_ctx(root, kind);
		if (!objs[i])
			bench_die("context constructor", ENOMEM);
	}
	struct bench_allocs a = bench_count_stop();
	rctx_cancel(root);
	for (int i = 0; i < COUNT; i++)
		rctx_unref(objs[i]);
	rctx_release(root);
	return a;
}

static double steady_allocs_once(int kind)
{
	rctx_t *root = rctx_with_cancel(rctx_background());
	if (!root)
		bench_die("rctx_with_cancel", ENOMEM);
	for (int pass = 0; pass < 2; pass++) {
		long n = pass ? COUNT : 10000;
		if (pass)
			bench_count_start();
		for (long i = 0; i < n; i++) {
			rctx_t *c = make_ctx(root, kind);
			if (!c)
				bench_die("context constructor", ENOMEM);
			rctx_release(c);
		}
	}
	struct bench_allocs a = bench_count_stop();
	rctx_release(root);
	return (double)a.n / COUNT;
}

static int socks[PAIRS][2];
static char rbuf[64];
static long ndone;

static void cb(void *arg, int res, uint32_t flags)
{
	(void)arg;
	(void)res;
	(void)flags;
	ndone++;
}

static struct bench_allocs requests_once(void)
{
	rctx_ring_t *ring;
	int ret = rctx_ring_create(&ring, 4096);
	if (ret < 0)
		bench_die("rctx_ring_create", ret);
	rctx_t *ctx = rctx_with_cancel(rctx_background());
	/* warm the ring up with one request, so that lazily built per-ring state
	 * is not charged to the 100,000 */
	struct io_uring_sqe sqe;
	memset(&sqe, 0, sizeof sqe);
	io_uring_prep_nop(&sqe);
	ndone = 0;
	if (rctx_submit(ring, ctx, &sqe, cb, NULL) < 0)
		bench_die("rctx_submit", EIO);
	while (ndone < 1)
		rctx_ring_run(ring, RCTX_FOREVER);
	ndone = 0;
	bench_count_start();
	for (int i = 0; i < COUNT; i++) {
		memset(&sqe, 0, sizeof sqe);
		io_uring_prep_recv(&sqe, socks[i % PAIRS][0], rbuf, sizeof rbuf, 0);
		ret = rctx_submit(ring, ctx, &sqe, cb, NULL);
		if (ret < 0)
			bench_die("rctx_submit", ret);
	}
	ret = rctx_ring_flush(ring);
	struct bench_allocs a = bench_count_stop();
	if (ret < 0)
		bench_die("rctx_ring_flush", ret);
	rctx_cancel(ctx);
	while (ndone < COUNT) {
		ret = rctx_ring_run(ring, RCTX_FOREVER);
		if (ret < 0)
			bench_die("rctx_ring_run", ret);
	}
	rctx_release(ctx);
	rctx_ring_destroy(ring);
	return a;
}

static void report(const char *name, double *req, double *usable, double *live,
		   double *allocs, int reps)
{
	double r = bench_median(req, reps), u = bench_median(usable, reps);
	double l = bench_median(live, reps);
	double al = bench_median(allocs, reps);
	printf("%-24s %10.2f %10.2f %10.2f %10.3f\n", name, r, u, l, al);
	fflush(stdout);
	char n[96];
	snprintf(n, sizeof n, "%s/requested", name);
	bench_row("memory", n, "B", r, NULL, NAN, r, al, NAN, NAN);
	snprintf(n, sizeof n, "%s/usable", name);
	bench_row("memory", n, "B", u, NULL, NAN, u, al, NAN, NAN);
	snprintf(n, sizeof n, "%s/live", name);
	bench_row("memory", n, "B", l, NULL, NAN, l, al, NAN, NAN);
}

int main(void)
{
	bench_init("heap bytes per context / per tracked request (100,000 of each)");
	for (int i = 0; i < PAIRS; i++)
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, socks[i]) < 0)
			bench_die("socketpair", errno);
	int reps = bench_reps > 16 ? 16 : bench_reps;
	static const char *names[] = { "BytesPerCancelContext", "BytesPerValueContext",
				       "BytesPerTimeoutContext" };
	double req[16], use[16], live[16], al[16];
	printf("%-24s %10s %10s %10s %10s\n", "per object (bytes)", "requested", "usable", "live",
	       "allocs");
	for (int k = 0; k < 3; k++) {
		for (int r = 0; r < reps; r++) {
			struct bench_allocs a = contexts_once(k);
			req[r] = (double)a.bytes / COUNT;
			use[r] = (double)a.usable / COUNT;
			live[r] = (double)a.live / COUNT;
			al[r] = (double)a.n / COUNT;
		}
		report(names[k], req, use, live, al, reps);
	}
	static const char *kinds[] = { "cancel", "value", "timeout" };
	/* Go benchmark whose allocs/op is the reference, and its contexts per op */
	static const char *goref[] = { "goallocs:CommonParentCancel:1",
				       "goallocs:WithValue/depth=10:10",
				       "goallocs:WithTimeout/concurrency=40:10" };
	for (int k = 0; k < 3; k++) {
		for (int r = 0; r < reps; r++)
			al[r] = steady_allocs_once(k);
		double m = bench_median(al, reps);
		char n[96];
		snprintf(n, sizeof n, "AllocsPerCreateCancel/%s", kinds[k]);
		printf("%-34s %10.4f allocs/op (steady state)\n", n, m);
		fflush(stdout);
		bench_row("memory", n, "allocs", m, goref[k], NAN, NAN, m, NAN, NAN);
	}
	for (int r = 0; r < reps; r++) {
		struct bench_allocs a = requests_once();
		req[r] = (double)a.bytes / COUNT;
		use[r] = (double)a.usable / COUNT;
		live[r] = (double)a.live / COUNT;
		al[r] = (double)a.n / COUNT;
	}
	report("BytesPerTrackedRequest", req, use, live, al, reps);
	bench_finish();
	return 0;
}
