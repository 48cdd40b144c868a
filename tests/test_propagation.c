/* Description: propagation across processes. gRPC's grpc-timeout header:
 * tables of valid and invalid values (every unit, 1 and 8 digits, saturation
 * of hours beyond int64_t nanoseconds), formatting a context's remaining time
 * (the unit chosen, rounding down, round trip through the parser bounded by
 * the time left, no deadline, a passed deadline, small buffers). W3C
 * traceparent: the specification's test vectors (valid, future versions,
 * invalid), formatting and its round trip, child spans (trace id and flags
 * kept, span ids non-zero and distinct, across threads and fork()), and
 * traces carried by contexts (nearest wins, through value, cancel and
 * without-cancel contexts, copied by value). */
/* tsan: yes */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ringctx.h"
#include "helpers.h"

TestSuite(propagation, .timeout = 60);

#define SEC 1000000000LL
#define assert_bytes_eq(a, b, n) \
	cr_assert(memcmp((a), (b), (n)) == 0, "%s differs from %s", #a, #b)

/* ---- grpc-timeout: parse ------------------------------------------------- */

static const struct {
	const char *s;
	int64_t ns;
} grpc_valid[] = {
	{ "0n", 0 },
	{ "1n", 1 },
	{ "1u", 1000 },
	{ "1m", 1000000 },
	{ "1S", SEC },
	{ "1M", 60 * SEC },
	{ "1H", 3600 * SEC },
	{ "99999999n", 99999999LL },
	{ "99999999u", 99999999LL * 1000 },
	{ "99999999m", 99999999LL * 1000000 },
	{ "99999999S", 99999999LL * SEC },
	{ "99999999M", 99999999LL * 60 * SEC },
	{ "00000001S", SEC },
	{ "00000000H", 0 },
	{ "250m", 250000000LL },
	{ "2562047H", 2562047LL * 3600 * SEC }, /* the most hours that fit */
	{ "2562048H", RCTX_FOREVER },           /* saturated */
	{ "99999999H", RCTX_FOREVER },
};

static const char *const grpc_invalid[] = {
	"", "n", "S", "123456789n", "000000000S", "999999999H",
	"+1S", "-1S", " 1S", "1S ", "1 S", "1\tS",
	"1s", "1h", "1U", "1N", "1x", "1", "12345678",
	"1SS", "1Sn", "1S\n", "S1", "1.5S", "0x1S", "1e3m", "Infn",
};

Test(propagation, grpc_timeout_valid_values)
{
	for (size_t i = 0; i < sizeof(grpc_valid) / sizeof(grpc_valid[0]); i++) {
		int64_t ns = -42;
		int ret = rctx_grpc_timeout_parse(grpc_valid[i].s, &ns);

		cr_assert_eq(ret, 0, "\"%s\": %d", grpc_valid[i].s, ret);
		cr_assert_eq(ns, grpc_valid[i].ns, "\"%s\": %lld, expected %lld",
			     grpc_valid[i].s, (long long)ns,
			     (long long)grpc_valid[i].ns);
	}
}

Test(propagation, grpc_timeout_invalid_values_are_refused_untouched)
{
	for (size_t i = 0; i < sizeof(grpc_invalid) / sizeof(grpc_invalid[0]); i++) {
		int64_t ns = -42;
		int ret = rctx_grpc_timeout_parse(grpc_invalid[i], &ns);

		cr_assert_eq(ret, -EINVAL, "\"%s\": %d", grpc_invalid[i], ret);
		cr_assert_eq(ns, -42, "\"%s\" wrote *rel_ns", grpc_invalid[i]);
	}
}

Test(propagation, grpc_timeout_parse_null_arguments)
{
	int64_t ns = -42;

	cr_assert_eq(rctx_grpc_timeout_parse(NULL, &ns), -EINVAL);
	cr_assert_eq(rctx_grpc_timeout_parse("1S", NULL), -EINVAL);
	cr_assert_eq(ns, -42);
}

/* The string stops at its NUL: what follows is never read as part of it. */
Test(propagation, grpc_timeout_parse_stops_at_nul)
{
	const char s[] = { '5', 'm', '\0', 'x' };
	const char t[] = { '5', '\0', 'm', '\0' };
	int64_t ns;

	cr_assert_eq(rctx_grpc_timeout_parse(s, &ns), 0);
	cr_assert_eq(ns, 5000000);
	cr_assert_eq(rctx_grpc_timeout_parse(t, &ns), -EINVAL);
}

/* ---- grpc-timeout: format ------------------------------------------------ */

static int64_t unit_ns(char u)
{
	switch (u) {
	case 'n': return 1;
	case 'u': return 1000;
	case 'm': return 1000000;
	case 'S': return SEC;
	case 'M': return 60 * SEC;
	case 'H': return 3600 * SEC;
	}
	cr_assert(false, "unknown unit '%c'", u);
	return 0;
}

/*
 * Format ctx (deadline dl), parse the result back and check it against the
 * time left, measured before (t0) and after (t1) the call: it never exceeds
 * what was left at t0, and it is less than one unit below what was left at
 * t1 (rounded down, nothing else lost). Returns the unit. Slow runs
 * (valgrind) may reach a near deadline first: then it is 0.
 */
static char check_round_trip(rctx_t *ctx, int64_t dl)
{
	char buf[RCTX_GRPC_TIMEOUT_MAX];
	int64_t t0, t1, ns;
	int n;

	t0 = rctx_now();
	n = rctx_grpc_timeout_format(ctx, buf, sizeof(buf));
	t1 = rctx_now();
	cr_assert(n >= 2 && n <= 9, "format gave %d", n);
	cr_assert_eq(strlen(buf), (size_t)n);
	cr_assert_eq(rctx_grpc_timeout_parse(buf, &ns), 0, "\"%s\" does not parse", buf);
	/* A deadline that passed before t0 is "0n". */
	cr_assert_leq(ns, dl - t0 > 0 ? dl - t0 : 0, "\"%s\" is more than was left", buf);
	cr_assert_gt(ns, dl - t1 - unit_ns(buf[n - 1]), "\"%s\" lost more than a unit", buf);
	return buf[n - 1];
}

Test(propagation, grpc_timeout_format_picks_the_finest_unit_that_fits)
{
	static const struct {
		int64_t ahead;
		char unit;
	} cases[] = {
		{ 50 * 1000000LL, 'n' },        /* 5e7 ns */
		{ 10 * SEC, 'u' },              /* 1e7 us */
		{ 3600 * SEC, 'm' },            /* 3.6e6 ms */
		{ 100LL * 86400 * SEC, 'S' },   /* 8.64e6 s */
		{ 10LL * 365 * 86400 * SEC, 'M' }, /* 5.3e6 min */
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int64_t dl = rctx_now() + cases[i].ahead;
		rctx_t *ctx = rctx_with_deadline(rctx_background(), dl);

		cr_assert_not_null(ctx);
		cr_assert_eq(check_round_trip(ctx, dl), cases[i].unit,
			     "case %zu", i);
		rctx_release(ctx);
	}
}

/* A deadline near the end of time: hours, which always fit in 8 digits. */
Test(propagation, grpc_timeout_format_far_deadline_in_hours)
{
	int64_t dl = RCTX_FOREVER - 1;
	rctx_t *ctx = rctx_with_deadline(rctx_background(), dl);

	cr_assert_not_null(ctx);
	cr_assert_eq(check_round_trip(ctx, dl), 'H');
	rctx_release(ctx);
}

/* A value context below a deadline reports its ancestor's time left. */
Test(propagation, grpc_timeout_format_through_children)
{
	static int key;
	int64_t dl = rctx_now() + 5 * SEC;
	rctx_t *d = rctx_with_deadline(rctx_background(), dl);
	rctx_t *v = rctx_with_value(d, &key, NULL);
	rctx_t *c = rctx_with_cancel(v);

	cr_assert(d && v && c);
	cr_assert_eq(check_round_trip(v, dl), 'u');
	cr_assert_eq(check_round_trip(c, dl), 'u');
	rctx_release(c);
	rctx_unref(v);
	rctx_release(d);
}

Test(propagation, grpc_timeout_format_without_deadline_is_enoent)
{
	char buf[RCTX_GRPC_TIMEOUT_MAX] = "untouched";
	rctx_t *c = rctx_with_cancel(rctx_background());
	rctx_t *w;

	cr_assert_not_null(c);
	cr_assert_eq(rctx_grpc_timeout_format(rctx_background(), buf, sizeof(buf)), -ENOENT);
	cr_assert_eq(rctx_grpc_timeout_format(rctx_todo(), buf, sizeof(buf)), -ENOENT);
	cr_assert_eq(rctx_grpc_timeout_format(c, buf, sizeof(buf)), -ENOENT);
	/* Without-cancel drops the deadline. */
	rctx_t *d = rctx_with_timeout(rctx_background(), 5 * SEC);
	cr_assert_not_null(d);
	w = rctx_without_cancel(d);
	cr_assert_not_null(w);
	cr_assert_eq(rctx_grpc_timeout_format(w, buf, sizeof(buf)), -ENOENT);
	cr_assert_str_eq(buf, "untouched");
	rctx_unref(w);
	rctx_release(d);
	rctx_release(c);
}

Test(propagation, grpc_timeout_format_passed_deadline_is_0n)
{
	char buf[RCTX_GRPC_TIMEOUT_MAX];
	rctx_t *past = rctx_with_deadline(rctx_background(), rctx_now() - SEC);
	rctx_t *neg = rctx_with_deadline(rctx_background(), INT64_MIN);
	int64_t ns = -1;

	cr_assert(past && neg);
	cr_assert_eq(rctx_err(past), -ETIMEDOUT);
	cr_assert_eq(rctx_grpc_timeout_format(past, buf, sizeof(buf)), 2);
	cr_assert_str_eq(buf, "0n");
	cr_assert_eq(rctx_grpc_timeout_parse(buf, &ns), 0);
	cr_assert_eq(ns, 0);
	cr_assert_eq(rctx_grpc_timeout_format(neg, buf, sizeof(buf)), 2);
	cr_assert_str_eq(buf, "0n");
	rctx_release(neg);
	rctx_release(past);
}

/* Only the deadline counts: a cancelled context still reports its time. */
Test(propagation, grpc_timeout_format_ignores_cancellation)
{
	char buf[RCTX_GRPC_TIMEOUT_MAX];
	int64_t dl = rctx_now() + 5 * SEC;
	rctx_t *ctx = rctx_with_deadline(rctx_background(), dl);

	cr_assert_not_null(ctx);
	cr_assert_eq(rctx_cancel(ctx), 1);
	cr_assert_eq(check_round_trip(ctx, dl), 'u');
	cr_assert_gt(rctx_grpc_timeout_format(ctx, buf, sizeof(buf)), 2);
	rctx_release(ctx);
}

Test(propagation, grpc_timeout_format_buffer_and_arguments)
{
	char buf[RCTX_GRPC_TIMEOUT_MAX];
	rctx_t *ctx = rctx_with_timeout(rctx_background(), 30 * SEC);
	rctx_t *past = rctx_with_deadline(rctx_background(), 0);
	int n;

	cr_assert(ctx && past);
	/* "0n" needs 3 bytes. */
	memset(buf, 'x', sizeof(buf));
	cr_assert_eq(rctx_grpc_timeout_format(past, buf, 2), -ENOSPC);
	cr_assert_eq(buf[0], 'x', "buf written on -ENOSPC");
	cr_assert_eq(rctx_grpc_timeout_format(past, buf, 0), -ENOSPC);
	cr_assert_eq(rctx_grpc_timeout_format(past, buf, 3), 2);
	cr_assert_str_eq(buf, "0n");
	/* 30 s in microseconds: 8 digits and a unit, 10 bytes with the NUL. */
	memset(buf, 'x', sizeof(buf));
	cr_assert_eq(rctx_grpc_timeout_format(ctx, buf, 9), -ENOSPC);
	cr_assert_eq(buf[0], 'x', "buf written on -ENOSPC");
	n = rctx_grpc_timeout_format(ctx, buf, 10);
	cr_assert_eq(n, 9, "\"%s\"", buf);
	cr_assert_eq(buf[8], 'u');
	cr_assert_eq(rctx_grpc_timeout_format(NULL, buf, sizeof(buf)), -EINVAL);
	cr_assert_eq(rctx_grpc_timeout_format(ctx, NULL, sizeof(buf)), -EINVAL);
	cr_assert_eq(rctx_grpc_timeout_format(ctx, NULL, 0), -EINVAL);
	rctx_release(past);
	rctx_release(ctx);
}

/* ---- traceparent: parse -------------------------------------------------- */

/* Fields of the W3C test suite (w3c/trace-context, test/test.py). */
#define TID "12345678901234567890123456789012"
#define PID "1234567890123456"

static const char *const tp_valid[] = {
	"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
	"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
	"00-" TID "-" PID "-01",
	"00-" TID "-" PID "-ff",  /* unknown flags are carried */
	"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
	"00-00000000000000000000000000000001-0000000000000001-00",
	/* Future versions: the first 55 characters, then end or '-'. */
	"01-" TID "-" PID "-01",
	"cc-" TID "-" PID "-01",
	"cc-" TID "-" PID "-01-what-the-future-will-be-like",
	"fe-" TID "-" PID "-01-",
	"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-will-be-like",
};

static const char *const tp_invalid[] = {
	"",
	"00",
	/* version 00 is exactly 55 characters */
	"00-" TID "-" PID "-01.",
	"00-" TID "-" PID "-01-",
	"00-" TID "-" PID "-01-extra",
	"00-" TID "-" PID "-01-what-the-future-will-not-be-like",
	"cc-" TID "-" PID "-01.what-the-future-will-not-be-like",
	"cc-" TID "-" PID "-01what",
	/* version */
	"ff-" TID "-" PID "-01",
	"ff-0123456789abcdef0123456789abcdef-0123456789abcdef-01",
	".0-" TID "-" PID "-01",
	"0.-" TID "-" PID "-01",
	"0-" TID "-" PID "-01",
	"000-" TID "-" PID "-01",
	"0000-" TID "-" PID "-01",
	"0A-" TID "-" PID "-01",
	"FF-" TID "-" PID "-01",
	/* trace id */
	"00-00000000000000000000000000000000-" PID "-01",
	"00-.2345678901234567890123456789012-" PID "-01",
	"00-1234567890123456789012345678901.-" PID "-01",
	"00-123456789012345678901234567890123-" PID "-01",
	"00-1234567890123456789012345678901234-" PID "-01",
	"00-1234567890123456789012345678901-" PID "-01",
	"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
	"00-4bf92f3577b34da6a3ce929d0e0e473G-00f067aa0ba902b7-01",
	/* parent id */
	"00-" TID "-0000000000000000-01",
	"00-" TID "-.234567890123456-01",
	"00-" TID "-123456789012345.-01",
	"00-" TID "-12345678901234567-01",
	"00-" TID "-123456789012345-01",
	"00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01",
	/* flags */
	"00-" TID "-" PID "-.0",
	"00-" TID "-" PID "-0.",
	"00-" TID "-" PID "-001",
	"00-" TID "-" PID "-0",
	"00-" TID "-" PID "-",
	"00-" TID "-" PID "-0A",
	"00-" TID "-" PID,
	/* separators */
	"00_" TID "-" PID "-01",
	"00-" TID "_" PID "-01",
	"00-" TID "-" PID "_01",
	"00 " TID " " PID " 01",
	/* white space is HTTP's, stripped before */
	" 00-" TID "-" PID "-01",
	"00-" TID "-" PID "-01 ",
	"00-" TID "-" PID "-01\t",
	"01-" TID "-" PID,
};

Test(propagation, traceparent_valid_vectors)
{
	for (size_t i = 0; i < sizeof(tp_valid) / sizeof(tp_valid[0]); i++)
		cr_assert_eq(rctx_trace_parse(tp_valid[i], &(struct rctx_trace){ 0 }), 0,
			     "refused: \"%s\"", tp_valid[i]);
}

Test(propagation, traceparent_invalid_vectors_are_refused_untouched)
{
	for (size_t i = 0; i < sizeof(tp_invalid) / sizeof(tp_invalid[0]); i++) {
		struct rctx_trace t, orig;

		memset(&t, 0x5a, sizeof(t));
		orig = t;
		cr_assert_eq(rctx_trace_parse(tp_invalid[i], &t), -EINVAL,
			     "accepted: \"%s\"", tp_invalid[i]);
		cr_assert(memcmp(&t, &orig, sizeof(t)) == 0, "\"%s\" wrote *t",
			  tp_invalid[i]);
	}
}

Test(propagation, traceparent_parse_fields)
{
	static const uint8_t tid[16] = { 0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6,
					 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36 };
	static const uint8_t sid[8] = { 0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7 };
	struct rctx_trace t;

	cr_assert_eq(rctx_trace_parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", &t), 0);
	assert_bytes_eq(t.trace_id, tid, sizeof(tid));
	assert_bytes_eq(t.span_id, sid, sizeof(sid));
	cr_assert_eq(t.flags, 0x01);
	cr_assert_eq(rctx_trace_parse("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-9c-x", &t), 0);
	assert_bytes_eq(t.trace_id, tid, sizeof(tid));
	cr_assert_eq(t.flags, 0x9c);
}

Test(propagation, traceparent_parse_null_arguments)
{
	struct rctx_trace t;

	cr_assert_eq(rctx_trace_parse(NULL, &t), -EINVAL);
	cr_assert_eq(rctx_trace_parse(tp_valid[0], NULL), -EINVAL);
}

/* ---- traceparent: format ------------------------------------------------- */

Test(propagation, traceparent_format_round_trip)
{
	for (size_t i = 0; i < sizeof(tp_valid) / sizeof(tp_valid[0]); i++) {
		char buf[RCTX_TRACEPARENT_LEN + 1];
		struct rctx_trace t, u;

		cr_assert_eq(rctx_trace_parse(tp_valid[i], &t), 0);
		cr_assert_eq(rctx_trace_format(&t, buf, sizeof(buf)), RCTX_TRACEPARENT_LEN);
		cr_assert_eq(strlen(buf), RCTX_TRACEPARENT_LEN);
		/* Always version 00, the rest as received. */
		cr_assert(buf[0] == '0' && buf[1] == '0', "\"%s\"", buf);
		cr_assert(strncmp(buf + 2, tp_valid[i] + 2, RCTX_TRACEPARENT_LEN - 2) == 0,
			  "\"%s\" from \"%s\"", buf, tp_valid[i]);
		cr_assert_eq(rctx_trace_parse(buf, &u), 0);
		cr_assert(memcmp(&t, &u, sizeof(t)) == 0);
	}
}

Test(propagation, traceparent_format_buffer_and_arguments)
{
	char buf[RCTX_TRACEPARENT_LEN + 8];
	struct rctx_trace t, zero_tid, zero_sid;

	cr_assert_eq(rctx_trace_parse(tp_valid[0], &t), 0);
	memset(buf, 'x', sizeof(buf));
	cr_assert_eq(rctx_trace_format(&t, buf, RCTX_TRACEPARENT_LEN), -ENOSPC);
	cr_assert_eq(rctx_trace_format(&t, buf, 0), -ENOSPC);
	cr_assert_eq(buf[0], 'x', "buf written on -ENOSPC");
	cr_assert_eq(rctx_trace_format(&t, buf, sizeof(buf)), RCTX_TRACEPARENT_LEN);
	cr_assert_str_eq(buf, tp_valid[0]);
	cr_assert_eq(rctx_trace_format(NULL, buf, sizeof(buf)), -EINVAL);
	cr_assert_eq(rctx_trace_format(&t, NULL, sizeof(buf)), -EINVAL);
	zero_tid = t;
	memset(zero_tid.trace_id, 0, sizeof(zero_tid.trace_id));
	zero_sid = t;
	memset(zero_sid.span_id, 0, sizeof(zero_sid.span_id));
	cr_assert_eq(rctx_trace_format(&zero_tid, buf, sizeof(buf)), -EINVAL);
	cr_assert_eq(rctx_trace_format(&zero_sid, buf, sizeof(buf)), -EINVAL);
}

/* ---- child spans --------------------------------------------------------- */

static uint64_t span_of(const struct rctx_trace *t)
{
	uint64_t v;

	memcpy(&v, t->span_id, sizeof(v));
	return v;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

/* n ids must be pairwise distinct (ids has room for n, sorted in place). */
static void assert_distinct(uint64_t *ids, size_t n)
{
	qsort(ids, n, sizeof(*ids), cmp_u64);
	for (size_t i = 1; i < n; i++)
		cr_assert_neq(ids[i], ids[i - 1], "span id repeated: %016llx",
			      (unsigned long long)ids[i]);
}

Test(propagation, child_keeps_trace_and_flags_new_span_each_time)
{
	enum { N = 1000 };
	static uint64_t ids[N + 1];
	struct rctx_trace p, c;

	cr_assert_eq(rctx_trace_parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03", &p), 0);
	ids[N] = span_of(&p);
	for (int i = 0; i < N; i++) {
		cr_assert_eq(rctx_trace_child(&p, &c), 0);
		assert_bytes_eq(c.trace_id, p.trace_id, sizeof(p.trace_id));
		cr_assert_eq(c.flags, 0x03);
		cr_assert_neq(span_of(&c), 0, "zero span id");
		ids[i] = span_of(&c);
	}
	assert_distinct(ids, N + 1);
}

Test(propagation, child_in_place_and_of_a_child)
{
	char buf[RCTX_TRACEPARENT_LEN + 1];
	struct rctx_trace p, t, g;

	cr_assert_eq(rctx_trace_parse(tp_valid[0], &p), 0);
	t = p;
	cr_assert_eq(rctx_trace_child(&t, &t), 0);
	assert_bytes_eq(t.trace_id, p.trace_id, sizeof(p.trace_id));
	cr_assert_eq(t.flags, p.flags);
	cr_assert_neq(span_of(&t), span_of(&p));
	cr_assert_eq(rctx_trace_child(&t, &g), 0);
	assert_bytes_eq(g.trace_id, p.trace_id, sizeof(p.trace_id));
	cr_assert_neq(span_of(&g), span_of(&t));
	/* A child formats and parses back. */
	cr_assert_eq(rctx_trace_format(&g, buf, sizeof(buf)), RCTX_TRACEPARENT_LEN);
	cr_assert_eq(rctx_trace_parse(buf, &t), 0);
	cr_assert(memcmp(&t, &g, sizeof(t)) == 0);
}

Test(propagation, child_arguments)
{
	struct rctx_trace p, c, orig;

	cr_assert_eq(rctx_trace_parse(tp_valid[0], &p), 0);
	cr_assert_eq(rctx_trace_child(NULL, &c), -EINVAL);
	cr_assert_eq(rctx_trace_child(&p, NULL), -EINVAL);
	memset(p.trace_id, 0, sizeof(p.trace_id));
	memset(&c, 0x5a, sizeof(c));
	orig = c;
	cr_assert_eq(rctx_trace_child(&p, &c), -EINVAL);
	cr_assert(memcmp(&c, &orig, sizeof(c)) == 0);
}

/* ---- child spans: threads and fork --------------------------------------- */

enum { PER_THREAD = 200, THREADS = 4 };
static uint64_t thread_ids[THREADS][PER_THREAD];

static void *make_spans(void *arg)
{
	uint64_t *out = arg;
	struct rctx_trace p, c;

	if (rctx_trace_parse(tp_valid[0], &p))
		return (void *)1;
	for (int i = 0; i < PER_THREAD; i++) {
		if (rctx_trace_child(&p, &c))
			return (void *)1;
		out[i] = span_of(&c);
	}
	return NULL;
}

Test(propagation, child_span_ids_differ_between_threads)
{
	pthread_t th[THREADS];
	void *res;

	for (int i = 0; i < THREADS; i++)
		cr_assert_eq(pthread_create(&th[i], NULL, make_spans, thread_ids[i]), 0);
	for (int i = 0; i < THREADS; i++) {
		cr_assert_eq(pthread_join(th[i], &res), 0);
		cr_assert_null(res, "thread %d failed", i);
	}
	assert_distinct(&thread_ids[0][0], THREADS * PER_THREAD);
}

/* A forked child must not repeat the span ids its parent goes on making. */
Test(propagation, child_span_ids_differ_after_fork)
{
	enum { N = 16 };
	uint64_t mine[N], theirs[N], all[2 * N];
	struct rctx_trace p, c;
	int fds[2], status;
	pid_t pid;

	cr_assert_eq(rctx_trace_parse(tp_valid[0], &p), 0);
	cr_assert_eq(rctx_trace_child(&p, &c), 0); /* seeds this thread */
	cr_assert_eq(pipe(fds), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		for (int i = 0; i < N; i++) {
			if (rctx_trace_child(&p, &c))
				_exit(1);
			theirs[i] = span_of(&c);
		}
		_exit(write(fds[1], theirs, sizeof(theirs)) == sizeof(theirs) ? 0 : 1);
	}
	close(fds[1]);
	for (int i = 0; i < N; i++) {
		cr_assert_eq(rctx_trace_child(&p, &c), 0);
		mine[i] = span_of(&c);
	}
	cr_assert_eq(read(fds[0], theirs, sizeof(theirs)), (ssize_t)sizeof(theirs));
	close(fds[0]);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	memcpy(all, mine, sizeof(mine));
	memcpy(all + N, theirs, sizeof(theirs));
	assert_distinct(all, 2 * N);
}

/* ---- traces in contexts -------------------------------------------------- */

static void assert_trace_of(rctx_t *ctx, const struct rctx_trace *want)
{
	struct rctx_trace got;

	memset(&got, 0, sizeof(got));
	cr_assert_eq(rctx_trace_of(ctx, &got), 0);
	cr_assert(memcmp(&got, want, sizeof(got)) == 0, "another trace");
}

Test(propagation, with_trace_and_trace_of)
{
	struct rctx_trace t, copy;
	rctx_t *ctx;

	cr_assert_eq(rctx_trace_parse(tp_valid[0], &t), 0);
	copy = t;
	ctx = rctx_with_trace(rctx_background(), &t);
	cr_assert_not_null(ctx);
	/* Stored by value: the caller's struct may change at once. */
	memset(&t, 0xee, sizeof(t));
	assert_trace_of(ctx, &copy);
	cr_assert_eq(rctx_err(ctx), 0);
	rctx_unref(ctx);
}

Test(propagation, trace_of_without_trace_is_enoent)
{
	static int key;
	struct rctx_trace t, orig;
	rctx_t *c = rctx_with_cancel(rctx_background());
	rctx_t *v = rctx_with_value(c, &key, &key);

	cr_assert(c && v);
	memset(&t, 0x5a, sizeof(t));
	orig = t;
	cr_assert_eq(rctx_trace_of(rctx_background(), &t), -ENOENT);
	cr_assert_eq(rctx_trace_of(rctx_todo(), &t), -ENOENT);
	cr_assert_eq(rctx_trace_of(c, &t), -ENOENT);
	cr_assert_eq(rctx_trace_of(v, &t), -ENOENT);
	cr_assert(memcmp(&t, &orig, sizeof(t)) == 0);
	rctx_unref(v);
	rctx_release(c);
}

Test(propagation, trace_through_value_cancel_and_without_cancel)
{
	static int key;
	struct rctx_trace t;
	rctx_t *tr, *c, *v, *w, *d;

	cr_assert_eq(rctx_trace_parse(tp_valid[2], &t), 0);
	tr = rctx_with_trace(rctx_background(), &t);
	cr_assert_not_null(tr);
	c = rctx_with_cancel(tr);
	v = rctx_with_value(c, &key, &key);
	w = rctx_without_cancel(v);
	d = rctx_with_timeout(w, 30 * SEC);
	cr_assert(c && v && w && d);
	assert_trace_of(c, &t);
	assert_trace_of(v, &t);
	assert_trace_of(w, &t);
	assert_trace_of(d, &t);
	/* Other keys do not see it, and it does not hide them. */
	cr_assert_eq(rctx_value(d, &key), &key);
	cr_assert_null(rctx_value(tr, &key));
	rctx_release(d);
	rctx_unref(w);
	rctx_unref(v);
	rctx_release(c);
	rctx_unref(tr);
}

Test(propagation, nearest_trace_wins)
{
	struct rctx_trace t1, t2;
	rctx_t *a, *c, *b, *v;
	static int key;

	cr_assert_eq(rctx_trace_parse(tp_valid[0], &t1), 0);
	cr_assert_eq(rctx_trace_child(&t1, &t2), 0);
	a = rctx_with_trace(rctx_background(), &t1);
	cr_assert_not_null(a);
	c = rctx_with_cancel(a);
	cr_assert_not_null(c);
	b = rctx_with_trace(c, &t2);
	cr_assert_not_null(b);
	v = rctx_with_value(b, &key, NULL);
	cr_assert_not_null(v);
	assert_trace_of(v, &t2);
	assert_trace_of(b, &t2);
	assert_trace_of(c, &t1);
	assert_trace_of(a, &t1);
	rctx_unref(v);
	rctx_unref(b);
	rctx_release(c);
	rctx_unref(a);
}

/* A trace context is a value context: cancelled with its parent, not on
 * its own, and it outlives nothing it needs (the parent may go first). */
Test(propagation, trace_context_is_a_value_context)
{
	struct rctx_trace t;
	rctx_t *c, *tr, *k;

	cr_assert_eq(rctx_trace_parse(tp_valid[0], &t), 0);
	c = rctx_with_cancel(rctx_background());
	cr_assert_not_null(c);
	tr = rctx_with_trace(c, &t);
	cr_assert_not_null(tr);
	k = rctx_with_cancel(tr);
	cr_assert_not_null(k);
	cr_assert_eq(rctx_cancel(tr), -EINVAL);
	cr_assert_eq(rctx_err(tr), 0);
	cr_assert_eq(rctx_cancel(c), 1);
	cr_assert_eq(rctx_err(tr), -ECANCELED);
	cr_assert_eq(rctx_err(k), -ECANCELED);
	rctx_unref(c);
	rctx_unref(tr);
	assert_trace_of(k, &t);
	rctx_release(k);
}

Test(propagation, with_trace_arguments)
{
	struct rctx_trace t, bad;
	char buf[256];

	cr_assert_eq(rctx_trace_parse(tp_valid[0], &t), 0);
	cr_assert_null(rctx_with_trace(NULL, &t));
	cr_assert_null(rctx_with_trace(rctx_background(), NULL));
	bad = t;
	memset(bad.trace_id, 0, sizeof(bad.trace_id));
	cr_assert_null(rctx_with_trace(rctx_background(), &bad));
	bad = t;
	memset(bad.span_id, 0, sizeof(bad.span_id));
	cr_assert_null(rctx_with_trace(rctx_background(), &bad));
	cr_assert_eq(rctx_trace_of(NULL, &t), -EINVAL);
	cr_assert_eq(rctx_trace_of(rctx_background(), NULL), -EINVAL);
	/* It formats as the value context it is. */
	rctx_t *ctx = rctx_with_trace(rctx_todo(), &t);
	cr_assert_not_null(ctx);
	cr_assert_gt(rctx_format(ctx, buf, sizeof(buf)), 0);
	cr_assert(strncmp(buf, "context.TODO.WithValue(", 23) == 0, "\"%s\"", buf);
	rctx_unref(ctx);
}
