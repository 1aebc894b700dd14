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
 * A backend may also be slow: reads fetch every shard in parallel and stop
 * waiting for one that lags far behind the others (objstore.h), and each
 * such lag counts against its backend here. It is slow once one lag lasted
 * HEALTH_SLOW_LAG_MS or more, or after HEALTH_SLOW_STRIKES lags in a row
 * (a single short lag may be a scheduling hiccup on a busy host), until a
 * read in which it kept up. Slow is not down and says nothing against its
 * data: it still takes shards and reads still ask it (so they see it keep
 * up again); status shows it.
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
#define HEALTH_SLOW_LAG_MS 500	/* as a backend handle's "slow" (backend.h) */
#define HEALTH_SLOW_STRIKES 2
#define HEALTH_SLOW_RECHECK_S 10	/* see health_skip_wait */

struct health;

/* One backend's verdict, for status. */
struct health_verdict {
	bool down;
	int64_t since;		/* unix s it went down (0: never) */
	char err[160];		/* the error that marked it down */
	bool slow;
	int64_t slow_since;	/* unix s it became slow (0: not slow) */
	char slow_why[200];	/* the last lag */
};

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

/* A read stopped waiting for backend i after lag_ms (why says what it
 * waited for). Returns 1 when this made it slow, else 0. */
int health_lagged(struct health *h, size_t i, uint64_t lag_ms, const char *why);

/* Backend i kept up with the others in a read: its lags are forgotten and
 * it is no longer slow. Returns 1 when it was slow, else 0. */
int health_kept_up(struct health *h, size_t i);

/* Is backend i slow now? */
bool health_slow(struct health *h, size_t i);

/* May a read skip waiting for backend i? True when it is slow and lagged
 * within the last HEALTH_SLOW_RECHECK_S seconds; after that a read waits
 * for it as for any other once, to see whether it keeps up again (if not,
 * that lag starts the interval again). */
bool health_skip_wait(struct health *h, size_t i);

/* Backend i's verdict into *out (all clear for a NULL table). */
void health_get(struct health *h, size_t i, struct health_verdict *out);

#endif
