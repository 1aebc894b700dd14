/* stor/probe.h - qsfs-stor's backend health thread.
 *
 * Every PROBE_S it asks each backend whether it is there (PING, or the
 * directory), with its own handles and a short timeout (PROBE_TIMEOUT_MS),
 * and tells health.h. A backend that answers again after being down wakes
 * the uploads waiting for it and starts a check pass: it may have come
 * back empty. A backend that answers is also asked its use and limit
 * (backend_usage: a 0-db namespace's NSINFO), which tells health.h whether
 * it is full; one that cannot tell has its full verdict dropped after
 * HEALTH_FULL_RETRY_S. A backend that becomes full or has room again is
 * logged once, and room again wakes the uploads waiting.
 */
#ifndef QSFS_STOR_PROBE_H
#define QSFS_STOR_PROBE_H

#include <stdbool.h>

#include "../common/config.h"

#define PROBE_S 2
#define PROBE_TIMEOUT_MS 1000

struct backend;
struct stord;

/* The probe thread's own handles, one per configured backend (opened by
 * its starter with PROBE_TIMEOUT_MS, closed after it ends). */
struct probe {
	struct stord *d;
	struct backend *b[CONFIG_MAX_BACKENDS];
	bool was_full[CONFIG_MAX_BACKENDS];	/* the probe thread's: as last logged */
};

/* The probe thread: arg is its struct probe. Probes every PROBE_S until
 * d->stop. Blocks on the backends with no lock held; takes d->mu (waits
 * on d->scrub.cv). */
void *probe_main(void *arg);

#endif
