/* SPDX-License-Identifier: MIT */
/*
 * The request limiter of a group (rctx_group_submit): at most limit requests
 * in flight on the one ring the limiter is bound to, counted on that ring's
 * owner thread only: no lock.
 *
 * A request over the limit waits in a FIFO. If its context can end, it is
 * also a parked request of the ring (rctx__ring_park(), lib/ring.c): it
 * holds a slot, tracked by its context's governor like a request in flight
 * but with no SQE, so the cancel of that context reaches it by the usual
 * path (the governor's request list, the ring's cancel stack and wake-up,
 * from any thread) and the ring ends it at once with the context's error.
 * No kernel object and no context per queued request. A request under a
 * context that can never end (no governor) needs no slot while it waits.
 * The same callback, req_completed(), sees every end of a request: still
 * queued (its context ended, or the ring is going away), or after it was
 * sent.
 *
 * Without a limit a request is a plain rctx_submit(): no record, nothing
 * counted. With one, records are reused from a small cache of the
 * limiter's (the owner thread's, like the rest).
 *
 * Invariants: inflight counts the requests sent and counted (r->counted),
 * whose callback has not run; a request is in the FIFO iff r->queued; a
 * request leaves the FIFO when a slot frees (limiter_pump()) or when it
 * ends while queued. Each request not completed holds a reference to the
 * limiter's owner (the group's context), whose memory holds the limiter.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* Records kept for reuse, at most. */
#define LIMITER_CACHE 64

/* A request of rctx_group_submit(): the ring owner's only. */
struct limiter_req {
	struct rctx_limiter *l;
	struct limiter_req *prev, *next; /* the FIFO, while queued */
	union {
		struct rctx_req *parked; /* its slot while queued, if it can end */
		struct limiter_req *free_next; /* in the cache */
	};
	rctx_cb_t cb;
	void *arg;
	bool queued;                 /* in the FIFO */
	bool counted;                /* holds one of the limit's slots */
	struct io_uring_sqe sqe;     /* while queued */
};

void rctx__limiter_init(struct rctx_limiter *l, struct rctx *owner, int limit)
{
	l->owner = owner;
	l->limit = limit;
	l->ring = NULL;
	l->inflight = 0;
	l->qhead = l->qtail = NULL;
	l->cache = NULL;
	l->ncache = 0;
}

void rctx__limiter_fini(struct rctx_limiter *l)
{
	RCTX_ASSERT(!l->qhead && !l->inflight);
	while (l->cache) {
		struct limiter_req *r = l->cache;

		l->cache = r->free_next;
		free(r);
	}
}

static struct limiter_req *req_alloc(struct rctx_limiter *l)
{
	struct limiter_req *r = l->cache;

	if (!r)
		return rctx__malloc(sizeof(*r));
	l->cache = r->free_next;
	l->ncache--;
	return r;
}

static void req_free(struct rctx_limiter *l, struct limiter_req *r)
{
	if (l->ncache == LIMITER_CACHE) {
		free(r);
		return;
	}
	r->free_next = l->cache;
	l->cache = r;
	l->ncache++;
}

static void queue_unlink(struct rctx_limiter *l, struct limiter_req *r)
{
	*(r->prev ? &r->prev->next : &l->qhead) = r->next;
	*(r->next ? &r->next->prev : &l->qtail) = r->prev;
	r->prev = r->next = NULL;
	r->queued = false;
}

static void queue_append(struct rctx_limiter *l, struct limiter_req *r)
{
	r->next = NULL;
	r->prev = l->qtail;
	*(l->qtail ? &l->qtail->next : &l->qhead) = r;
	l->qtail = r;
	r->queued = true;
}

static void req_completed(void *arg, int res, uint32_t flags);

/* A request that left the queue: true if it went to the kernel. Its
 * callback runs in any case, even if its submission fails. Without a
 * governor its context is as good as background (no deadline, no
 * tracking), which needs no reference. */
static bool req_send_queued(struct rctx_limiter *l, struct limiter_req *r)
{
	struct rctx_req *slot = r->parked;
	int ret;

	r->parked = NULL;
	if (slot)
		return rctx__ring_unpark(l->ring, slot, &r->sqe);
	ret = rctx_submit(l->ring, rctx_background(), &r->sqe, req_completed, r);
	if (ret < 0)
		req_completed(r, ret, 0);
	return ret == 0;
}

/* Ring owner, from a callback: send queued requests while slots are free.
 * One whose context ended meanwhile is not sent: its callback comes with
 * the context's error, uncounted. */
static void limiter_pump(struct rctx_limiter *l)
{
	while (l->qhead && l->inflight < l->limit) {
		struct limiter_req *r = l->qhead;

		queue_unlink(l, r);
		if (req_send_queued(l, r)) {
			r->counted = true;
			l->inflight++;
		}
	}
}

/* Every end of a request: ended while queued, or its (last) CQE. */
static void req_completed(void *arg, int res, uint32_t flags)
{
	struct limiter_req *r = arg;
	struct rctx_limiter *l = r->l;

	if (flags & IORING_CQE_F_MORE) { /* multishot: keeps its slot */
		r->cb(r->arg, res, flags);
		return;
	}
	if (r->queued) {
		queue_unlink(l, r);
	} else if (r->counted) {
		l->inflight--;
		limiter_pump(l);
	}
	r->cb(r->arg, res, flags);
	req_free(l, r);
	rctx__unref(l->owner); /* last: it may free l */
}

/* Send r now (0: its callback will run), or rctx_submit's error. */
static int req_submit(struct rctx_limiter *l, struct rctx_ring *ring, rctx_t *ctx,
		      struct limiter_req *r, const struct io_uring_sqe *sqe)
{
	bool done = rctx_err(ctx) != 0;
	int ret = rctx_submit(ring, ctx, sqe, req_completed, r);

	if (ret < 0)
		return ret;
	r->counted = !done;
	l->inflight += r->counted;
	return 0;
}

/* Queue r behind the others (0), or -ENOMEM and nothing queued. */
static int req_queue(struct rctx_limiter *l, struct rctx_ring *ring, rctx_t *ctx,
		     struct limiter_req *r, const struct io_uring_sqe *sqe)
{
	if (rctx_governor(ctx)) {
		r->parked = rctx__ring_park(ring, ctx, req_completed, r);
		if (!r->parked)
			return -ENOMEM;
	}
	memcpy(&r->sqe, sqe, sizeof(r->sqe));
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
	if (l->limit < 0)
		return rctx_submit(ring, ctx, sqe, cb, arg);
	if (l->ring != ring) {
		if (l->inflight || l->qhead)
			return -EXDEV;
		l->ring = ring;
	}
	r = req_alloc(l);
	if (!r)
		return -ENOMEM;
	memset(r, 0, offsetof(struct limiter_req, sqe));
	r->l = l;
	r->cb = cb;
	r->arg = arg;
	if (rctx_err(ctx) || (l->inflight < l->limit && !l->qhead))
		ret = req_submit(l, ring, ctx, r, sqe);
	else
		ret = req_queue(l, ring, ctx, r, sqe);
	if (ret < 0) {
		req_free(l, r);
		return ret;
	}
	rctx__ref(l->owner);
	return 0;
}
