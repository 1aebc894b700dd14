/* fs/qfs.h - the filesystem over the segment log, without FUSE: every
 * operation qsfs-fs serves, as a function returning 0 (or a count) or a
 * negative errno. fs/fuse_ops.c turns FUSE requests into these calls.
 *
 * Permission checks are the kernel's (qsfs-fs always mounts with
 * default_permissions); these functions check what the kernel cannot know:
 * existence, types, emptiness, loops, name lengths.
 *
 * Concurrency: namespace changes (create, link, unlink, rename, ...) are
 * serialised by one mutex; each inode has a rwlock for its data and
 * attributes, so reads of one file run in parallel and operations on
 * different files do not wait for each other. A read that needs an evicted
 * segment blocks only itself (the log fetches it through its hook).
 *
 * Inode lifetime: the kernel's lookup count (qfs_lookup/qfs_forget) and open
 * count keep an inode alive after its last link is gone; it is purged from
 * the log when both reach zero, or at the next mount (orphan keys) after a
 * crash.
 */
#ifndef QSFS_FS_QFS_H
#define QSFS_FS_QFS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>

#include "../cache/cache.h"

struct qfs;

struct qfs_opts {
	struct cache *cache;
	uint64_t size;		/* reported capacity, 0 = the cache disk's */
	const char *cache_dir;	/* for statfs of the disk */
};

/* Open the filesystem in the log: create the root on an empty log, purge
 * orphans left by a crash. */
int qfs_open(const struct qfs_opts *o, struct qfs **out);
/* Free the in-memory state (the log is the caller's). */
void qfs_close(struct qfs *fs);

/* Attribute bits for qfs_setattr. */
enum {
	QFS_SET_MODE = 1, QFS_SET_UID = 2, QFS_SET_GID = 4, QFS_SET_SIZE = 8,
	QFS_SET_ATIME = 16, QFS_SET_MTIME = 32, QFS_SET_ATIME_NOW = 64,
	QFS_SET_MTIME_NOW = 128, QFS_SET_CTIME = 256,
};

/* Look name up in parent; on success the inode's lookup count is raised
 * (the kernel forgets it later with qfs_forget). */
int qfs_lookup(struct qfs *fs, uint64_t parent, const char *name, struct stat *st);
void qfs_forget(struct qfs *fs, uint64_t ino, uint64_t nlookup);

int qfs_getattr(struct qfs *fs, uint64_t ino, struct stat *st);
/* Change what `set` names from in; O_TRUNC-like size changes drop blocks. */
int qfs_setattr(struct qfs *fs, uint64_t ino, const struct stat *in, unsigned set,
		struct stat *out);

/* Make a file, directory, device, fifo, socket (mode says which) or, with
 * target set, a symlink. Raises the new inode's lookup count. -EEXIST when
 * name exists. When parent has a default ACL the new inode inherits it (a
 * directory as its default ACL too) and umask is ignored, as POSIX ACLs
 * require; otherwise umask is cleared from mode. */
int qfs_mknod(struct qfs *fs, uint64_t parent, const char *name, mode_t mode, dev_t rdev,
	      uid_t uid, gid_t gid, mode_t umask, const char *target, struct stat *st);
int qfs_link(struct qfs *fs, uint64_t ino, uint64_t newparent, const char *newname,
	     struct stat *st);
int qfs_unlink(struct qfs *fs, uint64_t parent, const char *name);
int qfs_rmdir(struct qfs *fs, uint64_t parent, const char *name);
/* flags: 0, RENAME_NOREPLACE or RENAME_EXCHANGE. */
int qfs_rename(struct qfs *fs, uint64_t parent, const char *name, uint64_t newparent,
	       const char *newname, unsigned flags);
/* Copy the symlink target (NUL-terminated) into buf. */
int qfs_readlink(struct qfs *fs, uint64_t ino, char *buf, size_t cap);

/* Open and close a file or directory: an open inode outlives its last link. */
int qfs_open_inode(struct qfs *fs, uint64_t ino, bool truncate);
void qfs_release(struct qfs *fs, uint64_t ino);

/* The cleaner's mover (cache_set_mover, arg = the struct qfs): when the
 * cleaner meets a live record of a data block that has extents, the block
 * is folded, under its inode's lock, into one base record (one batch), so
 * the bytes its extents overlapped stop being live: compaction, which the
 * writes themselves leave to it (extent.h). Returns the bytes appended
 * (> 0), 0 for any other key or an unfragmented block (the cleaner moves
 * the record as it is), or a negative errno. Blocks like a write. */
ssize_t qfs_compact_key(void *fs, const uint8_t *key, size_t klen);

/* Where a defragmentation sweep is, and what its last step did. */
struct qfs_defrag {
	uint8_t cursor[19];	/* the last block visited (as its last extent key) */
	bool have_cursor;	/* false: the next step starts the sweep over */
	uint64_t blocks, folded, bytes;	/* the last step's blocks met, folded,
					 * bytes appended */
};

/* One step of a sweep over every data block that has extents, from where
 * the previous step stopped: fold those whose extents overlap at least
 * min_waste bytes (0: all of them; with min_waste > 0 only blocks whose
 * pieces are all local and in sealed segments, so a background sweep
 * fetches nothing back and leaves blocks being written to a later pass),
 * until about budget bytes were
 * appended (0: no limit). One index walk of the block keys (no I/O for
 * the others); folding takes each inode's lock like a write. Returns 1
 * when the sweep reached the end (and starts over next time), 0 when the
 * budget stopped it, or a negative errno. */
int qfs_defrag(struct qfs *fs, struct qfs_defrag *d, uint64_t budget, uint32_t min_waste);

ssize_t qfs_read(struct qfs *fs, uint64_t ino, void *buf, size_t len, off_t off);
ssize_t qfs_write(struct qfs *fs, uint64_t ino, const void *buf, size_t len, off_t off);
/* Durable: every record appended so far (the log has one sync). */
int qfs_sync(struct qfs *fs);
/* mode 0 (allocate: zero blocks written, size grown) or
 * FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE. */
int qfs_fallocate(struct qfs *fs, uint64_t ino, int mode, off_t off, off_t len);
/* SEEK_DATA / SEEK_HOLE from off. */
off_t qfs_lseek(struct qfs *fs, uint64_t ino, off_t off, int whence);

/* A directory listing taken at the first read: each entry exactly once,
 * whatever changes meanwhile. */
struct qfs_dirent {
	uint64_t ino;
	mode_t type;	/* S_IFMT bits */
	char *name;
};
struct qfs_dir {
	struct qfs_dirent *e;
	size_t n;
};
int qfs_readdir_snapshot(struct qfs *fs, uint64_t ino, struct qfs_dir *d);
void qfs_dir_free(struct qfs_dir *d);

/* xattrs; flags XATTR_CREATE / XATTR_REPLACE. get/list return the size
 * (and -ERANGE when cap is too small but not 0). */
int qfs_setxattr(struct qfs *fs, uint64_t ino, const char *name, const void *val, size_t len,
		 int flags);
ssize_t qfs_getxattr(struct qfs *fs, uint64_t ino, const char *name, void *buf, size_t cap);
ssize_t qfs_listxattr(struct qfs *fs, uint64_t ino, char *buf, size_t cap);
int qfs_removexattr(struct qfs *fs, uint64_t ino, const char *name);

int qfs_statfs(struct qfs *fs, struct statvfs *sv);

/* While the local cache is over its limit with nothing evictable, new data
 * (writes, fallocate, creates) waits when stor is reachable and uploading
 * (QFS_FULL_WAIT: backpressure, up to QFS_FULL_WAIT_MAX_S) and fails with
 * ENOSPC when it is not (QFS_FULL_ENOSPC); reads, deletes and truncates
 * always go on. */
/* FENCED: another host holds the volume; nothing will ever be written
 * here again, so writers are told at once (EROFS), never made to wait. */
enum qfs_full { QFS_FULL_NO, QFS_FULL_WAIT, QFS_FULL_ENOSPC, QFS_FULL_FENCED };
#define QFS_FULL_WAIT_MAX_S 300
void qfs_set_full(struct qfs *fs, enum qfs_full full);
/* The same for a cache disk low on space (cache_disk_low, asked at each
 * call, so a disk that fills between two monitor rounds is seen at once):
 * new data waits while stor answers (up, set by the monitor every round)
 * and the log holds sealed segments not yet confirmed (once they are, the
 * log evicts them, freeing room), else fails with ENOSPC. Deletes never
 * ask: the log's reserve is theirs. */
void qfs_set_stor_up(struct qfs *fs, bool up);
/* 0 when new data may be written now (after waiting up to
 * QFS_FULL_WAIT_MAX_S while WAIT, or while the disk is low and uploads
 * may free it), -EROFS when fenced, else -ENOSPC. */
int qfs_room(struct qfs *fs);

#endif
