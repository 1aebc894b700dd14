/* test_seglife: a segment's life (cache/seglife.h) through every edge of
 * its table, against an independent list of the allowed transitions, and
 * the flags each event leaves behind agreeing with the state the table
 * names. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "../../cache/cache_int.h"
#include "../../cache/seglife.h"

struct edge {
	enum seg_life from;
	enum seg_event e;
	enum seg_life to;
	int handoff;	/* 1: only with hand-offs on, 0: only off, -1: both */
};

/* What may happen, written out one line per edge (the header's table). */
static const struct edge allowed[] = {
	{ SL_ACTIVE, SE_SEAL, SL_SEALED, -1 },
	{ SL_SEALED, SE_HAND_OFF, SL_HANDED, -1 },
	{ SL_SEALED, SE_CONFIRM, SL_CONFIRMED, -1 },	/* HANDED fact lost in a crash */
	{ SL_SEALED, SE_REMOVE, SL_REMOVED, 0 },	/* local-only log */
	{ SL_HANDED, SE_HAND_OFF, SL_HANDED, -1 },
	{ SL_HANDED, SE_CONFIRM, SL_CONFIRMED, -1 },
	{ SL_HANDED, SE_SET_ASIDE, SL_AWAY, -1 },	/* storage's copy is fetched */
	{ SL_AWAY, SE_HAND_OFF, SL_AWAY, -1 },
	{ SL_AWAY, SE_CONFIRM, SL_EVICTED, -1 },
	{ SL_AWAY, SE_FETCH, SL_HANDED, -1 },
	{ SL_CONFIRMED, SE_HAND_OFF, SL_CONFIRMED, -1 },
	{ SL_CONFIRMED, SE_CONFIRM, SL_CONFIRMED, -1 },
	{ SL_CONFIRMED, SE_EVICT, SL_EVICTED, -1 },
	{ SL_CONFIRMED, SE_SET_ASIDE, SL_EVICTED, -1 },
	{ SL_CONFIRMED, SE_REMOVE, SL_REMOVED, -1 },
	{ SL_EVICTED, SE_HAND_OFF, SL_EVICTED, -1 },
	{ SL_EVICTED, SE_CONFIRM, SL_EVICTED, -1 },
	{ SL_EVICTED, SE_FETCH, SL_CONFIRMED, -1 },
	{ SL_EVICTED, SE_REMOVE, SL_REMOVED, -1 },
	{ SL_SEALED, SE_LOSE, SL_LOST, -1 },
	{ SL_LOST, SE_LOSE, SL_LOST, -1 },
	{ SL_LOST, SE_HAND_OFF, SL_LOST_NOTED, -1 },
	{ SL_LOST, SE_CONFIRM, SL_EVICTED, -1 },	/* storage had it after all */
	{ SL_LOST_NOTED, SE_HAND_OFF, SL_LOST_NOTED, -1 },
	{ SL_LOST_NOTED, SE_LOSE, SL_LOST_NOTED, -1 },
};

static enum seg_life expected(enum seg_life s, enum seg_event e, bool on)
{
	for (size_t i = 0; i < sizeof allowed / sizeof *allowed; i++)
		if (allowed[i].from == s && allowed[i].e == e &&
		    (allowed[i].handoff < 0 || allowed[i].handoff == (int)on))
			return allowed[i].to;
	return SL_REFUSED;
}

static void test_every_edge(void **state)
{
	(void)state;
	unsigned n_allowed = 0, n_refused = 0;
	for (int on = 0; on <= 1; on++)
		for (int s = 0; s < SL_NSTATES; s++)
			for (int e = 0; e < SE_NEVENTS; e++) {
				enum seg_life got = seglife_next((enum seg_life)s,
								 (enum seg_event)e, on);
				enum seg_life want = expected((enum seg_life)s,
							      (enum seg_event)e, on);
				if (got != want)
					fail_msg("%s + %s (hand-offs %s): %s, want %s",
						 seglife_state_name((enum seg_life)s),
						 seglife_event_name((enum seg_event)e),
						 on ? "on" : "off", seglife_state_name(got),
						 seglife_state_name(want));
				if (got == SL_REFUSED)
					n_refused++;
				else
					n_allowed++;
			}
	assert_int_equal(n_allowed, 2 * 24 + 1);	/* 24 edges both ways, 1 off only */
	assert_int_equal(n_refused, 2 * SL_NSTATES * SE_NEVENTS - n_allowed);
	/* out of range: refused, never an index past the table */
	assert_int_equal(seglife_next(SL_NSTATES, SE_SEAL, true), SL_REFUSED);
	assert_int_equal(seglife_next(SL_ACTIVE, SE_NEVENTS, true), SL_REFUSED);
	assert_int_equal(seglife_next(SL_REFUSED, SE_SEAL, true), SL_REFUSED);
	assert_string_equal(seglife_state_name(SL_REFUSED), "refused");
}

/* Flags that say each state (several spellings where history differs:
 * a segment confirmed without its HANDED fact). */
static const struct {
	enum seg_life s;
	unsigned flags;
} spellings[] = {
	{ SL_ACTIVE, SF_LOCAL },
	{ SL_ACTIVE, SF_LOCAL | SF_DIRTY },
	{ SL_SEALED, SF_LOCAL | SF_SEALED },
	{ SL_HANDED, SF_LOCAL | SF_SEALED | SF_HANDED },
	{ SL_AWAY, SF_SEALED | SF_HANDED },	/* set aside, not yet fetched */
	{ SL_CONFIRMED, SF_LOCAL | SF_SEALED | SF_HANDED | SF_CONFIRMED },
	{ SL_CONFIRMED, SF_LOCAL | SF_SEALED | SF_CONFIRMED },
	{ SL_EVICTED, SF_SEALED | SF_HANDED | SF_CONFIRMED },
	{ SL_EVICTED, SF_SEALED | SF_CONFIRMED | SF_DIRTY },
	{ SL_LOST, SF_SEALED | SF_LOST },
	{ SL_LOST, SF_SEALED | SF_LOST | SF_DIRTY },
	{ SL_LOST_NOTED, SF_SEALED | SF_LOST | SF_HANDED },
};

static void test_flags_agree_with_the_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof spellings / sizeof *spellings; i++) {
		unsigned f = spellings[i].flags;
		assert_int_equal(seglife_of(f, false), spellings[i].s);
		assert_int_equal(seglife_of(f, true), SL_REMOVED);
		for (int on = 0; on <= 1; on++)
			for (int e = 0; e < SE_NEVENTS; e++) {
				enum seg_life to = seglife_next(spellings[i].s, (enum seg_event)e,
								on);
				if (to == SL_REFUSED || to == SL_REMOVED)
					continue;	/* removal: the graveyard says it */
				unsigned nf = seglife_flags(f, (enum seg_event)e);
				if (seglife_of(nf, false) != to)
					fail_msg("flags 0x%x + %s: flags 0x%x say %s, the table %s", f,
						 seglife_event_name((enum seg_event)e), nf,
						 seglife_state_name(seglife_of(nf, false)),
						 seglife_state_name(to));
				/* bits the event is not about are kept */
				assert_int_equal(nf & SF_DIRTY, f & SF_DIRTY);
			}
	}
	/* a lost segment has no file */
	assert_int_equal(seglife_flags(SF_LOCAL | SF_SEALED, SE_LOSE) & SF_LOCAL, 0);
	/* removal takes the file away */
	assert_int_equal(seglife_flags(SF_LOCAL | SF_SEALED | SF_CONFIRMED, SE_REMOVE) & SF_LOCAL, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_edge),
		cmocka_unit_test(test_flags_agree_with_the_table),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
