/* SPDX-License-Identifier: MIT */
/*
 * Statistics counters: _Atomic uint64_t read by any thread, relaxed (a
 * counter orders nothing). One writer (a ring's owner, the runtime thread)
 * adds with a plain load and store, which costs no locked instruction;
 * counters that several threads add to use an atomic add. A leaf.
 */
#ifndef RINGCTX_STAT_H
#define RINGCTX_STAT_H

#include <stdatomic.h>
#include <stdint.h>

/* Counters with a single writer. */
static inline void stat_add_owner(_Atomic uint64_t *c, uint64_t n)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
			      memory_order_relaxed);
}

static inline void stat_sub_owner(_Atomic uint64_t *c, uint64_t n)
{
	stat_add_owner(c, (uint64_t)0 - n);
}

/* Counters any thread adds to. */
static inline void stat_add(_Atomic uint64_t *c, uint64_t n)
{
	atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

static inline void stat_sub(_Atomic uint64_t *c, uint64_t n)
{
	atomic_fetch_sub_explicit(c, n, memory_order_relaxed);
}

static inline uint64_t stat_get(const _Atomic uint64_t *c)
{
	return atomic_load_explicit((_Atomic uint64_t *)c, memory_order_relaxed);
}

#endif /* RINGCTX_STAT_H */
