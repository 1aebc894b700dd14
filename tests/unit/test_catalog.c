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
#include "replica.h"
#include "../common/endian.h"

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
	assert_int_equal(catalog_add(&c, "s1", 0, 0), 1);
	assert_int_equal(catalog_add(&c, "s3", 0, 0), 1);	/* out of order */
	assert_int_equal(catalog_add(&c, "s5", 0, 0), 1);
	assert_int_equal(c.seg_hi, 1);
	assert_int_equal(c.nextra, 2);
	assert_true(catalog_has(&c, "s3"));
	assert_false(catalog_has(&c, "s2"));
	assert_false(catalog_has(&c, "s4"));
	assert_int_equal(catalog_add(&c, "s2", 0, 0), 1);	/* closes the gap: 1..3 */
	assert_int_equal(c.seg_hi, 3);
	assert_int_equal(c.nextra, 1);
	assert_int_equal(catalog_add(&c, "s4", 0, 0), 1);
	assert_int_equal(c.seg_hi, 5);
	assert_int_equal(c.nextra, 0);
	assert_int_equal(catalog_add(&c, "s5", 0, 0), 0);	/* already there */
	assert_int_equal(catalog_add(&c, "x5", 0, 0), -EINVAL);
	assert_int_equal(catalog_add(&c, "s", 0, 0), -EINVAL);
	assert_int_equal(catalog_add(&c, "s0", 0, 0), -EINVAL);
	assert_int_equal(catalog_add(&c, "c9", 7, 0), -EINVAL);	/* unknown kind */

	/* checkpoints: kept from the second newest full on */
	assert_int_equal(catalog_add(&c, "c1", CAT_CKPT_DELTA, 0), 1);
	assert_int_equal(catalog_add(&c, "c2", CAT_CKPT_FULL, 0), 1);
	assert_int_equal(catalog_add(&c, "c3", CAT_CKPT_DELTA, 0), 1);
	assert_int_equal(c.nck, 3);	/* one full: everything kept */
	assert_int_equal(catalog_add(&c, "c4", CAT_CKPT_FULL, 0), 1);
	assert_int_equal(c.nck, 3);	/* c2, c3, c4 */
	assert_int_equal(c.ck[0].id, 2);
	assert_int_equal(catalog_add(&c, "c5", CAT_CKPT_DELTA, 0), 1);
	assert_int_equal(catalog_add(&c, "c6", CAT_CKPT_FULL, 0), 1);
	assert_int_equal(c.nck, 3);	/* c4, c5, c6 */
	assert_int_equal(c.ck[0].id, 4);
	assert_int_equal(c.ck[2].kind, CAT_CKPT_FULL);
	assert_true(catalog_has(&c, "c5"));
	assert_true(catalog_has(&c, "c1"));	/* stored, older than the window */
	assert_false(catalog_has(&c, "c7"));
	catalog_free(&c);

	uint8_t hdr[CAT_CKPT_HDR] = "QSFSCKP1";
	hdr[12] = 1;
	assert_int_equal(catalog_ckpt_kind(hdr), CAT_CKPT_FULL);
	hdr[12] = 2;
	assert_int_equal(catalog_ckpt_kind(hdr), CAT_CKPT_DELTA);
	hdr[12] = 3;
	assert_int_equal(catalog_ckpt_kind(hdr), 0);
	hdr[0] = 'X';
	hdr[12] = 1;
	assert_int_equal(catalog_ckpt_kind(hdr), 0);

	uint8_t h64[CAT_CKPT_HDR] = "QSFSCKP1";
	h64[8] = 1;
	h64[12] = 1;
	put_le64(h64 + 48, 123456789012ull);
	assert_int_equal(catalog_ckpt_kind(h64), CAT_CKPT_FULL);
	assert_int_equal(catalog_ckpt_upto(h64), 123456789012ull);
	h64[0] = 'X';
	assert_int_equal(catalog_ckpt_upto(h64), 0);
}

/* The removed ranges of c as a string "a-b,c-d". */
static const char *ranges(const struct catalog *c)
{
	static char buf[512];
	size_t n = 0;
	buf[0] = 0;
	for (size_t i = 0; i < c->nrm; i++)
		n += (size_t)snprintf(buf + n, sizeof buf - n, "%s%llu-%llu", i ? "," : "",
				      (unsigned long long)c->rm[i].first,
				      (unsigned long long)c->rm[i].last);
	return buf;
}

static void test_removed_segments(void **state)
{
	(void)state;
	struct catalog c = { 0 };
	for (int i = 1; i <= 10; i++) {
		char name[16];
		snprintf(name, sizeof name, "s%d", i);
		assert_int_equal(catalog_add(&c, name, 0, 0), 1);
	}
	assert_int_equal(catalog_add(&c, "s12", 0, 0), 1);
	assert_int_equal(catalog_remove(&c, "s3"), 1);
	assert_int_equal(catalog_remove(&c, "s3"), 0);	/* already */
	assert_string_equal(ranges(&c), "3-3");
	assert_int_equal(catalog_remove(&c, "s5"), 1);
	assert_string_equal(ranges(&c), "3-3,5-5");
	assert_int_equal(catalog_remove(&c, "s4"), 1);	/* joins both */
	assert_string_equal(ranges(&c), "3-5");
	assert_int_equal(catalog_remove(&c, "s2"), 1);	/* touches the start */
	assert_int_equal(catalog_remove(&c, "s6"), 1);	/* touches the end */
	assert_string_equal(ranges(&c), "2-6");
	assert_int_equal(catalog_remove(&c, "s10"), 1);
	assert_int_equal(catalog_remove(&c, "s8"), 1);
	assert_string_equal(ranges(&c), "2-6,8-8,10-10");
	assert_int_equal(catalog_remove(&c, "s9"), 1);
	assert_string_equal(ranges(&c), "2-6,8-10");
	assert_int_equal(catalog_remove(&c, "s7"), 1);
	assert_string_equal(ranges(&c), "2-10");
	assert_int_equal(catalog_remove(&c, "s20"), 1);	/* never stored: removed anyway */
	assert_string_equal(ranges(&c), "2-10,20-20");
	assert_int_equal(catalog_remove(&c, "x1"), -EINVAL);
	/* removed: neither listed nor added again */
	assert_true(catalog_removed(&c, 2));
	assert_true(catalog_removed(&c, 10));
	assert_false(catalog_removed(&c, 1));
	assert_false(catalog_removed(&c, 11));
	assert_false(catalog_removed(&c, 19));
	assert_true(catalog_removed(&c, 20));
	assert_false(catalog_has(&c, "s4"));
	assert_false(catalog_lists(&c, "s4"));
	assert_false(catalog_lists(&c, "s20"));
	assert_true(catalog_lists(&c, "s1"));
	assert_true(catalog_lists(&c, "s12"));
	assert_int_equal(catalog_add(&c, "s4", 0, 0), 0);
	assert_int_equal(catalog_add(&c, "s20", 0, 0), 0);
	assert_false(catalog_has(&c, "s20"));
	assert_int_equal(catalog_add(&c, "s11", 0, 0), 1);	/* not removed: added */
	assert_true(catalog_has(&c, "s11"));
	assert_string_equal(ranges(&c), "2-10,20-20");
	/* a checkpoint leaves the window */
	assert_int_equal(catalog_add(&c, "c1", CAT_CKPT_FULL, 5), 1);
	assert_int_equal(catalog_add(&c, "c2", CAT_CKPT_DELTA, 6), 1);
	assert_true(catalog_lists(&c, "c2"));
	assert_int_equal(catalog_remove(&c, "c2"), 1);
	assert_false(catalog_lists(&c, "c2"));
	assert_int_equal(catalog_remove(&c, "c2"), 0);
	assert_int_equal(c.nck, 1);
	catalog_free(&c);
}

static void test_gc_floor_and_trimmed(void **state)
{
	(void)state;
	struct catalog c = { 0 };
	uint64_t ids[8];
	assert_int_equal(catalog_gc_floor(&c), 0);	/* no full */
	assert_int_equal(catalog_add(&c, "c1", CAT_CKPT_FULL, 10), 1);
	assert_int_equal(catalog_gc_floor(&c), 0);	/* one full: nothing to spare */
	assert_int_equal(catalog_add(&c, "c2", CAT_CKPT_DELTA, 12), 1);
	assert_int_equal(catalog_add(&c, "c3", CAT_CKPT_FULL, 20), 1);
	assert_int_equal(catalog_gc_floor(&c), 10);	/* two fulls: the older one's */
	assert_int_equal(catalog_take_trimmed(&c, ids, 8), 0);
	assert_int_equal(catalog_add(&c, "c4", CAT_CKPT_DELTA, 22), 1);
	assert_int_equal(catalog_add(&c, "c5", CAT_CKPT_FULL, 30), 1);	/* third full */
	assert_int_equal(c.nck, 3);	/* c3, c4, c5 */
	assert_int_equal(c.ck[0].upto, 20);
	assert_int_equal(catalog_gc_floor(&c), 20);
	/* c1 and c2 fell out of the window: taken once, in order */
	assert_int_equal(catalog_take_trimmed(&c, ids, 1), 1);
	assert_int_equal(ids[0], 1);
	assert_int_equal(catalog_take_trimmed(&c, ids, 8), 1);
	assert_int_equal(ids[0], 2);
	assert_int_equal(catalog_take_trimmed(&c, ids, 8), 0);
	/* a checkpoint older than the window is trimmed as it is added */
	assert_int_equal(catalog_add(&c, "c2", CAT_CKPT_DELTA, 12), 1);
	assert_int_equal(catalog_take_trimmed(&c, ids, 8), 1);
	assert_int_equal(ids[0], 2);
	assert_int_equal(c.nck, 3);
	/* three fulls in a window (as a loaded copy may hold): the smallest upto */
	struct cat_ckpt three[] = { { 7, CAT_CKPT_FULL, 50 }, { 8, CAT_CKPT_FULL, 40 },
				    { 9, CAT_CKPT_DELTA, 5 }, { 10, CAT_CKPT_FULL, 60 } };
	struct catalog t = { .ck = three, .nck = 4 };
	assert_int_equal(catalog_gc_floor(&t), 40);	/* deltas do not count */
	three[1].upto = 0;	/* a v1 entry: the floor is unknown */
	assert_int_equal(catalog_gc_floor(&t), 0);
	catalog_free(&c);
}

/* Build a plaintext catalog by hand: version v, the given entries (upto and
 * ranges only in version 2). */
static uint8_t *plain_catalog(uint32_t v, uint64_t seq, uint64_t seg_hi, const uint64_t *extra,
			      uint32_t ne, const struct cat_ckpt *ck, uint32_t nc,
			      const struct cat_range *rm, uint32_t nr, size_t *len)
{
	size_t hdr = v == 1 ? 40 : 48, cksz = v == 1 ? 16 : 24;
	*len = hdr + ne * 8 + nc * cksz + (v == 1 ? 0 : nr * 16);
	uint8_t *p = calloc(1, *len), *q = p + hdr;
	memcpy(p, "QSFSCAT1", 8);
	put_le32(p + 8, v);
	put_le64(p + 16, seq);
	put_le64(p + 24, seg_hi);
	put_le32(p + 32, ne);
	put_le32(p + 36, nc);
	if (v >= 2)
		put_le32(p + 40, nr);
	for (uint32_t i = 0; i < ne; i++, q += 8)
		put_le64(q, extra[i]);
	for (uint32_t i = 0; i < nc; i++, q += cksz) {
		put_le64(q, ck[i].id);
		put_le32(q + 8, ck[i].kind);
		if (v >= 2)
			put_le64(q + 16, ck[i].upto);
	}
	for (uint32_t i = 0; v >= 2 && i < nr; i++, q += 16) {
		put_le64(q, rm[i].first);
		put_le64(q + 8, rm[i].last);
	}
	return p;
}

static void test_v1_copy_and_v2_round_trip(void **state)
{
	(void)state;
	struct rig g;
	rig_open(&g, 0x33);
	char why[512];
	/* a copy written by the previous version */
	uint64_t extra[] = { 9 };
	struct cat_ckpt ck[] = { { 3, CAT_CKPT_FULL, 0 }, { 4, CAT_CKPT_FULL, 0 },
				 { 6, CAT_CKPT_DELTA, 0 } };
	size_t len;
	uint8_t *p = plain_catalog(1, 7, 5, extra, 1, ck, 3, NULL, 0, &len);
	assert_int_equal(len, 40 + 8 + 3 * 16);
	assert_int_equal(replica_store(&g.s, "catalog", "test", p, len, why, sizeof why), 0);
	free(p);
	struct catalog c;
	assert_int_equal(catalog_load(&g.s, &c, why, sizeof why), 0);
	assert_int_equal(c.seq, 7);
	assert_int_equal(c.seg_hi, 5);
	assert_int_equal(c.nextra, 1);
	assert_int_equal(c.extra[0], 9);
	assert_int_equal(c.nck, 3);
	assert_int_equal(c.ck[1].id, 4);
	assert_int_equal(c.ck[1].kind, CAT_CKPT_FULL);
	assert_int_equal(c.ck[2].kind, CAT_CKPT_DELTA);
	assert_int_equal(c.ck[1].upto, 0);
	assert_int_equal(c.nrm, 0);
	assert_int_equal(catalog_gc_floor(&c), 0);	/* v1 entries: unknown */
	assert_true(catalog_has(&c, "s9"));

	/* rewritten as version 2 with removed ranges and upto */
	assert_int_equal(catalog_remove(&c, "s2"), 1);
	assert_int_equal(catalog_remove(&c, "s3"), 1);
	assert_int_equal(catalog_remove(&c, "s9"), 1);
	assert_int_equal(catalog_add(&c, "c8", CAT_CKPT_FULL, 77), 1);
	assert_int_equal(catalog_store(&g.s, &c, why, sizeof why), 0);
	struct catalog back;
	assert_int_equal(catalog_load(&g.s, &back, why, sizeof why), 0);
	assert_int_equal(back.seq, 8);
	assert_int_equal(back.seg_hi, 5);
	assert_string_equal(ranges(&back), "2-3,9-9");
	assert_int_equal(back.nck, c.nck);
	for (size_t i = 0; i < c.nck; i++) {
		assert_int_equal(back.ck[i].id, c.ck[i].id);
		assert_int_equal(back.ck[i].kind, c.ck[i].kind);
		assert_int_equal(back.ck[i].upto, c.ck[i].upto);
	}
	assert_int_equal(back.ck[back.nck - 1].upto, 77);
	assert_false(catalog_has(&back, "s9"));
	assert_false(catalog_lists(&back, "s3"));
	assert_true(catalog_lists(&back, "s4"));
	catalog_free(&back);

	/* malformed version 2 copies (with a higher sequence number) are not
	 * taken: ranges adjacent, overlapping, reversed; a nonzero pad */
	struct cat_range bad[][2] = { { { 2, 3 }, { 4, 5 } }, { { 2, 5 }, { 4, 8 } },
				      { { 5, 2 }, { 9, 9 } }, { { 0, 1 }, { 9, 9 } } };
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		p = plain_catalog(2, 100 + i, 5, extra, 1, ck, 3, bad[i], 2, &len);
		assert_int_equal(replica_store(&g.s, "catalog", "test", p, len, why, sizeof why), 0);
		free(p);
		assert_int_equal(catalog_load(&g.s, &back, why, sizeof why), -EBADMSG);
	}
	struct cat_range good[] = { { 2, 3 }, { 5, 5 } };
	p = plain_catalog(2, 200, 5, extra, 1, ck, 3, good, 2, &len);
	p[44] = 1;
	assert_int_equal(replica_store(&g.s, "catalog", "test", p, len, why, sizeof why), 0);
	free(p);
	assert_int_equal(catalog_load(&g.s, &back, why, sizeof why), -EBADMSG);
	p = plain_catalog(2, 201, 5, extra, 1, ck, 3, good, 2, &len);
	assert_int_equal(replica_store(&g.s, "catalog", "test", p, len, why, sizeof why), 0);
	free(p);
	assert_int_equal(catalog_load(&g.s, &back, why, sizeof why), 0);
	assert_string_equal(ranges(&back), "2-3,5-5");
	catalog_free(&back);
	catalog_free(&c);
	/* leave no catalog behind for the next test */
	char key[128];
	snprintf(key, sizeof key, "%s/catalog", g.s.volhex);
	for (int i = 0; i < NB; i++)
		assert_int_equal(backend_del(g.b[i], key), 0);
	rig_close(&g);
}

/* A segment lost before upload takes its place in the run (seg_hi passes
 * it, so checkpoints after it may go) but is neither listed nor had; it
 * survives a round trip (version 3), a stored one cannot be lost, and a
 * version 2 copy (no lost ids) still loads. */
static void test_lost_segments(void **state)
{
	(void)state;
	struct rig g;
	rig_open(&g, 0x44);
	char why[512];
	struct catalog c = { 0 };
	assert_int_equal(catalog_add(&c, "s1", 0, 0), 1);
	assert_int_equal(catalog_add(&c, "s2", 0, 0), 1);
	assert_int_equal(catalog_add(&c, "s4", 0, 0), 1);
	assert_int_equal(catalog_add(&c, "s6", 0, 0), 1);
	assert_int_equal(c.seg_hi, 2);
	assert_int_equal(catalog_lose(&c, "s3"), 1);
	assert_int_equal(c.seg_hi, 4);	/* 3 lost, 4 stored: the run goes on */
	assert_int_equal(catalog_lose(&c, "s3"), 0);	/* idempotent */
	assert_int_equal(catalog_lose(&c, "s4"), -EEXIST);	/* stored: not lost */
	assert_int_equal(catalog_lose(&c, "c5"), -EINVAL);
	assert_int_equal(catalog_lose(&c, "s9"), 1);	/* beyond a gap: stays above */
	assert_int_equal(c.seg_hi, 4);
	assert_int_equal(catalog_lose(&c, "s5"), 1);
	assert_int_equal(c.seg_hi, 6);
	assert_int_equal(c.nextra, 1);	/* 9 */
	assert_true(catalog_lost(&c, 3));
	assert_true(catalog_lost(&c, 5));
	assert_false(catalog_lost(&c, 4));
	assert_false(catalog_has(&c, "s3"));
	assert_false(catalog_lists(&c, "s5"));
	assert_true(catalog_has(&c, "s4"));
	assert_int_equal(catalog_add(&c, "s3", 0, 0), 0);	/* lost stays lost */
	assert_false(catalog_has(&c, "s3"));

	/* a checkpoint covering a segment beyond the stored run (written
	 * before the checkpoint hold) is not used by a restore */
	assert_int_equal(catalog_add(&c, "c20", CAT_CKPT_FULL, 6), 1);
	assert_int_equal(catalog_add(&c, "c21", CAT_CKPT_DELTA, 8), 1);	/* 7 missing */
	assert_int_equal(catalog_add(&c, "c22", CAT_CKPT_DELTA, 0), 1);	/* v1: unknown */
	assert_true(catalog_ckpt_usable(&c, 0));
	assert_false(catalog_ckpt_usable(&c, 1));
	assert_true(catalog_ckpt_usable(&c, 2));
	assert_false(catalog_ckpt_usable(&c, 3));	/* out of range */
	assert_int_equal(catalog_remove(&c, "c20"), 1);
	assert_int_equal(catalog_remove(&c, "c21"), 1);
	assert_int_equal(catalog_remove(&c, "c22"), 1);

	assert_int_equal(catalog_store(&g.s, &c, why, sizeof why), 0);
	struct catalog back;
	assert_int_equal(catalog_load(&g.s, &back, why, sizeof why), 0);
	assert_int_equal(back.nlost, 3);
	assert_int_equal(back.lost[0], 3);
	assert_int_equal(back.lost[1], 5);
	assert_int_equal(back.lost[2], 9);
	assert_int_equal(back.seg_hi, 6);
	assert_true(catalog_lost(&back, 9));
	struct catalog dup;
	assert_int_equal(catalog_dup(&back, &dup), 0);
	assert_int_equal(dup.nlost, 3);
	assert_true(catalog_lost(&dup, 5));
	catalog_free(&dup);
	catalog_free(&back);

	/* a version 2 copy with a nonzero word at 44 is refused; version 3
	 * with lost ids out of order too */
	size_t len;
	uint64_t extra[] = { 9 };
	struct cat_ckpt ck[] = { { 3, CAT_CKPT_FULL, 2 } };
	uint8_t *p = plain_catalog(2, 300, 5, extra, 1, ck, 1, NULL, 0, &len);
	assert_int_equal(replica_store(&g.s, "catalog", "test", p, len, why, sizeof why), 0);
	free(p);
	assert_int_equal(catalog_load(&g.s, &back, why, sizeof why), 0);
	assert_int_equal(back.nlost, 0);
	catalog_free(&back);
	p = plain_catalog(2, 301, 5, extra, 1, ck, 1, NULL, 0, &len);
	uint8_t *p3 = calloc(1, len + 16);
	memcpy(p3, p, len);
	put_le32(p3 + 8, 3);
	put_le32(p3 + 44, 2);
	put_le64(p3 + len, 8);
	put_le64(p3 + len + 8, 7);	/* not increasing */
	assert_int_equal(replica_store(&g.s, "catalog", "test", p3, len + 16, why, sizeof why), 0);
	assert_int_equal(catalog_load(&g.s, &back, why, sizeof why), -EBADMSG);
	put_le64(p3 + len + 8, 12);
	put_le64(p3 + 16, 302);
	assert_int_equal(replica_store(&g.s, "catalog", "test", p3, len + 16, why, sizeof why), 0);
	assert_int_equal(catalog_load(&g.s, &back, why, sizeof why), 0);
	assert_int_equal(back.nlost, 2);
	assert_true(catalog_lost(&back, 12));
	catalog_free(&back);
	free(p);
	free(p3);
	catalog_free(&c);
	char key[128];
	snprintf(key, sizeof key, "%s/catalog", g.s.volhex);
	for (int i = 0; i < NB; i++)
		assert_int_equal(backend_del(g.b[i], key), 0);
	rig_close(&g);
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
		assert_true(catalog_add(&c, name, 0, 0) >= 0);
		if (i % 3 == 0) {
			snprintf(name, sizeof name, "c%d", i);
			assert_true(catalog_add(&c, name, i % 9 ? CAT_CKPT_DELTA : CAT_CKPT_FULL,
						(uint64_t)i * 2) >= 0);
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
		assert_int_equal(back.ck[i].upto, c.ck[i].id * 2);
	}
	catalog_free(&back);

	/* an older copy on some backends: the newest still wins */
	struct catalog old = { 0 };
	assert_true(catalog_add(&old, "s1", 0, 0) >= 0);
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
	assert_true(catalog_add(&foreign, "s99", 0, 0) >= 0);
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
		cmocka_unit_test(test_removed_segments),
		cmocka_unit_test(test_gc_floor_and_trimmed),
		cmocka_unit_test(test_v1_copy_and_v2_round_trip),
		cmocka_unit_test(test_lost_segments),
		cmocka_unit_test(test_round_trip_newest_wins_tamper_and_minority),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
