/* Description: the cancellation tree, including its multi-threaded
 * behaviour: parents finish children (through value contexts), children
 * finishing first leave parents untouched, cancelled and stopped children
 * leave the parent's child set (a million create/cancel cycles without memory
 * growth), children of done parents, simultaneous and interlocked cancels,
 * creation racing a cancel, racing cause readers, and concurrent ref/unref,
 * done_fd and waits. Iteration counts shrink under ThreadSanitizer and
 * valgrind (RCTX_TEST_SCALE overrides). */
/* tsan: yes */
#include <criterion/criterion.h>
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "ringctx.h"
#include "helpers.h"

TestSuite(thread_tree, .timeout = 60);

#define C1 (-EPIPE)
#define C2 (-ECONNRESET)

static int key_a, key_b;

/* ---- single-threaded tree shape ------------------------------------------ */

Test(thread_tree, parent_finishes_children_through_values)
{
	rctx_t *p = rctx_with_cancel(rctx_background());
	rctx_t *v = rctx_with_value(p, &key_a, &key_b);
	rctx_t *c1 = rctx_with_cancel(v);
	rctx_t *c2 = rctx_with_timeout(v, MS(60000));
	rctx_t *v2 = rctx_with_value(c1, &key_b, &key_a);
	rctx_t *gc = rctx_with_cancel(v2);
	rctx_t *gt = rctx_with_deadline(c2, rctx_now() + MS(60000));
	rctx_t *all[] = { p, v, c1, c2, v2, gc, gt };
	int fds[7];
	for (int i = 0; i < 7; i++) {
		cr_assert_not_null(all[i]);
		fds[i] = rctx_done_fd(all[i]);
		cr_assert_geq(fds[i], 0);
		cr_assert_eq(th_readable(fds[i], 0), 0);
	}
	cr_assert_eq(rctx_cancel_cause(p, C1), 1);
	for (int i = 0; i < 7; i++) {
		cr_assert_eq(rctx_err(all[i]), -ECANCELED, "node %d", i);
		cr_assert_eq(rctx_cause(all[i]), C1, "node %d", i);
		cr_assert_eq(th_readable(fds[i], 0), 1, "node %d", i);
	}
	for (int i = 2; i < 7; i++)
		if (all[i] != v && all[i] != v2)
			cr_assert_eq(rctx_cancel(all[i]), 0, "node %d already ended", i);
	for (int i = 6; i >= 0; i--)
		rctx_release(all[i]);
}

Test(thread_tree, child_finishing_first_leaves_parent_untouched)
{
	rctx_t *p = rctx_with_cancel(rctx_background());
	rctx_t *v = rctx_with_value(p, &key_a, &key_b);
	rctx_t *c = rctx_with_cancel(v);
	rctx_t *sib = rctx_with_cancel(v);
	rctx_t *t = rctx_with_timeout(p, MS(5));
	int pfd = rctx_done_fd(p);
	cr_assert_eq(rctx_cancel_cause(c, C2), 1);
	cr_assert_eq(rctx_wait(t, rctx_now() + MS(TH_PATIENCE_MS)), 0);
	cr_assert_eq(rctx_err(t), -ETIMEDOUT);
	cr_assert_eq(rctx_err(c), -ECANCELED);
	cr_assert_eq(rctx_err(p), 0, "child's cancel reached the parent");
	cr_assert_eq(rctx_cause(p), 0);
	cr_assert_eq(th_readable(pfd, 10), 0);
	cr_assert_eq(rctx_err(sib), 0, "child's cancel reached a sibling");
	cr_assert_eq(rctx_value(c, &key_a), &key_b);
	/* the parent still works as a parent */
	rctx_t *c3 = rctx_with_cancel(p);
	cr_assert_eq(rctx_err(c3), 0);
	cr_assert_eq(rctx_cancel(p), 1);
	cr_assert_eq(rctx_err(c3), -ECANCELED);
	cr_assert_eq(rctx_err(sib), -ECANCELED);
	cr_assert_eq(rctx_cause(c), C2, "the child kept its own cause");
	cr_assert_eq(rctx_err(t), -ETIMEDOUT, "the timed-out child kept its error");
	rctx_release(c3);
	rctx_release(t);
	rctx_release(sib);
	rctx_release(c);
	rctx_release(v);
	rctx_release(p);
}

Test(thread_tree, child_of_done_parent_is_done_at_creation)
{
	rctx_t *p = rctx_with_cancel(rctx_background());
	rctx_t *v = rctx_with_value(p, &key_a, NULL);
	rctx_cancel_cause(p, C1);
	rctx_t *kids[] = {
		rctx_with_cancel(p),
		rctx_with_cancel(v),
		rctx_with_timeout(v, MS(60000)),
		rctx_with_deadline(p, rctx_now() + MS(60000)),
		rctx_with_timeout_cause(p, MS(60000), C2),
	};
	for (int i = 0; i < 5; i++) {
		cr_assert_not_null(kids[i]);
		cr_assert_eq(rctx_err(kids[i]), -ECANCELED, "kid %d", i);
		cr_assert_eq(rctx_cause(kids[i]), C1, "kid %d", i);
		cr_assert_eq(th_readable(rctx_done_fd(kids[i]), 0), 1, "kid %d", i);
		cr_assert_eq(rctx_cancel(kids[i]), 0, "kid %d", i);
	}
	for (int i = 0; i < 5; i++)
		rctx_release(kids[i]);

	rctx_t *t = rctx_with_timeout(rctx_background(), 0);
	rctx_t *tk = rctx_with_cancel(t);
	cr_assert_eq(rctx_err(tk), -ETIMEDOUT, "child of a timed-out parent");
	cr_assert_eq(rctx_cause(tk), -ETIMEDOUT);
	rctx_release(tk);
	rctx_release(t);
	rctx_release(v);
	rctx_release(p);
}

/* ---- child set: no growth ------------------------------------------------- */

static size_t heap_in_use(void)
{
	struct mallinfo2 mi = mallinfo2();
	return mi.uordblks + mi.hblkhd;
}

static int lowest_free_fd(void)
{
	int fd = dup(0);
	if (fd >= 0)
		close(fd);
	return fd;
}

static void must_not_run(void *arg)
{
	(void)arg;
	abort();
}

enum cycle_kind { CY_CANCEL, CY_RELEASE, CY_TIMEOUT, CY_AFTER_STOP, CY_DONE_FD };

static void cycle(rctx_t *parent, enum cycle_kind k)
{
	rctx_t *c;
	rctx_after_t *h;
	switch (k) {
	case CY_CANCEL:
		c = rctx_with_cancel(parent);
		cr_assert_eq(rctx_cancel(c), 1);
		rctx_unref(c);
		break;
	case CY_RELEASE:
		rctx_release(rctx_with_cancel(parent));
		break;
	case CY_TIMEOUT:
		c = rctx_with_timeout(parent, MS(3600000));
		cr_assert_eq(rctx_cancel(c), 1);
		rctx_unref(c);
		break;
	case CY_AFTER_STOP:
		h = rctx_after_func(parent, must_not_run, NULL);
		cr_assert(rctx_after_stop(h));
		rctx_after_release(h);
		break;
	case CY_DONE_FD:
		c = rctx_with_cancel(parent);
		cr_assert_geq(rctx_done_fd(c), 0);
		rctx_release(c);
		break;
	}
}

static void run_cycles(enum cycle_kind k, long n, const char *name)
{
	rctx_t *parent = rctx_with_cancel(rctx_background());
	rctx_t *pv = rctx_with_value(parent, &key_a, NULL);
	long warm = n / 10 + 1;
	for (long i = 0; i < warm; i++)
		cycle(i & 1 ? pv : parent, k);
	/* timers of cancelled contexts end asynchronously */
	struct rctx_runtime_stats st;
	cr_assert(th_runtime_settle(), "the runtime never expired a sentinel");
	cr_assert(WAIT_UNTIL((rctx_runtime_stats(&st), st.timers_live == 0), TH_PATIENCE_MS));
	size_t m0 = heap_in_use();
	int fd0 = lowest_free_fd();
	int64_t t0 = rctx_now();
	for (long i = 0; i < n; i++)
		cycle(i & 1 ? pv : parent, k);
	int64_t t1 = rctx_now();
	cr_assert(th_runtime_settle(), "the runtime never expired a sentinel");
	cr_assert(WAIT_UNTIL((rctx_runtime_stats(&st), st.timers_live == 0), TH_PATIENCE_MS));
	size_t m1 = heap_in_use();
	int fd1 = lowest_free_fd();
	/* a child set that kept dead entries would make this cancel slow (and
	 * grow the heap, measured above): only a stuck cancel fails here */
	int64_t c0 = rctx_now();
	cr_assert_eq(rctx_cancel(parent), 1);
	int64_t cdt = rctx_now() - c0;
	long grow = (long)m1 - (long)m0;
	fprintf(stderr, "%s: %ld cycles, %.0f ns/cycle, heap %+ld bytes, final cancel %.3f ms\n",
		name, n, (t1 - t0) / (double)n, grow, cdt / 1e6);
	cr_assert_eq(fd1, fd0, "%s: file descriptors leaked (%d -> %d)", name, fd0, fd1);
	if (th_plain_malloc())
		cr_assert_lt(grow, 4L << 20, "%s: heap grew by %ld bytes over %ld cycles",
			     name, grow, n);
	cr_assert_lt(cdt, MS(TH_PATIENCE_MS), "%s: cancelling the parent took %.3f ms", name,
		     cdt / 1e6);
	rctx_release(pv);
	rctx_release(parent);
}

Test(thread_tree, million_create_cancel_cycles_do_not_grow)
{
	run_cycles(CY_CANCEL, th_scaled(1000000), "with_cancel+cancel+unref");
}

Test(thread_tree, release_cycles_do_not_grow)
{
	run_cycles(CY_RELEASE, th_scaled(300000), "with_cancel+release");
}

Test(thread_tree, timeout_cancel_cycles_do_not_grow)
{
	run_cycles(CY_TIMEOUT, th_scaled(100000), "with_timeout+cancel+unref");
}

Test(thread_tree, after_func_stop_cycles_do_not_grow)
{
	run_cycles(CY_AFTER_STOP, th_scaled(300000), "after_func+stop+release");
}

Test(thread_tree, done_fd_cycles_close_their_fds)
{
	run_cycles(CY_DONE_FD, th_scaled(20000), "with_cancel+done_fd+release");
}

/* ---- simultaneous cancels ---------------------------------------------------- */

#define TREE_MAX 128

struct tree {
	rctx_t *node[TREE_MAX];
	bool cancellable[TREE_MAX];
	atomic_int ended_by_call[TREE_MAX];
	int n;
	pthread_barrier_t bar;
};

static void tree_build(struct tree *t, rctx_t *parent, int depth)
{
	for (int i = 0; i < 4; i++) {
		cr_assert_lt(t->n, TREE_MAX);
		int idx = t->n++;
		rctx_t *c;
		if (idx % 5 == 4) {
			/* a value context between levels */
			rctx_t *v = rctx_with_value(parent, &key_a, NULL);
			t->node[idx] = v;
			t->cancellable[idx] = false;
			cr_assert_lt(t->n, TREE_MAX);
			idx = t->n++;
			c = rctx_with_timeout(v, MS(60000));
		} else {
			c = rctx_with_cancel(parent);
		}
		cr_assert_not_null(c);
		t->node[idx] = c;
		t->cancellable[idx] = true;
		if (depth > 1)
			tree_build(t, c, depth - 1);
	}
}

static void *tree_canceller(void *arg)
{
	struct tree *t = arg;
	unsigned seed = (unsigned)(uintptr_t)pthread_self();
	int order[TREE_MAX];
	for (int i = 0; i < t->n; i++)
		order[i] = i;
	for (int i = t->n - 1; i > 0; i--) {
		int j = rand_r(&seed) % (i + 1), x = order[i];
		order[i] = order[j];
		order[j] = x;
	}
	pthread_barrier_wait(&t->bar);
	for (int i = 0; i < t->n; i++) {
		int k = order[i];
		if (!t->cancellable[k])
			continue;
		if (rctx_cancel(t->node[k]) == 1)
			atomic_fetch_add(&t->ended_by_call[k], 1);
	}
	return NULL;
}

Test(thread_tree, simultaneous_cancels_of_a_4ary_tree)
{
	enum { THREADS = 6 };
	int rounds = (int)th_scaled(40);
	for (int r = 0; r < rounds; r++) {
		struct tree *t = calloc(1, sizeof *t);
		rctx_t *root = rctx_with_cancel(rctx_background());
		t->node[t->n] = root;
		t->cancellable[t->n++] = true;
		tree_build(t, root, 3);
		cr_assert_geq(t->n, 85);
		pthread_barrier_init(&t->bar, NULL, THREADS);
		pthread_t th[THREADS];
		for (int i = 0; i < THREADS; i++)
			pthread_create(&th[i], NULL, tree_canceller, t);
		for (int i = 0; i < THREADS; i++)
			pthread_join(th[i], NULL);
		for (int i = 0; i < t->n; i++) {
			cr_assert_eq(rctx_err(t->node[i]), -ECANCELED, "round %d node %d", r, i);
			cr_assert_leq(atomic_load(&t->ended_by_call[i]), 1,
				      "node %d: two cancels both claimed to end it", i);
		}
		cr_assert_eq(atomic_load(&t->ended_by_call[0]), 1, "root ended exactly once");
		for (int i = t->n - 1; i >= 0; i--)
			rctx_release(t->node[i]);
		pthread_barrier_destroy(&t->bar);
		free(t);
	}
}

/* ---- interlocked cancels ------------------------------------------------------- */

struct pair {
	rctx_t *parent, *child;
	pthread_barrier_t *bar;
	atomic_int done;
};

static void *wait_parent_cancel_child(void *arg)
{
	struct pair *p = arg;
	if (rctx_wait(p->parent, rctx_now() + MS(TH_PATIENCE_MS)) == 0)
		rctx_cancel(p->child);
	atomic_store(&p->done, 1);
	return NULL;
}

Test(thread_tree, interlocked_cancel_from_thread_waiting_on_parent)
{
	int rounds = (int)th_scaled(100);
	for (int r = 0; r < rounds; r++) {
		rctx_t *parent = rctx_with_cancel(rctx_background());
		rctx_t *child = rctx_with_cancel(parent);
		struct pair p = { parent, child, NULL, 0 };
		pthread_t th;
		pthread_create(&th, NULL, wait_parent_cancel_child, &p);
		if (r & 1)
			th_sleep_ms(1);
		cr_assert_eq(rctx_cancel(parent), 1);
		cr_assert_eq(rctx_wait(child, rctx_now() + MS(TH_PATIENCE_MS)), 0);
		cr_assert(WAIT_UNTIL(atomic_load(&p.done), TH_PATIENCE_MS),
			  "round %d: waiter stuck", r);
		pthread_join(th, NULL);
		cr_assert_eq(rctx_err(child), -ECANCELED);
		rctx_release(child);
		rctx_release(parent);
	}
}

static void cancel_arg(void *arg) { rctx_cancel(arg); }

Test(thread_tree, interlocked_cancel_from_after_func)
{
	/* after-func on the parent cancels the child, and one on a child cancels
	 * the parent: neither may deadlock */
	rctx_t *parent = rctx_with_cancel(rctx_background());
	rctx_t *child = rctx_with_cancel(parent);
	rctx_t *other = rctx_with_cancel(rctx_background());
	rctx_t *other_child = rctx_with_cancel(other);
	rctx_after_t *h1 = rctx_after_func(parent, cancel_arg, child);
	rctx_after_t *h2 = rctx_after_func(other_child, cancel_arg, other);
	rctx_cancel(parent);
	rctx_cancel(other_child);
	cr_assert_eq(rctx_wait(child, rctx_now() + MS(TH_PATIENCE_MS)), 0);
	cr_assert_eq(rctx_wait(other, rctx_now() + MS(TH_PATIENCE_MS)), 0,
		     "after-func cancelling the parent did not complete");
	cr_assert_eq(rctx_err(other), -ECANCELED);
	cr_assert_eq(rctx_cause(other_child), -ECANCELED);
	rctx_after_release(h2);
	rctx_after_release(h1);
	rctx_release(other_child);
	rctx_release(other);
	rctx_release(child);
	rctx_release(parent);
}

static void *cancel_at_barrier(void *arg)
{
	struct pair *p = arg;
	pthread_barrier_wait(p->bar);
	rctx_cancel(p->child);
	return NULL;
}

Test(thread_tree, parent_and_child_cancelled_at_once_do_not_deadlock)
{
	int rounds = (int)th_scaled(500);
	pthread_barrier_t bar;
	pthread_barrier_init(&bar, NULL, 2);
	for (int r = 0; r < rounds; r++) {
		rctx_t *parent = rctx_with_cancel(rctx_background());
		rctx_t *mid = rctx_with_cancel(parent);
		rctx_t *child = rctx_with_cancel(mid);
		struct pair p = { parent, child, &bar, 0 };
		pthread_t th;
		pthread_create(&th, NULL, cancel_at_barrier, &p);
		pthread_barrier_wait(&bar);
		rctx_cancel_cause(parent, C1);
		pthread_join(th, NULL);
		cr_assert_eq(rctx_err(child), -ECANCELED);
		int cc = rctx_cause(child);
		cr_assert(cc == C1 || cc == -ECANCELED, "round %d: cause %d", r, cc);
		cr_assert_eq(rctx_cause(mid), C1);
		rctx_release(child);
		rctx_release(mid);
		rctx_release(parent);
	}
	pthread_barrier_destroy(&bar);
}

/* ---- create while cancel ---------------------------------------------------------- */

#define RACE_MAX 4096

struct create_race {
	rctx_t *parent;
	rctx_t *kids[RACE_MAX];
	rctx_t *extra[RACE_MAX];  /* value contexts to release */
	int n;
	pthread_barrier_t bar;
};

static void *creator(void *arg)
{
	struct create_race *cr = arg;
	int after_done = 0;
	pthread_barrier_wait(&cr->bar);
	while (cr->n < RACE_MAX && after_done < 20) {
		int i = cr->n;
		rctx_t *c;
		switch (i % 4) {
		case 0: c = rctx_with_cancel(cr->parent); break;
		case 1: c = rctx_with_timeout(cr->parent, MS(60000)); break;
		case 2:
			cr->extra[i] = rctx_with_value(cr->parent, &key_b, NULL);
			c = rctx_with_cancel(cr->extra[i]);
			break;
		default: c = rctx_with_deadline_cause(cr->parent, rctx_now() + MS(60000), C2); break;
		}
		cr->kids[i] = c;
		cr->n = i + 1;
		if (rctx_err(cr->parent) != 0)
			after_done++;
	}
	return NULL;
}

static void *delayed_canceller(void *arg)
{
	struct create_race *cr = arg;
	pthread_barrier_wait(&cr->bar);
	struct timespec ts = { 0, (long)(rand() % 200) * 1000L };
	nanosleep(&ts, NULL);
	rctx_cancel_cause(cr->parent, C1);
	return NULL;
}

Test(thread_tree, children_created_during_parent_cancel_all_end)
{
	int rounds = (int)th_scaled(100);
	long total = 0;
	for (int r = 0; r < rounds; r++) {
		struct create_race *cr = calloc(1, sizeof *cr);
		cr->parent = rctx_with_cancel(rctx_background());
		pthread_barrier_init(&cr->bar, NULL, 2);
		pthread_t a, b;
		pthread_create(&a, NULL, creator, cr);
		pthread_create(&b, NULL, delayed_canceller, cr);
		pthread_join(b, NULL);
		pthread_join(a, NULL);
		cr_assert_eq(rctx_err(cr->parent), -ECANCELED);
		for (int i = 0; i < cr->n; i++) {
			cr_assert_not_null(cr->kids[i]);
			cr_assert_eq(rctx_err(cr->kids[i]), -ECANCELED,
				     "round %d: child %d of %d alive under a done parent", r, i,
				     cr->n);
			cr_assert_eq(rctx_cause(cr->kids[i]), C1, "round %d child %d", r, i);
		}
		total += cr->n;
		for (int i = 0; i < cr->n; i++) {
			rctx_release(cr->kids[i]);
			rctx_release(cr->extra[i]);
		}
		rctx_release(cr->parent);
		pthread_barrier_destroy(&cr->bar);
		free(cr);
	}
	fprintf(stderr, "%ld children created across %d races\n", total, rounds);
}

/* ---- cause race ----------------------------------------------------------------- */

struct cause_race {
	rctx_t *ctx[2];   /* the cancelled ctx and a grandchild through a value */
	int fd[2];
	pthread_barrier_t bar;
	atomic_int stop;
	atomic_int bad_cause, err_before_done, cause_without_err, no_cause_after_err;
	atomic_long reads;
};

static void *cause_reader(void *arg)
{
	struct cause_race *cr = arg;
	pthread_barrier_wait(&cr->bar);
	while (!atomic_load(&cr->stop)) {
		for (int k = 0; k < 2; k++) {
			int ca = rctx_cause(cr->ctx[k]);
			if (ca != 0 && ca != C1)
				atomic_fetch_add(&cr->bad_cause, 1);
			if (ca != 0 && rctx_err(cr->ctx[k]) == 0)
				atomic_fetch_add(&cr->cause_without_err, 1);
			int e = rctx_err(cr->ctx[k]);
			if (e != 0) {
				if (th_readable(cr->fd[k], 0) != 1)
					atomic_fetch_add(&cr->err_before_done, 1);
				if (rctx_cause(cr->ctx[k]) != C1)
					atomic_fetch_add(&cr->no_cause_after_err, 1);
			}
			atomic_fetch_add(&cr->reads, 1);
		}
	}
	return NULL;
}

struct race_result {
	int bad_cause, err_before_done, cause_without_err, no_cause_after_err;
	int round;
	long reads;
};

/* Cancel with cause C1 while readers poll err, cause and the done fd of the
 * context and of a grandchild; stop at the first round with a violation. */
static struct race_result run_cause_race(void)
{
	enum { READERS = 3 };
	int rounds = (int)th_scaled(200);
	struct race_result res = { 0 };
	for (int r = 0; r < rounds; r++) {
		struct cause_race *cr = calloc(1, sizeof *cr);
		rctx_t *p = rctx_with_cancel(rctx_background());
		rctx_t *v = rctx_with_value(p, &key_a, NULL);
		cr->ctx[0] = p;
		cr->ctx[1] = rctx_with_cancel(v);
		cr->fd[0] = rctx_done_fd(cr->ctx[0]);
		cr->fd[1] = rctx_done_fd(cr->ctx[1]);
		pthread_barrier_init(&cr->bar, NULL, READERS + 1);
		pthread_t th[READERS];
		for (int i = 0; i < READERS; i++)
			pthread_create(&th[i], NULL, cause_reader, cr);
		pthread_barrier_wait(&cr->bar);
		struct timespec ts = { 0, (long)(r % 20) * 10000L };
		nanosleep(&ts, NULL);
		rctx_cancel_cause(p, C1);
		th_sleep_ms(1);
		atomic_store(&cr->stop, 1);
		for (int i = 0; i < READERS; i++)
			pthread_join(th[i], NULL);
		res.round = r;
		res.bad_cause += atomic_load(&cr->bad_cause);
		res.err_before_done += atomic_load(&cr->err_before_done);
		res.cause_without_err += atomic_load(&cr->cause_without_err);
		res.no_cause_after_err += atomic_load(&cr->no_cause_after_err);
		res.reads += atomic_load(&cr->reads);
		rctx_release(cr->ctx[1]);
		rctx_release(v);
		rctx_release(p);
		pthread_barrier_destroy(&cr->bar);
		free(cr);
	}
	fprintf(stderr, "%ld racing reads over %d rounds\n", res.reads, rounds);
	return res;
}

Test(thread_tree, racing_cause_reader_sees_zero_or_final_cause)
{
	struct race_result res = run_cause_race();
	cr_assert_eq(res.bad_cause, 0, "%d reads saw a cause other than 0 or C1",
		     res.bad_cause);
	cr_assert_eq(res.cause_without_err, 0, "%d reads saw a cause while err was 0",
		     res.cause_without_err);
	cr_assert_eq(res.no_cause_after_err, 0,
		     "%d reads saw err set but not the final cause", res.no_cause_after_err);
}

Test(thread_tree, racing_err_reader_finds_done_fd_readable)
{
	struct race_result res = run_cause_race();
	cr_assert_eq(res.err_before_done, 0,
		     "%d reads saw err non-zero while the done fd was not readable "
		     "(of %ld reads)", res.err_before_done, res.reads);
}

/* ---- concurrent ref/unref, done_fd and waits ---------------------------------- */

struct shared {
	rctx_t *ctx;
	pthread_barrier_t bar;
	int fd[8];
	int wait_rc[8];
	atomic_int idx;
	long iters;
};

static void *refunref(void *arg)
{
	struct shared *s = arg;
	pthread_barrier_wait(&s->bar);
	for (long i = 0; i < s->iters; i++) {
		rctx_t *c = rctx_ref(s->ctx);
		if (rctx_value(c, &key_a) != &key_b)
			abort();
		rctx_unref(c);
	}
	return NULL;
}

Test(thread_tree, concurrent_ref_unref_keeps_ctx_alive)
{
	enum { T = 4 };
	struct shared s = { .iters = th_scaled(50000) };
	rctx_t *p = rctx_with_cancel(rctx_background());
	s.ctx = rctx_with_value(p, &key_a, &key_b);
	pthread_barrier_init(&s.bar, NULL, T);
	pthread_t th[T];
	for (int i = 0; i < T; i++)
		pthread_create(&th[i], NULL, refunref, &s);
	for (int i = 0; i < T; i++)
		pthread_join(th[i], NULL);
	cr_assert_eq(rctx_value(s.ctx, &key_a), &key_b);
	rctx_release(s.ctx);
	rctx_release(p);
	pthread_barrier_destroy(&s.bar);
}

static void *get_done_fd(void *arg)
{
	struct shared *s = arg;
	int i = atomic_fetch_add(&s->idx, 1);
	pthread_barrier_wait(&s->bar);
	s->fd[i] = rctx_done_fd(s->ctx);
	return NULL;
}

Test(thread_tree, concurrent_first_done_fd_calls_agree)
{
	enum { T = 8 };
	int rounds = (int)th_scaled(100);
	int fd0 = lowest_free_fd();
	for (int r = 0; r < rounds; r++) {
		struct shared s = { 0 };
		rctx_t *c = rctx_with_cancel(rctx_background());
		s.ctx = c;
		pthread_barrier_init(&s.bar, NULL, T);
		pthread_t th[T];
		for (int i = 0; i < T; i++)
			pthread_create(&th[i], NULL, get_done_fd, &s);
		for (int i = 0; i < T; i++)
			pthread_join(th[i], NULL);
		cr_assert_geq(s.fd[0], 0);
		for (int i = 1; i < T; i++)
			cr_assert_eq(s.fd[i], s.fd[0], "round %d: two done fds for one ctx", r);
		rctx_cancel(c);
		cr_assert_eq(th_readable(s.fd[0], 0), 1);
		rctx_release(c);
		pthread_barrier_destroy(&s.bar);
	}
	cr_assert_eq(lowest_free_fd(), fd0, "eventfds leaked by racing first calls");
}

static void *waiter(void *arg)
{
	struct shared *s = arg;
	int i = atomic_fetch_add(&s->idx, 1);
	pthread_barrier_wait(&s->bar);
	int64_t dl = (i & 1) ? RCTX_FOREVER : rctx_now() + MS(TH_PATIENCE_MS);
	s->wait_rc[i] = rctx_wait(s->ctx, dl);
	return NULL;
}

Test(thread_tree, all_waiters_wake_on_cancel)
{
	enum { T = 8 };
	struct shared s = { 0 };
	rctx_t *p = rctx_with_cancel(rctx_background());
	rctx_t *c = rctx_with_cancel(p);
	s.ctx = rctx_with_value(c, &key_a, NULL);
	for (int i = 0; i < T; i++)
		s.wait_rc[i] = 99;
	pthread_barrier_init(&s.bar, NULL, T + 1);
	pthread_t th[T];
	for (int i = 0; i < T; i++)
		pthread_create(&th[i], NULL, waiter, &s);
	pthread_barrier_wait(&s.bar);
	th_sleep_ms(20); /* most waiters block by then; the rest return at once */
	rctx_cancel(p);
	/* the timed waiters return 0 only if woken, the others hang the join */
	for (int i = 0; i < T; i++)
		pthread_join(th[i], NULL);
	for (int i = 0; i < T; i++)
		cr_assert_eq(s.wait_rc[i], 0, "waiter %d returned %d", i, s.wait_rc[i]);
	rctx_release(s.ctx);
	rctx_release(c);
	rctx_release(p);
	pthread_barrier_destroy(&s.bar);
}

struct churn {
	rctx_t *parent;
	long iters;
	atomic_int alive_after_done;
};

static void *churner(void *arg)
{
	struct churn *ch = arg;
	for (long i = 0; i < ch->iters; i++) {
		rctx_t *c = (i & 1) ? rctx_with_cancel(ch->parent)
				    : rctx_with_timeout(ch->parent, MS(60000));
		if (!c)
			abort();
		if (i % 3 == 0)
			rctx_release(c);
		else {
			rctx_t *g = rctx_with_cancel(c);
			rctx_cancel(c);
			if (rctx_err(g) == 0)
				atomic_fetch_add(&ch->alive_after_done, 1);
			rctx_release(g);
			rctx_unref(c);
		}
	}
	return NULL;
}

Test(thread_tree, concurrent_children_churn_under_one_parent)
{
	enum { T = 4 };
	struct churn ch = { .iters = th_scaled(30000) };
	ch.parent = rctx_with_cancel(rctx_background());
	pthread_t th[T];
	for (int i = 0; i < T; i++)
		pthread_create(&th[i], NULL, churner, &ch);
	for (int i = 0; i < T; i++)
		pthread_join(th[i], NULL);
	cr_assert_eq(atomic_load(&ch.alive_after_done), 0);
	cr_assert_eq(rctx_err(ch.parent), 0, "children's cancels reached the parent");
	int64_t t0 = rctx_now();
	cr_assert_eq(rctx_cancel(ch.parent), 1);
	cr_assert_lt(rctx_now() - t0, MS(TH_PATIENCE_MS), "parent kept dead children");
	rctx_release(ch.parent);
}
