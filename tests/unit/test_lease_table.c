/* tests/unit/test_lease_table.c - the writer lease's life cycle as a state
 * machine (stor/lease.h): every edge of lease_next against the table
 * written out here, the table in lease.h's comment against the code,
 * refused and invalid transitions, lease_classify and a whole move of a
 * volume from one node to another. */
#include "testutil.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lease.h"

#define NFS 6		/* events of qsfs-fs: TAKE .. GIVE_UP */
#define NSTOR 5		/* events of qsfs-stor: JOBS .. HANDED */

/* The expected table, cell for cell: "NEXT action", "=" for the same
 * state. Written out again here (not taken from lease.c) so that a changed
 * edge fails. */
static const char *const want_fs[LEASE_NSTATES][NFS] = {
	/* TAKE, TAKEOVER, RENEW, STOP, STOP_UNHANDED, GIVE_UP */
	[LEASE_ST_NONE] = { "MOUNTED w", "MOUNTED w", "= fence", "= fence", "= fence", "= fence" },
	[LEASE_ST_MOUNTED] = { "MOUNTED w", "MOUNTED w", "MOUNTED w", "STOPPING w", "UNHANDED w",
			       "RELEASED w" },
	[LEASE_ST_STOPPING] = { "MOUNTED w", "MOUNTED w", "MOUNTED w", "STOPPING w", "UNHANDED w",
				"RELEASED w" },
	[LEASE_ST_UNHANDED] = { "MOUNTED w", "MOUNTED w", "MOUNTED w", "STOPPING w", "UNHANDED w",
				"RELEASED w" },
	[LEASE_ST_RELEASED] = { "MOUNTED w", "MOUNTED w", "MOUNTED w", "STOPPING w", "UNHANDED w",
				"RELEASED w" },
	[LEASE_ST_OTHER] = { "= refuse", "MOUNTED w", "= fence", "= fence", "= fence", "= fence" },
	[LEASE_ST_OTHER_UNHANDED] = { "= refuse", "MOUNTED w", "= fence", "= fence", "= fence",
				      "= fence" },
	[LEASE_ST_OTHER_EXPIRED] = { "MOUNTED w", "MOUNTED w", "= fence", "= fence", "= fence",
				     "= fence" },
	[LEASE_ST_OTHER_RELEASED] = { "MOUNTED w", "MOUNTED w", "= fence", "= fence", "= fence",
				      "= fence" },
};

static const char *const want_stor[LEASE_NSTATES][NSTOR] = {
	/* JOBS, EMPTY, UNHANDED, UNKNOWN, HANDED */
	[LEASE_ST_NONE] = { "= -", "= -", "= refuse", "= refuse", "= refuse" },
	[LEASE_ST_MOUNTED] = { "= -", "= -", "= refuse", "= refuse", "= refuse" },
	[LEASE_ST_STOPPING] = { "= renew", "= count", "UNHANDED w", "= renew", "RELEASED release" },
	[LEASE_ST_UNHANDED] = { "= renew", "= count", "= renew", "= renew", "RELEASED release" },
	[LEASE_ST_RELEASED] = { "= -", "= -", "= refuse", "= refuse", "= refuse" },
	[LEASE_ST_OTHER] = { "= fence", "= fence", "= fence", "= fence", "= fence" },
	[LEASE_ST_OTHER_UNHANDED] = { "= fence", "= fence", "= fence", "= fence", "= fence" },
	[LEASE_ST_OTHER_EXPIRED] = { "= fence", "= fence", "= fence", "= fence", "= fence" },
	[LEASE_ST_OTHER_RELEASED] = { "= fence", "= fence", "= fence", "= fence", "= fence" },
};

static int state_by_name(const char *n)
{
	for (int s = 0; s < LEASE_NSTATES; s++)
		if (!strcmp(lease_state_name((enum lease_state)s), n))
			return s;
	return -1;
}

static int event_by_name(const char *n)
{
	for (int e = 0; e < LEASE_NEVENTS; e++)
		if (!strcmp(lease_event_name((enum lease_event)e), n))
			return e;
	return -1;
}

static int action_by_name(const char *n)
{
	for (int a = 0; a < LEASE_NACTIONS; a++)
		if (!strcmp(lease_action_name((enum lease_action)a), n))
			return a;
	return -1;
}

/* Check lease_next(s, e) against the cell "NEXT action" (NEXT "=": s);
 * prints the edge and returns 1 when it differs. */
static int check_edge(int s, int e, const char *next, const char *action)
{
	int want_next = !strcmp(next, "=") ? s : state_by_name(next);
	int want_act = action_by_name(action);
	assert_true(want_next >= 0);
	assert_true(want_act >= 0);
	enum lease_action act = LEASE_NACTIONS;
	enum lease_state got = lease_next((enum lease_state)s, (enum lease_event)e, &act);
	if ((int)got == want_next && (int)act == want_act)
		return 0;
	print_error("edge %s x %s: want %s %s, got %s %s\n",
		    lease_state_name((enum lease_state)s), lease_event_name((enum lease_event)e),
		    lease_state_name((enum lease_state)want_next),
		    lease_action_name((enum lease_action)want_act), lease_state_name(got),
		    lease_action_name(act));
	return 1;
}

static int check_cell(int s, int e, const char *cell)
{
	char next[32], action[32];
	assert_int_equal(sscanf(cell, "%31s %31s", next, action), 2);
	return check_edge(s, e, next, action);
}

/* Every one of the 9 x 11 edges, as the table above says. */
static void test_every_edge(void **state)
{
	(void)state;
	assert_int_equal(NFS + NSTOR, LEASE_NEVENTS);
	int bad = 0, n = 0;
	for (int s = 0; s < LEASE_NSTATES; s++) {
		for (int e = 0; e < NFS; e++, n++)
			bad += check_cell(s, e, want_fs[s][e]);
		for (int e = 0; e < NSTOR; e++, n++)
			bad += check_cell(s, NFS + e, want_stor[s][e]);
	}
	assert_int_equal(n, LEASE_NSTATES * LEASE_NEVENTS);
	assert_int_equal(bad, 0);
}

/* The tables in lease.h's comment are the code: parse them and check
 * every cell, so that the documentation cannot drift from lease_next. */
static void test_comment_table_is_the_code(void **state)
{
	(void)state;
	const char *src = getenv("QSFS_SOURCE_DIR");
	assert_non_null(src);
	char path[4096];
	snprintf(path, sizeof path, "%s/stor/lease.h", src);
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	char line[512];
	int cols[LEASE_NEVENTS], ncols = 0, tables = 0, cells = 0, bad = 0;
	bool seen[LEASE_NSTATES][LEASE_NEVENTS] = { { false } };
	while (fgets(line, sizeof line, f)) {
		char *tok[16], *save = NULL;
		int nt = 0;
		for (char *t = strtok_r(line, " \t\n", &save); t && nt < 16;
		     t = strtok_r(NULL, " \t\n", &save))
			tok[nt++] = t;
		if (nt < 2 || strcmp(tok[0], "*"))
			continue;
		if (!strcmp(tok[1], "qsfs-fs") || !strcmp(tok[1], "qsfs-stor")) {
			ncols = 0;	/* a table's header: its events (else prose) */
			for (int i = 2; i < nt && ncols < LEASE_NEVENTS && event_by_name(tok[i]) >= 0; i++)
				cols[ncols++] = event_by_name(tok[i]);
			if (ncols && ncols == nt - 2) {
				tables++;
				continue;
			}
			ncols = 0;
		}
		int s = state_by_name(tok[1]);
		if (s < 0 || !ncols || nt != 2 + 2 * ncols) {
			ncols = s < 0 ? 0 : ncols;	/* past a table's rows */
			continue;
		}
		for (int i = 0; i < ncols; i++, cells++) {
			bad += check_edge(s, cols[i], tok[2 + 2 * i], tok[3 + 2 * i]);
			seen[s][cols[i]] = true;
		}
	}
	fclose(f);
	assert_int_equal(tables, 2);
	assert_int_equal(cells, LEASE_NSTATES * LEASE_NEVENTS);
	for (int s = 0; s < LEASE_NSTATES; s++)
		for (int e = 0; e < LEASE_NEVENTS; e++)
			assert_true(seen[s][e]);
	assert_int_equal(bad, 0);
}

/* Refused and fenced edges change nothing, and only writes move the
 * state; out-of-range input is refused. */
static void test_refused_and_invalid(void **state)
{
	(void)state;
	enum lease_action act;
	/* a live lease of another holder: no take without --takeover */
	assert_int_equal(lease_next(LEASE_ST_OTHER, LEASE_EV_TAKE, &act), LEASE_ST_OTHER);
	assert_int_equal(act, LEASE_ACT_REFUSE);
	assert_int_equal(lease_next(LEASE_ST_OTHER_UNHANDED, LEASE_EV_TAKE, &act),
			 LEASE_ST_OTHER_UNHANDED);
	assert_int_equal(act, LEASE_ACT_REFUSE);
	/* stor never releases (nor marks) a lease it was not counting for */
	enum lease_state idle[] = { LEASE_ST_NONE, LEASE_ST_MOUNTED, LEASE_ST_RELEASED };
	enum lease_event counted[] = { LEASE_EV_UNHANDED, LEASE_EV_UNKNOWN, LEASE_EV_HANDED };
	for (size_t i = 0; i < 3; i++) {
		for (size_t k = 0; k < 3; k++) {
			assert_int_equal(lease_next(idle[i], counted[k], &act), idle[i]);
			assert_int_equal(act, LEASE_ACT_REFUSE);
		}
	}
	/* out of range */
	act = LEASE_ACT_WRITE;
	assert_int_equal(lease_next(LEASE_NSTATES, LEASE_EV_TAKE, &act), LEASE_NSTATES);
	assert_int_equal(act, LEASE_ACT_REFUSE);
	act = LEASE_ACT_WRITE;
	assert_int_equal(lease_next(LEASE_ST_MOUNTED, LEASE_NEVENTS, &act), LEASE_ST_MOUNTED);
	assert_int_equal(act, LEASE_ACT_REFUSE);
	act = LEASE_ACT_WRITE;
	assert_int_equal(lease_next((enum lease_state)-1, LEASE_EV_TAKE, &act),
			 (enum lease_state)-1);
	assert_int_equal(act, LEASE_ACT_REFUSE);
	/* invariants over the whole table */
	int refused = 0;
	for (int s = 0; s < LEASE_NSTATES; s++) {
		for (int e = 0; e < LEASE_NEVENTS; e++) {
			enum lease_state n = lease_next((enum lease_state)s, (enum lease_event)e, &act);
			assert_true(act < LEASE_NACTIONS);
			if (act == LEASE_ACT_REFUSE || act == LEASE_ACT_FENCE ||
			    act == LEASE_ACT_NONE || act == LEASE_ACT_COUNT || act == LEASE_ACT_RENEW)
				assert_int_equal(n, s);	/* nothing written changes nothing */
			else
				assert_true(n == LEASE_ST_MOUNTED || n == LEASE_ST_STOPPING ||
					    n == LEASE_ST_UNHANDED || n == LEASE_ST_RELEASED);
			if (act == LEASE_ACT_FENCE)	/* only a lease not this node's fences */
				assert_true(s == LEASE_ST_NONE || s >= LEASE_ST_OTHER);
			if (s >= LEASE_ST_OTHER && e >= LEASE_EV_JOBS)
				assert_int_equal(act, LEASE_ACT_FENCE);
			refused += act == LEASE_ACT_REFUSE;
		}
	}
	assert_int_equal(refused, 2 + 3 * 3);
	assert_string_equal(lease_state_name(LEASE_NSTATES), "?");
	assert_string_equal(lease_event_name(LEASE_NEVENTS), "?");
	assert_string_equal(lease_action_name(LEASE_NACTIONS), "?");
}

static const uint8_t ME[LEASE_ID_SIZE] = { 1, 2, 3 }, YOU[LEASE_ID_SIZE] = { 9, 8, 7 };

static struct lease mk(const uint8_t *holder, uint32_t flags, int64_t heartbeat)
{
	struct lease l = { .seq = 5, .heartbeat = heartbeat, .timeout = 30, .flags = flags };
	memcpy(l.holder, holder, LEASE_ID_SIZE);
	return l;
}

static void test_classify(void **state)
{
	(void)state;
	const int64_t now = 1000000;
	struct lease l = mk(ME, LEASE_MOUNTED, now);
	assert_int_equal(lease_classify(NULL, ME, now), LEASE_ST_NONE);
	l.seq = 0;
	assert_int_equal(lease_classify(&l, ME, now), LEASE_ST_NONE);
	/* this node's: by flags, whatever its age */
	l = mk(ME, LEASE_MOUNTED, now - 3600);
	assert_int_equal(lease_classify(&l, ME, now), LEASE_ST_MOUNTED);
	l.flags = 0;
	assert_int_equal(lease_classify(&l, ME, now), LEASE_ST_STOPPING);
	l.flags = LEASE_UNHANDED;
	assert_int_equal(lease_classify(&l, ME, now), LEASE_ST_UNHANDED);
	l.flags = LEASE_RELEASED;
	assert_int_equal(lease_classify(&l, ME, now), LEASE_ST_RELEASED);
	l.flags = LEASE_MOUNTED | LEASE_RELEASED;	/* nobody writes it: mounted first */
	assert_int_equal(lease_classify(&l, ME, now), LEASE_ST_MOUNTED);
	l.flags = LEASE_RELEASED | LEASE_UNHANDED;
	assert_int_equal(lease_classify(&l, ME, now), LEASE_ST_RELEASED);
	/* no holder id yet: every lease is another's */
	l = mk(ME, LEASE_MOUNTED, now);
	assert_int_equal(lease_classify(&l, NULL, now), LEASE_ST_OTHER);
	/* another holder's: live until its timeout, then expired */
	l = mk(YOU, LEASE_MOUNTED, now - 29);
	assert_int_equal(lease_classify(&l, ME, now), LEASE_ST_OTHER);
	l.heartbeat = now - 30;
	assert_int_equal(lease_classify(&l, ME, now), LEASE_ST_OTHER_EXPIRED);
	l.flags = 0;	/* stopping, its stor gone */
	assert_int_equal(lease_classify(&l, ME, now), LEASE_ST_OTHER_EXPIRED);
	l.heartbeat = now + 5;	/* a clock ahead of ours */
	assert_int_equal(lease_classify(&l, ME, now), LEASE_ST_OTHER);
	/* unhanded never expires; released is released at any age */
	l = mk(YOU, LEASE_UNHANDED, now - 1000000);
	assert_int_equal(lease_classify(&l, ME, now), LEASE_ST_OTHER_UNHANDED);
	l.flags = LEASE_RELEASED;
	assert_int_equal(lease_classify(&l, ME, now), LEASE_ST_OTHER_RELEASED);
	l.flags = LEASE_RELEASED | LEASE_UNHANDED;
	assert_int_equal(lease_classify(&l, ME, now), LEASE_ST_OTHER_RELEASED);
	l.heartbeat = now;
	assert_int_equal(lease_classify(&l, ME, now), LEASE_ST_OTHER_RELEASED);
}

/* lease_blocks: exactly the states whose TAKE is refused. */
static void test_blocks_is_a_refused_take(void **state)
{
	(void)state;
	const int64_t now = 5000;
	const uint32_t flags[] = { 0, LEASE_MOUNTED, LEASE_RELEASED, LEASE_UNHANDED };
	const int64_t ages[] = { 0, 29, 30, 31, 100000 };
	const uint8_t *holders[] = { ME, YOU };
	for (size_t h = 0; h < 2; h++) {
		for (size_t f = 0; f < 4; f++) {
			for (size_t a = 0; a < 5; a++) {
				struct lease l = mk(holders[h], flags[f], now - ages[a]);
				int64_t age;
				enum lease_action act;
				lease_next(lease_classify(&l, ME, now), LEASE_EV_TAKE, &act);
				assert_int_equal(lease_blocks(&l, ME, now, &age),
						 act == LEASE_ACT_REFUSE);
				assert_int_equal(age, ages[a]);
			}
		}
	}
}

/* What a holder writes for a state reads back as that state. */
static void test_state_flags(void **state)
{
	(void)state;
	enum lease_state mine[] = { LEASE_ST_MOUNTED, LEASE_ST_STOPPING, LEASE_ST_UNHANDED,
				    LEASE_ST_RELEASED };
	for (size_t i = 0; i < 4; i++) {
		struct lease l = mk(ME, lease_state_flags(mine[i]), 0);
		assert_int_equal(lease_classify(&l, ME, 10), mine[i]);
	}
	assert_int_equal(lease_state_flags(LEASE_ST_MOUNTED), LEASE_MOUNTED);
	assert_int_equal(lease_state_flags(LEASE_ST_STOPPING), 0);
	assert_int_equal(lease_state_flags(LEASE_ST_UNHANDED), LEASE_UNHANDED);
	assert_int_equal(lease_state_flags(LEASE_ST_RELEASED), LEASE_RELEASED);
	assert_int_equal(lease_state_flags(LEASE_ST_OTHER), 0);
	assert_int_equal(lease_state_flags(LEASE_ST_NONE), 0);
}

/* Apply event e as node id sees lease *l at time now: the action, with
 * the record rewritten (by id, at now) when the action writes. */
static enum lease_action step(struct lease *l, const uint8_t *id, enum lease_event e,
			      int64_t now)
{
	enum lease_action act;
	enum lease_state next = lease_next(lease_classify(l->seq ? l : NULL, id, now), e, &act);
	if (act == LEASE_ACT_WRITE || act == LEASE_ACT_RELEASE) {
		memcpy(l->holder, id, LEASE_ID_SIZE);
		l->flags = lease_state_flags(next);
		l->heartbeat = now;
		l->timeout = 30;
		l->seq++;
	} else if (act == LEASE_ACT_RENEW) {
		l->heartbeat = now;
		l->seq++;
	}
	return act;
}

/* A volume moves from node A (ME) to node B (YOU) and back. */
static void test_life_cycle(void **state)
{
	(void)state;
	struct lease l = { 0 };
	int64_t t = 100;
	assert_int_equal(step(&l, YOU, LEASE_EV_JOBS, t), LEASE_ACT_NONE);	/* nobody's */
	assert_int_equal(step(&l, ME, LEASE_EV_TAKE, t), LEASE_ACT_WRITE);
	assert_int_equal(lease_classify(&l, ME, t), LEASE_ST_MOUNTED);
	assert_int_equal(step(&l, YOU, LEASE_EV_TAKE, t + 1), LEASE_ACT_REFUSE);
	assert_int_equal(step(&l, YOU, LEASE_EV_EMPTY, t + 1), LEASE_ACT_FENCE);
	assert_int_equal(step(&l, ME, LEASE_EV_RENEW, t + 10), LEASE_ACT_WRITE);
	assert_int_equal(step(&l, ME, LEASE_EV_JOBS, t + 11), LEASE_ACT_NONE);	/* fs renews */
	/* A stops with segments not handed off: never expires */
	assert_int_equal(step(&l, ME, LEASE_EV_STOP_UNHANDED, t + 20), LEASE_ACT_WRITE);
	assert_int_equal(lease_classify(&l, YOU, t + 100000), LEASE_ST_OTHER_UNHANDED);
	assert_int_equal(step(&l, YOU, LEASE_EV_TAKE, t + 100000), LEASE_ACT_REFUSE);
	/* A's stor uploads, then finds them handed off and releases */
	t += 100000;
	assert_int_equal(step(&l, ME, LEASE_EV_JOBS, t), LEASE_ACT_RENEW);
	assert_int_equal(step(&l, ME, LEASE_EV_EMPTY, t + 2), LEASE_ACT_COUNT);
	assert_int_equal(step(&l, ME, LEASE_EV_UNKNOWN, t + 2), LEASE_ACT_RENEW);
	assert_int_equal(lease_classify(&l, ME, t + 2), LEASE_ST_UNHANDED);
	assert_int_equal(step(&l, ME, LEASE_EV_HANDED, t + 4), LEASE_ACT_RELEASE);
	assert_int_equal(lease_classify(&l, ME, t + 4), LEASE_ST_RELEASED);
	assert_int_equal(step(&l, ME, LEASE_EV_EMPTY, t + 6), LEASE_ACT_NONE);
	/* B's stor waits (a move), B's qsfs-fs takes it, A is fenced */
	assert_int_equal(lease_classify(&l, YOU, t + 6), LEASE_ST_OTHER_RELEASED);
	assert_int_equal(step(&l, YOU, LEASE_EV_JOBS, t + 6), LEASE_ACT_FENCE);
	assert_int_equal(step(&l, YOU, LEASE_EV_TAKE, t + 7), LEASE_ACT_WRITE);
	assert_int_equal(step(&l, YOU, LEASE_EV_JOBS, t + 8), LEASE_ACT_NONE);
	assert_int_equal(step(&l, ME, LEASE_EV_JOBS, t + 8), LEASE_ACT_FENCE);
	assert_int_equal(step(&l, ME, LEASE_EV_RENEW, t + 8), LEASE_ACT_FENCE);
	/* B stops cleanly; its stor marks nothing and releases once empty */
	assert_int_equal(step(&l, YOU, LEASE_EV_STOP, t + 9), LEASE_ACT_WRITE);
	assert_int_equal(step(&l, YOU, LEASE_EV_EMPTY, t + 10), LEASE_ACT_COUNT);
	assert_int_equal(step(&l, YOU, LEASE_EV_UNHANDED, t + 10), LEASE_ACT_WRITE);
	assert_int_equal(lease_classify(&l, YOU, t + 10), LEASE_ST_UNHANDED);
	assert_int_equal(step(&l, YOU, LEASE_EV_HANDED, t + 12), LEASE_ACT_RELEASE);
	/* B dies mounted after taking it again: A waits for the expiry */
	assert_int_equal(step(&l, YOU, LEASE_EV_TAKE, t + 20), LEASE_ACT_WRITE);
	assert_int_equal(step(&l, ME, LEASE_EV_TAKE, t + 49), LEASE_ACT_REFUSE);
	assert_int_equal(step(&l, ME, LEASE_EV_TAKE, t + 50), LEASE_ACT_WRITE);
	assert_int_equal(lease_classify(&l, ME, t + 50), LEASE_ST_MOUNTED);
	/* B comes back: fenced, and only --takeover takes it */
	assert_int_equal(step(&l, YOU, LEASE_EV_RENEW, t + 51), LEASE_ACT_FENCE);
	assert_int_equal(step(&l, YOU, LEASE_EV_STOP, t + 51), LEASE_ACT_FENCE);
	assert_int_equal(step(&l, YOU, LEASE_EV_TAKE, t + 51), LEASE_ACT_REFUSE);
	assert_int_equal(step(&l, YOU, LEASE_EV_TAKEOVER, t + 51), LEASE_ACT_WRITE);
	assert_int_equal(lease_classify(&l, ME, t + 51), LEASE_ST_OTHER);
	/* a stale cache gives it up at once */
	assert_int_equal(step(&l, YOU, LEASE_EV_GIVE_UP, t + 52), LEASE_ACT_WRITE);
	assert_int_equal(lease_classify(&l, ME, t + 52), LEASE_ST_OTHER_RELEASED);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_edge),
		cmocka_unit_test(test_comment_table_is_the_code),
		cmocka_unit_test(test_refused_and_invalid),
		cmocka_unit_test(test_classify),
		cmocka_unit_test(test_blocks_is_a_refused_take),
		cmocka_unit_test(test_state_flags),
		cmocka_unit_test(test_life_cycle),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
