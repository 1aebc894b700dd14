/* common/ctlsock.c - see ctlsock.h */
#include "ctlsock.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int ctlsock_request(const char *path, const char *req, char **reply)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof a.sun_path)
		return -ENAMETOOLONG;
	strcpy(a.sun_path, path);
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return -errno;
	if (connect(s, (struct sockaddr *)&a, sizeof a) < 0) {
		int r = -errno;
		close(s);
		return r;
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
			r = -errno;
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
