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
 * together, contiguous ones merged, under the context of the file: up to
 * RCTX_SEGS_MAX of them as one abandonable request (rctx_async_write_segs,
 * which one kernel worker writes one after the other), the requests all in
 * flight at once on a ring of the thread's own.
 *
 * The order that SQLite depends on is kept: a group (a database, its journal
 * and its WAL: one pager) holds the writes of at most one file at a time,
 * and they are sent before anything else changes that group's files or their
 * visibility (a write to another of its files, a truncate, a sync, which
 * takes them along as one request, an unlock, the SQLITE_FCNTL_SYNC of a
 * database with no journal file open or of a transaction of several
 * databases, a close); a read or the size of a file
 * sends that file's own held writes first, but for a read past all of them.
 * A crash (of the process) loses at most writes that nothing after them
 * depended on, which is the state of a crash just before they were made.
 * Held back are only the writes of a rollback journal, but for the zeroed
 * header that ends a transaction in PERSIST mode (written at once), and
 * those of a database that has no WAL open; a WAL's
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

rctx_ring_t *rctx__sqlite_ring(void)
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

/* All amt bytes of buf are zero. */
static bool all_zero(const unsigned char *buf, int amt)
{
	for (int i = 0; i < amt; i++)
		if (buf[i])
			return false;
	return true;
}

bool rctx__sqlite_may_hold(struct rs_file *f, const void *buf, int amt, int64_t off)
{
	/* A zeroed header ends a transaction in PERSIST mode or under
	 * locking_mode=EXCLUSIVE, and with synchronous=OFF nothing follows
	 * it: it goes out at once. The header that starts a journal is held
	 * (with its magic, or zeroed but for its nonce and sizes until the
	 * records are synced: never all zero). */
	if (f->type == SQLITE_OPEN_MAIN_JOURNAL)
		return off != 0 || (amt >= 8 && !memcmp(buf, journal_magic, 8)) ||
		       !all_zero(buf, amt);
	return f->type == SQLITE_OPEN_MAIN_DB && f->nwal == 0;
}

bool rctx__sqlite_held_below(const struct rs_file *f, int64_t off)
{
	for (int i = 0; i < f->nheld; i++)
		if (f->held[i].off + (int64_t)f->held[i].len > off)
			return false;
	return true;
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

/* A request of up to RCTX_SEGS_MAX held writes, written one after the other
 * by one kernel worker (rctx_async_write_segs). */
struct batch {
	int *left;	/* the flush's callbacks still to come */
	int first, n;	/* f->held[first .. first + n) */
	unsigned flags;	/* RCTX_SEGS_DATASYNC: the file's sync after them */
	int res;	/* as pwritev(2), or the sync's error */
	size_t len;	/* the writes' bytes */
};

static void sent_cb(void *arg, int res, void *data, unsigned flags)
{
	struct batch *b = arg;

	(void)data;
	(void)flags;
	b->res = res;
	(*b->left)--;
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

/* Write held writes [first, end) of f from byte skip of the first on. */
static int write_rest(struct rs_file *f, rctx_t *ctx, int first, int end, size_t skip)
{
	for (int i = first; i < end; i++, skip = 0) {
		struct rs_held *h = &f->held[i];
		int err = write_all(ctx, f->fd->fd, h->buf + skip, h->len - skip,
				    h->off + (int64_t)skip);

		if (err)
			return err;
	}
	return 0;
}

/* b came up short (res bytes, as pwritev(2)): write what it did not. */
static int finish_batch(struct rs_file *f, rctx_t *ctx, const struct batch *b)
{
	size_t done = (size_t)b->res;
	int i = b->first;

	if (b->res < 0)
		return b->res;
	while (i < b->first + b->n && done >= f->held[i].len)
		done -= f->held[i++].len;
	if (i == b->first + b->n)
		return 0;
	if (b->res == 0)
		return -ENOSPC;
	return write_rest(f, ctx, i, b->first + b->n, done);
}

static int send_batch(rctx_ring_t *ring, rctx_t *ctx, struct rs_file *f, struct batch *b)
{
	struct iovec iov[RCTX_SEGS_MAX];
	int64_t off[RCTX_SEGS_MAX];

	for (int i = 0; i < b->n; i++) {
		const struct rs_held *h = &f->held[b->first + i];

		iov[i] = (struct iovec){ h->buf, h->len };
		off[i] = h->off;
		b->len += h->len;
	}
	return rctx_async_write_segs(ring, ctx, f->fd->fd, iov, off, (unsigned)b->n, b->flags,
				     sent_cb, b);
}

/*
 * Send f's held writes under ctx on this thread's ring, RCTX_SEGS_MAX to a
 * request, the requests all in flight at once (the writes of one flush
 * never overlap: hold() sends first); wait for every one of them (each ends
 * by ctx's end at the latest). *sync (if sync is not NULL): the file's
 * fdatasync goes with them when they make one request; *sync says whether
 * it ran and succeeded.
 * Returns 0 or the first error (-errno).
 */
static int send_held(struct rs_file *f, rctx_t *ctx, bool *sync)
{
	int nb = (f->nheld + RCTX_SEGS_MAX - 1) / RCTX_SEGS_MAX;
	rctx_ring_t *ring = rctx__sqlite_ring();
	bool with_sync = sync && nb == 1;
	int left = 0;
	struct batch *b;
	int sent = 0, err = 0;

	if (sync)
		*sync = false;
	if (rctx_err(ctx))
		return rctx_err(ctx);
	/* one write (a journal's, merged) and no sync: a blocking call waits
	 * for less */
	b = ring && (f->nheld > 1 || with_sync) ? calloc((size_t)nb, sizeof(*b)) : NULL;
	if (!b)
		return write_rest(f, ctx, 0, f->nheld, 0);
	for (; sent < nb && !err; sent++) {
		b[sent] = (struct batch){ .left = &left, .first = sent * RCTX_SEGS_MAX,
					  .flags = with_sync ? RCTX_SEGS_DATASYNC : 0 };
		b[sent].n = f->nheld - b[sent].first < RCTX_SEGS_MAX ?
			    f->nheld - b[sent].first : RCTX_SEGS_MAX;
		err = send_batch(ring, ctx, f, &b[sent]);
		if (!err)
			left++;
	}
	while (left)
		rctx_ring_run(ring, RCTX_FOREVER);
	if (with_sync && !err)
		*sync = b[0].res >= 0 && (size_t)b[0].res == b[0].len;
	for (int i = 0; i < sent && !err; i++)
		err = finish_batch(f, ctx, &b[i]);
	free(b);
	return err;
}

/*
 * Held writes of f failed to go out (some may have, or may still land).
 * SQLite wrote them as far as it knows: a journal that lost its records
 * would be played back, in the rollback that follows, as if it had none,
 * and the pages changed in SQLite's cache would stay as if committed. So
 * the journal's next read or size fails (vfs.c), which fails that rollback
 * and sends the pager to its error state: its cache is dropped, and the
 * journal is then read as the disk has it (the fence keeps later writes
 * behind the lost ones). A database's lost writes are undone by its
 * journal, which SQLite plays back then.
 */
static int lose(struct rs_file *f, int err, int rc)
{
	if (f->type == SQLITE_OPEN_MAIN_JOURNAL)
		f->lost = true;
	return rctx__sqlite_fail(err, err == -ENOSPC ? SQLITE_FULL : rc);
}

int rctx__sqlite_flush(struct rs_file *f)
{
	int err;

	if (!f->nheld)
		return SQLITE_OK;
	err = send_held(f, rctx__sqlite_file_ctx(f), NULL);
	rctx__sqlite_drop_held(f);
	return err ? lose(f, err, SQLITE_IOERR_WRITE) : SQLITE_OK;
}

int rctx__sqlite_flush_group(struct rs_file *f)
{
	struct rs_file *g = group_of(f);

	return g->holder ? rctx__sqlite_flush(g->holder) : SQLITE_OK;
}

int rctx__sqlite_flush_sync(struct rs_file *f)
{
	struct rs_file *g = group_of(f);
	rctx_t *ctx = rctx__sqlite_file_ctx(f);
	bool synced = false;
	int err, rc;

	if (g->holder && g->holder != f) {
		rc = rctx__sqlite_flush(g->holder);
		if (rc != SQLITE_OK)
			return rc;
	}
	if (f->nheld) {
		err = send_held(f, ctx, &synced);
		rctx__sqlite_drop_held(f);
		if (err)	/* a write's or the sync's: SQLite fails the commit either way */
			return lose(f, err, SQLITE_IOERR_WRITE);
		if (synced)
			return SQLITE_OK;
	}
	err = rctx_fsync(ctx, f->fd->fd, IORING_FSYNC_DATASYNC);
	return err < 0 ? rctx__sqlite_fail(err, SQLITE_IOERR_FSYNC) : SQLITE_OK;
}
