/* SPDX-License-Identifier: MIT */
/*
 * idle.c - what a connection costs while it waits for a request, and the
 * pools its requests are served from. Only the worker's thread touches
 * any of it.
 *
 * Keep-alive deadlines: a connection waiting for a head (none of it
 * received yet) waits under the worker's idle context of the current time
 * slice, shared by every connection that started waiting in it: one
 * context per slice of --header-timeout / OBJD_IDLE_SLICES, which the
 * worker cancels when the slice's deadline passes (rctx_ring_run() is told
 * to return by then). A head is so given --header-timeout, and at most one
 * slice more, from the moment its connection starts waiting. A connection
 * that has received part of a head moves to a deadline context of its own
 * with the same deadline (so that drain, which cancels the idle contexts,
 * spares it). No connection has a timer of its own while idle, and its
 * receive needs no link timeout.
 *
 * Receive buffers: an idle connection's receive picks one of the worker's
 * provided buffers (OBJD_IBUFS of OBJD_IBUF_SIZE bytes, an io_uring buffer
 * ring) when its bytes arrive; they are copied to an input buffer at once
 * and the buffer is given back. So an idle connection owns no buffer. When
 * the ring has none left (-ENOBUFS), or the kernel cannot register one, the
 * connection takes an input buffer and receives into it.
 *
 * Pools: requests and input buffers are taken from, and given back to, a
 * small per-worker pool (at most OBJD_POOL of each), so serving a request
 * calls no malloc in the steady state.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "objd.h"

#define IBUF_GROUP 0

/* ---- provided receive buffers ------------------------------------------- */

static void ibuf_put(struct worker *w, unsigned bid)
{
	io_uring_buf_ring_add(w->ibr, w->ibufs + (size_t)bid * OBJD_IBUF_SIZE, OBJD_IBUF_SIZE,
			      bid, io_uring_buf_ring_mask(OBJD_IBUFS), 0);
	io_uring_buf_ring_advance(w->ibr, 1);
}

/* Register the worker's buffer ring; without one (an old kernel, no
 * memory) idle connections receive into input buffers. */
static void ibufs_init(struct worker *w)
{
	struct io_uring_buf_reg reg = { .ring_entries = OBJD_IBUFS, .bgid = IBUF_GROUP };
	size_t rsz = OBJD_IBUFS * sizeof(struct io_uring_buf);
	void *ring = mmap(NULL, rsz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	w->ibr = NULL;
	if (ring == MAP_FAILED)
		return;
	w->ibufs = malloc((size_t)OBJD_IBUFS * OBJD_IBUF_SIZE);
	reg.ring_addr = (unsigned long)ring;
	if (!w->ibufs || io_uring_register_buf_ring(rctx_ring_uring(w->ring), &reg, 0)) {
		free(w->ibufs);
		w->ibufs = NULL;
		munmap(ring, rsz);
		return;
	}
	w->ibr = ring;
	io_uring_buf_ring_init(w->ibr);
	for (unsigned i = 0; i < OBJD_IBUFS; i++)
		ibuf_put(w, i);
}

/* Prepare sqe as an idle connection's receive into a provided buffer;
 * false if the worker has none (receive into an input buffer). */
bool ibuf_recv(struct worker *w, struct io_uring_sqe *sqe, int fd)
{
	if (!w->ibr)
		return false;
	io_uring_prep_recv(sqe, fd, NULL, OBJD_IBUF_SIZE, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = IBUF_GROUP;
	return true;
}

/* The provided buffer bid (a receive's, IORING_CQE_F_BUFFER): its bytes;
 * give it back with ibuf_done() once they are copied. */
const char *ibuf_at(struct worker *w, unsigned bid)
{
	return w->ibufs + (size_t)bid * OBJD_IBUF_SIZE;
}

void ibuf_done(struct worker *w, unsigned bid)
{
	ibuf_put(w, bid);
}

/* ---- the idle contexts -------------------------------------------------- */

static int64_t slice_ns(struct worker *w)
{
	int64_t s = w->s->o.header_timeout_ns / OBJD_IDLE_SLICES;

	return s > 0 ? s : 1;
}

/*
 * The context a connection that starts waiting now waits under (a new
 * reference: drop it with rctx_unref, never rctx_release), and its
 * deadline in *expires. NULL (errno) if it cannot be made.
 */
rctx_t *idle_ctx(struct worker *w, int64_t *expires)
{
	int64_t want = rctx_now() + w->s->o.header_timeout_ns;
	struct idle_slice *last = w->nslices ?
		&w->slices[(w->slice0 + w->nslices - 1) % OBJD_IDLE_MAX] : NULL;
	struct idle_slice *sl;

	/* A slice lives --header-timeout and one slice more: at most
	 * OBJD_IDLE_SLICES + 1 of them at once, unless the worker's loop
	 * is late to end the old ones; then the newest is shared (its
	 * deadline is at most that late). */
	if (!last || (last->expires < want && w->nslices < OBJD_IDLE_MAX)) {
		sl = &w->slices[(w->slice0 + w->nslices) % OBJD_IDLE_MAX];
		sl->ctx = rctx_with_cancel(w->s->ctx);
		if (!sl->ctx)
			return NULL;
		sl->expires = want + slice_ns(w);
		w->nslices++;
		last = sl;
	}
	*expires = last->expires;
	return rctx_ref(last->ctx);
}

/* When the worker must end the oldest idle context (RCTX_FOREVER: none). */
int64_t idle_next(struct worker *w)
{
	return w->nslices ? w->slices[w->slice0].expires : RCTX_FOREVER;
}

/* End the idle contexts whose deadline has passed (all of them if all):
 * their connections' receives end, and those connections close. */
void idle_expire(struct worker *w, bool all)
{
	int64_t now = rctx_now();

	while (w->nslices && (all || w->slices[w->slice0].expires <= now)) {
		struct idle_slice *sl = &w->slices[w->slice0];

		rctx_release(sl->ctx);	/* the worker's reference */
		sl->ctx = NULL;
		w->slice0 = (w->slice0 + 1) % OBJD_IDLE_MAX;
		w->nslices--;
	}
}

/* Has the head that c waits for passed its deadline? */
bool head_expired(const struct conn *c)
{
	return c->hdr_expires && c->hdr_expires <= rctx_now();
}

/* ---- pools -------------------------------------------------------------- */

/* A request, its fields zero but the buffers it keeps (head, out). */
struct request *req_take(struct worker *w)
{
	struct request *r = w->free_reqs;
	char *head = NULL, *out = NULL;
	size_t head_cap = 0, out_cap = 0;

	if (r) {
		w->free_reqs = r->next_free;
		w->nfree_reqs--;
		head = r->head;
		head_cap = r->head_cap;
		out = r->out;
		out_cap = r->out_cap;
		memset(r, 0, sizeof(*r));
	} else if (!(r = calloc(1, sizeof(*r)))) {
		return NULL;
	}
	r->head = head;
	r->head_cap = head_cap;
	r->out = out;
	r->out_cap = out_cap;
	r->file_fd = r->dir_fd = r->tmp_fd = -1;
	r->pipe.fd[0] = r->pipe.fd[1] = -1;
	return r;
}

/* Give r back: it has no context, file or pipe left (its chunk buffer is
 * freed: it is large and most requests need none). */
void req_give(struct worker *w, struct request *r)
{
	if (!r)
		return;
	free(r->sbuf);
	r->sbuf = NULL;
	if (w->nfree_reqs < OBJD_POOL) {
		r->next_free = w->free_reqs;
		w->free_reqs = r;
		w->nfree_reqs++;
		return;
	}
	free(r->head);
	free(r->out);
	free(r);
}

/* An input buffer of OBJD_IN_CAP bytes, or NULL. */
char *in_take(struct worker *w)
{
	if (w->nfree_ins)
		return w->free_ins[--w->nfree_ins];
	return malloc(OBJD_IN_CAP);
}

void in_give(struct worker *w, char *in)
{
	if (!in)
		return;
	if (w->nfree_ins < OBJD_POOL)
		w->free_ins[w->nfree_ins++] = in;
	else
		free(in);
}

int idle_init(struct worker *w)
{
	ibufs_init(w);
	return 0;
}

/* The worker's end: its connections are gone. */
void idle_destroy(struct worker *w)
{
	struct request *r;

	idle_expire(w, true);
	while ((r = w->free_reqs)) {
		w->free_reqs = r->next_free;
		free(r->head);
		free(r->out);
		free(r);
	}
	w->nfree_reqs = 0;
	while (w->nfree_ins)
		free(w->free_ins[--w->nfree_ins]);
	/* The buffer ring goes with the worker's ring (its memory with the
	 * process): the kernel may still hold it until the ring is gone. */
}
