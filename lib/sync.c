/* SPDX-License-Identifier: MIT */
/*
 * The slow paths of lib/sync.h: futex sleeps and wake-ups.
 */
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "sync.h"

static long sys_futex(void *addr, int op, int val, const struct timespec *ts)
{
	return syscall(SYS_futex, addr, op, val, ts, NULL, FUTEX_BITSET_MATCH_ANY);
}

void rctx__rlock_slow(rlock_t *l)
{
	uint32_t c;

	/* Critical sections are a few dozen instructions: spin a little
	 * before paying for a futex sleep and wake-up. */
	for (int i = 0; i < 100; i++) {
		uint32_t z = 0;

		cpu_relax();
		if (atomic_load_explicit(&l->v, memory_order_relaxed) == 0 &&
		    atomic_compare_exchange_strong_explicit(&l->v, &z, 1,
				memory_order_acquire, memory_order_relaxed))
			return;
	}
	c = atomic_exchange_explicit(&l->v, 2, memory_order_acquire);

	while (c != 0) {
		sys_futex(&l->v, FUTEX_WAIT_PRIVATE, 2, NULL);
		c = atomic_exchange_explicit(&l->v, 2, memory_order_acquire);
	}
}

void rctx__rlock_wake(rlock_t *l)
{
	sys_futex(&l->v, FUTEX_WAKE_PRIVATE, 1, NULL);
}

int rctx__futex_wait(_Atomic int *addr, int val, int64_t abs_deadline)
{
	struct timespec ts, *tp = NULL;

	if (abs_deadline != INT64_MAX) {
		ts = ns_to_timespec(abs_deadline);
		tp = &ts;
	}
	if (sys_futex(addr, FUTEX_WAIT_BITSET_PRIVATE, val, tp) == 0)
		return 0;
	if (errno == ETIMEDOUT)
		return -ETIMEDOUT;
	if (errno == EINTR)
		return -EINTR;
	if (errno == EAGAIN)
		return 0; /* the value had changed */
	return -errno;
}

void rctx__futex_wake_all(_Atomic int *addr)
{
	sys_futex(addr, FUTEX_WAKE_PRIVATE, INT_MAX, NULL);
}
