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
	bool chunked;			/* Transfer-Encoding: chunked */
	bool expect_continue;
	struct http_slice range, timeout, trace_id;
	struct http_slice grpc_timeout, traceparent;
	struct http_slice if_match, if_none_match;	/* entity tags or "*" */
	struct http_slice if_modified_since, if_unmodified_since, if_range;
	bool has_grpc_timeout;		/* even if empty (then invalid) */
	size_t head_len;		/* bytes of the head, blank line included */
};
/* Every struct http_slice of struct http_req is listed in http_req_move(). */

/*
 * Parse one request head at the start of buf[0..len). Returns the length of
 * the head (> 0) with *r filled in, 0 if more bytes are needed, or minus an
 * HTTP status: -400 malformed, -414 request line too long, -417 an Expect
 * other than 100-continue, -431 head too large, -501 a transfer coding other
 * than chunked, -505 unsupported version. Pointers in *r point into buf.
 */
int http_parse(const char *buf, size_t len, const struct http_limits *lim,
	       struct http_req *r);

/*
 * The head parsed into *r was copied from `from` to `to`: make r's slices
 * point into the copy, so that the input buffer can be reused (a pipelined
 * request moved over it) while the request runs.
 */
void http_req_move(struct http_req *r, const char *from, const char *to);

/* ---- chunked request bodies (RFC 9112 7.1) ------------------------------ */

enum http_chunk_state {
	HTTP_CHUNK_SIZE,	/* a chunk-size line (extensions ignored) */
	HTTP_CHUNK_DATA,	/* `left` bytes of the chunk's data */
	HTTP_CHUNK_DATA_END,	/* the CRLF after them */
	HTTP_CHUNK_TRAILER,	/* trailer lines (discarded) up to an empty one */
	HTTP_CHUNK_DONE,
};

/* Longest chunk-size or trailer line, CRLF included: the input buffer
 * always has room for one, so decoding always makes progress. */
#define HTTP_CHUNK_LINE_MAX 4096

struct http_chunked {
	enum http_chunk_state state;
	uint64_t left;		/* of the current chunk's data */
	uint64_t total;		/* data bytes decoded so far */
};

/*
 * Decode the next piece of a chunked body at the start of buf[0..len): a
 * framing element (line or CRLF), or at most max_data (> 0) bytes of data,
 * which *data then points to (else it is empty). Returns the bytes consumed,
 * 0 if more are needed or the body has ended (HTTP_CHUNK_DONE), or -400 if
 * malformed. Framing lines must end in CRLF (a bare LF is refused: a front
 * proxy might frame the body otherwise).
 */
int http_chunk_next(struct http_chunked *st, const char *buf, size_t len, size_t max_data,
		    struct http_slice *data);

/*
 * Resolve a Range header value against an object of `size` bytes. Returns 0
 * for "the whole object" (no header, or one we ignore, e.g. several ranges or
 * another unit, as RFC 9110 permits), 1 with [*first, *last] for one
 * satisfiable range, or -416 when unsatisfiable.
 */
int http_range(struct http_slice s, uint64_t size, uint64_t *first, uint64_t *last);

/* ---- validators and conditional requests (RFC 9110 8.8, 13) ---------- */

#define HTTP_ETAG_MAX 40	/* "<16 hex>-<16 hex>", quoted, NUL */
#define HTTP_DATE_LEN 29	/* "Sun, 06 Nov 1994 08:49:37 GMT" */
#define HTTP_DATE_MAX 253402300799LL	/* 9999-12-31 23:59:59 */

/* The object as it is now, which the conditional headers are compared with. */
struct http_validators {
	bool exists;
	const char *etag;	/* strong, quoted */
	int64_t mtime;		/* seconds since the epoch (Last-Modified) */
};

/* An object's ETag, as nginx makes it ("mtime-size" in hex) but with the
 * mtime in ns, so that two writes within a second differ. */
void http_etag(char buf[HTTP_ETAG_MAX], int64_t mtime_ns, uint64_t size);

/* An HTTP-date (IMF-fixdate, GMT) of t, NUL-terminated; t is clamped to
 * [0, HTTP_DATE_MAX]. */
void http_date(char buf[HTTP_DATE_LEN + 1], int64_t t);

/* Parse an HTTP-date (IMF-fixdate, or the obsolete RFC 850 and asctime
 * forms). Returns 0 with *t, or -1 if s is not one. */
int http_date_parse(struct http_slice s, int64_t *t);

/* Are there preconditions (If-Match, If-None-Match, If-Unmodified-Since)? */
bool http_has_preconditions(const struct http_req *r);

/*
 * Evaluate the preconditions of r against the object (RFC 9110 13.2.2):
 * If-Match, else If-Unmodified-Since; then If-None-Match, else (GET and
 * HEAD) If-Modified-Since. Returns 0 (perform the method), 304 (GET, HEAD:
 * not modified) or 412 (precondition failed).
 */
int http_preconditions(const struct http_req *r, const struct http_validators *v);

/* Does the Range apply (no If-Range, or one that matches the object)? */
bool http_if_range(const struct http_req *r, const struct http_validators *v);

/* Case-insensitive comparison of a slice with a NUL-terminated string. */
bool http_slice_eq(struct http_slice s, const char *lit);

#endif
