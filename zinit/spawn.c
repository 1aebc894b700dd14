/* zinit/spawn.c - see spawn.h */
#include "spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* environ with req->env applied: a malloc'd vector of borrowed strings. */
static char **make_env(char *const *add)
{
	size_t n = 0, k = 0;
	while (environ[n])
		n++;
	while (add && add[k])
		k++;
	char **v = calloc(n + k + 1, sizeof *v);
	if (!v)
		return NULL;
	size_t m = 0;
	for (size_t i = 0; i < n; i++) {
		const char *eq = strchr(environ[i], '=');
		size_t klen = eq ? (size_t)(eq - environ[i]) : strlen(environ[i]);
		int replaced = 0;
		for (size_t j = 0; j < k && !replaced; j++)
			replaced = !strncmp(add[j], environ[i], klen) && add[j][klen] == '=';
		if (!replaced)
			v[m++] = environ[i];
	}
	for (size_t j = 0; j < k; j++)
		v[m++] = add[j];
	return v;
}

/* What the child reports when it cannot exec: the step and errno. */
struct child_err {
	int step;	/* 1 = chdir, 2 = exec, 3 = setup */
	int err;
};

static void child(const struct spawn_req *req, char **envp, int errfd)
{
	struct child_err ce = { 3, 0 };
	sigset_t none;
	sigemptyset(&none);
	if (setsid() < 0 || sigprocmask(SIG_SETMASK, &none, NULL) < 0 ||
	    signal(SIGPIPE, SIG_DFL) == SIG_ERR)
		goto fail;
	int null = open("/dev/null", O_RDWR);
	if (null < 0)
		goto fail;
	int out = req->out_fd >= 0 ? req->out_fd : null;
	if (dup2(null, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0)
		goto fail;
	if (null > 2)
		close(null);
	ce.step = 1;
	if (req->dir && chdir(req->dir) < 0)
		goto fail;
	ce.step = 2;
	execvpe(req->argv[0], req->argv, envp);
fail:
	ce.err = errno;
	if (write(errfd, &ce, sizeof ce) < 0) {
		/* nothing more to do: the parent sees exit status 127 */
	}
	_exit(127);
}

int spawn_start(const struct spawn_req *req, pid_t *pid, char *err, size_t errlen)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0) {
		int e = errno;
		snprintf(err, errlen, "cannot create a pipe: %s", strerror(e));
		return -e;
	}
	char **envp = make_env(req->env);
	if (!envp) {
		close(p[0]);
		close(p[1]);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	pid_t c = fork();
	if (c == 0)
		child(req, envp, p[1]);
	int e = errno;
	free(envp);
	close(p[1]);
	if (c < 0) {
		close(p[0]);
		snprintf(err, errlen, "cannot fork: %s", strerror(e));
		return -e;
	}
	struct child_err ce;
	ssize_t n;
	do
		n = read(p[0], &ce, sizeof ce);
	while (n < 0 && errno == EINTR);
	close(p[0]);
	if (n != (ssize_t)sizeof ce) {
		*pid = c;	/* exec succeeded (the pipe closed on exec) */
		return 0;
	}
	while (waitpid(c, NULL, 0) < 0 && errno == EINTR)
		;
	if (ce.step == 1)
		snprintf(err, errlen, "cannot change to directory '%s': %s", req->dir,
			 strerror(ce.err));
	else if (ce.step == 2)
		snprintf(err, errlen, "cannot run '%s': %s", req->argv[0], strerror(ce.err));
	else
		snprintf(err, errlen, "cannot set up the process: %s", strerror(ce.err));
	return ce.err ? -ce.err : -EIO;
}
