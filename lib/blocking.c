/* SPDX-License-Identifier: MIT */
/*
 * Blocking calls in the Go style, on the calling thread's own ring.
 *
 * Two policies (docs/stuck-io.md):
 *  - direct: sockets, pipes, character devices and timers. The kernel can
 *    always abort these (they are poll-driven), so the caller's memory is
 *    used as is and the call returns only after the request's CQE.
 *  - owned: regular files, block devices, fsync and openat. Issued I/O on
 *    these may be impossible to abort (a hung disk, a FUSE server that never
 *    answers). The request uses memory the library owns (a bounce buffer, a
 *    copy of the path) and IOSQE_ASYNC, so the submitting thread never
 *    blocks in the kernel; once the context is done the call returns at
 *    once and abandons the request, whose memory is freed (and whose late
 *    fd is closed) when the kernel finally completes it.
 */
#include <fcntl.h>
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

/* Rings of exited threads whose requests the kernel would not let go of:
 * kept (not freed) so the kernel never writes into freed memory. */
static pthread_mutex_t orphan_lock = PTHREAD_MUTEX_INITIALIZER;
static struct orphan {
	struct orphan *next;
	struct rctx_ring *ring;
} *orphans;

static void thread_ring_exit(void *p)
{
	struct rctx_ring *ring = p;
	struct orphan *o;

	tls_ring = NULL;
	if (rctx__ring_shutdown(ring, rctx_now() + 100000000LL) == 0) {
		rctx__ring_free(ring);
		return;
	}
	o = rctx__malloc(sizeof(*o));
	if (!o)
		return; /* unreachable but never freed: still safe */
	pthread_mutex_lock(&orphan_lock);
	o->ring = ring;
	o->next = orphans;
	orphans = o;
	pthread_mutex_unlock(&orphan_lock);
}

static void make_key(void)
{
	pthread_key_create(&ring_key, thread_ring_exit);
}

RCTX_API rctx_ring_t *rctx_thread_ring(void)
{
	ERRNO_GUARD;
	struct rctx_ring *ring;

	if (likely(tls_ring))
		return tls_ring;
	pthread_once(&ring_key_once, make_key);
	if (rctx_ring_create(&ring, 64) < 0)
		return NULL;
	tls_ring = ring;
	pthread_setspecific(ring_key, ring);
	return ring;
}

/* ---- one blocking request ------------------------------------------------- */

struct bop {
	int res;
	bool done;
	bool abandoned;
	bool close_late;  /* an fd that arrives after abandonment is closed */
	void *buf;        /* owned bounce buffer / path copy */
};

static void bop_cb(void *arg, int res, uint32_t flags)
{
	struct bop *b = arg;

	if (flags & IORING_CQE_F_MORE)
		return;
	if (b->abandoned) {
		if (b->close_late && res >= 0)
			close(res);
		free(b->buf);
		free(b);
		return;
	}
	b->res = res;
	b->done = true;
}

/* The context's error if the result only says the request was cut short. */
static int map_result(rctx_t *ctx, int res)
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
 * Submit sqe under ctx on this thread's ring and wait for it. With an owned
 * (heap) bop the call returns as soon as ctx is done, and b->abandoned then
 * says that b now belongs to the callback; otherwise the caller frees it.
 * Returns the result, or a negative errno.
 */
static int run_blocking(rctx_t *ctx, struct io_uring_sqe *sqe, struct bop *b,
			bool owned)
{
	struct rctx_ring *ring = rctx_thread_ring();
	int ret;

	if (!ring)
		return -ENOMEM;
	if (rctx__ring_in_run(ring))
		return -EDEADLK;
	if (owned)
		sqe->flags |= IOSQE_ASYNC;
	ret = rctx_submit(ring, ctx, sqe, bop_cb, b);
	if (ret < 0)
		return ret;
	while (!b->done) {
		if (owned && rctx_err(ctx)) {
			/* Issue the queued cancel, then give the request up
			 * unless the kernel let go of it right away. */
			rctx_ring_run(ring, 0);
			if (b->done)
				break;
			b->abandoned = true;
			return rctx_err(ctx);
		}
		ret = rctx_ring_run(ring, RCTX_FOREVER);
		if (ret < 0 && ret != -EINTR && !b->done && owned) {
			/* A broken ring: give the request up, never its
			 * memory. (Direct requests must be waited for.) */
			b->abandoned = true;
			return ret;
		}
	}
	return map_result(ctx, b->res);
}

static int direct(rctx_t *ctx, struct io_uring_sqe *sqe)
{
	struct bop b = { 0 };

	if (!ctx)
		return -EINVAL;
	return run_blocking(ctx, sqe, &b, false);
}

static struct bop *bop_new(size_t buflen)
{
	struct bop *b = rctx__calloc(1, sizeof(*b));

	if (b && buflen) {
		b->buf = rctx__malloc(buflen);
		if (!b->buf) {
			free(b);
			return NULL;
		}
	}
	return b;
}

/* Only sockets and FIFOs are sure to be poll-driven, hence abortable. */
static bool needs_owned(int fd)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return false; /* let the kernel report the bad fd */
	return !S_ISSOCK(st.st_mode) && !S_ISFIFO(st.st_mode);
}

/* ---- the calls ------------------------------------------------------------- */

RCTX_API ssize_t rctx_read(rctx_t *ctx, int fd, void *buf, size_t len, int64_t off)
{
	ERRNO_GUARD;
	struct io_uring_sqe sqe;
	struct bop *b;
	int ret;

	if (!ctx || (!buf && len))
		return -EINVAL;
	if (len > INT_MAX)
		len = INT_MAX;
	if (!needs_owned(fd)) {
		io_uring_prep_read(&sqe, fd, buf, (unsigned)len, (uint64_t)off);
		ret = direct(ctx, &sqe);
		if (ret > 0)
			kernel_wrote(buf, (size_t)ret);
		return ret;
	}
	b = bop_new(len ? len : 1);
	if (!b)
		return -ENOMEM;
	io_uring_prep_read(&sqe, fd, b->buf, (unsigned)len, (uint64_t)off);
	ret = run_blocking(ctx, &sqe, b, true);
	if (!b->abandoned) {
		if (ret > 0) {
			kernel_wrote(b->buf, (size_t)ret);
			memcpy(buf, b->buf, (size_t)ret);
		}
		free(b->buf);
		free(b);
	}
	return ret;
}

RCTX_API ssize_t rctx_write(rctx_t *ctx, int fd, const void *buf, size_t len,
			    int64_t off)
{
	ERRNO_GUARD;
	struct io_uring_sqe sqe;
	struct bop *b;
	int ret;

	if (!ctx || (!buf && len))
		return -EINVAL;
	if (len > INT_MAX)
		len = INT_MAX;
	if (!needs_owned(fd)) {
		io_uring_prep_write(&sqe, fd, buf, (unsigned)len, (uint64_t)off);
		return direct(ctx, &sqe);
	}
	b = bop_new(len ? len : 1);
	if (!b)
		return -ENOMEM;
	memcpy(b->buf, buf, len);
	io_uring_prep_write(&sqe, fd, b->buf, (unsigned)len, (uint64_t)off);
	ret = run_blocking(ctx, &sqe, b, true);
	if (!b->abandoned) {
		free(b->buf);
		free(b);
	}
	return ret;
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
	ts.tv_sec = rel_ns / 1000000000;
	ts.tv_nsec = rel_ns % 1000000000;
	io_uring_prep_timeout(&sqe, &ts, 0, 0);
	ret = direct(ctx, &sqe);
	return ret == -ETIME ? 0 : ret;
}

RCTX_API int rctx_fsync(rctx_t *ctx, int fd, unsigned fsync_flags)
{
	ERRNO_GUARD;
	struct io_uring_sqe sqe;
	struct bop *b;
	int ret;

	if (!ctx)
		return -EINVAL;
	b = bop_new(0);
	if (!b)
		return -ENOMEM;
	io_uring_prep_fsync(&sqe, fd, fsync_flags);
	ret = run_blocking(ctx, &sqe, b, true);
	if (!b->abandoned)
		free(b);
	return ret;
}

RCTX_API int rctx_openat(rctx_t *ctx, int dirfd, const char *path, int flags,
			 mode_t mode)
{
	ERRNO_GUARD;
	struct io_uring_sqe sqe;
	struct bop *b;
	int ret;

	if (!ctx || !path)
		return -EINVAL;
	b = rctx__calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->buf = rctx__strdup(path);
	if (!b->buf) {
		free(b);
		return -ENOMEM;
	}
	b->close_late = true;
	io_uring_prep_openat(&sqe, dirfd, b->buf, flags, mode);
	ret = run_blocking(ctx, &sqe, b, true);
	if (!b->abandoned) {
		free(b->buf);
		free(b);
	}
	return ret;
}
