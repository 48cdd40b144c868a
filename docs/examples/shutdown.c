/* SPDX-License-Identifier: MIT */
/*
 * Graceful shutdown: a signal stops accepting, in-flight requests get a
 * drain deadline, then whatever is left is cancelled.
 *
 * Go: ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM);
 * <-ctx.Done(); srv.Shutdown(drainCtx). ringctx: rctx_with_signals() ends
 * the accept loop on SIGTERM (the signal is delivered into the library,
 * whichever thread gets it); requests run under their own tree, so they may
 * finish during the drain; when the drain deadline passes, one rctx_cancel()
 * aborts the rest, kernel I/O included.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <ringctx.h>

#define MS 1000000LL

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv;
static int inflight, reading, finished, aborted;
static rctx_t *work;          /* every request's parent */
static int never[2];          /* a backend that never answers */
static struct sockaddr_in addr;

struct conn {
	int fd;
	pthread_t thread;
};

static void count(int *what, int delta)
{
	pthread_mutex_lock(&mu);
	*what += delta;
	pthread_cond_broadcast(&cv);
	pthread_mutex_unlock(&mu);
}

/* A request: "quick" finishes when the client says so; "stuck" waits for
 * a backend that never answers. */
static void *handle(void *arg)
{
	struct conn *c = arg;
	rctx_t *req = rctx_with_cancel(work);
	char buf[16] = "";
	ssize_t n;

	count(&inflight, 1);
	n = rctx_recv(req, c->fd, buf, sizeof(buf) - 1, 0);
	count(&reading, 1); /* the request is in: now the rest of it */
	if (n > 0 && !strncmp(buf, "stuck", 5))
		n = rctx_read(req, never[0], buf, 1, -1);
	else if (n > 0)
		n = rctx_recv(req, c->fd, buf, 1, 0); /* the client's go-ahead */
	if (n > 0) {
		(void)!rctx_send(req, c->fd, "done\n", 5, MSG_NOSIGNAL);
		count(&finished, 1);
	} else {
		count(&aborted, 1);
	}
	rctx_release(req);
	count(&inflight, -1);
	return NULL;
}

static void *client(void *unused)
{
	int quick = socket(AF_INET, SOCK_STREAM, 0);
	int stuck = socket(AF_INET, SOCK_STREAM, 0);
	char buf[8];

	(void)unused;
	if (connect(quick, (void *)&addr, sizeof(addr)) ||
	    connect(stuck, (void *)&addr, sizeof(addr)) ||
	    write(quick, "quick", 5) != 5 || write(stuck, "stuck", 5) != 5)
		return NULL;
	pthread_mutex_lock(&mu);
	while (reading < 2)
		pthread_cond_wait(&cv, &mu);
	pthread_mutex_unlock(&mu);
	kill(getpid(), SIGTERM);          /* the operator stops the service */
	(void)!write(quick, "!", 1);     /* ... while this one is finishing */
	printf("quick client got: %.*s", (int)read(quick, buf, sizeof(buf)), buf);
	close(quick);
	close(stuck);
	return NULL;
}

/* Wait until nothing is in flight or the drain deadline passes. */
static void drain(int64_t rel_ns)
{
	struct timespec until;

	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += rel_ns / 1000000000;
	until.tv_nsec += rel_ns % 1000000000;
	if (until.tv_nsec >= 1000000000) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&mu);
	while (inflight > 0 &&
	       pthread_cond_timedwait(&cv, &mu, &until) != ETIMEDOUT)
		;
	pthread_mutex_unlock(&mu);
}

int main(void)
{
	static const int sigs[] = { SIGTERM, SIGINT };
	rctx_t *server = rctx_with_signals(rctx_background(), sigs, 2);
	struct conn conns[2];
	pthread_condattr_t ca;
	socklen_t len = sizeof(addr);
	pthread_t cl;
	int lfd, n = 0, fd, cause, ok;

	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&cv, &ca);
	work = rctx_with_cancel(rctx_background());
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	addr.sin_family = AF_INET;
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (!server || !work || pipe(never) || bind(lfd, (void *)&addr, sizeof(addr)) ||
	    listen(lfd, 8) || getsockname(lfd, (void *)&addr, &len))
		return perror("setup"), 1;
	pthread_create(&cl, NULL, client, NULL);

	/* Accept until the signal ends the server context. */
	while ((fd = rctx_accept(server, lfd, NULL, NULL, 0)) >= 0 && n < 2) {
		conns[n].fd = fd;
		pthread_create(&conns[n].thread, NULL, handle, &conns[n]);
		n++;
	}
	cause = rctx_cause(server);
	printf("stopped accepting: signal %d; draining %d requests\n",
	       rctx_cause_signal(cause), inflight);
	close(lfd);

	drain(5000 * MS);
	printf("drain over: %d finished, %d still in flight: cancelling them\n",
	       finished, inflight);
	rctx_cancel(work);
	for (int i = 0; i < n; i++) {
		pthread_join(conns[i].thread, NULL);
		close(conns[i].fd);
	}
	pthread_join(cl, NULL);
	printf("exit: %d finished, %d aborted\n", finished, aborted);
	ok = rctx_cause_signal(cause) == SIGTERM && finished == 1 && aborted == 1;
	rctx_release(work);
	rctx_release(server);
	return ok ? 0 : 1;
}
