/* Description: contexts a million deep. Every operation on a chain (format,
 * value lookup, cancel of the root, release of every link) must be iterative:
 * a chain of 1,000,000 value contexts and a mixed chain of 100,000
 * alternating cancel and value contexts are formatted (prefix, suffix,
 * returned length, truncation), searched, cancelled and released, far deeper
 * than a recursive walk's stack allows. Depths are scaled down under valgrind,
 * still deep enough to need a large stack if anything recursed. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ringctx.h"
#include "helpers.h"

TestSuite(deep, .timeout = 120);

static const int key_top = 1, key_leaf = 1, key_chain = 1, key_absent = 1;

/* link[0] is a cancel context under background, link[n] the leaf. */
struct chain {
	rctx_t **link;
	long n;
	bool mixed;
	size_t want_len;       /* length of the full description */
};

/*
 * What link i is: link 1 carries key_top (a lookup from the leaf walks the
 * whole chain), the leaf carries key_leaf; in between, value contexts
 * (key_chain -> i), or in a mixed chain cancel contexts at even i.
 */
static bool link_is_cancel(const struct chain *ch, long i)
{
	return i == 0 || (ch->mixed && i % 2 == 0 && i != 1 && i != ch->n);
}

static const void *link_key(const struct chain *ch, long i)
{
	return i == 1 ? (const void *)&key_top :
	       i == ch->n ? (const void *)&key_leaf : (const void *)&key_chain;
}

static void *link_val(const struct chain *ch, long i)
{
	return i == 1 || i == ch->n ? (void *)link_key(ch, i) : (void *)(uintptr_t)i;
}

/* The part of the description link i adds. */
static int link_seg(char *out, size_t len, const struct chain *ch, long i)
{
	if (i == 0)
		return snprintf(out, len, "context.Background.WithCancel");
	if (link_is_cancel(ch, i))
		return snprintf(out, len, ".WithCancel");
	return snprintf(out, len, ".WithValue(key=%p, val=%p)", link_key(ch, i),
			link_val(ch, i));
}

static void chain_build(struct chain *ch, long n, bool mixed)
{
	char seg[128];

	ch->n = n;
	ch->mixed = mixed;
	ch->link = malloc((size_t)(n + 1) * sizeof(*ch->link));
	cr_assert_not_null(ch->link);
	ch->link[0] = rctx_with_cancel(rctx_background());
	cr_assert_not_null(ch->link[0]);
	ch->want_len = (size_t)link_seg(seg, sizeof(seg), ch, 0);
	for (long i = 1; i <= n; i++) {
		rctx_t *c = link_is_cancel(ch, i) ? rctx_with_cancel(ch->link[i - 1]) :
			rctx_with_value(ch->link[i - 1], link_key(ch, i),
					link_val(ch, i));

		cr_assert_not_null(c, "link %ld", i);
		ch->link[i] = c;
		ch->want_len += (size_t)link_seg(seg, sizeof(seg), ch, i);
	}
}

/* The full description, its prefix and suffix, and truncated ones. */
static void check_format(const struct chain *ch)
{
	rctx_t *leaf = ch->link[ch->n];
	size_t len = ch->want_len + 1, pre = 0, suf = 0;
	char *buf = malloc(len), *want = malloc(len), seg[128], small[100];
	int n;

	cr_assert(buf && want);
	for (long i = 0; i <= 3; i++)
		pre += (size_t)link_seg(want + pre, len - pre, ch, i);
	for (long i = ch->n - 2; i <= ch->n; i++)
		suf += (size_t)link_seg(seg, sizeof(seg), ch, i);
	cr_assert_geq(pre, sizeof(small), "the prefix covers the small buffer");

	memset(buf, 'X', len);
	n = rctx_format(leaf, buf, len);
	cr_assert_eq((size_t)n, ch->want_len, "length %d, want %zu", n, ch->want_len);
	cr_assert_eq(buf[ch->want_len], '\0');
	cr_assert_eq(strlen(buf), ch->want_len);
	cr_assert_eq(memcmp(buf, want, pre), 0, "prefix: %.*s", (int)pre, buf);
	/* The suffix: the last three links, built the same way. */
	{
		size_t at = 0;

		for (long i = ch->n - 2; i <= ch->n; i++)
			at += (size_t)link_seg(want + at, len - at, ch, i);
		cr_assert_eq(at, suf);
		cr_assert_eq(memcmp(buf + ch->want_len - suf, want, suf), 0,
			     "suffix: %s", buf + ch->want_len - suf);
	}
	/* Exactly one byte short: only the closing parenthesis is cut. */
	n = rctx_format(leaf, buf, ch->want_len);
	cr_assert_eq((size_t)n, ch->want_len);
	cr_assert_eq(strlen(buf), ch->want_len - 1);
	cr_assert_eq(memcmp(buf + ch->want_len - suf, want, suf - 1), 0);

	/* Truncated to a small buffer: the beginning, NUL-terminated. */
	pre = 0;
	for (long i = 0; i <= 3; i++)
		pre += (size_t)link_seg(want + pre, len - pre, ch, i);
	memset(small, 'X', sizeof(small));
	n = rctx_format(leaf, small, sizeof(small));
	cr_assert_eq((size_t)n, ch->want_len);
	cr_assert_eq(strlen(small), sizeof(small) - 1);
	cr_assert_eq(memcmp(small, want, sizeof(small) - 1), 0);

	/* Length only. */
	cr_assert_eq((size_t)rctx_format(leaf, NULL, 0), ch->want_len);
	free(buf);
	free(want);
}

static void check_values(const struct chain *ch)
{
	rctx_t *leaf = ch->link[ch->n];

	cr_assert_eq(rctx_value(leaf, &key_top), &key_top);
	cr_assert_eq(rctx_value(leaf, &key_leaf), &key_leaf);
	cr_assert_null(rctx_value(leaf, &key_absent));
	cr_assert_eq(rctx_value(leaf, &key_chain), (void *)(uintptr_t)(ch->n - 1));
	cr_assert_null(rctx_value(ch->link[1], &key_chain));
}

/* Cancel the root: every link is done before rctx_cancel() returns. */
static void check_cancel(const struct chain *ch)
{
	cr_assert_eq(rctx_err(ch->link[ch->n]), 0);
	cr_assert_eq(rctx_cancel(ch->link[0]), 1);
	cr_assert_eq(rctx_err(ch->link[ch->n]), -ECANCELED);
	cr_assert_eq(rctx_err(ch->link[ch->n / 2]), -ECANCELED);
	cr_assert_eq(rctx_cause(ch->link[ch->n]), -ECANCELED);
	cr_assert_eq(rctx_cancel(ch->link[0]), 0);
}

/* Release root first: the leaf's release then frees the whole chain. */
static void release_all(struct chain *ch)
{
	for (long i = 0; i <= ch->n; i++)
		rctx_release(ch->link[i]);
	free(ch->link);
}

static long depth(long plain)
{
	return th_under_valgrind() ? 100000 : plain;
}

Test(deep, million_value_chain_formats_finds_cancels_and_releases)
{
	struct chain ch;
	int64_t t0 = rctx_now();

	chain_build(&ch, depth(1000000), false);
	check_format(&ch);
	check_values(&ch);
	check_cancel(&ch);
	check_format(&ch); /* done contexts format the same */
	release_all(&ch);
	cr_log_info("%ld links: %.2f s", ch.n, (double)(rctx_now() - t0) / 1e9);
}

Test(deep, mixed_cancel_value_chain_cancels_and_releases)
{
	struct chain ch;

	chain_build(&ch, depth(100000), true);
	check_format(&ch);
	check_values(&ch);
	check_cancel(&ch);
	release_all(&ch);
}

/* The creator releases the leaf first: the rest goes link by link. */
Test(deep, mixed_chain_released_leaf_first)
{
	struct chain ch;

	chain_build(&ch, depth(100000), true);
	for (long i = ch.n; i >= 0; i--)
		rctx_release(ch.link[i]);
	free(ch.link);
}

/* A cancel in the middle ends the lower half only. */
Test(deep, cancel_in_the_middle_ends_the_lower_half)
{
	struct chain ch;
	long mid;

	chain_build(&ch, depth(100000), true);
	mid = ch.n / 2 & ~1L; /* a cancel link */
	cr_assert_eq(rctx_cancel(ch.link[mid]), 1);
	cr_assert_eq(rctx_err(ch.link[ch.n]), -ECANCELED);
	cr_assert_eq(rctx_err(ch.link[mid - 1]), 0);
	cr_assert_eq(rctx_err(ch.link[0]), 0);
	release_all(&ch);
}
