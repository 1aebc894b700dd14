/* cache/cache_lost.c - segments lost before they were handed off.
 *
 * A sealed segment lives only in its file until storage journals it (the
 * segment-sealed hand-off). If that file goes first (deleted by hand, a
 * broken disk, set aside because it no longer matches its seal) and no
 * open descriptor still holds its bytes, what it held is gone: no copy
 * exists anywhere this host knows of. The log then does not retry the
 * hand-off for ever (which would hold every later checkpoint back, since
 * a checkpoint goes only after the segments it covers) and does not make
 * the whole volume unusable: the segment becomes LOST (seglife.h), the
 * fact is journaled (SLOG_SEG_LOST), every read of a record in it fails
 * with EIO naming it, and its hand-off is the segment-lost event, which
 * asks storage to record the loss in the volume catalog, after which the
 * catalog passes the segment and later checkpoints may go. Storage may
 * answer that it has the segment after all (the HANDED fact was lost in a
 * crash): then it was never lost, just evicted.
 *
 * A file that vanished while the log still holds it open is not lost: it
 * is written again from the descriptor (heal_from_fd).
 */
#include "cache_int.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "segment.h"
#include "../common/fsutil.h"
#include "../common/qlog.h"

void seg_lose(struct cache *c, struct seg *s, const char *why)
{
	if (s->flags & SF_LOST)
		return;
	if (seg_step(c, s, SE_LOSE))
		return;	/* not a segment that can be lost (logged as a bug) */
	if (s->fd >= 0) {
		/* readers may be using it right now (pinned, outside the lock):
		 * parked, closed by cache_close, like a set-aside segment's */
		int *v = realloc(c->stale_fds, (c->nstale_fds + 1) * sizeof *v);
		if (v) {
			c->stale_fds = v;
			c->stale_fds[c->nstale_fds++] = s->fd;
		} else if (!atomic_load(&s->pins)) {
			close(s->fd);
		}	/* else leaked until exit: better than closing it under a reader */
		s->fd = -1;
	}
	/* a file left under its name (not the size it was sealed at) would be
	 * replayed or read at the next open: kept aside for inspection, before
	 * the loss is journaled (a crash in between finds it missing: lost
	 * again) */
	char name[SEG_NAME_LEN], bad[SEG_NAME_LEN + 16];
	seg_name(s->id, name);
	snprintf(bad, sizeof bad, "%s.corrupt", name);
	if (!c->o.read_only && renameat(c->dirfd, name, c->dirfd, bad) == 0)
		fs_fsync_dir(c->dirfd);
	int jr = 0;
	if (!c->o.read_only) {
		pthread_mutex_lock(&c->slog_mu);
		jr = journal_append(c, SLOG_SEG_LOST, s->id);
		pthread_mutex_unlock(&c->slog_mu);
	}
	qlog_err("cache: segment %" PRIu64 " LOST before it was handed off: %s; it held %" PRIu64
		 " bytes of live records, whose reads now fail with EIO%s", s->id, why, s->live,
		 jr ? " (and the loss cannot be journaled: it is found again at the next open)"
		    : "");
}

/* Write the sealed segment s back to its file from its open descriptor
 * (the file was unlinked while open): temp, fsync, rename, fsync of the
 * directory. 0, or a negative errno (then it is lost). c->lock held. */
static int heal_from_fd(struct cache *c, struct seg *s)
{
	char name[SEG_NAME_LEN], tmp[SEG_NAME_LEN + 16];
	seg_name(s->id, name);
	snprintf(tmp, sizeof tmp, "%s.heal.tmp", name);
	struct stat st;
	if (fstat(s->fd, &st) < 0)
		return -errno;
	if ((uint64_t)st.st_size != s->size)
		return -EIO;
	int out = openat(c->dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (out < 0)
		return -errno;
	int r = 0;
	uint8_t *buf = malloc(1 << 20);
	if (!buf)
		r = -ENOMEM;
	for (uint64_t off = 0; !r && off < s->size;) {
		ssize_t n = fs_pread_full(s->fd, buf, 1 << 20, (off_t)off);
		r = n < 0 ? (int)n : n == 0 ? -EIO : fs_pwrite_all(out, buf, (size_t)n, (off_t)off);
		off += n > 0 ? (uint64_t)n : 0;
	}
	free(buf);
	if (!r && fsync(out) < 0)
		r = -errno;
	close(out);
	if (!r && renameat(c->dirfd, tmp, c->dirfd, name) < 0)
		r = -errno;
	if (!r)
		r = fs_fsync_dir(c->dirfd);
	if (r)
		unlinkat(c->dirfd, tmp, 0);
	return r;
}

int seg_check_file(struct cache *c, struct seg *s)
{
	if (s->flags & SF_LOST)
		return -ENOENT;
	char name[SEG_NAME_LEN];
	seg_name(s->id, name);
	struct stat st;
	int e = fstatat(c->dirfd, name, &st, 0) < 0 ? errno : 0;
	if (!e && (uint64_t)st.st_size == s->size)
		return 0;
	const char *what = e ? strerror(e) : "its size no longer matches its seal";
	char why[300];
	struct stat fst;
	if (s->fd >= 0 && fstat(s->fd, &fst) == 0 && (uint64_t)fst.st_size == s->size) {
		/* the bytes are still here: never lost for a failure to copy
		 * them (a full disk, no memory), only tried again later */
		int r = heal_from_fd(c, s);
		if (!r) {
			qlog_warn("cache: %s/%s vanished before it was handed off (%s); written "
				  "again from the descriptor still open on it", c->dir, name, what);
			return 0;
		}
		qlog_warn("cache: %s/%s vanished before it was handed off (%s), and writing it "
			  "again from the descriptor still open on it failed (%s); tried again "
			  "later", c->dir, name, what, strerror(-r));
		return -EAGAIN;
	}
	snprintf(why, sizeof why, "%s/%s: %s", c->dir, name, what);
	seg_lose(c, s, why);
	return s->flags & SF_LOST ? -ENOENT : -EIO;
}

bool seg_lost_read(struct cache *c, struct seg *s)
{
	if (!(s->flags & SF_LOST))
		return false;
	/* logged the first time, then once a minute at most: a scan over a
	 * lost file's blocks would otherwise log a line per block */
	uint64_t now = fs_now_ns(), told = atomic_load(&s->lost_told_ns);
	if ((!told || now - told > 60000000000ull) &&
	    atomic_compare_exchange_strong(&s->lost_told_ns, &told, now)) {
		qlog_err("cache: a read needs segment %" PRIu64 " of %s, which was lost before it "
			 "was handed off: EIO", s->id, c->dir);
	}
	return true;
}
