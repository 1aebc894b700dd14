/* stor/codec.h - an object (a sealed segment or a checkpoint file) to k+m
 * shards and back.
 *
 * The object is cut into stripes of STRIPE_SIZE bytes (the last one
 * shorter; an empty object has no stripe). Each stripe, on its own:
 *   1. zstd (kept raw when that is not smaller; a flag byte says which);
 *   2. AEAD: AES-256-GCM where the CPU has it, XChaCha20-Poly1305 otherwise.
 *      The key is BLAKE2b(segment subkey; object id, a random 16-byte salt
 *      per encoding), so nonces (the stripe index) never repeat under one
 *      key. The associated data binds the format version, volume id, object
 *      id, object size, stripe count and stripe index: a stripe cannot be
 *      moved, dropped or swapped between objects or volumes;
 *   3. Reed-Solomon with liberasurecode (isa_l_rs_cauchy, an MDS code) into
 *      k data + m parity fragments.
 * Shard i is a 96-byte header, then for every stripe a 12-byte fragment
 * header (u32 length, u64 XXH3 of the fragment seeded with stripe << 8 |
 * shard index) and fragment i. The header:
 *   0 magic "QSFSSHD1"  8 u32 version  12 u8 index  13 u8 k  14 u8 m
 *   15 u8 cipher (1 AES-256-GCM, 2 XChaCha20-Poly1305)  16 volume id
 *   32 u64 object id  40 u64 object size  48 u64 stripes  56 salt (16)
 *   72 u32 stripe size  76 u32 0  80 u64 0  88 u64 XXH3 of bytes 0..87
 *
 * Memory: encoding holds one stripe in, its compressed and encrypted forms
 * and its k+m fragments (about (3 + (k+m)/k) MiB); the shards go to a sink as
 * they grow. Decoding streams: each shard's bytes are fed as they arrive and
 * a stripe is written as soon as k shards hold a good fragment of it, so the
 * decoder holds what was fed and not yet consumed (about one piece per shard
 * when the caller feeds piece by piece) plus about 3 MiB of stripe buffers.
 * A corrupt fragment is skipped on its own: shards damaged in different
 * stripes still decode.
 *
 * A codec is not thread-safe: one per worker (liberasurecode 1.6 instances
 * must not be shared).
 */
#ifndef QSFS_STOR_CODEC_H
#define QSFS_STOR_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STRIPE_SIZE (1u << 20)
#define SHARD_HDR_SIZE 96u
#define SHARD_MAX 48u	/* k + m */

enum codec_cipher { CIPHER_AES256GCM = 1, CIPHER_XCHACHA20 = 2 };

struct codec_params {
	unsigned k, m;
	int zstd_level;			/* 0 = no compression */
	uint8_t volume_id[16];
	uint8_t key[32];		/* the SUBKEY_SEGMENT subkey */
	enum codec_cipher cipher;	/* 0 = AES-256-GCM if available */
};

struct codec;

/* New codec. Returns 0, -EINVAL (k, m out of range) or -ENOTSUP (the erasure
 * backend cannot be loaded: install libisal2). */
int codec_new(const struct codec_params *p, struct codec **out);
void codec_free(struct codec *c);

/* Receives shard bytes in order, for each shard. Non-zero stops the encode. */
typedef int (*shard_sink)(void *arg, unsigned shard, const void *buf, size_t len);

/* Encode size bytes read from fd (from offset 0) as object id, handing
 * every shard's bytes to sink. Returns 0 or a negative errno (-EIO: the file
 * changed size under us). */
int codec_encode(struct codec *c, uint64_t object_id, int fd, uint64_t size,
		 shard_sink sink, void *arg);

/* A shard as fetched: whatever bytes a backend returned (NULL = missing). */
struct shard_in {
	const uint8_t *buf;
	size_t len;
	const char *from;	/* backend name, for messages */
};

/* Rebuild object id into fd (truncated first) from whole shards in[0..n),
 * given in any order: codec_dec_* below fed at once. */
int codec_decode(struct codec *c, uint64_t object_id, const struct shard_in *in,
		 unsigned n, int fd, char *why, size_t whylen);

/* Streaming decode of object id into fd (truncated here) with codec c. */
struct codec_dec;
int codec_dec_new(struct codec *c, uint64_t object_id, int fd, struct codec_dec **out);
void codec_dec_free(struct codec_dec *d);

/* A new slot: the place one shard's bytes will come from (named from in
 * messages). Returns its number, or SHARD_MAX when there are too many. */
unsigned codec_dec_add(struct codec_dec *d, const char *from);

/* The next bytes of a slot's shard, in order. A slot whose header fails its
 * checks (checksum, volume, object, k+m, another encoding, a duplicate
 * index) is dropped with the reason kept for messages. -ENOMEM only. */
int codec_dec_feed(struct codec_dec *d, unsigned slot, const void *buf, size_t len);

/* No more bytes for the slot: the shard is complete (end) or its source
 * failed (fail, with why). */
void codec_dec_end(struct codec_dec *d, unsigned slot);
void codec_dec_fail(struct codec_dec *d, unsigned slot, const char *why);

/* No more bytes for the slot because its source was given up on as slow
 * (the object was written without it): it is dropped like a failed one,
 * but codec_dec_damage does not count it (its data was not found bad). */
void codec_dec_abandon(struct codec_dec *d, unsigned slot);

/* Write every stripe that k slots now hold a good fragment of. Returns 1
 * when the whole object is written, 0 when more bytes are needed, or an
 * error with why set: -EIO when fewer than k slots can still give the next
 * stripe (why names the object and, per shard, what was wrong), -EBADMSG
 * when a stripe fails authentication (wrong key, tampered data), -ENOTSUP
 * (cipher this CPU cannot run), or a write error. */
int codec_dec_step(struct codec_dec *d, char *why, size_t whylen);

/* Whether more bytes for slot are of any use: false once the object is
 * written or the slot was dropped (bad header, truncated, failed source),
 * so callers stop fetching for it. */
bool codec_dec_wants(const struct codec_dec *d, unsigned slot);

/* Whether the slot needs more bytes before it can give the stripe being
 * decoded: it is wanted (codec_dec_wants) and not ended, and holds no
 * complete fragment record of that stripe or a later one (nor its header).
 * After codec_dec_step returned 0, some slot that is not ended is hungry;
 * feeding a slot only when it is hungry keeps what the decoder holds to
 * about one piece per slot, however far ahead its source is. */
bool codec_dec_hungry(const struct codec_dec *d, unsigned slot);

/* The object size the shard headers give (valid once step returned 1). */
uint64_t codec_dec_size(const struct codec_dec *d);

/* How many slots were unusable or gave a corrupt fragment so far, with a
 * description of each ("FROM: why; ...") in buf. A retrieval that succeeded
 * with damage means the object lost redundancy: it needs a repair. */
unsigned codec_dec_damage(const struct codec_dec *d, char *buf, size_t n);

/* The cipher this codec encrypts with. */
enum codec_cipher codec_cipher(const struct codec *c);

#endif
