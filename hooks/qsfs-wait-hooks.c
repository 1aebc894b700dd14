/* hooks/qsfs-wait-hooks.c - the container's shutdown waiter (the
 * `wait-hooks` service between stor and fs).
 *
 *   qsfs-wait-hooks [-c CONFIG] [--now]
 *
 * Started after qsfs-stor and before qsfs-fs, it does nothing until SIGTERM
 * or SIGINT (or at once with --now). zinit stops fs first, so by then the
 * filesystem is unmounting. It then:
 *   1. waits until qsfs-fs has let go of the cache (an exclusive flock on
 *      CACHE_DIR/LOCK, which a running qsfs-fs holds);
 *   2. waits until no hook process is left (an exclusive flock on
 *      CACHE_DIR/HOOKS: every hook holds a shared one while it, or anything
 *      it started, runs; an orphan of a killed qsfs-fs too);
 *   3. opens the segment log, which hands every sealed segment and
 *      checkpoint not yet handed off to qsfs-stor (each hand-off is a STORE
 *      that returns once stor journaled it), waits for those hooks and
 *      closes it again.
 * Exit 0 when every sealed segment's STORE is in stor's journal: stor,
 * stopped next, drains the journal. Exit 1 (naming what is left) when
 * hand-offs failed (stor unreachable): they stay in the cache's state for
 * the next start, nothing is dropped. Exit 2: bad usage or configuration.
 * No process table is polled: both waits are kernel locks.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "../cache/cache.h"
#include "../common/config.h"
#include "../common/storclient.h"
#include "../common/qlog.h"

/* Block until an exclusive flock on dir/name is ours, then let it go. */
static int wait_exclusive(const char *dir, const char *name, const char *what)
{
	char path[PATH_MAX];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	int fd = open(path, O_RDONLY | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		int r = -errno;
		fprintf(stderr, "qsfs-wait-hooks: %s: %s\n", path, strerror(-r));
		return r;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		qlog_info("wait-hooks: waiting for %s", what);
		while (flock(fd, LOCK_EX) < 0) {
			if (errno != EINTR) {
				int r = -errno;
				fprintf(stderr, "qsfs-wait-hooks: flock %s: %s\n", path, strerror(-r));
				close(fd);
				return r;
			}
		}
	}
	close(fd);
	return 0;
}

int main(int argc, char **argv)
{
	const char *conf = config_default_path();
	bool now = false;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-c") && i + 1 < argc) {
			conf = argv[++i];
		} else if (!strcmp(argv[i], "--now")) {
			now = true;
		} else {
			fprintf(stderr, "usage: qsfs-wait-hooks [-c CONFIG] [--now]\n");
			return 2;
		}
	}
	struct qsfs_config cfg;
	char err[1024];
	if (config_load(conf, &cfg, err, sizeof err)) {
		fprintf(stderr, "qsfs-wait-hooks: %s\n", err);
		return 2;
	}
	/* hooks find the configuration (and so stor's socket) here */
	char absconf[PATH_MAX];
	if (!realpath(conf, absconf) || setenv("QSFS_CONFIG", absconf, 1)) {
		fprintf(stderr, "qsfs-wait-hooks: %s: %s\n", conf, strerror(errno));
		config_free(&cfg);
		return 2;
	}
	if (!now) {
		sigset_t s;
		sigemptyset(&s);
		sigaddset(&s, SIGTERM);
		sigaddset(&s, SIGINT);
		sigprocmask(SIG_BLOCK, &s, NULL);
		int sig = 0;
		sigwait(&s, &sig);
		sigprocmask(SIG_UNBLOCK, &s, NULL);	/* a second signal ends us */
		qlog_info("wait-hooks: %s: waiting for qsfs-fs and its hooks to hand everything "
			  "to qsfs-stor", strsignal(sig));
	}
	/* no VOLUME file: no log there (qsfs-fs never opened one; it may have
	 * stopped at the writer lease), and opening it would make a new one */
	char vpath[PATH_MAX];
	snprintf(vpath, sizeof vpath, "%s/VOLUME", cfg.cache.dir);
	if (access(vpath, F_OK) < 0 && errno == ENOENT) {
		qlog_info("wait-hooks: %s holds no segment log (qsfs-fs never opened one there): "
			  "nothing to hand off", cfg.cache.dir);
		config_free(&cfg);
		return 0;
	}
	/* the cache's lock is kept from here to the end: no qsfs-fs may start
	 * in between */
	int lk = cache_lock(cfg.cache.dir, false);
	if (lk == -EBUSY) {
		qlog_info("wait-hooks: waiting for qsfs-fs to stop");
		lk = cache_lock(cfg.cache.dir, true);
	}
	if (lk < 0)
		fprintf(stderr, "qsfs-wait-hooks: cannot lock %s/%s: %s\n", cfg.cache.dir,
			CACHE_LOCK_FILE, strerror(-lk));
	/* the hooks the open below starts take HOOKS again */
	int hk = lk < 0 ? lk : wait_exclusive(cfg.cache.dir, CACHE_HOOKS_LOCK,
					       "the running hooks");
	if (lk < 0 || hk < 0) {
		if (lk >= 0)
			close(lk);
		config_free(&cfg);
		return 1;
	}
	/* what fs could not hand off (stor was away): the log's open retries it */
	struct cache_opts co = cache_opts_from_config(&cfg);
	co.lock_fd = lk;
	struct storclient *stor = NULL;
	if (cfg.cache.handoff == HANDOFF_STOR) {	/* straight to stor, as qsfs-fs does */
		stor = storclient_new(cfg.stor.socket);
		if (!stor) {
			fprintf(stderr, "qsfs-wait-hooks: out of memory\n");
			close(lk);
			config_free(&cfg);
			return 1;
		}
		storclient_set_timeout(stor, 0, cfg.cache.hook_timeout * 1000u);
		co.handoff = storclient_handoff;
		co.handoff_arg = stor;
	}
	struct cache *c;
	int r = cache_open(&co, &c);
	close(lk);	/* the cache holds its own duplicate */
	if (r) {
		fprintf(stderr, "qsfs-wait-hooks: cannot open the segment log in %s: %s\n",
			cfg.cache.dir, strerror(-r));
		storclient_free(stor);
		config_free(&cfg);
		return 1;
	}
	cache_quiesce(c);
	struct cache_stats st;
	cache_stats(c, &st);
	cache_close(c);
	storclient_free(stor);
	config_free(&cfg);
	if (st.hooks_pending) {
		fprintf(stderr, "qsfs-wait-hooks: %llu sealed segments or checkpoints could not be "
			"handed to qsfs-stor (is it running?); they stay in the cache and are handed "
			"off at the next start\n", (unsigned long long)st.hooks_pending);
		return 1;
	}
	qlog_info("wait-hooks: every sealed segment is in qsfs-stor's journal");
	return 0;
}
