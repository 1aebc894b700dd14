/* stor/health.h - which backends qsfs-stor may use now, one verdict shared
 * by all its threads.
 *
 * Backend handles belong to one thread each (backend.h) and keep their own
 * records for `qsfs-ctl status`. This table is the daemon-wide verdict that
 * placement and reads act on: a backend is down from the first I/O failure
 * any thread reports until a probe gets an answer from it again. A down
 * backend receives no new shards and no metadata writes, and reads skip it
 * while enough other shards exist. Backends are numbered as in the
 * configuration (every thread's handle set has the same order).
 *
 * All functions are thread-safe. A NULL table means "every backend usable"
 * (tools and tests without a daemon).
 */
#ifndef QSFS_STOR_HEALTH_H
#define QSFS_STOR_HEALTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct health;

/* A table for n backends, all up. 0 or -ENOMEM. */
int health_new(size_t n, struct health **out);
void health_free(struct health *h);

/* May backend i take shards and metadata now? */
bool health_usable(struct health *h, size_t i);

/* An operation on backend i failed with an I/O error (err says how): it is
 * down until a probe sees it answer (status shows it; the probe logs its
 * return). */
void health_fail(struct health *h, size_t i, const char *err);

/* A probe of backend i answered (up) or not (err). Returns +1 when a down
 * backend came back, -1 when an up one went down, 0 when nothing changed. */
int health_probe(struct health *h, size_t i, bool up, const char *err);

/* Backends down now. */
unsigned health_down(struct health *h);

/* Backend i: down or not, since when (unix s, 0 if never down), and the
 * error that marked it down. */
void health_get(struct health *h, size_t i, bool *down, int64_t *since, char *err, size_t errlen);

#endif
