/* SPDX-License-Identifier: MIT */
/*
 * The process's own descriptor of each file the VFS reads and writes
 * (struct rs_fd in internal.h): found by (device, inode), shared, closed by
 * the last user. A descriptor opened is never closed while another file of
 * the VFS uses the inode, so the unix VFS's POSIX locks on it are never
 * dropped behind its back.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

static pthread_mutex_t fd_lock = PTHREAD_MUTEX_INITIALIZER;
static struct rs_fd *fd_list;	/* under fd_lock */

static struct rs_fd *find(dev_t dev, ino_t ino)
{
	for (struct rs_fd *f = fd_list; f; f = f->next)
		if (f->dev == dev && f->ino == ino)
			return f;
	return NULL;
}

/*
 * Keep another descriptor of f's file until the last user goes: closing it
 * now would drop the process's locks. (Beyond RS_FD_SPARES, which takes a
 * file replaced under its name again and again, it stays open for good.)
 */
static void keep_spare(struct rs_fd *f, int fd)
{
	if (f->nspare < RS_FD_SPARES)
		f->spare[f->nspare++] = fd;
}

struct rs_fd *rctx__sqlite_fd_get(const char *path, bool writable, int *err)
{
	struct rs_fd *f = NULL;
	struct stat st;
	int fd = -1;

	pthread_mutex_lock(&fd_lock);
	if (stat(path, &st) == 0 && (f = find(st.st_dev, st.st_ino)) &&
	    (f->writable || !writable))
		goto out_ref;
	fd = open(path, (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0)
		goto out_err;
	f = find(st.st_dev, st.st_ino);
	if (f && writable && !f->writable) {
		/* A read-only descriptor gains a writable one. */
		keep_spare(f, f->fd);
		f->fd = fd;
		f->writable = true;
		goto out_ref;
	}
	if (f) {
		/* Replaced between stat and open. */
		keep_spare(f, fd);
		goto out_ref;
	}
	f = calloc(1, sizeof(*f));
	if (!f) {
		errno = ENOMEM;
		goto out_err;
	}
	f->dev = st.st_dev;
	f->ino = st.st_ino;
	f->fd = fd;
	f->writable = writable;
	f->next = fd_list;
	fd_list = f;
out_ref:
	f->refs++;
	pthread_mutex_unlock(&fd_lock);
	return f;
out_err:
	*err = -errno;
	if (fd >= 0)
		close(fd);
	pthread_mutex_unlock(&fd_lock);
	return NULL;
}

void rctx__sqlite_fd_put(struct rs_fd *f)
{
	pthread_mutex_lock(&fd_lock);
	if (--f->refs > 0) {
		pthread_mutex_unlock(&fd_lock);
		return;
	}
	for (struct rs_fd **p = &fd_list; *p; p = &(*p)->next) {
		if (*p == f) {
			*p = f->next;
			break;
		}
	}
	pthread_mutex_unlock(&fd_lock);
	close(f->fd);
	for (int i = 0; i < f->nspare; i++)
		close(f->spare[i]);
	free(f);
}
