/* stor/qsfs-ctl.c - talk to qsfs-stor, and create volumes.
 *
 *   qsfs-ctl [-c CONFIG] format [--force]
 *   qsfs-ctl [-c CONFIG] store NAME PATH       (NAME: s<segment id> | c<checkpoint id>)
 *   qsfs-ctl [-c CONFIG] retrieve NAME PATH
 *   qsfs-ctl [-c CONFIG] delete NAME           queue the deletion of an object
 *   qsfs-ctl [-c CONFIG] lost s<id>            report a segment lost before upload
 *                                              from the backends (exit 0 once
 *                                              journaled)
 *   qsfs-ctl [-c CONFIG] gcfloor               the catalog's GC floor
 *   qsfs-ctl [-c CONFIG] gc --check [--fix] [--json]
 *                                              keys on the backends nothing
 *                                              refers to (exit 1: leaks);
 *                                              --fix removes them
 *   qsfs-ctl [-c CONFIG] confirmed NAME        exit 0 = yes, 1 = no
 *   qsfs-ctl [-c CONFIG] status [--json]
 *   qsfs-ctl [-c CONFIG] catalog               the volume catalog (JSON)
 *   qsfs-ctl [-c CONFIG] scrub | repair        check every shard of every
 *                                              stored object and repair what
 *                                              is wrong, with progress
 *   qsfs-ctl [-c CONFIG] drain [--timeout S]   seal the filesystem's active
 *                                              segment, exit 0 when nothing
 *                                              is pending
 *   qsfs-ctl [-c CONFIG] ready                 exit 0 when the filesystem is
 *                                              mounted and answering and
 *                                              qsfs-stor answers
 *   qsfs-ctl [-c CONFIG] warmup [PATH...]      fetch the evicted segments
 *                                              holding those files (every
 *                                              file under a directory), or
 *                                              the whole volume, with
 *                                              progress
 * Exit status: 0 ok, 1 failure or "no", 2 usage or configuration error,
 * 3 qsfs-stor not reachable.
 */
#include <errno.h>
#include <ftw.h>
#include <getopt.h>
#include <signal.h>
#include <json-c/json.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "head.h"
#include "spool.h"
#include "../common/config.h"
#include "../common/ctlsock.h"
#include "../common/storclient.h"
#include "../common/fsproto.h"
#include "../common/units.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: qsfs-ctl [-c CONFIG] [-h|--help] COMMAND\n"
		   "  format [--force]        create the volume on the backends\n"
		   "  store NAME PATH         queue an upload (NAME: s<id> or c<id>)\n"
		   "  retrieve NAME PATH      fetch an object into PATH\n"
		   "  delete NAME             queue the deletion of an object from the backends\n"
		   "  lost s<id>              report a segment lost before it was handed off (the\n"
		   "                          segment-lost hook event): the catalog records the\n"
		   "                          loss; exit 10 when stor has it stored after all\n"
		   "  gcfloor                 the segment id up to which dead segments may be\n"
		   "                          deleted (the older full checkpoint's coverage)\n"
		   "  confirmed NAME          exit 0 if NAME is safely remote\n"
		   "  status [--json]         queue, backends, errors\n"
		   "  catalog                 what the backends hold (JSON)\n"
		   "  scrub                   check every shard of every object, repair what is bad\n"
		   "  repair                  the same pass: restore full redundancy\n"
		   "  drain [--timeout S]     seal what is written, wait until it is uploaded\n"
		   "  ready                   exit 0 when the mount and qsfs-stor answer\n"
		   "  warmup [PATH...]        fetch the segments of those files (or all) ahead\n"
		   "  gc [--timeout S]        collect garbage now: clean, remove dead segments here\n"
		   "                          and on the backends (waits up to S s, default 60)\n"
		   "  gc --check [--fix] [--json]\n"
		   "                          list the keys on the backends that nothing refers to\n"
		   "                          (exit 1 when there are); --fix removes them\n"
		   "CONFIG defaults to $QSFS_CONFIG, else /etc/qsfs/qsfs.yaml.\n");
}

/* One request to qsfs-stor, one reply line (malloc'd; an "ERR ..." refusal
 * is a reply too). Returns 0, 3 when the daemon cannot be reached (said on
 * stderr), 1 when it answered nonsense. timeout_ms 0: the client's. */
static int request(struct storclient *cl, const struct stor_req *rq, unsigned timeout_ms,
		   char **reply)
{
	int r = storclient_call(cl, rq, timeout_ms, reply);
	if (r == 0 || r == -EREMOTEIO)
		return 0;
	char why[600];
	fprintf(stderr, "qsfs-ctl: %s\n", storclient_strerror(cl, r, why, sizeof why));
	return r == -EPROTO ? 1 : 3;
}

/* A request without arguments. */
static int request0(struct storclient *cl, enum stor_op op, char **reply)
{
	struct stor_req rq = { .op = op };
	return request(cl, &rq, 0, reply);
}

static int cmd_format(const struct qsfs_config *cfg, bool force)
{
	struct backend *b[CONFIG_MAX_BACKENDS];
	for (size_t i = 0; i < cfg->stor.nbackends; i++)
		if (backend_open(&cfg->stor.backends[i], 5000, &b[i]))
			return 1;
	struct volume v;
	char err[1024];
	size_t placed = 0;
	char missing[2048];
	int r = head_format(cfg, b, cfg->stor.nbackends, force, &v, &placed, missing,
			    sizeof missing, err, sizeof err);
	if (r) {
		fprintf(stderr, "qsfs-ctl: format: %s\n", err);
	} else {
		printf("created volume %s (id %s, k=%u m=%u) on %zu of %zu backends\n", cfg->volume,
		       v.idhex, v.k, v.m, placed, cfg->stor.nbackends);
		if (placed < cfg->stor.nbackends)
			fprintf(stderr, "qsfs-ctl: format: warning: the volume's head is missing on "
				"%s. The volume works while a majority of backends holds it; "
				"qsfs-stor copies it there after its next check pass "
				"(stor.check_interval) once they answer\n", missing);
		volume_free(&v);
	}
	for (size_t i = 0; i < cfg->stor.nbackends; i++)
		backend_close(b[i]);
	return r ? 1 : 0;
}

/* One request to qsfs-fs's control socket (its reply in *reply). 0, or
 * -errno when qsfs-fs does not answer within CTLSOCK_TIMEOUT_S. */
static int fs_request(const struct qsfs_config *cfg, enum fs_op op, char **reply)
{
	char req[32];
	fsproto_format(op, 0, req, sizeof req);
	return ctlsock_request(cfg->fs.socket, req, CTLSOCK_TIMEOUT_S, reply);
}

/* The filesystem's status: asked of qsfs-fs now when it answers on its
 * socket (current to the moment), else its status file (written every few
 * seconds), if a live qsfs-fs wrote it; else NULL. */
static json_object *fs_status(const struct qsfs_config *cfg)
{
	const char *cache_dir = cfg->cache.dir;
	char *reply = NULL;
	if (fs_request(cfg, FS_STATUS, &reply) == 0) {
		json_object *live = json_tokener_parse(reply);
		free(reply);
		json_object *v;
		if (live && json_object_object_get_ex(live, "state", &v))
			return live;
		json_object_put(live);	/* an older qsfs-fs: counters only */
	} else {
		free(reply);
	}
	char path[4200];
	snprintf(path, sizeof path, "%s/fs-status.json", cache_dir);
	json_object *f = json_object_from_file(path), *v;
	if (!f)
		return NULL;
	pid_t pid = json_object_object_get_ex(f, "pid", &v) ? (pid_t)json_object_get_int64(v) : 0;
	if (pid <= 0 || (kill(pid, 0) < 0 && errno == ESRCH)) {
		json_object_put(f);	/* left by a qsfs-fs that is gone */
		return NULL;
	}
	return f;
}

/* How bad a state word is: the top "state" of `status` is the worse of
 * stor's and the filesystem's, so it never says ok while either is not. */
static int state_rank(const char *s)
{
	static const char *const order[] = { "ok", "degraded", "full", "fenced", "down",
					      "unreachable" };
	for (int i = 0; i < (int)(sizeof order / sizeof *order); i++)
		if (!strcmp(s, order[i]))
			return i;
	return 1;	/* a word this qsfs-ctl does not know: not ok */
}

/* o's "state" becomes the worse of its own (kept as "stor_state") and the
 * filesystem's (fs may be NULL: not mounted, which is not a problem). */
static void combine_state(json_object *o, json_object *fs)
{
	json_object *v;
	const char *st = json_object_object_get_ex(o, "state", &v) ? json_object_get_string(v)
								   : "ok";
	const char *fst = fs && json_object_object_get_ex(fs, "state", &v) ?
			  json_object_get_string(v) : "ok";
	char keep[32], top[32];
	snprintf(keep, sizeof keep, "%s", st);
	snprintf(top, sizeof top, "%s", state_rank(fst) > state_rank(st) ? fst : st);
	json_object_object_add(o, "stor_state", json_object_new_string(keep));
	json_object_object_add(o, "state", json_object_new_string(top));
}

static void print_fs(json_object *f)
{
	json_object *v;
	if (!f) {
		printf("filesystem:      not mounted (no running qsfs-fs for this cache)\n");
		return;
	}
#define FS_(k) (json_object_object_get_ex(f, k, &v) ? json_object_get_string(v) : "?")
#define FI(k) (json_object_object_get_ex(f, k, &v) ? (long long)json_object_get_int64(v) : 0)
	printf("filesystem:      %s on %s, %s\n", FS_("volume"), FS_("mountpoint"), FS_("state"));
	json_object *ps;
	if (json_object_object_get_ex(f, "problems", &ps))
		for (size_t i = 0; i < json_object_array_length(ps); i++)
			printf("  - %s\n", json_object_get_string(json_object_array_get_idx(ps, i)));
	char lb[32], gb[32], db[32];
	format_size((uint64_t)FI("local_bytes"), lb, sizeof lb);
	if (FI("max_size"))
		snprintf(gb, sizeof gb, "of a %s limit",
			 format_size((uint64_t)FI("max_size"), db, sizeof db));
	else
		snprintf(gb, sizeof gb, "no size limit");
	char cb[32];
	format_size((uint64_t)FI("checkpoint_bytes"), cb, sizeof cb);
	printf("  local cache:   %s (%s; %s of it checkpoints%s); %lld of %lld segments local, "
	       "%lld not yet confirmed remote, %lld hand-offs pending\n", lb, gb, cb,
	       FI("max_size") ? ", which the limit does not count" : "", FI("segments_local"),
	       FI("segments"), FI("segments_unconfirmed"), FI("hooks_pending"));
	json_object *dk, *dv;
	if (json_object_object_get_ex(f, "disk", &dk) &&
	    json_object_object_get_ex(dk, "total_bytes", &dv)) {
#define DI(k) (json_object_object_get_ex(dk, k, &dv) ? (uint64_t)json_object_get_int64(dv) : 0)
#define DB(k) (json_object_object_get_ex(dk, k, &dv) && json_object_get_boolean(dv))
		char fb2[32], tb2[32], rb2[32], reserve[96];
		format_size(DI("reserve_bytes"), rb2, sizeof rb2);
		if (!DI("reserve_bytes"))
			snprintf(reserve, sizeof reserve, "no reserve");
		else
			snprintf(reserve, sizeof reserve, "reserve of %s %s", rb2,
				 DB("reserve_held") ? "held" : "USED UP");
		printf("  cache disk:    %s free of %s (%s)%s\n",
		       format_size(DI("free_bytes"), fb2, sizeof fb2),
		       format_size(DI("total_bytes"), tb2, sizeof tb2), reserve,
		       DB("low") ? ", FULL: new data is refused" : "");
#undef DI
#undef DB
	}
	printf("  log space:     %s live, %s garbage (overwritten or deleted records), of which "
	       "%s in %lld dead segments (nothing live); %lld segments removed so far\n",
	       format_size((uint64_t)FI("live_bytes"), lb, sizeof lb),
	       format_size((uint64_t)FI("garbage_bytes"), gb, sizeof gb),
	       format_size((uint64_t)FI("dead_bytes"), db, sizeof db), FI("dead_segments"),
	       FI("removed_segments"));
	json_object *gc;
	if (json_object_object_get_ex(f, "gc", &gc)) {
		json_object *st;
		printf("  collector:     %s%s\n", json_object_object_get_ex(gc, "state", &st) ?
		       json_object_get_string(st) : "?", FI("removes_pending") ?
		       "; deletions of removed segments wait to be handed to qsfs-stor" : "");
	}
#undef FS_
#undef FI
}

/* Redundancy as of the last complete scrub or check pass, and the pass
 * running now, in words. */
static void print_redundancy(json_object *o)
{
	json_object *rd, *sc, *v;
	if (json_object_object_get_ex(o, "redundancy", &rd)) {
#define R(k) (json_object_object_get_ex(rd, k, &v) ? (long long)json_object_get_int64(v) : 0)
		long long as_of = R("as_of");
		if (!as_of) {
			printf("redundancy:      not known yet (no scrub or check pass has finished "
			       "since qsfs-stor started)\n");
		} else {
			char when[64];
			time_t t = (time_t)as_of;
			strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", localtime(&t));
			printf("redundancy:      %lld objects whole, %lld degraded, %lld unreadable "
			       "(last complete pass %s)\n", R("full"), R("degraded"), R("unreadable"),
			       when);
		}
#undef R
	}
	if (json_object_object_get_ex(o, "scrub", &sc) &&
	    json_object_object_get_ex(sc, "running", &v) && json_object_get_boolean(v)) {
		json_object *m, *c, *t;
		printf("  a %s pass is running: %lld of %lld objects\n",
		       json_object_object_get_ex(sc, "mode", &m) ? json_object_get_string(m) : "?",
		       json_object_object_get_ex(sc, "checked", &c) ? (long long)json_object_get_int64(c) : 0,
		       json_object_object_get_ex(sc, "objects", &t) ? (long long)json_object_get_int64(t) : 0);
	}
}

static void print_status(json_object *o, bool stor_down)
{
	json_object *v, *fsst = NULL;
	json_object_object_get_ex(o, "fs", &fsst);
#define S(k) (json_object_object_get_ex(o, k, &v) ? json_object_get_string(v) : "?")
#define I(k) (json_object_object_get_ex(o, k, &v) ? json_object_get_int64(v) : 0)
	json_object *ps;
	if (stor_down) {
		printf("state:           down\n");
		if (json_object_object_get_ex(o, "problems", &ps))
			for (size_t i = 0; i < json_object_array_length(ps); i++)
				printf("  - %s\n", json_object_get_string(json_object_array_get_idx(ps, i)));
		print_fs(fsst);
		return;
	}
	printf("volume:          %s (%s)\n", S("volume"), S("volume_id"));
	printf("state:           %s\n", S("state"));
	if (json_object_object_get_ex(o, "problems", &ps))
		for (size_t i = 0; i < json_object_array_length(ps); i++)
			printf("  - %s\n", json_object_get_string(json_object_array_get_idx(ps, i)));
	print_fs(fsst);
	char pb[32];
	printf("pending uploads: %lld jobs, %s, oldest %lld s, %lld in flight%s\n",
	       (long long)I("pending_jobs"), format_size((uint64_t)I("pending_bytes"), pb, sizeof pb),
	       (long long)I("oldest_pending_s"), (long long)I("in_flight"),
	       I("draining") ? " (draining for shutdown)" : "");
	printf("writer lease:    %s%s\n", S("lease"),
	       json_object_object_get_ex(o, "fenced", &v) && json_object_get_boolean(v) ?
	       " (fenced: another host holds the volume; uploads stopped)" : "");
	print_redundancy(o);
	printf("stored:          %lld objects since start, %lld failed attempts\n",
	       (long long)I("stored"), (long long)I("failures"));
	if (*S("last_error"))
		printf("last error:      %s\n", S("last_error"));
	if (I("deletes_pending")) {
		bool failing = json_object_object_get_ex(o, "deletes_failing", &v) &&
			       json_object_get_boolean(v);
		printf("deletions pending: %lld%s%s\n", (long long)I("deletes_pending"),
		       failing ? "; failing and retried: " : "", failing ? S("delete_last_error") : "");
	}
	printf("degraded:        %lld objects\n", (long long)I("degraded_objects"));
	json_object *dg;
	if (json_object_object_get_ex(o, "degraded", &dg)) {
		for (size_t i = 0; i < json_object_array_length(dg); i++) {
			json_object *d = json_object_array_get_idx(dg, i), *x;
			printf("  %-20s %s\n",
			       json_object_object_get_ex(d, "object", &x) ? json_object_get_string(x) : "?",
			       json_object_object_get_ex(d, "why", &x) ? json_object_get_string(x) : "");
		}
	}
	json_object *bs;
	if (json_object_object_get_ex(o, "backends", &bs)) {
		printf("backends:\n");
		for (size_t i = 0; i < json_object_array_length(bs); i++) {
			json_object *b = json_object_array_get_idx(bs, i), *x;
			const char *name = json_object_object_get_ex(b, "name", &x) ? json_object_get_string(x) : "?";
			const char *st = json_object_object_get_ex(b, "state", &x) ? json_object_get_string(x) : "?";
			double lat = json_object_object_get_ex(b, "latency_ms", &x) ? json_object_get_double(x) : 0;
			const char *e = json_object_object_get_ex(b, "last_error", &x) ? json_object_get_string(x) : "";
			printf("  %-5s %-45s %8.1f ms%s%s\n", st, name, lat, *e ? "  last error: " : "", e);
			char sz[32], when[64];
			long long asof = I("remote_bytes_as_of");
			if (!asof)
				snprintf(when, sizeof when, "not measured yet (qsfs-ctl gc --check "
					 "measures it)");
			else
				snprintf(when, sizeof when, "as of %lld minutes ago",
					 ((long long)time(NULL) - asof) / 60);
			if (json_object_object_get_ex(b, "bytes", &x) && x)
				printf("        stored: %s, %s\n",
				       format_size((uint64_t)json_object_get_int64(x), sz, sizeof sz), when);
			else
				printf("        stored: %s\n", asof ? "not listed by the last check" : when);
			json_object *sp;	/* what the backend says it holds (0-db: NSINFO) */
			if (json_object_object_get_ex(b, "space", &sp) && sp) {
				json_object *u = NULL, *l = NULL;
				json_object_object_get_ex(sp, "used_bytes", &u);
				json_object_object_get_ex(sp, "limit_bytes", &l);
				uint64_t used = (uint64_t)json_object_get_int64(u);
				uint64_t limit = (uint64_t)json_object_get_int64(l);
				char lb[32];
				format_size(used, sz, sizeof sz);
				if (limit)
					printf("        space:  %s of its %s limit used (%.0f%%)\n", sz,
					       format_size(limit, lb, sizeof lb),
					       (double)used * 100.0 / (double)limit);
				else
					printf("        space:  %s used, no limit set\n", sz);
			}
		}
	}
#undef S
#undef I
}

/* Member key of JSON object o (may be NULL) as a number, or dflt. */
static long long jnum(json_object *o, const char *key, long long dflt)
{
	json_object *v;
	return o && json_object_object_get_ex(o, key, &v) ? (long long)json_object_get_int64(v)
							   : dflt;
}

/* One number from a JSON reply line, or -1. */
static long long reply_num(const char *reply, const char *key)
{
	json_object *o = json_tokener_parse(reply);
	long long n = jnum(o, key, -1);
	json_object_put(o);
	return n;
}

/* Seal what the mounted filesystem holds, then wait until every hand-off
 * is done and stor's queue is empty. */
static int cmd_drain(const struct qsfs_config *cfg, struct storclient *cl, double timeout)
{
	bool tty = isatty(1);
	struct timespec t0, t;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	char *reply = NULL;
	bool fs_up = fs_request(cfg, FS_SEAL, &reply) == 0;
	if (fs_up) {
		long long id = reply_num(reply, "sealed");
		if (id < 0) {
			fprintf(stderr, "qsfs-ctl: drain: qsfs-fs cannot seal: %s\n",
				strncmp(reply, "ERR ", 4) ? reply : reply + 4);
			free(reply);
			return 1;
		}
		if (id > 0)
			printf("sealed the active segment (s%lld)\n", id);
	} else {
		printf("qsfs-fs is not running (no answer on %s): nothing to seal\n",
		       cfg->fs.socket);
	}
	free(reply);
	bool lease_asked = false, left_told = false;
	for (;;) {
		long long hooks = 0;
		if (fs_up) {
			reply = NULL;
			if (fs_request(cfg, FS_STATUS, &reply) == 0)
				hooks = reply_num(reply, "hooks_pending");
			else
				fs_up = false;	/* it stopped: its clean stop ran the hooks */
			free(reply);
		}
		int r = request0(cl, STOR_STATUS, &reply);
		if (r)
			return r;
		json_object *o = json_tokener_parse(reply), *v;
		long long jobs = jnum(o, "pending_jobs", -1), bytes = jnum(o, "pending_bytes", 0);
		if (jnum(o, "lost_objects", 0) > 0) {	/* never "nothing pending" then */
			fprintf(stderr, "%sqsfs-ctl: drain: %lld acknowledged objects were lost before "
				"they reached the backends (qsfs-ctl status says which)\n",
				tty ? "\n" : "", jnum(o, "lost_objects", 0));
			json_object_put(o);
			free(reply);
			return 1;
		}
		if (!fs_up) {	/* what a stopped qsfs-fs could not hand off */
			hooks = jnum(o, "handoffs_left", 0);
			if (hooks > 0 && !left_told)
				fprintf(stderr, "qsfs-ctl: drain: qsfs-fs stopped with %lld segments "
					"not handed off; waiting for qsfs-wait-hooks or the next "
					"qsfs-fs to hand them off\n", hooks);
			left_told |= hooks > 0;
		}
		/* after qsfs-fs's clean stop, stor releases the writer lease once
		 * the queue is empty: a drain ends when another host may start
		 * (the lease may still say "mounted" while qsfs-fs, off the mount
		 * already, seals, hands off and clears the flag) */
		bool stopping = !fs_up && o && json_object_object_get_ex(o, "lease", &v) &&
				(!strcmp(json_object_get_string(v), "stopping") ||
				 !strcmp(json_object_get_string(v), "mounted"));
		json_object_put(o);
		free(reply);
		if (jobs < 0 || hooks < 0) {
			fprintf(stderr, "qsfs-ctl: drain: bad status reply\n");
			return 1;
		}
		clock_gettime(CLOCK_MONOTONIC, &t);
		double el = (double)(t.tv_sec - t0.tv_sec) + (double)(t.tv_nsec - t0.tv_nsec) / 1e9;
		if (tty)
			printf("\rdraining: %lld hand-offs, %lld uploads, %.1f MiB pending, %.0f s   ",
			       hooks, jobs, (double)bytes / 1048576.0, el);
		fflush(stdout);
		if (jobs == 0 && hooks == 0 && stopping && el < 30) {
			if (!lease_asked)	/* normally sent by qsfs-fs itself */
				storclient_lease(cl);
			lease_asked = true;
		} else if (jobs == 0 && hooks == 0) {
			printf("%sdrained: nothing pending\n", tty ? "\n" : "");
			return 0;
		}
		if (timeout > 0 && el >= timeout) {
			printf("%s", tty ? "\n" : "");
			fprintf(stderr, "qsfs-ctl: drain: timed out after %.0f s with %lld hand-offs "
				"and %lld uploads pending\n", el, hooks, jobs);
			return 1;
		}
		usleep(200000);
	}
}

/* Start a scrub (or repair) pass in stor and follow it to its end, with
 * progress on a TTY. Exit 0 when every object ended up whole. */
static int cmd_scrub(struct storclient *cl, enum stor_op op, const char *what)
{
	char *reply = NULL;
	int r = request0(cl, op, &reply);
	if (r)
		return r;
	if (strncmp(reply, "OK", 2)) {
		fprintf(stderr, "qsfs-ctl: %s: %s\n", what, reply);
		free(reply);
		return 1;
	}
	free(reply);
	/* the pass was requested (or is running) when the reply came: it is
	 * over once stor says neither */
	bool tty = isatty(1);
	for (;;) {
		r = request0(cl, STOR_STATUS, &reply);
		if (r)
			return r;
		json_object *o = json_tokener_parse(reply), *x = NULL, *v;
		free(reply);
		if (!o || !json_object_object_get_ex(o, "scrub", &x)) {
			json_object_put(o);
			fprintf(stderr, "qsfs-ctl: %s: bad status reply\n", what);
			return 1;
		}
#define N(k) jnum(x, k, 0)
		bool running = json_object_object_get_ex(x, "running", &v) && json_object_get_boolean(v);
		bool requested = json_object_object_get_ex(x, "requested", &v) &&
				 json_object_get_boolean(v);
		if (tty && running)
			printf("\r%s: %lld/%lld objects, %.1f MiB read, %lld bad shards, %lld repaired   ",
			       what, N("checked"), N("objects"), (double)N("bytes") / 1048576.0,
			       N("bad_shards"), N("repaired"));
		fflush(stdout);
		if (!running && !requested) {
			long long failed = N("failed");
			printf("%s%s: %lld objects checked, %.1f MiB read, %lld bad shards found, %lld "
			       "objects repaired, %lld failed\n", tty ? "\n" : "", what, N("checked"),
			       (double)N("bytes") / 1048576.0, N("bad_shards"), N("repaired"), failed);
			const char *lp = json_object_object_get_ex(x, "last_problem", &v) ?
					 json_object_get_string(v) : "";
			if (failed && lp[0])
				printf("last problem: %s\n", lp);
			json_object_put(o);
			return failed ? 1 : 0;
		}
#undef N
		json_object_put(o);
		usleep(200000);
	}
}

/* --- warmup ------------------------------------------------------------------ */

/* Inode numbers of the regular files to warm up. nftw's callback takes no
 * argument, so the walk fills this; qsfs-ctl is single-threaded. */
static struct {
	char *buf;
	size_t len, cap, files;
	dev_t dev;
} W;

static int warm_add(ino_t ino)
{
	if (W.cap - W.len < 24) {
		size_t cap = W.cap ? W.cap * 2 : 65536;
		char *b = realloc(W.buf, cap);
		if (!b)
			return -ENOMEM;
		W.buf = b;
		W.cap = cap;
	}
	W.len += (size_t)snprintf(W.buf + W.len, W.cap - W.len, "%llu\n", (unsigned long long)ino);
	W.files++;
	return 0;
}

static int warm_visit(const char *path, const struct stat *st, int type, struct FTW *f)
{
	(void)path;
	(void)f;
	if (type == FTW_F && S_ISREG(st->st_mode) && st->st_dev == W.dev)
		return warm_add(st->st_ino) ? 1 : 0;
	return 0;
}

static int cmd_warmup(const struct qsfs_config *cfg, char **paths, int npaths)
{
	char *reply = NULL;
	int r = fs_request(cfg, FS_PING, &reply);
	if (r || strncmp(reply, "OK ", 3)) {
		fprintf(stderr, "qsfs-ctl: warmup: qsfs-fs is not running (cannot connect to %s: %s)\n",
			cfg->fs.socket, r ? strerror(-r) : reply);
		free(reply);
		return 3;
	}
	struct stat mst;
	if (stat(reply + 3, &mst) < 0) {
		fprintf(stderr, "qsfs-ctl: warmup: %s: %s\n", reply + 3, strerror(errno));
		free(reply);
		return 1;
	}
	W.dev = mst.st_dev;
	for (int i = 0; i < npaths; i++) {
		struct stat st;
		if (lstat(paths[i], &st) < 0) {
			fprintf(stderr, "qsfs-ctl: warmup: %s: %s\n", paths[i], strerror(errno));
			free(reply);
			return 2;
		}
		if (st.st_dev != W.dev) {
			fprintf(stderr, "qsfs-ctl: warmup: %s is not on the qsfs mount %s\n", paths[i],
				reply + 3);
			free(reply);
			return 2;
		}
		int e = S_ISDIR(st.st_mode) ? nftw(paths[i], warm_visit, 32, FTW_PHYS | FTW_MOUNT)
		      : S_ISREG(st.st_mode) ? warm_add(st.st_ino) : 0;
		if (e) {
			fprintf(stderr, "qsfs-ctl: warmup: walking %s: %s\n", paths[i],
				e < 0 && errno ? strerror(errno) : "out of memory");
			free(reply);
			return 1;
		}
	}
	free(reply);
	if (npaths && !W.files) {
		printf("warmup: no regular files there\n");
		return 0;
	}
	int s = ctlsock_connect(cfg->fs.socket);
	if (s < 0) {
		fprintf(stderr, "qsfs-ctl: warmup: cannot connect to %s: %s\n", cfg->fs.socket,
			strerror(-s));
		return 3;
	}
	FILE *in = fdopen(s, "r");
	char req[32];
	if (!in || fsproto_format(FS_WARMUP, 0, req, sizeof req) < 0 || dprintf(s, "%s", req) < 0 ||
	    (W.len && send(s, W.buf, W.len, MSG_NOSIGNAL) !=
						      (ssize_t)W.len) || shutdown(s, SHUT_WR) < 0) {
		fprintf(stderr, "qsfs-ctl: warmup: sending the request: %s\n", strerror(errno));
		if (in)
			fclose(in);
		else
			close(s);
		return 1;
	}
	free(W.buf);
	bool tty = isatty(1);
	char *line = NULL;
	size_t cap = 0;
	int ret = 1;
	while (getline(&line, &cap, in) > 0) {
		json_object *o = json_tokener_parse(line), *v;
		if (!o) {
			fprintf(stderr, "qsfs-ctl: warmup: %s", strncmp(line, "ERR ", 4) ? line : line + 4);
			break;
		}
		bool done = json_object_object_get_ex(o, "done", &v) && json_object_get_boolean(v);
		if (!done) {
			if (tty)
				printf("\rwarmup: %lld/%lld segments, %lld fetched, %lld failed   ",
				       jnum(o, "checked", 0), jnum(o, "segments", 0),
				       jnum(o, "fetched", 0), jnum(o, "failed", 0));
			fflush(stdout);
			json_object_put(o);
			continue;
		}
		long long failed = jnum(o, "failed", 0);
		printf("%swarmup: %s%lld segments were not local, %lld fetched, %lld failed\n",
		       tty && jnum(o, "segments", 0) ? "\n" : "",
		       npaths ? "" : "whole volume: ", jnum(o, "segments", 0), jnum(o, "fetched", 0),
		       failed);
		const char *err = json_object_object_get_ex(o, "error", &v) ? json_object_get_string(v)
									    : "";
		if (failed)
			printf("last error: %s (the filesystem's log says which segment)\n", err);
		ret = failed ? 1 : 0;
		json_object_put(o);
		break;
	}
	free(line);
	fclose(in);
	return ret;
}

/* qsfs-ctl gc: a thorough pass in qsfs-fs (GC request, progress on a
 * TTY), then wait until qsfs-stor has deleted what was removed. */
static int cmd_gc(const struct qsfs_config *cfg, struct storclient *cl, unsigned timeout)
{
	int s = ctlsock_connect(cfg->fs.socket);
	if (s < 0) {
		fprintf(stderr, "qsfs-ctl: gc: qsfs-fs is not running (cannot connect to %s: %s)\n",
			cfg->fs.socket, strerror(-s));
		return 3;
	}
	FILE *in = fdopen(s, "r");
	char req[32];
	if (!in || fsproto_format(FS_GC, timeout, req, sizeof req) < 0 || dprintf(s, "%s", req) < 0) {
		fprintf(stderr, "qsfs-ctl: gc: sending the request: %s\n", strerror(errno));
		if (in)
			fclose(in);
		else
			close(s);
		return 1;
	}
	bool tty = isatty(1);
	char *line = NULL;
	size_t cap = 0;
	int ret = 1;
	while (getline(&line, &cap, in) > 0) {
		json_object *o = json_tokener_parse(line), *v;
		if (!o) {
			fprintf(stderr, "qsfs-ctl: gc: %s", strncmp(line, "ERR ", 4) ? line : line + 4);
			break;
		}
		bool done = json_object_object_get_ex(o, "done", &v) && json_object_get_boolean(v);
		const char *state = json_object_object_get_ex(o, "state", &v) ?
				    json_object_get_string(v) : "";
		char mb[32], rb[32], wb[32];
		format_size((uint64_t)jnum(o, "moved_bytes", 0), mb, sizeof mb);
		format_size((uint64_t)jnum(o, "removed_bytes", 0), rb, sizeof rb);
		format_size((uint64_t)jnum(o, "waiting_bytes", 0), wb, sizeof wb);
		if (!done) {
			if (tty)
				printf("\r\033[Kgc: cleaned %lld segments (%s moved), removed %lld (%s): "
				       "%.80s", jnum(o, "cleaned_segments", 0), mb,
				       jnum(o, "removed_segments", 0), rb, state);
			fflush(stdout);
			json_object_put(o);
			continue;
		}
		const char *err = json_object_object_get_ex(o, "error", &v) ?
				  json_object_get_string(v) : "";
		char fb[32];
		format_size((uint64_t)jnum(o, "folded_bytes", 0), fb, sizeof fb);
		printf("%sgc: folded %lld fragmented blocks (%s), cleaned %lld segments (%s of live "
		       "data moved), removed %lld dead segments (%s); %lld dead segments (%s) still "
		       "wait\n", tty ? "\r\033[K" : "", jnum(o, "folded_blocks", 0), fb,
		       jnum(o, "cleaned_segments", 0), mb, jnum(o, "removed_segments", 0), rb,
		       jnum(o, "waiting_segments", 0), wb);
		printf("gc: %s\n", *err ? err : state);
		ret = *err ? 1 : 0;
		json_object_put(o);
		break;
	}
	free(line);
	fclose(in);
	if (ret)
		return ret;
	/* the deletions: handed to qsfs-stor by qsfs-fs, done by stor */
	for (unsigned i = 0; i < timeout * 5; i++) {
		char *reply = NULL;
		long long fs_left = 0, stor_left = 0;
		if (fs_request(cfg, FS_STATUS, &reply) == 0)
			fs_left = reply_num(reply, "removes_pending");
		free(reply);
		reply = NULL;
		if (cfg->cache.handoff != HANDOFF_NONE &&
		    storclient_json(cl, STOR_STATUS, false, 0, &reply) == 0)
			stor_left = reply_num(reply, "deletes_pending");
		free(reply);
		if (fs_left <= 0 && stor_left <= 0)
			return 0;
		if (tty)
			printf("\r\033[Kgc: %lld deletions to hand to qsfs-stor, %lld for it to do on "
			       "the backends", fs_left > 0 ? fs_left : 0, stor_left > 0 ? stor_left : 0);
		fflush(stdout);
		usleep(200000);
	}
	printf("%sgc: deletions on the backends are still pending after %u s (qsfs-ctl status "
	       "says why)\n", tty ? "\n" : "", timeout);
	return 1;
}

/* The mount answers: statfs from a child, so a hung mount gives "no"
 * after timeout_s instead of hanging the healthcheck. */
static bool mount_answers(const char *mnt, unsigned timeout_s)
{
	pid_t p = fork();
	if (p < 0)
		return false;
	if (p == 0) {
		struct statfs sf;
		_exit(statfs(mnt, &sf) == 0 && sf.f_type == 0x65735546 /* FUSE */ ? 0 : 1);
	}
	for (unsigned i = 0; i < timeout_s * 20; i++) {
		int st;
		pid_t w = waitpid(p, &st, WNOHANG);
		if (w == p)
			return WIFEXITED(st) && WEXITSTATUS(st) == 0;
		usleep(50000);
	}
	kill(p, SIGKILL);
	waitpid(p, NULL, 0);
	return false;
}

/* Exit 0 only when the filesystem is mounted and answering and stor is up:
 * the container's healthcheck. */
static int cmd_ready(const struct qsfs_config *cfg, struct storclient *cl)
{
	char *reply = NULL;
	int r = fs_request(cfg, FS_PING, &reply);
	if (r || strncmp(reply, "OK ", 3)) {
		printf("not ready: qsfs-fs does not answer on %s (%s)\n", cfg->fs.socket,
		       r ? strerror(-r) : reply);
		free(reply);
		return 1;
	}
	char mnt[4096];
	snprintf(mnt, sizeof mnt, "%s", reply + 3);
	free(reply);
	if (!mount_answers(mnt, 5)) {
		printf("not ready: the mount at %s does not answer\n", mnt);
		return 1;
	}
	r = storclient_ping(cl);
	if (r) {
		char why[600];
		printf("not ready: qsfs-stor does not answer (%s)\n",
		       storclient_strerror(cl, r, why, sizeof why));
		return 1;
	}
	printf("ready: %s mounted on %s\n", cfg->volume, mnt);
	return 0;
}

/* qsfs-ctl gc --check [--fix] [--json]: qsfs-stor's leak check (GCCHECK).
 * Exit 0: no leak (--fix: every leak found was removed), 1: leaks. */
static int cmd_gccheck(struct storclient *cl, bool fix, bool as_json)
{
	char *reply = NULL;
	struct stor_req rq = { .op = STOR_GCCHECK, .fix = fix };
	/* it lists every key on every backend: minutes on a big volume */
	int ret = request(cl, &rq, 3600 * 1000u, &reply);
	if (ret)
		return ret;
	json_object *o = json_tokener_parse(reply);
	if (!o) {
		fprintf(stderr, "qsfs-ctl: gc --check: %s\n",
			strncmp(reply, "ERR ", 4) ? reply : reply + 4);
		free(reply);
		return 1;
	}
	free(reply);
	long long found = jnum(o, "leaked_objects", 0), left = jnum(o, "left_objects", 0);
	ret = (fix ? left : found) ? 1 : 0;
	if (as_json) {
		printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
							      JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(o);
		return ret;
	}
	static const char *const classes[] = { "unreferenced", "stale", "orphan" };
	static const char *const words[] = { "objects the catalog does not list",
		"shards their metadata does not account for",
		"shards without metadata anywhere" };
	json_object *bs, *v, *lk;
	char sz[32];
	printf("backends (all keys of the volume):\n");
	if (json_object_object_get_ex(o, "backends", &bs)) {
		for (size_t i = 0; i < json_object_array_length(bs); i++) {
			json_object *b = json_object_array_get_idx(bs, i);
			const char *name = json_object_object_get_ex(b, "name", &v) ?
					   json_object_get_string(v) : "?";
			bool listed = json_object_object_get_ex(b, "listed", &v) &&
				      json_object_get_boolean(v);
			if (!listed) {
				printf("  %-45s not listed: %s\n", name,
				       json_object_object_get_ex(b, "error", &v) ?
				       json_object_get_string(v) : "");
				continue;
			}
			printf("  %-45s %10s in %lld keys", name,
			       format_size((uint64_t)jnum(b, "bytes", 0), sz, sizeof sz),
			       jnum(b, "keys", 0));
			if (json_object_object_get_ex(b, "leaks", &lk)) {
				for (int c = 0; c < 3; c++) {
					json_object *x;
					if (json_object_object_get_ex(lk, classes[c], &x) &&
					    jnum(x, "keys", 0))
						printf(", %s %lld keys (%s)", classes[c], jnum(x, "keys", 0),
						       format_size((uint64_t)jnum(x, "bytes", 0), sz,
								   sizeof sz));
				}
			}
			printf("\n");
		}
	}
	if (!found) {
		printf("no leak: every key of the volume is referenced");
	} else {
		printf("leaks: %lld objects, %s\n", found,
		       format_size((uint64_t)jnum(o, "leaked_bytes", 0), sz, sizeof sz));
		if (json_object_object_get_ex(o, "leaks", &lk)) {
			for (int c = 0; c < 3; c++) {
				json_object *x;
				if (json_object_object_get_ex(lk, classes[c], &x) && jnum(x, "objects", 0))
					printf("  %-13s %lld objects, %lld keys, %s: %s\n", classes[c],
					       jnum(x, "objects", 0), jnum(x, "keys", 0),
					       format_size((uint64_t)jnum(x, "bytes", 0), sz, sizeof sz),
					       words[c]);
			}
		}
		json_object *objs;
		if (json_object_object_get_ex(o, "objects", &objs)) {
			for (size_t i = 0; i < json_object_array_length(objs) && i < 50; i++) {
				json_object *x = json_object_array_get_idx(objs, i);
				const char *kept = json_object_object_get_ex(x, "kept", &v) ?
						   json_object_get_string(v) : "";
				bool removed = json_object_object_get_ex(x, "removed", &v) &&
					       json_object_get_boolean(v);
				printf("  %-10s %-13s %s%s%s%s\n",
				       json_object_object_get_ex(x, "object", &v) ? json_object_get_string(v) : "?",
				       json_object_object_get_ex(x, "class", &v) ? json_object_get_string(v) : "?",
				       json_object_object_get_ex(x, "why", &v) ? json_object_get_string(v) : "",
				       removed ? ": removed" : "", *kept ? ": kept: " : "", kept);
			}
		}
		if (fix)
			printf("removed %lld objects (%lld keys, %s); %lld left",
			       jnum(o, "removed_objects", 0), jnum(o, "removed_keys", 0),
			       format_size((uint64_t)jnum(o, "removed_bytes", 0), sz, sizeof sz), left);
		else
			printf("qsfs-ctl gc --check --fix removes them");
	}
	printf("%s\n", json_object_object_get_ex(o, "complete", &v) && !json_object_get_boolean(v) ?
	       " (not every backend could be listed)" : "");
	if (jnum(o, "in_flight", 0))
		printf("%lld objects with an upload or deletion under way were not looked at\n",
		       jnum(o, "in_flight", 0));
	if (jnum(o, "unknown_keys", 0))
		printf("%lld keys under the volume that qsfs does not write (left alone), e.g. %s\n",
		       jnum(o, "unknown_keys", 0), json_object_object_get_ex(o, "unknown_first", &v) ?
		       json_object_get_string(v) : "");
	json_object_put(o);
	return ret;
}

int main(int argc, char **argv)
{
	const char *conf = config_default_path();
	static const struct option lo[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int ch;
	while ((ch = getopt_long(argc, argv, "+c:h", lo, NULL)) != -1) {
		if (ch == 'c') {
			conf = optarg;
		} else {
			usage(ch == 'h' ? stdout : stderr);
			return ch == 'h' ? 0 : 2;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return 2;
	}
	const char *cmd = argv[optind];
	int nargs = argc - optind - 1;
	char **args = argv + optind + 1;
	struct qsfs_config cfg;
	char err[1024];
	if (config_load(conf, &cfg, err, sizeof err)) {
		fprintf(stderr, "qsfs-ctl: %s\n", err);
		return 2;
	}
	struct storclient *cl = storclient_new(cfg.stor.socket);
	if (!cl) {
		fprintf(stderr, "qsfs-ctl: out of memory\n");
		config_free(&cfg);
		return 1;
	}
	storclient_set_timeout(cl, 0, cfg.cache.hook_timeout * 1000u);
	char *reply = NULL;
	int ret = 0;
	uint64_t id;
	if (!strcmp(cmd, "format") && (nargs == 0 || (nargs == 1 && !strcmp(args[0], "--force")))) {
		ret = cmd_format(&cfg, nargs == 1);
	} else if ((!strcmp(cmd, "store") || !strcmp(cmd, "retrieve")) && nargs == 2) {
		if (object_name_parse(args[0], &id) || args[1][0] != '/') {
			fprintf(stderr, "qsfs-ctl: %s: NAME is s<id> or c<id>, PATH absolute\n", cmd);
			ret = 2;
		} else {
			struct stor_req rq = { .op = !strcmp(cmd, "store") ? STOR_STORE : STOR_RETRIEVE,
					       .path = args[1] };
			snprintf(rq.name, sizeof rq.name, "%s", args[0]);
			ret = request(cl, &rq, rq.op == STOR_RETRIEVE ? cfg.cache.hook_timeout * 1000u
				      : 0, &reply);
			if (!ret && strcmp(reply, "OK")) {
				fprintf(stderr, "qsfs-ctl: %s %s: %s\n", cmd, args[0],
					strncmp(reply, "ERR ", 4) ? reply : reply + 4);
				ret = 1;
			}
		}
	} else if (!strcmp(cmd, "delete") && nargs == 1) {
		if (object_name_parse(args[0], &id)) {
			fprintf(stderr, "qsfs-ctl: delete: NAME is s<id> or c<id>\n");
			ret = 2;
		} else {
			struct stor_req rq = { .op = STOR_DELETE };
			snprintf(rq.name, sizeof rq.name, "%s", args[0]);
			ret = request(cl, &rq, 0, &reply);
			if (!ret && strcmp(reply, "OK")) {
				fprintf(stderr, "qsfs-ctl: delete %s: %s\n", args[0],
					strncmp(reply, "ERR ", 4) ? reply : reply + 4);
				ret = 1;
			}
		}
	} else if (!strcmp(cmd, "lost") && nargs == 1) {
		if (object_name_parse(args[0], &id) || args[0][0] != 's') {
			fprintf(stderr, "qsfs-ctl: lost: NAME is s<id>\n");
			ret = 2;
		} else {
			struct stor_req rq = { .op = STOR_LOST };
			snprintf(rq.name, sizeof rq.name, "%s", args[0]);
			ret = request(cl, &rq, 0, &reply);
			if (!ret && !strcmp(reply, "OK STORED")) {
				printf("%s is stored: nothing was lost\n", args[0]);
				ret = STORPROTO_HOOK_STORED;
			} else if (!ret && strcmp(reply, "OK LOST")) {
				fprintf(stderr, "qsfs-ctl: lost %s: %s\n", args[0],
					strncmp(reply, "ERR ", 4) ? reply : reply + 4);
				ret = 1;
			} else if (!ret) {
				printf("%s recorded as lost before upload\n", args[0]);
			}
		}
	} else if (!strcmp(cmd, "gcfloor") && nargs == 0) {
		ret = request0(cl, STOR_GCFLOOR, &reply);
		if (!ret && strncmp(reply, "OK ", 3)) {
			fprintf(stderr, "qsfs-ctl: gcfloor: %s\n",
				strncmp(reply, "ERR ", 4) ? reply : reply + 4);
			ret = 1;
		} else if (!ret) {
			printf("%s\n", reply + 3);
		}
	} else if (!strcmp(cmd, "confirmed") && nargs == 1) {
		struct stor_req rq = { .op = STOR_CONFIRMED };
		if (!storproto_object_name(args[0], NULL, &id)) {
			fprintf(stderr, "qsfs-ctl: confirmed: NAME is s<id> or c<id>\n");
			ret = 2;
		} else {
			snprintf(rq.name, sizeof rq.name, "%s", args[0]);
			ret = request(cl, &rq, 0, &reply);
		}
		if (!ret) {
			printf("%s\n", !strcmp(reply, "YES") ? "yes" : !strcmp(reply, "NO") ? "no" : reply);
			ret = strcmp(reply, "YES") ? 1 : 0;
		}
	} else if (!strcmp(cmd, "status") && (nargs == 0 || (nargs == 1 && !strcmp(args[0], "--json")))) {
		json_object *fsst = fs_status(&cfg);
		int r = storclient_json(cl, STOR_STATUS, false, 0, &reply);
		json_object *o = r ? NULL : json_tokener_parse(reply);
		if (!r && !o) {
			fprintf(stderr, "qsfs-ctl: status: bad reply: %s\n", reply);
			ret = 1;
		} else {
			if (r) {	/* stor is down: still say what the filesystem knows */
				char line[600];
				storclient_strerror(cl, r, line, sizeof line);
				o = json_object_new_object();
				json_object_object_add(o, "state", json_object_new_string(
					r == -EACCES || r == -EPERM ? "unreachable" : "down"));
				json_object *ps = json_object_new_array();
				json_object_array_add(ps, json_object_new_string(line));
				json_object_object_add(o, "problems", ps);
				ret = 3;
			}
			combine_state(o, fsst);
			json_object_object_add(o, "fs", fsst ? fsst : NULL);
			fsst = NULL;
			if (nargs)
				printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
			else
				print_status(o, r != 0);
		}
		json_object_put(o);
		json_object_put(fsst);
	} else if (!strcmp(cmd, "drain") && (nargs == 0 || (nargs == 2 && !strcmp(args[0], "--timeout")))) {
		double to = nargs ? atof(args[1]) : 0;
		ret = cmd_drain(&cfg, cl, to);
	} else if (!strcmp(cmd, "scrub") && nargs == 0) {
		ret = cmd_scrub(cl, STOR_SCRUB, "scrub");
	} else if (!strcmp(cmd, "repair") && nargs == 0) {
		ret = cmd_scrub(cl, STOR_REPAIR, "repair");
	} else if (!strcmp(cmd, "catalog") && nargs == 0) {
		ret = request0(cl, STOR_CATALOG, &reply);
		json_object *o = ret ? NULL : json_tokener_parse(reply);
		if (!ret && !o) {
			fprintf(stderr, "qsfs-ctl: catalog: %s\n",
				strncmp(reply, "ERR ", 4) ? reply : reply + 4);
			ret = 1;
		} else if (o) {
			printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY));
		}
		json_object_put(o);
	} else if (!strcmp(cmd, "ready") && nargs == 0) {
		ret = cmd_ready(&cfg, cl);
	} else if (!strcmp(cmd, "gc") && nargs >= 1 && !strcmp(args[0], "--check")) {
		bool fix = false, as_json = false, bad = false;
		for (int i = 1; i < nargs; i++) {
			if (!strcmp(args[i], "--fix"))
				fix = true;
			else if (!strcmp(args[i], "--json"))
				as_json = true;
			else
				bad = true;
		}
		if (bad) {
			usage(stderr);
			ret = 2;
		} else {
			ret = cmd_gccheck(cl, fix, as_json);
		}
	} else if (!strcmp(cmd, "gc") && (nargs == 0 || (nargs == 2 && !strcmp(args[0], "--timeout")))) {
		int to = nargs ? atoi(args[1]) : 60;
		ret = cmd_gc(&cfg, cl, to > 0 ? (unsigned)to : 60);
	} else if (!strcmp(cmd, "warmup")) {
		ret = cmd_warmup(&cfg, args, nargs);
	} else {
		usage(stderr);
		ret = 2;
	}
	free(reply);
	storclient_free(cl);
	config_free(&cfg);
	return ret;
}
