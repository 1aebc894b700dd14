/* fs/qfs_attr.c - attributes, extended attributes, statfs. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <linux/limits.h>
#include <sys/xattr.h>

#include "acl.h"
#include "qfs_int.h"

int qfs_getattr(struct qfs *fs, uint64_t ino, struct stat *st)
{
	struct node *n = node_find(fs, ino);
	if (!n) {
		struct inode_rec r;
		int e = rec_load(fs, ino, &r);
		if (!e)
			rec_to_stat(ino, &r, st);
		return e;
	}
	pthread_rwlock_rdlock(&n->lock);
	rec_to_stat(ino, &n->rec, st);
	pthread_rwlock_unlock(&n->lock);
	return 0;
}

/* chmod: an access ACL's owner, group-or-mask and other entries follow
 * (added to t). */
static int acl_follow_mode(struct qfs *fs, struct txn *t, uint64_t ino, mode_t mode)
{
	uint8_t *v;
	ssize_t n = xattr_load(fs, ino, ACL_XATTR_ACCESS, &v);
	if (n == -ENOENT)
		return 0;
	if (n < 0)
		return (int)n;
	if (!acl_apply_mode(v, (size_t)n, mode & 0777))	/* else not one we can rewrite */
		txn_xattr(t, ino, ACL_XATTR_ACCESS, v, (size_t)n);
	free(v);
	return 0;
}

static int64_t ts_ns(const struct timespec *t)
{
	return (int64_t)t->tv_sec * 1000000000 + t->tv_nsec;
}

int qfs_setattr(struct qfs *fs, uint64_t ino, const struct stat *in, unsigned set,
		struct stat *out)
{
	struct node *n = node_find(fs, ino);
	if (!n)
		return -ENOENT;
	pthread_rwlock_wrlock(&n->lock);
	struct inode_rec r = n->rec;
	int64_t now = qfs_now();
	int e = 0;
	bool shrink = false;
	struct txn t;	/* the size and its 'T' key, the mode and the ACL: together */
	txn_init(&t);
	if (set & QFS_SET_SIZE) {
		if (S_ISDIR(r.mode))
			e = -EISDIR;
		else if (!S_ISREG(r.mode))
			e = -EINVAL;
		else if (in->st_size < 0)
			e = -EINVAL;
		if (!e) {
			/* growing leaves a hole (nothing is stored past the size);
			 * shrinking drops the data after the new size is in the log */
			shrink = (uint64_t)in->st_size < r.size;
			if ((uint64_t)in->st_size > r.size)	/* the hole reads zeros */
				e = tail_clean(fs, n);
			if (shrink) {
				uint8_t k[16];
				size_t kl = key_trunc(k, ino);
				txn_put(&t, k, kl, "", 0);
			}
			r.mtime = now;	/* as Linux truncate(2): always */
			r.size = (uint64_t)in->st_size;
		}
	}
	if (set & QFS_SET_MODE) {
		r.mode = (r.mode & S_IFMT) | (in->st_mode & 07777);
		if (!e)
			e = acl_follow_mode(fs, &t, ino, r.mode);
	}
	if (set & QFS_SET_UID)
		r.uid = in->st_uid;
	if (set & QFS_SET_GID)
		r.gid = in->st_gid;
	if (set & QFS_SET_ATIME_NOW)
		r.atime = now;
	else if (set & QFS_SET_ATIME)
		r.atime = ts_ns(&in->st_atim);
	if (set & QFS_SET_MTIME_NOW)
		r.mtime = now;
	else if (set & QFS_SET_MTIME)
		r.mtime = ts_ns(&in->st_mtim);
	if (!e) {
		r.ctime = (set & QFS_SET_CTIME) ? ts_ns(&in->st_ctim) : now;
		e = node_commit(fs, n, &t, &r);
		/* the new size is in: a failure to drop the data past it is
		 * logged and finished at the next mount (the 'T' key), and a
		 * grow before then cuts first */
		if (!e && shrink)
			n->tail_clean = trunc_finish(fs, ino, &n->rec, r.size) == 0;
	} else {
		txn_free(&t);
	}
	if (!e)	/* r as committed, with the block count the cut left */
		rec_to_stat(ino, &n->rec, out);
	pthread_rwlock_unlock(&n->lock);
	return e;
}

/* --- extended attributes ---------------------------------------------------------- */

int qfs_setxattr(struct qfs *fs, uint64_t ino, const char *name, const void *val, size_t len,
		 int flags)
{
	uint8_t k[FS_KEY_MAX];
	size_t kl = strlen(name) > FS_XATTR_NAME_MAX ? 0 : key_xattr(k, ino, name);
	if (!kl)
		return strlen(name) ? -ERANGE : -EINVAL;
	if (len > XATTR_SIZE_MAX)
		return -E2BIG;
	struct node *n = node_find(fs, ino);
	if (!n)
		return -ENOENT;
	pthread_rwlock_wrlock(&n->lock);
	uint8_t probe;
	ssize_t have = cache_get(fs->c, k, kl, &probe, 0);
	int e = 0;
	if (have < 0 && have != -ENOENT)
		e = (int)have;
	else if ((flags & XATTR_CREATE) && have >= 0)
		e = -EEXIST;
	else if ((flags & XATTR_REPLACE) && have == -ENOENT)
		e = -ENODATA;
	mode_t perm = 0;
	bool acl = !strcmp(name, ACL_XATTR_ACCESS);
	if (!e && acl)
		e = acl_to_mode(val, len, &perm);
	if (!e) {	/* the value and the inode (ctime, the mode for an ACL) together */
		struct inode_rec r = n->rec;
		r.ctime = qfs_now();
		if (acl)	/* the mode follows the ACL */
			r.mode = (r.mode & ~(mode_t)0777) | perm;
		struct txn t;
		txn_init(&t);
		if (acl && acl_is_minimal(val, len)) {
			if (have >= 0)	/* the mode says it all: no ACL is kept */
				txn_del(&t, k, kl);
		} else {
			txn_put(&t, k, kl, val, len);
		}
		e = node_commit(fs, n, &t, &r);
	}
	pthread_rwlock_unlock(&n->lock);
	return e;
}

ssize_t qfs_getxattr(struct qfs *fs, uint64_t ino, const char *name, void *buf, size_t cap)
{
	uint8_t k[FS_KEY_MAX];
	size_t kl = strlen(name) > FS_XATTR_NAME_MAX ? 0 : key_xattr(k, ino, name);
	if (!kl)
		return -ENODATA;
	ssize_t n = cache_get(fs->c, k, kl, buf, cap);
	if (n == -ENOENT)
		return -ENODATA;
	if (n >= 0 && cap && (size_t)n > cap)
		return -ERANGE;
	return n;
}

struct xlist {
	char *buf;
	size_t cap, len;
};

static int xlist_cb(void *arg, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl)
{
	(void)v;
	(void)vl;
	struct xlist *l = arg;
	size_t nl = kl - 9;
	if (l->cap && l->len + nl + 1 <= l->cap) {
		memcpy(l->buf + l->len, k + 9, nl);
		l->buf[l->len + nl] = 0;
	}
	l->len += nl + 1;
	return 0;
}

ssize_t qfs_listxattr(struct qfs *fs, uint64_t ino, char *buf, size_t cap)
{
	uint8_t p[16];
	size_t pl = key_xattr_prefix(p, ino);
	struct xlist l = { buf, cap, 0 };
	int e = cache_scan(fs->c, p, pl, false, xlist_cb, &l);
	if (e)
		return e;
	if (cap && l.len > cap)
		return -ERANGE;
	return (ssize_t)l.len;
}

int qfs_removexattr(struct qfs *fs, uint64_t ino, const char *name)
{
	uint8_t k[FS_KEY_MAX];
	size_t kl = strlen(name) > FS_XATTR_NAME_MAX ? 0 : key_xattr(k, ino, name);
	if (!kl)
		return -ENODATA;
	struct node *n = node_find(fs, ino);
	if (!n)
		return -ENOENT;
	pthread_rwlock_wrlock(&n->lock);
	uint8_t probe;
	ssize_t have = cache_get(fs->c, k, kl, &probe, 0);	/* xattrs change under n->lock */
	int e = have == -ENOENT ? -ENODATA : have < 0 ? (int)have : 0;
	if (!e) {
		struct inode_rec r = n->rec;
		r.ctime = qfs_now();
		struct txn t;
		txn_init(&t);
		txn_del(&t, k, kl);
		e = node_commit(fs, n, &t, &r);
	}
	pthread_rwlock_unlock(&n->lock);
	return e;
}

/* --- statfs ------------------------------------------------------------------------ */

int qfs_statfs(struct qfs *fs, struct statvfs *sv)
{
	struct statvfs disk;
	if (statvfs(fs->o.cache_dir, &disk) < 0)
		return -errno;
	struct cache_stats cs;
	cache_stats(fs->c, &cs);
	memset(sv, 0, sizeof *sv);
	sv->f_bsize = FS_BLOCK;
	sv->f_frsize = 4096;
	uint64_t total = fs->o.size ? fs->o.size : (uint64_t)disk.f_blocks * disk.f_frsize;
	uint64_t used = cs.live_bytes;
	sv->f_blocks = total / 4096;
	sv->f_bfree = used >= total ? 0 : (total - used) / 4096;
	/* free space is also bounded by the disk the cache lives on, less
	 * what the log keeps free there (new data is refused below it) */
	uint64_t keep = cs.disk.reserve_held ? cs.disk.reserve : 2 * cs.disk.reserve;
	uint64_t dfree = (uint64_t)disk.f_bavail * disk.f_frsize;
	uint64_t disk_free = (dfree > keep ? dfree - keep : 0) / 4096;
	sv->f_bavail = sv->f_bfree < disk_free ? sv->f_bfree : disk_free;
	/* files: the inode records, not every key of the log (blocks, names) */
	uint64_t inodes = cache_count_keys(fs->c, K_INODE);
	sv->f_files = 1ull << 32;
	sv->f_ffree = sv->f_files > inodes ? sv->f_files - inodes : 0;
	sv->f_favail = sv->f_ffree;
	sv->f_namemax = FS_NAME_MAX;
	return 0;
}
