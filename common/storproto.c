/* common/storproto.c - see storproto.h. One table says, for every request,
 * its word, its arguments and its reply; parse and format both walk it. */
#include "storproto.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum args { A_NONE, A_NAME, A_NAME_PATH, A_RANGE, A_FIX };

static const struct {
	const char *word;
	enum args args;
	enum stor_reply reply;
	const char *usage;
} ops[STOR_NOPS] = {
	[STOR_PING] = { "PING", A_NONE, STOR_REPLY_OK, "PING" },
	[STOR_STATUS] = { "STATUS", A_NONE, STOR_REPLY_JSON, "STATUS" },
	[STOR_STORE] = { "STORE", A_NAME_PATH, STOR_REPLY_OK, "STORE s<id>|c<id> /absolute/path" },
	[STOR_RETRIEVE] = { "RETRIEVE", A_NAME_PATH, STOR_REPLY_OK,
			    "RETRIEVE s<id>|c<id> /absolute/path" },
	[STOR_DELETE] = { "DELETE", A_NAME, STOR_REPLY_OK, "DELETE s<id>|c<id>" },
	[STOR_CONFIRMED] = { "CONFIRMED", A_NAME, STOR_REPLY_YESNO, "CONFIRMED s<id>|c<id>" },
	[STOR_CONFIRMS] = { "CONFIRMS", A_RANGE, STOR_REPLY_OK, "CONFIRMS LO HI" },
	[STOR_GCFLOOR] = { "GCFLOOR", A_NONE, STOR_REPLY_OK, "GCFLOOR" },
	[STOR_CATALOG] = { "CATALOG", A_NONE, STOR_REPLY_JSON, "CATALOG" },
	[STOR_SCRUB] = { "SCRUB", A_NONE, STOR_REPLY_OK, "SCRUB" },
	[STOR_REPAIR] = { "REPAIR", A_NONE, STOR_REPLY_OK, "REPAIR" },
	[STOR_LEASE] = { "LEASE", A_NONE, STOR_REPLY_OK, "LEASE" },
	[STOR_GCCHECK] = { "GCCHECK", A_FIX, STOR_REPLY_JSON, "GCCHECK [FIX]" },
	[STOR_LOST] = { "LOST", A_NAME, STOR_REPLY_OK, "LOST s<id>" },
};

const char *storproto_word(enum stor_op op)
{
	return op < STOR_NOPS ? ops[op].word : "?";
}

enum stor_reply storproto_reply(enum stor_op op)
{
	return op < STOR_NOPS ? ops[op].reply : STOR_REPLY_OK;
}

/* A decimal number > 0 without a leading zero, at most 2^63 - 1 (the top bit
 * of an object code tells checkpoints apart). */
static bool parse_id(const char *p, uint64_t *id)
{
	uint64_t v = 0;
	if (!*p || *p == '0')
		return false;
	for (; *p; p++) {
		if (*p < '0' || *p > '9' || v > (UINT64_MAX >> 1) / 10)
			return false;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	if (v >> 63)
		return false;
	*id = v;
	return true;
}

bool storproto_object_name(const char *name, char *kind, uint64_t *id)
{
	if ((name[0] != 's' && name[0] != 'c') || strlen(name) > 21 || !parse_id(name + 1, id))
		return false;
	if (kind)
		*kind = name[0];
	return true;
}

/* A number for CONFIRMS: like an id, but 0 is not refused here. */
static bool parse_u64(const char *p, uint64_t *v)
{
	if (!strcmp(p, "0")) {
		*v = 0;
		return true;
	}
	return parse_id(p, v);
}

int storproto_parse(char *line, struct stor_req *rq, char *err, size_t errlen)
{
	memset(rq, 0, sizeof *rq);
	char *save = NULL;	/* strtok_r: requests are parsed on many threads */
	char *word = strtok_r(line, " ", &save), *a1 = strtok_r(NULL, " ", &save),
	     *rest = strtok_r(NULL, "", &save);
	if (!word) {
		snprintf(err, errlen, "empty request");
		return -EINVAL;
	}
	int op = 0;
	while (op < STOR_NOPS && strcmp(ops[op].word, word))
		op++;
	if (op == STOR_NOPS) {
		snprintf(err, errlen, "unknown request '%.64s'", word);
		return -EINVAL;
	}
	rq->op = (enum stor_op)op;
	bool ok = false;
	uint64_t id;
	switch (ops[op].args) {
	case A_NONE:
		ok = !a1;
		break;
	case A_FIX:
		ok = !rest && (!a1 || !strcmp(a1, "FIX"));
		rq->fix = a1 != NULL;
		break;
	case A_NAME:
	case A_NAME_PATH:
		ok = a1 && storproto_object_name(a1, NULL, &id) &&
		     (ops[op].args == A_NAME ? !rest : rest && rest[0] == '/');
		if (ok) {
			snprintf(rq->name, sizeof rq->name, "%s", a1);
			rq->path = rest;
		}
		break;
	case A_RANGE: {
		char *a2 = rest ? strtok_r(rest, " ", &save) : NULL;
		ok = a2 && !strtok_r(NULL, " ", &save) && parse_u64(a1, &rq->lo) &&
		     parse_u64(a2, &rq->hi) && rq->lo <= rq->hi &&
		     rq->hi - rq->lo < STORPROTO_CONFIRMS_SPAN;
		break;
	}
	}
	if (!ok) {
		snprintf(err, errlen, "usage: %s", ops[op].usage);
		return -EINVAL;
	}
	return 0;
}

int storproto_format(const struct stor_req *rq, char *buf, size_t cap)
{
	if (rq->op >= STOR_NOPS)
		return -EINVAL;
	const char *w = ops[rq->op].word;
	uint64_t id;
	int n;
	switch (ops[rq->op].args) {
	case A_NONE:
		n = snprintf(buf, cap, "%s\n", w);
		break;
	case A_FIX:
		n = snprintf(buf, cap, "%s%s\n", w, rq->fix ? " FIX" : "");
		break;
	case A_NAME:
		if (!storproto_object_name(rq->name, NULL, &id))
			return -EINVAL;
		n = snprintf(buf, cap, "%s %s\n", w, rq->name);
		break;
	case A_NAME_PATH:
		if (!storproto_object_name(rq->name, NULL, &id) || !rq->path ||
		    rq->path[0] != '/' || strchr(rq->path, '\n'))
			return -EINVAL;
		n = snprintf(buf, cap, "%s %s %s\n", w, rq->name, rq->path);
		break;
	case A_RANGE:
		if (rq->lo > rq->hi || rq->hi - rq->lo >= STORPROTO_CONFIRMS_SPAN ||
		    rq->hi >> 63)
			return -EINVAL;
		n = snprintf(buf, cap, "%s %" PRIu64 " %" PRIu64 "\n", w, rq->lo, rq->hi);
		break;
	default:
		return -EINVAL;
	}
	if (n < 0 || (size_t)n >= cap || (size_t)n >= STORPROTO_LINE_MAX)
		return -ENAMETOOLONG;
	return n;
}

int storproto_confirms_each(const char *text, uint64_t lo, uint64_t hi,
			    void (*fn)(void *arg, uint64_t id), void *arg)
{
	const char *p = text;
	uint64_t next = lo;	/* ranges come in order: each starts at or after it */
	while (*p == ' ')
		p++;
	while (*p) {
		char *end;
		if (*p < '0' || *p > '9')
			return -EPROTO;
		errno = 0;
		uint64_t a = strtoull(p, &end, 10), b = a;
		if (errno)
			return -EPROTO;
		p = end;
		if (*p == '-') {
			p++;
			if (*p < '0' || *p > '9')
				return -EPROTO;
			b = strtoull(p, &end, 10);
			if (errno)
				return -EPROTO;
			p = end;
		}
		if (a < next || b < a || b > hi)
			return -EPROTO;
		if (*p == ',')
			p++;
		else if (*p)
			return -EPROTO;
		for (uint64_t id = a;; id++) {
			fn(arg, id);
			if (id == b)
				break;
		}
		next = b + 1;
		if (b == UINT64_MAX)
			break;
	}
	return 0;
}

char *storproto_confirms_text(uint64_t lo, uint64_t hi, bool (*yes)(void *arg, uint64_t id),
			      void *arg)
{
	size_t len = 0, cap = 64;
	char *s = malloc(cap);
	if (!s)
		return NULL;
	s[0] = 0;
	for (uint64_t id = lo; id <= hi && id >= lo; id++) {
		if (!yes(arg, id))
			continue;
		uint64_t b = id;
		while (b < hi && yes(arg, b + 1))
			b++;
		char part[48];
		int n = b == id ? snprintf(part, sizeof part, "%s%" PRIu64, len ? "," : "", id)
				: snprintf(part, sizeof part, "%s%" PRIu64 "-%" PRIu64,
					   len ? "," : "", id, b);
		if (len + (size_t)n + 1 > cap) {
			while (len + (size_t)n + 1 > cap)
				cap *= 2;
			char *ns = realloc(s, cap);
			if (!ns) {
				free(s);
				return NULL;
			}
			s = ns;
		}
		memcpy(s + len, part, (size_t)n + 1);
		len += (size_t)n;
		id = b;
		if (b == hi)
			break;
	}
	return s;
}
