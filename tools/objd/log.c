/* SPDX-License-Identifier: MIT */
/*
 * log.c - the access log: one line per request, written with one stdio call
 * (stdio's lock keeps the lines of the threads whole):
 *   METHOD PATH STATUS BYTES DURATION_MS trace=ID cause=WHY
 * PATH is the request target with control characters, spaces and '%'
 * escaped; cause is "-" for a request that ran to its end.
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
 * cause. TODO(observability): add rctx_info() of the request context (its
 * requests submitted, completed, aborted) once it exists. */
static const char *cause_of(struct conn *c)
{
	int cause;

	if (c->why)
		return c->why;
	if (!c->req_ctx || !(cause = rctx_cause(c->req_ctx)))
		return "-";
	if (cause == -ETIMEDOUT)
		return "deadline";
	if (rctx_err(c->w->s->ctx))
		return "shutdown";
	return "cancelled";
}

void log_request(struct conn *c)
{
	char path[3 * sizeof(c->path)];
	FILE *f = c->w->s->log;

	if (!f)
		return;
	escape(c->path[0] ? c->path : "-", path, sizeof(path));
	fprintf(f, "%s %s %d %llu %.3f trace=%s cause=%s\n", c->method[0] ? c->method : "-",
		path, c->status, (unsigned long long)c->bytes_out,
		(rctx_now() - c->t0) / 1e6, c->trace[0] ? c->trace : "-", cause_of(c));
}
