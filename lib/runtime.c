/* SPDX-License-Identifier: MIT */
/*
 * The runtime thread: one per process, started on first need, stopped at
 * exit. It owns a ring that is always being waited on, where every deadline
 * context arms an absolute IORING_OP_TIMEOUT, and it runs after-funcs.
 *
 * Other threads talk to it through three lock-free stacks (arm, remove, run)
 * and an eventfd. Wake-ups are rationed: the thread publishes the time it
 * will wake anyway (next_wakeup; while it has live timers it ticks every
 * RT_TICK_NS); a new deadline at or after that time is armed on that wake-up
 * with no syscall from the creator. A deadline context cancelled before it
 * was armed costs no syscall at all; an armed one is removed with
 * IORING_OP_TIMEOUT_REMOVE on the next tick, in a batch.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "internal.h"

#define RT_ENTRIES 4096
#define RT_TICK_NS (50 * 1000000LL)

enum { UD_TIMER = 1, UD_REMOVE = 2, UD_WAKE = 3, UD_TAG = 3 };
enum { TS_NEW, TS_ARMED, TS_DONE }; /* struct rctx.tstate, runtime-only */

static struct runtime {
	pthread_mutex_t start_lock;
	pthread_t thread;
	_Atomic bool running;
	_Atomic bool stopping;
	struct io_uring ring;
	int efd;
	uint64_t efd_buf;
	_Atomic int wake_pending;
	_Atomic int64_t next_wakeup; /* INT64_MIN while awake */
	_Atomic(struct rctx_deadline *) arm_q;
	_Atomic(struct rctx_deadline *) remove_q;
	_Atomic(struct rctx_after *) run_q;
	struct __kernel_timespec ts[RT_ENTRIES]; /* per SQE slot until submit */
	struct {
		_Atomic uint64_t armed, skipped, fired, removed, live, afters, wakeups;
	} st;
} rt = { .start_lock = PTHREAD_MUTEX_INITIALIZER, .efd = -1 };

void rt_stat_add(_Atomic uint64_t *ctr, uint64_t n)
{
	atomic_fetch_add_explicit(ctr, n, memory_order_relaxed);
}

static struct io_uring_sqe *rt_sqe(void)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&rt.ring);

	if (!sqe) {
		io_uring_submit(&rt.ring);
		sqe = io_uring_get_sqe(&rt.ring);
	}
	return sqe; /* never NULL: the SQ was just emptied */
}

static void rt_arm_wake_read(void)
{
	struct io_uring_sqe *sqe = rt_sqe();

	io_uring_prep_read(sqe, rt.efd, &rt.efd_buf, sizeof(rt.efd_buf), 0);
	io_uring_sqe_set_data64(sqe, UD_WAKE);
}

/* Wake the thread unless it will be awake before `when` anyway. */
static void rt_wake_before(int64_t when)
{
	if (when >= atomic_load_explicit(&rt.next_wakeup, memory_order_seq_cst))
		return;
	if (atomic_exchange_explicit(&rt.wake_pending, 1, memory_order_acq_rel))
		return;
	eventfd_write(rt.efd, 1);
}

/* ---- the thread ----------------------------------------------------------- */

static void drain_arm(void)
{
	struct rctx_deadline *d = atomic_exchange(&rt.arm_q, NULL), *next;

	for (; d; d = next) {
		struct rctx *h = &d->cc.c.hdr;
		struct io_uring_sqe *sqe;
		unsigned idx;

		next = d->arm_next;
		if (cancel_err(&d->cc)) {
			h->tstate = TS_DONE;
			rt_stat_add(&rt.st.skipped, 1);
			rctx_obj_put(h);
			continue;
		}
		sqe = rt_sqe();
		idx = (unsigned)(sqe - rt.ring.sq.sqes);
		rt.ts[idx].tv_sec = d->cc.deadline / 1000000000;
		rt.ts[idx].tv_nsec = d->cc.deadline % 1000000000;
		io_uring_prep_timeout(sqe, &rt.ts[idx], 0, IORING_TIMEOUT_ABS);
		io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)d | UD_TIMER);
		h->tstate = TS_ARMED;
		rt_stat_add(&rt.st.armed, 1);
		rt_stat_add(&rt.st.live, 1);
	}
}

static void drain_remove(void)
{
	struct rctx_deadline *d = atomic_exchange(&rt.remove_q, NULL), *next;

	for (; d; d = next) {
		next = d->remove_next;
		if (d->cc.c.hdr.tstate == TS_ARMED) {
			struct io_uring_sqe *sqe = rt_sqe();

			io_uring_prep_timeout_remove(sqe,
				(uint64_t)(uintptr_t)d | UD_TIMER, 0);
			io_uring_sqe_set_data64(sqe, UD_REMOVE);
			d->cc.c.hdr.tstate = TS_DONE;
			rt_stat_add(&rt.st.removed, 1);
		}
		rctx_obj_put(&d->cc.c.hdr);
	}
}

static void run_afters(bool call)
{
	struct rctx_after *a = atomic_exchange(&rt.run_q, NULL), *next, *rev = NULL;

	/* The stack is LIFO: reverse it to run after-funcs in queue order. */
	for (; a; a = next) {
		next = a->run_next;
		a->run_next = rev;
		rev = a;
	}
	for (a = rev; a; a = next) {
		next = a->run_next;
		if (call) {
			a->fn(a->arg);
			rt_stat_add(&rt.st.afters, 1);
		}
		rctx_obj_put(&a->c.hdr);
	}
}

static void handle_cqe(const struct io_uring_cqe *cqe)
{
	uint64_t ud = cqe->user_data;
	struct rctx_deadline *d = (struct rctx_deadline *)(uintptr_t)(ud & ~(uint64_t)UD_TAG);

	switch (ud & UD_TAG) {
	case UD_WAKE:
		atomic_store(&rt.wake_pending, 0);
		rt_stat_add(&rt.st.wakeups, 1);
		rt_arm_wake_read();
		break;
	case UD_TIMER:
		if (cqe->res == -ETIME && rctx_timer_expired(d))
			rt_stat_add(&rt.st.fired, 1);
		d->cc.c.hdr.tstate = TS_DONE;
		atomic_fetch_sub(&rt.st.live, 1);
		rctx_obj_put(&d->cc.c.hdr);
		break;
	default: /* UD_REMOVE: its target's own CQE does the accounting */
		break;
	}
}

static void reap_all(void)
{
	struct io_uring_cqe *cqe;
	unsigned head, n = 0;

	io_uring_for_each_cqe(&rt.ring, head, cqe) {
		handle_cqe(cqe);
		n++;
	}
	io_uring_cq_advance(&rt.ring, n);
}

static bool queues_pending(void)
{
	return atomic_load(&rt.arm_q) || atomic_load(&rt.run_q);
}

static void *rt_main(void *unused)
{
	struct io_uring_cqe *cqe;

	rt_arm_wake_read();
	while (!atomic_load(&rt.stopping)) {
		int64_t next;

		drain_arm();
		drain_remove();
		run_afters(true);
		next = atomic_load(&rt.st.live) ? rctx_now() + RT_TICK_NS : RCTX_FOREVER;
		atomic_store(&rt.next_wakeup, next);
		if (queues_pending()) {
			atomic_store(&rt.next_wakeup, INT64_MIN);
			continue;
		}
		if (next == RCTX_FOREVER) {
			io_uring_submit_and_wait(&rt.ring, 1);
		} else {
			/* Wake no later than the published time. */
			int64_t left = next - rctx_now();
			struct __kernel_timespec ts = {
				.tv_sec = 0, .tv_nsec = left > 0 ? left : 0,
			};

			io_uring_submit_and_wait_timeout(&rt.ring, &cqe, 1, &ts, NULL);
		}
		atomic_store(&rt.next_wakeup, INT64_MIN);
		reap_all();
	}
	return NULL;
}

/* At exit: stop the thread, then end every timer so each drops its reference. */
static void rt_stop(void)
{
	struct io_uring_sqe *sqe;
	int64_t limit;

	if (!atomic_load(&rt.running))
		return;
	atomic_store(&rt.stopping, true);
	eventfd_write(rt.efd, 1);
	pthread_join(rt.thread, NULL);

	/* The thread is gone: this thread now owns the ring. */
	drain_arm();
	drain_remove();
	sqe = rt_sqe();
	io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY | IORING_ASYNC_CANCEL_ALL);
	io_uring_sqe_set_data64(sqe, UD_REMOVE);
	io_uring_submit(&rt.ring);
	limit = rctx_now() + 1000000000LL;
	while (atomic_load(&rt.st.live) && rctx_now() < limit) {
		struct __kernel_timespec ts = { .tv_sec = 0, .tv_nsec = 10000000 };
		struct io_uring_cqe *cqe;

		if (io_uring_wait_cqe_timeout(&rt.ring, &cqe, &ts) == 0) {
			uint64_t ud = cqe->user_data;

			/* Do not re-arm the wake read while stopping. */
			if ((ud & UD_TAG) != UD_WAKE)
				handle_cqe(cqe);
			io_uring_cqe_seen(&rt.ring, cqe);
		}
		drain_remove();
	}
	run_afters(false);
	io_uring_queue_exit(&rt.ring);
	close(rt.efd);
	atomic_store(&rt.running, false);
}

static int rt_start(void)
{
	int ret = 0;

	if (likely(atomic_load_explicit(&rt.running, memory_order_acquire)))
		return 0;
	pthread_mutex_lock(&rt.start_lock);
	if (atomic_load(&rt.running) || atomic_load(&rt.stopping))
		goto out;
	rt.efd = eventfd(0, EFD_CLOEXEC);
	if (rt.efd < 0) {
		ret = -errno;
		goto out;
	}
	ret = io_uring_queue_init(RT_ENTRIES, &rt.ring, 0);
	if (ret < 0)
		goto out_close_efd;
	atomic_store(&rt.next_wakeup, INT64_MIN);
	ret = -pthread_create(&rt.thread, NULL, rt_main, NULL);
	if (ret < 0)
		goto out_exit_ring;
	atomic_store_explicit(&rt.running, true, memory_order_release);
	atexit(rt_stop);
	goto out;

out_exit_ring:
	io_uring_queue_exit(&rt.ring);
out_close_efd:
	close(rt.efd);
	rt.efd = -1;
out:
	pthread_mutex_unlock(&rt.start_lock);
	return ret;
}

/* ---- entry points for the tree ---------------------------------------------- */

int rt_arm_deadline(struct rctx_deadline *d)
{
	struct rctx_deadline *head;
	int ret = rt_start();

	if (ret < 0)
		return ret;
	rctx_obj_get(&d->cc.c.hdr); /* the timer's reference */
	head = atomic_load(&rt.arm_q);
	do {
		d->arm_next = head;
	} while (!atomic_compare_exchange_weak(&rt.arm_q, &head, d));
	rt_wake_before(d->cc.deadline);
	return 0;
}

/* d was cancelled by something other than its timer: drop the timer lazily. */
void rt_remove_deadline(struct rctx_deadline *d)
{
	struct rctx_deadline *head;

	if (!atomic_load_explicit(&rt.running, memory_order_acquire))
		return; /* never armed */
	rctx_obj_get(&d->cc.c.hdr);
	head = atomic_load(&rt.remove_q);
	do {
		d->remove_next = head;
	} while (!atomic_compare_exchange_weak(&rt.remove_q, &head, d));
}

void rt_queue_after(struct rctx_after *a)
{
	struct rctx_after *head;

	if (rt_start() < 0) {
		/* Cannot happen after the first deadline; last resort: run here. */
		a->fn(a->arg);
		rctx_obj_put(&a->c.hdr);
		return;
	}
	head = atomic_load(&rt.run_q);
	do {
		a->run_next = head;
	} while (!atomic_compare_exchange_weak(&rt.run_q, &head, a));
	rt_wake_before(INT64_MIN + 1);
}

RCTX_API int rctx_runtime_stats(struct rctx_runtime_stats *st)
{
	if (!st)
		return -EINVAL;
	st->timers_armed = atomic_load(&rt.st.armed);
	st->timers_skipped = atomic_load(&rt.st.skipped);
	st->timers_fired = atomic_load(&rt.st.fired);
	st->timers_removed = atomic_load(&rt.st.removed);
	st->timers_live = atomic_load(&rt.st.live);
	st->after_funcs_run = atomic_load(&rt.st.afters);
	st->wakeups = atomic_load(&rt.st.wakeups);
	st->running = atomic_load(&rt.running);
	return 0;
}
