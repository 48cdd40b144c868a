/* SPDX-License-Identifier: MIT */
/*
 * Lanes: one bulkhead per device for the I/O the keeper submits
 * (lib/keeper.c), so that a device that hangs holds at most a bounded number
 * of kernel workers and never delays another device's requests.
 *
 * The kernel facts (docs/stuck-io.md): io-wq belongs to the submitting
 * thread, and all the keeper's requests are submitted by the runtime
 * thread, so they share one io-wq, whose two classes (bound: opens, statx,
 * fsync, punted reads; unbound: IOSQE_ASYNC reads and writes) each have a
 * worker limit. A request waits in io-wq's queue when its class is at its
 * limit, whatever the device of the requests that hold the workers. So:
 *  - at most `limit` requests of a device are in the kernel at once; the
 *    others wait here, in their lane's FIFO, where their caller can give
 *    them up at once (their state goes KEPT_DROPPED; the keeper frees them
 *    when they reach the head, or a sweep does);
 *  - the io-wq limits of the runtime thread are kept above the sum of the
 *    lanes' bounds (limit x (lanes + 1)), so no class limit is reached
 *    before every lane is full: a device's request finds a worker.
 *
 * Runtime thread only, but for the limit and the counters.
 */
#include <stdlib.h>

#include "internal.h"

#define LANE_BUCKETS 64
#define IOWQ_MAX 4096		/* the kernel's own sanity bound */

struct lane {
	struct lane *next;		/* hash chain */
	uint64_t dev;
	unsigned inflight;		/* its requests held by the kernel */
	unsigned waiting;		/* in the FIFO */
	unsigned sweep_at;		/* sweep dropped ones beyond this */
	struct rctx_kept *head, *tail;	/* waiting, FIFO through k->next */
};

static struct {
	struct lane *b[LANE_BUCKETS];
	struct io_uring *ring;		/* whose io-wq the lanes share */
	void (*drop)(struct rctx_kept *k);
	unsigned iowq;			/* io-wq limit set, per class */
	_Atomic unsigned limit;
	_Atomic uint64_t lanes, waiting, waited;
} ln = { .limit = RCTX_DEVICE_LIMIT_DEFAULT };

RCTX_API int rctx_device_limit(unsigned n)
{
	if (n > RCTX_DEVICE_LIMIT_MAX)
		return -EINVAL;
	if (!n)
		return (int)atomic_load_explicit(&ln.limit, memory_order_relaxed);
	return (int)atomic_exchange_explicit(&ln.limit, n, memory_order_relaxed);
}

void rctx__lane_init(struct io_uring *ring, void (*drop)(struct rctx_kept *k))
{
	ln.ring = ring;
	ln.drop = drop;
}

static unsigned limit(void)
{
	return atomic_load_explicit(&ln.limit, memory_order_relaxed);
}

/* Keep both io-wq classes of the runtime thread above the lanes' sum. */
static void iowq_fit(void)
{
	uint64_t want = (uint64_t)limit() * (stat_get(&ln.lanes) + 1);
	unsigned vals[2];

	if (want > IOWQ_MAX)
		want = IOWQ_MAX;
	if (want <= ln.iowq)
		return;
	vals[0] = vals[1] = (unsigned)want;
	if (io_uring_register_iowq_max_workers(ln.ring, vals) == 0)
		ln.iowq = (unsigned)want;
}

static struct lane **bucket(uint64_t dev)
{
	return &ln.b[(dev * 0x9e3779b97f4a7c15ULL) >> 58];
}

static struct lane *lane_of(uint64_t dev, bool create)
{
	struct lane **pp = bucket(dev), *l;

	for (l = *pp; l; l = l->next)
		if (l->dev == dev)
			return l;
	if (!create)
		return NULL;
	l = rctx__calloc(1, sizeof(*l));
	if (!l)
		return NULL;
	l->dev = dev;
	l->sweep_at = 64;
	l->next = *pp;
	*pp = l;
	stat_add(&ln.lanes, 1);
	iowq_fit();
	return l;
}

/* Free the requests given up while they waited (their callers are gone). */
static void sweep(struct lane *l)
{
	struct rctx_kept **pp = &l->head, *k;

	l->tail = NULL;
	while ((k = *pp)) {
		if (atomic_load_explicit(&k->state, memory_order_acquire) == KEPT_DROPPED) {
			*pp = k->next;
			l->waiting--;
			stat_sub(&ln.waiting, 1);
			ln.drop(k);
		} else {
			l->tail = k;
			pp = &k->next;
		}
	}
	l->sweep_at = l->waiting * 2 > 64 ? l->waiting * 2 : 64;
}

/*
 * May k go to the kernel now? If not, it waits in its device's lane (a
 * lane that cannot be allocated lets it go: isolation is lost for that
 * device, not the request).
 */
bool rctx__lane_enter(struct rctx_kept *k)
{
	struct lane *l = lane_of(k->dev, true);

	if (!l)
		return true; /* k->in_lane stays false: it holds no place */
	k->in_lane = true;
	if (l->inflight < limit() && !l->head) {
		l->inflight++;
		return true;
	}
	k->next = NULL;
	if (l->tail)
		l->tail->next = k;
	else
		l->head = k;
	l->tail = k;
	l->waiting++;
	stat_add(&ln.waiting, 1);
	stat_add(&ln.waited, 1);
	if (l->waiting >= l->sweep_at)
		sweep(l);
	return false;
}

/*
 * k, which entered, is out of the kernel (or was dropped before it got
 * there): the next waiting request of its lane takes its place, returned
 * to be handed to the kernel; NULL if none may go.
 */
struct rctx_kept *rctx__lane_leave(struct rctx_kept *k)
{
	struct lane *l = k->in_lane ? lane_of(k->dev, false) : NULL;
	struct rctx_kept *next;

	if (!l)
		return NULL; /* it went without a lane */
	if (!l->head || l->inflight > limit()) {
		l->inflight--;
		return NULL;
	}
	next = l->head;
	l->head = next->next;
	if (!l->head)
		l->tail = NULL;
	l->waiting--;
	stat_sub(&ln.waiting, 1);
	return next;
}

/* Process exit: end what waits (end(k) for each), free the lanes. */
void rctx__lane_shutdown(void (*end)(struct rctx_kept *k))
{
	for (unsigned i = 0; i < LANE_BUCKETS; i++) {
		struct lane *l, *next;

		for (l = ln.b[i]; l; l = next) {
			struct rctx_kept *k, *knext;

			next = l->next;
			for (k = l->head; k; k = knext) {
				knext = k->next;
				end(k);
			}
			free(l);
		}
		ln.b[i] = NULL;
	}
	atomic_store_explicit(&ln.waiting, 0, memory_order_relaxed);
}

void rctx__lane_stats(struct rctx_runtime_stats *st)
{
	st->devices = stat_get(&ln.lanes);
	st->lane_waiting = stat_get(&ln.waiting);
	st->lane_waited = stat_get(&ln.waited);
}
