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
 * A small table under a mutex, with no allocation: entries are few (one per
 * file with held writes) and short-lived; the common case, no file fenced,
 * is one load. A full table fences every file (fail safe, never unsafe).
 */
#include <pthread.h>

#include "internal.h"

#define FENCE_SLOTS 256

struct fenced {
	uint64_t dev, ino;
	unsigned held;		/* abandoned writes the kernel holds; 0: free */
};

static struct {
	pthread_mutex_t lock;
	struct fenced slot[FENCE_SLOTS];
	unsigned overflow;		/* held writes that found no slot */
	_Atomic uint64_t files;		/* slots in use (+1 while overflow) */
	_Atomic uint64_t refused;
} fence = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* Under the lock: dev/ino's slot, or NULL. */
static struct fenced *lookup(uint64_t dev, uint64_t ino)
{
	for (unsigned i = 0; i < FENCE_SLOTS; i++) {
		struct fenced *f = &fence.slot[i];

		if (f->held && f->dev == dev && f->ino == ino)
			return f;
	}
	return NULL;
}

bool rctx__fenced(uint64_t dev, uint64_t ino)
{
	bool found;

	if (!atomic_load_explicit(&fence.files, memory_order_acquire))
		return false;
	pthread_mutex_lock(&fence.lock);
	found = fence.overflow || lookup(dev, ino);
	pthread_mutex_unlock(&fence.lock);
	if (found)
		stat_add(&fence.refused, 1);
	return found;
}

void rctx__fence_add(uint64_t dev, uint64_t ino)
{
	struct fenced *f;

	pthread_mutex_lock(&fence.lock);
	f = lookup(dev, ino);
	for (unsigned i = 0; !f && i < FENCE_SLOTS; i++)
		if (!fence.slot[i].held) {
			f = &fence.slot[i];
			f->dev = dev;
			f->ino = ino;
			atomic_fetch_add_explicit(&fence.files, 1, memory_order_release);
		}
	if (f)
		f->held++;
	else if (fence.overflow++ == 0)
		atomic_fetch_add_explicit(&fence.files, 1, memory_order_release);
	pthread_mutex_unlock(&fence.lock);
}

void rctx__fence_drop(uint64_t dev, uint64_t ino)
{
	struct fenced *f;

	pthread_mutex_lock(&fence.lock);
	f = lookup(dev, ino);
	if (f && --f->held == 0)
		atomic_fetch_sub_explicit(&fence.files, 1, memory_order_release);
	else if (!f && fence.overflow && --fence.overflow == 0)
		atomic_fetch_sub_explicit(&fence.files, 1, memory_order_release);
	pthread_mutex_unlock(&fence.lock);
}

void rctx__fence_stats(struct rctx_runtime_stats *st)
{
	st->fenced = stat_get(&fence.refused);
	st->fenced_files = atomic_load_explicit(&fence.files, memory_order_relaxed);
}
