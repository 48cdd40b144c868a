/* SPDX-License-Identifier: MIT */
/*
 * Signal contexts (Go's signal.NotifyContext): rctx_with_signals().
 *
 * A process-wide table, one slot per signal number, under one lock: how
 * many live contexts watch the signal, the disposition saved before the
 * first of them, and the contexts. While the count is nonzero the library's
 * handler is installed; it touches nothing but atomics: it sets the
 * signal's pending flag and writes an eventfd (both async-signal-safe).
 *
 * The runtime thread keeps a read of that eventfd in flight on the keeper
 * ring (a kept request with a completion hook, lib/keeper.c). When it
 * completes, the thread (1) brings its own signal mask in line with the
 * table: a watched signal is unblocked on it, so that the signal is
 * delivered even when every application thread blocks it, and blocked again
 * (if it was) once no context watches it; (2) cancels, for each pending
 * signal, every context registered for it; (3) reads again. Creating and
 * destroying a context write the eventfd too, so the mask follows.
 *
 * A context registers at creation and unregisters in its destroy hook (its
 * last reference), so signals keep being caught after it fired, until it is
 * released, as Go's NotifyContext until stop(). The last one out restores
 * the saved disposition.
 */
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "internal.h"

struct sig_reg {
	struct hnode node;        /* in the slot's list */
	struct sig_ctx *owner;
	int sig;
};

struct sig_ctx {
	struct rctx_ext x;
	struct sig_ctx *fire_next; /* runtime thread: the contexts to cancel */
	int nreg;                  /* registered entries of reg[] */
	struct sig_reg reg[];
};

struct sig_slot {
	unsigned count;            /* live contexts watching the signal */
	struct sigaction saved;    /* the disposition before the first */
	struct hnode *ctxs;        /* their struct sig_reg */
	/* Runtime thread only: */
	bool rt_unblocked;         /* unblocked on the runtime thread by us */
	bool rt_was_blocked;       /* ... and blocked there before */
};

static struct {
	pthread_mutex_t lock;
	struct sig_slot slot[NSIG];
	bool reading;              /* the eventfd read is in flight */
	_Atomic int efd;           /* created once, never closed; -1 before */
	_Atomic int pending[NSIG]; /* set by the handler */
} st = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.efd = -1,
};

/* The handler: async-signal-safe only, errno preserved. */
static void on_signal(int sig, siginfo_t *si, void *uc)
{
	int saved = errno;
	uint64_t one = 1;

	(void)si;
	(void)uc;
	atomic_store_explicit(&st.pending[sig], 1, memory_order_seq_cst);
	if (write(atomic_load_explicit(&st.efd, memory_order_relaxed), &one,
		  sizeof(one)) < 0) {
		/* Cannot fail short of a counter overflow: nothing to do. */
	}
	errno = saved;
}

static void poke(void)
{
	eventfd_write(atomic_load_explicit(&st.efd, memory_order_relaxed), 1);
}

/* ---- the runtime thread's side ------------------------------------------ */

/* Unblock the watched signals on this (the runtime) thread, re-block the
 * ones no longer watched that were blocked before. */
static void sync_mask(void)
{
	sigset_t cur, unblock, block;

	pthread_sigmask(SIG_SETMASK, NULL, &cur);
	sigemptyset(&unblock);
	sigemptyset(&block);
	pthread_mutex_lock(&st.lock);
	for (int sig = 1; sig < NSIG; sig++) {
		struct sig_slot *s = &st.slot[sig];

		if (s->count && !s->rt_unblocked) {
			s->rt_unblocked = true;
			s->rt_was_blocked = sigismember(&cur, sig) == 1;
			if (s->rt_was_blocked)
				sigaddset(&unblock, sig);
		} else if (!s->count && s->rt_unblocked) {
			s->rt_unblocked = false;
			if (s->rt_was_blocked)
				sigaddset(&block, sig);
		}
	}
	pthread_mutex_unlock(&st.lock);
	pthread_sigmask(SIG_UNBLOCK, &unblock, NULL);
	pthread_sigmask(SIG_BLOCK, &block, NULL);
}

/* The live contexts registered for sig, each with a reference. */
static struct sig_ctx *take_watchers(int sig)
{
	struct sig_ctx *list = NULL;
	struct hnode *n;

	pthread_mutex_lock(&st.lock);
	for (n = st.slot[sig].ctxs; n; n = n->next) {
		struct sig_ctx *c = container_of(n, struct sig_reg, node)->owner;

		/* Skip one done already (no reference taken: a release
		 * is not delayed by signals after the first), and one whose
		 * last reference went (it waits for this lock to unregister). */
		if (!atomic_load_explicit(&c->x.cc.err, memory_order_acquire) &&
		    rctx__obj_tryget(&c->x.cc.c.hdr)) {
			c->fire_next = list;
			list = c;
		}
	}
	pthread_mutex_unlock(&st.lock);
	return list;
}

/* Cancel the contexts of every pending signal; no lock held while cancelling
 * (a last unref runs the destroy hook, which takes the table lock). */
static void fire_pending(void)
{
	for (int sig = 1; sig < NSIG; sig++) {
		struct sig_ctx *c, *next;

		if (!atomic_exchange_explicit(&st.pending[sig], 0, memory_order_seq_cst))
			continue;
		for (c = take_watchers(sig); c; c = next) {
			next = c->fire_next;
			rctx__cancel_tree(&c->x.cc, -ECANCELED, RCTX_CAUSE_SIGNAL_BASE - sig);
			rctx_unref(&c->x.cc.c.hdr);
		}
	}
}

static int reader_submit(struct rctx_kept *k)
{
	atomic_fetch_add_explicit(&k->refs, 1, memory_order_relaxed); /* the keeper's */
	atomic_store_explicit(&k->state, KEPT_QUEUED, memory_order_relaxed); /* again */
	k->ctx = rctx_background();
	return rctx__rt_keep(k);
}

/* A read that failed for want of memory or of submission room (the keeper
 * could not submit it): try again, or the live contexts would never fire. */
static bool read_retry(int res)
{
	return res >= 0 || res == -EINTR || res == -EAGAIN || res == -ENOMEM ||
	       res == -EBUSY;
}

/*
 * The eventfd read completed, on the runtime thread: follow the table, fire,
 * read again. Cancelled (the runtime is stopping) or failed for good: stop
 * reading; the next new context starts again.
 */
static void read_complete(struct rctx_kept *k)
{
	int res = k->res;

	if (res != -ECANCELED) {
		sync_mask();
		fire_pending();
	}
	if (read_retry(res)) {
		if (reader_submit(k) == 0)
			return;
		atomic_fetch_sub_explicit(&k->refs, 1, memory_order_relaxed);
	}
	pthread_mutex_lock(&st.lock);
	st.reading = false;
	pthread_mutex_unlock(&st.lock);
}

/* Under the lock: the eventfd exists and its read is on its way. */
static int reader_start_locked(void)
{
	struct rctx_kept *k;
	int ret;

	if (atomic_load_explicit(&st.efd, memory_order_relaxed) < 0) {
		int efd = rctx__eventfd(0, EFD_CLOEXEC);

		if (efd < 0)
			return -errno;
		atomic_store_explicit(&st.efd, efd, memory_order_relaxed);
	}
	if (st.reading)
		return 0;
	k = rctx__calloc(1, sizeof(*k));
	if (!k)
		return -ENOMEM;
	k->buf = rctx__malloc(sizeof(uint64_t));
	if (!k->buf) {
		free(k);
		return -ENOMEM;
	}
	/* A blocking eventfd: io_uring waits for it instead of -EAGAIN. */
	io_uring_prep_read(&k->sqe, atomic_load_explicit(&st.efd, memory_order_relaxed),
			   k->buf, sizeof(uint64_t), 0);
	k->complete = read_complete;
	ret = reader_submit(k); /* takes the keeper's reference: the only one */
	if (ret < 0) {
		free(k->buf);
		free(k);
		return ret;
	}
	st.reading = true;
	return 0;
}

/* ---- contexts ------------------------------------------------------------- */

/* Unregister c; the last context of a signal restores its disposition. */
static void sig_destroy(struct rctx_ext *x)
{
	struct sig_ctx *c = container_of(x, struct sig_ctx, x);

	if (!c->nreg)
		return;
	pthread_mutex_lock(&st.lock);
	for (int i = 0; i < c->nreg; i++) {
		struct sig_slot *s = &st.slot[c->reg[i].sig];

		hlist_del(&c->reg[i].node);
		if (!--s->count)
			sigaction(c->reg[i].sig, &s->saved, NULL);
	}
	pthread_mutex_unlock(&st.lock);
	poke(); /* the runtime re-blocks what it unblocked */
}

static const struct rctx_ext_ops sig_ops = {
	.name = "signal.NotifyContext",
	.destroy = sig_destroy,
};

/* Install the handler for sig if c is its first context, and register c. */
static int register_one(struct sig_ctx *c, int sig)
{
	struct sig_slot *s = &st.slot[sig];
	struct sig_reg *r = &c->reg[c->nreg];

	if (!s->count) {
		struct sigaction sa;

		memset(&sa, 0, sizeof(sa));
		sa.sa_sigaction = on_signal;
		sa.sa_flags = SA_SIGINFO | SA_RESTART;
		sigemptyset(&sa.sa_mask);
		if (sigaction(sig, &sa, &s->saved) < 0)
			return -errno;
	}
	s->count++;
	r->sig = sig;
	r->owner = c;
	hlist_add(&s->ctxs, &r->node);
	c->nreg++;
	return 0;
}

/* Register c for every signal of set. 0, or -errno: then c keeps what it
 * registered, for its destroy hook. */
static int register_all(struct sig_ctx *c, const sigset_t *set)
{
	int ret;

	pthread_mutex_lock(&st.lock);
	ret = reader_start_locked();
	for (int sig = 1; sig < NSIG && ret == 0; sig++)
		if (sigismember(set, sig) == 1)
			ret = register_one(c, sig);
	pthread_mutex_unlock(&st.lock);
	if (c->nreg)
		poke(); /* the runtime unblocks them */
	return ret;
}

static bool catchable(int sig)
{
	return sig > 0 && sig < NSIG && sig != SIGKILL && sig != SIGSTOP &&
	       (sig < 32 || sig >= SIGRTMIN); /* glibc keeps 32 and 33 */
}

/* The set of sigs[0..n-1] and its size, or -1 if one is invalid. */
static int sig_set(const int *sigs, int n, sigset_t *set)
{
	int count = 0;

	sigemptyset(set);
	for (int i = 0; i < n; i++) {
		if (!catchable(sigs[i]))
			return -1;
		if (sigismember(set, sigs[i]) != 1) {
			sigaddset(set, sigs[i]);
			count++;
		}
	}
	return count;
}

RCTX_API rctx_t *rctx_with_signals(rctx_t *parent, const int *sigs, int n)
{
	ERRNO_GUARD;
	struct rctx_ext *x;
	sigset_t set;
	int count;

	if (!ctx_valid(parent) || !sigs || n <= 0)
		return NULL;
	count = sig_set(sigs, n, &set);
	if (count < 0 || rctx__rt_start() < 0)
		return NULL;
	x = rctx__ext_new(parent, sizeof(struct sig_ctx) + count * sizeof(struct sig_reg),
			  &sig_ops, rctx__deadline_of(parent));
	if (!x)
		return NULL;
	if (rctx_err(&x->cc.c.hdr))
		return &x->cc.c.hdr; /* done at creation: nothing to watch */
	if (register_all(container_of(x, struct sig_ctx, x), &set) < 0) {
		rctx_release(&x->cc.c.hdr);
		return NULL;
	}
	return &x->cc.c.hdr;
}

RCTX_API int rctx_cause_signal(int cause)
{
	long long sig = (long long)RCTX_CAUSE_SIGNAL_BASE - cause;

	return sig > 0 && sig < NSIG ? (int)sig : 0;
}
