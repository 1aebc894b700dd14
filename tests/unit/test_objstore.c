/* tests/unit/test_objstore.c - objects on k=4, m=2 over six real
 * redis-servers (and a dir:// mix): byte-exact round trips; any 2 backends
 * killed or holding corrupt shards and retrieval still works; 3 gone and the
 * error names the object and the failing backends; a wrong key is refused.
 * Placement over eight: down backends are skipped, too few usable waits
 * (-EAGAIN) unless min_shards allows a degraded store, which a repair makes
 * whole; the cheap existence check and the metadata copy. One backend that
 * trickles does not stall reads and is marked slow; shards swapped between
 * keys are repaired. */
#include "testutil.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
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
	/* a read takes the first k good shards that arrive (hedged reads,
	 * objstore_get.c): a corrupt shard that arrives after them is left
	 * behind unchecked, so the read reports the corrupt shards it met -
	 * never a good one - and a scrub's verify finds both, whatever the
	 * timing */
	for (int i = 0; i < 6; i++) {
		char want[32];
		snprintf(want, sizeof want, "shard %d on ", i);
		if (i != 1 && i != 2)
			assert_null(strstr(damage, want));
	}
	assert_true(!damage[0] || strstr(damage, "checksum mismatch in stripe"));
	struct obj_check ck;
	assert_int_equal(obj_verify(&g.s, "s100", OBJ_VERIFY_READ, NULL, NULL, &ck, why,
				    sizeof why), 0);
	print_message("# verify: %s\n", ck.damage);
	assert_int_equal(ck.bad_mask, (1u << 1) | (1u << 2));
	assert_int_equal(ck.good, 4);
	assert_non_null(strstr(ck.damage, "shard 1 on "));
	assert_non_null(strstr(ck.damage, "shard 2 on "));

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

/* Exchange the values of piece 0 of shards a and b of name (generation 0),
 * each on its own backend. */
static void swap_shards(struct rig *g, const char *name, int a, int b)
{
	char ka[128], kb[128];
	snprintf(ka, sizeof ka, "%s/o/%s/%d.0", g->s.volhex, name, a);
	snprintf(kb, sizeof kb, "%s/o/%s/%d.0", g->s.volhex, name, b);
	int ha = home_of(g, name, a), hb = home_of(g, name, b);
	assert_true(ha >= 0 && hb >= 0 && ha != hb);
	uint8_t *va, *vb;
	size_t na, nb;
	assert_int_equal(backend_get(g->b[ha], ka, &va, &na), 0);
	assert_int_equal(backend_get(g->b[hb], kb, &vb, &nb), 0);
	assert_int_equal(backend_put(g->b[ha], ka, vb, nb), 0);
	assert_int_equal(backend_put(g->b[hb], kb, va, na), 0);
	free(va);
	free(vb);
}

/* Shards swapped between keys (and so between backends): 0 with 1, 2 with
 * 3. A read still decodes them (each fragment carries its index) and sees
 * no damage, but only 2 of 6 match the metadata's checksums: fewer than k,
 * which the scrub took for unreadable. The repair it now tries (a full
 * decode, stored whole as the next generation) makes all six good. */
static void test_swapped_shards_repaired(void **state)
{
	(void)state;
	struct rig g;
	rig_open(&g, KEY, 2);	/* two dir:// and four redis:// */
	size_t size = 3 * STRIPE_SIZE + 7;
	uint8_t *d;
	int fd = object_file(size, &d);
	char why[4096];
	assert_int_equal(obj_put(&g.s, g.c, "s900", 900, fd, size, why, sizeof why, NULL, 0), 0);
	swap_shards(&g, "s900", 0, 1);
	swap_shards(&g, "s900", 2, 3);
	assert_int_equal(get_and_check(&g, "s900", 900, d, size, why, sizeof why), 0);
	assert_string_equal(damage, "");
	struct obj_check ck;
	assert_int_equal(obj_verify(&g.s, "s900", OBJ_VERIFY_READ, NULL, NULL, &ck, why,
				    sizeof why), 0);
	print_message("# %s\n", ck.damage);
	assert_int_equal(ck.good, 2);
	assert_int_equal(ck.bad_mask, 0xfu);
	assert_non_null(strstr(ck.damage, "checksum mismatch"));
	assert_int_equal(obj_repair(&g.s, g.c, "s900", 900, dir, why, sizeof why), 0);
	assert_int_equal(obj_verify(&g.s, "s900", OBJ_VERIFY_READ, NULL, NULL, &ck, why,
				    sizeof why), 0);
	assert_int_equal(ck.good, 6);
	assert_int_equal(ck.gen, 1);
	assert_int_equal(get_and_check(&g, "s900", 900, d, size, why, sizeof why), 0);
	assert_string_equal(damage, "");
	free(d);
	close(fd);
	rig_close(&g);
}

/* --- a slow peer ---------------------------------------------------------------
 *
 * A TCP proxy in front of a redis-server that relays the server's replies at
 * `rate` bytes a second (0: as they come): a backend that still answers,
 * only slowly (a congested link, a failing disk). */

#define RELAYS 64

struct trickle;

struct relay {
	struct trickle *t;
	int c, u;		/* the client's socket, the server's */
	pthread_t th;
};

struct trickle {
	int lfd, port;		/* where it listens */
	int upstream;		/* the redis-server's port */
	_Atomic unsigned rate;
	_Atomic size_t slow_bytes;	/* relayed while rate was set */
	pthread_t acceptor;
	pthread_mutex_t mu;
	struct relay r[RELAYS];
	int n;
};

static void *relay_main(void *arg)
{
	struct relay *r = arg;
	struct trickle *t = r->t;
	static _Thread_local char buf[65536];
	struct pollfd p[2] = { { .fd = r->c, .events = POLLIN }, { .fd = r->u, .events = POLLIN } };
	for (;;) {
		if (poll(p, 2, -1) < 0)
			break;
		if (p[0].revents) {
			ssize_t n = read(r->c, buf, sizeof buf);
			if (n <= 0 || write(r->u, buf, (size_t)n) != n)
				break;
		}
		if (p[1].revents) {
			unsigned rate = t->rate;
			size_t chunk = rate ? (rate / 10 ? rate / 10 : 1) : sizeof buf;
			ssize_t n = read(r->u, buf, chunk);
			if (n <= 0 || write(r->c, buf, (size_t)n) != n)
				break;
			if (rate) {	/* a tenth of the rate, ten times a second */
				t->slow_bytes += (size_t)n;
				usleep(100 * 1000);
			}
		}
	}
	shutdown(r->c, SHUT_RDWR);
	shutdown(r->u, SHUT_RDWR);
	return NULL;
}

static void *acceptor_main(void *arg)
{
	struct trickle *t = arg;
	for (;;) {
		int c = accept(t->lfd, NULL, NULL);
		if (c < 0)
			return NULL;
		int u = socket(AF_INET, SOCK_STREAM, 0);
		struct sockaddr_in a = { .sin_family = AF_INET,
					 .sin_port = htons((uint16_t)t->upstream),
					 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
		pthread_mutex_lock(&t->mu);
		if (t->n == RELAYS || connect(u, (struct sockaddr *)&a, sizeof a) < 0) {
			close(c);
			close(u);
		} else {
			struct relay *r = &t->r[t->n++];
			*r = (struct relay){ .t = t, .c = c, .u = u };
			assert_int_equal(pthread_create(&r->th, NULL, relay_main, r), 0);
		}
		pthread_mutex_unlock(&t->mu);
	}
}

static void trickle_start(struct trickle *t, int upstream)
{
	memset(t, 0, sizeof *t);
	pthread_mutex_init(&t->mu, NULL);
	t->upstream = upstream;
	t->lfd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	assert_int_equal(bind(t->lfd, (struct sockaddr *)&a, sizeof a), 0);
	assert_int_equal(listen(t->lfd, 16), 0);
	socklen_t l = sizeof a;
	getsockname(t->lfd, (struct sockaddr *)&a, &l);
	t->port = ntohs(a.sin_port);
	assert_int_equal(pthread_create(&t->acceptor, NULL, acceptor_main, t), 0);
}

static void trickle_stop(struct trickle *t)
{
	shutdown(t->lfd, SHUT_RDWR);	/* accept returns */
	pthread_join(t->acceptor, NULL);
	close(t->lfd);
	for (int i = 0; i < t->n; i++) {
		shutdown(t->r[i].c, SHUT_RDWR);
		shutdown(t->r[i].u, SHUT_RDWR);
		pthread_join(t->r[i].th, NULL);
		close(t->r[i].c);
		close(t->r[i].u);
	}
	pthread_mutex_destroy(&t->mu);
}

/* One backend of six trickling at 2 KB/s (through the proxy, its handle
 * with a 60 s timeout: nothing but the read's own hedge ends a wait for
 * it). A read goes on with the other five: it does not wait for that
 * shard (the old rounds did, until the timeout: 120 KB trickled), the
 * health table calls the backend slow, not down, and its shard is not
 * damage. A shard that is needed (two others down) is waited for. At full
 * speed again, reads clear the mark. */
static void test_a_slow_backend_does_not_stall_reads(void **state)
{
	(void)state;
	struct rig g;
	rig_open(&g, KEY, 0);
	struct health *h;
	assert_int_equal(health_new(NB, &h), 0);
	g.s.health = h;
	const int tb = 2;	/* the trickler */
	struct trickle t;
	trickle_start(&t, ports[tb]);
	backend_close(g.b[tb]);
	char url[64];
	snprintf(url, sizeof url, "redis://127.0.0.1:%d/0", t.port);
	struct backend_url u;
	const char *uwhy;
	assert_int_equal(backend_url_parse(url, &u, &uwhy), 0);
	assert_int_equal(backend_open(&u, 60000, &g.b[tb]), 0);
	backend_url_free(&u);
	/* stored at full speed: a big object (shards of two pieces) and a
	 * small one (its shard trickles through in a few seconds) */
	size_t big = (12u << 20) + 5, small = 20000;
	uint8_t *d, *ds;
	int fd = object_file(big, &d);
	char why[4096];
	assert_int_equal(obj_put(&g.s, g.c, "s800", 800, fd, big, why, sizeof why, NULL, 0), 0);
	close(fd);
	fd = object_file(small, &ds);
	assert_int_equal(obj_put(&g.s, g.c, "s801", 801, fd, small, why, sizeof why, NULL, 0),
			 0);
	close(fd);
	assert_int_equal(shard_on(&g, "s801", tb) >= 0, 1);

	t.rate = 2000;
	assert_int_equal(get_and_check(&g, "s800", 800, d, big, why, sizeof why), 0);
	assert_string_equal(damage, "");	/* slow is not damage */
	assert_true(health_slow(h, tb));
	assert_true(health_usable(h, tb));	/* and not down */
	struct health_verdict v;
	health_get(h, tb, &v);
	print_message("# slow: %s\n", v.slow_why);
	assert_non_null(strstr(v.slow_why, "a read of s800 went on without it after"));
	/* again: the metadata is not even asked of it */
	assert_int_equal(get_and_check(&g, "s800", 800, d, big, why, sizeof why), 0);
	assert_string_equal(damage, "");
	assert_true(health_slow(h, tb));
	size_t trickled = t.slow_bytes;
	print_message("# %zu bytes trickled\n", trickled);
	assert_true(trickled < (24u << 10));	/* the old rounds: 120 KB, a minute */

	/* two other backends down: its shard is one of the last four, and the
	 * read waits for it rather than fail */
	int down1 = (tb + 1) % NB, down2 = (tb + 2) % NB;
	health_fail(h, (size_t)down1, "marked down by the test");
	health_fail(h, (size_t)down2, "marked down by the test");
	assert_int_equal(get_and_check(&g, "s801", 801, ds, small, why, sizeof why), 0);
	print_message("# damage: %s\n", damage);
	assert_non_null(strstr(damage, "its backend is down"));
	assert_null(strstr(damage, url));
	assert_true(t.slow_bytes > trickled);	/* it did wait */
	assert_true(health_slow(h, tb));	/* it took long */

	/* full speed again: a read in which it keeps up clears the mark (a
	 * read that is done before its pieces are tells nothing; at the latest
	 * HEALTH_SLOW_RECHECK_S after its last lag a read waits for it) */
	assert_int_equal(health_probe(h, (size_t)down1, true, NULL), 1);
	assert_int_equal(health_probe(h, (size_t)down2, true, NULL), 1);
	t.rate = 0;
	int reads = 0;
	for (; health_slow(h, tb); reads++) {
		assert_true(reads < 1000);
		assert_int_equal(get_and_check(&g, "s800", 800, d, big, why, sizeof why), 0);
		assert_string_equal(damage, "");
	}
	print_message("# cleared after %d reads\n", reads);
	health_get(h, tb, &v);
	assert_false(v.slow);
	rig_close(&g);
	trickle_stop(&t);
	health_free(h);
	free(d);
	free(ds);
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
		cmocka_unit_test(test_a_slow_backend_does_not_stall_reads),
		cmocka_unit_test(test_swapped_shards_repaired),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
