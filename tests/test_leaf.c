/* Description: the leaf layer of lib/, each unit on its own: the clock's
 * conversions, the futex mutex under contention and futex wait/wake, the
 * lock-free stacks (concurrent pushes, take-all, reversal), the eventfd
 * wake-up (one write per armed read), the indexed heap against a sorted
 * model, the user_data tags, the full-SQ policy, the ppoll sleep, the
 * completion dispatcher, and the stats counters. */
/* tsan: yes */
#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "helpers.h"
#include "../lib/clock.h"
#include "../lib/heap.h"
#include "../lib/stat.h"
#include "../lib/sync.h"
#include "../lib/uring.h"
#include "../lib/wake.h"

TestSuite(leaf, .timeout = 60);

#define NTHREADS 4

static void run_threads(void *(*fn)(void *), void *arg)
{
	pthread_t t[NTHREADS];

	for (int i = 0; i < NTHREADS; i++)
		cr_assert_eq(pthread_create(&t[i], NULL, fn, arg), 0);
	for (int i = 0; i < NTHREADS; i++)
		pthread_join(t[i], NULL);
}

static long iterations(long n)
{
	return th_scaled(n);
}

/* ---- clock ------------------------------------------------------------------ */

Test(leaf, clock_conversions_round_trip)
{
	int64_t v[] = { 0, 1, NSEC_PER_SEC - 1, NSEC_PER_SEC, 5 * NSEC_PER_SEC + 7,
			INT64_MAX };

	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		struct timespec ts = ns_to_timespec(v[i]);
		struct __kernel_timespec k = ns_to_kts(v[i]);

		cr_assert(ts.tv_nsec >= 0 && ts.tv_nsec < NSEC_PER_SEC);
		cr_assert_eq(timespec_to_ns(&ts), v[i]);
		cr_assert_eq(k.tv_sec, ts.tv_sec);
		cr_assert_eq(k.tv_nsec, ts.tv_nsec);
	}
}

Test(leaf, clock_is_monotonic)
{
	int64_t a = rctx_now(), b;

	th_sleep_ms(2);
	b = rctx_now();
	cr_assert_gt(a, 0);
	cr_assert_geq(b - a, MS(2));
}

/* ---- sync ------------------------------------------------------------------- */

static struct {
	rlock_t lock;
	long counter; /* protected by lock, deliberately not atomic */
	long n;
} mx;

static void *lock_worker(void *arg)
{
	(void)arg;
	for (long i = 0; i < mx.n; i++) {
		rlock(&mx.lock);
		mx.counter++;
		runlock(&mx.lock);
	}
	return NULL;
}

Test(leaf, rlock_excludes_under_contention)
{
	mx.n = iterations(200000);
	run_threads(lock_worker, NULL);
	cr_assert_eq(mx.counter, NTHREADS * mx.n);
	cr_assert_eq(atomic_load(&mx.lock.v), 0, "the lock is left free");
}

Test(leaf, futex_wait_returns_at_once_on_changed_value)
{
	_Atomic int w = 1;

	cr_assert_eq(rctx__futex_wait(&w, 0, RCTX_FOREVER), 0);
}

Test(leaf, futex_wait_times_out)
{
	_Atomic int w = 0;
	int64_t t0 = rctx_now();

	cr_assert_eq(rctx__futex_wait(&w, 0, t0 + MS(20)), -ETIMEDOUT);
	cr_assert_geq(rctx_now() - t0, MS(20));
}

static _Atomic int fword;
static _Atomic int fwoken;

static void *futex_sleeper(void *arg)
{
	(void)arg;
	while (atomic_load(&fword) == 0)
		rctx__futex_wait(&fword, 0, rctx_now() + MS(TH_PATIENCE_MS));
	atomic_fetch_add(&fwoken, 1);
	return NULL;
}

Test(leaf, futex_wake_all_wakes_every_sleeper)
{
	pthread_t t[NTHREADS];

	for (int i = 0; i < NTHREADS; i++)
		cr_assert_eq(pthread_create(&t[i], NULL, futex_sleeper, NULL), 0);
	atomic_store(&fword, 1);
	rctx__futex_wake_all(&fword);
	for (int i = 0; i < NTHREADS; i++)
		pthread_join(t[i], NULL);
	cr_assert_eq(atomic_load(&fwoken), NTHREADS);
}

/* ---- lock-free stacks --------------------------------------------------------- */

struct item {
	struct item *next;
	long id;
};

static struct {
	_Atomic(struct item *) head;
	struct item *items;
	_Atomic long next_id;
	long per_thread;
} st;

static void *push_worker(void *arg)
{
	(void)arg;
	for (long i = 0; i < st.per_thread; i++) {
		struct item *it = &st.items[atomic_fetch_add(&st.next_id, 1)];

		LFSTACK_PUSH(&st.head, it, it->next);
	}
	return NULL;
}

Test(leaf, lfstack_keeps_every_concurrent_push)
{
	long n, seen = 0;
	char *mark;

	st.per_thread = iterations(50000);
	n = NTHREADS * st.per_thread;
	st.items = calloc((size_t)n, sizeof(*st.items));
	mark = calloc((size_t)n, 1);
	cr_assert(st.items && mark);
	for (long i = 0; i < n; i++)
		st.items[i].id = i;
	run_threads(push_worker, NULL);
	for (struct item *it = LFSTACK_TAKE(&st.head); it; it = it->next) {
		cr_assert_eq(mark[it->id], 0, "item %ld taken twice", it->id);
		mark[it->id] = 1;
		seen++;
	}
	cr_assert_eq(seen, n);
	cr_assert(!LFSTACK_PEEK(&st.head), "take-all leaves the stack empty");
	free(mark);
	free(st.items);
}

Test(leaf, lfstack_reverse_gives_push_order)
{
	_Atomic(struct item *) head = NULL;
	struct item it[5], *l;
	long expect = 0;

	for (int i = 0; i < 5; i++) {
		it[i].id = i;
		LFSTACK_PUSH(&head, &it[i], it[i].next);
	}
	cr_assert(LFSTACK_PEEK(&head));
	l = LIST_REVERSE(LFSTACK_TAKE(&head), next);
	for (; l; l = l->next)
		cr_assert_eq(l->id, expect++);
	cr_assert_eq(expect, 5);
	cr_assert_null(LIST_REVERSE((struct item *)NULL, next));
}

/* ---- wake-up ------------------------------------------------------------------- */

static uint64_t efd_value(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	uint64_t v = 0;

	if (poll(&p, 1, 0) != 1)
		return 0;
	cr_assert_eq(read(fd, &v, sizeof(v)), (ssize_t)sizeof(v));
	return v;
}

Test(leaf, wake_signals_once_per_armed_read)
{
	struct io_uring_sqe sqe;
	struct wake w;

	cr_assert_eq(rctx__wake_init(&w), 0);
	rctx__wake_signal(&w);
	rctx__wake_signal(&w);
	cr_assert(wake_pending(&w));
	cr_assert_eq(efd_value(w.efd), 1, "one write until the read is re-armed");
	cr_assert_eq(efd_value(w.efd), 0);

	memset(&sqe, 0, sizeof(sqe));
	rctx__wake_arm(&w, &sqe, ud_make(UD_WAKE, 0));
	cr_assert_eq(sqe.opcode, IORING_OP_READ);
	cr_assert_eq(sqe.fd, w.efd);
	cr_assert_eq(sqe.addr, (uint64_t)(uintptr_t)&w.buf);
	cr_assert_eq(ud_tag(sqe.user_data), UD_WAKE);
	cr_assert(!wake_pending(&w));
	rctx__wake_signal(&w);
	cr_assert_eq(efd_value(w.efd), 1, "armed again: the next signal writes");
	rctx__wake_close(&w);
	cr_assert_eq(w.efd, -1);
}

/* ---- heap ------------------------------------------------------------------------ */

struct hnode_t {
	long key;
	size_t idx;
	bool in;
};

static bool hn_less(const void *x, const void *y)
{
	return ((const struct hnode_t *)x)->key < ((const struct hnode_t *)y)->key;
}

static void hn_set_idx(void *x, size_t i)
{
	((struct hnode_t *)x)->idx = i;
}

static void heap_check(const struct heap *h)
{
	for (size_t i = 0; i < h->n; i++) {
		const struct hnode_t *x = h->a[i];

		cr_assert_eq(x->idx, i, "element knows its index");
		if (i)
			cr_assert(!hn_less(x, h->a[(i - 1) / 2]), "heap order at %zu", i);
	}
}

Test(leaf, heap_orders_and_removes_from_the_middle)
{
	enum { N = 1000 };
	struct heap h = HEAP_INIT(hn_less, hn_set_idx);
	static struct hnode_t nodes[N];
	long last = -1;

	srand(7);
	for (int i = 0; i < N; i++) {
		nodes[i].key = rand() % 500;
		cr_assert(heap_push(&h, &nodes[i]));
		nodes[i].in = true;
	}
	heap_check(&h);
	for (int i = 0; i < N; i += 3) { /* a third, from anywhere */
		heap_remove(&h, nodes[i].idx);
		nodes[i].in = false;
	}
	heap_check(&h);
	cr_assert_eq(h.n, (size_t)(N - (N + 2) / 3));
	while (heap_min(&h)) {
		struct hnode_t *m = heap_min(&h);

		cr_assert(m->in);
		cr_assert_geq(m->key, last, "minimum first");
		last = m->key;
		heap_remove(&h, 0);
		m->in = false;
	}
	for (int i = 0; i < N; i++)
		cr_assert(!nodes[i].in);
	heap_free(&h);
	cr_assert_null(h.a);
}

/* ---- io_uring steps ------------------------------------------------------------- */

Test(leaf, ud_tags_round_trip)
{
	uint64_t payloads[] = { 0, 1, UD_PAYLOAD_MASK, (uint64_t)(uintptr_t)&payloads };

	for (int t = UD_TARGET; t <= UD_WAKE; t++)
		for (size_t i = 0; i < sizeof(payloads) / sizeof(payloads[0]); i++) {
			uint64_t ud = ud_make((enum ud_tag)t, payloads[i]);

			cr_assert_eq(ud_tag(ud), (enum ud_tag)t);
			cr_assert_eq(ud_payload(ud), payloads[i]);
		}
	/* A user-space pointer with tag UD_TARGET is the pointer itself. */
	cr_assert_eq(ud_make(UD_TARGET, (uintptr_t)&payloads), (uint64_t)(uintptr_t)&payloads);
}

static int ring_or_skip(struct io_uring *r, unsigned entries)
{
	int ret = io_uring_queue_init(entries, r, 0);

	if (ret == -ENOSYS || ret == -EPERM)
		cr_skip_test("io_uring unavailable: %s", strerror(-ret));
	cr_assert_eq(ret, 0, "io_uring_queue_init: %s", strerror(-ret));
	return ret;
}

Test(leaf, sqe_get_makes_room_by_submitting)
{
	struct io_uring r;
	struct io_uring_sqe *s;
	int err = 0;

	ring_or_skip(&r, 2);
	for (int i = 0; i < 2; i++) {
		s = rctx__sqe_get(&r, 1, &err);
		cr_assert_not_null(s);
		io_uring_prep_nop(s);
	}
	cr_assert_eq(io_uring_sq_space_left(&r), 0);
	s = rctx__sqe_get(&r, 2, &err);
	cr_assert_not_null(s, "a full SQ is submitted to make room");
	io_uring_prep_nop(s);
	cr_assert_null(rctx__sqe_get(&r, 3, &err), "never more than the SQ holds");
	cr_assert_eq(err, -EBUSY);
	io_uring_queue_exit(&r);
}

static void count_cqe(void *owner, const struct io_uring_cqe *cqe)
{
	unsigned *n = owner;

	cr_assert_eq(ud_tag(cqe->user_data), UD_CANCEL);
	cr_assert_eq(ud_payload(cqe->user_data), 42);
	(*n)++;
}

Test(leaf, wait_cqe_sleeps_then_reap_dispatches_each_cqe)
{
	enum { N = 40 }; /* more than one batch */
	struct io_uring r;
	unsigned seen = 0;
	int64_t t0;

	ring_or_skip(&r, 64);
	t0 = rctx_now();
	cr_assert_eq(rctx__wait_cqe(&r, t0 + MS(10)), -ETIME);
	cr_assert_geq(rctx_now() - t0, MS(10));
	cr_assert_eq(rctx__wait_cqe(&r, t0), -ETIME, "a past deadline: no sleep");
	for (int i = 0; i < N; i++) {
		struct io_uring_sqe *s = io_uring_get_sqe(&r);

		io_uring_prep_nop(s);
		io_uring_sqe_set_data64(s, ud_make(UD_CANCEL, 42));
	}
	cr_assert_eq(io_uring_submit(&r), N);
	cr_assert_eq(rctx__wait_cqe(&r, rctx_now() + MS(TH_PATIENCE_MS)), 0);
	while (seen < N && rctx_now() - t0 < MS(TH_PATIENCE_MS)) {
		unsigned before = seen;

		cr_assert_eq(rctx__reap(&r, &seen, count_cqe), seen - before);
		if (seen < N)
			rctx__wait_cqe(&r, rctx_now() + MS(100));
	}
	cr_assert_eq(seen, N);
	cr_assert_eq(io_uring_cq_ready(&r), 0);
	io_uring_queue_exit(&r);
}

/* ---- stats ----------------------------------------------------------------------- */

static _Atomic uint64_t shared_ctr;

static void *stat_worker(void *arg)
{
	long n = *(long *)arg;

	for (long i = 0; i < n; i++)
		stat_add(&shared_ctr, 2);
	stat_sub(&shared_ctr, (uint64_t)n);
	return NULL;
}

Test(leaf, stats_count_exactly)
{
	_Atomic uint64_t own = 0;
	long n = iterations(100000);

	stat_add_owner(&own, 5);
	stat_sub_owner(&own, 2);
	cr_assert_eq(stat_get(&own), 3);
	run_threads(stat_worker, &n);
	cr_assert_eq(stat_get(&shared_ctr), (uint64_t)(NTHREADS * n));
}
