/* Description: the per-thread object caches (lib/pool.h): an object freed on
 * its thread is reused there, one freed elsewhere goes back home, a cache
 * keeps at most POOL_DEPTH objects per class, and a thread's exit gives
 * its objects back to malloc. Steady-state create+cancel then makes no
 * allocation at all. */
/* tsan: yes */
#include <criterion/criterion.h>
#include <malloc.h>
#include <pthread.h>
#include <stdlib.h>

#include "helpers.h"
#include "../lib/pool.h"

TestSuite(pool, .timeout = 60);

static void need(unsigned mode)
{
	if ((rctx__pool_mode() & mode) != mode)
		cr_skip_test("this build keeps no per-thread cache%s (valgrind, "
			     "fault injection, or ASan for objects sent home)",
			     mode & POOL_SENDS_HOME ? " with homes" : "");
}

struct obj {
	void *p;
	uint8_t cls, home;
};

static struct obj get(size_t size)
{
	struct obj o = { .cls = pool_class(size) };

	o.p = rctx__pool_get(size, o.cls, &o.home);
	cr_assert(o.p);
	return o;
}

static void put(struct obj o)
{
	rctx__pool_put(o.p, o.cls, o.home);
}

Test(pool, classes_round_up_and_large_objects_are_malloc)
{
	cr_assert_eq(pool_class(1), 1);
	cr_assert_eq(pool_class(POOL_QUANTUM), 1);
	cr_assert_eq(pool_class(POOL_QUANTUM + 1), 2);
	cr_assert_eq(pool_class(POOL_QUANTUM * POOL_CLASSES), POOL_CLASSES);
	cr_assert_eq(pool_class(POOL_QUANTUM * POOL_CLASSES + 1), 0);
	put(get(POOL_QUANTUM * POOL_CLASSES + 100)); /* plain malloc/free */
}

Test(pool, an_object_freed_on_its_thread_is_reused_there)
{
	struct obj a, b;

	need(POOL_CACHES);
	a = get(100);
	put(a);
	b = get(120); /* same class */
	cr_assert_eq(b.p, a.p);
	put(b);
}

struct handoff {
	struct obj o;
};

static void *put_elsewhere(void *arg)
{
	put(((struct handoff *)arg)->o);
	return NULL;
}

Test(pool, an_object_freed_on_another_thread_goes_home)
{
	struct handoff h;
	pthread_t t;
	struct obj again;

	need(POOL_CACHES | POOL_SENDS_HOME);
	h.o = get(200);
	cr_assert_neq(h.o.home, 0);
	cr_assert_eq(pthread_create(&t, NULL, put_elsewhere, &h), 0);
	pthread_join(t, NULL);
	again = get(200);
	cr_assert_eq(again.p, h.o.p, "the object came back to its home cache");
	put(again);
}

Test(pool, a_cache_keeps_at_most_pool_depth_per_class)
{
	enum { N = POOL_DEPTH + 64 };
	static struct obj o[N], back[N];
	int reused = 0;

	need(POOL_CACHES);
	for (int i = 0; i < N; i++)
		o[i] = get(64);
	for (int i = 0; i < N; i++)
		put(o[i]);
	for (int i = 0; i < N; i++) {
		back[i] = get(64);
		for (int j = 0; j < N; j++)
			if (back[i].p == o[j].p) {
				reused++;
				break;
			}
	}
	/* malloc may hand freed ones back too: at least the cached ones. */
	cr_assert_geq(reused, POOL_DEPTH);
	for (int i = 0; i < N; i++)
		put(back[i]);
}

static void *fill_and_exit(void *arg)
{
	enum { N = POOL_DEPTH };
	struct obj o[N];

	(void)arg;
	for (int i = 0; i < N; i++)
		o[i] = get(POOL_QUANTUM * POOL_CLASSES);
	for (int i = 0; i < N; i++)
		put(o[i]);
	return (void *)(uintptr_t)(rctx__pool_mode() & POOL_CACHES);
}

Test(pool, a_thread_exit_gives_its_objects_back_to_malloc)
{
	size_t before, after;
	pthread_t t;
	void *cached;

	need(POOL_CACHES);
	before = mallinfo2().uordblks;
	cr_assert_eq(pthread_create(&t, NULL, fill_and_exit, NULL), 0);
	pthread_join(t, &cached);
	after = mallinfo2().uordblks;
	cr_assert(cached, "the thread cached its objects");
	/* 64 KiB were cached by the thread: none of it is still in use. */
	cr_assert_lt(after, before + POOL_DEPTH * POOL_QUANTUM * POOL_CLASSES / 2,
		     "in use before %zu, after %zu", before, after);
}

Test(pool, steady_state_create_and_cancel_allocates_nothing)
{
	size_t before;

	need(POOL_CACHES);
	for (int i = 0; i < 1000; i++) {
		rctx_t *c = rctx_with_cancel(rctx_background());
		rctx_t *v = rctx_with_value(c, "k", NULL);

		rctx_release(v);
		rctx_release(c);
	}
	before = mallinfo2().uordblks;
	for (int i = 0; i < 100000; i++) {
		rctx_t *c = rctx_with_cancel(rctx_background());
		rctx_t *v = rctx_with_value(c, "k", NULL);

		cr_assert(c && v);
		rctx_release(v);
		rctx_release(c);
	}
	cr_assert_eq(mallinfo2().uordblks, before, "no heap growth or churn");
}
