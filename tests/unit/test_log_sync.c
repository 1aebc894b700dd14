/* tests/unit/test_log_sync.c - sync really reaches the disk, and a failed
 * fdatasync is latched. fdatasync is interposed for this program only (the
 * cache is a static library), so the calls can be counted and made to fail. */
#include "testutil.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static atomic_int fds_calls, fds_fail;

int fdatasync(int fd)
{
	atomic_fetch_add(&fds_calls, 1);
	int e = atomic_load(&fds_fail);
	if (e) {
		errno = e;
		return -1;
	}
	return (int)syscall(SYS_fdatasync, fd);
}

static void test_sync_calls_fdatasync(void **state)
{
	(void)state;
	char *dir = tu_mkdtemp();
	struct cache *c = tu_open(dir, 1 << 20, NULL);
	tu_put(c, "a", "1", 1);
	atomic_store(&fds_calls, 0);
	assert_int_equal(cache_sync(c), 0);
	assert_true(atomic_load(&fds_calls) >= 1);
	assert_int_equal(cache_close(c), 0);
	tu_rmrf(dir);
	free(dir);
}

static void test_failed_fdatasync_is_latched(void **state)
{
	(void)state;
	char *dir = tu_mkdtemp();
	struct cache *c = tu_open(dir, 1 << 20, NULL);
	tu_put(c, "a", "1", 1);
	assert_int_equal(cache_sync(c), 0);
	tu_put(c, "b", "2", 1);
	atomic_store(&fds_fail, EIO);
	tu_capture_begin();
	assert_int_equal(cache_sync(c), -EIO);
	char *log = tu_capture_end();
	assert_non_null(strstr(log, "refuses writes until it is reopened"));
	free(log);
	atomic_store(&fds_fail, 0);
	/* the disk "recovered", but pages may be lost: no write may succeed */
	assert_int_equal(cache_put(c, "c", 1, "3", 1), -EIO);
	assert_int_equal(cache_sync(c), -EIO);
	assert_int_equal(cache_seal(c), -EIO);
	uint8_t v[4];
	assert_int_equal(cache_get(c, "a", 1, v, sizeof v), 1);	/* reads still work */
	assert_int_equal(cache_close(c), 0);
	/* a reopen starts afresh (and makes what is on disk durable first) */
	c = tu_open(dir, 1 << 20, NULL);
	tu_put(c, "c", "3", 1);
	assert_int_equal(cache_sync(c), 0);
	assert_int_equal(cache_close(c), 0);
	tu_rmrf(dir);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sync_calls_fdatasync),
		cmocka_unit_test(test_failed_fdatasync_is_latched),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
