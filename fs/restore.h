/* fs/restore.h - a fresh node: bring a volume that exists on the backends
 * into an empty cache directory before the log is opened.
 *
 * With only the configuration and the key, qsfs-fs reads the volume head
 * and catalog (stor/catalog.h) from the backends. A volume without stored objects is new:
 * nothing to do. Otherwise the checkpoints a restore needs (the newest
 * full, verified whole, and the deltas after it; the previous full and its
 * deltas too when the newest full cannot be fetched or opened) and the
 * sealed segments after the newest checkpoint are fetched into the
 * directory, and cache_adopt()
 * records every stored segment as confirmed remote. The log then opens as
 * after an eviction: the checkpoint gives the index, the fetched segments
 * are replayed, and every other segment comes back on first read through
 * the segment-missing hook. The time this takes depends on the checkpoint
 * and on the segments sealed after it, not on the volume's size. Objects
 * are fetched 8 at a time: most are small, so a restore waits on round
 * trips to the backends (bench/bench_restore.py --deltas).
 *
 * What a restore cannot bring back: the active segment of the host that
 * wrote last, unless it was sealed (cache.max_segment_age or a clean stop),
 * and segments stored after a gap in the sequence (logged).
 */
#ifndef QSFS_FS_RESTORE_H
#define QSFS_FS_RESTORE_H

#include <stddef.h>

struct qsfs_config;
struct storclient;

/* If cfg's cache directory holds no volume yet, read the volume's head and
 * catalog from the backends; when the volume has data, fetch it through
 * qsfs-stor (the client stor) (waited for up to wait_s seconds). Returns 0 (a new volume,
 * nothing to do, or restored) or a negative errno with err naming what
 * failed (backends unreachable, wrong key, stor away, a fetch failing:
 * the first object in catalog order that failed). Blocks for the fetches
 * (each bounded by an hour). A failed restore leaves no VOLUME file, so the
 * next start tries again. */
int restore_if_empty(const struct qsfs_config *cfg, struct storclient *stor, unsigned wait_s,
		     char *err, size_t errlen);

#endif
