/* fs/monitor.h - qsfs-fs's monitor: a thread that, every CONFIRM_PERIOD
 * (200 ms while writers wait for room):
 *   - learns from qsfs-stor which handed-off segments are safely remote
 *     (one CONFIRMS request for all of them, on the client's kept
 *     connection) and tells the log (only confirmed segments may be
 *     evicted); with nothing to confirm it only PINGs stor;
 *   - seals the active segment once it holds data older than
 *     cache.max_segment_age (the recovery point of a host that dies);
 *   - sets the filesystem's ENOSPC switch: no new data while the cache is
 *     over its limit with nothing evictable (writers wait while stor
 *     answers, get ENOSPC while it does not, EROFS once fenced), and says
 *     whether writers meeting a cache disk low on space wait (stor answers
 *     and uploads segments the log can then evict) or get ENOSPC;
 *   - writes CACHE_DIR/fs-status.json (what `qsfs-ctl status` shows of the
 *     filesystem; stor may be down, so qsfs-ctl reads it from disk), only
 *     when something in it changed; on a full disk in place, or removed
 *     when even that fails (never a stale "ok").
 * Its period is 200 ms while writers wait for room (either kind).
 * The lease's heartbeat is not here (heartbeat.h): a stor that hangs
 * delays this thread by at most the client's timeout, never a renewal.
 */
#ifndef QSFS_FS_MONITOR_H
#define QSFS_FS_MONITOR_H

#include <stdint.h>

struct cache;
struct qfs;
struct storclient;
struct heartbeat;
struct collector;
struct monitor;
struct json_object;

struct monitor_opts {
	struct cache *c;
	struct qfs *fs;
	/* qsfs-stor's client, NULL when nothing is handed off
	 * (cache.handoff: none): nothing is then ever confirmed */
	struct storclient *stor;
	const char *cache_dir, *mnt, *volume;	/* kept: must outlive the monitor */
	const char *handoff;	/* "stor", "hook" or "none", for status */
	uint64_t max_age_ns;	/* cache.max_segment_age, 0 = off */
	struct heartbeat *hb;	/* the lease's heartbeat, for its state */
	struct collector *gc;	/* NULL when it could not start */
};

/* Start the thread. Returns 0 or -errno. */
int monitor_start(const struct monitor_opts *o, struct monitor **out);

/* The filesystem's status now (what fs-status.json would say, with
 * "updated" = now): for the STATUS request of the control socket, so that
 * `qsfs-ctl status` is current. Any thread; blocks only for cache_stats. */
struct json_object *monitor_status(void *arg);

/* Have the thread run a round now (e.g. the heartbeat saw the lease taken:
 * the status must say so at once). Never blocks. arg: the monitor. */
void monitor_kick(void *arg);

/* Stop the thread (waits for a round in flight: at most the stor client's
 * timeout) and free m. NULL: no-op. */
void monitor_stop(struct monitor *m);

#endif
