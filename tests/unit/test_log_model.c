/* tests/unit/test_log_model.c - thousands of random operations against an
 * in-memory model (puts, dels, atomic batches and the cleaner moving the
 * live records of sealed segments), with clean reopens and crash-image reopens at random
 * points. After every reopen the whole content and the per-segment live /
 * garbage accounting are checked, the latter against an independent replay of
 * every segment file. */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "index.h"
#include "segment.h"

#define NKEYS 300
#define MAXV 3000

struct model {
	bool present[NKEYS];
	uint32_t ver[NKEYS];
	uint32_t len[NKEYS];
};

static void keyname(int i, char *k)
{
	/* shared prefixes, varied lengths */
	snprintf(k, 32, "%c/%d/%s", 'a' + i % 5, i, i % 7 ? "x" : "longer-key-name");
}

static void fill_val(uint8_t *v, int i, uint32_t ver, uint32_t len)
{
	uint32_t x = (uint32_t)i * 2654435761u ^ ver * 40503u;
	for (uint32_t j = 0; j < len; j++) {
		x = x * 1103515245u + 12345u;
		v[j] = (uint8_t)(x >> 16);
	}
}

static void check_all(struct cache *c, const struct model *m)
{
	static uint8_t want[MAXV], got[MAXV];
	uint64_t live = 0;
	size_t nkeys = 0;
	for (int i = 0; i < NKEYS; i++) {
		char k[32];
		keyname(i, k);
		ssize_t n = cache_get(c, k, strlen(k), got, sizeof got);
		if (!m->present[i]) {
			assert_int_equal(n, -ENOENT);
			continue;
		}
		assert_int_equal(n, m->len[i]);
		fill_val(want, i, m->ver[i], m->len[i]);
		assert_memory_equal(got, want, m->len[i]);
		live += rec_len(strlen(k), m->len[i]);
		nkeys++;
	}
	struct cache_stats st;
	cache_stats(c, &st);
	assert_int_equal(st.keys, nkeys);
	assert_int_equal(st.live_bytes, live);
}

/* --- independent accounting: replay every segment file from scratch ---- */

struct acct {
	struct index *ix;
	uint64_t live[4096];
	uint64_t size[4096];
	bool listed[4096];
	uint64_t seg;
};

static int acct_cb(void *arg, const struct seg_rec *r)
{
	struct acct *a = arg;
	struct ix_loc old, loc = { (uint32_t)a->seg, (uint32_t)r->off, (uint32_t)r->len };
	int had;
	if (r->type == REC_PUT)
		had = ix_put(a->ix, r->key, r->klen, loc, &old) == 1;
	else
		had = ix_del(a->ix, r->key, r->klen, &old) == 0;
	if (had)
		a->live[old.seg] -= old.len;
	if (r->type == REC_PUT)
		a->live[a->seg] += r->len;
	return 0;
}

static struct acct *cur_acct;
/* Copies of dead segments taken before a removal: the independent replay
 * needs every record ever written (a removed segment's tombstones). */
static char *graveyard;

static void seg_cb(void *arg, const struct cache_seg_info *s)
{
	(void)arg;
	assert_true(s->id < 4096);
	cur_acct->listed[s->id] = true;
	assert_int_equal(s->size, cur_acct->size[s->id]);
	assert_int_equal(s->live, cur_acct->live[s->id]);
	assert_int_equal(s->garbage, s->size - SEG_HDR_SIZE - s->live);
}

static void check_accounting(struct cache *c, const char *dir)
{
	struct cache_stats st;
	cache_stats(c, &st);
	cur_acct = calloc(1, sizeof *cur_acct);
	cur_acct->ix = ix_new();
	int dfd = open(dir, O_RDONLY | O_DIRECTORY);
	for (uint64_t id = 1; id <= st.active_seg; id++) {
		char name[SEG_NAME_LEN];
		seg_name(id, name);
		int fd = openat(dfd, name, O_RDONLY);
		if (fd < 0 && graveyard) {	/* removed: its copy */
			char *p = tu_path(graveyard, name);
			fd = open(p, O_RDONLY);
			free(p);
		}
		assert_true(fd >= 0);
		struct seg_scan_result res;
		cur_acct->seg = id;
		assert_int_equal(seg_scan(fd, id, st.volume_id, false, acct_cb, cur_acct, NULL, &res), 0);
		assert_true(res.clean);
		cur_acct->size[id] = res.file_size;
		close(fd);
	}
	close(dfd);
	cache_segments(c, seg_cb, NULL);
	/* what the log no longer lists was removed: nothing in it was live */
	for (uint64_t id = 1; id <= st.active_seg; id++)
		if (!cur_acct->listed[id])
			assert_int_equal(cur_acct->live[id], 0);
	ix_free(cur_acct->ix);
	free(cur_acct);
	cur_acct = NULL;
}

static uint64_t clean_id, clean_live;

static void clean_cb(void *arg, const struct cache_seg_info *s)
{
	(void)arg;
	if (s->id == clean_id)
		clean_live = s->live;
}

static const char *model_dir;

/* Keep a copy of every dead sealed segment that is on disk (see graveyard). */
static void keep_dead_cb(void *arg, const struct cache_seg_info *s)
{
	(void)arg;
	if (s->state == SEG_ACTIVE || s->live || !s->local)
		return;
	char name[SEG_NAME_LEN];
	seg_name(s->id, name);
	char *from = tu_path(model_dir, name), *to = tu_path(graveyard, name);
	tu_copy(from, to);
	free(from);
	free(to);
}

static void test_random_ops_against_model(void **state)
{
	(void)state;
	char *dir = tu_mkdtemp();
	uint64_t segsize = 16 << 10;
	struct cache *c = tu_open(dir, segsize, NULL);
	struct model *m = calloc(1, sizeof *m);
	static uint8_t v[MAXV];
	tu_seed(20261122);
	int reopens = 0, crashes = 0, seals = 0, cleaned = 0;
	uint64_t moved = 0, removed = 0;
	graveyard = tu_mkdtemp();
	for (int step = 0; step < 4000; step++) {
		int i = rand() % NKEYS, op = rand() % 100;
		char k[32];
		keyname(i, k);
		if (op < 8) {
			/* an atomic batch of 2..7 puts and dels, in order */
			struct cache_op ops[7];
			static uint8_t bv[7][MAXV];
			char bk[7][32];
			int nops = 2 + rand() % 6;
			for (int j = 0; j < nops; j++) {
				int bi = rand() % NKEYS;
				keyname(bi, bk[j]);
				ops[j] = (struct cache_op){ .key = bk[j], .klen = strlen(bk[j]) };
				if (rand() % 3 == 0) {
					ops[j].del = true;
					m->present[bi] = false;
					continue;
				}
				uint32_t len = (uint32_t)(rand() % 300);
				m->ver[bi]++;
				fill_val(bv[j], bi, m->ver[bi], len);
				ops[j].val = bv[j];
				ops[j].vlen = len;
				m->present[bi] = true;
				m->len[bi] = len;
			}
			assert_int_equal(cache_apply(c, ops, (size_t)nops), 0);
		} else if (op < 50) {
			uint32_t len = (uint32_t)(rand() % 4 == 0 ? rand() % MAXV : rand() % 200);
			m->ver[i]++;
			fill_val(v, i, m->ver[i], len);
			assert_int_equal(cache_put(c, k, strlen(k), v, len), 0);
			m->present[i] = true;
			m->len[i] = len;
		} else if (op < 65) {
			int r = cache_del(c, k, strlen(k));
			assert_int_equal(r, m->present[i] ? 0 : -ENOENT);
			m->present[i] = false;
		} else if (op >= 81 && op < 83) {	/* 2 %: a collection */
			/* a full checkpoint now (so the floor moves), then every
			 * dead segment below the floor goes */
			assert_int_equal(cache_checkpoint_full(c), 0);
			model_dir = dir;
			cache_segments(c, keep_dead_cb, NULL);
			struct cache_remove_result rr;
			assert_int_equal(cache_remove_dead(c, UINT64_MAX, &rr), 0);
			removed += rr.segments;
			assert_true(rr.floor == cache_gc_local_floor(c) || rr.segments == 0);
		} else if (op >= 83 && op < 85) {	/* 2 %: the cleaner */
			/* the cleaner: the best segment by cost-benefit, or any
			 * sealed one; afterwards it holds nothing live */
			uint64_t ids[1];
			size_t n = cache_clean_pick(c, rand() % 2 ? 0.0 : 0.2, ids, 1);
			struct cache_stats st;
			cache_stats(c, &st);
			if (!n && st.active_seg > 1) {
				ids[0] = 1 + (uint64_t)rand() % (st.active_seg - 1);
				n = 1;
			}
			for (size_t j = 0; j < n; j++) {
				struct cache_clean_result cr;
				int cr_r = cache_clean_segment(c, ids[j], 0, &cr);
				clean_live = UINT64_MAX;
				clean_id = ids[j];
				cache_segments(c, clean_cb, NULL);
				if (cr_r == -EINVAL && clean_live == UINT64_MAX)
					continue;	/* a removed one, picked at random */
				assert_int_equal(cr_r, 0);
				assert_int_equal(clean_live, 0);
				cleaned++;
				moved += cr.records;
			}
		} else if (op < 85) {
			static uint8_t got[MAXV];
			ssize_t n = cache_get(c, k, strlen(k), got, sizeof got);
			if (m->present[i]) {
				assert_int_equal(n, m->len[i]);
				fill_val(v, i, m->ver[i], m->len[i]);
				assert_memory_equal(got, v, m->len[i]);
			} else {
				assert_int_equal(n, -ENOENT);
			}
		} else if (op < 88) {
			assert_true(cache_seal(c) >= 0);
			seals++;
		} else if (op < 93) {
			assert_int_equal(cache_sync(c), 0);
		} else if (op < 96) {
			assert_int_equal(cache_close(c), 0);
			c = tu_open(dir, segsize, NULL);
			check_all(c, m);
			check_accounting(c, dir);
			reopens++;
		} else if (op < 98) {
			/* crash image: the files as a kill -9 would leave them
			 * (everything written is in the page cache). The worker
			 * is let finish its pass first so that cp sees one
			 * moment, not files vanishing under it. */
			char *img = tu_mkdtemp();
			tu_rmrf(img);
			cache_quiesce(c);
			tu_copy(dir, img);
			assert_int_equal(cache_close(c), 0);
			tu_rmrf(dir);
			free(dir);
			dir = img;
			char *lk = tu_path(dir, "LOCK");
			unlink(lk);
			free(lk);
			c = tu_open(dir, segsize, NULL);
			check_all(c, m);
			check_accounting(c, dir);
			crashes++;
		} else {
			check_all(c, m);
		}
	}
	check_all(c, m);
	check_accounting(c, dir);
	struct cache_stats st;
	cache_quiesce(c);
	cache_stats(c, &st);
	print_message("# %d reopens, %d crash images, %d explicit seals, %llu segments, "
		      "%llu checkpoints written, %d segments cleaned (%llu records moved), "
		      "%llu dead, %llu removed\n", reopens, crashes, seals,
		      (unsigned long long)st.segments, (unsigned long long)st.checkpoints_written,
		      cleaned, (unsigned long long)moved, (unsigned long long)st.dead_segments,
		      (unsigned long long)removed);
	assert_true(removed > 20);
	assert_int_equal(st.removes_pending, 0);
	assert_true(reopens > 50);
	assert_true(cleaned > 30 && moved > 100);
	assert_true(st.segments > 20);
	assert_int_equal(cache_close(c), 0);
	free(m);
	tu_rmrf(dir);
	tu_rmrf(graveyard);
	free(graveyard);
	graveyard = NULL;
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_random_ops_against_model),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
