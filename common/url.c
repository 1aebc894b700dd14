/* common/url.c - see url.h */
#include "url.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void backend_url_free(struct backend_url *u)
{
	free(u->user);
	free(u->password);
	free(u->host);
	free(u->ns);
	free(u->path);
	free(u->display);
	memset(u, 0, sizeof *u);
}

static char *dupn(const char *s, size_t n)
{
	char *d = malloc(n + 1);
	if (d) {
		memcpy(d, s, n);
		d[n] = 0;
	}
	return d;
}

static int parse_dir(const char *s, struct backend_url *u, const char **why)
{
	const char *p = s + strlen("dir://");
	if (*p != '/') {
		*why = "dir:// needs an absolute path, as in dir:///var/lib/qsfs/b1";
		return -EINVAL;
	}
	size_t n = strlen(p);
	while (n > 1 && p[n - 1] == '/')
		n--;
	if (n == 1) {
		*why = "dir:// must not name the root directory";
		return -EINVAL;
	}
	u->kind = BACKEND_DIR;
	u->path = dupn(p, n);
	u->display = strdup(s);
	return u->path && u->display ? 0 : -ENOMEM;
}

/* redis:// and zdb://: the scheme's name is scheme (without "://"). */
static int parse_net(const char *s, const char *scheme, enum backend_kind kind,
		     unsigned dflt_port, struct backend_url *u, const char **why)
{
	const char *p = s + strlen(scheme) + 3;
	const char *end = p + strlen(p);
	const char *slash = strchr(p, '/');
	const char *auth_end = NULL;
	/* the userinfo ends at the last '@' before the path */
	for (const char *q = p; q < (slash ? slash : end); q++)
		if (*q == '@')
			auth_end = q;
	u->kind = kind;
	u->port = dflt_port;
	if (auth_end) {
		const char *colon = memchr(p, ':', (size_t)(auth_end - p));
		if (!colon) {
			*why = "credentials must be written user:password@ (or :password@)";
			return -EINVAL;
		}
		if (colon > p && !(u->user = dupn(p, (size_t)(colon - p))))
			return -ENOMEM;
		if (!(u->password = dupn(colon + 1, (size_t)(auth_end - colon - 1))))
			return -ENOMEM;
		p = auth_end + 1;
	}
	const char *hend = slash ? slash : end;
	const char *portp = NULL;
	if (*p == '[') {
		const char *rb = memchr(p, ']', (size_t)(hend - p));
		if (!rb) {
			*why = "unterminated [IPv6] address";
			return -EINVAL;
		}
		u->host = dupn(p + 1, (size_t)(rb - p - 1));
		if (rb + 1 < hend) {
			if (rb[1] != ':') {
				*why = "expected :port after the [IPv6] address";
				return -EINVAL;
			}
			portp = rb + 2;
		}
	} else {
		const char *colon = memchr(p, ':', (size_t)(hend - p));
		u->host = dupn(p, (size_t)((colon ? colon : hend) - p));
		if (colon)
			portp = colon + 1;
	}
	if (!u->host)
		return -ENOMEM;
	if (!*u->host) {
		*why = "missing host name";
		return -EINVAL;
	}
	if (portp) {
		unsigned long v = 0;
		const char *q = portp;
		for (; q < hend && *q >= '0' && *q <= '9' && v <= 65535; q++)
			v = v * 10 + (unsigned long)(*q - '0');
		if (q == portp || q != hend || v == 0 || v > 65535) {
			*why = "port must be a number from 1 to 65535";
			return -EINVAL;
		}
		u->port = (unsigned)v;
	}
	if (slash && slash[1]) {
		if (strchr(slash + 1, '/')) {
			*why = "the path is one database number or namespace name";
			return -EINVAL;
		}
		if (!(u->ns = strdup(slash + 1)))
			return -ENOMEM;
	}
	if (kind == BACKEND_ZDB) {
		if (u->user) {
			*why = "zdb:// takes no user name: write zdb://:PASSWORD@host/namespace "
			       "(the namespace's password)";
			return -EINVAL;
		}
		if (!u->ns) {
			*why = "zdb:// needs a namespace: zdb://[:PASSWORD@]host[:port]/NAMESPACE";
			return -EINVAL;
		}
		if (strlen(u->ns) > 128 || !strcmp(u->ns, ".") || !strcmp(u->ns, "..")) {
			*why = "a 0-db namespace name is 1 to 128 bytes, not . or ..";
			return -EINVAL;
		}
		for (const char *q = u->ns; *q; q++) {
			if ((unsigned char)*q <= ' ' || *q == 0x7f) {
				*why = "a 0-db namespace name has no spaces or control characters";
				return -EINVAL;
			}
		}
		if (u->password && strlen(u->password) > 255) {
			*why = "0-db takes namespace passwords of at most 255 bytes";
			return -EINVAL;
		}
	}
	/* display form: the password hidden */
	size_t dl = strlen(s) + 32;	/* + default port, "***", brackets */
	u->display = malloc(dl);
	if (!u->display)
		return -ENOMEM;
	char portbuf[8] = "";
	snprintf(portbuf, sizeof portbuf, "%u", u->port);
	int v6 = strchr(u->host, ':') != NULL;
	snprintf(u->display, dl, "%s://%s%s%s%s%s%s:%s%s%s", scheme, u->user ? u->user : "",
		 u->password ? ":***" : "", u->password || u->user ? "@" : "", v6 ? "[" : "",
		 u->host, v6 ? "]" : "", portbuf, u->ns ? "/" : "", u->ns ? u->ns : "");
	return 0;
}

int backend_url_parse(const char *s, struct backend_url *u, const char **why)
{
	memset(u, 0, sizeof *u);
	*why = NULL;
	int r;
	if (!strncmp(s, "dir://", 6))
		r = parse_dir(s, u, why);
	else if (!strncmp(s, "redis://", 8))
		r = parse_net(s, "redis", BACKEND_REDIS, 6379, u, why);
	else if (!strncmp(s, "zdb://", 6))
		r = parse_net(s, "zdb", BACKEND_ZDB, 9900, u, why);
	else {
		*why = "unknown scheme (use redis://host:port[/db], zdb://[:password@]host[:port]/"
		       "namespace or dir:///path)";
		r = -EINVAL;
	}
	if (r)
		backend_url_free(u);
	return r;
}
