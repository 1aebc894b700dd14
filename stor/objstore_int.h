/* stor/objstore_int.h - what objstore.c (stores, metadata, scrub, repair,
 * deletion) and objstore_get.c (the read path) share. Not for other
 * modules: objstore.h is the interface.
 */
#ifndef QSFS_STOR_OBJSTORE_INT_H
#define QSFS_STOR_OBJSTORE_INT_H

#include <stdint.h>

#include "objstore.h"

#define META_NAME_MAX 256	/* a backend's display name */

/* One shard as the metadata describes it. */
struct shard_meta {
	char backend[META_NAME_MAX];
	uint64_t len, sum;
	uint32_t pieces;
};

/* An object's metadata, opened. */
struct obj_meta {
	uint64_t size;
	uint64_t gen;		/* bumped by each repair; shards live under it */
	unsigned k, m;
	struct shard_meta sh[SHARD_MAX];
};

/* The key of piece `piece` of shard `shard` of name, generation gen, into
 * key (n bytes). */
void objstore_shard_key(const struct objstore *s, const char *name, uint64_t gen,
			unsigned shard, uint32_t piece, char *key, size_t n);

/* The key of name's metadata into key (n bytes). */
void objstore_meta_key(const struct objstore *s, const char *name, char *key, size_t n);

/* Open a sealed metadata copy c (clen bytes) of name into *m: 0, -EBADMSG
 * (does not open, or not this volume's k+m) or -ENOMEM. */
int objstore_meta_open(const struct objstore *s, const char *name, const uint8_t *c,
		       size_t clen, struct obj_meta *m);

/* No usable metadata copy of name was found: why says so, and the result
 * is -EBADMSG when some copies exist but none opens with this key
 * (undecryptable > 0), else -ENOENT. */
int objstore_meta_missing(const char *name, size_t undecryptable, char *why, size_t whylen);

/* The index of the configured backend called name, or -1. */
int objstore_find_backend(struct objstore *s, const char *name);

/* Fetch object name, described by metadata m, into fd (obj_get, and
 * obj_repair's read): see objstore_get.c. Returns 0 with damage (if not
 * NULL) describing lost redundancy, or a negative errno with why. Blocks on
 * the backends (one thread per shard, all joined before it returns: s's
 * handles are free again then). */
int objstore_get_from(struct objstore *s, struct codec *c, const char *name, uint64_t code_id,
		      const struct obj_meta *m, int fd, char *why, size_t whylen, char *damage,
		      size_t damagelen);

#endif
