/* SPDX-License-Identifier: MIT */
/*
 * Waiting for a context: the futex mutex behind per-node locks, the lazily
 * created done eventfd, and rctx_wait() on the error word itself.
 */
#include <linux/futex.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

static long sys_futex(void *addr, int op, int val, const struct timespec *ts)
{
	return syscall(SYS_futex, addr, op, val, ts, NULL, FUTEX_BITSET_MATCH_ANY);
}

void rctx__rlock_slow(rlock_t *l)
{
	uint32_t c;

	/* Critical sections are a few dozen instructions: spin a little
	 * before paying for a futex sleep and wake-up. */
	for (int i = 0; i < 100; i++) {
		uint32_t z = 0;

		cpu_relax();
		if (atomic_load_explicit(&l->v, memory_order_relaxed) == 0 &&
		    atomic_compare_exchange_strong_explicit(&l->v, &z, 1,
				memory_order_acquire, memory_order_relaxed))
			return;
	}
	c = atomic_exchange_explicit(&l->v, 2, memory_order_acquire);

	while (c != 0) {
		sys_futex(&l->v, FUTEX_WAIT_PRIVATE, 2, NULL);
		c = atomic_exchange_explicit(&l->v, 2, memory_order_acquire);
	}
}

void rctx__rlock_wake(rlock_t *l)
{
	sys_futex(&l->v, FUTEX_WAKE_PRIVATE, 1, NULL);
}

/* Wait while *addr == val, until abs_deadline (CLOCK_MONOTONIC).
 * Returns 0 when woken or the value changed, -ETIMEDOUT, or -EINTR. */
int rctx__rfutex_wait(_Atomic int *addr, int val, int64_t abs_deadline)
{
	struct timespec ts, *tp = NULL;

	if (abs_deadline != RCTX_FOREVER) {
		ts.tv_sec = abs_deadline / 1000000000;
		ts.tv_nsec = abs_deadline % 1000000000;
		tp = &ts;
	}
	if (sys_futex(addr, FUTEX_WAIT_BITSET_PRIVATE, val, tp) == 0)
		return 0;
	if (errno == ETIMEDOUT)
		return -ETIMEDOUT;
	if (errno == EINTR)
		return -EINTR;
	if (errno == EAGAIN)
		return 0; /* the value had changed */
	return -errno;
}

void rctx__rfutex_wake_all(_Atomic int *addr)
{
	sys_futex(addr, FUTEX_WAKE_PRIVATE, INT_MAX, NULL);
}

/*
 * The canceller, under c->lock, before it publishes err: signal the done fd
 * if it exists, so that nobody can see err != 0 with the fd not readable.
 */
void rctx__done_signal_locked(struct rctx_cancel *c)
{
	int fd = atomic_load_explicit(&c->done_fd, memory_order_relaxed);

	if (fd >= 0)
		eventfd_write(fd, 1); /* err is ERR_ENDING already */
}

/* The canceller, after err is published and the lock dropped. */
void rctx__done_wake(struct rctx_cancel *c)
{
	if (atomic_load_explicit(&c->c.hdr.waiters, memory_order_seq_cst))
		rctx__rfutex_wake_all(&c->err);
}

void rctx__done_close(struct rctx_cancel *c)
{
	int fd = atomic_load_explicit(&c->done_fd, memory_order_relaxed);

	if (fd >= 0)
		close(fd);
}

RCTX_API int rctx_done_fd(rctx_t *ctx)
{
	ERRNO_GUARD;
	struct rctx_cancel *g;
	int fd, old = -1;

	if (!ctx || ctx->kind == RCTX_AFTER)
		return -EINVAL;
	g = rctx_governor(ctx);
	if (!g)
		return -ENOENT;
	fd = atomic_load_explicit(&g->done_fd, memory_order_acquire);
	if (fd >= 0)
		return fd;
	fd = rctx__eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (fd < 0)
		return -errno;
	/*
	 * Publish under the lock that orders cancels: a done context gets an fd
	 * that is readable before anyone can see it, a live one gets signalled
	 * by its canceller before err is published.
	 */
	rlock(&g->lock);
	old = atomic_load_explicit(&g->done_fd, memory_order_relaxed);
	if (old < 0) {
		if (atomic_load_explicit(&g->err, memory_order_relaxed))
			eventfd_write(fd, 1);
		atomic_store_explicit(&g->done_fd, fd, memory_order_release);
	}
	runlock(&g->lock);
	if (old >= 0) {
		close(fd);
		return old;
	}
	return fd;
}

RCTX_API int rctx_wait(rctx_t *ctx, int64_t abs_deadline)
{
	ERRNO_GUARD;
	struct rctx_cancel *g;

	if (!ctx || ctx->kind == RCTX_AFTER)
		return -EINVAL;
	g = rctx_governor(ctx);
	if (!g) {
		struct timespec ts = {
			.tv_sec = abs_deadline / 1000000000,
			.tv_nsec = abs_deadline % 1000000000,
		};

		if (abs_deadline == RCTX_FOREVER)
			return -EDEADLK;
		if (abs_deadline <= rctx_now())
			return -EAGAIN;
		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
			;
		return -EAGAIN;
	}
	if (cancel_err(g))
		return 0;
	if (abs_deadline != RCTX_FOREVER && abs_deadline <= rctx_now())
		return -EAGAIN;
	atomic_store_explicit(&g->c.hdr.waiters, 1, memory_order_seq_cst);
	for (;;) {
		int ret;

		if (atomic_load_explicit(&g->err, memory_order_seq_cst))
			return 0; /* ERR_ENDING included: rctx_err() waits it out */
		ret = rctx__rfutex_wait(&g->err, 0, abs_deadline);
		if (ret == -ETIMEDOUT || (ret < 0 && ret != -EINTR))
			return cancel_err(g) ? 0 : -EAGAIN;
	}
}

/*
 * Sleep until the ring has a completion or abs_deadline (RCTX_FOREVER: none)
 * passes. The library sleeps in ppoll(2) on the ring fd, and uses
 * io_uring_enter(2) only to submit: a thread about to sleep pays one more
 * system call, and every tool that serialises threads (valgrind) knows that
 * ppoll blocks, while a thread blocked in io_uring_enter would stall the
 * whole program under it. Returns 0, or -EINTR / -ETIME.
 */
int rctx__ring_wait_cqe(struct io_uring *ring, int64_t abs_deadline)
{
	struct pollfd p = { .fd = ring->ring_fd, .events = POLLIN };
	struct timespec ts, *tp = NULL;
	int ret;

	if (io_uring_cq_ready(ring))
		return 0;
	if (abs_deadline != RCTX_FOREVER) {
		int64_t now = rctx_now(), left;

		if (abs_deadline <= now)
			return -ETIME; /* also keeps abs_deadline - now in range */
		left = abs_deadline - now;
		ts.tv_sec = left / 1000000000;
		ts.tv_nsec = left % 1000000000;
		tp = &ts;
	}
	ret = ppoll(&p, 1, tp, NULL);
	if (ret < 0)
		return -errno;
	return ret ? 0 : -ETIME;
}
