/* stor/serve.h - qsfs-stor's control socket: the requests of
 * common/storproto.h (parsed there), each answered on its connection's
 * thread. A connection carries any number of requests, one after the
 * other, until the peer closes it; its thread is detached, so a stop
 * never waits for one.
 *
 * What the daemon adds to storproto.h's description:
 *   STORE NAME PATH      "ERR" for a segment deleted or being deleted
 *   DELETE NAME          journaled as NAME.del in the spool; "ERR NAME has
 *                        an upload queued; retry later" while a STORE of
 *                        it is queued, "ERR" for a checkpoint the
 *                        catalog's window still lists. A segment leaves
 *                        the catalog first (removed ranges), then its keys
 *                        leave the backends; checkpoints trimmed out of
 *                        the window are deleted by stor itself
 *   GCFLOOR              catalog_gc_floor (catalog.h): the segment id up
 *                        to which dead segments may be deleted as far as
 *                        the remote checkpoints are concerned
 *   CONFIRMED, CONFIRMS  safely remote: stored and in the volume catalog,
 *                        with no newer contents queued (is_confirmed)
 *   SCRUB, REPAIR        start a pass that checks every shard of every
 *                        stored object and repairs what is wrong (progress
 *                        and results in STATUS "scrub" and "redundancy")
 *   LEASE                qsfs-fs sends it after its clean stop: stor looks
 *                        at the writer lease now and releases it once its
 *                        queue is empty
 *   GCCHECK [FIX]        the leak check (leaks.h): keys of the volume on
 *                        the backends that nothing refers to; FIX removes
 *                        them first (the report says what went)
 */
#ifndef QSFS_STOR_SERVE_H
#define QSFS_STOR_SERVE_H

struct stord;

/* Serve the accepted connection cfd on a detached thread of its own, which
 * closes it at the end (here, if no thread can be made). Does not block;
 * no lock. */
void serve_conn(struct stord *d, int cfd);

/* At stop, after the listening socket is closed: shut every control
 * connection down (a client's request in progress gets no reply) and wait
 * up to wait_ms for their threads to end. Returns how many are still
 * running (then what they use must not be freed). Takes d->mu. */
int serve_stop(struct stord *d, unsigned wait_ms);

#endif
