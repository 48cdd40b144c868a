/* SPDX-License-Identifier: MIT */
/*
 * stuckfs without FUSE: built when libfuse3 was not found at build time.
 * Every start fails with the reason, so tests skip and the demo says so.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "stuckfs.h"

int stuckfs_start(struct stuckfs *fs)
{
	memset(fs, 0, sizeof(*fs));
	fs->cmd = -1;
	snprintf(fs->why, sizeof(fs->why),
		 "built without libfuse3 (pkg-config fuse3 found nothing)");
	return -ENOSYS;
}

int stuckfs_release(struct stuckfs *fs)
{
	(void)fs;
	return -ENOSYS;
}

int stuckfs_hang(struct stuckfs *fs, unsigned ops)
{
	(void)fs;
	(void)ops;
	return -ENOSYS;
}

int stuckfs_held(struct stuckfs *fs)
{
	(void)fs;
	return -ENOSYS;
}

int stuckfs_drop_cache(struct stuckfs *fs, const char *name)
{
	(void)fs;
	(void)name;
	return -ENOSYS;
}

int stuckfs_reads_seen(struct stuckfs *fs)
{
	(void)fs;
	return -ENOSYS;
}

void stuckfs_stop(struct stuckfs *fs)
{
	(void)fs;
}
