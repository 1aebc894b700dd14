/* cache/hook.c - see hook.h */
#include "hook.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define HOOK_MAXARGS 8
#define HOOK_MAXENV 16

static int reap(pid_t pid)
{
	int st;
	while (waitpid(pid, &st, 0) < 0) {
		if (errno != EINTR)
			return -errno;
	}
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	return 128 + WTERMSIG(st);
}

int hook_run(const char *prog, const char *event, const char *const *args,
	     const char *const *env, unsigned timeout_ms, int lockfd)
{
	const char *argv[HOOK_MAXARGS + 3];
	int argc = 0;
	argv[argc++] = prog;
	argv[argc++] = event;
	for (int i = 0; args && args[i]; i++) {
		if (i >= HOOK_MAXARGS)
			return -E2BIG;
		argv[argc++] = args[i];
	}
	argv[argc] = NULL;

	size_t nenv = 0, nextra = 0;
	while (environ[nenv])
		nenv++;
	while (env && env[nextra])
		nextra++;
	if (nextra > HOOK_MAXENV)
		return -E2BIG;
	const char **envp = calloc(nenv + nextra + 1, sizeof *envp);
	if (!envp)
		return -ENOMEM;
	size_t k = 0;
	for (size_t i = 0; i < nextra; i++)
		envp[k++] = env[i];
	for (size_t i = 0; i < nenv; i++) {
		/* extras override inherited variables of the same name */
		const char *eq = strchr(environ[i], '=');
		size_t nl = eq ? (size_t)(eq - environ[i]) : strlen(environ[i]);
		int dup = 0;
		for (size_t j = 0; j < nextra; j++)
			if (!strncmp(env[j], environ[i], nl) && env[j][nl] == '=')
				dup = 1;
		if (!dup)
			envp[k++] = environ[i];
	}
	envp[k] = NULL;

	posix_spawnattr_t attr;
	posix_spawnattr_init(&attr);
	posix_spawnattr_setpgroup(&attr, 0);
	sigset_t none;
	sigemptyset(&none);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK);
	/* dup2 onto itself clears close-on-exec in the child only */
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	if (lockfd >= 0)
		posix_spawn_file_actions_adddup2(&fa, lockfd, lockfd);
	pid_t pid;
	int r = posix_spawn(&pid, prog, &fa, &attr, (char *const *)argv,
			    (char *const *)envp);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	free(envp);
	if (r)
		return -r;

	int pfd = pidfd_open(pid, 0);
	if (pfd < 0) {
		/* cannot time it out; wait for it */
		return reap(pid);
	}
	struct pollfd p = { .fd = pfd, .events = POLLIN };
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		struct timespec t;
		clock_gettime(CLOCK_MONOTONIC, &t);
		long long el = (t.tv_sec - t0.tv_sec) * 1000LL +
			       (t.tv_nsec - t0.tv_nsec) / 1000000;
		long long left = (long long)timeout_ms - el;
		if (left <= 0) {
			kill(-pid, SIGKILL);
			close(pfd);
			reap(pid);
			return -ETIMEDOUT;
		}
		int n = poll(&p, 1, (int)(left > 1000000 ? 1000000 : left));
		if (n > 0)
			break;
		if (n < 0 && errno != EINTR)
			break;
	}
	close(pfd);
	return reap(pid);
}

const char *hook_strresult(int r, char *buf, unsigned buflen)
{
	if (r == 0)
		snprintf(buf, buflen, "success");
	else if (r == -ETIMEDOUT)
		snprintf(buf, buflen, "timed out and was killed");
	else if (r < 0)
		snprintf(buf, buflen, "could not start: %s", strerror(-r));
	else if (r > 128)
		snprintf(buf, buflen, "killed by signal %d", r - 128);
	else
		snprintf(buf, buflen, "exit status %d", r);
	return buf;
}
