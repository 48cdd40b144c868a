/* SPDX-License-Identifier: MIT */
/*
 * Time: instants are int64_t nanoseconds of CLOCK_MONOTONIC (rctx_now(),
 * public); the kernel wants them as timespecs. A leaf.
 */
#ifndef RINGCTX_CLOCK_H
#define RINGCTX_CLOCK_H

#include <stdint.h>
#include <time.h>
#include <linux/time_types.h>

#include "ringctx.h"

#define NSEC_PER_SEC 1000000000LL

static inline struct timespec ns_to_timespec(int64_t ns)
{
	return (struct timespec){ .tv_sec = ns / NSEC_PER_SEC,
				  .tv_nsec = ns % NSEC_PER_SEC };
}

/* The io_uring flavour (timeouts, link timeouts). */
static inline struct __kernel_timespec ns_to_kts(int64_t ns)
{
	return (struct __kernel_timespec){ .tv_sec = ns / NSEC_PER_SEC,
					   .tv_nsec = ns % NSEC_PER_SEC };
}

static inline int64_t timespec_to_ns(const struct timespec *ts)
{
	return (int64_t)ts->tv_sec * NSEC_PER_SEC + ts->tv_nsec;
}

/*
 * CLOCK_MONOTONIC as of the last kernel tick: never after rctx_now(),
 * usually a tick (1-10 ms: CLOCK_MONOTONIC_COARSE's resolution) before it,
 * more if ticks come late; a quarter of its cost (about 5 ns against 22 in
 * the vDSO). For the observability stamps of the create and cancel paths
 * (rctx_info()).
 */
static inline int64_t clock_coarse_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return timespec_to_ns(&ts);
}

#endif /* RINGCTX_CLOCK_H */
