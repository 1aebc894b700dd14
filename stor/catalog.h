/* stor/catalog.h - the volume catalog: how a node holding only the
 * configuration and the key lists every object of a volume (nothing is
 * found by guessing names).
 *
 * Key "VOL/catalog" on every backend, written after each stored object and
 * needing a majority; readers take the valid copy with the highest sequence
 * number from a majority of backends. Sealed with XChaCha20-Poly1305 under
 * the METADATA subkey (random nonce first; AD = "QSFSCAT1" + volume id), so
 * backends see neither object names nor counts in clear. Plaintext,
 * little-endian:
 *   0  "QSFSCAT1"   8 u32 version (1)   12 u32 0
 *   16 u64 sequence number            24 u64 seg_hi: segments 1..seg_hi stored
 *   32 u32 nextra   36 u32 nckpt
 *   40 nextra x u64: stored segments above seg_hi, increasing
 *      nckpt x { u64 id, u32 kind (1 full, 2 delta), u32 0 }, increasing ids:
 *      stored checkpoints from the second newest full on (all of them while
 *      fewer than two fulls are stored), enough for a restore to load the
 *      newest full and every delta after it, or the previous full when the
 *      newest one cannot be read.
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
};

struct catalog {
	uint64_t seq;
	uint64_t seg_hi;
	uint64_t *extra;	/* stored segments above seg_hi, sorted */
	size_t nextra, capextra;
	struct cat_ckpt *ck;	/* sorted by id */
	size_t nck, capck;
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
 * checkpoint's kind (CAT_CKPT_*, ignored for segments). Returns 1 when the
 * catalog changed, 0 when it already had it, -EINVAL for a bad name or
 * kind, -ENOMEM. */
int catalog_add(struct catalog *c, const char *name, uint32_t ckpt_kind);

/* Does the catalog list object name? */
bool catalog_has(const struct catalog *c, const char *name);

/* Does the catalog list name now (a segment, or a checkpoint in the kept
 * window)? What a pass over the catalog visits. */
bool catalog_lists(const struct catalog *c, const char *name);

void catalog_free(struct catalog *c);

/* The kind of the checkpoint whose first 16 bytes are hdr (the clear
 * checkpoint header: magic "QSFSCKP1", u32 version, u32 kind), or 0 when
 * they are not a checkpoint header. */
uint32_t catalog_ckpt_kind(const uint8_t hdr[16]);

#endif
