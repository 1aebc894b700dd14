/* common/qlog.c - see qlog.h */
#include "qlog.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* -1 = not yet read from the environment. Atomic: any thread may log first. */
static atomic_int threshold = -1;

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

void qlog(enum qlog_level level, const char *fmt, ...)
{
	static const char *names[] = { "error", "warning", "info", "debug" };
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
	fprintf(stderr, "qsfs %s: %s\n", names[level], line);
}
