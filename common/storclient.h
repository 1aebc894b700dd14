/* common/storclient.h - the client of qsfs-stor's control socket: every
 * request of storproto.h as a typed call with a timeout. Used by qsfs-fs
 * (hand-offs, fetches, confirmations, the collector's floor), qsfs-ctl,
 * qsfs-wait-hooks and the restore path.
 *
 * A client keeps one connection open for short requests (so a mount that
 * asks every few seconds opens no connection at all while stor runs) and
 * opens one of its own for a request that may take long (RETRIEVE) or
 * when the kept one is in use by another thread. A kept connection the
 * daemon closed (it restarted) is opened again once and the request sent
 * again; every request is idempotent (see storproto.h).
 *
 * Thread-safe: any thread may call; the kept connection is used by one
 * call at a time (under the client's mutex, never held while waiting for
 * another call).
 */
#ifndef QSFS_COMMON_STORCLIENT_H
#define QSFS_COMMON_STORCLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "storproto.h"

/* Timeouts of the short requests and of RETRIEVE (ms). */
#define STORCLIENT_TIMEOUT_MS 30000u
#define STORCLIENT_RETRIEVE_TIMEOUT_MS 120000u

struct storclient;

/* A client of the socket at path (copied). NULL when out of memory.
 * Connects lazily: stor need not be running. */
struct storclient *storclient_new(const char *path);

/* Close the kept connection and free cl (NULL: no-op). No call may be
 * running. */
void storclient_free(struct storclient *cl);

/* Set the timeouts of short requests and of RETRIEVE (0: the defaults,
 * STORCLIENT_TIMEOUT_MS and STORCLIENT_RETRIEVE_TIMEOUT_MS). */
void storclient_set_timeout(struct storclient *cl, unsigned ms, unsigned retrieve_ms);

/* Send rq and read its reply line into *reply (malloc'd, without the
 * newline; NULL on failure). Blocks up to timeout_ms (0: the client's
 * timeout) for the whole exchange. Returns:
 *   0             the reply is the one rq gets when it works (OK ..., YES
 *                 or NO, JSON)
 *   -EREMOTEIO    stor answered "ERR message" (*reply holds it whole)
 *   -EPROTO       the reply is not of the kind rq gets (or not a line)
 *   -ETIMEDOUT    no whole reply within the timeout
 *   -ECANCELED    a RETRIEVE after storclient_cancel_fetches
 *   -ENOENT, -ECONNREFUSED  stor is not running (no socket / nobody on it)
 *   -EACCES       the socket may not be used by this user
 *   -EINVAL       rq is not a valid request (storproto_format)
 *   other -errno  the exchange failed
 * Never logs. */
int storclient_call(struct storclient *cl, const struct stor_req *rq, unsigned timeout_ms,
		    char **reply);

/* Words for a storclient_call failure naming the socket, e.g. "qsfs-stor
 * is not running (no socket /run/qsfs/stor.sock)", "qsfs-stor did not
 * answer within 30 s on ...". buf: at least 256 bytes. */
const char *storclient_strerror(const struct storclient *cl, int r, char *buf, size_t len);

/* The socket path. */
const char *storclient_path(const struct storclient *cl);

/* Cancel the fetches: every RETRIEVE in flight returns -ECANCELED at
 * once, and every later one fails so without being sent (a stop must not
 * wait for a cold read on slow backends). Other requests are not touched:
 * a clean stop still hands off its last segment. Async-signal-safe (an
 * atomic store and a write to a pipe): a SIGTERM handler may call it. */
void storclient_cancel_fetches(struct storclient *cl);

/* Connections opened so far (for status and benchmarks). */
uint64_t storclient_connects(const struct storclient *cl);

/* The typed calls. Each returns as storclient_call does; why (may be NULL)
 * gets stor's refusal or the failure in words. */
int storclient_ping(struct storclient *cl);
int storclient_store(struct storclient *cl, const char *name, const char *path, char *why,
		     size_t whylen);
/* timeout_ms 0: the client's RETRIEVE timeout. */
int storclient_retrieve(struct storclient *cl, const char *name, const char *path,
			unsigned timeout_ms, char *why, size_t whylen);
int storclient_delete(struct storclient *cl, const char *name, char *why, size_t whylen);
/* Report segment name lost before hand-off (LOST). 0 with *stored false:
 * stor journaled the loss; 0 with *stored true: stor has it stored after
 * all (nothing was lost). */
int storclient_lost(struct storclient *cl, const char *name, bool *stored, char *why,
		    size_t whylen);
int storclient_lease(struct storclient *cl);
int storclient_gcfloor(struct storclient *cl, uint64_t *floor);
/* Calls fn for every segment id in lo..hi that stor says is safely remote
 * (one request; hi - lo < STORPROTO_CONFIRMS_SPAN). */
int storclient_confirms(struct storclient *cl, uint64_t lo, uint64_t hi,
			void (*fn)(void *arg, uint64_t id), void *arg);
/* *yes: whether object name is safely remote. */
int storclient_confirmed(struct storclient *cl, const char *name, bool *yes);
/* STATUS, CATALOG, GCCHECK: the JSON line in *json (malloc'd). */
int storclient_json(struct storclient *cl, enum stor_op op, bool fix, unsigned timeout_ms,
		    char **json);
/* SCRUB or REPAIR: *already says a pass was running. */
int storclient_scrub(struct storclient *cl, bool repair, bool *already);

/* A cache hand-off function (cache.h's cache_handoff.run, the hook's events
 * and arguments, see hooks/qsfs-hook): segment-sealed and
 * checkpoint-written are STOREd, segment-missing RETRIEVEd,
 * segment-removed DELETEd; ready and closing do nothing. arg: the client.
 * Returns 0, or 1 after logging why it failed (a hook's non-zero exit:
 * the log retries hand-offs later), 2 for an unknown event. */
int storclient_handoff(void *arg, const char *event, const char *const *args);

#endif
