/* common/config.h - the one qsfs configuration file (YAML, read with
 * libyaml). See config/qsfs.yaml.example for every key.
 *
 * Every rule is checked at load: unknown keys, duplicate keys, wrong types,
 * values out of range, missing required keys, exactly one of key_file and
 * passphrase_file, at least data_shards + parity_shards distinct backends,
 * each backend URL well-formed. The first problem found is reported as
 * "FILE:LINE: message" (FILE: message when no line applies).
 */
#ifndef QSFS_CONFIG_H
#define QSFS_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "url.h"

#define CONFIG_MAX_BACKENDS 64

enum qsfs_handoff { HANDOFF_STOR, HANDOFF_HOOK, HANDOFF_NONE };

struct qsfs_config {
	char *file;			/* the path it was read from */
	char *volume;			/* volume name */
	char *key_file;			/* exactly one of these two */
	char *passphrase_file;
	struct {
		char *dir;
		uint64_t segment_size;	/* default 64 MiB */
		uint64_t max_size;	/* 0 = no limit */
		/* room on the cache disk kept for deletes, the clean stop's
		 * seal and checkpoint, and a start on a full disk (the log's
		 * reserve file, cache/cache_space.c): new data is refused
		 * with ENOSPC while less than this is free beyond it;
		 * default 32 MiB, 0 = none */
		uint64_t disk_reserve;
		/* how sealed segments and checkpoints reach qsfs-stor (and
		 * evicted ones come back): HANDOFF_STOR (the default without a
		 * hook: qsfs-fs talks to stor's socket itself), HANDOFF_HOOK
		 * (the program cache.hook; implied when hook is set), or
		 * HANDOFF_NONE (nothing leaves this host: a local-only log, for
		 * benchmarks and tests of the filesystem alone) */
		enum qsfs_handoff handoff;
		char *hook;		/* NULL = none */
		unsigned hook_timeout;	/* seconds, default 120 */
		/* the recovery point: the active segment is sealed (and so
		 * uploaded) once its oldest record is this many seconds old;
		 * default 60, 0 = only when full, on drain or at a clean stop */
		unsigned max_segment_age;
		/* garbage collection (qsfs-fs's collector, fs/collector.h):
		 * segments are cleaned while garbage is above gc_target of the
		 * log (0.01..0.9, default 0.2), moving at most gc_rate bytes of
		 * live data per second (default 64 MiB/s, 0 = no limit), with
		 * a pass every gc_interval seconds (default 30, 0 = only on
		 * `qsfs-ctl gc`) */
		double gc_target;
		uint64_t gc_rate;
		unsigned gc_interval;
	} cache;
	struct {
		char *mountpoint;	/* NULL: given on the command line */
		uint64_t size;		/* reported by statfs, 0 = the cache disk's */
		bool allow_other;
		/* seconds qsfs-fs waits for qsfs-stor when an empty cache
		 * directory must be restored from the backends (default 60) */
		unsigned restore_wait;
		char *socket;		/* qsfs-fs's control socket; default
					 * CACHE_DIR/fs.sock */
		/* seconds without a heartbeat after which another host may
		 * take the volume's writer lease (default 60) */
		unsigned lease_timeout;
	} fs;
	struct {
		char *socket;
		char *state_dir;
		unsigned data_shards;	/* k, default 4 */
		unsigned parity_shards;	/* m, default 2 */
		int compression;	/* zstd level 1..19, 0 = none; default 1 */
		unsigned workers;	/* 0 = one per core */
		unsigned drain_timeout;	/* seconds a SIGTERM waits for the queue
					 * before exiting 1 with the journal kept;
					 * 0 (default) = until drained */
		unsigned upload_nice;	/* added to the daemon's nice for the
					 * upload threads (capped at 19), so that
					 * compressing and coding yield the CPU
					 * to the filesystem's foreground work;
					 * 0..19, default 10. Retrievals (a
					 * reader waits) keep the daemon's. */
		/* a scrub reads every shard of every stored object, checks
		 * it and repairs what is wrong: every scrub_interval seconds
		 * (default 7 days, 0 = only on request), reading at most
		 * scrub_rate bytes per second (default 100 MiB) */
		unsigned scrub_interval;
		uint64_t scrub_rate;
		/* the cheap pass (is every piece of every object there?) also
		 * runs every check_interval seconds (default 600, 0 = only
		 * when a backend comes back or changes): a backend wiped while
		 * it kept answering is noticed and repaired within minutes */
		unsigned check_interval;
		/* opt-in: with fewer than k+m backends usable, a store may
		 * succeed with this many shards (k+1..k+m) and the object is
		 * marked degraded until a repair; 0 (default) = a store waits
		 * and retries until every shard can be placed */
		unsigned min_shards;
		struct backend_url backends[CONFIG_MAX_BACKENDS];
		size_t nbackends;
	} stor;
};

/* The configuration a program uses without -c: $QSFS_CONFIG when set and
 * not empty (qsfs-fs sets it for its hooks; the container sets it for
 * every service and shell), else /etc/qsfs/qsfs.yaml. */
const char *config_default_path(void);

/* Load and check path into *cfg. Returns 0, or -EINVAL (or -errno when the
 * file cannot be read) with a message in err. On failure *cfg is freed. */
int config_load(const char *path, struct qsfs_config *cfg, char *err, size_t errlen);

/* Free what config_load allocated. */
void config_free(struct qsfs_config *cfg);

#endif
