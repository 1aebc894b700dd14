/* stor/keys.h - the volume's master key and the subkeys derived from it.
 *
 * The master key is 32 bytes: either read from a key file (exactly 32
 * bytes, not readable by group or others), or derived from a passphrase
 * file with Argon2id and the volume's 16-byte salt. Subkeys come from
 * libsodium's KDF (BLAKE2b) with context "qsfs-v01" and a numeric id, so
 * no two purposes share a key. Keys live in sodium_malloc'd memory (locked,
 * guarded, wiped on free) and are never written anywhere.
 */
#ifndef QSFS_STOR_KEYS_H
#define QSFS_STOR_KEYS_H

#include <stddef.h>
#include <stdint.h>

#define KEY_SIZE 32u
#define KEY_SALT_SIZE 16u

enum subkey_id {
	SUBKEY_SEGMENT = 1,	/* AEAD of segment and checkpoint data */
	SUBKEY_METADATA = 2,	/* AEAD of per-object metadata and the head */
	SUBKEY_NAMES = 3,	/* keyed hash for remote key names */
};

struct master_key {
	uint8_t *key;	/* KEY_SIZE bytes, sodium_malloc'd */
};

/* Read a 32-byte key file. Refuses (-EPERM) a file readable or writable by
 * group or others, and (-EINVAL) any other size. err gets a message naming
 * the file. */
int key_load_file(const char *path, struct master_key *k, char *err, size_t errlen);

/* Derive the master key from the first line of a passphrase file (at least
 * 12 characters; same permission rule) with Argon2id (libsodium's MODERATE
 * limits: 256 MiB, about a second) and salt. */
int key_from_passphrase(const char *path, const uint8_t salt[KEY_SALT_SIZE],
			struct master_key *k, char *err, size_t errlen);

/* Derive the subkey for id into out (KEY_SIZE bytes). */
void key_subkey(const struct master_key *k, enum subkey_id id, uint8_t out[KEY_SIZE]);

/* Wipe and free. */
void key_free(struct master_key *k);

#endif
