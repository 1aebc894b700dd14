/* stor/queue.h - qsfs-stor's job queue (d->jobs, under d->mu) and its
 * workers: one thread per struct ctx in d->workers picks the next job
 * that may go and uploads or deletes its object; a job leaves the spool
 * (the journal) only once it is done, and a failed one is retried after
 * 2, 4, ... 64 s.
 *
 * The job picker's rule: no job while fenced (another holder has the
 * writer lease); a deletion waits while an upload of its object is queued;
 * nothing starts on the object a leak fix has claimed; a checkpoint upload
 * waits until the stored catalog holds every segment up to its upto
 * (d->cat_hi), so no checkpoint on the backends refers to a segment they
 * lack.
 */
#ifndef QSFS_STOR_QUEUE_H
#define QSFS_STOR_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct job;
struct stord;

/* The job of spool name (NAME, NAME.del or NAME.lost), or NULL. Does not block;
 * d->mu held. */
struct job *find_job(struct stord *d, const char *name);

/* Has object name a job (upload, deletion or loss) queued or in flight? Does
 * not block; d->mu held. */
bool job_of(struct stord *d, const char *name);

/* Add or refresh the job of spool name (NAME, or NAME.del for a deletion):
 * size bytes, queued at unix time since. A refreshed job's backoff is
 * reset, and one in flight runs again once done. A new checkpoint upload
 * reads its upto from the spool file. Wakes a worker. 0 or -ENOMEM. Does
 * not block on the network; d->mu held (or no thread started yet). */
int queue_job(struct stord *d, const char *name, uint64_t size, int64_t since);

/* Durably journal (spool NAME.lost) and queue the recording of segment
 * name as lost before upload (a worker writes it into the catalog). 0, or
 * a negative errno with why. Blocks on the spool's fsyncs; takes d->mu
 * (not held). */
int queue_lost(struct stord *d, const char *name, char *why, size_t whylen);

/* Unlink and free job j. d->mu held. */
void drop_job(struct stord *d, struct job *j);

/* Queue every job the spool holds (at start, before the workers).
 * Returns how many. Reads the spool directory; no lock taken. */
unsigned queue_resume(struct stord *d);

/* A worker thread: arg is its struct ctx (in d->workers). Picks jobs and
 * runs them until d->stop. Blocks on the backends with no lock held;
 * takes d->mu, d->cat_mu (never both). */
void *worker_main(void *arg);

/* Read STATE_DIR/lost (objects lost before upload, queue.c) into d's
 * count at start. */
void lost_load(struct stord *d);

#endif
