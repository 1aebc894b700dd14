/* common/storclient.c - see storclient.h. */
#include "storclient.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "ctlsock.h"
#include "qlog.h"

#define REPLY_MAX (64u << 20)	/* a CATALOG or GCCHECK line of a big volume */

struct storclient {
	char *path;
	pthread_mutex_t mu;	/* kept and kept_busy */
	int kept;		/* the kept connection, -1: none */
	bool kept_busy;
	unsigned timeout_ms, retrieve_ms;
	_Atomic uint64_t connects;
	/* storclient_cancel_fetches: set, and the pipe made readable (its
	 * read end is polled with a RETRIEVE's socket) */
	atomic_bool fetches_cancelled;
	int cancel_pipe[2];
};

struct storclient *storclient_new(const char *path)
{
	struct storclient *cl = calloc(1, sizeof *cl);
	if (!cl || !(cl->path = strdup(path))) {
		free(cl);
		return NULL;
	}
	if (pipe2(cl->cancel_pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
		free(cl->path);
		free(cl);
		return NULL;
	}
	pthread_mutex_init(&cl->mu, NULL);
	cl->kept = -1;
	cl->timeout_ms = STORCLIENT_TIMEOUT_MS;
	cl->retrieve_ms = STORCLIENT_RETRIEVE_TIMEOUT_MS;
	return cl;
}

void storclient_free(struct storclient *cl)
{
	if (!cl)
		return;
	if (cl->kept >= 0)
		close(cl->kept);
	close(cl->cancel_pipe[0]);
	close(cl->cancel_pipe[1]);
	pthread_mutex_destroy(&cl->mu);
	free(cl->path);
	free(cl);
}

void storclient_set_timeout(struct storclient *cl, unsigned ms, unsigned retrieve_ms)
{
	cl->timeout_ms = ms ? ms : STORCLIENT_TIMEOUT_MS;
	cl->retrieve_ms = retrieve_ms ? retrieve_ms : STORCLIENT_RETRIEVE_TIMEOUT_MS;
}

const char *storclient_path(const struct storclient *cl)
{
	return cl->path;
}

uint64_t storclient_connects(const struct storclient *cl)
{
	return atomic_load(&((struct storclient *)cl)->connects);
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void storclient_cancel_fetches(struct storclient *cl)
{
	atomic_store(&cl->fetches_cancelled, true);
	ssize_t k = write(cl->cancel_pipe[1], "x", 1);	/* full: already readable */
	(void)k;
}

/* Wait until fd is ready for ev before the deadline; cancel_fd (-1: none)
 * readable cancels the wait. 0, -ETIMEDOUT, -ECANCELED, -errno. */
static int wait_fd(int fd, short ev, uint64_t deadline, int cancel_fd)
{
	for (;;) {
		uint64_t now = now_ms();
		if (now >= deadline)
			return -ETIMEDOUT;
		struct pollfd p[2] = { { fd, ev, 0 }, { cancel_fd, POLLIN, 0 } };
		int n = poll(p, cancel_fd >= 0 ? 2 : 1,
			     (int)(deadline - now > 60000 ? 60000 : deadline - now));
		if (n > 0 && cancel_fd >= 0 && (p[1].revents & POLLIN))
			return -ECANCELED;
		if (n > 0)
			return 0;
		if (n < 0 && errno != EINTR)
			return -errno;
	}
}

/* Send the request line and read one reply line. *got: whether any byte of
 * a reply came (a kept connection the daemon closed fails with none). */
static int exchange(int fd, const char *req, size_t len, uint64_t deadline, int cancel_fd,
		    char **reply, bool *got)
{
	*got = false;
	for (size_t off = 0; off < len;) {
		int r = wait_fd(fd, POLLOUT, deadline, cancel_fd);
		if (r)
			return r;
		ssize_t k = send(fd, req + off, len - off, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (k < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (k < 0)
			return -errno;
		off += (size_t)k;
	}
	size_t n = 0, cap = 256;
	char *buf = malloc(cap);
	if (!buf)
		return -ENOMEM;
	for (;;) {
		if (n + 1 >= cap) {
			if (cap >= REPLY_MAX) {
				free(buf);
				return -EPROTO;
			}
			char *nb = realloc(buf, cap * 2);
			if (!nb) {
				free(buf);
				return -ENOMEM;
			}
			buf = nb;
			cap *= 2;
		}
		int r = wait_fd(fd, POLLIN, deadline, cancel_fd);
		if (r) {
			free(buf);
			return r;
		}
		ssize_t k = recv(fd, buf + n, cap - 1 - n, MSG_DONTWAIT);
		if (k < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (k <= 0) {
			int e = k < 0 ? -errno : n ? -EPROTO : -ECONNRESET;
			free(buf);
			return e;
		}
		*got = true;
		char *nl = memchr(buf + n, '\n', (size_t)k);
		n += (size_t)k;
		if (nl) {
			if (nl != buf + n - 1) {	/* more than one line: not our protocol */
				free(buf);
				return -EPROTO;
			}
			*nl = 0;
			*reply = buf;
			return 0;
		}
	}
}

/* The reply is the kind op gets? */
static int check_reply(enum stor_op op, const char *reply)
{
	if (!strncmp(reply, "ERR", 3) && (reply[3] == ' ' || !reply[3]))
		return -EREMOTEIO;
	switch (storproto_reply(op)) {
	case STOR_REPLY_OK:
		return !strncmp(reply, "OK", 2) && (reply[2] == ' ' || !reply[2]) ? 0 : -EPROTO;
	case STOR_REPLY_YESNO:
		return !strcmp(reply, "YES") || !strcmp(reply, "NO") ? 0 : -EPROTO;
	case STOR_REPLY_JSON:
		return reply[0] == '{' ? 0 : -EPROTO;
	}
	return -EPROTO;
}

int storclient_call(struct storclient *cl, const struct stor_req *rq, unsigned timeout_ms,
		    char **reply)
{
	*reply = NULL;
	char req[STORPROTO_LINE_MAX];
	int len = storproto_format(rq, req, sizeof req);
	if (len < 0)
		return len == -ENAMETOOLONG ? -EINVAL : len;
	uint64_t deadline = now_ms() + (timeout_ms ? timeout_ms : cl->timeout_ms);
	int cancel_fd = -1;
	if (rq->op == STOR_RETRIEVE) {
		if (atomic_load(&cl->fetches_cancelled))
			return -ECANCELED;
		cancel_fd = cl->cancel_pipe[0];
	}
	/* the kept connection, unless another call has it or this one may
	 * take long (a RETRIEVE would hold it for minutes) */
	int fd = -1;
	bool kept = false;
	if (rq->op != STOR_RETRIEVE) {
		pthread_mutex_lock(&cl->mu);
		if (!cl->kept_busy) {
			cl->kept_busy = kept = true;
			fd = cl->kept;
			cl->kept = -1;
		}
		pthread_mutex_unlock(&cl->mu);
	}
	int r;
	for (int attempt = 0;; attempt++) {
		bool reused = fd >= 0;
		if (fd < 0) {
			/* non-blocking: a daemon whose backlog is full (it hangs)
			 * fails the connect instead of blocking it */
			fd = ctlsock_connect_flags(cl->path, SOCK_NONBLOCK);
			while (fd == -EAGAIN && now_ms() + 10 < deadline) {
				/* the backlog is full: stor is busy, not gone */
				nanosleep(&(struct timespec){ 0, 10 * 1000 * 1000 }, NULL);
				fd = ctlsock_connect_flags(cl->path, SOCK_NONBLOCK);
			}
			if (fd < 0) {
				r = fd == -EAGAIN ? -ETIMEDOUT : fd;
				break;
			}
			atomic_fetch_add(&cl->connects, 1);
		}
		bool got;
		r = exchange(fd, req, (size_t)len, deadline, cancel_fd, reply, &got);
		if (r && reused && !got && attempt == 0 && r != -ETIMEDOUT) {
			/* the daemon closed the kept connection (it restarted, or
			 * stopped): a request it never answered is sent again */
			close(fd);
			fd = -1;
			continue;
		}
		break;
	}
	if (r && fd >= 0) {	/* a connection in an unknown state is not kept */
		close(fd);
		fd = -1;
	}
	if (kept) {
		pthread_mutex_lock(&cl->mu);
		cl->kept = fd;
		cl->kept_busy = false;
		pthread_mutex_unlock(&cl->mu);
	} else if (fd >= 0) {
		close(fd);
	}
	if (!r)
		r = check_reply(rq->op, *reply);
	if (r && r != -EREMOTEIO) {
		free(*reply);
		*reply = NULL;
	}
	return r;
}

const char *storclient_strerror(const struct storclient *cl, int r, char *buf, size_t len)
{
	switch (r) {
	case -ENOENT:
		snprintf(buf, len, "qsfs-stor is not running (no socket %s)", cl->path);
		break;
	case -ECONNREFUSED:
		snprintf(buf, len, "qsfs-stor is not running (nothing listens on %s)", cl->path);
		break;
	case -EACCES:
	case -EPERM:
		snprintf(buf, len, "permission denied on qsfs-stor's socket %s (it is for the "
			 "user qsfs-stor runs as)", cl->path);
		break;
	case -ETIMEDOUT:
		snprintf(buf, len, "qsfs-stor did not answer in time on %s", cl->path);
		break;
	case -ECANCELED:
		snprintf(buf, len, "cancelled: qsfs-fs is stopping");
		break;
	case -EPROTO:
		snprintf(buf, len, "qsfs-stor on %s answered something that is not a reply of "
			 "its protocol", cl->path);
		break;
	default:
		snprintf(buf, len, "cannot talk to qsfs-stor on %s: %s", cl->path, strerror(-r));
	}
	return buf;
}

/* A call whose refusal or failure goes to why. */
static int call_why(struct storclient *cl, const struct stor_req *rq, unsigned timeout_ms,
		    char **reply, char *why, size_t whylen)
{
	int r = storclient_call(cl, rq, timeout_ms, reply);
	if (r && why && whylen) {
		char b[512];
		if (r == -EREMOTEIO)
			snprintf(why, whylen, "qsfs-stor refused %s %s: %s", storproto_word(rq->op),
				 rq->name, *reply + (strlen(*reply) > 4 ? 4 : strlen(*reply)));
		else
			snprintf(why, whylen, "%s", storclient_strerror(cl, r, b, sizeof b));
	}
	return r;
}

static int simple(struct storclient *cl, const struct stor_req *rq, unsigned timeout_ms,
		  char *why, size_t whylen)
{
	char *reply = NULL;
	int r = call_why(cl, rq, timeout_ms, &reply, why, whylen);
	free(reply);
	return r;
}

int storclient_ping(struct storclient *cl)
{
	struct stor_req rq = { .op = STOR_PING };
	return simple(cl, &rq, 0, NULL, 0);
}

int storclient_lease(struct storclient *cl)
{
	struct stor_req rq = { .op = STOR_LEASE };
	return simple(cl, &rq, 0, NULL, 0);
}

static int named(struct storclient *cl, enum stor_op op, const char *name, const char *path,
		 unsigned timeout_ms, char *why, size_t whylen)
{
	struct stor_req rq = { .op = op, .path = path };
	if (snprintf(rq.name, sizeof rq.name, "%s", name) >= (int)sizeof rq.name)
		return -EINVAL;
	return simple(cl, &rq, timeout_ms, why, whylen);
}

int storclient_store(struct storclient *cl, const char *name, const char *path, char *why,
		     size_t whylen)
{
	return named(cl, STOR_STORE, name, path, 0, why, whylen);
}

int storclient_retrieve(struct storclient *cl, const char *name, const char *path,
			unsigned timeout_ms, char *why, size_t whylen)
{
	return named(cl, STOR_RETRIEVE, name, path,
		     timeout_ms ? timeout_ms : cl->retrieve_ms, why, whylen);
}

int storclient_delete(struct storclient *cl, const char *name, char *why, size_t whylen)
{
	return named(cl, STOR_DELETE, name, NULL, 0, why, whylen);
}

int storclient_lost(struct storclient *cl, const char *name, bool *stored, char *why,
		    size_t whylen)
{
	struct stor_req rq = { .op = STOR_LOST };
	if (snprintf(rq.name, sizeof rq.name, "%s", name) >= (int)sizeof rq.name)
		return -EINVAL;
	char *reply = NULL;
	int r = call_why(cl, &rq, 0, &reply, why, whylen);
	if (!r && strcmp(reply, "OK LOST") && strcmp(reply, "OK STORED")) {
		r = -EPROTO;
		if (why)
			snprintf(why, whylen, "qsfs-stor answered LOST %s with '%.100s'", name, reply);
	}
	if (!r)
		*stored = !strcmp(reply, "OK STORED");
	free(reply);
	return r;
}

int storclient_gcfloor(struct storclient *cl, uint64_t *floor)
{
	struct stor_req rq = { .op = STOR_GCFLOOR };
	char *reply = NULL, *end;
	int r = storclient_call(cl, &rq, 0, &reply);
	if (!r) {
		errno = 0;
		unsigned long long v = strtoull(reply + 2, &end, 10);
		if (reply[2] != ' ' || errno || *end)
			r = -EPROTO;
		else
			*floor = v;
	}
	free(reply);
	return r;
}

int storclient_confirms(struct storclient *cl, uint64_t lo, uint64_t hi,
			void (*fn)(void *arg, uint64_t id), void *arg)
{
	struct stor_req rq = { .op = STOR_CONFIRMS, .lo = lo, .hi = hi };
	char *reply = NULL;
	int r = storclient_call(cl, &rq, 0, &reply);
	if (!r)
		r = storproto_confirms_each(reply + 2, lo, hi, fn, arg);
	free(reply);
	return r;
}

int storclient_confirmed(struct storclient *cl, const char *name, bool *yes)
{
	struct stor_req rq = { .op = STOR_CONFIRMED };
	if (snprintf(rq.name, sizeof rq.name, "%s", name) >= (int)sizeof rq.name)
		return -EINVAL;
	char *reply = NULL;
	int r = storclient_call(cl, &rq, 0, &reply);
	if (!r)
		*yes = !strcmp(reply, "YES");
	free(reply);
	return r;
}

int storclient_json(struct storclient *cl, enum stor_op op, bool fix, unsigned timeout_ms,
		    char **json)
{
	struct stor_req rq = { .op = op, .fix = fix };
	if (storproto_reply(op) != STOR_REPLY_JSON)
		return -EINVAL;
	return storclient_call(cl, &rq, timeout_ms, json);
}

int storclient_scrub(struct storclient *cl, bool repair, bool *already)
{
	struct stor_req rq = { .op = repair ? STOR_REPAIR : STOR_SCRUB };
	char *reply = NULL;
	int r = storclient_call(cl, &rq, 0, &reply);
	if (!r && already)
		*already = strstr(reply, "already") != NULL;
	free(reply);
	return r;
}

int storclient_handoff(void *arg, const char *event, const char *const *args)
{
	struct storclient *cl = arg;
	char name[STORPROTO_NAME_MAX], why[1024];
	bool sealed = !strcmp(event, "segment-sealed"), ckpt = !strcmp(event, "checkpoint-written"),
	     missing = !strcmp(event, "segment-missing"), removed = !strcmp(event, "segment-removed");
	if (!strcmp(event, "ready") || !strcmp(event, "closing"))
		return 0;
	if (!strcmp(event, "segment-lost")) {
		bool stored = false;
		if (!args || !args[0])
			return 2;
		snprintf(name, sizeof name, "s%s", args[0]);
		int r = storclient_lost(cl, name, &stored, why, sizeof why);
		if (r) {
			qlog_warn("fs: reporting %s lost: %s", name, why);
			return 1;
		}
		return stored ? STORPROTO_HOOK_STORED : 0;
	}
	if (!sealed && !ckpt && !missing && !removed)
		return 2;
	if (!args || !args[0] || (!removed && !args[1]))
		return 2;
	snprintf(name, sizeof name, "%c%s", ckpt ? 'c' : 's', args[0]);
	int r = sealed || ckpt ? storclient_store(cl, name, args[1], why, sizeof why)
		: missing ? storclient_retrieve(cl, name, args[1], 0, why, sizeof why)
			  : storclient_delete(cl, name, why, sizeof why);
	if (r) {
		qlog_warn("fs: %s %s: %s", missing ? "fetching" : removed ? "deleting" :
			  "handing off", name, why);
		return 1;
	}
	return 0;
}
