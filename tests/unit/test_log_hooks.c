/* tests/unit/test_log_hooks.c - hooks: hand-off of sealed segments and
 * checkpoints with retry (also across a restart), segment-missing fetches
 * (success, failure, one run for concurrent misses, timeout), ready/closing
 * and the documented environment. */
#include "testutil.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The test hook logs "EVENT ID PATH VOLUME SEGSIZE" to $dir/events, copies
 * handed-off files to $dir/remote, serves segment-missing from there, fails
 * while $dir/fail exists (segment-sealed alone while $dir/fail-seg does), and holds a fetch while $dir/gate exists (30 s at
 * most, so a failing test cannot leave hooks hanging). */
static const char *HOOK_BODY =
	"d=$(dirname \"$0\")\n"
	"echo \"$1 ${2:-} ${3:-} $QSFS_VOLUME_ID $QSFS_SEGMENT_SIZE $QSFS_EVENT $QSFS_CACHE_DIR\" >> \"$d/events\"\n"
	"[ -e \"$d/fail\" ] && exit 3\n"
	"[ \"$1\" = segment-sealed ] && [ -e \"$d/fail-seg\" ] && exit 3\n"
	"case \"$1\" in\n"
	"segment-sealed|checkpoint-written) mkdir -p \"$d/remote\"; cp \"$3\" \"$d/remote/\" ;;\n"
	"segment-missing) [ -e \"$d/hang\" ] && sleep 30;\n"
	"  i=0; while [ -e \"$d/gate\" ] && [ $i -lt 1500 ]; do sleep 0.02; i=$((i+1)); done\n"
	"  cp \"$d/remote/$(basename \"$3\" .tmp)\" \"$3\" ;;\n"
	"esac\n"
	"exit 0\n";

static void touch(const struct tu_hook_env *e, const char *name, bool on)
{
	char *p = tu_path(e->top, name);
	if (on) {
		FILE *f = fopen(p, "w");
		fclose(f);
	} else {
		unlink(p);
	}
	free(p);
}

/* Number of event lines starting with prefix. */
static int count_events(const struct tu_hook_env *e, const char *prefix)
{
	char *p = tu_path(e->top, "events");
	FILE *f = fopen(p, "r");
	free(p);
	if (!f)
		return 0;
	char line[4096];
	int n = 0;
	while (fgets(line, sizeof line, f))
		n += !strncmp(line, prefix, strlen(prefix));
	fclose(f);
	return n;
}

static void fill(struct cache *c, const char *prefix, int n, size_t vlen)
{
	uint8_t *v = malloc(vlen);
	for (int i = 0; i < n; i++) {
		char k[32];
		snprintf(k, sizeof k, "%s%05d", prefix, i);
		memset(v, i & 0xff, vlen);
		tu_put(c, k, v, vlen);
	}
	free(v);
}

static void test_sealed_and_checkpoint_hooks(void **state)
{
	(void)state;
	struct tu_hook_env e;
	tu_hook_env_setup(&e, HOOK_BODY);
	struct cache *c = tu_open(e.cache, 1 << 20, e.hook);
	assert_int_equal(count_events(&e, "ready "), 1);
	tu_put(c, "k", "v", 1);
	assert_int_equal(cache_seal(c), 1);
	cache_quiesce(c);
	struct cache_stats st;
	cache_stats(c, &st);
	char want[512];
	snprintf(want, sizeof want, "segment-sealed 1 %s/seg-0000000000000001.qseg", e.cache);
	assert_int_equal(count_events(&e, want), 1);
	assert_true(count_events(&e, "checkpoint-written ") >= 1);
	assert_int_equal(st.hooks_pending, 0);
	/* the environment is documented: volume id, segment size, event, dir */
	char vol[33];
	for (int i = 0; i < 16; i++)
		snprintf(vol + 2 * i, 3, "%02x", st.volume_id[i]);
	snprintf(want, sizeof want, "segment-sealed 1 %s/seg-0000000000000001.qseg %s 1048576 "
		 "segment-sealed %s", e.cache, vol, e.cache);
	assert_int_equal(count_events(&e, want), 1);
	char *copy = tu_path(e.top, "remote/seg-0000000000000001.qseg");
	assert_true(tu_fsize(copy) > 0);
	free(copy);
	assert_int_equal(cache_close(c), 0);
	assert_int_equal(count_events(&e, "closing "), 1);
	/* nothing is handed off twice after a clean reopen */
	c = tu_open(e.cache, 1 << 20, e.hook);
	cache_quiesce(c);
	assert_int_equal(count_events(&e, "segment-sealed 1 "), 1);
	assert_int_equal(cache_close(c), 0);
	tu_hook_env_free(&e);
}

/* A seal forced by a full segment inside put wakes the worker too: the hook
 * runs right away, not at the worker's periodic 5-second wake-up. */
static void test_automatic_seal_hands_off(void **state)
{
	(void)state;
	struct tu_hook_env e;
	tu_hook_env_setup(&e, HOOK_BODY);
	struct cache *c = tu_open(e.cache, 64 << 10, e.hook);
	cache_quiesce(c);	/* the pass that open started is over */
	fill(c, "x", 10, 10000);	/* 100 KB into 64 KiB segments: one seal */
	int n = 0;
	for (int i = 0; i < 80 && n == 0; i++) {
		usleep(50000);	/* up to 4 s, below the periodic 5 s */
		n = count_events(&e, "segment-sealed 1 ");
	}
	assert_int_equal(n, 1);
	assert_int_equal(cache_close(c), 0);
	tu_hook_env_free(&e);
}

static void test_failed_handoff_retried_and_remembered(void **state)
{
	(void)state;
	struct tu_hook_env e;
	tu_hook_env_setup(&e, HOOK_BODY);
	touch(&e, "fail", true);
	uint64_t left = 9, first = 9;
	assert_int_equal(cache_unhanded(e.cache, &left, &first), -ENOENT);	/* no cache yet */
	assert_int_equal(cache_unhanded(e.top, &left, &first), -ENOENT);	/* no VOLUME */
	assert_int_equal(left, 0);
	struct cache *c = tu_open(e.cache, 1 << 20, e.hook);
	assert_int_equal(cache_unhanded(e.cache, &left, &first), 0);	/* empty active */
	assert_int_equal(left, 0);
	assert_int_equal(first, 0);
	tu_put(c, "k", "v", 1);
	assert_int_equal(cache_seal(c), 1);
	tu_put(c, "k2", "v", 1);	/* the active segment 2 holds data too */
	tu_capture_begin();
	/* retried with backoff (50 ms, 100 ms, ...) while it fails */
	for (int i = 0; i < 30 && count_events(&e, "segment-sealed 1 ") < 3; i++) {
		usleep(100000);
		cache_quiesce(c);
	}
	char *log = tu_capture_end();
	assert_non_null(strstr(log, "segment-sealed hook for seg-0000000000000001.qseg failed "
				    "(exit status 3)"));
	free(log);
	assert_true(count_events(&e, "segment-sealed 1 ") >= 3);
	struct cache_stats st;
	cache_stats(c, &st);
	assert_true(st.hooks_pending >= 1);
	assert_true(st.hooks_failed >= 3);
	tu_capture_begin();
	assert_int_equal(cache_close(c), 0);	/* still failing at close */
	log = tu_capture_end();
	assert_non_null(strstr(log, "hand-offs still pending"));
	free(log);
	/* seen from outside: segment 1 (sealed) and 2 (active, with a record) */
	assert_int_equal(cache_unhanded(e.cache, &left, &first), 0);
	assert_int_equal(left, 2);
	assert_int_equal(first, 1);

	/* after a restart with a working hook, the pending hand-off happens */
	touch(&e, "fail", false);
	int before = count_events(&e, "segment-sealed 1 ");
	c = tu_open(e.cache, 1 << 20, e.hook);
	cache_quiesce(c);
	assert_int_equal(count_events(&e, "segment-sealed 1 "), before + 1);
	cache_stats(c, &st);
	assert_int_equal(st.hooks_pending, 0);
	assert_int_equal(cache_seal(c), 2);
	cache_quiesce(c);
	assert_int_equal(cache_unhanded(e.cache, &left, &first), 0);
	assert_int_equal(left, 0);
	assert_int_equal(cache_close(c), 0);
	c = tu_open(e.cache, 1 << 20, e.hook);
	cache_quiesce(c);
	assert_int_equal(count_events(&e, "segment-sealed 1 "), before + 1);
	assert_int_equal(cache_close(c), 0);
	tu_hook_env_free(&e);
}

/* Seal segment 1 with keys a00000.., hand it off, then delete the local
 * file as an eviction would. */
static struct cache *setup_missing(struct tu_hook_env *e)
{
	struct cache *c = tu_open(e->cache, 1 << 20, e->hook);
	fill(c, "a", 100, 1000);
	assert_int_equal(cache_seal(c), 1);
	assert_int_equal(cache_confirm(c, 1), 0);
	assert_int_equal(cache_close(c), 0);
	char *seg = tu_path(e->cache, "seg-0000000000000001.qseg");
	assert_int_equal(unlink(seg), 0);
	free(seg);
	return tu_open(e->cache, 1 << 20, e->hook);
}

static void test_missing_segment_fetched(void **state)
{
	(void)state;
	struct tu_hook_env e;
	tu_hook_env_setup(&e, HOOK_BODY);
	struct cache *c = setup_missing(&e);
	uint8_t *v;
	assert_int_equal(tu_get(c, "a00042", &v), 1000);
	assert_int_equal(v[0], 42);
	assert_int_equal(v[999], 42);
	free(v);
	assert_int_equal(count_events(&e, "segment-missing 1 "), 1);
	/* now local: no further hook runs */
	assert_int_equal(tu_get(c, "a00043", &v), 1000);
	free(v);
	assert_int_equal(count_events(&e, "segment-missing 1 "), 1);
	assert_int_equal(cache_close(c), 0);
	tu_hook_env_free(&e);
}

/* A local copy that is not what was sealed (an interrupted copy) is not
 * served: it is set aside and fetched again. */
static void test_truncated_local_segment_refetched(void **state)
{
	(void)state;
	struct tu_hook_env e;
	tu_hook_env_setup(&e, HOOK_BODY);
	struct cache *c = setup_missing(&e);
	assert_int_equal(cache_close(c), 0);
	char *seg = tu_path(e.cache, "seg-0000000000000001.qseg");
	char *rem = tu_path(e.top, "remote/seg-0000000000000001.qseg");
	tu_copy(rem, seg);
	assert_int_equal(truncate(seg, tu_fsize(seg) / 2), 0);
	tu_capture_begin();
	c = tu_open(e.cache, 1 << 20, e.hook);
	char *log = tu_capture_end();
	assert_non_null(strstr(log, "treating it as missing"));
	free(log);
	uint8_t *v;
	assert_int_equal(tu_get(c, "a00099", &v), 1000);
	assert_int_equal(v[0], 99);
	free(v);
	assert_int_equal(count_events(&e, "segment-missing 1 "), 1);
	assert_int_equal(tu_fsize(seg), tu_fsize(rem));
	assert_int_equal(cache_close(c), 0);
	free(seg);
	free(rem);
	tu_hook_env_free(&e);
}

static void test_missing_segment_hook_fails(void **state)
{
	(void)state;
	struct tu_hook_env e;
	tu_hook_env_setup(&e, HOOK_BODY);
	struct cache *c = setup_missing(&e);
	touch(&e, "fail", true);
	uint8_t *v;
	tu_capture_begin();
	assert_int_equal(tu_get(c, "a00042", &v), -EIO);
	char *log = tu_capture_end();
	assert_non_null(strstr(log, "segment-missing hook for segment 1 failed (exit status 3)"));
	free(log);
	/* the rest of the log works meanwhile */
	tu_put(c, "new", "x", 1);
	assert_int_equal(tu_get(c, "new", &v), 1);
	free(v);
	/* a hook that "succeeds" but leaves a bad file is caught */
	touch(&e, "fail", false);
	char *rem = tu_path(e.top, "remote/seg-0000000000000001.qseg");
	tu_flip(rem, 500);
	tu_capture_begin();
	assert_int_equal(tu_get(c, "a00042", &v), -EIO);
	log = tu_capture_end();
	assert_non_null(strstr(log, "segment 1 brought back by the hook is invalid"));
	free(log);
	tu_flip(rem, 500);
	free(rem);
	assert_int_equal(tu_get(c, "a00042", &v), 1000);
	free(v);
	assert_int_equal(cache_close(c), 0);
	tu_hook_env_free(&e);
}

struct reader {
	struct cache *c;
	int i;
	ssize_t r;
	atomic_bool done;
};

static void *reader_main(void *arg)
{
	struct reader *rd = arg;
	char k[32];
	snprintf(k, sizeof k, "a%05d", rd->i);
	uint8_t v[1000];
	rd->r = cache_get(rd->c, k, strlen(k), v, sizeof v);
	if (rd->r == 1000 && (v[0] != rd->i || v[999] != rd->i))
		rd->r = -1000;
	atomic_store(&rd->done, true);
	return NULL;
}

static void test_concurrent_misses_run_one_hook(void **state)
{
	(void)state;
	struct tu_hook_env e;
	tu_hook_env_setup(&e, HOOK_BODY);
	struct cache *c = setup_missing(&e);
	touch(&e, "gate", true);	/* the fetch waits until the gate opens */
	tu_put(c, "hot", "x", 1);
	pthread_t th[8];
	struct reader rd[8];
	for (int i = 0; i < 8; i++) {
		rd[i] = (struct reader){ .c = c, .i = i * 11 };
		pthread_create(&th[i], NULL, reader_main, &rd[i]);
	}
	/* wait until the hook runs */
	for (int i = 0; i < 500 && count_events(&e, "segment-missing 1 ") == 0; i++)
		usleep(10000);
	assert_int_equal(count_events(&e, "segment-missing 1 "), 1);
	/* while the fetch is held, other reads and writes complete. Were they
	 * queued behind the fetch, this thread would block here, the gate would
	 * never open, the hook would be killed at its timeout and the readers
	 * would fail. */
	for (int i = 0; i < 100; i++) {
		uint8_t *v;
		tu_put(c, "other", "y", 1);
		assert_int_equal(tu_get(c, "hot", &v), 1);
		free(v);
	}
	assert_int_equal(cache_sync(c), 0);
	for (int i = 0; i < 8; i++)
		assert_false(atomic_load(&rd[i].done));	/* still waiting for the segment */
	touch(&e, "gate", false);
	for (int i = 0; i < 8; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(rd[i].r, 1000);
	}
	assert_int_equal(count_events(&e, "segment-missing 1 "), 1);
	assert_int_equal(cache_close(c), 0);
	tu_hook_env_free(&e);
}

static void test_hanging_hook_killed(void **state)
{
	(void)state;
	struct tu_hook_env e;
	tu_hook_env_setup(&e, HOOK_BODY);
	struct cache *c = setup_missing(&e);
	assert_int_equal(cache_close(c), 0);
	touch(&e, "hang", true);
	struct cache_opts o = { .dir = e.cache, .segment_size = 1 << 20, .hook = e.hook,
				.hook_timeout_ms = 300 };
	assert_int_equal(cache_open(&o, &c), 0);
	uint8_t *v;
	tu_capture_begin();
	assert_int_equal(tu_get(c, "a00001", &v), -EIO);
	char *log = tu_capture_end();
	assert_non_null(strstr(log, "segment-missing hook for segment 1 failed (timed out and "
				    "was killed)"));
	free(log);
	assert_int_equal(cache_close(c), 0);
	tu_hook_env_free(&e);
}

/* While a segment cannot be handed off, no checkpoint covering it is: on
 * the backends it would refer to a segment that is not there. */
static void test_checkpoint_waits_for_its_segments(void **state)
{
	(void)state;
	struct tu_hook_env e;
	tu_hook_env_setup(&e, HOOK_BODY);
	touch(&e, "fail-seg", true);
	struct cache *c = tu_open(e.cache, 1 << 20, e.hook);
	tu_put(c, "k", "v", 1);
	assert_int_equal(cache_seal(c), 1);
	tu_capture_begin();
	for (int i = 0; i < 30 && count_events(&e, "segment-sealed 1 ") < 3; i++) {
		usleep(50000);
		cache_quiesce(c);
	}
	free(tu_capture_end());
	assert_true(count_events(&e, "segment-sealed 1 ") >= 3);	/* tried, failed */
	assert_int_equal(count_events(&e, "checkpoint-written "), 0);
	touch(&e, "fail-seg", false);
	for (int i = 0; i < 100 && count_events(&e, "checkpoint-written ") < 1; i++) {
		usleep(50000);
		cache_quiesce(c);
	}
	assert_true(count_events(&e, "checkpoint-written ") >= 1);
	struct cache_stats st;
	cache_stats(c, &st);
	assert_int_equal(st.hooks_pending, 0);
	assert_int_equal(cache_close(c), 0);
	tu_hook_env_free(&e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sealed_and_checkpoint_hooks),
		cmocka_unit_test(test_automatic_seal_hands_off),
		cmocka_unit_test(test_failed_handoff_retried_and_remembered),
		cmocka_unit_test(test_missing_segment_fetched),
		cmocka_unit_test(test_truncated_local_segment_refetched),
		cmocka_unit_test(test_missing_segment_hook_fails),
		cmocka_unit_test(test_concurrent_misses_run_one_hook),
		cmocka_unit_test(test_hanging_hook_killed),
		cmocka_unit_test(test_checkpoint_waits_for_its_segments),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
