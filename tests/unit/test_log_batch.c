/* tests/unit/test_log_batch.c - atomic batches (cache_apply): order and
 * reopen, one segment per batch, limits, a batch torn at every byte, a
 * corrupt record inside a batch, and version 1 segments. */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "segment.h"
#include "../../common/endian.h"

#define PUT(k, v) { .key = (k), .klen = strlen(k), .val = (v), .vlen = strlen(v) }
#define DEL(k) { .del = true, .key = (k), .klen = strlen(k) }

static void expect(struct cache *c, const char *k, const char *v)
{
	uint8_t *got;
	ssize_t n = tu_get(c, k, &got);
	if (!v) {
		assert_int_equal(n, -ENOENT);
		return;
	}
	assert_int_equal(n, (ssize_t)strlen(v));
	assert_memory_equal(got, v, (size_t)n);
	free(got);
}

static void test_batch_applies_in_order_and_survives_reopen(void **state)
{
	(void)state;
	char *dir = tu_mkdtemp();
	struct cache *c = tu_open(dir, 1 << 20, NULL);
	tu_put(c, "x", "old x", 5);
	tu_put(c, "y", "old y", 5);
	struct cache_op ops[] = {
		PUT("a", "first a"), PUT("b", "b"), DEL("x"), DEL("never"),
		PUT("a", "second a"), PUT("y", "new y"), DEL("b"),
	};
	assert_int_equal(cache_apply(c, ops, sizeof ops / sizeof *ops), 0);
	for (int round = 0; round < 2; round++) {
		expect(c, "a", "second a");
		expect(c, "b", NULL);
		expect(c, "x", NULL);
		expect(c, "y", "new y");
		expect(c, "never", NULL);
		struct cache_stats st;
		cache_stats(c, &st);
		assert_int_equal(st.keys, 2);
		assert_int_equal(cache_close(c), 0);
		if (round == 0)
			tu_remove_checkpoints(dir);	/* the second round replays the segment */
		c = tu_open(dir, 1 << 20, NULL);
	}
	/* one op is a plain record; a DEL of an absent key is not an error */
	struct cache_op one = DEL("nothing");
	assert_int_equal(cache_apply(c, &one, 1), 0);
	/* a batch survives a seal and a replay of the sealed segment */
	struct cache_op two[] = { PUT("s1", "one"), PUT("s2", "two") };
	assert_int_equal(cache_apply(c, two, 2), 0);
	assert_true(cache_seal(c) > 0);
	assert_int_equal(cache_close(c), 0);
	tu_remove_checkpoints(dir);
	c = tu_open(dir, 1 << 20, NULL);
	expect(c, "s1", "one");
	expect(c, "s2", "two");
	expect(c, "a", "second a");
	assert_int_equal(cache_close(c), 0);
	tu_rmrf(dir);
	free(dir);
}

struct where {
	const char *prefix;
	uint64_t seg;	/* segment holding the keys with that prefix, 0 none */
	bool split;	/* seen in two segments */
	uint64_t cur;
};

static int where_cb(void *arg, const struct seg_rec *r)
{
	struct where *w = arg;
	size_t pl = strlen(w->prefix);
	if (r->klen >= pl && !memcmp(r->key, w->prefix, pl)) {
		if (w->seg && w->seg != w->cur)
			w->split = true;
		w->seg = w->cur;
	}
	return 0;
}

static void test_batch_never_spans_segments_and_limits(void **state)
{
	(void)state;
	char *dir = tu_mkdtemp();
	uint64_t segsize = 4096;
	struct cache *c = tu_open(dir, segsize, NULL);
	char val[200];
	memset(val, 'v', sizeof val - 1);
	val[sizeof val - 1] = 0;
	/* fill the active segment so that the batch below cannot fit in it */
	for (int i = 0; i < 14; i++) {
		char k[16];
		snprintf(k, sizeof k, "fill%02d", i);
		tu_put(c, k, val, sizeof val - 1);
	}
	struct cache_stats st;
	cache_stats(c, &st);
	uint64_t before = st.active_seg;
	struct cache_op ops[6];
	char keys[6][16];
	for (int i = 0; i < 6; i++) {
		snprintf(keys[i], sizeof keys[i], "batch%d", i);
		ops[i] = (struct cache_op)PUT(keys[i], val);
	}
	assert_int_equal(cache_apply(c, ops, 6), 0);
	cache_stats(c, &st);
	assert_int_equal(st.active_seg, before + 1);	/* sealed first, then written */
	struct where w = { .prefix = "batch" };
	int dfd = open(dir, O_RDONLY | O_DIRECTORY);
	for (uint64_t id = 1; id <= st.active_seg; id++) {
		char name[SEG_NAME_LEN];
		seg_name(id, name);
		int fd = openat(dfd, name, O_RDONLY);
		assert_true(fd >= 0);
		struct seg_scan_result res;
		w.cur = id;
		assert_int_equal(seg_scan(fd, id, st.volume_id, false, where_cb, &w, NULL, &res), 0);
		assert_true(res.clean);
		close(fd);
	}
	close(dfd);
	assert_int_equal(w.seg, before + 1);
	assert_false(w.split);

	/* limits: nothing written when refused */
	uint64_t nkeys = st.keys;
	struct cache_op big[20];
	for (int i = 0; i < 20; i++)
		big[i] = (struct cache_op)PUT("big", val);	/* 20 x 219 bytes > 4 KiB */
	assert_int_equal(cache_apply(c, big, 20), -EINVAL);
	assert_int_equal(cache_apply(c, big, 0), -EINVAL);
	assert_int_equal(cache_apply(c, big, CACHE_BATCH_MAX + 1), -EINVAL);
	struct cache_op badkey[2] = { PUT("ok", "v"), { .key = "", .klen = 0, .val = "v", .vlen = 1 } };
	assert_int_equal(cache_apply(c, badkey, 2), -EINVAL);
	expect(c, "ok", NULL);
	cache_stats(c, &st);
	assert_int_equal(st.keys, nkeys);
	assert_int_equal(cache_close(c), 0);
	tu_rmrf(dir);
	free(dir);
}

#define NB 6
static const char *bkeys[NB] = { "k0", "k1", "k2", "gone", "fresh", "k0" };

/* A log whose active segment 1 holds synced "old" values, then one batch
 * (not synced); copied as kill -9 leaves it. *b0 and *b1: the batch's
 * offsets in the segment file. */
static char *make_batch_image(uint64_t *b0, uint64_t *b1)
{
	char *dir = tu_mkdtemp();
	struct cache *c = tu_open(dir, 1 << 20, NULL);
	tu_put(c, "k0", "old0", 4);
	tu_put(c, "k1", "old1", 4);
	tu_put(c, "k2", "old2", 4);
	tu_put(c, "gone", "still here", 10);
	assert_int_equal(cache_sync(c), 0);
	char *seg = tu_path(dir, "seg-0000000000000001.qseg");
	*b0 = (uint64_t)tu_fsize(seg);
	struct cache_op ops[NB] = {
		PUT("k0", "new0 but overwritten"), PUT("k1", "new1"), PUT("k2", "new2"),
		DEL("gone"), PUT("fresh", "fresh value"), PUT("k0", "new0"),
	};
	(void)bkeys;
	assert_int_equal(cache_apply(c, ops, NB), 0);
	*b1 = (uint64_t)tu_fsize(seg);
	free(seg);
	cache_quiesce(c);
	char *img = tu_mkdtemp();
	tu_rmrf(img);
	tu_copy(dir, img);
	assert_int_equal(cache_close(c), 0);
	tu_rmrf(dir);
	free(dir);
	return img;
}

static void expect_old(struct cache *c)
{
	expect(c, "k0", "old0");
	expect(c, "k1", "old1");
	expect(c, "k2", "old2");
	expect(c, "gone", "still here");
	expect(c, "fresh", NULL);
}

static void expect_new(struct cache *c)
{
	expect(c, "k0", "new0");
	expect(c, "k1", "new1");
	expect(c, "k2", "new2");
	expect(c, "gone", NULL);
	expect(c, "fresh", "fresh value");
}

/* Open a copy of img with segment 1 cut at cut, or with a byte flipped at
 * flip (cut 0), and check all-or-nothing. */
static void check_image(const char *img, uint64_t b0, uint64_t b1, uint64_t cut,
			uint64_t flip)
{
	char *dir = tu_mkdtemp();
	tu_rmrf(dir);
	tu_copy(img, dir);
	char *seg = tu_path(dir, "seg-0000000000000001.qseg");
	if (flip)
		tu_flip(seg, (long long)flip);
	else
		assert_int_equal(truncate(seg, (off_t)cut), 0);
	tu_capture_begin();
	struct cache *c = tu_open(dir, 1 << 20, NULL);
	char *log = tu_capture_end();
	if (!flip && cut == b1) {
		assert_null(strstr(log, "torn tail"));
		expect_new(c);
	} else {
		if (cut != b0)
			assert_non_null(strstr(log, "torn tail"));
		assert_int_equal(tu_fsize(seg), (long long)b0);
		expect_old(c);
	}
	free(log);
	/* the log goes on: append, reopen */
	tu_put(c, "after", "cut", 3);
	assert_int_equal(cache_close(c), 0);
	c = tu_open(dir, 1 << 20, NULL);
	expect(c, "after", "cut");
	if (!flip && cut == b1)
		expect_new(c);
	else
		expect_old(c);
	assert_int_equal(cache_close(c), 0);
	free(seg);
	tu_rmrf(dir);
	free(dir);
}

static void test_batch_torn_at_every_byte(void **state)
{
	(void)state;
	uint64_t b0, b1;
	char *img = make_batch_image(&b0, &b1);
	assert_true(b1 > b0 + BATCH_REC_SIZE);
	for (uint64_t cut = b0; cut <= b1; cut++)
		check_image(img, b0, b1, cut, 0);
	/* a flipped byte anywhere in the batch drops all of it */
	for (uint64_t off = b0; off < b1; off += 7)
		check_image(img, b0, b1, 0, off);
	tu_rmrf(img);
	free(img);
}

/* Rewrite a segment header as format version 1 (checksum recomputed, and
 * for a sealed segment the seal's content checksum too). */
static void make_v1(const char *path, uint64_t id, bool sealed)
{
	int fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	long long size = tu_fsize(path);
	uint8_t *f = malloc((size_t)size);
	assert_int_equal(pread(fd, f, (size_t)size, 0), size);
	assert_int_equal(get_le32(f + 8), SEG_VERSION);
	put_le32(f + 8, 1);
	put_le64(f + 56, sum64(f, 56, 0));
	if (sealed) {
		uint8_t *seal = f + size - SEAL_REC_SIZE;
		struct seal_info si;
		seal_decode(seal + REC_HDR_SIZE, &si);
		assert_int_equal(si.seal_off, (uint64_t)size - SEAL_REC_SIZE);
		si.content_sum = sum64(f, si.seal_off, 0);
		seal_encode(&si, seal + REC_HDR_SIZE);
		rec_encode_hdr(seal, id, REC_SEAL, NULL, 0, seal + REC_HDR_SIZE, SEAL_VAL_SIZE);
	}
	assert_int_equal(pwrite(fd, f, (size_t)size, 0), size);
	free(f);
	close(fd);
}

static void test_version1_segments(void **state)
{
	(void)state;
	char *dir = tu_mkdtemp();
	struct cache *c = tu_open(dir, 1 << 20, NULL);
	tu_put(c, "v1a", "sealed in v1", 12);
	assert_int_equal(cache_seal(c), 1);
	tu_put(c, "v1b", "active in v1", 12);
	struct cache_op ops[2] = { PUT("bat1", "x"), PUT("bat2", "y") };
	assert_int_equal(cache_apply(c, ops, 2), 0);
	assert_int_equal(cache_close(c), 0);
	tu_remove_checkpoints(dir);
	char *s1 = tu_path(dir, "seg-0000000000000001.qseg");
	char *s2 = tu_path(dir, "seg-0000000000000002.qseg");
	chmod(s1, 0644);
	make_v1(s1, 1, true);
	make_v1(s2, 2, false);
	/* version 1 segments are read; a batch in one is not (cut off, named) */
	tu_capture_begin();
	c = tu_open(dir, 1 << 20, NULL);
	char *log = tu_capture_end();
	assert_non_null(strstr(log, "batch record in a version 1 segment"));
	free(log);
	expect(c, "v1a", "sealed in v1");
	expect(c, "v1b", "active in v1");
	expect(c, "bat1", NULL);
	expect(c, "bat2", NULL);
	/* the v1 active segment was sealed at open: batches written now land
	 * in a v2 segment and survive a reopen, with or without a seal, and a
	 * replay without checkpoints */
	struct cache_stats st;
	cache_stats(c, &st);
	assert_int_equal(st.active_seg, 3);
	struct cache_op more[2] = { PUT("new1", "a"), PUT("new2", "b") };
	assert_int_equal(cache_apply(c, more, 2), 0);
	assert_int_equal(cache_close(c), 0);
	c = tu_open(dir, 1 << 20, NULL);
	expect(c, "new1", "a");
	struct cache_op last[2] = { PUT("new3", "c"), DEL("new1") };
	assert_int_equal(cache_apply(c, last, 2), 0);
	assert_true(cache_seal(c) > 0);
	assert_int_equal(cache_close(c), 0);
	tu_remove_checkpoints(dir);
	c = tu_open(dir, 1 << 20, NULL);
	expect(c, "v1a", "sealed in v1");
	expect(c, "v1b", "active in v1");
	expect(c, "new1", NULL);
	expect(c, "new2", "b");
	expect(c, "new3", "c");
	assert_int_equal(cache_close(c), 0);
	free(s1);
	free(s2);
	tu_rmrf(dir);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_batch_applies_in_order_and_survives_reopen),
		cmocka_unit_test(test_batch_never_spans_segments_and_limits),
		cmocka_unit_test(test_batch_torn_at_every_byte),
		cmocka_unit_test(test_version1_segments),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
