/* cache/seglife.c - see seglife.h. */
#include "seglife.h"

#include "cache_int.h"

#define R SL_REFUSED
static const enum seg_life table[SL_NSTATES][SE_NEVENTS] = {
	/*               SEAL       HAND_OFF      CONFIRM       EVICT        FETCH         SET_ASIDE    REMOVE      LOSE */
	[SL_ACTIVE] = { SL_SEALED, R, R, R, R, R, R, R },
	[SL_SEALED] = { R, SL_HANDED, SL_CONFIRMED, R, R, R, SL_REMOVED, SL_LOST },
	[SL_HANDED] = { R, SL_HANDED, SL_CONFIRMED, R, R, SL_AWAY, R, R },
	[SL_CONFIRMED] = { R, SL_CONFIRMED, SL_CONFIRMED, SL_EVICTED, R, SL_EVICTED, SL_REMOVED, R },
	[SL_EVICTED] = { R, SL_EVICTED, SL_EVICTED, R, SL_CONFIRMED, R, SL_REMOVED, R },
	[SL_REMOVED] = { R, R, R, R, R, R, R, R },
	[SL_LOST] = { R, SL_LOST_NOTED, SL_EVICTED, R, R, R, R, SL_LOST },
	[SL_LOST_NOTED] = { R, SL_LOST_NOTED, R, R, R, R, R, SL_LOST_NOTED },
	[SL_AWAY] = { R, SL_AWAY, SL_EVICTED, R, SL_HANDED, R, R, R },
};
#undef R

enum seg_life seglife_next(enum seg_life s, enum seg_event e, bool handoff_on)
{
	if (s < 0 || s >= SL_NSTATES || e < 0 || e >= SE_NEVENTS)
		return SL_REFUSED;
	if (s == SL_SEALED && e == SE_REMOVE && handoff_on)
		return SL_REFUSED;	/* storage must have it first */
	return table[s][e];
}

enum seg_life seglife_of(unsigned flags, bool removed)
{
	if (removed)
		return SL_REMOVED;
	if (!(flags & SF_SEALED))
		return SL_ACTIVE;
	if (flags & SF_LOST)
		return flags & SF_HANDED ? SL_LOST_NOTED : SL_LOST;
	if (flags & SF_CONFIRMED)
		return flags & SF_LOCAL ? SL_CONFIRMED : SL_EVICTED;
	if (flags & SF_HANDED)
		return flags & SF_LOCAL ? SL_HANDED : SL_AWAY;
	return SL_SEALED;
}

unsigned seglife_flags(unsigned flags, enum seg_event e)
{
	switch (e) {
	case SE_SEAL:
		return flags | SF_SEALED;
	case SE_HAND_OFF:
		return flags | SF_HANDED;
	case SE_CONFIRM:	/* from LOST: storage had it after all, so it was
				 * handed off too */
		return (flags | SF_CONFIRMED | (flags & SF_LOST ? SF_HANDED : 0)) & ~SF_LOST;
	case SE_LOSE:
		return (flags | SF_LOST) & ~SF_LOCAL;
	case SE_EVICT:
	case SE_SET_ASIDE:
	case SE_REMOVE:
		return flags & ~SF_LOCAL;
	case SE_FETCH:
		return flags | SF_LOCAL;
	default:
		return flags;
	}
}

const char *seglife_state_name(enum seg_life s)
{
	static const char *const n[SL_NSTATES] = { "active", "sealed", "handed off", "confirmed",
						    "evicted", "removed", "lost",
						    "lost (storage told)", "handed off, not local" };
	return s >= 0 && s < SL_NSTATES ? n[s] : "refused";
}

const char *seglife_event_name(enum seg_event e)
{
	static const char *const n[SE_NEVENTS] = { "seal", "hand-off", "confirm", "evict",
						    "fetch", "set aside", "remove", "lose" };
	return e >= 0 && e < SE_NEVENTS ? n[e] : "?";
}
