/* Description: rings and contexts at the kernel's limits: more submissions
 * than SQ entries before a run, 20x more completions than CQ entries without
 * reaping (CQ overflow), RLIMIT_NOFILE exhausted when a done fd is asked
 * for, and a tiny RLIMIT_MEMLOCK at ring creation. Every callback runs
 * exactly once, no fd leaks, and errors are the documented ones. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include "ringctx.h"
#include "helpers.h"

TestSuite(limits, .timeout = 60);

struct rec {
	int calls;
	int res;
};

static void rec_cb(void *arg, int res, uint32_t flags)
{
	struct rec *r = arg;

	(void)flags;
	r->calls++;
	r->res = res;
}

static int fd_count(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	cr_assert_not_null(d);
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

/* Run until no request is pending, within seconds. */
static void drain(rctx_ring_t *ring)
{
	int64_t limit = rctx_now() + MS(10000);

	while (rctx_ring_pending(ring) && rctx_now() < limit)
		rctx_ring_run(ring, rctx_now() + MS(10));
	cr_assert_eq(rctx_ring_pending(ring), 0, "requests never completed");
}

static void check_all_once(const struct rec *recs, int n)
{
	for (int i = 0; i < n; i++) {
		cr_assert_eq(recs[i].calls, 1, "request %d: %d callbacks", i, recs[i].calls);
		cr_assert_eq(recs[i].res, 0, "request %d: result %d", i, recs[i].res);
	}
}

Test(limits, sq_full_before_a_run)
{
	enum { N = 100 };
	static struct rec recs[N];
	rctx_ring_t *ring;
	rctx_t *c = rctx_with_timeout(rctx_background(), MS(60000));
	int fds = fd_count();

	cr_assert_not_null(c);
	cr_assert_eq(rctx_ring_create(&ring, 4), 0);
	cr_assert_leq(rctx_ring_uring(ring)->sq.ring_entries, 4);
	for (int i = 0; i < N; i++) {
		struct io_uring_sqe sqe = { 0 };

		io_uring_prep_nop(&sqe);
		/* Every other one under a deadline: a linked timeout each. */
		cr_assert_eq(rctx_submit(ring, i & 1 ? c : rctx_background(), &sqe,
					 rec_cb, &recs[i]), 0, "submit %d", i);
	}
	drain(ring);
	check_all_once(recs, N);
	rctx_ring_destroy(ring);
	check_all_once(recs, N);
	cr_assert_eq(fd_count(), fds, "fd leaked");
	rctx_cancel(c);
	rctx_release(c);
}

Test(limits, cq_overflow_loses_nothing)
{
	static struct rec recs[4096];
	rctx_ring_t *ring;
	unsigned cq, n;
	int fds = fd_count();

	cr_assert_eq(rctx_ring_create(&ring, 4), 0);
	cq = rctx_ring_uring(ring)->cq.ring_entries;
	n = 20 * cq;
	cr_assert_leq(n, sizeof(recs) / sizeof(recs[0]));
	for (unsigned i = 0; i < n; i++) {
		struct io_uring_sqe sqe = { 0 };
		int ret;

		io_uring_prep_nop(&sqe);
		ret = rctx_submit(ring, rctx_background(), &sqe, rec_cb, &recs[i]);
		cr_assert_eq(ret, 0, "submit %u of %u (CQ %u): %d", i, n, cq, ret);
	}
	cr_assert_eq(rctx_ring_flush(ring) >= 0, 1);
	/* NOPs complete at submission: the CQ is full and the rest waits in
	 * the kernel's overflow list. */
	cr_assert(IO_URING_READ_ONCE(*rctx_ring_uring(ring)->sq.kflags) & IORING_SQ_CQ_OVERFLOW,
		  "the CQ did not overflow");
	drain(ring);
	check_all_once(recs, (int)n);
	rctx_ring_destroy(ring);
	cr_assert_eq(fd_count(), fds, "fd leaked");
}

Test(limits, nofile_exhausted_for_done_fd)
{
	struct rlimit saved, rl;
	rctx_t *c = rctx_with_cancel(rctx_background());
	int fillers[64], nfill = 0, fd, fds;

	cr_assert_not_null(c);
	cr_assert_eq(getrlimit(RLIMIT_NOFILE, &saved), 0);
	fds = fd_count();
	rl = saved;
	rl.rlim_cur = (rlim_t)fds + 16;
	cr_assert_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
	while (nfill < 64 && (fd = dup(0)) >= 0)
		fillers[nfill++] = fd;
	cr_assert_eq(errno, EMFILE, "the fd table never filled");

	cr_assert_eq(rctx_done_fd(c), -EMFILE);
	rctx_cancel(c);
	cr_assert_eq(rctx_wait(c, rctx_now() + MS(10000)), 0);
	cr_assert_eq(rctx_err(c), -ECANCELED);
	cr_assert_eq(rctx_done_fd(c), -EMFILE, "a failed done fd is not cached");

	while (nfill)
		close(fillers[--nfill]);
	cr_assert_eq(setrlimit(RLIMIT_NOFILE, &saved), 0);
	fd = rctx_done_fd(c);
	cr_assert_geq(fd, 0);
	cr_assert_eq(th_readable(fd, 0), 1, "done fd of a done context not readable");
	rctx_release(c);
}

Test(limits, tiny_memlock_at_ring_creation)
{
	struct rlimit saved, rl;
	struct rec rec = { 0 };
	rctx_ring_t *ring = NULL;
	int fds = fd_count(), ret;

	cr_assert_eq(getrlimit(RLIMIT_MEMLOCK, &saved), 0);
	rl = saved;
	rl.rlim_cur = 4096;
	cr_assert_eq(setrlimit(RLIMIT_MEMLOCK, &rl), 0);
	ret = rctx_ring_create(&ring, 256);
	cr_assert_eq(setrlimit(RLIMIT_MEMLOCK, &saved), 0);
	/* Kernels since 5.12 do not charge rings to RLIMIT_MEMLOCK. */
	cr_assert(ret == 0 || ret == -ENOMEM, "ring_create: %d", ret);
	if (ret == 0) {
		struct io_uring_sqe sqe = { 0 };

		io_uring_prep_nop(&sqe);
		cr_assert_eq(rctx_submit(ring, rctx_background(), &sqe, rec_cb, &rec), 0);
		drain(ring);
		cr_assert_eq(rec.calls, 1);
		rctx_ring_destroy(ring);
	}
	cr_assert_eq(fd_count(), fds, "fd leaked");
}
