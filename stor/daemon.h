/* stor/daemon.h - qsfs-stor's shared state: one struct stord, made by main
 * (stord.c) and passed by pointer to every module of the daemon:
 *   queue.c        the job queue and the upload/deletion workers
 *   volcat.c       the volume catalog in memory and its remote writes
 *   degraded.c     the objects known to have lost redundancy
 *   scrub.c        scrub, check and repair passes; the leak check's glue
 *   probe.c        the backend health thread
 *   leasekeeper.c  the writer lease thread
 *   serve.c        the control socket's requests (common/storproto.h)
 *   stor_status.c  STATUS
 *
 * Locks: mu guards the job queue, the counters, the degraded list, the
 * scrub state and everything else below marked "mu"; cat_mu guards the
 * catalog and serialises its remote writes. They are never held together
 * (code that needs both copies under one, then looks under the other).
 * leak_mu lets one leak check run at a time and is taken before either.
 * Fields marked "main" are set before the threads start and only read
 * after.
 */
#ifndef QSFS_STOR_DAEMON_H
#define QSFS_STOR_DAEMON_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "catalog.h"
#include "codec.h"
#include "head.h"
#include "health.h"
#include "leaks.h"
#include "objstore.h"
#include "spool.h"
#include "../common/config.h"

#define MAX_WORKERS 64
/* RETRIEVEs served at once, each with handles of its own. A fresh node's
 * restore asks for up to 8 objects at once (fs/restore.c), and so may a
 * warm-up or several cold reads: with 2, a restore of many small
 * checkpoints waited on round trips two at a time. */
#define RETRIEVE_CTX 8
#define SCRUB_MAX_SPARE 16

struct stord;

/* A worker's (or a retrieval's) own codec and backend handles, and the
 * daemon they work for. busy: a retriever in use (mu). */
struct ctx {
	struct stord *d;
	struct codec *codec;
	struct backend *b[CONFIG_MAX_BACKENDS];
	struct objstore os;
	bool busy;
};

/* A queued job (mu): an upload of a spooled object or a deletion. */
struct job {
	char name[OBJ_NAME_MAX];	/* the spool's name: NAME, NAME.del or NAME.lost */
	char obj[OBJ_NAME_MAX];		/* the object's name */
	bool del;			/* a deletion (NAME.del) */
	bool lost;			/* a loss to record (NAME.lost); neither: an upload */
	/* a checkpoint upload: the segment its state covers (its clear header);
	 * it is stored only once the catalog holds every segment up to it, so
	 * that no checkpoint on the backends refers to a segment they lack */
	uint64_t upto;
	uint64_t size;
	int64_t since;		/* unix time it was queued */
	unsigned fails;
	uint64_t next_ns;	/* not before (backoff) */
	bool busy, again;
	struct job *next;
};

/* An object a retrieval found damaged: readable, but with missing or
 * corrupt shards, so it has lost redundancy until it is repaired. */
struct degraded {
	char name[OBJ_NAME_MAX];
	int64_t since;
	char why[1024];
};

/* The scrub thread's passes (scrub.h), all under mu except t0_ns and
 * rate_bytes (the scrub thread's own). */
struct scrub_state {
	pthread_cond_t cv;	/* with mu: a pass requested, stop; paces the probe too */
	bool requested, check_requested, running;
	bool check_periodic;	/* the check requested is stor.check_interval's */
	enum obj_verify_mode mode;	/* of the running (or last) pass */
	int64_t scrubbed;	/* unix s the last complete scrub (a reading pass)
				 * ended, or the start: scrub_interval counts from it */
	int64_t started, finished;	/* unix s of the last pass (0: never); finished
					 * is set at start too, to time the first one */
	int64_t completed;	/* unix s the last complete pass ended (0: none
				 * since start): what the redundancy is as of */
	uint64_t total, done, bytes, bad_shards, repaired, failed, waiting;
	/* last complete pass: objects with all shards, with some to spare
	 * (index: good - k shards beyond k), and unreadable ones */
	uint64_t full, spare[SCRUB_MAX_SPARE + 1], unreadable;
	uint64_t cur_full, cur_spare[SCRUB_MAX_SPARE + 1], cur_unreadable;
	char last_problem[1200];
	uint64_t t0_ns, rate_bytes;	/* the running pass's rate limit (scrub thread) */
};

struct stord {
	pthread_mutex_t mu;
	pthread_cond_t work;	/* with mu: a job may be picked (workers wait) */
	pthread_cond_t changed;	/* with mu: a job ended, a retriever or a leak
				 * claim was given back, a pass ended */
	/* the queue (mu) */
	struct job *jobs;
	unsigned njobs, in_flight;	/* njobs: uploads and deletions; in_flight: uploads */
	unsigned ndeletes;		/* deletion jobs among njobs */
	uint64_t stored, failures;	/* mu */
	char last_error[512];		/* mu */
	uint64_t deleted, delete_failures;	/* mu */
	char delete_error[512];		/* mu: why the last deletion attempt failed */
	/* mu: the object a scrub or check pass works on ("": none): a
	 * deletion of it waits, or the pass's repair could store it again
	 * mid-delete */
	char scrubbing[OBJ_NAME_MAX];
	bool draining, stop;		/* mu (draining: also read by main alone) */
	struct degraded *degraded;	/* mu: objects read with shards missing or bad */
	size_t ndegraded;		/* mu */
	/* the control connections being served (serve.c), so that the stop
	 * can cut them off and wait for their threads before it frees what
	 * they use (mu; changed is broadcast when one ends) */
	int *conn_fds;
	size_t nconns, conns_cap;
	/* acknowledged objects whose journal entry vanished with no copy
	 * left in the cache to journal again: their data never reached the
	 * backends. Kept in STATE_DIR/lost (one name a line) until the
	 * operator removes it; while any is known the lease is not released
	 * as if all were well. (mu) */
	unsigned nlost;
	char lost_names[256];		/* the first few, for messages */
	struct ctx *workers, *retrievers;	/* main (a retriever's busy: mu) */
	unsigned nworkers;		/* main */
	struct spool *spool;		/* main (the spool has its own lock) */
	struct qsfs_config cfg;		/* main */
	struct volume vol;		/* main */
	/* mu: the writer lease (lease.h) names another holder: this node's
	 * jobs are not uploaded (they would overwrite the new writer's
	 * objects) */
	bool fenced;
	bool fence_released;	/* mu: fenced by a released lease (a move), not a live holder */
	/* the catalog's seg_hi as last stored (segments 1..cat_hi are on the
	 * backends): read by the job picker without cat_mu */
	_Atomic uint64_t cat_hi;
	char fence_why[700];		/* mu */
	const char *lease_state;	/* mu: for STATUS: see lease_tick */
	/* mu: segments a stopped qsfs-fs left in the cache without handing
	 * them off (cache_unhanded), and the lowest of them; 0 unless the
	 * lease is this node's and its qsfs-fs has stopped */
	uint64_t handoffs_left, handoffs_first;
	int handoffs_err;	/* mu: cache_unhanded failed: the count is unknown */
	struct health *health;	/* main: which backends are usable (own lock) */
	unsigned min_shards;	/* main: stor.min_shards for this volume's k, m */
	/* mu: the object a leak check's fix is deleting ("": none): no
	 * upload, deletion or scrub of it starts meanwhile (leaks.h) */
	char leak_claim[OBJ_NAME_MAX];
	struct leak_totals leaks;	/* mu: the last leak check's numbers */

	/* Wakes the lease thread (with mu): at stop, when the queue empties,
	 * on a LEASE request. */
	pthread_cond_t lease_cv;

	/* The volume catalog (catalog.h): loaded at start, rewritten on the
	 * backends after every stored object. cat_mu serialises both the
	 * in-memory struct and its remote writes (so sequence numbers follow
	 * the order of changes). */
	pthread_mutex_t cat_mu;
	struct catalog cat;	/* cat_mu */
	/* cat_mu: the last write of cat reached a majority: the backends'
	 * catalog is the one in memory, so what it no longer lists may go */
	bool cat_saved;

	struct scrub_state scrub;	/* mu (see struct scrub_state) */

	pthread_mutex_t leak_mu;	/* one leak check at a time */
};

/* The initial value of a struct stord: mutexes made, catalog saved; its
 * condition variables are made by stord_init_conds before any thread. */
#define STORD_INIT { .mu = PTHREAD_MUTEX_INITIALIZER, .cat_mu = PTHREAD_MUTEX_INITIALIZER, \
	.cat_saved = true, .leak_mu = PTHREAD_MUTEX_INITIALIZER }

/* Make d's condition variables, on CLOCK_MONOTONIC (fs_cond_init: their
 * timed waits use fs_abstime). Returns 0 or a positive errno. */
int stord_init_conds(struct stord *d);

/* Open c's handles on d's backends and codec (c->d = d). 0, or a negative
 * errno with err saying why; either way c may be given to ctx_close. Does
 * not block (the backends connect on first use); no lock. */
int ctx_open(struct stord *d, struct ctx *c, char *err, size_t errlen);

/* Close c's handles. No lock. */
void ctx_close(struct ctx *c);

#endif
