/* stor/codec.c - see codec.h */
#include "codec.h"

#include <erasurecode.h>
#include <errno.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zstd.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "../common/endian.h"
#include "../common/fsutil.h"

#define SHARD_MAGIC "QSFSSHD1"
#define SHARD_VERSION 1u
#define AD_MAGIC "QSFSSTR1"
#define AD_SIZE 56u
#define TAG_SIZE 16u	/* both AEADs */

struct codec {
	struct codec_params p;
	int ec;
	ZSTD_CCtx *zc;
	ZSTD_DCtx *zd;
	uint8_t *in;		/* STRIPE_SIZE: a stripe of the object */
	uint8_t *plain;		/* flag byte + compressed or raw stripe */
	uint8_t *ct;		/* plain + tag */
	size_t plain_cap;
	XXH3_state_t sums[SHARD_MAX];
};

void codec_free(struct codec *c)
{
	if (!c)
		return;
	if (c->ec > 0)
		liberasurecode_instance_destroy(c->ec);
	ZSTD_freeCCtx(c->zc);
	ZSTD_freeDCtx(c->zd);
	free(c->in);
	free(c->plain);
	free(c->ct);
	sodium_memzero(c->p.key, sizeof c->p.key);
	free(c);
}

int codec_new(const struct codec_params *p, struct codec **out)
{
	if (p->k < 1 || p->m < 1 || p->k + p->m > SHARD_MAX || p->zstd_level < 0 ||
	    p->zstd_level > 19)
		return -EINVAL;
	if (sodium_init() < 0)
		return -EIO;
	struct codec *c = calloc(1, sizeof *c);
	if (!c)
		return -ENOMEM;
	c->p = *p;
	if (!c->p.cipher)
		c->p.cipher = crypto_aead_aes256gcm_is_available() ? CIPHER_AES256GCM
								   : CIPHER_XCHACHA20;
	if (c->p.cipher == CIPHER_AES256GCM && !crypto_aead_aes256gcm_is_available()) {
		codec_free(c);
		return -ENOTSUP;
	}
	struct ec_args a = { .k = (int)p->k, .m = (int)p->m, .hd = (int)p->m + 1,
			     .ct = CHKSUM_NONE };
	c->ec = liberasurecode_instance_create(EC_BACKEND_ISA_L_RS_CAUCHY, &a);
	c->plain_cap = 1 + ZSTD_compressBound(STRIPE_SIZE);
	c->zc = ZSTD_createCCtx();
	c->zd = ZSTD_createDCtx();
	c->in = malloc(STRIPE_SIZE);
	c->plain = malloc(c->plain_cap);
	c->ct = malloc(c->plain_cap + TAG_SIZE);
	if (c->ec <= 0 || !c->zc || !c->zd || !c->in || !c->plain || !c->ct) {
		int r = c->ec <= 0 ? -ENOTSUP : -ENOMEM;
		codec_free(c);
		return r;
	}
	*out = c;
	return 0;
}

enum codec_cipher codec_cipher(const struct codec *c)
{
	return c->p.cipher;
}

static void object_key(const struct codec *c, uint64_t id, const uint8_t salt[16],
		       uint8_t key[32])
{
	uint8_t msg[24];
	put_le64(msg, id);
	memcpy(msg + 8, salt, 16);
	crypto_generichash(key, 32, msg, sizeof msg, c->p.key, sizeof c->p.key);
}

static void make_ad(const struct codec *c, uint64_t id, uint64_t size, uint64_t nstripes,
		    uint64_t s, uint8_t ad[AD_SIZE])
{
	memcpy(ad, AD_MAGIC, 8);
	memcpy(ad + 8, c->p.volume_id, 16);
	put_le64(ad + 24, id);
	put_le64(ad + 32, size);
	put_le64(ad + 40, nstripes);
	put_le64(ad + 48, s);
}

static void make_nonce(uint64_t s, uint8_t nonce[24])
{
	memset(nonce, 0, 24);
	put_le64(nonce, s);
}

static int seal_stripe(struct codec *c, enum codec_cipher ci, const uint8_t key[32],
		       const uint8_t ad[AD_SIZE], uint64_t s, size_t plen, size_t *ctlen)
{
	uint8_t nonce[24];
	make_nonce(s, nonce);
	unsigned long long n;
	int r = ci == CIPHER_AES256GCM
		? crypto_aead_aes256gcm_encrypt(c->ct, &n, c->plain, plen, ad, AD_SIZE, NULL,
						nonce, key)
		: crypto_aead_xchacha20poly1305_ietf_encrypt(c->ct, &n, c->plain, plen, ad,
							     AD_SIZE, NULL, nonce, key);
	*ctlen = (size_t)n;
	return r ? -EIO : 0;
}

static int open_stripe(struct codec *c, enum codec_cipher ci, const uint8_t key[32],
		       const uint8_t ad[AD_SIZE], uint64_t s, const uint8_t *ct, size_t ctlen,
		       size_t *plen)
{
	uint8_t nonce[24];
	make_nonce(s, nonce);
	unsigned long long n;
	if (ctlen < TAG_SIZE || ctlen - TAG_SIZE > c->plain_cap)
		return -EBADMSG;
	int r = ci == CIPHER_AES256GCM
		? crypto_aead_aes256gcm_decrypt(c->plain, &n, NULL, ct, ctlen, ad, AD_SIZE,
						nonce, key)
		: crypto_aead_xchacha20poly1305_ietf_decrypt(c->plain, &n, NULL, ct, ctlen, ad,
							     AD_SIZE, nonce, key);
	*plen = (size_t)n;
	return r ? -EBADMSG : 0;
}

/* Hand bytes of shard i to the sink, keeping its running checksum. */
static int emit(struct codec *c, shard_sink sink, void *arg, unsigned i, const void *buf,
		size_t len)
{
	XXH3_64bits_update(&c->sums[i], buf, len);
	return sink(arg, i, buf, len);
}

int codec_encode(struct codec *c, uint64_t object_id, int fd, uint64_t size,
		 shard_sink sink, void *arg)
{
	unsigned n = c->p.k + c->p.m;
	uint64_t nstripes = (size + STRIPE_SIZE - 1) / STRIPE_SIZE;
	uint8_t salt[16], key[32], hdr[SHARD_HDR_SIZE];
	randombytes_buf(salt, sizeof salt);
	object_key(c, object_id, salt, key);
	int r = 0;
	for (unsigned i = 0; i < n && !r; i++) {
		memset(hdr, 0, sizeof hdr);
		memcpy(hdr, SHARD_MAGIC, 8);
		put_le32(hdr + 8, SHARD_VERSION);
		hdr[12] = (uint8_t)i;
		hdr[13] = (uint8_t)c->p.k;
		hdr[14] = (uint8_t)c->p.m;
		hdr[15] = (uint8_t)c->p.cipher;
		memcpy(hdr + 16, c->p.volume_id, 16);
		put_le64(hdr + 32, object_id);
		put_le64(hdr + 40, size);
		put_le64(hdr + 48, nstripes);
		memcpy(hdr + 56, salt, 16);
		put_le32(hdr + 72, STRIPE_SIZE);
		put_le64(hdr + 88, XXH3_64bits(hdr, 88));
		XXH3_64bits_reset(&c->sums[i]);
		r = emit(c, sink, arg, i, hdr, sizeof hdr);
	}
	for (uint64_t s = 0; s < nstripes && !r; s++) {
		size_t len = (size_t)(size - s * STRIPE_SIZE < STRIPE_SIZE ? size - s * STRIPE_SIZE
									    : STRIPE_SIZE);
		ssize_t got = fs_pread_full(fd, c->in, len, (off_t)(s * STRIPE_SIZE));
		if (got < 0) {
			r = (int)got;
			break;
		}
		if ((size_t)got != len) {
			r = -EIO;	/* the file shrank under us */
			break;
		}
		size_t plen = 0;
		if (c->p.zstd_level > 0) {
			size_t z = ZSTD_compressCCtx(c->zc, c->plain + 1, c->plain_cap - 1, c->in, len,
						     c->p.zstd_level);
			if (!ZSTD_isError(z) && z < len) {
				c->plain[0] = 1;
				plen = 1 + z;
			}
		}
		if (!plen) {
			c->plain[0] = 0;
			memcpy(c->plain + 1, c->in, len);
			plen = 1 + len;
		}
		uint8_t ad[AD_SIZE];
		make_ad(c, object_id, size, nstripes, s, ad);
		size_t ctlen;
		r = seal_stripe(c, c->p.cipher, key, ad, s, plen, &ctlen);
		if (r)
			break;
		char **data = NULL, **parity = NULL;
		uint64_t fraglen = 0;
		int e = liberasurecode_encode(c->ec, (const char *)c->ct, ctlen, &data, &parity,
					      &fraglen);
		if (e) {
			r = -EIO;
			break;
		}
		uint8_t lb[4];
		put_le32(lb, (uint32_t)fraglen);
		for (unsigned i = 0; i < n && !r; i++) {
			const char *frag = i < c->p.k ? data[i] : parity[i - c->p.k];
			r = emit(c, sink, arg, i, lb, 4);
			if (!r)
				r = emit(c, sink, arg, i, frag, fraglen);
		}
		liberasurecode_encode_cleanup(c->ec, data, parity);
	}
	for (unsigned i = 0; i < n && !r; i++) {
		uint8_t t[8];
		put_le64(t, XXH3_64bits_digest(&c->sums[i]));
		r = sink(arg, i, t, 8);
	}
	sodium_memzero(key, sizeof key);
	return r;
}

struct good {
	const struct shard_in *in;
	unsigned index;
	const uint8_t *pos;
};

static void addwhy(char *why, size_t n, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void addwhy(char *why, size_t n, const char *fmt, ...)
{
	size_t l = strlen(why);
	if (l + 1 >= n)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why + l, n - l, fmt, ap);
	va_end(ap);
}

/* Check one shard fully. Returns NULL if fine, else what is wrong. ref is
 * the header of the first good shard (NULL for the first). */
static const char *check_shard(const struct codec *c, uint64_t id, const struct shard_in *s,
			       const uint8_t *ref)
{
	const uint8_t *b = s->buf;
	if (s->len < SHARD_HDR_SIZE + 8)
		return "too short";
	if (memcmp(b, SHARD_MAGIC, 8) || get_le64(b + 88) != XXH3_64bits(b, 88))
		return "bad header";
	if (get_le32(b + 8) != SHARD_VERSION)
		return "unknown shard format version";
	if (memcmp(b + 16, c->p.volume_id, 16))
		return "belongs to another volume";
	if (get_le64(b + 32) != id)
		return "belongs to another object";
	if (b[13] != c->p.k || b[14] != c->p.m || b[12] >= c->p.k + c->p.m)
		return "coded with other k+m";
	if (get_le32(b + 72) != STRIPE_SIZE)
		return "other stripe size";
	if (get_le64(b + s->len - 8) != XXH3_64bits(b, s->len - 8))
		return "checksum mismatch (corrupt or truncated)";
	if (ref && (memcmp(b + 15, ref + 15, 1) || memcmp(b + 40, ref + 40, 32)))
		return "from another encoding of this object";
	/* structure: every stripe's fragment inside the shard */
	uint64_t nstripes = get_le64(b + 48);
	if (nstripes != (get_le64(b + 40) + STRIPE_SIZE - 1) / STRIPE_SIZE)
		return "stripe count does not match the size";
	const uint8_t *p = b + SHARD_HDR_SIZE, *end = b + s->len - 8;
	for (uint64_t i = 0; i < nstripes; i++) {
		if (end - p < 4 || (uint64_t)(end - p - 4) < get_le32(p))
			return "fragments run past the end";
		p += 4 + get_le32(p);
	}
	return p == end ? NULL : "bytes after the last fragment";
}

int codec_decode(struct codec *c, uint64_t object_id, const struct shard_in *in,
		 unsigned n, int fd, char *why, size_t whylen)
{
	why[0] = 0;
	struct good g[SHARD_MAX];
	unsigned ng = 0;
	bool seen[SHARD_MAX] = { false };
	const uint8_t *ref = NULL;
	for (unsigned j = 0; j < n; j++) {
		const char *bad = in[j].buf ? check_shard(c, object_id, &in[j], ref) : "missing";
		if (!bad && seen[in[j].buf[12]])
			bad = "duplicate of another shard";
		if (bad) {
			addwhy(why, whylen, "%s%s: %s", why[0] ? "; " : "",
			       in[j].from ? in[j].from : "?", bad);
			continue;
		}
		if (ng == SHARD_MAX)
			break;
		ref = ref ? ref : in[j].buf;
		seen[in[j].buf[12]] = true;
		g[ng++] = (struct good){ &in[j], in[j].buf[12], in[j].buf + SHARD_HDR_SIZE };
	}
	if (ng < c->p.k) {
		char tail[1024];
		snprintf(tail, sizeof tail, "%s", why);
		snprintf(why, whylen, "object %llu: %u usable shards, %u needed (%s)",
			 (unsigned long long)object_id, ng, c->p.k, tail[0] ? tail : "none given");
		return -EIO;
	}
	enum codec_cipher ci = ref[15];
	if (ci != CIPHER_AES256GCM && ci != CIPHER_XCHACHA20) {
		snprintf(why, whylen, "object %llu: unknown cipher %u", (unsigned long long)object_id, ci);
		return -EBADMSG;
	}
	if (ci == CIPHER_AES256GCM && !crypto_aead_aes256gcm_is_available()) {
		snprintf(why, whylen, "object %llu is encrypted with AES-256-GCM, which this CPU "
			 "cannot run through libsodium (no AES-NI)", (unsigned long long)object_id);
		return -ENOTSUP;
	}
	uint64_t size = get_le64(ref + 40), nstripes = get_le64(ref + 48);
	uint8_t key[32];
	object_key(c, object_id, ref + 56, key);
	if (ftruncate(fd, 0) < 0)
		return -errno;
	int r = 0;
	for (uint64_t s = 0; s < nstripes && !r; s++) {
		char *frags[SHARD_MAX];
		uint32_t fraglen = get_le32(g[0].pos);
		unsigned nf = 0;
		for (unsigned j = 0; j < ng; j++) {
			uint32_t l = get_le32(g[j].pos);
			if (l == fraglen)
				frags[nf++] = (char *)g[j].pos + 4;
			g[j].pos += 4 + l;
		}
		char *out = NULL;
		uint64_t outlen = 0;
		if (nf < c->p.k ||
		    liberasurecode_decode(c->ec, frags, (int)nf, fraglen, 1, &out, &outlen)) {
			snprintf(why, whylen, "object %llu stripe %llu: erasure decoding failed",
				 (unsigned long long)object_id, (unsigned long long)s);
			r = -EIO;
			break;
		}
		uint8_t ad[AD_SIZE];
		make_ad(c, object_id, size, nstripes, s, ad);
		size_t plen;
		r = open_stripe(c, ci, key, ad, s, (const uint8_t *)out, (size_t)outlen, &plen);
		liberasurecode_decode_cleanup(c->ec, out);
		if (r) {
			snprintf(why, whylen, "object %llu stripe %llu: authentication failed (wrong "
				 "key, or data tampered with)", (unsigned long long)object_id,
				 (unsigned long long)s);
			break;
		}
		size_t want = (size_t)(size - s * STRIPE_SIZE < STRIPE_SIZE ? size - s * STRIPE_SIZE
									     : STRIPE_SIZE);
		const uint8_t *data = c->plain + 1;
		size_t dlen = plen - 1;
		if (plen < 1 || c->plain[0] > 1) {
			dlen = SIZE_MAX;
		} else if (c->plain[0] == 1) {
			dlen = ZSTD_decompressDCtx(c->zd, c->in, STRIPE_SIZE, c->plain + 1, plen - 1);
			data = c->in;
			if (ZSTD_isError(dlen))
				dlen = SIZE_MAX;
		}
		if (dlen != want) {
			snprintf(why, whylen, "object %llu stripe %llu: bad stripe contents",
				 (unsigned long long)object_id, (unsigned long long)s);
			r = -EBADMSG;
			break;
		}
		r = fs_pwrite_all(fd, data, want, (off_t)(s * STRIPE_SIZE));
		if (r)
			snprintf(why, whylen, "object %llu: writing the result failed: %s",
				 (unsigned long long)object_id, strerror(-r));
	}
	sodium_memzero(key, sizeof key);
	return r;
}
