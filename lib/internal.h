/* SPDX-License-Identifier: MIT */
/*
 * Internal structures of ringctx. Nothing here is API.
 *
 * Object model (see docs/lifecycle.md):
 *  - Every tree object starts with struct rctx (refcount, kind, parent).
 *  - A "canceler" is what a cancellable context keeps in its child set: a
 *    cancellable child context, an after-func record or a merge's link
 *    (struct rctx_link). Value and
 *    without-cancel contexts keep nothing; their children register with the
 *    nearest cancellable ancestor (value contexts cache it in ->canc).
 *  - The child set and the request list of a cancellable context are
 *    protected by its own lock (no global lock on the cancel path). Only a
 *    cancel holds several, always top-down along one path; rings are reached
 *    through lock-free stacks, never under a ring lock.
 */
#ifndef RINGCTX_INTERNAL_H
#define RINGCTX_INTERNAL_H

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ringctx.h"
#include "compiler.h"
#include "fault.h"
#include "clock.h"
#include "sync.h"
#include "stat.h"
#include "wake.h"
#include <string.h>
#include "pool.h"
#include "uring.h"

/* Public entry points that make system calls restore errno on return: a
 * call leaves it as it found it, except that one returning a pointer that
 * fails (NULL) says why in errno. ERRNO_FAIL(e), in a function with the
 * guard, makes e what the guard restores (errno = e would be undone) and
 * evaluates to NULL: return ERRNO_FAIL(EINVAL). Internal helpers that
 * return NULL set errno itself; their public caller passes it on with
 * ERRNO_FAIL(errno). */
static inline void errno_restore(int *saved) { errno = *saved; }
#define ERRNO_GUARD int saved_errno_ __attribute__((cleanup(errno_restore), unused)) = errno
#define ERRNO_FAIL(e) ({ saved_errno_ = (e); NULL; })

/*
 * The kernel writes io_uring results (read data, accepted addresses) behind
 * the back of memory checkers: say so, so that valgrind users do not see
 * what the kernel wrote as uninitialised. A no-op outside valgrind, and when
 * its header is not installed.
 */
#if defined(__has_include)
#if __has_include(<valgrind/memcheck.h>)
#include <valgrind/memcheck.h>
#define kernel_wrote(p, n) ((void)VALGRIND_MAKE_MEM_DEFINED((p), (n)))
#endif
#endif
#ifndef kernel_wrote
#define kernel_wrote(p, n) ((void)(p), (void)(n))
#endif

/* ---- small intrusive list: one-pointer head, O(1) unlink ---------------- */
struct hnode {
	struct hnode *next;
	struct hnode **pprev; /* NULL when not on a list */
};

static inline void hlist_add(struct hnode **head, struct hnode *n)
{
	n->next = *head;
	if (n->next)
		n->next->pprev = &n->next;
	*head = n;
	n->pprev = head;
}

static inline void hlist_del(struct hnode *n)
{
	*n->pprev = n->next;
	if (n->next)
		n->next->pprev = n->pprev;
	n->next = NULL;
	n->pprev = NULL;
}

/* ---- the tree ---------------------------------------------------------- */
enum rctx_kind {
	RCTX_BACKGROUND,
	RCTX_TODO,
	RCTX_CANCEL,   /* WithCancel (or a deadline later than the parent's) */
	RCTX_DEADLINE, /* WithDeadline/WithTimeout with a kernel timer */
	RCTX_EXT,      /* cancellable, with behaviour of its own (struct rctx_ext) */
	RCTX_VALUE,
	RCTX_WITHOUT,  /* WithoutCancel */
	RCTX_AFTER,    /* an after-func record (not a context) */
	RCTX_LINK,     /* a merge's record in a source's child set (not a context) */
};

struct rctx {
	_Atomic uint32_t refs;
	uint8_t kind;
	_Atomic uint8_t waiters;   /* cancellable: someone may sleep on ->err */
	uint8_t pool;              /* its allocation class (lib/pool.h) */
	uint8_t home;              /* and the thread cache it belongs to */
	struct rctx *parent;       /* holds a reference; NULL for roots */
};

/* Something a cancellable context keeps in its child set. */
struct rctx_canceler {
	struct rctx hdr;
	struct hnode sib;
};

struct rctx_req;
struct rctx_kept;

/* WithCancel. 128 bytes on x86-64. */
struct rctx_cancel {
	struct rctx_canceler c;
	rlock_t lock;
	_Atomic int err;           /* 0, ERR_ENDING, -ECANCELED, -ETIMEDOUT;
				      the futex word of rctx_wait */
	int cause;                 /* valid once err != 0 (published by err) */
	_Atomic int done_fd;       /* -1 until rctx_done_fd() */
	struct hnode *children;    /* cancelers registered here */
	struct hnode *reqs;        /* requests tracked here: in flight, parked */
	int64_t deadline;          /* effective deadline (own or inherited) */
	/* Observability (rctx_info(), rctx_dump()), under lock once shared: */
	int64_t created_ns;        /* clock at creation (rctx_info()) */
	int64_t done_ns;           /* clock when it ended; 0 while not */
	uint64_t submitted;        /* requests linked in reqs (lib/ring.c) */
	uint64_t completed;        /* ... unlinked with another result */
	uint64_t aborted;          /* ... unlinked with -ECANCELED */
	uint64_t abandoned, late;  /* kept requests given up, ended since */
};

/* WithDeadline with its own kernel timer. */
struct rctx_deadline {
	struct rctx_cancel cc;
	union {
		struct rctx_deadline *arm_next; /* while on the arm queue */
		size_t heap_idx;                /* then: runtime-thread only */
	};
	struct rctx_deadline *remove_next; /* runtime remove queue */
	int timeout_cause;
	uint8_t tstate;            /* runtime-thread only (lib/runtime.c) */
};

/*
 * A cancellable context with behaviour of its own (a merge, a signal or fd
 * watch): a struct rctx_cancel, its ops, and whatever follows in the
 * containing structure. Every hook is optional and runs with no library lock
 * held.
 */
struct rctx_ext;
struct rctx_ext_ops {
	const char *name;   /* its part of rctx_format(), e.g. "WithAny" */
	/* Once, after the context is done (whoever ended it), with a
	 * reference held; not called if its last reference went first, nor
	 * for one created done (its creator sees rctx_err() != 0). */
	void (*ended)(struct rctx_ext *x);
	/* Once, when its last reference goes, before its memory is freed. */
	void (*destroy)(struct rctx_ext *x);
	/* Values of its own, looked up after its parent's chain found none:
	 * true and *val if it has key. */
	bool (*value)(const struct rctx_ext *x, const void *key, void **val);
	/* The library keeps it alive (a kernel watch): its users' references
	 * are counted apart, and the last one dropped ends it, as
	 * rctx_release() does (lib/context.c). */
	bool end_unowned;
};

struct rctx_ext {
	struct rctx_cancel cc;
	const struct rctx_ext_ops *ops;
	struct rctx_ext *ended_next; /* deferred ended() list of a cancel */
	_Atomic uint32_t users;      /* references of its users (end_unowned) */
};

/* WithValue, WithValues: n pairs, the last one searched first. 48 bytes on
 * x86-64 with one pair (one pool class: lib/pool.h). */
struct rctx_kv {
	const void *key;
	void *val;
};

struct rctx_value {
	struct rctx hdr;
	struct rctx_cancel *canc;  /* nearest cancellable ancestor or NULL */
	size_t n;
	struct rctx_kv kv[];
};

/* A value node for key whose value points to size zeroed bytes in the same
 * allocation (a structure kept by value). NULL and errno EINVAL if parent
 * or key is invalid, ENOMEM on out-of-memory. */
struct rctx *rctx__value_blob(struct rctx *parent, const void *key, size_t size,
			      void **blob);

struct rctx_without {
	struct rctx hdr;
};

enum { AFTER_ARMED, AFTER_QUEUED, AFTER_STOPPED };

struct rctx_after {
	struct rctx_canceler c;    /* hdr.parent: the context it watches */
	void (*fn)(void *);
	void *arg;
	_Atomic int state;
	struct rctx_after *run_next; /* runtime run queue */
};

/*
 * A link: the record by which an extended context (a merge) is cancelled
 * along with another context, a source that is not its parent. It sits in
 * the child set of the source's governor and lives inside its owner's
 * allocation (its own refs are unused). A cancel that detaches it takes a
 * reference on the owner, if it still has one, and cancels it with the
 * source's error and cause once no lock is held.
 */
struct rctx_link {
	struct rctx_canceler c;    /* hdr.parent: the source (a reference) */
	struct rctx_ext *owner;
	struct rctx_link *fire_next; /* deferred by a cancel */
	int err, cause;            /* what the deferring cancel ends it with */
};

/* Every object starts so: one reference per count in refs, holding one on
 * parent (a no-op count on the static roots). */
static inline void hdr_init(struct rctx *c, enum rctx_kind kind,
			    struct rctx *parent, uint32_t refs)
{
	atomic_init(&c->refs, refs);
	c->kind = (uint8_t)kind;
	atomic_init(&c->waiters, 0);
	if (parent)
		atomic_fetch_add_explicit(&parent->refs, 1, memory_order_relaxed);
	c->parent = parent;
}

static inline void canceler_init(struct rctx_canceler *k, enum rctx_kind kind,
				 struct rctx *parent, uint32_t refs)
{
	hdr_init(&k->hdr, kind, parent, refs);
	k->sib.next = NULL;
	k->sib.pprev = NULL;
}

/* The API's check of a context argument: an after-func handle is not one. */
static inline bool ctx_valid(const struct rctx *c)
{
	return c && c->kind != RCTX_AFTER;
}

/* RCTX_CANCEL, RCTX_DEADLINE and RCTX_EXT are consecutive. */
static inline bool kind_cancellable(const struct rctx *c)
{
	return (unsigned)(c->kind - RCTX_CANCEL) <= RCTX_EXT - RCTX_CANCEL;
}

/* The cancellable context that governs c: itself, or the nearest
 * cancellable ancestor (NULL under background/without-cancel). */
static inline struct rctx_cancel *rctx_governor(const struct rctx *c)
{
	if (kind_cancellable(c))
		return (struct rctx_cancel *)c;
	if (c->kind == RCTX_VALUE)
		return ((const struct rctx_value *)c)->canc;
	return NULL;
}

/*
 * The error word holds ERR_ENDING while a cancel, holding the node's lock,
 * signals its done fd and cancels its subtree; the final error is stored
 * just before that lock is released. So a reader that finds the fd readable
 * never reads err == 0, one that reads err != 0 always finds the fd readable
 * (Go gets both from its mutex), and a context seen done has its whole
 * subtree done. A reader that meets ERR_ENDING waits for the lock, then
 * reads the final error. Never call this with c->lock held; under the lock,
 * read err directly.
 */
#define ERR_ENDING 1

static inline int cancel_err(const struct rctx_cancel *c)
{
	int e = atomic_load_explicit(&c->err, memory_order_acquire);

	if (unlikely(e == ERR_ENDING)) {
		struct rctx_cancel *m = (struct rctx_cancel *)c;

		rlock(&m->lock);
		runlock(&m->lock);
		e = atomic_load_explicit(&c->err, memory_order_acquire);
	}
	return e;
}

void rctx__obj_get(struct rctx *c);
bool rctx__obj_tryget(struct rctx *c);
void rctx__obj_put(struct rctx *c);

/*
 * The child set (lib/context.c): a canceler k registers with the governor of
 * k->hdr.parent, under that governor's lock, and a cancel of the governor
 * detaches it. Add: 0 once k is in the set (or when the parent can never be
 * done: nothing to join), else the governor's final error with *cause set,
 * and k is not added. Del: take k out if it is still in (nobody detached
 * it); true if this call did.
 */
int rctx__child_add(struct rctx_canceler *k, int *cause);
bool rctx__child_del(struct rctx_canceler *k);

/*
 * A new extended context of size bytes (a structure that starts with struct
 * rctx_ext) under parent, with deadline (its own or inherited: rctx_deadline()
 * reports it; no timer is armed), registered with the parent's governor or
 * done at once with its error and cause. NULL and errno ENOMEM on
 * out-of-memory. The rest of the structure is zeroed.
 */
struct rctx_ext *rctx__ext_new(struct rctx *parent, size_t size,
			       const struct rctx_ext_ops *ops, int64_t deadline);
/* Cancel c and its subtree with err and cause (err if 0), as rctx_cancel().
 * False if it was done already. */
bool rctx__cancel_tree(struct rctx_cancel *c, int err, int cause);
/* A reference (rctx__unref: drop it) that the library holds for itself;
 * rctx_ref()/rctx_unref() are the user's. */
rctx_t *rctx__ref(rctx_t *ctx);
void rctx__unref(rctx_t *ctx);
/* ctx's effective deadline (RCTX_FOREVER: none). */
int64_t rctx__deadline_of(const struct rctx *c);
/* ctx's value for key, searched as rctx_value(): true and *val if found. */
bool rctx__value_lookup(const struct rctx *c, const void *key, void **val);

/* The deadline of d expired (runtime thread, or at creation). */
bool rctx__timer_expired(struct rctx_deadline *d);
int rctx__expire_due(const struct rctx *ctx);
void rctx__done_signal_locked(struct rctx_cancel *c);
void rctx__done_wake(struct rctx_cancel *c);
void rctx__done_close(struct rctx_cancel *c);

/* ---- runtime thread (lib/runtime.c) ------------------------------------- */
int rctx__rt_arm_deadline(struct rctx_deadline *d);
void rctx__rt_remove_deadline(struct rctx_deadline *d);
bool rctx__rt_queue_after(struct rctx_after *a);
int rctx__rt_start(void);
bool rctx__rt_self(void);
int rctx__rt_keep(struct rctx_kept *k);
int rctx__rt_adopt(struct rctx_ring *ring);
/* The signal table's hooks around the runtime thread's sleep (lib/signal.c):
 * begin(mask) fills the mask to sleep with and says whether end() must
 * follow the sleep. */
void rctx__rt_sleep_hooks(bool (*begin)(sigset_t *mask), void (*end)(void));
void rctx__rt_kick(void);

/* ---- signal contexts (lib/signal.c), for the runtime thread's sleep ------ */

/* ---- rings (lib/ring.c) ------------------------------------------------- */
/*
 * SQE flags that no request of the library may carry (rctx_submit()
 * documents them): a chain could be split by a flush between its SQEs,
 * and a skipped success CQE would leave the callback uncalled.
 */
#define RCTX__SQE_REFUSED (IOSQE_IO_LINK | IOSQE_IO_HARDLINK | IOSQE_CQE_SKIP_SUCCESS)

static inline bool rctx__sqe_refused(const struct io_uring_sqe *sqe)
{
	return sqe->flags & RCTX__SQE_REFUSED;
}

/* Collects the rings a cancel must wake, so wake-ups happen after the
 * context locks are dropped and once per ring. */
#define CANCEL_WAKE_MAX 8
struct cancel_batch {
	struct rctx_ring *rings[CANCEL_WAKE_MAX];
	unsigned n;
};
void rctx__ring_cancel_reqs_locked(struct rctx_cancel *c, struct cancel_batch *b);
void rctx__ring_wake_batch(struct cancel_batch *b);
int rctx__ring_shutdown(struct rctx_ring *ring, int64_t abs_deadline);
void rctx__ring_free(struct rctx_ring *ring);
bool rctx__ring_in_run(const struct rctx_ring *ring);
void rctx__ring_cancel_all(struct rctx_ring *ring);
struct rctx_ring **rctx__ring_link(struct rctx_ring *ring);
/* What rctx_dump() shows of an in-flight request, read through its link in
 * its governor's request list (that governor's lock held). */
struct rctx_req_view {
	const struct rctx_ring *ring;
	uint32_t stamp_ms;  /* rctx_now() / 1e6, truncated, at submission */
	uint8_t opcode;
};
void rctx__ring_req_view(const struct hnode *link, struct rctx_req_view *v);
/* Whether a request of a governor's list is parked, not in flight (that
 * governor's lock held). */
bool rctx__ring_req_parked(const struct hnode *link);
/*
 * Parked requests: a request held back before its SQE is sent (the queue of
 * a group's request limiter), owner thread of ring only. It takes a slot and
 * is tracked by ctx's governor as if in flight, so a cancel of that governor
 * reaches it as any other request, from any thread, and the ring ends it
 * with the governor's error at once, where it would send a cancel: no
 * kernel object per parked request. cb(arg, res, flags) runs exactly once,
 * from rctx_ring_run() (or rctx_ring_destroy(), which ends parked requests
 * with -ECANCELED), as for rctx_submit(): with the context's error if the
 * request ends parked (at once if ctx is done at the park), else when its
 * kernel request ends. Park: the slot, or NULL on out-of-memory (cb never
 * called). Unpark: send a copy of *sqe (as rctx_submit(), whose refused
 * flags the caller has checked); true if it went to the kernel, false if it
 * ends without it (its context is done; or no SQE could be had, and it ends
 * with that error).
 */
struct rctx_req *rctx__ring_park(struct rctx_ring *ring, rctx_t *ctx, rctx_cb_t cb,
				 void *arg);
bool rctx__ring_unpark(struct rctx_ring *ring, struct rctx_req *r,
		       const struct io_uring_sqe *sqe);

/*
 * Owner: submit n (1..RCTX__CHAIN_MAX) SQEs as one chain (IOSQE_IO_LINK),
 * each a request as from rctx_submit() whose callback is cb with args[i]:
 * the kernel runs them in order and ends the rest with -ECANCELED once one
 * fails or comes up short. All or none: 0, or -errno with none sent.
 */
#define RCTX__CHAIN_MAX (RCTX_SEGS_MAX + 1)	/* the segments and a sync */
int rctx__submit_chain(struct rctx_ring *ring, rctx_t *ctx, const struct io_uring_sqe *sqes,
		       unsigned n, rctx_cb_t cb, void *const *args);

/* ---- the request limiter of a group (lib/limiter.c) --------------------- */
struct limiter_req;
struct rctx_limiter {
	struct rctx *owner;          /* a reference per request not completed */
	int limit;                   /* < 0: none */
	/* The owner thread of ->ring only: */
	struct rctx_ring *ring;      /* bound while requests are queued or in flight */
	int inflight;                /* counted requests, callback not run */
	struct limiter_req *qhead, *qtail; /* the FIFO of queued requests */
	struct limiter_req *cache;   /* records to reuse */
	unsigned ncache;
};
void rctx__limiter_init(struct rctx_limiter *l, struct rctx *owner, int limit);
void rctx__limiter_fini(struct rctx_limiter *l);
/* rctx_group_submit() of l's group (the header documents it). */
int rctx__limiter_submit(struct rctx_limiter *l, struct rctx_ring *ring, rctx_t *ctx,
			 const struct io_uring_sqe *sqe, rctx_cb_t cb, void *arg);

/* ---- requests posted to a ring by other threads (lib/ring.c) ------------ */
/*
 * A completion that another thread hands to a ring's owner, run from
 * rctx_ring_run() on the owner's thread (lib/async.c's requests). While held
 * (rctx__ring_hold() until its delivery) it counts in the ring's pending, and
 * the ring's teardown gives it up through abandon() first (which must lead
 * to a post). deliver() is called once, after the ring dropped it.
 */
struct rctx_post {
	struct rctx_post *next;              /* the ring's post stack */
	struct rctx_post *hprev, *hnext;     /* the owner's held list */
	void (*deliver)(struct rctx_post *p);
	void (*abandon)(struct rctx_post *p);
};
/* Owner thread: p is outstanding on ring until delivered. */
void rctx__ring_hold(struct rctx_ring *ring, struct rctx_post *p);
/* Owner thread: p, held and never posted, is not outstanding after all. */
void rctx__ring_unhold(struct rctx_ring *ring, struct rctx_post *p);
/* Any thread: run p->deliver on ring's owner thread. */
void rctx__ring_post(struct rctx_ring *ring, struct rctx_post *p);
/* The ring's counters of abandoned requests, which outlive the ring while
 * a request it abandoned is still held by the kernel. */
struct rctx_ab_stats {
	_Atomic uint32_t refs;
	_Atomic uint64_t abandoned, late, fenced;
};
struct rctx_ab_stats *rctx__ring_ab_stats(struct rctx_ring *ring);
void rctx__ab_stats_put(struct rctx_ab_stats *ab);

/* ---- the keeper (lib/keeper.c) ------------------------------------------ */
/*
 * A request that its caller may abandon, submitted by the runtime thread:
 * a blocking call's (the caller sleeps on seq) or an rctx_async_*() one's
 * (owner set: the outcome is posted to that ring). References: the
 * caller's, the keeper's, and the after-func's while it is registered.
 *
 * state: KEPT_QUEUED until the keeper hands it to the kernel (in the
 * keeper's queue, or its device's lane waiting for a free place),
 * KEPT_WAITING while the kernel holds it, then KEPT_DONE (res valid) at its
 * completion; or, given up by its caller first, KEPT_DROPPED (never reached
 * the kernel) or KEPT_ABANDONED (held by the kernel: counted, its memory
 * freed and a late fd closed when the kernel lets go).
 */
enum { KEPT_QUEUED, KEPT_WAITING, KEPT_DONE, KEPT_DROPPED, KEPT_ABANDONED };
struct rctx_kept {
	struct io_uring_sqe sqe;   /* prepared by the caller, copied at submit */
	rctx_t *ctx;               /* the caller's, a reference until submitted */
	struct rctx_cancel *gov;   /* its governor, while the kernel holds it */
	struct rctx_kept *next;    /* submit queue, then its lane's FIFO */
	_Atomic int state;
	_Atomic int seq;
	_Atomic uint32_t refs;
	int res;
	bool close_late;           /* a late fd is closed */
	bool writes;               /* a write or truncate: fences its file */
	bool has_dev;              /* dev, ino valid: runs in dev's lane */
	bool in_lane;              /* it took a place in its lane */
	_Atomic bool lane_wait;    /* counted as waiting in its lane's FIFO */
	uint8_t data;              /* what an async callback's data is */
	bool lent_pipe;            /* a splice's: closed if it is abandoned */
	int pipefd[2];
	uint64_t dev, ino;         /* the file's (a path's: its directory's) */
	void *buf;                 /* owned bounce buffer, path copy, statx */
	/* Optional: no caller waits; called with res set on the runtime
	 * thread instead of the wake-up (a watch of the library's own). */
	void (*complete)(struct rctx_kept *k);
	void *arg;                 /* complete()'s */
	/* rctx_async_*(): the owner ring, its callback, its accounting. */
	struct rctx_ring *owner;
	rctx_async_cb_t acb;
	void *aarg;
	rctx_t *uctx;              /* a reference until delivered */
	rctx_after_t *after;
	struct rctx_ab_stats *ab;
	struct rctx_post post;
	struct rctx_chain *chain;  /* several writes as one chain, or NULL */
	int user_fd;               /* the caller's file (lib/pin.c), or -1 */
	int slot;                  /* its registered slot while sent, or -1 */
};
struct rctx_kept *rctx__kept_new(size_t buflen);

/*
 * Several writes of a kept request run as one kernel chain (lib/chain.c):
 * sqes[] prepared by the caller (their data in the request's buffer), el[]
 * their completions. The keeper submits it on its ring under k->ctx
 * (chain_submit: rctx__submit_chain()'s result); when the last completion
 * has come, done(k, res, 0) runs with the outcome of pwritev(2), or the
 * error of a sync that ends the chain.
 */
struct rctx_chain_el {
	struct rctx_kept *k;
	int res;
};
struct rctx_chain {
	unsigned n, left;
	struct io_uring_sqe *sqes;
	rctx_cb_t done;
	struct rctx_chain_el el[];
};
/*
 * The runtime thread's registered files (lib/pin.c): pin names k's file
 * (k->user_fd) by a slot of ring's table, for as long as the kernel holds
 * k (unpin), so that the caller's fd may be closed and reused meanwhile.
 */
void rctx__pin_init(struct io_uring *ring);
void rctx__pin(struct rctx_kept *k);
void rctx__unpin(struct rctx_kept *k);
void rctx__pin_stats(struct rctx_runtime_stats *st);

struct rctx_chain *rctx__chain_new(unsigned n);
void rctx__chain_free(struct rctx_chain *c);
int rctx__chain_submit(struct rctx_ring *ring, struct rctx_kept *k, rctx_cb_t done);
/* Identify the file of fd (path NULL) or the directory a path request
 * resolves from (dev, ino) for its lane and fence, without a round trip to
 * its file system. -errno (-EBADF). */
int rctx__kept_locate(struct rctx_kept *k, int fd, const char *path);
/* Prepare k as a truncate of fd to len; -EOPNOTSUPP before Linux 6.9. */
int rctx__kept_prep_ftruncate(struct rctx_kept *k, int fd, int64_t len);
/* Fail a write, truncate or sync of k's located file while it is fenced. */
int rctx__kept_fence_check(struct rctx_kept *k, struct rctx_ab_stats *ab);
/* A file read done without blocking on the caller's thread. */
void rctx__kept_count_nowait(void);
/* A kernel result for a request under ctx, with the context's error for a
 * request the kernel cut short (lib/blocking.c). */
int rctx__map_result(rctx_t *ctx, int res);
/* The caller gives k up (its context is done): false if it completed
 * first. Counts it, and fences its file if it writes and the kernel holds
 * it. */
bool rctx__kept_abandon(struct rctx_kept *k);
void rctx__kept_ctx_done(void *arg);
void rctx__kept_put(struct rctx_kept *k);
void rctx__keeper_push(struct rctx_kept *k);
void rctx__keeper_push_ring(struct rctx_ring *ring);
/* Runtime thread: */
int rctx__keeper_init(struct io_uring *rt_ring);
void rctx__keeper_turn(void);
bool rctx__keeper_queued(void);
void rctx__keeper_ring_ready(struct rctx_ring *ring);
bool rctx__keeper_shutdown(int64_t deadline);

/* ---- fd watches (lib/watch.c) --------------------------------------------- */
/* A request under ctx may wait for a file: arm the lazy hang-up watches
 * among its ancestors (rctx_with_hangup_lazy). Any thread. */
void rctx__watch_arm(rctx_t *ctx);

/* ---- lanes: per-device bulkheads (lib/lane.c), runtime thread only ------- */
/* The io_uring whose io-wq the lanes size, and how to free a request that
 * was given up while it waited. */
void rctx__lane_init(struct io_uring *ring, void (*drop)(struct rctx_kept *k));
/* May k go to the kernel now? Else it waits in its device's lane. */
bool rctx__lane_enter(struct rctx_kept *k);
/* k left the kernel: the next of its lane that may go in, or NULL. */
struct rctx_kept *rctx__lane_leave(struct rctx_kept *k);
/* k stops counting as waiting in its lane (left it, or given up). */
void rctx__lane_forget(struct rctx_kept *k);
/* End what waits in the lanes with end(k), and free them (process exit). */
void rctx__lane_shutdown(void (*end)(struct rctx_kept *k));
void rctx__lane_stats(struct rctx_runtime_stats *st);

/* Copy the first size bytes of a stats struct of full bytes to the
 * caller's (zeroing what the library does not know): the stats ABI. */
static inline int rctx__stats_out(void *dst, size_t size, const void *src, size_t full)
{
	if (!dst || size < sizeof(uint64_t))
		return -EINVAL;
	if (size > full) {
		memset((char *)dst + full, 0, size - full);
		size = full;
	}
	memcpy(dst, src, size);
	return 0;
}

/* ---- rctx_info() (lib/info.c) ------------------------------------------ */
/* Count abandoned and late kept requests on governor g (may be NULL). */
void rctx__info_count(struct rctx_cancel *g, unsigned abandoned, unsigned late);

/* ---- the write fence (lib/fence.c), any thread -------------------------- */
/* dev/ino has an abandoned write the kernel still holds. */
bool rctx__fenced(uint64_t dev, uint64_t ino);
void rctx__fence_add(uint64_t dev, uint64_t ino);
void rctx__fence_drop(uint64_t dev, uint64_t ino);
void rctx__fence_stats(struct rctx_runtime_stats *st);
void rctx__keeper_stats(struct rctx_runtime_stats *st);
int rctx__keeper_ring_stats(struct rctx_ring_stats *st, size_t size);

#endif /* RINGCTX_INTERNAL_H */
