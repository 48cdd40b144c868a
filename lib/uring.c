/* SPDX-License-Identifier: MIT */
/*
 * The io_uring steps every owner shares (lib/uring.h).
 */
#include <errno.h>
#include <poll.h>

#include "clock.h"
#include "fault.h"
#include "uring.h"

struct io_uring_sqe *rctx__sqe_get(struct io_uring *ring, unsigned need, int *err)
{
	if (io_uring_sq_space_left(ring) < need) {
		int ret = rctx__submit(ring);

		if (ret < 0 && ret != -EBUSY) {
			*err = ret;
			return NULL;
		}
		if (io_uring_sq_space_left(ring) < need) {
			*err = ret < 0 ? ret : -EBUSY;
			return NULL;
		}
	}
	return io_uring_get_sqe(ring);
}

struct io_uring_sqe *rctx__sqe_get_retry(struct io_uring *ring)
{
	struct io_uring_sqe *sqe;
	int err;

	while (!(sqe = rctx__sqe_get(ring, 1, &err)))
		;
	return sqe;
}

/*
 * The library sleeps in ppoll(2) on the ring fd, and uses io_uring_enter(2)
 * only to submit: a thread about to sleep pays one more system call, and
 * every tool that serialises threads (valgrind) knows that ppoll blocks,
 * while a thread blocked in io_uring_enter would stall the whole program
 * under it.
 */
int rctx__wait_cqe_mask(struct io_uring *ring, int64_t abs_deadline,
			const sigset_t *mask)
{
	struct pollfd p = { .fd = ring->ring_fd, .events = POLLIN };
	struct timespec ts, *tp = NULL;
	int ret;

	if (io_uring_cq_ready(ring))
		return 0;
	if (abs_deadline != INT64_MAX) {
		int64_t now = rctx_now();

		if (abs_deadline <= now)
			return -ETIME; /* also keeps abs_deadline - now in range */
		ts = ns_to_timespec(abs_deadline - now);
		tp = &ts;
	}
	ret = ppoll(&p, 1, tp, mask);
	if (ret < 0)
		return -errno;
	return ret ? 0 : -ETIME;
}

int rctx__wait_cqe(struct io_uring *ring, int64_t abs_deadline)
{
	return rctx__wait_cqe_mask(ring, abs_deadline, NULL);
}
