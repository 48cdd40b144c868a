/* SPDX-License-Identifier: MIT */
/*
 * Wrappers for every call in lib/ that can fail for want of memory, file
 * descriptors, threads or kernel resources. Normally they are the plain
 * calls. In the test flavour built with RCTX_FAULT_INJECTION each call site
 * enters a table (section rctx_fault_sites) and consults a countdown armed by
 * tests/test_fault.c; the call it picks fails with the call's own error:
 * NULL/ENOMEM, -1/EMFILE, -ENOMEM, EAGAIN, rctx__fault_submit_err. There the
 * raw calls are poisoned, so a new unwrapped call site does not compile.
 * Included by lib/internal.h, after every system header.
 */
#ifndef RINGCTX_FAULT_H
#define RINGCTX_FAULT_H

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <liburing.h>

#ifndef RCTX_FAULT_INJECTION

#define rctx__malloc(n)			malloc(n)
#define rctx__calloc(n, sz)		calloc(n, sz)
#define rctx__realloc(p, n)		realloc(p, n)
#define rctx__aligned_alloc(al, n)	aligned_alloc(al, n)
#define rctx__strdup(s)			strdup(s)
#define rctx__eventfd(v, fl)		eventfd(v, fl)
#define rctx__queue_init(e, r, fl)	io_uring_queue_init(e, r, fl)
#define rctx__queue_init_params(e, r, p) io_uring_queue_init_params(e, r, p)
#define rctx__pthread_create(t, at, fn, arg) pthread_create(t, at, fn, arg)
#define rctx__submit(r)			io_uring_submit(r)

#else /* RCTX_FAULT_INJECTION */

#include "fault_ctl.h"

/* This call site's table entry (registered at link time). */
#define FAULT_SITE(call_) ({						\
	static struct rctx__fault_site site_ = { __FILE__, __func__, __LINE__, call_, 0 }; \
	static struct rctx__fault_site *const entry_			\
		__attribute__((section("rctx_fault_sites"), used)) = &site_; \
	&site_; })
#define FAULT(call_) rctx__fault_fail(FAULT_SITE(call_))

static inline void *fault_null(void) { errno = ENOMEM; return NULL; }
static inline int fault_fd(void) { errno = EMFILE; return -1; }

#define rctx__malloc(n)		(FAULT("malloc") ? fault_null() : malloc(n))
#define rctx__calloc(n, sz)	(FAULT("calloc") ? fault_null() : calloc(n, sz))
#define rctx__realloc(p, n)	(FAULT("realloc") ? fault_null() : realloc(p, n))
#define rctx__aligned_alloc(al, n) \
	(FAULT("aligned_alloc") ? fault_null() : aligned_alloc(al, n))
#define rctx__strdup(s)		(FAULT("strdup") ? fault_null() : (void *)strdup(s))
#define rctx__eventfd(v, fl)	(FAULT("eventfd") ? fault_fd() : eventfd(v, fl))
#define rctx__queue_init(e, r, fl) \
	(FAULT("io_uring_queue_init") ? -ENOMEM : io_uring_queue_init(e, r, fl))
#define rctx__queue_init_params(e, r, p) \
	(FAULT("io_uring_queue_init_params") ? -ENOMEM : io_uring_queue_init_params(e, r, p))
#define rctx__pthread_create(t, at, fn, arg) \
	(FAULT("pthread_create") ? EAGAIN : pthread_create(t, at, fn, arg))
#define rctx__submit(r) \
	(FAULT("io_uring_submit") ? rctx__fault_submit_err : io_uring_submit(r))

#pragma GCC poison malloc calloc realloc aligned_alloc strdup eventfd
#pragma GCC poison pthread_create io_uring_queue_init io_uring_queue_init_params
#pragma GCC poison io_uring_submit

#endif /* RCTX_FAULT_INJECTION */
#endif /* RINGCTX_FAULT_H */
