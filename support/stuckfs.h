/* SPDX-License-Identifier: MIT */
/*
 * stuckfs: a FUSE file system that simulates a hung disk, for tests and the
 * demo. Two files in fs.dir:
 *   stuck - reads are accepted but never answered, until stuckfs_release()
 *           answers them with STUCKFS_LATE_BYTE data (so a test can check the
 *           late data never reaches the caller's buffer);
 *   data  - reads answer at once with STUCKFS_DATA_BYTE.
 *
 * The server runs in a child process, so the process that reads the files
 * can block anywhere (even under valgrind, which runs one thread at a time)
 * while the server still answers. The child ends every pending request and
 * lazily unmounts when stuckfs_stop() asks, or when its owner dies (even by
 * SIGKILL): nothing is left in D state behind a dead test.
 *
 * Built without FUSE (no libfuse3 at build time), stuckfs_start() always
 * fails with -ENOSYS and says why in fs.why.
 *
 * Thread-safety: one thread at a time per struct stuckfs. Call
 * stuckfs_start() from a thread that outlives the file system: the server
 * also takes the exit of that thread for its owner's death.
 */
#ifndef RINGCTX_STUCKFS_H
#define RINGCTX_STUCKFS_H

#include <sys/types.h>

#define STUCKFS_SIZE (1 << 20)
#define STUCKFS_DATA_BYTE 'd'
#define STUCKFS_LATE_BYTE 'L'

struct stuckfs {
	char dir[64];		/* mount point */
	char stuck_path[96];	/* dir/stuck */
	char data_path[96];	/* dir/data */
	char why[160];		/* one-line reason when stuckfs_start() fails */
	pid_t pid;		/* the server process, 0 when none */
	int cmd;		/* our end of the command socket, -1 when none */
};

/*
 * Mount a new stuckfs, served by a child process. Returns 0, or a negative
 * errno with fs->why set (no FUSE here, not allowed to mount, ...), so tests
 * can skip with the reason.
 */
int stuckfs_start(struct stuckfs *fs);

/* Kinds of requests on the writable files that stuckfs_hang() holds. */
#define STUCKFS_HANG_READ 0x1u		/* read (page cache misses, readahead) */
#define STUCKFS_HANG_WRITE 0x2u		/* write(2), pwrite...; never the
					   writeback of a shared mapping */
#define STUCKFS_HANG_FSYNC 0x4u		/* fsync, fdatasync (not of the directory) */

/*
 * From now on hold every new request of the kinds in ops (a mask of
 * STUCKFS_HANG_*) on the writable files; 0 stops holding new ones (those
 * already held stay held until stuckfs_release). Returns 0, -EINVAL for an
 * unknown bit, or a negative errno if the server is gone.
 * Reads are served from the kernel's page cache when they can: see
 * stuckfs_drop_cache().
 */
int stuckfs_hang(struct stuckfs *fs, unsigned ops);

/*
 * Answer every held request, in arrival order: held writes, fsyncs and
 * reads of the writable files are carried out (a read sees the writes held
 * before it), reads of "stuck" get late data. Returns how many were
 * answered, or a negative errno if the server is gone.
 */
int stuckfs_release(struct stuckfs *fs);

/*
 * How many requests are held now (reads of "stuck" included), or a
 * negative errno if the server is gone.
 */
int stuckfs_held(struct stuckfs *fs);

/*
 * Drop the kernel's cached pages of the writable file name in fs->dir
 * (of every writable file if name is NULL or ""), so that the next reads
 * reach the server (and hang, if reads are hung). Returns how many files,
 * -EBUSY while requests are held (the kernel would wait for their locked
 * pages, and the server with it), or a negative errno. Call it while no
 * I/O is in flight on the file system.
 */
int stuckfs_drop_cache(struct stuckfs *fs, const char *name);

/*
 * How many reads of "stuck" have reached the server so far, or a negative
 * errno if the server is gone.
 */
int stuckfs_reads_seen(struct stuckfs *fs);

/*
 * Answer what is pending, unmount, and end the server. Safe to call on a
 * stuckfs that failed to start, and more than once.
 */
void stuckfs_stop(struct stuckfs *fs);

#endif /* RINGCTX_STUCKFS_H */
