/* SPDX-License-Identifier: MIT */
/*
 * objd.h - ringctx-objd: an HTTP/1.1 object server over a directory, on
 * ringctx's public API. The structures the files of tools/objd/ share.
 *
 * Contexts: server (cancelled at the end of the drain) > accepting (a
 * signal context: SIGTERM/SIGINT end it and stop the accepts) ; server >
 * connection (a hang-up context: the client's hang-up ends it; made for
 * each request, so that an idle keep-alive connection holds none) > header
 * (--header-timeout) and trace (the request's traceparent) > request
 * (--timeout, shortened by grpc-timeout or X-Request-Timeout, at most
 * --max-timeout) > every recv, send and file request of that request.
 */
#ifndef OBJD_H
#define OBJD_H

#include <linux/openat2.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <ringctx.h>

#include "http.h"
#include "path.h"

#define OBJD_CHUNK (64 * 1024)	/* file reads and writes */
#define OBJD_HEAD_BODY (16 * 1024)	/* a first read up to this size is sent
					   with the response head */
#define OBJD_SPLICE_MIN (64 * 1024)	/* a larger body goes through a pipe */
#define OBJD_PIPE_SIZE (1024 * 1024)	/* asked for each pipe */
#define OBJD_PIPE_POOL 64		/* pipes kept per worker */
#define OBJD_IN_CAP (32768 + OBJD_CHUNK)	/* a connection's input buffer */
#define OBJD_POOL 16			/* requests, input buffers kept per worker */
#define OBJD_IBUFS 512			/* provided receive buffers per worker */
#define OBJD_IBUF_SIZE 256		/* ... each (a head's first bytes) */
#define OBJD_DISCARD (16 * 1024)	/* a worker's buffer for bytes it drops */
#define OBJD_IDLE_SLICES 16		/* idle contexts per --header-timeout */
#define OBJD_IDLE_MAX (2 * OBJD_IDLE_SLICES)	/* alive at once, at most */
#define OBJD_FLIGHT_BUCKETS 64		/* opens in flight, by key (flight.c) */

struct objd_opts {
	char addr[64];
	int port;
	int threads;
	int64_t timeout_ns;
	int64_t max_timeout_ns;		/* what a request may ask for */
	int64_t header_timeout_ns;
	int64_t drain_ns;
	uint64_t max_body;
	int max_conns;
	int max_inflight;		/* object requests, else 503 */
	unsigned io_workers;		/* per device: rctx_device_limit() */
	unsigned cache_cap;		/* open-file cache entries per worker */
	int64_t cache_ttl_ns;		/* outside changes seen within it */
	const char *root;
	const char *access_log;
};

struct objd_stats {
	atomic_ullong requests;
	atomic_ullong by_status[600];
	atomic_ullong bytes_in, bytes_out;
	atomic_llong in_flight;
	atomic_llong objects;		/* object requests holding a slot */
	atomic_llong conns;
	atomic_ullong abandoned;	/* file requests left to a stuck kernel */
	atomic_llong opens_in_flight;	/* keys whose open a GET may join */
	atomic_ullong opens_joined;	/* GETs that waited for such an open */
};

struct worker;

/* A pipe of the pool (pipe.c): read and write ends, capacity in bytes. */
struct objd_pipe {
	int fd[2];
	unsigned cap;
};

/* An open file of the cache (cache.c). */
struct fentry {
	struct fentry *hnext;		/* hash chain */
	struct fentry *lprev, *lnext;	/* LRU, most recent first */
	struct fentry *snext;		/* the shared index (cache.c): while linked */
	uint64_t hash, gen;
	int64_t expires;
	int refs;			/* the table's + the requests' */
	bool linked;			/* in the table */
	bool refreshing;		/* a new open of its key is in flight */
	int fd;
	uint64_t size;
	int64_t mtime;
	char etag[HTTP_ETAG_MAX];
	/* A GET's validator headers, made once: "ETag: ...\r\nLast-Modified:
	 * ...\r\n" (vlen bytes; a 304's) then "Accept-Ranges: bytes\r\n". */
	char vhdrs[128];
	uint8_t vlen, vhlen;
	char key[];
};

/* An open of a key in flight, that GETs of the key join (flight.c). */
struct flight {
	struct flight *hnext;		/* in the table (flight.c) */
	struct worker *w;
	rctx_t *ctx;			/* the open's: under the worker's flights_ctx */
	struct fwait *waiters;
	uint64_t hash, gen;
	int64_t t0;
	int efd;			/* eventfd: written once answered */
	atomic_int refs;		/* the open's + one per waiter */
	bool linked;			/* in the table: may be joined */
	bool via_symlink;		/* opened following links: not cached */
	char key[];
};

/* A worker's open-file cache: only its thread touches it. */
struct fcache {
	struct fentry **table;
	unsigned nbuckets, n, cap;
	struct fentry *lru_head, *lru_tail;
	atomic_ullong hits, misses, stale, evicted, borrowed;	/* /debug/stats */
};

struct server {
	struct objd_opts o;
	int root_fd;
	rctx_t *ctx;		/* everything: cancelled after the drain */
	rctx_t *accepting;	/* the accepts: ended by SIGTERM/SIGINT */
	atomic_bool draining;
	FILE *log;
	struct objd_stats st;
	struct worker *workers;
};

struct conn;
struct request;

/* Response heads are made with these rather than printf (per request). */
static inline char *put_str(char *p, const char *s)
{
	size_t n = strlen(s);

	memcpy(p, s, n);
	return p + n;
}

static inline char *put_u64(char *p, uint64_t v)
{
	char d[20];
	int n = 0;

	do
		d[n++] = '0' + v % 10;
	while ((v /= 10));
	while (n)
		*p++ = d[--n];
	return p;
}

struct worker {
	struct server *s;
	int idx;
	rctx_ring_t *ring;
	int lfd;
	bool accepting;
	struct conn *conns;	/* doubly linked */
	unsigned nconns;
	unsigned send_depth;	/* responses sent at once, nested (conn.c) */
	unsigned active;	/* its requests in progress (conn.c) */
	unsigned long seq;	/* temporary names */
	pthread_t th;
	atomic_bool served;	/* its connections all ended and logged */
	struct sockaddr_storage peer;
	socklen_t peerlen;
	struct fcache fc;
	rctx_t *flights_ctx;	/* the flights' parent, child of the server's */
	struct objd_pipe pipes[OBJD_PIPE_POOL];	/* empty ones, for reuse */
	unsigned npipes;
	/* idle.c: the idle contexts (a FIFO of slices), the provided receive
	 * buffers, the pools. */
	struct idle_slice {
		rctx_t *ctx;
		int64_t expires;
	} slices[OBJD_IDLE_MAX];
	unsigned slice0, nslices;
	struct io_uring_buf_ring *ibr;
	char *ibufs;
	struct request *free_reqs;
	unsigned nfree_reqs, nfree_ins;
	char *free_ins[OBJD_POOL];
	/* conn.c: what lingering closes read, never looked at (the kernel
	 * may write it for several of them at once). */
	char discard[OBJD_DISCARD];
};

struct conn;

/*
 * The next step of a request after a file request (open, statx, read, write,
 * fsync, rename, unlink). Those are ringctx's abandonable requests
 * (rctx_async_*): the library owns their memory, and answers at the request
 * context's end even while the kernel still holds them (a stuck disk).
 * res: the result, or the context's error; data: a read's bytes or a
 * statx, valid during the call only.
 */
typedef void (*file_step)(struct conn *c, int res, void *data);

enum conn_state { C_WAIT, C_BUSY, C_DEAD };

/*
 * A request being read or served (conn.c): taken from its worker's pool
 * when the first bytes of its head arrive, given back when its response is
 * out (or with its connection, after an abort: callbacks of its requests
 * may still run). An idle keep-alive connection holds none.
 */
struct request {
	struct request *next_free;	/* in the worker's pool */
	rctx_t *req_ctx, *resp_ctx;
	file_step fnext;	/* the file request in flight: its next step */
	bool fopens;		/* ... an open: a result >= 0 is an fd */
	char *sbuf;		/* a chunk read and being sent, or being
				   written (OBJD_CHUNK bytes) */
	struct objd_pipe pipe;	/* a large body's: fd[0] -1 when none */
	size_t pipe_len;	/* bytes in it, not yet sent */
	bool pipe_lent;		/* to the library, for a splice in flight */
	size_t sb_len, sb_sent;	/* GET: read, sent */
	size_t wlen, wdone;	/* PUT: to write, written */

	/* Its head, moved out of the connection's `in` (req's slices with
	 * it): `in` then holds only the body and the pipelined requests. */
	struct http_req req;
	char *head;
	size_t head_len, head_cap;
	char *key;		/* in head's buffer, after the head */
	const char *dir, *base;
	char method[16], path[256], trace[80];	/* trace: X-Trace-ID */
	struct rctx_trace tp;	/* the request's trace (traceparent) */
	bool slot;		/* holds one of --max-inflight */
	int64_t t0;
	bool keep_alive, head_sent;
	bool more;		/* the bytes being sent have more after them */
	bool resp_of_req;	/* its response's context is a child of req_ctx */
	int status;
	const char *why;
	uint64_t bytes_out, body_left, off, last, size;
	int file_fd, dir_fd, tmp_fd;
	char tmpname[64];
	struct http_chunked chunk;	/* a chunked PUT body (body_left: ~0) */
	bool existed;
	int get_status;		/* a GET's 200 or 206, sent with its first bytes */
	char get_hdrs[256];
	char etag[HTTP_ETAG_MAX];	/* the object's validators */
	int64_t mtime;
	/* The open-file cache: the entry whose fd (file_fd) the GET reads
	 * (cached, or its open's alone); the key's hash; a PUT's or DELETE's
	 * open that followed a symbolic link (which then invalidates every
	 * entry). */
	struct fentry *fe;
	uint64_t khash;
	bool via_symlink;

	/* The response head (or a small body) being sent. */
	char *out;
	size_t out_len, out_off, out_cap;
	void (*on_sent)(struct conn *c);
};

/*
 * A connection: all an idle keep-alive one holds. Its input buffer only
 * while it has bytes to keep (a head in pieces, a body, pipelined
 * requests); its request and its context only while one is read or served
 * (the context, until it lingers or is freed).
 */
struct conn {
	struct worker *w;
	struct conn *prev, *next;
	rctx_t *ctx;		/* while it has a request (or lingers): NULL idle */
	rctx_t *hdr_ctx;
	int64_t hdr_expires;	/* the head's deadline */
	char *in;		/* OBJD_IN_CAP bytes, or NULL */
	struct request *r;
	int fd;
	int refs;
	uint32_t in_len, in_cap;
	uint8_t state;		/* enum conn_state */
	bool loopback;
	bool hdr_shared;	/* hdr_ctx is the worker's idle context */
};

/* The connection's context: its own (a hang-up context) while it has a
 * request, else the server's. */
static inline rctx_t *conn_ctx(const struct conn *c)
{
	return c->ctx ? c->ctx : c->w->s->ctx;
}

/* conn.c */
void conn_start(struct worker *w, int fd, bool loopback);
void conn_drain(struct worker *w);
void conn_get(struct conn *c);
void conn_put(struct conn *c);
int conn_submit(struct conn *c, rctx_t *ctx, struct io_uring_sqe *sqe, rctx_cb_t cb, void *arg);
void conn_respond(struct conn *c, int status, const char *extra, const char *body,
		  size_t body_len, uint64_t content_length, void (*on_sent)(struct conn *));
void conn_error(struct conn *c, int status);
void conn_send_out(struct conn *c);
rctx_t *conn_resp_ctx(struct conn *c);
void conn_finish(struct conn *c);
void conn_abort(struct conn *c, const char *why);
void file_cb(void *arg, int res, void *data, unsigned flags);
int file_started(struct conn *c, int err, file_step next, bool opens);
void close_async(struct worker *w, int fd);
int status_of_errno(struct conn *c, int res);
bool ctx_expired(rctx_t *ctx);
const char *cancel_why(struct conn *c);
void request_end(struct conn *c);
const char *send_failure(struct conn *c);

/* object.c */
void object_get(struct conn *c);
void object_put(struct conn *c);
void object_delete(struct conn *c);
void object_release(struct conn *c, bool failed);
void get_flown(struct conn *c, int res, struct fentry *e);

/* flight.c */
int flights_init(struct worker *w);
int flight_join(struct conn *c);
void flights_cancel(struct worker *w);

/* cache.c */
uint64_t cache_hash(const char *key);
uint64_t cache_gen(uint64_t h);
void cache_invalidate(uint64_t h, bool all);
int cache_init(struct worker *w, unsigned cap);
void cache_destroy(struct worker *w);
struct fentry *cache_get(struct worker *w, const char *key, uint64_t h);
struct fentry *cache_add(struct worker *w, const char *key, uint64_t h, uint64_t gen,
			 int64_t t0, int fd, uint64_t size, const char *etag, int64_t mtime);
struct fentry *cache_borrow(struct worker *w, const char *key, uint64_t h);
struct fentry *fentry_new(const char *key, uint64_t h, int fd, uint64_t size,
			  const char *etag, int64_t mtime);
void cache_put(struct worker *w, struct fentry *e);
void cache_drop(struct worker *w, struct fentry *e);
bool cache_refresh_due(struct worker *w, struct fentry *e);

/* idle.c */
int idle_init(struct worker *w);
void idle_destroy(struct worker *w);
rctx_t *idle_ctx(struct worker *w, int64_t *expires);
int64_t idle_next(struct worker *w);
void idle_expire(struct worker *w, bool all);
bool head_expired(const struct conn *c);
bool ibuf_recv(struct worker *w, struct io_uring_sqe *sqe, int fd);
const char *ibuf_at(struct worker *w, unsigned bid);
void ibuf_done(struct worker *w, unsigned bid);
struct request *req_take(struct worker *w);
void req_give(struct worker *w, struct request *r);
char *in_take(struct worker *w);
void in_give(struct worker *w, char *in);

/* pipe.c */
int pipe_take(struct conn *c);
void pipe_give(struct conn *c, bool reuse);
void pipe_returned(struct conn *c, unsigned flags);
void pipes_destroy(struct worker *w);

/* stats.c */
void stats_serve(struct conn *c);
void stats_status(struct server *s, int status);

/* log.c */
void log_request(struct conn *c);

/* main.c */
extern struct server objd;

#endif
