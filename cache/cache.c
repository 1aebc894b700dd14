/* cache/cache.c - the data path of the segment log: put, del, get, scan,
 * sync, seal, confirm, stats. Opening and recovery are in cache_open.c,
 * background work (checkpoint files, hooks, eviction) in cache_worker.c.
 */
#include "cache_int.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "../common/config.h"

#include "hook.h"
#include "segment.h"
#include "../common/fsutil.h"
#include "../common/qlog.h"

void cache_path(const struct cache *c, const char *name, char *out, size_t n)
{
	snprintf(out, n, "%s/%s", c->dir, name);
}

struct seg *seg_get_or_add(struct cache *c, uint64_t id)
{
	if (id == 0 || id >= UINT32_MAX)
		return NULL;
	if (id >= c->segs_cap) {
		uint64_t nc = c->segs_cap ? c->segs_cap : 64;
		while (nc <= id)
			nc *= 2;
		struct seg **ns = realloc(c->segs, nc * sizeof *ns);
		if (!ns)
			return NULL;
		memset(ns + c->segs_cap, 0, (nc - c->segs_cap) * sizeof *ns);
		c->segs = ns;
		c->segs_cap = nc;
	}
	if (!c->segs[id]) {
		struct seg *s = calloc(1, sizeof *s);
		if (!s)
			return NULL;
		s->id = id;
		s->fd = -1;
		c->segs[id] = s;
	}
	if (id > c->last_seg)
		c->last_seg = id;
	return c->segs[id];
}

/* Note key as changed since the last delta, unless it already is (its old
 * location is newer than built_upto, so it was noted when written there). */
static int dirty_note(struct cache *c, const uint8_t *key, size_t klen,
		      const struct ix_loc *old)
{
	if (old && old->seg > c->built_upto)
		return 0;
	if (c->dirty_len + 1 + klen > c->dirty_cap) {
		size_t nc = c->dirty_cap ? c->dirty_cap * 2 : 65536;
		uint8_t *nd = realloc(c->dirty, nc);
		if (!nd)
			return -ENOMEM;
		c->dirty = nd;
		c->dirty_cap = nc;
	}
	c->dirty[c->dirty_len] = (uint8_t)klen;
	memcpy(c->dirty + c->dirty_len + 1, key, klen);
	c->dirty_len += 1 + klen;
	return 0;
}

static void account_drop(struct cache *c, const struct ix_loc *old)
{
	struct seg *s = seg_find(c, old->seg);
	if (s) {
		s->live -= old->len;
		s->flags |= SF_DIRTY;
		if (!s->live && (s->flags & SF_SEALED))	/* dead now (cache_gc.c) */
			s->dead_upto = c->active ? c->active->id : c->last_seg + 1;
	}
}

/* apply_record, also giving what the key held before (*had, *prev), so that
 * a failed batch can be undone. */
static int apply_record_prev(struct cache *c, uint8_t type, const uint8_t *key, size_t klen,
			     struct ix_loc loc, bool *had_out, struct ix_loc *prev)
{
	struct ix_loc old = { 0 };
	int had;
	if (type == REC_PUT) {
		had = ix_put(c->ix, key, klen, loc, &old);
		if (had < 0)
			return had;
	} else {
		had = ix_del(c->ix, key, klen, &old) == 0;
	}
	if (dirty_note(c, key, klen, had ? &old : NULL) < 0) {
		/* keep the index and the dirty list in step: undo */
		if (type == REC_PUT) {
			if (had)
				ix_put(c->ix, key, klen, old, NULL);
			else
				ix_del(c->ix, key, klen, NULL);
		} else if (had) {
			ix_put(c->ix, key, klen, old, NULL);
		}
		return -ENOMEM;
	}
	if (had)
		account_drop(c, &old);
	struct seg *s = seg_find(c, loc.seg);
	if (type == REC_PUT)
		s->live += loc.len;
	s->flags |= SF_DIRTY;
	*had_out = had;
	*prev = old;
	return 0;
}

int apply_record(struct cache *c, uint8_t type, const uint8_t *key, size_t klen,
		 struct ix_loc loc)
{
	bool had;
	struct ix_loc prev;
	return apply_record_prev(c, type, key, klen, loc, &had, &prev);
}

/* Undo apply_record_prev (the key noted dirty stays noted: harmless, the
 * next delta writes its state as it is). Putting back a deleted key needs
 * memory; if even that fails the index is wrong, and the log refuses
 * writes until a reopen rebuilds it. */
static void unapply_record(struct cache *c, uint8_t type, const uint8_t *key, size_t klen,
			   struct ix_loc loc, bool had, struct ix_loc prev)
{
	if (had && ix_put(c->ix, key, klen, prev, NULL) < 0) {
		atomic_store(&c->io_error, -ENOMEM);
		qlog_err("cache: out of memory while taking back a failed batch; the log "
			 "refuses writes until it is reopened");
	} else if (!had && type == REC_PUT)
		ix_del(c->ix, key, klen, NULL);
	if (had) {
		struct seg *o = seg_find(c, prev.seg);
		if (o)
			o->live += prev.len;
	}
	if (type == REC_PUT)
		seg_find(c, loc.seg)->live -= loc.len;
}

int new_active(struct cache *c)
{
	uint64_t id = c->last_seg + 1;
	uint8_t hdr[SEG_HDR_SIZE];
	int fd = seg_create(c->dirfd, id, c->volid, hdr);
	/* seg_create removes its temp file on failure: nothing to undo */
	if (fd < 0 && space_release(c, fd))
		fd = seg_create(c->dirfd, id, c->volid, hdr);
	if (fd < 0) {
		qlog_err("cache: cannot create segment %" PRIu64 " in %s: %s", id,
			 c->dir, strerror(-fd));
		return fd;
	}
	struct seg *s = seg_get_or_add(c, id);
	if (!s) {
		char name[SEG_NAME_LEN];
		seg_name(id, name);
		close(fd);
		unlinkat(c->dirfd, name, 0);
		return -ENOMEM;
	}
	s->fd = fd;
	s->size = SEG_HDR_SIZE;
	s->live = 0;
	s->flags = SF_LOCAL | SF_DIRTY;
	atomic_store(&s->last_read, atomic_fetch_add(&c->tick, 1) + 1);
	sum_reset(c->active_sum, 0);
	sum_update(c->active_sum, hdr, SEG_HDR_SIZE);
	c->active = s;
	c->active_nrec = 0;
	c->active_since_ns = 0;
	c->active_age_unknown = false;
	c->writeback_off = SEG_HDR_SIZE;
	atomic_store(&s->synced, SEG_HDR_SIZE);
	return 0;
}

/* Write iov[0..n) (n <= 4) at the tail of the active segment. On failure
 * the tail is cut back so that no partial record stays behind. Returns 0
 * or -errno (not logged: write_tail does). */
static int write_tail_once(struct cache *c, const struct iovec *iov, int n)
{
	struct seg *a = c->active;
	size_t total = 0, done = 0;
	for (int i = 0; i < n; i++)
		total += iov[i].iov_len;
	int r = 0;
	while (done < total) {
		/* skip what was written already */
		struct iovec v[4];
		int k = 0;
		size_t skip = done;
		for (int i = 0; i < n; i++) {
			if (skip >= iov[i].iov_len) {
				skip -= iov[i].iov_len;
				continue;
			}
			v[k].iov_base = (uint8_t *)iov[i].iov_base + skip;
			v[k].iov_len = iov[i].iov_len - skip;
			skip = 0;
			k++;
		}
		ssize_t w = pwritev(a->fd, v, k, (off_t)(a->size + done));
		if (w < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			break;
		}
		if (w == 0) {
			r = -EIO;
			break;
		}
		done += (size_t)w;
	}
	if (r && ftruncate(a->fd, (off_t)a->size) < 0) {
		char name[SEG_NAME_LEN];
		seg_name(a->id, name);
		qlog_err("cache: %s: cannot cut back a failed write at offset %" PRIu64 ": %s",
			 name, a->size, strerror(errno));
	}
	return r;
}

/* write_tail_once; on a full disk the reserve is given up and the write
 * tried once more: it was cut back, so nothing of the first try stays
 * (this is pwrite's ENOSPC, not an fdatasync error: nothing written
 * before is in doubt). Logs a failure. */
static int write_tail(struct cache *c, const struct iovec *iov, int n)
{
	int r = write_tail_once(c, iov, n);
	if (r && space_release(c, r))
		r = write_tail_once(c, iov, n);
	if (r) {
		char name[SEG_NAME_LEN];
		seg_name(c->active->id, name);
		qlog_err("cache: %s/%s: append at offset %" PRIu64 " failed: %s", c->dir, name,
			 c->active->size, strerror(-r));
	}
	return r;
}

/* Write one record at the tail of the active segment (hdr is filled). */
static int write_record(struct cache *c, uint8_t hdr[REC_HDR_SIZE], uint8_t type,
			const void *key, size_t klen, const void *val, size_t vlen)
{
	rec_encode_hdr(hdr, c->active->id, type, key, klen, val, vlen);
	struct iovec iov[3] = {
		{ hdr, REC_HDR_SIZE }, { (void *)key, klen }, { (void *)val, vlen },
	};
	return write_tail(c, iov, vlen ? 3 : (klen ? 2 : 1));
}

int64_t seal_locked(struct cache *c)
{
	struct seg *a = c->active;
	char name[SEG_NAME_LEN];
	seg_name(a->id, name);
	struct seal_info si = {
		.nrecords = c->active_nrec,
		.seal_off = a->size,
		.content_sum = sum_digest(c->active_sum),
	};
	uint8_t val[SEAL_VAL_SIZE], hdr[REC_HDR_SIZE];
	seal_encode(&si, val);
	int r = write_record(c, hdr, REC_SEAL, NULL, 0, val, sizeof val);
	if (!r && fdatasync(a->fd) < 0) {
		r = -errno;
		atomic_store(&c->io_error, r);
		qlog_err("cache: %s: fdatasync at seal failed: %s; the log refuses writes "
			 "until it is reopened", name, strerror(-r));
		if (ftruncate(a->fd, (off_t)a->size) < 0)
			qlog_err("cache: %s: cannot cut back the seal record", name);
	}
	if (r)
		return r;
	a->size += SEAL_REC_SIZE;
	seg_step(c, a, SE_SEAL);	/* the active segment: always allowed */
	a->flags |= SF_DIRTY;
	if (!a->live)
		a->dead_upto = a->id;	/* dead from its seal on */
	atomic_store(&a->synced, a->size);
	fchmod(a->fd, 0444);	/* a sealed segment is never written again */
	c->active = NULL;
	qlog_debug("cache: sealed %s (%" PRIu64 " bytes, %" PRIu64 " records)", name,
		   a->size, si.nrecords);
	if (++c->seals_since_delta >= c->o.checkpoint_every) {
		r = build_delta(c, a->id);
		if (r)
			qlog_warn("cache: cannot build the checkpoint after %s: %s; "
				  "the next one will cover it", name, strerror(-r));
	}
	new_active(c);	/* on failure the next append retries */
	return (int64_t)a->id;
}

/* Start writeback of the active segment every WRITEBACK_STEP bytes, so that
 * the fdatasync at seal (taken under the write lock) finds little left to
 * write. Asynchronous: it does not wait for the disk. */
#define WRITEBACK_STEP (8u << 20)

static void start_writeback(struct cache *c, struct seg *a)
{
	if (a->size - c->writeback_off < WRITEBACK_STEP)
		return;
	sync_file_range(a->fd, (off64_t)c->writeback_off, (off64_t)(a->size - c->writeback_off),
			SYNC_FILE_RANGE_WRITE);
	c->writeback_off = a->size;
}

/* Make sure there is an active segment that can take len more bytes before
 * its seal record, sealing the current one if not (*sealed is then set: the
 * caller wakes the worker). len <= c->max_record. */
static int make_room(struct cache *c, uint64_t len, bool *sealed)
{
	if (!c->active) {
		int r = new_active(c);
		if (r)
			return r;
	}
	if (c->active->size + len + SEAL_REC_SIZE > c->o.segment_size) {
		int64_t r = seal_locked(c);
		if (r < 0)
			return (int)r;
		*sealed = true;
		if (!c->active)
			return new_active(c);
	}
	return 0;
}

/* Append a record; *sealed is set when the active segment was sealed on the
 * way (the caller then wakes the worker). */
static int append_locked(struct cache *c, uint8_t type, const void *key,
			 size_t klen, const void *val, size_t vlen, bool *sealed)
{
	if (vlen > c->max_record)	/* before adding: rec_len must not wrap */
		return -EINVAL;
	uint64_t len = rec_len(klen, vlen);
	if (len > c->max_record)
		return -EINVAL;
	int r = make_room(c, len, sealed);
	if (r)
		return r;
	struct seg *a = c->active;
	uint8_t hdr[REC_HDR_SIZE];
	r = write_record(c, hdr, type, key, klen, val, vlen);
	if (r)
		return r;
	struct ix_loc loc = { .seg = (uint32_t)a->id, .off = (uint32_t)a->size,
			      .len = (uint32_t)len };
	r = apply_record(c, type, key, klen, loc);
	if (r) {
		if (ftruncate(a->fd, (off_t)a->size) < 0)
			qlog_err("cache: segment %" PRIu64 ": cannot cut back a record", a->id);
		return r;
	}
	a->size += len;
	if (!c->active_nrec++)
		c->active_since_ns = fs_now_ns();
	sum_update(c->active_sum, hdr, REC_HDR_SIZE);
	sum_update(c->active_sum, key, klen);
	sum_update(c->active_sum, val, vlen);
	start_writeback(c, a);
	space_note_append(c, len);
	return 0;
}

static int check_key(struct cache *c, size_t klen)
{
	if (c->o.read_only)
		return -EROFS;
	if (klen == 0 || klen > KEY_MAX)
		return -EINVAL;
	if (atomic_load(&c->fenced))
		return -EROFS;
	return atomic_load(&c->io_error);
}

void cache_fence(struct cache *c)
{
	atomic_store(&c->fenced, true);
}

/* Append one record under the write lock, waking the worker after a seal. */
static int append_one(struct cache *c, uint8_t type, const void *key, size_t klen,
		      const void *val, size_t vlen)
{
	bool sealed = false;
	pthread_rwlock_wrlock(&c->lock);
	int r = append_locked(c, type, key, klen, val, vlen, &sealed);
	pthread_rwlock_unlock(&c->lock);
	if (sealed)
		worker_kick(c, false, false);
	return r;
}

int cache_put(struct cache *c, const void *key, size_t klen, const void *val,
	      size_t vlen)
{
	int r = check_key(c, klen);
	return r ? r : append_one(c, REC_PUT, key, klen, val, vlen);
}

/* Append one record of key under the write lock if key exists and, when
 * expect is given, its current record is exactly there. Returns 1 when
 * appended, 0 when key is elsewhere, -ENOENT when it does not exist, or as
 * append_locked. Wakes the worker after a seal. */
static int append_checked(struct cache *c, uint8_t type, const void *key, size_t klen,
			  const void *val, size_t vlen, const struct ix_loc *expect)
{
	int r = check_key(c, klen);
	if (r)
		return r;
	bool sealed = false;
	pthread_rwlock_wrlock(&c->lock);
	struct ix_loc loc;
	r = ix_get(c->ix, key, klen, &loc);
	if (!r && expect && (loc.seg != expect->seg || loc.off != expect->off))
		r = 0;
	else if (!r && !(r = append_locked(c, type, key, klen, val, vlen, &sealed)))
		r = 1;
	pthread_rwlock_unlock(&c->lock);
	if (sealed)
		worker_kick(c, false, false);
	return r;
}

int cache_del(struct cache *c, const void *key, size_t klen)
{
	int r = append_checked(c, REC_DEL, key, klen, NULL, 0, NULL);
	return r == 1 ? 0 : r;
}

int move_record(struct cache *c, const uint8_t *key, size_t klen, uint64_t seg, uint64_t off,
		const void *val, size_t vlen)
{
	/* overwritten or deleted since: garbage, not moved (0) */
	struct ix_loc at = { .seg = (uint32_t)seg, .off = (uint32_t)off };
	int r = append_checked(c, REC_PUT, key, klen, val, vlen, &at);
	return r == -ENOENT ? 0 : r;
}

/* Encode ops as one batch for segment seg_id into buf (len bytes: a BATCH
 * record, then the records). */
static void batch_build(uint8_t *buf, uint64_t len, uint64_t seg_id,
			const struct cache_op *ops, size_t n)
{
	uint8_t bval[BATCH_VAL_SIZE];
	struct batch_info bi = { .count = (uint32_t)n, .bytes = len - BATCH_REC_SIZE };
	batch_encode(&bi, bval);
	rec_encode_hdr(buf, seg_id, REC_BATCH, NULL, 0, bval, sizeof bval);
	memcpy(buf + REC_HDR_SIZE, bval, sizeof bval);
	uint64_t pos = BATCH_REC_SIZE;
	for (size_t i = 0; i < n; i++) {
		size_t vlen = ops[i].del ? 0 : ops[i].vlen;
		uint8_t type = ops[i].del ? REC_DEL : REC_PUT;
		rec_encode_hdr(buf + pos, seg_id, type, ops[i].key, ops[i].klen, ops[i].val, vlen);
		memcpy(buf + pos + REC_HDR_SIZE, ops[i].key, ops[i].klen);
		if (vlen)
			memcpy(buf + pos + REC_HDR_SIZE + ops[i].klen, ops[i].val, vlen);
		pos += rec_len(ops[i].klen, vlen);
	}
}

int cache_apply(struct cache *c, const struct cache_op *ops, size_t n)
{
	if (n == 0 || n > CACHE_BATCH_MAX)
		return -EINVAL;
	uint64_t len = BATCH_REC_SIZE;
	for (size_t i = 0; i < n; i++) {
		int r = check_key(c, ops[i].klen);
		if (r)
			return r;
		size_t vlen = ops[i].del ? 0 : ops[i].vlen;
		if (vlen > c->max_record)
			return -EINVAL;
		len += rec_len(ops[i].klen, vlen);
		if (len > c->max_record)
			return -EINVAL;
	}
	if (n == 1)
		return append_one(c, ops[0].del ? REC_DEL : REC_PUT, ops[0].key, ops[0].klen,
				  ops[0].val, ops[0].del ? 0 : ops[0].vlen);
	bool sealed = false;
	uint8_t *buf = malloc(len);
	if (!buf)
		return -ENOMEM;
	pthread_rwlock_wrlock(&c->lock);
	int r = make_room(c, len, &sealed);
	struct seg *a = c->active;
	if (!r) {
		batch_build(buf, len, a->id, ops, n);
		r = write_tail(c, &(struct iovec){ buf, len }, 1);
	}
	struct undo {
		struct ix_loc loc, prev;
		bool had;
	} *u = r ? NULL : malloc(n * sizeof *u);
	if (!r && !u) {
		r = -ENOMEM;
		if (ftruncate(a->fd, (off_t)a->size) < 0)
			qlog_err("cache: segment %" PRIu64 ": cannot cut back a batch", a->id);
	}
	uint64_t pos = BATCH_REC_SIZE;
	size_t applied = 0;
	for (size_t i = 0; !r && i < n; i++) {
		uint64_t rl = rec_len(ops[i].klen, ops[i].del ? 0 : ops[i].vlen);
		u[i].loc = (struct ix_loc){ .seg = (uint32_t)a->id,
					    .off = (uint32_t)(a->size + pos), .len = (uint32_t)rl };
		r = apply_record_prev(c, ops[i].del ? REC_DEL : REC_PUT, ops[i].key, ops[i].klen,
				      u[i].loc, &u[i].had, &u[i].prev);
		if (!r)
			applied++;
		pos += rl;
	}
	if (r && u) {
		/* the index could not take it all: take back what it took (in
		 * reverse, so a key written twice gets its first old value) and
		 * cut the batch off the file */
		while (applied-- > 0)
			unapply_record(c, ops[applied].del ? REC_DEL : REC_PUT, ops[applied].key,
				       ops[applied].klen, u[applied].loc, u[applied].had,
				       u[applied].prev);
		if (ftruncate(a->fd, (off_t)a->size) < 0)
			qlog_err("cache: segment %" PRIu64 ": cannot cut back a batch", a->id);
	}
	free(u);
	if (!r) {
		a->size += len;
		if (!c->active_nrec)
			c->active_since_ns = fs_now_ns();
		c->active_nrec += n + 1;
		sum_update(c->active_sum, buf, len);
		start_writeback(c, a);
		space_note_append(c, len);
	}
	pthread_rwlock_unlock(&c->lock);
	free(buf);
	if (sealed)
		worker_kick(c, false, false);
	return r;
}

/* Read the record at loc and check it against key and its checksum.
 * Returns the value length, -EBADMSG when the bytes on disk are not that
 * record (logged, naming segment, file and offset), or -EIO / -ENOMEM. */
static ssize_t read_record(struct cache *c, int fd, struct ix_loc loc,
			   const void *key, size_t klen, void *buf, size_t cap)
{
	uint8_t head[REC_HDR_SIZE + KEY_MAX];
	size_t vlen = loc.len - REC_HDR_SIZE - klen;
	uint8_t *vbuf = buf, *tmp = NULL;
	if (cap < vlen) {
		tmp = malloc(vlen ? vlen : 1);
		if (!tmp)
			return -ENOMEM;
		vbuf = tmp;
	}
	struct iovec iov[2] = { { head, REC_HDR_SIZE + klen }, { vbuf, vlen } };
	ssize_t n;
	do
		n = preadv(fd, iov, 2, loc.off);
	while (n < 0 && errno == EINTR);
	const char *why = NULL;
	struct rec_hdr h;
	if (n < 0) {
		int e = errno;
		qlog_err("cache: segment %" PRIu32 " offset %" PRIu32 ": read failed: %s",
			 loc.seg, loc.off, strerror(e));
		free(tmp);
		return -EIO;
	}
	if ((size_t)n != loc.len)
		why = "short read (file truncated?)";
	else if (rec_decode_hdr(head, &h) || h.type != REC_PUT || h.klen != klen ||
		 h.vlen != vlen || memcmp(head + REC_HDR_SIZE, key, klen))
		why = "record header does not match the index";
	else if (!rec_verify_parts(head, loc.seg, key, klen, vbuf, vlen))
		why = "record checksum mismatch";
	if (why) {
		char name[SEG_NAME_LEN];
		seg_name(loc.seg, name);
		qlog_err("cache: corrupt record in segment %" PRIu32 " (%s/%s) at offset %"
			 PRIu32 ": %s", loc.seg, c->dir, name, loc.off, why);
		free(tmp);
		return -EBADMSG;	/* the caller may fetch a good copy */
	}
	if (tmp) {
		if (cap)
			memcpy(buf, tmp, cap);
		free(tmp);
	}
	return (ssize_t)vlen;
}

/* Close the least recently read unpinned fds of sealed segments until
 * fewer than max_open_fds are open. Needs c->lock (write). */
static void fd_budget_locked(struct cache *c)
{
	unsigned open = 0;
	for (uint64_t i = 1; i <= c->last_seg; i++)
		open += c->segs[i] && c->segs[i]->fd >= 0;
	while (open >= c->o.max_open_fds) {
		struct seg *lru = NULL;
		for (uint64_t i = 1; i <= c->last_seg; i++) {
			struct seg *s = c->segs[i];
			if (s && s->fd >= 0 && s != c->active && !atomic_load(&s->pins) &&
			    (!lru || atomic_load(&s->last_read) < atomic_load(&lru->last_read)))
				lru = s;
		}
		if (!lru)
			return;	/* all in use: go over the budget for a while */
		close(lru->fd);
		lru->fd = -1;
		open--;
	}
}

/* Open the fd of a local segment for reading. */
static int seg_open_fd(struct cache *c, uint64_t id)
{
	int r = 0;
	pthread_rwlock_wrlock(&c->lock);
	struct seg *s = seg_find(c, id);
	if (s && (s->flags & SF_LOCAL) && s->fd < 0) {
		fd_budget_locked(c);
		char name[SEG_NAME_LEN];
		seg_name(id, name);
		int fd = openat(c->dirfd, name, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			r = -errno;
			qlog_err("cache: cannot open segment %" PRIu64 " (%s/%s): %s", id, c->dir,
				 name, strerror(-r));
			if (r != -EMFILE && r != -ENFILE && r != -ENOMEM)
				r = -EIO;
		} else {
			s->fd = fd;
		}
	}
	pthread_rwlock_unlock(&c->lock);
	return r;
}

/* A record of sealed segment s failed its checks on local disk, read
 * through fd. If storage holds the segment (confirmed, or handed off) and a hook can
 * fetch it, set the local file aside as seg-N.qseg.corrupt (kept for
 * inspection) so the next read fetches a good copy. Readers still using
 * the old fd may go on with it (and land here too): it is kept open, on a
 * list closed by cache_close, since a pin cannot tell old readers from new
 * ones; repairs are rare. Returns 0 when the caller should read again (set
 * aside now, or already by another reader), else -EIO. */
static int set_aside(struct cache *c, struct seg *s, int fd)
{
	if (c->o.read_only || !c->handoff_on)
		return -EIO;
	char name[SEG_NAME_LEN], bad[SEG_NAME_LEN + 16];
	seg_name(s->id, name);
	snprintf(bad, sizeof bad, "%s.corrupt", name);
	int r = -EIO;
	bool now = false;
	pthread_rwlock_wrlock(&c->lock);
	if (s->fd != fd) {
		r = 0;	/* another reader set it aside already */
	} else if (s != c->active && (s->flags & SF_SEALED) &&
		   (s->flags & (SF_CONFIRMED | SF_HANDED))) {
		/* storage has it: on the backends (confirmed) or in its journal
		 * or already uploaded (handed off); a fetched copy is verified
		 * whole before it replaces this one */
		int *v = realloc(c->stale_fds, (c->nstale_fds + 1) * sizeof *v);
		if (v && renameat(c->dirfd, name, c->dirfd, bad) == 0) {
			c->stale_fds = v;
			c->stale_fds[c->nstale_fds++] = s->fd;
			s->fd = -1;
			seg_step(c, s, SE_SET_ASIDE);	/* confirmed or handed: checked above */
			c->local_repairs++;
			fs_fsync_dir(c->dirfd);
			r = 0;
			now = true;
		} else if (v) {
			c->stale_fds = v;
		}
	}
	pthread_rwlock_unlock(&c->lock);
	if (now)
		qlog_warn("cache: segment %" PRIu64 " failed its checks on local disk; set aside "
			  "as %s/%s, fetching the copy storage holds", s->id, c->dir, bad);
	return r;
}

ssize_t cache_get(struct cache *c, const void *key, size_t klen, void *buf,
		  size_t cap)
{
	if (klen == 0 || klen > KEY_MAX)
		return -EINVAL;
	struct seg *fetched = NULL;	/* pinned for us by the fetch */
	ssize_t ret = -EIO;
	bool repaired = false;
	int tries;
	for (tries = 0; tries < 4; tries++) {
		pthread_rwlock_rdlock(&c->lock);
		struct ix_loc loc;
		int r = ix_get(c->ix, key, klen, &loc);
		if (r) {
			pthread_rwlock_unlock(&c->lock);
			ret = r;
			break;
		}
		struct seg *s = seg_find(c, loc.seg);
		if (s && s->fd >= 0) {
			atomic_fetch_add(&s->pins, 1);
			atomic_store(&s->last_read, atomic_fetch_add(&c->tick, 1) + 1);
			int fd = s->fd;
			pthread_rwlock_unlock(&c->lock);
			ret = read_record(c, fd, loc, key, klen, buf, cap);
			atomic_fetch_sub(&s->pins, 1);
			/* a bad local copy of an uploaded segment: once per get,
			 * set it aside and read the one fetched from the backends */
			if (ret == -EBADMSG && !repaired && !set_aside(c, s, fd)) {
				repaired = true;
				continue;
			}
			if (ret == -EBADMSG)
				ret = -EIO;
			break;
		}
		bool local = s && (s->flags & SF_LOCAL);
		pthread_rwlock_unlock(&c->lock);
		if (local) {
			r = seg_open_fd(c, loc.seg);
			if (r) {
				ret = r;
				break;
			}
			continue;
		}
		if (c->o.read_only) {
			qlog_err("cache: segment %" PRIu32 " is not on local disk (a read-only open "
				 "does not fetch)", loc.seg);
			ret = -EIO;
			break;
		}
		struct seg *pinned;
		r = ensure_local(c, loc.seg, &pinned);
		if (pinned) {
			if (fetched)
				atomic_fetch_sub(&fetched->pins, 1);
			fetched = pinned;
		}
		if (r == -ENOENT)
			continue;	/* the key moved and its old segment went: look again */
		if (r) {
			ret = r;
			break;
		}
	}
	if (fetched)
		atomic_fetch_sub(&fetched->pins, 1);
	if (tries == 4)
		qlog_err("cache: segment of the key keeps disappearing; giving up");
	return ret;
}

/* Up to max keys under prefix from seek (after it when after, else from
 * it), with their value lengths, in one walk of the index under the read
 * lock. Returns the number listed. */
static size_t list_keys(struct cache *c, const void *prefix, size_t plen, const void *seek,
			size_t seeklen, bool after, struct cache_keyinfo *out, size_t max)
{
	size_t n = 0;
	pthread_rwlock_rdlock(&c->lock);
	const struct ix_node *x = ix_seek(c->ix, seek, seeklen, after);
	for (; x && n < max; x = ix_next(x)) {
		size_t kl;
		const uint8_t *k = ix_node_key(x, &kl);
		if (kl < plen || memcmp(k, prefix, plen))
			break;
		out[n].klen = (uint8_t)kl;
		memcpy(out[n].key, k, kl);
		out[n].vlen = ix_node_loc(x).len - REC_HDR_SIZE - (uint32_t)kl;
		n++;
	}
	pthread_rwlock_unlock(&c->lock);
	return n;
}

ssize_t cache_keys(struct cache *c, const void *prefix, size_t plen, const void *after,
		   size_t afterlen, struct cache_keyinfo *out, size_t max)
{
	if (plen > KEY_MAX || afterlen > KEY_MAX ||
	    (after && (afterlen < plen || memcmp(after, prefix, plen))))
		return -EINVAL;
	return (ssize_t)(after ? list_keys(c, prefix, plen, after, afterlen, true, out, max)
			       : list_keys(c, prefix, plen, prefix, plen, false, out, max));
}

#define SCAN_BATCH 256

int cache_scan(struct cache *c, const void *prefix, size_t plen,
	       bool with_values, cache_scan_cb cb, void *arg)
{
	return cache_scan_from(c, prefix, plen, NULL, 0, with_values, cb, arg);
}

int cache_scan_from(struct cache *c, const void *prefix, size_t plen, const void *from,
		    size_t fromlen, bool with_values, cache_scan_cb cb, void *arg)
{
	if (plen > KEY_MAX || fromlen > KEY_MAX)
		return -EINVAL;
	if (!from) {
		from = prefix;
		fromlen = plen;
	} else if (fromlen < plen || memcmp(from, prefix, plen)) {
		return -EINVAL;	/* it would start outside the prefix */
	}
	struct cache_keyinfo *batch = malloc(SCAN_BATCH * sizeof *batch);
	if (!batch)
		return -ENOMEM;
	uint8_t *val = NULL;
	size_t valcap = 0;
	uint8_t last[KEY_MAX];
	size_t lastlen = 0;
	bool started = false;
	int ret = 0;
	for (;;) {
		size_t n = started ? list_keys(c, prefix, plen, last, lastlen, true, batch, SCAN_BATCH)
				   : list_keys(c, prefix, plen, from, fromlen, false, batch, SCAN_BATCH);
		bool more = n == SCAN_BATCH;	/* at worst one empty walk more */
		for (size_t i = 0; i < n && !ret; i++) {
			struct cache_keyinfo *it = &batch[i];
			ssize_t vl = it->vlen;
			if (with_values) {
				for (;;) {
					if (it->vlen > valcap || !val) {
						uint8_t *nv = realloc(val, it->vlen + 1);
						if (!nv) {
							ret = -ENOMEM;
							break;
						}
						val = nv;
						valcap = it->vlen;
					}
					vl = cache_get(c, it->key, it->klen, val, valcap);
					if (vl >= 0 && (size_t)vl > valcap) {
						it->vlen = (uint32_t)vl;	/* changed meanwhile */
						continue;
					}
					break;
				}
				if (ret)
					break;
				if (vl == -ENOENT)
					continue;	/* deleted during the scan */
				if (vl < 0) {
					ret = (int)vl;
					break;
				}
			}
			ret = cb(arg, it->key, it->klen, with_values ? val : NULL, (size_t)vl);
		}
		if (ret || !more)
			break;
		lastlen = batch[n - 1].klen;
		memcpy(last, batch[n - 1].key, lastlen);
		started = true;
	}
	free(val);
	free(batch);
	return ret;
}

uint64_t cache_count_keys(struct cache *c, uint8_t first)
{
	pthread_rwlock_rdlock(&c->lock);
	uint64_t n = ix_count_first(c->ix, first);
	pthread_rwlock_unlock(&c->lock);
	return n;
}

int cache_sync(struct cache *c)
{
	if (c->o.read_only)
		return -EROFS;
	int e = atomic_load(&c->io_error);
	if (e)
		return e;
	pthread_rwlock_rdlock(&c->lock);
	struct seg *a = c->active;
	/* progress is counted per segment: a seal racing this sync cannot
	 * make the next segment look synced */
	if (!a || a->size <= atomic_load(&a->synced)) {
		pthread_rwlock_unlock(&c->lock);
		return 0;
	}
	uint64_t target = a->size;
	int fd = a->fd;
	atomic_fetch_add(&a->pins, 1);
	pthread_rwlock_unlock(&c->lock);
	int r = 0;
	if (fdatasync(fd) < 0) {
		r = -errno;
		int none = 0;
		if (atomic_compare_exchange_strong(&c->io_error, &none, r))
			qlog_err("cache: fdatasync of segment %" PRIu64 " failed: %s; the log "
				 "refuses writes until it is reopened", a->id, strerror(-r));
	} else {
		uint64_t cur = atomic_load(&a->synced);
		while (cur < target && !atomic_compare_exchange_weak(&a->synced, &cur, target))
			;
	}
	atomic_fetch_sub(&a->pins, 1);
	return r;
}

int64_t cache_seal(struct cache *c)
{
	if (c->o.read_only || atomic_load(&c->fenced))
		return -EROFS;
	if (atomic_load(&c->io_error))
		return atomic_load(&c->io_error);
	pthread_rwlock_wrlock(&c->lock);
	int64_t r = 0;
	if (c->active && c->active_nrec > 0)
		r = seal_locked(c);
	pthread_rwlock_unlock(&c->lock);
	if (r > 0)
		worker_kick(c, false, false);
	return r;
}

int64_t cache_seal_older(struct cache *c, uint64_t age_ns)
{
	if (c->o.read_only || atomic_load(&c->fenced))
		return -EROFS;
	if (atomic_load(&c->io_error))
		return atomic_load(&c->io_error);
	uint64_t now = fs_now_ns();
	pthread_rwlock_wrlock(&c->lock);
	int64_t r = 0;
	if (c->active && c->active_nrec > 0 &&
	    (c->active_age_unknown || now - c->active_since_ns >= age_ns))
		r = seal_locked(c);
	pthread_rwlock_unlock(&c->lock);
	if (r > 0)
		worker_kick(c, false, false);
	return r;
}

int cache_confirm(struct cache *c, uint64_t seg_id)
{
	if (c->o.read_only)
		return -EROFS;
	pthread_rwlock_rdlock(&c->lock);
	struct seg *s = seg_find(c, seg_id);
	int r = 0;
	if (!s)
		r = -ENOENT;
	else if (!(s->flags & SF_SEALED))
		r = -EINVAL;
	else if (s->flags & SF_CONFIRMED)
		r = 1;
	pthread_rwlock_unlock(&c->lock);
	if (r)
		return r > 0 ? 0 : r;
	pthread_mutex_lock(&c->slog_mu);
	r = journal_append(c, SLOG_SEG_CONFIRMED, seg_id);
	pthread_mutex_unlock(&c->slog_mu);
	if (r) {
		qlog_err("cache: cannot record the confirmation of segment %" PRIu64 ": %s",
			 seg_id, strerror(-r));
		return r;
	}
	pthread_rwlock_wrlock(&c->lock);
	r = seg_step(c, s, SE_CONFIRM);
	pthread_rwlock_unlock(&c->lock);
	if (r)
		return r;
	worker_kick(c, false, false);
	return 0;
}

int seg_step(struct cache *c, struct seg *s, enum seg_event e)
{
	enum seg_life from = seglife_of(s->flags, false), to = seglife_next(from, e, c->handoff_on);
	if (to == SL_REFUSED) {
		qlog_err("cache: segment %" PRIu64 ": %s refused while it is %s (a bug; nothing "
			 "changed)", s->id, seglife_event_name(e), seglife_state_name(from));
		return -EINVAL;
	}
	s->flags = seglife_flags(s->flags, e);
	return 0;
}

int cache_evict(struct cache *c)
{
	if (c->o.read_only)
		return -EROFS;
	pthread_rwlock_wrlock(&c->lock);
	int n = evict_locked(c);
	pthread_rwlock_unlock(&c->lock);
	return n;
}

void cache_quiesce(struct cache *c)
{
	if (!c->o.read_only)
		worker_kick(c, true, false);
}

uint64_t local_seg_bytes(const struct cache *c)
{
	uint64_t b = 0;
	for (uint64_t i = 1; i <= c->last_seg; i++)
		if (c->segs[i] && (c->segs[i]->flags & SF_LOCAL))
			b += c->segs[i]->size;
	return b;
}

uint64_t local_ckpt_bytes(const struct cache *c)
{
	uint64_t b = 0;
	for (size_t i = 0; i < c->nckpts; i++)
		if (c->ckpts[i].written)
			b += c->ckpts[i].bytes;
	return b;
}

uint64_t local_bytes(const struct cache *c)
{
	return local_seg_bytes(c) + local_ckpt_bytes(c);
}

static enum seg_state state_of(const struct cache *c, const struct seg *s)
{
	if (s == c->active || !(s->flags & SF_SEALED))
		return SEG_ACTIVE;
	if (s->flags & SF_LOST)
		return SEG_LOST;
	if (!(s->flags & SF_CONFIRMED))
		return SEG_SEALED;
	return (s->flags & SF_LOCAL) ? SEG_CONFIRMED : SEG_EVICTED;
}

const char *cache_state_name(enum seg_state s)
{
	switch (s) {
	case SEG_ACTIVE: return "active";
	case SEG_SEALED: return "sealed";
	case SEG_CONFIRMED: return "confirmed";
	case SEG_EVICTED: return "evicted";
	case SEG_LOST: return "lost";
	}
	return "?";
}

int cache_locate(struct cache *c, const void *key, size_t klen, uint64_t *seg)
{
	if (klen == 0 || klen > KEY_MAX)
		return -EINVAL;
	pthread_rwlock_rdlock(&c->lock);
	struct ix_loc loc;
	int r = ix_get(c->ix, key, klen, &loc);
	pthread_rwlock_unlock(&c->lock);
	if (!r)
		*seg = loc.seg;
	return r;
}

int cache_key_local(struct cache *c, const void *key, size_t klen)
{
	if (klen == 0 || klen > KEY_MAX)
		return -EINVAL;
	pthread_rwlock_rdlock(&c->lock);
	struct ix_loc loc;
	int r = ix_get(c->ix, key, klen, &loc);
	if (!r) {
		const struct seg *s = seg_find(c, loc.seg);
		r = !s || !(s->flags & SF_LOCAL) ? 0 : s == c->active ? 2 : 1;
	}
	pthread_rwlock_unlock(&c->lock);
	return r;
}

int cache_segments(struct cache *c,
		   void (*cb)(void *arg, const struct cache_seg_info *s), void *arg)
{
	pthread_rwlock_rdlock(&c->lock);
	size_t n = 0;
	struct cache_seg_info *v = malloc((c->last_seg + 1) * sizeof *v);
	if (!v) {
		pthread_rwlock_unlock(&c->lock);
		return -ENOMEM;
	}
	for (uint64_t i = 1; i <= c->last_seg; i++) {
		struct seg *s = c->segs[i];
		if (!s)
			continue;
		v[n++] = (struct cache_seg_info){
			.id = s->id, .state = state_of(c, s),
			.local = s->flags & SF_LOCAL, .handed_off = s->flags & SF_HANDED,
			.size = s->size, .live = s->live,
			.garbage = s->size - SEG_HDR_SIZE - s->live,
		};
	}
	pthread_rwlock_unlock(&c->lock);
	for (size_t i = 0; i < n; i++)
		cb(arg, &v[i]);
	free(v);
	return 0;
}

void cache_stats(struct cache *c, struct cache_stats *st)
{
	memset(st, 0, sizeof *st);
	pthread_rwlock_rdlock(&c->lock);
	memcpy(st->volume_id, c->volid, VOLUME_ID_SIZE);
	st->segment_size = c->o.segment_size;
	st->keys = ix_count(c->ix);
	st->index_bytes = ix_bytes(c->ix);
	st->index_bytes_per_key = st->keys ? (double)st->index_bytes / (double)st->keys : 0;
	st->active_seg = c->active ? c->active->id : 0;
	for (uint64_t i = 1; i <= c->last_seg; i++) {
		struct seg *s = c->segs[i];
		if (!s)
			continue;
		st->segments++;
		st->live_bytes += s->live;
		st->garbage_bytes += s->size - SEG_HDR_SIZE - s->live;
		if ((s->flags & SF_SEALED) && !s->live) {
			st->dead_segments++;
			st->dead_bytes += s->size;
		}
		if (s->flags & SF_LOCAL) {
			st->segments_local++;
			bool evictable = (s->flags & SF_CONFIRMED) && s->id <= c->written_upto;
			if (!evictable)
				st->pinned_bytes += s->size;
		}
		if (s->flags & SF_LOST) {
			if (st->segments_lost < sizeof st->lost_ids / sizeof *st->lost_ids)
				st->lost_ids[st->segments_lost] = s->id;
			st->segments_lost++;
			st->lost_unreported += !(s->flags & SF_HANDED);
		} else if ((s->flags & SF_SEALED) && !(s->flags & SF_CONFIRMED)) {
			st->segments_unconfirmed++;
		}
		if (c->handoff_on && seg_handoff_due(s))
			st->hooks_pending++;
	}
	st->hooks_running = atomic_load(&c->hooks_running);
	st->active_records = c->active ? c->active_nrec : 0;
	if (st->active_records && c->active_since_ns)
		st->active_age_ns = fs_now_ns() - c->active_since_ns;
	for (size_t i = 0; i < c->nckpts; i++) {
		const struct ckpt_rec *k = &c->ckpts[i];
		if (c->handoff_on && k->written && !k->handed)
			st->hooks_pending++;
		if (k->written && k->id > st->checkpoint_id) {
			st->checkpoint_id = k->id;
			st->checkpoint_upto = k->upto;
		}
	}
	st->checkpoint_bytes = local_ckpt_bytes(c);
	st->local_bytes = local_seg_bytes(c) + st->checkpoint_bytes;
	st->local_repairs = c->local_repairs;
	st->max_size = c->o.max_size;
	st->over_limit = c->over_limit;
	st->hooks_failed = c->hooks_failed;
	st->checkpoints_written = c->checkpoints_written;
	st->open_replayed_segments = c->open_replayed_segments;
	st->open_replayed_records = c->open_replayed_records;
	st->open_ns = c->open_ns;
	st->missing_fetches = atomic_load(&c->missing_fetches);
	st->handoffs_done = atomic_load(&c->handoffs_done);
	st->handoff_ns = atomic_load(&c->handoff_ns);
	st->evicted = c->evicted;
	st->removed_segments = c->nremoved;
	for (size_t i = 0; i < c->nremoved; i++)
		st->removes_pending += !c->removed[i].handed;
	st->removed_since_open = c->removed_since_open;
	st->removed_bytes_since_open = c->removed_bytes_since_open;
	st->evicted_for_disk = c->evicted_for_disk;
	pthread_rwlock_unlock(&c->lock);
	cache_disk_state(c, &st->disk);
}

void cache_stats_print(const struct cache_stats *st, FILE *f)
{
	char vol[2 * VOLUME_ID_SIZE + 1];
	fs_hex(st->volume_id, VOLUME_ID_SIZE, vol);
	fprintf(f, "volume id:            %s\n", vol);
	fprintf(f, "segment size:         %" PRIu64 " bytes\n", st->segment_size);
	fprintf(f, "keys:                 %" PRIu64 "\n", st->keys);
	fprintf(f, "index memory:         %" PRIu64 " bytes (%.1f bytes/key)\n",
		st->index_bytes, st->index_bytes_per_key);
	fprintf(f, "active segment:       %" PRIu64 "\n", st->active_seg);
	fprintf(f, "segments:             %" PRIu64 " known, %" PRIu64 " local, %" PRIu64
		" sealed but not confirmed\n", st->segments, st->segments_local,
		st->segments_unconfirmed);
	fprintf(f, "live bytes:           %" PRIu64 "\n", st->live_bytes);
	fprintf(f, "garbage bytes:        %" PRIu64 "\n", st->garbage_bytes);
	fprintf(f, "dead segments:        %" PRIu64 " (%" PRIu64 " bytes, nothing live)\n",
		st->dead_segments, st->dead_bytes);
	if (st->max_size)
		fprintf(f, "local disk:           %" PRIu64 " bytes of segments of a %" PRIu64
			" byte limit%s\n", st->local_bytes - st->checkpoint_bytes, st->max_size,
			st->over_limit ? " - OVER LIMIT: the rest is not confirmed remote "
					 "or not yet checkpointed, so it cannot be evicted" : "");
	else
		fprintf(f, "local disk:           %" PRIu64 " bytes of segments (no limit)\n",
			st->local_bytes - st->checkpoint_bytes);
	if (st->disk.reserve)
		fprintf(f, "disk:                 %" PRIu64 " bytes free of %" PRIu64 "; reserve of %"
			PRIu64 " bytes %s%s\n", st->disk.free, st->disk.total, st->disk.reserve,
			st->disk.reserve_held ? "held" : "given up (a write met a full disk)",
			st->disk.low ? " - LOW: new data should wait for room" : "");
	else
		fprintf(f, "disk:                 %" PRIu64 " bytes free of %" PRIu64 " (no reserve)\n",
			st->disk.free, st->disk.total);
	fprintf(f, "checkpoints:          %" PRIu64 " bytes (not counted against the limit)\n",
		st->checkpoint_bytes);
	fprintf(f, "not evictable:        %" PRIu64 " bytes\n", st->pinned_bytes);
	fprintf(f, "hand-offs pending:    %" PRIu64 " (%" PRIu64 " hook failures since open)\n",
		st->hooks_pending, st->hooks_failed);
	fprintf(f, "checkpoint:           %" PRIu64 " (covers segments up to %" PRIu64
		"), %" PRIu64 " written since open\n", st->checkpoint_id,
		st->checkpoint_upto, st->checkpoints_written);
	fprintf(f, "open:                 %.1f ms, replayed %" PRIu64 " segments (%" PRIu64
		" records)\n", (double)st->open_ns / 1e6, st->open_replayed_segments,
		st->open_replayed_records);
	fprintf(f, "missing fetches:      %" PRIu64 "\n", st->missing_fetches);
	if (st->handoffs_done)
		fprintf(f, "hand-offs:            %" PRIu64 " since open, %.2f ms each on average\n",
			st->handoffs_done, (double)st->handoff_ns / 1e6 / (double)st->handoffs_done);
	fprintf(f, "evicted since open:   %" PRIu64 " (%" PRIu64 " of them for room on the disk)\n",
		st->evicted, st->evicted_for_disk);
	fprintf(f, "removed segments:     %" PRIu64 " (deletion not yet handed off: %" PRIu64
		   "; since open: %" PRIu64 ", %" PRIu64 " bytes)\n", st->removed_segments,
		st->removes_pending, st->removed_since_open, st->removed_bytes_since_open);
}

struct cache_opts cache_opts_from_config(const struct qsfs_config *cfg)
{
	return (struct cache_opts){
		.dir = cfg->cache.dir, .segment_size = cfg->cache.segment_size,
		.max_size = cfg->cache.max_size, .hook = cfg->cache.hook,
		.disk_reserve = cfg->cache.disk_reserve,
		.hook_timeout_ms = cfg->cache.hook_timeout * 1000u,
	};
}
