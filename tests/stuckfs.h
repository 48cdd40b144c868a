/* SPDX-License-Identifier: MIT */
/*
 * stuckfs: an in-process FUSE file system that simulates a hung disk, for
 * tests and the demo. Two files:
 *   stuck - reads are accepted but never answered, until stuckfs_release()
 *           answers them with STUCKFS_LATE_BYTE data (so a test can check the
 *           late data never reaches the caller's buffer);
 *   data  - reads answer at once with STUCKFS_DATA_BYTE.
 * Needs libfuse3, /dev/fuse and the right to mount (root); stuckfs_start()
 * returns a negative errno and a reason otherwise, so tests can skip.
 */
#ifndef RINGCTX_STUCKFS_H
#define RINGCTX_STUCKFS_H

#define FUSE_USE_VERSION 34
#include <errno.h>
#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define STUCKFS_SIZE (1 << 20)
#define STUCKFS_DATA_BYTE 'd'
#define STUCKFS_LATE_BYTE 'L'
#define STUCKFS_MAX_PENDING 64

struct stuckfs {
	char dir[64];
	char stuck_path[96];
	char data_path[96];
	struct fuse_session *se;
	pthread_t thread;
	pthread_mutex_t lock;
	fuse_req_t pending[STUCKFS_MAX_PENDING];
	size_t pending_size[STUCKFS_MAX_PENDING];
	int npending;
	int reads_seen; /* reads of "stuck" that reached the daemon */
	char why[160];
};

static void stuckfs_attr(fuse_ino_t ino, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	if (ino == 1) {
		st->st_mode = S_IFDIR | 0755;
		st->st_nlink = 2;
	} else {
		st->st_mode = S_IFREG | 0444;
		st->st_nlink = 1;
		st->st_size = STUCKFS_SIZE;
	}
}

static void stuckfs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fuse_entry_param e;

	memset(&e, 0, sizeof(e));
	if (parent == 1 && !strcmp(name, "stuck"))
		e.ino = 2;
	else if (parent == 1 && !strcmp(name, "data"))
		e.ino = 3;
	else {
		fuse_reply_err(req, ENOENT);
		return;
	}
	e.attr_timeout = e.entry_timeout = 3600;
	stuckfs_attr(e.ino, &e.attr);
	fuse_reply_entry(req, &e);
}

static void stuckfs_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct stat st;

	(void)fi;
	stuckfs_attr(ino, &st);
	fuse_reply_attr(req, &st, 3600);
}

static void stuckfs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	fuse_reply_open(req, fi);
}

static void stuckfs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			 struct fuse_file_info *fi)
{
	struct stuckfs *fs = fuse_req_userdata(req);
	char *buf;

	(void)off;
	(void)fi;
	if (ino == 2) {
		pthread_mutex_lock(&fs->lock);
		fs->reads_seen++;
		if (fs->npending < STUCKFS_MAX_PENDING) {
			fs->pending_size[fs->npending] = size;
			fs->pending[fs->npending++] = req;
			pthread_mutex_unlock(&fs->lock);
			return; /* never answered until release */
		}
		pthread_mutex_unlock(&fs->lock);
		fuse_reply_err(req, EIO);
		return;
	}
	buf = malloc(size ? size : 1);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	memset(buf, STUCKFS_DATA_BYTE, size);
	fuse_reply_buf(req, buf, size);
	free(buf);
}

static const struct fuse_lowlevel_ops stuckfs_ops = {
	.lookup = stuckfs_lookup,
	.getattr = stuckfs_getattr,
	.open = stuckfs_open,
	.read = stuckfs_read,
};

static void *stuckfs_loop(void *arg)
{
	struct stuckfs *fs = arg;

	fuse_session_loop(fs->se);
	return NULL;
}

/* Mount a new stuckfs. Returns 0, or a negative errno with fs->why set. */
static int stuckfs_start(struct stuckfs *fs)
{
	char *argv[] = { (char *)"stuckfs", NULL };
	struct fuse_args args = FUSE_ARGS_INIT(1, argv);

	memset(fs, 0, sizeof(*fs));
	pthread_mutex_init(&fs->lock, NULL);
	if (access("/dev/fuse", R_OK | W_OK) < 0) {
		snprintf(fs->why, sizeof(fs->why), "/dev/fuse not usable: %s", strerror(errno));
		return -ENODEV;
	}
	strcpy(fs->dir, "/tmp/rctx-stuckfs-XXXXXX");
	if (!mkdtemp(fs->dir)) {
		snprintf(fs->why, sizeof(fs->why), "mkdtemp: %s", strerror(errno));
		return -errno;
	}
	snprintf(fs->stuck_path, sizeof(fs->stuck_path), "%s/stuck", fs->dir);
	snprintf(fs->data_path, sizeof(fs->data_path), "%s/data", fs->dir);
	fs->se = fuse_session_new(&args, &stuckfs_ops, sizeof(stuckfs_ops), fs);
	fuse_opt_free_args(&args);
	if (!fs->se) {
		snprintf(fs->why, sizeof(fs->why), "fuse_session_new failed");
		rmdir(fs->dir);
		return -ENOMEM;
	}
	if (fuse_session_mount(fs->se, fs->dir) != 0) {
		snprintf(fs->why, sizeof(fs->why), "cannot mount FUSE at %s (not root, or no FUSE in this kernel/sandbox)", fs->dir);
		fuse_session_destroy(fs->se);
		rmdir(fs->dir);
		return -EPERM;
	}
	if (pthread_create(&fs->thread, NULL, stuckfs_loop, fs) != 0) {
		snprintf(fs->why, sizeof(fs->why), "pthread_create failed");
		fuse_session_unmount(fs->se);
		fuse_session_destroy(fs->se);
		rmdir(fs->dir);
		return -EAGAIN;
	}
	return 0;
}

/* Answer every stuck read with late data. Returns how many were answered. */
static int stuckfs_release(struct stuckfs *fs)
{
	int n;

	pthread_mutex_lock(&fs->lock);
	n = fs->npending;
	for (int i = 0; i < n; i++) {
		size_t size = fs->pending_size[i];
		char *buf = malloc(size ? size : 1);

		if (buf) {
			memset(buf, STUCKFS_LATE_BYTE, size);
			fuse_reply_buf(fs->pending[i], buf, size);
			free(buf);
		} else {
			fuse_reply_err(fs->pending[i], EIO);
		}
	}
	fs->npending = 0;
	pthread_mutex_unlock(&fs->lock);
	return n;
}

__attribute__((unused)) static int stuckfs_reads_seen(struct stuckfs *fs)
{
	int n;

	pthread_mutex_lock(&fs->lock);
	n = fs->reads_seen;
	pthread_mutex_unlock(&fs->lock);
	return n;
}

/* Answer what is pending, unmount, and stop the daemon thread. */
static void stuckfs_stop(struct stuckfs *fs)
{
	stuckfs_release(fs);
	fuse_session_exit(fs->se);
	fuse_session_unmount(fs->se);
	pthread_join(fs->thread, NULL);
	fuse_session_destroy(fs->se);
	rmdir(fs->dir);
	pthread_mutex_destroy(&fs->lock);
}

#endif /* RINGCTX_STUCKFS_H */
