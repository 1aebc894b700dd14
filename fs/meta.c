/* fs/meta.c - see meta.h */
#include "meta.h"

#include <errno.h>
#include <string.h>

#include "../common/endian.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

static size_t key_num(uint8_t *k, uint8_t type, uint64_t n)
{
	k[0] = type;
	put_be64(k + 1, n);
	return 9;
}

static size_t key_named(uint8_t *k, uint8_t type, uint64_t n, const char *name)
{
	size_t l = strlen(name);
	if (!l || 9 + l > FS_KEY_MAX)
		return 0;
	key_num(k, type, n);
	memcpy(k + 9, name, l);
	return 9 + l;
}

size_t key_inode(uint8_t *k, uint64_t ino) { return key_num(k, K_INODE, ino); }
size_t key_dent_prefix(uint8_t *k, uint64_t parent) { return key_num(k, K_DENT, parent); }
size_t key_block_prefix(uint8_t *k, uint64_t ino) { return key_num(k, K_BLOCK, ino); }
size_t key_xattr_prefix(uint8_t *k, uint64_t ino) { return key_num(k, K_XATTR, ino); }
size_t key_orphan(uint8_t *k, uint64_t ino) { return key_num(k, K_ORPHAN, ino); }
size_t key_trunc(uint8_t *k, uint64_t ino) { return key_num(k, K_TRUNC, ino); }

size_t key_dent(uint8_t *k, uint64_t parent, const char *name)
{
	size_t l = strlen(name);
	if (!l || l > FS_NAME_MAX)
		return 0;
	if (9 + l <= FS_KEY_MAX)
		return key_named(k, K_DENT, parent, name);
	/* too long for a key: a prefix and a 128-bit hash of the whole name */
	key_num(k, K_DENT, parent);
	memcpy(k + 9, name, DENT_KEY_PREFIX);
	XXH128_hash_t h = XXH3_128bits(name, l);
	put_le64(k + 9 + DENT_KEY_PREFIX, h.low64);
	put_le64(k + 9 + DENT_KEY_PREFIX + 8, h.high64);
	return 9 + DENT_KEY_PREFIX + 16;
}

bool dent_name_in_value(size_t namelen)
{
	return 9 + namelen > FS_KEY_MAX;
}

size_t key_xattr(uint8_t *k, uint64_t ino, const char *name)
{
	return key_named(k, K_XATTR, ino, name);
}

size_t key_block(uint8_t *k, uint64_t ino, uint64_t block)
{
	key_num(k, K_BLOCK, ino);
	put_be64(k + 9, block);
	return 17;
}

size_t key_extent(uint8_t *k, uint64_t ino, uint64_t block, uint32_t off)
{
	key_block(k, ino, block);
	put_be16(k + 17, (uint16_t)off);
	return 19;
}

void inode_encode(const struct inode_rec *r, uint8_t out[FS_INODE_SIZE])
{
	memset(out, 0, FS_INODE_SIZE);
	put_le32(out, FS_INODE_VERSION);
	put_le32(out + 4, r->mode);
	put_le32(out + 8, r->uid);
	put_le32(out + 12, r->gid);
	put_le32(out + 16, r->nlink);
	put_le64(out + 24, r->size);
	put_le64(out + 32, r->rdev);
	put_le64(out + 40, (uint64_t)r->atime);
	put_le64(out + 48, (uint64_t)r->mtime);
	put_le64(out + 56, (uint64_t)r->ctime);
	put_le64(out + 64, r->parent);
	put_le64(out + 72, r->blocks);
}

int inode_decode(const uint8_t *in, size_t len, struct inode_rec *r)
{
	bool v1 = len == FS_INODE_SIZE_V1 && get_le32(in) == 1;
	if (!v1 && (len != FS_INODE_SIZE || get_le32(in) != FS_INODE_VERSION))
		return -EIO;
	r->mode = get_le32(in + 4);
	r->uid = get_le32(in + 8);
	r->gid = get_le32(in + 12);
	r->nlink = get_le32(in + 16);
	r->size = get_le64(in + 24);
	r->rdev = get_le64(in + 32);
	r->atime = (int64_t)get_le64(in + 40);
	r->mtime = (int64_t)get_le64(in + 48);
	r->ctime = (int64_t)get_le64(in + 56);
	r->parent = get_le64(in + 64);
	r->blocks = v1 ? FS_BLOCKS_UNKNOWN : get_le64(in + 72);
	return 0;
}
