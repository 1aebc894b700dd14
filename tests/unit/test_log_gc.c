/* tests/unit/test_log_gc.c - removal of dead segments (cache_gc.c): the
 * floor that checkpoints set, the hand-off of deletions through the
 * segment-removed hook (with retry, across a restart), an open that no
 * checkpoint chain can serve, and a crash between the fact and the unlink.
 * Removal under random operations, reopens and crash images is in
 * test_log_model. */
#include "testutil.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "segment.h"

/* Logs "EVENT ID" to $dir/events; fails while $dir/fail exists; hands
 * sealed segments and checkpoints off by copying them to $dir/remote and
 * serves segment-missing from there, holding it while $dir/gate exists. */
static const char *HOOK_BODY =
	"d=$(dirname \"$0\")\n"
	"echo \"$1 ${2:-}\" >> \"$d/events\"\n"
	"[ -e \"$d/fail\" ] && exit 3\n"
	"case \"$1\" in\n"
	"segment-sealed|checkpoint-written) mkdir -p \"$d/remote\"; cp \"$3\" \"$d/remote/\" ;;\n"
	"segment-missing) i=0; while [ -e \"$d/gate\" ] && [ $i -lt 500 ]; do sleep 0.02; i=$((i+1)); done\n"
	"  cp \"$d/remote/$(basename \"$3\" .tmp)\" \"$3\" ;;\n"
	"esac\n"
	"exit 0\n";

static int count_lines(const char *top, const char *prefix)
{
	char *p = tu_path(top, "events");
	FILE *f = fopen(p, "r");
	free(p);
	if (!f)
		return 0;
	char line[256];
	int n = 0;
	while (fgets(line, sizeof line, f))
		n += !strncmp(line, prefix, strlen(prefix));
	fclose(f);
	return n;
}

static void put_round(struct cache *c, int n, int ver)
{
	uint8_t v[1000];
	for (int i = 0; i < n; i++) {
		char k[16];
		snprintf(k, sizeof k, "k%03d", i);
		memset(v, ver + i, sizeof v);
		assert_int_equal(cache_put(c, k, strlen(k), v, sizeof v), 0);
	}
}

static void check_round(struct cache *c, int n, int ver)
{
	uint8_t v[1000], want[1000];
	for (int i = 0; i < n; i++) {
		char k[16];
		snprintf(k, sizeof k, "k%03d", i);
		memset(want, ver + i, sizeof want);
		assert_int_equal(cache_get(c, k, strlen(k), v, sizeof v), (ssize_t)sizeof v);
		assert_memory_equal(v, want, sizeof v);
	}
}

static uint64_t nconfirmed;

static void confirm_cb(void *arg, const struct cache_seg_info *s)
{
	struct cache *c = arg;
	if (s->state == SEG_SEALED && cache_confirm(c, s->id) == 0)
		nconfirmed++;
}

static void confirm_all(struct cache *c)
{
	cache_quiesce(c);	/* hand-offs first: confirmation needs none, but
				 * eviction and removal want them */
	cache_segments(c, confirm_cb, c);
}

static bool seg_file(const char *dir, uint64_t id)
{
	char name[SEG_NAME_LEN];
	seg_name(id, name);
	char *p = tu_path(dir, name);
	bool yes = access(p, F_OK) == 0;
	free(p);
	return yes;
}

/* Two rounds over the same keys make the first round's segments dead;
 * nothing goes while fewer than two fulls exist or while the caller's
 * remote floor is low; then the dead ones go (files too), reads stay
 * right, the hook hears of each, and a reopen agrees. */
static void test_floor_and_removal(void **state)
{
	(void)state;
	char *top = tu_mkdtemp(), *dir = tu_path(top, "cache");
	char *hook = tu_script(top, "hook", HOOK_BODY);
	struct cache *c = tu_open(dir, 16 << 10, hook);
	put_round(c, 40, 1);	/* about 3 segments */
	put_round(c, 40, 2);	/* the first round is all garbage now */
	assert_true(cache_seal(c) > 0);
	confirm_all(c);
	struct cache_stats st;
	cache_stats(c, &st);
	assert_true(st.dead_segments >= 2);

	/* no full checkpoint yet: the floor is 0 */
	struct cache_remove_result rr;
	assert_int_equal(cache_gc_local_floor(c), 0);
	assert_int_equal(cache_remove_dead(c, UINT64_MAX, &rr), 0);
	assert_int_equal(rr.segments, 0);
	assert_true(rr.waiting >= 2);

	assert_int_equal(cache_checkpoint_full(c), 0);
	assert_int_equal(cache_checkpoint_full(c), 0);
	uint64_t floor = cache_gc_local_floor(c);
	assert_true(floor >= st.active_seg);
	confirm_all(c);

	/* the backends' floor holds them back too */
	assert_int_equal(cache_remove_dead(c, 0, &rr), 0);
	assert_int_equal(rr.segments, 0);
	assert_int_equal(rr.floor, 0);

	assert_int_equal(cache_remove_dead(c, UINT64_MAX, &rr), 0);
	assert_true(rr.segments >= 2);
	assert_int_equal(rr.floor, floor);
	assert_false(seg_file(dir, 1));
	assert_false(seg_file(dir, 2));
	check_round(c, 40, 2);
	cache_quiesce(c);
	assert_int_equal(count_lines(top, "segment-removed "), (int)rr.segments);
	cache_stats(c, &st);
	assert_int_equal(st.removed_segments, rr.segments);
	assert_int_equal(st.removes_pending, 0);
	assert_true(st.dead_bytes < 1024);	/* the empty segment the last full sealed */

	assert_int_equal(cache_close(c), 0);
	c = tu_open(dir, 16 << 10, hook);
	check_round(c, 40, 2);
	cache_stats(c, &st);
	assert_int_equal(st.removed_segments, rr.segments);
	assert_int_equal(st.removes_pending, 0);
	cache_quiesce(c);
	assert_int_equal(count_lines(top, "segment-removed "), (int)rr.segments);	/* not again */
	assert_int_equal(cache_close(c), 0);
	tu_rmrf(top);
	free(top);
	free(dir);
	free(hook);
}

/* A failing segment-removed hook leaves the deletion pending, also across
 * a reopen, until the hook succeeds; unconfirmed dead segments wait. */
static void test_handoff_retried(void **state)
{
	(void)state;
	char *top = tu_mkdtemp(), *dir = tu_path(top, "cache");
	char *hook = tu_script(top, "hook", HOOK_BODY);
	struct cache *c = tu_open(dir, 16 << 10, hook);
	put_round(c, 40, 1);
	put_round(c, 40, 2);
	assert_int_equal(cache_checkpoint_full(c), 0);
	assert_int_equal(cache_checkpoint_full(c), 0);
	cache_quiesce(c);

	/* not confirmed remote yet: kept */
	struct cache_remove_result rr;
	assert_int_equal(cache_remove_dead(c, UINT64_MAX, &rr), 0);
	assert_int_equal(rr.segments, 0);
	assert_true(rr.waiting >= 2);

	confirm_all(c);
	char *fail = tu_path(top, "fail");
	FILE *f = fopen(fail, "w");
	fclose(f);
	assert_int_equal(cache_remove_dead(c, UINT64_MAX, &rr), 0);
	assert_true(rr.segments >= 2);
	cache_quiesce(c);
	struct cache_stats st;
	cache_stats(c, &st);
	assert_int_equal(st.removes_pending, rr.segments);
	assert_int_equal(cache_close(c), 0);

	unlink(fail);
	c = tu_open(dir, 16 << 10, hook);
	cache_quiesce(c);
	cache_stats(c, &st);
	assert_int_equal(st.removes_pending, 0);
	assert_int_equal(st.removed_segments, rr.segments);
	check_round(c, 40, 2);
	assert_int_equal(cache_close(c), 0);
	free(fail);
	tu_rmrf(top);
	free(top);
	free(dir);
	free(hook);
}

/* Without any usable checkpoint the log would replay every segment, which
 * a removed one breaks: open refuses, naming what to do. */
static void test_open_refuses_without_chain(void **state)
{
	(void)state;
	char *dir = tu_mkdtemp();
	struct cache *c = tu_open(dir, 16 << 10, NULL);
	put_round(c, 40, 1);
	put_round(c, 40, 2);
	assert_int_equal(cache_checkpoint_full(c), 0);
	assert_int_equal(cache_checkpoint_full(c), 0);
	struct cache_remove_result rr;
	assert_int_equal(cache_remove_dead(c, UINT64_MAX, &rr), 0);
	assert_true(rr.segments >= 2);
	assert_int_equal(cache_close(c), 0);
	tu_remove_checkpoints(dir);
	struct cache_opts o = { .dir = dir, .segment_size = 16 << 10 };
	struct cache *c2 = NULL;
	tu_capture_begin();
	int r = cache_open(&o, &c2);
	char *log = tu_capture_end();
	assert_int_equal(r, -EIO);
	assert_non_null(strstr(log, "removed by garbage collection"));
	assert_non_null(strstr(log, "restore the volume from the backends"));
	free(log);
	tu_rmrf(dir);
	free(dir);
}

/* A crash after the REMOVED fact but before the unlink (the file is put
 * back by hand): the next open deletes the file and reads stay right; a
 * checkpoint written before the removal (it still lists the segment) does
 * not bring it back. */
static void test_crash_between_fact_and_unlink(void **state)
{
	(void)state;
	char *dir = tu_mkdtemp(), *keep = tu_mkdtemp();
	struct cache *c = tu_open(dir, 16 << 10, NULL);
	put_round(c, 40, 1);
	put_round(c, 40, 2);
	assert_int_equal(cache_checkpoint_full(c), 0);
	assert_int_equal(cache_checkpoint_full(c), 0);
	char name[SEG_NAME_LEN];
	seg_name(1, name);
	char *from = tu_path(dir, name), *to = tu_path(keep, name);
	tu_copy(from, to);
	struct cache_remove_result rr;
	assert_int_equal(cache_remove_dead(c, UINT64_MAX, &rr), 0);
	assert_true(rr.segments >= 2);
	assert_false(seg_file(dir, 1));
	assert_int_equal(cache_close(c), 0);
	tu_copy(to, from);
	c = tu_open(dir, 16 << 10, NULL);
	assert_false(seg_file(dir, 1));
	check_round(c, 40, 2);
	struct cache_stats st;
	cache_stats(c, &st);
	assert_int_equal(st.removed_segments, rr.segments);
	assert_true(st.dead_bytes < 1024);
	assert_int_equal(cache_close(c), 0);
	free(from);
	free(to);
	tu_rmrf(dir);
	tu_rmrf(keep);
	free(dir);
	free(keep);
}

struct reader {
	struct cache *c;
	int n, ver, bad;
};

static void *reader_main(void *arg)
{
	struct reader *r = arg;
	uint8_t v[1000], want[1000];
	for (int i = 0; i < r->n; i++) {
		char k[16];
		snprintf(k, sizeof k, "k%03d", i);
		memset(want, r->ver + i, sizeof want);
		if (cache_get(r->c, k, strlen(k), v, sizeof v) != (ssize_t)sizeof v ||
		    memcmp(v, want, sizeof v))
			r->bad++;
	}
	return NULL;
}

/* Clean segments 1..3, make the floor pass them, remove. */
static void *collect_main(void *arg)
{
	struct cache *c = arg;
	for (uint64_t id = 1; id <= 3; id++) {
		struct cache_clean_result cr;
		int r = cache_clean_segment(c, id, 0, &cr);
		assert_true(r == 0 || r == -EINVAL);
	}
	assert_true(cache_seal(c) > 0);
	confirm_all(c);
	assert_int_equal(cache_checkpoint_full(c), 0);
	assert_int_equal(cache_checkpoint_full(c), 0);
	confirm_all(c);
	struct cache_remove_result rr;
	assert_int_equal(cache_remove_dead(c, UINT64_MAX, &rr), 0);
	return NULL;
}

/* A collection racing cold reads of the very segments it cleans: the
 * reads wait in a held fetch while the cleaner (which needs the same
 * fetch) moves the records and the segments are removed; every read
 * returns the right value, and what a reader still held goes later. */
static void test_collection_races_cold_read(void **state)
{
	(void)state;
	char *top = tu_mkdtemp(), *dir = tu_path(top, "cache");
	char *hook = tu_script(top, "hook", HOOK_BODY);
	struct cache_opts o = { .dir = dir, .segment_size = 16 << 10, .hook = hook,
				.hook_timeout_ms = 20000, .hook_retry_ms = 50,
				.max_size = 1 };	/* evict whatever is confirmed */
	struct cache *c = NULL;
	assert_int_equal(cache_open(&o, &c), 0);
	put_round(c, 40, 7);	/* segments 1..3, all live */
	assert_true(cache_seal(c) > 0);
	confirm_all(c);
	assert_int_equal(cache_checkpoint_full(c), 0);
	assert_int_equal(cache_checkpoint_full(c), 0);
	confirm_all(c);
	cache_evict(c);
	struct cache_stats st;
	cache_stats(c, &st);
	assert_true(st.segments_local <= 2);	/* the first ones are remote only */

	char *gate = tu_path(top, "gate");
	FILE *f = fopen(gate, "w");
	fclose(f);
	struct reader rd = { c, 40, 7, 0 };
	pthread_t th, ct;
	assert_int_equal(pthread_create(&th, NULL, reader_main, &rd), 0);
	/* the reader is inside its fetch of segment 1, held */
	for (int i = 0; i < 5000 && count_lines(top, "segment-missing ") < 1; i++)
		usleep(2000);
	assert_true(count_lines(top, "segment-missing ") >= 1);
	/* the collection starts meanwhile (its clean of 1 waits on the same
	 * fetch); then the fetch is let go */
	assert_int_equal(pthread_create(&ct, NULL, collect_main, c), 0);
	usleep(100000);	/* give it the time to reach the fetch (not needed for right results) */
	unlink(gate);
	pthread_join(ct, NULL);
	pthread_join(th, NULL);
	assert_int_equal(rd.bad, 0);
	struct cache_remove_result rr;
	assert_int_equal(cache_remove_dead(c, UINT64_MAX, &rr), 0);	/* what was in use */
	cache_stats(c, &st);
	assert_true(st.removed_segments >= 3);
	check_round(c, 40, 7);
	/* reads after the removal, cold again */
	cache_evict(c);
	check_round(c, 40, 7);
	assert_int_equal(cache_close(c), 0);
	c = tu_open(dir, 16 << 10, hook);
	check_round(c, 40, 7);
	assert_int_equal(cache_close(c), 0);
	free(gate);
	tu_rmrf(top);
	free(top);
	free(dir);
	free(hook);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_floor_and_removal),
		cmocka_unit_test(test_handoff_retried),
		cmocka_unit_test(test_open_refuses_without_chain),
		cmocka_unit_test(test_crash_between_fact_and_unlink),
		cmocka_unit_test(test_collection_races_cold_read),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
