/* SPDX-License-Identifier: MIT */
/*
 * Per-thread object caches (lib/pool.h).
 *
 * A cache is a free list per class in thread-local storage, linked through
 * the free objects themselves. Each caching thread owns a home slot in a
 * static table; objects freed by other threads are pushed on the slot's
 * lock-free stacks (one per class) and taken back whole, with one exchange,
 * by the owner when its list is empty. A pthread key's destructor empties
 * the cache and the slot when the thread exits; an object freed after that
 * (by a later destructor) goes straight back to malloc.
 *
 * Under AddressSanitizer cached objects are poisoned but for their link, so
 * a use after free of a context is still reported; objects then stay with the thread that frees
 * them (a pushed object could not be poisoned before it is published).
 * Under valgrind, in the fault-injection build (every allocation must be
 * able to fail) and in the fuzzing build (RCTX_NO_POOL: the fuzzer checks
 * that each input's objects are really freed), nothing is cached: memcheck
 * then sees every real malloc and free.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include "compiler.h"
#include "fault.h"
#include "pool.h"

#if defined(RCTX_FAULT_INJECTION) || defined(RCTX_NO_POOL)
#define POOL_OFF 1
#endif

#if defined(__SANITIZE_ADDRESS__)
#define POOL_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define POOL_ASAN 1
#endif
#endif

#ifdef POOL_ASAN
#include <sanitizer/asan_interface.h>
#define poison(p, n) do {						\
	ASAN_POISON_MEMORY_REGION((p), sizeof(uint64_t));			\
	ASAN_POISON_MEMORY_REGION((char *)(p) + sizeof(struct free_obj),	\
				  (n) - sizeof(struct free_obj));		\
} while (0)
#define unpoison(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#define SEND_HOME 0
#else
#define poison(p, n) ((void)(p), (void)(n))
#define unpoison(p, n) ((void)(p), (void)(n))
#define SEND_HOME 1
#endif


enum { CACHE_NEW, CACHE_LIVE, CACHE_OFF };

/* The link sits where a context keeps its parent pointer, so that under
 * ASan the reference count stays poisoned while the link stays readable
 * (LeakSanitizer does not look for pointers in poisoned memory). */
struct free_obj {
	uint64_t hdr;
	struct free_obj *next;
};

struct cache {
	struct free_obj *head[POOL_CLASSES];
	uint16_t n[POOL_CLASSES];
	uint8_t state;
	uint8_t home;
};

/* Home slots; slot 0 means "no home". */
static struct home {
	_Atomic(struct free_obj *) back[POOL_CLASSES]; /* sent home */
	_Atomic uint32_t nback[POOL_CLASSES];          /* at most POOL_HOME_MAX */
	_Atomic bool used;
} homes[POOL_HOMES];

static __thread struct cache tc;
#ifndef POOL_OFF
static pthread_key_t cache_key;
static bool cache_key_ok;
static pthread_once_t cache_once = PTHREAD_ONCE_INIT;
#endif

#ifndef POOL_OFF
/* Returns how many it freed. */
static unsigned free_list(struct free_obj *o, size_t size)
{
	unsigned n = 0;

	for (; o; n++) {
		struct free_obj *next;

		unpoison(o, size);
		next = o->next;
		free(o);
		o = next;
	}
	return n;
}

/* Thread exit: everything cached, and everything sent home, to malloc. */
static void cache_drain(void *unused)
{
	struct home *h = &homes[tc.home];

	(void)unused;
	for (unsigned i = 0; i < POOL_CLASSES; i++) {
		free_list(tc.head[i], (i + 1) * POOL_QUANTUM);
		tc.head[i] = NULL;
		tc.n[i] = 0;
	}
	if (tc.home) {
		atomic_store_explicit(&h->used, false, memory_order_release);
		for (unsigned i = 0; i < POOL_CLASSES; i++)
			atomic_fetch_sub_explicit(&h->nback[i],
				free_list(atomic_exchange_explicit(&h->back[i], NULL,
					memory_order_acquire), (i + 1) * POOL_QUANTUM),
				memory_order_relaxed);
	}
	tc.home = 0;
	tc.state = CACHE_OFF;
}

static void cache_key_init(void)
{
	cache_key_ok = pthread_key_create(&cache_key, cache_drain) == 0;
}

/* A free home slot for this thread, or 0. */
static uint8_t home_claim(void)
{
	for (unsigned i = 1; i < POOL_HOMES; i++) {
		bool no = false;

		if (!atomic_load_explicit(&homes[i].used, memory_order_relaxed) &&
		    atomic_compare_exchange_strong_explicit(&homes[i].used, &no, true,
				memory_order_acq_rel, memory_order_relaxed))
			return (uint8_t)i;
	}
	return 0;
}
#endif

/* Whether this thread caches; on first use, register the drain. */
static bool cache_on(void)
{
	if (likely(tc.state == CACHE_LIVE))
		return true;
	if (tc.state == CACHE_OFF)
		return false;
#ifdef POOL_OFF
	tc.state = CACHE_OFF;
#else
	pthread_once(&cache_once, cache_key_init);
	tc.state = cache_key_ok && !under_valgrind() &&
		   pthread_setspecific(cache_key, &tc) == 0 ? CACHE_LIVE : CACHE_OFF;
	if (tc.state == CACHE_LIVE && SEND_HOME)
		tc.home = home_claim();
#endif
	return tc.state == CACHE_LIVE;
}

/* The list is empty: take back what other threads sent home. */
static struct free_obj *take_back(unsigned i)
{
	struct free_obj *o, *p;
	unsigned n = 0;

	if (!tc.home || !atomic_load_explicit(&homes[tc.home].back[i], memory_order_relaxed))
		return NULL;
	o = atomic_exchange_explicit(&homes[tc.home].back[i], NULL, memory_order_acquire);
	for (p = o; p; p = p->next)
		n++;
	/* Counted before each push: never below what was taken. */
	atomic_fetch_sub_explicit(&homes[tc.home].nback[i], n, memory_order_relaxed);
	tc.head[i] = o;
	tc.n[i] = (uint16_t)(n < UINT16_MAX ? n : UINT16_MAX);
	return o;
}

void *rctx__pool_get(size_t size, uint8_t cls, uint8_t *home)
{
	struct free_obj *o;

	*home = 0;
	if (cls && cache_on()) {
		*home = tc.home;
		o = tc.head[cls - 1];
		if (o || (o = take_back(cls - 1))) {
			unpoison(o, (size_t)cls * POOL_QUANTUM);
			tc.head[cls - 1] = o->next;
			tc.n[cls - 1]--;
			return o;
		}
		size = (size_t)cls * POOL_QUANTUM;
	}
	/* One call site: the fault build (no cache) can fail every one. */
	return rctx__malloc(size);
}

/* Push p on its home's stack; false if the home is gone or holds
 * POOL_HOME_MAX objects of the class already. */
static bool send_home(struct free_obj *o, unsigned i, uint8_t home)
{
	struct home *h = &homes[home];
	struct free_obj *top;

	if (!atomic_load_explicit(&h->used, memory_order_acquire))
		return false;
	if (atomic_fetch_add_explicit(&h->nback[i], 1, memory_order_relaxed) >= POOL_HOME_MAX) {
		atomic_fetch_sub_explicit(&h->nback[i], 1, memory_order_relaxed);
		return false; /* full: the freeing thread keeps it or frees it */
	}
	top = atomic_load_explicit(&h->back[i], memory_order_relaxed);
	do
		o->next = top;
	while (!atomic_compare_exchange_weak_explicit(&h->back[i], &top, o,
			memory_order_release, memory_order_relaxed));
	return true;
}

void rctx__pool_put(void *p, uint8_t cls, uint8_t home)
{
	struct free_obj *o = p;

	if (!cls || !cache_on()) {
		free(p);
		return;
	}
	if (SEND_HOME && home && home != tc.home && send_home(o, cls - 1, home))
		return;
	if (tc.n[cls - 1] >= POOL_DEPTH) {
		free(p);
		return;
	}
	o->next = tc.head[cls - 1];
	tc.head[cls - 1] = o;
	tc.n[cls - 1]++;
	poison(o, (size_t)cls * POOL_QUANTUM);
}

unsigned rctx__pool_mode(void)
{
	if (!cache_on())
		return 0;
	return POOL_CACHES | (tc.home ? POOL_SENDS_HOME : 0);
}
