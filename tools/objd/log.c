/* SPDX-License-Identifier: MIT */
/*
 * log.c - the access log: one line per request, written with one stdio call
 * (stdio's lock keeps the lines of the threads whole):
 *   METHOD PATH STATUS BYTES DURATION_MS trace=TRACEID xid=X-TRACE-ID
 *   io=SUBMITTED/COMPLETED/ABORTED cause=WHY
 * PATH is the request target with control characters, spaces and '%'
 * escaped; TRACEID the request's 32 hex digit trace id ("-" before a
 * request context exists); xid the X-Trace-ID sent, or "-". Duration and
 * the io counters come from rctx_info() of the request context (from its
 * creation to its end, or to now while it has not ended); cause is "-" for
 * a request that ran to its end, else why it did not (client-gone,
 * deadline, shutdown, an errno name...).
 */
#include <errno.h>
#include <string.h>

#include "objd.h"

static void escape(const char *in, char *out, size_t cap)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

	for (; *in && o + 4 < cap; in++) {
		unsigned char ch = *in;

		if (ch <= ' ' || ch >= 0x7f || ch == '%') {
			out[o++] = '%';
			out[o++] = hex[ch >> 4];
			out[o++] = hex[ch & 15];
		} else {
			out[o++] = ch;
		}
	}
	out[o] = '\0';
}

/* Why the request ended early: the connection's reason, else its context's
 * cause (info: rctx_info() of the request context). */
static const char *cause_of(struct conn *c, const struct rctx_info *info)
{
	if (c->r->why)
		return c->r->why;
	if (!info->err)
		return "-";
	if (info->cause == -ETIMEDOUT)
		return "deadline";
	return cancel_why(c);
}

static void trace_hex(const struct rctx_trace *t, char out[33])
{
	static const char hex[] = "0123456789abcdef";

	for (int i = 0; i < 16; i++) {
		out[2 * i] = hex[t->trace_id[i] >> 4];
		out[2 * i + 1] = hex[t->trace_id[i] & 15];
	}
	out[32] = '\0';
}

void log_request(struct conn *c)
{
	char path[3 * sizeof(c->r->path)], tid[33] = "-", xid[3 * sizeof(c->r->trace)];
	struct rctx_info info = { 0 };
	FILE *f = c->w->s->log;
	int64_t ns;

	if (!f)
		return;
	escape(c->r->path[0] ? c->r->path : "-", path, sizeof(path));
	escape(c->r->trace[0] ? c->r->trace : "-", xid, sizeof(xid));
	if (c->r->req_ctx && !rctx_info(c->r->req_ctx, &info)) {
		ns = (info.done_ns ? info.done_ns : rctx_now()) - info.created_ns;
		trace_hex(&c->r->tp, tid);
	} else {
		ns = rctx_now() - c->r->t0;
	}
	fprintf(f, "%s %s %d %llu %.3f trace=%s xid=%s io=%llu/%llu/%llu cause=%s\n",
		c->r->method[0] ? c->r->method : "-", path, c->r->status,
		(unsigned long long)c->r->bytes_out, ns / 1e6, tid, xid,
		(unsigned long long)info.submitted, (unsigned long long)info.completed,
		(unsigned long long)info.aborted, cause_of(c, &info));
}
