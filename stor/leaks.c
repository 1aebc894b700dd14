/* stor/leaks.c - see leaks.h */
#include "leaks.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "spool.h"

#define LEAK_ITEMS_MAX 1000	/* objects described in the report (the counts say all) */

static const char *const class_name[LEAK_NCLASS] = { "unreferenced", "stale", "orphan" };

enum { K_META, K_SHARD };

/* One key of an object, as listed. */
struct ent {
	char name[OBJ_NAME_MAX];
	char *key;
	uint64_t size, gen;
	uint32_t shard, piece;
	uint8_t bi, kind;
	bool leak;		/* part of the leak found */
	bool gone;		/* removed by fix */
};

struct listing {
	struct objstore *os;
	size_t bi, vlen;	/* the backend listed; strlen(VOL/) */
	struct ent *e;
	size_t n, cap;
	uint64_t bytes[LEAK_MAX_BACKENDS], keys[LEAK_MAX_BACKENDS];
	uint64_t unknown_keys, unknown_bytes;
	char unknown_first[200];
};

/* name as s<id>/c<id> written the one way stor writes it, and its id. */
static bool good_name(const char *name, size_t len, char *out, uint64_t *id)
{
	if (!len || len >= OBJ_NAME_MAX)
		return false;
	memcpy(out, name, len);
	out[len] = 0;
	if (object_name_parse(out, id))
		return false;
	*id &= ~(1ull << 63);
	char again[OBJ_NAME_MAX];
	snprintf(again, sizeof again, "%c%" PRIu64, out[0], *id);
	return !strcmp(again, out);
}

/* A decimal number of s, exactly (no sign, no leading zero), up to end. */
static bool num(const char *s, const char *end, uint64_t *v)
{
	if (s >= end || (*s == '0' && end - s > 1) || end - s > 19)
		return false;
	*v = 0;
	for (; s < end; s++) {
		if (*s < '0' || *s > '9')
			return false;
		*v = *v * 10 + (uint64_t)(*s - '0');
	}
	return true;
}

/* "SHARD.PIECE" or "SHARD.PIECE.gG" (G >= 1) */
static bool shard_part(const char *s, struct ent *e)
{
	const char *d1 = strchr(s, '.');
	if (!d1)
		return false;
	const char *d2 = strchr(d1 + 1, '.'), *end = d2 ? d2 : d1 + strlen(d1);
	uint64_t sh, p, g = 0;
	if (!num(s, d1, &sh) || !num(d1 + 1, end, &p) || sh >= SHARD_MAX || p > UINT32_MAX)
		return false;
	if (d2 && (d2[1] != 'g' || !num(d2 + 2, d2 + strlen(d2), &g) || !g))
		return false;
	e->shard = (uint32_t)sh;
	e->piece = (uint32_t)p;
	e->gen = g;
	return true;
}

static int list_cb(void *arg, const char *key, uint64_t size)
{
	struct listing *l = arg;
	l->bytes[l->bi] += size;
	l->keys[l->bi]++;
	const char *k = key + l->vlen;
	if (!strcmp(k, "catalog") || !strcmp(k, "lease"))
		return 0;	/* the volume's own records */
	struct ent e = { .size = size, .bi = (uint8_t)l->bi };
	uint64_t id;
	bool ok = false;
	if (!strncmp(k, "m/", 2)) {
		e.kind = K_META;
		ok = good_name(k + 2, strlen(k + 2), e.name, &id);
	} else if (!strncmp(k, "o/", 2)) {
		const char *sl = strchr(k + 2, '/');
		e.kind = K_SHARD;
		ok = sl && good_name(k + 2, (size_t)(sl - k - 2), e.name, &id) && shard_part(sl + 1, &e);
	}
	if (!ok) {	/* not a key qsfs writes: counted, never touched */
		if (!l->unknown_keys++)
			snprintf(l->unknown_first, sizeof l->unknown_first, "%s", key);
		l->unknown_bytes += size;
		return 0;
	}
	if (l->n == l->cap) {
		size_t nc = l->cap ? l->cap * 2 : 1024;
		struct ent *ne = realloc(l->e, nc * sizeof *ne);
		if (!ne)
			return -ENOMEM;
		l->e = ne;
		l->cap = nc;
	}
	e.key = strdup(key);
	if (!e.key)
		return -ENOMEM;
	l->e[l->n++] = e;
	return 0;
}

static int ent_cmp(const void *a, const void *b)
{
	const struct ent *x = a, *y = b;
	int c = strcmp(x->name, y->name);
	if (c)
		return c;
	if (x->kind != y->kind)
		return x->kind == K_SHARD ? -1 : 1;	/* shards before metadata */
	return x->bi != y->bi ? (x->bi < y->bi ? -1 : 1) : strcmp(x->key, y->key);
}

enum leak_ref leak_catalog_ref(const struct catalog *c, const char *name)
{
	uint64_t id;
	if (object_name_parse(name, &id))
		return LEAK_REF_NONE;
	id &= ~(1ull << 63);
	if (name[0] == 's') {
		if (catalog_removed(c, id))
			return LEAK_REF_REMOVED;
		return catalog_has(c, name) ? LEAK_REF_LISTED : LEAK_REF_NONE;
	}
	if (catalog_lists(c, name))
		return LEAK_REF_LISTED;
	/* older than the window: trimmed, its deletion due */
	return catalog_has(c, name) ? LEAK_REF_REMOVED : LEAK_REF_NONE;
}

/* Why shard key e is not part of the object p describes, or NULL. */
static const char *stale_why(const struct ent *e, const struct obj_placement *p, char *buf,
			     size_t len)
{
	if (e->kind != K_SHARD)
		return NULL;	/* metadata copies: any generation is the object's */
	if (e->gen != p->gen)
		snprintf(buf, len, "generation %" PRIu64 " shards, the metadata names generation %"
			 PRIu64, e->gen, p->gen);
	else if (e->shard >= p->k + p->m)
		snprintf(buf, len, "shard %u of an object with %u shards", e->shard, p->k + p->m);
	else if (p->backend[e->shard] != (int)e->bi)
		snprintf(buf, len, "shard %u on a backend its metadata does not place it on",
			 e->shard);
	else if (e->piece >= p->pieces[e->shard])
		snprintf(buf, len, "piece %u beyond shard %u's %u pieces", e->piece, e->shard,
			 p->pieces[e->shard]);
	else
		return NULL;
	return buf;
}

/* One object's finding. */
struct item {
	size_t first, last;	/* its entries [first, last) */
	enum leak_class cls;
	char why[400];
	char kept[300];		/* fix: why not removed ("": removed, or no fix) */
	bool removed;
	uint64_t keys, bytes;
};

static bool in_jobs(char (*jobs)[OBJ_NAME_MAX], size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(jobs[i], name))
			return true;
	return false;
}

/* Delete entry e's key on its backend. */
static bool del_ent(struct objstore *os, struct ent *e)
{
	if (os->health && !health_usable(os->health, e->bi))
		return false;
	if (backend_del(os->backends[e->bi], e->key))
		return false;
	e->gone = true;
	return true;
}

/* Fix one item (its name claimed). */
static void fix_item(struct objstore *os, const struct leak_hooks *h, const struct catalog *snap,
		     bool complete, struct ent *e, struct item *it)
{
	const char *name = e[it->first].name;
	char why[1024];
	struct obj_placement p;
	if (it->cls != LEAK_STALE && h->catalog_ref_now(h->arg, name) == LEAK_REF_LISTED) {
		snprintf(it->kept, sizeof it->kept, "the catalog lists it now");
		return;
	}
	if (it->cls == LEAK_STALE) {
		int r = obj_placement(os, name, &p);
		if (r) {
			snprintf(it->kept, sizeof it->kept, "its metadata cannot be read now (%s)",
				 strerror(-r));
			return;
		}
		bool all = true;
		for (size_t i = it->first; i < it->last; i++) {
			char b[200];
			if (e[i].leak && stale_why(&e[i], &p, b, sizeof b))
				all &= del_ent(os, &e[i]);
			else if (e[i].leak)
				e[i].leak = false;	/* the object's now (a repair) */
		}
		it->removed = all;
		if (!all)
			snprintf(it->kept, sizeof it->kept, "some keys could not be deleted");
		return;
	}
	if (it->cls == LEAK_ORPHAN) {
		uint64_t id;
		object_name_parse(name, &id);
		id &= ~(1ull << 63);
		bool settled = name[0] == 's' ? id <= snap->seg_hi || catalog_removed(snap, id)
					      : snap->nck && id < snap->ck[snap->nck - 1].id;
		int r = complete && settled ? obj_placement(os, name, &p) : 0;
		if (!complete)
			snprintf(it->kept, sizeof it->kept, "not every backend was listed (its "
				 "metadata may be on one that was not)");
		else if (!settled)
			snprintf(it->kept, sizeof it->kept, "may be an upload in flight (shards are "
				 "written before the metadata): kept");
		else if (r != -ENOENT)
			snprintf(it->kept, sizeof it->kept, "%s", r ? "not every backend answers "
				 "about its metadata" : "it has metadata now");
		if (it->kept[0])
			return;
		bool all = true;
		for (size_t i = it->first; i < it->last; i++)
			all &= del_ent(os, &e[i]);
		it->removed = all;
		if (!all)
			snprintf(it->kept, sizeof it->kept, "some keys could not be deleted");
		return;
	}
	/* unreferenced: obj_delete, then what it did not reach (stray shards;
	 * metadata that does not open), shards before metadata */
	int r = obj_delete(os, name, why, sizeof why);
	if (r && r != -EBADMSG) {
		snprintf(it->kept, sizeof it->kept, "%.290s", why);
		return;
	}
	bool all = true;
	for (size_t i = it->first; i < it->last; i++)
		all &= del_ent(os, &e[i]);
	it->removed = all;
	if (!all)
		snprintf(it->kept, sizeof it->kept, "some keys could not be deleted");
}

static json_object *counts(uint64_t objects, uint64_t keys, uint64_t bytes, bool with_objects)
{
	json_object *o = json_object_new_object();
	if (with_objects)
		json_object_object_add(o, "objects", json_object_new_uint64(objects));
	json_object_object_add(o, "keys", json_object_new_uint64(keys));
	json_object_object_add(o, "bytes", json_object_new_uint64(bytes));
	return o;
}

int leak_check(struct objstore *os, const struct leak_hooks *h, bool fix, json_object **report,
	       struct leak_totals *tot)
{
	if (os->nbackends > LEAK_MAX_BACKENDS)
		return -EINVAL;
	struct catalog snap;
	memset(&snap, 0, sizeof snap);
	int r = h->catalog_copy(h->arg, &snap);
	if (r)
		return r;
	size_t njobs = 0;
	char (*jobs)[OBJ_NAME_MAX] = h->jobs(h->arg, &njobs);
	struct listing *l = calloc(1, sizeof *l);
	if (!l || !jobs) {
		free(l);
		free(jobs);
		catalog_free(&snap);
		return -ENOMEM;
	}
	l->os = os;
	char prefix[40];
	snprintf(prefix, sizeof prefix, "%s/", os->volhex);
	l->vlen = strlen(prefix);
	memset(tot, 0, sizeof *tot);
	tot->at = (int64_t)time(NULL);
	tot->nbackends = os->nbackends;
	json_object *rep = json_object_new_object(), *bs = json_object_new_array();
	bool complete = true;
	char errs[LEAK_MAX_BACKENDS][200];
	for (size_t i = 0; i < os->nbackends; i++) {
		errs[i][0] = 0;
		if (os->health && !health_usable(os->health, i)) {
			snprintf(errs[i], sizeof errs[i], "down: not listed");
			complete = false;
			continue;
		}
		l->bi = i;
		uint64_t b0 = l->bytes[i];
		size_t n0 = l->n;
		int s = backend_scan(os->backends[i], prefix, list_cb, l);
		if (s == -ENOMEM) {
			r = s;
			break;
		}
		if (s) {
			snprintf(errs[i], sizeof errs[i], "cannot be listed: %.170s",
				 backend_health(os->backends[i]).last_error);
			complete = false;
			/* what it listed before failing is not trusted */
			for (size_t k = n0; k < l->n; k++)
				free(l->e[k].key);
			l->n = n0;
			l->bytes[i] = b0;
			l->keys[i] = 0;
			continue;
		}
		tot->listed[i] = true;
	}
	if (r) {
		for (size_t k = 0; k < l->n; k++)
			free(l->e[k].key);
		free(l->e);
		free(l);
		free(jobs);
		catalog_free(&snap);
		json_object_put(rep);
		json_object_put(bs);
		return r;
	}
	qsort(l->e, l->n, sizeof *l->e, ent_cmp);
	/* SCAN may give a key twice */
	size_t w = 0;
	for (size_t i = 0; i < l->n; i++) {
		if (w && l->e[w - 1].bi == l->e[i].bi && !strcmp(l->e[w - 1].key, l->e[i].key)) {
			l->bytes[l->e[i].bi] -= l->e[i].size;
			l->keys[l->e[i].bi]--;
			free(l->e[i].key);
			continue;
		}
		l->e[w++] = l->e[i];
	}
	l->n = w;

	struct item *items = NULL;
	size_t nitems = 0, capitems = 0;
	uint64_t in_flight = 0;
	json_object *unchecked = json_object_new_array();
	struct ent *e = l->e;
	for (size_t a = 0, b; a < l->n; a = b) {
		for (b = a + 1; b < l->n && !strcmp(e[b].name, e[a].name); b++)
			;
		const char *name = e[a].name;
		if (in_jobs(jobs, njobs, name) || h->job_now(h->arg, name)) {
			in_flight++;	/* an upload or deletion of it is under way */
			continue;
		}
		struct item it = { .first = a, .last = b };
		enum leak_ref ref = leak_catalog_ref(&snap, name);
		if (ref == LEAK_REF_LISTED) {
			struct obj_placement p;
			int pr = obj_placement(os, name, &p);
			if (pr) {
				json_object *u = json_object_new_object();
				json_object_object_add(u, "object", json_object_new_string(name));
				json_object_object_add(u, "why", json_object_new_string(
					pr == -ENOENT ? "listed in the catalog, but no backend has its "
					"metadata (scrub reports it)" : pr == -EBADMSG ? "its metadata "
					"does not open" : "too few backends answer about its metadata"));
				if (json_object_array_length(unchecked) < 100)
					json_object_array_add(unchecked, u);
				else
					json_object_put(u);
				continue;
			}
			for (size_t i = a; i < b; i++) {
				char buf[200];
				const char *y = stale_why(&e[i], &p, buf, sizeof buf);
				size_t wl = strlen(it.why);
				if (y && !strstr(it.why, y) && wl + 3 < sizeof it.why)
					snprintf(it.why + wl, sizeof it.why - wl, "%s%s", wl ? "; " : "", y);
				if (y) {
					e[i].leak = true;
					it.keys++;
					it.bytes += e[i].size;
				}
			}
			if (!it.keys)
				continue;
			it.cls = LEAK_STALE;
		} else {
			if (h->catalog_ref_now(h->arg, name) == LEAK_REF_LISTED)
				continue;	/* stored meanwhile */
			bool meta = false;
			for (size_t i = a; i < b; i++) {
				meta |= e[i].kind == K_META;
				e[i].leak = true;
				it.keys++;
				it.bytes += e[i].size;
			}
			it.cls = meta ? LEAK_UNREF : LEAK_ORPHAN;
			const char *what = ref == LEAK_REF_NONE ? "the catalog never listed it" :
				name[0] == 's' ? "deleted (a removed range in the catalog) but still on "
				"the backends" : "a checkpoint the catalog's window dropped, still on "
				"the backends";
			snprintf(it.why, sizeof it.why, "%s%s", meta ? "" :
				 "shards without metadata on any backend listed; ", what);
		}
		if (nitems == capitems) {
			size_t nc = capitems ? capitems * 2 : 64;
			struct item *ni = realloc(items, nc * sizeof *ni);
			if (!ni) {
				r = -ENOMEM;
				break;
			}
			items = ni;
			capitems = nc;
		}
		items[nitems++] = it;
	}

	/* fix, one object at a time, each claimed */
	for (size_t i = 0; !r && fix && i < nitems; i++) {
		const char *name = e[items[i].first].name;
		if (!h->claim(h->arg, name)) {
			snprintf(items[i].kept, sizeof items[i].kept, "an upload, deletion or scrub of it "
				 "started meanwhile");
			continue;
		}
		fix_item(os, h, &snap, complete, e, &items[i]);
		h->release(h->arg, name);
	}

	/* the report */
	uint64_t cobj[LEAK_NCLASS] = { 0 }, ckeys[LEAK_NCLASS] = { 0 }, cbytes[LEAK_NCLASS] = { 0 };
	uint64_t bkeys[LEAK_MAX_BACKENDS][LEAK_NCLASS], bbytes[LEAK_MAX_BACKENDS][LEAK_NCLASS];
	uint64_t rm_obj = 0, rm_keys = 0, rm_bytes = 0, rmb[LEAK_MAX_BACKENDS] = { 0 };
	uint64_t rmk[LEAK_MAX_BACKENDS] = { 0 };
	memset(bkeys, 0, sizeof bkeys);
	memset(bbytes, 0, sizeof bbytes);
	json_object *objs = json_object_new_array();
	for (size_t i = 0; !r && i < nitems; i++) {
		struct item *it = &items[i];
		cobj[it->cls]++;
		rm_obj += it->removed;
		json_object *bl = json_object_new_array();
		bool seen[LEAK_MAX_BACKENDS] = { false };
		uint64_t keys = 0, bytes = 0;
		for (size_t k = it->first; k < it->last; k++) {
			struct ent *x = &e[k];
			if (!x->leak)
				continue;
			keys++;
			bytes += x->size;
			bkeys[x->bi][it->cls]++;
			bbytes[x->bi][it->cls] += x->size;
			if (x->gone) {
				rm_keys++;
				rm_bytes += x->size;
				rmb[x->bi] += x->size;
				rmk[x->bi]++;
			}
			if (!seen[x->bi])
				json_object_array_add(bl, json_object_new_string(
					backend_name(os->backends[x->bi])));
			seen[x->bi] = true;
		}
		ckeys[it->cls] += keys;
		cbytes[it->cls] += bytes;
		if (i >= LEAK_ITEMS_MAX) {
			json_object_put(bl);
			continue;
		}
		json_object *o = json_object_new_object();
		json_object_object_add(o, "object", json_object_new_string(e[it->first].name));
		json_object_object_add(o, "class", json_object_new_string(class_name[it->cls]));
		json_object_object_add(o, "why", json_object_new_string(it->why));
		json_object_object_add(o, "keys", json_object_new_uint64(keys));
		json_object_object_add(o, "bytes", json_object_new_uint64(bytes));
		json_object_object_add(o, "backends", bl);
		if (fix) {
			json_object_object_add(o, "removed", json_object_new_boolean(it->removed));
			json_object_object_add(o, "kept", json_object_new_string(it->kept));
		}
		json_object_array_add(objs, o);
	}
	uint64_t leaked_obj = 0, leaked_bytes = 0;
	for (int c = 0; c < LEAK_NCLASS; c++) {
		leaked_obj += cobj[c];
		leaked_bytes += cbytes[c];
	}
	for (size_t i = 0; i < os->nbackends; i++) {
		tot->bytes[i] = tot->listed[i] ? l->bytes[i] - rmb[i] : 0;
		tot->keys[i] = tot->listed[i] ? l->keys[i] - rmk[i] : 0;
		json_object *b = json_object_new_object(), *lk = json_object_new_object();
		json_object_object_add(b, "name", json_object_new_string(backend_name(os->backends[i])));
		json_object_object_add(b, "listed", json_object_new_boolean(tot->listed[i]));
		json_object_object_add(b, "error", json_object_new_string(errs[i]));
		json_object_object_add(b, "keys", json_object_new_uint64(tot->keys[i]));
		json_object_object_add(b, "bytes", json_object_new_uint64(tot->bytes[i]));
		for (int c = 0; c < LEAK_NCLASS; c++)
			json_object_object_add(lk, class_name[c], counts(0, bkeys[i][c], bbytes[i][c],
									false));
		json_object_object_add(b, "leaks", lk);
		json_object_object_add(b, "removed_bytes", json_object_new_uint64(rmb[i]));
		json_object_array_add(bs, b);
	}
	json_object *lk = json_object_new_object();
	for (int c = 0; c < LEAK_NCLASS; c++)
		json_object_object_add(lk, class_name[c], counts(cobj[c], ckeys[c], cbytes[c], true));
	json_object_object_add(rep, "volume", json_object_new_string(os->volhex));
	json_object_object_add(rep, "at", json_object_new_int64(tot->at));
	json_object_object_add(rep, "fix", json_object_new_boolean(fix));
	json_object_object_add(rep, "complete", json_object_new_boolean(complete));
	json_object_object_add(rep, "backends", bs);
	json_object_object_add(rep, "leaks", lk);
	json_object_object_add(rep, "leaked_objects", json_object_new_uint64(leaked_obj));
	json_object_object_add(rep, "leaked_bytes", json_object_new_uint64(leaked_bytes));
	json_object_object_add(rep, "removed_objects", json_object_new_uint64(rm_obj));
	json_object_object_add(rep, "removed_keys", json_object_new_uint64(rm_keys));
	json_object_object_add(rep, "removed_bytes", json_object_new_uint64(rm_bytes));
	json_object_object_add(rep, "objects", objs);
	json_object_object_add(rep, "in_flight", json_object_new_uint64(in_flight));
	json_object_object_add(rep, "not_checked", unchecked);
	json_object_object_add(rep, "unknown_keys", json_object_new_uint64(l->unknown_keys));
	json_object_object_add(rep, "unknown_bytes", json_object_new_uint64(l->unknown_bytes));
	json_object_object_add(rep, "unknown_first", json_object_new_string(l->unknown_first));
	/* what stays: found and not removed */
	uint64_t left_obj = 0, left_bytes = 0;
	for (size_t i = 0; i < nitems; i++) {
		if (items[i].removed)
			continue;
		left_obj++;
		for (size_t k = items[i].first; k < items[i].last; k++)
			left_bytes += e[k].leak && !e[k].gone ? e[k].size : 0;
	}
	tot->leaked_objects = left_obj;
	tot->leaked_bytes = left_bytes;
	json_object_object_add(rep, "left_objects", json_object_new_uint64(left_obj));
	json_object_object_add(rep, "left_bytes", json_object_new_uint64(left_bytes));
	for (size_t k = 0; k < l->n; k++)
		free(l->e[k].key);
	free(l->e);
	free(l);
	free(items);
	free(jobs);
	catalog_free(&snap);
	if (r) {
		json_object_put(rep);
		return r;
	}
	*report = rep;
	return 0;
}
