/* SPDX-License-Identifier: MIT */
/*
 * Description: requests and cancels across threads. A cancel on thread B
 * aborts a receive that thread A submitted on A's own ring (A blocked in
 * rctx_recv, or in rctx_ring_run); race storms of submitters and cancellers
 * keep every callback exactly-once and the accounting balanced. Also run
 * under ThreadSanitizer.
 */
/* tsan: yes */
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>

#include "helpers.h"
#include "ring_util.h"

TestSuite(thread_ring, .timeout = 60);

/* Iteration counts scaled down under TSan and valgrind (tests/helpers.h). */
static int scale(int n)
{
	int m = (int)(n * th_scale());

	return m > 0 ? m : 1;
}

struct blocked {
	rctx_t *ctx;
	int fd;
	_Atomic int started;
	ssize_t res;
	int64_t returned_at;
};

static void *recv_thread(void *arg)
{
	struct blocked *b = arg;
	char buf[16];

	atomic_store(&b->started, 1);
	b->res = rctx_recv(b->ctx, b->fd, buf, sizeof(buf), 0);
	b->returned_at = rctx_now();
	return NULL;
}

Test(thread_ring, cross_thread_cancel_of_blocked_recv)
{
	for (int round = 0; round < scale(20); round++) {
		struct blocked b = { .ctx = rctx_with_cancel(rctx_background()) };
		struct rctx_ring_stats st;
		pthread_t t;
		int sv[2];
		int64_t t0;

		cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
		b.fd = sv[0];
		cr_assert_eq(pthread_create(&t, NULL, recv_thread, &b), 0);
		while (!atomic_load(&b.started))
			usleep(100);
		usleep(5000); /* usually blocked in the kernel by now; need not be */
		t0 = rctx_now();
		cr_assert_eq(rctx_cancel_cause(b.ctx, -ECONNRESET), 1);
		pthread_join(t, NULL);
		cr_assert_eq(b.res, -ECANCELED);
		cr_assert_lt(b.returned_at - t0, MS(TH_PATIENCE_MS), "cancel took %lld ns",
			     (long long)(b.returned_at - t0));
		cr_assert_eq(rctx_cause(b.ctx), -ECONNRESET);
		/* Nothing went to the kernel of this thread: its ring is not
		 * the one that held the receive. */
		rctx_ring_stats(rctx_thread_ring(), &st);
		cr_assert_eq(st.cancels_issued, 0);
		rctx_release(b.ctx);
		close(sv[0]);
		close(sv[1]);
	}
}

struct runner {
	rctx_ring_t *ring;
	rctx_t *ctx;
	int fd;
	struct done_rec d;
	_Atomic int ready;
	_Atomic int stop;
};

/* Thread A: owns a ring, submits one receive, runs the ring until it ends. */
static void *ring_thread(void *arg)
{
	struct runner *r = arg;
	struct io_uring_sqe sqe;
	char buf[16];

	cr_assert_eq(rctx_ring_create(&r->ring, 0), 0);
	io_uring_prep_recv(&sqe, r->fd, buf, sizeof(buf), 0);
	cr_assert_eq(rctx_submit(r->ring, r->ctx, &sqe, rec_cb, &r->d), 0);
	rctx_ring_flush(r->ring);
	atomic_store(&r->ready, 1);
	while (r->d.calls == 0)
		rctx_ring_run(r->ring, RCTX_FOREVER);
	rctx_ring_destroy(r->ring);
	return NULL;
}

Test(thread_ring, cancel_from_b_aborts_request_on_a_ring)
{
	rctx_t *parent = rctx_with_cancel(rctx_background());
	struct runner r = { .ctx = rctx_with_cancel(parent) };
	pthread_t t;
	int sv[2];

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	r.fd = sv[0];
	cr_assert_eq(pthread_create(&t, NULL, ring_thread, &r), 0);
	while (!atomic_load(&r.ready))
		usleep(100);
	usleep(5000);
	/* Cancel the parent: the subtree's request on A's ring is aborted. */
	rctx_cancel(parent);
	pthread_join(t, NULL);
	cr_assert_eq(r.d.calls, 1);
	cr_assert_eq(r.d.res, -ECANCELED);
	rctx_release(r.ctx);
	rctx_release(parent);
	close(sv[0]);
	close(sv[1]);
}

/*
 * Storm: submitter threads, each with its own ring, keep receives in flight
 * under short-lived contexts that they publish in a shared table; canceller
 * threads cancel whatever they find there. Every callback must run exactly
 * once and every ring must balance its books.
 */
#define SLOTS 64

struct storm {
	_Atomic(rctx_t *) table[SLOTS];
	rctx_t *root;
	_Atomic int stop;
	int iters;
};

struct submitter {
	struct storm *s;
	int id;
	long callbacks, submitted;
	struct rctx_ring_stats st;
	bool bad;
};

static void count_cb(void *arg, int res, uint32_t flags)
{
	struct submitter *me = arg;

	(void)flags;
	if (res != -ECANCELED)
		me->bad = true;
	me->callbacks++;
}

/* Run until every callback ran, keep the ring's books, tear down. */
static void finish_submitter(rctx_ring_t *ring, struct rctx_ring_stats *st, int sv[2])
{
	drain(ring, TH_PATIENCE_MS);
	rctx_ring_stats(ring, st);
	rctx_ring_destroy(ring);
	close(sv[0]);
	close(sv[1]);
}

static void *submit_thread(void *arg)
{
	struct submitter *me = arg;
	struct storm *s = me->s;
	rctx_ring_t *ring;
	int sv[2];
	static char buf[16];

	cr_assert_eq(rctx_ring_create(&ring, 128), 0);
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	for (int i = 0; i < s->iters; i++) {
		rctx_t *ctx = rctx_with_cancel(s->root);
		rctx_t *old;
		struct io_uring_sqe sqe;

		for (int k = 0; k < 4; k++) {
			io_uring_prep_recv(&sqe, sv[0], buf, sizeof(buf), 0);
			cr_assert_eq(rctx_submit(ring, ctx, &sqe, count_cb, me), 0);
			me->submitted++;
		}
		rctx_ring_run(ring, 0);
		/* Publish for the cancellers; cancel what was there before if
		 * they did not get to it. */
		old = atomic_exchange(&s->table[(me->id * 7 + i) % SLOTS], ctx);
		if (old)
			rctx_release(old);
		if (i % 8 == 0)
			rctx_ring_run(ring, 0);
	}
	for (int i = 0; i < SLOTS; i++) {
		rctx_t *old = atomic_exchange(&s->table[i], NULL);

		if (old)
			rctx_release(old);
	}
	finish_submitter(ring, &me->st, sv);
	return NULL;
}

static void *cancel_thread(void *arg)
{
	struct storm *s = arg;
	unsigned seed = 12345;

	while (!atomic_load(&s->stop)) {
		int i = (int)(rand_r(&seed) % SLOTS);
		rctx_t *ctx = atomic_exchange(&s->table[i], NULL);

		if (ctx) {
			rctx_cancel(ctx);
			rctx_release(ctx);
		}
	}
	return NULL;
}

Test(thread_ring, race_storm_submitters_and_cancellers)
{
	enum { NSUB = 3, NCAN = 2 };
	struct storm s = { .root = rctx_with_cancel(rctx_background()),
			   .iters = scale(3000) };
	struct submitter sub[NSUB];
	pthread_t ts[NSUB], tc[NCAN];

	for (int i = 0; i < SLOTS; i++)
		atomic_init(&s.table[i], NULL);
	for (int i = 0; i < NSUB; i++) {
		sub[i] = (struct submitter){ .s = &s, .id = i };
		cr_assert_eq(pthread_create(&ts[i], NULL, submit_thread, &sub[i]), 0);
	}
	for (int i = 0; i < NCAN; i++)
		cr_assert_eq(pthread_create(&tc[i], NULL, cancel_thread, &s), 0);
	for (int i = 0; i < NSUB; i++)
		pthread_join(ts[i], NULL);
	atomic_store(&s.stop, 1);
	for (int i = 0; i < NCAN; i++)
		pthread_join(tc[i], NULL);
	for (int i = 0; i < NSUB; i++) {
		cr_assert_eq(sub[i].callbacks, sub[i].submitted,
			     "submitter %d: %ld callbacks for %ld requests", i,
			     sub[i].callbacks, sub[i].submitted);
		cr_assert_not(sub[i].bad, "a receive ended other than -ECANCELED");
		cr_assert_eq(sub[i].st.in_flight, 0);
		cr_assert_eq(sub[i].st.held_after_cancel, 0);
		cr_assert_eq(sub[i].st.aborted + sub[i].st.short_circuited,
			     (uint64_t)sub[i].submitted);
	}
	cr_assert_eq(rctx_err(s.root), 0);
	rctx_release(s.root);
}

/* Cancelling the shared root while submitters are busy: every request of
 * every ring ends, and later submissions under the subtree short-circuit. */
struct root_sub {
	rctx_t *root;
	_Atomic int *go;
	long submitted, callbacks;
	struct rctx_ring_stats st;
};

static void count_any_cb(void *arg, int res, uint32_t flags)
{
	struct root_sub *me = arg;

	(void)res;
	(void)flags;
	me->callbacks++;
}

static void *root_submitter(void *arg)
{
	struct root_sub *me = arg;
	rctx_ring_t *ring;
	static char buf[16];
	int sv[2];

	cr_assert_eq(rctx_ring_create(&ring, 256), 0);
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	while (!atomic_load(me->go))
		;
	for (int i = 0; i < scale(2000); i++) {
		rctx_t *ctx = rctx_with_cancel(me->root);
		struct io_uring_sqe sqe;

		io_uring_prep_recv(&sqe, sv[0], buf, sizeof(buf), 0);
		cr_assert_eq(rctx_submit(ring, ctx, &sqe, count_any_cb, me), 0);
		me->submitted++;
		rctx_unref(ctx); /* the request keeps it alive */
		rctx_ring_run(ring, 0);
	}
	finish_submitter(ring, &me->st, sv);
	return NULL;
}

Test(thread_ring, cancel_root_while_submitting)
{
	enum { N = 3 };
	_Atomic int go = 0;
	rctx_t *root = rctx_with_cancel(rctx_background());
	struct root_sub s[N];
	pthread_t t[N];

	for (int i = 0; i < N; i++) {
		s[i] = (struct root_sub){ .root = root, .go = &go };
		cr_assert_eq(pthread_create(&t[i], NULL, root_submitter, &s[i]), 0);
	}
	atomic_store(&go, 1);
	usleep(2000); /* any time will do: submitters drain until the cancel */
	rctx_cancel(root);
	for (int i = 0; i < N; i++) {
		pthread_join(t[i], NULL);
		cr_assert_eq(s[i].callbacks, s[i].submitted);
		cr_assert_eq(s[i].st.in_flight, 0);
		cr_assert_eq(s[i].st.aborted + s[i].st.short_circuited,
			     (uint64_t)s[i].submitted);
	}
	rctx_release(root);
}

/*
 * Go's guarantee: when rctx_cancel(Q) returns, Q's whole subtree is done,
 * even while another thread is still cascading through part of it (thread A
 * cancels P, Q's child with many children; B cancels Q meanwhile).
 */
static rctx_t *cr_p;
static _Atomic int cr_go;

static void *cancel_p(void *arg)
{
	(void)arg;
	while (!atomic_load(&cr_go))
		;
	rctx_cancel(cr_p);
	return NULL;
}

Test(thread_ring, cancel_returns_only_when_the_whole_subtree_is_done)
{
	enum { N = 20000 };
	rctx_t **c = calloc(N, sizeof(*c));
	long bad = 0;

	for (int iter = 0; iter < scale(10); iter++) {
		rctx_t *q = rctx_with_cancel(rctx_background());
		pthread_t t;

		cr_p = rctx_with_cancel(q);
		for (int i = 0; i < N; i++)
			c[i] = rctx_with_cancel(cr_p);
		atomic_store(&cr_go, 0);
		cr_assert_eq(pthread_create(&t, NULL, cancel_p, NULL), 0);
		atomic_store(&cr_go, 1);
		while (!rctx_err(cr_p))
			;
		rctx_cancel(q);
		for (int i = 0; i < N; i++)
			bad += rctx_err(c[i]) == 0;
		pthread_join(t, NULL);
		for (int i = 0; i < N; i++)
			rctx_release(c[i]);
		rctx_release(cr_p);
		rctx_release(q);
	}
	cr_assert_eq(bad, 0, "%ld descendants still live after rctx_cancel returned", bad);
	free(c);
}

/*
 * The converse of "err != 0 only once the done fd is readable": a thread
 * that wakes because the done fd became readable reads err != 0 at once
 * (Go: Err() after <-Done() is never nil).
 */
struct fd_reader {
	rctx_t *ctx;
	int fd;
	int err_seen;
};

static void *poll_then_err(void *arg)
{
	struct fd_reader *r = arg;
	struct pollfd p = { .fd = r->fd, .events = POLLIN };

	while (poll(&p, 1, 5000) == 0)
		;
	r->err_seen = rctx_err(r->ctx);
	return NULL;
}

Test(thread_ring, readable_done_fd_implies_err_is_set)
{
	long zero = 0;

	for (int i = 0; i < scale(2000); i++) {
		struct fd_reader r = { .ctx = rctx_with_cancel(rctx_background()) };
		pthread_t t;

		r.fd = rctx_done_fd(r.ctx);
		cr_assert_geq(r.fd, 0);
		cr_assert_eq(pthread_create(&t, NULL, poll_then_err, &r), 0);
		rctx_cancel(r.ctx);
		pthread_join(t, NULL);
		zero += r.err_seen == 0;
		rctx_release(r.ctx);
	}
	cr_assert_eq(zero, 0, "%ld wake-ups read err == 0 after the fd was readable", zero);
}

/*
 * A submit that races with a cancel still walking the context's subtree
 * (its error word says "ending" meanwhile) short-circuits with the final
 * error, never with the transient value: every callback gets 0 (the NOP
 * ran) or -ECANCELED.
 */
struct ending_race {
	rctx_t *root;
	atomic_int go;
};

static void *cancel_wide_root(void *arg)
{
	struct ending_race *e = arg;

	while (!atomic_load(&e->go))
		sched_yield();
	rctx_cancel(e->root);
	return NULL;
}

Test(thread_ring, submit_during_a_cancel_gets_the_final_error)
{
	enum { KIDS = 20000, MAXREQ = 1 << 16 };
	struct ending_race e = { .root = rctx_with_cancel(rctx_background()) };
	static rctx_t *kids[KIDS];
	static struct done_rec d[MAXREQ];
	rctx_ring_t *ring;
	struct io_uring_sqe sqe;
	pthread_t t;
	int n = 0;

	cr_assert(e.root);
	for (int i = 0; i < KIDS; i++)
		cr_assert((kids[i] = rctx_with_cancel(e.root)));
	cr_assert_eq(rctx_ring_create(&ring, 256), 0);
	cr_assert_eq(pthread_create(&t, NULL, cancel_wide_root, &e), 0);
	atomic_store(&e.go, 1);
	/* Submit under the root, 128 at a time, until a submit finds it
	 * done (rctx_err() would wait for the cancel to finish). */
	while (n + 128 <= MAXREQ && !(n && d[n - 1].calls && d[n - 1].res)) {
		for (int k = 0; k < 128; k++, n++) {
			memset(&d[n], 0, sizeof(d[n]));
			io_uring_prep_nop(&sqe);
			sub(ring, e.root, &sqe, &d[n]);
		}
		drain_all(ring);
	}
	drain_all(ring);
	pthread_join(t, NULL);
	for (int i = 0; i < n; i++) {
		cr_assert_eq(d[i].calls, 1);
		cr_assert(d[i].res == 0 || d[i].res == -ECANCELED,
			  "request %d ended %d", i, d[i].res);
	}
	rctx_ring_destroy(ring);
	for (int i = 0; i < KIDS; i++)
		rctx_release(kids[i]);
	rctx_release(e.root);
}

/*
 * Cancels from another thread that land while the owner is between its
 * submit and its sleep: the owner reaps the wake-up, which re-arms the
 * wake-up read and issues the cancels, and must send both before it
 * sleeps; otherwise it sleeps until its deadline with the cancels unsent.
 * Each run below has a deadline far away: reaching it means a cancel was
 * lost. Many cancels, one at a time, keep wake-ups landing at every point
 * of the owner's loop.
 */
enum { LATE_N = 64 };

struct late_cancel {
	rctx_t *ctx[LATE_N];
	atomic_int round, done_round;
};

static void *cancel_one_by_one(void *arg)
{
	struct late_cancel *l = arg;
	int seen = 0, r;

	while ((r = atomic_load(&l->round)) >= 0) {
		if (r == seen) {
			sched_yield();
			continue;
		}
		for (int i = 0; i < LATE_N; i++) {
			rctx_cancel(l->ctx[i]);
			for (volatile int k = 0; k < 200; k++)
				;
		}
		seen = r;
		atomic_store(&l->done_round, r);
	}
	return NULL;
}

Test(thread_ring, cancel_between_submit_and_sleep_is_not_lost)
{
	static struct late_cancel l;
	static struct done_rec d[LATE_N];
	static char buf[LATE_N];
	long rounds = th_scaled(300);
	rctx_ring_t *ring;
	struct io_uring_sqe sqe;
	pthread_t t;
	int p[2];

	cr_assert_eq(pipe(p), 0);
	cr_assert_eq(rctx_ring_create(&ring, 256), 0);
	atomic_store(&l.round, 0);
	cr_assert_eq(pthread_create(&t, NULL, cancel_one_by_one, &l), 0);
	for (int r = 1; r <= rounds; r++) {
		int calls = 0;

		for (int i = 0; i < LATE_N; i++) {
			l.ctx[i] = rctx_with_cancel(rctx_background());
			memset(&d[i], 0, sizeof(d[i]));
			io_uring_prep_read(&sqe, p[0], &buf[i], 1, 0);
			sub(ring, l.ctx[i], &sqe, &d[i]);
		}
		cr_assert_geq(rctx_ring_flush(ring), 0);
		atomic_store(&l.round, r); /* the other thread cancels them now */
		while (calls < LATE_N) {
			int64_t deadline = rctx_now() + (int64_t)TH_PATIENCE_MS * 1000000;
			int n = rctx_ring_run(ring, deadline);

			cr_assert_geq(n, 0);
			calls += n;
			cr_assert_lt(rctx_now(), deadline, "round %d: %d of %d callbacks, "
				     "the run slept to its deadline: a cancel was lost",
				     r, calls, LATE_N);
		}
		while (atomic_load(&l.done_round) != r)
			sched_yield();
		for (int i = 0; i < LATE_N; i++) {
			cr_assert_eq(d[i].res, -ECANCELED);
			rctx_release(l.ctx[i]);
		}
	}
	atomic_store(&l.round, -1);
	pthread_join(t, NULL);
	rctx_ring_destroy(ring);
	close(p[0]);
	close(p[1]);
}
