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
#define CAT_VERSION 3u	/* written; 1 and 2 are still read */
#define CAT_HDR_V1 40u
#define CAT_HDR 48u
#define CAT_CK_V1 16u	/* bytes of a checkpoint entry */
#define CAT_CK 24u
#define CAT_MAX_ENTRIES (1u << 24)	/* refuse absurd counts from a copy */

static const char CAT_WHAT[] = "the volume catalog";

/* The catalog's plaintext (version 3) with sequence number seq (replica.c
 * seals it). */
static int encode(const struct catalog *c, uint64_t seq, uint8_t **out, size_t *outlen)
{
	size_t plen = CAT_HDR + c->nextra * 8 + c->nck * CAT_CK + c->nrm * 16 + c->nlost * 8;
	uint8_t *p = calloc(1, plen);
	if (!p)
		return -ENOMEM;
	memcpy(p, CAT_MAGIC, 8);
	/* version 2 while no segment is lost: the same bytes, which older
	 * qsfs-stor and qsfs-fs (a restore reads the catalog) still read */
	put_le32(p + 8, c->nlost ? CAT_VERSION : 2u);
	put_le64(p + 16, seq);
	put_le64(p + 24, c->seg_hi);
	put_le32(p + 32, (uint32_t)c->nextra);
	put_le32(p + 36, (uint32_t)c->nck);
	put_le32(p + 40, (uint32_t)c->nrm);
	put_le32(p + 44, (uint32_t)c->nlost);
	uint8_t *q = p + CAT_HDR;
	for (size_t i = 0; i < c->nextra; i++, q += 8)
		put_le64(q, c->extra[i]);
	for (size_t i = 0; i < c->nck; i++, q += CAT_CK) {
		put_le64(q, c->ck[i].id);
		put_le32(q + 8, c->ck[i].kind);
		put_le64(q + 16, c->ck[i].upto);
	}
	for (size_t i = 0; i < c->nrm; i++, q += 16) {
		put_le64(q, c->rm[i].first);
		put_le64(q + 8, c->rm[i].last);
	}
	for (size_t i = 0; i < c->nlost; i++, q += 8)
		put_le64(q, c->lost[i]);
	*out = p;
	*outlen = plen;
	return 0;
}

/* The layout of a copy of version v: header and checkpoint entry sizes. */
static void layout(uint32_t v, size_t *hdr, size_t *ck)
{
	*hdr = v == 1 ? CAT_HDR_V1 : CAT_HDR;
	*ck = v == 1 ? CAT_CK_V1 : CAT_CK;
}

/* Is an opened copy a well-formed catalog? (replica_load's check) */
static int check(const uint8_t *p, size_t plen)
{
	if (plen < CAT_HDR_V1)
		return -EBADMSG;
	uint32_t v = get_le32(p + 8);
	if (v < 1 || v > CAT_VERSION)
		return -EBADMSG;
	size_t hdr, cksz;
	layout(v, &hdr, &cksz);
	if (plen < hdr || get_le32(p + 12) || (v == 2 && get_le32(p + 44)))
		return -EBADMSG;
	uint32_t ne = get_le32(p + 32), nc = get_le32(p + 36), nr = v >= 2 ? get_le32(p + 40) : 0,
		 nl = v >= 3 ? get_le32(p + 44) : 0;
	if (ne > CAT_MAX_ENTRIES || nc > CAT_MAX_ENTRIES || nr > CAT_MAX_ENTRIES ||
	    nl > CAT_MAX_ENTRIES ||
	    plen != hdr + (size_t)ne * 8 + (size_t)nc * cksz + (size_t)nr * 16 + (size_t)nl * 8)
		return -EBADMSG;
	const uint8_t *q = p + hdr;
	uint64_t prev = get_le64(p + 24);
	for (uint32_t i = 0; i < ne; i++, q += 8) {
		if (get_le64(q) <= prev)
			return -EBADMSG;	/* not increasing: not something we wrote */
		prev = get_le64(q);
	}
	for (uint32_t i = 0; i < nc; i++, q += cksz) {
		uint64_t id = get_le64(q);
		uint32_t kind = get_le32(q + 8);
		if ((kind != CAT_CKPT_FULL && kind != CAT_CKPT_DELTA) || !id || get_le32(q + 12) ||
		    (i && id <= get_le64(q - cksz)))
			return -EBADMSG;
	}
	for (uint32_t i = 0; i < nr; i++, q += 16) {
		uint64_t first = get_le64(q), last = get_le64(q + 8);
		/* increasing, disjoint and not adjacent: merged when written */
		if (!first || first > last || (i && first <= get_le64(q - 8) + 1))
			return -EBADMSG;
	}
	for (uint32_t i = 0; i < nl; i++, q += 8) {
		uint64_t id = get_le64(q);
		if (!id || (i && id <= get_le64(q - 8)))
			return -EBADMSG;	/* increasing, as written */
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
	uint32_t v = get_le32(p + 8), ne = get_le32(p + 32), nc = get_le32(p + 36),
		 nr = v >= 2 ? get_le32(p + 40) : 0, nl = v >= 3 ? get_le32(p + 44) : 0;
	size_t hdr, cksz;
	layout(v, &hdr, &cksz);
	c->seq = get_le64(p + 16);
	c->seg_hi = get_le64(p + 24);
	c->extra = malloc((ne ? ne : 1) * sizeof *c->extra);
	c->ck = malloc((nc ? nc : 1) * sizeof *c->ck);
	c->rm = malloc((nr ? nr : 1) * sizeof *c->rm);
	c->lost = malloc((nl ? nl : 1) * sizeof *c->lost);
	if (!c->extra || !c->ck || !c->rm || !c->lost) {
		free(p);
		catalog_free(c);
		return -ENOMEM;
	}
	c->capextra = ne ? ne : 1;
	c->capck = nc ? nc : 1;
	c->caprm = nr ? nr : 1;
	c->caplost = nl ? nl : 1;
	const uint8_t *q = p + hdr;
	for (uint32_t i = 0; i < ne; i++, q += 8)
		c->extra[i] = get_le64(q);
	for (uint32_t i = 0; i < nc; i++, q += cksz)
		c->ck[i] = (struct cat_ckpt){ get_le64(q), get_le32(q + 8),
					      v >= 2 ? get_le64(q + 16) : 0 };
	for (uint32_t i = 0; i < nr; i++, q += 16)
		c->rm[i] = (struct cat_range){ get_le64(q), get_le64(q + 8) };
	for (uint32_t i = 0; i < nl; i++, q += 8)
		c->lost[i] = get_le64(q);
	c->nlost = nl;
	c->nextra = ne;
	c->nck = nc;
	c->nrm = nr;
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
	if (id <= c->seg_hi || catalog_removed(c, id))
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

/* v (n used, *cap allocated, elements of size sz), grown to hold one
 * more: v itself when it has room, else the reallocated array, or NULL
 * (out of memory; v is unchanged). */
static void *grow(void *v, size_t n, size_t *cap, size_t sz)
{
	if (n < *cap)
		return v;
	size_t nc = *cap ? *cap * 2 : 16;
	void *nv = realloc(v, nc * sz);
	if (nv)
		*cap = nc;
	return nv;
}

static int add_ckpt(struct catalog *c, uint64_t id, uint32_t kind, uint64_t upto)
{
	if (kind != CAT_CKPT_FULL && kind != CAT_CKPT_DELTA)
		return -EINVAL;
	size_t i = 0;
	while (i < c->nck && c->ck[i].id < id)
		i++;
	if (i < c->nck && c->ck[i].id == id)
		return 0;
	struct cat_ckpt *nck = grow(c->ck, c->nck, &c->capck, sizeof *c->ck);
	if (!nck)
		return -ENOMEM;
	c->ck = nck;
	/* room for every id the window may drop, so trimming cannot fail */
	while (c->captrimmed < c->ntrimmed + c->nck + 1) {
		size_t nc = c->captrimmed ? c->captrimmed * 2 : 16;
		uint64_t *n = realloc(c->trimmed, nc * sizeof *n);
		if (!n)
			return -ENOMEM;
		c->trimmed = n;
		c->captrimmed = nc;
	}
	memmove(c->ck + i + 1, c->ck + i, (c->nck - i) * sizeof *c->ck);
	c->ck[i] = (struct cat_ckpt){ id, kind, upto };
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
		for (size_t k = 0; k < from; k++)
			c->trimmed[c->ntrimmed++] = c->ck[k].id;
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

int catalog_add(struct catalog *c, const char *name, uint32_t ckpt_kind, uint64_t upto)
{
	uint64_t id;
	if (name_id(name, &id))
		return -EINVAL;
	return name[0] == 's' ? add_segment(c, id) : add_ckpt(c, id, ckpt_kind, upto);
}

/* Index of the first removed range whose last >= seg (c->nrm: none). */
static size_t range_at(const struct catalog *c, uint64_t seg)
{
	size_t lo = 0, hi = c->nrm;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (c->rm[mid].last < seg)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

bool catalog_removed(const struct catalog *c, uint64_t seg)
{
	size_t i = range_at(c, seg);
	return i < c->nrm && c->rm[i].first <= seg;
}

/* Add segment id to the removed ranges, merging the ranges it touches. */
static int remove_segment(struct catalog *c, uint64_t id)
{
	if (catalog_removed(c, id))
		return 0;
	size_t i = range_at(c, id);	/* the first range after id (id is not in it) */
	bool join_prev = i > 0 && c->rm[i - 1].last + 1 == id;
	bool join_next = i < c->nrm && c->rm[i].first == id + 1;
	if (join_prev && join_next) {
		c->rm[i - 1].last = c->rm[i].last;
		memmove(c->rm + i, c->rm + i + 1, (c->nrm - i - 1) * sizeof *c->rm);
		c->nrm--;
	} else if (join_prev) {
		c->rm[i - 1].last = id;
	} else if (join_next) {
		c->rm[i].first = id;
	} else {
		struct cat_range *nrm = grow(c->rm, c->nrm, &c->caprm, sizeof *c->rm);
		if (!nrm)
			return -ENOMEM;
		c->rm = nrm;
		memmove(c->rm + i + 1, c->rm + i, (c->nrm - i) * sizeof *c->rm);
		c->rm[i] = (struct cat_range){ id, id };
		c->nrm++;
	}
	return 1;
}

int catalog_remove(struct catalog *c, const char *name)
{
	uint64_t id;
	if (name_id(name, &id))
		return -EINVAL;
	if (name[0] == 's')
		return remove_segment(c, id);
	for (size_t i = 0; i < c->nck; i++) {
		if (c->ck[i].id == id) {
			memmove(c->ck + i, c->ck + i + 1, (c->nck - i - 1) * sizeof *c->ck);
			c->nck--;
			return 1;
		}
	}
	return 0;
}

bool catalog_ckpt_usable(const struct catalog *c, size_t i)
{
	return i < c->nck && (!c->ck[i].upto || c->ck[i].upto <= c->seg_hi);
}

bool catalog_lost(const struct catalog *c, uint64_t seg)
{
	size_t lo = 0, hi = c->nlost;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (c->lost[mid] < seg)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < c->nlost && c->lost[lo] == seg;
}

int catalog_lose(struct catalog *c, const char *name)
{
	uint64_t id;
	if (name_id(name, &id) || name[0] != 's')
		return -EINVAL;
	if (catalog_lost(c, id))
		return 0;
	if (catalog_has(c, name) || catalog_removed(c, id))
		return -EEXIST;	/* stored (or stored and removed): not lost */
	uint64_t *nl = grow(c->lost, c->nlost, &c->caplost, sizeof *c->lost);
	if (!nl)
		return -ENOMEM;
	c->lost = nl;
	/* its place in the run of segments: seg_hi may pass it now */
	int r = add_segment(c, id);
	if (r < 0)
		return r;
	size_t i = c->nlost;
	while (i > 0 && c->lost[i - 1] > id)
		i--;
	memmove(c->lost + i + 1, c->lost + i, (c->nlost - i) * sizeof *c->lost);
	c->lost[i] = id;
	c->nlost++;
	return 1;
}

size_t catalog_take_trimmed(struct catalog *c, uint64_t *ids, size_t max)
{
	size_t n = c->ntrimmed < max ? c->ntrimmed : max;
	if (!n)
		return 0;	/* trimmed may be NULL */
	memcpy(ids, c->trimmed, n * sizeof *ids);
	memmove(c->trimmed, c->trimmed + n, (c->ntrimmed - n) * sizeof *c->trimmed);
	c->ntrimmed -= n;
	return n;
}

uint64_t catalog_gc_floor(const struct catalog *c)
{
	uint64_t floor = UINT64_MAX;
	size_t fulls = 0;
	for (size_t i = 0; i < c->nck; i++) {
		if (c->ck[i].kind != CAT_CKPT_FULL)
			continue;
		fulls++;
		if (c->ck[i].upto < floor)
			floor = c->ck[i].upto;
	}
	return fulls >= 2 ? floor : 0;
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
		if (catalog_removed(c, id) || catalog_lost(c, id))
			return false;
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

int catalog_dup(const struct catalog *c, struct catalog *out)
{
	memset(out, 0, sizeof *out);
	out->seq = c->seq;
	out->seg_hi = c->seg_hi;
	out->extra = malloc((c->nextra ? c->nextra : 1) * sizeof *out->extra);
	out->ck = malloc((c->nck ? c->nck : 1) * sizeof *out->ck);
	out->rm = malloc((c->nrm ? c->nrm : 1) * sizeof *out->rm);
	out->lost = malloc((c->nlost ? c->nlost : 1) * sizeof *out->lost);
	if (!out->extra || !out->ck || !out->rm || !out->lost) {
		catalog_free(out);
		return -ENOMEM;
	}
	if (c->nextra)
		memcpy(out->extra, c->extra, c->nextra * sizeof *out->extra);
	if (c->nck)
		memcpy(out->ck, c->ck, c->nck * sizeof *out->ck);
	if (c->nrm)
		memcpy(out->rm, c->rm, c->nrm * sizeof *out->rm);
	out->nextra = out->capextra = c->nextra;
	out->nck = out->capck = c->nck;
	out->nrm = out->caprm = c->nrm;
	if (c->nlost)
		memcpy(out->lost, c->lost, c->nlost * sizeof *out->lost);
	out->nlost = out->caplost = c->nlost;
	return 0;
}

void catalog_free(struct catalog *c)
{
	free(c->extra);
	free(c->ck);
	free(c->rm);
	free(c->lost);
	free(c->trimmed);
	memset(c, 0, sizeof *c);
}

uint32_t catalog_ckpt_kind(const uint8_t hdr[CAT_CKPT_HDR])
{
	if (memcmp(hdr, "QSFSCKP1", 8))
		return 0;
	uint32_t kind = get_le32(hdr + 12);
	return kind == CAT_CKPT_FULL || kind == CAT_CKPT_DELTA ? kind : 0;
}

uint64_t catalog_ckpt_upto(const uint8_t hdr[CAT_CKPT_HDR])
{
	return catalog_ckpt_kind(hdr) ? get_le64(hdr + 48) : 0;
}
