/* tests/unit/test_qlog.c - the log's rate limit: a call site writes at
 * most QLOG_BURST lines a window, the rest are counted and one line says
 * how many were left out; sites are limited apart, debug lines never,
 * and many threads at once keep the count exact. The clock is the
 * test's (qlog_set_clock): no sleeping, no timing. */
#include "testutil.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../common/qlog.h"

static uint64_t fake_now;

static uint64_t fake_clock(void)
{
	return fake_now;
}

static int setup(void **state)
{
	(void)state;
	fake_now = 1000000000ull;
	qlog_set_clock(fake_clock);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	qlog_set_clock(NULL);
	return 0;
}

/* tu_capture_begin/end without the reset of the budgets (which is what
 * these tests look at). */
static FILE *cap;
static int saved_fd;

static void capture_begin(void)
{
	qlog_set_level(QLOG_INFO);
	fflush(stderr);
	cap = tmpfile();
	assert_non_null(cap);
	saved_fd = dup(2);
	dup2(fileno(cap), 2);
}

static char *capture_end(void)
{
	fflush(stderr);
	qlog_set_level(QLOG_ERROR);
	dup2(saved_fd, 2);
	close(saved_fd);
	fseek(cap, 0, SEEK_END);
	long n = ftell(cap);
	char *buf = calloc(1, (size_t)(n > 0 ? n : 0) + 1);
	rewind(cap);
	size_t got = fread(buf, 1, (size_t)(n > 0 ? n : 0), cap);
	buf[got] = 0;
	fclose(cap);
	return buf;
}

static int count(const char *text, const char *needle)
{
	int n = 0;
	for (const char *p = text; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

static void log_disk_full(int i)
{
	qlog_err("test: append %d failed: No space left on device", i);
}

static void test_repeats_are_limited_and_counted(void **state)
{
	(void)state;
	capture_begin();
	for (int i = 0; i < 500; i++)
		log_disk_full(i);
	char *log = capture_end();
	assert_int_equal(count(log, "failed: No space"), QLOG_BURST);
	assert_null(strstr(log, "not logged"));	/* the window is still open */
	free(log);

	fake_now += (uint64_t)QLOG_WINDOW_S * 1000000000ull;
	capture_begin();
	log_disk_full(500);
	log = capture_end();
	/* the summary first (with the last line left out), then the new line */
	char want[200];
	snprintf(want, sizeof want, "qsfs error: %u more lines like this were not logged",
		 500 - QLOG_BURST);
	char *sum = strstr(log, want), *next = strstr(log, "append 500 failed");
	assert_non_null(sum);
	assert_non_null(strstr(log, "append 499 failed"));
	assert_non_null(next);
	assert_true(sum < next);
	free(log);
}

static void log_a(void)
{
	qlog_warn("test: site a");
}

static void log_b(void)
{
	qlog_warn("test: site b");
}

static void test_sites_apart_and_debug_unlimited(void **state)
{
	(void)state;
	capture_begin();
	qlog_set_level(QLOG_DEBUG);
	for (int i = 0; i < 100; i++) {
		log_a();
		log_b();
		qlog_debug("test: debug %d", i);
	}
	char *log = capture_end();
	assert_int_equal(count(log, "site a"), QLOG_BURST);
	assert_int_equal(count(log, "site b"), QLOG_BURST);
	assert_int_equal(count(log, "test: debug"), 100);
	free(log);
}

/* Another site's line, once the window is over, brings the summary out
 * (a flood that stopped is still told). */
static void test_summary_comes_with_any_later_line(void **state)
{
	(void)state;
	capture_begin();
	for (int i = 0; i < 50; i++)
		log_a();
	fake_now += (uint64_t)QLOG_WINDOW_S * 1000000000ull + 1;
	log_b();
	char *log = capture_end();
	char want[200];
	snprintf(want, sizeof want, "%u more lines like this were not logged (over %u in %u s): "
		 "test: site a", 50 - QLOG_BURST, QLOG_BURST, QLOG_WINDOW_S);
	assert_non_null(strstr(log, want));
	free(log);
	/* and qlog_flush tells an open window's count at once */
	capture_begin();
	for (unsigned i = 1; i < QLOG_BURST + 7; i++)	/* site b logged once above */
		log_b();
	qlog_flush();
	log = capture_end();
	assert_non_null(strstr(log, "7 more lines like this were not logged"));
	free(log);
}

#define THREADS 4
#define PER_THREAD 2000

static void *hammer(void *arg)
{
	(void)arg;
	for (int i = 0; i < PER_THREAD; i++)
		log_disk_full(i);
	return NULL;
}

static void test_threads_keep_the_count(void **state)
{
	(void)state;
	capture_begin();
	pthread_t th[THREADS];
	for (int i = 0; i < THREADS; i++)
		assert_int_equal(pthread_create(&th[i], NULL, hammer, NULL), 0);
	for (int i = 0; i < THREADS; i++)
		pthread_join(th[i], NULL);
	qlog_flush();
	char *log = capture_end();
	char want[100];
	snprintf(want, sizeof want, "%u more lines like this were not logged",
		 THREADS * PER_THREAD - QLOG_BURST);
	assert_non_null(strstr(log, want));
	/* the burst, and the summary quoting one more */
	assert_int_equal(count(log, "failed: No space"), QLOG_BURST + 1);
	free(log);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_repeats_are_limited_and_counted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sites_apart_and_debug_unlimited, setup, teardown),
		cmocka_unit_test_setup_teardown(test_summary_comes_with_any_later_line, setup, teardown),
		cmocka_unit_test_setup_teardown(test_threads_keep_the_count, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
