/* stor/leasekeeper.c - see leasekeeper.h */
#include "leasekeeper.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "daemon.h"
#include "lease.h"
#include "../cache/cache.h"
#include "../common/fsutil.h"
#include "../common/qlog.h"

/* What lease_tick last learnt of the hand-offs a stopped qsfs-fs left, as
 * one sentence into buf ("" when none). d->mu held. */
const char *handoffs_text(struct stord *d, char *buf, size_t len)
{
	if (d->handoffs_err)
		snprintf(buf, len, "cannot read what %s still has to hand off (%s): the writer "
			 "lease is kept", d->cfg.cache.dir, strerror(-d->handoffs_err));
	else if (d->handoffs_left)
		snprintf(buf, len, "qsfs-fs stopped with %" PRIu64 " segments not handed off "
			 "(first s%" PRIu64 "); they are only on this node, so the writer lease "
			 "is kept until the next qsfs-fs (or qsfs-wait-hooks, for sealed ones) "
			 "hands them off", d->handoffs_left, d->handoffs_first);
	else
		buf[0] = 0;
	return buf;
}

/* The STATUS word for lease state s. */
static const char *status_word(enum lease_state s)
{
	switch (s) {
	case LEASE_ST_NONE:
		return "none";
	case LEASE_ST_MOUNTED:
		return "mounted";
	case LEASE_ST_RELEASED:
		return "released";
	case LEASE_ST_STOPPING:
	case LEASE_ST_UNHANDED:
		return "stopping";
	default:
		return "other";
	}
}

void lease_tick(struct ctx *c, int64_t *last_beat)
{
	struct stord *d = c->d;
	uint8_t me[LEASE_ID_SIZE];
	bool have_me = lease_holder_id(d->cfg.cache.dir, false, me) == 0;
	struct lease l;
	char why[700];
	int r = lease_read(&c->os, &l, why, sizeof why);
	if (r && r != -ENOENT) {
		qlog_debug("stor: %s", why);
		return;
	}
	int64_t now = (int64_t)time(NULL);
	enum lease_state s = lease_classify(r ? NULL : &l, have_me ? me : NULL, now), next;
	enum lease_action act;
	pthread_mutex_lock(&d->mu);
	/* objects lost before upload keep the lease too: releasing it would
	 * say this node handed everything over */
	unsigned njobs = d->njobs + d->in_flight + d->nlost;
	next = lease_next(s, njobs ? LEASE_EV_JOBS : LEASE_EV_EMPTY, &act);
	bool was = d->fenced;
	d->fenced = act == LEASE_ACT_FENCE;
	d->lease_state = status_word(s);
	if (s == LEASE_ST_NONE) {	/* nobody's: nothing to keep, nobody fences us */
		pthread_mutex_unlock(&d->mu);
		return;
	}
	bool released = s == LEASE_ST_OTHER_RELEASED;
	if (d->fenced) {
		char who[300];
		lease_describe(&l, now, who, sizeof who);
		if (released)	/* a move to this node: its qsfs-fs takes it next */
			snprintf(d->fence_why, sizeof d->fence_why, "the writer lease was released by "
				 "its last holder (%s) and this node's qsfs-fs has not taken it yet: "
				 "the %u jobs of this node wait in the journal", who, d->njobs);
		else
			snprintf(d->fence_why, sizeof d->fence_why, "another writer holds the volume "
				 "(%s): the %u jobs of this node are kept in the journal and not "
				 "uploaded", who, d->njobs);
	}
	bool was_released = d->fence_released;
	d->fence_released = d->fenced && released;
	if (was && d->fenced && was_released && !released) {
		qlog_err("stor: %s", d->fence_why);	/* a move became a live holder */
	} else if (was != d->fenced) {
		if (d->fenced && released)
			qlog_info("stor: %s", d->fence_why);
		else if (d->fenced)
			qlog_err("stor: %s", d->fence_why);
		else
			qlog_info("stor: this node holds the writer lease again: uploads resume");
		pthread_cond_broadcast(&d->work);
	}
	pthread_mutex_unlock(&d->mu);
	if (act == LEASE_ACT_FENCE || act == LEASE_ACT_NONE) {
		pthread_mutex_lock(&d->mu);
		d->handoffs_left = d->handoffs_first = 0;
		d->handoffs_err = 0;
		pthread_mutex_unlock(&d->mu);
		return;	/* qsfs-fs renews it while mounted */
	}
	if (act == LEASE_ACT_COUNT) {
		/* Segments qsfs-fs could not hand off before it stopped (stor was
		 * down or failing) exist only here until qsfs-wait-hooks or the
		 * next qsfs-fs hands them off: a host taking the volume now would
		 * never see them. Keep (and renew) the lease until then. */
		uint64_t left = 0, first = 0;
		/* with cache.handoff none nothing is ever handed off: nothing
		 * to wait for */
		int e = d->cfg.cache.handoff != HANDOFF_NONE ?
			cache_unhanded(d->cfg.cache.dir, &left, &first) : 0;
		if (e == -ENOENT)
			e = 0;
		pthread_mutex_lock(&d->mu);
		/* cannot tell (e): keep it too; say so when it changes */
		bool tell = e ? e != d->handoffs_err : left && left != d->handoffs_left;
		d->handoffs_err = e;
		d->handoffs_left = left;
		d->handoffs_first = first;
		if (tell) {
			char text[600];
			qlog_warn("stor: %s", handoffs_text(d, text, sizeof text));
		}
		pthread_mutex_unlock(&d->mu);
		next = lease_next(next, left ? LEASE_EV_UNHANDED : e ? LEASE_EV_UNKNOWN
				  : LEASE_EV_HANDED, &act);
	}
	uint32_t want = l.flags;
	if (next == LEASE_ST_UNHANDED)	/* only here: the lease must not expire (lease.h) */
		want |= LEASE_UNHANDED;
	if (act == LEASE_ACT_RELEASE)
		want = (want & ~LEASE_UNHANDED) | LEASE_RELEASED;
	if (act == LEASE_ACT_RENEW &&
	    now - *last_beat < (int64_t)lease_period(d->cfg.fs.lease_timeout))
		return;
	if (act != LEASE_ACT_WRITE && act != LEASE_ACT_RENEW && act != LEASE_ACT_RELEASE)
		return;	/* refused: nothing to write (the table has no such edge here) */
	l.flags = want;
	l.heartbeat = now;
	r = lease_write(&c->os, &l, why, sizeof why);
	if (r) {
		qlog_warn("stor: %s", why);
	} else if (act == LEASE_ACT_RELEASE) {
		qlog_info("stor: uploads done after qsfs-fs stopped: writer lease released");
		pthread_mutex_lock(&d->mu);
		d->lease_state = "released";
		pthread_mutex_unlock(&d->mu);
	} else {
		*last_beat = now;
	}
}

void *lease_main(void *arg)
{
	struct ctx *c = arg;
	struct stord *d = c->d;
	int64_t last_beat = 0;
	pthread_mutex_lock(&d->mu);
	while (!d->stop) {
		pthread_mutex_unlock(&d->mu);
		lease_tick(c, &last_beat);
		pthread_mutex_lock(&d->mu);
		struct timespec ts = fs_abstime(LEASE_TICK_S * 1000000000ull);
		if (!d->stop)
			pthread_cond_timedwait(&d->lease_cv, &d->mu, &ts);
	}
	pthread_mutex_unlock(&d->mu);
	return NULL;
}

void lease_poke(struct stord *d)
{
	pthread_mutex_lock(&d->mu);
	pthread_cond_broadcast(&d->lease_cv);
	pthread_mutex_unlock(&d->mu);
}
