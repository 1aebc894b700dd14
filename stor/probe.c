/* stor/probe.c - see probe.h */
#include "probe.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>

#include "backend.h"
#include "daemon.h"
#include "health.h"
#include "scrub.h"
#include "../common/fsutil.h"
#include "../common/qlog.h"

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
			if (change < 0)
				qlog_warn("stor: backend %s is down: %s; placing shards elsewhere",
					  backend_name(b[i]), backend_health(b[i]).last_error);
			if (change <= 0)
				continue;
			qlog_info("stor: backend %s answers again", backend_name(b[i]));
			pthread_mutex_lock(&d->mu);
			for (struct job *j = d->jobs; j; j = j->next)
				if (j->fails)
					j->next_ns = 0;	/* retry now */
			pthread_cond_broadcast(&d->work);
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
