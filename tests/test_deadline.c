/* Description: deadlines and timeouts: expiry with -ETIMEDOUT, deadlines in
 * the past or exactly now, children with later deadlines, cancelling before
 * the deadline (the timer never fires, checked with the runtime counters),
 * measured lateness, and deadlines that fire while the creating thread is
 * blocked in a system call with no other thread of its own. */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <unistd.h>

#include "ringctx.h"
#include "helpers.h"

TestSuite(deadline, .timeout = 20);

static struct rctx_runtime_stats stats(void)
{
	struct rctx_runtime_stats st;
	cr_assert_eq(rctx_runtime_stats(&st), 0);
	return st;
}

Test(deadline, one_ms_deadline_ends_with_etimedout)
{
	int64_t dl = rctx_now() + MS(1);
	rctx_t *c = rctx_with_deadline(rctx_background(), dl);
	cr_assert_not_null(c);
	int64_t got = 0;
	cr_assert(rctx_deadline(c, &got));
	cr_assert_eq(got, dl);
	cr_assert_eq(rctx_wait(c, rctx_now() + MS(5000)), 0, "deadline never fired");
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
	cr_assert_eq(th_readable(fd, 5000), 1);
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
	rctx_release(c);
	th_sleep_ms(20);
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
	cr_assert_eq(rctx_wait(c, rctx_now() + MS(5000)), 0);
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
	cr_assert_eq(rctx_wait(c, rctx_now() + MS(5000)), 0);
	cr_assert_eq(rctx_err(c), -ETIMEDOUT);
	cr_assert_eq(rctx_err(p), 0, "child's expiry must not touch the parent");
	cr_assert(rctx_deadline(p, &got));
	cr_assert_eq(got, pdl);
	rctx_release(c);
	rctx_release(p);
}

Test(deadline, cancel_before_deadline_gives_ecanceled_and_timer_never_fires)
{
	struct rctx_runtime_stats a = stats();
	int64_t dl = rctx_now() + MS(40);
	rctx_t *c = rctx_with_deadline(rctx_background(), dl);
	th_sleep_ms(5);  /* let the runtime arm it */
	cr_assert_eq(rctx_cancel(c), 1);
	cr_assert_eq(rctx_err(c), -ECANCELED);
	cr_assert_eq(rctx_cause(c), -ECANCELED);
	/* well past the deadline */
	th_sleep_ms(100);
	cr_assert_geq(rctx_now(), dl + MS(50));
	cr_assert_eq(rctx_err(c), -ECANCELED, "err must stay -ECANCELED after the deadline");
	cr_assert_eq(rctx_cause(c), -ECANCELED);
	struct rctx_runtime_stats b = stats();
	cr_assert_eq(b.timers_fired, a.timers_fired, "cancelled timer fired");
	cr_assert_eq(b.timers_live, a.timers_live, "timer still live: %llu",
		     (unsigned long long)b.timers_live);
	rctx_release(c);
}

Test(deadline, expired_deadline_counts_as_fired)
{
	struct rctx_runtime_stats a = stats();
	rctx_t *c = rctx_with_timeout(rctx_background(), MS(2));
	/* do not touch c until the runtime reports the expiry: the timer alone
	 * must end it */
	struct rctx_runtime_stats b;
	cr_assert(WAIT_UNTIL((b = stats()).timers_fired == a.timers_fired + 1, 3000),
		  "timers_fired %llu, expected %llu", (unsigned long long)b.timers_fired,
		  (unsigned long long)a.timers_fired + 1);
	cr_assert_eq(rctx_err(c), -ETIMEDOUT);
	th_sleep_ms(10);
	cr_assert_eq(stats().timers_fired, a.timers_fired + 1, "fired twice");
	cr_assert_geq(b.timers_armed, a.timers_armed + 1);
	cr_assert(b.running);
	rctx_release(c);
}

Test(deadline, expiry_is_never_early_and_lateness_is_bounded)
{
	enum { N = 30 };
	int64_t worst = 0, sum = 0;
	for (int i = 0; i < N; i++) {
		int64_t rel = MS(1 + i % 7);
		rctx_t *c = rctx_with_timeout(rctx_background(), rel);
		int64_t dl;
		cr_assert(rctx_deadline(c, &dl));
		cr_assert_eq(rctx_wait(c, rctx_now() + MS(5000)), 0);
		int64_t late = rctx_now() - dl;
		cr_assert_geq(late, 0, "context ended %lld ns before its deadline",
			      (long long)-late);
		cr_assert_eq(rctx_err(c), -ETIMEDOUT);
		if (late > worst)
			worst = late;
		sum += late;
		rctx_release(c);
	}
	fprintf(stderr, "deadline lateness over %d timers: mean %.3f ms, max %.3f ms\n", N,
		sum / (double)N / 1e6, worst / 1e6);
	cr_assert_lt(worst, MS(50), "a deadline fired %.3f ms late", worst / 1e6);
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
	int r = poll(&p, 1, 3000);
	int64_t t = rctx_now();
	cr_assert_eq(r, 1, "poll timed out: the deadline did not fire while blocked");
	cr_assert(p.revents & POLLIN);
	cr_assert_geq(t, dl);
	cr_assert_lt(t - dl, MS(500), "fired %.3f ms late", (t - dl) / 1e6);
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
	 * nanosleep, not at the first query after it. */
	rctx_t *c = rctx_with_timeout(rctx_background(), MS(20));
	rctx_after_t *h = rctx_after_func(c, record_time, NULL);
	cr_assert_not_null(h);
	int64_t t0 = rctx_now();
	struct timespec ts = { 0, 300 * 1000000L };
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
	int64_t t1 = rctx_now();
	int64_t f = atomic_load(&fired_at);
	cr_assert_neq(f, 0, "deadline did not fire during a 300 ms sleep");
	cr_assert_gt(f, t0);
	cr_assert_lt(f, t1);
	cr_assert_eq(rctx_err(c), -ETIMEDOUT);
	rctx_after_release(h);
	rctx_release(c);
}

Test(deadline, fires_while_creator_blocks_on_an_empty_pipe)
{
	int pfd[2];
	cr_assert_eq(pipe(pfd), 0);
	struct rctx_runtime_stats a = stats();
	rctx_t *c = rctx_with_timeout(rctx_background(), MS(20));
	int dfd = rctx_done_fd(c);
	/* block 200 ms on an empty pipe (not on the done fd, which cannot be
	 * what wakes us), without touching the context meanwhile */
	struct pollfd p = { .fd = pfd[0], .events = POLLIN };
	cr_assert_eq(poll(&p, 1, 200), 0, "empty pipe must time out");
	struct rctx_runtime_stats b = stats();
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
		cr_assert_eq(rctx_wait(c[i], rctx_now() + MS(5000)), 0, "timer %d", i);
		cr_assert_eq(rctx_err(c[i]), -ETIMEDOUT);
	}
	cr_assert_lt(rctx_now() - latest, MS(1000));
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
	th_sleep_ms(10);
	for (int i = 0; i < N; i++)
		rctx_release(c[i]);
	cr_assert(WAIT_UNTIL(({ struct rctx_runtime_stats s_ = stats();
				 s_.timers_live == a.timers_live; }), 3000),
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
	cr_assert(WAIT_UNTIL(atomic_load(&unref_fired), 5000));
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
