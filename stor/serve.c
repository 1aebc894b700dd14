/* stor/serve.c - see serve.h */
#include "serve.h"

#include <sys/socket.h>

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "daemon.h"
#include "degraded.h"
#include "leasekeeper.h"
#include "queue.h"
#include "scrub.h"
#include "stor_status.h"
#include "volcat.h"
#include "../common/ctlsock.h"
#include "../common/fsutil.h"
#include "../common/qlog.h"
#include "../common/storproto.h"

/* A free retriever (waits for one), marked busy. Takes d->mu (not held). */
static struct ctx *take_retriever(struct stord *d)
{
	pthread_mutex_lock(&d->mu);
	struct ctx *c = NULL;
	while (!c) {
		for (int i = 0; i < RETRIEVE_CTX && !c; i++)
			if (!d->retrievers[i].busy)
				c = &d->retrievers[i];
		if (!c)
			pthread_cond_wait(&d->changed, &d->mu);
	}
	c->busy = true;
	pthread_mutex_unlock(&d->mu);
	return c;
}

/* Give back a retriever take_retriever lent. Takes d->mu (not held). */
static void give_retriever(struct ctx *c)
{
	struct stord *d = c->d;
	pthread_mutex_lock(&d->mu);
	c->busy = false;
	pthread_cond_broadcast(&d->changed);
	pthread_mutex_unlock(&d->mu);
}

/* RETRIEVE NAME PATH: fetch object name (from the journal while it is not
 * uploaded yet, else from the backends, rebuilt) into path atomically;
 * reply OK or ERR. Blocks on the backends; takes d->mu (not held). */
static void do_retrieve(struct stord *d, int cfd, const char *name, const char *path)
{
	uint64_t id;
	if (object_name_parse(name, &id) || path[0] != '/') {
		dprintf(cfd, "ERR usage: RETRIEVE s<id>|c<id> /absolute/path\n");
		return;
	}
	pthread_mutex_lock(&d->cat_mu);
	bool lost = name[0] == 's' && catalog_lost(&d->cat, id);
	pthread_mutex_unlock(&d->cat_mu);
	if (lost) {
		dprintf(cfd, "ERR %s was lost before it was uploaded (the volume catalog records "
			"the loss): what it held is gone\n", name);
		return;
	}
	/* a temp name of its own: a RETRIEVE its client gave up on may still
	 * run when the same object is asked for again; ".tmp" at the end, so a
	 * cache's open removes one a crash left */
	char tmp[4200];
	snprintf(tmp, sizeof tmp, "%s.stor-XXXXXX.tmp", path);
	int fd = mkostemps(tmp, 4, O_CLOEXEC);
	if (fd >= 0)
		fchmod(fd, 0644);
	if (fd < 0) {
		dprintf(cfd, "ERR cannot create %s: %s\n", tmp, strerror(errno));
		return;
	}
	char why[2048] = "";
	int r;
	uint64_t size;
	int sfd = spool_open_job(d->spool, name, &size);	/* not uploaded yet: local copy */
	if (sfd >= 0) {
		uint8_t *buf = malloc(1 << 20);
		r = buf ? 0 : -ENOMEM;
		for (uint64_t off = 0; !r && off < size;) {
			ssize_t n = fs_pread_full(sfd, buf, 1 << 20, (off_t)off);
			r = n < 0 ? (int)n : n == 0 ? -EIO : fs_pwrite_all(fd, buf, (size_t)n, (off_t)off);
			off += n > 0 ? (uint64_t)n : 0;
		}
		free(buf);
		close(sfd);
		if (r)
			snprintf(why, sizeof why, "copying %s from the journal: %s", name, strerror(-r));
	} else {
		char damage[1024];
		struct ctx *c = take_retriever(d);
		r = obj_get(&c->os, c->codec, name, id, fd, why, sizeof why, damage, sizeof damage);
		give_retriever(c);
		if (!r)
			note_damage(d, name, damage);
	}
	if (!r && fsync(fd) < 0) {
		r = -errno;
		snprintf(why, sizeof why, "writing %s: %s", path, strerror(-r));
	}
	close(fd);
	if (!r && rename(tmp, path) < 0) {
		r = -errno;
		snprintf(why, sizeof why, "renaming into %s: %s", path, strerror(-r));
	}
	if (r) {
		unlink(tmp);
		qlog_err("stor: retrieve %s into %s: %s", name, path, why);
		dprintf(cfd, "ERR retrieving %s into %s: %s\n", name, path, why);
		return;
	}
	dprintf(cfd, "OK\n");
}

/* CATALOG: the volume catalog as one line of JSON. Takes d->cat_mu (not
 * held). */
static void do_catalog(struct stord *d, int cfd)
{
	json_object *o = json_object_new_object(), *ex = json_object_new_array(),
		    *ck = json_object_new_array(), *rm = json_object_new_array(),
		    *lost = json_object_new_array();
	pthread_mutex_lock(&d->cat_mu);
	json_object_object_add(o, "volume", json_object_new_string(d->vol.idhex));
	json_object_object_add(o, "seq", json_object_new_uint64(d->cat.seq));
	json_object_object_add(o, "segments_upto", json_object_new_uint64(d->cat.seg_hi));
	for (size_t i = 0; i < d->cat.nextra; i++)
		json_object_array_add(ex, json_object_new_uint64(d->cat.extra[i]));
	for (size_t i = 0; i < d->cat.nck; i++) {
		json_object *e = json_object_new_object();
		json_object_object_add(e, "id", json_object_new_uint64(d->cat.ck[i].id));
		json_object_object_add(e, "kind", json_object_new_string(
			d->cat.ck[i].kind == CAT_CKPT_FULL ? "full" : "delta"));
		json_object_object_add(e, "upto", json_object_new_uint64(d->cat.ck[i].upto));
		json_object_array_add(ck, e);
	}
	for (size_t i = 0; i < d->cat.nrm; i++) {
		json_object *r = json_object_new_array();
		json_object_array_add(r, json_object_new_uint64(d->cat.rm[i].first));
		json_object_array_add(r, json_object_new_uint64(d->cat.rm[i].last));
		json_object_array_add(rm, r);
	}
	for (size_t i = 0; i < d->cat.nlost; i++)
		json_object_array_add(lost, json_object_new_uint64(d->cat.lost[i]));
	json_object_object_add(o, "gc_floor", json_object_new_uint64(catalog_gc_floor(&d->cat)));
	pthread_mutex_unlock(&d->cat_mu);
	json_object_object_add(o, "segments_extra", ex);
	json_object_object_add(o, "checkpoints", ck);
	json_object_object_add(o, "segments_removed", rm);
	json_object_object_add(o, "segments_lost", lost);
	dprintf(cfd, "%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
}

/* May object name be stored? 0 yes; 1 no, and the reply says why: a
 * segment deleted (removed from the catalog) or with a deletion queued
 * (its upload would leave keys no catalog lists). */
static int store_allowed(struct stord *d, int cfd, const char *name)
{
	char job[OBJ_NAME_MAX + 8], lostjob[OBJ_NAME_MAX + 8];
	snprintf(job, sizeof job, "%s.del", name);
	snprintf(lostjob, sizeof lostjob, "%s.lost", name);
	pthread_mutex_lock(&d->mu);
	bool deleting = find_job(d, job) != NULL;
	bool lost = find_job(d, lostjob) != NULL;
	pthread_mutex_unlock(&d->mu);
	uint64_t id;
	object_name_parse(name, &id);
	pthread_mutex_lock(&d->cat_mu);
	bool removed = name[0] == 's' && catalog_removed(&d->cat, id);
	lost |= name[0] == 's' && catalog_lost(&d->cat, id);
	pthread_mutex_unlock(&d->cat_mu);
	if (deleting || removed || lost) {
		dprintf(cfd, "ERR %s %s: not stored\n", name, deleting ? "is being deleted" :
			removed ? "was deleted (the catalog lists it as removed)" :
			"was reported lost before upload (the catalog records the loss)");
		return 1;
	}
	return 0;
}

/* DELETE NAME: journal NAME.del durably, queue it, reply. Blocks on the
 * spool's fsyncs; takes d->cat_mu, then d->mu (neither held). */
static void do_delete(struct stord *d, int cfd, const char *name)
{
	uint64_t id;
	if (object_name_parse(name, &id)) {
		dprintf(cfd, "ERR bad object name '%s' (s<id> or c<id>)\n", name);
		return;
	}
	if (name[0] == 'c') {
		pthread_mutex_lock(&d->cat_mu);
		bool listed = catalog_lists(&d->cat, name);
		pthread_mutex_unlock(&d->cat_mu);
		if (listed) {
			dprintf(cfd, "ERR %s is in the catalog's checkpoint window (a restore may "
				"need it); it is deleted by itself once newer checkpoints replace "
				"it\n", name);
			return;
		}
	}
	char job[OBJ_NAME_MAX + 8];
	snprintf(job, sizeof job, "%s.del", name);
	/* mu across the journal write: a STORE of name cannot slip in between
	 * the check and the queue */
	pthread_mutex_lock(&d->mu);
	int r = 0;
	if (find_job(d, name)) {
		pthread_mutex_unlock(&d->mu);
		dprintf(cfd, "ERR %s has an upload queued; retry later\n", name);
		return;
	}
	r = spool_add_delete(d->spool, name);
	if (!r)
		r = queue_job(d, job, 0, (int64_t)time(NULL));
	pthread_mutex_unlock(&d->mu);
	if (r) {
		qlog_err("stor: cannot journal the deletion of %s in %s/spool: %s", name,
			 d->cfg.stor.state_dir, strerror(-r));
		dprintf(cfd, "ERR cannot journal the deletion of %s: %s\n", name, strerror(-r));
		return;
	}
	dprintf(cfd, "OK\n");
}

/* LOST NAME: the writer lost segment name before handing it off. Stored
 * after all (the catalog has it): OK STORED. An upload of it queued: ERR
 * (it will be stored; asked again, OK STORED). Else the loss is journaled
 * (NAME.lost) and queued: a worker records it in the catalog, which then
 * passes the segment. Blocks on the spool's fsyncs; takes d->cat_mu, then
 * d->mu (neither held). */
static void do_lost(struct stord *d, int cfd, const char *name)
{
	uint64_t id;
	if (object_name_parse(name, &id) || name[0] != 's') {
		dprintf(cfd, "ERR usage: LOST s<id>\n");
		return;
	}
	pthread_mutex_lock(&d->cat_mu);
	bool stored = catalog_has(&d->cat, name) || catalog_removed(&d->cat, id),
	     known = catalog_lost(&d->cat, id);
	pthread_mutex_unlock(&d->cat_mu);
	if (stored || known) {
		dprintf(cfd, "OK %s\n", stored ? "STORED" : "LOST");
		return;
	}
	char job[OBJ_NAME_MAX + 8];
	snprintf(job, sizeof job, "%s.lost", name);
	/* mu across the journal write: a STORE of name cannot slip in between
	 * the check and the queue */
	pthread_mutex_lock(&d->mu);
	uint64_t jsize;
	int jfd = spool_open_job(d->spool, name, &jsize);	/* a STORE being journaled */
	if (jfd >= 0)
		close(jfd);
	if (find_job(d, name) || jfd >= 0) {
		pthread_mutex_unlock(&d->mu);
		dprintf(cfd, "ERR %s has an upload queued: it is not lost; ask again once it is "
			"stored\n", name);
		return;
	}
	int r = find_job(d, job) ? 0 : spool_add_lost(d->spool, name);
	if (!r)
		r = queue_job(d, job, 0, (int64_t)time(NULL));
	pthread_mutex_unlock(&d->mu);
	if (r) {
		qlog_err("stor: cannot journal the loss of %s in %s/spool: %s", name,
			 d->cfg.stor.state_dir, strerror(-r));
		dprintf(cfd, "ERR cannot journal the loss of %s: %s\n", name, strerror(-r));
		return;
	}
	qlog_err("stor: %s LOST: its writer lost it before handing it off; the volume catalog "
		 "records the loss, and reads of what it held fail", name);
	dprintf(cfd, "OK LOST\n");
}

/* GCCHECK [FIX]: on this connection's thread, with handles of its own.
 * Blocks on every backend's listing (leak_check_run). */
static void do_gccheck(struct stord *d, int cfd, bool fix)
{
	struct ctx c;
	char err[300];
	if (ctx_open(d, &c, err, sizeof err)) {
		ctx_close(&c);
		dprintf(cfd, "ERR %s\n", err);
		return;
	}
	json_object *rep = NULL;
	int r = leak_check_run(&c, fix, &rep);
	ctx_close(&c);
	if (r == -EPERM)
		dprintf(cfd, "ERR another host holds the writer lease: this node's catalog is "
			"not the volume's, so nothing is checked\n");
	else if (r)
		dprintf(cfd, "ERR leak check: %s\n", strerror(-r));
	else
		dprintf(cfd, "%s\n", json_object_to_json_string_ext(rep, JSON_C_TO_STRING_PLAIN |
			JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(rep);
}

/* CONFIRMS LO HI: is segment id safely remote? (is_confirmed's answer) */
static bool confirmed_id(void *arg, uint64_t id)
{
	struct stord *d = arg;
	char name[32];
	snprintf(name, sizeof name, "s%llu", (unsigned long long)id);
	return is_confirmed(d, name);
}

/* One request (storproto.h), its reply written to cfd. Blocks as the
 * request does; takes d->mu and d->cat_mu (neither held). */
static void serve(struct stord *d, int cfd, const struct stor_req *rq)
{
	switch (rq->op) {
	case STOR_PING:
		dprintf(cfd, "OK\n");
		break;
	case STOR_STATUS:
		do_status(d, cfd);
		break;
	case STOR_CONFIRMED:
		dprintf(cfd, "%s\n", is_confirmed(d, rq->name) ? "YES" : "NO");
		break;
	case STOR_CONFIRMS: {
		char *t = storproto_confirms_text(rq->lo, rq->hi, confirmed_id, d);
		if (t)
			dprintf(cfd, "OK%s%s\n", t[0] ? " " : "", t);
		else
			dprintf(cfd, "ERR out of memory\n");
		free(t);
		break;
	}
	case STOR_STORE: {
		if (store_allowed(d, cfd, rq->name))
			break;	/* refused, and said why */
		int r = spool_add(d->spool, rq->name, rq->path);
		/* the size from the journal's copy (the cache's file may go
		 * meanwhile: the job must be queued all the same) */
		uint64_t size = 0;
		int jfd = r ? -1 : spool_open_job(d->spool, rq->name, &size);
		if (!r && jfd < 0)
			r = jfd;
		if (jfd >= 0)
			close(jfd);
		char lostjob[OBJ_NAME_MAX + 8];
		snprintf(lostjob, sizeof lostjob, "%s.lost", rq->name);
		if (!r) {
			pthread_mutex_lock(&d->mu);
			/* a LOST of it came in while it was journaled (a STORE its
			 * client gave up on): the loss stands, this copy goes */
			if (find_job(d, lostjob))
				r = -ESTALE;
			else
				r = queue_job(d, rq->name, size, (int64_t)time(NULL));
			pthread_mutex_unlock(&d->mu);
			if (r == -ESTALE)
				spool_done(d->spool, rq->name);
		}
		if (r == -ESTALE)
			dprintf(cfd, "ERR %s was reported lost meanwhile: not stored\n", rq->name);
		else if (r)
			dprintf(cfd, "ERR cannot queue %s from %s: %s\n", rq->name, rq->path,
				strerror(-r));
		else
			dprintf(cfd, "OK\n");
		break;
	}
	case STOR_DELETE:
		do_delete(d, cfd, rq->name);
		break;
	case STOR_GCFLOOR: {
		pthread_mutex_lock(&d->cat_mu);
		uint64_t floor = catalog_gc_floor(&d->cat);
		pthread_mutex_unlock(&d->cat_mu);
		dprintf(cfd, "OK %llu\n", (unsigned long long)floor);
		break;
	}
	case STOR_SCRUB:
	case STOR_REPAIR: {
		bool already = scrub_request(d);
		dprintf(cfd, "OK%s\n", already ? " already running" : "");
		break;
	}
	case STOR_LEASE:	/* qsfs-fs stopped: look at the lease now */
		lease_poke(d);
		dprintf(cfd, "OK\n");
		break;
	case STOR_CATALOG:
		do_catalog(d, cfd);
		break;
	case STOR_GCCHECK:
		do_gccheck(d, cfd, rq->fix);
		break;
	case STOR_RETRIEVE:
		do_retrieve(d, cfd, rq->name, rq->path);
		break;
	case STOR_LOST:
		do_lost(d, cfd, rq->name);
		break;
	case STOR_NOPS:
		break;
	}
}

/* What a connection's thread is given: its daemon and its socket. */
struct conn {
	struct stord *d;
	int cfd;
};

/* A connection: requests one after the other until the peer closes it (a
 * client such as qsfs-fs keeps one open). The thread is detached: a stop
 * never waits for a connection. arg: a malloc'd struct conn (freed here). */
static void *conn_main(void *arg)
{
	struct conn *cn = arg;
	struct stord *d = cn->d;
	int cfd = cn->cfd;
	free(cn);
	char line[STORPROTO_LINE_MAX], err[256];
	for (;;) {
		int r = ctlsock_read_line(cfd, line, sizeof line);
		if (r == -ENODATA)
			break;	/* closed between requests */
		if (r) {
			dprintf(cfd, "ERR request too long or not a line\n");
			break;
		}
		struct stor_req rq;
		if (storproto_parse(line, &rq, err, sizeof err))
			dprintf(cfd, "ERR %s\n", err);
		else
			serve(d, cfd, &rq);
	}
	pthread_mutex_lock(&d->mu);
	for (size_t i = 0; i < d->nconns; i++)
		if (d->conn_fds[i] == cfd) {
			d->conn_fds[i] = d->conn_fds[--d->nconns];
			break;
		}
	pthread_cond_broadcast(&d->changed);
	close(cfd);	/* after it left the list: the stop's shutdown never hits a reused fd */
	pthread_mutex_unlock(&d->mu);
	return NULL;
}

int serve_stop(struct stord *d, unsigned wait_ms)
{
	pthread_mutex_lock(&d->mu);
	for (size_t i = 0; i < d->nconns; i++)
		shutdown(d->conn_fds[i], SHUT_RDWR);
	struct timespec ts = fs_abstime((uint64_t)wait_ms * 1000000ull);
	while (d->nconns && pthread_cond_timedwait(&d->changed, &d->mu, &ts) != ETIMEDOUT)
		;
	int left = (int)d->nconns;
	pthread_mutex_unlock(&d->mu);
	return left;
}

void serve_conn(struct stord *d, int cfd)
{
	struct conn *cn = malloc(sizeof *cn);
	pthread_t t;
	pthread_attr_t at;
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	if (cn)
		*cn = (struct conn){ d, cfd };
	pthread_mutex_lock(&d->mu);
	bool listed = false;
	if (cn && d->nconns == d->conns_cap) {
		size_t nc = d->conns_cap ? d->conns_cap * 2 : 16;
		int *v = realloc(d->conn_fds, nc * sizeof *v);
		if (v) {
			d->conn_fds = v;
			d->conns_cap = nc;
		}
	}
	if (cn && d->nconns < d->conns_cap) {
		d->conn_fds[d->nconns++] = cfd;
		listed = true;
	}
	pthread_mutex_unlock(&d->mu);
	if (!listed || pthread_create(&t, &at, conn_main, cn)) {
		if (listed) {
			pthread_mutex_lock(&d->mu);
			d->nconns--;	/* the last one: this fd */
			pthread_mutex_unlock(&d->mu);
		}
		free(cn);
		close(cfd);
	}
	pthread_attr_destroy(&at);
}
