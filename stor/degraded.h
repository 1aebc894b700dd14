/* stor/degraded.h - qsfs-stor's list of degraded objects (d->degraded,
 * under d->mu): objects a read, a store or a pass found readable but with
 * missing or corrupt shards, so they have lost redundancy until repaired.
 *
 * Kept in state_dir/degraded, one "NAME SINCE WHY" line each, rewritten
 * atomically on every change (changes are rare: a damaged read, a clean
 * read of a repaired object).
 */
#ifndef QSFS_STOR_DEGRADED_H
#define QSFS_STOR_DEGRADED_H

struct stord;

/* Record what a successful retrieval, store or pass of name saw: damage
 * ("" = none: the object is whole, its mark goes). Logs the change and
 * saves the list when it changed. Writes state_dir (fsync); takes d->mu
 * (not held). */
void note_damage(struct stord *d, const char *name, const char *damage);

/* Load the list saved by the last run (at start: no thread yet; a bad
 * line is logged and skipped). Reads state_dir; no lock. */
void load_degraded(struct stord *d);

/* After a complete pass: objects marked degraded that the catalog no
 * longer lists (checkpoints superseded, segments deleted) are forgotten:
 * no reader needs them, and no pass would ever clear their mark. Takes
 * d->mu and d->cat_mu (not held; never together); may write state_dir. */
void forget_unlisted(struct stord *d);

#endif
