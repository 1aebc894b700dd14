/* tests/unit/test_objstore.c - objects on k=4, m=2 over six real
 * redis-servers (and a dir:// mix): byte-exact round trips; any 2 backends
 * killed or holding corrupt shards and retrieval still works; 3 gone and the
 * error names the object and the failing backends; a wrong key is refused.
 * Placement over eight: down backends are skipped, too few usable waits
 * (-EAGAIN) unless min_shards allows a degraded store, which a repair makes
 * whole; the cheap existence check and the metadata copy. */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "objstore.h"

#define NB 6
#define NB_MAX 8

static pid_t pids[NB_MAX];
static int ports[NB_MAX];
static char *dir;

static int setup(void **state)
{
	(void)state;
	assert_true(sodium_init() >= 0);
	dir = tu_mkdtemp();
	tu_redis_start_n(NB_MAX, ports, pids);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	tu_redis_stop_n(NB_MAX, pids);
	tu_rmrf(dir);
	free(dir);
	return 0;
}

struct rig {
	struct objstore s;
	struct backend *b[NB_MAX];
	int nb;
	struct codec *c;
};

static void rig_open_n(struct rig *g, const uint8_t key[32], int ndir, int nb)
{
	memset(g, 0, sizeof *g);
	g->s.k = 4;
	g->s.m = 2;
	memset(g->s.volume_id, 0xab, 16);
	snprintf(g->s.volhex, sizeof g->s.volhex, "abababababababababababababababab");
	crypto_generichash(g->s.meta_key, 32, (const uint8_t *)"meta", 4, key, 32);
	g->nb = nb;
	for (int i = 0; i < nb; i++) {
		char url[512];
		if (i < ndir)
			snprintf(url, sizeof url, "dir://%s/d%d", dir, i);
		else
			snprintf(url, sizeof url, "redis://127.0.0.1:%d/0", ports[i]);
		struct backend_url u;
		const char *why;
		assert_int_equal(backend_url_parse(url, &u, &why), 0);
		assert_int_equal(backend_open(&u, 1000, &g->b[i]), 0);
		backend_url_free(&u);
	}
	g->s.backends = g->b;
	g->s.nbackends = (size_t)nb;
	struct codec_params p = { .k = 4, .m = 2, .zstd_level = 1 };
	memcpy(p.volume_id, g->s.volume_id, 16);
	memcpy(p.key, key, 32);
	assert_int_equal(codec_new(&p, &g->c), 0);
}

static void rig_open(struct rig *g, const uint8_t key[32], int ndir)
{
	rig_open_n(g, key, ndir, NB);
}

static void rig_close(struct rig *g)
{
	for (int i = 0; i < g->nb; i++)
		backend_close(g->b[i]);
	codec_free(g->c);
}

/* The backend holding piece 0 of shard `shard` of name (generation 0), or
 * -1: placement rotates, so tests look. */
static int home_of(struct rig *g, const char *name, int shard)
{
	char key[128];
	snprintf(key, sizeof key, "%s/o/%s/%d.0", g->s.volhex, name, shard);
	for (int i = 0; i < g->nb; i++)
		if (backend_exists(g->b[i], key) == 1)
			return i;
	return -1;
}

/* The shard of name stored on backend bi, or -1. */
static int shard_on(struct rig *g, const char *name, int bi)
{
	for (int sh = 0; sh < 6; sh++)
		if (home_of(g, name, sh) == bi)
			return sh;
	return -1;
}

static int object_file(size_t size, uint8_t **data)
{
	uint8_t *d = malloc(size ? size : 1);
	randombytes_buf(d, size);
	for (size_t i = 0; i + 64 <= size; i += 64)
		memset(d + i + 32, 'q', 32);	/* 2:1 compressible */
	char *p = tu_path(dir, "obj");
	int fd = open(p, O_RDWR | O_CREAT | O_TRUNC, 0600);
	free(p);
	assert_int_equal(write(fd, d, size), (ssize_t)size);
	*data = d;
	return fd;
}

static char damage[2048];	/* what the last get_and_check saw damaged */

static int get_and_check(struct rig *g, const char *name, uint64_t id, const uint8_t *want,
			 size_t size, char *why, size_t whylen)
{
	char *p = tu_path(dir, "got");
	int fd = open(p, O_RDWR | O_CREAT | O_TRUNC, 0600);
	free(p);
	int r = obj_get(&g->s, g->c, name, id, fd, why, whylen, damage, sizeof damage);
	if (!r)
		tu_assert_fd_content(fd, want, size);
	close(fd);
	return r;
}

static uint8_t KEY[32] = { 42 };

static void test_roundtrip_and_pieces(void **state)
{
	(void)state;
	struct rig g;
	rig_open(&g, KEY, 2);	/* two dir:// and four redis:// */
	size_t sizes[] = { 0, 1, STRIPE_SIZE, 3 * STRIPE_SIZE + 5, 40u << 20 };
	char why[2048];
	for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
		uint8_t *d;
		int fd = object_file(sizes[i], &d);
		char name[16];
		snprintf(name, sizeof name, "s%zu", i + 1);
		int r = obj_put(&g.s, g.c, name, i + 1, fd, sizes[i], why, sizeof why, NULL, 0);
		if (r)
			print_message("# %s\n", why);
		assert_int_equal(r, 0);
		assert_int_equal(get_and_check(&g, name, i + 1, d, sizes[i], why, sizeof why), 0);
		free(d);
		close(fd);
	}
	/* the 40 MiB object's shards (about 5 MiB each) went in several pieces,
	 * each shard to its own backend */
	int home = home_of(&g, "s5", 0);
	assert_true(home >= 0);
	for (int sh = 1; sh < 6; sh++)
		assert_int_equal(home_of(&g, "s5", sh), (home + sh) % NB);
	char key[128];
	snprintf(key, sizeof key, "%s/o/s5/0.1", g.s.volhex);
	uint8_t *v;
	size_t n;
	assert_int_equal(backend_get(g.b[home], key, &v, &n), 0);
	free(v);
	/* backends only ever see ciphertext: no plaintext run in a shard */
	snprintf(key, sizeof key, "%s/o/s5/0.0", g.s.volhex);
	assert_int_equal(backend_get(g.b[home], key, &v, &n), 0);
	uint8_t run[32];
	memset(run, 'q', sizeof run);
	assert_null(memmem(v, n, run, sizeof run));
	free(v);
	rig_close(&g);
}

static void test_two_down_two_corrupt_three_gone(void **state)
{
	(void)state;
	struct rig g;
	rig_open(&g, KEY, 0);
	size_t size = 5 * STRIPE_SIZE + 77;
	uint8_t *d;
	int fd = object_file(size, &d);
	char why[4096];
	assert_int_equal(obj_put(&g.s, g.c, "s100", 100, fd, size, why, sizeof why, NULL, 0), 0);

	/* corrupt shards 1 and 2 (redis SET of a changed piece) */
	for (int i = 1; i <= 2; i++) {
		char key[128];
		snprintf(key, sizeof key, "%s/o/s100/%d.0", g.s.volhex, i);
		uint8_t *v;
		size_t n;
		int bi = home_of(&g, "s100", i);
		assert_true(bi >= 0);
		assert_int_equal(backend_get(g.b[bi], key, &v, &n), 0);
		v[n / 2] ^= 0x10;
		assert_int_equal(backend_put(g.b[bi], key, v, n), 0);
		free(v);
	}
	assert_int_equal(get_and_check(&g, "s100", 100, d, size, why, sizeof why), 0);
	print_message("# damage: %s\n", damage);
	assert_non_null(strstr(damage, "shard 1 on "));
	assert_non_null(strstr(damage, "shard 2 on "));
	assert_non_null(strstr(damage, "checksum mismatch in stripe"));
	assert_null(strstr(damage, "shard 0 on "));

	/* a clean object, then two servers killed: still readable */
	assert_int_equal(obj_put(&g.s, g.c, "s101", 101, fd, size, why, sizeof why, NULL, 0), 0);
	assert_int_equal(get_and_check(&g, "s101", 101, d, size, why, sizeof why), 0);
	assert_string_equal(damage, "");
	int on0 = shard_on(&g, "s101", 0), on5 = shard_on(&g, "s101", 5),
	    on3 = shard_on(&g, "s101", 3);
	tu_redis_stop(pids[0]);
	tu_redis_stop(pids[5]);
	pids[0] = pids[5] = -1;
	assert_int_equal(get_and_check(&g, "s101", 101, d, size, why, sizeof why), 0);
	char want[128];
	snprintf(want, sizeof want, "shard %d on ", on0);
	assert_non_null(strstr(damage, want));
	snprintf(want, sizeof want, "shard %d on ", on5);
	assert_non_null(strstr(damage, want));

	/* a third one gone: a clear error naming the object and each failure */
	tu_redis_stop(pids[3]);
	pids[3] = -1;
	int r = get_and_check(&g, "s101", 101, d, size, why, sizeof why);
	assert_int_equal(r, -EIO);
	print_message("# %s\n", why);
	assert_non_null(strstr(why, "object 101 stripe 0: 3 usable shards, 4 needed"));
	snprintf(want, sizeof want, "shard %d on redis://127.0.0.1:%d/0: ", on3, ports[3]);
	assert_non_null(strstr(why, want));
	/* with half the backends gone, a new store cannot get its majority */
	r = obj_put(&g.s, g.c, "s102", 102, fd, size, why, sizeof why, NULL, 0);
	assert_int_equal(r < 0, 1);
	for (int i = 0; i < NB_MAX; i++)
		if (pids[i] < 0)
			pids[i] = tu_redis_start(ports[i], NULL);
	free(d);
	close(fd);
	rig_close(&g);
}

static void test_wrong_key_refused(void **state)
{
	(void)state;
	struct rig g, h;
	rig_open(&g, KEY, 0);
	uint8_t *d;
	int fd = object_file(100000, &d);
	char why[2048];
	assert_int_equal(obj_put(&g.s, g.c, "c7", 7, fd, 100000, why, sizeof why, NULL, 0), 0);
	uint8_t other[32] = { 43 };
	rig_open(&h, other, 0);
	assert_int_equal(get_and_check(&h, "c7", 7, d, 100000, why, sizeof why), -EBADMSG);
	assert_non_null(strstr(why, "does not open with this key"));
	assert_int_equal(get_and_check(&g, "c8", 8, d, 100000, why, sizeof why), -ENOENT);
	assert_non_null(strstr(why, "no backend has its metadata"));
	free(d);
	close(fd);
	rig_close(&g);
	rig_close(&h);
}

/* Does any backend hold a piece of name on backend bi (any shard)? */
static bool holds_any(struct rig *g, const char *name, int bi)
{
	return shard_on(g, name, bi) >= 0;
}

static void test_placement_skips_down(void **state)
{
	(void)state;
	struct rig g;
	rig_open_n(&g, KEY, 0, NB_MAX);	/* 8 backends for k+m = 6 */
	struct health *h;
	assert_int_equal(health_new(NB_MAX, &h), 0);
	g.s.health = h;
	size_t size = 2 * STRIPE_SIZE + 3;
	uint8_t *d;
	int fd = object_file(size, &d);
	char why[4096], dmg[1024];
	/* objects spread: over 16 names every backend gets shards */
	int used[NB_MAX] = { 0 };
	for (int i = 0; i < 16; i++) {
		char name[16];
		snprintf(name, sizeof name, "s%d", 200 + i);
		assert_int_equal(obj_put(&g.s, g.c, name, (uint64_t)(200 + i), fd, size, why,
					 sizeof why, dmg, sizeof dmg), 0);
		assert_string_equal(dmg, "");
		for (int b = 0; b < NB_MAX; b++)
			used[b] += holds_any(&g, name, b);
	}
	for (int b = 0; b < NB_MAX; b++)
		assert_true(used[b] > 0);
	/* two backends down (one killed, one only marked): nothing goes there */
	tu_redis_stop(pids[2]);
	pids[2] = -1;
	health_fail(h, 2, "killed by the test");
	health_fail(h, 6, "marked down by the test");
	for (int i = 0; i < 8; i++) {
		char name[16];
		snprintf(name, sizeof name, "s%d", 300 + i);
		assert_int_equal(obj_put(&g.s, g.c, name, (uint64_t)(300 + i), fd, size, why,
					 sizeof why, dmg, sizeof dmg), 0);
		assert_string_equal(dmg, "");
		assert_false(holds_any(&g, name, 6));
		assert_int_equal(get_and_check(&g, name, (uint64_t)(300 + i), d, size, why,
					       sizeof why), 0);
		assert_string_equal(damage, "");
	}
	/* a third down: six usable of eight is still enough; a fourth is not,
	 * and the store says so (the caller keeps the data and retries) */
	health_fail(h, 7, "marked down by the test");
	assert_int_equal(obj_put(&g.s, g.c, "s400", 400, fd, size, why, sizeof why, dmg,
				 sizeof dmg), -EAGAIN);
	print_message("# %s\n", why);
	assert_non_null(strstr(why, "only 5 of 8 backends are usable, 6 shards must be stored"));
	/* opt-in: min_shards 5 stores it degraded, and says which shard is missing */
	g.s.min_shards = 5;
	assert_int_equal(obj_put(&g.s, g.c, "s400", 400, fd, size, why, sizeof why, dmg,
				 sizeof dmg), 0);
	print_message("# %s\n", dmg);
	assert_non_null(strstr(dmg, "shard 5 not stored"));
	assert_int_equal(get_and_check(&g, "s400", 400, d, size, why, sizeof why), 0);
	struct obj_check ck;
	assert_int_equal(obj_verify(&g.s, "s400", OBJ_VERIFY_EXISTS, NULL, NULL, &ck, why,
				    sizeof why), 0);
	assert_int_equal(ck.good, 5);
	assert_int_equal(ck.bad_mask, 1u << 5);
	/* a repair must place all six shards: refused while only five are usable */
	assert_int_equal(obj_repair(&g.s, g.c, "s400", 400, dir, why, sizeof why), -EAGAIN);
	/* backends 6 and 7 answer again: the repair makes it whole */
	assert_int_equal(health_probe(h, 6, true, NULL), 1);
	assert_int_equal(health_probe(h, 7, true, NULL), 1);
	assert_int_equal(obj_repair(&g.s, g.c, "s400", 400, dir, why, sizeof why), 0);
	assert_int_equal(obj_verify(&g.s, "s400", OBJ_VERIFY_READ, NULL, NULL, &ck, why,
				    sizeof why), 0);
	assert_int_equal(ck.good, 6);
	assert_int_equal(ck.gen, 1);
	assert_int_equal(get_and_check(&g, "s400", 400, d, size, why, sizeof why), 0);
	/* with a writer failing mid-store (backend 2 is dead but not known to
	 * be): min_shards absorbs it, and the health table learns it is down */
	assert_int_equal(health_probe(h, 2, true, NULL), 1);
	g.s.min_shards = 5;
	int hit = 0;
	for (int i = 0; i < 8 && !hit; i++) {
		char name[16];
		snprintf(name, sizeof name, "s%d", 500 + i);
		assert_int_equal(obj_put(&g.s, g.c, name, (uint64_t)(500 + i), fd, size, why,
					 sizeof why, dmg, sizeof dmg), 0);
		if (dmg[0]) {
			hit = 1;
			print_message("# %s\n", dmg);
			assert_false(health_usable(h, 2));
			assert_int_equal(get_and_check(&g, name, (uint64_t)(500 + i), d, size,
						       why, sizeof why), 0);
		}
	}
	assert_true(hit);	/* some object was placed on backend 2 */
	pids[2] = tu_redis_start(ports[2], NULL);
	health_free(h);
	free(d);
	close(fd);
	rig_close(&g);
}

static void test_check_and_meta_sync(void **state)
{
	(void)state;
	struct rig g;
	rig_open(&g, KEY, 2);
	size_t size = STRIPE_SIZE + 9;
	uint8_t *d;
	int fd = object_file(size, &d);
	char why[4096];
	assert_int_equal(obj_put(&g.s, g.c, "s600", 600, fd, size, why, sizeof why, NULL, 0), 0);
	struct obj_check ck;
	assert_int_equal(obj_verify(&g.s, "s600", OBJ_VERIFY_EXISTS, NULL, NULL, &ck, why,
				    sizeof why), 0);
	assert_int_equal(ck.good, 6);
	assert_int_equal(ck.meta_current, NB);
	assert_int_equal(ck.bytes, 0);	/* nothing read */
	/* a piece gone (on a dir:// and on a redis backend) and a metadata copy */
	char key[128];
	for (int sh = 0; sh < 6; sh++) {
		int bi = home_of(&g, "s600", sh);
		if (bi == 1 || bi == 4) {
			snprintf(key, sizeof key, "%s/o/s600/%d.0", g.s.volhex, sh);
			assert_int_equal(backend_del(g.b[bi], key), 0);
		}
	}
	snprintf(key, sizeof key, "%s/m/s600", g.s.volhex);
	assert_int_equal(backend_del(g.b[3], key), 0);
	assert_int_equal(obj_verify(&g.s, "s600", OBJ_VERIFY_EXISTS, NULL, NULL, &ck, why,
				    sizeof why), 0);
	assert_int_equal(ck.good, 4);
	assert_int_equal(ck.meta_current, NB - 1);
	print_message("# %s\n", ck.damage);
	assert_non_null(strstr(ck.damage, "piece 0 missing"));
	/* the metadata copy comes back; the shards need the repair */
	assert_int_equal(obj_sync_meta(&g.s, "s600", why, sizeof why), 0);
	assert_int_equal(obj_verify(&g.s, "s600", OBJ_VERIFY_EXISTS, NULL, NULL, &ck, why,
				    sizeof why), 0);
	assert_int_equal(ck.meta_current, NB);
	assert_int_equal(obj_repair(&g.s, g.c, "s600", 600, dir, why, sizeof why), 0);
	assert_int_equal(obj_verify(&g.s, "s600", OBJ_VERIFY_READ, NULL, NULL, &ck, why,
				    sizeof why), 0);
	assert_int_equal(ck.good, 6);
	assert_int_equal(get_and_check(&g, "s600", 600, d, size, why, sizeof why), 0);
	free(d);
	close(fd);
	rig_close(&g);
}

/* Files (keys) of object name under the test's dir:// backends: its shard
 * pieces of any generation and its metadata. */
static char count_name[64];
static int counted;

static int count_cb(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)f;
	char o[80], m[80];
	snprintf(o, sizeof o, "/o/%s/", count_name);
	snprintf(m, sizeof m, "/m/%s", count_name);
	size_t pl = strlen(path), ml = strlen(m);
	if (flag == FTW_F && (strstr(path, o) || (pl >= ml && !strcmp(path + pl - ml, m))))
		counted++;
	return 0;
}

static int keys_of(const char *name)
{
	snprintf(count_name, sizeof count_name, "%s", name);
	counted = 0;
	assert_int_equal(nftw(dir, count_cb, 16, FTW_PHYS), 0);
	return counted;
}

static void test_delete(void **state)
{
	(void)state;
	struct rig g;
	rig_open_n(&g, KEY, 7, 7);	/* seven dir:// backends for k+m = 6 */
	struct health *h;
	assert_int_equal(health_new(7, &h), 0);
	g.s.health = h;
	size_t size = (12u << 20) + 5;	/* shards of two pieces */
	uint8_t *d;
	int fd = object_file(size, &d);
	char why[4096];
	assert_int_equal(obj_put(&g.s, g.c, "s700", 700, fd, size, why, sizeof why, NULL, 0), 0);
	assert_int_equal(obj_put(&g.s, g.c, "s701", 701, fd, size, why, sizeof why, NULL, 0), 0);
	assert_int_equal(keys_of("s700"), 6 * 2 + 7);	/* six shards of two pieces, seven
						 * metadata copies */
	assert_int_equal(obj_delete(&g.s, "s700", why, sizeof why), 0);
	assert_int_equal(keys_of("s700"), 0);
	assert_int_equal(obj_delete(&g.s, "s700", why, sizeof why), 0);	/* already gone */
	assert_int_equal(get_and_check(&g, "s700", 700, d, size, why, sizeof why), -ENOENT);

	/* generation 1: a repair while backend x (holding a shard) was down
	 * left that generation 0 shard behind there */
	assert_int_equal(obj_put(&g.s, g.c, "s702", 702, fd, size, why, sizeof why, NULL, 0), 0);
	int x = home_of(&g, "s702", 0);
	assert_true(x >= 0);
	health_fail(h, (size_t)x, "marked down by the test");
	assert_int_equal(obj_repair(&g.s, g.c, "s702", 702, dir, why, sizeof why), 0);
	assert_int_equal(home_of(&g, "s702", 0), x);	/* the old shard, still there */
	assert_int_equal(health_probe(h, (size_t)x, true, NULL), 1);
	struct obj_check ck;
	assert_int_equal(obj_verify(&g.s, "s702", OBJ_VERIFY_EXISTS, NULL, NULL, &ck, why,
				    sizeof why), 0);
	assert_int_equal(ck.gen, 1);
	/* a backend holding a generation 1 shard is unusable: the delete fails,
	 * says where, and keeps the metadata (the placement) for the retry */
	char key[128];
	int y = -1;
	snprintf(key, sizeof key, "%s/o/s702/0.0.g1", g.s.volhex);
	for (int b = 0; b < 7 && y < 0; b++)
		if (b != x && backend_exists(g.b[b], key) == 1)
			y = b;
	assert_true(y >= 0);
	health_fail(h, (size_t)y, "marked down by the test");
	assert_int_equal(obj_delete(&g.s, "s702", why, sizeof why), -EIO);
	print_message("# %s\n", why);
	assert_non_null(strstr(why, "object s702"));
	assert_non_null(strstr(why, backend_name(g.b[y])));
	assert_int_equal(backend_exists(g.b[y], key), 1);
	snprintf(key, sizeof key, "%s/m/s702", g.s.volhex);
	for (int b = 0; b < 7; b++)
		assert_int_equal(backend_exists(g.b[b], key), 1);
	/* back: the retry finishes, old generation on x included */
	assert_int_equal(health_probe(h, (size_t)y, true, NULL), 1);
	assert_int_equal(obj_delete(&g.s, "s702", why, sizeof why), 0);
	assert_int_equal(keys_of("s702"), 0);
	/* the other object is untouched */
	assert_int_equal(get_and_check(&g, "s701", 701, d, size, why, sizeof why), 0);
	assert_string_equal(damage, "");
	health_free(h);
	free(d);
	close(fd);
	rig_close(&g);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip_and_pieces),
		cmocka_unit_test(test_two_down_two_corrupt_three_gone),
		cmocka_unit_test(test_wrong_key_refused),
		cmocka_unit_test(test_placement_skips_down),
		cmocka_unit_test(test_check_and_meta_sync),
		cmocka_unit_test(test_delete),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
