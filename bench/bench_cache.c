/* bench/bench_cache.c - performance figures of the segment log (cache/).
 *
 * Not a test: it is not run in CI. One run prints, with baselines measured in
 * the same run and medians over --runs repetitions:
 *   1. append throughput of 128 KiB values (one final cache_sync) against a
 *      plain write() loop of the same bytes followed by one fdatasync;
 *   2. random cache_get throughput of hot 4 KiB values, 1 and 2 threads,
 *      against random 4 KiB preads of a plain file of the same size;
 *   3. index bytes per key at 1 M 17-byte keys (cache_stats and RSS growth);
 *   4. reopen time with a checkpoint against a full replay of the segments.
 * Progress goes to stderr; results and a final "name: value" summary block
 * go to stdout.
 *
 * Usage: bench-cache [--runs N] [--dir DIR] [--quick] [--keep]
 *   --dir DIR  parent of the scratch directory (default /var/tmp); a fresh
 *              "qsfs-bench-XXXXXX" directory is made in it and removed at the
 *              end unless --keep is given.
 *   --quick    small sizes, for a smoke run (3 runs unless --runs is given).
 * Nothing is dropped from the page cache: reads are of hot data.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <inttypes.h>
#include <malloc.h>
#include <pthread.h>
#include <dirent.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cache/cache.h"
#include "common/endian.h"
#include "common/qlog.h"

#define KEY_LEN 17
#define APPEND_VAL (128u << 10)
#define GET_VAL 4096u
#define IDX_VAL 16u
#define MAX_RUNS 100

struct config {
	unsigned runs;
	bool quick, keep;
	const char *parent;
	uint64_t append_bytes;	/* per run */
	uint64_t get_keys;
	uint64_t get_ops;	/* per measurement, split over the threads */
	uint64_t idx_keys;
};

static struct config cfg;
static char scratch[4096];

/* --- small helpers ------------------------------------------------------- */

static void progress(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void progress(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("[bench] ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("bench-cache: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static double secs(uint64_t ns)
{
	return (double)ns / 1e9;
}

static int dbl_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median(const double *v, unsigned n)
{
	double t[MAX_RUNS];
	memcpy(t, v, n * sizeof *t);
	qsort(t, n, sizeof *t, dbl_cmp);
	return n % 2 ? t[n / 2] : (t[n / 2 - 1] + t[n / 2]) / 2;
}

static double vmin(const double *v, unsigned n)
{
	double m = v[0];
	for (unsigned i = 1; i < n; i++)
		m = v[i] < m ? v[i] : m;
	return m;
}

static double vmax(const double *v, unsigned n)
{
	double m = v[0];
	for (unsigned i = 1; i < n; i++)
		m = v[i] > m ? v[i] : m;
	return m;
}

static uint64_t xorshift(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	*s = x;
	return x;
}

/* A filesystem block key: 'B', 8-byte inode, 8-byte block, big-endian. */
static void mkkey(uint8_t k[KEY_LEN], uint64_t ino, uint64_t blk)
{
	k[0] = 'B';
	put_be64(k + 1, ino);
	put_be64(k + 9, blk);
}

static void fill_random(uint8_t *buf, size_t n, uint64_t seed)
{
	uint64_t s = seed | 1;
	for (size_t i = 0; i < n; i += 8) {
		uint64_t x = xorshift(&s);
		memcpy(buf + i, &x, n - i < 8 ? n - i : 8);
	}
}

/* Resident set size in bytes, from /proc/self/statm. */
static uint64_t rss_bytes(void)
{
	FILE *f = fopen("/proc/self/statm", "r");
	unsigned long size = 0, res = 0;
	if (!f)
		die("cannot open /proc/self/statm: %s", strerror(errno));
	if (fscanf(f, "%lu %lu", &size, &res) != 2)
		die("cannot parse /proc/self/statm");
	fclose(f);
	return (uint64_t)res * (uint64_t)sysconf(_SC_PAGESIZE);
}

static void path_in(char *out, size_t n, const char *name)
{
	if ((size_t)snprintf(out, n, "%s/%s", scratch, name) >= n)
		die("path too long: %s/%s", scratch, name);
}

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	if (remove(p) < 0 && errno != ENOENT)
		fprintf(stderr, "bench-cache: cannot remove %s: %s\n", p, strerror(errno));
	return 0;
}

static void rm_rf(const char *path)
{
	struct stat st;
	if (lstat(path, &st) < 0)
		return;
	nftw(path, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

/* Flush whatever earlier steps left dirty (unlinks, closes) so that a timed
 * step starts from a quiet disk. The page cache keeps its clean pages. */
static void settle(void)
{
	int fd = open(scratch, O_RDONLY | O_DIRECTORY);
	if (fd >= 0) {
		syncfs(fd);
		close(fd);
	}
}

static void write_all(int fd, const void *buf, size_t n, const char *what)
{
	const uint8_t *p = buf;
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			die("write to %s: %s", what, w < 0 ? strerror(errno) : "wrote 0 bytes");
		p += w;
		n -= (size_t)w;
	}
}

/* Copy directory src to dst (created), leaving out checkpoint files. */
static void copy_dir_without_ckpts(const char *src, const char *dst)
{
	if (mkdir(dst, 0755) < 0)
		die("mkdir %s: %s", dst, strerror(errno));
	int dfd = open(dst, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		die("open %s: %s", dst, strerror(errno));
	DIR *d = opendir(src);
	if (!d)
		die("opendir %s: %s", src, strerror(errno));
	struct dirent *e;
	uint8_t *buf = malloc(1 << 20);
	if (!buf)
		die("out of memory");
	while ((e = readdir(d))) {
		const char *nm = e->d_name;
		size_t l = strlen(nm);
		if (!strcmp(nm, ".") || !strcmp(nm, ".."))
			continue;
		if (!strncmp(nm, "ckpt-", 5) && l > 5 && !strcmp(nm + l - 5, ".qckp"))
			continue;
		int in = openat(dirfd(d), nm, O_RDONLY | O_CLOEXEC);
		if (in < 0)
			die("open %s/%s: %s", src, nm, strerror(errno));
		struct stat st;
		if (fstat(in, &st) < 0)
			die("stat %s/%s: %s", src, nm, strerror(errno));
		if (!S_ISREG(st.st_mode)) {
			close(in);
			continue;
		}
		int out = openat(dfd, nm, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
				 st.st_mode & 0777);
		if (out < 0)
			die("create %s/%s: %s", dst, nm, strerror(errno));
		for (;;) {
			ssize_t n = read(in, buf, 1 << 20);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0)
				die("read %s/%s: %s", src, nm, strerror(errno));
			if (n == 0)
				break;
			write_all(out, buf, (size_t)n, nm);
		}
		if (fsync(out) < 0)
			die("fsync %s/%s: %s", dst, nm, strerror(errno));
		close(out);
		close(in);
	}
	fsync(dfd);
	close(dfd);
	closedir(d);
	free(buf);
}

/* Remove every ckpt-*.qckp in dir; returns how many. */
static unsigned remove_ckpts(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		die("opendir %s: %s", dir, strerror(errno));
	unsigned n = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		size_t l = strlen(e->d_name);
		if (strncmp(e->d_name, "ckpt-", 5) || l <= 5 || strcmp(e->d_name + l - 5, ".qckp"))
			continue;
		if (unlinkat(dirfd(d), e->d_name, 0) < 0)
			die("unlink %s/%s: %s", dir, e->d_name, strerror(errno));
		n++;
	}
	closedir(d);
	return n;
}

static unsigned count_ckpts(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return 0;
	unsigned n = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		size_t l = strlen(e->d_name);
		n += !strncmp(e->d_name, "ckpt-", 5) && l > 5 && !strcmp(e->d_name + l - 5, ".qckp");
	}
	closedir(d);
	return n;
}

static struct cache *open_cache(const char *dir, uint64_t segment_size)
{
	struct cache_opts o = { .dir = dir, .segment_size = segment_size };
	struct cache *c;
	int r = cache_open(&o, &c);
	if (r)
		die("cache_open %s: %s", dir, strerror(-r));
	return c;
}

static void close_cache(struct cache *c, const char *what)
{
	int r = cache_close(c);
	if (r)
		die("cache_close (%s): %s", what, strerror(-r));
}

/* --- 1. append throughput ---------------------------------------------- */

struct append_result {
	double cache_mbps[MAX_RUNS], plain_mbps[MAX_RUNS], ratio[MAX_RUNS];
	double close_s[MAX_RUNS];
	uint64_t segments, checkpoints;
};

static double append_plain(unsigned run, const uint8_t *val)
{
	char path[8192];
	char name[64];
	snprintf(name, sizeof name, "plain-%u", run);
	path_in(path, sizeof path, name);
	uint64_t n = cfg.append_bytes / APPEND_VAL;
	uint8_t *buf = malloc(APPEND_VAL);
	if (!buf)
		die("out of memory");
	memcpy(buf, val, APPEND_VAL);
	settle();
	uint64_t t0 = now_ns();
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		die("create %s: %s", path, strerror(errno));
	for (uint64_t i = 0; i < n; i++) {
		put_be64(buf, i);	/* same bytes as the cache run writes */
		write_all(fd, buf, APPEND_VAL, path);
	}
	if (fdatasync(fd) < 0)
		die("fdatasync %s: %s", path, strerror(errno));
	uint64_t t1 = now_ns();
	close(fd);
	unlink(path);
	free(buf);
	return (double)(n * APPEND_VAL) / 1e6 / secs(t1 - t0);
}

static double append_cache(unsigned run, const uint8_t *val, double *close_s,
			   uint64_t *segments, uint64_t *checkpoints)
{
	char dir[8192];
	char name[64];
	snprintf(name, sizeof name, "append-%u", run);
	path_in(dir, sizeof dir, name);
	uint64_t n = cfg.append_bytes / APPEND_VAL;
	uint8_t *buf = malloc(APPEND_VAL);
	if (!buf)
		die("out of memory");
	memcpy(buf, val, APPEND_VAL);
	struct cache *c = open_cache(dir, 0);
	settle();
	uint64_t t0 = now_ns();
	for (uint64_t i = 0; i < n; i++) {
		uint8_t k[KEY_LEN];
		mkkey(k, 1000 + run, i);
		put_be64(buf, i);
		int r = cache_put(c, k, sizeof k, buf, APPEND_VAL);
		if (r)
			die("cache_put (append, value %" PRIu64 "): %s", i, strerror(-r));
	}
	int r = cache_sync(c);
	if (r)
		die("cache_sync: %s", strerror(-r));
	uint64_t t1 = now_ns();
	struct cache_stats st;
	cache_stats(c, &st);
	if (st.keys != n)
		die("append: %" PRIu64 " keys in the index, expected %" PRIu64, st.keys, n);
	*segments = st.segments;
	uint64_t t2 = now_ns();
	close_cache(c, "append");
	*close_s = secs(now_ns() - t2);
	*checkpoints = count_ckpts(dir);
	rm_rf(dir);
	free(buf);
	return (double)(n * APPEND_VAL) / 1e6 / secs(t1 - t0);
}

static void bench_append(struct append_result *res)
{
	uint8_t *val = malloc(APPEND_VAL);
	if (!val)
		die("out of memory");
	fill_random(val, APPEND_VAL, 0x5eed);
	/* one untimed pair first: the first big write of a process (page cache
	 * growth, writeback ramp-up) is much slower than the rest here */
	{
		double cs;
		uint64_t segs, ckpts;
		progress("append: untimed warm-up pair");
		append_plain(MAX_RUNS, val);
		append_cache(MAX_RUNS, val, &cs, &segs, &ckpts);
	}
	for (unsigned i = 0; i < cfg.runs; i++) {
		double cm, pm, cs;
		/* alternate the order so that neither side always goes first */
		if (i % 2 == 0) {
			pm = append_plain(i, val);
			cm = append_cache(i, val, &cs, &res->segments, &res->checkpoints);
		} else {
			cm = append_cache(i, val, &cs, &res->segments, &res->checkpoints);
			pm = append_plain(i, val);
		}
		res->cache_mbps[i] = cm;
		res->plain_mbps[i] = pm;
		res->ratio[i] = cm / pm;
		res->close_s[i] = cs;
		progress("append run %u/%u: cache %.0f MB/s, plain %.0f MB/s, ratio %.1f%% "
			 "(close %.3f s)", i + 1, cfg.runs, cm, pm, 100 * cm / pm, cs);
	}
	free(val);
}

/* --- 2. random gets -------------------------------------------------------- */

struct get_arg {
	struct cache *c;	/* NULL: pread the plain file */
	int fd;
	uint64_t ops, seed;
	pthread_barrier_t *start;
	uint64_t t_end;
};

static void *get_thread(void *p)
{
	struct get_arg *a = p;
	uint8_t buf[GET_VAL];
	uint64_t s = a->seed;
	pthread_barrier_wait(a->start);
	for (uint64_t i = 0; i < a->ops; i++) {
		uint64_t idx = xorshift(&s) % cfg.get_keys;
		uint64_t got;
		if (a->c) {
			uint8_t k[KEY_LEN];
			mkkey(k, 1 + idx / 256, idx % 256);
			ssize_t n = cache_get(a->c, k, sizeof k, buf, sizeof buf);
			if (n != (ssize_t)GET_VAL)
				die("cache_get key %" PRIu64 ": %zd%s%s", idx, n, n < 0 ? " " : "",
				    n < 0 ? strerror((int)-n) : "");
		} else {
			ssize_t n = pread(a->fd, buf, GET_VAL, (off_t)(idx * GET_VAL));
			if (n != (ssize_t)GET_VAL)
				die("pread offset %" PRIu64 ": %zd", idx * GET_VAL, n);
		}
		memcpy(&got, buf, 8);
		if (got != idx)
			die("value of key %" PRIu64 " holds %" PRIu64, idx, got);
	}
	a->t_end = now_ns();
	return NULL;
}

/* Total ops/s of cfg.get_ops random reads split over nthreads. */
static double run_gets(struct cache *c, int fd, unsigned nthreads, uint64_t seed)
{
	pthread_t th[2];
	struct get_arg a[2];
	pthread_barrier_t start;
	pthread_barrier_init(&start, NULL, nthreads + 1);
	for (unsigned t = 0; t < nthreads; t++) {
		a[t] = (struct get_arg){ .c = c, .fd = fd, .ops = cfg.get_ops / nthreads,
					 .seed = seed * 2654435761u + t * 7919 + 1,
					 .start = &start };
		if (pthread_create(&th[t], NULL, get_thread, &a[t]))
			die("pthread_create failed");
	}
	pthread_barrier_wait(&start);
	uint64_t t0 = now_ns(), t1 = 0;
	for (unsigned t = 0; t < nthreads; t++) {
		pthread_join(th[t], NULL);
		t1 = a[t].t_end > t1 ? a[t].t_end : t1;
	}
	pthread_barrier_destroy(&start);
	return (double)(cfg.get_ops / nthreads * nthreads) / secs(t1 - t0);
}

struct get_result {
	double cache1[MAX_RUNS], cache2[MAX_RUNS], plain1[MAX_RUNS], plain2[MAX_RUNS];
};

static void bench_get(struct get_result *res)
{
	char dir[8192], file[8192];
	path_in(dir, sizeof dir, "get");
	path_in(file, sizeof file, "get-plain");
	struct cache *c = open_cache(dir, 0);
	int fd = open(file, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		die("create %s: %s", file, strerror(errno));
	uint8_t val[GET_VAL];
	fill_random(val, sizeof val, 0xfeed);
	uint64_t t0 = now_ns();
	for (uint64_t i = 0; i < cfg.get_keys; i++) {
		uint8_t k[KEY_LEN];
		mkkey(k, 1 + i / 256, i % 256);
		memcpy(val, &i, 8);
		int r = cache_put(c, k, sizeof k, val, sizeof val);
		if (r)
			die("cache_put (get fill, key %" PRIu64 "): %s", i, strerror(-r));
		write_all(fd, val, sizeof val, file);
	}
	int r = cache_sync(c);
	if (r)
		die("cache_sync: %s", strerror(-r));
	fdatasync(fd);
	progress("get: filled %" PRIu64 " keys of %u bytes (and the plain file) in %.2f s",
		 cfg.get_keys, GET_VAL, secs(now_ns() - t0));
	/* one warm-up pass over everything */
	uint64_t ops = cfg.get_ops;
	cfg.get_ops = cfg.get_keys;
	run_gets(c, -1, 1, 99);
	run_gets(NULL, fd, 1, 99);
	cfg.get_ops = ops;
	for (unsigned i = 0; i < cfg.runs; i++) {
		res->cache1[i] = run_gets(c, -1, 1, i + 1);
		res->plain1[i] = run_gets(NULL, fd, 1, i + 1);
		res->cache2[i] = run_gets(c, -1, 2, i + 101);
		res->plain2[i] = run_gets(NULL, fd, 2, i + 101);
		progress("get run %u/%u: cache %.0f ops/s (1 thread), %.0f ops/s (2 threads); "
			 "pread %.0f / %.0f ops/s", i + 1, cfg.runs, res->cache1[i], res->cache2[i],
			 res->plain1[i], res->plain2[i]);
	}
	close_cache(c, "get");
	close(fd);
	rm_rf(dir);
	unlink(file);
}

/* --- 3. index bytes per key, 4. reopen -------------------------------------- */

/* Timed reopens of one directory, cfg.runs times. */
struct reopen {
	double wall[MAX_RUNS], open[MAX_RUNS];	/* ms */
	uint64_t segs, recs, keys;		/* replayed segments, records; keys */
};

static void time_reopens(const char *dir, bool drop_ckpts, const char *label,
			 struct reopen *r)
{
	for (unsigned i = 0; i < cfg.runs; i++) {
		if (drop_ckpts)
			remove_ckpts(dir);
		settle();
		uint64_t t0 = now_ns();
		struct cache *c = open_cache(dir, 64ull << 20);
		r->wall[i] = secs(now_ns() - t0) * 1e3;
		struct cache_stats st;
		cache_stats(c, &st);
		r->open[i] = (double)st.open_ns / 1e6;
		r->segs = st.open_replayed_segments;
		r->recs = st.open_replayed_records;
		r->keys = st.keys;
		close_cache(c, label);
		progress("reopen run %u/%u %s: %.1f ms (open_ns %.1f ms), replayed %" PRIu64
			 " segments / %" PRIu64 " records, %" PRIu64 " keys", i + 1, cfg.runs,
			 label, r->wall[i], r->open[i], r->segs, r->recs, r->keys);
	}
}

struct idx_result {
	uint64_t keys;
	double fill_s, seal_s, close_s;
	uint64_t index_bytes;
	double ix_per_key;
	int64_t rss_growth;
	double rss_per_key;
	int64_t rss_growth_reopen;
	double rss_per_key_reopen;
	uint64_t segments;
	/* reopen */
	struct reopen ckpt, replay;
	double noseal_wall[MAX_RUNS], noseal_open[MAX_RUNS];
	uint64_t noseal_replayed_segs, noseal_replayed_recs;
	unsigned ckpt_files;
};

static void bench_index(struct idx_result *res)
{
	char dir[8192];
	path_in(dir, sizeof dir, "idx");
	res->keys = cfg.idx_keys;
	malloc_trim(0);
	uint64_t rss0 = rss_bytes();
	struct cache *c = open_cache(dir, 64ull << 20);
	uint8_t val[IDX_VAL];
	fill_random(val, sizeof val, 0xabc);
	uint64_t t0 = now_ns();
	for (uint64_t i = 0; i < cfg.idx_keys; i++) {
		uint8_t k[KEY_LEN];
		mkkey(k, 1 + i / 1024, i % 1024);
		memcpy(val, &i, 8);
		int r = cache_put(c, k, sizeof k, val, sizeof val);
		if (r)
			die("cache_put (index fill, key %" PRIu64 "): %s", i, strerror(-r));
	}
	int r = cache_sync(c);
	if (r)
		die("cache_sync: %s", strerror(-r));
	res->fill_s = secs(now_ns() - t0);
	uint64_t rss1 = rss_bytes();
	struct cache_stats st;
	cache_stats(c, &st);
	if (st.keys != cfg.idx_keys)
		die("index: %" PRIu64 " keys, expected %" PRIu64, st.keys, cfg.idx_keys);
	res->index_bytes = st.index_bytes;
	res->ix_per_key = st.index_bytes_per_key;
	res->rss_growth = (int64_t)rss1 - (int64_t)rss0;
	res->rss_per_key = (double)res->rss_growth / (double)cfg.idx_keys;
	progress("index: %" PRIu64 " keys put in %.2f s; index %.1f B/key, RSS growth "
		 "%.1f B/key", cfg.idx_keys, res->fill_s, res->ix_per_key, res->rss_per_key);
	/* A checkpoint is only built when a segment is sealed, and cache_close
	 * does not seal: 1 M small records fit in one 64 MiB segment, so after a
	 * plain close every reopen replays that whole active segment. Time that
	 * first, then seal to have a checkpoint to reopen from. */
	t0 = now_ns();
	close_cache(c, "index (no seal)");
	progress("index: closed without seal in %.3f s, %u checkpoint file(s)",
		 secs(now_ns() - t0), count_ckpts(dir));
	for (unsigned i = 0; i < cfg.runs; i++) {
		settle();
		t0 = now_ns();
		c = open_cache(dir, 64ull << 20);
		res->noseal_wall[i] = secs(now_ns() - t0) * 1e3;
		cache_stats(c, &st);
		res->noseal_open[i] = (double)st.open_ns / 1e6;
		res->noseal_replayed_segs = st.open_replayed_segments;
		res->noseal_replayed_recs = st.open_replayed_records;
		if (st.keys != cfg.idx_keys)
			die("reopen (no seal): %" PRIu64 " keys, expected %" PRIu64, st.keys,
			    cfg.idx_keys);
		close_cache(c, "reopen (no seal)");
		progress("reopen run %u/%u after a close without seal: %.1f ms (open_ns %.1f ms), "
			 "replayed %" PRIu64 " segments / %" PRIu64 " records", i + 1, cfg.runs,
			 res->noseal_wall[i], res->noseal_open[i], st.open_replayed_segments,
			 st.open_replayed_records);
	}
	c = open_cache(dir, 64ull << 20);
	t0 = now_ns();
	int64_t sid = cache_seal(c);
	if (sid < 0)
		die("cache_seal: %s", strerror((int)-sid));
	res->seal_s = secs(now_ns() - t0);
	cache_stats(c, &st);
	res->segments = st.segments;
	t0 = now_ns();
	close_cache(c, "index");
	res->close_s = secs(now_ns() - t0);
	res->ckpt_files = count_ckpts(dir);
	progress("index: sealed segment %" PRId64 " in %.3f s, closed in %.3f s, "
		 "%u checkpoint file(s)", sid, res->seal_s, res->close_s, res->ckpt_files);
	if (!res->ckpt_files)
		fprintf(stderr, "bench-cache: warning: no checkpoint file after seal + close\n");

	/* RSS cross-check 2: a reopen from the checkpoint builds only the index */
	malloc_trim(0);
	rss0 = rss_bytes();
	c = open_cache(dir, 64ull << 20);
	rss1 = rss_bytes();
	res->rss_growth_reopen = (int64_t)rss1 - (int64_t)rss0;
	res->rss_per_key_reopen = (double)res->rss_growth_reopen / (double)cfg.idx_keys;
	close_cache(c, "index reopen");

	/* 4. reopen with the checkpoint, then a full replay: a copy without
	 * checkpoint files (the replaying open writes a new one, so it is
	 * removed again before each run) */
	time_reopens(dir, false, "with checkpoint", &res->ckpt);
	char rdir[8192];
	path_in(rdir, sizeof rdir, "idx-replay");
	copy_dir_without_ckpts(dir, rdir);
	time_reopens(rdir, true, "full replay", &res->replay);
	if (res->ckpt.keys != cfg.idx_keys || res->replay.keys != cfg.idx_keys)
		die("reopen: %" PRIu64 " / %" PRIu64 " keys after reopen, expected %" PRIu64,
		    res->ckpt.keys, res->replay.keys, cfg.idx_keys);
	rm_rf(dir);
	rm_rf(rdir);
}

/* --- main ------------------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f, "usage: bench-cache [--runs N] [--dir DIR] [--quick] [--keep]\n"
		   "  --runs N   repetitions per figure, medians are printed (default 5, "
		   "--quick 3)\n"
		   "  --dir DIR  parent of the scratch directory (default /var/tmp)\n"
		   "  --quick    small sizes for a smoke run\n"
		   "  --keep     do not remove the scratch directory at the end\n");
}

static void print_spread(const char *label, const double *v, const char *unit, int prec)
{
	printf("  %-34s median %.*f %s  (min %.*f, max %.*f)\n", label, prec,
	       median(v, cfg.runs), unit, prec, vmin(v, cfg.runs), prec, vmax(v, cfg.runs));
}

int main(int argc, char **argv)
{
	setenv("QSFS_LOG", "warn", 1);
	qlog_set_level(QLOG_WARN);
	cfg.parent = "/var/tmp";
	long runs = -1;
	static const struct option lo[] = {
		{ "runs", required_argument, NULL, 'r' },
		{ "dir", required_argument, NULL, 'd' },
		{ "quick", no_argument, NULL, 'q' },
		{ "keep", no_argument, NULL, 'k' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int opt;
	while ((opt = getopt_long(argc, argv, "r:d:qkh", lo, NULL)) != -1) {
		switch (opt) {
		case 'r': {
			char *end;
			runs = strtol(optarg, &end, 10);
			if (*end || runs < 1 || runs > MAX_RUNS)
				die("--runs wants 1..%d", MAX_RUNS);
			break;
		}
		case 'd': cfg.parent = optarg; break;
		case 'q': cfg.quick = true; break;
		case 'k': cfg.keep = true; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	if (cfg.quick) {
		cfg.runs = runs > 0 ? (unsigned)runs : 3;
		cfg.append_bytes = 256ull << 20;
		cfg.get_keys = 20000;
		cfg.get_ops = 200000;
		cfg.idx_keys = 200000;
	} else {
		cfg.runs = runs > 0 ? (unsigned)runs : 5;
		cfg.append_bytes = 2ull << 30;
		cfg.get_keys = 100000;
		cfg.get_ops = 1000000;
		cfg.idx_keys = 1000000;
	}
	if ((size_t)snprintf(scratch, sizeof scratch, "%s/qsfs-bench-XXXXXX", cfg.parent) >=
	    sizeof scratch - 64)
		die("--dir path too long");
	if (!mkdtemp(scratch))
		die("cannot create a scratch directory in %s: %s", cfg.parent, strerror(errno));
	progress("scratch directory %s, %u runs%s", scratch, cfg.runs,
		 cfg.quick ? ", quick mode" : "");

	static struct append_result ap;
	static struct get_result gr;
	static struct idx_result ix;
	uint64_t t_all = now_ns();

	progress("1/4 append: %" PRIu64 " MiB of %u KiB values per run", cfg.append_bytes >> 20,
		 APPEND_VAL >> 10);
	bench_append(&ap);
	progress("2/4 random get: %" PRIu64 " keys of %u bytes, %" PRIu64 " gets per measurement",
		 cfg.get_keys, GET_VAL, cfg.get_ops);
	bench_get(&gr);
	progress("3/4 + 4/4 index size and reopen: %" PRIu64 " keys of %u-byte values",
		 cfg.idx_keys, IDX_VAL);
	bench_index(&ix);

	if (!cfg.keep)
		rm_rf(scratch);
	else
		progress("kept %s", scratch);

	/* --- report --- */
	unsigned R = cfg.runs;
	double ap_c = median(ap.cache_mbps, R), ap_p = median(ap.plain_mbps, R);
	double ap_r = median(ap.ratio, R);
	double g1 = median(gr.cache1, R), g2 = median(gr.cache2, R);
	double p1 = median(gr.plain1, R), p2 = median(gr.plain2, R);
	double ck = median(ix.ckpt.wall, R), rp = median(ix.replay.wall, R);
	double cko = median(ix.ckpt.open, R), rpo = median(ix.replay.open, R);

	printf("qsfs cache benchmark (%s mode, %u runs, medians; scratch under %s)\n\n",
	       cfg.quick ? "quick" : "full", R, cfg.parent);
	printf("1. append of %u KiB values, %" PRIu64 " MiB per run, 64 MiB segments, one "
	       "final cache_sync\n", APPEND_VAL >> 10, cfg.append_bytes >> 20);
	print_spread("cache_put + cache_sync:", ap.cache_mbps, "MB/s", 0);
	print_spread("plain write() + fdatasync:", ap.plain_mbps, "MB/s", 0);
	printf("  %-34s %.1f%% (median of per-run ratios; goal >= 85%%)\n", "ratio:", 100 * ap_r);
	printf("  %-34s %" PRIu64 " segments, %" PRIu64 " checkpoint files after close, close "
	       "median %.3f s\n", "per run:", ap.segments, ap.checkpoints, median(ap.close_s, R));
	printf("\n2. random get of hot %u-byte values, %" PRIu64 " keys, %" PRIu64
	       " gets per measurement\n", GET_VAL, cfg.get_keys, cfg.get_ops);
	print_spread("cache_get, 1 thread:", gr.cache1, "ops/s", 0);
	print_spread("cache_get, 2 threads:", gr.cache2, "ops/s", 0);
	print_spread("pread 4 KiB, 1 thread:", gr.plain1, "ops/s", 0);
	print_spread("pread 4 KiB, 2 threads:", gr.plain2, "ops/s", 0);
	printf("  %-34s %.2fx\n", "cache_get 2-thread scaling:", g2 / g1);
	printf("\n3. index memory at %" PRIu64 " keys (17-byte keys, %u-byte values, 64 MiB "
	       "segments)\n", ix.keys, IDX_VAL);
	printf("  %-34s %.1f bytes/key (%" PRIu64 " bytes)\n", "cache_stats index_bytes_per_key:",
	       ix.ix_per_key, ix.index_bytes);
	printf("  %-34s %.1f bytes/key (%" PRId64 " bytes, includes the checkpoint dirty-key "
	       "list)\n", "RSS growth while filling:", ix.rss_per_key, ix.rss_growth);
	printf("  %-34s %.1f bytes/key (%" PRId64 " bytes)\n", "RSS growth of a ckpt reopen:",
	       ix.rss_per_key_reopen, ix.rss_growth_reopen);
	printf("  %-34s %.2f s (%.0f puts/s), seal %.3f s, close %.3f s\n", "fill:",
	       ix.fill_s, (double)ix.keys / ix.fill_s, ix.seal_s, ix.close_s);
	printf("\n4. reopen of the %" PRIu64 "-key directory (hot page cache)\n", ix.keys);
	print_spread("with checkpoint, wall:", ix.ckpt.wall, "ms", 1);
	print_spread("with checkpoint, open_ns:", ix.ckpt.open, "ms", 1);
	printf("  %-34s %" PRIu64 " segments, %" PRIu64 " records\n", "  replayed:",
	       ix.ckpt.segs, ix.ckpt.recs);
	print_spread("full replay, wall:", ix.replay.wall, "ms", 1);
	print_spread("full replay, open_ns:", ix.replay.open, "ms", 1);
	printf("  %-34s %" PRIu64 " segments, %" PRIu64 " records\n", "  replayed:",
	       ix.replay.segs, ix.replay.recs);
	printf("  %-34s %.1fx\n", "speedup (wall):", rp / ck);
	print_spread("after close without seal, wall:", ix.noseal_wall, "ms", 1);
	printf("  %-34s %" PRIu64 " segments, %" PRIu64 " records (no checkpoint: close "
	       "does not seal)\n", "  replayed:", ix.noseal_replayed_segs, ix.noseal_replayed_recs);

	printf("\n--- summary ---\n");
	printf("mode: %s, %u runs, medians\n", cfg.quick ? "quick" : "full", R);
	printf("append_128k_cache_MBps: %.0f\n", ap_c);
	printf("append_128k_plain_MBps: %.0f\n", ap_p);
	printf("append_128k_ratio_pct: %.1f\n", 100 * ap_r);
	printf("get_4k_cache_1t_ops: %.0f\n", g1);
	printf("get_4k_cache_2t_ops: %.0f\n", g2);
	printf("get_4k_pread_1t_ops: %.0f\n", p1);
	printf("get_4k_pread_2t_ops: %.0f\n", p2);
	printf("index_keys: %" PRIu64 "\n", ix.keys);
	printf("index_bytes_per_key: %.1f\n", ix.ix_per_key);
	printf("rss_bytes_per_key_fill: %.1f\n", ix.rss_per_key);
	printf("rss_bytes_per_key_ckpt_reopen: %.1f\n", ix.rss_per_key_reopen);
	printf("small_put_ops: %.0f\n", (double)ix.keys / ix.fill_s);
	printf("reopen_ckpt_ms: %.1f (open_ns %.1f)\n", ck, cko);
	printf("reopen_replay_ms: %.1f (open_ns %.1f)\n", rp, rpo);
	printf("reopen_speedup: %.1fx\n", rp / ck);
	printf("reopen_unsealed_active_ms: %.1f\n", median(ix.noseal_wall, R));
	printf("total_bench_s: %.0f\n", secs(now_ns() - t_all));
	return 0;
}
