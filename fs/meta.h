/* fs/meta.h - how the filesystem is laid out in the segment log.
 *
 * Keys are binary and ordered (the log's index sorts them bytewise), with
 * inode and block numbers big-endian so a prefix scan walks them in order:
 *   'S'                          superblock: format version, next free inode
 *   'I' ino                      inode record (below)
 *   'D' parent name              directory entry -> child ino, file type
 *                                (names over 246 bytes: 'D' parent, their
 *                                first 230 bytes and an XXH3-128 of the
 *                                whole name; the value then ends with the
 *                                name itself, checked on lookup)
 *   'B' ino block                data block: its base (FS_BLOCK bytes at most)
 *   'B' ino block off            an extent of that block: off (u16) is where
 *                                its bytes start; it overrides the base
 *                                (fs/extent.h: at most EXT_MAX, disjoint)
 *   'X' ino name                 extended attribute value
 *   'O' ino                      orphan: unlinked while open; purged at mount
 *   'T' ino                      truncating: written in the batch that shrinks
 *                                the size; blocks past the size are dropped
 *                                after it, then the key; finished at mount
 * A directory is its 'D' keys: adding an entry is one record, whatever the
 * directory's size. A file is its 'B' keys: a write appends only what it
 * writes (a whole block as its base, a smaller piece as an extent). Holes are absent blocks; a block's value may be shorter than
 * FS_BLOCK, the rest reading as zeros. A symlink's target is its data.
 *
 * Inode record, little-endian, FS_INODE_SIZE bytes:
 *   0 u32 version  4 u32 mode  8 u32 uid  12 u32 gid  16 u32 nlink
 *   20 u32 0  24 u64 size  32 u64 rdev  40 i64 atime  48 i64 mtime
 *   56 i64 ctime (ns since the epoch)  64 u64 parent (directories)
 *   72 u64 blocks: how many data blocks of the inode are allocated (have
 *      a base or an extent), what st_blocks is made of. Every batch that
 *      allocates or frees a block carries the record with its new count
 *      (fs/qfs_data.c), so after a crash the count still matches the keys.
 * Version 1 records (72 bytes, before blocks) are still read: their count
 * is taken from the block keys when they are loaded (one walk of the
 * index, no I/O), and written with the next change of the record.
 */
#ifndef QSFS_FS_META_H
#define QSFS_FS_META_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#define FS_BLOCK (64u * 1024)
#define FS_INODE_SIZE 80u
#define FS_INODE_VERSION 2u
#define FS_INODE_SIZE_V1 72u	/* version 1: no block count */
#define FS_BLOCKS_UNKNOWN UINT64_MAX	/* decoded from a version-1 record */
/* 2: blocks may have extents ('B' ino block off); a version-1 reader would
 * ignore them. 3: inode records may be version 2 (with their block count),
 * which a version-2 reader cannot decode. So a mount that can write raises
 * the version to this one and older binaries refuse the volume instead of
 * reading stale data or failing on every inode. */
#define FS_SUPER_VERSION 3u
#define FS_NAME_MAX 255u
#define FS_KEY_MAX 255u		/* the log's key limit */
#define FS_XATTR_NAME_MAX (FS_KEY_MAX - 9)	/* 246: xattr names are keys */
#define FS_ROOT_INO 1ull

enum { K_SUPER = 'S', K_INODE = 'I', K_DENT = 'D', K_BLOCK = 'B', K_XATTR = 'X',
       K_ORPHAN = 'O', K_TRUNC = 'T' };

struct inode_rec {
	uint32_t mode, uid, gid, nlink;
	uint64_t size, rdev;
	int64_t atime, mtime, ctime;
	uint64_t parent;
	uint64_t blocks;	/* allocated data blocks (FS_BLOCK each) */
};

/* Key builders: write the key into k (FS_KEY_MAX bytes), return its length
 * (0 when a name does not fit). */
size_t key_inode(uint8_t *k, uint64_t ino);
size_t key_dent(uint8_t *k, uint64_t parent, const char *name);
size_t key_dent_prefix(uint8_t *k, uint64_t parent);
size_t key_block(uint8_t *k, uint64_t ino, uint64_t block);
size_t key_block_prefix(uint8_t *k, uint64_t ino);
size_t key_extent(uint8_t *k, uint64_t ino, uint64_t block, uint32_t off);
size_t key_xattr(uint8_t *k, uint64_t ino, const char *name);
size_t key_xattr_prefix(uint8_t *k, uint64_t ino);
size_t key_orphan(uint8_t *k, uint64_t ino);
size_t key_trunc(uint8_t *k, uint64_t ino);

void inode_encode(const struct inode_rec *r, uint8_t out[FS_INODE_SIZE]);
/* Returns 0 or -EIO (wrong length or version). A version-1 record gives
 * blocks FS_BLOCKS_UNKNOWN (the caller counts them). */
int inode_decode(const uint8_t *in, size_t len, struct inode_rec *r);

/* Directory entry value: u64 ino (LE), u8 file type (S_IFMT >> 12), then
 * the name when dent_name_in_value(). */
#define FS_DENT_SIZE 9u
#define DENT_KEY_PREFIX 230u
bool dent_name_in_value(size_t namelen);

#endif
