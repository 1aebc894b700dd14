/* fs/collector.h - qsfs-fs's garbage collector: the thread that cleans
 * segments (cache_clean_*) and removes dead ones (cache_remove_dead) so
 * that space is given back, locally and on the backends.
 *
 * A pass:
 *   0. folds fragmented data blocks (the filesystem's defrag step, at
 *      cache.gc_rate), whose overwritten bytes no segment counts as
 *      garbage;
 *   1. asks qsfs-stor for the remote floor (GCFLOOR: the smallest upto of
 *      the full checkpoints in the volume catalog's window) when segments
 *      are uploaded; without an answer nothing is removed (the backends'
 *      restore points must not lose a segment they need);
 *   2. removes every dead segment the floors allow (cache_gc.c);
 *   3. cleans the best segments by cost and benefit while the log's
 *      garbage is above cache.gc_target, moving at most cache.gc_rate
 *      bytes of live data per second;
 *   4. when dead segments wait above the floor and they outweigh the
 *      checkpoints (so a full checkpoint costs less than it frees), writes
 *      a full checkpoint now, so that the floor moves (the next pass, once
 *      qsfs-stor has stored it, removes them).
 * Passes run every cache.gc_interval seconds and on request (`qsfs-ctl
 * gc`). Only the writer-lease holder collects: a fenced log refuses
 * (-EROFS) and the collector says so in its state.
 */
#ifndef QSFS_FS_COLLECTOR_H
#define QSFS_FS_COLLECTOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cache;
struct collector;
struct storclient;

struct collector_opts {
	double target;		/* garbage fraction to clean down to (0.01..0.9) */
	uint64_t rate;		/* live bytes moved per second, 0 = no limit */
	unsigned interval_s;	/* seconds between passes, 0 = only on request */
	/* qsfs-stor's client (kept: must outlive the collector); NULL:
	 * nothing is uploaded (cache.handoff: none), only local floors count */
	struct storclient *stor;
	/* The filesystem's compaction step (may be NULL): fold fragmented
	 * blocks (all of them with thorough, else only those wasting much)
	 * until about budget bytes were appended (0: no limit); adds what it
	 * appended to *bytes and the blocks folded to *folded. Returns 1 at
	 * the end of a sweep, 0 when the budget stopped it, or -errno.
	 * Extents hide overwritten bytes that no segment counts as garbage,
	 * so the cleaner alone would never give them back. */
	int (*defrag)(void *arg, uint64_t budget, bool thorough, uint64_t *bytes,
		      uint64_t *folded);
	void *defrag_arg;
};

/* What a pass did and what waits, for status and `qsfs-ctl gc`. */
struct collector_report {
	uint64_t passes;		/* since start */
	uint64_t cleaned_segments, moved_bytes;	/* this pass */
	uint64_t folded_blocks, folded_bytes;	/* this pass: compaction */
	uint64_t removed_segments, removed_bytes;	/* this pass */
	uint64_t waiting_segments, waiting_bytes;	/* dead, not removable yet */
	uint64_t above_floor_bytes;	/* of them: above the floor */
	uint64_t above_local_bytes;	/* of them: above this node's own floor */
	uint64_t unconfirmed;		/* of them: not yet confirmed stored */
	uint64_t floor, local_floor, remote_floor;	/* remote: UINT64_MAX = none */
	bool full_written;		/* this pass wrote a full checkpoint */
	bool disk_low;			/* cleaning and folding skipped: the cache
					 * disk is low on space */
	int err;			/* the pass's error (negative errno) or 0 */
	char state[256];		/* in words: idle, collecting, why waiting */
};

/* Start the collector thread on log c. Returns 0 or a negative errno. */
int collector_start(struct cache *c, const struct collector_opts *o, struct collector **out);

/* Make a pass in progress (background or collector_run) end after its
 * current step; for a clean stop, before the caller of collector_run is
 * waited for. Any thread. */
void collector_cancel(struct collector *g);

/* Stop the thread: waits for the current step (one segment's clean or one
 * removal) to end, not for the pass. NULL is fine. */
void collector_stop(struct collector *g);

/* Progress of collector_run: called after each step with the report so
 * far. */
typedef void (*collector_progress_fn)(void *arg, const struct collector_report *r);

/* Run a thorough pass now, on the caller's thread (the background passes
 * wait meanwhile): clean down to the target, write full checkpoints until
 * the floor covers every dead segment, wait (up to timeout_s) for
 * qsfs-stor to store them and for the dead segments to be confirmed, and
 * remove what can go. Returns 0 with *out filled (what still waits, and
 * why, in out->state) or a negative errno (-EROFS: fenced). Blocks for the
 * cleaning and up to timeout_s more. */
int collector_run(struct collector *g, unsigned timeout_s, collector_progress_fn progress,
		  void *arg, struct collector_report *out);

/* The last pass's report (a copy; takes the collector's mutex briefly). */
void collector_last(struct collector *g, struct collector_report *out);

#endif
