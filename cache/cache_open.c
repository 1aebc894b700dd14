/* cache/cache_open.c - opening, recovery and closing of the segment log.
 *
 * Open = volume check, state journal, newest valid checkpoint chain, replay
 * of the segments after it (the active one last, with torn-tail repair),
 * hand-off state, then the worker and the `ready` hook.
 */
#include "cache_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hook.h"
#include "segment.h"
#include "../common/fsutil.h"
#include "../common/qlog.h"

#define VOLUME_FILE "VOLUME"
#define LOCK_FILE "LOCK"

struct u64vec {
	uint64_t *v;
	size_t n, cap;
};

static int u64_push(struct u64vec *a, uint64_t x)
{
	if (a->n == a->cap) {
		size_t nc = a->cap ? a->cap * 2 : 64;
		uint64_t *nv = realloc(a->v, nc * sizeof *nv);
		if (!nv)
			return -ENOMEM;
		a->v = nv;
		a->cap = nc;
	}
	a->v[a->n++] = x;
	return 0;
}

static int u64_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static void u64_sort(struct u64vec *a)
{
	if (a->n)
		qsort(a->v, a->n, sizeof *a->v, u64_cmp);
}

static bool u64_has(const struct u64vec *a, uint64_t x)
{
	return a->n && bsearch(&x, a->v, a->n, sizeof x, u64_cmp);
}

/* --- volume id ---------------------------------------------------------- */

int cache_volume_read(int dirfd, uint8_t id[VOLUME_ID_SIZE])
{
	uint8_t *buf;
	size_t len;
	int r = fs_read_file(dirfd, VOLUME_FILE, &buf, &len);
	if (r)
		return r;
	char text[2 * VOLUME_ID_SIZE + 1];
	bool ok = len == 2 * VOLUME_ID_SIZE + 1 && buf[len - 1] == '\n';
	if (ok) {
		memcpy(text, buf, 2 * VOLUME_ID_SIZE);
		text[2 * VOLUME_ID_SIZE] = 0;
		ok = fs_unhex(text, id, VOLUME_ID_SIZE) == 0;
	}
	free(buf);
	return ok ? 0 : -EBADMSG;
}

int cache_adopt(const char *dir, const uint8_t volume_id[VOLUME_ID_SIZE], uint64_t seg_upto,
		const uint64_t *ckpts, size_t nckpts, const uint64_t *removed, size_t nremoved,
		const uint64_t *lost, size_t nlost)
{
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	uint8_t have[VOLUME_ID_SIZE];
	int r = cache_volume_read(dfd, have);
	if (r != -ENOENT) {
		close(dfd);
		return r ? r : -EEXIST;
	}
	struct slog *sl = NULL;
	struct slog_rec *recs = NULL;
	size_t n = 0;
	if (seg_upto > (1u << 30) || nckpts > (1u << 30) || nremoved > (1u << 30) ||
	    nlost > (1u << 30)) {
		r = -EINVAL;
		goto out;
	}
	recs = malloc((2 * seg_upto + nckpts + nremoved + nlost + 1) * sizeof *recs);
	if (!recs) {
		r = -ENOMEM;
		goto out;
	}
	for (uint64_t id = 1, li = 0; id <= seg_upto; id++) {
		while (li < nlost && lost[li] < id)
			li++;
		recs[n++] = (struct slog_rec){ id, SLOG_SEG_HANDED };
		/* lost: storage recorded the loss (HANDED), nothing to confirm */
		recs[n++] = (struct slog_rec){ id, li < nlost && lost[li] == id ? SLOG_SEG_LOST
								     : SLOG_SEG_CONFIRMED };
	}
	for (size_t i = 0; i < nckpts; i++)
		recs[n++] = (struct slog_rec){ ckpts[i], SLOG_CKPT_HANDED };
	for (size_t i = 0; i < nremoved; i++)
		recs[n++] = (struct slog_rec){ removed[i], SLOG_SEG_DEL_HANDED };
	r = slog_open(dfd, false, &sl, NULL, NULL);
	if (!r)
		r = slog_rewrite(sl, recs, n);
	if (!r) {	/* VOLUME last: until it is there the directory counts as empty */
		char line[2 * VOLUME_ID_SIZE + 2];
		fs_hex(volume_id, VOLUME_ID_SIZE, line);
		strcat(line, "\n");
		r = fs_write_atomic(dfd, VOLUME_FILE, line, strlen(line), 0644);
	}
out:
	if (sl)
		slog_close(sl);
	free(recs);
	close(dfd);
	return r;
}

static int load_volume(struct cache *c, bool dir_has_data)
{
	int r = cache_volume_read(c->dirfd, c->volid);
	if (r == -ENOENT) {
		if (dir_has_data) {
			qlog_err("cache: %s holds segments or checkpoints but no %s file; "
				 "refusing to guess which volume it belongs to", c->dir, VOLUME_FILE);
			return -EINVAL;
		}
		if (c->o.read_only) {
			qlog_err("cache: %s is not a qsfs cache directory (no %s file)", c->dir,
				 VOLUME_FILE);
			return -ENOENT;
		}
		if (c->o.volume_id)
			memcpy(c->volid, c->o.volume_id, VOLUME_ID_SIZE);
		else if (getrandom(c->volid, VOLUME_ID_SIZE, 0) != VOLUME_ID_SIZE)
			return -EIO;
		char line[2 * VOLUME_ID_SIZE + 2];
		fs_hex(c->volid, VOLUME_ID_SIZE, line);
		strcat(line, "\n");
		r = fs_write_atomic(c->dirfd, VOLUME_FILE, line, strlen(line), 0644);
		if (r)
			qlog_err("cache: cannot write %s/%s: %s", c->dir, VOLUME_FILE, strerror(-r));
		return r;
	}
	if (r == -EBADMSG) {
		qlog_err("cache: %s/%s is malformed (expected 32 hex digits and a newline)",
			 c->dir, VOLUME_FILE);
		return -EINVAL;
	}
	if (r) {
		qlog_err("cache: cannot read %s/%s: %s", c->dir, VOLUME_FILE, strerror(-r));
		return r;
	}
	if (c->o.volume_id && memcmp(c->o.volume_id, c->volid, VOLUME_ID_SIZE)) {
		char want[2 * VOLUME_ID_SIZE + 1], have[2 * VOLUME_ID_SIZE + 1];
		fs_hex(c->o.volume_id, VOLUME_ID_SIZE, want);
		fs_hex(c->volid, VOLUME_ID_SIZE, have);
		qlog_err("cache: %s belongs to volume %s, not to volume %s", c->dir, have, want);
		return -EINVAL;
	}
	return 0;
}

/* --- checkpoints ------------------------------------------------------- */

struct ckpt_rec *ckpt_rec_find(struct cache *c, uint64_t id)
{
	for (size_t i = 0; i < c->nckpts; i++)
		if (c->ckpts[i].id == id)
			return &c->ckpts[i];
	return NULL;
}

struct ckpt_rec *ckpt_rec_add(struct cache *c, const struct ckpt_rec *r)
{
	if (c->nckpts == c->ckpts_cap) {
		size_t nc = c->ckpts_cap ? c->ckpts_cap * 2 : 16;
		struct ckpt_rec *nv = realloc(c->ckpts, nc * sizeof *nv);
		if (!nv)
			return NULL;
		c->ckpts = nv;
		c->ckpts_cap = nc;
	}
	size_t i = c->nckpts;
	while (i > 0 && c->ckpts[i - 1].id > r->id) {
		c->ckpts[i] = c->ckpts[i - 1];
		i--;
	}
	c->ckpts[i] = *r;
	c->nckpts++;
	if (r->id >= c->next_ckpt_id)
		c->next_ckpt_id = r->id + 1;
	return &c->ckpts[i];
}

static void set_aside(struct cache *c, const char *name)
{
	if (c->o.read_only)
		return;
	char bad[64];
	snprintf(bad, sizeof bad, "%s.corrupt", name);
	if (renameat(c->dirfd, name, c->dirfd, bad) == 0)
		qlog_warn("cache: %s renamed to %s for inspection", name, bad);
}

/* Take a removed segment's entry out of the table (open only: no reader
 * can hold it yet). */
static void forget_seg(struct cache *c, uint64_t id)
{
	struct seg *s = seg_find(c, id);
	if (!s)
		return;
	if (s->fd >= 0)
		close(s->fd);
	free(s);
	c->segs[id] = NULL;
}

/* Apply one verified checkpoint file to the (empty or base) state. */
static int apply_ckpt(struct cache *c, const struct ckpt_file *f)
{
	for (uint64_t i = 0; i < f->nsegs; i++) {
		struct ckpt_seg s;
		ckpt_get_seg(f, i, &s);
		if (s.flags & CKPT_SEG_REMOVED) {	/* removed by garbage collection */
			forget_seg(c, s.id);
			if (removed_note(c, s.id, false))
				return -ENOMEM;
			continue;
		}
		struct seg *sg = seg_get_or_add(c, s.id);
		if (!sg)
			return -ENOMEM;
		sg->size = s.size;
		sg->live = s.live;
		sg->flags |= SF_SEALED;
	}
	const uint8_t *pos = f->keys;
	struct ckpt_ent e;
	while (ckpt_next(f, &pos, &e)) {
		int r = 0;
		if (e.op == CKPT_PUT)
			r = ix_put(c->ix, e.key, e.klen, e.loc, NULL);
		else
			ix_del(c->ix, e.key, e.klen, NULL);
		if (r < 0)
			return r;
	}
	return 0;
}

/* Verify every checkpoint file, load the newest valid full and the chain of
 * deltas after it. Sets *upto to the last segment covered (0: none). */
static int load_checkpoints(struct cache *c, struct u64vec *ids, uint64_t *upto)
{
	struct ckpt_file *files = calloc(ids->n ? ids->n : 1, sizeof *files);
	bool *ok = calloc(ids->n ? ids->n : 1, sizeof *ok);
	int ret = -ENOMEM;
	*upto = 0;
	if (!files || !ok)
		goto out;
	for (size_t i = 0; i < ids->n; i++) {
		char name[CKPT_NAME_LEN];
		const char *why;
		ckpt_name(ids->v[i], name);
		int r = ckpt_open(c->dirfd, name, c->volid, &files[i], &why);
		if (r == 0 && files[i].hdr.id != ids->v[i]) {
			ckpt_close(&files[i]);
			r = -EBADMSG;
			why = "header names another checkpoint id";
		}
		if (r == -EBADMSG) {
			qlog_warn("cache: checkpoint %s/%s is unusable (%s); skipping it for an "
				  "older checkpoint or a replay of the segments", c->dir, name, why);
			set_aside(c, name);
			continue;
		}
		if (r) {
			/* not a verdict on the file (EMFILE, ENOMEM, EACCES...):
			 * falling back would throw a good checkpoint away */
			qlog_err("cache: cannot read checkpoint %s/%s: %s", c->dir, name, strerror(-r));
			ret = r;
			goto out;
		}
		ok[i] = true;
		struct stat st;
		uint64_t bytes = fstatat(c->dirfd, name, &st, 0) == 0 ? (uint64_t)st.st_size : 0;
		struct ckpt_rec rec = {
			.id = files[i].hdr.id, .from = files[i].hdr.from,
			.upto = files[i].hdr.upto, .kind = files[i].hdr.kind,
			.bytes = bytes, .written = true,
		};
		if (!ckpt_rec_add(c, &rec))
			goto out;
	}
	/* newest full: highest upto, then highest id */
	ssize_t base = -1;
	for (size_t i = 0; i < ids->n; i++) {
		if (!ok[i] || files[i].hdr.kind != CKPT_FULL)
			continue;
		if (base < 0 || files[i].hdr.upto > files[base].hdr.upto ||
		    (files[i].hdr.upto == files[base].hdr.upto && files[i].hdr.id > files[base].hdr.id))
			base = (ssize_t)i;
	}
	uint64_t cur = 0;
	size_t ndeltas = 0;
	if (base >= 0) {
		ret = apply_ckpt(c, &files[base]);
		if (ret)
			goto out;
		cur = files[base].hdr.upto;
	}
	for (;;) {
		ssize_t next = -1;
		for (size_t i = 0; i < ids->n; i++)
			if (ok[i] && files[i].hdr.kind == CKPT_DELTA && files[i].hdr.from == cur &&
			    files[i].hdr.upto > cur &&
			    (next < 0 || files[i].hdr.id > files[next].hdr.id))
				next = (ssize_t)i;
		if (next < 0)
			break;
		ret = apply_ckpt(c, &files[next]);
		if (ret)
			goto out;
		cur = files[next].hdr.upto;
		ndeltas++;
	}
	if (base >= 0 || ndeltas) {
		char name[CKPT_NAME_LEN] = "(none)";
		if (base >= 0)
			ckpt_name(files[base].hdr.id, name);
		qlog_info("cache: %s: loaded checkpoint %s and %zu deltas, covering segments "
			  "1..%" PRIu64, c->dir, name, ndeltas, cur);
	} else if (ids->n) {
		qlog_warn("cache: %s: no usable checkpoint; replaying every segment", c->dir);
	}
	*upto = cur;
	ret = 0;
out:
	if (files)
		for (size_t i = 0; i < ids->n; i++)
			if (ok && ok[i])
				ckpt_close(&files[i]);
	free(files);
	free(ok);
	return ret;
}

/* Segments removed by garbage collection (state.log and the checkpoints
 * say which): out of the table, their files (a crash came between the fact
 * and the unlink) deleted and out of the listing. Every one must lie within
 * the loaded chain (upto): the segments after it are replayed, and a
 * removed one cannot be (cache_gc.c explains why this holds for every chain
 * garbage collection left behind). */
static int drop_removed(struct cache *c, struct u64vec *segs, uint64_t upto)
{
	if (!c->nremoved)
		return 0;
	uint64_t hi = c->removed[c->nremoved - 1].id;
	if (hi > upto) {
		qlog_err("cache: %s: segments up to %" PRIu64 " were removed by garbage "
			 "collection, but the newest usable checkpoint chain covers only "
			 "segments 1..%" PRIu64 " (its files are missing or damaged), so the log "
			 "cannot be rebuilt from this directory; move it aside and let qsfs-fs "
			 "restore the volume from the backends", c->dir, hi, upto);
		return -EIO;
	}
	size_t j = 0, gone = 0;
	for (size_t i = 0; i < segs->n; i++) {
		uint64_t id = segs->v[i];
		if (!removed_has(c, id)) {
			segs->v[j++] = id;
			continue;
		}
		char name[SEG_NAME_LEN];
		seg_name(id, name);
		if (!c->o.read_only && unlinkat(c->dirfd, name, 0) == 0)
			gone++;
	}
	segs->n = j;
	for (size_t i = 0; i < c->nremoved; i++)
		forget_seg(c, c->removed[i].id);
	if (gone) {
		fs_fsync_dir(c->dirfd);
		qlog_info("cache: %s: deleted %zu files of segments removed before a crash",
			  c->dir, gone);
	}
	return 0;
}

/* --- replay -------------------------------------------------------------- */

struct replay {
	struct cache *c;
	uint64_t id;
	int err;
};

static int replay_cb(void *arg, const struct seg_rec *r)
{
	struct replay *rp = arg;
	struct ix_loc loc = { .seg = (uint32_t)rp->id, .off = (uint32_t)r->off,
			      .len = (uint32_t)r->len };
	int e = apply_record(rp->c, r->type, r->key, r->klen, loc);
	if (e)
		rp->err = e;
	rp->c->open_replayed_records++;
	return e;
}

static int open_seg_fd(struct cache *c, uint64_t id, bool rw)
{
	char name[SEG_NAME_LEN];
	seg_name(id, name);
	int fd = openat(c->dirfd, name, (rw ? O_RDWR : O_RDONLY) | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

/* Replay segment id (local). last: it may be the active one. */
static int replay_segment(struct cache *c, uint64_t id, bool last, bool *is_active)
{
	char name[SEG_NAME_LEN];
	seg_name(id, name);
	bool rw = last && !c->o.read_only;
	int fd = open_seg_fd(c, id, rw);
	if (fd == -EACCES && rw)
		fd = open_seg_fd(c, id, false);
	if (fd < 0) {
		qlog_err("cache: cannot open %s/%s: %s", c->dir, name, strerror(-fd));
		return fd;
	}
	struct seg *s = seg_get_or_add(c, id);
	if (!s) {
		close(fd);
		return -ENOMEM;
	}
	s->fd = fd;
	s->flags |= SF_LOCAL | SF_DIRTY;
	struct replay rp = { .c = c, .id = id };
	struct seg_scan_result res;
	sum_reset(c->active_sum, 0);
	int r = seg_scan(fd, id, c->volid, false, replay_cb, &rp, c->active_sum, &res);
	if (r == -EBADMSG) {
		qlog_err("cache: %s/%s: %s", c->dir, name, res.why);
		return -EIO;
	}
	if (r) {
		qlog_err("cache: replay of %s/%s failed: %s", c->dir, name, strerror(-r));
		return r < 0 ? r : -EIO;
	}
	c->open_replayed_segments++;
	*is_active = false;
	if (res.sealed && !res.clean && !c->o.read_only) {
		/* nothing is ever written after a seal: bytes there are junk
		 * (e.g. a torn write past the end), not records */
		uint64_t cut = res.file_size - res.end;
		qlog_warn("cache: %s/%s: %" PRIu64 " bytes after the seal record at offset %"
			  PRIu64 " cut off", c->dir, name, cut, res.end);
		int wfd = open_seg_fd(c, id, true);
		if (wfd == -EACCES) {
			fchmodat(c->dirfd, name, 0644, 0);
			wfd = open_seg_fd(c, id, true);
			fchmodat(c->dirfd, name, 0444, 0);
		}
		if (wfd < 0 || ftruncate(wfd, (off_t)res.end) < 0 || fdatasync(wfd) < 0) {
			int e = wfd < 0 ? wfd : -errno;
			qlog_err("cache: cannot cut %s/%s: %s", c->dir, name, strerror(-e));
			if (wfd >= 0)
				close(wfd);
			return e;
		}
		close(wfd);
		res.file_size = res.end;
		res.clean = true;
	}
	if (!c->o.read_only && fdatasync(fd) < 0) {
		/* what the previous process wrote may still be only in the page
		 * cache: make it durable before anything (a checkpoint, a new
		 * segment) builds on it */
		int e = -errno;
		qlog_err("cache: fdatasync of %s/%s failed: %s", c->dir, name, strerror(-e));
		return e;
	}
	if (res.sealed && res.clean) {
		s->size = res.file_size;
		s->flags |= SF_SEALED;
		close(fd);	/* reopened on first read */
		s->fd = -1;
		return 0;
	}
	if (!last) {
		qlog_err("cache: corrupt record in sealed segment %" PRIu64 " (%s/%s) at offset %"
			 PRIu64 ": %s", id, c->dir, name, res.bad_off, res.why);
		return -EIO;
	}
	/* the active segment: cut a torn tail back to the last whole record */
	*is_active = true;
	c->active_old_format = res.version < SEG_VERSION;
	s->size = res.end;
	c->active_nrec = res.nrecords;
	c->active_since_ns = res.nrecords ? fs_now_ns() : 0;
	c->active_age_unknown = res.nrecords > 0;	/* counts as old: see cache_int.h */
	if (!res.clean) {
		uint64_t cut = res.file_size - res.end;
		if (c->o.read_only) {
			qlog_warn("cache: %s/%s: torn tail of %" PRIu64 " bytes at offset %" PRIu64
				  " (%s); left as is (read-only)", c->dir, name, cut, res.end, res.why);
		} else {
			qlog_warn("cache: %s/%s: torn tail of %" PRIu64 " bytes at offset %" PRIu64
				  " (%s) truncated", c->dir, name, cut, res.end, res.why);
			if (ftruncate(fd, (off_t)res.end) < 0 || fdatasync(fd) < 0) {
				int e = -errno;
				qlog_err("cache: cannot truncate %s/%s: %s", c->dir, name, strerror(-e));
				return e;
			}
		}
	}
	return 0;
}

/* Fetch segment id through the hook during open (before the worker). */
static int fetch_for_replay(struct cache *c, uint64_t id)
{
	if (c->o.read_only || !c->handoff_on) {
		qlog_err("cache: segment %" PRIu64 " is needed to replay %s but is not on local "
			 "disk%s", id, c->dir, c->o.read_only ? "" : " and no hook is configured");
		return -EIO;
	}
	struct seg *s = seg_get_or_add(c, id), *pinned;
	if (!s)
		return -ENOMEM;
	int r = ensure_local(c, id, &pinned);
	if (pinned)
		atomic_fetch_sub(&pinned->pins, 1);	/* no eviction runs during open */
	return r;
}

/* Segment id, needed by the replay at open, is neither local nor
 * retrievable and was never handed off: ask storage to record it lost (the
 * segment-lost hand-off). 0 when storage recorded the loss (journaled
 * here as LOST and HANDED, and the replay goes on without it); else a
 * negative errno (the open fails, as before: storage may only be down). */
static int lost_at_replay(struct cache *c, uint64_t id)
{
	if (c->o.read_only || !c->handoff_on)
		return -EIO;
	char ids[32];
	snprintf(ids, sizeof ids, "%" PRIu64, id);
	const char *args[] = { ids, NULL, NULL };
	int h = run_hook(c, "segment-lost", args);
	if (h) {
		qlog_err("cache: segment %" PRIu64 " is needed to replay %s, is not local, cannot "
			 "be fetched and was never handed off; storage did not record it lost "
			 "(hand-off result %d)", id, c->dir, h);
		return -EIO;
	}
	pthread_mutex_lock(&c->slog_mu);
	int r = journal_append(c, SLOG_SEG_LOST, id);
	if (!r)
		r = journal_append(c, SLOG_SEG_HANDED, id);
	pthread_mutex_unlock(&c->slog_mu);
	return r;
}

/* --- the journal --------------------------------------------------------- */

struct slog_load {
	struct u64vec handed, ckpt_handed, confirmed, removed, del_handed, lost;
	int err;
};

static void slog_cb(void *arg, const struct slog_rec *r)
{
	struct slog_load *l = arg;
	struct u64vec *v = r->type == SLOG_SEG_HANDED ? &l->handed :
			   r->type == SLOG_CKPT_HANDED ? &l->ckpt_handed :
			   r->type == SLOG_SEG_CONFIRMED ? &l->confirmed :
			   r->type == SLOG_SEG_REMOVED ? &l->removed :
			   r->type == SLOG_SEG_DEL_HANDED ? &l->del_handed :
			   r->type == SLOG_SEG_LOST ? &l->lost : NULL;
	if (v && u64_push(v, r->id))
		l->err = -ENOMEM;
}

/* Rewrite the journal when most of it describes things long gone. */
static void compact_slog(struct cache *c)
{
	size_t live = 0;
	for (uint64_t i = 1; i <= c->last_seg; i++)
		if (c->segs[i])
			live += !!(c->segs[i]->flags & SF_HANDED) + !!(c->segs[i]->flags & SF_CONFIRMED) +
				!!(c->segs[i]->flags & SF_LOST);
	for (size_t i = 0; i < c->nckpts; i++)
		live += c->ckpts[i].handed;
	live += c->nremoved;	/* kept for good: one record each */
	if (slog_records(c->slog) <= 2 * live + 1024)
		return;
	struct slog_rec *v = malloc((live + 1) * sizeof *v);
	if (!v)
		return;
	size_t n = 0;
	for (uint64_t i = 1; i <= c->last_seg; i++) {
		struct seg *s = c->segs[i];
		if (s && (s->flags & SF_HANDED))
			v[n++] = (struct slog_rec){ .id = i, .type = SLOG_SEG_HANDED };
		if (s && (s->flags & SF_CONFIRMED))
			v[n++] = (struct slog_rec){ .id = i, .type = SLOG_SEG_CONFIRMED };
		if (s && (s->flags & SF_LOST))
			v[n++] = (struct slog_rec){ .id = i, .type = SLOG_SEG_LOST };
	}
	for (size_t i = 0; i < c->nckpts; i++)
		if (c->ckpts[i].handed)
			v[n++] = (struct slog_rec){ .id = c->ckpts[i].id, .type = SLOG_CKPT_HANDED };
	for (size_t i = 0; i < c->nremoved; i++)	/* DEL_HANDED implies removed */
		v[n++] = (struct slog_rec){ .id = c->removed[i].id,
					    .type = c->removed[i].handed ? SLOG_SEG_DEL_HANDED
									 : SLOG_SEG_REMOVED };
	int r = slog_rewrite(c->slog, v, n);
	if (r)
		qlog_warn("cache: cannot compact state.log: %s", strerror(-r));
	free(v);
}

/* --- open / close ---------------------------------------------------------- */

static void cache_free(struct cache *c)
{
	if (!c)
		return;
	for (uint64_t i = 1; i <= c->last_seg && c->segs; i++) {
		if (!c->segs[i])
			continue;
		if (c->segs[i]->fd >= 0)
			close(c->segs[i]->fd);
		free(c->segs[i]);
	}
	free(c->segs);
	for (size_t i = 0; i < c->ngraveyard; i++) {
		if (c->graveyard[i]->fd >= 0)
			close(c->graveyard[i]->fd);
		free(c->graveyard[i]);
	}
	free(c->graveyard);
	free(c->removed);
	free(c->removed_new);
	for (size_t i = 0; i < c->nstale_fds; i++)
		close(c->stale_fds[i]);
	free(c->stale_fds);
	for (size_t i = 0; i < c->nckpts; i++)
		free(c->ckpts[i].buf);
	free(c->ckpts);
	free(c->dirty);
	if (c->ix)
		ix_free(c->ix);
	if (c->active_sum)
		sum_free(c->active_sum);
	slog_close(c->slog);
	if (c->lockfd >= 0)
		close(c->lockfd);
	if (c->dirfd >= 0)
		close(c->dirfd);
	pthread_rwlock_destroy(&c->lock);
	pthread_mutex_destroy(&c->slog_mu);
	pthread_mutex_destroy(&c->wmu);
	pthread_cond_destroy(&c->wcv);
	pthread_cond_destroy(&c->idle_cv);
	pthread_mutex_destroy(&c->fmu);
	space_destroy(c);
	pthread_cond_destroy(&c->fcv);
	free(c->dir);
	free(c->hook);
	free(c);
}

static int check_opts(struct cache_opts *o)
{
	if (!o->dir || !*o->dir) {
		qlog_err("cache: no cache directory given");
		return -EINVAL;
	}
	if (!o->segment_size)
		o->segment_size = CACHE_DEFAULT_SEGMENT_SIZE;
	if (o->segment_size < CACHE_MIN_SEGMENT_SIZE || o->segment_size > CACHE_MAX_SEGMENT_SIZE) {
		qlog_err("cache: segment size %" PRIu64 " is out of range (%llu bytes to 4 GiB)",
			 (uint64_t)o->segment_size, CACHE_MIN_SEGMENT_SIZE);
		return -EINVAL;
	}
	if (o->hook && o->handoff) {
		qlog_err("cache: both a hook program and a hand-off function given");
		return -EINVAL;
	}
	if (!o->hook_timeout_ms)
		o->hook_timeout_ms = CACHE_DEFAULT_HOOK_TIMEOUT_MS;
	if (!o->hook_retry_ms)
		o->hook_retry_ms = 1000;
	if (!o->checkpoint_every)
		o->checkpoint_every = 1;
	if (!o->max_open_fds)
		o->max_open_fds = 256;
	if (o->hook && !*o->hook)
		o->hook = NULL;
	if (o->hook && access(o->hook, X_OK) != 0) {
		qlog_err("cache: hook %s is not an executable file: %s", o->hook, strerror(errno));
		return -EINVAL;
	}
	return 0;
}

/* List the segment and checkpoint files of dirfd, sorted; with clean_tmp
 * remove what an interrupted atomic write left (*.tmp). */
static int scan_dir(int dirfd, bool clean_tmp, struct u64vec *segs, struct u64vec *ckpts)
{
	int fd = dup(dirfd);
	if (fd < 0)
		return -errno;
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -errno;
	}
	rewinddir(d);	/* a dup shares the directory offset */
	int r = 0;
	while (!r) {
		errno = 0;
		struct dirent *e = readdir(d);
		if (!e) {
			r = -errno;	/* 0 at the end; an error must not pass for the end */
			break;
		}
		uint64_t id;
		size_t l = strlen(e->d_name);
		if (seg_parse_name(e->d_name, &id))
			r = u64_push(segs, id);
		else if (ckpt_parse_name(e->d_name, &id))
			r = u64_push(ckpts, id);
		else if (clean_tmp && l > 4 && !strcmp(e->d_name + l - 4, ".tmp"))
			unlinkat(dirfd, e->d_name, 0);	/* an interrupted atomic write */
	}
	closedir(d);
	u64_sort(segs);
	u64_sort(ckpts);
	return r;
}

int cache_unhanded(const char *dir, uint64_t *n, uint64_t *first)
{
	*n = 0;
	if (first)
		*first = 0;
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	struct u64vec segs = { 0 }, ckpts = { 0 };
	struct slog_load sl = { 0 };
	struct slog *j = NULL;
	int r = faccessat(dfd, VOLUME_FILE, F_OK, 0) < 0 ? -errno : 0;	/* no cache (yet) */
	/* state.log before the listing: a segment handed off in between is
	 * at worst counted once more, never missed */
	if (!r)
		r = slog_open(dfd, true, &j, slog_cb, &sl);
	if (!r)
		r = sl.err;
	if (!r)
		r = scan_dir(dfd, false, &segs, &ckpts);
	u64_sort(&sl.handed);
	u64_sort(&sl.confirmed);
	for (size_t i = 0; !r && i < segs.n; i++) {	/* ascending ids */
		uint64_t id = segs.v[i];
		char name[SEG_NAME_LEN];
		struct stat st;
		if (u64_has(&sl.handed, id) || u64_has(&sl.confirmed, id))
			continue;
		seg_name(id, name);
		if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno != ENOENT)	/* ENOENT: evicted meanwhile, so confirmed */
				r = -errno;
			continue;
		}
		if ((uint64_t)st.st_size <= SEG_HDR_SIZE)	/* no record: nothing to lose */
			continue;
		if (first && !*n)
			*first = id;
		(*n)++;
	}
	if (j)
		slog_close(j);
	free(sl.handed.v);
	free(sl.ckpt_handed.v);
	free(sl.confirmed.v);
	free(sl.removed.v);
	free(sl.del_handed.v);
	free(sl.lost.v);
	free(segs.v);
	free(ckpts.v);
	close(dfd);
	return r;
}

static int recover(struct cache *c)
{
	struct u64vec segs = { 0 }, ckpts = { 0 };
	struct slog_load sl = { 0 };
	int r = scan_dir(c->dirfd, !c->o.read_only, &segs, &ckpts);
	if (r)
		goto out;
	r = load_volume(c, segs.n || ckpts.n);
	if (r)
		goto out;
	fs_hex(c->volid, VOLUME_ID_SIZE, c->volhex);
	r = slog_open(c->dirfd, c->o.read_only, &c->slog, slog_cb, &sl);
	if (!r)
		r = sl.err;
	if (r) {
		qlog_err("cache: cannot read %s/state.log: %s", c->dir, strerror(-r));
		goto out;
	}
	u64_sort(&sl.handed);
	u64_sort(&sl.ckpt_handed);
	u64_sort(&sl.confirmed);
	u64_sort(&sl.lost);

	u64_sort(&sl.del_handed);
	for (size_t i = 0; !r && i < sl.removed.n; i++)
		r = removed_note(c, sl.removed.v[i], u64_has(&sl.del_handed, sl.removed.v[i]));
	for (size_t i = 0; !r && i < sl.del_handed.n; i++)
		r = removed_note(c, sl.del_handed.v[i], true);
	if (r)
		goto out;

	uint64_t upto;
	r = load_checkpoints(c, &ckpts, &upto);
	if (r)
		goto out;
	c->built_upto = c->written_upto = upto;
	r = drop_removed(c, &segs, upto);
	if (r)
		goto out;

	/* covered segments: local ones are marked so; their fds are opened
	 * on first read (seg_open_fd keeps the number of open fds bounded) */
	for (size_t i = 0; i < segs.n && segs.v[i] <= upto; i++) {
		uint64_t id = segs.v[i];
		struct seg *s = seg_find(c, id);
		char name[SEG_NAME_LEN];
		seg_name(id, name);
		if (!s) {
			qlog_warn("cache: segment file %s in %s is not in the checkpoint; ignored",
				  name, c->dir);
			continue;
		}
		struct stat st;
		if (fstatat(c->dirfd, name, &st, 0) < 0) {
			r = -errno;
			qlog_err("cache: cannot stat %s/%s: %s", c->dir, name, strerror(-r));
			goto out;
		}
		if ((uint64_t)st.st_size != s->size) {
			/* not what was sealed (e.g. an interrupted copy): keep it
			 * for inspection and let the missing hook fetch it again */
			qlog_warn("cache: %s/%s is %lld bytes but was sealed at %" PRIu64 "; "
				  "treating it as missing", c->dir, name, (long long)st.st_size, s->size);
			if (!c->o.read_only)
				set_aside(c, name);
			continue;
		}
		s->flags |= SF_LOCAL;
	}
	/* segments after the checkpoint: replay in order, fetching gaps */
	uint64_t last = segs.n ? segs.v[segs.n - 1] : 0;
	uint64_t last_sealed = upto;
	bool have_active = false;
	for (uint64_t id = upto + 1; id <= last; id++) {
		if (!u64_has(&segs, id)) {
			/* lost, unless storage answered "stored after all" */
			bool lost = u64_has(&sl.lost, id) && !u64_has(&sl.confirmed, id);
			r = lost ? 0 : fetch_for_replay(c, id);
			if (r && !u64_has(&sl.handed, id) && lost_at_replay(c, id) == 0)
				lost = true;	/* storage recorded it: replay goes on */
			if (lost) {
				struct seg *ls = seg_get_or_add(c, id);
				if (!ls) {
					r = -ENOMEM;
					goto out;
				}
				ls->flags = SF_SEALED | SF_LOST;
				if (u64_has(&sl.handed, id))
					ls->flags |= SF_HANDED;
				last_sealed = id;
				qlog_err("cache: segment %" PRIu64 " was lost before it was handed "
					 "off, and no checkpoint covers it: replay goes on without its "
					 "records, which are unknown (what it changed reads as it was "
					 "before, or as a hole, not as EIO)", id);
				r = 0;
				continue;
			}
			if (r)
				goto out;
			close(c->segs[id]->fd);
			c->segs[id]->fd = -1;
		}
		bool is_active;
		r = replay_segment(c, id, id == last, &is_active);
		if (r)
			goto out;
		if (is_active) {
			have_active = true;
			c->active = c->segs[id];
		} else {
			last_sealed = id;
		}
		/* the delta of sealed segments must be built before the active
		 * segment's records enter the state */
		if (!c->o.read_only && id + 1 == last && last_sealed > c->built_upto) {
			r = build_delta(c, last_sealed);
			if (r)
				goto out;
		}
	}
	if (!have_active && !c->o.read_only && last_sealed > c->built_upto) {
		r = build_delta(c, last_sealed);
		if (r)
			goto out;
	}
	if (have_active && c->active_old_format && !c->o.read_only) {
		/* written by an older version: its format has no batches, so it
		 * is sealed as it is and appends go to a new segment */
		qlog_info("cache: segment %" PRIu64 " is in segment format %u; sealing it before "
			  "appending in format %u", c->active->id, SEG_VERSION_MIN, SEG_VERSION);
		int64_t sr = seal_locked(c);
		if (sr < 0) {
			r = (int)sr;
			goto out;
		}
		have_active = c->active != NULL;
	}
	if (c->last_seg < last)
		c->last_seg = last;
	/* lost segments no file or checkpoint names (the newest ones, on a
	 * restored node): known, so that no new segment takes their ids */
	for (size_t i = 0; i < sl.lost.n; i++) {
		uint64_t id = sl.lost.v[i];
		if (seg_find(c, id) || removed_has(c, id))
			continue;
		struct seg *ls = seg_get_or_add(c, id);
		if (!ls) {
			r = -ENOMEM;
			goto out;
		}
		ls->flags = SF_SEALED | SF_LOST;
	}
	/* hand-off state from the journal */
	for (uint64_t id = 1; id <= c->last_seg; id++) {
		struct seg *s = c->segs[id];
		if (!s)
			continue;
		if (u64_has(&sl.handed, id))
			s->flags |= SF_HANDED;
		if (u64_has(&sl.confirmed, id))
			s->flags |= SF_CONFIRMED;
		if (u64_has(&sl.lost, id) && !(s->flags & SF_CONFIRMED))
			s->flags = (s->flags | SF_LOST) & ~SF_LOCAL;
		if ((s->flags & SF_SEALED) && !(s->flags & (SF_LOCAL | SF_LOST)) &&
		    !(s->flags & SF_CONFIRMED)) {
			/* storage journaled it (HANDED): fetched from there; else
			 * its only copy is gone */
			if (!(s->flags & SF_HANDED) && c->handoff_on) {
				char why[300];
				snprintf(why, sizeof why, "its file is not in %s (or was set aside)",
					 c->dir);
				seg_lose(c, s, why);
			} else {
				qlog_warn("cache: segment %" PRIu64 " is neither on local disk nor "
					  "confirmed remote; reads of it depend on the "
					  "segment-missing hook", id);
			}
		}
	}
	for (size_t i = 0; i < c->nckpts; i++)
		c->ckpts[i].handed = u64_has(&sl.ckpt_handed, c->ckpts[i].id);
	if (!c->o.read_only) {
		compact_slog(c);
		if (!have_active) {
			r = new_active(c);
			if (r == -ENOSPC)
				r = space_open_without_active(c);
			if (r)
				goto out;
		} else {
			atomic_store(&c->active->synced, c->active->size);
		}
	}
	/* when dead segments died is not recorded: the active segment now is
	 * an upper bound (what killed them is at or before it) */
	for (uint64_t id = 1; id <= c->last_seg; id++) {
		struct seg *s = c->segs[id];
		if (s && (s->flags & SF_SEALED) && !s->live)
			s->dead_upto = c->last_seg;
	}
out:
	free(segs.v);
	free(ckpts.v);
	free(sl.handed.v);
	free(sl.ckpt_handed.v);
	free(sl.confirmed.v);
	free(sl.removed.v);
	free(sl.del_handed.v);
	free(sl.lost.v);
	return r;
}

int cache_lock(const char *dir, bool wait)
{
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return -errno;
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	int fd = openat(dfd, LOCK_FILE, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	int r = fd < 0 ? -errno : 0;
	close(dfd);
	while (!r && flock(fd, LOCK_EX | (wait ? 0 : LOCK_NB)) < 0)
		if (errno != EINTR)
			r = errno == EWOULDBLOCK ? -EBUSY : -errno;
	if (!r && fd < 3) {	/* 0 means "none" in cache_opts.lock_fd */
		int hi = fcntl(fd, F_DUPFD_CLOEXEC, 3);
		r = hi < 0 ? -errno : 0;
		close(fd);
		fd = hi;
	}
	if (r) {
		if (fd >= 0)
			close(fd);
		return r;
	}
	return fd;
}

int cache_open(const struct cache_opts *opts, struct cache **out)
{
	uint64_t t0 = fs_now_ns();
	struct cache *c = calloc(1, sizeof *c);
	if (!c)
		return -ENOMEM;
	c->dirfd = c->lockfd = -1;
	pthread_rwlock_init(&c->lock, NULL);
	pthread_mutex_init(&c->slog_mu, NULL);
	pthread_mutex_init(&c->wmu, NULL);
	fs_cond_init(&c->wcv);
	pthread_cond_init(&c->idle_cv, NULL);
	pthread_mutex_init(&c->fmu, NULL);
	space_init(c);
	pthread_cond_init(&c->fcv, NULL);
	c->o = *opts;
	c->next_ckpt_id = 1;
	int r = check_opts(&c->o);
	if (r)
		goto fail;
	c->dir = strdup(c->o.dir);
	c->hook = c->o.hook ? strdup(c->o.hook) : NULL;
	c->o.dir = c->dir;
	c->o.hook = c->hook;
	c->handoff_on = c->hook || c->o.handoff;
	c->ix = ix_new();
	c->active_sum = sum_new(0);
	if (!c->dir || (c->o.hook && !c->hook) || !c->ix || !c->active_sum) {
		r = -ENOMEM;
		goto fail;
	}
	c->max_record = c->o.segment_size - SEG_HDR_SIZE - SEAL_REC_SIZE;
	if (!c->o.read_only && mkdir(c->dir, 0755) < 0 && errno != EEXIST) {
		r = -errno;
		qlog_err("cache: cannot create directory %s: %s", c->dir, strerror(-r));
		goto fail;
	}
	c->dirfd = open(c->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (c->dirfd < 0) {
		r = -errno;
		qlog_err("cache: cannot open directory %s: %s", c->dir, strerror(-r));
		goto fail;
	}
	if (!c->o.read_only && c->o.lock_fd > 0) {
		/* the same open file: the caller's flock is ours too */
		c->lockfd = fcntl(c->o.lock_fd, F_DUPFD_CLOEXEC, 3);
		if (c->lockfd < 0) {
			r = -errno;
			qlog_err("cache: %s: cannot share the directory's lock: %s", c->dir,
				 strerror(-r));
			goto fail;
		}
	} else if (!c->o.read_only) {
		c->lockfd = openat(c->dirfd, LOCK_FILE, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
		if (c->lockfd < 0 || flock(c->lockfd, LOCK_EX | LOCK_NB) < 0) {
			r = errno == EWOULDBLOCK ? -EBUSY : -errno;
			qlog_err("cache: %s is in use by another process (%s)", c->dir,
				 strerror(-r));
			goto fail;
		}
	}
	/* the reserve first: the replay may have to give it up to start a
	 * segment on a full disk */
	space_open(c);
	/* single-threaded until the worker starts: recover() takes no lock
	 * itself except inside ensure_local(), which takes its own */
	r = recover(c);
	malloc_trim(0);	/* checkpoint buffers read at open go back to the OS */
	if (r)
		goto fail;
	if (!c->o.read_only) {
		r = worker_start(c);
		if (r)
			goto fail;
		worker_wake(c);
	}
	c->open_ns = fs_now_ns() - t0;
	qlog_info("cache: opened %s (volume %s, %zu keys, %" PRIu64 " segments replayed, "
		  "%.1f ms)", c->dir, c->volhex, ix_count(c->ix), c->open_replayed_segments,
		  (double)c->open_ns / 1e6);
	if (c->handoff_on && !c->o.read_only) {
		int h = run_hook(c, "ready", NULL);
		if (h) {
			char b[64];
			qlog_warn("cache: ready hook: %s", hook_strresult(h, b, sizeof b));
		}
	}
	*out = c;
	return 0;
fail:
	cache_free(c);
	return r;
}

int cache_close(struct cache *c)
{
	int ret = 0;
	if (!c->o.read_only) {
		/* everything built gets written; every pending hand-off gets a try */
		worker_kick(c, true, true);
		worker_stop(c);
		if (c->handoff_on) {
			int h = run_hook(c, "closing", NULL);
			if (h) {
				char b[64];
				qlog_warn("cache: closing hook: %s", hook_strresult(h, b, sizeof b));
			}
		}
		struct cache_stats st;
		cache_stats(c, &st);
		if (st.hooks_pending || st.removes_pending)
			qlog_warn("cache: closing %s with %" PRIu64 " hand-offs still pending (and %"
				  PRIu64 " deletions of removed segments); they are retried at the "
				  "next open", c->dir, st.hooks_pending, st.removes_pending);
		for (size_t i = 0; i < c->nckpts; i++)
			if (c->ckpts[i].buf && !ret)
				ret = -EIO;
	}
	cache_free(c);
	return ret;
}
