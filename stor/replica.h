/* stor/replica.h - small volume records kept on every backend: the volume
 * catalog (catalog.h) and the writer lease (lease.h).
 *
 * A record is written to key "VOL/NAME" on every backend, sealed with
 * XChaCha20-Poly1305 under the METADATA subkey (random 24-byte nonce
 * first; AD = the record's 8-byte tag + volume id), so backends see none of
 * it in clear. Its plaintext starts with the tag (8 bytes), and carries a
 * u64 sequence number (little-endian) at offset 16, which orders copies:
 * a write needs a majority of backends, and a read takes the copy with the
 * highest sequence number among a majority of answers, so a read always
 * sees the newest completed write even when a minority holds stale or no
 * copies.
 */
#ifndef QSFS_STOR_REPLICA_H
#define QSFS_STOR_REPLICA_H

#include <stddef.h>
#include <stdint.h>

#include "objstore.h"

#define REPLICA_HDR 24u	/* tag, 8 bytes of the record's own, sequence number */

/* Seal plain (plen >= REPLICA_HDR, starting with tag) and write it to
 * VOL/name on every backend. Returns 0 once a majority took it, else -EIO
 * with why naming the failing backends (what names the record in
 * messages), or -ENOMEM. */
int replica_store(struct objstore *s, const char *name, const char *what, const uint8_t *plain,
		  size_t plen, char *why, size_t whylen);

/* Read VOL/name from every backend and give the opened copy (malloc'd)
 * with the highest sequence number among those that open, start with tag
 * (8 bytes) and pass check (may be NULL; returns 0 for a well-formed record).
 * Returns 0; -ENOENT when no backend has a copy; -EBADMSG when copies
 * exist but none is valid (wrong key, another volume, tampered); -EIO when
 * fewer than a majority answered (the newest may be on the silent ones). */
int replica_load(struct objstore *s, const char *name, const char *tag, const char *what,
		 int (*check)(const uint8_t *p, size_t len), uint8_t **plain, size_t *plen,
		 char *why, size_t whylen);

#endif
