/* SPDX-License-Identifier: MIT */
/*
 * pipe.c - each worker's pool of pipes for large GET bodies, which go from
 * the page cache to the socket without a copy: the library splices the
 * file into a pipe (rctx_async_splice, in the file's lane: abandonable like
 * every file request), and the worker splices the pipe into the socket.
 *
 * While a splice into it is in flight the pipe is lent to the library
 * (the kernel holds its lock while it waits for the disk: touching it
 * would block this thread); a splice abandoned at its deadline leaves it to
 * the library for good, which closes it once the kernel lets go. A pipe
 * goes back to the pool only empty, after a GET whose every splice
 * completed; any other (a failure, an abort) is closed, so no stale bytes
 * can reach another response. Only the worker's thread touches its pool.
 */
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "objd.h"

static void pipe_close(struct objd_pipe *p)
{
	close(p->fd[0]);
	close(p->fd[1]);
	p->fd[0] = p->fd[1] = -1;
}

/* A pipe for c's body: from the pool, else a new one of OBJD_PIPE_SIZE
 * bytes (or the most the system allows). -errno if none. */
int pipe_take(struct conn *c)
{
	struct worker *w = c->w;
	int fds[2], cap;

	if (w->npipes) {
		c->r->pipe = w->pipes[--w->npipes];
		return 0;
	}
	if (pipe2(fds, O_CLOEXEC | O_NONBLOCK))
		return -errno;
	fcntl(fds[1], F_SETPIPE_SZ, OBJD_PIPE_SIZE);	/* else its default */
	cap = fcntl(fds[1], F_GETPIPE_SZ);
	c->r->pipe = (struct objd_pipe){ .fd = { fds[0], fds[1] }, .cap = cap > 0 ? cap : 4096 };
	return 0;
}

/* Give c's pipe back: to the pool when reuse is safe (empty), else closed.
 * A pipe lent to the library waits for its splice's outcome. */
void pipe_give(struct conn *c, bool reuse)
{
	struct worker *w = c->w;

	if (c->r->pipe.fd[0] < 0 || c->r->pipe_lent)
		return;
	if (reuse && c->r->pipe_len == 0 && w->npipes < OBJD_PIPE_POOL)
		w->pipes[w->npipes++] = c->r->pipe;
	else
		pipe_close(&c->r->pipe);
	c->r->pipe.fd[0] = c->r->pipe.fd[1] = -1;
	c->r->pipe_len = 0;
}

/* The splice's outcome (its callback's flags): the pipe is ours again,
 * unless the request was abandoned (the library's now). Closed if the
 * connection ended meanwhile. */
void pipe_returned(struct conn *c, unsigned flags)
{
	c->r->pipe_lent = false;
	if (flags & RCTX_ASYNC_ABANDONED) {
		c->r->pipe.fd[0] = c->r->pipe.fd[1] = -1;
		c->r->pipe_len = 0;
	} else if (c->state == C_DEAD) {
		pipe_give(c, false);
	}
}

void pipes_destroy(struct worker *w)
{
	while (w->npipes)
		pipe_close(&w->pipes[--w->npipes]);
}
