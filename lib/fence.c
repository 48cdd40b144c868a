/* SPDX-License-Identifier: MIT */
/*
 * The write fence: files (st_dev, st_ino) with an abandoned write or
 * truncate that the kernel still holds. Such a request may still be carried
 * out, and where the kernel does not order writes to the same file (direct
 * I/O overwrites, FUSE parallel direct writes, network file systems:
 * docs/stuck-io.md) a later write could complete before it and then be
 * overwritten by it. So while a file is fenced, the library's writes,
 * truncates and syncs of it fail at once with -EBUSY.
 *
 * A small open hash table under a mutex: entries are few (one per file
 * with held writes) and short-lived; the common case, no file fenced, is
 * one relaxed load.
 */
#include <pthread.h>
#include <stdlib.h>

#include "internal.h"

struct fenced {
	struct fenced *next;
	uint64_t dev, ino;
	unsigned held;		/* abandoned writes the kernel holds */
};

#define FENCE_BUCKETS 64

static struct {
	pthread_mutex_t lock;
	struct fenced *b[FENCE_BUCKETS];
	_Atomic uint64_t files;		/* entries: 0 skips the lock */
	_Atomic uint64_t refused;
} fence = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* On failure to allocate, the fence is taken by the whole library: no file
 * may be written until the kernel lets go (fail safe, never unsafe). */
static struct fenced everything;

static struct fenced **bucket(uint64_t dev, uint64_t ino)
{
	uint64_t h = (ino ^ (dev << 17)) * 0x9e3779b97f4a7c15ULL;

	return &fence.b[h >> 58];
}

/* Under the lock: the entry's link, or the end of its bucket. */
static struct fenced **lookup(uint64_t dev, uint64_t ino)
{
	struct fenced **pp = bucket(dev, ino);

	while (*pp && ((*pp)->dev != dev || (*pp)->ino != ino))
		pp = &(*pp)->next;
	return pp;
}

bool rctx__fenced(uint64_t dev, uint64_t ino)
{
	bool found;

	if (!atomic_load_explicit(&fence.files, memory_order_acquire))
		return false;
	pthread_mutex_lock(&fence.lock);
	found = everything.held || *lookup(dev, ino) != NULL;
	pthread_mutex_unlock(&fence.lock);
	if (found)
		stat_add(&fence.refused, 1);
	return found;
}

void rctx__fence_add(uint64_t dev, uint64_t ino)
{
	struct fenced **pp, *f;

	pthread_mutex_lock(&fence.lock);
	pp = lookup(dev, ino);
	f = *pp;
	if (!f) {
		f = rctx__calloc(1, sizeof(*f));
		if (f) {
			f->dev = dev;
			f->ino = ino;
			*pp = f;
			atomic_fetch_add_explicit(&fence.files, 1, memory_order_release);
		}
	}
	if (f) {
		f->held++;
	} else if (everything.held++ == 0) {
		atomic_fetch_add_explicit(&fence.files, 1, memory_order_release);
	}
	pthread_mutex_unlock(&fence.lock);
}

void rctx__fence_drop(uint64_t dev, uint64_t ino)
{
	struct fenced **pp, *f;

	pthread_mutex_lock(&fence.lock);
	pp = lookup(dev, ino);
	f = *pp;
	if (f && --f->held == 0) {
		*pp = f->next;
		free(f);
		atomic_fetch_sub_explicit(&fence.files, 1, memory_order_release);
	} else if (!f && everything.held && --everything.held == 0) {
		atomic_fetch_sub_explicit(&fence.files, 1, memory_order_release);
	}
	pthread_mutex_unlock(&fence.lock);
}

void rctx__fence_stats(struct rctx_runtime_stats *st)
{
	st->fenced = stat_get(&fence.refused);
	st->fenced_files = atomic_load_explicit(&fence.files, memory_order_relaxed);
}
