/* Description: groups (Go's errgroup with SetLimit): the limit of running
 * functions holds under a storm of go calls from several threads, worker
 * threads are reused, try_go refuses when full and succeeds once a slot
 * frees, the first failure wins a race and cancels the group's context with
 * itself as cause, go on a done group runs nothing, waiting callers are
 * woken by a cancel; rctx_group_submit keeps at most limit requests in
 * flight, submits queued ones in FIFO order, completes a queued request
 * whose context ends at once (even behind stuck ones, and when the cancel
 * comes from another thread) without any kernel object per queued request,
 * and every request completes exactly once when the group context is
 * cancelled, the group is freed first, or the ring is destroyed. */
/* tsan: yes */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdatomic.h>
#include <unistd.h>

#include "ringctx.h"
#include "helpers.h"
#include "ring_util.h"

TestSuite(group, .timeout = 120);

/* Spin (yielding) until cond holds or TH_PATIENCE_MS passes. */
#define SPIN_UNTIL(cond)                                                      \
	({                                                                    \
		int64_t su_end_ = th_now_ns() + MS(TH_PATIENCE_MS);           \
		bool su_ok_;                                                  \
		while (!(su_ok_ = !!(cond)) && th_now_ns() < su_end_)         \
			sched_yield();                                        \
		su_ok_;                                                       \
	})

/* ---- functions ------------------------------------------------------------ */

#define MAX_TIDS 64

struct storm {
	int limit;
	atomic_int cur, max, runs, over;
	pthread_mutex_t lock;
	pthread_t tids[MAX_TIDS];
	int ntids;
};

static int storm_fn(rctx_t *ctx, void *arg)
{
	struct storm *s = arg;
	int now = atomic_fetch_add(&s->cur, 1) + 1, m;
	pthread_t self = pthread_self();
	bool known = false;

	(void)ctx;
	if (now > s->limit)
		atomic_fetch_add(&s->over, 1);
	m = atomic_load(&s->max);
	while (now > m && !atomic_compare_exchange_weak(&s->max, &m, now))
		;
	pthread_mutex_lock(&s->lock);
	for (int i = 0; i < s->ntids; i++)
		known |= pthread_equal(s->tids[i], self);
	if (!known && s->ntids < MAX_TIDS)
		s->tids[s->ntids++] = self;
	pthread_mutex_unlock(&s->lock);
	sched_yield();
	atomic_fetch_sub(&s->cur, 1);
	atomic_fetch_add(&s->runs, 1);
	return 0;
}

struct storm_thread {
	rctx_group_t *g;
	struct storm *s;
	int n;
	atomic_int fails;
};

static void *storm_caller(void *p)
{
	struct storm_thread *t = p;

	for (int i = 0; i < t->n; i++)
		if (rctx_group_go(t->g, storm_fn, t->s) != 0)
			atomic_fetch_add(&t->fails, 1);
	return NULL;
}

Test(group, limit_holds_under_a_storm_and_workers_are_reused)
{
	enum { CALLERS = 4, LIMIT = 3 };
	struct storm s = { .limit = LIMIT, .lock = PTHREAD_MUTEX_INITIALIZER };
	rctx_group_t *g = rctx_group_new(rctx_background(), LIMIT);
	struct storm_thread t = { .n = (int)th_scaled(300) };
	pthread_t th[CALLERS];

	cr_assert_not_null(g);
	t.g = g;
	t.s = &s;
	for (int i = 0; i < CALLERS; i++)
		cr_assert_eq(pthread_create(&th[i], NULL, storm_caller, &t), 0);
	for (int i = 0; i < CALLERS; i++)
		pthread_join(th[i], NULL);
	cr_assert_eq(rctx_group_wait(g), 0);
	cr_assert_eq(atomic_load(&t.fails), 0);
	cr_assert_eq(atomic_load(&s.runs), CALLERS * t.n);
	cr_assert_eq(atomic_load(&s.over), 0, "more than %d ran at once", LIMIT);
	cr_assert_leq(atomic_load(&s.max), LIMIT);
	cr_assert_geq(s.ntids, 1);
	cr_assert_leq(s.ntids, LIMIT, "%d worker threads for a limit of %d", s.ntids, LIMIT);
	rctx_group_free(g);
}

/* Runs until released; says when it started. */
struct gate {
	atomic_int entered, open, ran;
	int ret;
};

static int gate_fn(rctx_t *ctx, void *arg)
{
	struct gate *gt = arg;

	(void)ctx;
	atomic_fetch_add(&gt->entered, 1);
	SPIN_UNTIL(atomic_load(&gt->open));
	atomic_fetch_add(&gt->ran, 1);
	return gt->ret;
}

static int count_fn(rctx_t *ctx, void *arg)
{
	(void)ctx;
	atomic_fetch_add((atomic_int *)arg, 1);
	return 0;
}

Test(group, try_go_refuses_when_full_and_succeeds_once_a_slot_frees)
{
	rctx_group_t *g = rctx_group_new(rctx_background(), 1);
	struct gate gt = { 0 };
	atomic_int ran = 0;
	int ret;

	cr_assert_not_null(g);
	cr_assert_eq(rctx_group_try_go(g, gate_fn, &gt), 0);
	cr_assert(SPIN_UNTIL(atomic_load(&gt.entered) == 1));
	cr_assert_eq(rctx_group_try_go(g, count_fn, &ran), -EAGAIN);
	cr_assert_eq(rctx_group_try_go(g, count_fn, &ran), -EAGAIN);
	atomic_store(&gt.open, 1);
	/* The slot frees once gate_fn returned: until then only -EAGAIN. */
	cr_assert(SPIN_UNTIL((ret = rctx_group_try_go(g, count_fn, &ran)) != -EAGAIN));
	cr_assert_eq(ret, 0);
	cr_assert_eq(atomic_load(&gt.ran), 1);
	cr_assert_eq(rctx_group_wait(g), 0);
	cr_assert_eq(atomic_load(&ran), 1);
	rctx_group_free(g);
}

struct racer {
	atomic_int *ready;
	int n, ret;
	atomic_int *saw_cancel;
};

static int racer_fn(rctx_t *ctx, void *arg)
{
	struct racer *r = arg;

	atomic_fetch_add(r->ready, 1);
	SPIN_UNTIL(atomic_load(r->ready) >= r->n);
	if (r->ret)
		return r->ret;
	/* The others: see the context end. */
	if (rctx_wait(ctx, rctx_now() + MS(TH_PATIENCE_MS)) == 0 &&
	    rctx_err(ctx) == -ECANCELED)
		atomic_fetch_add(r->saw_cancel, 1);
	return 0;
}

Test(group, first_failure_wins_a_race_and_cancels_the_others)
{
	enum { FAILERS = 8, WATCHERS = 3, N = FAILERS + WATCHERS };
	rctx_group_t *g = rctx_group_new(rctx_background(), -1);
	atomic_int ready = 0, saw = 0;
	struct racer r[N];
	int res, cause;
	bool found = false;

	cr_assert_not_null(g);
	for (int i = 0; i < N; i++) {
		r[i] = (struct racer){ &ready, N, i < FAILERS ? 1000 + i : 0, &saw };
		cr_assert_eq(rctx_group_go(g, racer_fn, &r[i]), 0);
	}
	res = rctx_group_wait(g);
	cause = rctx_cause(rctx_group_ctx(g));
	for (int i = 0; i < FAILERS; i++)
		found |= res == 1000 + i;
	cr_assert(found, "wait returned %d, not one of the results", res);
	cr_assert_eq(cause, res, "cause %d, result %d", cause, res);
	cr_assert_eq(rctx_err(rctx_group_ctx(g)), -ECANCELED);
	cr_assert_eq(atomic_load(&saw), WATCHERS);
	cr_assert_eq(rctx_group_wait(g), res, "a second wait returns the same");
	rctx_group_free(g);
}

Test(group, go_on_a_done_group_runs_nothing)
{
	rctx_group_t *g = rctx_group_new(rctx_background(), 2);
	atomic_int ran = 0;

	cr_assert_not_null(g);
	cr_assert_eq(rctx_cancel(rctx_group_ctx(g)), 1);
	cr_assert_eq(rctx_group_go(g, count_fn, &ran), -ECANCELED);
	cr_assert_eq(rctx_group_try_go(g, count_fn, &ran), -ECANCELED);
	cr_assert_eq(rctx_group_wait(g), 0, "no function failed");
	cr_assert_eq(rctx_group_go(g, count_fn, &ran), -ECANCELED);
	rctx_group_free(g);
	cr_assert_eq(atomic_load(&ran), 0);

	/* After a wait: the context is cancelled, as Go's Wait does. */
	g = rctx_group_new(rctx_background(), -1);
	cr_assert_not_null(g);
	cr_assert_eq(rctx_group_go(g, count_fn, &ran), 0);
	cr_assert_eq(rctx_group_wait(g), 0);
	cr_assert_eq(atomic_load(&ran), 1);
	cr_assert_eq(rctx_group_go(g, count_fn, &ran), -ECANCELED);
	rctx_group_free(g);
	cr_assert_eq(atomic_load(&ran), 1);
}

struct blocked_go {
	rctx_group_t *g;
	atomic_int *ran;
	atomic_int started;
	int ret;
};

static void *blocked_go_main(void *p)
{
	struct blocked_go *b = p;

	atomic_store(&b->started, 1);
	b->ret = rctx_group_go(b->g, count_fn, b->ran);
	return NULL;
}

Test(group, a_go_waiting_for_a_slot_returns_when_the_context_ends)
{
	rctx_t *parent = rctx_with_cancel(rctx_background());
	rctx_group_t *g = rctx_group_new(parent, 1);
	struct gate gt = { 0 };
	atomic_int ran = 0;
	struct blocked_go b = { .ran = &ran };
	pthread_t th;

	cr_assert_not_null(g);
	b.g = g;
	cr_assert_eq(rctx_group_go(g, gate_fn, &gt), 0);
	cr_assert_eq(pthread_create(&th, NULL, blocked_go_main, &b), 0);
	cr_assert(SPIN_UNTIL(atomic_load(&b.started)));
	rctx_cancel_cause(parent, -EPIPE); /* through the parent */
	pthread_join(th, NULL);
	cr_assert_eq(b.ret, -ECANCELED);
	cr_assert_eq(rctx_cause(rctx_group_ctx(g)), -EPIPE);
	atomic_store(&gt.open, 1);
	cr_assert_eq(rctx_group_wait(g), 0);
	cr_assert_eq(atomic_load(&ran), 0);
	rctx_group_free(g);
	rctx_release(parent);
}

Test(group, without_a_limit_all_run_at_once)
{
	enum { N = 16 };
	rctx_group_t *g = rctx_group_new(rctx_background(), -1);
	struct gate gt = { 0 };

	cr_assert_not_null(g);
	for (int i = 0; i < N; i++)
		cr_assert_eq(rctx_group_go(g, gate_fn, &gt), 0);
	cr_assert(SPIN_UNTIL(atomic_load(&gt.entered) == N), "only %d of %d started",
		  atomic_load(&gt.entered), N);
	atomic_store(&gt.open, 1);
	cr_assert_eq(rctx_group_wait(g), 0);
	cr_assert_eq(atomic_load(&gt.ran), N);
	rctx_group_free(g);
}

Test(group, invalid_arguments)
{
	rctx_group_t *g;

	cr_assert_null(rctx_group_new(NULL, 1));
	cr_assert_null(rctx_group_new(rctx_background(), 0));
	cr_assert_null(rctx_group_ctx(NULL));
	cr_assert_eq(rctx_group_go(NULL, count_fn, NULL), -EINVAL);
	cr_assert_eq(rctx_group_try_go(NULL, count_fn, NULL), -EINVAL);
	cr_assert_eq(rctx_group_wait(NULL), -EINVAL);
	rctx_group_free(NULL);
	g = rctx_group_new(rctx_background(), 1);
	cr_assert_not_null(g);
	cr_assert_eq(rctx_group_go(g, NULL, NULL), -EINVAL);
	cr_assert_eq(rctx_group_submit(g, NULL, rctx_background(), NULL, rec_cb, NULL),
		     -EINVAL);
	rctx_group_free(g);
}

/* ---- requests ------------------------------------------------------------- */

struct order {
	rctx_ring_t *ring;
	int limit, max_pending, n;
	int seen[64];
};

struct order_req {
	struct order *o;
	int id;
};

static void order_cb(void *arg, int res, uint32_t flags)
{
	struct order_req *q = arg;
	int pending = (int)rctx_ring_pending(q->o->ring);

	(void)flags;
	cr_assert_eq(res, 0);
	if (pending > q->o->max_pending)
		q->o->max_pending = pending;
	q->o->seen[q->o->n++] = q->id;
}

Test(group, submit_keeps_the_limit_and_fifo_order)
{
	enum { N = 48, LIMIT = 3 };
	rctx_ring_t *ring;
	rctx_group_t *g = rctx_group_new(rctx_background(), LIMIT);
	struct order o = { .limit = LIMIT };
	struct order_req q[N];
	struct io_uring_sqe sqe;

	cr_assert_not_null(g);
	cr_assert_eq(rctx_ring_create(&ring, 64), 0);
	o.ring = ring;
	memset(&sqe, 0, sizeof(sqe));
	io_uring_prep_nop(&sqe);
	/* Under background: no sentinel, so pending counts the requests the
	 * group let through to the ring. */
	for (int i = 0; i < N; i++) {
		q[i] = (struct order_req){ &o, i };
		cr_assert_eq(rctx_group_submit(g, ring, rctx_background(), &sqe, order_cb, &q[i]), 0);
		cr_assert_leq(rctx_ring_pending(ring), LIMIT);
	}
	run_until(ring, &o.n, N, TH_PATIENCE_MS);
	cr_assert_eq(o.n, N);
	cr_assert_leq(o.max_pending, LIMIT);
	for (int i = 0; i < N; i++)
		cr_assert_eq(o.seen[i], i, "completion %d was request %d", i, o.seen[i]);
	rctx_ring_destroy(ring);
	rctx_group_free(g);
}

static void pipe_read(struct io_uring_sqe *sqe, int fd, char *buf)
{
	memset(sqe, 0, sizeof(*sqe));
	io_uring_prep_read(sqe, fd, buf, 1, 0);
}

Test(group, a_queued_request_whose_context_ends_completes_behind_stuck_ones)
{
	rctx_ring_t *ring;
	rctx_group_t *g = rctx_group_new(rctx_background(), 1);
	rctx_t *c = rctx_with_cancel(rctx_background());
	rctx_t *t = rctx_with_timeout(rctx_background(), MS(50));
	struct done_rec stuck = { 0 }, qc = { 0 }, qt = { 0 }, last = { 0 };
	struct io_uring_sqe sqe;
	char b1, b2, b3, b4;
	int p[2];

	cr_assert(g && c && t);
	cr_assert_eq(pipe(p), 0);
	cr_assert_eq(rctx_ring_create(&ring, 64), 0);
	pipe_read(&sqe, p[0], &b1);
	cr_assert_eq(rctx_group_submit(g, ring, rctx_background(), &sqe, rec_cb, &stuck), 0);
	pipe_read(&sqe, p[0], &b2);
	cr_assert_eq(rctx_group_submit(g, ring, c, &sqe, rec_cb, &qc), 0);
	pipe_read(&sqe, p[0], &b3);
	cr_assert_eq(rctx_group_submit(g, ring, t, &sqe, rec_cb, &qt), 0);
	pipe_read(&sqe, p[0], &b4);
	cr_assert_eq(rctx_group_submit(g, ring, rctx_background(), &sqe, rec_cb, &last), 0);
	rctx_ring_run(ring, 0);
	/* (qt may have completed: a slow run can reach its deadline already.) */
	cr_assert_eq(qc.calls, 0, "completed inside submit or run too early");

	rctx_cancel(c);
	run_until(ring, &qc.calls, 1, TH_PATIENCE_MS);
	cr_assert_eq(qc.calls, 1);
	cr_assert_eq(qc.res, -ECANCELED);
	run_until(ring, &qt.calls, 1, TH_PATIENCE_MS); /* its deadline */
	cr_assert_eq(qt.calls, 1);
	cr_assert_eq(qt.res, -ETIMEDOUT);
	cr_assert_eq(stuck.calls + last.calls, 0, "the stuck read and the one behind wait");

	cr_assert_eq(write(p[1], "xy", 2), 2);
	run_until(ring, &last.calls, 1, TH_PATIENCE_MS);
	cr_assert_eq(stuck.calls, 1);
	cr_assert_eq(stuck.res, 1);
	cr_assert_eq(last.calls, 1);
	cr_assert_eq(last.res, 1);
	drain_all(ring);
	rctx_ring_destroy(ring);
	rctx_group_free(g);
	rctx_release(c);
	rctx_release(t);
	close(p[0]);
	close(p[1]);
}

Test(group, cancelling_the_group_context_aborts_its_requests)
{
	enum { N = 5 };
	rctx_ring_t *ring;
	rctx_group_t *g = rctx_group_new(rctx_background(), 2);
	struct done_rec d[N] = { 0 };
	struct io_uring_sqe sqe;
	char buf[N];
	int p[2], total = 0;

	cr_assert_not_null(g);
	cr_assert_eq(pipe(p), 0);
	cr_assert_eq(rctx_ring_create(&ring, 64), 0);
	for (int i = 0; i < N; i++) {
		pipe_read(&sqe, p[0], &buf[i]);
		cr_assert_eq(rctx_group_submit(g, ring, rctx_group_ctx(g), &sqe, rec_cb, &d[i]), 0);
	}
	rctx_ring_run(ring, 0);
	cr_assert_eq(rctx_cancel_cause(rctx_group_ctx(g), -EPIPE), 1);
	drain_all(ring);
	for (int i = 0; i < N; i++) {
		cr_assert_eq(d[i].calls, 1, "request %d", i);
		cr_assert_eq(d[i].res, -ECANCELED, "request %d: %d", i, d[i].res);
		total += d[i].calls;
	}
	cr_assert_eq(total, N);
	rctx_ring_destroy(ring);
	rctx_group_free(g);
	close(p[0]);
	close(p[1]);
}

struct cross_cancel {
	rctx_t *ctx;
	_Atomic int64_t at;          /* when the cancel was issued */
};

static void *cross_cancel_main(void *p)
{
	struct cross_cancel *x = p;

	th_sleep_ms(50); /* the ring's owner is asleep in rctx_ring_run() */
	atomic_store(&x->at, th_now_ns());
	cr_assert_eq(rctx_cancel_cause(x->ctx, -EPIPE), 1);
	return NULL;
}

struct timed_rec {
	struct done_rec d;
	int64_t at;
};

static void timed_cb(void *arg, int res, uint32_t flags)
{
	struct timed_rec *t = arg;

	t->at = th_now_ns();
	rec_cb(&t->d, res, flags);
}

/* The limit is held by reads on a pipe that never gets data: the queued
 * request can only end by its context's cancel, which comes from another
 * thread while the owner sleeps in rctx_ring_run(). */
Test(group, a_queued_request_cancelled_from_another_thread_completes_at_once)
{
	enum { LIMIT = 2 };
	rctx_ring_t *ring;
	rctx_group_t *g = rctx_group_new(rctx_background(), LIMIT);
	struct cross_cancel x = { .ctx = rctx_with_cancel(rctx_background()) };
	struct done_rec stuck[LIMIT] = { 0 };
	struct timed_rec q = { { 0 }, 0 };
	struct rctx_ring_stats st;
	struct io_uring_sqe sqe;
	char b[LIMIT + 1];
	pthread_t th;
	int p[2];

	cr_assert(g && x.ctx);
	cr_assert_eq(pipe(p), 0);
	cr_assert_eq(rctx_ring_create(&ring, 64), 0);
	for (int i = 0; i < LIMIT; i++) {
		pipe_read(&sqe, p[0], &b[i]);
		cr_assert_eq(rctx_group_submit(g, ring, rctx_background(), &sqe, rec_cb,
					       &stuck[i]), 0);
	}
	pipe_read(&sqe, p[0], &b[LIMIT]);
	cr_assert_eq(rctx_group_submit(g, ring, x.ctx, &sqe, timed_cb, &q), 0);
	rctx_ring_run(ring, 0);
	cr_assert_eq(q.d.calls, 0);
	cr_assert_eq(pthread_create(&th, NULL, cross_cancel_main, &x), 0);
	run_until(ring, &q.d.calls, 1, TH_PATIENCE_MS);
	pthread_join(th, NULL);
	cr_assert_eq(q.d.calls, 1);
	cr_assert_eq(q.d.res, -ECANCELED);
	cr_assert_eq(rctx_cause(x.ctx), -EPIPE);
	cr_assert_lt(q.at - atomic_load(&x.at), MS(2000), "took %lld ms",
		     (long long)((q.at - atomic_load(&x.at)) / 1000000));
	cr_assert_eq(stuck[0].calls + stuck[1].calls, 0, "the stuck reads still wait");
	cr_assert_eq(rctx_ring_stats(ring, &st), 0);
	cr_assert_eq(st.submitted, LIMIT, "the queued request reached the kernel");
	cr_assert_eq(st.cancels_issued, 0, "a cancel was sent for it");

	cr_assert_eq(write(p[1], "xy", 2), 2);
	drain_all(ring);
	cr_assert_eq(stuck[0].res + stuck[1].res, 2);
	rctx_ring_destroy(ring);
	rctx_group_free(g);
	rctx_release(x.ctx);
	close(p[0]);
	close(p[1]);
}

static void count_cb(void *arg, int res, uint32_t flags)
{
	int *n = arg;

	(void)flags;
	cr_assert_eq(res, -ECANCELED);
	(*n)++;
}

/* 100,000 requests queued under cancellable contexts hold no kernel object:
 * the ring sends only the LIMIT stuck reads, and the cancels end the queued
 * ones without a single IORING_OP_ASYNC_CANCEL. */
Test(group, queued_requests_under_cancellable_contexts_hold_no_kernel_object)
{
	enum { LIMIT = 4, N = 100000, CTXS = 100 };
	rctx_ring_t *ring;
	rctx_group_t *g = rctx_group_new(rctx_background(), LIMIT);
	struct done_rec stuck[LIMIT] = { 0 };
	struct rctx_ring_stats st;
	struct rctx_info info;
	struct io_uring_sqe sqe;
	rctx_t *ctx[CTXS];
	char b[LIMIT];
	int p[2], ended = 0;

	cr_assert_not_null(g);
	cr_assert_eq(pipe(p), 0);
	cr_assert_eq(rctx_ring_create(&ring, 64), 0);
	for (int i = 0; i < CTXS; i++)
		cr_assert_not_null(ctx[i] = rctx_with_cancel(rctx_background()));
	for (int i = 0; i < LIMIT; i++) {
		pipe_read(&sqe, p[0], &b[i]);
		cr_assert_eq(rctx_group_submit(g, ring, rctx_background(), &sqe, rec_cb,
					       &stuck[i]), 0);
	}
	memset(&sqe, 0, sizeof(sqe));
	io_uring_prep_nop(&sqe);
	for (int i = 0; i < N; i++)
		cr_assert_eq(rctx_group_submit(g, ring, ctx[i % CTXS], &sqe, count_cb,
					       &ended), 0);
	rctx_ring_run(ring, 0);
	cr_assert_eq(rctx_ring_stats(ring, &st), 0);
	cr_assert_eq(st.submitted, LIMIT, "queued requests reached the kernel");
	cr_assert_eq(st.in_flight, LIMIT);
	cr_assert_eq(rctx_ring_pending(ring), LIMIT + N);
	cr_assert_eq(rctx_info(ctx[0], &info), 0);
	cr_assert_eq(info.submitted, 0, "a queued request counted as submitted");

	for (int i = 0; i < CTXS; i++)
		rctx_cancel(ctx[i]);
	run_until(ring, &ended, N, TH_PATIENCE_MS);
	cr_assert_eq(ended, N);
	cr_assert_eq(rctx_ring_stats(ring, &st), 0);
	cr_assert_eq(st.submitted, LIMIT);
	cr_assert_eq(st.cancels_issued, 0);
	cr_assert_eq(rctx_info(ctx[0], &info), 0);
	cr_assert_eq(info.submitted + info.aborted + info.completed, 0);
	cr_assert_eq(stuck[0].calls + stuck[1].calls + stuck[2].calls + stuck[3].calls, 0);

	cr_assert_eq(write(p[1], "abcd", LIMIT), LIMIT);
	drain_all(ring);
	rctx_ring_destroy(ring);
	rctx_group_free(g);
	for (int i = 0; i < CTXS; i++)
		rctx_release(ctx[i]);
	close(p[0]);
	close(p[1]);
}

static void destroy_case(bool free_group_first)
{
	enum { N = 6 };
	rctx_ring_t *ring;
	rctx_group_t *g = rctx_group_new(rctx_background(), 1);
	rctx_t *c = rctx_with_cancel(rctx_background());
	struct done_rec d[N] = { 0 };
	struct io_uring_sqe sqe;
	char buf[N];
	int p[2];

	cr_assert(g && c);
	cr_assert_eq(pipe(p), 0);
	cr_assert_eq(rctx_ring_create(&ring, 64), 0);
	for (int i = 0; i < N; i++) {
		pipe_read(&sqe, p[0], &buf[i]);
		cr_assert_eq(rctx_group_submit(g, ring, i % 2 ? c : rctx_background(),
					       &sqe, rec_cb, &d[i]), 0);
	}
	rctx_ring_run(ring, 0);
	if (free_group_first)
		rctx_group_free(g);
	rctx_ring_destroy(ring);
	for (int i = 0; i < N; i++) {
		cr_assert_eq(d[i].calls, 1, "request %d", i);
		cr_assert_eq(d[i].res, -ECANCELED, "request %d: %d", i, d[i].res);
	}
	if (!free_group_first) {
		/* Idle again: the group may be used with another ring. */
		struct done_rec nop = { 0 };

		cr_assert_eq(rctx_ring_create(&ring, 8), 0);
		io_uring_prep_nop(&sqe);
		rctx_cancel(rctx_group_ctx(g)); /* any context: the limit applies */
		cr_assert_eq(rctx_group_submit(g, ring, rctx_background(), &sqe, rec_cb, &nop), 0);
		run_until(ring, &nop.calls, 1, TH_PATIENCE_MS);
		cr_assert_eq(nop.calls, 1);
		cr_assert_eq(nop.res, 0);
		rctx_ring_destroy(ring);
		rctx_group_free(g);
	}
	rctx_release(c);
	close(p[0]);
	close(p[1]);
}

Test(group, ring_destroy_completes_queued_requests)
{
	destroy_case(false);
}

Test(group, group_freed_before_its_requests_complete)
{
	destroy_case(true);
}

Test(group, one_ring_at_a_time)
{
	rctx_ring_t *r1, *r2;
	rctx_group_t *g = rctx_group_new(rctx_background(), 1);
	struct done_rec d = { 0 };
	struct io_uring_sqe sqe;
	char b;
	int p[2];

	cr_assert_not_null(g);
	cr_assert_eq(pipe(p), 0);
	cr_assert_eq(rctx_ring_create(&r1, 8), 0);
	cr_assert_eq(rctx_ring_create(&r2, 8), 0);
	pipe_read(&sqe, p[0], &b);
	cr_assert_eq(rctx_group_submit(g, r1, rctx_background(), &sqe, rec_cb, &d), 0);
	cr_assert_eq(rctx_group_submit(g, r2, rctx_background(), &sqe, rec_cb, &d), -EXDEV);
	sqe.flags |= IOSQE_IO_LINK;
	cr_assert_eq(rctx_group_submit(g, r1, rctx_background(), &sqe, rec_cb, &d), -EINVAL);
	rctx_ring_destroy(r1);
	cr_assert_eq(d.calls, 1);
	cr_assert_eq(d.res, -ECANCELED);
	rctx_ring_destroy(r2);
	rctx_group_free(g);
	close(p[0]);
	close(p[1]);
}

static int thread_count(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	int n = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "Threads: %d", &n) == 1)
			break;
	fclose(f);
	return n;
}

Test(group, without_a_limit_idle_workers_exit_and_are_joined)
{
	enum { N = 4 };
	rctx_group_t *g = rctx_group_new(rctx_background(), -1);
	struct gate gt = { 0 };
	atomic_int ran = 0;
	int base = thread_count(), busy;

	cr_assert_not_null(g);
	cr_assert_geq(base, 1);
	for (int i = 0; i < N; i++)
		cr_assert_eq(rctx_group_go(g, gate_fn, &gt), 0);
	cr_assert(SPIN_UNTIL(atomic_load(&gt.entered) == N));
	/* (A sanitizer may start a thread of its own meanwhile.) */
	busy = thread_count();
	cr_assert_geq(busy, base + N);
	atomic_store(&gt.open, 1);
	cr_assert(WAIT_UNTIL(thread_count() <= busy - N, TH_PATIENCE_MS),
		  "idle workers did not exit: %d threads, %d with them", thread_count(), busy);
	cr_assert_eq(rctx_group_go(g, count_fn, &ran), 0); /* joins them */
	cr_assert_eq(rctx_group_wait(g), 0);
	cr_assert_eq(atomic_load(&ran), 1);
	rctx_group_free(g);
	cr_assert_leq(thread_count(), busy - N);
}
