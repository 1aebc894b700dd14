/* stor/replica.c - see replica.h */
#include "replica.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/endian.h"

#define NPUB crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define ABYTES crypto_aead_xchacha20poly1305_ietf_ABYTES

static void rec_key(const struct objstore *s, const char *name, char *key, size_t n)
{
	snprintf(key, n, "%s/%s", s->volhex, name);
}

static void rec_ad(const struct objstore *s, const uint8_t *tag, uint8_t ad[24])
{
	memcpy(ad, tag, 8);
	memcpy(ad + 8, s->volume_id, 16);
}

int replica_store(struct objstore *s, const char *name, const char *what, const uint8_t *plain,
		  size_t plen, char *why, size_t whylen)
{
	if (plen < REPLICA_HDR)
		return -EINVAL;
	uint8_t *x = malloc(NPUB + plen + ABYTES);
	if (!x) {
		snprintf(why, whylen, "%s: %s", what, strerror(ENOMEM));
		return -ENOMEM;
	}
	uint8_t ad[24];
	rec_ad(s, plain, ad);
	randombytes_buf(x, NPUB);
	unsigned long long cl;
	crypto_aead_xchacha20poly1305_ietf_encrypt(x + NPUB, &cl, plain, plen, ad, sizeof ad, NULL,
						   x, s->meta_key);
	char key[128];
	rec_key(s, name, key, sizeof key);
	size_t ok = 0, need = s->nbackends / 2 + 1;
	char failed[512] = "";
	for (size_t i = 0; i < s->nbackends; i++) {
		int r = health_usable(s->health, i) ? backend_put(s->backends[i], key, x,
								  NPUB + plen + ABYTES) : -EHOSTDOWN;
		if (r == -EIO)
			health_fail(s->health, i, backend_health(s->backends[i]).last_error);
		else if (r == -ENOSPC)	/* tried all the same: it may fit over the old copy */
			health_full(s->health, i, backend_health(s->backends[i]).last_error);
		if (r == 0) {
			ok++;
		} else {
			size_t l = strlen(failed);
			snprintf(failed + l, sizeof failed - l, "%s%s%s", l ? ", " : "",
				 backend_name(s->backends[i]), r == -ENOSPC ? " (full)" : "");
		}
	}
	free(x);
	if (ok < need) {
		snprintf(why, whylen, "%s reached %zu of %zu backends, a majority (%zu) is needed; "
			 "failed: %s", what, ok, s->nbackends, need, failed);
		return -EIO;
	}
	return 0;
}

/* Open one copy; 0 and the plaintext, or -EBADMSG / -ENOMEM. */
static int open_copy(const struct objstore *s, const char *tag, const uint8_t *x, size_t xlen,
		     int (*check)(const uint8_t *p, size_t len), uint8_t **out, size_t *outlen)
{
	if (xlen < NPUB + REPLICA_HDR + ABYTES)
		return -EBADMSG;
	size_t plen = xlen - NPUB - ABYTES;
	uint8_t *p = malloc(plen);
	if (!p)
		return -ENOMEM;
	uint8_t ad[24];
	rec_ad(s, (const uint8_t *)tag, ad);
	unsigned long long pl;
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(p, &pl, NULL, x + NPUB, xlen - NPUB, ad,
						       sizeof ad, x, s->meta_key) ||
	    memcmp(p, tag, 8) || (check && check(p, plen))) {
		free(p);
		return -EBADMSG;
	}
	*out = p;
	*outlen = plen;
	return 0;
}

int replica_load(struct objstore *s, const char *name, const char *tag, const char *what,
		 int (*check)(const uint8_t *p, size_t len), uint8_t **plain, size_t *plen,
		 char *why, size_t whylen)
{
	*plain = NULL;
	*plen = 0;
	char key[128];
	rec_key(s, name, key, sizeof key);
	size_t answered = 0, bad = 0, need = s->nbackends / 2 + 1;
	uint64_t best = 0;
	for (size_t i = 0; i < s->nbackends; i++) {
		uint8_t *x;
		size_t xlen;
		if (!health_usable(s->health, i))
			continue;	/* down: counts as no answer */
		int r = backend_get(s->backends[i], key, &x, &xlen);
		if (r == -EIO)
			health_fail(s->health, i, backend_health(s->backends[i]).last_error);
		if (r == -ENOENT) {
			answered++;
			continue;
		}
		if (r)
			continue;
		answered++;
		uint8_t *p;
		size_t pl;
		r = open_copy(s, tag, x, xlen, check, &p, &pl);
		free(x);
		if (r == -ENOMEM) {
			free(*plain);
			*plain = NULL;
			return r;
		}
		if (r) {
			bad++;
			continue;
		}
		uint64_t seq = get_le64(p + 16);
		if (!*plain || seq > best) {
			free(*plain);
			*plain = p;
			*plen = pl;
			best = seq;
		} else {
			free(p);
		}
	}
	if (answered < need) {
		free(*plain);
		*plain = NULL;
		snprintf(why, whylen, "%s: only %zu of %zu backends answered; a majority (%zu) is "
			 "needed to be sure of the newest copy", what, answered, s->nbackends, need);
		return -EIO;
	}
	if (!*plain) {
		if (bad) {
			snprintf(why, whylen, "%s: %zu copies exist but none opens with this key "
				 "(tampered, or another volume)", what, bad);
			return -EBADMSG;
		}
		snprintf(why, whylen, "%s: no backend has one", what);
		return -ENOENT;
	}
	return 0;
}
