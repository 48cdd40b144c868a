/* SPDX-License-Identifier: MIT */
/*
 * What the library's two kinds of io_uring owner (rings and the runtime
 * thread) do alike: tag user_data, get SQEs, sleep, dispatch completions.
 * A leaf: this header needs liburing and lib/compiler.h only; lib/uring.c
 * adds lib/clock.h (the deadline of rctx__wait_cqe()) and lib/fault.h (the
 * wrapped submit of rctx__sqe_get()).
 *
 * user_data: a tag in the top two bits, a payload in the other 62. The tags
 * mean the same for every owner:
 *   UD_TARGET   the completion of the work itself: a request slot
 *               (generation and index, lib/ring.c), or a ring the runtime
 *               watches (its address: user pointers leave the top bits 0)
 *   UD_TIMEOUT  a timeout: a request's link timeout, the runtime's timer
 *               (payload: its generation)
 *   UD_CANCEL   a cancel or timeout removal; only its result is of interest
 *   UD_WAKE     the read of the owner's wake-up eventfd (lib/wake.h)
 *
 * A full SQ, one policy: the owner submits what is queued to make room, and
 * if that fails too gets NULL and the error (rctx__sqe_get()). A ring hands
 * the error to its caller; the runtime thread, which has no caller, retries
 * (rctx__sqe_get_retry()): it prepares a few SQEs per loop and submits them
 * each loop, so its SQ fills only while submits keep failing.
 */
#ifndef RINGCTX_URING_H
#define RINGCTX_URING_H

#include <signal.h>
#include <stdint.h>
#include <liburing.h>

#include "compiler.h"

enum ud_tag { UD_TARGET = 0, UD_TIMEOUT = 1, UD_CANCEL = 2, UD_WAKE = 3 };

#define UD_PAYLOAD_MASK ((UINT64_C(1) << 62) - 1)

static inline uint64_t ud_make(enum ud_tag tag, uint64_t payload)
{
	return ((uint64_t)tag << 62) | (payload & UD_PAYLOAD_MASK);
}

static inline enum ud_tag ud_tag(uint64_t ud)
{
	return (enum ud_tag)(ud >> 62);
}

static inline uint64_t ud_payload(uint64_t ud)
{
	return ud & UD_PAYLOAD_MASK;
}

/* need free SQEs in a row (a request and its link timeout), the first
 * returned; NULL if the SQ stays too full, *err then holds why. */
struct io_uring_sqe *rctx__sqe_get(struct io_uring *ring, unsigned need, int *err);
/* The same for an owner with no caller to report to: retries until the
 * kernel takes its SQEs. */
struct io_uring_sqe *rctx__sqe_get_retry(struct io_uring *ring);

/* Sleep until ring has a completion or abs_deadline (INT64_MAX: none)
 * passes. Returns 0, or -EINTR / -ETIME. */
int rctx__wait_cqe(struct io_uring *ring, int64_t abs_deadline);
/* The same with the thread's signal mask set to *mask while it sleeps
 * (ppoll(2)'s, atomically; NULL: unchanged). */
int rctx__wait_cqe_mask(struct io_uring *ring, int64_t abs_deadline,
			const sigset_t *mask);

/*
 * The completion dispatcher: copy each batch of CQEs out and release it
 * before handling any, since handlers may submit and reap themselves, then
 * call handle(owner, cqe) for each. Returns the number of CQEs. Always
 * inlined, so that each owner's handler is inlined into its loop (measured
 * with callgrind: 10 instructions per completion less than a call).
 */
#define REAP_BATCH 32
static inline __attribute__((always_inline))
unsigned rctx__reap(struct io_uring *ring, void *owner,
		    void (*handle)(void *owner, const struct io_uring_cqe *cqe))
{
	struct io_uring_cqe *cqes[REAP_BATCH];
	unsigned n, total = 0;

	while ((n = io_uring_peek_batch_cqe(ring, cqes, REAP_BATCH)) > 0) {
		struct io_uring_cqe copy[REAP_BATCH];

		for (unsigned i = 0; i < n; i++)
			copy[i] = *cqes[i];
		io_uring_cq_advance(ring, n);
		for (unsigned i = 0; i < n; i++)
			handle(owner, &copy[i]);
		total += n;
	}
	return total;
}

#endif /* RINGCTX_URING_H */
