/* stor/lease.c - see lease.h */
#include "lease.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "replica.h"
#include "../common/endian.h"
#include "../common/fsutil.h"

#define LEASE_MAGIC "QSFSLEA1"
#define LEASE_VERSION 1u
#define LEASE_LEN (56u + LEASE_HOST_MAX)
#define LEASE_FILE "HOLDER"

static const char LEASE_WHAT[] = "the writer lease";

static int check(const uint8_t *p, size_t len)
{
	return len == LEASE_LEN && get_le32(p + 8) == LEASE_VERSION ? 0 : -EBADMSG;
}

int lease_read(struct objstore *s, struct lease *l, char *why, size_t whylen)
{
	memset(l, 0, sizeof *l);
	uint8_t *p;
	size_t len;
	int r = replica_load(s, "lease", LEASE_MAGIC, LEASE_WHAT, check, &p, &len, why, whylen);
	if (r)
		return r;
	l->flags = get_le32(p + 12);
	l->seq = get_le64(p + 16);
	memcpy(l->holder, p + 24, LEASE_ID_SIZE);
	l->heartbeat = (int64_t)get_le64(p + 40);
	l->timeout = get_le32(p + 48);
	l->pid = get_le32(p + 52);
	memcpy(l->host, p + 56, LEASE_HOST_MAX);
	l->host[LEASE_HOST_MAX - 1] = 0;
	free(p);
	return 0;
}

int lease_write(struct objstore *s, struct lease *l, char *why, size_t whylen)
{
	uint8_t p[LEASE_LEN] = { 0 };
	memcpy(p, LEASE_MAGIC, 8);
	put_le32(p + 8, LEASE_VERSION);
	put_le32(p + 12, l->flags);
	put_le64(p + 16, l->seq + 1);
	memcpy(p + 24, l->holder, LEASE_ID_SIZE);
	put_le64(p + 40, (uint64_t)l->heartbeat);
	put_le32(p + 48, l->timeout);
	put_le32(p + 52, l->pid);
	memcpy(p + 56, l->host, strnlen(l->host, LEASE_HOST_MAX - 1));
	int r = replica_store(s, "lease", LEASE_WHAT, p, sizeof p, why, whylen);
	if (!r)
		l->seq++;
	return r;
}

bool lease_held_by(const struct lease *l, const uint8_t id[LEASE_ID_SIZE])
{
	return !memcmp(l->holder, id, LEASE_ID_SIZE);
}

unsigned lease_period(unsigned timeout)
{
	return timeout / 3 ? timeout / 3 : 1;
}

bool lease_blocks(const struct lease *l, const uint8_t me[LEASE_ID_SIZE], int64_t now,
		  int64_t *age)
{
	*age = now - l->heartbeat;
	enum lease_state s = lease_classify(l, me, now);
	return s == LEASE_ST_OTHER || s == LEASE_ST_OTHER_UNHANDED;
}

int lease_holder_id(const char *cache_dir, bool create, uint8_t id[LEASE_ID_SIZE])
{
	int dfd = open(cache_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	uint8_t *buf = NULL;
	size_t len = 0;
	int r = fs_read_file(dfd, LEASE_FILE, &buf, &len);
	if (!r) {
		/* 32 hex digits and a newline */
		r = len >= 32 && sodium_hex2bin(id, LEASE_ID_SIZE, (const char *)buf, 32, NULL,
						 NULL, NULL) == 0 ? 0 : -EBADMSG;
		free(buf);
	} else if (r == -ENOENT && create) {
		char hex[2 * LEASE_ID_SIZE + 2];
		randombytes_buf(id, LEASE_ID_SIZE);
		sodium_bin2hex(hex, sizeof hex - 1, id, LEASE_ID_SIZE);
		strcat(hex, "\n");
		r = fs_write_atomic(dfd, LEASE_FILE, hex, strlen(hex), 0600);
	}
	close(dfd);
	return r;
}

void lease_describe(const struct lease *l, int64_t now, char *buf, size_t len)
{
	char hex[2 * LEASE_ID_SIZE + 1];
	sodium_bin2hex(hex, sizeof hex, l->holder, LEASE_ID_SIZE);
	snprintf(buf, len, "holder %.8s on host %s (pid %u), last heartbeat %lld s ago%s%s%s", hex,
		 l->host[0] ? l->host : "?", l->pid, (long long)(now - l->heartbeat),
		 l->flags & LEASE_MOUNTED ? ", mounted" : ", not mounted",
		 l->flags & LEASE_RELEASED ? ", released" : "",
		 l->flags & LEASE_UNHANDED ? ", stopped with segments not handed off" : "");
}

enum lease_state lease_classify(const struct lease *l, const uint8_t *me, int64_t now)
{
	if (!l || !l->seq)
		return LEASE_ST_NONE;
	if (me && lease_held_by(l, me))
		return l->flags & LEASE_MOUNTED ? LEASE_ST_MOUNTED
		     : l->flags & LEASE_RELEASED ? LEASE_ST_RELEASED
		     : l->flags & LEASE_UNHANDED ? LEASE_ST_UNHANDED : LEASE_ST_STOPPING;
	if (l->flags & LEASE_RELEASED)
		return LEASE_ST_OTHER_RELEASED;
	if (l->flags & LEASE_UNHANDED)
		return LEASE_ST_OTHER_UNHANDED;
	return now - l->heartbeat < (int64_t)l->timeout ? LEASE_ST_OTHER : LEASE_ST_OTHER_EXPIRED;
}

/* One cell of the table: the next state (SAME: unchanged) and the action. */
struct edge {
	uint8_t next, act;
};

#define SAME LEASE_NSTATES
#define TO(st, a) { LEASE_ST_##st, LEASE_ACT_##a }
#define STAY(a) { SAME, LEASE_ACT_##a }

/* The qsfs-fs events on one of this node's own states: any of them. */
#define MINE_FS \
	[LEASE_EV_TAKE] = TO(MOUNTED, WRITE), [LEASE_EV_TAKEOVER] = TO(MOUNTED, WRITE), \
	[LEASE_EV_RENEW] = TO(MOUNTED, WRITE), [LEASE_EV_STOP] = TO(STOPPING, WRITE), \
	[LEASE_EV_STOP_UNHANDED] = TO(UNHANDED, WRITE), [LEASE_EV_GIVE_UP] = TO(RELEASED, WRITE)
/* The writes of a holder whose lease is not (or no longer) its own. */
#define NOT_MINE_FS \
	[LEASE_EV_RENEW] = STAY(FENCE), [LEASE_EV_STOP] = STAY(FENCE), \
	[LEASE_EV_STOP_UNHANDED] = STAY(FENCE), [LEASE_EV_GIVE_UP] = STAY(FENCE)
/* stor on a lease that is not its to renew or release. */
#define STOR_HANDS_OFF \
	[LEASE_EV_JOBS] = STAY(NONE), [LEASE_EV_EMPTY] = STAY(NONE), \
	[LEASE_EV_UNHANDED] = STAY(REFUSE), [LEASE_EV_UNKNOWN] = STAY(REFUSE), \
	[LEASE_EV_HANDED] = STAY(REFUSE)
/* stor on another holder's lease. */
#define STOR_FENCED \
	[LEASE_EV_JOBS] = STAY(FENCE), [LEASE_EV_EMPTY] = STAY(FENCE), \
	[LEASE_EV_UNHANDED] = STAY(FENCE), [LEASE_EV_UNKNOWN] = STAY(FENCE), \
	[LEASE_EV_HANDED] = STAY(FENCE)

/* lease.h's table, cell for cell. */
static const struct edge table[LEASE_NSTATES][LEASE_NEVENTS] = {
	[LEASE_ST_NONE] = {
		[LEASE_EV_TAKE] = TO(MOUNTED, WRITE), [LEASE_EV_TAKEOVER] = TO(MOUNTED, WRITE),
		NOT_MINE_FS, STOR_HANDS_OFF,
	},
	[LEASE_ST_MOUNTED] = { MINE_FS, STOR_HANDS_OFF },
	[LEASE_ST_STOPPING] = {
		MINE_FS,
		[LEASE_EV_JOBS] = STAY(RENEW), [LEASE_EV_EMPTY] = STAY(COUNT),
		[LEASE_EV_UNHANDED] = TO(UNHANDED, WRITE), [LEASE_EV_UNKNOWN] = STAY(RENEW),
		[LEASE_EV_HANDED] = TO(RELEASED, RELEASE),
	},
	[LEASE_ST_UNHANDED] = {
		MINE_FS,
		[LEASE_EV_JOBS] = STAY(RENEW), [LEASE_EV_EMPTY] = STAY(COUNT),
		[LEASE_EV_UNHANDED] = STAY(RENEW), [LEASE_EV_UNKNOWN] = STAY(RENEW),
		[LEASE_EV_HANDED] = TO(RELEASED, RELEASE),
	},
	[LEASE_ST_RELEASED] = { MINE_FS, STOR_HANDS_OFF },
	[LEASE_ST_OTHER] = {
		[LEASE_EV_TAKE] = STAY(REFUSE), [LEASE_EV_TAKEOVER] = TO(MOUNTED, WRITE),
		NOT_MINE_FS, STOR_FENCED,
	},
	[LEASE_ST_OTHER_UNHANDED] = {
		[LEASE_EV_TAKE] = STAY(REFUSE), [LEASE_EV_TAKEOVER] = TO(MOUNTED, WRITE),
		NOT_MINE_FS, STOR_FENCED,
	},
	[LEASE_ST_OTHER_EXPIRED] = {
		[LEASE_EV_TAKE] = TO(MOUNTED, WRITE), [LEASE_EV_TAKEOVER] = TO(MOUNTED, WRITE),
		NOT_MINE_FS, STOR_FENCED,
	},
	[LEASE_ST_OTHER_RELEASED] = {
		[LEASE_EV_TAKE] = TO(MOUNTED, WRITE), [LEASE_EV_TAKEOVER] = TO(MOUNTED, WRITE),
		NOT_MINE_FS, STOR_FENCED,
	},
};

enum lease_state lease_next(enum lease_state s, enum lease_event e, enum lease_action *act)
{
	if ((unsigned)s >= LEASE_NSTATES || (unsigned)e >= LEASE_NEVENTS) {
		*act = LEASE_ACT_REFUSE;
		return s;
	}
	const struct edge *x = &table[s][e];
	*act = (enum lease_action)x->act;
	return x->next == SAME ? s : (enum lease_state)x->next;
}

uint32_t lease_state_flags(enum lease_state s)
{
	switch (s) {
	case LEASE_ST_MOUNTED:
		return LEASE_MOUNTED;
	case LEASE_ST_UNHANDED:
		return LEASE_UNHANDED;
	case LEASE_ST_RELEASED:
		return LEASE_RELEASED;
	default:
		return 0;
	}
}

const char *lease_state_name(enum lease_state s)
{
	static const char *const n[LEASE_NSTATES] = {
		"NONE", "MOUNTED", "STOPPING", "UNHANDED", "RELEASED", "OTHER", "OTHER_UNHANDED",
		"OTHER_EXPIRED", "OTHER_RELEASED",
	};
	return (unsigned)s < LEASE_NSTATES ? n[s] : "?";
}

const char *lease_event_name(enum lease_event e)
{
	static const char *const n[LEASE_NEVENTS] = {
		"TAKE", "TAKEOVER", "RENEW", "STOP", "STOP_UNHANDED", "GIVE_UP", "JOBS", "EMPTY",
		"UNHANDED", "UNKNOWN", "HANDED",
	};
	return (unsigned)e < LEASE_NEVENTS ? n[e] : "?";
}

const char *lease_action_name(enum lease_action a)
{
	static const char *const n[LEASE_NACTIONS] = {
		"-", "w", "renew", "count", "release", "fence", "refuse",
	};
	return (unsigned)a < LEASE_NACTIONS ? n[a] : "?";
}
