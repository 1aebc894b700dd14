/* common/ctlsock.h - one request line to qsfs-stor's control socket, one
 * reply line back (the protocol is in stor/stord.c). Used by qsfs-ctl and by
 * qsfs-fs (which asks whether sealed segments are safely remote). */
#ifndef QSFS_COMMON_CTLSOCK_H
#define QSFS_COMMON_CTLSOCK_H

/* Send req (a line ending in '\n') to the unix socket at path and read the
 * whole reply; *reply is malloc'd, its trailing newline removed. Returns 0,
 * or a negative errno when the daemon cannot be reached (-ENOENT,
 * -ECONNREFUSED, ...) or the exchange fails. */
int ctlsock_request(const char *path, const char *req, char **reply);

#endif
