/* SPDX-License-Identifier: MIT */
/*
 * Description: libFuzzer target for the public API. The input is a sequence
 * of operations on a small fixed world: 8 context slots, 16 after-func
 * records, 64 request records, 2 rings and 2 socketpairs (made once per
 * process and reused), and a persistent canceller thread.
 *
 * Encoding: each operation is one opcode byte (taken modulo OP_COUNT) followed
 * by the argument bytes it reads; a read past the end gives 0, and at most
 * MAX_OPS operations run per input.
 *   CREATE   parent(slot 0-7, 8 background, 9 todo) kind how cause
 *            kinds: with_cancel, with_deadline[_cause] in the past, now or
 *            0-3 ms ahead, with_timeout[_cause] of 0-3 ms, with_value (4 keys,
 *            4 values and NULL), without_cancel
 *   CANCEL   slot cause          rctx_cancel_cause (cause 0: rctx_cancel)
 *   REF      slot                UNREF slot      RELEASE slot
 *   AFTER    slot(8: background) AFTER_STOP rec  AFTER_RELEASE rec
 *   VALUE    slot key            FORMAT slot len DONE_FD slot   WAIT slot mode
 *   SUBMIT   ring slot type arg  NOP, TIMEOUT of 0-2 ms, recv of 1 byte on a
 *                                socketpair end; arg also picks a slot that
 *                                the callback cancels
 *   SEND     pair                1 byte on the other end of the pair
 *   RUN      ring how            rctx_ring_run, deadline 0 or now + 0-2 ms
 *   XCANCEL  slot cause how      cancel (or release of a reference) on the
 *                                canceller thread; how says whether to wait
 *
 * Invariants, checked after every operation (a violation traps):
 *  - rctx_err is 0, -ECANCELED or -ETIMEDOUT, and once non-zero never changes;
 *    rctx_cause is 0 while err is 0, non-zero once err is, and never changes;
 *    a without-cancel context is never done;
 *  - a context whose parent (skipping released value and cancel slots, up to a
 *    without-cancel boundary) reads done is done: a context seen done has its
 *    whole subtree done;
 *  - a done context's done fd polls readable; rctx_value, rctx_deadline and
 *    rctx_done_fd agree with a model of the tree; rctx_format terminates and
 *    reports the full length; rctx_cancel's result agrees with the state;
 *  - a deadline at or before now (and under no sooner parent deadline) gives a
 *    context done at creation with -ETIMEDOUT and its cause;
 *  - every request callback runs exactly once, with a result allowed for its
 *    kind (the context's error if it was done at submission), never for a
 *    failed submit; rctx_ring_run from a callback gives -EDEADLK;
 *  - an after-func runs at most once, never after a successful stop; a second
 *    stop fails; a stop on a never-done context succeeds; once every context
 *    is cancelled, every after-func not stopped runs.
 * At the end of each input everything is cancelled and released, the rings
 * are run until no request is pending and the runtime thread is flushed, so
 * that LeakSanitizer (-detect_leaks=1) sees nothing outstanding. Every wait is
 * bounded.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <sanitizer/allocator_interface.h>

#include "ringctx.h"

#define NSLOTS 8
#define NAFTERS 16
#define NREQS 64
#define NKEYS 4
#define MAX_OPS 256
#define MS 1000000LL
#define WAIT_LIMIT_NS (10 * 1000 * MS) /* bound of every wait, generous */

#define CHECK(cond, ...)                                                      \
	do {                                                                  \
		if (!(cond)) {                                                \
			fprintf(stderr, "fuzz_api: %s:%d: %s: ", __FILE__,    \
				__LINE__, #cond);                             \
			fprintf(stderr, __VA_ARGS__);                         \
			fputc('\n', stderr);                                  \
			__builtin_trap();                                     \
		}                                                             \
	} while (0)

enum op {
	OP_CREATE, OP_CANCEL, OP_REF, OP_UNREF, OP_RELEASE, OP_AFTER,
	OP_AFTER_STOP, OP_AFTER_RELEASE, OP_VALUE, OP_FORMAT, OP_DONE_FD,
	OP_WAIT, OP_SUBMIT, OP_SEND, OP_RUN, OP_XCANCEL, OP_COUNT
};

enum kind { K_CANCEL, K_DEADLINE, K_VALUE, K_WITHOUT };
enum req_type { RQ_NOP, RQ_TIMEOUT, RQ_RECV, RQ_COUNT };

static const int causes[] = { 0, -EPIPE, -EIO, 7, -ECONNRESET };
static const char keys[NKEYS];
static char vals[NKEYS];

/* The model of one context held by the harness. */
struct slot {
	rctx_t *ctx;           /* NULL: free */
	int refs;              /* references the harness holds */
	enum kind kind;
	int cparent;           /* slot whose doneness implies ours, or -1 */
	rctx_t *gov;           /* nearest cancellable ancestor-or-self, or NULL */
	void *val[NKEYS];      /* expected rctx_value per key */
	int64_t dl_lo, dl_hi;  /* expected rctx_deadline range (FOREVER: none) */
	int err, cause;        /* last seen, sticky once non-zero */
	int fd;                /* done fd once asked for, else -1 */
};

struct after_rec {
	rctx_after_t *h;       /* NULL once released */
	rctx_t *gov;           /* a reference to the governor (NULL: never done) */
	bool used, stopped, stop_failed;
	atomic_int runs;
	atomic_bool stop_won;
};

struct req {
	bool used, submitted;
	enum req_type type;
	int ring, pair, err_at_submit, cancel_slot;
	int count, res;
	char buf;
	struct __kernel_timespec ts;
};

/* Cross-thread cancels: a queue served by one persistent thread. */
struct xop {
	rctx_t *ctx; /* a reference the thread drops */
	int cause;
	bool release;
};

static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct xop q[16];
	unsigned head, tail; /* tail - head queued; head counts those served */
} xq = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };

static struct slot slots[NSLOTS];
static struct after_rec afters[NAFTERS];
static struct req reqs[NREQS];
static unsigned nreqs;
static rctx_ring_t *rings[2];
static int pairs[2][2];
static rctx_t *sentinel_ctx; /* cancelled once; flushes the runtime thread */
static bool in_callback;

/* ---- input ----------------------------------------------------------------- */

struct input {
	const uint8_t *p;
	size_t n;
};

static unsigned in_u8(struct input *in)
{
	if (!in->n)
		return 0;
	in->n--;
	return *in->p++;
}

/* ---- the canceller thread ------------------------------------------------ */

static void *canceller_main(void *unused)
{
	(void)unused;
	pthread_mutex_lock(&xq.lock);
	for (;;) {
		struct xop op;
		int ret;

		while (xq.head == xq.tail)
			pthread_cond_wait(&xq.cond, &xq.lock);
		op = xq.q[xq.head % 16];
		pthread_mutex_unlock(&xq.lock);
		if (op.release) {
			rctx_release(op.ctx);
		} else {
			ret = rctx_cancel_cause(op.ctx, op.cause);
			CHECK(ret == 0 || ret == 1, "cross-thread cancel gave %d", ret);
			CHECK(rctx_err(op.ctx) != 0, "cancelled context not done");
			rctx_unref(op.ctx);
		}
		pthread_mutex_lock(&xq.lock);
		xq.head++;
		pthread_cond_broadcast(&xq.cond);
	}
	return NULL;
}

static void abs_in(struct timespec *ts, int64_t ns)
{
	clock_gettime(CLOCK_REALTIME, ts);
	ts->tv_sec += ns / 1000000000;
	ts->tv_nsec += ns % 1000000000;
	if (ts->tv_nsec >= 1000000000) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000;
	}
}

/* Wait (bounded) until the thread has served every operation up to `upto`. */
static void xq_wait(unsigned upto)
{
	struct timespec until;

	abs_in(&until, WAIT_LIMIT_NS);
	pthread_mutex_lock(&xq.lock);
	while ((int)(xq.head - upto) < 0) {
		int ret = pthread_cond_timedwait(&xq.cond, &xq.lock, &until);

		CHECK(ret != ETIMEDOUT, "canceller thread stuck");
	}
	pthread_mutex_unlock(&xq.lock);
}

static unsigned xq_push(rctx_t *ctx, int cause, bool release)
{
	unsigned ticket;

	pthread_mutex_lock(&xq.lock);
	if (xq.tail - xq.head == 16) {
		pthread_mutex_unlock(&xq.lock);
		xq_wait(xq.tail - 15);
		pthread_mutex_lock(&xq.lock);
	}
	xq.q[xq.tail % 16] = (struct xop){ ctx, cause, release };
	ticket = ++xq.tail;
	pthread_cond_broadcast(&xq.cond);
	pthread_mutex_unlock(&xq.lock);
	return ticket;
}

/* ---- one-time setup -------------------------------------------------------- */

static void setup_once(void)
{
	static bool done;
	pthread_t t;

	if (done)
		return;
	done = true;
	CHECK(rctx_ring_create(&rings[0], 64) == 0, "ring 0");
	CHECK(rctx_ring_create(&rings[1], 2) == 0, "ring 1");
	for (int i = 0; i < 2; i++)
		CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pairs[i]) == 0,
		      "socketpair");
	CHECK(pthread_create(&t, NULL, canceller_main, NULL) == 0, "thread");
	pthread_detach(t);
	sentinel_ctx = rctx_with_cancel(rctx_background());
	CHECK(sentinel_ctx && rctx_cancel(sentinel_ctx) == 1, "sentinel");
}

/* ---- invariants ------------------------------------------------------------ */

static bool cause_allowed(int c)
{
	if (c == -ECANCELED || c == -ETIMEDOUT)
		return true;
	for (size_t i = 1; i < sizeof(causes) / sizeof(causes[0]); i++)
		if (c == causes[i])
			return true;
	return false;
}

static void check_slot(int i)
{
	struct slot *s = &slots[i];
	int64_t dl = 0;
	int e1, c, e2;
	bool has;

	e1 = rctx_err(s->ctx);
	c = rctx_cause(s->ctx);
	e2 = rctx_err(s->ctx);
	CHECK(e1 == 0 || e1 == -ECANCELED || e1 == -ETIMEDOUT, "slot %d err %d", i, e1);
	CHECK(e2 == e1 || (e1 == 0 && (e2 == -ECANCELED || e2 == -ETIMEDOUT)),
	      "slot %d err %d then %d", i, e1, e2);
	CHECK(!s->err || e1 == s->err, "slot %d err changed %d -> %d", i, s->err, e1);
	CHECK(e2 || !c, "slot %d cause %d while err 0", i, c);
	CHECK(!e1 || c, "slot %d done with cause 0", i);
	CHECK(!c || cause_allowed(c), "slot %d cause %d", i, c);
	CHECK(!s->cause || c == s->cause, "slot %d cause changed %d -> %d", i, s->cause, c);
	CHECK(s->gov || !e2, "slot %d can never be done but has err %d", i, e2);
	s->err = e2;
	if (c)
		s->cause = c;
	has = rctx_deadline(s->ctx, &dl);
	CHECK(has == (s->dl_lo != RCTX_FOREVER), "slot %d has deadline: %d", i, has);
	CHECK(!has || (dl >= s->dl_lo && dl <= s->dl_hi),
	      "slot %d deadline %lld outside [%lld, %lld]", i, (long long)dl,
	      (long long)s->dl_lo, (long long)s->dl_hi);
	if (e2 && s->fd >= 0) {
		struct pollfd p = { .fd = s->fd, .events = POLLIN };

		CHECK(poll(&p, 1, 0) == 1 && (p.revents & POLLIN),
		      "slot %d done, fd %d not readable", i, s->fd);
	}
}

/* Parent first, then child: a parent seen done has its subtree done. */
static void check_edge(int i)
{
	int p = slots[i].cparent, pe, ce;

	if (p < 0)
		return;
	pe = rctx_err(slots[p].ctx);
	ce = rctx_err(slots[i].ctx);
	CHECK(!pe || ce, "slot %d live under done slot %d (err %d)", i, p, pe);
}

static void check_afters(void)
{
	for (int i = 0; i < NAFTERS; i++) {
		struct after_rec *a = &afters[i];
		int runs = atomic_load(&a->runs);

		if (!a->used)
			continue;
		CHECK(runs <= 1, "after-func %d ran %d times", i, runs);
		CHECK(!a->stopped || runs == 0, "after-func %d ran after its stop", i);
	}
}

static void check_all(void)
{
	for (int i = 0; i < NSLOTS; i++)
		if (slots[i].ctx)
			check_slot(i);
	for (int i = 0; i < NSLOTS; i++)
		if (slots[i].ctx)
			check_edge(i);
	check_afters();
}

/* ---- contexts --------------------------------------------------------------- */

static int free_slot(void)
{
	for (int i = 0; i < NSLOTS; i++)
		if (!slots[i].ctx)
			return i;
	return -1;
}

/* The parent operand: a live slot, background or todo. */
static rctx_t *pick_parent(unsigned b, int *pslot)
{
	b %= NSLOTS + 2;
	*pslot = -1;
	if (b == NSLOTS)
		return rctx_background();
	if (b == NSLOTS + 1)
		return rctx_todo();
	if (!slots[b].ctx)
		return rctx_background();
	*pslot = (int)b;
	return slots[b].ctx;
}

/* A slot operand: a live slot, or -1. */
static int pick_slot(unsigned b)
{
	b %= NSLOTS;
	return slots[b].ctx ? (int)b : -1;
}

/* Fill the model of a new slot from its parent's. */
static void model_inherit(struct slot *s, int ps)
{
	const struct slot *p = ps >= 0 ? &slots[ps] : NULL;

	s->refs = 1;
	s->err = 0;
	s->cause = 0;
	s->fd = -1;
	s->cparent = ps;
	s->gov = p ? p->gov : NULL;
	s->dl_lo = p ? p->dl_lo : RCTX_FOREVER;
	s->dl_hi = p ? p->dl_hi : RCTX_FOREVER;
	for (int k = 0; k < NKEYS; k++)
		s->val[k] = p ? p->val[k] : NULL;
}

static int64_t min64(int64_t a, int64_t b)
{
	return a < b ? a : b;
}

/* A deadline child: model it, and check a past deadline gave a done context. */
static void create_deadline(struct slot *s, rctx_t *parent, unsigned how,
			    bool timeout, int cause)
{
	int64_t pdl = RCTX_FOREVER, t0, t1, rel, abs_ns = 0, own_hi;
	bool has = rctx_deadline(parent, &pdl);
	int err, c;

	if (!has)
		pdl = RCTX_FOREVER;
	t0 = rctx_now();
	if (timeout) {
		rel = (int64_t)(how % 64) * 3 * MS / 63;
		s->ctx = rctx_with_timeout_cause(parent, rel, cause);
	} else {
		switch (how % 3) {
		case 0:
			rel = -1 - (int64_t)(how / 3) * 1000;
			break;
		case 1:
			rel = 0;
			break;
		default:
			rel = (int64_t)(how / 3) * 3 * MS / 85;
			break;
		}
		abs_ns = t0 + rel;
		s->ctx = rctx_with_deadline_cause(parent, abs_ns, cause);
	}
	t1 = rctx_now();
	CHECK(s->ctx, "deadline constructor failed");
	s->kind = K_DEADLINE;
	s->gov = s->ctx;
	own_hi = timeout ? t1 + rel : abs_ns;
	s->dl_lo = min64(s->dl_lo, timeout ? t0 + rel : abs_ns);
	s->dl_hi = min64(s->dl_hi, own_hi);
	/* Due at creation, and no sooner parent deadline made it a plain
	 * cancel context (which waits for the parent's timer): done at once. */
	if (rel <= 0 && pdl >= own_hi) {
		err = rctx_err(s->ctx);
		c = rctx_cause(s->ctx);
		CHECK(err, "deadline %s rel %lld, parent deadline %s%lld ns after it, "
		      "parent err %d: not done at creation",
		      timeout ? "timeout" : "abs", (long long)rel, has ? "" : "(none) ",
		      (long long)(pdl - own_hi), rctx_err(parent));
		if (!rctx_err(parent)) {
			CHECK(err == -ETIMEDOUT, "past deadline err %d", err);
			CHECK(c == (cause ? cause : -ETIMEDOUT), "past deadline cause %d", c);
		}
	}
}

static void op_create(struct input *in)
{
	unsigned pb = in_u8(in), kb = in_u8(in), how = in_u8(in), cb = in_u8(in);
	int i = free_slot(), ps, cause = causes[1 + cb % 4];
	rctx_t *parent = pick_parent(pb, &ps);
	struct slot *s;

	if (i < 0)
		return;
	s = &slots[i];
	model_inherit(s, ps);
	switch (kb % 8) {
	case 0:
	case 7:
		s->ctx = rctx_with_cancel(parent);
		s->kind = K_CANCEL;
		s->gov = s->ctx;
		break;
	case 1:
	case 2:
		create_deadline(s, parent, how, false, kb % 8 == 2 ? cause : 0);
		break;
	case 3:
	case 4:
		create_deadline(s, parent, how, true, kb % 8 == 4 ? cause : 0);
		break;
	case 5:
		s->ctx = rctx_with_value(parent, &keys[how % NKEYS],
					 how / NKEYS % 5 ? &vals[how / NKEYS % 5 - 1] : NULL);
		s->kind = K_VALUE;
		s->val[how % NKEYS] = how / NKEYS % 5 ? &vals[how / NKEYS % 5 - 1] : NULL;
		break;
	default:
		s->ctx = rctx_without_cancel(parent);
		s->kind = K_WITHOUT;
		s->gov = NULL;
		s->cparent = -1;
		s->dl_lo = s->dl_hi = RCTX_FOREVER;
		break;
	}
	CHECK(s->ctx, "constructor failed (kind %u)", kb % 8);
}

/* Drop slot i from the model: its children now hang off its parent. */
static void forget_slot(int i)
{
	for (int j = 0; j < NSLOTS; j++)
		if (slots[j].ctx && slots[j].cparent == i)
			slots[j].cparent = slots[i].cparent;
	slots[i].ctx = NULL;
}

static bool cancellable(const struct slot *s)
{
	return s->kind == K_CANCEL || s->kind == K_DEADLINE;
}

static void do_cancel(int i, int cause)
{
	struct slot *s = &slots[i];
	int before = rctx_err(s->ctx), ret, err, c;

	ret = cause ? rctx_cancel_cause(s->ctx, cause) : rctx_cancel(s->ctx);
	if (!cancellable(s)) {
		CHECK(ret == -EINVAL, "cancel of a non-cancellable gave %d", ret);
		return;
	}
	CHECK(ret == 0 || ret == 1, "cancel gave %d", ret);
	CHECK(!before || ret == 0, "cancel of a done context gave %d", ret);
	err = rctx_err(s->ctx);
	c = rctx_cause(s->ctx);
	CHECK(err, "context not done after cancel");
	if (ret == 1) {
		CHECK(err == -ECANCELED, "cancel gave err %d", err);
		CHECK(c == (cause ? cause : -ECANCELED), "cancel cause %d, want %d", c, cause);
	}
}

static void op_cancel(struct input *in)
{
	int i = pick_slot(in_u8(in)), cause = causes[in_u8(in) % 5];

	if (i >= 0)
		do_cancel(i, cause);
}

static void op_ref(struct input *in)
{
	int i = pick_slot(in_u8(in));

	if (i < 0 || slots[i].refs >= 1000)
		return;
	CHECK(rctx_ref(slots[i].ctx) == slots[i].ctx, "rctx_ref");
	slots[i].refs++;
}

static void drop_ref(int i, bool release)
{
	struct slot *s = &slots[i];
	rctx_t *ctx = s->ctx;

	if (release) {
		rctx_release(ctx);
		if (cancellable(s) && s->refs > 1)
			CHECK(rctx_err(ctx), "released context not done");
	} else {
		rctx_unref(ctx);
	}
	if (--s->refs == 0)
		forget_slot(i);
}

static void op_unref(struct input *in, bool release)
{
	int i = pick_slot(in_u8(in));

	if (i >= 0)
		drop_ref(i, release);
}

static void op_value(struct input *in)
{
	int i = pick_slot(in_u8(in));
	unsigned k = in_u8(in) % NKEYS;

	if (i < 0) {
		CHECK(!rctx_value(rctx_background(), &keys[k]), "background value");
		return;
	}
	CHECK(rctx_value(slots[i].ctx, &keys[k]) == slots[i].val[k],
	      "slot %d key %u value mismatch", i, k);
	CHECK(!rctx_value(slots[i].ctx, NULL), "NULL key has a value");
}

static void op_format(struct input *in)
{
	int i = pick_slot(in_u8(in));
	unsigned lb = in_u8(in);
	rctx_t *ctx = i >= 0 ? slots[i].ctx : rctx_background();
	char small[16], large[1024];
	size_t len = lb % sizeof(small);
	int n0, n1, n2;

	n0 = rctx_format(ctx, NULL, 0);
	memset(small, 'x', sizeof(small));
	n1 = rctx_format(ctx, small, len);
	n2 = rctx_format(ctx, large, sizeof(large));
	CHECK(n0 > 0 && n1 > 0 && n2 > 0, "format gave %d %d %d", n0, n1, n2);
	if (len)
		CHECK(strnlen(small, len) == ((size_t)n1 < len ? (size_t)n1 : len - 1),
		      "small format not terminated at its length");
	else
		CHECK(small[0] == 'x', "format wrote into a 0-byte buffer");
	CHECK((size_t)n2 < sizeof(large) && strlen(large) == (size_t)n2,
	      "large format length %d", n2);
	CHECK(rctx_format(ctx, NULL, 1) == -EINVAL, "NULL buffer accepted");
}

static void op_done_fd(struct input *in)
{
	int i = pick_slot(in_u8(in)), fd;

	if (i < 0) {
		CHECK(rctx_done_fd(rctx_background()) == -ENOENT, "background fd");
		return;
	}
	fd = rctx_done_fd(slots[i].ctx);
	if (!slots[i].gov) {
		CHECK(fd == -ENOENT, "never-done context gave fd %d", fd);
		return;
	}
	CHECK(fd >= 0, "done fd %d", fd);
	CHECK(slots[i].fd < 0 || slots[i].fd == fd, "done fd changed");
	slots[i].fd = fd;
}

static void op_wait(struct input *in)
{
	int i = pick_slot(in_u8(in)), before, ret;
	unsigned how = in_u8(in);

	if (i < 0)
		return;
	before = rctx_err(slots[i].ctx);
	if (how & 1 && (before || !slots[i].gov)) {
		/* Forever: only where it cannot block. */
		ret = rctx_wait(slots[i].ctx, RCTX_FOREVER);
		CHECK(ret == (before ? 0 : -EDEADLK), "wait forever gave %d", ret);
		return;
	}
	ret = rctx_wait(slots[i].ctx, rctx_now() - 1 - how);
	CHECK(ret == 0 || ret == -EAGAIN, "wait gave %d", ret);
	CHECK(!before || ret == 0, "wait on a done context gave %d", ret);
	CHECK(ret != 0 || rctx_err(slots[i].ctx), "wait 0 but not done");
	CHECK(slots[i].gov || ret == -EAGAIN, "never-done context woke");
}

/* ---- after-funcs ---------------------------------------------------------- */

static void after_fn(void *arg)
{
	struct after_rec *a = arg;
	int runs = atomic_fetch_add(&a->runs, 1) + 1;

	CHECK(runs == 1, "after-func ran %d times", runs);
	CHECK(!atomic_load(&a->stop_won), "after-func ran after a successful stop");
}

static void op_after(struct input *in)
{
	int i = pick_slot(in_u8(in)), r;
	rctx_t *ctx = i >= 0 ? slots[i].ctx : rctx_background();
	struct after_rec *a = NULL;

	for (r = 0; r < NAFTERS && !a; r++)
		if (!afters[r].used)
			a = &afters[r];
	if (!a)
		return;
	memset(a, 0, sizeof(*a));
	a->used = true;
	a->gov = i >= 0 && slots[i].gov ? rctx_ref(slots[i].gov) : NULL;
	a->h = rctx_after_func(ctx, after_fn, a);
	CHECK(a->h, "rctx_after_func failed");
}

static void op_after_stop(struct input *in)
{
	struct after_rec *a = &afters[in_u8(in) % NAFTERS];
	bool ok;

	if (!a->used || !a->h)
		return;
	ok = rctx_after_stop(a->h);
	if (ok) {
		atomic_store(&a->stop_won, true);
		CHECK(!a->stopped && !a->stop_failed, "second stop succeeded");
		CHECK(atomic_load(&a->runs) == 0, "stop succeeded after fn ran");
		a->stopped = true;
	} else {
		CHECK(a->gov || a->stopped, "stop failed on a never-done context");
		if (!a->stopped)
			a->stop_failed = true;
	}
}

static void op_after_release(struct input *in)
{
	struct after_rec *a = &afters[in_u8(in) % NAFTERS];

	if (!a->used || !a->h)
		return;
	rctx_after_release(a->h);
	a->h = NULL;
}

/* ---- requests -------------------------------------------------------------- */

static bool res_allowed(const struct req *r, int res)
{
	if (r->err_at_submit)
		return res == r->err_at_submit;
	if (res == -ECANCELED || res == -ETIMEDOUT)
		return true;
	switch (r->type) {
	case RQ_NOP:
		return res == 0;
	case RQ_TIMEOUT:
		return res == -ETIME || res == -EINTR;
	default:
		return res == 1 || res == -EINTR;
	}
}

static void req_cb(void *arg, int res, uint32_t flags)
{
	struct req *r = arg;
	int c = r->cancel_slot;

	(void)flags;
	r->count++;
	r->res = res;
	CHECK(r->submitted, "callback of a failed submit");
	CHECK(r->count == 1, "request callback ran %d times", r->count);
	CHECK(res_allowed(r, res), "request type %d result %d (done at submit: %d)",
	      r->type, res, r->err_at_submit);
	CHECK(rctx_ring_run(rings[r->ring], 0) == -EDEADLK, "run from a callback");
	if (c >= 0 && slots[c].ctx && !in_callback) {
		in_callback = true;
		do_cancel(c, causes[c % 5]);
		in_callback = false;
	}
}

static void op_submit(struct input *in)
{
	unsigned rb = in_u8(in), sb = in_u8(in), tb = in_u8(in), ab = in_u8(in);
	int i = pick_slot(sb);
	rctx_t *ctx = i >= 0 ? slots[i].ctx : (sb & 8 ? rctx_todo() : rctx_background());
	struct io_uring_sqe sqe;
	struct req *r;
	int ret;

	if (nreqs == NREQS)
		return;
	r = &reqs[nreqs++];
	memset(r, 0, sizeof(*r));
	r->used = true;
	r->ring = rb & 1;
	r->type = tb % RQ_COUNT;
	r->pair = ab & 1;
	r->cancel_slot = ab & 2 ? (int)(ab >> 2) % NSLOTS : -1;
	memset(&sqe, 0, sizeof(sqe));
	switch (r->type) {
	case RQ_NOP:
		io_uring_prep_nop(&sqe);
		break;
	case RQ_TIMEOUT:
		r->ts.tv_sec = 0;
		r->ts.tv_nsec = (long long)(ab >> 2) * 2 * MS / 63;
		io_uring_prep_timeout(&sqe, &r->ts, 0, 0);
		break;
	default:
		io_uring_prep_recv(&sqe, pairs[r->pair][0], &r->buf, 1, 0);
		break;
	}
	r->err_at_submit = rctx_err(ctx);
	r->submitted = true; /* before: a refused submit must not call back */
	ret = rctx_submit(rings[r->ring], ctx, &sqe, req_cb, r);
	if (ret) {
		r->submitted = false;
		CHECK(ret == -EBUSY || ret == -EAGAIN || ret == -ENOMEM,
		      "submit gave %d", ret);
	}
}

static void op_send(struct input *in)
{
	int k = in_u8(in) & 1;
	char c = 'x';

	(void)!send(pairs[k][1], &c, 1, MSG_DONTWAIT | MSG_NOSIGNAL);
}

static void op_run(struct input *in)
{
	int ring = in_u8(in) & 1, ret;
	unsigned how = in_u8(in);
	int64_t deadline = how & 1 ? rctx_now() + (int64_t)(how >> 1) * 2 * MS / 127 : 0;

	ret = rctx_ring_run(rings[ring], deadline);
	CHECK(ret >= 0, "ring run gave %d", ret);
}

static void op_xcancel(struct input *in)
{
	int i = pick_slot(in_u8(in)), cause = causes[in_u8(in) % 5];
	unsigned how = in_u8(in), ticket;
	rctx_t *ctx;

	if (i < 0 || !cancellable(&slots[i]))
		return;
	ctx = rctx_ref(slots[i].ctx);
	ticket = xq_push(ctx, cause, how & 2);
	if (how & 1) {
		xq_wait(ticket);
		CHECK(rctx_err(ctx), "context live after a cross-thread cancel");
	}
}

/* ---- end of input ---------------------------------------------------------- */

static void wait_until(bool (*cond)(void), const char *what)
{
	int64_t limit = rctx_now() + WAIT_LIMIT_NS;

	while (!cond()) {
		CHECK(rctx_now() < limit, "timed out waiting: %s", what);
		usleep(100);
	}
}

static bool afters_settled(void)
{
	for (int i = 0; i < NAFTERS; i++)
		if (afters[i].used && afters[i].gov && !afters[i].stopped &&
		    !atomic_load(&afters[i].runs))
			return false;
	return true;
}

/* Cancel what the after-funcs hang on, stop those that can never run. */
static void finish_afters(void)
{
	for (int i = 0; i < NAFTERS; i++) {
		struct after_rec *a = &afters[i];

		if (!a->used)
			continue;
		if (a->gov) {
			rctx_cancel(a->gov);
		} else if (a->h && !a->stopped) {
			CHECK(rctx_after_stop(a->h), "stop of a never-done after-func");
			a->stopped = true;
		}
	}
	wait_until(afters_settled, "after-funcs of cancelled contexts");
	check_afters();
	for (int i = 0; i < NAFTERS; i++) {
		if (!afters[i].used)
			continue;
		rctx_after_release(afters[i].h);
		rctx_unref(afters[i].gov);
		afters[i].h = NULL;
		afters[i].gov = NULL;
		afters[i].used = false;
	}
}

static unsigned outstanding_recvs(int pair)
{
	unsigned n = 0;

	for (unsigned i = 0; i < nreqs; i++)
		if (reqs[i].submitted && !reqs[i].count && reqs[i].type == RQ_RECV &&
		    reqs[i].pair == pair)
			n++;
	return n;
}

/* Run both rings until no request is pending; feed recvs nothing cancels. */
static void finish_requests(void)
{
	for (int iter = 0;; iter++) {
		CHECK(iter < 5000, "requests still pending: %u %u",
		      rctx_ring_pending(rings[0]), rctx_ring_pending(rings[1]));
		for (int r = 0; r < 2; r++)
			CHECK(rctx_ring_run(rings[r], iter < 2 ? 0 : rctx_now() + MS) >= 0,
			      "ring run");
		if (!rctx_ring_pending(rings[0]) && !rctx_ring_pending(rings[1]))
			break;
		for (int k = 0; iter >= 2 && k < 2; k++) {
			int avail = 0;
			char c = 'y';

			ioctl(pairs[k][0], FIONREAD, &avail);
			if (outstanding_recvs(k) && !avail)
				(void)!send(pairs[k][1], &c, 1, MSG_DONTWAIT | MSG_NOSIGNAL);
		}
	}
	for (int k = 0; k < 2; k++) {
		char buf[256];

		while (recv(pairs[k][0], buf, sizeof(buf), MSG_DONTWAIT) > 0)
			;
	}
	for (unsigned i = 0; i < nreqs; i++)
		CHECK(reqs[i].count == (reqs[i].submitted ? 1 : 0),
		      "request %u: %d callbacks", i, reqs[i].count);
	nreqs = 0;
}

static atomic_bool flushed;

static void sentinel_fn(void *arg)
{
	(void)arg;
	atomic_store(&flushed, true);
}

static bool runtime_flushed(void)
{
	return atomic_load(&flushed);
}

static const void *sentinel;

/* ASan's allocator tells a live block from a freed one (quarantined, so
 * not reused meanwhile). */
static bool sentinel_freed(void)
{
	return !__sanitizer_get_ownership(sentinel);
}

/* Queue an after-func on a done context and wait until the runtime thread
 * has run it and freed it. */
static void run_sentinel(void)
{
	rctx_after_t *h;

	atomic_store(&flushed, false);
	h = rctx_after_func(sentinel_ctx, sentinel_fn, NULL);
	CHECK(h, "sentinel after-func");
	rctx_after_release(h);
	wait_until(runtime_flushed, "runtime thread");
	sentinel = h;
	wait_until(sentinel_freed, "sentinel after-func freed");
}

static bool timers_idle(void)
{
	struct rctx_runtime_stats st;

	rctx_runtime_stats(&st);
	return st.timers_live == 0;
}

/*
 * libFuzzer counts mallocs and frees per input: leave nothing to free.
 * The runtime thread drops the references of cancelled deadlines when it
 * wakes, before it runs after-funcs. A sentinel after-func may run in an
 * iteration that had drained its queues before our cancels; a second one,
 * queued once the first ran, runs in an iteration that began after them.
 * Deadline contexts unreferenced without a cancel live until their timer
 * fires (at most 3 ms after their creation); a last sentinel runs after the
 * expiry that emptied the heap has dropped its reference.
 */
static void flush_runtime(void)
{
	struct rctx_runtime_stats st;

	rctx_runtime_stats(&st);
	if (!st.running)
		return;
	run_sentinel();
	run_sentinel();
	if (timers_idle())
		return;
	wait_until(timers_idle, "pending deadlines");
	run_sentinel();
}

static void finish(void)
{
	xq_wait(xq.tail);
	check_all();
	for (int i = 0; i < NSLOTS; i++)
		while (slots[i].ctx)
			drop_ref(i, slots[i].refs == 1);
	finish_afters();
	finish_requests();
	flush_runtime();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct input in = { data, size };

	setup_once();
	for (int n = 0; in.n && n < MAX_OPS; n++) {
		switch (in_u8(&in) % OP_COUNT) {
		case OP_CREATE: op_create(&in); break;
		case OP_CANCEL: op_cancel(&in); break;
		case OP_REF: op_ref(&in); break;
		case OP_UNREF: op_unref(&in, false); break;
		case OP_RELEASE: op_unref(&in, true); break;
		case OP_AFTER: op_after(&in); break;
		case OP_AFTER_STOP: op_after_stop(&in); break;
		case OP_AFTER_RELEASE: op_after_release(&in); break;
		case OP_VALUE: op_value(&in); break;
		case OP_FORMAT: op_format(&in); break;
		case OP_DONE_FD: op_done_fd(&in); break;
		case OP_WAIT: op_wait(&in); break;
		case OP_SUBMIT: op_submit(&in); break;
		case OP_SEND: op_send(&in); break;
		case OP_RUN: op_run(&in); break;
		default: op_xcancel(&in); break;
		}
		check_all();
	}
	finish();
	return 0;
}
