/* SPDX-License-Identifier: MIT */
/*
 * http.c - the request-head parser: strict enough to refuse request
 * smuggling (Content-Length with Transfer-Encoding, conflicting lengths,
 * obsolete line folding), lenient about a bare LF line ending.
 */
#include <string.h>
#include <strings.h>

#include "http.h"

bool http_slice_eq(struct http_slice s, const char *lit)
{
	return strlen(lit) == s.n && strncasecmp(s.p, lit, s.n) == 0;
}

static bool is_tchar(unsigned char ch)
{
	if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9'))
		return true;
	return ch && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

/* The end of the line starting at p (the '\n'), or NULL if not in [p, end). */
static const char *line_end(const char *p, const char *end)
{
	return memchr(p, '\n', end - p);
}

/* A line's content without its "\r\n" or "\n". */
static struct http_slice line_of(const char *p, const char *nl)
{
	struct http_slice s = { p, nl - p };

	if (s.n && s.p[s.n - 1] == '\r')
		s.n--;
	return s;
}

static int parse_u64(struct http_slice s, uint64_t *v)
{
	uint64_t x = 0;

	if (s.n == 0 || s.n > 19)
		return -1;
	for (size_t i = 0; i < s.n; i++) {
		if (s.p[i] < '0' || s.p[i] > '9')
			return -1;
		x = x * 10 + (uint64_t)(s.p[i] - '0');
	}
	*v = x;
	return 0;
}

static struct http_slice trim(struct http_slice s)
{
	while (s.n && (s.p[0] == ' ' || s.p[0] == '\t')) {
		s.p++;
		s.n--;
	}
	while (s.n && (s.p[s.n - 1] == ' ' || s.p[s.n - 1] == '\t'))
		s.n--;
	return s;
}

/* Does a comma-separated header value contain the token `tok`? */
static bool has_token(struct http_slice v, const char *tok)
{
	while (v.n) {
		const char *comma = memchr(v.p, ',', v.n);
		size_t n = comma ? (size_t)(comma - v.p) : v.n;
		struct http_slice t = trim((struct http_slice){ v.p, n });

		if (http_slice_eq(t, tok))
			return true;
		v.p += comma ? n + 1 : n;
		v.n -= comma ? n + 1 : n;
	}
	return false;
}

static enum http_method method_of(struct http_slice m)
{
	static const struct { const char *name; enum http_method m; } tab[] = {
		{ "GET", HTTP_GET }, { "HEAD", HTTP_HEAD },
		{ "PUT", HTTP_PUT }, { "DELETE", HTTP_DELETE },
	};

	for (size_t i = 0; i < sizeof(tab) / sizeof(tab[0]); i++)
		if (m.n == strlen(tab[i].name) && !memcmp(m.p, tab[i].name, m.n))
			return tab[i].m;
	return HTTP_OTHER;
}

/* "METHOD SP origin-form SP HTTP/1.x" */
static int parse_request_line(struct http_slice l, struct http_req *r)
{
	const char *sp1 = memchr(l.p, ' ', l.n), *sp2;
	size_t i;

	if (!sp1 || sp1 == l.p)
		return -400;
	r->method_name = (struct http_slice){ l.p, sp1 - l.p };
	for (i = 0; i < r->method_name.n; i++)
		if (!is_tchar((unsigned char)l.p[i]))
			return -400;
	sp2 = memchr(sp1 + 1, ' ', l.n - (sp1 + 1 - l.p));
	if (!sp2 || sp2 == sp1 + 1 || sp1[1] != '/')
		return -400;
	r->target = (struct http_slice){ sp1 + 1, sp2 - sp1 - 1 };
	for (i = 0; i < r->target.n; i++)
		if ((unsigned char)r->target.p[i] <= ' ' || r->target.p[i] == 0x7f)
			return -400;
	l.n -= sp2 + 1 - l.p;
	l.p = sp2 + 1;
	if (l.n != 8 || memcmp(l.p, "HTTP/", 5) || l.p[6] != '.' ||
	    l.p[5] < '0' || l.p[5] > '9' || l.p[7] < '0' || l.p[7] > '9')
		return -400;
	if (l.p[5] != '1')
		return -505;
	r->minor = l.p[7] - '0';
	r->method = method_of(r->method_name);
	r->keep_alive = r->minor >= 1;
	return 0;
}

static int header(struct http_slice l, struct http_req *r)
{
	const char *colon = memchr(l.p, ':', l.n);
	struct http_slice name, v;
	uint64_t n;

	if (!colon || colon == l.p)
		return -400;
	name = (struct http_slice){ l.p, colon - l.p };
	for (size_t i = 0; i < name.n; i++)
		if (!is_tchar((unsigned char)name.p[i]))
			return -400;	/* also refuses "Name :" and folding */
	v = trim((struct http_slice){ colon + 1, l.n - name.n - 1 });
	for (size_t i = 0; i < v.n; i++)
		if (v.p[i] == '\0' || v.p[i] == '\r' || v.p[i] == '\n')
			return -400;

	if (http_slice_eq(name, "content-length")) {
		if (parse_u64(v, &n) || (r->has_length && n != r->content_length))
			return -400;
		r->has_length = true;
		r->content_length = n;
	} else if (http_slice_eq(name, "transfer-encoding")) {
		r->chunked = true;
	} else if (http_slice_eq(name, "connection")) {
		if (has_token(v, "close"))
			r->keep_alive = false;
		else if (has_token(v, "keep-alive"))
			r->keep_alive = true;
	} else if (http_slice_eq(name, "expect")) {
		if (!http_slice_eq(v, "100-continue"))
			return -417;
		r->expect_continue = true;
	} else if (http_slice_eq(name, "range")) {
		r->range = v;
	} else if (http_slice_eq(name, "x-request-timeout")) {
		r->timeout = v;
	} else if (http_slice_eq(name, "x-trace-id")) {
		r->trace_id = v;
	} else if (http_slice_eq(name, "grpc-timeout")) {
		r->grpc_timeout = v;
		r->has_grpc_timeout = true;
	} else if (http_slice_eq(name, "traceparent")) {
		r->traceparent = v;
	}
	return 0;
}

int http_parse(const char *buf, size_t len, const struct http_limits *lim,
	       struct http_req *r)
{
	const char *p = buf, *end = buf + len, *nl;
	int err;

	memset(r, 0, sizeof(*r));
	/* Tolerate empty lines before a request (RFC 9112 2.2). */
	while (p < end && (*p == '\r' || *p == '\n') && p - buf < 4)
		p++;
	nl = line_end(p, end);
	if (!nl)
		return len - (p - buf) > lim->max_line ? -414 : 0;
	if (line_of(p, nl).n > lim->max_line)
		return -414;
	if ((size_t)(nl + 1 - buf) > lim->max_head)
		return -431;
	err = parse_request_line(line_of(p, nl), r);
	if (err)
		return err;
	for (p = nl + 1;; p = nl + 1) {
		nl = line_end(p, end);
		if (!nl)
			return len > lim->max_head ? -431 : 0;
		if ((size_t)(nl + 1 - buf) > lim->max_head)
			return -431;
		if (line_of(p, nl).n == 0)
			break;
		err = header(line_of(p, nl), r);
		if (err)
			return err;
	}
	if (r->chunked && r->has_length)
		return -400;
	r->head_len = nl + 1 - buf;
	return (int)r->head_len;
}

void http_req_move(struct http_req *r, const char *from, const char *to)
{
	struct http_slice *s[] = {
		&r->method_name, &r->target, &r->range, &r->timeout, &r->trace_id,
		&r->grpc_timeout, &r->traceparent,
	};

	for (size_t i = 0; i < sizeof(s) / sizeof(s[0]); i++)
		if (s[i]->p)
			s[i]->p = to + (s[i]->p - from);
}

/* "bytes=a-b", "bytes=a-", "bytes=-n" */
int http_range(struct http_slice s, uint64_t size, uint64_t *first, uint64_t *last)
{
	struct http_slice a, b;
	const char *dash;
	uint64_t x, y;

	if (!s.n)
		return 0;
	if (s.n < 6 || strncasecmp(s.p, "bytes=", 6) || memchr(s.p, ',', s.n))
		return 0;
	s.p += 6;
	s.n -= 6;
	dash = memchr(s.p, '-', s.n);
	if (!dash)
		return 0;
	a = trim((struct http_slice){ s.p, dash - s.p });
	b = trim((struct http_slice){ dash + 1, s.n - (dash + 1 - s.p) });
	if (!a.n) {			/* suffix: the last n bytes */
		if (parse_u64(b, &y))
			return 0;
		if (y == 0 || size == 0)
			return -416;
		*first = y >= size ? 0 : size - y;
		*last = size - 1;
		return 1;
	}
	if (parse_u64(a, &x) || (b.n && parse_u64(b, &y)))
		return 0;
	if (b.n && y < x)
		return 0;		/* invalid: ignored, as RFC 9110 says */
	if (x >= size)
		return -416;
	*first = x;
	*last = (!b.n || y >= size) ? size - 1 : y;
	return 1;
}
