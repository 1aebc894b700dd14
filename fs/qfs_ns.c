/* fs/qfs_ns.c - the namespace: lookup, create, link, unlink, rename,
 * readdir. Every change here holds fs->ns.
 *
 * Order of records in one change (the log keeps a prefix on a crash): the
 * new inode, then the new entry, then the old entry's removal, then the
 * parents. A crash between two of them can leave an unreachable inode or,
 * for rename, both names; never an entry to a missing inode.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acl.h"
#include "qfs_int.h"
#include "../common/endian.h"
#include "../common/qlog.h"

/* --- entries -------------------------------------------------------------------- */

static int dent_get(struct qfs *fs, uint64_t parent, const char *name, uint64_t *ino,
		    mode_t *type)
{
	uint8_t k[FS_KEY_MAX], v[FS_DENT_SIZE + FS_NAME_MAX];
	size_t nl = strlen(name);
	if (nl > FS_NAME_MAX)
		return -ENAMETOOLONG;
	size_t kl = key_dent(k, parent, name);
	if (!kl)
		return -ENAMETOOLONG;
	ssize_t n = cache_get(fs->c, k, kl, v, sizeof v);
	if (n < 0)
		return (int)n;
	bool long_name = dent_name_in_value(nl);
	if ((size_t)n != FS_DENT_SIZE + (long_name ? nl : 0))
		return long_name ? -ENOENT : -EIO;
	if (long_name && memcmp(v + FS_DENT_SIZE, name, nl))
		return -ENOENT;	/* another name with the same hash */
	*ino = get_le64(v);
	*type = (mode_t)v[8] << 12;
	return 0;
}

static int dent_put(struct qfs *fs, uint64_t parent, const char *name, uint64_t ino,
		    mode_t type)
{
	uint8_t k[FS_KEY_MAX], v[FS_DENT_SIZE + FS_NAME_MAX];
	size_t kl = key_dent(k, parent, name), nl = strlen(name);
	if (!kl)
		return -ENAMETOOLONG;
	put_le64(v, ino);
	v[8] = (uint8_t)((type & S_IFMT) >> 12);
	size_t vl = FS_DENT_SIZE;
	if (dent_name_in_value(nl)) {
		memcpy(v + FS_DENT_SIZE, name, nl);
		vl += nl;
	}
	return cache_put(fs->c, k, kl, v, vl);
}

static int dent_del(struct qfs *fs, uint64_t parent, const char *name)
{
	uint8_t k[FS_KEY_MAX];
	size_t kl = key_dent(k, parent, name);
	return kl ? cache_del(fs->c, k, kl) : -ENAMETOOLONG;
}

static int stop_at_first(void *arg, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl)
{
	(void)arg;
	(void)k;
	(void)kl;
	(void)v;
	(void)vl;
	return 1;
}

/* 0 when directory ino has no entries, -ENOTEMPTY otherwise. */
static int dir_empty(struct qfs *fs, uint64_t ino)
{
	uint8_t p[16];
	size_t pl = key_dent_prefix(p, ino);
	int r = cache_scan(fs->c, p, pl, false, stop_at_first, NULL);
	return r == 1 ? -ENOTEMPTY : r;
}

/* --- changing an inode record -------------------------------------------------- */

/* A record being changed: through the node when the kernel holds the inode
 * (its lock taken), else straight from the log (safe under fs->ns: nobody
 * else can reach an inode the kernel does not hold). */
struct rref {
	struct qfs *fs;
	uint64_t ino;
	struct node *n;
	struct inode_rec r;
};

static int rref_begin(struct qfs *fs, uint64_t ino, struct rref *rr)
{
	rr->fs = fs;
	rr->ino = ino;
	rr->n = node_find(fs, ino);
	if (rr->n) {
		pthread_rwlock_wrlock(&rr->n->lock);
		rr->r = rr->n->rec;
		return 0;
	}
	return rec_load(fs, ino, &rr->r);
}

static int rref_commit(struct rref *rr)
{
	if (!rr->n)
		return rec_store(rr->fs, rr->ino, &rr->r);
	int e = node_store(rr->fs, rr->n, &rr->r);
	pthread_rwlock_unlock(&rr->n->lock);
	return e;
}

static void rref_abort(struct rref *rr)
{
	if (rr->n)
		pthread_rwlock_unlock(&rr->n->lock);
}

/* Parent directory changed: mtime and ctime now, nlink by delta. */
static int dir_touch(struct qfs *fs, uint64_t dir, int nlink_delta, int64_t now)
{
	struct rref rr;
	int e = rref_begin(fs, dir, &rr);
	if (e)
		return e;
	rr.r.mtime = rr.r.ctime = now;
	rr.r.nlink = (uint32_t)((int64_t)rr.r.nlink + nlink_delta);
	return rref_commit(&rr);
}

/* One link of ino is gone: drop nlink (to 0 for a directory); an inode
 * with no link left is purged, or marked orphan while the kernel holds it. */
static int drop_link(struct qfs *fs, uint64_t ino, int64_t now)
{
	struct rref rr;
	int e = rref_begin(fs, ino, &rr);
	if (e)
		return e;
	if (S_ISDIR(rr.r.mode) || rr.r.nlink <= 1)
		rr.r.nlink = 0;
	else
		rr.r.nlink--;
	rr.r.ctime = now;
	bool gone = rr.r.nlink == 0, held = rr.n != NULL;
	if (gone && !held) {
		rref_abort(&rr);
		return inode_purge(fs, ino);
	}
	if (gone) {
		uint8_t k[16];
		size_t kl = key_orphan(k, ino);
		e = cache_put(fs->c, k, kl, "", 0);
		if (e) {
			rref_abort(&rr);
			return e;
		}
	}
	return rref_commit(&rr);
}

static int load_dir(struct qfs *fs, uint64_t ino, struct inode_rec *r);

/* 0 when parent is a live directory (its record in *pr) without an entry
 * called name; -EEXIST, -ENOTDIR, -ENOENT or an I/O error otherwise. */
static int name_free(struct qfs *fs, uint64_t parent, const char *name, struct inode_rec *pr)
{
	uint64_t other;
	mode_t ot;
	int e = load_dir(fs, parent, pr);
	if (!e) {
		e = dent_get(fs, parent, name, &other, &ot);
		e = e == 0 ? -EEXIST : e == -ENOENT ? 0 : e;
	}
	return e;
}

static int load_dir(struct qfs *fs, uint64_t ino, struct inode_rec *r)
{
	struct node *n = node_find(fs, ino);
	if (n) {
		pthread_rwlock_rdlock(&n->lock);
		*r = n->rec;
		pthread_rwlock_unlock(&n->lock);
	} else {
		int e = rec_load(fs, ino, r);
		if (e)
			return e;
	}
	if (!S_ISDIR(r->mode))
		return -ENOTDIR;
	return r->nlink ? 0 : -ENOENT;	/* removed while the kernel held it */
}

/* --- operations ---------------------------------------------------------------- */

int qfs_lookup(struct qfs *fs, uint64_t parent, const char *name, struct stat *st)
{
	uint64_t ino;
	mode_t type;
	int e = dent_get(fs, parent, name, &ino, &type);
	if (e)
		return e;
	struct node *n;
	e = node_get(fs, ino, 1, 0, &n);
	if (e)
		return e == -ENOENT ? -EIO : e;	/* an entry to a missing inode */
	pthread_rwlock_rdlock(&n->lock);
	rec_to_stat(ino, &n->rec, st);
	pthread_rwlock_unlock(&n->lock);
	return 0;
}

/* posix_acl_create for a new inode ino in parent: stores the ACLs it
 * inherits and sets the permission bits of r->mode. fs->ns held. */
static int acl_inherit(struct qfs *fs, uint64_t parent, uint64_t ino, struct inode_rec *r,
		       mode_t umask)
{
	if (S_ISLNK(r->mode))
		return 0;	/* always 0777, never an ACL */
	uint8_t *dflt;
	ssize_t n = xattr_load(fs, parent, ACL_XATTR_DEFAULT, &dflt);
	if (n == -ENOENT || n == 4) {	/* none (a bare header is none, as Linux reads it) */
		free(dflt);
		r->mode &= ~(umask & 0777);
		return 0;
	}
	if (n < 0)
		return (int)n;
	uint8_t *acc = malloc(n ? (size_t)n : 1);
	if (!acc) {
		free(dflt);
		return -ENOMEM;
	}
	memcpy(acc, dflt, (size_t)n);
	mode_t mode = r->mode;
	int ext = acl_create_masq(acc, (size_t)n, &mode);
	int e = 0;
	if (ext < 0) {	/* a default ACL the kernel would not have let in */
		qlog_warn("fs: inode %" PRIu64 ": malformed default ACL; not inherited", parent);
		r->mode &= ~(umask & 0777);
	} else {
		r->mode = mode;
		if (S_ISDIR(r->mode))
			e = xattr_store(fs, ino, ACL_XATTR_DEFAULT, dflt, (size_t)n);
		if (!e && ext)
			e = xattr_store(fs, ino, ACL_XATTR_ACCESS, acc, (size_t)n);
	}
	free(dflt);
	free(acc);
	return e;
}

int qfs_mknod(struct qfs *fs, uint64_t parent, const char *name, mode_t mode, dev_t rdev,
	      uid_t uid, gid_t gid, mode_t umask, const char *target, struct stat *st)
{
	if (strlen(name) > FS_NAME_MAX)
		return -ENAMETOOLONG;
	if (target && (!target[0] || strlen(target) >= PATH_MAX))
		return target[0] ? -ENAMETOOLONG : -ENOENT;
	int room = qfs_room(fs);
	if (room)
		return room;
	pthread_mutex_lock(&fs->ns);
	struct inode_rec pr = { 0 };
	int e = name_free(fs, parent, name, &pr);
	uint64_t ino = 0;
	if (!e)
		ino = ino_alloc(fs, &e);
	int64_t now = qfs_now();
	struct inode_rec r = { .mode = target ? (S_IFLNK | 0777) : mode, .uid = uid, .gid = gid,
			       .nlink = S_ISDIR(mode) && !target ? 2 : 1, .rdev = rdev,
			       .atime = now, .mtime = now, .ctime = now, .parent = parent };
	if (pr.mode & S_ISGID) {	/* BSD group semantics of a setgid directory */
		r.gid = pr.gid;
		if (S_ISDIR(r.mode))
			r.mode |= S_ISGID;
	}
	if (!e)
		e = acl_inherit(fs, parent, ino, &r, umask);
	if (!e && target) {
		uint8_t k[32];
		size_t kl = key_block(k, ino, 0);
		r.size = strlen(target);
		e = cache_put(fs->c, k, kl, target, r.size);
	}
	if (!e)
		e = rec_store(fs, ino, &r);
	if (!e)
		e = dent_put(fs, parent, name, ino, r.mode);
	if (!e)
		e = dir_touch(fs, parent, S_ISDIR(r.mode) ? 1 : 0, now);
	pthread_mutex_unlock(&fs->ns);
	if (e)
		return e;
	struct node *n;
	e = node_get(fs, ino, 1, 0, &n);
	if (!e)
		rec_to_stat(ino, &r, st);
	return e;
}

int qfs_link(struct qfs *fs, uint64_t ino, uint64_t newparent, const char *newname,
	     struct stat *st)
{
	if (strlen(newname) > FS_NAME_MAX)
		return -ENAMETOOLONG;
	pthread_mutex_lock(&fs->ns);
	struct inode_rec pr;
	int e = name_free(fs, newparent, newname, &pr);
	struct rref rr;
	if (!e)
		e = rref_begin(fs, ino, &rr);
	int64_t now = qfs_now();
	if (!e) {
		if (S_ISDIR(rr.r.mode) || !rr.r.nlink || rr.r.nlink >= 65000) {
			e = S_ISDIR(rr.r.mode) ? -EPERM : rr.r.nlink ? -EMLINK : -ENOENT;
			rref_abort(&rr);
		} else {
			rr.r.nlink++;
			rr.r.ctime = now;
			e = rref_commit(&rr);
			if (!e)
				rec_to_stat(ino, &rr.r, st);
		}
	}
	if (!e)
		e = dent_put(fs, newparent, newname, ino, st->st_mode);
	if (!e)
		e = dir_touch(fs, newparent, 0, now);
	pthread_mutex_unlock(&fs->ns);
	struct node *n;
	if (!e)
		e = node_get(fs, ino, 1, 0, &n);
	return e;
}

static int remove_entry(struct qfs *fs, uint64_t parent, const char *name, bool dir)
{
	pthread_mutex_lock(&fs->ns);
	uint64_t ino;
	mode_t type;
	int e = dent_get(fs, parent, name, &ino, &type);
	if (!e && dir && !S_ISDIR(type))
		e = -ENOTDIR;
	if (!e && !dir && S_ISDIR(type))
		e = -EISDIR;
	if (!e && dir)
		e = dir_empty(fs, ino);
	int64_t now = qfs_now();
	if (!e)
		e = dent_del(fs, parent, name);
	if (!e)
		e = drop_link(fs, ino, now);
	if (!e)
		e = dir_touch(fs, parent, dir ? -1 : 0, now);
	pthread_mutex_unlock(&fs->ns);
	return e;
}

int qfs_unlink(struct qfs *fs, uint64_t parent, const char *name)
{
	return remove_entry(fs, parent, name, false);
}

int qfs_rmdir(struct qfs *fs, uint64_t parent, const char *name)
{
	return remove_entry(fs, parent, name, true);
}

/* Is `dir` inside the tree of `root` (or root itself)? Walks parents. */
static int inside(struct qfs *fs, uint64_t dir, uint64_t root)
{
	for (int depth = 0; depth < 100000; depth++) {
		if (dir == root)
			return 1;
		if (dir == FS_ROOT_INO)
			return 0;
		struct inode_rec r;
		int e = load_dir(fs, dir, &r);
		if (e)
			return e;
		dir = r.parent;
	}
	return -ELOOP;
}

/* ctime now, and the parent of a directory (parent 0: unchanged). */
static int set_parent(struct qfs *fs, uint64_t ino, uint64_t parent, int64_t now)
{
	struct rref rr;
	int e = rref_begin(fs, ino, &rr);
	if (e)
		return e;
	if (parent)
		rr.r.parent = parent;
	rr.r.ctime = now;
	return rref_commit(&rr);
}

static int do_rename(struct qfs *fs, uint64_t parent, const char *name, uint64_t newparent,
		     const char *newname, unsigned flags)
{
	uint64_t src, dst = 0;
	mode_t st, dt = 0;
	struct inode_rec pr;
	int e = dent_get(fs, parent, name, &src, &st);
	if (e)
		return e;
	e = load_dir(fs, newparent, &pr);
	if (e)
		return e;
	e = dent_get(fs, newparent, newname, &dst, &dt);
	if (e && e != -ENOENT)
		return e;
	bool exists = e == 0;
	if ((flags & RENAME_EXCHANGE) && !exists)
		return -ENOENT;
	if ((flags & RENAME_NOREPLACE) && exists)
		return -EEXIST;
	if (exists && dst == src)
		return 0;	/* two links of one inode: nothing to do */
	int64_t now = qfs_now();
	if (S_ISDIR(st) && parent != newparent) {
		int in = inside(fs, newparent, src);
		if (in)
			return in < 0 ? in : -EINVAL;
	}
	if (flags & RENAME_EXCHANGE) {
		if (S_ISDIR(dt) && parent != newparent) {
			int in = inside(fs, parent, dst);
			if (in)
				return in < 0 ? in : -EINVAL;
		}
		e = dent_put(fs, newparent, newname, src, st);
		if (!e)
			e = dent_put(fs, parent, name, dst, dt);
		if (!e)
			e = set_parent(fs, src, S_ISDIR(st) ? newparent : 0, now);
		if (!e)
			e = set_parent(fs, dst, S_ISDIR(dt) ? parent : 0, now);
		int d = (S_ISDIR(dt) ? 1 : 0) - (S_ISDIR(st) ? 1 : 0);
		if (!e)
			e = dir_touch(fs, parent, parent == newparent ? 0 : d, now);
		if (!e && parent != newparent)
			e = dir_touch(fs, newparent, -d, now);
		return e;
	}
	if (exists) {
		if (S_ISDIR(st) && !S_ISDIR(dt))
			return -ENOTDIR;
		if (!S_ISDIR(st) && S_ISDIR(dt))
			return -EISDIR;
		if (S_ISDIR(dt)) {
			e = dir_empty(fs, dst);
			if (e)
				return e;
		}
	}
	e = dent_put(fs, newparent, newname, src, st);
	if (!e)
		e = dent_del(fs, parent, name);
	if (!e && exists)
		e = drop_link(fs, dst, now);
	/* the moved inode: ctime, and its new parent if a directory */
	if (!e) {
		struct rref rr;
		e = rref_begin(fs, src, &rr);
		if (!e) {
			rr.r.ctime = now;
			if (S_ISDIR(st))
				rr.r.parent = newparent;
			e = rref_commit(&rr);
		}
	}
	int moved_dir = S_ISDIR(st) ? 1 : 0, lost_dir = exists && S_ISDIR(dt) ? 1 : 0;
	if (!e)
		e = dir_touch(fs, parent, parent == newparent ? -lost_dir : -moved_dir, now);
	if (!e && parent != newparent)
		e = dir_touch(fs, newparent, moved_dir - lost_dir, now);
	return e;
}

int qfs_rename(struct qfs *fs, uint64_t parent, const char *name, uint64_t newparent,
	       const char *newname, unsigned flags)
{
	if (flags & ~(unsigned)(RENAME_NOREPLACE | RENAME_EXCHANGE))
		return -EINVAL;
	if ((flags & RENAME_NOREPLACE) && (flags & RENAME_EXCHANGE))
		return -EINVAL;
	if (strlen(newname) > FS_NAME_MAX)
		return -ENAMETOOLONG;
	pthread_mutex_lock(&fs->ns);
	int e = do_rename(fs, parent, name, newparent, newname, flags);
	pthread_mutex_unlock(&fs->ns);
	return e;
}

int qfs_readlink(struct qfs *fs, uint64_t ino, char *buf, size_t cap)
{
	struct node *n = node_find(fs, ino);
	if (!n)
		return -ENOENT;
	pthread_rwlock_rdlock(&n->lock);
	uint64_t size = n->rec.size;
	bool link = S_ISLNK(n->rec.mode);
	pthread_rwlock_unlock(&n->lock);
	if (!link)
		return -EINVAL;
	if (size >= cap)
		size = cap - 1;
	uint8_t k[32];
	size_t kl = key_block(k, ino, 0);
	ssize_t got = cache_get(fs->c, k, kl, buf, size);
	if (got < 0)
		return (int)got;
	buf[(size_t)got < size ? (size_t)got : size] = 0;
	return 0;
}

/* --- readdir ------------------------------------------------------------------- */

static int add_dirent(void *arg, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl)
{
	struct qfs_dir *d = arg;
	if (vl < FS_DENT_SIZE || kl <= 9)
		return -EIO;
	if (!d->n || (d->n >= 16 && !(d->n & (d->n - 1)))) {	/* 16, then doubling */
		void *ne = realloc(d->e, (d->n ? d->n * 2 : 16) * sizeof *d->e);
		if (!ne)
			return -ENOMEM;
		d->e = ne;
	}
	char *name = vl > FS_DENT_SIZE ? strndup((const char *)v + FS_DENT_SIZE, vl - FS_DENT_SIZE)
				       : strndup((const char *)k + 9, kl - 9);
	if (!name)
		return -ENOMEM;
	d->e[d->n++] = (struct qfs_dirent){ get_le64(v), (mode_t)v[8] << 12, name };
	return 0;
}

int qfs_readdir_snapshot(struct qfs *fs, uint64_t ino, struct qfs_dir *d)
{
	memset(d, 0, sizeof *d);
	uint8_t p[16];
	size_t pl = key_dent_prefix(p, ino);
	int e = cache_scan(fs->c, p, pl, true, add_dirent, d);
	if (e)
		qfs_dir_free(d);
	return e;
}

void qfs_dir_free(struct qfs_dir *d)
{
	for (size_t i = 0; i < d->n; i++)
		free(d->e[i].name);
	free(d->e);
	memset(d, 0, sizeof *d);
}
