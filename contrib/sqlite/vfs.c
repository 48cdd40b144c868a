/* SPDX-License-Identifier: MIT */
/*
 * The ringctx VFS: a shim over the default unix VFS (the pattern of SQLite's
 * cksumvfs.c). Each file is our struct rs_file followed by the unix VFS's
 * file. Data I/O (xRead, xWrite, xSync, xTruncate) of databases, rollback
 * journals and WAL files runs as ringctx blocking calls on the process's
 * own descriptor of the file (fd.c) under the connection's context
 * (bind.c), writes mostly held back and sent together as abandonable
 * requests (defer.c), so every method that depends on them sends them
 * first; everything else is the unix VFS's. io_methods version 2: no
 * xFetch, so SQLite never maps the database (a page fault on a hung disk
 * cannot be cancelled); xShm* (the WAL index) pass through.
 *
 * A journal or WAL file finds its database's file through the name SQLite
 * opened it with: sqlite3_filename_database() of a journal or WAL name is
 * the very pointer that the pager passed when it opened the database.
 */
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "internal.h"

static sqlite3_vfs *orig_vfs;		/* the unix VFS we wrap */
static sqlite3_vfs rs_vfs;
static const sqlite3_io_methods rs_io;

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct rs_file *open_dbs;	/* main databases, under reg_lock */

/* ---- which context ------------------------------------------------------ */

rctx_t *rctx__sqlite_file_ctx(struct rs_file *f)
{
	struct rs_file *m = f->main ? f->main : f;

	if (m->bind && m->bind->ctx)
		return m->bind->ctx;
	return rctx__sqlite_opening ? rctx__sqlite_opening : rctx_background();
}

/* The errno of this thread's last failed method, for sqlite3_system_errno(). */
static _Thread_local int last_errno;

int rctx__sqlite_fail(int err, int rc)
{
	last_errno = -err;
	return rc;
}

#define fail rctx__sqlite_fail

/* ---- data I/O -------------------------------------------------------------- */

/*
 * A read that the page cache answers at once: the file is the VFS's own
 * descriptor of a regular file, opened without O_DIRECT, so this is
 * rctx_read()'s first attempt without its two probes of the descriptor
 * (statx, fcntl), which the VFS paid on every read. -EAGAIN: it would block
 * (a page-cache miss), or its file system cannot tell (FUSE, tmpfs: then
 * not tried again on that file); rctx_read() then takes it.
 */
static ssize_t read_cached(struct rs_fd *fd, void *buf, size_t len, int64_t off)
{
	struct iovec iov = { .iov_base = buf, .iov_len = len };
	ssize_t n;

	if (fd->no_nowait)
		return -EAGAIN;
	n = preadv2(fd->fd, &iov, 1, off, RWF_NOWAIT);
	if (n >= 0)
		return n;
	if (errno == EOPNOTSUPP)
		fd->no_nowait = true;
	return errno == EOPNOTSUPP || errno == EAGAIN ? -EAGAIN : -errno;
}

/* Fail the first read or size of a journal after it lost held writes
 * (defer.c): its rollback then fails, and sends the pager to its error
 * state, which drops its cache; from then on the journal is read as the
 * disk has it. */
static bool lost(struct rs_file *f)
{
	bool was = f->lost;

	f->lost = false;
	return was;
}

static int rs_read(sqlite3_file *file, void *buf, int amt, sqlite3_int64 off)
{
	struct rs_file *f = (struct rs_file *)file;
	rctx_t *ctx;
	int done = 0, rc;

	if (!f->fd)
		return f->real->pMethods->xRead(f->real, buf, amt, off);
	if (lost(f))
		return fail(-EIO, SQLITE_IOERR_READ);
	/* What f holds goes out first, unless the read starts past all of it
	 * (the journal's read of its next header, before its sync) */
	rc = rctx__sqlite_held_below(f, off) ? SQLITE_OK : rctx__sqlite_flush(f);
	if (rc != SQLITE_OK)
		return rc;
	ctx = rctx__sqlite_file_ctx(f);
	if (rctx_err(ctx))
		return fail(rctx_err(ctx), SQLITE_IOERR_READ);
	while (done < amt) {
		ssize_t n = read_cached(f->fd, (char *)buf + done, amt - done, off + done);

		if (n == -EAGAIN)
			n = rctx_read(ctx, f->fd->fd, (char *)buf + done, amt - done, off + done);

		if (n < 0)
			return fail((int)n, SQLITE_IOERR_READ);
		if (n == 0)
			break;
		done += n;
	}
	if (done < amt) {
		memset((char *)buf + done, 0, amt - done);
		return SQLITE_IOERR_SHORT_READ;
	}
	return SQLITE_OK;
}

static int rs_write(sqlite3_file *file, const void *buf, int amt, sqlite3_int64 off)
{
	struct rs_file *f = (struct rs_file *)file;
	rctx_t *ctx;
	int done = 0, rc;

	if (!f->fd)
		return f->real->pMethods->xWrite(f->real, buf, amt, off);
	if (rctx__sqlite_may_hold(f, buf, amt, off))
		return rctx__sqlite_hold(f, buf, amt, off);
	rc = rctx__sqlite_flush_group(f);
	if (rc != SQLITE_OK)
		return rc;
	ctx = rctx__sqlite_file_ctx(f);
	while (done < amt) {
		ssize_t n = rctx_write(ctx, f->fd->fd, (const char *)buf + done, amt - done,
				       off + done);

		if (n == -ENOSPC || n == 0)
			return fail(-ENOSPC, SQLITE_FULL);
		if (n < 0)
			return fail((int)n, SQLITE_IOERR_WRITE);
		done += n;
	}
	return SQLITE_OK;
}

static int rs_truncate(sqlite3_file *file, sqlite3_int64 size)
{
	struct rs_file *f = (struct rs_file *)file;
	int ret;

	if (!f->fd)
		return f->real->pMethods->xTruncate(f->real, size);
	ret = rctx__sqlite_flush_group(f);
	if (ret != SQLITE_OK)
		return ret;
	ret = rctx_ftruncate(rctx__sqlite_file_ctx(f), f->fd->fd, size);
	if (ret == -EOPNOTSUPP)	/* a kernel before 6.9 */
		ret = f->real->pMethods->xTruncate(f->real, size) == SQLITE_OK ? 0 : -EIO;
	return ret < 0 ? fail(ret, SQLITE_IOERR_TRUNCATE) : SQLITE_OK;
}

/*
 * The directory of a new journal or WAL is synced once, as the unix VFS
 * does, while the file's own sync is in flight (both end before the sync
 * returns, as one after the other would). The directory's descriptor is
 * opened once and kept by the database's file (a DELETE-mode journal is new
 * in every transaction).
 */
struct dir_sync {
	int fd;		/* the directory's, or -1 */
	bool own;	/* fd is closed after the sync (no database file keeps it) */
	bool sent;	/* an rctx_async_fsync on the thread's ring */
	bool done;
	int res;
};

static void dir_synced(void *arg, int res, void *data, unsigned flags)
{
	struct dir_sync *d = arg;

	(void)data;
	(void)flags;
	d->res = res;
	d->done = true;
}

/* Open (or take the kept) directory of f, and send its sync. A directory
 * that cannot be opened is skipped, as by the unix VFS, unless ctx ended. */
static int dir_sync_start(struct rs_file *f, rctx_t *ctx, struct dir_sync *d)
{
	struct rs_file *m = f->main;
	const char *slash = strrchr(f->name, '/');
	rctx_ring_t *ring = rctx__sqlite_ring();
	char dir[4096];

	*d = (struct dir_sync){ .fd = m ? m->dirfd : -1 };
	if (d->fd < 0) {
		if (!slash)
			snprintf(dir, sizeof(dir), ".");
		else
			snprintf(dir, sizeof(dir), "%.*s",
				 (int)(slash - f->name) + (slash == f->name), f->name);
		d->fd = rctx_openat(ctx, AT_FDCWD, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
		if (d->fd < 0)
			return rctx_err(ctx) ? d->fd : 0;
		if (m)
			m->dirfd = d->fd;
		else
			d->own = true;
	}
	d->sent = ring && !rctx_async_fsync(ring, ctx, d->fd, IORING_FSYNC_DATASYNC,
					    dir_synced, d);
	return 0;
}

/* Wait for the directory's sync (or make it, if it could not be sent).
 * Its failure counts only if ctx ended, as the unix VFS ignores it. */
static int dir_sync_end(rctx_t *ctx, struct dir_sync *d)
{
	int ret = 0;

	if (d->fd < 0)
		return 0;
	if (d->sent) {
		while (!d->done)
			rctx_ring_run(rctx__sqlite_ring(), RCTX_FOREVER);
		ret = d->res;
	} else {
		ret = rctx_fsync(ctx, d->fd, IORING_FSYNC_DATASYNC);
	}
	if (d->own)
		close(d->fd);
	return ret < 0 && rctx_err(ctx) ? ret : 0;
}

static int rs_sync(sqlite3_file *file, int flags)
{
	struct rs_file *f = (struct rs_file *)file;
	rctx_t *ctx;
	struct dir_sync d = { .fd = -1 };
	int ret, rc;

	if (!f->fd)
		return f->real->pMethods->xSync(f->real, flags);
	ctx = rctx__sqlite_file_ctx(f);
	if (f->dirsync) {
		ret = dir_sync_start(f, ctx, &d);
		if (ret < 0)
			return fail(ret, SQLITE_IOERR_DIR_FSYNC);
	}
	/* fdatasync whatever the flags, as the unix VFS does on Linux
	 * (os_unix.c, full_fsync()): the inode's timestamps are not SQLite's
	 * concern, and its size is synced with the data */
	rc = rctx__sqlite_flush_sync(f);
	ret = dir_sync_end(ctx, &d);
	if (rc != SQLITE_OK)
		return rc;
	if (ret < 0)
		return fail(ret, SQLITE_IOERR_DIR_FSYNC);
	f->dirsync = false;
	return SQLITE_OK;
}

/* ---- passed to the unix VFS ------------------------------------------------ */

#define REAL(file) (((struct rs_file *)(file))->real)

/*
 * The held writes of the file (of its group) go out first: the size counts
 * them; an unlock lets others read the files (defer.c).
 */
#define FLUSH(file) rctx__sqlite_flush((struct rs_file *)(file))
#define FLUSH_GROUP(file) rctx__sqlite_flush_group((struct rs_file *)(file))

static int rs_file_size(sqlite3_file *file, sqlite3_int64 *size)
{
	int rc = lost((struct rs_file *)file) ? fail(-EIO, SQLITE_IOERR_FSTAT) : FLUSH(file);

	return rc != SQLITE_OK ? rc : REAL(file)->pMethods->xFileSize(REAL(file), size);
}

/* A stronger lock keeps others from the files still more: nothing held
 * needs to go out for it. */
static int rs_lock(sqlite3_file *file, int lock)
{
	return REAL(file)->pMethods->xLock(REAL(file), lock);
}

static int rs_unlock(sqlite3_file *file, int lock)
{
	int rc = FLUSH_GROUP(file);

	return rc != SQLITE_OK ? rc : REAL(file)->pMethods->xUnlock(REAL(file), lock);
}

static int rs_check_reserved(sqlite3_file *file, int *out)
{
	return REAL(file)->pMethods->xCheckReservedLock(REAL(file), out);
}

static int rs_file_control(sqlite3_file *file, int op, void *arg)
{
	/* A hint that the unix VFS acts on with its own descriptor: ignore. */
	if (op == SQLITE_FCNTL_SIZE_HINT)
		return SQLITE_OK;
	if (op == SQLITE_FCNTL_VFSNAME) {
		*(char **)arg = sqlite3_mprintf("%s", RCTX_SQLITE_VFS);
		return SQLITE_OK;
	}
	/* Where SQLite would sync (or does not, synchronous=OFF): the commit
	 * depends on what was written before. With a journal file open, what
	 * follows sends it anyway (the sync itself, which takes it along; or,
	 * with synchronous=OFF, the journal's close, truncate or zeroed
	 * header); but not without one (journal_mode=MEMORY or OFF, where
	 * under locking_mode=EXCLUSIVE nothing may follow at all), nor in the
	 * transaction of several databases, which deletes its super-journal
	 * next (no method of these files sees it). */
	if ((op == SQLITE_FCNTL_SYNC && (arg || !((struct rs_file *)file)->njournal)) ||
	    op == SQLITE_FCNTL_SYNC_OMITTED) {
		int rc = FLUSH_GROUP(file);

		if (rc != SQLITE_OK)
			return rc;
	}
	return REAL(file)->pMethods->xFileControl(REAL(file), op, arg);
}

static int rs_sector_size(sqlite3_file *file)
{
	return REAL(file)->pMethods->xSectorSize(REAL(file));
}

static int rs_device_chars(sqlite3_file *file)
{
	return REAL(file)->pMethods->xDeviceCharacteristics(REAL(file));
}

/* Nothing is held back while a WAL is open; a database's writes from
 * before go out when it starts using its WAL index. */
static int rs_shm_map(sqlite3_file *file, int pg, int pgsz, int extend, void volatile **pp)
{
	int rc = FLUSH_GROUP(file);

	if (rc != SQLITE_OK)
		return rc;
	return REAL(file)->pMethods->xShmMap(REAL(file), pg, pgsz, extend, pp);
}

static int rs_shm_lock(sqlite3_file *file, int off, int n, int flags)
{
	int rc = FLUSH_GROUP(file);

	return rc != SQLITE_OK ? rc : REAL(file)->pMethods->xShmLock(REAL(file), off, n, flags);
}

static void rs_shm_barrier(sqlite3_file *file)
{
	REAL(file)->pMethods->xShmBarrier(REAL(file));
}

static int rs_shm_unmap(sqlite3_file *file, int del)
{
	return REAL(file)->pMethods->xShmUnmap(REAL(file), del);
}

/* ---- open and close ------------------------------------------------------ */

static void registry_add(struct rs_file *f)
{
	pthread_mutex_lock(&reg_lock);
	f->next = open_dbs;
	open_dbs = f;
	pthread_mutex_unlock(&reg_lock);
}

static void registry_del(struct rs_file *f)
{
	pthread_mutex_lock(&reg_lock);
	for (struct rs_file **p = &open_dbs; *p; p = &(*p)->next) {
		if (*p == f) {
			*p = f->next;
			break;
		}
	}
	pthread_mutex_unlock(&reg_lock);
}

/* The open database whose pager opened the journal or WAL name. */
static struct rs_file *registry_find(const char *name)
{
	const char *db = sqlite3_filename_database(name);
	struct rs_file *f;

	pthread_mutex_lock(&reg_lock);
	for (f = open_dbs; f && f->name != db; f = f->next)
		;
	pthread_mutex_unlock(&reg_lock);
	return f;
}

static int rs_close(sqlite3_file *file)
{
	struct rs_file *f = (struct rs_file *)file;
	int rc = f->fd ? rctx__sqlite_flush_group(f) : SQLITE_OK;
	int rc2;

	rctx__sqlite_free_held(f);
	rc2 = f->real->pMethods->xClose(f->real);
	if (rc == SQLITE_OK)
		rc = rc2;
	if (f->type == SQLITE_OPEN_MAIN_DB)
		registry_del(f);
	else if (f->type == SQLITE_OPEN_WAL && f->main)
		f->main->nwal--;
	else if (f->type == SQLITE_OPEN_MAIN_JOURNAL && f->main)
		f->main->njournal--;
	if (f->dirfd >= 0)
		close(f->dirfd);
	f->dirfd = -1;
	if (f->bind) {
		if (f->owns_bind)
			rctx__sqlite_binding_close(f->bind);
		rctx__sqlite_binding_unref(f->bind);
		f->bind = NULL;
	}
	/* After the unix VFS's close: it may still need our descriptor's file. */
	if (f->fd)
		rctx__sqlite_fd_put(f->fd);
	f->fd = NULL;
	return rc;
}

/* The files whose data I/O we take: named databases, journals and WAL. */
static bool ours(const char *name, int flags)
{
	int type = flags & 0x0FFF00;

	return name && !(flags & SQLITE_OPEN_DELETEONCLOSE) &&
	       (type == SQLITE_OPEN_MAIN_DB || type == SQLITE_OPEN_MAIN_JOURNAL ||
		type == SQLITE_OPEN_WAL || type == SQLITE_OPEN_SUPER_JOURNAL);
}

static int rs_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *file, int flags,
		   int *out_flags)
{
	struct rs_file *f = (struct rs_file *)file;
	int rc, err = 0;

	(void)vfs;
	memset(f, 0, sizeof(*f));
	f->dirfd = -1;
	f->real = (sqlite3_file *)(f + 1);
	rc = orig_vfs->xOpen(orig_vfs, name, f->real, flags, out_flags);
	if (rc != SQLITE_OK) {
		file->pMethods = NULL;	/* no xClose for a failed open */
		return rc;
	}
	f->type = flags & 0x0FFF00;
	f->name = name;
	if (ours(name, flags)) {
		bool rw = !(out_flags ? *out_flags & SQLITE_OPEN_READONLY
				      : flags & SQLITE_OPEN_READONLY);

		f->fd = rctx__sqlite_fd_get(name, rw, &err);
		if (!f->fd) {
			f->real->pMethods->xClose(f->real);
			file->pMethods = NULL;
			return fail(err, SQLITE_CANTOPEN);
		}
		f->dirsync = (flags & SQLITE_OPEN_CREATE) && f->type != SQLITE_OPEN_MAIN_DB;
	}
	if (f->type == SQLITE_OPEN_MAIN_DB)
		registry_add(f);
	else if (f->type == SQLITE_OPEN_MAIN_JOURNAL || f->type == SQLITE_OPEN_WAL)
		f->main = registry_find(name);
	if (f->type == SQLITE_OPEN_WAL && f->main)
		f->main->nwal++;	/* its writes from now on: checkpoints, not held */
	if (f->type == SQLITE_OPEN_MAIN_JOURNAL && f->main)
		f->main->njournal++;
	file->pMethods = &rs_io;
	return SQLITE_OK;
}

struct rs_file *rctx__sqlite_db_file(sqlite3 *db, const char *zDb)
{
	sqlite3_file *file = NULL;

	if (sqlite3_file_control(db, zDb, SQLITE_FCNTL_FILE_POINTER, &file) != SQLITE_OK ||
	    !file || file->pMethods != &rs_io)
		return NULL;
	return (struct rs_file *)file;
}

static const sqlite3_io_methods rs_io = {
	.iVersion = 2,
	.xClose = rs_close,
	.xRead = rs_read,
	.xWrite = rs_write,
	.xTruncate = rs_truncate,
	.xSync = rs_sync,
	.xFileSize = rs_file_size,
	.xLock = rs_lock,
	.xUnlock = rs_unlock,
	.xCheckReservedLock = rs_check_reserved,
	.xFileControl = rs_file_control,
	.xSectorSize = rs_sector_size,
	.xDeviceCharacteristics = rs_device_chars,
	.xShmMap = rs_shm_map,
	.xShmLock = rs_shm_lock,
	.xShmBarrier = rs_shm_barrier,
	.xShmUnmap = rs_shm_unmap,
};

/* ---- the VFS: all but xOpen is the unix VFS's ------------------------------- */

static int rs_delete(sqlite3_vfs *vfs, const char *name, int dirsync)
{
	(void)vfs;
	return orig_vfs->xDelete(orig_vfs, name, dirsync);
}

static int rs_access(sqlite3_vfs *vfs, const char *name, int flags, int *out)
{
	(void)vfs;
	return orig_vfs->xAccess(orig_vfs, name, flags, out);
}

static int rs_full_pathname(sqlite3_vfs *vfs, const char *name, int n, char *out)
{
	(void)vfs;
	return orig_vfs->xFullPathname(orig_vfs, name, n, out);
}

static void *rs_dlopen(sqlite3_vfs *vfs, const char *path)
{
	(void)vfs;
	return orig_vfs->xDlOpen(orig_vfs, path);
}

static void rs_dlerror(sqlite3_vfs *vfs, int n, char *msg)
{
	(void)vfs;
	orig_vfs->xDlError(orig_vfs, n, msg);
}

static void (*rs_dlsym(sqlite3_vfs *vfs, void *h, const char *sym))(void)
{
	(void)vfs;
	return orig_vfs->xDlSym(orig_vfs, h, sym);
}

static void rs_dlclose(sqlite3_vfs *vfs, void *h)
{
	(void)vfs;
	orig_vfs->xDlClose(orig_vfs, h);
}

static int rs_randomness(sqlite3_vfs *vfs, int n, char *out)
{
	(void)vfs;
	return orig_vfs->xRandomness(orig_vfs, n, out);
}

static int rs_sleep(sqlite3_vfs *vfs, int us)
{
	(void)vfs;
	return orig_vfs->xSleep(orig_vfs, us);
}

static int rs_current_time(sqlite3_vfs *vfs, double *t)
{
	(void)vfs;
	return orig_vfs->xCurrentTime(orig_vfs, t);
}

static int rs_last_error(sqlite3_vfs *vfs, int n, char *msg)
{
	int err = last_errno;

	(void)vfs;
	return err ? err : orig_vfs->xGetLastError(orig_vfs, n, msg);
}

static int rs_current_time64(sqlite3_vfs *vfs, sqlite3_int64 *t)
{
	(void)vfs;
	return orig_vfs->xCurrentTimeInt64(orig_vfs, t);
}

static pthread_mutex_t register_lock = PTHREAD_MUTEX_INITIALIZER;
static int (*orig_fchown)(int, uid_t, gid_t);

/*
 * The unix VFS, run as root, gives each new journal and WAL its database's
 * owner with fchown(), which takes the inode lock: behind a write that a
 * context abandoned on a hung disk it would wait for the disk. Skip the
 * fchown when the file has that owner already (fstat takes no lock).
 */
static int rs_fchown(int fd, uid_t uid, gid_t gid)
{
	struct stat st;

	if (fstat(fd, &st) == 0 && st.st_uid == uid && st.st_gid == gid)
		return 0;
	return orig_fchown(fd, uid, gid);
}

static void wrap_fchown(sqlite3_vfs *vfs)
{
	if (!vfs->xGetSystemCall || !vfs->xSetSystemCall)
		return;
	orig_fchown = (int (*)(int, uid_t, gid_t))vfs->xGetSystemCall(vfs, "fchown");
	if (orig_fchown)
		vfs->xSetSystemCall(vfs, "fchown", (sqlite3_syscall_ptr)rs_fchown);
}

int rctx_sqlite_register(int make_default)
{
	sqlite3_vfs *unix_vfs;
	int rc = rs_initialize();

	if (rc != SQLITE_OK)
		return rc;
	pthread_mutex_lock(&register_lock);
	if (orig_vfs) {
		rc = make_default ? sqlite3_vfs_register(&rs_vfs, 1) : SQLITE_OK;
		goto out;
	}
	unix_vfs = sqlite3_vfs_find(NULL);
	if (!unix_vfs || strncmp(unix_vfs->zName, "unix", 4) || unix_vfs->iVersion < 2) {
		rc = SQLITE_ERROR;
		goto out;
	}
	orig_vfs = unix_vfs;
	wrap_fchown(unix_vfs);
	rs_vfs = (sqlite3_vfs){
		.iVersion = 2,
		.szOsFile = (int)sizeof(struct rs_file) + unix_vfs->szOsFile,
		.mxPathname = unix_vfs->mxPathname,
		.zName = RCTX_SQLITE_VFS,
		.xOpen = rs_open,
		.xDelete = rs_delete,
		.xAccess = rs_access,
		.xFullPathname = rs_full_pathname,
		.xDlOpen = rs_dlopen,
		.xDlError = rs_dlerror,
		.xDlSym = rs_dlsym,
		.xDlClose = rs_dlclose,
		.xRandomness = rs_randomness,
		.xSleep = rs_sleep,
		.xCurrentTime = rs_current_time,
		.xGetLastError = rs_last_error,
		.xCurrentTimeInt64 = rs_current_time64,
	};
	rc = sqlite3_vfs_register(&rs_vfs, make_default);
	if (rc != SQLITE_OK)
		orig_vfs = NULL;
out:
	pthread_mutex_unlock(&register_lock);
	return rc;
}
