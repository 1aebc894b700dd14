/* fs/fsctl.c - see fsctl.h */
#include "fsctl.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../cache/cache.h"
#include "../common/ctlsock.h"
#include "../common/qlog.h"

struct fsctl {
	char *path, *mnt;
	struct cache *c;
	int lsock;
	int stop_pipe[2];
	pthread_t th;
	/* requests being served on their own threads; stop waits for them */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	unsigned busy;
};

struct conn {
	struct fsctl *x;
	int fd;
};

static void reply_json(int fd, json_object *o)
{
	dprintf(fd, "%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
}

static void do_seal(struct fsctl *x, int fd)
{
	int r = cache_sync(x->c);
	int64_t id = r ? r : cache_seal(x->c);
	if (id < 0) {
		qlog_err("fs: SEAL request: %s", strerror((int)-id));
		dprintf(fd, "ERR cannot seal the active segment: %s\n", strerror((int)-id));
		return;
	}
	cache_quiesce(x->c);	/* the segment-sealed hook runs (once) */
	struct cache_stats st;
	cache_stats(x->c, &st);
	json_object *o = json_object_new_object();
	json_object_object_add(o, "sealed", json_object_new_int64(id));
	json_object_object_add(o, "hooks_pending", json_object_new_int64((int64_t)st.hooks_pending));
	reply_json(fd, o);
}

static void do_status(struct fsctl *x, int fd)
{
	struct cache_stats st;
	cache_stats(x->c, &st);
	json_object *o = json_object_new_object();
	json_object_object_add(o, "hooks_pending", json_object_new_int64((int64_t)st.hooks_pending));
	json_object_object_add(o, "hooks_running", json_object_new_int64((int64_t)st.hooks_running));
	json_object_object_add(o, "active_records",
			       json_object_new_int64((int64_t)st.active_records));
	json_object_object_add(o, "active_age_s",
			       json_object_new_double((double)st.active_age_ns / 1e9));
	json_object_object_add(o, "segments_unconfirmed",
			       json_object_new_int64((int64_t)st.segments_unconfirmed));
	reply_json(fd, o);
}

static void *conn_main(void *arg)
{
	struct conn *cn = arg;
	struct fsctl *x = cn->x;
	char line[512];
	if (ctlsock_read_line(cn->fd, line, sizeof line))
		dprintf(cn->fd, "ERR request too long or not a line\n");
	else if (!strcmp(line, "PING"))
		dprintf(cn->fd, "OK %s\n", x->mnt);
	else if (!strcmp(line, "SEAL"))
		do_seal(x, cn->fd);
	else if (!strcmp(line, "STATUS"))
		do_status(x, cn->fd);
	else
		dprintf(cn->fd, "ERR unknown request '%.64s' (PING, SEAL, STATUS)\n", line);
	close(cn->fd);
	free(cn);
	pthread_mutex_lock(&x->mu);
	x->busy--;
	pthread_cond_broadcast(&x->cv);
	pthread_mutex_unlock(&x->mu);
	return NULL;
}

static void *accept_main(void *arg)
{
	struct fsctl *x = arg;
	for (;;) {
		struct pollfd p[2] = { { x->lsock, POLLIN, 0 }, { x->stop_pipe[0], POLLIN, 0 } };
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[1].revents)
			break;
		int fd = accept4(x->lsock, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		struct conn *cn = malloc(sizeof *cn);
		pthread_t t;
		pthread_attr_t at;
		pthread_attr_init(&at);
		pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
		if (cn) {
			*cn = (struct conn){ x, fd };
			pthread_mutex_lock(&x->mu);
			x->busy++;
			pthread_mutex_unlock(&x->mu);
			if (pthread_create(&t, &at, conn_main, cn)) {
				pthread_mutex_lock(&x->mu);
				x->busy--;
				pthread_mutex_unlock(&x->mu);
				free(cn);
				close(fd);
			}
		} else {
			close(fd);
		}
		pthread_attr_destroy(&at);
	}
	return NULL;
}

int fsctl_start(const char *path, const char *mnt, struct cache *c, struct fsctl **out,
		char *err, size_t errlen)
{
	struct fsctl *x = calloc(1, sizeof *x);
	if (!x || !(x->path = strdup(path)) || !(x->mnt = strdup(mnt))) {
		if (x)
			free(x->path);
		free(x);
		snprintf(err, errlen, "%s", strerror(ENOMEM));
		return -ENOMEM;
	}
	x->c = c;
	pthread_mutex_init(&x->mu, NULL);
	pthread_cond_init(&x->cv, NULL);
	x->lsock = ctlsock_listen(path, err, errlen);
	int r = x->lsock < 0 ? x->lsock : 0;
	if (!r && pipe2(x->stop_pipe, O_CLOEXEC) < 0) {
		r = -errno;
		snprintf(err, errlen, "control socket %s: %s", path, strerror(-r));
		close(x->lsock);
	}
	if (!r && (r = -pthread_create(&x->th, NULL, accept_main, x))) {
		snprintf(err, errlen, "control socket %s: %s", path, strerror(-r));
		close(x->lsock);
		close(x->stop_pipe[0]);
		close(x->stop_pipe[1]);
	}
	if (r) {
		free(x->path);
		free(x->mnt);
		free(x);
		return r;
	}
	*out = x;
	return 0;
}

void fsctl_stop(struct fsctl *x)
{
	if (!x)
		return;
	if (write(x->stop_pipe[1], "x", 1) < 0)
		qlog_warn("fs: stopping the control socket: %s", strerror(errno));
	pthread_join(x->th, NULL);
	close(x->lsock);
	unlink(x->path);
	pthread_mutex_lock(&x->mu);
	while (x->busy)
		pthread_cond_wait(&x->cv, &x->mu);
	pthread_mutex_unlock(&x->mu);
	close(x->stop_pipe[0]);
	close(x->stop_pipe[1]);
	pthread_mutex_destroy(&x->mu);
	pthread_cond_destroy(&x->cv);
	free(x->path);
	free(x->mnt);
	free(x);
}
