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
 * completes, the thread cancels, for each pending signal, every context
 * registered for it, and reads again. Its own signal mask never changes:
 * it sleeps with the watched signals unblocked (sig_wait_begin(), a
 * ppoll(2) mask), so that a signal every application thread blocks is
 * still delivered, and has them blocked whenever it runs. Creating a
 * context writes the eventfd too, so that the next sleep unblocks it.
 *
 * A context registers at creation and unregisters in its destroy hook (its
 * last reference), so signals keep being caught after it fired, until it is
 * released, as Go's NotifyContext until stop(). The last one out of a
 * signal restores its disposition before the destroy hook returns, hence
 * before the rctx_release() or rctx_unref() that dropped the reference
 * does: first it waits until the runtime thread is not ending that context
 * (the thread holds no reference while it does, see fire_one()) and is not
 * asleep with the signal unblocked (it wakes it), so that once the saved
 * disposition is back, no thread of the library takes the signal.
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
	struct sig_ctx *fire_next; /* on the fire list */
	int nreg;                  /* registered entries of reg[] */
	struct sig_reg reg[];
};

struct sig_slot {
	unsigned count;            /* live contexts watching the signal */
	struct sigaction saved;    /* the disposition before the first */
	struct hnode *ctxs;        /* their struct sig_reg */
};

static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;       /* fire_cur or rt_waiting changed */
	struct sig_slot slot[NSIG];
	sigset_t watched;          /* the signals whose count is nonzero */
	_Atomic bool any;          /* watched is not empty */
	/* The runtime thread's sleep, while it unblocks signals: */
	bool rt_waiting;
	sigset_t rt_unblocked;     /* ... those */
	/* The runtime thread's firing of one signal (fire_pending()): */
	struct sig_ctx *fire_list; /* contexts still to end */
	struct sig_ctx *fire_cur;  /* the one being ended */
	bool reading;              /* the eventfd read is in flight */
	_Atomic int efd;           /* created once, never closed; -1 before */
	_Atomic int pending[NSIG]; /* set by the handler */
} st = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.cond = PTHREAD_COND_INITIALIZER,
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

/*
 * Before the runtime thread sleeps: *mask is its mask without the watched
 * signals, if it blocks any of them (true; the sleep is then published,
 * and sig_wait_end() follows it). A context created after this wakes
 * the thread (poke()), whose next sleep then unblocks its signals too.
 */
static bool sig_wait_begin(sigset_t *mask)
{
	sigset_t unblock;
	bool masked;

	if (!atomic_load_explicit(&st.any, memory_order_acquire))
		return false;
	pthread_sigmask(SIG_SETMASK, NULL, mask);
	pthread_mutex_lock(&st.lock);
	sigandset(&unblock, &st.watched, mask);
	masked = !sigisemptyset(&unblock);
	if (masked) {
		for (int sig = 1; sig < NSIG; sig++)
			if (sigismember(&unblock, sig) == 1)
				sigdelset(mask, sig);
		st.rt_unblocked = unblock;
		st.rt_waiting = true;
	}
	pthread_mutex_unlock(&st.lock);
	return masked;
}

/* After that sleep: the runtime thread blocks them again. */
static void sig_wait_end(void)
{
	pthread_mutex_lock(&st.lock);
	st.rt_waiting = false;
	sigemptyset(&st.rt_unblocked);
	pthread_cond_broadcast(&st.cond);
	pthread_mutex_unlock(&st.lock);
}

/* Put the live contexts registered for sig on the fire list. */
static void collect_watchers(int sig)
{
	struct hnode *n;

	pthread_mutex_lock(&st.lock);
	for (n = st.slot[sig].ctxs; n; n = n->next) {
		struct sig_ctx *c = container_of(n, struct sig_reg, node)->owner;

		/* One done already stays so: a release is not delayed by
		 * signals after the first. */
		if (!atomic_load_explicit(&c->x.cc.err, memory_order_acquire)) {
			c->fire_next = st.fire_list;
			st.fire_list = c;
		}
	}
	pthread_mutex_unlock(&st.lock);
}

/*
 * End the next context of the fire list, with no lock held (a cancel may
 * drop the last reference of another signal context, whose destroy hook
 * takes the lock). No reference is taken either: its last one, dropped
 * by the application meanwhile, would otherwise be this thread's, and the
 * restore with it, after the release returned. Instead the destroy hook
 * takes the context off the list, or waits while it is fire_cur. If it
 * runs on this thread, it runs inside this very cancel (the cancel's
 * deferred work dropped the last reference): it clears fire_cur, and the
 * memory goes once the cancel is past its last use of it (cancel_tree()
 * touches the context it ends no more after its deferred work).
 */
static bool fire_one(int sig)
{
	struct sig_ctx *c;

	pthread_mutex_lock(&st.lock);
	c = st.fire_list;
	if (c) {
		st.fire_list = c->fire_next;
		st.fire_cur = c;
	}
	pthread_mutex_unlock(&st.lock);
	if (!c)
		return false;
	rctx__cancel_tree(&c->x.cc, -ECANCELED, RCTX_CAUSE_SIGNAL_BASE - sig);
	pthread_mutex_lock(&st.lock);
	st.fire_cur = NULL;
	pthread_cond_broadcast(&st.cond);
	pthread_mutex_unlock(&st.lock);
	return true;
}

/* Cancel the contexts of every pending signal. */
static void fire_pending(void)
{
	for (int sig = 1; sig < NSIG; sig++) {
		if (!atomic_exchange_explicit(&st.pending[sig], 0, memory_order_seq_cst))
			continue;
		collect_watchers(sig);
		while (fire_one(sig))
			;
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
 * The eventfd read completed, on the runtime thread: fire, read again.
 * Cancelled (the runtime is stopping) or failed for good: stop reading;
 * the next new context starts again.
 */
static void read_complete(struct rctx_kept *k)
{
	int res = k->res;

	if (res != -ECANCELED)
		fire_pending();
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

/* Under the lock: take c out of the table; *gone gets the signals it was
 * the last to watch. */
static void unregister_locked(struct sig_ctx *c, sigset_t *gone)
{
	for (int i = 0; i < c->nreg; i++) {
		int sig = c->reg[i].sig;

		hlist_del(&c->reg[i].node);
		if (!--st.slot[sig].count) {
			sigdelset(&st.watched, sig);
			sigaddset(gone, sig);
		}
	}
	c->nreg = 0;
	atomic_store_explicit(&st.any, !sigisemptyset(&st.watched), memory_order_release);
}

/* Under the lock: the runtime thread will not touch c again (fire_one()). */
static void unfire_locked(struct sig_ctx *c)
{
	struct sig_ctx **pp;

	for (pp = &st.fire_list; *pp; pp = &(*pp)->fire_next) {
		if (*pp == c) {
			*pp = c->fire_next;
			break;
		}
	}
	if (st.fire_cur == c && rctx__rt_self())
		st.fire_cur = NULL; /* inside its own cancel */
	while (st.fire_cur == c)
		pthread_cond_wait(&st.cond, &st.lock);
}

/* Under the lock: no sleep of the runtime thread unblocks a signal of gone
 * (the current one is cut short; the next ones follow the table). */
static void unmask_wait_locked(const sigset_t *gone)
{
	sigset_t both;

	for (;;) {
		sigandset(&both, &st.rt_unblocked, gone);
		if (!st.rt_waiting || sigisemptyset(&both))
			return;
		rctx__rt_kick();
		pthread_cond_wait(&st.cond, &st.lock);
	}
}

/* Unregister c; the last context of a signal restores its disposition. */
static void sig_destroy(struct rctx_ext *x)
{
	struct sig_ctx *c = container_of(x, struct sig_ctx, x);
	sigset_t gone;

	if (!c->nreg)
		return;
	sigemptyset(&gone);
	pthread_mutex_lock(&st.lock);
	unregister_locked(c, &gone);
	unfire_locked(c);
	unmask_wait_locked(&gone);
	for (int sig = 1; sig < NSIG; sig++)
		if (sigismember(&gone, sig) == 1)
			sigaction(sig, &st.slot[sig].saved, NULL);
	pthread_mutex_unlock(&st.lock);
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

		/* A flag left by a signal taken before: not for c. */
		atomic_store_explicit(&st.pending[sig], 0, memory_order_seq_cst);
		memset(&sa, 0, sizeof(sa));
		sa.sa_sigaction = on_signal;
		sa.sa_flags = SA_SIGINFO | SA_RESTART;
		sigemptyset(&sa.sa_mask);
		if (sigaction(sig, &sa, &s->saved) < 0)
			return -errno;
	}
	if (!s->count++) {
		sigaddset(&st.watched, sig);
		atomic_store_explicit(&st.any, true, memory_order_release);
	}
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

	rctx__rt_sleep_hooks(sig_wait_begin, sig_wait_end);
	pthread_mutex_lock(&st.lock);
	ret = reader_start_locked();
	for (int sig = 1; sig < NSIG && ret == 0; sig++)
		if (sigismember(set, sig) == 1)
			ret = register_one(c, sig);
	pthread_mutex_unlock(&st.lock);
	if (c->nreg)
		poke(); /* the runtime's next sleep unblocks them */
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
	int count, ret;

	if (!ctx_valid(parent) || !sigs || n <= 0)
		return ERRNO_FAIL(EINVAL);
	count = sig_set(sigs, n, &set);
	if (count < 0)
		return ERRNO_FAIL(EINVAL);
	ret = rctx__rt_start();
	if (ret < 0)
		return ERRNO_FAIL(-ret);
	x = rctx__ext_new(parent, sizeof(struct sig_ctx) + count * sizeof(struct sig_reg),
			  &sig_ops, rctx__deadline_of(parent));
	if (!x)
		return ERRNO_FAIL(ENOMEM);
	if (rctx_err(&x->cc.c.hdr))
		return &x->cc.c.hdr; /* done at creation: nothing to watch */
	ret = register_all(container_of(x, struct sig_ctx, x), &set);
	if (ret < 0) {
		rctx_release(&x->cc.c.hdr);
		return ERRNO_FAIL(-ret);
	}
	return &x->cc.c.hdr;
}

RCTX_API int rctx_cause_signal(int cause)
{
	long long sig = (long long)RCTX_CAUSE_SIGNAL_BASE - cause;

	return sig > 0 && sig < NSIG ? (int)sig : 0;
}
