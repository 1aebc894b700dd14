/* tests/unit/test_keys.c - master key file rules, passphrase derivation and
 * subkeys. */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keys.h"

static char *write_file(const char *dir, const char *name, const void *data, size_t n,
			mode_t mode)
{
	char *p = tu_path(dir, name);
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, n), (ssize_t)n);
	close(fd);
	chmod(p, mode);
	return p;
}

static void test_key_file_rules(void **state)
{
	(void)state;
	char *dir = tu_mkdtemp();
	uint8_t raw[33];
	for (int i = 0; i < 33; i++)
		raw[i] = (uint8_t)i;
	struct master_key k;
	char err[512];

	char *good = write_file(dir, "key", raw, 32, 0600);
	assert_int_equal(key_load_file(good, &k, err, sizeof err), 0);
	assert_memory_equal(k.key, raw, 32);
	key_free(&k);
	assert_null(k.key);

	char *open_mode = write_file(dir, "key-644", raw, 32, 0644);
	assert_int_equal(key_load_file(open_mode, &k, err, sizeof err), -EPERM);
	assert_non_null(strstr(err, "is accessible by group or others (mode 0644)"));
	assert_non_null(strstr(err, "chmod 600"));

	char *shortk = write_file(dir, "key-short", raw, 31, 0600);
	assert_int_equal(key_load_file(shortk, &k, err, sizeof err), -EINVAL);
	assert_non_null(strstr(err, "must hold exactly 32 bytes"));
	char *longk = write_file(dir, "key-long", raw, 33, 0600);
	assert_int_equal(key_load_file(longk, &k, err, sizeof err), -EINVAL);

	assert_int_equal(key_load_file("/nonexistent/key", &k, err, sizeof err), -ENOENT);
	assert_non_null(strstr(err, "key file /nonexistent/key"));
	assert_int_equal(key_load_file(dir, &k, err, sizeof err) < 0, 1);	/* a directory */

	free(good);
	free(open_mode);
	free(shortk);
	free(longk);
	tu_rmrf(dir);
	free(dir);
}

static void test_passphrase_and_subkeys(void **state)
{
	(void)state;
	char *dir = tu_mkdtemp();
	char err[512];
	struct master_key a, b, c;
	uint8_t salt1[KEY_SALT_SIZE] = { 1 }, salt2[KEY_SALT_SIZE] = { 2 };
	char *weak = write_file(dir, "weak", "short\n", 6, 0600);
	assert_int_equal(key_from_passphrase(weak, salt1, &a, err, sizeof err), -EINVAL);
	assert_non_null(strstr(err, "at least 12 characters"));

	const char *pass = "correct horse battery staple\nignored second line\n";
	char *pf = write_file(dir, "pass", pass, strlen(pass), 0600);
	assert_int_equal(key_from_passphrase(pf, salt1, &a, err, sizeof err), 0);
	assert_int_equal(key_from_passphrase(pf, salt1, &b, err, sizeof err), 0);
	assert_int_equal(key_from_passphrase(pf, salt2, &c, err, sizeof err), 0);
	assert_memory_equal(a.key, b.key, KEY_SIZE);	/* deterministic */
	assert_memory_not_equal(a.key, c.key, KEY_SIZE);	/* the salt matters */

	uint8_t s1[KEY_SIZE], s2[KEY_SIZE], s1b[KEY_SIZE];
	key_subkey(&a, SUBKEY_SEGMENT, s1);
	key_subkey(&a, SUBKEY_METADATA, s2);
	key_subkey(&b, SUBKEY_SEGMENT, s1b);
	assert_memory_not_equal(s1, s2, KEY_SIZE);
	assert_memory_equal(s1, s1b, KEY_SIZE);
	assert_memory_not_equal(s1, a.key, KEY_SIZE);
	key_free(&a);
	key_free(&b);
	key_free(&c);
	free(weak);
	free(pf);
	tu_rmrf(dir);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_key_file_rules),
		cmocka_unit_test(test_passphrase_and_subkeys),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
