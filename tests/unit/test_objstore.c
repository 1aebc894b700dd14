/* tests/unit/test_objstore.c - objects on k=4, m=2 over six real
 * redis-servers (and a dir:// mix): byte-exact round trips; any 2 backends
 * killed or holding corrupt shards and retrieval still works; 3 gone and the
 * error names the object and the failing backends; a wrong key is refused. */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "objstore.h"

#define NB 6

static pid_t pids[NB];
static int ports[NB];
static char *dir;

static int setup(void **state)
{
	(void)state;
	assert_true(sodium_init() >= 0);
	dir = tu_mkdtemp();
	tu_redis_start_n(NB, ports, pids);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	tu_redis_stop_n(NB, pids);
	tu_rmrf(dir);
	free(dir);
	return 0;
}

struct rig {
	struct objstore s;
	struct backend *b[NB];
	struct codec *c;
};

static void rig_open(struct rig *g, const uint8_t key[32], int ndir)
{
	memset(g, 0, sizeof *g);
	g->s.k = 4;
	g->s.m = 2;
	memset(g->s.volume_id, 0xab, 16);
	snprintf(g->s.volhex, sizeof g->s.volhex, "abababababababababababababababab");
	crypto_generichash(g->s.meta_key, 32, (const uint8_t *)"meta", 4, key, 32);
	for (int i = 0; i < NB; i++) {
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
	g->s.nbackends = NB;
	struct codec_params p = { .k = 4, .m = 2, .zstd_level = 1 };
	memcpy(p.volume_id, g->s.volume_id, 16);
	memcpy(p.key, key, 32);
	assert_int_equal(codec_new(&p, &g->c), 0);
}

static void rig_close(struct rig *g)
{
	for (int i = 0; i < NB; i++)
		backend_close(g->b[i]);
	codec_free(g->c);
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
		int r = obj_put(&g.s, g.c, name, i + 1, fd, sizes[i], why, sizeof why);
		if (r)
			print_message("# %s\n", why);
		assert_int_equal(r, 0);
		assert_int_equal(get_and_check(&g, name, i + 1, d, sizes[i], why, sizeof why), 0);
		free(d);
		close(fd);
	}
	/* the 40 MiB object's shards (about 5 MiB each) went in several pieces */
	char key[128];
	snprintf(key, sizeof key, "%s/o/s5/0.1", g.s.volhex);
	uint8_t *v;
	size_t n;
	assert_int_equal(backend_get(g.b[0], key, &v, &n), 0);
	free(v);
	/* backends only ever see ciphertext: no plaintext run in a shard */
	snprintf(key, sizeof key, "%s/o/s5/0.0", g.s.volhex);
	assert_int_equal(backend_get(g.b[0], key, &v, &n), 0);
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
	assert_int_equal(obj_put(&g.s, g.c, "s100", 100, fd, size, why, sizeof why), 0);

	/* corrupt shards on two backends (redis SET of a changed piece) */
	for (int i = 1; i <= 2; i++) {
		char key[128];
		snprintf(key, sizeof key, "%s/o/s100/%d.0", g.s.volhex, i);
		uint8_t *v;
		size_t n;
		assert_int_equal(backend_get(g.b[i], key, &v, &n), 0);
		v[n / 2] ^= 0x10;
		assert_int_equal(backend_put(g.b[i], key, v, n), 0);
		free(v);
	}
	assert_int_equal(get_and_check(&g, "s100", 100, d, size, why, sizeof why), 0);
	print_message("# damage: %s\n", damage);
	assert_non_null(strstr(damage, "shard 1 on "));
	assert_non_null(strstr(damage, "shard 2 on "));
	assert_non_null(strstr(damage, "checksum mismatch in stripe"));
	assert_null(strstr(damage, "shard 0 on "));

	/* a clean object, then two servers killed: still readable */
	assert_int_equal(obj_put(&g.s, g.c, "s101", 101, fd, size, why, sizeof why), 0);
	assert_int_equal(get_and_check(&g, "s101", 101, d, size, why, sizeof why), 0);
	assert_string_equal(damage, "");
	tu_redis_stop(pids[0]);
	tu_redis_stop(pids[5]);
	pids[0] = pids[5] = -1;
	assert_int_equal(get_and_check(&g, "s101", 101, d, size, why, sizeof why), 0);
	assert_non_null(strstr(damage, "shard 0 on "));
	assert_non_null(strstr(damage, "shard 5 on "));

	/* a third one gone: a clear error naming the object and each failure */
	tu_redis_stop(pids[3]);
	pids[3] = -1;
	int r = get_and_check(&g, "s101", 101, d, size, why, sizeof why);
	assert_int_equal(r, -EIO);
	print_message("# %s\n", why);
	assert_non_null(strstr(why, "object 101 stripe 0: 3 usable shards, 4 needed"));
	char want[64];
	snprintf(want, sizeof want, "shard 3 on redis://127.0.0.1:%d/0: ", ports[3]);
	assert_non_null(strstr(why, want));
	/* with half the backends gone, a new store cannot get its majority */
	r = obj_put(&g.s, g.c, "s102", 102, fd, size, why, sizeof why);
	assert_int_equal(r < 0, 1);
	for (int i = 0; i < NB; i++)
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
	assert_int_equal(obj_put(&g.s, g.c, "c7", 7, fd, 100000, why, sizeof why), 0);
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

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip_and_pieces),
		cmocka_unit_test(test_two_down_two_corrupt_three_gone),
		cmocka_unit_test(test_wrong_key_refused),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
