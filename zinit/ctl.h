/* zinit/ctl.h - the control socket of `zinit init` and its client.
 *
 * A unix stream socket (mode 0600; a stale one left by a crash is
 * replaced). The protocol is one request line per connection:
 *
 *   request:  list | status NAME | start NAME | stop NAME | restart NAME |
 *             log | log NAME | follow | follow NAME | shutdown
 *             (ending in "\n")
 *   reply:    "ok\n" and then the body lines, or "error: MESSAGE\n";
 *             the server closes the connection after the reply, except
 *             after "ok" to follow: then every new output line (of NAME,
 *             or of every service) is sent as "name: line\n" as it comes,
 *             until the client closes the connection or zinit exits.
 *
 * The server never blocks the event loop: connections are read and written
 * without blocking from poll, a request longer than CTL_LINE_MAX - 1 bytes
 * is refused, a connection idle for CTL_IDLE_MS is dropped, and so is a
 * follower that lets more than CTL_FOLLOW_MAX bytes pile up unread.
 */
#ifndef QSFS_ZINIT_CTL_H
#define QSFS_ZINIT_CTL_H

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "strbuf.h"

#define CTL_LINE_MAX 1024
#define CTL_MAX_CONNS 32
#define CTL_IDLE_MS 10000
#define CTL_FOLLOW_MAX (1 << 20)

struct ctl;

/* What a handler says about a connection after its reply. */
struct ctl_follow {
	bool on;			/* keep it open and send new lines */
	char name[CTL_LINE_MAX];	/* of this service only; "" = all */
};

/* Answers one request line (without its newline): appends the whole reply
 * ("ok\n..." or "error: ...\n") to reply, and may turn follow on. */
typedef void (*ctl_handler)(void *arg, const char *line, struct strbuf *reply,
			    struct ctl_follow *follow);

/* Listen on path. Returns 0, or a negative errno with err naming path. */
int ctl_open(const char *path, struct ctl **out, char *err, size_t errlen);

/* Close every connection (a last try to send what followers still have
 * pending), the socket, and remove the socket file. */
void ctl_close(struct ctl *c);

/* The descriptors to poll (at most 1 + CTL_MAX_CONNS): fills p, returns
 * how many. */
size_t ctl_fill_pollfds(const struct ctl *c, struct pollfd *p, size_t cap);

/* Handle the poll results of the n entries ctl_fill_pollfds filled:
 * accept, read requests, call h for each complete one, write replies. */
void ctl_handle(struct ctl *c, const struct pollfd *p, size_t n, int64_t now, ctl_handler h,
		void *arg);

/* Queue an output line of service svc for the connections following it
 * (sent from the next ctl_handle). */
void ctl_broadcast(struct ctl *c, const char *svc, const char *line, size_t len);

/* Drop connections idle past their deadline; the next such deadline, or
 * -1. */
int64_t ctl_tick(struct ctl *c, int64_t now);

/* Client: send line to the socket at path and read the reply. Returns 0
 * with *ok true and *body the text after "ok\n", or *ok false and *body
 * the message after "error: " (malloc'd, no trailing newline); or a
 * negative errno when zinit cannot be reached or the reply is garbled
 * (-EPROTO). */
int ctl_request(const char *path, const char *line, int *ok, char **body);

/* Client for follow: send line, then copy everything after "ok\n" to
 * out_fd as it arrives, until zinit closes the connection. Returns 0 then;
 * 1 with *msg (malloc'd) when zinit answered "error: ..."; or a negative
 * errno as ctl_request. */
int ctl_stream(const char *path, const char *line, int out_fd, char **msg);

#endif
