/* Description: fault injection (fault flavour only, lib/fault.h). For each
 * public operation that can fail, fail its Nth wrapped call (allocation,
 * eventfd, io_uring_queue_init, pthread_create, io_uring_submit) for
 * N = 1, 2, ... until the operation makes fewer than N calls, and check that
 * it either succeeded or returned exactly its documented error (a constructor
 * that returned NULL: its errno), and that no fd
 * or memory leaked, no context error changed once set, every accepted
 * request's callback ran exactly once and every after-func at most once.
 * A last test runs every driver in one process and checks that every wrapped
 * call site in lib/ failed at least once. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sanitizer/lsan_interface.h>
#include <stdatomic.h>
#include <stdio.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ringctx.h"
#include "ring_util.h"
#include "../lib/fault_ctl.h"

TestSuite(fault, .timeout = 300);

#define MAX_N 2000
#define LONG_NS MS(10000)

static unsigned long points; /* (operation, N) pairs whose N failed */
/* The N of the current run: operations that need a fixture disarm while
 * they build it, then arm again. */
static unsigned long cur_n;

static bool runtime_running(void)
{
	struct rctx_runtime_stats st;

	cr_assert_eq(rctx_runtime_stats(&st), 0);
	return st.running;
}

static bool in_set(int ret, const int *allowed)
{
	for (; *allowed; allowed++)
		if (ret == *allowed)
			return true;
	return false;
}

/*
 * Run op with its Nth wrapped call failing, N = 1, 2, ..., until a run in
 * which nothing failed (op made fewer than N calls); op returns 0 on success
 * or the error it saw, which must be one of allowed (0-terminated). The
 * runtime thread, once started, keeps its eventfd and ring, and the keeper
 * ring with its eventfd: +4 fds.
 */
#define RUNTIME_FDS 4

/* A descriptor the library keeps for the rest of the process once made (the
 * signal table's eventfd): an op that saw it appear sets this to 1. */
static int kept_fds;

static unsigned long drive(const char *name, int (*op)(void), const int *allowed)
{
	unsigned long n;

	for (n = 1; n <= MAX_N; n++) {
		bool was_running = runtime_running();
		int fds = th_fd_count(), ret;
		unsigned long injected;

		cur_n = n;
		kept_fds = 0;
		rctx__fault_arm(n);
		ret = op();
		injected = rctx__fault_injected();
		rctx__fault_disarm();
		if (ret)
			cr_assert(in_set(ret, allowed), "%s, N=%lu: undocumented error %d (%s)",
				  name, n, ret, strerror(-ret));
		cr_assert(!ret || injected, "%s, N=%lu: error %d with no failure injected",
			  name, n, ret);
		cr_assert_eq(th_fd_count(), fds + kept_fds +
			     (!was_running && runtime_running() ? RUNTIME_FDS : 0),
			     "%s, N=%lu: fd leaked", name, n);
		cr_assert_eq(__lsan_do_recoverable_leak_check(), 0,
			     "%s, N=%lu: memory leaked", name, n);
		if (!injected)
			break;
		points++;
	}
	cr_assert(n <= MAX_N, "%s: never ran to completion", name);
	cr_log_info("%s: %lu failure points", name, n - 1);
	return n - 1;
}

/* ---- context operations ----------------------------------------------------- */

#define DUMP_KIDS 20 /* more than the walk's first stack: it grows once */

/* rctx_dump() of a root with DUMP_KIDS children, to /dev/null. */
static int op_dump(void)
{
	rctx_t *root = rctx_with_cancel(rctx_background()), *kids[DUMP_KIDS];
	int i, n = 0, fd, ret = -ENOMEM;

	if (!root)
		return -errno;
	for (; n < DUMP_KIDS; n++)
		if (!(kids[n] = rctx_with_cancel(root)))
			goto out;
	fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	cr_assert_geq(fd, 0);
	ret = rctx_dump(root, fd, 0);
	close(fd);
out:
	for (i = 0; i < n; i++)
		rctx_release(kids[i]);
	rctx_release(root);
	return ret;
}

/* Cancel c and check that its error, once set, stays what it was. */
static void cancel_check(rctx_t *c, int want)
{
	int e = rctx_err(c);

	rctx_cancel(c);
	cr_assert_eq(rctx_err(c), e ? e : want);
	rctx_cancel(c);
	cr_assert_eq(rctx_err(c), e ? e : want);
}

static int op_with_cancel(void)
{
	rctx_t *p = rctx_with_cancel(rctx_background()), *c;
	int e;

	if (!p)
		return -errno;
	c = rctx_with_cancel(p);
	if (!c) {
		e = errno;
		rctx_cancel(p);
		rctx_release(p);
		return -e;
	}
	rctx_cancel(p);
	cr_assert_eq(rctx_err(c), -ECANCELED);
	cancel_check(c, -ECANCELED);
	rctx_release(c);
	rctx_release(p);
	return 0;
}

/* A far deadline cancelled early, and a near one that must expire. */
static int op_with_deadline(void)
{
	rctx_t *far = rctx_with_timeout(rctx_background(), LONG_NS), *near;
	int e;

	if (!far)
		return -errno;
	near = rctx_with_deadline(far, rctx_now() + MS(1));
	if (!near) {
		e = errno;
		cancel_check(far, -ECANCELED);
		rctx_release(far);
		return -e;
	}
	cr_assert_eq(rctx_wait(near, rctx_now() + LONG_NS), 0, "deadline never fired");
	cr_assert_eq(rctx_err(near), -ETIMEDOUT);
	cr_assert_eq(rctx_err(far), 0);
	cancel_check(near, -ETIMEDOUT);
	cancel_check(far, -ECANCELED);
	rctx_release(near);
	rctx_release(far);
	return 0;
}

static int op_with_value(void)
{
	static const int key;
	int val;
	rctx_t *v = rctx_with_value(rctx_background(), &key, &val);

	if (!v)
		return -errno;
	cr_assert_eq(rctx_value(v, &key), &val);
	rctx_release(v);
	return 0;
}

static int op_without_cancel(void)
{
	rctx_t *p = rctx_with_cancel(rctx_background()), *w;
	int e;

	if (!p)
		return -errno;
	w = rctx_without_cancel(p);
	e = errno;
	rctx_cancel(p);
	rctx_release(p);
	if (!w)
		return -e;
	cr_assert_eq(rctx_err(w), 0);
	rctx_release(w);
	return 0;
}

/* The runtime thread still serves deadlines (whatever failed in it before). */
static void deadline_fires(void)
{
	rctx_t *c = rctx_with_timeout(rctx_background(), MS(1));

	cr_assert_not_null(c);
	cr_assert_eq(rctx_wait(c, rctx_now() + LONG_NS), 0, "runtime thread stuck");
	cr_assert_eq(rctx_err(c), -ETIMEDOUT);
	rctx_release(c);
}

static void after_fn(void *arg)
{
	atomic_fetch_add((atomic_int *)arg, 1);
}

/* One after-func on a live context, one on a done one: each runs once. */
static int op_after_func(void)
{
	static atomic_int runs[2];
	rctx_t *c = rctx_with_cancel(rctx_background());
	rctx_after_t *a[2] = { NULL, NULL };
	int ret = 0, e[2] = { 0, 0 };

	if (!c)
		return -errno;
	atomic_store(&runs[0], 0);
	atomic_store(&runs[1], 0);
	a[0] = rctx_after_func(c, after_fn, &runs[0]);
	e[0] = errno;
	rctx_cancel(c);
	if (a[0]) {
		a[1] = rctx_after_func(c, after_fn, &runs[1]);
		e[1] = errno;
	}
	for (int i = 0; i < 2; i++) {
		if (!a[i]) {
			if (!ret)
				ret = -e[i]; /* a[1] is tried only after a[0] */
			continue;
		}
		cr_assert(WAIT_UNTIL(atomic_load(&runs[i]) > 0, 10000),
			  "after-func %d accepted but never ran", i);
		rctx_after_release(a[i]);
	}
	th_sleep_ms(1);
	cr_assert_leq(atomic_load(&runs[0]), 1);
	cr_assert_leq(atomic_load(&runs[1]), 1);
	rctx_release(c);
	rctx__fault_disarm();
	if (runtime_running())
		deadline_fires();
	return ret;
}

/* The idle runtime thread woken for an after-func, whose submit of its
 * wake-up read may fail: it must still wake for the next deadline. */
static int op_runtime_submit(void)
{
	static atomic_int runs;
	rctx_t *c;
	rctx_after_t *a;
	int e;

	rctx__fault_disarm();
	deadline_fires(); /* started, heap empty */
	c = rctx_with_cancel(rctx_background());
	cr_assert_not_null(c);
	atomic_store(&runs, 0);
	rctx__fault_arm(cur_n);
	a = rctx_after_func(c, after_fn, &runs);
	e = errno;
	rctx_cancel(c);
	if (a) {
		cr_assert(WAIT_UNTIL(atomic_load(&runs) > 0, 10000), "after-func never ran");
		th_sleep_ms(1);
		cr_assert_eq(atomic_load(&runs), 1);
		rctx_after_release(a);
	}
	rctx__fault_disarm();
	deadline_fires();
	rctx_release(c);
	return a ? 0 : -e;
}

static uint64_t timers_live(void)
{
	struct rctx_runtime_stats st;

	cr_assert_eq(rctx_runtime_stats(&st), 0);
	return st.timers_live;
}

/* The runtime's deadline heap (first 256 entries) full: the next deadline
 * makes it grow, and waits in the overflow list if it cannot. Armed right
 * after that deadline is made, the runtime's realloc (at its next tick) is
 * most likely call 1. The heap grows only once per process. */
#define HEAP_FIRST 256
static int op_deadline_heap(void)
{
	static rctx_t *far[HEAP_FIRST + 1];
	rctx_t *near;
	int64_t t0;
	int e;

	rctx__fault_disarm();
	deadline_fires();
	cr_assert(WAIT_UNTIL(timers_live() == 0, 10000), "deadlines left in the heap");
	for (int i = 0; i < HEAP_FIRST; i++) {
		far[i] = rctx_with_timeout(rctx_background(), LONG_NS);
		cr_assert_not_null(far[i]);
	}
	deadline_fires(); /* wakes the thread: later deadlines wait for it */
	cr_assert(WAIT_UNTIL(timers_live() == HEAP_FIRST, 10000));
	th_sleep_ms(10); /* let it go back to sleep */
	far[HEAP_FIRST] = rctx_with_timeout(rctx_background(), LONG_NS);
	rctx__fault_arm(cur_n);
	cr_assert_not_null(far[HEAP_FIRST]);
	th_sleep_ms(100); /* a tick or two */
	t0 = rctx_now();
	near = rctx_with_timeout(rctx_background(), MS(50));
	e = errno;
	if (near) {
		cr_assert_eq(rctx_wait(near, t0 + LONG_NS / 2), 0, "deadline lost");
		cr_assert_eq(rctx_err(near), -ETIMEDOUT);
		rctx_release(near);
	}
	rctx__fault_disarm();
	for (int i = 0; i <= HEAP_FIRST; i++) {
		if (!far[i])
			continue;
		cr_assert_eq(rctx_err(far[i]), 0);
		cancel_check(far[i], -ECANCELED);
		rctx_release(far[i]);
	}
	return near ? 0 : -e;
}

static int op_done_fd(void)
{
	rctx_t *c = rctx_with_cancel(rctx_background());
	int fd;

	if (!c)
		return -errno;
	fd = rctx_done_fd(c);
	cr_assert(fd >= 0 || fd == -EMFILE, "done_fd: %d", fd);
	rctx_cancel(c);
	if (fd >= 0)
		cr_assert_eq(th_readable(fd, 10000), 1);
	cr_assert_eq(rctx_wait(c, RCTX_FOREVER), 0);
	cr_assert_eq(rctx_err(c), -ECANCELED);
	rctx_release(c);
	return fd < 0 ? fd : 0;
}

/* ---- the new kinds of contexts ------------------------------------------------ */

#define ERRNO_SENTINEL 4242

static int op_with_trace(void)
{
	struct rctx_trace t = { .trace_id = { 1 }, .span_id = { 2 }, .flags = 1 }, got;
	rctx_t *c;

	errno = ERRNO_SENTINEL;
	c = rctx_with_trace(rctx_background(), &t);
	if (!c)
		return -errno;
	cr_assert_eq(errno, ERRNO_SENTINEL, "with_trace changed errno");
	cr_assert_eq(rctx_trace_of(c, &got), 0);
	cr_assert_eq(memcmp(&got, &t, sizeof(t)), 0);
	rctx_release(c);
	return 0;
}

static atomic_int group_runs;

static int group_fn(rctx_t *ctx, void *arg)
{
	(void)ctx;
	atomic_fetch_add(&group_runs, 1);
	return arg ? -EIO : 0;
}

/* A group with a limit of 2 and three functions (a worker is reused), the
 * last failing: every function started runs exactly once, the group's
 * result is its failure. A deadline parent: the group's context is timed. */
static int op_group_go(void)
{
	rctx_t *p = rctx_with_timeout(rctx_background(), LONG_NS);
	rctx_group_t *g;
	int started = 0, ret = 0, res;

	if (!p)
		return -ENOMEM;
	errno = ERRNO_SENTINEL;
	g = rctx_group_new(p, 2);
	if (!g) {
		int e = errno;

		rctx_release(p);
		return -e;
	}
	cr_assert_eq(errno, ERRNO_SENTINEL, "group_new changed errno");
	atomic_store(&group_runs, 0);
	for (int i = 0; i < 3; i++) {
		int r;

		errno = ERRNO_SENTINEL;
		r = i < 2 ? rctx_group_go(g, group_fn, i == 1 ? &ret : NULL) :
			    rctx_group_try_go(g, group_fn, NULL);
		cr_assert_eq(errno, ERRNO_SENTINEL, "group_go changed errno");
		if (r == 0)
			started++;
		else if (r != -EAGAIN || i < 2)
			ret = ret ? ret : r;
		/* try_go's -EAGAIN: two running, a documented outcome */
		if (r && r != -ENOMEM && r != -EAGAIN)
			cr_assert(r == -ECANCELED, "go: %d", r);
	}
	res = rctx_group_wait(g);
	cr_assert_eq(atomic_load(&group_runs), started);
	cr_assert(res == 0 || res == -EIO, "group result %d", res);
	cr_assert_eq(rctx_err(rctx_group_ctx(g)), -ECANCELED);
	rctx_group_free(g);
	rctx_release(p);
	return ret == -ECANCELED ? 0 : ret;
}

/* rctx_group_submit with a limit of 1 on a ring: one NOP in flight, the
 * others queued (under a cancellable context: a parked slot each), the
 * last queued one's context cancelled. Every accepted request's callback runs
 * exactly once; the group is freed before the ring runs. */
#define GSUB 4
static int op_group_submit(void)
{
	struct done_rec recs[GSUB] = { { 0 } };
	rctx_ring_t *ring;
	rctx_group_t *g;
	rctx_t *c, *last;
	int err = 0;

	rctx__fault_disarm();
	cr_assert_eq(rctx_ring_create(&ring, 8), 0);
	c = rctx_with_cancel(rctx_background());
	cr_assert_not_null(c);
	last = rctx_with_cancel(c);
	cr_assert_not_null(last);
	rctx__fault_arm(cur_n);
	g = rctx_group_new(rctx_background(), 1);
	if (!g) {
		err = -errno;
		goto out;
	}
	for (int i = 0; i < GSUB; i++) {
		struct io_uring_sqe sqe = { 0 };
		int ret;

		io_uring_prep_nop(&sqe);
		errno = ERRNO_SENTINEL;
		ret = rctx_group_submit(g, ring, i == GSUB - 1 ? last : c, &sqe,
					rec_cb, &recs[i]);
		cr_assert_eq(errno, ERRNO_SENTINEL, "group_submit changed errno");
		if (ret < 0) {
			recs[i].calls = -1; /* never called */
			err = ret;
		}
	}
	rctx_cancel(last);
	rctx_group_free(g);
	drain_all(ring);
	for (int i = 0; i < GSUB; i++)
		if (recs[i].calls != -1)
			cr_assert_eq(recs[i].calls, 1, "request %d: %d callbacks", i, recs[i].calls);
	if (recs[GSUB - 1].calls == 1)
		cr_assert(recs[GSUB - 1].res == -ECANCELED || recs[GSUB - 1].res == 0,
			  "cancelled request: %d", recs[GSUB - 1].res);
out:
	rctx__fault_disarm();
	rctx_ring_destroy(ring);
	rctx_release(last);
	rctx_release(c);
	return err;
}

/* Whether the process now holds a descriptor it did not before: the
 * signal table's eventfd, made once and kept. */
static void note_kept_fd(int before)
{
	static bool seen;
	int now = th_fd_count();

	if (now == before + 1 && !seen) {
		seen = true;
		kept_fds = 1;
	}
}

static void sig_nop(int sig)
{
	(void)sig;
}

/*
 * The signal table's reader is started once per process, by the first signal
 * context made, and then runs for good: its calls (eventfd, calloc, malloc)
 * fail, one each, in the first runs (by name: once the eventfd exists, the
 * countdown would skip the malloc), then the countdown takes over.
 */
static const struct {
	const char *call;
	unsigned long nth;
} reader_calls[] = { { "eventfd", 1 }, { "calloc", 1 }, { "malloc", 2 } };
#define READER_CALLS (sizeof(reader_calls) / sizeof(reader_calls[0]))

static void arm_signals(void)
{
	static unsigned long step, skip;

	if (cur_n == 1)
		skip = 0;
	if (step < READER_CALLS) {
		rctx__fault_arm_call(reader_calls[step].call, reader_calls[step].nth);
		step++;
		skip++;
	} else {
		rctx__fault_arm(cur_n - skip);
	}
}

/* A signal context for SIGUSR1 fired by a raise(); the handler the test
 * installed before comes back after the release. */
static int op_with_signals(void)
{
	static const int sigs[] = { SIGUSR1, SIGUSR1 };
	struct sigaction sa = { .sa_handler = sig_nop }, old;
	rctx_t *c;
	int fds, e;

	rctx__fault_disarm();
	deadline_fires(); /* the runtime running: its start is with_deadline's */
	/* and asleep with no deadline, so that the Nth call is this thread's
	 * (the table's reader sites fail only before the first success) */
	cr_assert(WAIT_UNTIL(timers_live() == 0, 10000));
	cr_assert(th_runtime_settle());
	th_sleep_ms(10);
	fds = th_fd_count();
	sigemptyset(&sa.sa_mask);
	cr_assert_eq(sigaction(SIGUSR1, &sa, NULL), 0);
	arm_signals();
	errno = ERRNO_SENTINEL;
	c = rctx_with_signals(rctx_background(), sigs, 2);
	e = errno;
	if (c) {
		cr_assert_eq(e, ERRNO_SENTINEL, "with_signals changed errno");
		cr_assert_eq(raise(SIGUSR1), 0);
		cr_assert_eq(rctx_wait(c, rctx_now() + LONG_NS), 0, "N=%lu: signal never seen", cur_n);
		cr_assert_eq(rctx_err(c), -ECANCELED);
		cr_assert_eq(rctx_cause_signal(rctx_cause(c)), SIGUSR1);
		rctx_release(c);
	}
	rctx__fault_disarm();
	/* Restored when the release returned (or, on failure, at once). */
	cr_assert(sigaction(SIGUSR1, NULL, &old) == 0 && old.sa_handler == sig_nop,
		  "disposition not restored");
	signal(SIGUSR1, SIG_DFL);
	note_kept_fd(fds);
	return c ? 0 : -e;
}

/* An fd context on a socket pair: a hang-up context ends when the peer
 * closes, an fd context for POLLIN is released before any event. */
static uint64_t kept_in_flight(void)
{
	struct rctx_ring_stats st;

	cr_assert_eq(rctx_runtime_ring_stats(&st), 0);
	return st.in_flight;
}

static int op_with_fd(void)
{
	rctx_t *h, *f = NULL;
	int sv[2], ret = 0;
	uint64_t base;

	rctx__fault_disarm();
	cr_assert(th_runtime_settle());
	base = kept_in_flight();
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	rctx__fault_arm(cur_n);
	errno = ERRNO_SENTINEL;
	h = rctx_with_hangup(rctx_background(), sv[0]);
	if (!h)
		ret = -errno;
	else
		cr_assert_eq(errno, ERRNO_SENTINEL, "with_hangup changed errno");
	if (h) {
		errno = ERRNO_SENTINEL;
		f = rctx_with_fd(h, sv[0], POLLIN, 7);
		if (!f)
			ret = -errno;
		else
			cr_assert_eq(errno, ERRNO_SENTINEL, "with_fd changed errno");
	}
	if (f) {
		/* Done early only if a poll could not be submitted (its
		 * cause), f's own or its parent's. */
		cr_assert(!rctx_err(f) || rctx_err(h) || rctx_cause(f) == -ENOMEM ||
			  rctx_cause(f) == -EAGAIN, "N=%lu: fd context: cause %d",
			  cur_n, rctx_cause(f));
		rctx_release(f);
	}
	if (h) {
		cr_assert(rctx_err(h) == 0 || rctx_cause(h) == -ENOMEM ||
			  rctx_cause(h) == -EAGAIN, "N=%lu: hang-up context: err %d cause %d",
			  cur_n, rctx_err(h), rctx_cause(h));
		close(sv[1]);
		sv[1] = -1;
		cr_assert_eq(rctx_wait(h, rctx_now() + LONG_NS), 0, "hang-up never seen");
		cr_assert_eq(rctx_err(h), -ECANCELED);
		rctx_release(h);
	}
	rctx__fault_disarm();
	close(sv[0]);
	if (sv[1] >= 0)
		close(sv[1]);
	/* The released contexts' polls end on the runtime thread: wait for
	 * what they hold to go back before the leak check. */
	cr_assert(WAIT_UNTIL(kept_in_flight() == base, 10000), "polls never ended");
	cr_assert(th_runtime_settle());
	return ret;
}

/* ---- rings -------------------------------------------------------------------- */

static int op_ring_create(void)
{
	rctx_ring_t *ring = NULL;
	int ret = rctx_ring_create(&ring, 8);

	if (ret < 0)
		return ret;
	rctx_ring_destroy(ring);
	return 0;
}

/* More requests than the SQ holds (flushes) and than one slot chunk (300 >
 * 256), half of them under a deadline (a linked timeout each). */
#define NSUB 300
static int op_submit(void)
{
	static struct done_rec recs[NSUB];
	rctx_ring_t *ring;
	rctx_t *c;
	int err = 0;

	rctx__fault_disarm();
	cr_assert_eq(rctx_ring_create(&ring, 4), 0);
	c = rctx_with_timeout(rctx_background(), LONG_NS);
	cr_assert_not_null(c);
	rctx__fault_arm(cur_n);
	memset(recs, 0, sizeof(recs));
	for (int i = 0; i < NSUB; i++) {
		struct io_uring_sqe sqe = { 0 };
		int ret;

		io_uring_prep_nop(&sqe);
		ret = rctx_submit(ring, i & 1 ? c : rctx_background(), &sqe, rec_cb, &recs[i]);
		if (ret < 0) {
			recs[i].calls = -1; /* never called */
			err = ret;
		}
	}
	drain_all(ring);
	for (int i = 0; i < NSUB; i++)
		if (recs[i].calls != -1)
			cr_assert_eq(recs[i].calls, 1, "request %d: %d callbacks", i, recs[i].calls);
	rctx_ring_destroy(ring);
	cancel_check(c, -ECANCELED);
	rctx_release(c);
	return err;
}

/* rctx_ring_run with queued requests and a cancel to send: a failed submit
 * must neither lose them nor make the run sleep on SQEs never sent. */
static int op_ring_run(void)
{
	struct done_rec recs[4] = { { 0 } };
	rctx_ring_t *ring;
	rctx_t *c;
	int pfd[2], ret;
	int64_t t0;

	rctx__fault_disarm();
	cr_assert_eq(pipe2(pfd, O_CLOEXEC), 0);
	cr_assert_eq(rctx_ring_create(&ring, 8), 0);
	c = rctx_with_cancel(rctx_background());
	cr_assert_not_null(c);
	for (int i = 0; i < 3; i++) {
		struct io_uring_sqe sqe = { 0 };

		io_uring_prep_nop(&sqe);
		cr_assert_eq(rctx_submit(ring, rctx_background(), &sqe, rec_cb, &recs[i]), 0);
	}
	{
		struct io_uring_sqe sqe = { 0 };

		io_uring_prep_poll_add(&sqe, pfd[0], POLLIN);
		cr_assert_eq(rctx_submit(ring, c, &sqe, rec_cb, &recs[3]), 0);
	}
	rctx__fault_arm(cur_n);
	t0 = rctx_now();
	ret = rctx_ring_run(ring, rctx_now() + LONG_NS);
	cr_assert_lt(rctx_now() - t0, LONG_NS / 2, "run slept with its SQEs unsent");
	rctx_cancel(c); /* same thread: the cancel goes out from the next run */
	while (rctx_ring_pending(ring) && rctx_now() - t0 < LONG_NS) {
		int r = rctx_ring_run(ring, rctx_now() + LONG_NS);

		if (r < 0 && !ret)
			ret = r;
	}
	rctx__fault_disarm();
	cr_assert_eq(rctx_ring_pending(ring), 0, "requests never completed");
	for (int i = 0; i < 4; i++)
		cr_assert_eq(recs[i].calls, 1, "request %d: %d callbacks", i, recs[i].calls);
	cr_assert_eq(recs[3].res, -ECANCELED);
	rctx_ring_destroy(ring);
	rctx_release(c);
	close(pfd[0]);
	close(pfd[1]);
	return ret < 0 ? ret : 0;
}

/* rctx_ring_destroy with requests in flight: they are cancelled and their
 * callbacks run before the ring is freed, whatever fails. */
static int op_ring_destroy(void)
{
	struct done_rec recs[3] = { { 0 } };
	rctx_ring_t *ring;
	int pfd[2];

	rctx__fault_disarm();
	cr_assert_eq(pipe2(pfd, O_CLOEXEC), 0);
	cr_assert_eq(rctx_ring_create(&ring, 8), 0);
	for (int i = 0; i < 3; i++) {
		struct io_uring_sqe sqe = { 0 };

		io_uring_prep_poll_add(&sqe, pfd[0], POLLIN);
		cr_assert_eq(rctx_submit(ring, rctx_background(), &sqe, rec_cb, &recs[i]), 0);
	}
	cr_assert_geq(rctx_ring_run(ring, 0), 0);
	rctx__fault_arm(cur_n);
	rctx_ring_destroy(ring);
	rctx__fault_disarm();
	for (int i = 0; i < 3; i++)
		cr_assert_eq(recs[i].calls, 1, "request %d: %d callbacks", i, recs[i].calls);
	close(pfd[0]);
	close(pfd[1]);
	return 0;
}

/* rctx_ring_flush: a failed submit is reported, the SQEs stay queued. */
static int op_ring_flush(void)
{
	struct done_rec rec = { 0 };
	struct io_uring_sqe sqe = { 0 };
	rctx_ring_t *ring;
	int ret;

	rctx__fault_disarm();
	cr_assert_eq(rctx_ring_create(&ring, 8), 0);
	io_uring_prep_nop(&sqe);
	cr_assert_eq(rctx_submit(ring, rctx_background(), &sqe, rec_cb, &rec), 0);
	rctx__fault_arm(cur_n);
	ret = rctx_ring_flush(ring);
	rctx__fault_disarm();
	drain_all(ring);
	cr_assert_eq(rec.calls, 1);
	rctx_ring_destroy(ring);
	return ret < 0 ? ret : 0;
}

/* ---- the thread's ring and blocking calls, each in a fresh thread ---------- */

static int (*thread_op)(void);

static void *thread_main(void *p)
{
	*(int *)p = thread_op();
	return NULL;
}

/* Run op in a new thread, whose ring is destroyed when it exits. */
static int in_thread(int (*op)(void))
{
	pthread_t t;
	int ret = 0;

	thread_op = op;
	cr_assert_eq(pthread_create(&t, NULL, thread_main, &ret), 0);
	cr_assert_eq(pthread_join(t, NULL), 0);
	return ret;
}

static int thread_ring_body(void)
{
	return rctx_thread_ring() ? 0 : -errno;
}

static int op_thread_ring(void)
{
	return in_thread(thread_ring_body);
}

static char file_path[64];

static int blocking_body(void)
{
	char out[32] = "fault injection", in[32] = { 0 };
	rctx_t *c = rctx_with_cancel(rctx_background());
	ssize_t w, r = 0;
	int fd, ret = 0;

	if (!c)
		return -ENOMEM;
	fd = rctx_openat(c, AT_FDCWD, file_path, O_RDWR | O_CLOEXEC, 0);
	if (fd < 0) {
		ret = fd;
		goto out;
	}
	w = rctx_write(c, fd, out, sizeof(out), 0);
	if (w >= 0)
		cr_assert_eq(w, (ssize_t)sizeof(out));
	else
		ret = (int)w;
	if (w >= 0) {
		r = rctx_read(c, fd, in, sizeof(in), 0);
		if (r >= 0) {
			cr_assert_eq(r, (ssize_t)sizeof(out));
			cr_assert_str_eq(in, out);
		} else {
			ret = (int)r;
		}
	}
	close(fd);
out:
	cancel_check(c, -ECANCELED);
	rctx_release(c);
	return ret;
}

static int op_blocking(void)
{
	return in_thread(blocking_body);
}

static int segs_res;
static bool segs_called;

static void segs_cb(void *arg, int res, void *data, unsigned flags)
{
	(void)arg;
	(void)data;
	(void)flags;
	cr_assert(!segs_called, "a callback ran twice");
	segs_called = true;
	segs_res = res;
}

/* Two writes and a sync as one request (a chain on the keeper's ring). */
static int segs_body(void)
{
	struct iovec iov[] = { { "fault", 5 }, { "chain", 5 } };
	int64_t off[] = { 0, 16 };
	rctx_ring_t *ring;
	int fd, ret;

	ret = rctx_ring_create(&ring, 8);
	if (ret < 0)
		return ret;
	fd = open(file_path, O_RDWR | O_CLOEXEC);
	cr_assert_geq(fd, 0);
	segs_called = false;
	ret = rctx_async_write_segs(ring, rctx_background(), fd, iov, off, 2, RCTX_SEGS_DATASYNC,
				    segs_cb, NULL);
	while (!ret && !segs_called) {
		ret = rctx_ring_run(ring, RCTX_FOREVER);
		ret = ret < 0 ? ret : 0;
	}
	if (!ret && segs_called) {
		ret = segs_res < 0 ? segs_res : 0;
		if (segs_res >= 0)
			cr_assert_eq(segs_res, 10);
	}
	close(fd);
	rctx_ring_destroy(ring);
	cr_assert(segs_called || ret, "an accepted request's callback never ran");
	return ret;
}

static int op_segs(void)
{
	return in_thread(segs_body);
}

static void make_file(void)
{
	int fd;

	snprintf(file_path, sizeof(file_path), "/tmp/rctx-fault-%d", (int)getpid());
	fd = open(file_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	cr_assert_geq(fd, 0);
	close(fd);
}

/* ---- the tests ------------------------------------------------------------------ */

/* Constructors report failure as NULL, and why in errno: ENOMEM. */
static const int enomem[] = { -ENOMEM, 0 };
/* ... or, when they start the runtime thread, its eventfd's EMFILE,
 * io_uring_queue_init's ENOMEM or pthread_create's EAGAIN. */
static const int rt_errs[] = { -ENOMEM, -EMFILE, -EAGAIN, 0 };
/* ... or the signal table's eventfd (EMFILE). */
static const int sig_errs[] = { -ENOMEM, -EMFILE, 0 };
/* rctx_submit, rctx_ring_run, rctx_ring_flush, blocking calls: -ENOMEM, or
 * the error of a failed io_uring_submit (the injected -EAGAIN). */
static const int submit_errs[] = { -ENOMEM, -EAGAIN, 0 };
static const int blocking_errs[] = { -ENOMEM, -EAGAIN, 0 };
/* rctx_async_write_segs: those, and its ring's creation (-EMFILE). */
static const int segs_errs[] = { -ENOMEM, -EAGAIN, -EMFILE, 0 };
/* rctx_ring_create: io_uring_queue_init's -ENOMEM, eventfd's -EMFILE. */
static const int create_errs[] = { -ENOMEM, -EMFILE, 0 };
/* rctx_done_fd: eventfd's -EMFILE (its context's creation: -ENOMEM). */
static const int emfile[] = { -EMFILE, -ENOMEM, 0 };

/* rctx_group_go: -ENOMEM, pthread_create's -EAGAIN. */
static const int group_errs[] = { -ENOMEM, -EAGAIN, 0 };
/* rctx_group_submit: -ENOMEM, eventfd's -EMFILE, rctx_submit's errors. */
static const int group_submit_errs[] = { -ENOMEM, -EMFILE, -EAGAIN, 0 };

struct driver {
	const char *name;
	int (*op)(void);
	const int *allowed;
};

/* Runtime start-up first: each Test runs in a fresh process. */
static const struct driver drivers[] = {
	{ "with_deadline", op_with_deadline, rt_errs },
	{ "after_func", op_after_func, rt_errs },
	{ "runtime_submit", op_runtime_submit, enomem },
	{ "deadline_heap", op_deadline_heap, enomem },
	{ "with_cancel", op_with_cancel, enomem },
	{ "with_value", op_with_value, enomem },
	{ "without_cancel", op_without_cancel, enomem },
	{ "done_fd", op_done_fd, emfile },
	{ "ring_create", op_ring_create, create_errs },
	{ "rctx_submit", op_submit, submit_errs },
	{ "ring_run", op_ring_run, submit_errs },
	{ "ring_destroy", op_ring_destroy, submit_errs },
	{ "ring_flush", op_ring_flush, submit_errs },
	{ "thread_ring", op_thread_ring, create_errs },
	{ "blocking", op_blocking, blocking_errs },
	{ "async_write_segs", op_segs, segs_errs },
	{ "with_trace", op_with_trace, enomem },
	{ "group_go", op_group_go, group_errs },
	{ "group_submit", op_group_submit, group_submit_errs },
	{ "with_signals", op_with_signals, sig_errs },
	{ "with_fd", op_with_fd, enomem },
	{ "dump", op_dump, enomem },
};

static unsigned long drive_named(const char *name)
{
	for (size_t i = 0; i < sizeof(drivers) / sizeof(drivers[0]); i++)
		if (!strcmp(drivers[i].name, name)) {
			unsigned long n;

			bool file = drivers[i].op == op_blocking || drivers[i].op == op_segs;

			if (file)
				make_file();
			n = drive(name, drivers[i].op, drivers[i].allowed);
			if (file)
				unlink(file_path);
			return n;
		}
	cr_assert_fail("no driver %s", name);
	return 0;
}

#define DRIVER_TEST(name_, min_)					\
	Test(fault, name_)						\
	{								\
		cr_assert_geq(drive_named(#name_), min_,		\
			      #name_ ": fewer failure points than expected"); \
	}

/* with_deadline starts the runtime: eventfd, queue_init, pthread_create. */
DRIVER_TEST(with_deadline, 4)
DRIVER_TEST(after_func, 4)
DRIVER_TEST(runtime_submit, 2)
DRIVER_TEST(deadline_heap, 3)
DRIVER_TEST(with_cancel, 2)
DRIVER_TEST(with_value, 1)
DRIVER_TEST(without_cancel, 2)
DRIVER_TEST(done_fd, 2)
DRIVER_TEST(ring_create, 4)
DRIVER_TEST(rctx_submit, 3)
DRIVER_TEST(ring_run, 1)
DRIVER_TEST(ring_destroy, 1)
DRIVER_TEST(ring_flush, 1)
DRIVER_TEST(thread_ring, 4)
DRIVER_TEST(blocking, 5)
DRIVER_TEST(async_write_segs, 4)
DRIVER_TEST(with_trace, 1)
DRIVER_TEST(group_go, 4)
DRIVER_TEST(group_submit, 4)
DRIVER_TEST(with_signals, 3)
DRIVER_TEST(with_fd, 3)
DRIVER_TEST(dump, DUMP_KIDS + 3)

/* ---- every allocation failure of a constructor: NULL and errno ENOMEM ------- */

static rctx_t *ctor_parent; /* a live cancellable parent */
static int ctor_fd[2];      /* a socket pair for the fd contexts */

static void *ctor_cancel(void) { return rctx_with_cancel(ctor_parent); }
static void *ctor_deadline(void)
{
	return rctx_with_deadline(ctor_parent, rctx_now() + LONG_NS);
}
static void *ctor_timeout(void) { return rctx_with_timeout_cause(ctor_parent, LONG_NS, 9); }
static void *ctor_value(void) { return rctx_with_value(ctor_parent, &ctor_fd, NULL); }
static void *ctor_values(void)
{
	static const void *const keys[] = { &ctor_fd[0], &ctor_fd[1] };
	static void *const vals[] = { NULL, NULL };

	return rctx_with_values(ctor_parent, 2, keys, vals);
}
static void *ctor_without(void) { return rctx_without_cancel(ctor_parent); }
static void *ctor_any(void)
{
	rctx_t *o[] = { ctor_parent, rctx_background() };

	return rctx_with_any(ctor_parent, o, 2);
}
static void *ctor_trace(void)
{
	static const struct rctx_trace t = { .trace_id = { 1 }, .span_id = { 2 } };

	return rctx_with_trace(ctor_parent, &t);
}
static void *ctor_signals(void)
{
	int sig = SIGUSR2;

	return rctx_with_signals(ctor_parent, &sig, 1);
}
static void *ctor_fd_watch(void) { return rctx_with_fd(ctor_parent, ctor_fd[0], POLLIN, 5); }
static void *ctor_hangup(void) { return rctx_with_hangup(ctor_parent, ctor_fd[0]); }
static void *ctor_group(void) { return rctx_group_new(ctor_parent, 2); }
static void *ctor_after(void) { return rctx_after_func(ctor_parent, after_fn, NULL); }

static void free_ctx(void *p) { rctx_release(p); }
static void free_group(void *p) { rctx_group_free(p); }
static void free_after(void *p)
{
	cr_assert(rctx_after_stop(p));
	rctx_after_release(p);
}

static const struct ctor {
	const char *name;
	void *(*make)(void);
	void (*free)(void *);
} ctors[] = {
	{ "with_cancel", ctor_cancel, free_ctx },
	{ "with_deadline", ctor_deadline, free_ctx },
	{ "with_timeout_cause", ctor_timeout, free_ctx },
	{ "with_value", ctor_value, free_ctx },
	{ "with_values", ctor_values, free_ctx },
	{ "without_cancel", ctor_without, free_ctx },
	{ "with_any", ctor_any, free_ctx },
	{ "with_trace", ctor_trace, free_ctx },
	{ "with_signals", ctor_signals, free_ctx },
	{ "with_fd", ctor_fd_watch, free_ctx },
	{ "with_hangup", ctor_hangup, free_ctx },
	{ "group_new", ctor_group, free_group },
	{ "after_func", ctor_after, free_after },
};

/* Fail the nth call of each allocator in turn (only those are counted):
 * every NULL says ENOMEM; a success leaves errno alone. Returns the number
 * of NULLs. */
static unsigned long ctor_drive(const struct ctor *c)
{
	static const char *const allocs[] = { "malloc", "calloc", "aligned_alloc",
					      "realloc", "strdup" };
	unsigned long nulls = 0;

	for (size_t a = 0; a < sizeof(allocs) / sizeof(allocs[0]); a++) {
		for (unsigned long n = 1; n <= MAX_N; n++) {
			unsigned long injected;
			void *obj;
			int e;

			rctx__fault_arm_call(allocs[a], n);
			errno = ERRNO_SENTINEL;
			obj = c->make();
			e = errno;
			injected = rctx__fault_injected();
			rctx__fault_disarm();
			if (!obj) {
				cr_assert_eq(e, ENOMEM, "%s, %s #%lu: errno %d", c->name,
					     allocs[a], n, e);
				nulls++;
			} else {
				cr_assert_eq(e, ERRNO_SENTINEL, "%s: errno changed on success",
					     c->name);
				c->free(obj);
			}
			if (!injected)
				break;
		}
	}
	return nulls;
}

Test(fault, constructor_allocation_failures_set_enomem)
{
	struct sigaction sa = { .sa_handler = sig_nop };

	sigemptyset(&sa.sa_mask);
	cr_assert_eq(sigaction(SIGUSR2, &sa, NULL), 0);
	deadline_fires(); /* the runtime started: what fails is the constructor's */
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ctor_fd), 0);
	ctor_parent = rctx_with_cancel(rctx_background());
	cr_assert_not_null(ctor_parent);
	for (size_t i = 0; i < sizeof(ctors) / sizeof(ctors[0]); i++)
		cr_assert_geq(ctor_drive(&ctors[i]), 1, "%s: no allocation failed it",
			      ctors[i].name);
	rctx_release(ctor_parent);
	close(ctor_fd[0]);
	close(ctor_fd[1]);
	cr_assert(th_runtime_settle());
}

/* The runtime's first deadline heap (256 entries) full: growing it fails
 * (the only realloc the runtime makes then), the deadline waits in the
 * overflow list and still fires on time; the heap grows at the next tick. */
static void heap_growth(void)
{
	static rctx_t *far[HEAP_FIRST + 1];
	rctx_t *near;

	deadline_fires();
	/* An empty heap of HEAP_FIRST entries: nothing left for the runtime
	 * to arm or remove, so only the last far deadline makes it grow. */
	cr_assert(th_runtime_settle());
	cr_assert(WAIT_UNTIL(timers_live() == 0, TH_PATIENCE_MS));
	for (int i = 0; i <= HEAP_FIRST; i++) {
		if (i == HEAP_FIRST)
			rctx__fault_arm_call("realloc", 1);
		far[i] = rctx_with_timeout(rctx_background(), LONG_NS);
		cr_assert_not_null(far[i]);
	}
	near = rctx_with_timeout(rctx_background(), MS(50));
	cr_assert_not_null(near);
	cr_assert_eq(rctx_wait(near, rctx_now() + LONG_NS / 2), 0, "deadline lost");
	cr_assert_eq(rctx_err(near), -ETIMEDOUT);
	cr_assert_eq(rctx__fault_injected(), 1, "the heap never grew");
	rctx__fault_disarm();
	rctx_release(near);
	for (int i = 0; i <= HEAP_FIRST; i++) {
		cr_assert_eq(rctx_err(far[i]), 0);
		cancel_check(far[i], -ECANCELED);
		rctx_release(far[i]);
	}
	cr_assert(WAIT_UNTIL(timers_live() == 0, 10000));
	cr_assert_eq(__lsan_do_recoverable_leak_check(), 0);
	points++;
}

Test(fault, heap_growth_fails)
{
	heap_growth();
}

Test(fault, every_call_site_fails)
{
	struct rctx__fault_site *const *sites;
	size_t n = rctx__fault_sites(&sites), hit = 0, missed = 0;

	cr_assert_gt(n, 0);
	for (size_t i = 0; i < sizeof(drivers) / sizeof(drivers[0]); i++) {
		/* After the runtime start-up drivers, before the heap grows. */
		if (drivers[i].op == op_deadline_heap)
			heap_growth();
		drive_named(drivers[i].name);
	}
	for (size_t i = 0; i < n; i++) {
		const struct rctx__fault_site *s = sites[i];

		if (atomic_load(&s->failed)) {
			hit++;
			continue;
		}
		missed++;
		cr_log_error("never failed: %s:%d %s() %s", s->file, s->line, s->func, s->call);
	}
	fprintf(stderr, "fault: %lu failure points driven, %zu of %zu call sites failed\n",
		points, hit, n);
	cr_assert_eq(missed, 0, "%zu call sites never failed", missed);
}
