/* cache/cache_ckpt.c - when checkpoints are built, written, merged and
 * removed.
 *
 * Policy (docs/ARCHITECTURE.md, "Checkpoints"):
 * - every `checkpoint_every` seals (default 1) a DELTA is built in memory,
 *   under the write lock, from the keys touched since the previous delta;
 *   the worker writes it (temp file, fsync, rename, fsync dir). Its size is
 *   bounded by what those segments hold, not by the volume.
 * - when the deltas written since the newest FULL add up to at least that
 *   full's size, the worker merges full + deltas into a new full, streaming,
 *   without the lock. So full bytes per seal are at most delta bytes per seal.
 * - open replays only segments sealed after the newest delta, plus the
 *   active one.
 * - kept: the two newest fulls and every delta after the older of them, so
 *   a corrupt newest full falls back to the previous one plus its deltas.
 */
#include "cache_int.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "segment.h"
#include "../common/fsutil.h"
#include "../common/qlog.h"

struct dkey {
	const uint8_t *key;
	size_t klen;
};

static int dkey_cmp(const void *a, const void *b)
{
	const struct dkey *x = a, *y = b;
	return ix_keycmp(x->key, x->klen, y->key, y->klen);
}

int build_delta(struct cache *c, uint64_t upto)
{
	size_t n = 0;
	for (size_t off = 0; off < c->dirty_len; off += 1 + c->dirty[off])
		n++;
	struct dkey *keys = malloc((n ? n : 1) * sizeof *keys);
	if (!keys)
		return -ENOMEM;
	size_t i = 0;
	for (size_t off = 0; off < c->dirty_len; off += 1 + c->dirty[off])
		keys[i++] = (struct dkey){ c->dirty + off + 1, c->dirty[off] };
	qsort(keys, n, sizeof *keys, dkey_cmp);

	uint64_t nsegs = c->nremoved_new;
	for (uint64_t id = 1; id <= upto; id++)
		if (c->segs[id] && (c->segs[id]->flags & SF_DIRTY))
			nsegs++;
	struct ckpt_hdr h = { .kind = CKPT_DELTA, .id = c->next_ckpt_id,
			      .from = c->built_upto, .upto = upto };
	memcpy(h.volume_id, c->volid, VOLUME_ID_SIZE);
	struct ckpt_writer w;
	int r = ckw_begin(&w, -1, &h, nsegs);
	if (r) {
		free(keys);
		ckw_abort(&w);
		return r;
	}
	for (uint64_t id = 1; id <= upto; id++) {
		struct seg *s = c->segs[id];
		if (s && (s->flags & SF_DIRTY)) {
			struct ckpt_seg cs = { .id = id, .size = s->size, .live = s->live };
			ckw_seg(&w, &cs);
		}
	}
	for (size_t k = 0; k < c->nremoved_new; k++) {	/* removed: every id <= upto */
		/* the size of an empty segment keeps every reader's checks happy */
		struct ckpt_seg cs = { .id = c->removed_new[k], .size = SEG_HDR_SIZE,
				       .flags = CKPT_SEG_REMOVED };
		ckw_seg(&w, &cs);
	}
	for (i = 0; i < n; i++) {
		if (i && !dkey_cmp(&keys[i - 1], &keys[i]))
			continue;
		struct ix_loc loc;
		if (ix_get(c->ix, keys[i].key, keys[i].klen, &loc) == 0)
			ckw_key(&w, CKPT_PUT, keys[i].key, keys[i].klen, &loc);
		else
			ckw_key(&w, CKPT_DEL, keys[i].key, keys[i].klen, NULL);
	}
	free(keys);
	r = ckw_end(&w);
	if (r) {
		ckw_abort(&w);
		return r;
	}
	struct ckpt_rec rec = { .id = h.id, .from = h.from, .upto = upto,
				.kind = CKPT_DELTA, .buf = w.buf, .len = w.len };
	if (!ckpt_rec_add(c, &rec)) {
		free(w.buf);
		return -ENOMEM;
	}
	/* only now is the state at upto captured: reset what tracked it */
	for (uint64_t id = 1; id <= upto; id++)
		if (c->segs[id])
			c->segs[id]->flags &= ~SF_DIRTY;
	c->built_upto = upto;
	c->nremoved_new = 0;
	c->seals_since_delta = 0;
	c->dirty_len = 0;
	if (c->dirty_cap > (1u << 20)) {	/* a burst of keys: give it back */
		free(c->dirty);
		c->dirty = NULL;
		c->dirty_cap = 0;
	}
	return 0;
}

/* Write queued deltas in id order. Returns 0 or the first error. */
static int write_queued(struct cache *c)
{
	for (;;) {
		pthread_rwlock_wrlock(&c->lock);
		struct ckpt_rec *k = NULL;
		for (size_t i = 0; i < c->nckpts && !k; i++)
			if (!c->ckpts[i].written && c->ckpts[i].buf)
				k = &c->ckpts[i];
		if (!k) {
			pthread_rwlock_unlock(&c->lock);
			return 0;
		}
		uint64_t id = k->id;
		uint8_t *buf = k->buf;
		size_t len = k->len;
		k->buf = NULL;
		pthread_rwlock_unlock(&c->lock);

		char name[CKPT_NAME_LEN];
		ckpt_name(id, name);
		int r = fs_write_atomic(c->dirfd, name, buf, len, 0644);
		/* a full disk: the temp file is gone again, so give up the
		 * reserve and try once more (the clean stop's checkpoint) */
		if (r && space_release(c, r))
			r = fs_write_atomic(c->dirfd, name, buf, len, 0644);
		pthread_rwlock_wrlock(&c->lock);
		k = ckpt_rec_find(c, id);
		if (r) {
			k->buf = buf;
			pthread_rwlock_unlock(&c->lock);
			qlog_warn("cache: writing checkpoint %s/%s failed: %s; will retry", c->dir,
				  name, strerror(-r));
			return r;
		}
		k->written = true;
		k->bytes = len;
		k->len = 0;
		if (k->upto > c->written_upto)
			c->written_upto = k->upto;
		c->checkpoints_written++;
		pthread_rwlock_unlock(&c->lock);
		free(buf);
	}
}

/* Newest written full (highest upto, then id), or NULL. c->lock held. */
static struct ckpt_rec *newest_full(struct cache *c, struct ckpt_rec *before)
{
	struct ckpt_rec *b = NULL;
	for (size_t i = 0; i < c->nckpts; i++) {
		struct ckpt_rec *k = &c->ckpts[i];
		if (k->kind != CKPT_FULL || !k->written || k == before)
			continue;
		if (before && (k->upto > before->upto ||
			       (k->upto == before->upto && k->id > before->id)))
			continue;
		if (!b || k->upto > b->upto || (k->upto == b->upto && k->id > b->id))
			b = k;
	}
	return b;
}

/* Merge the newest full with the deltas after it when they add up to its
 * size. */
static int maybe_merge(struct cache *c)
{
	pthread_rwlock_wrlock(&c->lock);
	struct ckpt_rec *f = newest_full(c, NULL);
	uint64_t base_id = f ? f->id : 0, cur = f ? f->upto : 0, fbytes = f ? f->bytes : 0;
	uint64_t *chain = malloc((c->nckpts + 1) * sizeof *chain);
	size_t nchain = 0;
	uint64_t dbytes = 0;
	if (!chain) {
		pthread_rwlock_unlock(&c->lock);
		return -ENOMEM;
	}
	for (;;) {
		struct ckpt_rec *next = NULL;
		for (size_t i = 0; i < c->nckpts; i++) {
			struct ckpt_rec *k = &c->ckpts[i];
			if (k->kind == CKPT_DELTA && k->written && k->from == cur && k->upto > cur &&
			    (!next || k->id > next->id))
				next = k;
		}
		if (!next)
			break;
		chain[nchain++] = next->id;
		dbytes += next->bytes;
		cur = next->upto;
	}
	bool forced = c->force_full;
	/* on a disk low on space a merge, which only bounds the checkpoints'
	 * bytes, waits: it would take room before the files it replaces go
	 * (a forced one, which garbage collection asks for to remove dead
	 * segments, frees more than it takes) */
	if (!nchain || (dbytes < fbytes && !forced) ||
	    (!forced && atomic_load(&c->space.low))) {
		c->force_full = false;	/* nothing after the newest full: it is current */
		pthread_rwlock_unlock(&c->lock);
		free(chain);
		return 0;
	}
	uint64_t id = c->next_ckpt_id++;
	pthread_rwlock_unlock(&c->lock);

	struct ckpt_file base = { 0 }, *deltas = calloc(nchain, sizeof *deltas);
	const struct ckpt_file **dp = calloc(nchain, sizeof *dp);
	char name[CKPT_NAME_LEN], tmp[CKPT_NAME_LEN + 8];
	const char *why = NULL;
	int r = -ENOMEM;
	size_t opened = 0;
	if (!deltas || !dp)
		goto out;
	if (base_id) {
		ckpt_name(base_id, name);
		r = ckpt_open(c->dirfd, name, c->volid, &base, &why);
		if (r)
			goto bad;
	}
	for (; opened < nchain; opened++) {
		ckpt_name(chain[opened], name);
		r = ckpt_open(c->dirfd, name, c->volid, &deltas[opened], &why);
		if (r)
			goto bad;
		dp[opened] = &deltas[opened];
	}
	struct ckpt_hdr h = { .kind = CKPT_FULL, .id = id, .from = 0, .upto = cur };
	memcpy(h.volume_id, c->volid, VOLUME_ID_SIZE);
	ckpt_name(id, name);
	snprintf(tmp, sizeof tmp, "%s.tmp", name);
	int fd = openat(c->dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		r = -errno;
		goto out;
	}
	r = ckpt_merge(fd, &h, base_id ? &base : NULL, dp, nchain);
	struct stat st;
	if (!r && (fsync(fd) < 0 || fstat(fd, &st) < 0))
		r = -errno;
	close(fd);
	if (!r && renameat(c->dirfd, tmp, c->dirfd, name) < 0)
		r = -errno;
	if (!r)
		r = fs_fsync_dir(c->dirfd);
	if (r) {
		unlinkat(c->dirfd, tmp, 0);
		goto out;
	}
	pthread_rwlock_wrlock(&c->lock);
	struct ckpt_rec rec = { .id = id, .upto = cur, .kind = CKPT_FULL,
				.bytes = (uint64_t)st.st_size, .written = true };
	if (!ckpt_rec_add(c, &rec)) {
		r = -ENOMEM;
	} else {
		c->checkpoints_written++;
		if (forced)
			c->force_full = false;
	}
	pthread_rwlock_unlock(&c->lock);
	qlog_debug("cache: full checkpoint %s written (segments 1..%" PRIu64 ", %" PRIu64
		   " bytes, from %zu deltas)", name, cur, (uint64_t)st.st_size, nchain);
	goto out;
bad:
	qlog_err("cache: checkpoint %s/%s no longer verifies (%s); not merging",
		 c->dir, name, why ? why : strerror(-r));
out:
	if (r && r != -EBADMSG)
		qlog_warn("cache: full checkpoint %" PRIu64 " not written: %s", id, strerror(-r));
	if (base_id)
		ckpt_close(&base);
	for (size_t i = 0; i < opened; i++)
		ckpt_close(&deltas[i]);
	free(deltas);
	free(dp);
	free(chain);
	return r;
}

/* Remove checkpoints no fallback needs any more (only once handed off). */
static void cleanup(struct cache *c)
{
	pthread_rwlock_wrlock(&c->lock);
	struct ckpt_rec *f1 = newest_full(c, NULL);
	struct ckpt_rec *f0 = f1 ? newest_full(c, f1) : NULL;
	if (!f0) {
		pthread_rwlock_unlock(&c->lock);
		return;
	}
	uint64_t keep_upto = f0->upto, f0id = f0->id, f1id = f1->id;
	size_t j = 0;
	for (size_t i = 0; i < c->nckpts; i++) {
		struct ckpt_rec *k = &c->ckpts[i];
		bool old = k->written && k->id != f0id && k->id != f1id &&
			   (k->kind == CKPT_FULL ? k->upto <= keep_upto : k->upto <= keep_upto);
		if (old && (k->handed || !c->handoff_on)) {
			char name[CKPT_NAME_LEN];
			ckpt_name(k->id, name);
			if (unlinkat(c->dirfd, name, 0) == 0 || errno == ENOENT)
				continue;	/* dropped from the list */
		}
		c->ckpts[j++] = *k;
	}
	bool removed = j != c->nckpts;
	c->nckpts = j;
	pthread_rwlock_unlock(&c->lock);
	if (removed)
		fs_fsync_dir(c->dirfd);
}

void ckpt_work(struct cache *c)
{
	if (write_queued(c) == 0)
		maybe_merge(c);
	cleanup(c);
}
