/* stor/head.c - see head.h */
#include "head.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../common/endian.h"
#include "../common/fsutil.h"

#define HEAD_MAGIC "QSFSHEAD"
#define HEAD_OK "QSFSHDOK"
#define HEAD_CLEAR 48u
#define HEAD_SEALED 24u		/* plaintext of the sealed part */
#define NONCE crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define TAG crypto_aead_xchacha20poly1305_ietf_ABYTES
#define HEAD_SIZE (HEAD_CLEAR + NONCE + HEAD_SEALED + TAG)

static void head_key(const struct qsfs_config *cfg, char *key, size_t n)
{
	snprintf(key, n, "qsfs/head/%s", cfg->volume);
}

static bool valid_name(const char *s)
{
	size_t n = strlen(s);
	if (!n || n > 64)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '-' || s[i] == '_' || s[i] == '.'))
			return false;
	return true;
}

/* Derive the master key (file or passphrase with salt) and the subkeys. */
static int load_keys(const struct qsfs_config *cfg, struct volume *v, char *err, size_t errlen)
{
	int r = cfg->key_file ? key_load_file(cfg->key_file, &v->key, err, errlen)
			      : key_from_passphrase(cfg->passphrase_file, v->salt, &v->key, err,
						    errlen);
	if (r)
		return r;
	key_subkey(&v->key, SUBKEY_SEGMENT, v->seg_key);
	key_subkey(&v->key, SUBKEY_METADATA, v->meta_key);
	fs_hex(v->id, 16, v->idhex);
	return 0;
}

void volume_free(struct volume *v)
{
	key_free(&v->key);
	sodium_memzero(v, sizeof *v);
}

static void ad_of(const uint8_t *clear, const char *name, uint8_t *ad, size_t *adlen)
{
	memcpy(ad, clear, HEAD_CLEAR);
	size_t n = strlen(name);
	memcpy(ad + HEAD_CLEAR, name, n);
	*adlen = HEAD_CLEAR + n;
}

/* What format's scan of a backend found: the volume ids heads name, and
 * the volume ids that have a catalog (data). */
#define SCAN_IDS 64
struct vol_scan {
	char heads[SCAN_IDS][33], data[SCAN_IDS][33];
	size_t nheads, ndata;
	char headkeys[SCAN_IDS][128];	/* read after the listing (no call on the
					 * backend from inside its scan) */
	size_t nheadkeys;
};

static void add_id(char (*ids)[33], size_t *n, const char *id)
{
	for (size_t i = 0; i < *n; i++)
		if (!strcmp(ids[i], id))
			return;
	if (*n < SCAN_IDS)
		snprintf(ids[(*n)++], 33, "%s", id);
}

static int scan_cb(void *arg, const char *key, uint64_t size)
{
	struct vol_scan *vs = arg;
	size_t l = strlen(key);
	if (!strncmp(key, "qsfs/head/", 10) && size == HEAD_SIZE && l < 128) {
		if (vs->nheadkeys < SCAN_IDS)
			snprintf(vs->headkeys[vs->nheadkeys++], 128, "%s", key);
	} else if (l == 32 + 8 && !strcmp(key + 32, "/catalog") &&
		   strspn(key, "0123456789abcdef") == 32) {
		char hex[33];
		snprintf(hex, sizeof hex, "%.32s", key);
		add_id(vs->data, &vs->ndata, hex);
	}
	return 0;
}

/* A volume whose data (its catalog) is on a backend of b[0..n) but whose
 * head none holds: formatting would hide it for good (its head lost with
 * the backends that held it). Returns 1 and says which in err, 0 when
 * there is none (a backend that cannot be listed tells nothing: format's
 * own checks decide then). Blocks: lists every key of every backend. */
static int orphan_volume(struct backend **b, size_t n, char *err, size_t errlen)
{
	struct vol_scan *vs = calloc(1, sizeof *vs);
	if (!vs)
		return 0;
	for (size_t i = 0; i < n; i++) {
		vs->nheadkeys = 0;
		if (backend_scan(b[i], "", scan_cb, vs))
			continue;
		for (size_t k = 0; k < vs->nheadkeys; k++) {
			uint8_t *h;
			size_t len;
			if (backend_get(b[i], vs->headkeys[k], &h, &len))
				continue;
			if (len == HEAD_SIZE && !memcmp(h, HEAD_MAGIC, 8)) {
				char hex[33];
				for (int j = 0; j < 16; j++)
					snprintf(hex + 2 * j, 3, "%02x", h[16 + j]);
				add_id(vs->heads, &vs->nheads, hex);
			}
			free(h);
		}
	}
	int r = 0;
	for (size_t d = 0; d < vs->ndata && !r; d++) {
		bool named = false;
		for (size_t h = 0; h < vs->nheads; h++)
			named |= !strcmp(vs->data[d], vs->heads[h]);
		if (!named) {
			snprintf(err, errlen, "the backends hold the data of volume %s (its catalog) "
				 "but no volume head names it: its head was lost with the backends "
				 "that held it. Formatting now would hide that data for good. Put its "
				 "head back (any copy of the key qsfs/head/NAME from an old backend), "
				 "or run format with --force if that data is to be given up",
				 vs->data[d]);
			r = 1;
		}
	}
	free(vs);
	return r;
}

int head_format(const struct qsfs_config *cfg, struct backend **b, size_t n, bool force,
		struct volume *v, size_t *placed, char *missing, size_t missinglen, char *err,
		size_t errlen)
{
	memset(v, 0, sizeof *v);
	*placed = 0;
	if (missing && missinglen)
		missing[0] = 0;
	if (!valid_name(cfg->volume)) {
		snprintf(err, errlen, "volume name '%s': use 1 to 64 of A-Z a-z 0-9 . _ -",
			 cfg->volume);
		return -EINVAL;
	}
	if (sodium_init() < 0)
		return -EIO;
	char key[128];
	head_key(cfg, key, sizeof key);
	size_t reachable = 0, sl = 0;
	char silent[1536] = "";	/* the backends that do not answer, and why */
	for (size_t i = 0; i < n; i++) {
		uint8_t *val;
		size_t len;
		int r = backend_get(b[i], key, &val, &len);
		if (r && r != -ENOENT && sl < sizeof silent) {
			const char *e = backend_health(b[i]).last_error;
			sl += (size_t)snprintf(silent + sl, sizeof silent - sl, "%s%s: %s",
					       sl ? "; " : "", backend_name(b[i]),
					       e[0] ? e : strerror(-r));
		}
		if (r == 0) {
			free(val);
			if (!force) {
				snprintf(err, errlen, "volume '%s' already exists on %s; formatting "
					 "again makes its data unreadable. If that is what you want, "
					 "run format with --force", cfg->volume, backend_name(b[i]));
				return -EEXIST;
			}
		}
		reachable += r == 0 || r == -ENOENT;
	}
	if (reachable < n / 2 + 1) {
		snprintf(err, errlen, "only %zu of %zu backends answer; a majority is needed to "
			 "create a volume (%s)", reachable, n, silent);
		return -EIO;
	}
	if (!force && orphan_volume(b, n, err, errlen))
		return -EEXIST;
	randombytes_buf(v->id, sizeof v->id);
	randombytes_buf(v->salt, sizeof v->salt);
	v->created = (uint64_t)time(NULL);
	v->k = cfg->stor.data_shards;
	v->m = cfg->stor.parity_shards;
	int r = load_keys(cfg, v, err, errlen);
	if (r)
		return r;
	uint8_t h[HEAD_SIZE] = { 0 }, plain[HEAD_SEALED] = { 0 }, ad[HEAD_CLEAR + 64];
	memcpy(h, HEAD_MAGIC, 8);
	h[8] = 1;
	memcpy(h + 16, v->id, 16);
	memcpy(h + 32, v->salt, 16);
	randombytes_buf(h + HEAD_CLEAR, NONCE);
	memcpy(plain, HEAD_OK, 8);
	put_le64(plain + 8, v->created);
	plain[16] = (uint8_t)v->k;
	plain[17] = (uint8_t)v->m;
	size_t adlen;
	ad_of(h, cfg->volume, ad, &adlen);
	crypto_aead_xchacha20poly1305_ietf_encrypt(h + HEAD_CLEAR + NONCE, NULL, plain,
						   sizeof plain, ad, adlen, NULL, h + HEAD_CLEAR,
						   v->meta_key);
	size_t ok = 0, used = 0;
	for (size_t i = 0; i < n; i++) {
		if (backend_put(b[i], key, h, sizeof h) == 0) {
			ok++;
			continue;
		}
		struct backend_health bh = backend_health(b[i]);
		if (missing && used < missinglen)
			used += (size_t)snprintf(missing + used, missinglen - used, "%s%s (%s)",
						 used ? "; " : "", backend_name(b[i]),
						 bh.last_error[0] ? bh.last_error : "write failed");
	}
	*placed = ok;
	if (ok < n / 2 + 1) {
		snprintf(err, errlen, "the head reached %zu of %zu backends; a majority is needed",
			 ok, n);
		volume_free(v);
		return -EIO;
	}
	return 0;
}

/* Does head h (HEAD_SIZE bytes) belong to volume v: its id, opening with
 * v's metadata key? */
static bool head_is(const struct qsfs_config *cfg, const uint8_t *h, const struct volume *v)
{
	if (memcmp(h, HEAD_MAGIC, 8) || h[8] != 1 || memcmp(h + 16, v->id, 16))
		return false;
	uint8_t plain[HEAD_SEALED], ad[HEAD_CLEAR + 64];
	size_t adlen;
	ad_of(h, cfg->volume, ad, &adlen);
	return crypto_aead_xchacha20poly1305_ietf_decrypt(plain, NULL, NULL,
							  h + HEAD_CLEAR + NONCE,
							  HEAD_SEALED + TAG, ad, adlen,
							  h + HEAD_CLEAR, v->meta_key) == 0 &&
	       !memcmp(plain, HEAD_OK, 8);
}

int head_repair(const struct qsfs_config *cfg, struct backend **b, size_t n,
		const struct volume *v, char *why, size_t whylen)
{
	char key[128];
	head_key(cfg, key, sizeof key);
	uint8_t good[HEAD_SIZE];
	bool have = false, *missing = calloc(n ? n : 1, sizeof *missing);
	if (!missing)
		return -ENOMEM;
	size_t used = 0;
	int conflict = 0;
	if (why && whylen)
		why[0] = 0;
	for (size_t i = 0; i < n; i++) {
		uint8_t *h;
		size_t len;
		int r = backend_get(b[i], key, &h, &len);
		if (r == -ENOENT) {
			missing[i] = true;
			continue;
		}
		if (r)
			continue;	/* down: its copy is looked at next time */
		if (len == HEAD_SIZE && head_is(cfg, h, v)) {
			memcpy(good, h, HEAD_SIZE);
			have = true;
		} else if (len == HEAD_SIZE && !memcmp(h, HEAD_MAGIC, 8) &&
			   memcmp(h + 16, v->id, 16)) {
			conflict = -EEXIST;	/* another volume's head: never overwritten */
			if (why && used < whylen)
				used += (size_t)snprintf(why + used, whylen - used, "%s%s holds the "
							 "head of another volume named '%s'",
							 used ? "; " : "", backend_name(b[i]),
							 cfg->volume);
		} else {
			missing[i] = true;	/* garbage, or a damaged copy of v's head */
		}
		free(h);
	}
	int written = 0;
	for (size_t i = 0; i < n && have; i++)
		if (missing[i] && backend_put(b[i], key, good, sizeof good) == 0)
			written++;
	free(missing);
	if (!have)
		return -ENOENT;
	return conflict ? conflict : written;
}

int head_open(const struct qsfs_config *cfg, struct backend **b, size_t n,
	      struct volume *v, char *err, size_t errlen)
{
	memset(v, 0, sizeof *v);
	if (sodium_init() < 0)
		return -EIO;
	char key[128];
	head_key(cfg, key, sizeof key);
	size_t down = 0, wrongkey = 0, garbage = 0;
	for (size_t i = 0; i < n; i++) {
		uint8_t *h;
		size_t len;
		int r = backend_get(b[i], key, &h, &len);
		if (r) {
			down += r != -ENOENT;
			continue;
		}
		if (len != HEAD_SIZE || memcmp(h, HEAD_MAGIC, 8) || h[8] != 1) {
			garbage++;
			free(h);
			continue;
		}
		struct volume t = { 0 };
		memcpy(t.id, h + 16, 16);
		memcpy(t.salt, h + 32, 16);
		r = load_keys(cfg, &t, err, errlen);
		if (r) {
			free(h);
			return r;	/* the key file itself is the problem */
		}
		uint8_t plain[HEAD_SEALED], ad[HEAD_CLEAR + 64];
		size_t adlen;
		ad_of(h, cfg->volume, ad, &adlen);
		r = crypto_aead_xchacha20poly1305_ietf_decrypt(plain, NULL, NULL, h + HEAD_CLEAR + NONCE,
							       HEAD_SEALED + TAG, ad, adlen,
							       h + HEAD_CLEAR, t.meta_key);
		free(h);
		if (r || memcmp(plain, HEAD_OK, 8)) {
			wrongkey++;
			volume_free(&t);
			continue;
		}
		t.created = get_le64(plain + 8);
		t.k = plain[16];
		t.m = plain[17];
		if (t.k != cfg->stor.data_shards || t.m != cfg->stor.parity_shards) {
			snprintf(err, errlen, "volume '%s' was formatted with data_shards %u and "
				 "parity_shards %u; the configuration says %u and %u", cfg->volume,
				 t.k, t.m, cfg->stor.data_shards, cfg->stor.parity_shards);
			volume_free(&t);
			return -EINVAL;
		}
		*v = t;
		return 0;
	}
	if (wrongkey) {
		snprintf(err, errlen, "the key in %s does not open volume '%s' (wrong key, or "
			 "another volume of the same name)",
			 cfg->key_file ? cfg->key_file : cfg->passphrase_file, cfg->volume);
		return -EACCES;
	}
	if (down == n) {
		int l = snprintf(err, errlen, "no backend answers:");
		for (size_t i = 0; i < n && l > 0 && (size_t)l < errlen; i++)
			l += snprintf(err + l, errlen - (size_t)l, "%s %s: %s", i ? ";" : "",
				      backend_name(b[i]), backend_health(b[i]).last_error);
		return -EIO;
	}
	snprintf(err, errlen, "volume '%s' does not exist on the backends%s; create it with: "
		 "qsfs-ctl format -c %s", cfg->volume, garbage ? " (only unreadable heads found)" : "",
		 cfg->file ? cfg->file : "CONFIG");
	return -ENOENT;
}

int volconn_open(const struct qsfs_config *cfg, struct volconn *vc, char *err, size_t errlen)
{
	memset(vc, 0, sizeof *vc);
	size_t n = cfg->stor.nbackends;
	int r = 0;
	for (size_t i = 0; i < n && !r; i++)
		r = backend_open(&cfg->stor.backends[i], 5000, &vc->b[i]);
	if (r)
		snprintf(err, errlen, "opening the backends: %s", strerror(-r));
	else
		r = head_open(cfg, vc->b, n, &vc->v, err, errlen);
	if (r) {
		volconn_close(vc);
		return r;
	}
	vc->os = (struct objstore){ .k = vc->v.k, .m = vc->v.m, .backends = vc->b, .nbackends = n };
	memcpy(vc->os.volume_id, vc->v.id, 16);
	memcpy(vc->os.volhex, vc->v.idhex, 33);
	memcpy(vc->os.meta_key, vc->v.meta_key, 32);
	return 0;
}

void volconn_close(struct volconn *vc)
{
	for (size_t i = 0; i < CONFIG_MAX_BACKENDS; i++)
		backend_close(vc->b[i]);
	volume_free(&vc->v);
	memset(vc, 0, sizeof *vc);
}
