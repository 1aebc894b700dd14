/* zinit/init.h - `zinit init`: the event loop that runs the supervisor.
 *
 * One thread, one poll(2) over: a signalfd (SIGCHLD, SIGTERM, SIGINT are
 * blocked and read from it), the control socket and its connections, and
 * the services' output pipes; the poll timeout is the supervisor's next
 * deadline. On SIGCHLD every exited child is reaped (waitpid(-1)), whether
 * it is a service, a test or an orphan reparented to zinit; when zinit is
 * not PID 1 it makes itself a child subreaper (PR_SET_CHILD_SUBREAPER) so
 * orphans still come to it. SIGTERM, SIGINT and `zinit shutdown` start the
 * ordered shutdown; zinit exits once it is complete.
 */
#ifndef QSFS_ZINIT_INIT_H
#define QSFS_ZINIT_INIT_H

#include <stdbool.h>

struct init_opts {
	const char *config_dir;		/* the service files */
	const char *socket;		/* the control socket */
	bool container;			/* exit status reports clean stops */
	unsigned ready_timeout_s;	/* 0: the default (60 s) */
};

/* Run until shutdown is complete. Returns the exit status: 1 when the
 * service files are wrong or the socket cannot be created (nothing was
 * started then); after a shutdown, with container: 0 if every service
 * ended cleanly (see sup_exit_status), else 1; without container: 0. */
int zinit_init(const struct init_opts *o);

#endif
