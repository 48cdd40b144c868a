/* SPDX-License-Identifier: MIT */
/*
 * Writes held back and sent together (struct rs_held in internal.h).
 *
 * Every write through the library is a request that the runtime thread hands
 * to the kernel, so that the caller can give it up at its deadline: a round
 * trip through two other threads (measured here: 11-74 us per write, against
 * 1-2 us for pwrite(2); bench/README.md, "SQLite"). SQLite writes a rollback
 * journal record as three writes (page number, page, checksum) and a
 * commit's pages one by one; so the VFS holds writes back and sends them
 * together, as abandonable requests (rctx_async_write) on a ring of the
 * thread's own, contiguous ones merged, all in flight at once, under the
 * context of the file.
 *
 * The order that SQLite depends on is kept: a group (a database, its journal
 * and its WAL: one pager) holds the writes of at most one file at a time,
 * and they are sent before anything else changes that group's files or their
 * visibility (a write to another of its files, a truncate, a sync, a lock or
 * unlock, SQLITE_FCNTL_SYNC, a close); a read or the size of a file sends
 * that file's own held writes first. A crash (of the process) loses at most
 * writes that nothing after them depended on, which is the state of a crash
 * just before they were made. Held back are only the writes of a rollback
 * journal, but for the zeroed header that ends a transaction in PERSIST mode
 * (written at once), and those of a database that has no WAL open; a WAL's
 * frames become visible through shared memory (the WAL index), which the VFS
 * does not see written, so WAL writes, and a database's writes in WAL mode
 * (checkpoints), go out one by one as before.
 *
 * An error of held writes is the error of the method that sent them
 * (SQLITE_IOERR_WRITE, SQLITE_FULL), which SQLite treats as a failed write.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define HELD_MAX 256			/* writes held per file */
#define HELD_BYTES (4u << 20)		/* bytes held per file */
#define HELD_MERGE (1u << 20)		/* largest merged write */

/* ---- the thread's ring ------------------------------------------------------ */

static pthread_key_t ring_key;
static pthread_once_t ring_once = PTHREAD_ONCE_INIT;
static _Thread_local rctx_ring_t *tls_ring;

/* Thread exit: what the kernel still holds is given up (the library keeps
 * its memory until the kernel lets go). */
static void ring_exit(void *ring)
{
	tls_ring = NULL;
	rctx_ring_destroy(ring);
}

static void make_key(void)
{
	pthread_key_create(&ring_key, ring_exit);
}

/* This thread's ring for the VFS's requests, or NULL (out of memory). */
static rctx_ring_t *thread_ring(void)
{
	rctx_ring_t *ring;

	if (tls_ring)
		return tls_ring;
	pthread_once(&ring_once, make_key);
	if (rctx_ring_create(&ring, 64) < 0)
		return NULL;
	if (pthread_setspecific(ring_key, ring)) {
		rctx_ring_destroy(ring);
		return NULL;
	}
	return tls_ring = ring;
}

/* ---- holding ------------------------------------------------------------- */

static struct rs_file *group_of(struct rs_file *f)
{
	return f->main ? f->main : f;
}

/* The first 8 bytes of a rollback journal's header (SQLite's file format). */
static const unsigned char journal_magic[8] = { 0xd9, 0xd5, 0x05, 0xf9, 0x20, 0xa1, 0x63, 0xd7 };

bool rctx__sqlite_may_hold(struct rs_file *f, const void *buf, int amt, int64_t off)
{
	/* A header without its magic (zeroed) ends a transaction in PERSIST
	 * mode or under locking_mode=EXCLUSIVE, and with synchronous=OFF
	 * nothing follows it: it goes out at once. */
	if (f->type == SQLITE_OPEN_MAIN_JOURNAL)
		return off != 0 || (amt >= 8 && !memcmp(buf, journal_magic, 8));
	return f->type == SQLITE_OPEN_MAIN_DB && f->nwal == 0;
}

/* Does [off, off + len) overlap a write f holds? */
static bool overlaps(const struct rs_file *f, int64_t off, size_t len)
{
	for (int i = 0; i < f->nheld; i++) {
		const struct rs_held *h = &f->held[i];

		if (off < h->off + (int64_t)h->len && h->off < off + (int64_t)len)
			return true;
	}
	return false;
}

/* Append buf to the last held write if it continues it. */
static bool merge(struct rs_file *f, const void *buf, size_t len, int64_t off)
{
	struct rs_held *h = f->nheld ? &f->held[f->nheld - 1] : NULL;
	size_t cap;
	char *nb;

	if (!h || h->off + (int64_t)h->len != off || h->len + len > HELD_MERGE)
		return false;
	if (h->len + len > h->cap) {
		cap = h->cap * 2 > h->len + len ? h->cap * 2 : h->len + len;
		nb = realloc(h->buf, cap);
		if (!nb)
			return false;
		h->buf = nb;
		h->cap = cap;
	}
	memcpy(h->buf + h->len, buf, len);
	h->len += len;
	return true;
}

static int add(struct rs_file *f, const void *buf, size_t len, int64_t off)
{
	struct rs_held *h;

	if (f->nheld == f->capheld) {
		int cap = f->capheld ? f->capheld * 2 : 16;

		h = realloc(f->held, (size_t)cap * sizeof(*h));
		if (!h)
			return SQLITE_IOERR_NOMEM;
		f->held = h;
		f->capheld = cap;
	}
	h = &f->held[f->nheld];
	h->buf = malloc(len);
	if (!h->buf)
		return SQLITE_IOERR_NOMEM;
	memcpy(h->buf, buf, len);
	h->off = off;
	h->len = h->cap = len;
	f->nheld++;
	return SQLITE_OK;
}

int rctx__sqlite_hold(struct rs_file *f, const void *buf, int amt, int64_t off)
{
	struct rs_file *g = group_of(f);
	size_t len = (size_t)amt;
	int rc;

	if (g->holder && g->holder != f) {
		rc = rctx__sqlite_flush_group(f);
		if (rc != SQLITE_OK)
			return rc;
	}
	if (f->nheld && (f->nheld == HELD_MAX || f->held_bytes + len > HELD_BYTES ||
			 overlaps(f, off, len))) {
		rc = rctx__sqlite_flush(f);
		if (rc != SQLITE_OK)
			return rc;
	}
	if (!merge(f, buf, len, off)) {
		rc = add(f, buf, len, off);
		if (rc != SQLITE_OK)
			return rc;
	}
	f->held_bytes += len;
	g->holder = f;
	return SQLITE_OK;
}

void rctx__sqlite_drop_held(struct rs_file *f)
{
	struct rs_file *g = group_of(f);

	for (int i = 0; i < f->nheld; i++)
		free(f->held[i].buf);
	f->nheld = 0;
	f->held_bytes = 0;
	if (g->holder == f)
		g->holder = NULL;
}

void rctx__sqlite_free_held(struct rs_file *f)
{
	rctx__sqlite_drop_held(f);
	free(f->held);
	f->held = NULL;
	f->capheld = 0;
}

/* ---- sending --------------------------------------------------------------- */

struct sent {
	int left;	/* callbacks still to come */
	int err;	/* the first error (negative errno), 0 */
};

struct one {
	struct sent *s;
	ssize_t res;
};

static void sent_cb(void *arg, int res, void *data, unsigned flags)
{
	struct one *o = arg;

	(void)data;
	(void)flags;
	o->res = res;
	o->s->left--;
}

/* The rest of a short write, or every write when there is no ring. */
static int write_all(rctx_t *ctx, int fd, const char *buf, size_t len, int64_t off)
{
	while (len) {
		ssize_t n = rctx_write(ctx, fd, buf, len, off);

		if (n == 0)
			return -ENOSPC;
		if (n < 0)
			return (int)n;
		buf += n;
		len -= (size_t)n;
		off += n;
	}
	return 0;
}

/*
 * Send f's held writes, all in flight at once, under ctx on this thread's
 * ring; wait for every one of them (each ends by ctx's end at the latest).
 * Returns 0 or the first error (negative errno).
 */
static int send_held(struct rs_file *f, rctx_t *ctx)
{
	rctx_ring_t *ring = thread_ring();
	struct sent s = { 0, 0 };
	struct one *o;
	int n = 0, err;

	if (rctx_err(ctx))
		return rctx_err(ctx);
	/* one write (a journal's, merged): a blocking call waits for less */
	o = ring && f->nheld > 1 ? calloc((size_t)f->nheld, sizeof(*o)) : NULL;
	if (!o) {
		for (int i = 0; i < f->nheld; i++) {
			err = write_all(ctx, f->fd->fd, f->held[i].buf, f->held[i].len,
					f->held[i].off);
			if (err)
				return err;
		}
		return 0;
	}
	for (; n < f->nheld; n++) {
		struct rs_held *h = &f->held[n];

		o[n] = (struct one){ &s, 0 };
		err = rctx_async_write(ring, ctx, f->fd->fd, h->buf, h->len, h->off, sent_cb, &o[n]);
		if (err) {
			s.err = err;
			break;
		}
		s.left++;
	}
	while (s.left)
		rctx_ring_run(ring, RCTX_FOREVER);
	for (int i = 0; i < n && !s.err; i++) {
		struct rs_held *h = &f->held[i];

		if (o[i].res < 0)
			s.err = (int)o[i].res;
		else if ((size_t)o[i].res < h->len)
			s.err = o[i].res == 0 ? -ENOSPC :
				write_all(ctx, f->fd->fd, h->buf + o[i].res, h->len - (size_t)o[i].res,
					  h->off + o[i].res);
	}
	free(o);
	return s.err;
}

int rctx__sqlite_flush(struct rs_file *f)
{
	int err;

	if (!f->nheld)
		return SQLITE_OK;
	err = send_held(f, rctx__sqlite_file_ctx(f));
	rctx__sqlite_drop_held(f);
	if (!err)
		return SQLITE_OK;
	return rctx__sqlite_fail(err, err == -ENOSPC ? SQLITE_FULL : SQLITE_IOERR_WRITE);
}

int rctx__sqlite_flush_group(struct rs_file *f)
{
	struct rs_file *g = group_of(f);

	return g->holder ? rctx__sqlite_flush(g->holder) : SQLITE_OK;
}
