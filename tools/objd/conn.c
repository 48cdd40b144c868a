/* SPDX-License-Identifier: MIT */
/*
 * conn.c - the connection state machine: read a request head (under the
 * header deadline), dispatch it under a request context, send the response,
 * then the next request from the same buffer (pipelining) or close.
 *
 * Every recv and send is an io_uring request under the connection's
 * contexts; each one in flight holds a reference to the connection, which is
 * freed (and its socket closed) when the last goes.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "objd.h"

static void next_request(struct conn *c);
static void linger(struct conn *c);

void conn_get(struct conn *c)
{
	c->refs++;
}

void conn_put(struct conn *c)
{
	struct worker *w = c->w;

	if (--c->refs)
		return;
	if (c->prev)
		c->prev->next = c->next;
	else
		w->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	w->nconns--;
	atomic_fetch_sub(&w->s->st.conns, 1);
	rctx_release(c->ctx);	/* its hang-up watch first, then the fd */
	close(c->fd);
	free(c->in);
	free(c->sbuf);
	free(c->head);
	free(c->out);
	free(c);
}

static void noop_cb(void *arg, int res, uint32_t flags)
{
	(void)arg; (void)res; (void)flags;
}

/* Close an fd without blocking this thread (a FUSE flush may hang). */
void close_async(struct worker *w, int fd)
{
	struct io_uring_sqe sqe = { 0 };

	if (fd < 0)
		return;
	io_uring_prep_close(&sqe, fd);
	if (rctx_submit(w->ring, rctx_background(), &sqe, noop_cb, NULL))
		close(fd);
}

int conn_submit(struct conn *c, rctx_t *ctx, struct io_uring_sqe *sqe, rctx_cb_t cb, void *arg)
{
	int err = rctx_submit(c->w->ring, ctx, sqe, cb, arg);

	if (!err)
		conn_get(c);
	return err;
}

/* ---- file requests ------------------------------------------------------ */

/*
 * The outcome of a connection's file request, on the worker's thread: at
 * the kernel's completion, or at the request context's end while the
 * kernel may still hold it (a stuck disk: the library keeps the request and
 * its memory until the kernel lets go, and counts it).
 */
void file_cb(void *arg, int res, void *data, unsigned flags)
{
	struct conn *c = arg;
	file_step next = c->fnext;

	c->fnext = NULL;
	if (flags & RCTX_ASYNC_ABANDONED) {
		atomic_fetch_add(&c->w->s->st.abandoned, 1);
		if (!c->why)
			c->why = "abandoned-io";
	}
	if (c->state == C_DEAD || rctx_err(c->ctx)) {
		/* The client hung up (or the server is gone): nobody to
		 * answer; whatever else of the request runs is cancelled. */
		if (c->fopens && res >= 0)
			close(res);
		conn_abort(c, cancel_why(c));
	} else {
		next(c, res, data);
	}
	conn_put(c);
}

/* After an rctx_async_*() call of file_cb for c: on success its outcome
 * goes to next. Returns the call's error. */
int file_started(struct conn *c, int err, file_step next, bool opens)
{
	if (err)
		return err;
	c->fnext = next;
	c->fopens = opens;
	conn_get(c);
	return 0;
}

/* ---- errors and status -------------------------------------------------- */

/*
 * Has ctx's deadline passed? A request's link timeout (in the kernel) can end
 * it with -ECANCELED a moment before the runtime thread marks the context
 * done, so the error alone is not enough.
 */
bool ctx_expired(rctx_t *ctx)
{
	int64_t d;

	if (!ctx)
		return false;
	if (rctx_err(ctx) == -ETIMEDOUT)
		return true;
	return rctx_deadline(ctx, &d) && d <= rctx_now();
}

/* Why the connection's request was cancelled, for the log. */
const char *cancel_why(struct conn *c)
{
	static __thread char buf[32];
	int cause = rctx_cause(c->ctx);
	const char *name;

	if (ctx_expired(c->req_ctx) || ctx_expired(c->resp_ctx))
		return "deadline";
	if (cause == -ECONNRESET)	/* rctx_with_hangup()'s */
		return "client-gone";
	if (rctx_err(c->w->s->ctx))
		return "shutdown";
	if (!cause)
		return "cancelled";
	name = strerrorname_np(-cause);
	snprintf(buf, sizeof(buf), "%s", name ? name : "cancelled");
	return buf;
}

int status_of_errno(struct conn *c, int res)
{
	switch (res) {
	case -ETIMEDOUT:
		return 504;
	case -ECANCELED:
		if (ctx_expired(c->req_ctx))
			return 504;
		if (rctx_err(c->ctx))
			return 503;	/* server shutting down */
		return 504;
	case -ENOENT: case -ENOTDIR: case -EXDEV: case -ELOOP: case -EISDIR:
	case -ENAMETOOLONG:
		return 404;
	case -EACCES: case -EPERM:
		return 403;
	case -ENOSPC: case -EDQUOT:
		return 507;
	default:
		return 500;
	}
}

/* Close the connection now: whatever is in flight is cancelled. */
void conn_abort(struct conn *c, const char *why)
{
	if (c->state == C_DEAD)
		return;
	if (!c->why)
		c->why = why;
	if (c->t0) {
		if (!c->status)
			c->status = 499;	/* nginx's "client closed request" */
		request_end(c);
	}
	object_release(c, true);
	c->state = C_DEAD;
	shutdown(c->fd, SHUT_RDWR);
	rctx_cancel(c->ctx);
	rctx_release(c->hdr_ctx);
	rctx_release(c->req_ctx);
	rctx_release(c->resp_ctx);
	c->hdr_ctx = c->req_ctx = c->resp_ctx = NULL;
	conn_put(c);		/* the list's reference */
}

/* ---- sending ------------------------------------------------------------ */

static void send_cb(void *arg, int res, uint32_t flags)
{
	struct conn *c = arg;

	(void)flags;
	if (c->state == C_DEAD)
		goto out;
	if (res <= 0) {
		conn_abort(c, send_failure(c));
		goto out;
	}
	c->out_off += res;
	c->bytes_out += res;
	atomic_fetch_add(&c->w->s->st.bytes_out, res);
	if (c->out_off < c->out_len)
		conn_send_out(c);
	else
		c->on_sent(c);
out:
	conn_put(c);
}

/* Why a send failed. */
const char *send_failure(struct conn *c)
{
	if (ctx_expired(c->req_ctx) || ctx_expired(c->resp_ctx))
		return "deadline-send";
	return rctx_err(c->ctx) ? cancel_why(c) : "client-gone";
}

/* Send out[out_off..out_len) under the response context. */
void conn_send_out(struct conn *c)
{
	struct io_uring_sqe sqe = { 0 };

	io_uring_prep_send(&sqe, c->fd, c->out + c->out_off, c->out_len - c->out_off,
			   MSG_NOSIGNAL);
	if (conn_submit(c, c->resp_ctx, &sqe, send_cb, c))
		conn_abort(c, "submit");
}

static const char *reason(int status)
{
	switch (status) {
	case 100: return "Continue";
	case 200: return "OK";
	case 201: return "Created";
	case 204: return "No Content";
	case 206: return "Partial Content";
	case 304: return "Not Modified";
	case 400: return "Bad Request";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 411: return "Length Required";
	case 412: return "Precondition Failed";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 416: return "Range Not Satisfiable";
	case 417: return "Expectation Failed";
	case 431: return "Request Header Fields Too Large";
	case 499: return "Client Closed Request";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	case 505: return "HTTP Version Not Supported";
	case 507: return "Insufficient Storage";
	default:  return "Unknown";
	}
}

static bool out_reserve(struct conn *c, size_t n)
{
	char *p;

	if (n <= c->out_cap)
		return true;
	p = realloc(c->out, n);
	if (!p)
		return false;
	c->out = p;
	c->out_cap = n;
	return true;
}

/* The response context: a child of the request's while that lives, else a
 * short one under the connection (a 408 or 504 must still go out). Always
 * our own, so that rctx_release() of it never cancels the request. */
static void pick_resp_ctx(struct conn *c)
{
	rctx_release(c->resp_ctx);
	if (c->req_ctx && !rctx_err(c->req_ctx))
		c->resp_ctx = rctx_with_cancel(c->req_ctx);
	else
		c->resp_ctx = rctx_with_timeout(c->ctx, 10LL * 1000000000);
}

/*
 * The Connection header of the response (RFC 9112 9.3): "close" when the
 * connection ends after it; for HTTP/1.0, whose default is to close,
 * "keep-alive" when it stays open (the client asked for it), else the client
 * waits for a close that never comes.
 */
static const char *connection_header(struct conn *c)
{
	if (!c->keep_alive)
		return "Connection: close\r\n";
	return c->req.minor == 0 ? "Connection: keep-alive\r\n" : "";
}

/*
 * Send a response head with `extra` header lines and, if body is not NULL,
 * that body; content_length is what the Content-Length says (the file's
 * bytes follow from on_sent for a GET). on_sent runs when it is all sent.
 */
void conn_respond(struct conn *c, int status, const char *extra, const char *body,
		  size_t body_len, uint64_t content_length, void (*on_sent)(struct conn *))
{
	size_t cap = 512 + (extra ? strlen(extra) : 0) + strlen(c->trace) + body_len;
	char tp[RCTX_TRACEPARENT_LEN + 1];
	int n;

	if (atomic_load(&c->w->s->draining))
		c->keep_alive = false;
	c->status = status;
	if (!out_reserve(c, cap) || !(pick_resp_ctx(c), c->resp_ctx)) {
		conn_abort(c, "out-of-memory");
		return;
	}
	n = snprintf(c->out, cap, "HTTP/1.1 %d %s\r\nServer: ringctx-objd\r\n%s%s%s",
		     status, reason(status), connection_header(c),
		     extra ? extra : "", c->trace[0] ? "X-Trace-ID: " : "");
	if (c->trace[0])
		n += snprintf(c->out + n, cap - n, "%s\r\n", c->trace);
	if (rctx_trace_format(&c->tp, tp, sizeof(tp)) > 0)
		n += snprintf(c->out + n, cap - n, "traceparent: %s\r\n", tp);
	if (status != 204 && status != 100 && status != 304)	/* no body */
		n += snprintf(c->out + n, cap - n, "Content-Length: %llu\r\n",
			      (unsigned long long)content_length);
	n += snprintf(c->out + n, cap - n, "\r\n");
	if (body && c->req.method != HTTP_HEAD) {
		memcpy(c->out + n, body, body_len);
		n += body_len;
	}
	c->out_len = n;
	c->out_off = 0;
	c->head_sent = status != 100;
	c->on_sent = on_sent;
	conn_send_out(c);
}

/* An error response with a one-line body. */
void conn_error(struct conn *c, int status)
{
	char body[96];
	const char *extra = NULL;
	int n;

	if (status == 405)
		extra = "Allow: GET, HEAD, PUT, DELETE\r\n";
	else if (status == 503)
		extra = "Retry-After: 1\r\n";
	if (status == 400 || status == 408 || status == 413 || status == 414 ||
	    status == 431 || status == 411 || status == 505 || status == 503 || status == 417)
		c->keep_alive = false;	/* the stream may be out of step */
	n = snprintf(body, sizeof(body), "%d %s\n", status, reason(status));
	conn_respond(c, status, extra, body, n, n, conn_finish);
}

/* ---- the request's end -------------------------------------------------- */

static void linger_cb(void *arg, int res, uint32_t flags)
{
	struct conn *c = arg;

	(void)flags;
	if (c->state != C_DEAD) {
		if (res > 0 && c->in_len < (1 << 20)) {
			c->in_len += res;	/* counted, discarded */
			linger(c);
		} else {
			conn_abort(c, NULL);
		}
	}
	conn_put(c);
}

/*
 * Close after a response: stop sending, then read and discard what the
 * client still sends (up to 1 MiB, for 2 s at most) until it closes, so that
 * its unread bytes do not make our close a reset that destroys the
 * response before the client read it (an error after an unread body).
 */
static void linger(struct conn *c)
{
	struct io_uring_sqe sqe = { 0 };

	if (c->state != C_WAIT) {
		c->state = C_WAIT;	/* no request: drain may close it */
		c->in_len = 0;
		shutdown(c->fd, SHUT_WR);
		c->hdr_ctx = rctx_with_timeout(c->ctx, 2LL * 1000000000);
		if (!c->hdr_ctx) {
			conn_abort(c, NULL);
			return;
		}
	}
	io_uring_prep_recv(&sqe, c->fd, c->in, c->in_cap, 0);
	if (conn_submit(c, c->hdr_ctx, &sqe, linger_cb, c))
		conn_abort(c, NULL);
}

/* The request ends (answered or not): log it, give back its counts. */
void request_end(struct conn *c)
{
	struct server *s = c->w->s;

	log_request(c);
	atomic_fetch_sub(&s->st.in_flight, 1);
	if (c->slot)
		atomic_fetch_sub(&s->st.objects, 1);
	c->slot = false;
	c->t0 = 0;
}

/* The response is out: log, clean up, then the next request or close. */
void conn_finish(struct conn *c)
{
	struct server *s = c->w->s;

	stats_status(s, c->status);
	request_end(c);
	object_release(c, false);
	rctx_release(c->req_ctx);
	rctx_release(c->resp_ctx);
	c->req_ctx = c->resp_ctx = NULL;
	if (!c->keep_alive || atomic_load(&s->draining)) {
		linger(c);
		return;
	}
	next_request(c);
}

/* ---- reading the head --------------------------------------------------- */

static void parse_head(struct conn *c);

static void recv_head_cb(void *arg, int res, uint32_t flags)
{
	struct conn *c = arg;

	(void)flags;
	if (c->state == C_DEAD)
		goto out;
	if (res > 0) {
		c->in_len += res;
		atomic_fetch_add(&c->w->s->st.bytes_in, res);
		parse_head(c);
	} else if (res < 0 && c->in_len > 0 && ctx_expired(c->hdr_ctx) && !rctx_err(c->ctx)) {
		/* A head that trickles in: 408, then close. */
		rctx_release(c->hdr_ctx);
		c->hdr_ctx = NULL;
		c->t0 = rctx_now();
		atomic_fetch_add(&c->w->s->st.in_flight, 1);
		snprintf(c->method, sizeof(c->method), "-");
		c->state = C_BUSY;
		conn_error(c, 408);
	} else {
		conn_abort(c, NULL);	/* EOF, idle timeout, drain, error */
	}
out:
	conn_put(c);
}

static void recv_head(struct conn *c)
{
	struct io_uring_sqe sqe = { 0 };

	io_uring_prep_recv(&sqe, c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
	if (conn_submit(c, c->hdr_ctx, &sqe, recv_head_cb, c))
		conn_abort(c, "submit");
}

/* Copy what the log and the response need out of the head. */
static void copy_slice(char *dst, size_t cap, struct http_slice s)
{
	size_t n = s.n < cap - 1 ? s.n : cap - 1;

	if (n)			/* an absent header is { NULL, 0 } */
		memcpy(dst, s.p, n);
	dst[n] = '\0';
}

/*
 * The request's deadline (ns from now): --timeout, or what grpc-timeout (first)
 * or X-Request-Timeout (ms) asks for, at most --max-timeout. Returns -1 for
 * an invalid grpc-timeout (400); an invalid X-Request-Timeout is ignored.
 */
static int64_t request_timeout(struct conn *c)
{
	const struct objd_opts *o = &c->w->s->o;
	int64_t t = o->timeout_ns, asked = -1;
	struct http_slice v = c->req.timeout;
	char buf[RCTX_GRPC_TIMEOUT_MAX];
	uint64_t ms = 0;
	size_t i;

	if (c->req.has_grpc_timeout) {
		if (c->req.grpc_timeout.n >= sizeof(buf))
			return -1;
		copy_slice(buf, sizeof(buf), c->req.grpc_timeout);
		if (rctx_grpc_timeout_parse(buf, &asked))
			return -1;
	} else if (v.n) {
		for (i = 0; i < v.n && i < 12 && v.p[i] >= '0' && v.p[i] <= '9'; i++)
			ms = ms * 10 + (v.p[i] - '0');
		if (i == v.n)
			asked = (int64_t)(ms * 1000000);
	}
	if (asked >= 0)		/* RCTX_FOREVER: no deadline asked */
		t = asked;
	return t < o->max_timeout_ns ? t : o->max_timeout_ns;
}

/* 32 hex digits (either case) into 16 bytes; false if s is not that. */
static bool hex_id(struct http_slice s, uint8_t id[16])
{
	bool nonzero = false;

	if (s.n != 32)
		return false;
	for (size_t i = 0; i < 32; i++) {
		char ch = s.p[i];
		int d = ch >= '0' && ch <= '9' ? ch - '0' :
			ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 :
			ch >= 'A' && ch <= 'F' ? ch - 'A' + 10 : -1;

		if (d < 0)
			return false;
		id[i / 2] = (i & 1) ? (id[i / 2] | d) : (uint8_t)(d << 4);
		nonzero |= d != 0;
	}
	return nonzero;
}

/*
 * Random bytes for trace and span ids, from a per-thread generator
 * (splitmix64) seeded once from the kernel: ids must be unique, not secret,
 * and arc4random_buf costs a getrandom(2) per call here.
 */
static void id_random(void *p, size_t n)
{
	static __thread uint64_t state;
	static __thread bool seeded;
	unsigned char *b = p;

	if (!seeded) {
		arc4random_buf(&state, sizeof(state));
		seeded = true;
	}
	while (n) {
		uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
		size_t k = n < 8 ? n : 8;

		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
		z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
		z ^= z >> 31;
		memcpy(b, &z, k);
		b += k;
		n -= k;
	}
}

/*
 * The request's trace, as a value context under the connection: a child
 * span of a valid traceparent; else a new trace (its id from an X-Trace-ID of
 * 32 hex digits, else random) with a new span. c->tp is the server's span,
 * echoed in the response's traceparent.
 */
static rctx_t *trace_ctx(struct conn *c)
{
	char buf[RCTX_TRACEPARENT_LEN + 8];
	struct rctx_trace in;

	if (c->req.traceparent.n && c->req.traceparent.n < sizeof(buf)) {
		copy_slice(buf, sizeof(buf), c->req.traceparent);
		if (!rctx_trace_parse(buf, &in) && !rctx_trace_child(&in, &c->tp))
			return rctx_with_trace(c->ctx, &c->tp);
	}
	if (!hex_id(c->req.trace_id, c->tp.trace_id))
		id_random(c->tp.trace_id, sizeof(c->tp.trace_id));
	c->tp.flags = 1;	/* sampled */
	do
		id_random(c->tp.span_id, sizeof(c->tp.span_id));
	while (!memcmp(c->tp.span_id, "\0\0\0\0\0\0\0\0", 8));
	return rctx_with_trace(c->ctx, &c->tp);
}

/* One of --max-inflight for an object request; false: answer 503. */
static bool take_slot(struct conn *c)
{
	struct server *s = c->w->s;

	if (atomic_fetch_add(&s->st.objects, 1) >= s->o.max_inflight) {
		atomic_fetch_sub(&s->st.objects, 1);
		return false;
	}
	c->slot = true;
	return true;
}

static void dispatch(struct conn *c)
{
	struct server *s = c->w->s;
	int64_t timeout;
	rctx_t *tctx;
	int err;

	copy_slice(c->method, sizeof(c->method), c->req.method_name);
	copy_slice(c->path, sizeof(c->path), c->req.target);
	copy_slice(c->trace, sizeof(c->trace), c->req.trace_id);
	for (char *p = c->trace; *p; p++)
		if ((unsigned char)*p < ' ' || *p == 0x7f)
			*p = '_';
	c->keep_alive = c->req.keep_alive;
	/* Only a PUT reads its body: after another request's body the stream
	 * is out of step (the body is not a request), so close after it. */
	if (c->req.method != HTTP_PUT &&
	    (c->req.chunked || (c->req.has_length && c->req.content_length)))
		c->keep_alive = false;
	tctx = trace_ctx(c);
	timeout = request_timeout(c);
	if (timeout < 0) {
		rctx_unref(tctx);
		c->why = "bad-grpc-timeout";
		conn_error(c, 400);
		return;
	}
	if (tctx)
		c->req_ctx = timeout == RCTX_FOREVER ? rctx_with_cancel(tctx) :
			     rctx_with_timeout(tctx, timeout);
	rctx_unref(tctx);	/* the request context holds it */
	if (!c->req_ctx) {
		conn_error(c, 503);
		return;
	}
	if (c->req.method == HTTP_GET && c->loopback &&
	    !strncmp(c->path, "/debug/", 7)) {
		stats_serve(c);
		return;
	}
	if (!take_slot(c)) {
		c->why = "max-inflight";
		if (c->req.has_length && c->req.content_length)
			c->keep_alive = false;	/* a body we will not read */
		conn_error(c, 503);
		return;
	}
	err = key_from_target(c->req.target.p, c->req.target.n, c->key, sizeof(c->key));
	if (c->req.method == HTTP_OTHER) {
		if (c->req.has_length && c->req.content_length)
			c->keep_alive = false;	/* a body we will not read */
		conn_respond(c, 405, "Allow: GET, HEAD, PUT, DELETE\r\n", "405 Method Not Allowed\n",
			     23, 23, conn_finish);
		return;
	}
	if (err) {
		if (c->req.method == HTTP_PUT)
			c->keep_alive = false;
		conn_error(c, -err);
		return;
	}
	(void)s;
	switch (c->req.method) {
	case HTTP_GET:
	case HTTP_HEAD:
		object_get(c);
		break;
	case HTTP_PUT:
		object_put(c);
		break;
	default:
		object_delete(c);
		break;
	}
}

static void consume(struct conn *c, size_t n)
{
	memmove(c->in, c->in + n, c->in_len - n);
	c->in_len -= n;
}

/*
 * Move the parsed head out of the input buffer, the request's slices with it:
 * the rest of the buffer (a PUT's body, pipelined requests) is moved to its
 * start, and a header the request reads later (Range, after the open and
 * statx) must not be overwritten by the requests that follow.
 */
static bool keep_head(struct conn *c, size_t n)
{
	char *p;

	if (n > c->head_cap) {
		p = realloc(c->head, n < 1024 ? 1024 : n);
		if (!p)
			return false;
		c->head = p;
		c->head_cap = n < 1024 ? 1024 : n;
	}
	memcpy(c->head, c->in, n);
	http_req_move(&c->req, c->in, c->head);
	consume(c, n);
	return true;
}

static void parse_head(struct conn *c)
{
	struct server *s = c->w->s;
	struct http_limits lim = { 8192, 32768 };
	int res = http_parse(c->in, c->in_len, &lim, &c->req);

	if (res == 0 && c->in_len < c->in_cap) {
		recv_head(c);
		return;
	}
	rctx_release(c->hdr_ctx);
	c->hdr_ctx = NULL;
	c->state = C_BUSY;
	c->t0 = rctx_now();
	c->head_sent = false;
	atomic_fetch_add(&s->st.in_flight, 1);
	atomic_fetch_add(&s->st.requests, 1);
	if (res <= 0) {
		snprintf(c->method, sizeof(c->method), "-");
		c->keep_alive = false;
		conn_error(c, res ? -res : 431);
		return;
	}
	if (!keep_head(c, res)) {
		c->keep_alive = false;
		conn_error(c, 503);
		return;
	}
	dispatch(c);
}

/* Wait for (or find in the buffer) the next request, under a fresh header
 * deadline. */
static void next_request(struct conn *c)
{
	struct worker *w = c->w;

	c->state = C_WAIT;
	c->status = 0;
	c->why = NULL;
	c->bytes_out = 0;
	c->trace[0] = '\0';
	memset(&c->tp, 0, sizeof(c->tp));
	memset(&c->req, 0, sizeof(c->req));
	c->hdr_ctx = rctx_with_timeout(c->ctx, w->s->o.header_timeout_ns);
	if (!c->hdr_ctx) {
		conn_abort(c, "out-of-memory");
		return;
	}
	if (c->in_len)
		parse_head(c);
	else
		recv_head(c);
}

/* ---- accept and drain --------------------------------------------------- */

void conn_start(struct worker *w, int fd, bool loopback)
{
	struct server *s = w->s;
	struct conn *c = calloc(1, sizeof(*c));

	if (!c) {
		close(fd);
		return;
	}
	c->w = w;
	c->fd = fd;
	c->refs = 1;		/* the list's */
	c->loopback = loopback;
	c->file_fd = c->dir_fd = c->tmp_fd = -1;
	c->pipe.fd[0] = c->pipe.fd[1] = -1;
	c->in_cap = 32768 + OBJD_CHUNK;
	c->in = malloc(c->in_cap);
	/* The client's hang-up ends the connection's context: every request
	 * of it in the kernel is cancelled at once (cause -ECONNRESET). */
	c->ctx = rctx_with_hangup(s->ctx, fd);
	c->next = w->conns;
	if (w->conns)
		w->conns->prev = c;
	w->conns = c;
	w->nconns++;
	if (!c->in || !c->ctx) {
		conn_abort(c, "out-of-memory");
		return;
	}
	if (atomic_fetch_add(&s->st.conns, 1) >= s->o.max_conns) {
		c->state = C_BUSY;
		c->t0 = rctx_now();
		atomic_fetch_add(&s->st.in_flight, 1);
		snprintf(c->method, sizeof(c->method), "-");
		c->why = "max-conns";
		conn_error(c, 503);
		return;
	}
	conn_get(c);
	next_request(c);
	conn_put(c);
}

/* SIGTERM: close the connections that wait for a request; the busy ones
 * close after their response (Connection: close). */
void conn_drain(struct worker *w)
{
	for (struct conn *c = w->conns; c; c = c->next)
		if (c->state == C_WAIT && c->in_len == 0 && c->hdr_ctx)
			rctx_cancel(c->hdr_ctx);
}
