/* SPDX-License-Identifier: MIT */
/*
 * Bounded concurrency where the first error cancels the rest.
 *
 * Go: g, ctx := errgroup.WithContext(ctx); g.SetLimit(2); g.Go(...);
 * err := g.Wait(). ringctx: rctx_group_new(parent, 2), rctx_group_go(),
 * rctx_group_wait(). At most two tasks run at once on the library's worker
 * threads; the first task that fails cancels the group's context with its
 * error as the cause, so the others stop at once (here: their reads of a
 * backend that never answers are aborted in the kernel).
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <ringctx.h>

static int backend[2];
static atomic_int running, most, stopped;

static int fetch(rctx_t *ctx, void *arg)
{
	long id = (long)arg;
	int now = atomic_fetch_add(&running, 1) + 1, seen = atomic_load(&most);
	char c;
	ssize_t n;

	while (now > seen && !atomic_compare_exchange_weak(&most, &seen, now))
		;
	if (id == 2) { /* this one fails */
		atomic_fetch_sub(&running, 1);
		return -EIO;
	}
	n = rctx_read(ctx, backend[0], &c, 1, -1); /* never answers */
	if (n == -ECANCELED)
		atomic_fetch_add(&stopped, 1);
	atomic_fetch_sub(&running, 1);
	return (int)(n < 0 ? n : 0);
}

int main(void)
{
	rctx_group_t *g;
	int err, cause;

	if (pipe(backend))
		return perror("pipe"), 1;
	g = rctx_group_new(rctx_background(), 2);
	if (!g)
		return 1;
	for (long id = 1; id <= 6; id++)
		if (rctx_group_go(g, fetch, (void *)id) < 0)
			printf("task %ld not started: the group is cancelled\n", id);
	err = rctx_group_wait(g);
	cause = rctx_cause(rctx_group_ctx(g));
	printf("wait: %s; group cause: %s; at most %d at once; %d tasks stopped by the cancel\n",
	       strerror(-err), strerror(-cause), atomic_load(&most),
	       atomic_load(&stopped));
	rctx_group_free(g);
	close(backend[0]);
	close(backend[1]);
	return err == -EIO && cause == -EIO && atomic_load(&most) <= 2 ? 0 : 1;
}
