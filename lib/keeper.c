/* SPDX-License-Identifier: MIT */
/*
 * The keeper: kernel requests that the library keeps on behalf of callers who
 * may give them up, run by the runtime thread.
 *
 * The kernel ties io-wq work to the task that submitted it: a thread cannot
 * finish exiting while a request it submitted is still running in io-wq
 * (do_exit -> io_uring_cancel_generic -> io_wq_put_and_exit, uninterruptible).
 * Disk I/O that hangs (a dead device, a FUSE server that never answers) may
 * stay there forever. So the blocking calls that may be abandoned (file I/O,
 * fsync, openat: lib/blocking.c) do not submit on the caller's ring: the
 * caller queues a kept request here, the runtime thread submits it on its
 * own ring (the keeper ring) under the caller's context, and the caller
 * sleeps on a futex word until the request completes or the context is done.
 * An abandoned request belongs to the keeper, which frees its memory (and
 * closes a late fd) when the kernel lets go. The library's own watches (fd
 * and signal contexts: lib/watch.c, lib/signal.c) are kept requests too,
 * with a completion hook instead of a waiting caller. The runtime thread
 * lives as long as the process, so no caller's exit ever waits for the disk.
 *
 * The same thread adopts the rings of exited threads that still held
 * requests the kernel would not give back (rctx_thread_ring()): it watches
 * each with a poll request on the ring fd, runs it when completions arrive,
 * and frees it once it is empty.
 *
 * Everything here but the two pushes and the stats runs on the runtime
 * thread. The keeper does not call the runtime: the runtime calls it
 * (rctx__rt_keep(), rctx__rt_adopt() start and wake the thread), and it
 * submits on the runtime ring it is given at init.
 */
#include <poll.h>
#include <stdlib.h>
#include <unistd.h>

#include "internal.h"

#define KEEPER_ENTRIES 256

static struct keeper {
	struct rctx_ring *ring;                  /* runtime thread's */
	struct io_uring *rt_ring;                /* the runtime's own ring */
	_Atomic(struct rctx_ring *) stats_ring;  /* the same, for rctx__keeper_stats */
	_Atomic(struct rctx_kept *) submit_q;    /* from callers */
	_Atomic(struct rctx_ring *) adopt_q;     /* from exiting threads */
	struct rctx_ring *adopted;               /* runtime thread only */
	struct {
		_Atomic uint64_t submitted, abandoned, late, adopted, reclaimed;
	} st;
} kp;

/* ---- kept requests ---------------------------------------------------------- */

/*
 * Abandoned requests the kernel still holds: abandoned minus those ended
 * since. A completion can count its "late" just before its caller counts
 * the abandon, so the difference is clamped at zero.
 */
static uint64_t kept_held(void)
{
	uint64_t late = stat_get(&kp.st.late);
	uint64_t abandoned = stat_get(&kp.st.abandoned);

	return abandoned > late ? abandoned - late : 0;
}

void rctx__kept_put(struct rctx_kept *k)
{
	if (atomic_fetch_sub_explicit(&k->refs, 1, memory_order_acq_rel) != 1)
		return;
	free(k->buf);
	free(k);
}

static void kept_wake(struct rctx_kept *k)
{
	atomic_fetch_add_explicit(&k->seq, 1, memory_order_release);
	rctx__futex_wake_all(&k->seq);
}

/* The request's completion, on the runtime thread. */
static void kept_cb(void *arg, int res, uint32_t flags)
{
	struct rctx_kept *k = arg;
	int waiting = KEPT_WAITING;

	if (flags & IORING_CQE_F_MORE)
		return;
	k->res = res;
	if (k->complete) {
		k->complete(k); /* a watch of the library's own: no caller */
	} else if (atomic_compare_exchange_strong_explicit(&k->state, &waiting, KEPT_DONE,
			memory_order_acq_rel, memory_order_acquire)) {
		kept_wake(k);
	} else {
		/* Its caller gave it up: the result has nowhere to go. */
		if (k->close_late && res >= 0)
			close(res);
		stat_add(&kp.st.late, 1);
	}
	rctx__kept_put(k);
}

/* After-func of the caller's context: the caller may give up now. */
void rctx__kept_ctx_done(void *arg)
{
	struct rctx_kept *k = arg;

	kept_wake(k);
	rctx__kept_put(k);
}

/* Any thread, through rctx__rt_keep(): queue k (holding a reference for
 * the keeper). */
void rctx__keeper_push(struct rctx_kept *k)
{
	LFSTACK_PUSH(&kp.submit_q, k, k->next);
}

/* The caller gives k up (its context is done). False if it completed first. */
bool rctx__kept_abandon(struct rctx_kept *k)
{
	int waiting = KEPT_WAITING;

	if (!atomic_compare_exchange_strong_explicit(&k->state, &waiting,
			KEPT_ABANDONED, memory_order_acq_rel, memory_order_acquire))
		return false;
	stat_add(&kp.st.abandoned, 1);
	return true;
}

static void submit_queued(void)
{
	struct rctx_kept *k, *next;

	/* LIFO stack: submit in queue order. */
	k = LIST_REVERSE(LFSTACK_TAKE(&kp.submit_q), next);
	for (; k; k = next) {
		int ret;

		next = k->next;
		ret = rctx_submit(kp.ring, k->ctx, &k->sqe, kept_cb, k);
		rctx_unref(k->ctx); /* the request holds its governor now */
		k->ctx = NULL;
		if (ret < 0)
			kept_cb(k, ret, 0);
		else
			stat_add(&kp.st.submitted, 1);
	}
}

/* ---- adopted rings ------------------------------------------------------- */

/* Any thread, through rctx__rt_adopt(): queue ring for adoption. */
void rctx__keeper_push_ring(struct rctx_ring *ring)
{
	LFSTACK_PUSH(&kp.adopt_q, ring, *rctx__ring_link(ring));
	stat_add(&kp.st.adopted, 1);
}

/* Ask for a CQE on the runtime ring when ring has completions to reap. */
static void watch_ring(struct rctx_ring *ring)
{
	struct io_uring_sqe *sqe = rctx__sqe_get_retry(kp.rt_ring);

	io_uring_prep_poll_add(sqe, rctx_ring_fd(ring), POLLIN);
	/* keeper -> ring: rings are what the keeper runs (inherent). */
	io_uring_sqe_set_data64(sqe, ud_make(UD_TARGET, (uintptr_t)ring));
}

static void take_adopted(void)
{
	struct rctx_ring *r, *next;

	for (r = LFSTACK_TAKE(&kp.adopt_q); r; r = next) {
		next = *rctx__ring_link(r);
		*rctx__ring_link(r) = kp.adopted;
		kp.adopted = r;
		rctx__ring_cancel_all(r);
		watch_ring(r);
	}
}

static void unlink_adopted(struct rctx_ring *ring)
{
	struct rctx_ring **pp = &kp.adopted;

	while (*pp != ring)
		pp = rctx__ring_link(*pp);
	*pp = *rctx__ring_link(ring);
}

/* A poll on ring (the keeper ring or an adopted one) fired: run it. */
void rctx__keeper_ring_ready(struct rctx_ring *ring)
{
	rctx_ring_run(ring, 0);
	if (ring != kp.ring && !rctx_ring_pending(ring)) {
		unlink_adopted(ring);
		rctx__ring_free(ring);
		stat_add(&kp.st.reclaimed, 1);
		return;
	}
	watch_ring(ring);
}

/* ---- the runtime thread's side ------------------------------------------- */

int rctx__keeper_init(struct io_uring *rt_ring)
{
	int ret = rctx_ring_create(&kp.ring, KEEPER_ENTRIES);

	if (ret < 0)
		return ret;
	kp.rt_ring = rt_ring;
	watch_ring(kp.ring);
	atomic_store_explicit(&kp.stats_ring, kp.ring, memory_order_release);
	return 0;
}

/* One turn of the runtime loop: submit what callers queued, adopt rings. */
void rctx__keeper_turn(void)
{
	if (LFSTACK_PEEK(&kp.submit_q)) {
		submit_queued();
		rctx_ring_run(kp.ring, 0);
	}
	if (LFSTACK_PEEK(&kp.adopt_q))
		take_adopted();
}

bool rctx__keeper_queued(void)
{
	/* seq_cst: the runtime's check before it sleeps (queues_pending). */
	return atomic_load_explicit(&kp.submit_q, memory_order_seq_cst) ||
	       atomic_load_explicit(&kp.adopt_q, memory_order_seq_cst);
}

/*
 * Cancel every request of ring and run it until at most `abandoned` of them
 * are left or deadline passes. True if the ring is empty.
 */
static bool drain_ring(struct rctx_ring *ring, unsigned abandoned, int64_t deadline)
{
	rctx__ring_cancel_all(ring);
	rctx_ring_run(ring, 0);
	while (rctx_ring_pending(ring) > abandoned && rctx_now() < deadline)
		rctx_ring_run(ring, deadline);
	return rctx_ring_pending(ring) == 0;
}

/*
 * At process exit, on the runtime thread: cancel everything, and wait until
 * deadline for the requests that callers still wait for (not for those
 * already abandoned, nor those of exited threads). Returns true if the
 * kernel let go of every request (the thread may then exit), false if some
 * are still held: the thread must not exit then, or its exit would wait for
 * the disk.
 */
bool rctx__keeper_shutdown(int64_t deadline)
{
	unsigned held = (unsigned)kept_held();
	struct rctx_ring *r;
	bool empty;

	take_adopted();
	submit_queued();
	empty = drain_ring(kp.ring, held, deadline);
	for (r = kp.adopted; r; r = *rctx__ring_link(r))
		empty &= drain_ring(r, rctx_ring_pending(r), 0);
	if (!empty)
		return false;
	while (kp.adopted) {
		r = kp.adopted;
		kp.adopted = *rctx__ring_link(r);
		rctx__ring_free(r);
		stat_add(&kp.st.reclaimed, 1);
	}
	r = kp.ring;
	kp.ring = NULL;
	atomic_store_explicit(&kp.stats_ring, NULL, memory_order_release);
	rctx__ring_free(r);
	return true;
}

void rctx__keeper_stats(struct rctx_runtime_stats *st)
{
	struct rctx_ring *ring = atomic_load_explicit(&kp.stats_ring, memory_order_acquire);

	st->kept_submitted = stat_get(&kp.st.submitted);
	st->kept_abandoned = stat_get(&kp.st.abandoned);
	st->kept_late = stat_get(&kp.st.late);
	st->kept_held = kept_held();
	st->rings_adopted = stat_get(&kp.st.adopted);
	st->rings_reclaimed = stat_get(&kp.st.reclaimed);
	if (ring) /* freed only at process exit */
		rctx_ring_stats(ring, &st->kept);
}
