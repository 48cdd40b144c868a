/* SPDX-License-Identifier: MIT */
/*
 * The runtime thread: one per process, started on first need, stopped at
 * exit. It keeps every pending deadline in a min-heap and arms the earliest
 * one as a single absolute IORING_OP_TIMEOUT on its ring, which is always
 * being waited on; it also runs after-funcs.
 *
 * One kernel timeout for all deadlines, not one each: every
 * IORING_OP_TIMEOUT_REMOVE walks the ring's whole timeout list (measured:
 * releasing 40k live per-context timers took 4 s), while the heap inserts and
 * removes in O(log n) with no system call.
 *
 * Other threads talk to it through three lock-free stacks (arm, remove, run)
 * and an eventfd. Wake-ups are rationed: the thread publishes the time it
 * will wake anyway (the earliest deadline, or its next tick, every
 * RT_TICK_NS while deadlines are pending); a new deadline at or after that
 * time costs its creator no system call. A deadline context cancelled before
 * the thread took it from the queue costs nothing more.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "heap.h"
#include "internal.h"

#define RT_ENTRIES 64
#define RT_TICK_NS (50 * 1000000LL)
#define RT_EXIT_GRACE_NS (100 * 1000000LL) /* for kept requests at exit */

/* user_data (lib/uring.h): UD_TARGET, a ring watched for the keeper
 * (lib/keeper.c); UD_TIMEOUT, the deadline timer (its generation);
 * UD_CANCEL, its removal; UD_WAKE. */
enum { RT_RUNNING, RT_EXITED, RT_HELD }; /* rt.exit_state */
enum { TS_NEW, TS_ARMED, TS_DONE }; /* struct rctx_deadline.tstate */
/* runtime -> context: the runtime holds references to the deadline
 * contexts and after-func records it keeps, and puts them (inherent). */

static bool deadline_less(const void *x, const void *y)
{
	return ((const struct rctx_deadline *)x)->cc.deadline <
	       ((const struct rctx_deadline *)y)->cc.deadline;
}

static void deadline_set_idx(void *x, size_t i)
{
	((struct rctx_deadline *)x)->heap_idx = i;
}

static struct runtime {
	pthread_mutex_t start_lock;
	pthread_t thread;
	_Atomic bool running;
	_Atomic bool stopping;
	_Atomic int exit_state;         /* futex word of rt_stop() */
	struct io_uring ring;
	struct wake wake;
	_Atomic int64_t next_wakeup; /* INT64_MIN while awake */
	_Atomic(struct rctx_deadline *) arm_q;
	_Atomic(struct rctx_deadline *) remove_q;
	_Atomic uint32_t backlog;       /* arms and removals ever queued */
	_Atomic(struct rctx_after *) run_q;
	/* Runtime-thread only: */
	struct heap heap;               /* of struct rctx_deadline */
	struct rctx_deadline *overflow; /* waiting for heap memory */
	uint64_t tgen;                  /* generation of the kernel timeout */
	bool tlive;
	int64_t tarmed_for;
	struct __kernel_timespec ts;    /* the kernel timeout's, until submit */
	struct {
		_Atomic uint64_t armed, skipped, fired, removed, live, afters, wakeups;
	} st;
} rt = {
	.start_lock = PTHREAD_MUTEX_INITIALIZER,
	.wake = { .efd = -1 },
	.heap = HEAP_INIT(deadline_less, deadline_set_idx),
};

/* An SQE on the runtime ring (the full-SQ policy: lib/uring.h). */
static struct io_uring_sqe *rt_sqe(void)
{
	return rctx__sqe_get_retry(&rt.ring);
}

static void rt_arm_wake_read(void)
{
	rctx__wake_arm(&rt.wake, rt_sqe(), ud_make(UD_WAKE, 0));
}

/* Wake the thread unless it will be awake before `when` anyway. */
static void rt_wake_before(int64_t when)
{
	if (when >= atomic_load_explicit(&rt.next_wakeup, memory_order_seq_cst))
		return;
	rctx__wake_signal(&rt.wake);
}

/* Whether the caller is the runtime thread. */
bool rctx__rt_self(void)
{
	return atomic_load_explicit(&rt.running, memory_order_acquire) &&
	       pthread_equal(pthread_self(), rt.thread);
}

/* Wake the thread now (work queued for it). */
static void rt_wake(void)
{
	rt_wake_before(INT64_MIN + 1);
}

/*
 * Arms and removals that are not due wait for the thread's next turn, but
 * every RT_BACKLOG_WAKE of them wake it: the contexts they hold then go back
 * to their threads' caches (lib/pool.h) before many more are made.
 */
#define RT_BACKLOG_WAKE 256

static void rt_backlog(void)
{
	uint32_t n = atomic_fetch_add_explicit(&rt.backlog, 1, memory_order_relaxed);

	if ((n & (RT_BACKLOG_WAKE - 1)) == RT_BACKLOG_WAKE - 1)
		rt_wake();
}

/* ---- the thread ----------------------------------------------------------- */

static void expire(struct rctx_deadline *d)
{
	d->tstate = TS_DONE;
	/* runtime -> context: the timer cancels its context (inherent). */
	if (rctx__timer_expired(d))
		stat_add_owner(&rt.st.fired, 1);
	rctx__obj_put(&d->cc.c.hdr); /* the timer's reference */
}

static void expire_due(void)
{
	int64_t now = rctx_now();
	struct rctx_deadline *d;

	while ((d = heap_min(&rt.heap)) && d->cc.deadline <= now) {
		heap_remove(&rt.heap, 0);
		stat_sub_owner(&rt.st.live, 1);
		expire(d);
	}
}

/*
 * Take on the deadlines of the arm queue (and those that waited for heap
 * memory): into the heap, or dropped at once if already done. One already
 * due goes into the heap too: expire_due() ends it after drain_remove() and
 * after this whole batch, so whoever sees it expire sees everything queued
 * before it settled (tests wait for a short deadline to know that).
 */
static void drain_arm(void)
{
	struct rctx_deadline *d = LFSTACK_TAKE(&rt.arm_q), *next;

	/* Entries that found no heap memory last time go first. */
	if (rt.overflow) {
		struct rctx_deadline *o = rt.overflow;

		while (o->arm_next)
			o = o->arm_next;
		o->arm_next = d;
		d = rt.overflow;
		rt.overflow = NULL;
	}
	for (; d; d = next) {
		next = d->arm_next;
		if (cancel_err(&d->cc)) {
			d->tstate = TS_DONE;
			stat_add_owner(&rt.st.skipped, 1);
			rctx__obj_put(&d->cc.c.hdr);
		} else if (!heap_push(&rt.heap, d)) {
			d->arm_next = rt.overflow;
			rt.overflow = d;
		} else {
			d->tstate = TS_ARMED;
			stat_add_owner(&rt.st.armed, 1);
			stat_add_owner(&rt.st.live, 1);
		}
	}
}

static void drain_remove(void)
{
	struct rctx_deadline *d = LFSTACK_TAKE(&rt.remove_q), *next;

	for (; d; d = next) {
		next = d->remove_next;
		if (d->tstate == TS_ARMED) {
			heap_remove(&rt.heap, d->heap_idx);
			d->tstate = TS_DONE;
			stat_sub_owner(&rt.st.live, 1);
			stat_add_owner(&rt.st.removed, 1);
			rctx__obj_put(&d->cc.c.hdr); /* the heap's reference */
		}
		rctx__obj_put(&d->cc.c.hdr); /* the queue's reference */
	}
}

/* Keep the kernel timeout at or before the earliest deadline. A timeout
 * left armed for a deadline that went away just wakes us once, early. */
static void sync_kernel_timer(void)
{
	struct rctx_deadline *first = heap_min(&rt.heap);
	int64_t want = first ? first->cc.deadline : RCTX_FOREVER;
	struct io_uring_sqe *sqe;

	if (want == RCTX_FOREVER || (rt.tlive && want >= rt.tarmed_for))
		return;
	if (rt.tlive) {
		sqe = rt_sqe();
		io_uring_prep_timeout_remove(sqe, ud_make(UD_TIMEOUT, rt.tgen), 0);
		io_uring_sqe_set_data64(sqe, ud_make(UD_CANCEL, 0));
	}
	rt.tgen++;
	rt.ts = ns_to_kts(want);
	sqe = rt_sqe();
	io_uring_prep_timeout(sqe, &rt.ts, 0, IORING_TIMEOUT_ABS);
	io_uring_sqe_set_data64(sqe, ud_make(UD_TIMEOUT, rt.tgen));
	rt.tlive = true;
	rt.tarmed_for = want;
}

static void run_afters(bool call)
{
	struct rctx_after *a, *next;

	/* The stack is LIFO: reverse it to run after-funcs in queue order. */
	a = LIST_REVERSE(LFSTACK_TAKE(&rt.run_q), run_next);
	for (; a; a = next) {
		next = a->run_next;
		if (call) {
			a->fn(a->arg);
			stat_add_owner(&rt.st.afters, 1);
		}
		rctx__obj_put(&a->c.hdr);
	}
}

/* The runtime's completion dispatcher (lib/uring.h). */
static void rt_handle_cqe(void *owner, const struct io_uring_cqe *cqe)
{
	uint64_t ud = cqe->user_data;

	(void)owner; /* the runtime is a singleton */
	switch (ud_tag(ud)) {
	case UD_WAKE:
		stat_add_owner(&rt.st.wakeups, 1);
		rt_arm_wake_read();
		break;
	case UD_TIMEOUT:
		if (ud_payload(ud) == ud_payload(ud_make(UD_TIMEOUT, rt.tgen)))
			rt.tlive = false; /* fired or removed */
		if (cqe->res == -ETIME)
			expire_due();
		break;
	case UD_TARGET:
		/* A ring watched for the keeper has completions. */
		if (ud)
			rctx__keeper_ring_ready((struct rctx_ring *)(uintptr_t)ud);
		break;
	case UD_CANCEL:
		break;
	}
}

static bool queues_pending(void)
{
	/* seq_cst: after the store of next_wakeup, against the pushers'
	 * push-then-load (rt_wake_before). */
	return atomic_load_explicit(&rt.arm_q, memory_order_seq_cst) ||
	       atomic_load_explicit(&rt.run_q, memory_order_seq_cst) ||
	       rctx__keeper_queued();
}

/*
 * Leave the loop. The keeper's requests are cancelled; if the kernel still
 * holds some (stuck disk I/O), this thread must not exit: the kernel would
 * make its exit wait for them (io_wq_put_and_exit), and rt_stop() with it.
 * It tells rt_stop() so and sleeps until the process ends.
 */
static void rt_leave(void)
{
	bool empty = rctx__keeper_shutdown(rctx_now() + RT_EXIT_GRACE_NS);

	atomic_store_explicit(&rt.exit_state, empty ? RT_EXITED : RT_HELD,
			      memory_order_release);
	rctx__futex_wake_all(&rt.exit_state);
	while (!empty)
		pause();
}

/* The time the thread will wake anyway: by the earliest deadline (the
 * kernel timeout's CQE), and every tick while deadlines are pending, so
 * that contexts cancelled meanwhile give their memory back. */
static int64_t next_wakeup(void)
{
	int64_t next = rt.heap.n || rt.overflow ? rctx_now() + RT_TICK_NS : RCTX_FOREVER;

	if (rt.tlive && rt.tarmed_for < next)
		next = rt.tarmed_for;
	return next;
}

/*
 * The signal table's (lib/signal.c), set when its first context registers:
 * begin() gives the mask to sleep with (the watched signals unblocked) and
 * says whether end() must follow the sleep.
 */
static struct {
	_Atomic(bool (*)(sigset_t *mask)) begin;
	void (*end)(void);
} sleep_hooks;

void rctx__rt_sleep_hooks(bool (*begin)(sigset_t *mask), void (*end)(void))
{
	sleep_hooks.end = end;
	atomic_store_explicit(&sleep_hooks.begin, begin, memory_order_release);
}

/*
 * Submit and sleep until a CQE or next. Unsent, the wake-up read cannot
 * wake us: tick instead. The signals that signal contexts watch are
 * unblocked during the sleep only (lib/signal.c): never while this thread
 * runs anything, so that a release can take them back without waiting for
 * an after-func.
 */
static void rt_sleep(int64_t next)
{
	int64_t until = RCTX_FOREVER;
	bool (*begin)(sigset_t *mask);
	sigset_t mask;
	bool masked;

	if (rctx__submit(&rt.ring) < 0 || rt.heap.n || rt.overflow) {
		until = rctx_now() + RT_TICK_NS;
		if (next < until)
			until = next;
	}
	begin = atomic_load_explicit(&sleep_hooks.begin, memory_order_acquire);
	masked = begin && begin(&mask);
	rctx__wait_cqe_mask(&rt.ring, until, masked ? &mask : NULL);
	if (masked)
		sleep_hooks.end();
}

/*
 * The loop. Each turn: take the queues (arm, remove, after-funcs, the
 * keeper's), expire what is due, keep the kernel timer on the earliest
 * deadline, publish when it wakes anyway, sleep, dispatch completions.
 */
static void *rt_main(void *unused)
{
	(void)unused;
	rt_arm_wake_read();
	while (!atomic_load_explicit(&rt.stopping, memory_order_acquire)) {
		int64_t next;

		drain_arm();
		drain_remove();
		run_afters(true);
		rctx__keeper_turn();
		expire_due();
		sync_kernel_timer();
		next = next_wakeup();
		atomic_store_explicit(&rt.next_wakeup, next, memory_order_seq_cst);
		if (queues_pending()) {
			atomic_store_explicit(&rt.next_wakeup, INT64_MIN, memory_order_seq_cst);
			continue;
		}
		rt_sleep(next);
		atomic_store_explicit(&rt.next_wakeup, INT64_MIN, memory_order_seq_cst);
		rctx__reap(&rt.ring, NULL, rt_handle_cqe);
	}
	rt_leave();
	return NULL;
}

/* After the thread is gone: drop every reference it held. */
static void rt_drop_all(void)
{
	struct rctx_deadline *d, *n;

	for (d = LFSTACK_TAKE(&rt.arm_q); d; d = n) {
		n = d->arm_next;
		rctx__obj_put(&d->cc.c.hdr);
	}
	for (d = rt.overflow; d; d = n) {
		n = d->arm_next;
		rctx__obj_put(&d->cc.c.hdr);
	}
	rt.overflow = NULL;
	drain_remove();
	while (rt.heap.n) {
		d = rt.heap.a[--rt.heap.n];
		d->tstate = TS_DONE;
		rctx__obj_put(&d->cc.c.hdr);
	}
	atomic_store_explicit(&rt.st.live, 0, memory_order_relaxed);
	heap_free(&rt.heap);
	run_afters(false);
}

/* At exit: stop the thread and drop every reference the runtime holds.
 * After-funcs that have not run yet do not run. */
static void rt_stop(void)
{
	if (!atomic_load_explicit(&rt.running, memory_order_acquire))
		return;
	atomic_store_explicit(&rt.stopping, true, memory_order_release);
	eventfd_write(rt.wake.efd, 1); /* unconditionally: not a work hand-off */
	while (atomic_load_explicit(&rt.exit_state, memory_order_acquire) == RT_RUNNING)
		rctx__futex_wait(&rt.exit_state, RT_RUNNING, RCTX_FOREVER);
	if (atomic_load_explicit(&rt.exit_state, memory_order_acquire) == RT_HELD)
		return; /* the kernel holds its requests: leave it be */
	pthread_join(rt.thread, NULL);
	/* The thread is gone: this thread owns its state now. */
	rt_drop_all();
	io_uring_queue_exit(&rt.ring);
	rctx__wake_close(&rt.wake);
	atomic_store_explicit(&rt.running, false, memory_order_release);
}

/* Start the runtime thread unless it runs: 0, or -errno (-ESHUTDOWN at exit). */
int rctx__rt_start(void)
{
	int ret = 0;

	if (likely(atomic_load_explicit(&rt.running, memory_order_acquire) &&
		   !atomic_load_explicit(&rt.stopping, memory_order_relaxed)))
		return 0;
	pthread_mutex_lock(&rt.start_lock);
	if (atomic_load_explicit(&rt.stopping, memory_order_relaxed)) {
		ret = -ESHUTDOWN; /* the process is exiting */
		goto out;
	}
	if (atomic_load_explicit(&rt.running, memory_order_relaxed))
		goto out;
	ret = rctx__wake_init(&rt.wake);
	if (ret < 0)
		goto out;
	ret = rctx__queue_init(RT_ENTRIES, &rt.ring, 0);
	if (ret < 0)
		goto out_close_efd;
	ret = rctx__keeper_init(&rt.ring);
	if (ret < 0)
		goto out_exit_ring;
	atomic_store_explicit(&rt.next_wakeup, INT64_MIN, memory_order_relaxed);
	ret = -rctx__pthread_create(&rt.thread, NULL, rt_main, NULL);
	if (ret < 0)
		goto out_keeper;
	atomic_store_explicit(&rt.running, true, memory_order_release);
	atexit(rt_stop);
	goto out;

out_keeper:
	rctx__keeper_shutdown(0);
out_exit_ring:
	io_uring_queue_exit(&rt.ring);
out_close_efd:
	rctx__wake_close(&rt.wake);
out:
	pthread_mutex_unlock(&rt.start_lock);
	return ret;
}

/* ---- entry points for the tree ---------------------------------------------- */

int rctx__rt_arm_deadline(struct rctx_deadline *d)
{
	int ret = rctx__rt_start();

	if (ret < 0)
		return ret;
	rctx__obj_get(&d->cc.c.hdr); /* the timer's reference */
	LFSTACK_PUSH(&rt.arm_q, d, d->arm_next);
	rt_wake_before(d->cc.deadline);
	rt_backlog();
	return 0;
}

/* d was cancelled by something other than its timer: drop the timer lazily. */
void rctx__rt_remove_deadline(struct rctx_deadline *d)
{
	if (!atomic_load_explicit(&rt.running, memory_order_acquire))
		return; /* never armed */
	rctx__obj_get(&d->cc.c.hdr);
	LFSTACK_PUSH(&rt.remove_q, d, d->remove_next);
	rt_backlog();
}

/*
 * Queue a for the runtime thread. Returns false if there is no runtime thread
 * (out of memory or fds, or the process is exiting): fn then never runs, as
 * running it here would break its promises (never under a lock, never making
 * a cancel wait); the caller drops a's reference once it holds no lock.
 */
bool rctx__rt_queue_after(struct rctx_after *a)
{
	if (rctx__rt_start() < 0)
		return false;
	LFSTACK_PUSH(&rt.run_q, a, a->run_next);
	rt_wake();
	return true;
}

/* Any thread: end the thread's sleep now (a release waits for it to leave
 * a sleep that unblocks signals it no longer watches). */
void rctx__rt_kick(void)
{
	if (atomic_load_explicit(&rt.running, memory_order_acquire))
		rctx__wake_signal(&rt.wake);
}

/* Any thread: hand k (holding a reference for the keeper) to the keeper. */
int rctx__rt_keep(struct rctx_kept *k)
{
	int ret = rctx__rt_start();

	if (ret < 0)
		return ret;
	rctx__keeper_push(k);
	rt_wake();
	return 0;
}

/* Any thread: the keeper takes ring over (an exiting thread's). */
int rctx__rt_adopt(struct rctx_ring *ring)
{
	int ret = rctx__rt_start();

	if (ret < 0)
		return ret;
	rctx__keeper_push_ring(ring);
	rt_wake();
	return 0;
}

RCTX_API int (rctx_runtime_stats)(struct rctx_runtime_stats *out, size_t size)
{
	struct rctx_runtime_stats all = { 0 }, *st = &all;

	st->timers_armed = stat_get(&rt.st.armed);
	st->timers_skipped = stat_get(&rt.st.skipped);
	st->timers_fired = stat_get(&rt.st.fired);
	st->timers_removed = stat_get(&rt.st.removed);
	st->timers_live = stat_get(&rt.st.live);
	st->after_funcs_run = stat_get(&rt.st.afters);
	st->wakeups = stat_get(&rt.st.wakeups);
	st->running = atomic_load_explicit(&rt.running, memory_order_acquire);
	rctx__keeper_stats(st);
	return rctx__stats_out(out, size, &all, sizeof(all));
}

RCTX_API int (rctx_runtime_ring_stats)(struct rctx_ring_stats *st, size_t size)
{
	return rctx__keeper_ring_stats(st, size);
}
