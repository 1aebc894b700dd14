/* stor/backend_redis.c - redis:// backends (redis-server, valkey) over
 * backend_resp.c: AUTH [user] password and SELECT on connecting, SET
 * answered +OK, DEL and EXISTS answered with integers, SCAN MATCH with
 * STRLEN for the sizes. See backend.h, backend_int.h. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend_resp.h"

/* AUTH when the URL has a password, then SELECT when it has a path: a
 * number selects a redis database; any other name is sent as SELECT name
 * password (what early qsfs did for 0-db; zdb:// is 0-db's dialect). */
static int redis_handshake(struct backend *b)
{
	int ok = 1;
	if (b->password) {
		const char *argv[3] = { "AUTH", b->user ? b->user : b->password, b->password };
		redisReply *r = resp_command(b, b->user ? 3 : 2, argv, NULL);
		if (r && r->type == REDIS_REPLY_ERROR)
			backend_set_error(b, "AUTH refused: %.100s", r->str);
		ok = r && r->type != REDIS_REPLY_ERROR;
		freeReplyObject(r);
	}
	if (ok && b->ns) {
		bool numeric = strspn(b->ns, "0123456789") == strlen(b->ns);
		const char *argv[3] = { "SELECT", b->ns, b->password };
		redisReply *r = resp_command(b, !numeric && b->password ? 3 : 2, argv, NULL);
		if (r && r->type == REDIS_REPLY_ERROR)
			backend_set_error(b, "SELECT %s refused: %.100s", b->ns, r->str);
		ok = r && r->type != REDIS_REPLY_ERROR;
		freeReplyObject(r);
	}
	return ok ? 0 : -EIO;
}

static int redis_put(struct backend *b, const char *key, const void *val, size_t len)
{
	int r = resp_connect(b);
	if (r)
		return r == -EAGAIN ? -EIO : r;
	const char *argv[3] = { "SET", key, val };
	size_t lens[3] = { 3, strlen(key), len };
	redisReply *rep = resp_command(b, 3, argv, lens);
	if (!rep)
		return -EIO;
	r = rep->type == REDIS_REPLY_STATUS && !strcmp(rep->str, "OK") ? 0 : -EIO;
	if (r)
		backend_set_error(b, "SET %s: unexpected reply%s%.100s", key, resp_err_sep(rep),
				  resp_err_text(rep));
	freeReplyObject(rep);
	return r;
}

static int redis_del(struct backend *b, const char *key)
{
	int r = resp_connect(b);
	if (r)
		return r == -EAGAIN ? -EIO : r;
	const char *argv[2] = { "DEL", key };
	redisReply *rep = resp_command(b, 2, argv, NULL);
	if (!rep)
		return -EIO;
	r = rep->type == REDIS_REPLY_INTEGER ? 0 : -EIO;
	if (r)
		backend_set_error(b, "DEL %s: unexpected reply%s%.100s", key, resp_err_sep(rep),
				  resp_err_text(rep));
	freeReplyObject(rep);
	return r;
}

/* SCAN ... MATCH prefix* COUNT 1000 until the cursor is back at 0, and the
 * size of each key found (STRLEN, pipelined per batch). */
static int redis_scan(struct backend *b, const char *prefix,
		      int (*cb)(void *arg, const char *key, uint64_t size), void *arg)
{
	int r = resp_connect(b);
	if (r)
		return -EIO;
	char pat[1024], cursor[32] = "0";
	size_t pl = 0;
	for (const char *p = prefix; *p && pl + 3 < sizeof pat; p++) {
		if (strchr("*?[]\\", *p))
			pat[pl++] = '\\';	/* a glob character, matched literally */
		pat[pl++] = *p;
	}
	pat[pl++] = '*';
	pat[pl] = 0;
	int stop = 0;
	do {
		const char *argv[6] = { "SCAN", cursor, "MATCH", pat, "COUNT", "1000" };
		redisReply *rep = resp_command(b, 6, argv, NULL);
		if (!rep)
			return -EIO;
		if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
		    rep->element[0]->type != REDIS_REPLY_STRING || rep->element[0]->len >= sizeof cursor ||
		    rep->element[1]->type != REDIS_REPLY_ARRAY) {
			backend_set_error(b, "SCAN: unexpected reply%s%.100s", resp_err_sep(rep),
					  resp_err_text(rep));
			freeReplyObject(rep);
			return -EIO;
		}
		memcpy(cursor, rep->element[0]->str, rep->element[0]->len);
		cursor[rep->element[0]->len] = 0;
		redisReply *keys = rep->element[1];
		for (size_t i = 0; i < keys->elements; i++) {
			redisReply *k = keys->element[i];
			const char *av[2] = { "STRLEN", k->type == REDIS_REPLY_STRING ? k->str : "" };
			size_t al[2] = { 6, k->type == REDIS_REPLY_STRING ? k->len : 0 };
			resp_append(b, 2, av, al);
		}
		bool failed = false;
		for (size_t i = 0; i < keys->elements; i++) {
			redisReply *k = keys->element[i], *n = resp_read(b, "STRLEN");
			if (!n) {
				freeReplyObject(rep);
				return -EIO;
			}
			if (n->type != REDIS_REPLY_INTEGER || k->type != REDIS_REPLY_STRING) {
				if (!failed)
					backend_set_error(b, "STRLEN: unexpected reply%s%.100s",
							  resp_err_sep(n), resp_err_text(n));
				failed = true;
			} else if (!stop && !failed) {
				/* a key removed since SCAN saw it: STRLEN 0 */
				stop = cb(arg, k->str, (uint64_t)(n->integer > 0 ? n->integer : 0));
			}
			freeReplyObject(n);
		}
		freeReplyObject(rep);
		if (failed)
			return -EIO;
	} while (!stop && strcmp(cursor, "0"));
	return stop;
}

const struct backend_ops backend_redis_ops = {
	.put = redis_put,
	.get = resp_get,
	.del = redis_del,
	.exists = resp_exists,
	.ping = resp_ping,
	.scan = redis_scan,
	.handshake = redis_handshake,
};
