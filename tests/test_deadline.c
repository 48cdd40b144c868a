/* Description: deadlines and timeouts: expiry with -ETIMEDOUT, deadlines in
 * the past or exactly now, children with later deadlines, cancelling before
 * the deadline (the timer never fires, checked with the runtime counters),
 * expiry never early and never stuck, and deadlines that fire while the
 * creating thread is blocked in a system call with no other thread of its
 * own. No verdict depends on how quickly the machine runs: every wait for
 * an expiry is bounded by TH_PATIENCE_MS and ends as soon as it happens. */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <unistd.h>

#include "ringctx.h"
#include "helpers.h"

TestSuite(deadline, .timeout = 60);

static struct rctx_runtime_stats stats(void)
{
	struct rctx_runtime_stats st;
	cr_assert_eq(rctx_runtime_stats(&st), 0);
	return st;
}

/*
 * A context with a timeout of rel (or later) that reached the runtime, and in
 * *a the runtime counters from just before it was created. On a run so slow
 * that the deadline passed while the context was being created, it is done
 * at creation and no timer ends it: once the runtime is finished with it
 * (if it did expire it, it counted that before running later after-funcs),
 * try a ten times later deadline.
 */
static rctx_t *timer_context(int64_t rel, struct rctx_runtime_stats *a)
{
	for (;; rel *= 10) {
		cr_assert_leq(rel, MS(TH_PATIENCE_MS), "each deadline passed during its creation");
		*a = stats();
		rctx_t *c = rctx_with_timeout(rctx_background(), rel);
		cr_assert_not_null(c);
		if (!rctx_err(c))
			return c;
		rctx_release(c);
		cr_assert(th_afters_settle(), "the runtime never ran an after-func");
	}
}

Test(deadline, one_ms_deadline_ends_with_etimedout)
{
	int64_t dl = rctx_now() + MS(1);
	rctx_t *c = rctx_with_deadline(rctx_background(), dl);
	cr_assert_not_null(c);
	int64_t got = 0;
	cr_assert(rctx_deadline(c, &got));
	cr_assert_eq(got, dl);
	cr_assert_eq(rctx_wait(c, rctx_now() + MS(TH_PATIENCE_MS)), 0, "deadline never fired");
	cr_assert_geq(rctx_now(), dl, "done before its deadline");
	cr_assert_eq(rctx_err(c), -ETIMEDOUT);
	cr_assert_eq(rctx_cause(c), -ETIMEDOUT);
	cr_assert_eq(th_readable(rctx_done_fd(c), 0), 1);
	cr_assert_eq(rctx_cancel(c), 0, "already done");
	cr_assert_eq(rctx_err(c), -ETIMEDOUT, "error never changes");
	rctx_release(c);
}

Test(deadline, one_ms_timeout_ends_with_etimedout)
{
	int64_t before = rctx_now();
	rctx_t *c = rctx_with_timeout(rctx_background(), MS(1));
	int64_t after = rctx_now();
	int64_t dl;
	cr_assert(rctx_deadline(c, &dl));
	cr_assert_geq(dl, before + MS(1));
	cr_assert_leq(dl, after + MS(1));
	int fd = rctx_done_fd(c);
	cr_assert_eq(th_readable(fd, TH_PATIENCE_MS), 1);
	cr_assert_eq(rctx_err(c), -ETIMEDOUT);
	rctx_release(c);
}

Test(deadline, past_deadline_is_done_at_creation)
{
	int64_t dl = rctx_now() - MS(1000);
	rctx_t *c = rctx_with_deadline(rctx_background(), dl);
	cr_assert_not_null(c);
	cr_assert_eq(rctx_err(c), -ETIMEDOUT, "must be done at creation");
	cr_assert_eq(rctx_cause(c), -ETIMEDOUT);
	int64_t got = 0;
	cr_assert(rctx_deadline(c, &got), "deadline still reported");
	cr_assert_eq(got, dl);
	cr_assert_eq(th_readable(rctx_done_fd(c), 0), 1);
	rctx_release(c);

	c = rctx_with_deadline(rctx_background(), INT64_MIN);
	cr_assert_not_null(c);
	cr_assert_eq(rctx_err(c), -ETIMEDOUT);
	rctx_release(c);
}

Test(deadline, deadline_exactly_now_is_done_at_creation)
{
	int64_t dl = rctx_now();
	rctx_t *c = rctx_with_deadline(rctx_background(), dl);
	cr_assert_eq(rctx_err(c), -ETIMEDOUT);
	int64_t got = 0;
	cr_assert(rctx_deadline(c, &got));
	cr_assert_eq(got, dl);
	rctx_release(c);

	int64_t before = rctx_now();
	c = rctx_with_timeout(rctx_background(), 0);
	cr_assert_eq(rctx_err(c), -ETIMEDOUT);
	cr_assert(rctx_deadline(c, &got));
	cr_assert_geq(got, before);
	cr_assert_leq(got, rctx_now());
	rctx_release(c);
}

Test(deadline, done_at_creation_arms_no_timer)
{
	struct rctx_runtime_stats a = stats();
	rctx_t *c = rctx_with_deadline(rctx_background(), rctx_now() - MS(5));
	cr_assert_eq(rctx_err(c), -ETIMEDOUT);
	rctx_release(c);
	th_sleep_ms(20); /* a slow run can only make this check miss, not fail */
	struct rctx_runtime_stats b = stats();
	cr_assert_eq(b.timers_fired, a.timers_fired, "an expired deadline needs no timer");
	cr_assert_eq(b.timers_armed, a.timers_armed);
}

Test(deadline, child_with_later_deadline_reports_parents)
{
	int64_t pdl = rctx_now() + MS(40);
	rctx_t *p = rctx_with_deadline(rctx_background(), pdl);
	rctx_t *c = rctx_with_deadline(p, pdl + MS(60000));
	rctx_t *t = rctx_with_timeout(p, MS(60000));
	int64_t got = 0;
	cr_assert(rctx_deadline(c, &got));
	cr_assert_eq(got, pdl, "child must report the parent's earlier deadline");
	cr_assert(rctx_deadline(t, &got));
	cr_assert_eq(got, pdl);
	cr_assert_eq(rctx_wait(c, rctx_now() + MS(TH_PATIENCE_MS)), 0);
	cr_assert_eq(rctx_err(c), -ETIMEDOUT, "ends with the parent's error");
	cr_assert_eq(rctx_err(t), -ETIMEDOUT);
	cr_assert_eq(rctx_err(p), -ETIMEDOUT);
	cr_assert_geq(rctx_now(), pdl);
	rctx_release(t);
	rctx_release(c);
	rctx_release(p);
}

Test(deadline, child_with_later_deadline_ends_with_parents_cancel)
{
	int64_t pdl = rctx_now() + MS(60000);
	rctx_t *p = rctx_with_deadline(rctx_background(), pdl);
	rctx_t *v = rctx_with_value(p, &pdl, NULL);
	rctx_t *c = rctx_with_deadline(v, pdl + MS(60000));
	int64_t got;
	cr_assert(rctx_deadline(c, &got));
	cr_assert_eq(got, pdl);
	cr_assert(rctx_deadline(v, &got), "value ctx reports the ancestor's deadline");
	cr_assert_eq(got, pdl);
	rctx_cancel(p);
	cr_assert_eq(rctx_err(c), -ECANCELED);
	rctx_release(c);
	rctx_release(v);
	rctx_release(p);
}

Test(deadline, child_with_earlier_deadline_reports_its_own)
{
	int64_t pdl = rctx_now() + MS(60000);
	rctx_t *p = rctx_with_deadline(rctx_background(), pdl);
	int64_t cdl = rctx_now() + MS(20);
	rctx_t *c = rctx_with_deadline(p, cdl);
	int64_t got;
	cr_assert(rctx_deadline(c, &got));
	cr_assert_eq(got, cdl);
	cr_assert_eq(rctx_wait(c, rctx_now() + MS(TH_PATIENCE_MS)), 0);
	cr_assert_eq(rctx_err(c), -ETIMEDOUT);
	cr_assert_eq(rctx_err(p), 0, "child's expiry must not touch the parent");
	cr_assert(rctx_deadline(p, &got));
	cr_assert_eq(got, pdl);
	rctx_release(c);
	rctx_release(p);
}

static bool timer_dropped(const struct rctx_runtime_stats *a, struct rctx_runtime_stats *b)
{
	*b = stats();
	return b->timers_removed + b->timers_skipped == a->timers_removed + a->timers_skipped + 1 &&
	       b->timers_live == a->timers_live;
}

Test(deadline, cancel_before_deadline_gives_ecanceled_and_timer_never_fires)
{
	/* The deadline is a minute away: the cancel certainly comes first. */
	struct rctx_runtime_stats a = stats(), b;
	rctx_t *c = rctx_with_deadline(rctx_background(), rctx_now() + MS(60000));
	/* let the runtime arm it: cancel an armed timer, not a queued one */
	cr_assert(WAIT_UNTIL((b = stats()).timers_live == a.timers_live + 1, TH_PATIENCE_MS));
	cr_assert_eq(rctx_cancel(c), 1);
	cr_assert_eq(rctx_err(c), -ECANCELED);
	cr_assert_eq(rctx_cause(c), -ECANCELED);
	/* the runtime drops the timer: it can never fire now */
	cr_assert(WAIT_UNTIL(timer_dropped(&a, &b), TH_PATIENCE_MS), "cancelled timer still live");
	cr_assert_eq(b.timers_removed, a.timers_removed + 1, "armed timer not removed");
	cr_assert_eq(b.timers_fired, a.timers_fired, "cancelled timer fired");
	cr_assert_eq(rctx_err(c), -ECANCELED);
	cr_assert_eq(rctx_cause(c), -ECANCELED);
	rctx_release(c);
}

/*
 * A deadline context cancelled before its deadline, which is returned in *dl.
 * The cancel normally wins by far; a run slow enough to lose the race (the
 * context then ended with -ETIMEDOUT) tries again with a ten times later
 * deadline.
 */
static rctx_t *cancelled_before_its_deadline(int64_t *dl)
{
	for (int64_t rel = MS(20); rel <= MS(TH_PATIENCE_MS); rel *= 10) {
		rctx_t *c = rctx_with_timeout(rctx_background(), rel);

		cr_assert_not_null(c);
		cr_assert(rctx_deadline(c, dl));
		if (rctx_cancel(c) == 1)
			return c;
		cr_assert_eq(rctx_err(c), -ETIMEDOUT, "a cancel lost to anything but the deadline");
		rctx_release(c);
	}
	cr_assert_fail("no cancel came before its deadline");
	return NULL;
}

Test(deadline, cancelled_context_stays_cancelled_once_its_deadline_passed)
{
	int64_t dl;
	rctx_t *c = cancelled_before_its_deadline(&dl);
	/* A later sentinel deadline expires only once the runtime has passed
	 * every earlier one, c's included; then no timer is left at all. */
	rctx_t *s = rctx_with_deadline(rctx_background(), dl + 1);

	cr_assert_eq(rctx_err(c), -ECANCELED);
	cr_assert_eq(rctx_wait(s, rctx_now() + MS(TH_PATIENCE_MS)), 0, "sentinel never fired");
	cr_assert_eq(rctx_err(s), -ETIMEDOUT);
	cr_assert_geq(rctx_now(), dl);
	cr_assert(WAIT_UNTIL(stats().timers_live == 0, TH_PATIENCE_MS), "a timer stayed live");
	cr_assert_eq(rctx_err(c), -ECANCELED, "err must stay -ECANCELED after the deadline");
	cr_assert_eq(rctx_cause(c), -ECANCELED);
	rctx_release(s);
	rctx_release(c);
}

Test(deadline, expired_deadline_counts_as_fired)
{
	struct rctx_runtime_stats a;
	rctx_t *c = timer_context(MS(2), &a);
	/* do not touch c until the runtime reports the expiry: the timer alone
	 * must end it */
	struct rctx_runtime_stats b;
	cr_assert(WAIT_UNTIL((b = stats()).timers_fired == a.timers_fired + 1, TH_PATIENCE_MS),
		  "timers_fired %llu, expected %llu", (unsigned long long)b.timers_fired,
		  (unsigned long long)a.timers_fired + 1);
	cr_assert_eq(rctx_err(c), -ETIMEDOUT);
	cr_assert_geq(b.timers_armed, a.timers_armed + 1);
	th_sleep_ms(10); /* a slow run can only make this check miss, not fail */
	cr_assert_eq(stats().timers_fired, a.timers_fired + 1, "fired twice");
	cr_assert(b.running);
	rctx_release(c);
}

/* Lateness is measured by bench_latency; here only an expiry stuck for
 * longer than any slow run could explain fails. */
Test(deadline, expiry_is_never_early_and_lateness_is_bounded)
{
	enum { N = 30 };
	int64_t worst = 0;
	for (int i = 0; i < N; i++) {
		int64_t rel = MS(1 + i % 7);
		rctx_t *c = rctx_with_timeout(rctx_background(), rel);
		int64_t dl;
		cr_assert(rctx_deadline(c, &dl));
		cr_assert_eq(rctx_wait(c, rctx_now() + MS(TH_PATIENCE_MS)), 0);
		int64_t late = rctx_now() - dl;
		cr_assert_geq(late, 0, "context ended %lld ns before its deadline",
			      (long long)-late);
		cr_assert_eq(rctx_err(c), -ETIMEDOUT);
		if (late > worst)
			worst = late;
		rctx_release(c);
	}
	cr_assert_lt(worst, MS(TH_PATIENCE_MS), "a deadline fired %.3f ms late", worst / 1e6);
}

Test(deadline, fires_while_creator_blocks_in_poll_on_done_fd)
{
	/* The test thread creates the context and blocks in poll(2) at once; the
	 * test itself starts no thread: only the library's runtime can end it. */
	int64_t dl = rctx_now() + MS(30);
	rctx_t *c = rctx_with_deadline(rctx_background(), dl);
	int fd = rctx_done_fd(c);
	cr_assert_geq(fd, 0);
	struct pollfd p = { .fd = fd, .events = POLLIN };
	int r = poll(&p, 1, TH_PATIENCE_MS);
	int64_t t = rctx_now();
	cr_assert_eq(r, 1, "poll timed out: the deadline did not fire while blocked");
	cr_assert(p.revents & POLLIN);
	cr_assert_geq(t, dl);
	cr_assert_eq(rctx_err(c), -ETIMEDOUT);
	rctx_release(c);
}

static _Atomic int64_t fired_at;

static void record_time(void *arg)
{
	(void)arg;
	atomic_store(&fired_at, rctx_now());
}

Test(deadline, fires_while_creator_sleeps)
{
	/* An after-func timestamps the expiry: it must fall inside the creator's
	 * sleep, not at the first query after it. The creator sleeps in short
	 * nanosleeps, never touching the library, until the stamp appears. A
	 * run so slow that the deadline passed before the sleep began tries a
	 * ten times later one. */
	rctx_t *c;
	rctx_after_t *h;
	int64_t dl, t0;
	for (int64_t rel = MS(20);; rel *= 10) {
		cr_assert_leq(rel, MS(TH_PATIENCE_MS), "no deadline was ahead of the sleep");
		atomic_store(&fired_at, 0);
		c = rctx_with_timeout(rctx_background(), rel);
		h = rctx_after_func(c, record_time, NULL);
		cr_assert_not_null(h);
		cr_assert(rctx_deadline(c, &dl));
		t0 = th_now_ns();
		if (t0 < dl)
			break;
		if (!rctx_after_stop(h)) /* let its stamp land before the next */
			cr_assert(WAIT_UNTIL(atomic_load(&fired_at), TH_PATIENCE_MS));
		rctx_after_release(h);
		rctx_release(c);
	}
	int64_t end = t0 + MS(TH_PATIENCE_MS);
	while (!atomic_load(&fired_at) && th_now_ns() < end)
		th_sleep_ms(1);
	int64_t t1 = th_now_ns();
	int64_t f = atomic_load(&fired_at);
	cr_assert_neq(f, 0, "deadline did not fire while the creator slept");
	cr_assert_geq(f, dl, "fired before its deadline");
	cr_assert_gt(f, t0);
	cr_assert_leq(f, t1);
	cr_assert_eq(rctx_err(c), -ETIMEDOUT);
	rctx_after_release(h);
	rctx_release(c);
}

Test(deadline, fires_while_creator_blocks_on_an_empty_pipe)
{
	int pfd[2];
	cr_assert_eq(pipe(pfd), 0);
	struct rctx_runtime_stats a, b;
	rctx_t *c = timer_context(MS(20), &a);
	int dfd = rctx_done_fd(c);
	/* block on an empty pipe (not on the done fd, which cannot be what
	 * wakes us), 10 ms at a time, without touching the context meanwhile,
	 * until the runtime reports the expiry */
	struct pollfd p = { .fd = pfd[0], .events = POLLIN };
	int64_t end = th_now_ns() + MS(TH_PATIENCE_MS);
	do
		cr_assert_eq(poll(&p, 1, 10), 0, "empty pipe must time out");
	while ((b = stats()).timers_fired == a.timers_fired && th_now_ns() < end);
	cr_assert_eq(b.timers_fired, a.timers_fired + 1,
		     "timer must have fired while the thread was blocked");
	cr_assert_eq(th_readable(dfd, 0), 1);
	cr_assert_eq(rctx_err(c), -ETIMEDOUT);
	rctx_release(c);
	close(pfd[0]);
	close(pfd[1]);
}

Test(deadline, many_timers_all_fire)
{
	enum { N = 500 };
	rctx_t *c[N];
	unsigned seed = 42;
	int64_t latest = 0;
	for (int i = 0; i < N; i++) {
		c[i] = rctx_with_timeout(rctx_background(), MS(1 + rand_r(&seed) % 50));
		cr_assert_not_null(c[i]);
		int64_t d;
		rctx_deadline(c[i], &d);
		if (d > latest)
			latest = d;
	}
	for (int i = 0; i < N; i++) {
		cr_assert_eq(rctx_wait(c[i], rctx_now() + MS(TH_PATIENCE_MS)), 0, "timer %d", i);
		cr_assert_eq(rctx_err(c[i]), -ETIMEDOUT);
	}
	cr_assert_lt(rctx_now() - latest, MS(TH_PATIENCE_MS));
	for (int i = 0; i < N; i++)
		rctx_release(c[i]);
}

Test(deadline, cancelled_timers_do_not_stay_live)
{
	enum { N = 200 };
	rctx_t *c[N];
	struct rctx_runtime_stats a = stats();
	for (int i = 0; i < N; i++)
		c[i] = rctx_with_timeout(rctx_background(), MS(60000));
	/* let the runtime arm them all: cancel armed timers, not queued ones */
	cr_assert(WAIT_UNTIL(stats().timers_live == a.timers_live + N, TH_PATIENCE_MS));
	for (int i = 0; i < N; i++)
		rctx_release(c[i]);
	cr_assert(WAIT_UNTIL(({ struct rctx_runtime_stats s_ = stats();
				 s_.timers_live == a.timers_live; }), TH_PATIENCE_MS),
		  "armed timers of cancelled contexts never completed");
	struct rctx_runtime_stats b = stats();
	cr_assert_eq(b.timers_fired, a.timers_fired);
	cr_assert_geq(b.timers_removed + b.timers_skipped,
		      a.timers_removed + a.timers_skipped + N,
		      "each cancelled timer must be removed or never armed");
}

static atomic_int unref_fired;
static void set_flag(void *arg) { atomic_store((atomic_int *)arg, 1); }

Test(deadline, pending_timer_keeps_an_unreferenced_ctx_alive)
{
	rctx_t *p = rctx_with_cancel(rctx_background());
	rctx_t *c = rctx_with_timeout(p, MS(15));
	rctx_t *gc = rctx_with_cancel(c);
	rctx_after_t *h = rctx_after_func(gc, set_flag, &unref_fired);
	rctx_unref(c);  /* not cancelled: the timer still holds it */
	cr_assert(WAIT_UNTIL(atomic_load(&unref_fired), TH_PATIENCE_MS));
	cr_assert_eq(rctx_err(gc), -ETIMEDOUT);
	cr_assert_eq(rctx_err(p), 0);
	rctx_after_release(h);
	rctx_release(gc);
	rctx_release(p);
}

Test(deadline, deadline_of_parent_under_already_expired_parent)
{
	rctx_t *p = rctx_with_timeout(rctx_background(), 0);
	rctx_t *c = rctx_with_timeout(p, MS(60000));
	cr_assert_eq(rctx_err(c), -ETIMEDOUT, "child of an expired parent is done");
	int64_t pd, cd;
	cr_assert(rctx_deadline(p, &pd));
	cr_assert(rctx_deadline(c, &cd));
	cr_assert_eq(cd, pd);
	rctx_release(c);
	rctx_release(p);
}
