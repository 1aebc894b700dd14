/* fs/txn.h - one filesystem change written to the log as one atomic batch.
 *
 * A change (create, link, unlink, rename, an ACL with its mode) touches
 * several keys. Collected in a txn and committed with cache_apply(), they
 * reach the log together: after a crash either every record of the change
 * is there or none is. A txn copies what it is given, so callers may pass
 * stack buffers. Errors while collecting (too many ops, no memory) are kept
 * and returned by txn_commit, so callers need not check each add.
 * Not thread safe: one txn belongs to one thread.
 */
#ifndef QSFS_FS_TXN_H
#define QSFS_FS_TXN_H

#include <stddef.h>
#include <stdint.h>

#include "../cache/cache.h"

#define TXN_MAX_OPS 16

struct txn {
	struct cache_op op[TXN_MAX_OPS];
	size_t koff[TXN_MAX_OPS], voff[TXN_MAX_OPS];	/* into buf */
	size_t n;
	uint8_t *buf;		/* copies of keys and values */
	size_t used, cap;
	int err;		/* first error while collecting */
};

/* An empty txn. */
void txn_init(struct txn *t);

/* Add a PUT of key -> val, or a DEL of key, after the ops added so far. */
void txn_put(struct txn *t, const void *key, size_t klen, const void *val, size_t vlen);
void txn_del(struct txn *t, const void *key, size_t klen);

/* Append every op to c as one batch (cache_apply), then free t's memory.
 * An empty txn writes nothing. Returns 0, the first error met while
 * collecting (-ENOMEM, -E2BIG for more than TXN_MAX_OPS ops) or
 * cache_apply's error. */
int txn_commit(struct txn *t, struct cache *c);

/* Drop everything collected (on an error path before commit). */
void txn_free(struct txn *t);

#endif
