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
 * locally; the log keeps retrying its hooks. The same thread writes
 * CACHE_DIR/fs-status.json (what `qsfs-ctl status` shows of the filesystem)
 * and holds back new data while the cache is over its limit with nothing
 * evictable: writers wait while stor is reachable (backpressure), and get
 * ENOSPC while it is not; the mount stays up. The same holds while the
 * cache disk is low on space (less than cache.disk_reserve free; deletes
 * and the stop go on, on the log's reserve). It also seals the active
 * segment once it holds data older than cache.max_segment_age (the
 * recovery point of a host that dies).
 *
 * The control socket (fs/fsctl.h, fs.socket) answers PING, SEAL (used by
 * `qsfs-ctl drain`) and STATUS while mounted.
 *
 * Clean stop (SIGTERM, SIGINT, fusermount3 -u): the session ends, then the
 * log is synced, the active segment sealed even if partly filled, queued
 * hooks run, the checkpoint written; exit 0 (on a full disk too: the log's
 * reserve takes them). A start on a full disk opens the log without an
 * active segment if it must: it mounts, and writes wait for room.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <getopt.h>
#include <json-c/json.h>
#include <limits.h>
#include <mntent.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <spawn.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "collector.h"
#include "fsctl.h"
#include "fuse_ops.h"
#include "meta.h"
#include "qfs.h"
#include "../common/config.h"
#include "../common/storclient.h"
#include "heartbeat.h"
#include "monitor.h"
#include "restore.h"
#include "wlease.h"
#include "../common/fsutil.h"
#include "../common/qlog.h"
#include "../common/units.h"

#define FS_MIN_SEGMENT (128u * 1024)	/* a 64 KiB block record must fit */

/* A stop cancels fetches in flight: a reader blocked on a cold read (slow
 * backends) would otherwise hold the FUSE session open, and so the stop,
 * for up to cache.hook_timeout. libfuse's own handler (fuse_set_signal_
 * handlers: it ends the session) runs first, then the client's fetches are
 * cancelled (async-signal-safe); their readers get EIO. Only what a signal
 * handler must reach is file-level: libfuse's handlers, saved to be put
 * back, and the client. */
static const int stop_signals[] = { SIGTERM, SIGINT, SIGHUP };
static struct sigaction fuse_handlers[3];
static bool chained[3];		/* stop_handler is in front of libfuse's */
static struct storclient *volatile stop_client;

static void stop_handler(int sig)
{
	int saved = errno;
	for (int i = 0; i < 3; i++)
		if (stop_signals[i] == sig && chained[i])
			fuse_handlers[i].sa_handler(sig);
	struct storclient *cl = stop_client;
	if (cl)
		storclient_cancel_fetches(cl);
	errno = saved;
}

/* Put stop_handler in front of libfuse's handlers (installed already), on
 * the signals libfuse handles: one it left alone (ignored, as under nohup
 * or in a background job) must not cancel fetches of a mount that goes on
 * serving. */
static void stop_cancels_fetches(struct storclient *cl)
{
	if (!cl)
		return;	/* a hook program's fetch is bounded by its timeout */
	stop_client = cl;
	for (int i = 0; i < 3; i++) {
		struct sigaction cur;
		if (sigaction(stop_signals[i], NULL, &cur) || cur.sa_handler == SIG_DFL ||
		    cur.sa_handler == SIG_IGN || (cur.sa_flags & SA_SIGINFO))
			continue;
		struct sigaction sa = { .sa_handler = stop_handler };
		sigemptyset(&sa.sa_mask);
		fuse_handlers[i] = cur;
		chained[i] = true;
		sigaction(stop_signals[i], &sa, NULL);
	}
}

/* Give libfuse its handlers back (so that fuse_remove_signal_handlers
 * recognises and removes them). */
static void stop_cancels_nothing(void)
{
	for (int i = 0; i < 3; i++)
		if (chained[i]) {
			sigaction(stop_signals[i], &fuse_handlers[i], NULL);
			chained[i] = false;
		}
	stop_client = NULL;
}

/* The collector's compaction step (collector_opts.defrag): one step of a
 * qfs_defrag sweep; the background folds only blocks whose extents hide
 * half a block or more (a fold rewrites the whole block: at most about
 * twice what it frees), a thorough pass every fragmented one, to
 * the end of the sweep. */
struct defrag_ctx {
	struct qfs *fs;
	struct qfs_defrag d;	/* only the collector's pass (one at a time) uses it */
};

static int defrag_step(void *arg, uint64_t budget, bool thorough, uint64_t *bytes,
		       uint64_t *folded)
{
	struct defrag_ctx *x = arg;
	int r;
	do {
		r = qfs_defrag(x->fs, &x->d, budget, thorough ? 0 : FS_BLOCK / 2);
		if (r >= 0) {
			*bytes += x->d.bytes;
			*folded += x->d.folded;
		}
	} while (thorough && r == 0);
	return r;
}

/* Have qsfs-stor look at the writer lease now (it is not an error if stor
 * is not running: it looks when it starts). stor NULL: nothing is handed
 * to a stor. */
static void stor_look_at_lease(struct storclient *stor)
{
	if (stor)
		storclient_lease(stor);
}

/* A qsfs-fs that died (kill -9, a crash) leaves its mount behind, answering
 * ENOTCONN, and a new mount on it would fail: a supervisor's restart
 * would then fail forever. Such a mount serves nobody: detach it (lazily:
 * a process still in it only sees it go), as root with umount2, otherwise
 * with fusermount3 -u -z, which lets a user undo its own mounts. */
static void detach_dead_mount(const char *mnt)
{
	struct stat st;
	if (stat(mnt, &st) == 0 || errno != ENOTCONN)
		return;
	/* only a qsfs mount on exactly this path (another filesystem may
	 * answer ENOTCONN for reasons of its own) */
	char dir[PATH_MAX], path[2 * PATH_MAX];
	const char *slash = strrchr(mnt, '/'), *base = slash ? slash + 1 : mnt;
	if (!slash)
		snprintf(dir, sizeof dir, ".");
	else if (slash == mnt)
		snprintf(dir, sizeof dir, "/");
	else
		snprintf(dir, sizeof dir, "%.*s", (int)(slash - mnt), mnt);
	char *real = realpath(dir, NULL);	/* the path as the mount table has it */
	if (!real)
		return;
	snprintf(path, sizeof path, "%s/%s", strcmp(real, "/") ? real : "", base);
	free(real);
	bool ours = false;
	FILE *mf = setmntent("/proc/self/mounts", "r");
	for (struct mntent *m; mf && (m = getmntent(mf));)
		ours |= !strcmp(m->mnt_dir, path) && !strcmp(m->mnt_type, "fuse.qsfs");
	if (mf)
		endmntent(mf);
	if (!ours)
		return;
	int r = umount2(path, MNT_DETACH) == 0 ? 0 : -errno;
	if (r == -EPERM) {
		extern char **environ;
		char *argv[] = { "fusermount3", "-u", "-z", (char *)mnt, NULL };
		pid_t pid;
		int st2;
		r = posix_spawnp(&pid, "fusermount3", NULL, NULL, argv, environ);
		if (r)
			r = -r;
		else if (waitpid(pid, &st2, 0) < 0 || !WIFEXITED(st2) || WEXITSTATUS(st2))
			r = -EPERM;
	}
	if (r)
		qlog_warn("fs: %s is the dead mount of a qsfs-fs that stopped without unmounting, "
			  "and cannot be detached (%s): run fusermount3 -u -z %s", mnt, strerror(-r),
			  mnt);
	else
		qlog_warn("fs: %s was the dead mount of a qsfs-fs that stopped without unmounting: "
			  "detached it", mnt);
}

/* This node stops writing: the lease is marked not mounted, and qsfs-stor
 * (told at once) releases it once it has uploaded what was handed off and
 * nothing is left to hand off. release: give it up now instead (this
 * cache can give the volume nothing). */
static void lease_stop(struct wlease *lease, const struct qsfs_config *cfg,
		       struct storclient *stor, bool release)
{
	uint64_t left = 0, first;
	if (!release && cfg->cache.handoff != HANDOFF_NONE && cache_unhanded(cfg->cache.dir, &left, &first) == 0 &&
	    left)
		qlog_warn("fs: %" PRIu64 " segments (first s%" PRIu64 ") could not be handed to "
			  "qsfs-stor; they exist only here, so the writer lease is kept (it does "
			  "not expire) until qsfs-wait-hooks or the next qsfs-fs hands them off",
			  left, first);
	if (release)
		wlease_release(lease);
	else
		wlease_unmount(lease, left > 0);
	wlease_free(lease);
	stor_look_at_lease(stor);
}

static void max_sealed(void *arg, const struct cache_seg_info *s)
{
	uint64_t *hi = arg;
	if (s->state != SEG_ACTIVE && s->id > *hi)
		*hi = s->id;
}

/* Refuse a cache another writer has moved past: the catalog lists sealed
 * segments this cache never had (writing on would reuse their ids). */
static int check_not_stale(struct wlease *lease, struct cache *c, const char *dir, char *err,
			   size_t errlen)
{
	uint64_t remote = 0, local = 0;
	char why[700];
	int r = wlease_remote_hi(lease, &remote, why, sizeof why);
	if (r) {
		snprintf(err, errlen, "cannot check the cache against the volume: %s", why);
		return r;
	}
	cache_segments(c, max_sealed, &local);
	if (remote > local) {
		snprintf(err, errlen, "the cache in %s is stale: the volume has %llu sealed segments "
			 "and this cache knows only %llu (another host wrote the volume since). Move "
			 "%s away (it holds nothing the volume needs, unless this host wrote after "
			 "losing the lease) and start again to restore the volume", dir,
			 (unsigned long long)remote, (unsigned long long)local, dir);
		return -ESTALE;
	}
	return 0;
}

/* "the disk of DIR is full (X free of Y)", for an ENOSPC that stops a
 * start or a clean stop. */
static const char *disk_words(const char *dir, char *buf, size_t len)
{
	struct statvfs sv;
	char fb[32], tb[32];
	if (statvfs(dir, &sv) < 0) {
		snprintf(buf, len, "the disk of %s is full", dir);
		return buf;
	}
	snprintf(buf, len, "the disk of %s is full (%s free of %s)", dir,
		 format_size((uint64_t)sv.f_bavail * sv.f_frsize, fb, sizeof fb),
		 format_size((uint64_t)sv.f_blocks * sv.f_frsize, tb, sizeof tb));
	return buf;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: qsfs-fs [-c CONFIG] [-o allow_other] [-d] [--takeover] [--nonempty] "
		   "[MOUNTPOINT]\n"
		   "  -c CONFIG   the qsfs configuration (default $QSFS_CONFIG, else /etc/qsfs/qsfs.yaml)\n"
		   "  -o OPTS     extra mount options (allow_other)\n"
		   "  -d          FUSE debug output\n"
		   "  --takeover  take the volume's writer lease from another host even if\n"
		   "              it has not expired (that host must be gone: what it has\n"
		   "              not uploaded is lost)\n"
		   "  --nonempty  mount even if MOUNTPOINT holds files (they are hidden\n"
		   "              while mounted)\n");
}

/* The mountpoint must be a directory, and an empty one unless nonempty: a
 * mount hides what the directory holds, and files written there before the
 * mount (by an app that started first) would vanish from its view without
 * a word. Returns 0, or -errno with err saying what is wrong. */
static int check_mountpoint(const char *mnt, bool nonempty, char *err, size_t errlen)
{
	DIR *d = opendir(mnt);
	if (!d) {
		int e = errno;
		snprintf(err, errlen, "the mountpoint %s %s", mnt,
			 e == ENOTDIR ? "is not a directory" : strerror(e));
		return -e;
	}
	struct dirent *de;
	int r = 0;
	errno = 0;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (!nonempty) {
			snprintf(err, errlen, "the mountpoint %s is not empty (it holds '%.100s'): "
				 "the mount would hide its files; empty it, or give --nonempty to "
				 "mount over them", mnt, de->d_name);
			r = -ENOTEMPTY;
		}
		break;
	}
	if (!de && errno) {
		r = -errno;
		snprintf(err, errlen, "cannot list the mountpoint %s: %s", mnt, strerror(errno));
	}
	closedir(d);
	return r;
}

int main(int argc, char **argv)
{
	const char *conf = config_default_path(), *extra = NULL;
	bool debug = false, takeover = false, nonempty = false;
	int ch;
	static const struct option longopts[] = { { "takeover", no_argument, NULL, 'T' },
						  { "nonempty", no_argument, NULL, 'N' },
						  { "help", no_argument, NULL, 'h' },
						  { NULL, 0, NULL, 0 } };
	while ((ch = getopt_long(argc, argv, "c:o:dh", longopts, NULL)) != -1) {
		if (ch == 'T')
			takeover = true;
		else if (ch == 'N')
			nonempty = true;
		else if (ch == 'c')
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
	if (mkdir(mnt, 0755) == 0)	/* a container's first start: nothing there yet */
		qlog_info("fs: created the mountpoint %s", mnt);
	if (cfg.cache.segment_size && cfg.cache.segment_size < FS_MIN_SEGMENT) {
		fprintf(stderr, "qsfs-fs: %s: cache.segment_size %llu is too small for the "
			"filesystem's 64 KiB blocks: use at least 128KiB\n", conf,
			(unsigned long long)cfg.cache.segment_size);
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
	/* qsfs-stor's client: hand-offs, fetches, confirmations, the lease */
	struct storclient *stor = NULL;
	if (cfg.cache.handoff != HANDOFF_NONE && !(stor = storclient_new(cfg.stor.socket))) {
		fprintf(stderr, "qsfs-fs: out of memory\n");
		config_free(&cfg);
		return 1;
	}
	if (stor)
		storclient_set_timeout(stor, 0, cfg.cache.hook_timeout * 1000u);

	/* one qsfs-fs per cache directory: held before the lease is touched, so
	 * a second start on this node (same holder id) cannot rewrite or
	 * release the lease of the one that is mounted */
	int lk = cache_lock(cfg.cache.dir, false);
	if (lk < 0) {
		if (lk == -EBUSY)
			fprintf(stderr, "qsfs-fs: %s is in use by another process (a qsfs-fs "
				"already running for this volume, or qsfs-wait-hooks handing off "
				"after one stopped)\n", cfg.cache.dir);
		else
			fprintf(stderr, "qsfs-fs: cannot lock %s/%s: %s\n", cfg.cache.dir,
				CACHE_LOCK_FILE, strerror(-lk));
		storclient_free(stor);
		config_free(&cfg);
		return 1;
	}
	/* no qsfs-fs of this cache is alive now: a dead mount it left may go */
	detach_dead_mount(mnt);
	if (check_mountpoint(mnt, nonempty, err, sizeof err)) {
		fprintf(stderr, "qsfs-fs: %s\n", err);
		close(lk);
		storclient_free(stor);
		config_free(&cfg);
		return 1;
	}
	/* one writer per volume: taken before anything is restored or written */
	struct wlease *lease = NULL;
	int lr = wlease_take(&cfg, takeover, &lease, err, sizeof err);
	if (lr) {
		fprintf(stderr, "qsfs-fs: %s\n", err);
		close(lk);
		storclient_free(stor);
		config_free(&cfg);
		return 1;
	}
	stor_look_at_lease(stor);	/* this node holds it now: uploads may go */
	/* a fresh node: an empty cache directory may be a volume to bring back */
	if (stor) {
		int rr = restore_if_empty(&cfg, stor, cfg.fs.restore_wait, err, sizeof err);
		if (rr) {
			fprintf(stderr, "qsfs-fs: %s\n", err);
			lease_stop(lease, &cfg, stor, false);
			close(lk);
			storclient_free(stor);
			config_free(&cfg);
			return 1;
		}
	}
	struct cache_opts co = cache_opts_from_config(&cfg);
	co.lock_fd = lk;
	if (cfg.cache.handoff == HANDOFF_STOR) {	/* straight to stor, no hook program */
		co.handoff = storclient_handoff;
		co.handoff_arg = stor;
	}
	struct cache *c;
	int r = cache_open(&co, &c);
	if (r) {
		char dw[700];
		if (r == -ENOSPC)	/* even without the reserve, and without a new segment */
			fprintf(stderr, "qsfs-fs: cannot open the segment log: %s; free space there "
				"and start again\n", disk_words(cfg.cache.dir, dw, sizeof dw));
		else
			fprintf(stderr, "qsfs-fs: cannot open the segment log in %s: %s\n",
				cfg.cache.dir, strerror(-r));
		lease_stop(lease, &cfg, stor, false);
		close(lk);
		storclient_free(stor);
		config_free(&cfg);
		return 1;
	}
	r = check_not_stale(lease, c, cfg.cache.dir, err, sizeof err);
	if (r) {
		fprintf(stderr, "qsfs-fs: %s\n", err);
		cache_close(c);
		/* a stale cache can give the volume nothing: what it holds that was
		 * never handed off must not keep the lease */
		lease_stop(lease, &cfg, stor, r == -ESTALE);
		close(lk);
		storclient_free(stor);
		config_free(&cfg);
		return 1;
	}
	struct qfs_opts fo = { .cache = c, .size = cfg.fs.size, .cache_dir = cfg.cache.dir };
	struct qfs *fs;
	r = qfs_open(&fo, &fs);
	if (r) {
		char dw[700];
		if (r == -ENOSPC)	/* finishing a truncate a crash interrupted */
			fprintf(stderr, "qsfs-fs: the filesystem in %s cannot be opened: %s; free "
				"space there and start again\n", cfg.cache.dir,
				disk_words(cfg.cache.dir, dw, sizeof dw));
		else
			fprintf(stderr, "qsfs-fs: the filesystem in %s cannot be opened: %s\n",
				cfg.cache.dir, strerror(-r));
		cache_close(c);
		lease_stop(lease, &cfg, stor, false);
		close(lk);
		storclient_free(stor);
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
	stop_cancels_fetches(stor);
	if (fuse_session_mount(se, mnt)) {
		fprintf(stderr, "qsfs-fs: cannot mount on %s\n", mnt);
		goto out_signals;
	}
	cache_set_mover(c, qfs_compact_key, fs);	/* the cleaner folds fragmented blocks */
	struct defrag_ctx dc = { .fs = fs };
	struct collector *gc = NULL;
	struct collector_opts go = {
		.target = cfg.cache.gc_target, .rate = cfg.cache.gc_rate,
		.interval_s = cfg.cache.gc_interval,
		/* with nothing handed off, only local floors count */
		.stor = stor,
		.defrag = defrag_step, .defrag_arg = &dc,
	};
	r = collector_start(c, &go, &gc);
	if (r)
		qlog_err("fs: garbage collection cannot start: %s; space is not given back "
			 "until the next mount", strerror(-r));
	struct fsctl *ctl = NULL;
	if (fsctl_start(cfg.fs.socket, mnt, c, gc, &ctl, err, sizeof err)) {
		fprintf(stderr, "qsfs-fs: %s (set fs.socket in %s)\n", err, conf);
		collector_stop(gc);
		fuse_session_unmount(se);
		goto out_signals;
	}
	struct heartbeat *hb = NULL;
	r = heartbeat_start(lease, c, fs, &hb);
	if (r)	/* the lease then expires: another host may take the volume */
		qlog_err("fs: the writer lease's heartbeat cannot start (%s): this node will be "
			 "fenced once the lease times out", strerror(-r));
	static const char *const handoff_names[] = { "stor", "hook", "none" };
	struct monitor_opts mo = {
		.c = c, .fs = fs, .stor = stor, .cache_dir = cfg.cache.dir, .mnt = mnt,
		.volume = cfg.volume, .handoff = handoff_names[cfg.cache.handoff], .hb = hb,
		.gc = gc, .max_age_ns = (uint64_t)cfg.cache.max_segment_age * 1000000000ull,
	};
	struct monitor *mon = NULL;
	r = monitor_start(&mo, &mon);
	if (!r && hb)
		heartbeat_notify(hb, monitor_kick, mon);
	if (!r)
		fsctl_set_status(ctl, monitor_status, mon);	/* stopped before the monitor */
	if (r)
		qlog_err("fs: the monitor cannot start (%s): nothing is confirmed, so nothing is "
			 "evicted, and status is not written", strerror(-r));
	qlog_info("fs: %s mounted on %s (log in %s)", cfg.volume, mnt, cfg.cache.dir);
	struct fuse_loop_config lc = { .clone_fd = 0, .max_idle_threads = 16 };
	r = fuse_session_loop_mt(se, &lc);
	fuse_session_unmount(se);
	collector_cancel(gc);	/* a `qsfs-ctl gc` being served ends after its step */
	fsctl_stop(ctl);
	if (hb)
		heartbeat_notify(hb, NULL, NULL);
	monitor_stop(mon);
	heartbeat_stop(hb);	/* before lease_stop frees the lease */
	collector_stop(gc);	/* last: the monitor's status reads it */
	code = r < 0 ? 1 : 0;
out_signals:
	stop_cancels_nothing();
	fuse_remove_signal_handlers(se);
out_session:
	fuse_session_destroy(se);
out:
	fuse_opt_free_args(&args);
	/* clean stop: everything durable, the last segment handed off */
	qfs_close(fs);
	int e = cache_sync(c);
	int64_t sealed = e ? 0 : cache_seal(c);
	if (sealed < 0)
		e = (int)sealed;
	cache_quiesce(c);
	int e2 = cache_close(c);
	if (e || e2) {
		char dw[700];
		if (e == -ENOSPC)	/* what was written is synced: the next start replays it */
			qlog_err("fs: clean stop incomplete: %s, so the last segment could not be "
				 "sealed (it is replayed at the next start)",
				 disk_words(cfg.cache.dir, dw, sizeof dw));
		else
			qlog_err("fs: clean stop incomplete: %s", strerror(-(e ? e : e2)));
		code = 1;
	} else {
		qlog_info("fs: unmounted; log synced, last segment sealed and handed off");
	}
	lease_stop(lease, &cfg, stor, false);
	close(lk);	/* the cache's own duplicate went with cache_close */
	storclient_free(stor);
	config_free(&cfg);
	return code;
}
