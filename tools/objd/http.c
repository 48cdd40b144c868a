/* SPDX-License-Identifier: MIT */
/*
 * http.c - the request-head parser: strict enough to refuse request
 * smuggling (Content-Length with Transfer-Encoding, conflicting lengths,
 * obsolete line folding), lenient about a bare LF line ending.
 */
#include <stdio.h>
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

/*
 * Transfer-Encoding (RFC 9112 6.1): chunked must be the last coding, and
 * there only once, else the body's length is unknown (400); a coding before
 * it is one we do not implement (501).
 */
static int transfer_encoding(struct http_slice v, struct http_req *r)
{
	const char *comma = v.n ? memrchr(v.p, ',', v.n) : NULL;
	struct http_slice last = v;

	if (comma)
		last = trim((struct http_slice){ comma + 1, v.n - (comma + 1 - v.p) });
	if (r->chunked || !http_slice_eq(last, "chunked") ||
	    (comma && has_token((struct http_slice){ v.p, comma - v.p }, "chunked")))
		return -400;
	r->chunked = true;
	return comma ? -501 : 0;
}

static int header(struct http_slice l, struct http_req *r)
{
	const char *colon = memchr(l.p, ':', l.n);
	struct http_slice name, v;
	uint64_t n;
	int err;

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
		err = transfer_encoding(v, r);
		if (err)
			return err;
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
	} else if (http_slice_eq(name, "if-match")) {
		r->if_match = v;
	} else if (http_slice_eq(name, "if-none-match")) {
		r->if_none_match = v;
	} else if (http_slice_eq(name, "if-modified-since")) {
		r->if_modified_since = v;
	} else if (http_slice_eq(name, "if-unmodified-since")) {
		r->if_unmodified_since = v;
	} else if (http_slice_eq(name, "if-range")) {
		r->if_range = v;
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
	/* Both lengths, or a transfer coding in HTTP/1.0: request smuggling
	 * or a framing we cannot trust (RFC 9112 6.1, 6.3). */
	if (r->chunked && (r->has_length || r->minor == 0))
		return -400;
	r->head_len = nl + 1 - buf;
	return (int)r->head_len;
}

void http_req_move(struct http_req *r, const char *from, const char *to)
{
	struct http_slice *s[] = {
		&r->method_name, &r->target, &r->range, &r->timeout, &r->trace_id,
		&r->grpc_timeout, &r->traceparent, &r->if_match, &r->if_none_match,
		&r->if_modified_since, &r->if_unmodified_since, &r->if_range,
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

/* ---- validators and conditional requests -------------------------------- */

static const char wdays[7][4] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
static const char months[12][4] = {
	"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"
};

void http_etag(char buf[HTTP_ETAG_MAX], int64_t mtime_ns, uint64_t size)
{
	snprintf(buf, HTTP_ETAG_MAX, "\"%llx-%llx\"", (unsigned long long)mtime_ns,
		 (unsigned long long)size);
}

/* Days since 1970-01-01 of a proleptic Gregorian date (month 1..12). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
	int64_t era, yoe, doy;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	return era * 146097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719468;
}

/* The inverse: year, month (1..12) and day of a day number. */
static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
	int64_t era, doe, yoe, doy, mp;

	z += 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = z - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = yoe + era * 400 + (*m <= 2);
}

/* Years 1970 to 9999 (an mtime outside is clamped: a four-digit year). */
void http_date(char buf[HTTP_DATE_LEN + 1], int64_t t)
{
	int64_t days, secs, y;
	int m, d;

	t = t < 0 ? 0 : t > HTTP_DATE_MAX ? HTTP_DATE_MAX : t;
	days = t / 86400;
	secs = t % 86400;
	civil_from_days(days, &y, &m, &d);
	snprintf(buf, HTTP_DATE_LEN + 1, "%s, %02u %s %04u %02u:%02u:%02u GMT",
		 wdays[(days + 4) % 7], (unsigned)d % 100, months[m - 1], (unsigned)y % 10000,
		 (unsigned)(secs / 3600) % 100, (unsigned)(secs / 60 % 60), (unsigned)(secs % 60));
}

/* n decimal digits at p ("  6" too when pad: asctime's day); -1 if not. */
static int digits(const char *p, int n, bool pad)
{
	int v = 0, i = 0;

	if (pad && p[0] == ' ')
		i = 1;
	for (; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		v = v * 10 + (p[i] - '0');
	}
	return v;
}

static int month_of(const char *p)
{
	for (int i = 0; i < 12; i++)
		if (!memcmp(p, months[i], 3))
			return i + 1;
	return -1;
}

/* "HH:MM:SS" at p into seconds of the day; -1 if not. */
static int64_t clock_of(const char *p)
{
	int h = digits(p, 2, false), m = digits(p + 3, 2, false), s = digits(p + 6, 2, false);

	if (p[2] != ':' || p[5] != ':' || h < 0 || h > 23 || m < 0 || m > 59 || s < 0 || s > 60)
		return -1;
	return h * 3600 + m * 60 + s;
}

int http_date_parse(struct http_slice s, int64_t *t)
{
	const char *p = s.p, *c = s.n ? memchr(s.p, ',', s.n) : NULL;
	int64_t y, hms;
	int m, d;

	if (s.n == 29 && c == p + 3 && p[4] == ' ' && p[7] == ' ' && p[11] == ' ' &&
	    p[16] == ' ' && !memcmp(p + 25, " GMT", 4)) {
		/* IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT" */
		d = digits(p + 5, 2, false);
		m = month_of(p + 8);
		y = digits(p + 12, 4, false);
		hms = clock_of(p + 17);
	} else if (s.n == 24 && !c && p[3] == ' ' && p[7] == ' ' && p[10] == ' ' && p[19] == ' ') {
		/* asctime: "Sun Nov  6 08:49:37 1994" */
		d = digits(p + 8, 2, true);
		m = month_of(p + 4);
		y = digits(p + 20, 4, false);
		hms = clock_of(p + 11);
	} else if (c && s.n - (c - p) == 24 && c[1] == ' ' && c[4] == '-' && c[8] == '-' &&
		   c[11] == ' ' && !memcmp(c + 20, " GMT", 4)) {
		/* RFC 850: "Sunday, 06-Nov-94 08:49:37 GMT" */
		d = digits(c + 2, 2, false);
		m = month_of(c + 5);
		y = digits(c + 9, 2, false);
		y += y < 0 ? 0 : y < 70 ? 2000 : 1900;
		hms = clock_of(c + 12);
	} else {
		return -1;
	}
	if (d < 1 || d > 31 || m < 0 || y < 0 || hms < 0)
		return -1;
	*t = days_from_civil(y, m, d) * 86400 + hms;
	return 0;
}

static bool is_star(struct http_slice v)
{
	return v.n == 1 && v.p[0] == '*';
}

/*
 * Is etag in the list of entity tags v ("W/"? DQUOTE ... DQUOTE, separated
 * by commas)? The strong comparison: a weak tag never matches; the weak one
 * (If-None-Match) ignores "W/". A malformed list matches from no point on.
 */
static bool etag_in(struct http_slice v, const char *etag, bool weak)
{
	const char *p = v.p, *end = v.p + v.n, *q;
	size_t n = strlen(etag);
	bool w;

	for (;;) {
		while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
			p++;
		if (p == end)
			return false;
		w = end - p >= 2 && p[0] == 'W' && p[1] == '/';
		if (w)
			p += 2;
		if (p == end || *p != '"')
			return false;
		q = memchr(p + 1, '"', end - p - 1);
		if (!q)
			return false;
		if ((!w || weak) && (size_t)(q + 1 - p) == n && !memcmp(p, etag, n))
			return true;
		p = q + 1;
	}
}

bool http_has_preconditions(const struct http_req *r)
{
	return r->if_match.n || r->if_none_match.n || r->if_unmodified_since.n;
}

int http_preconditions(const struct http_req *r, const struct http_validators *v)
{
	bool get = r->method == HTTP_GET || r->method == HTTP_HEAD;
	int64_t t;

	if (r->if_match.n) {
		if (!v->exists || !(is_star(r->if_match) || etag_in(r->if_match, v->etag, false)))
			return 412;
	} else if (r->if_unmodified_since.n && v->exists &&
		   !http_date_parse(r->if_unmodified_since, &t) && v->mtime > t) {
		return 412;
	}
	if (r->if_none_match.n) {
		if (v->exists && (is_star(r->if_none_match) || etag_in(r->if_none_match, v->etag, true)))
			return get ? 304 : 412;
	} else if (get && r->if_modified_since.n && v->exists &&
		   !http_date_parse(r->if_modified_since, &t) && v->mtime <= t) {
		return 304;
	}
	return 0;
}

bool http_if_range(const struct http_req *r, const struct http_validators *v)
{
	struct http_slice s = r->if_range;
	int64_t t;

	if (!s.n)
		return true;
	if (s.p[0] == '"' || s.p[0] == 'W')	/* an entity tag: strong */
		return etag_in(s, v->etag, false);
	return !http_date_parse(s, &t) && t == v->mtime;
}

/* ---- chunked request bodies --------------------------------------------- */

/* A framing line at buf: its length with the CRLF and *l its content, 0 if
 * incomplete, -400 if too long, not ending in CRLF, or holding a CR or NUL. */
static int chunk_line(const char *buf, size_t len, struct http_slice *l)
{
	const char *nl = memchr(buf, '\n', len < HTTP_CHUNK_LINE_MAX ? len : HTTP_CHUNK_LINE_MAX);

	if (!nl)
		return len >= HTTP_CHUNK_LINE_MAX ? -400 : 0;
	if (nl == buf || nl[-1] != '\r')
		return -400;
	*l = (struct http_slice){ buf, nl - 1 - buf };
	if (memchr(l->p, '\r', l->n) || memchr(l->p, '\0', l->n))
		return -400;
	return (int)(nl + 1 - buf);
}

/* "1*HEXDIG [ BWS ; chunk-ext ]": the size (at most 2^60 - 1). */
static int chunk_size(struct http_slice l, uint64_t *n)
{
	uint64_t x = 0;
	size_t i;

	for (i = 0; i < l.n; i++) {
		char ch = l.p[i];
		int d = ch >= '0' && ch <= '9' ? ch - '0' :
			ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 :
			ch >= 'A' && ch <= 'F' ? ch - 'A' + 10 : -1;

		if (d < 0)
			break;
		if (x >> 56)
			return -1;
		x = x * 16 + d;
	}
	if (i == 0)
		return -1;
	while (i < l.n && (l.p[i] == ' ' || l.p[i] == '\t'))
		i++;
	if (i < l.n && l.p[i] != ';')
		return -1;
	*n = x;
	return 0;
}

/* At most max_data of the chunk's data that the buffer holds. */
static int chunk_data(struct http_chunked *st, size_t len, size_t max_data,
		      struct http_slice *data)
{
	size_t n = len < st->left ? len : st->left;

	if (n > max_data)
		n = max_data;
	if (n > (1u << 30))
		n = 1u << 30;
	data->n = n;
	st->left -= n;
	st->total += n;
	if (!st->left)
		st->state = HTTP_CHUNK_DATA_END;
	return (int)n;
}

int http_chunk_next(struct http_chunked *st, const char *buf, size_t len, size_t max_data,
		    struct http_slice *data)
{
	struct http_slice l;
	int n;

	*data = (struct http_slice){ buf, 0 };
	switch (st->state) {
	case HTTP_CHUNK_SIZE:
		n = chunk_line(buf, len, &l);
		if (n <= 0)
			return n;
		if (chunk_size(l, &st->left))
			return -400;
		st->state = st->left ? HTTP_CHUNK_DATA : HTTP_CHUNK_TRAILER;
		return n;
	case HTTP_CHUNK_DATA:
		return chunk_data(st, len, max_data, data);
	case HTTP_CHUNK_DATA_END:
		if (len && buf[0] != '\r')
			return -400;
		if (len < 2)
			return 0;
		if (buf[1] != '\n')
			return -400;
		st->state = HTTP_CHUNK_SIZE;
		return 2;
	case HTTP_CHUNK_TRAILER:
		n = chunk_line(buf, len, &l);
		if (n <= 0)
			return n;
		if (!l.n)
			st->state = HTTP_CHUNK_DONE;
		else if (!memchr(l.p, ':', l.n))
			return -400;	/* not a field line */
		return n;
	default:
		return 0;
	}
}
