/* fs/wlease.c - see wlease.h */
#include "wlease.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../common/config.h"
#include "../common/qlog.h"
#include "../stor/catalog.h"
#include "../stor/head.h"
#include "../stor/lease.h"

struct wlease {
	struct volconn vc;
	struct lease l;		/* as last written by us */
	uint8_t me[LEASE_ID_SIZE];
	unsigned timeout;
};

static void fill(struct wlease *w, uint32_t flags)
{
	memcpy(w->l.holder, w->me, LEASE_ID_SIZE);
	w->l.heartbeat = (int64_t)time(NULL);
	w->l.timeout = w->timeout;
	w->l.pid = (uint32_t)getpid();
	w->l.flags = flags;
	if (gethostname(w->l.host, sizeof w->l.host) < 0)
		snprintf(w->l.host, sizeof w->l.host, "?");
	w->l.host[sizeof w->l.host - 1] = 0;
}

int wlease_take(const struct qsfs_config *cfg, bool takeover, struct wlease **out, char *err,
		size_t errlen)
{
	struct wlease *w = calloc(1, sizeof *w);
	if (!w)
		return -ENOMEM;
	w->timeout = cfg->fs.lease_timeout;
	mkdir(cfg->cache.dir, 0700);
	int r = lease_holder_id(cfg->cache.dir, true, w->me);
	if (r) {
		snprintf(err, errlen, "%s/HOLDER (this node's writer id): %s", cfg->cache.dir,
			 r == -EBADMSG ? "malformed (32 hex digits expected)" : strerror(-r));
		free(w);
		return r;
	}
	r = volconn_open(cfg, &w->vc, err, errlen);
	if (r) {
		free(w);
		return r;
	}
	struct lease cur;
	char why[600], who[300];
	r = lease_read(&w->vc.os, &cur, why, sizeof why);
	int64_t now = (int64_t)time(NULL), age;
	if (r == -EIO) {
		snprintf(err, errlen, "cannot take the volume's writer lease: %s", why);
		goto fail;
	}
	if (r && r != -ENOENT && !takeover) {
		snprintf(err, errlen, "cannot read the volume's writer lease (%s); if no other host "
			 "writes this volume, start with --takeover", why);
		goto fail;
	}
	/* a lease that cannot be read is taken as none (only with takeover) */
	enum lease_state s = lease_classify(r ? NULL : &cur, w->me, now);
	enum lease_action act;
	enum lease_state next = lease_next(s, takeover ? LEASE_EV_TAKEOVER : LEASE_EV_TAKE, &act);
	age = now - cur.heartbeat;
	lease_describe(&cur, now, who, sizeof who);
	if (act == LEASE_ACT_REFUSE) {	/* another holder's live lease */
		if (s == LEASE_ST_OTHER_UNHANDED)
			snprintf(err, errlen, "volume %s is held by another writer: %s. Its "
				 "qsfs-fs stopped before it could hand its last segments to "
				 "qsfs-stor, so they exist only on that host and the lease does "
				 "not expire: start qsfs-stor and qsfs-wait-hooks (or qsfs-fs) "
				 "there to upload them; if that host is gone for good, start with "
				 "--takeover (that data is lost)", cfg->volume, who);
		else
			snprintf(err, errlen, "volume %s is held by another writer: %s. It "
				 "expires %lld s after that host's last heartbeat; if that host is "
				 "gone for good, start with --takeover (any data it has not "
				 "uploaded is lost)", cfg->volume, who,
				 (long long)(cur.timeout - age));
		r = -EBUSY;
		goto fail;
	}
	if (s == LEASE_ST_OTHER || s == LEASE_ST_OTHER_UNHANDED)
		qlog_warn("fs: --takeover: taking volume %s from %s", cfg->volume, who);
	else if (s == LEASE_ST_OTHER_EXPIRED)
		qlog_warn("fs: the writer lease of %s expired (%s): taking it", cfg->volume, who);
	w->l.seq = r ? 0 : cur.seq;
	fill(w, lease_state_flags(next));
	r = lease_write(&w->vc.os, &w->l, why, sizeof why);
	if (r) {
		snprintf(err, errlen, "cannot take the volume's writer lease: %s", why);
		goto fail;
	}
	/* two hosts starting at the same moment: the newest write wins, and
	 * the other one must see it */
	nanosleep(&(struct timespec){ 0, 200 * 1000 * 1000 }, NULL);
	r = lease_read(&w->vc.os, &cur, why, sizeof why);
	if (!r && !lease_held_by(&cur, w->me)) {
		lease_describe(&cur, (int64_t)time(NULL), who, sizeof who);
		snprintf(err, errlen, "volume %s was taken by another writer at the same moment: %s",
			 cfg->volume, who);
		r = -EBUSY;
	} else if (r) {
		snprintf(err, errlen, "cannot confirm the volume's writer lease: %s", why);
	}
	if (r)
		goto fail;
	w->l.seq = cur.seq;
	*out = w;
	return 0;
fail:
	volconn_close(&w->vc);
	free(w);
	return r;
}

int wlease_remote_hi(struct wlease *w, uint64_t *hi, char *err, size_t errlen)
{
	struct catalog cat;
	*hi = 0;
	int r = catalog_load(&w->vc.os, &cat, err, errlen);
	if (r == -ENOENT)
		return 0;
	if (r)
		return r;
	*hi = cat.nextra ? cat.extra[cat.nextra - 1] : cat.seg_hi;
	catalog_free(&cat);
	return 0;
}

unsigned wlease_period(const struct wlease *w)
{
	return lease_period(w->timeout);
}

/* Rewrite our lease as event ev (RENEW, STOP, STOP_UNHANDED, GIVE_UP)
 * makes it (lease.h's table): -ESTALE (err names the new holder) when the
 * table fences us (another holder has it now), else lease_read's and
 * lease_write's errors. Blocks on the backends; no lock. */
static int set_flags(struct wlease *w, enum lease_event ev, char *err, size_t errlen)
{
	struct lease cur;
	char why[600];
	int r = lease_read(&w->vc.os, &cur, why, sizeof why);
	int64_t now = (int64_t)time(NULL);
	enum lease_action act = LEASE_ACT_NONE;
	enum lease_state next = r ? LEASE_ST_NONE
			      : lease_next(lease_classify(&cur, w->me, now), ev, &act);
	if (!r && act != LEASE_ACT_WRITE) {	/* fenced */
		char who[300];
		lease_describe(&cur, now, who, sizeof who);
		snprintf(err, errlen, "another writer has taken the volume: %s", who);
		return -ESTALE;
	}
	if (!r) {
		w->l.seq = cur.seq;
		fill(w, lease_state_flags(next));
		r = lease_write(&w->vc.os, &w->l, why, sizeof why);
	}
	if (r)
		snprintf(err, errlen, "the writer lease cannot be written: %s", why);
	return r;
}

int wlease_renew(struct wlease *w, char *err, size_t errlen)
{
	return set_flags(w, LEASE_EV_RENEW, err, errlen);
}

void wlease_unmount(struct wlease *w, bool unhanded)
{
	char err[1000];
	int r = set_flags(w, unhanded ? LEASE_EV_STOP_UNHANDED : LEASE_EV_STOP, err, sizeof err);
	if (r && r != -ESTALE)	/* not ours any more: nothing to clear */
		qlog_warn("fs: clean stop: the writer lease keeps its mounted flag until it "
			  "expires: %s", err);
}

void wlease_release(struct wlease *w)
{
	char err[1000];
	int r = set_flags(w, LEASE_EV_GIVE_UP, err, sizeof err);
	if (r && r != -ESTALE)
		qlog_warn("fs: the writer lease cannot be released; it expires on its own: %s",
			  err);
}

void wlease_free(struct wlease *w)
{
	if (!w)
		return;
	volconn_close(&w->vc);
	free(w);
}
