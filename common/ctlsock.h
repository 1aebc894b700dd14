/* common/ctlsock.h - unix control sockets: listening, connecting, one
 * request line and its reply. qsfs-stor's protocol and client are
 * storproto.h and storclient.h; qsfs-fs's is fs/fsctl.h; zinit's its own. */
#ifndef QSFS_COMMON_CTLSOCK_H
#define QSFS_COMMON_CTLSOCK_H

#include <stddef.h>

#define CTLSOCK_TIMEOUT_S 30	/* what qsfs-ctl gives qsfs-fs's quick requests */

/* Send req (a line ending in '\n') to the unix socket at path and read the
 * whole reply, up to the daemon's close (qsfs-fs's control socket and
 * zinit's); *reply is malloc'd, its trailing newline removed (NULL on
 * failure). Returns 0,
 * or a negative errno when the daemon cannot be reached (-ENOENT,
 * -ECONNREFUSED, ...) or the exchange fails (-ETIMEDOUT: no progress for
 * timeout_s seconds; 0: no limit, for requests that wait on purpose). */
int ctlsock_request(const char *path, const char *req, unsigned timeout_s, char **reply);

/* Connect to the unix socket at path (for exchanges longer than one line
 * each way). Returns the fd, or a negative errno. */
int ctlsock_connect(const char *path);

/* ctlsock_connect with socket(2) flags added (SOCK_NONBLOCK: a listener
 * whose backlog is full fails with -EAGAIN instead of blocking). */
int ctlsock_connect_flags(const char *path, int flags);

/* Listen on the unix socket at path (mode 0600, its directory created if
 * missing). A stale socket left by a crash is replaced; one a running
 * daemon answers on is not (-EADDRINUSE). Returns the listening fd, or a
 * negative errno with err saying why, naming path. */
int ctlsock_listen(const char *path, char *err, size_t errlen);

/* Read one request line (at most cap - 1 bytes) from connection fd into
 * buf, without its newline, and nothing after it (a connection may carry
 * several requests). Returns 0, -ENODATA when the peer closed the
 * connection before a line began, or -EPROTO when it sent no whole line
 * (or one too long). Blocks until the line or the close comes. */
int ctlsock_read_line(int fd, char *buf, size_t cap);

#endif
