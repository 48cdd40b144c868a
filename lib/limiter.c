/* SPDX-License-Identifier: MIT */
/*
 * The request limiter of a group (rctx_group_submit): at most limit requests
 * in flight on the one ring the limiter is bound to, on that ring's owner
 * thread only: no lock. A request over the limit waits in a FIFO; if its
 * context can end, a sentinel (a poll on the limiter's never-signalled
 * eventfd, submitted under a child of that context) completes when the
 * context ends, or when the ring is destroyed, and completes the queued
 * request at once. Each request not completed holds a reference to the
 * limiter's owner (the group's context), whose memory holds the limiter.
 */
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "internal.h"

enum { GREQ_QUEUED, GREQ_SUBMITTED, GREQ_ENDED };

/* A request of rctx_group_submit(): the ring owner's only. */
struct limiter_req {
	struct rctx_limiter *l;      /* holds a reference to its owner */
	struct limiter_req *prev, *next; /* the FIFO, while queued */
	rctx_t *ctx;                 /* a reference, while queued */
	rctx_t *watch;               /* the sentinel's context, while queued */
	rctx_cb_t cb;
	void *arg;
	struct io_uring_sqe sqe;
	uint8_t state;
	uint8_t refs;                /* the request's and the sentinel's */
	bool counted;                /* holds one of the limit's slots */
};

void rctx__limiter_init(struct rctx_limiter *l, struct rctx *owner, int limit)
{
	l->owner = owner;
	l->limit = limit;
	l->ring = NULL;
	l->inflight = 0;
	l->qhead = l->qtail = NULL;
	l->efd = -1;
}

void rctx__limiter_fini(struct rctx_limiter *l)
{
	RCTX_ASSERT(!l->qhead && !l->inflight);
	if (l->efd >= 0)
		close(l->efd);
}

static void req_put(struct limiter_req *r)
{
	if (--r->refs)
		return;
	rctx_unref(r->l->owner);
	free(r);
}

static void queue_unlink(struct rctx_limiter *l, struct limiter_req *r)
{
	*(r->prev ? &r->prev->next : &l->qhead) = r->next;
	*(r->next ? &r->next->prev : &l->qtail) = r->prev;
	r->prev = r->next = NULL;
}

static void queue_append(struct rctx_limiter *l, struct limiter_req *r)
{
	r->next = NULL;
	r->prev = l->qtail;
	*(l->qtail ? &l->qtail->next : &l->qhead) = r;
	l->qtail = r;
}

/* A queued request leaves the queue: it no longer needs its sentinel. */
static rctx_t *req_dequeue(struct rctx_limiter *l, struct limiter_req *r)
{
	rctx_t *ctx = r->ctx;

	queue_unlink(l, r);
	if (r->watch)
		rctx_release(r->watch); /* its sentinel completes -ECANCELED */
	r->watch = NULL;
	r->ctx = NULL;
	return ctx;
}

static void req_completed(void *arg, int res, uint32_t flags);

/* Submit r (0: its callback will run), or rctx_submit's error. */
static int req_submit(struct rctx_limiter *l, rctx_ring_t *ring, rctx_t *ctx,
		      struct limiter_req *r, const struct io_uring_sqe *sqe)
{
	bool done = rctx_err(ctx) != 0;
	int ret = rctx_submit(ring, ctx, sqe, req_completed, r);

	if (ret < 0)
		return ret;
	r->state = GREQ_SUBMITTED;
	r->counted = !done && l->limit > 0;
	l->inflight += r->counted;
	return 0;
}

/* Ring owner, from a callback: submit queued requests while slots are free. */
static void limiter_pump(struct rctx_limiter *l)
{
	while (l->qhead && l->inflight < l->limit) {
		struct limiter_req *r = l->qhead;
		rctx_t *ctx = req_dequeue(l, r);
		int ret = req_submit(l, l->ring, ctx, r, &r->sqe);

		rctx_unref(ctx);
		if (ret < 0) {
			r->state = GREQ_ENDED;
			r->cb(r->arg, ret, 0);
			req_put(r);
		}
	}
}

static void req_completed(void *arg, int res, uint32_t flags)
{
	struct limiter_req *r = arg;

	if (flags & IORING_CQE_F_MORE) { /* multishot: keeps its slot */
		r->cb(r->arg, res, flags);
		return;
	}
	if (r->counted) {
		r->counted = false;
		r->l->inflight--;
		limiter_pump(r->l);
	}
	r->cb(r->arg, res, flags);
	req_put(r);
}

/* The error a queued request ends with when its sentinel completes: its
 * context's, or, if the ring's link timeout was quicker than the runtime
 * thread, -ETIMEDOUT for a deadline passed; else the ring is going away. */
static int queued_err(rctx_t *ctx)
{
	int64_t dl;
	int err = rctx_err(ctx);

	if (err)
		return err;
	if (rctx_deadline(ctx, &dl) && dl <= rctx_now())
		return -ETIMEDOUT;
	return -ECANCELED;
}

static void sentinel_completed(void *arg, int res, uint32_t flags)
{
	struct limiter_req *r = arg;

	(void)res;
	(void)flags;
	if (r->state == GREQ_QUEUED) {
		int err = queued_err(r->ctx);

		rctx_unref(req_dequeue(r->l, r));
		r->state = GREQ_ENDED;
		r->cb(r->arg, err, 0);
		r->refs--; /* the request's: the sentinel's is the last */
	}
	req_put(r);
}

/* Arm r's sentinel: a poll that never fires, under a child of r's context. */
static int sentinel_arm(struct rctx_limiter *l, struct limiter_req *r)
{
	struct io_uring_sqe s;
	int ret;

	if (l->efd < 0) {
		l->efd = rctx__eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (l->efd < 0)
			return -errno;
	}
	r->watch = rctx_with_cancel(r->ctx);
	if (!r->watch)
		return -ENOMEM;
	memset(&s, 0, sizeof(s));
	io_uring_prep_poll_add(&s, l->efd, POLLIN);
	ret = rctx_submit(l->ring, r->watch, &s, sentinel_completed, r);
	if (ret < 0) {
		rctx_release(r->watch);
		r->watch = NULL;
		return ret;
	}
	r->refs++;
	return 0;
}

/* Queue r behind the others (0), or an error and nothing queued. */
static int req_queue(struct rctx_limiter *l, struct limiter_req *r, rctx_t *ctx,
		     const struct io_uring_sqe *sqe)
{
	struct rctx_cancel *gov = rctx_governor(ctx);
	int ret;

	memcpy(&r->sqe, sqe, sizeof(r->sqe));
	r->ctx = rctx_ref(ctx);
	if (gov) { /* a context that can end */
		ret = sentinel_arm(l, r);
		if (ret < 0) {
			rctx_unref(r->ctx);
			return ret;
		}
	}
	r->state = GREQ_QUEUED;
	queue_append(l, r);
	return 0;
}

int rctx__limiter_submit(struct rctx_limiter *l, struct rctx_ring *ring, rctx_t *ctx,
			 const struct io_uring_sqe *sqe, rctx_cb_t cb, void *arg)
{
	ERRNO_GUARD;
	struct limiter_req *r;
	int ret;

	if (!ring || !ctx_valid(ctx) || !sqe || !cb || rctx__sqe_refused(sqe))
		return -EINVAL;
	if (l->limit > 0 && l->ring != ring) {
		if (l->inflight || l->qhead)
			return -EXDEV;
		l->ring = ring;
	}
	r = rctx__malloc(sizeof(*r));
	if (!r)
		return -ENOMEM;
	memset(r, 0, offsetof(struct limiter_req, sqe));
	r->l = l;
	r->cb = cb;
	r->arg = arg;
	r->refs = 1;
	if (l->limit < 0 || rctx_err(ctx) || (l->inflight < l->limit && !l->qhead))
		ret = req_submit(l, ring, ctx, r, sqe);
	else
		ret = req_queue(l, r, ctx, sqe);
	if (ret < 0) {
		free(r);
		return ret;
	}
	rctx_ref(l->owner);
	return 0;
}
