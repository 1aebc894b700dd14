/* zinit/service.h - zinit service files: parse one file or a directory of
 * them into structs, and check the dependency graph.
 *
 * A service is the file DIR/NAME.yaml (other files are ignored), read with
 * libyaml. The keys are those of upstream zinit (threefoldtech/zinit):
 * exec, test, oneshot, after, shutdown_timeout, signal: {stop}, env, dir,
 * log. Every problem is reported as "FILE:LINE: message" ("FILE: message"
 * when no line applies): YAML syntax, unknown or repeated keys, wrong
 * types, bad signal names, negative or non-numeric timeouts, commands that
 * cannot be split, unknown services in `after`, dependency cycles (naming
 * every service of the cycle). See zinit/README.md for what each key means.
 */
#ifndef QSFS_ZINIT_SERVICE_H
#define QSFS_ZINIT_SERVICE_H

#include <stdbool.h>
#include <stddef.h>

#define ZSVC_DEFAULT_SHUTDOWN_TIMEOUT 10	/* seconds, as upstream */
#define ZSVC_MAX_TIMEOUT 31536000		/* seconds (a year) */

enum zsvc_log {
	ZSVC_LOG_RING,		/* the default: prefixed on stdout + ring */
	ZSVC_LOG_STDOUT,	/* the same here (see README.md) */
	ZSVC_LOG_NULL,		/* discarded */
};

struct zsvc_dep {
	char *name;		/* a service name as written in `after` */
	size_t line;		/* its line in the file, 1-based */
	size_t idx;		/* index of that service in the set, once resolved */
};

struct zsvc {
	char *name;		/* the file name without ".yaml" */
	char *file;		/* the path it was read from */
	char *exec;		/* the command line as written */
	char **exec_argv;	/* split (see cmdline.h) */
	char *test;		/* NULL: no test */
	char **test_argv;
	bool oneshot;
	unsigned shutdown_timeout;	/* seconds */
	int stop_signal;		/* default SIGTERM */
	enum zsvc_log log;
	char **env;		/* "KEY=VALUE" strings added to the environment */
	size_t nenv;
	char *dir;		/* working directory; NULL: zinit's */
	struct zsvc_dep *after;
	size_t nafter;
};

/* Every service of a directory, sorted by name. After zsvc_set_resolve,
 * after[].idx is set and order[] lists the indices in a start order: each
 * service after every service in its `after` list, ties by name. */
struct zsvc_set {
	struct zsvc *svc;
	size_t n;
	size_t *order;
};

/* Parse the service file at path as service name into *out (zeroed
 * first). Returns 0, or -EINVAL (-errno if the file cannot be read) with
 * the message "FILE:LINE: ..." in err. On failure *out holds nothing. */
int zsvc_load_file(const char *path, const char *name, struct zsvc *out, char *err,
		   size_t errlen);

/* Read every DIR/NAME.yaml, then zsvc_set_resolve. Returns 0, or a
 * negative errno with err holding one line per bad file (the first
 * problem of each), or the graph problem. On failure *set is empty. */
int zsvc_load_dir(const char *dir, struct zsvc_set *set, char *err, size_t errlen);

/* Check that every `after` names a service of the set and that there is
 * no dependency cycle, and compute order[]. Returns 0 or -EINVAL with err
 * ("FILE:LINE: after: unknown service 'x'" or "FILE:LINE: dependency
 * cycle: a -> b -> a"), or -ENOMEM. */
int zsvc_set_resolve(struct zsvc_set *set, char *err, size_t errlen);

/* Index of the service called name, or -1. */
long zsvc_find(const struct zsvc_set *set, const char *name);

void zsvc_free(struct zsvc *s);
void zsvc_set_free(struct zsvc_set *set);

/* The signal number for a name such as "SIGTERM" or "sigterm" (the SIG
 * prefix is required, as upstream), or -1. */
int zsvc_signal_parse(const char *name);

/* The name of signal sig ("SIGTERM"), or NULL for a number not in the
 * table (real-time signals). */
const char *zsvc_signal_name(int sig);

#endif
