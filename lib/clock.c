/* SPDX-License-Identifier: MIT */
/* The library's clock (lib/clock.h). */
#include "clock.h"
#include "compiler.h"

RCTX_API int64_t rctx_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return timespec_to_ns(&ts);
}
