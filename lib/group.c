/* SPDX-License-Identifier: MIT */
/*
 * Groups: Go's errgroup with SetLimit.
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
 * Requests (rctx_group_submit) go through the group's request limiter
 * (lib/limiter.c), which holds a reference to the group's context per
 * request not completed.
 */
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

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
	struct rctx_limiter lim;     /* rctx_group_submit() */
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
	RCTX_ASSERT(!g->workers && !g->exited);
	rctx__limiter_fini(&g->lim);
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
	rctx__limiter_init(&g->lim, group_ctx(g), g->limit);
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
	rctx__unref(group_ctx(g)); /* requests still pending keep it */
}

RCTX_API int rctx_group_submit(rctx_group_t *g, rctx_ring_t *ring, rctx_t *ctx,
			       const struct io_uring_sqe *sqe, rctx_cb_t cb, void *arg)
{
	if (!g)
		return -EINVAL;
	return rctx__limiter_submit(&g->lim, ring, ctx, sqe, cb, arg);
}
