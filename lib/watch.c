/* SPDX-License-Identifier: MIT */
/*
 * fd contexts: done when the kernel reports an event on a file descriptor
 * (rctx_with_fd(), rctx_with_hangup(), and rctx_with_hangup_lazy(), whose
 * poll is made only when a request under it may wait for a file, or when
 * rctx_hangup_arm() asks for it).
 *
 * The context is an extended context. Its one IORING_OP_POLL_ADD is a kept
 * request (lib/keeper.c) that the runtime thread submits on the keeper ring
 * under the context itself: so the ordinary cancel path aborts the poll when
 * the context ends first (rctx_release(), a parent's cancel, a deadline),
 * and the request's reference keeps the context alive while the poll is in
 * flight. The kept request holds a reference of its own too, which its
 * completion hook drops: the hook may run after a short-circuit, when the
 * request never held one.
 */
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>

#include "internal.h"

struct fd_watch {
	struct rctx_ext x;
	int cause;          /* of an event */
	/* A lazy watch (rctx_with_hangup_lazy): what to poll, and whether its
	 * poll was handed to the keeper. */
	int fd;
	unsigned events;
	_Atomic bool armed;
};

static const struct rctx_ext_ops fd_watch_ops = {
	.name = "WithFd",
	.end_unowned = true, /* its poll keeps it alive: no trap in rctx_unref */
};

/* The same, armed by the first request under it that may wait for a file. */
static const struct rctx_ext_ops fd_watch_lazy_ops = {
	.name = "WithHangupLazy",
	.end_unowned = true,
};

/*
 * The poll's completion, on the runtime thread. Events: cancel with the
 * watch's cause. The context done first (-ECANCELED, or its error when the
 * submission short-circuited), or the runtime shutting down: nothing.
 * Another error (-EBADF...): cancel with that errno as the cause.
 */
static void watch_complete(struct rctx_kept *k)
{
	struct fd_watch *w = k->arg;
	int cause = w->cause;

	if (k->res < 0 && k->res != -ECANCELED)
		cause = k->res;
	if (k->res != -ECANCELED && !rctx_err(&w->x.cc.c.hdr))
		rctx__cancel_tree(&w->x.cc, -ECANCELED, cause);
	rctx__unref(&w->x.cc.c.hdr); /* the kept request's */
}

/* Hand the poll to the keeper. 0, or -errno (nothing was queued). */
static int watch_submit(struct fd_watch *w, int fd, unsigned events, int cause)
{
	rctx_t *ctx = &w->x.cc.c.hdr;
	struct rctx_kept *k = rctx__calloc(1, sizeof(*k));
	int ret;

	if (!k)
		return -ENOMEM;
	atomic_init(&k->refs, 1); /* the keeper's */
	io_uring_prep_poll_add(&k->sqe, fd, events);
	k->complete = watch_complete;
	k->arg = w;
	w->cause = cause;
	k->ctx = rctx__ref(ctx);   /* submitted under the watch itself */
	rctx__ref(ctx);            /* the kept request's, for the hook */
	ret = rctx__rt_keep(k);
	if (ret < 0) {
		rctx__unref(ctx);
		rctx__unref(ctx);
		free(k);
	}
	return ret;
}

RCTX_API rctx_t *rctx_with_fd(rctx_t *parent, int fd, unsigned poll_events, int cause)
{
	ERRNO_GUARD;
	struct rctx_ext *x;
	int ret;

	if (!ctx_valid(parent) || !poll_events || !cause)
		return ERRNO_FAIL(EINVAL);
	if (fd < 0 || fcntl(fd, F_GETFD) < 0)
		return ERRNO_FAIL(EBADF); /* not open */
	x = rctx__ext_new(parent, sizeof(struct fd_watch), &fd_watch_ops,
			  rctx__deadline_of(parent));
	if (!x)
		return ERRNO_FAIL(ENOMEM);
	if (rctx_err(&x->cc.c.hdr))
		return &x->cc.c.hdr; /* done at creation: nothing to watch */
	ret = watch_submit(container_of(x, struct fd_watch, x), fd, poll_events,
			   cause);
	if (ret < 0) {
		rctx_release(&x->cc.c.hdr);
		return ERRNO_FAIL(-ret);
	}
	return &x->cc.c.hdr;
}

RCTX_API rctx_t *rctx_with_hangup(rctx_t *parent, int sockfd)
{
	return rctx_with_fd(parent, sockfd, POLLRDHUP | POLLHUP | POLLERR,
			    -ECONNRESET);
}

/* ---- lazy hang-up watches ------------------------------------------------ */

RCTX_API rctx_t *rctx_with_hangup_lazy(rctx_t *parent, int sockfd)
{
	ERRNO_GUARD;
	struct fd_watch *w;
	struct rctx_ext *x;

	if (!ctx_valid(parent))
		return ERRNO_FAIL(EINVAL);
	/* Made per request by a server: no system call here. A descriptor
	 * that is not open is seen when the watch is made (-EBADF). */
	if (sockfd < 0)
		return ERRNO_FAIL(EBADF);
	x = rctx__ext_new(parent, sizeof(struct fd_watch), &fd_watch_lazy_ops,
			  rctx__deadline_of(parent));
	if (!x)
		return ERRNO_FAIL(ENOMEM);
	w = container_of(x, struct fd_watch, x);
	w->fd = sockfd;
	w->events = POLLRDHUP | POLLHUP | POLLERR;
	w->cause = -ECONNRESET;
	atomic_init(&w->armed, false);
	return &x->cc.c.hdr;
}

/*
 * A request under ctx may now wait for a file (it goes to a lane, or a
 * blocking call waits for it): arm the lazy watches among ctx's ancestors
 * that are not armed yet, once each. A hang-up that came before is seen
 * at once (the poll is level-triggered). Any thread.
 */
void rctx__watch_arm(rctx_t *ctx)
{
	for (rctx_t *c = ctx; c; c = c->parent) {
		struct fd_watch *w;

		if (c->kind != RCTX_EXT || ((struct rctx_ext *)c)->ops != &fd_watch_lazy_ops)
			continue;
		w = container_of((struct rctx_ext *)c, struct fd_watch, x);
		if (atomic_exchange_explicit(&w->armed, true, memory_order_acq_rel) || rctx_err(c))
			continue;
		if (watch_submit(w, w->fd, w->events, w->cause) < 0)
			atomic_store_explicit(&w->armed, false, memory_order_release);
	}
}

RCTX_API int rctx_hangup_arm(rctx_t *ctx)
{
	if (!ctx)
		return -EINVAL;
	rctx__watch_arm(ctx);
	return 0;
}
