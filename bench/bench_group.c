/* SPDX-License-Identifier: MIT */
/*
 * bench_group - cost of the group patterns (rctx_group_*), per operation:
 *
 *   go:     one task run with rctx_group_go() on the group's reused worker
 *           threads (a group per run: new, n calls, wait, free), against
 *           pthread_create + pthread_join of a thread per task.
 *   submit: one IORING_OP_NOP through rctx_group_submit() (batches of 32),
 *           against rctx_submit() of the same NOPs on the same kind of ring:
 *           a limit above the batch (nothing queued), a limit of 8 (queued,
 *           under background: a FIFO entry only), and a limit of 8 under a
 *           cancellable context (each queued request is also parked in its
 *           ring, tracked by the context, with no kernel object).
 *
 * Each pair runs interleaved in the same process; the ratio is
 * group / reference.
 */
#include "bench.h"

#include "ringctx.h"

static int task_fn(rctx_t *ctx, void *arg)
{
	(void)ctx;
	atomic_fetch_add_explicit((_Atomic long *)arg, 1, memory_order_relaxed);
	return 0;
}

static void *thread_fn(void *arg)
{
	atomic_fetch_add_explicit((_Atomic long *)arg, 1, memory_order_relaxed);
	return NULL;
}

static _Atomic long tasks_run;

static void thread_per_task(void *p, long n, int tid)
{
	(void)p;
	(void)tid;
	for (long i = 0; i < n; i++) {
		pthread_t th;
		int e = pthread_create(&th, NULL, thread_fn, &tasks_run);
		if (e)
			bench_die("pthread_create", e);
		pthread_join(th, NULL);
	}
}

static void group_go(void *p, long n, int tid)
{
	(void)tid;
	rctx_group_t *g = rctx_group_new(rctx_background(), *(int *)p);
	if (!g)
		bench_die("rctx_group_new", ENOMEM);
	for (long i = 0; i < n; i++) {
		int ret = rctx_group_go(g, task_fn, &tasks_run);
		if (ret)
			bench_die("rctx_group_go", -ret);
	}
	if (rctx_group_wait(g))
		bench_die("rctx_group_wait", EIO);
	rctx_group_free(g);
}

#define BATCH 32

struct nops {
	rctx_ring_t *ring;
	rctx_group_t *g;   /* NULL: plain rctx_submit */
	rctx_t *ctx;
	long done;
};

static void nop_cb(void *arg, int res, uint32_t flags)
{
	(void)flags;
	struct nops *s = arg;
	if (res < 0)
		bench_die("nop callback", -res);
	s->done++;
}

static void nop_fn(void *p, long n, int tid)
{
	(void)tid;
	struct nops *s = p;
	struct io_uring_sqe sqe;
	memset(&sqe, 0, sizeof sqe);
	io_uring_prep_nop(&sqe);
	while (n > 0) {
		unsigned b = n < BATCH ? (unsigned)n : BATCH;
		long want = s->done + b;
		for (unsigned i = 0; i < b; i++) {
			int ret = s->g ? rctx_group_submit(s->g, s->ring, s->ctx, &sqe, nop_cb, s)
				       : rctx_submit(s->ring, s->ctx, &sqe, nop_cb, s);
			if (ret < 0)
				bench_die("submit", -ret);
		}
		while (s->done < want) {
			int ret = rctx_ring_run(s->ring, RCTX_FOREVER);
			if (ret < 0)
				bench_die("rctx_ring_run", -ret);
		}
		n -= b;
	}
}

static void print_pair(const char *name, const char *refname, struct bench_result *ref,
		       struct bench_result *grp)
{
	char a[32], b[32];
	printf("%-30s %12s %12s %7.2fx %10.1f %10.2f\n", name,
	       bench_fmt_ns(ref->ns_op, a, sizeof a), bench_fmt_ns(grp->ns_op, b, sizeof b),
	       grp->ns_op / ref->ns_op, grp->bytes_op, grp->allocs_op);
	bench_row("group", name, "ns/op", grp->ns_op, refname, ref->ns_op, grp->bytes_op,
		  grp->allocs_op, ref->bytes_op, ref->allocs_op);
}

static void bench_go(void)
{
	static int limits[] = { 2, -1 };
	for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++) {
		char name[64];
		struct bench_result rr, rg;
		snprintf(name, sizeof name, "go/limit=%d", limits[i]);
		bench_measure_pair(thread_per_task, NULL, group_go, &limits[i], &rr, &rg);
		print_pair(name, "pthread_create+join", &rr, &rg);
	}
}

static void bench_submit(void)
{
	static const struct { const char *name; int limit; bool cancellable; } cases[] = {
		{ "submit/limit=64", 64, false },
		{ "submit/limit=8", 8, false },
		{ "submit/limit=8/cancellable", 8, true },
	};
	struct nops plain = { 0 }, grp = { 0 };
	int ret = rctx_ring_create(&plain.ring, 256);
	if (ret < 0)
		bench_die("rctx_ring_create", -ret);
	ret = rctx_ring_create(&grp.ring, 256);
	if (ret < 0)
		bench_die("rctx_ring_create", -ret);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct bench_result rr, rg;
		rctx_t *c = cases[i].cancellable ? rctx_with_cancel(rctx_background())
						 : rctx_background();
		if (!c)
			bench_die("rctx_with_cancel", ENOMEM);
		plain.ctx = grp.ctx = c;
		grp.g = rctx_group_new(rctx_background(), cases[i].limit);
		if (!grp.g)
			bench_die("rctx_group_new", ENOMEM);
		bench_measure_pair(nop_fn, &plain, nop_fn, &grp, &rr, &rg);
		print_pair(cases[i].name, "rctx_submit", &rr, &rg);
		rctx_group_free(grp.g);
		rctx_release(c);
	}
	rctx_ring_destroy(plain.ring);
	rctx_ring_destroy(grp.ring);
}

int main(void)
{
	bench_init("groups: rctx_group_go and rctx_group_submit, per operation");
	printf("%-30s %12s %12s %8s %10s %10s\n", "benchmark", "reference", "group", "ratio",
	       "grp B/op", "allocs/op");
	bench_go();
	bench_submit();
	bench_finish();
	return 0;
}
