/* SPDX-License-Identifier: MIT */
/*
 * Nested timeouts for a two-phase operation.
 *
 * Go: the whole operation has 1 s; its first phase gets at most 100 ms of
 * it: ctx, cancel := context.WithTimeout(parent, 100*time.Millisecond).
 * ringctx: the same tree. A phase's deadline never extends its parent's:
 * rctx_with_timeout() below a sooner deadline keeps the sooner one.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <ringctx.h>

#define MS 1000000LL

/* A phase that waits for a backend that never answers. */
static int phase(rctx_t *op, int64_t limit, int fd)
{
	rctx_t *ctx = rctx_with_timeout(op, limit);
	char c;
	ssize_t n;

	if (!ctx)
		return -ENOMEM;
	n = rctx_read(ctx, fd, &c, 1, -1);
	rctx_release(ctx);
	return (int)(n < 0 ? n : 0);
}

int main(void)
{
	rctx_t *op = rctx_with_timeout(rctx_background(), 1000 * MS);
	int fds[2], first, second, err;
	int64_t left_after_first;

	if (!op || pipe(fds))
		return perror("setup"), 1;
	/* Phase 1: its own 100 ms limit ends it; the operation goes on. */
	first = phase(op, 100 * MS, fds[0]);
	left_after_first = rctx_remaining(op);
	/* Phase 2 asks for 10 s, but the operation's deadline comes first. */
	second = phase(op, 10000 * MS, fds[0]);
	err = rctx_err(op);
	printf("phase 1: %s (operation still live, %lld ms left)\n"
	       "phase 2: %s (the operation's deadline), operation: %s\n",
	       strerror(-first), (long long)(left_after_first / MS),
	       strerror(-second), strerror(-err));
	rctx_release(op);
	close(fds[0]);
	close(fds[1]);
	return first == -ETIMEDOUT && second == -ETIMEDOUT && err == -ETIMEDOUT ? 0 : 1;
}
