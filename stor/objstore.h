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
 * Shard i of an object goes to backends[i] (the configuration lists at least
 * k+m distinct backends; placement around unhealthy ones comes with issue 5).
 */
#ifndef QSFS_STOR_OBJSTORE_H
#define QSFS_STOR_OBJSTORE_H

#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "codec.h"

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
};

/* Encode the size bytes of fd with codec c and store them as object name.
 * Returns 0 once every shard is written and a majority of backends hold the
 * metadata; else a negative errno with why naming the object and what
 * failed where. Memory: the codec's stripe buffers plus one piece per shard
 * (OBJ_PIECE). */
int obj_put(struct objstore *s, struct codec *c, const char *name, uint64_t code_id,
	    int fd, uint64_t size, char *why, size_t whylen);

/* Fetch object name into fd: metadata from the first backend that has a
 * valid copy, then the shards piece by piece, piece p of every shard in
 * parallel, each stripe written as soon as k good fragments of it have
 * arrived. Memory: about two pieces per shard (OBJ_PIECE) plus the codec's
 * stripe buffers, whatever the object's size. On success, damage (if not
 * NULL) is empty, or describes the shards that were missing or corrupt: the
 * object was read but has lost redundancy. */
int obj_get(struct objstore *s, struct codec *c, const char *name, uint64_t code_id,
	    int fd, char *why, size_t whylen, char *damage, size_t damagelen);

#endif
