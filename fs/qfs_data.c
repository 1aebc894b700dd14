/* fs/qfs_data.c - file data in FS_BLOCK blocks: read, write, truncate,
 * fallocate, SEEK_DATA/SEEK_HOLE.
 *
 * A block's value holds its bytes up to the last one ever written in it (or
 * up to the file size for the last block); what lies beyond reads as zeros.
 * A write that covers a whole block replaces it; a partial write reads the
 * block, patches it and writes it back.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qfs_int.h"
#include "../common/endian.h"
#include "../common/qlog.h"

#define ATIME_AGE_NS (24ll * 3600 * 1000000000)

static struct node *held(struct qfs *fs, uint64_t ino)
{
	return node_find(fs, ino);
}

/* Read block b of ino into buf (FS_BLOCK bytes, zero-filled past its value).
 * Returns the value's length, 0 for a hole, or a negative errno. */
static ssize_t block_read(struct qfs *fs, uint64_t ino, uint64_t b, uint8_t *buf)
{
	uint8_t k[32];
	size_t kl = key_block(k, ino, b);
	ssize_t n = cache_get(fs->c, k, kl, buf, FS_BLOCK);
	if (n == -ENOENT)
		n = 0;
	if (n < 0)
		return n;
	if (n > FS_BLOCK)
		return -EIO;
	memset(buf + n, 0, FS_BLOCK - (size_t)n);
	return n;
}

static int block_write(struct qfs *fs, uint64_t ino, uint64_t b, const void *buf, size_t len)
{
	uint8_t k[32];
	size_t kl = key_block(k, ino, b);
	return cache_put(fs->c, k, kl, buf, len);
}

static int block_del(struct qfs *fs, uint64_t ino, uint64_t b)
{
	uint8_t k[32];
	size_t kl = key_block(k, ino, b);
	int e = cache_del(fs->c, k, kl);
	return e == -ENOENT ? 0 : e;
}

ssize_t qfs_read(struct qfs *fs, uint64_t ino, void *buf, size_t len, off_t off)
{
	struct node *n = held(fs, ino);
	if (!n)
		return -ENOENT;
	if (off < 0)
		return -EINVAL;
	pthread_rwlock_rdlock(&n->lock);
	uint64_t size = n->rec.size;
	if ((uint64_t)off >= size) {
		pthread_rwlock_unlock(&n->lock);
		return 0;
	}
	if (len > size - (uint64_t)off)
		len = (size_t)(size - (uint64_t)off);
	uint8_t *tmp = NULL;
	ssize_t r = 0;
	size_t done = 0;
	while (done < len) {
		uint64_t pos = (uint64_t)off + done, b = pos / FS_BLOCK;
		size_t in = (size_t)(pos % FS_BLOCK), take = FS_BLOCK - in;
		if (take > len - done)
			take = len - done;
		uint8_t *dst = (uint8_t *)buf + done;
		if (in == 0 && take == FS_BLOCK) {
			r = block_read(fs, ino, b, dst);
		} else {
			if (!tmp && !(tmp = malloc(FS_BLOCK))) {
				r = -ENOMEM;
				break;
			}
			r = block_read(fs, ino, b, tmp);
			if (r >= 0)
				memcpy(dst, tmp + in, take);
		}
		if (r < 0)
			break;
		done += take;
	}
	free(tmp);
	bool stale = r >= 0 && (n->rec.atime <= n->rec.mtime || n->rec.atime <= n->rec.ctime ||
				qfs_now() - n->rec.atime > ATIME_AGE_NS);
	pthread_rwlock_unlock(&n->lock);
	if (r < 0)
		return r;
	if (stale) {	/* relatime */
		pthread_rwlock_wrlock(&n->lock);
		if (n->rec.nlink) {
			struct inode_rec rec = n->rec;
			rec.atime = qfs_now();
			node_store(fs, n, &rec);	/* best effort: a lost atime is harmless */
		}
		pthread_rwlock_unlock(&n->lock);
	}
	return (ssize_t)done;
}

/* Write len bytes at off into the blocks of ino; size is the file size after
 * the write (for trimming the last block). n->lock held for writing. */
static int write_blocks(struct qfs *fs, uint64_t ino, const uint8_t *buf, size_t len,
			uint64_t off, uint64_t size)
{
	uint8_t *tmp = NULL;
	int r = 0;
	size_t done = 0;
	while (done < len && !r) {
		uint64_t pos = off + done, b = pos / FS_BLOCK;
		size_t in = (size_t)(pos % FS_BLOCK), take = FS_BLOCK - in;
		if (take > len - done)
			take = len - done;
		if (in == 0 && take == FS_BLOCK) {
			r = block_write(fs, ino, b, buf + done, FS_BLOCK);
		} else {
			if (!tmp && !(tmp = malloc(FS_BLOCK))) {
				r = -ENOMEM;
				break;
			}
			ssize_t have = block_read(fs, ino, b, tmp);
			if (have < 0) {
				r = (int)have;
				break;
			}
			memcpy(tmp + in, buf + done, take);
			size_t vlen = in + take > (size_t)have ? in + take : (size_t)have;
			uint64_t end = size - b * FS_BLOCK;	/* never past the file end */
			if (vlen > end)
				vlen = (size_t)end;
			r = block_write(fs, ino, b, tmp, vlen);
		}
		done += take;
	}
	free(tmp);
	return r;
}

ssize_t qfs_write(struct qfs *fs, uint64_t ino, const void *buf, size_t len, off_t off)
{
	struct node *n = held(fs, ino);
	if (!n)
		return -ENOENT;
	if (off < 0 || (uint64_t)off + len < (uint64_t)off || (uint64_t)off + len > INT64_MAX)
		return -EFBIG;
	if (!len)
		return 0;
	int room = qfs_room(fs);
	if (room)
		return room;
	pthread_rwlock_wrlock(&n->lock);
	struct inode_rec rec = n->rec;
	uint64_t end = (uint64_t)off + len;
	/* a write past the end leaves a hole: no data a crash left past the
	 * size (a write's blocks reached the log, its size did not) may show
	 * there */
	int r = (uint64_t)off > rec.size ? tail_clean(fs, n) : 0;
	if (end > rec.size)
		rec.size = end;
	if (!r)
		r = write_blocks(fs, ino, buf, len, (uint64_t)off, rec.size);
	if (!r) {
		rec.mtime = rec.ctime = qfs_now();
		r = node_store(fs, n, &rec);
	}
	if (r)
		n->tail_clean = false;	/* some blocks may be in, past the size */
	pthread_rwlock_unlock(&n->lock);
	return r ? r : (ssize_t)len;
}

int data_cut(struct qfs *fs, uint64_t ino, uint64_t size)
{
	uint64_t keep = (size + FS_BLOCK - 1) / FS_BLOCK;	/* blocks that stay */
	int r = blocks_drop(fs, ino, keep);
	if (r || size % FS_BLOCK == 0)
		return r;
	/* the new last block: cut its value at the new size, so growing later
	 * reads zeros there */
	uint8_t *tmp = malloc(FS_BLOCK);
	if (!tmp)
		return -ENOMEM;
	uint64_t b = size / FS_BLOCK;
	ssize_t have = block_read(fs, ino, b, tmp);
	size_t cut = (size_t)(size % FS_BLOCK);
	if (have > (ssize_t)cut)
		r = block_write(fs, ino, b, tmp, cut);
	else if (have < 0)
		r = (int)have;
	free(tmp);
	return r;
}

int tail_clean(struct qfs *fs, struct node *n)
{
	if (n->tail_clean)
		return 0;
	int r = data_cut(fs, n->ino, n->rec.size);
	n->tail_clean = !r;
	return r;
}

int trunc_finish(struct qfs *fs, uint64_t ino, uint64_t size)
{
	int r = data_cut(fs, ino, size);
	if (!r) {
		uint8_t k[16];
		size_t kl = key_trunc(k, ino);
		r = cache_del(fs->c, k, kl);
		r = r == -ENOENT ? 0 : r;
	}
	if (r)
		qlog_err("fs: inode %llu: the data past its new size %llu is not dropped yet (%s); "
			 "the next mount finishes it", (unsigned long long)ino,
			 (unsigned long long)size, strerror(-r));
	return r;
}

/* Zero [from, to) inside block b (a partial block of a punched range). */
static int zero_range(struct qfs *fs, uint64_t ino, uint64_t b, size_t from, size_t to)
{
	uint8_t *tmp = malloc(FS_BLOCK);
	if (!tmp)
		return -ENOMEM;
	ssize_t have = block_read(fs, ino, b, tmp);
	int r = have < 0 ? (int)have : 0;
	if (!r && (size_t)have > from) {
		memset(tmp + from, 0, to - from);
		r = block_write(fs, ino, b, tmp, (size_t)have);
	}
	free(tmp);
	return r;
}

int qfs_fallocate(struct qfs *fs, uint64_t ino, int mode, off_t off, off_t len)
{
	struct node *n = held(fs, ino);
	if (!n)
		return -ENOENT;
	if (off < 0 || len <= 0 || (uint64_t)off + (uint64_t)len > INT64_MAX)
		return -EINVAL;
	bool punch = mode == (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE);
	if (mode && !punch && mode != FALLOC_FL_KEEP_SIZE)
		return -EOPNOTSUPP;
	int room = punch ? 0 : qfs_room(fs);
	if (room)
		return room;
	uint64_t start = (uint64_t)off, end = start + (uint64_t)len;
	pthread_rwlock_wrlock(&n->lock);
	struct inode_rec rec = n->rec;
	int r = 0;
	if (!S_ISREG(rec.mode)) {
		r = -ENODEV;
	} else if (punch) {
		if (end > rec.size)
			end = rec.size;
		for (uint64_t b = start / FS_BLOCK; !r && b * FS_BLOCK < end; b++) {
			uint64_t bs = b * FS_BLOCK, be = bs + FS_BLOCK;
			if (start <= bs && end >= be)
				r = block_del(fs, ino, b);
			else
				r = zero_range(fs, ino, b, (size_t)(start > bs ? start - bs : 0),
					       (size_t)((end < be ? end : be) - bs));
		}
	} else {
		/* allocate: the space is taken now (zero blocks where there are
		 * holes), so later writes to the range cannot fail for space */
		uint64_t size = mode ? rec.size : (end > rec.size ? end : rec.size);
		r = size > rec.size ? tail_clean(fs, n) : 0;	/* the new range reads zeros */
		uint8_t *tmp = r ? NULL : malloc(FS_BLOCK);
		if (!r && !tmp)
			r = -ENOMEM;
		for (uint64_t b = start / FS_BLOCK; !r && b * FS_BLOCK < end; b++) {
			uint64_t bs = b * FS_BLOCK;
			uint64_t want = size > bs ? size - bs : 0;
			if (want > FS_BLOCK)
				want = FS_BLOCK;
			ssize_t have = block_read(fs, ino, b, tmp);
			if (have < 0)
				r = (int)have;
			else if ((uint64_t)have < want)
				r = block_write(fs, ino, b, tmp, (size_t)want);
		}
		free(tmp);
		rec.size = size;
	}
	if (!r) {
		rec.mtime = rec.ctime = qfs_now();
		r = node_store(fs, n, &rec);
	}
	if (r)
		n->tail_clean = false;
	pthread_rwlock_unlock(&n->lock);
	return r;
}

struct seek {
	uint64_t from;	/* first block of interest */
	uint64_t found;	/* first block >= from with data, or UINT64_MAX */
	uint64_t hole;	/* first block >= from without data */
};

static int seek_cb(void *arg, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl)
{
	(void)v;
	(void)vl;
	struct seek *s = arg;
	if (kl != 17)
		return 0;
	uint64_t b = get_be64(k + 9);
	if (b < s->from)
		return 0;
	if (s->found == UINT64_MAX)
		s->found = b;
	if (b == s->hole)
		s->hole = b + 1;
	return b > s->hole ? 1 : 0;	/* past a gap: the hole is known */
}

off_t qfs_lseek(struct qfs *fs, uint64_t ino, off_t off, int whence)
{
	struct node *n = held(fs, ino);
	if (!n)
		return -ENOENT;
	pthread_rwlock_rdlock(&n->lock);
	uint64_t size = n->rec.size;
	off_t r;
	if (off < 0 || (uint64_t)off >= size) {
		r = -ENXIO;
	} else {
		struct seek s = { (uint64_t)off / FS_BLOCK, UINT64_MAX, (uint64_t)off / FS_BLOCK };
		uint8_t p[16], k[FS_KEY_MAX];
		size_t pl = key_block_prefix(p, ino), kl = key_block(k, ino, s.from);
		int e = cache_scan_from(fs->c, p, pl, k, kl, false, seek_cb, &s);
		if (e < 0) {
			r = e;
		} else if (whence == SEEK_DATA) {
			if (s.found == UINT64_MAX || s.found * FS_BLOCK >= size)
				r = -ENXIO;
			else
				r = s.found == (uint64_t)off / FS_BLOCK ? off : (off_t)(s.found * FS_BLOCK);
		} else {
			uint64_t h = s.hole * FS_BLOCK;
			r = h <= (uint64_t)off ? off : h >= size ? (off_t)size : (off_t)h;
		}
	}
	pthread_rwlock_unlock(&n->lock);
	return r;
}
