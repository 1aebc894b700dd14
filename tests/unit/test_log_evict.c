/* tests/unit/test_log_evict.c - eviction never removes unconfirmed or
 * active segments, respects the limit when it can, evicts least recently
 * read first, keeps the reads' segments under a write backlog, and says so
 * when it cannot get under the limit. */
#include "testutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SEG (64u << 10)

struct segs {
	struct cache_seg_info v[256];
	int n;
};

static void collect(void *arg, const struct cache_seg_info *s)
{
	struct segs *g = arg;
	g->v[g->n++] = *s;
}

static struct segs list(struct cache *c)
{
	struct segs g = { .n = 0 };
	cache_segments(c, collect, &g);
	return g;
}

/* n keys of 10 KB: about 6 per 64 KiB segment */
static void fill(struct cache *c, int n)
{
	uint8_t v[10000];
	for (int i = 0; i < n; i++) {
		char k[16];
		snprintf(k, sizeof k, "e%05d", i);
		memset(v, i & 0xff, sizeof v);
		tu_put(c, k, v, sizeof v);
	}
}

/* A hook that keeps a copy of each sealed segment (the "backends") in
 * TOP/remote and serves it back when one is missing; confirming is the
 * test's job. */
static char *remote_hook(const char *top)
{
	return tu_script(top, "hook",
		"d=$(dirname \"$0\")/remote; mkdir -p \"$d\"\n"
		"case \"$1\" in\n"
		"segment-sealed) cp \"$3\" \"$d/\" ;;\n"
		"segment-missing) cp \"$d/$(basename \"$3\" .tmp)\" \"$3\" ;;\n"
		"esac\n");
}

static struct cache *open_limited(const char *dir, uint64_t max, const char *hook)
{
	struct cache_opts o = { .dir = dir, .segment_size = SEG, .max_size = max, .hook = hook,
				.hook_retry_ms = 50 };
	struct cache *c;
	assert_int_equal(cache_open(&o, &c), 0);
	return c;
}

static void test_never_evicts_unconfirmed_or_active(void **state)
{
	(void)state;
	char *dir = tu_mkdtemp();
	struct cache *c = open_limited(dir, 2 * SEG, NULL);
	tu_capture_begin();
	fill(c, 60);	/* ~10 segments */
	cache_quiesce(c);
	cache_evict(c);
	char *log = tu_capture_end();
	struct cache_stats st;
	cache_stats(c, &st);
	assert_true(st.local_bytes > 2 * SEG);
	assert_true(st.over_limit);
	assert_int_equal(st.evicted, 0);
	assert_non_null(strstr(log, "over its limit"));
	free(log);
	struct segs g = list(c);
	for (int i = 0; i < g.n; i++)
		assert_true(g.v[i].local);
	/* the active segment cannot be confirmed */
	assert_int_equal(cache_confirm(c, st.active_seg), -EINVAL);

	/* confirm every sealed segment: eviction gets under the limit, never
	 * touching the active one */
	for (int i = 0; i < g.n; i++)
		if (g.v[i].state == SEG_SEALED)
			assert_int_equal(cache_confirm(c, g.v[i].id), 0);
	cache_quiesce(c);
	cache_stats(c, &st);
	assert_true(st.local_bytes - st.checkpoint_bytes <= 2 * SEG);
	assert_false(st.over_limit);
	assert_true(st.evicted > 0);
	g = list(c);
	for (int i = 0; i < g.n; i++) {
		if (g.v[i].id == st.active_seg) {
			assert_true(g.v[i].local);
			assert_int_equal(g.v[i].state, SEG_ACTIVE);
		} else if (!g.v[i].local) {
			assert_int_equal(g.v[i].state, SEG_EVICTED);
		}
		char name[64];
		snprintf(name, sizeof name, "seg-%016llx.qseg", (unsigned long long)g.v[i].id);
		char *p = tu_path(dir, name);
		assert_int_equal(access(p, F_OK) == 0, g.v[i].local);
		free(p);
	}
	/* the evicted state survives a reopen */
	assert_int_equal(cache_close(c), 0);
	c = open_limited(dir, 2 * SEG, NULL);
	struct segs h = list(c);
	assert_int_equal(h.n, g.n + (h.n > g.n));
	for (int i = 0; i < g.n; i++)
		assert_int_equal(h.v[i].local, g.v[i].local);
	/* an evicted key without a hook is a clear EIO, not a crash */
	uint8_t v[10000];
	tu_capture_begin();
	assert_int_equal(cache_get(c, "e00000", 6, v, sizeof v), -EIO);
	log = tu_capture_end();
	assert_non_null(strstr(log, "is not on local disk and no hook is configured"));
	free(log);
	assert_int_equal(cache_close(c), 0);
	tu_rmrf(dir);
	free(dir);
}

/* Checkpoints have their own budget: a volume of many small keys whose
 * checkpoints alone are larger than max_size is not "over the limit" once
 * every segment is uploaded (writers used to wait for good). */
static void test_checkpoints_do_not_count_against_the_limit(void **state)
{
	(void)state;
	char *dir = tu_mkdtemp();
	struct cache *c = open_limited(dir, 2 * SEG, NULL);
	tu_capture_begin();
	for (int i = 0; i < 20000; i++) {	/* small values, many keys */
		char k[32];
		snprintf(k, sizeof k, "many/small/key/%06d", i);
		tu_put(c, k, "v", 1);
	}
	assert_true(cache_seal(c) > 0);
	cache_quiesce(c);
	free(tu_capture_end());
	struct segs g = list(c);
	for (int i = 0; i < g.n; i++)
		if (g.v[i].state == SEG_SEALED)
			assert_int_equal(cache_confirm(c, g.v[i].id), 0);
	cache_quiesce(c);
	cache_evict(c);
	struct cache_stats st;
	cache_stats(c, &st);
	print_message("# checkpoints %llu bytes, limit %u\n",
		      (unsigned long long)st.checkpoint_bytes, 2 * SEG);
	assert_true(st.checkpoint_bytes > 2 * SEG);	/* the case at hand */
	assert_false(st.over_limit);
	assert_true(st.local_bytes - st.checkpoint_bytes <= 2 * SEG);
	assert_int_equal(cache_close(c), 0);
	tu_rmrf(dir);
	free(dir);
}

static void test_least_recently_read_goes_first(void **state)
{
	(void)state;
	char *dir = tu_mkdtemp();
	struct cache *c = open_limited(dir, 0, NULL);	/* no limit while filling */
	fill(c, 60);
	cache_seal(c);
	struct segs g = list(c);
	for (int i = 0; i < g.n; i++)
		if (g.v[i].state == SEG_SEALED)
			assert_int_equal(cache_confirm(c, g.v[i].id), 0);
	assert_int_equal(cache_close(c), 0);

	/* read the oldest keys (segment 1) so that it is the most recent */
	c = open_limited(dir, 0, NULL);
	uint8_t v[10000];
	assert_int_equal(cache_get(c, "e00000", 6, v, sizeof v), 10000);
	assert_int_equal(cache_close(c), 0);
	struct cache_opts o = { .dir = dir, .segment_size = SEG, .max_size = 3 * SEG };
	assert_int_equal(cache_open(&o, &c), 0);
	assert_int_equal(cache_get(c, "e00000", 6, v, sizeof v), 10000);
	cache_quiesce(c);
	cache_evict(c);
	g = list(c);
	assert_true(g.v[0].local);	/* segment 1: just read */
	assert_false(g.v[1].local);	/* segment 2: never read: evicted */
	struct cache_stats st;
	cache_stats(c, &st);
	assert_true(st.local_bytes <= 3 * SEG);
	assert_int_equal(cache_close(c), 0);
	tu_rmrf(dir);
	free(dir);
}

static void test_evicted_segments_come_back_through_hook(void **state)
{
	(void)state;
	char *top = tu_mkdtemp();
	char *dir = tu_path(top, "cache");
	char *hook = remote_hook(top);
	struct cache *c = open_limited(dir, 2 * SEG, hook);
	fill(c, 60);
	cache_seal(c);
	cache_quiesce(c);
	struct segs g = list(c);
	for (int i = 0; i < g.n; i++) {
		if (g.v[i].state == SEG_SEALED) {
			assert_true(g.v[i].handed_off);
			assert_int_equal(cache_confirm(c, g.v[i].id), 0);
		}
	}
	cache_quiesce(c);
	struct cache_stats st;
	cache_stats(c, &st);
	assert_true(st.evicted > 0);
	/* every key still reads back exactly, fetching as needed, and the
	 * limit holds afterwards */
	uint8_t v[10000];
	for (int i = 0; i < 60; i++) {
		char k[16];
		snprintf(k, sizeof k, "e%05d", i);
		assert_int_equal(cache_get(c, k, strlen(k), v, sizeof v), 10000);
		assert_int_equal(v[0], i & 0xff);
		assert_int_equal(v[9999], i & 0xff);
	}
	cache_quiesce(c);
	cache_stats(c, &st);
	assert_true(st.missing_fetches > 0);
	assert_true(st.local_bytes <= 2 * SEG);
	assert_int_equal(cache_close(c), 0);
	free(hook);
	free(dir);
	tu_rmrf(top);
	free(top);
}

/* A bit flip in a local sealed segment that the backends hold: the read
 * sets the local file aside (*.corrupt) and reads the copy the hook
 * fetches, once; the stats count the repair. A segment not yet confirmed
 * has no good copy anywhere: EIO naming it. */
static void test_bad_local_copy_is_fetched_again(void **state)
{
	(void)state;
	char *top = tu_mkdtemp();
	char *dir = tu_path(top, "cache");
	char *hook = remote_hook(top);
	struct cache *c = open_limited(dir, 0, hook);
	fill(c, 12);	/* segments 1 and 2 sealed, 3 active */
	cache_seal(c);
	cache_quiesce(c);
	assert_int_equal(cache_confirm(c, 1), 0);
	char *seg1 = tu_path(dir, "seg-0000000000000001.qseg");
	char *seg2 = tu_path(dir, "seg-0000000000000002.qseg");
	tu_flip(seg1, 64 + 16 + 6 + 500);	/* inside e00000's value */
	uint8_t v[10000];
	tu_capture_begin();
	assert_int_equal(cache_get(c, "e00000", 6, v, sizeof v), 10000);
	char *log = tu_capture_end();
	assert_int_equal(v[500], 0);
	assert_non_null(strstr(log, "set aside"));
	free(log);
	char *bad = tu_path(dir, "seg-0000000000000001.qseg.corrupt");
	assert_int_equal(access(bad, F_OK), 0);
	struct cache_stats st;
	cache_stats(c, &st);
	assert_int_equal(st.local_repairs, 1);
	for (int i = 0; i < 6; i++) {	/* the rest of segment 1 reads too */
		char k[16];
		snprintf(k, sizeof k, "e%05d", i);
		assert_int_equal(cache_get(c, k, strlen(k), v, sizeof v), 10000);
		assert_int_equal(v[9999], i & 0xff);
	}
	/* segment 2 is handed off, not yet confirmed, and storage's copy is
	 * bad too: the fetched copy fails its checks, so EIO naming it */
	char *remote2 = tu_path(top, "remote/seg-0000000000000002.qseg");
	tu_flip(remote2, 64 + 16 + 6 + 600);
	tu_flip(seg2, 64 + 16 + 6 + 500);
	tu_capture_begin();
	assert_int_equal(cache_get(c, "e00006", 6, v, sizeof v), -EIO);
	log = tu_capture_end();
	assert_non_null(strstr(log, "corrupt record in segment 2"));
	assert_non_null(strstr(log, "its local file is kept"));
	free(log);
	/* only the damaged record fails: the local file came back */
	assert_int_equal(cache_get(c, "e00007", 6, v, sizeof v), 10000);
	cache_stats(c, &st);
	assert_int_equal(st.local_repairs, 1);
	/* with a good copy in storage, a handed-off segment is fetched like a
	 * confirmed one: a good copy anywhere is used before an error */
	tu_flip(remote2, 64 + 16 + 6 + 600);	/* flipped back */
	assert_int_equal(cache_get(c, "e00006", 6, v, sizeof v), 10000);
	assert_int_equal(v[500], 6);
	cache_stats(c, &st);
	assert_int_equal(st.local_repairs, 2);
	free(remote2);
	assert_int_equal(cache_close(c), 0);
	free(bad);
	free(seg1);
	free(seg2);
	free(hook);
	free(dir);
	tu_rmrf(top);
	free(top);
}

/* Segment ids the hook fetched (one per line in TOP/fetches): all, and id. */
static int fetches_of(const char *top, uint64_t id, int *all)
{
	char *f = tu_path(top, "fetches");
	FILE *fp = fopen(f, "r");
	int n = 0;
	char line[64];
	*all = 0;
	while (fp && fgets(line, sizeof line, fp)) {
		(*all)++;
		n += strtoull(line, NULL, 10) == id;
	}
	if (fp)
		fclose(fp);
	free(f);
	return n;
}

/* The limit under a write backlog, with one hot key read among cold ones.
 * Hand-offs are slow (the worker spends its time in the segment-sealed
 * hook) and new data keeps coming, as when qsfs-fs writes while stor
 * uploads. Eviction used to run only in the worker's pass, after those
 * hooks: fetched-back segments piled up far over the limit, and
 * over_limit (the writers' backpressure) stayed false meanwhile. Once
 * eviction kept up, the data not yet uploaded, over the limit by itself,
 * made every pass evict every other segment, and the hot one was fetched
 * back round after round. Now what eviction can free stays within
 * max_size plus the read reserve, over_limit is set, the hot segment is
 * fetched once, and once the backlog is uploaded the limit holds again. */
static void test_hot_segment_under_a_write_backlog(void **state)
{
	(void)state;
	const uint64_t max = 8 * SEG;
	char *top = tu_mkdtemp();
	char *dir = tu_path(top, "cache");
	char *slow = tu_path(top, "slow");
	char *hook = tu_script(top, "hook",
		"t=$(dirname \"$0\"); d=$t/remote; mkdir -p \"$d\"\n"
		"case \"$1\" in\n"
		"segment-sealed) [ -e \"$t/slow\" ] && sleep 0.3; cp \"$3\" \"$d/\" ;;\n"
		"segment-missing) echo \"$2\" >> \"$t/fetches\"\n"
		"  cp \"$d/$(basename \"$3\" .tmp)\" \"$3\" ;;\n"
		"esac\n");
	struct cache *c = open_limited(dir, max, hook);
	fill(c, 120);	/* 20 segments; e00000 (the hot key) in segment 1 */
	cache_seal(c);
	cache_quiesce(c);
	struct segs g = list(c);
	for (int i = 0; i < g.n; i++)
		if (g.v[i].state == SEG_SEALED)
			assert_int_equal(cache_confirm(c, g.v[i].id), 0);
	cache_quiesce(c);
	/* the backlog: ten segments written, none uploaded yet */
	FILE *f = fopen(slow, "w");
	assert_non_null(f);
	fclose(f);
	uint8_t v[10000];
	memset(v, 7, sizeof v);
	int w = 0;
	for (; w < 60; w++) {
		char k[16];
		snprintf(k, sizeof k, "w%05d", w);
		tu_put(c, k, v, sizeof v);
	}
	int all0, hot0 = fetches_of(top, 1, &all0);
	int cold = 6;
	uint64_t peak = 0;
	for (int round = 0; round < 60; round++) {
		for (int j = 0; j < 4; j++) {	/* two thirds of a segment a round */
			char k[16];
			snprintf(k, sizeof k, "w%05d", w++);
			tu_put(c, k, v, sizeof v);
		}
		assert_int_equal(cache_get(c, "e00000", 6, v, sizeof v), 10000);
		assert_int_equal(v[0], 0);
		char k[16];	/* a cold key, a segment on each round */
		snprintf(k, sizeof k, "e%05d", cold);
		cold = cold + 6 < 120 ? cold + 6 : 6 + (cold + 1) % 6;
		assert_int_equal(cache_get(c, k, strlen(k), v, sizeof v), 10000);
		struct cache_stats st;
		cache_stats(c, &st);
		uint64_t segs = st.local_bytes - st.checkpoint_bytes;
		assert_true(st.pinned_bytes > max);	/* the case at hand */
		/* at most the reserve, and the segment just fetched (its
		 * reader held it while the fetch evicted), over what may not
		 * be evicted; and the writers are told to wait */
		assert_true(segs <= st.pinned_bytes + max / 4 + SEG);
		assert_true(st.over_limit);
		if (segs > peak)
			peak = segs;
	}
	int all, hot = fetches_of(top, 1, &all);
	print_message("# under the backlog: peak %.1f segments of local bytes against a limit "
		      "of %.1f; %d fetches, %d of the hot segment\n", (double)peak / SEG,
		      (double)max / SEG, all - all0, hot - hot0);
	assert_true(all - all0 >= 50);	/* the cold keys come and go */
	assert_true(hot - hot0 <= 1);
	/* uploaded at last: under the limit again */
	unlink(slow);
	cache_quiesce(c);
	g = list(c);
	for (int i = 0; i < g.n; i++)
		if (g.v[i].state == SEG_SEALED)
			assert_int_equal(cache_confirm(c, g.v[i].id), 0);
	cache_quiesce(c);
	struct cache_stats st;
	cache_stats(c, &st);
	assert_true(st.local_bytes - st.checkpoint_bytes <= max);
	assert_false(st.over_limit);
	assert_int_equal(cache_close(c), 0);
	free(hook);
	free(slow);
	free(dir);
	tu_rmrf(top);
	free(top);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_never_evicts_unconfirmed_or_active),
		cmocka_unit_test(test_checkpoints_do_not_count_against_the_limit),
		cmocka_unit_test(test_least_recently_read_goes_first),
		cmocka_unit_test(test_bad_local_copy_is_fetched_again),
		cmocka_unit_test(test_evicted_segments_come_back_through_hook),
		cmocka_unit_test(test_hot_segment_under_a_write_backlog),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
