/* SPDX-License-Identifier: MIT */
/*
 * Description: mount a stuckfs (support/stuckfs.h) for tests/objd/run.sh.
 * Prints "mounted DIR" (or "skip: WHY" when FUSE is not usable), then reads
 * commands from stdin: "release" answers the pending reads of DIR/stuck and
 * prints how many; "seen" prints how many reads reached the server. At EOF
 * it unmounts and exits.
 */
#include <stdio.h>
#include <string.h>

#include "stuckfs.h"

int main(void)
{
	struct stuckfs fs;
	char line[64];

	if (stuckfs_start(&fs) < 0) {
		printf("skip: %s\n", fs.why);
		return 0;
	}
	printf("mounted %s\n", fs.dir);
	fflush(stdout);
	while (fgets(line, sizeof(line), stdin)) {
		if (!strcmp(line, "release\n"))
			printf("released %d\n", stuckfs_release(&fs));
		else if (!strcmp(line, "seen\n"))
			printf("seen %d\n", stuckfs_reads_seen(&fs));
		fflush(stdout);
	}
	stuckfs_stop(&fs);
	return 0;
}
