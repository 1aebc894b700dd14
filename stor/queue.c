/* stor/queue.c - see queue.h */
#include "queue.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "daemon.h"
#include "degraded.h"
#include "volcat.h"
#include "../common/fsutil.h"
#include "../common/qlog.h"
#include "../common/storproto.h"

/* The wait before retrying a job that failed fails times: 2 s .. 64 s,
 * in ns. */
/* Note object name as lost (STATE_DIR/lost, and d's count); d->mu not
 * held. */
static void note_lost(struct stord *d, const char *name)
{
	char path[4200];
	snprintf(path, sizeof path, "%s/lost", d->cfg.stor.state_dir);
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	int dfd = open(d->cfg.stor.state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || dprintf(fd, "%s\n", name) < 0 || fsync(fd) < 0 || dfd < 0 ||
	    fs_fsync_dir(dfd) < 0)	/* the file may be new */
		qlog_err("stor: cannot record %s as lost in %s: %s", name, path, strerror(errno));
	if (fd >= 0)
		close(fd);
	if (dfd >= 0)
		close(dfd);
	pthread_mutex_lock(&d->mu);
	d->nlost++;
	size_t l = strlen(d->lost_names);
	if (l + strlen(name) + 3 < sizeof d->lost_names)
		snprintf(d->lost_names + l, sizeof d->lost_names - l, "%s%s", l ? ", " : "", name);
	pthread_mutex_unlock(&d->mu);
}

/* The journal file of upload job name vanished (removed by hand, a broken
 * disk): the job is not dropped in silence. When the cache still holds the
 * object (this host's qsfs-fs cache: seg-N.qseg, ckpt-N.qckp), it is
 * journaled again from there: -EAGAIN, upload it now. Otherwise its data
 * is lost before it reached the backends: recorded (note_lost), logged as
 * an error naming it, and -ENOENT. d->mu not held; blocks on the spool's
 * fsyncs. */
static int journal_vanished(struct stord *d, const char *name)
{
	char kind;
	uint64_t id;
	if (!storproto_object_name(name, &kind, &id))
		return -ENOENT;
	char path[4200];
	snprintf(path, sizeof path, kind == 's' ? "%s/seg-%016llx.qseg" : "%s/ckpt-%016llx.qckp",
		 d->cfg.cache.dir, (unsigned long long)id);
	int r = access(path, R_OK) == 0 ? spool_add(d->spool, name, path) : -errno;
	uint64_t size;
	int fd;
	if (r && (fd = spool_open_job(d->spool, name, &size)) >= 0) {
		close(fd);	/* a new STORE of it came meanwhile (the job's again) */
		return -EAGAIN;
	}
	if (!r) {
		qlog_warn("stor: the journal file of %s vanished from %s/spool; journaled again "
			  "from the cache (%s)", name, d->cfg.stor.state_dir, path);
		return -EAGAIN;
	}
	qlog_err("stor: %s LOST: its journal file vanished from %s/spool and the cache has no "
		 "copy (%s: %s); its data never reached the backends", name,
		 d->cfg.stor.state_dir, path, strerror(-r));
	note_lost(d, name);
	char why[512];
	if (kind == 's' && queue_lost(d, name, why, sizeof why))	/* the catalog passes it */
		qlog_err("stor: %s", why);
	return -ENOENT;
}

void lost_load(struct stord *d)
{
	char path[4200], line[128];
	snprintf(path, sizeof path, "%s/lost", d->cfg.stor.state_dir);
	FILE *f = fopen(path, "re");
	if (!f)
		return;
	while (fgets(line, sizeof line, f)) {
		line[strcspn(line, "\n")] = 0;
		if (!line[0])
			continue;
		d->nlost++;
		size_t l = strlen(d->lost_names);
		if (l + strlen(line) + 3 < sizeof d->lost_names)
			snprintf(d->lost_names + l, sizeof d->lost_names - l, "%s%s", l ? ", " : "",
				 line);
	}
	fclose(f);
	if (d->nlost)
		qlog_err("stor: %u objects were lost before upload (%s): see %s", d->nlost,
			 d->lost_names, path);
}

static uint64_t backoff_ns(unsigned fails)
{
	uint64_t s = 1ull << (fails < 6 ? fails : 6);	/* 2 s .. 64 s */
	return s * 1000000000ull;
}

struct job *find_job(struct stord *d, const char *name)
{
	for (struct job *j = d->jobs; j; j = j->next)
		if (!strcmp(j->name, name))
			return j;
	return NULL;
}

/* Add or refresh a job. mu held. */
int queue_job(struct stord *d, const char *name, uint64_t size, int64_t since)
{
	struct job *j = find_job(d, name);
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
		j->lost = !j->del && spool_is_lost(name, j->obj);
		if (!j->del && !j->lost)
			snprintf(j->obj, sizeof j->obj, "%s", name);
		if (!j->del && !j->lost && name[0] == 'c') {
			uint64_t sz;
			uint8_t hdr[CAT_CKPT_HDR];
			int fd = spool_open_job(d->spool, name, &sz);
			if (fd >= 0 && pread(fd, hdr, sizeof hdr, 0) == (ssize_t)sizeof hdr)
				j->upto = catalog_ckpt_upto(hdr);
			if (fd >= 0)
				close(fd);
		}
		d->ndeletes += j->del;
		j->size = size;
		j->since = since;
		struct job **t = &d->jobs;
		while (*t)
			t = &(*t)->next;
		*t = j;
		d->njobs++;
	}
	pthread_cond_signal(&d->work);
	return 0;
}

void drop_job(struct stord *d, struct job *j)
{
	for (struct job **t = &d->jobs; *t; t = &(*t)->next) {
		if (*t == j) {
			*t = j->next;
			break;
		}
	}
	d->njobs--;
	d->ndeletes -= j->del;
	free(j);
}

/* mu held */
bool job_of(struct stord *d, const char *name)
{
	char del[OBJ_NAME_MAX + 8], lost[OBJ_NAME_MAX + 8];
	snprintf(del, sizeof del, "%s.del", name);
	snprintf(lost, sizeof lost, "%s.lost", name);
	return find_job(d, name) || find_job(d, del) || find_job(d, lost);
}

int queue_lost(struct stord *d, const char *name, char *why, size_t whylen)
{
	char job[OBJ_NAME_MAX + 8];
	snprintf(job, sizeof job, "%s.lost", name);
	int r = spool_add_lost(d->spool, name);
	if (r) {
		snprintf(why, whylen, "cannot journal the loss of %s in %s/spool: %s", name,
			 d->cfg.stor.state_dir, strerror(-r));
		return r;
	}
	pthread_mutex_lock(&d->mu);
	r = queue_job(d, job, 0, (int64_t)time(NULL));
	pthread_mutex_unlock(&d->mu);
	if (r)
		snprintf(why, whylen, "cannot queue the loss of %s: %s", name, strerror(-r));
	return r;
}

/* Record segment obj (a job NAME.lost) as lost in the catalog and write it
 * out, so that seg_hi passes it and the checkpoints after it may go.
 * Returns 0 when done (also when the catalog has it stored after all: then
 * nothing was lost), else a negative errno with why (retried). mu not
 * held; takes d->cat_mu. */
static int run_lost(struct ctx *c, const char *obj, char *why, size_t whylen)
{
	struct stord *d = c->d;
	uint64_t trimmed[TRIMMED_BATCH];
	size_t ntrimmed = 0;
	pthread_mutex_lock(&d->cat_mu);
	int r = catalog_lose(&d->cat, obj);
	if (r == -EEXIST) {
		qlog_warn("stor: %s was reported lost, but the catalog has it stored: nothing "
			  "was lost", obj);
		r = 0;
	} else if (r < 0) {
		snprintf(why, whylen, "%s: cannot record its loss in the volume catalog: %s", obj,
			 strerror(-r));
	} else if (r == 1 || !d->cat_saved) {
		r = cat_save(d, &c->os, trimmed, &ntrimmed, why, whylen);
	}
	pthread_mutex_unlock(&d->cat_mu);
	journal_trimmed(d, trimmed, ntrimmed);
	return r;
}

/* The deletion of object obj (a job NAME.del): a segment leaves the catalog
 * first (so scrub and restores stop looking for it), then its keys leave
 * the backends; a checkpoint only once the catalog the backends hold no
 * longer lists it. Returns 0 when done, else a negative errno with why
 * (the job is retried). mu not held. */
static int run_delete(struct ctx *c, const char *obj, char *why, size_t whylen)
{
	struct stord *d = c->d;
	uint64_t trimmed[TRIMMED_BATCH];
	size_t ntrimmed = 0;
	int r = 0;
	pthread_mutex_lock(&d->cat_mu);
	if (obj[0] == 's') {
		r = catalog_remove(&d->cat, obj);
		if (r < 0)
			snprintf(why, whylen, "%s: cannot remove it from the volume catalog: %s",
				 obj, strerror(-r));
		else if (r == 1 || !d->cat_saved)
			r = cat_save(d, &c->os, trimmed, &ntrimmed, why, whylen);
	} else if (catalog_lists(&d->cat, obj)) {
		snprintf(why, whylen, "%s: still in the catalog's checkpoint window (a restore may "
			 "need it): not deleted", obj);
		r = -EBUSY;
	} else if (!d->cat_saved) {
		snprintf(why, whylen, "%s: the volume catalog's last write failed, so the backends "
			 "may still list it: deleted once the catalog is written", obj);
		r = -EAGAIN;
	}
	pthread_mutex_unlock(&d->cat_mu);
	journal_trimmed(d, trimmed, ntrimmed);
	if (r < 0)
		return r;
	/* the catalog no longer lists it, so a pass that starts on it now
	 * skips it; one already on it is waited for */
	pthread_mutex_lock(&d->mu);
	bool busy = !strcmp(d->scrubbing, obj);
	pthread_mutex_unlock(&d->mu);
	if (busy) {
		snprintf(why, whylen, "%s: a scrub pass is checking it", obj);
		return -EINPROGRESS;
	}
	return obj_delete(&c->os, obj, why, whylen);
}

/* A deletion attempt of job j ended with r (why). mu held. */
static void delete_done(struct stord *d, struct job *j, int r, const char *why)
{
	j->busy = false;
	if (!r && j->again) {
		j->again = false;	/* asked again meanwhile: once more */
	} else if (!r) {
		int e = spool_done(d->spool, j->name);
		if (e)
			qlog_err("stor: %s deleted but its journal entry cannot be removed: %s",
				 j->obj, strerror(-e));
		d->deleted++;
		qlog_debug("stor: %s deleted", j->obj);
		drop_job(d, j);
		if (!d->njobs)
			pthread_cond_broadcast(&d->lease_cv);
	} else if (r == -EINPROGRESS) {
		j->next_ns = fs_now_ns() + 200000000ull;	/* soon: not a failure */
	} else {
		j->fails++;
		d->delete_failures++;
		j->next_ns = fs_now_ns() + backoff_ns(j->fails);
		snprintf(d->delete_error, sizeof d->delete_error, "%s", why);
		qlog_warn("stor: deletion of %s failed (attempt %u, next in %llu s): %s", j->obj,
			  j->fails, (unsigned long long)(backoff_ns(j->fails) / 1000000000ull), why);
	}
	pthread_cond_broadcast(&d->changed);
}

/* The recording of a loss (job j) ended with r (why). mu held. */
static void lost_done(struct stord *d, struct job *j, int r, const char *why)
{
	j->busy = false;
	if (!r) {
		int e = spool_done(d->spool, j->name);
		if (e)
			qlog_err("stor: the loss of %s is in the catalog but its journal entry "
				 "cannot be removed: %s", j->obj, strerror(-e));
		qlog_info("stor: the volume catalog records %s as lost", j->obj);
		drop_job(d, j);
		if (!d->njobs)
			pthread_cond_broadcast(&d->lease_cv);
	} else {
		j->fails++;
		j->next_ns = fs_now_ns() + backoff_ns(j->fails);
		snprintf(d->last_error, sizeof d->last_error, "%s", why);
		qlog_warn("stor: recording the loss of %s failed (attempt %u, next in %llu s): %s",
			  j->obj, j->fails,
			  (unsigned long long)(backoff_ns(j->fails) / 1000000000ull), why);
	}
	pthread_cond_broadcast(&d->changed);
}

void *worker_main(void *arg)
{
	struct ctx *c = arg;
	struct stord *d = c->d;
	/* Uploads are background work: this thread (and the shard writers it
	 * starts, which inherit it) yields the CPU to the filesystem. Linux
	 * applies PRIO_PROCESS with a thread id to that thread only. */
	if (d->cfg.stor.upload_nice) {	/* relative to the daemon's own nice */
		errno = 0;
		int base = getpriority(PRIO_PROCESS, (id_t)gettid());
		int want = (errno ? 0 : base) + (int)d->cfg.stor.upload_nice;
		if (want > 19)
			want = 19;
		if (setpriority(PRIO_PROCESS, (id_t)gettid(), want) < 0)
			qlog_warn("stor: cannot lower the upload threads' priority to nice %d: %s",
				  want, strerror(errno));
	}
	pthread_mutex_lock(&d->mu);
	while (!d->stop) {
		uint64_t now = fs_now_ns(), wake = now + 1000000000ull;
		struct job *j = NULL;
		for (struct job *t = d->fenced ? NULL : d->jobs; t && !j; t = t->next) {
			if (t->busy || (t->del && find_job(d, t->obj)))
				continue;	/* an upload of it goes first */
			if (!strcmp(t->obj, d->leak_claim))
				continue;	/* a leak fix is on it (woken after) */
			if (t->upto > atomic_load(&d->cat_hi))
				continue;	/* its segments first (the catalog wakes us) */
			if (t->next_ns <= now)
				j = t;
			else if (t->next_ns < wake)
				wake = t->next_ns;
		}
		if (!j) {
			struct timespec ts = fs_abstime(wake - now);
			pthread_cond_timedwait(&d->work, &d->mu, &ts);
			continue;
		}
		j->busy = true;
		if (j->lost || j->del) {	/* a marker job: no object file */
			bool lost = j->lost;
			char obj[OBJ_NAME_MAX];
			snprintf(obj, sizeof obj, "%s", j->obj);
			pthread_mutex_unlock(&d->mu);
			char why[1024] = "";
			int r = lost ? run_lost(c, obj, why, sizeof why)
				     : run_delete(c, obj, why, sizeof why);
			pthread_mutex_lock(&d->mu);
			if (lost)
				lost_done(d, j, r, why);
			else
				delete_done(d, j, r, why);
			continue;
		}
		d->in_flight++;
		char name[OBJ_NAME_MAX];
		snprintf(name, sizeof name, "%s", j->name);
		pthread_mutex_unlock(&d->mu);

		char why[1024] = "", damage[1024] = "";
		uint64_t id, size = 0;
		int r = object_name_parse(name, &id);
		int fd = r ? r : spool_open_job(d->spool, name, &size);
		bool rejournaled = false;
		if (fd >= 0) {
			uint8_t hdr[CAT_CKPT_HDR] = { 0 };
			if (pread(fd, hdr, sizeof hdr, 0) < 0)
				memset(hdr, 0, sizeof hdr);
			r = obj_put(&c->os, c->codec, name, id, fd, size, why, sizeof why, damage,
				    sizeof damage);
			close(fd);
			if (!r)
				r = catalog_note(d, &c->os, name, hdr, why, sizeof why);
			if (!r && damage[0])	/* stored with min_shards: repair it later */
				note_damage(d, name, damage);
		} else {
			r = fd;
			snprintf(why, sizeof why, "%s: its journal file cannot be read: %s", name,
				 strerror(-fd));
			if (fd == -ENOENT) {
				r = journal_vanished(d, name);
				rejournaled = r == -EAGAIN;
			}
		}

		pthread_mutex_lock(&d->mu);
		d->in_flight--;
		j->busy = false;
		if (!r && j->again) {
			j->again = false;	/* upload the new contents too */
		} else if (!r) {
			int e = spool_done(d->spool, name);
			if (e)
				qlog_err("stor: %s uploaded but its journal entry cannot be removed: %s",
					 name, strerror(-e));
			d->stored++;
			drop_job(d, j);
			if (!d->njobs)
				pthread_cond_broadcast(&d->lease_cv);	/* release it now? */
			qlog_debug("stor: %s stored", name);
		} else if (rejournaled) {
			j->next_ns = 0;	/* journaled again from the cache: now */
		} else if (fd == -ENOENT) {
			drop_job(d, j);	/* lost: journal_vanished said so, loudly */
			if (!d->njobs)
				pthread_cond_broadcast(&d->lease_cv);
		} else {
			j->fails++;
			d->failures++;
			j->next_ns = fs_now_ns() + backoff_ns(j->fails);
			snprintf(d->last_error, sizeof d->last_error, "%s", why);
			qlog_warn("stor: upload of %s failed (attempt %u, next in %llu s): %s", name,
				  j->fails, (unsigned long long)(backoff_ns(j->fails) / 1000000000ull),
				  why);
		}
		pthread_cond_broadcast(&d->changed);
	}
	pthread_mutex_unlock(&d->mu);
	return NULL;
}

/* What spool_cb is given: the daemon, and the jobs queued so far. */
struct resume {
	struct stord *d;
	unsigned n;
};

/* spool_list's callback at start: queue the job and count it. */
static void spool_cb(void *arg, const char *name, uint64_t size, int64_t mtime)
{
	struct resume *rs = arg;
	queue_job(rs->d, name, size, mtime);
	rs->n++;
}

unsigned queue_resume(struct stord *d)
{
	struct resume rs = { d, 0 };
	spool_list(d->spool, spool_cb, &rs);
	return rs.n;
}
