/* SPDX-License-Identifier: MIT */
/*
 * Description: the stats structs can grow without breaking callers. A
 * caller built against an older, smaller struct passes its size and gets
 * exactly that much written (its fields right, nothing past them touched);
 * a caller built against a newer, larger one gets the fields the library
 * knows and zeros beyond; a size smaller than one counter is refused.
 */
#include "ring_util.h"

TestSuite(abi, .timeout = 30);

/* The layout of struct rctx_ring_stats before 1.0: 13 counters. */
struct ring_stats_0_1 {
	uint64_t submitted, short_circuited, completed, cancels_issued, cancel_found,
		 cancel_ealready, cancel_enoent, aborted, completed_anyway, link_timeouts,
		 link_timeouts_fired, in_flight, held_after_cancel;
};

/* The layout of struct rctx_info before 1.0. */
struct info_0_1 {
	int64_t created_ns, done_ns;
	int err, cause;
	uint64_t submitted, completed, aborted;
};

#define GUARD 0x5a5a5a5a5a5a5a5aULL

Test(abi, older_smaller_ring_stats_get_their_fields_only)
{
	struct { struct ring_stats_0_1 s; uint64_t guard; } old;
	struct io_uring_sqe sqe = { 0 };
	struct done_rec d = { 0 };
	rctx_ring_t *ring;

	cr_assert_eq(rctx_ring_create(&ring, 8), 0);
	io_uring_prep_nop(&sqe);
	cr_assert_eq(rctx_submit(ring, rctx_background(), &sqe, rec_cb, &d), 0);
	drain_all(ring);
	memset(&old, 0xff, sizeof(old.s));
	old.guard = GUARD;
	cr_assert_eq((rctx_ring_stats)(ring, (struct rctx_ring_stats *)&old.s, sizeof(old.s)), 0);
	cr_assert_eq(old.s.submitted, 1);
	cr_assert_eq(old.s.completed, 1);
	cr_assert_eq(old.s.in_flight, 0);
	cr_assert_eq(old.s.held_after_cancel, 0);
	cr_assert_eq(old.guard, GUARD, "nothing written past the caller's struct");
	cr_assert_eq((rctx_ring_stats)(ring, (struct rctx_ring_stats *)&old.s, 4), -EINVAL);
	rctx_ring_destroy(ring);
}

Test(abi, newer_larger_structs_get_zeros_beyond)
{
	struct { struct rctx_ring_stats s; uint64_t more[4]; } ring_new;
	struct { struct rctx_runtime_stats s; uint64_t more[4]; } rt_new;
	struct { struct rctx_info s; uint64_t more[4]; } info_new;
	rctx_ring_t *ring;
	rctx_t *ctx = rctx_with_cancel(rctx_background());

	cr_assert_eq(rctx_ring_create(&ring, 8), 0);
	memset(&ring_new, 0xff, sizeof(ring_new));
	memset(&rt_new, 0xff, sizeof(rt_new));
	memset(&info_new, 0xff, sizeof(info_new));
	cr_assert_eq((rctx_ring_stats)(ring, &ring_new.s, sizeof(ring_new)), 0);
	cr_assert_eq((rctx_runtime_stats)(&rt_new.s, sizeof(rt_new)), 0);
	cr_assert_eq((rctx_info)(ctx, &info_new.s, sizeof(info_new)), 0);
	cr_assert_eq(ring_new.s.submitted, 0);
	for (int i = 0; i < 4; i++) {
		cr_assert_eq(ring_new.more[i], 0);
		cr_assert_eq(rt_new.more[i], 0);
		cr_assert_eq(info_new.more[i], 0);
	}
	cr_assert_eq(info_new.s.err, 0);
	rctx_release(ctx);
	rctx_ring_destroy(ring);
}

Test(abi, older_smaller_info_gets_its_fields_only)
{
	struct { struct info_0_1 s; uint64_t guard; } old;
	rctx_t *ctx = rctx_with_cancel(rctx_background());

	rctx_cancel_cause(ctx, -EPIPE);
	old.guard = GUARD;
	cr_assert_eq((rctx_info)(ctx, (struct rctx_info *)&old.s, sizeof(old.s)), 0);
	cr_assert_eq(old.s.err, -ECANCELED);
	cr_assert_eq(old.s.cause, -EPIPE);
	cr_assert_geq(old.s.done_ns, old.s.created_ns);
	cr_assert_eq(old.guard, GUARD);
	cr_assert_eq((rctx_info)(ctx, (struct rctx_info *)&old.s, 0), -EINVAL);
	cr_assert_eq((rctx_runtime_stats)(NULL, 64), -EINVAL);
	cr_assert_eq((rctx_runtime_ring_stats)(NULL, 64), -EINVAL);
	rctx_release(ctx);
}
