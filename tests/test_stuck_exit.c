/* SPDX-License-Identifier: MIT */
/*
 * Description: exits while the kernel holds stuck disk I/O. The kernel makes
 * a task's exit wait for the io-wq work that the task submitted, and a read
 * on a FUSE file whose daemon never answers stays in io-wq. So:
 *  - a thread whose blocking read gave up (its context cancelled) exits at once,
 *    however long the disk stays stuck (the read was submitted by the
 *    library's runtime thread, which keeps it);
 *  - a thread that exits with such a request on its own ring hands the ring
 *    to the runtime thread, which runs the request's callback once the
 *    kernel lets go and then frees the ring;
 *  - a process that gave up such a read exits with status 0 (its atexit
 *    handlers do not wait for the disk); whether it is reaped before the
 *    disk answers is the kernel's to decide: measured and logged.
 * Reads are given up by cancels made once the daemon holds them, so no
 * verdict depends on timing. Every wait is bounded and ends early. Skips with the reason when FUSE
 * cannot be mounted here.
 */
/* tsan: yes */
#include <pthread.h>
#include <sys/wait.h>

#include "helpers.h"
#include "ring_util.h"
#include "stuckfs.h"

TestSuite(stuck_exit, .timeout = 120);

static struct stuckfs fs;
static int child_go = -1;

static void mount_or_skip(void)
{
	if (stuckfs_start(&fs) < 0)
		cr_skip_test("stuck-disk tests need FUSE: %s", fs.why);
}

static struct rctx_runtime_stats runtime_stats(void)
{
	struct rctx_runtime_stats st;

	cr_assert_eq(rctx_runtime_stats(&st), 0);
	return st;
}

struct reader {
	int fd;
	rctx_t *ctx;
	ssize_t res;
	char buf[4096];
};

/* A blocking read until its context is cancelled, then the thread exits. */
static void *read_then_exit(void *arg)
{
	struct reader *r = arg;

	r->res = rctx_read(r->ctx, r->fd, r->buf, sizeof(r->buf), 0);
	return NULL;
}

/* Join t, failing the test if it has not exited within limit_ms. */
static void join_within(pthread_t t, int limit_ms)
{
	struct timespec ts;
	int ret;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += limit_ms / 1000;
	ret = pthread_timedjoin_np(t, NULL, &ts);
	cr_assert_eq(ret, 0, "the thread did not exit within %d ms (%s)", limit_ms,
		     strerror(ret));
}

Test(stuck_exit, thread_that_abandoned_stuck_read_exits_at_once)
{
	struct reader r = { .res = 1 };
	struct rctx_runtime_stats st;
	pthread_t t;

	mount_or_skip();
	r.fd = open(fs.stuck_path, O_RDONLY);
	cr_assert_geq(r.fd, 0);
	r.ctx = rctx_with_cancel(rctx_background());
	memset(r.buf, 'P', sizeof(r.buf));
	cr_assert_eq(pthread_create(&t, NULL, read_then_exit, &r), 0);
	/* Once the read is in the daemon's hands, give it up. The disk stays
	 * stuck all along: the thread must still go. */
	cr_assert(WAIT_UNTIL(stuckfs_reads_seen(&fs) >= 1, 30000),
		  "the read never reached the daemon");
	rctx_cancel(r.ctx);
	join_within(t, 60000);
	rctx_release(r.ctx);
	cr_assert_eq(r.res, -ECANCELED);
	st = runtime_stats();
	cr_assert_eq(st.kept_held, 1, "the kernel still holds the abandoned read");
	for (size_t i = 0; i < sizeof(r.buf); i++)
		cr_assert_eq(r.buf[i], 'P', "caller buffer written at %zu", i);

	/* The disk answers: the keeper gets the late data, not the caller. */
	cr_assert_geq(stuckfs_release(&fs), 1);
	cr_assert(WAIT_UNTIL(runtime_stats().kept_held == 0, 30000));
	st = runtime_stats();
	cr_assert_eq(st.kept_late, 1);
	{
		struct rctx_ring_stats kst;

		cr_assert_eq(rctx_runtime_ring_stats(&kst), 0);
		cr_assert_eq(kst.in_flight, 0);
	}
	for (size_t i = 0; i < sizeof(r.buf); i++)
		cr_assert_eq(r.buf[i], 'P', "caller buffer written at %zu", i);
	close(r.fd);
	stuckfs_stop(&fs);
}

struct ring_exit {
	int fd;
	char buf[4096];      /* the request's memory: lives past the thread */
	int res;
	_Atomic int calls;   /* the callback runs on the runtime thread */
	_Atomic bool submitted;
};

static void ring_exit_cb(void *arg, int res, uint32_t flags)
{
	struct ring_exit *x = arg;

	(void)flags;
	x->res = res;
	atomic_fetch_add_explicit(&x->calls, 1, memory_order_release);
}

/* Submit a stuck read on the thread's own ring and exit without waiting. */
static void *submit_then_exit(void *arg)
{
	struct ring_exit *x = arg;
	rctx_ring_t *ring = rctx_thread_ring();
	struct io_uring_sqe sqe;

	cr_assert_not_null(ring);
	io_uring_prep_read(&sqe, x->fd, x->buf, sizeof(x->buf), 0);
	sqe.flags |= IOSQE_ASYNC;
	cr_assert_eq(rctx_submit(ring, rctx_background(), &sqe, ring_exit_cb, x), 0);
	cr_assert_geq(rctx_ring_flush(ring), 1);
	/* Exit only once the read is in the daemon's hands: the kernel can
	 * still abort it while it waits in the io-wq queue. */
	cr_assert(WAIT_UNTIL(stuckfs_reads_seen(&fs) >= 1, 30000));
	atomic_store(&x->submitted, true);
	return NULL;
}

Test(stuck_exit, ring_of_exited_thread_is_adopted_and_reclaimed)
{
	static struct ring_exit x;
	struct rctx_runtime_stats st;
	pthread_t t;

	mount_or_skip();
	x.fd = open(fs.stuck_path, O_RDONLY);
	cr_assert_geq(x.fd, 0);
	cr_assert_eq(pthread_create(&t, NULL, submit_then_exit, &x), 0);
	/* The thread's exit hands the ring over; the kernel then holds the
	 * exiting thread itself until the read ends (its own io-wq work). */
	cr_assert(WAIT_UNTIL(runtime_stats().rings_adopted == 1, 30000),
		  "the exiting thread's ring was not handed to the runtime");
	cr_assert(atomic_load(&x.submitted));
	cr_assert_eq(atomic_load(&x.calls), 0, "no callback while the kernel holds the read");
	st = runtime_stats();
	cr_assert_eq(st.rings_reclaimed, 0);

	cr_assert_geq(stuckfs_release(&fs), 1);
	join_within(t, 30000);
	cr_assert(WAIT_UNTIL(runtime_stats().rings_reclaimed == 1, 30000),
		  "the adopted ring was not freed once the kernel let go");
	cr_assert_eq(atomic_load_explicit(&x.calls, memory_order_acquire), 1,
		     "the callback ran exactly once");
	cr_assert(x.res == (int)sizeof(x.buf) || x.res == -ECANCELED || x.res == -EINTR,
		  "result %d", x.res);
	close(x.fd);
	stuckfs_stop(&fs);
}

/* In the child: cancel the read's context when the parent says so. */
static void *cancel_on_byte(void *arg)
{
	rctx_t *ctx = arg;
	char c;

	if (read(child_go, &c, 1) == 1)
		rctx_cancel(ctx);
	return NULL;
}

/* In a child process: give up a stuck read when the parent says so (pipe
 * child_go), say so on pipe fd `report`, then exit. */
static void child_read_and_exit(const char *path, int report)
{
	char buf[4096];
	pthread_t t;
	rctx_t *ctx;
	ssize_t n;
	int fd = open(path, O_RDONLY);

	if (fd < 0)
		_exit(2);
	ctx = rctx_with_cancel(rctx_background());
	if (pthread_create(&t, NULL, cancel_on_byte, ctx) != 0)
		_exit(5);
	n = rctx_read(ctx, fd, buf, sizeof(buf), 0);
	pthread_join(t, NULL);
	rctx_release(ctx);
	if (write(report, "r", 1) != 1)
		_exit(4);
	exit(n == -ECANCELED ? 0 : 3); /* runs the library's atexit handlers */
}

Test(stuck_exit, process_that_abandoned_stuck_read_exits_once_disk_answers)
{
	int status = -1, p[2], go[2];
	pid_t pid, w = 0;
	int64_t t0;
	char c;

	mount_or_skip();
	cr_assert_eq(pipe(p), 0);
	cr_assert_eq(pipe(go), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		close(p[0]);
		close(go[1]);
		child_go = go[0];
		child_read_and_exit(fs.stuck_path, p[1]);
	}
	close(p[1]);
	close(go[0]);
	cr_assert(WAIT_UNTIL(stuckfs_reads_seen(&fs) >= 1, 30000),
		  "the child's read never reached the daemon");
	cr_assert_eq(write(go[1], "g", 1), 1);
	close(go[1]);
	cr_assert_eq(th_readable(p[0], 30000), 1, "the child's read did not return");
	cr_assert_eq(read(p[0], &c, 1), 1);
	close(p[0]);
	t0 = rctx_now();
	/* Measured, not asserted: the kernel decides whether an exiting
	 * process waits for io-wq work (docs/stuck-io.md). */
	WAIT_UNTIL((w = waitpid(pid, &status, WNOHANG)) == pid, 1000);
	cr_log_info("child reaped before the disk answered: %s (%.1f ms after its read returned)\n",
		    w == pid ? "yes" : "no", (rctx_now() - t0) / 1e6);
	if (w != pid) {
		cr_assert_geq(stuckfs_release(&fs), 1);
		cr_assert(WAIT_UNTIL((w = waitpid(pid, &status, WNOHANG)) == pid, 30000),
			  "the child was not reaped once the disk answered");
	}
	cr_assert(WIFEXITED(status), "status %#x", status);
	cr_assert_eq(WEXITSTATUS(status), 0, "the child's read did not end cancelled (exit %d)",
		     WEXITSTATUS(status));
	stuckfs_stop(&fs);
}
