/* common/qlog.c - see qlog.h */
#include "qlog.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* -1 = not yet read from the environment. Atomic: any thread may log first. */
static atomic_int threshold = -1;

static const char *const names[] = { "error", "warning", "info", "debug" };

#define QLOG_SITES 64u		/* call sites tracked at once */
#define QLOG_PROBES 8u		/* slots looked at for one site */
#define WINDOW_NS ((uint64_t)QLOG_WINDOW_S * 1000000000ull)

/* One call site's budget in its current window. */
struct qlog_site {
	const char *fmt;	/* the site's key (its format string); NULL: free */
	uint64_t start_ns;	/* when its window began */
	unsigned lines;		/* written in the window */
	unsigned left_out;	/* not written in the window */
	enum qlog_level level;	/* of the last line left out */
	char last[200];		/* the last line left out, for the summary */
};

/* The rate limit: the logger is a process-wide singleton (the threshold
 * above), and so is this. Sites hash to slots by their format pointer
 * (string literals live for the whole run); a full table recycles the
 * slot whose window began first, after writing its summary. */
static struct qlog_limit {
	pthread_mutex_t mu;
	struct qlog_site sites[QLOG_SITES];
	uint64_t (*clock)(void);	/* NULL: CLOCK_MONOTONIC */
	uint64_t next_sweep_ns;		/* next look for windows that ended */
	bool atexit_done;
} lim = { .mu = PTHREAD_MUTEX_INITIALIZER };

static int read_threshold(void)
{
	const char *e = getenv("QSFS_LOG");
	int t = QLOG_INFO;
	if (e) {
		if (!strcmp(e, "error")) t = QLOG_ERROR;
		else if (!strcmp(e, "warn")) t = QLOG_WARN;
		else if (!strcmp(e, "debug")) t = QLOG_DEBUG;
	}
	return t;
}

void qlog_set_level(enum qlog_level level)
{
	atomic_store(&threshold, (int)level);
}

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Write s's summary if it left lines out, and start its budget afresh at
 * now. lim.mu held. */
static void site_restart(struct qlog_site *s, uint64_t now)
{
	if (s->left_out)
		fprintf(stderr, "qsfs %s: %u more lines like this were not logged (over %u in "
			"%u s): %s\n", names[s->level], s->left_out, QLOG_BURST, QLOG_WINDOW_S,
			s->last);
	s->start_ns = now;
	s->lines = 0;
	s->left_out = 0;
}

/* The slot of fmt (taken if new). lim.mu held. */
static struct qlog_site *site_of(const char *fmt, uint64_t now)
{
	uintptr_t h = (uintptr_t)fmt;
	h ^= h >> 17;
	h *= 0x9e3779b97f4a7c15ull;
	struct qlog_site *oldest = NULL;
	for (unsigned i = 0; i < QLOG_PROBES; i++) {
		struct qlog_site *s = &lim.sites[(h + i) % QLOG_SITES];
		if (s->fmt == fmt)
			return s;
		if (!s->fmt) {
			s->fmt = fmt;
			s->start_ns = now;
			s->lines = s->left_out = 0;
			return s;
		}
		if (!oldest || s->start_ns < oldest->start_ns)
			oldest = s;
	}
	site_restart(oldest, now);
	oldest->fmt = fmt;
	return oldest;
}

/* Summaries of the windows that ended, at most once a second. lim.mu held. */
static void sweep(uint64_t now)
{
	if (now < lim.next_sweep_ns)
		return;
	lim.next_sweep_ns = now + 1000000000ull;
	for (unsigned i = 0; i < QLOG_SITES; i++) {
		struct qlog_site *s = &lim.sites[i];
		if (s->fmt && s->left_out && now - s->start_ns >= WINDOW_NS)
			site_restart(s, now);
	}
}

void qlog_flush(void)
{
	pthread_mutex_lock(&lim.mu);
	uint64_t now = lim.clock ? lim.clock() : mono_ns();
	for (unsigned i = 0; i < QLOG_SITES; i++)
		if (lim.sites[i].fmt)
			site_restart(&lim.sites[i], now);
	pthread_mutex_unlock(&lim.mu);
}

void qlog_limit_reset(void)
{
	pthread_mutex_lock(&lim.mu);
	memset(lim.sites, 0, sizeof lim.sites);
	lim.next_sweep_ns = 0;
	pthread_mutex_unlock(&lim.mu);
}

void qlog_set_clock(uint64_t (*now_ns)(void))
{
	pthread_mutex_lock(&lim.mu);
	lim.clock = now_ns;
	pthread_mutex_unlock(&lim.mu);
	qlog_limit_reset();
}

void qlog(enum qlog_level level, const char *fmt, ...)
{
	int t = atomic_load(&threshold);
	if (t < 0) {
		t = read_threshold();
		atomic_store(&threshold, t);
	}
	if ((int)level > t)
		return;
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	if (level == QLOG_DEBUG) {
		fprintf(stderr, "qsfs %s: %s\n", names[level], line);
		return;
	}
	/* written under the mutex, so that a summary never comes before
	 * the lines it follows */
	pthread_mutex_lock(&lim.mu);
	uint64_t now = lim.clock ? lim.clock() : mono_ns();
	sweep(now);
	struct qlog_site *s = site_of(fmt, now);
	if (now - s->start_ns >= WINDOW_NS)
		site_restart(s, now);
	if (s->lines < QLOG_BURST) {
		s->lines++;
		fprintf(stderr, "qsfs %s: %s\n", names[level], line);
	} else {
		s->left_out++;
		s->level = level;
		/* a summary quotes the start of the line: enough to know it */
		size_t n = strnlen(line, sizeof s->last - 1);
		memcpy(s->last, line, n);
		s->last[n] = 0;
		if (!lim.atexit_done) {
			lim.atexit_done = true;
			atexit(qlog_flush);
		}
	}
	pthread_mutex_unlock(&lim.mu);
}
