/* cache/statelog.c - see statelog.h */
#include "statelog.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "format.h"
#include "../common/fsutil.h"
#include "../common/qlog.h"

#define SLOG_NAME "state.log"
#define SLOG_REC 24u
#define SLOG_SEED 0x51535354415445ull	/* "QSSTATE" */

struct slog {
	int dirfd;
	int fd;
	size_t nrec;
	bool read_only;
};

static void encode(uint8_t b[SLOG_REC], uint32_t type, uint64_t id)
{
	put_le64(b, id);
	put_le32(b + 8, type);
	put_le32(b + 12, 0);
	put_le64(b + 16, sum64(b, 16, SLOG_SEED));
}

int slog_open(int dirfd, bool read_only, struct slog **out,
	      void (*cb)(void *arg, const struct slog_rec *r), void *arg)
{
	struct slog *s = calloc(1, sizeof *s);
	if (!s)
		return -ENOMEM;
	s->dirfd = dirfd;
	s->read_only = read_only;
	bool existed = faccessat(dirfd, SLOG_NAME, F_OK, 0) == 0;
	s->fd = openat(dirfd, SLOG_NAME,
		       read_only ? O_RDONLY | O_CLOEXEC : O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (s->fd >= 0 && !existed)
		fs_fsync_dir(dirfd);	/* the journal's name must survive a crash too */
	if (s->fd < 0) {
		int e = -errno;
		if (read_only && e == -ENOENT) {
			*out = s;
			return 0;
		}
		free(s);
		return e;
	}
	uint8_t *buf;
	size_t len;
	int r = fs_read_file(dirfd, SLOG_NAME, &buf, &len);
	if (r) {
		close(s->fd);
		free(s);
		return r;
	}
	/* Records are fixed-size, so a bad one in the middle (a flipped bit)
	 * is skipped without losing the ones after it; only a tail shorter
	 * than a record is torn. A lost fact is harmless: a hand-off is done
	 * again, a segment stays unevicted until confirmed again. */
	size_t off = 0, bad = 0;
	while (off + SLOG_REC <= len) {
		const uint8_t *b = buf + off;
		if (get_le64(b + 16) == sum64(b, 16, SLOG_SEED) && !get_le32(b + 12)) {
			struct slog_rec rec = { .id = get_le64(b), .type = get_le32(b + 8) };
			if (cb)
				cb(arg, &rec);
		} else {
			bad++;
		}
		off += SLOG_REC;
		s->nrec++;
	}
	free(buf);
	if (bad)
		qlog_warn("cache: %s: %zu corrupt records skipped", SLOG_NAME, bad);
	if (off != len) {
		qlog_warn("cache: %s: torn or corrupt tail of %zu bytes at offset %zu%s",
			  SLOG_NAME, len - off, off, read_only ? " (left as is, read-only)" : " truncated");
		if (!read_only && (ftruncate(s->fd, (off_t)off) < 0 || fdatasync(s->fd) < 0)) {
			int e = -errno;
			close(s->fd);
			free(s);
			return e;
		}
	}
	*out = s;
	return 0;
}

int slog_append(struct slog *s, uint32_t type, uint64_t id)
{
	if (s->read_only || s->fd < 0)
		return -EROFS;
	uint8_t b[SLOG_REC];
	encode(b, type, id);
	int r = fs_pwrite_all(s->fd, b, sizeof b, (off_t)(s->nrec * SLOG_REC));
	if (!r && fdatasync(s->fd) < 0)
		r = -errno;
	if (!r)
		s->nrec++;
	return r;
}

size_t slog_records(const struct slog *s)
{
	return s->nrec;
}

int slog_rewrite(struct slog *s, const struct slog_rec *recs, size_t n)
{
	if (s->read_only)
		return -EROFS;
	uint8_t *buf = malloc(n * SLOG_REC + 1);
	if (!buf)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		encode(buf + i * SLOG_REC, recs[i].type, recs[i].id);
	int r = fs_write_atomic(s->dirfd, SLOG_NAME, buf, n * SLOG_REC, 0644);
	free(buf);
	if (r)
		return r;
	int fd = openat(s->dirfd, SLOG_NAME, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	close(s->fd);
	s->fd = fd;
	s->nrec = n;
	return 0;
}

void slog_close(struct slog *s)
{
	if (!s)
		return;
	if (s->fd >= 0)
		close(s->fd);
	free(s);
}
