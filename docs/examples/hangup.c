/* SPDX-License-Identifier: MIT */
/*
 * Client hang-up stops all the request's work.
 *
 * Go: the handler's r.Context() is cancelled when the client goes away, and
 * every call that takes it returns. ringctx: rctx_with_hangup() asks the
 * kernel to watch the connection (one io_uring poll); when the peer closes,
 * the request context is done with cause -ECONNRESET, and every request
 * submitted under it (here: a slow "backend" read that would never
 * complete) is aborted in the kernel.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ringctx.h>

int main(void)
{
	int conn[2], backend[2];
	char buf[64];
	rctx_t *req;
	ssize_t n;
	int cause;

	/* conn[0]: the server's end of a client connection; conn[1]: the
	 * client. backend: a pipe nobody writes, a backend that hangs. */
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, conn) || pipe(backend))
		return perror("setup"), 1;

	req = rctx_with_hangup(rctx_background(), conn[0]);
	if (!req)
		return fprintf(stderr, "rctx_with_hangup failed\n"), 1;

	/* The client sends its request, then closes the tab. */
	if (write(conn[1], "GET /report\n", 12) != 12)
		return perror("write"), 1;
	close(conn[1]);

	/* The handler waits for the backend under the request's context:
	 * the read is aborted in the kernel when the client is gone. */
	n = rctx_read(req, backend[0], buf, sizeof(buf), -1);
	cause = rctx_cause(req);
	printf("backend read: %zd (%s); request done, cause: %s\n", n,
	       strerror((int)-n), strerror(-cause));

	rctx_release(req);
	close(conn[0]);
	close(backend[0]);
	close(backend[1]);
	return n == -ECANCELED && cause == -ECONNRESET ? 0 : 1;
}
