/* tests/unit/testutil.h - helpers shared by the cmocka tests. */
#ifndef QSFS_TESTUTIL_H
#define QSFS_TESTUTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <sys/types.h>
#include <cmocka.h>

#include "cache.h"

/* A fresh empty directory under $TMPDIR (or /var/tmp); malloc'd path. */
char *tu_mkdtemp(void);
/* rm -rf path (no-op on NULL). */
void tu_rmrf(const char *path);
/* Write an executable shell script at dir/name with the given body (a
 * "#!/bin/sh" line is prepended). Returns a malloc'd path. */
char *tu_script(const char *dir, const char *name, const char *body);
/* Path dir/name into a static-free malloc'd string. */
char *tu_path(const char *dir, const char *name);
/* A test's directory for a log with a hook: top (fresh, removed by
 * tu_hook_env_free), cache = top/cache (not created), hook = top/hook, a
 * script with body hook_body (it finds top as $(dirname "$0")). */
struct tu_hook_env {
	char *top, *cache, *hook;
};
void tu_hook_env_setup(struct tu_hook_env *e, const char *hook_body);
void tu_hook_env_free(struct tu_hook_env *e);
/* Size of a file, or -1. */
long long tu_fsize(const char *path);
/* Count the lines of a file (0 if missing). */
int tu_count_lines(const char *path);
/* Flip one byte of a file at off. */
void tu_flip(const char *path, long long off);
/* Copy a file. */
void tu_copy(const char *from, const char *to);
/* Assert that the file open at fd holds exactly the size bytes of want. */
void tu_assert_fd_content(int fd, const void *want, size_t size);

/* Open a cache with the usual test options; asserts success. */
struct cache *tu_open(const char *dir, uint64_t segsize, const char *hook);

/* Put a string key/value; asserts success. */
void tu_put(struct cache *c, const char *k, const void *v, size_t vlen);
/* Get a string key into a malloc'd buffer; returns length or a negative
 * errno (buffer NULL then). */
ssize_t tu_get(struct cache *c, const char *k, uint8_t **val);



/* Redirect stderr (fd 2) into a temp file until tu_capture_end(), which
 * returns everything written, malloc'd. Logs at info level meanwhile, and
 * starts the log's rate limit afresh (qlog_limit_reset). */
void tu_capture_begin(void);
char *tu_capture_end(void);
/* A free TCP port on 127.0.0.1 (bound, then released). */
int tu_free_port(void);

/* Seed rand() with $QSFS_TEST_SEED, else with dflt, and print the seed
 * (TAP comment) so a failing randomized run can be replayed. */
void tu_seed(unsigned dflt);
/* Start a real redis-server on 127.0.0.1:port (requirepass pass if not
 * NULL, no persistence) and wait until it accepts connections. */
pid_t tu_redis_start(int port, const char *pass);
/* SIGKILL it and reap it. */
void tu_redis_stop(pid_t pid);
/* Start the 0-db double (tests/zdbd.py, found through $QSFS_SOURCE_DIR)
 * on 127.0.0.1:port (0: one the kernel picks), with admin password admin
 * (NULL: none, every client is admin) and, when cmdlog is not NULL, the
 * commands it receives appended there ("NAME ARGC" lines). Waits until it
 * listens; *port_out gets its port. Stop it with tu_redis_stop. */
pid_t tu_zdbd_start(int port, const char *admin, const char *cmdlog, int *port_out);
/* n redis-servers (no password) on free ports: ports[i], pids[i]. */
void tu_redis_start_n(int n, int *ports, pid_t *pids);
/* Stop those of them still running (pid > 0); their pids become 0. */
void tu_redis_stop_n(int n, pid_t *pids);

/* Delete the checkpoint files (ckpt-*) of a cache directory, so that the
 * next open replays every segment. */
void tu_remove_checkpoints(const char *dir);

#endif
