/* stor/backend_resp.h - the connection of a Redis-protocol backend
 * (backend_int.h: redis://, zdb://) over hiredis, and the commands whose replies
 * every dialect gives alike.
 *
 * One connection per handle (b->rc), opened on first use and again after a
 * failure, with a backoff (100 ms doubling to 1.6 s) between failed
 * attempts; b->ops->handshake runs on every new connection. Every reply is
 * read bounded (resp_read): at most one value and its protocol
 * (RESP_REPLY_MAX), and past the handle's timeout at least RESP_MIN_RATE,
 * so a hostile or trickling peer fails the operation instead of holding
 * memory or a reader. All functions block on the network and are called by
 * the handle's one thread; a failure is recorded in the health record
 * (backend_set_error), naming the command, and drops the connection.
 */
#ifndef QSFS_STOR_BACKEND_RESP_H
#define QSFS_STOR_BACKEND_RESP_H

#include <hiredis/hiredis.h>
#include <stddef.h>
#include <stdint.h>

#include "backend_int.h"

/* The most a reply may hold: a value (BACKEND_MAX_VALUE) and the protocol
 * around it. SCAN, STRLEN and NSINFO replies are far smaller. */
#define RESP_REPLY_MAX ((size_t)BACKEND_MAX_VALUE + (64u << 10))

/* The slowest a reply may come once it has taken longer than the
 * backend's timeout: a peer that trickles (a few KB/s) never trips the
 * per-read timeout, and would hold a read of an object for as long as it
 * likes although k other backends have their shards at hand. */
#define RESP_MIN_RATE (64u << 10)	/* bytes per second */

/* Connect (TCP, then b->ops->handshake) unless connected. Returns 0;
 * -EAGAIN while backing off after a failure (nothing tried, the record
 * keeps the last error); -EIO when it failed now (recorded). */
int resp_connect(struct backend *b);

/* One command and its reply (argv with lengths lens, or NULL for C
 * strings). NULL when the connection failed (recorded, naming argv[0];
 * connection dropped). A kept connection that the server closed meanwhile
 * (it restarted, or drops idle clients) is opened again once and the
 * command sent again: every command qsfs sends is idempotent. An error
 * reply is a reply: the caller judges it. */
redisReply *resp_command(struct backend *b, int argc, const char **argv, const size_t *lens);

/* Pipelining: queue a command without sending it (sent by the next
 * resp_read), then read the replies in order. resp_read returns NULL when
 * the connection failed (recorded, naming what; connection dropped). */
int resp_append(struct backend *b, int argc, const char **argv, const size_t *lens);
redisReply *resp_read(struct backend *b, const char *what);

/* The words for an unexpected reply r in the health record: ": " and the
 * server's error text for an error reply, "" otherwise. */
const char *resp_err_sep(const redisReply *r);
const char *resp_err_text(const redisReply *r);

/* GET key: a bulk value (copied into a malloc'd buffer) or nil (-ENOENT);
 * -EIO for anything else (recorded), -ENOMEM. */
int resp_get(struct backend *b, const char *key, uint8_t **val, size_t *len);

/* EXISTS key: 1 or 0 from the integer reply; -EIO otherwise (recorded). */
int resp_exists(struct backend *b, const char *key);

/* Connect now (ignoring the backoff) and PING: 0 for a status or bulk
 * answer, -EIO otherwise (recorded). */
int resp_ping(struct backend *b);

/* Close and free b's connection (if any), out of a cancel's reach first;
 * the next operation connects again. */
void resp_drop(struct backend *b);

#endif
