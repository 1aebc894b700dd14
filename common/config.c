/* common/config.c - see config.h. The schema is the table below; the walk
 * is generic over it. */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "yamlfile.h"

#include "units.h"

enum ftype { T_STR, T_PATH, T_SIZE, T_UINT, T_BOOL, T_FRACTION, T_COMPRESSION, T_HANDOFF, T_BACKENDS, T_MAP };

struct field {
	const char *name;
	enum ftype type;
	size_t off;		/* into struct qsfs_config */
	bool required;
	uint64_t min, max;	/* T_UINT, T_SIZE (max 0 = none) */
	const struct field *sub;	/* T_MAP */
};

#define OFF(m) offsetof(struct qsfs_config, m)

static const struct field cache_fields[] = {
	{ "dir", T_PATH, OFF(cache.dir), true, 0, 0, NULL },
	{ "segment_size", T_SIZE, OFF(cache.segment_size), false, 4096, 1ull << 32, NULL },
	{ "max_size", T_SIZE, OFF(cache.max_size), false, 0, 0, NULL },
	{ "disk_reserve", T_SIZE, OFF(cache.disk_reserve), false, 0, 16ull << 30, NULL },
	{ "handoff", T_HANDOFF, OFF(cache.handoff), false, 0, 0, NULL },
	{ "hook", T_PATH, OFF(cache.hook), false, 0, 0, NULL },
	{ "hook_timeout", T_UINT, OFF(cache.hook_timeout), false, 1, 86400, NULL },
	{ "max_segment_age", T_UINT, OFF(cache.max_segment_age), false, 0, 86400, NULL },
	{ "gc_target", T_FRACTION, OFF(cache.gc_target), false, 0, 0, NULL },
	{ "gc_rate", T_SIZE, OFF(cache.gc_rate), false, 0, 0, NULL },
	{ "gc_interval", T_UINT, OFF(cache.gc_interval), false, 0, 86400, NULL },
	{ NULL, 0, 0, false, 0, 0, NULL },
};

static const struct field fs_fields[] = {
	{ "mountpoint", T_PATH, OFF(fs.mountpoint), false, 0, 0, NULL },
	{ "size", T_SIZE, OFF(fs.size), false, 0, 0, NULL },
	{ "allow_other", T_BOOL, OFF(fs.allow_other), false, 0, 0, NULL },
	{ "restore_wait", T_UINT, OFF(fs.restore_wait), false, 0, 86400, NULL },
	{ "socket", T_PATH, OFF(fs.socket), false, 0, 0, NULL },
	{ "lease_timeout", T_UINT, OFF(fs.lease_timeout), false, 3, 86400, NULL },
	{ NULL, 0, 0, false, 0, 0, NULL },
};

static const struct field stor_fields[] = {
	{ "socket", T_PATH, OFF(stor.socket), true, 0, 0, NULL },
	{ "state_dir", T_PATH, OFF(stor.state_dir), true, 0, 0, NULL },
	{ "data_shards", T_UINT, OFF(stor.data_shards), false, 1, 32, NULL },
	{ "parity_shards", T_UINT, OFF(stor.parity_shards), false, 1, 16, NULL },
	{ "compression", T_COMPRESSION, OFF(stor.compression), false, 0, 0, NULL },
	{ "workers", T_UINT, OFF(stor.workers), false, 0, 256, NULL },
	{ "drain_timeout", T_UINT, OFF(stor.drain_timeout), false, 0, 31536000, NULL },
	{ "upload_nice", T_UINT, OFF(stor.upload_nice), false, 0, 19, NULL },
	{ "scrub_interval", T_UINT, OFF(stor.scrub_interval), false, 0, 31536000, NULL },
	{ "check_interval", T_UINT, OFF(stor.check_interval), false, 0, 31536000, NULL },
	{ "scrub_rate", T_SIZE, OFF(stor.scrub_rate), false, 1 << 20, 0, NULL },
	{ "min_shards", T_UINT, OFF(stor.min_shards), false, 0, 48, NULL },
	{ "backends", T_BACKENDS, 0, true, 0, 0, NULL },
	{ NULL, 0, 0, false, 0, 0, NULL },
};

static const struct field top_fields[] = {
	{ "volume", T_STR, OFF(volume), true, 0, 0, NULL },
	{ "key_file", T_PATH, OFF(key_file), false, 0, 0, NULL },
	{ "passphrase_file", T_PATH, OFF(passphrase_file), false, 0, 0, NULL },
	{ "cache", T_MAP, 0, true, 0, 0, cache_fields },
	{ "fs", T_MAP, 0, false, 0, 0, fs_fields },
	{ "stor", T_MAP, 0, true, 0, 0, stor_fields },
	{ NULL, 0, 0, false, 0, 0, NULL },
};

struct ctx {
	const char *file;
	yaml_document_t *doc;
	char *err;
	size_t errlen;
	struct qsfs_config *cfg;
	bool handoff_given;	/* cache.handoff was in the file */
};

static int fail(struct ctx *x, const yaml_node_t *n, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(struct ctx *x, const yaml_node_t *n, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = yamlfile_vfail(x->err, x->errlen, x->file, n, fmt, ap);
	va_end(ap);
	return r;
}

static int parse_uint(const char *s, uint64_t *v)
{
	if (!*s)
		return -EINVAL;
	uint64_t x = 0;
	for (; *s; s++) {
		if (*s < '0' || *s > '9' || x > (UINT64_MAX - 9) / 10)
			return -EINVAL;
		x = x * 10 + (uint64_t)(*s - '0');
	}
	*v = x;
	return 0;
}

static int set_backends(struct ctx *x, const yaml_node_t *n, const char *name)
{
	if (n->type != YAML_SEQUENCE_NODE)
		return fail(x, n, "%s: expected a list of backend URLs (lines starting with \"- \")",
			    name);
	struct qsfs_config *c = x->cfg;
	for (yaml_node_item_t *it = n->data.sequence.items.start;
	     it < n->data.sequence.items.top; it++) {
		yaml_node_t *item = yaml_document_get_node(x->doc, *it);
		const char *s = item ? yamlfile_scalar(item) : NULL;
		if (!s || !*s)
			return fail(x, item, "%s: each backend must be a URL string", name);
		if (c->stor.nbackends == CONFIG_MAX_BACKENDS)
			return fail(x, item, "%s: more than %d backends", name, CONFIG_MAX_BACKENDS);
		struct backend_url *u = &c->stor.backends[c->stor.nbackends];
		const char *why;
		int r = backend_url_parse(s, u, &why);
		if (r == -ENOMEM)
			return fail(x, item, "out of memory");
		if (r)
			return fail(x, item, "%s: bad backend URL: %s", name, why);
		c->stor.nbackends++;
		for (size_t i = 0; i + 1 < c->stor.nbackends; i++) {
			struct backend_url *o = &c->stor.backends[i];
			/* redis:// and zdb:// to one server and namespace are one */
			bool same = (o->kind == BACKEND_DIR) == (u->kind == BACKEND_DIR) &&
				    (u->kind == BACKEND_DIR ? !strcmp(o->path, u->path)
							    : !strcmp(o->host, u->host) && o->port == u->port &&
								      !strcmp(o->ns ? o->ns : "", u->ns ? u->ns : ""));
			if (same)
				return fail(x, item, "%s: backend %s is listed twice; every shard "
					    "of a segment must go to a distinct backend", name, u->display);
		}
	}
	return 0;
}

static int set_value(struct ctx *x, const struct field *f, const yaml_node_t *n,
		     const char *name)
{
	uint8_t *base = (uint8_t *)x->cfg;
	if (f->type == T_BACKENDS)
		return set_backends(x, n, name);
	const char *s = yamlfile_scalar(n);
	if (!s)
		return fail(x, n, "%s: expected a single value, not a %s", name,
			    n->type == YAML_MAPPING_NODE ? "mapping" : "list");
	if (!*s)
		return fail(x, n, "%s: has no value (remove the line to use the default)", name);
	uint64_t v;
	switch (f->type) {
	case T_PATH:
		if (s[0] != '/')
			return fail(x, n, "%s: '%s' is not an absolute path", name, s);
		/* fall through */
	case T_STR: {
		char **dst = (char **)(base + f->off);
		free(*dst);
		*dst = strdup(s);
		return *dst ? 0 : fail(x, n, "out of memory");
	}
	case T_SIZE:
		if (parse_size(s, &v))
			return fail(x, n, "%s: '%s' is not a size (e.g. 4096, 512KiB, 64MiB, 20GiB)",
				    name, s);
		if (v < f->min || (f->max && v > f->max)) {
			char lo[32], hi[32];
			format_size(f->min, lo, sizeof lo);
			if (f->max)
				format_size(f->max, hi, sizeof hi);
			return fail(x, n, "%s: %s is out of range (%s to %s)", name, s,
				    f->min ? lo : "0", f->max ? hi : "any size");
		}
		*(uint64_t *)(base + f->off) = v;
		return 0;
	case T_UINT:
		if (parse_uint(s, &v) || v < f->min || v > f->max)
			return fail(x, n, "%s: expected a whole number from %llu to %llu, got '%s'",
				    name, (unsigned long long)f->min, (unsigned long long)f->max, s);
		*(unsigned *)(base + f->off) = (unsigned)v;
		return 0;
	case T_FRACTION: {
		char *end;
		errno = 0;
		double d = strtod(s, &end);
		if (errno || end == s || *end || !(d >= 0.01 && d <= 0.9))
			return fail(x, n, "%s: expected a fraction from 0.01 to 0.9, got '%s'", name, s);
		*(double *)(base + f->off) = d;
		return 0;
	}
	case T_BOOL:
		if (!strcmp(s, "true") || !strcmp(s, "yes"))
			*(bool *)(base + f->off) = true;
		else if (!strcmp(s, "false") || !strcmp(s, "no"))
			*(bool *)(base + f->off) = false;
		else
			return fail(x, n, "%s: expected true or false, got '%s'", name, s);
		return 0;
	case T_COMPRESSION:
		if (!strcmp(s, "none")) {
			*(int *)(base + f->off) = 0;
			return 0;
		}
		if (!strcmp(s, "zstd")) {	/* the default level */
			*(int *)(base + f->off) = 1;
			return 0;
		}
		if (!strncmp(s, "zstd:", 5) && !parse_uint(s + 5, &v) && v >= 1 && v <= 19) {
			*(int *)(base + f->off) = (int)v;
			return 0;
		}
		return fail(x, n, "%s: expected none, zstd or zstd:LEVEL (1 to 19), got '%s'",
			    name, s);
	case T_HANDOFF:
		if (!strcmp(s, "stor") || !strcmp(s, "hook") || !strcmp(s, "none")) {
			*(enum qsfs_handoff *)(base + f->off) = s[0] == 's' ? HANDOFF_STOR :
				s[0] == 'h' ? HANDOFF_HOOK : HANDOFF_NONE;
			x->handoff_given = true;
			return 0;
		}
		return fail(x, n, "%s: expected stor, hook or none, got '%s'", name, s);
	default:
		return fail(x, n, "%s: internal error", name);
	}
}

/* Check the mapping map against fields. where is the node a missing key is
 * reported at: the section's own key (or the root). */
static int walk(struct ctx *x, const yaml_node_t *map, const struct field *fields,
		const char *prefix, const yaml_node_t *where)
{
	if (map->type != YAML_MAPPING_NODE)
		return fail(x, map, "%s: expected a mapping of 'key: value' lines",
			    *prefix ? prefix : "the file");
	bool seen[16] = { false };
	for (yaml_node_pair_t *p = map->data.mapping.pairs.start;
	     p < map->data.mapping.pairs.top; p++) {
		yaml_node_t *k = yaml_document_get_node(x->doc, p->key);
		yaml_node_t *v = yaml_document_get_node(x->doc, p->value);
		const char *key = k ? yamlfile_scalar(k) : NULL;
		if (!key || !v)
			return fail(x, k, "keys must be plain names");
		char name[128];
		snprintf(name, sizeof name, "%s%s%s", prefix, *prefix ? "." : "", key);
		int i = 0;
		while (fields[i].name && strcmp(fields[i].name, key))
			i++;
		if (!fields[i].name) {
			char known[256] = "";
			for (int j = 0; fields[j].name; j++)
				snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s",
					 j ? ", " : "", fields[j].name);
			return fail(x, k, "unknown key '%s' (known here: %s)", name, known);
		}
		if (seen[i])
			return fail(x, k, "'%s' is given twice", name);
		seen[i] = true;
		int r = fields[i].type == T_MAP ? walk(x, v, fields[i].sub, name, k)
						: set_value(x, &fields[i], v, name);
		if (r)
			return r;
	}
	for (int i = 0; fields[i].name; i++)
		if (fields[i].required && !seen[i])
			return fail(x, where, "missing required key '%s%s%s'", prefix,
				    *prefix ? "." : "", fields[i].name);
	return 0;
}

void config_free(struct qsfs_config *c)
{
	free(c->file);
	free(c->volume);
	free(c->key_file);
	free(c->passphrase_file);
	free(c->cache.dir);
	free(c->cache.hook);
	free(c->fs.mountpoint);
	free(c->fs.socket);
	free(c->stor.socket);
	free(c->stor.state_dir);
	for (size_t i = 0; i < c->stor.nbackends; i++)
		backend_url_free(&c->stor.backends[i]);
	memset(c, 0, sizeof *c);
}

const char *config_default_path(void)
{
	const char *e = getenv("QSFS_CONFIG");
	return e && *e ? e : "/etc/qsfs/qsfs.yaml";
}

int config_load(const char *path, struct qsfs_config *cfg, char *err, size_t errlen)
{
	memset(cfg, 0, sizeof *cfg);
	cfg->cache.segment_size = 64ull << 20;
	cfg->cache.hook_timeout = 120;
	cfg->cache.disk_reserve = 32ull << 20;
	cfg->fs.restore_wait = 60;
	cfg->fs.lease_timeout = 60;
	cfg->cache.max_segment_age = 60;
	cfg->cache.gc_target = 0.2;
	cfg->cache.gc_rate = 64ull << 20;
	cfg->cache.gc_interval = 30;
	cfg->stor.data_shards = 4;
	cfg->stor.parity_shards = 2;
	cfg->stor.compression = 1;
	cfg->stor.upload_nice = 10;
	cfg->stor.scrub_interval = 7 * 86400;
	cfg->stor.check_interval = 600;
	cfg->stor.scrub_rate = 100ull << 20;
	struct ctx x = { .file = path, .err = err, .errlen = errlen, .cfg = cfg };
	yaml_document_t doc;
	int r = yamlfile_load(path, &doc, err, errlen);
	if (r == -ENOENT) {
		size_t n = strlen(err);
		snprintf(err + n, errlen - n, " (give the configuration with -c CONFIG or the "
			 "QSFS_CONFIG environment variable)");
	}
	if (r)
		return r;
	x.doc = &doc;
	yaml_node_t *root = yaml_document_get_root_node(&doc);
	if (!root) {
		r = fail(&x, NULL, "the configuration is empty");
		goto out;
	}
	cfg->file = strdup(path);
	r = walk(&x, root, top_fields, "", root);
	if (r)
		goto out;
	if (!x.handoff_given && cfg->cache.hook)
		cfg->cache.handoff = HANDOFF_HOOK;
	if ((cfg->cache.handoff == HANDOFF_HOOK) != (cfg->cache.hook != NULL)) {
		r = fail(&x, NULL, cfg->cache.hook ? "cache.hook is set but cache.handoff is not "
			 "'hook': drop one of them" : "cache.handoff is 'hook' but no cache.hook "
			 "program is set");
		goto out;
	}
	if (!cfg->key_file == !cfg->passphrase_file) {
		r = fail(&x, root, "give exactly one of key_file (32 random bytes) and "
			 "passphrase_file");
		goto out;
	}
	unsigned need = cfg->stor.data_shards + cfg->stor.parity_shards;
	if (cfg->stor.nbackends < need) {
		r = fail(&x, NULL, "stor.backends: %zu configured, but data_shards + parity_shards "
			 "= %u + %u shards each need a distinct backend: configure at least %u",
			 cfg->stor.nbackends, cfg->stor.data_shards, cfg->stor.parity_shards, need);
		goto out;
	}
	if (cfg->stor.min_shards && (cfg->stor.min_shards <= cfg->stor.data_shards ||
				     cfg->stor.min_shards > need)) {
		r = fail(&x, NULL, "stor.min_shards: %u, but it must be 0 (every shard) or between "
			 "data_shards + 1 = %u and data_shards + parity_shards = %u",
			 cfg->stor.min_shards, cfg->stor.data_shards + 1, need);
		goto out;
	}
	if (!cfg->fs.socket) {
		size_t n = strlen(cfg->cache.dir) + sizeof "/fs.sock";
		cfg->fs.socket = malloc(n);
		if (!cfg->fs.socket) {
			r = -ENOMEM;
			goto out;
		}
		snprintf(cfg->fs.socket, n, "%s/fs.sock", cfg->cache.dir);
	}
out:
	yaml_document_delete(&doc);
	if (r)
		config_free(cfg);
	return r;
}
