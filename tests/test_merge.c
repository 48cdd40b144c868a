/* Description: merged contexts (rctx_with_any): done with the error and cause
 * of whichever source ends first (parent, each other, a source's deadline),
 * sources already done at creation, n == 0, sources that can never be done,
 * values in order, the earliest deadline (rctx_deadline, rctx_remaining),
 * cancelling or freeing the merge unregisters it from every source, merges
 * of merges (a long chain), release orders, a source given twice, and a
 * storm of threads creating and releasing merges while others cancel their
 * sources. Leaks and stale registrations show under ASan and valgrind. */
/* tsan: yes */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>

#include "ringctx.h"
#include "helpers.h"

TestSuite(merge, .timeout = 120);

static const int key1, key2, key3, key4;
static int val_a, val_b, val_c, val_d;

static rctx_t *any2(rctx_t *parent, rctx_t *a, rctx_t *b)
{
	rctx_t *o[] = { a, b };
	rctx_t *m = rctx_with_any(parent, o, 2);

	cr_assert_not_null(m);
	return m;
}

Test(merge, invalid_arguments_give_null)
{
	rctx_t *c = rctx_with_cancel(rctx_background());
	rctx_t *o[RCTX_ANY_MAX + 1];

	for (size_t i = 0; i <= RCTX_ANY_MAX; i++)
		o[i] = c;
	cr_assert_null(rctx_with_any(NULL, o, 1));
	cr_assert_null(rctx_with_any(c, NULL, 1));
	cr_assert_null(rctx_with_any(c, o, RCTX_ANY_MAX + 1));
	o[1] = NULL;
	cr_assert_null(rctx_with_any(c, o, 2), "a NULL element");
	o[1] = c;
	rctx_t *m = rctx_with_any(c, o, RCTX_ANY_MAX);
	cr_assert_not_null(m, "n == RCTX_ANY_MAX is valid");
	cr_assert_eq(rctx_cancel_cause(c, 3), 1);
	cr_assert_eq(rctx_err(m), -ECANCELED);
	cr_assert_eq(rctx_cause(m), 3);
	rctx_release(m);
	rctx_release(c);
}

Test(merge, parent_cancel_ends_it)
{
	rctx_t *p = rctx_with_cancel(rctx_background());
	rctx_t *o1 = rctx_with_cancel(rctx_background());
	rctx_t *o2 = rctx_with_cancel(rctx_background());
	rctx_t *m = any2(p, o1, o2);
	rctx_t *child = rctx_with_cancel(m);

	cr_assert_eq(rctx_err(m), 0);
	cr_assert_eq(rctx_cancel_cause(p, 7), 1);
	cr_assert_eq(rctx_err(m), -ECANCELED);
	cr_assert_eq(rctx_cause(m), 7);
	cr_assert_eq(rctx_cause(child), 7, "the merge's subtree too");
	cr_assert_eq(rctx_err(o1), 0, "sources are not cancelled by it");
	cr_assert_eq(rctx_err(o2), 0);
	rctx_release(child);
	rctx_release(m);
	rctx_release(o2);
	rctx_release(o1);
	rctx_release(p);
}

Test(merge, each_other_ends_it_with_its_cause)
{
	for (int i = 0; i < 3; i++) {
		rctx_t *o[3];
		for (int j = 0; j < 3; j++)
			o[j] = rctx_with_cancel(rctx_background());
		rctx_t *m = rctx_with_any(rctx_background(), o, 3);
		rctx_t *child = rctx_with_value(m, &key1, &val_a);
		rctx_t *grand = rctx_with_cancel(child);

		cr_assert_not_null(m);
		cr_assert_eq(rctx_err(m), 0);
		cr_assert_eq(rctx_cancel_cause(o[i], 100 + i), 1);
		cr_assert_eq(rctx_err(m), -ECANCELED, "other %d", i);
		cr_assert_eq(rctx_cause(m), 100 + i);
		cr_assert_eq(rctx_cause(grand), 100 + i, "done before cancel returns");
		for (int j = 0; j < 3; j++)
			if (j != i)
				cr_assert_eq(rctx_err(o[j]), 0);
		/* A later source does not change it. */
		cr_assert_eq(rctx_cancel_cause(o[(i + 1) % 3], 55), 1);
		cr_assert_eq(rctx_cause(m), 100 + i);
		rctx_release(grand);
		rctx_release(child);
		rctx_release(m);
		for (int j = 0; j < 3; j++)
			rctx_release(o[j]);
	}
}

Test(merge, a_sources_deadline_ends_it_with_etimedout)
{
	rctx_t *p = rctx_with_cancel(rctx_background());
	rctx_t *o = rctx_with_timeout_cause(rctx_background(), MS(20), 42);
	rctx_t *m = any2(p, rctx_background(), o);
	int64_t od = 0, md = 0;

	cr_assert(rctx_deadline(o, &od));
	cr_assert(rctx_deadline(m, &md));
	cr_assert_eq(md, od, "the earliest deadline is the merge's");
	cr_assert_eq(rctx_wait(m, rctx_now() + MS(TH_PATIENCE_MS)), 0);
	cr_assert_eq(rctx_err(m), -ETIMEDOUT);
	cr_assert_eq(rctx_cause(m), 42);
	cr_assert_eq(rctx_err(p), 0);
	cr_assert_eq(rctx_remaining(m), 0);
	rctx_release(m);
	rctx_release(o);
	rctx_release(p);
}

Test(merge, deadline_is_the_earliest_of_all)
{
	rctx_t *p = rctx_with_timeout(rctx_background(), MS(60000));
	rctx_t *o1 = rctx_with_timeout(rctx_background(), MS(30000));
	rctx_t *o2 = rctx_with_cancel(rctx_background());
	rctx_t *m = any2(p, o1, o2);
	int64_t d1 = 0, dm = 0;

	cr_assert(rctx_deadline(o1, &d1));
	cr_assert(rctx_deadline(m, &dm));
	cr_assert_eq(dm, d1);
	int64_t left = rctx_remaining(m);
	cr_assert_gt(left, 0);
	cr_assert_leq(left, MS(30000));
	rctx_t *v = rctx_with_value(m, &key1, &val_a);
	cr_assert_leq(rctx_remaining(v), left, "through a value node");
	cr_assert_gt(rctx_remaining(v), 0);

	rctx_t *m2 = any2(rctx_background(), o2, rctx_background());
	cr_assert_not(rctx_deadline(m2, NULL), "no source has a deadline");
	cr_assert_eq(rctx_remaining(m2), RCTX_FOREVER);
	rctx_t *m3 = any2(o2, o2, p);
	int64_t dp = 0, d3 = 0;
	cr_assert(rctx_deadline(p, &dp));
	cr_assert(rctx_deadline(m3, &d3));
	cr_assert_eq(d3, dp, "an other's deadline when the parent has none");
	rctx_release(m3);
	rctx_release(m2);
	rctx_release(v);
	rctx_release(m);
	rctx_release(o2);
	rctx_release(o1);
	rctx_release(p);
}

Test(merge, sources_done_at_creation)
{
	rctx_t *p = rctx_with_cancel(rctx_background());
	rctx_t *o1 = rctx_with_cancel(rctx_background());
	rctx_t *o2 = rctx_with_cancel(rctx_background());
	rctx_t *o3 = rctx_with_cancel(rctx_background());
	rctx_t *m;

	/* The last other done. */
	rctx_cancel_cause(o3, 33);
	rctx_t *o[] = { o1, o2, o3 };
	m = rctx_with_any(p, o, 3);
	cr_assert_not_null(m);
	cr_assert_eq(rctx_err(m), -ECANCELED);
	cr_assert_eq(rctx_cause(m), 33);
	rctx_unref(m); /* freed: a stale link in o1 or o2 would show below */
	/* The first and the last done: the first found wins. */
	rctx_cancel_cause(o1, 11);
	m = rctx_with_any(p, o, 3);
	cr_assert_eq(rctx_cause(m), 11);
	rctx_unref(m);
	/* An expired deadline. */
	rctx_t *t = rctx_with_deadline_cause(rctx_background(), rctx_now() - 1, 44);
	rctx_t *ot[] = { o2, t };
	m = rctx_with_any(p, ot, 2);
	cr_assert_eq(rctx_err(m), -ETIMEDOUT);
	cr_assert_eq(rctx_cause(m), 44);
	rctx_unref(m);
	/* The parent done: its error, whatever the others. */
	rctx_cancel_cause(p, 99);
	m = rctx_with_any(p, o, 3);
	cr_assert_eq(rctx_err(m), -ECANCELED);
	cr_assert_eq(rctx_cause(m), 99);
	rctx_unref(m);
	m = rctx_with_any(p, &o2, 1);
	cr_assert_eq(rctx_cause(m), 99, "parent done, other live");
	rctx_unref(m);
	/* Nothing is left registered in o2: cancelling it touches no freed
	 * merge (ASan, valgrind). */
	cr_assert_eq(rctx_cancel(o2), 1);
	rctx_release(t);
	rctx_release(o3);
	rctx_release(o2);
	rctx_release(o1);
	rctx_release(p);
}

Test(merge, no_others_is_a_cancel_context)
{
	rctx_t *p = rctx_with_cancel(rctx_background());
	rctx_t *m = rctx_with_any(p, NULL, 0);
	rctx_t *m2 = rctx_with_any(p, NULL, 0);
	char buf[128];

	cr_assert_not_null(m);
	cr_assert_eq(rctx_err(m), 0);
	cr_assert_eq(rctx_cancel_cause(m2, 4), 1);
	cr_assert_eq(rctx_cause(m2), 4);
	cr_assert_eq(rctx_err(p), 0, "cancelling it leaves the parent");
	cr_assert_eq(rctx_cancel_cause(p, 8), 1);
	cr_assert_eq(rctx_cause(m), 8);
	cr_assert_eq(rctx_cancel(m), 0, "already done");
	cr_assert_gt(rctx_format(m, buf, sizeof buf), 0);
	cr_assert_str_eq(buf, "context.Background.WithCancel.WithAny");
	rctx_release(m2);
	rctx_release(m);
	rctx_release(p);
}

Test(merge, sources_that_are_never_done)
{
	rctx_t *c = rctx_with_cancel(rctx_background());
	rctx_t *v = rctx_with_value(c, &key2, &val_b);
	rctx_t *w = rctx_without_cancel(v);
	rctx_t *m = any2(rctx_background(), rctx_todo(), w);

	cr_assert_eq(rctx_value(m, &key2), &val_b, "values through without-cancel");
	cr_assert_eq(rctx_cancel(c), 1);
	cr_assert_eq(rctx_err(m), 0, "a without-cancel source never ends it");
	cr_assert_not(rctx_deadline(m, NULL));
	cr_assert_eq(rctx_cancel_cause(m, 6), 1, "still cancellable");
	cr_assert_eq(rctx_cause(m), 6);
	rctx_release(m);
	rctx_release(w);
	rctx_release(v);
	rctx_release(c);
}

Test(merge, values_parent_first_then_others_in_order)
{
	rctx_t *p = rctx_with_value(rctx_background(), &key1, &val_a);
	const void *k1[] = { &key1, &key2 };
	void *v1[] = { &val_b, &val_b };
	rctx_t *o1c = rctx_with_cancel(rctx_background());
	rctx_t *o1 = rctx_with_values(o1c, 2, k1, v1);
	rctx_unref(o1c); /* o1 holds it */
	const void *k2[] = { &key2, &key3 };
	void *v2[] = { &val_c, &val_c };
	rctx_t *o2 = rctx_with_values(rctx_background(), 2, k2, v2);
	rctx_t *m = any2(p, o1, o2);
	rctx_t *child = rctx_with_value(m, &key4, &val_d);

	cr_assert_eq(rctx_value(child, &key1), &val_a, "parent first");
	cr_assert_eq(rctx_value(child, &key2), &val_b, "then the first other");
	cr_assert_eq(rctx_value(child, &key3), &val_c, "then the next");
	cr_assert_eq(rctx_value(child, &key4), &val_d);
	cr_assert_null(rctx_value(m, &key4));
	rctx_t *m2 = any2(rctx_background(), o2, o1);
	cr_assert_eq(rctx_value(m2, &key2), &val_c, "order of others");
	cr_assert_eq(rctx_value(m2, &key1), &val_b);
	rctx_t *mm = any2(rctx_background(), m2, m);
	cr_assert_eq(rctx_value(mm, &key1), &val_b, "merge of merges: m2 first");
	cr_assert_eq(rctx_value(mm, &key4), NULL);
	rctx_release(mm);
	rctx_release(m2);
	rctx_release(child);
	rctx_release(m);
	rctx_release(o2);
	/* o1's parent is only held by o1 now. */
	rctx_release(o1);
	rctx_release(p);
}

Test(merge, cancelling_it_unregisters_from_every_source)
{
	rctx_t *o1 = rctx_with_cancel(rctx_background());
	rctx_t *o2c = rctx_with_cancel(rctx_background());
	rctx_t *o2 = rctx_with_value(o2c, &key1, &val_a);
	rctx_unref(o2c); /* o2 holds it */
	rctx_t *m = any2(rctx_background(), o1, o2);
	char buf[256];

	cr_assert_gt(rctx_format(m, buf, sizeof buf), 0);
	cr_assert_str_eq(buf, "context.Background.WithAny");
	cr_assert_eq(rctx_cancel_cause(m, 5), 1);
	cr_assert_eq(rctx_cause(m), 5);
	cr_assert_eq(rctx_err(o1), 0);
	cr_assert_eq(rctx_cancel_cause(o1, 9), 1);
	cr_assert_eq(rctx_cause(m), 5, "a later source does not reach it");
	/* Freed: a link left in o2's governor would be a use after free. */
	rctx_release(m);
	rctx_t *g = rctx_with_cancel(o2);
	cr_assert_eq(rctx_cancel(g), 1);
	rctx_release(g);
	rctx_release(o1);
	rctx_release(o2);
}

Test(merge, freeing_it_live_unregisters_it)
{
	rctx_t *o1 = rctx_with_cancel(rctx_background());
	rctx_t *o2 = rctx_with_cancel(rctx_background());
	rctx_t *m = any2(rctx_background(), o1, o2);

	rctx_unref(m); /* freed without a cancel */
	cr_assert_eq(rctx_cancel(o1), 1);
	cr_assert_eq(rctx_cancel(o2), 1);
	rctx_release(o1);
	rctx_release(o2);
}

Test(merge, it_holds_its_sources)
{
	rctx_t *p = rctx_with_cancel(rctx_background());
	rctx_t *o1c = rctx_with_cancel(rctx_background());
	rctx_t *o1 = rctx_with_value(o1c, &key2, &val_b);
	rctx_unref(o1c); /* o1 holds it */
	rctx_t *o2 = rctx_with_cancel(rctx_background());
	rctx_t *m = any2(p, o1, o2);

	rctx_unref(o1); /* the merge keeps it (and its parent) alive */
	rctx_unref(p);
	cr_assert_eq(rctx_value(m, &key2), &val_b);
	cr_assert_eq(rctx_err(m), 0);
	rctx_release(o2); /* cancel + unref: ends the merge */
	cr_assert_eq(rctx_err(m), -ECANCELED);
	rctx_release(m); /* frees the sources too (ASan, valgrind) */
}

Test(merge, the_same_source_twice)
{
	rctx_t *o = rctx_with_cancel(rctx_background());
	rctx_t *m = any2(o, o, o);
	rctx_t *m2 = any2(rctx_background(), o, o);

	cr_assert_eq(rctx_cancel_cause(o, 12), 1);
	cr_assert_eq(rctx_cause(m), 12);
	cr_assert_eq(rctx_cause(m2), 12);
	rctx_release(m2);
	rctx_release(m);
	rctx_release(o);

	o = rctx_with_cancel(rctx_background());
	m = any2(o, o, o);
	cr_assert_eq(rctx_cancel_cause(m, 13), 1);
	rctx_release(m);
	cr_assert_eq(rctx_cancel(o), 1);
	rctx_release(o);
}

/* A chain of merges, each one the other of the next: a cancel at the bottom
 * reaches the top without recursing once per level. */
Test(merge, a_long_chain_of_merges)
{
	const long depth = th_scaled(200000);
	rctx_t **m = calloc((size_t)depth, sizeof(*m));

	cr_assert_not_null(m);
	m[0] = rctx_with_cancel(rctx_background());
	for (long i = 1; i < depth; i++) {
		m[i] = rctx_with_any(rctx_background(), &m[i - 1], 1);
		cr_assert_not_null(m[i]);
	}
	cr_assert_eq(rctx_err(m[depth - 1]), 0);
	cr_assert_eq(rctx_cancel_cause(m[0], 77), 1);
	for (long i = 0; i < depth; i++) {
		cr_assert_eq(rctx_err(m[i]), -ECANCELED, "level %ld", i);
		cr_assert_eq(rctx_cause(m[i]), 77);
	}
	/* Top first: each release frees one merge, its source still held. */
	for (long i = depth - 1; i >= 0; i--)
		rctx_release(m[i]);
	free(m);
}

/* The same, freed bottom first without a cancel: the last release frees
 * the whole chain, without recursing once per level either. */
Test(merge, a_long_chain_of_merges_freed_bottom_first)
{
	const long depth = th_scaled(200000);
	rctx_t **m = calloc((size_t)depth, sizeof(*m));

	cr_assert_not_null(m);
	m[0] = rctx_with_cancel(rctx_background());
	for (long i = 1; i < depth; i++) {
		m[i] = rctx_with_any(rctx_background(), &m[i - 1], 1);
		cr_assert_not_null(m[i]);
	}
	for (long i = 0; i < depth; i++)
		rctx_unref(m[i]);
	free(m);
}

Test(merge, merges_of_merges)
{
	rctx_t *a = rctx_with_cancel(rctx_background());
	rctx_t *b = rctx_with_cancel(rctx_background());
	rctx_t *c = rctx_with_cancel(rctx_background());
	rctx_t *ab = any2(a, b, rctx_background());
	rctx_t *bc = any2(b, c, rctx_background());
	rctx_t *top = any2(rctx_background(), ab, bc);

	cr_assert_eq(rctx_cancel_cause(c, 3), 1);
	cr_assert_eq(rctx_cause(bc), 3);
	cr_assert_eq(rctx_cause(top), 3);
	cr_assert_eq(rctx_err(ab), 0);
	cr_assert_eq(rctx_cancel_cause(a, 1), 1);
	cr_assert_eq(rctx_cause(ab), 1);
	cr_assert_eq(rctx_cause(top), 3);
	/* Sources released before the merges that hold them. */
	rctx_release(a);
	rctx_release(b);
	rctx_release(c);
	rctx_unref(ab);
	rctx_unref(bc);
	rctx_release(top);
}

/* ---- storm ------------------------------------------------------------- */

#define STORM_SRC  4
#define STORM_KEEP 48

struct storm {
	rctx_t *src[STORM_SRC];
	rctx_t *kept[STORM_KEEP];
	unsigned seed;
};

static unsigned next_rand(unsigned *s)
{
	*s = *s * 1103515245u + 12345u;
	return *s >> 16;
}

/* Creates merges of random sources (some of earlier merges), keeps some,
 * drops the rest at once, cancelled or not. */
static void *storm_create(void *arg)
{
	struct storm *st = arg;
	unsigned s = st->seed;

	for (int j = 0; j < STORM_KEEP; j++) {
		rctx_t *o[3] = {
			st->src[next_rand(&s) % STORM_SRC],
			st->src[next_rand(&s) % STORM_SRC],
			j > 0 && st->kept[j - 1] ? st->kept[j - 1] : rctx_background(),
		};
		rctx_t *m = rctx_with_any(rctx_background(), o, 3);
		if (!m)
			return "rctx_with_any failed";
		switch (next_rand(&s) % 4) {
		case 0:
			rctx_unref(m);
			m = NULL;
			break;
		case 1:
			rctx_release(m);
			m = NULL;
			break;
		default:
			break;
		}
		st->kept[j] = m;
	}
	return NULL;
}

static void *storm_cancel(void *arg)
{
	struct storm *st = arg;

	for (int i = 0; i < STORM_SRC; i++) {
		rctx_cancel_cause(st->src[i], 100 + i);
		sched_yield();
	}
	return NULL;
}

Test(merge, storm_of_creates_releases_and_cancels)
{
	const int64_t end = th_now_ns() + MS(2000);
	const long rounds = th_scaled(2000);
	long r;

	for (r = 0; r < rounds && th_now_ns() < end; r++) {
		struct storm st = { .seed = (unsigned)r * 2654435761u };
		pthread_t tc, tx;
		void *res;

		for (int i = 0; i < STORM_SRC; i++)
			st.src[i] = rctx_with_cancel(rctx_background());
		cr_assert_eq(pthread_create(&tc, NULL, storm_create, &st), 0);
		cr_assert_eq(pthread_create(&tx, NULL, storm_cancel, &st), 0);
		pthread_join(tc, &res);
		pthread_join(tx, NULL);
		cr_assert_null(res, "%s", (char *)res);
		/* Every source is cancelled: every merge is done, with the
		 * cause of one of them. */
		for (int j = 0; j < STORM_KEEP; j++) {
			if (!st.kept[j])
				continue;
			cr_assert_eq(rctx_err(st.kept[j]), -ECANCELED, "round %ld merge %d", r, j);
			int c = rctx_cause(st.kept[j]);
			cr_assert(c >= 100 && c < 100 + STORM_SRC, "cause %d", c);
		}
		for (int j = STORM_KEEP - 1; j >= 0; j--)
			rctx_release(st.kept[j]);
		for (int i = 0; i < STORM_SRC; i++)
			rctx_release(st.src[i]);
	}
	cr_assert_gt(r, 0);
	cr_log_info("%ld rounds\n", r);
}
