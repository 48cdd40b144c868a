/* SPDX-License-Identifier: MIT */
/*
 * The stuckfs server and its owner talk over a SOCK_SEQPACKET socketpair.
 * The server first sends a struct stuckfs_hello (err 0: mounted); then the
 * owner sends commands (one byte, then its argument: an unsigned for
 * HANG, a file name for DROP) and gets one int back for each.
 */
#ifndef RINGCTX_STUCKFS_SERVER_H
#define RINGCTX_STUCKFS_SERVER_H

#include <sys/types.h>

enum stuckfs_cmd {
	STUCKFS_CMD_RELEASE = 'r',	/* answer held requests; reply: how many */
	STUCKFS_CMD_READS = 'q',	/* reply: reads of "stuck" seen */
	STUCKFS_CMD_HANG = 'h',		/* + unsigned mask: hold these kinds; reply 0 */
	STUCKFS_CMD_HELD = 'n',		/* reply: requests held now */
	STUCKFS_CMD_DROP = 'c',		/* + name: drop cached pages; reply: files */
	STUCKFS_CMD_STOP = 's',		/* unmount and exit; reply: 0 */
};

#define STUCKFS_CMD_MAX 256	/* longest command message */

struct stuckfs_hello {
	int err;		/* 0, or the negative errno of the mount */
	char why[160];
};

/*
 * Serve a stuckfs mounted at dir until told to stop on cmd, or until owner
 * dies; then end every pending request, unmount lazily and rmdir dir.
 * Runs in a child process of owner; returns its exit status.
 */
int stuckfs_serve(const char *dir, int cmd, pid_t owner);

#endif /* RINGCTX_STUCKFS_SERVER_H */
