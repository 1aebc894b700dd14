/* stor/stor_status.h - qsfs-stor's STATUS reply: one line of JSON (json-c)
 * with the queue, the backends (each with its state, last error and room:
 * "space" from the probe's usage readings, "full"), the lease, the scrub
 * and redundancy, the leak check's numbers, and "problems": one sentence
 * per thing wrong ("state" is "degraded" when there is any, else "ok").
 */
#ifndef QSFS_STOR_STOR_STATUS_H
#define QSFS_STOR_STOR_STATUS_H

struct stord;

/* Write the STATUS line to cfd. Blocks on writing cfd only; takes d->mu
 * (not held) for the whole snapshot. */
void do_status(struct stord *d, int cfd);

#endif
