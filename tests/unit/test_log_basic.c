/* tests/unit/test_log_basic.c - put/get/del/scan semantics of the log,
 * across seal and reopen, and bad arguments. */
#include "testutil.h"

#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void test_put_get_del_overwrite(void **state)
{
	(void)state;
	char *dir = tu_mkdtemp();
	struct cache *c = tu_open(dir, 0, NULL);
	uint8_t *v;
	assert_int_equal(tu_get(c, "a", &v), -ENOENT);
	tu_put(c, "a", "one", 3);
	tu_put(c, "b", "two", 3);
	assert_int_equal(tu_get(c, "a", &v), 3);
	assert_memory_equal(v, "one", 3);
	free(v);
	tu_put(c, "a", "eleven", 6);	/* overwrite */
	assert_int_equal(tu_get(c, "a", &v), 6);
	assert_memory_equal(v, "eleven", 6);
	free(v);
	assert_int_equal(cache_del(c, "a", 1), 0);
	assert_int_equal(tu_get(c, "a", &v), -ENOENT);
	assert_int_equal(cache_del(c, "a", 1), -ENOENT);
	/* empty value */
	tu_put(c, "e", "", 0);
	assert_int_equal(tu_get(c, "e", &v), 0);
	free(v);
	/* short buffer: returns full length, copies what fits */
	char small[2];
	assert_int_equal(cache_get(c, "b", 1, small, sizeof small), 3);
	assert_memory_equal(small, "tw", 2);
	assert_int_equal(cache_close(c), 0);

	c = tu_open(dir, 0, NULL);
	assert_int_equal(tu_get(c, "a", &v), -ENOENT);
	assert_int_equal(tu_get(c, "b", &v), 3);
	assert_memory_equal(v, "two", 3);
	free(v);
	assert_int_equal(tu_get(c, "e", &v), 0);
	free(v);
	assert_int_equal(cache_close(c), 0);
	tu_rmrf(dir);
	free(dir);
}

static void test_bad_arguments(void **state)
{
	(void)state;
	char *dir = tu_mkdtemp();
	struct cache *c = tu_open(dir, 64 << 10, NULL);
	uint8_t key[300] = { 0 };
	assert_int_equal(cache_put(c, key, 0, "x", 1), -EINVAL);
	assert_int_equal(cache_put(c, key, 256, "x", 1), -EINVAL);
	assert_int_equal(cache_put(c, key, 255, "x", 1), 0);	/* 255 is fine */
	assert_int_equal(cache_get(c, key, 0, NULL, 0), -EINVAL);
	assert_int_equal(cache_del(c, key, 256), -EINVAL);
	/* a value that can never fit in a 64 KiB segment */
	uint8_t *big = calloc(1, 64 << 10);
	assert_int_equal(cache_put(c, "big", 3, big, 64 << 10), -EINVAL);
	/* a length near SIZE_MAX must not wrap the size check */
	assert_int_equal(cache_put(c, "big", 3, big, SIZE_MAX - 8), -EINVAL);
	free(big);
	assert_int_equal(cache_confirm(c, 999), -ENOENT);
	assert_int_equal(cache_close(c), 0);

	/* bad options */
	struct cache_opts o = { .dir = dir, .segment_size = 100 };
	struct cache *c2 = NULL;
	assert_int_equal(cache_open(&o, &c2), -EINVAL);
	o.segment_size = 0;
	o.hook = "/nonexistent/hook";
	assert_int_equal(cache_open(&o, &c2), -EINVAL);
	o.hook = NULL;
	/* wrong volume */
	uint8_t other[VOLUME_ID_SIZE] = { 7 };
	o.volume_id = other;
	tu_capture_begin();
	assert_int_equal(cache_open(&o, &c2), -EINVAL);
	char *log = tu_capture_end();
	assert_non_null(strstr(log, "belongs to volume"));
	free(log);
	tu_rmrf(dir);
	free(dir);
}

static void test_exclusive_lock(void **state)
{
	(void)state;
	char *dir = tu_mkdtemp();
	struct cache *c = tu_open(dir, 0, NULL);
	struct cache_opts o = { .dir = dir };
	struct cache *c2 = NULL;
	tu_capture_begin();
	assert_int_equal(cache_open(&o, &c2), -EBUSY);
	char *log = tu_capture_end();
	assert_non_null(strstr(log, "in use by another process"));
	free(log);
	/* read-only opens are allowed alongside */
	o.read_only = true;
	assert_int_equal(cache_open(&o, &c2), 0);
	assert_int_equal(cache_put(c2, "k", 1, "v", 1), -EROFS);
	cache_close(c2);
	assert_int_equal(cache_close(c), 0);
	tu_rmrf(dir);
	free(dir);
}

static void test_large_values_and_seal(void **state)
{
	(void)state;
	char *dir = tu_mkdtemp();
	/* 4 MiB segments, 1 MiB values: 3 per segment */
	struct cache *c = tu_open(dir, 4 << 20, NULL);
	size_t vl = 1 << 20;
	uint8_t *buf = malloc(vl);
	for (int i = 0; i < 10; i++) {
		for (size_t j = 0; j < vl; j++)
			buf[j] = (uint8_t)(i * 7 + j * 13);
		char k[8];
		snprintf(k, sizeof k, "v%d", i);
		tu_put(c, k, buf, vl);
	}
	struct cache_stats st;
	cache_stats(c, &st);
	assert_int_equal(st.active_seg, 4);	/* 3 + 3 + 3 + 1 */
	assert_int_equal(cache_seal(c), 4);
	assert_int_equal(cache_seal(c), 0);	/* empty active: nothing to seal */
	assert_int_equal(cache_close(c), 0);
	c = tu_open(dir, 4 << 20, NULL);
	for (int i = 0; i < 10; i++) {
		char k[8];
		snprintf(k, sizeof k, "v%d", i);
		uint8_t *v;
		assert_int_equal(tu_get(c, k, &v), (ssize_t)vl);
		for (size_t j = 0; j < vl; j += 4093)
			assert_int_equal(v[j], (uint8_t)(i * 7 + j * 13));
		free(v);
	}
	cache_stats(c, &st);
	assert_int_equal(st.active_seg, 5);
	assert_int_equal(st.keys, 10);
	assert_int_equal(cache_close(c), 0);
	free(buf);
	tu_rmrf(dir);
	free(dir);
}

/* cache_seal_older: the recovery point of cache.max_segment_age */
static void test_seal_older(void **state)
{
	(void)state;
	char *dir = tu_mkdtemp();
	struct cache *c = tu_open(dir, 4 << 20, NULL);
	const uint64_t hour = 3600ull * 1000000000ull;
	assert_int_equal(cache_seal_older(c, 0), 0);	/* empty: nothing to seal */
	tu_put(c, "a", "1", 1);
	struct cache_stats st;
	cache_stats(c, &st);
	assert_int_equal(st.active_records, 1);
	assert_true(st.active_age_ns < hour);
	assert_int_equal(cache_seal_older(c, hour), 0);	/* too young */
	usleep(20000);
	assert_int_equal(cache_seal_older(c, 10000000), 1);	/* 10 ms old: sealed */
	cache_stats(c, &st);
	assert_int_equal(st.active_records, 0);
	assert_int_equal(st.active_age_ns, 0);
	/* the age starts again with the new segment's first record */
	tu_put(c, "b", "2", 1);
	assert_int_equal(cache_seal_older(c, hour), 0);
	assert_int_equal(cache_close(c), 0);
	/* records replayed at open have an unknown age: they count as old */
	c = tu_open(dir, 4 << 20, NULL);
	assert_int_equal(cache_seal_older(c, hour), 2);
	assert_int_equal(cache_close(c), 0);
	tu_rmrf(dir);
	free(dir);
}

struct collect {
	char keys[64][32];
	int n;
	int stop_at;
};

static int collect_cb(void *arg, const uint8_t *key, size_t klen, const uint8_t *val,
		      size_t vlen)
{
	struct collect *c = arg;
	assert_true(klen < 32);
	memcpy(c->keys[c->n], key, klen);
	c->keys[c->n][klen] = 0;
	if (val) {
		/* values are "val:<key>" */
		assert_int_equal(vlen, klen + 4);
		assert_memory_equal(val, "val:", 4);
		assert_memory_equal(val + 4, key, klen);
	}
	c->n++;
	return c->n == c->stop_at ? 42 : 0;
}

static void put_kv(struct cache *c, const char *k)
{
	char v[64];
	snprintf(v, sizeof v, "val:%s", k);
	tu_put(c, k, v, strlen(v));
}

static void test_scan_prefix_order(void **state)
{
	(void)state;
	char *dir = tu_mkdtemp();
	struct cache *c = tu_open(dir, 4096, NULL);	/* tiny segments: scans cross many */
	const char *keys[] = { "d/b", "d/a", "e", "d", "d/c", "c/z", "d/", "da" };
	for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
		put_kv(c, keys[i]);
	for (int reopen = 0; reopen < 2; reopen++) {
		struct collect col = { .stop_at = -1 };
		assert_int_equal(cache_scan(c, "d/", 2, true, collect_cb, &col), 0);
		assert_int_equal(col.n, 4);
		assert_string_equal(col.keys[0], "d/");
		assert_string_equal(col.keys[1], "d/a");
		assert_string_equal(col.keys[2], "d/b");
		assert_string_equal(col.keys[3], "d/c");
		memset(&col, 0, sizeof col);
		col.stop_at = -1;
		assert_int_equal(cache_scan(c, "", 0, false, collect_cb, &col), 0);
		assert_int_equal(col.n, 8);
		for (int i = 1; i < col.n; i++)
			assert_true(strcmp(col.keys[i - 1], col.keys[i]) < 0);
		/* a scan can start inside the prefix: keys before from are skipped */
		memset(&col, 0, sizeof col);
		col.stop_at = -1;
		assert_int_equal(cache_scan_from(c, "d/", 2, "d/aa", 4, true, collect_cb, &col), 0);
		assert_int_equal(col.n, 2);
		assert_string_equal(col.keys[0], "d/b");
		assert_string_equal(col.keys[1], "d/c");
		memset(&col, 0, sizeof col);
		col.stop_at = -1;
		assert_int_equal(cache_scan_from(c, "d/", 2, "d/b", 3, false, collect_cb, &col), 0);
		assert_int_equal(col.n, 2);
		assert_string_equal(col.keys[0], "d/b");
		memset(&col, 0, sizeof col);
		col.stop_at = -1;	/* past the prefix's last key: nothing */
		assert_int_equal(cache_scan_from(c, "d/", 2, "d/d", 3, false, collect_cb, &col), 0);
		assert_int_equal(col.n, 0);
		assert_int_equal(cache_scan_from(c, "d/", 2, "c/z", 3, false, collect_cb, &col),
				 -EINVAL);	/* outside the prefix */
		/* the callback can stop the scan */
		memset(&col, 0, sizeof col);
		col.stop_at = 3;
		assert_int_equal(cache_scan(c, "", 0, false, collect_cb, &col), 42);
		assert_int_equal(col.n, 3);
		assert_int_equal(cache_close(c), 0);
		c = tu_open(dir, 4096, NULL);
	}
	assert_int_equal(cache_close(c), 0);
	tu_rmrf(dir);
	free(dir);
}

/* A scan whose callback changes the log sees every key that exists for the
 * whole scan exactly once (batches are re-sought by key). */
struct mut {
	struct cache *c;
	int seen[1000];
	int n;
};

static int mut_cb(void *arg, const uint8_t *key, size_t klen, const uint8_t *val,
		  size_t vlen)
{
	(void)val;
	(void)vlen;
	struct mut *m = arg;
	char k[32];
	memcpy(k, key, klen);
	k[klen] = 0;
	int i = atoi(k + 2);
	if (!strncmp(k, "s/", 2)) {
		m->seen[i]++;
		/* delete a later key and add new ones while scanning */
		char o[32];
		snprintf(o, sizeof o, "t/%04d", i);
		put_kv(m->c, o);
		if (i % 2 == 0 && i + 301 < 1000) {
			snprintf(o, sizeof o, "x/%04d", i + 301);
			cache_del(m->c, o, strlen(o));
		}
	}
	m->n++;
	return 0;
}

static void test_scan_during_changes(void **state)
{
	(void)state;
	char *dir = tu_mkdtemp();
	struct cache *c = tu_open(dir, 64 << 10, NULL);
	for (int i = 0; i < 1000; i++) {
		char k[32];
		snprintf(k, sizeof k, "s/%04d", i);
		put_kv(c, k);
	}
	struct mut m = { .c = c };
	assert_int_equal(cache_scan(c, "s/", 2, true, mut_cb, &m), 0);
	for (int i = 0; i < 1000; i++)
		assert_int_equal(m.seen[i], 1);
	assert_int_equal(cache_close(c), 0);
	tu_rmrf(dir);
	free(dir);
}

static void test_read_only_open(void **state)
{
	(void)state;
	char *dir = tu_mkdtemp();
	struct cache_opts o = { .dir = dir, .read_only = true };
	struct cache *c;
	tu_capture_begin();
	assert_int_equal(cache_open(&o, &c), -ENOENT);	/* not a cache dir */
	free(tu_capture_end());
	c = tu_open(dir, 0, NULL);
	tu_put(c, "k", "v", 1);
	assert_int_equal(cache_sync(c), 0);
	assert_int_equal(cache_close(c), 0);
	assert_int_equal(cache_open(&o, &c), 0);
	uint8_t *v;
	assert_int_equal(tu_get(c, "k", &v), 1);
	free(v);
	assert_int_equal(cache_del(c, "k", 1), -EROFS);
	assert_int_equal(cache_seal(c), -EROFS);
	assert_int_equal(cache_close(c), 0);
	tu_rmrf(dir);
	free(dir);
}

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

/* Segment fds are opened on demand and at most max_open_fds stay open, so
 * a volume of many segments does not run out of file descriptors. */
static void test_open_fds_are_bounded(void **state)
{
	(void)state;
	char *dir = tu_mkdtemp();
	struct cache_opts o = { .dir = dir, .segment_size = 4096, .max_open_fds = 4 };
	struct cache *c;
	assert_int_equal(cache_open(&o, &c), 0);
	uint8_t v[1000];
	for (int i = 0; i < 120; i++) {	/* 3 per segment: 40 segments */
		char k[16];
		snprintf(k, sizeof k, "f%03d", i);
		memset(v, i, sizeof v);
		tu_put(c, k, v, sizeof v);
	}
	assert_int_equal(cache_close(c), 0);
	int before = count_fds();
	assert_int_equal(cache_open(&o, &c), 0);
	for (int round = 0; round < 2; round++) {
		for (int i = 0; i < 120; i++) {
			char k[16];
			snprintf(k, sizeof k, "f%03d", i);
			assert_int_equal(cache_get(c, k, strlen(k), v, sizeof v), 1000);
			assert_int_equal(v[999], i);
			/* the log's own fds: dir, lock, state.log, the active
			 * segment, and at most 4 segment fds */
			assert_true(count_fds() - before <= 4 + 4);
		}
	}
	assert_int_equal(cache_close(c), 0);
	tu_rmrf(dir);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_put_get_del_overwrite),
		cmocka_unit_test(test_bad_arguments),
		cmocka_unit_test(test_exclusive_lock),
		cmocka_unit_test(test_large_values_and_seal),
		cmocka_unit_test(test_seal_older),
		cmocka_unit_test(test_scan_prefix_order),
		cmocka_unit_test(test_scan_during_changes),
		cmocka_unit_test(test_read_only_open),
		cmocka_unit_test(test_open_fds_are_bounded),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
