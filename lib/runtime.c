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
#include <sys/eventfd.h>
#include <unistd.h>

#include "internal.h"

#define RT_ENTRIES 64
#define RT_TICK_NS (50 * 1000000LL)
#define RT_EXIT_GRACE_NS (100 * 1000000LL) /* for kept requests at exit */

/* user_data: a tag in the low two bits; tag 0 is a ring watched by the
 * keeper (an aligned pointer: lib/keeper.c). */
enum { UD_RING = 0, UD_TIMER = 1, UD_REMOVE = 2, UD_WAKE = 3, UD_TAG = 3 };
enum { RT_RUNNING, RT_EXITED, RT_HELD }; /* rt.exit_state */
enum { TS_NEW, TS_ARMED, TS_DONE }; /* struct rctx.tstate, runtime-only */

static struct runtime {
	pthread_mutex_t start_lock;
	pthread_t thread;
	_Atomic bool running;
	_Atomic bool stopping;
	_Atomic int exit_state;         /* futex word of rt_stop() */
	struct io_uring ring;
	int efd;
	uint64_t efd_buf;
	_Atomic int wake_pending;
	_Atomic int64_t next_wakeup; /* INT64_MIN while awake */
	_Atomic(struct rctx_deadline *) arm_q;
	_Atomic(struct rctx_deadline *) remove_q;
	_Atomic(struct rctx_after *) run_q;
	/* Runtime-thread only: */
	struct rctx_deadline **heap;
	size_t heap_n, heap_cap;
	struct rctx_deadline *overflow; /* waiting for heap memory */
	uint64_t tgen;                  /* generation of the kernel timeout */
	bool tlive;
	int64_t tarmed_for;
	struct __kernel_timespec ts;    /* the kernel timeout's, until submit */
	struct {
		_Atomic uint64_t armed, skipped, fired, removed, live, afters, wakeups;
	} st;
} rt = { .start_lock = PTHREAD_MUTEX_INITIALIZER, .efd = -1 };

void rctx__rt_stat_add(_Atomic uint64_t *ctr, uint64_t n)
{
	atomic_fetch_add_explicit(ctr, n, memory_order_relaxed);
}

struct io_uring_sqe *rctx__rt_sqe(void)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&rt.ring);

	while (!sqe) {
		rctx__submit(&rt.ring);
		sqe = io_uring_get_sqe(&rt.ring);
	}
	return sqe;
}

static void rt_arm_wake_read(void)
{
	struct io_uring_sqe *sqe = rctx__rt_sqe();

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

/* Whether the caller is the runtime thread. */
bool rctx__rt_self(void)
{
	return atomic_load_explicit(&rt.running, memory_order_acquire) &&
	       pthread_equal(pthread_self(), rt.thread);
}

/* Wake the thread now (work queued for it). */
void rctx__rt_wake(void)
{
	rt_wake_before(INT64_MIN + 1);
}

/* ---- the deadline heap (runtime thread only) ------------------------------ */

static inline bool heap_less(size_t a, size_t b)
{
	return rt.heap[a]->cc.deadline < rt.heap[b]->cc.deadline;
}

static inline void heap_set(size_t i, struct rctx_deadline *d)
{
	rt.heap[i] = d;
	d->heap_idx = i;
}

static void heap_up(size_t i)
{
	struct rctx_deadline *d = rt.heap[i];

	while (i > 0 && d->cc.deadline < rt.heap[(i - 1) / 2]->cc.deadline) {
		heap_set(i, rt.heap[(i - 1) / 2]);
		i = (i - 1) / 2;
	}
	heap_set(i, d);
}

static void heap_down(size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, m = i;
		struct rctx_deadline *t;

		if (l < rt.heap_n && heap_less(l, m))
			m = l;
		if (l + 1 < rt.heap_n && heap_less(l + 1, m))
			m = l + 1;
		if (m == i)
			return;
		t = rt.heap[i];
		heap_set(i, rt.heap[m]);
		heap_set(m, t);
		i = m;
	}
}

static bool heap_push(struct rctx_deadline *d)
{
	if (rt.heap_n == rt.heap_cap) {
		size_t cap = rt.heap_cap ? rt.heap_cap * 2 : 256;
		struct rctx_deadline **h = rctx__realloc(rt.heap, cap * sizeof(*h));

		if (!h)
			return false;
		rt.heap = h;
		rt.heap_cap = cap;
	}
	heap_set(rt.heap_n++, d);
	heap_up(rt.heap_n - 1);
	return true;
}

static void heap_remove(size_t i)
{
	struct rctx_deadline *last = rt.heap[--rt.heap_n];

	if (i == rt.heap_n)
		return;
	heap_set(i, last);
	heap_down(i);
	heap_up(last->heap_idx);
}

/* ---- the thread ----------------------------------------------------------- */

static void expire(struct rctx_deadline *d)
{
	d->cc.c.hdr.tstate = TS_DONE;
	if (rctx__timer_expired(d))
		rctx__rt_stat_add(&rt.st.fired, 1);
	rctx__obj_put(&d->cc.c.hdr); /* the timer's reference */
}

static void expire_due(void)
{
	int64_t now = rctx_now();

	while (rt.heap_n && rt.heap[0]->cc.deadline <= now) {
		struct rctx_deadline *d = rt.heap[0];

		heap_remove(0);
		atomic_fetch_sub(&rt.st.live, 1);
		expire(d);
	}
}

static void drain_arm(void)
{
	struct rctx_deadline *d = atomic_exchange(&rt.arm_q, NULL), *next;

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
		struct rctx *h = &d->cc.c.hdr;

		next = d->arm_next;
		if (cancel_err(&d->cc)) {
			h->tstate = TS_DONE;
			rctx__rt_stat_add(&rt.st.skipped, 1);
			rctx__obj_put(h);
		} else if (d->cc.deadline <= rctx_now()) {
			rctx__rt_stat_add(&rt.st.armed, 1); /* taken on, and due */
			expire(d);
		} else if (!heap_push(d)) {
			d->arm_next = rt.overflow;
			rt.overflow = d;
		} else {
			h->tstate = TS_ARMED;
			rctx__rt_stat_add(&rt.st.armed, 1);
			rctx__rt_stat_add(&rt.st.live, 1);
		}
	}
}

static void drain_remove(void)
{
	struct rctx_deadline *d = atomic_exchange(&rt.remove_q, NULL), *next;

	for (; d; d = next) {
		next = d->remove_next;
		if (d->cc.c.hdr.tstate == TS_ARMED) {
			heap_remove(d->heap_idx);
			d->cc.c.hdr.tstate = TS_DONE;
			atomic_fetch_sub(&rt.st.live, 1);
			rctx__rt_stat_add(&rt.st.removed, 1);
			rctx__obj_put(&d->cc.c.hdr); /* the heap's reference */
		}
		rctx__obj_put(&d->cc.c.hdr); /* the queue's reference */
	}
}

/* Keep the kernel timeout at or before the earliest deadline. A timeout
 * left armed for a deadline that went away just wakes us once, early. */
static void sync_kernel_timer(void)
{
	int64_t want = rt.heap_n ? rt.heap[0]->cc.deadline : RCTX_FOREVER;
	struct io_uring_sqe *sqe;

	if (want == RCTX_FOREVER || (rt.tlive && want >= rt.tarmed_for))
		return;
	if (rt.tlive) {
		sqe = rctx__rt_sqe();
		io_uring_prep_timeout_remove(sqe, UD_TIMER | (rt.tgen << 2), 0);
		io_uring_sqe_set_data64(sqe, UD_REMOVE);
	}
	rt.tgen++;
	rt.ts.tv_sec = want / 1000000000;
	rt.ts.tv_nsec = want % 1000000000;
	sqe = rctx__rt_sqe();
	io_uring_prep_timeout(sqe, &rt.ts, 0, IORING_TIMEOUT_ABS);
	io_uring_sqe_set_data64(sqe, UD_TIMER | (rt.tgen << 2));
	rt.tlive = true;
	rt.tarmed_for = want;
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
			rctx__rt_stat_add(&rt.st.afters, 1);
		}
		rctx__obj_put(&a->c.hdr);
	}
}

static void handle_cqe(const struct io_uring_cqe *cqe)
{
	uint64_t ud = cqe->user_data;

	switch (ud & UD_TAG) {
	case UD_WAKE:
		atomic_store(&rt.wake_pending, 0);
		rctx__rt_stat_add(&rt.st.wakeups, 1);
		rt_arm_wake_read();
		break;
	case UD_TIMER:
		if ((ud >> 2) == rt.tgen)
			rt.tlive = false; /* fired or removed */
		if (cqe->res == -ETIME)
			expire_due();
		break;
	case UD_RING:
		if (ud)
			rctx__keeper_ring_ready((struct rctx_ring *)(uintptr_t)ud);
		break;
	default: /* UD_REMOVE */
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
	return atomic_load(&rt.arm_q) || atomic_load(&rt.run_q) ||
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
	rctx__rfutex_wake_all(&rt.exit_state);
	while (!empty)
		pause();
}

static void *rt_main(void *unused)
{
	rt_arm_wake_read();
	while (!atomic_load(&rt.stopping)) {
		int64_t next;

		drain_arm();
		drain_remove();
		run_afters(true);
		rctx__keeper_turn();
		expire_due();
		sync_kernel_timer();
		/* Wake by the earliest deadline (the kernel timeout's CQE),
		 * and tick while deadlines are pending, so that contexts
		 * cancelled meanwhile give their memory back. */
		next = rt.heap_n || rt.overflow ? rctx_now() + RT_TICK_NS : RCTX_FOREVER;
		if (rt.tlive && rt.tarmed_for < next)
			next = rt.tarmed_for;
		atomic_store(&rt.next_wakeup, next);
		if (queues_pending()) {
			atomic_store(&rt.next_wakeup, INT64_MIN);
			continue;
		}
		/* Unsent, the wake-up read cannot wake us: tick instead. */
		if (rctx__submit(&rt.ring) >= 0 && !rt.heap_n && !rt.overflow) {
			rctx__ring_wait_cqe(&rt.ring, RCTX_FOREVER);
		} else {
			int64_t until = rctx_now() + RT_TICK_NS;

			rctx__ring_wait_cqe(&rt.ring, until < next ? until : next);
		}
		atomic_store(&rt.next_wakeup, INT64_MIN);
		reap_all();
	}
	rt_leave();
	return NULL;
}

/* At exit: stop the thread and drop every reference the runtime holds.
 * After-funcs that have not run yet do not run. */
static void rt_stop(void)
{
	if (!atomic_load(&rt.running))
		return;
	atomic_store(&rt.stopping, true);
	eventfd_write(rt.efd, 1);
	while (atomic_load(&rt.exit_state) == RT_RUNNING)
		rctx__rfutex_wait(&rt.exit_state, RT_RUNNING, RCTX_FOREVER);
	if (atomic_load(&rt.exit_state) == RT_HELD)
		return; /* the kernel holds its requests: leave it be */
	pthread_join(rt.thread, NULL);

	/* The thread is gone: this thread owns its state now. */
	for (struct rctx_deadline *d = atomic_exchange(&rt.arm_q, NULL), *n; d; d = n) {
		n = d->arm_next;
		rctx__obj_put(&d->cc.c.hdr);
	}
	for (struct rctx_deadline *d = rt.overflow, *n; d; d = n) {
		n = d->arm_next;
		rctx__obj_put(&d->cc.c.hdr);
	}
	drain_remove();
	while (rt.heap_n) {
		struct rctx_deadline *d = rt.heap[--rt.heap_n];

		d->cc.c.hdr.tstate = TS_DONE;
		rctx__obj_put(&d->cc.c.hdr);
	}
	atomic_store(&rt.st.live, 0);
	free(rt.heap);
	rt.heap = NULL;
	run_afters(false);
	io_uring_queue_exit(&rt.ring);
	close(rt.efd);
	atomic_store(&rt.running, false);
}

/* Start the runtime thread unless it runs: 0, or -errno (-ESHUTDOWN at exit). */
int rctx__rt_start(void)
{
	int ret = 0;

	if (likely(atomic_load_explicit(&rt.running, memory_order_acquire) &&
		   !atomic_load_explicit(&rt.stopping, memory_order_relaxed)))
		return 0;
	pthread_mutex_lock(&rt.start_lock);
	if (atomic_load(&rt.stopping)) {
		ret = -ESHUTDOWN; /* the process is exiting */
		goto out;
	}
	if (atomic_load(&rt.running))
		goto out;
	rt.efd = rctx__eventfd(0, EFD_CLOEXEC);
	if (rt.efd < 0) {
		ret = -errno;
		goto out;
	}
	ret = rctx__queue_init(RT_ENTRIES, &rt.ring, 0);
	if (ret < 0)
		goto out_close_efd;
	ret = rctx__keeper_init();
	if (ret < 0)
		goto out_exit_ring;
	atomic_store(&rt.next_wakeup, INT64_MIN);
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
	close(rt.efd);
	rt.efd = -1;
out:
	pthread_mutex_unlock(&rt.start_lock);
	return ret;
}

/* ---- entry points for the tree ---------------------------------------------- */

int rctx__rt_arm_deadline(struct rctx_deadline *d)
{
	struct rctx_deadline *head;
	int ret = rctx__rt_start();

	if (ret < 0)
		return ret;
	rctx__obj_get(&d->cc.c.hdr); /* the timer's reference */
	head = atomic_load(&rt.arm_q);
	do {
		d->arm_next = head;
	} while (!atomic_compare_exchange_weak(&rt.arm_q, &head, d));
	rt_wake_before(d->cc.deadline);
	return 0;
}

/* d was cancelled by something other than its timer: drop the timer lazily. */
void rctx__rt_remove_deadline(struct rctx_deadline *d)
{
	struct rctx_deadline *head;

	if (!atomic_load_explicit(&rt.running, memory_order_acquire))
		return; /* never armed */
	rctx__obj_get(&d->cc.c.hdr);
	head = atomic_load(&rt.remove_q);
	do {
		d->remove_next = head;
	} while (!atomic_compare_exchange_weak(&rt.remove_q, &head, d));
}

/*
 * Queue a for the runtime thread. Returns false if there is no runtime thread
 * (out of memory or fds, or the process is exiting): fn then never runs, as
 * running it here would break its promises (never under a lock, never making
 * a cancel wait); the caller drops a's reference once it holds no lock.
 */
bool rctx__rt_queue_after(struct rctx_after *a)
{
	struct rctx_after *head;

	if (rctx__rt_start() < 0)
		return false;
	head = atomic_load(&rt.run_q);
	do {
		a->run_next = head;
	} while (!atomic_compare_exchange_weak(&rt.run_q, &head, a));
	rt_wake_before(INT64_MIN + 1);
	return true;
}

RCTX_API int rctx_runtime_stats(struct rctx_runtime_stats *st)
{
	if (!st)
		return -EINVAL;
	memset(st, 0, sizeof(*st));
	st->timers_armed = atomic_load(&rt.st.armed);
	st->timers_skipped = atomic_load(&rt.st.skipped);
	st->timers_fired = atomic_load(&rt.st.fired);
	st->timers_removed = atomic_load(&rt.st.removed);
	st->timers_live = atomic_load(&rt.st.live);
	st->after_funcs_run = atomic_load(&rt.st.afters);
	st->wakeups = atomic_load(&rt.st.wakeups);
	st->running = atomic_load(&rt.running);
	rctx__keeper_stats(st);
	return 0;
}
