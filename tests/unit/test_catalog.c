/* tests/unit/test_catalog.c - the volume catalog: segments stored out of
 * order, the checkpoint window, round trips through six real backends
 * (three redis-servers, three dir://), the newest copy winning, a tampered
 * or foreign copy ignored, and a minority of answers refused. */
#include "testutil.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"

#define NB 6
#define NREDIS 3

static pid_t pids[NREDIS];
static int ports[NREDIS];
static char *dir;

static int setup(void **state)
{
	(void)state;
	assert_true(sodium_init() >= 0);
	dir = tu_mkdtemp();
	tu_redis_start_n(NREDIS, ports, pids);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	tu_redis_stop_n(NREDIS, pids);
	tu_rmrf(dir);
	free(dir);
	return 0;
}

struct rig {
	struct objstore s;
	struct backend *b[NB];
};

static void rig_open(struct rig *g, uint8_t keybyte)
{
	memset(g, 0, sizeof *g);
	g->s.k = 4;
	g->s.m = 2;
	memset(g->s.volume_id, 0xcd, 16);
	snprintf(g->s.volhex, sizeof g->s.volhex, "cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd");
	memset(g->s.meta_key, keybyte, 32);
	for (int i = 0; i < NB; i++) {
		char url[512];
		if (i < NREDIS)
			snprintf(url, sizeof url, "redis://127.0.0.1:%d/0", ports[i]);
		else
			snprintf(url, sizeof url, "dir://%s/d%d", dir, i);
		struct backend_url u;
		const char *why;
		assert_int_equal(backend_url_parse(url, &u, &why), 0);
		assert_int_equal(backend_open(&u, 1000, &g->b[i]), 0);
		backend_url_free(&u);
	}
	g->s.backends = g->b;
	g->s.nbackends = NB;
}

static void rig_close(struct rig *g)
{
	for (int i = 0; i < NB; i++)
		backend_close(g->b[i]);
}

static void test_segments_and_checkpoint_window(void **state)
{
	(void)state;
	struct catalog c = { 0 };
	assert_int_equal(catalog_add(&c, "s1", 0), 1);
	assert_int_equal(catalog_add(&c, "s3", 0), 1);	/* out of order */
	assert_int_equal(catalog_add(&c, "s5", 0), 1);
	assert_int_equal(c.seg_hi, 1);
	assert_int_equal(c.nextra, 2);
	assert_true(catalog_has(&c, "s3"));
	assert_false(catalog_has(&c, "s2"));
	assert_false(catalog_has(&c, "s4"));
	assert_int_equal(catalog_add(&c, "s2", 0), 1);	/* closes the gap: 1..3 */
	assert_int_equal(c.seg_hi, 3);
	assert_int_equal(c.nextra, 1);
	assert_int_equal(catalog_add(&c, "s4", 0), 1);
	assert_int_equal(c.seg_hi, 5);
	assert_int_equal(c.nextra, 0);
	assert_int_equal(catalog_add(&c, "s5", 0), 0);	/* already there */
	assert_int_equal(catalog_add(&c, "x5", 0), -EINVAL);
	assert_int_equal(catalog_add(&c, "s", 0), -EINVAL);
	assert_int_equal(catalog_add(&c, "s0", 0), -EINVAL);
	assert_int_equal(catalog_add(&c, "c9", 7), -EINVAL);	/* unknown kind */

	/* checkpoints: kept from the second newest full on */
	assert_int_equal(catalog_add(&c, "c1", CAT_CKPT_DELTA), 1);
	assert_int_equal(catalog_add(&c, "c2", CAT_CKPT_FULL), 1);
	assert_int_equal(catalog_add(&c, "c3", CAT_CKPT_DELTA), 1);
	assert_int_equal(c.nck, 3);	/* one full: everything kept */
	assert_int_equal(catalog_add(&c, "c4", CAT_CKPT_FULL), 1);
	assert_int_equal(c.nck, 3);	/* c2, c3, c4 */
	assert_int_equal(c.ck[0].id, 2);
	assert_int_equal(catalog_add(&c, "c5", CAT_CKPT_DELTA), 1);
	assert_int_equal(catalog_add(&c, "c6", CAT_CKPT_FULL), 1);
	assert_int_equal(c.nck, 3);	/* c4, c5, c6 */
	assert_int_equal(c.ck[0].id, 4);
	assert_int_equal(c.ck[2].kind, CAT_CKPT_FULL);
	assert_true(catalog_has(&c, "c5"));
	assert_true(catalog_has(&c, "c1"));	/* stored, older than the window */
	assert_false(catalog_has(&c, "c7"));
	catalog_free(&c);

	uint8_t hdr[16] = "QSFSCKP1";
	hdr[12] = 1;
	assert_int_equal(catalog_ckpt_kind(hdr), CAT_CKPT_FULL);
	hdr[12] = 2;
	assert_int_equal(catalog_ckpt_kind(hdr), CAT_CKPT_DELTA);
	hdr[12] = 3;
	assert_int_equal(catalog_ckpt_kind(hdr), 0);
	hdr[0] = 'X';
	hdr[12] = 1;
	assert_int_equal(catalog_ckpt_kind(hdr), 0);
}

static void test_round_trip_newest_wins_tamper_and_minority(void **state)
{
	(void)state;
	struct rig g;
	rig_open(&g, 0x11);
	char why[512];
	struct catalog c;
	assert_int_equal(catalog_load(&g.s, &c, why, sizeof why), -ENOENT);
	for (int i = 1; i <= 30; i++) {
		char name[16];
		snprintf(name, sizeof name, "s%d", i == 7 ? 40 : i);
		assert_true(catalog_add(&c, name, 0) >= 0);
		if (i % 3 == 0) {
			snprintf(name, sizeof name, "c%d", i);
			assert_true(catalog_add(&c, name, i % 9 ? CAT_CKPT_DELTA : CAT_CKPT_FULL) >= 0);
		}
		assert_int_equal(catalog_store(&g.s, &c, why, sizeof why), 0);
	}
	assert_int_equal(c.seq, 30);
	struct catalog back;
	assert_int_equal(catalog_load(&g.s, &back, why, sizeof why), 0);
	assert_int_equal(back.seq, 30);
	assert_int_equal(back.seg_hi, c.seg_hi);
	assert_int_equal(back.seg_hi, 6);	/* s7 was never stored */
	assert_int_equal(back.nextra, c.nextra);
	assert_memory_equal(back.extra, c.extra, c.nextra * sizeof *c.extra);
	assert_int_equal(back.nck, c.nck);
	for (size_t i = 0; i < c.nck; i++) {
		assert_int_equal(back.ck[i].id, c.ck[i].id);
		assert_int_equal(back.ck[i].kind, c.ck[i].kind);
	}
	catalog_free(&back);

	/* an older copy on some backends: the newest still wins */
	struct catalog old = { 0 };
	assert_true(catalog_add(&old, "s1", 0) >= 0);
	g.s.nbackends = 2;	/* write seq 1 to the first two only */
	assert_int_equal(catalog_store(&g.s, &old, why, sizeof why), 0);
	g.s.nbackends = NB;
	assert_int_equal(catalog_load(&g.s, &back, why, sizeof why), 0);
	assert_int_equal(back.seq, 30);
	catalog_free(&back);
	catalog_free(&old);

	/* a copy sealed with another key is ignored; all of them: refused */
	struct rig other;
	rig_open(&other, 0x22);
	struct catalog foreign = { 0 };
	foreign.seq = 1000;
	assert_true(catalog_add(&foreign, "s99", 0) >= 0);
	other.s.nbackends = 1;
	assert_int_equal(catalog_store(&other.s, &foreign, why, sizeof why), 0);
	assert_int_equal(catalog_load(&g.s, &back, why, sizeof why), 0);
	assert_int_equal(back.seq, 30);
	catalog_free(&back);
	other.s.nbackends = NB;
	assert_int_equal(catalog_store(&other.s, &foreign, why, sizeof why), 0);
	assert_int_equal(catalog_load(&g.s, &back, why, sizeof why), -EBADMSG);
	assert_non_null(strstr(why, "none opens"));
	assert_int_equal(catalog_store(&g.s, &c, why, sizeof why), 0);	/* ours again */

	/* three of six backends silent (redis-servers stopped): no majority
	 * answered, so the newest copy cannot be known */
	tu_redis_stop_n(NREDIS, pids);
	assert_int_equal(catalog_load(&g.s, &back, why, sizeof why), -EIO);
	assert_non_null(strstr(why, "majority"));
	assert_int_equal(catalog_store(&g.s, &c, why, sizeof why), -EIO);
	catalog_free(&foreign);
	catalog_free(&c);
	rig_close(&other);
	rig_close(&g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_segments_and_checkpoint_window),
		cmocka_unit_test(test_round_trip_newest_wins_tamper_and_minority),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
