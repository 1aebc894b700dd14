/* common/ctlsock.c - see ctlsock.h */
#include "ctlsock.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

int ctlsock_connect(const char *path)
{
	return ctlsock_connect_flags(path, 0);
}

int ctlsock_connect_flags(const char *path, int flags)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof a.sun_path)
		return -ENAMETOOLONG;
	strcpy(a.sun_path, path);
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | flags, 0);
	if (s < 0)
		return -errno;
	if (connect(s, (struct sockaddr *)&a, sizeof a) < 0) {
		int r = -errno;
		close(s);
		return r;
	}
	return s;
}

int ctlsock_request(const char *path, const char *req, unsigned timeout_s, char **reply)
{
	*reply = NULL;
	int s = ctlsock_connect(path);
	if (s < 0)
		return s;
	/* a daemon that accepts and never answers fails the call, not hangs it */
	struct timeval tv = { .tv_sec = timeout_s };
	if (timeout_s) {
		setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
		setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	}
	size_t len = strlen(req);
	if (send(s, req, len, MSG_NOSIGNAL) != (ssize_t)len) {
		close(s);
		return -EPIPE;
	}
	size_t cap = 4096, n = 0;
	char *buf = malloc(cap);
	int r = buf ? 0 : -ENOMEM;
	while (!r) {
		if (n + 1 == cap) {
			char *nb = realloc(buf, cap *= 2);
			if (!nb) {
				r = -ENOMEM;
				break;
			}
			buf = nb;
		}
		ssize_t k = read(s, buf + n, cap - 1 - n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			r = errno == EAGAIN ? -ETIMEDOUT : -errno;
		if (k <= 0)
			break;
		n += (size_t)k;
	}
	close(s);
	if (r) {
		free(buf);
		return r;
	}
	buf[n] = 0;
	if (n && buf[n - 1] == '\n')
		buf[n - 1] = 0;
	*reply = buf;
	return 0;
}

int ctlsock_listen(const char *path, char *err, size_t errlen)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof a.sun_path) {
		snprintf(err, errlen, "socket path %s is too long (at most %zu bytes)", path,
			 sizeof a.sun_path - 1);
		return -ENAMETOOLONG;
	}
	strcpy(a.sun_path, path);
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		goto fail;
	if (connect(s, (struct sockaddr *)&a, sizeof a) == 0) {
		snprintf(err, errlen, "%s is in use by another running daemon", path);
		close(s);
		return -EADDRINUSE;
	}
	close(s);
	unlink(path);	/* stale, from a crash */
	char dir[sizeof a.sun_path];
	snprintf(dir, sizeof dir, "%s", path);
	char *slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = 0;
		mkdir(dir, 0755);
	}
	s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		goto fail;
	mode_t old = umask(077);
	int r = bind(s, (struct sockaddr *)&a, sizeof a);
	umask(old);
	if (r < 0 || chmod(path, 0600) < 0 || listen(s, 64) < 0) {
		int e = errno;
		close(s);
		errno = e;
		goto fail;
	}
	return s;
fail:;
	int e = errno;
	snprintf(err, errlen, "cannot listen on %s: %s", path, strerror(e));
	return -e;
}

int ctlsock_read_line(int fd, char *buf, size_t cap)
{
	/* peek, then take only up to the newline: what follows is the next
	 * request of the same connection */
	size_t n = 0;
	while (n < cap - 1) {
		ssize_t k = recv(fd, buf + n, cap - 1 - n, MSG_PEEK);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			buf[n] = 0;
			return !n && k == 0 ? -ENODATA : -EPROTO;
		}
		char *nl = memchr(buf + n, '\n', (size_t)k);
		size_t take = nl ? (size_t)(nl - (buf + n)) + 1 : (size_t)k;
		ssize_t got = recv(fd, buf + n, take, 0);
		if (got != (ssize_t)take) {
			buf[n] = 0;
			return -EPROTO;
		}
		n += take;
		if (nl) {
			buf[n - 1] = 0;
			return 0;
		}
	}
	buf[n] = 0;
	return -EPROTO;
}
