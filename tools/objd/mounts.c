/* SPDX-License-Identifier: MIT */
/*
 * Which mounts honour IOCB_NOWAIT for buffered reads, so that a read may be
 * tried inline by io_uring (a page-cache hit completes in io_uring_enter, a
 * miss goes on asynchronously without a thread) instead of an io-wq hop.
 *
 * Read once at start from /proc/self/mountinfo: the mount ids (what statx
 * reports as stx_mnt_id) of local file systems that do (ext4, xfs, btrfs,
 * tmpfs). Anything else, and any mount made after the start (a FUSE file
 * system, NFS, a bind mount of one), is read through io-wq: a file system
 * that does not honour IOCB_NOWAIT would block the worker thread itself.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "objd.h"

#define NOWAIT_MAX 256

static uint64_t nowait_ids[NOWAIT_MAX];
static unsigned nowait_n;

static bool fs_nowait(const char *type)
{
	static const char *const ok[] = { "ext4", "xfs", "btrfs", "tmpfs" };

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		if (!strcmp(type, ok[i]))
			return true;
	return false;
}

/* Each line: "id parent major:minor root mountpoint options ... - type src". */
void mounts_init(void)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char line[4096];

	if (!f)
		return;	/* every read goes through io-wq */
	while (nowait_n < NOWAIT_MAX && fgets(line, sizeof(line), f)) {
		char *sep = strstr(line, " - "), type[64];
		unsigned long long id;

		if (!sep || sscanf(line, "%llu", &id) != 1 ||
		    sscanf(sep + 3, "%63s", type) != 1)
			continue;
		if (fs_nowait(type))
			nowait_ids[nowait_n++] = id;
	}
	fclose(f);
}

bool mount_nowait(uint64_t mnt_id)
{
	for (unsigned i = 0; i < nowait_n; i++)
		if (nowait_ids[i] == mnt_id)
			return true;
	return false;
}
