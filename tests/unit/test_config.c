/* tests/unit/test_config.c - the configuration file: the shipped example
 * loads, and every rule gives "FILE:LINE: message" naming the problem. */
#include "testutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../common/config.h"
#include "../../common/url.h"

static const char *GOOD =
	"volume: appdata\n"
	"key_file: /etc/qsfs/key\n"
	"cache:\n"
	"  dir: /var/lib/qsfs/cache\n"
	"  segment_size: 16MiB\n"
	"stor:\n"
	"  socket: /run/qsfs/stor.sock\n"
	"  state_dir: /var/lib/qsfs/stor\n"
	"  data_shards: 2\n"
	"  parity_shards: 1\n"
	"  backends:\n"
	"    - redis://127.0.0.1:6379/0\n"
	"    - redis://:secret@127.0.0.1:6380/myns\n"
	"    - dir:///mnt/disk3/qsfs\n";

static char *dir;

static int setup(void **state)
{
	(void)state;
	dir = tu_mkdtemp();
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	tu_rmrf(dir);
	free(dir);
	return 0;
}

/* Load text; return the result and the message in err. */
static int load(const char *text, char *err, size_t n, struct qsfs_config *c)
{
	char *p = tu_path(dir, "qsfs.yaml");
	FILE *f = fopen(p, "w");
	fputs(text, f);
	fclose(f);
	int r = config_load(p, c, err, n);
	free(p);
	return r;
}

/* Replace the first occurrence of `from` in GOOD with `to`. */
static char *edit(const char *from, const char *to)
{
	const char *at = strstr(GOOD, from);
	assert_non_null(at);
	size_t n = strlen(GOOD) - strlen(from) + strlen(to) + 1;
	char *s = malloc(n);
	snprintf(s, n, "%.*s%s%s", (int)(at - GOOD), GOOD, to, at + strlen(from));
	return s;
}

/* The edited config fails with a message containing want (after "FILE:"). */
static void expect_error(const char *from, const char *to, const char *want)
{
	char *text = edit(from, to);
	char err[512];
	struct qsfs_config c;
	assert_int_equal(load(text, err, sizeof err, &c), -EINVAL);
	if (!strstr(err, want)) {
		print_message("# got:  %s\n# want: %s\n", err, want);
		fail();
	}
	assert_non_null(strstr(err, "qsfs.yaml:"));
	free(text);
}

static void test_good_and_defaults(void **state)
{
	(void)state;
	char err[512];
	struct qsfs_config c;
	assert_int_equal(load(GOOD, err, sizeof err, &c), 0);
	assert_string_equal(c.volume, "appdata");
	assert_int_equal(c.cache.segment_size, 16 << 20);
	assert_int_equal(c.cache.max_size, 0);
	assert_int_equal(c.cache.disk_reserve, 32 << 20);
	assert_int_equal(c.cache.hook_timeout, 120);
	assert_int_equal(c.stor.compression, 1);
	assert_int_equal(c.stor.upload_nice, 10);
	assert_int_equal(c.stor.nbackends, 3);
	assert_int_equal(c.stor.backends[1].kind, BACKEND_REDIS);
	assert_string_equal(c.stor.backends[1].password, "secret");
	assert_string_equal(c.stor.backends[1].ns, "myns");
	assert_string_equal(c.stor.backends[1].display, "redis://:***@127.0.0.1:6380/myns");
	assert_int_equal(c.stor.backends[2].kind, BACKEND_DIR);
	assert_string_equal(c.stor.backends[2].path, "/mnt/disk3/qsfs");
	config_free(&c);
}

static void test_shipped_example_loads(void **state)
{
	(void)state;
	const char *src = getenv("QSFS_SOURCE_DIR");
	char path[4096];
	snprintf(path, sizeof path, "%s/config/qsfs.yaml.example", src ? src : "..");
	char err[512];
	struct qsfs_config c;
	int r = config_load(path, &c, err, sizeof err);
	if (r)
		print_message("# %s\n", err);
	assert_int_equal(r, 0);
	assert_int_equal(c.stor.nbackends, c.stor.data_shards + c.stor.parity_shards);
	config_free(&c);
}

static void test_each_rule(void **state)
{
	(void)state;
	expect_error("  segment_size: 16MiB\n", "  segment_size: 16MiB\n  colour: blue\n",
		     "qsfs.yaml:6: unknown key 'cache.colour' (known here: dir, segment_size");
	expect_error("volume: appdata\n", "volume: appdata\nvolume: other\n",
		     "qsfs.yaml:2: 'volume' is given twice");
	expect_error("volume: appdata\n", "", "qsfs.yaml:1: missing required key 'volume'");
	expect_error("  dir: /var/lib/qsfs/cache\n", "",
		     "qsfs.yaml:3: missing required key 'cache.dir'");
	expect_error("  dir: /var/lib/qsfs/cache\n", "  dir: var/lib\n",
		     "qsfs.yaml:4: cache.dir: 'var/lib' is not an absolute path");
	expect_error("16MiB", "lots", "qsfs.yaml:5: cache.segment_size: 'lots' is not a size");
	expect_error("16MiB", "100", "qsfs.yaml:5: cache.segment_size: 100 is out of range "
		     "(4.0 KiB to 4.0 GiB)");
	expect_error("  segment_size: 16MiB\n", "  segment_size: 16MiB\n  disk_reserve: 17GiB\n",
		     "qsfs.yaml:6: cache.disk_reserve: 17GiB is out of range (0 to 16.0 GiB)");
	expect_error("  segment_size: 16MiB\n", "  segment_size: 16MiB\n  disk_reserve: some\n",
		     "qsfs.yaml:6: cache.disk_reserve: 'some' is not a size");
	expect_error("  data_shards: 2\n", "  data_shards: four\n",
		     "qsfs.yaml:9: stor.data_shards: expected a whole number from 1 to 32, got 'four'");
	expect_error("  data_shards: 2\n", "  data_shards: 0\n",
		     "stor.data_shards: expected a whole number from 1 to 32, got '0'");
	expect_error("  data_shards: 2\n", "  data_shards: [1, 2]\n",
		     "qsfs.yaml:9: stor.data_shards: expected a single value, not a list");
	expect_error("  data_shards: 2\n", "  data_shards:\n",
		     "stor.data_shards: has no value");
	expect_error("  data_shards: 2\n", "  data_shards: 2\n  compression: lz4\n",
		     "qsfs.yaml:10: stor.compression: expected none, zstd or zstd:LEVEL");
	expect_error("  data_shards: 2\n", "  data_shards: 2\n  compression: zstd:99\n",
		     "stor.compression: expected none, zstd or zstd:LEVEL (1 to 19), got 'zstd:99'");
	expect_error("  data_shards: 2\n", "  data_shards: 2\n  upload_nice: 20\n",
		     "qsfs.yaml:10: stor.upload_nice: expected a whole number from 0 to 19, got '20'");
	expect_error("cache:\n", "fs:\n  allow_other: maybe\ncache:\n",
		     "qsfs.yaml:4: fs.allow_other: expected true or false, got 'maybe'");
	expect_error("key_file: /etc/qsfs/key\n", "",
		     "give exactly one of key_file (32 random bytes) and passphrase_file");
	expect_error("key_file: /etc/qsfs/key\n",
		     "key_file: /etc/qsfs/key\npassphrase_file: /etc/qsfs/pass\n",
		     "give exactly one of key_file");
	expect_error("    - dir:///mnt/disk3/qsfs\n", "",
		     "stor.backends: 2 configured, but data_shards + parity_shards = 2 + 1 shards "
		     "each need a distinct backend: configure at least 3");
	expect_error("dir:///mnt/disk3/qsfs", "redis://127.0.0.1:6379/0",
		     "qsfs.yaml:14: stor.backends: backend redis://127.0.0.1:6379/0 is listed twice");
	/* the same 0-db server and namespace through both dialects */
	expect_error("dir:///mnt/disk3/qsfs", "zdb://127.0.0.1:6380/myns",
		     "qsfs.yaml:14: stor.backends: backend zdb://127.0.0.1:6380/myns is listed twice");
	expect_error("dir:///mnt/disk3/qsfs", "zdb://127.0.0.1/",
		     "qsfs.yaml:14: stor.backends: bad backend URL: zdb:// needs a namespace");
	expect_error("dir:///mnt/disk3/qsfs", "ftp://host/x",
		     "qsfs.yaml:14: stor.backends: bad backend URL: unknown scheme");
	expect_error("dir:///mnt/disk3/qsfs", "redis://host:99999",
		     "stor.backends: bad backend URL: port must be a number from 1 to 65535");
	expect_error("dir:///mnt/disk3/qsfs", "dir://relative",
		     "stor.backends: bad backend URL: dir:// needs an absolute path");
	expect_error("  backends:\n", "  backends: redis://x:1\n  other:\n",
		     "qsfs.yaml:11: stor.backends: expected a list of backend URLs");
	expect_error("cache:\n", "cache: /tmp\nold:\n",
		     "qsfs.yaml:3: cache: expected a mapping of 'key: value' lines");
	expect_error("  state_dir: /var/lib/qsfs/stor\n", "  state_dir: [unclosed\n",
		     "qsfs.yaml:");
}

static void test_syntax_empty_missing(void **state)
{
	(void)state;
	char err[512];
	struct qsfs_config c;
	assert_int_equal(load("volume: a\n  bad indent: x\n", err, sizeof err, &c), -EINVAL);
	assert_non_null(strstr(err, "qsfs.yaml:2: YAML syntax error"));
	assert_int_equal(load("", err, sizeof err, &c), -EINVAL);
	assert_non_null(strstr(err, "the configuration is empty"));
	assert_int_equal(load("- a\n- b\n", err, sizeof err, &c), -EINVAL);
	assert_non_null(strstr(err, "qsfs.yaml:1: the file: expected a mapping"));
	assert_int_equal(config_load("/nonexistent/qsfs.yaml", &c, err, sizeof err), -ENOENT);
	assert_string_equal(err, "/nonexistent/qsfs.yaml: cannot read: No such file or directory "
			    "(give the configuration with -c CONFIG or the QSFS_CONFIG environment "
			    "variable)");
}

static void test_backend_urls(void **state)
{
	(void)state;
	struct backend_url u;
	const char *why;
	assert_int_equal(backend_url_parse("redis://localhost", &u, &why), 0);
	assert_string_equal(u.host, "localhost");
	assert_int_equal(u.port, 6379);
	assert_null(u.ns);
	assert_null(u.password);
	backend_url_free(&u);
	assert_int_equal(backend_url_parse("redis://bob:p@ss@[::1]:9900/7", &u, &why), 0);
	assert_string_equal(u.user, "bob");
	assert_string_equal(u.password, "p@ss");
	assert_string_equal(u.host, "::1");
	assert_int_equal(u.port, 9900);
	assert_string_equal(u.ns, "7");
	assert_string_equal(u.display, "redis://bob:***@[::1]:9900/7");
	assert_null(strstr(u.display, "p@ss"));
	backend_url_free(&u);
	/* 0-db: the namespace password, default port 9900 */
	assert_int_equal(backend_url_parse("zdb://:ns%pw@zdb1.example:9901/vol1", &u, &why), 0);
	assert_int_equal(u.kind, BACKEND_ZDB);
	assert_null(u.user);
	assert_string_equal(u.password, "ns%pw");
	assert_string_equal(u.host, "zdb1.example");
	assert_int_equal(u.port, 9901);
	assert_string_equal(u.ns, "vol1");
	assert_string_equal(u.display, "zdb://:***@zdb1.example:9901/vol1");
	backend_url_free(&u);
	assert_int_equal(backend_url_parse("zdb://[::1]/vol1", &u, &why), 0);
	assert_int_equal(u.port, 9900);
	assert_null(u.password);
	assert_string_equal(u.display, "zdb://[::1]:9900/vol1");
	backend_url_free(&u);
	/* redis:// is still redis: 6379, any path kept as it is */
	assert_int_equal(backend_url_parse("redis://:pw@h/myns", &u, &why), 0);
	assert_int_equal(u.kind, BACKEND_REDIS);
	assert_int_equal(u.port, 6379);
	assert_string_equal(u.ns, "myns");
	assert_string_equal(u.display, "redis://:***@h:6379/myns");
	backend_url_free(&u);
	assert_int_equal(backend_url_parse("dir:///a/b//", &u, &why), 0);
	assert_string_equal(u.path, "/a/b");
	backend_url_free(&u);
	const char *bad[] = { "redis://", "redis://:6379", "redis://h:0", "redis://h:12x",
			      "redis://[::1", "redis://h/a/b", "redis://user@h", "dir:///",
			      "dir://", "http://h", "", "zdb://h", "zdb://h/", "zdb://u:p@h/ns",
			      "zdb://h/a/b", "zdb://h/a b", "zdb://h/..", "zdb://h:0/ns", "zdb://" };
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		if (backend_url_parse(bad[i], &u, &why) != -EINVAL) {
			print_message("# accepted: %s\n", bad[i]);
			fail();
		}
		assert_non_null(why);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good_and_defaults),
		cmocka_unit_test(test_shipped_example_loads),
		cmocka_unit_test(test_each_rule),
		cmocka_unit_test(test_syntax_empty_missing),
		cmocka_unit_test(test_backend_urls),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
