/* SPDX-License-Identifier: MIT */
/*
 * bench_isolation - the per-device isolation of file I/O (lanes, the
 * runtime thread, RWF_NOWAIT first), shown to cost nothing where it should
 * not:
 *
 *  HealthyRead/{async,blocking}/{p50,p99}: latency of cold 4 KiB reads of a
 *    file on the normal disk (/var/tmp), one at a time, each under its own
 *    1 s deadline context: through rctx_async_read on one ring and thread,
 *    and through the blocking rctx_read from a thread. Before each read its
 *    page is dropped from the page cache (fdatasync'd file,
 *    POSIX_FADV_RANDOM, POSIX_FADV_DONTNEED of that page, untimed), so the
 *    RWF_NOWAIT attempt misses and the read takes the slow path: statx,
 *    its device's lane, the runtime thread, io-wq, the disk, the post back.
 *    (How many of the reads were really cold is printed: the runtime's
 *    nowait_reads counts the hits.) Measured without a stuck episode
 *    (before it and after it, half the samples each: the reference), then
 *    while one is on: 4 x rctx_device_limit() reads of the stuck FUSE file
 *    (support/stuckfs.h) at different offsets, an openat2 of it and an
 *    fsync of a file of the same file system (held by stuckfs_hang), all
 *    on the same ring, all held (the kernel holds the bound, the others
 *    wait in the stuck device's lane). ratio = stuck / no stuck.
 *    Without FUSE these rows are skipped, with the reason.
 *
 *  RandRead4k/QD32/...: 4 KiB random reads of a 64 MiB file in the page
 *    cache, 32 in flight, one thread: ringctx (rctx_async_read, a new
 *    context per read, released in its callback, which issues the next),
 *    with cancel contexts and with 1 s deadline contexts; raw liburing (no
 *    library, no contexts); and Debian's fio --ioengine=io_uring on the
 *    same file, run from here. The runs are interleaved (ringctx, ringctx
 *    deadline, liburing, fio, ringctx, ...) and the median IOPS of each is
 *    kept. Rows in ns per read (1e9 / IOPS), so that ratio = fio's IOPS /
 *    ringctx's IOPS (lower is better, as every ratio of the table).
 */
#include "bench.h"

#include <fcntl.h>
#include <liburing.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "ringctx.h"
#include "stuckfs.h"

#define KIB 1024L
#define MIB (1024L * 1024L)
#define PAGE 4096
#define SEC 1000000000LL

static char workdir[128];

/* A file of size bytes of pseudo-random data, on disk (fdatasync'd, so
 * that POSIX_FADV_DONTNEED can drop its clean pages). */
static void make_file(const char *path, long size)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		bench_die(path, errno);
	uint64_t *buf = malloc(MIB), s = 0x9e3779b97f4a7c15ULL;
	for (long off = 0; off < size; off += MIB) {
		for (size_t i = 0; i < MIB / sizeof *buf; i++)
			buf[i] = bench_xorshift(&s);
		if (pwrite(fd, buf, MIB, off) != MIB)
			bench_die("pwrite", errno);
	}
	if (fdatasync(fd) < 0)
		bench_die("fdatasync", errno);
	free(buf);
	close(fd);
}

static rctx_ring_t *new_ring(void)
{
	rctx_ring_t *ring;
	int ret = rctx_ring_create(&ring, 256);
	if (ret < 0)
		bench_die("rctx_ring_create", ret);
	return ring;
}

static struct rctx_runtime_stats rt(void)
{
	struct rctx_runtime_stats st;
	rctx_runtime_stats(&st);
	return st;
}

/* Requests the runtime thread's ring has in the kernel. */
static unsigned long long kept_in_flight(void)
{
	struct rctx_ring_stats st = { 0 };

	rctx_runtime_ring_stats(&st);
	return (unsigned long long)st.in_flight;
}

/* ---- healthy-device latency ------------------------------------------------ */

struct one {
	rctx_t *ctx;
	int done, res;
};

static void one_cb(void *arg, int res, void *data, unsigned flags)
{
	(void)flags;
	struct one *o = arg;
	(void)data;
	rctx_release(o->ctx);
	o->res = res;
	o->done = 1;
}

static void drop_page(int fd, int64_t off)
{
	int e = posix_fadvise(fd, off, PAGE, POSIX_FADV_DONTNEED);
	if (e)
		bench_die("posix_fadvise", e);
}

/* Healthy reads that failed (a deadline of 1 s passed: the disk was that
 * slow, or the isolation failed); their latency is kept. */
static _Atomic int healthy_errors;

static void count_error(const char *what, int res)
{
	if (atomic_fetch_add(&healthy_errors, 1) < 5)
		fprintf(stderr, "bench_isolation: %s: %s\n", what, strerror(res < 0 ? -res : EIO));
}

/* The state of the runtime, when a read is not answered by its deadline. */
static void diag(const char *what, rctx_ring_t *ring, rctx_t *ctx)
{
	struct rctx_runtime_stats s = rt();
	struct rctx_ring_stats rs = { 0 };
	struct rctx_info in = { 0 };
	if (ring)
		rctx_ring_stats(ring, &rs);
	rctx_info(ctx, &in);
	fprintf(stderr,
		"bench_isolation: %s not answered 3 s after its 1 s deadline: ctx err %d done %s, "
		"sub %llu comp %llu ab %llu; runtime: timers live %llu fired %llu armed %llu, "
		"wakeups %llu, kept submitted %llu in flight %llu held %llu, devices %llu, "
		"lane waiting %llu waited %llu, nowait %llu; ring: in flight %llu pending %u\n",
		what, in.err, in.done_ns ? "yes" : "no", (unsigned long long)in.submitted,
		(unsigned long long)in.completed, (unsigned long long)in.abandoned,
		(unsigned long long)s.timers_live, (unsigned long long)s.timers_fired,
		(unsigned long long)s.timers_armed, (unsigned long long)s.wakeups,
		(unsigned long long)s.kept_submitted, (unsigned long long)kept_in_flight(),
		(unsigned long long)s.kept_held, (unsigned long long)s.devices,
		(unsigned long long)s.lane_waiting, (unsigned long long)s.lane_waited,
		(unsigned long long)s.nowait_reads, (unsigned long long)rs.in_flight,
		ring ? rctx_ring_pending(ring) : 0);
}

static double cold_async(rctx_ring_t *ring, int fd, int64_t off)
{
	struct one o = { 0 };
	drop_page(fd, off);
	int64_t t0 = rctx_now();
	o.ctx = rctx_with_timeout(rctx_background(), SEC);
	if (!o.ctx)
		bench_die("rctx_with_timeout", ENOMEM);
	int ret = rctx_async_read(ring, o.ctx, fd, PAGE, off, one_cb, &o);
	if (ret < 0)
		bench_die("rctx_async_read", ret);
	/* the callback runs by the deadline; a watchdog, so that the suite
	 * never waits on a hang */
	for (int64_t limit = t0 + 4 * SEC; !o.done && rctx_now() < limit;)
		rctx_ring_run(ring, limit);
	if (!o.done) {
		diag("healthy rctx_async_read", ring, o.ctx);
		exit(2);
	}
	int64_t t1 = rctx_now();
	if (o.res != PAGE)
		count_error("healthy rctx_async_read", o.res);
	return (double)(t1 - t0);
}

struct blk {
	_Atomic int at; /* samples done, for the watchdog */
	int fd, n;
	uint64_t rng;
	long pages;
	double *v;
};

static void *cold_blocking_main(void *arg)
{
	struct blk *b = arg;
	char *buf = malloc(PAGE);
	for (int i = 0; i < b->n; i++) {
		int64_t off = (int64_t)(bench_xorshift(&b->rng) % b->pages) * PAGE;
		drop_page(b->fd, off);
		int64_t t0 = rctx_now();
		rctx_t *ctx = rctx_with_timeout(rctx_background(), SEC);
		ssize_t r = rctx_read(ctx, b->fd, buf, PAGE, off);
		rctx_release(ctx);
		b->v[i] = (double)(rctx_now() - t0);
		atomic_store(&b->at, i + 1);
		if (r != PAGE)
			count_error("healthy rctx_read", (int)r);
	}
	free(buf);
	return NULL;
}

struct lat {
	double *v[2]; /* async, blocking */
	int n[2];
};

/* n reads of each kind, appended to l. */
static void measure_cold(struct lat *l, rctx_ring_t *ring, int fd, long pages, uint64_t *rng,
			 int n)
{
	for (int i = 0; i < n; i++) {
		int64_t off = (int64_t)(bench_xorshift(rng) % pages) * PAGE;
		l->v[0][l->n[0]++] = cold_async(ring, fd, off);
	}
	struct blk b = { 0, fd, n, bench_xorshift(rng) | 1, pages, l->v[1] + l->n[1] };
	pthread_t th;
	int e = pthread_create(&th, NULL, cold_blocking_main, &b);
	if (e)
		bench_die("pthread_create", e);
	/* watchdog: every read ends by its 1 s deadline */
	for (int last = -1, at; (at = atomic_load(&b.at)) < n; usleep(1000)) {
		static int64_t since;
		if (at != last) {
			last = at;
			since = rctx_now();
		} else if (rctx_now() - since > 4 * SEC) {
			diag("healthy rctx_read", NULL, rctx_background());
			exit(2);
		}
	}
	pthread_join(th, NULL);
	l->n[1] += n;
}

/* A stuck episode: requests of the stuck device on ring, all held (the
 * kernel holds the device's bound, the others wait in its lane). */
struct episode {
	struct stuckfs *fs;
	rctx_ring_t *ring;
	int sfd, dfd, wfd, n; /* n: requests */
	struct one *o;
};

static void stuck_cb(void *arg, int res, void *data, unsigned flags)
{
	(void)flags;
	struct one *o = arg;
	(void)data;
	o->res = res;
	o->done = 1;
}

/* Episode e (0..7): 4 x limit reads of stuck at pages not read before (no
 * readahead: POSIX_FADV_RANDOM), then an openat2 of it (relative to the
 * mount point, so that it is the stuck device's) and an fsync of a file of
 * it, held by stuckfs_hang. */
static void episode_start(struct episode *ep, int e)
{
	unsigned limit = (unsigned)rctx_device_limit(0);
	int nreads = 4 * (int)limit, ret;
	ep->n = nreads + 2;
	ep->o = calloc(ep->n, sizeof *ep->o);
	for (int i = 0; i < ep->n; i++) {
		ep->o[i].ctx = rctx_with_cancel(rctx_background());
		if (!ep->o[i].ctx)
			bench_die("rctx_with_cancel", ENOMEM);
	}
	long pages = STUCKFS_SIZE / PAGE;
	for (int i = 0; i < nreads; i++) {
		int64_t off = (int64_t)((i * 8 + e) % pages) * PAGE;
		ret = rctx_async_read(ep->ring, ep->o[i].ctx, ep->sfd, PAGE, off, stuck_cb, &ep->o[i]);
		if (ret < 0)
			bench_die("stuck rctx_async_read", ret);
	}
	/* the reads first, so that they hold the bound */
	for (int64_t end = rctx_now() + 5 * SEC; kept_in_flight() < limit && rctx_now() < end;)
		rctx_ring_run(ep->ring, rctx_now() + 2000000);
	struct open_how how = { .flags = O_RDONLY | O_CLOEXEC };
	ret = rctx_async_openat2(ep->ring, ep->o[nreads].ctx, ep->dfd, "stuck", &how, stuck_cb,
				 &ep->o[nreads]);
	if (ret < 0)
		bench_die("stuck rctx_async_openat2", ret);
	if ((ret = stuckfs_hang(ep->fs, STUCKFS_HANG_FSYNC)) < 0)
		bench_die("stuckfs_hang", ret);
	ret = rctx_async_fsync(ep->ring, ep->o[nreads + 1].ctx, ep->wfd, 0, stuck_cb,
			       &ep->o[nreads + 1]);
	if (ret < 0)
		bench_die("stuck rctx_async_fsync", ret);
	for (int64_t end = rctx_now() + 5 * SEC;
	     rt().lane_waiting < (uint64_t)(ep->n - (int)limit) && rctx_now() < end;)
		rctx_ring_run(ep->ring, rctx_now() + 2000000);
	struct rctx_runtime_stats s = rt();
	if (e == 0) {
		printf("(stuck episode: %d requests of the stuck device on the ring: %d reads reached "
		       "the file system, the kernel holds %llu, %llu wait in the lane)\n",
		       ep->n, stuckfs_reads_seen(ep->fs), (unsigned long long)kept_in_flight(),
		       (unsigned long long)s.lane_waiting);
		fflush(stdout);
	}
}

/* Give everything up (abandoned: the kernel still holds the bound), then
 * answer the held requests until the kernel holds none. Returns how many
 * requests had ended before (0 when the episode held throughout). */
static int episode_end(struct episode *ep)
{
	int early = 0;
	for (int i = 0; i < ep->n; i++) {
		early += ep->o[i].done;
		rctx_cancel(ep->o[i].ctx);
	}
	for (int64_t end = rctx_now() + 5 * SEC; rctx_ring_pending(ep->ring) && rctx_now() < end;)
		rctx_ring_run(ep->ring, rctx_now() + 2000000);
	stuckfs_hang(ep->fs, 0);
	for (int64_t end = rctx_now() + 10 * SEC;
	     (rt().kept_held || kept_in_flight() || rt().lane_waiting) && rctx_now() < end;) {
		stuckfs_release(ep->fs);
		usleep(1000);
	}
	struct rctx_runtime_stats s = rt();
	if (s.kept_held || kept_in_flight())
		fprintf(stderr, "bench_isolation: the kernel still holds %llu requests\n",
			(unsigned long long)kept_in_flight());
	for (int i = 0; i < ep->n; i++)
		rctx_release(ep->o[i].ctx);
	int nreads = ep->n - 2;
	if (ep->o[nreads].done && ep->o[nreads].res >= 0)
		close(ep->o[nreads].res);
	free(ep->o);
	return early;
}

static void print_lat(const char *kind, struct lat *ref, struct lat *st, int k)
{
	char n[96], a[32], b[32], c[32], d[32];
	double r50 = bench_quantile(ref->v[k], ref->n[k], 0.50);
	double r99 = bench_quantile(ref->v[k], ref->n[k], 0.99);
	double s50 = bench_quantile(st->v[k], st->n[k], 0.50);
	double s99 = bench_quantile(st->v[k], st->n[k], 0.99);
	printf("HealthyRead/%-9s no stuck: p50 %9s p99 %9s | stuck: p50 %9s p99 %9s | p99 ratio %.2fx\n",
	       kind, bench_fmt_ns(r50, a, sizeof a), bench_fmt_ns(r99, b, sizeof b),
	       bench_fmt_ns(s50, c, sizeof c), bench_fmt_ns(s99, d, sizeof d), s99 / r99);
	snprintf(n, sizeof n, "HealthyRead/%s/p50", kind);
	bench_row("isolation", n, "ns", s50, "no stuck episode", r50, NAN, NAN, NAN, NAN);
	snprintf(n, sizeof n, "HealthyRead/%s/p99", kind);
	bench_row("isolation", n, "ns", s99, "no stuck episode", r99, NAN, NAN, NAN, NAN);
}

static void healthy_latency(void)
{
	struct stuckfs fs;
	int ret = stuckfs_start(&fs);
	if (ret < 0) {
		printf("HealthyRead: skipped, the stuck episode needs FUSE: %s\n", fs.why);
		return;
	}
	char path[192];
	long size = 64 * MIB, pages = size / PAGE;
	snprintf(path, sizeof path, "%s/cold", workdir);
	make_file(path, size);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		bench_die(path, errno);
	posix_fadvise(fd, 0, 0, POSIX_FADV_RANDOM);
	posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);

	int blocks = bench_reps > 8 ? 8 : bench_reps; /* 8 episodes: fresh pages of stuck */
	int per = BENCH_Q(1000, 3000) / blocks, n = per * blocks;
	struct lat ref = { { malloc(sizeof(double) * n), malloc(sizeof(double) * n) }, { 0, 0 } };
	struct lat st = { { malloc(sizeof(double) * n), malloc(sizeof(double) * n) }, { 0, 0 } };
	rctx_ring_t *ring = new_ring();
	uint64_t rng = 0x2545f4914f6cdd1dULL;
	printf("(cold 4 KiB reads of a 64 MiB file in %s, 1 s deadline each; %d per kind without "
	       "and %d with a stuck episode, in %d blocks of each, interleaved; device limit %d)\n",
	       workdir, n, n, blocks, rctx_device_limit(0));
	fflush(stdout);

	struct episode ep = { &fs, ring, -1, -1, -1, 0, NULL };
	char wpath[160];
	snprintf(wpath, sizeof wpath, "%s/w", fs.dir);
	ep.sfd = open(fs.stuck_path, O_RDONLY | O_CLOEXEC);
	ep.dfd = open(fs.dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ep.wfd = open(wpath, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (ep.sfd < 0 || ep.dfd < 0 || ep.wfd < 0)
		bench_die("stuckfs open", errno);
	posix_fadvise(ep.sfd, 0, 0, POSIX_FADV_RANDOM);
	if (pwrite(ep.wfd, "dirty", 5, 0) != 5)
		bench_die("stuckfs write", errno);

	/* warm-up: the runtime thread, the lanes, io-wq workers */
	uint64_t hits0 = rt().nowait_reads;
	for (int i = 0; i < 20; i++)
		cold_async(ring, fd, (int64_t)(bench_xorshift(&rng) % pages) * PAGE);
	int early = 0;
	for (int b = 0; b < blocks; b++) {
		measure_cold(&ref, ring, fd, pages, &rng, per);
		episode_start(&ep, b);
		measure_cold(&st, ring, fd, pages, &rng, per);
		early += episode_end(&ep);
	}
	uint64_t hits = rt().nowait_reads - hits0;
	printf("(page-cache hits among the %d async reads: %llu; stuck requests that ended before "
	       "their episode did: %d of %d; healthy reads that failed: %d)\n", 20 + 2 * n,
	       (unsigned long long)hits, early, blocks * ep.n, atomic_load(&healthy_errors));

	print_lat("async", &ref, &st, 0);
	print_lat("blocking", &ref, &st, 1);
	fflush(stdout);
	rctx_ring_destroy(ring);
	close(ep.sfd);
	close(ep.dfd);
	close(ep.wfd);
	close(fd);
	unlink(path);
	for (int k = 0; k < 2; k++) {
		free(ref.v[k]);
		free(st.v[k]);
	}
	stuckfs_stop(&fs);
}

/* ---- 4 KiB random reads of a cached file at QD 32 ------------------------------ */

#define QD 32

struct iops {
	rctx_ring_t *ring;
	int fd, deadline, stop, err;
	long pages, done;
	uint64_t rng;
};

struct slot {
	struct iops *s;
	rctx_t *ctx;
};

static void rd_issue(struct slot *sl);
static long rd_total; /* ringctx reads completed, warm-up and drains included */

static void rd_cb(void *arg, int res, void *data, unsigned flags)
{
	(void)flags;
	struct slot *sl = arg;
	struct iops *s = sl->s;
	(void)data;
	rctx_release(sl->ctx);
	if (res != PAGE)
		s->err = res < 0 ? res : -EIO;
	s->done++;
	rd_total++;
	if (!s->stop)
		rd_issue(sl);
}

static void rd_issue(struct slot *sl)
{
	struct iops *s = sl->s;
	sl->ctx = s->deadline ? rctx_with_timeout(rctx_background(), SEC)
			      : rctx_with_cancel(rctx_background());
	if (!sl->ctx)
		bench_die("context", ENOMEM);
	int64_t off = (int64_t)(bench_xorshift(&s->rng) % s->pages) * PAGE;
	int ret = rctx_async_read(s->ring, sl->ctx, s->fd, PAGE, off, rd_cb, sl);
	if (ret < 0)
		bench_die("rctx_async_read", ret);
}

/* IOPS of ringctx for dur ns. */
static double iops_rctx(int fd, long pages, int deadline, int64_t dur)
{
	struct iops s = { new_ring(), fd, deadline, 0, 0, pages, 0, 0x853c49e6748fea9bULL };
	struct slot sl[QD];
	int64_t t0 = rctx_now(), end = t0 + dur, t1;
	for (int i = 0; i < QD; i++) {
		sl[i] = (struct slot){ &s, NULL };
		rd_issue(&sl[i]);
	}
	while ((t1 = rctx_now()) < end)
		rctx_ring_run(s.ring, RCTX_FOREVER);
	long done = s.done;
	s.stop = 1;
	while (rctx_ring_pending(s.ring))
		rctx_ring_run(s.ring, RCTX_FOREVER);
	rctx_ring_destroy(s.ring);
	if (s.err)
		bench_die("ringctx random read", s.err);
	return (double)done * 1e9 / (double)(t1 - t0);
}

/* IOPS of raw liburing (own buffers, no contexts) for dur ns. */
static double iops_raw(int fd, long pages, int64_t dur)
{
	struct io_uring ring;
	int ret = io_uring_queue_init(64, &ring, 0);
	if (ret < 0)
		bench_die("io_uring_queue_init", ret);
	char *bufs = aligned_alloc(PAGE, (size_t)QD * PAGE);
	uint64_t rng = 0x853c49e6748fea9bULL;
	long done = 0, inflight = 0;
	for (int i = 0; i < QD; i++) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
		io_uring_prep_read(sqe, fd, bufs + (size_t)i * PAGE, PAGE,
				   (bench_xorshift(&rng) % pages) * PAGE);
		io_uring_sqe_set_data64(sqe, i);
		inflight++;
	}
	int64_t t0 = bench_now(), end = t0 + dur, t1;
	int stop = 0;
	for (;;) {
		ret = io_uring_submit_and_wait(&ring, 1);
		if (ret < 0 && ret != -EINTR)
			bench_die("io_uring_submit_and_wait", ret);
		t1 = bench_now();
		if (t1 >= end)
			stop = 1;
		struct io_uring_cqe *cqe;
		unsigned head, n = 0;
		io_uring_for_each_cqe(&ring, head, cqe) {
			n++;
			if (cqe->res != PAGE)
				bench_die("raw random read", cqe->res < 0 ? cqe->res : EIO);
			if (!stop) {
				done++;
				uint64_t i = cqe->user_data;
				struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
				io_uring_prep_read(sqe, fd, bufs + i * PAGE, PAGE,
						   (bench_xorshift(&rng) % pages) * PAGE);
				io_uring_sqe_set_data64(sqe, i);
			} else {
				inflight--;
			}
		}
		io_uring_cq_advance(&ring, n);
		if (stop && inflight == 0)
			break;
	}
	io_uring_queue_exit(&ring);
	free(bufs);
	return (double)done * 1e9 / (double)(t1 - t0);
}

/* IOPS of fio --ioengine=io_uring on path for dur_ms; 0 with why set when
 * it cannot be had. */
static double iops_fio(const char *path, long size, int dur_ms, char *why, size_t whylen)
{
	char cmd[768];
	snprintf(cmd, sizeof cmd,
		 "fio --name=r --filename=%s --size=%ld --rw=randread --bs=4k --iodepth=32 "
		 "--ioengine=io_uring --direct=0 --invalidate=0 --numjobs=1 --time_based "
		 "--runtime=%dms --output-format=json 2>&1", path, size, dur_ms);
	FILE *p = popen(cmd, "r");
	if (!p) {
		snprintf(why, whylen, "popen: %s", strerror(errno));
		return 0;
	}
	static char out[1 << 16];
	size_t n = fread(out, 1, sizeof out - 1, p);
	out[n] = 0;
	int st = pclose(p);
	char *r = strstr(out, "\"read\" : {");
	char *io = r ? strstr(r, "\"iops\" : ") : NULL;
	if (st != 0 || !io) {
		if (WIFEXITED(st) && WEXITSTATUS(st) == 127)
			snprintf(why, whylen, "fio not installed (apt-get install fio)");
		else
			snprintf(why, whylen, "fio failed (status %d): %.80s", st, out);
		return 0;
	}
	return strtod(io + strlen("\"iops\" : "), NULL);
}

static void cached_iops(void)
{
	char path[192], why[256] = "";
	long size = 64 * MIB, pages = size / PAGE;
	snprintf(path, sizeof path, "%s/hot", workdir);
	make_file(path, size);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		bench_die(path, errno);
	/* into the page cache */
	char *buf = malloc(MIB);
	for (long off = 0; off < size; off += MIB)
		if (pread(fd, buf, MIB, off) != MIB)
			bench_die("pread", errno);
	free(buf);

	int reps = bench_reps > 16 ? 16 : bench_reps;
	int dur_ms = BENCH_Q(250, 600);
	double v[4][16];
	int have_fio = 1;
	uint64_t hits0 = rt().nowait_reads;
	iops_rctx(fd, pages, 0, 50000000); /* warm-up */
	for (int r = 0; r < reps; r++) {
		v[0][r] = iops_rctx(fd, pages, 0, dur_ms * 1000000LL);
		v[1][r] = iops_rctx(fd, pages, 1, dur_ms * 1000000LL);
		v[2][r] = iops_raw(fd, pages, dur_ms * 1000000LL);
		if (have_fio) {
			v[3][r] = iops_fio(path, size, dur_ms, why, sizeof why);
			have_fio = v[3][r] > 0;
		}
	}
	uint64_t hits = rt().nowait_reads - hits0;
	double m[4];
	for (int k = 0; k < 3; k++)
		m[k] = bench_median(v[k], reps);
	m[3] = have_fio ? bench_median(v[3], reps) : NAN;
	printf("(64 MiB cached file in %s, QD %d, one thread, %d runs of %d ms each, interleaved; "
	       "median IOPS; %llu of ringctx's %ld reads completed by RWF_NOWAIT)\n",
	       workdir, QD, reps, dur_ms, (unsigned long long)hits, rd_total);
	printf("RandRead4k/QD32 ringctx, cancel ctx per read   %10.0f IOPS\n", m[0]);
	printf("RandRead4k/QD32 ringctx, deadline ctx per read %10.0f IOPS\n", m[1]);
	printf("RandRead4k/QD32 raw liburing, no contexts      %10.0f IOPS\n", m[2]);
	if (have_fio)
		printf("RandRead4k/QD32 fio --ioengine=io_uring        %10.0f IOPS\n", m[3]);
	else
		printf("RandRead4k/QD32 fio: no figure: %s\n", why);
	if (have_fio)
		printf("ringctx / fio IOPS: cancel ctx %.3fx, deadline ctx %.3fx; liburing / fio %.3fx\n",
		       m[0] / m[3], m[1] / m[3], m[2] / m[3]);
	printf("ringctx / raw liburing IOPS: cancel ctx %.3fx, deadline ctx %.3fx\n", m[0] / m[2],
	       m[1] / m[2]);
	bench_row("isolation", "RandRead4k/QD32/cancel-ctx", "ns", 1e9 / m[0], "fio io_uring",
		  1e9 / m[3], NAN, NAN, NAN, NAN);
	bench_row("isolation", "RandRead4k/QD32/deadline-ctx", "ns", 1e9 / m[1], "fio io_uring",
		  1e9 / m[3], NAN, NAN, NAN, NAN);
	bench_row("isolation", "RandRead4k/QD32/cancel-ctx-vs-liburing", "ns", 1e9 / m[0],
		  "raw liburing", 1e9 / m[2], NAN, NAN, NAN, NAN);
	fflush(stdout);
	close(fd);
	unlink(path);
}

int main(void)
{
	bench_init("isolation: healthy-device latency during a stuck episode, cached random reads");
	snprintf(workdir, sizeof workdir, "/var/tmp/rctx-bench-iso-%d", (int)getpid());
	if (mkdir(workdir, 0700) < 0)
		bench_die(workdir, errno);
	healthy_latency();
	cached_iops();
	rmdir(workdir);
	bench_finish();
	return 0;
}
