/* common/storproto.h - the requests qsfs-stor's control socket takes and
 * the shape of their replies: the one definition that the daemon's
 * dispatcher (stor/) and the client (storclient.h) both use, so the two
 * cannot drift apart.
 *
 * A request is one line: a word, then its arguments, separated by single
 * spaces, ending in '\n'. A connection may carry any number of requests,
 * one after the other (the client waits for each reply before it sends
 * the next). Every reply is one line:
 *   OK [text]      done (text: what the request returns, e.g. a number)
 *   YES | NO       an answer (CONFIRMED)
 *   {...}          one line of JSON (STATUS, CATALOG, GCCHECK)
 *   ERR message    refused or failed, saying why
 *
 *   PING                  "OK": stor answers (cheap; nothing is read)
 *   STATUS                the daemon's state, JSON
 *   STORE NAME PATH       durably queue an upload of the file PATH as
 *                         object NAME; "OK" once journaled
 *   RETRIEVE NAME PATH    fetch object NAME into PATH (atomically); blocks
 *                         for as long as the backends take
 *   DELETE NAME           durably queue the deletion of object NAME
 *   CONFIRMED NAME        "YES" when NAME is safely remote, else "NO"
 *   CONFIRMS LO HI        which segments s<LO>..s<HI> are safely remote:
 *                         "OK" then ranges "A-B" or single ids, separated
 *                         by commas (e.g. "OK 3-7,9"; "OK" alone: none).
 *                         HI - LO < STORPROTO_CONFIRMS_SPAN
 *   GCFLOOR               "OK <segment id>": the remote floor of garbage
 *                         collection
 *   CATALOG               the volume catalog, JSON
 *   SCRUB | REPAIR        start a scrub pass: "OK" or "OK already running"
 *   LEASE                 look at the writer lease now: "OK"
 *   GCCHECK [FIX]         the leak check, JSON
 *   LOST NAME             segment NAME was lost before it was handed off
 *                         (its writer lost its file): "OK LOST" once the
 *                         loss is journaled (the catalog records it, status
 *                         names it), "OK STORED" when stor has it stored
 *                         after all; ERR while an upload of it is queued
 * NAME is an object name: s<id> (a segment) or c<id> (a checkpoint), id
 * a decimal number > 0. PATH is absolute and may not hold a newline.
 */
#ifndef QSFS_COMMON_STORPROTO_H
#define QSFS_COMMON_STORPROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STORPROTO_LINE_MAX 8192		/* a request line, newline included */
#define STORPROTO_NAME_MAX 24	/* s or c, up to 21 digits, NUL */
#define STORPROTO_CONFIRMS_SPAN 1000000ull
/* The exit status of the segment-lost hand-off (hooks/README.md) that says
 * "storage has this segment stored after all": LOST answered OK STORED. */
#define STORPROTO_HOOK_STORED 10	/* not 3: qsfs-ctl exits 3 when stor is not running */

enum stor_op {
	STOR_PING,
	STOR_STATUS,
	STOR_STORE,
	STOR_RETRIEVE,
	STOR_DELETE,
	STOR_CONFIRMED,
	STOR_CONFIRMS,
	STOR_GCFLOOR,
	STOR_CATALOG,
	STOR_SCRUB,
	STOR_REPAIR,
	STOR_LEASE,
	STOR_GCCHECK,
	STOR_LOST,
	STOR_NOPS
};

/* The reply a request gets when it works. */
enum stor_reply { STOR_REPLY_OK, STOR_REPLY_YESNO, STOR_REPLY_JSON };

struct stor_req {
	enum stor_op op;
	char name[STORPROTO_NAME_MAX];	/* STORE, RETRIEVE, DELETE, CONFIRMED, LOST */
	const char *path;		/* STORE, RETRIEVE (parse: points into the line) */
	uint64_t lo, hi;		/* CONFIRMS */
	bool fix;			/* GCCHECK */
};

/* The request's word ("STORE") and the reply it gets when it works. */
const char *storproto_word(enum stor_op op);
enum stor_reply storproto_reply(enum stor_op op);

/* Is name an object name (s<id> or c<id>, id > 0)? *id: the number. */
bool storproto_object_name(const char *name, char *kind, uint64_t *id);

/* Parse one request line (without its newline) into rq. line is modified
 * and rq->path points into it. Returns 0, or -EINVAL with err saying what
 * is wrong in words the peer is sent back ("unknown request 'X'",
 * "usage: STORE NAME PATH", ...). Pure. */
int storproto_parse(char *line, struct stor_req *rq, char *err, size_t errlen);

/* Write rq as a request line, newline included, into buf. Returns its
 * length, or -EINVAL when rq would not parse back (bad name, a path that is
 * not absolute or holds a newline, LO > HI, ...), -ENAMETOOLONG when it
 * does not fit. Pure. */
int storproto_format(const struct stor_req *rq, char *buf, size_t cap);

/* Parse a CONFIRMS reply's text after "OK" ("3-7,9", or "") and call fn
 * for every id in it, in order. Returns 0, or -EPROTO on malformed text
 * (ids out of [lo, hi], out of order, not numbers). */
int storproto_confirms_each(const char *text, uint64_t lo, uint64_t hi,
			    void (*fn)(void *arg, uint64_t id), void *arg);

/* A CONFIRMS reply's text: appends ranges "A-B" / "A" for the ids of lo..hi
 * for which yes(arg, id) is true. Returns the text (malloc'd, "" when
 * none), or NULL when out of memory. */
char *storproto_confirms_text(uint64_t lo, uint64_t hi, bool (*yes)(void *arg, uint64_t id),
			      void *arg);

#endif
