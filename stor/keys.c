/* stor/keys.c - see keys.h */
#include "keys.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define KDF_CONTEXT "qsfs-v01"	/* crypto_kdf_CONTEXTBYTES = 8 */

/* Open path and check it is a regular file no one else can read or write. */
static int open_private(const char *path, const char *what, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		int e = errno;
		snprintf(err, errlen, "%s %s: %s", what, path, strerror(e));
		return -e;
	}
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s %s: not a regular file", what, path);
		close(fd);
		return -EINVAL;
	}
	if (st.st_mode & 077) {
		snprintf(err, errlen, "%s %s is accessible by group or others (mode %04o); "
			 "run: chmod 600 %s", what, path, (unsigned)(st.st_mode & 07777), path);
		close(fd);
		return -EPERM;
	}
	return fd;
}

static int init_sodium(char *err, size_t errlen)
{
	if (sodium_init() < 0) {
		snprintf(err, errlen, "libsodium could not be initialised");
		return -EIO;
	}
	return 0;
}

int key_load_file(const char *path, struct master_key *k, char *err, size_t errlen)
{
	k->key = NULL;
	int r = init_sodium(err, errlen);
	if (r)
		return r;
	int fd = open_private(path, "key file", err, errlen);
	if (fd < 0)
		return fd;
	k->key = sodium_malloc(KEY_SIZE);
	if (!k->key) {
		close(fd);
		return -ENOMEM;
	}
	uint8_t extra;
	ssize_t n = read(fd, k->key, KEY_SIZE);
	ssize_t m = n == KEY_SIZE ? read(fd, &extra, 1) : 0;
	close(fd);
	if (n != KEY_SIZE || m != 0) {
		snprintf(err, errlen, "key file %s must hold exactly %u bytes (make one with: "
			 "head -c 32 /dev/urandom > %s)", path, KEY_SIZE, path);
		key_free(k);
		return -EINVAL;
	}
	return 0;
}

int key_from_passphrase(const char *path, const uint8_t salt[KEY_SALT_SIZE],
			struct master_key *k, char *err, size_t errlen)
{
	k->key = NULL;
	int r = init_sodium(err, errlen);
	if (r)
		return r;
	int fd = open_private(path, "passphrase file", err, errlen);
	if (fd < 0)
		return fd;
	char *pass = sodium_malloc(1024);
	if (!pass) {
		close(fd);
		return -ENOMEM;
	}
	ssize_t n = read(fd, pass, 1023);
	close(fd);
	if (n < 0)
		n = 0;
	pass[n] = 0;
	pass[strcspn(pass, "\r\n")] = 0;
	size_t len = strlen(pass);
	if (len < 12) {
		snprintf(err, errlen, "passphrase file %s: the passphrase (first line) must have "
			 "at least 12 characters", path);
		sodium_free(pass);
		return -EINVAL;
	}
	k->key = sodium_malloc(KEY_SIZE);
	if (!k->key) {
		sodium_free(pass);
		return -ENOMEM;
	}
	r = crypto_pwhash(k->key, KEY_SIZE, pass, len, salt, crypto_pwhash_OPSLIMIT_MODERATE,
			  crypto_pwhash_MEMLIMIT_MODERATE, crypto_pwhash_ALG_ARGON2ID13);
	sodium_free(pass);
	if (r) {
		snprintf(err, errlen, "passphrase file %s: Argon2id ran out of memory (needs "
			 "256 MiB)", path);
		key_free(k);
		return -ENOMEM;
	}
	return 0;
}

void key_subkey(const struct master_key *k, enum subkey_id id, uint8_t out[KEY_SIZE])
{
	crypto_kdf_derive_from_key(out, KEY_SIZE, (uint64_t)id, KDF_CONTEXT, k->key);
}

void key_free(struct master_key *k)
{
	if (k->key)
		sodium_free(k->key);	/* wipes */
	k->key = NULL;
}
