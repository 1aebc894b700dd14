/* cache/cache_int.h - internals shared by cache.c, cache_open.c and
 * cache_worker.c. Not part of the public API.
 *
 * Locking:
 *   c->lock (rwlock)  the index, the segment table (pointer array and flags,
 *                     sizes, live bytes, fds), the active segment, the
 *                     checkpoint list, the dirty-key list and the stats.
 *   c->slog_mu        the state journal (its appends fdatasync, so they are
 *                     done without c->lock held).
 *   c->wmu            worker wake-ups and pass generations; may be taken
 *                     while holding c->lock, never the other way round.
 *   c->fmu            per-segment fetch state (fetching, fetch_gen,
 *                     fetch_err); ensure_local takes c->lock briefly while
 *                     holding it, so c->fmu is never taken under c->lock.
 *   c->space.mu       the reserve file (cache_space.c); a leaf: taken under
 *                     c->lock or c->slog_mu, never holding another lock.
 * struct seg objects never move (the table holds pointers), so a pointer
 * taken under c->lock stays valid until cache_close.
 */
#ifndef QSFS_CACHE_INT_H
#define QSFS_CACHE_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "cache.h"
#include "ckpt.h"
#include "index.h"
#include "seglife.h"
#include "statelog.h"

#define SF_SEALED    0x01u	/* ends with a seal record */
#define SF_LOCAL     0x02u	/* file is on local disk, fd open */
#define SF_HANDED    0x04u	/* segment-sealed hook succeeded */
#define SF_CONFIRMED 0x08u	/* stored remotely (cache_confirm) */
#define SF_DIRTY     0x10u	/* accounting changed since the last delta */
#define SF_LOST      0x20u	/* lost before hand-off (seglife.h: LOST) */

/* A segment removed by garbage collection (cache_gc.c): its facts are in
 * state.log (REMOVED, then DEL_HANDED once the segment-removed hook said
 * the backends will drop it). */
struct removed_seg {
	uint64_t id;
	bool handed;		/* segment-removed hook succeeded */
	unsigned hook_fails;
	uint64_t hook_next_ns;
};

#define HOOK_RETRY_CAP_MS (5u * 60u * 1000u)

struct seg {
	uint64_t id;
	uint64_t size;		/* bytes in the file */
	uint64_t live;		/* bytes of records the index points to */
	/* Sealed with nothing live: the segment holding the records that made
	 * it so (the active one then, or itself when dead at its seal; after
	 * a reopen, the active one at open, an upper bound). A checkpoint with
	 * upto >= dead_upto no longer points into it (cache_gc.c). */
	uint64_t dead_upto;
	uint32_t flags;
	int fd;			/* -1 when not local */
	atomic_uint pins;	/* readers using fd right now */
	atomic_uint_fast64_t synced;	/* bytes of this file known durable */
	atomic_uint_fast64_t last_read;	/* LRU tick */
	unsigned hook_fails;	/* under c->lock */
	uint64_t hook_next_ns;
	atomic_uint_fast64_t lost_told_ns;	/* a read of it (LOST) last logged */
	bool fetching;		/* under c->fmu */
	uint64_t fetch_gen;
	int fetch_err;
};

struct ckpt_rec {
	uint64_t id, from, upto, bytes;
	uint32_t kind;
	bool written;		/* durable on disk */
	bool handed;		/* checkpoint-written hook succeeded */
	unsigned hook_fails;
	uint64_t hook_next_ns;
	uint8_t *buf;		/* bytes of a built delta not yet written */
	size_t len;
};

/* The cache disk and the reserve file (cache_space.c). */
struct cache_space {
	pthread_mutex_t mu;		/* making and giving up the reserve */
	atomic_bool held;		/* CACHE_DIR/reserve is there, at its size */
	uint64_t released;		/* times given up since open (mu) */
	atomic_bool low;		/* new data should be refused */
	atomic_uint_fast64_t free, total;	/* bytes, as of the last look */
	atomic_uint_fast64_t checked_ns;	/* fs_now_ns() of that look */
	atomic_uint_fast64_t since_check;	/* bytes appended since */
};

struct cache {
	struct cache_opts o;
	char *dir, *hook;
	/* hand-offs are on: a hook program (hook) or a hand-off function
	 * (o.handoff); off, nothing leaves the host and no segment is ever
	 * confirmed or fetched */
	bool handoff_on;
	int dirfd, lockfd;
	uint8_t volid[VOLUME_ID_SIZE];
	char volhex[2 * VOLUME_ID_SIZE + 1];
	uint64_t max_record;	/* largest record a segment can take */

	pthread_rwlock_t lock;
	struct index *ix;
	struct seg **segs;	/* segs[1..last_seg]; NULL where unknown */
	uint64_t segs_cap, last_seg;
	struct seg *active;	/* NULL only after a failed segment creation */
	struct sum_state *active_sum;	/* content checksum of the active file */
	uint64_t active_nrec;
	uint64_t active_since_ns;	/* fs_now_ns() of the active segment's first
					 * record, or of the open that replayed it;
					 * 0 while it holds none */
	/* The active segment holds records replayed at open, whose age is
	 * unknown: they count as old enough for any cache_seal_older, on any
	 * host. This is a flag, not a timestamp of 1: CLOCK_MONOTONIC starts
	 * near 0 at boot, so "written at time 1" would mean "as old as the
	 * host's uptime", and a freshly booted host would keep data that exists
	 * only here unsealed for max_segment_age. */
	bool active_age_unknown;
	bool active_old_format;	/* replayed active segment has an older header
				 * version (sealed at open) */
	uint64_t writeback_off;	/* active bytes already sent to writeback */
	/* The first failed fdatasync (negative errno), or 0. Once set, every
	 * write, sync and seal fails with it until the log is reopened: Linux
	 * reports a write-back error once, so a later fdatasync could "succeed"
	 * over lost pages. */
	atomic_int io_error;
	/* Set by cache_fence (another host took the volume): every append and
	 * seal fails with -EROFS from then on. */
	atomic_bool fenced;

	struct ckpt_rec *ckpts;	/* sorted by id */
	size_t nckpts, ckpts_cap;
	uint64_t next_ckpt_id;
	uint64_t built_upto;	/* newest delta built (queued or written) */
	uint64_t written_upto;	/* newest checkpoint state durable on disk */
	unsigned seals_since_delta;
	uint8_t *dirty;		/* keys touched since built_upto: klen, key... */
	size_t dirty_len, dirty_cap;

	pthread_mutex_t slog_mu;
	struct slog *slog;

	pthread_t worker;
	bool worker_started;
	pthread_mutex_t wmu;
	pthread_cond_t wcv, idle_cv;
	bool stop, force_hooks;
	bool force_full;	/* cache_checkpoint_full: merge a full now (c->lock) */
	uint64_t req_gen, done_gen;

	pthread_mutex_t fmu;
	pthread_cond_t fcv;

	atomic_uint_fast64_t tick;	/* LRU clock */
	bool over_limit;
	uint64_t hooks_failed, checkpoints_written, evicted;
	uint64_t evicted_for_disk;	/* of evicted: for room on the disk */
	uint64_t local_repairs;	/* segments set aside as corrupt and fetched again */
	int *stale_fds;		/* their old fds, closed by cache_close (c->lock) */
	size_t nstale_fds;
	atomic_uint_fast64_t missing_fetches;
	atomic_uint_fast64_t handoffs_done, handoff_ns;	/* cache_stats */
	atomic_uint hooks_running;	/* hook processes running now */
	uint64_t open_replayed_segments, open_replayed_records, open_ns;

	cache_mover_fn mover;		/* cache_set_mover */
	void *mover_arg;
	/* garbage collection (cache_gc.c), all under c->lock */
	struct removed_seg *removed;	/* every segment ever removed, by id */
	size_t nremoved, removed_cap;
	uint64_t *removed_new;		/* removed since the last delta: the
					 * delta records them (CKPT_SEG_REMOVED) */
	size_t nremoved_new, removed_new_cap;
	struct seg **graveyard;		/* removed entries, freed at close: a
					 * reader may still hold the pointer */
	size_t ngraveyard;
	uint64_t removed_since_open, removed_bytes_since_open;
	struct cache_space space;
};

/* --- cache.c ---------------------------------------------------------- */

/* Segment entry for id, created (zeroed, fd -1) if absent. Needs c->lock
 * held for writing. NULL on ENOMEM. */
struct seg *seg_get_or_add(struct cache *c, uint64_t id);

/* Segment entry for id or NULL. Needs c->lock (read or write). */
static inline struct seg *seg_find(const struct cache *c, uint64_t id)
{
	return id && id <= c->last_seg ? c->segs[id] : NULL;
}

/* Apply one record to the index and the accounting, exactly as a put or del
 * at (seg, off) would, and note the key for the next delta checkpoint.
 * Needs c->lock for writing. Returns 0 or -ENOMEM. */
int apply_record(struct cache *c, uint8_t type, const uint8_t *key, size_t klen,
		 struct ix_loc loc);

/* The cleaner's move: if key's current record is the one at (seg, off),
 * append it again (same key and value) to the active segment, all under
 * the write lock, so a user's put or del that came first wins. Returns 1
 * when moved, 0 when that record is garbage by now, or as cache_put. */
int move_record(struct cache *c, const uint8_t *key, size_t klen, uint64_t seg, uint64_t off,
		const void *val, size_t vlen);

/* Seal the active segment (a seal record even with no record before it),
 * build the delta when due and start the next segment. Needs c->lock
 * (write). Returns the sealed id or a negative errno. */
int64_t seal_locked(struct cache *c);

/* Create the next active segment (id last_seg + 1). Needs c->lock (write). */
int new_active(struct cache *c);

/* Build the delta checkpoint of the state at segment upto (which must be
 * the newest sealed segment, with no record after it) and queue it for the
 * worker. Needs c->lock (write). */
int build_delta(struct cache *c, uint64_t upto);

/* Bring segment id back to local disk through the segment-missing hook.
 * Concurrent callers for one segment share one hook run. When this call
 * fetched it, *pinned is the segment, pinned against eviction: the caller
 * drops the pin (s->pins) once it has read. -ENOENT: no such segment (it
 * was removed by garbage collection since the caller looked it up: a
 * reader looks its key up again). */
int ensure_local(struct cache *c, uint64_t id, struct seg **pinned);

/* A transition of s's life (seglife.h), c->lock held for writing: the
 * flags change as the table says. Returns 0, or -EINVAL (logged: a bug in
 * the caller) when the table refuses it; s is then unchanged. */
int seg_step(struct cache *c, struct seg *s, enum seg_event e);

/* Does sealed segment s still wait for its hand-off (segment-sealed, or
 * segment-lost for a lost one)? Not once storage journaled it (HANDED). */
static inline bool seg_handoff_due(const struct seg *s)
{
	return (s->flags & SF_SEALED) && !(s->flags & SF_HANDED);
}

/* cache_lost.c: segments lost before they were handed off. */

/* Make sealed, never handed-off segment s LOST (seglife.h): its fd parked
 * (readers may hold it), a file still under its name set aside as
 * seg-N.qseg.corrupt, the fact journaled (SLOG_SEG_LOST; not in a read-only open), and an
 * error logged naming it, why (the cause, with the file's path), and the
 * live bytes whose reads now fail. Nothing when it is already lost. c->lock
 * held for writing; takes c->slog_mu; blocks on the journal's fdatasync. */
void seg_lose(struct cache *c, struct seg *s, const char *why);

/* Before the segment-sealed hand-off of s (sealed, not handed off): is its
 * file there with the sealed size? 0 when it is, or when it vanished but
 * the log still held it open and it was written again from that
 * descriptor; -EAGAIN when it vanished, the descriptor still holds its
 * bytes but writing them again failed (tried again at the next hand-off:
 * never lost for that); else s is made LOST (seg_lose) and -ENOENT (-EIO
 * when its state allows no loss: a bug, logged by seg_step). -ENOENT at
 * once for a segment already lost. c->lock held for writing; blocks on
 * disk. */
int seg_check_file(struct cache *c, struct seg *s);

/* Is s LOST? Then a read of it must fail with EIO: logged (naming it) the
 * first time and then at most once a minute. Any lock on c->lock. */
bool seg_lost_read(struct cache *c, struct seg *s);

/* Run a hook (no lock held) with the documented environment, or call the
 * hand-off function in its place (cache_opts.handoff). */
int run_hook(struct cache *c, const char *event, const char *const *args);

/* Path of a file in the cache directory. */
void cache_path(const struct cache *c, const char *name, char *out, size_t n);

/* Remember a checkpoint (sorted insert). Needs c->lock (write). */
struct ckpt_rec *ckpt_rec_add(struct cache *c, const struct ckpt_rec *r);
struct ckpt_rec *ckpt_rec_find(struct cache *c, uint64_t id);

/* Bytes on local disk: local segments and written checkpoints, and each
 * part alone. c->lock. */
uint64_t local_bytes(const struct cache *c);
uint64_t local_seg_bytes(const struct cache *c);
uint64_t local_ckpt_bytes(const struct cache *c);

/* --- cache_gc.c ---------------------------------------------------------- */

/* Record segment id as removed (a fact read from state.log or a checkpoint
 * at open, or a removal now). handed: its deletion was handed off. Keeps
 * c->removed sorted; a known id only gains `handed`. c->lock (write) or
 * open. Returns 0 or -ENOMEM. */
int removed_note(struct cache *c, uint64_t id, bool handed);

/* Is segment id removed? c->lock. */
bool removed_has(const struct cache *c, uint64_t id);

/* Run due segment-removed hooks (worker thread). Returns the time of the
 * next retry, 0 when none is pending. */
uint64_t removed_handoffs(struct cache *c, bool force);

/* --- cache_space.c: free space on the cache disk, the reserve file ------- */

/* The mutex, at open before anything uses it; destroyed at close. */
void space_init(struct cache *c);
void space_destroy(struct cache *c);

/* At open, before the replay (which may create a segment): take the
 * reserve file that is there at its size, or make it when the disk has
 * room for it twice; remove it when none is configured. Then look at the
 * disk (logging a low disk). Nothing is written on a read-only open. */
void space_open(struct cache *c);

/* Look at the disk now (statvfs of the directory): free, total, low.
 * Logs when low begins or ends (once each). Any thread, any lock. */
void space_check(struct cache *c);

/* bytes were appended: look at the disk again once SPACE_CHECK_BYTES
 * have been since the last look. Any thread, any lock. */
void space_note_append(struct cache *c, uint64_t bytes);

/* A write failed with err. When it is ENOSPC (or EDQUOT) and the reserve
 * is held, give it up (truncate, unlink; logged once with its size) and
 * return true: the caller tries its write once more. Else false. Only
 * for writes whose failure left nothing half-written (an append cut back,
 * a temp file removed), never for an fdatasync error. Takes
 * c->space.mu; any other lock may be held. */
bool space_release(struct cache *c, int err);

/* The worker's pass: make the reserve again once 2R are free; look at
 * the disk. No lock held. */
void space_work(struct cache *c);

/* Bytes eviction should free for the disk's sake: what lacks to 2R free
 * (3R while the reserve is given up), 0 when enough is. Looks at the disk
 * now. Any lock. */
uint64_t space_evict_goal(struct cache *c);

/* slog_append, with the reserve given up and one retry on ENOSPC.
 * c->slog_mu held. */
int journal_append(struct cache *c, uint32_t type, uint64_t id);

/* At open, the disk is full even without the reserve: no segment can be
 * started. Open anyway, without an active segment (make_room starts one
 * at the next append, once there is room): reads work, segments stored
 * remotely can be evicted to make room, and the user can free space;
 * appends fail with ENOSPC until then. Logs why, naming the disk and its
 * free space; marks the disk low. Returns 0. */
int space_open_without_active(struct cache *c);

/* --- cache_worker.c ---------------------------------------------------- */

/* --- cache_ckpt.c ---------------------------------------------------- */

/* Write queued deltas, merge a full when due, remove unneeded files. Worker
 * thread only; takes c->lock as needed. */
void ckpt_work(struct cache *c);

/* Delay before retry number fails + 1 of a failed hand-off: hook_retry_ms,
 * doubling, capped at HOOK_RETRY_CAP_MS. Pure. */
uint64_t hook_backoff_ms(const struct cache *c, unsigned fails);

/* --- cache_worker.c (thread) --- */
int worker_start(struct cache *c);
/* Ask for a pass; with wait, block until a pass that started after the
 * request has finished. force tries every pending hook regardless of its
 * retry delay. Without wait it first evicts under the limit itself, in the
 * caller's thread (no lock held): every such caller has just changed what
 * is local or evictable (a seal, a confirm, a fetch), and the worker may be
 * busy for minutes with hand-off hooks, during which local bytes and
 * over_limit (the writers' backpressure) would go stale. */
void worker_kick(struct cache *c, bool wait, bool force);
/* Ask for a pass, and nothing else: at open, where nothing is known yet
 * about which segments are being read, the first eviction is the worker's
 * (after the first reads have marked theirs). */
void worker_wake(struct cache *c);
void worker_stop(struct cache *c);
/* Evict under the limit. Needs c->lock (write). Returns segments evicted. */
int evict_locked(struct cache *c);

#endif
