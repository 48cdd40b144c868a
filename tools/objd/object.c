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
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "objd.h"

#define RESOLVE_OBJD (RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)

static void fail(struct conn *c, int status)
{
	if (c->body_left)
		c->keep_alive = false;	/* a body we did not read */
	object_release(c, true);
	conn_error(c, status);
}

static void submit_or_fail(struct conn *c, struct fop *f, struct io_uring_sqe *sqe,
			   void (*done)(struct conn *, struct fop *, int))
{
	if (!f || fop_submit(c, f, sqe, done))
		fail(c, 503);
}

static void submit_open(struct conn *c, int dirfd, const char *path, int flags, mode_t mode,
			void (*done)(struct conn *, struct fop *, int))
{
	struct io_uring_sqe sqe = { 0 };
	struct fop *f = fop_new(c, 0);

	if (f) {
		snprintf(f->path, sizeof(f->path), "%s", path);
		f->opens = true;
		f->how.flags = flags | O_CLOEXEC;
		f->how.mode = mode;
		f->how.resolve = RESOLVE_OBJD;
		io_uring_prep_openat2(&sqe, dirfd, f->path, &f->how);
	}
	submit_or_fail(c, f, &sqe, done);
}

static void submit_statx(struct conn *c, int dirfd, const char *path, int flags,
			 void (*done)(struct conn *, struct fop *, int))
{
	struct io_uring_sqe sqe = { 0 };
	struct fop *f = fop_new(c, 0);

	if (f) {
		snprintf(f->path, sizeof(f->path), "%s", path);
		io_uring_prep_statx(&sqe, dirfd, f->path, flags,
				    STATX_TYPE | STATX_SIZE | STATX_MTIME | STATX_MNT_ID, &f->stx);
	}
	submit_or_fail(c, f, &sqe, done);
}

static void submit_fsync(struct conn *c, int fd, void (*done)(struct conn *, struct fop *, int))
{
	struct io_uring_sqe sqe = { 0 };
	struct fop *f = fop_new(c, 0);

	if (f)
		io_uring_prep_fsync(&sqe, fd, 0);
	submit_or_fail(c, f, &sqe, done);
}

/* ---- validators ---------------------------------------------------------- */

/* The object's ETag and modification time, from its statx. */
static void validators(struct conn *c, const struct statx *stx)
{
	http_etag(c->etag, (int64_t)stx->stx_mtime.tv_sec * 1000000000 + stx->stx_mtime.tv_nsec,
		  stx->stx_size);
	c->mtime = stx->stx_mtime.tv_sec;
}

/* The request's preconditions against the object: 0, 304 or 412. */
static int preconditions(struct conn *c, bool exists)
{
	struct http_validators v = { exists, c->etag, c->mtime };

	return http_preconditions(&c->req, &v);
}

/* ---- GET and HEAD ------------------------------------------------------- */

static void get_next(struct conn *c);

static void sb_sent(void *arg, int res, uint32_t flags);

static void sb_send(struct conn *c)
{
	struct io_uring_sqe sqe = { 0 };

	io_uring_prep_send(&sqe, c->fd, c->sb->buf + c->sb->sent, c->sb->len - c->sb->sent,
			   MSG_NOSIGNAL);
	if (conn_submit(c, c->resp_ctx, &sqe, sb_sent, c))
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
	c->sb->sent += res;
	c->bytes_out += res;
	atomic_fetch_add(&c->w->s->st.bytes_out, res);
	if (c->sb->sent < c->sb->len) {
		sb_send(c);
	} else {
		c->off += c->sb->len;
		free(c->sb);
		c->sb = NULL;
		get_next(c);
	}
out:
	conn_put(c);
}

static void get_head(struct conn *c, void (*on_sent)(struct conn *))
{
	conn_respond(c, c->get_status, c->get_hdrs, NULL, 0,
		     c->size ? c->last - c->off + 1 : 0, on_sent);
}

static void get_read(struct conn *c, struct fop *f, int res)
{
	if (res <= 0 && !c->head_sent) {
		free(f);
		fail(c, res == 0 ? 500 : status_of_errno(c, res));
		return;
	}
	if (res <= 0) {
		free(f);
		conn_abort(c, res == 0 ? "file-shrank" :
			   ctx_expired(c->req_ctx) ? "deadline-mid-body" :
			   rctx_err(c->ctx) ? cancel_why(c) : "read-failed");
		return;
	}
	f->len = res;
	f->sent = 0;
	c->sb = f;
	if (c->head_sent)
		sb_send(c);
	else
		get_head(c, sb_send);
}

/* Read the next chunk; the head goes out with the first one, so that a
 * disk that never answers still gets a clean 504. */
static void get_next(struct conn *c)
{
	struct io_uring_sqe sqe = { 0 };
	struct fop *f;
	uint64_t n;

	if (c->size == 0 || c->off > c->last) {
		conn_finish(c);
		return;
	}
	n = c->last - c->off + 1;
	if (n > OBJD_CHUNK)
		n = OBJD_CHUNK;
	f = fop_new(c, OBJD_CHUNK);
	if (!f || (io_uring_prep_read(&sqe, c->file_fd, f->buf, n, c->off),
		   (c->file_nowait ? fop_submit_nowait : fop_submit)(c, f, &sqe, get_read))) {
		if (c->head_sent)
			conn_abort(c, "submit");
		else
			fail(c, 503);
	}
}

/* The object is open (c->file_fd) and c->size known: answer. */
static void get_sized(struct conn *c)
{
	struct http_validators v = { true, c->etag, c->mtime };
	char lm[HTTP_DATE_LEN + 1], extra[160];
	uint64_t first = 0, last = 0;
	size_t n;
	int r;

	http_date(lm, c->mtime);
	n = snprintf(c->get_hdrs, sizeof(c->get_hdrs), "ETag: %s\r\nLast-Modified: %s\r\n",
		     c->etag, lm);
	r = preconditions(c, true);
	if (r == 304) {
		conn_respond(c, 304, c->get_hdrs, NULL, 0, 0, conn_finish);
		return;
	}
	if (r) {
		conn_error(c, r);
		return;
	}
	r = http_if_range(&c->req, &v) ? http_range(c->req.range, c->size, &first, &last) : 0;
	if (r < 0) {
		snprintf(extra, sizeof(extra), "Content-Range: bytes */%llu\r\n",
			 (unsigned long long)c->size);
		conn_respond(c, 416, extra, "416 Range Not Satisfiable\n", 26, 26, conn_finish);
		return;
	}
	n += snprintf(c->get_hdrs + n, sizeof(c->get_hdrs) - n, "Accept-Ranges: bytes\r\n");
	if (r == 0) {
		c->off = 0;
		c->last = c->size ? c->size - 1 : 0;
	} else {
		c->off = first;
		c->last = last;
		snprintf(c->get_hdrs + n, sizeof(c->get_hdrs) - n,
			 "Content-Range: bytes %llu-%llu/%llu\r\n", (unsigned long long)first,
			 (unsigned long long)last, (unsigned long long)c->size);
	}
	c->get_status = r ? 206 : 200;
	if (c->req.method == HTTP_HEAD || c->size == 0)
		get_head(c, conn_finish);
	else
		get_next(c);
}

static void get_statted(struct conn *c, struct fop *f, int res)
{
	if (res < 0 || !S_ISREG(f->stx.stx_mode)) {
		free(f);
		fail(c, res < 0 ? status_of_errno(c, res) : 404);
		return;
	}
	c->size = f->stx.stx_size;
	validators(c, &f->stx);
	c->file_nowait = (f->stx.stx_mask & STATX_MNT_ID) && mount_nowait(f->stx.stx_mnt_id);
	free(f);
	get_sized(c);
}

static void get_opened(struct conn *c, struct fop *f, int res)
{
	free(f);
	if (res < 0) {
		fail(c, status_of_errno(c, res));
		return;
	}
	c->file_fd = res;
	submit_statx(c, res, "", AT_EMPTY_PATH, get_statted);
}

/* The inline open's completion. -EXDEV: the path leaves the root's mount
 * (or the root): open it the usual way, on io-wq, which also gives the
 * usual answer to an escape. */
static void get_opened_here(struct conn *c, struct fop *f, int res)
{
	if (res == -EXDEV) {
		free(f);
		submit_open(c, c->w->s->root_fd, c->key, O_RDONLY, 0, get_opened);
		return;
	}
	get_opened(c, f, res);
}

/*
 * On a root whose mount honours IOCB_NOWAIT, the open is first tried inline
 * (no io-wq hop; io_uring looks the path up in the dentry cache only, and
 * goes to io-wq itself when it must wait) and confined to that mount
 * (RESOLVE_NO_XDEV), so that it can never reach a FUSE or network mount
 * inside the root, whose open could block this thread.
 */
void object_get(struct conn *c)
{
	struct server *s = c->w->s;
	struct io_uring_sqe sqe = { 0 };
	struct fop *f;

	if (!s->root_nowait) {
		submit_open(c, s->root_fd, c->key, O_RDONLY, 0, get_opened);
		return;
	}
	f = fop_new(c, 0);
	if (!f) {
		fail(c, 503);
		return;
	}
	snprintf(f->path, sizeof(f->path), "%s", c->key);
	f->opens = true;
	f->how.flags = O_RDONLY | O_CLOEXEC;
	f->how.resolve = RESOLVE_OBJD | RESOLVE_NO_XDEV;
	io_uring_prep_openat2(&sqe, s->root_fd, f->path, &f->how);
	if (fop_submit_nowait(c, f, &sqe, get_opened_here))
		fail(c, 503);
}

/* ---- PUT ---------------------------------------------------------------- */

static void put_body(struct conn *c);

static void put_done(struct conn *c, struct fop *f, int res)
{
	free(f);
	if (res < 0) {
		fail(c, status_of_errno(c, res));
		return;
	}
	conn_respond(c, c->existed ? 204 : 201, NULL, NULL, 0, 0, conn_finish);
}

static void put_renamed(struct conn *c, struct fop *f, int res)
{
	free(f);
	if (res < 0) {
		fail(c, res == -EISDIR || res == -ENOTEMPTY ? 409 : status_of_errno(c, res));
		return;
	}
	c->tmpname[0] = '\0';	/* it is the object now */
	submit_fsync(c, c->dir_fd, put_done);
}

static void put_synced(struct conn *c, struct fop *f, int res)
{
	struct io_uring_sqe sqe = { 0 };
	size_t tl = strlen(c->tmpname) + 1;

	if (res < 0) {
		free(f);
		fail(c, status_of_errno(c, res));
		return;
	}
	memcpy(f->path, c->tmpname, tl);
	snprintf(f->path + tl, sizeof(f->path) - tl, "%s", c->base);
	io_uring_prep_renameat(&sqe, c->dir_fd, f->path, c->dir_fd, f->path + tl, 0);
	if (fop_submit(c, f, &sqe, put_renamed))
		fail(c, 503);
}

static void put_written(struct conn *c, struct fop *f, int res)
{
	struct io_uring_sqe sqe = { 0 };

	if (res <= 0) {
		free(f);
		fail(c, res == 0 ? 500 : status_of_errno(c, res));
		return;
	}
	f->sent += res;
	c->off += res;
	if (f->sent < f->len) {
		io_uring_prep_write(&sqe, c->tmp_fd, f->buf + f->sent, f->len - f->sent, c->off);
		if (fop_submit(c, f, &sqe, put_written))
			fail(c, 503);
		return;
	}
	free(f);
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
	} else if (res < 0 && rctx_err(c->ctx)) {
		conn_abort(c, cancel_why(c));	/* hang-up, shutdown */
	} else if (res < 0) {
		c->why = "deadline-body";
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
	if (conn_submit(c, c->req_ctx, &sqe, recv_body_cb, c))
		fail(c, 503);
}

static void put_write(struct conn *c, struct fop *f, size_t n)
{
	struct io_uring_sqe sqe = { 0 };

	f->len = n;
	io_uring_prep_write(&sqe, c->tmp_fd, f->buf, n, c->off);
	if (fop_submit(c, f, &sqe, put_written))
		fail(c, 503);
}

/*
 * A chunked body: decode what the buffer holds, up to OBJD_CHUNK bytes of
 * data, into one write; receive more when it holds no data. The decoded
 * length is held to --max-body (413) before anything beyond it is written.
 */
static void put_chunked(struct conn *c)
{
	struct fop *f = fop_new(c, OBJD_CHUNK);
	size_t used = 0, n = 0;
	struct http_slice d;
	int r = 0;

	if (!f) {
		fail(c, 503);
		return;
	}
	while (n < OBJD_CHUNK) {
		r = http_chunk_next(&c->chunk, c->in + used, c->in_len - used, OBJD_CHUNK - n, &d);
		if (r <= 0)
			break;
		memcpy(f->buf + n, d.p, d.n);
		n += d.n;
		used += r;
	}
	memmove(c->in, c->in + used, c->in_len - used);
	c->in_len -= used;
	if (r < 0 || c->chunk.total > c->w->s->o.max_body) {
		free(f);
		c->why = r < 0 ? "bad-chunked-body" : "max-body";
		fail(c, r < 0 ? 400 : 413);
		return;
	}
	if (c->chunk.state == HTTP_CHUNK_DONE)
		c->body_left = 0;	/* what follows is the next request */
	if (n) {
		put_write(c, f, n);
		return;
	}
	free(f);
	if (c->body_left == 0)
		put_body(c);
	else if (c->in_len < c->in_cap)
		recv_body(c);
	else
		fail(c, 400);	/* cannot be: a line fits (HTTP_CHUNK_LINE_MAX) */
}

/* Write what the buffer holds of the body, or receive more of it. */
static void put_body(struct conn *c)
{
	struct fop *f;
	size_t n;

	if (c->body_left == 0) {
		submit_fsync(c, c->tmp_fd, put_synced);
		return;
	}
	if (c->req.chunked) {
		put_chunked(c);
		return;
	}
	if (c->in_len == 0) {
		recv_body(c);
		return;
	}
	n = c->in_len < c->body_left ? c->in_len : c->body_left;
	if (n > OBJD_CHUNK)
		n = OBJD_CHUNK;
	f = fop_new(c, n);
	if (!f) {
		fail(c, 503);
		return;
	}
	memcpy(f->buf, c->in, n);
	memmove(c->in, c->in + n, c->in_len - n);
	c->in_len -= n;
	c->body_left -= n;
	put_write(c, f, n);
}

static void put_tmp_opened(struct conn *c, struct fop *f, int res)
{
	free(f);
	if (res < 0) {
		c->tmpname[0] = '\0';
		fail(c, status_of_errno(c, res));
		return;
	}
	c->tmp_fd = res;
	c->off = 0;
	/* No 100 to an HTTP/1.0 client (RFC 9110 10.1.1). */
	if (c->req.expect_continue && c->req.minor >= 1 && c->in_len < c->body_left)
		conn_respond(c, 100, NULL, NULL, 0, 0, put_body);
	else
		put_body(c);
}

/* The key's current state (not followed if a symlink): its validators
 * decide If-Match and If-None-Match, before the body is read. */
static void put_statted(struct conn *c, struct fop *f, int res)
{
	bool isdir = res == 0 && S_ISDIR(f->stx.stx_mode);
	int pre;

	if (res == 0)
		validators(c, &f->stx);
	free(f);
	c->existed = res == 0;
	if (isdir) {
		fail(c, 409);
		return;
	}
	pre = preconditions(c, c->existed);
	if (pre) {
		fail(c, pre);
		return;
	}
	snprintf(c->tmpname, sizeof(c->tmpname), OBJD_TMP_PREFIX "%d.%d.%lu",
		 (int)getpid(), c->w->idx, ++c->w->seq);
	submit_open(c, c->dir_fd, c->tmpname, O_WRONLY | O_CREAT | O_EXCL, 0644, put_tmp_opened);
}

static void put_dir_opened(struct conn *c, struct fop *f, int res)
{
	free(f);
	if (res < 0) {
		fail(c, res == -ENOENT || res == -ENOTDIR ? 409 : status_of_errno(c, res));
		return;
	}
	c->dir_fd = res;
	submit_statx(c, c->dir_fd, c->base, AT_SYMLINK_NOFOLLOW, put_statted);
}

void object_put(struct conn *c)
{
	struct server *s = c->w->s;

	if (!c->req.has_length && !c->req.chunked) {
		c->keep_alive = false;
		conn_error(c, 411);
		return;
	}
	if (c->req.content_length > s->o.max_body) {
		c->keep_alive = false;
		conn_error(c, 413);
		return;
	}
	/* A chunked body's length is known at its end: until then, ~0 left. */
	c->body_left = c->req.chunked ? UINT64_MAX : c->req.content_length;
	memset(&c->chunk, 0, sizeof(c->chunk));
	key_split(c->key, &c->dir, &c->base);
	submit_open(c, s->root_fd, c->dir, O_RDONLY | O_DIRECTORY, 0, put_dir_opened);
}

/* ---- DELETE ------------------------------------------------------------- */

static void del_unlinked(struct conn *c, struct fop *f, int res)
{
	free(f);
	if (res < 0) {
		fail(c, status_of_errno(c, res));
		return;
	}
	submit_fsync(c, c->dir_fd, put_done);
}

static void del_unlink(struct conn *c)
{
	struct io_uring_sqe sqe = { 0 };
	struct fop *f = fop_new(c, 0);

	if (f) {
		snprintf(f->path, sizeof(f->path), "%s", c->base);
		io_uring_prep_unlinkat(&sqe, c->dir_fd, f->path, 0);
	}
	submit_or_fail(c, f, &sqe, del_unlinked);
}

/* A missing key is 404 whatever the preconditions (RFC 9110 13.2.1). */
static void del_statted(struct conn *c, struct fop *f, int res)
{
	int pre = 0;

	if (res == 0) {
		validators(c, &f->stx);
		pre = preconditions(c, true);
	}
	free(f);
	if (res < 0 || pre) {
		fail(c, res < 0 ? status_of_errno(c, res) : pre);
		return;
	}
	del_unlink(c);
}

/* With preconditions, the key is stat-ed before it is unlinked. */
static void del_dir_opened(struct conn *c, struct fop *f, int res)
{
	free(f);
	if (res < 0) {
		fail(c, status_of_errno(c, res));
		return;
	}
	c->dir_fd = res;
	c->existed = true;	/* 204 */
	if (http_has_preconditions(&c->req))
		submit_statx(c, c->dir_fd, c->base, AT_SYMLINK_NOFOLLOW, del_statted);
	else
		del_unlink(c);
}

void object_delete(struct conn *c)
{
	key_split(c->key, &c->dir, &c->base);
	submit_open(c, c->w->s->root_fd, c->dir, O_RDONLY | O_DIRECTORY, 0, del_dir_opened);
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
		close_async(c->w, c->dir_fd);
		return;
	}
	cl->w = c->w;
	cl->dir_fd = c->dir_fd;
	snprintf(cl->name, sizeof(cl->name), "%s", c->tmpname);
	io_uring_prep_unlinkat(&sqe, cl->dir_fd, cl->name, 0);
	if (rctx_submit(c->w->ring, rctx_background(), &sqe, cleanup_cb, cl)) {
		close_async(c->w, cl->dir_fd);
		free(cl);
	}
}

/* Close the request's files; after a failure, remove a PUT's temporary. */
void object_release(struct conn *c, bool failed)
{
	close_async(c->w, c->file_fd);
	close_async(c->w, c->tmp_fd);
	if (failed && c->tmpname[0] && c->dir_fd >= 0)
		unlink_tmp(c);
	else
		close_async(c->w, c->dir_fd);
	c->file_fd = c->tmp_fd = c->dir_fd = -1;
	c->tmpname[0] = '\0';
	c->body_left = 0;
}
