/* SPDX-License-Identifier: MIT */
/*
 * Description: abandonable file requests for callback code (rctx_async_*)
 * and the per-device isolation. Every call works on a healthy file; a read
 * of a page-cache hit completes on the caller's thread without blocking,
 * and one made from a callback is answered in the same rctx_ring_run(); a
 * read held by a hung file system (support/stuckfs.c) is answered at its
 * context's end with the context's error, its memory stays the library's,
 * and the late completion is counted in the ring's, the runtime's and the
 * context's accounting; with the stuck device's lane full (four times its
 * bound held or waiting), opens, statx, reads, writes and fsyncs of files on
 * another device complete, through the async calls and the blocking calls,
 * while the stuck ones are still held (an ordering, not a duration); a
 * request waiting in the stuck lane ends at once when its context is
 * cancelled from another thread; rctx_ring_destroy() gives outstanding
 * requests up; a thread whose requests are stuck exits at once. A splice
 * moves a file's bytes into a pipe, always through the lane; a stuck one is
 * abandoned at its context's end, and the library keeps its pipe and
 * closes it once the kernel lets go.
 * Skips with the reason when FUSE cannot be mounted here.
 */
/* tsan: yes */
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "ring_util.h"
#include "helpers.h"
#include "stuckfs.h"

TestSuite(async, .timeout = 120);

#define WAIT_MS 20000

struct arec {
	int calls;
	int res;
	char data[64];
	struct statx stx;
	bool had_data;
	unsigned flags;
};

static void arec_cb(void *arg, int res, void *data, unsigned flags)
{
	struct arec *a = arg;

	a->flags = flags;
	a->calls++;
	a->res = res;
	a->had_data = data != NULL;
	if (data && res > 0)
		memcpy(a->data, data, res < (int)sizeof(a->data) ? (size_t)res : sizeof(a->data));
}

static void astatx_cb(void *arg, int res, void *data, unsigned flags)
{
	struct arec *a = arg;

	a->flags = flags;
	a->calls++;
	a->res = res;
	a->had_data = data != NULL;
	if (data && res == 0)
		memcpy(&a->stx, data, sizeof(a->stx));
}

/* Run ring until the next callback of a ran. */
static void next(rctx_ring_t *ring, struct arec *a, int *want)
{
	*want += 1;
	cr_assert_eq(run_until(ring, &a->calls, *want, WAIT_MS), *want, "no callback");
}

static rctx_ring_t *new_ring(void)
{
	rctx_ring_t *ring;

	cr_assert_eq(rctx_ring_create(&ring, 64), 0);
	return ring;
}

static struct rctx_runtime_stats rt_stats(void)
{
	struct rctx_runtime_stats st;

	cr_assert_eq(rctx_runtime_stats(&st), 0);
	return st;
}

static uint64_t kept_in_flight(void)
{
	struct rctx_ring_stats st;

	cr_assert_eq(rctx_runtime_ring_stats(&st), 0);
	return st.in_flight;
}

static struct rctx_ring_stats ring_stats(rctx_ring_t *ring)
{
	struct rctx_ring_stats st;

	cr_assert_eq(rctx_ring_stats(ring, &st), 0);
	return st;
}

/* A temporary directory on the test's own (healthy) device. */
static int tmp_dir(char *path)
{
	strcpy(path, "/tmp/rctx-async-XXXXXX");
	cr_assert_not_null(mkdtemp(path));
	return open(path, O_RDONLY | O_DIRECTORY);
}

Test(async, every_call_on_a_healthy_file)
{
	rctx_ring_t *ring = new_ring();
	struct open_how how = { .flags = O_RDWR | O_CREAT, .mode = 0600 };
	struct arec a = { 0 };
	char dir[64];
	int dfd = tmp_dir(dir), fd;
	int want = 0;

	cr_assert_eq(rctx_async_openat2(ring, rctx_background(), dfd, "f", &how, arec_cb, &a), 0);
	next(ring, &a, &want);
	cr_assert_geq(a.res, 0, "openat2: %d", a.res);
	fd = a.res;
	cr_assert_eq(rctx_async_write(ring, rctx_background(), fd, "hello, disk", 11, 0,
				      arec_cb, &a), 0);
	next(ring, &a, &want);
	cr_assert_eq(a.res, 11);
	cr_assert_eq(rctx_async_fsync(ring, rctx_background(), fd, 0, arec_cb, &a), 0);
	next(ring, &a, &want);
	cr_assert_eq(a.res, 0);
	cr_assert_eq(rctx_async_read(ring, rctx_background(), fd, 5, 7, arec_cb, &a), 0);
	next(ring, &a, &want);
	cr_assert_eq(a.res, 4);
	cr_assert_eq(memcmp(a.data, "disk", 4), 0);
	cr_assert_eq(rctx_async_statx(ring, rctx_background(), dfd, "f", 0, STATX_SIZE,
				      astatx_cb, &a), 0);
	next(ring, &a, &want);
	cr_assert_eq(a.res, 0);
	cr_assert(a.had_data);
	cr_assert_eq(a.stx.stx_size, 11);
	a.res = rctx_async_ftruncate(ring, rctx_background(), fd, 5, arec_cb, &a);
	if (a.res != -EOPNOTSUPP) {
		cr_assert_eq(a.res, 0);
		next(ring, &a, &want);
		cr_assert_eq(a.res, 0);
	}
	cr_assert_eq(rctx_async_renameat(ring, rctx_background(), dfd, "f", dfd, "g", 0,
					 arec_cb, &a), 0);
	next(ring, &a, &want);
	cr_assert_eq(a.res, 0);
	cr_assert_eq(faccessat(dfd, "g", F_OK, 0), 0);
	cr_assert_eq(rctx_async_unlinkat(ring, rctx_background(), dfd, "g", 0, arec_cb, &a), 0);
	next(ring, &a, &want);
	cr_assert_eq(a.res, 0);
	cr_assert_eq(rctx_async_unlinkat(ring, rctx_background(), dfd, "g", 0, arec_cb, &a), 0);
	next(ring, &a, &want);
	cr_assert_eq(a.res, -ENOENT);
	cr_assert_eq(rctx_ring_pending(ring), 0);
	close(fd);
	close(dfd);
	rmdir(dir);
	rctx_ring_destroy(ring);
}

Test(async, page_cache_hit_reads_on_the_callers_ring)
{
	rctx_ring_t *ring = new_ring();
	char path[] = "/tmp/rctx-async-XXXXXX";
	int fd = mkstemp(path);
	struct arec a = { 0 };
	uint64_t nowait, kept;

	cr_assert_geq(fd, 0);
	unlink(path);
	cr_assert_eq(pwrite(fd, "cached", 6, 0), 6); /* in the page cache now */
	nowait = rt_stats().nowait_reads;
	kept = rt_stats().kept_submitted;
	cr_assert_eq(rctx_async_read(ring, rctx_background(), fd, 6, 0, arec_cb, &a), 0);
	cr_assert_eq(run_until(ring, &a.calls, 1, WAIT_MS), 1);
	cr_assert_eq(a.res, 6);
	cr_assert_eq(memcmp(a.data, "cached", 6), 0);
	cr_assert_eq(rt_stats().nowait_reads, nowait + 1);
	cr_assert_eq(rt_stats().kept_submitted, kept, "no hop to the runtime thread");
	close(fd);
	rctx_ring_destroy(ring);
}

struct chained {
	rctx_ring_t *ring;
	int fd;
	int nop_calls;
	struct arec a;
};

/* A completion's callback that reads. */
static void read_from_cb(void *arg, int res, uint32_t flags)
{
	struct chained *ch = arg;

	(void)res; (void)flags;
	ch->nop_calls++;
	cr_assert_eq(rctx_async_read(ch->ring, rctx_background(), ch->fd, 6, 0, arec_cb, &ch->a),
		     0);
	cr_assert_eq(ch->a.calls, 0, "never called inside the call");
}

/* A page-cache hit read from a callback is answered in the same run: a
 * request served from memory needs no second trip through the ring. */
Test(async, page_cache_hit_read_from_a_callback_ends_in_the_same_run)
{
	char path[] = "/tmp/rctx-async-XXXXXX";
	struct chained ch = { .ring = new_ring(), .fd = mkstemp(path) };
	struct io_uring_sqe sqe = { 0 };
	int64_t limit = rctx_now() + MS(WAIT_MS);

	cr_assert_geq(ch.fd, 0);
	unlink(path);
	cr_assert_eq(pwrite(ch.fd, "cached", 6, 0), 6);
	io_uring_prep_nop(&sqe);
	cr_assert_eq(rctx_submit(ch.ring, rctx_background(), &sqe, read_from_cb, &ch), 0);
	while (!ch.nop_calls && rctx_now() < limit)
		rctx_ring_run(ch.ring, rctx_now() + MS(100));
	cr_assert_eq(ch.nop_calls, 1);
	cr_assert_eq(ch.a.calls, 1, "the read's callback ran in the run that started it");
	cr_assert_eq(ch.a.res, 6);
	cr_assert_eq(memcmp(ch.a.data, "cached", 6), 0);
	cr_assert_eq(rctx_ring_pending(ch.ring), 0);
	close(ch.fd);
	rctx_ring_destroy(ch.ring);
}

Test(async, invalid_arguments_and_done_context)
{
	rctx_ring_t *ring = new_ring();
	struct open_how how = { .flags = O_RDONLY };
	struct arec a = { 0 };
	rctx_t *done = rctx_with_cancel(rctx_background());
	char path[] = "/tmp/rctx-async-XXXXXX";
	int fd = mkstemp(path);

	cr_assert_geq(fd, 0);
	unlink(path);
	cr_assert_eq(rctx_async_read(NULL, rctx_background(), fd, 1, 0, arec_cb, &a), -EINVAL);
	cr_assert_eq(rctx_async_read(ring, NULL, fd, 1, 0, arec_cb, &a), -EINVAL);
	cr_assert_eq(rctx_async_read(ring, rctx_background(), fd, 1, 0, NULL, &a), -EINVAL);
	cr_assert_eq(rctx_async_read(ring, rctx_background(), fd, 1, -1, arec_cb, &a), -EINVAL);
	cr_assert_eq(rctx_async_read(ring, rctx_background(), -1, 1, 0, arec_cb, &a), -EBADF);
	cr_assert_eq(rctx_async_write(ring, rctx_background(), fd, NULL, 1, 0, arec_cb, &a),
		     -EINVAL);
	cr_assert_eq(rctx_async_write(ring, rctx_background(), -1, "x", 1, 0, arec_cb, &a),
		     -EBADF);
	cr_assert_eq(rctx_async_fsync(ring, rctx_background(), fd, 99, arec_cb, &a), -EINVAL);
	cr_assert_eq(rctx_async_ftruncate(ring, rctx_background(), fd, -1, arec_cb, &a), -EINVAL);
	cr_assert_eq(rctx_async_openat2(ring, rctx_background(), AT_FDCWD, NULL, &how,
					arec_cb, &a), -EINVAL);
	cr_assert_eq(rctx_async_openat2(ring, rctx_background(), AT_FDCWD, "x", NULL,
					arec_cb, &a), -EINVAL);
	cr_assert_eq(rctx_async_statx(ring, rctx_background(), 12345, "x", 0, 0, astatx_cb, &a),
		     -EBADF);
	cr_assert_eq(rctx_async_renameat(ring, rctx_background(), AT_FDCWD, "a", AT_FDCWD, NULL,
					 0, arec_cb, &a), -EINVAL);
	cr_assert_eq(rctx_async_unlinkat(ring, rctx_background(), AT_FDCWD, NULL, 0, arec_cb, &a),
		     -EINVAL);
	cr_assert_eq(rctx_device_limit(RCTX_DEVICE_LIMIT_MAX + 1), -EINVAL);
	cr_assert_eq(rctx_ring_pending(ring), 0, "a failed call never calls back");
	cr_assert_eq(a.calls, 0);
	/* A done context: the callback gets its error at the next run. */
	rctx_cancel(done);
	cr_assert_eq(rctx_async_write(ring, done, fd, "x", 1, 0, arec_cb, &a), 0);
	cr_assert_eq(rctx_async_read(ring, done, fd, 1, 0, arec_cb, &a), 0);
	cr_assert_eq(run_until(ring, &a.calls, 2, WAIT_MS), 2);
	cr_assert_eq(a.res, -ECANCELED);
	cr_assert_eq(lseek(fd, 0, SEEK_END), 0, "no I/O under a done context");
	rctx_release(done);
	close(fd);
	rctx_ring_destroy(ring);
}

/* A pipe (both ends non-blocking). */
static void new_pipe(int p[2])
{
	cr_assert_eq(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
}

Test(async, splice_moves_file_bytes_into_a_pipe)
{
	rctx_ring_t *ring = new_ring();
	char path[] = "/tmp/rctx-async-XXXXXX", back[16] = { 0 }, full[4096];
	int fd = mkstemp(path), p[2];
	struct arec a = { 0 };
	uint64_t kept, nowait;
	int want = 0;

	cr_assert_geq(fd, 0);
	unlink(path);
	cr_assert_eq(pwrite(fd, "0123456789", 10, 0), 10); /* in the page cache */
	new_pipe(p);
	kept = rt_stats().kept_submitted;
	nowait = rt_stats().nowait_reads;
	cr_assert_eq(rctx_async_splice(ring, rctx_background(), fd, 3, p, 6, 0, arec_cb, &a), 0);
	next(ring, &a, &want);
	cr_assert_eq(a.res, 6);
	cr_assert_not(a.had_data, "the bytes are in the pipe, not handed over");
	cr_assert_eq(a.flags, 0);
	cr_assert_eq(read(p[0], back, sizeof(back)), 6, "the pipe is the caller's again");
	cr_assert_str_eq(back, "345678");
	cr_assert_eq(rt_stats().kept_submitted, kept + 1, "a splice always takes its lane");
	cr_assert_eq(rt_stats().nowait_reads, nowait);
	/* At the end of the file: 0, and the pipe still empty. */
	cr_assert_eq(rctx_async_splice(ring, rctx_background(), fd, 10, p, 6, 0, arec_cb, &a), 0);
	next(ring, &a, &want);
	cr_assert_eq(a.res, 0);
	cr_assert_eq(read(p[0], back, sizeof(back)), -1);
	cr_assert_eq(errno, EAGAIN);
	/* No room in the pipe: SPLICE_F_NONBLOCK says so. */
	cr_assert_eq(fcntl(p[1], F_SETPIPE_SZ, 4096), 4096);
	cr_assert_eq(write(p[1], memset(full, 'x', sizeof(full)), sizeof(full)), 4096);
	cr_assert_eq(rctx_async_splice(ring, rctx_background(), fd, 0, p, 6, SPLICE_F_NONBLOCK,
				       arec_cb, &a), 0);
	next(ring, &a, &want);
	cr_assert_eq(a.res, -EAGAIN);
	cr_assert_eq(rctx_ring_pending(ring), 0);
	close(p[0]);
	close(p[1]);
	close(fd);
	rctx_ring_destroy(ring);
}

Test(async, splice_invalid_arguments)
{
	rctx_ring_t *ring = new_ring();
	char path[] = "/tmp/rctx-async-XXXXXX";
	int fd = mkstemp(path), p[2], q[2], notpipe[2];
	struct arec a = { 0 };
	rctx_t *bg = rctx_background();

	cr_assert_geq(fd, 0);
	unlink(path);
	new_pipe(p);
	new_pipe(q);
	notpipe[0] = p[0];
	notpipe[1] = fd;
	cr_assert_eq(rctx_async_splice(NULL, bg, fd, 0, p, 1, 0, arec_cb, &a), -EINVAL);
	cr_assert_eq(rctx_async_splice(ring, NULL, fd, 0, p, 1, 0, arec_cb, &a), -EINVAL);
	cr_assert_eq(rctx_async_splice(ring, bg, fd, 0, p, 1, 0, NULL, &a), -EINVAL);
	cr_assert_eq(rctx_async_splice(ring, bg, fd, 0, NULL, 1, 0, arec_cb, &a), -EINVAL);
	cr_assert_eq(rctx_async_splice(ring, bg, fd, -1, p, 1, 0, arec_cb, &a), -EINVAL);
	cr_assert_eq(rctx_async_splice(ring, bg, fd, 0, p, (size_t)INT_MAX + 1, 0, arec_cb, &a),
		     -EINVAL);
	cr_assert_eq(rctx_async_splice(ring, bg, fd, 0, p, 1, SPLICE_F_MOVE, arec_cb, &a),
		     -EINVAL, "only SPLICE_F_NONBLOCK");
	cr_assert_eq(rctx_async_splice(ring, bg, fd, 0, notpipe, 1, 0, arec_cb, &a), -EINVAL,
		     "not a pipe");
	cr_assert_eq(rctx_async_splice(ring, bg, fd, 0, (int[]){ p[0], q[1] }, 1, 0, arec_cb, &a),
		     -EINVAL, "the ends of two pipes");
	cr_assert_eq(rctx_async_splice(ring, bg, fd, 0, (int[]){ p[1], p[1] }, 1, 0, arec_cb, &a),
		     -EINVAL, "one end twice");
	cr_assert_eq(rctx_async_splice(ring, bg, -1, 0, p, 1, 0, arec_cb, &a), -EBADF);
	cr_assert_eq(rctx_async_splice(ring, bg, fd, 0, (int[]){ p[0], 12345 }, 1, 0, arec_cb, &a),
		     -EBADF);
	cr_assert_eq(rctx_ring_pending(ring), 0, "a failed call never calls back");
	cr_assert_eq(a.calls, 0);
	cr_assert_eq(fcntl(p[0], F_GETFD), FD_CLOEXEC, "a failed call leaves the pipe alone");
	close(p[0]);
	close(p[1]);
	close(q[0]);
	close(q[1]);
	close(fd);
	rctx_ring_destroy(ring);
}

/* ---- the stuck device ------------------------------------------------------- */

static struct stuckfs fs;

static void mount_or_skip(void)
{
	if (stuckfs_start(&fs) < 0)
		cr_skip_test("stuck-disk tests need FUSE: %s", fs.why);
	cr_assert(th_runtime_settle());
}

/* Run ring (a read that would block goes to its lane from a run) until the
 * stuck file system has seen n reads. */
static bool wait_reads_seen(rctx_ring_t *ring, int n)
{
	int64_t limit = rctx_now() + MS(WAIT_MS);

	while (stuckfs_reads_seen(&fs) < n && rctx_now() < limit)
		rctx_ring_run(ring, rctx_now() + MS(5));
	return stuckfs_reads_seen(&fs) >= n;
}

/* Answer the stuck reads until the kernel holds none of the keeper's. */
static void release_all(void)
{
	int64_t limit = rctx_now() + MS(WAIT_MS);

	while ((kept_in_flight() || rt_stats().lane_waiting) && rctx_now() < limit) {
		stuckfs_release(&fs);
		usleep(2000);
	}
	cr_assert_eq(kept_in_flight(), 0, "the kernel let go");
}

Test(async, stuck_read_answered_at_deadline_and_counted_late)
{
	rctx_ring_t *ring;
	struct rctx_ring_stats rs;
	struct rctx_info info;
	struct arec a = { 0 };
	rctx_t *ctx;
	uint64_t late0;
	int fd;

	mount_or_skip();
	ring = new_ring();
	fd = open(fs.stuck_path, O_RDONLY);
	cr_assert_geq(fd, 0);
	late0 = rt_stats().kept_late;
	ctx = rctx_with_cancel(rctx_background());
	cr_assert_eq(rctx_async_read(ring, ctx, fd, 16, 0, arec_cb, &a), 0);
	cr_assert(wait_reads_seen(ring, 1), "the read reached the file system");
	rctx_cancel_cause(ctx, -EPIPE);
	cr_assert_eq(run_until(ring, &a.calls, 1, WAIT_MS), 1);
	cr_assert_eq(a.res, -ECANCELED);
	cr_assert_not(a.had_data);
	cr_assert_eq(a.flags, RCTX_ASYNC_ABANDONED, "the kernel held it");
	cr_assert_eq(rctx_cause(ctx), -EPIPE);
	rs = ring_stats(ring);
	cr_assert_eq(rs.abandoned, 1);
	cr_assert_eq(rs.abandoned_held, 1, "still held by the kernel");
	cr_assert_eq(rctx_info(ctx, &info), 0);
	cr_assert_eq(info.abandoned, 1, "sub %lu comp %lu ab %lu late %lu",
		     (unsigned long)info.submitted, (unsigned long)info.completed,
		     (unsigned long)info.abandoned, (unsigned long)info.late);
	cr_assert_eq(info.late, 0);
	cr_assert_eq(rctx_ring_pending(ring), 0, "nothing outstanding for the caller");
	release_all();
	cr_assert_eq(rt_stats().kept_late, late0 + 1);
	rs = ring_stats(ring);
	cr_assert_eq(rs.abandoned_late, 1);
	cr_assert_eq(rs.abandoned_held, 0);
	cr_assert_eq(rctx_info(ctx, &info), 0);
	cr_assert_eq(info.late, 1);
	cr_assert_eq(a.calls, 1, "the late completion never reached the caller");
	rctx_release(ctx);
	close(fd);
	rctx_ring_destroy(ring);
	stuckfs_stop(&fs);
}

/*
 * A splice from a stuck file into a pipe: answered at its context's end
 * while the kernel holds it (and the pipe's lock, which a close of the pipe
 * would wait for). The library keeps the pipe and closes both ends once the
 * kernel lets go; a pipe the caller makes meanwhile is never touched.
 */
Test(async, stuck_splice_abandoned_keeps_its_pipe_until_the_kernel_lets_go)
{
	rctx_ring_t *ring;
	struct arec a = { 0 };
	int fd, p[2], q[2], fds0;
	char back[8];
	rctx_t *ctx;

	mount_or_skip();
	ring = new_ring();
	fd = open(fs.stuck_path, O_RDONLY);
	cr_assert_geq(fd, 0);
	fds0 = th_fd_count();
	new_pipe(p);
	ctx = rctx_with_cancel(rctx_background());
	cr_assert_eq(rctx_async_splice(ring, ctx, fd, 0, p, 16, 0, arec_cb, &a), 0);
	cr_assert(wait_reads_seen(ring, 1), "the splice reached the file system");
	rctx_cancel(ctx);
	cr_assert_eq(run_until(ring, &a.calls, 1, WAIT_MS), 1);
	cr_assert_eq(a.res, -ECANCELED);
	cr_assert_eq(a.flags, RCTX_ASYNC_ABANDONED, "the kernel held it");
	cr_assert_eq(ring_stats(ring).abandoned_held, 1);
	cr_assert_eq(fcntl(p[0], F_GETFD), FD_CLOEXEC, "the library's now, still open");
	new_pipe(q);
	release_all();
	cr_assert_eq(ring_stats(ring).abandoned_late, 1);
	cr_assert(WAIT_UNTIL(fcntl(p[1], F_GETFD) < 0, WAIT_MS), "closed once the kernel let go");
	cr_assert_eq(fcntl(p[0], F_GETFD), -1);
	cr_assert_eq(read(q[0], back, sizeof(back)), -1, "nothing reached the other pipe");
	cr_assert_eq(errno, EAGAIN);
	close(q[0]);
	close(q[1]);
	cr_assert_eq(th_fd_count(), fds0);
	cr_assert_eq(a.calls, 1);
	rctx_release(ctx);
	close(fd);
	rctx_ring_destroy(ring);
	stuckfs_stop(&fs);
}

#define BOUND 2
#define NSTUCK (4 * BOUND)

struct healthy {
	int dfd;
	int ok;		/* calls that succeeded */
};

/* Blocking calls on the healthy device, from another thread. */
static void *blocking_healthy(void *arg)
{
	struct healthy *h = arg;
	char buf[8];
	int fd = rctx_openat(rctx_background(), h->dfd, "b", O_RDWR | O_CREAT, 0600);

	if (fd < 0)
		return NULL;
	h->ok += rctx_write(rctx_background(), fd, "blocking", 8, 0) == 8;
	h->ok += rctx_fsync(rctx_background(), fd, 0) == 0;
	h->ok += rctx_read(rctx_background(), fd, buf, 8, 0) == 8;
	close(fd);
	return NULL;
}

Test(async, a_full_stuck_lane_never_delays_another_device)
{
	struct open_how how = { .flags = O_RDWR | O_CREAT, .mode = 0600 };
	struct arec stuck[NSTUCK] = { 0 }, a = { 0 };
	rctx_t *ctx[NSTUCK];
	struct healthy h = { 0 };
	rctx_ring_t *ring;
	pthread_t th;
	char dir[64];
	int prev, fd, nfd, want = 0;

	mount_or_skip();
	prev = rctx_device_limit(BOUND);
	ring = new_ring();
	fd = open(fs.stuck_path, O_RDONLY);
	cr_assert_geq(fd, 0);
	for (int i = 0; i < NSTUCK; i++) {
		ctx[i] = rctx_with_cancel(rctx_background());
		cr_assert_eq(rctx_async_read(ring, ctx[i], fd, 16, (int64_t)i * 131072,
					     arec_cb, &stuck[i]), 0);
	}
	cr_assert(wait_reads_seen(ring, BOUND), "the lane's first reads reached the file system");
	for (int64_t end = rctx_now() + MS(WAIT_MS);
	     rt_stats().lane_waiting < NSTUCK - BOUND && rctx_now() < end;)
		rctx_ring_run(ring, rctx_now() + MS(5));
	cr_assert_eq(rt_stats().lane_waiting, NSTUCK - BOUND, "the others wait in the lane");

	h.dfd = tmp_dir(dir);
	cr_assert_eq(rctx_async_openat2(ring, rctx_background(), h.dfd, "a", &how, arec_cb, &a), 0);
	next(ring, &a, &want);
	cr_assert_geq(a.res, 0);
	nfd = a.res;
	cr_assert_eq(rctx_async_write(ring, rctx_background(), nfd, "healthy", 7, 0, arec_cb, &a), 0);
	next(ring, &a, &want);
	cr_assert_eq(a.res, 7);
	cr_assert_eq(rctx_async_fsync(ring, rctx_background(), nfd, 0, arec_cb, &a), 0);
	next(ring, &a, &want);
	cr_assert_eq(a.res, 0);
	cr_assert_eq(rctx_async_statx(ring, rctx_background(), h.dfd, "a", 0, STATX_SIZE,
				      astatx_cb, &a), 0);
	next(ring, &a, &want);
	cr_assert_eq(a.res, 0);
	cr_assert_eq(rctx_async_read(ring, rctx_background(), nfd, 7, 0, arec_cb, &a), 0);
	next(ring, &a, &want);
	cr_assert_eq(a.res, 7);
	cr_assert_eq(pthread_create(&th, NULL, blocking_healthy, &h), 0);
	cr_assert_eq(pthread_join(th, NULL), 0);
	cr_assert_eq(h.ok, 3, "the blocking calls on the healthy device completed");

	/* All of it while the stuck ones are still held or waiting. */
	for (int i = 0; i < NSTUCK; i++)
		cr_assert_eq(stuck[i].calls, 0);
	cr_assert_eq(rt_stats().lane_waiting, NSTUCK - BOUND);
	cr_assert_leq(stuckfs_reads_seen(&fs), BOUND, "no more than the bound reached it");

	/* One waiting in the lane, cancelled from here: it ends at once. */
	rctx_cancel_cause(ctx[NSTUCK - 1], -EPIPE);
	cr_assert_eq(run_until(ring, &stuck[NSTUCK - 1].calls, 1, WAIT_MS), 1);
	cr_assert_eq(stuck[NSTUCK - 1].res, -ECANCELED);
	cr_assert_eq(stuck[NSTUCK - 1].flags, 0, "it never reached the kernel");
	cr_assert_eq(rt_stats().lane_waiting, NSTUCK - BOUND - 1, "no longer counted as waiting");

	release_all();
	for (int i = 0; i < NSTUCK - 1; i++) {
		cr_assert_eq(run_until(ring, &stuck[i].calls, 1, WAIT_MS), 1);
		cr_assert_eq(stuck[i].res, 16, "read %d: %d", i, stuck[i].res);
		cr_assert_eq(stuck[i].data[0], STUCKFS_LATE_BYTE);
	}
	for (int i = 0; i < NSTUCK; i++)
		rctx_release(ctx[i]);
	cr_assert_eq(rt_stats().lane_waiting, 0);
	rctx_device_limit((unsigned)prev);
	close(nfd);
	close(fd);
	unlinkat(h.dfd, "a", 0);
	unlinkat(h.dfd, "b", 0);
	close(h.dfd);
	rmdir(dir);
	rctx_ring_destroy(ring);
	stuckfs_stop(&fs);
}

Test(async, ring_destroy_gives_outstanding_requests_up)
{
	struct arec a = { 0 };
	rctx_ring_t *ring;
	int fd;

	mount_or_skip();
	ring = new_ring();
	fd = open(fs.stuck_path, O_RDONLY);
	cr_assert_geq(fd, 0);
	cr_assert_eq(rctx_async_read(ring, rctx_background(), fd, 16, 0, arec_cb, &a), 0);
	cr_assert(wait_reads_seen(ring, 1));
	rctx_ring_destroy(ring); /* returns while the kernel holds the read */
	cr_assert_eq(a.calls, 1);
	cr_assert_eq(a.res, -ECANCELED);
	cr_assert_geq(rt_stats().kept_held, 1);
	release_all();
	close(fd);
	stuckfs_stop(&fs);
}

static void *stuck_thread(void *arg)
{
	struct arec *a = arg;
	rctx_ring_t *ring = rctx_thread_ring();
	rctx_t *ctx = rctx_with_timeout(rctx_background(), MS(200));
	int fd = open(fs.stuck_path, O_RDONLY);

	if (!ring || !ctx || fd < 0)
		return NULL;
	if (rctx_async_read(ring, ctx, fd, 16, 0, arec_cb, a) == 0)
		run_until(ring, &a->calls, 1, WAIT_MS);
	rctx_release(ctx);
	close(fd);
	return NULL;
}

Test(async, thread_with_a_stuck_request_exits_at_once)
{
	struct arec a = { 0 };
	pthread_t th;

	mount_or_skip();
	cr_assert_eq(pthread_create(&th, NULL, stuck_thread, &a), 0);
	cr_assert_eq(pthread_join(th, NULL), 0, "joined while the disk is stuck");
	cr_assert_eq(a.calls, 1);
	cr_assert_eq(a.res, -ETIMEDOUT);
	cr_assert_eq(stuckfs_reads_seen(&fs), 1, "it did reach the file system");
	cr_assert_geq(rt_stats().kept_held, 1, "and the kernel still holds it");
	release_all();
	stuckfs_stop(&fs);
}

/* ---- the write fence -------------------------------------------------------- */

static void wait_unfenced(void)
{
	int64_t limit = rctx_now() + MS(WAIT_MS);

	while (rt_stats().fenced_files && rctx_now() < limit) {
		stuckfs_release(&fs);
		usleep(2000);
	}
	cr_assert_eq(rt_stats().fenced_files, 0, "the fence lifted");
}

/* Create (empty) the file name of the stuck file system, read-write. */
static int stuck_file(const char *name)
{
	char path[160];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", fs.dir, name);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	cr_assert_geq(fd, 0);
	return fd;
}

/* Run ring until the stuck file system holds one request (what). */
static void run_until_held(rctx_ring_t *ring, const char *what)
{
	for (int64_t end = rctx_now() + MS(WAIT_MS); stuckfs_held(&fs) < 1 && rctx_now() < end;)
		rctx_ring_run(ring, rctx_now() + MS(5));
	cr_assert_eq(stuckfs_held(&fs), 1, "%s reached the file system", what);
}

Test(async, abandoned_write_fences_its_file_until_the_kernel_lets_go)
{
	rctx_ring_t *ring;
	struct arec a = { 0 };
	char back[8] = { 0 };
	uint64_t fenced0;
	rctx_t *ctx;
	int fd, other;

	mount_or_skip();
	ring = new_ring();
	fd = stuck_file("f");
	other = stuck_file("g");
	cr_assert_eq(rctx_write(rctx_background(), fd, "AAAA", 4, 0), 4);
	cr_assert_eq(stuckfs_hang(&fs, STUCKFS_HANG_WRITE), 0);

	/* An async write, abandoned when its context ends. */
	ctx = rctx_with_cancel(rctx_background());
	cr_assert_eq(rctx_async_write(ring, ctx, fd, "BBBB", 4, 0, arec_cb, &a), 0);
	run_until_held(ring, "the write");
	rctx_cancel(ctx);
	cr_assert_eq(run_until(ring, &a.calls, 1, WAIT_MS), 1);
	cr_assert_eq(a.res, -ECANCELED);
	cr_assert_eq(rt_stats().fenced_files, 1);
	cr_assert_eq(stuckfs_hang(&fs, 0), 0);

	/* Fenced: writes, truncates and syncs of that file fail at once. */
	fenced0 = rt_stats().fenced;
	cr_assert_eq(rctx_write(rctx_background(), fd, "CCCC", 4, 0), -EBUSY);
	cr_assert_eq(rctx_fsync(rctx_background(), fd, 0), -EBUSY);
	cr_assert_eq(rctx_ftruncate(rctx_background(), fd, 0), -EBUSY);
	cr_assert_eq(rctx_async_write(ring, rctx_background(), fd, "CCCC", 4, 0, arec_cb, &a),
		     -EBUSY);
	cr_assert_eq(rctx_async_fsync(ring, rctx_background(), fd, 0, arec_cb, &a), -EBUSY);
	cr_assert_eq(rt_stats().fenced, fenced0 + 5);
	cr_assert_eq(ring_stats(ring).fenced, 2);
	/* Another file of the same device is not fenced. */
	cr_assert_eq(rctx_write(rctx_background(), other, "OK", 2, 0), 2);

	/* The kernel carries the abandoned write out; then writes work again,
	 * and the newer data is what stays. */
	wait_unfenced();
	cr_assert_eq(rctx_write(rctx_background(), fd, "CCCC", 4, 0), 4);
	cr_assert_eq(rctx_fsync(rctx_background(), fd, 0), 0);
	cr_assert_eq(pread(fd, back, 4, 0), 4);
	cr_assert_str_eq(back, "CCCC");
	cr_assert_eq(a.calls, 1);
	rctx_release(ctx);
	close(fd);
	close(other);
	rctx_ring_destroy(ring);
	stuckfs_stop(&fs);
}

/* Cancel ctx once the file system holds a request. */
static void *cancel_when_held(void *ctx)
{
	int64_t limit = rctx_now() + MS(WAIT_MS);

	while (stuckfs_held(&fs) < 1 && rctx_now() < limit)
		usleep(2000);
	rctx_cancel(ctx);
	return NULL;
}

Test(async, blocking_write_abandoned_at_its_end_fences_too)
{
	char path[160], back[8] = { 0 };
	pthread_t th;
	rctx_t *ctx;
	int fd;

	mount_or_skip();
	snprintf(path, sizeof(path), "%s/h", fs.dir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	cr_assert_geq(fd, 0);
	cr_assert_eq(stuckfs_hang(&fs, STUCKFS_HANG_WRITE), 0);
	ctx = rctx_with_cancel(rctx_background());
	cr_assert_eq(pthread_create(&th, NULL, cancel_when_held, ctx), 0);
	cr_assert_eq(rctx_write(ctx, fd, "old!", 4, 0), -ECANCELED);
	cr_assert_eq(pthread_join(th, NULL), 0);
	cr_assert_eq(stuckfs_hang(&fs, 0), 0);
	cr_assert_eq(stuckfs_held(&fs), 1, "held by the file system");
	cr_assert_eq(rctx_write(rctx_background(), fd, "new!", 4, 0), -EBUSY);
	wait_unfenced();
	cr_assert_eq(rctx_write(rctx_background(), fd, "new!", 4, 0), 4);
	cr_assert_eq(pread(fd, back, 4, 0), 4);
	cr_assert_str_eq(back, "new!");
	rctx_release(ctx);
	close(fd);
	stuckfs_stop(&fs);
}

/* ---- wake-ups of the owner ring -------------------------------------------- */

#define NPOSTS 2000

struct canceller {
	rctx_t **ctx;
	int n;
};

static void *cancel_all(void *arg)
{
	struct canceller *c = arg;

	/* Spread out, so that posts land at every point of the owner's run,
	 * also just after it looked for posts and before it sleeps. */
	for (int i = 0; i < c->n; i++) {
		rctx_cancel(c->ctx[i]);
		for (volatile int spin = (i * 7919) % 4000; spin > 0; spin--)
			;
	}
	return NULL;
}

/*
 * Callbacks posted from other threads in a burst, while the owner sleeps in
 * rctx_ring_run(RCTX_FOREVER) between them: none may be left behind a
 * wake-up that was already consumed (a lost one hangs this test).
 */
Test(async, a_burst_of_posted_callbacks_never_loses_a_wake_up)
{
	static struct arec a[NPOSTS];
	static rctx_t *ctx[NPOSTS];
	struct canceller c = { ctx, NPOSTS };
	struct arec stuck = { 0 };
	rctx_ring_t *ring;
	pthread_t th;
	int prev, fd, calls = 0;

	mount_or_skip();
	prev = rctx_device_limit(1);
	ring = new_ring();
	fd = open(fs.stuck_path, O_RDONLY);
	cr_assert_geq(fd, 0);
	cr_assert_eq(rctx_async_read(ring, rctx_background(), fd, 16, 0, arec_cb, &stuck), 0);
	cr_assert(wait_reads_seen(ring, 1));
	for (int i = 0; i < NPOSTS; i++) {
		ctx[i] = rctx_with_cancel(rctx_background());
		cr_assert_eq(rctx_async_read(ring, ctx[i], fd, 16, 131072, arec_cb, &a[i]), 0);
	}
	for (int64_t end = rctx_now() + MS(WAIT_MS);
	     rt_stats().lane_waiting < NPOSTS && rctx_now() < end;)
		rctx_ring_run(ring, rctx_now() + MS(5));
	cr_assert_eq(rt_stats().lane_waiting, NPOSTS, "all wait behind the stuck read");
	cr_assert_eq(pthread_create(&th, NULL, cancel_all, &c), 0);
	while (calls < NPOSTS) {
		rctx_ring_run(ring, RCTX_FOREVER);
		calls = 0;
		for (int i = 0; i < NPOSTS; i++)
			calls += a[i].calls;
	}
	cr_assert_eq(pthread_join(th, NULL), 0);
	cr_assert_eq(rt_stats().lane_waiting, 0, "none counted as waiting");
	for (int i = 0; i < NPOSTS; i++) {
		cr_assert_eq(a[i].res, -ECANCELED);
		rctx_release(ctx[i]);
	}
	rctx_device_limit((unsigned)prev);
	release_all();
	cr_assert_eq(run_until(ring, &stuck.calls, 1, WAIT_MS), 1);
	close(fd);
	rctx_ring_destroy(ring);
	stuckfs_stop(&fs);
}

/* ---- rctx_async_write_segs -------------------------------------------------- */

/* Write segs under ctx as one request (flags: its sync); its callback's
 * outcome in a. */
static void write_segs_sync(rctx_ring_t *ring, rctx_t *ctx, int fd, const struct iovec *iov,
			    const int64_t *off, unsigned n, unsigned flags, struct arec *a)
{
	int want = a->calls;

	cr_assert_eq(rctx_async_write_segs(ring, ctx, fd, iov, off, n, flags, arec_cb, a), 0);
	next(ring, a, &want);
}

static void write_segs(rctx_ring_t *ring, rctx_t *ctx, int fd, const struct iovec *iov,
		       const int64_t *off, unsigned n, struct arec *a)
{
	write_segs_sync(ring, ctx, fd, iov, off, n, 0, a);
}

Test(async, write_segs_writes_every_segment_in_order_as_one_request)
{
	rctx_ring_t *ring = new_ring();
	struct iovec iov[] = { { "AAAA", 4 }, { "BB", 2 }, { "", 0 }, { "CCCC", 4 } };
	int64_t off[] = { 0, 1, 3, 8 };
	char path[] = "/tmp/rctx-async-XXXXXX", back[16] = { 0 };
	uint64_t sent;
	struct arec a = { 0 };
	rctx_t *dl = rctx_with_timeout(rctx_background(), MS(60000));
	int fd = mkstemp(path);

	cr_assert_geq(fd, 0);
	unlink(path);
	/* Later segments are written after earlier ones: "BB" lands on "AAAA". */
	sent = rt_stats().kept_submitted;
	write_segs(ring, rctx_background(), fd, iov, off, 4, &a);
	cr_assert_eq(a.res, 10);
	cr_assert_eq(a.flags, 0);
	cr_assert_eq(rt_stats().kept_submitted, sent + 1, "one request to the kernel's worker");
	cr_assert_eq(pread(fd, back, sizeof(back), 0), 12);
	cr_assert_eq(memcmp(back, "ABBA\0\0\0\0CCCC", 12), 0);
	/* With a sync after them, under a deadline. */
	iov[0] = (struct iovec){ "DDDD", 4 };
	iov[1] = (struct iovec){ "EE", 2 };
	write_segs_sync(ring, dl, fd, iov, off, 2, RCTX_SEGS_DATASYNC, &a);
	cr_assert_eq(a.res, 6);
	cr_assert_eq(pread(fd, back, 4, 0), 4);
	cr_assert_eq(memcmp(back, "DEED", 4), 0);
	write_segs_sync(ring, dl, fd, iov, off, 1, RCTX_SEGS_SYNC, &a);
	cr_assert_eq(a.res, 4);
	cr_assert_eq(rctx_ring_pending(ring), 0);
	rctx_release(dl);
	close(fd);
	rctx_ring_destroy(ring);
}

Test(async, write_segs_stops_at_the_first_segment_not_written_whole)
{
	rctx_ring_t *ring = new_ring();
	/* A segment whose end is past the largest offset fails (-EINVAL or
	 * -EFBIG): the ones before it stay written, the ones after it are not. */
	struct iovec iov[] = { { "abcd", 4 }, { "bad!", 4 }, { "zzzz", 4 } };
	int64_t off[] = { 0, INT64_MAX - 1, 8 };
	char path[] = "/tmp/rctx-async-XXXXXX";
	struct arec a = { 0 };
	int fd = mkstemp(path);

	cr_assert_geq(fd, 0);
	unlink(path);
	write_segs(ring, rctx_background(), fd, iov, off, 3, &a);
	cr_assert_eq(a.res, 4, "the bytes before the failed segment: %d", a.res);
	cr_assert_eq(lseek(fd, 0, SEEK_END), 4, "nothing after it was written");
	/* Nothing before it: its error. */
	write_segs(ring, rctx_background(), fd, &iov[1], &off[1], 2, &a);
	cr_assert(a.res == -EINVAL || a.res == -EFBIG, "res %d", a.res);
	cr_assert_eq(lseek(fd, 0, SEEK_END), 4);
	close(fd);
	rctx_ring_destroy(ring);
}

Test(async, write_segs_invalid_arguments_and_done_context)
{
	rctx_ring_t *ring = new_ring();
	struct iovec iov[RCTX_SEGS_MAX + 1];
	int64_t off[RCTX_SEGS_MAX + 1] = { 0 };
	char path[] = "/tmp/rctx-async-XXXXXX";
	rctx_t *done = rctx_with_cancel(rctx_background());
	rctx_t *bg = rctx_background();
	struct arec a = { 0 };
	int fd = mkstemp(path);

	cr_assert_geq(fd, 0);
	unlink(path);
	for (int i = 0; i <= RCTX_SEGS_MAX; i++)
		iov[i] = (struct iovec){ "x", 1 };
	cr_assert_eq(rctx_async_write_segs(NULL, bg, fd, iov, off, 1, 0, arec_cb, &a), -EINVAL);
	cr_assert_eq(rctx_async_write_segs(ring, NULL, fd, iov, off, 1, 0, arec_cb, &a), -EINVAL);
	cr_assert_eq(rctx_async_write_segs(ring, bg, fd, iov, off, 1, 0, NULL, &a), -EINVAL);
	cr_assert_eq(rctx_async_write_segs(ring, bg, fd, NULL, off, 1, 0, arec_cb, &a), -EINVAL);
	cr_assert_eq(rctx_async_write_segs(ring, bg, fd, iov, NULL, 1, 0, arec_cb, &a), -EINVAL);
	cr_assert_eq(rctx_async_write_segs(ring, bg, fd, iov, off, 0, 0, arec_cb, &a), -EINVAL);
	cr_assert_eq(rctx_async_write_segs(ring, bg, fd, iov, off, RCTX_SEGS_MAX + 1, 0,
					   arec_cb, &a), -EINVAL);
	cr_assert_eq(rctx_async_write_segs(ring, bg, fd, iov, off, 1, 4, arec_cb, &a), -EINVAL);
	cr_assert_eq(rctx_async_write_segs(ring, bg, fd, iov, off, 1,
					   RCTX_SEGS_SYNC | RCTX_SEGS_DATASYNC, arec_cb, &a),
		     -EINVAL, "one sync or the other");
	off[1] = -1;
	cr_assert_eq(rctx_async_write_segs(ring, bg, fd, iov, off, 2, 0, arec_cb, &a), -EINVAL);
	off[1] = 0;
	iov[1] = (struct iovec){ NULL, 1 };
	cr_assert_eq(rctx_async_write_segs(ring, bg, fd, iov, off, 2, 0, arec_cb, &a), -EINVAL);
	iov[0] = iov[1] = (struct iovec){ "x", INT_MAX / 2 + 1 };
	cr_assert_eq(rctx_async_write_segs(ring, bg, fd, iov, off, 2, 0, arec_cb, &a), -EINVAL,
		     "a total over INT_MAX");
	iov[0] = iov[1] = (struct iovec){ "x", 1 };
	cr_assert_eq(rctx_async_write_segs(ring, bg, -1, iov, off, 2, 0, arec_cb, &a), -EBADF);
	cr_assert_eq(rctx_ring_pending(ring), 0, "a failed call never calls back");
	cr_assert_eq(a.calls, 0);
	rctx_cancel(done);
	write_segs(ring, done, fd, iov, off, 2, &a);
	cr_assert_eq(a.res, -ECANCELED);
	cr_assert_eq(lseek(fd, 0, SEEK_END), 0, "no I/O under a done context");
	rctx_release(done);
	close(fd);
	rctx_ring_destroy(ring);
}

Test(async, write_segs_abandoned_fences_its_file_as_one_write)
{
	struct iovec iov[] = { { "BBBB", 4 }, { "CCCC", 4 } };
	int64_t off[] = { 0, 8 };
	rctx_ring_t *ring;
	struct arec a = { 0 };
	char back[8] = { 0 };
	rctx_t *ctx;
	int fd;

	mount_or_skip();
	ring = new_ring();
	fd = stuck_file("f");
	cr_assert_eq(stuckfs_hang(&fs, STUCKFS_HANG_WRITE), 0);
	ctx = rctx_with_cancel(rctx_background());
	cr_assert_eq(rctx_async_write_segs(ring, ctx, fd, iov, off, 2, 0, arec_cb, &a), 0);
	run_until_held(ring, "the first write");
	rctx_cancel(ctx);
	cr_assert_eq(run_until(ring, &a.calls, 1, WAIT_MS), 1);
	cr_assert_eq(a.res, -ECANCELED);
	cr_assert_eq(a.flags, RCTX_ASYNC_ABANDONED);
	cr_assert_eq(rt_stats().fenced_files, 1);
	cr_assert_eq(rctx_async_write_segs(ring, rctx_background(), fd, iov, off, 2, 0, arec_cb,
					   &a), -EBUSY);
	cr_assert_eq(rctx_write(rctx_background(), fd, "DDDD", 4, 0), -EBUSY);
	cr_assert_eq(stuckfs_hang(&fs, 0), 0);
	/* The kernel lets go of the whole chain; then writes work again, and
	 * the newer data is what stays. */
	wait_unfenced();
	cr_assert_eq(kept_in_flight(), 0);
	iov[0] = (struct iovec){ "DDDD", 4 };
	write_segs(ring, rctx_background(), fd, iov, off, 1, &a);
	cr_assert_eq(a.res, 4);
	cr_assert_eq(pread(fd, back, 4, 0), 4);
	cr_assert_eq(memcmp(back, "DDDD", 4), 0);
	rctx_release(ctx);
	close(fd);
	rctx_ring_destroy(ring);
	stuckfs_stop(&fs);
}

Test(async, write_segs_syncs_only_after_whole_writes)
{
	struct iovec iov[] = { { "abcd", 4 }, { "bad!", 4 } };
	int64_t off[] = { 0, INT64_MAX - 1 };
	rctx_ring_t *ring;
	struct arec a = { 0 };
	rctx_t *ctx;
	int fd;

	mount_or_skip();
	ring = new_ring();
	fd = stuck_file("f");
	cr_assert_eq(stuckfs_hang(&fs, STUCKFS_HANG_FSYNC), 0);
	/* A segment fails: the request ends without its sync (which would
	 * hang). */
	write_segs_sync(ring, rctx_background(), fd, iov, off, 2, RCTX_SEGS_DATASYNC, &a);
	cr_assert_eq(a.res, 4);
	cr_assert_eq(stuckfs_held(&fs), 0, "no sync reached the file system");
	/* Whole writes: the sync runs after them, and is held. */
	ctx = rctx_with_cancel(rctx_background());
	cr_assert_eq(rctx_async_write_segs(ring, ctx, fd, iov, off, 1, RCTX_SEGS_DATASYNC,
					   arec_cb, &a), 0);
	run_until_held(ring, "the sync");
	cr_assert_eq(a.calls, 1, "the request waits for its sync");
	rctx_cancel(ctx);
	cr_assert_eq(run_until(ring, &a.calls, 2, WAIT_MS), 2);
	cr_assert_eq(a.res, -ECANCELED);
	cr_assert_eq(stuckfs_hang(&fs, 0), 0);
	wait_unfenced();
	cr_assert_eq(kept_in_flight(), 0);
	rctx_release(ctx);
	close(fd);
	rctx_ring_destroy(ring);
	stuckfs_stop(&fs);
}

/* A request the kernel has yet to start when its caller closes the fd and
 * opens another file under the same number: it still writes the file it
 * named (the library's own reference to it), never the new one. The
 * second write of a chain starts only once the first, held by the stuck
 * file system, ends. */
Test(async, a_request_started_late_writes_the_file_it_named)
{
	struct iovec iov[] = { { "AAAA", 4 }, { "BBBB", 4 } };
	int64_t off[] = { 0, 4 };
	uint64_t pinned;
	rctx_ring_t *ring;
	struct arec a = { 0 };
	char path[160], back[8];
	struct stat st;
	int fd, other;

	mount_or_skip();
	ring = new_ring();
	fd = stuck_file("f");
	cr_assert_eq(stuckfs_hang(&fs, STUCKFS_HANG_WRITE), 0);
	pinned = rt_stats().kept_pinned;
	cr_assert_eq(rctx_async_write_segs(ring, rctx_background(), fd, iov, off, 2, 0, arec_cb,
					   &a), 0);
	run_until_held(ring, "the first write");
	cr_assert_eq(rt_stats().kept_pinned, pinned + 1);
	/* Given up (the ring's teardown: the kernel request goes on), its fd
	 * closed and its number given to another file. */
	rctx_ring_destroy(ring);
	cr_assert_eq(a.calls, 1);
	cr_assert_eq(a.flags, RCTX_ASYNC_ABANDONED);
	close(fd);
	other = stuck_file("g");
	cr_assert_eq(dup2(other, fd), fd, "the number is reused");
	close(other);
	other = fd;
	cr_assert_eq(stuckfs_hang(&fs, 0), 0);
	wait_unfenced();
	cr_assert_eq(kept_in_flight(), 0);
	cr_assert_eq(fstat(other, &st), 0);
	cr_assert_eq(st.st_size, 0, "the late write went to the new file");
	snprintf(path, sizeof(path), "%s/f", fs.dir);
	fd = open(path, O_RDONLY);
	cr_assert_eq(pread(fd, back, 8, 0), 8, "both writes landed in the file they named");
	cr_assert_eq(memcmp(back, "AAAABBBB", 8), 0);
	close(fd);
	close(other);
	stuckfs_stop(&fs);
}
