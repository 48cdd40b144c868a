/* SPDX-License-Identifier: MIT */
/*
 * A kept request's own reference to its file: a slot of the keeper ring's
 * table of registered files.
 *
 * The kernel resolves a request's fd only when a worker starts it, which
 * may be long after its caller gave it up: the later writes of a chain
 * (rctx_async_write_segs()) wait for the first, and a caller answered at
 * its deadline may close the fd at once, then open another file under its
 * number, which the request would then read, write or truncate. So the
 * runtime thread registers the caller's file in a slot of the keeper ring
 * just before it hands the request to the kernel, and the request names
 * the slot (IOSQE_FIXED_FILE; SPLICE_F_FD_IN_FIXED for a splice's file):
 * it reaches that file whatever becomes of the number. The caller's fd is
 * still open then: the caller gives a request up only after the keeper
 * took it from its queue, or the request is dropped and never sent
 * (lib/keeper.c, to_kernel()). The slot is emptied when the kernel lets go
 * of the request. Without a free slot, or a table (a kernel before 5.19,
 * RLIMIT_NOFILE below the table's size...), the fd goes as it is: counted
 * in the runtime's `kept_unpinned` (the others in `kept_pinned`).
 *
 * Everything here runs on the runtime thread.
 */
#include <sys/resource.h>

#include "internal.h"

#define PIN_SLOTS 1024

static struct {
	struct io_uring *ring;          /* the keeper's, with the table */
	unsigned n;                     /* slots; 0: no table */
	unsigned hint;                  /* where to look for a free one */
	uint64_t used[PIN_SLOTS / 64];
	_Atomic uint64_t pinned, unpinned;
} pins;

void rctx__pin_init(struct io_uring *ring)
{
	struct rlimit rl;
	unsigned n = PIN_SLOTS;

	/* The kernel refuses a table larger than RLIMIT_NOFILE. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < n)
		n = (unsigned)rl.rlim_cur & ~63u;
	pins.ring = ring;
	if (n && io_uring_register_files_sparse(ring, n) == 0)
		pins.n = n;
}

static int slot_take(void)
{
	for (unsigned i = 0; i < pins.n / 64; i++) {
		unsigned w = (pins.hint + i) % (pins.n / 64);
		uint64_t free_bits = ~pins.used[w];

		if (free_bits) {
			unsigned b = (unsigned)__builtin_ctzll(free_bits);

			pins.used[w] |= UINT64_C(1) << b;
			pins.hint = w;
			return (int)(w * 64 + b);
		}
	}
	return -1;
}

static void slot_give(int slot)
{
	pins.used[slot / 64] &= ~(UINT64_C(1) << (slot % 64));
}

/* Name slot instead of fd in sqe. */
static void sqe_pin(struct io_uring_sqe *sqe, int fd, int slot)
{
	if (sqe->opcode == IORING_OP_SPLICE) {
		if (sqe->splice_fd_in == fd) {
			sqe->splice_fd_in = slot;
			sqe->splice_flags |= SPLICE_F_FD_IN_FIXED;
		}
		return;
	}
	if (sqe->fd == fd) {
		sqe->fd = slot;
		sqe->flags |= IOSQE_FIXED_FILE;
	}
}

void rctx__pin(struct rctx_kept *k)
{
	int slot;

	if (k->user_fd < 0)
		return;
	slot = pins.n ? slot_take() : -1;
	if (slot >= 0 && io_uring_register_files_update(pins.ring, (unsigned)slot,
							&k->user_fd, 1) != 1) {
		slot_give(slot);
		slot = -1;
	}
	if (slot < 0) {
		stat_add(&pins.unpinned, 1);
		return;
	}
	stat_add(&pins.pinned, 1);
	k->slot = slot;
	if (k->chain)
		for (unsigned i = 0; i < k->chain->n; i++)
			sqe_pin(&k->chain->sqes[i], k->user_fd, slot);
	else
		sqe_pin(&k->sqe, k->user_fd, slot);
}

void rctx__unpin(struct rctx_kept *k)
{
	int none = -1;

	if (k->slot < 0)
		return;
	io_uring_register_files_update(pins.ring, (unsigned)k->slot, &none, 1);
	slot_give(k->slot);
	k->slot = -1;
}

void rctx__pin_stats(struct rctx_runtime_stats *st)
{
	st->kept_pinned = stat_get(&pins.pinned);
	st->kept_unpinned = stat_get(&pins.unpinned);
}
