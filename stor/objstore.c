/* stor/objstore.c - see objstore.h; the read path is in objstore_get.c */
#include "objstore_int.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "../common/endian.h"

/* health.h calls a backend full with less room than a piece left */
_Static_assert(HEALTH_FULL_ROOM >= OBJ_PIECE, "a backend with room for no piece is not full");

#define META_MAGIC "QSFSMET1"
#define META_VERSION 2u	/* 2 adds the generation; 1 is still read (generation 0) */

/* --- upload: a sink that writes pieces as they fill ------------------------
 *
 * Each shard has a writer thread and two piece buffers: the sink fills one
 * while the thread writes the other to the shard's backend, so the k+m
 * backends are written in parallel and encoding overlaps the network.
 */

struct shard_writer {
	struct upload *u;
	unsigned i;
	int bi;			/* index of its backend, -1: not placed */
	bool dead;		/* failed, and min_shards lets the rest go on */
	pthread_t th;
	bool started;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	uint8_t *buf[2];
	int cur;		/* the buffer the sink fills */
	size_t fill;
	uint8_t *job;		/* a full piece handed to the thread, or NULL */
	size_t job_len;
	bool quit;
	int r;			/* first write error */
	char err[300];
};

struct upload {
	struct objstore *s;
	uint64_t gen;
	const char *name;
	unsigned spare;		/* shards that may still fail (min_shards) */
	struct shard_writer w[SHARD_MAX];
	struct obj_meta meta;
	XXH3_state_t sums[SHARD_MAX];
};

void objstore_shard_key(const struct objstore *s, const char *name, uint64_t gen,
			unsigned shard, uint32_t piece, char *key, size_t n)
{
	if (gen)
		snprintf(key, n, "%s/o/%s/%u.%u.g%llu", s->volhex, name, shard, piece,
			 (unsigned long long)gen);
	else
		snprintf(key, n, "%s/o/%s/%u.%u", s->volhex, name, shard, piece);
}

void objstore_meta_key(const struct objstore *s, const char *name, char *key, size_t n)
{
	snprintf(key, n, "%s/m/%s", s->volhex, name);
}

/* Write one piece of shard w->i (the next piece number). */
static int write_piece(struct shard_writer *w, const uint8_t *buf, size_t len)
{
	struct upload *u = w->u;
	char key[128];
	objstore_shard_key(u->s, u->name, u->gen, w->i, u->meta.sh[w->i].pieces, key, sizeof key);
	struct backend *b = u->s->backends[w->bi];
	int r = backend_put(b, key, buf, len);
	if (r) {
		const char *e = backend_health(b).last_error;
		snprintf(w->err, sizeof w->err, "object %s: shard %u to %s: %s", u->name, w->i,
			 backend_name(b), e[0] ? e : strerror(-r));
		if (r == -EIO)
			health_fail(u->s->health, (size_t)w->bi, e);
		else if (r == -ENOSPC)
			health_full(u->s->health, (size_t)w->bi, e);
		return r;
	}
	u->meta.sh[w->i].pieces++;
	return 0;
}

static void *writer_main(void *arg)
{
	struct shard_writer *w = arg;
	pthread_mutex_lock(&w->mu);
	for (;;) {
		while (!w->job && !w->quit)
			pthread_cond_wait(&w->cv, &w->mu);
		if (!w->job)
			break;
		pthread_mutex_unlock(&w->mu);
		int r = w->r ? w->r : write_piece(w, w->job, w->job_len);
		pthread_mutex_lock(&w->mu);
		w->r = r;
		w->job = NULL;
		pthread_cond_broadcast(&w->cv);
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

/* A writer failed: give up its shard if min_shards allows (returns 0),
 * else return its error. */
static int writer_failed(struct shard_writer *w, int r)
{
	if (!r || w->dead)
		return 0;
	if (!w->u->spare)
		return r;
	w->u->spare--;
	w->dead = true;
	return 0;
}

/* Hand the filled buffer to the writer (waiting for its previous piece),
 * or write it here when there is no thread. Returns the first error that
 * min_shards does not absorb. */
static int submit_piece(struct shard_writer *w)
{
	if (w->dead || w->bi < 0) {	/* the shard is not stored */
		w->fill = 0;
		return 0;
	}
	if (!w->started) {
		int r = w->r ? w->r : write_piece(w, w->buf[w->cur], w->fill);
		w->r = r;
		w->fill = 0;
		return writer_failed(w, r);
	}
	pthread_mutex_lock(&w->mu);
	while (w->job)
		pthread_cond_wait(&w->cv, &w->mu);
	int r = w->r;
	if (!r) {
		w->job = w->buf[w->cur];
		w->job_len = w->fill;
		pthread_cond_broadcast(&w->cv);
	}
	pthread_mutex_unlock(&w->mu);
	w->cur ^= 1;
	w->fill = 0;
	return writer_failed(w, r);
}

/* Stop the writer after its last piece; returns its first error. */
static int writer_finish(struct shard_writer *w)
{
	if (w->started) {
		pthread_mutex_lock(&w->mu);
		w->quit = true;
		pthread_cond_broadcast(&w->cv);
		pthread_mutex_unlock(&w->mu);
		pthread_join(w->th, NULL);
		w->started = false;
	}
	return w->r;
}

static int upload_sink(void *arg, unsigned i, const void *buf, size_t len)
{
	struct upload *u = arg;
	struct shard_writer *w = &u->w[i];
	const uint8_t *p = buf;
	XXH3_64bits_update(&u->sums[i], buf, len);
	u->meta.sh[i].len += len;
	if (w->dead || w->bi < 0)
		return 0;	/* not stored */
	while (len) {
		size_t take = OBJ_PIECE - w->fill;
		if (take > len)
			take = len;
		memcpy(w->buf[w->cur] + w->fill, p, take);
		w->fill += take;
		p += take;
		len -= take;
		if (w->fill == OBJ_PIECE) {
			int r = submit_piece(w);
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
	size_t plen = 8 + 8 + 2 + 8 + n * (META_NAME_MAX + 8 + 8 + 4);
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
	put_le64(q, m->gen);
	q += 8;
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

int objstore_meta_open(const struct objstore *s, const char *name, const uint8_t *c,
		       size_t clen, struct obj_meta *m)
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
	if (memcmp(p, META_MAGIC, 4) || (p[4] != 1 && p[4] != META_VERSION))
		goto out;
	memset(m, 0, sizeof *m);
	m->size = get_le64(p + 8);
	m->k = p[16];
	m->m = p[17];
	unsigned n = m->k + m->m;
	size_t fixed = p[4] == 1 ? 18 : 26;
	if (m->k != s->k || m->m != s->m || plen != fixed + n * (size_t)(META_NAME_MAX + 20))
		goto out;
	if (p[4] >= 2)
		m->gen = get_le64(p + 18);
	const uint8_t *q = p + fixed;
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

/* Write the sealed metadata mc to every usable backend (skip[i]: do not
 * write backend i). Returns how many took it; the names of those that did
 * not (down ones included) go to failed. */
static size_t meta_put_all(struct objstore *s, const char *name, const uint8_t *mc,
			   size_t mclen, const bool *skip, char *failed, size_t failedlen)
{
	char key[128];
	objstore_meta_key(s, name, key, sizeof key);
	size_t ok = 0, fl = 0;
	failed[0] = 0;
	for (size_t i = 0; i < s->nbackends; i++) {
		if (skip && skip[i])
			continue;
		bool skip_full = health_usable(s->health, i) && !health_writable(s->health, i);
		int r = !health_usable(s->health, i) ? -EHOSTDOWN : skip_full ? -ENOSPC
			: backend_put(s->backends[i], key, mc, mclen);
		if (!r) {
			ok++;
			continue;
		}
		if (r == -EIO)
			health_fail(s->health, i, backend_health(s->backends[i]).last_error);
		else if (r == -ENOSPC && !skip_full)
			health_full(s->health, i, backend_health(s->backends[i]).last_error);
		if (fl < failedlen)
			fl += (size_t)snprintf(failed + fl, failedlen - fl, "%s%s%s", fl ? ", " : "",
					       backend_name(s->backends[i]),
					       r == -EHOSTDOWN ? " (down)" : r == -ENOSPC ? " (full)"
					       : "");
	}
	return ok;
}

/* Choose the backend of every shard (bi[i], -1: none): distinct usable
 * backends that are not full, in turn from a start derived from name.
 * Returns how many shards got one (the first ones; data shards are placed
 * first). */
static unsigned place(struct objstore *s, const char *name, uint64_t gen, int *bi)
{
	unsigned n = s->k + s->m, placed = 0;
	size_t start = s->nbackends ? (size_t)((XXH3_64bits(name, strlen(name)) + gen) %
					       s->nbackends) : 0;
	for (size_t t = 0; t < s->nbackends && placed < n; t++) {
		size_t i = (start + t) % s->nbackends;
		if (health_writable(s->health, i))
			bi[placed++] = (int)i;
	}
	for (unsigned i = placed; i < n; i++)
		bi[i] = -1;
	return placed;
}

/* Store the object as generation gen: shards under keys of that
 * generation, then its metadata. At least min_ok shards must be stored. */
static int put_gen(struct objstore *s, struct codec *c, const char *name, uint64_t code_id,
		   int fd, uint64_t size, uint64_t gen, unsigned min_ok, char *why, size_t whylen,
		   char *damage, size_t damagelen)
{
	unsigned n = s->k + s->m;
	why[0] = 0;
	if (damage && damagelen)
		damage[0] = 0;
	if (strlen(name) >= OBJ_NAME_MAX || s->nbackends < n)
		return -EINVAL;
	if (min_ok < s->k + 1 || min_ok > n)
		min_ok = n;
	int bi[SHARD_MAX];
	unsigned placed = place(s, name, gen, bi);
	if (placed < min_ok) {
		snprintf(why, whylen, "object %s: only %u of %zu backends are usable, %u shards "
			 "must be stored (%u down, %u full)", name, placed, s->nbackends, min_ok,
			 health_down(s->health), health_full_count(s->health));
		return -EAGAIN;
	}
	struct upload *u = calloc(1, sizeof *u);
	if (!u)
		return -ENOMEM;
	u->s = s;
	u->name = name;
	u->gen = gen;
	u->spare = placed - min_ok;
	u->meta.gen = gen;
	u->meta.size = size;
	u->meta.k = s->k;
	u->meta.m = s->m;
	int r = 0;
	for (unsigned i = 0; i < n; i++) {
		struct shard_writer *w = &u->w[i];
		w->u = u;
		w->i = i;
		w->bi = bi[i];
		pthread_mutex_init(&w->mu, NULL);
		pthread_cond_init(&w->cv, NULL);
		XXH3_64bits_reset(&u->sums[i]);
		if (w->bi < 0)
			continue;
		w->buf[0] = malloc(OBJ_PIECE);
		w->buf[1] = malloc(OBJ_PIECE);
		if (!w->buf[0] || !w->buf[1])
			r = -ENOMEM;
		snprintf(u->meta.sh[i].backend, META_NAME_MAX, "%s",
			 backend_name(s->backends[w->bi]));
	}
	for (unsigned i = 0; i < n && !r; i++)
		if (u->w[i].bi >= 0)
			u->w[i].started = pthread_create(&u->w[i].th, NULL, writer_main,
							 &u->w[i]) == 0;
	if (!r)
		r = codec_encode(c, code_id, fd, size, upload_sink, u);
	/* the last piece of every shard (an empty object still has headers) */
	for (unsigned i = 0; i < n && !r; i++)
		if (u->w[i].fill)
			r = submit_piece(&u->w[i]);
	size_t dl = 0;
	for (unsigned i = 0; i < n; i++) {
		struct shard_writer *w = &u->w[i];
		int e = writer_failed(w, writer_finish(w));
		if (e && !why[0])
			snprintf(why, whylen, "%s", w->err);
		if (!r)
			r = e;
		if (w->bi >= 0 && !w->dead)
			continue;
		/* not stored: the metadata says so, and a repair will store it */
		memset(&u->meta.sh[i], 0, sizeof u->meta.sh[i]);
		if (damage && dl < damagelen)
			dl += (size_t)snprintf(damage + dl, damagelen - dl, "%sshard %u not stored: %s",
					       dl ? "; " : "", i, w->dead ? w->err
					       : "too few backends usable");
	}
	if (r && !why[0])
		snprintf(why, whylen, "object %s: encoding failed: %s", name, strerror(-r));
	uint8_t *mc = NULL;
	size_t mclen = 0;
	if (!r) {
		for (unsigned i = 0; i < n; i++)
			if (u->meta.sh[i].pieces)
				u->meta.sh[i].sum = XXH3_64bits_digest(&u->sums[i]);
		r = meta_seal(s, name, &u->meta, &mc, &mclen);
	}
	if (!r) {
		char failed[512];
		size_t ok = meta_put_all(s, name, mc, mclen, NULL, failed, sizeof failed);
		if (ok < s->nbackends / 2 + 1) {
			snprintf(why, whylen, "object %s: metadata written to %zu of %zu backends, "
				 "a majority (%zu) is needed; failed: %s", name, ok, s->nbackends,
				 s->nbackends / 2 + 1, failed);
			r = -EIO;
		}
	}
	free(mc);
	for (unsigned i = 0; i < n; i++) {
		free(u->w[i].buf[0]);
		free(u->w[i].buf[1]);
		pthread_mutex_destroy(&u->w[i].mu);
		pthread_cond_destroy(&u->w[i].cv);
	}
	free(u);
	return r;
}

int obj_put(struct objstore *s, struct codec *c, const char *name, uint64_t code_id,
	    int fd, uint64_t size, char *why, size_t whylen, char *damage, size_t damagelen)
{
	return put_gen(s, c, name, code_id, fd, size, 0, s->min_shards, why, whylen, damage,
		       damagelen);
}

/* --- metadata and placement ------------------------------------------------ */

int objstore_find_backend(struct objstore *s, const char *name)
{
	for (size_t i = 0; name[0] && i < s->nbackends; i++)
		if (!strcmp(backend_name(s->backends[i]), name))
			return (int)i;
	return -1;
}

/* The metadata copy of name (its key in key) on backend i: 0, -ENOENT when
 * that backend has none, -EIO when it fails, -EBADMSG when it does not
 * open (or the backend is down). */
static int meta_at(struct objstore *s, size_t i, const char *key, const char *name,
		   struct obj_meta *meta)
{
	uint8_t *v;
	size_t n;
	if (!health_usable(s->health, i))
		return -EIO;
	int g = backend_get(s->backends[i], key, &v, &n);
	if (g == -EIO)
		health_fail(s->health, i, backend_health(s->backends[i]).last_error);
	if (g)
		return g == -ENOENT ? -ENOENT : -EIO;
	int r = objstore_meta_open(s, name, v, n, meta);
	free(v);
	return r ? -EBADMSG : 0;
}

/* The newest metadata of name: backends are asked in turn and the valid
 * copy with the highest generation wins (a repair rewrites it; a backend
 * that was away keeps an old one). Every write of a generation reached a
 * majority, so once a majority has answered the newest one is among the
 * answers: reads (current == NULL) stop there, and a hung backend beyond
 * them costs nothing. *current (all backends asked) counts the backends
 * holding a copy of that generation. */
static int read_meta(struct objstore *s, const char *name, struct obj_meta *meta,
		     size_t *current, char *why, size_t whylen)
{
	char key[128];
	objstore_meta_key(s, name, key, sizeof key);
	int undecryptable = 0;
	size_t found = 0, cur = 0, answered = 0;
	memset(meta, 0, sizeof *meta);
	struct obj_meta one;
	for (size_t i = 0; i < s->nbackends; i++) {
		if (!current && found && answered > s->nbackends / 2)
			break;
		int r = meta_at(s, i, key, name, &one);
		undecryptable += r == -EBADMSG;
		answered += r != -EIO;
		if (r)
			continue;
		if (!found || one.gen > meta->gen) {
			*meta = one;
			cur = 1;
		} else if (one.gen == meta->gen) {
			cur++;
		}
		found++;
	}
	if (current)
		*current = cur;
	return found ? 0 : objstore_meta_missing(name, (size_t)undecryptable, why, whylen);
}

int objstore_meta_missing(const char *name, size_t undecryptable, char *why, size_t whylen)
{
	if (undecryptable)
		snprintf(why, whylen, "object %s: its metadata does not open with this key "
			 "(wrong key, another volume, or tampered)", name);
	else
		snprintf(why, whylen, "object %s: no backend has its metadata", name);
	return undecryptable ? -EBADMSG : -ENOENT;
}

int obj_placement(struct objstore *s, const char *name, struct obj_placement *out)
{
	char key[128];
	objstore_meta_key(s, name, key, sizeof key);
	struct obj_meta meta, one;
	size_t answered = 0, undecryptable = 0;
	bool found = false;
	memset(out, 0, sizeof *out);
	for (size_t i = 0; i < s->nbackends; i++) {
		int r = meta_at(s, i, key, name, &one);
		answered += r != -EIO;
		undecryptable += r == -EBADMSG;
		if (!r && (!found || one.gen > meta.gen))
			meta = one;
		found |= !r;
	}
	if (!found)
		return undecryptable ? -EBADMSG : answered < s->nbackends ? -EIO : -ENOENT;
	if (answered <= s->nbackends / 2)
		return -EIO;
	out->k = meta.k;
	out->m = meta.m;
	out->gen = meta.gen;
	for (unsigned i = 0; i < meta.k + meta.m && i < SHARD_MAX; i++) {
		out->backend[i] = meta.sh[i].pieces ? objstore_find_backend(s, meta.sh[i].backend)
						    : -1;
		out->pieces[i] = meta.sh[i].pieces;
	}
	return 0;
}

/* --- scrub and repair ---------------------------------------------------- */

/* Is shard i of name (generation gen, pieces pieces) on backend bi whole?
 * NULL when it is, else why not (in err). Reads every piece (mode READ:
 * length and XXH3 against len and sum) or only asks that each exists. */
static const char *check_shard(struct objstore *s, const char *name, uint64_t gen, unsigned i,
			       const struct shard_meta *sm, enum obj_verify_mode mode,
			       void (*throttle)(void *arg, size_t bytes), void *arg,
			       struct obj_check *out, char *err, size_t errlen)
{
	if (!sm->pieces)
		return "never stored (too few backends were usable)";
	int bi = objstore_find_backend(s, sm->backend);
	if (bi < 0)
		return "its backend is not configured";
	if (!health_usable(s->health, (size_t)bi))
		return "its backend is down";
	struct backend *b = s->backends[bi];
	XXH3_state_t st;
	XXH3_64bits_reset(&st);
	uint64_t len = 0;
	for (uint32_t p = 0; p < sm->pieces; p++) {
		char key[128];
		objstore_shard_key(s, name, gen, i, p, key, sizeof key);
		int e;
		if (mode == OBJ_VERIFY_EXISTS) {
			e = backend_exists(b, key);
			e = e == 1 ? 0 : e == 0 ? -ENOENT : e;
		} else {
			uint8_t *v;
			size_t n;
			e = backend_get(b, key, &v, &n);
			if (!e) {
				XXH3_64bits_update(&st, v, n);
				len += n;
				out->bytes += n;
				free(v);
				if (throttle)
					throttle(arg, n);
			}
		}
		if (e) {
			if (e == -EIO)
				health_fail(s->health, (size_t)bi, backend_health(b).last_error);
			snprintf(err, errlen, "piece %u %s", p, e == -ENOENT ? "missing" :
				 backend_health(b).last_error);
			return err;
		}
	}
	if (mode == OBJ_VERIFY_READ && (len != sm->len || XXH3_64bits_digest(&st) != sm->sum))
		return "checksum mismatch";
	return NULL;
}

int obj_verify(struct objstore *s, const char *name, enum obj_verify_mode mode,
	       void (*throttle)(void *arg, size_t bytes), void *arg, struct obj_check *out,
	       char *why, size_t whylen)
{
	memset(out, 0, sizeof *out);
	why[0] = 0;
	for (size_t i = 0; i < s->nbackends; i++)
		out->meta_usable += health_usable(s->health, i);
	struct obj_meta meta;
	int r = read_meta(s, name, &meta, &out->meta_current, why, whylen);
	if (r)
		return r;
	out->k = meta.k;
	out->m = meta.m;
	out->gen = meta.gen;
	out->size = meta.size;
	size_t dl = 0;
	for (unsigned i = 0; i < meta.k + meta.m; i++) {
		char err[200];
		const char *bad = check_shard(s, name, meta.gen, i, &meta.sh[i], mode, throttle,
					      arg, out, err, sizeof err);
		if (!bad) {
			out->good++;
			continue;
		}
		out->bad_mask |= 1u << i;
		if (dl < sizeof out->damage)
			dl += (size_t)snprintf(out->damage + dl, sizeof out->damage - dl,
					       "%sshard %u on %s: %s", dl ? "; " : "", i,
					       meta.sh[i].backend[0] ? meta.sh[i].backend : "-", bad);
	}
	return 0;
}

int obj_sync_meta(struct objstore *s, const char *name, char *why, size_t whylen)
{
	struct obj_meta meta, one;
	int r = read_meta(s, name, &meta, &(size_t){ 0 }, why, whylen);
	if (r)
		return r;
	/* the backends that already hold this generation are left alone */
	char key[128];
	objstore_meta_key(s, name, key, sizeof key);
	bool *skip = calloc(s->nbackends ? s->nbackends : 1, sizeof *skip);
	if (!skip)
		return -ENOMEM;
	size_t want = 0;
	for (size_t i = 0; i < s->nbackends; i++) {
		skip[i] = !health_usable(s->health, i) ||
			  (meta_at(s, i, key, name, &one) == 0 && one.gen == meta.gen);
		want += !skip[i];
	}
	uint8_t *mc = NULL;
	size_t mclen = 0, ok = 0;
	char failed[512] = "";
	r = want ? meta_seal(s, name, &meta, &mc, &mclen) : 0;
	if (want && !r)
		ok = meta_put_all(s, name, mc, mclen, skip, failed, sizeof failed);
	free(mc);
	free(skip);
	if (r)
		return r;
	if (ok < want) {
		snprintf(why, whylen, "object %s: metadata copied to %zu of %zu backends lacking "
			 "it; failed: %s", name, ok, want, failed);
		return -EIO;
	}
	return 0;
}

int obj_repair(struct objstore *s, struct codec *c, const char *name, uint64_t code_id,
	       const char *tmpdir, char *why, size_t whylen)
{
	struct obj_meta old;
	int r = read_meta(s, name, &old, NULL, why, whylen);
	if (r)
		return r;
	int fd = open(tmpdir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd < 0) {
		r = -errno;
		snprintf(why, whylen, "object %s: a temporary file in %s: %s", name, tmpdir,
			 strerror(-r));
		return r;
	}
	/* read what is left (any k good shards), then store it whole again as
	 * the next generation: the old shards stay until its metadata is on a
	 * majority, so the object is never less redundant than before */
	r = objstore_get_from(s, c, name, code_id, &old, fd, why, whylen, NULL, 0);
	if (!r)
		r = put_gen(s, c, name, code_id, fd, old.size, old.gen + 1, old.k + old.m, why,
			    whylen, NULL, 0);
	close(fd);
	if (r)
		return r;
	for (unsigned i = 0; i < old.k + old.m; i++) {
		int bi = objstore_find_backend(s, old.sh[i].backend);
		if (bi < 0 || !health_usable(s->health, (size_t)bi))
			continue;	/* garbage left behind: never read again */
		for (uint32_t p = 0; p < old.sh[i].pieces; p++) {
			char key[128];
			objstore_shard_key(s, name, old.gen, i, p, key, sizeof key);
			backend_del(s->backends[bi], key);
		}
	}
	return 0;
}

/* --- deletion ------------------------------------------------------------ */

/* Delete key on backend bi; on failure add the backend to failed (once:
 * *mask has bit bi set after the first) and return the error. */
static int del_key(struct objstore *s, size_t bi, const char *key, uint64_t *mask, char *failed,
		   size_t failedlen, size_t *fl)
{
	int r = health_usable(s->health, bi) ? backend_del(s->backends[bi], key) : -EHOSTDOWN;
	if (!r)
		return 0;
	if (r == -EIO)
		health_fail(s->health, bi, backend_health(s->backends[bi]).last_error);
	if (!(*mask & (1ull << bi)) && *fl < failedlen) {
		const char *e = backend_health(s->backends[bi]).last_error;
		*fl += (size_t)snprintf(failed + *fl, failedlen - *fl, "%s%s (%s)", *fl ? ", " : "",
					backend_name(s->backends[bi]), r == -EHOSTDOWN ? "down" :
					e[0] ? e : strerror(-r));
	}
	*mask |= 1ull << bi;
	return r;
}

int obj_delete(struct objstore *s, const char *name, char *why, size_t whylen)
{
	char key[128], failed[1024] = "";
	size_t fl = 0;
	uint64_t mask = 0;	/* backends that failed */
	why[0] = 0;
	if (strlen(name) >= OBJ_NAME_MAX || s->nbackends > 64)
		return -EINVAL;
	/* the newest metadata, every backend asked */
	objstore_meta_key(s, name, key, sizeof key);
	struct obj_meta meta, one;
	bool found = false;
	size_t undecryptable = 0;
	for (size_t i = 0; i < s->nbackends; i++) {
		int r = meta_at(s, i, key, name, &one);
		if (r == -EIO) {
			const char *e = backend_health(s->backends[i]).last_error;
			mask |= 1ull << i;
			if (fl < sizeof failed)
				fl += (size_t)snprintf(failed + fl, sizeof failed - fl, "%s%s (%s)",
						       fl ? ", " : "", backend_name(s->backends[i]),
						       !health_usable(s->health, i) ? "down" :
						       e[0] ? e : "cannot read the metadata");
		}
		undecryptable += r == -EBADMSG;
		if (!r && (!found || one.gen > meta.gen))
			meta = one;
		found |= !r;
	}
	if (!found && undecryptable) {
		snprintf(why, whylen, "object %s: its metadata does not open with this key (wrong "
			 "key or tampered): its shards cannot be found to delete", name);
		return -EBADMSG;
	}
	if (found) {
		unsigned n = meta.k + meta.m;
		uint32_t most = 0;
		for (unsigned i = 0; i < n; i++)
			if (meta.sh[i].pieces > most)
				most = meta.sh[i].pieces;
		/* the current generation, where its metadata says */
		for (unsigned i = 0; i < n; i++) {
			int bi = objstore_find_backend(s, meta.sh[i].backend);
			if (bi < 0)
				continue;	/* not configured: nothing can reach it */
			for (uint32_t p = 0; p < meta.sh[i].pieces; p++) {
				char k[128];
				objstore_shard_key(s, name, meta.gen, i, p, k, sizeof k);
				if (del_key(s, (size_t)bi, k, &mask, failed, sizeof failed, &fl))
					break;
			}
		}
		/* older generations (a repair deletes them, but not on backends
		 * that were down then): the same keys on every backend */
		for (uint64_t g = 0; g < meta.gen; g++) {
			for (size_t bi = 0; bi < s->nbackends; bi++) {
				bool bad = false;
				for (unsigned i = 0; i < n && !bad; i++) {
					for (uint32_t p = 0; p < most && !bad; p++) {
						char k[128];
						objstore_shard_key(s, name, g, i, p, k, sizeof k);
						bad = del_key(s, bi, k, &mask, failed, sizeof failed,
							      &fl) != 0;
					}
				}
			}
		}
	}
	/* the metadata last, and only once everything else is gone: a retry
	 * still finds the placement */
	for (size_t bi = 0; !mask && bi < s->nbackends; bi++)
		del_key(s, bi, key, &mask, failed, sizeof failed, &fl);
	if (mask) {
		snprintf(why, whylen, "object %s: cannot delete it everywhere yet (%s); kept for a "
			 "retry", name, failed);
		return -EIO;
	}
	return 0;
}
