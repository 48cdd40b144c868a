/* SPDX-License-Identifier: MIT */
/*
 * Rings and the requests submitted under contexts.
 *
 * A request lives in a slot of its ring; its user_data is
 * tag(2) | generation(30) | slot(32) (tags: lib/uring.h), so a late cancel
 * aimed at a finished request can never hit the slot's next occupant. While in flight a request is
 * linked in the request list of its governing context (under that context's
 * lock) and holds a reference to it. Both happen per batch: a request is
 * linked when the ring submits, before its SQE can reach the kernel
 * (track_pending()), and unlinked at the end of its reaped batch of CQEs
 * (settle_batch()), one lock round trip per governor each time.
 *
 * Cancelling a context walks its request list under its lock and pushes its
 * requests, once each, on their ring's lock-free cancel stack; after the
 * locks are dropped each ring is woken once (an eventfd write that completes
 * a read the ring keeps pending). The ring's owner pops the stack and issues
 * one IORING_OP_ASYNC_CANCEL by user_data per request, CANCEL_CHUNK per
 * io_uring_enter; where the kernel can, a cancel posts a CQE only when it
 * fails. Only the owner touches the SQ.
 *
 * A slot is freed by the owner only once its CQE arrived and it is off the
 * cancel stack (a request that completes while queued becomes a zombie until
 * popped).
 *
 * A parked request (rctx__ring_park(): the queue of a group's request
 * limiter) holds a slot and its governor, and is linked in the governor's
 * request list, with no SQE: a cancel reaches it as any other request, and
 * the owner ends it with the governor's error where it would send a cancel.
 * No kernel object waits for it.
 */
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

#define REQ_CHUNK 256

/*
 * Cancels of polled requests are submitted CANCEL_CHUNK at a time. The
 * kernel finds each target by walking one chain of its cancel hash (at most
 * 256 chains), and a cancelled request leaves its chain only when its task
 * work runs, on the way back to user space: in one io_uring_enter of
 * thousands of cancels each walks past the chain's earlier victims. A return
 * to user space every 128 cancels empties the chains. Measured with 8,000
 * socket receives on one ring (6.18, best of 10): 930 ns per request in one
 * enter, 575-610 ns in chunks of 128 or 256, 660 in chunks of 64.
 */
#define CANCEL_CHUNK 128
#define DEFAULT_ENTRIES 256
/*
 * A completion does not interrupt the owner while it runs in user space:
 * its task work waits for the owner's next system call (a submit, the
 * sleep in ppoll, or a peek that sees IORING_SQ_TASKRUN). An interrupt per
 * completion costs an event loop its batching.
 */
#define COOP_FLAGS (IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG)

/* RS_DONE: its final CQE was reaped, its governor not yet settled (the end
 * of the reaped batch, settle_batch()). RS_PARKED: held back, no SQE yet. */
enum { RS_FREE, RS_INFLIGHT, RS_ZOMBIE, RS_LOCAL, RS_DONE, RS_PARKED };

struct rctx_req {
	union {
		struct hnode link;     /* in ctx->reqs while in flight */
		int res;               /* short-circuited: the result to deliver */
	};
	struct rctx_req *cnext;        /* cancel stack, free list, local FIFO */
	struct rctx_cancel *ctx;       /* governor (holds a reference) or NULL */
	rctx_cb_t cb;
	void *arg;
	uint64_t ud;                   /* user_data payload: generation, index */
	uint32_t stamp_ms;             /* its ring's clock at submission */
	/* Written under its governor's lock while linked: */
	uint8_t queued : 1;            /* pushed on the cancel stack */
	uint8_t parked : 1;            /* RS_PARKED (read by rctx_dump()) */
	uint8_t state;                 /* owner only */
	uint8_t opcode;                /* of the SQE (teardown order, dumps) */
	/* Owner only, one byte (apart from queued, which cancellers write). */
	uint8_t cissued : 1;           /* cancel sent */
	uint8_t popped : 1;            /* taken off the stack */
	uint8_t cfail : 1;             /* its cancel posted a failure */
	uint8_t prev_found : 1;        /* the previous occupant was counted in
					  cancel_found (kept past slot_free,
					  see cancel_failed()) */
	uint8_t retry : 1;             /* on cancel_retry */
};
_Static_assert(sizeof(struct rctx_req) == 64, "a request slot is one cache line");

/*
 * Slots come in chunks of REQ_CHUNK, aligned to their size; slot 0 of a chunk
 * is its header. A request's ring and index follow from its address.
 */
#define CHUNK_BYTES (REQ_CHUNK * sizeof(struct rctx_req))
struct chunk_hdr {
	struct rctx_ring *ring;
	uint32_t index;
};

static inline struct chunk_hdr *req_chunk(const struct rctx_req *r)
{
	return (struct chunk_hdr *)((uintptr_t)r & ~(uintptr_t)(CHUNK_BYTES - 1));
}

static inline struct rctx_ring *req_ring(const struct rctx_req *r)
{
	return req_chunk(r)->ring;
}

/* The generation is the payload's bits 32-61: it wraps within them. */
#define UD_GEN_ONE (UINT64_C(1) << 32)
#define UD_GEN(ud) ((uint32_t)((ud) >> 32) & 0x3fffffff)

static inline uint64_t req_ud(const struct rctx_req *r, enum ud_tag tag)
{
	return ((uint64_t)tag << 62) | r->ud;
}

/* Ring statistics have one writer, the owner (lib/stat.h). */
#define STAT_ADD(r, f, n) stat_add_owner(&(r)->st.f, (n))
#define STAT_SUB(r, f, n) stat_sub_owner(&(r)->st.f, (n))

struct rctx_ring {
	struct io_uring ring;
	struct rctx_req **chunks;
	unsigned nchunks;
	unsigned pending;              /* callbacks not yet run */
	unsigned unsent;               /* requests prepared since the last
					  track_pending(): not yet counted in
					  submitted and in_flight */
	struct rctx_req *free_list;
	struct rctx_req *local_head, *local_tail; /* short-circuited, FIFO */
	_Atomic(struct rctx_req *) cancel_q;
	_Atomic int wakers;            /* cancellers between push and wake */
	struct wake wake;
	bool in_run;
	bool wake_unarmed;             /* the wake-up read could not be queued */
	uint32_t now_ms;               /* owner: rctx_now() in ms, read once per
					  run and flush; stamps requests */
	struct rctx_req *cancel_retry; /* cancels that found the SQ wedged */
	struct rctx_req *untracked_head, *untracked_tail; /* submitted, not yet
					  linked to their governors, FIFO */
	bool skip_cqe;                 /* IORING_FEAT_CQE_SKIP: cancels post
					  only their failures */
	struct __kernel_timespec *ts;  /* one per SQE slot, live until submit */
	struct rctx_ring *keep_next;   /* lib/keeper.c: adopted rings */
	_Atomic(struct rctx_post *) post_q; /* posted by other threads */
	struct rctx_post *held;        /* owner: outstanding posts (held list) */
	struct rctx_ab_stats *ab;      /* abandoned requests' counters */
	struct {
		_Atomic uint64_t submitted, short_circuited, completed,
			cancels_issued, cancel_found, cancel_ealready,
			cancel_enoent, aborted, completed_anyway, link_timeouts,
			link_timeouts_fired, in_flight, held_after_cancel;
	} st;
};

/* The ring whose rctx_ring_run() is executing on this thread, if any. */
static __thread struct rctx_ring *tls_running;

/* A new chunk of slots; the first returned, the others on the free list. */
static __attribute__((noinline)) struct rctx_req *slot_grow(struct rctx_ring *ring)
{
	ERRNO_GUARD;
	struct rctx_req *chunk, **chunks;

	chunks = rctx__realloc(ring->chunks, (ring->nchunks + 1) * sizeof(*chunks));
	if (!chunks)
		return NULL;
	ring->chunks = chunks;
	chunk = rctx__aligned_alloc(CHUNK_BYTES, CHUNK_BYTES);
	if (!chunk)
		return NULL;
	memset(chunk, 0, CHUNK_BYTES);
	((struct chunk_hdr *)chunk)->ring = ring;
	((struct chunk_hdr *)chunk)->index = ring->nchunks;
	for (unsigned i = 1; i < REQ_CHUNK; i++)
		chunk[i].ud = ring->nchunks * REQ_CHUNK + i; /* generation 0 */
	chunks[ring->nchunks++] = chunk;
	for (unsigned i = REQ_CHUNK - 1; i >= 2; i--) {
		chunk[i].cnext = ring->free_list;
		ring->free_list = &chunk[i];
	}
	return &chunk[1];
}

static struct rctx_req *slot_alloc(struct rctx_ring *ring)
{
	struct rctx_req *r = ring->free_list;

	if (likely(r)) {
		ring->free_list = r->cnext;
		return r;
	}
	return slot_grow(ring);
}

static void slot_free(struct rctx_ring *ring, struct rctx_req *r)
{
	r->ud = (r->ud + UD_GEN_ONE) & UD_PAYLOAD_MASK;
	RCTX_ASSERT(r->state != RS_FREE);
	r->state = RS_FREE;
	r->cnext = ring->free_list;
	ring->free_list = r;
}

static struct rctx_req *slot_lookup(struct rctx_ring *ring, uint64_t ud)
{
	uint32_t idx = (uint32_t)ud;
	struct rctx_req *r;

	if (idx / REQ_CHUNK >= ring->nchunks || idx % REQ_CHUNK == 0)
		return NULL;
	r = &ring->chunks[idx / REQ_CHUNK][idx % REQ_CHUNK];
	if (r->state == RS_FREE || r->ud != ud_payload(ud))
		return NULL;
	return r;
}

/* ---- SQEs ---------------------------------------------------------------- */

static void track_pending(struct rctx_ring *ring);

static struct io_uring_sqe *ring_sqe_get(struct rctx_ring *ring, unsigned need,
					 int *err);

static void arm_wake_read(struct rctx_ring *ring)
{
	int err;
	struct io_uring_sqe *sqe = ring_sqe_get(ring, 1, &err);

	if (!sqe) {
		ring->wake_unarmed = true; /* retried at the next run */
		return;
	}
	/* Pairs with the canceller's push then signal: either we see its
	 * push in drain_cancels, or it sees the read armed and writes. */
	rctx__wake_arm(&ring->wake, sqe, ud_make(UD_WAKE, 0));
	ring->wake_unarmed = false;
}

/* ---- cancellation (called by any thread) ------------------------------- */

static void wake_ring(struct rctx_ring *ring)
{
	if (ring != tls_running)
		rctx__wake_signal(&ring->wake);
	atomic_fetch_sub_explicit(&ring->wakers, 1, memory_order_release);
}

static void batch_add(struct cancel_batch *b, struct rctx_ring *ring)
{
	for (unsigned i = 0; i < b->n; i++)
		if (b->rings[i] == ring)
			return;
	atomic_fetch_add_explicit(&ring->wakers, 1, memory_order_acquire);
	if (b->n == CANCEL_WAKE_MAX)
		wake_ring(b->rings[--b->n]); /* make room: wake one now */
	b->rings[b->n++] = ring;
}

/* Push the chain head..tail (linked by cnext) on ring's cancel stack at once. */
static void cancel_push_chain(struct rctx_ring *ring, struct rctx_req *head,
			      struct rctx_req *tail)
{
	struct rctx_req *top = atomic_load_explicit(&ring->cancel_q, memory_order_relaxed);

	do {
		tail->cnext = top;
	} while (!atomic_compare_exchange_weak_explicit(&ring->cancel_q, &top, head,
			memory_order_seq_cst, memory_order_relaxed));
}

/*
 * Queue every request of c on its ring's cancel stack. Under c->lock. The
 * requests of one ring that follow each other in c's list (the usual case:
 * one ring per thread) go on its stack in one push, in the order one push
 * each would leave (the oldest on top).
 */
void rctx__ring_cancel_reqs_locked(struct rctx_cancel *c, struct cancel_batch *b)
{
	struct rctx_req *head = NULL, *tail = NULL;
	struct rctx_ring *cur = NULL;

	RLOCK_ASSERT_HELD(&c->lock);
	for (struct hnode *h = c->reqs; h; h = h->next) {
		struct rctx_req *r = container_of(h, struct rctx_req, link);
		struct rctx_ring *ring = req_ring(r);

		if (r->queued)
			continue;
		r->queued = 1;
		if (ring != cur) {
			if (head)
				cancel_push_chain(cur, head, tail);
			cur = ring;
			head = tail = NULL;
			batch_add(b, ring);
		}
		/* The list runs newest first; the chain, oldest first, is
		 * the order one push per request would leave on the stack. */
		r->cnext = head;
		head = r;
		if (!tail)
			tail = r;
	}
	if (head)
		cancel_push_chain(cur, head, tail);
}

void rctx__ring_wake_batch(struct cancel_batch *b)
{
	for (unsigned i = 0; i < b->n; i++)
		wake_ring(b->rings[i]);
	b->n = 0;
}

/* Owner: the SQ is short of need SQEs. Making room submits, so the
 * requests not yet tracked are tracked first. */
static __attribute__((noinline)) struct io_uring_sqe *ring_sqe_get_slow(struct rctx_ring *ring,
						       unsigned need, int *err)
{
	ERRNO_GUARD;

	track_pending(ring);
	return rctx__sqe_get(&ring->ring, need, err);
}

/*
 * Owner: need free SQEs in a row, the first returned (rctx__sqe_get()).
 * What io_uring_sq_space_left() then io_uring_get_sqe() do, with one read
 * of the kernel's head: a ring has neither SQPOLL (the head moves only
 * inside our own io_uring_enter) nor 128-byte SQEs (rctx_ring_create()).
 */
static inline bool sq_room(const struct rctx_ring *ring, unsigned need)
{
	const struct io_uring_sq *sq = &ring->ring.sq;

	return sq->sqe_tail + need - IO_URING_READ_ONCE(*sq->khead) <= sq->ring_entries;
}

/* The next SQE, sq_room() known. */
static inline struct io_uring_sqe *sq_next(struct rctx_ring *ring)
{
	struct io_uring_sq *sq = &ring->ring.sq;

	return &sq->sqes[sq->sqe_tail++ & sq->ring_mask];
}

static inline struct io_uring_sqe *ring_sqe_get(struct rctx_ring *ring,
						unsigned need, int *err)
{
	if (likely(sq_room(ring, need)))
		return sq_next(ring);
	return ring_sqe_get_slow(ring, need, err);
}

/* Owner: every submission of the ring's SQEs, tracking first. */
static int ring_submit(struct rctx_ring *ring)
{
	track_pending(ring);
	return rctx__submit(&ring->ring);
}

/*
 * Owner: issue a cancel for one in-flight request. With IORING_FEAT_CQE_SKIP
 * the cancel posts a CQE only when it fails (-EALREADY, -ENOENT); that it
 * found its target shows in the target's -ECANCELED (count_completion()).
 * Its user_data names the target, so a failure reaches the target's slot.
 */
static void issue_cancel(struct rctx_ring *ring, struct rctx_req *r)
{
	struct io_uring_sqe *sqe;
	uint64_t ud = req_ud(r, UD_TARGET);
	int err;

	sqe = ring_sqe_get(ring, 1, &err);
	if (!sqe) {
		/* The SQ is wedged: try again at the next run. Until then
		 * the slot stays (a zombie if it completes meanwhile). */
		r->retry = 1;
		r->cnext = ring->cancel_retry;
		ring->cancel_retry = r;
		return;
	}
	io_uring_prep_cancel64(sqe, ud, 0);
	io_uring_sqe_set_data64(sqe, ud_make(UD_CANCEL, ud_payload(ud)));
	if (ring->skip_cqe)
		sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
	r->cissued = 1;
	STAT_ADD(ring, cancels_issued, 1);
	STAT_ADD(ring, held_after_cancel, 1);
}

/* Whether a finished request's slot must wait: it is on the cancel stack or
 * the retry list. Read once it is off its governor's list (no canceller
 * writes queued any more). */
static bool slot_held(const struct rctx_req *r)
{
	return (r->queued && !r->popped) || r->retry;
}

/* Owner: a zombie left the cancel stack or the retry list; free it once it
 * has left both. */
static void zombie_release(struct rctx_ring *ring, struct rctx_req *r)
{
	if (!slot_held(r))
		slot_free(ring, r);
}

/* Owner: cancels that found the SQ wedged last time. */
static void retry_cancels(struct rctx_ring *ring)
{
	struct rctx_req *r = ring->cancel_retry, *next;

	ring->cancel_retry = NULL;
	for (; r; r = next) {
		next = r->cnext;
		r->retry = 0;
		if (r->state == RS_ZOMBIE)
			zombie_release(ring, r);
		else if (r->state != RS_DONE) /* RS_DONE: settle_batch() frees it */
			issue_cancel(ring, r);
	}
}

static void park_end(struct rctx_ring *ring, struct rctx_req *r, int res);

/*
 * Owner: pop the cancel stack and send one cancel per live request. A
 * context's cancel pushes its requests newest first, so they pop oldest
 * first: timeouts are cancelled in that order, polled requests in reverse
 * (see rctx__ring_cancel_all() for why).
 */
static void drain_cancels(struct rctx_ring *ring)
{
	struct rctx_req *r, *next, *rev = NULL;
	unsigned n = 0;

	if (unlikely(ring->wake_unarmed))
		arm_wake_read(ring);
	if (unlikely(ring->cancel_retry))
		retry_cancels(ring);
	/* seq_cst: after the fence of arm_wake_read (lib/wake.c). */
	if (!atomic_load_explicit(&ring->cancel_q, memory_order_seq_cst))
		return;
	for (r = LFSTACK_TAKE(&ring->cancel_q); r; r = next) {
		next = r->cnext;
		r->popped = 1;
		if (r->state == RS_ZOMBIE) {
			zombie_release(ring, r);
		} else if (r->cissued || r->state == RS_DONE) {
			continue; /* RS_DONE: settle_batch() frees it */
		} else if (r->state == RS_PARKED) {
			park_end(ring, r, 0);
		} else if (r->opcode == IORING_OP_TIMEOUT) {
			issue_cancel(ring, r);
		} else {
			r->cnext = rev;
			rev = r;
		}
	}
	for (r = rev; r; r = next) {
		next = r->cnext;
		issue_cancel(ring, r);
		/* Submit in chunks: see CANCEL_CHUNK. */
		if (++n % CANCEL_CHUNK == 0)
			ring_submit(ring);
	}
}

/* ---- submission ---------------------------------------------------------- */

/* The only write of the library into SQE memory outside liburing's helpers
 * (named for tests/tsan.supp: that memory is mapped by raw mmap calls). */
static void sqe_copy(struct io_uring_sqe *dst, const struct io_uring_sqe *src)
{
	*dst = *src;
}

/* The arguments rctx_submit() accepts (its refused flags: internal.h). */
static bool submit_args_valid(const struct rctx_ring *ring, const rctx_t *ctx,
			      const struct io_uring_sqe *sqe, rctx_cb_t cb)
{
	return ring && ctx_valid(ctx) && sqe && cb && !rctx__sqe_refused(sqe);
}

/* Set up a slot taken off the free list for a new request. */
static inline void slot_init(struct rctx_ring *ring, struct rctx_req *r,
			     rctx_cb_t cb, void *arg)
{
	r->cb = cb;
	r->arg = arg;
	r->queued = 0;
	r->parked = 0;
	r->popped = 0;
	r->cissued = 0;
	r->cfail = 0;
	r->retry = 0;
	r->state = RS_INFLIGHT;
	r->ctx = NULL;
	r->stamp_ms = ring->now_ms;
}

/* A free slot set up for a new request, or NULL. */
static struct rctx_req *slot_start(struct rctx_ring *ring, rctx_cb_t cb, void *arg)
{
	struct rctx_req *r = slot_alloc(ring);

	if (likely(r))
		slot_init(ring, r, cb, arg);
	return r;
}

/* Requests of one governor that follow each other on the untracked list
 * share one reference until track_pending(): the first holds a real one. */
static void defer_track(struct rctx_ring *ring, struct rctx_req *r,
			struct rctx_cancel *g)
{
	struct rctx_req *tail = ring->untracked_tail;

	r->ctx = g;
	r->cnext = NULL;
	if (!tail || tail->ctx != g)
		/* ring -> context: a request holds its governor (inherent). */
		rctx__obj_get(&g->c.hdr);
	if (tail)
		tail->cnext = r;
	else
		ring->untracked_head = r;
	ring->untracked_tail = r;
}

/*
 * Owner: link the requests submitted since the last call in their
 * governors' request lists, one lock round trip and one reference update per
 * run of requests of the same governor. Every path by which the ring's SQEs
 * reach the kernel (ring_submit(), ring_sqe_get()) calls it first, so a
 * cancel sees every request the kernel may hold. A governor done meanwhile
 * (its cancel walked its list without them) gets them linked all the same
 * and queued on the cancel stack, as if its cancel had come just after; the
 * owner drains that stack before it returns to its caller.
 */
static void track_pending(struct rctx_ring *ring)
{
	struct rctx_req *r = ring->untracked_head, *next;

	/* Counted as sent here, once per batch (stats of one writer). */
	if (ring->unsent) {
		STAT_ADD(ring, submitted, ring->unsent);
		STAT_ADD(ring, in_flight, ring->unsent);
		ring->unsent = 0;
	}
	ring->untracked_head = ring->untracked_tail = NULL;
	while (r) {
		struct rctx_cancel *g = r->ctx;
		struct rctx_req *head = NULL, *tail = NULL;
		uint32_t n = 0;
		bool done;

		rlock(&g->lock);
		done = atomic_load_explicit(&g->err, memory_order_relaxed) != 0;
		for (; r && r->ctx == g; r = next) {
			next = r->cnext;
			hlist_add(&g->reqs, &r->link);
			if (done) { /* the chain newest first, as pushed one by one */
				r->queued = 1;
				r->cnext = head;
				head = r;
				if (!tail)
					tail = r;
			}
			n++;
		}
		g->submitted += n;
		runlock(&g->lock);
		if (n > 1)
			atomic_fetch_add_explicit(&g->c.hdr.refs, n - 1,
						  memory_order_relaxed);
		if (head)
			cancel_push_chain(ring, head, tail);
	}
}

/* r (counted in pending) never reaches the kernel: its callback runs with
 * err at the next rctx_ring_run(). */
static void end_locally(struct rctx_ring *ring, struct rctx_req *r, int err)
{
	r->res = err;
	r->state = RS_LOCAL;
	r->cnext = NULL;
	if (ring->local_tail)
		ring->local_tail->cnext = r;
	else
		ring->local_head = r;
	ring->local_tail = r;
	STAT_ADD(ring, short_circuited, 1);
}

/* The context was done already: r never reaches the kernel. */
static void short_circuit(struct rctx_ring *ring, struct rctx_req *r, int err)
{
	ring->pending++;
	end_locally(ring, r, err);
}

/* The request's SQE at s, and its absolute link timeout at the deadline
 * if there is one (the SQE after s). */
static void prep_sqes(struct rctx_ring *ring, struct rctx_req *r,
		      struct io_uring_sqe *s, const struct io_uring_sqe *sqe,
		      int64_t deadline)
{
	sqe_copy(s, sqe);
	s->user_data = req_ud(r, UD_TARGET);
	if (deadline != RCTX_FOREVER) {
		struct io_uring_sqe *l = io_uring_get_sqe(&ring->ring);
		struct __kernel_timespec *ts = &ring->ts[l - ring->ring.sq.sqes];

		s->flags |= IOSQE_IO_LINK;
		*ts = ns_to_kts(deadline);
		io_uring_prep_link_timeout(l, ts, IORING_TIMEOUT_ABS);
		io_uring_sqe_set_data64(l, req_ud(r, UD_TIMEOUT));
		STAT_ADD(ring, link_timeouts, 1);
	}
}

/*
 * rctx_submit() in general: no governor, a governor with a deadline (a link
 * timeout), a done governor, the first request of a run of one governor, no
 * free slot or no SQE at hand.
 */
static __attribute__((noinline)) int submit_slow(struct rctx_ring *ring, rctx_t *ctx,
						 const struct io_uring_sqe *sqe,
						 rctx_cb_t cb, void *arg)
{
	struct rctx_cancel *g;
	struct io_uring_sqe *s;
	int64_t deadline = RCTX_FOREVER;
	struct rctx_req *r;
	int err;

	if (unlikely(!submit_args_valid(ring, ctx, sqe, cb)))
		return -EINVAL;
	r = slot_start(ring, cb, arg);
	if (unlikely(!r))
		return -ENOMEM;
	r->opcode = sqe->opcode;
	g = rctx_governor(ctx);
	if (g) {
		/* The final error: a cancel that is ending g shows ERR_ENDING
		 * until it has ended g's subtree, and cancel_err() waits. */
		err = cancel_err(g);
		if (err) {
			short_circuit(ring, r, err);
			return 0;
		}
		deadline = g->deadline;
	}
	s = ring_sqe_get(ring, deadline != RCTX_FOREVER ? 2 : 1, &err);
	if (unlikely(!s)) {
		slot_free(ring, r);
		return err;
	}
	prep_sqes(ring, r, s, sqe, deadline);
	if (g)
		defer_track(ring, r, g);
	ring->pending++;
	ring->unsent++;
	return 0;
}

/*
 * Submit n SQEs as one chain (IOSQE_IO_LINK): the kernel runs them one after
 * the other, and fails the rest with -ECANCELED once one fails or comes up
 * short. Each is a request of its own, as from rctx_submit() (tracked, so
 * that ctx's cancel reaches whichever of them the kernel runs), whose
 * callback is cb with args[i]; but none has a link timeout (one would split
 * the chain's completions in two): ctx's deadline ends them through its
 * cancel. Their SQEs are taken at once, so that no flush splits the chain;
 * all or none are submitted: 0, or -errno with nothing sent.
 */
int rctx__submit_chain(struct rctx_ring *ring, rctx_t *ctx, const struct io_uring_sqe *sqes,
		       unsigned n, rctx_cb_t cb, void *const *args)
{
	struct rctx_cancel *g = rctx_governor(ctx);
	struct rctx_req *r[RCTX__CHAIN_MAX];
	struct io_uring_sqe *s = NULL;
	int err = g ? cancel_err(g) : 0;
	unsigned i;

	if (!n || n > RCTX__CHAIN_MAX)
		return -EINVAL;
	for (i = 0; i < n; i++) {
		r[i] = slot_start(ring, cb, args[i]);
		if (!r[i]) {
			err = -ENOMEM;
			goto fail;
		}
		r[i]->opcode = sqes[i].opcode;
	}
	if (err) { /* g is done: none of them reaches the kernel */
		for (i = 0; i < n; i++)
			short_circuit(ring, r[i], err);
		return 0;
	}
	s = ring_sqe_get(ring, n, &err);
	if (!s)
		goto fail;
	for (i = 0; i < n; i++) {
		if (i)
			s = sq_next(ring);
		prep_sqes(ring, r[i], s, &sqes[i], RCTX_FOREVER);
		if (i + 1 < n)
			s->flags |= IOSQE_IO_LINK;
		if (g)
			defer_track(ring, r[i], g);
	}
	ring->pending += n;
	ring->unsent += n;
	return 0;
fail:
	while (i--)
		slot_free(ring, r[i]);
	return err;
}

/*
 * The request is linked to its governor (and so becomes visible to
 * cancels) only when its SQE is about to reach the kernel: track_pending().
 * A governor already done here short-circuits it. System calls (and so
 * errno) only on the slow paths, which restore errno themselves.
 *
 * Inline here, with no call, the usual case: a free slot and an SQE at
 * hand, and a governor that is not done, has no deadline and governs the
 * request submitted just before (whose reference it shares, defer_track()).
 */
RCTX_API int rctx_submit(rctx_ring_t *ring, rctx_t *ctx,
			 const struct io_uring_sqe *sqe, rctx_cb_t cb, void *arg)
{
	struct rctx_req *r, *tail;
	struct rctx_cancel *g;
	struct io_uring_sqe *s;

	/* A cancellable context governs itself (and is valid); any other
	 * is checked and resolved by submit_slow(). */
	if (unlikely(!ring || !ctx || !sqe || !cb || !kind_cancellable(ctx) ||
		     rctx__sqe_refused(sqe)))
		return submit_slow(ring, ctx, sqe, cb, arg);
	g = (struct rctx_cancel *)ctx;
	tail = ring->untracked_tail;
	r = ring->free_list;
	/* tail->ctx is never NULL: g is not either past it. */
	if (unlikely(!tail || tail->ctx != g || !r || g->deadline != RCTX_FOREVER ||
		     !sq_room(ring, 1) ||
		     atomic_load_explicit(&g->err, memory_order_acquire)))
		return submit_slow(ring, ctx, sqe, cb, arg);
	ring->free_list = r->cnext;
	slot_init(ring, r, cb, arg);
	r->opcode = sqe->opcode;
	s = sq_next(ring);
	sqe_copy(s, sqe);
	s->user_data = req_ud(r, UD_TARGET);
	r->ctx = g;
	r->cnext = NULL;
	tail->cnext = r;
	ring->untracked_tail = r;
	ring->pending++;
	ring->unsent++;
	return 0;
}

/* ---- parked requests (lib/limiter.c's queue) ------------------------------ */

struct rctx_req *rctx__ring_park(struct rctx_ring *ring, rctx_t *ctx, rctx_cb_t cb,
				 void *arg)
{
	struct rctx_cancel *g = rctx_governor(ctx);
	struct rctx_req *r = slot_start(ring, cb, arg);
	int err = 0;

	if (unlikely(!r))
		return NULL;
	ring->pending++;
	r->state = RS_PARKED;
	if (!g)
		return r;
	rlock(&g->lock);
	err = atomic_load_explicit(&g->err, memory_order_relaxed);
	if (!err) {
		r->ctx = g;
		r->parked = 1;
		hlist_add(&g->reqs, &r->link);
	}
	runlock(&g->lock);
	if (err)
		end_locally(ring, r, err);
	else
		rctx__obj_get(&g->c.hdr); /* ring -> context, as in flight */
	return r;
}

/*
 * Owner: end parked r without sending it, with res (0: its governor's
 * error), unless a cancel pushed it on the cancel stack, whose drain ends
 * it then (with the governor's error).
 */
static void park_end(struct rctx_ring *ring, struct rctx_req *r, int res)
{
	struct rctx_cancel *g = r->ctx;

	if (g) {
		rlock(&g->lock);
		if (r->queued && !r->popped) {
			runlock(&g->lock);
			return;
		}
		if (!res)
			res = atomic_load_explicit(&g->err, memory_order_relaxed);
		hlist_del(&r->link);
		runlock(&g->lock);
		rctx__obj_put(&g->c.hdr);
	}
	RCTX_ASSERT(res);
	end_locally(ring, r, res);
}

bool rctx__ring_unpark(struct rctx_ring *ring, struct rctx_req *r,
		       const struct io_uring_sqe *sqe)
{
	struct rctx_cancel *g = r->ctx;
	int64_t deadline = g ? g->deadline : RCTX_FOREVER;
	struct io_uring_sqe *s;
	int err;

	/* Ended at rctx__ring_park(), or its governor is done (then a
	 * cancel pushed it: the drain of the cancel stack ends it). */
	if (r->state != RS_PARKED || (g && cancel_err(g)))
		return false;
	s = ring_sqe_get(ring, deadline != RCTX_FOREVER ? 2 : 1, &err);
	if (unlikely(!s)) {
		park_end(ring, r, err);
		return false;
	}
	r->opcode = sqe->opcode;
	r->stamp_ms = ring->now_ms;
	r->state = RS_INFLIGHT;
	prep_sqes(ring, r, s, sqe, deadline);
	ring->unsent++;
	if (g) {
		rlock(&g->lock);
		r->parked = 0;
		g->submitted++;
		runlock(&g->lock);
	}
	return true;
}

bool rctx__ring_req_parked(const struct hnode *link)
{
	return container_of(link, struct rctx_req, link)->parked;
}

/* ---- completion ---------------------------------------------------------- */

/*
 * Owner: the final CQE of a request that had a cancel sent, counted (its
 * completion itself is counted per batch, reap()). Without skip-success a
 * cancel's own CQE says whether it found its target; with it, a target that
 * ends with -ECANCELED was found by it, unless its cancel reported a
 * failure: before (cfail) or, if the target's CQE came first, after
 * (cancel_failed() undoes the count then, via prev_found).
 */
static __attribute__((noinline)) void count_cancelled(struct rctx_ring *ring,
						      struct rctx_req *r, int res)
{
	STAT_SUB(ring, held_after_cancel, 1);
	if (res == -ECANCELED || res == -EINTR)
		STAT_ADD(ring, aborted, 1);
	else
		STAT_ADD(ring, completed_anyway, 1);
	if (ring->skip_cqe && res == -ECANCELED && !r->cfail) {
		STAT_ADD(ring, cancel_found, 1);
		r->prev_found = 1;
	}
}

/* Owner: a cancel of the target named by ud failed (skip-success mode). */
static void cancel_failed(struct rctx_ring *ring, uint64_t ud)
{
	uint32_t idx = (uint32_t)ud, gen = UD_GEN(ud);
	struct rctx_req *r;

	if (idx / REQ_CHUNK >= ring->nchunks || idx % REQ_CHUNK == 0)
		return;
	r = &ring->chunks[idx / REQ_CHUNK][idx % REQ_CHUNK];
	if (UD_GEN(r->ud) == gen && r->state == RS_INFLIGHT) {
		r->cfail = 1;
		return;
	}
	/* Its CQE came first (the slot is settling, a zombie, or was freed
	 * once since): if it counted as found, it was not. */
	if ((UD_GEN(r->ud) == gen || ((UD_GEN(r->ud) - 1) & 0x3fffffff) == gen) &&
	    r->prev_found) {
		r->prev_found = 0;
		STAT_SUB(ring, cancel_found, 1);
	}
}

/*
 * A reaped batch: its callbacks, in CQE order, and its finished requests,
 * whose governors are settled (unlinked, counted) with one lock round trip
 * and one reference drop per governor per batch. A finished request's slot
 * is freed just before its callback runs, once its callback and argument
 * are read: a callback may submit, and so reuse it, but never touches the
 * slots of the callbacks after it.
 */
struct reaped {
	struct rctx_req *r;
	int res;
	uint32_t flags;                /* IORING_CQE_F_MORE: r is not finished */
};

/* A governor of a batch and the references its finished requests hold. */
struct gov_put {
	struct rctx_cancel *g;
	uint32_t n;
};

struct reap_batch {
	unsigned n;
	unsigned finished;             /* final CQEs (in e[], no F_MORE) */
	struct rctx_cancel *g;         /* the governor of the first of them */
	bool mixed;                    /* they have more than one governor */
	unsigned nputs;                /* mixed: the governors in puts[] */
	struct reaped e[REAP_BATCH];
	struct gov_put puts[REAP_BATCH];
};

static bool reaped_final(const struct reaped *e)
{
	return !(e->flags & IORING_CQE_F_MORE);
}

/* Owner: a target's CQE. A final one leaves its slot RS_DONE (counted,
 * still on its governor's list) until settle_batch(). */
static void target_cqe(struct rctx_ring *ring, struct reap_batch *b,
		       const struct io_uring_cqe *cqe)
{
	struct rctx_req *r = slot_lookup(ring, cqe->user_data);
	struct reaped *e;

	if (!r)
		return;
	RCTX_ASSERT(r->state == RS_INFLIGHT);
	e = &b->e[b->n++];
	e->r = r;
	e->res = cqe->res;
	e->flags = cqe->flags;
	if (cqe->flags & IORING_CQE_F_MORE)
		return;
	r->state = RS_DONE;
	if (unlikely(r->cissued) || unlikely(r->prev_found)) {
		r->prev_found = 0;
		if (r->cissued)
			count_cancelled(ring, r, cqe->res);
	}
	if (!b->finished++)
		b->g = r->ctx;
	else if (r->ctx != b->g)
		b->mixed = true;
	ring->pending--;
}

/* The ring's completion dispatcher (lib/uring.h). */
static void ring_handle_cqe(struct rctx_ring *ring, struct reap_batch *b,
			    const struct io_uring_cqe *cqe)
{
	if (likely(ud_tag(cqe->user_data) == UD_TARGET)) {
		target_cqe(ring, b, cqe);
		return;
	}
	switch (ud_tag(cqe->user_data)) {
	case UD_TARGET:
		break;
	case UD_TIMEOUT:
		if (cqe->res == -ETIME)
			STAT_ADD(ring, link_timeouts_fired, 1);
		break;
	case UD_CANCEL:
		if (cqe->res == 0)
			STAT_ADD(ring, cancel_found, 1);
		else if (cqe->res == -EALREADY)
			STAT_ADD(ring, cancel_ealready, 1);
		else
			STAT_ADD(ring, cancel_enoent, 1);
		if (cqe->res && ring->skip_cqe)
			cancel_failed(ring, ud_payload(cqe->user_data));
		break;
	case UD_WAKE:
		arm_wake_read(ring);
		drain_cancels(ring);
		break;
	}
}

static bool res_aborted(const struct reaped *e)
{
	return e->res == -ECANCELED || (e->res == -EINTR && e->r->queued);
}

/* Owner: free a settled request's slot, or leave it as a zombie, which the
 * cancel stack frees, never this. */
static void slot_settled(struct rctx_ring *ring, struct rctx_req *r)
{
	if (unlikely(slot_held(r)))
		r->state = RS_ZOMBIE;
	else
		slot_free(ring, r);
}

/* settle_batch() when every finished request has one governor b->g (the
 * usual case): one pass under its lock, counts added once. */
static void settle_one_governor(struct reap_batch *b)
{
	struct rctx_cancel *g = b->g;
	uint32_t aborted = 0;

	rlock(&g->lock);
	for (unsigned i = 0; i < b->n; i++) {
		struct reaped *e = &b->e[i];

		if (!reaped_final(e))
			continue;
		hlist_del(&e->r->link);
		aborted += res_aborted(e);
	}
	g->aborted += aborted;
	g->completed += b->finished - aborted;
	runlock(&g->lock);
}

/* settle_batch() for finished requests of several governors: one lock
 * round trip per governor, whose references go in b->puts. */
static __attribute__((noinline)) void settle_mixed(struct reap_batch *b)
{
	uint32_t settled = 0; /* bit i: e[i] done with */

	_Static_assert(REAP_BATCH <= 32, "one bit per reaped CQE");
	b->nputs = 0;
	for (unsigned i = 0; i < b->n; i++) {
		struct rctx_cancel *g;
		uint32_t n = 0;

		if ((settled >> i & 1) || !reaped_final(&b->e[i]))
			continue;
		g = b->e[i].r->ctx;
		if (g)
			rlock(&g->lock);
		for (unsigned j = i; j < b->n; j++) {
			struct reaped *e = &b->e[j];

			if ((settled >> j & 1) || !reaped_final(e) || e->r->ctx != g)
				continue;
			settled |= UINT32_C(1) << j;
			n++;
			if (!g)
				continue;
			hlist_del(&e->r->link);
			if (res_aborted(e))
				g->aborted++;
			else
				g->completed++;
		}
		if (g) {
			runlock(&g->lock);
			b->puts[b->nputs++] = (struct gov_put){ g, n };
		}
	}
}

/* Owner: unlink the batch's finished requests from their governors, one
 * lock round trip per governor, before any callback runs (callbacks may
 * submit, flush, cancel or run). */
static void settle_batch(struct reap_batch *b)
{
	if (unlikely(b->mixed))
		settle_mixed(b);
	else if (b->finished && b->g)
		settle_one_governor(b);
}

/* Drop n references to g at once. */
static void governor_put(struct rctx_cancel *g, uint32_t n)
{
	if (n > 1)
		atomic_fetch_sub_explicit(&g->c.hdr.refs, n - 1, memory_order_release);
	rctx__obj_put(&g->c.hdr);
}

/*
 * A request ended -ECANCELED (-EINTR) may have been cut off by its
 * deadline's link timeout in the kernel before the runtime thread's timer
 * ended the context: end it now, so that its callback finds the context
 * done (rctx_err() -ETIMEDOUT), as a cancel's callback does. The governor
 * is still referenced (its reference goes after the callbacks).
 */
static void expire_if_due(const struct reaped *e)
{
	if (unlikely(e->res == -ECANCELED || e->res == -EINTR) && e->r->ctx)
		rctx__expire_due(&e->r->ctx->c.hdr);
}

/* Owner: the batch's callbacks in CQE order, each finished request's slot
 * freed (or left as a zombie) just before its callback, then the governor
 * references. */
static void finish_batch(struct rctx_ring *ring, struct reap_batch *b)
{
	for (unsigned i = 0; i < b->n; i++) {
		struct reaped *e = &b->e[i];
		struct rctx_req *r = e->r;
		rctx_cb_t cb = r->cb;
		void *arg = r->arg;

		expire_if_due(e);
		if (reaped_final(e))
			slot_settled(ring, r);
		cb(arg, e->res, e->flags);
	}
	if (unlikely(b->mixed)) {
		for (unsigned i = 0; i < b->nputs; i++)
			governor_put(b->puts[i].g, b->puts[i].n);
	} else if (b->finished && b->g) {
		governor_put(b->g, b->finished);
	}
}

/*
 * Owner: handle every CQE available, in batches of up to REAP_BATCH
 * released before any callback runs (callbacks may submit and run
 * themselves; the manner of rctx__reap() in lib/uring.h). The CQEs are
 * read in place (a ring has no 32-byte CQEs); only when none is visible
 * does io_uring_peek_batch_cqe() look for an overflow to flush. Returns
 * the callbacks run.
 */
static int run_posted(struct rctx_ring *ring);

static int reap(struct rctx_ring *ring)
{
	struct io_uring_cq *cq = &ring->ring.cq;
	struct reap_batch b;
	int total = 0;

	for (;;) {
		unsigned head = *cq->khead, n;

		n = io_uring_smp_load_acquire(cq->ktail) - head;
		if (!n) {
			struct io_uring_cqe *cqe;

			if (!io_uring_peek_batch_cqe(&ring->ring, &cqe, 1))
				break;
			continue;
		}
		if (n > REAP_BATCH)
			n = REAP_BATCH;
		b.n = b.finished = 0;
		b.g = NULL;
		b.mixed = false;
		/* What handlers do (arm, drain, submit) never reaps; the
		 * batch's results are in b before its CQEs are released. */
		for (unsigned i = 0; i < n; i++)
			ring_handle_cqe(ring, &b, &cq->cqes[(head + i) & cq->ring_mask]);
		io_uring_cq_advance(&ring->ring, n);
		/* Owner statistics once per batch, before any callback. */
		STAT_ADD(ring, completed, b.n);
		STAT_SUB(ring, in_flight, b.finished);
		settle_batch(&b);
		finish_batch(ring, &b);
		total += (int)b.n;
		/* What the batch's callbacks posted (a read they made from the
		 * page cache) runs now, before the next batch: a request that
		 * needs nothing more from the kernel ends here, and so holds
		 * its memory only as long as it works. */
		total += run_posted(ring);
	}
	return total;
}

/*
 * Read the clock for the requests submitted until the next run or flush
 * (their age in rctx_dump()): once per batch, not per submission, and the
 * coarse clock (a quarter of the cost: a one-request run feels a precise
 * read). So the age is in ms, may include the time the ring sat between
 * runs, and a tick (1-10 ms) more.
 */
static void ring_clock(struct rctx_ring *ring)
{
	ring->now_ms = (uint32_t)(clock_coarse_ns() / 1000000);
}

/* Run the callbacks of short-circuited requests. */
static int run_local(struct rctx_ring *ring)
{
	struct rctx_req *r = ring->local_head, *next;
	int n = 0;

	ring->local_head = ring->local_tail = NULL;
	for (; r; r = next) {
		rctx_cb_t cb = r->cb;
		void *arg = r->arg;
		int res = r->res;

		next = r->cnext;
		RCTX_ASSERT(r->state == RS_LOCAL);
		ring->pending--;
		STAT_ADD(ring, completed, 1);
		slot_free(ring, r);
		cb(arg, res, 0);
		n++;
	}
	return n;
}

/* ---- posted completions (lib/async.c) ----------------------------------- */

void rctx__ring_hold(struct rctx_ring *ring, struct rctx_post *p)
{
	p->hprev = NULL;
	p->hnext = ring->held;
	if (ring->held)
		ring->held->hprev = p;
	ring->held = p;
	ring->pending++;
}

void rctx__ring_unhold(struct rctx_ring *ring, struct rctx_post *p)
{
	if (p->hprev)
		p->hprev->hnext = p->hnext;
	else
		ring->held = p->hnext;
	if (p->hnext)
		p->hnext->hprev = p->hprev;
	ring->pending--;
}

/* Any thread; the ring cannot be freed before p is delivered (it counts in
 * pending), and wakers covers the push until the wake-up is written. */
void rctx__ring_post(struct rctx_ring *ring, struct rctx_post *p)
{
	atomic_fetch_add_explicit(&ring->wakers, 1, memory_order_relaxed);
	LFSTACK_PUSH(&ring->post_q, p, p->next);
	wake_ring(ring);
}

/* Owner: deliver what other threads posted, in the order they posted. */
static int run_posted(struct rctx_ring *ring)
{
	struct rctx_post *p, *next;
	int n = 0;

	/* seq_cst: after the fence of arm_wake_read (lib/wake.c). */
	if (!atomic_load_explicit(&ring->post_q, memory_order_seq_cst))
		return 0;
	p = LIST_REVERSE(LFSTACK_TAKE(&ring->post_q), next);
	for (; p; p = next) {
		next = p->next;
		rctx__ring_unhold(ring, p);
		STAT_ADD(ring, completed, 1);
		p->deliver(p);
		n++;
	}
	return n;
}

struct rctx_ab_stats *rctx__ring_ab_stats(struct rctx_ring *ring)
{
	atomic_fetch_add_explicit(&ring->ab->refs, 1, memory_order_relaxed);
	return ring->ab;
}

void rctx__ab_stats_put(struct rctx_ab_stats *ab)
{
	if (atomic_fetch_sub_explicit(&ab->refs, 1, memory_order_acq_rel) == 1)
		free(ab);
}

RCTX_API int rctx_ring_run(rctx_ring_t *ring, int64_t abs_deadline)
{
	ERRNO_GUARD;
	struct rctx_ring *prev;
	int n, ret = 0;

	if (!ring)
		return -EINVAL;
	if (ring->in_run)
		return -EDEADLK;
	ring->in_run = true;
	prev = tls_running;
	tls_running = ring;

	track_pending(ring);
	drain_cancels(ring); /* same-thread cancels skip the eventfd */
	n = run_local(ring);
	n += run_posted(ring);
	ret = ring_submit(ring);
	if (n == 0 && abs_deadline != 0 && ret >= 0) { /* unsent: never sleep */
		/* Completions (or an overflow to flush) first; sleep only if
		 * there are none. */
		n = reap(ring);
		/* A wake-up reaped just now re-armed the read: what was posted
		 * before that sent no new wake-up, so look before sleeping. */
		n += run_posted(ring);
		if (n == 0 && !io_uring_cq_ready(&ring->ring)) {
			/* Reaping may have re-armed the wake-up read or issued
			 * cancels: they must reach the kernel before we sleep,
			 * or a cancel from another thread cannot wake us. */
			if (io_uring_sq_ready(&ring->ring))
				ret = ring_submit(ring);
			if (ret >= 0 && !io_uring_cq_ready(&ring->ring))
				ret = rctx__wait_cqe(&ring->ring, abs_deadline);
		}
	}
	/* After any sleep: what the callbacks below submit is stamped now. */
	ring_clock(ring);
	n += reap(ring);
	n += run_local(ring);
	n += run_posted(ring);
	/* Cancels that callbacks made on this ring skipped the eventfd:
	 * send them, with any others prepared while reaping, now. */
	track_pending(ring);
	drain_cancels(ring);
	if (io_uring_sq_ready(&ring->ring))
		ring_submit(ring);

	tls_running = prev;
	ring->in_run = false;
	/* Posted by the last callbacks, unsignalled (we were running): the
	 * next run must not sleep on them. */
	if (LFSTACK_PEEK(&ring->post_q))
		rctx__wake_signal(&ring->wake);
	if (ret < 0 && ret != -ETIME && ret != -EINTR && ret != -EBUSY && n == 0)
		return ret;
	return n;
}

RCTX_API int rctx_ring_flush(rctx_ring_t *ring)
{
	ERRNO_GUARD;
	if (!ring)
		return -EINVAL;
	ring_clock(ring);
	track_pending(ring);
	drain_cancels(ring);
	return ring_submit(ring);
}

RCTX_API unsigned rctx_ring_pending(const rctx_ring_t *ring)
{
	return ring ? ring->pending : 0;
}

/* ---- creation, teardown ---------------------------------------------------- */

RCTX_API int rctx_ring_create(rctx_ring_t **ringp, unsigned entries)
{
	ERRNO_GUARD;
	struct io_uring_params p;
	struct rctx_ring *ring;
	int ret;

	if (!ringp)
		return -EINVAL;
	if (!entries)
		entries = DEFAULT_ENTRIES;
	if (entries < 2)
		return -EINVAL; /* a request and its link timeout need two */
	ring = rctx__calloc(1, sizeof(*ring));
	if (!ring)
		return -ENOMEM;
	memset(&p, 0, sizeof(p));
	/* Room for a cancel CQE beside each target's (saturated: the kernel
	 * clamps both sizes). */
	p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP | COOP_FLAGS;
	p.cq_entries = entries > UINT_MAX / 4 ? UINT_MAX : entries * 4;
	for (;;) {
		ret = rctx__queue_init_params(entries, &ring->ring, &p);
		if (ret != -EINVAL || !(p.flags & COOP_FLAGS))
			break;
		p.flags &= ~COOP_FLAGS; /* a kernel before 5.19 */
	}
	if (ret < 0)
		goto out_free;
	/* RCTX_NO_CQE_SKIP set: cancels post every result, as on kernels
	 * before 5.17 (tests/test_accounting.c checks both ways). */
	ring->skip_cqe = (p.features & IORING_FEAT_CQE_SKIP) &&
			 !getenv("RCTX_NO_CQE_SKIP");
	ring->ts = rctx__calloc(ring->ring.sq.ring_entries, sizeof(*ring->ts));
	ring->ab = rctx__calloc(1, sizeof(*ring->ab));
	if (!ring->ts || !ring->ab) {
		ret = -ENOMEM;
		goto out_exit;
	}
	atomic_init(&ring->ab->refs, 1);
	ret = rctx__wake_init(&ring->wake);
	if (ret < 0)
		goto out_free_ts;
	arm_wake_read(ring);
	ring_clock(ring);
	*ringp = ring;
	return 0;

out_free_ts:
out_exit:
	free(ring->ab);
	free(ring->ts);
	io_uring_queue_exit(&ring->ring);
out_free:
	free(ring);
	return ret;
}

/* Owner: cancel r unless it is done or has its cancel; end it if parked. */
static void cancel_one(struct rctx_ring *ring, struct rctx_req *r)
{
	if (r->state == RS_INFLIGHT && !r->cissued)
		issue_cancel(ring, r);
	else if (r->state == RS_PARKED)
		park_end(ring, r, -ECANCELED);
}

/*
 * Owner: ask the kernel to abort every request still in flight, in the
 * order that lets it find each one at once. Polled requests (and sockets'
 * recvs, accepts... armed for poll) sit in hash chains, newest at the head,
 * where a cancelled one stays until the next return to user space: they are
 * cancelled newest slot first. Timeouts sit in one list, oldest at the
 * head: they are cancelled oldest first. Any other order walks most of a
 * chain per cancel, quadratic in the number of requests.
 */
void rctx__ring_cancel_all(struct rctx_ring *ring)
{
	track_pending(ring);
	drain_cancels(ring);
	for (struct rctx_post *p = ring->held; p; p = p->hnext)
		p->abandon(p);
	for (unsigned c = ring->nchunks; c-- > 0;)
		for (unsigned i = REQ_CHUNK; --i >= 1;) {
			struct rctx_req *r = &ring->chunks[c][i];

			if (r->opcode != IORING_OP_TIMEOUT)
				cancel_one(ring, r);
		}
	for (unsigned c = 0; c < ring->nchunks; c++)
		for (unsigned i = 1; i < REQ_CHUNK; i++) {
			struct rctx_req *r = &ring->chunks[c][i];

			if (r->opcode == IORING_OP_TIMEOUT)
				cancel_one(ring, r);
		}
	ring_submit(ring);
}

/*
 * Cancel everything and run until every callback ran or the deadline passed.
 * Returns 0 when the ring is empty, -EBUSY if the kernel still holds some.
 */
int rctx__ring_shutdown(struct rctx_ring *ring, int64_t abs_deadline)
{
	rctx__ring_cancel_all(ring);
	while (ring->pending) {
		int ret = rctx_ring_run(ring, abs_deadline);

		if (ret == 0 && abs_deadline != RCTX_FOREVER && rctx_now() >= abs_deadline)
			return -EBUSY;
		if (ret < 0 && ret != -EINTR)
			return ret;
		rctx__ring_cancel_all(ring); /* submitted by callbacks meanwhile */
	}
	return 0;
}

void rctx__ring_free(struct rctx_ring *ring)
{
	/* A canceller may still be between its push and its wake-up. */
	while (atomic_load_explicit(&ring->wakers, memory_order_acquire))
		sched_yield();
	/* Every request popped, unless the process exits with some held. */
	RCTX_ASSERT(ring->pending || !LFSTACK_PEEK(&ring->cancel_q));
	io_uring_queue_exit(&ring->ring);
	rctx__wake_close(&ring->wake);
	for (unsigned c = 0; c < ring->nchunks; c++)
		free(ring->chunks[c]);
	free(ring->chunks);
	free(ring->ts);
	rctx__ab_stats_put(ring->ab);
	free(ring);
}

RCTX_API void rctx_ring_destroy(rctx_ring_t *ring)
{
	ERRNO_GUARD;
	if (!ring || ring->in_run)
		return; /* not from its own callbacks (documented) */
	rctx__ring_shutdown(ring, RCTX_FOREVER);
	drain_cancels(ring); /* free the last zombies */
	rctx__ring_free(ring);
}

RCTX_API struct io_uring *rctx_ring_uring(rctx_ring_t *ring)
{
	if (!ring) {
		errno = EINVAL;
		return NULL;
	}
	return &ring->ring;
}

RCTX_API int rctx_ring_fd(rctx_ring_t *ring)
{
	return ring ? ring->ring.ring_fd : -EINVAL;
}

/* The link of ring in the keeper's list of adopted rings. */
struct rctx_ring **rctx__ring_link(struct rctx_ring *ring)
{
	return &ring->keep_next;
}

void rctx__ring_req_view(const struct hnode *link, struct rctx_req_view *v)
{
	const struct rctx_req *r = container_of(link, struct rctx_req, link);

	v->ring = req_ring(r);
	v->stamp_ms = r->stamp_ms;
	v->opcode = r->opcode;
}

bool rctx__ring_in_run(const struct rctx_ring *ring)
{
	return ring->in_run;
}

RCTX_API int (rctx_ring_stats)(const rctx_ring_t *ring, struct rctx_ring_stats *st,
			      size_t size)
{
	struct rctx_ring_stats all;

	if (!ring)
		return -EINVAL;
#define CP(f) all.f = stat_get(&ring->st.f)
	CP(submitted); CP(short_circuited); CP(completed); CP(cancels_issued);
	CP(cancel_found); CP(cancel_ealready); CP(cancel_enoent); CP(aborted);
	CP(completed_anyway); CP(link_timeouts); CP(link_timeouts_fired);
	CP(in_flight); CP(held_after_cancel);
#undef CP
	all.abandoned = stat_get(&ring->ab->abandoned);
	all.abandoned_late = stat_get(&ring->ab->late);
	all.abandoned_held = all.abandoned > all.abandoned_late ?
			     all.abandoned - all.abandoned_late : 0;
	all.fenced = stat_get(&ring->ab->fenced);
	return rctx__stats_out(st, size, &all, sizeof(all));
}
