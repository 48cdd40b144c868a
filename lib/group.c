/* SPDX-License-Identifier: MIT */
/*
 * Groups: Go's errgroup with SetLimit, and a request limit for io_uring work.
 *
 * The group is its own context: an extended context (struct rctx_ext) whose
 * ended() hook wakes the callers that wait for a slot, and whose memory
 * lives until its last reference goes (the owner's, dropped by
 * rctx_group_free(), and one per request of rctx_group_submit() not yet
 * completed), when the destroy() hook tears down what the group owns.
 *
 * Functions run on a pool of worker threads of the group: `running` counts
 * the fns started and not returned (Go's semaphore and WaitGroup count the
 * same goroutines); a worker is taken from the idle stack, or created when
 * none is idle, so there are never more workers than fns at once. Without a
 * limit, a worker idle for GROUP_IDLE_NS exits (joined by the next go or by
 * the free); with one, workers live until the free.
 *
 * Requests (rctx_group_submit) are counted per group on the one ring the
 * group is bound to, on that ring's owner thread only: no lock. A request
 * over the limit waits in a FIFO; if its context can end, a sentinel (a poll
 * on the group's never-signalled eventfd, submitted under a child of that
 * context) completes when the context ends, or when the ring is destroyed,
 * and completes the queued request at once.
 */
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "internal.h"

#define GROUP_IDLE_NS 1000000000LL

struct group_worker {
	struct rctx_group *g;
	pthread_t tid;
	pthread_cond_t cv;           /* a task was given, or the group stops */
	struct group_worker *next;   /* all workers, or the exited list */
	struct group_worker *idle_next;
	int (*fn)(rctx_t *ctx, void *arg);
	void *arg;
	bool has_task;
};

enum { GREQ_QUEUED, GREQ_SUBMITTED, GREQ_ENDED };

/* A request of rctx_group_submit(): the ring owner's only. */
struct group_req {
	struct rctx_group *g;        /* holds a reference to the group */
	struct group_req *prev, *next; /* the FIFO, while queued */
	rctx_t *ctx;                 /* a reference, while queued */
	rctx_t *watch;               /* the sentinel's context, while queued */
	rctx_cb_t cb;
	void *arg;
	struct io_uring_sqe sqe;
	uint8_t state;
	uint8_t refs;                /* the request's and the sentinel's */
	bool counted;                /* holds one of the limit's slots */
};

struct rctx_group {
	struct rctx_ext x;           /* the group's context */
	_Atomic bool ready;          /* the fields below are initialised */
	pthread_mutex_t lock;
	pthread_cond_t slot_cv;      /* a slot freed, or the context ended */
	pthread_cond_t idle_cv;      /* running dropped to 0 */
	int limit;                   /* < 0: none */
	int running;                 /* fns started, not returned */
	bool stopping;
	struct group_worker *workers, *idle, *exited;
	_Atomic int err;             /* the first non-zero result */
	/* rctx_group_submit(): owner thread of ->ring only */
	rctx_ring_t *ring;
	int inflight;                /* counted requests, callback not run */
	struct group_req *qhead, *qtail;
	int efd;                     /* the sentinels' eventfd, -1 until used */
};

static inline rctx_t *group_ctx(struct rctx_group *g)
{
	return &g->x.cc.c.hdr;
}

/* ---- the group's context ------------------------------------------------ */

/* Callers waiting for a slot must see that the context ended. */
static void group_ended(struct rctx_ext *x)
{
	struct rctx_group *g = container_of(x, struct rctx_group, x);

	/* Not ready: rctx_group_new() has not returned, nobody waits. */
	if (!atomic_load_explicit(&g->ready, memory_order_acquire))
		return;
	pthread_mutex_lock(&g->lock);
	pthread_cond_broadcast(&g->slot_cv);
	pthread_mutex_unlock(&g->lock);
}

static void group_destroy(struct rctx_ext *x)
{
	struct rctx_group *g = container_of(x, struct rctx_group, x);

	if (!atomic_load_explicit(&g->ready, memory_order_acquire))
		return;
	RCTX_ASSERT(!g->workers && !g->exited && !g->qhead);
	if (g->efd >= 0)
		close(g->efd);
	pthread_cond_destroy(&g->idle_cv);
	pthread_cond_destroy(&g->slot_cv);
	pthread_mutex_destroy(&g->lock);
}

static const struct rctx_ext_ops group_ops = {
	.name = "WithGroup",
	.ended = group_ended,
	.destroy = group_destroy,
};

RCTX_API rctx_group_t *rctx_group_new(rctx_t *parent, int limit)
{
	ERRNO_GUARD;
	struct rctx_ext *x;
	struct rctx_group *g;

	if (!ctx_valid(parent) || limit == 0)
		return ERRNO_FAIL(EINVAL);
	x = rctx__ext_new(parent, sizeof(*g), &group_ops, rctx__deadline_of(parent));
	if (!x)
		return ERRNO_FAIL(ENOMEM);
	g = container_of(x, struct rctx_group, x);
	pthread_mutex_init(&g->lock, NULL);
	pthread_cond_init(&g->slot_cv, NULL);
	pthread_cond_init(&g->idle_cv, NULL);
	g->limit = limit < 0 ? -1 : limit;
	g->efd = -1;
	atomic_store_explicit(&g->ready, true, memory_order_release);
	return g;
}

RCTX_API rctx_t *rctx_group_ctx(rctx_group_t *g)
{
	if (!g) {
		errno = EINVAL;
		return NULL;
	}
	return group_ctx(g);
}

/* The first non-zero result wins and ends the context with it as cause. */
static void group_record(struct rctx_group *g, int res)
{
	int zero = 0;

	if (atomic_compare_exchange_strong_explicit(&g->err, &zero, res,
						    memory_order_acq_rel,
						    memory_order_relaxed))
		rctx_cancel_cause(group_ctx(g), res);
}

/* ---- workers -------------------------------------------------------------- */

static void unlink_worker(struct group_worker **head, struct group_worker *w, bool idle)
{
	for (; *head; head = idle ? &(*head)->idle_next : &(*head)->next)
		if (*head == w) {
			*head = idle ? w->idle_next : w->next;
			return;
		}
}

/*
 * g->lock held: wait for a task. False if the worker is to go: the group
 * stops, or (without a limit) it stayed idle for GROUP_IDLE_NS, in which
 * case it moved itself to the exited list.
 */
static bool worker_wait_task(struct group_worker *w)
{
	struct rctx_group *g = w->g;
	struct timespec until;

	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += GROUP_IDLE_NS / 1000000000LL;
	while (!w->has_task && !g->stopping) {
		if (g->limit < 0 &&
		    pthread_cond_timedwait(&w->cv, &g->lock, &until) == ETIMEDOUT &&
		    !w->has_task && !g->stopping) {
			unlink_worker(&g->idle, w, true);
			unlink_worker(&g->workers, w, false);
			w->next = g->exited;
			g->exited = w;
			return false;
		} else if (g->limit >= 0) {
			pthread_cond_wait(&w->cv, &g->lock);
		}
	}
	return w->has_task;
}

static void *worker_main(void *p)
{
	struct group_worker *w = p;
	struct rctx_group *g = w->g;

	pthread_mutex_lock(&g->lock);
	while (worker_wait_task(w)) {
		int (*fn)(rctx_t *, void *) = w->fn;
		void *arg = w->arg;
		int res;

		w->has_task = false;
		pthread_mutex_unlock(&g->lock);
		res = fn(group_ctx(g), arg);
		if (res)
			group_record(g, res);
		pthread_mutex_lock(&g->lock);
		w->idle_next = g->idle;
		g->idle = w;
		if (--g->running == 0)
			pthread_cond_broadcast(&g->idle_cv);
		pthread_cond_signal(&g->slot_cv);
	}
	pthread_mutex_unlock(&g->lock);
	return NULL;
}

static void worker_free(struct group_worker *w)
{
	pthread_cond_destroy(&w->cv);
	free(w);
}

/* Join workers taken off the exited list (no lock held). */
static void join_workers(struct group_worker *w)
{
	struct group_worker *next;

	for (; w; w = next) {
		next = w->next;
		pthread_join(w->tid, NULL);
		worker_free(w);
	}
}

/* g->lock held: take the workers that exited on their own, to join. */
static struct group_worker *take_exited(struct rctx_group *g)
{
	struct group_worker *w = g->exited;

	g->exited = NULL;
	return w;
}

/* Start a thread for w (already listed with its task), every signal
 * blocked: signals are for the application's threads. */
static int worker_spawn(struct group_worker *w)
{
	sigset_t all, old;
	pthread_condattr_t ca;
	int ret;

	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	ret = pthread_cond_init(&w->cv, &ca);
	pthread_condattr_destroy(&ca);
	if (ret)
		return -ret;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	ret = rctx__pthread_create(&w->tid, NULL, worker_main, w);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (ret)
		pthread_cond_destroy(&w->cv);
	return -ret;
}

/* g->lock held, a slot taken: hand the task to an idle worker, or list a
 * new one in *spawn for the caller to start once the lock is dropped. */
static int give_task(struct rctx_group *g, int (*fn)(rctx_t *, void *), void *arg,
		     struct group_worker **spawn)
{
	struct group_worker *w = g->idle;

	if (w) {
		g->idle = w->idle_next;
	} else {
		w = rctx__calloc(1, sizeof(*w));
		if (!w)
			return -ENOMEM;
		w->g = g;
		w->next = g->workers;
		g->workers = w;
		*spawn = w;
	}
	w->fn = fn;
	w->arg = arg;
	w->has_task = true;
	if (!*spawn)
		pthread_cond_signal(&w->cv);
	return 0;
}

/* g->lock held: give back a slot that was taken. */
static void slot_put_locked(struct rctx_group *g)
{
	if (--g->running == 0)
		pthread_cond_broadcast(&g->idle_cv);
	pthread_cond_signal(&g->slot_cv);
}

static int group_start(struct rctx_group *g, int (*fn)(rctx_t *, void *), void *arg,
		       bool block)
{
	ERRNO_GUARD;
	struct group_worker *spawn = NULL, *exited;
	int ret;

	if (!g || !fn)
		return -EINVAL;
	pthread_mutex_lock(&g->lock);
	exited = take_exited(g);
	for (;;) {
		ret = rctx_err(group_ctx(g));
		if (ret)
			goto out_unlock;
		if (g->limit < 0 || g->running < g->limit)
			break;
		if (!block) {
			ret = -EAGAIN;
			goto out_unlock;
		}
		pthread_cond_wait(&g->slot_cv, &g->lock);
	}
	g->running++;
	ret = give_task(g, fn, arg, &spawn);
	if (ret < 0)
		slot_put_locked(g);
	pthread_mutex_unlock(&g->lock);
	if (spawn)
		ret = worker_spawn(spawn);
	if (ret < 0 && spawn) {
		pthread_mutex_lock(&g->lock);
		unlink_worker(&g->workers, spawn, false);
		slot_put_locked(g);
		pthread_mutex_unlock(&g->lock);
		free(spawn);
	}
	join_workers(exited);
	return ret;

out_unlock:
	pthread_mutex_unlock(&g->lock);
	join_workers(exited);
	return ret;
}

RCTX_API int rctx_group_go(rctx_group_t *g, int (*fn)(rctx_t *ctx, void *arg), void *arg)
{
	return group_start(g, fn, arg, true);
}

RCTX_API int rctx_group_try_go(rctx_group_t *g, int (*fn)(rctx_t *ctx, void *arg), void *arg)
{
	return group_start(g, fn, arg, false);
}

RCTX_API int rctx_group_wait(rctx_group_t *g)
{
	int err;

	if (!g)
		return -EINVAL;
	pthread_mutex_lock(&g->lock);
	while (g->running)
		pthread_cond_wait(&g->idle_cv, &g->lock);
	pthread_mutex_unlock(&g->lock);
	err = atomic_load_explicit(&g->err, memory_order_acquire);
	rctx_cancel_cause(group_ctx(g), err); /* Go: g.cancel(g.err) */
	return err;
}

/* After the wait: stop and join every worker. */
static void stop_workers(struct rctx_group *g)
{
	struct group_worker *w, *exited;

	pthread_mutex_lock(&g->lock);
	g->stopping = true;
	for (w = g->workers; w; w = w->next)
		pthread_cond_signal(&w->cv);
	w = g->workers;
	g->workers = NULL;
	g->idle = NULL;
	exited = take_exited(g);
	pthread_mutex_unlock(&g->lock);
	join_workers(w);
	join_workers(exited);
}

RCTX_API void rctx_group_free(rctx_group_t *g)
{
	ERRNO_GUARD;
	if (!g)
		return;
	rctx_group_wait(g);
	stop_workers(g);
	rctx_unref(group_ctx(g)); /* requests still pending keep it */
}

/* ---- requests ----------------------------------------------------------- */

static void req_put(struct group_req *r)
{
	if (--r->refs)
		return;
	rctx_unref(group_ctx(r->g));
	free(r);
}

static void queue_unlink(struct rctx_group *g, struct group_req *r)
{
	*(r->prev ? &r->prev->next : &g->qhead) = r->next;
	*(r->next ? &r->next->prev : &g->qtail) = r->prev;
	r->prev = r->next = NULL;
}

static void queue_append(struct rctx_group *g, struct group_req *r)
{
	r->next = NULL;
	r->prev = g->qtail;
	*(g->qtail ? &g->qtail->next : &g->qhead) = r;
	g->qtail = r;
}

/* A queued request leaves the queue: it no longer needs its sentinel. */
static rctx_t *req_dequeue(struct rctx_group *g, struct group_req *r)
{
	rctx_t *ctx = r->ctx;

	queue_unlink(g, r);
	if (r->watch)
		rctx_release(r->watch); /* its sentinel completes -ECANCELED */
	r->watch = NULL;
	r->ctx = NULL;
	return ctx;
}

static void req_completed(void *arg, int res, uint32_t flags);

/* Submit r (0: its callback will run), or rctx_submit's error. */
static int req_submit(struct rctx_group *g, rctx_ring_t *ring, rctx_t *ctx,
		      struct group_req *r, const struct io_uring_sqe *sqe)
{
	bool done = rctx_err(ctx) != 0;
	int ret = rctx_submit(ring, ctx, sqe, req_completed, r);

	if (ret < 0)
		return ret;
	r->state = GREQ_SUBMITTED;
	r->counted = !done && g->limit > 0;
	g->inflight += r->counted;
	return 0;
}

/* Ring owner, from a callback: submit queued requests while slots are free. */
static void group_pump(struct rctx_group *g)
{
	while (g->qhead && g->inflight < g->limit) {
		struct group_req *r = g->qhead;
		rctx_t *ctx = req_dequeue(g, r);
		int ret = req_submit(g, g->ring, ctx, r, &r->sqe);

		rctx_unref(ctx);
		if (ret < 0) {
			r->state = GREQ_ENDED;
			r->cb(r->arg, ret, 0);
			req_put(r);
		}
	}
}

static void req_completed(void *arg, int res, uint32_t flags)
{
	struct group_req *r = arg;

	if (flags & IORING_CQE_F_MORE) { /* multishot: keeps its slot */
		r->cb(r->arg, res, flags);
		return;
	}
	if (r->counted) {
		r->counted = false;
		r->g->inflight--;
		group_pump(r->g);
	}
	r->cb(r->arg, res, flags);
	req_put(r);
}

/* The error a queued request ends with when its sentinel completes: its
 * context's, or, if the ring's link timeout was quicker than the runtime
 * thread, -ETIMEDOUT for a deadline passed; else the ring is going away. */
static int queued_err(rctx_t *ctx)
{
	int64_t dl;
	int err = rctx_err(ctx);

	if (err)
		return err;
	if (rctx_deadline(ctx, &dl) && dl <= rctx_now())
		return -ETIMEDOUT;
	return -ECANCELED;
}

static void sentinel_completed(void *arg, int res, uint32_t flags)
{
	struct group_req *r = arg;

	(void)res;
	(void)flags;
	if (r->state == GREQ_QUEUED) {
		int err = queued_err(r->ctx);

		rctx_unref(req_dequeue(r->g, r));
		r->state = GREQ_ENDED;
		r->cb(r->arg, err, 0);
		r->refs--; /* the request's: the sentinel's is the last */
	}
	req_put(r);
}

/* Arm r's sentinel: a poll that never fires, under a child of r's context. */
static int sentinel_arm(struct rctx_group *g, struct group_req *r)
{
	struct io_uring_sqe s;
	int ret;

	if (g->efd < 0) {
		g->efd = rctx__eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (g->efd < 0)
			return -errno;
	}
	r->watch = rctx_with_cancel(r->ctx);
	if (!r->watch)
		return -ENOMEM;
	memset(&s, 0, sizeof(s));
	io_uring_prep_poll_add(&s, g->efd, POLLIN);
	ret = rctx_submit(g->ring, r->watch, &s, sentinel_completed, r);
	if (ret < 0) {
		rctx_release(r->watch);
		r->watch = NULL;
		return ret;
	}
	r->refs++;
	return 0;
}

/* Queue r behind the others (0), or an error and nothing queued. */
static int req_queue(struct rctx_group *g, struct group_req *r, rctx_t *ctx,
		     const struct io_uring_sqe *sqe)
{
	struct rctx_cancel *gov = rctx_governor(ctx);
	int ret;

	memcpy(&r->sqe, sqe, sizeof(r->sqe));
	r->ctx = rctx_ref(ctx);
	if (gov) { /* a context that can end */
		ret = sentinel_arm(g, r);
		if (ret < 0) {
			rctx_unref(r->ctx);
			return ret;
		}
	}
	r->state = GREQ_QUEUED;
	queue_append(g, r);
	return 0;
}

#define GROUP_REFUSED_FLAGS (IOSQE_IO_LINK | IOSQE_IO_HARDLINK | IOSQE_CQE_SKIP_SUCCESS)

RCTX_API int rctx_group_submit(rctx_group_t *g, rctx_ring_t *ring, rctx_t *ctx,
			       const struct io_uring_sqe *sqe, rctx_cb_t cb, void *arg)
{
	ERRNO_GUARD;
	struct group_req *r;
	int ret;

	if (!g || !ring || !ctx_valid(ctx) || !sqe || !cb ||
	    (sqe->flags & GROUP_REFUSED_FLAGS))
		return -EINVAL;
	if (g->limit > 0 && g->ring != ring) {
		if (g->inflight || g->qhead)
			return -EXDEV;
		g->ring = ring;
	}
	r = rctx__malloc(sizeof(*r));
	if (!r)
		return -ENOMEM;
	memset(r, 0, offsetof(struct group_req, sqe));
	r->g = g;
	r->cb = cb;
	r->arg = arg;
	r->refs = 1;
	if (g->limit < 0 || rctx_err(ctx) || (g->inflight < g->limit && !g->qhead))
		ret = req_submit(g, ring, ctx, r, sqe);
	else
		ret = req_queue(g, r, ctx, sqe);
	if (ret < 0) {
		free(r);
		return ret;
	}
	rctx_ref(group_ctx(g));
	return 0;
}
