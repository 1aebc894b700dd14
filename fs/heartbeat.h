/* fs/heartbeat.h - the writer lease's heartbeat in qsfs-fs: a thread of
 * its own renews the lease (wlease_renew, straight to the backends) every
 * wlease_period seconds, so nothing else qsfs-fs waits on (qsfs-stor, a
 * slow status write, a fetch) can delay a renewal past the lease's
 * timeout. When another host has taken the lease, the heartbeat fences
 * this node at once: the log refuses new writes (cache_fence) and the
 * filesystem answers EROFS (QFS_FULL_FENCED); it then stops renewing.
 */
#ifndef QSFS_FS_HEARTBEAT_H
#define QSFS_FS_HEARTBEAT_H

#include <stdbool.h>
#include <stddef.h>

struct cache;
struct qfs;
struct wlease;
struct heartbeat;

/* Start renewing lease (which stays the caller's: free it after
 * heartbeat_stop). The first renewal is one period from now (the lease was
 * just taken). Returns 0, or -errno when the thread cannot start. */
int heartbeat_start(struct wlease *lease, struct cache *c, struct qfs *fs,
		    struct heartbeat **out);

/* Have fn(arg) called (on the heartbeat's thread, with no lock of its
 * held) whenever its state changes: fenced, or a renewal's problem
 * appearing or going. fn NULL: none. Returns once a call in progress is
 * over, so arg may be freed after heartbeat_notify(hb, NULL, NULL). */
void heartbeat_notify(struct heartbeat *hb, void (*fn)(void *arg), void *arg);

/* Whether another host took the lease (this node is fenced), and in
 * problem (may be NULL) why the last renewal failed ("" when it
 * worked). Never blocks on I/O. */
bool heartbeat_state(struct heartbeat *hb, char *problem, size_t len);

/* Stop the thread (waits for a renewal in flight: one backend round, a
 * few seconds at most) and free hb. NULL: no-op. */
void heartbeat_stop(struct heartbeat *hb);

#endif
