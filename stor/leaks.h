/* stor/leaks.h - the leak check: keys of the volume on the backends that
 * nothing refers to (GCCHECK, qsfs-ctl gc --check [--fix]).
 *
 * Every key under "VOL/" on every usable backend is listed (backend_scan)
 * and sorted by the object it belongs to. Besides objects, the volume has
 * VOL/catalog and VOL/lease (replica.h), never leaks; its head record
 * (qsfs/head/NAME) is not under VOL/ and not counted. Temp files of dir://
 * puts are not listed (stor sweeps them at start). Any other key under
 * VOL/ is counted as unknown and never touched. Classes:
 *   unreferenced  an object (metadata and shards) the catalog does not list
 *                 and no job is queued for: a segment never listed, a
 *                 segment in a removed range without a queued deletion, a
 *                 checkpoint outside the catalog's window without one;
 *   stale         shards of a listed object that its newest metadata does
 *                 not account for: another generation (a repair while a
 *                 backend was away, or one interrupted), a backend the
 *                 metadata does not place that shard on, or a piece
 *                 beyond the shard's count;
 *   orphan        shards of an unlisted name with no metadata on any
 *                 backend (an upload killed before its metadata).
 *
 * Safety (fix): a false deletion loses data, a missed one only costs space.
 *  - the catalog and the job list are copied before listing; a name with a
 *    job then or now, or that the catalog lists now, is left alone;
 *  - each deletion first claims the name (hooks.claim: no job queued or in
 *    flight, no scrub on it; until release no upload, deletion or scrub of
 *    it starts), then checks the catalog and the metadata again;
 *  - orphans go only when every configured backend was listed and answers
 *    that it has no metadata, and only for names no upload can be writing
 *    (a segment id at most the catalog's seg_hi or in a removed range, a
 *    checkpoint older than the newest in the window); others are kept;
 *  - stale shards are checked against the metadata read again after the
 *    claim; unreferenced objects go with obj_delete, then any listed key
 *    of theirs it did not reach;
 *  - a node whose lease another holds (fenced) does not check: its catalog
 *    is not the volume's (the caller refuses).
 */
#ifndef QSFS_STOR_LEAKS_H
#define QSFS_STOR_LEAKS_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>

#include "catalog.h"
#include "objstore.h"

#define LEAK_MAX_BACKENDS 64

enum leak_class { LEAK_UNREF, LEAK_STALE, LEAK_ORPHAN, LEAK_NCLASS };

/* What the check needs from the daemon; every hook takes and drops the
 * daemon's own locks. */
struct leak_hooks {
	void *arg;
	/* a copy of the catalog (catalog_free it) */
	int (*catalog_copy)(void *arg, struct catalog *out);
	/* does the catalog, now, refer to name (leak_catalog_ref != 0)? */
	int (*catalog_ref_now)(void *arg, const char *name);
	/* the objects with a job (upload or deletion) queued or in flight:
	 * a malloc'd array of *n names */
	char (*(*jobs)(void *arg, size_t *n))[OBJ_NAME_MAX];
	/* has name a job queued or in flight now? */
	bool (*job_now)(void *arg, const char *name);
	/* fix: claim name (see above); false: leave it alone */
	bool (*claim)(void *arg, const char *name);
	void (*release)(void *arg, const char *name);
};

/* How the catalog c refers to object name: */
enum leak_ref {
	LEAK_REF_NONE = 0,	/* not at all: never listed */
	LEAK_REF_REMOVED = 1,	/* a segment in a removed range, or a checkpoint
				 * outside the window: its deletion is due */
	LEAK_REF_LISTED = 2,	/* stored and needed */
};
enum leak_ref leak_catalog_ref(const struct catalog *c, const char *name);

/* The last check's numbers (kept by the daemon for STATUS). */
struct leak_totals {
	int64_t at;		/* unix time; 0: never */
	size_t nbackends;
	bool listed[LEAK_MAX_BACKENDS];
	uint64_t bytes[LEAK_MAX_BACKENDS], keys[LEAK_MAX_BACKENDS];	/* all keys of the volume */
	uint64_t leaked_objects, leaked_bytes;	/* found and not removed */
};

/* Check (and with fix, remove) the leaks of the volume os describes,
 * using os's backend handles (one thread). Returns 0 with *report (a JSON
 * object, json_object_put it) and *tot filled, or a negative errno. */
int leak_check(struct objstore *os, const struct leak_hooks *h, bool fix, json_object **report,
	       struct leak_totals *tot);

#endif
