/* fs/extent.h - sub-block extents: a write smaller than a block appends
 * about what it writes, not the whole block.
 *
 * A data block is its base ('B' ino block, at most FS_BLOCK bytes, zeros
 * past its end) overlaid with its extents ('B' ino block off, off a u16
 * big-endian offset inside the block; the value is the bytes from there).
 * The extents sort right after their base, so one index walk of the
 * 17-byte prefix finds a whole block. Every change of a block is one atomic
 * batch, and keeps these invariants:
 *   E1 the extents of a block are non-empty, disjoint and inside the block;
 *   E2 a block has at most EXT_MAX extents;
 *   E3 an extent overrides the base where they overlap; the block's length
 *      is the larger of the base's length and the last extent's end, and
 *      never passes the file's size (blocks past it are never read).
 * With E1 a reader overlays extents in any order. A crash keeps a batch
 * whole or drops it, so a cut never shows a half-trimmed extent over data
 * outside the write.
 *
 * A write of [s, e) inside one block (ext_plan) becomes:
 *   - the base [0, e) and the deletion of every extent, when it covers
 *     everything the block holds (s == 0, e >= its length): a new block,
 *     a whole-block write, a file rewritten from its start;
 *   - otherwise one extent at s, plus the trims of the extents it
 *     overlaps: one that starts before s keeps [off, s) under its own key,
 *     one that ends after e keeps [e, end) under a new key at e, one
 *     inside [s, e) is deleted (or replaced, at s);
 *   - a fold, when that would leave more than EXT_MAX extents, or when the
 *     trims would append more than EXT_TRIM_MAX bytes they keep: the whole
 *     block, merged, as its base, and every extent deleted.
 * The second rule bounds the cost of splitting a large extent: without it,
 * a block written as a 4 KiB base and a 60 KiB extent would re-append most
 * of that extent on every small overwrite; with it, the first such write
 * folds (one block) and later ones are cheap extents again.
 * So random 4 KiB writes into a block that is a base (a file written in
 * large writes) never fold and append about 4 KiB each; a write splitting
 * an extent appends at most EXT_TRIM_MAX more; only writes much smaller
 * than FS_BLOCK / EXT_MAX pay a fold now and then. Reads of a block cost
 * one get per extent.
 *
 * Pure functions, no I/O, no locks: tests drive them against a model.
 */
#ifndef QSFS_FS_EXTENT_H
#define QSFS_FS_EXTENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define EXT_MAX 16u
#define EXT_TRIM_MAX 16384u	/* bytes a write may re-append to keep */

/* An extent: bytes [off, off + len) of its block. */
struct ext {
	uint32_t off, len;
};

/* What a block holds: the base's length (0: none) and the extents in
 * offset order. */
struct ext_block {
	bool has_base;
	uint32_t base_len;
	size_t n;
	struct ext e[EXT_MAX];
};

enum ext_op_kind {
	EXT_PUT_WRITE,	/* put [off, off+len) of the write's own bytes */
	EXT_PUT_PIECE,	/* put [off, off+len) of the old extent at src */
	EXT_DEL,	/* delete the extent at off */
};

struct ext_op {
	enum ext_op_kind kind;
	bool base;	/* the key is the base (off is then 0), not an extent */
	uint32_t off, len;
	uint32_t src;	/* EXT_PUT_PIECE: the old extent whose bytes it keeps */
};

/* The records of one block write, in the order they go into the batch.
 * fold: none are given; the caller writes the merged block as its base
 * (length ext_fold_len) and deletes every old extent. */
struct ext_plan {
	bool fold;
	size_t n;
	struct ext_op op[EXT_MAX + 3];
};

/* The length a block reads as: its base's or its last extent's end. */
uint32_t ext_block_len(const struct ext_block *b);

/* Check E1, E2 and the sort order of b (as read from the log) against a
 * block of blksize bytes. Returns 0 or -EIO. */
int ext_block_check(const struct ext_block *b, uint32_t blksize);

/* Plan the write of [s, e) (s < e <= blksize) into block b, which holds a
 * valid state (ext_block_check). Fills *p. Never fails. */
void ext_plan(const struct ext_block *b, uint32_t s, uint32_t e, struct ext_plan *p);

/* The base length of a fold of b with [s, e) written, cut at the file's
 * end inside the block (limit, >= e). */
uint32_t ext_fold_len(const struct ext_block *b, uint32_t e, uint32_t limit);

#endif
