/* stor/stord.c - qsfs-stor, the storage daemon.
 *
 *   qsfs-stor -c /etc/qsfs/qsfs.yaml
 *
 * Runs in the foreground, logs to stderr. Opens the volume (head record),
 * resumes every job left in the spool (the journal), and serves the control
 * socket (mode 0600), one request line per connection:
 *   STORE NAME PATH      durably queue an upload; "OK" once journaled
 *                        ("ERR" for a segment deleted or being deleted)
 *   DELETE NAME          durably queue the deletion of an object; "OK" once
 *                        journaled (NAME.del in the spool); "ERR NAME has an
 *                        upload queued; retry later" while a STORE of it is
 *                        queued, "ERR" for a checkpoint the catalog's window
 *                        still lists. A segment leaves the catalog first
 *                        (removed ranges), then its keys leave the backends;
 *                        checkpoints trimmed out of the window are deleted
 *                        by stor itself
 *   GCFLOOR              "OK <floor>": catalog_gc_floor (catalog.h), the
 *                        segment id up to which dead segments may be deleted
 *                        as far as the remote checkpoints are concerned
 *   RETRIEVE NAME PATH   fetch and rebuild the object into PATH (atomically)
 *   CONFIRMED NAME       "YES" when the object is safely remote (stored and
 *                        in the volume catalog), else "NO"
 *   CATALOG              the volume catalog as one line of JSON
 *   SCRUB, REPAIR        start a pass that checks every shard of every
 *                        stored object and repairs what is wrong (progress
 *                        and results in STATUS "scrub" and "redundancy")
 *   LEASE                look at the writer lease now (qsfs-fs sends it
 *                        after its clean stop: stor releases the lease
 *                        once its queue is empty)
 *   STATUS               one line of JSON (written with json-c)
 *   GCCHECK [FIX]        the leak check (leaks.h): keys of the volume on the
 *                        backends that nothing refers to, one JSON line;
 *                        FIX removes them first (the report says what went)
 * Replies are "OK", "YES", "NO", a JSON line, or "ERR message".
 * SIGTERM/SIGINT: stop when every queued job (uploads and deletions) is done
 * (exit 0); a second signal, or stor.drain_timeout seconds, exits at once
 * (1), leaving the journal for the next start. Deletions also keep the
 * writer lease like uploads (lease_tick releases it on an empty queue).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "backend.h"
#include "catalog.h"
#include "codec.h"
#include "head.h"
#include "health.h"
#include "leaks.h"
#include "lease.h"
#include "objstore.h"
#include "spool.h"
#include "../cache/cache.h"
#include "../common/config.h"
#include "../common/ctlsock.h"
#include "../common/storproto.h"
#include "../common/fsutil.h"
#include "../common/qlog.h"
#include "../common/units.h"

#define MAX_WORKERS 64
#define RETRIEVE_CTX 2

/* A worker's (or a retrieval's) own codec and backend handles. */
struct ctx {
	struct codec *codec;
	struct backend *b[CONFIG_MAX_BACKENDS];
	struct objstore os;
	bool busy;
};

struct job {
	char name[OBJ_NAME_MAX];	/* the spool's name: NAME, or NAME.del */
	char obj[OBJ_NAME_MAX];		/* the object's name */
	bool del;			/* a deletion (NAME.del), else an upload */
	/* a checkpoint upload: the segment its state covers (its clear header);
	 * it is stored only once the catalog holds every segment up to it, so
	 * that no checkpoint on the backends refers to a segment they lack */
	uint64_t upto;
	uint64_t size;
	int64_t since;		/* unix time it was queued */
	unsigned fails;
	uint64_t next_ns;	/* not before (backoff) */
	bool busy, again;
	struct job *next;
};

/* An object a retrieval found damaged: readable, but with missing or
 * corrupt shards, so it has lost redundancy until it is repaired. */
struct degraded {
	char name[OBJ_NAME_MAX];
	int64_t since;
	char why[1024];
};

/* The daemon's shared state, all under mu. */
static struct {
	pthread_mutex_t mu;
	pthread_cond_t work, changed;
	struct job *jobs;
	unsigned njobs, in_flight;	/* njobs: uploads and deletions; in_flight: uploads */
	unsigned ndeletes;		/* deletion jobs among njobs */
	uint64_t stored, failures;
	char last_error[512];
	uint64_t deleted, delete_failures;
	char delete_error[512];		/* why the last deletion attempt failed */
	/* the object a scrub or check pass works on ("": none): a deletion of
	 * it waits, or the pass's repair could store it again mid-delete */
	char scrubbing[OBJ_NAME_MAX];
	bool draining, stop;
	struct degraded *degraded;	/* objects read with shards missing or bad */
	size_t ndegraded;
	struct ctx *workers, *retrievers;
	unsigned nworkers;
	struct spool *spool;
	struct qsfs_config cfg;
	struct volume vol;
	/* The writer lease (lease.h) names another holder: this node's jobs
	 * are not uploaded (they would overwrite the new writer's objects). */
	bool fenced;
	bool fence_released;	/* fenced by a released lease (a move), not a live holder */
	/* the catalog's seg_hi as last stored (segments 1..cat_hi are on the
	 * backends): read by the job picker without cat_mu */
	_Atomic uint64_t cat_hi;
	char fence_why[700];
	const char *lease_state;	/* for STATUS: see lease_tick */
	/* segments a stopped qsfs-fs left in the cache without handing them
	 * off (cache_unhanded), and the lowest of them; 0 unless the lease is
	 * this node's and its qsfs-fs has stopped */
	uint64_t handoffs_left, handoffs_first;
	int handoffs_err;	/* cache_unhanded failed: the count is unknown */
	struct health *health;	/* which backends are usable (own lock) */
	unsigned min_shards;	/* stor.min_shards for this volume's k, m */
	/* the object a leak check's fix is deleting ("": none): no upload,
	 * deletion or scrub of it starts meanwhile (leaks.h) */
	char leak_claim[OBJ_NAME_MAX];
	struct leak_totals leaks;	/* the last leak check's numbers */
} D = { .mu = PTHREAD_MUTEX_INITIALIZER, .work = PTHREAD_COND_INITIALIZER,
	.changed = PTHREAD_COND_INITIALIZER };

/* The volume catalog (catalog.h): loaded at start, rewritten on the backends
 * after every stored object. cat_mu serialises both the in-memory struct
 * and its remote writes (so sequence numbers follow the order of changes);
 * it is never held together with D.mu. */
static pthread_mutex_t cat_mu = PTHREAD_MUTEX_INITIALIZER;

/* Wakes the lease thread (with D.mu): at stop, when the queue empties, on
 * a LEASE request. */
static pthread_cond_t lease_cv = PTHREAD_COND_INITIALIZER;
static struct catalog cat;
/* The last write of cat reached a majority (under cat_mu): the backends'
 * catalog is the one in memory, so what it no longer lists may go. */
static bool cat_saved = true;

#define TRIMMED_BATCH 64

/* Write the catalog out (cat_mu held). On success, up to TRIMMED_BATCH ids
 * of checkpoints the window dropped go to trimmed (*ntrimmed of them), to
 * be journaled for deletion once cat_mu is released. */
static int cat_save(struct objstore *os, uint64_t *trimmed, size_t *ntrimmed, char *why,
		    size_t whylen)
{
	int r = catalog_store(os, &cat, why, whylen);
	cat_saved = r == 0;
	if (!r) {
		atomic_store(&D.cat_hi, cat.seg_hi);
		pthread_cond_broadcast(&D.work);	/* a checkpoint may go now */
	}
	*ntrimmed = r ? 0 : catalog_take_trimmed(&cat, trimmed, TRIMMED_BATCH);
	return r;
}

static int queue_job(const char *name, uint64_t size, int64_t since);

/* Journal and queue the deletion of checkpoints c<id> (mu and cat_mu not
 * held). A failure is logged: the object stays on the backends, unlisted. */
static void journal_trimmed(const uint64_t *ids, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char name[OBJ_NAME_MAX], job[OBJ_NAME_MAX + 8];
		snprintf(name, sizeof name, "c%llu", (unsigned long long)ids[i]);
		snprintf(job, sizeof job, "%s.del", name);
		int r = spool_add_delete(D.spool, name);
		if (!r) {
			pthread_mutex_lock(&D.mu);
			r = queue_job(job, 0, (int64_t)time(NULL));
			pthread_mutex_unlock(&D.mu);
		}
		if (r)
			qlog_err("stor: checkpoint %s left the catalog's window but its deletion "
				 "cannot be journaled (%s): its object stays on the backends",
				 name, strerror(-r));
		else
			qlog_debug("stor: %s left the catalog's window: deletion queued", name);
	}
}

/* Add a stored object to the catalog and write it out (majority). hdr: the
 * object's first CAT_CKPT_HDR bytes (a checkpoint's kind and upto). */
static int catalog_note(struct objstore *os, const char *name, const uint8_t hdr[CAT_CKPT_HDR],
			char *why, size_t whylen)
{
	uint32_t kind = name[0] == 'c' ? catalog_ckpt_kind(hdr) : 0;
	if (name[0] == 'c' && !kind)
		kind = CAT_CKPT_DELTA;	/* not a checkpoint we know: never a restore's base */
	uint64_t trimmed[TRIMMED_BATCH];
	size_t ntrimmed = 0;
	pthread_mutex_lock(&cat_mu);
	int r = catalog_add(&cat, name, kind, catalog_ckpt_upto(hdr));
	if (r >= 0)
		r = cat_save(os, trimmed, &ntrimmed, why, whylen);
	else
		snprintf(why, whylen, "%s: cannot add it to the volume catalog: %s", name,
			 strerror(-r));
	pthread_mutex_unlock(&cat_mu);
	journal_trimmed(trimmed, ntrimmed);
	return r;
}

static uint64_t backoff_ns(unsigned fails)
{
	uint64_t s = 1ull << (fails < 6 ? fails : 6);	/* 2 s .. 64 s */
	return s * 1000000000ull;
}

static int ctx_open(struct ctx *c, char *err, size_t errlen)
{
	memset(c, 0, sizeof *c);
	for (size_t i = 0; i < D.cfg.stor.nbackends; i++)
		if (backend_open(&D.cfg.stor.backends[i], 5000, &c->b[i]))
			return -ENOMEM;
	c->os = (struct objstore){ .k = D.vol.k, .m = D.vol.m, .backends = c->b,
				   .nbackends = D.cfg.stor.nbackends, .health = D.health,
				   .min_shards = D.min_shards };
	memcpy(c->os.volume_id, D.vol.id, 16);
	memcpy(c->os.volhex, D.vol.idhex, 33);
	memcpy(c->os.meta_key, D.vol.meta_key, 32);
	struct codec_params p = { .k = D.vol.k, .m = D.vol.m, .zstd_level = D.cfg.stor.compression };
	memcpy(p.volume_id, D.vol.id, 16);
	memcpy(p.key, D.vol.seg_key, 32);
	int r = codec_new(&p, &c->codec);
	if (r)
		snprintf(err, errlen, "%s", r == -ENOTSUP ? "the erasure code backend cannot be "
			 "loaded (install libisal2)" : strerror(-r));
	return r;
}

static void ctx_close(struct ctx *c)
{
	for (size_t i = 0; i < D.cfg.stor.nbackends; i++)
		backend_close(c->b[i]);
	codec_free(c->codec);
}

/* --- the queue ------------------------------------------------------------------ */

static struct job *find_job(const char *name)
{
	for (struct job *j = D.jobs; j; j = j->next)
		if (!strcmp(j->name, name))
			return j;
	return NULL;
}

/* Add or refresh a job. mu held. */
static int queue_job(const char *name, uint64_t size, int64_t since)
{
	struct job *j = find_job(name);
	if (j) {
		j->size = size;
		j->fails = 0;
		j->next_ns = 0;
		if (j->busy)
			j->again = true;	/* the spool file was replaced meanwhile */
	} else {
		j = calloc(1, sizeof *j);
		if (!j)
			return -ENOMEM;
		snprintf(j->name, sizeof j->name, "%s", name);
		j->del = spool_is_delete(name, j->obj);
		if (!j->del)
			snprintf(j->obj, sizeof j->obj, "%s", name);
		if (!j->del && name[0] == 'c') {
			uint64_t sz;
			uint8_t hdr[CAT_CKPT_HDR];
			int fd = spool_open_job(D.spool, name, &sz);
			if (fd >= 0 && pread(fd, hdr, sizeof hdr, 0) == (ssize_t)sizeof hdr)
				j->upto = catalog_ckpt_upto(hdr);
			if (fd >= 0)
				close(fd);
		}
		D.ndeletes += j->del;
		j->size = size;
		j->since = since;
		struct job **t = &D.jobs;
		while (*t)
			t = &(*t)->next;
		*t = j;
		D.njobs++;
	}
	pthread_cond_signal(&D.work);
	return 0;
}

static void drop_job(struct job *j)
{
	for (struct job **t = &D.jobs; *t; t = &(*t)->next) {
		if (*t == j) {
			*t = j->next;
			break;
		}
	}
	D.njobs--;
	D.ndeletes -= j->del;
	free(j);
}

static void note_damage(const char *name, const char *damage);

/* The deletion of object obj (a job NAME.del): a segment leaves the catalog
 * first (so scrub and restores stop looking for it), then its keys leave
 * the backends; a checkpoint only once the catalog the backends hold no
 * longer lists it. Returns 0 when done, else a negative errno with why
 * (the job is retried). mu not held. */
static int run_delete(struct ctx *c, const char *obj, char *why, size_t whylen)
{
	uint64_t trimmed[TRIMMED_BATCH];
	size_t ntrimmed = 0;
	int r = 0;
	pthread_mutex_lock(&cat_mu);
	if (obj[0] == 's') {
		r = catalog_remove(&cat, obj);
		if (r < 0)
			snprintf(why, whylen, "%s: cannot remove it from the volume catalog: %s",
				 obj, strerror(-r));
		else if (r == 1 || !cat_saved)
			r = cat_save(&c->os, trimmed, &ntrimmed, why, whylen);
	} else if (catalog_lists(&cat, obj)) {
		snprintf(why, whylen, "%s: still in the catalog's checkpoint window (a restore may "
			 "need it): not deleted", obj);
		r = -EBUSY;
	} else if (!cat_saved) {
		snprintf(why, whylen, "%s: the volume catalog's last write failed, so the backends "
			 "may still list it: deleted once the catalog is written", obj);
		r = -EAGAIN;
	}
	pthread_mutex_unlock(&cat_mu);
	journal_trimmed(trimmed, ntrimmed);
	if (r < 0)
		return r;
	/* the catalog no longer lists it, so a pass that starts on it now
	 * skips it; one already on it is waited for */
	pthread_mutex_lock(&D.mu);
	bool busy = !strcmp(D.scrubbing, obj);
	pthread_mutex_unlock(&D.mu);
	if (busy) {
		snprintf(why, whylen, "%s: a scrub pass is checking it", obj);
		return -EINPROGRESS;
	}
	return obj_delete(&c->os, obj, why, whylen);
}

/* A deletion attempt of job j ended with r (why). mu held. */
static void delete_done(struct job *j, int r, const char *why)
{
	j->busy = false;
	if (!r && j->again) {
		j->again = false;	/* asked again meanwhile: once more */
	} else if (!r) {
		int e = spool_done(D.spool, j->name);
		if (e)
			qlog_err("stor: %s deleted but its journal entry cannot be removed: %s",
				 j->obj, strerror(-e));
		D.deleted++;
		qlog_debug("stor: %s deleted", j->obj);
		drop_job(j);
		if (!D.njobs)
			pthread_cond_broadcast(&lease_cv);
	} else if (r == -EINPROGRESS) {
		j->next_ns = fs_now_ns() + 200000000ull;	/* soon: not a failure */
	} else {
		j->fails++;
		D.delete_failures++;
		j->next_ns = fs_now_ns() + backoff_ns(j->fails);
		snprintf(D.delete_error, sizeof D.delete_error, "%s", why);
		qlog_warn("stor: deletion of %s failed (attempt %u, next in %llu s): %s", j->obj,
			  j->fails, (unsigned long long)(backoff_ns(j->fails) / 1000000000ull), why);
	}
	pthread_cond_broadcast(&D.changed);
}

static void *worker_main(void *arg)
{
	struct ctx *c = arg;
	/* Uploads are background work: this thread (and the shard writers it
	 * starts, which inherit it) yields the CPU to the filesystem. Linux
	 * applies PRIO_PROCESS with a thread id to that thread only. */
	if (D.cfg.stor.upload_nice) {	/* relative to the daemon's own nice */
		errno = 0;
		int base = getpriority(PRIO_PROCESS, (id_t)gettid());
		int want = (errno ? 0 : base) + (int)D.cfg.stor.upload_nice;
		if (want > 19)
			want = 19;
		if (setpriority(PRIO_PROCESS, (id_t)gettid(), want) < 0)
			qlog_warn("stor: cannot lower the upload threads' priority to nice %d: %s",
				  want, strerror(errno));
	}
	pthread_mutex_lock(&D.mu);
	while (!D.stop) {
		uint64_t now = fs_now_ns(), wake = now + 1000000000ull;
		struct job *j = NULL;
		for (struct job *t = D.fenced ? NULL : D.jobs; t && !j; t = t->next) {
			if (t->busy || (t->del && find_job(t->obj)))
				continue;	/* an upload of it goes first */
			if (!strcmp(t->obj, D.leak_claim))
				continue;	/* a leak fix is on it (woken after) */
			if (t->upto > atomic_load(&D.cat_hi))
				continue;	/* its segments first (the catalog wakes us) */
			if (t->next_ns <= now)
				j = t;
			else if (t->next_ns < wake)
				wake = t->next_ns;
		}
		if (!j) {
			struct timespec ts = fs_abstime(wake - now);
			pthread_cond_timedwait(&D.work, &D.mu, &ts);
			continue;
		}
		j->busy = true;
		if (j->del) {
			char obj[OBJ_NAME_MAX];
			snprintf(obj, sizeof obj, "%s", j->obj);
			pthread_mutex_unlock(&D.mu);
			char why[1024] = "";
			int r = run_delete(c, obj, why, sizeof why);
			pthread_mutex_lock(&D.mu);
			delete_done(j, r, why);
			continue;
		}
		D.in_flight++;
		char name[OBJ_NAME_MAX];
		snprintf(name, sizeof name, "%s", j->name);
		pthread_mutex_unlock(&D.mu);

		char why[1024] = "", damage[1024] = "";
		uint64_t id, size = 0;
		int r = object_name_parse(name, &id);
		int fd = r ? r : spool_open_job(D.spool, name, &size);
		if (fd >= 0) {
			uint8_t hdr[CAT_CKPT_HDR] = { 0 };
			if (pread(fd, hdr, sizeof hdr, 0) < 0)
				memset(hdr, 0, sizeof hdr);
			r = obj_put(&c->os, c->codec, name, id, fd, size, why, sizeof why, damage,
				    sizeof damage);
			close(fd);
			if (!r)
				r = catalog_note(&c->os, name, hdr, why, sizeof why);
			if (!r && damage[0])	/* stored with min_shards: repair it later */
				note_damage(name, damage);
		} else {
			r = fd;
			snprintf(why, sizeof why, "%s: its journal file cannot be read: %s", name,
				 strerror(-fd));
		}

		pthread_mutex_lock(&D.mu);
		D.in_flight--;
		j->busy = false;
		if (!r && j->again) {
			j->again = false;	/* upload the new contents too */
		} else if (!r) {
			int e = spool_done(D.spool, name);
			if (e)
				qlog_err("stor: %s uploaded but its journal entry cannot be removed: %s",
					 name, strerror(-e));
			D.stored++;
			drop_job(j);
			if (!D.njobs)
				pthread_cond_broadcast(&lease_cv);	/* release it now? */
			qlog_debug("stor: %s stored", name);
		} else if (fd == -ENOENT) {
			qlog_err("stor: %s dropped: its journal file vanished", name);
			drop_job(j);
		} else {
			j->fails++;
			D.failures++;
			j->next_ns = fs_now_ns() + backoff_ns(j->fails);
			snprintf(D.last_error, sizeof D.last_error, "%s", why);
			qlog_warn("stor: upload of %s failed (attempt %u, next in %llu s): %s", name,
				  j->fails, (unsigned long long)(backoff_ns(j->fails) / 1000000000ull),
				  why);
		}
		pthread_cond_broadcast(&D.changed);
	}
	pthread_mutex_unlock(&D.mu);
	return NULL;
}

/* --- the writer lease ------------------------------------------------------------
 *
 * qsfs-fs takes and renews the lease while mounted. This thread looks at
 * it every LEASE_TICK_S: if it names another holder, uploads stop (fenced);
 * if it is this node's and its qsfs-fs has stopped cleanly, stor renews it
 * while uploads are pending and releases it once the queue is empty, so
 * another host may start at once. */

#define LEASE_TICK_S 2

/* What lease_tick last learnt of the hand-offs a stopped qsfs-fs left, as
 * one sentence into buf ("" when none). D.mu held. */
static const char *handoffs_text(char *buf, size_t len)
{
	if (D.handoffs_err)
		snprintf(buf, len, "cannot read what %s still has to hand off (%s): the writer "
			 "lease is kept", D.cfg.cache.dir, strerror(-D.handoffs_err));
	else if (D.handoffs_left)
		snprintf(buf, len, "qsfs-fs stopped with %" PRIu64 " segments not handed off "
			 "(first s%" PRIu64 "); they are only on this node, so the writer lease "
			 "is kept until the next qsfs-fs (or qsfs-wait-hooks, for sealed ones) "
			 "hands them off", D.handoffs_left, D.handoffs_first);
	else
		buf[0] = 0;
	return buf;
}

static void lease_tick(struct ctx *c, int64_t *last_beat)
{
	uint8_t me[LEASE_ID_SIZE];
	bool have_me = lease_holder_id(D.cfg.cache.dir, false, me) == 0;
	struct lease l;
	char why[700];
	int r = lease_read(&c->os, &l, why, sizeof why);
	if (r == -ENOENT || (r == 0 && !l.seq)) {
		pthread_mutex_lock(&D.mu);
		D.fenced = false;
		D.lease_state = "none";
		pthread_mutex_unlock(&D.mu);
		return;
	}
	if (r) {
		qlog_debug("stor: %s", why);
		return;
	}
	int64_t now = (int64_t)time(NULL);
	bool ours = have_me && lease_held_by(&l, me);
	pthread_mutex_lock(&D.mu);
	bool was = D.fenced;
	D.fenced = !ours;
	bool released = l.flags & LEASE_RELEASED;
	if (!ours) {
		char who[300];
		lease_describe(&l, now, who, sizeof who);
		if (released)	/* a move to this node: its qsfs-fs takes it next */
			snprintf(D.fence_why, sizeof D.fence_why, "the writer lease was released by "
				 "its last holder (%s) and this node's qsfs-fs has not taken it yet: "
				 "the %u jobs of this node wait in the journal", who, D.njobs);
		else
			snprintf(D.fence_why, sizeof D.fence_why, "another writer holds the volume "
				 "(%s): the %u jobs of this node are kept in the journal and not "
				 "uploaded", who, D.njobs);
	}
	unsigned njobs = D.njobs + D.in_flight;
	D.lease_state = !ours ? "other" : (l.flags & LEASE_MOUNTED) ? "mounted"
			: (l.flags & LEASE_RELEASED) ? "released" : "stopping";
	bool was_released = D.fence_released;
	D.fence_released = D.fenced && released;
	if (was && D.fenced && was_released && !released) {
		qlog_err("stor: %s", D.fence_why);	/* a move became a live holder */
	} else if (was != D.fenced) {
		if (D.fenced && released)
			qlog_info("stor: %s", D.fence_why);
		else if (D.fenced)
			qlog_err("stor: %s", D.fence_why);
		else
			qlog_info("stor: this node holds the writer lease again: uploads resume");
		pthread_cond_broadcast(&D.work);
	}
	pthread_mutex_unlock(&D.mu);
	if (!ours || (l.flags & (LEASE_MOUNTED | LEASE_RELEASED))) {
		pthread_mutex_lock(&D.mu);
		D.handoffs_left = D.handoffs_first = 0;
		D.handoffs_err = 0;
		pthread_mutex_unlock(&D.mu);
		return;	/* qsfs-fs renews it while mounted */
	}
	bool release = njobs == 0;
	uint32_t want = l.flags;
	if (release) {
		/* Segments qsfs-fs could not hand off before it stopped (stor was
		 * down or failing) exist only here until qsfs-wait-hooks or the
		 * next qsfs-fs hands them off: a host taking the volume now would
		 * never see them. Keep (and renew) the lease until then. */
		uint64_t left = 0, first = 0;
		/* without a hook nothing is ever handed off: nothing to wait for */
		int e = D.cfg.cache.handoff != HANDOFF_NONE ? cache_unhanded(D.cfg.cache.dir, &left, &first) : 0;
		if (e == -ENOENT)
			e = 0;
		pthread_mutex_lock(&D.mu);
		/* cannot tell (e): keep it too; say so when it changes */
		bool tell = e ? e != D.handoffs_err : left && left != D.handoffs_left;
		D.handoffs_err = e;
		D.handoffs_left = left;
		D.handoffs_first = first;
		if (tell) {
			char text[600];
			qlog_warn("stor: %s", handoffs_text(text, sizeof text));
		}
		pthread_mutex_unlock(&D.mu);
		release = !e && left == 0;
		if (left)	/* only here: the lease must not expire (lease.h) */
			want |= LEASE_UNHANDED;
	}
	if (release)
		want = (want & ~LEASE_UNHANDED) | LEASE_RELEASED;
	if (!release && want == l.flags &&
	    now - *last_beat < (int64_t)lease_period(D.cfg.fs.lease_timeout))
		return;
	l.flags = want;
	l.heartbeat = now;
	r = lease_write(&c->os, &l, why, sizeof why);
	if (r) {
		qlog_warn("stor: %s", why);
	} else if (release) {
		qlog_info("stor: uploads done after qsfs-fs stopped: writer lease released");
		pthread_mutex_lock(&D.mu);
		D.lease_state = "released";
		pthread_mutex_unlock(&D.mu);
	} else {
		*last_beat = now;
	}
}

static void *lease_main(void *arg)
{
	struct ctx *c = arg;
	int64_t last_beat = 0;
	pthread_mutex_lock(&D.mu);
	while (!D.stop) {
		pthread_mutex_unlock(&D.mu);
		lease_tick(c, &last_beat);
		pthread_mutex_lock(&D.mu);
		struct timespec ts = fs_abstime(LEASE_TICK_S * 1000000000ull);
		if (!D.stop)
			pthread_cond_timedwait(&lease_cv, &D.mu, &ts);
	}
	pthread_mutex_unlock(&D.mu);
	return NULL;
}

static void spool_cb(void *arg, const char *name, uint64_t size, int64_t mtime)
{
	unsigned *n = arg;
	queue_job(name, size, mtime);
	(*n)++;
}

/* --- degraded objects ----------------------------------------------------------
 *
 * Kept in state_dir/degraded, one "NAME SINCE WHY" line each, rewritten
 * atomically on every change (changes are rare: a damaged read, a clean
 * read of a repaired object). */

#define DEGRADED_FILE "degraded"

static void save_degraded(void)
{
	size_t cap = 64 + D.ndegraded * (OBJ_NAME_MAX + 1100), len = 0;
	char *buf = malloc(cap);
	if (!buf)
		return;
	for (size_t i = 0; i < D.ndegraded; i++)
		len += (size_t)snprintf(buf + len, cap - len, "%s %lld %s\n", D.degraded[i].name,
					(long long)D.degraded[i].since, D.degraded[i].why);
	int dfd = open(D.cfg.stor.state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int r = dfd < 0 ? -errno : fs_write_atomic(dfd, DEGRADED_FILE, buf, len, 0600);
	if (dfd >= 0)
		close(dfd);
	if (r)
		qlog_warn("stor: cannot save %s/%s: %s", D.cfg.stor.state_dir, DEGRADED_FILE,
			  strerror(-r));
	free(buf);
}

/* Record what a successful retrieval or store of name saw: damage ("" =
 * none). */
static void note_damage(const char *name, const char *damage)
{
	pthread_mutex_lock(&D.mu);
	size_t i = 0;
	while (i < D.ndegraded && strcmp(D.degraded[i].name, name))
		i++;
	bool changed = false;
	if (!damage[0] && i < D.ndegraded) {
		D.degraded[i] = D.degraded[--D.ndegraded];
		changed = true;
		qlog_info("stor: %s is whole again", name);
	} else if (damage[0]) {
		if (i == D.ndegraded) {
			struct degraded *n = realloc(D.degraded, (D.ndegraded + 1) * sizeof *n);
			if (n) {
				D.degraded = n;
				snprintf(n[i].name, sizeof n[i].name, "%s", name);
				n[i].since = (int64_t)time(NULL);
				D.ndegraded++;
			}
		}
		if (i < D.ndegraded && strcmp(D.degraded[i].why, damage)) {
			snprintf(D.degraded[i].why, sizeof D.degraded[i].why, "%s", damage);
			for (char *p = D.degraded[i].why; *p; p++)
				if (*p == '\n')
					*p = ' ';
			changed = true;
		}
		qlog_warn("stor: %s has lost redundancy (%s): it needs a repair", name, damage);
	}
	if (changed)
		save_degraded();
	pthread_mutex_unlock(&D.mu);
}

static void load_degraded(void)
{
	int dfd = open(D.cfg.stor.state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	uint8_t *buf = NULL;
	size_t len = 0;
	int r = dfd < 0 ? -errno : fs_read_file(dfd, DEGRADED_FILE, &buf, &len);
	if (dfd >= 0)
		close(dfd);
	if (r) {
		if (r != -ENOENT)
			qlog_warn("stor: cannot read %s/%s: %s", D.cfg.stor.state_dir,
				  DEGRADED_FILE, strerror(-r));
		return;
	}
	char *text = malloc(len + 1);
	if (!text) {
		free(buf);
		return;
	}
	memcpy(text, buf, len);
	text[len] = 0;
	free(buf);
	char *save = NULL;
	for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char name[OBJ_NAME_MAX];
		long long since;
		int used = 0;
		uint64_t id;
		if (sscanf(line, "%31s %lld %n", name, &since, &used) != 2 || !used ||
		    object_name_parse(name, &id)) {
			qlog_warn("stor: %s/%s: ignoring a bad line", D.cfg.stor.state_dir,
				  DEGRADED_FILE);
			continue;
		}
		struct degraded *n = realloc(D.degraded, (D.ndegraded + 1) * sizeof *n);
		if (!n)
			break;
		D.degraded = n;
		snprintf(n[D.ndegraded].name, OBJ_NAME_MAX, "%s", name);
		n[D.ndegraded].since = since;
		snprintf(n[D.ndegraded].why, sizeof n->why, "%s", line + used);
		D.ndegraded++;
	}
	free(text);
}

/* --- scrub, check and repair -----------------------------------------------------
 *
 * A pass walks every object the catalog lists (and so every stored segment
 * and the checkpoints a restore uses), checks it against its newest
 * metadata, and fixes what it finds: missing or bad shards by storing the
 * object again as the next generation (obj_repair, on usable backends),
 * missing metadata copies by copying the newest one (obj_sync_meta).
 *   scrub  reads every shard (checksums), rate-limited to stor.scrub_rate:
 *          on SCRUB or REPAIR, and every stor.scrub_interval seconds;
 *   check  only asks whether every piece exists: cheap, and started by
 *          itself when a backend that was down answers again, when the
 *          configured backends changed since the last start, and while
 *          objects are marked degraded and every backend is up.
 * Interrupted (stop), a pass simply ends: every object is always readable
 * from its current generation. */

#define SCRUB_MAX_SPARE 16
#define CHECK_DEGRADED_S 30	/* degraded objects, all backends up: a check this often */

static struct {
	pthread_cond_t cv;	/* with D.mu */
	bool requested, check_requested, running;
	enum obj_verify_mode mode;	/* of the running (or last) pass */
	int64_t started, finished;	/* unix s of the last pass (0: never); finished
					 * is set at start too, to time the first one */
	int64_t completed;	/* unix s the last complete pass ended (0: none
				 * since start): what the redundancy is as of */
	uint64_t total, done, bytes, bad_shards, repaired, failed, waiting;
	/* last complete pass: objects with all shards, with some to spare
	 * (index: good - k shards beyond k), and unreadable ones */
	uint64_t full, spare[SCRUB_MAX_SPARE + 1], unreadable;
	uint64_t cur_full, cur_spare[SCRUB_MAX_SPARE + 1], cur_unreadable;
	char last_problem[1200];
	uint64_t t0_ns, rate_bytes;
} S = { .cv = PTHREAD_COND_INITIALIZER };

static void scrub_throttle(void *arg, size_t n)
{
	(void)arg;
	S.rate_bytes += n;
	uint64_t rate = D.cfg.stor.scrub_rate ? D.cfg.stor.scrub_rate : 1;
	uint64_t due_ns = S.t0_ns + S.rate_bytes * 1000000000ull / rate, now = fs_now_ns();
	if (due_ns > now) {
		uint64_t d = due_ns - now;
		nanosleep(&(struct timespec){ (time_t)(d / 1000000000ull),
					      (long)(d % 1000000000ull) }, NULL);
	}
}

/* Ask for a check pass (mu held). */
static void request_check(const char *why)
{
	if (!S.check_requested && why)
		qlog_info("stor: %s: checking every object's shards", why);
	S.check_requested = true;
	pthread_cond_broadcast(&S.cv);
}

/* The names the catalog lists now (removed segments are not). */
static char (*scrub_names(size_t *n))[OBJ_NAME_MAX]
{
	pthread_mutex_lock(&cat_mu);
	size_t cnt = cat.seg_hi + cat.nextra + cat.nck;
	char (*v)[OBJ_NAME_MAX] = calloc(cnt ? cnt : 1, OBJ_NAME_MAX);
	size_t k = 0;
	for (uint64_t id = 1; v && id <= cat.seg_hi; id++)
		if (!catalog_removed(&cat, id))	/* deleted: nothing to check */
			snprintf(v[k++], OBJ_NAME_MAX, "s%llu", (unsigned long long)id);
	for (size_t i = 0; v && i < cat.nextra; i++)
		if (!catalog_removed(&cat, cat.extra[i]))
			snprintf(v[k++], OBJ_NAME_MAX, "s%llu", (unsigned long long)cat.extra[i]);
	for (size_t i = 0; v && i < cat.nck; i++)
		snprintf(v[k++], OBJ_NAME_MAX, "c%llu", (unsigned long long)cat.ck[i].id);
	pthread_mutex_unlock(&cat_mu);
	*n = v ? k : 0;
	return v;
}

static void scrub_one(struct ctx *c, const char *name, enum obj_verify_mode mode)
{
	struct obj_check ck;
	char why[2048];
	uint64_t id;
	object_name_parse(name, &id);
	/* an object marked degraded (maybe by a checksum a read saw fail) is
	 * read in full even by a check: only that clears the mark */
	pthread_mutex_lock(&D.mu);
	for (size_t i = 0; i < D.ndegraded && mode != OBJ_VERIFY_READ; i++)
		if (!strcmp(D.degraded[i].name, name))
			mode = OBJ_VERIFY_READ;
	pthread_mutex_unlock(&D.mu);
	int r = obj_verify(&c->os, name, mode, mode == OBJ_VERIFY_READ ? scrub_throttle : NULL,
			   NULL, &ck, why, sizeof why);
	bool need = !r && ck.bad_mask, wait = false;
	unsigned good = r ? 0 : ck.good;
	size_t usable = ck.meta_usable;
	if (need && ck.good >= ck.k && usable < ck.k + ck.m) {
		/* a repair must place every shard: wait for backends */
		snprintf(why, sizeof why, "%s: %s; not repaired yet: only %zu backends usable, "
			 "%u needed", name, ck.damage, usable, ck.k + ck.m);
		note_damage(name, ck.damage);
		wait = true;
	} else if (need && ck.good >= ck.k) {
		r = obj_repair(&c->os, c->codec, name, id, D.cfg.stor.state_dir, why, sizeof why);
		if (!r) {
			qlog_info("stor: %s repaired (%s)", name, ck.damage);
			note_damage(name, "");
			good = ck.k + ck.m;
		} else {
			qlog_err("stor: %s cannot be repaired: %s", name, why);
			note_damage(name, ck.damage);
		}
	} else if (need) {
		snprintf(why, sizeof why, "%s: only %u of %u shards are good, %u needed: %s", name,
			 ck.good, ck.k + ck.m, ck.k, ck.damage);
		r = -EIO;
	} else if (r) {
		qlog_err("stor: scrub: %s", why);
	} else {
		if (ck.meta_current < usable) {	/* shards whole, metadata copies missing */
			int e = obj_sync_meta(&c->os, name, why, sizeof why);
			if (e)
				qlog_warn("stor: %s", why);
		}
		note_damage(name, "");
	}
	pthread_mutex_lock(&D.mu);
	S.done++;
	S.bytes += r ? 0 : ck.bytes;
	S.bad_shards += (uint64_t)__builtin_popcount(ck.bad_mask);
	if (need && !r && !wait)
		S.repaired++;
	S.waiting += wait;
	if (r || wait)
		snprintf(S.last_problem, sizeof S.last_problem, "%.1100s", why);
	if (r)
		S.failed++;
	if (good >= ck.k + ck.m && ck.k)
		S.cur_full++;
	else if (ck.k && good >= ck.k)
		S.cur_spare[good - ck.k > SCRUB_MAX_SPARE ? SCRUB_MAX_SPARE : good - ck.k]++;
	else
		S.cur_unreadable++;
	pthread_mutex_unlock(&D.mu);
}

/* After a complete pass: objects marked degraded that the catalog no
 * longer lists (checkpoints superseded, segments deleted) are forgotten:
 * no reader needs them, and no pass would ever clear their mark. */
static void forget_unlisted(void)
{
	/* cat_mu and D.mu are never held together: copy, look, then remove */
	pthread_mutex_lock(&D.mu);
	size_t n = D.ndegraded;
	char (*names)[OBJ_NAME_MAX] = calloc(n ? n : 1, OBJ_NAME_MAX);
	for (size_t i = 0; names && i < n; i++)
		memcpy(names[i], D.degraded[i].name, OBJ_NAME_MAX);
	pthread_mutex_unlock(&D.mu);
	if (!names)
		return;
	bool *gone = calloc(n ? n : 1, sizeof *gone);
	pthread_mutex_lock(&cat_mu);
	for (size_t i = 0; gone && i < n; i++)
		gone[i] = !catalog_lists(&cat, names[i]);
	pthread_mutex_unlock(&cat_mu);
	pthread_mutex_lock(&D.mu);
	size_t before = D.ndegraded;
	for (size_t k = 0; gone && k < n; k++) {
		for (size_t i = 0; gone[k] && i < D.ndegraded; i++) {
			if (!strcmp(D.degraded[i].name, names[k])) {
				D.degraded[i] = D.degraded[--D.ndegraded];
				break;
			}
		}
	}
	if (D.ndegraded != before)
		save_degraded();
	pthread_mutex_unlock(&D.mu);
	free(gone);
	free(names);
}

/* --- the leak check (leaks.h): the daemon's side --------------------------------- */

static pthread_mutex_t leak_mu = PTHREAD_MUTEX_INITIALIZER;	/* one check at a time */

static int leak_catalog_copy(void *arg, struct catalog *out)
{
	(void)arg;
	pthread_mutex_lock(&cat_mu);
	int r = catalog_dup(&cat, out);
	pthread_mutex_unlock(&cat_mu);
	return r;
}

static int leak_ref_now(void *arg, const char *name)
{
	(void)arg;
	pthread_mutex_lock(&cat_mu);
	int r = (int)leak_catalog_ref(&cat, name);
	pthread_mutex_unlock(&cat_mu);
	return r;
}

static char (*leak_jobs(void *arg, size_t *n))[OBJ_NAME_MAX]
{
	(void)arg;
	pthread_mutex_lock(&D.mu);
	char (*v)[OBJ_NAME_MAX] = calloc(D.njobs ? D.njobs : 1, OBJ_NAME_MAX);
	size_t k = 0;
	for (struct job *j = D.jobs; v && j; j = j->next)
		memcpy(v[k++], j->obj, OBJ_NAME_MAX);
	pthread_mutex_unlock(&D.mu);
	*n = k;
	return v;
}

/* mu held */
static bool job_of(const char *name)
{
	char del[OBJ_NAME_MAX + 8];
	snprintf(del, sizeof del, "%s.del", name);
	return find_job(name) || find_job(del);
}

static bool leak_job_now(void *arg, const char *name)
{
	(void)arg;
	pthread_mutex_lock(&D.mu);
	bool r = job_of(name);
	pthread_mutex_unlock(&D.mu);
	return r;
}

static bool leak_claim(void *arg, const char *name)
{
	(void)arg;
	pthread_mutex_lock(&D.mu);
	bool ok = !D.fenced && !job_of(name) && strcmp(D.scrubbing, name);
	if (ok)
		snprintf(D.leak_claim, sizeof D.leak_claim, "%s", name);
	pthread_mutex_unlock(&D.mu);
	return ok;
}

static void leak_release(void *arg, const char *name)
{
	(void)arg;
	(void)name;
	pthread_mutex_lock(&D.mu);
	D.leak_claim[0] = 0;
	pthread_cond_broadcast(&D.work);
	pthread_cond_broadcast(&D.changed);
	pthread_mutex_unlock(&D.mu);
}

/* Run a leak check (fix: and remove what it finds) with c's handles; keep
 * its numbers for STATUS. *out (if not NULL) gets the report. */
static int leak_check_run(struct ctx *c, bool fix, json_object **out)
{
	static const struct leak_hooks hooks = {
		.catalog_copy = leak_catalog_copy, .catalog_ref_now = leak_ref_now,
		.jobs = leak_jobs, .job_now = leak_job_now, .claim = leak_claim,
		.release = leak_release,
	};
	pthread_mutex_lock(&leak_mu);
	pthread_mutex_lock(&D.mu);
	bool fenced = D.fenced;
	pthread_mutex_unlock(&D.mu);
	json_object *rep = NULL;
	struct leak_totals tot;
	int r = fenced ? -EPERM : leak_check(&c->os, &hooks, fix, &rep, &tot);
	if (!r) {
		pthread_mutex_lock(&D.mu);
		D.leaks = tot;
		pthread_mutex_unlock(&D.mu);
		qlog_info("stor: leak check%s: %llu objects (%llu bytes) referenced by nothing "
			  "left on the backends", fix ? " and fix" : "",
			  (unsigned long long)tot.leaked_objects, (unsigned long long)tot.leaked_bytes);
	}
	pthread_mutex_unlock(&leak_mu);
	if (out)
		*out = rep;
	else
		json_object_put(rep);
	return r;
}

static void *scrub_main(void *arg)
{
	struct ctx *c = arg;
	pthread_mutex_lock(&D.mu);
	while (!D.stop) {
		if (!S.requested && !S.check_requested) {
			struct timespec ts = fs_abstime(5 * 1000000000ull);
			pthread_cond_timedwait(&S.cv, &D.mu, &ts);
			int64_t now = (int64_t)time(NULL);
			if (D.cfg.stor.scrub_interval && S.finished &&
			    now - S.finished >= (int64_t)D.cfg.stor.scrub_interval)
				S.requested = true;
			if (D.ndegraded && !health_down(D.health) &&
			    now - S.finished >= CHECK_DEGRADED_S)
				request_check(NULL);	/* objects degraded, every backend up */
			continue;
		}
		S.mode = S.requested ? OBJ_VERIFY_READ : OBJ_VERIFY_EXISTS;
		S.requested = false;
		S.check_requested = false;	/* a scrub checks everything too */
		S.running = true;
		S.started = (int64_t)time(NULL);
		S.done = S.bytes = S.bad_shards = S.repaired = S.failed = S.waiting = 0;
		S.cur_full = S.cur_unreadable = 0;
		memset(S.cur_spare, 0, sizeof S.cur_spare);
		S.last_problem[0] = 0;
		enum obj_verify_mode mode = S.mode;
		pthread_mutex_unlock(&D.mu);
		size_t n;
		char (*names)[OBJ_NAME_MAX] = scrub_names(&n);
		pthread_mutex_lock(&D.mu);
		S.total = n;
		pthread_mutex_unlock(&D.mu);
		const char *what = mode == OBJ_VERIFY_READ ? "scrub" : "check";
		qlog_info("stor: %s: %zu objects", what, n);
		S.t0_ns = fs_now_ns();
		S.rate_bytes = 0;
		size_t i = 0;
		for (; i < n; i++) {
			pthread_mutex_lock(&D.mu);
			bool stop = D.stop;
			pthread_mutex_unlock(&D.mu);
			if (stop)
				break;
			/* a deletion waits while the pass is on its object, and
			 * the pass skips what the catalog stopped listing */
			pthread_mutex_lock(&D.mu);
			while (!strcmp(D.leak_claim, names[i]) && !D.stop)
				pthread_cond_wait(&D.changed, &D.mu);	/* a leak fix on it */
			snprintf(D.scrubbing, sizeof D.scrubbing, "%s", names[i]);
			pthread_mutex_unlock(&D.mu);
			pthread_mutex_lock(&cat_mu);
			bool listed = catalog_lists(&cat, names[i]);
			pthread_mutex_unlock(&cat_mu);
			if (listed) {
				scrub_one(c, names[i], mode);
			} else {
				pthread_mutex_lock(&D.mu);
				S.done++;
				pthread_mutex_unlock(&D.mu);
			}
			pthread_mutex_lock(&D.mu);
			D.scrubbing[0] = 0;
			pthread_mutex_unlock(&D.mu);
		}
		free(names);
		if (i == n) {
			forget_unlisted();
			leak_check_run(c, false, NULL);	/* the remote bytes, for STATUS */
		}
		pthread_mutex_lock(&D.mu);
		S.running = false;
		if (i == n) {	/* a complete pass: its counts are the redundancy */
			S.finished = S.completed = (int64_t)time(NULL);
			S.full = S.cur_full;
			S.unreadable = S.cur_unreadable;
			memcpy(S.spare, S.cur_spare, sizeof S.spare);
			qlog_info("stor: %s: %llu objects checked, %llu bad shards, %llu objects "
				  "repaired, %llu waiting for backends, %llu failed", what,
				  (unsigned long long)S.done, (unsigned long long)S.bad_shards,
				  (unsigned long long)S.repaired, (unsigned long long)S.waiting,
				  (unsigned long long)S.failed);
		}
		pthread_cond_broadcast(&D.changed);
	}
	pthread_mutex_unlock(&D.mu);
	return NULL;
}

/* --- backend health -------------------------------------------------------------
 *
 * Every PROBE_S this thread asks each backend whether it is there (PING, or
 * the directory), with its own handles and a short timeout. A backend that
 * answers again after being down (health.h) wakes the uploads waiting for
 * it and starts a check pass: it may have come back empty. */

#define PROBE_S 2
#define PROBE_TIMEOUT_MS 1000

static void *probe_main(void *arg)
{
	struct backend **b = arg;
	pthread_mutex_lock(&D.mu);
	while (!D.stop) {
		pthread_mutex_unlock(&D.mu);
		for (size_t i = 0; i < D.cfg.stor.nbackends; i++) {
			bool up = backend_ping(b[i]) == 0;
			int change = health_probe(D.health, i, up, backend_health(b[i]).last_error);
			if (change < 0)
				qlog_warn("stor: backend %s is down: %s; placing shards elsewhere",
					  backend_name(b[i]), backend_health(b[i]).last_error);
			if (change <= 0)
				continue;
			qlog_info("stor: backend %s answers again", backend_name(b[i]));
			pthread_mutex_lock(&D.mu);
			for (struct job *j = D.jobs; j; j = j->next)
				if (j->fails)
					j->next_ns = 0;	/* retry now */
			pthread_cond_broadcast(&D.work);
			char why[300];
			snprintf(why, sizeof why, "backend %s is back", backend_name(b[i]));
			request_check(why);
			pthread_mutex_unlock(&D.mu);
		}
		pthread_mutex_lock(&D.mu);
		if (D.stop)
			break;
		struct timespec ts = fs_abstime(PROBE_S * 1000000000ull);
		pthread_cond_timedwait(&S.cv, &D.mu, &ts);
	}
	pthread_mutex_unlock(&D.mu);
	return NULL;
}

/* Compare the configured backends with those of the last start
 * (state_dir/backends): after a change (one replaced, added, removed) every
 * object is checked, and shards on a backend that is gone are rebuilt on
 * the configured ones. */
#define BACKENDS_FILE "backends"

static void check_backend_change(void)
{
	size_t cap = 1, len = 0;
	for (size_t i = 0; i < D.cfg.stor.nbackends; i++)
		cap += strlen(D.cfg.stor.backends[i].display) + 1;
	char *now = malloc(cap);
	if (!now)
		return;
	for (size_t i = 0; i < D.cfg.stor.nbackends; i++)
		len += (size_t)snprintf(now + len, cap - len, "%s\n",
					D.cfg.stor.backends[i].display);
	int dfd = open(D.cfg.stor.state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	uint8_t *old = NULL;
	size_t oldlen = 0;
	int r = dfd < 0 ? -errno : fs_read_file(dfd, BACKENDS_FILE, &old, &oldlen);
	bool changed = r == 0 && (oldlen != len || memcmp(old, now, len));
	if (r == 0 && !changed) {
		free(old);
		free(now);
		close(dfd);
		return;
	}
	if (changed) {
		pthread_mutex_lock(&D.mu);
		request_check("the configured backends changed since the last start");
		pthread_mutex_unlock(&D.mu);
	}
	r = dfd < 0 ? r : fs_write_atomic(dfd, BACKENDS_FILE, now, len, 0600);
	if (r)
		qlog_warn("stor: cannot save %s/%s: %s", D.cfg.stor.state_dir, BACKENDS_FILE,
			  strerror(-r));
	if (dfd >= 0)
		close(dfd);
	free(old);
	free(now);
}

static void scrub_status(json_object *o, json_object *problems)
{
	json_object *x = json_object_new_object();
	json_object_object_add(x, "running", json_object_new_boolean(S.running));
	json_object_object_add(x, "mode", json_object_new_string(S.mode == OBJ_VERIFY_READ ?
								   "scrub" : "check"));
	json_object_object_add(x, "check_requested", json_object_new_boolean(S.check_requested));
	json_object_object_add(x, "waiting", json_object_new_uint64(S.waiting));
	json_object_object_add(x, "requested", json_object_new_boolean(S.requested));
	json_object_object_add(x, "objects", json_object_new_uint64(S.total));
	json_object_object_add(x, "checked", json_object_new_uint64(S.done));
	json_object_object_add(x, "bytes", json_object_new_uint64(S.bytes));
	json_object_object_add(x, "bad_shards", json_object_new_uint64(S.bad_shards));
	json_object_object_add(x, "repaired", json_object_new_uint64(S.repaired));
	json_object_object_add(x, "failed", json_object_new_uint64(S.failed));
	json_object_object_add(x, "started", json_object_new_int64(S.started));
	json_object_object_add(x, "finished", json_object_new_int64(S.finished));
	json_object_object_add(x, "last_problem", json_object_new_string(S.last_problem));
	json_object_object_add(o, "scrub", x);
	/* redundancy, as of the last complete pass */
	json_object *rd = json_object_new_object(), *sp = json_object_new_object();
	uint64_t degraded = 0;
	for (unsigned i = 0; i <= SCRUB_MAX_SPARE; i++) {
		if (!S.spare[i])
			continue;
		char k[16];
		snprintf(k, sizeof k, "%u", i);
		json_object_object_add(sp, k, json_object_new_uint64(S.spare[i]));
		degraded += S.spare[i];
	}
	json_object_object_add(rd, "as_of", json_object_new_int64(S.completed));
	json_object_object_add(rd, "full", json_object_new_uint64(S.full));
	json_object_object_add(rd, "degraded", json_object_new_uint64(degraded));
	json_object_object_add(rd, "degraded_by_spare_shards", sp);
	json_object_object_add(rd, "unreadable", json_object_new_uint64(S.unreadable));
	json_object_object_add(o, "redundancy", rd);
	char line[1400];
	if (S.completed && (degraded || S.unreadable)) {
		snprintf(line, sizeof line, "the last scrub found %llu objects with lost redundancy "
			 "and %llu unreadable%s%s", (unsigned long long)degraded,
			 (unsigned long long)S.unreadable, S.last_problem[0] ? ": " : "",
			 S.last_problem);
		json_object_array_add(problems, json_object_new_string(line));
	}
}

/* --- requests -------------------------------------------------------------------- */

static struct ctx *take_retriever(void)
{
	pthread_mutex_lock(&D.mu);
	struct ctx *c = NULL;
	while (!c) {
		for (int i = 0; i < RETRIEVE_CTX && !c; i++)
			if (!D.retrievers[i].busy)
				c = &D.retrievers[i];
		if (!c)
			pthread_cond_wait(&D.changed, &D.mu);
	}
	c->busy = true;
	pthread_mutex_unlock(&D.mu);
	return c;
}

static void give_retriever(struct ctx *c)
{
	pthread_mutex_lock(&D.mu);
	c->busy = false;
	pthread_cond_broadcast(&D.changed);
	pthread_mutex_unlock(&D.mu);
}

static void do_retrieve(int cfd, const char *name, const char *path)
{
	uint64_t id;
	if (object_name_parse(name, &id) || path[0] != '/') {
		dprintf(cfd, "ERR usage: RETRIEVE s<id>|c<id> /absolute/path\n");
		return;
	}
	char tmp[4200];
	snprintf(tmp, sizeof tmp, "%s.stor-tmp", path);
	int fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		dprintf(cfd, "ERR cannot create %s: %s\n", tmp, strerror(errno));
		return;
	}
	char why[2048] = "";
	int r;
	uint64_t size;
	int sfd = spool_open_job(D.spool, name, &size);	/* not uploaded yet: local copy */
	if (sfd >= 0) {
		uint8_t *buf = malloc(1 << 20);
		r = buf ? 0 : -ENOMEM;
		for (uint64_t off = 0; !r && off < size;) {
			ssize_t n = fs_pread_full(sfd, buf, 1 << 20, (off_t)off);
			r = n < 0 ? (int)n : n == 0 ? -EIO : fs_pwrite_all(fd, buf, (size_t)n, (off_t)off);
			off += n > 0 ? (uint64_t)n : 0;
		}
		free(buf);
		close(sfd);
		if (r)
			snprintf(why, sizeof why, "copying %s from the journal: %s", name, strerror(-r));
	} else {
		char damage[1024];
		struct ctx *c = take_retriever();
		r = obj_get(&c->os, c->codec, name, id, fd, why, sizeof why, damage, sizeof damage);
		give_retriever(c);
		if (!r)
			note_damage(name, damage);
	}
	if (!r && fsync(fd) < 0) {
		r = -errno;
		snprintf(why, sizeof why, "writing %s: %s", path, strerror(-r));
	}
	close(fd);
	if (!r && rename(tmp, path) < 0) {
		r = -errno;
		snprintf(why, sizeof why, "renaming into %s: %s", path, strerror(-r));
	}
	if (r) {
		unlink(tmp);
		qlog_err("stor: retrieve %s into %s: %s", name, path, why);
		dprintf(cfd, "ERR retrieving %s into %s: %s\n", name, path, why);
		return;
	}
	dprintf(cfd, "OK\n");
}

static void do_status(int cfd)
{
	json_object *o = json_object_new_object();
	pthread_mutex_lock(&D.mu);
	uint64_t bytes = 0;
	int64_t oldest = 0, now = (int64_t)time(NULL);
	for (struct job *j = D.jobs; j; j = j->next) {
		if (j->del)
			continue;	/* counted apart */
		bytes += j->size;
		if (!oldest || j->since < oldest)
			oldest = j->since;
	}
	unsigned uploads = D.njobs - D.ndeletes;
	json_object_object_add(o, "volume", json_object_new_string(D.cfg.volume));
	json_object_object_add(o, "volume_id", json_object_new_string(D.vol.idhex));
	json_object_object_add(o, "pending_jobs", json_object_new_int64(uploads));
	json_object_object_add(o, "pending_bytes", json_object_new_int64((int64_t)bytes));
	json_object_object_add(o, "oldest_pending_s",
			       json_object_new_int64(uploads ? now - oldest : 0));
	json_object_object_add(o, "in_flight", json_object_new_int64(D.in_flight));
	json_object_object_add(o, "stored", json_object_new_int64((int64_t)D.stored));
	json_object_object_add(o, "failures", json_object_new_int64((int64_t)D.failures));
	json_object_object_add(o, "last_error", json_object_new_string(D.last_error));
	json_object_object_add(o, "deletes_pending", json_object_new_int64(D.ndeletes));
	json_object_object_add(o, "deleted", json_object_new_int64((int64_t)D.deleted));
	json_object_object_add(o, "delete_failures",
			       json_object_new_int64((int64_t)D.delete_failures));
	json_object_object_add(o, "delete_last_error", json_object_new_string(D.delete_error));
	json_object_object_add(o, "draining", json_object_new_boolean(D.draining));
	json_object *bs = json_object_new_array(), *problems = json_object_new_array();
	char line[1400];
	unsigned down = 0;
	for (size_t i = 0; i < D.cfg.stor.nbackends; i++) {
		/* every handle of this backend: the most recent state, errors summed */
		struct backend_health w = { 0 };
		uint64_t errors = 0;
		for (unsigned k = 0; k < D.nworkers + RETRIEVE_CTX; k++) {
			struct ctx *c = k < D.nworkers ? &D.workers[k] : &D.retrievers[k - D.nworkers];
			struct backend_health h = backend_health(c->b[i]);
			errors += h.errors;
			if (h.updated_ns > w.updated_ns)
				w = h;
		}
		bool is_down;
		int64_t since;
		char verdict[160];
		health_get(D.health, i, &is_down, &since, verdict, sizeof verdict);
		if (is_down) {	/* the daemon's verdict: no shards go there */
			w.state = BACKEND_DOWN;
			snprintf(w.last_error, sizeof w.last_error, "%s", verdict);
		} else if (w.state == BACKEND_DOWN) {
			w.state = BACKEND_UP;	/* a probe answered since that error */
		}
		json_object *b = json_object_new_object();
		static const char *st[] = { "up", "slow", "down" };
		const char *name = backend_name(D.workers[0].b[i]);
		json_object_object_add(b, "down_since", json_object_new_int64(is_down ? since : 0));
		json_object_object_add(b, "name", json_object_new_string(name));
		json_object_object_add(b, "state", json_object_new_string(st[w.state]));
		json_object_object_add(b, "latency_ms",
				       json_object_new_double((double)w.latency_us / 1000.0));
		json_object_object_add(b, "errors", json_object_new_int64((int64_t)errors));
		json_object_object_add(b, "last_error", json_object_new_string(w.last_error));
		/* all keys of the volume on it, as of the last leak check */
		json_object_object_add(b, "bytes", D.leaks.at && i < D.leaks.nbackends &&
				       D.leaks.listed[i] ? json_object_new_uint64(D.leaks.bytes[i]) : NULL);
		json_object_array_add(bs, b);
		if (w.state != BACKEND_UP) {
			down += w.state == BACKEND_DOWN;
			snprintf(line, sizeof line, "backend %s is %s: %s", name, st[w.state],
				 w.state == BACKEND_SLOW ? "its last operation took over 0.5 s"
							 : w.last_error);
			json_object_array_add(problems, json_object_new_string(line));
		}
	}
	size_t usable = D.cfg.stor.nbackends - down, n = D.vol.k + D.vol.m;
	if (usable < n) {
		if (D.min_shards && usable >= D.min_shards)
			snprintf(line, sizeof line, "only %zu backends usable for %zu shards: objects "
				 "are stored with %zu shards (min_shards %u) and need a repair", usable,
				 n, usable, D.min_shards);
		else
			snprintf(line, sizeof line, "only %zu backends usable for %zu shards: uploads "
				 "wait (the data stays local)%s", usable, n, down > D.vol.m ?
				 " and objects with shards on the down backends may be unreadable" : "");
		json_object_array_add(problems, json_object_new_string(line));
	}
	json_object_object_add(o, "backends_usable", json_object_new_int64((int64_t)usable));
	json_object_object_add(o, "min_shards", json_object_new_int64(D.min_shards));
	json_object *dg = json_object_new_array();
	for (size_t i = 0; i < D.ndegraded; i++) {
		if (i < 100) {	/* the count says how many in all */
			json_object *x = json_object_new_object();
			json_object_object_add(x, "object", json_object_new_string(D.degraded[i].name));
			json_object_object_add(x, "since", json_object_new_int64(D.degraded[i].since));
			json_object_object_add(x, "why", json_object_new_string(D.degraded[i].why));
			json_object_array_add(dg, x);
		}
	}
	if (D.ndegraded) {
		snprintf(line, sizeof line, "%zu objects have missing or corrupt shards "
			 "and have lost redundancy until repaired (first: %s: %s)", D.ndegraded,
			 D.degraded[0].name, D.degraded[0].why);
		json_object_array_add(problems, json_object_new_string(line));
	}
	if (D.fenced) {
		snprintf(line, sizeof line, "uploads stopped: %s", D.fence_why);
		json_object_array_add(problems, json_object_new_string(line));
	}
	if (*handoffs_text(line, sizeof line))
		json_object_array_add(problems, json_object_new_string(line));
	json_object_object_add(o, "handoffs_left", json_object_new_int64((int64_t)D.handoffs_left));
	json_object_object_add(o, "fenced", json_object_new_boolean(D.fenced));
	json_object_object_add(o, "lease", json_object_new_string(D.lease_state ? D.lease_state
										: "unknown"));
	bool failing = false, del_failing = false;
	const struct job *held = NULL;	/* the oldest checkpoint waiting for segments */
	int64_t now_s = (int64_t)time(NULL);
	for (struct job *j = D.jobs; j; j = j->next) {
		failing |= !j->del && j->fails > 0;
		del_failing |= j->del && j->fails > 0;
		if (j->upto > atomic_load(&D.cat_hi) && now_s - j->since >= 60 &&
		    (!held || j->since < held->since))
			held = j;
	}
	if (held) {
		snprintf(line, sizeof line, "checkpoint %s waits for the segments it covers (up to "
			 "s%llu; the backends hold every segment up to s%llu only): a segment "
			 "was never handed off or cannot be uploaded", held->name,
			 (unsigned long long)held->upto,
			 (unsigned long long)atomic_load(&D.cat_hi));
		json_object_array_add(problems, json_object_new_string(line));
	}
	if (failing) {
		snprintf(line, sizeof line, "uploads are failing and being retried: %s",
			 D.last_error);
		json_object_array_add(problems, json_object_new_string(line));
	}
	json_object_object_add(o, "deletes_failing", json_object_new_boolean(del_failing));
	if (del_failing) {
		snprintf(line, sizeof line, "deletions are failing and being retried (%u pending): "
			 "%s", D.ndeletes, D.delete_error);
		json_object_array_add(problems, json_object_new_string(line));
	}
	scrub_status(o, problems);
	json_object_object_add(o, "remote_bytes_as_of", json_object_new_int64(D.leaks.at));
	json_object_object_add(o, "leaked_objects", json_object_new_uint64(D.leaks.leaked_objects));
	json_object_object_add(o, "leaked_bytes", json_object_new_uint64(D.leaks.leaked_bytes));
	if (D.leaks.leaked_objects) {
		char sz[32];
		snprintf(line, sizeof line, "%llu objects (%s) on the backends are referenced by "
			 "nothing: qsfs-ctl gc --check --fix removes them",
			 (unsigned long long)D.leaks.leaked_objects,
			 format_size(D.leaks.leaked_bytes, sz, sizeof sz));
		json_object_array_add(problems, json_object_new_string(line));
	}
	json_object_object_add(o, "degraded_objects", json_object_new_int64((int64_t)D.ndegraded));
	json_object_object_add(o, "degraded", dg);
	json_object_object_add(o, "state", json_object_new_string(
		json_object_array_length(problems) ? "degraded" : "ok"));
	json_object_object_add(o, "problems", problems);
	json_object_object_add(o, "backends", bs);
	pthread_mutex_unlock(&D.mu);
	dprintf(cfd, "%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
}

/* Stored and listed in the catalog (so a fresh node finds it), and no newer
 * contents queued. */
static bool is_confirmed(const char *name)
{
	pthread_mutex_lock(&D.mu);
	bool queued = find_job(name) != NULL;
	pthread_mutex_unlock(&D.mu);
	if (queued)
		return false;
	pthread_mutex_lock(&cat_mu);
	bool yes = catalog_has(&cat, name);
	pthread_mutex_unlock(&cat_mu);
	return yes;
}

static void do_catalog(int cfd)
{
	json_object *o = json_object_new_object(), *ex = json_object_new_array(),
		    *ck = json_object_new_array(), *rm = json_object_new_array();
	pthread_mutex_lock(&cat_mu);
	json_object_object_add(o, "volume", json_object_new_string(D.vol.idhex));
	json_object_object_add(o, "seq", json_object_new_uint64(cat.seq));
	json_object_object_add(o, "segments_upto", json_object_new_uint64(cat.seg_hi));
	for (size_t i = 0; i < cat.nextra; i++)
		json_object_array_add(ex, json_object_new_uint64(cat.extra[i]));
	for (size_t i = 0; i < cat.nck; i++) {
		json_object *e = json_object_new_object();
		json_object_object_add(e, "id", json_object_new_uint64(cat.ck[i].id));
		json_object_object_add(e, "kind", json_object_new_string(
			cat.ck[i].kind == CAT_CKPT_FULL ? "full" : "delta"));
		json_object_object_add(e, "upto", json_object_new_uint64(cat.ck[i].upto));
		json_object_array_add(ck, e);
	}
	for (size_t i = 0; i < cat.nrm; i++) {
		json_object *r = json_object_new_array();
		json_object_array_add(r, json_object_new_uint64(cat.rm[i].first));
		json_object_array_add(r, json_object_new_uint64(cat.rm[i].last));
		json_object_array_add(rm, r);
	}
	json_object_object_add(o, "gc_floor", json_object_new_uint64(catalog_gc_floor(&cat)));
	pthread_mutex_unlock(&cat_mu);
	json_object_object_add(o, "segments_extra", ex);
	json_object_object_add(o, "checkpoints", ck);
	json_object_object_add(o, "segments_removed", rm);
	dprintf(cfd, "%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
}

/* May object name be stored? 0 yes; 1 no, and the reply says why: a
 * segment deleted (removed from the catalog) or with a deletion queued
 * (its upload would leave keys no catalog lists). */
static int store_allowed(int cfd, const char *name)
{
	char job[OBJ_NAME_MAX + 8];
	snprintf(job, sizeof job, "%s.del", name);
	pthread_mutex_lock(&D.mu);
	bool deleting = find_job(job) != NULL;
	pthread_mutex_unlock(&D.mu);
	uint64_t id;
	object_name_parse(name, &id);
	pthread_mutex_lock(&cat_mu);
	bool removed = name[0] == 's' && catalog_removed(&cat, id);
	pthread_mutex_unlock(&cat_mu);
	if (deleting || removed) {
		dprintf(cfd, "ERR %s %s: not stored\n", name, deleting ? "is being deleted" :
			"was deleted (the catalog lists it as removed)");
		return 1;
	}
	return 0;
}

/* DELETE NAME: journal NAME.del durably, queue it, reply. */
static void do_delete(int cfd, const char *name)
{
	uint64_t id;
	if (object_name_parse(name, &id)) {
		dprintf(cfd, "ERR bad object name '%s' (s<id> or c<id>)\n", name);
		return;
	}
	if (name[0] == 'c') {
		pthread_mutex_lock(&cat_mu);
		bool listed = catalog_lists(&cat, name);
		pthread_mutex_unlock(&cat_mu);
		if (listed) {
			dprintf(cfd, "ERR %s is in the catalog's checkpoint window (a restore may "
				"need it); it is deleted by itself once newer checkpoints replace "
				"it\n", name);
			return;
		}
	}
	char job[OBJ_NAME_MAX + 8];
	snprintf(job, sizeof job, "%s.del", name);
	/* mu across the journal write: a STORE of name cannot slip in between
	 * the check and the queue */
	pthread_mutex_lock(&D.mu);
	int r = 0;
	if (find_job(name)) {
		pthread_mutex_unlock(&D.mu);
		dprintf(cfd, "ERR %s has an upload queued; retry later\n", name);
		return;
	}
	r = spool_add_delete(D.spool, name);
	if (!r)
		r = queue_job(job, 0, (int64_t)time(NULL));
	pthread_mutex_unlock(&D.mu);
	if (r) {
		qlog_err("stor: cannot journal the deletion of %s in %s/spool: %s", name,
			 D.cfg.stor.state_dir, strerror(-r));
		dprintf(cfd, "ERR cannot journal the deletion of %s: %s\n", name, strerror(-r));
		return;
	}
	dprintf(cfd, "OK\n");
}

/* GCCHECK [FIX]: on this connection's thread, with handles of its own. */
static void do_gccheck(int cfd, bool fix)
{
	struct ctx c;
	char err[300];
	if (ctx_open(&c, err, sizeof err)) {
		ctx_close(&c);
		dprintf(cfd, "ERR %s\n", err);
		return;
	}
	json_object *rep = NULL;
	int r = leak_check_run(&c, fix, &rep);
	ctx_close(&c);
	if (r == -EPERM)
		dprintf(cfd, "ERR another host holds the writer lease: this node's catalog is "
			"not the volume's, so nothing is checked\n");
	else if (r)
		dprintf(cfd, "ERR leak check: %s\n", strerror(-r));
	else
		dprintf(cfd, "%s\n", json_object_to_json_string_ext(rep, JSON_C_TO_STRING_PLAIN |
			JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(rep);
}

/* CONFIRMS LO HI: is segment id safely remote? (is_confirmed's answer) */
static bool confirmed_id(void *arg, uint64_t id)
{
	(void)arg;
	char name[32];
	snprintf(name, sizeof name, "s%llu", (unsigned long long)id);
	return is_confirmed(name);
}

/* One request (storproto.h), its reply written to cfd. */
static void serve(int cfd, const struct stor_req *rq)
{
	switch (rq->op) {
	case STOR_PING:
		dprintf(cfd, "OK\n");
		break;
	case STOR_STATUS:
		do_status(cfd);
		break;
	case STOR_CONFIRMED:
		dprintf(cfd, "%s\n", is_confirmed(rq->name) ? "YES" : "NO");
		break;
	case STOR_CONFIRMS: {
		char *t = storproto_confirms_text(rq->lo, rq->hi, confirmed_id, NULL);
		if (t)
			dprintf(cfd, "OK%s%s\n", t[0] ? " " : "", t);
		else
			dprintf(cfd, "ERR out of memory\n");
		free(t);
		break;
	}
	case STOR_STORE: {
		if (store_allowed(cfd, rq->name))
			break;	/* refused, and said why */
		int r = spool_add(D.spool, rq->name, rq->path);
		struct stat st;
		if (!r && stat(rq->path, &st) == 0) {
			pthread_mutex_lock(&D.mu);
			r = queue_job(rq->name, (uint64_t)st.st_size, (int64_t)time(NULL));
			pthread_mutex_unlock(&D.mu);
		}
		if (r)
			dprintf(cfd, "ERR cannot queue %s from %s: %s\n", rq->name, rq->path,
				strerror(-r));
		else
			dprintf(cfd, "OK\n");
		break;
	}
	case STOR_DELETE:
		do_delete(cfd, rq->name);
		break;
	case STOR_GCFLOOR: {
		pthread_mutex_lock(&cat_mu);
		uint64_t floor = catalog_gc_floor(&cat);
		pthread_mutex_unlock(&cat_mu);
		dprintf(cfd, "OK %llu\n", (unsigned long long)floor);
		break;
	}
	case STOR_SCRUB:
	case STOR_REPAIR: {
		pthread_mutex_lock(&D.mu);
		bool already = S.running || S.requested;
		S.requested = true;
		pthread_cond_broadcast(&S.cv);
		pthread_mutex_unlock(&D.mu);
		dprintf(cfd, "OK%s\n", already ? " already running" : "");
		break;
	}
	case STOR_LEASE:	/* qsfs-fs stopped: look at the lease now */
		pthread_mutex_lock(&D.mu);
		pthread_cond_broadcast(&lease_cv);
		pthread_mutex_unlock(&D.mu);
		dprintf(cfd, "OK\n");
		break;
	case STOR_CATALOG:
		do_catalog(cfd);
		break;
	case STOR_GCCHECK:
		do_gccheck(cfd, rq->fix);
		break;
	case STOR_RETRIEVE:
		do_retrieve(cfd, rq->name, rq->path);
		break;
	case STOR_NOPS:
		break;
	}
}

/* A connection: requests one after the other until the peer closes it (a
 * client such as qsfs-fs keeps one open). The thread is detached: a stop
 * never waits for a connection. */
static void *conn_main(void *arg)
{
	int cfd = (int)(intptr_t)arg;
	char line[STORPROTO_LINE_MAX], err[256];
	for (;;) {
		int r = ctlsock_read_line(cfd, line, sizeof line);
		if (r == -ENODATA)
			break;	/* closed between requests */
		if (r) {
			dprintf(cfd, "ERR request too long or not a line\n");
			break;
		}
		struct stor_req rq;
		if (storproto_parse(line, &rq, err, sizeof err))
			dprintf(cfd, "ERR %s\n", err);
		else
			serve(cfd, &rq);
	}
	close(cfd);
	return NULL;
}

/* --- main ------------------------------------------------------------------------ */

/* Temp files a crash left: state_dir's atomic writes (NAME.tmp; the
 * spool cleans its own) and, on dir:// backends, puts killed half way
 * (KEY.tmp-XXXXXX older than 10 minutes: younger ones may be a put in
 * flight by qsfs-fs). Logged once with the count; nothing else depends on
 * them. */
static void sweep_temp_files(void)
{
	DIR *d = opendir(D.cfg.stor.state_dir);
	unsigned n = 0;
	struct dirent *e;
	while (d && (e = readdir(d))) {
		size_t l = strlen(e->d_name);
		struct stat st;
		if (l > 4 && !strcmp(e->d_name + l - 4, ".tmp") &&
		    fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISREG(st.st_mode) && unlinkat(dirfd(d), e->d_name, 0) == 0)
			n++;
	}
	if (d)
		closedir(d);
	if (n)
		qlog_info("stor: removed %u temp files a crash left in %s", n,
			  D.cfg.stor.state_dir);
	for (size_t i = 0; i < D.cfg.stor.nbackends; i++) {
		const struct backend_url *u = &D.cfg.stor.backends[i];
		int64_t r = backend_dir_sweep_tmp(u, 600);
		if (r > 0)
			qlog_info("stor: removed %lld temp files a crash left on %s", (long long)r,
				  u->display);
		else if (r < 0)
			qlog_warn("stor: cannot look for temp files on %s: %s", u->display,
				  strerror((int)-r));
	}
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
	while ((ch = getopt_long(argc, argv, "c:h", lo, NULL)) != -1) {
		if (ch == 'c') {
			conf = optarg;
		} else {
			fprintf(ch == 'h' ? stdout : stderr,
				"usage: qsfs-stor [-c CONFIG] [-h|--help]\n"
				"The storage daemon: uploads sealed segments and checkpoints to the\n"
				"backends, fetches them back, keeps the writer lease and repairs.\n"
				"  -c, --config CONFIG  the configuration (default $QSFS_CONFIG, else\n"
				"                       /etc/qsfs/qsfs.yaml)\n"
				"Stop it with SIGTERM: it uploads everything queued, then exits 0.\n");
			return ch == 'h' ? 0 : 2;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "qsfs-stor: unexpected argument '%s' (usage: qsfs-stor [-c CONFIG])\n",
			argv[optind]);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	char err[1024];
	if (config_load(conf, &D.cfg, err, sizeof err)) {
		fprintf(stderr, "qsfs-stor: %s\n", err);
		return 2;
	}
	/* one lock per state dir: two daemons would upload each other's jobs */
	mkdir(D.cfg.stor.state_dir, 0700);
	char lockp[4200];
	snprintf(lockp, sizeof lockp, "%s/LOCK", D.cfg.stor.state_dir);
	if (health_new(D.cfg.stor.nbackends, &D.health)) {
		fprintf(stderr, "qsfs-stor: out of memory\n");
		return 1;
	}
	int lfd = open(lockp, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (lfd < 0 || flock(lfd, LOCK_EX | LOCK_NB) < 0) {
		fprintf(stderr, "qsfs-stor: state_dir %s is in use by another qsfs-stor (%s)\n",
			D.cfg.stor.state_dir, strerror(errno));
		return 1;
	}
	sweep_temp_files();
	/* the volume */
	struct ctx probe;
	memset(&probe, 0, sizeof probe);
	for (size_t i = 0; i < D.cfg.stor.nbackends; i++)
		backend_open(&D.cfg.stor.backends[i], 5000, &probe.b[i]);
	int r = head_open(&D.cfg, probe.b, D.cfg.stor.nbackends, &D.vol, err, sizeof err);
	for (size_t i = 0; i < D.cfg.stor.nbackends; i++)
		backend_close(probe.b[i]);
	if (r) {
		fprintf(stderr, "qsfs-stor: %s\n", err);
		return 1;
	}
	r = spool_open(D.cfg.stor.state_dir, &D.spool);
	if (r) {
		fprintf(stderr, "qsfs-stor: cannot open the journal in %s: %s\n",
			D.cfg.stor.state_dir, strerror(-r));
		return 1;
	}
	unsigned resumed = 0;
	spool_list(D.spool, spool_cb, &resumed);
	D.min_shards = D.cfg.stor.min_shards;
	if (D.min_shards && (D.min_shards <= D.vol.k || D.min_shards > D.vol.k + D.vol.m)) {
		fprintf(stderr, "qsfs-stor: stor.min_shards %u does not fit this volume (k=%u, "
			"m=%u): give 0 or %u..%u\n", D.min_shards, D.vol.k, D.vol.m, D.vol.k + 1,
			D.vol.k + D.vol.m);
		return 2;
	}
	load_degraded();
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	D.nworkers = D.cfg.stor.workers ? D.cfg.stor.workers : (unsigned)(cores > 0 ? cores : 1);
	if (D.nworkers > MAX_WORKERS)
		D.nworkers = MAX_WORKERS;
	D.workers = calloc(D.nworkers, sizeof *D.workers);
	D.retrievers = calloc(RETRIEVE_CTX, sizeof *D.retrievers);
	for (unsigned i = 0; i < D.nworkers + RETRIEVE_CTX; i++) {
		struct ctx *c = i < D.nworkers ? &D.workers[i] : &D.retrievers[i - D.nworkers];
		if (ctx_open(c, err, sizeof err)) {
			fprintf(stderr, "qsfs-stor: %s\n", err);
			return 1;
		}
	}
	r = catalog_load(&D.retrievers[0].os, &cat, err, sizeof err);
	if (r && r != -ENOENT) {
		fprintf(stderr, "qsfs-stor: %s\n", err);
		return 1;
	}
	atomic_store(&D.cat_hi, cat.seg_hi);
	int lsock = ctlsock_listen(D.cfg.stor.socket, err, sizeof err);
	if (lsock < 0) {
		fprintf(stderr, "qsfs-stor: %s\n", err);
		return 1;
	}
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);	/* inherited by every thread */
	int sfd = signalfd(-1, &sigs, SFD_CLOEXEC);
	pthread_t *th = calloc(D.nworkers, sizeof *th);
	for (unsigned i = 0; i < D.nworkers; i++)
		pthread_create(&th[i], NULL, worker_main, &D.workers[i]);
	struct ctx leasectx;
	if (ctx_open(&leasectx, err, sizeof err)) {
		fprintf(stderr, "qsfs-stor: %s\n", err);
		return 1;
	}
	lease_tick(&leasectx, &(int64_t){ 0 });	/* fenced or not, before the first request */
	pthread_t lease_th;
	bool leasing = pthread_create(&lease_th, NULL, lease_main, &leasectx) == 0;
	struct ctx scrubctx;
	if (ctx_open(&scrubctx, err, sizeof err)) {
		fprintf(stderr, "qsfs-stor: %s\n", err);
		return 1;
	}
	S.finished = (int64_t)time(NULL);	/* the first periodic pass: one interval on */
	check_backend_change();
	if (D.ndegraded) {
		pthread_mutex_lock(&D.mu);
		request_check("objects are marked degraded");
		pthread_mutex_unlock(&D.mu);
	}
	pthread_t scrub_th;
	bool scrubbing = pthread_create(&scrub_th, NULL, scrub_main, &scrubctx) == 0;
	struct backend *probe_b[CONFIG_MAX_BACKENDS];
	for (size_t i = 0; i < D.cfg.stor.nbackends; i++)
		if (backend_open(&D.cfg.stor.backends[i], PROBE_TIMEOUT_MS, &probe_b[i])) {
			fprintf(stderr, "qsfs-stor: out of memory\n");
			return 1;
		}
	pthread_t probe_th;
	bool probing = pthread_create(&probe_th, NULL, probe_main, probe_b) == 0;
	qlog_info("stor: volume %s (%s), k=%u m=%u, %zu backends, %u workers, %u jobs resumed "
		  "from the journal; listening on %s", D.cfg.volume, D.vol.idhex, D.vol.k, D.vol.m,
		  D.cfg.stor.nbackends, D.nworkers, resumed, D.cfg.stor.socket);
	int signals = 0, code = 0;
	uint64_t drain_deadline = 0;
	for (;;) {
		struct pollfd p[2] = { { lsock, POLLIN, 0 }, { sfd, POLLIN, 0 } };
		int n = poll(p, 2, D.draining ? 200 : -1);
		if (n < 0 && errno != EINTR)
			break;
		if (p[1].revents & POLLIN) {
			struct signalfd_siginfo si;
			if (read(sfd, &si, sizeof si) == sizeof si) {
				signals++;
				pthread_mutex_lock(&D.mu);
				D.draining = true;
				unsigned left = D.njobs;
				pthread_mutex_unlock(&D.mu);
				if (signals == 1) {
					qlog_info("stor: %s: finishing %u pending jobs (uploads and "
						  "deletions), then exiting (signal again to exit now)",
						  strsignal((int)si.ssi_signo), left);
					if (D.cfg.stor.drain_timeout)
						drain_deadline = fs_now_ns() +
							(uint64_t)D.cfg.stor.drain_timeout * 1000000000ull;
				} else {
					qlog_warn("stor: second signal: exiting with %u jobs kept in the "
						  "journal for the next start", left);
					code = 1;
					break;
				}
			}
		}
		if (p[0].revents & POLLIN) {
			int cfd = accept4(lsock, NULL, NULL, SOCK_CLOEXEC);
			if (cfd >= 0) {
				pthread_t t;
				pthread_attr_t at;
				pthread_attr_init(&at);
				pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
				if (pthread_create(&t, &at, conn_main, (void *)(intptr_t)cfd))
					close(cfd);
				pthread_attr_destroy(&at);
			}
		}
		if (D.draining) {
			pthread_mutex_lock(&D.mu);
			bool done = D.njobs == 0;
			pthread_mutex_unlock(&D.mu);
			if (done) {
				qlog_info("stor: queue drained, %llu objects stored; exiting",
					  (unsigned long long)D.stored);
				break;
			}
			pthread_mutex_lock(&D.mu);
			bool fenced = D.fenced;
			unsigned kept = D.njobs;
			pthread_mutex_unlock(&D.mu);
			if (fenced) {
				qlog_warn("stor: cannot drain: %s; exiting with %u jobs kept", D.fence_why,
					  kept);
				code = 1;
				break;
			}
			if (drain_deadline && fs_now_ns() >= drain_deadline) {
				pthread_mutex_lock(&D.mu);
				unsigned left = D.njobs;
				pthread_mutex_unlock(&D.mu);
				qlog_warn("stor: drain_timeout (%u s) reached: exiting with %u jobs kept in "
					  "the journal for the next start", D.cfg.stor.drain_timeout, left);
				code = 1;
				break;
			}
		}
	}
	close(lsock);
	unlink(D.cfg.stor.socket);
	if (code)
		_exit(code);	/* workers may be mid-upload: the journal keeps their jobs */
	pthread_mutex_lock(&D.mu);
	D.stop = true;
	pthread_cond_broadcast(&D.work);
	pthread_cond_broadcast(&lease_cv);
	pthread_cond_broadcast(&S.cv);
	pthread_mutex_unlock(&D.mu);
	for (unsigned i = 0; i < D.nworkers; i++)
		pthread_join(th[i], NULL);
	if (scrubbing)
		pthread_join(scrub_th, NULL);
	if (probing)
		pthread_join(probe_th, NULL);
	for (size_t i = 0; i < D.cfg.stor.nbackends; i++)
		backend_close(probe_b[i]);
	ctx_close(&scrubctx);
	free(th);
	if (leasing)
		pthread_join(lease_th, NULL);
	lease_tick(&leasectx, &(int64_t){ 0 });	/* drained: release it if qsfs-fs is gone */
	ctx_close(&leasectx);
	for (unsigned i = 0; i < D.nworkers + RETRIEVE_CTX; i++)
		ctx_close(i < D.nworkers ? &D.workers[i] : &D.retrievers[i - D.nworkers]);
	free(D.workers);
	free(D.retrievers);
	while (D.jobs)
		drop_job(D.jobs);
	free(D.degraded);
	catalog_free(&cat);
	close(sfd);
	close(lfd);
	spool_close(D.spool);
	volume_free(&D.vol);
	health_free(D.health);
	config_free(&D.cfg);
	return 0;
}
