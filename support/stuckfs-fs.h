/* SPDX-License-Identifier: MIT */
/*
 * Inside the stuckfs server process: the state the event loop
 * (stuckfs-server.c) and the file system (stuckfs-ops.c) share.
 *
 * Requests that the file system holds (reads of "stuck"; reads, writes and
 * fsyncs of the writable files while their kind is hung) wait in one queue,
 * in arrival order, until the owner releases them or dies.
 */
#ifndef RINGCTX_STUCKFS_FS_H
#define RINGCTX_STUCKFS_FS_H

#define FUSE_USE_VERSION 34
#include <fuse_lowlevel.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STUCKFS_MAX_PENDING 64	/* held reads of "stuck"; more get EIO */
#define STUCKFS_MAX_HELD 4096	/* held requests in all; more get EIO */

enum held_kind { HELD_STUCK_READ, HELD_READ, HELD_WRITE, HELD_FSYNC };

struct held {
	fuse_req_t req;
	enum held_kind kind;
	fuse_ino_t ino;
	off_t off;
	size_t size;
	char *data;		/* a held write's bytes, owned */
};

/* A writable file, in memory. Freed once unlinked and forgotten. */
struct node {
	fuse_ino_t ino;
	char *name;		/* NULL once unlinked */
	char *data;
	size_t size, cap;
	uint64_t nlookup;	/* the kernel's references (lookup/create/forget) */
	struct node *next;
};

struct server {
	struct fuse_session *se;
	pid_t owner;
	int cmd;
	int sig;			/* signalfd for SIGTERM */
	bool stop;			/* the owner asked us to stop */
	bool orphaned;			/* the owner is dead or dying */
	unsigned hang;			/* STUCKFS_HANG_* kinds held now */
	struct held *held;		/* held requests, arrival order */
	int nheld, stuck_held;
	int reads_seen;
	struct node *nodes;		/* the writable files */
	fuse_ino_t next_ino;
};

extern const struct fuse_lowlevel_ops stuckfs_ops;

/*
 * Answer every held request in arrival order: performing held writes,
 * fsyncs and reads of the writable files (late data for "stuck"), or
 * failing them all with EIO if err. Returns how many were answered.
 */
int stuckfs_answer_held(struct server *sv, bool err);

/*
 * Drop the kernel's cached pages of the writable file name (every one if
 * name is empty), so the next reads reach the server. Returns how many
 * files, or a negative errno. Must not be called while a read is held:
 * the kernel would wait for its locked page.
 */
int stuckfs_drop_cached(struct server *sv, const char *name);

/* Free every writable file (at exit). */
void stuckfs_free_nodes(struct server *sv);

#endif /* RINGCTX_STUCKFS_FS_H */
