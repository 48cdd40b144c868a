/* SPDX-License-Identifier: MIT */
/*
 * Description: observability. rctx_info() reports creation and end times,
 * error and cause, and exact request counters (completed, aborted, requests
 * of value contexts counted by their governor, of cancellable children not);
 * value, without-cancel and root contexts. rctx_dump() output is parsed:
 * node lines, kinds, indentation, values, an in-flight pipe read with its
 * opcode, truncation by max_nodes, write errors; and it stays safe while
 * several threads create and cancel nodes under the dumped one.
 */
/* tsan: yes */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "helpers.h"
#include "ring_util.h"

TestSuite(observe, .timeout = 60);

static int key_a, val_a;

static void nop_after(void *arg) { (void)arg; }

/* How early a creation or cancel stamp may be: they come from the coarse
 * clock, a tick (1-10 ms) behind, more when ticks are late (a loaded or
 * tickless CPU): a generous bound, never one on the scheduler's speed. */
#define STAMP_SLACK MS(1000)

/* ---- rctx_info ------------------------------------------------------------ */

Test(observe, info_before_and_after_cancel)
{
	int64_t t0 = rctx_now(), t1, t2;
	rctx_t *c = rctx_with_cancel(rctx_background());
	struct rctx_info in;

	t1 = rctx_now();
	cr_assert_not_null(c);
	cr_assert_eq(rctx_info(c, &in), 0);
	cr_assert(in.created_ns >= t0 - STAMP_SLACK && in.created_ns <= t1,
		  "created %lld, between %lld and %lld", (long long)in.created_ns,
		  (long long)t0, (long long)t1);
	cr_assert_eq(in.done_ns, 0);
	cr_assert_eq(in.err, 0);
	cr_assert_eq(in.cause, 0);
	cr_assert_eq(in.submitted + in.completed + in.aborted, 0);

	cr_assert_eq(rctx_cancel_cause(c, -EPIPE), 1);
	t2 = rctx_now();
	cr_assert_eq(rctx_info(c, &in), 0);
	cr_assert_eq(in.err, -ECANCELED);
	cr_assert_eq(in.cause, -EPIPE);
	cr_assert(in.done_ns >= in.created_ns && in.done_ns <= t2,
		  "created %lld done %lld", (long long)in.created_ns,
		  (long long)in.done_ns);
	rctx_release(c);
}

Test(observe, info_timeout)
{
	rctx_t *c = rctx_with_timeout_cause(rctx_background(), MS(1), -EPIPE);
	struct rctx_info in;

	cr_assert_not_null(c);
	cr_assert(WAIT_UNTIL(rctx_err(c) != 0, TH_PATIENCE_MS));
	cr_assert_eq(rctx_info(c, &in), 0);
	cr_assert_eq(in.err, -ETIMEDOUT);
	cr_assert_eq(in.cause, -EPIPE);
	/* The deadline is computed from the creation time's reading, and
	 * the timer's cancel reads the precise clock. */
	cr_assert_geq(in.done_ns, in.created_ns + MS(1));
	rctx_release(c);
}

Test(observe, info_subtree_and_done_parent)
{
	rctx_t *p = rctx_with_cancel(rctx_background());
	rctx_t *c = rctx_with_cancel(p);
	rctx_t *late;
	struct rctx_info ip, ic, il;

	rctx_cancel(p);
	cr_assert_eq(rctx_info(p, &ip), 0);
	cr_assert_eq(rctx_info(c, &ic), 0);
	cr_assert_eq(ic.err, -ECANCELED);
	cr_assert_eq(ic.done_ns, ip.done_ns, "one reading per cancel");
	late = rctx_with_cancel(p); /* created done */
	cr_assert_eq(rctx_info(late, &il), 0);
	cr_assert_eq(il.err, -ECANCELED);
	cr_assert_eq(il.done_ns, il.created_ns);
	rctx_release(late);
	rctx_release(c);
	rctx_release(p);
}

Test(observe, info_roots_values_without)
{
	rctx_t *c = rctx_with_cancel(rctx_background());
	rctx_t *v = rctx_with_value(c, &key_a, &val_a);
	rctx_t *w = rctx_without_cancel(c);
	rctx_t *wv = rctx_with_value(w, &key_a, &val_a);
	struct rctx_info in, ic;

	cr_assert_eq(rctx_info(c, &ic), 0);
	cr_assert_eq(rctx_info(v, &in), 0);
	cr_assert_eq(in.created_ns, ic.created_ns, "a value reports its governor");
	rctx_t *zero[] = { rctx_background(), rctx_todo(), w, wv };
	for (size_t i = 0; i < sizeof(zero) / sizeof(zero[0]); i++) {
		memset(&in, 0xff, sizeof(in));
		cr_assert_eq(rctx_info(zero[i], &in), 0);
		cr_assert_eq(in.created_ns, 0, "context %zu", i);
		cr_assert_eq(in.done_ns, 0);
		cr_assert_eq(in.err, 0);
		cr_assert_eq(in.submitted + in.completed + in.aborted, 0);
	}
	rctx_cancel(c);
	cr_assert_eq(rctx_info(w, &in), 0);
	cr_assert_eq(in.err, 0, "without-cancel is never done");
	cr_assert_eq(rctx_info(v, &in), 0);
	cr_assert_eq(in.err, -ECANCELED);
	cr_assert_eq(rctx_info(NULL, &in), -EINVAL);
	cr_assert_eq(rctx_info(c, NULL), -EINVAL);
	rctx_unref(wv);
	rctx_unref(w);
	rctx_unref(v);
	rctx_release(c);
}

Test(observe, info_request_counters)
{
	rctx_ring_t *ring = NULL;
	rctx_t *c = rctx_with_cancel(rctx_background());
	rctx_t *v = rctx_with_value(c, &key_a, &val_a);
	rctx_t *child = rctx_with_cancel(c);
	struct done_rec r1 = { 0 }, r2 = { 0 }, n1 = { 0 }, n2 = { 0 }, late = { 0 };
	struct io_uring_sqe sqe;
	struct rctx_info in;
	char b1[8], b2[8];
	int p1[2], p2[2];

	cr_assert_eq(rctx_ring_create(&ring, 0), 0);
	cr_assert_eq(pipe(p1), 0);
	cr_assert_eq(pipe(p2), 0);
	io_uring_prep_read(&sqe, p1[0], b1, sizeof(b1), 0);
	sub(ring, c, &sqe, &r1);
	io_uring_prep_read(&sqe, p2[0], b2, sizeof(b2), 0);
	sub(ring, c, &sqe, &r2);
	io_uring_prep_nop(&sqe);
	sub(ring, v, &sqe, &n1);     /* counted by c, its governor */
	io_uring_prep_nop(&sqe);
	sub(ring, child, &sqe, &n2); /* counted by child, not c */
	run_until(ring, &n1.calls, 1, TH_PATIENCE_MS);
	run_until(ring, &n2.calls, 1, TH_PATIENCE_MS);
	cr_assert_eq(write(p1[1], "data", 4), 4);
	run_until(ring, &r1.calls, 1, TH_PATIENCE_MS);
	cr_assert_eq(r1.res, 4);

	cr_assert_eq(rctx_info(c, &in), 0);
	cr_assert_eq(in.submitted, 3);
	cr_assert_eq(in.completed, 2);
	cr_assert_eq(in.aborted, 0);

	rctx_cancel(c);
	run_until(ring, &r2.calls, 1, TH_PATIENCE_MS);
	cr_assert_eq(r2.res, -ECANCELED);
	io_uring_prep_nop(&sqe);
	sub(ring, c, &sqe, &late); /* c is done: never reaches the kernel */
	drain_all(ring);
	cr_assert_eq(late.res, -ECANCELED);

	cr_assert_eq(rctx_info(c, &in), 0);
	cr_assert_eq(in.submitted, 3);
	cr_assert_eq(in.completed, 2);
	cr_assert_eq(in.aborted, 1);
	cr_assert_eq(rctx_info(child, &in), 0);
	cr_assert_eq(in.submitted, 1);
	cr_assert_eq(in.completed, 1);
	cr_assert_eq(in.aborted, 0);

	rctx_ring_destroy(ring);
	close(p1[0]); close(p1[1]); close(p2[0]); close(p2[1]);
	rctx_release(child);
	rctx_unref(v);
	rctx_release(c);
}

/* ---- rctx_dump: output -------------------------------------------------- */

/* ctx's dump as a NUL-terminated string (the caller frees it). */
static char *dump_str(rctx_t *ctx, size_t max_nodes)
{
	int fd = memfd_create("dump", MFD_CLOEXEC);
	off_t len;
	char *s;

	cr_assert_geq(fd, 0);
	cr_assert_eq(rctx_dump(ctx, fd, max_nodes), 0);
	len = lseek(fd, 0, SEEK_CUR);
	cr_assert_geq(len, 0);
	s = malloc((size_t)len + 1);
	cr_assert_not_null(s);
	cr_assert_eq(pread(fd, s, (size_t)len, 0), len);
	s[len] = '\0';
	close(fd);
	return s;
}

struct line {
	int indent;          /* spaces */
	char word[32];       /* first word */
	const char *text;    /* the rest, up to the newline (not included) */
	int len;
};

/* Split s (modified: newlines become NULs) into at most max lines. */
static int split_lines(char *s, struct line *v, int max)
{
	int n = 0;

	for (char *p = s; *p && n < max; n++) {
		char *nl = strchr(p, '\n');

		cr_assert_not_null(nl, "every line ends with a newline");
		*nl = '\0';
		v[n].indent = (int)strspn(p, " ");
		sscanf(p + v[n].indent, "%31s", v[n].word);
		v[n].text = p + v[n].indent;
		v[n].len = (int)(nl - p);
		p = nl + 1;
	}
	return n;
}

/* The node line of ctx, or NULL. */
static const struct line *find_node(const struct line *v, int n, const void *ctx)
{
	char want[48];

	snprintf(want, sizeof(want), " ctx=%p ", ctx);
	for (int i = 0; i < n; i++)
		if (strstr(v[i].text, want))
			return &v[i];
	return NULL;
}

static bool is_node(const struct line *l)
{
	return strcmp(l->word, "WithCancel") == 0 ||
	       strcmp(l->word, "WithDeadline") == 0;
}

static int count_nodes(const struct line *v, int n)
{
	int k = 0;

	for (int i = 0; i < n; i++)
		k += is_node(&v[i]);
	return k;
}

Test(observe, dump_tree_values_requests)
{
	rctx_ring_t *ring = NULL;
	rctx_t *root = rctx_with_cancel(rctx_background());
	rctx_t *v = rctx_with_value(root, &key_a, &val_a);
	rctx_t *a = rctx_with_cancel(v);
	rctx_t *b = rctx_with_timeout(root, MS(60000));
	rctx_t *g = rctx_with_cancel(a);
	rctx_after_t *af = rctx_after_func(root, nop_after, NULL);
	struct done_rec rd = { 0 };
	struct io_uring_sqe sqe;
	struct line ln[32];
	const struct line *l;
	char buf[8], want[96], *s;
	int p[2], n;

	cr_assert(root && v && a && b && g && af);
	cr_assert_eq(rctx_ring_create(&ring, 0), 0);
	cr_assert_eq(pipe(p), 0);
	io_uring_prep_read(&sqe, p[0], buf, sizeof(buf), 0);
	sub(ring, a, &sqe, &rd);
	rctx_ring_run(ring, 0); /* in the kernel now */
	cr_assert_eq(rd.calls, 0);

	s = dump_str(root, 0);
	n = split_lines(s, ln, 32);
	cr_assert_eq(count_nodes(ln, n), 4, "root, a, b, g (not the after-func):\n%s", s);
	cr_assert_eq(n, 6, "4 nodes, a value, a request:\n%s", s);
	l = find_node(ln, n, root);
	cr_assert(l && l->indent == 0 && strcmp(l->word, "WithCancel") == 0);
	cr_assert(l == &ln[0], "the dumped node first");
	cr_assert_not_null(strstr(l->text, " age="));
	cr_assert_null(strstr(l->text, " left="), "no deadline");
	cr_assert_null(strstr(l->text, " err="), "not done");
	l = find_node(ln, n, b);
	cr_assert(l && l->indent == 2 && strcmp(l->word, "WithDeadline") == 0, "%s", s);
	cr_assert_not_null(strstr(l->text, " left="));
	l = find_node(ln, n, a);
	cr_assert(l && l->indent == 2 && strcmp(l->word, "WithCancel") == 0, "%s", s);
	cr_assert_not_null(strstr(l->text, " submitted=1 completed=0 aborted=0"));
	/* Below a: its value, its request, then its child g. */
	snprintf(want, sizeof(want), "value key=%p val=%p", (void *)&key_a, (void *)&val_a);
	cr_assert(l[1].indent == 4 && strcmp(l[1].text, want) == 0, "%s", s);
	cr_assert(l[2].indent == 4 && strcmp(l[2].word, "req") == 0, "%s", s);
	snprintf(want, sizeof(want), "req ring=%p op=READ opcode=%d age=",
		 (void *)ring, IORING_OP_READ);
	cr_assert(strncmp(l[2].text, want, strlen(want)) == 0, "%s", s);
	cr_assert_eq(strcmp(l[2].text + l[2].len - l[2].indent - 2, "ms"), 0, "%s", s);
	l = find_node(ln, n, g);
	cr_assert(l && l->indent == 4 && strcmp(l->word, "WithCancel") == 0, "%s", s);
	free(s);

	/* A cancelled child leaves the live tree; a value dumps its governor. */
	rctx_cancel(b);
	s = dump_str(v, 0);
	n = split_lines(s, ln, 32);
	cr_assert_eq(count_nodes(ln, n), 3, "%s", s);
	cr_assert_null(find_node(ln, n, b), "%s", s);
	cr_assert(find_node(ln, n, root) == &ln[0], "%s", s);
	free(s);

	/* A done node shows its error and cause. */
	rctx_cancel_cause(a, -EPIPE);
	s = dump_str(a, 0);
	n = split_lines(s, ln, 32);
	cr_assert_eq(count_nodes(ln, n), 1, "%s", s);
	snprintf(want, sizeof(want), " err=%d cause=%d ", -ECANCELED, -EPIPE);
	cr_assert_not_null(strstr(ln[0].text, want), "%s", s);
	free(s);

	drain_all(ring);
	cr_assert_eq(rd.res, -ECANCELED);
	rctx_ring_destroy(ring);
	close(p[0]);
	close(p[1]);
	rctx_after_release(af);
	rctx_release(g);
	rctx_release(b);
	rctx_release(a);
	rctx_unref(v);
	rctx_release(root);
}

Test(observe, dump_untracked_roots)
{
	rctx_t *w = rctx_without_cancel(rctx_background());
	struct line ln[4];
	char *s;
	int n;

	s = dump_str(rctx_background(), 0);
	n = split_lines(s, ln, 4);
	cr_assert_eq(n, 1, "%s", s);
	cr_assert_str_eq(ln[0].word, "Background");
	free(s);
	s = dump_str(w, 0);
	n = split_lines(s, ln, 4);
	cr_assert_eq(n, 1, "%s", s);
	cr_assert_str_eq(ln[0].word, "WithoutCancel");
	free(s);
	rctx_unref(w);
}

Test(observe, dump_max_nodes)
{
	rctx_t *root = rctx_with_cancel(rctx_background());
	rctx_t *kids[5];
	struct line ln[16];
	char *s;
	int n;

	for (int i = 0; i < 5; i++) {
		kids[i] = rctx_with_cancel(root);
		cr_assert_not_null(kids[i]);
	}
	s = dump_str(root, 3);
	n = split_lines(s, ln, 16);
	cr_assert_eq(n, 4, "%s", s);
	cr_assert_eq(count_nodes(ln, n), 3, "%s", s);
	cr_assert_str_eq(ln[3].text, "... 3 more", "%s", s);
	free(s);
	s = dump_str(root, 6);
	n = split_lines(s, ln, 16);
	cr_assert_eq(n, 6, "no truncation line when all fit:\n%s", s);
	free(s);
	s = dump_str(root, 1);
	n = split_lines(s, ln, 16);
	cr_assert_eq(n, 2, "%s", s);
	cr_assert_str_eq(ln[1].text, "... 5 more", "%s", s);
	free(s);
	for (int i = 0; i < 5; i++)
		rctx_release(kids[i]);
	rctx_release(root);
}

Test(observe, dump_errors)
{
	rctx_t *c = rctx_with_cancel(rctx_background());
	int p[2];

	cr_assert_eq(pipe(p), 0);
	close(p[0]);
	close(p[1]); /* p[1] is no fd now (no other thread opens one) */
	cr_assert_eq(rctx_dump(c, p[1], 0), -EBADF);
	cr_assert_eq(rctx_dump(c, -1, 0), -EBADF);
	cr_assert_eq(rctx_dump(NULL, 1, 0), -EINVAL);
	rctx_release(c);
}

/* ---- rctx_dump: concurrent changes --------------------------------------- */

struct churn {
	rctx_t *root;
	_Atomic bool stop;
	_Atomic long cycles;
};

/* Build a small subtree under root (cancel, value, cancel, timeout) with a
 * pipe read in flight under it on the thread's own ring, and end it, in a
 * loop, cancelling from the middle or the top. */
static void *churn_thread(void *arg)
{
	struct churn *ch = arg;
	rctx_ring_t *ring = NULL;
	struct io_uring_sqe sqe;
	struct done_rec d = { 0 };
	char buf[8];
	int p[2];

	if (rctx_ring_create(&ring, 0) || pipe(p))
		abort();
	for (long i = 0; !atomic_load(&ch->stop); i++) {
		rctx_t *a = rctx_with_cancel(ch->root);
		rctx_t *v = rctx_with_value(a, &key_a, &val_a);
		rctx_t *b = rctx_with_cancel(v);
		rctx_t *t = rctx_with_timeout(b, MS(60000));

		if (!a || !v || !b || !t)
			abort();
		io_uring_prep_read(&sqe, p[0], buf, sizeof(buf), 0);
		if (rctx_submit(ring, i & 2 ? v : t, &sqe, rec_cb, &d))
			abort();
		rctx_ring_run(ring, 0);
		if (i & 1)
			rctx_cancel(b);
		rctx_release(t);
		rctx_release(b);
		rctx_unref(v);
		rctx_release(a);
		drain(ring, TH_PATIENCE_MS);
		atomic_fetch_add(&ch->cycles, 1);
	}
	rctx_ring_destroy(ring);
	close(p[0]);
	close(p[1]);
	return NULL;
}

Test(observe, dump_while_tree_changes)
{
	struct churn ch = { .root = rctx_with_cancel(rctx_background()) };
	int64_t end = rctx_now() + MS(2000);
	pthread_t th[3];
	long dumps = 0;
	int fd = memfd_create("dump", MFD_CLOEXEC);

	cr_assert_geq(fd, 0);
	for (int i = 0; i < 3; i++)
		cr_assert_eq(pthread_create(&th[i], NULL, churn_thread, &ch), 0);
	/* At least some dumps overlap some cycles; bounded by time. */
	while (rctx_now() < end &&
	       (dumps < 2000 || atomic_load(&ch.cycles) < 2000)) {
		cr_assert_eq(ftruncate(fd, 0), 0);
		cr_assert_eq(lseek(fd, 0, SEEK_SET), 0);
		cr_assert_eq(rctx_dump(ch.root, fd, dumps % 2 ? 5 : 0), 0);
		cr_assert_gt(lseek(fd, 0, SEEK_CUR), 0);
		dumps++;
	}
	atomic_store(&ch.stop, true);
	for (int i = 0; i < 3; i++)
		pthread_join(th[i], NULL);
	cr_assert_gt(dumps, 0);
	cr_assert_gt(atomic_load(&ch.cycles), 0);
	/* Everything the threads made is gone again. */
	char *s = dump_str(ch.root, 0);
	struct line ln[4];
	cr_assert_eq(split_lines(s, ln, 4), 1, "%s", s);
	free(s);
	close(fd);
	rctx_release(ch.root);
}
