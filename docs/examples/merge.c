/* SPDX-License-Identifier: MIT */
/*
 * Several cancel sources merged.
 *
 * Go: a job must stop when its request is cancelled OR when the server
 * shuts down; Go code spawns a goroutine, or uses context.AfterFunc, to tie
 * the second source in. ringctx: rctx_with_any(request, {shutdown}) is done
 * as soon as either is, with that source's error and cause; it registers
 * with each source as a child does: no thread, no polling. Values come
 * from the request first, then from the other sources.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <ringctx.h>

#define SHUTTING_DOWN 1001 /* an application cause */

static const char user_key[] = "user";

int main(void)
{
	rctx_t *shutdown = rctx_with_cancel(rctx_background());
	rctx_t *request = rctx_with_value(rctx_background(), user_key, (void *)"alice");
	rctx_t *job;
	int fds[2], cause;
	char c;
	ssize_t n;

	if (!shutdown || !request || pipe(fds))
		return perror("setup"), 1;
	job = rctx_with_any(request, &shutdown, 1);
	if (!job)
		return 1;
	printf("job for %s started\n", (char *)rctx_value(job, user_key));

	/* The server shuts down while the job waits for a backend. */
	rctx_cancel_cause(shutdown, SHUTTING_DOWN);
	n = rctx_read(job, fds[0], &c, 1, -1);
	cause = rctx_cause(job);
	printf("job read: %s; cause %d (the shutdown's); request itself: %s\n",
	       strerror((int)-n), cause,
	       rctx_err(request) ? "done" : "still live");

	rctx_release(job);
	rctx_release(request);
	rctx_release(shutdown);
	close(fds[0]);
	close(fds[1]);
	return n == -ECANCELED && cause == SHUTTING_DOWN ? 0 : 1;
}
