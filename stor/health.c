/* stor/health.c - see health.h */
#include "health.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

struct verdict {
	bool down;
	int64_t since;		/* unix s it went down */
	char err[160];
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

void health_get(struct health *h, size_t i, bool *down, int64_t *since, char *err, size_t errlen)
{
	*down = false;
	*since = 0;
	if (errlen)
		err[0] = 0;
	if (!h || i >= h->n)
		return;
	pthread_mutex_lock(&h->mu);
	*down = h->v[i].down;
	*since = h->v[i].since;
	snprintf(err, errlen, "%s", h->v[i].err);
	pthread_mutex_unlock(&h->mu);
}
