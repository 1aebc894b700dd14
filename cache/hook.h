/* cache/hook.h - run a hook program with a timeout.
 *
 * A hook is run as `HOOK EVENT ARGS...` in its own process group, with the
 * caller's environment plus the variables given. It inherits stdout and
 * stderr, so its messages land in the daemon's log. If it has not exited
 * after timeout_ms, its whole process group is killed with SIGKILL.
 */
#ifndef QSFS_CACHE_HOOK_H
#define QSFS_CACHE_HOOK_H

/* Run prog with argv = { prog, event, args[0], ..., NULL } and the extra
 * "NAME=value" strings of env (NULL-terminated) added to the environment.
 * Returns 0 when the hook exited 0, a positive exit status when it exited
 * non-zero, 128+signal when a signal ended it, -ETIMEDOUT when it was killed
 * for taking too long, or another negative errno when it could not be
 * started. Never logs. */
/* lockfd (-1: none) is an open file holding a shared flock: the hook
 * inherits it, so the lock is held for as long as the hook or anything it
 * started runs, even after the caller died (a waiter taking the exclusive
 * lock knows no hook is left). */
int hook_run(const char *prog, const char *event, const char *const *args,
	     const char *const *env, unsigned timeout_ms, int lockfd);

/* Text for a hook_run() result, e.g. "exit status 3" or "timed out". Uses
 * buf (at least 64 bytes). */
const char *hook_strresult(int r, char *buf, unsigned buflen);

#endif
