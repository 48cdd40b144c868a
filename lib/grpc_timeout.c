/* SPDX-License-Identifier: MIT */
/*
 * gRPC deadline propagation: the "grpc-timeout" header value, "TimeoutValue
 * TimeoutUnit" (gRPC over HTTP/2, PROTOCOL-HTTP2.md): at most 8 ASCII
 * digits and one unit letter. Parsing saturates what does not fit in int64_t
 * nanoseconds (only hours can) to RCTX_FOREVER; formatting picks the finest
 * unit that keeps the value in 8 digits and rounds down, so that a peer is
 * never given more time than is left.
 */
#include <stdio.h>

#include "internal.h"

#define GRPC_TIMEOUT_DIGITS 8
#define GRPC_TIMEOUT_VALUE_MAX 99999999LL

/* The units, finest first: the order format tries them in. */
static const struct grpc_unit {
	char c;
	int64_t ns;
} grpc_units[] = {
	{ 'n', 1 },
	{ 'u', 1000LL },
	{ 'm', 1000000LL },
	{ 'S', NSEC_PER_SEC },
	{ 'M', 60 * NSEC_PER_SEC },
	{ 'H', 3600 * NSEC_PER_SEC },
};

static const struct grpc_unit *grpc_unit_of(char c)
{
	for (size_t i = 0; i < sizeof(grpc_units) / sizeof(grpc_units[0]); i++)
		if (grpc_units[i].c == c)
			return &grpc_units[i];
	return NULL;
}

RCTX_API int rctx_grpc_timeout_parse(const char *str, int64_t *rel_ns)
{
	const struct grpc_unit *u;
	int64_t v = 0, ns;
	size_t n;

	if (!str || !rel_ns)
		return -EINVAL;
	for (n = 0; str[n] >= '0' && str[n] <= '9'; n++) {
		if (n == GRPC_TIMEOUT_DIGITS)
			return -EINVAL;
		v = v * 10 + (str[n] - '0');
	}
	if (n == 0 || !str[n] || str[n + 1])
		return -EINVAL;
	u = grpc_unit_of(str[n]);
	if (!u)
		return -EINVAL;
	if (__builtin_mul_overflow(v, u->ns, &ns))
		ns = RCTX_FOREVER;
	*rel_ns = ns;
	return 0;
}

RCTX_API int rctx_grpc_timeout_format(const rctx_t *ctx, char *buf, size_t len)
{
	const struct grpc_unit *u = grpc_units;
	char tmp[RCTX_GRPC_TIMEOUT_MAX];
	int64_t deadline, left;
	int n;

	if (!ctx_valid(ctx) || !buf)
		return -EINVAL;
	if (!rctx_deadline(ctx, &deadline))
		return -ENOENT;
	if (__builtin_sub_overflow(deadline, rctx_now(), &left) || left < 0)
		left = 0;
	/* Even int64_t's largest value fits in 8 digits of hours. */
	while (left / u->ns > GRPC_TIMEOUT_VALUE_MAX)
		u++;
	n = snprintf(tmp, sizeof(tmp), "%lld%c", (long long)(left / u->ns), u->c);
	if ((size_t)n >= len)
		return -ENOSPC;
	memcpy(buf, tmp, (size_t)n + 1);
	return n;
}
