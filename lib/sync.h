/* SPDX-License-Identifier: MIT */
/*
 * Thread synchronisation on futexes: a 4-byte mutex (Drepper, "Futexes are
 * tricky", mutex 3) and a wait/wake pair on any 32-bit word. A leaf: it
 * depends on nothing else of lib/.
 */
#ifndef RINGCTX_SYNC_H
#define RINGCTX_SYNC_H

#include <stdatomic.h>
#include <stdint.h>

#include "compiler.h"

typedef struct {
	_Atomic uint32_t v; /* 0 free, 1 locked, 2 locked with waiters */
} rlock_t;

void rctx__rlock_slow(rlock_t *l);
void rctx__rlock_wake(rlock_t *l);

static inline void rlock(rlock_t *l)
{
	uint32_t z = 0;
	if (likely(atomic_compare_exchange_strong_explicit(
		    &l->v, &z, 1, memory_order_acquire, memory_order_relaxed)))
		return;
	rctx__rlock_slow(l);
}

static inline void runlock(rlock_t *l)
{
	if (unlikely(atomic_exchange_explicit(&l->v, 0, memory_order_release) == 2))
		rctx__rlock_wake(l);
}

/* For the *_locked functions: someone holds l (it cannot say who). */
#define RLOCK_ASSERT_HELD(l) \
	RCTX_ASSERT(atomic_load_explicit(&(l)->v, memory_order_relaxed) != 0)

/* Wait while *addr == val, until abs_deadline (CLOCK_MONOTONIC ns, or
 * INT64_MAX for none). Returns 0 when woken or the value changed,
 * -ETIMEDOUT, or -EINTR. */
int rctx__futex_wait(_Atomic int *addr, int val, int64_t abs_deadline);
void rctx__futex_wake_all(_Atomic int *addr);

#endif /* RINGCTX_SYNC_H */
