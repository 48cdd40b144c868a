/* Description: helpers of the SQLite VFS tests: open a database through a
 * given VFS, run SQL that must succeed, read one integer, check integrity,
 * and run the stock sqlite3 shell (default VFS) on a database. */
#ifndef RCTX_SQLITE_UTIL_H
#define RCTX_SQLITE_UTIL_H

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>

#include <criterion/criterion.h>
#include <ringctx_sqlite.h>

#include "helpers.h"

/* Open path through vfs (NULL: the default unix VFS); busy timeout 10 s. */
static inline sqlite3 *su_open(const char *path, const char *vfs)
{
	sqlite3 *db = NULL;
	int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, vfs);

	cr_assert_eq(rc, SQLITE_OK, "open %s (%s): %s", path, vfs ? vfs : "default",
		     db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
	sqlite3_busy_timeout(db, 10000);
	return db;
}

/* Run sql; returns the result code (extended). */
static inline int su_exec(sqlite3 *db, const char *sql)
{
	int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);

	return rc == SQLITE_OK ? rc : sqlite3_extended_errcode(db);
}

#define su_ok(db, sql)                                                         \
	do {                                                                   \
		int su_rc_ = sqlite3_exec((db), (sql), NULL, NULL, NULL);      \
		cr_assert_eq(su_rc_, SQLITE_OK, "%s: %s", (sql), sqlite3_errmsg(db)); \
	} while (0)

/* The first column of the first row of sql, as an integer; rc in *rc. */
static inline long long su_int_rc(sqlite3 *db, const char *sql, int *rc)
{
	sqlite3_stmt *st = NULL;
	long long v = -1;

	*rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
	if (*rc == SQLITE_OK) {
		*rc = sqlite3_step(st);
		if (*rc == SQLITE_ROW) {
			v = sqlite3_column_int64(st, 0);
			*rc = SQLITE_OK;
		} else {
			*rc = sqlite3_extended_errcode(db);
		}
	}
	sqlite3_finalize(st);
	return v;
}

static inline long long su_int(sqlite3 *db, const char *sql)
{
	int rc;
	long long v = su_int_rc(db, sql, &rc);

	cr_assert_eq(rc, SQLITE_OK, "%s: %s (%d, errno %d)", sql, sqlite3_errmsg(db), rc,
		     sqlite3_system_errno(db));
	return v;
}

/* PRAGMA integrity_check says "ok". */
static inline bool su_intact(sqlite3 *db)
{
	sqlite3_stmt *st = NULL;
	bool ok;

	cr_assert_eq(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL), SQLITE_OK);
	ok = sqlite3_step(st) == SQLITE_ROW &&
	     !strcmp((const char *)sqlite3_column_text(st, 0), "ok");
	sqlite3_finalize(st);
	return ok;
}

/* Is the stock sqlite3 shell here? */
static inline bool su_have_shell(void)
{
	return system("command -v sqlite3 >/dev/null 2>&1") == 0;
}

/* The stock shell on a database, reading SQL from in. */
struct su_shell {
	FILE *in;
	pid_t pid;
};

/* Start the stock shell on path (-bail: it stops at the first error). */
static inline struct su_shell su_shell_start(const char *path)
{
	struct su_shell sh;
	int p[2];

	cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
	sh.pid = fork();
	cr_assert_geq(sh.pid, 0, "fork: %s", strerror(errno));
	if (sh.pid == 0) {
		int null = open(getenv("SU_SHELL_LOG") ? getenv("SU_SHELL_LOG") : "/dev/null", O_WRONLY | O_CREAT | O_APPEND, 0644);

		dup2(p[0], 0);
		dup2(null, 1);
		dup2(null, 2);
		execlp("timeout", "timeout", "60", "sqlite3", "-bail", path, (char *)NULL);
		_exit(127);
	}
	close(p[0]);
	sh.in = fdopen(p[1], "w");
	cr_assert_not_null(sh.in);
	return sh;
}

/* Close its input and wait: its exit status (0: every statement succeeded). */
static inline int su_shell_wait(struct su_shell sh)
{
	int status;

	fclose(sh.in);
	if (waitpid(sh.pid, &status, 0) != sh.pid)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* Run the stock shell on path with sql as its input; its exit status. */
static inline int su_shell(const char *path, const char *sql)
{
	struct su_shell sh = su_shell_start(path);

	fputs(sql, sh.in);
	return su_shell_wait(sh);
}

static inline void su_register(void)
{
	cr_assert_eq(rctx_sqlite_register(0), SQLITE_OK);
}

/* A test's own temporary directory (dir: len bytes, from a template ending
 * in XXXXXX), and the ringctx VFS registered. */
static inline void su_setup_dir(char *dir, size_t len, const char *template)
{
	cr_assert_lt(strlen(template), len);
	snprintf(dir, len, "%s", template);
	cr_assert_not_null(mkdtemp(dir));
	su_register();
}

/* Remove that directory and everything in it. */
static inline void su_remove_dir(const char *dir)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	(void)!system(cmd);
}

#endif
