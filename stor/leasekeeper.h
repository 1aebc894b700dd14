/* stor/leasekeeper.h - qsfs-stor's side of the writer lease (lease.h).
 *
 * qsfs-fs takes and renews the lease while mounted. The lease thread looks
 * at it every LEASE_TICK_S (and at once when woken through d->lease_cv: a
 * LEASE request, the queue emptying, the stop): if it names another
 * holder, uploads stop (fenced); if it is this node's and its qsfs-fs has
 * stopped cleanly, stor renews it while uploads are pending and releases
 * it once the queue is empty, so another host may start at once.
 */
#ifndef QSFS_STOR_LEASEKEEPER_H
#define QSFS_STOR_LEASEKEEPER_H

#include <stddef.h>
#include <stdint.h>

struct ctx;
struct stord;

#define LEASE_TICK_S 2

/* What lease_tick last learnt of the hand-offs a stopped qsfs-fs left, as
 * one sentence into buf ("" when none); returns buf. Does not block;
 * d->mu held. */
const char *handoffs_text(struct stord *d, char *buf, size_t len);

/* Look at the lease once with c's handles (c->d the daemon): set
 * d->fenced, d->lease_state and the hand-off counts, and renew, mark or
 * release this node's lease as qsfs-fs's stop requires, all as lease.h's
 * table (lease_next) decides for the state lease_classify finds and the
 * queue's events (JOBS or EMPTY, then the count's). *last_beat: the
 * unix s of this caller's last renewal. Blocks on the backends and on
 * reading the cache directory; takes d->mu (not held). */
void lease_tick(struct ctx *c, int64_t *last_beat);

/* The lease thread: arg is its struct ctx. lease_tick every LEASE_TICK_S
 * or when woken, until d->stop. Takes d->mu (waits on d->lease_cv). */
void *lease_main(void *arg);

/* Wake the lease thread now (a LEASE request: qsfs-fs stopped). Takes
 * d->mu (not held); does not block. */
void lease_poke(struct stord *d);

#endif
