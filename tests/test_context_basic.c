/* Description: basic context behaviour: the background and TODO roots,
 * rctx_with_cancel and rctx_cancel, formatting, documented error returns for
 * invalid input (NULL parent, negative or overflowing timeout, non-cancellable
 * contexts), reference counting and release, the done fd (poll readiness and
 * -ENOENT for contexts that can never be done), and rctx_wait. */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "ringctx.h"
#include "helpers.h"

TestSuite(context_basic, .timeout = 60);

static int key_a, key_b;

static char *fmt(rctx_t *ctx, char *buf, size_t len)
{
	int n = rctx_format(ctx, buf, len);
	cr_assert_geq(n, 0, "rctx_format failed: %d", n);
	cr_assert_lt((size_t)n, len, "description truncated (%d bytes)", n);
	return buf;
}

/* ---- roots ---------------------------------------------------------------- */

Test(context_basic, background_is_never_done_and_has_nothing)
{
	rctx_t *bg = rctx_background();
	int64_t d = 42;
	cr_assert_not_null(bg);
	cr_assert_eq(rctx_background(), bg, "background must be one static object");
	cr_assert_eq(rctx_err(bg), 0);
	cr_assert_eq(rctx_cause(bg), 0);
	cr_assert_not(rctx_deadline(bg, &d));
	cr_assert_not(rctx_deadline(bg, NULL));
	cr_assert_null(rctx_value(bg, &key_a));
	cr_assert_eq(rctx_done_fd(bg), -ENOENT);
	cr_assert_eq(rctx_wait(bg, rctx_now() + MS(5)), -EAGAIN);
	cr_assert_eq(rctx_err(bg), 0);
}

Test(context_basic, todo_is_never_done_and_has_nothing)
{
	rctx_t *todo = rctx_todo();
	cr_assert_not_null(todo);
	cr_assert_eq(rctx_todo(), todo);
	cr_assert_eq(rctx_err(todo), 0);
	cr_assert_eq(rctx_cause(todo), 0);
	cr_assert_not(rctx_deadline(todo, NULL));
	cr_assert_null(rctx_value(todo, &key_a));
	cr_assert_eq(rctx_done_fd(todo), -ENOENT);
}

Test(context_basic, background_and_todo_format)
{
	char buf[128];
	cr_assert_str_eq(fmt(rctx_background(), buf, sizeof buf), "context.Background");
	cr_assert_str_eq(fmt(rctx_todo(), buf, sizeof buf), "context.TODO");
}

Test(context_basic, roots_ignore_ref_unref_release)
{
	rctx_t *bg = rctx_background(), *todo = rctx_todo();
	for (int i = 0; i < 10; i++) {
		cr_assert_eq(rctx_ref(bg), bg);
		rctx_unref(bg);
		rctx_unref(bg);
		rctx_release(bg);
		cr_assert_eq(rctx_ref(todo), todo);
		rctx_unref(todo);
		rctx_release(todo);
	}
	cr_assert_eq(rctx_err(bg), 0);
	cr_assert_eq(rctx_err(todo), 0);
	/* still usable as a parent */
	rctx_t *c = rctx_with_cancel(bg);
	cr_assert_not_null(c);
	rctx_release(c);
}

Test(context_basic, cancel_of_non_cancellable_is_einval)
{
	cr_assert_eq(rctx_cancel(rctx_background()), -EINVAL);
	cr_assert_eq(rctx_cancel(rctx_todo()), -EINVAL);
	cr_assert_eq(rctx_cancel_cause(rctx_background(), -EPIPE), -EINVAL);
	cr_assert_eq(rctx_cancel(NULL), -EINVAL);
	cr_assert_eq(rctx_cancel_cause(NULL, -EPIPE), -EINVAL);

	rctx_t *p = rctx_with_cancel(rctx_background());
	rctx_t *v = rctx_with_value(p, &key_a, &key_b);
	rctx_t *w = rctx_without_cancel(p);
	cr_assert_not_null(v);
	cr_assert_not_null(w);
	cr_assert_eq(rctx_cancel(v), -EINVAL, "value contexts are not cancellable");
	cr_assert_eq(rctx_cancel(w), -EINVAL, "without-cancel is not cancellable");
	cr_assert_eq(rctx_cancel_cause(v, -EPIPE), -EINVAL);
	/* a refused cancel on a value context must not have cancelled its parent */
	cr_assert_eq(rctx_err(p), 0);
	cr_assert_eq(rctx_err(v), 0);
	cr_assert_eq(rctx_err(rctx_background()), 0);
	rctx_release(w);
	rctx_release(v);
	rctx_release(p);
}

/* ---- with_cancel ------------------------------------------------------------ */

Test(context_basic, with_cancel_formats_as_go)
{
	char buf[128];
	rctx_t *c = rctx_with_cancel(rctx_background());
	rctx_t *t = rctx_with_cancel(rctx_todo());
	cr_assert_str_eq(fmt(c, buf, sizeof buf), "context.Background.WithCancel");
	cr_assert_str_eq(fmt(t, buf, sizeof buf), "context.TODO.WithCancel");
	rctx_t *cc = rctx_with_cancel(c);
	cr_assert_str_eq(fmt(cc, buf, sizeof buf),
			 "context.Background.WithCancel.WithCancel");
	rctx_release(cc);
	rctx_release(t);
	rctx_release(c);
}

Test(context_basic, with_cancel_is_live_until_cancelled)
{
	rctx_t *c = rctx_with_cancel(rctx_background());
	cr_assert_not_null(c);
	cr_assert_eq(rctx_err(c), 0);
	cr_assert_eq(rctx_cause(c), 0);
	cr_assert_not(rctx_deadline(c, NULL));
	int fd = rctx_done_fd(c);
	cr_assert_geq(fd, 0);
	cr_assert_eq(th_readable(fd, 0), 0, "done fd readable before cancel");

	cr_assert_eq(rctx_cancel(c), 1, "first cancel ends the context");
	cr_assert_eq(rctx_err(c), -ECANCELED);
	cr_assert_eq(rctx_cause(c), -ECANCELED);
	cr_assert_eq(th_readable(fd, 0), 1, "done fd not readable after cancel");
	cr_assert_eq(rctx_cancel(c), 0, "second cancel is a no-op");
	cr_assert_eq(rctx_cancel_cause(c, -EPIPE), 0);
	cr_assert_eq(rctx_err(c), -ECANCELED);
	cr_assert_eq(rctx_cause(c), -ECANCELED);
	cr_assert_eq(th_readable(fd, 0), 1, "done fd must stay readable");
	rctx_release(c);
}

Test(context_basic, cancel_reaches_children_through_values_synchronously)
{
	rctx_t *p = rctx_with_cancel(rctx_background());
	rctx_t *v1 = rctx_with_value(p, &key_a, NULL);
	rctx_t *v2 = rctx_with_value(v1, &key_b, NULL);
	rctx_t *c = rctx_with_cancel(v2);
	rctx_t *gc = rctx_with_cancel(c);
	int fd_c = rctx_done_fd(c), fd_gc = rctx_done_fd(gc), fd_v2 = rctx_done_fd(v2);
	cr_assert_geq(fd_c, 0);
	cr_assert_geq(fd_gc, 0);
	cr_assert_eq(fd_v2, rctx_done_fd(p), "value context uses its ancestor's fd");
	cr_assert_eq(rctx_err(gc), 0);

	cr_assert_eq(rctx_cancel(p), 1);
	/* no waiting: everything is done when rctx_cancel returns */
	cr_assert_eq(rctx_err(v1), -ECANCELED);
	cr_assert_eq(rctx_err(v2), -ECANCELED);
	cr_assert_eq(rctx_err(c), -ECANCELED);
	cr_assert_eq(rctx_err(gc), -ECANCELED);
	cr_assert_eq(th_readable(fd_c, 0), 1);
	cr_assert_eq(th_readable(fd_gc, 0), 1);
	cr_assert_eq(th_readable(fd_v2, 0), 1);
	cr_assert_eq(rctx_cancel(c), 0, "child already ended by the parent");
	cr_assert_eq(rctx_cancel(gc), 0);
	rctx_release(gc);
	rctx_release(c);
	rctx_release(v2);
	rctx_release(v1);
	rctx_release(p);
}

/* ---- invalid input -------------------------------------------------------- */

static void nop_fn(void *arg) { (void)arg; }

Test(context_basic, null_parent_returns_null)
{
	cr_assert_null(rctx_with_cancel(NULL));
	cr_assert_null(rctx_with_deadline(NULL, rctx_now() + MS(100)));
	cr_assert_null(rctx_with_deadline_cause(NULL, rctx_now() + MS(100), -EPIPE));
	cr_assert_null(rctx_with_timeout(NULL, MS(100)));
	cr_assert_null(rctx_with_timeout_cause(NULL, MS(100), -EPIPE));
	cr_assert_null(rctx_with_value(NULL, &key_a, &key_b));
	cr_assert_null(rctx_without_cancel(NULL));
}

Test(context_basic, null_key_returns_null)
{
	cr_assert_null(rctx_with_value(rctx_background(), NULL, &key_b));
	rctx_t *c = rctx_with_cancel(rctx_background());
	cr_assert_null(rctx_with_value(c, NULL, NULL));
	cr_assert_null(rctx_value(c, NULL));
	rctx_release(c);
}

Test(context_basic, negative_timeout_returns_null)
{
	cr_assert_null(rctx_with_timeout(rctx_background(), -1));
	cr_assert_null(rctx_with_timeout(rctx_background(), INT64_MIN));
	cr_assert_null(rctx_with_timeout_cause(rctx_background(), -MS(1), -EPIPE));
}

Test(context_basic, overflowing_timeout_returns_null)
{
	cr_assert_null(rctx_with_timeout(rctx_background(), INT64_MAX));
	cr_assert_null(rctx_with_timeout(rctx_background(), INT64_MAX - 1));
	cr_assert_null(rctx_with_timeout_cause(rctx_background(), INT64_MAX, -EPIPE));
	/* a large but representable timeout is fine */
	rctx_t *c = rctx_with_timeout(rctx_background(), 3600LL * 1000000000LL);
	cr_assert_not_null(c);
	cr_assert_eq(rctx_err(c), 0);
	rctx_release(c);
}

Test(context_basic, zero_timeout_is_valid_and_done)
{
	rctx_t *c = rctx_with_timeout(rctx_background(), 0);
	cr_assert_not_null(c, "rel_ns == 0 is valid");
	cr_assert_eq(rctx_err(c), -ETIMEDOUT);
	rctx_release(c);
}

Test(context_basic, queries_on_null_return_documented_values)
{
	int64_t d = 7;
	char buf[8] = "xxxxxxx";
	cr_assert_eq(rctx_err(NULL), -EINVAL);
	cr_assert_eq(rctx_cause(NULL), -EINVAL);
	cr_assert_not(rctx_deadline(NULL, &d));
	cr_assert_null(rctx_value(NULL, &key_a));
	cr_assert_eq(rctx_done_fd(NULL), -EINVAL);
	cr_assert_eq(rctx_wait(NULL, RCTX_FOREVER), -EINVAL);
	cr_assert_eq(rctx_format(NULL, buf, sizeof buf), -EINVAL);
	cr_assert_eq(rctx_format(rctx_background(), NULL, 5), -EINVAL);
	cr_assert_null(rctx_ref(NULL));
	rctx_unref(NULL);
	rctx_release(NULL);
	cr_assert_null(rctx_after_func(NULL, nop_fn, NULL));
	cr_assert_null(rctx_after_func(rctx_background(), NULL, NULL));
	cr_assert_not(rctx_after_stop(NULL));
	rctx_after_release(NULL);
	cr_assert_eq(rctx_runtime_stats(NULL), -EINVAL);
}

/* A NULL from a constructor says why in errno; nothing else touches it. */
Test(context_basic, errno_is_set_only_by_a_null_return)
{
	errno = 12345;
	cr_assert_null(rctx_with_cancel(NULL));
	cr_assert_eq(errno, EINVAL);
	errno = 12345;
	cr_assert_null(rctx_with_timeout(rctx_background(), -1));
	cr_assert_eq(errno, EINVAL);
	errno = 12345;
	cr_assert_eq(rctx_cancel(rctx_background()), -EINVAL);
	cr_assert_eq(rctx_err(NULL), -EINVAL);
	cr_assert_eq(rctx_done_fd(rctx_background()), -ENOENT);
	cr_assert_eq(rctx_wait(rctx_background(), RCTX_FOREVER), -EDEADLK);
	rctx_t *c = rctx_with_cancel(rctx_background());
	cr_assert_geq(rctx_done_fd(c), 0);
	cr_assert_eq(rctx_wait(c, rctx_now() + MS(2)), -EAGAIN);
	rctx_cancel(c);
	rctx_release(c);
	cr_assert_eq(errno, 12345, "errno changed to %d", errno);
}

/* ---- format ---------------------------------------------------------------- */

Test(context_basic, format_truncates_like_snprintf)
{
	char full[128], small[10];
	rctx_t *c = rctx_with_cancel(rctx_background());
	const char *want = "context.Background.WithCancel";
	int n = rctx_format(c, full, sizeof full);
	cr_assert_eq(n, (int)strlen(want));
	cr_assert_str_eq(full, want);

	memset(small, 'X', sizeof small);
	cr_assert_eq(rctx_format(c, small, sizeof small), n, "returns the full length");
	cr_assert_eq(small[sizeof small - 1], '\0', "always NUL-terminated");
	cr_assert_eq(strncmp(small, want, sizeof small - 1), 0);

	cr_assert_eq(rctx_format(c, NULL, 0), n, "NULL buf with len 0 measures");
	char one = 'X';
	cr_assert_eq(rctx_format(c, &one, 1), n);
	cr_assert_eq(one, '\0');
	char untouched = 'X';
	cr_assert_eq(rctx_format(c, &untouched, 0), n);
	cr_assert_eq(untouched, 'X', "len 0 must not write");
	rctx_release(c);
}

/* ---- references ------------------------------------------------------------ */

Test(context_basic, ref_returns_ctx_and_keeps_it_alive)
{
	rctx_t *c = rctx_with_cancel(rctx_background());
	cr_assert_eq(rctx_ref(c), c);
	cr_assert_eq(rctx_ref(c), c);
	rctx_unref(c);
	rctx_unref(c);
	/* still one reference left: fully usable */
	cr_assert_eq(rctx_err(c), 0);
	cr_assert_eq(rctx_cancel(c), 1);
	cr_assert_eq(rctx_err(c), -ECANCELED);
	rctx_unref(c);
}

Test(context_basic, release_cancels_then_unrefs)
{
	rctx_t *c = rctx_with_cancel(rctx_background());
	rctx_t *child = rctx_with_cancel(c);
	rctx_ref(c);
	rctx_release(c);  /* the creator's "defer cancel()" */
	cr_assert_eq(rctx_err(c), -ECANCELED, "release must cancel");
	cr_assert_eq(rctx_err(child), -ECANCELED, "release cancels the subtree");
	cr_assert_eq(rctx_cancel(c), 0, "already done");
	rctx_unref(c);
	rctx_release(child);
}

Test(context_basic, release_of_done_ctx_keeps_its_error)
{
	rctx_t *c = rctx_with_timeout(rctx_background(), 0);
	rctx_ref(c);
	rctx_release(c);
	cr_assert_eq(rctx_err(c), -ETIMEDOUT, "release must not overwrite the error");
	rctx_unref(c);
}

Test(context_basic, child_keeps_dropped_parent_chain_alive)
{
	rctx_t *p = rctx_with_cancel(rctx_background());
	rctx_t *v = rctx_with_value(p, &key_a, &key_b);
	rctx_t *c = rctx_with_cancel(v);
	rctx_unref(v);
	rctx_unref(p);  /* p is not cancelled: c's only link to it */
	cr_assert_eq(rctx_value(c, &key_a), &key_b, "value must survive through the chain");
	cr_assert_eq(rctx_err(c), 0);
	char buf[256];
	int n = rctx_format(c, buf, sizeof buf);
	cr_assert_gt(n, 0);
	cr_assert_eq(strncmp(buf, "context.Background.WithCancel.WithValue(", 40), 0,
		     "got %s", buf);
	cr_assert_eq(rctx_cancel(c), 1);
	rctx_unref(c);
}

/* ---- done fd ------------------------------------------------------------- */

Test(context_basic, done_fd_is_stable_and_becomes_readable)
{
	rctx_t *c = rctx_with_cancel(rctx_background());
	int fd = rctx_done_fd(c);
	cr_assert_geq(fd, 0, "done_fd: %d", fd);
	cr_assert_eq(rctx_done_fd(c), fd, "same fd on every call");
	cr_assert_eq(th_readable(fd, 20), 0, "readable before cancel");
	rctx_cancel(c);
	cr_assert_eq(th_readable(fd, 0), 1);
	cr_assert_eq(th_readable(fd, 0), 1, "stays readable");
	cr_assert_eq(rctx_done_fd(c), fd);
	rctx_release(c);
}

Test(context_basic, done_fd_created_after_cancel_is_readable)
{
	rctx_t *c = rctx_with_cancel(rctx_background());
	rctx_cancel(c);
	int fd = rctx_done_fd(c);
	cr_assert_geq(fd, 0);
	cr_assert_eq(th_readable(fd, 0), 1);
	rctx_release(c);

	rctx_t *t = rctx_with_timeout(rctx_background(), 0);
	fd = rctx_done_fd(t);
	cr_assert_geq(fd, 0);
	cr_assert_eq(th_readable(fd, 0), 1, "done-at-creation ctx: fd readable");
	rctx_release(t);
}

Test(context_basic, done_fd_enoent_for_never_done_contexts)
{
	rctx_t *w = rctx_without_cancel(rctx_background());
	rctx_t *vbg = rctx_with_value(rctx_background(), &key_a, NULL);
	rctx_t *p = rctx_with_cancel(rctx_background());
	rctx_t *wp = rctx_without_cancel(p);
	rctx_t *vwp = rctx_with_value(wp, &key_b, NULL);
	cr_assert_eq(rctx_done_fd(rctx_background()), -ENOENT);
	cr_assert_eq(rctx_done_fd(rctx_todo()), -ENOENT);
	cr_assert_eq(rctx_done_fd(w), -ENOENT);
	cr_assert_eq(rctx_done_fd(vbg), -ENOENT);
	cr_assert_eq(rctx_done_fd(wp), -ENOENT, "without-cancel over a cancel ctx");
	cr_assert_eq(rctx_done_fd(vwp), -ENOENT);
	cr_assert_geq(rctx_done_fd(p), 0);
	rctx_release(vwp);
	rctx_release(wp);
	rctx_release(p);
	rctx_release(vbg);
	rctx_release(w);
}

static void *cancel_after_20ms(void *arg)
{
	th_sleep_ms(20);
	rctx_cancel(arg);
	return NULL;
}

Test(context_basic, done_fd_wakes_a_blocked_poll)
{
	rctx_t *c = rctx_with_cancel(rctx_background());
	int fd = rctx_done_fd(c);
	pthread_t th;
	pthread_create(&th, NULL, cancel_after_20ms, c);
	cr_assert_eq(th_readable(fd, TH_PATIENCE_MS), 1, "poll was not woken by the cancel");
	pthread_join(th, NULL);
	cr_assert_eq(rctx_err(c), -ECANCELED);
	rctx_release(c);
}

/* ---- rctx_wait -------------------------------------------------------------- */

Test(context_basic, wait_returns_zero_once_done)
{
	rctx_t *c = rctx_with_cancel(rctx_background());
	rctx_cancel(c);
	cr_assert_eq(rctx_wait(c, RCTX_FOREVER), 0);
	cr_assert_eq(rctx_wait(c, 0), 0, "done wins over an expired deadline");
	rctx_t *v = rctx_with_value(c, &key_a, NULL);
	cr_assert_eq(rctx_wait(v, RCTX_FOREVER), 0, "value ctx waits on its ancestor");
	rctx_release(v);
	rctx_release(c);
}

Test(context_basic, wait_times_out_with_eagain)
{
	rctx_t *c = rctx_with_cancel(rctx_background());
	int64_t t0 = rctx_now();
	int64_t dl = t0 + MS(30);
	cr_assert_eq(rctx_wait(c, dl), -EAGAIN);
	int64_t t1 = rctx_now();
	cr_assert_geq(t1, dl, "returned %lld ns before its deadline", (long long)(dl - t1));
	cr_assert_lt(t1 - dl, MS(TH_PATIENCE_MS));
	cr_assert_eq(rctx_err(c), 0, "waiting must not cancel");
	cr_assert_eq(rctx_wait(c, t0 - MS(1)), -EAGAIN, "deadline in the past");
	rctx_release(c);
}

Test(context_basic, wait_on_never_done_forever_is_edeadlk)
{
	rctx_t *w = rctx_without_cancel(rctx_background());
	rctx_t *v = rctx_with_value(rctx_background(), &key_a, NULL);
	cr_assert_eq(rctx_wait(rctx_background(), RCTX_FOREVER), -EDEADLK);
	cr_assert_eq(rctx_wait(rctx_todo(), RCTX_FOREVER), -EDEADLK);
	cr_assert_eq(rctx_wait(w, RCTX_FOREVER), -EDEADLK);
	cr_assert_eq(rctx_wait(v, RCTX_FOREVER), -EDEADLK);
	/* with a finite deadline it is a plain timed wait */
	int64_t dl = rctx_now() + MS(10);
	cr_assert_eq(rctx_wait(w, dl), -EAGAIN);
	cr_assert_geq(rctx_now(), dl);
	rctx_release(v);
	rctx_release(w);
}

Test(context_basic, wait_wakes_on_cancel_from_another_thread)
{
	rctx_t *c = rctx_with_cancel(rctx_background());
	rctx_t *child = rctx_with_value(c, &key_a, NULL);
	pthread_t th;
	int64_t t0 = rctx_now();
	pthread_create(&th, NULL, cancel_after_20ms, c);
	cr_assert_eq(rctx_wait(child, t0 + MS(TH_PATIENCE_MS)), 0);
	cr_assert_eq(rctx_err(child), -ECANCELED);
	pthread_join(th, NULL);
	rctx_release(child);
	rctx_release(c);
}

Test(context_basic, wait_returns_zero_on_own_timeout)
{
	rctx_t *c = rctx_with_timeout(rctx_background(), MS(10));
	cr_assert_eq(rctx_wait(c, rctx_now() + MS(TH_PATIENCE_MS)), 0);
	cr_assert_eq(rctx_err(c), -ETIMEDOUT);
	rctx_release(c);
}

Test(context_basic, now_is_clock_monotonic)
{
	int64_t a = th_now_ns();
	int64_t n = rctx_now();
	int64_t b = th_now_ns();
	cr_assert_geq(n, a);
	cr_assert_leq(n, b);
	int64_t prev = rctx_now();
	for (int i = 0; i < 1000; i++) {
		int64_t x = rctx_now();
		cr_assert_geq(x, prev);
		prev = x;
	}
}

/* Regressions: a deadline already in the past returns at once (it used to
 * make the futex fail and spin); formatting extreme deadlines never
 * overflows. */
Test(context_basic, wait_with_past_or_negative_deadline_returns_at_once)
{
	rctx_t *c = rctx_with_cancel(rctx_background());
	int64_t t0 = rctx_now();

	cr_assert_eq(rctx_wait(c, -1), -EAGAIN);
	cr_assert_eq(rctx_wait(c, INT64_MIN), -EAGAIN);
	cr_assert_eq(rctx_wait(c, rctx_now() - 1000), -EAGAIN);
	cr_assert_eq(rctx_wait(rctx_background(), -5), -EAGAIN);
	cr_assert_lt(rctx_now() - t0, MS(TH_PATIENCE_MS), "a past deadline made it spin");
	rctx_release(c);
}

Test(context_basic, format_of_extreme_deadlines)
{
	char buf[256];
	rctx_t *a = rctx_with_deadline(rctx_background(), INT64_MIN);
	rctx_t *b = rctx_with_deadline(rctx_background(), INT64_MAX - 1);

	cr_assert_gt(rctx_format(a, buf, sizeof(buf)), 0);
	cr_assert(strstr(buf, "WithDeadline(-9223372036.854775808s") != NULL, "%s", buf);
	cr_assert_gt(rctx_format(b, buf, sizeof(buf)), 0);
	cr_assert(strstr(buf, "WithDeadline(9223372036.854775806s") != NULL, "%s", buf);
	rctx_release(a);
	rctx_release(b);
}
