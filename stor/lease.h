/* stor/lease.h - the volume's writer lease: one host writes a volume at a
 * time (two would both write segment N, and each would overwrite the
 * other's objects).
 *
 * A replicated record "VOL/lease" (replica.h: sealed, majority writes,
 * newest-of-majority reads). Plaintext, little-endian:
 *   0  "QSFSLEA1"   8 u32 version (1)   12 u32 flags (LEASE_*)
 *   16 u64 sequence number
 *   24 holder id (16 bytes: random, one per cache directory, file
 *      CACHE_DIR/HOLDER)
 *   40 i64 heartbeat (unix seconds, the holder's clock)
 *   48 u32 timeout (seconds without a heartbeat after which it expires)
 *   52 u32 pid of the holder's qsfs-fs
 *   56 host name (64 bytes, NUL padded)
 *
 * Life cycle: qsfs-fs takes the lease before it restores or mounts
 * (LEASE_MOUNTED) and renews it every timeout/3 seconds while mounted. At
 * a clean stop it clears LEASE_MOUNTED: the lease still holds while its
 * qsfs-stor uploads what the stop handed off (stor renews it meanwhile),
 * and stor releases it (LEASE_RELEASED) once its queue is empty, so the
 * next host can start at once. A qsfs-fs that stops with segments it could
 * not hand off (stor was away) sets LEASE_UNHANDED instead: that data is
 * only on its host, so the lease does not expire until the next qsfs-fs
 * there (or qsfs-wait-hooks) has handed them off and stor has uploaded
 * them and released it. A lease that is neither released nor renewed
 * within its timeout (a host that died) may be taken; so may any lease
 * with an explicit takeover. A holder that finds another holder in
 * the lease stops writing (fs turns read-only, stor stops uploading).
 * The state machine below (lease_classify, lease_next) is that life cycle
 * as code: both qsfs-fs and qsfs-stor decide through it.
 */
#ifndef QSFS_STOR_LEASE_H
#define QSFS_STOR_LEASE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "objstore.h"

#define LEASE_MOUNTED 1u	/* the holder's qsfs-fs is mounted */
#define LEASE_RELEASED 2u	/* given up: anyone may take it */
#define LEASE_UNHANDED 4u	/* the holder's qsfs-fs stopped with segments not
				 * handed off (only that host has them): it does
				 * not expire, only a takeover takes it */
#define LEASE_ID_SIZE 16
#define LEASE_HOST_MAX 64

struct lease {
	uint64_t seq;
	uint8_t holder[LEASE_ID_SIZE];
	int64_t heartbeat;
	uint32_t timeout, pid, flags;
	char host[LEASE_HOST_MAX];
};

/* Read the newest lease. 0, -ENOENT (never taken), -EBADMSG, -EIO (see
 * replica_load); why says what failed. */
int lease_read(struct objstore *s, struct lease *l, char *why, size_t whylen);

/* Write l with the next sequence number (l->seq is updated). 0 once a
 * majority holds it, else -EIO with why naming the failing backends. */
int lease_write(struct objstore *s, struct lease *l, char *why, size_t whylen);

/* Is l held by holder id? */
bool lease_held_by(const struct lease *l, const uint8_t id[LEASE_ID_SIZE]);

/* Seconds between renewals of a lease that expires after timeout s (a
 * third of it, at least 1). */
unsigned lease_period(unsigned timeout);

/* Does l keep holder me out at time now (unix s)? True when another
 * holder's lease is neither released nor expired (a LEASE_UNHANDED lease
 * never expires): lease_classify's OTHER and OTHER_UNHANDED, the states
 * whose TAKE the table refuses; *age is the seconds since its heartbeat. */
bool lease_blocks(const struct lease *l, const uint8_t me[LEASE_ID_SIZE], int64_t now,
		  int64_t *age);

/* This node's holder id, from CACHE_DIR/HOLDER; with create, a new random
 * one is made (durably) when the file is missing. 0, -ENOENT (missing,
 * !create), -EBADMSG (malformed) or -errno. */
int lease_holder_id(const char *cache_dir, bool create, uint8_t id[LEASE_ID_SIZE]);

/* "holder 0123abcd on host H (pid P), last heartbeat N s ago[, mounted]"
 * into buf. */
void lease_describe(const struct lease *l, int64_t now, char *buf, size_t len);

/* --- the life cycle as a state machine ------------------------------------------
 *
 * The state is the lease as one node sees it (lease_classify: its record,
 * that node's holder id, the node's clock); the events are what qsfs-fs
 * (fs/wlease.c) and qsfs-stor (stor/leasekeeper.c) on that node do or
 * find. lease_next is the table below, and both sides decide through it.
 *
 *   NONE            no lease: never taken (no record, or sequence 0)
 *   MOUNTED         this node's, its qsfs-fs mounted (LEASE_MOUNTED)
 *   STOPPING        this node's, its qsfs-fs stopped cleanly (no flag):
 *                   stor renews it while it has jobs
 *   UNHANDED        this node's, stopped with segments not handed off
 *                   (LEASE_UNHANDED): never expires
 *   RELEASED        this node's, given up (LEASE_RELEASED)
 *   OTHER           another holder's, live: not released, heartbeat
 *                   younger than its timeout
 *   OTHER_UNHANDED  another holder's with LEASE_UNHANDED: never expires
 *   OTHER_EXPIRED   another holder's, neither released nor renewed within
 *                   its timeout (a host that died)
 *   OTHER_RELEASED  another holder's, released: anyone may take it
 * No writer sets two flags at once; a record that has them reads, for its
 * holder, as the first of MOUNTED, RELEASED, UNHANDED, and for others as
 * the first of RELEASED, UNHANDED (then live or expired by age).
 *
 * Events of qsfs-fs:
 *   TAKE            start (before restore or mount)
 *   TAKEOVER        start with --takeover
 *   RENEW           heartbeat while mounted (every timeout/3 s)
 *   STOP            clean stop, every segment handed off
 *   STOP_UNHANDED   clean stop with segments not handed off
 *   GIVE_UP         the cache turned out stale: release at once
 * Events of qsfs-stor, at each look (every 2 s, and when woken):
 *   JOBS            uploads or deletions are queued or in flight
 *   EMPTY           the queue is empty
 *   UNHANDED        (after COUNT) segments were never handed off
 *   UNKNOWN         (after COUNT) they cannot be counted
 *   HANDED          (after COUNT) none is left
 *
 * Actions ("=" in the table: the state stays):
 *   w        write the next state's flags, with a fresh heartbeat, now
 *   renew    stor: write the same flags with a fresh heartbeat once a
 *            renewal period (lease_period) has passed since the last one
 *   count    stor: count the segments qsfs-fs left unhanded
 *            (cache_unhanded), then send UNHANDED, UNKNOWN or HANDED
 *   release  stor: write LEASE_RELEASED now (it clears LEASE_UNHANDED)
 *   fence    not this node's lease: stop writing (qsfs-fs turns read-only,
 *            -ESTALE; stor keeps its jobs in the journal)
 *   refuse   not allowed: nothing is written (a take of a live lease
 *            without --takeover; a count's result the state never asked
 *            for)
 *   -        nothing to do (qsfs-fs renews a mounted lease; a released
 *            one is left for the next taker)
 *
 *   qsfs-fs         TAKE        TAKEOVER    RENEW       STOP        STOP_UNHANDED GIVE_UP
 *   NONE            MOUNTED w   MOUNTED w   = fence     = fence     = fence       = fence
 *   MOUNTED         MOUNTED w   MOUNTED w   MOUNTED w   STOPPING w  UNHANDED w    RELEASED w
 *   STOPPING        MOUNTED w   MOUNTED w   MOUNTED w   STOPPING w  UNHANDED w    RELEASED w
 *   UNHANDED        MOUNTED w   MOUNTED w   MOUNTED w   STOPPING w  UNHANDED w    RELEASED w
 *   RELEASED        MOUNTED w   MOUNTED w   MOUNTED w   STOPPING w  UNHANDED w    RELEASED w
 *   OTHER           = refuse    MOUNTED w   = fence     = fence     = fence       = fence
 *   OTHER_UNHANDED  = refuse    MOUNTED w   = fence     = fence     = fence       = fence
 *   OTHER_EXPIRED   MOUNTED w   MOUNTED w   = fence     = fence     = fence       = fence
 *   OTHER_RELEASED  MOUNTED w   MOUNTED w   = fence     = fence     = fence       = fence
 *
 *   qsfs-stor       JOBS        EMPTY       UNHANDED    UNKNOWN     HANDED
 *   NONE            = -         = -         = refuse    = refuse    = refuse
 *   MOUNTED         = -         = -         = refuse    = refuse    = refuse
 *   STOPPING        = renew     = count     UNHANDED w  = renew     RELEASED release
 *   UNHANDED        = renew     = count     = renew     = renew     RELEASED release
 *   RELEASED        = -         = -         = refuse    = refuse    = refuse
 *   OTHER           = fence     = fence     = fence     = fence     = fence
 *   OTHER_UNHANDED  = fence     = fence     = fence     = fence     = fence
 *   OTHER_EXPIRED   = fence     = fence     = fence     = fence     = fence
 *   OTHER_RELEASED  = fence     = fence     = fence     = fence     = fence
 *
 * So a lease passes MOUNTED -> STOPPING (or UNHANDED) -> RELEASED on one
 * node, and another node takes it once it is released or expired (an
 * UNHANDED one never expires), or at once with --takeover; the node that
 * had it is fenced at its next look. stor never takes a lease, and with no
 * lease at all it is not fenced (a volume no qsfs-fs has mounted yet).
 */
enum lease_state {
	LEASE_ST_NONE,
	LEASE_ST_MOUNTED,
	LEASE_ST_STOPPING,
	LEASE_ST_UNHANDED,
	LEASE_ST_RELEASED,
	LEASE_ST_OTHER,
	LEASE_ST_OTHER_UNHANDED,
	LEASE_ST_OTHER_EXPIRED,
	LEASE_ST_OTHER_RELEASED,
	LEASE_NSTATES
};

enum lease_event {
	LEASE_EV_TAKE,
	LEASE_EV_TAKEOVER,
	LEASE_EV_RENEW,
	LEASE_EV_STOP,
	LEASE_EV_STOP_UNHANDED,
	LEASE_EV_GIVE_UP,
	LEASE_EV_JOBS,
	LEASE_EV_EMPTY,
	LEASE_EV_UNHANDED,
	LEASE_EV_UNKNOWN,
	LEASE_EV_HANDED,
	LEASE_NEVENTS
};

enum lease_action {
	LEASE_ACT_NONE,
	LEASE_ACT_WRITE,
	LEASE_ACT_RENEW,
	LEASE_ACT_COUNT,
	LEASE_ACT_RELEASE,
	LEASE_ACT_FENCE,
	LEASE_ACT_REFUSE,
	LEASE_NACTIONS
};

/* The state of lease l for the node whose holder id is me (NULL: the node
 * has none yet, so the lease is not its own) at unix time now. l NULL:
 * no lease record (-ENOENT). Pure: no I/O, no lock. */
enum lease_state lease_classify(const struct lease *l, const uint8_t *me, int64_t now);

/* The table above: the state after event e in state s, and in *act what
 * to do. An s or e out of range is refused (s returned). Pure: no I/O, no
 * lock. */
enum lease_state lease_next(enum lease_state s, enum lease_event e, enum lease_action *act);

/* The flags a holder writes for state s (0 for states that are not this
 * node's to write). Pure. */
uint32_t lease_state_flags(enum lease_state s);

/* Names for logs and tests ("MOUNTED", "TAKE", "fence", ...; "?" when out
 * of range). Pure. */
const char *lease_state_name(enum lease_state s);
const char *lease_event_name(enum lease_event e);
const char *lease_action_name(enum lease_action a);

#endif
