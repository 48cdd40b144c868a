/* SPDX-License-Identifier: MIT */
/*
 * An event loop reads a file with a deadline per request, and never waits
 * for a disk past it.
 *
 * Go: a goroutine per read, and a select on ctx.Done(). ringctx, in one
 * thread with no goroutine: rctx_async_read() starts a read under a
 * context; its callback runs from rctx_ring_run() with the bytes (in the
 * library's memory), or with the context's error as soon as the context
 * ends, even if the kernel still holds the read (a hung disk): the library
 * keeps the request and its memory until the kernel lets go, and the flag
 * RCTX_ASYNC_ABANDONED says so. Here the file is healthy, so every chunk
 * arrives (a page-cache hit completes on this thread's ring, no thread
 * hop), then a read whose client went away ends with its cause.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ringctx.h>

#define CHUNK 4096

struct reader {
	rctx_ring_t *ring;
	int fd;
	int64_t off;
	unsigned long sum;	/* of the bytes read */
	int done;		/* 1: end of file, < 0: an error */
};

static void start_next(struct reader *r);

static void on_read(void *arg, int res, void *data, unsigned flags)
{
	struct reader *r = arg;
	const unsigned char *p = data;

	if (res <= 0) {
		r->done = res == 0 ? 1 : res;
		if (flags & RCTX_ASYNC_ABANDONED)
			fprintf(stderr, "the disk still holds the read: abandoned\n");
		return;
	}
	for (int i = 0; i < res; i++)
		r->sum += p[i];
	r->off += res;
	start_next(r);
}

/* Each chunk gets 2 s: a disk that hangs costs at most that. */
static void start_next(struct reader *r)
{
	rctx_t *ctx = rctx_with_timeout(rctx_background(), 2000000000LL);
	int err = ctx ? rctx_async_read(r->ring, ctx, r->fd, CHUNK, r->off, on_read, r)
		      : -errno;

	rctx_release(ctx);	/* the request holds what it needs */
	if (err)
		r->done = err;
}

static void on_gone(void *arg, int res, void *data, unsigned flags)
{
	(void)data; (void)flags;
	*(int *)arg = res;
}

int main(void)
{
	char path[] = "/tmp/rctx-example-XXXXXX", buf[3 * CHUNK + 100];
	struct reader r = { 0 };
	unsigned long want = 0;
	int gone = 1;
	rctx_t *client;

	r.fd = mkstemp(path);
	if (r.fd < 0 || rctx_ring_create(&r.ring, 64))
		return perror("setup"), 1;
	unlink(path);
	for (size_t i = 0; i < sizeof(buf); i++) {
		buf[i] = (char)(i * 7);
		want += (unsigned char)buf[i];
	}
	if (write(r.fd, buf, sizeof(buf)) != (ssize_t)sizeof(buf))
		return perror("write"), 1;

	start_next(&r);
	while (!r.done)
		rctx_ring_run(r.ring, RCTX_FOREVER);
	printf("read %lld bytes, sum %lu (expected %lu)\n", (long long)r.off, r.sum, want);

	/* A request whose client went away: the callback gets its cause. */
	client = rctx_with_cancel(rctx_background());
	rctx_cancel_cause(client, -ECONNRESET);
	rctx_async_read(r.ring, client, r.fd, CHUNK, 0, on_gone, &gone);
	while (gone == 1)
		rctx_ring_run(r.ring, RCTX_FOREVER);
	printf("a read for a client that left: %s (cause %s)\n", strerror(-gone),
	       strerror(-rctx_cause(client)));
	rctx_release(client);
	rctx_ring_destroy(r.ring);
	close(r.fd);
	return r.done == 1 && r.off == (int64_t)sizeof(buf) && r.sum == want &&
	       gone == -ECANCELED ? 0 : 1;
}
