/* SPDX-License-Identifier: MIT */
/*
 * object.c - GET/HEAD, PUT and DELETE of objects beneath the root, each a
 * chain of io_uring file requests under the request's context.
 *
 * Resolution: openat2() with RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS. Symlinks
 * that stay inside the root are followed; one that leads out (or an absolute
 * one) fails with -EXDEV in the kernel and is answered 404, as a missing key
 * (nothing is said about what lies outside). PUT and DELETE resolve the key's
 * directory that way, then work on its base name relative to that directory
 * fd (a base name has no '/', so it cannot lead anywhere else).
 *
 * PUT is atomic and durable: the body goes to a unique temporary file
 * (OBJD_TMP_PREFIX) in the key's directory, which is written, fsync'd,
 * renamed onto the key, and the directory fsync'd; readers see the old or
 * the new object, never a part. A failed PUT unlinks its temporary file.
 * Parent directories are not created (409 Conflict when missing). A body
 * comes with a Content-Length or chunked (Transfer-Encoding), with the same
 * limit (--max-body, 413) and the same atomicity.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "objd.h"

#define RESOLVE_OBJD (RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)

static void fail(struct conn *c, int status)
{
	if (c->r->body_left)
		c->r->keep_alive = false;	/* a body we did not read */
	object_release(c, true);
	conn_error(c, status);
}

#define STATX_OBJD (STATX_TYPE | STATX_SIZE | STATX_MTIME)

static rctx_ring_t *ring_of(struct conn *c)
{
	return c->w->ring;
}

/* The connection's chunk buffer (GET's reads, PUT's writes). */
static int sbuf_get(struct conn *c)
{
	if (!c->r->sbuf && !(c->r->sbuf = malloc(OBJD_CHUNK)))
		return -ENOMEM;
	return 0;
}

/* After a file request's call: 503 if it could not start. */
static void started(struct conn *c, int err, file_step next, bool opens)
{
	if (file_started(c, err, next, opens))
		fail(c, 503);
}

static void submit_open_r(struct conn *c, int dirfd, const char *path, int flags, mode_t mode,
			  uint64_t resolve, file_step next)
{
	struct open_how how = {
		.flags = flags | O_CLOEXEC, .mode = mode, .resolve = resolve,
	};

	started(c, rctx_async_openat2(ring_of(c), c->r->req_ctx, dirfd, path, &how, file_cb, c),
		next, true);
}

static void submit_statx(struct conn *c, int dirfd, const char *path, int flags,
			 file_step next)
{
	started(c, rctx_async_statx(ring_of(c), c->r->req_ctx, dirfd, path, flags, STATX_OBJD,
				    file_cb, c), next, false);
}

static void submit_fsync(struct conn *c, int fd, file_step next)
{
	started(c, rctx_async_fsync(ring_of(c), c->r->req_ctx, fd, 0, file_cb, c), next, false);
}

static void submit_open(struct conn *c, int dirfd, const char *path, int flags, mode_t mode,
			file_step next)
{
	submit_open_r(c, dirfd, path, flags, mode, RESOLVE_OBJD, next);
}

/* Is the open-file cache on? */
static bool caching(struct conn *c)
{
	return c->w->s->o.cache_cap > 0;
}

/*
 * An open whose fd may be cached, or whose directory a PUT or DELETE
 * changes: first without following any symbolic link, so that the cache
 * knows the file by this one name; c->r->via_symlink once it had to follow one
 * (-ELOOP: tried again as usual).
 */
static void submit_open_nolink(struct conn *c, int dirfd, const char *path, int flags,
			       file_step next)
{
	c->r->via_symlink = !caching(c);
	submit_open_r(c, dirfd, path, flags, 0,
		      RESOLVE_OBJD | (c->r->via_symlink ? 0 : RESOLVE_NO_SYMLINKS), next);
}

/* After submit_open_nolink: true if it was tried again (following links). */
static bool retry_with_links(struct conn *c, int res, int dirfd, const char *path, int flags,
			     file_step next)
{
	if (res != -ELOOP || c->r->via_symlink)
		return false;
	c->r->via_symlink = true;
	submit_open(c, dirfd, path, flags, 0, next);
	return true;
}

/* ---- validators ---------------------------------------------------------- */

/* The object's ETag and modification time, from its statx. */
static void validators(struct conn *c, const struct statx *stx)
{
	http_etag(c->r->etag, (int64_t)stx->stx_mtime.tv_sec * 1000000000 + stx->stx_mtime.tv_nsec,
		  stx->stx_size);
	c->r->mtime = stx->stx_mtime.tv_sec;
}

/* The request's preconditions against the object: 0, 304 or 412. */
static int preconditions(struct conn *c, bool exists)
{
	struct http_validators v = { exists, c->r->etag, c->r->mtime };

	return http_preconditions(&c->r->req, &v);
}

/* ---- GET and HEAD ------------------------------------------------------- */

static void get_next(struct conn *c);

static void sb_sent(void *arg, int res, uint32_t flags);

static void sb_send(struct conn *c)
{
	struct io_uring_sqe sqe = { 0 };

	io_uring_prep_send(&sqe, c->fd, c->r->sbuf + c->r->sb_sent, c->r->sb_len - c->r->sb_sent,
			   MSG_NOSIGNAL);
	if (conn_submit(c, conn_resp_ctx(c), &sqe, sb_sent, c))
		conn_abort(c, "submit");
}

static void sb_sent(void *arg, int res, uint32_t flags)
{
	struct conn *c = arg;

	(void)flags;
	if (c->state == C_DEAD)
		goto out;
	if (res <= 0) {
		conn_abort(c, send_failure(c));
		goto out;
	}
	c->r->sb_sent += res;
	c->r->bytes_out += res;
	atomic_fetch_add(&c->w->s->st.bytes_out, res);
	if (c->r->sb_sent < c->r->sb_len) {
		sb_send(c);
	} else {
		c->r->off += c->r->sb_len;
		get_next(c);
	}
out:
	conn_put(c);
}

/* The head of a GET; on_sent sends the body (from the chunk buffer or
 * the pipe), unless it ends the request: the head then waits for the
 * body's first bytes to leave with them (MSG_MORE), not in a segment of
 * its own. */
static void get_head(struct conn *c, void (*on_sent)(struct conn *))
{
	c->r->more = on_sent != conn_finish;
	conn_respond(c, c->r->get_status, c->r->get_hdrs, NULL, 0,
		     c->r->size ? c->r->last - c->r->off + 1 : 0, on_sent);
	if (c->r)
		c->r->more = false;
}

/* The head and the first bytes went out in one send: the rest. */
static void get_first_sent(struct conn *c)
{
	c->r->off += c->r->sb_len;
	get_next(c);
}

/* A read or splice of the body ended with res <= 0: an error response
 * while the head is not out, else the connection closes. */
static void get_failed(struct conn *c, int res)
{
	if (!c->r->head_sent) {
		fail(c, res == 0 ? 500 : status_of_errno(c, res));
		return;
	}
	conn_abort(c, res == 0 ? "file-shrank" :
		   ctx_expired(c->r->req_ctx) ? "deadline-mid-body" :
		   rctx_err(conn_ctx(c)) ? cancel_why(c) : "read-failed");
}

static void get_read(struct conn *c, int res, void *data)
{
	if (res <= 0) {
		get_failed(c, res);
		return;
	}
	if (!c->r->head_sent && res <= OBJD_HEAD_BODY) {
		/* A small first read goes out with the head: one send. */
		c->r->sb_len = res;
		conn_respond(c, c->r->get_status, c->r->get_hdrs, data, res, c->r->last - c->r->off + 1,
			     get_first_sent);
		return;
	}
	if (sbuf_get(c)) {
		get_failed(c, -ENOMEM);
		return;
	}
	memcpy(c->r->sbuf, data, res);	/* data is the library's until we return */
	c->r->sb_len = res;
	c->r->sb_sent = 0;
	if (c->r->head_sent)
		sb_send(c);
	else
		get_head(c, sb_send);
}

/* ---- a large body: file -> pipe (the library) -> socket (here) ------------ */

static void pipe_send(struct conn *c);

static void pipe_polled(void *arg, int res, uint32_t flags)
{
	struct conn *c = arg;

	(void)flags;
	if (c->state == C_DEAD)
		goto out;
	if (res < 0)
		conn_abort(c, send_failure(c));
	else
		pipe_send(c);
out:
	conn_put(c);
}

/*
 * Send what the pipe holds: splice(2) of the pipe into the (non-blocking)
 * socket on this thread, which never touches the disk (the pipe holds
 * pages already read); when the socket is full, wait for it under the
 * response context. Then the next part of the body.
 */
static void pipe_send(struct conn *c)
{
	while (c->r->pipe_len) {
		bool more = c->r->off + c->r->pipe_len <= c->r->last;
		ssize_t n = splice(c->r->pipe.fd[0], NULL, c->fd, NULL, c->r->pipe_len,
				   SPLICE_F_NONBLOCK | (more ? SPLICE_F_MORE : 0));

		if (n <= 0 && (n == 0 || errno != EAGAIN)) {
			conn_abort(c, send_failure(c));
			return;
		}
		if (n < 0) {
			struct io_uring_sqe sqe = { 0 };

			io_uring_prep_poll_add(&sqe, c->fd, POLLOUT);
			if (conn_submit(c, conn_resp_ctx(c), &sqe, pipe_polled, c))
				conn_abort(c, "submit");
			return;
		}
		c->r->pipe_len -= n;
		c->r->off += n;
		c->r->bytes_out += n;
		atomic_fetch_add(&c->w->s->st.bytes_out, n);
	}
	get_next(c);
}

/* A splice's callback: the pipe's fate first (file_cb may end the
 * connection), then the next step as for every file request. */
static void splice_cb(void *arg, int res, void *data, unsigned flags)
{
	pipe_returned(arg, flags);
	file_cb(arg, res, data, flags);
}

/* The pipe holds res bytes of the body (the head goes out first). */
static void get_spliced(struct conn *c, int res, void *data)
{
	(void)data;
	if (res <= 0) {
		get_failed(c, res);
		return;
	}
	c->r->pipe_len = res;
	if (c->r->head_sent)
		pipe_send(c);
	else
		get_head(c, pipe_send);
}

/* Read (or splice into the pipe) the next part of the body; the head goes
 * out with the first one, so that a disk that never answers still gets a
 * clean 504. */
static void get_next(struct conn *c)
{
	file_step step = get_read;
	uint64_t n;
	int err;

	if (c->r->size == 0 || c->r->off > c->r->last) {
		conn_finish(c);
		return;
	}
	n = c->r->last - c->r->off + 1;
	if (c->r->pipe.fd[0] >= 0) {
		if (n > c->r->pipe.cap)
			n = c->r->pipe.cap;
		step = get_spliced;
		err = rctx_async_splice(ring_of(c), c->r->req_ctx, c->r->file_fd, (int64_t)c->r->off,
					c->r->pipe.fd, n, 0, splice_cb, c);
		c->r->pipe_lent = !err;
	} else {
		if (n > OBJD_CHUNK)
			n = OBJD_CHUNK;
		err = rctx_async_read(ring_of(c), c->r->req_ctx, c->r->file_fd, n,
				      (int64_t)c->r->off, file_cb, c);
	}
	if (file_started(c, err, step, false)) {
		if (c->r->head_sent)
			conn_abort(c, "submit");
		else
			fail(c, 503);
	}
}

/* The object is open (c->r->file_fd, its entry c->r->fe) and c->r->size
 * known: answer. */
static void get_sized(struct conn *c)
{
	struct http_validators v = { true, c->r->etag, c->r->mtime };
	const struct fentry *e = c->r->fe;
	char extra[160];
	uint64_t first = 0, last = 0;
	int r;

	/* The validators (ETag, Last-Modified) as the entry made them. */
	memcpy(c->r->get_hdrs, e->vhdrs, e->vlen);
	c->r->get_hdrs[e->vlen] = '\0';
	r = preconditions(c, true);
	if (r == 304) {
		conn_respond(c, 304, c->r->get_hdrs, NULL, 0, 0, conn_finish);
		return;
	}
	if (r) {
		conn_error(c, r);
		return;
	}
	r = http_if_range(&c->r->req, &v) ? http_range(c->r->req.range, c->r->size, &first, &last) : 0;
	if (r < 0) {
		snprintf(extra, sizeof(extra), "Content-Range: bytes */%llu\r\n",
			 (unsigned long long)c->r->size);
		conn_respond(c, 416, extra, "416 Range Not Satisfiable\n", 26, 26, conn_finish);
		return;
	}
	memcpy(c->r->get_hdrs, e->vhdrs, e->vhlen + 1);	/* + Accept-Ranges */
	if (r == 0) {
		c->r->off = 0;
		c->r->last = c->r->size ? c->r->size - 1 : 0;
	} else {
		c->r->off = first;
		c->r->last = last;
		snprintf(c->r->get_hdrs + e->vhlen, sizeof(c->r->get_hdrs) - e->vhlen,
			 "Content-Range: bytes %llu-%llu/%llu\r\n", (unsigned long long)first,
			 (unsigned long long)last, (unsigned long long)c->r->size);
	}
	c->r->get_status = r ? 206 : 200;
	if (c->r->req.method == HTTP_HEAD || c->r->size == 0) {
		get_head(c, conn_finish);
		return;
	}
	if (c->r->last - c->r->off + 1 > OBJD_SPLICE_MIN)
		pipe_take(c);	/* else (no pipe) it is read and sent */
	get_next(c);
}

/*
 * The open of the GET's key ended (its own, or the one in flight it joined:
 * flight.c): e, a reference to the open file's entry (fd, size,
 * validators), or res < 0 (the open failed; -EISDIR: not a regular file;
 * or the request's context ended first).
 */
void get_flown(struct conn *c, int res, struct fentry *e)
{
	if (c->state == C_DEAD || rctx_err(conn_ctx(c))) {
		/* The client hung up (or the server is gone). */
		if (e)
			cache_put(c->w, e);
		conn_abort(c, cancel_why(c));
		return;
	}
	if (res < 0) {
		fail(c, status_of_errno(c, res));
		return;
	}
	c->r->fe = e;
	c->r->file_fd = e->fd;
	c->r->size = e->size;
	c->r->mtime = e->mtime;
	memcpy(c->r->etag, e->etag, sizeof(c->r->etag));
	get_sized(c);
}

/* ---- opening a cached key again, ahead of its TTL --------------------------- */

struct refresh {
	struct worker *w;
	struct fentry *e;	/* a reference: the entry it replaces */
	rctx_t *ctx;		/* the open's: --cache-ttl at most */
	uint64_t gen;
	int64_t t0;
};

/* The new open of e's key ended: its entry replaces e (unless the key
 * changed since the open started: cache_add checks the generation). */
static void refresh_opened(void *arg, int res, void *data, unsigned flags)
{
	struct refresh *rf = arg;
	struct worker *w = rf->w;
	struct fentry *e = rf->e, *n = NULL;
	char etag[HTTP_ETAG_MAX];
	struct statx stx;

	(void)data; (void)flags;
	e->refreshing = false;
	if (res >= 0 && !statx(res, "", AT_EMPTY_PATH | AT_STATX_DONT_SYNC, STATX_OBJD, &stx) &&
	    S_ISREG(stx.stx_mode)) {
		http_etag(etag, (int64_t)stx.stx_mtime.tv_sec * 1000000000 + stx.stx_mtime.tv_nsec,
			  stx.stx_size);
		n = cache_add(w, e->key, e->hash, rf->gen, rf->t0, res, stx.stx_size, etag,
			      stx.stx_mtime.tv_sec);
	}
	if (n)
		cache_put(w, n);	/* the table keeps it */
	else if (res >= 0)
		close_async(w, res);
	cache_put(w, e);
	rctx_release(rf->ctx);
	free(rf);
}

/*
 * Open e's key again (as a GET that misses would: not following symbolic
 * links, under the generation read first), not for any request: under a
 * context of its own that ends after --cache-ttl, so that a disk that does
 * not answer holds it no longer (the library abandons it then).
 */
static void refresh_start(struct worker *w, struct fentry *e)
{
	struct open_how how = {
		.flags = O_RDONLY | O_CLOEXEC, .resolve = RESOLVE_OBJD | RESOLVE_NO_SYMLINKS,
	};
	struct refresh *rf = calloc(1, sizeof(*rf));

	if (rf)
		rf->ctx = rctx_with_timeout(w->s->ctx, w->s->o.cache_ttl_ns);
	if (!rf || !rf->ctx)
		goto out_fail;
	rf->w = w;
	rf->e = e;
	rf->gen = cache_gen(e->hash);
	rf->t0 = rctx_now();
	e->refs++;
	if (!rctx_async_openat2(w->ring, rf->ctx, w->s->root_fd, e->key, &how, refresh_opened, rf))
		return;
	e->refs--;
out_fail:
	e->refreshing = false;
	if (rf)
		rctx_release(rf->ctx);
	free(rf);
}

/*
 * A cached key: its fd, size and validators, no file request before the
 * read (and none at all when the page cache has the bytes); late in its
 * TTL, the key is opened again meanwhile. Else open it, or wait for its
 * open already in flight (flight.c).
 */
void object_get(struct conn *c)
{
	struct fentry *e;

	c->r->khash = cache_hash(c->r->key);
	e = cache_get(c->w, c->r->key, c->r->khash);
	if (e && cache_refresh_due(c->w, e))
		refresh_start(c->w, e);
	if (e) {
		get_flown(c, 0, e);
		return;
	}
	if (flight_join(c))
		fail(c, 503);
}

/* ---- PUT ---------------------------------------------------------------- */

static void put_body(struct conn *c);

static void put_done(struct conn *c, int res, void *data)
{
	(void)data;
	if (res < 0) {
		fail(c, status_of_errno(c, res));
		return;
	}
	conn_respond(c, c->r->existed ? 204 : 201, NULL, NULL, 0, 0, conn_finish);
}

static void put_renamed(struct conn *c, int res, void *data)
{
	(void)data;
	/* Before the answer: no later GET of this server uses a cached fd of
	 * the key's old file (nor of any key, if a symbolic link led here). */
	cache_invalidate(c->r->khash, c->r->via_symlink);
	if (res < 0) {
		fail(c, res == -EISDIR || res == -ENOTEMPTY ? 409 : status_of_errno(c, res));
		return;
	}
	c->r->tmpname[0] = '\0';	/* it is the object now */
	submit_fsync(c, c->r->dir_fd, put_done);
}

static void put_synced(struct conn *c, int res, void *data)
{
	(void)data;
	if (res < 0) {
		fail(c, status_of_errno(c, res));
		return;
	}
	started(c, rctx_async_renameat(ring_of(c), c->r->req_ctx, c->r->dir_fd, c->r->tmpname, c->r->dir_fd,
				       c->r->base, 0, file_cb, c), put_renamed, false);
}

static void put_written(struct conn *c, int res, void *data);

/* Write the rest of the body chunk in c->r->sbuf (wlen bytes, wdone of them
 * written) at the body's offset; the library writes from its own copy. */
static void put_write(struct conn *c)
{
	started(c, rctx_async_write(ring_of(c), c->r->req_ctx, c->r->tmp_fd, c->r->sbuf + c->r->wdone,
				    c->r->wlen - c->r->wdone, (int64_t)c->r->off, file_cb, c),
		put_written, false);
}


static void put_written(struct conn *c, int res, void *data)
{
	(void)data;
	if (res <= 0) {
		fail(c, res == 0 ? 500 : status_of_errno(c, res));
		return;
	}
	c->r->off += res;
	c->r->wdone += res;
	if (c->r->wdone < c->r->wlen)
		put_write(c);
	else
		put_body(c);
}

static void recv_body_cb(void *arg, int res, uint32_t flags)
{
	struct conn *c = arg;

	(void)flags;
	if (c->state == C_DEAD)
		goto out;
	if (res == 0 || (res < 0 && res != -ETIMEDOUT && res != -ECANCELED)) {
		conn_abort(c, "client-gone");
	} else if (res < 0 && rctx_err(conn_ctx(c))) {
		conn_abort(c, cancel_why(c));	/* hang-up, shutdown */
	} else if (res < 0) {
		c->r->why = "deadline-body";
		fail(c, status_of_errno(c, res));
	} else {
		c->in_len += res;
		atomic_fetch_add(&c->w->s->st.bytes_in, res);
		put_body(c);
	}
out:
	conn_put(c);
}

/* More of the body, after what the buffer holds. */
static void recv_body(struct conn *c)
{
	struct io_uring_sqe sqe = { 0 };

	io_uring_prep_recv(&sqe, c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
	if (conn_submit(c, c->r->req_ctx, &sqe, recv_body_cb, c))
		fail(c, 503);
}

/*
 * A chunked body: decode what the buffer holds, up to OBJD_CHUNK bytes of
 * data, into one write; receive more when it holds no data. The decoded
 * length is held to --max-body (413) before anything beyond it is written.
 */
static void put_chunked(struct conn *c)
{
	size_t used = 0, n = 0;
	struct http_slice d;
	int r = 0;

	if (sbuf_get(c)) {
		fail(c, 503);
		return;
	}
	while (n < OBJD_CHUNK) {
		r = http_chunk_next(&c->r->chunk, c->in + used, c->in_len - used, OBJD_CHUNK - n, &d);
		if (r <= 0)
			break;
		memcpy(c->r->sbuf + n, d.p, d.n);
		n += d.n;
		used += r;
	}
	memmove(c->in, c->in + used, c->in_len - used);
	c->in_len -= used;
	if (r < 0 || c->r->chunk.total > c->w->s->o.max_body) {
		c->r->why = r < 0 ? "bad-chunked-body" : "max-body";
		fail(c, r < 0 ? 400 : 413);
		return;
	}
	if (c->r->chunk.state == HTTP_CHUNK_DONE)
		c->r->body_left = 0;	/* what follows is the next request */
	if (n) {
		c->r->wlen = n;
		c->r->wdone = 0;
		put_write(c);
		return;
	}
	if (c->r->body_left == 0)
		put_body(c);
	else if (c->in_len < c->in_cap)
		recv_body(c);
	else
		fail(c, 400);	/* cannot be: a line fits (HTTP_CHUNK_LINE_MAX) */
}

/*
 * Take at once what the socket already holds (it is non-blocking), up to
 * a chunk of the body in the buffer: a write then carries as much as
 * arrived, not only what came with the head (an idle connection receives
 * a head's first bytes into a small buffer).
 */
static void body_now(struct conn *c)
{
	size_t want = c->r->body_left < OBJD_CHUNK ? c->r->body_left : OBJD_CHUNK;
	ssize_t n;

	if (c->in_len >= want || c->in_len >= c->in_cap)
		return;
	n = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, MSG_DONTWAIT);
	if (n > 0) {
		c->in_len += n;
		atomic_fetch_add(&c->w->s->st.bytes_in, n);
	}
}

/* Write what the buffer holds of the body, or receive more of it. */
static void put_body(struct conn *c)
{
	size_t n;

	if (c->r->body_left == 0) {
		submit_fsync(c, c->r->tmp_fd, put_synced);
		return;
	}
	body_now(c);
	if (c->r->req.chunked) {
		put_chunked(c);
		return;
	}
	if (c->in_len == 0) {
		recv_body(c);
		return;
	}
	n = c->in_len < c->r->body_left ? c->in_len : c->r->body_left;
	if (n > OBJD_CHUNK)
		n = OBJD_CHUNK;
	if (sbuf_get(c)) {
		fail(c, 503);
		return;
	}
	memcpy(c->r->sbuf, c->in, n);
	memmove(c->in, c->in + n, c->in_len - n);
	c->in_len -= n;
	c->r->body_left -= n;
	c->r->wlen = n;
	c->r->wdone = 0;
	put_write(c);
}

static void put_tmp_opened(struct conn *c, int res, void *data)
{
	(void)data;
	if (res < 0) {
		c->r->tmpname[0] = '\0';
		fail(c, status_of_errno(c, res));
		return;
	}
	c->r->tmp_fd = res;
	c->r->off = 0;
	/* No 100 to an HTTP/1.0 client (RFC 9110 10.1.1). */
	if (c->r->req.expect_continue && c->r->req.minor >= 1 && c->in_len < c->r->body_left)
		conn_respond(c, 100, NULL, NULL, 0, 0, put_body);
	else
		put_body(c);
}

/* The key's current state (not followed if a symlink): its validators
 * decide If-Match and If-None-Match, before the body is read. */
static void put_statted(struct conn *c, int res, void *data)
{
	const struct statx *stx = data;
	bool isdir = res == 0 && S_ISDIR(stx->stx_mode);
	int pre;

	if (res == 0)
		validators(c, stx);
	c->r->existed = res == 0;
	if (isdir) {
		fail(c, 409);
		return;
	}
	pre = preconditions(c, c->r->existed);
	if (pre) {
		fail(c, pre);
		return;
	}
	snprintf(c->r->tmpname, sizeof(c->r->tmpname), OBJD_TMP_PREFIX "%d.%d.%lu",
		 (int)getpid(), c->w->idx, ++c->w->seq);
	submit_open(c, c->r->dir_fd, c->r->tmpname, O_WRONLY | O_CREAT | O_EXCL, 0644, put_tmp_opened);
}

static void put_dir_opened(struct conn *c, int res, void *data)
{
	(void)data;
	if (retry_with_links(c, res, c->w->s->root_fd, c->r->dir, O_RDONLY | O_DIRECTORY,
			     put_dir_opened))
		return;
	if (res < 0) {
		fail(c, res == -ENOENT || res == -ENOTDIR ? 409 : status_of_errno(c, res));
		return;
	}
	c->r->dir_fd = res;
	submit_statx(c, c->r->dir_fd, c->r->base, AT_SYMLINK_NOFOLLOW, put_statted);
}

void object_put(struct conn *c)
{
	struct server *s = c->w->s;

	if (!c->r->req.has_length && !c->r->req.chunked) {
		c->r->keep_alive = false;
		conn_error(c, 411);
		return;
	}
	if (c->r->req.content_length > s->o.max_body) {
		c->r->keep_alive = false;
		conn_error(c, 413);
		return;
	}
	/* A chunked body's length is known at its end: until then, ~0 left. */
	c->r->body_left = c->r->req.chunked ? UINT64_MAX : c->r->req.content_length;
	memset(&c->r->chunk, 0, sizeof(c->r->chunk));
	c->r->khash = cache_hash(c->r->key);
	key_split(c->r->key, &c->r->dir, &c->r->base);
	submit_open_nolink(c, s->root_fd, c->r->dir, O_RDONLY | O_DIRECTORY, put_dir_opened);
}

/* ---- DELETE ------------------------------------------------------------- */

static void del_unlinked(struct conn *c, int res, void *data)
{
	(void)data;
	cache_invalidate(c->r->khash, c->r->via_symlink);	/* before the answer */
	if (res < 0) {
		fail(c, status_of_errno(c, res));
		return;
	}
	submit_fsync(c, c->r->dir_fd, put_done);
}

static void del_unlink(struct conn *c)
{
	started(c, rctx_async_unlinkat(ring_of(c), c->r->req_ctx, c->r->dir_fd, c->r->base, 0, file_cb, c),
		del_unlinked, false);
}

/* A missing key is 404 whatever the preconditions (RFC 9110 13.2.1). */
static void del_statted(struct conn *c, int res, void *data)
{
	int pre = 0;

	if (res == 0) {
		validators(c, data);
		pre = preconditions(c, true);
	}
	if (res < 0 || pre) {
		fail(c, res < 0 ? status_of_errno(c, res) : pre);
		return;
	}
	del_unlink(c);
}

/* With preconditions, the key is stat-ed before it is unlinked. */
static void del_dir_opened(struct conn *c, int res, void *data)
{
	(void)data;
	if (retry_with_links(c, res, c->w->s->root_fd, c->r->dir, O_RDONLY | O_DIRECTORY,
			     del_dir_opened))
		return;
	if (res < 0) {
		fail(c, status_of_errno(c, res));
		return;
	}
	c->r->dir_fd = res;
	c->r->existed = true;	/* 204 */
	if (http_has_preconditions(&c->r->req))
		submit_statx(c, c->r->dir_fd, c->r->base, AT_SYMLINK_NOFOLLOW, del_statted);
	else
		del_unlink(c);
}

void object_delete(struct conn *c)
{
	c->r->khash = cache_hash(c->r->key);
	key_split(c->r->key, &c->r->dir, &c->r->base);
	submit_open_nolink(c, c->w->s->root_fd, c->r->dir, O_RDONLY | O_DIRECTORY, del_dir_opened);
}

/* ---- cleanup ------------------------------------------------------------ */

/* A failed PUT's temporary file: unlink it, then close its directory. */
struct cleanup {
	struct worker *w;
	int dir_fd;
	char name[64];
};

static void cleanup_cb(void *arg, int res, uint32_t flags)
{
	struct cleanup *cl = arg;

	(void)res; (void)flags;
	close_async(cl->w, cl->dir_fd);
	free(cl);
}

static void unlink_tmp(struct conn *c)
{
	struct io_uring_sqe sqe = { 0 };
	struct cleanup *cl = malloc(sizeof(*cl));

	if (!cl) {
		close_async(c->w, c->r->dir_fd);
		return;
	}
	cl->w = c->w;
	cl->dir_fd = c->r->dir_fd;
	snprintf(cl->name, sizeof(cl->name), "%s", c->r->tmpname);
	io_uring_prep_unlinkat(&sqe, cl->dir_fd, cl->name, 0);
	if (rctx_submit(c->w->ring, rctx_background(), &sqe, cleanup_cb, cl)) {
		close_async(c->w, cl->dir_fd);
		free(cl);
	}
}

/* Close the request's files; after a failure, remove a PUT's temporary. */
void object_release(struct conn *c, bool failed)
{
	if (c->r->fe) {		/* the cache's fd: not ours to close */
		if (failed)
			cache_drop(c->w, c->r->fe);
		cache_put(c->w, c->r->fe);
		c->r->fe = NULL;
		c->r->file_fd = -1;
	}
	pipe_give(c, !failed);
	close_async(c->w, c->r->file_fd);
	close_async(c->w, c->r->tmp_fd);
	if (failed && c->r->tmpname[0] && c->r->dir_fd >= 0)
		unlink_tmp(c);
	else
		close_async(c->w, c->r->dir_fd);
	c->r->file_fd = c->r->tmp_fd = c->r->dir_fd = -1;
	c->r->tmpname[0] = '\0';
	c->r->body_left = 0;
}
