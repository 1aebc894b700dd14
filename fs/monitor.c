/* fs/monitor.c - see monitor.h. */
#include "monitor.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "collector.h"
#include "heartbeat.h"
#include "qfs.h"
#include "../cache/cache.h"
#include "../common/fsutil.h"
#include "../common/qlog.h"
#include "../common/storclient.h"
#include "../common/units.h"

#define CONFIRM_PERIOD_MS 2000
#define WAIT_PERIOD_MS 200	/* while writers wait for room */
#define FS_STATUS_FILE "fs-status.json"

struct monitor {
	struct monitor_opts o;
	pthread_t th;
	pthread_mutex_t mu;	/* stop, kicked */
	pthread_cond_t cv;
	bool stop, kicked;
	pthread_mutex_t st_mu;	/* stor_up, stor_why (written by the thread) */
	bool stor_up;
	char stor_why[600];	/* why stor did not answer */
	/* the thread's own (no lock) */
	enum qfs_full full;
	bool disk_wait;		/* writers wait for room on the disk */
	int status_err;		/* the last write of fs-status.json (logged on change) */
	char *last_status;	/* what fs-status.json holds, without "updated" */
	uint64_t *ids;		/* a round's unconfirmed segments */
	size_t nids, capids;
};

static void collect_sealed(void *arg, const struct cache_seg_info *s)
{
	struct monitor *x = arg;
	if (s->state != SEG_SEALED || !s->handed_off)
		return;
	if (x->nids == x->capids) {
		size_t nc = x->capids ? x->capids * 2 : 64;
		uint64_t *ni = realloc(x->ids, nc * sizeof *ni);
		if (!ni)
			return;	/* the rest next round */
		x->ids = ni;
		x->capids = nc;
	}
	x->ids[x->nids++] = s->id;
}

static void confirm_one(void *arg, uint64_t id)
{
	struct monitor *x = arg;
	int e = cache_confirm(x->o.c, id);
	/* -ENOENT: removed meanwhile; -EINVAL: not sealed and handed off
	 * here (stor listed more than was asked about) */
	if (e && e != -ENOENT && e != -EINVAL)
		qlog_warn("fs: confirming segment %llu: %s", (unsigned long long)id,
			  strerror(-e));
}

/* Which handed-off segments are safely remote: one CONFIRMS request per
 * span of ids (one in practice), or a PING when none waits. */
static void confirm_round(struct monitor *x)
{
	x->nids = 0;
	cache_segments(x->o.c, collect_sealed, x);
	int r = 0;
	if (!x->nids) {
		r = storclient_ping(x->o.stor);
	} else {
		/* cache_segments lists them in id order */
		for (size_t i = 0; i < x->nids && !r;) {
			uint64_t lo = x->ids[i], hi = lo;
			while (i < x->nids && x->ids[i] - lo < STORPROTO_CONFIRMS_SPAN)
				hi = x->ids[i++];
			r = storclient_confirms(x->o.stor, lo, hi, confirm_one, x);
		}
	}
	char why[600] = "";
	if (r)
		storclient_strerror(x->o.stor, r, why, sizeof why);
	pthread_mutex_lock(&x->st_mu);
	bool was_up = x->stor_up;
	x->stor_up = r == 0;
	memcpy(x->stor_why, why, sizeof why);
	pthread_mutex_unlock(&x->st_mu);
	if (r && was_up)	/* logged when it changes, not every round */
		qlog_warn("fs: %s", why);
	else if (!r && !was_up)
		qlog_info("fs: qsfs-stor answers again on %s", storclient_path(x->o.stor));
}

/* The problem line of a cache disk low on space, or whose reserve a
 * write that met a full disk used up, with sizes in units. */
static void disk_problem(struct monitor *x, const struct cache_disk *d, bool waits,
			 json_object *problems)
{
	if (!d->reserve || (!d->low && d->reserve_held))
		return;
	char fb[32], tb[32], rb[32], line[1200];
	format_size(d->free, fb, sizeof fb);
	format_size(d->total, tb, sizeof tb);
	format_size(d->reserve, rb, sizeof rb);
	if (d->low && d->reserve_held)
		snprintf(line, sizeof line, "the cache disk is full: %s free of %s on %s, less than "
			 "the %s kept free (cache.disk_reserve): new data %s; deletes go on (they use "
			 "the reserve)", fb, tb, x->o.cache_dir, rb,
			 waits ? "waits while qsfs-stor uploads what can then be evicted"
			       : "is refused with ENOSPC");
	else if (d->low)
		snprintf(line, sizeof line, "the cache disk is full: %s free of %s on %s, and the "
			 "reserve of %s (cache.disk_reserve) was used up by a write that met a full "
			 "disk (twice that must be free again): new data %s; deletes go on while "
			 "room lasts: free space there", fb, tb, x->o.cache_dir, rb,
			 waits ? "waits while qsfs-stor uploads what can then be evicted"
			       : "is refused with ENOSPC");
	else	/* room again: the worker makes the reserve again within seconds */
		snprintf(line, sizeof line, "the reserve of %s on the cache disk (%s/%s) was used up "
			 "by a write that met a full disk; it is made again now that %s of %s are free",
			 rb, x->o.cache_dir, CACHE_RESERVE_FILE, fb, tb);
	json_object_array_add(problems, json_object_new_string(line));
}

/* Did stor answer the last round? */
static bool stor_up_now(struct monitor *x)
{
	pthread_mutex_lock(&x->st_mu);
	bool up = x->stor_up;
	pthread_mutex_unlock(&x->st_mu);
	return up;
}

/* The filesystem's side of `qsfs-ctl status`, in CACHE_DIR/fs-status.json
 * (stor may be down, so qsfs-ctl reads it from disk), and the ENOSPC
 * switch: no new data while the cache is over its limit with nothing
 * evictable. */
/* The status as of now (stats read now, stor's reachability as of the
 * last round), in *full what the ENOSPC switch should say, and in
 * *disk_waits whether writers meeting a low disk should wait. Any
 * thread; takes st_mu briefly. */
static json_object *build_status(struct monitor *x, enum qfs_full *full, bool *disk_waits)
{
	struct cache_stats st;
	cache_stats(x->o.c, &st);
	char lease_problem[1024];
	bool fenced = x->o.hb && heartbeat_state(x->o.hb, lease_problem, sizeof lease_problem);
	if (!x->o.hb)
		lease_problem[0] = 0;
	pthread_mutex_lock(&x->st_mu);
	bool stor_up = x->stor_up;
	char stor_why[sizeof x->stor_why];
	memcpy(stor_why, x->stor_why, sizeof stor_why);
	pthread_mutex_unlock(&x->st_mu);
	/* with nothing handed off, nothing is ever evictable */
	*full = fenced ? QFS_FULL_FENCED : !st.over_limit ? QFS_FULL_NO :
		  x->o.stor && stor_up ? QFS_FULL_WAIT : QFS_FULL_ENOSPC;
	/* a low disk: uploads in flight let the log evict, so writers wait
	 * for them; with none, or stor away, waiting frees nothing */
	*disk_waits = x->o.stor && stor_up && st.segments_unconfirmed > 0;
	json_object *o = json_object_new_object(), *problems = json_object_new_array();
	char line[1200], ms[32], ls[32];
	if (!x->o.stor) {
		/* local only, as configured: not a problem, but never "safe" */
	} else if (!stor_up) {
		snprintf(line, sizeof line, "qsfs-stor does not answer on %s: writes go on locally, "
			 "%llu hand-offs wait and are retried (%s)", storclient_path(x->o.stor),
			 (unsigned long long)st.hooks_pending, stor_why);
		json_object_array_add(problems, json_object_new_string(line));
	} else if (st.hooks_pending) {
		snprintf(line, sizeof line, "%llu sealed segments or checkpoints wait to be handed "
			 "to qsfs-stor (retried)", (unsigned long long)st.hooks_pending);
		json_object_array_add(problems, json_object_new_string(line));
	}
	if (lease_problem[0])
		json_object_array_add(problems, json_object_new_string(lease_problem));
	if (st.local_repairs) {
		snprintf(line, sizeof line, "%llu segments failed their checks on local disk and were "
			 "fetched again from the backends (the bad copies are kept as "
			 "seg-*.qseg.corrupt in %s): check that disk",
			 (unsigned long long)st.local_repairs, x->o.cache_dir);
		json_object_array_add(problems, json_object_new_string(line));
	}
	if (st.segments_lost) {
		char ids[200] = "";
		size_t shown = st.segments_lost < 8 ? st.segments_lost : 8;
		for (size_t i = 0, l = 0; i < shown && l < sizeof ids; i++)
			l += (size_t)snprintf(ids + l, sizeof ids - l, "%s%llu", i ? ", " : "",
					      (unsigned long long)st.lost_ids[i]);
		snprintf(line, sizeof line, "DATA LOST: %llu segments (%s%s) were lost before they "
			 "were handed off (their files vanished from %s); reads of the records "
			 "in them fail with EIO%s", (unsigned long long)st.segments_lost, ids,
			 st.segments_lost > shown ? ", ..." : "", x->o.cache_dir,
			 st.lost_unreported ? "; storage has not yet recorded the loss, so later "
			 "checkpoints wait" : "");
		json_object_array_add(problems, json_object_new_string(line));
	}
	if (st.over_limit) {
		format_size(st.local_bytes, ls, sizeof ls);
		format_size(st.max_size, ms, sizeof ms);
		if (x->o.stor)
			snprintf(line, sizeof line, "the local cache holds %s, over its limit of %s, "
				 "and nothing can be evicted until qsfs-stor confirms %llu segments: "
				 "new writes %s", ls, ms,
				 (unsigned long long)st.segments_unconfirmed,
				 stor_up ? "wait for the uploads" : "fail with ENOSPC");
		else
			snprintf(line, sizeof line, "the local cache holds %s, over its limit of %s, "
				 "and nothing is uploaded (cache.handoff: none), so nothing can be "
				 "evicted: new writes fail with ENOSPC", ls, ms);
		json_object_array_add(problems, json_object_new_string(line));
	}
	disk_problem(x, &st.disk, *disk_waits, problems);
	json_object_object_add(o, "volume", json_object_new_string(x->o.volume));
	json_object_object_add(o, "mountpoint", json_object_new_string(x->o.mnt));
	json_object_object_add(o, "handoff", json_object_new_string(x->o.handoff));
	json_object_object_add(o, "pid", json_object_new_int64(getpid()));
	json_object_object_add(o, "state", json_object_new_string(
		fenced ? "fenced" : st.over_limit || st.disk.low ? "full" :
		json_object_array_length(problems) ? "degraded" : "ok"));
	json_object_object_add(o, "problems", problems);
	json_object_object_add(o, "stor_reachable", json_object_new_boolean(stor_up));
	json_object_object_add(o, "stor_connections",
			       json_object_new_uint64(x->o.stor ? storclient_connects(x->o.stor) : 0));
	json_object_object_add(o, "keys", json_object_new_int64((int64_t)st.keys));
	json_object_object_add(o, "segments", json_object_new_int64((int64_t)st.segments));
	json_object_object_add(o, "segments_local", json_object_new_int64((int64_t)st.segments_local));
	json_object_object_add(o, "segments_unconfirmed",
			       json_object_new_int64((int64_t)st.segments_unconfirmed));
	json_object_object_add(o, "segments_lost", json_object_new_uint64(st.segments_lost));
	json_object_object_add(o, "hooks_pending", json_object_new_int64((int64_t)st.hooks_pending));
	json_object_object_add(o, "hooks_failed", json_object_new_int64((int64_t)st.hooks_failed));
	json_object_object_add(o, "handoffs_done", json_object_new_uint64(st.handoffs_done));
	json_object_object_add(o, "handoff_seconds", json_object_new_double(
		(double)st.handoff_ns / 1e9));
	json_object_object_add(o, "local_bytes", json_object_new_int64((int64_t)st.local_bytes));
	json_object_object_add(o, "local_repairs",
			       json_object_new_int64((int64_t)st.local_repairs));
	json_object_object_add(o, "checkpoint_bytes",
			       json_object_new_int64((int64_t)st.checkpoint_bytes));
	json_object_object_add(o, "checkpoint_upto", json_object_new_uint64(st.checkpoint_upto));
	json_object_object_add(o, "max_size", json_object_new_int64((int64_t)st.max_size));
	json_object_object_add(o, "live_bytes", json_object_new_int64((int64_t)st.live_bytes));
	json_object_object_add(o, "garbage_bytes", json_object_new_int64((int64_t)st.garbage_bytes));
	json_object_object_add(o, "dead_segments", json_object_new_int64((int64_t)st.dead_segments));
	json_object_object_add(o, "dead_bytes", json_object_new_int64((int64_t)st.dead_bytes));
	json_object_object_add(o, "removed_segments",
			       json_object_new_int64((int64_t)st.removed_segments));
	json_object_object_add(o, "removes_pending",
			       json_object_new_int64((int64_t)st.removes_pending));
	json_object *d = json_object_new_object();
	json_object_object_add(d, "dir", json_object_new_string(x->o.cache_dir));
	json_object_object_add(d, "low", json_object_new_boolean(st.disk.low));
	json_object_object_add(d, "reserve_bytes", json_object_new_uint64(st.disk.reserve));
	json_object_object_add(d, "reserve_held", json_object_new_boolean(st.disk.reserve_held));
	json_object_object_add(d, "reserve_released", json_object_new_uint64(st.disk.reserve_released));
	json_object_object_add(d, "evicted_for_room", json_object_new_uint64(st.evicted_for_disk));
	json_object_object_add(o, "disk", d);
	if (x->o.gc) {
		struct collector_report gr;
		collector_last(x->o.gc, &gr);
		json_object *g = json_object_new_object();
		json_object_object_add(g, "state", json_object_new_string(gr.state));
		json_object_object_add(g, "passes", json_object_new_uint64(gr.passes));
		json_object_object_add(g, "waiting_segments",
				       json_object_new_uint64(gr.waiting_segments));
		json_object_object_add(g, "waiting_bytes", json_object_new_uint64(gr.waiting_bytes));
		json_object_object_add(g, "removed_bytes_since_start",
				       json_object_new_uint64(st.removed_bytes_since_open));
		json_object_object_add(o, "gc", g);
	}
	return o;
}

/* The disk's free and total bytes, which change all the time: in every
 * live status, and in the file only when something else changed. */
static void add_disk_bytes(json_object *o, const struct cache_disk *d)
{
	json_object *j;
	if (!json_object_object_get_ex(o, "disk", &j))
		return;
	json_object_object_add(j, "free_bytes", json_object_new_uint64(d->free));
	json_object_object_add(j, "total_bytes", json_object_new_uint64(d->total));
}

json_object *monitor_status(void *arg)
{
	struct monitor *x = arg;
	enum qfs_full full;
	bool waits;
	json_object *o = build_status(x, &full, &waits);
	json_object_object_add(o, "updated", json_object_new_int64((int64_t)time(NULL)));
	struct cache_disk d;
	cache_disk_state(x->o.c, &d);
	add_disk_bytes(o, &d);
	return o;
}

/* Write fs-status.json. On a full disk the atomic write (a temp file,
 * then rename) finds no room: the file is then overwritten in place (its
 * blocks are there already; a crash meanwhile leaves a torn file, which
 * qsfs-ctl takes for none), and if even that fails it is removed: a stale
 * "ok" must not outlive the problem (qsfs-ctl asks qsfs-fs live first
 * anyway, on fs.sock). Returns 0 or the atomic write's error. */
static int status_write(struct monitor *x, const char *text)
{
	int dfd = open(x->o.cache_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	size_t len = strlen(text);
	int e = fs_write_atomic(dfd, FS_STATUS_FILE, text, len, 0644);
	if (e) {
		int fd = openat(dfd, FS_STATUS_FILE, O_WRONLY | O_CLOEXEC);
		int e2 = fd < 0 ? -errno : fs_pwrite_all(fd, text, len, 0);
		if (!e2 && ftruncate(fd, (off_t)len) < 0)
			e2 = -errno;
		if (fd >= 0)
			close(fd);
		if (e2)
			unlinkat(dfd, FS_STATUS_FILE, 0);
		if (e != x->status_err)	/* once per change, not every round */
			qlog_warn("fs: cannot write %s/%s: %s; %s", x->o.cache_dir, FS_STATUS_FILE,
				  strerror(-e), e2 ? "removed it (qsfs-ctl status asks qsfs-fs "
				  "directly)" : "overwrote it in place");
	}
	x->status_err = e;
	close(dfd);
	return e;
}

/* The ENOSPC switch, and CACHE_DIR/fs-status.json. */
static void report(struct monitor *x)
{
	bool waits;
	json_object *o = build_status(x, &x->full, &waits);
	qfs_set_full(x->o.fs, x->full);
	qfs_set_stor_up(x->o.fs, x->o.stor && stor_up_now(x));
	x->disk_wait = waits && cache_disk_low(x->o.c);
	/* the file is written (two fsyncs) only when something in it changed;
	 * "updated" is when that was */
	const char *text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
							    JSON_C_TO_STRING_NOSLASHESCAPE);
	if (!x->last_status || strcmp(text, x->last_status)) {
		char *now = strdup(text);
		json_object_object_add(o, "updated", json_object_new_int64((int64_t)time(NULL)));
		struct cache_disk d;
		cache_disk_state(x->o.c, &d);
		add_disk_bytes(o, &d);
		text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
							 JSON_C_TO_STRING_NOSLASHESCAPE);
		int e = status_write(x, text);
		if (!e && now) {	/* else written again next time */
			free(x->last_status);
			x->last_status = now;
		} else {
			free(now);
		}
	}
	json_object_put(o);
}

static void *monitor_main(void *arg)
{
	struct monitor *x = arg;
	pthread_mutex_lock(&x->mu);
	while (!x->stop) {
		pthread_mutex_unlock(&x->mu);
		if (x->o.max_age_ns) {	/* the recovery point */
			int64_t id = cache_seal_older(x->o.c, x->o.max_age_ns);
			if (id > 0)
				qlog_debug("fs: sealed segment %lld: it held data older than "
					   "cache.max_segment_age", (long long)id);
			else if (id < 0)
				qlog_warn("fs: sealing an aged active segment: %s",
					  strerror((int)-id));
		}
		if (x->o.stor)
			confirm_round(x);
		report(x);
		pthread_mutex_lock(&x->mu);
		struct timespec ts = fs_abstime((x->full == QFS_FULL_WAIT || x->disk_wait ?
						 WAIT_PERIOD_MS : CONFIRM_PERIOD_MS) * 1000000ull);
		while (!x->stop && !x->kicked &&
		       pthread_cond_timedwait(&x->cv, &x->mu, &ts) != ETIMEDOUT)
			;
		x->kicked = false;
	}
	pthread_mutex_unlock(&x->mu);
	return NULL;
}

int monitor_start(const struct monitor_opts *o, struct monitor **out)
{
	struct monitor *x = calloc(1, sizeof *x);
	if (!x)
		return -ENOMEM;
	x->o = *o;
	x->stor_up = true;	/* until a round says otherwise (logged then) */
	pthread_mutex_init(&x->mu, NULL);
	pthread_mutex_init(&x->st_mu, NULL);
	fs_cond_init(&x->cv);	/* CLOCK_MONOTONIC, as fs_abstime */
	int r = pthread_create(&x->th, NULL, monitor_main, x);
	if (r) {
		pthread_cond_destroy(&x->cv);
		pthread_mutex_destroy(&x->mu);
		pthread_mutex_destroy(&x->st_mu);
		free(x);
		return -r;
	}
	*out = x;
	return 0;
}

void monitor_kick(void *arg)
{
	struct monitor *x = arg;
	pthread_mutex_lock(&x->mu);
	x->kicked = true;
	pthread_cond_broadcast(&x->cv);
	pthread_mutex_unlock(&x->mu);
}

void monitor_stop(struct monitor *x)
{
	if (!x)
		return;
	pthread_mutex_lock(&x->mu);
	x->stop = true;
	pthread_cond_broadcast(&x->cv);
	pthread_mutex_unlock(&x->mu);
	pthread_join(x->th, NULL);
	pthread_cond_destroy(&x->cv);
	pthread_mutex_destroy(&x->mu);
	pthread_mutex_destroy(&x->st_mu);
	free(x->last_status);
	free(x->ids);
	free(x);
}
