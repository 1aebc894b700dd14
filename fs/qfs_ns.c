/* fs/qfs_ns.c - the namespace: lookup, create, link, unlink, rename,
 * readdir. Every change here holds fs->ns and reaches the log as one atomic
 * batch (struct change): after a crash a create, link, unlink or rename is
 * there whole or not at all. Only the purge of an unlinked inode's data
 * comes after it, covered by an orphan key written in the batch.
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
#include "txn.h"
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

static int dent_put(struct txn *t, uint64_t parent, const char *name, uint64_t ino,
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
	txn_put(t, k, kl, v, vl);
	return 0;
}

static int dent_del(struct txn *t, uint64_t parent, const char *name)
{
	uint8_t k[FS_KEY_MAX];
	size_t kl = key_dent(k, parent, name);
	if (!kl)
		return -ENAMETOOLONG;
	txn_del(t, k, kl);
	return 0;
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

/* --- a namespace change ---------------------------------------------------------- */

/* A change being built: its log records (one atomic batch, see txn.h) and
 * the inode records it rewrites. An inode record is changed through its
 * node when the kernel holds the inode (the node write-locked from
 * change_rec until commit or abort), else straight in the log (safe under
 * fs->ns: nobody else can reach an inode the kernel does not hold). Only a
 * change holds two node locks at once, and changes are serialised by
 * fs->ns, so the order they are taken in does not matter. Every read a
 * change depends on (entries, emptiness, ancestry) is done before its first
 * change_rec, as a node read lock cannot be taken under the write lock. */
#define CHANGE_MAX_RECS 4

struct change {
	struct qfs *fs;
	struct txn t;
	struct {
		uint64_t ino;
		struct node *n;	/* NULL: not held by the kernel */
		struct inode_rec r;
	} rec[CHANGE_MAX_RECS];
	int nrec;
	uint64_t purge;	/* an inode left without links and not held, or 0 */
};

static void change_init(struct change *ch, struct qfs *fs)
{
	ch->fs = fs;
	txn_init(&ch->t);
	ch->nrec = 0;
	ch->purge = 0;
}

/* The record of ino as this change will leave it (read, and locked, on
 * first use). *held tells whether the kernel holds the inode. */
static int change_rec(struct change *ch, uint64_t ino, struct inode_rec **r, bool *held)
{
	for (int i = 0; i < ch->nrec; i++) {
		if (ch->rec[i].ino == ino) {
			*r = &ch->rec[i].r;
			if (held)
				*held = ch->rec[i].n != NULL;
			return 0;
		}
	}
	if (ch->nrec == CHANGE_MAX_RECS)
		return -E2BIG;	/* a bug: no change touches that many inodes */
	int i = ch->nrec;
	ch->rec[i].ino = ino;
	ch->rec[i].n = node_find(ch->fs, ino);
	if (ch->rec[i].n) {
		pthread_rwlock_wrlock(&ch->rec[i].n->lock);
		ch->rec[i].r = ch->rec[i].n->rec;
	} else {
		int e = rec_load(ch->fs, ino, &ch->rec[i].r);
		if (e)
			return e;
	}
	ch->nrec++;
	*r = &ch->rec[i].r;
	if (held)
		*held = ch->rec[i].n != NULL;
	return 0;
}

static void change_unlock(struct change *ch)
{
	for (int i = 0; i < ch->nrec; i++)
		if (ch->rec[i].n)
			pthread_rwlock_unlock(&ch->rec[i].n->lock);
	ch->nrec = 0;
}

static void change_abort(struct change *ch)
{
	change_unlock(ch);
	txn_free(&ch->t);
}

/* Write the change as one batch; once it is in the log, held nodes take
 * their new records. Then an inode left without links is purged. */
static int change_commit(struct change *ch)
{
	for (int i = 0; i < ch->nrec; i++)
		txn_rec(&ch->t, ch->rec[i].ino, &ch->rec[i].r);
	int e = txn_commit(&ch->t, ch->fs->c);
	for (int i = 0; !e && i < ch->nrec; i++)
		if (ch->rec[i].n)
			ch->rec[i].n->rec = ch->rec[i].r;
	change_unlock(ch);
	if (!e && ch->purge) {
		/* its orphan key is in the log: a failure here is finished at the
		 * next mount, the change itself stands */
		int p = inode_purge(ch->fs, ch->purge);
		if (p)
			qlog_err("fs: purging unlinked inode %" PRIu64 ": %s; left for the "
				 "next mount", ch->purge, strerror(-p));
	}
	return e;
}

/* Finish a change that ended with e: commit it, or drop it on error. */
static int change_end(struct change *ch, int e)
{
	if (e) {
		change_abort(ch);
		return e;
	}
	return change_commit(ch);
}

/* Parent directory changed: mtime and ctime now, nlink by delta. */
static int dir_touch(struct change *ch, uint64_t dir, int nlink_delta, int64_t now)
{
	struct inode_rec *r;
	int e = change_rec(ch, dir, &r, NULL);
	if (e)
		return e;
	r->mtime = r->ctime = now;
	r->nlink = (uint32_t)((int64_t)r->nlink + nlink_delta);
	return 0;
}

/* One link of ino is gone: drop nlink (to 0 for a directory). An inode with
 * no link left gets an orphan key in the same batch; it is purged after the
 * commit when the kernel does not hold it, else at its last forget/release
 * (or at the next mount, after a crash). */
static int drop_link(struct change *ch, uint64_t ino, int64_t now)
{
	struct inode_rec *r;
	bool held;
	int e = change_rec(ch, ino, &r, &held);
	if (e)
		return e;
	if (S_ISDIR(r->mode) || r->nlink <= 1)
		r->nlink = 0;
	else
		r->nlink--;
	r->ctime = now;
	if (r->nlink == 0) {
		uint8_t k[16];
		size_t kl = key_orphan(k, ino);
		txn_put(&ch->t, k, kl, "", 0);
		if (!held)
			ch->purge = ino;
	}
	return 0;
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
	struct node *n;
	/* Without fs->ns (lookups are the hottest request): an unlink or a
	 * rename may remove the inode between the entry and the inode read.
	 * Then the entry is gone or names another inode when read again; an
	 * entry that stays and names a missing inode is damage. */
	for (int tries = 0;; tries++) {
		int e = dent_get(fs, parent, name, &ino, &type);
		if (e)
			return e;
		e = node_get(fs, ino, 1, 0, &n);
		if (!e)
			break;
		if (e != -ENOENT)
			return e;
		if (tries == 3) {
			qlog_err("fs: entry '%s' in directory %" PRIu64 " names inode %" PRIu64
				 ", which does not exist", name, parent, ino);
			return -EIO;
		}
	}
	pthread_rwlock_rdlock(&n->lock);
	rec_to_stat(ino, &n->rec, st);
	pthread_rwlock_unlock(&n->lock);
	return 0;
}

/* posix_acl_create for a new inode ino in parent: adds the ACLs it
 * inherits to t and sets the permission bits of r->mode. fs->ns held. */
static int acl_inherit(struct qfs *fs, struct txn *t, uint64_t parent, uint64_t ino,
		       struct inode_rec *r, mode_t umask)
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
			txn_xattr(t, ino, ACL_XATTR_DEFAULT, dflt, (size_t)n);
		if (ext)
			txn_xattr(t, ino, ACL_XATTR_ACCESS, acc, (size_t)n);
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
	struct change ch;
	change_init(&ch, fs);
	if (!e)
		e = acl_inherit(fs, &ch.t, parent, ino, &r, umask);
	if (!e && target) {
		uint8_t k[32];
		size_t kl = key_block(k, ino, 0);
		r.size = strlen(target);
		r.blocks = 1;	/* the target is its block 0 */
		txn_put(&ch.t, k, kl, target, r.size);
	}
	if (!e) {
		txn_rec(&ch.t, ino, &r);
		e = dent_put(&ch.t, parent, name, ino, r.mode);
	}
	if (!e)
		e = dir_touch(&ch, parent, S_ISDIR(r.mode) ? 1 : 0, now);
	e = change_end(&ch, e);
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
	struct inode_rec pr, *r = NULL;
	struct change ch;
	change_init(&ch, fs);
	int e = name_free(fs, newparent, newname, &pr);
	if (!e)
		e = change_rec(&ch, ino, &r, NULL);
	int64_t now = qfs_now();
	if (!e && (S_ISDIR(r->mode) || !r->nlink || r->nlink >= 65000))
		e = S_ISDIR(r->mode) ? -EPERM : r->nlink ? -EMLINK : -ENOENT;
	if (!e) {
		r->nlink++;
		r->ctime = now;
		rec_to_stat(ino, r, st);
		e = dent_put(&ch.t, newparent, newname, ino, r->mode);
	}
	if (!e)
		e = dir_touch(&ch, newparent, 0, now);
	e = change_end(&ch, e);
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
	struct change ch;
	change_init(&ch, fs);
	if (!e)
		e = dent_del(&ch.t, parent, name);
	if (!e)
		e = drop_link(&ch, ino, now);
	if (!e)
		e = dir_touch(&ch, parent, dir ? -1 : 0, now);
	e = change_end(&ch, e);
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
static int set_parent(struct change *ch, uint64_t ino, uint64_t parent, int64_t now)
{
	struct inode_rec *r;
	int e = change_rec(ch, ino, &r, NULL);
	if (e)
		return e;
	if (parent)
		r->parent = parent;
	r->ctime = now;
	return 0;
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
	struct change ch;
	change_init(&ch, fs);
	if (flags & RENAME_EXCHANGE) {
		if (S_ISDIR(dt) && parent != newparent) {
			int in = inside(fs, parent, dst);
			if (in)
				return in < 0 ? in : -EINVAL;
		}
		e = dent_put(&ch.t, newparent, newname, src, st);
		if (!e)
			e = dent_put(&ch.t, parent, name, dst, dt);
		if (!e)
			e = set_parent(&ch, src, S_ISDIR(st) ? newparent : 0, now);
		if (!e)
			e = set_parent(&ch, dst, S_ISDIR(dt) ? parent : 0, now);
		int d = (S_ISDIR(dt) ? 1 : 0) - (S_ISDIR(st) ? 1 : 0);
		if (!e)
			e = dir_touch(&ch, parent, parent == newparent ? 0 : d, now);
		if (!e && parent != newparent)
			e = dir_touch(&ch, newparent, -d, now);
		return change_end(&ch, e);
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
	e = dent_put(&ch.t, newparent, newname, src, st);
	if (!e)
		e = dent_del(&ch.t, parent, name);
	if (!e && exists)
		e = drop_link(&ch, dst, now);
	/* the moved inode: ctime, and its new parent if a directory */
	if (!e)
		e = set_parent(&ch, src, S_ISDIR(st) ? newparent : 0, now);
	int moved_dir = S_ISDIR(st) ? 1 : 0, lost_dir = exists && S_ISDIR(dt) ? 1 : 0;
	if (!e)
		e = dir_touch(&ch, parent, parent == newparent ? -lost_dir : -moved_dir, now);
	if (!e && parent != newparent)
		e = dir_touch(&ch, newparent, moved_dir - lost_dir, now);
	return change_end(&ch, e);
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
