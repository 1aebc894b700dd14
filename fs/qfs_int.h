/* fs/qfs_int.h - what the fs/qfs_*.c files share. Not an API. */
#ifndef QSFS_FS_QFS_INT_H
#define QSFS_FS_QFS_INT_H

#include <pthread.h>

#include "meta.h"
#include "qfs.h"
#include "txn.h"

/* An inode the kernel knows (lookup count) or has open. */
struct node {
	uint64_t ino;
	uint64_t nlookup;	/* under qfs.tmu */
	uint64_t nopen;		/* under qfs.tmu */
	pthread_rwlock_t lock;	/* rec and the inode's data */
	struct inode_rec rec;
	bool deleted;		/* purged (or being purged) from the log */
	/* no block data past rec.size (cut in this mount, and every write
	 * since reached its size record): growing needs no data_cut. Under
	 * lock. */
	bool tail_clean;
	struct node *next;	/* hash chain */
};

#define NODE_BUCKETS 4096u

struct qfs {
	struct cache *c;
	struct qfs_opts o;
	pthread_mutex_t ns;	/* serialises namespace changes */
	pthread_mutex_t tmu;	/* the node table and counts */
	struct node *tab[NODE_BUCKETS];
	pthread_mutex_t imu;	/* inode number allocation */
	uint64_t next_ino, ino_limit;	/* [next, limit) reserved in the superblock */
	_Atomic int full;	/* enum qfs_full, set by qsfs-fs's monitor */
	_Atomic bool stor_up;	/* qfs_set_stor_up, by the monitor */
};

int64_t qfs_now(void);

/* Get the node for ino, loading its record (refs: +nlookup, +nopen). The
 * node stays in the table while either count is non-zero. */
int node_get(struct qfs *fs, uint64_t ino, uint64_t lookups, uint64_t opens,
	     struct node **out);
/* Drop counts taken with node_get; purges the inode when it is unlinked
 * and nobody holds it. */
void node_put(struct qfs *fs, struct node *n, uint64_t lookups, uint64_t opens);
/* Borrow the node of a known inode without changing counts (NULL if the
 * kernel does not hold it: then the record is read from the log). */
struct node *node_find(struct qfs *fs, uint64_t ino);

/* The record of ino from the log; a version-1 record's block count is
 * counted from the keys (blocks_count). */
int rec_load(struct qfs *fs, uint64_t ino, struct inode_rec *r);
/* The value of xattr name of ino in *buf (malloc'd, the caller frees).
 * Returns its length, -ENOENT when there is none, or a negative errno. */
ssize_t xattr_load(struct qfs *fs, uint64_t ino, const char *name, uint8_t **buf);
/* Add "xattr name of ino is v" to t (no checks: callers validate). */
void txn_xattr(struct txn *t, uint64_t ino, const char *name, const void *v, size_t len);
/* Add "the record of ino is r" to t. */
void txn_rec(struct txn *t, uint64_t ino, const struct inode_rec *r);
int rec_store(struct qfs *fs, uint64_t ino, const struct inode_rec *r);
/* Write r through to the log and, once there, make it the node's record.
 * n->lock held for writing. r's block count is ignored: the node's is
 * written, as the data's own batches keep it (the allocated-block count,
 * below). */
int node_store(struct qfs *fs, struct node *n, const struct inode_rec *r);
/* The same, with r added to t and t committed as one batch (t is freed). */
int node_commit(struct qfs *fs, struct node *n, struct txn *t, const struct inode_rec *r);
void rec_to_stat(uint64_t ino, const struct inode_rec *r, struct stat *st);

/* The allocated-block count (inode_rec.blocks, st_blocks): the number of
 * data blocks of the inode that have a base or an extent. Invariant: the
 * count in the log's inode record equals the blocks in the log, after any
 * crash, because every batch that allocates or frees a block also puts
 * the record with the new count (fs/qfs_data.c); batches that leave the
 * set of blocks as it is (overwrites, extents, folds) carry no record.
 * Those batches write the record as the log holds it, *rec, and update
 * *rec once they are in: &n->rec (n->lock held for writing), or a record
 * just loaded where no node exists (mount). Writers of the rest of the
 * record (node_store, node_commit, a change) take the count from there.
 * blocks_count: the count from the keys of ino (version-1 records), one
 * walk of the index, no I/O. */
int blocks_count(struct qfs *fs, uint64_t ino, uint64_t *out);
/* Cut the data of ino to size: blocks past it dropped, the last block
 * trimmed to it; rec: ino's record as the log holds it (its count is kept,
 * above). Idempotent (a crash in the middle is finished by running it
 * again). Also run before a file grows (truncate up, a write past the
 * end): a crash between a write's blocks and its inode record leaves data
 * past the size, which must not show in the new hole. */
int data_cut(struct qfs *fs, uint64_t ino, struct inode_rec *rec, uint64_t size);
/* data_cut at n's size unless n->tail_clean; then n->tail_clean. Before a
 * change that grows the file. n->lock held for writing. */
int tail_clean(struct qfs *fs, struct node *n);
/* After the batch that shrank ino to size (with its 'T' key): cut the
 * data, then delete the key. On failure the key stays, and the next mount
 * finishes the cut. */
int trunc_finish(struct qfs *fs, uint64_t ino, struct inode_rec *rec, uint64_t size);
/* Remove an inode and everything it owns from the log. */
int inode_purge(struct qfs *fs, uint64_t ino);

uint64_t ino_alloc(struct qfs *fs, int *err);

#endif
