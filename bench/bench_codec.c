/* bench/bench_codec.c - single-core speed of the store pipeline's stages
 * (zstd, AEAD, Reed-Solomon) and of the whole codec, encode and decode, on
 * 2:1 compressible data. Medians of several runs.
 *   bench-codec [--mib N] [--runs N] [--level ZSTD_LEVEL]
 */
#include <erasurecode.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zstd.h>

#include "codec.h"

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int cmpd(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof *v, cmpd);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* 2:1 compressible: every 64 bytes, 32 random then 32 repeating */
static void fill(uint8_t *d, size_t n)
{
	randombytes_buf(d, n);
	for (size_t i = 0; i + 64 <= n; i += 64)
		memset(d + i + 32, (int)(i / 64 % 4), 32);
}

static int discard(void *arg, unsigned i, const void *b, size_t n)
{
	(void)i;
	(void)b;
	*(size_t *)arg += n;
	return 0;
}

struct keep {
	uint8_t *buf[SHARD_MAX];
	size_t len[SHARD_MAX];
};

static int keep_sink(void *arg, unsigned i, const void *b, size_t n)
{
	struct keep *k = arg;
	k->buf[i] = realloc(k->buf[i], k->len[i] + n);
	memcpy(k->buf[i] + k->len[i], b, n);
	k->len[i] += n;
	return 0;
}

int main(int argc, char **argv)
{
	size_t mib = 64;
	int runs = 5, level = 3;
	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--mib"))
			mib = (size_t)atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--runs"))
			runs = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--level"))
			level = atoi(argv[i + 1]);
	}
	if (sodium_init() < 0 || runs < 1 || runs > 50 || !mib)
		return 2;
	size_t size = mib << 20;
	uint8_t *data = malloc(size), *tmp = malloc(ZSTD_compressBound(STRIPE_SIZE) + 64);
	fill(data, size);
	char path[] = "/var/tmp/qsfs-bench-codec-XXXXXX";
	int fd = mkstemp(path);
	if (fd < 0 || write(fd, data, size) != (ssize_t)size)
		return 1;
	double t[50], zs[50], aes[50], xc[50], rs[50], enc[50], dec[50];
	size_t zout = 0;
	uint8_t key[32], nonce[24] = { 0 };
	randombytes_buf(key, sizeof key);
	ZSTD_CCtx *zc = ZSTD_createCCtx();
	struct ec_args a = { .k = 4, .m = 2, .hd = 3, .ct = CHKSUM_NONE };
	int ec = liberasurecode_instance_create(EC_BACKEND_ISA_L_RS_CAUCHY, &a);
	struct codec_params p = { .k = 4, .m = 2, .zstd_level = level };
	randombytes_buf(p.key, sizeof p.key);
	struct codec *c;
	if (ec <= 0 || codec_new(&p, &c))
		return 1;
	for (int r = 0; r < runs; r++) {
		double t0 = now();
		zout = 0;
		for (size_t off = 0; off < size; off += STRIPE_SIZE)
			zout += ZSTD_compressCCtx(zc, tmp, ZSTD_compressBound(STRIPE_SIZE),
						  data + off, STRIPE_SIZE, level);
		zs[r] = (double)size / (now() - t0) / 1e6;
		unsigned long long cl;
		uint8_t *ct = malloc(STRIPE_SIZE + 16);
		if (crypto_aead_aes256gcm_is_available()) {
			t0 = now();
			for (size_t off = 0; off < size; off += STRIPE_SIZE)
				crypto_aead_aes256gcm_encrypt(ct, &cl, data + off, STRIPE_SIZE, NULL, 0,
							      NULL, nonce, key);
			aes[r] = (double)size / (now() - t0) / 1e6;
		} else {
			aes[r] = 0;
		}
		t0 = now();
		for (size_t off = 0; off < size; off += STRIPE_SIZE)
			crypto_aead_xchacha20poly1305_ietf_encrypt(ct, &cl, data + off, STRIPE_SIZE,
								   NULL, 0, NULL, nonce, key);
		xc[r] = (double)size / (now() - t0) / 1e6;
		free(ct);
		t0 = now();
		for (size_t off = 0; off < size; off += STRIPE_SIZE) {
			char **d, **q;
			uint64_t fl;
			liberasurecode_encode(ec, (const char *)data + off, STRIPE_SIZE, &d, &q, &fl);
			liberasurecode_encode_cleanup(ec, d, q);
		}
		rs[r] = (double)size / (now() - t0) / 1e6;
		size_t out = 0;
		t0 = now();
		codec_encode(c, 1, fd, size, discard, &out);
		enc[r] = (double)size / (now() - t0) / 1e6;
		struct keep k = { 0 };
		codec_encode(c, 1, fd, size, keep_sink, &k);
		struct shard_in in[6];
		for (int i = 0; i < 6; i++)
			in[i] = (struct shard_in){ i == 0 || i == 3 ? NULL : k.buf[i], k.len[i], "b" };
		char why[512];
		int ofd = open("/var/tmp/qsfs-bench-codec.out", O_RDWR | O_CREAT | O_TRUNC, 0600);
		t0 = now();
		if (codec_decode(c, 1, in, 6, ofd, why, sizeof why))
			fprintf(stderr, "decode: %s\n", why);
		dec[r] = (double)size / (now() - t0) / 1e6;
		close(ofd);
		for (int i = 0; i < 6; i++)
			free(k.buf[i]);
		t[r] = (double)out;
	}
	unlink(path);
	unlink("/var/tmp/qsfs-bench-codec.out");
	printf("bench-codec: %zu MiB of 2:1 data (zstd -%d gives %.2f:1), 1 MiB stripes, k=4 m=2, "
	       "1 core, medians of %d\n", mib, level, (double)size / (double)zout, runs);
	printf("zstd -%d compress:          %7.0f MB/s\n", level, median(zs, runs));
	printf("AES-256-GCM encrypt:       %7.0f MB/s%s\n", median(aes, runs),
	       crypto_aead_aes256gcm_is_available() ? "" : " (no AES-NI)");
	printf("XChaCha20-Poly1305:        %7.0f MB/s\n", median(xc, runs));
	printf("RS encode (isa-l cauchy):  %7.0f MB/s\n", median(rs, runs));
	printf("codec encode (all stages): %7.0f MB/s  (goal >= 250 per core)\n", median(enc, runs));
	printf("codec decode, 2 shards lost: %5.0f MB/s\n", median(dec, runs));
	printf("stored bytes / object bytes: %.2f\n", median(t, runs) / (double)size);
	codec_free(c);
	liberasurecode_instance_destroy(ec);
	ZSTD_freeCCtx(zc);
	free(data);
	free(tmp);
	return 0;
}
