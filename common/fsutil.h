/* common/fsutil.h - small, honest wrappers around POSIX file calls.
 *
 * Every function returns 0 (or a byte count) on success and a negative errno
 * on failure; none of them logs: the caller decides and logs once.
 */
#ifndef QSFS_FSUTIL_H
#define QSFS_FSUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <pthread.h>
#include <stdint.h>
#include <time.h>
#include <sys/types.h>

/* pwrite all of buf at off, retrying short writes and EINTR. */
int fs_pwrite_all(int fd, const void *buf, size_t len, off_t off);

/* pread up to len bytes at off, retrying short reads and EINTR. Returns the
 * number of bytes read (less than len only at end of file), or -errno. */
ssize_t fs_pread_full(int fd, void *buf, size_t len, off_t off);

/* fsync a directory (by fd) so that created, renamed or removed names are
 * durable. */
int fs_fsync_dir(int dirfd);

/* Write len bytes to dirfd/name atomically: write "name.tmp", fsync it,
 * rename over name, fsync the directory. After a crash either the old or the
 * new contents are visible, never a mix. */
int fs_write_atomic(int dirfd, const char *name, const void *buf, size_t len,
		    mode_t mode);

/* Read a whole (small) file into a malloc'd buffer. *len receives the size. */
int fs_read_file(int dirfd, const char *name, uint8_t **buf, size_t *len);

/* Lowercase hex of len bytes into out (2*len+1 bytes). */
void fs_hex(const uint8_t *in, size_t len, char *out);

/* Parse exactly 2*len hex digits. Returns 0 or -EINVAL. */
int fs_unhex(const char *in, uint8_t *out, size_t len);

/* Parse a file name of the form PREFIX, 16 lowercase hex digits, SUFFIX
 * (e.g. "seg-000000000000002a.qseg"). Returns true and a nonzero *id. */
bool fs_parse_hex_name(const char *name, const char *prefix, const char *suffix,
		       uint64_t *id);

/* Open dirfd/name read-only and give its size. Returns the fd or -errno. */
int fs_open_read(int dirfd, const char *name, uint64_t *size);

/* Monotonic clock in nanoseconds. */
uint64_t fs_now_ns(void);

/* Make *cv a condition variable whose timed waits run on CLOCK_MONOTONIC
 * (a step of the wall clock, as NTP makes on a host that booted minutes
 * ago, then neither postpones nor hurries a wait). Every condition
 * variable waited on with fs_abstime is made with this. Returns 0 or a
 * positive errno (pthread). */
int fs_cond_init(pthread_cond_t *cv);

/* The CLOCK_MONOTONIC time ns nanoseconds from now, for
 * pthread_cond_timedwait on a condition variable made by fs_cond_init. */
struct timespec fs_abstime(uint64_t ns);

#endif
