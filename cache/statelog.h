/* cache/statelog.h - the small durable journal of hand-off state.
 *
 * "state.log" in the cache directory records facts that are not in any
 * segment: a segment or checkpoint was handed off (its hook succeeded), a
 * segment was confirmed stored remotely, a segment was removed by garbage
 * collection and its deletion handed off. Each fact is a 24-byte record
 * { u64 id, u32 type, u32 zero, u64 XXH3 of the first 16 bytes } appended and
 * fdatasync'd. A torn last record is cut off on open. When the journal grows
 * past what the live state needs it is rewritten atomically.
 */
#ifndef QSFS_CACHE_STATELOG_H
#define QSFS_CACHE_STATELOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum slog_type {
	SLOG_SEG_HANDED = 1,
	SLOG_CKPT_HANDED = 2,
	SLOG_SEG_CONFIRMED = 3,
	SLOG_SEG_REMOVED = 4,	/* removed by garbage collection (cache_gc.c) */
	SLOG_SEG_DEL_HANDED = 5,	/* its remote deletion handed off (implies
					 * removed) */
	SLOG_SEG_LOST = 6,	/* lost before hand-off (seglife.h: LOST); with
				 * SEG_HANDED: storage recorded the loss */
};

struct slog_rec {
	uint64_t id;
	uint32_t type;
};

struct slog;

/* Open dirfd/state.log, calling cb for each valid record in order. A torn
 * tail is truncated (with a warning) unless read_only. Returns 0 or -errno. */
int slog_open(int dirfd, bool read_only, struct slog **out,
	      void (*cb)(void *arg, const struct slog_rec *r), void *arg);

/* Append one fact durably. */
int slog_append(struct slog *s, uint32_t type, uint64_t id);

/* Number of records in the file. */
size_t slog_records(const struct slog *s);

/* Replace the journal atomically with exactly these records. */
int slog_rewrite(struct slog *s, const struct slog_rec *recs, size_t n);

void slog_close(struct slog *s);

#endif
