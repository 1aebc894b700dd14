/* cache/cache_gc.c - removal of dead segments: the second half of garbage
 * collection (the cleaner, cache_clean.c, makes segments dead).
 *
 * Why a dead segment may go, and when (docs/ARCHITECTURE.md, "Removal"):
 *
 * Open rebuilds the index from a checkpoint chain (a full and the deltas
 * after it, covering segments 1..U) and then replays every segment after U.
 * A removed segment S is therefore harmless to every chain with U >= S:
 * the chain's state already holds S's tombstones, and if that state still
 * points into S (S died after U), the records that made S dead are in
 * segments after U, which the replay applies, and none of those is removed
 * (they are after U too). So S may be removed once
 *   1. S is sealed and dead (no index entry points into it; nothing can
 *      point into a sealed segment again: appends go to the active one),
 *   2. the records that made it dead are durable (cache_sync before the
 *      removal: a crash must not bring back a state that points into S),
 *   3. S <= the smallest U of every chain this node may still open: every
 *      full checkpoint file here (any one may be the base when newer ones
 *      fail verification; at least two must exist, so one bad file is not
 *      fatal). Here every segment after U exists, so the argument above
 *      holds;
 *   3b. on the backends the segments after a chain may lag behind (not
 *      uploaded yet), so a restore must not need the records that killed
 *      S: every chain there must already hold S dead. S died when its last
 *      live record was overwritten or moved while segment dead_upto was
 *      active, so the condition is dead_upto(S) <= the smallest U of the
 *      fulls in the remote catalog's window (the caller's remote floor);
 *   4. S is stored remotely (confirmed) when a hook hands segments off:
 *      its deletion on the backends must not race its upload.
 * A chain below a removed segment cannot be used any more, so open refuses
 * one (rather than replaying every segment, which a removed one breaks).
 *
 * Order of a removal, each step durable before the next: the REMOVED fact
 * in state.log; the local file unlinked (if local); the segment-removed
 * hook (qsfs-stor journals the deletion of its shards, metadata and catalog
 * entry); the DEL_HANDED fact. A crash between any two repeats the rest at
 * the next open. The next delta checkpoint records the removal, and the
 * next full drops the segment from its table.
 */
#include "cache_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hook.h"
#include "segment.h"
#include "../common/fsutil.h"
#include "../common/qlog.h"

static size_t removed_pos(const struct cache *c, uint64_t id)
{
	size_t lo = 0, hi = c->nremoved;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (c->removed[mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

bool removed_has(const struct cache *c, uint64_t id)
{
	size_t i = removed_pos(c, id);
	return i < c->nremoved && c->removed[i].id == id;
}

int removed_note(struct cache *c, uint64_t id, bool handed)
{
	size_t i = removed_pos(c, id);
	if (i < c->nremoved && c->removed[i].id == id) {
		c->removed[i].handed |= handed;
		return 0;
	}
	if (c->nremoved == c->removed_cap) {
		size_t nc = c->removed_cap ? c->removed_cap * 2 : 64;
		struct removed_seg *n = realloc(c->removed, nc * sizeof *n);
		if (!n)
			return -ENOMEM;
		c->removed = n;
		c->removed_cap = nc;
	}
	memmove(c->removed + i + 1, c->removed + i, (c->nremoved - i) * sizeof *c->removed);
	c->removed[i] = (struct removed_seg){ .id = id, .handed = handed };
	c->nremoved++;
	return 0;
}

uint64_t cache_gc_local_floor(struct cache *c)
{
	pthread_rwlock_rdlock(&c->lock);
	uint64_t floor = UINT64_MAX;
	unsigned fulls = 0;
	for (size_t i = 0; i < c->nckpts; i++) {
		const struct ckpt_rec *k = &c->ckpts[i];
		if (!k->written)
			continue;
		if (k->kind == CKPT_FULL)
			fulls++;
		/* a full, or a delta from nothing: either can start a chain */
		if ((k->kind == CKPT_FULL || k->from == 0) && k->upto < floor)
			floor = k->upto;
	}
	pthread_rwlock_unlock(&c->lock);
	return fulls >= 2 ? floor : 0;
}

/* Take dead segment s out of the table (the caller holds c->fmu and
 * c->lock for writing and has written the REMOVED fact). */
static int drop_locked(struct cache *c, struct seg *s)
{
	if (seglife_next(seglife_of(s->flags, false), SE_REMOVE, c->handoff_on) == SL_REFUSED)
		return seg_step(c, s, SE_REMOVE);	/* says why */
	int r = removed_note(c, s->id, false);
	if (r)
		return r;
	if (c->nremoved_new == c->removed_new_cap) {
		size_t nc = c->removed_new_cap ? c->removed_new_cap * 2 : 64;
		uint64_t *n = realloc(c->removed_new, nc * sizeof *n);
		if (!n)
			return -ENOMEM;
		c->removed_new = n;
		c->removed_new_cap = nc;
	}
	struct seg **g = realloc(c->graveyard, (c->ngraveyard + 1) * sizeof *g);
	if (!g)
		return -ENOMEM;
	c->graveyard = g;
	if (s->flags & SF_LOCAL) {
		char name[SEG_NAME_LEN];
		seg_name(s->id, name);
		if (unlinkat(c->dirfd, name, 0) < 0 && errno != ENOENT)
			qlog_warn("cache: segment %s/%s was removed but its file cannot be "
				  "deleted: %s; the next open deletes it", c->dir, name,
				  strerror(errno));
	}
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
	seg_step(c, s, SE_REMOVE);	/* allowed: checked first */
	c->removed_new[c->nremoved_new++] = s->id;
	c->graveyard[c->ngraveyard++] = s;
	c->segs[s->id] = NULL;
	c->removed_since_open++;
	c->removed_bytes_since_open += s->size;
	return 0;
}

int cache_remove_dead(struct cache *c, uint64_t remote_floor, struct cache_remove_result *res)
{
	memset(res, 0, sizeof *res);
	if (c->o.read_only)
		return -EROFS;
	if (atomic_load(&c->fenced))
		return -EROFS;
	uint64_t floor = cache_gc_local_floor(c);
	res->local_floor = floor;
	if (remote_floor < floor)
		floor = remote_floor;
	res->floor = floor;
	/* 1. the candidates, judged before the sync below */
	pthread_rwlock_rdlock(&c->lock);
	uint64_t *ids = malloc((c->last_seg + 1) * sizeof *ids);
	size_t n = 0;
	for (uint64_t id = 1; ids && id <= c->last_seg; id++) {
		struct seg *s = c->segs[id];
		if (!s || s == c->active || !(s->flags & SF_SEALED) || s->live)
			continue;
		/* locally: every chain starts at or after it (and everything
		 * after a chain is here); on the backends, whose copies of the
		 * later segments may lag: every chain there already has it dead */
		bool above = id > res->local_floor || s->dead_upto > remote_floor;
		if (above || (c->handoff_on && !(s->flags & SF_CONFIRMED))) {
			res->waiting++;
			res->waiting_bytes += s->size;
			/* what a newer full checkpoint here would free (the
			 * backends' floor follows once it is stored) */
			if (id > res->local_floor || s->dead_upto > res->local_floor)
				res->above_local_bytes += s->size;
			if (above) {
				res->above_floor++;
				res->above_floor_bytes += s->size;
			} else {
				res->unconfirmed++;
			}
			continue;
		}
		ids[n++] = id;
	}
	pthread_rwlock_unlock(&c->lock);
	if (!ids)
		return -ENOMEM;
	if (!n) {
		free(ids);
		return 0;
	}
	/* 2. whatever made them dead is on disk before they go */
	int r = cache_sync(c);
	for (size_t i = 0; !r && i < n; i++) {
		pthread_mutex_lock(&c->slog_mu);
		r = journal_append(c, SLOG_SEG_REMOVED, ids[i]);
		pthread_mutex_unlock(&c->slog_mu);
		if (r) {
			qlog_err("cache: cannot record the removal of segment %" PRIu64 " in "
				 "%s/state.log: %s; garbage collection stops", ids[i], c->dir,
				 strerror(-r));
			break;
		}
		/* fmu first (the lock order): no fetch of it may be starting */
		pthread_mutex_lock(&c->fmu);
		pthread_rwlock_wrlock(&c->lock);
		struct seg *s = seg_find(c, ids[i]);
		bool ok = s && !s->live && !s->fetching && !atomic_load(&s->pins);
		if (ok) {
			uint64_t size = s->size;
			r = drop_locked(c, s);
			if (!r) {
				res->segments++;
				res->bytes += size;
			}
		} else {
			/* in use right now: the fact stays, the next pass (or
			 * open) finishes it */
			res->waiting++;
		}
		pthread_rwlock_unlock(&c->lock);
		pthread_mutex_unlock(&c->fmu);
	}
	free(ids);
	if (res->segments) {
		fs_fsync_dir(c->dirfd);
		qlog_info("cache: removed %" PRIu64 " dead segments (%" PRIu64 " bytes) up to "
			  "segment %" PRIu64, res->segments, res->bytes, floor);
		worker_kick(c, false, false);	/* hand the deletions off */
	}
	return r;
}

int cache_checkpoint_full(struct cache *c)
{
	if (c->o.read_only)
		return -EROFS;
	if (atomic_load(&c->fenced))
		return -EROFS;
	pthread_rwlock_wrlock(&c->lock);
	int r = atomic_load(&c->io_error);
	int64_t sealed = 0;
	if (!r && c->active)
		sealed = seal_locked(c);	/* even with no record: a new upto */
	if (sealed < 0)
		r = (int)sealed;
	if (!r)
		c->force_full = true;
	pthread_rwlock_unlock(&c->lock);
	if (r)
		return r;
	worker_kick(c, true, false);
	pthread_rwlock_rdlock(&c->lock);
	r = c->force_full ? -EIO : 0;	/* the worker clears it once written */
	pthread_rwlock_unlock(&c->lock);
	return r;
}

/* Run due segment-removed hooks. */
uint64_t removed_handoffs(struct cache *c, bool force)
{
	uint64_t now = fs_now_ns(), next = 0;
	pthread_rwlock_rdlock(&c->lock);
	uint64_t *ids = malloc((c->nremoved + 1) * sizeof *ids);
	size_t n = 0;
	for (size_t i = 0; ids && i < c->nremoved; i++) {
		const struct removed_seg *x = &c->removed[i];
		if (x->handed)
			continue;
		if (force || x->hook_next_ns <= now)
			ids[n++] = x->id;
		else if (!next || x->hook_next_ns < next)
			next = x->hook_next_ns;
	}
	pthread_rwlock_unlock(&c->lock);
	if (!ids)
		return now + 1000000000ull;
	for (size_t i = 0; i < n; i++) {
		char idtext[32];
		snprintf(idtext, sizeof idtext, "%" PRIu64, ids[i]);
		const char *args[] = { idtext, NULL };
		/* no hook: nothing was ever handed to a backend to delete */
		int h = c->handoff_on ? run_hook(c, "segment-removed", args) : 0;
		int jr = 0;
		if (!h) {
			pthread_mutex_lock(&c->slog_mu);
			jr = journal_append(c, SLOG_SEG_DEL_HANDED, ids[i]);
			pthread_mutex_unlock(&c->slog_mu);
			if (jr)
				qlog_err("cache: cannot record the hand-off of segment %" PRIu64
					 "'s deletion: %s; it will be handed off again", ids[i],
					 strerror(-jr));
		}
		pthread_rwlock_wrlock(&c->lock);
		size_t k = removed_pos(c, ids[i]);
		struct removed_seg *x = &c->removed[k];
		if (!h && !jr) {
			x->handed = true;
			x->hook_fails = 0;
		} else {
			x->hook_fails++;
			c->hooks_failed += h != 0;
			uint64_t ms = hook_backoff_ms(c, x->hook_fails);
			x->hook_next_ns = fs_now_ns() + ms * 1000000ull;
			if (!next || x->hook_next_ns < next)
				next = x->hook_next_ns;
			if (h) {
				char b[64];
				qlog_warn("cache: segment-removed hook for segment %" PRIu64 " failed "
					  "(%s); retry %u in %.1f s", ids[i],
					  hook_strresult(h, b, sizeof b), x->hook_fails,
					  (double)ms / 1000);
			}
		}
		pthread_rwlock_unlock(&c->lock);
	}
	free(ids);
	return next;
}
