/* SPDX-License-Identifier: MIT */
/*
 * Description: signal contexts (rctx_with_signals, Go's NotifyContext). A
 * signal sent with kill(getpid()) or pthread_kill() to a thread that never
 * called the library ends the context with -ECANCELED and a cause that
 * rctx_cause_signal() decodes; the disposition read back after release is
 * the one saved before (SIG_DFL, SIG_IGN, a handler), also after the context
 * fired; a second signal after firing does not take the default action;
 * contexts on the same signal all fire, on different signals only their own;
 * a signal that every application thread blocks is still delivered, to the
 * runtime thread, which unblocks it only while a context lives (read from
 * /proc/self/task/N/status); invalid signals give NULL.
 *
 * The restore is done when the rctx_release() that drops the last reference
 * returns, also right after the context fired (while the runtime thread may
 * still be ending it): a raise() at once after the release, 1,000 rounds
 * each, takes the default action (a forked child per round dies by it), is
 * ignored (SIG_IGN), or runs the application's handler, every round; with
 * the signal blocked in every application thread, a kill() at once after
 * the release stays pending: no thread of the library takes it any more.
 *
 * Thread-directed signals (raise, pthread_kill to self) are delivered before
 * the call returns: "the process survived the signal" is checked right
 * after it, not after a sleep. Criterion runs each test in its own process.
 */
/* tsan: yes */
#include <criterion/criterion.h>
#include <dirent.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ringctx.h"
#include "helpers.h"

TestSuite(signal, .timeout = 120);

static void assert_fired(rctx_t *ctx, int sig)
{
	cr_assert_eq(rctx_wait(ctx, rctx_now() + MS(TH_PATIENCE_MS)), 0,
		     "signal %d did not end the context", sig);
	cr_assert_eq(rctx_err(ctx), -ECANCELED);
	cr_assert_eq(rctx_cause(ctx), RCTX_CAUSE_SIGNAL_BASE - sig);
	cr_assert_eq(rctx_cause_signal(rctx_cause(ctx)), sig);
}

static rctx_t *watch1(int sig)
{
	rctx_t *c = rctx_with_signals(rctx_background(), &sig, 1);

	cr_assert_not_null(c);
	return c;
}

static struct sigaction get_action(int sig)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	if (sigaction(sig, NULL, &sa) != 0)
		cr_assert(0, "sigaction(%d): %s", sig, strerror(errno));
	return sa;
}

/* sig's handler is h again, as soon as the release returned. */
static void assert_handler(int sig, void (*h)(int))
{
	cr_assert_eq((void *)get_action(sig).sa_handler, (void *)h,
		     "the disposition of %d was not restored", sig);
}

static void assert_same_action(const struct sigaction *a, const struct sigaction *b)
{
	cr_assert_eq((void *)a->sa_handler, (void *)b->sa_handler, "handler not restored");
	cr_assert_eq(a->sa_flags, b->sa_flags, "flags not restored");
	for (int s = 1; s < NSIG; s++)
		cr_assert_eq(sigismember(&a->sa_mask, s), sigismember(&b->sa_mask, s),
			     "mask not restored (signal %d)", s);
}

static atomic_int app_calls;
static void app_handler(int sig)
{
	(void)sig;
	atomic_fetch_add(&app_calls, 1);
}

Test(signal, kill_self_ends_context_with_cause)
{
	rctx_t *c = watch1(SIGUSR1);

	cr_assert_eq(rctx_err(c), 0);
	cr_assert_eq(kill(getpid(), SIGUSR1), 0);
	assert_fired(c, SIGUSR1);
	rctx_release(c);
}

static atomic_bool quit;

/* Sleeps in short naps (under TSan, a signal reaches a thread's handler
 * when it is in a blocking call such as nanosleep, not in a read). */
static void *idle_thread(void *arg)
{
	(void)arg;
	while (!atomic_load(&quit))
		th_sleep_ms(1);
	return NULL;
}

/* Delivered to a thread that never called the library. */
Test(signal, pthread_kill_to_foreign_thread)
{
	pthread_t t;
	rctx_t *c;

	cr_assert_eq(pthread_create(&t, NULL, idle_thread, NULL), 0);
	c = watch1(SIGUSR2);
	cr_assert_eq(pthread_kill(t, SIGUSR2), 0);
	assert_fired(c, SIGUSR2);
	atomic_store(&quit, true);
	cr_assert_eq(pthread_join(t, NULL), 0);
	rctx_release(c);
}

Test(signal, cause_decoding)
{
	cr_assert_eq(rctx_cause_signal(RCTX_CAUSE_SIGNAL_BASE - SIGINT), SIGINT);
	cr_assert_eq(rctx_cause_signal(RCTX_CAUSE_SIGNAL_BASE - 1), 1);
	cr_assert_eq(rctx_cause_signal(RCTX_CAUSE_SIGNAL_BASE - (NSIG - 1)), NSIG - 1);
	cr_assert_eq(rctx_cause_signal(RCTX_CAUSE_SIGNAL_BASE), 0);
	cr_assert_eq(rctx_cause_signal(RCTX_CAUSE_SIGNAL_BASE - NSIG), 0);
	cr_assert_eq(rctx_cause_signal(0), 0);
	cr_assert_eq(rctx_cause_signal(-ECANCELED), 0);
	cr_assert_eq(rctx_cause_signal(-ECONNRESET), 0);
	cr_assert_eq(rctx_cause_signal(INT_MIN), 0);
	cr_assert_eq(rctx_cause_signal(INT_MAX), 0);
}

Test(signal, invalid_arguments_give_null)
{
	int ok = SIGUSR1, kill9[] = { SIGUSR1, SIGKILL };
	int bad[] = { 0, -1, SIGKILL, SIGSTOP, NSIG, 32, 33, INT_MAX };
	struct sigaction before = get_action(SIGUSR1), after;

	cr_assert_null(rctx_with_signals(NULL, &ok, 1));
	cr_assert_null(rctx_with_signals(rctx_background(), NULL, 1));
	cr_assert_null(rctx_with_signals(rctx_background(), &ok, 0));
	cr_assert_null(rctx_with_signals(rctx_background(), &ok, -1));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_null(rctx_with_signals(rctx_background(), &bad[i], 1),
			       "signal %d accepted", bad[i]);
	cr_assert_null(rctx_with_signals(rctx_background(), kill9, 2));
	after = get_action(SIGUSR1);
	assert_same_action(&before, &after);
}

/* Install disp for sig, watch it, release without firing, read it back. */
static void restore_after_release(int sig, struct sigaction *disp)
{
	struct sigaction before, during, after;
	int dup[] = { sig, sig };
	rctx_t *c;

	cr_assert_eq(sigaction(sig, disp, NULL), 0);
	before = get_action(sig);
	c = rctx_with_signals(rctx_background(), dup, 2);
	cr_assert_not_null(c);
	during = get_action(sig);
	cr_assert_neq((void *)during.sa_handler, (void *)before.sa_handler,
		      "the library's handler is not installed");
	cr_assert(during.sa_flags & SA_SIGINFO);
	rctx_release(c);
	after = get_action(sig);
	assert_same_action(&before, &after);
}

Test(signal, restores_default_after_release)
{
	struct sigaction sa = { .sa_handler = SIG_DFL };

	sigemptyset(&sa.sa_mask);
	restore_after_release(SIGUSR1, &sa);
}

Test(signal, restores_ignore_after_release)
{
	struct sigaction sa = { .sa_handler = SIG_IGN };

	sigemptyset(&sa.sa_mask);
	restore_after_release(SIGUSR1, &sa);
}

Test(signal, restores_handler_after_release)
{
	struct sigaction sa = { .sa_handler = app_handler, .sa_flags = SA_RESTART | SA_NODEFER };

	sigemptyset(&sa.sa_mask);
	sigaddset(&sa.sa_mask, SIGUSR2);
	sigaddset(&sa.sa_mask, SIGWINCH);
	restore_after_release(SIGUSR1, &sa);
	cr_assert_eq(atomic_load(&app_calls), 0);
}

/*
 * The application's handler is replaced while the context lives, also after
 * it fired (signals keep being caught), and is back after release.
 */
Test(signal, handler_restored_after_firing)
{
	struct sigaction sa = { .sa_handler = app_handler, .sa_flags = SA_RESTART }, before, after;
	rctx_t *c;

	sigemptyset(&sa.sa_mask);
	cr_assert_eq(sigaction(SIGUSR1, &sa, NULL), 0);
	before = get_action(SIGUSR1);
	c = watch1(SIGUSR1);
	cr_assert_eq(raise(SIGUSR1), 0);
	assert_fired(c, SIGUSR1);
	cr_assert_eq(raise(SIGUSR1), 0); /* still caught by the library */
	cr_assert_eq(atomic_load(&app_calls), 0, "the application's handler ran");
	rctx_release(c);
	after = get_action(SIGUSR1);
	assert_same_action(&before, &after);
	cr_assert_eq(raise(SIGUSR1), 0);
	cr_assert_eq(atomic_load(&app_calls), 1, "the handler is not back");
}

/* SIGTERM's default action ends the process: not while a context lives. */
Test(signal, second_signal_after_firing_does_not_kill)
{
	rctx_t *c;

	signal(SIGTERM, SIG_DFL);
	c = watch1(SIGTERM);
	cr_assert_eq(kill(getpid(), SIGTERM), 0);
	assert_fired(c, SIGTERM);
	cr_assert_eq(raise(SIGTERM), 0);
	cr_assert_eq(raise(SIGTERM), 0);
	cr_assert_eq(rctx_cause_signal(rctx_cause(c)), SIGTERM);
	rctx_release(c);
	assert_handler(SIGTERM, SIG_DFL);
}

Test(signal, two_contexts_same_signal_both_fire)
{
	rctx_t *a = watch1(SIGUSR1), *b = watch1(SIGUSR1);

	cr_assert_eq(kill(getpid(), SIGUSR1), 0);
	assert_fired(a, SIGUSR1);
	assert_fired(b, SIGUSR1);
	rctx_release(a);
	/* b still holds the signal: the library's handler stays. */
	cr_assert(get_action(SIGUSR1).sa_flags & SA_SIGINFO);
	rctx_release(b);
	assert_handler(SIGUSR1, SIG_DFL);
}

Test(signal, different_signals_fire_their_own)
{
	int both[] = { SIGUSR2, SIGWINCH };
	rctx_t *a = watch1(SIGUSR1), *b = watch1(SIGUSR2);
	rctx_t *ab = rctx_with_signals(rctx_background(), both, 2);

	cr_assert_not_null(ab);
	cr_assert_eq(kill(getpid(), SIGUSR1), 0);
	assert_fired(a, SIGUSR1);
	/* Only SIGUSR2 or SIGWINCH could end these, and neither was sent. */
	cr_assert_eq(rctx_err(b), 0);
	cr_assert_eq(rctx_err(ab), 0);
	cr_assert_eq(raise(SIGWINCH), 0);
	assert_fired(ab, SIGWINCH);
	cr_assert_eq(rctx_err(b), 0);
	cr_assert_eq(raise(SIGUSR2), 0);
	assert_fired(b, SIGUSR2);
	cr_assert_eq(rctx_cause_signal(rctx_cause(a)), SIGUSR1);
	cr_assert_eq(rctx_cause_signal(rctx_cause(ab)), SIGWINCH);
	rctx_release(ab);
	rctx_release(b);
	rctx_release(a);
}

/* Threads of this process that do not block sig (SigBlk of each task). */
static int tasks_unblocking(int sig)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	int n = 0;

	if (!d)
		cr_assert(0, "/proc/self/task: %s", strerror(errno));
	while ((e = readdir(d))) {
		char path[300], line[256];
		unsigned long long blk;
		FILE *f;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%s/status", e->d_name);
		f = fopen(path, "r");
		if (!f)
			continue; /* exited meanwhile */
		while (fgets(line, sizeof(line), f))
			if (sscanf(line, "SigBlk: %llx", &blk) == 1)
				n += !(blk & (1ULL << (sig - 1)));
		fclose(f);
	}
	closedir(d);
	return n;
}

static bool main_pending(int sig)
{
	sigset_t p;

	if (sigpending(&p) != 0)
		cr_assert(0, "sigpending: %s", strerror(errno));
	return sigismember(&p, sig) == 1;
}

/*
 * Every application thread blocks SIGUSR1 (from before the runtime thread
 * starts, which inherits the mask): the runtime thread unblocks it while the
 * context lives, receives it, and blocks it again after release.
 */
Test(signal, delivered_while_all_app_threads_block_it)
{
	sigset_t set;
	int base;
	rctx_t *c;

	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	cr_assert_eq(pthread_sigmask(SIG_BLOCK, &set, NULL), 0);
	base = tasks_unblocking(SIGUSR1);
	c = watch1(SIGUSR1);
	cr_assert(WAIT_UNTIL(tasks_unblocking(SIGUSR1) == base + 1, TH_PATIENCE_MS),
		  "no thread unblocked SIGUSR1");
	cr_assert_eq(kill(getpid(), SIGUSR1), 0);
	assert_fired(c, SIGUSR1);
	cr_assert(!main_pending(SIGUSR1), "still pending: not delivered");
	rctx_release(c);
	cr_assert_eq(tasks_unblocking(SIGUSR1), base,
		     "the runtime thread did not block SIGUSR1 again");
	if (base == 0) {
		/* Nobody takes it now: it stays pending (and does not kill). */
		cr_assert_eq(kill(getpid(), SIGUSR1), 0);
		cr_assert(main_pending(SIGUSR1));
		signal(SIGUSR1, SIG_IGN); /* discards it */
		cr_assert(!main_pending(SIGUSR1));
	}
}

/* A parent done at creation: done at once, the disposition untouched. */
Test(signal, parent_done_at_creation)
{
	rctx_t *parent = rctx_with_cancel(rctx_background());
	int sig = SIGUSR1;
	rctx_t *c;

	cr_assert_not_null(parent);
	rctx_cancel_cause(parent, 5);
	c = rctx_with_signals(parent, &sig, 1);
	cr_assert_not_null(c);
	cr_assert_eq(rctx_err(c), -ECANCELED);
	cr_assert_eq(rctx_cause(c), 5);
	cr_assert_eq((void *)get_action(SIGUSR1).sa_handler, (void *)SIG_DFL);
	rctx_release(c);
	rctx_release(parent);
}

/* Cancelled by its parent: ends with the parent's cause; the signal stays
 * caught until release. */
Test(signal, parent_cancel_then_release_restores)
{
	rctx_t *parent = rctx_with_cancel(rctx_background());
	int sig = SIGUSR2;
	rctx_t *c;

	cr_assert_not_null(parent);
	c = rctx_with_signals(parent, &sig, 1);
	cr_assert_not_null(c);
	rctx_cancel(parent);
	cr_assert_eq(rctx_err(c), -ECANCELED);
	cr_assert_eq(rctx_cause_signal(rctx_cause(c)), 0);
	cr_assert_eq(raise(SIGUSR2), 0); /* caught, not the default action */
	cr_assert_eq(rctx_cause_signal(rctx_cause(c)), 0);
	rctx_release(c);
	rctx_release(parent);
	cr_assert_eq((void *)get_action(SIGUSR2).sa_handler, (void *)SIG_DFL);
}

/* ---- raised at once after the release, round after round --------------- */

#define SIG_ROUNDS 1000

/* A check of a round: Criterion reports every assertion, passed or not, to
 * its runner; thousands of them per test only add load. */
#define ROUND_CHECK(cond, ...) do { if (!(cond)) cr_assert(0, __VA_ARGS__); } while (0)

/* One round: watch sig, raise it, see the context done, release it. */
static void fire_and_release(int sig, int round)
{
	rctx_t *c = rctx_with_signals(rctx_background(), &sig, 1);

	ROUND_CHECK(c, "round %d: no context", round);
	ROUND_CHECK(rctx_err(c) == 0, "round %d: done before any signal", round);
	ROUND_CHECK(raise(sig) == 0, "round %d: raise", round);
	ROUND_CHECK(rctx_wait(c, rctx_now() + MS(TH_PATIENCE_MS)) == 0,
		    "round %d: signal %d did not end the context", round, sig);
	ROUND_CHECK(rctx_cause_signal(rctx_cause(c)) == sig, "round %d: cause %d",
		    round, rctx_cause(c));
	rctx_release(c);
}

Test(signal, raise_after_release_runs_handler_every_round)
{
	struct sigaction sa = { .sa_handler = app_handler };

	sigemptyset(&sa.sa_mask);
	cr_assert_eq(sigaction(SIGUSR1, &sa, NULL), 0);
	for (int i = 0; i < SIG_ROUNDS; i++) {
		fire_and_release(SIGUSR1, i);
		ROUND_CHECK(raise(SIGUSR1) == 0, "round %d: raise", i);
		ROUND_CHECK(atomic_load(&app_calls) == i + 1,
			    "round %d: the handler did not run", i);
	}
}

Test(signal, raise_after_release_is_ignored_every_round)
{
	cr_assert_neq(signal(SIGUSR2, SIG_IGN), SIG_ERR);
	for (int i = 0; i < SIG_ROUNDS; i++) {
		fire_and_release(SIGUSR2, i);
		ROUND_CHECK(get_action(SIGUSR2).sa_handler == SIG_IGN,
			    "round %d: SIG_IGN not restored", i);
		ROUND_CHECK(raise(SIGUSR2) == 0, "round %d: raise", i); /* discarded */
		ROUND_CHECK(!main_pending(SIGUSR2), "round %d: pending", i);
	}
}

/* Exit codes of a child whose round went wrong before the last raise. */
enum { CHILD_SURVIVED = 1, CHILD_NO_CTX, CHILD_NOT_FIRED };

/* A child's round, its process fresh from fork (the library not started). */
static void child_round(int sig)
{
	rctx_t *c;

	alarm(60); /* a hang ends as SIGALRM, which the parent reports */
	c = rctx_with_signals(rctx_background(), &sig, 1);
	if (!c)
		_exit(CHILD_NO_CTX);
	raise(sig);
	if (rctx_wait(c, rctx_now() + MS(TH_PATIENCE_MS)) != 0 ||
	    rctx_cause_signal(rctx_cause(c)) != sig)
		_exit(CHILD_NOT_FIRED);
	rctx_release(c);
	raise(sig); /* the default action: the end */
	_exit(CHILD_SURVIVED);
}

/* A child per round: under valgrind, which makes each one cost about a
 * tenth of a second, a tenth of the rounds (the suite's time limit). */
Test(signal, raise_after_release_takes_default_action_every_round)
{
	int rounds = th_under_valgrind() ? SIG_ROUNDS / 10 : SIG_ROUNDS;

	for (int i = 0; i < rounds; i++) {
		pid_t pid = fork();
		int status;

		ROUND_CHECK(pid >= 0, "round %d: fork", i);
		if (pid == 0)
			child_round(SIGTERM);
		ROUND_CHECK(waitpid(pid, &status, 0) == pid, "round %d: waitpid", i);
		ROUND_CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM,
			  "round %d: child %s %d", i,
			  WIFSIGNALED(status) ? "killed by signal" : "exited with",
			  WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
	}
}

/*
 * Every application thread blocks SIGUSR1 from the start and has a handler
 * for it: a kill() at once after the release stays pending (the runtime
 * thread no longer unblocks it) and reaches no handler, every round.
 */
Test(signal, blocked_everywhere_stays_pending_after_release)
{
	struct sigaction sa = { .sa_handler = app_handler };
	struct timespec zero = { 0, 0 };
	sigset_t set;
	int base;

	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	cr_assert_eq(pthread_sigmask(SIG_BLOCK, &set, NULL), 0);
	sigemptyset(&sa.sa_mask);
	cr_assert_eq(sigaction(SIGUSR1, &sa, NULL), 0);
	base = tasks_unblocking(SIGUSR1);
	for (int i = 0; i < SIG_ROUNDS / 5; i++) {
		int sig = SIGUSR1;
		rctx_t *c = rctx_with_signals(rctx_background(), &sig, 1);

		ROUND_CHECK(c, "round %d: no context", i);
		ROUND_CHECK(WAIT_UNTIL(tasks_unblocking(SIGUSR1) == base + 1, TH_PATIENCE_MS),
			    "round %d: no thread unblocked SIGUSR1", i);
		ROUND_CHECK(kill(getpid(), SIGUSR1) == 0, "round %d: kill", i);
		ROUND_CHECK(rctx_wait(c, rctx_now() + MS(TH_PATIENCE_MS)) == 0,
			    "round %d: SIGUSR1 did not end the context", i);
		rctx_release(c);
		ROUND_CHECK(tasks_unblocking(SIGUSR1) == base,
			    "round %d: SIGUSR1 still unblocked", i);
		ROUND_CHECK(kill(getpid(), SIGUSR1) == 0, "round %d: kill", i);
		ROUND_CHECK(sigtimedwait(&set, NULL, &zero) == SIGUSR1,
			    "round %d: not pending after the release", i);
		ROUND_CHECK(atomic_load(&app_calls) == 0, "round %d: a handler ran", i);
	}
}
