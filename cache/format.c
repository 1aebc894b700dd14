/* cache/format.c - see format.h */
#include "format.h"

#include <errno.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

uint64_t sum64(const void *buf, size_t len, uint64_t seed)
{
	return XXH3_64bits_withSeed(buf, len, seed);
}

struct sum_state {
	XXH3_state_t st;
};

struct sum_state *sum_new(uint64_t seed)
{
	struct sum_state *s = (struct sum_state *)XXH3_createState();
	if (s)
		XXH3_64bits_reset_withSeed(&s->st, seed);
	return s;
}

void sum_update(struct sum_state *s, const void *buf, size_t len)
{
	XXH3_64bits_update(&s->st, buf, len);
}

uint64_t sum_digest(const struct sum_state *s)
{
	return XXH3_64bits_digest(&s->st);
}

void sum_reset(struct sum_state *s, uint64_t seed)
{
	XXH3_64bits_reset_withSeed(&s->st, seed);
}

void sum_free(struct sum_state *s)
{
	XXH3_freeState(&s->st);
}

void seg_hdr_encode(const struct seg_hdr *h, uint8_t out[SEG_HDR_SIZE])
{
	memset(out, 0, SEG_HDR_SIZE);
	memcpy(out, SEG_MAGIC, 8);
	put_le32(out + 8, SEG_VERSION);
	put_le32(out + 12, SEG_HDR_SIZE);
	memcpy(out + 16, h->volume_id, VOLUME_ID_SIZE);
	put_le64(out + 32, h->seg_id);
	put_le64(out + 40, h->created);
	put_le64(out + 56, sum64(out, 56, 0));
}

int seg_hdr_decode(const uint8_t in[SEG_HDR_SIZE], struct seg_hdr *h)
{
	if (memcmp(in, SEG_MAGIC, 8) || get_le64(in + 56) != sum64(in, 56, 0))
		return -EBADMSG;
	uint32_t v = get_le32(in + 8);
	if (v < SEG_VERSION_MIN || v > SEG_VERSION || get_le32(in + 12) != SEG_HDR_SIZE)
		return -EPROTONOSUPPORT;
	h->version = v;
	memcpy(h->volume_id, in + 16, VOLUME_ID_SIZE);
	h->seg_id = get_le64(in + 32);
	h->created = get_le64(in + 40);
	return 0;
}

void rec_encode_hdr(uint8_t out[REC_HDR_SIZE], uint64_t seg_id, uint8_t type,
		    const void *key, size_t klen, const void *val, size_t vlen)
{
	out[8] = type;
	out[9] = (uint8_t)klen;
	out[10] = out[11] = 0;
	put_le32(out + 12, (uint32_t)vlen);
	XXH3_state_t st;
	XXH3_INITSTATE(&st);
	XXH3_64bits_reset_withSeed(&st, seg_id);
	XXH3_64bits_update(&st, out + 8, 8);
	if (klen)
		XXH3_64bits_update(&st, key, klen);
	if (vlen)
		XXH3_64bits_update(&st, val, vlen);
	put_le64(out, XXH3_64bits_digest(&st));
}

int rec_decode_hdr(const uint8_t in[REC_HDR_SIZE], struct rec_hdr *h)
{
	h->sum = get_le64(in);
	h->type = in[8];
	h->klen = in[9];
	h->vlen = get_le32(in + 12);
	if (h->type < REC_PUT || h->type > REC_BATCH || in[10] || in[11])
		return -EBADMSG;
	return 0;
}

bool rec_verify_parts(const uint8_t hdr[REC_HDR_SIZE], uint64_t seg_id,
		      const void *key, size_t klen, const void *val, size_t vlen)
{
	XXH3_state_t st;
	XXH3_INITSTATE(&st);
	XXH3_64bits_reset_withSeed(&st, seg_id);
	XXH3_64bits_update(&st, hdr + 8, 8);
	if (klen)
		XXH3_64bits_update(&st, key, klen);
	if (vlen)
		XXH3_64bits_update(&st, val, vlen);
	return XXH3_64bits_digest(&st) == get_le64(hdr);
}

bool rec_verify(const uint8_t *buf, uint64_t seg_id)
{
	size_t klen = buf[9], vlen = get_le32(buf + 12);
	return rec_verify_parts(buf, seg_id, buf + REC_HDR_SIZE, klen,
				buf + REC_HDR_SIZE + klen, vlen);
}

void seal_encode(const struct seal_info *s, uint8_t out[SEAL_VAL_SIZE])
{
	put_le64(out, s->nrecords);
	put_le64(out + 8, s->seal_off);
	put_le64(out + 16, s->content_sum);
}

void seal_decode(const uint8_t in[SEAL_VAL_SIZE], struct seal_info *s)
{
	s->nrecords = get_le64(in);
	s->seal_off = get_le64(in + 8);
	s->content_sum = get_le64(in + 16);
}

void batch_encode(const struct batch_info *b, uint8_t out[BATCH_VAL_SIZE])
{
	put_le32(out, b->count);
	put_le32(out + 4, 0);
	put_le64(out + 8, b->bytes);
}

int batch_decode(const uint8_t in[BATCH_VAL_SIZE], struct batch_info *b)
{
	b->count = get_le32(in);
	b->bytes = get_le64(in + 8);
	if (get_le32(in + 4) || b->count < 2 || b->count > BATCH_MAX_COUNT)
		return -EBADMSG;
	return 0;
}
