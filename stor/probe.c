/* stor/probe.c - see probe.h */
#include "probe.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <time.h>

#include "backend.h"
#include "daemon.h"
#include "health.h"
#include "scrub.h"
#include "../common/fsutil.h"
#include "../common/qlog.h"

/* Retry now every job waiting on its backoff, and wake the workers. d->mu
 * held. */
static void wake_jobs(struct stord *d)
{
	for (struct job *j = d->jobs; j; j = j->next)
		if (j->fails)
			j->next_ns = 0;	/* retry now */
	pthread_cond_broadcast(&d->work);
}

/* Backend i answered: read its use (health.h's full verdict), and log a
 * change of that verdict, whoever made it. Blocks on the backend; no lock
 * held. */
static void probe_space(struct probe *pr, size_t i)
{
	struct stord *d = pr->d;
	struct backend *b = pr->b[i];
	uint64_t used, limit;
	int r = backend_usage(b, &used, &limit);
	if (r == 0)
		health_usage(d->health, i, used, limit);
	else if (r == -ENOTSUP)
		health_full_expire(d->health, i);
	struct health_space sp;
	health_space(d->health, i, &sp);
	if (sp.full == pr->was_full[i])
		return;
	pr->was_full[i] = sp.full;
	if (sp.full) {
		qlog_warn("stor: backend %s is full: %s; no new shards or object metadata go there "
			  "until it has room", backend_name(b), sp.why);
		return;
	}
	if (sp.known && sp.at >= (int64_t)time(NULL) - PROBE_S && sp.limit)
		qlog_info("stor: backend %s has room again (%llu of %llu bytes used)",
			  backend_name(b), (unsigned long long)sp.used,
			  (unsigned long long)sp.limit);
	else if (sp.known && sp.at >= (int64_t)time(NULL) - PROBE_S)
		qlog_info("stor: backend %s has room again (%llu bytes used, no limit set)",
			  backend_name(b), (unsigned long long)sp.used);
	else
		qlog_info("stor: backend %s was full; trying it again", backend_name(b));
	pthread_mutex_lock(&d->mu);
	wake_jobs(d);
	pthread_mutex_unlock(&d->mu);
}

void *probe_main(void *arg)
{
	struct probe *pr = arg;
	struct stord *d = pr->d;
	struct backend **b = pr->b;
	pthread_mutex_lock(&d->mu);
	while (!d->stop) {
		pthread_mutex_unlock(&d->mu);
		for (size_t i = 0; i < d->cfg.stor.nbackends; i++) {
			bool up = backend_ping(b[i]) == 0;
			int change = health_probe(d->health, i, up, backend_health(b[i]).last_error);
			if (up)
				probe_space(pr, i);
			if (change < 0)
				qlog_warn("stor: backend %s is down: %s; placing shards elsewhere",
					  backend_name(b[i]), backend_health(b[i]).last_error);
			if (change <= 0)
				continue;
			qlog_info("stor: backend %s answers again", backend_name(b[i]));
			pthread_mutex_lock(&d->mu);
			wake_jobs(d);
			char why[300];
			snprintf(why, sizeof why, "backend %s is back", backend_name(b[i]));
			request_check(d, why);
			pthread_mutex_unlock(&d->mu);
		}
		pthread_mutex_lock(&d->mu);
		if (d->stop)
			break;
		struct timespec ts = fs_abstime(PROBE_S * 1000000000ull);
		pthread_cond_timedwait(&d->scrub.cv, &d->mu, &ts);
	}
	pthread_mutex_unlock(&d->mu);
	return NULL;
}
