/* SPDX-License-Identifier: MIT */
/*
 * The stuckfs server: a libfuse3 low-level file system with one event loop
 * over the FUSE device, the owner's command socket and a signalfd, run in a
 * child process of the owner (see stuckfs.c).
 *
 * The owner's death must end every pending request, or the owner's threads
 * stay in D state forever (a thread waiting for a locked page, or for a FUSE
 * request already sent, cannot be killed). Three ways to notice it, because
 * a dying process closes its files only after its last thread has left the
 * kernel:
 *   - PR_SET_PDEATHSIG: SIGTERM when the thread that forked us exits;
 *   - EOF on the command socket: the owner's files were closed;
 *   - every OWNER_POLL_MS, SIGKILL pending on one of the owner's threads
 *     (the thread that forked us may be the one stuck in the kernel).
 * Then held requests are answered with EIO and the session is unmounted:
 * closing /dev/fuse aborts the connection (every request still queued ends
 * with an error) and the mount is lazily detached.
 */
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "stuckfs.h"
#include "stuckfs-server.h"
#include "stuckfs-fs.h"

#define OWNER_POLL_MS 100

/* ---- the owner -------------------------------------------------------------- */

/*
 * Ask for SIGTERM, read through a signalfd, when the forking thread exits.
 * Returns 0 or a negative errno.
 */
static int watch_owner(struct server *sv)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		return -errno;
	sv->sig = signalfd(-1, &set, SFD_CLOEXEC);
	if (sv->sig < 0)
		return -errno;
	if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0)
		return -errno;
	if (getppid() != sv->owner) /* died before the prctl */
		sv->orphaned = true;
	return 0;
}

/* Is SIGKILL pending on the thread whose /proc status file is path? */
static bool sigkill_pending(const char *path)
{
	unsigned long long mask = 0;
	char line[128];
	bool kill = false;
	FILE *f = fopen(path, "re");

	if (!f)
		return false;
	while (!kill && fgets(line, sizeof(line), f)) {
		if (sscanf(line, "SigPnd: %llx", &mask) == 1 ||
		    sscanf(line, "ShdPnd: %llx", &mask) == 1)
			kill = mask & (1ULL << (SIGKILL - 1));
	}
	fclose(f);
	return kill;
}

/* Is the owner gone, or is one of its threads being killed? */
static bool owner_dying(pid_t owner)
{
	char path[64];
	struct dirent *d;
	bool dying = false;
	DIR *dir;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)owner);
	dir = opendir(path);
	if (!dir)
		return true;
	while (!dying && (d = readdir(dir))) {
		if (d->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%.16s/status", (int)owner,
			 d->d_name);
		dying = sigkill_pending(path);
	}
	closedir(dir);
	return dying;
}

static void reply_int(struct server *sv, int v)
{
	send(sv->cmd, &v, sizeof(v), MSG_NOSIGNAL);
}

/* Run one command from the owner; EOF or an error means the owner is gone. */
static void command(struct server *sv)
{
	char msg[STUCKFS_CMD_MAX];
	unsigned arg = 0;
	ssize_t n = recv(sv->cmd, msg, sizeof(msg) - 1, MSG_DONTWAIT);

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		sv->orphaned = true;
		return;
	}
	msg[n] = '\0';
	if (n >= 1 + (ssize_t)sizeof(arg))
		memcpy(&arg, msg + 1, sizeof(arg));
	switch (msg[0]) {
	case STUCKFS_CMD_RELEASE:
		reply_int(sv, stuckfs_answer_held(sv, false));
		break;
	case STUCKFS_CMD_READS:
		reply_int(sv, sv->reads_seen);
		break;
	case STUCKFS_CMD_HANG:
		sv->hang = arg & (STUCKFS_HANG_READ | STUCKFS_HANG_WRITE | STUCKFS_HANG_FSYNC);
		reply_int(sv, arg == sv->hang ? 0 : -EINVAL);
		break;
	case STUCKFS_CMD_HELD:
		reply_int(sv, sv->nheld);
		break;
	case STUCKFS_CMD_DROP:
		reply_int(sv, stuckfs_drop_cached(sv, msg + 1));
		break;
	case STUCKFS_CMD_STOP:
		sv->stop = true;
		break;
	default:
		reply_int(sv, -EINVAL);
	}
}

/* ---- the loop ----------------------------------------------------------------- */

/* Process one FUSE request. Returns false when the session has ended. */
static bool fuse_request(struct server *sv, struct fuse_buf *buf)
{
	int ret = fuse_session_receive_buf(sv->se, buf);

	if (ret == -EINTR || ret == -EAGAIN)
		return true;
	if (ret <= 0)
		return false;
	fuse_session_process_buf(sv->se, buf);
	return !fuse_session_exited(sv->se);
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void serve(struct server *sv)
{
	struct fuse_buf buf = { 0 };
	struct pollfd p[3] = {
		{ .fd = fuse_session_fd(sv->se), .events = POLLIN },
		{ .fd = sv->cmd, .events = POLLIN },
		{ .fd = sv->sig, .events = POLLIN },
	};
	int64_t next_check = 0;

	while (!sv->stop && !sv->orphaned) {
		for (int i = 0; i < 3; i++)
			p[i].revents = 0;
		if (poll(p, 3, OWNER_POLL_MS) < 0 && errno != EINTR)
			break;
		if (p[2].revents) {
			sv->orphaned = true;
		} else if (now_ms() >= next_check) {
			sv->orphaned = owner_dying(sv->owner);
			next_check = now_ms() + OWNER_POLL_MS;
		}
		if (!sv->orphaned && p[1].revents)
			command(sv);
		if (!sv->stop && !sv->orphaned && p[0].revents && !fuse_request(sv, &buf))
			break;
	}
	free(buf.mem);
}

/* Create and mount the session. Returns 0 or a negative errno and why. */
static int mount_fs(struct server *sv, const char *dir, char *why, size_t len)
{
	char *argv[] = { (char *)"stuckfs", NULL };
	struct fuse_args args = FUSE_ARGS_INIT(1, argv);

	sv->se = fuse_session_new(&args, &stuckfs_ops, sizeof(stuckfs_ops), sv);
	fuse_opt_free_args(&args);
	if (!sv->se) {
		snprintf(why, len, "fuse_session_new failed");
		return -ENOMEM;
	}
	if (fuse_session_mount(sv->se, dir) != 0) {
		snprintf(why, len, "cannot mount FUSE at %s (not root, or no FUSE in this kernel/sandbox)",
			 dir);
		fuse_session_destroy(sv->se);
		sv->se = NULL;
		return -EPERM;
	}
	return 0;
}

int stuckfs_serve(const char *dir, int cmd, pid_t owner)
{
	struct server sv = { .owner = owner, .cmd = cmd, .sig = -1 };
	struct stuckfs_hello hello;
	int ret;

	memset(&hello, 0, sizeof(hello));
	ret = watch_owner(&sv);
	if (ret < 0)
		snprintf(hello.why, sizeof(hello.why), "stuckfs server: %s", strerror(-ret));
	else
		ret = mount_fs(&sv, dir, hello.why, sizeof(hello.why));
	hello.err = ret;
	send(cmd, &hello, sizeof(hello), MSG_NOSIGNAL);
	if (ret < 0)
		goto out;

	serve(&sv);
	stuckfs_answer_held(&sv, sv.orphaned || !sv.stop);
	fuse_session_unmount(sv.se);
	fuse_session_destroy(sv.se);
	rmdir(dir);
	stuckfs_free_nodes(&sv);
	free(sv.held);
	if (sv.stop)
		reply_int(&sv, 0);
out:
	if (sv.sig >= 0)
		close(sv.sig);
	close(cmd);
	return ret < 0;
}
