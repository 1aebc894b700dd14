/* stor/backend_int.h - what the backend modules share; not for the rest of
 * stor (which uses backend.h only).
 *
 *   backend.c        the handle, key checks, dispatch, health records
 *   backend_dir.c    dir://: a directory of files
 *   backend_resp.c   the hiredis connection of a Redis-protocol backend:
 *                    connect with backoff, bounded replies (backend_resp.h)
 *   backend_redis.c  redis:// (redis-server, valkey) over backend_resp.c
 *   backend_zdb.c    zdb:// (a 0-db namespace) over backend_resp.c
 *
 * A kind is a table of operations (struct backend_ops). backend.c checks
 * the arguments (valid key, value size), times the operation and records
 * success; an operation records its own failures (backend_set_error or
 * backend_set_refused), once, in words, without the backend's name (the
 * caller names it).
 */
#ifndef QSFS_STOR_BACKEND_INT_H
#define QSFS_STOR_BACKEND_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend.h"

struct redisContext;

/* One kind's operations, called by backend.c with arguments checked. The
 * contracts are those of backend.h's functions of the same name; every
 * one blocks on the backend (the network or the disk) and is called by
 * the handle's one thread. */
struct backend_ops {
	int (*put)(struct backend *b, const char *key, const void *val, size_t len);
	int (*get)(struct backend *b, const char *key, uint8_t **val, size_t *len);
	int (*del)(struct backend *b, const char *key);
	int (*exists)(struct backend *b, const char *key);
	int (*ping)(struct backend *b);
	int (*scan)(struct backend *b, const char *prefix,
		    int (*cb)(void *arg, const char *key, uint64_t size), void *arg);
	/* NULL: -ENOTSUP */
	int (*usage)(struct backend *b, uint64_t *used, uint64_t *limit);
	/* Redis-protocol kinds: what is sent on a new connection before any
	 * command (AUTH, SELECT). 0, or -EIO with the error recorded. */
	int (*handshake)(struct backend *b);
};

extern const struct backend_ops backend_dir_ops;
extern const struct backend_ops backend_redis_ops;
extern const struct backend_ops backend_zdb_ops;

struct backend {
	enum backend_kind kind;
	const struct backend_ops *ops;
	char *name;		/* display form (no password) */
	unsigned timeout_ms;	/* bounds each operation */
	/* dir:// */
	char *path;
	/* Redis-protocol kinds (backend_resp.c) */
	char *host, *user, *password, *ns;
	unsigned port;
	struct redisContext *rc;	/* NULL until connected */
	bool rc_used;		/* rc has answered a command (it is not fresh) */
	uint64_t retry_at_ns;	/* no reconnect before this (backoff) */
	unsigned failures;	/* consecutive connection failures */
	/* the health record, read by the status thread */
	pthread_mutex_t hmu;
	struct backend_health h;
	/* backend_cancel, from any thread, against the owner's operation: cmu
	 * guards the three fields below. live_fd is rc's socket while rc is
	 * connected; it is cleared under cmu before rc is freed
	 * (backend_conn_gone), so a cancel never shuts down a closed or
	 * reused descriptor. */
	pthread_mutex_t cmu;
	int live_fd;		/* -1: not connected */
	bool in_op;		/* an operation is in progress */
	bool cancelled;		/* backend_cancel hit it */
};

/* Was the operation in progress cancelled (backend_cancel)? Its failure is
 * then not the backend's: no error recorded, no reconnect backoff. Takes
 * b->cmu. */
bool backend_op_cancelled(struct backend *b);

/* b->rc just connected on socket fd: from now on a cancel shuts it down;
 * one that came during the connect takes effect now. Takes b->cmu. */
void backend_conn_keep(struct backend *b, int fd);

/* b->rc is about to be freed: out of a cancel's reach first. Takes
 * b->cmu. */
void backend_conn_gone(struct backend *b);

/* The operation failed and the backend is taken for down or failing:
 * record why (state down, one more error). Takes b->hmu. */
void backend_set_error(struct backend *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* The backend answered but refused the operation (a full namespace, a
 * read-only one):
 * record why (one more error), the state stays up. Takes b->hmu. */
void backend_set_refused(struct backend *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#endif
