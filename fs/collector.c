/* fs/collector.c - see collector.h. */
#include "collector.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../cache/cache.h"
#include "../common/storclient.h"
#include "../common/fsutil.h"
#include "../common/qlog.h"

#define PICK_BACKGROUND 4	/* segments cleaned per background pass at most */
#define PICK_THOROUGH 64	/* per round of collector_run */
#define WAIT_STEP_NS (500ull * 1000 * 1000)	/* collector_run's look at stor */

struct collector {
	struct cache *c;
	struct collector_opts o;
	pthread_t th;
	bool started;
	pthread_mutex_t mu;	/* stop, last, the wake-up */
	pthread_cond_t cv;
	bool stop;
	atomic_bool stopping;	/* read between steps without mu */
	pthread_mutex_t pass_mu;	/* one pass at a time */
	struct collector_report last;
	uint64_t passes;
	int last_logged_err;
};

/* GCFLOOR from qsfs-stor; UINT64_MAX when nothing is uploaded. */
static int remote_floor(struct collector *g, uint64_t *floor)
{
	*floor = 0;
	if (!g->o.stor) {
		*floor = UINT64_MAX;
		return 0;
	}
	return storclient_gcfloor(g->o.stor, floor);
}

static void say(struct collector_report *rep, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void say(struct collector_report *rep, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(rep->state, sizeof rep->state, fmt, ap);
	va_end(ap);
}

/* Remove what the floors allow; fills the report's removal part. */
static int remove_step(struct collector *g, struct collector_report *rep, int *stor_err)
{
	uint64_t rf;
	*stor_err = remote_floor(g, &rf);
	struct cache_remove_result res;
	int r = cache_remove_dead(g->c, rf, &res);
	rep->removed_segments += res.segments;
	rep->removed_bytes += res.bytes;
	rep->waiting_segments = res.waiting;
	rep->waiting_bytes = res.waiting_bytes;
	rep->unconfirmed = res.unconfirmed;
	rep->above_floor_bytes = res.above_floor_bytes;
	rep->above_local_bytes = res.above_local_bytes;
	rep->floor = res.floor;
	rep->local_floor = res.local_floor;
	rep->remote_floor = rf;
	return r;
}

/* Cleaning and folding write the live data again before the segments
 * they empty can go (after checkpoints, confirmations, removal): on a
 * cache disk low on space they would eat the room kept for deletes and
 * the stop (cache_opts.disk_reserve), so they wait for room. Removal,
 * which frees space, goes on. */
static bool disk_too_low(struct collector *g, struct collector_report *rep)
{
	if (!cache_disk_low(g->c))
		return false;
	rep->disk_low = true;
	return true;
}

/* Clean up to max segments while garbage is above the target. */
static int clean_step(struct collector *g, size_t max, struct collector_report *rep,
		      collector_progress_fn progress, void *arg)
{
	if (disk_too_low(g, rep))
		return 0;
	uint64_t ids[PICK_THOROUGH];
	if (max > PICK_THOROUGH)
		max = PICK_THOROUGH;
	size_t n = cache_clean_pick(g->c, g->o.target, ids, max);
	for (size_t i = 0; i < n && !atomic_load(&g->stopping); i++) {
		struct cache_clean_result cr;
		int r = cache_clean_segment(g->c, ids[i], g->o.rate, &cr);
		if (r == -EROFS)
			return r;
		if (r) {	/* named and logged by the cleaner; the next pass tries again */
			rep->err = r;
			continue;
		}
		rep->cleaned_segments++;
		rep->moved_bytes += cr.bytes;
		if (progress)
			progress(arg, rep);
	}
	return 0;
}

/* Is a full checkpoint worth it now? The dead segments above the floor
 * must outweigh what a full costs (about the checkpoints' size). */
static bool full_worth_it(struct collector *g, const struct collector_report *rep)
{
	(void)g;
	struct cache_stats st;
	cache_stats(g->c, &st);
	/* only what this node's own checkpoints hold back: a full cannot move
	 * the backends' floor while qsfs-stor lags or is away */
	uint64_t above = rep->above_local_bytes;
	return above >= st.segment_size && above >= 2 * st.checkpoint_bytes;
}

static void finish(struct collector *g, struct collector_report *rep, int r, int stor_err)
{
	rep->err = r ? r : rep->err;
	if (r == -EROFS) {
		say(rep, "not collecting: this node no longer holds the writer lease (fenced)");
	} else if (r) {
		say(rep, "the last pass failed: %s", strerror(-r));
	} else if (rep->disk_low) {
		say(rep, "not cleaning: the cache disk is low on space (cleaning writes live data "
		    "again before it frees any); dead segments are removed as the floors allow "
		    "(%" PRIu64 " wait)", rep->waiting_segments);
	} else if (stor_err && g->o.stor) {
		say(rep, "dead segments are not removed: qsfs-stor does not answer on %s (%s), so "
		    "the backends' restore points are unknown", storclient_path(g->o.stor),
		    strerror(-stor_err));
	} else if (rep->waiting_segments) {
		char mb[32];
		if (rep->waiting_bytes < (1 << 20))
			snprintf(mb, sizeof mb, "%.1f KiB", (double)rep->waiting_bytes / 1024);
		else
			snprintf(mb, sizeof mb, "%.1f MiB", (double)rep->waiting_bytes / (1 << 20));
		if (rep->unconfirmed)
			say(rep, "%" PRIu64 " dead segments (%s) wait: %" PRIu64 " of them are not yet "
			    "confirmed stored by qsfs-stor", rep->waiting_segments, mb,
			    rep->unconfirmed);
		else if (rep->remote_floor != UINT64_MAX && rep->remote_floor < rep->local_floor)
			say(rep, "%" PRIu64 " dead segments (%s) wait until qsfs-stor has stored the "
			    "checkpoints that no longer need them (the backends' restore points allow "
			    "removal up to segment %" PRIu64 ", this node's up to %" PRIu64 ")",
			    rep->waiting_segments, mb, rep->remote_floor, rep->local_floor);
		else
			say(rep, "%" PRIu64 " dead segments (%s) wait for a newer full checkpoint "
			    "(removal reaches segment %" PRIu64 ")", rep->waiting_segments, mb,
			    rep->floor);
	} else {
		say(rep, "idle: no dead segment waits");
	}
	pthread_mutex_lock(&g->mu);
	rep->passes = ++g->passes;
	g->last = *rep;
	bool tell = r != g->last_logged_err;
	g->last_logged_err = r;
	pthread_mutex_unlock(&g->mu);
	if (tell && r)	/* once per change, not every pass */
		qlog_warn("fs: garbage collection: %s", rep->state);
	else if (rep->removed_segments || rep->cleaned_segments || rep->folded_blocks)
		qlog_info("fs: garbage collection: folded %" PRIu64 " fragmented blocks (%" PRIu64
			  " bytes), cleaned %" PRIu64 " segments (%" PRIu64 " bytes moved), "
			  "removed %" PRIu64 " (%" PRIu64 " bytes)", rep->folded_blocks,
			  rep->folded_bytes, rep->cleaned_segments, rep->moved_bytes,
			  rep->removed_segments, rep->removed_bytes);
}

/* Compaction: the filesystem folds fragmented blocks. */
static int defrag_step(struct collector *g, bool thorough, struct collector_report *rep)
{
	if (!g->o.defrag || disk_too_low(g, rep))
		return 0;
	/* the background takes one interval's worth of the rate at most */
	uint64_t budget = thorough || !g->o.rate ? 0 : g->o.rate * (g->o.interval_s ? g->o.interval_s : 1);
	int r = g->o.defrag(g->o.defrag_arg, budget, thorough, &rep->folded_bytes,
			    &rep->folded_blocks);
	return r < 0 ? r : 0;
}

/* One background pass. */
static void pass(struct collector *g)
{
	pthread_mutex_lock(&g->pass_mu);
	struct collector_report rep = { 0 };
	int stor_err = 0;
	int r = defrag_step(g, false, &rep);
	if (!r)
		r = remove_step(g, &rep, &stor_err);
	if (!r)
		r = clean_step(g, PICK_BACKGROUND, &rep, NULL, NULL);
	if (!r && !stor_err && !atomic_load(&g->stopping) && full_worth_it(g, &rep)) {
		r = cache_checkpoint_full(g->c);
		rep.full_written = r == 0;
		if (!r)	/* what it allows locally right away */
			r = remove_step(g, &rep, &stor_err);
	}
	finish(g, &rep, r, stor_err);
	pthread_mutex_unlock(&g->pass_mu);
}

int collector_run(struct collector *g, unsigned timeout_s, collector_progress_fn progress,
		  void *arg, struct collector_report *out)
{
	pthread_mutex_lock(&g->pass_mu);
	struct collector_report rep = { 0 };
	int stor_err = 0;
	say(&rep, "folding fragmented blocks");
	if (progress)
		progress(arg, &rep);
	int r = defrag_step(g, true, &rep);
	say(&rep, "cleaning");
	if (!r)
		r = remove_step(g, &rep, &stor_err);
	/* clean down to the target */
	for (uint64_t before = UINT64_MAX; !r && !atomic_load(&g->stopping) &&
					   rep.cleaned_segments != before;) {
		before = rep.cleaned_segments;
		r = clean_step(g, PICK_THOROUGH, &rep, progress, arg);
	}
	/* two fulls: the older one then covers every dead segment there is */
	struct cache_stats st;
	cache_stats(g->c, &st);
	for (int i = 0; !r && i < 2 && st.dead_segments && !atomic_load(&g->stopping); i++) {
		say(&rep, "writing a full checkpoint");
		if (progress)
			progress(arg, &rep);
		r = cache_checkpoint_full(g->c);
		rep.full_written = r == 0;
	}
	/* then remove, waiting for stor to store those checkpoints and to
	 * confirm the dead segments */
	uint64_t deadline = fs_now_ns() + (uint64_t)timeout_s * 1000000000ull;
	while (!r && !atomic_load(&g->stopping)) {
		r = remove_step(g, &rep, &stor_err);
		if (r)
			break;
		/* done when the backends' floor has caught up with the local one
		 * and every dead segment below it is confirmed: what still
		 * waits then needs newer checkpoints (later passes) */
		bool remote_ok = !g->o.stor || (!stor_err && rep.remote_floor >= rep.local_floor);
		if ((remote_ok && !rep.unconfirmed) || fs_now_ns() >= deadline)
			break;
		say(&rep, "waiting for qsfs-stor to store the new checkpoints and confirm the "
		    "dead segments (removal reaches segment %" PRIu64 " of %" PRIu64 ")", rep.floor,
		    rep.local_floor);
		if (progress)
			progress(arg, &rep);
		struct timespec ts = { 0, (long)WAIT_STEP_NS };
		nanosleep(&ts, NULL);
	}
	finish(g, &rep, r, stor_err);
	*out = rep;
	pthread_mutex_unlock(&g->pass_mu);
	return r;
}

void collector_last(struct collector *g, struct collector_report *out)
{
	pthread_mutex_lock(&g->mu);
	*out = g->last;
	pthread_mutex_unlock(&g->mu);
}

static void *collector_main(void *arg)
{
	struct collector *g = arg;
	pthread_mutex_lock(&g->mu);
	while (!g->stop) {
		struct timespec ts = fs_abstime((uint64_t)g->o.interval_s * 1000000000ull);
		pthread_cond_timedwait(&g->cv, &g->mu, &ts);
		if (g->stop)
			break;
		pthread_mutex_unlock(&g->mu);
		pass(g);
		pthread_mutex_lock(&g->mu);
	}
	pthread_mutex_unlock(&g->mu);
	return NULL;
}

int collector_start(struct cache *c, const struct collector_opts *o, struct collector **out)
{
	struct collector *g = calloc(1, sizeof *g);
	if (!g)
		return -ENOMEM;
	g->c = c;
	g->o = *o;
	pthread_mutex_init(&g->mu, NULL);
	pthread_mutex_init(&g->pass_mu, NULL);
	fs_cond_init(&g->cv);	/* CLOCK_MONOTONIC, as fs_abstime */
	say(&g->last, o->interval_s ? "idle: no pass yet" : "off (cache.gc_interval is 0): "
	    "only `qsfs-ctl gc` collects");
	if (o->interval_s) {
		int r = pthread_create(&g->th, NULL, collector_main, g);
		if (r) {
			free(g);
			return -r;
		}
		g->started = true;
	}
	*out = g;
	return 0;
}

void collector_cancel(struct collector *g)
{
	if (g)
		atomic_store(&g->stopping, true);
}

void collector_stop(struct collector *g)
{
	if (!g)
		return;
	atomic_store(&g->stopping, true);
	pthread_mutex_lock(&g->mu);
	g->stop = true;
	pthread_cond_broadcast(&g->cv);
	pthread_mutex_unlock(&g->mu);
	if (g->started)
		pthread_join(g->th, NULL);
	pthread_mutex_destroy(&g->mu);
	pthread_mutex_destroy(&g->pass_mu);
	pthread_cond_destroy(&g->cv);
	free(g);
}
