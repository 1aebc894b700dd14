/* fs/acl.h - keeping a POSIX access ACL and the mode bits in step.
 *
 * With FUSE_POSIX_ACL the kernel enforces ACLs, but the filesystem keeps
 * the mode in step: setting system.posix_acl_access sets the owner, group
 * (the mask when there is one) and other bits from it, and chmod rewrites
 * those entries. The xattr is the kernel's binary form: u32 version 2, then
 * entries of (u16 tag, u16 perm, u32 id), little-endian.
 */
#ifndef QSFS_FS_ACL_H
#define QSFS_FS_ACL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define ACL_XATTR_ACCESS "system.posix_acl_access"

/* The permission bits (0777) an access ACL gives. Returns 0 or -EINVAL when
 * the value is not a well-formed ACL. */
int acl_to_mode(const uint8_t *v, size_t len, mode_t *perm);

/* Rewrite the owner, group-or-mask and other entries of an access ACL to
 * match perm (0777 bits), in place. Returns 0 or -EINVAL. */
int acl_apply_mode(uint8_t *v, size_t len, mode_t perm);

#endif
