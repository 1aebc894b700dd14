/* cache/seglife.h - a segment's life, as a state-transition table.
 *
 * A segment's state is kept as flags (cache_int.h: SF_SEALED, SF_HANDED,
 * SF_CONFIRMED, SF_LOCAL) plus, once removed, its place in the graveyard.
 * Every change of those flags at run time goes through seglife_next (via
 * cache.c's seg_step), so this table is what the code does:
 *
 *   state \ event  SEAL    HAND_OFF   CONFIRM    EVICT    FETCH      SET_ASIDE REMOVE   LOSE
 *   ACTIVE         SEALED  -          -          -        -          -         -        -
 *   SEALED         -       HANDED     CONFIRMED  -        -          -         REMOVED* LOST
 *   HANDED         -       HANDED     CONFIRMED  -        -          AWAY      -        -
 *   AWAY           -       AWAY       EVICTED    -        HANDED     -         -        -
 *   CONFIRMED      -       CONFIRMED  CONFIRMED  EVICTED  -          EVICTED   REMOVED  -
 *   EVICTED        -       EVICTED    EVICTED    -        CONFIRMED  -         REMOVED  -
 *   REMOVED        -       -          -          -        -          -         -        -
 *   LOST           -       LOST_NOTED EVICTED    -        -          -         -        LOST
 *   LOST_NOTED     -       LOST_NOTED -          -        -          -         -        LOST_NOTED
 *   (- : refused, the state is unchanged and the caller has a bug;
 *    * : only when nothing is handed off (a local-only log): with hand-offs
 *        on, a segment may go only once storage has it)
 *
 *   ACTIVE     being appended to; the only segment that is ever written
 *   SEALED     sealed (read-only for good), not yet handed to storage
 *   HANDED     storage journaled it (the segment-sealed hand-off said so);
 *              not yet known to be stored; its file is local
 *   AWAY       handed off, not yet known to be stored, and its file is
 *              not local (it failed its checks and was set aside, or went
 *              before a restart): storage's copy is fetched on read
 *   CONFIRMED  storage has it (all shards and the catalog); file local
 *   EVICTED    confirmed, file deleted locally; a read fetches it back
 *   REMOVED    garbage collection removed it (nothing live; state.log
 *              says so); terminal
 *   LOST       sealed, never handed off, and its file is gone (deleted,
 *              or set aside as damaged): what it held exists nowhere this
 *              host knows of; reads of its records fail with EIO naming
 *              it. Its hand-off (the segment-lost event) asks storage to
 *              record the loss
 *   LOST_NOTED storage recorded the loss (its catalog passes the
 *              segment, so later checkpoints may go); terminal while the
 *              log is open
 *
 * CONFIRM of a SEALED segment is not a mistake: storage may have it
 * although the HANDED fact was lost (a crash between storage's answer and
 * the journal write). HAND_OFF and CONFIRM are idempotent where a retry
 * or a repeated answer can bring them again. SET_ASIDE is EVICT of a local
 * copy that failed its checks (renamed *.corrupt, fetched again on read).
 * Guards beyond the state (a segment is removed only when it is dead, its
 * killers are fsynced and the floors allow it: cache_gc.c) are the
 * callers'.
 */
#ifndef QSFS_CACHE_SEGLIFE_H
#define QSFS_CACHE_SEGLIFE_H

#include <stdbool.h>

enum seg_life {
	SL_ACTIVE,
	SL_SEALED,
	SL_HANDED,
	SL_CONFIRMED,
	SL_EVICTED,
	SL_REMOVED,
	SL_LOST,
	SL_LOST_NOTED,
	SL_AWAY,
	SL_NSTATES,
	SL_REFUSED = -1
};

enum seg_event {
	SE_SEAL,
	SE_HAND_OFF,
	SE_CONFIRM,
	SE_EVICT,
	SE_FETCH,
	SE_SET_ASIDE,
	SE_REMOVE,
	SE_LOSE,
	SE_NEVENTS
};

/* The state after event e in state s: SL_REFUSED when e cannot happen in
 * s. handoff_on: the log hands segments to storage (else SEALED may be
 * removed). Pure. */
enum seg_life seglife_next(enum seg_life s, enum seg_event e, bool handoff_on);

/* The state the flags (SF_* of cache_int.h) say; removed: the segment is
 * in the graveyard. Pure. */
enum seg_life seglife_of(unsigned flags, bool removed);

/* The flags after event e (which seglife_next allowed): the bits the
 * event sets or clears; other bits are kept. Pure. */
unsigned seglife_flags(unsigned flags, enum seg_event e);

/* Names for messages: "sealed", "hand-off", ... */
const char *seglife_state_name(enum seg_life s);
const char *seglife_event_name(enum seg_event e);

#endif
