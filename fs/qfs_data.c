/* fs/qfs_data.c - file data in FS_BLOCK blocks: read, write, truncate,
 * fallocate, SEEK_DATA/SEEK_HOLE.
 *
 * A block holds its bytes up to the last one ever written in it (or up to
 * the file size for the last block); what lies beyond reads as zeros. It is
 * a base value overlaid with up to EXT_MAX extents (extent.h): a write that
 * covers all a block holds becomes its base; a smaller one appends an
 * extent of what it writes (and trims the extents it overlaps), so a write
 * costs the log about its own size. Every change of a block is one batch,
 * and one that allocates or frees a block carries the inode record with
 * its new block count (qfs_int.h, "allocated-block count").
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "extent.h"
#include "qfs_int.h"
#include "../common/endian.h"
#include "../common/qlog.h"

#define ATIME_AGE_NS (24ll * 3600 * 1000000000)

static const uint8_t zeros[FS_BLOCK];	/* what holes and punched ranges hold */

static struct node *held(struct qfs *fs, uint64_t ino)
{
	return node_find(fs, ino);
}

/* What block b of ino holds: its base's length and its extents (keys
 * only, no I/O). Returns 0 or a negative errno; -EIO, logged with the
 * inode and block, when the keys break extent.h's invariants. */
static int block_load(struct qfs *fs, uint64_t ino, uint64_t b, struct ext_block *eb)
{
	uint8_t p[32];
	size_t pl = key_block(p, ino, b);
	struct cache_keyinfo ki[EXT_MAX + 2];
	ssize_t n = cache_keys(fs->c, p, pl, NULL, 0, ki, EXT_MAX + 2);
	if (n < 0)
		return (int)n;
	*eb = (struct ext_block){ 0 };
	bool bad = n == EXT_MAX + 2;
	for (ssize_t i = 0; i < n && !bad; i++) {
		if (ki[i].klen == 17) {
			eb->has_base = true;
			eb->base_len = ki[i].vlen;
		} else if (ki[i].klen == 19 && eb->n < EXT_MAX) {
			eb->e[eb->n++] = (struct ext){ get_be16(ki[i].key + 17), ki[i].vlen };
		} else {
			bad = true;
		}
	}
	if (bad || ext_block_check(eb, FS_BLOCK)) {
		qlog_err("fs: inode %llu block %llu: its extents are not valid (%zd keys); "
			 "the block is unreadable", (unsigned long long)ino, (unsigned long long)b,
			 n);
		return -EIO;
	}
	return 0;
}

/* Does block b (as eb lists it) hold anything: a base or an extent? */
static bool block_present(const struct ext_block *eb)
{
	return eb->has_base || eb->n;
}

int blocks_count(struct qfs *fs, uint64_t ino, uint64_t *out)
{
	uint8_t p[16];
	size_t pl = key_block_prefix(p, ino);
	struct cache_keyinfo *ki = malloc(256 * sizeof *ki);
	if (!ki)
		return -ENOMEM;
	uint64_t n = 0, last = UINT64_MAX;
	uint8_t after[FS_KEY_MAX];
	size_t afterlen = 0;
	ssize_t got;
	do {
		got = cache_keys(fs->c, p, pl, afterlen ? after : NULL, afterlen, ki, 256);
		for (ssize_t i = 0; i < got; i++) {
			if (ki[i].klen != 17 && ki[i].klen != 19)
				continue;
			uint64_t b = get_be64(ki[i].key + 9);
			n += b != last;	/* a block's keys are together */
			last = b;
		}
		if (got > 0) {
			afterlen = ki[got - 1].klen;
			memcpy(after, ki[got - 1].key, afterlen);
		}
	} while (got == 256);
	free(ki);
	if (got < 0)
		return (int)got;
	*out = n;
	return 0;
}

/* Append ops[0..n) as one batch. When they allocate (delta 1) or free
 * blocks of ino, the inode record *rec (as the log holds it) with its new
 * count goes into the same batch (ops has room for it), and *rec takes
 * the count once the batch is in. */
static int blocks_apply(struct qfs *fs, uint64_t ino, struct inode_rec *rec,
			struct cache_op *ops, size_t n, int64_t delta)
{
	if (!n)
		return 0;
	struct inode_rec r = *rec;
	uint8_t k[16], v[FS_INODE_SIZE];
	if (delta) {
		if (delta < 0 && (uint64_t)-delta > r.blocks) {	/* never: a bug */
			qlog_err("fs: inode %llu: its block count %llu is lower than the blocks it "
				 "frees", (unsigned long long)ino, (unsigned long long)r.blocks);
			r.blocks = 0;
		} else {
			r.blocks += (uint64_t)delta;
		}
		inode_encode(&r, v);
		ops[n++] = (struct cache_op){ false, k, key_inode(k, ino), v, sizeof v };
	}
	int e = cache_apply(fs->c, ops, n);	/* n == 1: a plain record */
	if (!e)
		rec->blocks = r.blocks;
	return e;
}

/* Read one key's value into buf (cap bytes): its length, or -EIO when it
 * is longer than cap or gone (the keys were listed under the inode's lock). */
static ssize_t get_exact(struct qfs *fs, const uint8_t *k, size_t kl, uint8_t *buf, size_t cap)
{
	ssize_t n = cache_get(fs->c, k, kl, buf, cap);
	if (n == -ENOENT || n > (ssize_t)cap)
		n = -EIO;
	return n;
}

/* Read block b of ino, as eb lists it, into buf (FS_BLOCK bytes, zeros
 * past its data): the base, then each extent over it. Returns the block's
 * length, 0 for a hole, or a negative errno. */
static ssize_t block_fill(struct qfs *fs, uint64_t ino, uint64_t b, const struct ext_block *eb,
			  uint8_t *buf)
{
	uint8_t k[32];
	size_t kl = key_block(k, ino, b);
	size_t have = 0;
	if (eb->has_base) {
		ssize_t n = get_exact(fs, k, kl, buf, FS_BLOCK);
		if (n < 0)
			return n;
		have = (size_t)n;
	}
	memset(buf + have, 0, FS_BLOCK - have);
	for (size_t i = 0; i < eb->n; i++) {
		const struct ext *x = &eb->e[i];
		kl = key_extent(k, ino, b, x->off);
		ssize_t n = get_exact(fs, k, kl, buf + x->off, FS_BLOCK - x->off);
		if (n < 0)
			return n;
	}
	return ext_block_len(eb);
}

/* Read block b of ino into buf (FS_BLOCK bytes, zero-filled past its data).
 * Returns the block's length, 0 for a hole, or a negative errno. */
static ssize_t block_read(struct qfs *fs, uint64_t ino, uint64_t b, uint8_t *buf)
{
	struct ext_block eb;
	int r = block_load(fs, ino, b, &eb);
	return r ? r : block_fill(fs, ino, b, &eb, buf);
}

/* Replace block b of ino (as eb lists it) by buf[0, len) as its base, with
 * no extents (len 0: no base either): one atomic batch, with ino's record
 * *rec when the block comes or goes. */
static int block_rewrite(struct qfs *fs, uint64_t ino, struct inode_rec *rec, uint64_t b,
			 const struct ext_block *eb, const uint8_t *buf, size_t len)
{
	uint8_t keys[EXT_MAX + 1][32];
	struct cache_op ops[EXT_MAX + 2];
	size_t n = 0;
	if (len || eb->has_base) {
		ops[n] = (struct cache_op){ !len, keys[n], key_block(keys[n], ino, b),
					    len ? buf : NULL, len };
		n++;
	}
	for (size_t i = 0; i < eb->n; i++, n++)
		ops[n] = (struct cache_op){ true, keys[n], key_extent(keys[n], ino, b, eb->e[i].off),
					    NULL, 0 };
	return blocks_apply(fs, ino, rec, ops, n, (int64_t)(len > 0) - block_present(eb));
}

/* Write [in, in + len) of block b of ino, as eb lists it (block_load),
 * from data, appending about len bytes (extent.h): as the base, as an
 * extent with the trims of those it overlaps, or as a fold of the whole
 * block. limit is where the file ends inside this block (>= in + len): a
 * fold's base never passes it. One atomic batch (with ino's record *rec
 * when the block is new). *tmp: FS_BLOCK bytes of scratch, allocated on
 * first need (the caller frees it). Returns 0 or -errno. */
static int block_patch(struct qfs *fs, uint64_t ino, struct inode_rec *rec, uint64_t b,
		       const struct ext_block *eb, size_t in, const void *data, size_t len,
		       size_t limit, uint8_t **tmpp)
{
	struct ext_plan p;
	ext_plan(eb, (uint32_t)in, (uint32_t)(in + len), &p);
	uint8_t *tmp = *tmpp;
	if (!tmp && (p.fold || p.n > 1) && !(tmp = *tmpp = malloc(FS_BLOCK)))
		return -ENOMEM;
	if (p.fold) {
		ssize_t have = block_fill(fs, ino, b, eb, tmp);
		if (have < 0)
			return (int)have;
		memcpy(tmp + in, data, len);
		return block_rewrite(fs, ino, rec, b, eb, tmp,
				     ext_fold_len(eb, (uint32_t)(in + len), (uint32_t)limit));
	}
	uint8_t keys[EXT_MAX + 3][32];
	struct cache_op ops[EXT_MAX + 4];
	size_t n = 0;
	/* the old bytes the trims keep: each trimmed extent, read once */
	uint32_t loaded = UINT32_MAX;
	for (size_t i = 0; i < p.n; i++) {
		const struct ext_op *o = &p.op[i];
		if (o->kind != EXT_PUT_PIECE || o->src == loaded)
			continue;
		uint8_t k[32];
		size_t kl = key_extent(k, ino, b, o->src);
		ssize_t got = get_exact(fs, k, kl, tmp + o->src, FS_BLOCK - o->src);
		if (got < 0)
			return (int)got;
		loaded = o->src;
	}
	for (size_t i = 0; i < p.n; i++, n++) {
		const struct ext_op *o = &p.op[i];
		size_t kl = o->base ? key_block(keys[n], ino, b) : key_extent(keys[n], ino, b, o->off);
		const void *v = o->kind == EXT_PUT_WRITE ? data : tmp + o->off;
		ops[n] = (struct cache_op){ o->kind == EXT_DEL, keys[n], kl,
					    o->kind == EXT_DEL ? NULL : v, o->len };
	}
	/* the write puts bytes in the block: it holds something after */
	return blocks_apply(fs, ino, rec, ops, n, !block_present(eb));
}

/* Make block b of ino a hole: its base and extents go in one batch. */
static int block_del(struct qfs *fs, uint64_t ino, struct inode_rec *rec, uint64_t b)
{
	struct ext_block eb;
	int r = block_load(fs, ino, b, &eb);
	return r ? r : block_rewrite(fs, ino, rec, b, &eb, NULL, 0);
}

/* Delete every block at or after block `from` of ino, a few blocks a
 * batch, each batch with the record *rec and its lowered count. */
#define DROP_KEYS 256u		/* keys listed at a time */
#define DROP_BLOCKS 16u		/* blocks a batch */
static int blocks_drop(struct qfs *fs, uint64_t ino, struct inode_rec *rec, uint64_t from)
{
	uint8_t p[16], after[FS_KEY_MAX];
	size_t pl = key_block_prefix(p, ino), afterlen = 0;
	if (from)	/* after the last key block from - 1 may have */
		afterlen = key_extent(after, ino, from - 1, 0xffff);
	struct cache_keyinfo *ki = malloc(DROP_KEYS * sizeof *ki);
	struct cache_op *ops = malloc((DROP_BLOCKS * (EXT_MAX + 1) + 1) * sizeof *ops);
	int r = ki && ops ? 0 : -ENOMEM;
	while (!r) {
		ssize_t got = cache_keys(fs->c, p, pl, afterlen ? after : NULL, afterlen, ki,
					 DROP_KEYS);
		if (got <= 0) {
			r = (int)got;
			break;
		}
		/* whole blocks only: a full listing may end inside one */
		size_t end = (size_t)got;
		if (end == DROP_KEYS) {
			uint64_t lastb = get_be64(ki[end - 1].key + 9);
			while (end && get_be64(ki[end - 1].key + 9) == lastb)
				end--;
			if (!end)	/* never (E2: 17 keys a block at most) */
				end = (size_t)got;
		}
		size_t n = 0, blocks = 0;
		for (size_t i = 0; i < end && !r; i++) {
			uint64_t b = get_be64(ki[i].key + 9);
			bool first = !i || get_be64(ki[i - 1].key + 9) != b;
			if (first && blocks == DROP_BLOCKS) {
				r = blocks_apply(fs, ino, rec, ops, n, -(int64_t)blocks);
				n = blocks = 0;
			}
			blocks += first;
			ops[n++] = (struct cache_op){ true, ki[i].key, ki[i].klen, NULL, 0 };
		}
		if (!r)
			r = blocks_apply(fs, ino, rec, ops, n, -(int64_t)blocks);
		if (!r) {
			afterlen = ki[end - 1].klen;
			memcpy(after, ki[end - 1].key, afterlen);
		}
	}
	free(ki);
	free(ops);
	return r;
}

/* Fold block b of ino into one base record when its extents overlap at
 * least min_waste bytes of what it holds (0: whenever it has extents).
 * Returns the bytes appended, 0 when left as it is, or a negative errno. */
static ssize_t compact_block(struct qfs *fs, uint64_t ino, uint64_t b, uint32_t min_waste,
			     bool local_only)
{
	struct node *n;
	int r = node_get(fs, ino, 1, 0, &n);
	if (r)
		return r == -ENOENT ? 0 : r;
	uint8_t *buf = NULL;
	ssize_t ret = 0;
	/* under the inode's lock, as a write: nothing changes the block
	 * between the read of its pieces and the batch that replaces them */
	pthread_rwlock_wrlock(&n->lock);
	struct ext_block eb;
	r = n->rec.nlink ? block_load(fs, ino, b, &eb) : -ENOENT;
	uint64_t held = 0;
	for (size_t i = 0; !r && i < eb.n; i++)
		held += eb.e[i].len;
	bool go = !r && eb.n &&
		  (eb.has_base ? eb.base_len : 0) + held - ext_block_len(&eb) >= min_waste;
	if (go && local_only) {
		/* a background sweep fetches nothing back, and leaves a block
		 * being written right now (a piece in the active segment) to a
		 * later pass: folding it would likely be undone at once */
		uint8_t k[32];
		go = !eb.has_base || cache_key_local(fs->c, k, key_block(k, ino, b)) == 1;
		for (size_t i = 0; go && i < eb.n; i++)
			go = cache_key_local(fs->c, k, key_extent(k, ino, b, eb.e[i].off)) == 1;
	}
	if (go) {
		buf = malloc(FS_BLOCK);
		ssize_t len = buf ? block_fill(fs, ino, b, &eb, buf) : -ENOMEM;
		r = len < 0 ? (int)len : block_rewrite(fs, ino, &n->rec, b, &eb, buf, (size_t)len);
		ret = r ? r : len ? len : 1;	/* > 0 even for an empty fold */
	}
	pthread_rwlock_unlock(&n->lock);
	node_put(fs, n, 1, 0);
	free(buf);
	return r == -ENOENT ? 0 : r ? r : ret;
}

ssize_t qfs_compact_key(void *arg, const uint8_t *key, size_t klen)
{
	if ((klen != 17 && klen != 19) || key[0] != K_BLOCK)
		return 0;	/* not a data block: moved as it is */
	return compact_block(arg, get_be64(key + 1), get_be64(key + 9), 0, false);
}

struct defrag {
	struct qfs *fs;
	struct qfs_defrag *d;
	uint64_t budget;
	uint32_t min_waste;
	int err;
};

static int defrag_cb(void *arg, const uint8_t *key, size_t klen, const uint8_t *val,
		     size_t vlen)
{
	(void)val;
	(void)vlen;
	struct defrag *x = arg;
	if (klen != 19)
		return 0;	/* a base: blocks with extents are met at their extents */
	uint64_t ino = get_be64(key + 1), b = get_be64(key + 9);
	/* go on after this block's last possible extent next time */
	key_extent(x->d->cursor, ino, b, 0xffff);
	x->d->have_cursor = true;
	x->d->blocks++;
	/* a partial fold (min_waste) is the background's: local blocks only */
	ssize_t w = compact_block(x->fs, ino, b, x->min_waste, x->min_waste > 0);
	if (w < 0) {
		x->err = (int)w;
		return 1;
	}
	if (w > 0) {
		x->d->folded++;
		x->d->bytes += (uint64_t)w;
	}
	return x->d->bytes >= x->budget;
}

int qfs_defrag(struct qfs *fs, struct qfs_defrag *d, uint64_t budget, uint32_t min_waste)
{
	uint8_t p[1] = { K_BLOCK };
	d->bytes = d->folded = d->blocks = 0;
	struct defrag x = { fs, d, budget ? budget : UINT64_MAX, min_waste, 0 };
	int r = cache_scan_from(fs->c, p, 1, d->have_cursor ? d->cursor : NULL,
				d->have_cursor ? 19 : 0, false, defrag_cb, &x);
	if (x.err)
		return x.err;
	if (r < 0)
		return r;
	if (r == 0)
		d->have_cursor = false;	/* the end: the next sweep starts over */
	return r == 0;
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

/* Write len bytes at off into the blocks of n; size is the file size after
 * the write (for trimming the last block). n->lock held for writing. */
static int write_blocks(struct qfs *fs, struct node *n, const uint8_t *buf, size_t len,
			uint64_t off, uint64_t size)
{
	uint64_t ino = n->ino;
	uint8_t *tmp = NULL;
	int r = 0;
	size_t done = 0;
	while (done < len && !r) {
		uint64_t pos = off + done, b = pos / FS_BLOCK;
		size_t in = (size_t)(pos % FS_BLOCK), take = FS_BLOCK - in;
		if (take > len - done)
			take = len - done;
		uint64_t limit = size - b * FS_BLOCK;	/* the file's end in this block */
		struct ext_block eb;
		r = block_load(fs, ino, b, &eb);
		if (!r)
			r = block_patch(fs, ino, &n->rec, b, &eb, in, buf + done, take,
					limit < FS_BLOCK ? (size_t)limit : FS_BLOCK, &tmp);
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
		r = write_blocks(fs, n, buf, len, (uint64_t)off, rec.size);
	if (!r) {
		rec.mtime = rec.ctime = qfs_now();
		r = node_store(fs, n, &rec);
	}
	if (r)
		n->tail_clean = false;	/* some blocks may be in, past the size */
	pthread_rwlock_unlock(&n->lock);
	return r ? r : (ssize_t)len;
}

int data_cut(struct qfs *fs, uint64_t ino, struct inode_rec *rec, uint64_t size)
{
	uint64_t keep = (size + FS_BLOCK - 1) / FS_BLOCK;	/* blocks that stay */
	int r = blocks_drop(fs, ino, rec, keep);
	if (r || size % FS_BLOCK == 0)
		return r;
	/* the new last block: cut its value at the new size, so growing later
	 * reads zeros there */
	uint64_t b = size / FS_BLOCK;
	size_t cut = (size_t)(size % FS_BLOCK);
	struct ext_block eb;
	r = block_load(fs, ino, b, &eb);
	if (r || ext_block_len(&eb) <= cut)
		return r;
	uint8_t *tmp = malloc(FS_BLOCK);
	if (!tmp)
		return -ENOMEM;
	ssize_t have = block_fill(fs, ino, b, &eb, tmp);
	r = have < 0 ? (int)have : block_rewrite(fs, ino, rec, b, &eb, tmp, cut);
	free(tmp);
	return r;
}

int tail_clean(struct qfs *fs, struct node *n)
{
	if (n->tail_clean)
		return 0;
	int r = data_cut(fs, n->ino, &n->rec, n->rec.size);
	n->tail_clean = !r;
	return r;
}

int trunc_finish(struct qfs *fs, uint64_t ino, struct inode_rec *rec, uint64_t size)
{
	int r = data_cut(fs, ino, rec, size);
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
static int zero_range(struct qfs *fs, uint64_t ino, struct inode_rec *rec, uint64_t b,
		      size_t from, size_t to)
{
	struct ext_block eb;
	int r = block_load(fs, ino, b, &eb);
	size_t have = r ? 0 : ext_block_len(&eb);	/* past it: zeros already */
	if (to > have)
		to = have;
	uint8_t *tmp = NULL;
	if (!r && from < to)
		r = block_patch(fs, ino, rec, b, &eb, from, zeros, to - from, have, &tmp);
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
				r = block_del(fs, ino, &n->rec, b);
			else
				r = zero_range(fs, ino, &n->rec, b,
					       (size_t)(start > bs ? start - bs : 0),
					       (size_t)((end < be ? end : be) - bs));
		}
	} else {
		/* allocate: the space is taken now (zero blocks where there are
		 * holes), so later writes to the range cannot fail for space */
		uint64_t size = mode ? rec.size : (end > rec.size ? end : rec.size);
		r = size > rec.size ? tail_clean(fs, n) : 0;	/* the new range reads zeros */
		uint8_t *tmp = NULL;	/* block_patch's scratch */
		for (uint64_t b = start / FS_BLOCK; !r && b * FS_BLOCK < end; b++) {
			uint64_t bs = b * FS_BLOCK;
			uint64_t want = size > bs ? size - bs : 0;
			if (want > FS_BLOCK)
				want = FS_BLOCK;
			struct ext_block eb;
			r = block_load(fs, ino, b, &eb);
			size_t have = r ? 0 : ext_block_len(&eb);
			if (!r && have < want)
				r = block_patch(fs, ino, &n->rec, b, &eb, have, zeros,
						(size_t)want - have, (size_t)want, &tmp);
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
	if (kl != 17 && kl != 19)	/* a base or an extent: data either way */
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
