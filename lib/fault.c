/* SPDX-License-Identifier: MIT */
/*
 * Fault injection (test flavour only, see lib/fault.h): a countdown over
 * every wrapped call, from any thread, and the table of call sites.
 */
#ifdef RCTX_FAULT_INJECTION
#include <stdatomic.h>
#include <string.h>

#include "fault.h"

/* The linker's bounds of the call-site table. */
extern struct rctx__fault_site *const __start_rctx_fault_sites[];
extern struct rctx__fault_site *const __stop_rctx_fault_sites[];

static struct {
	_Atomic unsigned long target;   /* 0: disarmed */
	_Atomic bool sticky;            /* fail target and every later call */
	_Atomic unsigned long calls;
	_Atomic unsigned long injected;
	const char *_Atomic only;       /* count only calls of this name */
} fault;

int rctx__fault_submit_err = -EAGAIN;

bool rctx__fault_fail(struct rctx__fault_site *s)
{
	unsigned long target = atomic_load(&fault.target), n;

	if (!target)
		return false;
	if (atomic_load(&fault.only) && strcmp(atomic_load(&fault.only), s->call))
		return false;
	n = atomic_fetch_add(&fault.calls, 1) + 1;
	if (n < target || (n > target && !atomic_load(&fault.sticky)))
		return false;
	atomic_fetch_add(&s->failed, 1);
	atomic_fetch_add(&fault.injected, 1);
	return true;
}

static void arm(unsigned long n, bool sticky, const char *only)
{
	atomic_store(&fault.target, 0);
	atomic_store(&fault.only, only);
	atomic_store(&fault.calls, 0);
	atomic_store(&fault.injected, 0);
	atomic_store(&fault.sticky, sticky);
	atomic_store(&fault.target, n);
}

void rctx__fault_arm(unsigned long n) { arm(n, false, NULL); }
void rctx__fault_arm_from(unsigned long n) { arm(n, true, NULL); }
void rctx__fault_arm_call(const char *call, unsigned long n) { arm(n, false, call); }
void rctx__fault_disarm(void) { atomic_store(&fault.target, 0); }
unsigned long rctx__fault_calls(void) { return atomic_load(&fault.calls); }
unsigned long rctx__fault_injected(void) { return atomic_load(&fault.injected); }

size_t rctx__fault_sites(struct rctx__fault_site *const **sites)
{
	*sites = __start_rctx_fault_sites;
	return (size_t)(__stop_rctx_fault_sites - __start_rctx_fault_sites);
}
#endif
