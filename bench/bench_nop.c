/* SPDX-License-Identifier: MIT */
/*
 * bench_nop - cost of one submit + complete of an IORING_OP_NOP, per request:
 *
 *   raw:     a liburing loop written for the comparison: io_uring_get_sqe,
 *            io_uring_prep_nop, io_uring_submit, io_uring_wait_cqe,
 *            io_uring_peek_batch_cqe, io_uring_cqe_seen.
 *   ringctx: the same NOPs tracked under a cancellable context:
 *            rctx_submit() under rctx_with_cancel(background), then
 *            rctx_ring_run() until every callback has run.
 *
 * Batches of 1, 32 and 256 requests per submit. Both rings have an SQ of
 * 256 entries. The two loops run interleaved in the same process.
 */
#include "bench.h"

#include <liburing.h>
#ifndef BENCH_RAW_ONLY
#include "ringctx.h"
#endif

struct raw_nop {
	struct io_uring ring;
	unsigned batch;
};

static void raw_nop_fn(void *p, long n, int tid)
{
	(void)tid;
	struct raw_nop *rn = p;
	struct io_uring *ring = &rn->ring;
	struct io_uring_cqe *cqes[256];
	while (n > 0) {
		unsigned b = n < rn->batch ? (unsigned)n : rn->batch;
		for (unsigned i = 0; i < b; i++) {
			struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
			io_uring_prep_nop(sqe);
			io_uring_sqe_set_data64(sqe, i + 1);
		}
		int ret = io_uring_submit(ring);
		if (ret != (int)b)
			bench_die("io_uring_submit", ret < 0 ? ret : EIO);
		unsigned got = 0;
		while (got < b) {
			struct io_uring_cqe *cqe;
			ret = io_uring_wait_cqe(ring, &cqe);
			if (ret < 0)
				bench_die("io_uring_wait_cqe", ret);
			unsigned k = io_uring_peek_batch_cqe(ring, cqes, 256);
			for (unsigned i = 0; i < k; i++) {
				if (cqes[i]->res < 0)
					bench_die("nop cqe", cqes[i]->res);
				io_uring_cqe_seen(ring, cqes[i]);
			}
			got += k;
		}
		n -= b;
	}
}

#ifndef BENCH_RAW_ONLY
struct rctx_nop {
	rctx_ring_t *ring;
	rctx_t *ctx;
	unsigned batch;
	long done;
};

static void nop_cb(void *arg, int res, uint32_t flags)
{
	(void)flags;
	struct rctx_nop *rn = arg;
	if (res < 0)
		bench_die("rctx nop callback", res);
	rn->done++;
}

static void rctx_nop_fn(void *p, long n, int tid)
{
	(void)tid;
	struct rctx_nop *rn = p;
	struct io_uring_sqe sqe;
	memset(&sqe, 0, sizeof sqe);
	io_uring_prep_nop(&sqe);
	while (n > 0) {
		unsigned b = n < rn->batch ? (unsigned)n : rn->batch;
		long want = rn->done + b;
		for (unsigned i = 0; i < b; i++) {
			int ret = rctx_submit(rn->ring, rn->ctx, &sqe, nop_cb, rn);
			if (ret < 0)
				bench_die("rctx_submit", ret);
		}
		while (rn->done < want) {
			int ret = rctx_ring_run(rn->ring, RCTX_FOREVER);
			if (ret < 0)
				bench_die("rctx_ring_run", ret);
		}
		n -= b;
	}
}
#endif

int main(void)
{
	bench_init("io_uring NOP submit+complete, per request");
	static const unsigned batches[] = { 1, 32, 256 };
	struct raw_nop raw;
	int ret = io_uring_queue_init(256, &raw.ring, 0);
	if (ret < 0)
		bench_die("io_uring_queue_init", ret);
#ifndef BENCH_RAW_ONLY
	struct rctx_nop rc = { 0 };
	ret = rctx_ring_create(&rc.ring, 256);
	if (ret < 0)
		bench_die("rctx_ring_create", ret);
	rc.ctx = rctx_with_cancel(rctx_background());
	if (!rc.ctx)
		bench_die("rctx_with_cancel", ENOMEM);
#endif
	printf("%-22s %12s %12s %8s %10s %10s\n", "benchmark", "raw", "ringctx", "ratio",
	       "rctx B/op", "allocs/op");
	for (size_t i = 0; i < sizeof batches / sizeof batches[0]; i++) {
		char name[64], a[32], b[32];
		snprintf(name, sizeof name, "NOP/batch=%u", batches[i]);
		raw.batch = batches[i];
		struct bench_result rr, rx;
#ifndef BENCH_RAW_ONLY
		rc.batch = batches[i];
		bench_measure_pair(raw_nop_fn, &raw, rctx_nop_fn, &rc, &rr, &rx);
#else
		rr = bench_measure(raw_nop_fn, &raw, 1, 0);
		memset(&rx, 0, sizeof rx);
		rx.ns_op = NAN;
#endif
		printf("%-22s %12s %12s %7.2fx %10.1f %10.2f\n", name,
		       bench_fmt_ns(rr.ns_op, a, sizeof a), bench_fmt_ns(rx.ns_op, b, sizeof b),
		       rx.ns_op / rr.ns_op, rx.bytes_op, rx.allocs_op);
		bench_row("uring", name, "ns/op", rx.ns_op, "raw liburing", rr.ns_op, rx.bytes_op,
			  rx.allocs_op, rr.bytes_op, rr.allocs_op);
	}
#ifndef BENCH_RAW_ONLY
	rctx_release(rc.ctx);
	rctx_ring_destroy(rc.ring);
#endif
	io_uring_queue_exit(&raw.ring);
	bench_finish();
	return 0;
}
