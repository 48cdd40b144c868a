/* SPDX-License-Identifier: MIT */
/*
 * Description: mount a stuckfs (support/stuckfs.h) for tests/objd/run.sh.
 * Prints "mounted DIR" (or "skip: WHY" when FUSE is not usable), then reads
 * commands from stdin: "release" answers the held requests (the pending reads
 * of DIR/stuck, and the held requests on the writable files) and prints how
 * many; "seen" prints how many reads of DIR/stuck reached the server;
 * "hang read|write|fsync|none" (several words: "hang read fsync") holds the
 * new requests of those kinds on the writable files (none: stops holding)
 * and prints "hang 0" (or the negative errno); "held" prints how many
 * requests are held; "drop [NAME]" drops the cached pages of NAME (of every
 * writable file without one) and prints how many files. At EOF it unmounts
 * and exits.
 */
#include <stdio.h>
#include <string.h>

#include "stuckfs.h"

/* "hang read write ..." -> a STUCKFS_HANG_* mask; -1 for an unknown word. */
static long hang_mask(char *words)
{
	long mask = 0;

	for (char *w = strtok(words, " \n"); w; w = strtok(NULL, " \n")) {
		if (!strcmp(w, "read"))
			mask |= STUCKFS_HANG_READ;
		else if (!strcmp(w, "write"))
			mask |= STUCKFS_HANG_WRITE;
		else if (!strcmp(w, "fsync"))
			mask |= STUCKFS_HANG_FSYNC;
		else if (strcmp(w, "none"))
			return -1;
	}
	return mask;
}

/* Run one command line; unknown ones are ignored. */
static void run(struct stuckfs *fs, char *line)
{
	long mask;

	if (!strcmp(line, "release\n")) {
		printf("released %d\n", stuckfs_release(fs));
	} else if (!strcmp(line, "seen\n")) {
		printf("seen %d\n", stuckfs_reads_seen(fs));
	} else if (!strcmp(line, "held\n")) {
		printf("held %d\n", stuckfs_held(fs));
	} else if (!strncmp(line, "hang ", 5)) {
		mask = hang_mask(line + 5);
		printf("hang %d\n", mask < 0 ? -22 : stuckfs_hang(fs, (unsigned)mask));
	} else if (!strncmp(line, "drop", 4) && (line[4] == ' ' || line[4] == '\n')) {
		line[strcspn(line, "\n")] = '\0';
		printf("dropped %d\n", stuckfs_drop_cache(fs, line[4] ? line + 5 : NULL));
	}
}

int main(void)
{
	struct stuckfs fs;
	char line[256];

	if (stuckfs_start(&fs) < 0) {
		printf("skip: %s\n", fs.why);
		return 0;
	}
	printf("mounted %s\n", fs.dir);
	fflush(stdout);
	while (fgets(line, sizeof(line), stdin)) {
		run(&fs, line);
		fflush(stdout);
	}
	stuckfs_stop(&fs);
	return 0;
}
