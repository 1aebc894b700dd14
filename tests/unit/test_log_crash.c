/* tests/unit/test_log_crash.c - crash simulation: torn tails cut at every
 * record boundary and at random offsets, flipped bytes in sealed segments,
 * corrupt checkpoints and a torn state journal. */
#include "testutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ckpt.h"
#include "segment.h"

#define NREC 40
#define NSYNC 20

static void rec_key(int i, char *k)
{
	snprintf(k, 16, "r%03d", i % 30);	/* records 30..39 overwrite 0..9 */
}

static size_t rec_vlen(int i)
{
	return (size_t)(i * 37 % 500);
}

static void rec_val(int i, uint8_t *v)
{
	for (size_t j = 0; j < rec_vlen(i); j++)
		v[j] = (uint8_t)(i ^ (int)j);
}

/* Build a directory whose segment 1 is sealed (5 records) and whose active
 * segment 2 holds NREC records, synced after NSYNC of them. Returns the
 * image directory (a copy taken while the log was open, as after kill -9)
 * and the record end offsets in segment 2. */
static char *make_image(uint64_t ends[NREC])
{
	char *dir = tu_mkdtemp();
	struct cache *c = tu_open(dir, 1 << 20, NULL);
	for (int i = 0; i < 5; i++)
		tu_put(c, (char[]){ 's', (char)('0' + i), 0 }, "sealed", 6);
	assert_int_equal(cache_seal(c), 1);
	uint8_t v[600];
	uint64_t off = SEG_HDR_SIZE;
	for (int i = 0; i < NREC; i++) {
		char k[16];
		rec_key(i, k);
		rec_val(i, v);
		tu_put(c, k, v, rec_vlen(i));
		off += rec_len(strlen(k), rec_vlen(i));
		ends[i] = off;
		if (i == NSYNC - 1)
			assert_int_equal(cache_sync(c), 0);
	}
	cache_quiesce(c);
	char *img = tu_mkdtemp();
	tu_rmrf(img);
	tu_copy(dir, img);
	assert_int_equal(cache_close(c), 0);
	tu_rmrf(dir);
	free(dir);
	return img;
}

/* Open a copy of img whose segment 2 is cut at `cut` bytes (or has junk
 * appended when junk > 0) and check that exactly the whole records before
 * the cut are there. */
static void check_cut(const char *img, const uint64_t ends[NREC], uint64_t cut, size_t junk)
{
	char *dir = tu_mkdtemp();
	tu_rmrf(dir);
	tu_copy(img, dir);
	char *seg = tu_path(dir, "seg-0000000000000002.qseg");
	if (junk) {
		FILE *f = fopen(seg, "ab");
		for (size_t i = 0; i < junk; i++)
			fputc((int)(i * 7 + 1), f);
		fclose(f);
	} else {
		assert_int_equal(truncate(seg, (off_t)cut), 0);
	}
	long long before = tu_fsize(seg);
	int whole = 0;
	while (whole < NREC && ends[whole] <= (uint64_t)before)
		whole++;
	uint64_t keep = whole ? ends[whole - 1] : SEG_HDR_SIZE;
	tu_capture_begin();
	struct cache *c = tu_open(dir, 1 << 20, NULL);
	char *log = tu_capture_end();
	if ((uint64_t)before != keep) {
		char want[128];
		snprintf(want, sizeof want, "seg-0000000000000002.qseg: torn tail of %llu bytes",
			 (unsigned long long)((uint64_t)before - keep));
		assert_non_null(strstr(log, want));
	} else {
		assert_null(strstr(log, "torn tail"));
	}
	free(log);
	assert_int_equal(tu_fsize(seg), (long long)keep);
	assert_true(whole >= NSYNC);	/* the synced records are never lost */
	/* expected value of each key: the last whole record that wrote it */
	for (int key = 0; key < 30; key++) {
		int last = -1;
		for (int i = 0; i < whole; i++)
			if (i % 30 == key)
				last = i;
		char k[16];
		rec_key(key, k);
		uint8_t *got;
		ssize_t n = tu_get(c, k, &got);
		if (last < 0) {
			assert_int_equal(n, -ENOENT);
			continue;
		}
		uint8_t want[600];
		rec_val(last, want);
		assert_int_equal(n, (ssize_t)rec_vlen(last));
		assert_memory_equal(got, want, (size_t)n);
		free(got);
	}
	uint8_t *got;
	assert_int_equal(tu_get(c, "s3", &got), 6);
	free(got);
	/* the log goes on after the cut: append, reopen, still consistent */
	tu_put(c, "after", "cut", 3);
	assert_int_equal(cache_close(c), 0);
	c = tu_open(dir, 1 << 20, NULL);
	assert_int_equal(tu_get(c, "after", &got), 3);
	free(got);
	assert_int_equal(cache_close(c), 0);
	free(seg);
	tu_rmrf(dir);
	free(dir);
}

static void test_torn_tail_every_boundary_and_random(void **state)
{
	(void)state;
	uint64_t ends[NREC];
	char *img = make_image(ends);
	/* every record boundary from the synced point on */
	for (int i = NSYNC - 1; i < NREC; i++)
		check_cut(img, ends, ends[i], 0);
	/* random offsets past the synced point */
	srand(7);
	for (int t = 0; t < 40; t++) {
		uint64_t lo = ends[NSYNC - 1], hi = ends[NREC - 1];
		check_cut(img, ends, lo + (uint64_t)rand() % (hi - lo), 0);
	}
	/* junk after the last record, as a torn append of a bigger record leaves */
	check_cut(img, ends, 0, 1);
	check_cut(img, ends, 0, 15);
	check_cut(img, ends, 0, 5000);
	tu_rmrf(img);
	free(img);
}

/* Three sealed segments with known keys; returns the directory. */
static char *make_sealed(void)
{
	char *dir = tu_mkdtemp();
	struct cache *c = tu_open(dir, 1 << 20, NULL);
	for (int s = 0; s < 3; s++) {
		for (int i = 0; i < 4; i++) {
			char k[16], v[64];
			snprintf(k, sizeof k, "k%d.%d", s, i);
			snprintf(v, sizeof v, "value of %s, long enough to flip", k);
			tu_put(c, k, v, strlen(v));
		}
		assert_true(cache_seal(c) > 0);
	}
	assert_int_equal(cache_close(c), 0);
	return dir;
}

static void test_flipped_byte_in_sealed_segment(void **state)
{
	(void)state;
	/* (a) covered by the checkpoint: the get that reads it fails with EIO
	 * and the log names the segment and the offset */
	char *dir = make_sealed();
	char *seg2 = tu_path(dir, "seg-0000000000000002.qseg");
	uint64_t off1 = SEG_HDR_SIZE + rec_len(4, strlen("value of k1.0, long enough to flip"));
	tu_flip(seg2, (long long)off1 + 30);	/* inside record k1.1 */
	struct cache *c = tu_open(dir, 1 << 20, NULL);
	uint8_t *v;
	tu_capture_begin();
	assert_int_equal(tu_get(c, "k1.1", &v), -EIO);
	char *log = tu_capture_end();
	char want[128];
	snprintf(want, sizeof want, "segment 2 (%s/seg-0000000000000002.qseg) at offset %llu", dir,
		 (unsigned long long)off1);
	assert_non_null(strstr(log, want));
	assert_non_null(strstr(log, "checksum mismatch"));
	free(log);
	assert_true(tu_get(c, "k1.0", &v) > 0);	/* neighbours are fine */
	free(v);
	assert_true(tu_get(c, "k1.2", &v) > 0);
	free(v);
	assert_int_equal(cache_close(c), 0);

	/* (b) not covered by a checkpoint: replay meets it and open fails,
	 * naming segment and offset; it is never skipped */
	tu_remove_checkpoints(dir);
	struct cache_opts o = { .dir = dir, .segment_size = 1 << 20 };
	tu_capture_begin();
	assert_int_equal(cache_open(&o, &c), -EIO);
	log = tu_capture_end();
	snprintf(want, sizeof want, "corrupt record in sealed segment 2 (%s/seg-0000000000000002.qseg) "
		 "at offset %llu", dir, (unsigned long long)off1);
	assert_non_null(strstr(log, want));
	free(log);

	/* (c) a bad segment header is named too */
	tu_flip(seg2, (long long)off1 + 30);	/* undo */
	tu_flip(seg2, 20);
	tu_capture_begin();
	assert_int_equal(cache_open(&o, &c), -EIO);
	log = tu_capture_end();
	assert_non_null(strstr(log, "seg-0000000000000002.qseg: bad segment header"));
	free(log);
	tu_flip(seg2, 20);
	assert_int_equal(cache_open(&o, &c), 0);
	assert_true(tu_get(c, "k1.1", &v) > 0);
	free(v);
	assert_int_equal(cache_close(c), 0);
	free(seg2);
	tu_rmrf(dir);
	free(dir);
}

/* Newest checkpoint of a kind (0: none). */
static uint64_t newest_ckpt(const char *dir, uint32_t kind)
{
	DIR *d = opendir(dir);
	int dfd = dirfd(d);
	uint8_t vol[VOLUME_ID_SIZE];
	assert_int_equal(cache_volume_read(dfd, vol), 0);
	struct dirent *e;
	uint64_t best = 0, bestupto = 0;
	while ((e = readdir(d))) {
		uint64_t id;
		if (!ckpt_parse_name(e->d_name, &id))
			continue;
		struct ckpt_file f;
		const char *why;
		if (ckpt_open(dfd, e->d_name, vol, &f, &why))
			continue;
		if (f.hdr.kind == kind && (f.hdr.upto > bestupto ||
					   (f.hdr.upto == bestupto && id > best))) {
			best = id;
			bestupto = f.hdr.upto;
		}
		ckpt_close(&f);
	}
	closedir(d);
	return best;
}

static void check_many(struct cache *c, int n)
{
	for (int i = 0; i < n; i++) {
		char k[16], v[32];
		snprintf(k, sizeof k, "m%05d", i);
		snprintf(v, sizeof v, "v%d", i % 7 == 0 ? -i : i);
		uint8_t *got;
		if (i % 11 == 0) {
			assert_int_equal(tu_get(c, k, &got), -ENOENT);
			continue;
		}
		assert_int_equal(tu_get(c, k, &got), (ssize_t)strlen(v));
		assert_memory_equal(got, v, strlen(v));
		free(got);
	}
}

static void test_corrupt_checkpoints_fall_back(void **state)
{
	(void)state;
	char *dir = tu_mkdtemp();
	struct cache *c = tu_open(dir, 8192, NULL);
	int n = 3000;
	for (int i = 0; i < n; i++) {
		char k[16], v[32];
		snprintf(k, sizeof k, "m%05d", i);
		snprintf(v, sizeof v, "v%d", i);
		tu_put(c, k, v, strlen(v));
		if (i % 100 == 99)
			cache_quiesce(c);	/* let fulls be merged along the way */
	}
	for (int i = 0; i < n; i += 7) {
		char k[16], v[32];
		snprintf(k, sizeof k, "m%05d", i);
		snprintf(v, sizeof v, "v%d", -i);
		tu_put(c, k, v, strlen(v));
	}
	for (int i = 0; i < n; i += 11) {
		char k[16];
		snprintf(k, sizeof k, "m%05d", i);
		assert_int_equal(cache_del(c, k, strlen(k)), 0);
	}
	cache_seal(c);
	assert_int_equal(cache_close(c), 0);

	/* the newest full is corrupt: an older full plus deltas serve */
	uint64_t full = newest_ckpt(dir, CKPT_FULL), delta = newest_ckpt(dir, CKPT_DELTA);
	assert_true(full > 0 && delta > 0);
	char name[CKPT_NAME_LEN];
	ckpt_name(full, name);
	char *p = tu_path(dir, name);
	tu_flip(p, tu_fsize(p) / 2);
	tu_capture_begin();
	c = tu_open(dir, 8192, NULL);
	char *log = tu_capture_end();
	char want[160];
	snprintf(want, sizeof want, "checkpoint %s/%s is unusable (checksum mismatch); skipping it",
		 dir, name);
	assert_non_null(strstr(log, want));
	free(log);
	check_many(c, n);
	struct cache_stats st;
	cache_stats(c, &st);
	assert_true(st.open_replayed_segments <= 2);	/* an older full + deltas, not a replay */
	assert_int_equal(cache_close(c), 0);
	free(p);

	/* the newest delta is corrupt: the chain stops before it and the
	 * segments after are replayed */
	delta = newest_ckpt(dir, CKPT_DELTA);
	ckpt_name(delta, name);
	p = tu_path(dir, name);
	tu_flip(p, 70);
	tu_capture_begin();
	c = tu_open(dir, 8192, NULL);
	log = tu_capture_end();
	assert_non_null(strstr(log, name));
	free(log);
	check_many(c, n);
	assert_int_equal(cache_close(c), 0);
	free(p);

	/* every checkpoint corrupt: full replay, same data */
	DIR *d = opendir(dir);
	struct dirent *e;
	while ((e = readdir(d))) {
		uint64_t id;
		if (ckpt_parse_name(e->d_name, &id)) {
			p = tu_path(dir, e->d_name);
			tu_flip(p, 10);
			free(p);
		}
	}
	closedir(d);
	tu_capture_begin();
	c = tu_open(dir, 8192, NULL);
	log = tu_capture_end();
	assert_non_null(strstr(log, "no usable checkpoint; replaying every segment"));
	free(log);
	check_many(c, n);
	cache_stats(c, &st);
	assert_true(st.open_replayed_segments > 10);
	assert_int_equal(cache_close(c), 0);
	tu_rmrf(dir);
	free(dir);
}

static void test_torn_state_journal(void **state)
{
	(void)state;
	char *dir = make_sealed();
	struct cache *c = tu_open(dir, 1 << 20, NULL);
	assert_int_equal(cache_confirm(c, 1), 0);
	assert_int_equal(cache_confirm(c, 2), 0);
	assert_int_equal(cache_close(c), 0);
	char *p = tu_path(dir, "state.log");
	long long sz = tu_fsize(p);
	assert_int_equal(sz, 48);
	assert_int_equal(truncate(p, sz - 5), 0);	/* tear the second record */
	tu_capture_begin();
	c = tu_open(dir, 1 << 20, NULL);
	char *log = tu_capture_end();
	assert_non_null(strstr(log, "state.log: torn or corrupt tail of 19 bytes at offset 24 truncated"));
	free(log);
	assert_int_equal(tu_fsize(p), 24);
	assert_int_equal(cache_confirm(c, 2), 0);	/* can be said again */
	assert_int_equal(cache_close(c), 0);
	assert_int_equal(tu_fsize(p), 48);
	free(p);
	tu_rmrf(dir);
	free(dir);
}

/* A crash while a segment is created leaves only a temp file; junk after a
 * seal record is cut off, not taken as the start of an active tail. */
static void test_interrupted_creation_and_junk_after_seal(void **state)
{
	(void)state;
	char *dir = make_sealed();	/* segments 1-3 sealed, 4 active (empty) */
	char *stray = tu_path(dir, "seg-0000000000000005.qseg.tmp");
	FILE *f = fopen(stray, "w");
	fclose(f);
	/* drop the empty active segment and every checkpoint: segment 3 is
	 * then the newest, sealed, and replayed */
	char *seg4 = tu_path(dir, "seg-0000000000000004.qseg");
	assert_int_equal(unlink(seg4), 0);
	tu_remove_checkpoints(dir);
	char *seg3 = tu_path(dir, "seg-0000000000000003.qseg");
	long long sealed_size = tu_fsize(seg3);
	chmod(seg3, 0644);
	f = fopen(seg3, "ab");
	fputs("junk past the seal", f);
	fclose(f);
	tu_capture_begin();
	struct cache *c = tu_open(dir, 1 << 20, NULL);
	char *log = tu_capture_end();
	assert_non_null(strstr(log, "seg-0000000000000003.qseg: 18 bytes after the seal record"));
	free(log);
	assert_int_equal(access(stray, F_OK), -1);
	assert_int_equal(tu_fsize(seg3), sealed_size);
	tu_put(c, "k2", "new", 3);
	assert_int_equal(cache_sync(c), 0);
	assert_int_equal(cache_close(c), 0);
	c = tu_open(dir, 1 << 20, NULL);
	uint8_t *v;
	assert_int_equal(tu_get(c, "k2", &v), 3);	/* the synced record is there */
	free(v);
	assert_true(tu_get(c, "k2.3", &v) > 0);
	free(v);
	assert_int_equal(cache_close(c), 0);
	free(stray);
	free(seg3);
	free(seg4);
	tu_rmrf(dir);
	free(dir);
}

/* Open must load the newest full checkpoint: with the deltas it already
 * covers removed, an older full could not be chained forward. */
static void test_open_loads_newest_full(void **state)
{
	(void)state;
	char *dir = tu_mkdtemp();
	struct cache *c = tu_open(dir, 8192, NULL);
	for (int i = 0; i < 3000; i++) {
		char k[16], v[32];
		snprintf(k, sizeof k, "m%05d", i);
		snprintf(v, sizeof v, "v%d", i);
		tu_put(c, k, v, strlen(v));
		if (i % 100 == 99)
			cache_quiesce(c);
	}
	cache_seal(c);
	assert_int_equal(cache_close(c), 0);
	uint64_t full = newest_ckpt(dir, CKPT_FULL);
	assert_true(full > 0);
	DIR *d = opendir(dir);
	uint8_t vol[VOLUME_ID_SIZE];
	assert_int_equal(cache_volume_read(dirfd(d), vol), 0);
	char fname[CKPT_NAME_LEN];
	ckpt_name(full, fname);
	struct ckpt_file f;
	const char *why;
	assert_int_equal(ckpt_open(dirfd(d), fname, vol, &f, &why), 0);
	uint64_t fupto = f.hdr.upto;
	ckpt_close(&f);
	int nfull = 0, removed = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		uint64_t id;
		if (!ckpt_parse_name(e->d_name, &id) ||
		    ckpt_open(dirfd(d), e->d_name, vol, &f, &why))
			continue;
		nfull += f.hdr.kind == CKPT_FULL;
		if (f.hdr.kind == CKPT_DELTA && f.hdr.upto <= fupto) {
			assert_int_equal(unlinkat(dirfd(d), e->d_name, 0), 0);
			removed++;
		}
		ckpt_close(&f);
	}
	closedir(d);
	assert_true(nfull >= 2);
	assert_true(removed > 0);
	c = tu_open(dir, 8192, NULL);
	struct cache_stats st;
	cache_stats(c, &st);
	assert_int_equal(st.keys, 3000);
	assert_true(st.open_replayed_segments <= 1);
	assert_int_equal(cache_close(c), 0);
	tu_rmrf(dir);
	free(dir);
}

/* A bad checksum in the last record of the active segment is a torn tail:
 * cut off with a warning, the record gone, the rest there. */
static void test_bad_checksum_in_active_tail(void **state)
{
	(void)state;
	char *dir = tu_mkdtemp();
	struct cache *c = tu_open(dir, 1 << 20, NULL);
	tu_put(c, "first", "aaaaaaaaaa", 10);
	tu_put(c, "last", "bbbbbbbbbb", 10);
	assert_int_equal(cache_sync(c), 0);
	assert_int_equal(cache_close(c), 0);
	char *seg = tu_path(dir, "seg-0000000000000001.qseg");
	long long size = tu_fsize(seg);
	tu_flip(seg, size - 3);	/* a value byte of "last" */
	tu_capture_begin();
	c = tu_open(dir, 1 << 20, NULL);
	char *log = tu_capture_end();
	char want[128];
	snprintf(want, sizeof want, "torn tail of %llu bytes at offset %llu (record checksum mismatch)",
		 (unsigned long long)rec_len(4, 10), (unsigned long long)(size - rec_len(4, 10)));
	assert_non_null(strstr(log, want));
	free(log);
	uint8_t *v;
	assert_int_equal(tu_get(c, "last", &v), -ENOENT);
	assert_int_equal(tu_get(c, "first", &v), 10);
	free(v);
	assert_int_equal(cache_close(c), 0);
	free(seg);
	tu_rmrf(dir);
	free(dir);
}

/* A flipped bit in one state.log record loses that fact only. */
static void test_state_journal_bad_record_in_middle(void **state)
{
	(void)state;
	char *dir = make_sealed();
	struct cache *c = tu_open(dir, 1 << 20, NULL);
	for (uint64_t id = 1; id <= 3; id++)
		assert_int_equal(cache_confirm(c, id), 0);
	assert_int_equal(cache_close(c), 0);
	char *p = tu_path(dir, "state.log");
	tu_flip(p, 3);	/* inside the first record */
	tu_capture_begin();
	c = tu_open(dir, 1 << 20, NULL);
	char *log = tu_capture_end();
	assert_non_null(strstr(log, "state.log: 1 corrupt records skipped"));
	free(log);
	struct cache_stats st;
	cache_stats(c, &st);
	assert_int_equal(st.segments_unconfirmed, 1);	/* only segment 1's fact is lost */
	assert_int_equal(cache_close(c), 0);
	free(p);
	tu_rmrf(dir);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_torn_tail_every_boundary_and_random),
		cmocka_unit_test(test_flipped_byte_in_sealed_segment),
		cmocka_unit_test(test_corrupt_checkpoints_fall_back),
		cmocka_unit_test(test_torn_state_journal),
		cmocka_unit_test(test_interrupted_creation_and_junk_after_seal),
		cmocka_unit_test(test_state_journal_bad_record_in_middle),
		cmocka_unit_test(test_open_loads_newest_full),
		cmocka_unit_test(test_bad_checksum_in_active_tail),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
