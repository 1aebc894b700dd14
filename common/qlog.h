/* common/qlog.h - one-line logging to stderr for every qsfs component.
 *
 * Messages go to stderr as "LEVEL component: text". The threshold is read
 * once from QSFS_LOG (error|warn|info|debug, default info). Errors are logged
 * once, at the place that decides what to do about them.
 *
 * Repeats are rate-limited: a call site (its format string) logs at most
 * QLOG_BURST lines in a QLOG_WINDOW_S window; the rest of that window's
 * lines from it are counted, not written, and one line says how many were
 * left out (with the last of them) once the window is over: when that
 * site or any other logs next, or at qlog_flush() (also run at exit).
 * A failure met on every request (a full disk, a backend gone) so costs
 * a few lines a minute, not thousands. Debug lines are not limited (asked
 * for, to see everything).
 */
#ifndef QSFS_QLOG_H
#define QSFS_QLOG_H

#include <stdint.h>

enum qlog_level { QLOG_ERROR = 0, QLOG_WARN = 1, QLOG_INFO = 2, QLOG_DEBUG = 3 };

#define QLOG_BURST 20u		/* lines per call site and window */
#define QLOG_WINDOW_S 10u	/* the window, in seconds */

/* Log one line if level is at or below the threshold and the call site is
 * within its budget. Thread-safe (one fprintf call per line; the budgets
 * under one mutex). Never blocks but on stderr itself. */
void qlog(enum qlog_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Override the threshold (tests use this to silence expected warnings). */
void qlog_set_level(enum qlog_level level);

/* Write now the "N lines ... were not logged" line of every call site
 * whose window left some out, even a window still open, and start every
 * site's budget afresh. Thread-safe. Registered with atexit at the first
 * line left out. */
void qlog_flush(void);

/* For tests: the clock the windows are measured on (nanoseconds, any
 * origin, never going back); NULL restores CLOCK_MONOTONIC. Also starts
 * every site's budget afresh, as qlog_limit_reset. */
void qlog_set_clock(uint64_t (*now_ns)(void));

/* For tests: start every site's budget afresh, dropping the counts of
 * lines left out (a test that looks for a line in what one step logged
 * must not miss it because earlier steps used the budget up). */
void qlog_limit_reset(void);

#define qlog_err(...)   qlog(QLOG_ERROR, __VA_ARGS__)
#define qlog_warn(...)  qlog(QLOG_WARN, __VA_ARGS__)
#define qlog_info(...)  qlog(QLOG_INFO, __VA_ARGS__)
#define qlog_debug(...) qlog(QLOG_DEBUG, __VA_ARGS__)

#endif
