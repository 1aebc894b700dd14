/* stor/backend.c - see backend.h; the kinds are in backend_dir.c,
 * backend_redis.c and backend_zdb.c (backend_int.h) */
#include "backend.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "backend_int.h"
#include "backend_resp.h"
#include "../common/fsutil.h"

static char *dupornull(const char *s)
{
	return s ? strdup(s) : NULL;
}

static const struct backend_ops *ops_of(enum backend_kind kind)
{
	switch (kind) {
	case BACKEND_DIR:
		return &backend_dir_ops;
	case BACKEND_REDIS:
		return &backend_redis_ops;
	case BACKEND_ZDB:
		return &backend_zdb_ops;
	}
	return NULL;
}

int backend_open(const struct backend_url *u, unsigned timeout_ms, struct backend **out)
{
	if (!ops_of(u->kind))
		return -EINVAL;
	struct backend *b = calloc(1, sizeof *b);
	if (!b)
		return -ENOMEM;
	b->kind = u->kind;
	b->ops = ops_of(u->kind);
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
	resp_drop(b);
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

void backend_conn_gone(struct backend *b)
{
	pthread_mutex_lock(&b->cmu);
	b->live_fd = -1;
	pthread_mutex_unlock(&b->cmu);
}

void backend_conn_keep(struct backend *b, int fd)
{
	pthread_mutex_lock(&b->cmu);
	b->live_fd = fd;
	if (b->cancelled)
		shutdown(fd, SHUT_RDWR);
	pthread_mutex_unlock(&b->cmu);
}

bool backend_op_cancelled(struct backend *b)
{
	pthread_mutex_lock(&b->cmu);
	bool c = b->cancelled;
	pthread_mutex_unlock(&b->cmu);
	return c;
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
		resp_drop(b);
	return c && r == -EIO && b->kind != BACKEND_DIR ? -ECANCELED : r;
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

static void record(struct backend *b, enum backend_state st, const char *fmt, va_list ap)
{
	pthread_mutex_lock(&b->hmu);
	vsnprintf(b->h.last_error, sizeof b->h.last_error, fmt, ap);
	b->h.state = st;
	b->h.errors++;
	b->h.updated_ns = fs_now_ns();
	pthread_mutex_unlock(&b->hmu);
}

void backend_set_error(struct backend *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	record(b, BACKEND_DOWN, fmt, ap);
	va_end(ap);
}

void backend_set_refused(struct backend *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	record(b, BACKEND_UP, fmt, ap);
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

int backend_put(struct backend *b, const char *key, const void *val, size_t len)
{
	if (!valid_key(key) || len > BACKEND_MAX_VALUE)
		return -EINVAL;
	uint64_t t0 = fs_now_ns();
	op_begin(b);
	int r = op_end(b, b->ops->put(b, key, val, len));
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
	int r = op_end(b, b->ops->get(b, key, val, len));
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
	int r = op_end(b, b->ops->del(b, key));
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
	int r = op_end(b, b->ops->exists(b, key));
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
	int r = op_end(b, b->ops->scan(b, prefix, scan_cb, &w));
	if (w.stop)
		return w.stop;
	if (r == -ECANCELED)
		return r;
	if (r)
		return -EIO;
	ok_latency(b, t0);
	return 0;
}

int backend_usage(struct backend *b, uint64_t *used, uint64_t *limit)
{
	if (!b->ops->usage)
		return -ENOTSUP;
	uint64_t t0 = fs_now_ns();
	op_begin(b);
	int r = op_end(b, b->ops->usage(b, used, limit));
	if (!r)
		ok_latency(b, t0);
	return r == -ECANCELED ? r : r ? -EIO : 0;
}

int backend_ping(struct backend *b)
{
	uint64_t t0 = fs_now_ns();
	op_begin(b);
	int r = op_end(b, b->ops->ping(b));
	if (!r)
		ok_latency(b, t0);
	return r == -ECANCELED ? r : r ? -EIO : 0;
}
