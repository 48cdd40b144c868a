/* SPDX-License-Identifier: MIT */
/*
 * The bottom of lib/: compiler helpers, the export attribute and
 * RCTX_ASSERT. Includes nothing of lib/.
 */
#ifndef RINGCTX_COMPILER_H
#define RINGCTX_COMPILER_H

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#define RCTX_API __attribute__((visibility("default")))
#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
#define container_of(p, type, member) \
	((type *)((char *)(p) - offsetof(type, member)))

/*
 * Invariants the code relies on. Checked in the sanitizer, fault and fuzz
 * builds (-DRCTX_DEBUG, see the Makefile), compiled out otherwise; the
 * expression is then not evaluated, so it must have no side effect.
 */
#ifdef RCTX_DEBUG
#define RCTX_ASSERT(e) ((e) ? (void)0 : \
	(fprintf(stderr, "ringctx: %s:%d: %s: assertion `%s' failed\n", \
		 __FILE__, __LINE__, __func__, #e), abort()))
#else
#define RCTX_ASSERT(e) ((void)sizeof(!(e)))
#endif

#if defined(__x86_64__) || defined(__i386__)
static inline void cpu_relax(void) { __builtin_ia32_pause(); }
#elif defined(__aarch64__)
static inline void cpu_relax(void) { __asm__ __volatile__("yield"); }
#else
static inline void cpu_relax(void) { }
#endif

/* Running under valgrind: it lacks some system calls (openat2), and
 * per-thread caches only hide leaks from it. */
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define under_valgrind() RUNNING_ON_VALGRIND
#endif
#endif
#ifndef under_valgrind
#define under_valgrind() 0
#endif

#endif /* RINGCTX_COMPILER_H */
