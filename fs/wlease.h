/* fs/wlease.h - qsfs-fs's side of the volume's writer lease
 * (stor/lease.h): taken before the cache is restored or opened, renewed
 * while mounted, handed to qsfs-stor at a clean stop.
 */
#ifndef QSFS_FS_WLEASE_H
#define QSFS_FS_WLEASE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct qsfs_config;
struct wlease;

/* Take the lease for this node (holder id in CACHE_DIR/HOLDER, created if
 * missing). Refused (-EBUSY) while another holder's lease is live, with err
 * naming the holder, its host and the lease age, unless takeover. Refused
 * (-EIO) when fewer than a majority of backends answer: no one can then be
 * sure no other host writes. -ENOENT when the volume is not formatted. */
int wlease_take(const struct qsfs_config *cfg, bool takeover, struct wlease **out, char *err,
		size_t errlen);

/* The highest segment id the volume's catalog lists as stored (0: none).
 * A local cache whose newest sealed segment is lower was left behind by
 * another writer and must not be written to. */
int wlease_remote_hi(struct wlease *w, uint64_t *hi, char *err, size_t errlen);

/* Seconds between renewals (a third of fs.lease_timeout). */
unsigned wlease_period(const struct wlease *w);

/* Heartbeat. 0; -ESTALE when another holder has taken the lease (err says
 * who): this node must stop writing; another negative errno when it could
 * not be renewed now (backends unreachable; try again next period). */
int wlease_renew(struct wlease *w, char *err, size_t errlen);

/* Clean stop: clear the mounted flag. The lease stays held (qsfs-stor
 * renews and then releases it once its uploads are done). unhanded: the
 * cache still holds segments never handed off; the lease is marked
 * LEASE_UNHANDED so that it does not expire while they are only here. */
void wlease_unmount(struct wlease *w, bool unhanded);

/* Give the lease up at once (LEASE_RELEASED), for a node whose cache
 * turned out stale: nothing it holds can go to the volume any more. */
void wlease_release(struct wlease *w);

void wlease_free(struct wlease *w);

#endif
