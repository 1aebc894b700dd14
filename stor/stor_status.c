/* stor/stor_status.c - see stor_status.h */
#include "stor_status.h"

#include <json-c/json.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "backend.h"
#include "daemon.h"
#include "health.h"
#include "leasekeeper.h"
#include "../common/units.h"

/* The "scrub" and "redundancy" objects into o, and a problem line when
 * the last complete pass found damage. d->mu held. */
static void scrub_status(struct stord *d, json_object *o, json_object *problems)
{
	struct scrub_state *S = &d->scrub;
	json_object *x = json_object_new_object();
	json_object_object_add(x, "running", json_object_new_boolean(S->running));
	json_object_object_add(x, "mode", json_object_new_string(S->mode == OBJ_VERIFY_READ ?
								   "scrub" : "check"));
	json_object_object_add(x, "check_requested", json_object_new_boolean(S->check_requested));
	json_object_object_add(x, "waiting", json_object_new_uint64(S->waiting));
	json_object_object_add(x, "requested", json_object_new_boolean(S->requested));
	json_object_object_add(x, "objects", json_object_new_uint64(S->total));
	json_object_object_add(x, "checked", json_object_new_uint64(S->done));
	json_object_object_add(x, "bytes", json_object_new_uint64(S->bytes));
	json_object_object_add(x, "bad_shards", json_object_new_uint64(S->bad_shards));
	json_object_object_add(x, "repaired", json_object_new_uint64(S->repaired));
	json_object_object_add(x, "failed", json_object_new_uint64(S->failed));
	json_object_object_add(x, "started", json_object_new_int64(S->started));
	json_object_object_add(x, "finished", json_object_new_int64(S->finished));
	json_object_object_add(x, "last_problem", json_object_new_string(S->last_problem));
	json_object_object_add(o, "scrub", x);
	/* redundancy, as of the last complete pass */
	json_object *rd = json_object_new_object(), *sp = json_object_new_object();
	uint64_t degraded = 0;
	for (unsigned i = 0; i <= SCRUB_MAX_SPARE; i++) {
		if (!S->spare[i])
			continue;
		char k[16];
		snprintf(k, sizeof k, "%u", i);
		json_object_object_add(sp, k, json_object_new_uint64(S->spare[i]));
		degraded += S->spare[i];
	}
	json_object_object_add(rd, "as_of", json_object_new_int64(S->completed));
	json_object_object_add(rd, "full", json_object_new_uint64(S->full));
	json_object_object_add(rd, "degraded", json_object_new_uint64(degraded));
	json_object_object_add(rd, "degraded_by_spare_shards", sp);
	json_object_object_add(rd, "unreadable", json_object_new_uint64(S->unreadable));
	json_object_object_add(o, "redundancy", rd);
	char line[1400];
	if (S->completed && (degraded || S->unreadable)) {
		snprintf(line, sizeof line, "the last scrub found %llu objects with lost redundancy "
			 "and %llu unreadable%s%s", (unsigned long long)degraded,
			 (unsigned long long)S->unreadable, S->last_problem[0] ? ": " : "",
			 S->last_problem);
		json_object_array_add(problems, json_object_new_string(line));
	}
}

/* Backend name's room into its object b ("full", "space": the last usage
 * reading, or null when it cannot tell), and a problem line when it is
 * full or nearly full (none while it is down: the down line says enough). */
static void backend_space(json_object *b, const struct health_space *sp, const char *name,
			  bool down, json_object *problems)
{
	json_object_object_add(b, "full", json_object_new_boolean(sp->full));
	json_object *x = NULL;
	if (sp->known) {
		x = json_object_new_object();
		json_object_object_add(x, "used_bytes", json_object_new_uint64(sp->used));
		json_object_object_add(x, "limit_bytes", json_object_new_uint64(sp->limit));
		json_object_object_add(x, "as_of", json_object_new_int64(sp->at));
	}
	json_object_object_add(b, "space", x);
	char line[600], u[32], l[32];
	if (sp->known) {
		format_size(sp->used, u, sizeof u);
		format_size(sp->limit, l, sizeof l);
	}
	if (down) {
		return;
	} else if (sp->full) {
		if (sp->known && sp->limit)
			snprintf(line, sizeof line, "backend %s is full: %s of its %s limit used; no new "
				 "shards or object metadata go there (raise its limit or give it room)",
				 name, u, l);
		else
			snprintf(line, sizeof line, "backend %s is full: %s; no new shards or object "
				 "metadata go there (tried again every %d s)", name, sp->why,
				 HEALTH_FULL_RETRY_S);
		json_object_array_add(problems, json_object_new_string(line));
	} else if (sp->known && sp->limit &&
		   sp->used >= sp->limit / 100 * HEALTH_NEARLY_FULL_PCT +
			       sp->limit % 100 * HEALTH_NEARLY_FULL_PCT / 100) {
		snprintf(line, sizeof line, "backend %s is nearly full: %s of its %s limit used (%llu%%)",
			 name, u, l, (unsigned long long)(sp->used * 100.0 / (double)sp->limit));
		json_object_array_add(problems, json_object_new_string(line));
	}
}

void do_status(struct stord *d, int cfd)
{
	json_object *o = json_object_new_object();
	/* the segments the catalog records lost (d->cat_mu before d->mu) */
	char lostnames[300] = "";
	pthread_mutex_lock(&d->cat_mu);
	size_t nlostsegs = d->cat.nlost;
	for (size_t i = 0, l = 0; i < d->cat.nlost && l + 24 < sizeof lostnames - 8; i++)
		l += (size_t)snprintf(lostnames + l, sizeof lostnames - l, "%ss%llu", i ? ", " : "",
				      (unsigned long long)d->cat.lost[i]);
	if (nlostsegs && strlen(lostnames) + 30 >= sizeof lostnames - 8)
		strcat(lostnames, ", ...");
	pthread_mutex_unlock(&d->cat_mu);
	pthread_mutex_lock(&d->mu);
	unsigned lost_queued = 0;
	for (struct job *j = d->jobs; j; j = j->next)
		lost_queued += j->lost;
	uint64_t bytes = 0;
	int64_t oldest = 0, now = (int64_t)time(NULL);
	for (struct job *j = d->jobs; j; j = j->next) {
		if (j->del || j->lost)
			continue;	/* counted apart */
		bytes += j->size;
		if (!oldest || j->since < oldest)
			oldest = j->since;
	}
	unsigned uploads = d->njobs - d->ndeletes - lost_queued;
	json_object_object_add(o, "volume", json_object_new_string(d->cfg.volume));
	json_object_object_add(o, "volume_id", json_object_new_string(d->vol.idhex));
	json_object_object_add(o, "pending_jobs", json_object_new_int64(uploads));
	json_object_object_add(o, "pending_bytes", json_object_new_int64((int64_t)bytes));
	json_object_object_add(o, "oldest_pending_s",
			       json_object_new_int64(uploads ? now - oldest : 0));
	json_object_object_add(o, "in_flight", json_object_new_int64(d->in_flight));
	json_object_object_add(o, "stored", json_object_new_int64((int64_t)d->stored));
	json_object_object_add(o, "failures", json_object_new_int64((int64_t)d->failures));
	json_object_object_add(o, "last_error", json_object_new_string(d->last_error));
	json_object_object_add(o, "deletes_pending", json_object_new_int64(d->ndeletes));
	json_object_object_add(o, "deleted", json_object_new_int64((int64_t)d->deleted));
	json_object_object_add(o, "delete_failures",
			       json_object_new_int64((int64_t)d->delete_failures));
	json_object_object_add(o, "delete_last_error", json_object_new_string(d->delete_error));
	json_object_object_add(o, "draining", json_object_new_boolean(d->draining));
	json_object *bs = json_object_new_array(), *problems = json_object_new_array();
	char line[1400];
	unsigned down = 0, full = 0;
	for (size_t i = 0; i < d->cfg.stor.nbackends; i++) {
		/* every handle of this backend: the most recent state, errors summed */
		struct backend_health w = { 0 };
		uint64_t errors = 0;
		for (unsigned k = 0; k < d->nworkers + RETRIEVE_CTX; k++) {
			struct ctx *c = k < d->nworkers ? &d->workers[k] : &d->retrievers[k - d->nworkers];
			struct backend_health h = backend_health(c->b[i]);
			errors += h.errors;
			if (h.updated_ns > w.updated_ns)
				w = h;
		}
		struct health_verdict v;
		health_get(d->health, i, &v);
		if (v.down) {	/* the daemon's verdict: no shards go there */
			w.state = BACKEND_DOWN;
			snprintf(w.last_error, sizeof w.last_error, "%s", v.err);
		} else if (v.slow) {	/* reads stopped waiting for it */
			w.state = BACKEND_SLOW;
		} else if (w.state == BACKEND_DOWN) {
			w.state = BACKEND_UP;	/* a probe answered since that error */
		}
		struct health_space sp;
		health_space(d->health, i, &sp);
		json_object *b = json_object_new_object();
		static const char *st[] = { "up", "slow", "down" };
		const char *name = backend_name(d->workers[0].b[i]);
		json_object_object_add(b, "down_since", json_object_new_int64(v.down ? v.since : 0));
		json_object_object_add(b, "slow_since", json_object_new_int64(v.slow ? v.slow_since
										      : 0));
		json_object_object_add(b, "slow_why", json_object_new_string(v.slow_why));
		json_object_object_add(b, "name", json_object_new_string(name));
		json_object_object_add(b, "state", json_object_new_string(
			sp.full && w.state != BACKEND_DOWN ? "full" : st[w.state]));
		backend_space(b, &sp, name, w.state == BACKEND_DOWN, problems);
		full += sp.full && w.state != BACKEND_DOWN;
		json_object_object_add(b, "latency_ms",
				       json_object_new_double((double)w.latency_us / 1000.0));
		json_object_object_add(b, "errors", json_object_new_int64((int64_t)errors));
		json_object_object_add(b, "last_error", json_object_new_string(w.last_error));
		/* all keys of the volume on it, as of the last leak check */
		json_object_object_add(b, "bytes", d->leaks.at && i < d->leaks.nbackends &&
				       d->leaks.listed[i] ? json_object_new_uint64(d->leaks.bytes[i]) : NULL);
		json_object_array_add(bs, b);
		if (w.state != BACKEND_UP) {
			down += w.state == BACKEND_DOWN;
			snprintf(line, sizeof line, "backend %s is %s: %s", name, st[w.state],
				 w.state == BACKEND_DOWN ? w.last_error : v.slow ? v.slow_why
				 : "its last operation took over 0.5 s");
			json_object_array_add(problems, json_object_new_string(line));
		}
	}
	/* usable: may take shards (not down, not full) */
	size_t usable = d->cfg.stor.nbackends - down - full, n = d->vol.k + d->vol.m;
	if (usable < n) {
		char fulls[32] = "";
		if (full)
			snprintf(fulls, sizeof fulls, " (%u full)", full);
		if (d->min_shards && usable >= d->min_shards)
			snprintf(line, sizeof line, "only %zu backends usable for %zu shards%s: objects "
				 "are stored with %zu shards (min_shards %u) and need a repair", usable,
				 n, fulls, usable, d->min_shards);
		else
			snprintf(line, sizeof line, "only %zu backends usable for %zu shards%s: uploads "
				 "wait (the data stays local)%s", usable, n, fulls, down > d->vol.m ?
				 " and objects with shards on the down backends may be unreadable" : "");
		json_object_array_add(problems, json_object_new_string(line));
	}
	json_object_object_add(o, "backends_usable", json_object_new_int64((int64_t)usable));
	json_object_object_add(o, "min_shards", json_object_new_int64(d->min_shards));
	json_object *dg = json_object_new_array();
	for (size_t i = 0; i < d->ndegraded; i++) {
		if (i < 100) {	/* the count says how many in all */
			json_object *x = json_object_new_object();
			json_object_object_add(x, "object", json_object_new_string(d->degraded[i].name));
			json_object_object_add(x, "since", json_object_new_int64(d->degraded[i].since));
			json_object_object_add(x, "why", json_object_new_string(d->degraded[i].why));
			json_object_array_add(dg, x);
		}
	}
	if (d->ndegraded) {
		snprintf(line, sizeof line, "%zu objects have missing or corrupt shards "
			 "and have lost redundancy until repaired (first: %s: %s)", d->ndegraded,
			 d->degraded[0].name, d->degraded[0].why);
		json_object_array_add(problems, json_object_new_string(line));
	}
	if (d->fenced) {
		snprintf(line, sizeof line, "uploads stopped: %s", d->fence_why);
		json_object_array_add(problems, json_object_new_string(line));
	}
	if (*handoffs_text(d, line, sizeof line))
		json_object_array_add(problems, json_object_new_string(line));
	json_object_object_add(o, "handoffs_left", json_object_new_int64((int64_t)d->handoffs_left));
	json_object_object_add(o, "fenced", json_object_new_boolean(d->fenced));
	json_object_object_add(o, "lease", json_object_new_string(d->lease_state ? d->lease_state
										: "unknown"));
	bool failing = false, del_failing = false;
	const struct job *held = NULL;	/* the oldest checkpoint waiting for segments */
	int64_t now_s = (int64_t)time(NULL);
	for (struct job *j = d->jobs; j; j = j->next) {
		failing |= !j->del && j->fails > 0;
		del_failing |= j->del && j->fails > 0;
		if (j->upto > atomic_load(&d->cat_hi) && now_s - j->since >= 60 &&
		    (!held || j->since < held->since))
			held = j;
	}
	if (held) {
		snprintf(line, sizeof line, "checkpoint %s waits for the segments it covers (up to "
			 "s%llu; the backends hold every segment up to s%llu only): a segment "
			 "was never handed off or cannot be uploaded", held->name,
			 (unsigned long long)held->upto,
			 (unsigned long long)atomic_load(&d->cat_hi));
		json_object_array_add(problems, json_object_new_string(line));
	}
	if (failing) {
		snprintf(line, sizeof line, "uploads are failing and being retried: %s",
			 d->last_error);
		json_object_array_add(problems, json_object_new_string(line));
	}
	json_object_object_add(o, "deletes_failing", json_object_new_boolean(del_failing));
	if (del_failing) {
		snprintf(line, sizeof line, "deletions are failing and being retried (%u pending): "
			 "%s", d->ndeletes, d->delete_error);
		json_object_array_add(problems, json_object_new_string(line));
	}
	scrub_status(d, o, problems);
	json_object_object_add(o, "remote_bytes_as_of", json_object_new_int64(d->leaks.at));
	json_object_object_add(o, "leaked_objects", json_object_new_uint64(d->leaks.leaked_objects));
	json_object_object_add(o, "leaked_bytes", json_object_new_uint64(d->leaks.leaked_bytes));
	if (d->leaks.leaked_objects) {
		char sz[32];
		snprintf(line, sizeof line, "%llu objects (%s) on the backends are referenced by "
			 "nothing: qsfs-ctl gc --check --fix removes them",
			 (unsigned long long)d->leaks.leaked_objects,
			 format_size(d->leaks.leaked_bytes, sz, sizeof sz));
		json_object_array_add(problems, json_object_new_string(line));
	}
	json_object_object_add(o, "lost_objects", json_object_new_uint64(d->nlost));
	if (d->nlost) {
		snprintf(line, sizeof line, "DATA LOST: %u acknowledged objects never reached the "
			 "backends (their journal entries and their cache copies vanished): %s. The "
			 "writer lease is kept; once dealt with, remove %s/lost", d->nlost,
			 d->lost_names, d->cfg.stor.state_dir);
		json_object_array_add(problems, json_object_new_string(line));
	}
	json_object_object_add(o, "lost_segments", json_object_new_uint64(nlostsegs + lost_queued));
	if (nlostsegs || lost_queued) {
		snprintf(line, sizeof line, "DATA LOST: %zu segments were lost before they were "
			 "uploaded (their writer lost its copy first)%s%s%s; reads of what they "
			 "held fail with EIO", nlostsegs + lost_queued,
			 nlostsegs ? ": the volume catalog records " : "", lostnames,
			 lost_queued ? " (some not yet recorded in the catalog)" : "");
		json_object_array_add(problems, json_object_new_string(line));
	}
	json_object_object_add(o, "degraded_objects", json_object_new_int64((int64_t)d->ndegraded));
	json_object_object_add(o, "degraded", dg);
	json_object_object_add(o, "state", json_object_new_string(
		json_object_array_length(problems) ? "degraded" : "ok"));
	json_object_object_add(o, "problems", problems);
	json_object_object_add(o, "backends", bs);
	pthread_mutex_unlock(&d->mu);
	dprintf(cfd, "%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
}
