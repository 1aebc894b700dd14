/* stor/backend_zdb.c - zdb:// backends: a 0-db namespace in user mode
 * (docs/ZDB.md) over backend_resp.c. 0-db speaks RESP but not Redis:
 *   - AUTH takes only 0-db's admin password; a namespace password goes in
 *     SELECT namespace password (no AUTH is sent);
 *   - SET answers with the key (a bulk string), or nil when the value
 *     stored is the same (0-db does not write it again); a namespace at
 *     its size limit answers "No space left on this namespace";
 *   - DEL answers +OK, or "Key not found" (fine: absent is deleted);
 *   - SCAN has no MATCH: SCAN, then SCAN <cursor> with the binary cursor
 *     each reply gives, until "No more data"; an entry is [key, size,
 *     timestamp], so prefixes are matched here and sizes come with keys;
 *   - NSINFO namespace gives its use and limit as "key: value" lines.
 * See backend.h, backend_int.h. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend_resp.h"

/* What a refused SELECT means for the operator. */
static const char *select_hint(const char *err)
{
	if (strstr(err, "Access denied"))
		return " (the namespace password in the URL is wrong)";
	if (strstr(err, "protected and private"))
		return " (the namespace has a password: zdb://:PASSWORD@host/namespace)";
	if (strstr(err, "Namespace not found"))
		return " (create it with NSNEW and NSSET on the 0-db: docs/ZDB.md)";
	return "";
}

/* SELECT namespace [password]; never AUTH (0-db's admin password only). */
static int zdb_handshake(struct backend *b)
{
	const char *argv[3] = { "SELECT", b->ns, b->password };
	redisReply *r = resp_command(b, b->password ? 3 : 2, argv, NULL);
	if (!r)
		return -EIO;	/* recorded */
	int ok = r->type == REDIS_REPLY_STATUS;
	if (r->type == REDIS_REPLY_ERROR)
		backend_set_error(b, "SELECT %s refused: %.100s%s", b->ns, r->str,
				  select_hint(r->str));
	else if (!ok)
		backend_set_error(b, "SELECT %s: unexpected reply (type %d)", b->ns, r->type);
	freeReplyObject(r);
	return ok ? 0 : -EIO;
}

/* A write refused by an error reply e: -ENOSPC for a full namespace,
 * -EACCES for a read-only one (both recorded as refusals: the backend
 * answers), else -EIO (recorded as a failure). */
static int write_refused(struct backend *b, const char *cmd, const char *key, const char *e)
{
	if (strstr(e, "No space left")) {
		backend_set_refused(b, "%s %s: the 0-db namespace %s is full (%.100s)", cmd, key,
				    b->ns, e);
		return -ENOSPC;
	}
	if (strstr(e, "read-only")) {
		backend_set_refused(b, "%s %s: the 0-db namespace %s is read-only (%.100s)%s", cmd,
				    key, b->ns, e, b->password ? "" : "; a public namespace "
				    "selected without its password is read-only: put the password "
				    "in the URL");
		return -EACCES;
	}
	backend_set_error(b, "%s %s: refused: %.100s", cmd, key, e);
	return -EIO;
}

static int zdb_put(struct backend *b, const char *key, const void *val, size_t len)
{
	int r = resp_connect(b);
	if (r)
		return r == -EAGAIN ? -EIO : r;
	size_t kl = strlen(key);
	const char *argv[3] = { "SET", key, val };
	size_t lens[3] = { 3, kl, len };
	redisReply *rep = resp_command(b, 3, argv, lens);
	if (!rep)
		return -EIO;
	if ((rep->type == REDIS_REPLY_STRING && rep->len == kl && !memcmp(rep->str, key, kl)) ||
	    rep->type == REDIS_REPLY_NIL ||	/* the same value is stored already */
	    (rep->type == REDIS_REPLY_STATUS && !strcmp(rep->str, "OK"))) {
		r = 0;
	} else if (rep->type == REDIS_REPLY_ERROR) {
		r = write_refused(b, "SET", key, rep->str);
	} else {
		backend_set_error(b, "SET %s: unexpected reply (type %d)", key, rep->type);
		r = -EIO;
	}
	freeReplyObject(rep);
	return r;
}

static int zdb_del(struct backend *b, const char *key)
{
	int r = resp_connect(b);
	if (r)
		return r == -EAGAIN ? -EIO : r;
	const char *argv[2] = { "DEL", key };
	redisReply *rep = resp_command(b, 2, argv, NULL);
	if (!rep)
		return -EIO;
	if ((rep->type == REDIS_REPLY_STATUS && !strcmp(rep->str, "OK")) ||
	    (rep->type == REDIS_REPLY_ERROR && !strcmp(rep->str, "Key not found")))
		r = 0;
	else if (rep->type == REDIS_REPLY_ERROR)
		r = write_refused(b, "DEL", key, rep->str);
	else {
		backend_set_error(b, "DEL %s: unexpected reply (type %d)", key, rep->type);
		r = -EIO;
	}
	freeReplyObject(rep);
	return r;
}

/* One SCAN reply's entries: cb for those whose key starts with prefix.
 * Returns cb's non-zero value, 0, or -EIO for a malformed entry
 * (recorded). */
static int scan_entries(struct backend *b, const redisReply *list, const char *prefix,
			int (*cb)(void *arg, const char *key, uint64_t size), void *arg)
{
	size_t pl = strlen(prefix);
	for (size_t i = 0; i < list->elements; i++) {
		const redisReply *e = list->element[i];
		if (e->type != REDIS_REPLY_ARRAY || e->elements < 2 ||
		    e->element[0]->type != REDIS_REPLY_STRING ||
		    e->element[1]->type != REDIS_REPLY_INTEGER) {
			backend_set_error(b, "SCAN: unexpected entry (not [key, size, timestamp])");
			return -EIO;
		}
		const redisReply *k = e->element[0];
		/* another program's key in the namespace may be binary: a key
		 * with a NUL is no qsfs key (hiredis ends every string with one) */
		if (k->len < pl || memcmp(k->str, prefix, pl) || memchr(k->str, 0, k->len))
			continue;
		long long size = e->element[1]->integer;
		int stop = cb(arg, k->str, (uint64_t)(size > 0 ? size : 0));
		if (stop)
			return stop;
	}
	return 0;
}

/* SCAN, then SCAN <cursor> until "No more data"; 0-db walks its index in
 * write order (a key written meanwhile may come again later in the walk,
 * backend.h allows that). */
static int zdb_scan(struct backend *b, const char *prefix,
		    int (*cb)(void *arg, const char *key, uint64_t size), void *arg)
{
	if (resp_connect(b))
		return -EIO;
	char cursor[64];
	size_t clen = 0;
	for (;;) {
		const char *argv[2] = { "SCAN", cursor };
		size_t lens[2] = { 4, clen };
		redisReply *rep = resp_command(b, clen ? 2 : 1, argv, lens);
		if (!rep)
			return -EIO;
		if (rep->type == REDIS_REPLY_ERROR && !strcmp(rep->str, "No more data")) {
			freeReplyObject(rep);
			return 0;
		}
		const redisReply *c = rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 ?
				      rep->element[0] : NULL;
		if (!c || c->type != REDIS_REPLY_STRING || !c->len || c->len > sizeof cursor ||
		    rep->element[1]->type != REDIS_REPLY_ARRAY) {
			backend_set_error(b, "SCAN: unexpected reply%s%.100s", resp_err_sep(rep),
					  resp_err_text(rep));
			freeReplyObject(rep);
			return -EIO;
		}
		if (c->len == clen && !memcmp(c->str, cursor, clen)) {
			backend_set_error(b, "SCAN: the cursor does not move on");
			freeReplyObject(rep);
			return -EIO;
		}
		memcpy(cursor, c->str, c->len);
		clen = c->len;
		int r = scan_entries(b, rep->element[1], prefix, cb, arg);
		freeReplyObject(rep);
		if (r)
			return r;
	}
}

/* The number after "name: " on a line of text t (len bytes), or -1. */
static long long info_field(const char *t, size_t len, const char *name)
{
	size_t nl = strlen(name);
	for (const char *p = t, *end = t + len; p < end;) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		if (!eol)
			eol = end;
		if ((size_t)(eol - p) > nl + 2 && !memcmp(p, name, nl) && p[nl] == ':' &&
		    p[nl + 1] == ' ') {
			char num[32];
			size_t n = (size_t)(eol - p) - nl - 2;
			if (n == 0 || n >= sizeof num)
				return -1;
			memcpy(num, p + nl + 2, n);
			num[n] = 0;
			char *q;
			unsigned long long v = strtoull(num, &q, 10);
			return q != num && (*q == 0 || *q == '\r') ? (long long)v : -1;
		}
		p = eol + 1;
	}
	return -1;
}

/* NSINFO namespace: data_size_bytes and data_limits_bytes. */
static int zdb_usage(struct backend *b, uint64_t *used, uint64_t *limit)
{
	int r = resp_connect(b);
	if (r)
		return -EIO;
	const char *argv[2] = { "NSINFO", b->ns };
	redisReply *rep = resp_command(b, 2, argv, NULL);
	if (!rep)
		return -EIO;
	long long u = -1, l = -1;
	if (rep->type == REDIS_REPLY_STRING) {
		u = info_field(rep->str, rep->len, "data_size_bytes");
		l = info_field(rep->str, rep->len, "data_limits_bytes");
	}
	r = u >= 0 && l >= 0 ? 0 : -EIO;
	if (r && rep->type == REDIS_REPLY_STRING)
		backend_set_error(b, "NSINFO %s: no data_size_bytes and data_limits_bytes in the "
				  "reply", b->ns);
	else if (r)
		backend_set_error(b, "NSINFO %s: unexpected reply%s%.100s", b->ns,
				  resp_err_sep(rep), resp_err_text(rep));
	else {
		*used = (uint64_t)u;
		*limit = (uint64_t)l;
	}
	freeReplyObject(rep);
	return r;
}

const struct backend_ops backend_zdb_ops = {
	.put = zdb_put,
	.get = resp_get,
	.del = zdb_del,
	.exists = resp_exists,
	.ping = resp_ping,
	.scan = zdb_scan,
	.usage = zdb_usage,
	.handshake = zdb_handshake,
};
