/* fs/fsctl.h - qsfs-fs's control socket (fs.socket, default
 * CACHE_DIR/fs.sock, mode 0600): what `qsfs-ctl drain`, `qsfs-ctl ready`
 * and the container's shutdown waiter ask the mounted filesystem.
 *
 * One request line per connection (the words: common/fsproto.h), one
 * reply line (WARMUP, GC: several):
 *   PING     "OK MOUNTPOINT" (the filesystem is mounted and serving)
 *   SEAL     make everything written so far durable, seal the active
 *            segment even if partly filled, and run the hand-off hooks
 *            once; replies {"sealed":ID,"hooks_pending":N} (ID 0: nothing
 *            was written since the last seal)
 *   STATUS   the filesystem's whole status as of now (fs/monitor.h: what
 *            fs-status.json holds) with the log's live counters
 *            {"hooks_pending":N,"hooks_running":N,"active_records":N,
 *            "active_age_s":S,"segments_unconfirmed":N,"removes_pending":N}
 *   WARMUP   followed by inode numbers, one per line, until the client
 *            shuts down its side (none: the whole volume): fetch every
 *            evicted segment holding their data blocks; a JSON progress
 *            line after each segment ({"done":false,"segments":N,
 *            "checked":I,"fetched":F,"failed":E}), then a last one with
 *            "done":true, "files", "segments", "fetched", "failed", "error"
 *   GC [S]   a thorough garbage collection pass now (collector_run,
 *            waiting up to S seconds, default 60, for qsfs-stor): JSON
 *            progress lines {"done":false,...} then {"done":true,
 *            "cleaned_segments","moved_bytes","removed_segments",
 *            "removed_bytes","waiting_segments","waiting_bytes","state",
 *            "error"}
 * Anything else gets "ERR ...".
 */
#ifndef QSFS_FS_FSCTL_H
#define QSFS_FS_FSCTL_H

#include <stddef.h>

struct cache;
struct collector;
struct fsctl;

/* Listen on path and serve requests about log c (mounted on mnt, collected
 * by gc, which may be NULL) on a background thread. Returns 0, or a
 * negative errno with err naming the socket. */
int fsctl_start(const char *path, const char *mnt, struct cache *c, struct collector *gc,
		struct fsctl **out, char *err, size_t errlen);

/* STATUS answers with what fn(arg) returns (a JSON object the request
 * then owns: the filesystem's whole status, monitor_status) plus the
 * log's live counters. fn NULL: the counters only. fn must stay callable
 * until fsctl_stop returns. */
struct json_object;
void fsctl_set_status(struct fsctl *x, struct json_object *(*fn)(void *arg), void *arg);

/* Stop listening, wait for requests in progress, remove the socket. */
void fsctl_stop(struct fsctl *x);

#endif
