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
 * A backend may also be full: it answers and serves reads, but refused a
 * write for lack of room (a 0-db namespace at its size limit, a full
 * disk), or its last usage reading (backend_usage, by the probe) leaves
 * less than HEALTH_FULL_ROOM. A full backend receives no new shards and no
 * object metadata; the volume's small records are still tried there (an
 * overwrite of the same size fits in a full 0-db namespace). It is full
 * until a usage reading shows room, or, for a backend that cannot tell its
 * use, until HEALTH_FULL_RETRY_S have passed (then a write tries again).
 *
 * All functions are thread-safe. A NULL table means "every backend usable"
 * (tools and tests without a daemon).
 */
#ifndef QSFS_STOR_HEALTH_H
#define QSFS_STOR_HEALTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Less room left than a piece (objstore.h's OBJ_PIECE) is full. */
#define HEALTH_FULL_ROOM (1u << 20)
/* Used at or over this share of the limit is nearly full (status says so). */
#define HEALTH_NEARLY_FULL_PCT 90
/* A full backend that cannot tell its use is tried again after this. */
#define HEALTH_FULL_RETRY_S 60

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

/* May backend i take new shards and object metadata now: usable and not
 * full? */
bool health_writable(struct health *h, size_t i);

/* A write to backend i was refused for lack of room (err says so): full,
 * see above. Returns true when it was not full before (the caller may say
 * so), false otherwise. */
bool health_full(struct health *h, size_t i, const char *err);

/* A usage reading of backend i (backend_usage: used bytes, limit 0: no
 * limit), now: full when less than HEALTH_FULL_ROOM is left under the
 * limit, else not. Returns +1 when it became full, -1 when it has room
 * again, 0 when that did not change. */
int health_usage(struct health *h, size_t i, uint64_t used, uint64_t limit);

/* Backend i cannot tell its use (backend_usage -ENOTSUP): a full verdict
 * older than HEALTH_FULL_RETRY_S is dropped. Returns -1 when it was, else
 * 0. */
int health_full_expire(struct health *h, size_t i);

/* Backends full now. */
unsigned health_full_count(struct health *h);

/* Backend i's room: full or not, since when (unix s) and why, and the
 * last usage reading (known: there was one; at: when, unix s). */
struct health_space {
	bool full;
	int64_t full_since;
	char why[160];
	bool known;
	uint64_t used, limit;
	int64_t at;
};
void health_space(struct health *h, size_t i, struct health_space *out);

/* Backend i: down or not, since when (unix s, 0 if never down), and the
 * error that marked it down. */
void health_get(struct health *h, size_t i, bool *down, int64_t *since, char *err, size_t errlen);

#endif
