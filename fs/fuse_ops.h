/* fs/fuse_ops.h - the FUSE low-level operations over a struct qfs. */
#ifndef QSFS_FS_FUSE_OPS_H
#define QSFS_FS_FUSE_OPS_H

#define FUSE_USE_VERSION 34
#include <fuse_lowlevel.h>

#include "qfs.h"

/* The operation table; the session's userdata must be the struct qfs. */
extern const struct fuse_lowlevel_ops qfs_fuse_ops;

#endif
