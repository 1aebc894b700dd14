/* stor/backend_resp.c - see backend_resp.h */
#include "backend_resp.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/fsutil.h"

/* Record why the connection failed, in words: a timeout, the server
 * closing it, a reply hiredis could not parse, or the system's error. */
static void conn_error(struct backend *b, const char *what)
{
	const redisContext *rc = b->rc;
	if (rc->err == REDIS_ERR_IO && strstr(rc->errstr, "too slow"))
		backend_set_error(b, "%s: %s", what, rc->errstr);
	else if (rc->err == REDIS_ERR_IO && (strstr(rc->errstr, "temporarily unavailable") ||
					strstr(rc->errstr, "timed out")))
		backend_set_error(b, "%s: no answer within %u ms (timeout)", what, b->timeout_ms);
	else if (rc->err == REDIS_ERR_EOF)
		backend_set_error(b, "%s: the server closed the connection", what);
	else if (rc->err == REDIS_ERR_PROTOCOL)
		backend_set_error(b, "%s: protocol error (not a Redis reply): %s", what, rc->errstr);
	else
		backend_set_error(b, "%s: %s", what, rc->errstr[0] ? rc->errstr : "connection lost");
}

void resp_drop(struct backend *b)
{
	backend_conn_gone(b);
	if (b->rc)
		redisFree(b->rc);
	b->rc = NULL;
	b->rc_used = false;
}

/* redisGetReply with bounds. Size: a reply whose bytes buffered so far
 * exceed RESP_REPLY_MAX is refused as a protocol error before more memory
 * is taken for it (hiredis buffers a bulk string whole before it builds the
 * reply, so a hostile "$4000000000" would otherwise grow the buffer for as
 * long as the peer sends). Time: past timeout_ms, a reply arriving slower
 * than RESP_MIN_RATE is given up as a timeout ("too slow"). Returns
 * REDIS_OK with *reply, or REDIS_ERR with the context's error set. */
static int get_reply_bounded(redisContext *c, unsigned timeout_ms, void **reply)
{
	*reply = NULL;
	if (redisGetReplyFromReader(c, reply) == REDIS_ERR)
		return REDIS_ERR;
	if (*reply)
		return REDIS_OK;
	int done = 0;
	do {
		if (redisBufferWrite(c, &done) == REDIS_ERR)
			return REDIS_ERR;
	} while (!done);
	/* the reply's time starts once the request is sent (a big SET on a
	 * slow uplink is not the reply's slowness), and counts bytes received */
	uint64_t t0 = fs_now_ns(), received = 0;
	do {
		size_t before = c->reader->len;
		if (redisBufferRead(c) == REDIS_ERR)
			return REDIS_ERR;
		if (c->reader->len > before)
			received += c->reader->len - before;
		size_t have = c->reader->len - c->reader->pos;
		if (have > RESP_REPLY_MAX) {
			c->err = REDIS_ERR_PROTOCOL;
			snprintf(c->errstr, sizeof c->errstr, "a reply larger than %zu bytes "
				 "(refused before it was read whole)", RESP_REPLY_MAX);
			return REDIS_ERR;
		}
		if (redisGetReplyFromReader(c, reply) == REDIS_ERR)
			return REDIS_ERR;
		if (*reply)
			break;
		uint64_t ms = (fs_now_ns() - t0) / 1000000;
		if (ms > timeout_ms && (double)received * 1000.0 / (double)ms < RESP_MIN_RATE) {
			c->err = REDIS_ERR_IO;
			snprintf(c->errstr, sizeof c->errstr, "too slow: %llu bytes of the reply in "
				 "%llu ms (timed out: less than %u KiB/s)",
				 (unsigned long long)received, (unsigned long long)ms,
				 RESP_MIN_RATE >> 10);
			return REDIS_ERR;
		}
	} while (!*reply);
	return REDIS_OK;
}

/* redisCommandArgv, with the reply bounded (get_reply_bounded). */
static redisReply *command_argv(redisContext *c, unsigned timeout_ms, int argc,
				const char **argv, const size_t *lens)
{
	void *r = NULL;
	if (redisAppendCommandArgv(c, argc, argv, lens) != REDIS_OK ||
	    get_reply_bounded(c, timeout_ms, &r) != REDIS_OK)
		return NULL;
	return r;
}

redisReply *resp_command(struct backend *b, int argc, const char **argv, const size_t *lens)
{
	bool reused = b->rc_used;
	redisReply *r = command_argv(b->rc, b->timeout_ms, argc, argv, lens);
	if (!r && reused && b->rc->err == REDIS_ERR_EOF && !backend_op_cancelled(b)) {
		/* A connection kept from earlier that the server has closed
		 * meanwhile (it restarted, or dropped idle clients): one new
		 * connection and the command again. Every command sent here is
		 * idempotent (GET, SET of the same value, DEL, EXISTS, PING,
		 * SCAN, STRLEN, NSINFO); a timeout is not retried (that would
		 * double the wait). */
		resp_drop(b);
		b->retry_at_ns = 0;
		if (resp_connect(b))
			return NULL;	/* it said why */
		r = command_argv(b->rc, b->timeout_ms, argc, argv, lens);
	}
	if (!r) {
		if (!backend_op_cancelled(b))	/* a cancel is not the backend's failure */
			conn_error(b, argv[0]);
		resp_drop(b);
	} else {
		b->rc_used = true;
	}
	return r;
}

int resp_append(struct backend *b, int argc, const char **argv, const size_t *lens)
{
	return redisAppendCommandArgv(b->rc, argc, argv, lens) == REDIS_OK ? 0 : -ENOMEM;
}

redisReply *resp_read(struct backend *b, const char *what)
{
	void *r = NULL;
	if (get_reply_bounded(b->rc, b->timeout_ms, &r) != REDIS_OK || !r) {
		if (!backend_op_cancelled(b))
			conn_error(b, what);
		resp_drop(b);
		return NULL;
	}
	return r;
}

int resp_connect(struct backend *b)
{
	if (b->rc)
		return 0;
	uint64_t now = fs_now_ns();
	if (now < b->retry_at_ns)
		return -EAGAIN;
	struct timeval tv = { b->timeout_ms / 1000, (b->timeout_ms % 1000) * 1000 };
	b->rc = redisConnectWithTimeout(b->host, (int)b->port, tv);
	b->rc_used = false;
	if (!b->rc)
		backend_set_error(b, "cannot connect: out of memory");
	int ok = b->rc && !b->rc->err && redisSetTimeout(b->rc, tv) == REDIS_OK;
	if (ok)
		backend_conn_keep(b, b->rc->fd);
	if (ok && b->ops->handshake)
		ok = b->ops->handshake(b) == 0;
	if (!ok) {
		/* no context, or a failed handshake (resp_command dropped the
		 * connection, or an error reply was recorded), has said why
		 * already; keep that */
		bool cancelled = backend_op_cancelled(b);
		if (b->rc && b->rc->err && !cancelled)
			conn_error(b, "cannot connect");
		resp_drop(b);
		if (cancelled)
			return -EIO;	/* cut short: no backoff, the backend did no wrong */
		b->failures++;
		/* to 1.6 s: the daemon's probe (health.h) decides when a backend
		 * is back; a handle must not then refuse it for long */
		uint64_t ms = 100ull << (b->failures < 4 ? b->failures : 4);
		b->retry_at_ns = now + ms * 1000000ull;
		return -EIO;
	}
	b->failures = 0;
	return 0;
}

const char *resp_err_sep(const redisReply *r)
{
	return r->type == REDIS_REPLY_ERROR ? ": " : "";
}

const char *resp_err_text(const redisReply *r)
{
	return r->type == REDIS_REPLY_ERROR ? r->str : "";
}

int resp_get(struct backend *b, const char *key, uint8_t **val, size_t *len)
{
	int r = resp_connect(b);
	if (r)
		return r == -EAGAIN ? -EIO : r;
	const char *argv[2] = { "GET", key };
	redisReply *rep = resp_command(b, 2, argv, NULL);
	if (!rep)
		return -EIO;
	if (rep->type == REDIS_REPLY_NIL) {
		r = -ENOENT;
	} else if (rep->type == REDIS_REPLY_STRING && rep->len <= BACKEND_MAX_VALUE) {
		*val = malloc(rep->len ? rep->len : 1);
		if (!*val) {
			r = -ENOMEM;
		} else {
			memcpy(*val, rep->str, rep->len);
			*len = rep->len;
			r = 0;
		}
	} else {
		backend_set_error(b, "GET %s: unexpected reply (type %d)%s%.100s", key, rep->type,
				  resp_err_sep(rep), resp_err_text(rep));
		r = -EIO;
	}
	freeReplyObject(rep);
	return r;
}

int resp_exists(struct backend *b, const char *key)
{
	int r = resp_connect(b);
	if (r)
		return r == -EAGAIN ? -EIO : r;
	const char *argv[2] = { "EXISTS", key };
	redisReply *rep = resp_command(b, 2, argv, NULL);
	if (!rep)
		return -EIO;
	r = rep->type == REDIS_REPLY_INTEGER ? rep->integer > 0 : -EIO;
	if (r < 0)
		backend_set_error(b, "EXISTS %s: unexpected reply%s%.100s", key, resp_err_sep(rep),
				  resp_err_text(rep));
	freeReplyObject(rep);
	return r;
}

int resp_ping(struct backend *b)
{
	b->retry_at_ns = 0;
	int r = resp_connect(b);
	if (r)
		return -EIO;
	const char *argv[1] = { "PING" };
	redisReply *rep = resp_command(b, 1, argv, NULL);
	if (!rep)
		return -EIO;
	r = rep->type == REDIS_REPLY_STATUS || rep->type == REDIS_REPLY_STRING ? 0 : -EIO;
	if (r)
		backend_set_error(b, "PING: unexpected reply%s%.100s", resp_err_sep(rep),
				  resp_err_text(rep));
	freeReplyObject(rep);
	return r;
}
