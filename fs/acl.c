/* fs/acl.c - see acl.h */
#include "acl.h"

#include <errno.h>

#include "../common/endian.h"

#define ACL_VERSION 2u
enum { TAG_USER_OBJ = 0x01, TAG_USER = 0x02, TAG_GROUP_OBJ = 0x04, TAG_GROUP = 0x08,
       TAG_MASK = 0x10, TAG_OTHER = 0x20 };

static int check(const uint8_t *v, size_t len)
{
	if (len < 4 || (len - 4) % 8 || get_le32(v) != ACL_VERSION)
		return -EINVAL;
	unsigned seen = 0;
	for (size_t off = 4; off < len; off += 8) {
		unsigned tag = (unsigned)(v[off] | v[off + 1] << 8);
		unsigned perm = (unsigned)(v[off + 2] | v[off + 3] << 8);
		if (perm > 7)
			return -EINVAL;
		switch (tag) {
		case TAG_USER_OBJ: case TAG_GROUP_OBJ: case TAG_MASK: case TAG_OTHER:
			if (seen & tag)
				return -EINVAL;	/* one of each */
			seen |= tag;
			break;
		case TAG_USER: case TAG_GROUP:
			seen |= tag;
			break;
		default:
			return -EINVAL;
		}
	}
	if ((seen & (TAG_USER_OBJ | TAG_GROUP_OBJ | TAG_OTHER)) !=
	    (TAG_USER_OBJ | TAG_GROUP_OBJ | TAG_OTHER))
		return -EINVAL;
	if ((seen & (TAG_USER | TAG_GROUP)) && !(seen & TAG_MASK))
		return -EINVAL;	/* named entries need a mask */
	return 0;
}

static int walk(uint8_t *v, size_t len, mode_t *perm, bool apply)
{
	int e = check(v, len);
	if (e)
		return e;
	bool mask = false;
	for (size_t off = 4; off < len; off += 8)
		mask |= v[off] == TAG_MASK;
	mode_t m = apply ? *perm : 0;
	for (size_t off = 4; off < len; off += 8) {
		unsigned tag = v[off];
		int shift = tag == TAG_USER_OBJ ? 6 : tag == TAG_OTHER ? 0 :
			    tag == (mask ? TAG_MASK : TAG_GROUP_OBJ) ? 3 : -1;
		if (shift < 0)
			continue;
		if (apply) {
			v[off + 2] = (uint8_t)((m >> shift) & 7);
			v[off + 3] = 0;
		} else {
			m |= (mode_t)(v[off + 2] & 7) << shift;
		}
	}
	if (!apply)
		*perm = m;
	return 0;
}

int acl_to_mode(const uint8_t *v, size_t len, mode_t *perm)
{
	return walk((uint8_t *)v, len, perm, false);
}

bool acl_is_minimal(const uint8_t *v, size_t len)
{
	return !check(v, len) && len == 4 + 3 * 8;	/* check() demands those three */
}

int acl_apply_mode(uint8_t *v, size_t len, mode_t perm)
{
	return walk(v, len, &perm, true);
}

int acl_create_masq(uint8_t *v, size_t len, mode_t *mode)
{
	int e = check(v, len);
	if (e)
		return e;
	mode_t m = *mode & 0777;
	uint8_t *group_obj = NULL, *mask = NULL;
	int extended = 0;
	for (size_t off = 4; off < len; off += 8) {
		uint8_t *perm = v + off + 2;
		switch (v[off]) {
		case TAG_USER_OBJ:
			*perm &= (uint8_t)((m >> 6) & 7);
			m &= (mode_t)(*perm << 6) | 077;
			break;
		case TAG_OTHER:
			*perm &= (uint8_t)(m & 7);
			m &= (mode_t)*perm | 0770;
			break;
		case TAG_GROUP_OBJ:
			group_obj = v + off;
			break;
		case TAG_MASK:
			mask = v + off;
			extended = 1;
			break;
		default:	/* named user or group */
			extended = 1;
			break;
		}
	}
	uint8_t *g = mask ? mask : group_obj;	/* check() guarantees a group entry */
	g[2] &= (uint8_t)((m >> 3) & 7);
	m &= (mode_t)(g[2] << 3) | 0707;
	*mode = (*mode & ~(mode_t)0777) | m;
	return extended;
}
