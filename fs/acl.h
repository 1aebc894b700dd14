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
#define ACL_XATTR_DEFAULT "system.posix_acl_default"

/* The permission bits (0777) an access ACL gives. Returns 0 or -EINVAL when
 * the value is not a well-formed ACL. */
int acl_to_mode(const uint8_t *v, size_t len, mode_t *perm);

/* Does a well-formed access ACL say no more than the mode bits (only the
 * owner, group and other entries: no named entry, no mask)? As Linux's
 * posix_acl_equiv_mode: such an ACL is not stored, the mode says it all
 * (so `cp -a` or `setfacl -b` leave no '+' in ls -l). */
bool acl_is_minimal(const uint8_t *v, size_t len);

/* Rewrite the owner, group-or-mask and other entries of an access ACL to
 * match perm (0777 bits), in place. Returns 0 or -EINVAL. */
int acl_apply_mode(uint8_t *v, size_t len, mode_t perm);

/* A new inode in a directory with a default ACL (POSIX 1003.1e, as Linux's
 * posix_acl_create): v, a copy of that default ACL, becomes the new access
 * ACL, each of its owner, group-or-mask and other entries cut down to what
 * the requested *mode allows, and the 0777 bits of *mode cut down to what
 * the ACL grants (the umask is not applied). Returns 1 when the result has
 * named entries or a mask and so must be stored as an access ACL, 0 when
 * the mode bits say everything, -EINVAL when v is not a well-formed ACL. */
int acl_create_masq(uint8_t *v, size_t len, mode_t *mode);

#endif
