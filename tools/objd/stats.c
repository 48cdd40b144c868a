/* SPDX-License-Identifier: MIT */
/*
 * stats.c - /debug/stats (JSON counters; the rings' counters summed: aborted,
 * cancels_issued...) and /debug/contexts (rctx_dump() of the server's
 * tree), served only to loopback clients.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "objd.h"

void stats_status(struct server *s, int status)
{
	if (status >= 100 && status < 600)
		atomic_fetch_add(&s->st.by_status[status], 1);
}

#define P(...) (n += snprintf(buf + n, n < cap ? cap - n : 0, __VA_ARGS__))

static size_t ring_json(char *buf, size_t cap, const char *name, const struct rctx_ring_stats *r)
{
	size_t n = 0;

	P("\"%s\":{\"submitted\":%llu,\"short_circuited\":%llu,\"completed\":%llu,"
	  "\"cancels_issued\":%llu,\"cancel_found\":%llu,\"cancel_ealready\":%llu,"
	  "\"cancel_enoent\":%llu,\"aborted\":%llu,\"completed_anyway\":%llu,"
	  "\"link_timeouts\":%llu,\"link_timeouts_fired\":%llu,\"in_flight\":%llu,"
	  "\"held_after_cancel\":%llu}", name,
	  (unsigned long long)r->submitted, (unsigned long long)r->short_circuited,
	  (unsigned long long)r->completed, (unsigned long long)r->cancels_issued,
	  (unsigned long long)r->cancel_found, (unsigned long long)r->cancel_ealready,
	  (unsigned long long)r->cancel_enoent, (unsigned long long)r->aborted,
	  (unsigned long long)r->completed_anyway, (unsigned long long)r->link_timeouts,
	  (unsigned long long)r->link_timeouts_fired, (unsigned long long)r->in_flight,
	  (unsigned long long)r->held_after_cancel);
	return n;
}

static void add_ring(struct rctx_ring_stats *sum, const struct rctx_ring_stats *r)
{
	uint64_t *d = (uint64_t *)sum;
	const uint64_t *x = (const uint64_t *)r;

	for (size_t i = 0; i < sizeof(*r) / sizeof(uint64_t); i++)
		d[i] += x[i];
}

static size_t stats_json(struct server *s, char *buf, size_t cap)
{
	struct rctx_ring_stats sum = { 0 }, r;
	struct rctx_runtime_stats rt = { 0 };
	size_t n = 0;
	bool first = true;

	for (int i = 0; i < s->o.threads; i++)
		if (!rctx_ring_stats(s->workers[i].ring, &r))
			add_ring(&sum, &r);
	/* The library's ring, where the file requests run (its lanes). */
	if (!rctx_runtime_ring_stats(&r))
		add_ring(&sum, &r);
	rctx_runtime_stats(&rt);
	P("{\"requests\":%llu,\"in_flight\":%lld,\"connections\":%lld,\"bytes_in\":%llu,"
	  "\"bytes_out\":%llu,\"abandoned_io\":%llu,\"opens_in_flight\":%lld,"
	  "\"opens_joined\":%llu,\"threads\":%d,\"status\":{",
	  (unsigned long long)s->st.requests, (long long)s->st.in_flight,
	  (long long)s->st.conns, (unsigned long long)s->st.bytes_in,
	  (unsigned long long)s->st.bytes_out, (unsigned long long)s->st.abandoned,
	  (long long)s->st.opens_in_flight, (unsigned long long)s->st.opens_joined,
	  s->o.threads);
	for (int i = 100; i < 600; i++) {
		unsigned long long v = s->st.by_status[i];

		if (v) {
			P("%s\"%d\":%llu", first ? "" : ",", i, v);
			first = false;
		}
	}
	P("},");
	{
		unsigned long long h = 0, m = 0, st = 0, ev = 0, b = 0;

		for (int i = 0; i < s->o.threads; i++) {
			h += atomic_load_explicit(&s->workers[i].fc.hits, memory_order_relaxed);
			m += atomic_load_explicit(&s->workers[i].fc.misses, memory_order_relaxed);
			st += atomic_load_explicit(&s->workers[i].fc.stale, memory_order_relaxed);
			ev += atomic_load_explicit(&s->workers[i].fc.evicted, memory_order_relaxed);
			b += atomic_load_explicit(&s->workers[i].fc.borrowed, memory_order_relaxed);
		}
		P("\"open_cache\":{\"hits\":%llu,\"misses\":%llu,\"stale\":%llu,\"evicted\":%llu,"
		  "\"borrowed\":%llu},", h, m, st, ev, b);
	}
	n += ring_json(buf + n, n < cap ? cap - n : 0, "rings", &sum);
	P(",\"runtime\":{\"timers_armed\":%llu,\"timers_fired\":%llu,\"timers_live\":%llu,"
	  "\"after_funcs_run\":%llu,\"kept_abandoned\":%llu,\"kept_held\":%llu,"
	  "\"rings_adopted\":%llu,\"devices\":%llu,\"lane_waiting\":%llu,"
	  "\"fenced\":%llu,\"nowait_reads\":%llu,\"running\":%s}}\n",
	  (unsigned long long)rt.timers_armed, (unsigned long long)rt.timers_fired,
	  (unsigned long long)rt.timers_live, (unsigned long long)rt.after_funcs_run,
	  (unsigned long long)rt.kept_abandoned, (unsigned long long)rt.kept_held,
	  (unsigned long long)rt.rings_adopted, (unsigned long long)rt.devices,
	  (unsigned long long)rt.lane_waiting, (unsigned long long)rt.fenced,
	  (unsigned long long)rt.nowait_reads, rt.running ? "true" : "false");
	return n;
}

#define DUMP_NODES 4096		/* context lines of /debug/contexts */
#define DUMP_MAX (4 << 20)	/* its bytes */

/*
 * /debug/contexts: rctx_dump() of the server's context tree into a memfd
 * (rctx_dump writes with write(2); a memfd never blocks), read back and sent
 * through the ring as the body.
 */
static void contexts_serve(struct conn *c)
{
	int fd = memfd_create("objd-contexts", MFD_CLOEXEC);
	char *body = NULL;
	off_t len;

	if (fd < 0 || rctx_dump(c->w->s->ctx, fd, DUMP_NODES) ||
	    (len = lseek(fd, 0, SEEK_CUR)) < 0 || len > DUMP_MAX ||
	    !(body = malloc(len + 1)) || pread(fd, body, len, 0) != len) {
		if (fd >= 0)
			close(fd);
		free(body);
		conn_error(c, 500);
		return;
	}
	close(fd);
	conn_respond(c, 200, "Content-Type: text/plain\r\n", body, len, len, conn_finish);
	free(body);
}

void stats_serve(struct conn *c)
{
	char buf[4096];
	size_t n;

	if (!strcmp(c->r->path, "/debug/stats")) {
		n = stats_json(c->w->s, buf, sizeof(buf));
		if (n >= sizeof(buf)) {
			conn_error(c, 500);
			return;
		}
		conn_respond(c, 200, "Content-Type: application/json\r\n", buf, n, n, conn_finish);
	} else if (!strcmp(c->r->path, "/debug/contexts")) {
		contexts_serve(c);
	} else {
		conn_error(c, 404);
	}
}
