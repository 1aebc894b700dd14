/* tests/unit/test_qfs_data.c - file data through fs/qfs_data.c, without
 * FUSE: what a write costs the log, and random writes, punches,
 * allocations and truncates against a byte-array model, with reopens of the
 * log and small segments (so blocks and their extents span sealed segments).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "testutil.h"
#include "../../common/endian.h"
#include "../../fs/qfs.h"

#define ROOT 1
#define BLK 65536

struct rig {
	char *dir;
	struct cache *c;
	struct qfs *fs;
	uint64_t segsize;
};

static void rig_open(struct rig *r)
{
	r->c = tu_open(r->dir, r->segsize, NULL);
	struct qfs_opts o = { .cache = r->c, .cache_dir = r->dir };
	assert_int_equal(qfs_open(&o, &r->fs), 0);
	cache_set_mover(r->c, qfs_compact_key, r->fs);	/* as qsfs-fs does */
}

static void rig_close(struct rig *r)
{
	qfs_close(r->fs);
	assert_int_equal(cache_close(r->c), 0);
}

static uint64_t mkfile(struct rig *r, const char *name)
{
	struct stat st;
	assert_int_equal(qfs_mknod(r->fs, ROOT, name, S_IFREG | 0644, 0, 0, 0, 0, NULL, &st), 0);
	return st.st_ino;
}

/* Bytes appended to the log so far (segment files; no checkpoint is
 * written before a seal, and the segments here are large). */
static uint64_t log_bytes(struct rig *r)
{
	struct cache_stats st;
	cache_stats(r->c, &st);
	return st.local_bytes;
}

static void fill(uint8_t *d, size_t n)
{
	for (size_t i = 0; i < n; i++)
		d[i] = (uint8_t)(rand() % 255 + 1);
}

/* A write costs the log about what it writes: 4 KiB random overwrites and
 * 4 KiB appends; 100-byte appends fold their block now and then. */
static void test_write_cost(void **state)
{
	(void)state;
	struct rig r = { .dir = tu_mkdtemp(), .segsize = 256 << 20 };
	rig_open(&r);
	srand(17);
	static uint8_t buf[1 << 20];
	fill(buf, sizeof buf);
	uint64_t ino = mkfile(&r, "f");
	for (int i = 0; i < 8; i++)
		assert_int_equal(qfs_write(r.fs, ino, buf, sizeof buf, (off_t)i << 20), 1 << 20);
	uint64_t before = log_bytes(&r);
	const int n = 2048;
	for (int i = 0; i < n; i++) {
		off_t off = (off_t)(rand() % (8 * 256)) * 4096;
		assert_int_equal(qfs_write(r.fs, ino, buf + (i % 256) * 4096, 4096, off), 4096);
	}
	double amp = (double)(log_bytes(&r) - before) / (n * 4096.0);
	print_message("# random 4 KiB overwrites: %.3f log bytes per byte\n", amp);
	assert_true(amp < 1.1);	/* was 16 when a write rewrote its whole block */
	/* a file laid out as a 4 KiB header, then large writes: its first
	 * block is a base and a 60 KiB extent, which the first overwrite folds
	 * instead of re-appending most of it on every overwrite */
	uint64_t hdr = mkfile(&r, "header");
	assert_int_equal(qfs_write(r.fs, hdr, buf, 4096, 0), 4096);
	assert_int_equal(qfs_write(r.fs, hdr, buf, sizeof buf, 4096), 1 << 20);
	before = log_bytes(&r);
	for (int i = 0; i < 32; i++) {
		off_t off = (off_t)(rand() % 16) * 4096;	/* all in block 0 */
		assert_int_equal(qfs_write(r.fs, hdr, buf + i * 4096, 4096, off), 4096);
	}
	amp = (double)(log_bytes(&r) - before) / (32 * 4096.0);
	print_message("# 4 KiB overwrites of a block split as 4 + 60 KiB: %.3f\n", amp);
	assert_true(amp < 1.7);	/* one fold, then 4 KiB extents */
	qfs_forget(r.fs, hdr, 1);
	uint64_t app = mkfile(&r, "append");
	before = log_bytes(&r);
	for (int i = 0; i < n; i++)
		assert_int_equal(qfs_write(r.fs, app, buf + i * 4096 % sizeof buf, 4096,
					   (off_t)i * 4096), 4096);
	amp = (double)(log_bytes(&r) - before) / (n * 4096.0);
	print_message("# sequential 4 KiB appends: %.3f\n", amp);
	assert_true(amp < 1.1);
	uint64_t tiny = mkfile(&r, "tiny");
	before = log_bytes(&r);
	for (int i = 0; i < 4 * n; i++)
		assert_int_equal(qfs_write(r.fs, tiny, buf + i, 100, (off_t)i * 100), 100);
	amp = (double)(log_bytes(&r) - before) / (4 * n * 100.0);
	print_message("# sequential 100-byte appends: %.3f\n", amp);
	/* an inode record per write and a fold per EXT_MAX writes, which
	 * rewrites the block so far: about 21 today (a write buffer would
	 * bring it near 2); each write rewrote its whole block before, about
	 * 330 */
	assert_true(amp < 25);
	/* what was written reads back */
	static uint8_t got[BLK];
	for (int i = 0; i < 4 * n; i += 97) {
		assert_int_equal(qfs_read(r.fs, tiny, got, 100, (off_t)i * 100), 100);
		assert_memory_equal(got, buf + i, 100);
	}
	qfs_forget(r.fs, ino, 1);
	qfs_forget(r.fs, app, 1);
	qfs_forget(r.fs, tiny, 1);
	rig_close(&r);
	tu_rmrf(r.dir);
	free(r.dir);
}

#define FSIZE (6 * BLK + 1234)

struct model {
	uint8_t b[FSIZE + BLK];
	uint64_t size;
	bool alloc[FSIZE / BLK + 2];	/* blocks holding something */
};

/* The blocks [from, to) of the model are allocated (or freed). */
static void model_alloc(struct model *m, uint64_t from, uint64_t to, bool on)
{
	for (uint64_t b = from; b < to && b < FSIZE / BLK + 2; b++)
		m->alloc[b] = on;
}

/* st_blocks as the model has it: the allocated blocks, at most the size
 * rounded up to 512 bytes. */
static blkcnt_t model_blocks(const struct model *m)
{
	uint64_t n = 0;
	for (size_t b = 0; b < FSIZE / BLK + 2; b++)
		n += m->alloc[b];
	n *= BLK / 512;
	uint64_t used = (m->size + 511) / 512;
	return (blkcnt_t)(n < used ? n : used);
}

static void check_file(struct rig *r, uint64_t ino, const struct model *m, const char *when,
		       int step)
{
	struct stat st;
	assert_int_equal(qfs_getattr(r->fs, ino, &st), 0);
	if ((uint64_t)st.st_size != m->size)
		fail_msg("step %d (%s): size %lld, model %llu", step, when, (long long)st.st_size,
			 (unsigned long long)m->size);
	if (st.st_blocks != model_blocks(m))
		fail_msg("step %d (%s): st_blocks %lld, model %lld", step, when,
			 (long long)st.st_blocks, (long long)model_blocks(m));
	static uint8_t got[FSIZE + BLK];
	ssize_t n = qfs_read(r->fs, ino, got, sizeof got, 0);
	assert_int_equal(n, (ssize_t)m->size);
	for (uint64_t i = 0; i < m->size; i++)
		if (got[i] != m->b[i])
			fail_msg("step %d (%s): byte %llu is %u, model %u", step, when,
				 (unsigned long long)i, got[i], m->b[i]);
	/* an unaligned read inside too */
	if (m->size > 10) {
		uint64_t off = (uint64_t)rand() % (m->size - 10), len = 1 + (uint64_t)rand() % 9;
		assert_int_equal(qfs_read(r->fs, ino, got, len, (off_t)off), (ssize_t)len);
		assert_memory_equal(got, m->b + off, len);
	}
}

/* Random writes of every size (many small ones, so blocks hold extents and
 * fold), punches, allocations and truncates against a model; the log is
 * reopened now and then (extents come back from the log) and its segments
 * are small (a block and its extents span sealed segments). */
static void test_random_against_model(void **state)
{
	(void)state;
	tu_seed(20261206);
	struct rig r = { .dir = tu_mkdtemp(), .segsize = 1 << 20 };
	rig_open(&r);
	uint64_t ino = mkfile(&r, "f");
	static struct model m;
	memset(&m, 0, sizeof m);
	static uint8_t data[FSIZE];
	for (int step = 0; step < 3000; step++) {
		int op = rand() % 100;
		uint64_t off = (uint64_t)rand() % FSIZE, len;
		const char *what;
		if (op < 60) {
			what = "write";
			len = op < 30 ? 1 + (uint64_t)rand() % 300 : op < 45 ? 4096
			    : 1 + (uint64_t)rand() % (3 * BLK);
			if (op >= 30 && op < 45)
				off &= ~4095ull;
			if (off + len > FSIZE)
				len = FSIZE - off;
			if (!len)
				continue;
			fill(data, len);
			assert_int_equal(qfs_write(r.fs, ino, data, len, (off_t)off), (ssize_t)len);
			memcpy(m.b + off, data, len);
			if (off + len > m.size)
				m.size = off + len;
			model_alloc(&m, off / BLK, (off + len + BLK - 1) / BLK, true);
		} else if (op < 75) {
			what = "punch";
			len = 1 + (uint64_t)rand() % (2 * BLK);
			assert_int_equal(qfs_fallocate(r.fs, ino, FALLOC_FL_PUNCH_HOLE |
						       FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len), 0);
			uint64_t end = off + len < m.size ? off + len : m.size;
			if (off < end)
				memset(m.b + off, 0, end - off);
			/* whole blocks go; a part of one is written as zeros */
			if (off < end)
				model_alloc(&m, (off + BLK - 1) / BLK, end / BLK, false);
		} else if (op < 85) {
			what = "allocate";
			len = 1 + (uint64_t)rand() % BLK;
			if (off + len > FSIZE)
				len = FSIZE - off;
			if (!len)
				continue;
			assert_int_equal(qfs_fallocate(r.fs, ino, 0, (off_t)off, (off_t)len), 0);
			if (off + len > m.size)
				m.size = off + len;
			model_alloc(&m, off / BLK, (off + len + BLK - 1) / BLK, true);
		} else if (op < 95) {
			what = "truncate";
			struct stat in = { .st_size = (off_t)off }, out;
			assert_int_equal(qfs_setattr(r.fs, ino, &in, QFS_SET_SIZE, &out), 0);
			if (off < m.size)
				memset(m.b + off, 0, m.size - off);
			m.size = off;
			model_alloc(&m, (off + BLK - 1) / BLK, FSIZE / BLK + 2, false);
		} else if (op < 96) {
			/* compaction: a sweep step folding fragmented blocks (all,
			 * or only wasteful ones, within a budget) */
			what = "defrag";
			static struct qfs_defrag d;
			int e = qfs_defrag(r.fs, &d, rand() % 2 ? 0 : 64 * 1024,
					   rand() % 2 ? 0 : BLK / 8);
			assert_true(e == 0 || e == 1);
			if (e == 1 && !(rand() % 4)) {	/* a full sweep leaves no extent */
				assert_int_equal(qfs_defrag(r.fs, &d, 0, 0), 1);
				uint8_t p[9];
				p[0] = 'B';
				put_be64(p + 1, ino);
				struct cache_keyinfo ki[64];
				ssize_t nk = 0;
				uint8_t afterbuf[255], *after = NULL;
				size_t afterlen = 0;
				do {
					nk = cache_keys(r.c, p, 9, after, afterlen, ki, 64);
					assert_true(nk >= 0);
					for (ssize_t i = 0; i < nk; i++)
						assert_int_equal(ki[i].klen, 17);
					if (nk) {
						afterlen = ki[nk - 1].klen;
						memcpy(afterbuf, ki[nk - 1].key, afterlen);
						after = afterbuf;
					}
				} while (nk == 64);
			}
		} else if (op < 97) {
			/* the cleaner, which asks qfs_compact_key first: a sealed
			 * segment's blocks are folded or moved */
			what = "clean";
			struct cache_stats cs;
			cache_stats(r.c, &cs);
			if (cs.active_seg > 1) {
				struct cache_clean_result cr;
				int e = cache_clean_segment(r.c, 1 + (uint64_t)rand() % (cs.active_seg - 1),
							    0, &cr);
				assert_true(e == 0 || e == -EINVAL);
			}
		} else {
			what = "reopen";
			qfs_forget(r.fs, ino, 1);
			rig_close(&r);
			rig_open(&r);
			struct stat st;
			assert_int_equal(qfs_lookup(r.fs, ROOT, "f", &st), 0);
			assert_int_equal(st.st_ino, ino);
		}
		check_file(&r, ino, &m, what, step);
	}
	qfs_forget(r.fs, ino, 1);
	rig_close(&r);
	tu_rmrf(r.dir);
	free(r.dir);
}

/* A volume of a previous format (superblock version 1, or 2) is raised to
 * 3 at the first mount that can write, so an older qsfs-fs, which would
 * ignore extents or could not read the inode records with their block
 * count, refuses it; a version from the future is refused. */
static void test_superblock_version(void **state)
{
	(void)state;
	struct rig r = { .dir = tu_mkdtemp(), .segsize = 4 << 20 };
	rig_open(&r);
	rig_close(&r);
	r.c = tu_open(r.dir, r.segsize, NULL);
	uint8_t k = 'S', v[16];
	assert_int_equal(cache_get(r.c, &k, 1, v, sizeof v), 16);
	assert_int_equal(get_le32(v), 3);
	struct qfs_opts o = { .cache = r.c, .cache_dir = r.dir };
	for (uint32_t old = 1; old <= 2; old++) {
		put_le32(v, old);
		assert_int_equal(cache_put(r.c, &k, 1, v, sizeof v), 0);
		assert_int_equal(qfs_open(&o, &r.fs), 0);
		assert_int_equal(cache_get(r.c, &k, 1, v, sizeof v), 16);
		assert_int_equal(get_le32(v), 3);
		qfs_close(r.fs);
	}
	put_le32(v, 4);
	assert_int_equal(cache_put(r.c, &k, 1, v, sizeof v), 0);
	tu_capture_begin();
	assert_int_equal(qfs_open(&o, &r.fs), -EIO);
	free(tu_capture_end());
	assert_int_equal(cache_close(r.c), 0);
	tu_rmrf(r.dir);
	free(r.dir);
}

/* st_blocks counts what is allocated: a 1 GiB file with one 4 KiB write
 * is one block, a punch frees it, a file written full is its size; the
 * count survives a reopen. An inode record of the previous version (no
 * count) gets it from the block keys, and keeps it exact from then on. */
static void test_blocks_allocated(void **state)
{
	(void)state;
	struct rig r = { .dir = tu_mkdtemp(), .segsize = 4 << 20 };
	rig_open(&r);
	uint64_t ino = mkfile(&r, "sparse");
	struct stat in = { .st_size = 1ll << 30 }, st;
	assert_int_equal(qfs_setattr(r.fs, ino, &in, QFS_SET_SIZE, &st), 0);
	assert_int_equal(st.st_blocks, 0);
	static uint8_t buf[3 * BLK + 100];
	fill(buf, sizeof buf);
	assert_int_equal(qfs_write(r.fs, ino, buf, 4096, 500ll << 20), 4096);
	assert_int_equal(qfs_getattr(r.fs, ino, &st), 0);
	assert_int_equal(st.st_size, 1ll << 30);
	assert_int_equal(st.st_blocks, BLK / 512);	/* one block: 64 KiB */
	assert_int_equal(qfs_fallocate(r.fs, ino, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				       500ll << 20, BLK), 0);
	assert_int_equal(qfs_getattr(r.fs, ino, &st), 0);
	assert_int_equal(st.st_blocks, 0);
	uint64_t full = mkfile(&r, "full");
	assert_int_equal(qfs_write(r.fs, full, buf, sizeof buf, 0), (ssize_t)sizeof buf);
	assert_int_equal(qfs_getattr(r.fs, full, &st), 0);
	assert_int_equal(st.st_blocks, (sizeof buf + 511) / 512);
	qfs_forget(r.fs, ino, 1);
	qfs_forget(r.fs, full, 1);
	rig_close(&r);

	/* the full file's record as the previous version wrote it */
	r.c = tu_open(r.dir, r.segsize, NULL);
	uint8_t k[9] = { 'I' }, v[80];
	put_be64(k + 1, full);
	assert_int_equal(cache_get(r.c, k, 9, v, sizeof v), 80);
	assert_int_equal(get_le64(v + 72), 4);
	put_le32(v, 1);
	assert_int_equal(cache_put(r.c, k, 9, v, 72), 0);
	assert_int_equal(cache_close(r.c), 0);
	rig_open(&r);
	assert_int_equal(qfs_lookup(r.fs, ROOT, "full", &st), 0);
	assert_int_equal(st.st_blocks, (sizeof buf + 511) / 512);
	assert_int_equal(qfs_lookup(r.fs, ROOT, "sparse", &st), 0);
	assert_int_equal(st.st_blocks, 0);
	/* a truncate frees two blocks, in the record's new version */
	in.st_size = BLK + 1;
	assert_int_equal(qfs_setattr(r.fs, full, &in, QFS_SET_SIZE, &st), 0);
	assert_int_equal(st.st_blocks, (BLK + 1 + 511) / 512);
	in.st_size = 10ll * BLK;
	assert_int_equal(qfs_setattr(r.fs, full, &in, QFS_SET_SIZE, &st), 0);
	assert_int_equal(st.st_blocks, 2 * BLK / 512);	/* blocks 0 and 1 */
	qfs_forget(r.fs, full, 1);
	qfs_forget(r.fs, ino, 1);
	rig_close(&r);
	r.c = tu_open(r.dir, r.segsize, NULL);
	assert_int_equal(cache_get(r.c, k, 9, v, sizeof v), 80);
	assert_int_equal(get_le32(v), 2);
	assert_int_equal(get_le64(v + 72), 2);
	assert_int_equal(cache_close(r.c), 0);
	tu_rmrf(r.dir);
	free(r.dir);
}

/* Writers are never made to wait on a fenced node: EROFS at once; a full
 * cache without stor: ENOSPC; reads and deletes always go on. */
static void test_room_states(void **state)
{
	(void)state;
	struct rig r = { .dir = tu_mkdtemp(), .segsize = 4 << 20 };
	rig_open(&r);
	uint64_t ino = mkfile(&r, "f");
	assert_int_equal(qfs_write(r.fs, ino, "abc", 3, 0), 3);
	qfs_set_full(r.fs, QFS_FULL_FENCED);
	assert_int_equal(qfs_write(r.fs, ino, "abc", 3, 0), -EROFS);
	struct stat st;
	assert_int_equal(qfs_mknod(r.fs, ROOT, "g", S_IFREG | 0644, 0, 0, 0, 0, NULL, &st), -EROFS);
	char buf[3];
	assert_int_equal(qfs_read(r.fs, ino, buf, 3, 0), 3);
	qfs_set_full(r.fs, QFS_FULL_ENOSPC);
	assert_int_equal(qfs_write(r.fs, ino, "abc", 3, 0), -ENOSPC);
	assert_int_equal(qfs_fallocate(r.fs, ino, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 1),
			 0);	/* freeing space always works */
	qfs_set_full(r.fs, QFS_FULL_NO);
	assert_int_equal(qfs_write(r.fs, ino, "xyz", 3, 0), 3);
	qfs_forget(r.fs, ino, 1);
	rig_close(&r);
	tu_rmrf(r.dir);
	free(r.dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_room_states),
		cmocka_unit_test(test_write_cost),
		cmocka_unit_test(test_random_against_model),
		cmocka_unit_test(test_superblock_version),
		cmocka_unit_test(test_blocks_allocated),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
