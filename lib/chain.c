/* SPDX-License-Identifier: MIT */
/*
 * Kept requests of several writes of a file (rctx_async_write_segs()), and
 * maybe its sync after them: one chain of SQEs (IOSQE_IO_LINK) that one
 * kernel worker runs one after the other, so that they cost one hand-off
 * to the runtime thread, one place in the file's lane and one completion
 * posted to the caller, where as many kept requests would cost one each.
 *
 * The chain is one kept request to the keeper (lane, fence, abandon,
 * late): its SQEs are requests of their own on the keeper ring (each
 * tracked, so that a cancel reaches the one the kernel runs), and the kept
 * request completes when the last of their completions has come. A cancel
 * does not reach the SQEs not started yet (the kernel finds them nowhere):
 * if the one running ends whole all the same, the rest run, and the
 * request holds its place in the lane, and its file's fence, until they
 * end. The kernel could also split a chain: a request it fails to allocate
 * in the middle of a submission ends the chain there, and the rest go as
 * another chain at the next submission (memory pressure in the kernel);
 * nothing here sees that. The kernel ends the rest of a chain with -ECANCELED once one
 * write fails or comes up short; the outcome is then that of pwritev(2):
 * the bytes written before the first write that was not whole, or its
 * error if there are none; the sync runs only after whole writes.
 */
#include <stdlib.h>
#include "internal.h"


struct rctx_chain *rctx__chain_new(unsigned n)
{
	struct rctx_chain *c = rctx__calloc(1, sizeof(*c) + n * sizeof(c->el[0]));

	if (!c)
		return NULL;
	c->sqes = rctx__calloc(n, sizeof(*c->sqes));
	if (!c->sqes) {
		free(c);
		return NULL;
	}
	c->n = n;
	return c;
}

void rctx__chain_free(struct rctx_chain *c)
{
	if (!c)
		return;
	free(c->sqes);
	free(c);
}

/* Like pwritev(2): the bytes of the whole writes in front, and those of
 * the first one that fell short; or the error of the first, if it failed.
 * A sync at the end (run only after whole writes): its error, if it failed. */
static int chain_result(const struct rctx_chain *c)
{
	int64_t total = 0;

	for (unsigned i = 0; i < c->n; i++) {
		int res = c->el[i].res;

		if (c->sqes[i].opcode == IORING_OP_FSYNC)
			return res < 0 ? res : (int)total;
		if (res < 0)
			return total ? (int)total : res;
		total += res;
		if ((unsigned)res < c->sqes[i].len)
			break;
	}
	return (int)total;
}

/* One SQE's completion, on the keeper's ring: the last one completes k. */
static void chain_cb(void *arg, int res, uint32_t flags)
{
	struct rctx_chain_el *el = arg;
	struct rctx_kept *k = el->k;
	struct rctx_chain *c = k->chain;

	(void)flags;
	el->res = res;
	if (--c->left == 0)
		c->done(k, chain_result(c), 0);
}

int rctx__chain_submit(struct rctx_ring *ring, struct rctx_kept *k, rctx_cb_t done)
{
	struct rctx_chain *c = k->chain;
	void *args[RCTX__CHAIN_MAX];
	int ret;

	for (unsigned i = 0; i < c->n; i++) {
		c->el[i].k = k;
		c->sqes[i].flags |= IOSQE_ASYNC; /* never block the runtime thread */
		args[i] = &c->el[i];
	}
	c->done = done;
	c->left = c->n;
	ret = rctx__submit_chain(ring, k->ctx, c->sqes, c->n, chain_cb, args);
	if (ret < 0)
		c->left = 0;
	return ret;
}
