/* stor/objstore.h - objects (sealed segments, checkpoints) on k+m backends.
 *
 * Remote keys, all under the volume id (32 hex digits, VOL below):
 *   VOL/o/NAME/SHARD.PIECE   shard SHARD (0..k+m-1) of object NAME, cut in
 *                            pieces of at most OBJ_PIECE bytes
 *   VOL/m/NAME               the object's metadata (encrypted), on every
 *                            backend; a store succeeds once a majority has it
 * NAME is "s<segment id>" or "c<checkpoint id>".
 *
 * Metadata, sealed with XChaCha20-Poly1305 under the METADATA subkey (random
 * nonce, AD = "QSFSMET1" + volume id + NAME): format version, object size,
 * k, m, and per shard: the backend it was written to (URL without password),
 * its length, its piece count and its XXH3. No key or password is in it.
 *
 * Placement: the k+m shards of an object go to distinct backends, taken in
 * turn from a starting point derived from the object's name (so objects
 * spread over all backends when there are more than k+m) and skipping the
 * ones the health table (health.h) says are down or full. A write refused
 * for lack of room (-ENOSPC) marks that backend full there. With fewer than k+m
 * usable, a store fails (the caller keeps the object and retries) unless
 * min_shards allows fewer: then the missing shards are recorded as not
 * stored (no backend, no pieces) and the object must be repaired.
 *
 * Generations: a repair stores the object again as generation G+1, its
 * shards under VOL/o/NAME/SHARD.PIECE.gG+1 (generation 0 has no suffix),
 * and the metadata names its generation; readers take the metadata copy
 * with the highest generation from all backends.
 */
#ifndef QSFS_STOR_OBJSTORE_H
#define QSFS_STOR_OBJSTORE_H

#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "codec.h"
#include "health.h"

#define OBJ_PIECE (1u << 20)	/* pieces written; small, as retrieval holds
				 * one per shard in flight */
#define OBJ_PIECE_MAX BACKEND_MAX_VALUE	/* pieces accepted when reading */
#define OBJ_NAME_MAX 32

struct objstore {
	unsigned k, m;
	uint8_t volume_id[16];
	char volhex[33];
	uint8_t meta_key[32];
	struct backend **backends;	/* one set per worker: handles are not shared */
	size_t nbackends;
	struct health *health;	/* shared verdicts; NULL: every backend usable */
	unsigned min_shards;	/* a store may succeed with this many shards
				 * (k+1..k+m); 0 = all k+m */
};

/* Encode the size bytes of fd with codec c and store them as object name.
 * Returns 0 once every shard is written (or at least s->min_shards, see
 * above) and a majority of backends hold the metadata; else a negative
 * errno with why naming the object and what failed where (-EAGAIN: too few
 * backends usable to place it; -ENOSPC: a backend refused a shard for lack
 * of room). On success damage (if not NULL) is empty,
 * or says which shards were not stored and why: the object needs a repair.
 * Memory: the codec's stripe buffers plus two pieces per shard
 * (OBJ_PIECE). */
int obj_put(struct objstore *s, struct codec *c, const char *name, uint64_t code_id,
	    int fd, uint64_t size, char *why, size_t whylen, char *damage, size_t damagelen);

/* Fetch object name into fd (objstore_get.c): the newest metadata, asked
 * of every usable backend at once (those marked slow only when the others
 * do not make a majority), then every shard by a thread of its own, piece
 * by piece; each stripe is written as soon as k good fragments of it have
 * arrived, so the read goes at the pace of the k fastest shards and one
 * slow backend does not hold it up. A shard that is needed (only k left)
 * is waited for, up to its backend's timeout and minimum rate. Once the
 * object is written, a fetch still in flight gets until max(50 ms, 4x the
 * median fetch of this read) after its start; then it is cancelled
 * (backend_cancel) and its backend counted as lagging in s->health
 * (health_lagged: slow after a long lag or two in a row; a backend that
 * keeps up is no longer slow). Blocks on the backends; every thread is
 * joined before it returns. Memory: per shard the piece in flight and
 * about one in the decoder (OBJ_PIECE), plus the codec's stripe buffers,
 * whatever the object's size. On success, damage (if not NULL) is empty,
 * or describes the shards that were missing or corrupt (not those given
 * up on as slow): the object was read but has lost redundancy. Only the
 * shards the read met count: one still in flight when k good ones were
 * decoded is left behind unchecked, so a corrupt shard on a late backend
 * is found by obj_verify (scrub, check), not necessarily by a read. A read
 * that fails with -EIO while a repair replaced the generation it was
 * fetching (the newest metadata names a newer one) is done once more from
 * the start with the new generation (fd truncated). */
int obj_get(struct objstore *s, struct codec *c, const char *name, uint64_t code_id,
	    int fd, char *why, size_t whylen, char *damage, size_t damagelen);

/* What obj_verify found. */
struct obj_check {
	unsigned k, m;
	unsigned good;		/* shards complete with the right length and XXH3 */
	uint32_t bad_mask;	/* bit i: shard i missing, short or corrupt */
	size_t meta_current;	/* backends holding the newest metadata */
	size_t meta_usable;	/* backends usable (asked) */
	uint64_t gen, size;
	uint64_t bytes;		/* shard bytes read */
	char damage[1024];	/* which shards, where, why */
};

/* How thoroughly obj_verify looks. */
enum obj_verify_mode {
	OBJ_VERIFY_READ,	/* read every piece: length and XXH3 (a scrub) */
	OBJ_VERIFY_EXISTS,	/* only ask whether every piece exists (cheap: the
				 * check after a backend came back or changed) */
};

/* Check one object against its newest metadata (read from every usable
 * backend): every shard of it, as mode says. Shards on backends that are
 * down or no longer configured, and shards never stored, count as bad.
 * throttle (may be NULL) is called after each piece read with its size (a
 * rate limit). Returns 0 with *out filled, or a negative errno when no
 * metadata opens (why). */
int obj_verify(struct objstore *s, const char *name, enum obj_verify_mode mode,
	       void (*throttle)(void *arg, size_t bytes), void *arg, struct obj_check *out,
	       char *why, size_t whylen);

/* Write the newest metadata of name to every usable backend that lacks it
 * (a backend that came back empty, or a new one). Returns 0 once every
 * usable backend has it, else -EIO with why. */
int obj_sync_meta(struct objstore *s, const char *name, char *why, size_t whylen);

/* Repair object name: rebuild it from any k good shards (into an unnamed
 * temporary file in tmpdir), store it whole as the next generation (all
 * k+m shards, placed on usable backends whatever min_shards says, and the
 * metadata, which must reach a majority), and only then
 * delete the previous generation's shards. Interrupted at any point, the
 * previous generation stays readable. Returns 0 or a negative errno with
 * why. */
int obj_repair(struct objstore *s, struct codec *c, const char *name, uint64_t code_id,
	       const char *tmpdir, char *why, size_t whylen);

/* Delete object name from the backends: its newest metadata is read from
 * every backend; every piece of every shard of that generation is deleted
 * on the backend the metadata names (shards on backends no longer
 * configured are left: nothing reads them), the same keys of every older
 * generation (".gG", generation 0 without suffix) on every backend, and
 * only then the metadata key on every backend, so an interrupted delete
 * still knows the placement when it is tried again. Returns 0 once every
 * configured backend answered every DEL (an absent key is fine; metadata
 * absent everywhere means already deleted), else -EIO (a backend down or
 * failing: some keys may remain; call again) or -EBADMSG (only copies
 * that do not open: the placement is unknown, nothing is deleted), with
 * why naming the object and the backends. Blocks on the backends; uses
 * s's handles (one thread at a time). */
int obj_delete(struct objstore *s, const char *name, char *why, size_t whylen);

/* Where the newest generation of object name lives, by its metadata. */
struct obj_placement {
	unsigned k, m;
	uint64_t gen;
	int backend[SHARD_MAX];	/* index of the configured backend holding shard
				 * i, -1: not stored or a backend no longer
				 * configured */
	uint32_t pieces[SHARD_MAX];
};

/* Read name's metadata from every backend and describe its newest
 * generation. Returns 0; -ENOENT when every configured backend answered
 * and none has a copy; -EBADMSG when copies exist but none opens; -EIO when
 * no copy was found and some backend did not answer, or a copy was found
 * but fewer than a majority answered (the newest generation may be on the
 * silent ones). */
int obj_placement(struct objstore *s, const char *name, struct obj_placement *out);

#endif
