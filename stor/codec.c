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
#define SHARD_VERSION 2u
#define FRAG_HDR 12u	/* u32 length, u64 XXH3 */
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

/* A fragment's checksum: seeded with its place, so a fragment moved to
 * another stripe or shard does not pass. */
static uint64_t frag_sum(const void *frag, size_t len, uint64_t stripe, unsigned shard)
{
	return XXH3_64bits_withSeed(frag, len, stripe << 8 | shard);
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
		r = sink(arg, i, hdr, sizeof hdr);
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
		for (unsigned i = 0; i < n && !r; i++) {
			const char *frag = i < c->p.k ? data[i] : parity[i - c->p.k];
			uint8_t fh[FRAG_HDR];
			put_le32(fh, (uint32_t)fraglen);
			put_le64(fh + 4, frag_sum(frag, fraglen, s, i));
			r = sink(arg, i, fh, sizeof fh);
			if (!r)
				r = sink(arg, i, frag, fraglen);
		}
		liberasurecode_encode_cleanup(c->ec, data, parity);
	}
	sodium_memzero(key, sizeof key);
	return r;
}

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

/* --- streaming decode --------------------------------------------------------
 *
 * Each slot receives one shard's bytes in order. Its buffer holds what has
 * arrived and is not consumed yet: [off, len) is unparsed; the record at off
 * is the fragment of stripe `next`. A stripe is decoded as soon as k slots
 * hold a good fragment for it; slots that lag behind skip the fragments of
 * stripes already written when they arrive.
 */

enum slot_state { SLOT_WAIT_HDR, SLOT_OK, SLOT_DEAD };

struct slot {
	enum slot_state st;
	bool ended;		/* no more bytes will come */
	bool abandoned;		/* given up on as slow: not damage */
	unsigned index;		/* shard index, from the header */
	uint8_t *buf;
	size_t len, cap, off;
	uint64_t next;		/* stripe of the record at off */
	uint64_t bad_frags;
	char from[160];
	char err[160];		/* why it is dead, or its first bad fragment */
};

struct codec_dec {
	struct codec *c;
	uint64_t id;
	int fd;
	unsigned n;
	struct slot sl[SHARD_MAX];
	bool seen[SHARD_MAX];	/* shard indices some slot has */
	unsigned good_hdrs;
	uint8_t ref[SHARD_HDR_SIZE];	/* the first good header */
	enum codec_cipher ci;
	uint64_t size, nstripes, s;	/* s: the next stripe to write */
	uint8_t key[32];
	bool done;
};

static void slot_kill(struct slot *sl, const char *why)
{
	sl->st = SLOT_DEAD;
	snprintf(sl->err, sizeof sl->err, "%s", why);
	free(sl->buf);
	sl->buf = NULL;
	sl->len = sl->cap = sl->off = 0;
}

int codec_dec_new(struct codec *c, uint64_t object_id, int fd, struct codec_dec **out)
{
	struct codec_dec *d = calloc(1, sizeof *d);
	if (!d)
		return -ENOMEM;
	d->c = c;
	d->id = object_id;
	d->fd = fd;
	if (ftruncate(fd, 0) < 0) {
		int r = -errno;
		free(d);
		return r;
	}
	*out = d;
	return 0;
}

unsigned codec_dec_add(struct codec_dec *d, const char *from)
{
	if (d->n == SHARD_MAX)
		return SHARD_MAX;
	struct slot *sl = &d->sl[d->n];
	snprintf(sl->from, sizeof sl->from, "%s", from ? from : "?");
	return d->n++;
}

void codec_dec_free(struct codec_dec *d)
{
	if (!d)
		return;
	for (unsigned i = 0; i < d->n; i++)
		free(d->sl[i].buf);
	sodium_memzero(d->key, sizeof d->key);
	free(d);
}

/* Check a shard header. NULL if fine, else what is wrong. */
static const char *check_header(struct codec_dec *d, const uint8_t *b)
{
	const struct codec *c = d->c;
	if (memcmp(b, SHARD_MAGIC, 8) || get_le64(b + 88) != XXH3_64bits(b, 88))
		return "bad header";
	if (get_le32(b + 8) != SHARD_VERSION)
		return "unknown shard format version";
	if (memcmp(b + 16, c->p.volume_id, 16))
		return "belongs to another volume";
	if (get_le64(b + 32) != d->id)
		return "belongs to another object";
	if (b[13] != c->p.k || b[14] != c->p.m || b[12] >= c->p.k + c->p.m)
		return "coded with other k+m";
	if (get_le32(b + 72) != STRIPE_SIZE)
		return "other stripe size";
	if (get_le64(b + 48) != (get_le64(b + 40) + STRIPE_SIZE - 1) / STRIPE_SIZE)
		return "stripe count does not match the size";
	if (d->good_hdrs && (memcmp(b + 15, d->ref + 15, 1) || memcmp(b + 40, d->ref + 40, 32)))
		return "from another encoding of this object";
	if (d->seen[b[12]])
		return "duplicate of another shard";
	return NULL;
}

static void take_header(struct codec_dec *d, struct slot *sl)
{
	const char *bad = check_header(d, sl->buf);
	if (bad) {
		slot_kill(sl, bad);
		return;
	}
	if (!d->good_hdrs++) {
		memcpy(d->ref, sl->buf, SHARD_HDR_SIZE);
		d->ci = sl->buf[15];
		d->size = get_le64(sl->buf + 40);
		d->nstripes = get_le64(sl->buf + 48);
		object_key(d->c, d->id, sl->buf + 56, d->key);
	}
	sl->index = sl->buf[12];
	d->seen[sl->index] = true;
	sl->st = SLOT_OK;
	sl->off = SHARD_HDR_SIZE;
	sl->next = 0;
}

int codec_dec_feed(struct codec_dec *d, unsigned slot, const void *buf, size_t len)
{
	struct slot *sl = &d->sl[slot];
	if (sl->st == SLOT_DEAD || d->done || !len)
		return 0;
	if (sl->off && sl->len + len > sl->cap) {	/* drop what was consumed first */
		memmove(sl->buf, sl->buf + sl->off, sl->len - sl->off);
		sl->len -= sl->off;
		sl->off = 0;
	}
	if (sl->len + len > sl->cap) {
		size_t cap = sl->cap ? sl->cap : 64 * 1024;
		while (cap < sl->len + len)
			cap *= 2;
		uint8_t *nb = realloc(sl->buf, cap);
		if (!nb)
			return -ENOMEM;
		sl->buf = nb;
		sl->cap = cap;
	}
	memcpy(sl->buf + sl->len, buf, len);
	sl->len += len;
	if (sl->st == SLOT_WAIT_HDR && sl->len >= SHARD_HDR_SIZE)
		take_header(d, sl);
	return 0;
}

void codec_dec_end(struct codec_dec *d, unsigned slot)
{
	struct slot *sl = &d->sl[slot];
	sl->ended = true;
	if (sl->st == SLOT_WAIT_HDR)
		slot_kill(sl, sl->len ? "too short" : "missing");
}

void codec_dec_fail(struct codec_dec *d, unsigned slot, const char *why)
{
	struct slot *sl = &d->sl[slot];
	sl->ended = true;
	if (sl->st != SLOT_DEAD)
		slot_kill(sl, why);
}

void codec_dec_abandon(struct codec_dec *d, unsigned slot)
{
	struct slot *sl = &d->sl[slot];
	sl->ended = true;
	if (sl->st == SLOT_DEAD)
		return;	/* failed before: that stays damage */
	sl->abandoned = true;
	char err[sizeof sl->err];
	memcpy(err, sl->err, sizeof err);
	slot_kill(sl, sl->bad_frags ? err : "given up on: slower than the other shards");
}

/* Advance slot sl to a complete record of stripe d->s. Returns its fragment
 * (and length) or NULL: not arrived yet, or corrupt (then skipped). */
static const uint8_t *slot_frag(struct codec_dec *d, struct slot *sl, uint32_t *flen)
{
	while (sl->st == SLOT_OK && sl->next <= d->s) {
		size_t avail = sl->len - sl->off;
		if (avail < FRAG_HDR)
			goto short_;
		const uint8_t *p = sl->buf + sl->off;
		uint32_t l = get_le32(p);
		if (l > 2 * STRIPE_SIZE) {
			slot_kill(sl, "impossible fragment length (corrupt)");
			return NULL;
		}
		if (avail - FRAG_HDR < l)
			goto short_;
		if (sl->next < d->s) {	/* already written without this slot */
			sl->off += FRAG_HDR + l;
			sl->next++;
			continue;
		}
		if (frag_sum(p + FRAG_HDR, l, sl->next, sl->index) != get_le64(p + 4)) {
			if (!sl->bad_frags++)
				snprintf(sl->err, sizeof sl->err,
					 "checksum mismatch in stripe %llu (corrupt)",
					 (unsigned long long)sl->next);
			sl->off += FRAG_HDR + l;
			sl->next++;
			continue;
		}
		*flen = l;
		return p + FRAG_HDR;
	}
	return NULL;
short_:
	if (sl->ended)
		slot_kill(sl, "truncated");
	return NULL;
}

static int write_stripe(struct codec_dec *d, char **frags, unsigned nf, uint32_t fraglen,
			char *why, size_t whylen)
{
	struct codec *c = d->c;
	uint64_t s = d->s;
	unsigned long long id = (unsigned long long)d->id;
	char *out = NULL;
	uint64_t outlen = 0;
	if (liberasurecode_decode(c->ec, frags, (int)nf, fraglen, 1, &out, &outlen)) {
		snprintf(why, whylen, "object %llu stripe %llu: erasure decoding failed", id,
			 (unsigned long long)s);
		return -EIO;
	}
	uint8_t ad[AD_SIZE];
	make_ad(c, d->id, d->size, d->nstripes, s, ad);
	size_t plen;
	int r = open_stripe(c, d->ci, d->key, ad, s, (const uint8_t *)out, (size_t)outlen, &plen);
	liberasurecode_decode_cleanup(c->ec, out);
	if (r) {
		snprintf(why, whylen, "object %llu stripe %llu: authentication failed (wrong key, "
			 "or data tampered with)", id, (unsigned long long)s);
		return r;
	}
	size_t want = (size_t)(d->size - s * STRIPE_SIZE < STRIPE_SIZE ? d->size - s * STRIPE_SIZE
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
		snprintf(why, whylen, "object %llu stripe %llu: bad stripe contents", id,
			 (unsigned long long)s);
		return -EBADMSG;
	}
	r = fs_pwrite_all(d->fd, data, want, (off_t)(s * STRIPE_SIZE));
	if (r)
		snprintf(why, whylen, "object %llu: writing the result failed: %s", id,
			 strerror(-r));
	return r;
}

/* Fewer than k slots can give stripe d->s: say which and why. */
static int not_enough(struct codec_dec *d, unsigned have, char *why, size_t whylen)
{
	snprintf(why, whylen, "object %llu", (unsigned long long)d->id);
	if (d->nstripes > 1)
		addwhy(why, whylen, " stripe %llu", (unsigned long long)d->s);
	addwhy(why, whylen, ": %u usable shards, %u needed (", have, d->c->p.k);
	bool first = true;
	for (unsigned i = 0; i < d->n; i++) {
		struct slot *sl = &d->sl[i];
		if (sl->st == SLOT_OK && !sl->err[0])
			continue;
		addwhy(why, whylen, "%s%s: %s", first ? "" : "; ", sl->from,
		       sl->st == SLOT_OK ? sl->err : sl->err[0] ? sl->err : "missing");
		first = false;
	}
	addwhy(why, whylen, "%s)", first ? "none given" : "");
	return -EIO;
}

int codec_dec_step(struct codec_dec *d, char *why, size_t whylen)
{
	struct codec *c = d->c;
	why[0] = 0;
	if (d->done)
		return 1;
	unsigned waiting = 0;
	for (unsigned i = 0; i < d->n; i++)
		waiting += d->sl[i].st == SLOT_WAIT_HDR;
	if (d->good_hdrs < c->p.k) {
		if (d->good_hdrs + waiting < c->p.k)
			return not_enough(d, d->good_hdrs, why, whylen);
		return 0;
	}
	if (d->ci != CIPHER_AES256GCM && d->ci != CIPHER_XCHACHA20) {
		snprintf(why, whylen, "object %llu: unknown cipher %u", (unsigned long long)d->id,
			 d->ci);
		return -EBADMSG;
	}
	if (d->ci == CIPHER_AES256GCM && !crypto_aead_aes256gcm_is_available()) {
		snprintf(why, whylen, "object %llu is encrypted with AES-256-GCM, which this CPU "
			 "cannot run through libsodium (no AES-NI)", (unsigned long long)d->id);
		return -ENOTSUP;
	}
	while (d->s < d->nstripes) {
		char *frags[SHARD_MAX];
		struct slot *used[SHARD_MAX];
		unsigned nf = 0, pending = 0;
		uint32_t fraglen = 0;
		/* every arrived fragment is checked (so damage is seen even where
		 * it is not needed); the first k good ones are decoded */
		for (unsigned i = 0; i < d->n; i++) {
			struct slot *sl = &d->sl[i];
			uint32_t l;
			const uint8_t *f = slot_frag(d, sl, &l);
			if (!f) {
				pending += sl->st != SLOT_DEAD && !sl->ended && sl->next <= d->s;
				continue;
			}
			if (nf && l != fraglen) {
				slot_kill(sl, "fragment length differs from the other shards");
				continue;
			}
			fraglen = l;
			used[nf] = sl;
			frags[nf++] = (char *)f;
		}
		if (nf < c->p.k)
			return nf + pending < c->p.k ? not_enough(d, nf, why, whylen) : 0;
		int r = write_stripe(d, frags, c->p.k, fraglen, why, whylen);
		if (r)
			return r;
		for (unsigned j = 0; j < nf; j++) {
			used[j]->off += FRAG_HDR + fraglen;
			used[j]->next++;
		}
		d->s++;
		/* drop consumed bytes so a slot holds about one piece */
		for (unsigned i = 0; i < d->n; i++) {
			struct slot *sl = &d->sl[i];
			if (sl->st == SLOT_OK && sl->off > sl->cap / 2) {
				memmove(sl->buf, sl->buf + sl->off, sl->len - sl->off);
				sl->len -= sl->off;
				sl->off = 0;
			}
		}
	}
	d->done = true;
	return 1;
}

bool codec_dec_wants(const struct codec_dec *d, unsigned slot)
{
	return !d->done && d->sl[slot].st != SLOT_DEAD;
}

bool codec_dec_hungry(const struct codec_dec *d, unsigned slot)
{
	const struct slot *sl = &d->sl[slot];
	if (d->done || sl->st == SLOT_DEAD || sl->ended)
		return false;
	if (sl->st == SLOT_WAIT_HDR)
		return true;
	/* the records from off on, those of stripes already written skipped */
	size_t off = sl->off;
	for (uint64_t next = sl->next;; next++) {
		size_t avail = sl->len - off;
		if (avail < FRAG_HDR)
			return true;
		uint32_t l = get_le32(sl->buf + off);
		if (l > 2 * STRIPE_SIZE)
			return false;	/* corrupt: the next step drops the slot */
		if (avail - FRAG_HDR < l)
			return true;
		if (next >= d->s)
			return false;
		off += FRAG_HDR + l;
	}
}

uint64_t codec_dec_size(const struct codec_dec *d)
{
	return d->size;
}

unsigned codec_dec_damage(const struct codec_dec *d, char *buf, size_t n)
{
	unsigned bad = 0;
	buf[0] = 0;
	for (unsigned i = 0; i < d->n; i++) {
		const struct slot *sl = &d->sl[i];
		if ((sl->st == SLOT_OK || sl->abandoned) && !sl->bad_frags)
			continue;
		addwhy(buf, n, "%s%s: %s", bad ? "; " : "", sl->from,
		       sl->err[0] ? sl->err : "missing");
		bad++;
	}
	return bad;
}

int codec_decode(struct codec *c, uint64_t object_id, const struct shard_in *in,
		 unsigned n, int fd, char *why, size_t whylen)
{
	struct codec_dec *d;
	why[0] = 0;
	int r = codec_dec_new(c, object_id, fd, &d);
	if (r)
		return r;
	for (unsigned j = 0; j < n && !r; j++) {
		unsigned slot = codec_dec_add(d, in[j].from);
		if (slot == SHARD_MAX)
			break;
		if (in[j].buf)
			r = codec_dec_feed(d, slot, in[j].buf, in[j].len);
		codec_dec_end(d, slot);
	}
	if (!r)
		r = codec_dec_step(d, why, whylen);
	codec_dec_free(d);
	return r == 1 ? 0 : r ? r : -EIO;
}
