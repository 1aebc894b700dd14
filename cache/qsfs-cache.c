/* cache/qsfs-cache.c - command-line access to a segment log directory.
 *
 *   qsfs-cache [OPTIONS] DIR inspect [--verify]
 *   qsfs-cache [OPTIONS] DIR stats | seal | evict | confirm ID
 *   qsfs-cache [OPTIONS] DIR put KEY [FILE]   (value from FILE or stdin; synced)
 *   qsfs-cache [OPTIONS] DIR get KEY | del KEY | scan [PREFIX]
 *   qsfs-cache [OPTIONS] DIR fill COUNT SIZE [PREFIX]   (demo data, synced)
 *
 * Exit status: 0 ok, 1 error, 2 usage, 3 corruption found by --verify,
 * 4 no such key.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cache.h"
#include "ckpt.h"
#include "segment.h"
#include "../common/fsutil.h"
#include "../common/qlog.h"
#include "../common/units.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: qsfs-cache [OPTIONS] DIR COMMAND [ARGS]\n"
		"commands:\n"
		"  inspect [--verify]   list segments (state, sizes, live/garbage bytes) and\n"
		"                       checkpoints; --verify checks every checksum\n"
		"  stats                print the log's statistics\n"
		"  put KEY [FILE]       store FILE (or stdin) under KEY, durably\n"
		"  get KEY              write KEY's value to stdout\n"
		"  del KEY              delete KEY, durably\n"
		"  scan [PREFIX]        list keys (and value sizes) in key order\n"
		"  seal                 seal the active segment\n"
		"  confirm ID           mark segment ID as stored remotely\n"
		"  evict                evict confirmed segments down to --max-size\n"
		"  fill COUNT SIZE [P]  write COUNT values of SIZE bytes under keys P%%08d\n"
		"  clean [TARGET]       move the live records of the sealed segments worth\n"
		"                       it (best cost-benefit first) to the end of the log\n"
		"                       until garbage is at most TARGET (default 0.2) of the\n"
		"                       live segments; prints what moved and MB per CPU-second\n"
		"options:\n"
		"  -s, --segment-size SIZE   segment size, 4KiB..4GiB (default 64MiB); it is\n"
		"                            not stored, so give it on every write command\n"
		"  -m, --max-size SIZE       local disk limit for eviction\n"
		"  -H, --hook PATH           hook program\n"
		"  -t, --hook-timeout SEC    kill a hook after SEC seconds (default 120)\n"
		"  -h, --help\n");
}

struct vstate {
	int bad;
};

/* Check every file of the directory on its own, without the index. */
static int verify_dir(const char *dir)
{
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		fprintf(stderr, "qsfs-cache: cannot open %s: %s\n", dir, strerror(errno));
		return 1;
	}
	uint8_t vol[VOLUME_ID_SIZE];
	int r = cache_volume_read(dfd, vol);
	if (r) {
		fprintf(stderr, "qsfs-cache: %s/VOLUME: %s\n", dir,
			r == -EBADMSG ? "malformed" : strerror(-r));
		close(dfd);
		return 3;
	}
	DIR *d = fdopendir(dup(dfd));
	if (!d) {
		close(dfd);
		return 1;
	}
	struct dirent *e;
	uint64_t *ids = NULL;
	size_t n = 0, cap = 0;
	while ((e = readdir(d))) {
		uint64_t id;
		if (!seg_parse_name(e->d_name, &id))
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			ids = realloc(ids, cap * sizeof *ids);
		}
		ids[n++] = id;
	}
	rewinddir(d);
	int bad = 0;
	uint64_t maxid = 0;
	for (size_t i = 0; i < n; i++)
		if (ids[i] > maxid)
			maxid = ids[i];
	for (size_t i = 0; i < n; i++) {
		char name[SEG_NAME_LEN];
		seg_name(ids[i], name);
		int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC);
		struct seg_scan_result res;
		r = fd < 0 ? -errno : seg_scan(fd, ids[i], vol, false, NULL, NULL, NULL, &res);
		if (fd >= 0)
			close(fd);
		if (r) {
			printf("CORRUPT segment %" PRIu64 " (%s): %s\n", ids[i], name,
			       r == -EBADMSG ? res.why : strerror(-r));
			bad++;
		} else if (!res.clean && (res.sealed || ids[i] != maxid)) {
			printf("CORRUPT segment %" PRIu64 " (%s) at offset %" PRIu64 ": %s\n",
			       ids[i], name, res.bad_off, res.why);
			bad++;
		} else if (!res.clean) {
			printf("torn tail in active segment %" PRIu64 " (%s): %" PRIu64
			       " bytes at offset %" PRIu64 " (%s); it is cut off at the next open\n",
			       ids[i], name, res.file_size - res.end, res.end, res.why);
		} else if (!res.sealed && ids[i] != maxid) {
			printf("CORRUPT segment %" PRIu64 " (%s): not sealed but not the newest\n",
			       ids[i], name);
			bad++;
		} else {
			printf("ok segment %" PRIu64 " (%s): %" PRIu64 " records, %s\n", ids[i], name,
			       res.nrecords, res.sealed ? "sealed" : "active");
		}
	}
	while ((e = readdir(d))) {
		uint64_t id;
		if (!ckpt_parse_name(e->d_name, &id))
			continue;
		struct ckpt_file f;
		const char *why;
		r = ckpt_open(dfd, e->d_name, vol, &f, &why);
		if (r) {
			printf("CORRUPT checkpoint %s: %s\n", e->d_name,
			       r == -EBADMSG ? why : strerror(-r));
			bad++;
			continue;
		}
		printf("ok checkpoint %s: %s, segments %" PRIu64 "..%" PRIu64 ", %" PRIu64 " keys\n",
		       e->d_name, f.hdr.kind == CKPT_FULL ? "full" : "delta", f.hdr.from + 1,
		       f.hdr.upto, f.nkeys);
		ckpt_close(&f);
	}
	closedir(d);
	close(dfd);
	free(ids);
	printf("verify: %s\n", bad ? "CORRUPTION FOUND" : "all checksums ok");
	return bad ? 3 : 0;
}

static void print_seg(void *arg, const struct cache_seg_info *s)
{
	(void)arg;
	printf("%8" PRIu64 "  %-9s  %-5s  %-6s  %12" PRIu64 "  %12" PRIu64 "  %12" PRIu64 "\n",
	       s->id, cache_state_name(s->state), s->local ? "yes" : "no",
	       s->handed_off ? "yes" : "no", s->size, s->live, s->garbage);
}

static int cmd_inspect(struct cache_opts *o, int argc, char **argv)
{
	bool verify = argc > 0 && !strcmp(argv[0], "--verify");
	if (argc > (verify ? 1 : 0)) {
		usage(stderr);
		return 2;
	}
	o->read_only = true;
	struct cache *c;
	int r = cache_open(o, &c);
	int ret = 0;
	if (r) {
		fprintf(stderr, "qsfs-cache: cannot open %s: %s\n", o->dir, strerror(-r));
		ret = r == -EIO ? 3 : 1;
	} else {
		printf("%8s  %-9s  %-5s  %-6s  %12s  %12s  %12s\n", "segment", "state", "local",
		       "handed", "size", "live", "garbage");
		cache_segments(c, print_seg, NULL);
		printf("\n");
		struct cache_stats st;
		cache_stats(c, &st);
		cache_stats_print(&st, stdout);
		cache_close(c);
	}
	if (verify) {
		printf("\n");
		int v = verify_dir(o->dir);
		if (v > ret)
			ret = v;
	}
	return ret;
}

static int print_key(void *arg, const uint8_t *key, size_t klen, const uint8_t *val,
		     size_t vlen)
{
	(void)arg;
	(void)val;
	fwrite(key, 1, klen, stdout);
	printf("\t%zu\n", vlen);
	return 0;
}

static int read_all(FILE *f, uint8_t **buf, size_t *len)
{
	size_t cap = 65536, n = 0;
	uint8_t *b = malloc(cap);
	while (b) {
		size_t got = fread(b + n, 1, cap - n, f);
		n += got;
		if (got == 0)
			break;
		if (n == cap) {
			uint8_t *nb = realloc(b, cap *= 2);
			if (!nb)
				free(b);
			b = nb;
		}
	}
	if (!b || ferror(f)) {
		free(b);
		return -EIO;
	}
	*buf = b;
	*len = n;
	return 0;
}

static double cpu_seconds(void)
{
	struct timespec t;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* clean [TARGET]: one segment at a time, the best pick each time, until
 * none is worth it; a segment never comes back once dead, so this ends. */
static int cmd_clean(struct cache *c, const char *arg)
{
	double target = 0.2;
	if (arg) {
		char *end;
		target = strtod(arg, &end);
		if (*end || end == arg || !(target >= 0 && target < 1)) {
			fprintf(stderr, "qsfs-cache: clean: TARGET '%s' is not a fraction "
				"from 0 to below 1\n", arg);
			return 2;
		}
	}
	struct cache_stats st;
	cache_stats(c, &st);
	uint64_t nseg = 0, records = 0, bytes = 0, limit = st.active_seg;
	double cpu0 = cpu_seconds();
	uint64_t id;
	while (nseg < limit && cache_clean_pick(c, target, &id, 1) == 1) {
		struct cache_clean_result r;
		int e = cache_clean_segment(c, id, 0, &r);
		if (e) {
			fprintf(stderr, "qsfs-cache: clean: segment %" PRIu64 ": %s\n", id,
				strerror(-e));
			return 1;
		}
		printf("segment %" PRIu64 ": moved %" PRIu64 " records (%" PRIu64 " bytes)\n", id,
		       r.records, r.bytes);
		nseg++;
		records += r.records;
		bytes += r.bytes;
	}
	int e = cache_sync(c);
	if (e) {
		fprintf(stderr, "qsfs-cache: clean: sync: %s\n", strerror(-e));
		return 1;
	}
	double cpu = cpu_seconds() - cpu0;
	printf("cleaned %" PRIu64 " segments: moved %" PRIu64 " records, %" PRIu64 " bytes "
	       "(%.1f MB per CPU-second)\n", nseg, records, bytes,
	       cpu > 0 ? (double)bytes / 1e6 / cpu : 0.0);
	return 0;
}

static int run(struct cache_opts *o, const char *cmd, int argc, char **argv)
{
	if (!strcmp(cmd, "inspect"))
		return cmd_inspect(o, argc, argv);
	struct { const char *name; int min, max; } cmds[] = {
		{ "stats", 0, 0 }, { "put", 1, 2 }, { "get", 1, 1 }, { "del", 1, 1 },
		{ "scan", 0, 1 }, { "seal", 0, 0 }, { "confirm", 1, 1 }, { "evict", 0, 0 },
		{ "fill", 2, 3 }, { "clean", 0, 1 },
	};
	int k = -1;
	for (size_t i = 0; i < sizeof cmds / sizeof *cmds; i++)
		if (!strcmp(cmd, cmds[i].name))
			k = (int)i;
	if (k < 0 || argc < cmds[k].min || argc > cmds[k].max) {
		if (k < 0)
			fprintf(stderr, "qsfs-cache: unknown command '%s'\n", cmd);
		usage(stderr);
		return 2;
	}
	o->read_only = !strcmp(cmd, "get") || !strcmp(cmd, "scan") || !strcmp(cmd, "stats");
	if (o->read_only && o->hook)
		o->read_only = false;	/* a get may need the segment-missing hook */
	struct cache *c;
	int r = cache_open(o, &c);
	if (r) {
		fprintf(stderr, "qsfs-cache: cannot open %s: %s\n", o->dir, strerror(-r));
		return 1;
	}
	int ret = 0;
	if (!strcmp(cmd, "stats")) {
		struct cache_stats st;
		cache_quiesce(c);
		cache_stats(c, &st);
		cache_stats_print(&st, stdout);
	} else if (!strcmp(cmd, "put")) {
		FILE *f = argc > 1 ? fopen(argv[1], "rb") : stdin;
		uint8_t *buf;
		size_t len;
		if (!f || read_all(f, &buf, &len)) {
			fprintf(stderr, "qsfs-cache: cannot read %s: %s\n",
				argc > 1 ? argv[1] : "stdin", strerror(errno));
			ret = 1;
		} else {
			r = cache_put(c, argv[0], strlen(argv[0]), buf, len);
			if (!r)
				r = cache_sync(c);
			if (r) {
				fprintf(stderr, "qsfs-cache: put %s: %s\n", argv[0], strerror(-r));
				ret = 1;
			}
			free(buf);
		}
		if (f && f != stdin)
			fclose(f);
	} else if (!strcmp(cmd, "get")) {
		ssize_t n = cache_get(c, argv[0], strlen(argv[0]), NULL, 0);
		uint8_t *buf = n >= 0 ? malloc((size_t)n + 1) : NULL;
		if (n >= 0 && buf)
			n = cache_get(c, argv[0], strlen(argv[0]), buf, (size_t)n);
		if (n < 0) {
			fprintf(stderr, "qsfs-cache: get %s: %s\n", argv[0], strerror((int)-n));
			ret = n == -ENOENT ? 4 : 1;
		} else {
			fwrite(buf, 1, (size_t)n, stdout);
		}
		free(buf);
	} else if (!strcmp(cmd, "del")) {
		r = cache_del(c, argv[0], strlen(argv[0]));
		if (!r)
			r = cache_sync(c);
		if (r) {
			fprintf(stderr, "qsfs-cache: del %s: %s\n", argv[0], strerror(-r));
			ret = r == -ENOENT ? 4 : 1;
		}
	} else if (!strcmp(cmd, "scan")) {
		const char *p = argc ? argv[0] : "";
		r = cache_scan(c, p, strlen(p), false, print_key, NULL);
		if (r) {
			fprintf(stderr, "qsfs-cache: scan: %s\n", strerror(-r));
			ret = 1;
		}
	} else if (!strcmp(cmd, "seal")) {
		int64_t id = cache_seal(c);
		if (id < 0) {
			fprintf(stderr, "qsfs-cache: seal: %s\n", strerror((int)-id));
			ret = 1;
		} else if (id == 0) {
			printf("nothing to seal: the active segment is empty\n");
		} else {
			printf("sealed segment %" PRId64 "\n", id);
		}
	} else if (!strcmp(cmd, "confirm")) {
		char *end;
		errno = 0;
		unsigned long long id = strtoull(argv[0], &end, 10);
		if (errno || *end || !*argv[0]) {
			fprintf(stderr, "qsfs-cache: confirm: '%s' is not a segment id\n", argv[0]);
			ret = 2;
		} else if ((r = cache_confirm(c, id))) {
			fprintf(stderr, "qsfs-cache: confirm %llu: %s\n", id,
				r == -ENOENT ? "no such segment" :
				r == -EINVAL ? "the active segment cannot be confirmed" : strerror(-r));
			ret = 1;
		}
	} else if (!strcmp(cmd, "evict")) {
		/* the worker evicts too (it runs a pass at open): count both */
		cache_quiesce(c);
		r = cache_evict(c);
		struct cache_stats st;
		cache_stats(c, &st);
		if (r < 0) {
			fprintf(stderr, "qsfs-cache: evict: %s\n", strerror(-r));
			ret = 1;
		} else {
			printf("evicted %" PRIu64 " segments\n", st.evicted);
		}
	} else if (!strcmp(cmd, "clean")) {
		ret = cmd_clean(c, argc ? argv[0] : NULL);
	} else if (!strcmp(cmd, "fill")) {
		uint64_t count, size;
		if (parse_size(argv[0], &count) || parse_size(argv[1], &size)) {
			fprintf(stderr, "qsfs-cache: fill: COUNT and SIZE must be numbers\n");
			ret = 2;
		} else {
			const char *prefix = argc > 2 ? argv[2] : "demo/";
			uint8_t *buf = malloc(size ? size : 1);
			char key[300];
			for (uint64_t i = 0; buf && i < count && !ret; i++) {
				for (uint64_t j = 0; j < size; j++)
					buf[j] = (uint8_t)((i * 131 + j / 7) & 0xff);
				snprintf(key, sizeof key, "%s%08" PRIu64, prefix, i);
				r = cache_put(c, key, strlen(key), buf, size);
				if (r) {
					fprintf(stderr, "qsfs-cache: put %s: %s\n", key, strerror(-r));
					ret = 1;
				}
			}
			if (!ret && (r = cache_sync(c))) {
				fprintf(stderr, "qsfs-cache: sync: %s\n", strerror(-r));
				ret = 1;
			}
			free(buf);
		}
	}
	r = cache_close(c);
	if (r && !ret) {
		fprintf(stderr, "qsfs-cache: close: %s\n", strerror(-r));
		ret = 1;
	}
	return ret;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "segment-size", required_argument, NULL, 's' },
		{ "max-size", required_argument, NULL, 'm' },
		{ "hook", required_argument, NULL, 'H' },
		{ "hook-timeout", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct cache_opts o = { 0 };
	int ch;
	while ((ch = getopt_long(argc, argv, "+s:m:H:t:h", opts, NULL)) != -1) {
		uint64_t v;
		switch (ch) {
		case 's':
		case 'm':
			if (parse_size(optarg, &v)) {
				fprintf(stderr, "qsfs-cache: %s: '%s' is not a size (e.g. 64MiB)\n",
					ch == 's' ? "--segment-size" : "--max-size", optarg);
				return 2;
			}
			if (ch == 's' && (v < CACHE_MIN_SEGMENT_SIZE || v > CACHE_MAX_SEGMENT_SIZE)) {
				fprintf(stderr, "qsfs-cache: --segment-size: %s is out of range "
					"(4KiB to 4GiB)\n", optarg);
				return 2;
			}
			if (ch == 's')
				o.segment_size = v;
			else
				o.max_size = v;
			break;
		case 'H':
			o.hook = optarg;
			break;
		case 't':
			if (parse_size(optarg, &v) || v == 0 || v > 86400) {
				fprintf(stderr, "qsfs-cache: --hook-timeout: '%s' is not 1..86400 seconds\n",
					optarg);
				return 2;
			}
			o.hook_timeout_ms = (unsigned)v * 1000;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (argc - optind < 2) {
		usage(stderr);
		return 2;
	}
	o.dir = argv[optind];
	return run(&o, argv[optind + 1], argc - optind - 2, argv + optind + 2);
}
