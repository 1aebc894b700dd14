/* cache/cache.h - the append-only segment log: a key/value store over a
 * directory of fixed-size segment files (see docs/ARCHITECTURE.md).
 *
 * Thread safety: every function may be called from any thread at once, except
 * cache_close(), which must be the last call. Writers are serialised; readers
 * run in parallel with each other and with writers, and a read that has to
 * fetch a missing segment blocks only itself (and other readers of that same
 * segment).
 *
 * Errors are negative errno values. The log decides and logs once:
 *   -EINVAL  bad argument (key length 0 or > 255, value too large for a segment)
 *   -ENOENT  no such key
 *   -EIO     unreadable or corrupt data (the log names segment and offset),
 *            or a missing segment that its hook could not bring back
 *   -EROFS   the log was opened read-only
 *   -ENOSPC  the disk is full (the failed record is cut off again), even
 *            after the reserve (cache_opts.disk_reserve) was given up
 */
#ifndef QSFS_CACHE_H
#define QSFS_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "format.h"

#define CACHE_DEFAULT_SEGMENT_SIZE (64ull << 20)
#define CACHE_MIN_SEGMENT_SIZE 4096ull
#define CACHE_MAX_SEGMENT_SIZE (1ull << 32)
#define CACHE_DEFAULT_HOOK_TIMEOUT_MS 120000u
/* The file in the cache directory every running hook holds a shared flock
 * on (see hook.h); an exclusive flock on it waits until no hook runs. */
#define CACHE_HOOKS_LOCK "HOOKS"
/* The file qsfs-fs (any read-write open) holds an exclusive flock on. */
#define CACHE_LOCK_FILE "LOCK"
/* The reserve file (cache_opts.disk_reserve): room kept on the disk. */
#define CACHE_RESERVE_FILE "reserve"

struct cache_opts {
	const char *dir;		/* cache directory, created if absent */
	uint64_t segment_size;		/* 0 = 64 MiB; 4 KiB .. 4 GiB */
	uint64_t max_size;		/* limit of local segment bytes (checkpoints
					 * come on top), 0 = none */
	/* Room kept on the cache disk, 0 = none: a reserve file of this
	 * size (dir/reserve) that the log gives up when a write meets a
	 * full disk, so deletes, seals, checkpoints and a start still go
	 * through; the disk counts as low (cache_disk_low) while less than
	 * this is free beyond it; confirmed segments are evicted while less
	 * than twice this is free (cache/cache_space.c). */
	uint64_t disk_reserve;
	const char *hook;		/* hook program, NULL = no hooks */
	/* In place of a hook program (hook must be NULL): a function the log
	 * calls, on its own threads, with the hook's events and arguments
	 * (hooks/README.md), returning what hook_run would (0: done; a
	 * failure is retried like a failed hook). It may block (a fetch
	 * blocks its reader) and must not call the log. NULL with hook NULL:
	 * nothing is handed off (a local-only log). */
	int (*handoff)(void *arg, const char *event, const char *const *args);
	void *handoff_arg;
	unsigned hook_timeout_ms;	/* 0 = 120 s */
	unsigned hook_retry_ms;		/* first retry delay, 0 = 1 s; doubles, capped at 5 min */
	unsigned checkpoint_every;	/* seals per delta checkpoint, 0 = 1 */
	unsigned max_open_fds;		/* segment fds kept open, 0 = 256 */
	/* Volume id the directory must belong to. NULL: use the id recorded in
	 * the directory, or make a random one for a new directory. */
	const uint8_t *volume_id;
	/* Open without writing anything: no tail truncation, no new segment,
	 * no checkpoints, no hooks. For inspection of a directory. */
	bool read_only;
	/* > 0: an fd from cache_lock() on this directory; cache_open uses a
	 * duplicate of it instead of taking the lock (the caller still closes
	 * its own). 0: cache_open takes the lock itself. */
	int lock_fd;
};

struct cache;
struct qsfs_config;

/* The options the configuration's cache: section gives (dir, segment_size,
 * max_size, hook, hook_timeout); the strings point into cfg. What qsfs-fs
 * and qsfs-wait-hooks open the log with. */
struct cache_opts cache_opts_from_config(const struct qsfs_config *cfg);

/* Create dir if it is missing (mode 0700) and take the exclusive flock on
 * dir/LOCK that a read-write cache_open holds: at once, or with wait
 * once the holder lets go. For a process that must own the directory
 * before it opens the log (qsfs-fs restores into it and takes the
 * volume's writer lease first; qsfs-wait-hooks waits for qsfs-fs to stop).
 * Returns the fd (>= 3, close-on-exec), -EBUSY when another process holds
 * the lock and !wait, or another negative errno. Logs nothing. */
int cache_lock(const char *dir, bool wait);

/* Count, from outside (no lock, nothing written, the cache may be open in
 * another process), the local segments of the cache directory dir that
 * hold records and were neither handed off (segment-sealed hook succeeded)
 * nor confirmed stored remotely: data only this node has. qsfs-stor asks
 * before it releases the writer lease of a stopped qsfs-fs. A segment
 * handed off while this runs may still be counted. Returns 0 with *n (and
 * the lowest such id in *first, if first is not NULL; 0 when *n is 0),
 * -ENOENT when dir holds no cache (no VOLUME file), or another -errno.
 * Logs only a damaged state.log (as its reader does). */
int cache_unhanded(const char *dir, uint64_t *n, uint64_t *first);

/* Open (or create) the log in opts->dir. Loads the newest valid checkpoint,
 * replays the segments after it, truncates a torn tail of the active segment
 * (warning with file name and byte count), queues hooks that were not yet
 * handed off, then runs the `ready` hook. Takes an exclusive lock on the
 * directory unless read_only or given opts->lock_fd. Returns 0 and *out, or a negative errno after
 * logging what is wrong and where. */
int cache_open(const struct cache_opts *opts, struct cache **out);

/* Clean close: writes every checkpoint already built (with the default
 * checkpoint_every = 1 that covers every sealed segment), tries once more
 * every hook not yet handed off (what still fails is remembered for the
 * next open), runs the `closing` hook and frees c. The active segment is not
 * sealed (call cache_seal() first to hand it off); the next open replays it.
 * Returns 0 or the first error met (c is freed either way). */
int cache_close(struct cache *c);

/* Append a PUT record. Not durable until cache_sync(). If the active segment
 * cannot take the record it is sealed first. */
int cache_put(struct cache *c, const void *key, size_t klen, const void *val,
	      size_t vlen);

/* Append a DEL (tombstone) record. Returns -ENOENT (and writes nothing) if
 * the key does not exist. */
int cache_del(struct cache *c, const void *key, size_t klen);

/* One change of a batch given to cache_apply. */
struct cache_op {
	bool del;		/* a DEL (tombstone); else a PUT of val */
	const void *key;
	size_t klen;
	const void *val;
	size_t vlen;
};

#define CACHE_BATCH_MAX 4096u	/* ops in one cache_apply */

/* Append ops[0..n) as one atomic change: after a crash the log holds all of
 * them or none (an incomplete batch is cut off like any torn tail). They
 * apply in order, so a later op on the same key wins. A DEL of an absent key
 * is written and changes nothing (no -ENOENT here). All records go into one
 * segment: the active one is sealed first if it cannot take them all, and
 * the whole batch must fit in an empty segment. Not durable until
 * cache_sync(). Returns 0, -EINVAL (n is 0 or above CACHE_BATCH_MAX, a bad
 * key, or too large for a segment) or as cache_put. If the index cannot take
 * the whole batch (-ENOMEM), what it took is taken back and the batch is cut
 * off the file again: nothing of it remains. */
int cache_apply(struct cache *c, const struct cache_op *ops, size_t n);

/* Read key's value. Copies min(vlen, cap) bytes into buf and returns the
 * full value length (so a short buffer can be detected). The record's
 * checksum is verified on every read. When a record of a sealed segment
 * storage holds (confirmed, or handed off) fails its checks, the local file is set aside
 * as seg-N.qseg.corrupt and the segment fetched again through the
 * segment-missing hook, once per call (stats: local_repairs); otherwise, or
 * if the fetched copy fails too, -EIO naming the segment and offset. */
ssize_t cache_get(struct cache *c, const void *key, size_t klen, void *buf,
		  size_t cap);

/* Called by cache_scan for each key, in key order. val is NULL when the scan
 * was asked for keys only. Return 0 to go on, anything else to stop the scan
 * (cache_scan then returns that value). The callback may call any cache
 * function (no lock is held while it runs). */
typedef int (*cache_scan_cb)(void *arg, const uint8_t *key, size_t klen,
			     const uint8_t *val, size_t vlen);

/* Visit every key that starts with prefix (plen may be 0), in key order.
 * Keys added or removed during the scan may or may not be seen; a key that
 * exists for the whole scan is seen exactly once. */
int cache_scan(struct cache *c, const void *prefix, size_t plen,
	       bool with_values, cache_scan_cb cb, void *arg);

/* How many keys start with the byte first: O(1), under the read lock (the
 * index keeps a count per first byte). E.g. the filesystem's files. */
uint64_t cache_count_keys(struct cache *c, uint8_t first);

/* One key listed by cache_keys. */
struct cache_keyinfo {
	uint32_t vlen;		/* its value's length */
	uint8_t klen;
	uint8_t key[255];
};

/* List up to max keys that start with prefix, in key order, with their
 * value lengths: the keys after `after` (afterlen bytes, which must start
 * with prefix), or from the prefix's first key when after is NULL. One walk
 * of the index under the read lock: no I/O, no allocation, so it blocks
 * only while a writer holds the lock. Returns the number listed (== max:
 * there may be more; call again after the last one) or -EINVAL. For small
 * key ranges read on a hot path (a block's extents); cache_scan is the
 * general walk. */
ssize_t cache_keys(struct cache *c, const void *prefix, size_t plen, const void *after,
		   size_t afterlen, struct cache_keyinfo *out, size_t max);

/* cache_scan that starts at the first key >= from (fromlen bytes), so the
 * keys before it cost nothing: e.g. the blocks of a large file past an
 * offset. from NULL: from the prefix. -EINVAL if from does not start with
 * prefix. */
int cache_scan_from(struct cache *c, const void *prefix, size_t plen, const void *from,
		    size_t fromlen, bool with_values, cache_scan_cb cb, void *arg);

/* Make every record appended so far durable (fdatasync). */
int cache_sync(struct cache *c);

/* Seal the active segment now, even if not full, and start a new one. The
 * segment-sealed hook then runs in the background. No-op (returns 0) when the
 * active segment holds no record. Returns the sealed segment id (> 0) or 0. */
int64_t cache_seal(struct cache *c);

/* Another host has taken the volume (its writer lease): from now on every
 * put, del, apply and seal fails with -EROFS. Reads go on. Not undone. */
void cache_fence(struct cache *c);

/* The recovery point: seal the active segment (as cache_seal) when its
 * first record was appended age_ns or more ago. Records replayed at open
 * count as old (their age is unknown), so they are sealed at the first
 * call. Returns the sealed id (> 0), 0 when nothing is due, or -errno. */
int64_t cache_seal_older(struct cache *c, uint64_t age_ns);

/* Record that segment id is stored remotely (stor confirmed all its shards
 * and metadata). Durable. Only confirmed segments may be evicted. Returns
 * -ENOENT for an unknown id, -EINVAL for the active segment. */
int cache_confirm(struct cache *c, uint64_t seg_id);

/* Run eviction now (it also runs after each seal and confirm). Returns the
 * number of segments evicted. */
int cache_evict(struct cache *c);

/* Wait until the background worker has nothing to do right now: queued
 * checkpoints written and every due hook tried once. For tests, tools and
 * clean shutdown. */
void cache_quiesce(struct cache *c);

enum seg_state {
	SEG_ACTIVE,	/* being appended to */
	SEG_SEALED,	/* sealed, not yet confirmed remote */
	SEG_CONFIRMED,	/* sealed and stored remotely, file still local */
	SEG_EVICTED,	/* stored remotely, no local file */
	SEG_LOST,	/* lost before it was handed off: its records are gone */
};

struct cache_seg_info {
	uint64_t id;
	enum seg_state state;
	bool local;		/* file present */
	bool handed_off;	/* segment-sealed hook succeeded */
	uint64_t size;		/* file size in bytes */
	uint64_t live;		/* bytes of records the index points to */
	uint64_t garbage;	/* size - header - live: overwritten, deleted, seal */
};

/* The segment that holds key's current record, in *seg. 0, -ENOENT (no
 * such key) or -EINVAL. */
int cache_locate(struct cache *c, const void *key, size_t klen, uint64_t *seg);

/* Is key's current record on local disk (reading it needs no fetch)?
 * Returns 1 (in a sealed segment), 2 (in the active one: written just
 * now), 0 (not local), -ENOENT (no such key) or -EINVAL. Read lock, no
 * I/O. */
int cache_key_local(struct cache *c, const void *key, size_t klen);

/* Make sealed segment id local without reading from it: an evicted one is
 * fetched through the segment-missing hook (as a read would; concurrent
 * reads of it wait for the same fetch) and becomes the most recently read.
 * Returns 1 when it was fetched, 0 when it was local already, -ENOENT for
 * an unknown id, -EROFS on a read-only open, or -EIO when the fetch
 * failed. */
int cache_prefetch(struct cache *c, uint64_t id);

/* Does a sealed segment wait for its hand-off or its confirmation (nor
 * lost)? Once confirmed it may be evicted: what a writer meeting a full
 * disk may wait for. Read lock, a walk of the table from the newest
 * segment down (one step when one waits). */
bool cache_uploads_pending(struct cache *c);

/* Call cb for each known segment in id order (a snapshot). */
int cache_segments(struct cache *c,
		   void (*cb)(void *arg, const struct cache_seg_info *s),
		   void *arg);

/* --- cleaning: the first half of garbage collection -------------------
 *
 * Cleaning a sealed segment moves each of its live records (the ones the
 * index still points to) to the end of the log, so that the segment holds
 * only garbage: a *dead* segment, live bytes 0, which the second half
 * (cache_remove_dead below: removing it locally and from the backends once
 * no retained checkpoint refers to it) drops. qsfs-fs's collector
 * (fs/collector.c) runs both. */

struct cache_clean_result {
	uint64_t records;	/* live records moved */
	uint64_t bytes;		/* their bytes */
};

/* Move every live record of sealed segment id to the active segment, one
 * record at a time, each under the write lock only for its append (a put or
 * del that comes first wins; readers and writers go on meanwhile). Fetches
 * the segment through the segment-missing hook if it is not local, and
 * reads it with the same checks as a replay: a bad record stops the clean
 * with -EIO (logged with the segment and offset) and nothing is lost,
 * since the records moved so far are whole copies. rate: at most that many
 * bytes moved per second (0: no limit), by sleeping between records.
 * Returns 0 (id is dead then, unless records were written to it meanwhile,
 * which cannot happen to a sealed segment), -EINVAL for the active or an
 * unknown segment, -EROFS (read-only or fenced), or an append's or fetch's
 * error. Blocks for the segment's read and appends; no lock is held while
 * it reads. Not thread safe against another clean of the same segment. */
int cache_clean_segment(struct cache *c, uint64_t id, uint64_t rate,
			struct cache_clean_result *res);

/* What the cleaner asks its user before it moves a live record of key:
 * the user may rewrite the key's whole state itself (e.g. a filesystem
 * folds a block and its extents into one record, so that overlapped bytes
 * stop being live), through the log's ordinary writes. Return the bytes
 * appended (> 0: handled, the record is garbage now), 0 to let the cleaner
 * move it as it is, or a negative errno (the clean stops with it). Called
 * without any log lock held, from the cleaning thread. */
typedef ssize_t (*cache_mover_fn)(void *arg, const uint8_t *key, size_t klen);

/* Install (or with fn NULL remove) the mover. Not while a clean runs. */
void cache_set_mover(struct cache *c, cache_mover_fn fn, void *arg);

/* Benefit over cost of cleaning a segment of size bytes (header included)
 * with live of them live, sealed age segments ago, as the LFS cleaner
 * weighs it: (1 - u) * age / cost, u = the live fraction, cost = 1 + u
 * (read it, write its live part), plus 1 when it must be fetched first.
 * 0 when there is nothing to gain (u == 1) or nothing to move (live == 0:
 * already dead). Pure. */
double cache_clean_score(uint64_t size, uint64_t live, uint64_t age, bool local);

/* Choose up to max sealed segments worth cleaning, best score first, into
 * ids: none while garbage is at most `target` (0..1) of the sealed,
 * not-dead segments' bytes, and only segments whose own garbage fraction
 * is above target. Dead segments count apart (they await removal, and
 * cleaning cannot shrink them). Returns the number chosen. Takes the read
 * lock briefly. */
size_t cache_clean_pick(struct cache *c, double target, uint64_t *ids, size_t max);

/* --- removal: the second half of garbage collection (cache_gc.c) ------
 *
 * A dead segment (sealed, nothing live) is removed locally and handed to
 * the segment-removed hook (qsfs-stor deletes its objects) once no
 * checkpoint a node may still start from lies below it; the comment at the
 * top of cache_gc.c gives the argument. */

/* The highest segment id this node's own checkpoints allow removal up to:
 * the smallest upto among the full checkpoint files here (any may become
 * the base when newer ones fail verification), or 0 while fewer than two
 * exist. Takes the read lock briefly. */
uint64_t cache_gc_local_floor(struct cache *c);

struct cache_remove_result {
	uint64_t segments, bytes;	/* removed by this call */
	uint64_t waiting, waiting_bytes;	/* dead, but above the floor, not yet
						 * confirmed remote, or in use */
	uint64_t above_floor, above_floor_bytes;	/* of them: above the floor */
	uint64_t above_local_bytes;	/* of them: what a new full checkpoint here
					 * would free (the segment, or what killed it,
					 * above this node's floor) */
	uint64_t unconfirmed;		/* of them: not yet confirmed remote */
	uint64_t floor, local_floor;	/* the floor used, and this node's part */
};

/* Remove every dead segment S with S <= the local floor, that died in a
 * state the backends' checkpoints already hold (the segment whose records
 * killed it <= remote_floor), and that is confirmed remote (when a hook
 * hands segments off): fsyncs the
 * log, records each removal durably in state.log, deletes the local file,
 * and queues the segment-removed hook (retried with backoff like every
 * hand-off). remote_floor: what the backends' catalog allows (UINT64_MAX
 * when nothing is uploaded). Blocks for one fsync plus one state.log
 * append per segment; the write lock is held only to take each out of
 * the table. Only the holder of the writer lease may call it. Returns 0,
 * -EROFS (read-only or fenced), or the journal's error. */
int cache_remove_dead(struct cache *c, uint64_t remote_floor, struct cache_remove_result *res);

/* Seal the active segment (even with no record in it, so that a new state
 * exists) and write a full checkpoint of that state now, whatever the
 * usual merge policy says: what garbage collection does when dead segments
 * wait for the floor to move. Blocks until the worker has written it (a
 * merge: time proportional to the number of keys). Returns 0, -EROFS, or
 * -EIO when it could not be written (logged). */
int cache_checkpoint_full(struct cache *c);

/* The cache disk, as the log sees it (cache/cache_space.c). */
struct cache_disk {
	uint64_t free;			/* bytes free on the disk (statvfs f_bavail),
					 * the reserve file not counted */
	uint64_t total;			/* the disk's size */
	uint64_t reserve;		/* cache_opts.disk_reserve, 0 = none */
	bool reserve_held;		/* the reserve file is there */
	uint64_t reserve_released;	/* times given up (a write met a full
					 * disk) since open */
	/* free < reserve (2 x reserve while the reserve is given up): new
	 * data should be refused; deletes and the stop go on */
	bool low;
};

/* Look at the cache disk now (one statvfs) into *d. Any thread; takes no
 * lock of the log's but the reserve's own mutex briefly. */
void cache_disk_state(struct cache *c, struct cache_disk *d);

/* Is the cache disk low (cache_disk.low)? One atomic read while it is
 * not; while it is, a fresh look at most every 200 ms, so that room freed
 * (deletes outside, eviction) is seen at once. For the filesystem's
 * check before new data. Any thread, never blocks on the log's locks. */
bool cache_disk_low(struct cache *c);

struct cache_stats {
	uint8_t volume_id[VOLUME_ID_SIZE];
	uint64_t segment_size;
	uint64_t keys;
	uint64_t index_bytes;		/* heap bytes of the index */
	double index_bytes_per_key;
	uint64_t active_seg;
	uint64_t segments;		/* known segments (local or not) */
	uint64_t segments_local;
	uint64_t segments_unconfirmed;	/* sealed, not confirmed (nor lost) */
	uint64_t live_bytes, garbage_bytes;
	uint64_t dead_segments, dead_bytes;	/* sealed, nothing live: awaiting
						 * removal (counted in garbage) */
	uint64_t local_bytes;		/* segment + checkpoint files on disk */
	uint64_t local_repairs;		/* segments whose local copy failed its checks,
					 * set aside and fetched again (since open) */
	uint64_t checkpoint_bytes;	/* of local_bytes: checkpoint files, which
					 * max_size does not count (their own budget) */
	uint64_t max_size;		/* the limit of local segment bytes */
	bool over_limit;		/* segment bytes > max_size, nothing evictable */
	uint64_t pinned_bytes;		/* local bytes that may not be evicted */
	uint64_t hooks_pending;		/* hand-offs not yet done */
	uint64_t hooks_failed;		/* hook runs that failed (since open) */
	/* hand-offs of sealed segments and checkpoints that succeeded since
	 * open, and the time they took in all (from the hook's start, or the
	 * hand-off function's call, to storage's acknowledgement) */
	uint64_t handoffs_done, handoff_ns;
	uint64_t hooks_running;		/* hook processes running now */
	uint64_t active_records;	/* records in the active segment */
	uint64_t active_age_ns;		/* since its first record, or since the
					 * open that replayed it (0: none) */
	uint64_t checkpoint_id;		/* newest checkpoint written */
	uint64_t checkpoint_upto;	/* segments covered by it */
	uint64_t checkpoints_written;	/* since open */
	uint64_t open_replayed_segments;
	uint64_t open_replayed_records;
	uint64_t open_ns;		/* time cache_open took */
	uint64_t missing_fetches;	/* segment-missing hooks run */
	uint64_t evicted;		/* segments evicted since open */
	uint64_t removed_segments;	/* removed by garbage collection, ever */
	uint64_t removes_pending;	/* of them: deletion not yet handed off */
	uint64_t removed_since_open, removed_bytes_since_open;
	/* segments lost before they were handed off (cache_lost.c), the first
	 * few of their ids, and how many of them storage has not yet
	 * recorded */
	uint64_t segments_lost, lost_ids[8], lost_unreported;
	struct cache_disk disk;		/* looked at now */
	uint64_t evicted_for_disk;	/* of evicted: to keep room on the disk */
};

/* Fill *st (consistent snapshot). */
void cache_stats(struct cache *c, struct cache_stats *st);

/* Print stats as "name: value" lines, human-readable. */
void cache_stats_print(const struct cache_stats *st, FILE *f);

/* Read the volume id recorded in a cache directory (file VOLUME). Returns 0,
 * -ENOENT (not a cache directory), -EBADMSG (malformed) or -errno. */
int cache_volume_read(int dirfd, uint8_t id[VOLUME_ID_SIZE]);

/* Prepare the empty directory dir for a volume brought back from its
 * remote copies (a fresh node): record segments 1..seg_upto as handed off
 * and confirmed remote (so the log neither hands them off again nor needs
 * them locally: reads fetch them through the segment-missing hook), the
 * checkpoints ckpts[0..nckpts) as handed off, and the segments
 * removed[0..nremoved) as removed by garbage collection (their deletion
 * handed off), and the segments lost[0..nlost) (increasing; the catalog
 * records them lost before upload) as lost with the loss reported (reads
 * of them fail with EIO, the replay skips them), then write VOLUME. The
 * checkpoint files and the segments after them (but the lost ones) must
 * already be in dir. Returns 0, -EEXIST when dir already belongs to a
 * volume, or -errno. */
int cache_adopt(const char *dir, const uint8_t volume_id[VOLUME_ID_SIZE], uint64_t seg_upto,
		const uint64_t *ckpts, size_t nckpts, const uint64_t *removed, size_t nremoved,
		const uint64_t *lost, size_t nlost);

/* Name of a segment state ("active", "sealed", "confirmed", "evicted"). */
const char *cache_state_name(enum seg_state s);

#endif
