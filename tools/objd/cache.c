/* SPDX-License-Identifier: MIT */
/*
 * cache.c - the open-file cache: key -> open fd, size, ETag, mtime, one per
 * worker thread (no locks), so that a GET of a cached key needs no open, no
 * statx and no hop to the library's lane.
 *
 * Invalidation by this server's own PUT and DELETE is exact: a table of
 * generation counters shared by every worker, one per bucket of key hashes
 * (plus one epoch for all keys), is bumped by a PUT after its rename and by
 * a DELETE after its unlink, before either answers. An entry remembers the
 * generation read BEFORE its open was started; a lookup whose bucket (or
 * epoch) has moved since drops the entry. So:
 *   - a GET that starts after a PUT's or DELETE's response reads the new
 *     generation (the bump happened before the response was sent; the
 *     client's next request comes after it), finds every older entry stale,
 *     and opens the key again;
 *   - an open that raced with the rename (started before the bump, so it may
 *     have opened the old file) is tagged with the older generation and is
 *     never used by a later lookup.
 * Aliases: only fds opened without following any symbolic link
 * (RESOLVE_NO_SYMLINKS) are cached, so a cached key names its file by one
 * path; a PUT or DELETE whose directory was reached through a symbolic link
 * bumps the epoch (every entry of every worker is dropped), since the key it
 * changed may be cached under another name. Hard links cannot alias a change:
 * PUT replaces the key's directory entry (rename), it never writes a file in
 * place.
 *
 * Changes made outside the server (another process writing the root) are
 * seen within the TTL (--cache-ttl, 1 s): an entry is used only until TTL
 * after its open was started, then the key is opened again. A key in use
 * is opened again ahead of that: a GET that finds its entry in the last
 * quarter of its TTL starts one new open of the key (object.c), whose
 * entry replaces it; so a hot key does not fall out of the cache every TTL,
 * which would send every GET of it, all at once, to open it.
 *
 * Bounded: at most --open-cache entries per worker, least recently used
 * evicted first. An entry is reference-counted (the cache's own reference
 * while it is in the table, one per request using its fd): its fd is closed
 * when the last goes, never under a request still reading it.
 *
 * Shared between workers: every entry in a worker's table is also in a
 * shared index (one mutex, taken on a miss and when an entry comes or
 * goes, never on a hit). A worker that misses a key another worker has
 * takes a duplicate of that worker's fd (cache_borrow: dup, no open) with
 * its validators, generation and expiry. So a key is opened once per
 * process, not once per worker; on a hung disk that matters, since an
 * open of a FUSE file whose read hangs waits for that read's page lock
 * uninterruptibly, and the process cannot exit while it does (flight.c).
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include "objd.h"

#define GEN_BUCKETS 4096	/* generation counters (power of two) */
#define SHARE_BUCKETS 1024	/* the shared index (power of two) */

static atomic_ullong gens[GEN_BUCKETS];
static atomic_ullong epoch;	/* bumped: every entry is stale */

/* Every worker's linked entries, by key hash; an entry's fd stays open
 * while it is here (it leaves before its last reference can go). */
static struct {
	pthread_mutex_t lock;
	struct fentry *bucket[SHARE_BUCKETS];
} shared = { .lock = PTHREAD_MUTEX_INITIALIZER };

uint64_t cache_hash(const char *key)
{
	uint64_t h = 1469598103934665603ULL;	/* FNV-1a */

	for (; *key; key++)
		h = (h ^ (unsigned char)*key) * 1099511628211ULL;
	return h ^ (h >> 29);
}

/* The generation a fill of key (hash h) is tagged with: read before its
 * open starts. */
uint64_t cache_gen(uint64_t h)
{
	return atomic_load(&gens[h & (GEN_BUCKETS - 1)]) + atomic_load(&epoch);
}

/* After this server changed key (hash h): no later lookup uses an entry
 * filled before now. all: the change may concern another name (a
 * symbolic link on the way): every entry. */
void cache_invalidate(uint64_t h, bool all)
{
	atomic_fetch_add(&gens[h & (GEN_BUCKETS - 1)], 1);
	if (all)
		atomic_fetch_add(&epoch, 1);
}

static void lru_unlink(struct fcache *fc, struct fentry *e)
{
	if (e->lprev)
		e->lprev->lnext = e->lnext;
	else
		fc->lru_head = e->lnext;
	if (e->lnext)
		e->lnext->lprev = e->lprev;
	else
		fc->lru_tail = e->lprev;
	e->lprev = e->lnext = NULL;
}

static void lru_front(struct fcache *fc, struct fentry *e)
{
	e->lnext = fc->lru_head;
	e->lprev = NULL;
	if (fc->lru_head)
		fc->lru_head->lprev = e;
	fc->lru_head = e;
	if (!fc->lru_tail)
		fc->lru_tail = e;
}

void cache_put(struct worker *w, struct fentry *e)
{
	if (--e->refs)
		return;
	close_async(w, e->fd);
	free(e);
}

static void index_add(struct fentry *e)
{
	struct fentry **b = &shared.bucket[e->hash & (SHARE_BUCKETS - 1)];

	pthread_mutex_lock(&shared.lock);
	e->snext = *b;
	*b = e;
	pthread_mutex_unlock(&shared.lock);
}

static void index_del(struct fentry *e)
{
	struct fentry **pp = &shared.bucket[e->hash & (SHARE_BUCKETS - 1)];

	pthread_mutex_lock(&shared.lock);
	while (*pp != e)
		pp = &(*pp)->snext;
	*pp = e->snext;
	pthread_mutex_unlock(&shared.lock);
}

/* Take e out of the table; its fd stays open while requests use it. */
static void detach(struct worker *w, struct fentry *e)
{
	struct fcache *fc = &w->fc;
	struct fentry **pp = &fc->table[e->hash & (fc->nbuckets - 1)];

	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	index_del(e);
	lru_unlink(fc, e);
	fc->n--;
	e->linked = false;
	cache_put(w, e);
}

/* A request through e failed (a read that failed or was abandoned, a client
 * gone): the next GET opens the key again, and a file whose reads hang
 * (a stuck disk) keeps no fd here, closed with its last request. */
void cache_drop(struct worker *w, struct fentry *e)
{
	if (e->linked)
		detach(w, e);
}

int cache_init(struct worker *w, unsigned cap)
{
	struct fcache *fc = &w->fc;

	fc->cap = cap;
	if (!cap)
		return 0;
	for (fc->nbuckets = 16; fc->nbuckets < cap * 2; fc->nbuckets <<= 1)
		;
	fc->table = calloc(fc->nbuckets, sizeof(*fc->table));
	return fc->table ? 0 : -1;
}

void cache_destroy(struct worker *w)
{
	struct fcache *fc = &w->fc;

	while (fc->lru_head)
		detach(w, fc->lru_head);
	free(fc->table);
	fc->table = NULL;
}

/* key's entry if it is fresh (a reference for the caller), else NULL. */
struct fentry *cache_get(struct worker *w, const char *key, uint64_t h)
{
	struct fcache *fc = &w->fc;
	struct fentry *e;

	if (!fc->cap)
		return NULL;
	for (e = fc->table[h & (fc->nbuckets - 1)]; e; e = e->hnext)
		if (e->hash == h && !strcmp(e->key, key))
			break;
	if (!e) {
		atomic_fetch_add_explicit(&fc->misses, 1, memory_order_relaxed);
		return NULL;
	}
	if (e->gen != cache_gen(h) || rctx_now() >= e->expires) {
		atomic_fetch_add_explicit(&fc->stale, 1, memory_order_relaxed);
		detach(w, e);
		return NULL;
	}
	atomic_fetch_add_explicit(&fc->hits, 1, memory_order_relaxed);
	if (fc->lru_head != e) {
		lru_unlink(fc, e);
		lru_front(fc, e);
	}
	e->refs++;
	return e;
}

/* Should the key of e, just found fresh, be opened again ahead of its
 * TTL? true once per entry (it is then marked refreshing). */
bool cache_refresh_due(struct worker *w, struct fentry *e)
{
	if (e->refreshing || rctx_now() < e->expires - w->s->o.cache_ttl_ns / 4)
		return false;
	e->refreshing = true;
	return true;
}

/* e's validator headers (its ETag and mtime set), made once for its GETs. */
static void vhdrs_make(struct fentry *e)
{
	char lm[HTTP_DATE_LEN + 1], *p = e->vhdrs;

	http_date(lm, e->mtime);
	p = put_str(p, "ETag: ");
	p = put_str(p, e->etag);
	p = put_str(p, "\r\nLast-Modified: ");
	p = put_str(p, lm);
	p = put_str(p, "\r\n");
	e->vlen = p - e->vhdrs;
	p = put_str(p, "Accept-Ranges: bytes\r\n");
	e->vhlen = p - e->vhdrs;
	*p = '\0';
}

/*
 * An entry for key (hash h) outside the table: fd (the entry owns it from
 * now on), size, validators; one reference for the caller. NULL (fd not
 * taken) when out of memory.
 */
struct fentry *fentry_new(const char *key, uint64_t h, int fd, uint64_t size,
			  const char *etag, int64_t mtime)
{
	size_t len = strlen(key);
	struct fentry *e = malloc(sizeof(*e) + len + 1);

	if (!e)
		return NULL;
	memcpy(e->key, key, len + 1);
	e->hash = h;
	e->gen = 0;
	e->expires = 0;
	e->fd = fd;
	e->size = size;
	e->mtime = mtime;
	snprintf(e->etag, sizeof(e->etag), "%s", etag);
	vhdrs_make(e);
	e->refs = 1;
	e->linked = false;
	e->refreshing = false;
	e->hnext = e->lprev = e->lnext = NULL;
	return e;
}

/*
 * A new entry for key (hash h): fd (the cache owns it from now on, the
 * caller holds one reference), opened under generation gen from time t0 on.
 * NULL (fd not taken) when the cache is off (or gone: the worker ends), out
 * of memory, or gen is stale.
 */
struct fentry *cache_add(struct worker *w, const char *key, uint64_t h, uint64_t gen,
			 int64_t t0, int fd, uint64_t size, const char *etag, int64_t mtime)
{
	struct fcache *fc = &w->fc;
	struct fentry *e, *old;

	if (!fc->table || gen != cache_gen(h))	/* already stale */
		return NULL;
	e = fentry_new(key, h, fd, size, etag, mtime);
	if (!e)
		return NULL;
	e->gen = gen;
	e->expires = t0 + w->s->o.cache_ttl_ns;
	e->refs = 2;		/* the table's and the caller's */
	e->linked = true;
	for (old = fc->table[h & (fc->nbuckets - 1)]; old; old = old->hnext)
		if (old->hash == h && !strcmp(old->key, key))
			break;
	if (old)
		detach(w, old);
	while (fc->n >= fc->cap) {
		atomic_fetch_add_explicit(&fc->evicted, 1, memory_order_relaxed);
		detach(w, fc->lru_tail);
	}
	e->hnext = fc->table[h & (fc->nbuckets - 1)];
	fc->table[h & (fc->nbuckets - 1)] = e;
	lru_front(fc, e);
	fc->n++;
	index_add(e);
	return e;
}

/*
 * key (hash h) as another worker has it, fresh: a new entry of w's cache
 * with a duplicate of its fd and its validators, generation and expiry (a
 * reference for the caller). NULL if no worker has it (or out of fds or
 * memory): then the key must be opened.
 */
struct fentry *cache_borrow(struct worker *w, const char *key, uint64_t h)
{
	struct fentry *o, *e = NULL;
	char etag[HTTP_ETAG_MAX];
	uint64_t gen = cache_gen(h), size = 0;
	int64_t t0 = 0, mtime = 0, now = rctx_now();
	int fd = -1;

	if (!w->fc.table)
		return NULL;
	pthread_mutex_lock(&shared.lock);
	for (o = shared.bucket[h & (SHARE_BUCKETS - 1)]; o; o = o->snext)
		if (o->hash == h && o->gen == gen && now < o->expires && !strcmp(o->key, key))
			break;
	if (o && (fd = fcntl(o->fd, F_DUPFD_CLOEXEC, 0)) >= 0) {
		t0 = o->expires - w->s->o.cache_ttl_ns;
		size = o->size;
		mtime = o->mtime;
		memcpy(etag, o->etag, sizeof(etag));
	}
	pthread_mutex_unlock(&shared.lock);
	if (fd < 0)
		return NULL;
	e = cache_add(w, key, h, gen, t0, fd, size, etag, mtime);
	if (!e)
		close_async(w, fd);	/* a duplicate (a FUSE flush may hang) */
	else
		atomic_fetch_add_explicit(&w->fc.borrowed, 1, memory_order_relaxed);
	return e;
}
