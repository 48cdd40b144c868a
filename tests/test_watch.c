/* SPDX-License-Identifier: MIT */
/*
 * Description: fd contexts (rctx_with_fd, rctx_with_hangup). A hang-up
 * context ends with -ECONNRESET when the peer of a TCP (loopback) or UNIX
 * stream socket closes or shuts down its writing side, and not when data
 * arrives; a POLLIN watch on a pipe ends with its own cause when data is
 * written; invalid arguments give NULL; a parent cancelled first aborts the
 * poll (the keeper ring counts it) and so does a release before any event;
 * a parent done at creation gives a done context and no poll. A lazy
 * hang-up context (rctx_with_hangup_lazy) makes its poll only when a
 * request under it may wait for a file, or rctx_hangup_arm() asks for
 * it, and then ends on a hang-up that came before.
 *
 * Ordering, not timing: a watch counts as armed once the keeper counted its
 * poll submitted and a later turn of the runtime thread began (the turn that
 * took it also submitted it to the kernel). "Not ended by data" is checked
 * after a second watch on the same fd and ring, armed after the data was
 * written, has completed: the data's wake-up of the first poll came before.
 */
/* tsan: yes */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ringctx.h"
#include "helpers.h"
#include "ring_util.h"

TestSuite(watch, .timeout = 120);

static struct rctx_runtime_stats rt_stats(void)
{
	struct rctx_runtime_stats st;

	cr_assert_eq(rctx_runtime_stats(&st), 0);
	return st;
}

/* The runtime ring's counters (the watches' polls run there). */
static struct rctx_ring_stats kept(void)
{
	struct rctx_ring_stats st;

	cr_assert_eq(rctx_runtime_ring_stats(&st), 0);
	return st;
}

/* Start the runtime; the count of kept requests submitted so far. */
static uint64_t warm_up(void)
{
	cr_assert(th_runtime_settle());
	return rt_stats().kept_submitted;
}

/* Wait until the keeper took the watch created after `before` was read,
 * and a later runtime turn began (so it reached the kernel). */
static void wait_armed(uint64_t before)
{
	cr_assert(WAIT_UNTIL(rt_stats().kept_submitted > before, TH_PATIENCE_MS),
		  "the keeper never submitted the poll");
	cr_assert(th_runtime_settle());
}

static void assert_ends(rctx_t *ctx, int cause)
{
	cr_assert_eq(rctx_wait(ctx, rctx_now() + MS(TH_PATIENCE_MS)), 0,
		     "the context did not end");
	cr_assert_eq(rctx_err(ctx), -ECANCELED);
	cr_assert_eq(rctx_cause(ctx), cause, "cause %d, want %d",
		     rctx_cause(ctx), cause);
}

/* A connected loopback TCP pair. */
static void tcp_pair(int sv[2])
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);
	int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	cr_assert_geq(l, 0);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(bind(l, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(listen(l, 1), 0);
	cr_assert_eq(getsockname(l, (struct sockaddr *)&a, &len), 0);
	sv[1] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(sv[1], 0);
	cr_assert_eq(connect(sv[1], (struct sockaddr *)&a, sizeof(a)), 0);
	sv[0] = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	cr_assert_geq(sv[0], 0);
	close(l);
}

static void unix_pair(int sv[2])
{
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
}

/* Hang-up on sv[0] once the peer sv[1] closes (or shuts down writing). */
static void hangup_on_peer(void (*pair)(int sv[2]), bool shut_wr)
{
	uint64_t before = warm_up();
	int sv[2];
	rctx_t *h;

	pair(sv);
	h = rctx_with_hangup(rctx_background(), sv[0]);
	cr_assert_not_null(h);
	wait_armed(before);
	cr_assert_eq(rctx_err(h), 0, "ended before the peer went");
	if (shut_wr) {
		cr_assert_eq(shutdown(sv[1], SHUT_WR), 0);
	} else {
		close(sv[1]);
		sv[1] = -1;
	}
	assert_ends(h, -ECONNRESET);
	rctx_release(h);
	close(sv[0]);
	if (sv[1] >= 0)
		close(sv[1]);
}

Test(watch, hangup_tcp_peer_close) { hangup_on_peer(tcp_pair, false); }
Test(watch, hangup_tcp_peer_shutdown_wr) { hangup_on_peer(tcp_pair, true); }
Test(watch, hangup_unix_peer_close) { hangup_on_peer(unix_pair, false); }
Test(watch, hangup_unix_peer_shutdown_wr) { hangup_on_peer(unix_pair, true); }

/* Readable data does not end a hang-up context; the close after it does. */
static void hangup_not_on_data(void (*pair)(int sv[2]))
{
	uint64_t before = warm_up();
	int sv[2];
	rctx_t *h, *in;

	pair(sv);
	h = rctx_with_hangup(rctx_background(), sv[0]);
	cr_assert_not_null(h);
	wait_armed(before);
	cr_assert_eq(write(sv[1], "data", 4), 4);
	/* A POLLIN watch taken after the write completes on the same ring:
	 * the first poll's wake-up by the data came before it. */
	before = rt_stats().kept_submitted;
	in = rctx_with_fd(rctx_background(), sv[0], POLLIN, 7);
	cr_assert_not_null(in);
	assert_ends(in, 7);
	cr_assert(th_runtime_settle());
	cr_assert_eq(rctx_err(h), 0, "readable data ended a hang-up context");
	close(sv[1]);
	assert_ends(h, -ECONNRESET);
	rctx_release(in);
	rctx_release(h);
	close(sv[0]);
}

Test(watch, hangup_tcp_not_on_data) { hangup_not_on_data(tcp_pair); }
Test(watch, hangup_unix_not_on_data) { hangup_not_on_data(unix_pair); }

Test(watch, pollin_on_pipe)
{
	uint64_t before = warm_up();
	int p[2];
	rctx_t *w;
	char c;

	cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
	w = rctx_with_fd(rctx_background(), p[0], POLLIN, 1234);
	cr_assert_not_null(w);
	wait_armed(before);
	cr_assert_eq(rctx_err(w), 0, "ended before data");
	cr_assert_eq(write(p[1], "x", 1), 1);
	assert_ends(w, 1234);
	/* It read nothing: the byte is still there. */
	cr_assert_eq(read(p[0], &c, 1), 1);
	cr_assert_eq(c, 'x');
	rctx_release(w);
	close(p[0]);
	close(p[1]);
}

struct acall {
	int calls, res;
};

static void acall_cb(void *arg, int res, void *data, unsigned flags)
{
	struct acall *a = arg;

	(void)data; (void)flags;
	a->res = res;
	a->calls++;
}

/*
 * A lazy hang-up context makes no poll until a request under it may wait
 * for a file: a peer's hang-up (which an eager watch on the same socket
 * reports) leaves it alive, and so does a read served from the page cache
 * under it; an fsync under it (which always takes its lane) arms it, and
 * the hang-up that came before then ends it.
 */
Test(watch, lazy_hangup_armed_by_a_request_that_may_wait_for_a_file)
{
	char path[] = "/tmp/rctx-watch-XXXXXX";
	int sv[2], fd = mkstemp(path);
	rctx_t *lazy, *child, *eager;
	struct acall a = { 0 };
	uint64_t before;
	rctx_ring_t *ring;

	cr_assert_geq(fd, 0);
	unlink(path);
	cr_assert_eq(pwrite(fd, "cached", 6, 0), 6);
	cr_assert_eq(rctx_ring_create(&ring, 16), 0);
	before = warm_up();
	unix_pair(sv);
	lazy = rctx_with_hangup_lazy(rctx_background(), sv[0]);
	cr_assert_not_null(lazy);
	child = rctx_with_cancel(lazy);
	cr_assert_not_null(child);
	cr_assert(th_runtime_settle());
	cr_assert_eq(rt_stats().kept_submitted, before, "no poll made for it");
	/* The peer shuts down; an eager watch of the same socket sees it. */
	cr_assert_eq(shutdown(sv[1], SHUT_WR), 0);
	eager = rctx_with_hangup(rctx_background(), sv[0]);
	cr_assert_not_null(eager);
	assert_ends(eager, -ECONNRESET);
	cr_assert_eq(rctx_err(lazy), 0, "not watched yet");
	/* A read from the page cache under it: still not watched. */
	cr_assert_eq(rctx_async_read(ring, child, fd, 6, 0, acall_cb, &a), 0);
	cr_assert_eq(run_until(ring, &a.calls, 1, TH_PATIENCE_MS), 1);
	cr_assert_eq(a.res, 6);
	cr_assert(th_runtime_settle());
	cr_assert_eq(rctx_err(lazy), 0, "a page-cache read does not arm it");
	/* An fsync (its lane) under its child arms it: the hang-up ends it. */
	cr_assert_eq(rctx_async_fsync(ring, child, fd, 0, acall_cb, &a), 0);
	assert_ends(lazy, -ECONNRESET);
	cr_assert_eq(rctx_err(child), -ECANCELED);
	cr_assert_eq(run_until(ring, &a.calls, 2, TH_PATIENCE_MS), 2);
	rctx_release(child);
	rctx_release(lazy);
	rctx_release(eager);
	rctx_ring_destroy(ring);
	close(sv[0]);
	close(sv[1]);
	close(fd);
}

/*
 * rctx_hangup_arm() on a context under a lazy hang-up context makes its
 * poll, with no request: a hang-up that came before ends it (and the child)
 * at once; a second call makes no second poll; other contexts are passed
 * over; NULL is -EINVAL.
 */
Test(watch, lazy_hangup_armed_by_rctx_hangup_arm)
{
	uint64_t before = warm_up(), after;
	rctx_t *lazy, *child;
	int sv[2];

	unix_pair(sv);
	lazy = rctx_with_hangup_lazy(rctx_background(), sv[0]);
	cr_assert_not_null(lazy);
	child = rctx_with_cancel(lazy);
	cr_assert_not_null(child);
	cr_assert_eq(shutdown(sv[1], SHUT_WR), 0);
	cr_assert(th_runtime_settle());
	cr_assert_eq(rt_stats().kept_submitted, before, "no poll made for it");
	cr_assert_eq(rctx_err(lazy), 0, "not watched yet");
	cr_assert_eq(rctx_hangup_arm(child), 0);
	assert_ends(lazy, -ECONNRESET);
	cr_assert_eq(rctx_err(child), -ECANCELED);
	after = rt_stats().kept_submitted;
	cr_assert_eq(after, before + 1, "one poll");
	cr_assert_eq(rctx_hangup_arm(child), 0);
	cr_assert_eq(rctx_hangup_arm(rctx_background()), 0);
	cr_assert(th_runtime_settle());
	cr_assert_eq(rt_stats().kept_submitted, after, "made once");
	cr_assert_eq(rctx_hangup_arm(NULL), -EINVAL);
	rctx_release(child);
	rctx_release(lazy);
	close(sv[0]);
	close(sv[1]);
}

/* Released before any request armed it: it just ends, no poll made. */
Test(watch, lazy_hangup_released_unarmed)
{
	uint64_t before = warm_up();
	int sv[2];
	rctx_t *lazy;

	unix_pair(sv);
	lazy = rctx_with_hangup_lazy(rctx_background(), sv[0]);
	cr_assert_not_null(lazy);
	cr_assert_null(rctx_with_hangup_lazy(rctx_background(), -1));
	cr_assert_null(rctx_with_hangup_lazy(NULL, sv[0]));
	rctx_release(lazy);
	cr_assert(th_runtime_settle());
	cr_assert_eq(rt_stats().kept_submitted, before);
	close(sv[0]);
	close(sv[1]);
}

/* A descriptor that is not open is seen when the watch is made: the
 * context ends with cause -EBADF. */
Test(watch, lazy_hangup_on_a_closed_fd_ends_with_ebadf_when_armed)
{
	int sv[2];
	rctx_t *lazy;

	warm_up();
	unix_pair(sv);
	close(sv[0]);
	close(sv[1]);
	lazy = rctx_with_hangup_lazy(rctx_background(), sv[0]);
	cr_assert_not_null(lazy, "no system call at creation");
	cr_assert_eq(rctx_err(lazy), 0);
	cr_assert_eq(rctx_hangup_arm(lazy), 0);
	assert_ends(lazy, -EBADF);
	rctx_release(lazy);
}

Test(watch, invalid_arguments_give_null)
{
	int p[2];

	cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
	cr_assert_null(rctx_with_fd(NULL, p[0], POLLIN, 1));
	cr_assert_null(rctx_with_fd(rctx_background(), -1, POLLIN, 1));
	cr_assert_null(rctx_with_fd(rctx_background(), p[0], 0, 1));
	cr_assert_null(rctx_with_fd(rctx_background(), p[0], POLLIN, 0));
	cr_assert_null(rctx_with_hangup(NULL, p[0]));
	cr_assert_null(rctx_with_hangup(rctx_background(), -1));
	close(p[0]);
	close(p[1]);
	/* Closed: not open any more. */
	cr_assert_null(rctx_with_fd(rctx_background(), p[0], POLLIN, 1));
	cr_assert_null(rctx_with_hangup(rctx_background(), p[1]));
}

/* The parent is cancelled first: the watch ends with the parent's error
 * and cause, and its poll is aborted, not left behind. */
Test(watch, parent_cancel_aborts_poll)
{
	uint64_t before = warm_up();
	struct rctx_ring_stats k0;
	rctx_t *parent = rctx_with_cancel(rctx_background());
	rctx_t *w;
	int sv[2];

	cr_assert_not_null(parent);
	unix_pair(sv);
	w = rctx_with_hangup(parent, sv[0]);
	cr_assert_not_null(w);
	wait_armed(before);
	k0 = kept();
	cr_assert_eq(k0.in_flight, 1);
	cr_assert_eq(rctx_cancel_cause(parent, -EPIPE), 1);
	cr_assert_eq(rctx_err(w), -ECANCELED);
	cr_assert_eq(rctx_cause(w), -EPIPE);
	cr_assert(WAIT_UNTIL(kept().aborted > k0.aborted &&
			     kept().in_flight == 0, TH_PATIENCE_MS),
		  "the poll was not aborted");
	rctx_release(w);
	rctx_release(parent);
	close(sv[0]);
	close(sv[1]);
}

/* Released before any event: the poll is aborted, nothing leaks (ASan,
 * valgrind). */
Test(watch, release_before_event)
{
	uint64_t before = warm_up();
	struct rctx_ring_stats k0;
	rctx_t *w;
	int p[2];

	cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
	w = rctx_with_fd(rctx_background(), p[0], POLLIN, 1);
	cr_assert_not_null(w);
	wait_armed(before);
	k0 = kept();
	cr_assert_eq(k0.in_flight, 1);
	rctx_release(w);
	cr_assert(WAIT_UNTIL(kept().aborted > k0.aborted &&
			     kept().in_flight == 0, TH_PATIENCE_MS),
		  "the poll was not aborted");
	close(p[0]);
	close(p[1]);
}

/* Dropped with rctx_unref() instead of rctx_release(): the same, the watch
 * never outlives the last reference its owners hold; a reference taken
 * with rctx_ref() keeps it watching until that one goes too, and a child
 * made meanwhile ends with it. */
Test(watch, unref_of_the_last_user_reference_ends_the_watch)
{
	uint64_t before = warm_up();
	struct rctx_ring_stats k0;
	rctx_t *w, *child;
	int p[2];

	cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
	w = rctx_with_fd(rctx_background(), p[0], POLLIN, 1);
	cr_assert_not_null(w);
	wait_armed(before);
	k0 = kept();
	cr_assert_eq(k0.in_flight, 1);
	cr_assert_eq(rctx_ref(w), w);
	child = rctx_with_cancel(w);
	cr_assert_not_null(child);
	rctx_unref(w);		/* the creator's: one user reference left */
	cr_assert_eq(rctx_err(w), 0, "still owned: still watching");
	cr_assert_eq(kept().in_flight, 1);
	rctx_unref(w);		/* the last one */
	cr_assert_eq(rctx_err(child), -ECANCELED, "ended as rctx_release() ends it");
	cr_assert(WAIT_UNTIL(kept().aborted > k0.aborted &&
			     kept().in_flight == 0, TH_PATIENCE_MS),
		  "the poll was not aborted");
	rctx_release(child);
	close(p[0]);
	close(p[1]);
}

/* Parent done at creation: done at once with its error and cause, no poll. */
Test(watch, parent_done_at_creation)
{
	uint64_t before = warm_up();
	rctx_t *parent = rctx_with_cancel(rctx_background());
	rctx_t *w;
	int p[2];

	cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
	cr_assert_not_null(parent);
	rctx_cancel_cause(parent, 99);
	w = rctx_with_fd(parent, p[0], POLLIN, 1);
	cr_assert_not_null(w);
	cr_assert_eq(rctx_err(w), -ECANCELED);
	cr_assert_eq(rctx_cause(w), 99);
	cr_assert(th_runtime_settle());
	cr_assert_eq(rt_stats().kept_submitted, before, "a poll was submitted");
	rctx_release(w);
	rctx_release(parent);
	close(p[0]);
	close(p[1]);
}

/* A watch under a deadline ends with the parent's -ETIMEDOUT. */
Test(watch, parent_deadline_ends_watch)
{
	int p[2];
	rctx_t *parent, *w;

	cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
	parent = rctx_with_timeout(rctx_background(), MS(20));
	cr_assert_not_null(parent);
	w = rctx_with_fd(parent, p[0], POLLIN, 1);
	cr_assert_not_null(w);
	cr_assert_eq(rctx_wait(w, rctx_now() + MS(TH_PATIENCE_MS)), 0);
	cr_assert_eq(rctx_err(w), -ETIMEDOUT);
	cr_assert(WAIT_UNTIL(kept().in_flight == 0, TH_PATIENCE_MS));
	rctx_release(w);
	rctx_release(parent);
	close(p[0]);
	close(p[1]);
}
