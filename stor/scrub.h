/* stor/scrub.h - qsfs-stor's scrub, check and repair passes (state in
 * d->scrub, under d->mu), and the daemon's side of the leak check
 * (leaks.h).
 *
 * A pass walks every object the catalog lists (and so every stored segment
 * and the checkpoints a restore uses), checks it against its newest
 * metadata, and fixes what it finds: missing or bad shards by storing the
 * object again as the next generation (obj_repair, on usable backends;
 * with fewer than k good shards too, as shards swapped between keys fail
 * their checksums yet decode: only a failed decode makes it unreadable),
 * missing metadata copies by copying the newest one (obj_sync_meta).
 *   scrub  reads every shard (checksums), rate-limited to stor.scrub_rate:
 *          on SCRUB or REPAIR, and every stor.scrub_interval seconds;
 *   check  only asks whether every piece exists: cheap, and started by
 *          itself when a backend that was down answers again, when the
 *          configured backends changed since the last start, and while
 *          objects are marked degraded and every backend is up.
 * Interrupted (stop), a pass simply ends: every object is always readable
 * from its current generation. After a complete pass the degraded marks
 * of unlisted objects go (forget_unlisted) and a leak check (no fix)
 * refreshes STATUS's remote bytes.
 */
#ifndef QSFS_STOR_SCRUB_H
#define QSFS_STOR_SCRUB_H

#include <json-c/json.h>
#include <stdbool.h>

struct ctx;
struct stord;

/* Ask for a check pass; why (may be NULL) is logged when none was asked
 * for yet. Wakes the scrub thread; does not block; d->mu held. */
void request_check(struct stord *d, const char *why);

/* Ask for a scrub pass (SCRUB, REPAIR). Returns true when one was
 * running or asked for already. Wakes the scrub thread; does not block;
 * takes d->mu (not held). */
bool scrub_request(struct stord *d);

/* Compare the configured backends with those of the last start
 * (state_dir/backends) and ask for a check pass after a change (one
 * replaced, added, removed): shards on a backend that is gone are rebuilt
 * on the configured ones. Saves the list. At start, before the scrub
 * thread; writes state_dir; takes d->mu (not held). */
void check_backend_change(struct stord *d);

/* Run a leak check with c's handles (c->d the daemon; fix: and remove
 * what it finds); keep its numbers for STATUS. 0, -EPERM when fenced
 * (this node's catalog is not the volume's), or leak_check's error. *out
 * (if not NULL) gets the report (json_object_put it). Blocks on every
 * backend's listing; one check at a time (d->leak_mu); takes d->mu and
 * d->cat_mu (neither held). */
int leak_check_run(struct ctx *c, bool fix, json_object **out);

/* The scrub thread: arg is its struct ctx. Runs the passes asked for (or
 * due: stor.scrub_interval, degraded objects with every backend up) until
 * d->stop. Blocks on the backends with no lock held; waits on
 * d->scrub.cv with d->mu. */
void *scrub_main(void *arg);

#endif
