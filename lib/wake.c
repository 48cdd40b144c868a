/* SPDX-License-Identifier: MIT */
/*
 * The eventfd wake-up of lib/wake.h.
 *
 * The protocol: a pusher pushes (seq_cst), then exchanges pending to 1 and
 * writes the eventfd only if it was 0. The owner, when its read completes,
 * re-arms the read, stores pending = 0 and issues a full fence before it
 * takes its stacks: either it sees the push, or the pusher sees pending == 0
 * and writes, completing the new read.
 */
#include <errno.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "fault.h"
#include "wake.h"

int rctx__wake_init(struct wake *w)
{
	w->efd = rctx__eventfd(0, EFD_CLOEXEC);
	if (w->efd < 0)
		return -errno;
	atomic_init(&w->pending, 0);
	w->buf = 0;
	return 0;
}

void rctx__wake_close(struct wake *w)
{
	if (w->efd >= 0)
		close(w->efd);
	w->efd = -1;
}

void rctx__wake_arm(struct wake *w, struct io_uring_sqe *sqe, uint64_t ud)
{
	io_uring_prep_read(sqe, w->efd, &w->buf, sizeof(w->buf), 0);
	io_uring_sqe_set_data64(sqe, ud);
	atomic_store_explicit(&w->pending, 0, memory_order_seq_cst);
	atomic_thread_fence(memory_order_seq_cst);
}

void rctx__wake_signal(struct wake *w)
{
	if (!atomic_exchange_explicit(&w->pending, 1, memory_order_seq_cst))
		eventfd_write(w->efd, 1);
}
