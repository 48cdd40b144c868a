/* SPDX-License-Identifier: MIT */
/*
 * Description: stuck disk I/O. A FUSE file system (support/stuckfs.c), served
 * by a child process, whose reads never answer stands in for a hung disk.
 * A blocking read on it under a deadline returns -ETIMEDOUT, not before the
 * deadline; the submitting thread never blocks in the kernel (a second read
 * of the same page, which would wait for the page lock, returns too, and so
 * does an rctx_openat, which the page lock would block at open); the
 * caller's buffer is never written after the call returns even when the
 * kernel later completes the read with data; and the ring's accounting says
 * what happened. A plain open(2) behind the stuck read does block, in D
 * state. A process killed with SIGKILL while its threads are stuck on the
 * file system is reaped and leaves no mount behind. Skips with the reason
 * when FUSE cannot be mounted here.
 *
 * Timing: only orderings and outcomes are asserted; the upper bounds are
 * generous (seconds), for valgrind and loaded hosts.
 */
#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>

#include "ring_util.h"
#include "helpers.h"
#include "stuckfs.h"

TestSuite(stuck_io, .timeout = 120);

/*
 * Long enough for a read to reach the file system before it expires, even
 * under valgrind; a read cut off before then would prove nothing.
 */
#define DEADLINE MS(1000)
#define LATE_BOUND MS(10000)	/* "returned on time", generously */
#define WAIT_MS 20000		/* bound for anything we wait for */

static struct stuckfs fs;

/* Start the thread's ring and the runtime first: slow under valgrind. */
static void warm_up(void)
{
	cr_assert_not_null(rctx_thread_ring());
	th_runtime_settle();
}

static void mount_or_skip(void)
{
	if (stuckfs_start(&fs) < 0)
		cr_skip_test("stuck-disk tests need FUSE: %s", fs.why);
	warm_up();
}

/* The runtime's accounting of the file I/O it keeps for blocking calls. */
static struct rctx_ring_stats kept_stats(void)
{
	struct rctx_ring_stats st;

	cr_assert_eq(rctx_runtime_ring_stats(&st), 0);
	return st;
}

/*
 * Wait until the kernel has let go of every kept request, answering reads
 * as they come: a read whose pages an open invalidated reads them again.
 */
static void wait_kernel_release(int limit_ms)
{
	int64_t limit = rctx_now() + (int64_t)limit_ms * 1000000;

	while (kept_stats().in_flight && rctx_now() < limit) {
		rctx_sleep(rctx_background(), 2000000);
		stuckfs_release(&fs);
	}
}

/* Wait until the stuck file system has seen at least n reads. */
static bool wait_reads_seen(int n)
{
	int64_t limit = rctx_now() + MS(WAIT_MS);

	while (stuckfs_reads_seen(&fs) < n && rctx_now() < limit)
		usleep(5000);
	return stuckfs_reads_seen(&fs) >= n;
}

/* The state letter of a /proc stat file (R, S, D, Z...), 0 if it is gone. */
static char proc_state(const char *path)
{
	char buf[512], *p;
	FILE *f = fopen(path, "re");
	size_t n;

	if (!f)
		return 0;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	p = strrchr(buf, ')');
	return p && p[1] == ' ' ? p[2] : 0;
}

/* Is thread tid of process pid in uninterruptible sleep (D state)? */
static bool thread_in_d(pid_t pid, pid_t tid)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", (int)pid, (int)tid);
	return proc_state(path) == 'D';
}

/* Wait until thread tid of pid is in D state; false after WAIT_MS. */
static bool wait_in_d(pid_t pid, pid_t tid)
{
	for (int waited = 0; waited < WAIT_MS; waited += 5) {
		if (thread_in_d(pid, tid))
			return true;
		usleep(5000);
	}
	return false;
}

/* Is dir a mount point in this mount namespace? */
static bool mounted(const char *dir)
{
	char line[1024], mnt[512];
	bool found = false;
	FILE *f = fopen("/proc/self/mountinfo", "re");

	cr_assert_not_null(f);
	while (!found && fgets(line, sizeof(line), f))
		found = sscanf(line, "%*s %*s %*s %*s %511s", mnt) == 1 && !strcmp(mnt, dir);
	fclose(f);
	return found;
}

/* Make the first page of "stuck" locked behind a read that never answers. */
static int stick_first_page(void)
{
	static char buf[4096];
	rctx_t *ctx = rctx_with_timeout(rctx_background(), DEADLINE);
	int fd = open(fs.stuck_path, O_RDONLY);
	ssize_t n;

	cr_assert_geq(fd, 0, "open: %s", strerror(errno));
	n = rctx_read(ctx, fd, buf, sizeof(buf), 0);
	rctx_release(ctx);
	cr_assert_eq(n, -ETIMEDOUT, "stuck read returned %zd", n);
	cr_assert(wait_reads_seen(1), "the read never reached the daemon");
	return fd;
}

Test(stuck_io, read_returns_at_deadline_and_buffer_stays_untouched)
{
	static char buf1[8192], buf2[8192];
	struct rctx_ring_stats st;
	int fd;

	mount_or_skip();
	fd = open(fs.stuck_path, O_RDONLY);
	cr_assert_geq(fd, 0, "open: %s", strerror(errno));
	memset(buf1, 'P', sizeof(buf1));
	memset(buf2, 'Q', sizeof(buf2));
	for (int i = 0; i < 2; i++) {
		char *buf = i ? buf2 : buf1;
		rctx_t *ctx = rctx_with_timeout(rctx_background(), DEADLINE);
		int64_t dl, t1;
		ssize_t n;

		cr_assert(rctx_deadline(ctx, &dl));
		n = rctx_read(ctx, fd, buf, sizeof(buf1), 0);
		t1 = rctx_now();
		cr_assert_eq(n, -ETIMEDOUT, "read %d returned %zd", i, n);
		cr_assert_geq(t1, dl - MS(1), "read %d returned before its deadline", i);
		cr_assert_lt(t1 - dl, LATE_BOUND, "read %d returned %.1f ms late", i,
			     (t1 - dl) / 1e6);
		cr_log_info("stuck read %d returned %.2f ms after its deadline\n", i,
			    (t1 - dl) / 1e6);
		rctx_release(ctx);
	}
	cr_assert(wait_reads_seen(1), "the read never reached the daemon");
	st = kept_stats();
	cr_assert_eq(st.in_flight, 2, "both reads are still held by the kernel: in_flight %llu, "
		     "completed %llu, reads seen %d", (unsigned long long)st.in_flight,
		     (unsigned long long)st.completed, stuckfs_reads_seen(&fs));
	cr_assert_eq(st.held_after_cancel, 2, "held %llu in_flight %llu issued %llu found %llu ealready %llu enoent %llu",
		     (unsigned long long)st.held_after_cancel, (unsigned long long)st.in_flight,
		     (unsigned long long)st.cancels_issued, (unsigned long long)st.cancel_found,
		     (unsigned long long)st.cancel_ealready, (unsigned long long)st.cancel_enoent);
	cr_assert_eq(st.cancel_found, 0, "the kernel cannot abort a read in FUSE");

	/* The "disk" comes back and answers with data: it must land in the
	 * library's bounce buffers, never in the callers'. */
	cr_assert_geq(stuckfs_release(&fs), 1);
	wait_kernel_release(WAIT_MS);
	st = kept_stats();
	cr_assert_eq(st.in_flight, 0);
	cr_assert_eq(st.held_after_cancel, 0);
	cr_assert_eq(st.completed_anyway + st.aborted, 2);
	for (size_t i = 0; i < sizeof(buf1); i++) {
		cr_assert_eq(buf1[i], 'P', "caller buffer 1 written at %zu", i);
		cr_assert_eq(buf2[i], 'Q', "caller buffer 2 written at %zu", i);
	}
	close(fd);
	stuckfs_stop(&fs);
}

struct late_cancel {
	rctx_t *c;
	int64_t at;
};

static void *canceller(void *p)
{
	struct late_cancel *x = p;

	usleep(50000);
	x->at = rctx_now();
	rctx_cancel(x->c);
	return NULL;
}

Test(stuck_io, cancel_from_another_thread_unblocks_stuck_read)
{
	struct late_cancel a = { 0 };
	rctx_t *ctx;
	static char buf[4096];
	pthread_t t;
	int fd;
	ssize_t n;
	int64_t t0;

	mount_or_skip();
	fd = open(fs.stuck_path, O_RDONLY);
	cr_assert_geq(fd, 0, "open: %s", strerror(errno));
	ctx = rctx_with_cancel(rctx_background());
	/* Cancel after 50 ms from a plain thread. */
	a.c = ctx;
	cr_assert_eq(pthread_create(&t, NULL, canceller, &a), 0);
	n = rctx_read(ctx, fd, buf, sizeof(buf), 4096);
	t0 = rctx_now();
	pthread_join(t, NULL);
	cr_assert_eq(n, -ECANCELED);
	cr_assert_geq(t0, a.at, "the read returned before the cancel");
	cr_assert_lt(t0 - a.at, LATE_BOUND);
	rctx_release(ctx);
	cr_assert_geq(stuckfs_release(&fs), 0);
	wait_kernel_release(WAIT_MS);
	close(fd);
	stuckfs_stop(&fs);
}

Test(stuck_io, healthy_file_on_same_fs_reads_normally)
{
	static char buf[4096];
	rctx_t *ctx;
	int fd;

	mount_or_skip();
	fd = open(fs.data_path, O_RDONLY);
	cr_assert_geq(fd, 0, "open: %s", strerror(errno));
	ctx = rctx_with_timeout(rctx_background(), MS(WAIT_MS));
	cr_assert_eq(rctx_read(ctx, fd, buf, sizeof(buf), 0), (ssize_t)sizeof(buf));
	cr_assert_eq(buf[0], STUCKFS_DATA_BYTE);
	cr_assert_eq(buf[sizeof(buf) - 1], STUCKFS_DATA_BYTE);
	rctx_release(ctx);
	close(fd);
	stuckfs_stop(&fs);
}

struct plain_open {
	const char *path;
	_Atomic pid_t tid;
	atomic_int fd;
	atomic_bool done;
};

static void *plain_open_thread(void *p)
{
	struct plain_open *o = p;

	atomic_store(&o->tid, gettid());
	atomic_store(&o->fd, open(o->path, O_RDONLY));
	atomic_store(&o->done, true);
	return NULL;
}

/*
 * Opening a FUSE file invalidates its page cache, which waits for every
 * locked page: behind a stuck read, open(2) blocks uninterruptibly, while
 * rctx_openat under a deadline returns on time and the late fd is closed.
 */
Test(stuck_io, openat_returns_at_deadline_while_plain_open_blocks)
{
	struct plain_open o = { .tid = 0, .fd = -1, .done = false };
	struct rctx_ring_stats st;
	int64_t dl, t1;
	pthread_t t;
	rctx_t *ctx;
	int fd, nfds, ret;

	mount_or_skip();
	fd = stick_first_page();
	nfds = th_fd_count();

	ctx = rctx_with_timeout(rctx_background(), DEADLINE);
	cr_assert(rctx_deadline(ctx, &dl));
	ret = rctx_openat(ctx, AT_FDCWD, fs.stuck_path, O_RDONLY, 0);
	t1 = rctx_now();
	rctx_release(ctx);
	cr_assert_eq(ret, -ETIMEDOUT, "rctx_openat returned %d", ret);
	cr_assert_geq(t1, dl - MS(1), "rctx_openat returned before its deadline");
	cr_assert_lt(t1 - dl, LATE_BOUND, "rctx_openat returned %.1f ms late", (t1 - dl) / 1e6);
	st = kept_stats();
	cr_assert_eq(st.in_flight, 2, "the read and the open are held by the kernel");
	cr_assert_eq(st.held_after_cancel, 2);

	o.path = fs.stuck_path;
	cr_assert_eq(pthread_create(&t, NULL, plain_open_thread, &o), 0);
	while (!atomic_load(&o.tid))
		usleep(1000);
	cr_assert(wait_in_d(getpid(), atomic_load(&o.tid)),
		  "open(2) behind a stuck read did not block in D state");
	cr_assert_not(atomic_load(&o.done));

	/* The disk answers: the plain open returns, the late one is closed. */
	cr_assert_geq(stuckfs_release(&fs), 1);
	pthread_join(t, NULL);
	cr_assert_geq(atomic_load(&o.fd), 0);
	close(atomic_load(&o.fd));
	wait_kernel_release(WAIT_MS);
	st = kept_stats();
	cr_assert_eq(st.in_flight, 0);
	cr_assert_eq(st.held_after_cancel, 0);
	cr_assert_eq(th_fd_count(), nfds, "the late openat's fd was not closed");
	close(fd);
	stuckfs_stop(&fs);
}

/* ---- a killed owner -------------------------------------------------------- */

/* What the child that owns the file system tells the test before it dies. */
struct owner_report {
	int err;		/* stuckfs_start's, or -EIO if a step failed */
	bool blocked;		/* a thread blocked in open(2), in D state */
	pid_t server;
	char dir[64];
	char why[160];
};

struct owner {
	int report;		/* pipe to the test */
	struct owner_report r;
	pid_t pid;
	pid_t blocker;		/* the thread that blocks in open(2) */
};

static void owner_report(struct owner *ow)
{
	if (write(ow->report, &ow->r, sizeof(ow->r)) != sizeof(ow->r))
		_exit(1);
}

/* Wait for the blocker to be stuck in open(2), then tell the test. */
static void *owner_reporter(void *p)
{
	struct owner *ow = p;

	while (!ow->blocker)
		usleep(1000);
	ow->r.blocked = wait_in_d(ow->pid, ow->blocker);
	owner_report(ow);
	return NULL;
}

static void *owner_blocker(void *p)
{
	struct owner *ow = p;

	ow->blocker = gettid();
	open(fs.stuck_path, O_RDONLY);
	return NULL;
}

/*
 * The child: start stuckfs, lock a page behind a stuck read, block a thread
 * in open(2) behind it, report, and wait to be killed: with the main thread
 * (which forked the server) in an rctx_read under a long deadline, or with
 * the main thread itself the one stuck in open(2).
 */
static void owner_child(int report, bool main_blocks)
{
	static char buf[4096];
	struct owner ow = { .report = report, .pid = getpid() };
	pthread_t t;

	ow.r.err = stuckfs_start(&fs);
	ow.r.server = fs.pid;
	snprintf(ow.r.dir, sizeof(ow.r.dir), "%s", fs.dir);
	snprintf(ow.r.why, sizeof(ow.r.why), "%s", fs.why);
	if (ow.r.err < 0) {
		owner_report(&ow);
		_exit(0);
	}
	rctx_thread_ring();
	th_runtime_settle();
	rctx_t *ctx = rctx_with_timeout(rctx_background(), DEADLINE);
	int fd = open(fs.stuck_path, O_RDONLY);

	ssize_t n = fd < 0 ? -errno : rctx_read(ctx, fd, buf, sizeof(buf), 0);

	if (n != -ETIMEDOUT || !wait_reads_seen(1)) {
		ow.r.err = -EIO;
		snprintf(ow.r.why, sizeof(ow.r.why), "no stuck read in the child: %zd, seen %d",
			 n, stuckfs_reads_seen(&fs));
		owner_report(&ow);
		_exit(1);
	}
	if (main_blocks) {
		if (pthread_create(&t, NULL, owner_reporter, &ow) == 0)
			owner_blocker(&ow);
	} else if (pthread_create(&t, NULL, owner_blocker, &ow) == 0) {
		owner_reporter(&ow);
		ctx = rctx_with_timeout(rctx_background(), MS(600000));
		rctx_read(ctx, fd, buf, sizeof(buf), STUCKFS_SIZE / 2);
	}
	pause();
	_exit(1);
}

static bool reaped(pid_t pid)
{
	for (int waited = 0; waited < WAIT_MS; waited += 10) {
		if (waitpid(pid, NULL, WNOHANG) == pid)
			return true;
		usleep(10000);
	}
	return false;
}

/* Has pid exited (no longer exists, or is a zombie of another parent)? */
static bool exited(pid_t pid)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	for (int waited = 0; waited < WAIT_MS; waited += 10) {
		char st = proc_state(path);

		if (st == 0 || st == 'Z' || st == 'X')
			return true;
		usleep(10000);
	}
	return false;
}

static void kill_owner_and_check(bool main_blocks)
{
	struct owner_report r;
	int p[2];
	pid_t pid;

	cr_assert_eq(pipe(p), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		close(p[0]);
		owner_child(p[1], main_blocks);
	}
	close(p[1]);
	cr_assert_eq(th_readable(p[0], 2 * WAIT_MS), 1, "the child did not report");
	cr_assert_eq(read(p[0], &r, sizeof(r)), (ssize_t)sizeof(r));
	close(p[0]);
	if (r.err < 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		cr_assert_neq(r.err, -EIO, "%s", r.why);
		cr_skip_test("stuck-disk tests need FUSE: %s", r.why);
	}
	cr_assert(r.blocked, "open(2) behind a stuck read did not block in D state");
	cr_assert(mounted(r.dir));

	cr_assert_eq(kill(pid, SIGKILL), 0);
	cr_assert(reaped(pid), "the killed owner was not reaped within %d ms", WAIT_MS);
	cr_assert(exited(r.server), "the server outlived its owner");
	cr_assert_not(mounted(r.dir), "%s is still mounted", r.dir);
	cr_assert_eq(access(r.dir, F_OK), -1, "%s was not removed", r.dir);
}

Test(stuck_io, killed_owner_is_reaped_and_unmounted)
{
	kill_owner_and_check(false);
}

/* The thread that forked the server is stuck: no parent-death signal. */
Test(stuck_io, killed_owner_stuck_in_open_is_reaped_and_unmounted)
{
	kill_owner_and_check(true);
}
