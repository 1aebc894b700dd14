/* fs/qfs_node.c - the node table, inode records, inode numbers, opening
 * and purging. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "qfs_int.h"
#include "../common/endian.h"
#include "../common/qlog.h"

#define INO_BATCH 1024u	/* inode numbers reserved per superblock write */

int64_t qfs_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int rec_load(struct qfs *fs, uint64_t ino, struct inode_rec *r)
{
	uint8_t k[16], v[FS_INODE_SIZE];
	size_t kl = key_inode(k, ino);
	ssize_t n = cache_get(fs->c, k, kl, v, sizeof v);
	if (n < 0)
		return (int)n;
	if (n > (ssize_t)sizeof v || inode_decode(v, (size_t)n, r)) {
		qlog_err("fs: inode %llu: bad inode record (%zd bytes)", (unsigned long long)ino, n);
		return -EIO;
	}
	if (r->blocks == FS_BLOCKS_UNKNOWN) {	/* a version-1 record */
		int e = blocks_count(fs, ino, &r->blocks);
		if (e)
			return e;
	}
	return 0;
}

ssize_t xattr_load(struct qfs *fs, uint64_t ino, const char *name, uint8_t **buf)
{
	uint8_t k[FS_KEY_MAX];
	size_t kl = key_xattr(k, ino, name);
	*buf = NULL;
	for (;;) {	/* the value may change between the probe and the read */
		ssize_t n = cache_get(fs->c, k, kl, NULL, 0);
		if (n < 0)
			return n;
		if (!(*buf = malloc(n ? (size_t)n : 1)))
			return -ENOMEM;
		ssize_t got = cache_get(fs->c, k, kl, *buf, (size_t)n);
		if (got >= 0 && got <= n)
			return got;
		free(*buf);
		*buf = NULL;
		if (got < 0)
			return got;
	}
}

void txn_xattr(struct txn *t, uint64_t ino, const char *name, const void *v, size_t len)
{
	uint8_t k[FS_KEY_MAX];
	size_t kl = key_xattr(k, ino, name);
	txn_put(t, k, kl, v, len);
}

void txn_rec(struct txn *t, uint64_t ino, const struct inode_rec *r)
{
	uint8_t k[16], v[FS_INODE_SIZE];
	size_t kl = key_inode(k, ino);
	inode_encode(r, v);
	txn_put(t, k, kl, v, sizeof v);
}

int rec_store(struct qfs *fs, uint64_t ino, const struct inode_rec *r)
{
	uint8_t k[16], v[FS_INODE_SIZE];
	size_t kl = key_inode(k, ino);
	inode_encode(r, v);
	return cache_put(fs->c, k, kl, v, sizeof v);
}

int node_store(struct qfs *fs, struct node *n, const struct inode_rec *r)
{
	struct inode_rec w = *r;
	w.blocks = n->rec.blocks;	/* the data's batches keep it (qfs_int.h) */
	int e = rec_store(fs, n->ino, &w);
	if (!e)
		n->rec = w;
	return e;
}

int node_commit(struct qfs *fs, struct node *n, struct txn *t, const struct inode_rec *r)
{
	struct inode_rec w = *r;
	w.blocks = n->rec.blocks;
	txn_rec(t, n->ino, &w);
	int e = txn_commit(t, fs->c);
	if (!e)
		n->rec = w;
	return e;
}

void rec_to_stat(uint64_t ino, const struct inode_rec *r, struct stat *st)
{
	memset(st, 0, sizeof *st);
	st->st_ino = ino;
	st->st_mode = r->mode;
	st->st_nlink = r->nlink;
	st->st_uid = r->uid;
	st->st_gid = r->gid;
	st->st_rdev = r->rdev;
	st->st_size = (off_t)r->size;
	st->st_blksize = FS_BLOCK;
	/* 512-byte units allocated: the allocated blocks, but no more than
	 * the size rounded up, since a block holds its bytes only up to the
	 * last one written (a 100-byte file takes about 100 bytes, not 64 KiB) */
	uint64_t alloc = r->blocks * (FS_BLOCK / 512), used = (r->size + 511) / 512;
	if (r->blocks > UINT64_MAX / (FS_BLOCK / 512) || alloc > used)
		alloc = used;
	st->st_blocks = (blkcnt_t)alloc;
	st->st_atim.tv_sec = r->atime / 1000000000;
	st->st_atim.tv_nsec = r->atime % 1000000000;
	st->st_mtim.tv_sec = r->mtime / 1000000000;
	st->st_mtim.tv_nsec = r->mtime % 1000000000;
	st->st_ctim.tv_sec = r->ctime / 1000000000;
	st->st_ctim.tv_nsec = r->ctime % 1000000000;
}

static struct node **slot(struct qfs *fs, uint64_t ino)
{
	return &fs->tab[(ino * 0x9E3779B97F4A7C15ull) >> 52 & (NODE_BUCKETS - 1)];
}

struct node *node_find(struct qfs *fs, uint64_t ino)
{
	pthread_mutex_lock(&fs->tmu);
	struct node *n = *slot(fs, ino);
	while (n && n->ino != ino)
		n = n->next;
	pthread_mutex_unlock(&fs->tmu);
	return n;
}

int node_get(struct qfs *fs, uint64_t ino, uint64_t lookups, uint64_t opens,
	     struct node **out)
{
	struct node *fresh = NULL;
	for (;;) {
		pthread_mutex_lock(&fs->tmu);
		struct node **s = slot(fs, ino), *n = *s;
		while (n && n->ino != ino)
			n = n->next;
		if (!n && fresh) {
			n = fresh;
			fresh = NULL;
			n->next = *s;
			*s = n;
		}
		if (n) {
			n->nlookup += lookups;
			n->nopen += opens;
			pthread_mutex_unlock(&fs->tmu);
			if (fresh) {	/* another thread made it meanwhile */
				pthread_rwlock_destroy(&fresh->lock);
				free(fresh);
			}
			*out = n;
			return 0;
		}
		pthread_mutex_unlock(&fs->tmu);
		/* the record is read without the table lock: it may need a segment
		 * fetched, and only this request should wait for that */
		fresh = calloc(1, sizeof *fresh);
		if (!fresh)
			return -ENOMEM;
		int e = rec_load(fs, ino, &fresh->rec);
		if (e) {
			free(fresh);
			return e;
		}
		fresh->ino = ino;
		pthread_rwlock_init(&fresh->lock, NULL);
	}
}

void node_put(struct qfs *fs, struct node *n, uint64_t lookups, uint64_t opens)
{
	pthread_mutex_lock(&fs->ns);	/* nlink only changes under ns */
	pthread_mutex_lock(&fs->tmu);
	n->nlookup -= lookups < n->nlookup ? lookups : n->nlookup;
	n->nopen -= opens < n->nopen ? opens : n->nopen;
	bool last = !n->nlookup && !n->nopen;
	if (last) {
		struct node **s = slot(fs, n->ino);
		while (*s != n)
			s = &(*s)->next;
		*s = n->next;
	}
	pthread_mutex_unlock(&fs->tmu);
	if (last) {
		if (!n->rec.nlink && !n->deleted) {
			int e = inode_purge(fs, n->ino);
			if (e)
				qlog_err("fs: purging unlinked inode %llu: %s",
					 (unsigned long long)n->ino, strerror(-e));
		}
		pthread_rwlock_destroy(&n->lock);
		free(n);
	}
	pthread_mutex_unlock(&fs->ns);
}

/* --- deleting ------------------------------------------------------------------ */

struct keylist {
	uint8_t (*k)[FS_KEY_MAX];
	size_t *kl;
	size_t n, cap;
	uint64_t from;	/* blocks: only these and later */
};

static int collect(void *arg, const uint8_t *key, size_t klen, const uint8_t *v, size_t vl)
{
	(void)v;
	(void)vl;
	struct keylist *l = arg;
	if (key[0] == K_BLOCK && get_be64(key + 9) < l->from)
		return 0;
	if (l->n == l->cap) {
		size_t nc = l->cap ? l->cap * 2 : 64;
		void *a = realloc(l->k, nc * sizeof *l->k), *b;
		if (!a)
			return -ENOMEM;
		l->k = a;
		b = realloc(l->kl, nc * sizeof *l->kl);
		if (!b)
			return -ENOMEM;
		l->kl = b;
		l->cap = nc;
	}
	memcpy(l->k[l->n], key, klen);
	l->kl[l->n++] = klen;
	return 0;
}

/* Delete every key under prefix, starting at start (NULL: all; blocks:
 * from block `from` on). */
static int drop_prefix(struct qfs *fs, const uint8_t *prefix, size_t plen,
		       const uint8_t *start, size_t startlen, uint64_t from)
{
	struct keylist l = { .from = from };
	int r = cache_scan_from(fs->c, prefix, plen, start, startlen, false, collect, &l);
	for (size_t i = 0; i < l.n && !r; i++) {
		int e = cache_del(fs->c, l.k[i], l.kl[i]);
		if (e && e != -ENOENT)
			r = e;
	}
	free(l.k);
	free(l.kl);
	return r;
}

int inode_purge(struct qfs *fs, uint64_t ino)
{
	/* the blocks go without their count: the record goes after them, and
	 * nothing reads an inode being purged (unlinked, held by nobody) */
	uint8_t k[16];
	size_t kl = key_block_prefix(k, ino);
	int r = drop_prefix(fs, k, kl, NULL, 0, 0);
	kl = key_xattr_prefix(k, ino);
	if (!r)
		r = drop_prefix(fs, k, kl, NULL, 0, 0);
	kl = key_inode(k, ino);
	if (!r) {
		r = cache_del(fs->c, k, kl);
		r = r == -ENOENT ? 0 : r;
	}
	kl = key_trunc(k, ino);
	if (!r) {
		r = cache_del(fs->c, k, kl);
		r = r == -ENOENT ? 0 : r;
	}
	kl = key_orphan(k, ino);
	if (!r) {
		r = cache_del(fs->c, k, kl);
		r = r == -ENOENT ? 0 : r;
	}
	return r;
}

/* --- inode numbers ------------------------------------------------------------- */

static int super_store(struct qfs *fs, uint64_t limit)
{
	uint8_t v[16];
	put_le32(v, FS_SUPER_VERSION);
	put_le32(v + 4, 0);
	put_le64(v + 8, limit);
	uint8_t k = K_SUPER;
	return cache_put(fs->c, &k, 1, v, sizeof v);
}

uint64_t ino_alloc(struct qfs *fs, int *err)
{
	pthread_mutex_lock(&fs->imu);
	*err = 0;
	if (fs->next_ino == fs->ino_limit) {
		*err = super_store(fs, fs->ino_limit + INO_BATCH);
		if (!*err)
			fs->ino_limit += INO_BATCH;
	}
	uint64_t ino = *err ? 0 : fs->next_ino++;
	pthread_mutex_unlock(&fs->imu);
	return ino;
}

/* --- open / close ----------------------------------------------------------------- */

static int orphan_cb(void *arg, const uint8_t *key, size_t klen, const uint8_t *v, size_t vl)
{
	(void)v;
	(void)vl;
	struct qfs *fs = arg;
	if (klen != 9)
		return 0;
	uint64_t ino = get_be64(key + 1);
	qlog_info("fs: purging inode %llu, unlinked while open before a crash",
		  (unsigned long long)ino);
	return inode_purge(fs, ino);
}

/* A truncate a crash interrupted: the smaller size is in the log, some of
 * the data past it may still be. */
static int trunc_cb(void *arg, const uint8_t *key, size_t klen, const uint8_t *v, size_t vl)
{
	(void)v;
	(void)vl;
	struct qfs *fs = arg;
	if (klen != 9)
		return 0;
	uint64_t ino = get_be64(key + 1);
	struct inode_rec r;
	int e = rec_load(fs, ino, &r);
	if (e == -ENOENT) {	/* purged since: only the key is left */
		e = cache_del(fs->c, key, klen);
		return e == -ENOENT ? 0 : e;
	}
	if (e)
		return e;
	qlog_info("fs: finishing the truncate of inode %llu to %llu bytes, interrupted by a crash",
		  (unsigned long long)ino, (unsigned long long)r.size);
	return trunc_finish(fs, ino, &r, r.size);
}

int qfs_open(const struct qfs_opts *o, struct qfs **out)
{
	struct qfs *fs = calloc(1, sizeof *fs);
	if (!fs)
		return -ENOMEM;
	fs->c = o->cache;
	fs->o = *o;
	pthread_mutex_init(&fs->ns, NULL);
	pthread_mutex_init(&fs->tmu, NULL);
	pthread_mutex_init(&fs->imu, NULL);
	uint8_t k = K_SUPER, v[16];
	ssize_t n = cache_get(fs->c, &k, 1, v, sizeof v);
	int r = 0;
	if (n == -ENOENT) {
		/* a new filesystem: the root directory, then the superblock */
		int64_t now = qfs_now();
		struct inode_rec root = { .mode = S_IFDIR | 0755, .nlink = 2, .atime = now,
					  .mtime = now, .ctime = now, .parent = FS_ROOT_INO };
		fs->next_ino = fs->ino_limit = FS_ROOT_INO + 1;
		r = rec_store(fs, FS_ROOT_INO, &root);
		if (!r)
			r = super_store(fs, fs->ino_limit);
		if (!r)
			r = cache_sync(fs->c);
	} else if (n != 16 || get_le32(v) < 1 || get_le32(v) > FS_SUPER_VERSION) {
		qlog_err("fs: the superblock is %s", n < 0 ? strerror((int)-n) :
			 "not one this version understands");
		r = n < 0 ? (int)n : -EIO;
	} else {
		/* numbers up to the reserved limit may have been handed out */
		fs->next_ino = fs->ino_limit = get_le64(v + 8);
		/* an older version: raised before any extent can be written, so
		 * a binary that would ignore extents refuses the volume (meta.h);
		 * a read-only log keeps it as it is and writes nothing */
		if (get_le32(v) < FS_SUPER_VERSION) {
			r = super_store(fs, fs->ino_limit);
			if (r == -EROFS)
				r = 0;
			else if (r)
				qlog_err("fs: cannot raise the superblock to version %u: %s",
					 FS_SUPER_VERSION, strerror(-r));
		}
		uint8_t p = K_TRUNC;
		if (!r)
			r = cache_scan(fs->c, &p, 1, false, trunc_cb, fs);
		p = K_ORPHAN;
		if (!r) {
			r = cache_scan(fs->c, &p, 1, false, orphan_cb, fs);
			/* a full disk (even the log's reserve is gone): the data
			 * of unlinked inodes stays until a mount with room; it
			 * is unreachable, so the mount may go on */
			if (r == -ENOSPC) {
				qlog_warn("fs: the disk of the cache is full: inodes unlinked while "
					  "open before a crash are purged at a later mount");
				r = 0;
			}
		}
	}
	struct node *root;
	if (!r)
		r = node_get(fs, FS_ROOT_INO, 1, 0, &root);	/* the kernel never forgets it */
	if (r) {
		qfs_close(fs);
		return r;
	}
	*out = fs;
	return 0;
}

void qfs_close(struct qfs *fs)
{
	if (!fs)
		return;
	for (unsigned i = 0; i < NODE_BUCKETS; i++) {
		while (fs->tab[i]) {
			struct node *n = fs->tab[i];
			fs->tab[i] = n->next;
			pthread_rwlock_destroy(&n->lock);
			free(n);
		}
	}
	pthread_mutex_destroy(&fs->ns);
	pthread_mutex_destroy(&fs->tmu);
	pthread_mutex_destroy(&fs->imu);
	free(fs);
}

void qfs_forget(struct qfs *fs, uint64_t ino, uint64_t nlookup)
{
	struct node *n = node_find(fs, ino);
	if (n)
		node_put(fs, n, nlookup, 0);
}

int qfs_open_inode(struct qfs *fs, uint64_t ino, bool truncate)
{
	struct node *n;
	int r = node_get(fs, ino, 0, 1, &n);
	if (r || !truncate)
		return r;
	struct stat st = { .st_size = 0 };
	r = qfs_setattr(fs, ino, &st, QFS_SET_SIZE, &st);
	if (r)
		node_put(fs, n, 0, 1);
	return r;
}

void qfs_release(struct qfs *fs, uint64_t ino)
{
	struct node *n = node_find(fs, ino);
	if (n)
		node_put(fs, n, 0, 1);
}

void qfs_set_full(struct qfs *fs, enum qfs_full full)
{
	fs->full = full;
}

void qfs_set_stor_up(struct qfs *fs, bool up)
{
	fs->stor_up = up;
}

int qfs_room(struct qfs *fs)
{
	/* polled: the monitor clears the state within a fraction of a second
	 * of stor confirming what lets the log evict, and the log evicts for
	 * room on the disk at each confirmation */
	bool pending = false;	/* uploads that may free the disk, as of the last ask */
	for (int i = 0;; i++) {
		enum qfs_full f = fs->full;
		if (f == QFS_FULL_FENCED)
			return -EROFS;
		bool low = cache_disk_low(fs->c);
		if (f == QFS_FULL_NO && !low)
			return 0;
		/* asked again every second: a walk of the segment table */
		if (low && f == QFS_FULL_NO && i % 50 == 0)
			pending = fs->stor_up && cache_uploads_pending(fs->c);
		bool wait = f == QFS_FULL_WAIT || (f == QFS_FULL_NO && pending);
		if (!wait || i >= QFS_FULL_WAIT_MAX_S * 50)
			return -ENOSPC;
		nanosleep(&(struct timespec){ 0, 20 * 1000 * 1000 }, NULL);
	}
}

int qfs_sync(struct qfs *fs)
{
	return cache_sync(fs->c);
}
