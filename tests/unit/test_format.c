/* tests/unit/test_format.c - record, header, seal and checkpoint formats. */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ckpt.h"
#include "format.h"
#include "../../common/units.h"

static void test_record_roundtrip(void **state)
{
	(void)state;
	uint8_t buf[REC_HDR_SIZE + 3 + 5];
	rec_encode_hdr(buf, 7, REC_PUT, "abc", 3, "hello", 5);
	memcpy(buf + REC_HDR_SIZE, "abc", 3);
	memcpy(buf + REC_HDR_SIZE + 3, "hello", 5);
	struct rec_hdr h;
	assert_int_equal(rec_decode_hdr(buf, &h), 0);
	assert_int_equal(h.type, REC_PUT);
	assert_int_equal(h.klen, 3);
	assert_int_equal(h.vlen, 5);
	assert_true(rec_verify(buf, 7));
	/* another segment id does not verify: records cannot be moved */
	assert_false(rec_verify(buf, 8));
	/* every single-bit flip is caught (lengths taken as first written, as
	 * a reader that trusts the index would) */
	for (size_t i = 0; i < sizeof buf; i++) {
		for (int bit = 0; bit < 8; bit++) {
			buf[i] ^= (uint8_t)(1 << bit);
			assert_false(rec_verify_parts(buf, 7, buf + REC_HDR_SIZE, 3,
						      buf + REC_HDR_SIZE + 3, 5));
			buf[i] ^= (uint8_t)(1 << bit);
		}
	}
	assert_true(rec_verify(buf, 7));
	buf[8] = 9;	/* unknown type */
	assert_int_equal(rec_decode_hdr(buf, &h), -EBADMSG);
}

static void test_seg_header(void **state)
{
	(void)state;
	struct seg_hdr h = { .seg_id = 42, .created = 1234 }, g;
	memset(h.volume_id, 0xab, sizeof h.volume_id);
	uint8_t b[SEG_HDR_SIZE];
	seg_hdr_encode(&h, b);
	assert_int_equal(seg_hdr_decode(b, &g), 0);
	assert_int_equal(g.seg_id, 42);
	assert_memory_equal(g.volume_id, h.volume_id, VOLUME_ID_SIZE);
	b[33] ^= 1;
	assert_int_equal(seg_hdr_decode(b, &g), -EBADMSG);
	b[33] ^= 1;
	put_le32(b + 8, 99);	/* future version, checksum recomputed */
	put_le64(b + 56, sum64(b, 56, 0));
	assert_int_equal(seg_hdr_decode(b, &g), -EPROTONOSUPPORT);
}

static void test_seal_roundtrip(void **state)
{
	(void)state;
	struct seal_info s = { 3, 4096, 0xdeadbeefcafef00dull }, t;
	uint8_t b[SEAL_VAL_SIZE];
	seal_encode(&s, b);
	seal_decode(b, &t);
	assert_memory_equal(&s, &t, sizeof s);
}

static void test_parse_size(void **state)
{
	(void)state;
	uint64_t v;
	assert_int_equal(parse_size("4096", &v), 0);
	assert_int_equal(v, 4096);
	assert_int_equal(parse_size("64MiB", &v), 0);
	assert_int_equal(v, 64ull << 20);
	assert_int_equal(parse_size("20GiB", &v), 0);
	assert_int_equal(v, 20ull << 30);
	assert_int_equal(parse_size("512k", &v), 0);
	assert_int_equal(v, 512ull << 10);
	assert_int_equal(parse_size("1T", &v), 0);
	assert_int_equal(v, 1ull << 40);
	assert_int_equal(parse_size("", &v), -EINVAL);
	assert_int_equal(parse_size("MiB", &v), -EINVAL);
	assert_int_equal(parse_size("12X", &v), -EINVAL);
	assert_int_equal(parse_size("-1", &v), -EINVAL);
	assert_int_equal(parse_size("99999999999999999999", &v), -EINVAL);
	assert_int_equal(parse_size("20000000000T", &v), -EINVAL);
}

static const uint8_t VOL[VOLUME_ID_SIZE] = { 1, 2, 3 };

/* Write a checkpoint with keys k0..k(n-1) (step apart) into dir/name. */
static void write_ckpt(const char *dir, uint64_t id, uint32_t kind, uint64_t from,
		       uint64_t upto, int n, int step, uint8_t op, uint32_t seg)
{
	char name[CKPT_NAME_LEN];
	ckpt_name(id, name);
	char *p = tu_path(dir, name);
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	struct ckpt_hdr h = { .kind = kind, .id = id, .from = from, .upto = upto };
	memcpy(h.volume_id, VOL, sizeof VOL);
	struct ckpt_writer w;
	assert_int_equal(ckw_begin(&w, fd, &h, 1), 0);
	struct ckpt_seg s = { .id = upto, .size = 100 + id, .live = id };
	ckw_seg(&w, &s);
	for (int i = 0; i < n; i++) {
		char k[16];
		snprintf(k, sizeof k, "k%05d", i * step);
		struct ix_loc loc = { seg, 64 + (uint32_t)i, 30 };
		ckw_key(&w, op, (const uint8_t *)k, strlen(k), &loc);
	}
	assert_int_equal(ckw_end(&w), 0);
	close(fd);
	free(p);
}

static void test_ckpt_roundtrip_and_corruption(void **state)
{
	(void)state;
	char *dir = tu_mkdtemp();
	write_ckpt(dir, 1, CKPT_FULL, 0, 3, 1000, 1, CKPT_PUT, 2);
	int dfd = open(dir, O_RDONLY | O_DIRECTORY);
	struct ckpt_file f;
	const char *why;
	assert_int_equal(ckpt_open(dfd, "ckpt-0000000000000001.qckp", VOL, &f, &why), 0);
	assert_int_equal(f.nkeys, 1000);
	assert_int_equal(f.nsegs, 1);
	const uint8_t *pos = f.keys;
	struct ckpt_ent e;
	int n = 0;
	while (ckpt_next(&f, &pos, &e)) {
		assert_int_equal(e.op, CKPT_PUT);
		assert_int_equal(e.loc.seg, 2);
		assert_int_equal(e.loc.off, 64 + (uint32_t)n);
		n++;
	}
	assert_int_equal(n, 1000);
	ckpt_close(&f);

	/* foreign volume */
	uint8_t other[VOLUME_ID_SIZE] = { 9 };
	assert_int_equal(ckpt_open(dfd, "ckpt-0000000000000001.qckp", other, &f, &why), -EBADMSG);
	assert_string_equal(why, "checkpoint belongs to another volume");

	/* any flipped byte is caught */
	char *p = tu_path(dir, "ckpt-0000000000000001.qckp");
	long long sz = tu_fsize(p);
	for (long long off = 0; off < sz; off += 97) {
		tu_flip(p, off);
		assert_int_equal(ckpt_open(dfd, "ckpt-0000000000000001.qckp", VOL, &f, &why),
				 -EBADMSG);
		assert_non_null(why);
		tu_flip(p, off);
	}
	/* a well-formed file with impossible contents is refused too */
	write_ckpt(dir, 2, CKPT_DELTA, 3, 3, 10, 1, CKPT_PUT, 2);	/* from == upto */
	assert_int_equal(ckpt_open(dfd, "ckpt-0000000000000002.qckp", VOL, &f, &why), -EBADMSG);
	assert_string_equal(why, "impossible segment range");
	write_ckpt(dir, 3, CKPT_FULL, 0, 3, 10, 1, CKPT_PUT, 4);	/* points past upto */
	assert_int_equal(ckpt_open(dfd, "ckpt-0000000000000003.qckp", VOL, &f, &why), -EBADMSG);
	assert_string_equal(why, "impossible record location");
	/* truncation is caught */
	assert_int_equal(truncate(p, sz - 1), 0);
	assert_int_equal(ckpt_open(dfd, "ckpt-0000000000000001.qckp", VOL, &f, &why), -EBADMSG);
	free(p);
	close(dfd);
	tu_rmrf(dir);
	free(dir);
}

static void test_ckpt_writer_rejects_unordered_keys(void **state)
{
	(void)state;
	struct ckpt_hdr h = { .kind = CKPT_DELTA, .id = 1, .upto = 1 };
	struct ckpt_writer w;
	assert_int_equal(ckw_begin(&w, -1, &h, 0), 0);
	struct ix_loc loc = { 1, 2, 3 };
	ckw_key(&w, CKPT_PUT, (const uint8_t *)"b", 1, &loc);
	ckw_key(&w, CKPT_PUT, (const uint8_t *)"a", 1, &loc);
	assert_int_equal(ckw_end(&w), -EINVAL);
	ckw_abort(&w);
}

static void test_ckpt_merge(void **state)
{
	(void)state;
	char *dir = tu_mkdtemp();
	/* base: k00000..k00099 in seg 1; delta 1 overwrites even keys (seg 2);
	 * delta 2 deletes multiples of 3 (k00000, k00003, ...) */
	write_ckpt(dir, 1, CKPT_FULL, 0, 1, 100, 1, CKPT_PUT, 1);
	write_ckpt(dir, 2, CKPT_DELTA, 1, 2, 50, 2, CKPT_PUT, 2);
	write_ckpt(dir, 3, CKPT_DELTA, 2, 3, 34, 3, CKPT_DEL, 0);
	int dfd = open(dir, O_RDONLY | O_DIRECTORY);
	struct ckpt_file b, d1, d2;
	const char *why;
	assert_int_equal(ckpt_open(dfd, "ckpt-0000000000000001.qckp", VOL, &b, &why), 0);
	assert_int_equal(ckpt_open(dfd, "ckpt-0000000000000002.qckp", VOL, &d1, &why), 0);
	assert_int_equal(ckpt_open(dfd, "ckpt-0000000000000003.qckp", VOL, &d2, &why), 0);
	int fd = openat(dfd, "ckpt-0000000000000004.qckp", O_WRONLY | O_CREAT, 0644);
	struct ckpt_hdr h = { .kind = CKPT_FULL, .id = 4, .upto = 3 };
	memcpy(h.volume_id, VOL, sizeof VOL);
	const struct ckpt_file *ds[] = { &d1, &d2 };
	assert_int_equal(ckpt_merge(fd, &h, &b, ds, 2), 0);
	close(fd);
	struct ckpt_file m;
	assert_int_equal(ckpt_open(dfd, "ckpt-0000000000000004.qckp", VOL, &m, &why), 0);
	assert_int_equal(m.nsegs, 3);	/* seg 1, 2, 3 entries */
	const uint8_t *pos = m.keys;
	struct ckpt_ent e;
	int expect = 0, n = 0;
	while (ckpt_next(&m, &pos, &e)) {
		while (expect % 3 == 0)
			expect++;
		char k[16];
		snprintf(k, sizeof k, "k%05d", expect);
		assert_int_equal(e.klen, strlen(k));
		assert_memory_equal(e.key, k, e.klen);
		assert_int_equal(e.op, CKPT_PUT);
		assert_int_equal(e.loc.seg, expect % 2 == 0 ? 2 : 1);
		expect++;
		n++;
	}
	assert_int_equal(n, 100 - 34);
	ckpt_close(&m);
	ckpt_close(&b);
	ckpt_close(&d1);
	ckpt_close(&d2);
	close(dfd);
	tu_rmrf(dir);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_record_roundtrip),
		cmocka_unit_test(test_seg_header),
		cmocka_unit_test(test_seal_roundtrip),
		cmocka_unit_test(test_parse_size),
		cmocka_unit_test(test_ckpt_roundtrip_and_corruption),
		cmocka_unit_test(test_ckpt_writer_rejects_unordered_keys),
		cmocka_unit_test(test_ckpt_merge),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
