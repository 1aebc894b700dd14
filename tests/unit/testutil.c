/* tests/unit/testutil.c - see testutil.h */
#include "testutil.h"

#include "../../common/qlog.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

char *tu_mkdtemp(void)
{
	const char *base = getenv("TMPDIR");
	char tmpl[512];
	snprintf(tmpl, sizeof tmpl, "%s/qsfs-test-XXXXXX", base && *base ? base : "/var/tmp");
	char *d = mkdtemp(tmpl);
	assert_non_null(d);
	return strdup(d);
}

void tu_rmrf(const char *path)
{
	if (!path)
		return;
	char cmd[1024];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
	assert_int_equal(system(cmd), 0);
}

char *tu_path(const char *dir, const char *name)
{
	size_t n = strlen(dir) + strlen(name) + 2;
	char *p = malloc(n);
	snprintf(p, n, "%s/%s", dir, name);
	return p;
}

char *tu_script(const char *dir, const char *name, const char *body)
{
	char *p = tu_path(dir, name);
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	fprintf(f, "#!/bin/sh\n%s\n", body);
	fclose(f);
	chmod(p, 0755);
	return p;
}

long long tu_fsize(const char *path)
{
	struct stat st;
	return stat(path, &st) ? -1 : (long long)st.st_size;
}

int tu_count_lines(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	int n = 0, ch;
	while ((ch = fgetc(f)) != EOF)
		n += ch == '\n';
	fclose(f);
	return n;
}

void tu_flip(const char *path, long long off)
{
	int fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	chmod(path, 0644);
	unsigned char b;
	assert_int_equal(pread(fd, &b, 1, off), 1);
	b ^= 0x5a;
	assert_int_equal(pwrite(fd, &b, 1, off), 1);
	close(fd);
}

void tu_assert_fd_content(int fd, const void *want, size_t size)
{
	assert_int_equal(lseek(fd, 0, SEEK_END), (off_t)size);
	uint8_t *got = malloc(size ? size : 1);
	assert_non_null(got);
	assert_int_equal(pread(fd, got, size, 0), (ssize_t)size);
	assert_memory_equal(got, want, size);
	free(got);
}

void tu_copy(const char *from, const char *to)
{
	char cmd[2048];
	snprintf(cmd, sizeof cmd, "cp -a '%s' '%s'", from, to);
	assert_int_equal(system(cmd), 0);
}

struct cache *tu_open(const char *dir, uint64_t segsize, const char *hook)
{
	struct cache_opts o = { .dir = dir, .segment_size = segsize, .hook = hook,
				.hook_timeout_ms = 10000, .hook_retry_ms = 50 };
	struct cache *c = NULL;
	int r = cache_open(&o, &c);
	assert_int_equal(r, 0);
	assert_non_null(c);
	return c;
}

void tu_put(struct cache *c, const char *k, const void *v, size_t vlen)
{
	assert_int_equal(cache_put(c, k, strlen(k), v, vlen), 0);
}

ssize_t tu_get(struct cache *c, const char *k, uint8_t **val)
{
	*val = NULL;
	ssize_t n = cache_get(c, k, strlen(k), NULL, 0);
	if (n < 0)
		return n;
	uint8_t *b = malloc((size_t)n + 1);
	ssize_t m = cache_get(c, k, strlen(k), b, (size_t)n);
	if (m < 0) {
		free(b);
		return m;
	}
	assert_int_equal(m, n);
	*val = b;
	return n;
}

static int saved_stderr = -1;
static FILE *capture_file;

void tu_capture_begin(void)
{
	/* the tests look for warnings, whatever QSFS_LOG says, and for the
	 * lines of this step even when earlier steps logged the same ones
	 * (the rate limit would leave them out) */
	qlog_set_level(QLOG_INFO);
	qlog_limit_reset();
	fflush(stderr);
	capture_file = tmpfile();
	assert_non_null(capture_file);
	saved_stderr = dup(2);
	dup2(fileno(capture_file), 2);
}

char *tu_capture_end(void)
{
	fflush(stderr);
	qlog_set_level(QLOG_ERROR);
	dup2(saved_stderr, 2);
	close(saved_stderr);
	long n = ftell(capture_file);
	if (n < 0)
		n = 0;
	fseek(capture_file, 0, SEEK_END);
	n = ftell(capture_file);
	char *buf = calloc(1, (size_t)n + 1);
	rewind(capture_file);
	size_t got = fread(buf, 1, (size_t)n, capture_file);
	buf[got] = 0;
	fclose(capture_file);
	/* echo it, so a failing test shows what the log said */
	fputs(buf, stderr);
	return buf;
}

int tu_free_port(void)
{
	int s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof a), 0);
	socklen_t l = sizeof a;
	getsockname(s, (struct sockaddr *)&a, &l);
	close(s);
	return ntohs(a.sin_port);
}

pid_t tu_redis_start(int port, const char *pass)
{
	char ports[16];
	snprintf(ports, sizeof ports, "%d", port);
	pid_t pid = fork();
	if (pid == 0) {
		/* dies with the test, and holds none of its output pipes, so a
		 * crashed test never leaves a server keeping meson waiting */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		int devnull = open("/dev/null", O_WRONLY);
		dup2(devnull, 1);
		dup2(devnull, 2);
		const char *argv[] = { "redis-server", "--port", ports, "--bind", "127.0.0.1",
				       "--save", "", "--appendonly", "no", "--dir", "/tmp",
				       pass ? "--requirepass" : NULL, pass, NULL };
		execvp("redis-server", (char **)argv);
		_exit(127);
	}
	for (int i = 0; i < 200; i++) {
		int s = socket(AF_INET, SOCK_STREAM, 0);
		struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
					 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
		int ok = connect(s, (struct sockaddr *)&a, sizeof a) == 0;
		close(s);
		if (ok)
			return pid;
		usleep(20000);
	}
	fail_msg("redis-server did not start on port %d", port);
	return -1;
}

void tu_redis_stop(pid_t pid)
{
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}


pid_t tu_zdbd_start(int port, const char *admin, const char *cmdlog, int *port_out)
{
	const char *src = getenv("QSFS_SOURCE_DIR");
	if (!src)
		fail_msg("QSFS_SOURCE_DIR is not set (meson test sets it): cannot find tests/zdbd.py");
	char script[1024], portfile[600], ports[16];
	snprintf(script, sizeof script, "%s/tests/zdbd.py", src);
	char *dir = tu_mkdtemp();
	snprintf(portfile, sizeof portfile, "%s/port", dir);
	snprintf(ports, sizeof ports, "%d", port);
	pid_t pid = fork();
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);	/* as tu_redis_start */
		int devnull = open("/dev/null", O_WRONLY);
		dup2(devnull, 1);
		dup2(devnull, 2);
		const char *argv[12] = { "python3", script, "--port", ports, "--port-file", portfile };
		int n = 6;
		if (admin) {
			argv[n++] = "--admin";
			argv[n++] = admin;
		}
		if (cmdlog) {
			argv[n++] = "--command-log";
			argv[n++] = cmdlog;
		}
		argv[n] = NULL;
		execvp("python3", (char **)argv);
		_exit(127);
	}
	int got = 0;
	for (int i = 0; i < 500 && !got; i++) {	/* 10 s: python starts slowly under load */
		FILE *f = fopen(portfile, "r");
		if (f) {
			if (fscanf(f, "%d", &got) != 1)
				got = 0;
			fclose(f);
		}
		if (!got) {
			if (waitpid(pid, NULL, WNOHANG) == pid)
				fail_msg("tests/zdbd.py exited at start (port %d)", port);
			usleep(20000);
		}
	}
	tu_rmrf(dir);
	free(dir);
	if (!got)
		fail_msg("tests/zdbd.py did not start");
	*port_out = got;
	return pid;
}

void tu_redis_start_n(int n, int *ports, pid_t *pids)
{
	for (int i = 0; i < n; i++) {
		ports[i] = tu_free_port();
		pids[i] = tu_redis_start(ports[i], NULL);
	}
}

void tu_redis_stop_n(int n, pid_t *pids)
{
	for (int i = 0; i < n; i++) {
		if (pids[i] > 0)
			tu_redis_stop(pids[i]);
		pids[i] = 0;
	}
}

void tu_remove_checkpoints(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	while ((e = readdir(d))) {
		if (!strncmp(e->d_name, "ckpt-", 5)) {
			char *p = tu_path(dir, e->d_name);
			unlink(p);
			free(p);
		}
	}
	closedir(d);
}

void tu_seed(unsigned dflt)
{
	const char *e = getenv("QSFS_TEST_SEED");
	unsigned seed = e ? (unsigned)atoi(e) : dflt;
	srand(seed);
	print_message("# seed %u\n", seed);
}

void tu_hook_env_setup(struct tu_hook_env *e, const char *hook_body)
{
	e->top = tu_mkdtemp();
	e->cache = tu_path(e->top, "cache");
	e->hook = tu_script(e->top, "hook", hook_body);
}

void tu_hook_env_free(struct tu_hook_env *e)
{
	tu_rmrf(e->top);
	free(e->top);
	free(e->cache);
	free(e->hook);
}
