/* SPDX-License-Identifier: MIT */
/*
 * How other threads hand work to the thread that owns a ring (a ring's
 * owner, the runtime thread), without locks:
 *  - lock-free intrusive stacks: any thread pushes, the owner takes all at
 *    once (and reverses them when order matters);
 *  - a wake-up: an eventfd whose read the owner keeps pending on its ring,
 *    written at most once per owner's turn (wake_signal()).
 * A leaf: it depends on liburing and lib/compiler.h only.
 */
#ifndef RINGCTX_WAKE_H
#define RINGCTX_WAKE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <liburing.h>

#include "compiler.h"

/*
 * Push node on the stack at *headp (an _Atomic pointer); next is the lvalue
 * of node's link (e.g. n->next). Sequentially consistent: the ring's
 * wake-up protocol pairs the push with a fence of the owner (wake.c).
 */
#define LFSTACK_PUSH(headp, node, next) do {				\
	__typeof__(node) head_ = atomic_load_explicit((headp), memory_order_relaxed); \
	do {								\
		(next) = head_;						\
	} while (!atomic_compare_exchange_weak_explicit((headp), &head_, (node), \
			memory_order_seq_cst, memory_order_relaxed));	\
} while (0)

/* The whole stack, newest first; it is left empty. */
#define LFSTACK_TAKE(headp) atomic_exchange_explicit((headp), NULL, memory_order_acquire)

/* Whether the stack looks non-empty (a hint: pushes may be racing). */
#define LFSTACK_PEEK(headp) (atomic_load_explicit((headp), memory_order_relaxed) != NULL)

/* Reverse a list taken off a stack, so that it runs oldest first; next is
 * the name of the link member. Evaluates to the new head. */
#define LIST_REVERSE(list, next) ({					\
	__typeof__(list) l_ = (list), rev_ = NULL, n_;			\
	for (; l_; l_ = n_) {						\
		n_ = l_->next;						\
		l_->next = rev_;					\
		rev_ = l_;						\
	}								\
	rev_; })

struct wake {
	int efd;
	_Atomic int pending;  /* written since the read was last armed */
	uint64_t buf;         /* the read's target */
};

/* 0, or -errno. Blocking: io_uring returns -EAGAIN for reads of
 * O_NONBLOCK files instead of waiting for them. */
int rctx__wake_init(struct wake *w);
void rctx__wake_close(struct wake *w);
/* Owner: the read that completes on the next wake-up, tagged ud. */
void rctx__wake_arm(struct wake *w, struct io_uring_sqe *sqe, uint64_t ud);
/* Any thread, after pushing work: make the owner's pending read complete. */
void rctx__wake_signal(struct wake *w);
/* Whether a wake-up is on its way (the owner need not be woken again). */
static inline bool wake_pending(struct wake *w)
{
	return atomic_load_explicit(&w->pending, memory_order_relaxed);
}

#endif /* RINGCTX_WAKE_H */
