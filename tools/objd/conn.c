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
#include <sys/uio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "objd.h"

static void next_request(struct conn *c);
static void linger(struct conn *c);
static void request_begin(struct conn *c);
static bool in_get(struct conn *c);

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
	rctx_release(c->ctx);	/* its hang-up watch first (if any), then the fd */
	close(c->fd);
	in_give(w, c->in);
	req_give(w, c->r);
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
	file_step next = c->r->fnext;

	c->r->fnext = NULL;
	if (flags & RCTX_ASYNC_ABANDONED) {
		atomic_fetch_add(&c->w->s->st.abandoned, 1);
		if (!c->r->why)
			c->r->why = "abandoned-io";
	}
	if (c->state == C_DEAD || rctx_err(conn_ctx(c))) {
		/* The client hung up (or the server is gone): nobody to
		 * answer; whatever else of the request runs is cancelled. */
		if (c->r->fopens && res >= 0)
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
	c->r->fnext = next;
	c->r->fopens = opens;
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
	int cause = rctx_cause(conn_ctx(c));
	const char *name;

	if (c->r && (ctx_expired(c->r->req_ctx) || ctx_expired(c->r->resp_ctx)))
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
		if (ctx_expired(c->r->req_ctx))
			return 504;
		if (rctx_err(conn_ctx(c)))
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

/* The head's context: the worker's idle one is shared (only a reference
 * of it is ours), another is the connection's own. */
static void hdr_ctx_end(struct conn *c)
{
	if (c->hdr_shared)
		rctx_unref(c->hdr_ctx);
	else
		rctx_release(c->hdr_ctx);
	c->hdr_ctx = NULL;
	c->hdr_shared = false;
}

/* Close the connection now: whatever is in flight is cancelled. Its
 * request stays until the connection is freed: callbacks of its requests
 * still in flight may look at it. */
void conn_abort(struct conn *c, const char *why)
{
	struct request *r = c->r;

	if (c->state == C_DEAD)
		return;
	if (r && !r->why)
		r->why = why;
	if (r && r->t0) {
		if (!r->status)
			r->status = 499;	/* nginx's "client closed request" */
		request_end(c);
	}
	if (r)
		object_release(c, true);
	c->state = C_DEAD;
	shutdown(c->fd, SHUT_RDWR);
	rctx_cancel(c->ctx);
	hdr_ctx_end(c);
	if (r) {
		rctx_release(r->req_ctx);
		rctx_release(r->resp_ctx);
		r->req_ctx = r->resp_ctx = NULL;
	}
	conn_put(c);		/* the list's reference */
}

/* ---- sending ------------------------------------------------------------ */

/* Pipelined responses sent at once on this thread nest their calls: beyond
 * this depth the ring sends them. */
#define SEND_NOW_DEPTH 4
/* Requests in progress on a worker from which its responses are sent at
 * once rather than by the ring (see send_now()). */
#define SEND_NOW_BUSY 64

static void account_sent(struct conn *c, size_t n)
{
	c->r->out_off += n;
	c->r->bytes_out += n;
	atomic_fetch_add(&c->w->s->st.bytes_out, n);
}

/* The response is out: its next step (nested calls counted). */
static void all_sent(struct conn *c)
{
	struct worker *w = c->w;

	w->send_depth++;
	c->r->on_sent(c);	/* may end c's request, or c */
	w->send_depth--;
}

/*
 * Under load, send what the socket takes now, on this thread (it is
 * non-blocking): a response usually goes out whole here, with no request
 * for the ring and no wait for a completion, so its request ends and gives
 * its memory back at once. With SEND_NOW_BUSY requests or more in
 * progress on the worker only: below, the ring's sends, batched in one
 * io_uring_enter, cost less (measured at 64 connections, GET 4 KiB: 13.0
 * us of server CPU per request against 15.6 with every send at once;
 * at 10,000 connections, sent at once, about 30 requests are in progress
 * instead of thousands, and the RSS 7 MB instead of 59). Returns the bytes
 * sent; 0 when the socket is full or failed, or when the ring must send
 * (not busy, the response context is done, or pipelined responses nest
 * too deep): the ring's send then waits, or fails, under the response
 * context.
 */
static bool resp_done(struct conn *c);

static size_t send_now(struct conn *c, struct iovec *iov, int n)
{
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = n };
	ssize_t r;

	if (c->w->active < SEND_NOW_BUSY || c->w->send_depth >= SEND_NOW_DEPTH || resp_done(c))
		return 0;
	r = sendmsg(c->fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL | (c->r->more ? MSG_MORE : 0));
	return r > 0 ? (size_t)r : 0;
}

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
	account_sent(c, res);
	if (c->r->out_off < c->r->out_len)
		conn_send_out(c);
	else
		all_sent(c);
out:
	conn_put(c);
}

/* Why a send failed. */
const char *send_failure(struct conn *c)
{
	if (c->r && (ctx_expired(c->r->req_ctx) || ctx_expired(c->r->resp_ctx)))
		return "deadline-send";
	return rctx_err(conn_ctx(c)) ? cancel_why(c) : "client-gone";
}

/* The ring sends out[out_off..out_len) under the response context. */
static void ring_send(struct conn *c)
{
	struct io_uring_sqe sqe = { 0 };

	io_uring_prep_send(&sqe, c->fd, c->r->out + c->r->out_off, c->r->out_len - c->r->out_off,
			   MSG_NOSIGNAL | (c->r->more ? MSG_MORE : 0));
	if (conn_submit(c, conn_resp_ctx(c), &sqe, send_cb, c))
		conn_abort(c, "submit");
}

/* Send out[out_off..out_len): what the socket takes now, the rest by the
 * ring. */
void conn_send_out(struct conn *c)
{
	struct request *r = c->r;
	struct iovec iov = { r->out + r->out_off, r->out_len - r->out_off };
	size_t n = send_now(c, &iov, 1);

	if (n)
		account_sent(c, n);
	if (r->out_off == r->out_len)
		all_sent(c);
	else
		ring_send(c);
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

	if (n <= c->r->out_cap)
		return true;
	p = realloc(c->r->out, n);
	if (!p)
		return false;
	c->r->out = p;
	c->r->out_cap = n;
	return true;
}

/*
 * The response context: a child of the request's while that lives when
 * the response starts, else a short one under the connection (a 408 or
 * 504 must still go out). Always our own, so that rctx_release() of it
 * never cancels the request. Chosen when the response starts, made when
 * the ring first sends for it: a response the socket takes at once needs
 * none.
 */
static void pick_resp_ctx(struct conn *c)
{
	rctx_release(c->r->resp_ctx);
	c->r->resp_ctx = NULL;
	c->r->resp_of_req = c->r->req_ctx && !rctx_err(c->r->req_ctx);
}

/* The response's context, made now if need be (NULL: out of memory). */
rctx_t *conn_resp_ctx(struct conn *c)
{
	struct request *r = c->r;

	if (!r->resp_ctx)
		r->resp_ctx = r->resp_of_req ? rctx_with_cancel(r->req_ctx) :
			      rctx_with_timeout(conn_ctx(c), 10LL * 1000000000);
	return r->resp_ctx;
}

/* Has the response's context ended (made or not)? */
static bool resp_done(struct conn *c)
{
	struct request *r = c->r;

	if (r->resp_ctx)
		return rctx_err(r->resp_ctx) != 0;
	return rctx_err(r->resp_of_req ? r->req_ctx : conn_ctx(c)) != 0;
}

/*
 * The Connection header of the response (RFC 9112 9.3): "close" when the
 * connection ends after it; for HTTP/1.0, whose default is to close,
 * "keep-alive" when it stays open (the client asked for it), else the client
 * waits for a close that never comes.
 */
static const char *connection_header(struct conn *c)
{
	if (!c->r->keep_alive)
		return "Connection: close\r\n";
	return c->r->req.minor == 0 ? "Connection: keep-alive\r\n" : "";
}

/*
 * Send a response head with `extra` header lines and, if body is not NULL,
 * that body; content_length is what the Content-Length says (the file's
 * bytes follow from on_sent for a GET). on_sent runs when it is all sent.
 */
void conn_respond(struct conn *c, int status, const char *extra, const char *body,
		  size_t body_len, uint64_t content_length, void (*on_sent)(struct conn *))
{
	size_t cap = 512 + (extra ? strlen(extra) : 0) + strlen(c->r->trace), sent, n;
	char tp[RCTX_TRACEPARENT_LEN + 1], *p;

	if (atomic_load(&c->w->s->draining))
		c->r->keep_alive = false;
	c->r->status = status;
	if (!out_reserve(c, cap)) {
		conn_abort(c, "out-of-memory");
		return;
	}
	pick_resp_ctx(c);
	p = put_str(c->r->out, "HTTP/1.1 ");
	p = put_u64(p, (unsigned)status);
	*p++ = ' ';
	p = put_str(p, reason(status));
	p = put_str(p, "\r\nServer: ringctx-objd\r\n");
	p = put_str(p, connection_header(c));
	if (extra)
		p = put_str(p, extra);
	if (c->r->trace[0]) {
		p = put_str(p, "X-Trace-ID: ");
		p = put_str(p, c->r->trace);
		p = put_str(p, "\r\n");
	}
	if (rctx_trace_format(&c->r->tp, tp, sizeof(tp)) > 0) {
		p = put_str(p, "traceparent: ");
		p = put_str(p, tp);
		p = put_str(p, "\r\n");
	}
	if (status != 204 && status != 100 && status != 304) {	/* no body */
		p = put_str(p, "Content-Length: ");
		p = put_u64(p, content_length);
		p = put_str(p, "\r\n");
	}
	p = put_str(p, "\r\n");
	n = p - c->r->out;
	c->r->out_off = 0;
	c->r->head_sent = status != 100;
	c->r->on_sent = on_sent;
	if (!body || c->r->req.method == HTTP_HEAD) {
		c->r->out_len = n;
		conn_send_out(c);
		return;
	}
	/* Head and body straight from where they are; what the socket does
	 * not take now is copied (body may be the caller's only until we
	 * return) and left to the ring: only then is room made for the body
	 * (a request keeps its buffer while it is pooled). */
	sent = send_now(c, (struct iovec[]){ { c->r->out, n }, { (void *)body, body_len } }, 2);
	c->r->out_len = n + body_len;
	if (sent)
		account_sent(c, sent);
	if (c->r->out_off == c->r->out_len) {
		all_sent(c);
		return;
	}
	if (!out_reserve(c, n + body_len)) {
		conn_abort(c, "out-of-memory");
		return;
	}
	memcpy(c->r->out + n, body, body_len);
	ring_send(c);
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
		c->r->keep_alive = false;	/* the stream may be out of step */
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
 * response before the client read it (an error after an unread body). The
 * bytes go to the worker's discard buffer, which every lingering connection
 * of the worker shares: a connection keeps no input buffer (96 KiB) while it
 * lingers, so thousands closing at once (a drain) cost no more memory than
 * while they were idle.
 */
static void linger(struct conn *c)
{
	struct io_uring_sqe sqe = { 0 };

	if (c->state != C_WAIT) {
		c->state = C_WAIT;	/* no request: drain may close it */
		c->in_len = 0;		/* from now on: the bytes discarded */
		in_give(c->w, c->in);
		c->in = NULL;
		c->in_cap = 0;
		shutdown(c->fd, SHUT_WR);
		c->hdr_ctx = rctx_with_timeout(conn_ctx(c), 2LL * 1000000000);
		if (!c->hdr_ctx) {
			conn_abort(c, NULL);
			return;
		}
	}
	io_uring_prep_recv(&sqe, c->fd, c->w->discard, sizeof(c->w->discard), 0);
	if (conn_submit(c, c->hdr_ctx, &sqe, linger_cb, c))
		conn_abort(c, NULL);
}

/*
 * A request starts (its head is in, or an error answers it): counted, and
 * the connection's context made for it. The client's hang-up ends that
 * context while the request waits for the disk: every request of it in the
 * kernel is cancelled at once (cause -ECONNRESET). The watch is made by
 * the first such request (rctx_with_hangup_lazy); the rest of the time a
 * receive sees the end of the stream, a send fails. Without one (no
 * memory) the request runs under the server's context, unwatched.
 */
static void request_begin(struct conn *c)
{
	atomic_fetch_add(&c->w->s->st.in_flight, 1);
	c->w->active++;
	if (!c->ctx)
		c->ctx = rctx_with_hangup_lazy(c->w->s->ctx, c->fd);
}

/* The request ends (answered or not): log it, give back its counts. */
void request_end(struct conn *c)
{
	struct server *s = c->w->s;

	log_request(c);
	atomic_fetch_sub(&s->st.in_flight, 1);
	c->w->active--;
	if (c->r->slot)
		atomic_fetch_sub(&s->st.objects, 1);
	c->r->slot = false;
	c->r->t0 = 0;
}

/* The response is out: log, clean up, then the next request or close. */
void conn_finish(struct conn *c)
{
	struct server *s = c->w->s;
	bool again;

	/* The whole response is out: a hang-up seen since (the client
	 * closing once it had it all) is not why the request ended. */
	if (!c->r->why && rctx_cause(conn_ctx(c)) == -ECONNRESET)
		c->r->why = "-";
	stats_status(s, c->r->status);
	request_end(c);
	object_release(c, false);
	rctx_release(c->r->req_ctx);
	rctx_release(c->r->resp_ctx);
	again = c->r->keep_alive && !atomic_load(&s->draining);
	req_give(c->w, c->r);
	c->r = NULL;
	if (again) {
		rctx_release(c->ctx);	/* idle: the connection holds none */
		c->ctx = NULL;
		next_request(c);
	} else {
		linger(c);
	}
}

/* ---- reading the head --------------------------------------------------- */

static void parse_head(struct conn *c);
static void recv_head(struct conn *c);

/* An input buffer for c, if it has none. */
static bool in_get(struct conn *c)
{
	if (!c->in) {
		c->in = in_take(c->w);
		c->in_cap = c->in ? OBJD_IN_CAP : 0;
	}
	return c->in != NULL;
}

/* The bytes an idle receive got in one of the worker's buffers: into the
 * input buffer (taken now), and the buffer goes back at once. */
static int ibuf_copy(struct conn *c, int res, uint32_t flags)
{
	unsigned bid = flags >> IORING_CQE_BUFFER_SHIFT;

	if (res > 0 && c->state != C_DEAD) {
		if (in_get(c))
			memcpy(c->in + c->in_len, ibuf_at(c->w, bid), res);
		else
			res = -ENOMEM;
	}
	ibuf_done(c->w, bid);
	return res;
}

/*
 * The worker's buffers were all taken (their bytes not yet copied) when
 * bytes came for c: read them here at once (the socket is non-blocking),
 * into an input buffer. Bytes, 0 at the end, or -errno (-EAGAIN: none).
 */
static int recv_now(struct conn *c)
{
	ssize_t n;

	if (!in_get(c))
		return -ENOMEM;
	n = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, MSG_DONTWAIT);
	return n >= 0 ? (int)n : -errno;
}

/* What a receive of a head got: res bytes (now at in + in_len), or why it
 * ended (0: the client closed). */
static void head_got(struct conn *c, int res)
{
	if (res > 0) {
		c->in_len += res;
		atomic_fetch_add(&c->w->s->st.bytes_in, res);
		parse_head(c);
	} else if (res < 0 && c->in_len > 0 && head_expired(c) && !rctx_err(conn_ctx(c)) &&
		   (c->r || (c->r = req_take(c->w)))) {
		/* A head that trickles in: 408, then close. */
		hdr_ctx_end(c);
		c->r->t0 = rctx_now();
		request_begin(c);
		snprintf(c->r->method, sizeof(c->r->method), "-");
		c->state = C_BUSY;
		conn_error(c, 408);
	} else {
		conn_abort(c, NULL);	/* EOF, idle timeout, drain, error */
	}
}

static void poll_head(struct conn *c);

/* Read what the socket holds now, with no buffer of the worker's; if it
 * holds nothing yet, wait for it with a poll. */
static void head_now(struct conn *c)
{
	int res = recv_now(c);

	if (res == -EAGAIN)
		poll_head(c);
	else
		head_got(c, res);
}

static void recv_head_cb(void *arg, int res, uint32_t flags)
{
	struct conn *c = arg;

	if (flags & IORING_CQE_F_BUFFER)
		res = ibuf_copy(c, res, flags);
	if (c->state == C_DEAD)
		goto out;
	/* The worker's buffers were all taken: what came is read here at
	 * once, else waited for with no buffer held. */
	if (res == -ENOBUFS && !c->in_len)
		head_now(c);
	else
		head_got(c, res);
out:
	conn_put(c);
}

static void poll_head_cb(void *arg, int res, uint32_t flags)
{
	struct conn *c = arg;

	(void)flags;
	if (c->state == C_DEAD)
		goto out;
	if (res > 0)		/* readable, or the client is gone */
		head_now(c);
	else
		head_got(c, res);
out:
	conn_put(c);
}

/* Wait for the first bytes of a head with no buffer held: a poll. */
static void poll_head(struct conn *c)
{
	struct io_uring_sqe sqe = { 0 };

	in_give(c->w, c->in);
	c->in = NULL;
	c->in_cap = 0;
	io_uring_prep_poll_add(&sqe, c->fd, POLLIN);
	if (conn_submit(c, c->hdr_ctx, &sqe, poll_head_cb, c))
		conn_abort(c, "submit");
}

/*
 * A head in pieces: from now on under a deadline context of its own, with
 * the same deadline (drain ends the idle contexts, not this one).
 */
static bool own_hdr_ctx(struct conn *c)
{
	rctx_t *own = rctx_with_deadline(conn_ctx(c), c->hdr_expires);

	if (!own) {
		conn_abort(c, "out-of-memory");
		return false;
	}
	hdr_ctx_end(c);
	c->hdr_ctx = own;
	return true;
}

/*
 * Receive (more of) a head. Nothing received yet: into one of the worker's
 * provided buffers, so that an idle connection holds none; else into the
 * input buffer.
 */
static void recv_head(struct conn *c)
{
	struct io_uring_sqe sqe = { 0 };

	if (c->in_len && c->hdr_shared && !own_hdr_ctx(c))
		return;
	if (c->in || !ibuf_recv(c->w, &sqe, c->fd)) {
		if (!in_get(c)) {
			conn_abort(c, "out-of-memory");
			return;
		}
		io_uring_prep_recv(&sqe, c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
	}
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
	struct http_slice v = c->r->req.timeout;
	char buf[RCTX_GRPC_TIMEOUT_MAX];
	uint64_t ms = 0;
	size_t i;

	if (c->r->req.has_grpc_timeout) {
		if (c->r->req.grpc_timeout.n >= sizeof(buf))
			return -1;
		copy_slice(buf, sizeof(buf), c->r->req.grpc_timeout);
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
 * 32 hex digits, else random) with a new span. c->r->tp is the server's span,
 * echoed in the response's traceparent.
 */
static rctx_t *trace_ctx(struct conn *c)
{
	char buf[RCTX_TRACEPARENT_LEN + 8];
	struct rctx_trace in;

	if (c->r->req.traceparent.n && c->r->req.traceparent.n < sizeof(buf)) {
		copy_slice(buf, sizeof(buf), c->r->req.traceparent);
		if (!rctx_trace_parse(buf, &in) && !rctx_trace_child(&in, &c->r->tp))
			return rctx_with_trace(conn_ctx(c), &c->r->tp);
	}
	if (!hex_id(c->r->req.trace_id, c->r->tp.trace_id))
		id_random(c->r->tp.trace_id, sizeof(c->r->tp.trace_id));
	c->r->tp.flags = 1;	/* sampled */
	do
		id_random(c->r->tp.span_id, sizeof(c->r->tp.span_id));
	while (!memcmp(c->r->tp.span_id, "\0\0\0\0\0\0\0\0", 8));
	return rctx_with_trace(conn_ctx(c), &c->r->tp);
}

/* One of --max-inflight for an object request; false: answer 503. */
static bool take_slot(struct conn *c)
{
	struct server *s = c->w->s;

	if (atomic_fetch_add(&s->st.objects, 1) >= s->o.max_inflight) {
		atomic_fetch_sub(&s->st.objects, 1);
		return false;
	}
	c->r->slot = true;
	return true;
}

static void dispatch(struct conn *c)
{
	struct server *s = c->w->s;
	int64_t timeout;
	rctx_t *tctx;
	size_t keycap;
	int err;

	copy_slice(c->r->method, sizeof(c->r->method), c->r->req.method_name);
	copy_slice(c->r->path, sizeof(c->r->path), c->r->req.target);
	copy_slice(c->r->trace, sizeof(c->r->trace), c->r->req.trace_id);
	for (char *p = c->r->trace; *p; p++)
		if ((unsigned char)*p < ' ' || *p == 0x7f)
			*p = '_';
	c->r->keep_alive = c->r->req.keep_alive;
	/* Only a PUT reads its body: after another request's body the stream
	 * is out of step (the body is not a request), so close after it. */
	if (c->r->req.method != HTTP_PUT &&
	    (c->r->req.chunked || (c->r->req.has_length && c->r->req.content_length)))
		c->r->keep_alive = false;
	tctx = trace_ctx(c);
	timeout = request_timeout(c);
	if (timeout < 0) {
		rctx_unref(tctx);
		c->r->why = "bad-grpc-timeout";
		conn_error(c, 400);
		return;
	}
	if (tctx)
		c->r->req_ctx = timeout == RCTX_FOREVER ? rctx_with_cancel(tctx) :
			     rctx_with_timeout(tctx, timeout);
	rctx_unref(tctx);	/* the request context holds it */
	if (!c->r->req_ctx) {
		conn_error(c, 503);
		return;
	}
	if (c->r->req.method == HTTP_GET && c->loopback &&
	    !strncmp(c->r->path, "/debug/", 7)) {
		stats_serve(c);
		return;
	}
	if (!take_slot(c)) {
		c->r->why = "max-inflight";
		if (c->r->req.has_length && c->r->req.content_length)
			c->r->keep_alive = false;	/* a body we will not read */
		conn_error(c, 503);
		return;
	}
	/* The key is never longer than the target: it fits after the head
	 * (keep_head made room), or it is too long (400). */
	c->r->key = c->r->head + c->r->head_len;
	keycap = c->r->head_cap - c->r->head_len;
	err = key_from_target(c->r->req.target.p, c->r->req.target.n, c->r->key,
			      keycap < OBJD_KEY_MAX ? keycap : OBJD_KEY_MAX);
	if (c->r->req.method == HTTP_OTHER) {
		if (c->r->req.has_length && c->r->req.content_length)
			c->r->keep_alive = false;	/* a body we will not read */
		conn_respond(c, 405, "Allow: GET, HEAD, PUT, DELETE\r\n", "405 Method Not Allowed\n",
			     23, 23, conn_finish);
		return;
	}
	if (err) {
		if (c->r->req.method == HTTP_PUT)
			c->r->keep_alive = false;
		conn_error(c, -err);
		return;
	}
	(void)s;
	switch (c->r->req.method) {
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

	size_t need = n + 1 + (n < OBJD_KEY_MAX ? n : OBJD_KEY_MAX);	/* + the key */

	if (need > c->r->head_cap) {
		need = (need + 255) & ~(size_t)255;	/* a typical head: 256 */
		p = realloc(c->r->head, need);
		if (!p)
			return false;
		c->r->head = p;
		c->r->head_cap = need;
	}
	memcpy(c->r->head, c->in, n);
	c->r->head_len = n;
	http_req_move(&c->r->req, c->in, c->r->head);
	consume(c, n);
	return true;
}

static void parse_head(struct conn *c)
{
	struct server *s = c->w->s;
	struct http_limits lim = { 8192, 32768 };
	int res;

	if (!c->r && !(c->r = req_take(c->w))) {
		conn_abort(c, "out-of-memory");
		return;
	}
	res = http_parse(c->in, c->in_len, &lim, &c->r->req);
	if (res == 0 && c->in_len < c->in_cap) {
		recv_head(c);
		return;
	}
	hdr_ctx_end(c);
	c->state = C_BUSY;
	c->r->t0 = rctx_now();
	c->r->head_sent = false;
	request_begin(c);
	atomic_fetch_add(&s->st.requests, 1);
	if (res <= 0) {
		snprintf(c->r->method, sizeof(c->r->method), "-");
		c->r->keep_alive = false;
		conn_error(c, res ? -res : 431);
		return;
	}
	if (!keep_head(c, res)) {
		c->r->keep_alive = false;
		conn_error(c, 503);
		return;
	}
	if (!c->in_len && !c->r->req.chunked && !c->r->req.content_length) {
		/* Nothing more to read for this request: no input buffer
		 * while it is served. */
		in_give(c->w, c->in);
		c->in = NULL;
		c->in_cap = 0;
	}
	dispatch(c);
}

/*
 * Wait for (or find in the buffer) the next request, for --header-timeout
 * (the worker's idle context of this time slice: idle.c). An idle
 * connection keeps no buffer and no request.
 */
static void next_request(struct conn *c)
{
	struct worker *w = c->w;

	c->state = C_WAIT;
	c->hdr_ctx = idle_ctx(w, &c->hdr_expires);
	c->hdr_shared = c->hdr_ctx != NULL;
	if (!c->hdr_ctx) {
		conn_abort(c, "out-of-memory");
		return;
	}
	if (c->in_len) {
		parse_head(c);
		return;
	}
	in_give(w, c->in);
	c->in = NULL;
	c->in_cap = 0;
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
	c->next = w->conns;
	if (w->conns)
		w->conns->prev = c;
	w->conns = c;
	w->nconns++;
	if (atomic_fetch_add(&s->st.conns, 1) >= s->o.max_conns) {
		if (!(c->r = req_take(w))) {
			conn_abort(c, "out-of-memory");
			return;
		}
		c->state = C_BUSY;
		c->r->t0 = rctx_now();
		request_begin(c);
		snprintf(c->r->method, sizeof(c->r->method), "-");
		c->r->why = "max-conns";
		conn_error(c, 503);
		return;
	}
	conn_get(c);
	next_request(c);
	conn_put(c);
}

/*
 * SIGTERM: close the connections that wait for a request (the idle
 * contexts end; a lingering close that got nothing yet ends too); a head
 * in pieces may still come in, and the busy ones close after their
 * response (Connection: close).
 */
void conn_drain(struct worker *w)
{
	idle_expire(w, true);
	for (struct conn *c = w->conns; c; c = c->next)
		if (c->state == C_WAIT && c->in_len == 0 && c->hdr_ctx && !c->hdr_shared)
			rctx_cancel(c->hdr_ctx);
}
