/* SPDX-License-Identifier: MIT */
/*
 * Description: the test file system itself (support/stuckfs.h), its
 * writable directory and its hangs on demand. Files created in it behave as
 * files (write, read back, truncate, rename, unlink, readdir, a shared
 * writable mapping); with reads, writes or fsyncs hung, such a request stays
 * pending (its thread blocked, the server counting it held) until
 * stuckfs_release() carries it out. A process killed with a write held is reaped and
 * leaves no mount behind. Skips with the reason when FUSE cannot be mounted.
 *
 * Only orderings and outcomes are asserted; every wait is bounded.
 */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "helpers.h"
#include "stuckfs.h"

TestSuite(stuckfs, .timeout = 120);

static struct stuckfs fs;

static void mount_or_skip(void)
{
	if (stuckfs_start(&fs) < 0)
		cr_skip_test("stuckfs tests need FUSE: %s", fs.why);
}

static void path_of(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s", fs.dir, name);
}

/* Create name holding len bytes of c; returns an O_RDWR fd. */
static int make_file(const char *name, char c, size_t len)
{
	char path[128], buf[8192];
	int fd;

	path_of(path, sizeof(path), name);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	cr_assert_geq(fd, 0, "create %s: %s", path, strerror(errno));
	memset(buf, c, sizeof(buf));
	for (size_t done = 0; done < len; done += sizeof(buf))
		cr_assert_eq(pwrite(fd, buf, sizeof(buf), done), (ssize_t)sizeof(buf));
	return fd;
}

static bool listed(const char *name)
{
	DIR *d = opendir(fs.dir);
	struct dirent *e;
	bool found = false;

	cr_assert_not_null(d);
	while (!found && (e = readdir(d)))
		found = !strcmp(e->d_name, name);
	closedir(d);
	return found;
}

Test(stuckfs, writable_files_behave_as_files)
{
	char path[128], path2[128], buf[16];
	struct stat st;
	int fd;

	mount_or_skip();
	fd = make_file("a", 'x', 16384);
	cr_assert_eq(pwrite(fd, "hello", 5, 100), 5);
	cr_assert_eq(fsync(fd), 0);
	cr_assert_eq(fdatasync(fd), 0);
	cr_assert_eq(pread(fd, buf, 7, 99), 7);
	cr_assert_eq(memcmp(buf, "xhellox", 7), 0);
	cr_assert_eq(ftruncate(fd, 50), 0);
	cr_assert_eq(fstat(fd, &st), 0);
	cr_assert_eq(st.st_size, 50);
	cr_assert_eq(pread(fd, buf, sizeof(buf), 40), 10, "a read past the new end is short");
	cr_assert_eq(ftruncate(fd, 8192), 0);
	cr_assert_eq(pread(fd, buf, 4, 100), 4);
	cr_assert_eq(memcmp(buf, "\0\0\0\0", 4), 0, "an extension reads as zeros");
	cr_assert(listed("a") && listed("stuck") && listed("data"));

	path_of(path, sizeof(path), "a");
	path_of(path2, sizeof(path2), "b");
	cr_assert_eq(rename(path, path2), 0);
	cr_assert_not(listed("a"));
	cr_assert(listed("b"));
	cr_assert_eq(stat(path2, &st), 0);
	cr_assert_eq(st.st_size, 8192);
	cr_assert_eq(unlink(path2), 0);
	cr_assert_not(listed("b"));
	cr_assert_eq(stat(path2, &st), -1);
	cr_assert_eq(pread(fd, buf, 4, 0), 4, "an unlinked file stays readable while open");
	cr_assert_eq(memcmp(buf, "xxxx", 4), 0);
	close(fd);
	cr_assert_eq(open(path, O_RDONLY), -1);
	cr_assert_eq(errno, ENOENT);
	stuckfs_stop(&fs);
}

/* SQLite's WAL index: a shared writable mapping of a file in the directory. */
Test(stuckfs, shared_writable_mapping_works)
{
	char buf[8];
	char *map;
	int fd;

	mount_or_skip();
	fd = make_file("db-shm", 0, 32768);
	map = mmap(NULL, 32768, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	cr_assert_neq(map, MAP_FAILED, "mmap: %s", strerror(errno));
	memcpy(map + 4096, "mapped", 6);
	cr_assert_eq(stuckfs_hang(&fs, STUCKFS_HANG_WRITE), 0);
	cr_assert_eq(msync(map, 32768, MS_SYNC), 0, "writeback is never held");
	cr_assert_eq(stuckfs_held(&fs), 0);
	cr_assert_eq(stuckfs_hang(&fs, 0), 0);
	cr_assert_eq(pread(fd, buf, 6, 4096), 6);
	cr_assert_eq(memcmp(buf, "mapped", 6), 0);
	munmap(map, 32768);
	cr_assert_eq(stuckfs_drop_cache(&fs, "db-shm"), 1);
	cr_assert_eq(pread(fd, buf, 6, 4096), 6);
	cr_assert_eq(memcmp(buf, "mapped", 6), 0, "the server has the mapped bytes");
	close(fd);
	stuckfs_stop(&fs);
}

struct io {
	int fd;
	enum { DO_READ, DO_WRITE, DO_FSYNC } op;
	char buf[4096];
	off_t off;
	ssize_t ret;
	atomic_bool done;
};

static void *do_io(void *p)
{
	struct io *io = p;

	if (io->op == DO_READ)
		io->ret = pread(io->fd, io->buf, sizeof(io->buf), io->off);
	else if (io->op == DO_WRITE)
		io->ret = pwrite(io->fd, io->buf, sizeof(io->buf), io->off);
	else
		io->ret = fsync(io->fd);
	atomic_store(&io->done, true);
	return NULL;
}

/* Start io on a thread; it must end up held (and the thread blocked). */
static void start_held(pthread_t *t, struct io *io, int nheld)
{
	cr_assert_eq(pthread_create(t, NULL, do_io, io), 0);
	cr_assert(WAIT_UNTIL(stuckfs_held(&fs) == nheld, TH_PATIENCE_MS),
		  "held %d, not %d", stuckfs_held(&fs), nheld);
	th_sleep_ms(20);
	cr_assert_not(atomic_load(&io->done), "a held request returned");
}

static void finish(pthread_t t, struct io *io)
{
	cr_assert(WAIT_UNTIL(atomic_load(&io->done), TH_PATIENCE_MS));
	pthread_join(t, NULL);
}

Test(stuckfs, held_write_is_carried_out_at_release)
{
	struct io w = { .op = DO_WRITE, .off = 4096 };
	char buf[4];
	pthread_t t;

	mount_or_skip();
	w.fd = make_file("w", 'o', 16384);
	memset(w.buf, 'n', sizeof(w.buf));
	cr_assert_eq(stuckfs_hang(&fs, STUCKFS_HANG_WRITE), 0);
	start_held(&t, &w, 1);
	cr_assert_eq(stuckfs_hang(&fs, 0), 0, "stop holding new requests");
	cr_assert_eq(stuckfs_held(&fs), 1, "what is held stays held");
	cr_assert_eq(stuckfs_release(&fs), 1);
	finish(t, &w);
	cr_assert_eq(w.ret, (ssize_t)sizeof(w.buf));
	cr_assert_eq(stuckfs_drop_cache(&fs, NULL), 1);
	cr_assert_eq(pread(w.fd, buf, 4, 4096), 4);
	cr_assert_eq(memcmp(buf, "nnnn", 4), 0, "the server has the released write");
	cr_assert_eq(stuckfs_held(&fs), 0);
	close(w.fd);
	stuckfs_stop(&fs);
}

Test(stuckfs, held_fsync_is_answered_at_release)
{
	struct io f = { .op = DO_FSYNC };
	pthread_t t;

	mount_or_skip();
	f.fd = make_file("f", 'o', 4096);
	cr_assert_eq(stuckfs_hang(&fs, STUCKFS_HANG_FSYNC), 0);
	cr_assert_eq(pwrite(f.fd, "x", 1, 0), 1, "writes are not held");
	start_held(&t, &f, 1);
	cr_assert_eq(stuckfs_release(&fs), 1);
	finish(t, &f);
	cr_assert_eq(f.ret, 0);
	cr_assert_eq(stuckfs_hang(&fs, 0), 0);
	close(f.fd);
	stuckfs_stop(&fs);
}

/*
 * A held write and a held read of another page of the same file (not
 * cached): both are answered by one release, the write carried out.
 * (FUSE writes through locked pages: a read of the written page itself
 * would wait for the write in the kernel and never reach the server.)
 */
Test(stuckfs, held_write_and_read_are_answered_together)
{
	struct io w = { .op = DO_WRITE, .off = 0 }, r = { .op = DO_READ, .off = 0 };
	char path[128];
	pthread_t tw, tr;

	mount_or_skip();
	w.fd = make_file("x", 'o', 8192);
	path_of(path, sizeof(path), "x");
	r.fd = open(path, O_RDONLY);
	cr_assert_geq(r.fd, 0);
	cr_assert_eq(stuckfs_drop_cache(&fs, "x"), 1);
	memset(w.buf, 'n', sizeof(w.buf));
	cr_assert_eq(stuckfs_hang(&fs, STUCKFS_HANG_WRITE | STUCKFS_HANG_READ), 0);
	r.off = 4096;
	start_held(&tw, &w, 1);
	start_held(&tr, &r, 2);
	cr_assert_eq(stuckfs_hang(&fs, 0), 0);
	cr_assert_eq(stuckfs_release(&fs), 2);
	finish(tw, &w);
	finish(tr, &r);
	cr_assert_eq(w.ret, (ssize_t)sizeof(w.buf));
	cr_assert_eq(r.ret, (ssize_t)sizeof(r.buf));
	cr_assert_eq(r.buf[0], 'o');
	cr_assert_eq(stuckfs_drop_cache(&fs, "x"), 1);
	cr_assert_eq(pread(r.fd, r.buf, 1, 0), 1);
	cr_assert_eq(r.buf[0], 'n', "the server has the released write");
	close(w.fd);
	close(r.fd);
	stuckfs_stop(&fs);
}

Test(stuckfs, bad_hang_mask_is_refused)
{
	mount_or_skip();
	cr_assert_eq(stuckfs_hang(&fs, 0x100), -EINVAL);
	cr_assert_eq(stuckfs_hang(&fs, 0), 0);
	stuckfs_stop(&fs);
}

/* A child owns the file system, a thread of it blocked in a held write. */
static void writer_child(int report)
{
	struct io w = { .op = DO_WRITE };
	pthread_t t;
	char ok = 0;

	if (stuckfs_start(&fs) < 0) {
		(void)!write(report, &ok, 1);
		_exit(0);
	}
	w.fd = make_file("k", 'o', 4096);
	stuckfs_hang(&fs, STUCKFS_HANG_WRITE);
	pthread_create(&t, NULL, do_io, &w);
	ok = WAIT_UNTIL(stuckfs_held(&fs) == 1, TH_PATIENCE_MS) ? 1 : 2;
	(void)!write(report, &ok, 1);
	(void)!write(report, fs.dir, sizeof(fs.dir));
	pause();
	_exit(1);
}

static bool reaped(pid_t pid)
{
	return WAIT_UNTIL(waitpid(pid, NULL, WNOHANG) == pid, TH_PATIENCE_MS);
}

Test(stuckfs, killed_owner_with_held_write_is_reaped_and_unmounted)
{
	char ok = 0, dir[64] = "";
	int p[2];
	pid_t pid;

	cr_assert_eq(pipe(p), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		close(p[0]);
		writer_child(p[1]);
	}
	close(p[1]);
	cr_assert_eq(th_readable(p[0], 2 * TH_PATIENCE_MS), 1, "the child did not report");
	cr_assert_eq(read(p[0], &ok, 1), 1);
	if (ok == 0) {
		waitpid(pid, NULL, 0);
		close(p[0]);
		cr_skip_test("stuckfs tests need FUSE");
	}
	cr_assert_eq(read(p[0], dir, sizeof(dir)), (ssize_t)sizeof(dir));
	close(p[0]);
	cr_assert_eq(ok, 1, "the write was not held");
	cr_assert_eq(kill(pid, SIGKILL), 0);
	cr_assert(reaped(pid), "the killed owner was not reaped");
	cr_assert(WAIT_UNTIL(access(dir, F_OK) == -1, TH_PATIENCE_MS), "%s is left behind", dir);
}
