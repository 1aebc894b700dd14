/* stor/scrub.c - see scrub.h */
#include "scrub.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "daemon.h"
#include "degraded.h"
#include "head.h"
#include "volcat.h"
#include "leaks.h"
#include "queue.h"
#include "../common/fsutil.h"
#include "../common/qlog.h"

#define CHECK_DEGRADED_S 30	/* degraded objects, all backends up: a check this often */

/* obj_verify's throttle (arg: the daemon): sleep so that the pass reads
 * stor.scrub_rate bytes a second. Scrub thread only; no lock. */
static void scrub_throttle(void *arg, size_t n)
{
	struct stord *d = arg;
	struct scrub_state *S = &d->scrub;
	S->rate_bytes += n;
	uint64_t rate = d->cfg.stor.scrub_rate ? d->cfg.stor.scrub_rate : 1;
	uint64_t due_ns = S->t0_ns + S->rate_bytes * 1000000000ull / rate, now = fs_now_ns();
	if (due_ns > now) {
		uint64_t ns = due_ns - now;
		nanosleep(&(struct timespec){ (time_t)(ns / 1000000000ull),
					      (long)(ns % 1000000000ull) }, NULL);
	}
}

void request_check(struct stord *d, const char *why)
{
	struct scrub_state *S = &d->scrub;
	if (!S->check_requested && why)
		qlog_info("stor: %s: checking every object's shards", why);
	S->check_requested = true;
	S->check_periodic = false;	/* asked for: a full report */
	pthread_cond_broadcast(&S->cv);
}

/* The names the catalog lists now (removed segments are not): a calloc'd
 * array of *n. Takes d->cat_mu (not held). */
static char (*scrub_names(struct stord *d, size_t *n))[OBJ_NAME_MAX]
{
	pthread_mutex_lock(&d->cat_mu);
	size_t cnt = d->cat.seg_hi + d->cat.nextra + d->cat.nck;
	char (*v)[OBJ_NAME_MAX] = calloc(cnt ? cnt : 1, OBJ_NAME_MAX);
	size_t k = 0;
	for (uint64_t id = 1; v && id <= d->cat.seg_hi; id++)
		if (!catalog_removed(&d->cat, id) && !catalog_lost(&d->cat, id))	/* nothing to check */
			snprintf(v[k++], OBJ_NAME_MAX, "s%llu", (unsigned long long)id);
	for (size_t i = 0; v && i < d->cat.nextra; i++)
		if (!catalog_removed(&d->cat, d->cat.extra[i]) &&
		    !catalog_lost(&d->cat, d->cat.extra[i]))
			snprintf(v[k++], OBJ_NAME_MAX, "s%llu", (unsigned long long)d->cat.extra[i]);
	for (size_t i = 0; v && i < d->cat.nck; i++)
		snprintf(v[k++], OBJ_NAME_MAX, "c%llu", (unsigned long long)d->cat.ck[i].id);
	pthread_mutex_unlock(&d->cat_mu);
	*n = v ? k : 0;
	return v;
}

/* Check (and repair) object name as mode says, and count the result in
 * S-> Blocks on the backends; takes d->mu (not held). */
static void scrub_one(struct ctx *c, const char *name, enum obj_verify_mode mode)
{
	struct stord *d = c->d;
	struct scrub_state *S = &d->scrub;
	struct obj_check ck;
	char why[2048];
	uint64_t id;
	object_name_parse(name, &id);
	/* an object marked degraded (maybe by a checksum a read saw fail) is
	 * read in full even by a check: only that clears the mark */
	pthread_mutex_lock(&d->mu);
	for (size_t i = 0; i < d->ndegraded && mode != OBJ_VERIFY_READ; i++)
		if (!strcmp(d->degraded[i].name, name))
			mode = OBJ_VERIFY_READ;
	pthread_mutex_unlock(&d->mu);
	int r = obj_verify(&c->os, name, mode, mode == OBJ_VERIFY_READ ? scrub_throttle : NULL,
			   d, &ck, why, sizeof why);
	bool need = !r && ck.bad_mask, wait = false;
	unsigned good = r ? 0 : ck.good;
	size_t usable = ck.meta_usable;
	if (need && ck.good >= ck.k && usable < ck.k + ck.m) {
		/* a repair must place every shard: wait for backends */
		snprintf(why, sizeof why, "%s: %s; not repaired yet: only %zu backends usable, "
			 "%u needed", name, ck.damage, usable, ck.k + ck.m);
		note_damage(d, name, ck.damage);
		wait = true;
	} else if (need && ck.good >= ck.k) {
		r = obj_repair(&c->os, c->codec, name, id, d->cfg.stor.state_dir, why, sizeof why);
		if (!r) {
			qlog_info("stor: %s repaired (%s)", name, ck.damage);
			note_damage(d, name, "");
			good = ck.k + ck.m;
		} else {
			qlog_err("stor: %s cannot be repaired: %s", name, why);
			note_damage(d, name, ck.damage);
		}
	} else if (need) {
		/* Fewer than k shards match the metadata's lengths and checksums,
		 * yet they may all be there under the wrong keys (swapped between
		 * keys or backends: a read still decodes them, each fragment
		 * carries its index). Only a full decode tells: if it works, the
		 * repair stores the object whole again; if it cannot be placed
		 * yet (too few backends usable) it waits; else it is unreadable. */
		char rwhy[1024];
		r = obj_repair(&c->os, c->codec, name, id, d->cfg.stor.state_dir, rwhy, sizeof rwhy);
		if (!r) {
			qlog_info("stor: %s repaired: only %u of %u shards matched its metadata, but "
				  "they decode (%s)", name, ck.good, ck.k + ck.m, ck.damage);
			note_damage(d, name, "");
			good = ck.k + ck.m;
		} else if (r == -EAGAIN) {	/* decoded; the store found too few backends */
			snprintf(why, sizeof why, "%s: %.800s; readable, not repaired yet: %.800s",
				 name, ck.damage, rwhy);
			note_damage(d, name, ck.damage);
			good = ck.k;
			wait = true;
			r = 0;
		} else {
			snprintf(why, sizeof why, "%s: only %u of %u shards are good, %u needed, and "
				 "they do not decode (%.800s): %.800s", name, ck.good, ck.k + ck.m,
				 ck.k, rwhy, ck.damage);
			r = -EIO;
		}
	} else if (r) {
		qlog_err("stor: scrub: %s", why);
	} else {
		if (ck.meta_current < usable) {	/* shards whole, metadata copies missing */
			int e = obj_sync_meta(&c->os, name, why, sizeof why);
			if (e)
				qlog_warn("stor: %s", why);
		}
		note_damage(d, name, "");
	}
	pthread_mutex_lock(&d->mu);
	S->done++;
	S->bytes += r ? 0 : ck.bytes;
	S->bad_shards += (uint64_t)__builtin_popcount(ck.bad_mask);
	if (need && !r && !wait)
		S->repaired++;
	S->waiting += wait;
	if (r || wait)
		snprintf(S->last_problem, sizeof S->last_problem, "%.1100s", why);
	if (r)
		S->failed++;
	if (good >= ck.k + ck.m && ck.k)
		S->cur_full++;
	else if (ck.k && good >= ck.k)
		S->cur_spare[good - ck.k > SCRUB_MAX_SPARE ? SCRUB_MAX_SPARE : good - ck.k]++;
	else
		S->cur_unreadable++;
	pthread_mutex_unlock(&d->mu);
}

bool scrub_request(struct stord *d)
{
	struct scrub_state *S = &d->scrub;
	pthread_mutex_lock(&d->mu);
	bool already = S->running || S->requested;
	S->requested = true;
	pthread_cond_broadcast(&S->cv);
	pthread_mutex_unlock(&d->mu);
	return already;
}

/* --- the leak check (leaks.h): the daemon's side ---------------------------------
 *
 * The hooks of struct leak_hooks, arg the daemon: each takes and drops
 * d->mu or d->cat_mu itself, and none blocks on the network. */

static int leak_catalog_copy(void *arg, struct catalog *out)
{
	struct stord *d = arg;
	pthread_mutex_lock(&d->cat_mu);
	int r = catalog_dup(&d->cat, out);
	pthread_mutex_unlock(&d->cat_mu);
	return r;
}

static int leak_ref_now(void *arg, const char *name)
{
	struct stord *d = arg;
	pthread_mutex_lock(&d->cat_mu);
	int r = (int)leak_catalog_ref(&d->cat, name);
	pthread_mutex_unlock(&d->cat_mu);
	return r;
}

static char (*leak_jobs(void *arg, size_t *n))[OBJ_NAME_MAX]
{
	struct stord *d = arg;
	pthread_mutex_lock(&d->mu);
	char (*v)[OBJ_NAME_MAX] = calloc(d->njobs ? d->njobs : 1, OBJ_NAME_MAX);
	size_t k = 0;
	for (struct job *j = d->jobs; v && j; j = j->next)
		memcpy(v[k++], j->obj, OBJ_NAME_MAX);
	pthread_mutex_unlock(&d->mu);
	*n = k;
	return v;
}

static bool leak_job_now(void *arg, const char *name)
{
	struct stord *d = arg;
	pthread_mutex_lock(&d->mu);
	bool r = job_of(d, name);
	pthread_mutex_unlock(&d->mu);
	return r;
}

static bool leak_claim(void *arg, const char *name)
{
	struct stord *d = arg;
	pthread_mutex_lock(&d->mu);
	bool ok = !d->fenced && !job_of(d, name) && strcmp(d->scrubbing, name);
	if (ok)
		snprintf(d->leak_claim, sizeof d->leak_claim, "%s", name);
	pthread_mutex_unlock(&d->mu);
	return ok;
}

static void leak_release(void *arg, const char *name)
{
	struct stord *d = arg;
	(void)name;
	pthread_mutex_lock(&d->mu);
	d->leak_claim[0] = 0;
	pthread_cond_broadcast(&d->work);
	pthread_cond_broadcast(&d->changed);
	pthread_mutex_unlock(&d->mu);
}

/* Run a leak check (fix: and remove what it finds) with c's handles; keep
 * its numbers for STATUS. *out (if not NULL) gets the report. */
int leak_check_run(struct ctx *c, bool fix, json_object **out)
{
	struct stord *d = c->d;
	const struct leak_hooks hooks = {
		.arg = d,
		.catalog_copy = leak_catalog_copy, .catalog_ref_now = leak_ref_now,
		.jobs = leak_jobs, .job_now = leak_job_now, .claim = leak_claim,
		.release = leak_release,
	};
	pthread_mutex_lock(&d->leak_mu);
	pthread_mutex_lock(&d->mu);
	bool fenced = d->fenced;
	pthread_mutex_unlock(&d->mu);
	json_object *rep = NULL;
	struct leak_totals tot;
	int r = fenced ? -EPERM : leak_check(&c->os, &hooks, fix, &rep, &tot);
	if (!r) {
		pthread_mutex_lock(&d->mu);
		d->leaks = tot;
		pthread_mutex_unlock(&d->mu);
		qlog_info("stor: leak check%s: %llu objects (%llu bytes) referenced by nothing "
			  "left on the backends", fix ? " and fix" : "",
			  (unsigned long long)tot.leaked_objects, (unsigned long long)tot.leaked_bytes);
	}
	pthread_mutex_unlock(&d->leak_mu);
	if (out)
		*out = rep;
	else
		json_object_put(rep);
	return r;
}

/* The volume's small replicated records on every usable backend, after a
 * complete pass: the head (head_repair) and the catalog (written again: a
 * write goes to every backend, so one wiped or replaced gets it back). The
 * lease needs nothing: its holder rewrites it every renewal. A fenced node
 * writes nothing (its catalog is not the volume's). Blocks on the
 * backends; takes d->mu, then d->cat_mu (neither held). */
static void repair_records(struct ctx *c)
{
	struct stord *d = c->d;
	pthread_mutex_lock(&d->mu);
	bool fenced = d->fenced;
	pthread_mutex_unlock(&d->mu);
	if (fenced)
		return;
	char why[1024];
	int r = head_repair(&d->cfg, c->b, d->cfg.stor.nbackends, &d->vol, why, sizeof why);
	if (r > 0)
		qlog_info("stor: the volume head was missing on %d backends: copied there", r);
	else if (r == -EEXIST)
		qlog_warn("stor: %s; left as it is", why);
	else if (r < 0)
		qlog_warn("stor: the volume head cannot be repaired: %s",
			  r == -ENOENT ? "no backend answering holds a copy" : strerror(-r));
	/* the catalog: written again only where a usable backend lacks it (a
	 * rewrite on every pass could, in the moment after a move of the
	 * lease, put this node's older catalog over the new writer's) */
	char key[64];
	snprintf(key, sizeof key, "%s/catalog", d->vol.idhex);
	bool lacking = false;
	for (size_t i = 0; i < d->cfg.stor.nbackends && !lacking; i++)
		lacking = health_usable(d->health, i) && backend_exists(c->b[i], key) == 0;
	if (!lacking)
		return;
	uint64_t trimmed[TRIMMED_BATCH];
	size_t ntrimmed = 0;
	pthread_mutex_lock(&d->mu);
	fenced = d->fenced;	/* again, just before the write */
	pthread_mutex_unlock(&d->mu);
	if (fenced)
		return;
	qlog_info("stor: the volume catalog is missing on a backend: written again");
	pthread_mutex_lock(&d->cat_mu);
	r = cat_save(d, &c->os, trimmed, &ntrimmed, why, sizeof why);
	pthread_mutex_unlock(&d->cat_mu);
	journal_trimmed(d, trimmed, ntrimmed);
	if (r)
		qlog_warn("stor: the volume catalog cannot be written again after a pass: %s", why);
}

void *scrub_main(void *arg)
{
	struct ctx *c = arg;
	struct stord *d = c->d;
	struct scrub_state *S = &d->scrub;
	pthread_mutex_lock(&d->mu);
	while (!d->stop) {
		if (!S->requested && !S->check_requested) {
			struct timespec ts = fs_abstime(5 * 1000000000ull);
			pthread_cond_timedwait(&S->cv, &d->mu, &ts);
			int64_t now = (int64_t)time(NULL);
			/* from the last scrub: the checks in between read nothing */
			if (d->cfg.stor.scrub_interval && S->scrubbed &&
			    now - S->scrubbed >= (int64_t)d->cfg.stor.scrub_interval)
				S->requested = true;
			/* since the last pass of any kind (finished is set at
			 * the start too) */
			if (d->cfg.stor.check_interval && S->finished && !S->check_requested &&
			    now - S->finished >= (int64_t)d->cfg.stor.check_interval) {
				S->check_requested = S->check_periodic = true;	/* quiet */
				continue;
			}
			if (d->ndegraded && !health_down(d->health) &&
			    now - S->finished >= CHECK_DEGRADED_S)
				request_check(d, NULL);	/* objects degraded, every backend up */
			continue;
		}
		S->mode = S->requested ? OBJ_VERIFY_READ : OBJ_VERIFY_EXISTS;
		/* a periodic check: logged only when it finds something, and no
		 * leak check after it (that lists every key of every backend) */
		bool periodic = S->mode == OBJ_VERIFY_EXISTS && S->check_periodic;
		S->check_periodic = false;
		S->requested = false;
		S->check_requested = false;	/* a scrub checks everything too */
		S->running = true;
		S->started = (int64_t)time(NULL);
		S->done = S->bytes = S->bad_shards = S->repaired = S->failed = S->waiting = 0;
		S->cur_full = S->cur_unreadable = 0;
		memset(S->cur_spare, 0, sizeof S->cur_spare);
		S->last_problem[0] = 0;
		enum obj_verify_mode mode = S->mode;
		pthread_mutex_unlock(&d->mu);
		size_t n;
		char (*names)[OBJ_NAME_MAX] = scrub_names(d, &n);
		pthread_mutex_lock(&d->mu);
		S->total = n;
		pthread_mutex_unlock(&d->mu);
		const char *what = mode == OBJ_VERIFY_READ ? "scrub" : "check";
		if (periodic)
			qlog_debug("stor: %s: %zu objects (every stor.check_interval)", what, n);
		else
			qlog_info("stor: %s: %zu objects", what, n);
		S->t0_ns = fs_now_ns();
		S->rate_bytes = 0;
		size_t i = 0;
		for (; i < n; i++) {
			pthread_mutex_lock(&d->mu);
			bool stop = d->stop;
			pthread_mutex_unlock(&d->mu);
			if (stop)
				break;
			/* a deletion waits while the pass is on its object, and
			 * the pass skips what the catalog stopped listing */
			pthread_mutex_lock(&d->mu);
			while (!strcmp(d->leak_claim, names[i]) && !d->stop)
				pthread_cond_wait(&d->changed, &d->mu);	/* a leak fix on it */
			snprintf(d->scrubbing, sizeof d->scrubbing, "%s", names[i]);
			pthread_mutex_unlock(&d->mu);
			pthread_mutex_lock(&d->cat_mu);
			bool listed = catalog_lists(&d->cat, names[i]);
			pthread_mutex_unlock(&d->cat_mu);
			if (listed) {
				scrub_one(c, names[i], mode);
			} else {
				pthread_mutex_lock(&d->mu);
				S->done++;
				pthread_mutex_unlock(&d->mu);
			}
			pthread_mutex_lock(&d->mu);
			d->scrubbing[0] = 0;
			pthread_mutex_unlock(&d->mu);
		}
		free(names);
		if (i == n) {
			forget_unlisted(d);
			repair_records(c);
			/* the remote bytes, for STATUS: it lists every key on
			 * every backend, so after a scrub (or a check asked for),
			 * not after each periodic check */
			if (mode == OBJ_VERIFY_READ || !periodic)
				leak_check_run(c, false, NULL);
		}
		pthread_mutex_lock(&d->mu);
		S->running = false;
		if (i == n) {	/* a complete pass: its counts are the redundancy */
			S->finished = S->completed = (int64_t)time(NULL);
			if (mode == OBJ_VERIFY_READ)
				S->scrubbed = S->finished;
			S->full = S->cur_full;
			S->unreadable = S->cur_unreadable;
			memcpy(S->spare, S->cur_spare, sizeof S->spare);
			qlog(periodic && !S->bad_shards && !S->failed && !S->waiting ? QLOG_DEBUG
			     : QLOG_INFO, "stor: %s: %llu objects checked, %llu bad shards, %llu "
			     "objects repaired, %llu waiting for backends, %llu failed", what,
				  (unsigned long long)S->done, (unsigned long long)S->bad_shards,
				  (unsigned long long)S->repaired, (unsigned long long)S->waiting,
				  (unsigned long long)S->failed);
		}
		pthread_cond_broadcast(&d->changed);
	}
	pthread_mutex_unlock(&d->mu);
	return NULL;
}

/* Compare the configured backends with those of the last start
 * (state_dir/backends): after a change (one replaced, added, removed) every
 * object is checked, and shards on a backend that is gone are rebuilt on
 * the configured ones. */
#define BACKENDS_FILE "backends"

void check_backend_change(struct stord *d)
{
	size_t cap = 1, len = 0;
	for (size_t i = 0; i < d->cfg.stor.nbackends; i++)
		cap += strlen(d->cfg.stor.backends[i].display) + 1;
	char *now = malloc(cap);
	if (!now)
		return;
	for (size_t i = 0; i < d->cfg.stor.nbackends; i++)
		len += (size_t)snprintf(now + len, cap - len, "%s\n",
					d->cfg.stor.backends[i].display);
	int dfd = open(d->cfg.stor.state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
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
		pthread_mutex_lock(&d->mu);
		request_check(d, "the configured backends changed since the last start");
		pthread_mutex_unlock(&d->mu);
	}
	r = dfd < 0 ? r : fs_write_atomic(dfd, BACKENDS_FILE, now, len, 0600);
	if (r)
		qlog_warn("stor: cannot save %s/%s: %s", d->cfg.stor.state_dir, BACKENDS_FILE,
			  strerror(-r));
	if (dfd >= 0)
		close(dfd);
	free(old);
	free(now);
}
