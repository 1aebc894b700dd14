/* cache/cache_space.c - the cache disk's free space, and the reserve file.
 *
 * A log cannot delete without writing: a delete is a tombstone appended,
 * a clean stop appends a seal record, starts a segment and writes a
 * checkpoint, a start creates a segment. So on a full disk nothing at all
 * could be done, not even freeing space. The log keeps room for these:
 *
 * - CACHE_DIR/reserve, a file of cache_opts.disk_reserve (R) bytes
 *   (fallocate'd, so its blocks are really taken), made at open when the
 *   disk has room and made again by the worker once 2R are free. When an
 *   append, a segment's creation, a checkpoint or a journal record meets
 *   a real ENOSPC (another program filled the disk, or the log's own look
 *   at the free space came too late), the reserve is given up (truncated
 *   and unlinked: its blocks are free at once) and the write is tried once
 *   more. A write that fails with ENOSPC from pwrite has been cut back
 *   already (write_tail, fs_write_atomic, slog_append write whole records
 *   again at the same offset), so the retry cannot leave half a record
 *   behind; an fdatasync error is never retried here (cache_int.h:
 *   io_error).
 * - "low": less than R free beyond the reserve file (2R while the reserve
 *   is given up, so that making it again leaves R). The log itself refuses
 *   nothing then; its user refuses new data (qsfs-fs: writes, fallocate,
 *   creates get ENOSPC or wait for uploads, fs/qfs_node.c qfs_room) while
 *   deletes, truncates and the stop go on, first in the R still free, then
 *   in the reserve. Looked at with statvfs, cheaply: after every
 *   SPACE_CHECK_BYTES appended, in each worker pass and eviction, in
 *   cache_stats, and at most every SPACE_RECHECK_NS while low (so that
 *   freed space is seen within a fraction of a second).
 * - eviction by free space (cache_worker.c evict_locked): confirmed
 *   segments, least recently read first, also go while less than 2R
 *   (3R without the reserve) is free, not only over max_size.
 *
 * - a start on a disk full even without the reserve opens the log with
 *   no active segment (space_open_without_active).
 * - cache_uploads_pending tells a writer meeting a low disk whether
 *   waiting can help (segments whose confirmation lets them be evicted).
 *
 * R = 0 turns all of it off.
 */
#include "cache_int.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "../common/fsutil.h"
#include "../common/qlog.h"
#include "../common/units.h"

#define SPACE_CHECK_BYTES (1u << 20)	/* appended between two looks */
#define SPACE_RECHECK_NS (200ull * 1000 * 1000)	/* while low */

/* Is free (beyond the reserve file) low, with the reserve held or not? */
static bool low_for(uint64_t reserve, uint64_t free, bool held)
{
	return reserve && free < (held ? reserve : 2 * reserve);
}

void space_init(struct cache *c)
{
	pthread_mutex_init(&c->space.mu, NULL);
}

void space_destroy(struct cache *c)
{
	pthread_mutex_destroy(&c->space.mu);
}

/* statvfs of the cache directory: free bytes an unprivileged writer may
 * use (f_bavail: the root reserve of ext4 does not count) and the disk's
 * size. */
static int disk_look(const struct cache *c, uint64_t *free, uint64_t *total)
{
	struct statvfs sv;
	if (fstatvfs(c->dirfd, &sv) < 0)
		return -errno;
	*free = (uint64_t)sv.f_bavail * sv.f_frsize;
	*total = (uint64_t)sv.f_blocks * sv.f_frsize;
	return 0;
}

void space_check(struct cache *c)
{
	struct cache_space *sp = &c->space;
	uint64_t free = 0, total = 0;
	if (disk_look(c, &free, &total) < 0)
		return;	/* e.g. EINTR; the next look will do */
	atomic_store(&sp->free, free);
	atomic_store(&sp->total, total);
	atomic_store(&sp->checked_ns, fs_now_ns());
	atomic_store(&sp->since_check, 0);
	bool low = low_for(c->o.disk_reserve, free, atomic_load(&sp->held));
	if (atomic_exchange(&sp->low, low) == low)
		return;
	char fb[32], tb[32], rb[32];
	format_size(free, fb, sizeof fb);
	format_size(total, tb, sizeof tb);
	format_size(c->o.disk_reserve, rb, sizeof rb);
	if (low)
		qlog_warn("cache: the disk of %s is low on space: %s free of %s, under the reserve "
			  "of %s (cache.disk_reserve)%s; new data is refused, deletes go on, and "
			  "segments stored remotely are evicted to make room", c->dir, fb, tb, rb,
			  atomic_load(&sp->held) ? "" : ", which was used up");
	else
		qlog_info("cache: the disk of %s has room again: %s free of %s", c->dir, fb, tb);
}

void space_note_append(struct cache *c, uint64_t bytes)
{
	if (c->o.disk_reserve &&
	    atomic_fetch_add(&c->space.since_check, bytes) + bytes >= SPACE_CHECK_BYTES)
		space_check(c);
}

/* Make the reserve file (sp->mu held). 0, or -errno with nothing left
 * behind. */
static int reserve_make(struct cache *c)
{
	uint64_t want = c->o.disk_reserve;
	int fd = openat(c->dirfd, CACHE_RESERVE_FILE, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	int r = 0;
	if (fallocate(fd, 0, 0, (off_t)want) < 0) {
		r = -errno;
		if (r == -EOPNOTSUPP) {
			/* no fallocate here: zeros, written once (the file is
			 * kept across opens) */
			static const uint8_t zero[65536];
			r = 0;
			for (uint64_t off = 0; off < want && !r; off += sizeof zero) {
				size_t n = want - off < sizeof zero ? (size_t)(want - off) : sizeof zero;
				r = fs_pwrite_all(fd, zero, n, (off_t)off);
			}
		}
	}
	close(fd);
	if (r)
		unlinkat(c->dirfd, CACHE_RESERVE_FILE, 0);
	return r;
}

/* Is the reserve file there at its size? A crash may have left it part
 * made, and the configured size may have changed: then it goes. */
static bool reserve_present(struct cache *c)
{
	struct stat st;
	if (fstatat(c->dirfd, CACHE_RESERVE_FILE, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return false;
	if (S_ISREG(st.st_mode) && c->o.disk_reserve &&
	    (uint64_t)st.st_size == c->o.disk_reserve &&
	    (uint64_t)st.st_blocks * 512 >= c->o.disk_reserve)
		return true;
	unlinkat(c->dirfd, CACHE_RESERVE_FILE, 0);
	return false;
}

/* Make the reserve when it is missing and 2R are free (so R stay free
 * after it). sp->mu held. */
static void reserve_maybe_make(struct cache *c, bool at_open)
{
	struct cache_space *sp = &c->space;
	uint64_t free = 0, total = 0, want = c->o.disk_reserve;
	if (atomic_load(&sp->held) || disk_look(c, &free, &total) < 0 || free < 2 * want)
		return;
	int r = reserve_make(c);
	char rb[32];
	format_size(want, rb, sizeof rb);
	if (r) {
		qlog_warn("cache: cannot make the reserve %s/%s (%s): %s", c->dir,
			  CACHE_RESERVE_FILE, rb, strerror(-r));
		return;
	}
	atomic_store(&sp->held, true);
	if (!at_open)
		qlog_info("cache: the disk of %s has room again: the reserve (%s, %s/%s) is "
			  "made again", c->dir, rb, c->dir, CACHE_RESERVE_FILE);
}

void space_open(struct cache *c)
{
	struct cache_space *sp = &c->space;
	if (!c->o.read_only) {
		pthread_mutex_lock(&sp->mu);
		if (!c->o.disk_reserve)	/* none wanted (any more) */
			unlinkat(c->dirfd, CACHE_RESERVE_FILE, 0);
		else if (reserve_present(c))
			atomic_store(&sp->held, true);
		else
			reserve_maybe_make(c, true);
		pthread_mutex_unlock(&sp->mu);
	}
	/* quietly: the first look only reports a disk low already */
	uint64_t free = 0, total = 0;
	if (disk_look(c, &free, &total) == 0) {
		atomic_store(&sp->free, free);
		atomic_store(&sp->total, total);
		atomic_store(&sp->checked_ns, fs_now_ns());
		if (c->o.disk_reserve > total / 4 && !c->o.read_only) {
			char rb[32], tb[32];
			qlog_warn("cache: cache.disk_reserve (%s) is more than a quarter of the disk of "
				  "%s (%s): the reserve and as much again are kept free there, and "
				  "segments are evicted while less than twice it is free",
				  format_size(c->o.disk_reserve, rb, sizeof rb), c->dir,
				  format_size(total, tb, sizeof tb));
		}
	}
	if (c->o.disk_reserve)
		space_check(c);
}

bool space_release(struct cache *c, int err)
{
	if (err != -ENOSPC && err != -EDQUOT)
		return false;
	struct cache_space *sp = &c->space;
	pthread_mutex_lock(&sp->mu);
	bool had = atomic_load(&sp->held);
	if (had) {
		int fd = openat(c->dirfd, CACHE_RESERVE_FILE, O_WRONLY | O_CLOEXEC);
		if (fd >= 0) {	/* truncated first: blocks free even if it is open elsewhere */
			if (ftruncate(fd, 0) < 0)
				qlog_warn("cache: cannot truncate %s/%s: %s", c->dir,
					  CACHE_RESERVE_FILE, strerror(errno));
			close(fd);
		}
		unlinkat(c->dirfd, CACHE_RESERVE_FILE, 0);
		atomic_store(&sp->held, false);
		sp->released++;
	}
	pthread_mutex_unlock(&sp->mu);
	if (!had)
		return false;
	char rb[32], tb[32], wb[32];
	format_size(c->o.disk_reserve, rb, sizeof rb);
	format_size(atomic_load(&sp->total), tb, sizeof tb);
	format_size(2 * c->o.disk_reserve, wb, sizeof wb);
	qlog_warn("cache: the disk of %s (%s) is full (%s): gave up the reserve of %s (%s/%s) "
		  "so that deletes, seals and checkpoints can still be written; new data is "
		  "refused until %s are free there again", c->dir, tb, strerror(-err), rb, c->dir,
		  CACHE_RESERVE_FILE, wb);
	space_check(c);
	return true;
}

void space_work(struct cache *c)
{
	if (!c->o.disk_reserve || c->o.read_only)
		return;
	struct cache_space *sp = &c->space;
	if (!atomic_load(&sp->held)) {
		pthread_mutex_lock(&sp->mu);
		reserve_maybe_make(c, false);
		pthread_mutex_unlock(&sp->mu);
	}
	space_check(c);
}

uint64_t space_evict_goal(struct cache *c)
{
	uint64_t r = c->o.disk_reserve;
	if (!r)
		return 0;
	space_check(c);
	uint64_t free = atomic_load(&c->space.free);
	/* 2R free with the reserve held; without it 3R, so that making it
	 * again (at 2R) leaves 2R */
	uint64_t mark = atomic_load(&c->space.held) ? 2 * r : 3 * r;
	return free < mark ? mark - free : 0;
}

int journal_append(struct cache *c, uint32_t type, uint64_t id)
{
	/* slog_append writes the whole record at the journal's end each
	 * time, so a retry after ENOSPC cannot leave half of one */
	int r = slog_append(c->slog, type, id);
	if (r && space_release(c, r))
		r = slog_append(c->slog, type, id);
	return r;
}

bool cache_disk_low(struct cache *c)
{
	if (!atomic_load(&c->space.low))
		return false;
	if (fs_now_ns() - atomic_load(&c->space.checked_ns) >= SPACE_RECHECK_NS)
		space_check(c);
	return atomic_load(&c->space.low);
}

void cache_disk_state(struct cache *c, struct cache_disk *d)
{
	struct cache_space *sp = &c->space;
	space_check(c);
	pthread_mutex_lock(&sp->mu);
	*d = (struct cache_disk){
		.free = atomic_load(&sp->free), .total = atomic_load(&sp->total),
		.reserve = c->o.disk_reserve, .reserve_held = atomic_load(&sp->held),
		.reserve_released = sp->released, .low = atomic_load(&sp->low),
	};
	pthread_mutex_unlock(&sp->mu);
}

bool cache_uploads_pending(struct cache *c)
{
	bool any = false;
	if (!c->handoff_on)	/* nothing is ever confirmed */
		return false;
	pthread_rwlock_rdlock(&c->lock);
	for (uint64_t i = c->last_seg; i >= 1 && !any; i--) {
		const struct seg *s = c->segs[i];
		any = s && (s->flags & SF_SEALED) && !(s->flags & (SF_CONFIRMED | SF_LOST));
	}
	pthread_rwlock_unlock(&c->lock);
	return any;
}

int space_open_without_active(struct cache *c)
{
	struct cache_disk d;
	cache_disk_state(c, &d);
	char fb[32], tb[32];
	qlog_err("cache: the disk of %s is full (%s free of %s): no segment can be started, so "
		 "the log opens without one; every write fails with ENOSPC until space is freed "
		 "there", c->dir, format_size(d.free, fb, sizeof fb),
		 format_size(d.total, tb, sizeof tb));
	atomic_store(&c->space.low, true);
	return 0;
}
