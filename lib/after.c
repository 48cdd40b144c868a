/* SPDX-License-Identifier: MIT */
/*
 * After-funcs (Go's AfterFunc). A record sits in the child set of the
 * context's governor like a child context. Whoever detaches it from that set
 * owns its "registration" reference: a cancel moves it to the runtime's run
 * queue (state ARMED -> QUEUED), a stop drops it (ARMED -> STOPPED). The state
 * CAS decides which of a racing cancel and stop wins.
 */
#include <stdlib.h>

#include "internal.h"

RCTX_API rctx_after_t *rctx_after_func(rctx_t *ctx, void (*fn)(void *), void *arg)
{
	ERRNO_GUARD;
	struct rctx_after *a;
	uint8_t home;
	int e, cause;

	if (!ctx_valid(ctx) || !fn)
		return ERRNO_FAIL(EINVAL);
	if (rctx_governor(ctx) && (e = rctx__rt_start()) < 0)
		return ERRNO_FAIL(-e); /* fn could never run */
	a = rctx__pool_get(sizeof(*a), pool_class(sizeof(*a)), &home);
	if (!a)
		return ERRNO_FAIL(ENOMEM);
	/* Two references: the caller's handle and the registration. */
	canceler_init(&a->c, RCTX_AFTER, ctx, 2);
	a->c.hdr.pool = pool_class(sizeof(*a));
	a->c.hdr.home = home;
	a->fn = fn;
	a->arg = arg;
	atomic_init(&a->state, AFTER_ARMED);
	a->run_next = NULL;

	if (!rctx_governor(ctx)) {
		/* Never done: fn can never run; only a stop remains possible. */
		rctx__obj_put(&a->c.hdr);
		return a;
	}
	e = rctx__child_add(&a->c, &cause);
	if (e) {
		atomic_store_explicit(&a->state, AFTER_QUEUED, memory_order_relaxed);
		if (!rctx__rt_queue_after(a))
			rctx__obj_put(&a->c.hdr);
	}
	return a;
}

RCTX_API bool rctx_after_stop(rctx_after_t *a)
{
	ERRNO_GUARD;
	int armed = AFTER_ARMED;

	if (!a)
		return false;
	if (!atomic_compare_exchange_strong_explicit(&a->state, &armed, AFTER_STOPPED,
			memory_order_acq_rel, memory_order_acquire))
		return false;
	if (rctx__child_del(&a->c))
		rctx__obj_put(&a->c.hdr);
	return true;
}

RCTX_API void rctx_after_release(rctx_after_t *a)
{
	ERRNO_GUARD;
	if (a)
		rctx__obj_put(&a->c.hdr);
}
