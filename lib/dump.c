/* SPDX-License-Identifier: MIT */
/*
 * rctx_dump(): the live subtree of a context as text, one line per node.
 *
 * Other threads may create, cancel and release nodes of the subtree while it
 * is written. The walk holds one context lock at a time, and only while it
 * copies that node (its error, times, counters, requests, and references to
 * its cancellable children); it formats and writes with no lock held. A
 * child found with no reference left is being freed: it is skipped. The
 * walk is iterative: a stack of the nodes still to visit, each with a
 * reference, allocated and bounded by max_nodes.
 *
 * Line format (two spaces of indentation per level below the dumped node):
 *   <Kind> ctx=<addr> age=<s> [left=<s>] [err=<e> cause=<c>]
 *          submitted=<n> completed=<n> aborted=<n>        (one line)
 *     value key=<addr> val=<addr>       values between it and its parent
 *     req ring=<addr> op=<NAME> opcode=<n> age=<ms>ms
 *     req ... <n> more                  past DUMP_REQS requests
 *   ... <n> more                        nodes left out by max_nodes
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

#define DUMP_BUF 4096   /* output buffer, written when a line may not fit */
#define DUMP_LINE 320   /* longest line (ext names are cut at 64) */
#define DUMP_REQS 32    /* request lines per node; the rest are counted */

/* ---- output --------------------------------------------------------------- */

struct out {
	int fd;
	int err;            /* first write error (-errno), then silent */
	size_t len;
	char buf[DUMP_BUF];
};

static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static void out_flush(struct out *o)
{
	if (!o->err && o->len)
		o->err = write_all(o->fd, o->buf, o->len);
	o->len = 0;
}

static void out_indent(struct out *o, size_t depth)
{
	while (depth--) {
		if (DUMP_BUF - o->len < 2)
			out_flush(o);
		memcpy(o->buf + o->len, "  ", 2);
		o->len += 2;
	}
}

__attribute__((format(printf, 2, 3)))
static void out_printf(struct out *o, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (DUMP_BUF - o->len < DUMP_LINE)
		out_flush(o);
	va_start(ap, fmt);
	n = vsnprintf(o->buf + o->len, DUMP_LINE, fmt, ap);
	va_end(ap);
	if (n > 0)
		o->len += (size_t)n < DUMP_LINE ? (size_t)n : DUMP_LINE - 1;
}

/* ns as seconds, e.g. "1.250000s" or "-0.000300s". */
static const char *fmt_secs(char buf[32], int64_t ns)
{
	uint64_t a = ns < 0 ? 0 - (uint64_t)ns : (uint64_t)ns;

	snprintf(buf, 32, "%s%llu.%06llus", ns < 0 ? "-" : "",
		 (unsigned long long)(a / NSEC_PER_SEC),
		 (unsigned long long)(a % NSEC_PER_SEC / 1000));
	return buf;
}

static const char *const op_names[] = {
	[IORING_OP_NOP] = "NOP",
	[IORING_OP_READV] = "READV",
	[IORING_OP_WRITEV] = "WRITEV",
	[IORING_OP_FSYNC] = "FSYNC",
	[IORING_OP_READ_FIXED] = "READ_FIXED",
	[IORING_OP_WRITE_FIXED] = "WRITE_FIXED",
	[IORING_OP_POLL_ADD] = "POLL_ADD",
	[IORING_OP_POLL_REMOVE] = "POLL_REMOVE",
	[IORING_OP_SYNC_FILE_RANGE] = "SYNC_FILE_RANGE",
	[IORING_OP_SENDMSG] = "SENDMSG",
	[IORING_OP_RECVMSG] = "RECVMSG",
	[IORING_OP_TIMEOUT] = "TIMEOUT",
	[IORING_OP_TIMEOUT_REMOVE] = "TIMEOUT_REMOVE",
	[IORING_OP_ACCEPT] = "ACCEPT",
	[IORING_OP_ASYNC_CANCEL] = "ASYNC_CANCEL",
	[IORING_OP_LINK_TIMEOUT] = "LINK_TIMEOUT",
	[IORING_OP_CONNECT] = "CONNECT",
	[IORING_OP_FALLOCATE] = "FALLOCATE",
	[IORING_OP_OPENAT] = "OPENAT",
	[IORING_OP_CLOSE] = "CLOSE",
	[IORING_OP_STATX] = "STATX",
	[IORING_OP_READ] = "READ",
	[IORING_OP_WRITE] = "WRITE",
	[IORING_OP_FADVISE] = "FADVISE",
	[IORING_OP_MADVISE] = "MADVISE",
	[IORING_OP_SEND] = "SEND",
	[IORING_OP_RECV] = "RECV",
	[IORING_OP_OPENAT2] = "OPENAT2",
	[IORING_OP_EPOLL_CTL] = "EPOLL_CTL",
	[IORING_OP_SPLICE] = "SPLICE",
	[IORING_OP_TEE] = "TEE",
	[IORING_OP_SHUTDOWN] = "SHUTDOWN",
	[IORING_OP_RENAMEAT] = "RENAMEAT",
	[IORING_OP_UNLINKAT] = "UNLINKAT",
	[IORING_OP_MKDIRAT] = "MKDIRAT",
	[IORING_OP_SYMLINKAT] = "SYMLINKAT",
	[IORING_OP_LINKAT] = "LINKAT",
	[IORING_OP_MSG_RING] = "MSG_RING",
	[IORING_OP_SOCKET] = "SOCKET",
	[IORING_OP_URING_CMD] = "URING_CMD",
	[IORING_OP_SEND_ZC] = "SEND_ZC",
	[IORING_OP_SENDMSG_ZC] = "SENDMSG_ZC",
};

static const char *op_name(uint8_t op)
{
	if (op < sizeof(op_names) / sizeof(op_names[0]) && op_names[op])
		return op_names[op];
	return "?";
}

/* ---- the walk ------------------------------------------------------------- */

struct frame {
	struct rctx_cancel *c;  /* a reference */
	size_t depth;
};

struct walk {
	struct frame *stack;
	size_t n, cap;
	size_t budget;          /* node lines at most */
	size_t shown;
	uint64_t more;          /* children left out by the budget */
	int err;                /* -ENOMEM: the stack could not grow */
};

/* What a node holds, copied under its lock. */
struct snap {
	int err, cause;
	int64_t created_ns, deadline;
	uint64_t submitted, completed, aborted;
	size_t nreqs;
	struct rctx_req_view reqs[DUMP_REQS];
};

static bool stack_reserve(struct walk *w)
{
	struct frame *v;
	size_t cap;

	if (w->n < w->cap)
		return true;
	cap = w->cap ? w->cap * 2 : 16;
	v = rctx__realloc(w->stack, cap * sizeof(*v));
	if (!v)
		return false;
	w->stack = v;
	w->cap = cap;
	return true;
}

/*
 * Take references to c's cancellable children for the walk (the set also
 * holds after-func records and other cancelers: skipped), within the budget.
 * Under c's lock, so the stack grows before a reference is taken: none is
 * dropped here (it could be the last, whose free path takes this lock).
 */
static void take_children(struct walk *w, struct rctx_cancel *c, size_t depth)
{
	for (struct hnode *h = c->children; h; h = h->next) {
		struct rctx_canceler *k = container_of(h, struct rctx_canceler, sib);

		if (!kind_cancellable(&k->hdr))
			continue;
		if (w->err || w->shown + w->n >= w->budget) {
			w->more++;
			continue;
		}
		if (!stack_reserve(w)) {
			w->err = -ENOMEM;
			w->more++;
			continue;
		}
		if (!rctx__obj_tryget(&k->hdr))
			continue; /* being freed */
		w->stack[w->n].c = (struct rctx_cancel *)k;
		w->stack[w->n++].depth = depth + 1;
	}
}

static void snap_node(struct walk *w, struct rctx_cancel *c, size_t depth,
		      struct snap *s)
{
	rlock(&c->lock);
	s->err = atomic_load_explicit(&c->err, memory_order_relaxed);
	s->cause = c->cause;
	s->created_ns = c->created_ns;
	s->deadline = c->deadline;
	s->submitted = c->submitted;
	s->completed = c->completed;
	s->aborted = c->aborted;
	s->nreqs = 0;
	for (struct hnode *h = c->reqs; h; h = h->next)
		if (!rctx__ring_req_parked(h) && s->nreqs++ < DUMP_REQS)
			rctx__ring_req_view(h, &s->reqs[s->nreqs - 1]);
	take_children(w, c, depth);
	runlock(&c->lock);
}

static const char *kind_name(const struct rctx *c)
{
	switch (c->kind) {
	case RCTX_BACKGROUND: return "Background";
	case RCTX_TODO: return "TODO";
	case RCTX_CANCEL: return "WithCancel";
	case RCTX_DEADLINE: return "WithDeadline";
	case RCTX_EXT: {
		const char *n = ((const struct rctx_ext *)c)->ops->name;

		return n ? n : "Extended";
	}
	case RCTX_VALUE: return "WithValue";
	case RCTX_WITHOUT: return "WithoutCancel";
	default: return "?";
	}
}

static void print_node(struct out *o, const struct rctx_cancel *c, size_t depth,
		       const struct snap *s)
{
	int64_t now = rctx_now();
	uint32_t now_ms = (uint32_t)(now / 1000000);
	char a[32], l[32];

	out_indent(o, depth);
	out_printf(o, "%.64s ctx=%p age=%s", kind_name(&c->c.hdr), (void *)c,
		   fmt_secs(a, now - s->created_ns));
	if (s->deadline != RCTX_FOREVER)
		out_printf(o, " left=%s", fmt_secs(l, s->deadline - now));
	if (s->err)
		out_printf(o, " err=%d cause=%d", s->err, s->cause);
	out_printf(o, " submitted=%llu completed=%llu aborted=%llu\n",
		   (unsigned long long)s->submitted,
		   (unsigned long long)s->completed,
		   (unsigned long long)s->aborted);
	/* Value nodes are in no child set: those between c and its governor
	 * parent, nearest first (the parent chain is immutable, and held). */
	for (const struct rctx *p = c->c.hdr.parent; p && p->kind == RCTX_VALUE;
	     p = p->parent) {
		const struct rctx_value *v = (const struct rctx_value *)p;

		for (size_t i = v->n; i--;) {
			out_indent(o, depth + 1);
			out_printf(o, "value key=%p val=%p\n", v->kv[i].key,
				   v->kv[i].val);
		}
	}
	for (size_t i = 0; i < s->nreqs && i < DUMP_REQS; i++) {
		const struct rctx_req_view *r = &s->reqs[i];
		int32_t age = (int32_t)(now_ms - r->stamp_ms);

		out_indent(o, depth + 1);
		out_printf(o, "req ring=%p op=%s opcode=%u age=%ldms\n",
			   (const void *)r->ring, op_name(r->opcode),
			   (unsigned)r->opcode, (long)(age > 0 ? age : 0));
	}
	if (s->nreqs > DUMP_REQS) {
		out_indent(o, depth + 1);
		out_printf(o, "req ... %zu more\n", s->nreqs - DUMP_REQS);
	}
}

/* ctx with no cancellable context above it: nothing tracked, one line. */
static void print_untracked(struct out *o, const struct rctx *ctx)
{
	out_printf(o, "%s ctx=%p\n", kind_name(ctx), (const void *)ctx);
}

static void walk_tree(struct walk *w, struct out *o, struct rctx_cancel *root)
{
	struct snap s;

	rctx__obj_get(&root->c.hdr);
	w->stack[w->n].c = root;
	w->stack[w->n++].depth = 0;
	while (w->n) {
		struct frame f = w->stack[--w->n];

		if (!o->err) {
			w->shown++; /* counted before its children are taken */
			snap_node(w, f.c, f.depth, &s);
			print_node(o, f.c, f.depth, &s);
		}
		rctx__obj_put(&f.c->c.hdr);
	}
}

RCTX_API int rctx_dump(rctx_t *ctx, int fd, size_t max_nodes)
{
	ERRNO_GUARD;
	struct walk w = { .budget = max_nodes ? max_nodes : SIZE_MAX };
	struct rctx_cancel *g;
	struct out o;

	if (!ctx_valid(ctx))
		return -EINVAL;
	if (fd < 0)
		return -EBADF;
	o.fd = fd;
	o.err = 0;
	o.len = 0;
	g = rctx_governor(ctx);
	if (!g) {
		print_untracked(&o, ctx);
	} else if (!stack_reserve(&w)) {
		return -ENOMEM;
	} else {
		walk_tree(&w, &o, g);
		if (w.more)
			out_printf(&o, "... %llu more\n", (unsigned long long)w.more);
		free(w.stack);
	}
	out_flush(&o);
	return o.err ? o.err : w.err;
}
