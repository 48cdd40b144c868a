/* SPDX-License-Identifier: MIT */
/*
 * Adaptive timeout from the time left.
 *
 * Go: deadline, ok := ctx.Deadline(); budget := time.Until(deadline) / 2.
 * ringctx: rctx_remaining() gives the nanoseconds left; a call that may
 * retry gives each attempt a share of what remains, never more, and gives
 * up when too little is left for a useful attempt.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <ringctx.h>

#define MS 1000000LL

/* One attempt at a backend that never answers (a pipe nobody writes). */
static int attempt(rctx_t *ctx, int fd, int64_t budget)
{
	rctx_t *try = rctx_with_timeout(ctx, budget);
	char c;
	ssize_t n;

	if (!try)
		return -ENOMEM;
	n = rctx_read(try, fd, &c, 1, -1);
	rctx_release(try);
	return n < 0 ? (int)n : 0;
}

int main(void)
{
	rctx_t *req = rctx_with_timeout(rctx_background(), 400 * MS);
	int fds[2], tries = 0, ret = -ETIMEDOUT;
	int64_t left;

	if (!req || pipe(fds))
		return perror("setup"), 1;
	/* Each attempt takes half of what is left; below 20 ms, stop. */
	while ((left = rctx_remaining(req)) >= 20 * MS) {
		int64_t budget = left / 2;

		ret = attempt(req, fds[0], budget);
		tries++;
		printf("attempt %d: budget %lld ms of %lld ms left: %s\n", tries,
		       (long long)(budget / MS), (long long)(left / MS),
		       strerror(-ret));
		if (ret != -ETIMEDOUT)
			break;
	}
	printf("gave up after %d attempts, %lld ms left, request: %s\n", tries,
	       (long long)(rctx_remaining(req) / MS),
	       rctx_err(req) ? strerror(-rctx_err(req)) : "still live");
	/* The attempts used the request's time and no more. */
	ret = tries >= 1 && ret == -ETIMEDOUT && rctx_remaining(req) < 20 * MS ? 0 : 1;
	rctx_release(req);
	close(fds[0]);
	close(fds[1]);
	return ret;
}
