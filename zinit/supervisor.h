/* zinit/supervisor.h - the state machine of zinit: when each service is
 * started, tested, restarted and stopped, and what becomes of its output.
 *
 * The supervisor does no waiting of its own. The event loop (init.c) tells
 * it what happened - a child was reaped, output is readable, a control
 * command came, time passed, shutdown was asked for - always with the
 * current CLOCK_MONOTONIC time in milliseconds (always > 0: a time of 0
 * means "no deadline" here), and asks it for the next
 * deadline to wake it at. Everything runs on that one thread.
 *
 * Service states (as `zinit list` shows them):
 *   blocked      wanted, waiting for every service in `after` to be ready
 *   running      a process runs (for a long-running service with a `test`,
 *                only once the test passed - before that it is "spawned")
 *   spawned      a long-running service whose test has not passed yet
 *   test-failed  its test never passed within the ready timeout: it still
 *                runs, but services after it do not start
 *   success      a oneshot that exited 0
 *   failed       a oneshot that exited nonzero (or could not be run)
 *   restarting   a long-running service that exited, waiting out its
 *                restart backoff
 *   stopping     its stop signal was sent, waiting for it to exit
 *   stopped      not wanted (zinit stop, shutdown) and not running
 * A service is *ready* - lets the services after it start - when it is
 * running (long-running) or success (oneshot).
 *
 * Timing (see zinit/README.md): tests are retried 100 ms after a failure,
 * doubling up to 2 s, for at most the ready timeout (60 s by default), each
 * attempt killed after 10 s; restarts wait 1 s doubling to 30 s, back to
 * 1 s after a run of 60 s or more.
 */
#ifndef QSFS_ZINIT_SUPERVISOR_H
#define QSFS_ZINIT_SUPERVISOR_H

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "service.h"
#include "strbuf.h"

#define SUP_TEST_FIRST_DELAY_MS 100
#define SUP_TEST_MAX_DELAY_MS 2000
#define SUP_TEST_ATTEMPT_MS 10000
#define SUP_READY_TIMEOUT_S 60
#define SUP_RESTART_FIRST_MS 1000
#define SUP_RESTART_MAX_MS 30000
#define SUP_RESTART_RESET_MS 60000

struct sup;

struct sup_opts {
	unsigned ready_timeout_s;	/* 0: SUP_READY_TIMEOUT_S */
	int out_fd;			/* where "name: line" output goes (stdout) */
	/* also called with every output line kept (NULL: none) */
	void (*on_line)(void *arg, const char *svc, const char *line, size_t len);
	void *on_line_arg;
};

/* Take over set (resolved; it is moved out and emptied) and create the
 * supervisor. Nothing is started yet. Returns 0 or -ENOMEM. */
int sup_new(struct zsvc_set *set, const struct sup_opts *o, struct sup **out);

/* Free everything. Processes are not signalled (the caller has shut
 * down); output pipes are closed. */
void sup_free(struct sup *s);

/* Start every service whose dependencies allow it, in start order. */
void sup_begin(struct sup *s, int64_t now);

/* A child was reaped with wait status. Returns false when pid is not one
 * of ours (an orphan that was reparented to zinit). */
bool sup_child_exited(struct sup *s, pid_t pid, int status, int64_t now);

/* Act on every deadline that has passed: restarts, test attempts, test
 * timeouts, SIGKILL after a stop timeout, shutdown progress. */
void sup_tick(struct sup *s, int64_t now);

/* The earliest pending deadline, or -1 when there is none. */
int64_t sup_next_deadline(const struct sup *s);

/* Begin the ordered shutdown (idempotent): nothing starts or restarts any
 * more, tests are killed, and each running service gets its stop signal
 * once every service that depends on it has exited, then SIGKILL after
 * its shutdown_timeout. */
void sup_shutdown(struct sup *s, int64_t now);

/* True once shutdown was asked for and no process of ours is left. */
bool sup_done(const struct sup *s);

/* 0 if every service ended cleanly: its last run exited 0 or by its stop
 * signal (sent by zinit), was not SIGKILLed after a timeout, no oneshot
 * failed and no test gave up. 1 otherwise (each reason was logged). */
int sup_exit_status(const struct sup *s);

/* The output pipes to poll: fills up to cap entries (POLLIN) and returns
 * how many it filled; sup_nstreams tells how many there are. */
size_t sup_nstreams(const struct sup *s);
size_t sup_fill_pollfds(const struct sup *s, struct pollfd *p, size_t cap);

/* Read what is available on output pipe fd (at most 64 KiB at a time, so
 * that no service starves the others); lines go to the service's ring, to
 * out_fd as "name: line" and to on_line. At end of file the pipe is
 * closed. */
void sup_read_output(struct sup *s, int fd);

/* Read every output pipe until it would block, then emit partial lines
 * (used once at exit). */
void sup_drain_output(struct sup *s);

/* ---- control commands: each appends its reply body to out and returns 0,
 * or returns -ENOENT (unknown service) / -EBUSY (shutting down) with the
 * message in out. ---- */

/* "name: state" for every service, by name. */
void sup_list(const struct sup *s, struct strbuf *out);

/* name, pid, state, target, after, oneshot, last exit, restarts. */
int sup_status(const struct sup *s, const char *name, struct strbuf *out);

/* Want the service up: start it (once its dependencies are ready) if it
 * is not running; a oneshot that already ran runs again. */
int sup_start(struct sup *s, const char *name, int64_t now, struct strbuf *out);

/* Want it down: send its stop signal (SIGKILL after shutdown_timeout), and
 * do not restart it. */
int sup_stop(struct sup *s, const char *name, int64_t now, struct strbuf *out);

/* Stop it as sup_stop does, then start it again as soon as it exited. */
int sup_restart(struct sup *s, const char *name, int64_t now, struct strbuf *out);

/* The ring buffer lines of one service (name) or of all (name NULL, in
 * arrival order), each as "name: line". */
int sup_log(const struct sup *s, const char *name, struct strbuf *out);

#endif
