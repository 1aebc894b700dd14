/* fs/restore.c - see restore.h. */
#include "restore.h"

#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../cache/cache.h"
#include "../cache/ckpt.h"
#include "../cache/segment.h"
#include "../common/config.h"
#include "../common/storclient.h"
#include "../stor/backend.h"
#include "../stor/catalog.h"
#include "../stor/head.h"
#include "../common/endian.h"
#include "../common/fsutil.h"
#include "../common/qlog.h"

/* RETRIEVE name into dir/file (stor writes it atomically). */
static int fetch(struct storclient *stor, const char *dir, const char *name, const char *file,
		 char *err, size_t errlen)
{
	char path[4400], why[1024];
	snprintf(path, sizeof path, "%s/%s", dir, file);
	/* a big full checkpoint on slow backends may take long: an hour, not
	 * cache.hook_timeout (a restore that gives up starts over next time) */
	int r = storclient_retrieve(stor, name, path, 3600 * 1000u, why, sizeof why);
	if (r)
		snprintf(err, errlen, "restore: fetching %s: %s", name, why);
	return r == -EREMOTEIO ? -EIO : r;
}

/* Parallel fetches. A restore is a list of objects, most of them small
 * (a delta checkpoint per seal: a large volume keeps a thousand and more
 * between two fulls), and one RETRIEVE costs a round trip to every
 * backend, so one at a time the restore waits on latency alone (1,344
 * checkpoints took 68 s). RESTORE_FETCHERS threads take the next object
 * from the list, each over a connection of its own (storclient opens one
 * per RETRIEVE); stor serves each connection in its own thread. The first
 * failure stops the others from taking more; the error reported is the
 * one of the first object in list order that failed, so it is the same
 * whatever the timing. */
#define RESTORE_FETCHERS 8
#define RESTORE_PROGRESS_NS (5ull * 1000000000ull)	/* a log line while it lasts */

struct fetch_pool {
	struct storclient *stor;
	const char *dir;
	char kind;			/* 'c' checkpoints, 's' segments */
	const uint64_t *ids;		/* the objects, in catalog order */
	size_t n;
	pthread_mutex_t mu;
	pthread_cond_t cv;		/* with mu: one more done, a fetcher ended */
	size_t next, done, running;	/* mu */
	size_t fail_at;			/* mu: the first index that failed (n: none) */
	int fail_r;			/* mu: its error */
	char err[1200];			/* mu: its message */
};

/* The object name (c<id>, s<id>) and cache file of ids[i]. */
static void item_names(const struct fetch_pool *p, size_t i, char name[32], char file[32])
{
	snprintf(name, 32, "%c%" PRIu64, p->kind, p->ids[i]);
	if (p->kind == 'c')
		ckpt_name(p->ids[i], file);
	else
		seg_name(p->ids[i], file);
}

static void *fetcher_main(void *arg)
{
	struct fetch_pool *p = arg;
	pthread_mutex_lock(&p->mu);
	while (p->fail_at == p->n && p->next < p->n) {
		size_t i = p->next++;
		pthread_mutex_unlock(&p->mu);
		char name[32], file[32], err[sizeof p->err];
		item_names(p, i, name, file);
		int r = fetch(p->stor, p->dir, name, file, err, sizeof err);
		pthread_mutex_lock(&p->mu);
		p->done++;
		/* items are taken in order, so every index below the first
		 * failure was taken too and its outcome comes in before the end */
		if (r && i < p->fail_at) {
			p->fail_at = i;
			p->fail_r = r;
			memcpy(p->err, err, sizeof err);
		}
		pthread_cond_broadcast(&p->cv);
	}
	p->running--;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

/* Fetch the n objects ids (kind 'c': checkpoints, 's': segments) into
 * dir, up to RESTORE_FETCHERS at once (in this thread when none can be
 * made). Blocks until every fetcher ended: each RETRIEVE is bounded by
 * fetch's timeout. Returns 0, or the error of the first object in ids
 * that failed, with err naming it. */
static int fetch_all(struct storclient *stor, const char *dir, char kind, const uint64_t *ids,
		     size_t n, char *err, size_t errlen)
{
	if (!n)
		return 0;
	const char *what = kind == 'c' ? "checkpoints" : "segments";
	struct fetch_pool p = { .stor = stor, .dir = dir, .kind = kind, .ids = ids, .n = n,
				.fail_at = n };
	pthread_mutex_init(&p.mu, NULL);
	fs_cond_init(&p.cv);
	pthread_t th[RESTORE_FETCHERS];
	size_t nth = 0;
	pthread_mutex_lock(&p.mu);
	for (; nth < RESTORE_FETCHERS && nth < n; nth++) {
		int e = pthread_create(&th[nth], NULL, fetcher_main, &p);
		if (e) {
			qlog_warn("fs: restore: cannot start a fetcher thread (%s): %zu fetch at "
				  "once", strerror(e), nth ? nth : 1);
			break;
		}
		p.running++;
	}
	if (!nth) {	/* no thread at all: fetch here */
		p.running = 1;
		pthread_mutex_unlock(&p.mu);
		fetcher_main(&p);
		pthread_mutex_lock(&p.mu);
	}
	uint64_t next_log = fs_now_ns() + RESTORE_PROGRESS_NS;
	while (p.running) {
		struct timespec ts = fs_abstime(RESTORE_PROGRESS_NS);
		pthread_cond_timedwait(&p.cv, &p.mu, &ts);
		if (p.running && fs_now_ns() >= next_log) {
			qlog_info("fs: restore: fetched %zu of %zu %s", p.done, n, what);
			next_log = fs_now_ns() + RESTORE_PROGRESS_NS;
		}
	}
	int r = p.fail_at < n ? p.fail_r : 0;
	if (r)
		snprintf(err, errlen, "%s", p.err);
	pthread_mutex_unlock(&p.mu);
	for (size_t i = 0; i < nth; i++)
		pthread_join(th[i], NULL);
	pthread_cond_destroy(&p.cv);
	pthread_mutex_destroy(&p.mu);
	return r;
}

/* The first len bytes of a fetched file (its clear header: segments and
 * checkpoints both carry the cache's volume id at offset 16). */
static int read_head(const char *dir, const char *file, uint8_t *h, size_t len)
{
	char path[4400];
	snprintf(path, sizeof path, "%s/%s", dir, file);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = pread(fd, h, len, 0);
	close(fd);
	return n == (ssize_t)len ? 0 : -EBADMSG;
}

/* Open checkpoint id in dir and verify it whole (ckpt_open: header,
 * checksum, structure, the volume id of its own header). 0, or a negative
 * errno with why naming the file and the fault. */
static int ckpt_verify(const char *dir, uint64_t id, char *why, size_t whylen)
{
	char file[CKPT_NAME_LEN];
	ckpt_name(id, file);
	uint8_t h[CKPT_HDR_SIZE];
	int r = read_head(dir, file, h, sizeof h);
	if (r) {
		snprintf(why, whylen, "%s: its header cannot be read: %s", file, strerror(-r));
		return r;
	}
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		r = -errno;
		snprintf(why, whylen, "%s: %s", dir, strerror(-r));
		return r;
	}
	struct ckpt_file f;
	const char *w = NULL;
	r = ckpt_open(dfd, file, h + 16, &f, &w);
	close(dfd);
	if (!r) {
		ckpt_close(&f);
		return 0;
	}
	snprintf(why, whylen, "%s: %s", file, w ? w : strerror(-r));
	return r;
}

/* Remove dir/file if it is there (a fetched file that is not used). */
static void drop_file(const char *dir, const char *file)
{
	char path[4400];
	snprintf(path, sizeof path, "%s/%s", dir, file);
	if (unlink(path) < 0 && errno != ENOENT)
		qlog_warn("fs: restore: cannot remove %s: %s", path, strerror(errno));
}

static bool dir_has_volume(const char *dir)
{
	char path[4200];
	snprintf(path, sizeof path, "%s/VOLUME", dir);
	return access(path, F_OK) == 0;
}

/* Read the volume's catalog straight from the backends (only the
 * configuration and the key are needed). */
static int read_catalog(const struct qsfs_config *cfg, struct catalog *cat, char *err,
			size_t errlen)
{
	struct volconn vc;
	int r = volconn_open(cfg, &vc, err, errlen);
	if (!r) {
		r = catalog_load(&vc.os, cat, err, errlen);
		volconn_close(&vc);
	}
	return r;
}

int restore_if_empty(const struct qsfs_config *cfg, struct storclient *stor, unsigned wait_s,
		     char *err, size_t errlen)
{
	const char *cache_dir = cfg->cache.dir, *sock = storclient_path(stor);
	if (dir_has_volume(cache_dir))
		return 0;
	if (mkdir(cache_dir, 0700) < 0 && errno != EEXIST) {
		snprintf(err, errlen, "restore: cannot create %s: %s", cache_dir, strerror(errno));
		return -errno;
	}
	struct catalog cat;
	int r = read_catalog(cfg, &cat, err, errlen);
	if (r == -ENOENT)
		return 0;	/* a new volume */
	if (r)
		return r;
	/* objects come back through qsfs-stor (the same path as a missing
	 * segment); it may be starting next to us */
	for (unsigned waited = 0;; waited++) {
		r = storclient_ping(stor);
		if (!r || waited >= wait_s * 10)
			break;
		if (waited % 50 == 0)
			qlog_info("fs: the volume has data to restore into the empty %s; waiting for "
				  "qsfs-stor at %s", cache_dir, sock);
		nanosleep(&(struct timespec){ 0, 100 * 1000 * 1000 }, NULL);
	}
	if (r) {
		snprintf(err, errlen, "restore: the volume has data to restore into the empty %s, "
			 "but qsfs-stor does not answer at %s (%s); start qsfs-stor first",
			 cache_dir, sock, strerror(-r));
		catalog_free(&cat);
		return r;
	}
	uint64_t seg_hi = cat.seg_hi;
	size_t nck = cat.nck;
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	uint64_t *ids = calloc(nck ? nck : 1, sizeof *ids);
	bool *full = calloc(nck ? nck : 1, sizeof *full);
	if (!ids || !full) {
		free(ids);
		free(full);
		snprintf(err, errlen, "restore: out of memory");
		catalog_free(&cat);
		return -ENOMEM;
	}
	/* the checkpoints: every one the catalog keeps; the log picks the chain */
	uint8_t vol[VOLUME_ID_SIZE] = { 0 };
	bool have_vol = false;
	uint64_t upto = 0;
	size_t nused = 0, skipped = 0;
	for (size_t i = 0; i < nck; i++) {
		if (!catalog_ckpt_usable(&cat, i)) {
			if (!skipped++)
				qlog_warn("fs: restore: checkpoint %" PRIu64 " covers segment %" PRIu64
					  ", beyond the segments the backends hold (1..%" PRIu64 "): "
					  "not used; an older checkpoint and a replay of the stored "
					  "segments are used instead", cat.ck[i].id, cat.ck[i].upto,
					  seg_hi);
			continue;
		}
		full[nused] = cat.ck[i].kind == CAT_CKPT_FULL;
		ids[nused++] = cat.ck[i].id;
	}
	/* The catalog keeps the previous full and its deltas for a newest
	 * full that cannot be read. So the newest full comes first, alone,
	 * and is checked whole: when it opens, the chain before it is not
	 * needed (about half the checkpoints); when it cannot be fetched or
	 * does not open, it is left out and the older chain, with every
	 * delta after it, restores the same state. */
	size_t nf = nused;
	for (size_t i = nused; i-- > 0;)
		if (full[i]) {
			nf = i;
			break;
		}
	size_t first = 0;
	if (nf < nused && nf > 0) {
		char why[1200];
		int e = fetch_all(stor, cache_dir, 'c', &ids[nf], 1, why, sizeof why);
		if (!e)
			e = ckpt_verify(cache_dir, ids[nf], why, sizeof why);
		if (!e) {
			first = nf;
		} else {
			qlog_warn("fs: restore: the newest full checkpoint c%" PRIu64 " cannot be used "
				  "(%s): the previous full and the deltas after it are used instead",
				  ids[nf], why);
			char file[CKPT_NAME_LEN];
			ckpt_name(ids[nf], file);
			drop_file(cache_dir, file);
			memmove(&ids[nf], &ids[nf + 1], (nused - nf - 1) * sizeof *ids);
			nused--;
		}
	}
	if (first) {	/* the newest full is here: the deltas after it */
		memmove(ids, &ids[first], (nused - first) * sizeof *ids);
		nused -= first;
		r = fetch_all(stor, cache_dir, 'c', ids + 1, nused - 1, err, errlen);
	} else {
		r = fetch_all(stor, cache_dir, 'c', ids, nused, err, errlen);
	}
	for (size_t i = 0; i < nused && !r; i++) {
		char file[CKPT_NAME_LEN];
		ckpt_name(ids[i], file);
		uint8_t h[CKPT_HDR_SIZE];
		if (read_head(cache_dir, file, h, sizeof h) == 0 && !memcmp(h, CKPT_MAGIC, 8)) {
			uint64_t cu = get_le64(h + 48);
			if (!have_vol || cu > upto)
				memcpy(vol, h + 16, sizeof vol);
			have_vol = true;
			if (cu > upto)
				upto = cu;
		}
	}
	/* the segments sealed after the newest checkpoint: replayed at open */
	uint64_t *segs = NULL;
	size_t fetched = 0;
	if (!r && seg_hi > upto) {
		if (seg_hi - upto > (1u << 24)) {
			snprintf(err, errlen, "restore: %" PRIu64 " segments after the newest "
				 "checkpoint to fetch: more than a restore takes", seg_hi - upto);
			r = -EFBIG;
		} else if (!(segs = malloc((seg_hi - upto) * sizeof *segs))) {
			snprintf(err, errlen, "restore: out of memory");
			r = -ENOMEM;
		}
	}
	for (uint64_t id = upto + 1; id <= seg_hi && !r; id++)
		if (!catalog_lost(&cat, id))	/* a lost one has no object: the replay skips it */
			segs[fetched++] = id;
	if (!r)
		r = fetch_all(stor, cache_dir, 's', segs, fetched, err, errlen);
	for (size_t i = 0; !r && !have_vol && i < fetched; i++) {
		char file[SEG_NAME_LEN];
		seg_name(segs[i], file);
		uint8_t h[SEG_HDR_SIZE];
		if (read_head(cache_dir, file, h, sizeof h) == 0) {
			memcpy(vol, h + 16, VOLUME_ID_SIZE);	/* no checkpoint to name it */
			have_vol = true;
		}
	}
	free(segs);
	if (!r && !have_vol) {
		snprintf(err, errlen, "restore: no fetched checkpoint or segment names the volume");
		r = -EIO;
	}
	if (!r && cat.nextra)
		qlog_warn("fs: restore: %zu segments were stored after a gap at segment %" PRIu64
			  " and cannot be replayed; the volume is restored up to segment %" PRIu64,
			  cat.nextra, seg_hi + 1, seg_hi);
	/* segments garbage collection removed: the log must know them as
	 * removed (not as evicted ones a read could ask for) */
	uint64_t *rm = NULL;
	size_t nrm = 0;
	for (size_t i = 0; !r && i < cat.nrm; i++)
		nrm += cat.rm[i].last - cat.rm[i].first + 1;
	if (!r && nrm > (1u << 26)) {
		snprintf(err, errlen, "restore: the catalog lists %zu removed segments", nrm);
		r = -EINVAL;
	}
	if (!r && nrm && !(rm = malloc(nrm * sizeof *rm))) {
		snprintf(err, errlen, "restore: out of memory");
		r = -ENOMEM;
	}
	for (size_t i = 0, k = 0; !r && i < cat.nrm; i++)
		for (uint64_t id = cat.rm[i].first; id <= cat.rm[i].last; id++)
			rm[k++] = id;
	if (!r) {
		r = cache_adopt(cache_dir, vol, seg_hi > upto ? seg_hi : upto, ids, nused, rm, nrm,
				cat.lost, cat.nlost);
		if (r)
			snprintf(err, errlen, "restore: cannot prepare %s: %s", cache_dir, strerror(-r));
	}
	if (!r && cat.nlost)
		qlog_err("fs: restore: the volume catalog records %zu segments lost before they "
			 "were uploaded (the first: %" PRIu64 "); reads of what they held fail "
			 "with EIO", cat.nlost, cat.lost[0]);
	if (!r) {
		struct timespec t1;
		clock_gettime(CLOCK_MONOTONIC, &t1);
		qlog_info("fs: restored the volume into %s from the backends: %zu checkpoints "
			  "(up to segment %" PRIu64 ") and %zu later segments in %.2f s; "
			  "%" PRIu64 " segments in all, the others are fetched on first read",
			  cache_dir, nused, upto, fetched,
			  (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9,
			  seg_hi);
	}
	free(rm);
	free(ids);
	free(full);
	catalog_free(&cat);
	return r;
}
