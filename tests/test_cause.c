/* Description: rctx_cause (Go's context.Cause): causes given to
 * rctx_cancel_cause and the *_cause constructors, their inheritance by
 * descendants, precedence when a child ends first, causes of timeouts whose
 * parent is cancelled first, and cause 0 while not done. The threaded
 * racing-reader check lives in test_thread_tree.c. */
#include <criterion/criterion.h>
#include <errno.h>

#include "ringctx.h"
#include "helpers.h"

TestSuite(cause, .timeout = 60);

/* Causes are ints; any nonzero value, negative errno suggested. */
#define C1 (-EPIPE)
#define C2 (-ECONNRESET)
#define T1 (-EHOSTUNREACH)
#define T2 (-ENETDOWN)

static int key;

Test(cause, cause_is_zero_while_not_done)
{
	rctx_t *c = rctx_with_cancel(rctx_background());
	rctx_t *t = rctx_with_timeout_cause(c, MS(60000), T1);
	rctx_t *v = rctx_with_value(t, &key, NULL);
	cr_assert_eq(rctx_cause(c), 0);
	cr_assert_eq(rctx_cause(t), 0, "the cause of a pending timeout is not reported early");
	cr_assert_eq(rctx_cause(v), 0);
	cr_assert_eq(rctx_cause(rctx_background()), 0);
	rctx_release(v);
	rctx_release(t);
	rctx_release(c);
}

Test(cause, cancel_cause_is_reported)
{
	rctx_t *c = rctx_with_cancel(rctx_background());
	cr_assert_eq(rctx_cancel_cause(c, C1), 1);
	cr_assert_eq(rctx_err(c), -ECANCELED, "err stays Canceled");
	cr_assert_eq(rctx_cause(c), C1);
	rctx_release(c);
}

Test(cause, cancel_cause_zero_is_plain_cancel)
{
	rctx_t *c = rctx_with_cancel(rctx_background());
	cr_assert_eq(rctx_cancel_cause(c, 0), 1);
	cr_assert_eq(rctx_err(c), -ECANCELED);
	cr_assert_eq(rctx_cause(c), -ECANCELED);
	rctx_release(c);
}

Test(cause, first_cause_wins)
{
	rctx_t *c = rctx_with_cancel(rctx_background());
	cr_assert_eq(rctx_cancel_cause(c, C1), 1);
	cr_assert_eq(rctx_cancel_cause(c, C2), 0);
	cr_assert_eq(rctx_cancel(c), 0);
	cr_assert_eq(rctx_cause(c), C1);
	rctx_release(c);

	c = rctx_with_cancel(rctx_background());
	cr_assert_eq(rctx_cancel(c), 1);
	cr_assert_eq(rctx_cancel_cause(c, C2), 0);
	cr_assert_eq(rctx_cause(c), -ECANCELED);
	rctx_release(c);
}

Test(cause, parent_cancelled_with_cause_then_child_cancelled)
{
	rctx_t *p = rctx_with_cancel(rctx_background());
	rctx_t *v = rctx_with_value(p, &key, NULL);
	rctx_t *c = rctx_with_cancel(v);
	rctx_t *gc = rctx_with_timeout(c, MS(60000));
	cr_assert_eq(rctx_cancel_cause(p, C1), 1);
	cr_assert_eq(rctx_cancel(c), 0, "child already ended by its parent");
	cr_assert_eq(rctx_err(c), -ECANCELED);
	cr_assert_eq(rctx_cause(c), C1, "child inherits the parent's cause");
	cr_assert_eq(rctx_cause(v), C1);
	cr_assert_eq(rctx_cause(gc), C1);
	cr_assert_eq(rctx_err(gc), -ECANCELED);
	rctx_release(gc);
	rctx_release(c);
	rctx_release(v);
	rctx_release(p);
}

Test(cause, child_cancelled_first_keeps_plain_cancel)
{
	rctx_t *p = rctx_with_cancel(rctx_background());
	rctx_t *c = rctx_with_cancel(p);
	rctx_t *gc = rctx_with_cancel(c);
	cr_assert_eq(rctx_cancel(c), 1);
	cr_assert_eq(rctx_cancel_cause(p, C1), 1);
	cr_assert_eq(rctx_cause(p), C1);
	cr_assert_eq(rctx_cause(c), -ECANCELED, "the child's own cancel came first");
	cr_assert_eq(rctx_cause(gc), -ECANCELED);
	rctx_release(gc);
	rctx_release(c);
	rctx_release(p);
}

Test(cause, child_cancelled_first_with_cause_keeps_its_own)
{
	rctx_t *p = rctx_with_cancel(rctx_background());
	rctx_t *c = rctx_with_cancel(p);
	cr_assert_eq(rctx_cancel_cause(c, C2), 1);
	cr_assert_eq(rctx_cancel_cause(p, C1), 1);
	cr_assert_eq(rctx_cause(c), C2);
	cr_assert_eq(rctx_cause(p), C1);
	rctx_release(c);
	rctx_release(p);
}

Test(cause, timeout_cause_on_expiry)
{
	rctx_t *t = rctx_with_timeout_cause(rctx_background(), MS(5), T1);
	rctx_t *c = rctx_with_cancel(t);
	cr_assert_eq(rctx_wait(t, rctx_now() + MS(TH_PATIENCE_MS)), 0);
	cr_assert_eq(rctx_err(t), -ETIMEDOUT);
	cr_assert_eq(rctx_cause(t), T1);
	cr_assert_eq(rctx_err(c), -ETIMEDOUT, "child ends with the parent's error");
	cr_assert_eq(rctx_cause(c), T1, "and its cause");
	rctx_release(c);
	rctx_release(t);
}

Test(cause, deadline_cause_on_expiry)
{
	rctx_t *t = rctx_with_deadline_cause(rctx_background(), rctx_now() + MS(5), T2);
	cr_assert_eq(rctx_wait(t, rctx_now() + MS(TH_PATIENCE_MS)), 0);
	cr_assert_eq(rctx_err(t), -ETIMEDOUT);
	cr_assert_eq(rctx_cause(t), T2);
	rctx_release(t);
}

Test(cause, timeout_cause_zero_means_etimedout)
{
	rctx_t *t = rctx_with_timeout_cause(rctx_background(), MS(2), 0);
	cr_assert_eq(rctx_wait(t, rctx_now() + MS(TH_PATIENCE_MS)), 0);
	cr_assert_eq(rctx_err(t), -ETIMEDOUT);
	cr_assert_eq(rctx_cause(t), -ETIMEDOUT);
	rctx_release(t);
}

Test(cause, past_deadline_with_cause_is_done_with_that_cause)
{
	rctx_t *t = rctx_with_deadline_cause(rctx_background(), rctx_now() - MS(1), T1);
	cr_assert_eq(rctx_err(t), -ETIMEDOUT);
	cr_assert_eq(rctx_cause(t), T1);
	rctx_release(t);
	t = rctx_with_timeout_cause(rctx_background(), 0, T2);
	cr_assert_eq(rctx_err(t), -ETIMEDOUT);
	cr_assert_eq(rctx_cause(t), T2);
	rctx_release(t);
}

/*
 * Wait until the runtime has dropped n more timers than it had in *a, each
 * removed from its heap or skipped as cancelled before it was armed: those
 * timers can never fire.
 */
static bool timers_dropped(const struct rctx_runtime_stats *a, uint64_t n)
{
	struct rctx_runtime_stats b;

	return WAIT_UNTIL((rctx_runtime_stats(&b),
			   b.timers_removed + b.timers_skipped ==
				   a->timers_removed + a->timers_skipped + n &&
			   b.timers_live == a->timers_live), TH_PATIENCE_MS);
}

/* The timeouts below are a minute long, so the cancels certainly come
 * first; that nothing changes afterwards is checked once the runtime has
 * dropped the timer, not after a sleep. */
Test(cause, timeout_with_cause_whose_parent_is_cancelled_first)
{
	struct rctx_runtime_stats a;
	rctx_runtime_stats(&a);
	rctx_t *p = rctx_with_cancel(rctx_background());
	rctx_t *t = rctx_with_timeout_cause(p, MS(60000), T1);
	cr_assert_eq(rctx_cancel_cause(p, C1), 1);
	cr_assert_eq(rctx_err(t), -ECANCELED);
	cr_assert_eq(rctx_cause(t), C1);
	cr_assert(timers_dropped(&a, 1), "the timer outlived the cancel");
	cr_assert_eq(rctx_err(t), -ECANCELED);
	cr_assert_eq(rctx_cause(t), C1);
	rctx_release(t);
	rctx_release(p);
}

Test(cause, timeout_with_cause_cancelled_directly)
{
	struct rctx_runtime_stats a;
	rctx_runtime_stats(&a);
	rctx_t *t = rctx_with_timeout_cause(rctx_background(), MS(60000), T1);
	cr_assert_eq(rctx_cancel(t), 1);
	cr_assert_eq(rctx_err(t), -ECANCELED);
	cr_assert_eq(rctx_cause(t), -ECANCELED, "a plain cancel is not the timeout's cause");
	cr_assert(timers_dropped(&a, 1), "the timer outlived the cancel");
	cr_assert_eq(rctx_cause(t), -ECANCELED);
	rctx_release(t);

	t = rctx_with_timeout_cause(rctx_background(), MS(60000), T1);
	cr_assert_eq(rctx_cancel_cause(t, C2), 1);
	cr_assert_eq(rctx_err(t), -ECANCELED);
	cr_assert_eq(rctx_cause(t), C2);
	rctx_release(t);
}

Test(cause, later_deadline_child_takes_the_parents_cause)
{
	/* the child's later deadline is never used (a plain cancel context, as
	 * Go): it ends through the parent, with the parent's cause */
	rctx_t *p = rctx_with_timeout_cause(rctx_background(), MS(10), T1);
	rctx_t *c = rctx_with_timeout_cause(p, MS(60000), T2);
	cr_assert_eq(rctx_wait(c, rctx_now() + MS(TH_PATIENCE_MS)), 0);
	cr_assert_eq(rctx_err(c), -ETIMEDOUT);
	cr_assert_eq(rctx_cause(c), T1);
	rctx_release(c);
	rctx_release(p);
}

Test(cause, earlier_deadline_child_has_its_own_cause)
{
	rctx_t *p = rctx_with_timeout_cause(rctx_background(), MS(60000), T1);
	rctx_t *c = rctx_with_timeout_cause(p, MS(5), T2);
	cr_assert_eq(rctx_wait(c, rctx_now() + MS(TH_PATIENCE_MS)), 0);
	cr_assert_eq(rctx_err(c), -ETIMEDOUT);
	cr_assert_eq(rctx_cause(c), T2);
	cr_assert_eq(rctx_err(p), 0);
	cr_assert_eq(rctx_cause(p), 0);
	rctx_release(c);
	rctx_release(p);
}

Test(cause, child_of_cancelled_parent_inherits_cause_at_creation)
{
	rctx_t *p = rctx_with_cancel(rctx_background());
	rctx_cancel_cause(p, C1);
	rctx_t *c = rctx_with_cancel(p);
	rctx_t *t = rctx_with_timeout_cause(p, MS(60000), T1);
	rctx_t *v = rctx_with_value(p, &key, NULL);
	cr_assert_eq(rctx_err(c), -ECANCELED);
	cr_assert_eq(rctx_cause(c), C1);
	cr_assert_eq(rctx_err(t), -ECANCELED);
	cr_assert_eq(rctx_cause(t), C1, "the parent's cause wins over the timeout's");
	cr_assert_eq(rctx_cause(v), C1);
	rctx_release(v);
	rctx_release(t);
	rctx_release(c);
	rctx_release(p);
}

Test(cause, without_cancel_has_no_cause)
{
	rctx_t *p = rctx_with_cancel(rctx_background());
	rctx_t *w = rctx_without_cancel(p);
	rctx_cancel_cause(p, C1);
	cr_assert_eq(rctx_cause(w), 0);
	cr_assert_eq(rctx_err(w), 0);
	rctx_release(w);
	rctx_release(p);
}

Test(cause, cause_is_final_once_err_is_set)
{
	rctx_t *p = rctx_with_cancel(rctx_background());
	rctx_t *c = rctx_with_cancel(p);
	rctx_cancel_cause(p, C1);
	/* whenever err is non-zero, the cause is already the final one */
	cr_assert_neq(rctx_err(c), 0);
	cr_assert_eq(rctx_cause(c), C1);
	rctx_cancel_cause(c, C2);
	rctx_cancel_cause(p, C2);
	cr_assert_eq(rctx_cause(c), C1);
	cr_assert_eq(rctx_cause(p), C1);
	rctx_release(c);
	rctx_release(p);
}
