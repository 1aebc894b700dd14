/* common/ctlsock.h - one request line to qsfs-stor's control socket, one
 * reply line back (the protocols are in stor/stord.c and fs/fsctl.h). Used by qsfs-ctl and by
 * qsfs-fs (which asks whether sealed segments are safely remote). */
#ifndef QSFS_COMMON_CTLSOCK_H
#define QSFS_COMMON_CTLSOCK_H

#include <stddef.h>

/* Send req (a line ending in '\n') to the unix socket at path and read the
 * whole reply; *reply is malloc'd, its trailing newline removed (NULL on
 * failure). Returns 0,
 * or a negative errno when the daemon cannot be reached (-ENOENT,
 * -ECONNREFUSED, ...) or the exchange fails. */
int ctlsock_request(const char *path, const char *req, char **reply);

/* Connect to the unix socket at path (for exchanges longer than one line
 * each way). Returns the fd, or a negative errno. */
int ctlsock_connect(const char *path);

/* Listen on the unix socket at path (mode 0600, its directory created if
 * missing). A stale socket left by a crash is replaced; one a running
 * daemon answers on is not (-EADDRINUSE). Returns the listening fd, or a
 * negative errno with err saying why, naming path. */
int ctlsock_listen(const char *path, char *err, size_t errlen);

/* Read one request line (at most cap - 1 bytes) from connection fd into
 * buf, without its newline. Returns 0, or -EPROTO when the peer sent no
 * whole line. */
int ctlsock_read_line(int fd, char *buf, size_t cap);

#endif
