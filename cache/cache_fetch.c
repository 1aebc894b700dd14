/* cache/cache_fetch.c - hooks: running them, and bringing a missing segment
 * back through the segment-missing hook.
 */
#include "cache_int.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hook.h"
#include "segment.h"
#include "../common/fsutil.h"
#include "../common/qlog.h"

int run_hook(struct cache *c, const char *event, const char *const *args)
{
	char e_event[64], e_dir[4200], e_vol[64], e_size[64];
	snprintf(e_event, sizeof e_event, "QSFS_EVENT=%s", event);
	snprintf(e_dir, sizeof e_dir, "QSFS_CACHE_DIR=%s", c->dir);
	snprintf(e_vol, sizeof e_vol, "QSFS_VOLUME_ID=%s", c->volhex);
	snprintf(e_size, sizeof e_size, "QSFS_SEGMENT_SIZE=%" PRIu64, c->o.segment_size);
	const char *env[] = { e_event, e_dir, e_vol, e_size, NULL };
	/* every hook holds a shared lock on CACHE_DIR/HOOKS while it (or
	 * anything it started) runs: qsfs-wait-hooks takes it exclusively to
	 * know that no hook is left, even one orphaned by a killed qsfs-fs */
	int lk = openat(c->dirfd, CACHE_HOOKS_LOCK, O_RDONLY | O_CREAT | O_CLOEXEC, 0600);
	if (lk >= 0 && flock(lk, LOCK_SH) < 0) {
		close(lk);
		lk = -1;
	}
	atomic_fetch_add(&c->hooks_running, 1);
	uint64_t t0 = fs_now_ns();
	int r = c->o.handoff ? c->o.handoff(c->o.handoff_arg, event, args)
		: hook_run(c->hook, event, args, env, c->o.hook_timeout_ms, lk);
	atomic_fetch_sub(&c->hooks_running, 1);
	if (!r && (!strcmp(event, "segment-sealed") || !strcmp(event, "checkpoint-written"))) {
		atomic_fetch_add(&c->handoffs_done, 1);
		atomic_fetch_add(&c->handoff_ns, fs_now_ns() - t0);
	}
	if (lk >= 0)
		close(lk);
	return r;
}

/* Run the hook, which writes the segment to "<name>.tmp"; check what it left
 * there and only then rename it into place. A crash or a failed hook leaves
 * at most a *.tmp file, which open removes. */
static int fetch_segment(struct cache *c, struct seg *s)
{
	char name[SEG_NAME_LEN], tmp[SEG_NAME_LEN + 8], path[4200], ids[32];
	seg_name(s->id, name);
	snprintf(tmp, sizeof tmp, "%s.tmp", name);
	cache_path(c, tmp, path, sizeof path);
	if (!c->handoff_on) {
		qlog_err("cache: segment %" PRIu64 " (%s/%s) is not on local disk and no hook is "
			 "configured to fetch it", s->id, c->dir, name);
		return -EIO;
	}
	snprintf(ids, sizeof ids, "%" PRIu64, s->id);
	const char *args[] = { ids, path, NULL };
	atomic_fetch_add(&c->missing_fetches, 1);
	unlinkat(c->dirfd, tmp, 0);
	int h = run_hook(c, "segment-missing", args);
	if (h) {
		char b[64];
		qlog_err("cache: segment-missing hook for segment %" PRIu64 " failed (%s); "
			 "reads that need it fail with EIO", s->id, hook_strresult(h, b, sizeof b));
		unlinkat(c->dirfd, tmp, 0);
		return -EIO;
	}
	int fd = openat(c->dirfd, tmp, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		qlog_err("cache: segment-missing hook for segment %" PRIu64 " succeeded but left "
			 "nothing at %s: %s", s->id, path, strerror(errno));
		return -EIO;
	}
	struct seg_scan_result res;
	int r = seg_scan(fd, s->id, c->volid, false, NULL, NULL, NULL, &res);
	const char *why = r == -EBADMSG ? res.why : r ? strerror(-r) :
			  !res.clean ? res.why : !res.sealed ? "no seal record at the end" : NULL;
	uint64_t where = !res.clean ? res.bad_off : res.end;
	pthread_rwlock_rdlock(&c->lock);
	uint64_t want = s->size;
	pthread_rwlock_unlock(&c->lock);
	if (!why && want && res.file_size != want)
		why = "size differs from the one recorded at seal";
	if (!why && (fsync(fd) < 0 || renameat(c->dirfd, tmp, c->dirfd, name) < 0 ||
		     fs_fsync_dir(c->dirfd) < 0))
		why = strerror(errno);
	if (why) {
		qlog_err("cache: segment %" PRIu64 " brought back by the hook is invalid (%s at "
			 "offset %" PRIu64 "); removed", s->id, why, where);
		close(fd);
		unlinkat(c->dirfd, tmp, 0);
		return -EIO;
	}
	fchmod(fd, 0444);
	pthread_rwlock_wrlock(&c->lock);
	s->fd = fd;
	s->size = res.file_size;
	/* an evicted segment comes back (FETCH); otherwise this is open
	 * rebuilding a segment replay needs from the file, before the
	 * journal's facts give it a state (or a sealed file lost from local
	 * disk before it was confirmed), and only the file's facts are set */
	enum seg_life was = seglife_of(s->flags, false);
	if (was == SL_EVICTED || was == SL_AWAY)
		seg_step(c, s, SE_FETCH);
	else
		s->flags |= SF_LOCAL | SF_SEALED;
	/* most recently used, and pinned for the reader that asked for it
	 * (released by ensure_local's caller): the eviction this fetch may
	 * trigger must not take it back before that reader has it */
	atomic_store(&s->last_read, atomic_fetch_add(&c->tick, 1) + 1);
	atomic_fetch_add(&s->pins, 1);
	atomic_store(&s->last_read, atomic_fetch_add(&c->tick, 1) + 1);
	pthread_rwlock_unlock(&c->lock);
	qlog_info("cache: segment %" PRIu64 " fetched back (segment-missing hand-off)", s->id);
	return 0;
}

/* Fetching segment s failed while it is AWAY (handed off, not yet known
 * to be stored, its file set aside as seg-N.qseg.corrupt after a record
 * failed its checks): storage's copy is no better (it may be the very
 * same bytes, hard-linked into stor's journal) or cannot be had, so the
 * local file comes back, and only the damaged record fails, not every
 * record of the segment. 0 when it came back, else -EIO. */
static int restore_aside(struct cache *c, struct seg *s)
{
	if (c->o.read_only)
		return -EIO;
	char name[SEG_NAME_LEN], bad[SEG_NAME_LEN + 16];
	seg_name(s->id, name);
	snprintf(bad, sizeof bad, "%s.corrupt", name);
	pthread_rwlock_wrlock(&c->lock);
	int r = -EIO;
	if (seglife_of(s->flags, false) == SL_AWAY && s->fd < 0 &&
	    renameat(c->dirfd, bad, c->dirfd, name) == 0) {
		fs_fsync_dir(c->dirfd);
		int fd = openat(c->dirfd, name, O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			s->fd = fd;
			seg_step(c, s, SE_FETCH);
			if (c->local_repairs)
				c->local_repairs--;	/* set aside, but not repaired */
			r = 0;
		}
	}
	pthread_rwlock_unlock(&c->lock);
	if (!r)
		qlog_warn("cache: storage has no better copy of segment %" PRIu64 " for now; its "
			  "local file is kept (only the damaged record fails)", s->id);
	return r;
}

int ensure_local(struct cache *c, uint64_t id, struct seg **pinned)
{
	*pinned = NULL;
	pthread_rwlock_rdlock(&c->lock);
	struct seg *s = seg_find(c, id);
	bool local = s && (s->flags & SF_LOCAL), lost = s && seg_lost_read(c, s);
	pthread_rwlock_unlock(&c->lock);
	if (!s)	/* removed by garbage collection since the caller looked */
		return -ENOENT;
	if (lost)	/* no copy anywhere: do not ask storage (cache_lost.c) */
		return -EIO;
	if (local)
		return 0;
	pthread_mutex_lock(&c->fmu);
	/* cache_remove_dead takes it out of the table under c->fmu: once we
	 * hold c->fmu and still find it there, no removal can start before
	 * this fetch is marked below */
	pthread_rwlock_rdlock(&c->lock);
	bool gone = seg_find(c, id) != s;
	pthread_rwlock_unlock(&c->lock);
	if (gone) {
		pthread_mutex_unlock(&c->fmu);
		return -ENOENT;
	}
	if (s->fetching) {
		uint64_t gen = s->fetch_gen;
		while (s->fetching && s->fetch_gen == gen)
			pthread_cond_wait(&c->fcv, &c->fmu);
		int r = s->fetch_err;
		pthread_mutex_unlock(&c->fmu);
		return r;
	}
	/* it may have arrived between the check and here */
	pthread_rwlock_rdlock(&c->lock);
	local = s->flags & SF_LOCAL;
	pthread_rwlock_unlock(&c->lock);
	if (local) {
		pthread_mutex_unlock(&c->fmu);
		return 0;
	}
	s->fetching = true;
	pthread_mutex_unlock(&c->fmu);

	int r = fetch_segment(c, s);
	if (!r)
		*pinned = s;
	else if (restore_aside(c, s) == 0)
		r = 0;	/* not pinned: an unconfirmed segment is never evicted */

	pthread_mutex_lock(&c->fmu);
	s->fetching = false;
	s->fetch_gen++;
	s->fetch_err = r;
	pthread_cond_broadcast(&c->fcv);
	pthread_mutex_unlock(&c->fmu);
	if (!r && c->worker_started)
		worker_kick(c, false, false);	/* may now be over the limit */
	return r;
}

int cache_prefetch(struct cache *c, uint64_t id)
{
	if (c->o.read_only)
		return -EROFS;
	pthread_rwlock_rdlock(&c->lock);
	struct seg *s = seg_find(c, id);
	bool local = s && (s->flags & SF_LOCAL);
	pthread_rwlock_unlock(&c->lock);
	if (!s)
		return -ENOENT;
	if (local)
		return 0;
	struct seg *pinned;
	int r = ensure_local(c, id, &pinned);
	if (pinned)
		atomic_fetch_sub(&pinned->pins, 1);
	return r ? r : pinned ? 1 : 0;
}
