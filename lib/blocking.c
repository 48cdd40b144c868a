/* SPDX-License-Identifier: MIT */
/*
 * Blocking calls in the Go style, on the calling thread's own ring.
 *
 * Two policies (docs/stuck-io.md):
 *  - direct: reads and writes on sockets and pipes (FIFOs), recv, send,
 *    accept, connect, poll, and sleep (a timer). The kernel can always abort
 *    these (they are poll-driven), so the caller's memory is used as is and
 *    the call returns only after the request's CQE.
 *  - owned: reads and writes on every other fd (regular files, block devices,
 *    and character devices too, since not all of them are poll-driven: see
 *    needs_owned()), fsync and openat. Issued I/O on these may be
 *    impossible to abort (a hung disk, a FUSE server that never answers).
 *    The request uses memory the library owns (a bounce buffer, a
 *    copy of the path) and IOSQE_ASYNC, so the submitting thread never
 *    blocks in the kernel; once the context is done the call returns at
 *    once and abandons the request, whose memory is freed (and whose late
 *    fd is closed) when the kernel finally completes it.
 */
#include <fcntl.h>
#include <sys/uio.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

/* ---- the thread's ring ---------------------------------------------------- */

static pthread_key_t ring_key;
static pthread_once_t ring_key_once = PTHREAD_ONCE_INIT;
static __thread struct rctx_ring *tls_ring;

/* Thread exit: a ring the kernel would not empty in time goes to the
 * runtime thread, which frees it once the kernel lets go. */
static void thread_ring_exit(void *p)
{
	struct rctx_ring *ring = p;

	tls_ring = NULL;
	if (rctx__ring_shutdown(ring, rctx_now() + 100000000LL) == 0 ||
	    rctx__rt_adopt(ring) < 0)
		rctx__ring_free(ring); /* empty, or the process is exiting */
}

static void make_key(void)
{
	pthread_key_create(&ring_key, thread_ring_exit);
}

RCTX_API rctx_ring_t *rctx_thread_ring(void)
{
	ERRNO_GUARD;
	struct rctx_ring *ring;
	int ret;

	if (likely(tls_ring))
		return tls_ring;
	pthread_once(&ring_key_once, make_key);
	ret = rctx_ring_create(&ring, 64);
	if (ret < 0)
		return ERRNO_FAIL(-ret);
	tls_ring = ring;
	pthread_setspecific(ring_key, ring);
	return ring;
}

/* ---- direct requests: sockets, pipes, timers ------------------------------- */

struct bop {
	int res;
	bool done;
};

static void bop_cb(void *arg, int res, uint32_t flags)
{
	struct bop *b = arg;

	if (flags & IORING_CQE_F_MORE)
		return;
	b->res = res;
	b->done = true;
}

/* The context's error if the result only says the request was cut short. */
int rctx__map_result(rctx_t *ctx, int res)
{
	int e;

	if (res != -ECANCELED && res != -EINTR)
		return res;
	/* A deadline link timeout can beat the runtime's timer by a hair:
	 * expire the context here so its error agrees with ours. */
	e = rctx__expire_due(ctx);
	return e ? e : res;
}

/*
 * Submit sqe under ctx on this thread's ring and wait for its completion:
 * the kernel can always abort these, so the caller's memory is safe to use
 * and the call returns only once the kernel is done with it.
 */
static int direct(rctx_t *ctx, struct io_uring_sqe *sqe)
{
	struct rctx_ring *ring;
	struct bop b = { 0 };
	int ret;

	if (!ctx)
		return -EINVAL;
	ring = rctx_thread_ring();
	if (!ring)
		return -ENOMEM;
	if (rctx__ring_in_run(ring))
		return -EDEADLK;
	ret = rctx_submit(ring, ctx, sqe, bop_cb, &b);
	if (ret < 0)
		return ret;
	while (!b.done)
		rctx_ring_run(ring, RCTX_FOREVER);
	return rctx__map_result(ctx, b.res);
}

/* ---- kept requests: files, fsync, openat ---------------------------------- */

/* Sleep until k completes or ctx is done; true if it completed. */
static bool kept_wait(struct rctx_kept *k, rctx_t *ctx)
{
	for (;;) {
		int seq = atomic_load_explicit(&k->seq, memory_order_acquire);

		if (atomic_load_explicit(&k->state, memory_order_acquire) == KEPT_DONE)
			return true;
		if (rctx_err(ctx) && rctx__kept_abandon(k))
			return false;
		if (atomic_load_explicit(&k->state, memory_order_acquire) == KEPT_DONE)
			return true;
		rctx__futex_wait(&k->seq, seq, RCTX_FOREVER);
	}
}

/*
 * Run k's prepared SQE under ctx through the keeper (lib/keeper.c) and wait.
 * Returns the result (a read's bytes copied from k->buf to out), or the
 * context's error once it is done: the request is then abandoned to the
 * keeper. Consumes the caller's reference to k.
 */
static int run_kept(rctx_t *ctx, struct rctx_kept *k, void *out)
{
	rctx_after_t *after = NULL;
	int ret;

	ret = rctx_err(ctx);
	if (ret) {
		rctx__kept_put(k);
		return ret; /* done already: no I/O */
	}
	if (rctx__rt_self() || (tls_ring && rctx__ring_in_run(tls_ring))) {
		rctx__kept_put(k);
		return -EDEADLK; /* the runtime would wait for itself; a
				    callback must not block its ring */
	}
	k->sqe.flags |= IOSQE_ASYNC; /* never block the runtime thread */
	if (rctx_governor(ctx)) {
		atomic_fetch_add_explicit(&k->refs, 1, memory_order_relaxed); /* the after-func's */
		after = rctx_after_func(ctx, rctx__kept_ctx_done, k);
		if (!after) {
			atomic_fetch_sub_explicit(&k->refs, 1, memory_order_relaxed);
			rctx__kept_put(k);
			return -ENOMEM;
		}
	}
	k->ctx = rctx__ref(ctx);
	atomic_fetch_add_explicit(&k->refs, 1, memory_order_relaxed); /* the keeper's */
	rctx__watch_arm(ctx); /* it may wait for the disk now */
	ret = rctx__rt_keep(k);
	if (ret < 0) {
		rctx__unref(k->ctx);
		atomic_fetch_sub_explicit(&k->refs, 1, memory_order_relaxed);
	} else if (kept_wait(k, ctx)) {
		ret = rctx__map_result(ctx, k->res);
		if (ret > 0 && out) {
			kernel_wrote(k->buf, (size_t)ret);
			memcpy(out, k->buf, (size_t)ret);
		}
	} else {
		ret = rctx_err(ctx);
	}
	if (after) {
		if (rctx_after_stop(after))
			rctx__kept_put(k); /* fn will never run */
		rctx_after_release(after);
	}
	rctx__kept_put(k);
	return ret;
}

/* What a blocking call does with fd. */
enum fd_kind { FD_DIRECT, FD_FILE, FD_OWNED };

/*
 * Only sockets and FIFOs are sure to be poll-driven, hence abortable:
 * everything else is owned. Regular files also get the read fast path.
 * statx with AT_STATX_DONT_SYNC: what the kernel has, never a round trip to
 * a file system that may not answer.
 */
static enum fd_kind fd_kind(int fd)
{
	struct statx stx;

	if (statx(fd, "", AT_EMPTY_PATH | AT_STATX_DONT_SYNC, STATX_TYPE, &stx) < 0)
		return FD_DIRECT; /* let the kernel report the bad fd */
	if (S_ISSOCK(stx.stx_mode) || S_ISFIFO(stx.stx_mode))
		return FD_DIRECT;
	return S_ISREG(stx.stx_mode) ? FD_FILE : FD_OWNED;
}

/*
 * A read of a regular file that completes without blocking, on the
 * caller's thread: a page-cache hit on a file system that reads without
 * blocking (RWF_NOWAIT; FUSE refuses it at once). Not for O_DIRECT files,
 * whose direct I/O would wait for the device. -EAGAIN if it would block.
 */
static ssize_t read_nowait(int fd, void *buf, size_t len, int64_t off)
{
	struct iovec iov = { .iov_base = buf, .iov_len = len };
	int fl = fcntl(fd, F_GETFL);
	ssize_t n;

	if (fl < 0 || (fl & O_DIRECT))
		return -EAGAIN;
	n = preadv2(fd, &iov, 1, off, RWF_NOWAIT);
	if (n < 0)
		return errno == EOPNOTSUPP ? -EAGAIN : -errno;
	rctx__kept_count_nowait();
	return n;
}

/* Locate k's file for its lane; writes, truncates and syncs check the
 * fence. Frees k on failure. */
static int kept_locate(struct rctx_kept *k, int fd, const char *path, bool fenced_op)
{
	int ret = rctx__kept_locate(k, fd, path);

	if (!ret && fenced_op)
		ret = rctx__kept_fence_check(k, NULL);
	if (ret)
		rctx__kept_put(k);
	return ret;
}

/* ---- the calls ------------------------------------------------------------- */

/*
 * A read or write (opcode) of len bytes at off: on a poll-driven fd the
 * caller's buffer is used directly; otherwise the request owns a bounce
 * buffer (copied from buf for a write, to buf for a read).
 */
static ssize_t file_rw(rctx_t *ctx, int opcode, int fd, void *buf, size_t len,
		       int64_t off)
{
	bool is_read = opcode == IORING_OP_READ;
	enum fd_kind kind = fd_kind(fd);
	struct io_uring_sqe sqe;
	struct rctx_kept *k;
	ssize_t ret;

	if (!ctx || (!buf && len))
		return -EINVAL;
	if (len > INT_MAX)
		len = INT_MAX;
	if (kind == FD_DIRECT) {
		io_uring_prep_rw(opcode, &sqe, fd, buf, (unsigned)len, (uint64_t)off);
		ret = direct(ctx, &sqe);
		if (ret > 0 && is_read)
			kernel_wrote(buf, (size_t)ret);
		return ret;
	}
	if (is_read && kind == FD_FILE) {
		ret = rctx_err(ctx);
		if (ret)
			return ret; /* done already: no I/O */
		ret = read_nowait(fd, buf, len, off);
		if (ret != -EAGAIN)
			return ret;
	}
	k = rctx__kept_new(len ? len : 1);
	if (!k)
		return -ENOMEM;
	ret = kept_locate(k, fd, NULL, !is_read);
	if (ret)
		return ret;
	k->writes = !is_read;
	if (!is_read && len)
		memcpy(k->buf, buf, len);
	io_uring_prep_rw(opcode, &k->sqe, fd, k->buf, (unsigned)len, (uint64_t)off);
	return run_kept(ctx, k, is_read ? buf : NULL);
}

RCTX_API ssize_t rctx_read(rctx_t *ctx, int fd, void *buf, size_t len, int64_t off)
{
	ERRNO_GUARD;
	return file_rw(ctx, IORING_OP_READ, fd, buf, len, off);
}

RCTX_API ssize_t rctx_write(rctx_t *ctx, int fd, const void *buf, size_t len,
			    int64_t off)
{
	ERRNO_GUARD;
	return file_rw(ctx, IORING_OP_WRITE, fd, (void *)buf, len, off);
}

RCTX_API ssize_t rctx_recv(rctx_t *ctx, int fd, void *buf, size_t len, int flags)
{
	ERRNO_GUARD;
	struct io_uring_sqe sqe;
	ssize_t ret;

	if (!buf && len)
		return -EINVAL;
	io_uring_prep_recv(&sqe, fd, buf, len > INT_MAX ? INT_MAX : len, flags);
	ret = direct(ctx, &sqe);
	if (ret > 0)
		kernel_wrote(buf, (size_t)ret);
	return ret;
}

RCTX_API ssize_t rctx_send(rctx_t *ctx, int fd, const void *buf, size_t len, int flags)
{
	ERRNO_GUARD;
	struct io_uring_sqe sqe;

	if (!buf && len)
		return -EINVAL;
	io_uring_prep_send(&sqe, fd, buf, len > INT_MAX ? INT_MAX : len, flags);
	return direct(ctx, &sqe);
}

RCTX_API int rctx_accept(rctx_t *ctx, int fd, struct sockaddr *addr,
			 socklen_t *addrlen, int flags)
{
	ERRNO_GUARD;
	struct io_uring_sqe sqe;
	int ret;

	io_uring_prep_accept(&sqe, fd, addr, addrlen, flags);
	ret = direct(ctx, &sqe);
	if (ret >= 0 && addr && addrlen) {
		kernel_wrote(addrlen, sizeof(*addrlen));
		kernel_wrote(addr, *addrlen);
	}
	return ret;
}

RCTX_API int rctx_connect(rctx_t *ctx, int fd, const struct sockaddr *addr,
			  socklen_t addrlen)
{
	ERRNO_GUARD;
	struct io_uring_sqe sqe;

	if (!addr)
		return -EINVAL;
	io_uring_prep_connect(&sqe, fd, addr, addrlen);
	return direct(ctx, &sqe);
}

RCTX_API int rctx_poll(rctx_t *ctx, int fd, unsigned poll_mask)
{
	ERRNO_GUARD;
	struct io_uring_sqe sqe;

	io_uring_prep_poll_add(&sqe, fd, poll_mask);
	return direct(ctx, &sqe);
}

RCTX_API int rctx_sleep(rctx_t *ctx, int64_t rel_ns)
{
	ERRNO_GUARD;
	struct __kernel_timespec ts;
	struct io_uring_sqe sqe;
	int ret;

	if (rel_ns < 0)
		return -EINVAL;
	ts = ns_to_kts(rel_ns);
	io_uring_prep_timeout(&sqe, &ts, 0, 0);
	ret = direct(ctx, &sqe);
	return ret == -ETIME ? 0 : ret;
}

RCTX_API int rctx_fsync(rctx_t *ctx, int fd, unsigned fsync_flags)
{
	ERRNO_GUARD;
	struct rctx_kept *k;
	int ret;

	if (!ctx)
		return -EINVAL;
	k = rctx__kept_new(0);
	if (!k)
		return -ENOMEM;
	ret = kept_locate(k, fd, NULL, true);
	if (ret)
		return ret;
	io_uring_prep_fsync(&k->sqe, fd, fsync_flags);
	return run_kept(ctx, k, NULL);
}

RCTX_API int rctx_ftruncate(rctx_t *ctx, int fd, int64_t len)
{
	ERRNO_GUARD;
	struct rctx_kept *k;
	int ret;

	if (!ctx || len < 0)
		return -EINVAL;
	k = rctx__kept_new(0);
	if (!k)
		return -ENOMEM;
	ret = rctx__kept_prep_ftruncate(k, fd, len);
	if (ret) {
		rctx__kept_put(k);
		return ret;
	}
	ret = kept_locate(k, fd, NULL, true);
	if (ret)
		return ret;
	return run_kept(ctx, k, NULL);
}

RCTX_API int rctx_openat(rctx_t *ctx, int dirfd, const char *path, int flags,
			 mode_t mode)
{
	ERRNO_GUARD;
	struct rctx_kept *k;
	int ret;

	if (!ctx || !path)
		return -EINVAL;
	k = rctx__kept_new(strlen(path) + 1);
	if (!k)
		return -ENOMEM;
	ret = kept_locate(k, dirfd, path, false);
	if (ret)
		return ret;
	strcpy(k->buf, path);
	k->close_late = true;
	io_uring_prep_openat(&k->sqe, dirfd, k->buf, flags, mode);
	return run_kept(ctx, k, NULL);
}
