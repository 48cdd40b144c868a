/* SPDX-License-Identifier: MIT */
/*
 * W3C Trace Context, level 1: the traceparent header value
 * "<version>-<trace-id>-<parent-id>-<trace-flags>", child spans, and a trace
 * carried by value in a context. The value lives in its value node's own
 * allocation under a key private to this file, so it can neither dangle nor
 * be shadowed by another key.
 *
 * Span ids come from a splitmix64 generator per thread, seeded from
 * getrandom(2) on a thread's first call and again in the child of a fork()
 * (which would otherwise repeat its parent's ids): no system call, no lock,
 * and no repeat within a thread (splitmix64 is a bijection of its state).
 */
#include <pthread.h>
#include <sys/random.h>

#include "internal.h"

/* Offsets in a traceparent value: "vv-<32>-<16>-ff". */
#define TP_VERSION 0
#define TP_TRACE_ID 3
#define TP_SPAN_ID 36
#define TP_FLAGS 53
#define TP_VERSION_INVALID 0xff

static const char trace_key; /* the key of trace values: its address */

static bool all_zero(const uint8_t *p, size_t n)
{
	uint8_t acc = 0;

	while (n--)
		acc |= *p++;
	return acc == 0;
}

static bool trace_valid(const struct rctx_trace *t)
{
	return !all_zero(t->trace_id, sizeof(t->trace_id)) &&
	       !all_zero(t->span_id, sizeof(t->span_id));
}

/* ---- text ---------------------------------------------------------------- */

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1; /* uppercase is not allowed either */
}

/* Decode n bytes of lowercase hex at s into out. Stops at the first bad
 * character, so it never reads past a NUL. */
static bool hex_decode(const char *s, uint8_t *out, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int hi = hex_digit(s[2 * i]), lo;

		if (hi < 0)
			return false;
		lo = hex_digit(s[2 * i + 1]);
		if (lo < 0)
			return false;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return true;
}

static void hex_encode(char *s, const uint8_t *in, size_t n)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		s[2 * i] = digits[in[i] >> 4];
		s[2 * i + 1] = digits[in[i] & 0xf];
	}
}

/* The fields in the layout every version shares, each checked before the
 * next is read. */
static bool parse_fields(const char *s, uint8_t *version, struct rctx_trace *t)
{
	return hex_decode(s + TP_VERSION, version, 1) &&
	       s[TP_TRACE_ID - 1] == '-' &&
	       hex_decode(s + TP_TRACE_ID, t->trace_id, sizeof(t->trace_id)) &&
	       s[TP_SPAN_ID - 1] == '-' &&
	       hex_decode(s + TP_SPAN_ID, t->span_id, sizeof(t->span_id)) &&
	       s[TP_FLAGS - 1] == '-' &&
	       hex_decode(s + TP_FLAGS, &t->flags, 1);
}

RCTX_API int rctx_trace_parse(const char *str, struct rctx_trace *t)
{
	struct rctx_trace tmp;
	uint8_t version;
	char end;

	if (!str || !t || !parse_fields(str, &version, &tmp))
		return -EINVAL;
	end = str[RCTX_TRACEPARENT_LEN];
	if (version == TP_VERSION_INVALID || !trace_valid(&tmp))
		return -EINVAL;
	/* Version 00 is exactly 55 characters; a later version may append
	 * fields of its own after a '-'. */
	if (end && (version == 0 || end != '-'))
		return -EINVAL;
	*t = tmp;
	return 0;
}

RCTX_API int rctx_trace_format(const struct rctx_trace *t, char *buf, size_t len)
{
	if (!t || !buf || !trace_valid(t))
		return -EINVAL;
	if (len < RCTX_TRACEPARENT_LEN + 1)
		return -ENOSPC;
	buf[0] = '0';
	buf[1] = '0';
	buf[TP_TRACE_ID - 1] = '-';
	hex_encode(buf + TP_TRACE_ID, t->trace_id, sizeof(t->trace_id));
	buf[TP_SPAN_ID - 1] = '-';
	hex_encode(buf + TP_SPAN_ID, t->span_id, sizeof(t->span_id));
	buf[TP_FLAGS - 1] = '-';
	hex_encode(buf + TP_FLAGS, &t->flags, 1);
	buf[RCTX_TRACEPARENT_LEN] = '\0';
	return RCTX_TRACEPARENT_LEN;
}

/* ---- span ids ------------------------------------------------------------ */

static __thread uint64_t span_state;
static __thread bool span_seeded;
static pthread_once_t span_fork_once = PTHREAD_ONCE_INIT;

/* In the child of a fork, on the one thread it has. */
static void span_forget_seed(void)
{
	span_seeded = false;
}

static void span_fork_register(void)
{
	pthread_atfork(NULL, NULL, span_forget_seed);
}

static void span_seed(void)
{
	uint64_t s;

	pthread_once(&span_fork_once, span_fork_register);
	if (getrandom(&s, sizeof(s), GRND_NONBLOCK) != (ssize_t)sizeof(s))
		/* No entropy yet (early boot): time and the thread's own
		 * address still differ between threads and runs. */
		s = (uint64_t)rctx_now() ^
		    ((uint64_t)(uintptr_t)&span_state * 0x9e3779b97f4a7c15ULL);
	span_state = s;
	span_seeded = true;
}

/* splitmix64 (Steele, Lea, Flood), never 0. */
static uint64_t span_next(void)
{
	uint64_t z;

	if (unlikely(!span_seeded))
		span_seed();
	do {
		z = (span_state += 0x9e3779b97f4a7c15ULL);
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
		z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
		z ^= z >> 31;
	} while (unlikely(z == 0));
	return z;
}

RCTX_API int rctx_trace_child(const struct rctx_trace *parent,
			      struct rctx_trace *child)
{
	ERRNO_GUARD;
	uint64_t id;

	if (!parent || !child || all_zero(parent->trace_id, sizeof(parent->trace_id)))
		return -EINVAL;
	id = span_next();
	if (child != parent) {
		memcpy(child->trace_id, parent->trace_id, sizeof(child->trace_id));
		child->flags = parent->flags;
	}
	memcpy(child->span_id, &id, sizeof(child->span_id));
	return 0;
}

/* ---- in a context -------------------------------------------------------- */

RCTX_API rctx_t *rctx_with_trace(rctx_t *parent, const struct rctx_trace *t)
{
	ERRNO_GUARD;
	struct rctx *c;
	void *blob;

	if (!ctx_valid(parent) || !t || !trace_valid(t))
		return ERRNO_FAIL(EINVAL);
	c = rctx__value_blob(parent, &trace_key, sizeof(*t), &blob);
	if (!c)
		return ERRNO_FAIL(errno);
	memcpy(blob, t, sizeof(*t));
	return c;
}

RCTX_API int rctx_trace_of(const rctx_t *ctx, struct rctx_trace *t)
{
	void *val;

	if (!ctx_valid(ctx) || !t)
		return -EINVAL;
	if (!rctx__value_lookup(ctx, &trace_key, &val) || !val)
		return -ENOENT;
	memcpy(t, val, sizeof(*t));
	return 0;
}
