/* tests/unit/test_log_lost.c - a sealed segment whose file goes before it
 * was handed off (cache_lost.c): the rest of the log opens and reads, its
 * records fail with EIO, its hand-off reports the loss (segment-lost) and
 * later checkpoints go; storage answering "stored after all" makes it a
 * plain eviction; a file unlinked while the log holds it open is written
 * again from the descriptor. */
#include "testutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The hook logs "EVENT ID" to $dir/events; segment-sealed and
 * checkpoint-written copy the file to $dir/remote (and fail while
 * $dir/down exists); segment-missing copies from there; segment-lost
 * answers 10 ("stored after all") when $dir/remote has the segment. */
static const char *HOOK_BODY =
	"d=$(dirname \"$0\")\n"
	"echo \"$1 ${2:-}\" >> \"$d/events\"\n"
	"case \"$1\" in\n"
	"segment-sealed|checkpoint-written) [ -e \"$d/down\" ] && exit 1\n"
	"  mkdir -p \"$d/remote\"; cp \"$3\" \"$d/remote/\" ;;\n"
	"segment-missing) cp \"$d/remote/$(basename \"$3\" .tmp)\" \"$3\" ;;\n"
	"segment-lost) [ -e \"$d/remote/$(printf 'seg-%016x.qseg' \"$2\")\" ] && exit 10 ;;\n"
	"esac\n"
	"exit 0\n";

static void set_down(const struct tu_hook_env *e, bool down)
{
	char *p = tu_path(e->top, "down");
	if (down)
		fclose(fopen(p, "w"));
	else
		unlink(p);
	free(p);
}

/* Event lines equal to line (without its newline). */
static int events(const struct tu_hook_env *e, const char *line)
{
	char *p = tu_path(e->top, "events");
	FILE *f = fopen(p, "r");
	free(p);
	if (!f)
		return 0;
	char buf[512];
	int n = 0;
	while (fgets(buf, sizeof buf, f)) {
		buf[strcspn(buf, "\n")] = 0;
		n += !strcmp(buf, line);
	}
	fclose(f);
	return n;
}

static void clear_events(const struct tu_hook_env *e)
{
	char *p = tu_path(e->top, "events");
	unlink(p);
	free(p);
}

static void fill(struct cache *c, char prefix, int n)
{
	char v[600];
	for (int i = 0; i < n; i++) {
		char k[32];
		snprintf(k, sizeof k, "%c%04d", prefix, i);
		memset(v, prefix + i, sizeof v);
		tu_put(c, k, v, sizeof v);
	}
}

static void expect(struct cache *c, char prefix, int n, ssize_t want)
{
	for (int i = 0; i < n; i++) {
		char k[32];
		snprintf(k, sizeof k, "%c%04d", prefix, i);
		uint8_t *v = NULL;
		ssize_t r = tu_get(c, k, &v);
		if (r != want)
			fail_msg("get %s: %zd, want %zd", k, r, want);
		free(v);
	}
}

/* Segments 1 (a), 2 (b), 3 (c) sealed while storage is down, d in the
 * active segment 4; the log closed with the three hand-offs pending, and
 * the file of segment 2 deleted. */
static void lose_segment_2(struct tu_hook_env *e)
{
	set_down(e, true);
	struct cache *c = tu_open(e->cache, 1 << 20, e->hook);
	fill(c, 'a', 20);
	assert_int_equal(cache_seal(c), 1);
	fill(c, 'b', 20);
	assert_int_equal(cache_seal(c), 2);
	fill(c, 'c', 20);
	assert_int_equal(cache_seal(c), 3);
	fill(c, 'd', 5);
	tu_capture_begin();
	assert_int_equal(cache_close(c), 0);	/* hand-offs pending */
	free(tu_capture_end());
	char *seg = tu_path(e->cache, "seg-0000000000000002.qseg");
	assert_int_equal(unlink(seg), 0);
	free(seg);
	set_down(e, false);
	clear_events(e);
}

static void test_lost_segment_reported_and_the_rest_works(void **state)
{
	(void)state;
	struct tu_hook_env e;
	tu_hook_env_setup(&e, HOOK_BODY);
	lose_segment_2(&e);
	tu_capture_begin();
	struct cache *c = tu_open(e.cache, 1 << 20, e.hook);
	cache_quiesce(c);
	char *log = tu_capture_end();
	assert_non_null(strstr(log, "segment 2 LOST before it was handed off"));
	free(log);
	/* its hand-off reported the loss; the others went, and checkpoints
	 * after it too */
	assert_int_equal(events(&e, "segment-lost 2"), 1);
	assert_int_equal(events(&e, "segment-sealed 2"), 0);
	assert_int_equal(events(&e, "segment-sealed 1"), 1);
	assert_int_equal(events(&e, "segment-sealed 3"), 1);
	struct cache_stats st;
	cache_stats(c, &st);
	assert_int_equal(st.segments_lost, 1);
	assert_int_equal(st.lost_ids[0], 2);
	assert_int_equal(st.lost_unreported, 0);
	assert_int_equal(st.hooks_pending, 0);
	assert_true(st.checkpoint_upto >= 3);
	/* reads: its records fail with EIO naming it, every other works */
	tu_capture_begin();
	expect(c, 'b', 20, -EIO);
	log = tu_capture_end();
	assert_non_null(strstr(log, "segment 2"));
	assert_non_null(strstr(log, "lost before it was handed off"));
	/* logged once, not once per read */
	assert_null(strstr(strstr(log, "lost before it was handed off") + 1,
			   "lost before it was handed off"));
	free(log);
	expect(c, 'a', 20, 600);
	expect(c, 'c', 20, 600);
	expect(c, 'd', 5, 600);
	assert_int_equal(events(&e, "segment-missing 2"), 0);	/* nobody asked storage */
	/* the log goes on: new writes, new segments after the lost one */
	fill(c, 'e', 20);
	assert_int_equal(cache_seal(c), 4);	/* the active one, after 2 */
	cache_quiesce(c);
	assert_int_equal(cache_close(c), 0);

	/* for good, and reported once */
	tu_capture_begin();
	c = tu_open(e.cache, 1 << 20, e.hook);
	cache_quiesce(c);
	free(tu_capture_end());
	assert_int_equal(events(&e, "segment-lost 2"), 1);
	cache_stats(c, &st);
	assert_int_equal(st.segments_lost, 1);
	assert_int_equal(st.hooks_pending, 0);
	tu_capture_begin();
	expect(c, 'b', 20, -EIO);
	free(tu_capture_end());
	expect(c, 'e', 20, 600);
	assert_int_equal(cache_close(c), 0);
	tu_hook_env_free(&e);
}

/* Storage had the segment after all (the HANDED fact lost in a crash):
 * nothing was lost, it is an evicted segment fetched back on read. */
static void test_lost_segment_that_storage_has(void **state)
{
	(void)state;
	struct tu_hook_env e;
	tu_hook_env_setup(&e, HOOK_BODY);
	set_down(&e, true);
	struct cache *c = tu_open(e.cache, 1 << 20, e.hook);
	fill(c, 'a', 20);
	assert_int_equal(cache_seal(c), 1);
	fill(c, 'b', 20);
	tu_capture_begin();
	assert_int_equal(cache_close(c), 0);
	free(tu_capture_end());
	char *seg = tu_path(e.cache, "seg-0000000000000001.qseg");
	char *remote = tu_path(e.top, "remote");
	mkdir(remote, 0700);
	char *copy = tu_path(remote, "seg-0000000000000001.qseg");
	tu_copy(seg, copy);	/* storage has it */
	assert_int_equal(unlink(seg), 0);
	set_down(&e, false);
	clear_events(&e);
	tu_capture_begin();
	c = tu_open(e.cache, 1 << 20, e.hook);
	cache_quiesce(c);
	free(tu_capture_end());
	assert_int_equal(events(&e, "segment-lost 1"), 1);
	struct cache_stats st;
	cache_stats(c, &st);
	assert_int_equal(st.segments_lost, 0);
	assert_int_equal(st.hooks_pending, 0);
	expect(c, 'a', 20, 600);	/* fetched back */
	assert_int_equal(events(&e, "segment-missing 1"), 1);
	assert_int_equal(cache_close(c), 0);
	free(seg);
	free(remote);
	free(copy);
	tu_hook_env_free(&e);
}

/* The file of a sealed segment unlinked while the log still holds it open:
 * not lost, written again from the descriptor and handed off. */
static void test_vanished_file_written_again_from_its_descriptor(void **state)
{
	(void)state;
	struct tu_hook_env e;
	tu_hook_env_setup(&e, HOOK_BODY);
	set_down(&e, true);
	tu_capture_begin();
	struct cache *c = tu_open(e.cache, 1 << 20, e.hook);
	fill(c, 'a', 20);
	assert_int_equal(cache_seal(c), 1);
	expect(c, 'a', 20, 600);	/* its fd is open */
	char *seg = tu_path(e.cache, "seg-0000000000000001.qseg");
	long long size = tu_fsize(seg);
	assert_int_equal(unlink(seg), 0);
	clear_events(&e);
	set_down(&e, false);
	for (int i = 0; i < 100 && events(&e, "segment-sealed 1") < 1; i++) {
		usleep(50000);
		cache_quiesce(c);
	}
	char *log = tu_capture_end();
	assert_non_null(strstr(log, "written again from the descriptor"));
	free(log);
	assert_int_equal(events(&e, "segment-sealed 1"), 1);
	assert_int_equal(events(&e, "segment-lost 1"), 0);
	assert_int_equal(tu_fsize(seg), size);
	struct cache_stats st;
	cache_stats(c, &st);
	assert_int_equal(st.segments_lost, 0);
	assert_int_equal(cache_close(c), 0);
	c = tu_open(e.cache, 1 << 20, e.hook);
	expect(c, 'a', 20, 600);
	assert_int_equal(cache_close(c), 0);
	free(seg);
	tu_hook_env_free(&e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lost_segment_reported_and_the_rest_works),
		cmocka_unit_test(test_lost_segment_that_storage_has),
		cmocka_unit_test(test_vanished_file_written_again_from_its_descriptor),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
