/* zinit/spawn.h - start one command as a service (or test) process.
 *
 * The child gets its own session and so its own process group (setsid:
 * the group id is its pid), so that a signal for the service reaches every
 * process it started. Its stdin is /dev/null, its stdout and stderr both go
 * to out_fd (or /dev/null), its signal mask is empty and SIGPIPE is back to
 * the default. The program is looked up in PATH (execvpe). Failures of
 * chdir or exec are reported back to the parent through a close-on-exec
 * pipe, so the caller learns of them at once, with the reason.
 */
#ifndef QSFS_ZINIT_SPAWN_H
#define QSFS_ZINIT_SPAWN_H

#include <stddef.h>
#include <sys/types.h>

struct spawn_req {
	char *const *argv;	/* NULL-terminated, argv[0] the program */
	char *const *env;	/* "KEY=VALUE" added to (or replacing in) the
				 * environment; NULL-terminated or NULL */
	const char *dir;	/* working directory; NULL: zinit's */
	int out_fd;		/* stdout and stderr; -1: /dev/null */
};

/* Start the process. Returns 0 with *pid set, or a negative errno with err
 * saying what failed ("cannot run 'prog': No such file or directory",
 * "cannot change to directory '/x': ..."); a child that failed is already
 * reaped then. */
int spawn_start(const struct spawn_req *req, pid_t *pid, char *err, size_t errlen);

#endif
