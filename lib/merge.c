/* SPDX-License-Identifier: MIT */
/*
 * Merged contexts (rctx_with_any): an extended context under its parent,
 * also done as soon as any of its other sources is done. For each source
 * that can be done it embeds a link (struct rctx_link) registered in the
 * source governor's child set, as a child would be; a cancel of the source
 * detaches the link and cancels the merge once no lock is held
 * (lib/context.c). Its deadline is the earliest of its sources': it arms no
 * timer, the source whose deadline it is fires and reaches it.
 *
 * Locks: a link is added or removed under its source governor's lock alone,
 * and a merge is cancelled with no lock held; every lock edge of the tree
 * goes from an older object to a newer one, so none forms a cycle.
 */
#include <stdlib.h>

#include "internal.h"

/*
 * n is published once the links are set up: the parent's cancel may run
 * ended() while the creator is still at it, and then sees no link or only
 * set-up ones. The creator's check after registering covers the rest: n is
 * stored and loaded seq_cst, as the canceller stores err and the creator
 * loads it, so either ended() sees n (and takes each source's lock after
 * the creator registered there, or before, and then the creator sees err),
 * or the creator sees err.
 */
struct rctx_merge {
	struct rctx_ext x;
	_Atomic size_t n;
	_Atomic bool unlinked;     /* every link is out of its child set */
	struct rctx_link links[];
};

static size_t merge_n(const struct rctx_merge *m)
{
	return atomic_load_explicit(&((struct rctx_merge *)m)->n, memory_order_seq_cst);
}

static struct rctx_merge *merge_of(const struct rctx_ext *x)
{
	return container_of(x, struct rctx_merge, x);
}

/* Once the merge is done: a link that is out stays out. */
static void merge_unregister_all(struct rctx_merge *m)
{
	size_t i;

	for (i = 0; i < merge_n(m); i++)
		rctx__child_del(&m->links[i].c);
	atomic_store_explicit(&m->unlinked, true, memory_order_relaxed);
}

/* Done (whoever ended it): no source needs to reach it any more. */
static void merge_ended(struct rctx_ext *x)
{
	merge_unregister_all(merge_of(x));
}

/*
 * Drop a merge's reference to a source. The source may be a merge whose
 * destroy drops its own sources, and so on down a chain of merges: rather
 * than recurse once per level, the outermost call on a thread drains a small
 * per-thread stack to which the nested ones push. Only when the stack is
 * full (a wide fan-out of merges of merges) does a call recurse.
 */
#define PUT_STACK_MAX 64
static __thread struct rctx *put_stack[PUT_STACK_MAX];
static __thread unsigned put_depth;
static __thread bool put_draining;

static void put_source(struct rctx *src)
{
	if (put_draining) {
		if (put_depth < PUT_STACK_MAX)
			put_stack[put_depth++] = src;
		else
			rctx__obj_put(src);
		return;
	}
	put_draining = true;
	rctx__obj_put(src);
	while (put_depth)
		rctx__obj_put(put_stack[--put_depth]);
	put_draining = false;
}

/* The last reference went: not done perhaps (rctx_unref() without a
 * cancel), or done without its ended() (the parent's cancel found no
 * reference left), so unregister unless that was done, then drop the
 * references to the sources. Whoever unregistered held a reference, whose
 * release orders it before this. */
static void merge_destroy(struct rctx_ext *x)
{
	struct rctx_merge *m = merge_of(x);
	size_t i;

	if (!atomic_load_explicit(&m->unlinked, memory_order_relaxed))
		merge_unregister_all(m);
	for (i = 0; i < merge_n(m); i++)
		put_source(m->links[i].c.hdr.parent);
}

/* The parent's chain found nothing (lib/context.c): each source's, in order. */
static bool merge_value(const struct rctx_ext *x, const void *key, void **val)
{
	const struct rctx_merge *m = merge_of(x);
	size_t i;

	for (i = 0; i < merge_n(m); i++)
		if (rctx__value_lookup(m->links[i].c.hdr.parent, key, val))
			return true;
	return false;
}

static const struct rctx_ext_ops merge_ops = {
	.name = "WithAny",
	.ended = merge_ended,
	.destroy = merge_destroy,
	.value = merge_value,
};

static bool any_args_valid(rctx_t *parent, rctx_t *const *others, size_t n)
{
	size_t i;

	if (!ctx_valid(parent) || (!others && n) || n > RCTX_ANY_MAX)
		return false;
	for (i = 0; i < n; i++)
		if (!ctx_valid(others[i]))
			return false;
	return true;
}

static int64_t earliest_deadline(rctx_t *parent, rctx_t *const *others, size_t n)
{
	int64_t d = rctx__deadline_of(parent);
	size_t i;

	for (i = 0; i < n; i++) {
		int64_t o = rctx__deadline_of(others[i]);

		if (o < d)
			d = o;
	}
	return d;
}

/*
 * Register every link, in order; the first source found done ends the merge
 * with its error and cause. Then, if the merge is done by now (that source,
 * or a concurrent cancel whose ended() may have run before some links were
 * added), take every link out again: none stays registered on a merge that
 * is done. A cancel that ends it after this check finds all of them there.
 */
static void merge_register(struct rctx_merge *m)
{
	int err = 0, cause = 0;
	size_t i;

	for (i = 0; i < merge_n(m); i++) {
		err = rctx__child_add(&m->links[i].c, &cause);
		if (err) {
			rctx__cancel_tree(&m->x.cc, err, cause);
			break;
		}
	}
	if (atomic_load_explicit(&m->x.cc.err, memory_order_seq_cst))
		merge_unregister_all(m); /* ERR_ENDING included */
}

RCTX_API rctx_t *rctx_with_any(rctx_t *parent, rctx_t *const *others, size_t n)
{
	ERRNO_GUARD;
	struct rctx_merge *m;
	struct rctx_ext *x;
	size_t i;

	if (!any_args_valid(parent, others, n))
		return ERRNO_FAIL(EINVAL);
	x = rctx__ext_new(parent, sizeof(*m) + n * sizeof(m->links[0]), &merge_ops,
			  earliest_deadline(parent, others, n));
	if (!x)
		return ERRNO_FAIL(ENOMEM);
	m = merge_of(x);
	/* Every reference first: destroy drops all n. */
	for (i = 0; i < n; i++) {
		canceler_init(&m->links[i].c, RCTX_LINK, others[i], 1);
		m->links[i].owner = x;
	}
	atomic_store_explicit(&m->n, n, memory_order_seq_cst);
	if (!cancel_err(&x->cc)) /* else done with its parent's error */
		merge_register(m);
	return &x->cc.c.hdr;
}
