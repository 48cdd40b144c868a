/* SPDX-License-Identifier: MIT */
/*
 * rctx_info(): a context's life and the requests it tracked, copied under
 * its governor's lock (so the counters agree with each other and with the
 * error).
 */
#include <string.h>

#include "internal.h"

RCTX_API int (rctx_info)(const rctx_t *ctx, struct rctx_info *out, size_t size)
{
	struct rctx_info all = { 0 }, *info = &all;
	struct rctx_cancel *g;

	if (!ctx_valid(ctx))
		return -EINVAL;
	g = rctx_governor(ctx);
	if (!g) /* background, TODO, without-cancel: never done */
		return rctx__stats_out(out, size, &all, sizeof(all));
	/* Under the lock err is 0 or final: a cancel holds it while ending. */
	rlock(&g->lock);
	info->err = atomic_load_explicit(&g->err, memory_order_relaxed);
	info->cause = info->err ? g->cause : 0;
	info->created_ns = g->created_ns;
	info->done_ns = info->err ? g->done_ns : 0;
	info->submitted = g->submitted;
	info->completed = g->completed;
	info->aborted = g->aborted;
	info->abandoned = g->abandoned;
	info->late = g->late;
	runlock(&g->lock);
	return rctx__stats_out(out, size, &all, sizeof(all));
}

void rctx__info_count(struct rctx_cancel *g, unsigned abandoned, unsigned late)
{
	if (!g)
		return;
	rlock(&g->lock);
	g->abandoned += abandoned;
	g->late += late;
	runlock(&g->lock);
}
