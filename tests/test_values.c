/* Description: request-scoped values (rctx_with_value / rctx_value): key
 * identity, NULL values shadowing, lookup through cancel and timeout contexts,
 * formatting of the chain; rctx_without_cancel; and random layered chains of
 * value, cancel and timeout contexts that keep their values after cancellation
 * and after time-out. rctx_with_values (several pairs in one node: lookup,
 * shadowing, limits, formatting with truncation) and rctx_remaining. */
#include <criterion/criterion.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ringctx.h"
#include "helpers.h"

TestSuite(values, .timeout = 60);

/* Two keys with identical contents: only their addresses differ. */
static const int key1 = 1, key2 = 1, key3 = 1;
static int val_a, val_b, val_c;

Test(values, keys_of_different_identity_never_collide)
{
	rctx_t *c1 = rctx_with_value(rctx_background(), &key1, &val_a);
	cr_assert_not_null(c1);
	cr_assert_eq(rctx_value(c1, &key1), &val_a);
	cr_assert_null(rctx_value(c1, &key2), "equal contents, different key");
	cr_assert_null(rctx_value(c1, &key3));

	rctx_t *c2 = rctx_with_value(c1, &key2, &val_b);
	cr_assert_eq(rctx_value(c2, &key1), &val_a);
	cr_assert_eq(rctx_value(c2, &key2), &val_b);
	cr_assert_null(rctx_value(c2, &key3));
	cr_assert_null(rctx_value(c1, &key2), "parent must not see child's value");

	rctx_t *c3 = rctx_with_value(c2, &key1, &val_c);
	cr_assert_eq(rctx_value(c3, &key1), &val_c, "nearest value wins");
	cr_assert_eq(rctx_value(c3, &key2), &val_b);
	cr_assert_eq(rctx_value(c2, &key1), &val_a, "outer lookup unchanged");

	rctx_t *bc = rctx_with_value(rctx_background(), &key1, &val_b);
	cr_assert_eq(rctx_value(bc, &key1), &val_b, "siblings are independent");
	cr_assert_eq(rctx_value(c1, &key1), &val_a);

	rctx_release(bc);
	rctx_release(c3);
	rctx_release(c2);
	rctx_release(c1);
}

Test(values, null_value_shadows_an_earlier_one)
{
	rctx_t *c1 = rctx_with_value(rctx_background(), &key1, &val_a);
	rctx_t *c2 = rctx_with_value(c1, &key2, &val_b);
	rctx_t *c3 = rctx_with_value(c2, &key1, NULL);
	cr_assert_not_null(c3, "NULL val is valid");
	cr_assert_null(rctx_value(c3, &key1), "NULL must shadow the earlier value");
	cr_assert_eq(rctx_value(c3, &key2), &val_b);
	cr_assert_eq(rctx_value(c2, &key1), &val_a);
	rctx_t *c4 = rctx_with_value(c3, &key1, &val_c);
	cr_assert_eq(rctx_value(c4, &key1), &val_c);
	rctx_release(c4);
	rctx_release(c3);
	rctx_release(c2);
	rctx_release(c1);
}

Test(values, lookup_through_cancel_and_timeout_contexts)
{
	rctx_t *v1 = rctx_with_value(rctx_background(), &key1, &val_a);
	rctx_t *c = rctx_with_cancel(v1);
	rctx_t *v2 = rctx_with_value(c, &key2, &val_b);
	rctx_t *t = rctx_with_timeout(v2, MS(60000));
	rctx_t *d = rctx_with_deadline(t, rctx_now() + MS(120000));
	rctx_t *w = rctx_without_cancel(d);
	rctx_t *c2 = rctx_with_cancel(w);
	rctx_t *all[] = { c, v2, t, d, w, c2 };
	for (size_t i = 0; i < sizeof all / sizeof *all; i++) {
		cr_assert_not_null(all[i]);
		cr_assert_eq(rctx_value(all[i], &key1), &val_a, "layer %zu", i);
		cr_assert_null(rctx_value(all[i], &key3), "layer %zu", i);
	}
	for (size_t i = 1; i < sizeof all / sizeof *all; i++)
		cr_assert_eq(rctx_value(all[i], &key2), &val_b, "layer %zu", i);
	cr_assert_null(rctx_value(c, &key2));

	rctx_cancel(c);
	for (size_t i = 0; i < sizeof all / sizeof *all; i++)
		cr_assert_eq(rctx_value(all[i], &key1), &val_a, "after cancel, layer %zu", i);
	cr_assert_eq(rctx_value(d, &key2), &val_b);
	cr_assert_eq(rctx_value(c2, &key2), &val_b);
	for (size_t i = sizeof all / sizeof *all; i-- > 0;)
		rctx_release(all[i]);
	rctx_release(v1);
}

Test(values, lookup_on_a_deep_chain)
{
	enum { N = 1000 };
	static char keys[N];
	rctx_t *ctx[N];
	rctx_t *p = rctx_background();
	for (int i = 0; i < N; i++) {
		ctx[i] = rctx_with_value(p, &keys[i], &keys[N - 1 - i]);
		cr_assert_not_null(ctx[i]);
		p = ctx[i];
	}
	for (int i = 0; i < N; i += 37)
		cr_assert_eq(rctx_value(p, &keys[i]), &keys[N - 1 - i]);
	cr_assert_eq(rctx_value(p, &keys[0]), &keys[N - 1]);
	cr_assert_null(rctx_value(ctx[10], &keys[11]));
	/* drop our references from the top: the leaf keeps the chain alive */
	for (int i = 0; i < N - 1; i++)
		rctx_unref(ctx[i]);
	cr_assert_eq(rctx_value(p, &keys[0]), &keys[N - 1]);
	rctx_unref(p);
}

Test(values, format_shows_the_chain)
{
	char buf[512], want[128];
	rctx_t *c = rctx_with_cancel(rctx_background());
	rctx_t *v = rctx_with_value(c, &key1, &val_a);
	int n = rctx_format(v, buf, sizeof buf);
	cr_assert_gt(n, 0);
	cr_assert_lt(n, (int)sizeof buf);
	cr_assert_eq(strncmp(buf, "context.Background.WithCancel.WithValue(", 40), 0,
		     "got \"%s\"", buf);
	snprintf(want, sizeof want, "%p", (void *)&key1);
	cr_assert_not_null(strstr(buf, want), "key %s not shown in \"%s\"", want, buf);
	cr_assert_not_null(strstr(buf, "key="), "got \"%s\"", buf);
	cr_assert_not_null(strstr(buf, "val="), "got \"%s\"", buf);

	rctx_t *c2 = rctx_with_cancel(v);
	n = rctx_format(c2, buf, sizeof buf);
	cr_assert_gt(n, 0);
	cr_assert_eq(strncmp(buf, "context.Background.WithCancel.WithValue(", 40), 0);
	size_t len = strlen(buf);
	cr_assert_geq(len, 11);
	cr_assert_str_eq(buf + len - 11, ".WithCancel", "got \"%s\"", buf);

	rctx_t *t = rctx_with_timeout(c2, MS(60000));
	n = rctx_format(t, buf, sizeof buf);
	cr_assert_gt(n, 0);
	cr_assert_not_null(strstr(buf, ".WithCancel.WithDeadline("), "got \"%s\"", buf);
	rctx_release(t);
	rctx_release(c2);
	rctx_release(v);
	rctx_release(c);
}

/* ---- without_cancel ------------------------------------------------------- */

Test(values, without_cancel_keeps_values)
{
	rctx_t *v = rctx_with_value(rctx_background(), &key1, &val_a);
	rctx_t *c = rctx_with_cancel(v);
	rctx_t *v2 = rctx_with_value(c, &key2, &val_b);
	rctx_t *w = rctx_without_cancel(v2);
	cr_assert_not_null(w);
	cr_assert_eq(rctx_value(w, &key1), &val_a);
	cr_assert_eq(rctx_value(w, &key2), &val_b);
	rctx_cancel(c);
	cr_assert_eq(rctx_value(w, &key1), &val_a, "values survive the parent's cancel");
	cr_assert_eq(rctx_value(w, &key2), &val_b);
	rctx_release(w);
	rctx_release(v2);
	rctx_release(c);
	rctx_release(v);
}

Test(values, without_cancel_has_no_deadline)
{
	rctx_t *t = rctx_with_timeout(rctx_background(), MS(60000));
	int64_t d;
	cr_assert(rctx_deadline(t, &d));
	rctx_t *w = rctx_without_cancel(t);
	cr_assert_not(rctx_deadline(w, &d), "without_cancel must drop the deadline");
	rctx_t *vw = rctx_with_value(w, &key1, NULL);
	cr_assert_not(rctx_deadline(vw, NULL), "deadline search stops at the boundary");
	/* a timeout below the boundary has its own deadline */
	rctx_t *t2 = rctx_with_timeout(vw, MS(120000));
	int64_t d2 = 0;
	cr_assert(rctx_deadline(t2, &d2));
	cr_assert_gt(d2, d, "new deadline, not the one above the boundary");
	rctx_release(t2);
	rctx_release(vw);
	rctx_release(w);
	rctx_release(t);
}

Test(values, without_cancel_is_never_done)
{
	rctx_t *c = rctx_with_cancel(rctx_background());
	rctx_t *w = rctx_without_cancel(c);
	rctx_t *wc = rctx_with_cancel(w);
	cr_assert_eq(rctx_err(w), 0);
	cr_assert_eq(rctx_cause(w), 0);
	cr_assert_eq(rctx_done_fd(w), -ENOENT);
	cr_assert_eq(rctx_cancel_cause(c, -EPIPE), 1);
	cr_assert_eq(rctx_err(c), -ECANCELED);
	cr_assert_eq(rctx_err(w), 0, "without_cancel must ignore the parent's cancel");
	cr_assert_eq(rctx_cause(w), 0);
	cr_assert_eq(rctx_done_fd(w), -ENOENT);
	cr_assert_eq(rctx_wait(w, RCTX_FOREVER), -EDEADLK);
	cr_assert_eq(rctx_err(wc), 0, "a child below the boundary is not cancelled");
	cr_assert_eq(rctx_cause(wc), 0);
	cr_assert_eq(rctx_cancel(wc), 1, "but it can be cancelled on its own");
	cr_assert_eq(rctx_err(wc), -ECANCELED);
	cr_assert_eq(rctx_cause(wc), -ECANCELED);
	cr_assert_eq(rctx_err(w), 0);
	rctx_release(wc);
	rctx_release(w);
	rctx_release(c);
}

Test(values, without_cancel_of_a_done_parent_is_not_done)
{
	rctx_t *t = rctx_with_timeout(rctx_background(), 0);
	cr_assert_eq(rctx_err(t), -ETIMEDOUT);
	rctx_t *w = rctx_without_cancel(t);
	cr_assert_not_null(w);
	cr_assert_eq(rctx_err(w), 0);
	cr_assert_eq(rctx_cause(w), 0);
	cr_assert_not(rctx_deadline(w, NULL));
	rctx_t *c = rctx_with_cancel(w);
	cr_assert_eq(rctx_err(c), 0, "child of without_cancel starts live");
	rctx_release(c);
	rctx_release(w);
	rctx_release(t);
}

/* ---- layers ---------------------------------------------------------------- */

enum layer_kind { L_VALUE, L_CANCEL, L_TIMEOUT };

struct layers {
	int n;
	rctx_t **ctx;
	enum layer_kind *kind;
	char *keys;
	int *vals;
};

/* A chain of n random layers; timeouts use timeout_ns. Value layer i stores
 * &vals[i] under &keys[i]. */
static void layers_build(struct layers *L, int n, unsigned *seed, int64_t timeout_ns)
{
	L->n = n;
	L->ctx = calloc(n, sizeof *L->ctx);
	L->kind = calloc(n, sizeof *L->kind);
	L->keys = calloc(n, 1);
	L->vals = calloc(n, sizeof *L->vals);
	rctx_t *p = rctx_background();
	for (int i = 0; i < n; i++) {
		enum layer_kind k = rand_r(seed) % 3;
		/* make sure every kind appears */
		if (i < 3)
			k = (enum layer_kind)i;
		L->kind[i] = k;
		switch (k) {
		case L_VALUE:
			L->ctx[i] = rctx_with_value(p, &L->keys[i], &L->vals[i]);
			break;
		case L_CANCEL:
			L->ctx[i] = rctx_with_cancel(p);
			break;
		case L_TIMEOUT:
			L->ctx[i] = rctx_with_timeout(p, timeout_ns);
			break;
		}
		cr_assert_not_null(L->ctx[i], "layer %d", i);
		p = L->ctx[i];
	}
}

static void layers_check_values(struct layers *L, const char *when)
{
	for (int i = 0; i < L->n; i++) {
		for (int j = 0; j < L->n; j++) {
			void *got = rctx_value(L->ctx[i], &L->keys[j]);
			void *want = (L->kind[j] == L_VALUE && j <= i) ? &L->vals[j] : NULL;
			cr_assert_eq(got, want, "%s: layer %d key %d: %p != %p", when, i, j,
				     got, want);
		}
	}
}

static void layers_free(struct layers *L)
{
	for (int i = L->n; i-- > 0;)
		rctx_release(L->ctx[i]);
	free(L->ctx);
	free(L->kind);
	free(L->keys);
	free(L->vals);
}

Test(values, layers_keep_values_after_cancel)
{
	unsigned seed = 0x5eed1234u;
	int rounds = th_under_valgrind() ? 3 : 20;
	for (int r = 0; r < rounds; r++) {
		struct layers L;
		int n = 30 + (int)(rand_r(&seed) % 20);
		layers_build(&L, n, &seed, MS(60000));
		layers_check_values(&L, "before cancel");
		for (int i = 0; i < n; i++)
			cr_assert_eq(rctx_err(L.ctx[i]), 0);
		/* cancel a random cancellable layer */
		int pick;
		do
			pick = rand_r(&seed) % n;
		while (L.kind[pick] == L_VALUE);
		cr_assert_eq(rctx_cancel(L.ctx[pick]), 1);
		for (int i = 0; i < n; i++) {
			int want = (i >= pick) ? -ECANCELED : 0;
			cr_assert_eq(rctx_err(L.ctx[i]), want, "round %d layer %d (cancelled %d)",
				     r, i, pick);
		}
		layers_check_values(&L, "after cancel");
		layers_free(&L);
	}
}

Test(values, layers_keep_values_after_timeout)
{
	unsigned seed = 0xfeedbeefu;
	int rounds = th_under_valgrind() ? 2 : 8;
	for (int r = 0; r < rounds; r++) {
		struct layers L;
		int n = 30 + (int)(rand_r(&seed) % 20);
		layers_build(&L, n, &seed, MS(5));
		layers_check_values(&L, "before timeout");
		int first_to = -1;
		for (int j = 0; j < n && first_to < 0; j++)
			if (L.kind[j] == L_TIMEOUT)
				first_to = j;
		cr_assert_geq(first_to, 0);
		/* every layer from the first timeout downward times out */
		for (int i = first_to; i < n; i++) {
			cr_assert_eq(rctx_wait(L.ctx[i], rctx_now() + MS(TH_PATIENCE_MS)), 0,
				     "round %d layer %d never ended", r, i);
			cr_assert_eq(rctx_err(L.ctx[i]), -ETIMEDOUT, "round %d layer %d", r, i);
		}
		/* the layers above it are untouched */
		for (int i = 0; i < first_to; i++)
			cr_assert_eq(rctx_err(L.ctx[i]), 0, "round %d layer %d", r, i);
		layers_check_values(&L, "after timeout");
		layers_free(&L);
	}
}

/* ---- several values in one node ----------------------------------------- */

Test(values, with_values_looks_up_every_pair)
{
	const void *keys[] = { &key1, &key2 };
	void *vals[] = { &val_a, &val_b };
	rctx_t *c = rctx_with_cancel(rctx_background());
	rctx_t *v = rctx_with_values(c, 2, keys, vals);

	cr_assert_not_null(v);
	/* The arrays are copied. */
	keys[0] = &key3;
	vals[0] = &val_c;
	cr_assert_eq(rctx_value(v, &key1), &val_a);
	cr_assert_eq(rctx_value(v, &key2), &val_b);
	cr_assert_null(rctx_value(v, &key3));
	cr_assert_null(rctx_value(c, &key1), "the parent does not see them");
	/* Done, cancelled and timed out with its parent. */
	cr_assert_eq(rctx_done_fd(v), rctx_done_fd(c));
	cr_assert_eq(rctx_cancel(v), -EINVAL, "not cancellable itself");
	cr_assert_eq(rctx_cancel_cause(c, 21), 1);
	cr_assert_eq(rctx_err(v), -ECANCELED);
	cr_assert_eq(rctx_cause(v), 21);
	cr_assert_eq(rctx_value(v, &key2), &val_b, "values outlive the cancel");
	rctx_release(v);
	rctx_release(c);
}

Test(values, with_values_shadows_in_order)
{
	/* Inside the node: the later duplicate wins, a NULL value included. */
	const void *k[] = { &key1, &key2, &key1, &key3, &key3 };
	void *v[] = { &val_a, &val_b, &val_c, &val_a, NULL };
	rctx_t *p = rctx_with_value(rctx_background(), &key2, &val_c);
	rctx_t *n = rctx_with_values(p, 5, k, v);

	cr_assert_not_null(n);
	cr_assert_eq(rctx_value(n, &key1), &val_c, "later duplicate shadows");
	cr_assert_eq(rctx_value(n, &key2), &val_b, "shadows the parent's");
	cr_assert_null(rctx_value(n, &key3), "a NULL value shadows");
	/* Across nodes: a child shadows the node. */
	rctx_t *child = rctx_with_value(n, &key1, &val_b);
	cr_assert_eq(rctx_value(child, &key1), &val_b);
	cr_assert_eq(rctx_value(child, &key2), &val_b);
	const void *k2[] = { &key3 };
	void *v2[] = { &val_a };
	rctx_t *n2 = rctx_with_values(child, 1, k2, v2);
	cr_assert_eq(rctx_value(n2, &key3), &val_a);
	cr_assert_eq(rctx_value(n2, &key1), &val_b);
	rctx_release(n2);
	rctx_release(child);
	rctx_release(n);
	rctx_release(p);
}

Test(values, with_values_rejects_invalid_arguments)
{
	const void *k[RCTX_VALUES_MAX + 1];
	void *v[RCTX_VALUES_MAX + 1];

	for (int i = 0; i <= RCTX_VALUES_MAX; i++) {
		k[i] = &key1;
		v[i] = &val_a;
	}
	cr_assert_null(rctx_with_values(NULL, 1, k, v));
	cr_assert_null(rctx_with_values(rctx_background(), 1, NULL, v));
	cr_assert_null(rctx_with_values(rctx_background(), 1, k, NULL));
	cr_assert_null(rctx_with_values(rctx_background(), 0, k, v));
	cr_assert_null(rctx_with_values(rctx_background(), RCTX_VALUES_MAX + 1, k, v));
	k[3] = NULL;
	cr_assert_null(rctx_with_values(rctx_background(), 4, k, v), "a NULL key");
	rctx_t *ok = rctx_with_values(rctx_background(), 3, k, v);
	cr_assert_not_null(ok, "the NULL key is past n");
	rctx_release(ok);
}

/* RCTX_VALUES_MAX distinct keys in one node. */
static const char many_keys[RCTX_VALUES_MAX];
static char many_vals[RCTX_VALUES_MAX];

Test(values, with_values_holds_the_maximum)
{
	const void *k[RCTX_VALUES_MAX];
	void *v[RCTX_VALUES_MAX];

	for (int i = 0; i < RCTX_VALUES_MAX; i++) {
		k[i] = &many_keys[i];
		v[i] = &many_vals[i];
	}
	rctx_t *n = rctx_with_values(rctx_background(), RCTX_VALUES_MAX, k, v);
	cr_assert_not_null(n);
	for (int i = 0; i < RCTX_VALUES_MAX; i++)
		cr_assert_eq(rctx_value(n, &many_keys[i]), &many_vals[i], "pair %d", i);
	cr_assert_null(rctx_value(n, &key1));
	rctx_release(n);
}

/* The expected description of ctx, truncated at every length: a prefix of
 * the full one, NUL-terminated, nothing written past len. */
static void check_format_every_length(rctx_t *ctx, const char *want)
{
	size_t full = strlen(want);
	char *buf = malloc(full + 8);

	cr_assert_not_null(buf);
	cr_assert_eq(rctx_format(ctx, NULL, 0), (int)full);
	for (size_t len = 0; len <= full + 2; len++) {
		memset(buf, '#', full + 8);
		cr_assert_eq(rctx_format(ctx, buf, len), (int)full, "len %zu", len);
		if (len == 0) {
			cr_assert_eq(buf[0], '#');
			continue;
		}
		size_t got = len - 1 < full ? len - 1 : full;
		cr_assert_eq(memcmp(buf, want, got), 0, "len %zu", len);
		cr_assert_eq(buf[got], '\0', "len %zu", len);
		for (size_t i = got + 1; i < full + 8; i++)
			cr_assert_eq(buf[i], '#', "len %zu: byte %zu written", len, i);
	}
	free(buf);
}

Test(values, with_values_formats_one_part_per_pair)
{
	const void *k[] = { &key1, &key2, &key3 };
	void *v[] = { &val_a, NULL, &val_c };
	rctx_t *c = rctx_with_cancel(rctx_background());
	rctx_t *n = rctx_with_values(c, 3, k, v);
	rctx_t *w = rctx_with_value(n, &key2, &val_b);
	char want[512];

	snprintf(want, sizeof want,
		 "context.Background.WithCancel"
		 ".WithValue(key=%p, val=%p).WithValue(key=%p, val=%p)"
		 ".WithValue(key=%p, val=%p).WithValue(key=%p, val=%p)",
		 (void *)&key1, (void *)&val_a, (void *)&key2, (void *)NULL,
		 (void *)&key3, (void *)&val_c, (void *)&key2, (void *)&val_b);
	check_format_every_length(w, want);
	rctx_release(w);
	rctx_release(n);
	rctx_release(c);
}

Test(values, with_values_formats_the_maximum)
{
	const void *k[RCTX_VALUES_MAX];
	void *v[RCTX_VALUES_MAX];
	size_t cap = 64 + RCTX_VALUES_MAX * 64, off;
	char *want = malloc(cap);

	cr_assert_not_null(want);
	off = (size_t)snprintf(want, cap, "context.TODO");
	for (int i = 0; i < RCTX_VALUES_MAX; i++) {
		k[i] = &many_keys[i];
		v[i] = &many_vals[i];
		off += (size_t)snprintf(want + off, cap - off, ".WithValue(key=%p, val=%p)",
					k[i], v[i]);
	}
	rctx_t *n = rctx_with_values(rctx_todo(), RCTX_VALUES_MAX, k, v);
	cr_assert_not_null(n);
	check_format_every_length(n, want);
	rctx_release(n);
	free(want);
}

/* The library's internal value node holding a structure by value. */
rctx_t *rctx__value_blob(rctx_t *parent, const void *key, size_t size, void **blob);

Test(values, a_blob_value_is_zeroed_and_aligned)
{
	void *blob = NULL;
	rctx_t *c = rctx_with_cancel(rctx_background());
	rctx_t *b = rctx__value_blob(c, &key1, 100, &blob);

	cr_assert_not_null(b);
	cr_assert_not_null(blob);
	cr_assert_eq((uintptr_t)blob % _Alignof(max_align_t), 0);
	cr_assert_eq(rctx_value(b, &key1), blob);
	for (int i = 0; i < 100; i++)
		cr_assert_eq(((unsigned char *)blob)[i], 0);
	memset(blob, 0xab, 100); /* all of it is ours (ASan) */
	cr_assert_null(rctx__value_blob(NULL, &key1, 1, &blob));
	cr_assert_null(rctx__value_blob(c, NULL, 1, &blob));
	rctx_release(b);
	rctx_release(c);
}

/* ---- time remaining ------------------------------------------------------ */

Test(values, remaining_before_the_deadline)
{
	cr_assert_eq(rctx_remaining(NULL), -EINVAL);
	cr_assert_eq(rctx_remaining(rctx_background()), RCTX_FOREVER);
	rctx_t *c = rctx_with_cancel(rctx_background());
	cr_assert_eq(rctx_remaining(c), RCTX_FOREVER);

	int64_t before = rctx_now();
	rctx_t *t = rctx_with_timeout(c, MS(60000));
	int64_t left = rctx_remaining(t);
	cr_assert_gt(left, 0);
	cr_assert_leq(left, MS(60000));
	int64_t d = 0;
	cr_assert(rctx_deadline(t, &d));
	cr_assert_leq(left, d - before);

	const void *k[] = { &key1 };
	void *v[] = { &val_a };
	rctx_t *n = rctx_with_values(t, 1, k, v);
	int64_t left2 = rctx_remaining(n);
	cr_assert_gt(left2, 0, "through a value node");
	cr_assert_leq(left2, left);
	rctx_t *w = rctx_without_cancel(n);
	cr_assert_eq(rctx_remaining(w), RCTX_FOREVER, "without-cancel drops it");

	rctx_t *past = rctx_with_deadline(c, rctx_now() - MS(1));
	cr_assert_eq(rctx_remaining(past), 0);
	rctx_t *old = rctx_with_deadline(c, INT64_MIN);
	cr_assert_eq(rctx_remaining(old), 0, "no overflow");
	rctx_cancel(t);
	cr_assert_gt(rctx_remaining(t), 0, "being done does not matter");

	rctx_release(old);
	rctx_release(past);
	rctx_release(w);
	rctx_release(n);
	rctx_release(t);
	rctx_release(c);
}
