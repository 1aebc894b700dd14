/* fs/fsctl.c - see fsctl.h */
#include "fsctl.h"
#include "collector.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../cache/cache.h"
#include "../common/ctlsock.h"
#include "../common/fsproto.h"
#include "../common/qlog.h"
#include "meta.h"

struct fsctl {
	char *path, *mnt;
	struct cache *c;
	struct collector *gc;	/* NULL: no GC requests */
	int lsock;
	int stop_pipe[2];
	pthread_t th;
	/* requests being served on their own threads (the list conns); stop
	 * shuts their sockets down and waits for them, so it never waits on a
	 * client: an idle or slow one is cut off */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	unsigned busy;
	struct conn *conns;
	atomic_bool stopping;	/* a WARMUP stops between segments */
	/* the filesystem's whole status (fsctl_set_status), under mu */
	json_object *(*status)(void *arg);
	void *status_arg;
};

struct conn {
	struct fsctl *x;
	int fd;
	struct conn *next, **pprev;	/* in x->conns, under x->mu */
};

#define REQUEST_WAIT_MS 30000	/* a client has this long to send its request */

/* Take cn off its fsctl's list of connections (x->mu held). */
static void conn_unlink(struct conn *cn)
{
	*cn->pprev = cn->next;
	if (cn->next)
		cn->next->pprev = cn->pprev;
}

static void reply_json(int fd, json_object *o)
{
	dprintf(fd, "%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
}

static void do_seal(struct fsctl *x, int fd)
{
	int r = cache_sync(x->c);
	int64_t id = r ? r : cache_seal(x->c);
	if (id < 0) {
		qlog_err("fs: SEAL request: %s", strerror((int)-id));
		dprintf(fd, "ERR cannot seal the active segment: %s\n", strerror((int)-id));
		return;
	}
	cache_quiesce(x->c);	/* the segment-sealed hook runs (once) */
	struct cache_stats st;
	cache_stats(x->c, &st);
	json_object *o = json_object_new_object();
	json_object_object_add(o, "sealed", json_object_new_int64(id));
	json_object_object_add(o, "hooks_pending", json_object_new_int64((int64_t)st.hooks_pending));
	reply_json(fd, o);
}

static void do_status(struct fsctl *x, int fd)
{
	struct cache_stats st;
	pthread_mutex_lock(&x->mu);
	json_object *(*fn)(void *) = x->status;
	void *arg = x->status_arg;
	pthread_mutex_unlock(&x->mu);
	/* fsctl_stop runs before the provider goes, so it outlives this call */
	json_object *o = fn ? fn(arg) : NULL;
	cache_stats(x->c, &st);
	if (!o)
		o = json_object_new_object();
	json_object_object_add(o, "hooks_pending", json_object_new_int64((int64_t)st.hooks_pending));
	json_object_object_add(o, "hooks_running", json_object_new_int64((int64_t)st.hooks_running));
	json_object_object_add(o, "active_records",
			       json_object_new_int64((int64_t)st.active_records));
	json_object_object_add(o, "active_age_s",
			       json_object_new_double((double)st.active_age_ns / 1e9));
	json_object_object_add(o, "segments_unconfirmed",
			       json_object_new_int64((int64_t)st.segments_unconfirmed));
	json_object_object_add(o, "removes_pending",
			       json_object_new_int64((int64_t)st.removes_pending));
	reply_json(fd, o);
}

/* --- GC ----------------------------------------------------------------------- */

static json_object *gc_json(const struct collector_report *r, bool done)
{
	json_object *o = json_object_new_object();
	json_object_object_add(o, "done", json_object_new_boolean(done));
	json_object_object_add(o, "folded_blocks", json_object_new_uint64(r->folded_blocks));
	json_object_object_add(o, "folded_bytes", json_object_new_uint64(r->folded_bytes));
	json_object_object_add(o, "cleaned_segments", json_object_new_uint64(r->cleaned_segments));
	json_object_object_add(o, "moved_bytes", json_object_new_uint64(r->moved_bytes));
	json_object_object_add(o, "removed_segments", json_object_new_uint64(r->removed_segments));
	json_object_object_add(o, "removed_bytes", json_object_new_uint64(r->removed_bytes));
	json_object_object_add(o, "waiting_segments", json_object_new_uint64(r->waiting_segments));
	json_object_object_add(o, "waiting_bytes", json_object_new_uint64(r->waiting_bytes));
	json_object_object_add(o, "state", json_object_new_string(r->state));
	if (done)
		json_object_object_add(o, "error", json_object_new_string(
			r->err ? strerror(-r->err) : ""));
	return o;
}

/* A progress line; a client gone does not stop the pass (MSG_NOSIGNAL:
 * no SIGPIPE). */
static void gc_send(int fd, json_object *o)
{
	const char *t = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	char buf[2048];
	int n = snprintf(buf, sizeof buf, "%s\n", t);
	if (n > 0 && (size_t)n < sizeof buf)
		(void)!send(fd, buf, (size_t)n, MSG_NOSIGNAL);
	json_object_put(o);
}

static void gc_progress(void *arg, const struct collector_report *r)
{
	gc_send(*(int *)arg, gc_json(r, false));
}

/* GC [TIMEOUT_S]: a thorough pass now (collector_run), progress lines,
 * then the result. */
static void do_gc(struct fsctl *x, int fd, const char *args)
{
	if (!x->gc) {
		dprintf(fd, "ERR garbage collection is not running in this qsfs-fs\n");
		return;
	}
	unsigned timeout = 60;
	if (*args && sscanf(args, "%u", &timeout) != 1) {
		dprintf(fd, "ERR GC: '%.40s' is not a number of seconds\n", args);
		return;
	}
	struct collector_report rep;
	int r = collector_run(x->gc, timeout, gc_progress, &fd, &rep);
	if (r)
		rep.err = r;
	gc_send(fd, gc_json(&rep, true));
}

/* --- WARMUP ------------------------------------------------------------------ */

#define WARMUP_MAX_REQ (64u << 20)	/* inode numbers a client may send */

struct segset {
	uint64_t *v;
	size_t n, cap;
	int err;
};

static void segset_add(struct segset *ss, uint64_t id)
{
	if (ss->n && ss->v[ss->n - 1] == id)
		return;	/* blocks of a file mostly sit in one segment in a row */
	if (ss->n == ss->cap) {
		size_t cap = ss->cap ? ss->cap * 2 : 256;
		uint64_t *v = realloc(ss->v, cap * sizeof *v);
		if (!v) {
			ss->err = -ENOMEM;
			return;
		}
		ss->v = v;
		ss->cap = cap;
	}
	ss->v[ss->n++] = id;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

struct block_walk {
	struct cache *c;
	struct segset *ss;
};

static int block_seg(void *arg, const uint8_t *key, size_t klen, const uint8_t *val,
		     size_t vlen)
{
	(void)val;
	(void)vlen;
	struct block_walk *w = arg;
	uint64_t seg;
	if (cache_locate(w->c, key, klen, &seg) == 0)
		segset_add(w->ss, seg);
	return w->ss->err;
}

static void evicted_seg(void *arg, const struct cache_seg_info *s)
{
	if (!s->local)
		segset_add(arg, s->id);
}

static void local_seg(void *arg, const struct cache_seg_info *s)
{
	struct segset *local = arg;
	if (s->local)
		segset_add(local, s->id);
}

/* WARMUP: the rest of the request (until the client shuts its side) lists
 * inode numbers, one per line; none means the whole volume. Every segment
 * that holds their data blocks (or, for the whole volume, every segment)
 * and is not local is fetched, one after the other; a progress line of
 * JSON follows each, and a last one with "done":true. */
static void do_warmup(struct fsctl *x, int fd, const char *rest, size_t restlen)
{
	size_t cap = restlen + 4096, n = restlen;
	char *req = malloc(cap);
	if (!req) {
		dprintf(fd, "ERR out of memory\n");
		return;
	}
	memcpy(req, rest, restlen);
	for (;;) {
		if (n + 1 >= cap) {
			if (cap >= WARMUP_MAX_REQ) {
				dprintf(fd, "ERR WARMUP: more than %u bytes of inode numbers\n",
					WARMUP_MAX_REQ);
				free(req);
				return;
			}
			char *nr = realloc(req, cap * 2);
			if (!nr) {
				dprintf(fd, "ERR out of memory\n");
				free(req);
				return;
			}
			req = nr;
			cap *= 2;
		}
		ssize_t k = read(fd, req + n, cap - 1 - n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		n += (size_t)k;
	}
	req[n] = 0;
	struct segset ss = { 0 }, local = { 0 };
	size_t files = 0;
	char *save = NULL;
	for (char *t = strtok_r(req, " \n", &save); t && !ss.err; t = strtok_r(NULL, " \n", &save)) {
		char *end;
		errno = 0;
		unsigned long long ino = strtoull(t, &end, 10);
		if (errno || *end || !ino) {
			dprintf(fd, "ERR WARMUP: '%.40s' is not an inode number\n", t);
			free(req);
			free(ss.v);
			return;
		}
		uint8_t pfx[FS_KEY_MAX];
		size_t pl = key_block_prefix(pfx, ino);
		struct block_walk w = { x->c, &ss };
		int r = cache_scan(x->c, pfx, pl, false, block_seg, &w);
		if (r < 0 && !ss.err)
			ss.err = r;
		files++;
	}
	free(req);
	if (!files)
		ss.err = ss.err ? ss.err : cache_segments(x->c, evicted_seg, &ss);
	if (!ss.err)
		ss.err = cache_segments(x->c, local_seg, &local);
	if (ss.err) {
		dprintf(fd, "ERR WARMUP: %s\n", strerror(-ss.err));
		free(ss.v);
		free(local.v);
		return;
	}
	/* unique segments that are not local (local.v is in id order) */
	qsort(ss.v, ss.n, sizeof *ss.v, cmp_u64);
	size_t want = 0;
	for (size_t i = 0; i < ss.n; i++) {
		if (i && ss.v[i] == ss.v[i - 1])
			continue;
		if (bsearch(&ss.v[i], local.v, local.n, sizeof *local.v, cmp_u64))
			continue;
		ss.v[want++] = ss.v[i];
	}
	free(local.v);
	qlog_info("fs: warmup: %zu segments to fetch%s", want, files ? "" : " (whole volume)");
	size_t fetched = 0, failed = 0;
	int last_err = 0;
	for (size_t i = 0; i < want && !atomic_load(&x->stopping); i++) {
		int r = cache_prefetch(x->c, ss.v[i]);
		fetched += r == 1;
		if (r < 0) {
			failed++;
			last_err = r;
		}
		json_object *o = json_object_new_object();
		json_object_object_add(o, "done", json_object_new_boolean(false));
		json_object_object_add(o, "segments", json_object_new_int64((int64_t)want));
		json_object_object_add(o, "checked", json_object_new_int64((int64_t)i + 1));
		json_object_object_add(o, "fetched", json_object_new_int64((int64_t)fetched));
		json_object_object_add(o, "failed", json_object_new_int64((int64_t)failed));
		reply_json(fd, o);
	}
	free(ss.v);
	json_object *o = json_object_new_object();
	json_object_object_add(o, "done", json_object_new_boolean(true));
	json_object_object_add(o, "files", json_object_new_int64((int64_t)files));
	json_object_object_add(o, "segments", json_object_new_int64((int64_t)want));
	json_object_object_add(o, "fetched", json_object_new_int64((int64_t)fetched));
	json_object_object_add(o, "failed", json_object_new_int64((int64_t)failed));
	json_object_object_add(o, "error", json_object_new_string(last_err ? strerror(-last_err)
									    : ""));
	reply_json(fd, o);
}

static void *conn_main(void *arg)
{
	struct conn *cn = arg;
	struct fsctl *x = cn->x;
	char line[4096];
	size_t got = 0;
	/* one line, or for WARMUP a first line and the list after it (what
	 * was read past the first newline is handed on); a client that sends
	 * nothing for REQUEST_WAIT_MS is cut off, and stop shuts the socket */
	for (;;) {
		struct pollfd p = { cn->fd, POLLIN, 0 };
		int pr = poll(&p, 1, REQUEST_WAIT_MS);
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr <= 0)
			break;
		ssize_t k = read(cn->fd, line + got, sizeof line - 1 - got);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		got += (size_t)k;
		if (memchr(line, '\n', got) || got == sizeof line - 1)
			break;
	}
	line[got] = 0;
	char *nl = memchr(line, '\n', got);
	if (nl)
		*nl = 0;
	enum fs_op op;
	const char *gc_arg;
	char err[128];
	if (!nl)
		dprintf(cn->fd, "ERR request too long or not a line\n");
	else if (fsproto_parse(line, &op, &gc_arg, err, sizeof err))
		dprintf(cn->fd, "ERR %s\n", err);
	else if (op == FS_WARMUP)
		do_warmup(x, cn->fd, nl + 1, got - (size_t)(nl + 1 - line));
	else if (op == FS_PING)
		dprintf(cn->fd, "OK %s\n", x->mnt);
	else if (op == FS_SEAL)
		do_seal(x, cn->fd);
	else if (op == FS_STATUS)
		do_status(x, cn->fd);
	else
		do_gc(x, cn->fd, gc_arg);
	pthread_mutex_lock(&x->mu);
	conn_unlink(cn);	/* off the list before the fd is closed */
	close(cn->fd);
	x->busy--;
	pthread_cond_broadcast(&x->cv);
	pthread_mutex_unlock(&x->mu);
	free(cn);
	return NULL;
}

static void *accept_main(void *arg)
{
	struct fsctl *x = arg;
	for (;;) {
		struct pollfd p[2] = { { x->lsock, POLLIN, 0 }, { x->stop_pipe[0], POLLIN, 0 } };
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[1].revents)
			break;
		int fd = accept4(x->lsock, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		struct conn *cn = malloc(sizeof *cn);
		pthread_t t;
		pthread_attr_t at;
		pthread_attr_init(&at);
		pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
		if (cn) {
			*cn = (struct conn){ x, fd, NULL, NULL };
			pthread_mutex_lock(&x->mu);
			x->busy++;
			cn->next = x->conns;
			if (cn->next)
				cn->next->pprev = &cn->next;
			cn->pprev = &x->conns;
			x->conns = cn;
			pthread_mutex_unlock(&x->mu);
			if (pthread_create(&t, &at, conn_main, cn)) {
				pthread_mutex_lock(&x->mu);
				conn_unlink(cn);
				x->busy--;
				pthread_mutex_unlock(&x->mu);
				free(cn);
				close(fd);
			}
		} else {
			close(fd);
		}
		pthread_attr_destroy(&at);
	}
	return NULL;
}

int fsctl_start(const char *path, const char *mnt, struct cache *c, struct collector *gc,
		struct fsctl **out, char *err, size_t errlen)
{
	struct fsctl *x = calloc(1, sizeof *x);
	if (!x || !(x->path = strdup(path)) || !(x->mnt = strdup(mnt))) {
		if (x)
			free(x->path);
		free(x);
		snprintf(err, errlen, "%s", strerror(ENOMEM));
		return -ENOMEM;
	}
	x->c = c;
	x->gc = gc;
	pthread_mutex_init(&x->mu, NULL);
	pthread_cond_init(&x->cv, NULL);
	x->lsock = ctlsock_listen(path, err, errlen);
	int r = x->lsock < 0 ? x->lsock : 0;
	if (!r && pipe2(x->stop_pipe, O_CLOEXEC) < 0) {
		r = -errno;
		snprintf(err, errlen, "control socket %s: %s", path, strerror(-r));
		close(x->lsock);
	}
	if (!r && (r = -pthread_create(&x->th, NULL, accept_main, x))) {
		snprintf(err, errlen, "control socket %s: %s", path, strerror(-r));
		close(x->lsock);
		close(x->stop_pipe[0]);
		close(x->stop_pipe[1]);
	}
	if (r) {
		free(x->path);
		free(x->mnt);
		free(x);
		return r;
	}
	*out = x;
	return 0;
}

void fsctl_set_status(struct fsctl *x, json_object *(*fn)(void *arg), void *arg)
{
	pthread_mutex_lock(&x->mu);
	x->status = fn;
	x->status_arg = arg;
	pthread_mutex_unlock(&x->mu);
}

void fsctl_stop(struct fsctl *x)
{
	if (!x)
		return;
	if (write(x->stop_pipe[1], "x", 1) < 0)
		qlog_warn("fs: stopping the control socket: %s", strerror(errno));
	atomic_store(&x->stopping, true);
	pthread_join(x->th, NULL);
	close(x->lsock);
	unlink(x->path);
	pthread_mutex_lock(&x->mu);
	/* never wait on a client: its reads and writes end now; a request
	 * being served finishes what it does (a WARMUP its current segment) */
	for (struct conn *cn = x->conns; cn; cn = cn->next)
		shutdown(cn->fd, SHUT_RDWR);
	while (x->busy)
		pthread_cond_wait(&x->cv, &x->mu);
	pthread_mutex_unlock(&x->mu);
	close(x->stop_pipe[0]);
	close(x->stop_pipe[1]);
	pthread_mutex_destroy(&x->mu);
	pthread_cond_destroy(&x->cv);
	free(x->path);
	free(x->mnt);
	free(x);
}
