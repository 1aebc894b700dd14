/* stor/objstore.c - see objstore.h */
#include "objstore.h"

#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "../common/endian.h"

#define META_MAGIC "QSFSMET1"
#define META_VERSION 1u
#define META_NAME_MAX 256	/* a backend's display name */

struct shard_meta {
	char backend[META_NAME_MAX];
	uint64_t len, sum;
	uint32_t pieces;
};

struct obj_meta {
	uint64_t size;
	unsigned k, m;
	struct shard_meta sh[SHARD_MAX];
};

/* --- upload: a sink that writes pieces as they fill ------------------------- */

struct upload {
	struct objstore *s;
	const char *name;
	uint8_t *buf[SHARD_MAX];
	size_t fill[SHARD_MAX];
	struct obj_meta meta;
	XXH3_state_t sums[SHARD_MAX];
	char *why;
	size_t whylen;
};

static void shard_key(const struct objstore *s, const char *name, unsigned shard,
		      uint32_t piece, char *key, size_t n)
{
	snprintf(key, n, "%s/o/%s/%u.%u", s->volhex, name, shard, piece);
}

static int flush_piece(struct upload *u, unsigned i)
{
	char key[128];
	shard_key(u->s, u->name, i, u->meta.sh[i].pieces, key, sizeof key);
	struct backend *b = u->s->backends[i];
	int r = backend_put(b, key, u->buf[i], u->fill[i]);
	if (r) {
		snprintf(u->why, u->whylen, "object %s: shard %u to %s: %s", u->name, i,
			 backend_name(b), backend_health(b).last_error[0] ?
			 backend_health(b).last_error : strerror(-r));
		return r;
	}
	u->meta.sh[i].pieces++;
	u->fill[i] = 0;
	return 0;
}

static int upload_sink(void *arg, unsigned i, const void *buf, size_t len)
{
	struct upload *u = arg;
	const uint8_t *p = buf;
	XXH3_64bits_update(&u->sums[i], buf, len);
	u->meta.sh[i].len += len;
	while (len) {
		size_t take = OBJ_PIECE - u->fill[i];
		if (take > len)
			take = len;
		memcpy(u->buf[i] + u->fill[i], p, take);
		u->fill[i] += take;
		p += take;
		len -= take;
		if (u->fill[i] == OBJ_PIECE) {
			int r = flush_piece(u, i);
			if (r)
				return r;
		}
	}
	return 0;
}

/* --- metadata ----------------------------------------------------------------- */

static void meta_ad(const struct objstore *s, const char *name, uint8_t *ad, size_t *adlen)
{
	memcpy(ad, META_MAGIC, 8);
	memcpy(ad + 8, s->volume_id, 16);
	size_t n = strlen(name);
	memcpy(ad + 24, name, n);
	*adlen = 24 + n;
}

/* Serialise (fixed layout, little-endian) and seal. */
static int meta_seal(const struct objstore *s, const char *name, const struct obj_meta *m,
		     uint8_t **out, size_t *outlen)
{
	unsigned n = m->k + m->m;
	size_t plen = 8 + 8 + 2 + n * (META_NAME_MAX + 8 + 8 + 4);
	uint8_t *p = calloc(1, plen), *q = p;
	if (!p)
		return -ENOMEM;
	memcpy(q, META_MAGIC, 4);
	q[4] = META_VERSION;
	q += 8;
	put_le64(q, m->size);
	q += 8;
	q[0] = (uint8_t)m->k;
	q[1] = (uint8_t)m->m;
	q += 2;
	for (unsigned i = 0; i < n; i++) {
		memcpy(q, m->sh[i].backend, META_NAME_MAX);
		q += META_NAME_MAX;
		put_le64(q, m->sh[i].len);
		put_le64(q + 8, m->sh[i].sum);
		put_le32(q + 16, m->sh[i].pieces);
		q += 20;
	}
	size_t clen = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES + plen +
		      crypto_aead_xchacha20poly1305_ietf_ABYTES;
	uint8_t *c = malloc(clen);
	if (!c) {
		free(p);
		return -ENOMEM;
	}
	randombytes_buf(c, crypto_aead_xchacha20poly1305_ietf_NPUBBYTES);
	uint8_t ad[24 + OBJ_NAME_MAX];
	size_t adlen;
	meta_ad(s, name, ad, &adlen);
	unsigned long long cl;
	crypto_aead_xchacha20poly1305_ietf_encrypt(c + crypto_aead_xchacha20poly1305_ietf_NPUBBYTES,
						   &cl, p, plen, ad, adlen, NULL, c, s->meta_key);
	free(p);
	*out = c;
	*outlen = clen;
	return 0;
}

static int meta_open(const struct objstore *s, const char *name, const uint8_t *c, size_t clen,
		     struct obj_meta *m)
{
	size_t hdr = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
	if (clen < hdr + crypto_aead_xchacha20poly1305_ietf_ABYTES + 18)
		return -EBADMSG;
	size_t plen = clen - hdr - crypto_aead_xchacha20poly1305_ietf_ABYTES;
	uint8_t *p = malloc(plen);
	if (!p)
		return -ENOMEM;
	uint8_t ad[24 + OBJ_NAME_MAX];
	size_t adlen;
	meta_ad(s, name, ad, &adlen);
	unsigned long long pl;
	int r = -EBADMSG;
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(p, &pl, NULL, c + hdr, clen - hdr, ad, adlen,
						       c, s->meta_key))
		goto out;
	if (memcmp(p, META_MAGIC, 4) || p[4] != META_VERSION)
		goto out;
	memset(m, 0, sizeof *m);
	m->size = get_le64(p + 8);
	m->k = p[16];
	m->m = p[17];
	unsigned n = m->k + m->m;
	if (m->k != s->k || m->m != s->m || plen != 18 + n * (size_t)(META_NAME_MAX + 20))
		goto out;
	const uint8_t *q = p + 18;
	for (unsigned i = 0; i < n; i++) {
		memcpy(m->sh[i].backend, q, META_NAME_MAX);
		m->sh[i].backend[META_NAME_MAX - 1] = 0;
		q += META_NAME_MAX;
		m->sh[i].len = get_le64(q);
		m->sh[i].sum = get_le64(q + 8);
		m->sh[i].pieces = get_le32(q + 16);
		q += 20;
	}
	r = 0;
out:
	sodium_memzero(p, plen);
	free(p);
	return r;
}

int obj_put(struct objstore *s, struct codec *c, const char *name, uint64_t code_id,
	    int fd, uint64_t size, char *why, size_t whylen)
{
	unsigned n = s->k + s->m;
	why[0] = 0;
	if (strlen(name) >= OBJ_NAME_MAX || s->nbackends < n)
		return -EINVAL;
	struct upload *u = calloc(1, sizeof *u);
	if (!u)
		return -ENOMEM;
	*u = (struct upload){ .s = s, .name = name, .why = why, .whylen = whylen };
	u->meta.size = size;
	u->meta.k = s->k;
	u->meta.m = s->m;
	int r = 0;
	for (unsigned i = 0; i < n && !r; i++) {
		u->buf[i] = malloc(OBJ_PIECE);
		if (!u->buf[i])
			r = -ENOMEM;
		XXH3_64bits_reset(&u->sums[i]);
		snprintf(u->meta.sh[i].backend, META_NAME_MAX, "%s", backend_name(s->backends[i]));
	}
	if (!r)
		r = codec_encode(c, code_id, fd, size, upload_sink, u);
	for (unsigned i = 0; i < n && !r; i++)
		if (u->fill[i] || !u->meta.sh[i].pieces)
			r = flush_piece(u, i);
	if (r && !why[0])
		snprintf(why, whylen, "object %s: encoding failed: %s", name, strerror(-r));
	uint8_t *mc = NULL;
	size_t mclen = 0;
	if (!r) {
		for (unsigned i = 0; i < n; i++)
			u->meta.sh[i].sum = XXH3_64bits_digest(&u->sums[i]);
		r = meta_seal(s, name, &u->meta, &mc, &mclen);
	}
	if (!r) {
		char key[128];
		snprintf(key, sizeof key, "%s/m/%s", s->volhex, name);
		size_t ok = 0;
		for (size_t i = 0; i < s->nbackends; i++)
			ok += backend_put(s->backends[i], key, mc, mclen) == 0;
		if (ok < s->nbackends / 2 + 1) {
			snprintf(why, whylen, "object %s: metadata written to %zu of %zu backends, "
				 "a majority (%zu) is needed", name, ok, s->nbackends,
				 s->nbackends / 2 + 1);
			r = -EIO;
		}
	}
	free(mc);
	for (unsigned i = 0; i < n; i++)
		free(u->buf[i]);
	free(u);
	return r;
}

/* --- retrieval ------------------------------------------------------------- */

struct fetch {
	struct objstore *s;
	const char *name;
	unsigned shard;
	const struct shard_meta *sm;
	struct backend *b;
	uint8_t *buf;
	size_t len;
	char err[META_NAME_MAX + 64];
};

static struct backend *find_backend(struct objstore *s, const char *name)
{
	for (size_t i = 0; i < s->nbackends; i++)
		if (!strcmp(backend_name(s->backends[i]), name))
			return s->backends[i];
	return NULL;
}

static void *fetch_main(void *arg)
{
	struct fetch *f = arg;
	if (!f->b) {
		snprintf(f->err, sizeof f->err, "backend %s is not configured", f->sm->backend);
		return NULL;
	}
	if (f->sm->len > (uint64_t)f->sm->pieces * OBJ_PIECE) {
		snprintf(f->err, sizeof f->err, "impossible shard length in metadata");
		return NULL;
	}
	f->buf = malloc(f->sm->len ? f->sm->len : 1);
	if (!f->buf)
		return NULL;
	for (uint32_t p = 0; p < f->sm->pieces; p++) {
		char key[128];
		shard_key(f->s, f->name, f->shard, p, key, sizeof key);
		uint8_t *v;
		size_t n;
		int r = backend_get(f->b, key, &v, &n);
		if (r) {
			snprintf(f->err, sizeof f->err, "%s", r == -ENOENT ? "piece missing" :
				 backend_health(f->b).last_error[0] ? backend_health(f->b).last_error
								     : strerror(-r));
			goto fail;
		}
		if (f->len + n > f->sm->len) {
			free(v);
			snprintf(f->err, sizeof f->err, "longer than recorded");
			goto fail;
		}
		memcpy(f->buf + f->len, v, n);
		f->len += n;
		free(v);
	}
	if (f->len != f->sm->len || XXH3_64bits(f->buf, f->len) != f->sm->sum) {
		snprintf(f->err, sizeof f->err, "checksum mismatch (corrupt shard)");
		goto fail;
	}
	return NULL;
fail:
	free(f->buf);
	f->buf = NULL;
	return NULL;
}

int obj_get(struct objstore *s, struct codec *c, const char *name, uint64_t code_id,
	    int fd, char *why, size_t whylen)
{
	why[0] = 0;
	char key[128];
	snprintf(key, sizeof key, "%s/m/%s", s->volhex, name);
	struct obj_meta meta;
	int found = 0, undecryptable = 0;
	for (size_t i = 0; i < s->nbackends && !found; i++) {
		uint8_t *v;
		size_t n;
		if (backend_get(s->backends[i], key, &v, &n))
			continue;
		if (meta_open(s, name, v, n, &meta) == 0)
			found = 1;
		else
			undecryptable++;
		free(v);
	}
	if (!found) {
		if (undecryptable)
			snprintf(why, whylen, "object %s: its metadata does not open with this key "
				 "(wrong key, another volume, or tampered)", name);
		else
			snprintf(why, whylen, "object %s: no backend has its metadata", name);
		return undecryptable ? -EBADMSG : -ENOENT;
	}
	unsigned n = meta.k + meta.m;
	struct fetch f[SHARD_MAX];
	pthread_t th[SHARD_MAX];
	bool started[SHARD_MAX] = { false };
	for (unsigned i = 0; i < n; i++) {
		f[i] = (struct fetch){ .s = s, .name = name, .shard = i, .sm = &meta.sh[i],
				       .b = find_backend(s, meta.sh[i].backend) };
		started[i] = pthread_create(&th[i], NULL, fetch_main, &f[i]) == 0;
		if (!started[i])
			fetch_main(&f[i]);
	}
	for (unsigned i = 0; i < n; i++)
		if (started[i])
			pthread_join(th[i], NULL);
	struct shard_in in[SHARD_MAX];
	char from[SHARD_MAX][2 * META_NAME_MAX + 80];
	for (unsigned i = 0; i < n; i++) {
		if (f[i].buf)
			snprintf(from[i], sizeof from[i], "%s", meta.sh[i].backend);
		else
			snprintf(from[i], sizeof from[i], "%s (%s)", meta.sh[i].backend, f[i].err);
		in[i] = (struct shard_in){ f[i].buf, f[i].len, from[i] };
	}
	int r = codec_decode(c, code_id, in, n, fd, why, whylen);
	for (unsigned i = 0; i < n; i++)
		free(f[i].buf);
	return r;
}

size_t obj_meta_copies(struct objstore *s, const char *name)
{
	char key[128];
	snprintf(key, sizeof key, "%s/m/%s", s->volhex, name);
	size_t n = 0;
	for (size_t i = 0; i < s->nbackends; i++) {
		uint8_t *v;
		size_t len;
		struct obj_meta m;
		if (backend_get(s->backends[i], key, &v, &len))
			continue;
		n += meta_open(s, name, v, len, &m) == 0;
		free(v);
	}
	return n;
}
