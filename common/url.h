/* common/url.h - backend addresses as written in the configuration.
 *
 *   redis://[user:password@]host[:port][/db-or-namespace]
 *       a Redis server (redis-server, valkey). port defaults to 6379; host
 *       may be an [IPv6] literal; a numeric path selects a redis database
 *       (any other name is sent as SELECT name password, as early qsfs did
 *       for 0-db: use zdb:// for 0-db).
 *   zdb://[:password@]host[:port]/namespace
 *       a 0-db server (docs/ZDB.md), user mode, one namespace per volume:
 *       no AUTH (that is 0-db's admin password), SELECT namespace
 *       [password]. port defaults to 9900; the namespace is required (at
 *       most 128 bytes, no '/'); no user name.
 *   dir:///absolute/path
 *       shards as files in a local directory.
 */
#ifndef QSFS_URL_H
#define QSFS_URL_H

enum backend_kind { BACKEND_REDIS = 1, BACKEND_DIR = 2, BACKEND_ZDB = 3 };

struct backend_url {
	enum backend_kind kind;
	char *user;		/* NULL when absent */
	char *password;		/* NULL when absent */
	char *host;		/* redis, zdb: without brackets */
	unsigned port;
	char *ns;		/* redis: database number or name, NULL when absent;
				 * zdb: the namespace */
	char *path;		/* dir: absolute path without trailing slash */
	char *display;		/* the URL with the password replaced by "***", for logs */
};

/* Parse s into *u (strings malloc'd). Returns 0, or -EINVAL with *why
 * saying what is wrong (a static string), or -ENOMEM. */
int backend_url_parse(const char *s, struct backend_url *u, const char **why);

/* Free the strings of *u and zero it. */
void backend_url_free(struct backend_url *u);

#endif
