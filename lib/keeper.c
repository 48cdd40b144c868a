/* SPDX-License-Identifier: MIT */
/*
 * The keeper: kernel requests that the library keeps on behalf of callers who
 * may give them up, run by the runtime thread.
 *
 * The kernel ties io-wq work to the task that submitted it: a thread cannot
 * finish exiting while a request it submitted is still running in io-wq
 * (do_exit -> io_uring_cancel_generic -> io_wq_put_and_exit, uninterruptible).
 * Disk I/O that hangs (a dead device, a FUSE server that never answers) may
 * stay there forever. So the blocking calls that may be abandoned (file I/O,
 * fsync, openat: lib/blocking.c) do not submit on the caller's ring: the
 * caller queues a kept request here, the runtime thread submits it on its
 * own ring (the keeper ring) under the caller's context, and the caller
 * sleeps on a futex word until the request completes or the context is done.
 * An abandoned request belongs to the keeper, which frees its memory (and
 * closes a late fd) when the kernel lets go. The library's own watches (fd
 * and signal contexts: lib/watch.c, lib/signal.c) are kept requests too,
 * with a completion hook instead of a waiting caller. The runtime thread
 * lives as long as the process, so no caller's exit ever waits for the disk.
 *
 * The same thread adopts the rings of exited threads that still held
 * requests the kernel would not give back (rctx_thread_ring()): it watches
 * each with a poll request on the ring fd, runs it when completions arrive,
 * and frees it once it is empty.
 *
 * Everything here but the two pushes and the stats runs on the runtime
 * thread. The keeper does not call the runtime: the runtime calls it
 * (rctx__rt_keep(), rctx__rt_adopt() start and wake the thread), and it
 * submits on the runtime ring it is given at init.
 */
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <poll.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <stdlib.h>
#include <unistd.h>

#include "internal.h"

#define KEEPER_ENTRIES 256

static struct keeper {
	struct rctx_ring *ring;                  /* runtime thread's */
	struct io_uring *rt_ring;                /* the runtime's own ring */
	_Atomic(struct rctx_ring *) stats_ring;  /* the same, for rctx__keeper_stats */
	_Atomic(struct rctx_kept *) submit_q;    /* from callers */
	_Atomic(struct rctx_ring *) adopt_q;     /* from exiting threads */
	struct rctx_ring *adopted;               /* runtime thread only */
	struct {
		_Atomic uint64_t submitted, abandoned, late, adopted, reclaimed, nowait;
		/* SQEs of abandoned requests not ended yet (a chain has
		 * several), for the drain at exit: internal */
		_Atomic int64_t held_sqes;
	} st;
} kp;

/* ---- kept requests ---------------------------------------------------------- */

/*
 * Abandoned requests the kernel still holds: abandoned minus those ended
 * since. A completion can count its "late" just before its caller counts
 * the abandon, so the difference is clamped at zero.
 */
static uint64_t kept_held(void)
{
	uint64_t late = stat_get(&kp.st.late);
	uint64_t abandoned = stat_get(&kp.st.abandoned);

	return abandoned > late ? abandoned - late : 0;
}

struct rctx_kept *rctx__kept_new(size_t buflen)
{
	struct rctx_kept *k = rctx__calloc(1, sizeof(*k));

	if (k && buflen) {
		k->buf = rctx__malloc(buflen);
		if (!k->buf) {
			free(k);
			return NULL;
		}
	}
	if (k) {
		atomic_init(&k->refs, 1);
		k->user_fd = -1;
		k->slot = -1;
	}
	return k;
}


/*
 * The directory a path request resolves from, for its lane: the path's
 * parent, looked up from the dentry cache only (RESOLVE_CACHED: -EAGAIN
 * rather than a round trip to a file system that may not answer), so that
 * "mnt/fuse/x" runs in the FUSE mount's lane, not in dirfd's. -1 when the
 * parent is dirfd itself, or is not cached (then dirfd's lane it is), and
 * under valgrind.
 */
static int parent_of(int dirfd, const char *path)
{
	struct open_how how = { .flags = O_PATH | O_CLOEXEC | O_DIRECTORY,
				.resolve = RESOLVE_CACHED };
	const char *slash = strrchr(path, '/');
	char dir[PATH_MAX];
	size_t n;

	if (!slash || under_valgrind())
		return -1;
	n = slash == path ? 1 : (size_t)(slash - path);
	if (n >= sizeof(dir))
		return -1;
	memcpy(dir, path, n);
	dir[n] = '\0';
	return (int)syscall(SYS_openat2, dirfd, dir, &how, sizeof(how));
}

/*
 * Identify fd's file (path NULL), or the directory that path resolves from,
 * for its lane and fence. AT_STATX_DONT_SYNC: the attributes the kernel
 * has, never a round trip to a file system that may not answer (FUSE,
 * NFS); st_dev and st_ino need none.
 */
int rctx__kept_locate(struct rctx_kept *k, int fd, const char *path)
{
	int pfd = path ? parent_of(fd, path) : -1;
	int flags = AT_EMPTY_PATH | AT_STATX_DONT_SYNC;
	const char *at = "";
	struct statx stx;
	int ret = 0;

	if (pfd >= 0) {
		fd = pfd;
	} else if (path && path[0] == '/') {
		fd = AT_FDCWD; /* the root's lane, for an uncached parent */
		at = "/";
		flags &= ~AT_EMPTY_PATH;
	}
	if (statx(fd, at, flags, STATX_INO, &stx) < 0)
		ret = errno == ENOENT ? -EBADF : -errno;
	if (pfd >= 0)
		close(pfd);
	if (ret)
		return ret;
	k->dev = makedev(stx.stx_dev_major, stx.stx_dev_minor);
	k->ino = stx.stx_ino;
	k->has_dev = true;
	if (!path)
		k->user_fd = fd;
	return 0;
}

/* IORING_OP_FTRUNCATE (Linux 6.9), newer than liburing 2.3's header. */
#define OP_FTRUNCATE 55

/* Does the kernel know IORING_OP_FTRUNCATE? Asked once. */
static bool ftruncate_supported(void)
{
	static int known; /* 0 unknown, 1 yes, -1 no */
	struct io_uring_probe *p;
	int v = __atomic_load_n(&known, __ATOMIC_RELAXED);

	if (v)
		return v > 0;
	p = io_uring_get_probe();
	v = p && io_uring_opcode_supported(p, OP_FTRUNCATE) ? 1 : -1;
	if (p)
		io_uring_free_probe(p);
	__atomic_store_n(&known, v, __ATOMIC_RELAXED);
	return v > 0;
}

int rctx__kept_prep_ftruncate(struct rctx_kept *k, int fd, int64_t len)
{
	if (!ftruncate_supported())
		return -EOPNOTSUPP;
	k->writes = true;
	io_uring_prep_rw(OP_FTRUNCATE, &k->sqe, fd, NULL, 0, (uint64_t)len);
	return 0;
}

int rctx__kept_fence_check(struct rctx_kept *k, struct rctx_ab_stats *ab)
{
	if (!rctx__fenced(k->dev, k->ino))
		return 0;
	if (ab)
		stat_add(&ab->fenced, 1);
	return -EBUSY;
}

void rctx__kept_count_nowait(void)
{
	stat_add(&kp.st.nowait, 1);
}

void rctx__kept_put(struct rctx_kept *k)
{
	if (atomic_fetch_sub_explicit(&k->refs, 1, memory_order_acq_rel) != 1)
		return;
	if (k->ctx)
		rctx__unref(k->ctx); /* never submitted */
	if (k->uctx)
		rctx__unref(k->uctx);
	if (k->ab)
		rctx__ab_stats_put(k->ab);
	if (k->lent_pipe && atomic_load_explicit(&k->state, memory_order_acquire) ==
			    KEPT_ABANDONED) {
		/* The caller gave it up with the request: the kernel is done
		 * with it now, so nothing holds its lock. */
		close(k->pipefd[0]);
		close(k->pipefd[1]);
	}
	rctx__chain_free(k->chain);
	free(k->buf);
	free(k);
}

static void kept_wake(struct rctx_kept *k)
{
	atomic_fetch_add_explicit(&k->seq, 1, memory_order_release);
	rctx__futex_wake_all(&k->seq);
}

/* The outcome is settled (done, or given up): tell whoever waits. */
static void kept_settled(struct rctx_kept *k)
{
	if (k->owner)
		rctx__ring_post(k->owner, &k->post);
	else
		kept_wake(k);
}

static void to_kernel(struct rctx_kept *k);

/* The SQEs of k on the keeper ring (a chain has several). */
static int64_t kept_sqes(const struct rctx_kept *k)
{
	return k->chain ? (int64_t)k->chain->n : 1;
}

/* The kernel let go of a request its caller had given up. */
static void kept_late(struct rctx_kept *k, int res)
{
	atomic_fetch_sub_explicit(&kp.st.held_sqes, kept_sqes(k), memory_order_relaxed);
	if (k->close_late && res >= 0)
		close(res);
	if (k->writes)
		rctx__fence_drop(k->dev, k->ino);
	if (k->ab)
		stat_add(&k->ab->late, 1);
	rctx__info_count(k->gov, 0, 1);
	stat_add(&kp.st.late, 1);
}

/* The request's completion, on the runtime thread. */
static void kept_cb(void *arg, int res, uint32_t flags)
{
	struct rctx_kept *k = arg;
	int waiting = KEPT_WAITING;

	if (flags & IORING_CQE_F_MORE)
		return;
	rctx__unpin(k); /* the kernel let go of it */
	k->res = res;
	if (k->complete) {
		k->complete(k); /* a watch of the library's own: no caller */
	} else if (atomic_compare_exchange_strong_explicit(&k->state, &waiting, KEPT_DONE,
			memory_order_acq_rel, memory_order_acquire)) {
		kept_settled(k);
	} else {
		kept_late(k, res); /* its caller gave it up */
	}
	if (k->has_dev)
		to_kernel(rctx__lane_leave(k));
	rctx__kept_put(k);
}

/* After-func of the caller's context: the caller may give up now. */
void rctx__kept_ctx_done(void *arg)
{
	struct rctx_kept *k = arg;

	if (!k->owner)
		kept_wake(k); /* the blocking caller gives it up itself */
	else if (rctx__kept_abandon(k))
		kept_settled(k);
	rctx__kept_put(k);
}

/* Any thread, through rctx__rt_keep(): queue k (holding a reference for
 * the keeper). */
void rctx__keeper_push(struct rctx_kept *k)
{
	LFSTACK_PUSH(&kp.submit_q, k, k->next);
}

static void count_abandoned(struct rctx_kept *k)
{
	atomic_fetch_add_explicit(&kp.st.held_sqes, kept_sqes(k), memory_order_relaxed);
	rctx__info_count(k->gov, 1, 0);
	stat_add(&kp.st.abandoned, 1);
	if (k->ab)
		stat_add(&k->ab->abandoned, 1);
	if (k->writes)
		rctx__fence_add(k->dev, k->ino);
}

bool rctx__kept_abandon(struct rctx_kept *k)
{
	int s = atomic_load_explicit(&k->state, memory_order_acquire);

	for (;;) {
		int to = s == KEPT_QUEUED ? KEPT_DROPPED : KEPT_ABANDONED;

		if (s != KEPT_QUEUED && s != KEPT_WAITING)
			return false; /* done, or given up already */
		if (atomic_compare_exchange_weak_explicit(&k->state, &s, to,
				memory_order_acq_rel, memory_order_acquire))
			break;
	}
	if (s == KEPT_WAITING)
		count_abandoned(k);
	else
		rctx__lane_forget(k); /* if it waited in a lane, it no longer does */
	return true;
}

/* A request given up before it reached the kernel: nothing is held. */
static void kept_drop(struct rctx_kept *k)
{
	rctx__kept_put(k);
}

/*
 * Hand k to the kernel, unless it was given up while it waited: then free
 * it, and hand on the place it held in its lane.
 */
static void to_kernel(struct rctx_kept *k)
{
	while (k) {
		int queued = KEPT_QUEUED;
		struct rctx_kept *next;
		int ret;

		/* gov first: an abandon that sees KEPT_WAITING counts on it
		 * (its caller's reference to the context keeps it alive). */
		k->gov = rctx_governor(k->ctx);
		/* Before the CAS: until then the caller has not given k up,
		 * so its fd is still the file it named (lib/pin.c). */
		rctx__pin(k);
		if (atomic_compare_exchange_strong_explicit(&k->state, &queued, KEPT_WAITING,
				memory_order_acq_rel, memory_order_acquire)) {
			ret = k->chain ? rctx__chain_submit(kp.ring, k, kept_cb) :
					 rctx_submit(kp.ring, k->ctx, &k->sqe, kept_cb, k);
			rctx__unref(k->ctx); /* the request holds its governor now */
			k->ctx = NULL;
			if (ret == -EBUSY)
				ret = -EAGAIN; /* the SQ stayed full; -EBUSY means fenced */
			if (ret < 0)
				kept_cb(k, ret, 0);
			else
				stat_add(&kp.st.submitted, 1);
			return;
		}
		rctx__unpin(k);
		next = k->has_dev ? rctx__lane_leave(k) : NULL;
		kept_drop(k);
		k = next;
	}
}

/* Process exit: a request still waiting in its lane ends -ECANCELED, so
 * that its caller is answered (nothing reached the kernel). */
static void kept_end_waiting(struct rctx_kept *k)
{
	int queued = KEPT_QUEUED;

	if (atomic_compare_exchange_strong_explicit(&k->state, &queued, KEPT_DONE,
			memory_order_acq_rel, memory_order_acquire)) {
		k->res = -ECANCELED;
		kept_settled(k);
	}
	rctx__kept_put(k);
}

static void submit_queued(void)
{
	struct rctx_kept *k, *next;

	/* LIFO stack: submit in queue order. */
	k = LIST_REVERSE(LFSTACK_TAKE(&kp.submit_q), next);
	for (; k; k = next) {
		next = k->next;
		if (!k->has_dev || rctx__lane_enter(k))
			to_kernel(k);
	}
}

/* ---- adopted rings ------------------------------------------------------- */

/* Any thread, through rctx__rt_adopt(): queue ring for adoption. */
void rctx__keeper_push_ring(struct rctx_ring *ring)
{
	LFSTACK_PUSH(&kp.adopt_q, ring, *rctx__ring_link(ring));
	stat_add(&kp.st.adopted, 1);
}

/* Ask for a CQE on the runtime ring when ring has completions to reap. */
static void watch_ring(struct rctx_ring *ring)
{
	struct io_uring_sqe *sqe = rctx__sqe_get_retry(kp.rt_ring);

	io_uring_prep_poll_add(sqe, rctx_ring_fd(ring), POLLIN);
	/* keeper -> ring: rings are what the keeper runs (inherent). */
	io_uring_sqe_set_data64(sqe, ud_make(UD_TARGET, (uintptr_t)ring));
}

static void take_adopted(void)
{
	struct rctx_ring *r, *next;

	for (r = LFSTACK_TAKE(&kp.adopt_q); r; r = next) {
		next = *rctx__ring_link(r);
		*rctx__ring_link(r) = kp.adopted;
		kp.adopted = r;
		rctx__ring_cancel_all(r);
		watch_ring(r);
	}
}

static void unlink_adopted(struct rctx_ring *ring)
{
	struct rctx_ring **pp = &kp.adopted;

	while (*pp != ring)
		pp = rctx__ring_link(*pp);
	*pp = *rctx__ring_link(ring);
}

/* A poll on ring (the keeper ring or an adopted one) fired: run it. */
void rctx__keeper_ring_ready(struct rctx_ring *ring)
{
	rctx_ring_run(ring, 0);
	if (ring != kp.ring && !rctx_ring_pending(ring)) {
		unlink_adopted(ring);
		rctx__ring_free(ring);
		stat_add(&kp.st.reclaimed, 1);
		return;
	}
	watch_ring(ring);
}

/* ---- the runtime thread's side ------------------------------------------- */

int rctx__keeper_init(struct io_uring *rt_ring)
{
	int ret = rctx_ring_create(&kp.ring, KEEPER_ENTRIES);

	if (ret < 0)
		return ret;
	kp.rt_ring = rt_ring;
	rctx__lane_init(rctx_ring_uring(kp.ring), kept_drop);
	rctx__pin_init(rctx_ring_uring(kp.ring));
	watch_ring(kp.ring);
	atomic_store_explicit(&kp.stats_ring, kp.ring, memory_order_release);
	return 0;
}

/* One turn of the runtime loop: submit what callers queued, adopt rings. */
void rctx__keeper_turn(void)
{
	if (LFSTACK_PEEK(&kp.submit_q)) {
		submit_queued();
		rctx_ring_run(kp.ring, 0);
	}
	if (LFSTACK_PEEK(&kp.adopt_q))
		take_adopted();
}

bool rctx__keeper_queued(void)
{
	/* seq_cst: the runtime's check before it sleeps (queues_pending). */
	return atomic_load_explicit(&kp.submit_q, memory_order_seq_cst) ||
	       atomic_load_explicit(&kp.adopt_q, memory_order_seq_cst);
}

/*
 * Cancel every request of ring and run it until at most `abandoned` of them
 * are left or deadline passes. True if the ring is empty.
 */
static bool drain_ring(struct rctx_ring *ring, unsigned abandoned, int64_t deadline)
{
	rctx__ring_cancel_all(ring);
	rctx_ring_run(ring, 0);
	while (rctx_ring_pending(ring) > abandoned && rctx_now() < deadline)
		rctx_ring_run(ring, deadline);
	return rctx_ring_pending(ring) == 0;
}

/*
 * At process exit, on the runtime thread: cancel everything, and wait until
 * deadline for the requests that callers still wait for (not for those
 * already abandoned, nor those of exited threads). Returns true if the
 * kernel let go of every request (the thread may then exit), false if some
 * are still held: the thread must not exit then, or its exit would wait for
 * the disk.
 */
bool rctx__keeper_shutdown(int64_t deadline)
{
	int64_t sqes = atomic_load_explicit(&kp.st.held_sqes, memory_order_relaxed);
	unsigned held = sqes > 0 ? (unsigned)sqes : 0; /* clamped: see kept_held() */
	struct rctx_ring *r;
	bool empty;

	take_adopted();
	submit_queued();
	rctx__lane_shutdown(kept_end_waiting);
	empty = drain_ring(kp.ring, held, deadline);
	for (r = kp.adopted; r; r = *rctx__ring_link(r))
		empty &= drain_ring(r, rctx_ring_pending(r), 0);
	if (!empty)
		return false;
	while (kp.adopted) {
		r = kp.adopted;
		kp.adopted = *rctx__ring_link(r);
		rctx__ring_free(r);
		stat_add(&kp.st.reclaimed, 1);
	}
	r = kp.ring;
	kp.ring = NULL;
	atomic_store_explicit(&kp.stats_ring, NULL, memory_order_release);
	rctx__ring_free(r);
	return true;
}

int rctx__keeper_ring_stats(struct rctx_ring_stats *st, size_t size)
{
	struct rctx_ring *ring = atomic_load_explicit(&kp.stats_ring, memory_order_acquire);
	struct rctx_ring_stats none = { 0 };

	if (ring) /* freed only at process exit */
		return (rctx_ring_stats)(ring, st, size);
	return rctx__stats_out(st, size, &none, sizeof(none));
}

void rctx__keeper_stats(struct rctx_runtime_stats *st)
{

	st->kept_submitted = stat_get(&kp.st.submitted);
	st->kept_abandoned = stat_get(&kp.st.abandoned);
	st->kept_late = stat_get(&kp.st.late);
	st->kept_held = kept_held();
	st->rings_adopted = stat_get(&kp.st.adopted);
	st->rings_reclaimed = stat_get(&kp.st.reclaimed);
	st->nowait_reads = stat_get(&kp.st.nowait);
	rctx__lane_stats(st);
	rctx__fence_stats(st);
	rctx__pin_stats(st);
}
