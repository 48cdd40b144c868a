/* SPDX-License-Identifier: MIT */
/*
 * The stuckfs file system (libfuse3 low level), run by stuckfs-server.c:
 * a root directory with the fixed files "stuck" (reads held until released)
 * and "data" (reads answer at once), and any number of writable files kept
 * in memory: create, open, read, write, fsync, truncate, unlink, rename,
 * readdir. While the owner hangs a kind of request (stuckfs_hang), reads,
 * writes (from write(2); never the writeback of a shared mapping) or fsyncs
 * of the writable files are held, and carried out in arrival order when
 * released. POSIX locks are left to the kernel (no getlk/setlk).
 *
 * Writable files are opened with keep_cache (the kernel is their only
 * client, so its page cache stays right) and noflush (close never waits for
 * a held write); stuckfs_drop_cached() empties the cache on demand.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "stuckfs.h"
#include "stuckfs-fs.h"

#define INO_ROOT 1
#define INO_STUCK 2
#define INO_DATA 3
#define INO_FIRST_RW 16
#define ATTR_TIMEOUT 3600.0
#define RW_TIMEOUT 1.0

static struct server *server_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

static struct node *node_by_ino(struct server *sv, fuse_ino_t ino)
{
	for (struct node *n = sv->nodes; n; n = n->next)
		if (n->ino == ino)
			return n;
	return NULL;
}

static struct node *node_by_name(struct server *sv, const char *name)
{
	for (struct node *n = sv->nodes; n; n = n->next)
		if (n->name && !strcmp(n->name, name))
			return n;
	return NULL;
}

static void node_free(struct server *sv, struct node *node)
{
	for (struct node **p = &sv->nodes; *p; p = &(*p)->next) {
		if (*p == node) {
			*p = node->next;
			break;
		}
	}
	free(node->name);
	free(node->data);
	free(node);
}

void stuckfs_free_nodes(struct server *sv)
{
	while (sv->nodes)
		node_free(sv, sv->nodes);
}

/* Grow or shrink node to size bytes (new bytes are zero). */
static int node_resize(struct node *node, size_t size)
{
	if (size > node->cap) {
		size_t cap = node->cap ? node->cap : 4096;
		char *data;

		while (cap < size)
			cap *= 2;
		data = realloc(node->data, cap);
		if (!data)
			return -ENOMEM;
		node->data = data;
		node->cap = cap;
	}
	if (size > node->size)
		memset(node->data + node->size, 0, size - node->size);
	node->size = size;
	return 0;
}

static int node_write(struct node *node, const char *buf, size_t size, off_t off)
{
	if ((size_t)off + size > node->size) {
		int ret = node_resize(node, (size_t)off + size);

		if (ret < 0)
			return ret;
	}
	memcpy(node->data + off, buf, size);
	return (int)size;
}

static void node_attr(const struct node *node, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = node->ino;
	st->st_mode = S_IFREG | 0644;
	st->st_nlink = node->name ? 1 : 0;
	st->st_size = node->size;
	st->st_blocks = (node->size + 511) / 512;
	st->st_blksize = 4096;
}

/* The attributes of ino; false if there is no such file. */
static bool attr_of(struct server *sv, fuse_ino_t ino, struct stat *st, double *timeout)
{
	struct node *node;

	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	*timeout = ATTR_TIMEOUT;
	if (ino == INO_ROOT) {
		st->st_mode = S_IFDIR | 0777;
		st->st_nlink = 2;
	} else if (ino == INO_STUCK || ino == INO_DATA) {
		st->st_mode = S_IFREG | 0444;
		st->st_nlink = 1;
		st->st_size = STUCKFS_SIZE;
	} else if ((node = node_by_ino(sv, ino))) {
		node_attr(node, st);
		*timeout = RW_TIMEOUT;
	} else {
		return false;
	}
	return true;
}

static void reply_entry(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct server *sv = server_of(req);
	struct fuse_entry_param e;
	struct node *node = node_by_ino(sv, ino);

	memset(&e, 0, sizeof(e));
	e.ino = ino;
	attr_of(sv, ino, &e.attr, &e.attr_timeout);
	e.entry_timeout = e.attr_timeout;
	if (node)
		node->nlookup++;
	if (fi)
		fuse_reply_create(req, &e, fi);
	else
		fuse_reply_entry(req, &e);
}

static void fs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct node *node;

	if (parent != INO_ROOT)
		fuse_reply_err(req, ENOENT);
	else if (!strcmp(name, "stuck"))
		reply_entry(req, INO_STUCK, NULL);
	else if (!strcmp(name, "data"))
		reply_entry(req, INO_DATA, NULL);
	else if ((node = node_by_name(server_of(req), name)))
		reply_entry(req, node->ino, NULL);
	else
		fuse_reply_err(req, ENOENT);
}

static void forget_one(struct server *sv, fuse_ino_t ino, uint64_t nlookup)
{
	struct node *node = node_by_ino(sv, ino);

	if (!node)
		return;
	node->nlookup -= nlookup < node->nlookup ? nlookup : node->nlookup;
	if (!node->nlookup && !node->name)
		node_free(sv, node);
}

static void fs_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	forget_one(server_of(req), ino, nlookup);
	fuse_reply_none(req);
}

static void fs_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *f)
{
	for (size_t i = 0; i < count; i++)
		forget_one(server_of(req), f[i].ino, f[i].nlookup);
	fuse_reply_none(req);
}

static void fs_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct stat st;
	double timeout;

	(void)fi;
	if (!attr_of(server_of(req), ino, &st, &timeout))
		fuse_reply_err(req, ENOENT);
	else
		fuse_reply_attr(req, &st, timeout);
}

/* Only a writable file's size can change; the rest is accepted and ignored. */
static void fs_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		       struct fuse_file_info *fi)
{
	struct node *node = node_by_ino(server_of(req), ino);
	int ret;

	if (!node && (to_set & FUSE_SET_ATTR_SIZE)) {
		fuse_reply_err(req, ino == INO_ROOT ? EISDIR : EPERM);
		return;
	}
	if ((to_set & FUSE_SET_ATTR_SIZE) && (ret = node_resize(node, attr->st_size)) < 0) {
		fuse_reply_err(req, -ret);
		return;
	}
	fs_getattr(req, ino, fi);
}

static void fs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct node *node = node_by_ino(server_of(req), ino);

	if (!node && (fi->flags & O_ACCMODE) != O_RDONLY) {
		fuse_reply_err(req, EACCES);
		return;
	}
	if (node) {
		fi->keep_cache = 1;
		fi->noflush = 1;
		if ((fi->flags & O_TRUNC) && node_resize(node, 0) < 0) {
			fuse_reply_err(req, ENOMEM);
			return;
		}
	}
	fuse_reply_open(req, fi);
}

static void fs_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		      struct fuse_file_info *fi)
{
	struct server *sv = server_of(req);
	struct node *node;

	(void)mode;
	if (parent != INO_ROOT || !strcmp(name, "stuck") || !strcmp(name, "data")) {
		fuse_reply_err(req, parent != INO_ROOT ? ENOENT : EEXIST);
		return;
	}
	node = node_by_name(sv, name);
	if (node && (fi->flags & O_EXCL)) {
		fuse_reply_err(req, EEXIST);
		return;
	}
	if (!node) {
		node = calloc(1, sizeof(*node));
		if (!node || !(node->name = strdup(name))) {
			free(node);
			fuse_reply_err(req, ENOMEM);
			return;
		}
		node->ino = sv->next_ino++;
		node->next = sv->nodes;
		sv->nodes = node;
	} else if (fi->flags & O_TRUNC) {
		node_resize(node, 0);
	}
	fi->keep_cache = 1;
	fi->noflush = 1;
	reply_entry(req, node->ino, fi);
}

/* Answer a read with size bytes of c. */
static void reply_bytes(fuse_req_t req, size_t size, char c)
{
	char *buf = malloc(size ? size : 1);

	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	memset(buf, c, size);
	fuse_reply_buf(req, buf, size);
	free(buf);
}

static void reply_read(struct server *sv, fuse_req_t req, fuse_ino_t ino, size_t size,
		       off_t off)
{
	struct node *node = node_by_ino(sv, ino);

	if (!node) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	if ((size_t)off >= node->size)
		size = 0;
	else if ((size_t)off + size > node->size)
		size = node->size - off;
	fuse_reply_buf(req, size ? node->data + off : NULL, size);
}

/* Queue req as held; false (and EIO answered) when the queue is full. */
static bool hold(struct server *sv, const struct held *h)
{
	bool stuck = h->kind == HELD_STUCK_READ;

	if (sv->nheld == STUCKFS_MAX_HELD || (stuck && sv->stuck_held == STUCKFS_MAX_PENDING)) {
		fuse_reply_err(h->req, EIO);
		return false;
	}
	if (!sv->held && !(sv->held = calloc(STUCKFS_MAX_HELD, sizeof(*sv->held)))) {
		fuse_reply_err(h->req, ENOMEM);
		return false;
	}
	sv->held[sv->nheld++] = *h;
	sv->stuck_held += stuck;
	return true;
}

static void fs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct server *sv = server_of(req);
	struct held h = { .req = req, .ino = ino, .size = size, .off = off };

	(void)fi;
	if (ino == INO_DATA) {
		reply_bytes(req, size, STUCKFS_DATA_BYTE);
	} else if (ino == INO_STUCK) {
		sv->reads_seen++;
		h.kind = HELD_STUCK_READ;
		hold(sv, &h);
	} else if (sv->hang & STUCKFS_HANG_READ) {
		h.kind = HELD_READ;
		hold(sv, &h);
	} else {
		reply_read(sv, req, ino, size, off);
	}
}

static void fs_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size,
		     off_t off, struct fuse_file_info *fi)
{
	struct server *sv = server_of(req);
	struct node *node = node_by_ino(sv, ino);
	struct held h = { .req = req, .kind = HELD_WRITE, .ino = ino, .size = size, .off = off };
	int ret;

	if (!node) {
		fuse_reply_err(req, EBADF);
		return;
	}
	if ((sv->hang & STUCKFS_HANG_WRITE) && !fi->writepage) {
		h.data = malloc(size ? size : 1);
		if (!h.data) {
			fuse_reply_err(req, ENOMEM);
			return;
		}
		memcpy(h.data, buf, size);
		if (!hold(sv, &h))
			free(h.data);
		return;
	}
	ret = node_write(node, buf, size, off);
	if (ret < 0)
		fuse_reply_err(req, -ret);
	else
		fuse_reply_write(req, ret);
}

static void fs_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	struct server *sv = server_of(req);
	struct held h = { .req = req, .kind = HELD_FSYNC, .ino = ino };

	(void)datasync;
	(void)fi;
	if (node_by_ino(sv, ino) && (sv->hang & STUCKFS_HANG_FSYNC))
		hold(sv, &h);
	else
		fuse_reply_err(req, 0);
}

static void fs_ok(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	(void)fi;
	fuse_reply_err(req, 0);
}

static void fs_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync,
			struct fuse_file_info *fi)
{
	(void)datasync;
	fs_ok(req, ino, fi);
}

static void fs_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct server *sv = server_of(req);
	struct node *node = parent == INO_ROOT ? node_by_name(sv, name) : NULL;

	if (!node) {
		fuse_reply_err(req, parent == INO_ROOT && (!strcmp(name, "stuck") ||
							   !strcmp(name, "data")) ? EPERM : ENOENT);
		return;
	}
	free(node->name);
	node->name = NULL;
	if (!node->nlookup)
		node_free(sv, node);
	fuse_reply_err(req, 0);
}

static void fs_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
		      fuse_ino_t newparent, const char *newname, unsigned int flags)
{
	struct server *sv = server_of(req);
	struct node *node = parent == INO_ROOT ? node_by_name(sv, name) : NULL;
	struct node *old = newparent == INO_ROOT ? node_by_name(sv, newname) : NULL;
	char *copy;

	if (!node || newparent != INO_ROOT) {
		fuse_reply_err(req, node ? EXDEV : ENOENT);
		return;
	}
	if (flags || !strcmp(newname, "stuck") || !strcmp(newname, "data")) {
		fuse_reply_err(req, flags ? EINVAL : EPERM);
		return;
	}
	if (!(copy = strdup(newname))) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	if (old && old != node) {
		free(old->name);
		old->name = NULL;
		if (!old->nlookup)
			node_free(sv, old);
	}
	free(node->name);
	node->name = copy;
	fuse_reply_err(req, 0);
}

static void fs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	struct server *sv = server_of(req);
	char *buf = calloc(1, size);
	struct stat st = { 0 };
	size_t used = 0;
	off_t i = 0;

	(void)fi;
	if (ino != INO_ROOT || !buf) {
		free(buf);
		fuse_reply_err(req, ino != INO_ROOT ? ENOTDIR : ENOMEM);
		return;
	}
	const char *fixed[] = { ".", "..", "stuck", "data" };
	const fuse_ino_t fixed_ino[] = { INO_ROOT, INO_ROOT, INO_STUCK, INO_DATA };
	struct node *n = sv->nodes;

	for (;; i++) {
		const char *name;
		size_t len;

		if (i < 4) {
			name = fixed[i];
			st.st_ino = fixed_ino[i];
		} else {
			while (n && !n->name)
				n = n->next;
			if (!n)
				break;
			name = n->name;
			st.st_ino = n->ino;
			n = n->next;
		}
		if (i < off)
			continue;
		len = fuse_add_direntry(req, buf + used, size - used, name, &st, i + 1);
		if (len > size - used)
			break;
		used += len;
	}
	fuse_reply_buf(req, buf, used);
	free(buf);
}

static void fs_init(void *userdata, struct fuse_conn_info *conn)
{
	struct server *sv = userdata;

	sv->next_ino = INO_FIRST_RW;
	/* Our mtimes never move: no invalidation from attributes. */
	conn->want &= ~FUSE_CAP_AUTO_INVAL_DATA;
}

const struct fuse_lowlevel_ops stuckfs_ops = {
	.init = fs_init,
	.lookup = fs_lookup,
	.forget = fs_forget,
	.forget_multi = fs_forget_multi,
	.getattr = fs_getattr,
	.setattr = fs_setattr,
	.open = fs_open,
	.create = fs_create,
	.read = fs_read,
	.write = fs_write,
	.fsync = fs_fsync,
	.flush = fs_ok,
	.release = fs_ok,
	.fsyncdir = fs_fsyncdir,
	.unlink = fs_unlink,
	.rename = fs_rename,
	.readdir = fs_readdir,
};

/* Carry out one held request (or fail it with EIO) and answer it. */
static void answer_one(struct server *sv, struct held *h, bool err)
{
	struct node *node;
	int ret;

	if (err) {
		fuse_reply_err(h->req, EIO);
	} else if (h->kind == HELD_STUCK_READ) {
		reply_bytes(h->req, h->size, STUCKFS_LATE_BYTE);
	} else if (h->kind == HELD_READ) {
		reply_read(sv, h->req, h->ino, h->size, h->off);
	} else if (h->kind == HELD_FSYNC) {
		fuse_reply_err(h->req, 0);
	} else if (!(node = node_by_ino(sv, h->ino))) {
		fuse_reply_err(h->req, EBADF);
	} else if ((ret = node_write(node, h->data, h->size, h->off)) < 0) {
		fuse_reply_err(h->req, -ret);
	} else {
		fuse_reply_write(h->req, ret);
	}
	free(h->data);
}

int stuckfs_answer_held(struct server *sv, bool err)
{
	int n = sv->nheld;

	for (int i = 0; i < n; i++)
		answer_one(sv, &sv->held[i], err);
	sv->nheld = 0;
	sv->stuck_held = 0;
	return n;
}

int stuckfs_drop_cached(struct server *sv, const char *name)
{
	int n = 0;

	if (sv->nheld)
		return -EBUSY;
	for (struct node *node = sv->nodes; node; node = node->next) {
		if (!node->name || (name[0] && strcmp(name, node->name)))
			continue;
		if (fuse_lowlevel_notify_inval_inode(sv->se, node->ino, 0, 0) == 0)
			n++;
	}
	return n;
}
