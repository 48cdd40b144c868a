/* Description: small helpers shared by the ringctx test suites: sleeping,
 * bounded waiting for a condition, fd readiness checks, and a scale factor for
 * iteration counts under slow runtimes (sanitizers, valgrind). */
#ifndef RCTX_TEST_HELPERS_H
#define RCTX_TEST_HELPERS_H

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ringctx.h>

#define MS(x) ((int64_t)(x) * 1000000LL)

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

/*
 * Wait until the runtime thread has handled every deadline context queued
 * so far (cancelled ones give their memory back then): a sentinel deadline
 * queued last expires only after the runtime has drained the queue batch
 * that holds everything queued before it.
 */
static inline void th_runtime_settle(void)
{
	rctx_t *s = rctx_with_timeout(rctx_background(), 2000000);

	if (s) {
		rctx_wait(s, RCTX_FOREVER);
		rctx_release(s);
	}
}

#endif
