/* fs/qsfs-fs.c - qsfs-fs, the FUSE filesystem daemon.
 *
 *   qsfs-fs -c /etc/qsfs/qsfs.yaml [MOUNTPOINT] [-o allow_other] [-d]
 *
 * Runs in the foreground, logs to stderr. Opens the segment log in
 * cache.dir with cache.hook (hooks/qsfs-hook hands sealed segments and
 * checkpoints to qsfs-stor and fetches evicted segments back), mounts with
 * default_permissions (plus allow_other from fs.allow_other or -o), and
 * serves requests on several threads.
 *
 * A background thread asks qsfs-stor, every few seconds, which handed-off
 * segments are confirmed remote and tells the log (only confirmed segments
 * may be evicted). If stor is down, nothing is confirmed and writes go on
 * locally; the log keeps retrying its hooks.
 *
 * Clean stop (SIGTERM, SIGINT, fusermount3 -u): the session ends, then the
 * log is synced, the active segment sealed even if partly filled, queued
 * hooks run, the checkpoint written; exit 0.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fuse_ops.h"
#include "qfs.h"
#include "../common/config.h"
#include "../common/ctlsock.h"
#include "../common/qlog.h"

#define CONFIRM_PERIOD_S 2

static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool stop;
} confirmer = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false };

struct confirm_ctx {
	struct cache *c;
	const char *sock;
};

struct pending {
	uint64_t *ids;
	size_t n, cap;
};

static void collect_sealed(void *arg, const struct cache_seg_info *s)
{
	struct pending *p = arg;
	if (s->state != SEG_SEALED || !s->handed_off)
		return;
	if (p->n == p->cap) {
		size_t nc = p->cap ? p->cap * 2 : 64;
		uint64_t *ni = realloc(p->ids, nc * sizeof *ni);
		if (!ni)
			return;
		p->ids = ni;
		p->cap = nc;
	}
	p->ids[p->n++] = s->id;
}

/* Ask stor about every sealed, handed-off, unconfirmed segment. */
static void confirm_round(struct confirm_ctx *x)
{
	struct pending p = { 0 };
	cache_segments(x->c, collect_sealed, &p);
	for (size_t i = 0; i < p.n; i++) {
		char req[64], *reply = NULL;
		snprintf(req, sizeof req, "CONFIRMED s%llu\n", (unsigned long long)p.ids[i]);
		if (ctlsock_request(x->sock, req, &reply))
			break;	/* stor is down: try again next round */
		bool yes = !strcmp(reply, "YES");
		free(reply);
		if (yes) {
			int e = cache_confirm(x->c, p.ids[i]);
			if (e && e != -ENOENT)
				qlog_warn("fs: confirming segment %llu: %s",
					  (unsigned long long)p.ids[i], strerror(-e));
		}
	}
	free(p.ids);
}

static void *confirm_main(void *arg)
{
	struct confirm_ctx *x = arg;
	pthread_mutex_lock(&confirmer.mu);
	while (!confirmer.stop) {
		pthread_mutex_unlock(&confirmer.mu);
		confirm_round(x);
		pthread_mutex_lock(&confirmer.mu);
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += CONFIRM_PERIOD_S;
		if (!confirmer.stop)
			pthread_cond_timedwait(&confirmer.cv, &confirmer.mu, &ts);
	}
	pthread_mutex_unlock(&confirmer.mu);
	return NULL;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: qsfs-fs [-c CONFIG] [-o allow_other] [-d] [MOUNTPOINT]\n"
		   "  -c CONFIG   the qsfs configuration (default /etc/qsfs/qsfs.yaml)\n"
		   "  -o OPTS     extra mount options (allow_other)\n"
		   "  -d          FUSE debug output\n");
}

int main(int argc, char **argv)
{
	const char *conf = "/etc/qsfs/qsfs.yaml", *extra = NULL;
	bool debug = false;
	int ch;
	while ((ch = getopt(argc, argv, "c:o:dh")) != -1) {
		if (ch == 'c')
			conf = optarg;
		else if (ch == 'o')
			extra = optarg;
		else if (ch == 'd')
			debug = true;
		else {
			usage(ch == 'h' ? stdout : stderr);
			return ch == 'h' ? 0 : 2;
		}
	}
	char err[1024];
	struct qsfs_config cfg;
	if (config_load(conf, &cfg, err, sizeof err)) {
		fprintf(stderr, "qsfs-fs: %s\n", err);
		return 2;
	}
	const char *mnt = optind < argc ? argv[optind] : cfg.fs.mountpoint;
	if (!mnt || optind + 1 < argc) {
		fprintf(stderr, "qsfs-fs: give one mountpoint (argument or fs.mountpoint in %s)\n",
			conf);
		config_free(&cfg);
		return 2;
	}
	bool allow_other = cfg.fs.allow_other;
	if (extra) {
		if (!strcmp(extra, "allow_other")) {
			allow_other = true;
		} else {
			fprintf(stderr, "qsfs-fs: unknown mount option '%s' (allow_other)\n", extra);
			config_free(&cfg);
			return 2;
		}
	}
	/* the hook finds the configuration (and so stor's socket) here */
	char absconf[4096];
	if (!realpath(conf, absconf))
		snprintf(absconf, sizeof absconf, "%s", conf);
	setenv("QSFS_CONFIG", absconf, 1);

	struct cache_opts co = {
		.dir = cfg.cache.dir, .segment_size = cfg.cache.segment_size,
		.max_size = cfg.cache.max_size, .hook = cfg.cache.hook,
		.hook_timeout_ms = cfg.cache.hook_timeout * 1000u,
	};
	struct cache *c;
	int r = cache_open(&co, &c);
	if (r) {
		fprintf(stderr, "qsfs-fs: cannot open the segment log in %s: %s\n", cfg.cache.dir,
			strerror(-r));
		config_free(&cfg);
		return 1;
	}
	struct qfs_opts fo = { .cache = c, .size = cfg.fs.size, .cache_dir = cfg.cache.dir };
	struct qfs *fs;
	r = qfs_open(&fo, &fs);
	if (r) {
		fprintf(stderr, "qsfs-fs: the filesystem in %s cannot be opened: %s\n",
			cfg.cache.dir, strerror(-r));
		cache_close(c);
		config_free(&cfg);
		return 1;
	}

	char *fargv[8];
	int fargc = 0;
	fargv[fargc++] = argv[0];
	fargv[fargc++] = "-o";
	fargv[fargc++] = allow_other ? "default_permissions,allow_other,fsname=qsfs,subtype=qsfs"
				     : "default_permissions,fsname=qsfs,subtype=qsfs";
	if (debug)
		fargv[fargc++] = "-d";
	struct fuse_args args = FUSE_ARGS_INIT(fargc, fargv);
	struct fuse_session *se = fuse_session_new(&args, &qfs_fuse_ops, sizeof qfs_fuse_ops, fs);
	int code = 1;
	if (!se) {
		fprintf(stderr, "qsfs-fs: cannot start the FUSE session\n");
		goto out;
	}
	if (fuse_set_signal_handlers(se)) {
		fprintf(stderr, "qsfs-fs: cannot install signal handlers\n");
		goto out_session;
	}
	if (fuse_session_mount(se, mnt)) {
		fprintf(stderr, "qsfs-fs: cannot mount on %s\n", mnt);
		goto out_signals;
	}
	struct confirm_ctx cx = { c, cfg.stor.socket };
	pthread_t ct;
	bool confirming = cfg.stor.socket && cfg.cache.hook &&
			  pthread_create(&ct, NULL, confirm_main, &cx) == 0;
	qlog_info("fs: %s mounted on %s (log in %s)", cfg.volume, mnt, cfg.cache.dir);
	struct fuse_loop_config lc = { .clone_fd = 0, .max_idle_threads = 16 };
	r = fuse_session_loop_mt(se, &lc);
	fuse_session_unmount(se);
	if (confirming) {
		pthread_mutex_lock(&confirmer.mu);
		confirmer.stop = true;
		pthread_cond_broadcast(&confirmer.cv);
		pthread_mutex_unlock(&confirmer.mu);
		pthread_join(ct, NULL);
	}
	code = r < 0 ? 1 : 0;
out_signals:
	fuse_remove_signal_handlers(se);
out_session:
	fuse_session_destroy(se);
out:
	fuse_opt_free_args(&args);
	/* clean stop: everything durable, the last segment handed off */
	qfs_close(fs);
	int e = cache_sync(c);
	if (!e && cache_seal(c) < 0)
		e = -EIO;
	cache_quiesce(c);
	int e2 = cache_close(c);
	if (e || e2) {
		qlog_err("fs: clean stop incomplete: %s", strerror(-(e ? e : e2)));
		code = 1;
	} else {
		qlog_info("fs: unmounted; log synced, last segment sealed and handed off");
	}
	config_free(&cfg);
	return code;
}
