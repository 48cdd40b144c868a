/* SPDX-License-Identifier: MIT */
/*
 * ringctx-demo: the library doing its real work on this machine.
 *
 * A service handles one request under a context tree:
 *
 *   request (WithCancel)
 *   |-- fetch   (WithTimeout 150 ms)   its deadline fires
 *   |-- compute (WithCancel)           cancelled at 100 ms from another thread
 *   |                                  (the client went away)
 *   `-- respond (WithValue > WithCancel) keeps working and completes
 *
 * Each stage has real kernel work in flight: pipe reads, socket receives,
 * accepts, timeouts, file reads, and (where FUSE can be mounted) a read on a
 * file system that never answers, standing in for a hung disk. The demo
 * prints, per kind of request, how many the kernel aborted, how many
 * completed anyway, and the latency from each branch's end to its last
 * callback, then the ring's own accounting.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ringctx.h>
#include "stuckfs.h"

enum kind { K_PIPE, K_SOCK, K_ACCEPT, K_TIMEOUT, K_FILE, K_STUCK, K_MAX };
static const char *kind_name[K_MAX] = {
	"pipe read", "socket recv", "accept", "timeout", "file read", "stuck FUSE read",
};
enum stage { S_FETCH, S_COMPUTE, S_RESPOND, S_MAX };
static const char *stage_name[S_MAX] = { "fetch", "compute", "respond" };
static const int per_kind[K_MAX] = { 64, 64, 8, 16, 16, 1 };

struct job {
	enum kind kind;
	enum stage stage;
	int res;
	bool done;
	int64_t done_at;
	void *owned; /* buffer the kernel may still write: freed on completion */
	bool submitted;
};

static struct job jobs[S_MAX][K_MAX][64];
static int outstanding;

static void job_cb(void *arg, int res, uint32_t flags)
{
	struct job *j = arg;

	(void)flags;
	j->res = res;
	j->done = true;
	j->done_at = rctx_now();
	if (j->kind == K_ACCEPT && res >= 0)
		close(res); /* an accept that won the race: ours to close */
	free(j->owned);
	j->owned = NULL;
	outstanding--;
}

static int die(const char *what, int err)
{
	fprintf(stderr, "ringctx-demo: %s: %s\n", what, strerror(-err));
	exit(1);
}

static int listener(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) || listen(fd, 16))
		die("listen on 127.0.0.1", -errno);
	return fd;
}

struct fds {
	int pipes[S_MAX][64][2];
	int socks[S_MAX][64][2];
	int lfd[S_MAX][8];
	int file;
	int stuck;
};

static void submit_stage(rctx_ring_t *ring, rctx_t *ctx, enum stage s,
			 struct fds *f, bool have_stuck)
{
	static struct __kernel_timespec ts = { .tv_sec = 30 };
	static char sink[S_MAX][K_MAX][64][512];

	for (int k = 0; k < K_MAX; k++) {
		for (int i = 0; i < per_kind[k]; i++) {
			struct job *j = &jobs[s][k][i];
			struct io_uring_sqe sqe;
			char *buf = sink[s][k][i];
			int ret;

			if (k == K_STUCK && (!have_stuck || s == S_RESPOND))
				continue;
			j->kind = (enum kind)k;
			j->stage = s;
			j->submitted = true;
			switch (k) {
			case K_PIPE:
				io_uring_prep_read(&sqe, f->pipes[s][i][0], buf, 512, 0);
				break;
			case K_SOCK:
				io_uring_prep_recv(&sqe, f->socks[s][i][0], buf, 512, 0);
				break;
			case K_ACCEPT:
				io_uring_prep_accept(&sqe, f->lfd[s][i], NULL, NULL, 0);
				break;
			case K_TIMEOUT:
				io_uring_prep_timeout(&sqe, &ts, 0, 0);
				break;
			case K_FILE:
				io_uring_prep_read(&sqe, f->file, buf, 512, (uint64_t)i * 512);
				break;
			case K_STUCK:
				/* The kernel may write this buffer long after we
				 * stop caring: it belongs to the request. */
				j->owned = malloc(4096);
				io_uring_prep_read(&sqe, f->stuck, j->owned, 4096,
						   (uint64_t)s * 4096);
				sqe.flags |= IOSQE_ASYNC;
				break;
			}
			ret = rctx_submit(ring, ctx, &sqe, job_cb, j);
			if (ret < 0)
				die("rctx_submit", ret);
			outstanding++;
		}
	}
}

struct disconnect {
	rctx_t *ctx;
	int64_t at;
};

static void *client_goes_away(void *arg)
{
	struct disconnect *d = arg;

	usleep(100000);
	d->at = rctx_now();
	rctx_cancel_cause(d->ctx, -ECONNRESET);
	return NULL;
}

static void report(int64_t end_at[S_MAX])
{
	printf("\n%-9s %-16s %9s %9s %10s %9s %12s\n", "stage", "request kind",
	       "submitted", "aborted", "completed", "in kernel", "last cb (ms)");
	printf("%-9s %-16s %9s %9s %10s %9s %12s\n", "", "", "", "in kernel",
	       "anyway", "still", "after end");
	printf("(\"completed anyway\": the kernel finished it before the cancel "
	       "reached it; its result was delivered)\n");
	for (int s = 0; s < S_MAX; s++) {
		for (int k = 0; k < K_MAX; k++) {
			int n = 0, aborted = 0, anyway = 0, held = 0;
			int64_t last = 0;

			for (int i = 0; i < per_kind[k]; i++) {
				struct job *j = &jobs[s][k][i];

				if (!j->submitted)
					continue;
				n++;
				if (!j->done) {
					held++;
					continue;
				}
				if (j->res == -ECANCELED || j->res == -EINTR)
					aborted++;
				else
					anyway++;
				if (j->done_at > last && j->done_at >= end_at[s])
					last = j->done_at;
			}
			if (!n)
				continue;
			if (s == S_RESPOND || !last || held)
				printf("%-9s %-16s %9d %9d %10d %9d %12s\n", stage_name[s],
				       kind_name[k], n, aborted, anyway, held,
				       s == S_RESPOND ? (held ? "running" : "done") :
				       held ? "held" : "done before");
			else
				printf("%-9s %-16s %9d %9d %10d %9d %12.3f\n", stage_name[s],
				       kind_name[k], n, aborted, anyway, held,
				       (last - end_at[s]) / 1e6);
		}
	}
}

int main(void)
{
	static int key_request_id;
	struct rctx_ring_stats st;
	struct stuckfs fs;
	struct fds f;
	struct disconnect dis;
	struct rlimit rl;
	rctx_ring_t *ring;
	rctx_t *request, *fetch, *compute, *respond_v, *respond;
	int64_t t0, end_at[S_MAX] = { 0 }, dl;
	char path[] = "/tmp/ringctx-demo-XXXXXX", desc[256];
	bool have_stuck, answered = false;
	pthread_t th;
	int ret;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	ret = rctx_ring_create(&ring, 512);
	if (ret < 0)
		die("rctx_ring_create (is io_uring enabled?)", ret);

	/* Real fds to wait on. */
	for (int s = 0; s < S_MAX; s++) {
		for (int i = 0; i < 64; i++)
			if (pipe(f.pipes[s][i]) || socketpair(AF_UNIX, SOCK_STREAM, 0, f.socks[s][i]))
				die("pipe/socketpair", -errno);
		for (int i = 0; i < 8; i++)
			f.lfd[s][i] = listener();
	}
	f.file = mkstemp(path);
	if (f.file < 0)
		die("mkstemp", -errno);
	unlink(path);
	{
		static char blk[16 * 512];

		memset(blk, 'f', sizeof(blk));
		if (write(f.file, blk, sizeof(blk)) != (ssize_t)sizeof(blk))
			die("write", -errno);
	}
	have_stuck = stuckfs_start(&fs) == 0;
	if (have_stuck) {
		f.stuck = open(fs.stuck_path, O_RDONLY);
		have_stuck = f.stuck >= 0;
	}

	printf("ringctx-demo: one request, three stages, real kernel work in flight\n");
	if (!have_stuck)
		printf("  (no stuck-disk simulation: %s)\n", fs.why[0] ? fs.why : "open failed");

	request = rctx_with_value(rctx_background(), &key_request_id, (void *)"req-42");
	request = rctx_with_cancel(request);
	fetch = rctx_with_timeout(request, 150 * 1000000LL);
	compute = rctx_with_cancel(request);
	respond_v = rctx_with_value(request, &key_request_id, (void *)"req-42/respond");
	respond = rctx_with_cancel(respond_v);
	rctx_format(respond, desc, sizeof(desc));
	printf("  respond stage context: %s\n", desc);

	t0 = rctx_now();
	submit_stage(ring, fetch, S_FETCH, &f, have_stuck);
	submit_stage(ring, compute, S_COMPUTE, &f, have_stuck);
	submit_stage(ring, respond, S_RESPOND, &f, have_stuck);
	rctx_ring_flush(ring);
	printf("  %d requests in flight under 3 stages\n", outstanding);

	dis.ctx = compute;
	pthread_create(&th, NULL, client_goes_away, &dis);

	/* The respond stage gets its data at 120 ms. */
	while (rctx_now() - t0 < 400 * 1000000LL) {
		rctx_ring_run(ring, rctx_now() + 10000000);
		if (rctx_now() - t0 > 120 * 1000000LL && !answered) {
			answered = true;
			for (int i = 0; i < 64; i++) {
				if (write(f.pipes[S_RESPOND][i][1], "response", 8) < 0 ||
				    write(f.socks[S_RESPOND][i][1], "response", 8) < 0)
					die("write", -errno);
			}
		}
	}
	pthread_join(th, NULL);
	rctx_deadline(fetch, &dl);
	end_at[S_FETCH] = dl;
	end_at[S_COMPUTE] = dis.at;

	printf("  fetch:   %s at %.1f ms (deadline 150 ms)\n",
	       rctx_err(fetch) == -ETIMEDOUT ? "deadline exceeded" : "?",
	       (dl - t0) / 1e6);
	printf("  compute: cancelled by the client going away at %.1f ms, cause %s\n",
	       (dis.at - t0) / 1e6, strerror(-rctx_cause(compute)));
	printf("  respond: err %d, value %s\n", rctx_err(respond),
	       (char *)rctx_value(respond, &key_request_id));
	report(end_at);

	rctx_ring_stats(ring, &st);
	printf("\nring accounting: submitted %llu, completed %llu, cancels sent %llu "
	       "(found %llu, already running %llu, not found %llu),\n"
	       "  aborted %llu, completed despite cancel %llu, deadline link timeouts "
	       "%llu (fired %llu), still held by the kernel %llu\n",
	       (unsigned long long)st.submitted, (unsigned long long)st.completed,
	       (unsigned long long)st.cancels_issued, (unsigned long long)st.cancel_found,
	       (unsigned long long)st.cancel_ealready, (unsigned long long)st.cancel_enoent,
	       (unsigned long long)st.aborted, (unsigned long long)st.completed_anyway,
	       (unsigned long long)st.link_timeouts, (unsigned long long)st.link_timeouts_fired,
	       (unsigned long long)st.held_after_cancel);

	/* End the request: the respond stage's remaining work is cancelled. */
	rctx_release(respond);
	rctx_unref(respond_v);
	rctx_release(fetch);
	rctx_release(compute);
	rctx_release(request);
	if (have_stuck) {
		int64_t r0 = rctx_now();

		printf("\nthe stuck file system answers now (%d reads were waiting)...\n",
		       stuckfs_release(&fs));
		while (outstanding && rctx_now() - r0 < 5000000000LL)
			rctx_ring_run(ring, rctx_now() + 10000000);
		for (int s = 0; s < S_COMPUTE + 1; s++) {
			struct job *j = &jobs[s][K_STUCK][0];

			printf("  %s stuck read: %s %d, %.1f ms after its branch ended; "
			       "its buffer belonged to the request until then\n",
			       stage_name[s], j->done ? "completed with" : "still held,",
			       j->res, j->done ? (j->done_at - end_at[s]) / 1e6 : 0.0);
		}
		close(f.stuck);
		stuckfs_stop(&fs);
	}
	rctx_ring_destroy(ring);
	return 0;
}
