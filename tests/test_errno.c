/* Description: a function returning a pointer says why it returned NULL in
 * errno, and leaves errno alone when it succeeds. EINVAL for every invalid
 * argument of every constructor and pointer getter (NULL parents, an
 * after-func handle given as a context, bad sizes, keys, signals, traces,
 * limits, durations), EBADF for a file descriptor that is negative or not
 * open; ESHUTDOWN from every constructor that needs the runtime thread
 * once the process is exiting (a forked child's atexit handler, run after
 * the library's own), while those that do not still work. A success, a
 * rctx_value() that finds nothing or a NULL value, and the calls that
 * return an error code leave errno as they found it. (ENOMEM is driven by
 * fault injection in tests/test_fault.c.) */
#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ringctx.h"
#include "helpers.h"

TestSuite(null_errno, .timeout = 60);

#define SENTINEL 4242

/* expr gives NULL and sets errno to e. */
#define NULL_ERRNO(e, expr)                                                   \
	do {                                                                  \
		errno = SENTINEL;                                             \
		const void *ne_r_ = (expr);                                   \
		int ne_e_ = errno;                                            \
		cr_assert_null(ne_r_, "%s did not fail", #expr);              \
		cr_assert_eq(ne_e_, (e), "errno of %s: %d, not %d", #expr,    \
			     ne_e_, (e));                                     \
	} while (0)

/* expr succeeds (not NULL) and leaves errno alone; yields it. */
#define OK_KEEPS(expr)                                                        \
	({                                                                    \
		errno = SENTINEL;                                             \
		__auto_type ok_r_ = (expr);                                   \
		cr_assert_not_null(ok_r_, "%s failed: errno %d", #expr, errno); \
		cr_assert_eq(errno, SENTINEL, "%s changed errno to %d", #expr, \
			     errno);                                          \
		ok_r_;                                                        \
	})

static const int k1 = 1, k2 = 2;

static void nop_after(void *arg)
{
	(void)arg;
}

/* An after-func handle: not a context; every constructor refuses it. */
static rctx_t *after_handle(rctx_after_t **hp)
{
	*hp = rctx_after_func(rctx_background(), nop_after, NULL);
	cr_assert_not_null(*hp);
	return (rctx_t *)*hp;
}

Test(null_errno, every_constructor_sets_einval_for_an_after_func_handle)
{
	const void *keys[] = { &k1 };
	void *vals[] = { NULL };
	struct rctx_trace t = { .trace_id = { 1 }, .span_id = { 2 } };
	int sig = SIGUSR1, sv[2];
	rctx_after_t *h;
	rctx_t *bad = after_handle(&h);

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	NULL_ERRNO(EINVAL, rctx_with_cancel(bad));
	NULL_ERRNO(EINVAL, rctx_with_deadline(bad, rctx_now() + MS(1000)));
	NULL_ERRNO(EINVAL, rctx_with_deadline_cause(bad, rctx_now() + MS(1000), 3));
	NULL_ERRNO(EINVAL, rctx_with_timeout(bad, MS(1000)));
	NULL_ERRNO(EINVAL, rctx_with_timeout_cause(bad, MS(1000), 3));
	NULL_ERRNO(EINVAL, rctx_with_value(bad, &k1, NULL));
	NULL_ERRNO(EINVAL, rctx_with_values(bad, 1, keys, vals));
	NULL_ERRNO(EINVAL, rctx_without_cancel(bad));
	NULL_ERRNO(EINVAL, rctx_with_any(bad, NULL, 0));
	NULL_ERRNO(EINVAL, rctx_with_any(rctx_background(), (rctx_t *const *)&bad, 1));
	NULL_ERRNO(EINVAL, rctx_with_signals(bad, &sig, 1));
	NULL_ERRNO(EINVAL, rctx_with_fd(bad, sv[0], POLLIN, 1));
	NULL_ERRNO(EINVAL, rctx_with_hangup(bad, sv[0]));
	NULL_ERRNO(EINVAL, rctx_with_trace(bad, &t));
	NULL_ERRNO(EINVAL, rctx_group_new(bad, 1));
	NULL_ERRNO(EINVAL, rctx_after_func(bad, nop_after, NULL));
	rctx_after_release(h);
	close(sv[0]);
	close(sv[1]);
}

Test(null_errno, with_values_sets_einval)
{
	const void *keys[RCTX_VALUES_MAX + 1] = { &k1, &k2 };
	const void *nullkey[] = { &k1, NULL };
	void *vals[RCTX_VALUES_MAX + 1] = { NULL };

	for (int i = 2; i <= RCTX_VALUES_MAX; i++)
		keys[i] = &keys[i];
	NULL_ERRNO(EINVAL, rctx_with_values(NULL, 2, keys, vals));
	NULL_ERRNO(EINVAL, rctx_with_values(rctx_background(), 2, NULL, vals));
	NULL_ERRNO(EINVAL, rctx_with_values(rctx_background(), 2, keys, NULL));
	NULL_ERRNO(EINVAL, rctx_with_values(rctx_background(), 0, keys, vals));
	NULL_ERRNO(EINVAL, rctx_with_values(rctx_background(), RCTX_VALUES_MAX + 1,
					   keys, vals));
	NULL_ERRNO(EINVAL, rctx_with_values(rctx_background(), 2, nullkey, vals));
	rctx_release(OK_KEEPS(rctx_with_values(rctx_background(), RCTX_VALUES_MAX,
					       keys, vals)));
}

Test(null_errno, with_any_sets_einval)
{
	rctx_t *others[RCTX_ANY_MAX + 1];
	rctx_t *withnull[] = { rctx_background(), NULL };

	for (int i = 0; i <= RCTX_ANY_MAX; i++)
		others[i] = rctx_background();
	NULL_ERRNO(EINVAL, rctx_with_any(NULL, others, 1));
	NULL_ERRNO(EINVAL, rctx_with_any(rctx_background(), NULL, 1));
	NULL_ERRNO(EINVAL, rctx_with_any(rctx_background(), others, RCTX_ANY_MAX + 1));
	NULL_ERRNO(EINVAL, rctx_with_any(rctx_background(), withnull, 2));
	rctx_release(OK_KEEPS(rctx_with_any(rctx_background(), others, RCTX_ANY_MAX)));
	rctx_release(OK_KEEPS(rctx_with_any(rctx_background(), NULL, 0)));
}

Test(null_errno, deadlines_set_einval)
{
	NULL_ERRNO(EINVAL, rctx_with_timeout(rctx_background(), -1));
	NULL_ERRNO(EINVAL, rctx_with_timeout(rctx_background(), INT64_MIN));
	NULL_ERRNO(EINVAL, rctx_with_timeout(rctx_background(), RCTX_FOREVER));
	NULL_ERRNO(EINVAL, rctx_with_timeout_cause(rctx_background(), -1, 5));
	NULL_ERRNO(EINVAL, rctx_with_deadline(NULL, RCTX_FOREVER));
	NULL_ERRNO(EINVAL, rctx_with_deadline_cause(NULL, 0, 5));
}

Test(null_errno, signals_and_fds_set_einval_or_ebadf)
{
	int sv[2], closed, ok = SIGUSR1, kill9[] = { SIGUSR1, SIGKILL };

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	closed = dup(sv[0]);
	cr_assert_geq(closed, 0);
	close(closed);
	NULL_ERRNO(EINVAL, rctx_with_signals(rctx_background(), kill9, 2));
	NULL_ERRNO(EINVAL, rctx_with_signals(rctx_background(), &ok, 0));
	NULL_ERRNO(EBADF, rctx_with_fd(rctx_background(), -5, POLLIN, 1));
	NULL_ERRNO(EBADF, rctx_with_fd(rctx_background(), closed, POLLIN, 1));
	NULL_ERRNO(EBADF, rctx_with_hangup(rctx_background(), closed));
	/* Arguments are checked before the fd: a bad one of both is EINVAL. */
	NULL_ERRNO(EINVAL, rctx_with_fd(NULL, -1, POLLIN, 1));
	NULL_ERRNO(EINVAL, rctx_with_fd(rctx_background(), -1, 0, 1));
	close(sv[0]);
	close(sv[1]);
}

Test(null_errno, getters_set_einval_for_null)
{
	NULL_ERRNO(EINVAL, rctx_ref(NULL));
	NULL_ERRNO(EINVAL, rctx_value(NULL, &k1));
	NULL_ERRNO(EINVAL, rctx_value(rctx_background(), NULL));
	NULL_ERRNO(EINVAL, rctx_group_ctx(NULL));
	NULL_ERRNO(EINVAL, rctx_ring_uring(NULL));
}

/* Not found, or a NULL value: NULL, but not a failure. */
Test(null_errno, value_not_found_leaves_errno)
{
	rctx_t *v = rctx_with_value(rctx_background(), &k1, NULL);

	cr_assert_not_null(v);
	errno = SENTINEL;
	cr_assert_null(rctx_value(v, &k2));
	cr_assert_null(rctx_value(v, &k1));
	cr_assert_null(rctx_value(rctx_background(), &k1));
	cr_assert_eq(errno, SENTINEL);
	rctx_release(v);
}

static void sig_nop(int sig)
{
	(void)sig;
}

Test(null_errno, success_leaves_errno)
{
	const void *keys[] = { &k1, &k2 };
	void *vals[] = { NULL, NULL };
	struct rctx_trace t = { .trace_id = { 1 }, .span_id = { 2 } };
	struct sigaction sa = { .sa_handler = sig_nop };
	int sig = SIGUSR1, sv[2];
	rctx_t *p = OK_KEEPS(rctx_with_cancel(rctx_background()));
	rctx_t *o[] = { p }, *v;
	rctx_after_t *a;
	rctx_group_t *g;

	sigemptyset(&sa.sa_mask);
	cr_assert_eq(sigaction(SIGUSR1, &sa, NULL), 0);
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	rctx_release(OK_KEEPS(rctx_with_deadline(p, rctx_now() + MS(10000))));
	rctx_release(OK_KEEPS(rctx_with_deadline_cause(p, rctx_now() - 1, 4)));
	rctx_release(OK_KEEPS(rctx_with_timeout(p, MS(10000))));
	rctx_release(OK_KEEPS(rctx_with_timeout_cause(p, 0, 4)));
	rctx_release(OK_KEEPS(rctx_with_value(p, &k1, NULL)));
	rctx_release(OK_KEEPS(rctx_with_values(p, 2, keys, vals)));
	rctx_release(OK_KEEPS(rctx_without_cancel(p)));
	rctx_release(OK_KEEPS(rctx_with_any(rctx_background(), o, 1)));
	rctx_release(OK_KEEPS(rctx_with_trace(p, &t)));
	rctx_release(OK_KEEPS(rctx_with_signals(p, &sig, 1)));
	rctx_release(OK_KEEPS(rctx_with_fd(p, sv[0], POLLIN, 3)));
	rctx_release(OK_KEEPS(rctx_with_hangup(p, sv[0])));
	rctx_unref(OK_KEEPS(rctx_ref(p)));
	v = OK_KEEPS(rctx_with_value(p, &k2, &sv));
	cr_assert_eq(OK_KEEPS(rctx_value(v, &k2)), &sv);
	rctx_release(v);
	g = OK_KEEPS(rctx_group_new(p, 1));
	cr_assert_eq(OK_KEEPS(rctx_group_ctx(g)), rctx_group_ctx(g));
	rctx_group_free(g);
	a = OK_KEEPS(rctx_after_func(p, nop_after, NULL));
	cr_assert(rctx_after_stop(a));
	rctx_after_release(a);
	cr_assert_not_null(OK_KEEPS(rctx_ring_uring(OK_KEEPS(rctx_thread_ring()))));
	rctx_release(p);
	close(sv[0]);
	close(sv[1]);
}

/* ---- once the process is exiting ------------------------------------------ */

static int exit_pipe[2];

/* What each constructor gives at exit, written to the parent: one byte
 * per check, 'y' when it held. */
static void report(bool ok)
{
	char c = ok ? 'y' : 'n';

	if (write(exit_pipe[1], &c, 1) != 1)
		_exit(3);
}

static bool shut(void *p)
{
	return !p && errno == ESHUTDOWN;
}

/* Registered before the library's own atexit handler: runs after it. */
static void at_exit_check(void)
{
	rctx_t *c = rctx_with_cancel(rctx_background());
	int sig = SIGUSR2, sv[2];

	report(c != NULL); /* needs no runtime: still works */
	report(shut(rctx_with_deadline(c, rctx_now() + MS(10000))));
	report(shut(rctx_with_timeout(c, MS(10000))));
	report(shut(rctx_after_func(c, nop_after, NULL)));
	report(shut(rctx_with_signals(c, &sig, 1)));
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
		_exit(4);
	report(shut(rctx_with_fd(c, sv[0], POLLIN, 1)));
	report(shut(rctx_with_hangup(c, sv[0])));
	rctx_release(c);
	close(exit_pipe[1]);
}

#define EXIT_CHECKS 7

Test(null_errno, constructors_needing_the_runtime_set_eshutdown_at_exit)
{
	char got[EXIT_CHECKS + 1];
	int status, n = 0;
	ssize_t r;
	pid_t pid;

	cr_assert_eq(pipe(exit_pipe), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		rctx_t *d;

		close(exit_pipe[0]);
		alarm(30);
		if (atexit(at_exit_check) != 0)
			_exit(2);
		d = rctx_with_timeout(rctx_background(), MS(10000)); /* starts it */
		if (!d)
			_exit(2);
		rctx_release(d);
		exit(0);
	}
	close(exit_pipe[1]);
	while (n < (int)sizeof(got) && (r = read(exit_pipe[0], got + n, sizeof(got) - n)) > 0)
		n += (int)r;
	close(exit_pipe[0]);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %#x", status);
	cr_assert_eq(n, EXIT_CHECKS, "%d checks reported", n);
	for (int i = 0; i < EXIT_CHECKS; i++)
		cr_assert_eq(got[i], 'y', "check %d failed at exit", i);
}
