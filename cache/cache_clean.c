/* cache/cache_clean.c - the cleaner: which sealed segments are worth
 * cleaning, and moving a segment's live records to the end of the log so
 * that it holds only garbage (cache.h, "cleaning").
 *
 * Why a move is safe record by record, without a batch: a moved record is
 * a whole copy of a key's current record (same key, same value), appended
 * only while the index still points at the original (move_record checks
 * that under the write lock). So before and after each move the log means
 * the same thing; a crash at any point, including between the records of
 * what was one atomic batch, leaves a log whose replay gives the same
 * content: a copy that reached the disk is the newer record of its key,
 * one that did not leaves the original, which is still live. The original
 * stays in its (sealed, never changed) segment until the second half of
 * garbage collection removes the dead segment, which needs a checkpoint
 * that no longer points into it.
 *
 * Tombstones are not moved. A replay only ever starts from a checkpoint
 * whose segments exist and replays the segments after it, never a cleaned
 * one; "replay every segment" (no usable checkpoint at all) stays correct
 * only while no dead segment has been removed, which is the second half's
 * business to handle.
 */
#include "cache_int.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "segment.h"
#include "../common/fsutil.h"
#include "../common/qlog.h"

double cache_clean_score(uint64_t size, uint64_t live, uint64_t age, bool local)
{
	if (size <= SEG_HDR_SIZE || !live || live >= size - SEG_HDR_SIZE)
		return 0;
	double u = (double)live / (double)(size - SEG_HDR_SIZE);
	double cost = 1 + u + (local ? 0 : 1);
	return (1 - u) * (double)(age ? age : 1) / cost;
}

struct pick {
	double score;
	uint64_t id;
};

static int pick_cmp(const void *a, const void *b)
{
	const struct pick *x = a, *y = b;
	if (x->score != y->score)
		return x->score > y->score ? -1 : 1;
	return x->id < y->id ? -1 : x->id > y->id;	/* older first on a tie */
}

size_t cache_clean_pick(struct cache *c, double target, uint64_t *ids, size_t max)
{
	if (!max)
		return 0;
	pthread_rwlock_rdlock(&c->lock);
	uint64_t total = 0, garbage = 0;
	size_t n = 0;
	struct pick *p = c->last_seg ? malloc(c->last_seg * sizeof *p) : NULL;
	for (uint64_t id = 1; p && id <= c->last_seg; id++) {
		const struct seg *s = c->segs[id];
		if (!s || s == c->active || !(s->flags & SF_SEALED) || !s->live ||
		    s->size <= SEG_HDR_SIZE)
			continue;
		uint64_t body = s->size - SEG_HDR_SIZE;
		total += body;
		garbage += body - s->live;
		if ((double)(body - s->live) <= target * (double)body)
			continue;	/* cleaning it gains less than the target */
		double sc = cache_clean_score(s->size, s->live, c->last_seg - id,
					      s->flags & SF_LOCAL);
		if (sc > 0)
			p[n++] = (struct pick){ sc, id };
	}
	pthread_rwlock_unlock(&c->lock);
	size_t out = 0;
	if (p && total && (double)garbage > target * (double)total) {
		qsort(p, n, sizeof *p, pick_cmp);
		for (; out < n && out < max; out++)
			ids[out] = p[out].id;
	}
	free(p);
	return out;
}

struct clean_ctx {
	struct cache *c;
	uint64_t id, rate, t0;
	struct cache_clean_result *res;
	int err;
};

/* Sleep until `moved` bytes are due at `rate` bytes/s since t0. */
static void throttle(uint64_t t0, uint64_t moved, uint64_t rate)
{
	if (!rate)
		return;
	uint64_t due = t0 + moved * 1000000000ull / rate, now = fs_now_ns();
	if (due > now) {
		uint64_t d = due - now;
		nanosleep(&(struct timespec){ (time_t)(d / 1000000000ull),
					      (long)(d % 1000000000ull) }, NULL);
	}
}

void cache_set_mover(struct cache *c, cache_mover_fn fn, void *arg)
{
	c->mover = fn;
	c->mover_arg = arg;
}

/* Does key's index entry still point at (seg, off)? */
static bool still_live(struct cache *c, const uint8_t *key, size_t klen, uint64_t seg,
		       uint64_t off)
{
	struct ix_loc loc;
	pthread_rwlock_rdlock(&c->lock);
	bool yes = ix_get(c->ix, key, klen, &loc) == 0 && loc.seg == seg && loc.off == off;
	pthread_rwlock_unlock(&c->lock);
	return yes;
}

static int clean_cb(void *arg, const struct seg_rec *r)
{
	struct clean_ctx *x = arg;
	if (r->type != REC_PUT)
		return 0;	/* tombstones are not moved (see above) */
	if (x->c->mover && still_live(x->c, r->key, r->klen, x->id, r->off)) {
		/* the user rewrites the key's state itself; if the record is
		 * still live afterwards (not handled), it is moved as is */
		ssize_t w = x->c->mover(x->c->mover_arg, r->key, r->klen);
		if (w < 0) {
			x->err = (int)w;
			return 1;
		}
		if (w > 0) {
			x->res->records++;
			x->res->bytes += (uint64_t)w;
			throttle(x->t0, x->res->bytes, x->rate);
		}
	}
	int m = move_record(x->c, r->key, r->klen, x->id, r->off, r->val, r->vlen);
	if (m < 0) {
		x->err = m;
		return 1;
	}
	if (m) {
		x->res->records++;
		x->res->bytes += r->len;
		throttle(x->t0, x->res->bytes, x->rate);
	}
	return 0;
}

int cache_clean_segment(struct cache *c, uint64_t id, uint64_t rate,
			struct cache_clean_result *res)
{
	*res = (struct cache_clean_result){ 0 };
	if (c->o.read_only || atomic_load(&c->fenced))
		return -EROFS;
	pthread_rwlock_rdlock(&c->lock);
	struct seg *s = seg_find(c, id);
	bool ok = s && s != c->active && (s->flags & SF_SEALED);
	uint64_t live = ok ? s->live : 0;
	pthread_rwlock_unlock(&c->lock);
	if (!ok)
		return -EINVAL;
	if (!live)
		return 0;	/* dead already */
	char name[SEG_NAME_LEN];
	seg_name(id, name);
	int fd = -1, open_err = ENOENT, r = 0;
	/* an fd of its own: eviction may remove the file meanwhile, the open
	 * file stays readable; a segment already local is not pinned, so it
	 * may be evicted between the check and the open: fetch it again */
	for (int tries = 0; fd < 0 && open_err == ENOENT && tries < 4; tries++) {
		struct seg *pinned;
		r = ensure_local(c, id, &pinned);
		if (r)
			return r;
		fd = openat(c->dirfd, name, O_RDONLY | O_CLOEXEC);
		open_err = errno;
		if (pinned)
			atomic_fetch_sub(&pinned->pins, 1);
	}
	if (fd < 0) {
		qlog_err("cache: cannot clean segment %" PRIu64 ": %s/%s: %s", id, c->dir, name,
			 strerror(open_err));
		return -open_err;
	}
	struct clean_ctx x = { c, id, rate, fs_now_ns(), res, 0 };
	struct seg_scan_result sr;
	r = seg_scan(fd, id, c->volid, true, clean_cb, &x, NULL, &sr);
	close(fd);
	if (r == 1)
		return x.err;	/* an append failed; the log said why */
	if (r < 0 && r != -EBADMSG) {
		qlog_err("cache: cannot clean segment %" PRIu64 ": reading %s/%s: %s", id, c->dir,
			 name, strerror(-r));
		return r;
	}
	if (r == -EBADMSG || !sr.clean || !sr.sealed) {
		qlog_err("cache: cannot clean segment %" PRIu64 " (%s/%s): bad at offset %" PRIu64
			 ": %s", id, c->dir, name, sr.bad_off, sr.why ? sr.why : "no seal record");
		return -EIO;
	}
	return 0;
}
