/* SPDX-License-Identifier: MIT */
/*
 * An indexed binary min-heap over an array of pointers (libuv's
 * heap-inl.h, on an array): each element learns its index, so that it can
 * be removed from the middle in O(log n). The element type is the caller's:
 * it passes an order and an index setter. Single-threaded. A leaf.
 */
#ifndef RINGCTX_HEAP_H
#define RINGCTX_HEAP_H

#include <stdbool.h>
#include <stddef.h>

#include "compiler.h"
#include "fault.h"

struct heap {
	void **a;
	size_t n, cap;
	bool (*less)(const void *x, const void *y);
	void (*set_idx)(void *x, size_t i);
};

#define HEAP_INIT(less_, set_idx_) { .less = (less_), .set_idx = (set_idx_) }

static inline void heap_set(struct heap *h, size_t i, void *x)
{
	h->a[i] = x;
	h->set_idx(x, i);
}

static inline void *heap_min(const struct heap *h)
{
	return h->n ? h->a[0] : NULL;
}

static inline void heap_up(struct heap *h, size_t i)
{
	void *x = h->a[i];

	while (i > 0 && h->less(x, h->a[(i - 1) / 2])) {
		heap_set(h, i, h->a[(i - 1) / 2]);
		i = (i - 1) / 2;
	}
	heap_set(h, i, x);
}

static inline void heap_down(struct heap *h, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, m = i;
		void *t;

		if (l < h->n && h->less(h->a[l], h->a[m]))
			m = l;
		if (l + 1 < h->n && h->less(h->a[l + 1], h->a[m]))
			m = l + 1;
		if (m == i)
			return;
		t = h->a[i];
		heap_set(h, i, h->a[m]);
		heap_set(h, m, t);
		i = m;
	}
}

/* false if the array could not grow (x is then not in the heap). */
static inline bool heap_push(struct heap *h, void *x)
{
	if (h->n == h->cap) {
		size_t cap = h->cap ? h->cap * 2 : 256;
		void **a = rctx__realloc(h->a, cap * sizeof(*a));

		if (!a)
			return false;
		h->a = a;
		h->cap = cap;
	}
	heap_set(h, h->n++, x);
	heap_up(h, h->n - 1);
	return true;
}

/* Remove the element at index i (as last told to set_idx). */
static inline void heap_remove(struct heap *h, size_t i)
{
	void *last;

	RCTX_ASSERT(i < h->n);
	last = h->a[--h->n];

	if (i == h->n)
		return;
	heap_set(h, i, last);
	heap_down(h, i);
	heap_up(h, i);
}

static inline void heap_free(struct heap *h)
{
	free(h->a);
	h->a = NULL;
	h->n = h->cap = 0;
}

#endif /* RINGCTX_HEAP_H */
