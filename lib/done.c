/* SPDX-License-Identifier: MIT */
/*
 * Done: the lazily created done eventfd of a cancellable context, and
 * rctx_wait() on its error word itself (a futex, lib/sync.h).
 */
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

/*
 * The canceller, under c->lock, before it publishes err: signal the done fd
 * if it exists, so that nobody can see err != 0 with the fd not readable.
 */
void rctx__done_signal_locked(struct rctx_cancel *c)
{
	int fd = atomic_load_explicit(&c->done_fd, memory_order_relaxed);

	RLOCK_ASSERT_HELD(&c->lock);
	if (fd >= 0)
		eventfd_write(fd, 1); /* err is ERR_ENDING already */
}

/* The canceller, after err is published and the lock dropped. */
void rctx__done_wake(struct rctx_cancel *c)
{
	if (atomic_load_explicit(&c->c.hdr.waiters, memory_order_seq_cst))
		rctx__futex_wake_all(&c->err);
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

	if (!ctx_valid(ctx))
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

	if (!ctx_valid(ctx))
		return -EINVAL;
	g = rctx_governor(ctx);
	if (!g) {
		struct timespec ts = ns_to_timespec(abs_deadline);

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
		ret = rctx__futex_wait(&g->err, 0, abs_deadline);
		if (ret == -ETIMEDOUT || (ret < 0 && ret != -EINTR))
			return cancel_err(g) ? 0 : -EAGAIN;
	}
}
