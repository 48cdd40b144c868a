/* SPDX-License-Identifier: MIT */
/*
 * bench.h - shared harness of the ringctx benchmarks (header-only; each
 * benchmark is one C file that includes this header exactly once).
 *
 *  - Go-style b.N scaling: a benchmark function runs n operations; n grows
 *    until one run lasts the bench time, then the run is repeated and the
 *    median ns/op is reported. Parallel benchmarks split n over threads and
 *    report wall time / n, as testing.B.RunParallel does.
 *  - Allocation counting: this header defines malloc, calloc, realloc, free,
 *    posix_memalign, aligned_alloc, memalign and valloc for the whole binary
 *    and forwards them to glibc's __libc_* entry points. The library is linked
 *    statically, so its allocations go through these wrappers. Counting is
 *    only switched on for a separate, untimed pass, so the timed runs pay one
 *    predictable branch per call. Counted: calls and requested bytes (and
 *    malloc_usable_size, closer to Go's size-class rounded B/op), and the
 *    net live bytes (usable sizes allocated minus freed).
 *  - Results go to stdout as a table and, when RCTX_BENCH_CSV names a file,
 *    are appended to it as CSV rows (see bench_row()).
 *
 * Environment: RCTX_BENCH_QUICK=1 (fewer repetitions, shorter runs),
 * RCTX_BENCH_CSV=path, RCTX_BENCH_TIME_MS, RCTX_BENCH_REPS (overrides).
 */
#ifndef RCTX_BENCH_H
#define RCTX_BENCH_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <malloc.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------------ */
/* Time                                                                     */
/* ------------------------------------------------------------------------ */

/* CLOCK_MONOTONIC in ns. The ringctx benchmarks use rctx_now(), which reads
 * the same clock; this one serves the raw liburing baselines, which must not
 * depend on the library. */
static inline int64_t bench_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* A xorshift64 step: a cheap, reproducible sequence (offsets, data). */
static inline uint64_t bench_xorshift(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

/* ------------------------------------------------------------------------ */
/* Allocation counting                                                      */
/* ------------------------------------------------------------------------ */

extern void *__libc_malloc(size_t);
extern void __libc_free(void *);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);

static _Atomic int bench_counting;
static _Atomic uint64_t bench_nalloc, bench_nbytes, bench_nusable;
static _Atomic int64_t bench_nlive; /* usable bytes allocated - freed */

static inline void bench_count(size_t req, void *p)
{
	if (__builtin_expect(atomic_load_explicit(&bench_counting, memory_order_relaxed), 0) && p) {
		atomic_fetch_add_explicit(&bench_nalloc, 1, memory_order_relaxed);
		atomic_fetch_add_explicit(&bench_nbytes, req, memory_order_relaxed);
		size_t u = malloc_usable_size(p);
		atomic_fetch_add_explicit(&bench_nusable, u, memory_order_relaxed);
		atomic_fetch_add_explicit(&bench_nlive, (int64_t)u, memory_order_relaxed);
	}
}

/* A block leaves the heap (free, or the old block of a realloc). Blocks
 * allocated before counting started and freed while counting also count:
 * measure over a stretch where that does not happen. */
static inline void bench_uncount(void *p)
{
	if (__builtin_expect(atomic_load_explicit(&bench_counting, memory_order_relaxed), 0) && p)
		atomic_fetch_sub_explicit(&bench_nlive, (int64_t)malloc_usable_size(p),
					  memory_order_relaxed);
}

void *malloc(size_t n)
{
	void *p = __libc_malloc(n);
	bench_count(n, p);
	return p;
}

void free(void *p)
{
	bench_uncount(p);
	__libc_free(p);
}

void *calloc(size_t a, size_t b)
{
	void *p = __libc_calloc(a, b);
	bench_count(a * b, p);
	return p;
}

void *realloc(void *old, size_t n)
{
	size_t ou = old ? malloc_usable_size(old) : 0;
	void *p = __libc_realloc(old, n);
	if (p && ou && atomic_load_explicit(&bench_counting, memory_order_relaxed))
		atomic_fetch_sub_explicit(&bench_nlive, (int64_t)ou, memory_order_relaxed);
	bench_count(n, p);
	return p;
}

void *memalign(size_t al, size_t n)
{
	void *p = __libc_memalign(al, n);
	bench_count(n, p);
	return p;
}

void *aligned_alloc(size_t al, size_t n)
{
	return memalign(al, n);
}

int posix_memalign(void **out, size_t al, size_t n)
{
	if (al < sizeof(void *) || (al & (al - 1)))
		return EINVAL;
	void *p = memalign(al, n);
	if (!p)
		return ENOMEM;
	*out = p;
	return 0;
}

void *valloc(size_t n)
{
	return memalign((size_t)sysconf(_SC_PAGESIZE), n);
}

struct bench_allocs {
	uint64_t n, bytes, usable;
	int64_t live; /* net usable bytes still allocated at the stop */
};

static inline void bench_count_start(void)
{
	atomic_store(&bench_nalloc, 0);
	atomic_store(&bench_nbytes, 0);
	atomic_store(&bench_nusable, 0);
	atomic_store(&bench_nlive, 0);
	atomic_store(&bench_counting, 1);
}

static inline struct bench_allocs bench_count_stop(void)
{
	atomic_store(&bench_counting, 0);
	struct bench_allocs a = { atomic_load(&bench_nalloc), atomic_load(&bench_nbytes),
				  atomic_load(&bench_nusable), atomic_load(&bench_nlive) };
	return a;
}

/* ------------------------------------------------------------------------ */
/* Configuration                                                            */
/* ------------------------------------------------------------------------ */

static int bench_quick;
static int bench_reps = 5;
static int64_t bench_time_ns = 100 * 1000000LL;
static FILE *bench_csv;

static inline void bench_die(const char *what, int err)
{
	fprintf(stderr, "bench: %s: %s\n", what, strerror(err < 0 ? -err : err));
	exit(1);
}

/* Raise RLIMIT_NOFILE to the hard limit; read the environment. */
static inline void bench_init(const char *title)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	const char *q = getenv("RCTX_BENCH_QUICK");
	bench_quick = q && *q && strcmp(q, "0") != 0;
	if (bench_quick) {
		bench_reps = 3;
		bench_time_ns = 25 * 1000000LL;
	}
	const char *s = getenv("RCTX_BENCH_REPS");
	if (s && atoi(s) > 0)
		bench_reps = atoi(s);
	s = getenv("RCTX_BENCH_TIME_MS");
	if (s && atoi(s) > 0)
		bench_time_ns = atoi(s) * 1000000LL;
	s = getenv("RCTX_BENCH_CSV");
	if (s && *s) {
		bench_csv = fopen(s, "a");
		if (!bench_csv)
			bench_die(s, errno);
	}
	if (title)
		printf("== %s (%s: median of %d, %lld ms runs)\n", title,
	       bench_quick ? "quick" : "full", bench_reps,
	       (long long)(bench_time_ns / 1000000));
	fflush(stdout);
}

/* Pick a value for quick or full mode. */
#define BENCH_Q(quick, full) (bench_quick ? (quick) : (full))

static inline void bench_finish(void)
{
	if (bench_csv)
		fclose(bench_csv);
	fflush(stdout);
}

/* ------------------------------------------------------------------------ */
/* Statistics                                                               */
/* ------------------------------------------------------------------------ */

static int bench_cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* q-quantile (0..1) of v[0..n), nearest rank; sorts v. */
static inline double bench_quantile(double *v, size_t n, double q)
{
	if (n == 0)
		return NAN;
	qsort(v, n, sizeof *v, bench_cmp_d);
	size_t i = (size_t)ceil(q * (double)n);
	if (i > 0)
		i--;
	if (i >= n)
		i = n - 1;
	return v[i];
}

static inline double bench_median(double *v, size_t n)
{
	if (n == 0)
		return NAN;
	qsort(v, n, sizeof *v, bench_cmp_d);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* ------------------------------------------------------------------------ */
/* Output                                                                   */
/* ------------------------------------------------------------------------ */

/*
 * One CSV row (appended to $RCTX_BENCH_CSV):
 *   section,benchmark,unit,ringctx,ref_name,ref,ringctx_B_op,ringctx_allocs_op,
 *   ref_B_op,ref_allocs_op
 * NAN fields are written empty. ref_name "go" means "filled in by run.sh from
 * the Go run"; any other name means the reference was measured here.
 */
static inline void bench_csv_num(double v)
{
	if (isnan(v))
		return;
	if (v == floor(v) && fabs(v) < 1e15)
		fprintf(bench_csv, "%.0f", v);
	else
		fprintf(bench_csv, "%.4g", v);
}

static inline void bench_row(const char *section, const char *name, const char *unit,
			     double rctx, const char *ref_name, double ref, double rbytes,
			     double rallocs, double refbytes, double refallocs)
{
	if (!bench_csv)
		return;
	fprintf(bench_csv, "%s,%s,%s,", section, name, unit);
	bench_csv_num(rctx);
	fprintf(bench_csv, ",%s,", ref_name ? ref_name : "");
	bench_csv_num(ref);
	fputc(',', bench_csv);
	bench_csv_num(rbytes);
	fputc(',', bench_csv);
	bench_csv_num(rallocs);
	fputc(',', bench_csv);
	bench_csv_num(refbytes);
	fputc(',', bench_csv);
	bench_csv_num(refallocs);
	fputc('\n', bench_csv);
	fflush(bench_csv);
}

/* Human-friendly duration. */
static inline const char *bench_fmt_ns(double ns, char *buf, size_t len)
{
	if (isnan(ns))
		snprintf(buf, len, "-");
	else if (ns < 10)
		snprintf(buf, len, "%.2f ns", ns);
	else if (ns < 10000)
		snprintf(buf, len, "%.1f ns", ns);
	else if (ns < 1e7)
		snprintf(buf, len, "%.1f us", ns / 1e3);
	else
		snprintf(buf, len, "%.1f ms", ns / 1e6);
	return buf;
}

/* ------------------------------------------------------------------------ */
/* Go-style benchmark loop                                                  */
/* ------------------------------------------------------------------------ */

/* Runs n operations. For parallel benchmarks: called once per thread with
 * that thread's share of n; tid is 0..threads-1. */
typedef void (*bench_fn)(void *arg, long n, int tid);

struct bench_par {
	bench_fn fn;
	void *arg;
	long n;
	int tid;
	_Atomic int *go;
};

static void *bench_par_main(void *p)
{
	struct bench_par *bp = p;
	while (!atomic_load_explicit(bp->go, memory_order_acquire))
		sched_yield();
	bp->fn(bp->arg, bp->n, bp->tid);
	return NULL;
}

/* When set, called at the end of every run, inside the timed region: for
 * benchmarks whose operations leave work to a background thread, it waits
 * until that work is done, so that its cost is part of the figure. */
static void (*bench_settle)(void);

/* Run fn for n ops on `threads` threads (1: on the calling thread). Returns
 * elapsed ns. */
static inline int64_t bench_run_nc(bench_fn fn, void *arg, long n, int threads, int count)
{
	if (threads <= 1) {
		if (count)
			bench_count_start();
		int64_t t0 = bench_now();
		fn(arg, n, 0);
		if (bench_settle)
			bench_settle();
		return bench_now() - t0;
	}
	pthread_t th[threads];
	struct bench_par bp[threads];
	_Atomic int go = 0;
	for (int i = 0; i < threads; i++) {
		bp[i] = (struct bench_par){ fn, arg, n / threads + (i < n % threads), i, &go };
		int e = pthread_create(&th[i], NULL, bench_par_main, &bp[i]);
		if (e)
			bench_die("pthread_create", e);
	}
	usleep(1000);
	if (count)
		bench_count_start();
	int64_t t0 = bench_now();
	atomic_store_explicit(&go, 1, memory_order_release);
	for (int i = 0; i < threads; i++)
		pthread_join(th[i], NULL);
	if (bench_settle)
		bench_settle();
	return bench_now() - t0;
}

static inline int64_t bench_run_n(bench_fn fn, void *arg, long n, int threads)
{
	return bench_run_nc(fn, arg, n, threads, 0);
}

struct bench_result {
	double ns_op;     /* median over the repetitions */
	double bytes_op;  /* requested bytes per op (counting pass) */
	double usable_op; /* malloc_usable_size per op */
	double allocs_op; /* allocations per op */
	long n;           /* ops per timed run */
};

/* Find n such that one run lasts about bench_time_ns (as testing.B does). */
static inline long bench_scale(bench_fn fn, void *arg, int threads, long max_n)
{
	long n = threads > 1 ? threads : 1;
	for (;;) {
		int64_t t = bench_run_n(fn, arg, n, threads);
		if (t >= bench_time_ns || n >= max_n)
			return n;
		double per = t > 0 ? (double)t / n : 1;
		double want = (double)bench_time_ns * 1.2 / per;
		long next = want > 100.0 * n ? 100 * n : (long)want;
		if (next <= n)
			next = n + 1;
		if (next > max_n)
			next = max_n;
		n = next;
	}
}

/* Full measurement: scale, then bench_reps timed runs, then one counting run
 * of min(n, count_n) ops. max_n caps n (0: no cap). */
static inline struct bench_result bench_measure(bench_fn fn, void *arg, int threads,
						 long max_n)
{
	struct bench_result r = { 0 };
	if (max_n <= 0)
		max_n = 1L << 40;
	long n = bench_scale(fn, arg, threads, max_n);
	double v[64];
	int reps = bench_reps > 64 ? 64 : bench_reps;
	for (int i = 0; i < reps; i++)
		v[i] = (double)bench_run_n(fn, arg, n, threads) / (double)n;
	r.ns_op = bench_median(v, reps);
	r.n = n;
	long cn = n < 100000 ? n : 100000;
	if (cn < threads)
		cn = threads;
	bench_run_nc(fn, arg, cn, threads, 1);
	struct bench_allocs a = bench_count_stop();
	r.bytes_op = (double)a.bytes / cn;
	r.usable_op = (double)a.usable / cn;
	r.allocs_op = (double)a.n / cn;
	return r;
}

/*
 * Two implementations of the same operation (a reference and ringctx),
 * measured in the same process with their timed runs interleaved (A, B, A,
 * B, ...) so that machine noise hits both alike. Both use the n found for A
 * scaled by their speed ratio. Threads: 1.
 */
static inline void bench_measure_pair(bench_fn fa, void *aa, bench_fn fb, void *ab,
				      struct bench_result *ra, struct bench_result *rb)
{
	long na = bench_scale(fa, aa, 1, 1L << 40);
	long nb = bench_scale(fb, ab, 1, 1L << 40);
	double va[64], vb[64];
	int reps = bench_reps > 64 ? 64 : bench_reps;
	for (int i = 0; i < reps; i++) {
		va[i] = (double)bench_run_n(fa, aa, na, 1) / (double)na;
		vb[i] = (double)bench_run_n(fb, ab, nb, 1) / (double)nb;
	}
	memset(ra, 0, sizeof *ra);
	memset(rb, 0, sizeof *rb);
	ra->ns_op = bench_median(va, reps);
	rb->ns_op = bench_median(vb, reps);
	ra->n = na;
	rb->n = nb;
	struct bench_result *rr[2] = { ra, rb };
	bench_fn ff[2] = { fa, fb };
	void *aargs[2] = { aa, ab };
	for (int k = 0; k < 2; k++) {
		long cn = rr[k]->n < 100000 ? rr[k]->n : 100000;
		bench_run_nc(ff[k], aargs[k], cn, 1, 1);
		struct bench_allocs a = bench_count_stop();
		rr[k]->bytes_op = (double)a.bytes / cn;
		rr[k]->usable_op = (double)a.usable / cn;
		rr[k]->allocs_op = (double)a.n / cn;
	}
}

#endif /* RCTX_BENCH_H */
