/* SPDX-License-Identifier: MIT */
/*
 * A minimal stand-in for Criterion's API, used only for the ThreadSanitizer
 * build: Criterion cannot start under TSan (its inheritable arena fails to
 * map). Same test sources; each test runs in a forked child under an alarm,
 * and the summary line matches Criterion's "Synthesis" line.
 * Supports Test, TestSuite (.timeout), cr_assert*, cr_log_info, cr_skip_test.
 */
#ifndef RINGCTX_CRITERION_SHIM_H
#define RINGCTX_CRITERION_SHIM_H

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

struct crs_opts { int unused_; double timeout; };
struct crs_test {
	const char *suite, *name;
	void (*fn)(void);
	double timeout;
	struct crs_test *next;
};
struct crs_suite {
	const char *name;
	double timeout;
	struct crs_suite *next;
};

static struct crs_test *crs_tests;
static struct crs_suite *crs_suites;

#define CRS_SKIP_CODE 77

#define TestSuite(sname, ...) \
	__attribute__((constructor)) static void crs_suite_##sname(void) \
	{ \
		static struct crs_suite s; \
		struct crs_opts o = { .unused_ = 0, __VA_ARGS__ }; \
		s.name = #sname; \
		s.timeout = o.timeout; \
		s.next = crs_suites; \
		crs_suites = &s; \
	}

#define Test(sname, tname, ...) \
	static void crs_fn_##sname##_##tname(void); \
	__attribute__((constructor)) static void crs_reg_##sname##_##tname(void) \
	{ \
		static struct crs_test t; \
		struct crs_opts o = { .unused_ = 0, __VA_ARGS__ }; \
		t.suite = #sname; \
		t.name = #tname; \
		t.fn = crs_fn_##sname##_##tname; \
		t.timeout = o.timeout; \
		t.next = crs_tests; \
		crs_tests = &t; \
	} \
	static void crs_fn_##sname##_##tname(void)

__attribute__((format(printf, 4, 5), noreturn, unused))
static void crs_fail(const char *file, int line, const char *expr, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "[----] %s:%d: Assertion Failed: %s\n[----]   ", file, line, expr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	exit(1);
}

#define cr_assert(cond, ...) do { if (!(cond)) \
	crs_fail(__FILE__, __LINE__, #cond, " " __VA_ARGS__); } while (0)
#define cr_assert_not(c, ...) cr_assert(!(c), __VA_ARGS__)
#define cr_assert_eq(a, b, ...) cr_assert((a) == (b), __VA_ARGS__)
#define cr_assert_neq(a, b, ...) cr_assert((a) != (b), __VA_ARGS__)
#define cr_assert_lt(a, b, ...) cr_assert((a) < (b), __VA_ARGS__)
#define cr_assert_leq(a, b, ...) cr_assert((a) <= (b), __VA_ARGS__)
#define cr_assert_gt(a, b, ...) cr_assert((a) > (b), __VA_ARGS__)
#define cr_assert_geq(a, b, ...) cr_assert((a) >= (b), __VA_ARGS__)
#define cr_assert_null(p, ...) cr_assert((p) == NULL, __VA_ARGS__)
#define cr_assert_not_null(p, ...) cr_assert((p) != NULL, __VA_ARGS__)
#define cr_assert_str_eq(a, b, ...) cr_assert(strcmp((a), (b)) == 0, __VA_ARGS__)
#define cr_log_info(...) fprintf(stderr, "[----] " __VA_ARGS__)
#define cr_skip_test(...) do { fprintf(stderr, "[SKIP] " __VA_ARGS__); \
	fprintf(stderr, "\n"); exit(CRS_SKIP_CODE); } while (0)

static double crs_timeout(const struct crs_test *t)
{
	if (t->timeout > 0)
		return t->timeout;
	for (struct crs_suite *s = crs_suites; s; s = s->next)
		if (!strcmp(s->name, t->suite) && s->timeout > 0)
			return s->timeout;
	return 60;
}

int main(int argc, char **argv)
{
	int tested = 0, passed = 0, failed = 0, crashed = 0;
	struct crs_test *rev = NULL, *t, *next;

	(void)argc;
	(void)argv;
	for (t = crs_tests; t; t = next) { /* registration order */
		next = t->next;
		t->next = rev;
		rev = t;
	}
	for (t = rev; t; t = t->next) {
		int status;
		pid_t pid;

		fflush(NULL);
		pid = fork();
		if (pid == 0) {
			alarm((unsigned)crs_timeout(t) + 1);
			t->fn();
			exit(0);
		}
		waitpid(pid, &status, 0);
		tested++;
		if (WIFEXITED(status) && WEXITSTATUS(status) == CRS_SKIP_CODE) {
			tested--;
			fprintf(stderr, "[----] %s::%s skipped\n", t->suite, t->name);
		} else if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
			passed++;
		} else if (WIFEXITED(status)) {
			failed++;
			fprintf(stderr, "[FAIL] %s::%s\n", t->suite, t->name);
		} else {
			crashed++;
			fprintf(stderr, "[FAIL] %s::%s: CRASH (signal %d%s)\n", t->suite,
				t->name, WTERMSIG(status),
				WTERMSIG(status) == SIGALRM ? ": timed out" : "");
		}
	}
	fprintf(stderr, "[====] Synthesis: Tested: %d | Passing: %d | Failing: %d | Crashing: %d\n",
		tested, passed, failed + crashed, crashed);
	return failed + crashed ? 1 : 0;
}

#endif
