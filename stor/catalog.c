/* stor/catalog.c - see catalog.h. */
#include "catalog.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "replica.h"
#include "spool.h"
#include "../common/endian.h"

#define CAT_MAGIC "QSFSCAT1"
#define CAT_VERSION 1u
#define CAT_HDR 40u
#define CAT_MAX_ENTRIES (1u << 24)	/* refuse absurd counts from a copy */

static const char CAT_WHAT[] = "the volume catalog";

/* The catalog's plaintext with sequence number seq (replica.c seals it). */
static int encode(const struct catalog *c, uint64_t seq, uint8_t **out, size_t *outlen)
{
	size_t plen = CAT_HDR + c->nextra * 8 + c->nck * 16;
	uint8_t *p = calloc(1, plen);
	if (!p)
		return -ENOMEM;
	memcpy(p, CAT_MAGIC, 8);
	put_le32(p + 8, CAT_VERSION);
	put_le64(p + 16, seq);
	put_le64(p + 24, c->seg_hi);
	put_le32(p + 32, (uint32_t)c->nextra);
	put_le32(p + 36, (uint32_t)c->nck);
	uint8_t *q = p + CAT_HDR;
	for (size_t i = 0; i < c->nextra; i++, q += 8)
		put_le64(q, c->extra[i]);
	for (size_t i = 0; i < c->nck; i++, q += 16) {
		put_le64(q, c->ck[i].id);
		put_le32(q + 8, c->ck[i].kind);
	}
	*out = p;
	*outlen = plen;
	return 0;
}

/* Is an opened copy a well-formed catalog? (replica_load's check) */
static int check(const uint8_t *p, size_t plen)
{
	if (plen < CAT_HDR || get_le32(p + 8) != CAT_VERSION)
		return -EBADMSG;
	uint32_t ne = get_le32(p + 32), nc = get_le32(p + 36);
	if (ne > CAT_MAX_ENTRIES || nc > CAT_MAX_ENTRIES ||
	    plen != CAT_HDR + (size_t)ne * 8 + (size_t)nc * 16)
		return -EBADMSG;
	const uint8_t *q = p + CAT_HDR;
	uint64_t prev = get_le64(p + 24);
	for (uint32_t i = 0; i < ne; i++, q += 8) {
		if (get_le64(q) <= prev)
			return -EBADMSG;	/* not increasing: not something we wrote */
		prev = get_le64(q);
	}
	for (uint32_t i = 0; i < nc; i++, q += 16) {
		uint64_t id = get_le64(q);
		uint32_t kind = get_le32(q + 8);
		if ((kind != CAT_CKPT_FULL && kind != CAT_CKPT_DELTA) || !id ||
		    (i && id <= get_le64(q - 16)))
			return -EBADMSG;
	}
	return 0;
}

int catalog_load(struct objstore *s, struct catalog *c, char *why, size_t whylen)
{
	memset(c, 0, sizeof *c);
	uint8_t *p;
	size_t plen;
	int r = replica_load(s, "catalog", CAT_MAGIC, CAT_WHAT, check, &p, &plen, why, whylen);
	if (r == -ENOENT)
		snprintf(why, whylen, "the volume has no catalog yet (no object stored)");
	if (r)
		return r;
	uint32_t ne = get_le32(p + 32), nc = get_le32(p + 36);
	c->seq = get_le64(p + 16);
	c->seg_hi = get_le64(p + 24);
	c->extra = malloc((ne ? ne : 1) * sizeof *c->extra);
	c->ck = malloc((nc ? nc : 1) * sizeof *c->ck);
	if (!c->extra || !c->ck) {
		free(p);
		catalog_free(c);
		return -ENOMEM;
	}
	c->capextra = ne ? ne : 1;
	c->capck = nc ? nc : 1;
	const uint8_t *q = p + CAT_HDR;
	for (uint32_t i = 0; i < ne; i++, q += 8)
		c->extra[i] = get_le64(q);
	for (uint32_t i = 0; i < nc; i++, q += 16)
		c->ck[i] = (struct cat_ckpt){ get_le64(q), get_le32(q + 8) };
	c->nextra = ne;
	c->nck = nc;
	free(p);
	return 0;
}

int catalog_store(struct objstore *s, struct catalog *c, char *why, size_t whylen)
{
	uint8_t *p;
	size_t plen;
	int r = encode(c, c->seq + 1, &p, &plen);
	if (r) {
		snprintf(why, whylen, "%s: %s", CAT_WHAT, strerror(-r));
		return r;
	}
	r = replica_store(s, "catalog", CAT_WHAT, p, plen, why, whylen);
	free(p);
	if (!r)
		c->seq++;
	return r;
}

static int add_segment(struct catalog *c, uint64_t id)
{
	if (id <= c->seg_hi)
		return 0;
	size_t i = 0;
	while (i < c->nextra && c->extra[i] < id)
		i++;
	if (i < c->nextra && c->extra[i] == id)
		return 0;
	if (id == c->seg_hi + 1) {
		c->seg_hi = id;	/* then absorb the run that now follows */
		size_t k = 0;
		while (k < c->nextra && c->extra[k] == c->seg_hi + 1)
			c->seg_hi = c->extra[k++];
		if (k) {
			memmove(c->extra, c->extra + k, (c->nextra - k) * sizeof *c->extra);
			c->nextra -= k;
		}
		return 1;
	}
	if (c->nextra == c->capextra) {
		size_t nc = c->capextra ? c->capextra * 2 : 16;
		uint64_t *ne = realloc(c->extra, nc * sizeof *ne);
		if (!ne)
			return -ENOMEM;
		c->extra = ne;
		c->capextra = nc;
	}
	memmove(c->extra + i + 1, c->extra + i, (c->nextra - i) * sizeof *c->extra);
	c->extra[i] = id;
	c->nextra++;
	return 1;
}

static int add_ckpt(struct catalog *c, uint64_t id, uint32_t kind)
{
	if (kind != CAT_CKPT_FULL && kind != CAT_CKPT_DELTA)
		return -EINVAL;
	size_t i = 0;
	while (i < c->nck && c->ck[i].id < id)
		i++;
	if (i < c->nck && c->ck[i].id == id)
		return 0;
	if (c->nck == c->capck) {
		size_t nc = c->capck ? c->capck * 2 : 16;
		struct cat_ckpt *n = realloc(c->ck, nc * sizeof *n);
		if (!n)
			return -ENOMEM;
		c->ck = n;
		c->capck = nc;
	}
	memmove(c->ck + i + 1, c->ck + i, (c->nck - i) * sizeof *c->ck);
	c->ck[i] = (struct cat_ckpt){ id, kind };
	c->nck++;
	/* keep from the second newest full on */
	size_t fulls = 0, from = 0;
	for (size_t k = c->nck; k-- > 0;) {
		if (c->ck[k].kind == CAT_CKPT_FULL && ++fulls == 2) {
			from = k;
			break;
		}
	}
	if (from) {
		memmove(c->ck, c->ck + from, (c->nck - from) * sizeof *c->ck);
		c->nck -= from;
	}
	return 1;
}

/* The number in an object name (the codec's id without the checkpoint bit). */
static int name_id(const char *name, uint64_t *id)
{
	int r = object_name_parse(name, id);
	*id &= ~(1ull << 63);
	return r;
}

int catalog_add(struct catalog *c, const char *name, uint32_t ckpt_kind)
{
	uint64_t id;
	if (name_id(name, &id))
		return -EINVAL;
	return name[0] == 's' ? add_segment(c, id) : add_ckpt(c, id, ckpt_kind);
}

bool catalog_lists(const struct catalog *c, const char *name)
{
	uint64_t id;
	if (name_id(name, &id) || name[0] == 's')
		return catalog_has(c, name);
	for (size_t i = 0; i < c->nck; i++)
		if (c->ck[i].id == id)
			return true;
	return false;
}

bool catalog_has(const struct catalog *c, const char *name)
{
	uint64_t id;
	if (name_id(name, &id))
		return false;
	if (name[0] == 's') {
		if (id <= c->seg_hi)
			return true;
		for (size_t i = 0; i < c->nextra; i++)
			if (c->extra[i] == id)
				return true;
		return false;
	}
	for (size_t i = 0; i < c->nck; i++)
		if (c->ck[i].id == id)
			return true;
	/* older than the kept window: stored, just no longer listed */
	return c->nck && id < c->ck[0].id;
}

void catalog_free(struct catalog *c)
{
	free(c->extra);
	free(c->ck);
	memset(c, 0, sizeof *c);
}

uint32_t catalog_ckpt_kind(const uint8_t hdr[16])
{
	if (memcmp(hdr, "QSFSCKP1", 8))
		return 0;
	uint32_t kind = get_le32(hdr + 12);
	return kind == CAT_CKPT_FULL || kind == CAT_CKPT_DELTA ? kind : 0;
}
