/* stor/volcat.c - see volcat.h */
#include "volcat.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "daemon.h"
#include "queue.h"
#include "../common/qlog.h"

/* Write the catalog out (d->cat_mu held). On success, up to TRIMMED_BATCH ids
 * of checkpoints the window dropped go to trimmed (*ntrimmed of them), to
 * be journaled for deletion once d->cat_mu is released. */
int cat_save(struct stord *d, struct objstore *os, uint64_t *trimmed, size_t *ntrimmed,
	     char *why, size_t whylen)
{
	int r = catalog_store(os, &d->cat, why, whylen);
	d->cat_saved = r == 0;
	if (!r) {
		atomic_store(&d->cat_hi, d->cat.seg_hi);
		pthread_cond_broadcast(&d->work);	/* a checkpoint may go now */
	}
	*ntrimmed = r ? 0 : catalog_take_trimmed(&d->cat, trimmed, TRIMMED_BATCH);
	return r;
}

/* Journal and queue the deletion of checkpoints c<id> (mu and d->cat_mu not
 * held). A failure is logged: the object stays on the backends, unlisted. */
void journal_trimmed(struct stord *d, const uint64_t *ids, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char name[OBJ_NAME_MAX], job[OBJ_NAME_MAX + 8];
		snprintf(name, sizeof name, "c%llu", (unsigned long long)ids[i]);
		snprintf(job, sizeof job, "%s.del", name);
		int r = spool_add_delete(d->spool, name);
		if (!r) {
			pthread_mutex_lock(&d->mu);
			r = queue_job(d, job, 0, (int64_t)time(NULL));
			pthread_mutex_unlock(&d->mu);
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
int catalog_note(struct stord *d, struct objstore *os, const char *name,
		 const uint8_t hdr[CAT_CKPT_HDR], char *why, size_t whylen)
{
	uint32_t kind = name[0] == 'c' ? catalog_ckpt_kind(hdr) : 0;
	if (name[0] == 'c' && !kind)
		kind = CAT_CKPT_DELTA;	/* not a checkpoint we know: never a restore's base */
	uint64_t trimmed[TRIMMED_BATCH];
	size_t ntrimmed = 0;
	pthread_mutex_lock(&d->cat_mu);
	int r = catalog_add(&d->cat, name, kind, catalog_ckpt_upto(hdr));
	if (r >= 0)
		r = cat_save(d, os, trimmed, &ntrimmed, why, whylen);
	else
		snprintf(why, whylen, "%s: cannot add it to the volume catalog: %s", name,
			 strerror(-r));
	pthread_mutex_unlock(&d->cat_mu);
	journal_trimmed(d, trimmed, ntrimmed);
	return r;
}

/* Stored and listed in the catalog (so a fresh node finds it), and no newer
 * contents queued. */
bool is_confirmed(struct stord *d, const char *name)
{
	pthread_mutex_lock(&d->mu);
	bool queued = find_job(d, name) != NULL;
	pthread_mutex_unlock(&d->mu);
	if (queued)
		return false;
	pthread_mutex_lock(&d->cat_mu);
	bool yes = catalog_has(&d->cat, name);
	pthread_mutex_unlock(&d->cat_mu);
	return yes;
}
