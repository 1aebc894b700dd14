/* common/qlog.h - one-line logging to stderr for every qsfs component.
 *
 * Messages go to stderr as "LEVEL component: text". The threshold is read
 * once from QSFS_LOG (error|warn|info|debug, default info). Errors are logged
 * once, at the place that decides what to do about them.
 */
#ifndef QSFS_QLOG_H
#define QSFS_QLOG_H

enum qlog_level { QLOG_ERROR = 0, QLOG_WARN = 1, QLOG_INFO = 2, QLOG_DEBUG = 3 };

/* Log one line if level is at or below the threshold. Thread-safe (one
 * fprintf call per line). */
void qlog(enum qlog_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Override the threshold (tests use this to silence expected warnings). */
void qlog_set_level(enum qlog_level level);

#define qlog_err(...)   qlog(QLOG_ERROR, __VA_ARGS__)
#define qlog_warn(...)  qlog(QLOG_WARN, __VA_ARGS__)
#define qlog_info(...)  qlog(QLOG_INFO, __VA_ARGS__)
#define qlog_debug(...) qlog(QLOG_DEBUG, __VA_ARGS__)

#endif
