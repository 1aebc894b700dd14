/* stor/stord.c - qsfs-stor, the storage daemon.
 *
 *   qsfs-stor -c /etc/qsfs/qsfs.yaml
 *
 * Runs in the foreground, logs to stderr. Opens the volume (head record),
 * resumes every job left in the spool (the journal), and serves the control
 * socket (mode 0600): the requests of common/storproto.h, any number per
 * connection (serve.h says what the daemon does with each).
 *
 * This file is main: the configuration, the state (one struct stord,
 * daemon.h, passed to every module), the threads (workers: queue.h; the
 * writer lease: leasekeeper.h; scrub: scrub.h; backend health: probe.h;
 * one per connection: serve.h), the signals and the stop.
 * SIGTERM/SIGINT: stop when every queued job (uploads and deletions) is done
 * (exit 0); a second signal, or stor.drain_timeout seconds, exits at once
 * (1), leaving the journal for the next start. Deletions also keep the
 * writer lease like uploads (lease_tick releases it on an empty queue).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "backend.h"
#include "daemon.h"
#include "degraded.h"
#include "leasekeeper.h"
#include "probe.h"
#include "queue.h"
#include "scrub.h"
#include "serve.h"
#include "../common/config.h"
#include "../common/ctlsock.h"
#include "../common/fsutil.h"
#include "../common/qlog.h"

/* Temp files a crash left: state_dir's atomic writes (NAME.tmp; the
 * spool cleans its own) and, on dir:// backends, puts killed half way
 * (KEY.tmp-XXXXXX older than 10 minutes: younger ones may be a put in
 * flight by qsfs-fs). Logged once with the count; nothing else depends on
 * them. */
static void sweep_temp_files(struct stord *d)
{
	DIR *dir = opendir(d->cfg.stor.state_dir);
	unsigned n = 0;
	struct dirent *e;
	while (dir && (e = readdir(dir))) {
		size_t l = strlen(e->d_name);
		struct stat st;
		if (l > 4 && !strcmp(e->d_name + l - 4, ".tmp") &&
		    fstatat(dirfd(dir), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISREG(st.st_mode) && unlinkat(dirfd(dir), e->d_name, 0) == 0)
			n++;
	}
	if (dir)
		closedir(dir);
	if (n)
		qlog_info("stor: removed %u temp files a crash left in %s", n,
			  d->cfg.stor.state_dir);
	for (size_t i = 0; i < d->cfg.stor.nbackends; i++) {
		const struct backend_url *u = &d->cfg.stor.backends[i];
		int64_t r = backend_dir_sweep_tmp(u, 600);
		if (r > 0)
			qlog_info("stor: removed %lld temp files a crash left on %s", (long long)r,
				  u->display);
		else if (r < 0)
			qlog_warn("stor: cannot look for temp files on %s: %s", u->display,
				  strerror((int)-r));
	}
}

int stord_init_conds(struct stord *d)
{
	int r = fs_cond_init(&d->work);
	if (!r)
		r = fs_cond_init(&d->changed);
	if (!r)
		r = fs_cond_init(&d->lease_cv);
	if (!r)
		r = fs_cond_init(&d->scrub.cv);
	return r;
}

int main(int argc, char **argv)
{
	/* static: detached connection threads may still use it while main returns */
	static struct stord daemon = STORD_INIT;
	struct stord *d = &daemon;
	int cr = stord_init_conds(d);
	if (cr) {
		fprintf(stderr, "qsfs-stor: cannot make its condition variables: %s\n", strerror(cr));
		return 1;
	}
	const char *conf = config_default_path();
	static const struct option lo[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int ch;
	while ((ch = getopt_long(argc, argv, "c:h", lo, NULL)) != -1) {
		if (ch == 'c') {
			conf = optarg;
		} else {
			fprintf(ch == 'h' ? stdout : stderr,
				"usage: qsfs-stor [-c CONFIG] [-h|--help]\n"
				"The storage daemon: uploads sealed segments and checkpoints to the\n"
				"backends, fetches them back, keeps the writer lease and repairs.\n"
				"  -c, --config CONFIG  the configuration (default $QSFS_CONFIG, else\n"
				"                       /etc/qsfs/qsfs.yaml)\n"
				"Stop it with SIGTERM: it uploads everything queued, then exits 0.\n");
			return ch == 'h' ? 0 : 2;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "qsfs-stor: unexpected argument '%s' (usage: qsfs-stor [-c CONFIG])\n",
			argv[optind]);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	char err[1024];
	if (config_load(conf, &d->cfg, err, sizeof err)) {
		fprintf(stderr, "qsfs-stor: %s\n", err);
		return 2;
	}
	/* one lock per state dir: two daemons would upload each other's jobs */
	mkdir(d->cfg.stor.state_dir, 0700);
	char lockp[4200];
	snprintf(lockp, sizeof lockp, "%s/LOCK", d->cfg.stor.state_dir);
	if (health_new(d->cfg.stor.nbackends, &d->health)) {
		fprintf(stderr, "qsfs-stor: out of memory\n");
		return 1;
	}
	int lfd = open(lockp, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (lfd < 0 || flock(lfd, LOCK_EX | LOCK_NB) < 0) {
		fprintf(stderr, "qsfs-stor: state_dir %s is in use by another qsfs-stor (%s)\n",
			d->cfg.stor.state_dir, strerror(errno));
		return 1;
	}
	sweep_temp_files(d);
	/* the volume */
	struct ctx probe;
	memset(&probe, 0, sizeof probe);
	for (size_t i = 0; i < d->cfg.stor.nbackends; i++)
		backend_open(&d->cfg.stor.backends[i], 5000, &probe.b[i]);
	int r = head_open(&d->cfg, probe.b, d->cfg.stor.nbackends, &d->vol, err, sizeof err);
	for (size_t i = 0; i < d->cfg.stor.nbackends; i++)
		backend_close(probe.b[i]);
	if (r) {
		fprintf(stderr, "qsfs-stor: %s\n", err);
		return 1;
	}
	r = spool_open(d->cfg.stor.state_dir, &d->spool);
	if (r) {
		fprintf(stderr, "qsfs-stor: cannot open the journal in %s: %s\n",
			d->cfg.stor.state_dir, strerror(-r));
		return 1;
	}
	unsigned resumed = queue_resume(d);
	d->min_shards = d->cfg.stor.min_shards;
	if (d->min_shards && (d->min_shards <= d->vol.k || d->min_shards > d->vol.k + d->vol.m)) {
		fprintf(stderr, "qsfs-stor: stor.min_shards %u does not fit this volume (k=%u, "
			"m=%u): give 0 or %u..%u\n", d->min_shards, d->vol.k, d->vol.m, d->vol.k + 1,
			d->vol.k + d->vol.m);
		return 2;
	}
	load_degraded(d);
	lost_load(d);
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	d->nworkers = d->cfg.stor.workers ? d->cfg.stor.workers : (unsigned)(cores > 0 ? cores : 1);
	if (d->nworkers > MAX_WORKERS)
		d->nworkers = MAX_WORKERS;
	d->workers = calloc(d->nworkers, sizeof *d->workers);
	d->retrievers = calloc(RETRIEVE_CTX, sizeof *d->retrievers);
	for (unsigned i = 0; i < d->nworkers + RETRIEVE_CTX; i++) {
		struct ctx *c = i < d->nworkers ? &d->workers[i] : &d->retrievers[i - d->nworkers];
		if (ctx_open(d, c, err, sizeof err)) {
			fprintf(stderr, "qsfs-stor: %s\n", err);
			return 1;
		}
	}
	r = catalog_load(&d->retrievers[0].os, &d->cat, err, sizeof err);
	if (r && r != -ENOENT) {
		fprintf(stderr, "qsfs-stor: %s\n", err);
		return 1;
	}
	atomic_store(&d->cat_hi, d->cat.seg_hi);
	int lsock = ctlsock_listen(d->cfg.stor.socket, err, sizeof err);
	if (lsock < 0) {
		fprintf(stderr, "qsfs-stor: %s\n", err);
		return 1;
	}
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);	/* inherited by every thread */
	int sfd = signalfd(-1, &sigs, SFD_CLOEXEC);
	pthread_t *th = calloc(d->nworkers, sizeof *th);
	for (unsigned i = 0; i < d->nworkers; i++)
		pthread_create(&th[i], NULL, worker_main, &d->workers[i]);
	struct ctx leasectx;
	if (ctx_open(d, &leasectx, err, sizeof err)) {
		fprintf(stderr, "qsfs-stor: %s\n", err);
		return 1;
	}
	lease_tick(&leasectx, &(int64_t){ 0 });	/* fenced or not, before the first request */
	pthread_t lease_th;
	bool leasing = pthread_create(&lease_th, NULL, lease_main, &leasectx) == 0;
	struct ctx scrubctx;
	if (ctx_open(d, &scrubctx, err, sizeof err)) {
		fprintf(stderr, "qsfs-stor: %s\n", err);
		return 1;
	}
	d->scrub.finished = (int64_t)time(NULL);	/* the first periodic pass: one interval on */
	d->scrub.scrubbed = d->scrub.finished;
	check_backend_change(d);
	if (d->ndegraded) {
		pthread_mutex_lock(&d->mu);
		request_check(d, "objects are marked degraded");
		pthread_mutex_unlock(&d->mu);
	}
	pthread_t scrub_th;
	bool scrubbing = pthread_create(&scrub_th, NULL, scrub_main, &scrubctx) == 0;
	struct probe pr = { .d = d };
	for (size_t i = 0; i < d->cfg.stor.nbackends; i++)
		if (backend_open(&d->cfg.stor.backends[i], PROBE_TIMEOUT_MS, &pr.b[i])) {
			fprintf(stderr, "qsfs-stor: out of memory\n");
			return 1;
		}
	pthread_t probe_th;
	bool probing = pthread_create(&probe_th, NULL, probe_main, &pr) == 0;
	qlog_info("stor: volume %s (%s), k=%u m=%u, %zu backends, %u workers, %u jobs resumed "
		  "from the journal; listening on %s", d->cfg.volume, d->vol.idhex, d->vol.k, d->vol.m,
		  d->cfg.stor.nbackends, d->nworkers, resumed, d->cfg.stor.socket);
	int signals = 0, code = 0;
	uint64_t drain_deadline = 0;
	for (;;) {
		struct pollfd p[2] = { { lsock, POLLIN, 0 }, { sfd, POLLIN, 0 } };
		int n = poll(p, 2, d->draining ? 200 : -1);
		if (n < 0 && errno != EINTR)
			break;
		if (p[1].revents & POLLIN) {
			struct signalfd_siginfo si;
			if (read(sfd, &si, sizeof si) == sizeof si) {
				signals++;
				pthread_mutex_lock(&d->mu);
				d->draining = true;
				unsigned left = d->njobs;
				pthread_mutex_unlock(&d->mu);
				if (signals == 1) {
					qlog_info("stor: %s: finishing %u pending jobs (uploads and "
						  "deletions), then exiting (signal again to exit now)",
						  strsignal((int)si.ssi_signo), left);
					if (d->cfg.stor.drain_timeout)
						drain_deadline = fs_now_ns() +
							(uint64_t)d->cfg.stor.drain_timeout * 1000000000ull;
				} else {
					qlog_warn("stor: second signal: exiting with %u jobs kept in the "
						  "journal for the next start", left);
					code = 1;
					break;
				}
			}
		}
		if (p[0].revents & POLLIN) {
			int cfd = accept4(lsock, NULL, NULL, SOCK_CLOEXEC);
			if (cfd >= 0)
				serve_conn(d, cfd);
		}
		if (d->draining) {
			pthread_mutex_lock(&d->mu);
			bool done = d->njobs == 0;
			pthread_mutex_unlock(&d->mu);
			if (done) {
				qlog_info("stor: queue drained, %llu objects stored; exiting",
					  (unsigned long long)d->stored);
				break;
			}
			pthread_mutex_lock(&d->mu);
			bool fenced = d->fenced;
			unsigned kept = d->njobs;
			pthread_mutex_unlock(&d->mu);
			if (fenced) {
				qlog_warn("stor: cannot drain: %s; exiting with %u jobs kept", d->fence_why,
					  kept);
				code = 1;
				break;
			}
			if (drain_deadline && fs_now_ns() >= drain_deadline) {
				pthread_mutex_lock(&d->mu);
				unsigned left = d->njobs;
				pthread_mutex_unlock(&d->mu);
				qlog_warn("stor: drain_timeout (%u s) reached: exiting with %u jobs kept in "
					  "the journal for the next start", d->cfg.stor.drain_timeout, left);
				code = 1;
				break;
			}
		}
	}
	close(lsock);
	unlink(d->cfg.stor.socket);
	if (code)
		_exit(code);	/* workers may be mid-upload: the journal keeps their jobs */
	/* clients keep connections open (qsfs-fs's kept one): cut them off
	 * and let their threads end before anything they use is freed; one
	 * still busy (a long RETRIEVE) means exiting without the frees */
	if (serve_stop(d, 10000)) {
		qlog_warn("stor: a control request is still being served; exiting without "
			  "waiting for it");
		_exit(0);
	}
	pthread_mutex_lock(&d->mu);
	d->stop = true;
	pthread_cond_broadcast(&d->work);
	pthread_cond_broadcast(&d->lease_cv);
	pthread_cond_broadcast(&d->scrub.cv);
	pthread_mutex_unlock(&d->mu);
	for (unsigned i = 0; i < d->nworkers; i++)
		pthread_join(th[i], NULL);
	if (scrubbing)
		pthread_join(scrub_th, NULL);
	if (probing)
		pthread_join(probe_th, NULL);
	for (size_t i = 0; i < d->cfg.stor.nbackends; i++)
		backend_close(pr.b[i]);
	ctx_close(&scrubctx);
	free(th);
	if (leasing)
		pthread_join(lease_th, NULL);
	lease_tick(&leasectx, &(int64_t){ 0 });	/* drained: release it if qsfs-fs is gone */
	ctx_close(&leasectx);
	for (unsigned i = 0; i < d->nworkers + RETRIEVE_CTX; i++)
		ctx_close(i < d->nworkers ? &d->workers[i] : &d->retrievers[i - d->nworkers]);
	free(d->workers);
	free(d->retrievers);
	while (d->jobs)
		drop_job(d, d->jobs);
	free(d->degraded);
	free(d->conn_fds);
	catalog_free(&d->cat);
	close(sfd);
	close(lfd);
	spool_close(d->spool);
	volume_free(&d->vol);
	health_free(d->health);
	config_free(&d->cfg);
	return 0;
}

