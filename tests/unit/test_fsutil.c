/* tests/unit/test_fsutil.c - timed waits run on the monotonic clock: every
 * periodic thread (the collector, the monitor, stor's workers, prober,
 * scrubber and lease keeper) waits with fs_abstime on a condition variable
 * made by fs_cond_init, so a step of the wall clock (NTP on a host that
 * booted minutes ago) neither stalls nor hurries them. Run on a young host
 * too (tests/meson.build), where the two clocks are far apart. */
#include "testutil.h"

#include <errno.h>
#include <pthread.h>
#include <time.h>

#include "../../common/fsutil.h"

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t ts_ns(struct timespec ts)
{
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* fs_abstime(d) is d from now on CLOCK_MONOTONIC, not on the wall clock */
static void test_abstime_is_monotonic(void **state)
{
	(void)state;
	uint64_t before = mono_ns();
	uint64_t at = ts_ns(fs_abstime(2500000000ull));
	uint64_t after = mono_ns();
	assert_true(at >= before + 2500000000ull);
	assert_true(at <= after + 2500000000ull);
	/* nanoseconds carried into seconds */
	struct timespec t = fs_abstime(999999999ull);
	assert_true(t.tv_nsec >= 0 && t.tv_nsec < 1000000000L);
}

/* a timed wait on a condition variable from fs_cond_init waits as long as
 * asked: with the clocks mixed up (a wall-clock deadline read as a
 * monotonic one, or the other way round) it would return at once or after
 * decades */
static void test_timed_wait_waits_as_long_as_asked(void **state)
{
	(void)state;
	pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
	pthread_cond_t cv;
	assert_int_equal(fs_cond_init(&cv), 0);
	pthread_mutex_lock(&mu);
	uint64_t t0 = mono_ns();
	struct timespec ts = fs_abstime(50000000ull);
	int r;
	while ((r = pthread_cond_timedwait(&cv, &mu, &ts)) == 0)
		;	/* spurious wake-ups: wait on */
	uint64_t took = mono_ns() - t0;
	pthread_mutex_unlock(&mu);
	assert_int_equal(r, ETIMEDOUT);
	assert_true(took >= 50000000ull);
	assert_true(took < 60000000000ull);
	pthread_cond_destroy(&cv);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_abstime_is_monotonic),
		cmocka_unit_test(test_timed_wait_waits_as_long_as_asked),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
