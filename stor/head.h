/* stor/head.h - the volume head: how a node holding only the configuration
 * and the key finds and opens a volume.
 *
 * Key "qsfs/head/NAME" (NAME: the configured volume name) on every backend;
 * created by `qsfs-ctl format`, needing a majority. Layout:
 *   0 magic "QSFSHEAD"  8 u32 version (1)  12 u32 0
 *   16 volume id (16)   32 salt (16, for a passphrase-derived key)
 *   48 nonce (24), then XChaCha20-Poly1305 under the METADATA subkey of
 *      { "QSFSHDOK", u64 created (unix s), u8 k, u8 m, 6 x 0 }
 *   with AD = bytes 0..47 and the volume name.
 * The clear part gives the salt (so a passphrase key can be derived); the
 * sealed part proves the key: a wrong key is told apart from a missing
 * volume.
 */
#ifndef QSFS_STOR_HEAD_H
#define QSFS_STOR_HEAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "keys.h"
#include "objstore.h"
#include "../common/config.h"

struct volume {
	uint8_t id[16];
	uint8_t salt[16];
	uint64_t created;
	unsigned k, m;
	struct master_key key;
	uint8_t seg_key[KEY_SIZE];	/* SUBKEY_SEGMENT */
	uint8_t meta_key[KEY_SIZE];	/* SUBKEY_METADATA */
	char idhex[33];
};

/* Create the volume on backends b[0..n): fresh id and salt, key from cfg.
 * Refuses (-EEXIST) when any backend already has a head for the name, or
 * holds the data of a volume no head names (formatting would hide it),
 * unless force. err says what happened, naming backends. On success
 * *placed is the number of backends that took the head (a majority at
 * least) and missing (may be NULL) names the others with their errors,
 * "" when all took it. */
int head_format(const struct qsfs_config *cfg, struct backend **b, size_t n, bool force,
		struct volume *v, size_t *placed, char *missing, size_t missinglen, char *err,
		size_t errlen);

/* Find the head on backends b[0..n) and open it with the configured key.
 * -ENOENT: no backend has it (err says how to create it); -EACCES: the key
 * does not open it (wrong key); -EIO: backends unreachable. */
int head_open(const struct qsfs_config *cfg, struct backend **b, size_t n,
	      struct volume *v, char *err, size_t errlen);

/* Copy v's head onto every backend of b[0..n) that has none (a backend
 * replaced, wiped or new), so that the volume stays findable however many
 * of its backends are replaced over its life: with only the original
 * majority holding it, losing that majority hid the volume. The copy
 * written is one that opens with v's key and names v's id. A backend
 * holding another volume's head under this name is never overwritten; it
 * is named in why (two volumes were formatted with this name). Returns the
 * number of backends written (0: nothing was missing), -ENOENT when no
 * backend has a copy of v's head to copy, or -EEXIST for a conflicting
 * head (the others are still repaired). Blocks on every backend. */
int head_repair(const struct qsfs_config *cfg, struct backend **b, size_t n,
		const struct volume *v, char *why, size_t whylen);

void volume_free(struct volume *v);

/* A process's own connection to a volume: backend handles, the opened
 * head, and an objstore over them (for the catalog, the lease, objects). */
struct volconn {
	struct backend *b[CONFIG_MAX_BACKENDS];
	struct volume v;
	struct objstore os;
};

/* Open cfg's backends and the volume head (head_open's errors). */
int volconn_open(const struct qsfs_config *cfg, struct volconn *vc, char *err, size_t errlen);
void volconn_close(struct volconn *vc);

#endif
