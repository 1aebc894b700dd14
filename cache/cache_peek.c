/* cache/cache_peek.c - what a cache directory still has to hand off, read
 * from outside (see cache_unhanded() in cache.h). */
#include "cache.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "segment.h"
#include "statelog.h"

/* The segment ids state.log says are handed off or confirmed, unsorted. */
struct done_ids {
	uint64_t *v;
	size_t n, cap;
	int err;
};

static void done_cb(void *arg, const struct slog_rec *r)
{
	struct done_ids *d = arg;
	if (r->type != SLOG_SEG_HANDED && r->type != SLOG_SEG_CONFIRMED)
		return;
	if (d->n == d->cap) {
		size_t cap = d->cap ? 2 * d->cap : 256;
		uint64_t *v = realloc(d->v, cap * sizeof *v);
		if (!v) {
			d->err = -ENOMEM;
			return;
		}
		d->v = v;
		d->cap = cap;
	}
	d->v[d->n++] = r->id;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

int cache_unhanded(const char *dir, uint64_t *n, uint64_t *first)
{
	*n = 0;
	if (first)
		*first = 0;
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	int r = 0;
	struct done_ids done = { 0 };
	struct slog *sl = NULL;
	DIR *d = NULL;
	if (faccessat(dfd, "VOLUME", F_OK, 0) < 0) {	/* no cache here (yet) */
		r = -errno;
		goto out;
	}
	/* state.log first: a segment handed off while the directory is read
	 * is then at worst counted once more, never missed */
	r = slog_open(dfd, true, &sl, done_cb, &done);
	if (!r)
		r = done.err;
	if (r)
		goto out;
	if (done.n)
		qsort(done.v, done.n, sizeof *done.v, cmp_u64);
	int dfd2 = dup(dfd);
	if (dfd2 < 0 || !(d = fdopendir(dfd2))) {
		r = -errno;
		if (dfd2 >= 0)
			close(dfd2);
		goto out;
	}
	for (;;) {
		errno = 0;
		struct dirent *e = readdir(d);
		if (!e) {
			r = -errno;	/* 0 at the end; an error must not count as "none left" */
			break;
		}
		uint64_t id;
		struct stat st;
		if (!seg_parse_name(e->d_name, &id) ||
		    (done.n && bsearch(&id, done.v, done.n, sizeof *done.v, cmp_u64)))
			continue;
		if (fstatat(dfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno == ENOENT)	/* evicted meanwhile: it was confirmed */
				continue;
			r = -errno;
			goto out;
		}
		if ((uint64_t)st.st_size <= SEG_HDR_SIZE)	/* no record: nothing to lose */
			continue;
		(*n)++;
		if (first && (!*first || id < *first))
			*first = id;
	}
out:
	if (d)
		closedir(d);
	if (sl)
		slog_close(sl);
	free(done.v);
	close(dfd);
	return r;
}
