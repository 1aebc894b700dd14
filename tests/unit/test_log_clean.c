/* tests/unit/test_log_clean.c - the cleaner (cache_clean.c): how segments
 * are chosen, what a clean leaves behind, and what it refuses. The cleaner
 * under random operations, reopens and crash images is in test_log_model. */
#include "testutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "segment.h"

static uint64_t seg_live_of, seg_live_id;

static void live_cb(void *arg, const struct cache_seg_info *s)
{
	(void)arg;
	if (s->id == seg_live_id)
		seg_live_of = s->live;
}

static uint64_t seg_live(struct cache *c, uint64_t id)
{
	seg_live_id = id;
	seg_live_of = UINT64_MAX;
	cache_segments(c, live_cb, NULL);
	return seg_live_of;
}

static void test_score(void **state)
{
	(void)state;
	const uint64_t sz = 64 + 1000;
	assert_true(cache_clean_score(sz, 0, 5, true) == 0);	/* dead: nothing to move */
	assert_true(cache_clean_score(sz, 1000, 5, true) == 0);	/* all live: no gain */
	assert_true(cache_clean_score(64, 0, 5, true) == 0);	/* empty */
	/* more garbage, older, local: better */
	assert_true(cache_clean_score(sz, 100, 5, true) > cache_clean_score(sz, 500, 5, true));
	assert_true(cache_clean_score(sz, 500, 50, true) > cache_clean_score(sz, 500, 5, true));
	assert_true(cache_clean_score(sz, 500, 5, true) > cache_clean_score(sz, 500, 5, false));
	/* LFS: an old segment at u = 0.75 beats a young one at u = 0.5 */
	assert_true(cache_clean_score(sz, 750, 100, true) > cache_clean_score(sz, 500, 2, true));
}

static void put_n(struct cache *c, const char *pfx, int n, size_t vlen)
{
	static uint8_t v[4096];
	for (int i = 0; i < n; i++) {
		char k[32];
		snprintf(k, sizeof k, "%s%04d", pfx, i);
		memset(v, i + 1, vlen);
		assert_int_equal(cache_put(c, k, strlen(k), v, vlen), 0);
	}
}

static void check_n(struct cache *c, const char *pfx, int n, size_t vlen, int ver)
{
	static uint8_t v[4096], want[4096];
	for (int i = 0; i < n; i++) {
		char k[32];
		snprintf(k, sizeof k, "%s%04d", pfx, i);
		memset(want, ver ? ver : i + 1, vlen);
		assert_int_equal(cache_get(c, k, strlen(k), v, sizeof v), (ssize_t)vlen);
		assert_memory_equal(v, want, vlen);
	}
}

/* Segments 1 and 2 hold keys a and b; most of a is overwritten: the pick
 * names segment 1, a clean leaves it dead with everything readable, before
 * and after a reopen, and the garbage target holds the cleaner back. */
static void test_pick_and_clean(void **state)
{
	(void)state;
	char *dir = tu_mkdtemp();
	struct cache *c = tu_open(dir, 64 << 10, NULL);
	put_n(c, "a", 40, 1000);
	assert_int_equal(cache_seal(c), 1);
	put_n(c, "b", 40, 1000);
	assert_int_equal(cache_seal(c), 2);
	uint64_t ids[4];
	assert_int_equal(cache_clean_pick(c, 0.2, ids, 4), 0);	/* no garbage yet */
	static uint8_t v[1000];
	memset(v, 0xee, sizeof v);
	for (int i = 0; i < 30; i++) {	/* 3/4 of segment 1 becomes garbage */
		char k[32];
		snprintf(k, sizeof k, "a%04d", i);
		assert_int_equal(cache_put(c, k, strlen(k), v, sizeof v), 0);
	}
	assert_int_equal(cache_seal(c), 3);
	/* segment 3 is all live, 2 too: only 1 is worth it */
	assert_int_equal(cache_clean_pick(c, 0.2, ids, 4), 1);
	assert_int_equal(ids[0], 1);
	assert_int_equal(cache_clean_pick(c, 0.9, ids, 4), 0);	/* under the target */
	struct cache_clean_result r;
	assert_int_equal(cache_clean_segment(c, 1, 0, &r), 0);
	assert_int_equal(r.records, 10);	/* a0030..a0039 */
	assert_int_equal(seg_live(c, 1), 0);
	struct cache_stats st;
	cache_stats(c, &st);
	assert_int_equal(st.dead_segments, 1);
	size_t n = cache_clean_pick(c, 0.0, ids, 4);	/* a dead one is not picked */
	for (size_t i = 0; i < n; i++)
		assert_int_not_equal(ids[i], 1);
	/* cleaning it again moves nothing */
	assert_int_equal(cache_clean_segment(c, 1, 0, &r), 0);
	assert_int_equal(r.records, 0);
	for (int i = 30; i < 40; i++) {
		char k[32];
		snprintf(k, sizeof k, "a%04d", i);
		static uint8_t got[1000], want[1000];
		memset(want, i + 1, sizeof want);
		assert_int_equal(cache_get(c, k, strlen(k), got, sizeof got), 1000);
		assert_memory_equal(got, want, sizeof want);
	}
	check_n(c, "b", 40, 1000, 0);
	assert_int_equal(cache_close(c), 0);
	c = tu_open(dir, 64 << 10, NULL);
	check_n(c, "b", 40, 1000, 0);
	assert_int_equal(seg_live(c, 1), 0);
	/* the active segment and unknown ones are refused */
	cache_stats(c, &st);
	assert_int_equal(cache_clean_segment(c, st.active_seg, 0, &r), -EINVAL);
	assert_int_equal(cache_clean_segment(c, 999, 0, &r), -EINVAL);
	assert_int_equal(cache_close(c), 0);
	tu_rmrf(dir);
	free(dir);
}

/* A bad record in the segment stops the clean with EIO naming it; what
 * was moved before it is whole, and nothing is lost. */
static void test_clean_bad_segment(void **state)
{
	(void)state;
	char *dir = tu_mkdtemp();
	struct cache *c = tu_open(dir, 64 << 10, NULL);
	put_n(c, "k", 40, 1000);
	assert_int_equal(cache_seal(c), 1);
	char name[SEG_NAME_LEN];
	seg_name(1, name);
	char *path = tu_path(dir, name);
	tu_flip(path, 64 + 30 * 1021 + 40);	/* inside record 30 */
	struct cache_clean_result r;
	tu_capture_begin();
	assert_int_equal(cache_clean_segment(c, 1, 0, &r), -EIO);
	char *err = tu_capture_end();
	assert_non_null(strstr(err, "cannot clean segment 1"));
	assert_non_null(strstr(err, name));
	free(err);
	/* records before the bad one were moved (the scan reports records as
	 * it verifies them), and they read back */
	assert_true(r.records <= 30);
	for (int i = 0; i < (int)r.records; i++) {
		char k[32];
		snprintf(k, sizeof k, "k%04d", i);
		static uint8_t got[1000], want[1000];
		memset(want, i + 1, sizeof want);
		assert_int_equal(cache_get(c, k, strlen(k), got, sizeof got), 1000);
		assert_memory_equal(got, want, sizeof want);
	}
	free(path);
	assert_int_equal(cache_close(c), 0);
	tu_rmrf(dir);
	free(dir);
}

/* The rate limit: 200 KB/s over about 40 KB of live records takes about
 * 0.2 s (checked loosely: the clean is not instant). */
static void test_clean_rate(void **state)
{
	(void)state;
	char *dir = tu_mkdtemp();
	struct cache *c = tu_open(dir, 64 << 10, NULL);
	put_n(c, "r", 40, 1000);
	assert_int_equal(cache_seal(c), 1);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	struct cache_clean_result r;
	assert_int_equal(cache_clean_segment(c, 1, 200000, &r), 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	assert_int_equal(r.records, 40);
	assert_true(s >= 0.15);	/* a lower bound only: slow machines pass */
	check_n(c, "r", 40, 1000, 0);
	assert_int_equal(cache_close(c), 0);
	tu_rmrf(dir);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_score),
		cmocka_unit_test(test_pick_and_clean),
		cmocka_unit_test(test_clean_bad_segment),
		cmocka_unit_test(test_clean_rate),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
