/* cache/cache_worker.c - the background worker: checkpoint files, hand-off
 * hooks (segment-sealed, checkpoint-written, and segment-removed through
 * cache_gc.c) with retry and backoff, and
 * eviction. One thread; writers never wait for it.
 */
#include "cache_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hook.h"
#include "segment.h"
#include "../common/fsutil.h"
#include "../common/qlog.h"
#include "../common/storproto.h"

struct job {
	bool ckpt;
	uint64_t id;
};

uint64_t hook_backoff_ms(const struct cache *c, unsigned fails)
{
	uint64_t ms = c->o.hook_retry_ms;
	for (unsigned i = 1; i < fails && ms < HOOK_RETRY_CAP_MS; i++)
		ms *= 2;
	return ms < HOOK_RETRY_CAP_MS ? ms : HOOK_RETRY_CAP_MS;
}

/* Run the due hand-off hooks of segments (in id order) or, with ckpts, of
 * checkpoints. Returns the time of the next retry (0: none pending). */
static uint64_t handoffs_of(struct cache *c, bool force, bool ckpts)
{
	uint64_t now = fs_now_ns(), next = 0;
	pthread_rwlock_rdlock(&c->lock);
	size_t cap = c->last_seg + c->nckpts + 1, n = 0;
	struct job *jobs = malloc(cap * sizeof *jobs);
	if (!jobs) {
		pthread_rwlock_unlock(&c->lock);
		return now + 1000000000ull;
	}
	for (uint64_t id = 1; id <= c->last_seg && !ckpts; id++) {
		struct seg *s = c->segs[id];
		if (!s || !seg_handoff_due(s))
			continue;
		if (force || s->hook_next_ns <= now)
			jobs[n++] = (struct job){ false, id };
		else if (!next || s->hook_next_ns < next)
			next = s->hook_next_ns;
	}
	/* A checkpoint goes only after every segment it covers has been
	 * handed off: on the backends, a checkpoint that refers to a segment
	 * that never arrives would make a restore fail (the first segment not
	 * handed off bounds which checkpoints may go). */
	uint64_t unhanded = UINT64_MAX;
	for (uint64_t id = 1; id <= c->last_seg && unhanded == UINT64_MAX; id++) {
		struct seg *s = c->segs[id];
		if (s && seg_handoff_due(s))
			unhanded = id;
	}
	for (size_t i = 0; i < c->nckpts && ckpts; i++) {
		struct ckpt_rec *k = &c->ckpts[i];
		if (!k->written || k->handed || k->upto >= unhanded)
			continue;
		if (force || k->hook_next_ns <= now)
			jobs[n++] = (struct job){ true, k->id };
		else if (!next || k->hook_next_ns < next)
			next = k->hook_next_ns;
	}
	pthread_rwlock_unlock(&c->lock);

	for (size_t i = 0; i < n; i++) {
		char ids[32], name[CKPT_NAME_LEN], path[4200];
		const char *event = jobs[i].ckpt ? "checkpoint-written" : "segment-sealed";
		bool lost = false;
		int fr = 0;
		if (jobs[i].ckpt) {
			ckpt_name(jobs[i].id, name);
		} else {
			seg_name(jobs[i].id, name);
			/* a file gone before its hand-off: the segment is lost, and
			 * its hand-off reports that instead (cache_lost.c) */
			pthread_rwlock_wrlock(&c->lock);
			struct seg *s = c->segs[jobs[i].id];
			fr = s ? seg_check_file(c, s) : 0;
			pthread_rwlock_unlock(&c->lock);
			lost = fr == -ENOENT;
			if (lost)
				event = "segment-lost";
		}
		cache_path(c, name, path, sizeof path);
		snprintf(ids, sizeof ids, "%" PRIu64, jobs[i].id);
		const char *args[] = { ids, lost ? NULL : path, NULL };
		/* -EAGAIN: its file is being written again; a failure, retried */
		int h = fr == -EAGAIN ? 1 : run_hook(c, event, args);
		/* storage has the "lost" segment after all: it was only evicted */
		bool stored = lost && h == STORPROTO_HOOK_STORED;
		int jr = 0;
		if (h == 0 || stored) {
			pthread_mutex_lock(&c->slog_mu);
			jr = journal_append(c, jobs[i].ckpt ? SLOG_CKPT_HANDED : SLOG_SEG_HANDED,
					    jobs[i].id);
			if (!jr && stored)
				jr = journal_append(c, SLOG_SEG_CONFIRMED, jobs[i].id);
			pthread_mutex_unlock(&c->slog_mu);
			if (jr)
				qlog_err("cache: cannot record the hand-off of %s: %s; it will be "
					 "handed off again", name, strerror(-jr));
		}
		pthread_rwlock_wrlock(&c->lock);
		unsigned *fails;
		uint64_t *due;
		bool *done_flag = NULL;
		struct seg *s = NULL;
		if (jobs[i].ckpt) {
			struct ckpt_rec *k = ckpt_rec_find(c, jobs[i].id);
			if (!k) {
				pthread_rwlock_unlock(&c->lock);
				continue;
			}
			fails = &k->hook_fails;
			due = &k->hook_next_ns;
			done_flag = &k->handed;
		} else {
			s = c->segs[jobs[i].id];
			fails = &s->hook_fails;
			due = &s->hook_next_ns;
		}
		if ((h == 0 || stored) && !jr) {
			if (done_flag)
				*done_flag = true;
			else
				seg_step(c, s, stored ? SE_CONFIRM : SE_HAND_OFF);
			*fails = 0;
			if (stored)
				qlog_warn("cache: storage has segment %" PRIu64 " stored after all: "
					  "it was not lost, only evicted", jobs[i].id);
			else if (lost)
				qlog_err("cache: storage recorded the loss of segment %" PRIu64,
					 jobs[i].id);
		} else {
			(*fails)++;
			c->hooks_failed += h != 0;
			uint64_t ms = hook_backoff_ms(c, *fails);
			*due = fs_now_ns() + ms * 1000000ull;
			if (!next || *due < next)
				next = *due;
			if (h) {
				char b[64];
				qlog_warn("cache: %s hook for %s failed (%s); retry %u in %.1f s", event,
					  name, hook_strresult(h, b, sizeof b), *fails, (double)ms / 1000);
			}
		}
		pthread_rwlock_unlock(&c->lock);
	}
	free(jobs);
	return next;
}

/* Segments first, then the checkpoints they allow. Returns the time of the
 * next retry (0: none pending). */
static uint64_t handoffs(struct cache *c, bool force)
{
	if (!c->handoff_on)
		return 0;
	uint64_t a = handoffs_of(c, force, false), b = handoffs_of(c, force, true);
	return !a ? b : !b ? a : a < b ? a : b;
}

struct cand {
	uint64_t id, last_read, size;
};

/* Least recently read first. */
static int cand_cmp(const void *a, const void *b)
{
	const struct cand *x = a, *y = b;
	return x->last_read < y->last_read ? -1 : x->last_read > y->last_read;
}

/* Eviction, least recently read first, down to max_size, and while the
 * disk has less free than its low-water mark (space_evict_goal: twice the
 * reserve). For max_size: when that cannot
 * be reached (what may not be evicted - data not yet uploaded, the active
 * segment, segments being read - is over the limit by itself), evicting
 * every other segment would not reach it either, and would only make the
 * reads of the moment fetch their segments back again and again (a hot
 * segment came back six times in one run): the most recently read of them
 * stay, up to max_size / EVICT_READ_RESERVE or the one read last, whichever
 * is more. over_limit is set then, which makes writers wait (qsfs-fs) until
 * uploads are confirmed; the reserve does not count there, so it never
 * holds writers back. So local segment bytes stay under max(max_size, the
 * unevictable bytes) + that reserve, and under max_size whenever the
 * unevictable bytes are. The disk's mark knows no such read reserve: a
 * full disk fails every write, a segment fetched again costs one read.
 * Each evicted segment counts as its size freed (a few blocks' error
 * either way; the next pass looks at the disk again). */
#define EVICT_READ_RESERVE 4	/* max_size / 4 */

int evict_locked(struct cache *c)
{
	uint64_t disk_goal = space_evict_goal(c);
	if (!c->o.max_size && !disk_goal) {
		c->over_limit = false;
		return 0;
	}
	/* segments only: the checkpoints have a budget of their own (they
	 * grow with the number of keys, and eviction cannot shrink them, so
	 * counting them here could stall writers for good on a volume of many
	 * small files although everything is uploaded) */
	uint64_t used = local_seg_bytes(c);
	bool limit = c->o.max_size && used > c->o.max_size;
	if (!limit && !disk_goal) {
		c->over_limit = false;
		return 0;
	}
	struct cand *v = malloc((c->last_seg + 1) * sizeof *v);
	if (!v)
		return -ENOMEM;
	size_t n = 0;
	uint64_t evictable = 0;
	for (uint64_t id = 1; id <= c->last_seg; id++) {
		struct seg *s = c->segs[id];
		/* never: the active one, unconfirmed ones, ones whose hand-off
		 * is not done (its hook needs the file), ones a reopen would
		 * have to replay, ones being read right now */
		if (!s || s == c->active || !(s->flags & SF_SEALED) ||
		    !(s->flags & SF_CONFIRMED) || !(s->flags & SF_LOCAL) ||
		    (c->handoff_on && !(s->flags & SF_HANDED)) ||
		    id > c->written_upto || atomic_load(&s->pins))
			continue;
		v[n++] = (struct cand){ id, atomic_load(&s->last_read), s->size };
		evictable += s->size;
	}
	qsort(v, n, sizeof *v, cand_cmp);
	/* what may stay: nothing when evicting can reach the limit, else the
	 * read reserve */
	uint64_t pinned = used - evictable;
	uint64_t keep = 0;
	if (limit && pinned > c->o.max_size && n) {
		keep = c->o.max_size / EVICT_READ_RESERVE;
		if (keep < v[n - 1].size)	/* the segment read last, at least */
			keep = v[n - 1].size;
	}
	int evicted = 0, for_disk = 0;
	uint64_t freed = 0;
	for (size_t i = 0; i < n; i++) {
		bool over = c->o.max_size && used > c->o.max_size && evictable > keep;
		if (!over && freed >= disk_goal)
			break;
		struct seg *s = c->segs[v[i].id];
		char name[SEG_NAME_LEN];
		seg_name(s->id, name);
		if (unlinkat(c->dirfd, name, 0) < 0 && errno != ENOENT) {
			qlog_err("cache: cannot evict %s/%s: %s", c->dir, name, strerror(errno));
			continue;
		}
		if (s->fd >= 0)
			close(s->fd);
		s->fd = -1;
		seg_step(c, s, SE_EVICT);	/* candidates are confirmed and local */
		used -= s->size;
		evictable -= s->size;
		freed += s->size;
		evicted++;
		for_disk += !over;
		c->evicted++;
		qlog_debug("cache: evicted segment %" PRIu64 "%s", s->id,
			   over ? "" : " (room on the disk)");
	}
	free(v);
	if (evicted)
		fs_fsync_dir(c->dirfd);
	if (for_disk) {
		c->evicted_for_disk += (uint64_t)for_disk;
		space_check(c);
	}
	if (!c->o.max_size) {
		c->over_limit = false;
		return evicted;
	}
	/* the reserve is room that could be made: it does not count */
	uint64_t kept = evictable < keep ? evictable : keep;
	bool over = used - kept > c->o.max_size;
	if (over && !c->over_limit)
		qlog_warn("cache: %s holds %" PRIu64 " bytes of segments, over its limit of %"
			  PRIu64 ", and nothing more can be evicted (the rest is active, "
			  "unconfirmed, not yet checkpointed or being read)", c->dir, used,
			  c->o.max_size);
	c->over_limit = over;
	return evicted;
}

static void *worker_main(void *arg)
{
	struct cache *c = arg;
	pthread_mutex_lock(&c->wmu);
	while (!c->stop) {
		uint64_t gen = c->req_gen;
		bool force = c->force_hooks;
		c->force_hooks = false;
		pthread_mutex_unlock(&c->wmu);

		ckpt_work(c);
		uint64_t next = handoffs(c, force);
		uint64_t rnext = removed_handoffs(c, force);
		if (rnext && (!next || rnext < next))
			next = rnext;
		ckpt_work(c);	/* checkpoints handed off may now be removable */
		space_work(c);	/* the reserve made again when there is room */
		pthread_rwlock_wrlock(&c->lock);
		evict_locked(c);
		pthread_rwlock_unlock(&c->lock);

		pthread_mutex_lock(&c->wmu);
		c->done_gen = gen;
		pthread_cond_broadcast(&c->idle_cv);
		if (c->stop || c->req_gen != gen)
			continue;
		/* sleep until asked, the next retry, or 5 s (periodic eviction) */
		uint64_t now = fs_now_ns(), wake = now + 5000000000ull;
		if (next && next < wake)
			wake = next;
		struct timespec ts = fs_abstime(wake > now ? wake - now : 0);
		pthread_cond_timedwait(&c->wcv, &c->wmu, &ts);
	}
	pthread_mutex_unlock(&c->wmu);
	return NULL;
}

int worker_start(struct cache *c)
{
	int r = pthread_create(&c->worker, NULL, worker_main, c);
	if (r)
		return -r;
	c->worker_started = true;
	return 0;
}

static void kick(struct cache *c, bool wait, bool force)
{
	pthread_mutex_lock(&c->wmu);
	uint64_t g = ++c->req_gen;
	if (force)
		c->force_hooks = true;
	pthread_cond_signal(&c->wcv);
	while (wait && c->done_gen < g && !c->stop)
		pthread_cond_wait(&c->idle_cv, &c->wmu);
	pthread_mutex_unlock(&c->wmu);
}

void worker_kick(struct cache *c, bool wait, bool force)
{
	if (!c->worker_started)
		return;
	if (!wait && (c->o.max_size || c->o.disk_reserve)) {
		pthread_rwlock_wrlock(&c->lock);
		evict_locked(c);
		pthread_rwlock_unlock(&c->lock);
	}
	kick(c, wait, force);
}

void worker_wake(struct cache *c)
{
	if (c->worker_started)
		kick(c, false, false);
}

void worker_stop(struct cache *c)
{
	if (!c->worker_started)
		return;
	pthread_mutex_lock(&c->wmu);
	c->stop = true;
	pthread_cond_signal(&c->wcv);
	pthread_cond_broadcast(&c->idle_cv);
	pthread_mutex_unlock(&c->wmu);
	pthread_join(c->worker, NULL);
	c->worker_started = false;
}
