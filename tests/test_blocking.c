/* SPDX-License-Identifier: MIT */
/*
 * Description: the Go-style blocking calls on the calling thread's ring.
 * Each returns its result when the kernel completes it, the context's error
 * when the context is done first (immediately if done already), and keeps a
 * result that raced with a cancel. Bad input gets an error, not a crash.
 */
#include <poll.h>
#include <stdlib.h>

#include "ring_util.h"

TestSuite(blocking, .timeout = 60);

static rctx_t *bg(void) { return rctx_background(); }

Test(blocking, read_write_pipe_and_file)
{
	char path[] = "/tmp/rctx-blk-XXXXXX", buf[32] = { 0 };
	int p[2], fd = mkstemp(path);

	cr_assert_eq(pipe(p), 0);
	cr_assert_eq(rctx_write(bg(), p[1], "pipe", 4, -1), 4);
	cr_assert_eq(rctx_read(bg(), p[0], buf, sizeof(buf), -1), 4);
	cr_assert_eq(memcmp(buf, "pipe", 4), 0);
	cr_assert_geq(fd, 0);
	cr_assert_eq(rctx_write(bg(), fd, "file data", 9, 0), 9);
	cr_assert_eq(rctx_fsync(bg(), fd, 0), 0);
	memset(buf, 0, sizeof(buf));
	cr_assert_eq(rctx_read(bg(), fd, buf, sizeof(buf), 0), 9);
	cr_assert_eq(memcmp(buf, "file data", 9), 0);
	cr_assert_eq(rctx_read(bg(), fd, buf, sizeof(buf), 100), 0, "EOF reads 0");
	close(fd);
	fd = rctx_openat(bg(), AT_FDCWD, path, O_RDONLY, 0);
	cr_assert_geq(fd, 0);
	cr_assert_eq(rctx_read(bg(), fd, buf, 4, 5), 4);
	cr_assert_eq(memcmp(buf, "data", 4), 0);
	close(fd);
	cr_assert_eq(rctx_openat(bg(), AT_FDCWD, "/nonexistent/x", O_RDONLY, 0), -ENOENT);
	unlink(path);
	close(p[0]);
	close(p[1]);
}

Test(blocking, ftruncate_shrinks_and_extends)
{
	char path[] = "/tmp/rctx-blk-XXXXXX";
	int fd = mkstemp(path);
	struct stat st;
	int ret;

	cr_assert_geq(fd, 0);
	unlink(path);
	cr_assert_eq(rctx_write(bg(), fd, "0123456789", 10, 0), 10);
	ret = rctx_ftruncate(bg(), fd, 4);
	if (ret == -EOPNOTSUPP) {
		close(fd);
		cr_skip_test("IORING_OP_FTRUNCATE needs Linux 6.9");
	}
	cr_assert_eq(ret, 0);
	cr_assert_eq(fstat(fd, &st), 0);
	cr_assert_eq(st.st_size, 4);
	cr_assert_eq(rctx_ftruncate(bg(), fd, 8192), 0);
	cr_assert_eq(fstat(fd, &st), 0);
	cr_assert_eq(st.st_size, 8192);
	cr_assert_eq(rctx_ftruncate(bg(), fd, -1), -EINVAL);
	cr_assert_eq(rctx_ftruncate(NULL, fd, 0), -EINVAL);
	close(fd);
	cr_assert_eq(rctx_ftruncate(bg(), fd, 0), -EBADF);
}

Test(blocking, send_recv_accept_connect_poll)
{
	struct sockaddr_in a;
	int lfd = tcp_listener(&a, 8), c, s;
	char buf[16] = { 0 };

	c = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert_eq(rctx_connect(bg(), c, (struct sockaddr *)&a, sizeof(a)), 0);
	s = rctx_accept(bg(), lfd, NULL, NULL, 0);
	cr_assert_geq(s, 0);
	cr_assert_eq(rctx_send(bg(), c, "ping", 4, 0), 4);
	cr_assert_eq(rctx_poll(bg(), s, POLLIN) & POLLIN, POLLIN);
	cr_assert_eq(rctx_recv(bg(), s, buf, sizeof(buf), 0), 4);
	cr_assert_eq(memcmp(buf, "ping", 4), 0);
	close(c);
	close(s);
	close(lfd);
}

Test(blocking, sleep_full_and_cut_short)
{
	rctx_t *ctx = rctx_with_timeout(bg(), 20 * 1000000LL);
	int64_t t0 = rctx_now();

	cr_assert_eq(rctx_sleep(bg(), 5 * 1000000LL), 0);
	cr_assert_geq(rctx_now() - t0, 5 * 1000000LL);
	/* An hour's sleep: a full one returns 0 (and times the test out). */
	t0 = rctx_now();
	cr_assert_eq(rctx_sleep(ctx, 3600LL * 1000000000), -ETIMEDOUT);
	cr_assert_lt(rctx_now() - t0, MS(TH_PATIENCE_MS));
	cr_assert_eq(rctx_sleep(bg(), -1), -EINVAL);
	rctx_release(ctx);
}

Test(blocking, done_context_returns_at_once_without_kernel)
{
	rctx_t *ctx = rctx_with_cancel(bg());
	struct rctx_ring_stats before, after;
	char buf[8];
	int p[2];

	cr_assert_eq(pipe(p), 0);
	rctx_cancel(ctx);
	rctx_ring_stats(rctx_thread_ring(), &before);
	cr_assert_eq(rctx_read(ctx, p[0], buf, sizeof(buf), -1), -ECANCELED);
	cr_assert_eq(rctx_recv(ctx, p[0], buf, sizeof(buf), 0), -ECANCELED);
	cr_assert_eq(rctx_sleep(ctx, 1000000000), -ECANCELED);
	rctx_ring_stats(rctx_thread_ring(), &after);
	cr_assert_eq(after.submitted, before.submitted);
	cr_assert_eq(after.short_circuited, before.short_circuited + 3);
	rctx_release(ctx);
	close(p[0]);
	close(p[1]);
}

Test(blocking, deadline_ends_blocked_recv)
{
	rctx_t *ctx = rctx_with_timeout_cause(bg(), 30 * 1000000LL, -EPIPE);
	char buf[8];
	int sv[2];
	int64_t dl, late;

	cr_assert(rctx_deadline(ctx, &dl));
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	cr_assert_eq(rctx_recv(ctx, sv[0], buf, sizeof(buf), 0), -ETIMEDOUT);
	late = rctx_now() - dl;
	cr_assert_geq(late, -1000000, "returned %lld ns early", (long long)-late);
	cr_assert_lt(late, MS(TH_PATIENCE_MS), "returned %lld ns late", (long long)late);
	cr_assert_eq(rctx_cause(ctx), -EPIPE);
	rctx_release(ctx);
	close(sv[0]);
	close(sv[1]);
}

Test(blocking, accepted_fd_is_not_lost_when_racing_cancel)
{
	/* The connection is pending before the accept: the kernel completes
	 * it at once; a context cancelled right after cannot take it back. */
	struct sockaddr_in a;
	int lfd = tcp_listener(&a, 8), c, s;
	rctx_t *ctx = rctx_with_cancel(bg());

	c = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert_eq(connect(c, (struct sockaddr *)&a, sizeof(a)), 0);
	s = rctx_accept(ctx, lfd, NULL, NULL, 0);
	rctx_cancel(ctx);
	cr_assert_geq(s, 0);
	close(s);
	close(c);
	close(lfd);
	rctx_release(ctx);
}

static void nested_cb(void *arg, int res, uint32_t flags)
{
	char buf[4];

	(void)res;
	(void)flags;
	*(ssize_t *)arg = rctx_read(rctx_background(), 0, buf, sizeof(buf), -1);
}

Test(blocking, blocking_call_from_thread_ring_callback_is_refused)
{
	rctx_ring_t *ring = rctx_thread_ring();
	struct io_uring_sqe sqe;
	ssize_t nested = 1;

	cr_assert_not_null(ring);
	io_uring_prep_nop(&sqe);
	cr_assert_eq(rctx_submit(ring, bg(), &sqe, nested_cb, &nested), 0);
	while (nested == 1)
		rctx_ring_run(ring, rctx_now() + 100000000);
	cr_assert_eq(nested, -EDEADLK);
}

Test(blocking, invalid_arguments)
{
	char buf[4];

	cr_assert_eq(rctx_read(NULL, 0, buf, 4, 0), -EINVAL);
	cr_assert_eq(rctx_write(NULL, 1, buf, 4, 0), -EINVAL);
	cr_assert_eq(rctx_recv(NULL, 0, buf, 4, 0), -EINVAL);
	cr_assert_eq(rctx_read(bg(), 0, NULL, 4, 0), -EINVAL);
	cr_assert_eq(rctx_connect(bg(), 0, NULL, 0), -EINVAL);
	cr_assert_eq(rctx_openat(bg(), AT_FDCWD, NULL, O_RDONLY, 0), -EINVAL);
	cr_assert_eq(rctx_read(bg(), -1, buf, 4, 0), -EBADF);
	cr_assert_eq(rctx_poll(NULL, 0, POLLIN), -EINVAL);
}
