/* stor/volcat.h - qsfs-stor's volume catalog (catalog.h) in memory
 * (d->cat, under d->cat_mu) and its writes to the backends: after every
 * stored object, and when a segment leaves it. Checkpoints the catalog's
 * window drops are journaled for deletion.
 */
#ifndef QSFS_STOR_VOLCAT_H
#define QSFS_STOR_VOLCAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "catalog.h"

struct objstore;
struct stord;

#define TRIMMED_BATCH 64

/* Write d's catalog out (majority). On success, up to TRIMMED_BATCH ids of
 * checkpoints the window dropped go to trimmed (*ntrimmed of them), to be
 * journaled for deletion (journal_trimmed) once cat_mu is released; the
 * workers are woken (a checkpoint may go now). Returns 0, or a negative
 * errno with why; d->cat_saved says which. Blocks on the backends;
 * d->cat_mu held, d->mu not. */
int cat_save(struct stord *d, struct objstore *os, uint64_t *trimmed, size_t *ntrimmed,
	     char *why, size_t whylen);

/* Journal and queue the deletion of checkpoints c<id>. A failure is
 * logged: the object stays on the backends, unlisted. Blocks on the
 * spool's fsyncs; takes d->mu (d->mu and d->cat_mu not held). */
void journal_trimmed(struct stord *d, const uint64_t *ids, size_t n);

/* Add a stored object to the catalog and write it out (majority). hdr:
 * the object's first CAT_CKPT_HDR bytes (a checkpoint's kind and upto).
 * Returns 0, or a negative errno with why. Blocks on the backends; takes
 * d->cat_mu, then d->mu (neither held). */
int catalog_note(struct stord *d, struct objstore *os, const char *name,
		 const uint8_t hdr[CAT_CKPT_HDR], char *why, size_t whylen);

/* Is name safely remote: stored and listed in the catalog (so a fresh
 * node finds it), and no newer contents queued? Does not block; takes
 * d->mu, then d->cat_mu (neither held). */
bool is_confirmed(struct stord *d, const char *name);

#endif
