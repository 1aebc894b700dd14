/* stor/backend_dir.c - dir:// backends: a key is a file under the
 * backend's directory (its '/' are subdirectories), written to a temp file
 * of the writer's own, fsynced and renamed. See backend.h, backend_int.h. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "backend_int.h"
#include "../common/fsutil.h"

/* --- dir:// --------------------------------------------------------------- */

/* Is name KEY.tmp-XXXXXX, as dir_put's mkostemp makes them? */
static bool is_put_tmp(const char *name)
{
	const char *t = strstr(name, ".tmp-");
	return t && t != name && strlen(t) == 5 + 6;
}

static int64_t sweep(int dfd, time_t older_than, int depth)
{
	DIR *d = fdopendir(dfd);
	if (!d) {
		close(dfd);
		return -errno;
	}
	int64_t n = 0;
	struct dirent *e;
	while ((e = readdir(d)) && n >= 0) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		struct stat st;
		if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;	/* gone meanwhile */
		if (S_ISDIR(st.st_mode) && depth < 16) {
			int sub = openat(dirfd(d), e->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			int64_t r = sub < 0 ? -errno : sweep(sub, older_than, depth + 1);
			n = r < 0 ? r : n + r;
		} else if (S_ISREG(st.st_mode) && is_put_tmp(e->d_name) &&
			   st.st_mtime < older_than && unlinkat(dirfd(d), e->d_name, 0) == 0) {
			n++;
		}
	}
	closedir(d);
	return n;
}

int64_t backend_dir_sweep_tmp(const struct backend_url *u, unsigned min_age_s)
{
	if (u->kind != BACKEND_DIR)
		return 0;
	int dfd = open(u->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return errno == ENOENT ? 0 : -errno;
	return sweep(dfd, time(NULL) - (time_t)min_age_s, 0);
}

/* Listing a dir:// backend: the keys under the directory the prefix names. */
struct dir_scan {
	const char *prefix;
	size_t plen;
	int (*cb)(void *arg, const char *key, uint64_t size);
	void *arg;
	int stop;		/* cb's non-zero value */
};

/* Walk directory dfd (key: its path relative to the backend's root, with a
 * trailing '/', or "", klen long), calling s->cb for the regular files
 * whose key starts with s->prefix. Consumes dfd. Returns 0, 1 when cb
 * stopped it (s->stop), or -errno. */
static int dir_walk(int dfd, char *key, size_t klen, size_t cap, struct dir_scan *s, int depth)
{
	DIR *d = fdopendir(dfd);
	if (!d) {
		close(dfd);
		return -errno;
	}
	int r = 0;
	for (;;) {
		errno = 0;
		struct dirent *e = readdir(d);
		if (!e) {
			r = errno ? -errno : 0;
			break;
		}
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		size_t nl = strlen(e->d_name);
		if (klen + nl + 2 > cap)
			continue;	/* longer than any key */
		memcpy(key + klen, e->d_name, nl + 1);
		struct stat st;
		if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno == ENOENT)
				continue;	/* gone meanwhile */
			r = -errno;
			break;
		}
		size_t kl = klen + nl;
		if (S_ISDIR(st.st_mode)) {
			key[kl] = '/';
			key[kl + 1] = 0;
			/* only where keys with the prefix can be */
			size_t m = kl + 1 < s->plen ? kl + 1 : s->plen;
			if (depth >= 16 || strncmp(key, s->prefix, m))
				continue;
			int sub = openat(dirfd(d), e->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			if (sub < 0 && errno == ENOENT)
				continue;
			r = sub < 0 ? -errno : dir_walk(sub, key, kl + 1, cap, s, depth + 1);
		} else if (S_ISREG(st.st_mode) && !is_put_tmp(e->d_name) &&
			   !strncmp(key, s->prefix, s->plen)) {
			s->stop = s->cb(s->arg, key, (uint64_t)st.st_size);
			r = s->stop ? 1 : 0;
		}
		if (r)
			break;
	}
	key[klen] = 0;
	closedir(d);
	return r;
}

static int dir_list(struct backend *b, const char *prefix,
		    int (*cb)(void *arg, const char *key, uint64_t size), void *arg)
{
	/* start in the deepest directory the prefix names */
	char key[512], path[4600];
	const char *slash = strrchr(prefix, '/');
	size_t dl = slash ? (size_t)(slash - prefix) + 1 : 0;
	memcpy(key, prefix, dl);
	key[dl] = 0;
	snprintf(path, sizeof path, "%s/%s", b->path, key);
	int dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		int e = errno;
		struct stat st;
		if ((e == ENOENT || e == ENOTDIR) && stat(b->path, &st) == 0 && S_ISDIR(st.st_mode))
			return 0;	/* the root is there, that directory not: no such keys */
		return -e;
	}
	struct dir_scan s = { prefix, strlen(prefix), cb, arg, 0 };
	int r = dir_walk(dfd, key, dl, sizeof key, &s, 0);
	return r == 1 ? s.stop : r;
}

static int mkdirs(char *path)
{
	for (char *p = path + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		int r = mkdir(path, 0700);
		*p = '/';
		if (r < 0 && errno != EEXIST)
			return -errno;
	}
	return 0;
}

static int put_file(struct backend *b, const char *key, const void *val, size_t len)
{
	char path[4096], tmp[4200];
	snprintf(path, sizeof path, "%s/%s", b->path, key);
	/* a temporary name of this writer's own: two processes (qsfs-fs and
	 * qsfs-stor both write the lease) putting one key at once must not
	 * share, mix or rename away each other's file */
	snprintf(tmp, sizeof tmp, "%s.tmp-XXXXXX", path);
	int r = mkdirs(path);
	if (r)
		return r;
	int fd = mkostemp(tmp, O_CLOEXEC);	/* mode 0600 */
	if (fd < 0)
		return -errno;
	r = fs_pwrite_all(fd, val, len, 0);
	if (!r && fsync(fd) < 0)
		r = -errno;
	close(fd);
	if (!r && rename(tmp, path) < 0)
		r = -errno;
	if (r) {
		unlink(tmp);
		return r;
	}
	char *slash = strrchr(path, '/');
	*slash = 0;
	int dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		r = fs_fsync_dir(dfd);
		close(dfd);
	}
	return r;
}

static int get_file(struct backend *b, const char *key, uint8_t **val, size_t *len)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/%s", b->path, key);
	int dfd = open(b->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	int r = fs_read_file(dfd, key, val, len);
	close(dfd);
	return r;
}

static int dir_del(struct backend *b, const char *key)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/%s", b->path, key);
	int r = unlink(path) < 0 && errno != ENOENT ? -errno : 0;
	if (r)
		backend_set_error(b, "removing %s: %s", key, strerror(-r));
	return r;
}

static int dir_exists(struct backend *b, const char *key)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/%s", b->path, key);
	struct stat st;
	if (stat(path, &st) == 0)
		return 1;
	int r = errno == ENOENT ? 0 : -errno;
	if (r)
		backend_set_error(b, "looking for %s: %s", key, strerror(-r));
	return r;
}

static int dir_put(struct backend *b, const char *key, const void *val, size_t len)
{
	int r = put_file(b, key, val, len);
	if (r)
		backend_set_error(b, "writing %s: %s", key, strerror(-r));
	return r;
}

static int dir_get(struct backend *b, const char *key, uint8_t **val, size_t *len)
{
	int r = get_file(b, key, val, len);
	if (r && r != -ENOENT)
		backend_set_error(b, "reading %s: %s", key, strerror(-r));
	return r;
}

static int dir_scan(struct backend *b, const char *prefix,
		    int (*cb)(void *arg, const char *key, uint64_t size), void *arg)
{
	int r = dir_list(b, prefix, cb, arg);
	if (r < 0)
		backend_set_error(b, "listing %s*: %s", prefix, strerror(-r));
	return r;
}

static int dir_ping(struct backend *b)
{
	struct stat st;
	int r = stat(b->path, &st) < 0 ? -errno : !S_ISDIR(st.st_mode) ? -ENOTDIR
		: access(b->path, W_OK) < 0 ? -errno : 0;
	if (r)
		backend_set_error(b, "%s: %s", b->path, strerror(-r));
	return r;
}

const struct backend_ops backend_dir_ops = {
	.put = dir_put,
	.get = dir_get,
	.del = dir_del,
	.exists = dir_exists,
	.ping = dir_ping,
	.scan = dir_scan,
};

