/* stor/degraded.c - see degraded.h */
#include "degraded.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "daemon.h"
#include "../common/fsutil.h"
#include "../common/qlog.h"

#define DEGRADED_FILE "degraded"

/* Write the list to state_dir/degraded (a failure is logged). mu held. */
static void save_degraded(struct stord *d)
{
	size_t cap = 64 + d->ndegraded * (OBJ_NAME_MAX + 1100), len = 0;
	char *buf = malloc(cap);
	if (!buf)
		return;
	for (size_t i = 0; i < d->ndegraded; i++)
		len += (size_t)snprintf(buf + len, cap - len, "%s %lld %s\n", d->degraded[i].name,
					(long long)d->degraded[i].since, d->degraded[i].why);
	int dfd = open(d->cfg.stor.state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int r = dfd < 0 ? -errno : fs_write_atomic(dfd, DEGRADED_FILE, buf, len, 0600);
	if (dfd >= 0)
		close(dfd);
	if (r)
		qlog_warn("stor: cannot save %s/%s: %s", d->cfg.stor.state_dir, DEGRADED_FILE,
			  strerror(-r));
	free(buf);
}

/* Record what a successful retrieval or store of name saw: damage ("" =
 * none). */
void note_damage(struct stord *d, const char *name, const char *damage)
{
	pthread_mutex_lock(&d->mu);
	size_t i = 0;
	while (i < d->ndegraded && strcmp(d->degraded[i].name, name))
		i++;
	bool changed = false;
	if (!damage[0] && i < d->ndegraded) {
		d->degraded[i] = d->degraded[--d->ndegraded];
		changed = true;
		qlog_info("stor: %s is whole again", name);
	} else if (damage[0]) {
		if (i == d->ndegraded) {
			struct degraded *n = realloc(d->degraded, (d->ndegraded + 1) * sizeof *n);
			if (n) {
				d->degraded = n;
				snprintf(n[i].name, sizeof n[i].name, "%s", name);
				n[i].since = (int64_t)time(NULL);
				d->ndegraded++;
			}
		}
		if (i < d->ndegraded && strcmp(d->degraded[i].why, damage)) {
			snprintf(d->degraded[i].why, sizeof d->degraded[i].why, "%s", damage);
			for (char *p = d->degraded[i].why; *p; p++)
				if (*p == '\n')
					*p = ' ';
			changed = true;
		}
		qlog_warn("stor: %s has lost redundancy (%s): it needs a repair", name, damage);
	}
	if (changed)
		save_degraded(d);
	pthread_mutex_unlock(&d->mu);
}

void load_degraded(struct stord *d)
{
	int dfd = open(d->cfg.stor.state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	uint8_t *buf = NULL;
	size_t len = 0;
	int r = dfd < 0 ? -errno : fs_read_file(dfd, DEGRADED_FILE, &buf, &len);
	if (dfd >= 0)
		close(dfd);
	if (r) {
		if (r != -ENOENT)
			qlog_warn("stor: cannot read %s/%s: %s", d->cfg.stor.state_dir,
				  DEGRADED_FILE, strerror(-r));
		return;
	}
	char *text = malloc(len + 1);
	if (!text) {
		free(buf);
		return;
	}
	memcpy(text, buf, len);
	text[len] = 0;
	free(buf);
	char *save = NULL;
	for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char name[OBJ_NAME_MAX];
		long long since;
		int used = 0;
		uint64_t id;
		if (sscanf(line, "%31s %lld %n", name, &since, &used) != 2 || !used ||
		    object_name_parse(name, &id)) {
			qlog_warn("stor: %s/%s: ignoring a bad line", d->cfg.stor.state_dir,
				  DEGRADED_FILE);
			continue;
		}
		struct degraded *n = realloc(d->degraded, (d->ndegraded + 1) * sizeof *n);
		if (!n)
			break;
		d->degraded = n;
		snprintf(n[d->ndegraded].name, OBJ_NAME_MAX, "%s", name);
		n[d->ndegraded].since = since;
		snprintf(n[d->ndegraded].why, sizeof n->why, "%s", line + used);
		d->ndegraded++;
	}
	free(text);
}

/* After a complete pass: objects marked degraded that the catalog no
 * longer lists (checkpoints superseded, segments deleted) are forgotten:
 * no reader needs them, and no pass would ever clear their mark. */
void forget_unlisted(struct stord *d)
{
	/* d->cat_mu and d->mu are never held together: copy, look, then remove */
	pthread_mutex_lock(&d->mu);
	size_t n = d->ndegraded;
	char (*names)[OBJ_NAME_MAX] = calloc(n ? n : 1, OBJ_NAME_MAX);
	for (size_t i = 0; names && i < n; i++)
		memcpy(names[i], d->degraded[i].name, OBJ_NAME_MAX);
	pthread_mutex_unlock(&d->mu);
	if (!names)
		return;
	bool *gone = calloc(n ? n : 1, sizeof *gone);
	pthread_mutex_lock(&d->cat_mu);
	for (size_t i = 0; gone && i < n; i++)
		gone[i] = !catalog_lists(&d->cat, names[i]);
	pthread_mutex_unlock(&d->cat_mu);
	pthread_mutex_lock(&d->mu);
	size_t before = d->ndegraded;
	for (size_t k = 0; gone && k < n; k++) {
		for (size_t i = 0; gone[k] && i < d->ndegraded; i++) {
			if (!strcmp(d->degraded[i].name, names[k])) {
				d->degraded[i] = d->degraded[--d->ndegraded];
				break;
			}
		}
	}
	if (d->ndegraded != before)
		save_degraded(d);
	pthread_mutex_unlock(&d->mu);
	free(gone);
	free(names);
}
