/* SPDX-License-Identifier: MIT */
/*
 * ringctx.h - Go's context package for C, built on io_uring.
 *
 * This header is the whole contract: nothing outside it is API.
 *
 * Conventions that hold for every function below:
 *  - Functions that can fail return 0 (or a count) on success and a negative
 *    errno on failure, and leave errno untouched.
 *  - Functions that return a pointer return NULL only for invalid arguments or
 *    out-of-memory (or, where said, other exhausted resources); each one says
 *    which inputs are invalid. Such a NULL sets errno to say why (EINVAL for
 *    invalid arguments, ENOMEM, and the others each function lists); on
 *    success errno is left untouched.
 *  - "Why the runtime thread cannot start" below means one of: EMFILE or
 *    ENFILE (no fd for its eventfd or io_uring), ENOMEM, EAGAIN (no thread),
 *    another error of io_uring_setup(2) (EPERM when io_uring is disabled...),
 *    or ESHUTDOWN once the process is exiting (the runtime thread is stopped
 *    by an atexit handler).
 *  - Time is int64_t nanoseconds of CLOCK_MONOTONIC (rctx_now()); deadlines are
 *    absolute. RCTX_FOREVER means "no deadline".
 *  - Contexts are reference counted and may be shared freely between threads.
 *    Every function taking an rctx_t is thread-safe unless it says otherwise.
 *  - A context's error, once non-zero, never changes. The errors are
 *    -ECANCELED (Go's Canceled) and -ETIMEDOUT (Go's DeadlineExceeded).
 *
 * Contents, in the order of this header:
 *   Time                     rctx_now
 *   Root contexts            rctx_background, rctx_todo
 *   Derived contexts         rctx_with_cancel, _deadline(_cause), _timeout(_cause),
 *                            _value, _values, rctx_without_cancel
 *   Merge                    rctx_with_any
 *   Signals, fds, hang-ups   rctx_with_signals, rctx_with_fd, rctx_with_hangup(_lazy),
 *                            rctx_hangup_arm
 *   Ending contexts          rctx_cancel(_cause), rctx_release, rctx_ref, rctx_unref
 *   Queries                  rctx_err, _cause, _deadline, _value, _done_fd, _wait,
 *                            _format, _remaining
 *   After-funcs              rctx_after_func, _stop, _release
 *   Rings and requests       rctx_ring_create, _destroy, rctx_submit, rctx_ring_run...
 *   Groups                   rctx_group_new, _ctx, _go, _try_go, _wait, _submit, _free
 *   Blocking calls           rctx_read, _write, _fsync, _openat, _recv, _send...
 *   Abandonable requests     rctx_async_read, _write, _fsync, _splice, _openat2,
 *                            _statx..., rctx_device_limit
 *   Propagation              rctx_grpc_timeout_*, rctx_trace_*, rctx_with_trace
 *   Observability            rctx_info, rctx_dump
 *   Runtime                  rctx_runtime_stats, rctx_runtime_ring_stats
 *
 * How each object ends (one call each; every other call leaves it alive):
 *   context        rctx_release() by whoever created it (cancels, then drops
 *                  the creator's reference); rctx_unref() drops a reference
 *                  taken with rctx_ref(). A context that a kernel watch keeps
 *                  alive (rctx_with_fd, rctx_with_hangup) ends when the last
 *                  reference its users hold goes, whichever of the two drops
 *                  it: it never outlives its owners.
 *   after-func     rctx_after_release() (after rctx_after_stop() if wanted)
 *   group          rctx_group_free()
 *   ring           rctx_ring_destroy() (not the thread's own ring)
 *
 * See docs/lifecycle.md for the numbered lifecycle rules of contexts, rings and
 * requests, and ringctx(7) for an overview.
 */
#ifndef RINGCTX_H
#define RINGCTX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <linux/openat2.h>
#include <liburing.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The library's version: the only place it is written (the Makefile and
 * ringctx.pc read it from here). */
#define RINGCTX_VERSION_MAJOR 1
#define RINGCTX_VERSION_MINOR 1
#define RINGCTX_VERSION_PATCH 0

/* "No deadline": the largest representable instant. */
#define RCTX_FOREVER INT64_MAX

/* A node of the cancellation tree. Opaque. */
typedef struct rctx rctx_t;
/* A registered after-func (Go's AfterFunc). Opaque. */
typedef struct rctx_after rctx_after_t;
/* An io_uring instance that runs requests under contexts. Opaque. */
typedef struct rctx_ring rctx_ring_t;

/* ------------------------------------------------------------------------ */
/* Time                                                                     */
/* ------------------------------------------------------------------------ */

/* Current CLOCK_MONOTONIC time in nanoseconds. Thread-safe, never fails. */
int64_t rctx_now(void);


/* ------------------------------------------------------------------------ */
/* Root contexts                                                            */
/* ------------------------------------------------------------------------ */

/*
 * The root of every tree: never done, no deadline, no values. A static object:
 * no allocation; ref/unref/release on it are no-ops. Thread-safe.
 */
rctx_t *rctx_background(void);

/* Like rctx_background(), but formats as "context.TODO". */
rctx_t *rctx_todo(void);


/* ------------------------------------------------------------------------ */
/* Derived contexts                                                         */
/*                                                                          */
/* Every constructor returns a new context holding one reference, owned by  */
/* the caller, who must drop it with rctx_release() (cancel + unref) or     */
/* rctx_unref(). The new context holds a reference to its parent, so the    */
/* caller may drop its own reference to the parent at any time.             */
/* Constructors are thread-safe and may race with a cancel of the parent:   */
/* the child is then either registered before the cancel (and cancelled by  */
/* it) or created already done with the parent's error and cause.          */
/* ------------------------------------------------------------------------ */

/*
 * Go's WithCancel. Returns NULL with errno EINVAL if parent is NULL, or
 * ENOMEM. If the parent is already done, the child is done at creation
 * with the parent's error and cause.
 */
rctx_t *rctx_with_cancel(rctx_t *parent);

/*
 * Go's WithDeadline: done with -ETIMEDOUT at abs_ns (CLOCK_MONOTONIC). The
 * deadline joins the runtime thread's deadline heap, whose earliest entry is
 * armed as one absolute IORING_OP_TIMEOUT on the runtime's ring, so it fires
 * even while every other thread is blocked; creating and cancelling one costs
 * no system call in the common case. A deadline at or before now (negative
 * and INT64_MIN included) gives a context done at creation with -ETIMEDOUT.
 * A deadline later than the parent's gives a plain cancel context (as Go),
 * which still reports the parent's deadline; so does RCTX_FOREVER ("no
 * deadline": nothing for the runtime to arm). Returns NULL with errno
 * EINVAL if parent is NULL, ENOMEM, or, for a deadline the runtime must arm
 * (before the parent's, not at or before now, not RCTX_FOREVER), why the
 * runtime thread cannot start (see the top of this header; ESHUTDOWN once
 * the process is exiting).
 */
rctx_t *rctx_with_deadline(rctx_t *parent, int64_t abs_ns);

/*
 * As rctx_with_deadline(), but when the deadline expires rctx_cause() reports
 * `cause` (nonzero; 0 means "no cause", i.e. -ETIMEDOUT). NULL and errno as
 * rctx_with_deadline().
 */
rctx_t *rctx_with_deadline_cause(rctx_t *parent, int64_t abs_ns, int cause);

/*
 * Go's WithTimeout: rctx_with_deadline(parent, rctx_now() + rel_ns).
 * Returns NULL with errno EINVAL if parent is NULL, rel_ns is negative, or
 * now + rel_ns overflows int64_t or reaches RCTX_FOREVER, or as
 * rctx_with_deadline() (ENOMEM, the runtime thread's errors, ESHUTDOWN).
 * rel_ns == 0 gives a context done at creation with -ETIMEDOUT.
 */
rctx_t *rctx_with_timeout(rctx_t *parent, int64_t rel_ns);

/* As rctx_with_timeout(), with a cause reported on expiry (see above); NULL
 * and errno as rctx_with_timeout(). */
rctx_t *rctx_with_timeout_cause(rctx_t *parent, int64_t rel_ns, int cause);

/*
 * Go's WithValue: a context that carries val under key. Keys are compared by
 * pointer identity; use the address of a static object of your own. val may be
 * NULL (it then shadows an earlier value of the same key). The context does not
 * own key or val. Returns NULL with errno EINVAL if parent or key is NULL,
 * or ENOMEM.
 */
rctx_t *rctx_with_value(rctx_t *parent, const void *key, void *val);

/*
 * Go's WithoutCancel: keeps parent's values, drops its cancellation and
 * deadline. The result is never done, its cause is 0. Returns NULL with
 * errno EINVAL if parent is NULL, or ENOMEM.
 */
rctx_t *rctx_without_cancel(rctx_t *parent);

#define RCTX_VALUES_MAX 64
/*
 * Several values in one node (one allocation): as n nested rctx_with_value()
 * calls with keys[0]..keys[n-1] in order (a later duplicate key shadows an
 * earlier one, and the pairs shadow the parent's values of the same keys).
 * A val may be NULL (it shadows as in rctx_with_value()). The arrays keys
 * and vals are copied: the caller may reuse them at once; the context owns
 * neither the keys nor the values. rctx_format() shows one
 * ".WithValue(key=..., val=...)" part per pair, in order. The new context
 * holds one reference, owned by the caller (drop it with rctx_release() or
 * rctx_unref()), and one to parent; it is done, cancelled and timed out with
 * parent, like any value context. Thread-safe.
 * Returns the new context; NULL with errno EINVAL if parent, keys or vals
 * is NULL, a key is NULL, or n is 0 or larger than RCTX_VALUES_MAX, or
 * ENOMEM.
 */
rctx_t *rctx_with_values(rctx_t *parent, size_t n, const void *const *keys,
			 void *const *vals);


/* ------------------------------------------------------------------------ */
/* Merge                                                                    */
/* ------------------------------------------------------------------------ */

#define RCTX_ANY_MAX 64
/*
 * A context done as soon as parent or any of others[0..n-1] is done, with
 * that context's error and cause (-ETIMEDOUT when a source's deadline
 * passes); if one is done already, it is done at creation (parent first,
 * then the first of others found done). Values are looked up in parent's
 * chain first, then in each other's in order; its deadline (rctx_deadline(),
 * rctx_remaining()) is the earliest of all, and it arms no timer of its own:
 * the source whose deadline it is ends it. No thread, no polling: it
 * registers with each source as a child does, and unregisters from all of
 * them when it ends or is freed. An other that can never be done
 * (background, todo, without-cancel) only contributes its values. The same
 * context may appear more than once. n == 0 gives what rctx_with_cancel()
 * gives, formatted differently.
 * Ownership: the new context holds one reference, owned by the caller (drop
 * it with rctx_release() or rctx_unref()), and one to parent and to each
 * other until it is freed, so the caller may drop its own references to them
 * at any time; the array others is not kept. It is cancellable
 * (rctx_cancel(), rctx_cancel_cause()); rctx_format() shows it as
 * ".WithAny". Thread-safe: its sources may be cancelled concurrently with
 * the call.
 * Returns the new context; NULL with errno EINVAL if parent is NULL,
 * others is NULL with n > 0, an element is NULL, or n > RCTX_ANY_MAX, or
 * ENOMEM.
 */
rctx_t *rctx_with_any(rctx_t *parent, rctx_t *const *others, size_t n);


/* ------------------------------------------------------------------------ */
/* Signals, file descriptors, hang-ups                                      */
/* ------------------------------------------------------------------------ */

/*
 * Go's signal.NotifyContext: a child of parent, done with -ECANCELED on the
 * first of sigs[0..n-1] delivered to the process after its creation,
 * whichever thread receives it (a thread that never called the library
 * too); rctx_cause() then reports RCTX_CAUSE_SIGNAL_BASE - sig, from which
 * rctx_cause_signal() reads the signal back. Duplicates in sigs count once.
 * The caller owns the returned reference and drops it with rctx_release().
 * Thread-safe; several signal contexts may live at once, for the same or
 * different signals, and each signal ends every context that watches it.
 *
 * While at least one signal context watching sig lives (from its creation
 * to its last reference, also after it fired, as Go's NotifyContext until
 * stop()): the library's handler (SA_SIGINFO | SA_RESTART) replaces the
 * application's handler or disposition for sig, which is therefore not
 * taken (neither a handler of yours nor the default action: a SIGINT or a
 * SIGTERM does not end the process meanwhile, a second one after the
 * context fired neither); and the library's runtime thread, whose own mask
 * stays the one it inherited, unblocks sig while it sleeps waiting for
 * work (never while it runs after-funcs), so that sig is delivered even if
 * every application thread blocks it. When the last such context goes, the
 * disposition saved before the first is restored (as sigaction() read it:
 * SIG_DFL, SIG_IGN or a handler, with its flags and mask), and the runtime
 * thread no longer unblocks sig, both before the rctx_release() or
 * rctx_unref() that drops the last reference returns, also right after
 * the context fired: a raise() at once after it takes the restored
 * disposition, and a signal that every application thread blocks stays
 * pending. That call may wait, briefly, for the runtime thread to finish
 * ending the context or to wake from its sleep. A signal that arrives
 * while that call runs may still be taken, and dropped, by the library.
 * Do not change sig's disposition yourself while a signal context watches
 * it. A context created done (its parent was done) watches nothing.
 *
 * Returns NULL with errno EINVAL if parent or sigs is NULL, n <= 0, or a
 * signal is out of range, SIGKILL, SIGSTOP, or one of the two real-time
 * signals the C library keeps for itself (32, 33); ENOMEM; EMFILE or
 * ENFILE when no eventfd is left (the first signal context makes one);
 * the errno of a failed sigaction(); or why the runtime thread cannot
 * start (see the top of this header; ESHUTDOWN once the process is
 * exiting).
 */
rctx_t *rctx_with_signals(rctx_t *parent, const int *sigs, int n);

/* The cause a signal context reports for signal sig: RCTX_CAUSE_SIGNAL_BASE - sig. */
#define RCTX_CAUSE_SIGNAL_BASE (-0x10000)
/*
 * The signal number carried by a cause (rctx_cause() of a context ended by
 * rctx_with_signals()), or 0 if cause is not a signal's. Pure, thread-safe,
 * never fails.
 */
int rctx_cause_signal(int cause);

/*
 * A child of parent, done with -ECANCELED and cause (nonzero) when the
 * kernel reports any of poll_events (POLLIN, POLLRDHUP...) on fd. The kernel
 * always reports POLLERR and POLLHUP too, and they end it as well. One
 * IORING_OP_POLL_ADD on the library's keeper ring (submitted by the runtime
 * thread, so it never ties up a caller's ring or thread), under the context
 * itself: when the context ends first (rctx_release(), its parent's cancel
 * or deadline) the poll is cancelled like any request. If the poll fails
 * instead (say -EBADF), or the runtime thread cannot submit it (-ENOMEM,
 * -EAGAIN), the context is done with -ECANCELED and that negative errno as
 * its cause. The in-flight poll holds a reference to the
 * context: drop yours with rctx_release() (cancel + unref), not
 * rctx_unref(), or the context and its poll live until the event. Reads
 * nothing from fd; the caller keeps owning it (close it only after
 * releasing the context). The caller owns the returned reference.
 * Thread-safe. A parent already done gives a context done at creation with
 * its error and cause, and no poll.
 * Returns NULL with errno EINVAL if parent is NULL, poll_events is 0 or
 * cause is 0; EBADF if fd is negative or not open; ENOMEM; or why the
 * runtime thread cannot start (see the top of this header; ESHUTDOWN once
 * the process is exiting).
 */
rctx_t *rctx_with_fd(rctx_t *parent, int fd, unsigned poll_events, int cause);

/*
 * The peer of socket sockfd closed or shut down its writing side, or the
 * socket failed: rctx_with_fd() with POLLRDHUP | POLLHUP | POLLERR and cause
 * -ECONNRESET (ownership, thread-safety, NULL returns and errno as there).
 * Readable data does not end it. For stream sockets (TCP, UNIX); NULL with
 * errno EBADF if sockfd is negative or not open.
 */
rctx_t *rctx_with_hangup(rctx_t *parent, int sockfd);

/*
 * As rctx_with_hangup(), but its kernel watch is made only when a request
 * under it may wait for a file: a blocking file call (rctx_read,
 * rctx_write, rctx_fsync, rctx_openat...) or an rctx_async_* request that
 * takes its lane (a read served from the page cache does not). From then
 * on it is armed until it ends; a hang-up that came before ends it at once
 * then. Until then it holds no kernel request and no memory but its own,
 * and a hang-up does not end it: whatever receives from the socket sees
 * the end of the stream, and a send to a peer that closed fails. For a
 * server with many idle connections, whose hang-up matters when one of its
 * requests waits for a disk. sockfd must stay open while the context
 * lives; it is not looked at before its watch is made (no system call: a
 * server makes one per request), when a descriptor that is not open ends
 * the context with cause -EBADF. Ownership, thread-safety, NULL returns
 * and errno as rctx_with_hangup(), but for EBADF: only for a negative
 * sockfd.
 */
rctx_t *rctx_with_hangup_lazy(rctx_t *parent, int sockfd);

/*
 * Arm now the lazy hang-up watches (rctx_with_hangup_lazy) of ctx and its
 * ancestors. As a request under ctx that takes a lane would: for a caller
 * about to wait under ctx for something that is no request of the
 * library's (the open of a file that another request started, say), whose
 * peer's hang-up should end that wait. Each watch is made once, and a
 * hang-up that came before ends its context at once; a watch that cannot
 * be made ends its context as rctx_with_hangup_lazy() says. Contexts of
 * other kinds are passed over. Returns 0, or -EINVAL if ctx is NULL. ctx
 * stays the caller's. Thread-safe.
 */
int rctx_hangup_arm(rctx_t *ctx);


/* ------------------------------------------------------------------------ */
/* Ending contexts: cancel, references                                      */
/* ------------------------------------------------------------------------ */

/*
 * Cancel ctx and its whole subtree with -ECANCELED: every descendant (through
 * value contexts too) becomes done with the same error and cause before this
 * returns; their done fds become readable, their waiters wake, their
 * after-funcs are queued to the runtime thread (never run under a library
 * lock, and cancel never waits for them), and every io_uring request in flight
 * under the subtree gets an IORING_OP_ASYNC_CANCEL on the ring that holds it.
 * ctx is removed from its parent's child set.
 * Returns 1 if this call ended ctx, 0 if it was already done, -EINVAL if ctx is
 * NULL or not cancellable (background, todo, value and without-cancel
 * contexts). Idempotent; callable from any thread, including from callbacks.
 */
int rctx_cancel(rctx_t *ctx);

/*
 * Go's WithCancelCause cancel function: as rctx_cancel(), and rctx_cause()
 * then reports `cause` for ctx and every descendant cancelled by this call.
 * cause == 0 is a plain cancel (the cause is then -ECANCELED).
 */
int rctx_cancel_cause(rctx_t *ctx, int cause);

/*
 * Take one more reference to ctx. Returns ctx (NULL with errno EINVAL if
 * ctx is NULL). Thread-safe. The caller owns the reference and drops it
 * with rctx_unref().
 */
rctx_t *rctx_ref(rctx_t *ctx);

/*
 * Drop one reference. When the last one goes the context is removed from its
 * parent, its done fd is closed and its memory freed; it then drops its own
 * reference to its parent. Note that a pending deadline timer and every request
 * in flight under a context hold a reference to it. NULL is ignored.
 */
void rctx_unref(rctx_t *ctx);

/*
 * Go's `defer cancel()`: cancel ctx if it is cancellable and not done yet, then
 * drop the caller's reference. NULL is ignored.
 */
void rctx_release(rctx_t *ctx);


/* ------------------------------------------------------------------------ */
/* Queries                                                                  */
/* ------------------------------------------------------------------------ */

/*
 * Go's ctx.Err(): 0 while not done, then -ECANCELED or -ETIMEDOUT forever.
 * Lock-free (one acquire load after at most one pointer hop). NULL: -EINVAL.
 */
int rctx_err(const rctx_t *ctx);

/*
 * Go's context.Cause(ctx): 0 while ctx is not done; then the cause given to
 * rctx_cancel_cause() or to a *_cause constructor, inherited from the ancestor
 * whose cancellation reached ctx; when there was none, the same as
 * rctx_err(). A racing reader sees 0 or the final cause, never anything else.
 * NULL: -EINVAL.
 */
int rctx_cause(const rctx_t *ctx);

/*
 * Go's ctx.Deadline(): true and *abs_ns set if ctx (or an ancestor up to a
 * without-cancel boundary) has a deadline; false otherwise (and for NULL),
 * leaving *abs_ns untouched. abs_ns may be NULL.
 */
bool rctx_deadline(const rctx_t *ctx, int64_t *abs_ns);

/*
 * Go's ctx.Value(key): the value of the nearest context carrying key, or NULL
 * if none (errno untouched: not an error, and a stored value may be NULL),
 * or NULL with errno EINVAL if ctx or key is NULL. Lock-free walk up the
 * chain.
 */
void *rctx_value(const rctx_t *ctx, const void *key);

/*
 * Go's ctx.Done() as a file descriptor: an eventfd, created on first call and
 * owned by the context (closed when the context is freed; do not close it),
 * that becomes readable when ctx is done and stays readable. Poll it (poll,
 * epoll, IORING_OP_POLL_ADD); do not read it. Value contexts return the fd of
 * their nearest cancellable ancestor.
 * Returns the fd, -ENOENT for a context that can never be done (background,
 * todo, without-cancel and values above them: Go's nil channel), -EINVAL for
 * NULL, or the negative errno of eventfd(2).
 */
int rctx_done_fd(rctx_t *ctx);

/*
 * Block the calling thread until ctx is done or abs_deadline passes
 * (RCTX_FOREVER: no limit). Uses a futex on the context; no fd is created.
 * Returns 0 once ctx is done (read the reason with rctx_err()), -EAGAIN if
 * abs_deadline passed first (at once for a deadline at or before now,
 * negative and INT64_MIN included), -EDEADLK if ctx can never be done and
 * abs_deadline is RCTX_FOREVER (it would block forever), -EINVAL for NULL.
 */
int rctx_wait(rctx_t *ctx, int64_t abs_deadline);

/*
 * Go's String(): write a description such as
 * "context.Background.WithCancel.WithValue(key=0x..., val=0x...)" into buf
 * (always NUL-terminated when len > 0). Returns the length of the full
 * description (like snprintf: a result >= len means it was truncated), or
 * -EINVAL if ctx is NULL, or buf is NULL with len > 0.
 */
int rctx_format(const rctx_t *ctx, char *buf, size_t len);

/*
 * Nanoseconds left before ctx's effective deadline (the one rctx_deadline()
 * reports), for adaptive timeouts. Reads the clock once; lock-free,
 * thread-safe. Whether ctx is done is not considered (see rctx_err()).
 * Returns the time left, RCTX_FOREVER if ctx has no deadline, 0 once the
 * deadline has passed (even if its timer has not fired yet), or -EINVAL if
 * ctx is NULL.
 */
int64_t rctx_remaining(const rctx_t *ctx);


/* ------------------------------------------------------------------------ */
/* After-funcs                                                              */
/* ------------------------------------------------------------------------ */

/*
 * Go's AfterFunc: arrange for fn(arg) to run once after ctx is done. fn runs on
 * the library's runtime thread, never under a library lock, and a cancel never
 * waits for it; if ctx is already done it is queued at once. fn should not
 * block for long: it delays the other after-funcs and deadline processing.
 * Returns a handle owned by the caller, who must drop it with
 * rctx_after_release() (which does not stop fn). NULL with errno EINVAL if
 * ctx or fn is NULL, ENOMEM, or, for a context that can be done, why the
 * runtime thread cannot start (see the top of this header; ESHUTDOWN once
 * the process is exiting): fn could never run. The handle
 * keeps ctx alive, and so does an armed after-func even after its handle is
 * released (Go keeps it reachable through the parent): a context with an
 * armed after-func lives until it is done or the after-func is stopped. On a
 * context that can never be done (rctx_done_fd() gives -ENOENT) fn never
 * runs; its handle can still be stopped. If the runtime thread stops later
 * (the process is exiting), fn does not run.
 */
rctx_after_t *rctx_after_func(rctx_t *ctx, void (*fn)(void *arg), void *arg);

/*
 * Go's stop(): prevent fn from running. Returns true if this call stopped it
 * (fn will never run); false if fn has already been queued or run, or if it
 * was already stopped (a second stop returns false). NULL returns false.
 * Thread-safe; never waits for fn.
 */
bool rctx_after_stop(rctx_after_t *h);

/* Drop the caller's handle. Does not stop fn. NULL is ignored. */
void rctx_after_release(rctx_after_t *h);


/* ------------------------------------------------------------------------ */
/* Rings and requests                                                       */
/*                                                                          */
/* A ring wraps one struct io_uring and is driven by one thread at a time   */
/* (its owner: the thread that calls rctx_ring_run()). Any SQE prepared with */
/* liburing's io_uring_prep_* helpers can be submitted under a context. A   */
/* cancel of the context from any thread aborts the request in the kernel:  */
/* the canceller queues the request to the ring and wakes it, and the ring's */
/* owner issues IORING_OP_ASYNC_CANCEL by user_data (the canceller never    */
/* touches the ring's submission queue).                                    */
/* ------------------------------------------------------------------------ */

/*
 * Completion callback. Called exactly once per request (for multishot
 * requests: once per CQE, the last one without IORING_CQE_F_MORE in flags),
 * on the ring's owner thread, from rctx_ring_run() or rctx_ring_destroy(),
 * only when the kernel is done with the request's memory. res is the kernel's
 * result (possibly a success that raced with a cancel: an accepted fd, bytes
 * read; it is never dropped), -ECANCELED if the request was aborted, or the
 * context's error if the context was already done at submission. A request
 * aborted by its context's deadline (its link timeout, in the kernel) finds
 * the context done in its callback (rctx_err() -ETIMEDOUT), even if the
 * deadline's timer has not run yet. The callback may submit, cancel contexts
 * and release them.
 */
typedef void (*rctx_cb_t)(void *arg, int res, uint32_t flags);

/*
 * Create a ring with an SQ of `entries` (0: 256; at least 2, since a request
 * and its deadline's link timeout take two; large values, up to UINT_MAX,
 * are clamped to the kernel's limit). Returns 0 and *ringp, or the negative
 * errno of io_uring_queue_init (-ENOMEM, -EPERM, -ENOSYS...) or of
 * eventfd(2) (-EMFILE, -ENFILE), -ENOMEM, -EINVAL if ringp is NULL or
 * entries is 1; *ringp is untouched on failure. The creating thread becomes
 * its owner; ownership
 * passes to whichever single thread runs it next. Where the kernel has them
 * (5.19), the io_uring is set up with IORING_SETUP_COOP_TASKRUN and
 * IORING_SETUP_TASKRUN_FLAG: a completion does not interrupt the owner, its
 * work waits for the owner's next system call or rctx_ring_run().
 */
int rctx_ring_create(rctx_ring_t **ringp, unsigned entries);

/*
 * Cancel every request of the ring, run until every callback has run, then
 * free the ring. Owner thread only. Waits for requests the kernel cannot abort
 * (stuck disk I/O) until the kernel lets them go. NULL is ignored, and so is
 * a call from one of the ring's own callbacks (the ring is in use).
 */
void rctx_ring_destroy(rctx_ring_t *ring);

/* Escape hatch: the underlying io_uring (owner thread only; do not submit
 * requests with user_data of your own on it, ringctx owns user_data).
 * NULL with errno EINVAL for NULL. */
struct io_uring *rctx_ring_uring(rctx_ring_t *ring);

/* A file descriptor that polls readable when the ring has completions to run:
 * integrate the ring into another event loop, then call rctx_ring_run() with
 * deadline 0. -EINVAL for NULL. The owner's epoll_wait(2) may return EINTR
 * when a completion's work waits for it (as with any io_uring): the work is
 * done on that return, and the fd polls readable after it. */
int rctx_ring_fd(rctx_ring_t *ring);

/*
 * Submit a copy of *sqe under ctx with callback cb(arg, res, flags). The SQE
 * is typically prepared on the stack with an io_uring_prep_* helper; ringctx
 * overwrites its user_data. The request is tracked by ctx's nearest
 * cancellable ancestor (untracked under background or without-cancel). If that
 * context has a deadline and sqe carries no IOSQE_IO_LINK/IOSQE_IO_HARDLINK,
 * an IORING_OP_LINK_TIMEOUT for the deadline is linked to it, so the kernel
 * ends it on time even if no thread runs the ring. If ctx is already done, the
 * request never reaches the kernel and cb runs from the next rctx_ring_run()
 * with the context's error. Memory referenced by the SQE belongs to the kernel
 * until cb runs. The SQE is queued, not sent: rctx_ring_run() (or
 * rctx_ring_flush()) sends queued SQEs in one io_uring_enter.
 * The SQE must not carry IOSQE_IO_LINK, IOSQE_IO_HARDLINK (a chain could be
 * split by a flush between its SQEs) or IOSQE_CQE_SKIP_SUCCESS (the callback
 * must run): those give -EINVAL.
 * Owner thread only. Returns 0 (cb will be called exactly once), or -EINVAL
 * (NULL ring, ctx, sqe or cb, or a refused flag), -ENOMEM, or the negative
 * errno of a failed io_uring_submit when the SQ was full (cb will then never
 * be called).
 */
int rctx_submit(rctx_ring_t *ring, rctx_t *ctx, const struct io_uring_sqe *sqe,
		rctx_cb_t cb, void *arg);

/* Send queued SQEs to the kernel now. Owner thread only. Returns the number
 * submitted (the ring's own requests included) or a negative errno from
 * io_uring_submit; -EINVAL for NULL. */
int rctx_ring_flush(rctx_ring_t *ring);

/*
 * Send queued SQEs and cancels, wait until at least one completion (of any
 * kind, including a cross-thread cancel wake-up) arrives or abs_deadline passes
 * (0, or any instant at or before now, INT64_MIN included: do not wait;
 * RCTX_FOREVER: no limit), and run the callbacks of every completion
 * available. Owner thread only; not re-entrant (-EDEADLK from a callback).
 * Returns the number of callbacks run (0 when the deadline passed with
 * nothing to do), -EINVAL for NULL, or a negative errno.
 */
int rctx_ring_run(rctx_ring_t *ring, int64_t abs_deadline);

/* Requests of the ring whose callback has not run yet (0 for NULL). Owner
 * thread only. */
unsigned rctx_ring_pending(const rctx_ring_t *ring);

/*
 * Honest accounting of what the kernel did with the ring's requests.
 * Counters are cumulative since creation; gauges are current.
 */
struct rctx_ring_stats {
	uint64_t submitted;        /* requests sent to the kernel */
	uint64_t short_circuited;  /* never sent: context done at submission, or
				      while queued by rctx_group_submit() */
	uint64_t completed;        /* callbacks run (all kinds) */
	uint64_t cancels_issued;   /* IORING_OP_ASYNC_CANCEL sent */
	uint64_t cancel_found;     /* cancel result 0: found and aborted */
	uint64_t cancel_ealready;  /* cancel result -EALREADY: was running */
	uint64_t cancel_enoent;    /* cancel result -ENOENT: not found */
	uint64_t aborted;          /* cancelled requests that ended -ECANCELED/-EINTR */
	uint64_t completed_anyway; /* cancelled requests that ended with their own result */
	uint64_t link_timeouts;    /* deadline link timeouts attached */
	uint64_t link_timeouts_fired; /* ... that expired and ended their request */
	uint64_t in_flight;        /* gauge: requests held by the kernel */
	uint64_t held_after_cancel;/* gauge: cancelled, still held by the kernel */
	/* rctx_async_*() requests of this ring: */
	uint64_t abandoned;        /* answered at their context's end while the
				      kernel held them */
	uint64_t abandoned_late;   /* ... that the kernel ended since */
	uint64_t abandoned_held;   /* gauge: abandoned, still held */
	uint64_t fenced;           /* writes, truncates, syncs refused: -EBUSY */
};

/*
 * Copy the ring's counters into *st. Thread-safe (a racy but consistent-enough
 * snapshot). The stats structs grow at their end from release to release:
 * size is the size of the caller's struct (the macro passes sizeof(*st)),
 * and only that much is written; fields the library does not know are
 * zeroed. -EINVAL for NULL, or a size smaller than one counter.
 */
int rctx_ring_stats(const rctx_ring_t *ring, struct rctx_ring_stats *st, size_t size);
#define rctx_ring_stats(ring, st) rctx_ring_stats((ring), (st), sizeof(*(st)))


/* ------------------------------------------------------------------------ */
/* Groups                                                                   */
/* ------------------------------------------------------------------------ */

/* Go's errgroup with SetLimit. Opaque. */
typedef struct rctx_group rctx_group_t;

/*
 * Go's errgroup.WithContext followed by SetLimit(limit): a group of
 * functions run on worker threads of the group, at most `limit` at once
 * (limit < 0: no limit), and a limit of `limit` requests in flight for
 * rctx_group_submit(). The group owns a cancellable context derived from
 * parent (rctx_group_ctx()), ended by the first function that fails, by
 * rctx_group_wait(), or by parent. Returns a group owned by the caller, who
 * frees it with rctx_group_free(); NULL with errno EINVAL if parent is NULL
 * or limit is 0 (Go's SetLimit(0) would block every Go call forever), or
 * ENOMEM. Thread-safe.
 */
rctx_group_t *rctx_group_new(rctx_t *parent, int limit);

/*
 * The group's context (borrowed: valid until rctx_group_free(); take a
 * reference with rctx_ref() to keep it longer). Every function of the group
 * gets it; pass it, or a descendant, to the work the group does. NULL with
 * errno EINVAL for NULL. Thread-safe.
 */
rctx_t *rctx_group_ctx(rctx_group_t *g);

/*
 * Go's Group.Go: wait until fewer than limit functions of the group run,
 * then run fn(ctx, arg) on a worker thread of the group, ctx being the
 * group's context (borrowed for the call). Workers are reused: an idle one
 * takes the call, a new one is created only when none is idle, so a group
 * with a limit never has more than `limit` threads (they live until
 * rctx_group_free()); without a limit, a worker idle for a second exits.
 * Workers run with every signal blocked. The first fn that returns
 * non-zero records that value as the group's result and cancels the
 * group's context with it as cause (rctx_cancel_cause()): other functions
 * see rctx_err(ctx) == -ECANCELED and rctx_cause(ctx) == that value, and
 * requests submitted under the context are aborted. Among racing failures
 * exactly one is recorded.
 * Returns 0 once fn is started (it will run exactly once); without running
 * fn: the group context's error (-ECANCELED, -ETIMEDOUT) if it is done, or
 * becomes done while waiting for a slot (so also after rctx_group_wait(),
 * which cancels it: a group is not reusable), -EINVAL if g or fn is NULL,
 * -ENOMEM, or the negative errno of pthread_create (-EAGAIN). Thread-safe,
 * callable from the group's own functions (which may then wait for a slot:
 * with a limit, do not do it from every running function at once).
 */
int rctx_group_go(rctx_group_t *g, int (*fn)(rctx_t *ctx, void *arg), void *arg);

/*
 * Go's Group.TryGo: as rctx_group_go(), but never waits: -EAGAIN if limit
 * functions are running. Returns 0 once fn is started, or the errors of
 * rctx_group_go(). Thread-safe.
 */
int rctx_group_try_go(rctx_group_t *g, int (*fn)(rctx_t *ctx, void *arg), void *arg);

/*
 * Go's Group.Wait: wait until every function started returned, then cancel
 * the group's context (with the group's result as cause, or a plain cancel
 * if there is none). Returns the first non-zero result of a function, or 0
 * if none failed; -EINVAL for NULL. May be called again, and from several
 * threads (each returns the same); not from one of the group's functions
 * (it would wait for itself). Requests of rctx_group_submit() are not
 * waited for.
 */
int rctx_group_wait(rctx_group_t *g);

/*
 * Wait as rctx_group_wait() (if not done yet), stop and join the worker
 * threads, and drop the caller's group. No other call on g may run or
 * follow (the caller's own references to the group's context, if any,
 * stay valid). Requests of rctx_group_submit() still queued or in flight
 * keep what they need alive: they complete as usual when their ring is run
 * or destroyed, and the group's memory is freed after the last one. NULL is
 * ignored. Not from one of the group's functions.
 */
void rctx_group_free(rctx_group_t *g);

/*
 * As rctx_submit(), under any context ctx (the group's, a descendant, or
 * any other: the limit applies regardless), but with at most limit requests
 * of the group in flight (no limit: a plain rctx_submit()). A request over
 * the limit is queued, in FIFO order, and submitted from the callback of a
 * request of the group that completes and frees a slot (before that
 * callback's own cb runs). A request holds its slot until its callback runs
 * (a multishot one: until its last CQE). A request whose context is done at
 * this call, or when it leaves the queue, is not counted and completes as
 * rctx_submit() says, with the context's error. A queued request whose
 * context ends (a cancel from any thread, its deadline) completes at once,
 * without waiting for a slot: its cb runs with the context's error from the
 * next rctx_ring_run() of the ring after that (the ring is woken), whatever
 * the group's in-flight requests do. A queued request holds no kernel
 * object: under a context that can end it takes a request slot of the ring
 * (counted by rctx_ring_pending(), not sent, not counted as submitted by
 * rctx_ring_stats() or rctx_info(), not shown by rctx_dump()) and is
 * reached by the context's cancel as a request in flight would be.
 * rctx_ring_destroy() completes queued requests with -ECANCELED (their cb
 * runs, none is dropped), in-flight ones as rctx_submit() says.
 * A group with a limit is bound to one ring at a time: the ring of its
 * first request, then of the first one after it had no request queued or
 * in flight (one without a limit may use any ring, from the rings' owners).
 * The limit of requests is apart from the limit of functions. The group's
 * result is not affected by the requests' results.
 * Owner thread of ring only (the ring's rules); rctx_group_free() may come
 * before the group's requests have completed (from any thread); the ring may
 * be destroyed before or after the group is freed.
 * Returns 0 (cb will be called exactly once), or, with cb never called:
 * -EINVAL (NULL g, ring, ctx, sqe or cb, or a flag rctx_submit() refuses),
 * -EXDEV (ring is not the ring the group is bound to), -ENOMEM, or the
 * errors of rctx_submit().
 */
int rctx_group_submit(rctx_group_t *g, rctx_ring_t *ring, rctx_t *ctx,
		      const struct io_uring_sqe *sqe, rctx_cb_t cb, void *arg);


/* ------------------------------------------------------------------------ */
/* Blocking calls, in the Go style                                          */
/*                                                                          */
/* Each runs one request and returns its result, or the context's error    */
/* (-ECANCELED / -ETIMEDOUT) as soon as the context is done. Socket, FIFO   */
/* and timer requests run on the calling thread's own ring (created on     */
/* first use, handed to the runtime thread at thread exit if the kernel    */
/* still holds requests of it, freed once it lets go).                     */
/* A result that completed in the kernel despite a cancel (bytes read, an   */
/* accepted fd) is returned, never dropped.                                 */
/*                                                                          */
/* Buffer policy (docs/stuck-io.md): for sockets and FIFOs the kernel's    */
/* I/O is always abortable (poll-driven), so the caller's buffer is used    */
/* directly and the call returns only after the kernel has let go of it.   */
/* For everything else (regular files, block and character devices), whose */
/* issued I/O the kernel may be unable to abort (a hung disk or FUSE        */
/* server), and for fsync and openat, the I/O goes through library-owned    */
/* memory (a bounce buffer, a copy of the path) with IOSQE_ASYNC, and is    */
/* submitted by the library's runtime thread, never by the caller (the     */
/* kernel makes a thread's exit wait for the io-wq work it submitted). On   */
/* cancel the call returns at once, abandoning the request: the kernel can  */
/* never touch the caller's buffer after the call returns, the caller never */
/* blocks in the kernel, and its thread can exit at once. An abandoned     */
/* request may still take effect later (a write reaches the file, an openat */
/* creates it: its late fd is closed); a -ECANCELED/-ETIMEDOUT from a      */
/* write, fsync or openat means "outcome unknown", as for any I/O cut off   */
/* by a deadline. Abandoned requests are counted in rctx_runtime_stats()    */
/* (kept_abandoned, kept_held) and their memory is freed when the kernel    */
/* ends them.                                                               */
/* -EINVAL for a NULL ctx, a NULL buf with len > 0, a NULL path or connect */
/* address; len > INT_MAX is clamped to INT_MAX (a short transfer);        */
/* -EDEADLK if called from a callback running on the thread's ring, or     */
/* (files, fsync, openat) on the runtime thread (from an after-func);      */
/* -ENOMEM (also when the thread's ring cannot be created); the negative   */
/* errno of a failed io_uring_submit (-EAGAIN...); -ESHUTDOWN once the      */
/* process is exiting. With a done context each returns its error and does */
/* no I/O.                                                                  */
/* ------------------------------------------------------------------------ */

ssize_t rctx_read(rctx_t *ctx, int fd, void *buf, size_t len, int64_t off);
ssize_t rctx_write(rctx_t *ctx, int fd, const void *buf, size_t len, int64_t off);
ssize_t rctx_recv(rctx_t *ctx, int fd, void *buf, size_t len, int flags);
ssize_t rctx_send(rctx_t *ctx, int fd, const void *buf, size_t len, int flags);
/* Returns the new fd (owned by the caller) or a negative errno. */
int rctx_accept(rctx_t *ctx, int fd, struct sockaddr *addr, socklen_t *addrlen,
		int flags);
int rctx_connect(rctx_t *ctx, int fd, const struct sockaddr *addr,
		 socklen_t addrlen);
/* Returns 0 or a negative errno. fsync_flags: 0 or IORING_FSYNC_DATASYNC. */
int rctx_fsync(rctx_t *ctx, int fd, unsigned fsync_flags);
/* Truncate or extend fd's file to len bytes (IORING_OP_FTRUNCATE, Linux
 * 6.9: -EOPNOTSUPP on older kernels), with the policy of rctx_fsync.
 * Returns 0 or a negative errno; -EINVAL also for a negative len. */
int rctx_ftruncate(rctx_t *ctx, int fd, int64_t len);
/* Returns the new fd or a negative errno; an open that completes after the
 * call gave up is closed by the library. */
int rctx_openat(rctx_t *ctx, int dirfd, const char *path, int flags, mode_t mode);
/* Returns the revents mask (> 0) or a negative errno. An empty poll_mask
 * waits for POLLERR and POLLHUP only, which are always reported. */
int rctx_poll(rctx_t *ctx, int fd, unsigned poll_mask);
/* Sleep rel_ns; 0 after the full sleep, else the context's error. -EINVAL
 * for a negative rel_ns; RCTX_FOREVER sleeps until ctx is done. */
int rctx_sleep(rctx_t *ctx, int64_t rel_ns);

/*
 * The calling thread's ring used by the blocking calls on sockets, FIFOs and
 * timers (created on first use; if that fails: NULL, with errno the error
 * of rctx_ring_create(): ENOMEM, EMFILE, ENFILE, EPERM, ENOSYS...). Use it
 * to read its stats, or to submit requests of your own: run it
 * (rctx_ring_run) from this thread. Owned by the thread; do not destroy it.
 * At thread exit its requests are cancelled; if the kernel still holds some
 * after 100 ms (I/O it cannot abort), the ring is handed to the runtime
 * thread, which runs their callbacks when the kernel ends them (on the
 * runtime thread) and then frees it (rctx_runtime_stats: rings_adopted,
 * rings_reclaimed). The kernel itself still makes the exiting thread wait
 * for the io-wq work it submitted (docs/stuck-io.md).
 */
rctx_ring_t *rctx_thread_ring(void);


/* ------------------------------------------------------------------------ */
/* Abandonable file requests, for callback code                             */
/*                                                                          */
/* The stuck-disk policy of the blocking calls, for event loops: each       */
/* rctx_async_*() call starts one file request under ctx and returns; its   */
/* callback runs exactly once, on ring's thread from rctx_ring_run(ring),   */
/* with the kernel's result, or with the context's error (-ECANCELED,      */
/* -ETIMEDOUT; rctx_cause(ctx) says why) AS SOON AS ctx IS DONE, even while  */
/* the kernel still holds the request (a hung disk, a FUSE or NFS server   */
/* that never answers). Every byte such a request uses (data buffer, path, */
/* statx buffer) is the library's from the call on: the caller's buffers   */
/* are copied in before the call returns, and read data and statx results  */
/* are handed to the callback in library memory (data, valid only during   */
/* the callback). A request given up while the kernel holds it is           */
/* abandoned: the library frees its memory (and closes the fd of an open   */
/* that succeeds late) when the kernel lets go, and counts it: `abandoned`, */
/* `abandoned_late`, `abandoned_held` in rctx_ring_stats(ring), kept_* in   */
/* rctx_runtime_stats(), `abandoned`/`late` in rctx_info(ctx).              */
/*                                                                          */
/* Isolation (docs/stuck-io.md): requests that may block in the kernel are  */
/* submitted by the library's runtime thread, which outlives them (so the   */
/* caller's thread can always exit), through one lane per device (st_dev of */
/* the fd; of dirfd for a path, AT_FDCWD meaning the working directory and  */
/* an absolute path the root): at most rctx_device_limit() requests of one */
/* device are in the kernel at once, the rest wait in the library (ending  */
/* at once with their context), so a hung device holds at most that many   */
/* kernel workers and never delays another device's requests. A read is    */
/* first tried at once on ring's thread without blocking (preadv2 with     */
/* RWF_NOWAIT): a page-cache hit is read there and then, with no thread hop */
/* and no round trip through the kernel's ring, and its callback runs in   */
/* the same rctx_ring_run() when the call was made from a callback; only a */
/* miss, or a file system that cannot read without blocking (FUSE), takes  */
/* its lane. (A read of a file opened with O_DIRECT should not use         */
/* rctx_async_read: its direct I/O would be issued from ring's thread, and  */
/* a hung device holds it.)                                                 */
/*                                                                          */
/* Abandoned writes: the kernel may still carry out a write or truncate     */
/* after its caller was answered. Until every abandoned write and truncate */
/* of a file has ended in the kernel, the library's later rctx_write(),     */
/* rctx_ftruncate(), rctx_fsync() and rctx_async_write/write_segs/          */
/* ftruncate/fsync() of that file (same st_dev and st_ino) fail at once     */
/* with -EBUSY (the fence; counted in `fenced`), then work again; so a      */
/* retry can never be overtaken by the write it replaces.                   */
/*                                                                          */
/* The caller may close a request's fd once its callback has run, even    */
/* while the kernel still holds it: a file request reaches its file through */
/* a reference of the library's own (kept_pinned in rctx_runtime_stats()),  */
/* so a number given to another file meanwhile never receives its I/O;      */
/* unless no slot of the library's table (1,024) was free when it was sent  */
/* (kept_unpinned counts those): keep such an fd open until the kernel      */
/* lets go (kept_held) to be sure.                                          */
/*                                                                          */
/* Common rules: call from ring's owner thread (as rctx_submit); the        */
/* callback is never called when the call fails; a done ctx makes the      */
/* callback run at the next rctx_ring_run() with its error, and no I/O.     */
/* rctx_ring_destroy() (and a thread ring's exit) gives up the requests     */
/* still outstanding: their callbacks run with -ECANCELED first.            */
/* Errors of the calls: -EINVAL (NULL ring, ctx or cb, a NULL path or buf   */
/* with len > 0, len > INT_MAX, a negative length), -ENOMEM, -EDEADLK from */
/* the runtime thread (an after-func), -EBADF for a bad fd or dirfd, -EBUSY */
/* (fenced), -ESHUTDOWN once the process is exiting, -EAGAIN if the runtime */
/* thread cannot start.                                                     */
/* ------------------------------------------------------------------------ */

/*
 * The callback of an abandonable request. res: the kernel's result (bytes,
 * 0, an fd, -errno), or the context's error once it ended first. data: for
 * rctx_async_read, the res bytes read; for rctx_async_statx, the struct
 * statx; NULL otherwise. data is library memory, valid until the callback
 * returns. flags: RCTX_ASYNC_ABANDONED if the request was answered at its
 * context's end (or the ring's teardown) while the kernel still held it:
 * its outcome is unknown (a write may still land, an open may still create
 * its file); without it, a context's error means the request never ran or
 * was aborted.
 */
#define RCTX_ASYNC_ABANDONED 0x1u
typedef void (*rctx_async_cb_t)(void *arg, int res, void *data, unsigned flags);

/* Read up to len bytes of fd at off (>= 0). res: bytes read; data: them. */
int rctx_async_read(rctx_ring_t *ring, rctx_t *ctx, int fd, size_t len, int64_t off,
		    rctx_async_cb_t cb, void *arg);
/* Write len bytes of buf (copied before the call returns) to fd at off
 * (>= 0). res: bytes written. Fenced: -EBUSY. */
int rctx_async_write(rctx_ring_t *ring, rctx_t *ctx, int fd, const void *buf, size_t len,
		     int64_t off, rctx_async_cb_t cb, void *arg);
#define RCTX_SEGS_MAX 128
#define RCTX_SEGS_SYNC 0x1u       /* fsync(2) the file after the segments */
#define RCTX_SEGS_DATASYNC 0x2u   /* fdatasync(2) it after them */
/*
 * Write n segments to the file fd as one request: segment i is iov[i]
 * (copied before the call returns) at offset off[i] (>= 0), written after
 * the segments before it; then, with flags RCTX_SEGS_SYNC or
 * RCTX_SEGS_DATASYNC, sync the file once every segment is written whole.
 * One kernel worker does it all, one step after the other, where as many
 * rctx_async_write() and rctx_async_fsync() calls would each make their
 * own round trip through the runtime thread: the request takes one place in
 * fd's lane and its callback runs once. A cancel reaches the step the
 * kernel runs; if that one ends whole all the same, the steps after it
 * run too (the request stays in fd's lane until they end). flags: 0, or
 * one of the two. res:
 * the bytes written in all, when every segment was written whole (and the
 * sync, if asked, succeeded); otherwise, as pwritev(2), the bytes written
 * before the first segment that was not, and the ones of that segment (the
 * segments after it are not written, the sync does not run), or its error
 * when nothing was written before it; or the sync's error. With
 * RCTX_ASYNC_ABANDONED, any of the segments may still land: the request
 * fences fd's file as one write. Thread-safety: the common rules above.
 * Returns 0 (the callback then runs exactly once), or the common errors
 * above (-EBUSY: fenced), -EINVAL also for n = 0 or n > RCTX_SEGS_MAX
 * (128), a NULL iov or off, a negative offset, a NULL segment with a
 * length, a total over INT_MAX bytes, another flag or both.
 */
int rctx_async_write_segs(rctx_ring_t *ring, rctx_t *ctx, int fd, const struct iovec *iov,
			  const int64_t *off, unsigned n, unsigned flags,
			  rctx_async_cb_t cb, void *arg);
/* fsync (flags 0) or fdatasync (IORING_FSYNC_DATASYNC) fd. Fenced: -EBUSY. */
int rctx_async_fsync(rctx_ring_t *ring, rctx_t *ctx, int fd, unsigned flags,
		     rctx_async_cb_t cb, void *arg);
/* Truncate or extend fd's file to len bytes (-EOPNOTSUPP before Linux 6.9).
 * Fenced: -EBUSY. */
int rctx_async_ftruncate(rctx_ring_t *ring, rctx_t *ctx, int fd, int64_t len,
			 rctx_async_cb_t cb, void *arg);
/* openat2(2) of path (copied) relative to dirfd; how is copied. res: the new
 * fd, owned by the callback's caller from then on. */
int rctx_async_openat2(rctx_ring_t *ring, rctx_t *ctx, int dirfd, const char *path,
		       const struct open_how *how, rctx_async_cb_t cb, void *arg);
/* statx(2) of path (copied; "" with AT_EMPTY_PATH: dirfd itself). data: the
 * struct statx when res is 0. */
int rctx_async_statx(rctx_ring_t *ring, rctx_t *ctx, int dirfd, const char *path,
		     int flags, unsigned mask, rctx_async_cb_t cb, void *arg);
/* renameat2(2) (paths copied; the lane is olddirfd's device). */
int rctx_async_renameat(rctx_ring_t *ring, rctx_t *ctx, int olddirfd, const char *oldpath,
			int newdirfd, const char *newpath, unsigned flags,
			rctx_async_cb_t cb, void *arg);
/* unlinkat(2) (path copied). */
int rctx_async_unlinkat(rctx_ring_t *ring, rctx_t *ctx, int dirfd, const char *path,
			int flags, rctx_async_cb_t cb, void *arg);
/*
 * Read up to len bytes of the file fd at off (>= 0) into a pipe without
 * copying them (splice(2)): the pipe takes the page cache's pages
 * themselves, and a splice(2) of the pipe into a socket sends them as they
 * are. The kernel runs every splice in its workers, so this request always
 * goes through the file's lane (no attempt on ring without blocking).
 * pipefd: the pipe's read and write ends, both lent to the library from
 * the call until the callback; the caller must not read, write or close
 * the pipe meanwhile (while a splice waits for the disk the kernel holds
 * the pipe's lock: anything else that touches the pipe would wait with it,
 * in uninterruptible sleep). The callback gives the pipe back, except with
 * RCTX_ASYNC_ABANDONED: then the library keeps it and closes both ends
 * once the kernel has let go, and the caller forgets both numbers. flags:
 * 0, or SPLICE_F_NONBLOCK (-EAGAIN rather than waiting for room in a full
 * pipe). res: the bytes added to the pipe (fewer when it has less room),
 * 0 at the end of the file. Thread-safety: the common rules above. Returns
 * 0 (the callback then runs exactly once), or the common errors above,
 * -EINVAL also for a NULL pipefd, another flag, or pipefd not the two ends
 * of one pipe (the pipe is then the caller's still).
 */
int rctx_async_splice(rctx_ring_t *ring, rctx_t *ctx, int fd, int64_t off, const int pipefd[2],
		      size_t len, unsigned flags, rctx_async_cb_t cb, void *arg);

#define RCTX_DEVICE_LIMIT_DEFAULT 8
#define RCTX_DEVICE_LIMIT_MAX 256
/*
 * The per-device bound of the isolation: at most n requests of one device
 * (abandonable requests and the blocking calls' file I/O) are held by the
 * kernel at once. n = 0 only reads it. Returns the bound before the call
 * (default RCTX_DEVICE_LIMIT_DEFAULT, 8). Thread-safe; applies to requests
 * handed to the kernel from then on. -EINVAL for n > RCTX_DEVICE_LIMIT_MAX
 * (256).
 */
int rctx_device_limit(unsigned n);


/* ------------------------------------------------------------------------ */
/* Propagation across processes                                             */
/* ------------------------------------------------------------------------ */

/*
 * Parse a gRPC "grpc-timeout" header value (TimeoutValue TimeoutUnit): 1 to 8
 * ASCII digits then exactly one unit, H (hours), M (minutes), S (seconds),
 * m (milliseconds), u (microseconds) or n (nanoseconds), and the end of the
 * string; no sign, no space, nothing else. On success *rel_ns is the timeout
 * in nanoseconds (0 for "0n"). Only hours can exceed int64_t nanoseconds
 * (from 2562048H, about 292 years, up to 99999999H): such a value saturates
 * to RCTX_FOREVER, as gRPC's Go implementation clamps it; treat it as "no
 * deadline" (rctx_with_timeout() refuses it, rctx_with_deadline() with
 * RCTX_FOREVER accepts it). Pure function: thread-safe, no allocation.
 * Returns 0, or -EINVAL if str or rel_ns is NULL or str is not of that form
 * (*rel_ns is then untouched).
 */
int rctx_grpc_timeout_parse(const char *str, int64_t *rel_ns);

/* The longest grpc-timeout value, with its NUL: 8 digits, a unit, '\0'. */
#define RCTX_GRPC_TIMEOUT_MAX 10

/*
 * Write the time left before ctx's deadline (rctx_deadline()) as a gRPC
 * "grpc-timeout" value into buf, NUL-terminated: the finest unit whose value
 * fits in 8 digits (n, then u, m, S, M, H), rounded down, so that the peer
 * never gets more time than remains. A deadline already passed is written
 * "0n" (as gRPC's Go implementation does; the peer then fails at once).
 * Only the deadline counts: a context cancelled before it is not refused
 * (check rctx_err() first if that matters). len of RCTX_GRPC_TIMEOUT_MAX
 * always suffices. Thread-safe.
 * Returns the length written (without the NUL, 2 to 9), -ENOENT if ctx has
 * no deadline, -ENOSPC if the value and its NUL do not fit in len bytes
 * (buf is then untouched), or -EINVAL if ctx or buf is NULL.
 */
int rctx_grpc_timeout_format(const rctx_t *ctx, char *buf, size_t len);

/*
 * W3C Trace Context (level 1): the fields of a "traceparent" header. A valid
 * trace has a trace_id and a span_id (the header's parent-id) that are not
 * all zero; flags bit 0 is "sampled", other bits are carried as they are.
 */
struct rctx_trace {
	uint8_t trace_id[16];
	uint8_t span_id[8];
	uint8_t flags;
};

/* The length of a version-00 traceparent value, without its NUL. */
#define RCTX_TRACEPARENT_LEN 55

/*
 * Parse a traceparent header value (without HTTP's surrounding white space,
 * which is the caller's to strip): "00-<32 hex>-<16 hex>-<2 hex>", lowercase
 * hex only, exactly 55 characters for version 00. A higher version (01 to fe)
 * is parsed by its first 55 characters in the same layout, which must then
 * be followed by the end of the string or '-' (the specification's rule for
 * future versions). Refused: version ff, an all-zero trace id or parent id,
 * uppercase or non-hex digits, wrong lengths or separators. Pure function:
 * thread-safe, no allocation.
 * Returns 0 and *t, or -EINVAL if str or t is NULL or str is not a valid
 * traceparent (*t is then untouched).
 */
int rctx_trace_parse(const char *str, struct rctx_trace *t);

/*
 * Write t as a version-00 traceparent value (RCTX_TRACEPARENT_LEN characters,
 * lowercase hex) and a NUL into buf. Thread-safe.
 * Returns RCTX_TRACEPARENT_LEN, -ENOSPC if len is less than
 * RCTX_TRACEPARENT_LEN + 1 (buf is then untouched), or -EINVAL if t or buf
 * is NULL or t is not valid (an all-zero trace id or span id: no peer would
 * accept it).
 */
int rctx_trace_format(const struct rctx_trace *t, char *buf, size_t len);

/*
 * A child span of parent: *child gets parent's trace id and flags and a new
 * random span id, never zero. The span ids come from a per-thread generator
 * seeded from getrandom(2) (reseeded in the child after fork()), so a call
 * makes no system call and takes no lock; they are unique in practice, not
 * cryptographically unpredictable. child may be parent. Thread-safe.
 * Returns 0, or -EINVAL if parent or child is NULL or parent's trace id is
 * all zero (*child is then untouched).
 */
int rctx_trace_child(const struct rctx_trace *parent, struct rctx_trace *child);

/*
 * A value context (as rctx_with_value()) carrying a copy of *t, stored in
 * the context's own allocation: the caller keeps owning t and may reuse it
 * at once; the copy lives as long as the context. Read it back with
 * rctx_trace_of(). Thread-safe.
 * Returns a new context holding one reference, owned by the caller (drop it
 * with rctx_unref() or rctx_release()); NULL with errno EINVAL if parent or
 * t is NULL or t is not valid (an all-zero trace id or span id), or ENOMEM.
 */
rctx_t *rctx_with_trace(rctx_t *parent, const struct rctx_trace *t);

/*
 * The trace of the nearest context made by rctx_with_trace() on ctx's chain
 * (ctx itself included), copied into *t. Lock-free, as rctx_value().
 * Returns 0 and *t, -ENOENT if no context of the chain carries a trace, or
 * -EINVAL if ctx or t is NULL (*t is untouched on failure).
 */
int rctx_trace_of(const rctx_t *ctx, struct rctx_trace *t);


/* ------------------------------------------------------------------------ */
/* Observability                                                            */
/* ------------------------------------------------------------------------ */

/*
 * What rctx_info() reports of a context. Times are instants of rctx_now()'s
 * clock, read cheaply where no precise reading is at hand
 * (CLOCK_MONOTONIC_COARSE: as of the last kernel tick, so 1-10 ms early,
 * more if ticks come late on a loaded or tickless CPU, never later than
 * rctx_now()). Two are precise: a deadline context's creation (its
 * constructor reads the clock anyway) and the end of a context that its
 * deadline's timer ended.
 *
 * The request counters cover the requests this context tracks itself:
 * those submitted under it, or under value contexts between it and its
 * cancellable children; not those of its cancellable descendants, which
 * count their own. A request is counted as submitted when its ring sends
 * it to the kernel (rctx_ring_flush(), rctx_ring_run()), not when
 * rctx_submit() queues it; one submitted under a context already done never
 * reaches the kernel and is not counted. In flight: submitted - completed -
 * aborted.
 */
struct rctx_info {
	int64_t created_ns;   /* at creation */
	int64_t done_ns;      /* when it became done; 0 while not */
	int err;              /* rctx_err() */
	int cause;            /* rctx_cause() */
	uint64_t submitted;   /* requests submitted under it */
	uint64_t completed;   /* ... that ended (callback ran) otherwise */
	uint64_t aborted;     /* ... that ended -ECANCELED (a cancel or a
				 deadline reached them), or -EINTR after a
				 cancel */
	uint64_t abandoned;   /* file requests (blocking or rctx_async_*())
				 answered at its end while the kernel held
				 them */
	uint64_t late;        /* ... that the kernel ended since */
};

/*
 * Fill *info with ctx's creation time, the time it became done (0 while it
 * is not), its error and cause, and the counters of the requests it tracks
 * (struct rctx_info), as one consistent snapshot. A value context reports
 * its nearest cancellable ancestor (the context that governs it and tracks
 * its requests); background, TODO and without-cancel contexts, and value
 * contexts with no cancellable ancestor below such a root, track nothing
 * and are never done: all zero. A context created under a done parent has
 * done_ns == created_ns; otherwise done_ns >= created_ns. Does not block
 * beyond taking the governing context's lock; thread-safe.
 *
 * size: the size of the caller's struct, as for rctx_ring_stats() (the
 * macro passes it). Returns 0, or -EINVAL if ctx or info is NULL (or ctx is
 * an after-func handle), or size is smaller than one field.
 */
int rctx_info(const rctx_t *ctx, struct rctx_info *info, size_t size);
#define rctx_info(ctx, info) rctx_info((ctx), (info), sizeof(*(info)))

/*
 * Write the live subtree of ctx to fd as text: one line per cancellable
 * context, depth first, oldest child first, indented by two spaces per
 * level below ctx. A node's line is its kind (WithCancel, WithDeadline, or
 * an extended context's name such as WithAny), then space-separated
 * key=value fields: ctx=<address>; age=<seconds since its creation, as
 * rctx_info() stamps it>; left=<seconds to its deadline, negative once
 * passed> if it has one; err=<errno> cause=<errno> once done; and its
 * rctx_info() counters submitted=, completed=, aborted=. Below it, one
 * level deeper, come a line "value key=<address> val=<address>" for each
 * value context between it and its cancellable parent (nearest first), and
 * a line "req ring=<address> op=<NAME, or ?> opcode=<number> age=<n>ms" for
 * each request in flight under it (at most 32, then "req ... <n> more"). A
 * request's age counts from its ring's last rctx_ring_run() or
 * rctx_ring_flush() before its submission (one coarse clock reading per
 * batch, not per request): in ms, and it includes any time the ring sat
 * idle between that run and the submission, and up to a tick (1-10 ms).
 *
 * At most max_nodes node lines are written (0: no limit). When a node has
 * more children than the limit leaves room for, its newest are kept, and a
 * last line "... <n> more" counts the children left out (not their own
 * subtrees). For a value context the subtree is that of its governing
 * cancellable ancestor; a context with nothing cancellable above it
 * (background, TODO, without-cancel) gets one line, "<Kind> ctx=<address>".
 *
 * Safe while other threads create, cancel and release contexts in the
 * subtree: each node is copied under its own lock, one lock at a time, and
 * written with no lock held; a node ended or released meanwhile appears as
 * it was copied, or not at all. The caller holds a reference to ctx. Output
 * goes through a 4 KiB buffer to write(2), retried on EINTR and short
 * writes; a pipe or socket whose reader is gone raises SIGPIPE unless the
 * caller ignores it. Allocates the stack of nodes still to visit.
 *
 * Returns 0; -EINVAL if ctx is NULL (or an after-func handle); -EBADF if fd
 * is negative; -ENOMEM if the walk could not allocate (what was written
 * stays written, the children it could not visit are counted in "... <n>
 * more"); or write(2)'s -errno (e.g. -EBADF, -EPIPE), after which nothing
 * more is written.
 */
int rctx_dump(rctx_t *ctx, int fd, size_t max_nodes);


/* ------------------------------------------------------------------------ */
/* Runtime                                                                  */
/* ------------------------------------------------------------------------ */

/*
 * Process-wide counters of the library's runtime thread (deadlines,
 * after-funcs, the I/O that blocking calls may abandon, and the rings it
 * adopted from exited threads), for tests and observability.
 */
struct rctx_runtime_stats {
	uint64_t timers_armed;    /* deadlines taken on (into the heap, or due) */
	uint64_t timers_skipped;  /* deadline contexts cancelled before that */
	uint64_t timers_fired;    /* expired and cancelled their context */
	uint64_t timers_removed;  /* cancelled while in the heap, removed */
	uint64_t timers_live;     /* gauge: deadlines in the heap */
	uint64_t after_funcs_run; /* after-funcs called */
	uint64_t wakeups;         /* runtime thread wake-ups by eventfd */
	bool running;             /* the runtime thread exists */
	/* Blocking file I/O (fsync, openat, file reads and writes), which the
	 * runtime thread submits so that no caller's exit waits for a disk,
	 * and the library's own watches (one poll per rctx_with_fd() context,
	 * one read of the signal notifications once a signal context was
	 * made), which it submits on the same ring: */
	uint64_t kept_submitted;  /* requests submitted (both kinds) */
	uint64_t kept_abandoned;  /* given up by their caller (context done)
				     while the kernel still held them */
	uint64_t kept_late;       /* abandoned requests the kernel ended since */
	uint64_t kept_held;       /* gauge: abandoned, still held by the kernel */
	uint64_t rings_adopted;   /* rings of exited threads that still held
				     requests, taken over by the runtime */
	uint64_t rings_reclaimed; /* adopted rings freed once the kernel let go */
	/* Isolation: one lane per device (rctx_device_limit()). */
	uint64_t devices;         /* lanes (devices seen) */
	uint64_t lane_waiting;    /* gauge: requests waiting for their device's
				     bound, not yet in the kernel */
	uint64_t lane_waited;     /* requests that had to wait */
	uint64_t fenced;          /* writes, truncates, syncs refused (-EBUSY) */
	uint64_t fenced_files;    /* gauge: files with abandoned writes held */
	uint64_t nowait_reads;    /* file reads completed without blocking,
				     on the caller's thread */
	/* A file request reaches its file through a reference of the
	 * library's own (a registered file), not through the caller's fd,
	 * which the caller may close, and reuse, once it gave the request up
	 * while the kernel had yet to start it: */
	uint64_t kept_pinned;     /* file requests sent so */
	uint64_t kept_unpinned;   /* sent with the caller's fd: no free slot */
};

/* Snapshot of the runtime counters; size as for rctx_ring_stats() (the
 * macro passes it). -EINVAL for NULL or a size smaller than one counter.
 * Thread-safe. */
int rctx_runtime_stats(struct rctx_runtime_stats *st, size_t size);
#define rctx_runtime_stats(st) rctx_runtime_stats((st), sizeof(*(st)))

/* The counters of the runtime thread's own ring, on which it runs the
 * kept requests (blocking and abandonable file I/O, the library's watches);
 * as rctx_ring_stats(), all zero before the runtime thread first ran.
 * -EINVAL for NULL or a size smaller than one counter. Thread-safe. */
int rctx_runtime_ring_stats(struct rctx_ring_stats *st, size_t size);
#define rctx_runtime_ring_stats(st) rctx_runtime_ring_stats((st), sizeof(*(st)))

#ifdef __cplusplus
}
#endif
#endif /* RINGCTX_H */
