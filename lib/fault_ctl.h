/* SPDX-License-Identifier: MIT */
/*
 * Fault-injection control (internal, test flavour only): the table of wrapped
 * call sites and the countdown that tests arm. See lib/fault.h.
 */
#ifndef RINGCTX_FAULT_CTL_H
#define RINGCTX_FAULT_CTL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

/* One wrapped call site in lib/; every site sits in the rctx_fault_sites
 * table, whether it ever runs or not. */
struct rctx__fault_site {
	const char *file;
	const char *func;
	int line;
	const char *call;
	_Atomic unsigned long failed; /* injected failures at this site */
};

/* Fail the nth wrapped call (any thread) counted from now, n >= 1; with
 * rctx__fault_arm_from(), that call and every later one. */
void rctx__fault_arm(unsigned long n);
void rctx__fault_arm_from(unsigned long n);
/* Fail the nth call named call ("realloc", "io_uring_submit"...), counting
 * only those. */
void rctx__fault_arm_call(const char *call, unsigned long n);
void rctx__fault_disarm(void);
/* Wrapped calls made, and failures injected, since the last arm. */
unsigned long rctx__fault_calls(void);
unsigned long rctx__fault_injected(void);
/* The table of every wrapped call site: *sites and its length. */
size_t rctx__fault_sites(struct rctx__fault_site *const **sites);

/* The wrapper's verdict for one call at s. */
bool rctx__fault_fail(struct rctx__fault_site *s);
/* What a failed io_uring_submit returns (default -EAGAIN: the kernel is out
 * of resources; -EBUSY: the CQ overflowed). */
extern int rctx__fault_submit_err;

#endif
