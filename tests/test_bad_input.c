/* Description: every public function of ringctx.h given bad input: NULL
 * pointers, done contexts, contexts still referenced after their creator
 * released them, stopped or already run after-funcs, out-of-range sizes,
 * refused SQE flags, and deadlines that are negative, INT64_MIN, INT64_MAX
 * (RCTX_FOREVER), overflowing or in the past. Each answers with the error
 * the header documents and never crashes; a function returning a pointer
 * says why it returned NULL in errno (EINVAL, EBADF), every other call and
 * every success leaves errno as it found it (leaks are caught by the ASan
 * and valgrind runs). */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ringctx.h"
#include <sys/mman.h>

#include "helpers.h"

TestSuite(bad_input, .timeout = 30);

#define SENTINEL_ERRNO 4242

/* Evaluate expr with errno set to a sentinel; errno must survive it. */
#define KEEP_ERRNO(expr)                                                      \
	({                                                                    \
		errno = SENTINEL_ERRNO;                                       \
		__auto_type ke_r_ = (expr);                                   \
		cr_assert_eq(errno, SENTINEL_ERRNO, "errno changed by %s: %d", \
			     #expr, errno);                                   \
		ke_r_;                                                        \
	})
#define KEEP_ERRNO_VOID(expr)                                                 \
	do {                                                                  \
		errno = SENTINEL_ERRNO;                                       \
		expr;                                                         \
		cr_assert_eq(errno, SENTINEL_ERRNO, "errno changed by %s: %d", \
			     #expr, errno);                                   \
	} while (0)

/* expr gives NULL and sets errno to e: a NULL result says why. */
#define NULL_ERRNO(e, expr)                                                   \
	do {                                                                  \
		errno = SENTINEL_ERRNO;                                       \
		const void *ne_r_ = (expr);                                   \
		int ne_e_ = errno;                                            \
		cr_assert_null(ne_r_, "%s did not fail", #expr);              \
		cr_assert_eq(ne_e_, (e), "errno of %s: %d, not %d", #expr,    \
			     ne_e_, (e));                                     \
	} while (0)

static const int key = 1;

/* A cancel context whose creator released it, kept alive by a reference. */
static rctx_t *released_ctx(void)
{
	rctx_t *c = rctx_with_cancel(rctx_background());
	rctx_t *ref;

	cr_assert_not_null(c);
	ref = rctx_ref(c);
	rctx_release(c);
	cr_assert_eq(rctx_err(ref), -ECANCELED);
	return ref;
}

/* ---- constructors ------------------------------------------------------- */

Test(bad_input, constructors_refuse_a_null_parent)
{
	NULL_ERRNO(EINVAL, rctx_with_cancel(NULL));
	NULL_ERRNO(EINVAL, rctx_with_deadline(NULL, rctx_now() + MS(1000)));
	NULL_ERRNO(EINVAL, rctx_with_deadline_cause(NULL, 0, 7));
	NULL_ERRNO(EINVAL, rctx_with_timeout(NULL, MS(1000)));
	NULL_ERRNO(EINVAL, rctx_with_timeout_cause(NULL, MS(1000), 7));
	NULL_ERRNO(EINVAL, rctx_with_value(NULL, &key, NULL));
	NULL_ERRNO(EINVAL, rctx_without_cancel(NULL));
}

Test(bad_input, with_value_refuses_a_null_key)
{
	NULL_ERRNO(EINVAL, rctx_with_value(rctx_background(), NULL, (void *)&key));
}

/* Children of a done or released parent are done at creation with its
 * error; a value or without-cancel child keeps working. */
Test(bad_input, children_of_a_released_parent_are_born_done)
{
	rctx_t *p = released_ctx();
	rctx_t *c = KEEP_ERRNO(rctx_with_cancel(p));
	rctx_t *d = KEEP_ERRNO(rctx_with_deadline(p, rctx_now() + MS(10000)));
	rctx_t *t = KEEP_ERRNO(rctx_with_timeout(p, MS(10000)));
	rctx_t *v = KEEP_ERRNO(rctx_with_value(p, &key, (void *)&key));
	rctx_t *w = KEEP_ERRNO(rctx_without_cancel(p));

	cr_assert(c && d && t && v && w);
	cr_assert_eq(rctx_err(c), -ECANCELED);
	cr_assert_eq(rctx_err(d), -ECANCELED);
	cr_assert_eq(rctx_err(t), -ECANCELED);
	cr_assert_eq(rctx_err(v), -ECANCELED);
	cr_assert_eq(rctx_value(v, &key), &key);
	cr_assert_eq(rctx_err(w), 0);
	cr_assert_eq(rctx_cancel(c), 0);
	rctx_release(c);
	rctx_release(d);
	rctx_release(t);
	rctx_release(v);
	rctx_release(w);
	rctx_unref(p);
}

Test(bad_input, deadlines_in_the_past_give_a_context_done_at_creation)
{
	int64_t past[] = { INT64_MIN, INT64_MIN + 1, -1, 0, 1, rctx_now() - 1 };

	for (size_t i = 0; i < sizeof(past) / sizeof(past[0]); i++) {
		rctx_t *c = KEEP_ERRNO(rctx_with_deadline(rctx_background(), past[i]));
		rctx_t *k = KEEP_ERRNO(rctx_with_deadline_cause(rctx_background(),
								 past[i], 77));
		int64_t d = 0;

		cr_assert(c && k, "deadline %lld", (long long)past[i]);
		cr_assert_eq(rctx_err(c), -ETIMEDOUT);
		cr_assert_eq(rctx_cause(c), -ETIMEDOUT);
		cr_assert_eq(rctx_err(k), -ETIMEDOUT);
		cr_assert_eq(rctx_cause(k), 77);
		cr_assert(rctx_deadline(c, &d));
		cr_assert_eq(d, past[i]);
		rctx_release(c);
		rctx_release(k);
	}
}

/* RCTX_FOREVER is "no deadline": a plain cancel context. */
Test(bad_input, deadline_forever_is_no_deadline)
{
	struct rctx_runtime_stats before, after;
	rctx_t *c, *p, *k;
	int64_t d = 5;

	cr_assert_eq(rctx_runtime_stats(&before), 0);
	c = KEEP_ERRNO(rctx_with_deadline(rctx_background(), RCTX_FOREVER));
	cr_assert_not_null(c);
	cr_assert_eq(rctx_err(c), 0);
	cr_assert_not(rctx_deadline(c, &d));
	cr_assert_eq(d, 5);
	{
		char buf[64];

		rctx_format(c, buf, sizeof(buf));
		cr_assert_str_eq(buf, "context.Background.WithCancel");
	}
	/* The runtime took on nothing. */
	cr_assert(th_runtime_settle());
	cr_assert_eq(rctx_runtime_stats(&after), 0);
	cr_assert_eq(after.timers_armed, before.timers_armed, "no deadline to arm");
	cr_assert_eq(rctx_cancel(c), 1, "still cancellable");
	cr_assert_eq(rctx_err(c), -ECANCELED);
	rctx_release(c);

	/* Under a parent with a deadline: the parent's is reported. */
	p = rctx_with_timeout(rctx_background(), MS(60000));
	cr_assert_not_null(p);
	k = rctx_with_deadline_cause(p, RCTX_FOREVER, 9);
	cr_assert_not_null(k);
	{
		int64_t pd;

		cr_assert(rctx_deadline(k, &d));
		cr_assert(rctx_deadline(p, &pd));
		cr_assert_eq(d, pd);
	}
	rctx_release(k);
	rctx_release(p);
}

Test(bad_input, timeouts_refuse_negative_and_overflowing_durations)
{
	int64_t bad[] = { -1, INT64_MIN, INT64_MAX, INT64_MAX - 1,
			  INT64_MAX - rctx_now() };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		NULL_ERRNO(EINVAL, rctx_with_timeout(rctx_background(), bad[i]));
		NULL_ERRNO(EINVAL, rctx_with_timeout_cause(rctx_background(), bad[i], 3));
	}
}

Test(bad_input, timeout_zero_is_done_at_creation_and_huge_is_far)
{
	rctx_t *z = KEEP_ERRNO(rctx_with_timeout(rctx_background(), 0));
	rctx_t *f = KEEP_ERRNO(rctx_with_timeout(rctx_background(),
						 INT64_MAX / 2));
	int64_t d;

	cr_assert(z && f);
	cr_assert_eq(rctx_err(z), -ETIMEDOUT);
	cr_assert_eq(rctx_err(f), 0);
	cr_assert(rctx_deadline(f, &d));
	cr_assert_gt(d, INT64_MAX / 2);
	rctx_release(z);
	rctx_release(f);
}

/* ---- cancel, references ------------------------------------------------- */

Test(bad_input, cancel_refuses_null_and_uncancellable_contexts)
{
	rctx_t *v = rctx_with_value(rctx_background(), &key, NULL);
	rctx_t *w = rctx_without_cancel(rctx_background());
	rctx_t *c = rctx_with_cancel(rctx_background());
	rctx_t *cv = rctx_with_value(c, &key, NULL);

	cr_assert(v && w && c && cv);
	cr_assert_eq(KEEP_ERRNO(rctx_cancel(NULL)), -EINVAL);
	cr_assert_eq(KEEP_ERRNO(rctx_cancel_cause(NULL, 5)), -EINVAL);
	cr_assert_eq(KEEP_ERRNO(rctx_cancel(rctx_background())), -EINVAL);
	cr_assert_eq(KEEP_ERRNO(rctx_cancel(rctx_todo())), -EINVAL);
	cr_assert_eq(KEEP_ERRNO(rctx_cancel(v)), -EINVAL);
	cr_assert_eq(KEEP_ERRNO(rctx_cancel(w)), -EINVAL);
	cr_assert_eq(KEEP_ERRNO(rctx_cancel_cause(cv, 5)), -EINVAL);
	cr_assert_eq(rctx_err(cv), 0, "a refused cancel ends nothing");
	rctx_release(cv);
	rctx_release(c);
	rctx_release(w);
	rctx_release(v);
}

Test(bad_input, cancel_of_a_done_or_released_context_returns_0)
{
	rctx_t *r = released_ctx();
	rctx_t *t = rctx_with_timeout_cause(rctx_background(), 0, 11);

	cr_assert_not_null(t);
	cr_assert_eq(KEEP_ERRNO(rctx_cancel(r)), 0);
	cr_assert_eq(KEEP_ERRNO(rctx_cancel_cause(r, 99)), 0);
	cr_assert_eq(rctx_cause(r), -ECANCELED, "the first cause stays");
	cr_assert_eq(KEEP_ERRNO(rctx_cancel_cause(t, 99)), 0);
	cr_assert_eq(rctx_err(t), -ETIMEDOUT);
	cr_assert_eq(rctx_cause(t), 11);
	/* Release of a released context's last reference: no second cancel. */
	KEEP_ERRNO_VOID(rctx_release(r));
	rctx_release(t);
}

Test(bad_input, ref_unref_release_ignore_null_and_roots)
{
	NULL_ERRNO(EINVAL, rctx_ref(NULL));
	KEEP_ERRNO_VOID(rctx_unref(NULL));
	KEEP_ERRNO_VOID(rctx_release(NULL));
	cr_assert_eq(KEEP_ERRNO(rctx_ref(rctx_background())), rctx_background());
	for (int i = 0; i < 3; i++) {
		KEEP_ERRNO_VOID(rctx_unref(rctx_background()));
		KEEP_ERRNO_VOID(rctx_release(rctx_background()));
		KEEP_ERRNO_VOID(rctx_release(rctx_todo()));
		KEEP_ERRNO_VOID(rctx_unref(rctx_todo()));
	}
	cr_assert_eq(rctx_err(rctx_background()), 0);
	cr_assert_eq(rctx_err(rctx_todo()), 0);
}

/* ---- queries ------------------------------------------------------------ */

Test(bad_input, queries_answer_null_with_their_documented_value)
{
	int64_t d = 42;

	cr_assert_eq(KEEP_ERRNO(rctx_err(NULL)), -EINVAL);
	cr_assert_eq(KEEP_ERRNO(rctx_cause(NULL)), -EINVAL);
	cr_assert_not(KEEP_ERRNO(rctx_deadline(NULL, &d)));
	cr_assert_eq(d, 42, "untouched");
	cr_assert_not(KEEP_ERRNO(rctx_deadline(NULL, NULL)));
	cr_assert_not(KEEP_ERRNO(rctx_deadline(rctx_background(), &d)));
	cr_assert_eq(d, 42);
	NULL_ERRNO(EINVAL, rctx_value(NULL, &key));
	NULL_ERRNO(EINVAL, rctx_value(rctx_background(), NULL));
	NULL_ERRNO(EINVAL, rctx_value(NULL, NULL));
	cr_assert_eq(KEEP_ERRNO(rctx_done_fd(NULL)), -EINVAL);
	cr_assert_eq(KEEP_ERRNO(rctx_wait(NULL, 0)), -EINVAL);
	cr_assert_eq(KEEP_ERRNO(rctx_wait(NULL, RCTX_FOREVER)), -EINVAL);
}

Test(bad_input, deadline_query_accepts_a_null_out_param)
{
	rctx_t *t = rctx_with_timeout(rctx_background(), MS(60000));

	cr_assert_not_null(t);
	cr_assert(KEEP_ERRNO(rctx_deadline(t, NULL)));
	rctx_release(t);
}

Test(bad_input, queries_on_a_released_context_report_it_done)
{
	rctx_t *r = released_ctx();
	rctx_t *v;
	int fd;

	cr_assert_eq(KEEP_ERRNO(rctx_err(r)), -ECANCELED);
	cr_assert_eq(KEEP_ERRNO(rctx_cause(r)), -ECANCELED);
	fd = KEEP_ERRNO(rctx_done_fd(r));
	cr_assert_geq(fd, 0);
	cr_assert_eq(th_readable(fd, 0), 1);
	cr_assert_eq(KEEP_ERRNO(rctx_wait(r, RCTX_FOREVER)), 0);
	cr_assert_eq(KEEP_ERRNO(rctx_wait(r, INT64_MIN)), 0);
	v = rctx_with_value(r, &key, (void *)&key);
	cr_assert_not_null(v);
	cr_assert_eq(KEEP_ERRNO(rctx_done_fd(v)), fd);
	rctx_release(v);
	rctx_unref(r);
}

Test(bad_input, done_fd_of_a_never_done_context_is_enoent)
{
	rctx_t *w = rctx_without_cancel(rctx_background());
	rctx_t *v = rctx_with_value(w, &key, NULL);

	cr_assert(w && v);
	cr_assert_eq(KEEP_ERRNO(rctx_done_fd(rctx_background())), -ENOENT);
	cr_assert_eq(KEEP_ERRNO(rctx_done_fd(rctx_todo())), -ENOENT);
	cr_assert_eq(KEEP_ERRNO(rctx_done_fd(w)), -ENOENT);
	cr_assert_eq(KEEP_ERRNO(rctx_done_fd(v)), -ENOENT);
	rctx_release(v);
	rctx_release(w);
}

Test(bad_input, wait_with_past_or_extreme_deadlines)
{
	rctx_t *c = rctx_with_cancel(rctx_background());
	int64_t past[] = { INT64_MIN, -1, 0, rctx_now() - 1 };

	cr_assert_not_null(c);
	for (size_t i = 0; i < sizeof(past) / sizeof(past[0]); i++) {
		cr_assert_eq(KEEP_ERRNO(rctx_wait(c, past[i])), -EAGAIN);
		cr_assert_eq(KEEP_ERRNO(rctx_wait(rctx_background(), past[i])), -EAGAIN);
	}
	/* Would block forever. */
	cr_assert_eq(KEEP_ERRNO(rctx_wait(rctx_background(), RCTX_FOREVER)), -EDEADLK);
	cr_assert_eq(KEEP_ERRNO(rctx_wait(rctx_todo(), RCTX_FOREVER)), -EDEADLK);
	/* A deadline that does not pass before the context ends. */
	rctx_cancel(c);
	cr_assert_eq(KEEP_ERRNO(rctx_wait(c, RCTX_FOREVER - 1)), 0);
	rctx_release(c);
}

Test(bad_input, format_refuses_null_and_handles_odd_lengths)
{
	char buf[256];
	int n;

	cr_assert_eq(KEEP_ERRNO(rctx_format(NULL, buf, sizeof(buf))), -EINVAL);
	cr_assert_eq(KEEP_ERRNO(rctx_format(NULL, NULL, 0)), -EINVAL);
	cr_assert_eq(KEEP_ERRNO(rctx_format(rctx_background(), NULL, 1)), -EINVAL);
	n = KEEP_ERRNO(rctx_format(rctx_background(), NULL, 0));
	cr_assert_eq(n, (int)strlen("context.Background"));
	buf[0] = 'X';
	cr_assert_eq(KEEP_ERRNO(rctx_format(rctx_todo(), buf, 0)), 12);
	cr_assert_eq(buf[0], 'X', "len 0 writes nothing");
	cr_assert_eq(KEEP_ERRNO(rctx_format(rctx_todo(), buf, 1)), 12);
	cr_assert_str_eq(buf, "");
	/* A huge len: only the description and its NUL are written. */
	memset(buf, 'X', sizeof(buf));
	cr_assert_eq(KEEP_ERRNO(rctx_format(rctx_todo(), buf, (size_t)INT_MAX + 10)), 12);
	cr_assert_str_eq(buf, "context.TODO");
	cr_assert_eq(buf[13], 'X');
}

Test(bad_input, format_of_extreme_deadlines)
{
	rctx_t *c = rctx_with_deadline(rctx_background(), INT64_MIN);
	char buf[200];
	int n;

	cr_assert_not_null(c);
	n = KEEP_ERRNO(rctx_format(c, buf, sizeof(buf)));
	cr_assert_eq(n, (int)strlen(buf));
	cr_assert(strstr(buf, ".WithDeadline(-9223372036.854775808s [-"), "%s", buf);
	rctx_release(c);
}

/* ---- after-funcs ---------------------------------------------------------- */

static void count_cb(void *arg)
{
	atomic_fetch_add((_Atomic int *)arg, 1);
}

Test(bad_input, after_func_refuses_null_context_or_function)
{
	_Atomic int n = 0;

	NULL_ERRNO(EINVAL, rctx_after_func(NULL, count_cb, &n));
	NULL_ERRNO(EINVAL, rctx_after_func(rctx_background(), NULL, &n));
	cr_assert_not(KEEP_ERRNO(rctx_after_stop(NULL)));
	KEEP_ERRNO_VOID(rctx_after_release(NULL));
}

Test(bad_input, after_func_on_a_released_context_runs_once)
{
	rctx_t *r = released_ctx();
	_Atomic int n = 0;
	rctx_after_t *h = KEEP_ERRNO(rctx_after_func(r, count_cb, &n));

	cr_assert_not_null(h);
	cr_assert(WAIT_UNTIL(atomic_load(&n) == 1, 10000));
	cr_assert_not(KEEP_ERRNO(rctx_after_stop(h)), "already queued or run");
	cr_assert_not(KEEP_ERRNO(rctx_after_stop(h)));
	KEEP_ERRNO_VOID(rctx_after_release(h));
	rctx_unref(r);
	th_runtime_settle();
	cr_assert_eq(atomic_load(&n), 1);
}

Test(bad_input, after_stop_twice_and_on_a_never_done_context)
{
	rctx_t *c = rctx_with_cancel(rctx_background());
	_Atomic int n = 0;
	rctx_after_t *h = rctx_after_func(c, count_cb, &n);
	rctx_after_t *b = KEEP_ERRNO(rctx_after_func(rctx_background(), count_cb, &n));

	cr_assert(c && h && b);
	cr_assert(KEEP_ERRNO(rctx_after_stop(h)));
	cr_assert_not(KEEP_ERRNO(rctx_after_stop(h)), "a second stop");
	rctx_cancel(c);
	cr_assert(KEEP_ERRNO(rctx_after_stop(b)), "never done: stoppable");
	cr_assert_not(rctx_after_stop(b));
	rctx_after_release(h);
	rctx_after_release(b);
	rctx_release(c);
	th_runtime_settle();
	cr_assert_eq(atomic_load(&n), 0);
}

/* ---- rings ---------------------------------------------------------------- */

static void nop_cb(void *arg, int res, uint32_t flags)
{
	int *p = arg;

	(void)flags;
	p[0]++;
	p[1] = res;
}

static rctx_ring_t *ring_or_skip(unsigned entries)
{
	rctx_ring_t *ring;
	int err = rctx_ring_create(&ring, entries);

	if (err == -ENOSYS || err == -EPERM)
		cr_skip_test("no io_uring: %d", err);
	cr_assert_eq(err, 0, "rctx_ring_create(%u): %d", entries, err);
	return ring;
}

Test(bad_input, ring_create_refuses_null_and_one_entry)
{
	cr_assert_eq(KEEP_ERRNO(rctx_ring_create(NULL, 8)), -EINVAL);
	cr_assert_eq(KEEP_ERRNO(rctx_ring_create(NULL, 0)), -EINVAL);
	{
		rctx_ring_t *ring = (rctx_ring_t *)&key;

		cr_assert_eq(KEEP_ERRNO(rctx_ring_create(&ring, 1)), -EINVAL);
		cr_assert_eq(ring, (rctx_ring_t *)&key, "untouched on failure");
	}
}

/* 0 means the default, large values are clamped: each ring works. */
Test(bad_input, ring_create_clamps_huge_entries)
{
	unsigned sizes[] = { 0, 2, 3, 100000, 1u << 30, 0x40000001u, UINT_MAX };

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		rctx_ring_t *ring = KEEP_ERRNO(ring_or_skip(sizes[i]));
		struct io_uring_sqe sqe;
		int rec[2] = { 0, 1 };

		io_uring_prep_nop(&sqe);
		cr_assert_eq(rctx_submit(ring, rctx_background(), &sqe, nop_cb, rec), 0);
		while (rec[0] == 0)
			cr_assert_geq(rctx_ring_run(ring, rctx_now() + MS(10000)), 0);
		cr_assert_eq(rec[1], 0);
		KEEP_ERRNO_VOID(rctx_ring_destroy(ring));
	}
}

Test(bad_input, ring_functions_answer_null)
{
	struct rctx_ring_stats st;
	rctx_ring_t *ring = ring_or_skip(4);

	KEEP_ERRNO_VOID(rctx_ring_destroy(NULL));
	NULL_ERRNO(EINVAL, rctx_ring_uring(NULL));
	cr_assert_eq(KEEP_ERRNO(rctx_ring_fd(NULL)), -EINVAL);
	cr_assert_eq(KEEP_ERRNO(rctx_ring_flush(NULL)), -EINVAL);
	cr_assert_eq(KEEP_ERRNO(rctx_ring_run(NULL, 0)), -EINVAL);
	cr_assert_eq(KEEP_ERRNO(rctx_ring_pending(NULL)), 0);
	cr_assert_eq(KEEP_ERRNO(rctx_ring_stats(NULL, &st)), -EINVAL);
	cr_assert_eq(KEEP_ERRNO(rctx_ring_stats(ring, NULL)), -EINVAL);
	cr_assert_eq(KEEP_ERRNO(rctx_runtime_stats(NULL)), -EINVAL);
	cr_assert_not_null(KEEP_ERRNO(rctx_ring_uring(ring)));
	cr_assert_geq(KEEP_ERRNO(rctx_ring_fd(ring)), 0);
	cr_assert_geq(KEEP_ERRNO(rctx_ring_flush(ring)), 0);
	cr_assert_not_null(KEEP_ERRNO(rctx_thread_ring()));
	rctx_ring_destroy(ring);
}

Test(bad_input, submit_refuses_null_arguments)
{
	rctx_ring_t *ring = ring_or_skip(4);
	struct io_uring_sqe sqe;
	int rec[2] = { 0, 1 };

	io_uring_prep_nop(&sqe);
	cr_assert_eq(KEEP_ERRNO(rctx_submit(NULL, rctx_background(), &sqe, nop_cb, rec)), -EINVAL);
	cr_assert_eq(KEEP_ERRNO(rctx_submit(ring, NULL, &sqe, nop_cb, rec)), -EINVAL);
	cr_assert_eq(KEEP_ERRNO(rctx_submit(ring, rctx_background(), NULL, nop_cb, rec)), -EINVAL);
	cr_assert_eq(KEEP_ERRNO(rctx_submit(ring, rctx_background(), &sqe, NULL, rec)), -EINVAL);
	cr_assert_eq(rctx_ring_pending(ring), 0);
	cr_assert_eq(rctx_ring_run(ring, 0), 0);
	cr_assert_eq(rec[0], 0, "a refused request is never called back");
	rctx_ring_destroy(ring);
}

Test(bad_input, submit_refuses_link_and_skip_success_flags)
{
	unsigned char bad[] = { IOSQE_IO_LINK, IOSQE_IO_HARDLINK,
				IOSQE_CQE_SKIP_SUCCESS,
				IOSQE_IO_LINK | IOSQE_ASYNC };
	rctx_ring_t *ring = ring_or_skip(4);
	rctx_t *c = rctx_with_timeout(rctx_background(), MS(60000));
	struct rctx_ring_stats st;
	int rec[2] = { 0, 1 };

	cr_assert_not_null(c);
	for (size_t i = 0; i < sizeof(bad); i++) {
		struct io_uring_sqe sqe;

		io_uring_prep_nop(&sqe);
		sqe.flags = bad[i];
		cr_assert_eq(KEEP_ERRNO(rctx_submit(ring, c, &sqe, nop_cb, rec)), -EINVAL);
		cr_assert_eq(KEEP_ERRNO(rctx_submit(ring, rctx_background(), &sqe,
						    nop_cb, rec)), -EINVAL);
	}
	cr_assert_eq(rctx_ring_pending(ring), 0);
	cr_assert_eq(rctx_ring_stats(ring, &st), 0);
	cr_assert_eq(st.submitted + st.short_circuited + st.in_flight, 0);
	rctx_ring_run(ring, 0);
	cr_assert_eq(rec[0], 0);
	rctx_release(c);
	rctx_ring_destroy(ring);
}

/* A done or released context: the request never reaches the kernel and its
 * callback gets the context's error. */
Test(bad_input, submit_under_a_done_context_short_circuits)
{
	rctx_ring_t *ring = ring_or_skip(4);
	rctx_t *r = released_ctx();
	rctx_t *t = rctx_with_timeout(rctx_background(), 0);
	int pfd[2], rec1[2] = { 0, 1 }, rec2[2] = { 0, 1 };
	struct rctx_ring_stats st;
	struct io_uring_sqe sqe;
	char b = 'x';

	cr_assert_not_null(t);
	cr_assert_eq(pipe(pfd), 0);
	io_uring_prep_write(&sqe, pfd[1], &b, 1, 0);
	cr_assert_eq(KEEP_ERRNO(rctx_submit(ring, r, &sqe, nop_cb, rec1)), 0);
	cr_assert_eq(KEEP_ERRNO(rctx_submit(ring, t, &sqe, nop_cb, rec2)), 0);
	cr_assert_eq(rctx_ring_pending(ring), 2);
	cr_assert_eq(KEEP_ERRNO(rctx_ring_run(ring, 0)), 2);
	cr_assert_eq(rec1[0], 1);
	cr_assert_eq(rec1[1], -ECANCELED);
	cr_assert_eq(rec2[0], 1);
	cr_assert_eq(rec2[1], -ETIMEDOUT);
	cr_assert_eq(th_readable(pfd[0], 0), 0, "nothing was written");
	cr_assert_eq(rctx_ring_stats(ring, &st), 0);
	cr_assert_eq(st.short_circuited, 2);
	cr_assert_eq(st.submitted, 0);
	close(pfd[0]);
	close(pfd[1]);
	rctx_unref(r);
	rctx_release(t);
	rctx_ring_destroy(ring);
}

/* Deadlines at or before now, and INT64_MIN, do not wait. */
Test(bad_input, ring_run_with_past_deadlines_does_not_wait)
{
	rctx_ring_t *ring = ring_or_skip(4);
	int64_t past[] = { INT64_MIN, INT64_MIN + 1, -1, 0, 1, rctx_now() - 1 };

	for (size_t i = 0; i < sizeof(past) / sizeof(past[0]); i++)
		cr_assert_eq(KEEP_ERRNO(rctx_ring_run(ring, past[i])), 0,
			     "deadline %lld", (long long)past[i]);
	rctx_ring_destroy(ring);
}

struct in_cb {
	rctx_ring_t *ring;
	int run_ret;
	int calls;
};

static void reenter_cb(void *arg, int res, uint32_t flags)
{
	struct in_cb *x = arg;

	(void)res;
	(void)flags;
	x->calls++;
	x->run_ret = KEEP_ERRNO(rctx_ring_run(x->ring, 0));
	/* Ignored from the ring's own callback: the ring stays usable. */
	KEEP_ERRNO_VOID(rctx_ring_destroy(x->ring));
}

Test(bad_input, ring_run_and_destroy_from_a_callback_are_refused)
{
	rctx_ring_t *ring = ring_or_skip(4);
	struct in_cb x = { .ring = ring };
	struct io_uring_sqe sqe;
	int rec[2] = { 0, 1 };

	io_uring_prep_nop(&sqe);
	cr_assert_eq(rctx_submit(ring, rctx_background(), &sqe, reenter_cb, &x), 0);
	while (x.calls == 0)
		cr_assert_geq(rctx_ring_run(ring, rctx_now() + MS(10000)), 0);
	cr_assert_eq(x.run_ret, -EDEADLK);
	/* Still alive and working. */
	cr_assert_eq(rctx_submit(ring, rctx_background(), &sqe, nop_cb, rec), 0);
	while (rec[0] == 0)
		cr_assert_geq(rctx_ring_run(ring, rctx_now() + MS(10000)), 0);
	rctx_ring_destroy(ring);
}

/* ---- blocking calls --------------------------------------------------------- */

Test(bad_input, blocking_calls_refuse_a_null_context)
{
	struct sockaddr_storage ss = { 0 };
	socklen_t sl = sizeof(ss);
	char b[4];

	cr_assert_eq(KEEP_ERRNO(rctx_read(NULL, 0, b, sizeof(b), 0)), -EINVAL);
	cr_assert_eq(KEEP_ERRNO(rctx_write(NULL, 1, b, sizeof(b), 0)), -EINVAL);
	cr_assert_eq(KEEP_ERRNO(rctx_recv(NULL, 0, b, sizeof(b), 0)), -EINVAL);
	cr_assert_eq(KEEP_ERRNO(rctx_send(NULL, 1, b, sizeof(b), 0)), -EINVAL);
	cr_assert_eq(KEEP_ERRNO(rctx_accept(NULL, 0, (struct sockaddr *)&ss, &sl, 0)), -EINVAL);
	cr_assert_eq(KEEP_ERRNO(rctx_connect(NULL, 0, (struct sockaddr *)&ss, sl)), -EINVAL);
	cr_assert_eq(KEEP_ERRNO(rctx_fsync(NULL, 0, 0)), -EINVAL);
	cr_assert_eq(KEEP_ERRNO(rctx_openat(NULL, AT_FDCWD, "/", O_RDONLY, 0)), -EINVAL);
	cr_assert_eq(KEEP_ERRNO(rctx_poll(NULL, 0, POLLIN)), -EINVAL);
	cr_assert_eq(KEEP_ERRNO(rctx_sleep(NULL, 0)), -EINVAL);
}

Test(bad_input, blocking_calls_refuse_null_buffers_paths_and_addresses)
{
	rctx_t *bg = rctx_background();
	int sv[2];

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	cr_assert_eq(KEEP_ERRNO(rctx_read(bg, sv[0], NULL, 1, 0)), -EINVAL);
	cr_assert_eq(KEEP_ERRNO(rctx_write(bg, sv[1], NULL, 1, 0)), -EINVAL);
	cr_assert_eq(KEEP_ERRNO(rctx_recv(bg, sv[0], NULL, 1, 0)), -EINVAL);
	cr_assert_eq(KEEP_ERRNO(rctx_send(bg, sv[1], NULL, 1, 0)), -EINVAL);
	cr_assert_eq(KEEP_ERRNO(rctx_openat(bg, AT_FDCWD, NULL, O_RDONLY, 0)), -EINVAL);
	cr_assert_eq(KEEP_ERRNO(rctx_connect(bg, sv[0], NULL, 0)), -EINVAL);
	/* Length 0 with a NULL buffer is fine: nothing to transfer. */
	cr_assert_eq(KEEP_ERRNO(rctx_send(bg, sv[1], NULL, 0, 0)), 0);
	cr_assert_eq(KEEP_ERRNO(rctx_write(bg, sv[1], NULL, 0, 0)), 0);
	close(sv[0]);
	close(sv[1]);
}

/* len > INT_MAX is clamped; the kernel transfers what there is. The buffer
 * really is that large (reserved address space, never touched but for the
 * bytes received): the kernel checks the whole range. */
Test(bad_input, blocking_io_with_a_length_beyond_int_max)
{
	rctx_t *bg = rctx_background();
	size_t big = (size_t)INT_MAX + 1;
	char out[3] = "abc", *in;
	int sv[2];

	in = mmap(NULL, big, PROT_READ | PROT_WRITE,
		  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	cr_assert_neq(in, MAP_FAILED);
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	cr_assert_eq(KEEP_ERRNO(rctx_send(bg, sv[1], out, 3, 0)), 3);
	cr_assert_eq(KEEP_ERRNO(rctx_recv(bg, sv[0], in, big, 0)), 3);
	cr_assert_eq(memcmp(in, "abc", 3), 0);
	cr_assert_eq(KEEP_ERRNO(rctx_write(bg, sv[1], out, 3, 0)), 3);
	cr_assert_eq(KEEP_ERRNO(rctx_read(bg, sv[0], in, big, 0)), 3);
	close(sv[0]);
	close(sv[1]);
	munmap(in, big);
}

/* A done or released context: its error at once, and no I/O happens. */
Test(bad_input, blocking_calls_on_a_done_context_do_no_io)
{
	rctx_t *r = released_ctx();
	rctx_t *t = rctx_with_timeout(rctx_background(), 0);
	char b[1] = { 'x' };
	int sv[2], pfd[2];

	cr_assert_not_null(t);
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	cr_assert_eq(pipe(pfd), 0);
	cr_assert_eq(KEEP_ERRNO(rctx_send(r, sv[1], b, 1, 0)), -ECANCELED);
	cr_assert_eq(KEEP_ERRNO(rctx_write(t, pfd[1], b, 1, 0)), -ETIMEDOUT);
	cr_assert_eq(th_readable(sv[0], 0), 0, "nothing sent");
	cr_assert_eq(th_readable(pfd[0], 0), 0, "nothing written");
	cr_assert_eq(KEEP_ERRNO(rctx_recv(r, sv[0], b, 1, 0)), -ECANCELED);
	cr_assert_eq(KEEP_ERRNO(rctx_read(t, pfd[0], b, 1, 0)), -ETIMEDOUT);
	cr_assert_eq(KEEP_ERRNO(rctx_poll(r, pfd[0], POLLIN)), -ECANCELED);
	cr_assert_eq(KEEP_ERRNO(rctx_sleep(t, MS(60000))), -ETIMEDOUT);
	cr_assert_eq(KEEP_ERRNO(rctx_sleep(r, INT64_MAX)), -ECANCELED);
	cr_assert_eq(KEEP_ERRNO(rctx_fsync(r, pfd[1], 0)), -ECANCELED);
	cr_assert_eq(KEEP_ERRNO(rctx_openat(t, AT_FDCWD, "/", O_RDONLY, 0)), -ETIMEDOUT);
	close(sv[0]);
	close(sv[1]);
	close(pfd[0]);
	close(pfd[1]);
	rctx_unref(r);
	rctx_release(t);
}

Test(bad_input, sleep_refuses_negative_durations)
{
	cr_assert_eq(KEEP_ERRNO(rctx_sleep(rctx_background(), -1)), -EINVAL);
	cr_assert_eq(KEEP_ERRNO(rctx_sleep(rctx_background(), INT64_MIN)), -EINVAL);
	cr_assert_eq(KEEP_ERRNO(rctx_sleep(rctx_background(), 0)), 0);
}

/* A forever sleep ends with its context. */
Test(bad_input, sleep_forever_ends_with_its_context)
{
	rctx_t *t = rctx_with_timeout(rctx_background(), MS(20));

	cr_assert_not_null(t);
	cr_assert_eq(KEEP_ERRNO(rctx_sleep(t, INT64_MAX)), -ETIMEDOUT);
	cr_assert_eq(KEEP_ERRNO(rctx_sleep(t, RCTX_FOREVER)), -ETIMEDOUT);
	rctx_release(t);
}

Test(bad_input, blocking_calls_report_a_bad_fd)
{
	rctx_t *bg = rctx_background();
	char b[1];

	cr_assert_eq(KEEP_ERRNO(rctx_read(bg, -1, b, 1, 0)), -EBADF);
	cr_assert_eq(KEEP_ERRNO(rctx_recv(bg, -1, b, 1, 0)), -EBADF);
	cr_assert_eq(KEEP_ERRNO(rctx_fsync(bg, -1, 0)), -EBADF);
	cr_assert_eq(KEEP_ERRNO(rctx_poll(bg, -1, POLLIN)), -EBADF);
}

/* An empty poll mask waits for nothing but errors and hang-ups: it ends
 * with its context, it does not hang. */
Test(bad_input, poll_with_an_empty_mask_ends_with_its_context)
{
	rctx_t *t = rctx_with_timeout(rctx_background(), MS(20));
	int pfd[2];

	cr_assert_not_null(t);
	cr_assert_eq(pipe(pfd), 0);
	cr_assert_eq(write(pfd[1], "x", 1), 1);
	cr_assert_eq(KEEP_ERRNO(rctx_poll(t, pfd[0], 0)), -ETIMEDOUT);
	close(pfd[1]);
	cr_assert(KEEP_ERRNO(rctx_poll(rctx_background(), pfd[0], 0)) & POLLHUP);
	close(pfd[0]);
	rctx_release(t);
}

/* ---- signals, fds, groups, propagation ---------------------------------- */

Test(bad_input, with_signals_refuses_bad_signals)
{
	static const int ok[] = { SIGUSR1 };
	const int bad[] = { 0, -1, NSIG, SIGKILL, SIGSTOP, 32, 33 };

	NULL_ERRNO(EINVAL, rctx_with_signals(NULL, ok, 1));
	NULL_ERRNO(EINVAL, rctx_with_signals(rctx_background(), NULL, 1));
	NULL_ERRNO(EINVAL, rctx_with_signals(rctx_background(), ok, 0));
	NULL_ERRNO(EINVAL, rctx_with_signals(rctx_background(), ok, -1));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int two[] = { SIGUSR1, bad[i] };

		NULL_ERRNO(EINVAL, rctx_with_signals(rctx_background(), two, 2));
	}
	cr_assert_eq(rctx_cause_signal(0), 0);
	cr_assert_eq(rctx_cause_signal(-ECANCELED), 0);
	cr_assert_eq(rctx_cause_signal(INT_MIN), 0);
	cr_assert_eq(rctx_cause_signal(RCTX_CAUSE_SIGNAL_BASE - SIGINT), SIGINT);
}

Test(bad_input, with_fd_refuses_bad_input)
{
	int sv[2], closed;

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	closed = dup(sv[0]);
	cr_assert_geq(closed, 0);
	close(closed);
	NULL_ERRNO(EINVAL, rctx_with_fd(NULL, sv[0], POLLIN, 1));
	NULL_ERRNO(EBADF, rctx_with_fd(rctx_background(), -1, POLLIN, 1));
	NULL_ERRNO(EBADF, rctx_with_fd(rctx_background(), closed, POLLIN, 1));
	NULL_ERRNO(EINVAL, rctx_with_fd(rctx_background(), sv[0], 0, 1));
	NULL_ERRNO(EINVAL, rctx_with_fd(rctx_background(), sv[0], POLLIN, 0));
	NULL_ERRNO(EINVAL, rctx_with_hangup(NULL, sv[0]));
	NULL_ERRNO(EBADF, rctx_with_hangup(rctx_background(), -1));
	NULL_ERRNO(EBADF, rctx_with_hangup(rctx_background(), closed));
	close(sv[0]);
	close(sv[1]);
}

static int nop_fn(rctx_t *ctx, void *arg)
{
	(void)ctx;
	(void)arg;
	return 0;
}

Test(bad_input, groups_refuse_bad_input)
{
	struct io_uring_sqe sqe = { 0 };
	rctx_group_t *g;
	rctx_ring_t *ring;

	NULL_ERRNO(EINVAL, rctx_group_new(NULL, 1));
	NULL_ERRNO(EINVAL, rctx_group_new(rctx_background(), 0));
	NULL_ERRNO(EINVAL, rctx_group_ctx(NULL));
	cr_assert_eq(KEEP_ERRNO(rctx_group_go(NULL, nop_fn, NULL)), -EINVAL);
	cr_assert_eq(KEEP_ERRNO(rctx_group_try_go(NULL, nop_fn, NULL)), -EINVAL);
	cr_assert_eq(KEEP_ERRNO(rctx_group_wait(NULL)), -EINVAL);
	KEEP_ERRNO_VOID(rctx_group_free(NULL));
	g = KEEP_ERRNO(rctx_group_new(rctx_background(), 1));
	cr_assert_not_null(g);
	cr_assert_eq(rctx_ring_create(&ring, 8), 0);
	cr_assert_eq(KEEP_ERRNO(rctx_group_go(g, NULL, NULL)), -EINVAL);
	cr_assert_eq(KEEP_ERRNO(rctx_group_try_go(g, NULL, NULL)), -EINVAL);
	io_uring_prep_nop(&sqe);
	cr_assert_eq(KEEP_ERRNO(rctx_group_submit(NULL, ring, rctx_background(), &sqe,
						  nop_cb, NULL)), -EINVAL);
	cr_assert_eq(KEEP_ERRNO(rctx_group_submit(g, NULL, rctx_background(), &sqe,
						  nop_cb, NULL)), -EINVAL);
	cr_assert_eq(KEEP_ERRNO(rctx_group_submit(g, ring, NULL, &sqe,
						  nop_cb, NULL)), -EINVAL);
	cr_assert_eq(KEEP_ERRNO(rctx_group_submit(g, ring, rctx_background(), NULL,
						  nop_cb, NULL)), -EINVAL);
	cr_assert_eq(KEEP_ERRNO(rctx_group_submit(g, ring, rctx_background(), &sqe,
						  NULL, NULL)), -EINVAL);
	sqe.flags = IOSQE_IO_LINK;
	cr_assert_eq(KEEP_ERRNO(rctx_group_submit(g, ring, rctx_background(), &sqe,
						  nop_cb, NULL)), -EINVAL);
	/* A group that waited is done: no more functions. */
	cr_assert_eq(KEEP_ERRNO(rctx_group_wait(g)), 0);
	cr_assert_eq(KEEP_ERRNO(rctx_group_go(g, nop_fn, NULL)), -ECANCELED);
	cr_assert_eq(KEEP_ERRNO(rctx_group_try_go(g, nop_fn, NULL)), -ECANCELED);
	KEEP_ERRNO_VOID(rctx_group_free(g));
	rctx_ring_destroy(ring);
}

Test(bad_input, propagation_refuses_bad_input)
{
	struct rctx_trace t = { .trace_id = { 1 }, .span_id = { 1 } }, zero = { 0 }, out;
	char buf[RCTX_TRACEPARENT_LEN + 1];
	int64_t ns = 7;

	cr_assert_eq(KEEP_ERRNO(rctx_grpc_timeout_parse(NULL, &ns)), -EINVAL);
	cr_assert_eq(KEEP_ERRNO(rctx_grpc_timeout_parse("1S", NULL)), -EINVAL);
	cr_assert_eq(KEEP_ERRNO(rctx_grpc_timeout_parse("", &ns)), -EINVAL);
	cr_assert_eq(KEEP_ERRNO(rctx_grpc_timeout_parse("123456789S", &ns)), -EINVAL);
	cr_assert_eq(ns, 7);
	cr_assert_eq(KEEP_ERRNO(rctx_grpc_timeout_format(NULL, buf, sizeof(buf))), -EINVAL);
	cr_assert_eq(KEEP_ERRNO(rctx_grpc_timeout_format(rctx_background(), NULL, 10)), -EINVAL);
	cr_assert_eq(KEEP_ERRNO(rctx_grpc_timeout_format(rctx_background(), buf, sizeof(buf))),
		     -ENOENT);
	cr_assert_eq(KEEP_ERRNO(rctx_trace_parse(NULL, &out)), -EINVAL);
	cr_assert_eq(KEEP_ERRNO(rctx_trace_parse("00-", NULL)), -EINVAL);
	cr_assert_eq(KEEP_ERRNO(rctx_trace_format(NULL, buf, sizeof(buf))), -EINVAL);
	cr_assert_eq(KEEP_ERRNO(rctx_trace_format(&t, NULL, sizeof(buf))), -EINVAL);
	cr_assert_eq(KEEP_ERRNO(rctx_trace_format(&zero, buf, sizeof(buf))), -EINVAL);
	cr_assert_eq(KEEP_ERRNO(rctx_trace_format(&t, buf, RCTX_TRACEPARENT_LEN)), -ENOSPC);
	cr_assert_eq(KEEP_ERRNO(rctx_trace_child(NULL, &out)), -EINVAL);
	cr_assert_eq(KEEP_ERRNO(rctx_trace_child(&t, NULL)), -EINVAL);
	cr_assert_eq(KEEP_ERRNO(rctx_trace_child(&zero, &out)), -EINVAL);
	NULL_ERRNO(EINVAL, rctx_with_trace(NULL, &t));
	NULL_ERRNO(EINVAL, rctx_with_trace(rctx_background(), NULL));
	NULL_ERRNO(EINVAL, rctx_with_trace(rctx_background(), &zero));
	cr_assert_eq(KEEP_ERRNO(rctx_trace_of(NULL, &out)), -EINVAL);
	cr_assert_eq(KEEP_ERRNO(rctx_trace_of(rctx_background(), NULL)), -EINVAL);
	cr_assert_eq(KEEP_ERRNO(rctx_trace_of(rctx_background(), &out)), -ENOENT);
}
