/* SPDX-License-Identifier: MIT */
/*
 * bench_context - C ports of Go 1.19's src/context/benchmark_test.go, same
 * names, same shapes, per-op ns, bytes and allocations per op.
 *
 * Where C must differ from Go:
 *  - Go's garbage collector frees contexts nobody references; in C every
 *    context is dropped explicitly, and that cost is part of the op:
 *    CancelTree/Root=Background releases (rctx_release: Go's `defer cancel()`)
 *    each context of the tree, leaf first; Root=OpenCanceler cancels the root
 *    (which cancels the whole tree, as in Go) and then drops every context;
 *    Root=ClosedCanceler drops the contexts, created already done.
 *    CommonParentCancel and WithTimeout drop with rctx_release, which is
 *    cancel() + free. WithValue drops the chain, leaf first.
 *  - ctx.Done() is a channel in Go; the ringctx equivalent is an eventfd
 *    (rctx_done_fd), and a non-blocking check of it is a poll() system call.
 *    CheckCanceled/Done and ContextCancelDone are reported both ways: "(poll)"
 *    is rctx_done_fd() + poll(fd, timeout 0); "(rctx_err)" is rctx_err(), the
 *    cheap non-blocking check that C code uses instead.
 *  - DeepValueNewGoRoutine starts a thread per op (pthread_create + join):
 *    there are no goroutines in C, so it measures thread creation.
 *  - WithValue is not in Go 1.19's file; run.sh runs the same shape in Go
 *    from bench/go/ctxextra.
 *  - "merge create+cancel (n=2)" (rctx_with_any of a parent and two others,
 *    then rctx_release) has no Go row: its reference is "with_cancel
 *    create+cancel", the same op on a plain cancel context under the same
 *    parent, measured in the same run; the ratio is printed.
 *  - Allocations: counted by the malloc wrappers of bench.h (calls and
 *    requested bytes); Go's B/op are size-class rounded. Done fds are file
 *    descriptors, not memory, and are not counted.
 *
 * Parallel benchmarks (RunParallel in Go) run on 2 threads, as Go with
 * GOMAXPROCS=2; ns/op is wall time divided by the total number of ops.
 */
#include "bench.h"

#include <poll.h>
#include <sys/wait.h>
#include "ringctx.h"

#define HOUR (3600LL * 1000000000LL)

static volatile long sink;

/* ---- CommonParentCancel ------------------------------------------------- */

static const char key_str[] = "key";
static const char val_str[] = "value";
static rctx_t *cpc_shared;

static inline long spin100(long x)
{
	for (int i = 0; i < 100; i++) {
		__asm__ volatile("" : "+r"(x));
		x /= x + 1;
	}
	return x;
}

static void common_parent_cancel(void *arg, long n, int tid)
{
	(void)arg;
	(void)tid;
	long x = 0;
	for (long i = 0; i < n; i++) {
		rctx_t *ctx = rctx_with_cancel(cpc_shared);
		if (!ctx)
			bench_die("rctx_with_cancel", ENOMEM);
		if (rctx_value(ctx, key_str) != val_str)
			bench_die("should not be reached", EINVAL);
		x = spin100(x);
		rctx_release(ctx);
		x = spin100(x);
	}
	sink = x;
}

/* ---- driver ------------------------------------------------------------- */

static void report(const char *name, const char *goname, struct bench_result r)
{
	char a[32];
	printf("%-46s %12s %10.1f %8.2f %10ld\n", name, bench_fmt_ns(r.ns_op, a, sizeof a),
	       r.bytes_op, r.allocs_op, r.n);
	fflush(stdout);
	char ref[128];
	snprintf(ref, sizeof ref, "go:%s", goname ? goname : name);
	bench_row("context", name, "ns/op", r.ns_op, ref, NAN, r.bytes_op, r.allocs_op, NAN,
		  NAN);
}

/* ---- WithTimeout -------------------------------------------------------- */

/*
 * Deadlines are armed and disarmed by the library's runtime thread, partly
 * deferred (to its next tick). To charge that work to the benchmark, every
 * timed run ends with wt_settle(): it pokes the runtime thread with a
 * short deadline, released at once (which wakes it now) and waits until every deadline
 * context created so far has been armed or skipped and no timer is live
 * beyond the `concurrency` long-lived ones.
 */
static _Atomic long wt_created;
static long wt_live_base;

static void with_timeout(void *arg, long n, int tid)
{
	(void)arg;
	(void)tid;
	rctx_t *w[10];
	for (long i = 0; i < n; i++) {
		for (int j = 0; j < 10; j++)
			if (!(w[j] = rctx_with_timeout(rctx_background(), HOUR)))
				bench_die("rctx_with_timeout", ENOMEM);
		for (int j = 0; j < 10; j++)
			rctx_release(w[j]);
	}
	atomic_fetch_add(&wt_created, 10 * n);
}

static void wt_settle(void)
{
	/* A deadline sooner than the runtime's next tick wakes it now. */
	rctx_release(rctx_with_timeout(rctx_background(), 50000));
	atomic_fetch_add(&wt_created, 1);
	int64_t limit = rctx_now() + 600LL * 1000000000LL;
	for (;;) {
		struct rctx_runtime_stats st;
		rctx_runtime_stats(&st);
		if ((long)(st.timers_armed + st.timers_skipped) >= atomic_load(&wt_created) &&
		    (long)st.timers_live <= wt_live_base)
			break;
		if (rctx_now() > limit)
			bench_die("WithTimeout: the runtime thread did not catch up", ETIMEDOUT);
		struct timespec ts = { 0, 20000 };
		nanosleep(&ts, NULL);
	}
}

/*
 * One concurrency level, run in a child process (bench_context
 * --with-timeout N), so that each level starts with a fresh runtime thread
 * and deadline heap.
 */
static int with_timeout_child(long conc)
{
	rctx_t **live = malloc(sizeof *live * conc);
	if (!live)
		bench_die("malloc", ENOMEM);
	for (long i = 0; i < conc; i++)
		if (!(live[i] = rctx_with_timeout(rctx_background(), HOUR)))
			bench_die("rctx_with_timeout", ENOMEM);
	atomic_store(&wt_created, conc);
	wt_live_base = conc;
	/* Runs must span several ticks of the runtime thread (50 ms), also in
	 * quick mode: the work done at a tick is part of the cost. */
	if (bench_time_ns < 200 * 1000000LL)
		bench_time_ns = 200 * 1000000LL;
	wt_settle();
	bench_settle = wt_settle;
	char name[64];
	snprintf(name, sizeof name, "WithTimeout/concurrency=%ld", conc);
	report(name, NULL, bench_measure(with_timeout, NULL, 2, 0));
	bench_settle = NULL;
	for (long i = 0; i < conc; i++)
		rctx_release(live[i]);
	free(live);
	bench_finish();
	return 0;
}

static void with_timeout_parent(const char *self, long conc)
{
	char arg[32];
	snprintf(arg, sizeof arg, "%ld", conc);
	fflush(stdout);
	if (bench_csv)
		fflush(bench_csv);
	pid_t pid = fork();
	if (pid < 0)
		bench_die("fork", errno);
	if (pid == 0) {
		execl(self, self, "--with-timeout", arg, (char *)NULL);
		_exit(127);
	}
	int st;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		fprintf(stderr, "bench_context: WithTimeout/concurrency=%ld child failed\n", conc);
}

/* ---- CancelTree --------------------------------------------------------- */

struct tree_arg {
	int depth;
	int root; /* 0 Background, 1 OpenCanceler, 2 ClosedCanceler */
	rctx_t **v;
};

static void build_tree(rctx_t *root, int depth, rctx_t **v)
{
	for (int d = 0; d < depth; d++) {
		root = rctx_with_cancel(root);
		if (!root)
			bench_die("rctx_with_cancel", ENOMEM);
		v[d] = root;
	}
}

static void cancel_tree(void *p, long n, int tid)
{
	(void)tid;
	struct tree_arg *a = p;
	for (long i = 0; i < n; i++) {
		switch (a->root) {
		case 0:
			build_tree(rctx_background(), a->depth, a->v);
			for (int d = a->depth - 1; d >= 0; d--)
				rctx_release(a->v[d]);
			break;
		case 1: {
			rctx_t *ctx = rctx_with_cancel(rctx_background());
			build_tree(ctx, a->depth, a->v);
			rctx_release(ctx); /* cancel(): cancels the whole tree */
			for (int d = a->depth - 1; d >= 0; d--)
				rctx_unref(a->v[d]);
			break;
		}
		default: {
			rctx_t *ctx = rctx_with_cancel(rctx_background());
			rctx_cancel(ctx);
			build_tree(ctx, a->depth, a->v);
			for (int d = a->depth - 1; d >= 0; d--)
				rctx_unref(a->v[d]);
			rctx_unref(ctx);
			break;
		}
		}
	}
}

/* ---- CheckCanceled, ContextCancelDone ------------------------------------ */

static rctx_t *check_ctx;

static void check_err(void *arg, long n, int tid)
{
	(void)tid;
	rctx_t *ctx = arg;
	long s = 0;
	for (long i = 0; i < n; i++)
		s += rctx_err(ctx);
	sink = s;
}

static void check_done_poll(void *arg, long n, int tid)
{
	(void)tid;
	rctx_t *ctx = arg;
	long s = 0;
	for (long i = 0; i < n; i++) {
		struct pollfd pfd = { .fd = rctx_done_fd(ctx), .events = POLLIN };
		s += poll(&pfd, 1, 0);
	}
	sink = s;
}

/* ---- DeepValue, WithValue ------------------------------------------------ */

static char value_keys[100];
static char missing_key;

static void *value_thread(void *arg)
{
	sink = (long)rctx_value(arg, &missing_key);
	return NULL;
}

static void deep_value_new_thread(void *arg, long n, int tid)
{
	(void)tid;
	for (long i = 0; i < n; i++) {
		pthread_t th;
		int e = pthread_create(&th, NULL, value_thread, arg);
		if (e)
			bench_die("pthread_create", e);
		pthread_join(th, NULL);
	}
}

static void deep_value_same(void *arg, long n, int tid)
{
	(void)tid;
	long s = 0;
	for (long i = 0; i < n; i++)
		s += (long)rctx_value(arg, &missing_key);
	sink = s;
}

static rctx_t *value_chain(int depth, rctx_t **v)
{
	rctx_t *ctx = rctx_background();
	for (int i = 0; i < depth; i++) {
		ctx = rctx_with_value(ctx, &value_keys[i], (void *)(intptr_t)i);
		if (!ctx)
			bench_die("rctx_with_value", ENOMEM);
		if (v)
			v[i] = ctx;
	}
	return ctx;
}

static void with_value(void *p, long n, int tid)
{
	(void)tid;
	struct tree_arg *a = p;
	for (long i = 0; i < n; i++) {
		value_chain(a->depth, a->v);
		for (int d = a->depth - 1; d >= 0; d--)
			rctx_unref(a->v[d]);
	}
}

/* ---- merge create+cancel vs with_cancel create+cancel -------------------- */

struct merge_arg {
	rctx_t *parent;
	rctx_t *others[2];
};

static void merge_create_cancel(void *p, long n, int tid)
{
	(void)tid;
	struct merge_arg *a = p;
	for (long i = 0; i < n; i++) {
		rctx_t *m = rctx_with_any(a->parent, a->others, 2);
		if (!m)
			bench_die("rctx_with_any", ENOMEM);
		rctx_release(m);
	}
}

static void cancel_create_cancel(void *p, long n, int tid)
{
	(void)tid;
	struct merge_arg *a = p;
	for (long i = 0; i < n; i++) {
		rctx_t *c = rctx_with_cancel(a->parent);
		if (!c)
			bench_die("rctx_with_cancel", ENOMEM);
		rctx_release(c);
	}
}

static void merge_vs_cancel(void)
{
	struct merge_arg a = {
		rctx_with_cancel(rctx_background()),
		{ rctx_with_cancel(rctx_background()), rctx_with_cancel(rctx_background()) },
	};
	if (!a.parent || !a.others[0] || !a.others[1])
		bench_die("setup", ENOMEM);
	struct bench_result c = bench_measure(cancel_create_cancel, &a, 1, 0);
	struct bench_result m = bench_measure(merge_create_cancel, &a, 1, 0);
	char t[32];
	printf("%-46s %12s %10.1f %8.2f %10ld\n", "with_cancel create+cancel",
	       bench_fmt_ns(c.ns_op, t, sizeof t), c.bytes_op, c.allocs_op, c.n);
	printf("%-46s %12s %10.1f %8.2f %10ld   (%.2fx with_cancel)\n",
	       "merge create+cancel (n=2)", bench_fmt_ns(m.ns_op, t, sizeof t), m.bytes_op,
	       m.allocs_op, m.n, m.ns_op / c.ns_op);
	fflush(stdout);
	bench_row("context", "merge create+cancel (n=2)", "ns/op", m.ns_op,
		  "with_cancel create+cancel", c.ns_op, m.bytes_op, m.allocs_op, c.bytes_op,
		  c.allocs_op);
	rctx_release(a.others[1]);
	rctx_release(a.others[0]);
	rctx_release(a.parent);
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "--with-timeout") == 0) {
		bench_init(NULL);
		return with_timeout_child(atol(argv[2]));
	}
	bench_init("Go context benchmarks, C port (ringctx)");
	printf("%-46s %12s %10s %8s %10s\n", "benchmark", "ns/op", "B/op", "allocs/op",
	       "n");
	char name[128], goname[128];

	/* CommonParentCancel */
	rctx_t *root = rctx_with_value(rctx_background(), key_str, (void *)val_str);
	cpc_shared = rctx_with_cancel(root);
	if (!root || !cpc_shared)
		bench_die("setup", ENOMEM);
	report("CommonParentCancel", NULL, bench_measure(common_parent_cancel, NULL, 2, 0));
	rctx_release(cpc_shared);
	rctx_unref(root);

	/* WithTimeout: each concurrency level in its own process */
	for (long conc = 40; conc <= 400000; conc *= 100)
		with_timeout_parent("/proc/self/exe", conc);

	/* CancelTree */
	static const int depths[] = { 1, 10, 100, 1000 };
	static const char *roots[] = { "Background", "OpenCanceler", "ClosedCanceler" };
	rctx_t *v[1000];
	for (int i = 0; i < 4; i++)
		for (int k = 0; k < 3; k++) {
			struct tree_arg a = { depths[i], k, v };
			snprintf(name, sizeof name, "CancelTree/depth=%d/Root=%s", depths[i],
				 roots[k]);
			report(name, NULL, bench_measure(cancel_tree, &a, 1, 0));
		}

	/* CheckCanceled */
	check_ctx = rctx_with_cancel(rctx_background());
	rctx_cancel(check_ctx);
	report("CheckCanceled/Err", NULL, bench_measure(check_err, check_ctx, 1, 0));
	report("CheckCanceled/Done(poll)", "CheckCanceled/Done",
	       bench_measure(check_done_poll, check_ctx, 1, 0));
	report("CheckCanceled/Done(rctx_err)", "CheckCanceled/Done",
	       bench_measure(check_err, check_ctx, 1, 0));
	rctx_release(check_ctx);

	/* ContextCancelDone */
	rctx_t *open = rctx_with_cancel(rctx_background());
	report("ContextCancelDone(poll)", "ContextCancelDone",
	       bench_measure(check_done_poll, open, 2, 0));
	report("ContextCancelDone(rctx_err)", "ContextCancelDone",
	       bench_measure(check_err, open, 2, 0));
	rctx_release(open);

	/* DeepValueNewGoRoutine, DeepValueSameGoRoutine, WithValue */
	static const int vdepths[] = { 10, 20, 30, 50, 100 };
	rctx_t *vv[100];
	for (int i = 0; i < 5; i++) {
		rctx_t *ctx = value_chain(vdepths[i], vv);
		snprintf(name, sizeof name, "DeepValueNewGoRoutine/depth=%d(thread)", vdepths[i]);
		snprintf(goname, sizeof goname, "DeepValueNewGoRoutine/depth=%d", vdepths[i]);
		report(name, goname, bench_measure(deep_value_new_thread, ctx, 1, 0));
		for (int d = vdepths[i] - 1; d >= 0; d--)
			rctx_unref(vv[d]);
	}
	for (int i = 0; i < 5; i++) {
		rctx_t *ctx = value_chain(vdepths[i], vv);
		snprintf(name, sizeof name, "DeepValueSameGoRoutine/depth=%d", vdepths[i]);
		report(name, NULL, bench_measure(deep_value_same, ctx, 1, 0));
		for (int d = vdepths[i] - 1; d >= 0; d--)
			rctx_unref(vv[d]);
	}
	for (int i = 0; i < 5; i++) {
		struct tree_arg a = { vdepths[i], 0, vv };
		snprintf(name, sizeof name, "WithValue/depth=%d", vdepths[i]);
		report(name, NULL, bench_measure(with_value, &a, 1, 0));
	}

	merge_vs_cancel();
	bench_finish();
	return 0;
}
