/* stor/objstore_get.c - the read path of objstore.h: obj_get, and
 * objstore_get_from for obj_repair.
 *
 * One slow backend must not stall a read. An object is read from the first
 * k shards that arrive, not from all k+m: with one backend trickling (a
 * peer that still answers, a few KB/s) among k+m, four fast ones hold all
 * that is needed. So every fetch runs in a thread of its own (a fetcher,
 * one per shard for the whole object, or one per backend for the
 * metadata), and the reader takes what arrives, in whatever order:
 *
 * - Metadata: every usable backend is asked at once (one marked slow only
 *   when the others do not make a majority); the reader stops waiting once
 *   a majority has answered and a copy opened (every write of a generation
 *   reached a majority, so the newest is among them).
 * - Shards: fetcher i fetches the pieces of shard i in turn and hands each
 *   over (one piece at a time: it fetches the next once the reader took
 *   it). The reader feeds a piece to the streaming decoder only when the
 *   decoder is hungry for that shard (codec_dec_hungry): the decoder writes
 *   every stripe that k good fragments cover, so the k fastest shards
 *   drive it and a laggard is simply left behind (its late fragments are
 *   skipped). Memory per shard: the piece in flight or waiting, and about
 *   one piece in the decoder, whatever the object's size and however far
 *   a fast shard could run ahead. A shard that is genuinely needed (only k
 *   left) is waited for: nothing is cancelled while the read goes on, so
 *   such a wait is bounded by the backend's timeout and its minimum reply
 *   rate (backend.c), as before.
 * - The end (the hedge): once the object is written, a fetch still in
 *   flight gets until max(HEDGE_MIN_MS, HEDGE_FACTOR x the median time of
 *   this read's answered fetches) after it started; a fast one finishes
 *   within that (and keeps its connection: cancelling costs a reconnect),
 *   a laggard is then cut short with backend_cancel (its handle reconnects
 *   on next use). A backend whose fetch was cut short, or took longer than
 *   that (a needed shard that was waited for), lagged (health_lagged: slow
 *   after a long lag or two in a row; not down, and its shard is not
 *   damage of the object); one whose piece fetches all answered within it
 *   kept up (health_kept_up), which clears a slow mark. Every fetcher is
 *   joined before the read returns: the handles are the caller's again.
 *   The floor of 50 ms keeps a scheduling hiccup on a busy host or a LAN
 *   round trip from costing a reconnect or a lag. A backend already marked
 *   slow is not waited for (health_skip_wait): its fetch in flight is cut
 *   short at once, and if that is sooner than the bound it tells nothing
 *   either way. So while a backend stays slow a small object (one piece
 *   per shard) pays the 50 ms only on the read that finds it slow and on
 *   one read every HEALTH_SLOW_RECHECK_S, which waits for it as for any
 *   other so that it clears its mark once it keeps up again (as it also
 *   does on any read whose pieces it delivered before the object was
 *   done).
 *
 * Why threads per shard for the whole object, not a round of piece p of
 * every shard joined before round p+1 (the old way): a round waits for its
 * slowest member, so one slow shard stalled every round until its
 * backend's timeout although k others had arrived. Per-shard fetchers also
 * overlap the next piece's fetch with decoding, and start k+m threads per
 * object instead of k+m per piece.
 */
#include "objstore_int.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <time.h>

#include "../common/config.h"
#include "../common/fsutil.h"
#include "../common/qlog.h"

#define HEDGE_MIN_MS 50		/* a fetch is never cut short sooner (jitter on a
				 * busy host, a reply on a LAN) */
#define HEDGE_FACTOR 4		/* ... nor sooner than this x the median fetch */
#define LAT_SAMPLES 64		/* fetch times kept for the median */
#define CANCEL_AGAIN_MS 10	/* a cancelled fetch not yet returned: cancel again */
#define META_FETCH UINT32_MAX	/* a fetcher's shard: the metadata */

struct fetchset;

/* One thread fetching one backend's keys in turn. Fields after th are
 * guarded by set->mu. */
struct fetcher {
	struct fetchset *set;
	struct backend *b;
	size_t bi;		/* b's index (health) */
	uint32_t shard;		/* the shard it fetches, or META_FETCH */
	uint32_t nkeys;		/* pieces 0..nkeys-1 (the metadata: 1) */
	bool started;		/* th runs (joined by fetchset_end) */
	pthread_t th;
	pthread_cond_t cv;	/* its piece was taken, or quit */
	uint32_t next;		/* the next piece to fetch */
	bool busy;		/* a GET in flight, started at t0 */
	uint64_t t0;
	bool quit;		/* fetch nothing more */
	bool cancelled;		/* cut short by the hedge, lag_ns into its GET */
	uint64_t lag_ns;
	bool has_ready;		/* a fetched piece waits for the reader */
	uint8_t *ready;
	size_t ready_len;
	uint32_t ready_piece;
	uint32_t answered;	/* GETs answered (a value, or none there) */
	uint64_t slowest_ns;	/* the longest of them */
	int r;			/* the error that ended it (-ENOENT: key absent) */
	char err[200];
};

/* The fetchers of one read. */
struct fetchset {
	struct objstore *s;
	const char *name;
	uint64_t gen;
	pthread_mutex_t mu;
	pthread_cond_t cv;	/* with mu, CLOCK_MONOTONIC: news for the reader */
	unsigned n;
	struct fetcher *f;	/* n of them; started ones have a thread */
	uint64_t lat[LAT_SAMPLES];	/* times of answered GETs (mu) */
	unsigned nlat;
};

/* The fetcher thread: GET its keys in turn, each handed over before the
 * next is fetched, until all are, one fails, or quit. Blocks on its
 * backend with no lock held; takes set->mu. */
static void *fetcher_main(void *arg)
{
	struct fetcher *f = arg;
	struct fetchset *fs = f->set;
	pthread_mutex_lock(&fs->mu);
	while (!f->quit && !f->r && f->next < f->nkeys) {
		if (f->has_ready) {	/* the reader has not taken the last one */
			pthread_cond_wait(&f->cv, &fs->mu);
			continue;
		}
		uint32_t p = f->next;
		f->busy = true;
		f->t0 = fs_now_ns();
		pthread_mutex_unlock(&fs->mu);
		char key[128], err[200] = "";
		if (f->shard == META_FETCH)
			objstore_meta_key(fs->s, fs->name, key, sizeof key);
		else
			objstore_shard_key(fs->s, fs->name, fs->gen, f->shard, p, key, sizeof key);
		uint8_t *v = NULL;
		size_t n = 0;
		int r = backend_get(f->b, key, &v, &n);
		if (r == -EIO)
			health_fail(fs->s->health, f->bi, backend_health(f->b).last_error);
		if (r) {
			const char *e = backend_health(f->b).last_error;
			snprintf(err, sizeof err, "%s", r == -ENOENT ? "piece missing" :
				 r == -ECANCELED ? "given up on: slower than the other shards" :
				 r == -EIO && e[0] ? e : strerror(-r));
		}
		uint64_t t = fs_now_ns();
		pthread_mutex_lock(&fs->mu);
		f->busy = false;
		if (!r || r == -ENOENT) {
			f->answered++;
			fs->lat[fs->nlat++ % LAT_SAMPLES] = t - f->t0;
			if (t - f->t0 > f->slowest_ns)
				f->slowest_ns = t - f->t0;
		}
		if (r) {
			f->r = r;
			memcpy(f->err, err, sizeof f->err);
		} else {
			f->ready = v;
			f->ready_len = n;
			f->ready_piece = p;
			f->has_ready = true;
			f->next++;
		}
		pthread_cond_signal(&fs->cv);
	}
	pthread_cond_signal(&fs->cv);
	pthread_mutex_unlock(&fs->mu);
	return NULL;
}

/* Room for n fetchers of object name (generation gen), none started.
 * 0 or -ENOMEM. */
static int fetchset_init(struct fetchset *fs, struct objstore *s, const char *name,
			 uint64_t gen, unsigned n)
{
	memset(fs, 0, sizeof *fs);
	fs->s = s;
	fs->name = name;
	fs->gen = gen;
	fs->n = n;
	fs->f = calloc(n ? n : 1, sizeof *fs->f);
	if (!fs->f)
		return -ENOMEM;
	fs_cond_init(&fs->cv);
	pthread_mutex_init(&fs->mu, NULL);
	for (unsigned i = 0; i < n; i++)
		pthread_cond_init(&fs->f[i].cv, NULL);
	return 0;
}

/* Start fetcher i on backend bi: shard's pieces 0..nkeys-1 (or the
 * metadata). 0, or the error of pthread_create (nothing started). */
static int fetcher_start(struct fetchset *fs, unsigned i, size_t bi, uint32_t shard,
			 uint32_t nkeys)
{
	struct fetcher *f = &fs->f[i];
	f->set = fs;
	f->b = fs->s->backends[bi];
	f->bi = bi;
	f->shard = shard;
	f->nkeys = nkeys;
	int e = pthread_create(&f->th, NULL, fetcher_main, f);
	f->started = e == 0;
	return -e;
}

/* The longest a fetch in flight is waited for once the object is read:
 * max(HEDGE_MIN_MS, HEDGE_FACTOR x the median of this read's answered
 * fetches, which goes to *median). set->mu held. */
static uint64_t hedge_ns(struct fetchset *fs, uint64_t *median)
{
	unsigned n = fs->nlat < LAT_SAMPLES ? fs->nlat : LAT_SAMPLES;
	uint64_t v[LAT_SAMPLES], med = 0;
	memcpy(v, fs->lat, n * sizeof v[0]);
	for (unsigned i = 1; i < n; i++)	/* insertion sort: at most 64 */
		for (unsigned j = i; j > 0 && v[j - 1] > v[j]; j--) {
			uint64_t t = v[j];
			v[j] = v[j - 1];
			v[j - 1] = t;
		}
	if (n)
		med = v[n / 2];
	*median = med;
	uint64_t h = HEDGE_FACTOR * med, floor = HEDGE_MIN_MS * 1000000ull;
	return h > floor ? h : floor;
}

/* The read is over: stop every fetcher, wait for them and free the set.
 * read_ok: the object was read, and a GET still in flight gets until
 * hedge_ns() after its start, then it is cancelled (on a backend marked
 * slow already: at once, see health_skip_wait). A backend whose GET was cancelled at or past
 * hedge_ns(), or took longer (a needed shard that was waited for), lagged
 * (health_lagged); one whose GETs all answered within it kept up
 * (health_kept_up; not on a metadata fetch alone: too small to show that
 * it keeps up with pieces); one cut short sooner gave no news. Else (the
 * read failed) GETs in flight are cancelled at once and nothing is
 * counted.
 * Blocks: at most hedge_ns() plus the time a cancelled GET takes to return
 * (at once on redis://; a dir:// read is not cut short). Takes set->mu;
 * logs a backend becoming slow, or keeping up again. */
static void fetchset_end(struct fetchset *fs, bool read_ok)
{
	pthread_mutex_lock(&fs->mu);
	for (unsigned i = 0; i < fs->n; i++) {
		fs->f[i].quit = true;
		pthread_cond_signal(&fs->f[i].cv);
	}
	uint64_t med, window = hedge_ns(fs, &med);
	for (;;) {
		uint64_t now = fs_now_ns(), wake = UINT64_MAX;
		for (unsigned i = 0; i < fs->n; i++) {
			struct fetcher *f = &fs->f[i];
			if (!f->started || !f->busy)
				continue;
			/* a backend known to be slow is not waited for (but now
			 * and then, to see whether it keeps up again) */
			uint64_t due = read_ok && !health_skip_wait(fs->s->health, f->bi) ?
				       f->t0 + window : 0;
			if (!f->cancelled && now < due) {
				wake = due < wake ? due : wake;
				continue;
			}
			if (!f->cancelled)
				f->lag_ns = now - f->t0;
			f->cancelled = true;
			/* again every CANCEL_AGAIN_MS until its GET returns: a cancel
			 * that came just before the GET began is forgotten
			 * (backend.h). backend_cancel's lock is never held while
			 * fs->mu is taken. */
			backend_cancel(f->b);
			due = now + CANCEL_AGAIN_MS * 1000000ull;
			wake = due < wake ? due : wake;
		}
		if (wake == UINT64_MAX)
			break;
		struct timespec ts = fs_abstime(wake - now);
		pthread_cond_timedwait(&fs->cv, &fs->mu, &ts);
	}
	pthread_mutex_unlock(&fs->mu);
	for (unsigned i = 0; i < fs->n; i++) {
		struct fetcher *f = &fs->f[i];
		if (f->started)
			pthread_join(f->th, NULL);
		free(f->ready);
		pthread_cond_destroy(&f->cv);
		if (!f->started || !read_ok)
			continue;
		if (f->cancelled && f->lag_ns < window)
			continue;	/* a slow one, not waited for: no news of it */
		const char *name = backend_name(f->b);
		const char *what = f->shard == META_FETCH ? "metadata" : "piece";
		char why[200];
		if (f->cancelled)
			snprintf(why, sizeof why, "a read of %s went on without it after %llu ms "
				 "(its %s; the median fetch took %.1f ms)", fs->name,
				 (unsigned long long)(f->lag_ns / 1000000), what,
				 (double)med / 1e6);
		else if (f->slowest_ns > window)
			snprintf(why, sizeof why, "a read of %s waited %llu ms for its %s (the "
				 "median fetch took %.1f ms)", fs->name,
				 (unsigned long long)(f->slowest_ns / 1000000), what,
				 (double)med / 1e6);
		if (f->cancelled || f->slowest_ns > window) {
			uint64_t lag = f->cancelled ? f->lag_ns : f->slowest_ns;
			if (health_lagged(fs->s->health, f->bi, lag / 1000000, why))
				qlog_warn("stor: backend %s is slow: %s; reads go on without "
					  "waiting for it when they can", name, why);
		} else if (f->shard != META_FETCH && f->answered && f->r != -EIO &&
			   health_kept_up(fs->s->health, f->bi)) {
			qlog_info("stor: backend %s keeps up again", name);
		}
	}
	pthread_cond_destroy(&fs->cv);
	pthread_mutex_destroy(&fs->mu);
	free(fs->f);
}

/* --- metadata ---------------------------------------------------------------- */

/* A metadata read in progress: the copies taken so far. */
struct meta_read {
	struct fetchset fs;
	bool taken[CONFIG_MAX_BACKENDS];
	size_t started, done, found, answered, undecryptable;
	struct obj_meta *meta;	/* the newest copy found */
};

/* Take the answers of the started fetchers as they come, until every one
 * has answered or failed, or a majority of the configured backends has
 * answered and a copy opened. Blocks on fs.cv; takes fs.mu. */
static void meta_answers(struct meta_read *mr)
{
	struct fetchset *fs = &mr->fs;
	const struct objstore *s = fs->s;
	size_t n = s->nbackends;
	pthread_mutex_lock(&fs->mu);
	while (mr->done < mr->started && !(mr->found && mr->answered > n / 2)) {
		struct fetcher *f = NULL;
		for (size_t i = 0; i < n && !f; i++)
			if (fs->f[i].started && !mr->taken[i] && (fs->f[i].has_ready || fs->f[i].r)) {
				f = &fs->f[i];
				mr->taken[i] = true;
			}
		if (!f) {
			pthread_cond_wait(&fs->cv, &fs->mu);
			continue;
		}
		mr->done++;
		uint8_t *v = f->ready;
		size_t len = f->ready_len;
		int e = f->r;
		f->ready = NULL;
		f->has_ready = false;
		pthread_mutex_unlock(&fs->mu);
		struct obj_meta one;
		mr->answered += e == 0 || e == -ENOENT;
		if (v && objstore_meta_open(s, fs->name, v, len, &one)) {
			mr->undecryptable++;
		} else if (v) {
			if (!mr->found || one.gen > mr->meta->gen)
				*mr->meta = one;
			mr->found++;
		}
		free(v);
		pthread_mutex_lock(&fs->mu);
	}
	pthread_mutex_unlock(&fs->mu);
}

/* The newest metadata of name, for a read: the usable backends asked at
 * once, and the valid copy with the highest generation among the first
 * answers taken once a majority of the configured backends has answered
 * (see read_meta in objstore.c for why that suffices). Backends marked slow
 * are asked only when the others did not make that majority: the read
 * need not wait for them at all (their shards are still fetched, which is
 * where they can show that they keep up again). Returns 0, -ENOENT (no
 * copy anywhere that answered) or -EBADMSG (copies that do not open), with
 * why. Blocks on the backends; the stragglers are hedged. */
static int read_meta_hedged(struct objstore *s, const char *name, struct obj_meta *meta,
			    char *why, size_t whylen)
{
	size_t n = s->nbackends;
	memset(meta, 0, sizeof *meta);
	if (n > CONFIG_MAX_BACKENDS)
		return -EINVAL;
	struct meta_read *mr = calloc(1, sizeof *mr);
	if (!mr || fetchset_init(&mr->fs, s, name, 0, (unsigned)n)) {
		free(mr);
		snprintf(why, whylen, "object %s: out of memory", name);
		return -ENOMEM;
	}
	mr->meta = meta;
	for (int pass = 0; pass < 2; pass++) {	/* the brisk ones, then the slow */
		for (size_t i = 0; i < n; i++)
			if (!mr->fs.f[i].started && health_usable(s->health, i) &&
			    (pass || !health_slow(s->health, i)) &&
			    !fetcher_start(&mr->fs, (unsigned)i, i, META_FETCH, 1))
				mr->started++;
		meta_answers(mr);
		if (mr->found && mr->answered > n / 2)
			break;
	}
	fetchset_end(&mr->fs, mr->found > 0);
	size_t found = mr->found, undecryptable = mr->undecryptable;
	free(mr);
	return found ? 0 : objstore_meta_missing(name, undecryptable, why, whylen);
}

/* --- shards -------------------------------------------------------------------- */

int objstore_get_from(struct objstore *s, struct codec *c, const char *name, uint64_t code_id,
		      const struct obj_meta *m, int fd, char *why, size_t whylen, char *damage,
		      size_t damagelen)
{
	why[0] = 0;
	if (damage && damagelen)
		damage[0] = 0;
	unsigned n = m->k + m->m;
	struct codec_dec *d;
	int r = codec_dec_new(c, code_id, fd, &d);
	if (r) {
		snprintf(why, whylen, "object %s: %s", name, strerror(-r));
		return r;
	}
	int b[SHARD_MAX];
	bool live[SHARD_MAX];
	unsigned nlive = 0, ndown = 0;
	for (unsigned i = 0; i < n; i++) {
		char from[META_NAME_MAX + 16];
		snprintf(from, sizeof from, "shard %u on %s", i, m->sh[i].backend);
		codec_dec_add(d, from);
		b[i] = objstore_find_backend(s, m->sh[i].backend);
		live[i] = true;
		if (!m->sh[i].pieces) {
			codec_dec_fail(d, i, "never stored (too few backends were usable)");
			live[i] = false;
		} else if (b[i] < 0) {
			codec_dec_fail(d, i, "that backend is not configured");
			live[i] = false;
		} else if (m->sh[i].len > (uint64_t)m->sh[i].pieces * OBJ_PIECE_MAX) {
			codec_dec_fail(d, i, "impossible shard length in the metadata");
			live[i] = false;
		}
		nlive += live[i];
		ndown += live[i] && !health_usable(s->health, (size_t)b[i]);
	}
	/* shards on backends that are down are skipped while enough others
	 * remain: a hung backend would cost a timeout */
	for (unsigned i = 0; i < n; i++)
		if (live[i] && nlive - ndown >= m->k && !health_usable(s->health, (size_t)b[i])) {
			codec_dec_fail(d, i, "its backend is down");
			live[i] = false;
		}
	struct fetchset fs;
	r = fetchset_init(&fs, s, name, m->gen, n);
	if (r) {
		snprintf(why, whylen, "object %s: out of memory", name);
		codec_dec_free(d);
		return r;
	}
	for (unsigned i = 0; i < n; i++) {
		if (!live[i])
			continue;
		int e = fetcher_start(&fs, i, (size_t)b[i], i, m->sh[i].pieces);
		if (e) {
			char err[100];
			snprintf(err, sizeof err, "cannot start a thread to fetch it: %s",
				 strerror(-e));
			codec_dec_fail(d, i, err);
			live[i] = false;
		}
	}
	/* Take whatever arrives: a piece for a shard the decoder is hungry for,
	 * or a fetcher's failure; then write what became decodable. Some
	 * live shard is hungry whenever step returned 0 (codec.h), and its
	 * fetcher is busy, holds its next piece or has failed: the wait ends.
	 * Once step says -EIO (too few shards left: final) the shards still
	 * coming are taken until none is hungry (a piece or so each), so that
	 * the error says what each had rather than that it had not arrived. */
	r = codec_dec_step(d, why, whylen);
	while (r == 0 || r == -EIO) {
		int take = -1, fail = -1;
		bool hungry = false;
		uint8_t *buf = NULL;
		size_t len = 0;
		uint32_t piece = 0;
		char err[200];
		pthread_mutex_lock(&fs.mu);
		for (;;) {
			for (unsigned i = 0; i < n && take < 0 && fail < 0; i++) {
				struct fetcher *f = &fs.f[i];
				if (!live[i])
					continue;
				hungry |= codec_dec_hungry(d, i);
				if (f->has_ready && codec_dec_hungry(d, i)) {
					take = (int)i;
					buf = f->ready;
					len = f->ready_len;
					piece = f->ready_piece;
					f->ready = NULL;
					f->has_ready = false;
					pthread_cond_signal(&f->cv);	/* fetch the next */
				} else if (!f->has_ready && f->r) {
					fail = (int)i;
					memcpy(err, f->err, sizeof err);
				} else if (!codec_dec_wants(d, i)) {
					f->quit = true;	/* dropped (bad header...) */
					pthread_cond_signal(&f->cv);
					live[i] = false;
				}
			}
			if (take >= 0 || fail >= 0 || (r && !hungry))
				break;
			hungry = false;
			pthread_cond_wait(&fs.cv, &fs.mu);
		}
		pthread_mutex_unlock(&fs.mu);
		if (take < 0 && fail < 0)
			break;	/* -EIO, and nothing more is coming that it could say */
		if (fail >= 0) {
			codec_dec_fail(d, (unsigned)fail, err);
			live[fail] = false;
		} else {
			r = codec_dec_feed(d, (unsigned)take, buf, len);
			free(buf);
			if (r) {
				snprintf(why, whylen, "object %s: %s", name, strerror(-r));
				break;
			}
			if (piece + 1 == m->sh[take].pieces)
				codec_dec_end(d, (unsigned)take);
		}
		r = codec_dec_step(d, why, whylen);
	}
	fetchset_end(&fs, r == 1);
	if (r == 1) {
		/* the shards still coming were not needed: not damage */
		for (unsigned i = 0; i < n; i++)
			if (live[i])
				codec_dec_abandon(d, i);
		if (codec_dec_size(d) != m->size) {
			snprintf(why, whylen, "object %s: shards give %llu bytes, the metadata %llu",
				 name, (unsigned long long)codec_dec_size(d),
				 (unsigned long long)m->size);
			r = -EBADMSG;
		}
	}
	if (r == 1 && damage)
		codec_dec_damage(d, damage, damagelen);
	codec_dec_free(d);
	return r == 1 ? 0 : r;
}

int obj_get(struct objstore *s, struct codec *c, const char *name, uint64_t code_id,
	    int fd, char *why, size_t whylen, char *damage, size_t damagelen)
{
	struct obj_meta meta;
	int r = read_meta_hedged(s, name, &meta, why, whylen);
	if (r)
		return r;
	r = objstore_get_from(s, c, name, code_id, &meta, fd, why, whylen, damage, damagelen);
	if (r != -EIO)
		return r;
	/* A repair may have stored a new generation and deleted the one this
	 * read was fetching (its pieces went "missing" under it): once more
	 * with the newest metadata, when it is newer. The decoder writes at
	 * absolute offsets, so fd is simply truncated first. */
	struct obj_meta now;
	char why2[512];
	if (read_meta_hedged(s, name, &now, why2, sizeof why2) || now.gen <= meta.gen ||
	    ftruncate(fd, 0) < 0)
		return r;
	return objstore_get_from(s, c, name, code_id, &now, fd, why, whylen, damage, damagelen);
}
