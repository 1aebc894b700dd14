/* tests/unit/test_extent.c - fs/extent.c's write planning against a model.
 *
 * A simulated block (a base and a map of extents, as the log would hold
 * them) takes random writes through ext_plan, applied the way qfs_data.c's
 * block_patch applies them; after every write the block must read exactly
 * as a plain byte array that took the same writes, keep extent.h's
 * invariants, and cost what the plan says (no fold for aligned 4 KiB
 * writes; about the write's own size).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "testutil.h"
#include "../../fs/extent.h"

#define BLK 65536u

/* The block as the log holds it. */
struct sim {
	bool has_base;
	uint32_t base_len;
	uint8_t base[BLK];
	bool used[BLK];		/* an extent starts here */
	uint32_t len[BLK];
	uint8_t *data[BLK];
};

struct model {
	uint32_t len;
	uint8_t b[BLK];
};

static void sim_view(const struct sim *s, uint8_t *out)
{
	memset(out, 0, BLK);
	if (s->has_base)
		memcpy(out, s->base, s->base_len);
	for (uint32_t o = 0; o < BLK; o++)
		if (s->used[o])
			memcpy(out + o, s->data[o], s->len[o]);
}

/* What block_load would list. */
static void sim_load(const struct sim *s, struct ext_block *eb)
{
	memset(eb, 0, sizeof *eb);
	eb->has_base = s->has_base;
	eb->base_len = s->base_len;
	for (uint32_t o = 0; o < BLK; o++) {
		if (!s->used[o])
			continue;
		assert_true(eb->n < EXT_MAX);	/* E2 */
		eb->e[eb->n++] = (struct ext){ o, s->len[o] };
	}
}

static void sim_put(struct sim *s, bool base, uint32_t off, const uint8_t *v, uint32_t len)
{
	if (base) {
		s->has_base = true;
		s->base_len = len;
		memcpy(s->base, v, len);
		return;
	}
	uint8_t *copy = malloc(len);
	assert_non_null(copy);
	memcpy(copy, v, len);
	free(s->data[off]);
	s->data[off] = copy;
	s->len[off] = len;
	s->used[off] = true;
}

static void sim_del(struct sim *s, uint32_t off)
{
	assert_true(s->used[off]);
	free(s->data[off]);
	s->data[off] = NULL;
	s->used[off] = false;
}

static void sim_free(struct sim *s)
{
	for (uint32_t o = 0; o < BLK; o++)
		free(s->data[o]);
}

/* Write [st, st+n) of data as block_patch does; returns the bytes the
 * records carry (values only) and counts folds. */
static uint64_t sim_write(struct sim *s, uint32_t st, const uint8_t *data, uint32_t n,
			  int *folds)
{
	struct ext_block eb;
	sim_load(s, &eb);
	assert_int_equal(ext_block_check(&eb, BLK), 0);
	struct ext_plan p;
	ext_plan(&eb, st, st + n, &p);
	static uint8_t view[BLK];
	sim_view(s, view);	/* the old bytes: pieces and folds read them */
	if (p.fold) {
		(*folds)++;
		memcpy(view + st, data, n);
		uint32_t len = ext_fold_len(&eb, st + n, BLK);
		sim_put(s, true, 0, view, len);
		for (size_t i = 0; i < eb.n; i++)
			sim_del(s, eb.e[i].off);
		return len;
	}
	assert_true(p.n >= 1);
	uint64_t bytes = 0;
	int writes = 0;
	for (size_t i = 0; i < p.n; i++) {
		const struct ext_op *o = &p.op[i];
		switch (o->kind) {
		case EXT_PUT_WRITE:
			assert_int_equal(o->off, st);
			assert_int_equal(o->len, o->base ? st + n : n);
			sim_put(s, o->base, o->off, data, o->len);
			writes++;
			break;
		case EXT_PUT_PIECE:
			/* a piece lies inside its source extent, outside the write */
			{
				size_t j = 0;
				while (j < eb.n && eb.e[j].off != o->src)
					j++;
				assert_true(j < eb.n);
				assert_true(o->off >= o->src &&
					    o->off + o->len <= eb.e[j].off + eb.e[j].len);
			}
			assert_true(o->off + o->len <= st || o->off >= st + n);
			sim_put(s, false, o->off, view + o->off, o->len);
			break;
		case EXT_DEL:
			sim_del(s, o->off);
			break;
		}
		bytes += o->kind == EXT_DEL ? 0 : o->len;
	}
	assert_int_equal(writes, 1);
	return bytes;
}

static void model_write(struct model *m, uint32_t st, const uint8_t *data, uint32_t n)
{
	memcpy(m->b + st, data, n);
	if (st + n > m->len)
		m->len = st + n;
}

static void check(const struct sim *s, const struct model *m)
{
	static uint8_t view[BLK];
	sim_view(s, view);
	assert_memory_equal(view, m->b, BLK);
	struct ext_block eb;
	sim_load(s, &eb);
	assert_int_equal(ext_block_check(&eb, BLK), 0);
	assert_int_equal(ext_block_len(&eb), m->len);
}

static void fill(uint8_t *d, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		d[i] = (uint8_t)(rand() % 255 + 1);
}

/* Writes of every size and offset, random: the block always reads as the
 * model, and never holds more than EXT_MAX extents. */
static void test_random_writes(void **state)
{
	(void)state;
	tu_seed(20261206);
	static uint8_t data[BLK];
	for (int round = 0; round < 25; round++) {
		struct sim *s = calloc(1, sizeof *s);
		struct model *m = calloc(1, sizeof *m);
		assert_non_null(s);
		assert_non_null(m);
		int folds = 0;
		for (int i = 0; i < 300; i++) {
			uint32_t st, n;
			switch (rand() % 4) {
			case 0:	/* tiny */
				st = (uint32_t)(rand() % BLK);
				n = 1 + (uint32_t)(rand() % 64);
				break;
			case 1:	/* aligned 4 KiB */
				st = (uint32_t)(rand() % 16) * 4096;
				n = 4096;
				break;
			case 2:	/* from the start */
				st = 0;
				n = 1 + (uint32_t)(rand() % BLK);
				break;
			default:
				st = (uint32_t)(rand() % BLK);
				n = 1 + (uint32_t)(rand() % BLK);
				break;
			}
			if (n > BLK - st)
				n = BLK - st;
			fill(data, n);
			sim_write(s, st, data, n, &folds);
			model_write(m, st, data, n);
			check(s, m);
		}
		sim_free(s);
		free(s);
		free(m);
	}
}

/* Random aligned 4 KiB overwrites of a full block: never a fold, and each
 * write's records carry exactly its 4 KiB. */
static void test_aligned_4k_cost(void **state)
{
	(void)state;
	srand(7);
	struct sim *s = calloc(1, sizeof *s);
	struct model *m = calloc(1, sizeof *m);
	static uint8_t data[BLK];
	int folds = 0;
	fill(data, BLK);
	assert_int_equal(sim_write(s, 0, data, BLK, &folds), BLK);	/* the base */
	model_write(m, 0, data, BLK);
	for (int i = 0; i < 1000; i++) {
		uint32_t st = (uint32_t)(rand() % 16) * 4096;
		fill(data, 4096);
		assert_int_equal(sim_write(s, st, data, 4096, &folds), 4096);
		model_write(m, st, data, 4096);
		check(s, m);
	}
	assert_int_equal(folds, 0);
	/* sequential 4 KiB appends into a new block: one base, then extents */
	sim_free(s);
	memset(s, 0, sizeof *s);
	memset(m, 0, sizeof *m);
	uint64_t bytes = 0;
	for (uint32_t st = 0; st < BLK; st += 4096) {
		fill(data, 4096);
		bytes += sim_write(s, st, data, 4096, &folds);
		model_write(m, st, data, 4096);
		check(s, m);
	}
	assert_int_equal(bytes, BLK);
	assert_int_equal(folds, 0);
	sim_free(s);
	free(s);
	free(m);
}

/* The edges of one overlap: a write inside an extent splits it in two,
 * one over several deletes them, one at an extent's start replaces it. */
static void test_overlaps(void **state)
{
	(void)state;
	struct ext_block b = { .has_base = true, .base_len = 100, .n = 3,
			       .e = { { 200, 100 }, { 400, 50 }, { 500, 100 } } };
	struct ext_plan p;
	ext_plan(&b, 250, 260, &p);	/* inside [200, 300) */
	assert_false(p.fold);
	assert_int_equal(p.n, 3);
	assert_int_equal(p.op[0].kind, EXT_PUT_PIECE);
	assert_int_equal(p.op[0].off, 200);
	assert_int_equal(p.op[0].len, 50);
	assert_int_equal(p.op[1].kind, EXT_PUT_PIECE);
	assert_int_equal(p.op[1].off, 260);
	assert_int_equal(p.op[1].len, 40);
	assert_int_equal(p.op[1].src, 200);
	assert_int_equal(p.op[2].kind, EXT_PUT_WRITE);
	ext_plan(&b, 200, 550, &p);	/* replaces 200, deletes 400, moves 500's tail */
	assert_int_equal(p.n, 4);
	assert_int_equal(p.op[0].kind, EXT_DEL);
	assert_int_equal(p.op[0].off, 400);
	assert_int_equal(p.op[1].kind, EXT_DEL);
	assert_int_equal(p.op[1].off, 500);
	assert_int_equal(p.op[2].kind, EXT_PUT_PIECE);
	assert_int_equal(p.op[2].off, 550);
	assert_int_equal(p.op[2].len, 50);
	assert_int_equal(p.op[2].src, 500);
	assert_int_equal(p.op[3].kind, EXT_PUT_WRITE);
	assert_int_equal(p.op[3].off, 200);
	ext_plan(&b, 0, 600, &p);	/* covers it all: the base, extents deleted */
	assert_int_equal(p.n, 4);
	assert_true(p.op[0].base);
	assert_int_equal(p.op[0].len, 600);
	assert_int_equal(ext_block_len(&b), 600);
	/* a full block: the next disjoint extent folds */
	struct ext_block f = { .n = EXT_MAX };
	for (uint32_t i = 0; i < EXT_MAX; i++)
		f.e[i] = (struct ext){ 2 * i * 100, 100 };
	assert_int_equal(ext_block_check(&f, BLK), 0);
	ext_plan(&f, 150, 160, &p);
	assert_true(p.fold);
	assert_int_equal(ext_fold_len(&f, 160, 1000), 1000);	/* cut at the file end */
	ext_plan(&f, 0, 100, &p);	/* replaces extent 0 exactly: no new extent */
	assert_false(p.fold);
	assert_int_equal(p.n, 1);
	ext_plan(&f, 0, 50, &p);	/* splits extent 0 in two: one too many */
	assert_true(p.fold);
	/* splitting a large extent would re-append most of it: a fold */
	struct ext_block big = { .has_base = true, .base_len = 4096, .n = 1,
				 .e = { { 4096, BLK - 4096 } } };
	ext_plan(&big, 8192, 12288, &p);
	assert_true(p.fold);
	ext_plan(&big, BLK - 8192, BLK - 4096, &p);	/* keeps 4 KiB at the end + 52 KiB */
	assert_true(p.fold);
	struct ext_block mid = { .n = 1, .e = { { 4096, 16384 } } };
	ext_plan(&mid, 8192, 12288, &p);	/* keeps 4 + 8 KiB: a split */
	assert_false(p.fold);
	assert_int_equal(p.n, 3);
	/* invalid blocks as read from the log */
	struct ext_block bad = { .n = 2, .e = { { 0, 100 }, { 50, 10 } } };
	assert_int_equal(ext_block_check(&bad, BLK), -5);
	bad = (struct ext_block){ .n = 1, .e = { { BLK - 10, 11 } } };
	assert_int_equal(ext_block_check(&bad, BLK), -5);
	bad = (struct ext_block){ .n = 1, .e = { { 10, 0 } } };
	assert_int_equal(ext_block_check(&bad, BLK), -5);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_overlaps),
		cmocka_unit_test(test_aligned_4k_cost),
		cmocka_unit_test(test_random_writes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
