/* tests/unit/test_codec.c - object -> k+m shards -> object: byte-exact for
 * many sizes, with any m shards lost or corrupt; wrong key, tampering,
 * foreign volumes and swapped objects are refused, never decoded wrong. */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "../../common/endian.h"
#include "codec.h"

struct shards {
	uint8_t *buf[SHARD_MAX];
	size_t len[SHARD_MAX], cap[SHARD_MAX];
};

static int sink(void *arg, unsigned i, const void *b, size_t n)
{
	struct shards *s = arg;
	if (s->len[i] + n > s->cap[i]) {
		s->cap[i] = (s->len[i] + n) * 2;
		s->buf[i] = realloc(s->buf[i], s->cap[i]);
	}
	memcpy(s->buf[i] + s->len[i], b, n);
	s->len[i] += n;
	return 0;
}

static void shards_free(struct shards *s)
{
	for (unsigned i = 0; i < SHARD_MAX; i++)
		free(s->buf[i]);
	memset(s, 0, sizeof *s);
}

static char *dir;
static struct codec_params P = { .k = 4, .m = 2, .zstd_level = 3 };

static int setup(void **state)
{
	(void)state;
	dir = tu_mkdtemp();
	assert_true(sodium_init() >= 0);
	randombytes_buf(P.key, sizeof P.key);
	memset(P.volume_id, 0x11, sizeof P.volume_id);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	tu_rmrf(dir);
	free(dir);
	return 0;
}

/* A file of size bytes: compressible (2:1-ish text) or random. */
static int make_object(size_t size, bool random, uint8_t **data)
{
	uint8_t *d = malloc(size ? size : 1);
	if (random)
		randombytes_buf(d, size);
	else
		for (size_t i = 0; i < size; i++)
			d[i] = (uint8_t)("qsfs stores segments "[i % 21] ^ (i / 4096 % 3 ? 0 : (i & 7)));
	char *p = tu_path(dir, "object");
	int fd = open(p, O_RDWR | O_CREAT | O_TRUNC, 0600);
	free(p);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, d, size), (ssize_t)size);
	*data = d;
	return fd;
}

static void encode(struct codec *c, uint64_t id, int fd, size_t size, struct shards *s)
{
	memset(s, 0, sizeof *s);
	assert_int_equal(codec_encode(c, id, fd, size, sink, s), 0);
}

/* Decode from the shards whose bit is set in mask; returns the result and
 * checks the bytes on success. */
static int decode_mask(struct codec *c, uint64_t id, struct shards *s, unsigned mask,
		       const uint8_t *want, size_t size, char *why, size_t whylen)
{
	struct shard_in in[SHARD_MAX];
	unsigned n = 0;
	static const char *names[] = { "b0", "b1", "b2", "b3", "b4", "b5", "b6", "b7" };
	for (unsigned i = 0; i < P.k + P.m; i++)
		in[n++] = (struct shard_in){ (mask >> i) & 1 ? s->buf[i] : NULL, s->len[i], names[i] };
	char *p = tu_path(dir, "out");
	int fd = open(p, O_RDWR | O_CREAT | O_TRUNC, 0600);
	free(p);
	int r = codec_decode(c, id, in, n, fd, why, whylen);
	if (r == 0)
		tu_assert_fd_content(fd, want, size);
	close(fd);
	return r;
}

static void test_roundtrip_sizes(void **state)
{
	(void)state;
	struct codec *c;
	assert_int_equal(codec_new(&P, &c), 0);
	size_t sizes[] = { 0, 1, 4095, STRIPE_SIZE, STRIPE_SIZE + 1, 3 * STRIPE_SIZE + 17 };
	char why[2048];
	for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
		for (int rnd = 0; rnd < 2; rnd++) {
			uint8_t *d;
			int fd = make_object(sizes[i], rnd, &d);
			struct shards s;
			encode(c, 1000 + i, fd, sizes[i], &s);
			assert_int_equal(decode_mask(c, 1000 + i, &s, 0x3f, d, sizes[i], why,
						     sizeof why), 0);
			if (!rnd && sizes[i] == 3 * STRIPE_SIZE + 17) {
				/* compressible data is stored compressed */
				size_t total = 0;
				for (unsigned k = 0; k < P.k; k++)
					total += s.len[k];
				print_message("# %zu bytes of text -> %zu bytes in data shards\n",
					      sizes[i], total);
				assert_true(total < sizes[i] / 2);
			}
			shards_free(&s);
			free(d);
			close(fd);
		}
	}
	codec_free(c);
}

static void test_any_m_lost_or_corrupt(void **state)
{
	(void)state;
	struct codec *c;
	assert_int_equal(codec_new(&P, &c), 0);
	size_t size = 2 * STRIPE_SIZE + 999;
	uint8_t *d;
	int fd = make_object(size, false, &d);
	struct shards s;
	encode(c, 7, fd, size, &s);
	char why[2048];
	int combos = 0;
	for (unsigned mask = 0; mask < 64; mask++) {
		int have = __builtin_popcount(mask);
		if (have < 4)
			continue;
		assert_int_equal(decode_mask(c, 7, &s, mask, d, size, why, sizeof why), 0);
		combos++;
	}
	assert_int_equal(combos, 22);	/* every way to keep 4, 5 or 6 of 6 */
	/* damage in two shards: their fragment checksums exclude them */
	uint32_t fl = get_le32(s.buf[0] + SHARD_HDR_SIZE);
#define FRAG(shard, stripe) (s.buf[shard] + SHARD_HDR_SIZE + (stripe) * (12 + fl) + 12)
	FRAG(1, 0)[100] ^= 0x40;
	FRAG(4, 2)[7] ^= 0x01;
	assert_int_equal(decode_mask(c, 7, &s, 0x3f, d, size, why, sizeof why), 0);
	/* one shard lost as well: every stripe still has 4 good fragments, as
	 * the damage is in different stripes */
	assert_int_equal(decode_mask(c, 7, &s, 0x3f & ~(1u << 0), d, size, why, sizeof why), 0);
	/* three bad in stripe 0: a clear error naming what is wrong with each */
	FRAG(2, 0)[5] ^= 0x80;
#undef FRAG
	int r = decode_mask(c, 7, &s, 0x3f & ~(1u << 0), d, size, why, sizeof why);
	assert_int_equal(r, -EIO);
	print_message("# %s\n", why);
	assert_non_null(strstr(why, "object 7 stripe 0: 3 usable shards, 4 needed"));
	assert_non_null(strstr(why, "b0: missing"));
	assert_non_null(strstr(why, "b1: checksum mismatch in stripe 0"));
	assert_non_null(strstr(why, "b2: checksum mismatch in stripe 0"));
	/* a truncated shard and a shard with a broken header are named too */
	s.len[3] = SHARD_HDR_SIZE + 12 + fl / 2;
	s.buf[5][3] ^= 1;
	r = decode_mask(c, 7, &s, 0x3f & ~(1u << 0), d, size, why, sizeof why);
	assert_int_equal(r, -EIO);
	print_message("# %s\n", why);
	assert_non_null(strstr(why, "b3: truncated"));
	assert_non_null(strstr(why, "b5: bad header"));
	shards_free(&s);
	free(d);
	close(fd);
	codec_free(c);
}

/* Shards fed in random-sized chunks, round-robin, the way objstore feeds
 * pieces as they arrive; one source fails half-way and one never answers.
 * Stripes are written as they become decodable; the result is exact. */
static void test_streaming_feed(void **state)
{
	(void)state;
	struct codec *c;
	assert_int_equal(codec_new(&P, &c), 0);
	for (int round = 0; round < 6; round++) {
		size_t size = 5 * STRIPE_SIZE + (size_t)randombytes_uniform(STRIPE_SIZE);
		uint8_t *d;
		int fd = make_object(size, round & 1, &d);
		struct shards s;
		encode(c, 77, fd, size, &s);
		char *p = tu_path(dir, "out");
		int ofd = open(p, O_RDWR | O_CREAT | O_TRUNC, 0600);
		free(p);
		struct codec_dec *dec;
		assert_int_equal(codec_dec_new(c, 77, ofd, &dec), 0);
		unsigned n = P.k + P.m, failing = randombytes_uniform(n),
			 silent = (failing + 1 + randombytes_uniform(n - 1)) % n;
		size_t pos[SHARD_MAX] = { 0 };
		for (unsigned i = 0; i < n; i++)
			assert_int_equal(codec_dec_add(dec, "b"), i);
		char why[1024];
		int r = 0, steps = 0;
		while (r == 0) {
			for (unsigned i = 0; i < n; i++) {
				if (i == silent || pos[i] == s.len[i])
					continue;
				if (i == failing && pos[i] > s.len[i] / 2) {
					codec_dec_fail(dec, i, "connection reset");
					pos[i] = s.len[i];
					continue;
				}
				size_t take = 1 + randombytes_uniform((uint32_t)(s.len[i] / 10 + 1));
				if (take > s.len[i] - pos[i])
					take = s.len[i] - pos[i];
				assert_int_equal(codec_dec_feed(dec, i, s.buf[i] + pos[i], take), 0);
				pos[i] += take;
				if (pos[i] == s.len[i])
					codec_dec_end(dec, i);
			}
			r = codec_dec_step(dec, why, sizeof why);
			steps++;
		}
		assert_int_equal(r, 1);
		assert_int_equal(codec_dec_size(dec), size);
		assert_true(steps > 5);
		codec_dec_free(dec);
		uint8_t *got = malloc(size);
		assert_int_equal(pread(ofd, got, size, 0), (ssize_t)size);
		assert_memory_equal(got, d, size);
		assert_int_equal(lseek(ofd, 0, SEEK_END), (off_t)size);
		free(got);
		close(ofd);
		shards_free(&s);
		free(d);
		close(fd);
	}
	codec_free(c);
}

/* Fed only where the decoder is hungry (as objstore_get.c feeds it), the k+m-1
 * prompt shards decode the object without the one that never comes: after
 * every step that wants more, some shard is hungry (or the reader would
 * wait for ever); a shard ahead of the others is not hungry until they
 * catch up; and the one abandoned at the end is not damage. */
static void test_hungry_feeding(void **state)
{
	(void)state;
	struct codec *c;
	assert_int_equal(codec_new(&P, &c), 0);
	size_t size = 6 * STRIPE_SIZE + 1234;
	uint8_t *d;
	int fd = make_object(size, 1, &d);
	struct shards s;
	encode(c, 78, fd, size, &s);
	char *p = tu_path(dir, "out");
	int ofd = open(p, O_RDWR | O_CREAT | O_TRUNC, 0600);
	free(p);
	struct codec_dec *dec;
	assert_int_equal(codec_dec_new(c, 78, ofd, &dec), 0);
	unsigned n = P.k + P.m, silent = 1;
	for (unsigned i = 0; i < n; i++)
		assert_int_equal(codec_dec_add(dec, "b"), i);
	size_t pos[SHARD_MAX] = { 0 }, chunk = 64 << 10;
	char why[1024];
	int r = codec_dec_step(dec, why, sizeof why);
	bool ahead_waited = false;
	while (r == 0) {
		bool any = false;
		for (unsigned i = 0; i < n; i++) {
			bool hungry = codec_dec_hungry(dec, i);
			any |= hungry;
			if (i == silent || !hungry || pos[i] == s.len[i])
				continue;
			/* shard 0 is fed four times as much: it runs ahead, and must
			 * then wait until the others have caught up */
			size_t take = i == 0 ? 4 * chunk : chunk;
			if (take > s.len[i] - pos[i])
				take = s.len[i] - pos[i];
			assert_int_equal(codec_dec_feed(dec, i, s.buf[i] + pos[i], take), 0);
			pos[i] += take;
			if (pos[i] == s.len[i])
				codec_dec_end(dec, i);
		}
		assert_true(any);
		ahead_waited |= pos[0] < s.len[0] && !codec_dec_hungry(dec, 0);
		r = codec_dec_step(dec, why, sizeof why);
	}
	assert_int_equal(r, 1);
	assert_true(ahead_waited);
	assert_int_equal(pos[silent], 0);
	assert_false(codec_dec_hungry(dec, 2));	/* done: nobody is */
	codec_dec_abandon(dec, silent);
	char dmg[512];
	assert_int_equal(codec_dec_damage(dec, dmg, sizeof dmg), 0);
	codec_dec_free(dec);
	uint8_t *got = malloc(size);
	assert_int_equal(pread(ofd, got, size, 0), (ssize_t)size);
	assert_memory_equal(got, d, size);
	free(got);
	close(ofd);
	shards_free(&s);
	free(d);
	close(fd);
	codec_free(c);
}

static void test_refuses_wrong_key_tamper_foreign(void **state)
{
	(void)state;
	struct codec *c;
	assert_int_equal(codec_new(&P, &c), 0);
	size_t size = STRIPE_SIZE + 5;
	uint8_t *d;
	int fd = make_object(size, true, &d);
	struct shards s;
	encode(c, 9, fd, size, &s);
	char why[2048];

	/* wrong key */
	struct codec_params q = P;
	q.key[0] ^= 1;
	struct codec *wrong;
	assert_int_equal(codec_new(&q, &wrong), 0);
	assert_int_equal(decode_mask(wrong, 9, &s, 0x3f, d, size, why, sizeof why), -EBADMSG);
	assert_non_null(strstr(why, "authentication failed"));
	codec_free(wrong);

	/* foreign volume */
	q = P;
	q.volume_id[0] ^= 1;
	struct codec *other;
	assert_int_equal(codec_new(&q, &other), 0);
	assert_int_equal(decode_mask(other, 9, &s, 0x3f, d, size, why, sizeof why), -EIO);
	assert_non_null(strstr(why, "belongs to another volume"));
	codec_free(other);

	/* shards of object 9 offered as object 10 */
	assert_int_equal(decode_mask(c, 10, &s, 0x3f, d, size, why, sizeof why), -EIO);
	assert_non_null(strstr(why, "belongs to another object"));

	/* a tamperer who rewrites a fragment and fixes the checksum: with only
	 * k shards to decode from, authentication refuses the stripe */
	uint8_t *b = s.buf[2] + SHARD_HDR_SIZE;
	uint32_t fl = get_le32(b);
	b[12 + 200] ^= 0xff;
	put_le64(b + 4, XXH3_64bits_withSeed(b + 12, fl, 0 << 8 | 2));
	assert_int_equal(decode_mask(c, 9, &s, 0x0f, d, size, why, sizeof why), -EBADMSG);
	/* and with the tampered shard left out, all is well */
	assert_int_equal(decode_mask(c, 9, &s, 0x3b, d, size, why, sizeof why), 0);
	shards_free(&s);
	free(d);
	close(fd);
	codec_free(c);
}

static void test_xchacha_and_params(void **state)
{
	(void)state;
	struct codec_params q = P;
	q.cipher = CIPHER_XCHACHA20;
	q.zstd_level = 0;
	struct codec *c;
	assert_int_equal(codec_new(&q, &c), 0);
	assert_int_equal(codec_cipher(c), CIPHER_XCHACHA20);
	uint8_t *d;
	int fd = make_object(100000, false, &d);
	struct shards s;
	encode(c, 3, fd, 100000, &s);
	char why[2048];
	assert_int_equal(decode_mask(c, 3, &s, 0x3c, d, 100000, why, sizeof why), 0);
	shards_free(&s);
	free(d);
	close(fd);
	codec_free(c);
	q.k = 0;
	assert_int_equal(codec_new(&q, &c), -EINVAL);
	q.k = 40;
	q.m = 10;
	assert_int_equal(codec_new(&q, &c), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip_sizes),
		cmocka_unit_test(test_any_m_lost_or_corrupt),
		cmocka_unit_test(test_streaming_feed),
		cmocka_unit_test(test_hungry_feeding),
		cmocka_unit_test(test_refuses_wrong_key_tamper_foreign),
		cmocka_unit_test(test_xchacha_and_params),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
