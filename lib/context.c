/* SPDX-License-Identifier: MIT */
/*
 * The context tree: constructors, references, cancellation cascade, queries.
 *
 * Cancellation follows Go's cancelCtx: a cancellable context keeps its
 * cancellable children, after-func records and merge links in a child set
 * under its own lock. Cancelling a context ends it under its lock, then walks
 * its subtree iteratively (no recursion, no allocation), top-down: each child
 * is taken out of the set and ended under its own lock, which is held until
 * the child's whole subtree is done. The walk takes no reference on the
 * children: while a governor is locked its children cannot be freed (their
 * free path takes that lock). What may not run under those locks (ended()
 * hooks, the owners of merge links) is deferred to the end of the walk, with
 * a reference taken only if the object is still live (rctx__obj_tryget);
 * a detached after-func record's registration reference passes to the walk.
 * Joining and leaving a child set (rctx__child_add(), rctx__child_del())
 * are written here once, for every kind of canceler: child contexts,
 * after-func records, merge links.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static struct rctx background_ctx = { .refs = 1, .kind = RCTX_BACKGROUND };
static struct rctx todo_ctx = { .refs = 1, .kind = RCTX_TODO };

RCTX_API rctx_t *rctx_background(void) { return &background_ctx; }
RCTX_API rctx_t *rctx_todo(void) { return &todo_ctx; }

static bool is_root(const struct rctx *c)
{
	return c->kind == RCTX_BACKGROUND || c->kind == RCTX_TODO;
}

/* ---- references ---------------------------------------------------------- */

void rctx__obj_get(struct rctx *c)
{
	atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
}

/* A reference to an object found in a child set under its governor's lock,
 * unless its last reference is gone (its free path waits for that lock). */
bool rctx__obj_tryget(struct rctx *c)
{
	uint32_t n = atomic_load_explicit(&c->refs, memory_order_relaxed);

	while (n)
		if (atomic_compare_exchange_weak_explicit(&c->refs, &n, n + 1,
				memory_order_relaxed, memory_order_relaxed))
			return true;
	return false;
}

/* ---- the child set ------------------------------------------------------ */

/* Under the governor's lock err is 0 or final, never ERR_ENDING: a cancel
 * stores the final error before it unlocks. */
int rctx__child_add(struct rctx_canceler *k, int *cause)
{
	struct rctx_cancel *g = rctx_governor(k->hdr.parent);
	int e;

	if (!g)
		return 0;
	rlock(&g->lock);
	e = atomic_load_explicit(&g->err, memory_order_relaxed);
	if (e)
		*cause = g->cause;
	else
		hlist_add(&g->children, &k->sib);
	runlock(&g->lock);
	return e;
}

bool rctx__child_del(struct rctx_canceler *k)
{
	struct rctx_cancel *g = rctx_governor(k->hdr.parent);
	bool in;

	if (!g)
		return false;
	rlock(&g->lock);
	in = k->sib.pprev != NULL;
	if (in)
		hlist_del(&k->sib);
	runlock(&g->lock);
	return in;
}

/* Free one object whose count reached zero; return its parent. */
static struct rctx *obj_free(struct rctx *c)
{
	struct rctx *parent = c->parent;

	switch (c->kind) {
	case RCTX_EXT: {
		struct rctx_ext *x = (struct rctx_ext *)c;

		if (x->ops->destroy)
			x->ops->destroy(x);
	}
		/* fall through */
	case RCTX_CANCEL:
	case RCTX_DEADLINE:
		rctx__child_del(&((struct rctx_cancel *)c)->c);
		rctx__done_close((struct rctx_cancel *)c);
		break;
	case RCTX_AFTER:
		/* A record at zero has been detached by whoever dropped its
		 * registration reference. */
		break;
	default:
		break;
	}
	rctx__pool_put(c, c->pool, c->home);
	return parent;
}

void rctx__obj_put(struct rctx *c)
{
	/* Iterative, so that freeing a long chain does not recurse. */
	while (c && !is_root(c)) {
		if (atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) != 1)
			return;
		c = obj_free(c);
	}
}

static bool cancel_tree(struct rctx_cancel *root, int err, int cause, bool from_timer);

/* A reference of the library's own: never one of the user's (see
 * users_put()). */
rctx_t *rctx__ref(rctx_t *ctx)
{
	if (!is_root(ctx))
		rctx__obj_get(ctx);
	return ctx;
}

void rctx__unref(rctx_t *ctx)
{
	rctx__obj_put(ctx);
}

/*
 * The references the user holds on a context whose kernel watch keeps it
 * alive (an fd or hang-up context: its poll holds references until it
 * fires). Counted apart from the library's, so that dropping the user's
 * last one ends the watch, whichever call drops it: such a context never
 * outlives the last reference its owners hold.
 */
static struct rctx_ext *user_counted(rctx_t *ctx)
{
	struct rctx_ext *x;

	if (ctx->kind != RCTX_EXT)
		return NULL;
	x = (struct rctx_ext *)ctx;
	return x->ops->end_unowned ? x : NULL;
}

/* True if ctx's user references just went to zero. */
static bool users_put(rctx_t *ctx)
{
	struct rctx_ext *x = user_counted(ctx);

	return x && atomic_fetch_sub_explicit(&x->users, 1, memory_order_acq_rel) == 1;
}

RCTX_API rctx_t *rctx_ref(rctx_t *ctx)
{
	struct rctx_ext *x;

	if (unlikely(!ctx)) {
		errno = EINVAL;
		return NULL;
	}
	x = user_counted(ctx);
	if (x)
		atomic_fetch_add_explicit(&x->users, 1, memory_order_relaxed);
	return rctx__ref(ctx);
}

RCTX_API void rctx_unref(rctx_t *ctx)
{
	ERRNO_GUARD;
	if (!ctx_valid(ctx))
		return;
	if (users_put(ctx))
		cancel_tree((struct rctx_cancel *)ctx, -ECANCELED, 0, false);
	rctx__obj_put(ctx);
}

/* ---- construction -------------------------------------------------------- */

static int64_t effective_deadline(const struct rctx *c)
{
	const struct rctx_cancel *g = rctx_governor(c);

	return g ? g->deadline : RCTX_FOREVER;
}

int64_t rctx__deadline_of(const struct rctx *c)
{
	return effective_deadline(c);
}

/*
 * Register a new cancellable context with its parent's governor, or make it
 * done at once with the governor's error and cause. Returns true if it was
 * registered (it can be cancelled later by the parent).
 */
static bool cancel_attach(struct rctx_cancel *c)
{
	int cause, e = rctx__child_add(&c->c, &cause);

	if (e) { /* c is not shared yet */
		c->cause = cause;
		c->done_ns = c->created_ns;
		atomic_store_explicit(&c->err, e, memory_order_release);
	}
	return e == 0;
}

/* A new object of size bytes with its header set (one reference, holding
 * one on parent), or NULL and errno ENOMEM. */
static inline __attribute__((always_inline))
void *obj_new(size_t size, enum rctx_kind kind, struct rctx *parent)
{
	uint8_t cls = pool_class(size), home;
	struct rctx *c = rctx__pool_get(size, cls, &home);

	if (unlikely(!c)) {
		errno = ENOMEM;
		return NULL;
	}
	hdr_init(c, kind, parent, 1);
	c->pool = cls;
	c->home = home;
	return c;
}

/* A new cancellable context (size bytes: a struct rctx_cancel or one that
 * starts with it) created at now, not yet attached to its parent's
 * governor. */
static inline __attribute__((always_inline))
struct rctx_cancel *cancel_new(size_t size, enum rctx_kind kind,
		      struct rctx *parent, int64_t deadline, int64_t now)
{
	struct rctx_cancel *c = obj_new(size, kind, parent);

	if (!c)
		return NULL;
	c->c.sib.next = NULL;
	c->c.sib.pprev = NULL;
	atomic_init(&c->lock.v, 0);
	atomic_init(&c->err, 0);
	c->cause = 0;
	atomic_init(&c->done_fd, -1);
	c->children = NULL;
	c->reqs = NULL;
	c->deadline = deadline;
	c->created_ns = now;
	c->done_ns = 0;
	c->submitted = 0;
	c->completed = 0;
	c->aborted = 0;
	c->abandoned = 0;
	c->late = 0;
	return c;
}

/* WithCancel, created at now (the caller's one clock reading); NULL and
 * errno ENOMEM. */
static rctx_t *with_cancel_at(rctx_t *parent, int64_t now)
{
	struct rctx_cancel *c;

	c = cancel_new(sizeof(*c), RCTX_CANCEL, parent, effective_deadline(parent), now);
	if (!c)
		return NULL;
	cancel_attach(c);
	return &c->c.hdr;
}

RCTX_API rctx_t *rctx_with_cancel(rctx_t *parent)
{
	ERRNO_GUARD;

	rctx_t *c;

	if (!ctx_valid(parent))
		return ERRNO_FAIL(EINVAL);
	c = with_cancel_at(parent, clock_coarse_ns());
	return c ? c : ERRNO_FAIL(errno);
}

struct rctx_ext *rctx__ext_new(struct rctx *parent, size_t size,
			       const struct rctx_ext_ops *ops, int64_t deadline)
{
	struct rctx_cancel *c = cancel_new(size, RCTX_EXT, parent, deadline,
					   clock_coarse_ns());
	struct rctx_ext *x;

	if (!c)
		return NULL;
	x = container_of(c, struct rctx_ext, cc);
	memset((char *)x + offsetof(struct rctx_ext, ops), 0,
	       size - offsetof(struct rctx_ext, ops));
	x->ops = ops;
	atomic_init(&x->users, 1); /* the creator's */
	cancel_attach(c);
	return x;
}

/* WithDeadline, with now the caller's one clock reading: the creation time
 * and what abs_ns is compared with. NULL and errno EINVAL (parent), ENOMEM,
 * or why the runtime thread cannot take the deadline (rctx__rt_start()). */
static rctx_t *with_deadline_at(rctx_t *parent, int64_t abs_ns, int cause,
				int64_t now)
{
	struct rctx_cancel *c;
	struct rctx_deadline *d;
	int ret;

	if (!ctx_valid(parent)) {
		errno = EINVAL;
		return NULL;
	}
	/* No deadline, or the parent's is sooner: a plain cancel context (as
	 * Go), which never takes a place in the runtime's deadline heap. */
	if (abs_ns == RCTX_FOREVER || effective_deadline(parent) < abs_ns)
		return with_cancel_at(parent, now);
	c = cancel_new(sizeof(*d), RCTX_DEADLINE, parent, abs_ns, now);
	if (!c)
		return NULL;
	d = container_of(c, struct rctx_deadline, cc);
	d->arm_next = NULL;
	d->remove_next = NULL;
	d->timeout_cause = cause;
	d->tstate = 0;
	if (!cancel_attach(&d->cc))
		return &d->cc.c.hdr;
	if (abs_ns <= now) {
		rctx__timer_expired(d); /* no timer was armed */
		return &d->cc.c.hdr;
	}
	/* context -> runtime: the runtime keeps the timers (inherent). */
	ret = rctx__rt_arm_deadline(d);
	if (ret < 0) {
		rctx_release(&d->cc.c.hdr);
		errno = -ret;
		return NULL;
	}
	return &d->cc.c.hdr;
}

RCTX_API rctx_t *rctx_with_deadline_cause(rctx_t *parent, int64_t abs_ns, int cause)
{
	ERRNO_GUARD;
	rctx_t *c;

	/* A plain cancel context (below) needs no precise reading. */
	if (ctx_valid(parent) &&
	    (abs_ns == RCTX_FOREVER || effective_deadline(parent) < abs_ns))
		c = with_cancel_at(parent, clock_coarse_ns());
	else
		c = with_deadline_at(parent, abs_ns, cause, rctx_now());
	return c ? c : ERRNO_FAIL(errno);
}

RCTX_API rctx_t *rctx_with_deadline(rctx_t *parent, int64_t abs_ns)
{
	return rctx_with_deadline_cause(parent, abs_ns, 0);
}

RCTX_API rctx_t *rctx_with_timeout_cause(rctx_t *parent, int64_t rel_ns, int cause)
{
	ERRNO_GUARD;
	int64_t now = rctx_now(), abs_ns;
	rctx_t *c;

	if (rel_ns < 0 || __builtin_add_overflow(now, rel_ns, &abs_ns) ||
	    abs_ns == RCTX_FOREVER)
		return ERRNO_FAIL(EINVAL);
	c = with_deadline_at(parent, abs_ns, cause, now);
	return c ? c : ERRNO_FAIL(errno);
}

RCTX_API rctx_t *rctx_with_timeout(rctx_t *parent, int64_t rel_ns)
{
	return rctx_with_timeout_cause(parent, rel_ns, 0);
}

/* A new value node for n pairs (not yet set) and extra bytes after them. */
static inline __attribute__((always_inline))
struct rctx_value *value_new(struct rctx *parent, size_t n, size_t extra)
{
	struct rctx_value *v = obj_new(sizeof(*v) + n * sizeof(v->kv[0]) + extra,
				       RCTX_VALUE, parent);

	if (!v)
		return NULL;
	v->n = n;
	v->canc = rctx_governor(parent);
	return v;
}

RCTX_API rctx_t *rctx_with_value(rctx_t *parent, const void *key, void *val)
{
	ERRNO_GUARD;
	struct rctx_value *v;

	if (!ctx_valid(parent) || !key)
		return ERRNO_FAIL(EINVAL);
	v = value_new(parent, 1, 0);
	if (!v)
		return ERRNO_FAIL(ENOMEM);
	v->kv[0].key = key;
	v->kv[0].val = val;
	return &v->hdr;
}

RCTX_API rctx_t *rctx_with_values(rctx_t *parent, size_t n, const void *const *keys,
				  void *const *vals)
{
	ERRNO_GUARD;
	struct rctx_value *v;
	size_t i;

	if (!ctx_valid(parent) || !keys || !vals || n == 0 || n > RCTX_VALUES_MAX)
		return ERRNO_FAIL(EINVAL);
	for (i = 0; i < n; i++)
		if (!keys[i])
			return ERRNO_FAIL(EINVAL);
	v = value_new(parent, n, 0);
	if (!v)
		return ERRNO_FAIL(ENOMEM);
	for (i = 0; i < n; i++) {
		v->kv[i].key = keys[i];
		v->kv[i].val = vals[i];
	}
	return &v->hdr;
}

struct rctx *rctx__value_blob(struct rctx *parent, const void *key, size_t size,
			      void **blob)
{
	const size_t align = _Alignof(max_align_t);
	size_t off = (sizeof(struct rctx_value) + sizeof(struct rctx_kv) + align - 1) &
		     ~(align - 1);
	struct rctx_value *v;

	if (!ctx_valid(parent) || !key || size > SIZE_MAX - off) {
		errno = EINVAL;
		return NULL;
	}
	v = value_new(parent, 1, off - sizeof(*v) - sizeof(v->kv[0]) + size);
	if (!v)
		return NULL; /* errno ENOMEM */
	*blob = (char *)v + off;
	memset(*blob, 0, size);
	v->kv[0].key = key;
	v->kv[0].val = *blob;
	return &v->hdr;
}

RCTX_API rctx_t *rctx_without_cancel(rctx_t *parent)
{
	ERRNO_GUARD;
	struct rctx_without *w;

	if (!ctx_valid(parent))
		return ERRNO_FAIL(EINVAL);
	w = obj_new(sizeof(*w), RCTX_WITHOUT, parent);
	return w ? &w->hdr : ERRNO_FAIL(ENOMEM);
}

/* ---- cancellation -------------------------------------------------------- */

/*
 * End c, whose lock the caller holds: publish its cause and ERR_ENDING (the
 * done fd is signalled first), queue its requests' cancels, and drop its
 * timer unless the timer is what ends it. After-func records stay in the
 * child set; the walk handles them.
 */
static void end_locked(struct rctx_cancel *c, int cause, struct cancel_batch *b,
		       bool from_timer, int64_t now)
{
	RLOCK_ASSERT_HELD(&c->lock);
	/* now was read before this lock: a child created meanwhile may be
	 * younger than it. */
	c->done_ns = now > c->created_ns ? now : c->created_ns;
	/* ERR_ENDING until the whole subtree is done (finish_node): a
	 * reader that sees it waits for this lock, so seeing a context done
	 * means its subtree is done too. */
	c->cause = cause;
	atomic_store_explicit(&c->err, ERR_ENDING, memory_order_seq_cst);
	rctx__done_signal_locked(c);
	/* context -> ring, context -> runtime: a cancel reaches the
	 * requests and the timer of what it ends (inherent). */
	if (c->reqs)
		rctx__ring_cancel_reqs_locked(c, b);
	if (c->c.hdr.kind == RCTX_DEADLINE && !from_timer)
		rctx__rt_remove_deadline((struct rctx_deadline *)c);
}

/*
 * An after-func record detached by the walk (its registration reference is
 * ours now): queue it for the runtime thread, or, if a stop won the race or
 * there is no runtime, keep it on *stopped to be put once nothing is locked.
 */
static void fire_after(struct rctx_after *a, struct rctx_after **stopped)
{
	int armed = AFTER_ARMED;

	if (!atomic_compare_exchange_strong_explicit(&a->state, &armed, AFTER_QUEUED,
			memory_order_acq_rel, memory_order_acquire) ||
	    !rctx__rt_queue_after(a)) { /* context -> runtime: it runs them */
		a->run_next = *stopped;
		*stopped = a;
	}
}

/* Lock child and end it; NULL (unlocked) if it was done already. */
static struct rctx_cancel *enter_child(struct rctx_cancel *child, int cause,
				       struct cancel_batch *b, int64_t now)
{
	rlock(&child->lock);
	if (atomic_load_explicit(&child->err, memory_order_relaxed)) {
		runlock(&child->lock);
		return NULL;
	}
	end_locked(child, cause, b, false, now);
	return child;
}

/*
 * What a cancel does once no lock is held: the after-func records it could
 * not queue, and the ended() hooks of the extended contexts it ended.
 */
struct cancel_defer {
	struct rctx_after *stopped;
	struct rctx_ext *ended;
	struct rctx_link *links;
};

/* An extended context ended by the walk (locked, in its parent's child
 * set): its hook runs after the walk, with a reference. */
static void defer_ended(struct rctx_cancel *c, struct cancel_defer *d)
{
	struct rctx_ext *x = container_of(c, struct rctx_ext, cc);

	if (x->ops->ended && rctx__obj_tryget(&c->c.hdr)) {
		x->ended_next = d->ended;
		d->ended = x;
	}
}

/* A link detached by the walk: its owner is cancelled after the walk with
 * the walk's error and cause, unless its last reference is gone (its free
 * path waits for the lock the walk holds, then finds it detached). */
static void defer_link(struct rctx_link *l, int err, int cause,
		       struct cancel_defer *d)
{
	if (rctx__obj_tryget(&l->owner->cc.c.hdr)) {
		l->err = err;
		l->cause = cause;
		l->fire_next = d->links;
		d->links = l;
	}
}

/*
 * cur's subtree is done: publish its final error, unlock it and wake its
 * waiters. Returns its governor, which the walk holds locked (NULL at root).
 */
static struct rctx_cancel *finish_node(struct rctx_cancel *root,
				       struct rctx_cancel *cur, int err,
				       struct cancel_defer *d)
{
	struct rctx_cancel *up = cur == root ? NULL : rctx_governor(cur->c.hdr.parent);

	RCTX_ASSERT(!cur->children);
	if (cur != root && cur->c.hdr.kind == RCTX_EXT)
		defer_ended(cur, d);
	atomic_store_explicit(&cur->err, err, memory_order_seq_cst);
	runlock(&cur->lock);
	rctx__done_wake(cur);
	return up;
}

/*
 * Cancel the subtree of root (ended and locked by the caller) the way Go
 * does: each node's lock is held until its whole subtree is done, so a
 * concurrent cancel that reaches a node of this subtree waits for it, and
 * rctx_cancel() never returns while a descendant is still live. The walk is
 * iterative (the path is the chain of locked governors, no recursion, no
 * allocation) and locks only top-down, the same order as every other path,
 * which never holds two context locks. While a node is locked its children
 * cannot be freed (their free path takes it), so the walk needs no
 * references. Returns root unlocked.
 */
static void cancel_subtree(struct rctx_cancel *root, int err, int cause,
			   struct cancel_batch *b, struct cancel_defer *d,
			   int64_t now)
{
	struct rctx_cancel *cur = root;

	while (cur) {
		struct hnode *h = cur->children;
		struct rctx_canceler *k;
		struct rctx_cancel *child;

		if (!h) {
			cur = finish_node(root, cur, err, d);
			continue;
		}
		hlist_del(h);
		k = container_of(h, struct rctx_canceler, sib);
		if (k->hdr.kind == RCTX_AFTER) {
			fire_after((struct rctx_after *)k, &d->stopped);
			continue;
		}
		if (k->hdr.kind == RCTX_LINK) {
			defer_link((struct rctx_link *)k, err, cause, d);
			continue;
		}
		child = enter_child((struct rctx_cancel *)k, cause, b, now);
		if (child)
			cur = child;
	}
}

static bool cancel_tree(struct rctx_cancel *root, int err, int cause, bool from_timer);

/*
 * Cancel the owners of the links a walk detached. The owner of one may hold
 * links of its own (a merge of a merge): cancelling it here would recurse
 * once per level of such a chain. Instead the outermost call on a thread
 * drains a per-thread queue, to which the nested calls only add, so the
 * depth stays at one nested cancel whatever the chain; the outermost cancel
 * still returns only once the whole chain is done.
 */
static __thread struct rctx_link *links_queue;
static __thread bool links_draining;

static void fire_links(struct rctx_link *l)
{
	while (l) {
		struct rctx_link *next = l->fire_next;

		l->fire_next = links_queue;
		links_queue = l;
		l = next;
	}
	if (links_draining)
		return;
	links_draining = true;
	while ((l = links_queue)) {
		struct rctx_ext *owner = l->owner;

		links_queue = l->fire_next;
		cancel_tree(&owner->cc, l->err, l->cause, false);
		rctx__obj_put(&owner->cc.c.hdr);
	}
	links_draining = false;
}

/* Drop the after-func records the walk could not queue, run the ended()
 * hooks it deferred and cancel the owners of the links it detached. */
static void run_deferred(struct cancel_defer *d)
{
	struct rctx_after *a = d->stopped;
	struct rctx_ext *x = d->ended;

	while (a) {
		struct rctx_after *next = a->run_next;

		rctx__obj_put(&a->c.hdr);
		a = next;
	}
	while (x) {
		struct rctx_ext *next = x->ended_next;

		x->ops->ended(x);
		rctx__obj_put(&x->cc.c.hdr);
		x = next;
	}
	if (d->links)
		fire_links(d->links);
}

/*
 * Cancel root and its subtree with err and cause (err if 0), then take root
 * out of its parent's child set. False if root was done already. One clock
 * reading stamps every node it ends: the coarse clock, but for an expired
 * timer, whose stamp must not precede the deadline.
 */
static bool cancel_tree(struct rctx_cancel *root, int err, int cause, bool from_timer)
{
	struct cancel_batch b = { .n = 0 };
	struct cancel_defer d = { NULL, NULL, NULL };
	int e = atomic_load_explicit(&root->err, memory_order_acquire);
	int64_t now;

	/* Done and settled: no lock, no clock (a release after a cancel). */
	if (e && e != ERR_ENDING)
		return false;
	now = from_timer ? rctx_now() : clock_coarse_ns();
	if (cause == 0)
		cause = err;
	rlock(&root->lock);
	if (atomic_load_explicit(&root->err, memory_order_relaxed)) {
		runlock(&root->lock);
		return false;
	}
	end_locked(root, cause, &b, from_timer, now);
	cancel_subtree(root, err, cause, &b, &d, now);
	/* context -> ring: the inherent call back into rings (wake-ups). */
	rctx__ring_wake_batch(&b);
	rctx__child_del(&root->c);
	if (root->c.hdr.kind == RCTX_EXT) {
		struct rctx_ext *x = container_of(root, struct rctx_ext, cc);

		if (x->ops->ended)
			x->ops->ended(x); /* the caller holds a reference */
	}
	run_deferred(&d);
	return true;
}

bool rctx__cancel_tree(struct rctx_cancel *c, int err, int cause)
{
	return cancel_tree(c, err, cause, false);
}

bool rctx__timer_expired(struct rctx_deadline *d)
{
	return cancel_tree(&d->cc, -ETIMEDOUT, d->timeout_cause, true);
}

/*
 * If ctx's deadline has passed, end the deadline context that owns it now,
 * without waiting for its timer (which then finds it done). Any thread may
 * do this: it is what the timer would do. Returns ctx's error afterwards.
 */
int rctx__expire_due(const struct rctx *ctx)
{
	const struct rctx_cancel *g = rctx_governor(ctx);
	const struct rctx *c;

	if (!g || g->deadline == RCTX_FOREVER || cancel_err(g) ||
	    rctx_now() < g->deadline)
		return g ? cancel_err(g) : 0;
	for (c = &g->c.hdr; c && c->kind != RCTX_WITHOUT; c = c->parent) {
		if (c->kind == RCTX_DEADLINE &&
		    ((const struct rctx_cancel *)c)->deadline == g->deadline) {
			struct rctx_deadline *d = (struct rctx_deadline *)c;

			cancel_tree(&d->cc, -ETIMEDOUT, d->timeout_cause, false);
			break;
		}
	}
	return cancel_err(g);
}

RCTX_API int rctx_cancel_cause(rctx_t *ctx, int cause)
{
	ERRNO_GUARD;
	if (!ctx || !kind_cancellable(ctx))
		return -EINVAL;
	return cancel_tree((struct rctx_cancel *)ctx, -ECANCELED, cause, false) ? 1 : 0;
}

RCTX_API int rctx_cancel(rctx_t *ctx)
{
	return rctx_cancel_cause(ctx, 0);
}

RCTX_API void rctx_release(rctx_t *ctx)
{
	ERRNO_GUARD;
	if (!ctx_valid(ctx))
		return;
	users_put(ctx);
	if (kind_cancellable(ctx))
		cancel_tree((struct rctx_cancel *)ctx, -ECANCELED, 0, false);
	rctx__obj_put(ctx);
}

/* ---- queries ------------------------------------------------------------- */

RCTX_API int rctx_err(const rctx_t *ctx)
{
	const struct rctx_cancel *g;

	if (unlikely(!ctx))
		return -EINVAL;
	g = rctx_governor(ctx);
	return g ? cancel_err(g) : 0;
}

RCTX_API int rctx_cause(const rctx_t *ctx)
{
	const struct rctx_cancel *g;

	if (!ctx)
		return -EINVAL;
	g = rctx_governor(ctx);
	if (!g || !cancel_err(g))
		return 0;
	return g->cause; /* published by the release store of err */
}

RCTX_API int64_t rctx_remaining(const rctx_t *ctx)
{
	int64_t d, left;

	if (!ctx_valid(ctx))
		return -EINVAL;
	d = effective_deadline(ctx);
	if (d == RCTX_FOREVER)
		return RCTX_FOREVER;
	if (__builtin_sub_overflow(d, rctx_now(), &left) || left < 0)
		return 0;
	return left;
}

RCTX_API bool rctx_deadline(const rctx_t *ctx, int64_t *abs_ns)
{
	int64_t d;

	if (!ctx_valid(ctx))
		return false;
	d = effective_deadline(ctx);
	if (d == RCTX_FOREVER)
		return false;
	if (abs_ns)
		*abs_ns = d;
	return true;
}

/*
 * Walk up from c. An extended context with values of its own (a merge) is
 * searched after its parent's whole chain: one level of recursion per such
 * context on the chain.
 */
bool rctx__value_lookup(const struct rctx *c, const void *key, void **val)
{
	for (; c; c = c->parent) {
		if (c->kind == RCTX_VALUE) {
			const struct rctx_value *v = (const struct rctx_value *)c;
			size_t i = v->n;

			while (i--) {
				if (v->kv[i].key == key) {
					*val = v->kv[i].val;
					return true;
				}
			}
		} else if (c->kind == RCTX_EXT) {
			const struct rctx_ext *x = (const struct rctx_ext *)c;

			if (x->ops->value)
				return rctx__value_lookup(c->parent, key, val) ||
				       x->ops->value(x, key, val);
		} else if (c->kind >= RCTX_AFTER) {
			return false;
		}
	}
	return false;
}

RCTX_API void *rctx_value(const rctx_t *ctx, const void *key)
{
	void *val;

	if (unlikely(!ctx || !key)) {
		errno = EINVAL;
		return NULL;
	}
	if (!rctx__value_lookup(ctx, key, &val))
		return NULL;
	return val;
}

/*
 * Part i of one context's description, e.g. ".WithCancel", into seg (always
 * fits: the longest is a deadline). A context has one part, a value node one
 * per pair (as that many nested WithValue nodes). now is read once per
 * format so that both passes below agree on every part's length. Returns
 * its length.
 */
#define FMT_SEG_MAX 128

static unsigned fmt_nsegs(const struct rctx *c)
{
	return c->kind == RCTX_VALUE ? (unsigned)((const struct rctx_value *)c)->n : 1;
}

static int fmt_seg(char seg[FMT_SEG_MAX], const struct rctx *c, unsigned i,
		   int64_t now)
{
	switch (c->kind) {
	case RCTX_BACKGROUND:
		return snprintf(seg, FMT_SEG_MAX, "context.Background");
	case RCTX_TODO:
		return snprintf(seg, FMT_SEG_MAX, "context.TODO");
	case RCTX_CANCEL:
		return snprintf(seg, FMT_SEG_MAX, ".WithCancel");
	case RCTX_DEADLINE: {
		int64_t d = ((const struct rctx_cancel *)c)->deadline, left;
		uint64_t ad = d < 0 ? 0 - (uint64_t)d : (uint64_t)d, al;

		if (__builtin_sub_overflow(d, now, &left))
			left = INT64_MIN;
		al = left < 0 ? 0 - (uint64_t)left : (uint64_t)left;
		return snprintf(seg, FMT_SEG_MAX,
				".WithDeadline(%s%llu.%09llus [%s%llu.%09llus])",
				d < 0 ? "-" : "",
				(unsigned long long)(ad / NSEC_PER_SEC),
				(unsigned long long)(ad % NSEC_PER_SEC),
				left < 0 ? "-" : "",
				(unsigned long long)(al / NSEC_PER_SEC),
				(unsigned long long)(al % NSEC_PER_SEC));
	}
	case RCTX_VALUE: {
		const struct rctx_value *v = (const struct rctx_value *)c;

		return snprintf(seg, FMT_SEG_MAX, ".WithValue(key=%p, val=%p)",
				v->kv[i].key, v->kv[i].val);
	}
	case RCTX_WITHOUT:
		return snprintf(seg, FMT_SEG_MAX, ".WithoutCancel");
	case RCTX_EXT:
		return snprintf(seg, FMT_SEG_MAX, ".%s",
				((const struct rctx_ext *)c)->ops->name);
	default:
		seg[0] = '\0';
		return 0;
	}
}

/*
 * The description runs from the root down, but the chain links point up.
 * Without recursion or memory proportional to depth: a first walk sums the
 * parts' lengths, a second walks up from ctx and writes each part, end
 * first, at its final offset (what fits of it in buf). Linear in depth.
 */
RCTX_API int rctx_format(const rctx_t *ctx, char *buf, size_t len)
{
	char seg[FMT_SEG_MAX];
	int64_t now = rctx_now();
	size_t total = 0, end;
	const struct rctx *c;
	unsigned i;

	if (!ctx_valid(ctx) || (!buf && len))
		return -EINVAL;
	for (c = ctx; c; c = c->parent)
		for (i = 0; i < fmt_nsegs(c); i++)
			total += (size_t)fmt_seg(seg, c, i, now);
	if (len) {
		size_t room = len - 1; /* characters before the NUL */

		buf[total < room ? total : room] = '\0';
		end = total;
		for (c = ctx; c && end; c = c->parent) {
			for (i = fmt_nsegs(c); i-- && end;) {
				size_t n = (size_t)fmt_seg(seg, c, i, now), off = end - n;

				if (off < room)
					memcpy(buf + off, seg,
					       (end < room ? end : room) - off);
				end = off;
			}
		}
	}
	return total > INT_MAX ? INT_MAX : (int)total;
}
