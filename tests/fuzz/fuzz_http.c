/* SPDX-License-Identifier: MIT */
/*
 * Description: libFuzzer target for ringctx-objd's request parser
 * (tools/objd/http.c) and key decoding (tools/objd/path.c): any bytes, as
 * one buffer and as every prefix a recv could deliver, must give a head
 * length within the buffer, "more", or an HTTP error status; a Range must
 * resolve inside the object; a decoded key never holds a NUL, a "." or ".."
 * segment, or a leading '/'; HTTP-dates round-trip, preconditions give
 * 0, 304 or 412.
 * Pipelining: the same bytes as a stream of requests, consumed as conn.c
 * does (parse a head, move it out of the buffer, consume it and a PUT's
 * body, Content-Length or chunked, stop where the server closes): each moved
 * head equals a parse of its copy alone, even after the buffer was
 * overwritten, and the sequence of requests and bodies is the same whether
 * the bytes come in one recv or in two (split at a point the first byte
 * chooses) and whatever the pieces of chunk data.
 */
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "path.h"

static void check_key(const struct http_req *r)
{
	char key[OBJD_KEY_MAX];
	size_t n;

	if (key_from_target(r->target.p, r->target.n, key, sizeof(key)))
		return;
	n = strlen(key);
	if (n == 0 || key[0] == '/' || key[n - 1] == '/' || strstr(key, "//"))
		abort();
	for (char *s = key; s; s = strchr(s, '/') ? strchr(s, '/') + 1 : NULL)
		if ((s[0] == '.' && (s[1] == '/' || !s[1])) ||
		    (s[0] == '.' && s[1] == '.' && (s[2] == '/' || !s[2])))
			abort();
}

static void check_range(const struct http_req *r, uint64_t size)
{
	uint64_t a = 0, b = 0;
	int res = http_range(r->range, size, &a, &b);

	if (res == 1 && (a > b || b >= size))
		abort();
	if (res != 0 && res != 1 && res != -416)
		abort();
}

/*
 * The conditional headers: an HTTP-date formats and parses back to the same
 * second; the preconditions answer 0, 304 (GET, HEAD only) or 412, and an
 * If-None-Match or If-Modified-Since never fails a request whose object is
 * missing.
 */
static void check_conditions(const struct http_req *r, const uint8_t *data, size_t size)
{
	struct http_validators v = { true, "\"1-2\"", 0 };
	char date[HTTP_DATE_LEN + 1];
	int64_t t = 0, back;
	int res;

	memcpy(&t, data, size < sizeof(t) ? size : sizeof(t));
	http_date(date, t);
	t = t < 0 ? 0 : t > HTTP_DATE_MAX ? HTTP_DATE_MAX : t;
	if (strlen(date) != HTTP_DATE_LEN ||
	    http_date_parse((struct http_slice){ date, HTTP_DATE_LEN }, &back) || back != t)
		abort();
	v.mtime = t;
	http_date_parse(r->if_modified_since, &back);
	http_if_range(r, &v);
	for (int exists = 0; exists < 2; exists++) {
		v.exists = exists;
		res = http_preconditions(r, &v);
		if (res != 0 && res != 304 && res != 412)
			abort();
		if (res == 304 && r->method != HTTP_GET && r->method != HTTP_HEAD)
			abort();
		if (!exists && res && !r->if_match.n)
			abort();
	}
}

/* ---- the pipelining state machine, as conn.c runs it ------------------ */

#define SIM_CAP 8192		/* the input buffer: a chunk line always fits */
#define SIM_MAX 64		/* requests followed per input */

struct sim {
	const uint8_t *data;
	size_t size, fed, cut;	/* fed: bytes delivered; the first recv ends at cut */
	char in[SIM_CAP];
	size_t in_len;
};

/* What the server saw of one request. */
struct seen {
	int res;		/* http_parse's result: head length or -status */
	int method;
	uint64_t body_len, body_hash;
};

/* A recv: the bytes up to the cut, then the rest, as far as the buffer
 * has room. False at the end of the input (or with a full buffer). */
static bool sim_recv(struct sim *s)
{
	size_t lim = s->fed < s->cut ? s->cut : s->size;
	size_t n = lim - s->fed;

	if (n > SIM_CAP - s->in_len)
		n = SIM_CAP - s->in_len;
	if (!n)
		return false;
	memcpy(s->in + s->in_len, s->data + s->fed, n);
	s->in_len += n;
	s->fed += n;
	return true;
}

static void sim_consume(struct sim *s, size_t n)
{
	memmove(s->in, s->in + n, s->in_len - n);
	s->in_len -= n;
	memset(s->in + s->in_len, 'X', SIM_CAP - s->in_len);	/* as a later recv may */
}

static uint64_t fnv(uint64_t h, const char *p, size_t n)
{
	while (n--)
		h = (h ^ (unsigned char)*p++) * 0x100000001b3ULL;
	return h;
}

/* A head moved out of the buffer is the head parsed from the copy alone. */
static void check_moved(const struct http_limits *lim, const struct http_req *moved,
			const char *copy, size_t n)
{
	struct http_req again;

	if (http_parse(copy, n, lim, &again) != (int)n || memcmp(&again, moved, sizeof(again)))
		abort();
}

/* A PUT's body of a Content-Length: consumed; false if the input ends. */
static bool sim_body(struct sim *s, struct seen *e, uint64_t len)
{
	e->body_hash = 0xcbf29ce484222325ULL;
	e->body_len = len;
	while (len) {
		size_t n = s->in_len < len ? s->in_len : len;

		e->body_hash = fnv(e->body_hash, s->in, n);
		sim_consume(s, n);
		len -= n;
		if (len && !sim_recv(s))
			return false;
	}
	return true;
}

/*
 * A PUT's chunked body, decoded as object.c does, max_data bytes of data at
 * most per piece: each piece lies in the bytes consumed; the buffer never
 * fills up without progress. False at an error (body_len ~0) or the end of
 * the input.
 */
static bool sim_chunked(struct sim *s, struct seen *e, size_t max_data)
{
	struct http_chunked st = { 0 };
	struct http_slice d;
	int r;

	e->body_hash = 0xcbf29ce484222325ULL;
	for (;;) {
		r = http_chunk_next(&st, s->in, s->in_len, max_data, &d);
		if (r < 0) {
			e->body_len = ~0ULL;
			return false;
		}
		if (r > 0) {
			if (d.n && (d.p != s->in || d.n > max_data || d.n != (size_t)r))
				abort();
			e->body_hash = fnv(e->body_hash, d.p, d.n);
			sim_consume(s, r);
			continue;
		}
		if (st.state == HTTP_CHUNK_DONE)
			break;
		if (s->in_len == SIM_CAP)
			abort();
		if (!sim_recv(s))
			return false;
	}
	e->body_len = st.total;
	return true;
}

/* Run the stream; returns how many requests the server saw. */
static size_t sim_run(const uint8_t *data, size_t size, size_t cut, size_t max_data,
		      struct seen *seen)
{
	struct http_limits lim = { 256, 1024 };
	struct sim *s = calloc(1, sizeof(*s));
	struct http_req r;
	size_t n = 0;
	char *copy;
	int res;

	if (!s)
		abort();
	s->data = data;
	s->size = size;
	s->cut = cut;
	sim_recv(s);
	while (n < SIM_MAX) {
		struct seen *e = &seen[n];

		res = http_parse(s->in, s->in_len, &lim, &r);
		if (res == 0 && s->in_len < SIM_CAP && sim_recv(s))
			continue;
		if (res == 0 && s->in_len == 0)
			break;			/* the client closed between requests */
		memset(e, 0, sizeof(*e));
		e->res = res;
		n++;
		if (res <= 0)
			break;			/* an error (or a head cut short): closed */
		e->method = r.method;
		copy = malloc(res);		/* exactly: ASan sees a slice beyond it */
		if (!copy)
			abort();
		memcpy(copy, s->in, res);
		http_req_move(&r, s->in, copy);
		sim_consume(s, res);
		check_moved(&lim, &r, copy, res);
		check_key(&r);
		check_range(&r, 100);
		if (r.method == HTTP_PUT && (r.has_length || r.chunked)) {
			if (!(r.chunked ? sim_chunked(s, e, max_data) :
			      sim_body(s, e, r.content_length))) {
				free(copy);
				break;
			}
		} else if (r.chunked || (r.has_length && r.content_length)) {
			r.keep_alive = false;	/* a body the server does not read */
		}
		free(copy);
		if (!r.keep_alive || (!s->in_len && !sim_recv(s)))
			break;
	}
	free(s);
	return n;
}

/* One recv or two, chunk data in large pieces or small: the server sees the
 * same requests and bodies. */
static void check_pipeline(const uint8_t *data, size_t size)
{
	static struct seen one[SIM_MAX], two[SIM_MAX];
	size_t cut = size ? (size_t)data[0] * size / 256 : 0;
	size_t n1 = sim_run(data, size, size, 65536, one);
	size_t n2 = sim_run(data, size, cut, size ? 1 + data[size - 1] % 7 : 1, two);

	if (n1 != n2 || memcmp(one, two, n1 * sizeof(one[0])))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct http_limits lim = { 256, 1024 };
	struct http_req r;
	int res, full;

	full = http_parse((const char *)data, size, &lim, &r);
	if (full > 0) {
		if ((size_t)full > size || (size_t)full > lim.max_head)
			abort();
		check_key(&r);
		check_range(&r, 0);
		check_range(&r, 1);
		check_range(&r, size);
		check_conditions(&r, data, size);
	} else if (full != 0 && full != -400 && full != -414 && full != -417 &&
		   full != -431 && full != -501 && full != -505) {
		abort();
	}
	/* A complete head is found in every longer prefix at the same place. */
	for (size_t n = 0; n < size && n < 64; n++) {
		res = http_parse((const char *)data, n, &lim, &r);
		if (full > 0 && res > 0 && res != full)
			abort();
	}
	check_pipeline(data, size);
	return 0;
}
