/* SPDX-License-Identifier: MIT */
/*
 * Description: a long-running stress of the whole library (`make soak`, not
 * part of `make check`). SOAK_THREADS (2..4, default 4) threads work for
 * SOAK_SECONDS (default 600) on shared context trees that the main thread
 * replaces every second: they create children of every kind (with_cancel,
 * with_timeout of 0 to a few ms, with_value, without_cancel, after-funcs
 * whose stop races the cancel), cancel them and the shared ancestors of the
 * other threads, release them, submit NOP, TIMEOUT and recv requests under
 * them on a ring of their own, and make blocking calls (rctx_recv with a
 * short deadline, rctx_read of a regular file) on their thread ring.
 *
 * Checked all along, abort with a message on violation:
 *  - a context's error never changes once non-zero and is 0, -ECANCELED or
 *    -ETIMEDOUT; a without-cancel context is never done;
 *  - a child is never live under a done parent (the parent's error is read
 *    first: a context seen done has its whole subtree done);
 *  - every request callback runs exactly once, with a result its operation
 *    can give (counted per request, checked once the ring has drained);
 *  - an after-func runs at most once, only once its context is done, never
 *    after a stop that returned true, and always, eventually, when its
 *    context is done and it was not stopped.
 * Every 10 seconds the workers park between batches (all their contexts
 * released, their ring drained) and one line is printed: operations, RSS,
 * open fds, the runtime's counters. RSS and fds are compared between minute
 * 1 (25% of the run for runs under 2 minutes: allocator caches and thread
 * arenas settle first) and the end: RSS may grow by max(10%, 4 MiB), fds not
 * at all. SOAK_RSS_CHECK=0 reports RSS without judging it (sanitizers keep
 * freed memory in quarantine).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "ringctx.h"

#define MS(x) ((int64_t)(x) * 1000000LL)
#define US(x) ((int64_t)(x) * 1000LL)

#define MAX_THREADS 4
#define GEN_NODES 9      /* nodes of a shared tree */
#define MAX_NODES 48     /* a worker's own contexts per batch */
#define MAX_REQS 64      /* requests per batch */
#define MAX_AFTER 16     /* after-funcs per batch */
#define BATCH_OPS 400    /* operations per batch at most */
#define NPAIRS 4         /* socketpairs per worker */
#define NSLOTS 8         /* hand-off slots for cross-thread cancels */
#define FILE_LEN 4096
#define SETTLE_MS 10000  /* bound for anything that must happen "eventually" */

static void die(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fputs("soak: VIOLATION: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	abort();
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

static uint32_t rnd(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	*s = x;
	return (uint32_t)(x >> 32);
}

/* True with probability 1/n. */
static bool one_in(uint64_t *s, uint32_t n)
{
	return rnd(s) % n == 0;
}

static bool valid_err(int e)
{
	return e == 0 || e == -ECANCELED || e == -ETIMEDOUT;
}

/* ---- counters ------------------------------------------------------------ */

struct counters {
	_Atomic uint64_t created, cancels, timeouts, req_ok, req_aborted,
		blocking, af_run, af_stopped, shared_cancels;
};
static struct counters cnt;

#define COUNT(f, n) atomic_fetch_add_explicit(&cnt.f, (n), memory_order_relaxed)
#define READ(f) atomic_load_explicit(&cnt.f, memory_order_relaxed)

/* ---- shared trees -------------------------------------------------------- */

enum kind { K_CANCEL, K_TIMEOUT, K_VALUE, K_WITHOUT, K_NKINDS };

/*
 * One generation of the shared tree. The main thread holds one use and drops
 * it when it replaces the generation (after cancelling its root); each worker
 * holds one for a batch. The last user releases the nodes.
 */
struct gen {
	_Atomic int users;
	rctx_t *node[GEN_NODES];
	int parent[GEN_NODES];  /* index, -1: background */
	int kind[GEN_NODES];
	_Atomic int seen[GEN_NODES];
};

/* Shape: who is whose parent, and of which kind. */
static const int gen_parent[GEN_NODES] = { -1, 0, 1, 0, 3, 2, 0, 6, 7 };
static const int gen_kind[GEN_NODES] = {
	K_CANCEL, K_VALUE, K_CANCEL, K_TIMEOUT, K_CANCEL,
	K_VALUE, K_WITHOUT, K_CANCEL, K_TIMEOUT,
};

static pthread_mutex_t gen_lock = PTHREAD_MUTEX_INITIALIZER;
static struct gen *gen_cur;
static int value_key;

static rctx_t *make_child(rctx_t *parent, int kind, int64_t timeout_ns)
{
	switch (kind) {
	case K_CANCEL:
		return rctx_with_cancel(parent);
	case K_TIMEOUT:
		return rctx_with_timeout(parent, timeout_ns);
	case K_VALUE:
		return rctx_with_value(parent, &value_key, parent);
	default:
		return rctx_without_cancel(parent);
	}
}

static struct gen *gen_new(uint64_t *rs)
{
	struct gen *g = calloc(1, sizeof(*g));

	if (!g)
		die("out of memory");
	atomic_init(&g->users, 1);
	for (int i = 0; i < GEN_NODES; i++) {
		int p = gen_parent[i];
		rctx_t *parent = p < 0 ? rctx_background() : g->node[p];

		g->parent[i] = p;
		g->kind[i] = gen_kind[i];
		g->node[i] = make_child(parent, gen_kind[i],
					MS(200 + rnd(rs) % 1300));
		if (!g->node[i])
			die("shared node %d not created", i);
		COUNT(created, 1);
	}
	return g;
}

static struct gen *gen_get(void)
{
	struct gen *g;

	pthread_mutex_lock(&gen_lock);
	g = gen_cur;
	atomic_fetch_add(&g->users, 1);
	pthread_mutex_unlock(&gen_lock);
	return g;
}

static void gen_put(struct gen *g)
{
	if (atomic_fetch_sub(&g->users, 1) != 1)
		return;
	for (int i = GEN_NODES - 1; i >= 0; i--)
		rctx_release(g->node[i]);
	free(g);
}

/* Install a new generation; cancel the old root (its users see it done
 * from another thread) and drop the main thread's use of it. */
static void gen_replace(uint64_t *rs)
{
	struct gen *g = gen_new(rs), *old;

	pthread_mutex_lock(&gen_lock);
	old = gen_cur;
	gen_cur = g;
	pthread_mutex_unlock(&gen_lock);
	if (old) {
		if (rctx_cancel(old->node[0]) == 1)
			COUNT(cancels, 1);
		gen_put(old);
	}
}

/*
 * A shared node's error: valid, and once seen non-zero by anyone, never
 * different. The record is read before the error, so a record made after
 * our read cannot be mistaken for a change.
 */
static int gen_check_node(struct gen *g, int i)
{
	int s = atomic_load(&g->seen[i]);
	int e = rctx_err(g->node[i]);
	int z = 0;

	if (!valid_err(e))
		die("shared node %d: err %d", i, e);
	if (s && e != s)
		die("shared node %d: err went from %d to %d", i, s, e);
	if (g->kind[i] == K_WITHOUT && e)
		die("shared without-cancel node %d done: %d", i, e);
	if (e && !s && !atomic_compare_exchange_strong(&g->seen[i], &z, e) && z != e)
		die("shared node %d: seen as %d and as %d", i, z, e);
	return e;
}

static void gen_check(struct gen *g)
{
	for (int i = 0; i < GEN_NODES; i++) {
		int p = g->parent[i];
		int pe = p >= 0 ? gen_check_node(g, p) : 0;
		int e = gen_check_node(g, i);

		if (pe && !e && g->kind[i] != K_WITHOUT)
			die("shared node %d live under done node %d (%d)", i, p, pe);
	}
}

/* Cross-thread cancels also go through hand-off slots: a worker publishes
 * one of its contexts (with a reference), another takes and cancels it. */
static _Atomic(rctx_t *) slots[NSLOTS];

static void slot_swap(int i, rctx_t *ctx)
{
	rctx_t *old = atomic_exchange(&slots[i], ctx);

	if (old) {
		if (rctx_cancel(old) == 1)
			COUNT(cancels, 1);
		rctx_unref(old);
	}
}

/* ---- a worker's own contexts -------------------------------------------- */

struct node {
	rctx_t *ctx;
	rctx_t *parent;    /* for the edge check; NULL: exempt */
	int kind;
	int seen;
	bool released;
};

struct req {
	int calls;
	int res;
	int op;
	struct __kernel_timespec ts;
	char buf[64];
};

struct after {
	rctx_after_t *h;
	rctx_t *ctx;              /* kept alive by the handle */
	_Atomic int runs;
	_Atomic bool stopped;     /* a stop returned true */
	_Atomic bool finished;    /* fn returned: the record may be reused */
};

struct worker {
	pthread_t tid;
	int id;
	uint64_t rs;
	rctx_ring_t *ring;
	int pair[NPAIRS][2];
	struct gen *gen;
	struct node nodes[MAX_NODES];
	int nnodes;
	struct req reqs[MAX_REQS];
	int nreqs;
	struct after afs[MAX_AFTER];
	int nafs;
};

static int file_fd;
static int nthreads;
static _Atomic bool stop_flag;
static _Atomic bool pause_flag;
static _Atomic int parked;
static pthread_mutex_t park_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t park_cond = PTHREAD_COND_INITIALIZER;

static int node_check(struct node *n, int idx)
{
	int pe, e;

	if (n->released)
		return 0;
	pe = n->parent ? rctx_err(n->parent) : 0;
	e = rctx_err(n->ctx);
	if (!valid_err(e))
		die("context %d (kind %d): err %d", idx, n->kind, e);
	if (n->seen && e != n->seen)
		die("context %d (kind %d): err went from %d to %d", idx, n->kind,
		    n->seen, e);
	if (n->kind == K_WITHOUT && e)
		die("without-cancel context %d done: %d", idx, e);
	if (pe && !e)
		die("context %d (kind %d) live under a done parent (%d)", idx,
		    n->kind, pe);
	if (e == -ETIMEDOUT && !n->seen)
		COUNT(timeouts, 1);
	n->seen = e;
	return e;
}

static void check_all(struct worker *w)
{
	gen_check(w->gen);
	for (int i = 0; i < w->nnodes; i++)
		node_check(&w->nodes[i], i);
}

/* A parent for a new child or request: a shared node or one of ours. */
static rctx_t *pick_parent(struct worker *w, int *own)
{
	*own = -1;
	if (w->nnodes && !one_in(&w->rs, 3)) {
		int i = rnd(&w->rs) % w->nnodes;

		if (!w->nodes[i].released) {
			*own = i;
			return w->nodes[i].ctx;
		}
	}
	return w->gen->node[rnd(&w->rs) % GEN_NODES];
}

static void op_create(struct worker *w)
{
	struct node *n;
	int own, kind = rnd(&w->rs) % K_NKINDS;
	rctx_t *parent;

	if (w->nnodes == MAX_NODES)
		return;
	parent = pick_parent(w, &own);
	n = &w->nodes[w->nnodes];
	n->ctx = make_child(parent, kind, US(rnd(&w->rs) % 3000));
	if (!n->ctx)
		die("constructor of kind %d failed", kind);
	COUNT(created, 1);
	n->parent = kind == K_WITHOUT ? NULL : parent;
	n->kind = kind;
	n->seen = 0;
	n->released = false;
	w->nnodes++;
	/* Only on cancellable contexts of ours: their fd is their own and goes
	 * with them at the end of the batch. */
	if ((kind == K_CANCEL || kind == K_TIMEOUT) && one_in(&w->rs, 8)) {
		int fd = rctx_done_fd(n->ctx);

		if (fd < 0)
			die("rctx_done_fd: %d", fd);
	}
	node_check(n, w->nnodes - 1);
}

static void op_cancel_own(struct worker *w, bool release)
{
	struct node *n;
	int i;

	if (!w->nnodes)
		return;
	i = rnd(&w->rs) % w->nnodes;
	n = &w->nodes[i];
	if (n->released)
		return;
	if (release) {
		node_check(n, i);
		n->released = true;
		rctx_release(n->ctx);
	} else if (rctx_cancel(n->ctx) == 1) {
		COUNT(cancels, 1);
	}
}

static void op_cancel_shared(struct worker *w)
{
	int i = rnd(&w->rs) % GEN_NODES;

	/* The root rarely: it ends the whole generation for everyone. */
	if (i == 0 && !one_in(&w->rs, 8))
		return;
	if (rctx_cancel(w->gen->node[i]) == 1) {
		COUNT(cancels, 1);
		COUNT(shared_cancels, 1);
	}
}

static void op_handoff(struct worker *w)
{
	rctx_t *c = rctx_with_cancel(w->gen->node[rnd(&w->rs) % GEN_NODES]);

	if (!c)
		die("with_cancel failed");
	COUNT(created, 1);
	slot_swap(rnd(&w->rs) % NSLOTS, c);
}

/* ---- requests ------------------------------------------------------------ */

enum { OP_NOP, OP_TIMEOUT, OP_RECV };

static void req_cb(void *arg, int res, uint32_t flags)
{
	struct req *r = arg;
	bool ok;

	(void)flags;
	if (++r->calls > 1)
		die("request callback ran %d times", r->calls);
	r->res = res;
	switch (r->op) {
	case OP_NOP:
		ok = res == 0;
		break;
	case OP_TIMEOUT:
		ok = res == -ETIME;
		break;
	default:
		ok = res > 0;
		break;
	}
	if (!ok && res != -ECANCELED && res != -ETIMEDOUT && res != -EINTR)
		die("request op %d: result %d", r->op, res);
	if (ok)
		COUNT(req_ok, 1);
	else
		COUNT(req_aborted, 1);
}

/* recv only under our own cancellable contexts, which the batch ends by
 * releasing: nothing else guarantees that a recv ever ends. */
static rctx_t *recv_parent(struct worker *w)
{
	for (int tries = 0; tries < 4 && w->nnodes; tries++) {
		struct node *n = &w->nodes[rnd(&w->rs) % w->nnodes];

		if (!n->released && (n->kind == K_CANCEL || n->kind == K_TIMEOUT))
			return n->ctx;
	}
	return NULL;
}

static void op_submit(struct worker *w)
{
	struct io_uring_sqe sqe;
	struct req *r;
	rctx_t *ctx;
	int own, ret;

	if (w->nreqs == MAX_REQS)
		return;
	r = &w->reqs[w->nreqs];
	memset(r, 0, sizeof(*r));
	memset(&sqe, 0, sizeof(sqe));
	r->op = rnd(&w->rs) % 3;
	ctx = pick_parent(w, &own);
	switch (r->op) {
	case OP_NOP:
		io_uring_prep_nop(&sqe);
		break;
	case OP_TIMEOUT:
		r->ts.tv_nsec = rnd(&w->rs) % MS(3);
		io_uring_prep_timeout(&sqe, &r->ts, 0, 0);
		break;
	default:
		ctx = recv_parent(w);
		if (!ctx)
			return;
		io_uring_prep_recv(&sqe, w->pair[rnd(&w->rs) % NPAIRS][0], r->buf,
				   sizeof(r->buf), 0);
		break;
	}
	ret = rctx_submit(w->ring, ctx, &sqe, req_cb, r);
	if (ret)
		die("rctx_submit: %d", ret);
	w->nreqs++;
}

static void op_feed(struct worker *w)
{
	static const char msg[] = "soak";
	ssize_t n = send(w->pair[rnd(&w->rs) % NPAIRS][1], msg, sizeof(msg),
			 MSG_DONTWAIT);

	if (n < 0 && errno != EAGAIN)
		die("send: %s", strerror(errno));
}

static void op_run(struct worker *w)
{
	int ret = rctx_ring_run(w->ring, 0);

	if (ret < 0)
		die("rctx_ring_run: %d", ret);
}

/* ---- blocking calls ------------------------------------------------------ */

static void op_blocking(struct worker *w)
{
	char buf[512];
	int own;
	rctx_t *ctx = rctx_with_timeout(pick_parent(w, &own), US(rnd(&w->rs) % 2000));
	ssize_t n;

	if (!ctx)
		die("with_timeout failed");
	COUNT(created, 1);
	if (one_in(&w->rs, 2)) {
		n = rctx_recv(ctx, w->pair[rnd(&w->rs) % NPAIRS][0], buf, sizeof(buf), 0);
		if (n <= 0 && n != -ECANCELED && n != -ETIMEDOUT)
			die("rctx_recv: %zd", n);
	} else {
		int64_t off = rnd(&w->rs) % (FILE_LEN - sizeof(buf));

		n = rctx_read(ctx, file_fd, buf, sizeof(buf), off);
		if (n != (ssize_t)sizeof(buf) && n != -ECANCELED && n != -ETIMEDOUT)
			die("rctx_read: %zd", n);
		if (n > 0 && buf[0] != (char)(off & 0x7f))
			die("rctx_read: wrong data at %lld", (long long)off);
	}
	if (n < 0 && n != rctx_err(ctx))
		die("blocking call gave %zd, its context %d", n, rctx_err(ctx));
	if (rctx_err(ctx) == -ETIMEDOUT)
		COUNT(timeouts, 1);
	COUNT(blocking, 1);
	rctx_release(ctx);
}

/* ---- after-funcs --------------------------------------------------------- */

/*
 * Stop and run race: the stopper marks `stopped` after a successful stop and
 * then reads `runs`; fn counts `runs` and then reads `stopped`. Sequentially
 * consistent, so if both happened one of them sees the other.
 */
static void after_fn(void *arg)
{
	struct after *a = arg;

	if (atomic_fetch_add(&a->runs, 1) != 0)
		die("after-func ran twice");
	if (atomic_load(&a->stopped))
		die("after-func ran after a successful stop");
	if (rctx_err(a->ctx) == 0)
		die("after-func ran while its context is live");
	COUNT(af_run, 1);
	atomic_store(&a->finished, true);
}

static void after_stop(struct after *a)
{
	if (!rctx_after_stop(a->h))
		return;
	atomic_store(&a->stopped, true);
	if (atomic_load(&a->runs))
		die("after-func ran although its stop returned true");
	COUNT(af_stopped, 1);
}

static void op_after(struct worker *w)
{
	struct after *a;
	int own;

	if (w->nafs == MAX_AFTER)
		return;
	a = &w->afs[w->nafs];
	a->ctx = pick_parent(w, &own);
	atomic_store(&a->runs, 0);
	atomic_store(&a->stopped, false);
	atomic_store(&a->finished, false);
	a->h = rctx_after_func(a->ctx, after_fn, a);
	if (!a->h)
		die("rctx_after_func failed");
	w->nafs++;
	/* Race the stop against a cancel of the context (ours), the deadline,
	 * or nothing at all. */
	switch (rnd(&w->rs) % 4) {
	case 0:
		if (own >= 0 && rctx_cancel(a->ctx) == 1)
			COUNT(cancels, 1);
		after_stop(a);
		break;
	case 1:
		after_stop(a);
		if (own >= 0 && rctx_cancel(a->ctx) == 1)
			COUNT(cancels, 1);
		break;
	case 2:
		after_stop(a);
		break;
	}
}

static void wait_finished(struct after *a)
{
	int64_t limit = rctx_now() + MS(SETTLE_MS);

	while (!atomic_load(&a->finished)) {
		if (rctx_now() > limit)
			die("after-func of a done context not run after %d ms",
			    SETTLE_MS);
		sleep_ms(1);
	}
}

/* Every after-func of the batch: stopped, or run (once, checked in fn). */
static void after_settle(struct worker *w)
{
	for (int i = 0; i < w->nafs; i++) {
		struct after *a = &w->afs[i];

		if (!atomic_load(&a->stopped)) {
			if (rctx_err(a->ctx) == 0)
				after_stop(a);
			if (!atomic_load(&a->stopped))
				wait_finished(a);
		}
		if (rctx_after_stop(a->h))
			die("second stop of an after-func returned true");
		rctx_after_release(a->h);
	}
	w->nafs = 0;
}

/* ---- batches ------------------------------------------------------------- */

static void drain(struct worker *w)
{
	int64_t limit = rctx_now() + MS(SETTLE_MS);

	while (rctx_ring_pending(w->ring)) {
		if (rctx_now() > limit)
			die("%u requests not ended after %d ms",
			    rctx_ring_pending(w->ring), SETTLE_MS);
		if (rctx_ring_run(w->ring, rctx_now() + MS(10)) < 0)
			die("rctx_ring_run failed");
	}
	for (int i = 0; i < w->nreqs; i++)
		if (w->reqs[i].calls != 1)
			die("request %d (op %d): callback ran %d times", i,
			    w->reqs[i].op, w->reqs[i].calls);
	w->nreqs = 0;
}

static void batch_end(struct worker *w)
{
	check_all(w);
	for (int i = w->nnodes - 1; i >= 0; i--) {
		if (!w->nodes[i].released)
			rctx_release(w->nodes[i].ctx);
		w->nodes[i].released = true;
	}
	drain(w);
	after_settle(w);
	w->nnodes = 0;
}

static void one_op(struct worker *w)
{
	uint32_t r = rnd(&w->rs) % 1000;

	if (r < 300)
		op_create(w);
	else if (r < 400)
		op_cancel_own(w, false);
	else if (r < 450)
		op_cancel_own(w, true);
	else if (r < 600)
		op_submit(w);
	else if (r < 680)
		op_feed(w);
	else if (r < 800)
		op_run(w);
	else if (r < 840)
		op_after(w);
	else if (r < 860)
		op_blocking(w);
	else if (r < 870)
		op_handoff(w);
	else if (r < 872)
		op_cancel_shared(w);
	else
		check_all(w);
}

static void batch(struct worker *w)
{
	int ops = 1 + rnd(&w->rs) % BATCH_OPS;

	w->gen = gen_get();
	for (int i = 0; i < ops && !atomic_load(&stop_flag); i++)
		one_op(w);
	batch_end(w);
	gen_put(w->gen);
	w->gen = NULL;
}

static void maybe_park(void)
{
	if (!atomic_load(&pause_flag))
		return;
	pthread_mutex_lock(&park_lock);
	atomic_fetch_add(&parked, 1);
	pthread_cond_broadcast(&park_cond);
	while (atomic_load(&pause_flag))
		pthread_cond_wait(&park_cond, &park_lock);
	atomic_fetch_sub(&parked, 1);
	pthread_mutex_unlock(&park_lock);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	int ret = rctx_ring_create(&w->ring, 256);

	if (ret)
		die("rctx_ring_create: %d", ret);
	while (!atomic_load(&stop_flag)) {
		batch(w);
		maybe_park();
	}
	rctx_ring_destroy(w->ring);
	return NULL;
}

/* ---- resources ----------------------------------------------------------- */

static long rss_kib(void)
{
	long pages = 0, rss = 0;
	FILE *f = fopen("/proc/self/statm", "r");

	if (!f || fscanf(f, "%ld %ld", &pages, &rss) != 2)
		die("cannot read /proc/self/statm");
	fclose(f);
	return rss * (sysconf(_SC_PAGESIZE) / 1024);
}

static int fd_count(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	if (!d)
		die("cannot open /proc/self/fd");
	while (readdir(d))
		n++;
	closedir(d);
	return n - 3; /* ".", ".." and the directory's own fd */
}

/* Workers parked between batches: nothing of theirs is in flight. Empty the
 * hand-off slots too, and give the runtime thread a moment to drop the
 * references it held for after-funcs and timers. */
static void quiesce(void)
{
	struct timespec limit;

	clock_gettime(CLOCK_REALTIME, &limit);
	limit.tv_sec += 3 * SETTLE_MS / 1000;
	atomic_store(&pause_flag, true);
	pthread_mutex_lock(&park_lock);
	while (atomic_load(&parked) < nthreads)
		if (pthread_cond_timedwait(&park_cond, &park_lock, &limit) == ETIMEDOUT)
			die("workers did not finish their batch in %d s: a hang",
			    3 * SETTLE_MS / 1000);
	pthread_mutex_unlock(&park_lock);
	for (int i = 0; i < NSLOTS; i++)
		slot_swap(i, NULL);
	sleep_ms(50);
}

static void resume(void)
{
	pthread_mutex_lock(&park_lock);
	atomic_store(&pause_flag, false);
	pthread_cond_broadcast(&park_cond);
	pthread_mutex_unlock(&park_lock);
}

struct sample {
	long rss_kib;
	int fds;
};

static struct sample report(int64_t start)
{
	struct rctx_runtime_stats rt;
	struct sample s = { rss_kib(), fd_count() };

	if (rctx_runtime_stats(&rt))
		die("rctx_runtime_stats failed");
	printf("soak: %4llds ctx=%llu cancels=%llu (shared %llu) timeouts=%llu "
	       "req ok=%llu aborted=%llu blocking=%llu after run=%llu stopped=%llu "
	       "rss=%ldKiB fds=%d | runtime armed=%llu skipped=%llu fired=%llu "
	       "removed=%llu live=%llu after=%llu wakeups=%llu\n",
	       (long long)((rctx_now() - start) / MS(1000)),
	       (unsigned long long)READ(created), (unsigned long long)READ(cancels),
	       (unsigned long long)READ(shared_cancels),
	       (unsigned long long)READ(timeouts), (unsigned long long)READ(req_ok),
	       (unsigned long long)READ(req_aborted),
	       (unsigned long long)READ(blocking), (unsigned long long)READ(af_run),
	       (unsigned long long)READ(af_stopped), s.rss_kib, s.fds,
	       (unsigned long long)rt.timers_armed,
	       (unsigned long long)rt.timers_skipped,
	       (unsigned long long)rt.timers_fired,
	       (unsigned long long)rt.timers_removed,
	       (unsigned long long)rt.timers_live,
	       (unsigned long long)rt.after_funcs_run,
	       (unsigned long long)rt.wakeups);
	fflush(stdout);
	return s;
}

/* ---- setup --------------------------------------------------------------- */

static long env_long(const char *name, long def, long lo, long hi)
{
	const char *v = getenv(name);
	char *end;
	long n;

	if (!v || !*v)
		return def;
	n = strtol(v, &end, 10);
	if (*end || n < lo || n > hi) {
		fprintf(stderr, "soak: %s must be %ld..%ld\n", name, lo, hi);
		exit(2);
	}
	return n;
}

/* A small regular file whose byte at offset o is o & 0x7f. */
static int make_file(void)
{
	char path[] = "/tmp/ringctx-soak-XXXXXX", data[FILE_LEN];
	int fd = mkstemp(path);

	if (fd < 0)
		die("mkstemp: %s", strerror(errno));
	unlink(path);
	for (int i = 0; i < FILE_LEN; i++)
		data[i] = (char)(i & 0x7f);
	if (write(fd, data, sizeof(data)) != (ssize_t)sizeof(data))
		die("write: %s", strerror(errno));
	return fd;
}

static void worker_init(struct worker *w, int id)
{
	memset(w, 0, sizeof(*w));
	w->id = id;
	w->rs = 0x9e3779b97f4a7c15ULL * (uint64_t)(id + 1) ^ (uint64_t)rctx_now();
	for (int i = 0; i < NPAIRS; i++)
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, w->pair[i]))
			die("socketpair: %s", strerror(errno));
}

static void worker_fini(struct worker *w)
{
	for (int i = 0; i < NPAIRS; i++) {
		close(w->pair[i][0]);
		close(w->pair[i][1]);
	}
}

/* Run for `seconds`: a new shared tree every second, a report every ten,
 * the baseline sample at `base_s`. Returns the baseline and the end. */
static void run(int seconds, int base_s, uint64_t *rs, struct sample *base,
		struct sample *end)
{
	int64_t start = rctx_now();
	bool have_base = false;

	for (int s = 1; s <= seconds; s++) {
		int64_t next = start + MS(1000) * s;

		while (rctx_now() < next)
			sleep_ms((next - rctx_now()) / MS(1) + 1);
		gen_replace(rs);
		if (s % 10 && s != seconds && (have_base || s < base_s))
			continue;
		quiesce();
		*end = report(start);
		if (!have_base && s >= base_s) {
			*base = *end;
			have_base = true;
		}
		resume();
	}
}

static bool judge(const struct sample *base, const struct sample *end,
		  int base_s, bool rss_check)
{
	long margin = base->rss_kib / 10 > 4096 ? base->rss_kib / 10 : 4096;
	bool ok = true;

	printf("soak: at %ds rss=%ldKiB fds=%d; at the end rss=%ldKiB fds=%d "
	       "(rss %+ldKiB, allowed +%ldKiB%s; fds %+d, allowed +0)\n",
	       base_s, base->rss_kib, base->fds, end->rss_kib, end->fds,
	       end->rss_kib - base->rss_kib, margin,
	       rss_check ? "" : ", not judged", end->fds - base->fds);
	if (rss_check && end->rss_kib - base->rss_kib > margin) {
		printf("soak: FAIL: RSS grew by %ldKiB\n", end->rss_kib - base->rss_kib);
		ok = false;
	}
	if (end->fds > base->fds) {
		printf("soak: FAIL: %d more open fds\n", end->fds - base->fds);
		ok = false;
	}
	return ok;
}

int main(void)
{
	static struct worker workers[MAX_THREADS];
	int seconds = env_long("SOAK_SECONDS", 600, 1, 365L * 24 * 3600);
	bool rss_check = env_long("SOAK_RSS_CHECK", 1, 0, 1);
	int base_s = seconds >= 120 ? 60 : (seconds + 3) / 4;
	uint64_t rs = 0x2545f4914f6cdd1dULL ^ (uint64_t)rctx_now();
	struct sample base = { 0 }, end = { 0 };
	bool ok;

	nthreads = env_long("SOAK_THREADS", 4, 2, MAX_THREADS);
	printf("soak: %d threads, %d s, baseline at %d s\n", nthreads, seconds, base_s);
	file_fd = make_file();
	gen_replace(&rs);
	for (int i = 0; i < nthreads; i++) {
		worker_init(&workers[i], i);
		if (pthread_create(&workers[i].tid, NULL, worker_main, &workers[i]))
			die("pthread_create failed");
	}
	run(seconds, base_s, &rs, &base, &end);
	atomic_store(&stop_flag, true);
	for (int i = 0; i < nthreads; i++) {
		pthread_join(workers[i].tid, NULL);
		worker_fini(&workers[i]);
	}
	for (int i = 0; i < NSLOTS; i++)
		slot_swap(i, NULL);
	rctx_cancel(gen_cur->node[0]);
	gen_put(gen_cur);
	gen_cur = NULL;
	close(file_fd);
	ok = judge(&base, &end, base_s, rss_check);
	puts(ok ? "soak: PASS" : "soak: FAIL");
	return ok ? 0 : 1;
}
