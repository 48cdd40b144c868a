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

/*
 * Answer every pending read of "stuck" with late data. Returns how many were
 * answered, or a negative errno if the server is gone.
 */
int stuckfs_release(struct stuckfs *fs);

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
