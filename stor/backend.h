/* stor/backend.h - one place shards are stored: a Redis server
 * (redis://: redis-server, valkey), a 0-db namespace (zdb://, docs/ZDB.md)
 * or a local directory (dir://). The kinds are in backend_*.c
 * (backend_int.h).
 *
 * Keys are short printable names ([A-Za-z0-9._-/], no "..", at most 200
 * bytes); values are at most BACKEND_MAX_VALUE bytes (0-db's cap), so
 * callers split larger shards into pieces.
 *
 * A backend handle is used by one thread at a time (each worker holds its
 * own set). It keeps a health record: up / slow / down, the last error and
 * the last latency, for `qsfs-ctl status`; backend_health() may be called
 * from any thread, and so may backend_cancel(). Every operation below may
 * also return -ECANCELED: backend_cancel() cut it short.
 */
#ifndef QSFS_STOR_BACKEND_H
#define QSFS_STOR_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "../common/url.h"

#define BACKEND_MAX_VALUE (8u << 20)
#define BACKEND_SLOW_US 500000u	/* an operation slower than this marks it slow */

enum backend_state { BACKEND_UP, BACKEND_SLOW, BACKEND_DOWN };

struct backend_health {
	enum backend_state state;
	uint64_t latency_us;	/* of the last operation */
	uint64_t errors;	/* since open */
	uint64_t updated_ns;	/* when state was last set (0: never used) */
	char last_error[160];
};

struct backend;

/* Make a handle for u (copied). Connects lazily: a backend that is down at
 * start gives errors on use, not here. timeout_ms bounds each operation. */
int backend_open(const struct backend_url *u, unsigned timeout_ms, struct backend **out);
void backend_close(struct backend *b);

/* Store value under key, replacing any. dir://: written to a temp file,
 * fsynced, renamed. Returns 0; -EINVAL for a bad key or a value over
 * BACKEND_MAX_VALUE (nothing sent); -ENOSPC when the backend has no room
 * (zdb://: the namespace is at its size limit; dir://: the disk is full);
 * -EACCES when zdb:// refuses writes to a read-only namespace; -EIO (or
 * dir://'s -errno) when it fails. The health record says why, and a
 * refusal (-ENOSPC, -EACCES from zdb://) leaves its state up: the backend
 * answers, reads still work. */
int backend_put(struct backend *b, const char *key, const void *val, size_t len);

/* Fetch key into a malloc'd buffer. -ENOENT when absent; -EIO (and the
 * health record says why) when the backend fails or answers garbage. */
int backend_get(struct backend *b, const char *key, uint8_t **val, size_t *len);

/* Remove key (absent is fine). */
int backend_del(struct backend *b, const char *key);

/* 1 when key exists, 0 when absent, -EIO when the backend fails. */
int backend_exists(struct backend *b, const char *key);

/* Is the backend there? redis, zdb: PING (connecting first, ignoring the
 * reconnect backoff); dir: the directory exists and is writable. 0 or
 * -EIO (the health record says why). */
int backend_ping(struct backend *b);

/* The bytes the backend holds for its namespace and the most it may hold:
 * zdb://: NSINFO's data_size_bytes and data_limits_bytes (*limit 0: no
 * limit set; values only, 0-db's index is not counted). Returns 0; -ENOTSUP
 * for the other kinds (nothing is asked); -EIO when it fails (the health
 * record says why). Blocks: one request. */
int backend_usage(struct backend *b, uint64_t *used, uint64_t *limit);

/* dir:// only: remove the temp files (KEY.tmp-XXXXXX) that a put killed
 * half way left under the backend's directory, those older than min_age_s
 * seconds by their mtime (a put in flight, by qsfs-fs writing the lease or
 * another worker, is seconds old and must not be touched). Walks the whole
 * tree: O(files), for start-up. Returns the number removed, or -errno when
 * the tree cannot be walked. Does nothing (0) for other kinds. */
int64_t backend_dir_sweep_tmp(const struct backend_url *u, unsigned min_age_s);

/* Every key starting with prefix, with its value's size: cb(arg, key,
 * size) once per key (no order; a key written or removed meanwhile may or
 * may not be seen, or be seen twice). redis: SCAN ... MATCH prefix* (glob
 * characters in prefix escaped) and STRLEN; zdb: 0-db's SCAN walk of the
 * whole namespace, keys matched against prefix here, sizes from its
 * entries; dir://: a walk of the directories under the
 * backend's root that prefix names, skipping temp files (KEY.tmp-XXXXXX,
 * a put in flight or killed). cb returning non-zero stops the listing and
 * that value is returned. Returns 0, or -EIO when the backend fails (the
 * health record says why; the caller names the backend), -EINVAL for a
 * prefix that is not a valid key start. Blocks: O(keys). */
int backend_scan(struct backend *b, const char *prefix,
		 int (*cb)(void *arg, const char *key, uint64_t size), void *arg);

/* Cut short the operation in progress on b, from any thread (the one
 * exception to "one thread at a time"): redis:// shuts the connection's
 * socket down, so the owner's blocked call returns at once with
 * -ECANCELED (an answer that was already in stands); the handle connects
 * again on its next use, without backoff, and no error is recorded in its
 * health record. With no operation in progress it does nothing (the next
 * one is not affected). dir://: a local read is not interrupted; the
 * operation completes as it would have. Does not block (takes the
 * handle's small cancel lock, never held across I/O). The process must
 * ignore SIGPIPE, as qsfs-stor does: the owner may be writing when the
 * socket is shut down. */
void backend_cancel(struct backend *b);

/* The URL with the password hidden, and the health record. */
const char *backend_name(const struct backend *b);
struct backend_health backend_health(const struct backend *b);

#endif
