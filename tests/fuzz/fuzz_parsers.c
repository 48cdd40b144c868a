/* SPDX-License-Identifier: MIT */
/*
 * Description: libFuzzer target for the propagation parsers. The input, as a
 * NUL-terminated string, goes to rctx_grpc_timeout_parse() and to
 * rctx_trace_parse(); each result is checked against the format's rules
 * written out again here, independently:
 *  - grpc-timeout: accepted exactly when the string is 1 to 8 ASCII digits
 *    and one of the units HMSmun, with the value times the unit (saturated at
 *    RCTX_FOREVER); *rel_ns untouched when refused;
 *  - traceparent: an accepted value is at least 55 characters, 55 exactly
 *    for version 00, followed by '-' otherwise, never version ff; it formats
 *    to "00" and the same 53 characters, which parse back to the same trace;
 *    a child keeps trace id and flags with a non-zero span id; a context
 *    made with it gives it back; *t untouched when refused.
 * Leaks are checked by LeakSanitizer (-detect_leaks=1).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ringctx.h"

#define CHECK(cond, ...)                                                      \
	do {                                                                  \
		if (!(cond)) {                                                \
			fprintf(stderr, "fuzz_parsers: %s:%d: %s: ", __FILE__, \
				__LINE__, #cond);                             \
			fprintf(stderr, __VA_ARGS__);                         \
			fputc('\n', stderr);                                  \
			__builtin_trap();                                     \
		}                                                             \
	} while (0)

/* The grpc-timeout rules, by another road: -1 if invalid. */
static int64_t grpc_model(const char *s)
{
	size_t n = strlen(s), digits = n - 1;
	unsigned long long v = 0;
	long double ns;

	if (n < 2 || n > 9)
		return -1;
	for (size_t i = 0; i < digits; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	switch (s[digits]) {
	case 'n': ns = v; break;
	case 'u': ns = v * 1e3L; break;
	case 'm': ns = v * 1e6L; break;
	case 'S': ns = v * 1e9L; break;
	case 'M': ns = v * 60e9L; break;
	case 'H': ns = v * 3600e9L; break;
	default: return -1;
	}
	return ns > (long double)INT64_MAX ? RCTX_FOREVER : (int64_t)ns;
}

static void fuzz_grpc(const char *s)
{
	int64_t ns = -42, want = grpc_model(s);
	int ret = rctx_grpc_timeout_parse(s, &ns);

	if (want < 0) {
		CHECK(ret == -EINVAL && ns == -42, "\"%s\" gave %d", s, ret);
		return;
	}
	CHECK(ret == 0 && ns == want, "\"%s\" gave %d, %lld (want %lld)", s, ret,
	      (long long)ns, (long long)want);
}

static void fuzz_trace(const char *s)
{
	char buf[RCTX_TRACEPARENT_LEN + 1];
	struct rctx_trace t, u, c;
	size_t n = strlen(s);
	rctx_t *ctx;

	memset(&t, 0x5a, sizeof(t));
	u = t;
	if (rctx_trace_parse(s, &t)) {
		CHECK(memcmp(&t, &u, sizeof(t)) == 0, "refused \"%s\" wrote *t", s);
		return;
	}
	CHECK(n >= RCTX_TRACEPARENT_LEN, "accepted %zu characters", n);
	CHECK(strncmp(s, "ff", 2) != 0, "accepted version ff");
	if (strncmp(s, "00", 2) == 0)
		CHECK(n == RCTX_TRACEPARENT_LEN, "version 00 of %zu characters", n);
	else
		CHECK(n == RCTX_TRACEPARENT_LEN || s[RCTX_TRACEPARENT_LEN] == '-',
		      "future version not followed by '-'");
	CHECK(rctx_trace_format(&t, buf, sizeof(buf)) == RCTX_TRACEPARENT_LEN, "format");
	CHECK(buf[0] == '0' && buf[1] == '0' &&
	      memcmp(buf + 2, s + 2, RCTX_TRACEPARENT_LEN - 2) == 0,
	      "\"%s\" formats as \"%s\"", s, buf);
	CHECK(rctx_trace_parse(buf, &u) == 0 && memcmp(&t, &u, sizeof(t)) == 0,
	      "\"%s\" does not parse back", buf);
	CHECK(rctx_trace_child(&t, &c) == 0, "child");
	CHECK(memcmp(c.trace_id, t.trace_id, sizeof(t.trace_id)) == 0 &&
	      c.flags == t.flags, "child lost the trace");
	ctx = rctx_with_trace(rctx_background(), &c);
	CHECK(ctx, "rctx_with_trace");
	CHECK(rctx_trace_of(ctx, &u) == 0 && memcmp(&u, &c, sizeof(u)) == 0,
	      "context lost the trace");
	rctx_unref(ctx);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);

	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	fuzz_grpc(s);
	fuzz_trace(s);
	free(s);
	return 0;
}
