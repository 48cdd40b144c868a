/* Description: small helpers shared by the ringctx test suites: sleeping,
 * bounded waiting for a condition, fd readiness checks, a scale factor for
 * iteration counts under slow runtimes (sanitizers, valgrind), and waits that
 * order a check after the runtime thread's work instead of after a sleep. */
#ifndef RCTX_TEST_HELPERS_H
#define RCTX_TEST_HELPERS_H

#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ringctx.h>

#define MS(x) ((int64_t)(x) * 1000000LL)

/*
 * Bound, in ms, for waiting on something that must happen (a deadline firing,
 * a wake-up, a callback), and for "took too long" checks. No run, however
 * slow (valgrind, a loaded host), comes near it; every wait bounded by it
 * returns as soon as its condition holds, so a quick run stays quick. Test
 * suites' .timeout is well above it, so a wait that gives up reports itself.
 */
#define TH_PATIENCE_MS 20000

static inline int64_t th_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static inline void th_sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/* Evaluate cond until it holds or timeout_ms passes; yields the final value. */
#define WAIT_UNTIL(cond, timeout_ms)                                          \
	({                                                                    \
		int64_t wu_end_ = th_now_ns() + MS(timeout_ms);               \
		bool wu_ok_;                                                  \
		while (!(wu_ok_ = !!(cond)) && th_now_ns() < wu_end_)         \
			th_sleep_ms(1);                                       \
		wu_ok_;                                                       \
	})

/* 1 if fd polls readable within timeout_ms (0: just check), 0 if not, -errno. */
static inline int th_readable(int fd, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	int r;
	while ((r = poll(&p, 1, timeout_ms)) == -1 && errno == EINTR)
		;
	if (r < 0)
		return -errno;
	return r > 0 && (p.revents & POLLIN);
}

/* Open file descriptors of this process. */
static inline int th_fd_count(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -errno;
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

static inline bool th_under_valgrind(void)
{
	const char *p = getenv("LD_PRELOAD");
	return p && strstr(p, "vgpreload");
}

/* Multiplier for iteration counts: RCTX_TEST_SCALE if set, else 1 in a plain
 * build, smaller under ThreadSanitizer and valgrind. */
static inline double th_scale(void)
{
	const char *e = getenv("RCTX_TEST_SCALE");
	if (e && *e) {
		double s = strtod(e, NULL);
		if (s > 0)
			return s;
	}
	if (th_under_valgrind())
		return 0.01;
#if defined(__SANITIZE_THREAD__)
	return 0.05;
#else
	return 1.0;
#endif
}

static inline long th_scaled(long n)
{
	long r = (long)(n * th_scale());
	return r > 0 ? r : 1;
}

/* Whether the process memory figures are meaningful (no sanitizer allocator,
 * no valgrind). */
static inline bool th_plain_malloc(void)
{
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
	return false;
#else
	return !th_under_valgrind();
#endif
}

static inline void th_count_call(void *arg)
{
	atomic_fetch_add((atomic_int *)arg, 1);
}

/*
 * Wait until the runtime thread has run every after-func queued so far: it
 * runs them one at a time in queue order, so once one queued now has run,
 * all earlier ones have. A check that something did not run, made after
 * this, does not depend on how long the test waited. Not while an
 * after-func blocks. False if it never ran within TH_PATIENCE_MS.
 */
static inline bool th_afters_settle(void)
{
	static atomic_int ran;
	int want = atomic_load(&ran) + 1;
	rctx_t *c = rctx_with_cancel(rctx_background());
	rctx_after_t *h;
	bool ok;

	if (!c)
		return false;
	rctx_cancel(c);
	h = rctx_after_func(c, th_count_call, &ran);
	ok = h && WAIT_UNTIL(atomic_load(&ran) >= want, TH_PATIENCE_MS);
	rctx_after_release(h);
	rctx_release(c);
	return ok;
}

/*
 * Wait until the runtime thread has taken on every deadline context queued
 * so far, and dropped every one cancelled so far (giving their memory back).
 * Each turn of its loop drains its arm and remove queues before it runs
 * after-funcs: once an after-func queued after a first one has run has
 * itself run, a whole turn began after this call. No timer is involved, so
 * nothing depends on how quick the machine is. Starts the runtime thread.
 * False if the runtime did not get there within TH_PATIENCE_MS.
 */
static inline bool th_runtime_settle(void)
{
	return th_afters_settle() && th_afters_settle();
}

#endif
