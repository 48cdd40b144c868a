/* SPDX-License-Identifier: MIT */
/*
 * bench_cancel - time to cancel N in-flight socket receives
 * (N = 100, 1,000, 10,000, 50,000), from the start of the cancel to the last
 * completion of a cancelled receive:
 *
 *   ringctx:     the receives are rctx_submit()ted on one ring under K child
 *                contexts (K = 4 for N <= 100, else 16) of one root
 *                rctx_with_cancel(background); timed from rctx_cancel(root)
 *                until rctx_ring_run() has run the last callback.
 *   raw batched: a liburing loop written for the comparison: one
 *                io_uring_prep_cancel64(user_data) per receive, batches of
 *                SQ size, one io_uring_submit per batch, completions reaped
 *                between batches; timed until the last receive's CQE.
 *   raw ANY|ALL: one io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY |
 *                IORING_ASYNC_CANCEL_ALL); timed until the last receive's CQE.
 *                The kernel's walk is quadratic in the number of pending
 *                poll-driven requests, so at N = 50,000 (34-51 s here) it
 *                does not run (the row keeps its ringctx and batched figures).
 *
 * Receives are spread over min(N, 2000) AF_UNIX stream socketpairs, several
 * per socket when N is large (the open-file limit is 20,000). No data is ever
 * sent, so every receive stays armed in the kernel until cancelled. All rings
 * have an SQ of 4096 entries; the raw rings ask for a CQ of up to 65536
 * entries (IORING_SETUP_CQSIZE). The three variants run interleaved, a fresh
 * set of receives for each repetition.
 */
#include "bench.h"

#include <liburing.h>
#include <sys/socket.h>
#ifndef BENCH_RAW_ONLY
#include "ringctx.h"
#endif

#define SQ_ENTRIES 4096
#define MAX_PAIRS 2000
#define CANCEL_TAG (1ULL << 63)

static int socks[MAX_PAIRS][2];
static int npairs;
static char rbuf[64]; /* never written: no data is ever sent */

static void open_pairs(void)
{
	for (npairs = 0; npairs < MAX_PAIRS; npairs++)
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, socks[npairs]) < 0)
			bench_die("socketpair", errno);
}

static inline int recv_fd(long i, long n)
{
	long p = n < MAX_PAIRS ? n : MAX_PAIRS;
	return socks[i % p][0];
}

/* ---- raw liburing ------------------------------------------------------- */

static struct io_uring raw;

static void raw_init(void)
{
	struct io_uring_params p;
	memset(&p, 0, sizeof p);
	p.flags = IORING_SETUP_CQSIZE;
	p.cq_entries = 65536;
	int ret = io_uring_queue_init_params(SQ_ENTRIES, &raw, &p);
	if (ret < 0)
		bench_die("io_uring_queue_init_params", ret);
	if (!(p.features & IORING_FEAT_NODROP))
		fprintf(stderr, "bench_cancel: kernel without IORING_FEAT_NODROP\n");
}

static struct io_uring_sqe *raw_sqe(void)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&raw);
	if (!sqe) {
		int ret = io_uring_submit(&raw);
		if (ret < 0)
			bench_die("io_uring_submit", ret);
		sqe = io_uring_get_sqe(&raw);
	}
	return sqe;
}

/* Reap what is there; counts receive CQEs (and cancel CQEs). */
static long raw_recv_done, raw_cancel_done, raw_not_cancelled;

static void raw_reap(void)
{
	struct io_uring_cqe *cqes[256];
	unsigned k;
	while ((k = io_uring_peek_batch_cqe(&raw, cqes, 256)) > 0) {
		for (unsigned i = 0; i < k; i++) {
			if (cqes[i]->user_data & CANCEL_TAG)
				raw_cancel_done++;
			else {
				raw_recv_done++;
				if (cqes[i]->res != -ECANCELED)
					raw_not_cancelled++;
			}
		}
		io_uring_cq_advance(&raw, k);
	}
}

static void raw_wait(long *counter, long want)
{
	while (*counter < want) {
		struct io_uring_cqe *cqe;
		int ret = io_uring_wait_cqe(&raw, &cqe);
		if (ret < 0 && ret != -EINTR)
			bench_die("io_uring_wait_cqe", ret);
		raw_reap();
	}
}

static void raw_arm(long n)
{
	raw_recv_done = raw_cancel_done = raw_not_cancelled = 0;
	for (long i = 0; i < n; i++) {
		struct io_uring_sqe *sqe = raw_sqe();
		io_uring_prep_recv(sqe, recv_fd(i, n), rbuf, sizeof rbuf, 0);
		io_uring_sqe_set_data64(sqe, (uint64_t)i + 1);
	}
	int ret = io_uring_submit(&raw);
	if (ret < 0)
		bench_die("io_uring_submit", ret);
	raw_reap();
	if (raw_recv_done)
		bench_die("raw receive completed before cancel", EIO);
}

/* Per-request cancels by user_data, batches of SQ size. */
static double raw_batched(long n)
{
	raw_arm(n);
	int64_t t0 = bench_now();
	for (long i = 0; i < n; i++) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(&raw);
		if (!sqe) {
			int ret = io_uring_submit(&raw);
			if (ret < 0)
				bench_die("io_uring_submit", ret);
			raw_reap();
			sqe = io_uring_get_sqe(&raw);
		}
		io_uring_prep_cancel64(sqe, (uint64_t)i + 1, 0);
		io_uring_sqe_set_data64(sqe, CANCEL_TAG | ((uint64_t)i + 1));
	}
	int ret = io_uring_submit(&raw);
	if (ret < 0)
		bench_die("io_uring_submit", ret);
	raw_reap();
	raw_wait(&raw_recv_done, n);
	int64_t t1 = bench_now();
	raw_wait(&raw_cancel_done, n);
	if (raw_not_cancelled)
		fprintf(stderr, "bench_cancel: raw batched: %ld receives not -ECANCELED\n",
			raw_not_cancelled);
	return (double)(t1 - t0);
}

/* One IORING_ASYNC_CANCEL_ANY | IORING_ASYNC_CANCEL_ALL. */
static double raw_any_all(long n)
{
	raw_arm(n);
	int64_t t0 = bench_now();
	struct io_uring_sqe *sqe = io_uring_get_sqe(&raw);
	io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY | IORING_ASYNC_CANCEL_ALL);
	io_uring_sqe_set_data64(sqe, CANCEL_TAG);
	int ret = io_uring_submit(&raw);
	if (ret < 0)
		bench_die("io_uring_submit", ret);
	raw_reap();
	raw_wait(&raw_recv_done, n);
	int64_t t1 = bench_now();
	raw_wait(&raw_cancel_done, 1);
	if (raw_not_cancelled)
		fprintf(stderr, "bench_cancel: raw ANY|ALL: %ld receives not -ECANCELED\n",
			raw_not_cancelled);
	return (double)(t1 - t0);
}

/* ---- ringctx ------------------------------------------------------------ */

#ifndef BENCH_RAW_ONLY
static rctx_ring_t *rring;
static long rx_done, rx_not_cancelled;

static void recv_cb(void *arg, int res, uint32_t flags)
{
	(void)arg;
	(void)flags;
	rx_done++;
	if (res != -ECANCELED)
		rx_not_cancelled++;
}

static double rctx_cancel_n(long n, struct bench_allocs *submit_allocs)
{
	int k = n <= 100 ? 4 : 16;
	rctx_t *root = rctx_with_cancel(rctx_background());
	rctx_t *kids[16];
	if (!root)
		bench_die("rctx_with_cancel", ENOMEM);
	for (int i = 0; i < k; i++)
		if (!(kids[i] = rctx_with_cancel(root)))
			bench_die("rctx_with_cancel", ENOMEM);
	rx_done = rx_not_cancelled = 0;
	struct io_uring_sqe sqe;
	if (submit_allocs)
		bench_count_start();
	for (long i = 0; i < n; i++) {
		memset(&sqe, 0, sizeof sqe);
		io_uring_prep_recv(&sqe, recv_fd(i, n), rbuf, sizeof rbuf, 0);
		int ret = rctx_submit(rring, kids[i % k], &sqe, recv_cb, NULL);
		if (ret < 0)
			bench_die("rctx_submit", ret);
	}
	int ret = rctx_ring_flush(rring);
	if (submit_allocs)
		*submit_allocs = bench_count_stop();
	if (ret < 0)
		bench_die("rctx_ring_flush", ret);
	ret = rctx_ring_run(rring, 0);
	if (ret < 0)
		bench_die("rctx_ring_run", ret);
	if (rx_done || rctx_ring_pending(rring) != (unsigned)n)
		bench_die("ringctx receive completed before cancel", EIO);
	int64_t t0 = rctx_now();
	rctx_cancel(root);
	while (rx_done < n) {
		ret = rctx_ring_run(rring, RCTX_FOREVER);
		if (ret < 0)
			bench_die("rctx_ring_run", ret);
	}
	int64_t t1 = rctx_now();
	if (rx_not_cancelled)
		fprintf(stderr, "bench_cancel: ringctx: %ld receives not -ECANCELED\n",
			rx_not_cancelled);
	for (int i = 0; i < k; i++)
		rctx_release(kids[i]);
	rctx_release(root);
	return (double)(t1 - t0);
}
#endif

int main(void)
{
	bench_init("cancel N in-flight socket receives (cancel start -> last completion)");
	open_pairs();
	raw_init();
#ifndef BENCH_RAW_ONLY
	int ret = rctx_ring_create(&rring, SQ_ENTRIES);
	if (ret < 0)
		bench_die("rctx_ring_create", ret);
#endif
	static const long ns[] = { 100, 1000, 10000, 50000 };
	printf("%-22s %12s %12s %12s %9s %9s %9s\n", "benchmark", "ringctx", "raw batched",
	       "raw ANY|ALL", "x batched", "x ANY|ALL", "ns/req");
	for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++) {
		long n = ns[i];
		double vr[64], vb[64], va[64];
		int reps = bench_reps;
		int any_reps = reps;
		/* ANY|ALL is quadratic: 34-51 s at 50,000, most of a full run's
		 * time budget, for a figure that is not a target */
		if (n >= 50000)
			any_reps = 0;
		for (int r = 0; r < reps; r++) {
			vb[r] = raw_batched(n);
			if (r < any_reps)
				va[r] = raw_any_all(n);
#ifndef BENCH_RAW_ONLY
			vr[r] = rctx_cancel_n(n, NULL);
#else
			vr[r] = NAN;
#endif
		}
		double mr = bench_median(vr, reps), mb = bench_median(vb, reps);
		double ma = any_reps ? bench_median(va, any_reps) : NAN;
		char name[64], a[32], b[32], c[32];
		snprintf(name, sizeof name, "CancelRecv/N=%ld", n);
		printf("%-22s %12s %12s %12s %8.2fx %8.3fx %9.1f\n", name,
		       bench_fmt_ns(mr, a, sizeof a), bench_fmt_ns(mb, b, sizeof b),
		       bench_fmt_ns(ma, c, sizeof c), mr / mb, mr / ma, mr / n);
		fflush(stdout);
		bench_row("cancel", name, "ns", mr, "raw batched cancels", mb, NAN, NAN, NAN, NAN);
		bench_row("cancel", name, "ns", mr, "raw ANY|ALL cancel", ma, NAN, NAN, NAN, NAN);
	}
#ifndef BENCH_RAW_ONLY
	rctx_ring_destroy(rring);
#endif
	io_uring_queue_exit(&raw);
	bench_finish();
	return 0;
}
