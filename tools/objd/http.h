/* SPDX-License-Identifier: MIT */
/*
 * http.h - a pure HTTP/1.1 request-head parser (no I/O, no allocation), so
 * that a fuzz target can call it directly (tests/fuzz/fuzz_http.c).
 */
#ifndef OBJD_HTTP_H
#define OBJD_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A piece of the caller's buffer (not NUL-terminated). */
struct http_slice {
	const char *p;
	size_t n;
};

enum http_method { HTTP_OTHER, HTTP_GET, HTTP_HEAD, HTTP_PUT, HTTP_DELETE };

struct http_limits {
	size_t max_line;	/* request line, CRLF excluded (else 414) */
	size_t max_head;	/* request line + headers (else 431) */
};

struct http_req {
	enum http_method method;
	struct http_slice method_name, target;
	int minor;			/* HTTP/1.minor */
	bool keep_alive;		/* after Connection and the version */
	bool has_length;
	uint64_t content_length;
	bool chunked;			/* Transfer-Encoding present */
	bool expect_continue;
	struct http_slice range, timeout, trace_id;
	struct http_slice grpc_timeout, traceparent;
	bool has_grpc_timeout;		/* even if empty (then invalid) */
	size_t head_len;		/* bytes of the head, blank line included */
};
/* Every struct http_slice of struct http_req is listed in http_req_move(). */

/*
 * Parse one request head at the start of buf[0..len). Returns the length of
 * the head (> 0) with *r filled in, 0 if more bytes are needed, or minus an
 * HTTP status: -400 malformed, -414 request line too long, -431 head too
 * large, -505 unsupported version. Pointers in *r point into buf.
 */
int http_parse(const char *buf, size_t len, const struct http_limits *lim,
	       struct http_req *r);

/*
 * The head parsed into *r was copied from `from` to `to`: make r's slices
 * point into the copy, so that the input buffer can be reused (a pipelined
 * request moved over it) while the request runs.
 */
void http_req_move(struct http_req *r, const char *from, const char *to);

/*
 * Resolve a Range header value against an object of `size` bytes. Returns 0
 * for "the whole object" (no header, or one we ignore, e.g. several ranges or
 * another unit, as RFC 9110 permits), 1 with [*first, *last] for one
 * satisfiable range, or -416 when unsatisfiable.
 */
int http_range(struct http_slice s, uint64_t size, uint64_t *first, uint64_t *last);

/* Case-insensitive comparison of a slice with a NUL-terminated string. */
bool http_slice_eq(struct http_slice s, const char *lit);

#endif
