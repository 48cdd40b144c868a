/* SPDX-License-Identifier: MIT */
/*
 * Description: io_uring requests under contexts on one thread. Each request
 * kind cancelled mid-flight ends with -ECANCELED (or its natural result) and
 * its callback runs exactly once; cancelling a middle node aborts exactly its
 * subtree; requests under a done context never reach the kernel; deadlines
 * reach the kernel as link timeouts; teardown and 10,000-request cancels.
 */
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "helpers.h"
#include "ring_util.h"

TestSuite(ring, .timeout = 60);

static rctx_ring_t *new_ring(unsigned entries)
{
	rctx_ring_t *ring = NULL;

	cr_assert_eq(rctx_ring_create(&ring, entries), 0);
	cr_assert_not_null(ring);
	return ring;
}

/* Submit one request under a fresh context, let it reach the kernel, cancel
 * the context, and check the callback ran once with an allowed result. */
static void cancel_one_kind(struct io_uring_sqe *sqe, int natural)
{
	rctx_ring_t *ring = new_ring(0);
	rctx_t *ctx = rctx_with_cancel(rctx_background());
	struct done_rec d = { 0 };
	struct rctx_ring_stats st;

	sub(ring, ctx, sqe, &d);
	rctx_ring_run(ring, 0); /* in the kernel now */
	cr_assert_eq(d.calls, 0, "request ended before the cancel (res %d)", d.res);
	cr_assert_eq(rctx_cancel(ctx), 1);
	run_until(ring, &d.calls, 1, TH_PATIENCE_MS);
	drain(ring, TH_PATIENCE_MS);
	cr_assert_eq(d.calls, 1);
	cr_assert(d.res == -ECANCELED || d.res == natural,
		  "unexpected result %d", d.res);
	rctx_ring_stats(ring, &st);
	cr_assert_eq(st.cancels_issued, 1);
	cr_assert_eq(st.in_flight, 0);
	cr_assert_eq(st.held_after_cancel, 0);
	rctx_release(ctx);
	rctx_ring_destroy(ring);
}

Test(ring, pipe_read_cancelled)
{
	int p[2];
	char buf[16];
	struct io_uring_sqe sqe;

	cr_assert_eq(pipe(p), 0);
	io_uring_prep_read(&sqe, p[0], buf, sizeof(buf), 0);
	cancel_one_kind(&sqe, INT32_MIN);
	close(p[0]);
	close(p[1]);
}

Test(ring, socket_recv_cancelled)
{
	int sv[2];
	char buf[16];
	struct io_uring_sqe sqe;

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	io_uring_prep_recv(&sqe, sv[0], buf, sizeof(buf), 0);
	cancel_one_kind(&sqe, INT32_MIN);
	close(sv[0]);
	close(sv[1]);
}

Test(ring, send_on_full_socket_cancelled)
{
	int sv[2], sz = 4096;
	static char big[1 << 16];
	struct io_uring_sqe sqe;

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	fcntl(sv[0], F_SETFL, O_NONBLOCK);
	while (send(sv[0], big, sizeof(big), 0) > 0)
		;
	fcntl(sv[0], F_SETFL, 0);
	io_uring_prep_send(&sqe, sv[0], big, sizeof(big), 0);
	cancel_one_kind(&sqe, INT32_MIN);
	close(sv[0]);
	close(sv[1]);
}

Test(ring, accept_cancelled)
{
	struct sockaddr_in a;
	int lfd = tcp_listener(&a, 4);
	struct io_uring_sqe sqe;

	io_uring_prep_accept(&sqe, lfd, NULL, NULL, 0);
	cancel_one_kind(&sqe, INT32_MIN);
	close(lfd);
}

Test(ring, connect_that_hangs_cancelled)
{
	struct sockaddr_in a;
	int lfd = tcp_listener(&a, 0), fill[4], fd;
	struct io_uring_sqe sqe;

	/* Fill the accept queue so a further SYN is dropped and retried: with
	 * a backlog of 0 it is full once one connection waits in it, which
	 * makes the listener readable. */
	for (int i = 0; i < 4; i++) {
		fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
		connect(fill[i], (struct sockaddr *)&a, sizeof(a));
	}
	cr_assert_eq(th_readable(lfd, TH_PATIENCE_MS), 1, "no connection reached the accept queue");
	fd = socket(AF_INET, SOCK_STREAM, 0);
	io_uring_prep_connect(&sqe, fd, (struct sockaddr *)&a, sizeof(a));
	cancel_one_kind(&sqe, INT32_MIN);
	for (int i = 0; i < 4; i++)
		close(fill[i]);
	close(fd);
	close(lfd);
}

Test(ring, poll_cancelled)
{
	int p[2];
	struct io_uring_sqe sqe;

	cr_assert_eq(pipe(p), 0);
	io_uring_prep_poll_add(&sqe, p[0], POLLIN);
	cancel_one_kind(&sqe, INT32_MIN);
	close(p[0]);
	close(p[1]);
}

Test(ring, timeout_cancelled)
{
	struct __kernel_timespec ts = { .tv_sec = 60 };
	struct io_uring_sqe sqe;

	io_uring_prep_timeout(&sqe, &ts, 0, 0);
	cancel_one_kind(&sqe, INT32_MIN);
}

/* Regular file reads and openat usually finish before any cancel: either
 * result is allowed, but the callback must run exactly once. */
static void file_kind(struct io_uring_sqe *sqe, int natural, bool close_res)
{
	rctx_ring_t *ring = new_ring(0);
	rctx_t *ctx = rctx_with_cancel(rctx_background());
	struct done_rec d = { 0 };

	sub(ring, ctx, sqe, &d);
	rctx_ring_flush(ring);
	rctx_cancel(ctx);
	run_until(ring, &d.calls, 1, TH_PATIENCE_MS);
	drain(ring, TH_PATIENCE_MS);
	cr_assert_eq(d.calls, 1);
	cr_assert(d.res == -ECANCELED || d.res == natural || (natural == -2 && d.res >= 0),
		  "unexpected result %d", d.res);
	if (close_res && d.res >= 0)
		close(d.res);
	rctx_release(ctx);
	rctx_ring_destroy(ring);
}

Test(ring, file_read_cancelled_or_natural)
{
	char path[] = "/tmp/rctx-test-XXXXXX", buf[4096];
	int fd = mkstemp(path);
	struct io_uring_sqe sqe;

	cr_assert_geq(fd, 0);
	memset(buf, 'x', sizeof(buf));
	cr_assert_eq(write(fd, buf, sizeof(buf)), (ssize_t)sizeof(buf));
	io_uring_prep_read(&sqe, fd, buf, sizeof(buf), 0);
	file_kind(&sqe, sizeof(buf), false);
	close(fd);
	unlink(path);
}

Test(ring, openat_cancelled_or_natural)
{
	struct io_uring_sqe sqe;

	io_uring_prep_openat(&sqe, AT_FDCWD, "/etc/hostname", O_RDONLY, 0);
	file_kind(&sqe, -2, true);
}

Test(ring, natural_completion_reaches_callback)
{
	rctx_ring_t *ring = new_ring(0);
	rctx_t *ctx = rctx_with_cancel(rctx_background());
	struct done_rec d = { 0 };
	struct io_uring_sqe sqe;
	int sv[2];
	char buf[8] = { 0 }; /* the kernel's write is invisible to valgrind */

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	io_uring_prep_recv(&sqe, sv[0], buf, sizeof(buf), 0);
	sub(ring, ctx, &sqe, &d);
	rctx_ring_run(ring, 0);
	cr_assert_eq(write(sv[1], "hello", 5), 5);
	run_until(ring, &d.calls, 1, TH_PATIENCE_MS);
	cr_assert_eq(d.calls, 1);
	cr_assert_eq(d.res, 5);
	cr_assert_eq(memcmp(buf, "hello", 5), 0);
	rctx_release(ctx);
	rctx_ring_destroy(ring);
	close(sv[0]);
	close(sv[1]);
}

static void *write_hello(void *arg)
{
	return (void *)(intptr_t)write(*(int *)arg, "hello", 5);
}

/*
 * A receive woken by its socket is finished in task work of the thread that
 * submitted it, which does not interrupt the owner (the ring is set up with
 * IORING_SETUP_COOP_TASKRUN). An owner that only polls (deadline 0) and
 * makes no other system call still gets its callback: the poll enters the
 * kernel when IORING_SQ_TASKRUN says that work is waiting.
 */
Test(ring, completion_reaches_an_owner_that_only_polls)
{
	rctx_ring_t *ring = new_ring(0);
	rctx_t *ctx = rctx_with_cancel(rctx_background());
	struct done_rec d = { 0 };
	struct io_uring_sqe sqe;
	int64_t limit;
	pthread_t th;
	void *wrote;
	int sv[2];
	char buf[8] = { 0 };

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	io_uring_prep_recv(&sqe, sv[0], buf, sizeof(buf), 0);
	sub(ring, ctx, &sqe, &d);
	rctx_ring_run(ring, 0); /* in the kernel, waiting for data */
	cr_assert_eq(d.calls, 0);
	cr_assert_eq(pthread_create(&th, NULL, write_hello, &sv[1]), 0);
	limit = rctx_now() + (int64_t)TH_PATIENCE_MS * 1000000;
	while (d.calls == 0 && rctx_now() < limit) /* rctx_now: no system call */
		rctx_ring_run(ring, 0);
	cr_assert_eq(pthread_join(th, &wrote), 0);
	cr_assert_eq((intptr_t)wrote, 5);
	cr_assert_eq(d.calls, 1, "the receive's completion never reached the polling owner");
	cr_assert_eq(d.res, 5);
	cr_assert_eq(memcmp(buf, "hello", 5), 0);
	rctx_release(ctx);
	rctx_ring_destroy(ring);
	close(sv[0]);
	close(sv[1]);
}

/* Where the kernel has them (5.19), a ring's completions do not interrupt
 * its owner, and a flag in the SQ ring says when their work is waiting. */
Test(ring, completions_do_not_interrupt_the_owner)
{
	struct io_uring_params p = { .flags = IORING_SETUP_COOP_TASKRUN |
					      IORING_SETUP_TASKRUN_FLAG };
	struct io_uring probe;
	rctx_ring_t *ring;
	int ret = io_uring_queue_init_params(2, &probe, &p);

	if (ret == -EINVAL)
		cr_skip_test("the kernel has no IORING_SETUP_COOP_TASKRUN (before 5.19)");
	cr_assert_eq(ret, 0, "io_uring_queue_init_params: %s", strerror(-ret));
	io_uring_queue_exit(&probe);
	ring = new_ring(0);
	cr_assert(rctx_ring_uring(ring)->flags & IORING_SETUP_COOP_TASKRUN);
	cr_assert(rctx_ring_uring(ring)->flags & IORING_SETUP_TASKRUN_FLAG);
	rctx_ring_destroy(ring);
}

Test(ring, submit_under_done_context_never_reaches_kernel)
{
	rctx_ring_t *ring = new_ring(0);
	rctx_t *ctx = rctx_with_cancel(rctx_background());
	rctx_t *dl = rctx_with_timeout(rctx_background(), 0);
	struct done_rec d1 = { 0 }, d2 = { 0 };
	struct rctx_ring_stats st;
	struct io_uring_sqe sqe;

	rctx_cancel_cause(ctx, -EPIPE);
	io_uring_prep_nop(&sqe);
	sub(ring, ctx, &sqe, &d1);
	sub(ring, dl, &sqe, &d2);
	cr_assert_eq(d1.calls, 0, "callback must not run inside rctx_submit");
	cr_assert_eq(rctx_ring_pending(ring), 2);
	run_until(ring, &d2.calls, 1, TH_PATIENCE_MS);
	cr_assert_eq(d1.calls, 1);
	cr_assert_eq(d1.res, -ECANCELED);
	cr_assert_eq(d2.res, -ETIMEDOUT);
	rctx_ring_stats(ring, &st);
	cr_assert_eq(st.short_circuited, 2);
	cr_assert_eq(st.submitted, 0);
	rctx_release(ctx);
	rctx_release(dl);
	rctx_ring_destroy(ring);
}

Test(ring, invalid_arguments)
{
	rctx_ring_t *ring = new_ring(0);
	struct io_uring_sqe sqe;
	struct done_rec d = { 0 };
	struct rctx_ring_stats st;

	io_uring_prep_nop(&sqe);
	cr_assert_eq(rctx_ring_create(NULL, 0), -EINVAL);
	cr_assert_eq(rctx_submit(NULL, rctx_background(), &sqe, rec_cb, &d), -EINVAL);
	cr_assert_eq(rctx_submit(ring, NULL, &sqe, rec_cb, &d), -EINVAL);
	cr_assert_eq(rctx_submit(ring, rctx_background(), NULL, rec_cb, &d), -EINVAL);
	cr_assert_eq(rctx_submit(ring, rctx_background(), &sqe, NULL, &d), -EINVAL);
	cr_assert_eq(rctx_ring_run(NULL, 0), -EINVAL);
	cr_assert_eq(rctx_ring_stats(ring, NULL), -EINVAL);
	cr_assert_eq(rctx_ring_stats(NULL, &st), -EINVAL);
	cr_assert_eq(rctx_ring_fd(NULL), -EINVAL);
	cr_assert_null(rctx_ring_uring(NULL));
	cr_assert_eq(rctx_ring_pending(ring), 0);
	rctx_ring_destroy(NULL);
	rctx_ring_destroy(ring);
}

/*
 * A tree root -> {mid -> {leaf}, sibling}, with two receives under each
 * node (one through a value context under mid). Cancelling mid aborts
 * exactly the four receives of mid's subtree; the others complete normally.
 */
Test(ring, cancel_middle_node_aborts_exactly_its_subtree)
{
	static int key;
	rctx_ring_t *ring = new_ring(0);
	rctx_t *root = rctx_with_cancel(rctx_background());
	rctx_t *mid = rctx_with_cancel(root);
	rctx_t *midval = rctx_with_value(mid, &key, NULL);
	rctx_t *leaf = rctx_with_cancel(midval);
	rctx_t *sib = rctx_with_cancel(root);
	rctx_t *ctxs[8] = { root, root, mid, midval, leaf, leaf, sib, sib };
	bool in_subtree[8] = { 0, 0, 1, 1, 1, 1, 0, 0 };
	struct done_rec d[8] = { 0 };
	int sv[8][2], total = 0;
	char buf[8][8];

	for (int i = 0; i < 8; i++) {
		struct io_uring_sqe sqe;

		cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv[i]), 0);
		io_uring_prep_recv(&sqe, sv[i][0], buf[i], sizeof(buf[i]), 0);
		sub(ring, ctxs[i], &sqe, &d[i]);
	}
	rctx_ring_run(ring, 0);
	rctx_cancel(mid);
	for (int n = 0; n < 4; n = d[2].calls + d[3].calls + d[4].calls + d[5].calls)
		if (rctx_ring_run(ring, rctx_now() + MS(TH_PATIENCE_MS)) <= 0)
			break;
	for (int i = 0; i < 8; i++) {
		if (in_subtree[i]) {
			cr_assert_eq(d[i].calls, 1, "request %d not aborted", i);
			cr_assert_eq(d[i].res, -ECANCELED);
		} else {
			cr_assert_eq(d[i].calls, 0, "request %d outside the subtree ended", i);
		}
	}
	cr_assert_eq(rctx_err(root), 0);
	cr_assert_eq(rctx_err(sib), 0);
	/* The rest still work and complete with their data. */
	for (int i = 0; i < 8; i++)
		if (!in_subtree[i])
			cr_assert_eq(write(sv[i][1], "ok", 2), 2);
	for (int i = 0; i < 8; i++)
		total += d[i].calls;
	while (total < 8 && rctx_ring_run(ring, rctx_now() + MS(TH_PATIENCE_MS)) > 0) {
		total = 0;
		for (int i = 0; i < 8; i++)
			total += d[i].calls;
	}
	for (int i = 0; i < 8; i++) {
		cr_assert_eq(d[i].calls, 1);
		if (!in_subtree[i])
			cr_assert_eq(d[i].res, 2);
		close(sv[i][0]);
		close(sv[i][1]);
	}
	rctx_release(leaf);
	rctx_unref(midval);
	rctx_release(mid);
	rctx_release(sib);
	rctx_release(root);
	rctx_ring_destroy(ring);
}

/* Whether the ring's completion queue holds a CQE with result res; the CQEs
 * stay there for the ring to run. */
static bool cq_holds(struct io_uring *u, int res)
{
	struct io_uring_cqe *cqe;
	unsigned head;

	io_uring_for_each_cqe(u, head, cqe)
		if (cqe->res == res)
			return true;
	return false;
}

/*
 * One receive under a context with a timeout of rel, ended by the kernel
 * through its link timeout while nobody runs the ring. False, proving
 * nothing, if the deadline passed during the submission on a run too slow
 * for rel: the request then got no link timeout, or the runtime's cancel
 * went out with it.
 */
static bool link_timeout_ends_recv(int fd, int64_t rel)
{
	rctx_ring_t *ring = new_ring(0);
	rctx_t *bg_cancel = rctx_with_cancel(rctx_background());
	rctx_t *ctx = rctx_with_timeout(bg_cancel, rel);
	struct io_uring *u = rctx_ring_uring(ring);
	struct done_rec d = { 0 };
	struct rctx_ring_stats st;
	struct io_uring_sqe sqe;
	char buf[8];
	bool armed;

	io_uring_prep_recv(&sqe, fd, buf, sizeof(buf), 0);
	sub(ring, ctx, &sqe, &d);
	rctx_ring_flush(ring);
	rctx_ring_stats(ring, &st);
	armed = st.link_timeouts == 1 && st.cancels_issued == 0;
	if (armed) {
		/* The receive's CQE (-ECANCELED) and the fired link timeout's
		 * (-ETIME) appear in the CQ without the ring being run. */
		cr_assert(WAIT_UNTIL(cq_holds(u, -ETIME) && cq_holds(u, -ECANCELED),
				     TH_PATIENCE_MS), "the kernel did not end the request");
		cr_assert_eq(d.calls, 0);
		run_until(ring, &d.calls, 1, TH_PATIENCE_MS);
		cr_assert_eq(d.calls, 1);
		cr_assert_eq(d.res, -ECANCELED);
		rctx_ring_stats(ring, &st);
		cr_assert_eq(st.link_timeouts, 1);
		cr_assert_eq(st.link_timeouts_fired, 1);
		cr_assert_eq(rctx_wait(ctx, rctx_now() + MS(TH_PATIENCE_MS)), 0);
		cr_assert_eq(rctx_err(ctx), -ETIMEDOUT);
	}
	drain(ring, TH_PATIENCE_MS);
	cr_assert_eq(d.calls, 1);
	rctx_release(ctx);
	rctx_release(bg_cancel);
	rctx_ring_destroy(ring);
	return armed;
}

/* The kernel ends a request at its context's deadline through a linked
 * IORING_OP_LINK_TIMEOUT, without any thread running the ring. A run too
 * slow to submit before a 30 ms deadline tries a ten times later one. */
Test(ring, deadline_reaches_kernel_as_link_timeout)
{
	int sv[2];

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	for (int64_t rel = MS(30); !link_timeout_ends_recv(sv[0], rel); rel *= 10)
		cr_assert_lt(rel, MS(TH_PATIENCE_MS), "each deadline passed during its submission");
	close(sv[0]);
	close(sv[1]);
}

/* Holds the runtime thread, which keeps the deadlines' timers, in an
 * after-func until stall_release is set (bounded, so that a failing test
 * still exits). */
static atomic_int stall_started, stall_release;

static void stall_fn(void *arg)
{
	int64_t end = th_now_ns() + MS(2 * TH_PATIENCE_MS);

	(void)arg;
	atomic_store(&stall_started, 1);
	while (!atomic_load(&stall_release) && th_now_ns() < end)
		th_sleep_ms(1);
}

/* A callback's result, and its context's error as the callback saw it. */
struct err_rec {
	rctx_t *ctx;
	int calls, res, err;
};

static void err_cb(void *arg, int res, uint32_t flags)
{
	struct err_rec *r = arg;

	(void)flags;
	r->calls++;
	r->res = res;
	r->err = rctx_err(r->ctx);
}

/* One receive under a context with a timeout of rel, ended by its link
 * timeout: its callback's record. False, proving nothing, if the deadline
 * passed before the request got its link timeout (a run too slow for rel). */
static bool cut_by_link_timeout(rctx_ring_t *ring, int fd, int64_t rel, struct err_rec *r)
{
	struct rctx_ring_stats before, after;
	struct io_uring_sqe sqe;
	char buf[8];

	*r = (struct err_rec){ .ctx = rctx_with_timeout(rctx_background(), rel) };
	cr_assert_not_null(r->ctx);
	rctx_ring_stats(ring, &before);
	io_uring_prep_recv(&sqe, fd, buf, sizeof(buf), 0);
	cr_assert_eq(rctx_submit(ring, r->ctx, &sqe, err_cb, r), 0);
	rctx_ring_flush(ring);
	rctx_ring_stats(ring, &after);
	run_until(ring, &r->calls, 1, TH_PATIENCE_MS);
	cr_assert_eq(r->calls, 1, "the link timeout never ended the receive");
	rctx_release(r->ctx);
	return after.link_timeouts == before.link_timeouts + 1 &&
	       after.cancels_issued == before.cancels_issued && r->res == -ECANCELED;
}

/*
 * A request cut off by its context's deadline in the kernel (its link
 * timeout) runs its callback with the context already done, -ETIMEDOUT,
 * as a cancelled request's does: here the runtime thread, whose timer
 * would end the context, is held elsewhere all along, so only the ring
 * can have ended it.
 */
Test(ring, a_request_cut_by_its_deadline_finds_its_context_done)
{
	rctx_t *s = rctx_with_cancel(rctx_background());
	rctx_after_t *h = rctx_after_func(s, stall_fn, NULL);
	rctx_ring_t *ring = new_ring(0);
	struct err_rec r;
	int sv[2];

	cr_assert_not_null(h);
	cr_assert_eq(rctx_cancel(s), 1);
	cr_assert(WAIT_UNTIL(atomic_load(&stall_started), TH_PATIENCE_MS), "the after-func never ran");
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	for (int64_t rel = MS(30); !cut_by_link_timeout(ring, sv[0], rel, &r); rel *= 10)
		cr_assert_lt(rel, MS(TH_PATIENCE_MS), "each deadline passed during its submission");
	cr_assert_eq(r.err, -ETIMEDOUT, "the callback saw its context's error %d", r.err);
	atomic_store(&stall_release, 1);
	close(sv[0]);
	close(sv[1]);
	rctx_ring_destroy(ring);
	rctx_after_release(h);
	rctx_release(s);
}

/* A success that raced with a cancel still reaches the callback. */
Test(ring, result_after_cancel_is_delivered)
{
	rctx_ring_t *ring = new_ring(0);
	rctx_t *ctx = rctx_with_cancel(rctx_background());
	struct done_rec d = { 0 };
	struct io_uring_sqe sqe;
	struct rctx_ring_stats st;
	int sv[2];
	char buf[8];

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	io_uring_prep_recv(&sqe, sv[0], buf, sizeof(buf), 0);
	sub(ring, ctx, &sqe, &d);
	rctx_ring_run(ring, 0);
	/* Data arrives, and the context is cancelled before the ring runs:
	 * the kernel completed the receive first (its CQE waits in the CQ),
	 * the cancel finds nothing. */
	cr_assert_eq(write(sv[1], "data", 4), 4);
	cr_assert(WAIT_UNTIL(cq_holds(rctx_ring_uring(ring), 4), TH_PATIENCE_MS),
		  "the kernel did not complete the receive");
	rctx_cancel(ctx);
	run_until(ring, &d.calls, 1, TH_PATIENCE_MS);
	drain(ring, TH_PATIENCE_MS);
	cr_assert_eq(d.calls, 1);
	cr_assert_eq(d.res, 4, "the bytes read must not be dropped");
	rctx_ring_stats(ring, &st);
	cr_assert_eq(st.completed_anyway + st.aborted, st.cancels_issued);
	rctx_release(ctx);
	rctx_ring_destroy(ring);
	close(sv[0]);
	close(sv[1]);
}

/* 10,000 receives under one context: one cancel ends them all, and the
 * cancels go out in batches (one per request, never an ANY/ALL cancel). */
Test(ring, ten_thousand_requests_cancelled_at_once)
{
	enum { PER_SOCK = 10 };
	const int scaled = (int)(10000 * th_scale()) / PER_SOCK * PER_SOCK;
	const int N = scaled > PER_SOCK ? scaled : PER_SOCK; /* 10,000 plainly */
	rctx_ring_t *ring = new_ring(1024);
	rctx_t *ctx = rctx_with_cancel(rctx_background());
	struct done_rec *d = calloc(N, sizeof(*d));
	static char buf[16];
	int (*sv)[2] = calloc(N / PER_SOCK, sizeof(*sv)), calls = 0;
	struct rctx_ring_stats st;
	int64_t t0, t1;

	raise_nofile();
	for (int s = 0; s < N / PER_SOCK; s++)
		cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv[s]), 0);
	for (int i = 0; i < N; i++) {
		struct io_uring_sqe sqe;

		io_uring_prep_recv(&sqe, sv[i / PER_SOCK][0], buf, sizeof(buf), 0);
		sub(ring, ctx, &sqe, &d[i]);
	}
	rctx_ring_flush(ring);
	rctx_ring_run(ring, 0);
	t0 = rctx_now();
	rctx_cancel(ctx);
	while (rctx_ring_pending(ring) && rctx_now() - t0 < MS(TH_PATIENCE_MS))
		rctx_ring_run(ring, rctx_now() + 100000000);
	t1 = rctx_now();
	for (int i = 0; i < N; i++) {
		cr_assert_eq(d[i].calls, 1, "request %d: %d calls", i, d[i].calls);
		cr_assert_eq(d[i].res, -ECANCELED);
		calls += d[i].calls;
	}
	rctx_ring_stats(ring, &st);
	cr_assert_eq(calls, N);
	cr_assert_eq(st.cancels_issued, N);
	cr_assert_eq(st.aborted, N);
	cr_log_info("cancelled %d in-flight receives in %.2f ms\n", N, (t1 - t0) / 1e6);
	for (int s = 0; s < N / PER_SOCK; s++) {
		close(sv[s][0]);
		close(sv[s][1]);
	}
	rctx_release(ctx);
	rctx_ring_destroy(ring);
	free(d);
	free(sv);
}

/* Destroying a ring with thousands pending cancels them all and returns only
 * after every callback ran; the contexts lose their request references. */
Test(ring, teardown_with_thousands_pending)
{
	const int N = (int)(4000 * th_scale()) + 1;
	rctx_ring_t *ring = new_ring(256);
	rctx_t *ctx = rctx_with_cancel(rctx_background());
	struct done_rec *d = calloc(N, sizeof(*d));
	static char buf[16];
	int p[2];

	cr_assert_eq(pipe(p), 0);
	for (int i = 0; i < N; i++) {
		struct io_uring_sqe sqe;

		io_uring_prep_read(&sqe, p[0], buf, sizeof(buf), 0);
		sub(ring, ctx, &sqe, &d[i]);
	}
	rctx_ring_run(ring, 0);
	rctx_ring_destroy(ring);
	for (int i = 0; i < N; i++) {
		cr_assert_eq(d[i].calls, 1);
		cr_assert_eq(d[i].res, -ECANCELED);
	}
	/* The context itself was not cancelled by the teardown. */
	cr_assert_eq(rctx_err(ctx), 0);
	rctx_release(ctx);
	close(p[0]);
	close(p[1]);
	free(d);
}

/* Callbacks may submit and cancel: a chain of requests where each callback
 * cancels the next context. */
struct chain {
	rctx_ring_t *ring;
	rctx_t *next;
	int calls;
	int res;
};

static void chain_cb(void *arg, int res, uint32_t flags)
{
	struct chain *c = arg;

	(void)flags;
	c->calls++;
	c->res = res;
	if (c->next)
		rctx_cancel(c->next);
}

Test(ring, callback_may_cancel_other_contexts)
{
	enum { N = 16 };
	rctx_ring_t *ring = new_ring(0);
	rctx_t *ctx[N];
	struct chain ch[N];
	int p[2], total = 0;
	static char buf[8];

	cr_assert_eq(pipe(p), 0);
	for (int i = 0; i < N; i++)
		ctx[i] = rctx_with_cancel(rctx_background());
	for (int i = 0; i < N; i++) {
		struct io_uring_sqe sqe;

		ch[i] = (struct chain){ ring, i + 1 < N ? ctx[i + 1] : NULL, 0, 0 };
		io_uring_prep_read(&sqe, p[0], buf, sizeof(buf), 0);
		cr_assert_eq(rctx_submit(ring, ctx[i], &sqe, chain_cb, &ch[i]), 0);
	}
	rctx_ring_run(ring, 0);
	rctx_cancel(ctx[0]);
	for (int64_t lim = rctx_now() + MS(TH_PATIENCE_MS); total < N && rctx_now() < lim;) {
		rctx_ring_run(ring, rctx_now() + 10000000);
		total = 0;
		for (int i = 0; i < N; i++)
			total += ch[i].calls;
	}
	for (int i = 0; i < N; i++) {
		cr_assert_eq(ch[i].calls, 1);
		cr_assert_eq(ch[i].res, -ECANCELED);
		rctx_release(ctx[i]);
	}
	cr_assert_eq(rctx_ring_run(ring, 0) >= 0, true);
	rctx_ring_destroy(ring);
	close(p[0]);
	close(p[1]);
}

/* The ring fd polls readable when completions wait, for other event loops. */
Test(ring, ring_fd_integrates_with_poll)
{
	rctx_ring_t *ring = new_ring(0);
	struct done_rec d = { 0 };
	struct io_uring_sqe sqe;
	struct pollfd pfd;

	pfd.fd = rctx_ring_fd(ring);
	pfd.events = POLLIN;
	cr_assert_geq(pfd.fd, 0);
	io_uring_prep_nop(&sqe);
	sub(ring, rctx_background(), &sqe, &d);
	cr_assert_geq(rctx_ring_flush(ring), 1);
	cr_assert_eq(poll(&pfd, 1, TH_PATIENCE_MS), 1);
	cr_assert_eq(rctx_ring_run(ring, 0), 1);
	cr_assert_eq(d.calls, 1);
	cr_assert_eq(d.res, 0);
	rctx_ring_destroy(ring);
}

/* ---- regressions ------------------------------------------------------- */

static rctx_ring_t *reg_ring;
static rctx_t *reg_ctx;

static void reg_cancel_cb(void *arg, int res, uint32_t flags)
{
	(void)res;
	(void)flags;
	(*(int *)arg)++;
	rctx_cancel(reg_ctx);
}

static void reg_flush_cb(void *arg, int res, uint32_t flags)
{
	(void)res;
	(void)flags;
	(*(int *)arg)++;
	rctx_ring_flush(reg_ring);
}

/* A request completing while queued for cancel is a zombie that the cancel
 * stack frees; a callback that flushes (and so drains the stack) must not
 * make its slot be freed twice. */
Test(ring, callback_flush_of_zombie_keeps_slots_exact)
{
	struct io_uring_sqe sqe;
	struct done_rec d[2] = { 0 };
	int c0 = 0, c1 = 0;
	rctx_t *y = rctx_with_cancel(rctx_background());

	reg_ring = new_ring(8);
	reg_ctx = rctx_with_cancel(rctx_background());
	io_uring_prep_nop(&sqe);
	cr_assert_eq(rctx_submit(reg_ring, reg_ctx, &sqe, reg_cancel_cb, &c0), 0);
	cr_assert_eq(rctx_submit(reg_ring, reg_ctx, &sqe, reg_flush_cb, &c1), 0);
	cr_assert_eq(rctx_ring_run(reg_ring, RCTX_FOREVER), 2);
	sub(reg_ring, y, &sqe, &d[0]);
	sub(reg_ring, y, &sqe, &d[1]);
	drain(reg_ring, TH_PATIENCE_MS);
	cr_assert_eq(c0 + c1, 2);
	cr_assert_eq(d[0].calls, 1, "a later request lost its callback");
	cr_assert_eq(d[1].calls, 1, "a later request lost its callback");
	cr_assert_eq(rctx_ring_pending(reg_ring), 0);
	rctx_release(y);
	rctx_release(reg_ctx);
	rctx_ring_destroy(reg_ring);
}

/* In an event loop (poll the ring fd, run with deadline 0), a callback that
 * cancels a context with another request on the same ring gets that cancel
 * sent by the same run: the ring fd becomes readable with its result. */
Test(ring, cancel_from_callback_is_sent_by_the_same_run)
{
	struct io_uring_sqe sqe;
	struct done_rec r = { 0 };
	struct pollfd p;
	int sv[2], c = 0;
	char buf[16];
	rctx_t *y = rctx_with_cancel(rctx_background());

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	reg_ring = new_ring(8);
	reg_ctx = rctx_with_cancel(rctx_background());
	io_uring_prep_recv(&sqe, sv[0], buf, sizeof(buf), 0);
	sub(reg_ring, reg_ctx, &sqe, &r);
	rctx_ring_run(reg_ring, 0);
	io_uring_prep_nop(&sqe);
	cr_assert_eq(rctx_submit(reg_ring, y, &sqe, reg_cancel_cb, &c), 0);
	rctx_ring_run(reg_ring, 0); /* the NOP's callback cancels reg_ctx */
	while (c == 0)
		rctx_ring_run(reg_ring, 0);
	p.fd = rctx_ring_fd(reg_ring);
	p.events = POLLIN;
	cr_assert_eq(poll(&p, 1, TH_PATIENCE_MS), 1, "the cancel was never sent");
	run_until(reg_ring, &r.calls, 1, TH_PATIENCE_MS);
	cr_assert_eq(r.res, -ECANCELED);
	rctx_release(y);
	rctx_release(reg_ctx);
	rctx_ring_destroy(reg_ring);
	close(sv[0]);
	close(sv[1]);
}

static void reg_destroy_cb(void *arg, int res, uint32_t flags)
{
	(void)res;
	(void)flags;
	(*(int *)arg)++;
	rctx_ring_destroy(reg_ring); /* refused: documented no-op */
}

Test(ring, destroy_from_own_callback_is_refused)
{
	struct io_uring_sqe sqe;
	int c = 0;

	reg_ring = new_ring(8);
	io_uring_prep_nop(&sqe);
	cr_assert_eq(rctx_submit(reg_ring, rctx_background(), &sqe, reg_destroy_cb, &c), 0);
	cr_assert_eq(rctx_ring_run(reg_ring, RCTX_FOREVER), 1);
	cr_assert_eq(c, 1);
	/* Still usable, then destroyed for real. */
	cr_assert_eq(rctx_submit(reg_ring, rctx_background(), &sqe, reg_destroy_cb, &c), 0);
	rctx_ring_destroy(reg_ring);
	cr_assert_eq(c, 2);
}

Test(ring, sizes_and_flags_it_cannot_honour_are_refused)
{
	rctx_ring_t *ring = NULL;
	struct io_uring_sqe sqe;
	struct done_rec d = { 0 };

	cr_assert_eq(rctx_ring_create(&ring, 1), -EINVAL, "a request and its link timeout need two");
	cr_assert_eq(rctx_ring_create(&ring, 20000), 0, "large rings are clamped, not refused");
	rctx_ring_destroy(ring);
	ring = new_ring(2);
	io_uring_prep_nop(&sqe);
	sqe.flags |= IOSQE_IO_LINK;
	cr_assert_eq(rctx_submit(ring, rctx_background(), &sqe, rec_cb, &d), -EINVAL);
	io_uring_prep_nop(&sqe);
	sqe.flags |= IOSQE_CQE_SKIP_SUCCESS;
	cr_assert_eq(rctx_submit(ring, rctx_background(), &sqe, rec_cb, &d), -EINVAL);
	cr_assert_eq(rctx_ring_pending(ring), 0);
	rctx_ring_destroy(ring);
}

/*
 * One context's requests spread over two rings, interleaved in its request
 * list (A, B, A, B...): a cancel queues each ring's own requests on its own
 * cancel stack, so each owner aborts exactly its requests, and afterwards
 * each ring's slots are its own (new requests complete normally).
 */
Test(ring, cancel_of_requests_interleaved_over_two_rings)
{
	enum { N = 8 };
	rctx_ring_t *ring[2];
	rctx_t *ctx = rctx_with_cancel(rctx_background());
	struct done_rec d[N] = { 0 }, nop[2 * N] = { 0 };
	struct io_uring_sqe sqe;
	struct rctx_ring_stats st;
	char buf[N];
	int p[2];

	cr_assert_eq(pipe(p), 0);
	for (int i = 0; i < 2; i++)
		cr_assert_eq(rctx_ring_create(&ring[i], 64), 0);
	for (int i = 0; i < N; i++) {
		io_uring_prep_read(&sqe, p[0], &buf[i], 1, 0);
		sub(ring[i & 1], ctx, &sqe, &d[i]);
		cr_assert_geq(rctx_ring_flush(ring[i & 1]), 0);
	}
	cr_assert_eq(rctx_cancel(ctx), 1);
	for (int i = 0; i < 2; i++)
		drain_all(ring[i]);
	for (int i = 0; i < N; i++) {
		cr_assert_eq(d[i].calls, 1, "request %d: %d callbacks", i, d[i].calls);
		cr_assert_eq(d[i].res, -ECANCELED, "request %d: %d", i, d[i].res);
	}
	for (int i = 0; i < 2; i++) {
		cr_assert_eq(rctx_ring_stats(ring[i], &st), 0);
		cr_assert_eq(st.cancels_issued, N / 2);
		cr_assert_eq(st.aborted, N / 2);
		cr_assert_eq(st.cancel_enoent, 0);
	}
	/* Every slot is back on the free list of its own ring. */
	for (int i = 0; i < 2 * N; i++) {
		io_uring_prep_nop(&sqe);
		sub(ring[i & 1], rctx_background(), &sqe, &nop[i]);
	}
	for (int i = 0; i < 2; i++)
		drain_all(ring[i]);
	for (int i = 0; i < 2 * N; i++)
		cr_assert(nop[i].calls == 1 && nop[i].res == 0, "nop %d: %d calls, res %d",
			  i, nop[i].calls, nop[i].res);
	for (int i = 0; i < 2; i++)
		rctx_ring_destroy(ring[i]);
	rctx_release(ctx);
	close(p[0]);
	close(p[1]);
}
