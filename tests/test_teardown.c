/* Description: rctx_ring_destroy() with 100,000 requests in flight (polls on
 * a pipe, recvs on a socketpair, hour-long timeouts; untracked, under a cancel
 * context and under a deadline context with link timeouts) loses nothing:
 * every callback runs exactly once, with -ECANCELED, before destroy returns;
 * the ring's gauges are back to zero at the last callback; no fd and no
 * memory is left behind. 10,000 requests under valgrind. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ringctx.h"
#include "helpers.h"

TestSuite(teardown, .timeout = 120);

struct teardown {
	rctx_ring_t *ring;
	long n;
	long done;
	long wrong_res;
	uint8_t *calls;            /* per request */
	/* Snapshot taken by the last callback. */
	struct rctx_ring_stats last;
	unsigned last_pending;
	bool resubmit;             /* the first callback submits once more */
	rctx_t *resubmit_ctx;
	int resubmit_ret;
	int pipe_rd;
};

struct req {
	struct teardown *t;
	long i;
};

static void td_cb(void *arg, int res, uint32_t flags)
{
	struct req *r = arg;
	struct teardown *t = r->t;

	(void)flags;
	if (r->i >= 0) {
		t->calls[r->i]++;
		if (res != -ECANCELED)
			t->wrong_res++;
	}
	if (++t->done == t->n) {
		rctx_ring_stats(t->ring, &t->last);
		t->last_pending = rctx_ring_pending(t->ring);
	}
	if (t->resubmit) {
		/* A callback run by destroy submits again: that request must
		 * be cancelled and called back too. */
		static struct req extra;
		struct io_uring_sqe sqe;

		t->resubmit = false;
		extra.t = t;
		extra.i = t->n - 1;
		io_uring_prep_poll_add(&sqe, t->pipe_rd, POLLIN);
		t->resubmit_ret = rctx_submit(t->ring, t->resubmit_ctx, &sqe,
					      td_cb, &extra);
	}
}

/*
 * Submit n requests (the last left to a callback when resubmit is set), a
 * third each of polls, recvs and timeouts, spread over three contexts, then
 * destroy the ring.
 */
static void run_teardown(long n, unsigned entries, bool resubmit)
{
	static struct __kernel_timespec hour = { .tv_sec = 3600 };
	struct teardown t = { .n = n, .resubmit = resubmit };
	struct req *reqs = calloc((size_t)n, sizeof(*reqs));
	rctx_t *cancel_ctx = rctx_with_cancel(rctx_background());
	rctx_t *deadline_ctx = rctx_with_timeout(rctx_background(), 3600LL * 1000000000);
	rctx_t *ctxs[3] = { rctx_background(), cancel_ctx, deadline_ctx };
	int pfd[2], sv[2], fds_before, err;
	long submitted = resubmit ? n - 1 : n;
	int64_t t0;

	cr_assert(reqs && cancel_ctx && deadline_ctx);
	t.calls = calloc((size_t)n, 1);
	cr_assert_not_null(t.calls);
	fds_before = th_fd_count();
	cr_assert_eq(pipe(pfd), 0);
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	t.pipe_rd = pfd[0];
	t.resubmit_ctx = cancel_ctx;
	err = rctx_ring_create(&t.ring, entries);
	if (err == -ENOMEM || err == -EPERM || err == -ENOSYS)
		cr_skip_test("no io_uring here: %d", err);
	cr_assert_eq(err, 0);

	for (long i = 0; i < submitted; i++) {
		struct io_uring_sqe sqe;
		static char sink[1];

		reqs[i].t = &t;
		reqs[i].i = i;
		switch (i % 3) {
		case 0:
			io_uring_prep_poll_add(&sqe, pfd[0], POLLIN);
			break;
		case 1:
			io_uring_prep_recv(&sqe, sv[0], sink, sizeof(sink), 0);
			break;
		default:
			io_uring_prep_timeout(&sqe, &hour, 0, 0);
			break;
		}
		cr_assert_eq(rctx_submit(t.ring, ctxs[(i / 3) % 3], &sqe, td_cb,
					 &reqs[i]), 0, "request %ld", i);
		if (i % 4096 == 4095)
			cr_assert_geq(rctx_ring_flush(t.ring), 0);
	}
	cr_assert_geq(rctx_ring_flush(t.ring), 0);
	cr_assert_eq(rctx_ring_run(t.ring, 0), 0, "nothing may complete yet");
	cr_assert_eq(rctx_ring_pending(t.ring), (unsigned)submitted);

	t0 = rctx_now();
	rctx_ring_destroy(t.ring);
	cr_log_info("destroy with %ld in flight: %.3f s", n,
		    (double)(rctx_now() - t0) / 1e9);

	cr_assert_eq(t.done, n, "callbacks run: %ld of %ld", t.done, n);
	for (long i = 0; i < n; i++)
		cr_assert_eq(t.calls[i], 1, "request %ld called %d times", i,
			     t.calls[i]);
	cr_assert_eq(t.wrong_res, 0, "%ld results other than -ECANCELED",
		     t.wrong_res);
	if (resubmit)
		cr_assert_eq(t.resubmit_ret, 0);
	cr_assert_eq(t.last.in_flight, 0);
	cr_assert_eq(t.last.held_after_cancel, 0);
	cr_assert_eq(t.last_pending, 0);
	cr_assert_eq(t.last.completed, (uint64_t)n);
	cr_assert_eq(t.last.aborted, (uint64_t)n);

	/* The contexts are still usable, and not cancelled by the ring. */
	cr_assert_eq(rctx_err(cancel_ctx), 0);
	rctx_release(cancel_ctx);
	rctx_release(deadline_ctx);
	close(pfd[0]);
	close(pfd[1]);
	close(sv[0]);
	close(sv[1]);
	cr_assert_eq(th_fd_count(), fds_before, "fds leaked by the ring");
	free(t.calls);
	free(reqs);
}

static long scaled(long plain)
{
	return th_under_valgrind() ? plain / 10 : plain;
}

Test(teardown, destroy_with_100k_in_flight_calls_each_back_once)
{
	run_teardown(scaled(100000), 0, false);
}

/* The smallest SQ: the cancel burst goes out two at a time. */
Test(teardown, destroy_with_the_smallest_sq)
{
	run_teardown(scaled(20000), 2, false);
}

/* A callback run by destroy submits a new request: it is cancelled too. */
Test(teardown, destroy_cancels_what_its_callbacks_submit)
{
	run_teardown(scaled(10000), 0, true);
}

/*
 * The same burst from a context: cancelling one context with 100,000
 * requests in flight ends them all, each called back once with -ECANCELED,
 * without waiting for destroy.
 */
Test(teardown, cancel_of_a_context_with_100k_in_flight)
{
	static struct __kernel_timespec hour = { .tv_sec = 3600 };
	long n = scaled(100000);
	struct teardown t = { .n = n };
	struct req *reqs = calloc((size_t)n, sizeof(*reqs));
	rctx_t *ctx = rctx_with_cancel(rctx_background());
	struct rctx_ring_stats st;
	int pfd[2], err;
	int64_t limit;

	cr_assert(reqs && ctx);
	t.calls = calloc((size_t)n, 1);
	cr_assert_not_null(t.calls);
	cr_assert_eq(pipe(pfd), 0);
	err = rctx_ring_create(&t.ring, 0);
	if (err == -ENOMEM || err == -EPERM || err == -ENOSYS)
		cr_skip_test("no io_uring here: %d", err);
	cr_assert_eq(err, 0);
	for (long i = 0; i < n; i++) {
		struct io_uring_sqe sqe;

		reqs[i].t = &t;
		reqs[i].i = i;
		if (i % 2)
			io_uring_prep_poll_add(&sqe, pfd[0], POLLIN);
		else
			io_uring_prep_timeout(&sqe, &hour, 0, 0);
		cr_assert_eq(rctx_submit(t.ring, ctx, &sqe, td_cb, &reqs[i]), 0);
	}
	cr_assert_geq(rctx_ring_flush(t.ring), 0);
	cr_assert_eq(rctx_cancel(ctx), 1);
	/* Long limit for slow hosts; a linear cancel takes well under 1 s. */
	limit = rctx_now() + MS(60000);
	while (rctx_ring_pending(t.ring) && rctx_now() < limit)
		cr_assert_geq(rctx_ring_run(t.ring, rctx_now() + MS(1000)), 0);
	cr_assert_eq(t.done, n, "callbacks run: %ld of %ld", t.done, n);
	for (long i = 0; i < n; i++)
		cr_assert_eq(t.calls[i], 1, "request %ld", i);
	cr_assert_eq(t.wrong_res, 0);
	cr_assert_eq(rctx_ring_stats(t.ring, &st), 0);
	cr_assert_eq(st.in_flight, 0);
	cr_assert_eq(st.held_after_cancel, 0);
	cr_assert_eq(st.aborted, (uint64_t)n);
	rctx_ring_destroy(t.ring);
	rctx_release(ctx);
	close(pfd[0]);
	close(pfd[1]);
	free(t.calls);
	free(reqs);
}
