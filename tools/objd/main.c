/* SPDX-License-Identifier: MIT */
/*
 * main.c - ringctx-objd's options, listening sockets, worker threads and
 * shutdown.
 *
 *   ringctx-objd [options] ROOT
 *
 * N worker threads, each with its own rctx_ring and its own listening socket
 * on the same address (SO_REUSEPORT), an accept always armed under a signal
 * context (rctx_with_signals). SIGTERM or SIGINT: stop accepting, let the requests in flight finish within --drain,
 * then cancel the server context (everything still running aborts) and exit 0.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "objd.h"

struct server objd;

static void usage(FILE *f)
{
	fprintf(f,
		"usage: ringctx-objd [options] ROOT\n"
		"  --listen ADDR:PORT     address (127.0.0.1:8080; port 0 picks one)\n"
		"  --threads N            worker threads (one per online CPU)\n"
		"  --timeout DUR          request deadline (30s)\n"
		"  --max-timeout DUR      the longest a grpc-timeout or X-Request-Timeout\n"
		"                         may ask for (--timeout)\n"
		"  --header-timeout DUR   deadline for a request head; also the idle\n"
		"                         keep-alive timeout (10s)\n"
		"  --drain DUR            grace for requests in flight at SIGTERM (5s)\n"
		"  --max-body BYTES       largest PUT body (1G)\n"
		"  --max-conns N          connections, beyond which 503 (1024)\n"
		"  --max-inflight N       object requests in flight, beyond which 503\n"
		"                         with Retry-After (4096)\n"
		"  --access-log FILE      access log (stderr); \"-\" for none\n"
		"  --device-limit N       file requests per device in the kernel at once\n"
		"                         (8): the most a stuck disk can hold, each\n"
		"                         stuck request keeping one\n"
		"  --open-cache N         open files cached per worker thread (1024;\n"
		"                         0: none)\n"
		"  --cache-ttl DUR        a cached file is opened again after it, so\n"
		"                         changes made outside the server are seen\n"
		"                         within it (1s); this server's PUT and DELETE\n"
		"                         are seen at once\n"
		"DUR: 250ms, 30s, 2m or seconds. BYTES: with an optional K, M or G.\n");
}

static int parse_dur(const char *s, int64_t *ns)
{
	char *end;
	double v = strtod(s, &end);

	if (end == s || v < 0)
		return -1;
	if (!strcmp(end, "ms"))
		v *= 1e6;
	else if (!*end || !strcmp(end, "s"))
		v *= 1e9;
	else if (!strcmp(end, "m"))
		v *= 60e9;
	else
		return -1;
	if (v < 1 || v > 1e17)
		return -1;
	*ns = (int64_t)v;
	return 0;
}

static int parse_bytes(const char *s, uint64_t *b)
{
	char *end;
	unsigned long long v = strtoull(s, &end, 10);

	if (end == s)
		return -1;
	switch (*end) {
	case 'K': v <<= 10; end++; break;
	case 'M': v <<= 20; end++; break;
	case 'G': v <<= 30; end++; break;
	}
	if (*end)
		return -1;
	*b = v;
	return 0;
}

static int parse_opts(int argc, char **argv, struct objd_opts *o)
{
	static const struct option lo[] = {
		{ "listen", 1, NULL, 'l' }, { "threads", 1, NULL, 't' },
		{ "timeout", 1, NULL, 'T' }, { "header-timeout", 1, NULL, 'H' },
		{ "drain", 1, NULL, 'd' }, { "max-body", 1, NULL, 'b' },
		{ "max-conns", 1, NULL, 'c' }, { "access-log", 1, NULL, 'a' },
		{ "device-limit", 1, NULL, 'w' }, { "max-timeout", 1, NULL, 'M' },
		{ "max-inflight", 1, NULL, 'i' },
		{ "open-cache", 1, NULL, 'C' }, { "cache-ttl", 1, NULL, 'L' },
		{ "help", 0, NULL, 'h' }, { 0 },
	};
	char *colon;
	int ch;

	snprintf(o->addr, sizeof(o->addr), "127.0.0.1");
	o->port = 8080;
	o->threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
	o->timeout_ns = 30LL * 1000000000;
	o->header_timeout_ns = 10LL * 1000000000;
	o->drain_ns = 5LL * 1000000000;
	o->max_body = 1ULL << 30;
	o->max_conns = 1024;
	o->max_inflight = 4096;
	o->max_timeout_ns = 0;	/* --timeout */
	o->io_workers = RCTX_DEVICE_LIMIT_DEFAULT;
	o->cache_cap = 1024;
	o->cache_ttl_ns = 1000000000;
	while ((ch = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (ch) {
		case 'l':
			colon = strrchr(optarg, ':');
			if (!colon || (size_t)(colon - optarg) >= sizeof(o->addr))
				return -1;
			snprintf(o->addr, sizeof(o->addr), "%.*s", (int)(colon - optarg), optarg);
			o->port = atoi(colon + 1);
			break;
		case 't': o->threads = atoi(optarg); break;
		case 'T': if (parse_dur(optarg, &o->timeout_ns)) return -1; break;
		case 'H': if (parse_dur(optarg, &o->header_timeout_ns)) return -1; break;
		case 'd': if (parse_dur(optarg, &o->drain_ns)) return -1; break;
		case 'b': if (parse_bytes(optarg, &o->max_body)) return -1; break;
		case 'c': o->max_conns = atoi(optarg); break;
		case 'a': o->access_log = optarg; break;
		case 'w': o->io_workers = (unsigned)atoi(optarg); break;
		case 'M': if (parse_dur(optarg, &o->max_timeout_ns)) return -1; break;
		case 'i': o->max_inflight = atoi(optarg); break;
		case 'C':
			if (atoi(optarg) < 0 || atoi(optarg) > 1000000)
				return -1;
			o->cache_cap = (unsigned)atoi(optarg);
			break;
		case 'L': if (parse_dur(optarg, &o->cache_ttl_ns)) return -1; break;
		case 'h': usage(stdout); exit(0);
		default: return -1;
		}
	}
	if (optind != argc - 1 || o->threads < 1 || o->threads > 1024 ||
	    o->max_conns < 1 || o->max_inflight < 1 || o->port < 0 || o->port > 65535 ||
	    o->io_workers < 1 || o->io_workers > RCTX_DEVICE_LIMIT_MAX)
		return -1;
	o->root = argv[optind];
	if (!o->max_timeout_ns)
		o->max_timeout_ns = o->timeout_ns;
	return 0;
}

/* ---- listening ---------------------------------------------------------- */

static int listen_on(const struct objd_opts *o, int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
	int one = 1, fd;

	if (inet_pton(AF_INET, o->addr, &sa.sin_addr) != 1)
		return -EINVAL;
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* Accepted sockets inherit TCP_NODELAY: a response's head and body
	 * go out at once, not after the client's delayed ACK. The backlog is
	 * the system's (net.core.somaxconn), as Go's: thousands of clients
	 * connecting at once wait there, not in SYN retries. */
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) ||
	    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) ||
	    bind(fd, (struct sockaddr *)&sa, sizeof(sa)) || listen(fd, SOMAXCONN)) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}

static int bound_port(int fd)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);

	if (getsockname(fd, (struct sockaddr *)&sa, &len))
		return -errno;
	return ntohs(sa.sin_port);
}

static bool is_loopback(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr) >> 24) == 127;
	if (ss->ss_family == AF_INET6)
		return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)ss)->sin6_addr);
	return false;
}

/* ---- workers ------------------------------------------------------------ */

static void accept_cb(void *arg, int res, uint32_t flags);

static void arm_accept(struct worker *w)
{
	struct io_uring_sqe sqe = { 0 };

	w->peerlen = sizeof(w->peer);
	/* Non-blocking: a body spliced from a pipe (splice(2) on this
	 * thread) must never wait for the client; io_uring's recv and send
	 * still wait for readiness as usual. */
	io_uring_prep_accept(&sqe, w->lfd, (struct sockaddr *)&w->peer, &w->peerlen,
			     SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (rctx_submit(w->ring, w->s->accepting, &sqe, accept_cb, w)) {
		fprintf(stderr, "ringctx-objd: worker %d cannot accept\n", w->idx);
		w->accepting = false;
	}
}

static void accept_cb(void *arg, int res, uint32_t flags)
{
	struct worker *w = arg;

	(void)flags;
	if (res >= 0)
		conn_start(w, res, is_loopback(&w->peer));
	if (!rctx_err(w->s->accepting)) {
		arm_accept(w);
		return;
	}
	/* Draining: no more connections; the idle ones close now. */
	close(w->lfd);
	w->lfd = -1;
	w->accepting = false;
	conn_drain(w);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	int64_t until;

	w->accepting = true;
	arm_accept(w);
	while (w->accepting || w->nconns) {
		int r = rctx_ring_run(w->ring, idle_next(w));

		if (r < 0 && r != -EINTR && r != -ETIME) {
			fprintf(stderr, "ringctx-objd: rctx_ring_run: %s\n", strerror(-r));
			break;
		}
		idle_expire(w, false);
	}
	flights_cancel(w);	/* their callbacks run below */
	cache_destroy(w);	/* its fds: no request uses them now */
	pipes_destroy(w);
	idle_destroy(w);
	atomic_store_explicit(&w->served, true, memory_order_release);
	/* Closes and clean-ups still in flight; a request that a stuck disk
	 * holds is left to the kernel (the ring is not destroyed then). */
	until = rctx_now() + 2LL * 1000000000;
	while (rctx_ring_pending(w->ring) && rctx_now() < until)
		rctx_ring_run(w->ring, until);
	if (rctx_ring_pending(w->ring)) {
		fprintf(stderr, "ringctx-objd: worker %d: %u requests still held by the kernel\n",
			w->idx, rctx_ring_pending(w->ring));
		return NULL;
	}
	rctx_ring_destroy(w->ring);
	w->ring = NULL;
	return NULL;
}

static int setup_workers(struct server *s)
{
	int port = s->o.port;

	s->workers = calloc(s->o.threads, sizeof(*s->workers));
	if (!s->workers)
		return -ENOMEM;
	for (int i = 0; i < s->o.threads; i++) {
		struct worker *w = &s->workers[i];
		int err;

		w->s = s;
		w->idx = i;
		w->lfd = listen_on(&s->o, port);
		if (w->lfd < 0)
			return w->lfd;
		if (i == 0)
			port = bound_port(w->lfd);
		err = rctx_ring_create(&w->ring, 1024);
		if (err)
			return err;
		if (cache_init(w, s->o.cache_cap) || idle_init(w) || flights_init(w))
			return -ENOMEM;
	}
	s->o.port = port;
	return 0;
}

/* ---- shutdown ----------------------------------------------------------- */

/* After the server context is cancelled, how long a worker that has
 * served its last connection may take to be joined, and how long one may
 * take to end its connections at all. */
#define HELD_GRACE_NS (50LL * 1000000)
#define UNSERVED_GRACE_NS (2000LL * 1000000)

/*
 * Join worker w before limit (rctx_now() clock), checking every 10 ms;
 * once it has served its connections, wait for it HELD_GRACE_NS at most.
 * Returns false if it was not joined: what is left of it is held by the
 * kernel (its thread's exit waits for its io-wq work, or it is waiting
 * for requests the kernel still holds before destroying its ring).
 */
static bool join_bounded(struct worker *w, int64_t limit)
{
	int64_t served_at = 0;

	for (;;) {
		int64_t now = rctx_now(), next = now + 10LL * 1000000;
		struct timespec ts;

		if (!served_at && atomic_load_explicit(&w->served, memory_order_acquire))
			served_at = now;
		if (served_at && served_at + HELD_GRACE_NS < limit)
			limit = served_at + HELD_GRACE_NS;
		if (now >= limit)
			return false;
		if (next > limit)
			next = limit;
		clock_gettime(CLOCK_REALTIME, &ts);
		next -= now;	/* relative */
		ts.tv_sec += next / 1000000000;
		ts.tv_nsec += next % 1000000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		if (pthread_timedjoin_np(w->th, NULL, &ts) == 0)
			return true;
	}
}

/* Wait until the signal context `accepting` ends (SIGTERM, SIGINT: the
 * accepts end with it), drain, then cancel what is left. Returns how many
 * workers could not be joined (held by the kernel). */
static int run_until_signal(struct server *s)
{
	struct timespec until;
	int64_t limit = 0;
	int held = 0;

	while (rctx_wait(s->accepting, RCTX_FOREVER))
		;
	fprintf(stderr, "ringctx-objd: signal %d: draining\n",
		rctx_cause_signal(rctx_cause(s->accepting)));
	atomic_store(&s->draining, true);
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += s->o.drain_ns / 1000000000;
	until.tv_nsec += s->o.drain_ns % 1000000000;
	if (until.tv_nsec >= 1000000000) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000;
	}
	for (int i = 0; i < s->o.threads; i++) {
		if (!limit && pthread_timedjoin_np(s->workers[i].th, NULL, &until) == 0)
			continue;
		if (!limit) {
			fprintf(stderr, "ringctx-objd: drain time is up: cancelling\n");
			rctx_cancel_cause(s->ctx, -ESHUTDOWN);
			limit = rctx_now() + UNSERVED_GRACE_NS;
		}
		/* Cancelled, a worker ends its connections at once; it is
		 * not waited for beyond that (a thread whose exit waits
		 * for the kernel would keep the process alive). */
		if (!join_bounded(&s->workers[i], limit))
			held++;
	}
	return held;
}

int main(int argc, char **argv)
{
	struct server *s = &objd;
	static const int sigs[] = { SIGTERM, SIGINT };
	sigset_t set;
	int err;

	if (parse_opts(argc, argv, &s->o)) {
		usage(stderr);
		return 2;
	}
	s->log = stderr;
	if (s->o.access_log && !strcmp(s->o.access_log, "-"))
		s->log = NULL;
	else if (s->o.access_log && !(s->log = fopen(s->o.access_log, "a"))) {
		perror(s->o.access_log);
		return 1;
	}
	if (s->log)
		setvbuf(s->log, NULL, _IOLBF, 0);
	/* File requests that may block run in the library's lanes, at most
	 * this many per device in the kernel: a stuck disk holds that many
	 * kernel workers, and the others wait (504 at their deadline). */
	rctx_device_limit(s->o.io_workers);
	s->root_fd = open(s->o.root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (s->root_fd < 0) {
		perror(s->o.root);
		return 1;
	}
	/* The threads block SIGTERM and SIGINT: the library's runtime thread
	 * takes them for the signal context. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	s->ctx = rctx_with_cancel(rctx_background());
	s->accepting = s->ctx ? rctx_with_signals(s->ctx, sigs, 2) : NULL;
	if (!s->accepting) {
		fprintf(stderr, "ringctx-objd: out of memory\n");
		return 1;
	}
	err = setup_workers(s);
	if (err) {
		fprintf(stderr, "ringctx-objd: %s:%d: %s\n", s->o.addr, s->o.port, strerror(-err));
		return 1;
	}
	printf("listening on %s:%d\n", s->o.addr, s->o.port);
	fflush(stdout);
	for (int i = 0; i < s->o.threads; i++) {
		err = pthread_create(&s->workers[i].th, NULL, worker_main, &s->workers[i]);
		if (err) {
			fprintf(stderr, "ringctx-objd: pthread_create: %s\n", strerror(err));
			return 1;
		}
	}
	err = run_until_signal(s);
	if (err) {
		/* Exit without joining them, nor the library's exit handler
		 * (a worker may still run): exit_group ends every thread the
		 * kernel lets go, and the process is reaped when the kernel
		 * lets go of the rest. */
		fprintf(stderr, "ringctx-objd: %d worker(s) held by the kernel: exiting\n", err);
		fflush(NULL);
		_exit(0);
	}
	rctx_release(s->accepting);
	rctx_release(s->ctx);
	close(s->root_fd);
	free(s->workers);
	if (s->log && s->log != stderr)
		fclose(s->log);
	return 0;
}
