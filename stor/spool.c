/* stor/spool.c - see spool.h */
#include "spool.h"
#include "../common/storproto.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/fsutil.h"

struct spool {
	int dfd;
};

int object_name_parse(const char *name, uint64_t *code_id)
{
	char kind;
	uint64_t v;
	if (!storproto_object_name(name, &kind, &v))
		return -EINVAL;
	*code_id = kind == 'c' ? v | (1ull << 63) : v;
	return 0;
}

int spool_open(const char *state_dir, struct spool **out)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/spool", state_dir);
	if (mkdir(state_dir, 0700) < 0 && errno != EEXIST)
		return -errno;
	if (mkdir(path, 0700) < 0 && errno != EEXIST)
		return -errno;
	int dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	struct spool *s = calloc(1, sizeof *s);
	if (!s) {
		close(dfd);
		return -ENOMEM;
	}
	s->dfd = dfd;
	/* an interrupted add leaves only a temp file */
	/* a dup shares the directory offset: rewind before every listing */
	DIR *d = fdopendir(dup(dfd));
	if (d)
		rewinddir(d);
	struct dirent *e;
	while (d && (e = readdir(d)))
		if (e->d_name[0] == '.' && strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			unlinkat(dfd, e->d_name, 0);
	if (d)
		closedir(d);
	*out = s;
	return 0;
}

void spool_close(struct spool *s)
{
	if (!s)
		return;
	close(s->dfd);
	free(s);
}

static int copy_into(int dfd, const char *tmp, const char *path)
{
	int in = open(path, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return -errno;
	int out = openat(dfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (out < 0) {
		int e = -errno;
		close(in);
		return e;
	}
	uint8_t *buf = malloc(1 << 20);
	int r = buf ? 0 : -ENOMEM;
	off_t off = 0;
	while (!r) {
		ssize_t n = read(in, buf, 1 << 20);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			r = -errno;
		if (n <= 0)
			break;
		r = fs_pwrite_all(out, buf, (size_t)n, off);
		off += n;
	}
	free(buf);
	if (!r && fsync(out) < 0)
		r = -errno;
	close(in);
	close(out);
	return r;
}

int spool_add(struct spool *s, const char *name, const char *path)
{
	uint64_t id;
	if (object_name_parse(name, &id))
		return -EINVAL;
	char tmp[64];
	snprintf(tmp, sizeof tmp, ".%s.tmp", name);
	unlinkat(s->dfd, tmp, 0);
	int r = 0;
	if (linkat(AT_FDCWD, path, s->dfd, tmp, 0) < 0) {
		if (errno != EXDEV && errno != EPERM && errno != EMLINK)
			return -errno;
		r = copy_into(s->dfd, tmp, path);
	} else {
		/* the cache's file is already durable (sealed segments and
		 * checkpoints are fsynced); make sure regardless */
		int fd = openat(s->dfd, tmp, O_RDONLY | O_CLOEXEC);
		if (fd < 0 || fsync(fd) < 0)
			r = -errno;
		if (fd >= 0)
			close(fd);
	}
	if (!r && renameat(s->dfd, tmp, s->dfd, name) < 0)
		r = -errno;
	if (!r)
		r = fs_fsync_dir(s->dfd);
	if (r)
		unlinkat(s->dfd, tmp, 0);
	return r;
}

#define DEL_SUFFIX ".del"
#define LOST_SUFFIX ".lost"

/* Is job a marker job "NAME<suffix>" with a valid object name? If so, and
 * obj is not NULL, the object's name goes to obj. */
static bool is_marker(const char *job, const char *suffix, char *obj)
{
	size_t n = strlen(job), sl = strlen(suffix);
	char name[32];
	uint64_t id;
	if (n <= sl || n - sl >= sizeof name || strcmp(job + n - sl, suffix))
		return false;
	memcpy(name, job, n - sl);
	name[n - sl] = 0;
	if (object_name_parse(name, &id))
		return false;
	if (obj)
		memcpy(obj, name, n - sl + 1);
	return true;
}

bool spool_is_delete(const char *job, char *obj)
{
	return is_marker(job, DEL_SUFFIX, obj);
}

bool spool_is_lost(const char *job, char *obj)
{
	return is_marker(job, LOST_SUFFIX, obj) && job[0] == 's';
}

/* Durably add the empty job file NAME<suffix>: temp, fsync, rename, fsync
 * of the directory. */
static int add_marker(struct spool *s, const char *name, const char *suffix)
{
	uint64_t id;
	if (object_name_parse(name, &id))
		return -EINVAL;
	char tmp[64], final[64];
	snprintf(tmp, sizeof tmp, ".%s%s.tmp", name, suffix);
	snprintf(final, sizeof final, "%s%s", name, suffix);
	int fd = openat(s->dfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	int r = fsync(fd) < 0 ? -errno : 0;
	close(fd);
	if (!r && renameat(s->dfd, tmp, s->dfd, final) < 0)
		r = -errno;
	if (!r)
		r = fs_fsync_dir(s->dfd);
	if (r)
		unlinkat(s->dfd, tmp, 0);
	return r;
}

int spool_add_delete(struct spool *s, const char *name)
{
	return add_marker(s, name, DEL_SUFFIX);
}

int spool_add_lost(struct spool *s, const char *name)
{
	return name[0] == 's' ? add_marker(s, name, LOST_SUFFIX) : -EINVAL;
}

int spool_done(struct spool *s, const char *name)
{
	if (unlinkat(s->dfd, name, 0) < 0 && errno != ENOENT)
		return -errno;
	return fs_fsync_dir(s->dfd);
}

int spool_open_job(struct spool *s, const char *name, uint64_t *size)
{
	return fs_open_read(s->dfd, name, size);
}

int spool_list(struct spool *s, void (*cb)(void *arg, const char *name, uint64_t size,
					   int64_t mtime),
	       void *arg)
{
	DIR *d = fdopendir(dup(s->dfd));
	if (!d)
		return -errno;
	rewinddir(d);
	struct dirent *e;
	while ((e = readdir(d))) {
		uint64_t id;
		struct stat st;
		if ((object_name_parse(e->d_name, &id) && !spool_is_delete(e->d_name, NULL) &&
		     !spool_is_lost(e->d_name, NULL)) ||
		    fstatat(s->dfd, e->d_name, &st, 0))
			continue;
		cb(arg, e->d_name, (uint64_t)st.st_size, (int64_t)st.st_mtime);
	}
	closedir(d);
	return 0;
}
