/* common/fsproto.h - the requests of qsfs-fs's control socket (fs.socket;
 * their replies are described in fs/fsctl.h): one definition of the words,
 * used by the filesystem's dispatcher (fs/fsctl.c) and by qsfs-ctl. One
 * request line per connection; WARMUP's inode numbers follow its line.
 */
#ifndef QSFS_COMMON_FSPROTO_H
#define QSFS_COMMON_FSPROTO_H

#include <stddef.h>

enum fs_op { FS_PING, FS_SEAL, FS_STATUS, FS_WARMUP, FS_GC, FS_NOPS };

/* The request's word ("SEAL"). */
const char *fsproto_word(enum fs_op op);

/* Parse a request line (without its newline). *arg points to what follows
 * "GC " (a number of seconds, may be ""), else to "". Returns 0, or
 * -EINVAL with err saying why ("unknown request 'X' (PING, SEAL, ...)").
 * Pure. */
int fsproto_parse(const char *line, enum fs_op *op, const char **arg, char *err, size_t errlen);

/* Write request op (GC: with seconds when > 0) and its newline into buf.
 * Returns the length, or -ENAMETOOLONG. Pure. */
int fsproto_format(enum fs_op op, unsigned seconds, char *buf, size_t cap);

#endif
