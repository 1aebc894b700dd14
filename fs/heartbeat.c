/* fs/heartbeat.c - see heartbeat.h. */
#include "heartbeat.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "qfs.h"
#include "wlease.h"
#include "../cache/cache.h"
#include "../common/fsutil.h"
#include "../common/qlog.h"

struct heartbeat {
	struct wlease *lease;
	struct cache *c;
	struct qfs *fs;
	pthread_t th;
	pthread_mutex_t mu;	/* what follows */
	pthread_cond_t cv;
	bool stop, fenced;
	char problem[1024];	/* why the last renewal failed, or "" */
	/* notify_mu: held across a call of notify, so that heartbeat_notify
	 * can wait for it (never taken with mu held) */
	pthread_mutex_t notify_mu;
	void (*notify)(void *arg);
	void *notify_arg;
};

/* One renewal; its outcome goes to hb's state. */
static void renew(struct heartbeat *hb)
{
	char err[900], line[1024];
	int r = wlease_renew(hb->lease, err, sizeof err);
	line[0] = 0;
	if (r == -ESTALE) {
		cache_fence(hb->c);
		qfs_set_full(hb->fs, QFS_FULL_FENCED);	/* writers waiting for room are told now */
		snprintf(line, sizeof line, "%.900s: this node stopped writing (writes fail with "
			 "EROFS); unmount it", err);
		qlog_err("fs: %s", line);
	} else if (r) {
		snprintf(line, sizeof line, "%.900s (retried every %u s)", err,
			 wlease_period(hb->lease));
	}
	pthread_mutex_lock(&hb->mu);
	if (r && r != -ESTALE && !hb->problem[0])
		qlog_warn("fs: %s (retried)", err);
	else if (!r && hb->problem[0])
		qlog_info("fs: the writer lease is renewed again");
	bool changed = (r == -ESTALE && !hb->fenced) || strcmp(hb->problem, line);
	hb->fenced |= r == -ESTALE;
	snprintf(hb->problem, sizeof hb->problem, "%s", line);
	pthread_mutex_unlock(&hb->mu);
	if (changed) {	/* the status says so now, not at its next round */
		pthread_mutex_lock(&hb->notify_mu);
		if (hb->notify)
			hb->notify(hb->notify_arg);
		pthread_mutex_unlock(&hb->notify_mu);
	}
}

void heartbeat_notify(struct heartbeat *hb, void (*fn)(void *arg), void *arg)
{
	pthread_mutex_lock(&hb->notify_mu);
	hb->notify = fn;
	hb->notify_arg = arg;
	pthread_mutex_unlock(&hb->notify_mu);
}

static void *heartbeat_main(void *arg)
{
	struct heartbeat *hb = arg;
	uint64_t period = (uint64_t)wlease_period(hb->lease) * 1000000000ull;
	pthread_mutex_lock(&hb->mu);
	while (!hb->stop && !hb->fenced) {
		struct timespec ts = fs_abstime(period);
		while (!hb->stop && pthread_cond_timedwait(&hb->cv, &hb->mu, &ts) != ETIMEDOUT)
			;
		if (hb->stop)
			break;
		pthread_mutex_unlock(&hb->mu);
		renew(hb);
		pthread_mutex_lock(&hb->mu);
	}
	pthread_mutex_unlock(&hb->mu);
	return NULL;
}

int heartbeat_start(struct wlease *lease, struct cache *c, struct qfs *fs,
		    struct heartbeat **out)
{
	struct heartbeat *hb = calloc(1, sizeof *hb);
	if (!hb)
		return -ENOMEM;
	hb->lease = lease;
	hb->c = c;
	hb->fs = fs;
	pthread_mutex_init(&hb->mu, NULL);
	pthread_mutex_init(&hb->notify_mu, NULL);
	/* CLOCK_MONOTONIC: a step of the wall clock (NTP) must not postpone a
	 * renewal past the lease's timeout */
	fs_cond_init(&hb->cv);
	int r = pthread_create(&hb->th, NULL, heartbeat_main, hb);
	if (r) {
		pthread_cond_destroy(&hb->cv);
		pthread_mutex_destroy(&hb->mu);
		pthread_mutex_destroy(&hb->notify_mu);
		free(hb);
		return -r;
	}
	*out = hb;
	return 0;
}

bool heartbeat_state(struct heartbeat *hb, char *problem, size_t len)
{
	pthread_mutex_lock(&hb->mu);
	bool f = hb->fenced;
	if (problem && len)
		snprintf(problem, len, "%s", hb->problem);
	pthread_mutex_unlock(&hb->mu);
	return f;
}

void heartbeat_stop(struct heartbeat *hb)
{
	if (!hb)
		return;
	pthread_mutex_lock(&hb->mu);
	hb->stop = true;
	pthread_cond_broadcast(&hb->cv);
	pthread_mutex_unlock(&hb->mu);
	pthread_join(hb->th, NULL);
	pthread_cond_destroy(&hb->cv);
	pthread_mutex_destroy(&hb->mu);
	pthread_mutex_destroy(&hb->notify_mu);
	free(hb);
}
