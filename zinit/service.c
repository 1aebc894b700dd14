/* zinit/service.c - see service.h */
#include "service.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <yaml.h>

#include "../common/yamlfile.h"

#include "cmdline.h"

/* ---- signals ---- */

static const struct {
	const char *name;
	int sig;
} signals[] = {
	{ "SIGHUP", SIGHUP }, { "SIGINT", SIGINT }, { "SIGQUIT", SIGQUIT },
	{ "SIGILL", SIGILL }, { "SIGTRAP", SIGTRAP }, { "SIGABRT", SIGABRT },
	{ "SIGBUS", SIGBUS }, { "SIGFPE", SIGFPE }, { "SIGKILL", SIGKILL },
	{ "SIGUSR1", SIGUSR1 }, { "SIGSEGV", SIGSEGV }, { "SIGUSR2", SIGUSR2 },
	{ "SIGPIPE", SIGPIPE }, { "SIGALRM", SIGALRM }, { "SIGTERM", SIGTERM },
	{ "SIGSTKFLT", SIGSTKFLT }, { "SIGCHLD", SIGCHLD }, { "SIGCONT", SIGCONT },
	{ "SIGSTOP", SIGSTOP }, { "SIGTSTP", SIGTSTP }, { "SIGTTIN", SIGTTIN },
	{ "SIGTTOU", SIGTTOU }, { "SIGURG", SIGURG }, { "SIGXCPU", SIGXCPU },
	{ "SIGXFSZ", SIGXFSZ }, { "SIGVTALRM", SIGVTALRM }, { "SIGPROF", SIGPROF },
	{ "SIGWINCH", SIGWINCH }, { "SIGIO", SIGIO }, { "SIGPWR", SIGPWR },
	{ "SIGSYS", SIGSYS },
};

int zsvc_signal_parse(const char *name)
{
	for (size_t i = 0; i < sizeof signals / sizeof signals[0]; i++)
		if (!strcasecmp(name, signals[i].name))
			return signals[i].sig;
	return -1;
}

const char *zsvc_signal_name(int sig)
{
	for (size_t i = 0; i < sizeof signals / sizeof signals[0]; i++)
		if (signals[i].sig == sig)
			return signals[i].name;
	return NULL;
}

/* ---- YAML helpers ---- */

struct ctx {
	const char *file;
	yaml_document_t *doc;
	char *err;
	size_t errlen;
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

/* What a plain scalar means under the YAML 1.2 core schema (the one
 * upstream's serde_yaml uses); quoted scalars are always strings. */
enum kind { K_STR, K_NULL, K_BOOL, K_INT, K_FLOAT };

static bool all_of(const char *s, const char *set)
{
	return *s && strspn(s, set) == strlen(s);
}

static enum kind kind_of(const yaml_node_t *n)
{
	const char *s = yamlfile_scalar(n);
	if (!s || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return K_STR;
	if (!*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") ||
	    !strcmp(s, "NULL"))
		return K_NULL;
	static const char *bools[] = { "true", "True", "TRUE", "false", "False", "FALSE" };
	for (size_t i = 0; i < 6; i++)
		if (!strcmp(s, bools[i]))
			return K_BOOL;
	const char *d = s + (*s == '-' || *s == '+');
	if (all_of(d, "0123456789") || (!strncmp(s, "0x", 2) && all_of(s + 2, "0123456789abcdefABCDEF")) ||
	    (!strncmp(s, "0o", 2) && all_of(s + 2, "01234567")))
		return K_INT;
	if (!strcasecmp(d, ".inf") || !strcasecmp(s, ".nan"))
		return K_FLOAT;
	char *end;
	errno = 0;
	(void)strtod(d, &end);
	if (*d != '.' && !isdigit((unsigned char)*d))
		return K_STR;
	return *end ? K_STR : K_FLOAT;
}

static const char *kind_name(const yaml_node_t *n)
{
	if (n->type == YAML_MAPPING_NODE)
		return "a mapping";
	if (n->type == YAML_SEQUENCE_NODE)
		return "a list";
	switch (kind_of(n)) {
	case K_NULL: return "nothing (null)";
	case K_BOOL: return "a boolean";
	case K_INT: return "a number";
	case K_FLOAT: return "a number";
	default: return "a string";
	}
}

/* A string-valued key: any scalar but null (its text as written). */
static int get_string(struct ctx *x, const yaml_node_t *n, const char *key, bool nullable,
		      char **out)
{
	if (n->type != YAML_SCALAR_NODE)
		return fail(x, n, "%s: expected a string, not %s", key, kind_name(n));
	if (kind_of(n) == K_NULL) {
		if (nullable)
			return 0;
		return fail(x, n, "%s: has no value", key);
	}
	free(*out);
	*out = strdup(yamlfile_scalar(n));
	return *out ? 0 : -ENOMEM;
}

static int get_command(struct ctx *x, const yaml_node_t *n, const char *key, bool nullable,
		       char **text, char ***argv)
{
	int r = get_string(x, n, key, nullable, text);
	if (r || !*text)
		return r;
	const char *why;
	r = cmdline_split(*text, argv, &why);
	if (r == -EINVAL)
		return fail(x, n, "%s: cannot split the command '%s': %s", key, *text, why);
	return r;
}

static int get_bool(struct ctx *x, const yaml_node_t *n, const char *key, bool *out)
{
	const char *s = yamlfile_scalar(n);
	if (!s)
		return fail(x, n, "%s: expected true or false, not %s", key, kind_name(n));
	if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE"))
		*out = true;
	else if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE"))
		*out = false;
	else
		return fail(x, n, "%s: expected true or false, got '%s'", key, s);
	return 0;
}

static int get_timeout(struct ctx *x, const yaml_node_t *n, const char *key, unsigned *out)
{
	const char *s = yamlfile_scalar(n);
	if (!s)
		return fail(x, n, "%s: expected a whole number of seconds, not %s", key,
			    kind_name(n));
	if (*s == '-' && all_of(s + 1, "0123456789.") && s[1])
		return fail(x, n, "%s: must not be negative, got %s", key, s);
	if (!all_of(s, "0123456789"))
		return fail(x, n, "%s: expected a whole number of seconds, got '%s'", key, s);
	uint64_t v = 0;
	for (const char *p = s; *p; p++) {
		v = v * 10 + (uint64_t)(*p - '0');
		if (v > ZSVC_MAX_TIMEOUT)
			return fail(x, n, "%s: %s is too large (at most %d seconds)", key, s,
				    ZSVC_MAX_TIMEOUT);
	}
	*out = (unsigned)v;
	return 0;
}

static int add_dep(struct ctx *x, struct zsvc *s, const yaml_node_t *n)
{
	if (n->type != YAML_SCALAR_NODE || kind_of(n) == K_NULL)
		return fail(x, n, "after: each entry must be a service name, not %s",
			    kind_name(n));
	struct zsvc_dep *a = realloc(s->after, (s->nafter + 1) * sizeof *a);
	if (!a)
		return -ENOMEM;
	s->after = a;
	a[s->nafter] = (struct zsvc_dep){ .name = strdup(yamlfile_scalar(n)),
					  .line = n->start_mark.line + 1 };
	if (!a[s->nafter].name)
		return -ENOMEM;
	s->nafter++;
	return 0;
}

static int get_after(struct ctx *x, const yaml_node_t *n, struct zsvc *s)
{
	if (n->type == YAML_SCALAR_NODE) {
		enum kind k = kind_of(n);
		if (k == K_NULL)
			return 0;
		if (k != K_STR)
			return fail(x, n, "after: expected a list of service names (or one name), "
				    "not %s ('%s')", kind_name(n), yamlfile_scalar(n));
		return add_dep(x, s, n);
	}
	if (n->type != YAML_SEQUENCE_NODE)
		return fail(x, n, "after: expected a list of service names, not %s", kind_name(n));
	for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
	     it++) {
		yaml_node_t *item = yaml_document_get_node(x->doc, *it);
		int r = item ? add_dep(x, s, item) : -EINVAL;
		if (r)
			return r;
	}
	return 0;
}

static int get_signal(struct ctx *x, const yaml_node_t *n, struct zsvc *s)
{
	if (n->type == YAML_SCALAR_NODE && kind_of(n) == K_NULL)
		return 0;
	if (n->type != YAML_MAPPING_NODE)
		return fail(x, n, "signal: expected a mapping such as 'stop: SIGTERM', not %s",
			    kind_name(n));
	bool seen = false;
	for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top;
	     p++) {
		yaml_node_t *k = yaml_document_get_node(x->doc, p->key);
		yaml_node_t *v = yaml_document_get_node(x->doc, p->value);
		const char *key = k ? yamlfile_scalar(k) : NULL;
		if (!key || !v)
			return fail(x, k, "signal: keys must be plain names");
		if (strcmp(key, "stop"))
			return fail(x, k, "unknown key 'signal.%s' (known here: stop)", key);
		if (seen)
			return fail(x, k, "'signal.stop' is given twice");
		seen = true;
		const char *val = yamlfile_scalar(v);
		if (!val || kind_of(v) == K_NULL)
			return fail(x, v, "signal.stop: expected a signal name such as SIGTERM, not %s",
				    kind_name(v));
		int sig = zsvc_signal_parse(val);
		if (sig < 0)
			return fail(x, v, "signal.stop: unknown signal '%s' (expected a name such as "
				    "SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGKILL)", val);
		s->stop_signal = sig;
	}
	return 0;
}

static int get_log(struct ctx *x, const yaml_node_t *n, struct zsvc *s)
{
	const char *v = yamlfile_scalar(n);
	if (!v)
		return fail(x, n, "log: expected stdout, ring or null, not %s", kind_name(n));
	if (kind_of(n) == K_NULL || !strcmp(v, "none"))
		s->log = ZSVC_LOG_NULL;
	else if (!strcmp(v, "stdout"))
		s->log = ZSVC_LOG_STDOUT;
	else if (!strcmp(v, "ring"))
		s->log = ZSVC_LOG_RING;
	else
		return fail(x, n, "log: expected stdout, ring or null, got '%s'", v);
	return 0;
}

static int get_env(struct ctx *x, const yaml_node_t *n, struct zsvc *s)
{
	if (n->type == YAML_SCALAR_NODE && kind_of(n) == K_NULL)
		return 0;
	if (n->type != YAML_MAPPING_NODE)
		return fail(x, n, "env: expected a mapping of 'NAME: value' lines, not %s",
			    kind_name(n));
	for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top;
	     p++) {
		yaml_node_t *k = yaml_document_get_node(x->doc, p->key);
		yaml_node_t *v = yaml_document_get_node(x->doc, p->value);
		const char *key = k ? yamlfile_scalar(k) : NULL;
		if (!key || !v)
			return fail(x, k, "env: variable names must be plain strings");
		if (!*key || strchr(key, '='))
			return fail(x, k, "env: '%s' is not a valid variable name", key);
		const char *val = yamlfile_scalar(v);
		if (!val)
			return fail(x, v, "env.%s: expected a string value, not %s", key,
				    kind_name(v));
		size_t klen = strlen(key);
		for (size_t i = 0; i < s->nenv; i++)
			if (!strncmp(s->env[i], key, klen) && s->env[i][klen] == '=')
				return fail(x, k, "env.%s is given twice", key);
		char **e = realloc(s->env, (s->nenv + 2) * sizeof *e);
		if (!e)
			return -ENOMEM;
		s->env = e;
		if (asprintf(&e[s->nenv], "%s=%s", key, val) < 0)
			return -ENOMEM;
		e[++s->nenv] = NULL;
	}
	return 0;
}

enum key { KEY_EXEC, KEY_TEST, KEY_ONESHOT, KEY_AFTER, KEY_TIMEOUT, KEY_SIGNAL, KEY_ENV,
	   KEY_DIR, KEY_LOG, NKEYS };
static const char *const key_names[NKEYS] = { "exec", "test", "oneshot", "after",
	"shutdown_timeout", "signal", "env", "dir", "log" };

static int set_key(struct ctx *x, enum key key, const yaml_node_t *v, struct zsvc *s)
{
	switch (key) {
	case KEY_EXEC: return get_command(x, v, "exec", false, &s->exec, &s->exec_argv);
	case KEY_TEST: return get_command(x, v, "test", true, &s->test, &s->test_argv);
	case KEY_ONESHOT: return get_bool(x, v, "oneshot", &s->oneshot);
	case KEY_AFTER: return get_after(x, v, s);
	case KEY_TIMEOUT: return get_timeout(x, v, "shutdown_timeout", &s->shutdown_timeout);
	case KEY_SIGNAL: return get_signal(x, v, s);
	case KEY_ENV: return get_env(x, v, s);
	case KEY_DIR: return get_string(x, v, "dir", true, &s->dir);
	case KEY_LOG: return get_log(x, v, s);
	default: return -EINVAL;
	}
}

static int walk(struct ctx *x, const yaml_node_t *root, struct zsvc *s)
{
	if (root->type != YAML_MAPPING_NODE)
		return fail(x, root, "expected a mapping of 'key: value' lines, not %s",
			    kind_name(root));
	bool seen[NKEYS] = { false };
	for (yaml_node_pair_t *p = root->data.mapping.pairs.start;
	     p < root->data.mapping.pairs.top; p++) {
		yaml_node_t *k = yaml_document_get_node(x->doc, p->key);
		yaml_node_t *v = yaml_document_get_node(x->doc, p->value);
		const char *key = k ? yamlfile_scalar(k) : NULL;
		if (!key || !v)
			return fail(x, k, "keys must be plain names");
		int i = 0;
		while (i < NKEYS && strcmp(key_names[i], key))
			i++;
		if (i == NKEYS)
			return fail(x, k, "unknown key '%s' (known: exec, test, oneshot, after, "
				    "shutdown_timeout, signal, env, dir, log)", key);
		if (seen[i])
			return fail(x, k, "'%s' is given twice", key);
		seen[i] = true;
		int r = set_key(x, (enum key)i, v, s);
		if (r == -ENOMEM)
			return fail(x, v, "out of memory");
		if (r)
			return r;
	}
	if (!s->exec)
		return fail(x, root, "missing required key 'exec' (the command to run)");
	return 0;
}

void zsvc_free(struct zsvc *s)
{
	if (!s)
		return;
	free(s->name);
	free(s->file);
	free(s->exec);
	cmdline_free(s->exec_argv);
	free(s->test);
	cmdline_free(s->test_argv);
	for (size_t i = 0; i < s->nenv; i++)
		free(s->env[i]);
	free(s->env);
	free(s->dir);
	for (size_t i = 0; i < s->nafter; i++)
		free(s->after[i].name);
	free(s->after);
	memset(s, 0, sizeof *s);
}

int zsvc_load_file(const char *path, const char *name, struct zsvc *s, char *err,
		   size_t errlen)
{
	memset(s, 0, sizeof *s);
	s->shutdown_timeout = ZSVC_DEFAULT_SHUTDOWN_TIMEOUT;
	s->stop_signal = SIGTERM;
	s->log = ZSVC_LOG_RING;
	struct ctx x = { .file = path, .err = err, .errlen = errlen };
	for (const char *c = name; *c; c++)
		if (isspace((unsigned char)*c) || iscntrl((unsigned char)*c))
			return fail(&x, NULL, "the service name '%s' must not contain blanks or "
				    "control characters", name);
	if (!*name)
		return fail(&x, NULL, "the service name is empty");
	yaml_document_t doc;
	int r = yamlfile_load(path, &doc, err, errlen);
	if (r)
		return r;
	x.doc = &doc;
	yaml_node_t *root = yaml_document_get_root_node(&doc);
	if (!root) {
		r = fail(&x, NULL, "the file is empty (a service needs at least 'exec')");
		goto out;
	}
	s->name = strdup(name);
	s->file = strdup(path);
	r = s->name && s->file ? walk(&x, root, s) : fail(&x, NULL, "out of memory");
out:
	yaml_document_delete(&doc);
	if (r)
		zsvc_free(s);
	return r;
}

void zsvc_set_free(struct zsvc_set *set)
{
	for (size_t i = 0; i < set->n; i++)
		zsvc_free(&set->svc[i]);
	free(set->svc);
	free(set->order);
	memset(set, 0, sizeof *set);
}

long zsvc_find(const struct zsvc_set *set, const char *name)
{
	for (size_t i = 0; i < set->n; i++)
		if (!strcmp(set->svc[i].name, name))
			return (long)i;
	return -1;
}

/* ---- the graph ---- */

/* Depth-first search from u; color: 0 unseen, 1 on the path, 2 done.
 * path[0..depth) holds the services on the way to u. On a back edge to a
 * service on the path, writes the cycle into err and returns -EINVAL. */
static int dfs(const struct zsvc_set *set, size_t u, unsigned char *color, size_t *path,
	       size_t depth, char *err, size_t errlen)
{
	color[u] = 1;
	path[depth] = u;
	const struct zsvc *s = &set->svc[u];
	for (size_t i = 0; i < s->nafter; i++) {
		size_t v = s->after[i].idx;
		if (color[v] == 2)
			continue;
		if (color[v] == 0) {
			int r = dfs(set, v, color, path, depth + 1, err, errlen);
			if (r)
				return r;
			continue;
		}
		/* v is on the path: the cycle is path[j..depth], back to v */
		size_t j = 0;
		while (path[j] != v)
			j++;
		const struct zsvc *first = &set->svc[v];
		/* the line where the first service of the cycle names the next */
		size_t next = j < depth ? path[j + 1] : v, line = 0;
		for (size_t k = 0; k < first->nafter && !line; k++)
			if (first->after[k].idx == next)
				line = first->after[k].line;
		int n = snprintf(err, errlen, "%s:%zu: dependency cycle: ", first->file, line);
		for (size_t k = j; k <= depth && n >= 0 && (size_t)n < errlen; k++)
			n += snprintf(err + n, errlen - (size_t)n, "%s -> ", set->svc[path[k]].name);
		if (n >= 0 && (size_t)n < errlen)
			snprintf(err + n, errlen - (size_t)n, "%s (each waits for the next)",
				 first->name);
		return -EINVAL;
	}
	color[u] = 2;
	return 0;
}

int zsvc_set_resolve(struct zsvc_set *set, char *err, size_t errlen)
{
	for (size_t i = 0; i < set->n; i++) {
		struct zsvc *s = &set->svc[i];
		for (size_t k = 0; k < s->nafter; k++) {
			long idx = zsvc_find(set, s->after[k].name);
			if (idx < 0) {
				snprintf(err, errlen, "%s:%zu: after: unknown service '%s' (no file "
					 "%s.yaml next to this one)", s->file, s->after[k].line,
					 s->after[k].name, s->after[k].name);
				return -EINVAL;
			}
			s->after[k].idx = (size_t)idx;
		}
	}
	unsigned char *color = calloc(set->n + 1, 1);
	size_t *path = calloc(set->n + 1, sizeof *path);
	size_t *order = calloc(set->n + 1, sizeof *order);
	int r = color && path && order ? 0 : -ENOMEM;
	for (size_t i = 0; i < set->n && !r; i++)
		if (!color[i])
			r = dfs(set, i, color, path, 0, err, errlen);
	/* No cycle: repeatedly take the first (by name) service whose
	 * dependencies are all taken. */
	memset(color, 0, set->n + 1);
	for (size_t n = 0; n < set->n && !r; n++) {
		size_t pick = set->n;
		for (size_t i = 0; i < set->n && pick == set->n; i++) {
			if (color[i])
				continue;
			bool ready = true;
			for (size_t k = 0; k < set->svc[i].nafter && ready; k++)
				ready = color[set->svc[i].after[k].idx];
			if (ready)
				pick = i;
		}
		color[pick] = 1;
		order[n] = pick;
	}
	free(color);
	free(path);
	if (r) {
		free(order);
		return r;
	}
	free(set->order);
	set->order = order;
	return 0;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Append one line to err (which holds earlier lines). */
static void add_line(char *err, size_t errlen, const char *line)
{
	size_t n = strlen(err);
	if (n + 1 < errlen)
		snprintf(err + n, errlen - n, "%s%s", n ? "\n" : "", line);
}

int zsvc_load_dir(const char *dir, struct zsvc_set *set, char *err, size_t errlen)
{
	memset(set, 0, sizeof *set);
	err[0] = 0;
	DIR *d = opendir(dir);
	if (!d) {
		int e = errno;
		snprintf(err, errlen, "%s: cannot read the service directory: %s", dir,
			 strerror(e));
		return -e;
	}
	char **names = NULL;
	size_t n = 0;
	int r = 0;
	struct dirent *e;
	while ((e = readdir(d)) && !r) {
		size_t len = strlen(e->d_name);
		if (len <= 5 || strcmp(e->d_name + len - 5, ".yaml"))
			continue;
		char **nn = realloc(names, (n + 1) * sizeof *nn);
		if (!nn) {
			r = -ENOMEM;
			break;
		}
		names = nn;
		if (!(names[n] = strndup(e->d_name, len - 5)))
			r = -ENOMEM;
		else
			n++;
	}
	closedir(d);
	if (n)
		qsort(names, n, sizeof *names, by_name);
	set->svc = calloc(n + 1, sizeof *set->svc);
	if (!set->svc)
		r = -ENOMEM;
	int bad = 0;
	for (size_t i = 0; i < n && !r; i++) {
		char *path;
		if (asprintf(&path, "%s/%s.yaml", dir, names[i]) < 0) {
			r = -ENOMEM;
			break;
		}
		struct stat st;
		if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
			free(path);
			continue;	/* a directory called x.yaml, say */
		}
		char line[1024];
		int k = zsvc_load_file(path, names[i], &set->svc[set->n], line, sizeof line);
		free(path);
		if (k == -ENOMEM)
			r = k;
		else if (k) {
			add_line(err, errlen, line);
			bad = k;
		} else {
			set->n++;
		}
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	if (r == -ENOMEM)
		snprintf(err, errlen, "%s: out of memory", dir);
	if (!r && bad)
		r = bad;
	if (!r)
		r = zsvc_set_resolve(set, err, errlen);
	if (r)
		zsvc_set_free(set);
	return r;
}
