/* SPDX-License-Identifier: MIT */
/*
 * Binding a connection to a context (struct rs_binding in internal.h).
 *
 * The binding hangs off the ringctx-VFS file of the connection's main
 * database (found with SQLITE_FCNTL_FILE_POINTER), and the files of its
 * attached databases share it; journals and WAL reach it through their
 * database's file. An after-func on the bound context interrupts the
 * connection when the context ends; gen makes an after-func of an older
 * binding harmless, alive one that fires after the connection closed.
 * rctx_sqlite_open() covers the open, before there is a binding, with a
 * context of the opening thread.
 */
#include <errno.h>
#include <stdlib.h>

#include "internal.h"

struct after_arg {
	struct rs_binding *b;
	unsigned gen;
};

static void binding_ref(struct rs_binding *b)
{
	pthread_mutex_lock(&b->mu);
	b->refs++;
	pthread_mutex_unlock(&b->mu);
}

void rctx__sqlite_binding_unref(struct rs_binding *b)
{
	bool last;

	pthread_mutex_lock(&b->mu);
	last = --b->refs == 0;
	pthread_mutex_unlock(&b->mu);
	if (!last)
		return;
	if (b->ctx_owned)
		rctx_release(b->ctx);
	else if (b->ctx)
		rctx_unref(b->ctx);
	if (b->base)
		rctx_unref(b->base);
	pthread_mutex_destroy(&b->mu);
	free(b);
}

/* On the runtime thread, once the bound context is done. */
static void interrupt_db(void *p)
{
	struct after_arg *a = p;
	struct rs_binding *b = a->b;

	pthread_mutex_lock(&b->mu);
	if (b->alive && b->gen == a->gen)
		sqlite3_interrupt(b->db);
	pthread_mutex_unlock(&b->mu);
	rctx__sqlite_binding_unref(b);
	free(a);
}

/* Stop the after-func of the current context; free its argument if it
 * never runs. */
static void disarm(struct rs_binding *b, struct after_arg **arg)
{
	if (!b->after)
		return;
	if (rctx_after_stop(b->after)) {
		rctx__sqlite_binding_unref(b);	/* not the last: the caller holds one */
		free(*arg);
	}
	rctx_after_release(b->after);
	b->after = NULL;
	*arg = NULL;
}

/*
 * Make ctx (a reference the binding takes over; owned: release it when
 * replaced) the context of b's I/O, and arm the interrupt for it.
 */
static int set_ctx(struct rs_binding *b, rctx_t *ctx, bool owned, struct after_arg **arg)
{
	struct after_arg *a = malloc(sizeof(*a));

	if (!a) {
		if (owned)
			rctx_release(ctx);
		else
			rctx_unref(ctx);
		return SQLITE_NOMEM;
	}
	disarm(b, arg);
	pthread_mutex_lock(&b->mu);
	b->gen++;
	a->b = b;
	a->gen = b->gen;
	b->refs++;	/* the after-func's */
	pthread_mutex_unlock(&b->mu);
	if (b->ctx_owned)
		rctx_release(b->ctx);
	else if (b->ctx)
		rctx_unref(b->ctx);
	b->ctx = ctx;
	b->ctx_owned = owned;
	b->after = rctx_after_func(ctx, interrupt_db, a);
	if (!b->after) {
		rctx__sqlite_binding_unref(b);
		free(a);
		a = NULL;
	}
	*arg = a;
	return SQLITE_OK;
}

void rctx__sqlite_binding_close(struct rs_binding *b)
{
	disarm(b, &b->arg);
	pthread_mutex_lock(&b->mu);
	b->alive = false;
	pthread_mutex_unlock(&b->mu);
}

/* The binding of db, made on first use; NULL if db is not on our VFS. */
static struct rs_binding *binding_of(sqlite3 *db, int *rc)
{
	struct rs_file *f = db ? rctx__sqlite_db_file(db, "main") : NULL;
	struct rs_binding *b;

	*rc = SQLITE_MISUSE;
	if (!f)
		return NULL;
	if (f->bind)
		return f->bind;
	*rc = SQLITE_NOMEM;
	b = calloc(1, sizeof(*b));
	if (!b)
		return NULL;
	pthread_mutex_init(&b->mu, NULL);
	b->refs = 1;
	b->alive = true;
	b->db = db;
	f->bind = b;
	f->owns_bind = true;
	return b;
}

/* Share b with the files of db's other databases (attached ones). */
static void share(sqlite3 *db, struct rs_binding *b)
{
	const char *name;

	for (int i = 1; (name = sqlite3_db_name(db, i)); i++) {
		struct rs_file *f = rctx__sqlite_db_file(db, name);

		if (!f || f->bind == b)
			continue;
		if (f->bind)
			rctx__sqlite_binding_unref(f->bind);
		binding_ref(b);
		f->bind = b;
	}
}

int rctx_sqlite_bind(sqlite3 *db, rctx_t *ctx)
{
	int rc;
	struct rs_binding *b = binding_of(db, &rc);

	if (!b)
		return rc;
	if (!ctx)
		ctx = rctx_background();
	rctx_ref(ctx);
	if (b->base)
		rctx_unref(b->base);
	b->base = ctx;
	share(db, b);
	rctx_ref(ctx);
	return set_ctx(b, ctx, false, &b->arg);
}

/* Set only while this thread is inside sqlite3_open_v2() of rctx_sqlite_open():
 * the files of the connection being opened have no binding yet. */
_Thread_local rctx_t *rctx__sqlite_opening;

int rctx_sqlite_open(const char *filename, sqlite3 **db, int flags, rctx_t *ctx)
{
	int rc;

	if (!db)
		return SQLITE_MISUSE;
	if (!ctx)
		ctx = rctx_background();
	rctx__sqlite_opening = ctx;
	rc = sqlite3_open_v2(filename, db, flags, RCTX_SQLITE_VFS);
	rctx__sqlite_opening = NULL;
	return rc == SQLITE_OK ? rctx_sqlite_bind(*db, ctx) : rc;
}

rctx_t *rctx_sqlite_context(sqlite3 *db)
{
	struct rs_file *f = db ? rctx__sqlite_db_file(db, "main") : NULL;

	return f && f->bind ? f->bind->ctx : NULL;
}

int rctx_sqlite_ctx_err(sqlite3 *db, int *cause)
{
	rctx_t *ctx;
	int err;

	if (!db)
		return -EINVAL;
	ctx = rctx_sqlite_context(db);
	err = ctx ? rctx_err(ctx) : 0;
	if (err && cause)
		*cause = rctx_cause(ctx);
	return err;
}

/*
 * SQLITE_TRACE_STMT: a statement starts; give it its own deadline.
 * SQLITE_TRACE_PROFILE: it has ended; note whether its context had (for
 * the extension's rctx_status(), itself a later statement).
 */
static int statement_trace(unsigned type, void *p, void *stmt, void *arg)
{
	struct rs_binding *b = p;
	const char *text = arg;	/* TRACE_STMT: the SQL text */
	rctx_t *ctx;

	(void)stmt;
	if (!b->stmt_timeout_ns)
		return 0;
	if (type == SQLITE_TRACE_PROFILE) {
		b->prev_err = b->ctx ? rctx_err(b->ctx) : 0;
		return 0;
	}
	if (type != SQLITE_TRACE_STMT || (text && text[0] == '-'))
		return 0;	/* "-- ..." is a trigger's program, inside its statement */
	ctx = rctx_with_timeout(b->base ? b->base : rctx_background(), b->stmt_timeout_ns);
	if (ctx)
		set_ctx(b, ctx, true, &b->arg);
	return 0;
}

int rctx_sqlite_statement_timeout(sqlite3 *db, int64_t timeout_ns)
{
	int rc;
	struct rs_binding *b = timeout_ns < 0 ? NULL : binding_of(db, &rc);

	if (!b)
		return timeout_ns < 0 ? SQLITE_MISUSE : rc;
	share(db, b);
	b->stmt_timeout_ns = timeout_ns;
	if (!timeout_ns && b->ctx_owned) {
		/* Back to the bound context: the last statement's has expired. */
		rctx_t *base = b->base ? b->base : rctx_background();

		rctx_ref(base);
		rc = set_ctx(b, base, false, &b->arg);
		if (rc != SQLITE_OK)
			return rc;
	}
	return sqlite3_trace_v2(db, timeout_ns ? SQLITE_TRACE_STMT | SQLITE_TRACE_PROFILE : 0,
				timeout_ns ? statement_trace : NULL, b);
}
