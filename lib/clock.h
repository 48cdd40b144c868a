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

#endif /* RINGCTX_CLOCK_H */
