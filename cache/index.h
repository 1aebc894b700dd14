/* cache/index.h - the ordered in-memory index: key -> record location.
 *
 * A skip list (as in Redis' zset) whose nodes hold the key inline, so one
 * allocation per key: 16 bytes of location, 8 bytes per level (1.33 levels
 * on average) and the key itself. For the filesystem's 17-byte block keys this
 * is about 50 bytes per key including malloc overhead (bench/ measures it).
 *
 * Not thread-safe: the owner (cache.c) serialises access with its rwlock.
 * Readers may run concurrently with each other.
 */
#ifndef QSFS_CACHE_INDEX_H
#define QSFS_CACHE_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Where a record lives: segment id, byte offset of the record header and the
 * whole record's length (header + key + value). */
struct ix_loc {
	uint32_t seg;
	uint32_t off;
	uint32_t len;
};

struct index;
struct ix_node;

/* New empty index, or NULL on ENOMEM. */
struct index *ix_new(void);
void ix_free(struct index *ix);

/* Insert or replace key. On replace, *old (if not NULL) receives the previous
 * location and 1 is returned; a new key returns 0; -ENOMEM on failure (the
 * index is unchanged). klen must be 1..255. */
int ix_put(struct index *ix, const void *key, size_t klen, struct ix_loc loc,
	   struct ix_loc *old);

/* Look up key. Returns 0 and fills *loc, or -ENOENT. */
int ix_get(const struct index *ix, const void *key, size_t klen,
	   struct ix_loc *loc);

/* Remove key. Returns 0 and fills *old (if not NULL), or -ENOENT. */
int ix_del(struct index *ix, const void *key, size_t klen, struct ix_loc *old);

/* First node whose key is >= key (or > key when after is true); NULL at the
 * end. klen 0 means "from the start". */
const struct ix_node *ix_seek(const struct index *ix, const void *key,
			      size_t klen, bool after);

/* Next node in key order, or NULL. */
const struct ix_node *ix_next(const struct ix_node *n);

/* Accessors of a node returned by ix_seek/ix_next. */
const uint8_t *ix_node_key(const struct ix_node *n, size_t *klen);
struct ix_loc ix_node_loc(const struct ix_node *n);

/* Number of keys. */
size_t ix_count(const struct index *ix);
/* Keys whose first byte is first (kept up to date by put and del: O(1)). */
size_t ix_count_first(const struct index *ix, uint8_t first);

/* Heap bytes held by the index (nodes and their malloc overhead, measured
 * with malloc_usable_size). */
size_t ix_bytes(const struct index *ix);

/* Byte-wise comparison of keys, shorter first on a common prefix. */
int ix_keycmp(const void *a, size_t alen, const void *b, size_t blen);

#endif
