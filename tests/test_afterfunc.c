/* Description: after-funcs (Go's AfterFunc): fn runs once, asynchronously on
 * another thread, after cancel or time-out, or at once if the context is
 * already done; rctx_after_stop semantics; cancel never waits for fn; fn may
 * call back into the library; releasing the handle does not stop fn.
 * Checks that fn did not run are made once every after-func queued before
 * has run (th_afters_settle), not after a sleep. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "ringctx.h"
#include "helpers.h"

TestSuite(afterfunc, .timeout = 60);

struct probe {
	atomic_int calls;
	atomic_int tid;       /* thread that ran fn */
	_Atomic int64_t at;   /* when fn ran */
	atomic_int err_seen;  /* rctx_err(ctx) seen from inside fn */
	rctx_t *ctx;
};

static void probe_fn(void *arg)
{
	struct probe *p = arg;
	atomic_store(&p->tid, (int)syscall(SYS_gettid));
	atomic_store(&p->at, rctx_now());
	if (p->ctx)
		atomic_store(&p->err_seen, rctx_err(p->ctx));
	atomic_fetch_add(&p->calls, 1);
}

static int my_tid(void) { return (int)syscall(SYS_gettid); }

Test(afterfunc, not_called_before_cancel_called_after_then_stop_false)
{
	struct probe p = { 0 };
	rctx_t *c = rctx_with_cancel(rctx_background());
	p.ctx = c;
	rctx_after_t *h = rctx_after_func(c, probe_fn, &p);
	cr_assert_not_null(h);
	cr_assert(th_afters_settle(), "the runtime never ran an after-func");
	cr_assert_eq(atomic_load(&p.calls), 0, "fn ran before the context was done");
	int64_t t0 = rctx_now();
	rctx_cancel(c);
	cr_assert(WAIT_UNTIL(atomic_load(&p.calls) == 1, TH_PATIENCE_MS),
		  "fn not called after cancel");
	cr_assert_geq(atomic_load(&p.at), t0);
	cr_assert_eq(atomic_load(&p.err_seen), -ECANCELED, "fn must see the ctx done");
	cr_assert_neq(atomic_load(&p.tid), my_tid(), "fn must run on another thread");
	cr_assert_not(rctx_after_stop(h), "stop after fn ran returns false");
	cr_assert(th_afters_settle(), "the runtime never ran an after-func");
	cr_assert_eq(atomic_load(&p.calls), 1, "fn ran more than once");
	rctx_after_release(h);
	rctx_release(c);
}

Test(afterfunc, called_after_timeout)
{
	struct probe p = { 0 };
	rctx_t *c = rctx_with_timeout(rctx_background(), MS(10));
	p.ctx = c;
	int64_t dl;
	rctx_deadline(c, &dl);
	rctx_after_t *h = rctx_after_func(c, probe_fn, &p);
	cr_assert(WAIT_UNTIL(atomic_load(&p.calls) == 1, TH_PATIENCE_MS),
		  "fn not called after timeout");
	cr_assert_geq(atomic_load(&p.at), dl, "fn ran before the deadline");
	cr_assert_eq(atomic_load(&p.err_seen), -ETIMEDOUT);
	cr_assert_not(rctx_after_stop(h));
	rctx_after_release(h);
	rctx_release(c);
}

Test(afterfunc, called_at_once_asynchronously_if_already_done)
{
	struct probe p = { 0 };
	rctx_t *c = rctx_with_cancel(rctx_background());
	rctx_cancel(c);
	rctx_after_t *h = rctx_after_func(c, probe_fn, &p);
	cr_assert_not_null(h);
	cr_assert(WAIT_UNTIL(atomic_load(&p.calls) == 1, TH_PATIENCE_MS), "fn not called");
	cr_assert_neq(atomic_load(&p.tid), my_tid(), "fn must not run on the caller");
	cr_assert_not(rctx_after_stop(h));
	rctx_after_release(h);
	rctx_release(c);

	struct probe q = { 0 };
	rctx_t *t = rctx_with_timeout(rctx_background(), 0);
	h = rctx_after_func(t, probe_fn, &q);
	cr_assert(WAIT_UNTIL(atomic_load(&q.calls) == 1, TH_PATIENCE_MS));
	rctx_after_release(h);
	rctx_release(t);
}

Test(afterfunc, stop_before_cancel_prevents_fn)
{
	struct probe p = { 0 };
	rctx_t *c = rctx_with_cancel(rctx_background());
	rctx_after_t *h = rctx_after_func(c, probe_fn, &p);
	cr_assert(rctx_after_stop(h), "first stop must stop fn");
	cr_assert_not(rctx_after_stop(h), "second stop returns false");
	rctx_cancel(c);
	cr_assert(th_afters_settle(), "the runtime never ran an after-func");
	cr_assert_eq(atomic_load(&p.calls), 0, "stopped fn ran");
	cr_assert_not(rctx_after_stop(h));
	rctx_after_release(h);
	rctx_release(c);
}

Test(afterfunc, stop_before_timeout_prevents_fn)
{
	/* A run so slow that the timeout came before the stop (fn then runs:
	 * let it finish) tries a ten times later one. */
	for (int64_t rel = MS(10);; rel *= 10) {
		struct probe p = { 0 };
		cr_assert_leq(rel, MS(TH_PATIENCE_MS), "no stop came before its timeout");
		rctx_t *c = rctx_with_timeout(rctx_background(), rel);
		rctx_after_t *h = rctx_after_func(c, probe_fn, &p);
		bool stopped = rctx_after_stop(h);
		if (stopped) {
			cr_assert_eq(rctx_wait(c, rctx_now() + MS(TH_PATIENCE_MS)), 0);
			cr_assert(th_afters_settle(), "the runtime never ran an after-func");
			cr_assert_eq(atomic_load(&p.calls), 0);
		} else {
			cr_assert_eq(rctx_err(c), -ETIMEDOUT, "stop lost to something else");
			cr_assert(WAIT_UNTIL(atomic_load(&p.calls) == 1, TH_PATIENCE_MS));
		}
		rctx_after_release(h);
		rctx_release(c);
		if (stopped)
			break;
	}
}

Test(afterfunc, release_does_not_stop_fn)
{
	struct probe p = { 0 };
	rctx_t *c = rctx_with_cancel(rctx_background());
	rctx_after_t *h = rctx_after_func(c, probe_fn, &p);
	rctx_after_release(h);
	cr_assert(th_afters_settle(), "the runtime never ran an after-func");
	cr_assert_eq(atomic_load(&p.calls), 0);
	rctx_cancel(c);
	cr_assert(WAIT_UNTIL(atomic_load(&p.calls) == 1, TH_PATIENCE_MS),
		  "released handle's fn not run");
	rctx_release(c);
}

Test(afterfunc, handle_keeps_ctx_alive)
{
	struct probe p = { 0 };
	rctx_t *parent = rctx_with_cancel(rctx_background());
	rctx_t *c = rctx_with_cancel(parent);
	rctx_after_t *h = rctx_after_func(c, probe_fn, &p);
	rctx_unref(c);  /* only the handle (and the tree) hold it now */
	rctx_cancel_cause(parent, -EPIPE);
	cr_assert(WAIT_UNTIL(atomic_load(&p.calls) == 1, TH_PATIENCE_MS));
	rctx_after_release(h);
	rctx_release(parent);
}

Test(afterfunc, never_called_on_a_never_done_ctx)
{
	struct probe p = { 0 };
	rctx_t *w = rctx_without_cancel(rctx_background());
	rctx_after_t *h1 = rctx_after_func(rctx_background(), probe_fn, &p);
	rctx_after_t *h2 = rctx_after_func(w, probe_fn, &p);
	cr_assert_not_null(h1);
	cr_assert_not_null(h2);
	cr_assert(th_afters_settle(), "the runtime never ran an after-func");
	cr_assert_eq(atomic_load(&p.calls), 0);
	cr_assert(rctx_after_stop(h1));
	cr_assert(rctx_after_stop(h2));
	rctx_after_release(h1);
	rctx_after_release(h2);
	rctx_release(w);
}

Test(afterfunc, every_registered_fn_runs_exactly_once)
{
	enum { N = 64 };
	struct probe p[N];
	rctx_after_t *h[N];
	rctx_t *root = rctx_with_cancel(rctx_background());
	rctx_t *mid = rctx_with_cancel(root);
	rctx_t *leaf = rctx_with_timeout(mid, MS(60000));
	rctx_t *on[3] = { root, mid, leaf };
	for (int i = 0; i < N; i++) {
		p[i] = (struct probe){ 0 };
		h[i] = rctx_after_func(on[i % 3], probe_fn, &p[i]);
		cr_assert_not_null(h[i]);
	}
	struct rctx_runtime_stats a, b;
	rctx_runtime_stats(&a);
	rctx_cancel(leaf);
	rctx_cancel(mid);
	rctx_cancel(root);
	rctx_cancel(root);
	for (int i = 0; i < N; i++)
		cr_assert(WAIT_UNTIL(atomic_load(&p[i].calls) == 1, TH_PATIENCE_MS), "fn %d", i);
	cr_assert(th_afters_settle(), "the runtime never ran an after-func");
	for (int i = 0; i < N; i++) {
		cr_assert_eq(atomic_load(&p[i].calls), 1, "fn %d ran %d times", i,
			     atomic_load(&p[i].calls));
		rctx_after_release(h[i]);
	}
	rctx_runtime_stats(&b);
	cr_assert_geq(b.after_funcs_run, a.after_funcs_run + N);
	rctx_release(leaf);
	rctx_release(mid);
	rctx_release(root);
}

/* ---- cancel does not wait for fn ------------------------------------------ */

static atomic_int blk_started, blk_release, blk_finished;

/* Runs until released; gives up (blk_finished 2) only after a wait no run
 * could need, so that a failing test still exits. */
static void blocking_fn(void *arg)
{
	(void)arg;
	atomic_store(&blk_started, 1);
	int64_t end = th_now_ns() + MS(2 * TH_PATIENCE_MS);
	while (!atomic_load(&blk_release) && th_now_ns() < end)
		th_sleep_ms(1);
	atomic_store(&blk_finished, atomic_load(&blk_release) ? 1 : 2);
}

Test(afterfunc, cancel_does_not_wait_for_fn)
{
	rctx_t *c = rctx_with_cancel(rctx_background());
	rctx_after_t *h = rctx_after_func(c, blocking_fn, NULL);
	cr_assert_eq(rctx_cancel(c), 1);
	/* fn finishes only once released: a cancel that waited for it would
	 * have returned only after fn gave up */
	cr_assert_eq(atomic_load(&blk_finished), 0, "cancel waited for fn");
	cr_assert(WAIT_UNTIL(atomic_load(&blk_started), TH_PATIENCE_MS), "fn never started");
	cr_assert_eq(atomic_load(&blk_finished), 0);
	/* other library calls do not wait for it either */
	rctx_t *c2 = rctx_with_cancel(rctx_background());
	cr_assert_eq(rctx_cancel(c2), 1);
	rctx_release(c2);
	atomic_store(&blk_release, 1);
	cr_assert(WAIT_UNTIL(atomic_load(&blk_finished), TH_PATIENCE_MS));
	cr_assert_eq(atomic_load(&blk_finished), 1, "fn gave up before it was released");
	rctx_after_release(h);
	rctx_release(c);
}

/* ---- fn calls back into the library --------------------------------------- */

struct chain {
	rctx_t *to_cancel;
	rctx_t *made;       /* created inside fn */
	rctx_after_t *h2;   /* registered inside fn */
	struct probe *second;
	atomic_int done;
};

static void chain_fn(void *arg)
{
	struct chain *ch = arg;
	ch->made = rctx_with_cancel(ch->to_cancel);
	ch->h2 = rctx_after_func(ch->to_cancel, probe_fn, ch->second);
	rctx_cancel_cause(ch->to_cancel, -EPIPE);
	atomic_store(&ch->done, 1);
}

Test(afterfunc, fn_may_create_register_and_cancel)
{
	struct probe second = { 0 };
	rctx_t *a = rctx_with_cancel(rctx_background());
	rctx_t *b = rctx_with_cancel(rctx_background());
	struct chain ch = { .to_cancel = b, .second = &second };
	rctx_after_t *h = rctx_after_func(a, chain_fn, &ch);
	rctx_cancel(a);
	cr_assert(WAIT_UNTIL(atomic_load(&ch.done), TH_PATIENCE_MS),
		  "fn deadlocked in the library");
	cr_assert_eq(rctx_err(b), -ECANCELED);
	cr_assert_eq(rctx_cause(b), -EPIPE);
	cr_assert_not_null(ch.made);
	cr_assert_eq(rctx_err(ch.made), -ECANCELED);
	cr_assert_not_null(ch.h2);
	cr_assert(WAIT_UNTIL(atomic_load(&second.calls) == 1, TH_PATIENCE_MS),
		  "after-func registered from an after-func did not run");
	rctx_after_release(ch.h2);
	rctx_release(ch.made);
	rctx_after_release(h);
	rctx_release(b);
	rctx_release(a);
}

/* ---- stop racing cancel ----------------------------------------------------- */

struct race {
	rctx_t *ctx;
	pthread_barrier_t *bar;
};

static void *race_cancel(void *arg)
{
	struct race *r = arg;
	pthread_barrier_wait(r->bar);
	rctx_cancel(r->ctx);
	return NULL;
}

Test(afterfunc, stop_racing_cancel_is_exactly_one_of_stopped_or_run)
{
	int rounds = (int)th_scaled(300);
	int stopped_n = 0, ran_n = 0;
	for (int i = 0; i < rounds; i++) {
		struct probe p = { 0 };
		pthread_barrier_t bar;
		pthread_barrier_init(&bar, NULL, 2);
		rctx_t *c = rctx_with_cancel(rctx_background());
		rctx_after_t *h = rctx_after_func(c, probe_fn, &p);
		struct race r = { c, &bar };
		pthread_t th;
		pthread_create(&th, NULL, race_cancel, &r);
		pthread_barrier_wait(&bar);
		bool stopped = rctx_after_stop(h);
		pthread_join(th, NULL);
		if (stopped) {
			cr_assert(th_afters_settle(), "the runtime never ran an after-func");
			cr_assert_eq(atomic_load(&p.calls), 0, "round %d: stop returned true but fn ran", i);
			stopped_n++;
		} else {
			cr_assert(WAIT_UNTIL(atomic_load(&p.calls) == 1, TH_PATIENCE_MS),
				  "round %d: stop returned false but fn never ran", i);
			ran_n++;
		}
		rctx_after_release(h);
		rctx_release(c);
		pthread_barrier_destroy(&bar);
	}
	fprintf(stderr, "stop won %d, fn ran %d of %d rounds\n", stopped_n, ran_n, rounds);
}
