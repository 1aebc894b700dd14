/* bench/bench_clean.c - the cleaner's throughput (cache_clean.c): MB of
 * live data moved per second and per CPU-second, with the building block
 * it stands on measured in the same run: cache_put of the same bytes.
 *
 * Each run: a fresh log (4 MiB segments) filled with KEYS values of 4 KiB
 * in random order, then half of them overwritten at random (the segments
 * end up about half live, in varying degrees), sealed; then segments are
 * cleaned one at a time, best cost-benefit first, until garbage is at most
 * 20 % of the live segments (as `qsfs-cache clean` does). Hot page cache.
 * Not run in CI.
 *
 * Usage: bench-clean [--runs N] [--keys N] [--dir PARENT]
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cache/cache.h"
#include "common/endian.h"
#include "common/qlog.h"

#define VAL 4096u
#define MAX_RUNS 50

static double clock_s(clockid_t id)
{
	struct timespec t;
	clock_gettime(id, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median(double *v, unsigned n)
{
	qsort(v, n, sizeof *v, cmp);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static uint64_t xs(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void die(const char *what, int e)
{
	fprintf(stderr, "bench-clean: %s: %s\n", what, strerror(e < 0 ? -e : e));
	exit(1);
}

struct run {
	double put_mbs, put_cpu_mbs;	/* the building block */
	double clean_mbs, clean_cpu_mbs;
	uint64_t segs, moved, garbage_before, garbage_after;
};

static void one_run(const char *parent, uint64_t keys, uint64_t seed, struct run *out)
{
	char dir[4096];
	snprintf(dir, sizeof dir, "%s/qsfs-bench-clean-XXXXXX", parent);
	if (!mkdtemp(dir))
		die("mkdtemp", errno);
	struct cache_opts o = { .dir = dir, .segment_size = 4 << 20 };
	struct cache *c;
	int r = cache_open(&o, &c);
	if (r)
		die("cache_open", r);
	static uint8_t v[VAL];
	uint8_t k[17] = { 'B' };
	uint64_t s = seed | 1;
	for (size_t i = 0; i < VAL; i++)
		v[i] = (uint8_t)xs(&s);
	/* fill: the building block's figure (appends of the same record size) */
	uint64_t *ks = malloc(keys * sizeof *ks);
	if (!ks)
		die("malloc", ENOMEM);
	double w0 = clock_s(CLOCK_MONOTONIC), c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
	for (uint64_t i = 0; i < keys; i++) {
		ks[i] = xs(&s) % keys;
		put_be64(k + 1, ks[i]);
		put_be64(k + 9, i);
		if ((r = cache_put(c, k, sizeof k, v, VAL)))
			die("cache_put", r);
	}
	double bytes = (double)keys * (VAL + 16 + sizeof k);
	out->put_mbs = bytes / 1e6 / (clock_s(CLOCK_MONOTONIC) - w0);
	out->put_cpu_mbs = bytes / 1e6 / (clock_s(CLOCK_PROCESS_CPUTIME_ID) - c0);
	/* overwrite half of them at random: the same keys, new values */
	for (uint64_t i = 0; i < keys / 2; i++) {
		uint64_t j = xs(&s) % keys;
		put_be64(k + 1, ks[j]);
		put_be64(k + 9, j);
		if ((r = cache_put(c, k, sizeof k, v, VAL)))
			die("cache_put", r);
	}
	free(ks);
	if (cache_seal(c) < 0 || cache_sync(c))
		die("seal", EIO);
	cache_quiesce(c);
	struct cache_stats st;
	cache_stats(c, &st);
	out->garbage_before = st.garbage_bytes - st.dead_bytes;
	out->segs = out->moved = 0;
	w0 = clock_s(CLOCK_MONOTONIC);
	c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
	uint64_t id;
	while (out->segs < st.active_seg && cache_clean_pick(c, 0.2, &id, 1) == 1) {
		struct cache_clean_result cr;
		if ((r = cache_clean_segment(c, id, 0, &cr)))
			die("cache_clean_segment", r);
		out->segs++;
		out->moved += cr.bytes;
	}
	if ((r = cache_sync(c)))
		die("cache_sync", r);
	out->clean_mbs = (double)out->moved / 1e6 / (clock_s(CLOCK_MONOTONIC) - w0);
	out->clean_cpu_mbs = (double)out->moved / 1e6 / (clock_s(CLOCK_PROCESS_CPUTIME_ID) - c0);
	cache_stats(c, &st);
	out->garbage_after = st.garbage_bytes - st.dead_bytes;
	if ((r = cache_close(c)))
		die("cache_close", r);
	char cmd[4200];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "bench-clean: could not remove %s\n", dir);
}

int main(int argc, char **argv)
{
	qlog_set_level(QLOG_WARN);
	unsigned runs = 5;
	uint64_t keys = 100000;
	const char *parent = "/var/tmp";
	static const struct option lo[] = {
		{ "runs", required_argument, NULL, 'r' }, { "keys", required_argument, NULL, 'k' },
		{ "dir", required_argument, NULL, 'd' }, { NULL, 0, NULL, 0 },
	};
	int opt;
	while ((opt = getopt_long(argc, argv, "r:k:d:", lo, NULL)) != -1) {
		if (opt == 'r' && atoi(optarg) > 0 && atoi(optarg) <= MAX_RUNS)
			runs = (unsigned)atoi(optarg);
		else if (opt == 'k' && atoll(optarg) > 0)
			keys = (uint64_t)atoll(optarg);
		else if (opt == 'd')
			parent = optarg;
		else {
			fprintf(stderr, "usage: bench-clean [--runs 1..%d] [--keys N] [--dir PARENT]\n",
				MAX_RUNS);
			return 2;
		}
	}
	double pm[MAX_RUNS], pc[MAX_RUNS], cm[MAX_RUNS], cc[MAX_RUNS];
	struct run last = { 0 };
	for (unsigned i = 0; i < runs; i++) {
		one_run(parent, keys, 0x9e3779b97f4a7c15ull + i, &last);
		pm[i] = last.put_mbs;
		pc[i] = last.put_cpu_mbs;
		cm[i] = last.clean_mbs;
		cc[i] = last.clean_cpu_mbs;
		fprintf(stderr, "run %u/%u: put %.0f MB/s, clean %.0f MB/s (%.0f MB/CPU-s), "
			"%" PRIu64 " segments, %.1f MB moved\n", i + 1, runs, pm[i], cm[i], cc[i],
			last.segs, (double)last.moved / 1e6);
	}
	printf("cleaner, %" PRIu64 " keys of %u bytes, 4 MiB segments, half overwritten at "
	       "random; medians of %u runs\n", keys, VAL, runs);
	printf("| | MB/s | MB per CPU-second |\n|---|---|---|\n");
	printf("| cache_put of 4 KiB values (building block) | %.0f | %.0f |\n", median(pm, runs),
	       median(pc, runs));
	printf("| clean: live data moved | %.0f | %.0f |\n", median(cm, runs), median(cc, runs));
	printf("last run: %" PRIu64 " segments cleaned, %.1f MB moved; garbage in live segments "
	       "%.1f MB before, %.1f MB after\n", last.segs, (double)last.moved / 1e6,
	       (double)last.garbage_before / 1e6, (double)last.garbage_after / 1e6);
	return 0;
}
