/* zinit/ctl.c - see ctl.h */
#include "ctl.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../common/ctlsock.h"
#include "../common/qlog.h"

enum conn_state { C_FREE, C_READING, C_REPLYING, C_FOLLOWING };

struct conn {
	int fd;
	enum conn_state state;
	char in[CTL_LINE_MAX];
	size_t inlen;
	struct strbuf out;
	size_t outoff;		/* bytes of out already sent */
	int64_t deadline;	/* 0: none (followers) */
	struct ctl_follow follow;
};

struct ctl {
	int fd;
	char *path;
	struct conn conns[CTL_MAX_CONNS];
};

int ctl_open(const char *path, struct ctl **out, char *err, size_t errlen)
{
	struct ctl *c = calloc(1, sizeof *c);
	if (!c || !(c->path = strdup(path))) {
		free(c);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	int fd = ctlsock_listen(path, err, errlen);
	if (fd < 0) {
		free(c->path);
		free(c);
		return fd;
	}
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	c->fd = fd;
	*out = c;
	return 0;
}

/* Send what is pending: 0 all sent, 1 some left (would block), -1 the
 * connection is broken. */
static int flush(struct conn *k)
{
	while (k->outoff < k->out.len) {
		ssize_t w = send(k->fd, k->out.data + k->outoff, k->out.len - k->outoff,
				 MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN)
			return 1;
		if (w <= 0)
			return -1;
		k->outoff += (size_t)w;
	}
	k->out.len = k->outoff = 0;
	return 0;
}

static void drop(struct conn *k)
{
	close(k->fd);
	sb_free(&k->out);
	memset(k, 0, sizeof *k);
	k->state = C_FREE;
}

void ctl_close(struct ctl *c)
{
	if (!c)
		return;
	for (int i = 0; i < CTL_MAX_CONNS; i++) {
		if (c->conns[i].state == C_FOLLOWING)
			flush(&c->conns[i]);
		if (c->conns[i].state != C_FREE)
			drop(&c->conns[i]);
	}
	close(c->fd);
	unlink(c->path);
	free(c->path);
	free(c);
}

size_t ctl_fill_pollfds(const struct ctl *c, struct pollfd *p, size_t cap)
{
	size_t n = 0;
	if (n < cap)
		p[n++] = (struct pollfd){ .fd = c->fd, .events = POLLIN };
	for (int i = 0; i < CTL_MAX_CONNS && n < cap; i++) {
		const struct conn *k = &c->conns[i];
		short ev = 0;
		if (k->state == C_READING)
			ev = POLLIN;
		else if (k->state == C_REPLYING)
			ev = POLLOUT;
		else if (k->state == C_FOLLOWING)	/* POLLIN: to see it close */
			ev = POLLIN | (k->outoff < k->out.len ? POLLOUT : 0);
		if (ev)
			p[n++] = (struct pollfd){ .fd = k->fd, .events = ev };
	}
	return n;
}

static void accept_all(struct ctl *c, int64_t now)
{
	for (;;) {
		int fd = accept4(c->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd < 0)
			return;	/* EAGAIN, or a client gone before we took it */
		int i = 0;
		while (i < CTL_MAX_CONNS && c->conns[i].state != C_FREE)
			i++;
		if (i == CTL_MAX_CONNS) {
			static const char busy[] = "error: too many control connections\n";
			if (send(fd, busy, sizeof busy - 1, MSG_NOSIGNAL) < 0) {
				/* the client learns it from the closed connection */
			}
			close(fd);
			continue;
		}
		c->conns[i].fd = fd;
		c->conns[i].state = C_READING;
		c->conns[i].deadline = now + CTL_IDLE_MS;
	}
}

static void read_request(struct conn *k, int64_t now, ctl_handler h, void *arg)
{
	ssize_t r = read(k->fd, k->in + k->inlen, sizeof k->in - 1 - k->inlen);
	if (r < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (r <= 0) {
		drop(k);
		return;
	}
	k->inlen += (size_t)r;
	k->in[k->inlen] = 0;
	char *nl = strchr(k->in, '\n');
	if (!nl && k->inlen < sizeof k->in - 1)
		return;	/* more to come */
	if (!nl) {
		sb_printf(&k->out, "error: request longer than %d bytes\n", CTL_LINE_MAX - 1);
	} else {
		*nl = 0;
		h(arg, k->in, &k->out, &k->follow);
	}
	if (k->out.oom) {
		sb_free(&k->out);
		sb_printf(&k->out, "error: out of memory\n");
		k->follow.on = false;
	}
	k->state = k->follow.on ? C_FOLLOWING : C_REPLYING;
	k->deadline = k->follow.on ? 0 : now + CTL_IDLE_MS;
	int f = flush(k);
	if (f < 0 || (f == 0 && k->state == C_REPLYING))
		drop(k);
}

static void serve(struct conn *k, short revents, int64_t now, ctl_handler h, void *arg)
{
	switch (k->state) {
	case C_READING:
		read_request(k, now, h, arg);
		break;
	case C_REPLYING:
		if (flush(k) <= 0)
			drop(k);	/* all sent, or broken */
		break;
	case C_FOLLOWING:
		if (revents & (POLLIN | POLLHUP | POLLERR)) {
			char buf[256];
			ssize_t r = read(k->fd, buf, sizeof buf);
			if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
				drop(k);	/* the client went away */
				break;
			}
		}
		if ((revents & POLLOUT) && flush(k) < 0)
			drop(k);
		break;
	case C_FREE:
		break;
	}
}

void ctl_handle(struct ctl *c, const struct pollfd *p, size_t n, int64_t now, ctl_handler h,
		void *arg)
{
	for (size_t j = 0; j < n; j++) {
		if (!p[j].revents)
			continue;
		if (p[j].fd == c->fd) {
			accept_all(c, now);
			continue;
		}
		for (int i = 0; i < CTL_MAX_CONNS; i++)
			if (c->conns[i].state != C_FREE && c->conns[i].fd == p[j].fd) {
				serve(&c->conns[i], p[j].revents, now, h, arg);
				break;
			}
	}
}

void ctl_broadcast(struct ctl *c, const char *svc, const char *line, size_t len)
{
	for (int i = 0; i < CTL_MAX_CONNS; i++) {
		struct conn *k = &c->conns[i];
		if (k->state != C_FOLLOWING || (k->follow.name[0] && strcmp(k->follow.name, svc)))
			continue;
		if (k->out.len - k->outoff > CTL_FOLLOW_MAX || k->out.oom) {
			qlog_warn("zinit: dropping a log follower that does not keep up");
			drop(k);
			continue;
		}
		if (k->outoff > 65536) {	/* keep the buffer from growing */
			memmove(k->out.data, k->out.data + k->outoff, k->out.len - k->outoff);
			k->out.len -= k->outoff;
			k->outoff = 0;
		}
		sb_printf(&k->out, "%s: %.*s\n", svc, (int)len, line);
	}
}

int64_t ctl_tick(struct ctl *c, int64_t now)
{
	int64_t next = -1;
	for (int i = 0; i < CTL_MAX_CONNS; i++) {
		struct conn *k = &c->conns[i];
		if (k->state == C_FREE || !k->deadline)
			continue;
		if (now >= k->deadline) {
			qlog_debug("zinit: dropping an idle control connection");
			drop(k);
		} else if (next < 0 || k->deadline < next) {
			next = k->deadline;
		}
	}
	return next;
}

int ctl_request(const char *path, const char *line, int *ok, char **body)
{
	*body = NULL;
	char *req;
	if (asprintf(&req, "%s\n", line) < 0)
		return -ENOMEM;
	char *reply;
	int r = ctlsock_request(path, req, 0, &reply);
	free(req);
	if (r)
		return r;
	const char *rest;
	if (!strncmp(reply, "ok", 2) && (reply[2] == '\n' || !reply[2])) {
		*ok = 1;
		rest = reply[2] ? reply + 3 : reply + 2;
	} else if (!strncmp(reply, "error: ", 7)) {
		*ok = 0;
		rest = reply + 7;
	} else {
		free(reply);
		return -EPROTO;
	}
	*body = strdup(rest);
	free(reply);
	return *body ? 0 : -ENOMEM;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -EPIPE;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int ctl_stream(const char *path, const char *line, int out_fd, char **msg)
{
	*msg = NULL;
	int s = ctlsock_connect(path);
	if (s < 0)
		return s;
	char req[CTL_LINE_MAX + 1];
	int n = snprintf(req, sizeof req, "%s\n", line);
	ssize_t w = send(s, req, (size_t)n, MSG_NOSIGNAL);
	if (w != n) {
		int e = w < 0 ? -errno : -EPIPE;
		close(s);
		return e;
	}
	/* the first line says ok or error */
	char head[CTL_LINE_MAX];
	size_t h = 0;
	int r = 0;
	char *nl = NULL;
	while (!nl) {
		ssize_t k = read(s, head + h, sizeof head - 1 - h);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			r = k < 0 ? -errno : -EPROTO;
			break;
		}
		h += (size_t)k;
		head[h] = 0;
		nl = strchr(head, '\n');
		if (!nl && h == sizeof head - 1)
			r = -EPROTO;
		if (r)
			break;
	}
	if (!r && !strncmp(head, "error: ", 7)) {
		*nl = 0;
		*msg = strdup(head + 7);
		r = *msg ? 1 : -ENOMEM;
	} else if (!r && strncmp(head, "ok\n", 3)) {
		r = -EPROTO;
	}
	if (!r)	/* what came after "ok\n" with the first read */
		r = write_all(out_fd, nl + 1, h - (size_t)(nl + 1 - head));
	char buf[16384];
	while (!r) {
		ssize_t k = read(s, buf, sizeof buf);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;	/* zinit closed the connection (or it broke) */
		r = write_all(out_fd, buf, (size_t)k);
	}
	close(s);
	return r;
}
