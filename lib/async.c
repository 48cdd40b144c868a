/* SPDX-License-Identifier: MIT */
/*
 * Abandonable file requests for callback code (rctx_async_*()): the
 * stuck-disk policy of the blocking calls, delivered to a ring.
 *
 * Each request is a kept request (lib/keeper.c) whose memory (buffer, path,
 * statx, open_how) the library owns. It is held by its owner ring (counted
 * in its pending) from the call until its callback, which runs on the
 * owner's thread from rctx_ring_run(), posted there (rctx__ring_post()) by
 * whichever comes first:
 *  - its completion, on the runtime thread, which submitted it through the
 *    request's device lane (lib/lane.c);
 *  - its context's end: an after-func gives the request up (abandoned if
 *    the kernel holds it, dropped if it still waited in its lane);
 *  - the ring's teardown (rctx__ring_cancel_all()), which gives it up too.
 * A read is first tried at once on the owner's thread with preadv2() and
 * RWF_NOWAIT: a page-cache hit is read there and then (its callback posted
 * to the owner ring, delivered in the same rctx_ring_run() when the call
 * comes from a callback), with no thread hop, no round trip through the
 * kernel's ring and nothing the kernel could hold; only -EAGAIN or
 * -EOPNOTSUPP (a miss, or a file system that cannot read without
 * blocking) sends it to its lane.
 *
 * References of a request: the owner's (dropped after the callback), the
 * keeper's (dropped when the kernel lets go, or when it is dropped from its
 * lane), the after-func's.
 */
#include <fcntl.h>
#include <sys/uio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "internal.h"

/* What the callback's data points to. */
enum { DATA_NONE, DATA_BUF, DATA_STATX };


/* Owner thread: run the callback with the outcome. */
static void deliver(struct rctx_post *p)
{
	struct rctx_kept *k = container_of(p, struct rctx_kept, post);
	int state = atomic_load_explicit(&k->state, memory_order_acquire);
	unsigned flags = state == KEPT_ABANDONED ? RCTX_ASYNC_ABANDONED : 0;
	void *data = NULL;
	int res;

	if (state == KEPT_DONE) {
		res = rctx__map_result(k->uctx, k->res);
		if (res >= 0 && k->data != DATA_NONE)
			data = k->buf;
		if (res > 0 && k->data == DATA_BUF)
			kernel_wrote(data, (size_t)res);
		else if (res == 0 && k->data == DATA_STATX)
			kernel_wrote(data, sizeof(struct statx));
	} else {
		res = rctx_err(k->uctx);
		if (!res)
			res = -ECANCELED; /* the ring's teardown */
	}
	if (k->after) {
		if (rctx_after_stop(k->after))
			rctx__kept_put(k); /* the after-func will never run */
		rctx_after_release(k->after);
	}
	k->acb(k->aarg, res, data, flags);
	rctx__kept_put(k);
}

/* Owner thread, the ring's teardown: give the request up. */
static void abandon(struct rctx_post *p)
{
	struct rctx_kept *k = container_of(p, struct rctx_kept, post);

	if (rctx__kept_abandon(k))
		rctx__ring_post(k->owner, &k->post);
}

static struct rctx_kept *async_new(struct rctx_ring *ring, rctx_t *ctx, size_t buflen,
				   rctx_async_cb_t cb, void *arg)
{
	struct rctx_kept *k = rctx__kept_new(buflen);

	if (!k)
		return NULL;
	k->owner = ring;
	k->acb = cb;
	k->aarg = arg;
	k->post.deliver = deliver;
	k->post.abandon = abandon;
	k->uctx = rctx__ref(ctx);
	return k;
}

static void async_free(struct rctx_kept *k)
{
	rctx__kept_put(k);
}

/*
 * Send k, prepared, to its lane through the runtime thread; once this
 * returns 0 its callback will run (a done context: no I/O, the error at
 * the next run). On failure nothing is held and the caller frees k.
 */
static int async_keep(struct rctx_kept *k)
{
	rctx_t *ctx = k->uctx;
	int ret;

	rctx__ring_hold(k->owner, &k->post);
	if (rctx_err(ctx)) {
		atomic_store_explicit(&k->state, KEPT_DROPPED, memory_order_relaxed);
		rctx__ring_post(k->owner, &k->post);
		return 0;
	}
	k->sqe.flags |= IOSQE_ASYNC; /* never block the runtime thread */
	if (rctx_governor(ctx)) {
		atomic_fetch_add_explicit(&k->refs, 1, memory_order_relaxed); /* the after-func's */
		k->after = rctx_after_func(ctx, rctx__kept_ctx_done, k);
		if (!k->after) {
			atomic_fetch_sub_explicit(&k->refs, 1, memory_order_relaxed);
			ret = -ENOMEM;
			goto out_unhold;
		}
	}
	k->ctx = rctx__ref(ctx);
	atomic_fetch_add_explicit(&k->refs, 1, memory_order_relaxed); /* the keeper's */
	rctx__watch_arm(ctx); /* it may wait for the disk now */
	ret = rctx__rt_keep(k);
	if (ret == 0)
		return 0;
	rctx__unref(k->ctx);
	k->ctx = NULL;
	atomic_fetch_sub_explicit(&k->refs, 1, memory_order_relaxed);
	if (!rctx__kept_abandon(k))
		return 0; /* its context ended meanwhile: already posted */
	if (rctx_after_stop(k->after))
		atomic_fetch_sub_explicit(&k->refs, 1, memory_order_relaxed);
	rctx_after_release(k->after);
	k->after = NULL;
out_unhold:
	rctx__ring_unhold(k->owner, &k->post);
	return ret;
}

/* Common checks; the runtime thread must not wait for its own keeper. */
static int async_valid(struct rctx_ring *ring, rctx_t *ctx, rctx_async_cb_t cb)
{
	if (!ring || !ctx || !cb)
		return -EINVAL;
	if (rctx__rt_self())
		return -EDEADLK;
	return 0;
}

/* ---- reads: RWF_NOWAIT on the caller's thread first ------------------------ */

/* The read would block: to its lane. 0, or the error for the callback. */
static int read_slow(struct rctx_kept *k)
{
	int ret = rctx__kept_locate(k, k->sqe.fd, NULL);

	if (ret < 0)
		return ret;
	k->ab = rctx__ring_ab_stats(k->owner);
	k->sqe.rw_flags = 0;
	return async_keep(k);
}

/* A done context's read, short-circuited by the ring: its error. */
static void read_done_ctx_cb(void *arg, int res, uint32_t flags)
{
	struct rctx_kept *k = arg;

	(void)flags;
	k->acb(k->aarg, res, NULL, 0);
	async_free(k);
}

/*
 * Read what the page cache holds, at once on the caller's thread:
 * preadv2() with RWF_NOWAIT never waits for the disk. The outcome is
 * posted to the owner ring, whose rctx_ring_run() delivers it in the same
 * run when the call comes from one of its callbacks: a request served from
 * the page cache needs no round trip through the kernel's ring. false: it
 * would block (a miss, or a file system that cannot say, FUSE).
 */
static bool read_now(struct rctx_kept *k, int fd, size_t len, int64_t off)
{
	ssize_t n = preadv2(fd, &(struct iovec){ k->buf, len }, 1, off, RWF_NOWAIT);

	if (n < 0 && (errno == EAGAIN || errno == EOPNOTSUPP))
		return false;
	if (n >= 0)
		rctx__kept_count_nowait();
	k->res = n < 0 ? -errno : (int)n;
	atomic_store_explicit(&k->state, KEPT_DONE, memory_order_release);
	rctx__ring_hold(k->owner, &k->post);
	rctx__ring_post(k->owner, &k->post);
	return true;
}

RCTX_API int rctx_async_read(rctx_ring_t *ring, rctx_t *ctx, int fd, size_t len,
			     int64_t off, rctx_async_cb_t cb, void *arg)
{
	ERRNO_GUARD;
	struct rctx_kept *k;
	int ret = async_valid(ring, ctx, cb);

	if (ret)
		return ret;
	if (len > INT_MAX || off < 0)
		return -EINVAL;
	if (fd < 0)
		return -EBADF;
	k = async_new(ring, ctx, len ? len : 1, cb, arg);
	if (!k)
		return -ENOMEM;
	k->data = DATA_BUF;
	io_uring_prep_read(&k->sqe, fd, k->buf, (unsigned)len, (uint64_t)off);
	if (rctx_err(ctx)) {
		/* No I/O: the ring answers with the context's error. */
		ret = rctx_submit(ring, ctx, &k->sqe, read_done_ctx_cb, k);
	} else if (read_now(k, fd, len, off)) {
		return 0;
	} else {
		ret = read_slow(k);
	}
	if (ret < 0)
		async_free(k);
	return ret;
}

/* ---- everything else: straight to the lane ------------------------------ */

/* Locate k's file (fd) or directory (dirfd, path), check the fence for
 * writes, and keep it. Frees k on failure. */
static int async_start(struct rctx_kept *k, int fd, const char *path)
{
	int ret = rctx__kept_locate(k, fd, path);

	k->ab = rctx__ring_ab_stats(k->owner);
	if (!ret && (k->writes || k->sqe.opcode == IORING_OP_FSYNC))
		ret = rctx__kept_fence_check(k, k->ab);
	if (!ret)
		ret = async_keep(k);
	if (ret)
		async_free(k);
	return ret;
}

RCTX_API int rctx_async_write(rctx_ring_t *ring, rctx_t *ctx, int fd, const void *buf,
			      size_t len, int64_t off, rctx_async_cb_t cb, void *arg)
{
	ERRNO_GUARD;
	struct rctx_kept *k;
	int ret = async_valid(ring, ctx, cb);

	if (ret)
		return ret;
	if ((!buf && len) || len > INT_MAX || off < 0)
		return -EINVAL;
	k = async_new(ring, ctx, len ? len : 1, cb, arg);
	if (!k)
		return -ENOMEM;
	if (len)
		memcpy(k->buf, buf, len);
	k->writes = true;
	io_uring_prep_write(&k->sqe, fd, k->buf, (unsigned)len, (uint64_t)off);
	return async_start(k, fd, NULL);
}

#define SEGS_FLAGS (RCTX_SEGS_SYNC | RCTX_SEGS_DATASYNC)

/* The segments' total length, or -EINVAL for a bad segment or total. */
static int64_t segs_total(const struct iovec *iov, const int64_t *off, unsigned n)
{
	int64_t total = 0;

	for (unsigned i = 0; i < n; i++) {
		if ((!iov[i].iov_base && iov[i].iov_len) || off[i] < 0 ||
		    iov[i].iov_len > INT_MAX - (uint64_t)total)
			return -EINVAL;
		total += (int64_t)iov[i].iov_len;
	}
	return total;
}

RCTX_API int rctx_async_write_segs(rctx_ring_t *ring, rctx_t *ctx, int fd,
				   const struct iovec *iov, const int64_t *off, unsigned n,
				   unsigned flags, rctx_async_cb_t cb, void *arg)
{
	ERRNO_GUARD;
	struct rctx_kept *k;
	int64_t total;
	char *p;
	int ret = async_valid(ring, ctx, cb);

	if (ret)
		return ret;
	if (!iov || !off || !n || n > RCTX_SEGS_MAX || (flags & ~SEGS_FLAGS) ||
	    (flags & SEGS_FLAGS) == SEGS_FLAGS)
		return -EINVAL;
	total = segs_total(iov, off, n);
	if (total < 0)
		return (int)total;
	k = async_new(ring, ctx, total ? (size_t)total : 1, cb, arg);
	if (!k)
		return -ENOMEM;
	k->chain = rctx__chain_new(n + (flags ? 1 : 0));
	if (!k->chain) {
		async_free(k);
		return -ENOMEM;
	}
	p = k->buf;
	for (unsigned i = 0; i < n; i++) {
		if (iov[i].iov_len)
			memcpy(p, iov[i].iov_base, iov[i].iov_len);
		io_uring_prep_write(&k->chain->sqes[i], fd, p, (unsigned)iov[i].iov_len,
				    (uint64_t)off[i]);
		p += iov[i].iov_len;
	}
	if (flags)
		io_uring_prep_fsync(&k->chain->sqes[n], fd,
				    flags & RCTX_SEGS_DATASYNC ? IORING_FSYNC_DATASYNC : 0);
	k->writes = true;
	return async_start(k, fd, NULL);
}

RCTX_API int rctx_async_fsync(rctx_ring_t *ring, rctx_t *ctx, int fd, unsigned flags,
			      rctx_async_cb_t cb, void *arg)
{
	ERRNO_GUARD;
	struct rctx_kept *k;
	int ret = async_valid(ring, ctx, cb);

	if (ret)
		return ret;
	if (flags & ~IORING_FSYNC_DATASYNC)
		return -EINVAL;
	k = async_new(ring, ctx, 0, cb, arg);
	if (!k)
		return -ENOMEM;
	io_uring_prep_fsync(&k->sqe, fd, flags);
	return async_start(k, fd, NULL);
}

RCTX_API int rctx_async_ftruncate(rctx_ring_t *ring, rctx_t *ctx, int fd, int64_t len,
				  rctx_async_cb_t cb, void *arg)
{
	ERRNO_GUARD;
	struct rctx_kept *k;
	int ret = async_valid(ring, ctx, cb);

	if (ret)
		return ret;
	if (len < 0)
		return -EINVAL;
	k = async_new(ring, ctx, 0, cb, arg);
	if (!k)
		return -ENOMEM;
	ret = rctx__kept_prep_ftruncate(k, fd, len);
	if (ret) {
		async_free(k);
		return ret;
	}
	return async_start(k, fd, NULL);
}

/* A request with one or two copied paths after a fixed part of `fixed`
 * bytes at the head of its buffer. */
static struct rctx_kept *path_new(struct rctx_ring *ring, rctx_t *ctx, size_t fixed,
				  const char *p1, const char *p2, rctx_async_cb_t cb,
				  void *arg, char **c1, char **c2)
{
	size_t l1 = strlen(p1) + 1, l2 = p2 ? strlen(p2) + 1 : 0;
	struct rctx_kept *k = async_new(ring, ctx, fixed + l1 + l2, cb, arg);

	if (!k)
		return NULL;
	*c1 = (char *)k->buf + fixed;
	memcpy(*c1, p1, l1);
	if (p2) {
		*c2 = *c1 + l1;
		memcpy(*c2, p2, l2);
	}
	return k;
}

RCTX_API int rctx_async_openat2(rctx_ring_t *ring, rctx_t *ctx, int dirfd, const char *path,
				const struct open_how *how, rctx_async_cb_t cb, void *arg)
{
	ERRNO_GUARD;
	struct rctx_kept *k;
	struct open_how *h;
	char *p, *unused;
	int ret = async_valid(ring, ctx, cb);

	if (ret)
		return ret;
	if (!path || !how)
		return -EINVAL;
	k = path_new(ring, ctx, sizeof(*how), path, NULL, cb, arg, &p, &unused);
	if (!k)
		return -ENOMEM;
	h = k->buf;
	*h = *how;
	k->close_late = true;
	io_uring_prep_openat2(&k->sqe, dirfd, p, h);
	return async_start(k, dirfd, p);
}

RCTX_API int rctx_async_statx(rctx_ring_t *ring, rctx_t *ctx, int dirfd, const char *path,
			      int flags, unsigned mask, rctx_async_cb_t cb, void *arg)
{
	ERRNO_GUARD;
	struct rctx_kept *k;
	char *p, *unused;
	int ret = async_valid(ring, ctx, cb);

	if (ret)
		return ret;
	if (!path)
		return -EINVAL;
	k = path_new(ring, ctx, sizeof(struct statx), path, NULL, cb, arg, &p, &unused);
	if (!k)
		return -ENOMEM;
	k->data = DATA_STATX;
	io_uring_prep_statx(&k->sqe, dirfd, p, flags, mask, k->buf);
	return async_start(k, dirfd, p);
}

RCTX_API int rctx_async_renameat(rctx_ring_t *ring, rctx_t *ctx, int olddirfd,
				 const char *oldpath, int newdirfd, const char *newpath,
				 unsigned flags, rctx_async_cb_t cb, void *arg)
{
	ERRNO_GUARD;
	struct rctx_kept *k;
	char *o, *n;
	int ret = async_valid(ring, ctx, cb);

	if (ret)
		return ret;
	if (!oldpath || !newpath)
		return -EINVAL;
	k = path_new(ring, ctx, 0, oldpath, newpath, cb, arg, &o, &n);
	if (!k)
		return -ENOMEM;
	io_uring_prep_renameat(&k->sqe, olddirfd, o, newdirfd, n, flags);
	return async_start(k, olddirfd, o);
}

RCTX_API int rctx_async_unlinkat(rctx_ring_t *ring, rctx_t *ctx, int dirfd, const char *path,
				 int flags, rctx_async_cb_t cb, void *arg)
{
	ERRNO_GUARD;
	struct rctx_kept *k;
	char *p, *unused;
	int ret = async_valid(ring, ctx, cb);

	if (ret)
		return ret;
	if (!path)
		return -EINVAL;
	k = path_new(ring, ctx, 0, path, NULL, cb, arg, &p, &unused);
	if (!k)
		return -ENOMEM;
	io_uring_prep_unlinkat(&k->sqe, dirfd, p, flags);
	return async_start(k, dirfd, p);
}

/* ---- splice: a file into a pipe, through the file's lane ----------------- */

/* Is fd one end of the pipe whose other end has the inode ino (0: any)? */
static int pipe_end(int fd, ino_t *ino)
{
	struct stat st;

	if (fstat(fd, &st))
		return -errno;
	if (!S_ISFIFO(st.st_mode) || (*ino && st.st_ino != *ino))
		return -EINVAL;
	*ino = st.st_ino;
	return 0;
}

/*
 * The kernel runs every splice in io-wq (SPLICE_F_NONBLOCK does not keep a
 * page-cache miss from waiting for the disk), so a splice always takes its
 * lane. While it waits for the disk it holds the pipe's lock, so the pipe
 * is lent to the library until the callback: an abandoned request keeps it,
 * and it is closed (rctx__kept_put) once the kernel has let go.
 */
RCTX_API int rctx_async_splice(rctx_ring_t *ring, rctx_t *ctx, int fd, int64_t off,
			       const int pipefd[2], size_t len, unsigned flags,
			       rctx_async_cb_t cb, void *arg)
{
	ERRNO_GUARD;
	struct rctx_kept *k;
	ino_t ino = 0;
	int ret = async_valid(ring, ctx, cb);

	if (ret)
		return ret;
	if (!pipefd || pipefd[0] == pipefd[1] || len > INT_MAX || off < 0 ||
	    (flags & ~(unsigned)SPLICE_F_NONBLOCK))
		return -EINVAL;
	if (fd < 0)
		return -EBADF;
	ret = pipe_end(pipefd[0], &ino);
	if (!ret)
		ret = pipe_end(pipefd[1], &ino);
	if (ret)
		return ret;
	k = async_new(ring, ctx, 0, cb, arg);
	if (!k)
		return -ENOMEM;
	k->pipefd[0] = pipefd[0];
	k->pipefd[1] = pipefd[1];
	k->lent_pipe = true;
	io_uring_prep_splice(&k->sqe, fd, off, pipefd[1], -1, (unsigned)len, flags);
	return async_start(k, fd, NULL);
}
