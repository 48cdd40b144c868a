/* SPDX-License-Identifier: MIT */
/*
 * Description: the honest accounting of cancels. One ring, one owner (the
 * test thread), a known mix of requests whose cancels end every way the
 * kernel can end them: aborted (pipe reads with no data), completed anyway
 * (the read completed in the kernel before the cancel was sent: the cancel
 * finds nothing), aborted by their own link timeout before the cancel was
 * sent (-ECANCELED, yet the cancel found nothing), already running (a read
 * of a stuck FUSE file in io-wq: -EALREADY). Every counter of
 * struct rctx_ring_stats and of rctx_info() is checked exactly, with cancels
 * that post only their failures (IORING_FEAT_CQE_SKIP) and, through
 * RCTX_NO_CQE_SKIP, with cancels that post every result.
 */
#include <fcntl.h>
#include <stdlib.h>

#include "ring_util.h"
#include "stuckfs.h"

#define NABORT 3
#define WAIT_MS TH_PATIENCE_MS

static struct rctx_ring_stats stats(rctx_ring_t *ring)
{
	struct rctx_ring_stats st;

	cr_assert_eq(rctx_ring_stats(ring, &st), 0);
	return st;
}

static struct rctx_info info(rctx_t *ctx)
{
	struct rctx_info in;

	cr_assert_eq(rctx_info(ctx, &in), 0);
	return in;
}

/* Whether the kernel has posted a CQE with result res on ring, unreaped
 * (a look at the CQ, which the owner only advances when it runs). */
static bool cq_has_res(rctx_ring_t *ring, int res)
{
	struct io_uring *u = rctx_ring_uring(ring);
	struct io_uring_cqe *cqe;
	unsigned head;

	io_uring_for_each_cqe(u, head, cqe)
		if (cqe->res == res)
			return true;
	return false;
}

/* Wait until the kernel has posted a CQE with result res. */
static bool cqe_posted(rctx_ring_t *ring, int res)
{
	return WAIT_UNTIL(cq_has_res(ring, res), WAIT_MS);
}

/* Run without sleeping; whether the one cancel of ring has its outcome:
 * a failure CQE in, or the callback run. */
static bool cancel_settled(rctx_ring_t *ring, const struct done_rec *d)
{
	struct rctx_ring_stats st;

	rctx_ring_run(ring, 0);
	st = stats(ring);
	return d->calls > 0 || st.cancel_ealready + st.cancel_enoent + st.cancel_found > 0;
}

static void prep_pipe_read(struct io_uring_sqe *sqe, int fd, char *buf)
{
	memset(sqe, 0, sizeof(*sqe));
	io_uring_prep_read(sqe, fd, buf, 1, 0);
}

/* Send what is queued: the kernel arms it while it takes it. Nothing is
 * reaped until the ring runs, so the CQEs that follow stay in the CQ. */
static void flush_and_arm(rctx_ring_t *ring)
{
	cr_assert_geq(rctx_ring_flush(ring), 0);
}

struct expect {
	uint64_t submitted, completed, issued, found, ealready, enoent, aborted,
		anyway, link_timeouts, fired;
};

static void check_stats(rctx_ring_t *ring, const struct expect *e)
{
	struct rctx_ring_stats st = stats(ring);

	cr_expect_eq(st.submitted, e->submitted, "submitted %llu", (unsigned long long)st.submitted);
	cr_expect_eq(st.short_circuited, 0);
	cr_expect_eq(st.completed, e->completed, "completed %llu", (unsigned long long)st.completed);
	cr_expect_eq(st.cancels_issued, e->issued, "issued %llu", (unsigned long long)st.cancels_issued);
	cr_expect_eq(st.cancel_found, e->found, "found %llu", (unsigned long long)st.cancel_found);
	cr_expect_eq(st.cancel_ealready, e->ealready, "ealready %llu",
		     (unsigned long long)st.cancel_ealready);
	cr_expect_eq(st.cancel_enoent, e->enoent, "enoent %llu", (unsigned long long)st.cancel_enoent);
	cr_expect_eq(st.aborted, e->aborted, "aborted %llu", (unsigned long long)st.aborted);
	cr_expect_eq(st.completed_anyway, e->anyway, "completed_anyway %llu",
		     (unsigned long long)st.completed_anyway);
	cr_expect_eq(st.link_timeouts, e->link_timeouts);
	cr_expect_eq(st.link_timeouts_fired, e->fired);
	cr_expect_eq(st.in_flight, e->submitted - e->completed, "in_flight %llu",
		     (unsigned long long)st.in_flight);
	cr_expect_eq(st.held_after_cancel, 0, "held_after_cancel %llu",
		     (unsigned long long)st.held_after_cancel);
	cr_assert_eq(st.cancels_issued, st.cancel_found + st.cancel_ealready + st.cancel_enoent,
		     "every cancel accounted for once");
}

static void check_info(rctx_t *ctx, uint64_t submitted, uint64_t completed, uint64_t aborted)
{
	struct rctx_info in = info(ctx);

	cr_expect_eq(in.submitted, submitted, "info submitted %llu", (unsigned long long)in.submitted);
	cr_expect_eq(in.completed, completed, "info completed %llu", (unsigned long long)in.completed);
	cr_assert_eq(in.aborted, aborted, "info aborted %llu", (unsigned long long)in.aborted);
}

/* Aborted, completed anyway, aborted by its link timeout first. */
static void pipe_mix(void)
{
	static char buf[NABORT + 2][1];
	struct done_rec d[NABORT + 2] = { 0 };
	struct expect e = { 0 };
	struct io_uring_sqe sqe;
	rctx_ring_t *ring;
	rctx_t *root, *a, *b, *t;
	int p[3][2];

	cr_assert_eq(rctx_ring_create(&ring, 64), 0);
	for (int i = 0; i < 3; i++)
		cr_assert_eq(pipe(p[i]), 0);
	root = rctx_with_cancel(rctx_background());
	a = rctx_with_cancel(root);
	b = rctx_with_cancel(root);
	cr_assert(root && a && b);

	/* Aborted: reads of an empty pipe, found and cancelled. */
	for (int i = 0; i < NABORT; i++) {
		prep_pipe_read(&sqe, p[0][0], buf[i]);
		sub(ring, a, &sqe, &d[i]);
	}
	flush_and_arm(ring);
	check_info(a, NABORT, 0, 0);
	rctx_cancel(a);
	drain_all(ring);
	for (int i = 0; i < NABORT; i++) {
		cr_assert_eq(d[i].calls, 1);
		cr_assert_eq(d[i].res, -ECANCELED);
	}
	e.submitted = e.completed = e.issued = e.found = e.aborted = NABORT;
	check_stats(ring, &e);
	check_info(a, NABORT, 0, NABORT);

	/* Completed anyway: the read completes in the kernel (its CQE is
	 * posted) before the cancel is sent, so the cancel finds nothing. */
	prep_pipe_read(&sqe, p[1][0], buf[NABORT]);
	sub(ring, b, &sqe, &d[NABORT]);
	flush_and_arm(ring);
	cr_assert_eq(write(p[1][1], "x", 1), 1);
	cr_assert(cqe_posted(ring, 1), "the read never completed");
	rctx_cancel(b);
	drain_all(ring);
	cr_assert_eq(d[NABORT].calls, 1);
	cr_assert_eq(d[NABORT].res, 1, "the data, not an abort: %d", d[NABORT].res);
	e.submitted++;
	e.completed++;
	e.issued++;
	e.enoent++;
	e.anyway++;
	check_stats(ring, &e);
	check_info(b, 1, 1, 0);

	/* Aborted by its own link timeout before the cancel is sent: it ends
	 * -ECANCELED, yet the cancel found nothing (its failure comes after
	 * the target's CQE). */
	t = rctx_with_timeout(root, MS(500));
	cr_assert_not_null(t);
	prep_pipe_read(&sqe, p[2][0], buf[NABORT + 1]);
	sub(ring, t, &sqe, &d[NABORT + 1]);
	flush_and_arm(ring);
	cr_assert_eq(stats(ring).short_circuited, 0,
		     "the deadline passed before the submission: a machine this slow proves nothing");
	/* The target's and the link timeout's CQEs, and the context done
	 * (which queues the request's cancel), before the ring runs. */
	cr_assert(cqe_posted(ring, -ETIME), "the link timeout never fired");
	cr_assert(cqe_posted(ring, -ECANCELED), "the read was not aborted");
	cr_assert(WAIT_UNTIL(rctx_err(t) != 0, WAIT_MS), "the deadline never passed");
	drain_all(ring);
	cr_assert_eq(d[NABORT + 1].calls, 1);
	cr_assert_eq(d[NABORT + 1].res, -ECANCELED);
	e.submitted++;
	e.completed++;
	e.issued++;
	e.enoent++;
	e.aborted++;
	e.link_timeouts = e.fired = 1;
	check_stats(ring, &e);
	check_info(t, 1, 0, 1);

	rctx_release(t);
	rctx_release(b);
	rctx_release(a);
	rctx_release(root);
	rctx_ring_destroy(ring);
	for (int i = 0; i < 3; i++) {
		close(p[i][0]);
		close(p[i][1]);
	}
}

Test(accounting, pipe_mix_skip_success)
{
	unsetenv("RCTX_NO_CQE_SKIP");
	pipe_mix();
}

Test(accounting, pipe_mix_every_cancel_result)
{
	setenv("RCTX_NO_CQE_SKIP", "1", 1);
	pipe_mix();
	unsetenv("RCTX_NO_CQE_SKIP");
}

/* Already running: a read of a stuck FUSE file, sent to io-wq at once. The
 * cancel gets -EALREADY; the read ends when the "disk" answers (data) or
 * with -EINTR from the cancel's signal. */
static void already_running(void)
{
	static char buf[4096];
	struct stuckfs fs;
	struct done_rec d = { 0 };
	struct io_uring_sqe sqe;
	struct rctx_ring_stats st;
	rctx_ring_t *ring;
	rctx_t *ctx;
	int fd;

	if (stuckfs_start(&fs) < 0)
		cr_skip_test("an already-running read needs FUSE: %s", fs.why);
	cr_assert_eq(rctx_ring_create(&ring, 16), 0);
	fd = open(fs.stuck_path, O_RDONLY);
	cr_assert_geq(fd, 0, "open: %s", strerror(errno));
	ctx = rctx_with_cancel(rctx_background());
	memset(&sqe, 0, sizeof(sqe));
	io_uring_prep_read(&sqe, fd, buf, sizeof(buf), 0);
	sqe.flags |= IOSQE_ASYNC;
	sub(ring, ctx, &sqe, &d);
	flush_and_arm(ring);
	cr_assert(WAIT_UNTIL(stuckfs_reads_seen(&fs) >= 1, WAIT_MS),
		  "the read never reached the file system");
	rctx_cancel(ctx);
	/* Run until the cancel's failure is in: the read stays held. */
	cr_assert(WAIT_UNTIL(cancel_settled(ring, &d), WAIT_MS), "the cancel never ended");
	st = stats(ring);
	cr_assert_eq(st.cancels_issued, 1);
	cr_assert_eq(st.cancel_ealready, 1, "found %llu enoent %llu (calls %d res %d)",
		     (unsigned long long)st.cancel_found, (unsigned long long)st.cancel_enoent,
		     d.calls, d.res);
	cr_assert_eq(st.cancel_found + st.cancel_enoent, 0);
	if (d.calls == 0) {
		cr_assert_eq(st.held_after_cancel, 1);
		cr_assert_eq(st.in_flight, 1);
		check_info(ctx, 1, 0, 0);
	}
	cr_assert_geq(stuckfs_release(&fs), 0);
	drain_all(ring);
	st = stats(ring);
	cr_assert_eq(d.calls, 1);
	if (d.res == -EINTR || d.res == -ECANCELED) {
		cr_assert_eq(st.aborted, 1);
		cr_assert_eq(st.completed_anyway, 0);
		check_info(ctx, 1, 0, 1);
	} else {
		cr_assert_geq(d.res, 0, "res %d", d.res);
		cr_assert_eq(st.aborted, 0);
		cr_assert_eq(st.completed_anyway, 1);
		check_info(ctx, 1, 1, 0);
	}
	cr_assert_eq(st.submitted, 1);
	cr_assert_eq(st.completed, 1);
	cr_assert_eq(st.cancels_issued, 1);
	cr_assert_eq(st.cancel_ealready, 1);
	cr_assert_eq(st.cancel_found + st.cancel_enoent, 0);
	cr_assert_eq(st.held_after_cancel, 0);
	cr_assert_eq(st.in_flight, 0);
	rctx_release(ctx);
	rctx_ring_destroy(ring);
	close(fd);
	stuckfs_stop(&fs);
}

Test(accounting, already_running_skip_success, .timeout = 60)
{
	unsetenv("RCTX_NO_CQE_SKIP");
	already_running();
}

Test(accounting, already_running_every_cancel_result, .timeout = 60)
{
	setenv("RCTX_NO_CQE_SKIP", "1", 1);
	already_running();
	unsetenv("RCTX_NO_CQE_SKIP");
}
