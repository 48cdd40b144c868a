/* SPDX-License-Identifier: MIT */
/*
 * Per-thread caches of the tree's objects (contexts and after-func records),
 * so that creating and ending contexts calls no malloc or free in the steady
 * state (Go gets the same from its allocator's per-P caches).
 *
 * Sizes are rounded up to a class of POOL_QUANTUM bytes; larger objects are
 * plain malloc. An object remembers its class and its home, the thread that
 * allocated it. Freed on its home thread, it joins that thread's cache (at
 * most POOL_DEPTH per class; beyond, free()). Freed on another thread (a
 * deadline context's last reference is often dropped by the runtime
 * thread), it is pushed back to its home (at most POOL_HOME_MAX per class
 * wait there; beyond, it stays with the thread that freed it, or goes to
 * free()), which takes all of them back at once when its cache runs empty.
 * When a thread exits, its cache and what was sent home to it go back to
 * malloc.
 */
#ifndef RINGCTX_POOL_H
#define RINGCTX_POOL_H

#include <stddef.h>
#include <stdint.h>

#define POOL_QUANTUM 64
#define POOL_CLASSES 4
#define POOL_DEPTH 256
#define POOL_HOME_MAX 4096 /* objects per class waiting at their home */
#define POOL_HOMES 256 /* threads with a home slot at once; others: no home */

/* The class of an object of size bytes: 1..POOL_CLASSES, or 0 (malloc). */
static inline uint8_t pool_class(size_t size)
{
	return size <= POOL_QUANTUM * POOL_CLASSES ?
	       (uint8_t)((size + POOL_QUANTUM - 1) / POOL_QUANTUM) : 0;
}

/* size bytes (not zeroed) of class cls = pool_class(size), or NULL; *home
 * is set to the calling thread's home slot (0: none). */
void *rctx__pool_get(size_t size, uint8_t cls, uint8_t *home);
/* Give back p, which rctx__pool_get() returned with cls and home. */
void rctx__pool_put(void *p, uint8_t cls, uint8_t home);

/* What the calling thread's cache does (for tests): */
#define POOL_CACHES 1     /* it keeps objects (not under valgrind, fault) */
#define POOL_SENDS_HOME 2 /* it has a home slot; objects go home (not ASan) */
unsigned rctx__pool_mode(void);

#endif /* RINGCTX_POOL_H */
