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
 * ENOSPC while it is not; the mount stays up. It also seals the active
 * segment once it holds data older than cache.max_segment_age (the
 * recovery point of a host that dies).
 *
 * The control socket (fs/fsctl.h, fs.socket) answers PING, SEAL (used by
 * `qsfs-ctl drain`) and STATUS while mounted.
 *
 * Clean stop (SIGTERM, SIGINT, fusermount3 -u): the session ends, then the
 * log is synced, the active segment sealed even if partly filled, queued
 * hooks run, the checkpoint written; exit 0.
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
#include <stdio.h>
#include <stdlib.h>
#include <spawn.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "collector.h"
#include "fsctl.h"
#include "fuse_ops.h"
#include "meta.h"
#include "qfs.h"
#include "../common/config.h"
#include "../common/ctlsock.h"
#include "restore.h"
#include "wlease.h"
#include "../common/fsutil.h"
#include "../common/qlog.h"

#define CONFIRM_PERIOD_S 2
#define FS_STATUS_FILE "fs-status.json"
#define FS_MIN_SEGMENT (128u * 1024)	/* a 64 KiB block record must fit */

static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool stop;
} confirmer = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false };

struct confirm_ctx {
	struct cache *c;
	struct qfs *fs;
	const char *sock;
	const char *cache_dir;
	const char *mnt;
	const char *volume;
	uint64_t max_age_ns;	/* cache.max_segment_age, 0 = off */
	struct wlease *lease;	/* the volume's writer lease */
	uint64_t lease_next_ns;	/* next renewal */
	bool fenced;		/* another host took the volume */
	char lease_problem[1024];	/* why the last renewal failed, or "" */
	bool stor_up;
	enum qfs_full full;
	char *last_status;	/* what fs-status.json holds, without "updated" */
	struct collector *gc;	/* NULL when it could not start */
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
	char *pong = NULL;
	x->stor_up = ctlsock_request(x->sock, "STATUS\n", &pong) == 0;
	free(pong);
	for (size_t i = 0; i < p.n && x->stor_up; i++) {
		char req[64], *reply = NULL;
		snprintf(req, sizeof req, "CONFIRMED s%llu\n", (unsigned long long)p.ids[i]);
		if (ctlsock_request(x->sock, req, &reply)) {
			x->stor_up = false;	/* try again next round */
			break;
		}
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

/* The filesystem's side of `qsfs-ctl status`, in CACHE_DIR/fs-status.json
 * (stor may be down, so qsfs-ctl reads it from disk), and the ENOSPC
 * switch: no new data while the cache is over its limit with nothing
 * evictable. */
static void report(struct confirm_ctx *x)
{
	struct cache_stats st;
	cache_stats(x->c, &st);
	x->full = x->fenced ? QFS_FULL_FENCED : !st.over_limit ? QFS_FULL_NO :
		  x->stor_up ? QFS_FULL_WAIT : QFS_FULL_ENOSPC;
	qfs_set_full(x->fs, x->full);
	json_object *o = json_object_new_object(), *problems = json_object_new_array();
	char line[512];
	if (!x->stor_up) {
		snprintf(line, sizeof line, "qsfs-stor does not answer on %s: writes go on locally, "
			 "%llu hand-offs wait and are retried", x->sock,
			 (unsigned long long)st.hooks_pending);
		json_object_array_add(problems, json_object_new_string(line));
	} else if (st.hooks_pending) {
		snprintf(line, sizeof line, "%llu sealed segments or checkpoints wait to be handed "
			 "to qsfs-stor (the hook is retried)", (unsigned long long)st.hooks_pending);
		json_object_array_add(problems, json_object_new_string(line));
	}
	if (x->lease_problem[0])
		json_object_array_add(problems, json_object_new_string(x->lease_problem));
	if (st.local_repairs) {
		snprintf(line, sizeof line, "%llu segments failed their checks on local disk and were "
			 "fetched again from the backends (the bad copies are kept as "
			 "seg-*.qseg.corrupt in %s): check that disk",
			 (unsigned long long)st.local_repairs, x->cache_dir);
		json_object_array_add(problems, json_object_new_string(line));
	}
	if (st.over_limit) {
		snprintf(line, sizeof line, "the local cache holds %llu bytes, over its limit of %llu, "
			 "and nothing can be evicted until qsfs-stor confirms %llu segments: new "
			 "writes %s", (unsigned long long)st.local_bytes,
			 (unsigned long long)st.max_size, (unsigned long long)st.segments_unconfirmed,
			 x->stor_up ? "wait for the uploads" : "fail with ENOSPC");
		json_object_array_add(problems, json_object_new_string(line));
	}
	json_object_object_add(o, "volume", json_object_new_string(x->volume));
	json_object_object_add(o, "mountpoint", json_object_new_string(x->mnt));
	json_object_object_add(o, "pid", json_object_new_int64(getpid()));
	json_object_object_add(o, "state", json_object_new_string(
		x->fenced ? "fenced" : st.over_limit ? "full" : json_object_array_length(problems) ? "degraded" : "ok"));
	json_object_object_add(o, "problems", problems);
	json_object_object_add(o, "stor_reachable", json_object_new_boolean(x->stor_up));
	json_object_object_add(o, "keys", json_object_new_int64((int64_t)st.keys));
	json_object_object_add(o, "segments", json_object_new_int64((int64_t)st.segments));
	json_object_object_add(o, "segments_local", json_object_new_int64((int64_t)st.segments_local));
	json_object_object_add(o, "segments_unconfirmed",
			       json_object_new_int64((int64_t)st.segments_unconfirmed));
	json_object_object_add(o, "hooks_pending", json_object_new_int64((int64_t)st.hooks_pending));
	json_object_object_add(o, "hooks_failed", json_object_new_int64((int64_t)st.hooks_failed));
	json_object_object_add(o, "local_bytes", json_object_new_int64((int64_t)st.local_bytes));
	json_object_object_add(o, "local_repairs",
			       json_object_new_int64((int64_t)st.local_repairs));
	json_object_object_add(o, "checkpoint_bytes",
			       json_object_new_int64((int64_t)st.checkpoint_bytes));
	json_object_object_add(o, "max_size", json_object_new_int64((int64_t)st.max_size));
	json_object_object_add(o, "live_bytes", json_object_new_int64((int64_t)st.live_bytes));
	json_object_object_add(o, "garbage_bytes", json_object_new_int64((int64_t)st.garbage_bytes));
	json_object_object_add(o, "dead_segments", json_object_new_int64((int64_t)st.dead_segments));
	json_object_object_add(o, "dead_bytes", json_object_new_int64((int64_t)st.dead_bytes));
	json_object_object_add(o, "removed_segments",
			       json_object_new_int64((int64_t)st.removed_segments));
	json_object_object_add(o, "removes_pending",
			       json_object_new_int64((int64_t)st.removes_pending));
	if (x->gc) {
		struct collector_report gr;
		collector_last(x->gc, &gr);
		json_object *g = json_object_new_object();
		json_object_object_add(g, "state", json_object_new_string(gr.state));
		json_object_object_add(g, "passes", json_object_new_uint64(gr.passes));
		json_object_object_add(g, "waiting_segments",
				       json_object_new_uint64(gr.waiting_segments));
		json_object_object_add(g, "waiting_bytes", json_object_new_uint64(gr.waiting_bytes));
		json_object_object_add(g, "removed_bytes_since_start",
				       json_object_new_uint64(st.removed_bytes_since_open));
		json_object_object_add(o, "gc", g);
	}
	/* the file is written (two fsyncs) only when something in it changed;
	 * "updated" is when that was */
	const char *text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
							    JSON_C_TO_STRING_NOSLASHESCAPE);
	if (!x->last_status || strcmp(text, x->last_status)) {
		char *now = strdup(text);
		json_object_object_add(o, "updated", json_object_new_int64((int64_t)time(NULL)));
		text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
							 JSON_C_TO_STRING_NOSLASHESCAPE);
		int dfd = open(x->cache_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		int e = dfd < 0 ? -errno : fs_write_atomic(dfd, FS_STATUS_FILE, text, strlen(text),
							     0644);
		if (dfd >= 0)
			close(dfd);
		if (!e && now) {	/* else written again next time */
			free(x->last_status);
			x->last_status = now;
		} else {
			free(now);
		}
	}
	json_object_put(o);
}

/* Heartbeat the writer lease; stop writing for good if another host has
 * taken it. */
static void renew_lease(struct confirm_ctx *x)
{
	char err[900];
	int r = wlease_renew(x->lease, err, sizeof err);
	x->lease_next_ns = fs_now_ns() + (uint64_t)wlease_period(x->lease) * 1000000000ull;
	if (r == -ESTALE) {
		cache_fence(x->c);
		x->fenced = true;
		x->full = QFS_FULL_FENCED;	/* writers waiting for room are told now */
		qfs_set_full(x->fs, x->full);
		snprintf(x->lease_problem, sizeof x->lease_problem, "%.900s: this node stopped writing "
			 "(writes fail with EROFS); unmount it", err);
		qlog_err("fs: %s", x->lease_problem);
	} else if (r) {
		if (!x->lease_problem[0])
			qlog_warn("fs: %s (retried)", err);
		snprintf(x->lease_problem, sizeof x->lease_problem, "%.900s (retried every %u s)", err,
			 wlease_period(x->lease));
	} else if (x->lease_problem[0]) {
		qlog_info("fs: the writer lease is renewed again");
		x->lease_problem[0] = 0;
	}
}

static void *confirm_main(void *arg)
{
	struct confirm_ctx *x = arg;
	pthread_mutex_lock(&confirmer.mu);
	while (!confirmer.stop) {
		pthread_mutex_unlock(&confirmer.mu);
		if (x->lease && !x->fenced && fs_now_ns() >= x->lease_next_ns)
			renew_lease(x);
		if (x->max_age_ns) {	/* the recovery point */
			int64_t id = cache_seal_older(x->c, x->max_age_ns);
			if (id > 0)
				qlog_debug("fs: sealed segment %lld: it held data older than "
					   "cache.max_segment_age", (long long)id);
			else if (id < 0)
				qlog_warn("fs: sealing an aged active segment: %s",
					  strerror((int)-id));
		}
		confirm_round(x);
		report(x);
		pthread_mutex_lock(&confirmer.mu);
		/* while writers wait for room, look again soon */
		struct timespec ts = fs_abstime(x->full == QFS_FULL_WAIT ? 200 * 1000 * 1000ull
						: CONFIRM_PERIOD_S * 1000000000ull);
		if (!confirmer.stop)
			pthread_cond_timedwait(&confirmer.cv, &confirmer.mu, &ts);
	}
	pthread_mutex_unlock(&confirmer.mu);
	return NULL;
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
 * is not running: it looks when it starts). */
static void stor_look_at_lease(const char *stor_sock)
{
	char *pong = NULL;
	ctlsock_request(stor_sock, "LEASE\n", &pong);
	free(pong);
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
static void lease_stop(struct wlease *lease, const struct qsfs_config *cfg, bool release)
{
	uint64_t left = 0, first;
	if (!release && cfg->cache.hook && cache_unhanded(cfg->cache.dir, &left, &first) == 0 &&
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
	stor_look_at_lease(cfg->stor.socket);
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
		config_free(&cfg);
		return 1;
	}
	/* no qsfs-fs of this cache is alive now: a dead mount it left may go */
	detach_dead_mount(mnt);
	if (check_mountpoint(mnt, nonempty, err, sizeof err)) {
		fprintf(stderr, "qsfs-fs: %s\n", err);
		close(lk);
		config_free(&cfg);
		return 1;
	}
	/* one writer per volume: taken before anything is restored or written */
	struct wlease *lease = NULL;
	int lr = wlease_take(&cfg, takeover, &lease, err, sizeof err);
	if (lr) {
		fprintf(stderr, "qsfs-fs: %s\n", err);
		close(lk);
		config_free(&cfg);
		return 1;
	}
	stor_look_at_lease(cfg.stor.socket);	/* this node holds it now: uploads may go */
	/* a fresh node: an empty cache directory may be a volume to bring back */
	if (cfg.cache.hook && cfg.stor.socket) {
		int rr = restore_if_empty(&cfg, cfg.fs.restore_wait, err, sizeof err);
		if (rr) {
			fprintf(stderr, "qsfs-fs: %s\n", err);
			lease_stop(lease, &cfg, false);
			close(lk);
			config_free(&cfg);
			return 1;
		}
	}
	struct cache_opts co = cache_opts_from_config(&cfg);
	co.lock_fd = lk;
	struct cache *c;
	int r = cache_open(&co, &c);
	if (r) {
		fprintf(stderr, "qsfs-fs: cannot open the segment log in %s: %s\n", cfg.cache.dir,
			strerror(-r));
		lease_stop(lease, &cfg, false);
		close(lk);
		config_free(&cfg);
		return 1;
	}
	r = check_not_stale(lease, c, cfg.cache.dir, err, sizeof err);
	if (r) {
		fprintf(stderr, "qsfs-fs: %s\n", err);
		cache_close(c);
		/* a stale cache can give the volume nothing: what it holds that was
		 * never handed off must not keep the lease */
		lease_stop(lease, &cfg, r == -ESTALE);
		close(lk);
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
		lease_stop(lease, &cfg, false);
		close(lk);
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
	cache_set_mover(c, qfs_compact_key, fs);	/* the cleaner folds fragmented blocks */
	struct defrag_ctx dc = { .fs = fs };
	struct collector *gc = NULL;
	struct collector_opts go = {
		.target = cfg.cache.gc_target, .rate = cfg.cache.gc_rate,
		.interval_s = cfg.cache.gc_interval,
		/* without a hook nothing is uploaded: only local floors count */
		.stor_sock = cfg.cache.hook ? cfg.stor.socket : NULL,
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
	struct confirm_ctx cx = {
		.c = c, .fs = fs, .sock = cfg.stor.socket, .cache_dir = cfg.cache.dir, .mnt = mnt,
		.volume = cfg.volume, .lease = lease, .gc = gc,
		.max_age_ns = (uint64_t)cfg.cache.max_segment_age * 1000000000ull,
		.lease_next_ns = fs_now_ns() + (uint64_t)wlease_period(lease) * 1000000000ull,
	};
	pthread_t ct;
	bool confirming = pthread_create(&ct, NULL, confirm_main, &cx) == 0;
	qlog_info("fs: %s mounted on %s (log in %s)", cfg.volume, mnt, cfg.cache.dir);
	struct fuse_loop_config lc = { .clone_fd = 0, .max_idle_threads = 16 };
	r = fuse_session_loop_mt(se, &lc);
	fuse_session_unmount(se);
	collector_cancel(gc);	/* a `qsfs-ctl gc` being served ends after its step */
	fsctl_stop(ctl);
	if (confirming) {
		pthread_mutex_lock(&confirmer.mu);
		confirmer.stop = true;
		pthread_cond_broadcast(&confirmer.cv);
		pthread_mutex_unlock(&confirmer.mu);
		pthread_join(ct, NULL);
	}
	collector_stop(gc);	/* last: the monitor's status reads it */
	free(cx.last_status);
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
	lease_stop(lease, &cfg, false);
	close(lk);	/* the cache's own duplicate went with cache_close */
	config_free(&cfg);
	return code;
}
