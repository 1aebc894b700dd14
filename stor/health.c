/* stor/health.c - see health.h */
#include "health.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../common/fsutil.h"

struct verdict {
	bool down;
	int64_t since;		/* unix s it went down */
	char err[160];
	struct health_space space;
	unsigned strikes;	/* lags in a row */
	uint64_t lagged_ns;	/* monotonic time of the last lag */
	bool slow;
	int64_t slow_since;
	char slow_why[200];
};

struct health {
	pthread_mutex_t mu;	/* guards v */
	size_t n;
	struct verdict v[];
};

int health_new(size_t n, struct health **out)
{
	struct health *h = calloc(1, sizeof *h + n * sizeof h->v[0]);
	if (!h)
		return -ENOMEM;
	pthread_mutex_init(&h->mu, NULL);
	h->n = n;
	*out = h;
	return 0;
}

void health_free(struct health *h)
{
	if (!h)
		return;
	pthread_mutex_destroy(&h->mu);
	free(h);
}

bool health_usable(struct health *h, size_t i)
{
	if (!h || i >= h->n)
		return true;
	pthread_mutex_lock(&h->mu);
	bool ok = !h->v[i].down;
	pthread_mutex_unlock(&h->mu);
	return ok;
}

static bool mark_down(struct health *h, size_t i, const char *err)
{
	bool was_up = !h->v[i].down;
	if (was_up) {
		h->v[i].down = true;
		h->v[i].since = (int64_t)time(NULL);
	}
	snprintf(h->v[i].err, sizeof h->v[i].err, "%s", err && err[0] ? err : "no answer");
	return was_up;
}

void health_fail(struct health *h, size_t i, const char *err)
{
	if (!h || i >= h->n)
		return;
	pthread_mutex_lock(&h->mu);
	mark_down(h, i, err);
	pthread_mutex_unlock(&h->mu);
}

int health_probe(struct health *h, size_t i, bool up, const char *err)
{
	if (!h || i >= h->n)
		return 0;
	pthread_mutex_lock(&h->mu);
	int change = 0;
	if (up && h->v[i].down) {
		h->v[i].down = false;
		change = 1;
	} else if (!up) {
		change = mark_down(h, i, err) ? -1 : 0;
	}
	pthread_mutex_unlock(&h->mu);
	return change;
}

unsigned health_down(struct health *h)
{
	if (!h)
		return 0;
	unsigned n = 0;
	pthread_mutex_lock(&h->mu);
	for (size_t i = 0; i < h->n; i++)
		n += h->v[i].down;
	pthread_mutex_unlock(&h->mu);
	return n;
}

int health_lagged(struct health *h, size_t i, uint64_t lag_ms, const char *why)
{
	if (!h || i >= h->n)
		return 0;
	pthread_mutex_lock(&h->mu);
	struct verdict *v = &h->v[i];
	v->strikes++;
	v->lagged_ns = fs_now_ns();
	int change = 0;
	if (lag_ms >= HEALTH_SLOW_LAG_MS || v->strikes >= HEALTH_SLOW_STRIKES) {
		change = !v->slow;
		if (!v->slow)
			v->slow_since = (int64_t)time(NULL);
		v->slow = true;
	}
	snprintf(v->slow_why, sizeof v->slow_why, "%s", why ? why : "");
	pthread_mutex_unlock(&h->mu);
	return change;
}

int health_kept_up(struct health *h, size_t i)
{
	if (!h || i >= h->n)
		return 0;
	pthread_mutex_lock(&h->mu);
	struct verdict *v = &h->v[i];
	int change = v->slow;
	v->slow = false;
	v->slow_since = 0;
	v->strikes = 0;
	pthread_mutex_unlock(&h->mu);
	return change;
}

bool health_slow(struct health *h, size_t i)
{
	if (!h || i >= h->n)
		return false;
	pthread_mutex_lock(&h->mu);
	bool slow = h->v[i].slow;
	pthread_mutex_unlock(&h->mu);
	return slow;
}

bool health_skip_wait(struct health *h, size_t i)
{
	if (!h || i >= h->n)
		return false;
	pthread_mutex_lock(&h->mu);
	bool skip = h->v[i].slow &&
		    fs_now_ns() - h->v[i].lagged_ns < HEALTH_SLOW_RECHECK_S * 1000000000ull;
	pthread_mutex_unlock(&h->mu);
	return skip;
}

void health_get(struct health *h, size_t i, struct health_verdict *out)
{
	memset(out, 0, sizeof *out);
	if (!h || i >= h->n)
		return;
	pthread_mutex_lock(&h->mu);
	const struct verdict *v = &h->v[i];
	out->down = v->down;
	out->since = v->since;
	snprintf(out->err, sizeof out->err, "%s", v->err);
	out->slow = v->slow;
	out->slow_since = v->slow_since;
	if (v->slow)
		snprintf(out->slow_why, sizeof out->slow_why, "%s", v->slow_why);
	pthread_mutex_unlock(&h->mu);
}

bool health_writable(struct health *h, size_t i)
{
	if (!h || i >= h->n)
		return true;
	pthread_mutex_lock(&h->mu);
	bool ok = !h->v[i].down && !h->v[i].space.full;
	pthread_mutex_unlock(&h->mu);
	return ok;
}

/* Mark backend i full (why); true when it was not. mu held. */
static bool mark_full(struct health *h, size_t i, const char *why)
{
	struct health_space *sp = &h->v[i].space;
	bool was = sp->full;
	if (!was) {
		sp->full = true;
		sp->full_since = (int64_t)time(NULL);
	}
	snprintf(sp->why, sizeof sp->why, "%s", why && why[0] ? why : "no room left");
	return !was;
}

bool health_full(struct health *h, size_t i, const char *err)
{
	if (!h || i >= h->n)
		return false;
	pthread_mutex_lock(&h->mu);
	bool now = mark_full(h, i, err);
	pthread_mutex_unlock(&h->mu);
	return now;
}

int health_usage(struct health *h, size_t i, uint64_t used, uint64_t limit)
{
	if (!h || i >= h->n)
		return 0;
	pthread_mutex_lock(&h->mu);
	struct health_space *sp = &h->v[i].space;
	sp->known = true;
	sp->used = used;
	sp->limit = limit;
	sp->at = (int64_t)time(NULL);
	bool full = limit && (used >= limit || limit - used < HEALTH_FULL_ROOM);
	int change = 0;
	if (full) {
		char why[160];
		snprintf(why, sizeof why, "%llu of its %llu bytes used", (unsigned long long)used,
			 (unsigned long long)limit);
		change = mark_full(h, i, why) ? 1 : 0;
	} else if (sp->full) {
		sp->full = false;
		change = -1;
	}
	pthread_mutex_unlock(&h->mu);
	return change;
}

int health_full_expire(struct health *h, size_t i)
{
	if (!h || i >= h->n)
		return 0;
	pthread_mutex_lock(&h->mu);
	struct health_space *sp = &h->v[i].space;
	int change = 0;
	if (sp->full && (int64_t)time(NULL) - sp->full_since >= HEALTH_FULL_RETRY_S) {
		sp->full = false;
		change = -1;
	}
	pthread_mutex_unlock(&h->mu);
	return change;
}

unsigned health_full_count(struct health *h)
{
	if (!h)
		return 0;
	unsigned n = 0;
	pthread_mutex_lock(&h->mu);
	for (size_t i = 0; i < h->n; i++)
		n += h->v[i].space.full;
	pthread_mutex_unlock(&h->mu);
	return n;
}

void health_space(struct health *h, size_t i, struct health_space *out)
{
	memset(out, 0, sizeof *out);
	if (!h || i >= h->n)
		return;
	pthread_mutex_lock(&h->mu);
	*out = h->v[i].space;
	pthread_mutex_unlock(&h->mu);
}
