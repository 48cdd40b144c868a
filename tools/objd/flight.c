/* SPDX-License-Identifier: MIT */
/*
 * flight.c - one open per key in flight (per worker): a GET whose key is not
 * in the open-file cache joins the open of that key already in flight, if
 * any, and waits for its result instead of issuing another.
 *
 * Why: on a hung disk an open can wait in the kernel without end, and not
 * always interruptibly (a FUSE open invalidates the file's pages and waits
 * for the lock of a page whose read hangs). Each such open holds a kernel
 * worker that a SIGTERM cannot end; with one open per key, a key read by
 * many clients holds one, not one per GET.
 *
 * An open in flight (a flight) runs under a context of its own, under the
 * worker's flights context, a child of the server's: no request's deadline
 * or hang-up gives it up, so it stays
 * known here until the kernel answers it (or the server ends), and every
 * GET of its key meanwhile joins it. Each GET waiting for it (its starter
 * included) waits under its own request context: a poll of the flight's
 * eventfd, which the flight writes once it has answered its waiters; so a
 * waiter whose deadline passes, or whose client hangs up (its connection's
 * lazy hang-up watch is armed, as by a request in a lane), leaves at once
 * (504, or 499), and the open goes on for the others and the next ones.
 *
 * The result (fd, size, validators) is an entry of the open-file cache
 * (cache.c): in the table when it may be cached, else an entry of the
 * flight's waiters alone; each waiter holds a reference. The invariant of
 * the cache holds: a flight carries the generation read before its open
 * started, and a GET joins only a flight of the current generation; after
 * this server's PUT or DELETE of the key, a GET starts a new open.
 *
 * One table for the whole process (a mutex, taken on a miss only): a GET
 * on another worker than the flight's joins it too, as a foreign waiter.
 * It polls the flight's eventfd on its own ring and, once woken, looks the
 * key up again: the flight's worker has put its entry in the shared index
 * by then (cache_borrow gives a duplicate of its fd), or the open failed
 * or may not be cached, and the GET opens the key itself. A miss looks in
 * the shared index under the table's lock, so that a GET never opens a key
 * whose open has just landed on another worker. So two workers' first GETs
 * of a key whose read then hangs make one open, not two (the second would
 * wait in fuse_open for the first's page and hold the process's exit).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "objd.h"

#define RESOLVE_FLIGHT (RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)
#define STATX_FLIGHT (STATX_TYPE | STATX_SIZE | STATX_MTIME)

/* A GET waiting for a flight: freed by its poll's callback. */
struct fwait {
	struct fwait *next;
	struct flight *fl;	/* a reference */
	struct conn *c;
	bool done;		/* answered by its flight (deliver(): not foreign) */
	bool foreign;		/* fl is another worker's: not in its waiters */
};

/* The flights of every worker, by key hash. */
static struct {
	pthread_mutex_t lock;
	struct flight *bucket[OBJD_FLIGHT_BUCKETS];
} flights = { .lock = PTHREAD_MUTEX_INITIALIZER };

static struct flight **bucket(uint64_t h)
{
	return &flights.bucket[h & (OBJD_FLIGHT_BUCKETS - 1)];
}

/* Under the lock: no later GET joins fl (its open goes on). */
static void flight_unlink(struct flight *fl)
{
	struct flight **pp = bucket(fl->hash);

	if (!fl->linked)
		return;
	while (*pp != fl)
		pp = &(*pp)->hnext;
	*pp = fl->hnext;
	fl->linked = false;
	atomic_fetch_sub(&fl->w->s->st.opens_in_flight, 1);
}

/* Any worker's thread. */
static void flight_put(struct flight *fl)
{
	if (atomic_fetch_sub(&fl->refs, 1) != 1)
		return;
	if (fl->efd >= 0)
		close(fl->efd);	/* an eventfd: never waits */
	rctx_release(fl->ctx);
	free(fl);
}

static int submit_open(struct flight *fl, uint64_t resolve);

/*
 * The opened fd: its size and validators (the kernel's cached attributes,
 * AT_STATX_DONT_SYNC, which an open has just brought up to date), as an
 * entry of the cache (one reference for the flight), or -errno (fd closed).
 * -EISDIR: not a regular file (404).
 */
static int flight_entry(struct flight *fl, int fd, struct fentry **ep)
{
	char etag[HTTP_ETAG_MAX];
	struct statx stx;
	int64_t mtime_ns;

	if (statx(fd, "", AT_EMPTY_PATH | AT_STATX_DONT_SYNC, STATX_FLIGHT, &stx) < 0)
		goto out_close;
	if (!S_ISREG(stx.stx_mode)) {
		close_async(fl->w, fd);
		return -EISDIR;
	}
	mtime_ns = (int64_t)stx.stx_mtime.tv_sec * 1000000000 + stx.stx_mtime.tv_nsec;
	http_etag(etag, mtime_ns, stx.stx_size);
	/* Known by this one name: the cache takes the fd (kept open for the
	 * next GETs of the key, closed when evicted and no longer used). */
	*ep = NULL;
	if (!fl->via_symlink)
		*ep = cache_add(fl->w, fl->key, fl->hash, fl->gen, fl->t0, fd, stx.stx_size, etag,
				stx.stx_mtime.tv_sec);
	if (!*ep)
		*ep = fentry_new(fl->key, fl->hash, fd, stx.stx_size, etag, stx.stx_mtime.tv_sec);
	if (*ep)
		return 0;
out_close:
	close_async(fl->w, fd);
	return -EIO;
}

/* Answer every waiter still there with res and e (a reference each). */
static void deliver(struct flight *fl, int res, struct fentry *e)
{
	struct fwait *fw = fl->waiters, *next;

	fl->waiters = NULL;
	for (; fw; fw = next) {
		next = fw->next;
		fw->done = true;
		if (e)
			e->refs++;
		get_flown(fw->c, res, e);
	}
}

/*
 * The open ended (the kernel answered; or, abandoned, the server ended):
 * after a symbolic link on the way (-ELOOP), opened again following it (not
 * cached then); else the result to the waiters, and their polls woken.
 */
static void flight_opened(void *arg, int res, void *data, unsigned flags)
{
	struct flight *fl = arg;
	struct fentry *e = NULL;
	uint64_t one = 1;

	(void)data;
	if (flags & RCTX_ASYNC_ABANDONED)
		atomic_fetch_add(&fl->w->s->st.abandoned, 1);
	if (res == -ELOOP && !fl->via_symlink) {
		fl->via_symlink = true;
		res = submit_open(fl, RESOLVE_FLIGHT);
		if (!res)
			return;
	}
	if (res >= 0)
		res = flight_entry(fl, res, &e);	/* shared now, if cached */
	pthread_mutex_lock(&flights.lock);
	flight_unlink(fl);
	pthread_mutex_unlock(&flights.lock);
	deliver(fl, res, e);
	if (e)
		cache_put(fl->w, e);
	if (fl->efd >= 0 && write(fl->efd, &one, sizeof(one)) < 0)
		fprintf(stderr, "ringctx-objd: eventfd write: %m\n");
	flight_put(fl);		/* the open's reference */
}

static int submit_open(struct flight *fl, uint64_t resolve)
{
	struct open_how how = { .flags = O_RDONLY | O_CLOEXEC, .resolve = resolve };

	return rctx_async_openat2(fl->w->ring, fl->ctx, fl->w->s->root_fd, fl->key, &how,
				  flight_opened, fl);
}

/* Under the lock: a new flight for key (hash h), its open submitted, in
 * the table. */
static struct flight *flight_start(struct worker *w, const char *key, uint64_t h)
{
	size_t len = strlen(key);
	struct flight *fl = calloc(1, sizeof(*fl) + len + 1);

	if (!fl)
		return NULL;
	memcpy(fl->key, key, len + 1);
	fl->w = w;
	fl->hash = h;
	fl->gen = cache_gen(h);		/* before the open starts */
	fl->t0 = rctx_now();
	fl->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	fl->ctx = rctx_with_cancel(w->flights_ctx);
	atomic_init(&fl->refs, 1);	/* the open's */
	/* Not following symbolic links first: only what the cache may take. */
	fl->via_symlink = !w->s->o.cache_cap;
	if (fl->efd < 0 || !fl->ctx ||
	    submit_open(fl, RESOLVE_FLIGHT | (fl->via_symlink ? 0 : RESOLVE_NO_SYMLINKS))) {
		flight_put(fl);
		return NULL;
	}
	fl->hnext = *bucket(h);
	*bucket(h) = fl;
	fl->linked = true;
	atomic_fetch_add(&w->s->st.opens_in_flight, 1);
	return fl;
}

/* Under the lock: the flight of key (hash h) that a GET starting now may
 * join, or NULL. */
static struct flight *flight_find(const char *key, uint64_t h)
{
	struct flight *fl;

	for (fl = *bucket(h); fl; fl = fl->hnext)
		if (fl->hash == h && !strcmp(fl->key, key))
			break;
	if (fl && fl->gen != cache_gen(h)) {
		flight_unlink(fl);	/* older than a change of the key */
		return NULL;
	}
	return fl;
}

/* A waiter's poll ended: after the result (nothing left to do; a foreign
 * waiter looks the key up again), or first, at its request context's end
 * (it leaves: 504, or its client is gone). */
static void fwait_cb(void *arg, int res, uint32_t flags)
{
	struct fwait *fw = arg, **pp;
	struct conn *c = fw->c;

	(void)flags;
	if (fw->foreign && res > 0 && c->state != C_DEAD && !rctx_err(c->r->req_ctx)) {
		/* The other worker's open ended: look the key up again. */
		if (flight_join(c))
			get_flown(c, -ENOMEM, NULL);
	} else if (!fw->done) {
		if (!fw->foreign) {
			for (pp = &fw->fl->waiters; *pp != fw; pp = &(*pp)->next)
				;
			*pp = fw->next;
		}
		if (!c->r->why && c->state != C_DEAD && !rctx_err(conn_ctx(c)))
			c->r->why = "open-in-flight";	/* its deadline */
		get_flown(c, res < 0 ? res : -ECANCELED, NULL);
	}
	flight_put(fw->fl);
	free(fw);
	conn_put(c);
}

/*
 * The GET on c opens its key (hash c->r->khash): it joins the open in flight
 * of that key, or starts one; its next step is get_flown(). Returns 0, or
 * -ENOMEM / the submission's error (get_flown() will not be called).
 */
int flight_join(struct conn *c)
{
	struct worker *w = c->w;
	struct io_uring_sqe sqe = { 0 };
	struct fwait *fw = malloc(sizeof(*fw));
	struct flight *fl;
	struct fentry *e;

	if (!fw)
		return -ENOMEM;
	pthread_mutex_lock(&flights.lock);
	e = cache_borrow(w, c->r->key, c->r->khash);
	fl = e ? NULL : flight_find(c->r->key, c->r->khash);
	if (fl)
		atomic_fetch_add(&w->s->st.opens_joined, 1);
	else if (!e)
		fl = flight_start(w, c->r->key, c->r->khash);
	if (fl)
		atomic_fetch_add(&fl->refs, 1);	/* fw's, taken under the lock */
	pthread_mutex_unlock(&flights.lock);
	if (e) {
		free(fw);
		get_flown(c, 0, e);
		return 0;
	}
	if (!fl)
		goto out_free;
	fw->fl = fl;
	fw->c = c;
	fw->done = false;
	fw->foreign = fl->w != w;
	io_uring_prep_poll_add(&sqe, fl->efd, POLLIN);
	if (conn_submit(c, c->r->req_ctx, &sqe, fwait_cb, fw)) {
		flight_put(fl);
		goto out_free;
	}
	/* It waits for the disk as a request in a lane would: its client's
	 * hang-up ends the wait (and cancels the poll). */
	rctx_hangup_arm(c->r->req_ctx);
	if (!fw->foreign) {	/* the result comes from this thread */
		fw->next = fl->waiters;
		fl->waiters = fw;
	}
	return 0;
out_free:
	free(fw);
	return -ENOMEM;
}

/* The worker's flights' parent context, a child of the server's. */
int flights_init(struct worker *w)
{
	w->flights_ctx = rctx_with_cancel(w->s->ctx);
	return w->flights_ctx ? 0 : -1;
}

/* At a worker's end: its flights, in the table or not, are given up
 * (their opens abandoned if the kernel still holds them), so that its
 * ring can end. */
void flights_cancel(struct worker *w)
{
	rctx_release(w->flights_ctx);
	w->flights_ctx = NULL;
}
