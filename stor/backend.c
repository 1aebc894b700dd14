/* stor/backend.c - see backend.h */
#include "backend.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../common/fsutil.h"

struct backend {
	enum backend_kind kind;
	char *name;		/* display form */
	char *host, *user, *password, *ns, *path;
	unsigned port;
	unsigned timeout_ms;
	redisContext *rc;	/* NULL until connected */
	bool rc_used;		/* rc has answered a command (it is not fresh) */
	uint64_t retry_at_ns;	/* no reconnect before this (backoff) */
	unsigned failures;	/* consecutive connection failures */
	pthread_mutex_t hmu;	/* h is read by the status thread */
	struct backend_health h;
	/* backend_cancel, from any thread, against the owner's operation: cmu
	 * guards the three fields below. live_fd is rc's socket while rc is
	 * connected; it is cleared under cmu before rc is freed (conn_drop),
	 * so a cancel never shuts down a closed or reused descriptor. */
	pthread_mutex_t cmu;
	int live_fd;		/* -1: not connected */
	bool in_op;		/* an operation is in progress */
	bool cancelled;		/* backend_cancel hit it */
};

static char *dupornull(const char *s)
{
	return s ? strdup(s) : NULL;
}

int backend_open(const struct backend_url *u, unsigned timeout_ms, struct backend **out)
{
	struct backend *b = calloc(1, sizeof *b);
	if (!b)
		return -ENOMEM;
	b->kind = u->kind;
	b->name = strdup(u->display);
	b->host = dupornull(u->host);
	b->user = dupornull(u->user);
	b->password = dupornull(u->password);
	b->ns = dupornull(u->ns);
	b->path = dupornull(u->path);
	b->port = u->port;
	b->timeout_ms = timeout_ms ? timeout_ms : 5000;
	pthread_mutex_init(&b->hmu, NULL);
	pthread_mutex_init(&b->cmu, NULL);
	b->live_fd = -1;
	if (!b->name) {
		backend_close(b);
		return -ENOMEM;
	}
	*out = b;
	return 0;
}

void backend_close(struct backend *b)
{
	if (!b)
		return;
	if (b->rc)
		redisFree(b->rc);
	free(b->name);
	free(b->host);
	free(b->user);
	if (b->password)
		memset(b->password, 0, strlen(b->password));
	free(b->password);
	free(b->ns);
	free(b->path);
	pthread_mutex_destroy(&b->hmu);
	pthread_mutex_destroy(&b->cmu);
	free(b);
}

const char *backend_name(const struct backend *b)
{
	return b->name;
}

struct backend_health backend_health(const struct backend *b)
{
	pthread_mutex_lock((pthread_mutex_t *)&b->hmu);
	struct backend_health h = b->h;
	pthread_mutex_unlock((pthread_mutex_t *)&b->hmu);
	return h;
}

/* --- cancelling an operation (backend_cancel) ----------------------------- */

/* Close b->rc (if any): first out of a cancel's reach, then freed. */
static void conn_drop(struct backend *b)
{
	pthread_mutex_lock(&b->cmu);
	b->live_fd = -1;
	pthread_mutex_unlock(&b->cmu);
	if (b->rc)
		redisFree(b->rc);
	b->rc = NULL;
	b->rc_used = false;
}

/* An operation starts on the owner's thread: a cancel from now on is for
 * it (one that came between operations is forgotten). */
static void op_begin(struct backend *b)
{
	pthread_mutex_lock(&b->cmu);
	b->in_op = true;
	b->cancelled = false;
	pthread_mutex_unlock(&b->cmu);
}

/* The operation ended with r: -ECANCELED for the failure a cancel caused
 * (an answer that arrived before the cancel stands, but its connection,
 * whose socket may be shut down now, is not kept). */
static int op_end(struct backend *b, int r)
{
	pthread_mutex_lock(&b->cmu);
	bool c = b->cancelled;
	b->in_op = b->cancelled = false;
	pthread_mutex_unlock(&b->cmu);
	if (c && b->rc)
		conn_drop(b);
	return c && r == -EIO && b->kind != BACKEND_DIR ? -ECANCELED : r;
}

/* Was the operation in progress cancelled? (Its failure is then not the
 * backend's: no error recorded, no reconnect backoff.) */
static bool op_cancelled(struct backend *b)
{
	pthread_mutex_lock(&b->cmu);
	bool c = b->cancelled;
	pthread_mutex_unlock(&b->cmu);
	return c;
}

/* b->rc just connected: from now on a cancel shuts its socket down; one
 * that came during the connect (no socket to shut down yet) takes effect
 * now. */
static void conn_keep(struct backend *b)
{
	pthread_mutex_lock(&b->cmu);
	b->live_fd = b->rc->fd;
	if (b->cancelled)
		shutdown(b->live_fd, SHUT_RDWR);
	pthread_mutex_unlock(&b->cmu);
}

void backend_cancel(struct backend *b)
{
	pthread_mutex_lock(&b->cmu);
	if (b->in_op) {
		b->cancelled = true;
		if (b->live_fd >= 0)
			shutdown(b->live_fd, SHUT_RDWR);	/* the blocked read returns */
	}
	pthread_mutex_unlock(&b->cmu);
}

static void set_error(struct backend *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void set_error(struct backend *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	pthread_mutex_lock(&b->hmu);
	vsnprintf(b->h.last_error, sizeof b->h.last_error, fmt, ap);
	b->h.state = BACKEND_DOWN;
	b->h.errors++;
	b->h.updated_ns = fs_now_ns();
	pthread_mutex_unlock(&b->hmu);
	va_end(ap);
}

static void ok_latency(struct backend *b, uint64_t t0)
{
	uint64_t now = fs_now_ns();
	pthread_mutex_lock(&b->hmu);
	b->h.latency_us = (now - t0) / 1000;
	b->h.state = b->h.latency_us > BACKEND_SLOW_US ? BACKEND_SLOW : BACKEND_UP;
	b->h.updated_ns = now;
	pthread_mutex_unlock(&b->hmu);
}

static bool valid_key(const char *k)
{
	size_t n = strlen(k);
	if (!n || n > 200 || k[0] == '/' || strstr(k, "..") || strstr(k, "//"))
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = k[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-' || c == '/'))
			return false;
	}
	return true;
}

/* --- dir:// --------------------------------------------------------------- */

/* Is name KEY.tmp-XXXXXX, as dir_put's mkostemp makes them? */
static bool is_put_tmp(const char *name)
{
	const char *t = strstr(name, ".tmp-");
	return t && t != name && strlen(t) == 5 + 6;
}

static int64_t sweep(int dfd, time_t older_than, int depth)
{
	DIR *d = fdopendir(dfd);
	if (!d) {
		close(dfd);
		return -errno;
	}
	int64_t n = 0;
	struct dirent *e;
	while ((e = readdir(d)) && n >= 0) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		struct stat st;
		if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;	/* gone meanwhile */
		if (S_ISDIR(st.st_mode) && depth < 16) {
			int sub = openat(dirfd(d), e->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			int64_t r = sub < 0 ? -errno : sweep(sub, older_than, depth + 1);
			n = r < 0 ? r : n + r;
		} else if (S_ISREG(st.st_mode) && is_put_tmp(e->d_name) &&
			   st.st_mtime < older_than && unlinkat(dirfd(d), e->d_name, 0) == 0) {
			n++;
		}
	}
	closedir(d);
	return n;
}

int64_t backend_dir_sweep_tmp(const struct backend_url *u, unsigned min_age_s)
{
	if (u->kind != BACKEND_DIR)
		return 0;
	int dfd = open(u->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return errno == ENOENT ? 0 : -errno;
	return sweep(dfd, time(NULL) - (time_t)min_age_s, 0);
}

/* Listing a dir:// backend: the keys under the directory the prefix names. */
struct dir_scan {
	const char *prefix;
	size_t plen;
	int (*cb)(void *arg, const char *key, uint64_t size);
	void *arg;
	int stop;		/* cb's non-zero value */
};

/* Walk directory dfd (key: its path relative to the backend's root, with a
 * trailing '/', or "", klen long), calling s->cb for the regular files
 * whose key starts with s->prefix. Consumes dfd. Returns 0, 1 when cb
 * stopped it (s->stop), or -errno. */
static int dir_walk(int dfd, char *key, size_t klen, size_t cap, struct dir_scan *s, int depth)
{
	DIR *d = fdopendir(dfd);
	if (!d) {
		close(dfd);
		return -errno;
	}
	int r = 0;
	for (;;) {
		errno = 0;
		struct dirent *e = readdir(d);
		if (!e) {
			r = errno ? -errno : 0;
			break;
		}
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		size_t nl = strlen(e->d_name);
		if (klen + nl + 2 > cap)
			continue;	/* longer than any key */
		memcpy(key + klen, e->d_name, nl + 1);
		struct stat st;
		if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno == ENOENT)
				continue;	/* gone meanwhile */
			r = -errno;
			break;
		}
		size_t kl = klen + nl;
		if (S_ISDIR(st.st_mode)) {
			key[kl] = '/';
			key[kl + 1] = 0;
			/* only where keys with the prefix can be */
			size_t m = kl + 1 < s->plen ? kl + 1 : s->plen;
			if (depth >= 16 || strncmp(key, s->prefix, m))
				continue;
			int sub = openat(dirfd(d), e->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			if (sub < 0 && errno == ENOENT)
				continue;
			r = sub < 0 ? -errno : dir_walk(sub, key, kl + 1, cap, s, depth + 1);
		} else if (S_ISREG(st.st_mode) && !is_put_tmp(e->d_name) &&
			   !strncmp(key, s->prefix, s->plen)) {
			s->stop = s->cb(s->arg, key, (uint64_t)st.st_size);
			r = s->stop ? 1 : 0;
		}
		if (r)
			break;
	}
	key[klen] = 0;
	closedir(d);
	return r;
}

static int dir_scan(struct backend *b, const char *prefix,
		    int (*cb)(void *arg, const char *key, uint64_t size), void *arg)
{
	/* start in the deepest directory the prefix names */
	char key[512], path[4600];
	const char *slash = strrchr(prefix, '/');
	size_t dl = slash ? (size_t)(slash - prefix) + 1 : 0;
	memcpy(key, prefix, dl);
	key[dl] = 0;
	snprintf(path, sizeof path, "%s/%s", b->path, key);
	int dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		int e = errno;
		struct stat st;
		if ((e == ENOENT || e == ENOTDIR) && stat(b->path, &st) == 0 && S_ISDIR(st.st_mode))
			return 0;	/* the root is there, that directory not: no such keys */
		return -e;
	}
	struct dir_scan s = { prefix, strlen(prefix), cb, arg, 0 };
	int r = dir_walk(dfd, key, dl, sizeof key, &s, 0);
	return r == 1 ? s.stop : r;
}

static int mkdirs(char *path)
{
	for (char *p = path + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		int r = mkdir(path, 0700);
		*p = '/';
		if (r < 0 && errno != EEXIST)
			return -errno;
	}
	return 0;
}

static int dir_put(struct backend *b, const char *key, const void *val, size_t len)
{
	char path[4096], tmp[4200];
	snprintf(path, sizeof path, "%s/%s", b->path, key);
	/* a temporary name of this writer's own: two processes (qsfs-fs and
	 * qsfs-stor both write the lease) putting one key at once must not
	 * share, mix or rename away each other's file */
	snprintf(tmp, sizeof tmp, "%s.tmp-XXXXXX", path);
	int r = mkdirs(path);
	if (r)
		return r;
	int fd = mkostemp(tmp, O_CLOEXEC);	/* mode 0600 */
	if (fd < 0)
		return -errno;
	r = fs_pwrite_all(fd, val, len, 0);
	if (!r && fsync(fd) < 0)
		r = -errno;
	close(fd);
	if (!r && rename(tmp, path) < 0)
		r = -errno;
	if (r) {
		unlink(tmp);
		return r;
	}
	char *slash = strrchr(path, '/');
	*slash = 0;
	int dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		r = fs_fsync_dir(dfd);
		close(dfd);
	}
	return r;
}

static int dir_get(struct backend *b, const char *key, uint8_t **val, size_t *len)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/%s", b->path, key);
	int dfd = open(b->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	int r = fs_read_file(dfd, key, val, len);
	close(dfd);
	return r;
}

static int dir_del(struct backend *b, const char *key)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/%s", b->path, key);
	return unlink(path) < 0 && errno != ENOENT ? -errno : 0;
}

static int dir_exists(struct backend *b, const char *key)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/%s", b->path, key);
	struct stat st;
	if (stat(path, &st) == 0)
		return 1;
	return errno == ENOENT ? 0 : -errno;
}

/* --- redis:// --------------------------------------------------------------- */

/* Record why the connection failed, in words: a timeout, the server
 * closing it, a reply hiredis could not parse, or the system's error. */
static void conn_error(struct backend *b, const char *what)
{
	const redisContext *rc = b->rc;
	if (rc->err == REDIS_ERR_IO && strstr(rc->errstr, "too slow"))
		set_error(b, "%s: %s", what, rc->errstr);
	else if (rc->err == REDIS_ERR_IO && (strstr(rc->errstr, "temporarily unavailable") ||
					strstr(rc->errstr, "timed out")))
		set_error(b, "%s: no answer within %u ms (timeout)", what, b->timeout_ms);
	else if (rc->err == REDIS_ERR_EOF)
		set_error(b, "%s: the server closed the connection", what);
	else if (rc->err == REDIS_ERR_PROTOCOL)
		set_error(b, "%s: protocol error (not a Redis reply): %s", what, rc->errstr);
	else
		set_error(b, "%s: %s", what, rc->errstr[0] ? rc->errstr : "connection lost");
}

/* Send one command and read its reply. NULL when the connection failed:
 * the health record then says why (naming the command) and the
 * connection is dropped. */
static int redis_connect(struct backend *b);

/* The most a reply may hold: a value (BACKEND_MAX_VALUE) and the protocol
 * around it. SCAN and STRLEN replies are far smaller. */
#define REPLY_MAX ((size_t)BACKEND_MAX_VALUE + (64u << 10))

/* The slowest a reply may come once it has taken longer than the
 * backend's timeout: a peer that trickles (a few KB/s) never trips the
 * per-read timeout, and would hold a read of an object for as long as it
 * likes although k other backends have their shards at hand. */
#define REPLY_MIN_RATE (64u << 10)	/* bytes per second */

/* redisGetReply with bounds. Size: a reply whose bytes buffered so far
 * exceed REPLY_MAX is refused as a protocol error before more memory is
 * taken for it (hiredis buffers a bulk string whole before it builds the
 * reply, so a hostile "$4000000000" would otherwise grow the buffer for as
 * long as the peer sends). Time: past timeout_ms, a reply arriving slower
 * than REPLY_MIN_RATE is given up as a timeout ("too slow"). Returns
 * REDIS_OK with *reply, or REDIS_ERR with the context's error set. */
static int get_reply_bounded(redisContext *c, unsigned timeout_ms, void **reply)
{
	*reply = NULL;
	if (redisGetReplyFromReader(c, reply) == REDIS_ERR)
		return REDIS_ERR;
	if (*reply)
		return REDIS_OK;
	int done = 0;
	do {
		if (redisBufferWrite(c, &done) == REDIS_ERR)
			return REDIS_ERR;
	} while (!done);
	/* the reply's time starts once the request is sent (a big SET on a
	 * slow uplink is not the reply's slowness), and counts bytes received */
	uint64_t t0 = fs_now_ns(), received = 0;
	do {
		size_t before = c->reader->len;
		if (redisBufferRead(c) == REDIS_ERR)
			return REDIS_ERR;
		if (c->reader->len > before)
			received += c->reader->len - before;
		size_t have = c->reader->len - c->reader->pos;
		if (have > REPLY_MAX) {
			c->err = REDIS_ERR_PROTOCOL;
			snprintf(c->errstr, sizeof c->errstr, "a reply larger than %zu bytes "
				 "(refused before it was read whole)", REPLY_MAX);
			return REDIS_ERR;
		}
		if (redisGetReplyFromReader(c, reply) == REDIS_ERR)
			return REDIS_ERR;
		if (*reply)
			break;
		uint64_t ms = (fs_now_ns() - t0) / 1000000;
		if (ms > timeout_ms && (double)received * 1000.0 / (double)ms < REPLY_MIN_RATE) {
			c->err = REDIS_ERR_IO;
			snprintf(c->errstr, sizeof c->errstr, "too slow: %llu bytes of the reply in "
				 "%llu ms (timed out: less than %u KiB/s)",
				 (unsigned long long)received, (unsigned long long)ms,
				 REPLY_MIN_RATE >> 10);
			return REDIS_ERR;
		}
	} while (!*reply);
	return REDIS_OK;
}

/* redisCommandArgv, with the reply bounded (get_reply_bounded). */
static redisReply *command_argv(redisContext *c, unsigned timeout_ms, int argc,
				  const char **argv, const size_t *lens)
{
	void *r = NULL;
	if (redisAppendCommandArgv(c, argc, argv, lens) != REDIS_OK ||
	    get_reply_bounded(c, timeout_ms, &r) != REDIS_OK)
		return NULL;
	return r;
}

static redisReply *command(struct backend *b, int argc, const char **argv, const size_t *lens)
{
	bool reused = b->rc_used;
	redisReply *r = command_argv(b->rc, b->timeout_ms, argc, argv, lens);
	if (!r && reused && b->rc->err == REDIS_ERR_EOF && !op_cancelled(b)) {
		/* A connection kept from earlier that the server has closed
		 * meanwhile (it restarted, or dropped idle clients): one new
		 * connection and the command again. Every command sent here is
		 * idempotent (GET, SET of the same value, DEL, EXISTS, PING,
		 * SCAN, STRLEN); a timeout is not retried (that would double
		 * the wait). */
		conn_drop(b);
		b->retry_at_ns = 0;
		if (redis_connect(b))
			return NULL;	/* it said why */
		r = command_argv(b->rc, b->timeout_ms, argc, argv, lens);
	}
	if (!r) {
		if (!op_cancelled(b))	/* a cancel is not the backend's failure */
			conn_error(b, argv[0]);
		conn_drop(b);
	} else {
		b->rc_used = true;
	}
	return r;
}

/* Connect (with AUTH and SELECT) unless connected; back off after failures. */
static int redis_connect(struct backend *b)
{
	if (b->rc)
		return 0;
	uint64_t now = fs_now_ns();
	if (now < b->retry_at_ns)
		return -EAGAIN;
	struct timeval tv = { b->timeout_ms / 1000, (b->timeout_ms % 1000) * 1000 };
	b->rc = redisConnectWithTimeout(b->host, (int)b->port, tv);
	b->rc_used = false;
	if (!b->rc)
		set_error(b, "cannot connect: out of memory");
	int ok = b->rc && !b->rc->err && redisSetTimeout(b->rc, tv) == REDIS_OK;
	if (ok)
		conn_keep(b);
	if (ok && b->password) {
		const char *argv[3] = { "AUTH", b->user ? b->user : b->password, b->password };
		redisReply *r = command(b, b->user ? 3 : 2, argv, NULL);
		if (r && r->type == REDIS_REPLY_ERROR)
			set_error(b, "AUTH refused: %.100s", r->str);
		ok = r && r->type != REDIS_REPLY_ERROR;
		freeReplyObject(r);
	}
	if (ok && b->ns) {
		/* redis: SELECT db; 0-db: SELECT namespace [password] */
		bool numeric = strspn(b->ns, "0123456789") == strlen(b->ns);
		const char *argv[3] = { "SELECT", b->ns, b->password };
		redisReply *r = command(b, !numeric && b->password ? 3 : 2, argv, NULL);
		if (r && r->type == REDIS_REPLY_ERROR)
			set_error(b, "SELECT %s refused: %.100s", b->ns, r->str);
		ok = r && r->type != REDIS_REPLY_ERROR;
		freeReplyObject(r);
	}
	if (!ok) {
		/* no context, or a failed AUTH/SELECT (command() dropped it),
		 * has said why already; keep that */
		bool cancelled = op_cancelled(b);
		if (b->rc && b->rc->err && !cancelled)
			conn_error(b, "cannot connect");
		conn_drop(b);
		if (cancelled)
			return -EIO;	/* cut short: no backoff, the backend did no wrong */
		b->failures++;
		/* to 1.6 s: the daemon's probe (health.h) decides when a backend
		 * is back; a handle must not then refuse it for long */
		uint64_t ms = 100ull << (b->failures < 4 ? b->failures : 4);
		b->retry_at_ns = now + ms * 1000000ull;
		return -EIO;
	}
	b->failures = 0;
	return 0;
}

static int redis_put(struct backend *b, const char *key, const void *val, size_t len)
{
	int r = redis_connect(b);
	if (r)
		return r == -EAGAIN ? -EIO : r;
	const char *argv[3] = { "SET", key, val };
	size_t lens[3] = { 3, strlen(key), len };
	redisReply *rep = command(b, 3, argv, lens);
	if (!rep)
		return -EIO;
	r = rep->type == REDIS_REPLY_STATUS && !strcmp(rep->str, "OK") ? 0 : -EIO;
	if (r)
		set_error(b, "SET %s: unexpected reply%s%.100s", key,
			  rep->type == REDIS_REPLY_ERROR ? ": " : "",
			  rep->type == REDIS_REPLY_ERROR ? rep->str : "");
	freeReplyObject(rep);
	return r;
}

static int redis_get(struct backend *b, const char *key, uint8_t **val, size_t *len)
{
	int r = redis_connect(b);
	if (r)
		return r == -EAGAIN ? -EIO : r;
	const char *argv[2] = { "GET", key };
	redisReply *rep = command(b, 2, argv, NULL);
	if (!rep)
		return -EIO;
	if (rep->type == REDIS_REPLY_NIL) {
		r = -ENOENT;
	} else if (rep->type == REDIS_REPLY_STRING && rep->len <= BACKEND_MAX_VALUE) {
		*val = malloc(rep->len ? rep->len : 1);
		if (!*val) {
			r = -ENOMEM;
		} else {
			memcpy(*val, rep->str, rep->len);
			*len = rep->len;
			r = 0;
		}
	} else {
		set_error(b, "GET %s: unexpected reply (type %d)", key, rep->type);
		r = -EIO;
	}
	freeReplyObject(rep);
	return r;
}

static int redis_del(struct backend *b, const char *key)
{
	int r = redis_connect(b);
	if (r)
		return r == -EAGAIN ? -EIO : r;
	const char *argv[2] = { "DEL", key };
	redisReply *rep = command(b, 2, argv, NULL);
	if (!rep)
		return -EIO;
	r = rep->type == REDIS_REPLY_INTEGER ? 0 : -EIO;
	if (r)
		set_error(b, "DEL %s: unexpected reply", key);
	freeReplyObject(rep);
	return r;
}

static int redis_exists(struct backend *b, const char *key)
{
	int r = redis_connect(b);
	if (r)
		return r == -EAGAIN ? -EIO : r;
	const char *argv[2] = { "EXISTS", key };
	redisReply *rep = command(b, 2, argv, NULL);
	if (!rep)
		return -EIO;
	r = rep->type == REDIS_REPLY_INTEGER ? rep->integer > 0 : -EIO;
	if (r < 0)
		set_error(b, "EXISTS %s: unexpected reply", key);
	freeReplyObject(rep);
	return r;
}

static int redis_ping(struct backend *b)
{
	b->retry_at_ns = 0;
	int r = redis_connect(b);
	if (r)
		return -EIO;
	const char *argv[1] = { "PING" };
	redisReply *rep = command(b, 1, argv, NULL);
	if (!rep)
		return -EIO;
	r = rep->type == REDIS_REPLY_STATUS || rep->type == REDIS_REPLY_STRING ? 0 : -EIO;
	if (r)
		set_error(b, "PING: unexpected reply%s%.100s", rep->type == REDIS_REPLY_ERROR ?
			  ": " : "", rep->type == REDIS_REPLY_ERROR ? rep->str : "");
	freeReplyObject(rep);
	return r;
}

/* SCAN ... MATCH prefix* COUNT 1000 until the cursor is back at 0, and the
 * size of each key found (STRLEN, pipelined per batch). */
static int redis_scan(struct backend *b, const char *prefix,
		      int (*cb)(void *arg, const char *key, uint64_t size), void *arg)
{
	int r = redis_connect(b);
	if (r)
		return -EIO;
	char pat[1024], cursor[32] = "0";
	size_t pl = 0;
	for (const char *p = prefix; *p && pl + 3 < sizeof pat; p++) {
		if (strchr("*?[]\\", *p))
			pat[pl++] = '\\';	/* a glob character, matched literally */
		pat[pl++] = *p;
	}
	pat[pl++] = '*';
	pat[pl] = 0;
	int stop = 0;
	do {
		const char *argv[6] = { "SCAN", cursor, "MATCH", pat, "COUNT", "1000" };
		redisReply *rep = command(b, 6, argv, NULL);
		if (!rep)
			return -EIO;
		if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
		    rep->element[0]->type != REDIS_REPLY_STRING || rep->element[0]->len >= sizeof cursor ||
		    rep->element[1]->type != REDIS_REPLY_ARRAY) {
			set_error(b, "SCAN: unexpected reply%s%.100s",
				  rep->type == REDIS_REPLY_ERROR ? ": " : "",
				  rep->type == REDIS_REPLY_ERROR ? rep->str : "");
			freeReplyObject(rep);
			return -EIO;
		}
		memcpy(cursor, rep->element[0]->str, rep->element[0]->len);
		cursor[rep->element[0]->len] = 0;
		redisReply *keys = rep->element[1];
		for (size_t i = 0; i < keys->elements; i++) {
			redisReply *k = keys->element[i];
			const char *av[2] = { "STRLEN", k->type == REDIS_REPLY_STRING ? k->str : "" };
			size_t al[2] = { 6, k->type == REDIS_REPLY_STRING ? k->len : 0 };
			redisAppendCommandArgv(b->rc, 2, av, al);
		}
		bool failed = false;
		for (size_t i = 0; i < keys->elements; i++) {
			redisReply *k = keys->element[i], *n = NULL;
			if (get_reply_bounded(b->rc, b->timeout_ms, (void **)&n) != REDIS_OK || !n) {
				if (!op_cancelled(b))
					conn_error(b, "STRLEN");
				conn_drop(b);
				freeReplyObject(rep);
				return -EIO;
			}
			if (n->type != REDIS_REPLY_INTEGER || k->type != REDIS_REPLY_STRING) {
				if (!failed)
					set_error(b, "STRLEN: unexpected reply%s%.100s",
						  n->type == REDIS_REPLY_ERROR ? ": " : "",
						  n->type == REDIS_REPLY_ERROR ? n->str : "");
				failed = true;
			} else if (!stop && !failed) {
				/* a key removed since SCAN saw it: STRLEN 0 */
				stop = cb(arg, k->str, (uint64_t)(n->integer > 0 ? n->integer : 0));
			}
			freeReplyObject(n);
		}
		freeReplyObject(rep);
		if (failed)
			return -EIO;
	} while (!stop && strcmp(cursor, "0"));
	return stop;
}

/* --- dispatch ---------------------------------------------------------------- */

int backend_put(struct backend *b, const char *key, const void *val, size_t len)
{
	if (!valid_key(key) || len > BACKEND_MAX_VALUE)
		return -EINVAL;
	uint64_t t0 = fs_now_ns();
	op_begin(b);
	int r = b->kind == BACKEND_DIR ? dir_put(b, key, val, len) : redis_put(b, key, val, len);
	r = op_end(b, r);
	if (r && b->kind == BACKEND_DIR)
		set_error(b, "writing %s: %s", key, strerror(-r));
	if (!r)
		ok_latency(b, t0);
	return r;
}

int backend_get(struct backend *b, const char *key, uint8_t **val, size_t *len)
{
	if (!valid_key(key))
		return -EINVAL;
	*val = NULL;
	*len = 0;
	uint64_t t0 = fs_now_ns();
	op_begin(b);
	int r = b->kind == BACKEND_DIR ? dir_get(b, key, val, len) : redis_get(b, key, val, len);
	r = op_end(b, r);
	if (r && r != -ENOENT && b->kind == BACKEND_DIR)
		set_error(b, "reading %s: %s", key, strerror(-r));
	if (!r || r == -ENOENT)
		ok_latency(b, t0);
	return r;
}

int backend_del(struct backend *b, const char *key)
{
	if (!valid_key(key))
		return -EINVAL;
	uint64_t t0 = fs_now_ns();
	op_begin(b);
	int r = b->kind == BACKEND_DIR ? dir_del(b, key) : redis_del(b, key);
	r = op_end(b, r);
	if (r && b->kind == BACKEND_DIR)
		set_error(b, "removing %s: %s", key, strerror(-r));
	if (!r)
		ok_latency(b, t0);
	return r;
}

int backend_exists(struct backend *b, const char *key)
{
	if (!valid_key(key))
		return -EINVAL;
	uint64_t t0 = fs_now_ns();
	op_begin(b);
	int r = b->kind == BACKEND_DIR ? dir_exists(b, key) : redis_exists(b, key);
	r = op_end(b, r);
	if (r < 0 && b->kind == BACKEND_DIR)
		set_error(b, "looking for %s: %s", key, strerror(-r));
	if (r >= 0)
		ok_latency(b, t0);
	return r == -ECANCELED ? r : r < 0 ? -EIO : r;
}

/* backend_scan's callback, remembering whether it stopped the listing. */
struct scan_cb {
	int (*cb)(void *arg, const char *key, uint64_t size);
	void *arg;
	int stop;
};

static int scan_cb(void *arg, const char *key, uint64_t size)
{
	struct scan_cb *w = arg;
	w->stop = w->cb(w->arg, key, size);
	return w->stop ? 1 : 0;
}

int backend_scan(struct backend *b, const char *prefix,
		 int (*cb)(void *arg, const char *key, uint64_t size), void *arg)
{
	size_t n = strlen(prefix);
	if (n > 200 || prefix[0] == '/' || strstr(prefix, "..") || strstr(prefix, "//") ||
	    strspn(prefix, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-/") != n)
		return -EINVAL;
	uint64_t t0 = fs_now_ns();
	struct scan_cb w = { cb, arg, 0 };
	op_begin(b);
	int r = b->kind == BACKEND_DIR ? dir_scan(b, prefix, scan_cb, &w)
				       : redis_scan(b, prefix, scan_cb, &w);
	r = op_end(b, r);
	if (w.stop)
		return w.stop;
	if (r == -ECANCELED)
		return r;
	if (r && b->kind == BACKEND_DIR)
		set_error(b, "listing %s*: %s", prefix, strerror(r < 0 ? -r : EIO));
	if (r)
		return -EIO;
	ok_latency(b, t0);
	return 0;
}

int backend_ping(struct backend *b)
{
	uint64_t t0 = fs_now_ns();
	int r;
	op_begin(b);
	if (b->kind == BACKEND_DIR) {
		struct stat st;
		r = stat(b->path, &st) < 0 ? -errno : !S_ISDIR(st.st_mode) ? -ENOTDIR
			: access(b->path, W_OK) < 0 ? -errno : 0;
		if (r)
			set_error(b, "%s: %s", b->path, strerror(-r));
	} else {
		r = redis_ping(b);
	}
	r = op_end(b, r);
	if (!r)
		ok_latency(b, t0);
	return r == -ECANCELED ? r : r ? -EIO : 0;
}
