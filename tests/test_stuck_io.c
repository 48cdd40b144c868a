/* SPDX-License-Identifier: MIT */
/*
 * Description: stuck disk I/O. A FUSE file system (tests/stuckfs.h) whose
 * reads never answer stands in for a hung disk. A blocking read on it under a
 * 100 ms deadline returns -ETIMEDOUT close to the deadline, the submitting
 * thread never blocks in the kernel (a second read of the same page, which
 * would wait for the page lock, returns on time too), the caller's buffer is
 * never written after the call returns even when the kernel later completes
 * the read with data, and the ring's accounting says what happened. Skips
 * with the reason when FUSE cannot be mounted here.
 */
#include "ring_util.h"
#include "stuckfs.h"

TestSuite(stuck_io, .timeout = 60);

static struct stuckfs fs;

static void mount_or_skip(void)
{
	if (stuckfs_start(&fs) < 0)
		cr_skip_test("stuck-disk tests need FUSE: %s", fs.why);
}

/* The runtime's accounting of the file I/O it keeps for blocking calls. */
static struct rctx_ring_stats kept_stats(void)
{
	struct rctx_runtime_stats st;

	cr_assert_eq(rctx_runtime_stats(&st), 0);
	return st.kept;
}

/* Wait until the kernel has let go of every kept request. */
static void wait_kernel_release(int limit_ms)
{
	int64_t limit = rctx_now() + (int64_t)limit_ms * 1000000;

	while (kept_stats().in_flight && rctx_now() < limit)
		rctx_sleep(rctx_background(), 2000000);
}

Test(stuck_io, read_returns_at_deadline_and_buffer_stays_untouched)
{
	static char buf1[8192], buf2[8192];
	struct rctx_ring_stats st;
	int fd;

	mount_or_skip();
	fd = open(fs.stuck_path, O_RDONLY);
	cr_assert_geq(fd, 0);
	memset(buf1, 'P', sizeof(buf1));
	memset(buf2, 'Q', sizeof(buf2));
	for (int i = 0; i < 2; i++) {
		char *buf = i ? buf2 : buf1;
		rctx_t *ctx = rctx_with_timeout(rctx_background(), 100 * 1000000LL);
		int64_t dl, t1;
		ssize_t n;

		cr_assert(rctx_deadline(ctx, &dl));
		n = rctx_read(ctx, fd, buf, sizeof(buf1), 0);
		t1 = rctx_now();
		cr_assert_eq(n, -ETIMEDOUT, "read %d returned %zd", i, n);
		cr_assert_geq(t1, dl - 1000000);
		cr_assert_lt(t1 - dl, 50 * 1000000LL, "read %d returned %.1f ms late", i,
			     (t1 - dl) / 1e6);
		cr_log_info("stuck read %d returned %.2f ms after its deadline\n", i,
			    (t1 - dl) / 1e6);
		rctx_release(ctx);
	}
	cr_assert_geq(stuckfs_reads_seen(&fs), 1, "the read never reached the daemon");
	st = kept_stats();
	cr_assert_eq(st.in_flight, 2, "both reads are still held by the kernel");
	cr_assert_eq(st.held_after_cancel, 2, "held %llu in_flight %llu issued %llu found %llu ealready %llu enoent %llu",
		     (unsigned long long)st.held_after_cancel, (unsigned long long)st.in_flight,
		     (unsigned long long)st.cancels_issued, (unsigned long long)st.cancel_found,
		     (unsigned long long)st.cancel_ealready, (unsigned long long)st.cancel_enoent);
	cr_assert_eq(st.cancel_found, 0, "the kernel cannot abort a read in FUSE");

	/* The "disk" comes back and answers with data: it must land in the
	 * library's bounce buffers, never in the callers'. */
	cr_assert_geq(stuckfs_release(&fs), 1);
	wait_kernel_release(5000);
	st = kept_stats();
	cr_assert_eq(st.in_flight, 0);
	cr_assert_eq(st.held_after_cancel, 0);
	cr_assert_eq(st.completed_anyway + st.aborted, 2);
	for (size_t i = 0; i < sizeof(buf1); i++) {
		cr_assert_eq(buf1[i], 'P', "caller buffer 1 written at %zu", i);
		cr_assert_eq(buf2[i], 'Q', "caller buffer 2 written at %zu", i);
	}
	close(fd);
	stuckfs_stop(&fs);
}

struct late_cancel {
	rctx_t *c;
	int64_t at;
};

static void *canceller(void *p)
{
	struct late_cancel *x = p;

	usleep(50000);
	x->at = rctx_now();
	rctx_cancel(x->c);
	return NULL;
}

Test(stuck_io, cancel_from_another_thread_unblocks_stuck_read)
{
	struct late_cancel a = { 0 };
	rctx_t *ctx;
	static char buf[4096];
	pthread_t t;
	int fd;
	ssize_t n;
	int64_t t0;

	mount_or_skip();
	fd = open(fs.stuck_path, O_RDONLY);
	cr_assert_geq(fd, 0);
	ctx = rctx_with_cancel(rctx_background());
	/* Cancel after 50 ms from a plain thread. */
	a.c = ctx;
	cr_assert_eq(pthread_create(&t, NULL, canceller, &a), 0);
	n = rctx_read(ctx, fd, buf, sizeof(buf), 4096);
	t0 = rctx_now();
	pthread_join(t, NULL);
	cr_assert_eq(n, -ECANCELED);
	cr_assert_lt(t0 - a.at, 50 * 1000000LL);
	rctx_release(ctx);
	stuckfs_release(&fs);
	wait_kernel_release(5000);
	close(fd);
	stuckfs_stop(&fs);
}

Test(stuck_io, healthy_file_on_same_fs_reads_normally)
{
	static char buf[4096];
	rctx_t *ctx;
	int fd;

	mount_or_skip();
	fd = open(fs.data_path, O_RDONLY);
	cr_assert_geq(fd, 0);
	ctx = rctx_with_timeout(rctx_background(), 2000 * 1000000LL);
	cr_assert_eq(rctx_read(ctx, fd, buf, sizeof(buf), 0), (ssize_t)sizeof(buf));
	cr_assert_eq(buf[0], STUCKFS_DATA_BYTE);
	cr_assert_eq(buf[sizeof(buf) - 1], STUCKFS_DATA_BYTE);
	rctx_release(ctx);
	close(fd);
	stuckfs_stop(&fs);
}
