/* cache/format.h - on-disk formats of the segment log.
 *
 * All integers are little-endian. All checksums are XXH3-64 (libxxhash).
 * docs/ARCHITECTURE.md draws these layouts; keep the two in step.
 *
 * Segment file "seg-<16 hex id>.qseg":
 *   header (64 bytes), then records back to back. A sealed segment ends with
 *   exactly one SEAL record; nothing is ever written after it.
 *
 * Segment header:
 *   0  magic "QSFSSEG1"      8  u32 version (2)     12 u32 header size (64)
 *   16 volume id (16 bytes)  32 u64 segment id      40 u64 created (unix s)
 *   48 u64 reserved (0)      56 u64 XXH3 of bytes 0..55
 *
 * Record:
 *   0  u64 checksum: XXH3 of bytes 8..end of record, seeded with the segment
 *      id (a record copied into another segment does not verify)
 *   8  u8 type (PUT=1, DEL=2, SEAL=3, BATCH=4)   9 u8 key length   10 u16 zero
 *   12 u32 value length      16 key bytes, then value bytes
 *
 * SEAL record: empty key, 24-byte value:
 *   u64 number of records before it (BATCH records included), u64 offset of
 *   the seal record itself, u64 XXH3 (seed 0) of every byte of the file
 *   before the seal record.
 *
 * BATCH record (version 2): empty key, 16-byte value:
 *   u32 count (2 .. BATCH_MAX_COUNT), u32 zero, u64 bytes.
 *   The `count` PUT/DEL records that follow it, `bytes` long in all, form
 *   one atomic change: a reader applies all of them or, when any is missing
 *   or bad (a torn append), none, and the segment's valid prefix ends at the
 *   BATCH record. A batch never spans two segments and never nests.
 *
 * Version 1 segments are version 2 segments without BATCH records; both are
 * read. Version 2 exists so that a reader that does not know batches refuses
 * the segment instead of cutting it at the first BATCH record.
 */
#ifndef QSFS_CACHE_FORMAT_H
#define QSFS_CACHE_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/endian.h"

#define SEG_MAGIC "QSFSSEG1"
#define SEG_VERSION 2u
#define SEG_VERSION_MIN 1u
#define SEG_HDR_SIZE 64u
#define REC_HDR_SIZE 16u
#define SEAL_VAL_SIZE 24u
#define SEAL_REC_SIZE (REC_HDR_SIZE + SEAL_VAL_SIZE)
#define BATCH_VAL_SIZE 16u
#define BATCH_REC_SIZE (REC_HDR_SIZE + BATCH_VAL_SIZE)
#define BATCH_MAX_COUNT 4096u
#define KEY_MAX 255u
#define VOLUME_ID_SIZE 16u
#define SEG_MAX_FILE_SIZE (1ull << 32)	/* offsets in the index are u32 */

enum rec_type { REC_PUT = 1, REC_DEL = 2, REC_SEAL = 3, REC_BATCH = 4 };

struct seg_hdr {
	uint32_t version;
	uint8_t volume_id[VOLUME_ID_SIZE];
	uint64_t seg_id;
	uint64_t created;
};

struct rec_hdr {
	uint64_t sum;
	uint8_t type;
	uint8_t klen;
	uint32_t vlen;
};

struct batch_info {
	uint32_t count;		/* records in the batch */
	uint64_t bytes;		/* their total length */
};

struct seal_info {
	uint64_t nrecords;
	uint64_t seal_off;
	uint64_t content_sum;
};

/* Encode a segment header into out (always the current version). */
void seg_hdr_encode(const struct seg_hdr *h, uint8_t out[SEG_HDR_SIZE]);

/* Decode and check a segment header. Returns 0, -EBADMSG for a wrong magic
 * or checksum, or -EPROTONOSUPPORT for an unknown version. */
int seg_hdr_decode(const uint8_t in[SEG_HDR_SIZE], struct seg_hdr *h);

/* Total on-disk length of a record. */
static inline uint64_t rec_len(size_t klen, size_t vlen)
{
	return REC_HDR_SIZE + klen + vlen;
}

/* Fill the 16 header bytes of a record whose key and value are given and
 * compute its checksum (seeded with seg_id). */
void rec_encode_hdr(uint8_t out[REC_HDR_SIZE], uint64_t seg_id, uint8_t type,
		    const void *key, size_t klen, const void *val, size_t vlen);

/* Parse the 16 header bytes (no checksum check). Returns 0, or -EBADMSG if
 * the type is unknown or reserved bytes are set. */
int rec_decode_hdr(const uint8_t in[REC_HDR_SIZE], struct rec_hdr *h);

/* Verify a whole record held contiguously in buf (header, key, value).
 * Returns true when the checksum matches. */
bool rec_verify(const uint8_t *buf, uint64_t seg_id);

/* Verify a record given as its header bytes, key and value in separate
 * buffers. */
bool rec_verify_parts(const uint8_t hdr[REC_HDR_SIZE], uint64_t seg_id,
		      const void *key, size_t klen, const void *val, size_t vlen);

void seal_encode(const struct seal_info *s, uint8_t out[SEAL_VAL_SIZE]);
void batch_encode(const struct batch_info *b, uint8_t out[BATCH_VAL_SIZE]);
/* Returns 0, or -EBADMSG when the reserved word is set or count is out of
 * range (0, 1 or more than BATCH_MAX_COUNT). */
int batch_decode(const uint8_t in[BATCH_VAL_SIZE], struct batch_info *b);
void seal_decode(const uint8_t in[SEAL_VAL_SIZE], struct seal_info *s);

/* XXH3-64 helpers, so that only format.c includes xxhash.h. */
uint64_t sum64(const void *buf, size_t len, uint64_t seed);

/* Streaming XXH3-64 state (opaque, heap allocated). */
struct sum_state;
struct sum_state *sum_new(uint64_t seed);
void sum_update(struct sum_state *s, const void *buf, size_t len);
uint64_t sum_digest(const struct sum_state *s);
void sum_reset(struct sum_state *s, uint64_t seed);
void sum_free(struct sum_state *s);

#endif
