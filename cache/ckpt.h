/* cache/ckpt.h - index checkpoint files.
 *
 * A checkpoint is the index state right after segment `upto` was sealed.
 * A FULL checkpoint holds every live key; a DELTA holds only what changed
 * since the state at `from` (keys put or deleted, segments whose accounting
 * changed). Opening = newest valid full + the chain of deltas after it.
 *
 * File "ckpt-<16 hex id>.qckp":
 *   header (64 bytes):
 *     0 magic "QSFSCKP1"  8 u32 version (1)  12 u32 kind (1 full, 2 delta)
 *     16 volume id        32 u64 checkpoint id
 *     40 u64 from (delta: upto of its base state; full: 0)
 *     48 u64 upto         56 u64 XXH3 of bytes 0..55
 *   u64 nsegs, then nsegs x { u64 id, u64 size, u64 live, u64 flags }
 *   key entries in strictly increasing key order:
 *     u8 op (1 put, 2 del), u8 klen, key, and for put u32 seg, u32 off, u32 len
 *   u8 0 (end of entries), u64 number of entries,
 *   u64 XXH3 (seed 0) of every byte before it.
 */
#ifndef QSFS_CACHE_CKPT_H
#define QSFS_CACHE_CKPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "format.h"
#include "index.h"

#define CKPT_MAGIC "QSFSCKP1"
#define CKPT_VERSION 1u
#define CKPT_HDR_SIZE 64u
#define CKPT_NAME_LEN 32

enum ckpt_kind { CKPT_FULL = 1, CKPT_DELTA = 2 };
enum ckpt_op { CKPT_PUT = 1, CKPT_DEL = 2 };

struct ckpt_hdr {
	uint32_t kind;
	uint8_t volume_id[VOLUME_ID_SIZE];
	uint64_t id, from, upto;
};

struct ckpt_seg {
	uint64_t id, size, live, flags;
};

/* ckpt_seg.flags: the segment was removed by garbage collection (a delta
 * says so; a merged full no longer lists it). */
#define CKPT_SEG_REMOVED 1u

void ckpt_name(uint64_t id, char name[CKPT_NAME_LEN]);
bool ckpt_parse_name(const char *name, uint64_t *id);

/* --- writing ---------------------------------------------------------- */

/* A checkpoint being written, either into memory (fd < 0; the bytes stay in
 * buf) or streamed to fd through a 1 MiB buffer. */
struct ckpt_writer {
	int fd;
	uint8_t *buf;
	size_t len, cap;
	uint64_t total;		/* bytes produced so far */
	uint64_t nkeys;
	struct sum_state *sum;
	int err;
	uint8_t last_key[KEY_MAX];	/* to enforce key order */
	size_t last_klen;
};

/* Start a checkpoint with header h and nsegs segment entries to follow. */
int ckw_begin(struct ckpt_writer *w, int fd, const struct ckpt_hdr *h,
	      uint64_t nsegs);
void ckw_seg(struct ckpt_writer *w, const struct ckpt_seg *s);
/* Keys must come in strictly increasing order (else w->err = -EINVAL). */
void ckw_key(struct ckpt_writer *w, uint8_t op, const uint8_t *key, size_t klen,
	     const struct ix_loc *loc);
/* Finish: trailer, flush. Returns 0 or the first error. In memory mode the
 * bytes are in w->buf[0..w->len) and the caller frees w->buf. */
int ckw_end(struct ckpt_writer *w);
void ckw_abort(struct ckpt_writer *w);

/* --- reading ---------------------------------------------------------- */

struct ckpt_file {
	uint8_t *map;
	size_t len;
	struct ckpt_hdr hdr;
	uint64_t nsegs;
	const uint8_t *segs;	/* nsegs x 32 bytes */
	const uint8_t *keys;	/* first key entry */
	uint64_t nkeys;
};

/* Map and fully verify dirfd/name: header, whole-file checksum, structure
 * (every entry in bounds, keys strictly increasing) and volume id. Returns 0,
 * -EBADMSG with *why set, or -errno. */
int ckpt_open(int dirfd, const char *name, const uint8_t volume_id[VOLUME_ID_SIZE],
	      struct ckpt_file *f, const char **why);
void ckpt_close(struct ckpt_file *f);

void ckpt_get_seg(const struct ckpt_file *f, uint64_t i, struct ckpt_seg *s);

struct ckpt_ent {
	uint8_t op;
	uint8_t klen;
	const uint8_t *key;
	struct ix_loc loc;
};

/* Iterate key entries of a verified file: *pos starts at f->keys. Returns 1
 * with *e filled, or 0 at the end. */
int ckpt_next(const struct ckpt_file *f, const uint8_t **pos, struct ckpt_ent *e);

/* Write a FULL checkpoint to fd: the result of applying the deltas (in
 * order) to base (NULL = empty state). h gives id, upto and volume. Streams;
 * memory use is O(number of inputs + number of segments). */
int ckpt_merge(int fd, const struct ckpt_hdr *h, const struct ckpt_file *base,
	       const struct ckpt_file *const *deltas, size_t ndeltas);

#endif
