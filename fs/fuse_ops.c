/* fs/fuse_ops.c - FUSE low-level requests to qfs_* calls (fs/qfs.h), in
 * the manner of libfuse's example/passthrough_ll.c: each handler decodes
 * the request, calls the filesystem, and replies once.
 *
 * Not implemented on purpose: flush (writes are in the log already; without
 * the op the kernel stops sending FLUSH on every close), getlk/setlk/flock
 * (the kernel then keeps locks locally, which is right for a volume with one
 * writer), readdirplus (plain readdir and lookups), ioctl, bmap.
 */
#include "fuse_ops.h"

#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#define ATTR_TIMEOUT 1.0	/* seconds; one writer, so the kernel's copy is right */

static struct qfs *FS(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

static void reply_entry(fuse_req_t req, int e, const struct stat *st)
{
	if (e) {
		fuse_reply_err(req, -e);
		return;
	}
	struct fuse_entry_param ep = { .ino = st->st_ino, .attr = *st,
				       .attr_timeout = ATTR_TIMEOUT,
				       .entry_timeout = ATTR_TIMEOUT };
	fuse_reply_entry(req, &ep);
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	conn->max_write = 1u << 20;
	conn->max_readahead = 1u << 20;
	if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
		conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
	if (conn->capable & FUSE_CAP_POSIX_ACL)
		conn->want |= FUSE_CAP_POSIX_ACL;	/* enforced by the kernel */
	/* the kernel passes mode and umask apart: qfs_mknod applies the
	 * parent's default ACL or else the umask */
	if (conn->capable & FUSE_CAP_DONT_MASK)
		conn->want |= FUSE_CAP_DONT_MASK;
	if (conn->capable & FUSE_CAP_PARALLEL_DIROPS)
		conn->want |= FUSE_CAP_PARALLEL_DIROPS;
	conn->want &= ~(unsigned)FUSE_CAP_FLOCK_LOCKS;
	conn->want &= ~(unsigned)FUSE_CAP_POSIX_LOCKS;
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct stat st;
	int e = qfs_lookup(FS(req), parent, name, &st);
	if (e == -ENOENT) {	/* a negative entry the kernel may cache */
		struct fuse_entry_param ep = { .ino = 0, .entry_timeout = ATTR_TIMEOUT };
		fuse_reply_entry(req, &ep);
		return;
	}
	reply_entry(req, e, &st);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	qfs_forget(FS(req), ino, nlookup);
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *f)
{
	for (size_t i = 0; i < count; i++)
		qfs_forget(FS(req), f[i].ino, f[i].nlookup);
	fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)fi;
	struct stat st;
	int e = qfs_getattr(FS(req), ino, &st);
	if (e)
		fuse_reply_err(req, -e);
	else
		fuse_reply_attr(req, &st, ATTR_TIMEOUT);
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		       struct fuse_file_info *fi)
{
	(void)fi;
	static const struct { int fuse; unsigned qfs; } map[] = {
		{ FUSE_SET_ATTR_MODE, QFS_SET_MODE }, { FUSE_SET_ATTR_UID, QFS_SET_UID },
		{ FUSE_SET_ATTR_GID, QFS_SET_GID }, { FUSE_SET_ATTR_SIZE, QFS_SET_SIZE },
		{ FUSE_SET_ATTR_ATIME, QFS_SET_ATIME }, { FUSE_SET_ATTR_MTIME, QFS_SET_MTIME },
		{ FUSE_SET_ATTR_ATIME_NOW, QFS_SET_ATIME_NOW },
		{ FUSE_SET_ATTR_MTIME_NOW, QFS_SET_MTIME_NOW },
		{ FUSE_SET_ATTR_CTIME, QFS_SET_CTIME },
	};
	unsigned set = 0;
	for (size_t i = 0; i < sizeof map / sizeof *map; i++)
		if (to_set & map[i].fuse)
			set |= map[i].qfs;
	struct stat out;
	int e = qfs_setattr(FS(req), ino, attr, set, &out);
	if (e)
		fuse_reply_err(req, -e);
	else
		fuse_reply_attr(req, &out, ATTR_TIMEOUT);
}

static void op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	char buf[PATH_MAX + 1];
	int e = qfs_readlink(FS(req), ino, buf, sizeof buf);
	if (e)
		fuse_reply_err(req, -e);
	else
		fuse_reply_readlink(req, buf);
}

static void make(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev,
		 const char *target)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct stat st;
	int e = qfs_mknod(FS(req), parent, name, mode, rdev, ctx->uid, ctx->gid, ctx->umask,
			  target, &st);
	reply_entry(req, e, &st);
}

static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		     dev_t rdev)
{
	make(req, parent, name, mode, rdev, NULL);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	make(req, parent, name, S_IFDIR | (mode & 07777), 0, NULL);
}

static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	make(req, parent, name, S_IFLNK | 0777, 0, link);
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	struct stat st;
	int e = qfs_link(FS(req), ino, newparent, newname, &st);
	reply_entry(req, e, &st);
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	fuse_reply_err(req, -qfs_unlink(FS(req), parent, name));
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	fuse_reply_err(req, -qfs_rmdir(FS(req), parent, name));
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		      const char *newname, unsigned int flags)
{
	fuse_reply_err(req, -qfs_rename(FS(req), parent, name, newparent, newname, flags));
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	int e = qfs_open_inode(FS(req), ino, (fi->flags & O_TRUNC) != 0);
	if (e) {
		fuse_reply_err(req, -e);
		return;
	}
	fi->keep_cache = 1;	/* nobody else changes the file under the kernel */
	if (fuse_reply_open(req, fi) == -ENOENT)
		qfs_release(FS(req), ino);	/* the opener was interrupted */
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		      struct fuse_file_info *fi)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct stat st;
	int e = qfs_mknod(FS(req), parent, name, S_IFREG | (mode & 07777), 0, ctx->uid, ctx->gid,
			  ctx->umask, NULL, &st);
	if (e) {
		fuse_reply_err(req, -e);
		return;
	}
	e = qfs_open_inode(FS(req), st.st_ino, false);
	if (e) {
		qfs_forget(FS(req), st.st_ino, 1);	/* the lookup mknod took */
		fuse_reply_err(req, -e);
		return;
	}
	fi->keep_cache = 1;
	struct fuse_entry_param ep = { .ino = st.st_ino, .attr = st,
				       .attr_timeout = ATTR_TIMEOUT,
				       .entry_timeout = ATTR_TIMEOUT };
	if (fuse_reply_create(req, &ep, fi) == -ENOENT) {
		qfs_release(FS(req), st.st_ino);
		qfs_forget(FS(req), st.st_ino, 1);
	}
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	(void)fi;
	char *buf = malloc(size ? size : 1);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	ssize_t n = qfs_read(FS(req), ino, buf, size, off);
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else
		fuse_reply_buf(req, buf, (size_t)n);
	free(buf);
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	(void)fi;
	ssize_t n = qfs_write(FS(req), ino, buf, size, off);
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else
		fuse_reply_write(req, (size_t)n);
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)fi;
	qfs_release(FS(req), ino);
	fuse_reply_err(req, 0);
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	(void)ino;
	(void)datasync;
	(void)fi;
	fuse_reply_err(req, -qfs_sync(FS(req)));
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct qfs_dir *d = calloc(1, sizeof *d);
	if (!d) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	int e = qfs_open_inode(FS(req), ino, false);
	if (e) {
		free(d);
		fuse_reply_err(req, -e);
		return;
	}
	fi->fh = (uintptr_t)d;
	fi->cache_readdir = 0;
	if (fuse_reply_open(req, fi) == -ENOENT) {
		qfs_release(FS(req), ino);
		free(d);
	}
}

/* Items: 0 ".", 1 "..", 2 + i entry i of the snapshot taken when the
 * listing starts (offset 0); the offset stored with item j is j + 1, where
 * the next call resumes. */
static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	struct qfs_dir *d = (struct qfs_dir *)(uintptr_t)fi->fh;
	if (off == 0) {
		qfs_dir_free(d);
		int e = qfs_readdir_snapshot(FS(req), ino, d);
		if (e) {
			fuse_reply_err(req, -e);
			return;
		}
	}
	char *buf = malloc(size);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	size_t used = 0;
	for (off_t i = off; i < (off_t)d->n + 2; i++) {
		struct stat st = { 0 };
		const char *name;
		if (i < 2) {
			name = i == 0 ? "." : "..";
			st.st_ino = ino;	/* the kernel fills ".." itself */
			st.st_mode = S_IFDIR;
		} else {
			name = d->e[i - 2].name;
			st.st_ino = d->e[i - 2].ino;
			st.st_mode = d->e[i - 2].type;
		}
		size_t need = fuse_add_direntry(req, buf + used, size - used, name, &st, i + 1);
		if (need > size - used)
			break;
		used += need;
	}
	fuse_reply_buf(req, buf, used);
	free(buf);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct qfs_dir *d = (struct qfs_dir *)(uintptr_t)fi->fh;
	qfs_dir_free(d);
	free(d);
	qfs_release(FS(req), ino);
	fuse_reply_err(req, 0);
}

static void op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	op_fsync(req, ino, datasync, fi);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	(void)ino;
	struct statvfs sv;
	int e = qfs_statfs(FS(req), &sv);
	if (e)
		fuse_reply_err(req, -e);
	else
		fuse_reply_statfs(req, &sv);
}

static void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
			size_t size, int flags)
{
	fuse_reply_err(req, -qfs_setxattr(FS(req), ino, name, value, size, flags));
}

/* getxattr and listxattr: size 0 asks for the length only. name is NULL
 * for a listing. */
static void reply_xattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	char *buf = size ? malloc(size) : NULL;
	if (size && !buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	ssize_t n = name ? qfs_getxattr(FS(req), ino, name, buf, size)
			 : qfs_listxattr(FS(req), ino, buf, size);
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else if (!size)
		fuse_reply_xattr(req, (size_t)n);
	else
		fuse_reply_buf(req, buf, (size_t)n);
	free(buf);
}

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	reply_xattr(req, ino, name, size);
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	reply_xattr(req, ino, NULL, size);
}

static void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	fuse_reply_err(req, -qfs_removexattr(FS(req), ino, name));
}

static void op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len,
			 struct fuse_file_info *fi)
{
	(void)fi;
	fuse_reply_err(req, -qfs_fallocate(FS(req), ino, mode, off, len));
}

static void op_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
		     struct fuse_file_info *fi)
{
	(void)fi;
	off_t r = qfs_lseek(FS(req), ino, off, whence);
	if (r < 0)
		fuse_reply_err(req, (int)-r);
	else
		fuse_reply_lseek(req, r);
}

const struct fuse_lowlevel_ops qfs_fuse_ops = {
	.init = op_init,
	.lookup = op_lookup,
	.forget = op_forget,
	.forget_multi = op_forget_multi,
	.getattr = op_getattr,
	.setattr = op_setattr,
	.readlink = op_readlink,
	.mknod = op_mknod,
	.mkdir = op_mkdir,
	.symlink = op_symlink,
	.link = op_link,
	.unlink = op_unlink,
	.rmdir = op_rmdir,
	.rename = op_rename,
	.open = op_open,
	.create = op_create,
	.read = op_read,
	.write = op_write,
	.release = op_release,
	.fsync = op_fsync,
	.opendir = op_opendir,
	.readdir = op_readdir,
	.releasedir = op_releasedir,
	.fsyncdir = op_fsyncdir,
	.statfs = op_statfs,
	.setxattr = op_setxattr,
	.getxattr = op_getxattr,
	.listxattr = op_listxattr,
	.removexattr = op_removexattr,
	.fallocate = op_fallocate,
	.lseek = op_lseek,
};
