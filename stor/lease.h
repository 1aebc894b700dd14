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
 * never expires); *age is the seconds since its heartbeat. */
bool lease_blocks(const struct lease *l, const uint8_t me[LEASE_ID_SIZE], int64_t now,
		  int64_t *age);

/* This node's holder id, from CACHE_DIR/HOLDER; with create, a new random
 * one is made (durably) when the file is missing. 0, -ENOENT (missing,
 * !create), -EBADMSG (malformed) or -errno. */
int lease_holder_id(const char *cache_dir, bool create, uint8_t id[LEASE_ID_SIZE]);

/* "holder 0123abcd on host H (pid P), last heartbeat N s ago[, mounted]"
 * into buf. */
void lease_describe(const struct lease *l, int64_t now, char *buf, size_t len);

#endif
