/* SPDX-License-Identifier: MIT */
/* Helpers for the ring tests: completion records and fd fixtures. */
#ifndef RINGCTX_RING_UTIL_H
#define RINGCTX_RING_UTIL_H

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <ringctx.h>

#include "helpers.h"

/* One completion record per request: how often its callback ran, with what. */
struct done_rec {
	int calls;
	int res;
};

static void rec_cb(void *arg, int res, uint32_t flags)
{
	struct done_rec *d = arg;

	(void)flags;
	d->calls++;
	d->res = res;
}

/* Run ring until *counter reaches want or limit_ms passes (TH_PATIENCE_MS
 * for anything that must happen). */
static inline int run_until(rctx_ring_t *ring, const int *counter, int want, int limit_ms)
{
	int64_t limit = rctx_now() + (int64_t)limit_ms * 1000000;

	while (*counter < want && rctx_now() < limit)
		rctx_ring_run(ring, rctx_now() + 10000000);
	return *counter;
}

/* Run until every callback ran (pending == 0) or limit_ms passes. */
static inline void drain(rctx_ring_t *ring, int limit_ms)
{
	int64_t limit = rctx_now() + (int64_t)limit_ms * 1000000;

	while (rctx_ring_pending(ring) && rctx_now() < limit)
		rctx_ring_run(ring, rctx_now() + 10000000);
}

/* Run until every callback ran, failing the test if that takes too long. */
static inline void drain_all(rctx_ring_t *ring)
{
	drain(ring, TH_PATIENCE_MS);
	cr_assert_eq(rctx_ring_pending(ring), 0, "requests never completed");
}

static inline void sub(rctx_ring_t *ring, rctx_t *ctx, struct io_uring_sqe *sqe,
		       struct done_rec *d)
{
	cr_assert_eq(rctx_submit(ring, ctx, sqe, rec_cb, d), 0);
}

/* A TCP listener on 127.0.0.1 with an ephemeral port. */
static inline int tcp_listener(struct sockaddr_in *addr, int backlog)
{
	socklen_t len = sizeof(*addr);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	cr_assert_geq(fd, 0);
	memset(addr, 0, sizeof(*addr));
	addr->sin_family = AF_INET;
	addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(bind(fd, (struct sockaddr *)addr, sizeof(*addr)), 0);
	cr_assert_eq(listen(fd, backlog), 0);
	cr_assert_eq(getsockname(fd, (struct sockaddr *)addr, &len), 0);
	return fd;
}

static inline void raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

#endif
