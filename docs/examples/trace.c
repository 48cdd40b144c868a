/* SPDX-License-Identifier: MIT */
/*
 * Trace identity through values and traceparent.
 *
 * Go: a middleware puts the trace in the request's context (WithValue, or
 * OpenTelemetry's propagator), and the client side writes it into the next
 * request's headers. ringctx: rctx_trace_parse() reads an incoming W3C
 * traceparent, rctx_with_trace() keeps it in the request's context by
 * value, any function below reads it back with rctx_trace_of(), and an
 * outgoing call sends a child span with rctx_trace_child() and
 * rctx_trace_format().
 */
#include <stdio.h>
#include <string.h>

#include <ringctx.h>

/* Deep in the handler: only the context is passed down. */
static int call_next_service(rctx_t *ctx, char *header, size_t len)
{
	struct rctx_trace in, out;
	int ret;

	ret = rctx_trace_of(ctx, &in);
	if (ret < 0)
		return ret;
	ret = rctx_trace_child(&in, &out);
	if (ret < 0)
		return ret;
	return rctx_trace_format(&out, header, len);
}

int main(void)
{
	const char *incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
	char outgoing[RCTX_TRACEPARENT_LEN + 1];
	struct rctx_trace t;
	rctx_t *req;
	int ret;

	if (rctx_trace_parse(incoming, &t) < 0)
		return fprintf(stderr, "bad traceparent\n"), 1;
	req = rctx_with_trace(rctx_background(), &t);
	if (!req)
		return 1;
	ret = call_next_service(req, outgoing, sizeof(outgoing));
	printf("incoming traceparent: %s\noutgoing traceparent: %s\n", incoming,
	       ret < 0 ? "(error)" : outgoing);
	rctx_release(req);
	/* Same trace (chars 3..34), same flags, a new span id. */
	return ret == RCTX_TRACEPARENT_LEN && !memcmp(incoming, outgoing, 36) &&
	       memcmp(incoming + 36, outgoing + 36, 16) &&
	       !strcmp(incoming + 52, outgoing + 52) ? 0 : 1;
}
