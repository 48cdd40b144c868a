/* SPDX-License-Identifier: MIT */
/*
 * Metrics recorded on done.
 *
 * Go: a "metrics context" wraps an operation, and context.AfterFunc records
 * its duration and outcome when it ends. ringctx: rctx_after_func() runs a
 * recorder on the library's runtime thread once the context is done, and
 * rctx_info() gives what it needs: when the context was created and ended,
 * its error and cause, and how many kernel requests it submitted, completed
 * and aborted. No wrapper type, no thread of the caller's.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <ringctx.h>

#define MS 1000000LL

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int recorded;

struct op {
	const char *name;
	rctx_t *ctx;
	struct rctx_info info; /* as recorded */
};

/* The recorder: runs once per operation, when it is done. */
static void record(void *arg)
{
	struct op *op = arg;
	struct rctx_info info;

	if (rctx_info(op->ctx, &info) < 0)
		return;
	printf("metric op=%s duration_ms=%.1f outcome=%s requests=%llu aborted=%llu\n",
	       op->name, (double)(info.done_ns - info.created_ns) / MS,
	       strerror(-info.err), (unsigned long long)info.submitted,
	       (unsigned long long)info.aborted);
	pthread_mutex_lock(&mu);
	op->info = info;
	recorded++;
	pthread_cond_broadcast(&cv);
	pthread_mutex_unlock(&mu);
}

/* An operation that reads from fd under its own 50 ms deadline. */
static void run_op(struct op *op, int fd)
{
	rctx_after_t *h;
	char c;

	op->ctx = rctx_with_timeout(rctx_background(), 50 * MS);
	h = rctx_after_func(op->ctx, record, op);
	(void)rctx_read(op->ctx, fd, &c, 1, -1);
	rctx_after_release(h);
	/* Released below, after the recorder ran: it reads the context. */
}

int main(void)
{
	struct op fast = { .name = "fast" }, slow = { .name = "slow" };
	int ready[2], never[2], ok;

	if (pipe(ready) || pipe(never) || write(ready[1], "x", 1) != 1)
		return perror("setup"), 1;
	run_op(&fast, ready[0]);  /* data is there: completes */
	rctx_cancel(fast.ctx);    /* the operation ends: record it */
	run_op(&slow, never[0]);  /* nothing comes: its deadline ends it */
	pthread_mutex_lock(&mu);
	while (recorded < 2)
		pthread_cond_wait(&cv, &mu);
	pthread_mutex_unlock(&mu);
	ok = fast.info.err == -ECANCELED && fast.info.completed == 1 &&
	     slow.info.err == -ETIMEDOUT && slow.info.done_ns >= slow.info.created_ns;
	rctx_release(fast.ctx);
	rctx_release(slow.ctx);
	return ok ? 0 : 1;
}
