/* SPDX-License-Identifier: MIT */
/*
 * stuckfs, the owner's side: fork the server (stuckfs-server.c), wait for
 * its mount, and send it commands over a SOCK_SEQPACKET socketpair. Every
 * wait is bounded, generously: the server may run under valgrind.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "stuckfs.h"
#include "stuckfs-server.h"

#define REPLY_MS 30000	/* for the mount, and for each command */
#define EXIT_MS 20000	/* for the server to exit once told to stop */

static int fail(struct stuckfs *fs, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(fs->why, sizeof(fs->why), fmt, ap);
	va_end(ap);
	return err;
}

/* Receive one message of at most len bytes. Returns its length or -errno. */
static ssize_t recv_msg(int fd, void *msg, size_t len, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	ssize_t n;
	int ret;

	do {
		ret = poll(&p, 1, ms);
	} while (ret < 0 && errno == EINTR);
	if (ret < 0)
		return -errno;
	if (ret == 0)
		return -ETIMEDOUT;
	n = recv(fd, msg, len, 0);
	if (n < 0)
		return -errno;
	return n ? n : -EPIPE;
}

/*
 * Send one command with its argument (len bytes at arg) and return the
 * server's answer, or a negative errno.
 */
static int command_arg(struct stuckfs *fs, char op, const void *arg, size_t len)
{
	char msg[STUCKFS_CMD_MAX];
	ssize_t n;
	int reply;

	if (fs->cmd < 0)
		return -ENOTCONN;
	if (len >= sizeof(msg) - 1)
		return -ENAMETOOLONG;
	msg[0] = op;
	if (len)
		memcpy(msg + 1, arg, len);
	if (send(fs->cmd, msg, 1 + len, MSG_NOSIGNAL) != (ssize_t)(1 + len))
		return -errno;
	n = recv_msg(fs->cmd, &reply, sizeof(reply), REPLY_MS);
	if (n < 0)
		return n;
	return n == sizeof(reply) ? reply : -EPROTO;
}

static int command(struct stuckfs *fs, char op)
{
	return command_arg(fs, op, NULL, 0);
}

int stuckfs_hang(struct stuckfs *fs, unsigned ops)
{
	return command_arg(fs, STUCKFS_CMD_HANG, &ops, sizeof(ops));
}

int stuckfs_held(struct stuckfs *fs)
{
	return command(fs, STUCKFS_CMD_HELD);
}

int stuckfs_drop_cache(struct stuckfs *fs, const char *name)
{
	if (!name)
		name = "";
	return command_arg(fs, STUCKFS_CMD_DROP, name, strlen(name));
}

int stuckfs_release(struct stuckfs *fs)
{
	return command(fs, STUCKFS_CMD_RELEASE);
}

int stuckfs_reads_seen(struct stuckfs *fs)
{
	return command(fs, STUCKFS_CMD_READS);
}

/* Wait up to ms for the server to exit; kill it if it does not. */
static void reap(pid_t pid, int ms)
{
	for (int waited = 0; waited < ms; waited += 10) {
		pid_t r = waitpid(pid, NULL, WNOHANG);

		if (r == pid || (r < 0 && errno != EINTR))
			return;
		usleep(10000);
	}
	kill(pid, SIGKILL);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
}

void stuckfs_stop(struct stuckfs *fs)
{
	if (fs->cmd >= 0) {
		command(fs, STUCKFS_CMD_STOP);
		close(fs->cmd);
		fs->cmd = -1;
	}
	if (fs->pid > 0) {
		reap(fs->pid, EXIT_MS);
		fs->pid = 0;
		/* The server unmounted, unless it was killed. */
		umount2(fs->dir, MNT_DETACH);
		rmdir(fs->dir);
	}
}

/*
 * In the server: keep only stdio and the command socket, which becomes fd 3,
 * so that the server holds none of its owner's files (a test runner waiting
 * for its pipes to close, an fd on the stuck file).
 */
static int keep_only(int cmd)
{
	if (cmd != 3 && dup3(cmd, 3, O_CLOEXEC) < 0)
		_exit(1);
	close_range(4, ~0U, 0);
	return 3;
}

/* Fork the server for fs->dir; returns 0 or a negative errno. */
static int spawn(struct stuckfs *fs)
{
	pid_t owner = getpid();
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return fail(fs, -errno, "socketpair: %s", strerror(errno));
	fs->pid = fork();
	if (fs->pid < 0) {
		fs->pid = 0;
		close(sv[0]);
		close(sv[1]);
		return fail(fs, -errno, "fork: %s", strerror(errno));
	}
	if (fs->pid == 0) {
		_exit(stuckfs_serve(fs->dir, keep_only(sv[1]), owner));
	}
	close(sv[1]);
	fs->cmd = sv[0];
	return 0;
}

int stuckfs_start(struct stuckfs *fs)
{
	struct stuckfs_hello hello;
	ssize_t n;
	int ret;

	memset(fs, 0, sizeof(*fs));
	fs->cmd = -1;
	if (access("/dev/fuse", R_OK | W_OK) < 0)
		return fail(fs, -ENODEV, "/dev/fuse not usable: %s", strerror(errno));
	strcpy(fs->dir, "/tmp/rctx-stuckfs-XXXXXX");
	if (!mkdtemp(fs->dir))
		return fail(fs, -errno, "mkdtemp: %s", strerror(errno));
	snprintf(fs->stuck_path, sizeof(fs->stuck_path), "%s/stuck", fs->dir);
	snprintf(fs->data_path, sizeof(fs->data_path), "%s/data", fs->dir);
	ret = spawn(fs);
	if (ret < 0)
		goto out_rmdir;
	n = recv_msg(fs->cmd, &hello, sizeof(hello), REPLY_MS);
	if (n == sizeof(hello) && hello.err == 0)
		return 0;
	if (n == sizeof(hello)) {
		hello.why[sizeof(hello.why) - 1] = '\0';
		ret = fail(fs, hello.err, "%s", hello.why);
	} else {
		ret = fail(fs, n < 0 ? (int)n : -EPROTO, "stuckfs server did not start: %s",
			   strerror(n < 0 ? (int)-n : EPROTO));
	}
	stuckfs_stop(fs);
	return ret;
out_rmdir:
	rmdir(fs->dir);
	return ret;
}
