/* tests/unit/test_log_space.c - the log on a small disk (a tmpfs of its
 * own, in a private mount namespace, so nothing is left mounted if a test
 * dies): the reserve file is made at open; the disk counts as low before
 * it is full; a delete, a seal and a checkpoint on a disk others filled
 * give the reserve up and go through; a start on a disk full even
 * without the reserve opens without an active segment and writes once
 * room is back (the reserve made again); confirmed segments are evicted
 * for room on the disk, with no max_size. Needs CAP_SYS_ADMIN (CI runs
 * as root); skipped, saying so, without it. */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#define SEG (64u << 10)
#define MIB (1u << 20)

static bool can_mount;
/* The disk of the test running (dropped by teardown if it fails half-way:
 * cmocka longjmps out of it). */
static char *cur_disk;

/* A fresh tmpfs of size bytes at a new directory; malloc'd path. */
static char *small_disk(unsigned size)
{
	char *dir = tu_mkdtemp();
	char opts[64];
	snprintf(opts, sizeof opts, "size=%u", size);
	assert_int_equal(mount("tmpfs", dir, "tmpfs", 0, opts), 0);
	cur_disk = dir;
	return dir;
}

static void drop_disk(char *dir)
{
	cur_disk = NULL;
	umount2(dir, MNT_DETACH);
	rmdir(dir);
	free(dir);
}

static int teardown(void **state)
{
	(void)state;
	if (cur_disk)
		drop_disk(cur_disk);
	cur_disk = NULL;
	return 0;
}

static uint64_t disk_free(const char *dir)
{
	struct statvfs sv;
	assert_int_equal(statvfs(dir, &sv), 0);
	return (uint64_t)sv.f_bavail * sv.f_frsize;
}

/* Fill the disk from outside (another program): a file named name, until
 * not even one page more fits. */
static void fill(const char *dir, const char *name)
{
	char *p = tu_path(dir, name);
	int fd = open(p, O_WRONLY | O_CREAT | O_APPEND, 0644);
	assert_true(fd >= 0);
	static uint8_t buf[65536];
	for (size_t chunk = sizeof buf; chunk >= 512; chunk /= 2)
		while (write(fd, buf, chunk) == (ssize_t)chunk)
			;
	close(fd);
	free(p);
	assert_true(disk_free(dir) < 4096);
}

static void unfill(const char *dir, const char *name)
{
	char *p = tu_path(dir, name);
	assert_int_equal(unlink(p), 0);
	free(p);
}

static struct cache *open_small(const char *dir, uint64_t reserve)
{
	struct cache_opts o = { .dir = dir, .segment_size = SEG, .disk_reserve = reserve,
				.hook_retry_ms = 50 };
	struct cache *c;
	assert_int_equal(cache_open(&o, &c), 0);
	return c;
}

static void key(char *k, int i)
{
	snprintf(k, 16, "k%06d", i);
}

/* Put 10 KB values until the disk counts as low (what qsfs-fs stops new
 * data at), and still is once the worker has settled (its checkpoint
 * cleanup may free a little). Returns the number put. */
static int put_until_low(struct cache *c, int from)
{
	uint8_t v[10000];
	int i = from;
	struct cache_disk d;
	do {
		for (; !cache_disk_low(c); i++) {
			char k[16];
			key(k, i);
			memset(v, i & 0xff, sizeof v);
			assert_int_equal(cache_put(c, k, strlen(k), v, sizeof v), 0);
			assert_true(i < from + 10000);
		}
		cache_quiesce(c);
		cache_disk_state(c, &d);
	} while (!d.low);
	return i - from;
}

static void test_reserve_and_low(void **state)
{
	(void)state;
	char *dir = small_disk(8 * MIB);
	struct cache *c = open_small(dir, MIB);
	/* the reserve is there, with its blocks taken */
	char *rp = tu_path(dir, CACHE_RESERVE_FILE);
	struct stat st;
	assert_int_equal(stat(rp, &st), 0);
	assert_int_equal(st.st_size, MIB);
	assert_true((uint64_t)st.st_blocks * 512 >= MIB);
	struct cache_disk d;
	cache_disk_state(c, &d);
	assert_true(d.reserve_held);
	assert_false(d.low);
	assert_int_equal(d.reserve, MIB);
	assert_true(d.total >= 8 * MIB - 65536 && d.total <= 8 * MIB);
	tu_capture_begin();
	int n = put_until_low(c, 0);
	char *log = tu_capture_end();
	/* low before full: the reserve and a reserve's worth of room remain,
	 * less at most SPACE_CHECK_BYTES appended between two looks */
	assert_true(n > 300);
	cache_disk_state(c, &d);
	assert_true(d.low);
	assert_true(d.reserve_held);
	assert_true(d.free < MIB && d.free > 0);
	assert_true(d.free + 64 * 1024 >= disk_free(dir) && disk_free(dir) + 64 * 1024 >= d.free);
	assert_non_null(strstr(log, "is low on space"));
	assert_null(strstr(log, "gave up the reserve"));
	free(log);
	struct cache_stats cs;
	cache_stats(c, &cs);
	assert_true(cs.disk.low);
	assert_int_equal(cache_close(c), 0);
	/* a reopen keeps the reserve it finds */
	c = open_small(dir, MIB);
	cache_disk_state(c, &d);
	assert_true(d.reserve_held);
	assert_int_equal(d.low, d.free < MIB);	/* the close may have freed old checkpoints */
	assert_int_equal(d.reserve_released, 0);
	assert_int_equal(cache_close(c), 0);
	/* none configured any more: it goes */
	c = open_small(dir, 0);
	assert_int_equal(access(rp, F_OK), -1);
	cache_disk_state(c, &d);
	assert_false(d.low);
	assert_false(d.reserve_held);
	assert_int_equal(cache_close(c), 0);
	free(rp);
	drop_disk(dir);
}

/* Another program fills the disk: deletes, the seal and the checkpoint
 * of a clean close still go through, on the reserve. */
static void test_deletes_and_close_on_a_full_disk(void **state)
{
	(void)state;
	char *dir = small_disk(8 * MIB);
	struct cache *c = open_small(dir, MIB);
	int n = put_until_low(c, 0);
	assert_int_equal(cache_sync(c), 0);
	fill(dir, "filler");
	/* a put now meets the full disk, gives the reserve up and succeeds;
	 * that is the log's part: its user (qsfs-fs) refuses new data while
	 * cache_disk_low, so that the reserve is the deletes' */
	tu_capture_begin();
	for (int i = 0; i < n; i++) {
		char k[16];
		key(k, i);
		assert_int_equal(cache_del(c, k, strlen(k)), 0);
	}
	assert_int_equal(cache_sync(c), 0);
	assert_true(cache_seal(c) > 0);
	cache_quiesce(c);
	char *log = tu_capture_end();
	assert_non_null(strstr(log, "is full (No space left on device): gave up the reserve of "
				    "1.0 MiB"));
	assert_null(strstr(log, "append at offset"));
	assert_null(strstr(log, "writing checkpoint"));
	free(log);
	struct cache_disk d;
	cache_disk_state(c, &d);
	assert_false(d.reserve_held);
	assert_int_equal(d.reserve_released, 1);
	assert_true(d.low);
	char *rp = tu_path(dir, CACHE_RESERVE_FILE);
	assert_int_equal(access(rp, F_OK), -1);
	assert_int_equal(cache_close(c), 0);	/* every checkpoint written */
	/* the deletes are durable */
	c = open_small(dir, MIB);
	struct cache_stats st;
	cache_stats(c, &st);
	assert_int_equal(st.keys, 0);
	/* no room for the reserve yet: it is not made */
	assert_int_equal(access(rp, F_OK), -1);
	assert_int_equal(cache_close(c), 0);
	free(rp);
	drop_disk(dir);
}

/* Remove the newest segment file, the empty one a clean close leaves
 * active: as after a crash between a seal and the next segment's
 * creation, the next open must create one. */
static void drop_empty_active(const char *dir, struct cache *c)
{
	struct cache_stats st;
	cache_stats(c, &st);
	assert_int_equal(st.active_records, 0);
	uint64_t id = st.active_seg;
	assert_int_equal(cache_close(c), 0);
	char name[64];
	snprintf(name, sizeof name, "seg-%016llx.qseg", (unsigned long long)id);
	char *p = tu_path(dir, name);
	assert_int_equal(tu_fsize(p), 64);
	assert_int_equal(unlink(p), 0);
	free(p);
}

/* A start on a full disk: the reserve makes room for the new segment;
 * without even that, the log opens without an active segment (reads
 * work, writes get ENOSPC) and writes once room is back, the reserve
 * made again. */
static void test_start_on_a_full_disk(void **state)
{
	(void)state;
	char *dir = small_disk(8 * MIB);
	struct cache *c = open_small(dir, MIB);
	int n = 200;	/* 2 MB: room once the fillers go */
	uint8_t v[10000];
	for (int i = 0; i < n; i++) {
		char k[16];
		key(k, i);
		memset(v, i & 0xff, sizeof v);
		assert_int_equal(cache_put(c, k, strlen(k), v, sizeof v), 0);
	}
	assert_true(cache_seal(c) > 0);
	cache_quiesce(c);
	drop_empty_active(dir, c);
	fill(dir, "filler");

	tu_capture_begin();
	c = open_small(dir, MIB);
	char *log = tu_capture_end();
	assert_non_null(strstr(log, "gave up the reserve"));
	assert_null(strstr(log, "cannot create segment"));
	free(log);
	struct cache_stats st;
	cache_stats(c, &st);
	assert_true(st.active_seg > 0);
	assert_false(st.disk.reserve_held);
	drop_empty_active(dir, c);
	fill(dir, "filler2");	/* what the reserve left */

	tu_capture_begin();
	c = open_small(dir, MIB);
	log = tu_capture_end();
	assert_non_null(strstr(log, "cannot create segment"));
	assert_non_null(strstr(log, "no segment can be started, so the log opens without one"));
	free(log);
	cache_stats(c, &st);
	assert_int_equal(st.active_seg, 0);
	assert_true(st.disk.low);
	char k[16];
	key(k, n - 1);
	assert_int_equal(cache_get(c, k, strlen(k), v, sizeof v), (ssize_t)sizeof v);
	assert_int_equal(v[0], (n - 1) & 0xff);
	tu_capture_begin();
	assert_int_equal(cache_put(c, "x", 1, "y", 1), -ENOSPC);
	assert_int_equal(cache_del(c, k, strlen(k)), -ENOSPC);
	log = tu_capture_end();
	free(log);
	/* room again */
	unfill(dir, "filler");
	unfill(dir, "filler2");
	assert_int_equal(cache_put(c, "x", 1, "y", 1), 0);
	struct cache_disk d;
	cache_disk_state(c, &d);	/* a fresh look (cache_disk_low looks again
					 * at most every 200 ms) */
	assert_false(d.low);
	assert_false(cache_disk_low(c));
	cache_quiesce(c);	/* a worker pass: the reserve comes back */
	cache_disk_state(c, &d);
	assert_true(d.reserve_held);
	char *rp = tu_path(dir, CACHE_RESERVE_FILE);
	assert_int_equal(tu_fsize(rp), MIB);
	free(rp);
	assert_int_equal(cache_close(c), 0);
	drop_disk(dir);
}

struct segs {
	struct cache_seg_info v[512];
	int n;
};

static void collect(void *arg, const struct cache_seg_info *s)
{
	struct segs *g = arg;
	if (g->n < 512)
		g->v[g->n++] = *s;
}

/* No max_size: confirmed segments go when the disk has less than twice
 * the reserve free, and only so many. (They go as they are confirmed:
 * each confirmation evicts at once, among the confirmed ones, least
 * recently read first.) */
static void test_evicts_for_room_on_the_disk(void **state)
{
	(void)state;
	char *dir = small_disk(8 * MIB);
	struct cache *c = open_small(dir, MIB);
	put_until_low(c, 0);
	cache_quiesce(c);
	struct cache_stats st;
	cache_stats(c, &st);
	assert_int_equal(st.evicted, 0);	/* nothing confirmed yet */
	assert_true(st.disk.low);
	struct segs g = { .n = 0 };
	cache_segments(c, collect, &g);
	for (int i = 0; i < g.n; i++)
		if (g.v[i].state == SEG_SEALED)
			assert_int_equal(cache_confirm(c, g.v[i].id), 0);
	cache_quiesce(c);
	cache_stats(c, &st);
	assert_true(st.evicted > 0);
	assert_int_equal(st.evicted_for_disk, st.evicted);
	/* twice the reserve free, and not much more (a segment per step; a
	 * merge may have freed old checkpoint files since) */
	uint64_t free = disk_free(dir);
	assert_true(free >= 2 * MIB);
	assert_true(free < 3 * MIB);
	assert_false(st.disk.low);
	assert_true(st.segments_local > (uint64_t)g.n / 2 && st.segments_local < (uint64_t)g.n - 10);
	assert_int_equal(cache_close(c), 0);
	drop_disk(dir);
}

int main(void)
{
	/* a mount namespace of our own: the tmpfs mounts die with us */
	can_mount = unshare(CLONE_NEWNS) == 0 &&
		    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0;
	if (!can_mount) {
		printf("1..0 # SKIP mounting a small tmpfs needs CAP_SYS_ADMIN (run as root)\n");
		return 0;
	}
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_reserve_and_low, teardown),
		cmocka_unit_test_teardown(test_deletes_and_close_on_a_full_disk, teardown),
		cmocka_unit_test_teardown(test_start_on_a_full_disk, teardown),
		cmocka_unit_test_teardown(test_evicts_for_room_on_the_disk, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
