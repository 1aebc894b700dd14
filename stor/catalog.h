/* stor/catalog.h - the volume catalog: how a node holding only the
 * configuration and the key lists every object of a volume (nothing is
 * found by guessing names).
 *
 * Key "VOL/catalog" on every backend, written after each stored object and
 * needing a majority; readers take the valid copy with the highest sequence
 * number from a majority of backends. Sealed with XChaCha20-Poly1305 under
 * the METADATA subkey (random nonce first; AD = "QSFSCAT1" + volume id), so
 * backends see neither object names nor counts in clear. Plaintext,
 * little-endian, version 3 (written when a segment is lost, else version 2,
 * which is the same with nlost 0 and no lost ids; version 1, a 40-byte header without nremoved,
 * 16-byte checkpoint entries without upto, is still read, its checkpoints
 * with upto 0):
 *   0  "QSFSCAT1"   8 u32 version (3)   12 u32 0
 *   16 u64 sequence number            24 u64 seg_hi: segments 1..seg_hi stored
 *                                        or lost
 *   32 u32 nextra   36 u32 nckpt   40 u32 nremoved   44 u32 nlost
 *   48 nextra x u64: stored segments above seg_hi, increasing
 *      nckpt x { u64 id, u32 kind (1 full, 2 delta), u32 0, u64 upto },
 *      increasing ids: stored checkpoints from the second newest full on
 *      (all of them while fewer than two fulls are stored), enough for a
 *      restore to load the newest full and every delta after it, or the
 *      previous full when the newest one cannot be read; upto is the
 *      segment id the checkpoint covers (from its clear header)
 *      nremoved x { u64 first, u64 last }: removed (deleted) segments,
 *      increasing, disjoint and not adjacent (touching ranges are merged)
 *      nlost x u64: segments lost before upload (the host that wrote them
 *      lost its copy before handing it off), increasing
 * A removed segment is neither listed nor added again. A lost segment has
 * no object: it takes its place in the run of segments (seg_hi passes it,
 * so the checkpoints after it may go and a restore replays past it) but is
 * neither listed nor stored; what it held is gone, and status says so.
 * Only qsfs-stor writes it (one daemon per volume); all access to one
 * struct catalog is serialised by its owner.
 */
#ifndef QSFS_STOR_CATALOG_H
#define QSFS_STOR_CATALOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "objstore.h"

#define CAT_CKPT_FULL 1u
#define CAT_CKPT_DELTA 2u

struct cat_ckpt {
	uint64_t id;
	uint32_t kind;
	uint64_t upto;		/* segment id it covers; 0: unknown (a v1 copy) */
};

struct cat_range {
	uint64_t first, last;	/* inclusive */
};

struct catalog {
	uint64_t seq;
	uint64_t seg_hi;
	uint64_t *extra;	/* stored segments above seg_hi, sorted */
	size_t nextra, capextra;
	struct cat_ckpt *ck;	/* sorted by id */
	size_t nck, capck;
	struct cat_range *rm;	/* removed segments, sorted, disjoint, not adjacent */
	size_t nrm, caprm;
	uint64_t *lost;		/* segments lost before upload, sorted */
	size_t nlost, caplost;
	uint64_t *trimmed;	/* checkpoints trimmed out of the window since the
				 * last catalog_take_trimmed (not persisted) */
	size_t ntrimmed, captrimmed;
};

/* Read the newest valid copy. Returns 0, -ENOENT when no backend has one
 * (a volume without any stored object; *c is then empty), -EBADMSG when
 * copies exist but none opens (wrong key or tampered), -EIO when fewer than
 * a majority of backends answered (the newest copy may be among the
 * silent ones). why names the problem. */
int catalog_load(struct objstore *s, struct catalog *c, char *why, size_t whylen);

/* Write c with the next sequence number to every backend. Returns 0 once a
 * majority holds it (c->seq is then the new number), else -EIO with why
 * naming the failing backends. */
int catalog_store(struct objstore *s, struct catalog *c, char *why, size_t whylen);

/* Record object name ("s<id>" or "c<id>") as stored; ckpt_kind is the
 * checkpoint's kind (CAT_CKPT_*) and upto the segment id it covers (both
 * ignored for segments). A checkpoint that makes the window drop older ones
 * (from the second newest full on) remembers their ids for
 * catalog_take_trimmed. Returns 1 when the catalog changed, 0 when it
 * already had it (or the segment was removed: it is not added again),
 * -EINVAL for a bad name or kind, -ENOMEM. */
int catalog_add(struct catalog *c, const char *name, uint32_t ckpt_kind, uint64_t upto);

/* Record object name as removed: a segment joins the removed ranges
 * (merged with those it touches), a checkpoint leaves the window if it is
 * in it. Returns 1 when the catalog changed, 0 when there was nothing to
 * do (already removed, or a checkpoint not listed), -EINVAL for a bad name,
 * -ENOMEM. */
int catalog_remove(struct catalog *c, const char *name);

/* Is segment id seg in a removed range? */
bool catalog_removed(const struct catalog *c, uint64_t seg);

/* Record segment name ("s<id>") as lost before upload: it joins the lost
 * ids and the run of segments (seg_hi passes it once the segments before
 * it are there). Returns 1 when the catalog changed, 0 when it was already
 * lost, -EEXIST when the catalog has it stored (or removed after it was
 * stored: it was not lost), -EINVAL for a name that is not a segment's,
 * -ENOMEM. */
int catalog_lose(struct catalog *c, const char *name);

/* May a restore use checkpoint entry c->ck[i]? Not when it covers a
 * segment beyond the run the catalog has stored (upto > seg_hi): written
 * before the checkpoint hold existed, it may refer to records the backends
 * never got; an older checkpoint plus a replay of the stored segments is
 * used instead. Entries with upto 0 (version 1) are used. Pure. */
bool catalog_ckpt_usable(const struct catalog *c, size_t i);

/* Is segment id seg recorded as lost before upload? O(log nlost). */
bool catalog_lost(const struct catalog *c, uint64_t seg);

/* Up to max ids of the checkpoints trimmed out of the window since the
 * last call, into ids (increasing); those returned are forgotten. Returns
 * how many. */
size_t catalog_take_trimmed(struct catalog *c, uint64_t *ids, size_t max);

/* The GC floor: the smallest upto among the full checkpoints in the window
 * when it holds at least two fulls (a restore may start from any of them),
 * else 0 (also when one of them has upto 0, a v1 entry). A dead segment
 * with id <= the floor may be removed as far as the remote checkpoints are
 * concerned: no restore from them replays it. */
uint64_t catalog_gc_floor(const struct catalog *c);

/* Does the catalog list object name as stored? (A removed or lost segment: no; a
 * checkpoint older than the window: yes, stored but no longer listed.) */
bool catalog_has(const struct catalog *c, const char *name);

/* Does the catalog list name now (a segment not removed, or a checkpoint in
 * the kept window)? What a pass over the catalog visits. */
bool catalog_lists(const struct catalog *c, const char *name);

void catalog_free(struct catalog *c);

/* A deep copy of c (without the trimmed ids) into *out: 0 or -ENOMEM. */
int catalog_dup(const struct catalog *c, struct catalog *out);

#define CAT_CKPT_HDR 64	/* bytes of a checkpoint's clear header the catalog reads */

/* The kind of the checkpoint whose first CAT_CKPT_HDR bytes are hdr (the
 * clear checkpoint header: magic "QSFSCKP1", u32 version, u32 kind at 12,
 * ..., u64 upto at 48), or 0 when they are not a checkpoint header. */
uint32_t catalog_ckpt_kind(const uint8_t hdr[CAT_CKPT_HDR]);

/* The segment id that checkpoint header covers (u64 at 48), 0 when hdr is
 * not a checkpoint header. */
uint64_t catalog_ckpt_upto(const uint8_t hdr[CAT_CKPT_HDR]);

#endif
