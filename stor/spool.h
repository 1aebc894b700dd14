/* stor/spool.h - the durable job journal of qsfs-stor.
 *
 * A STORE job is a file STATE_DIR/spool/NAME: a hard link to the object
 * (a copy when it is on another filesystem), made under a temporary name,
 * fsynced, renamed into place, and the directory fsynced, all before the
 * request is acknowledged. It is unlinked (and the directory fsynced) only
 * once the upload is confirmed. So a kill -9 at any moment leaves every
 * acknowledged job in the directory, and the next start resumes them all.
 * Storing a name again replaces the job (hand-offs may repeat).
 * The link also keeps the bytes alive if the cache deletes its file.
 *
 * A DELETE job is an empty file STATE_DIR/spool/NAME.del, made durable the
 * same way (temp, fsync, rename, fsync of the directory) and removed the
 * same way once the object is gone from the backends.
 *
 * A LOST job is an empty file STATE_DIR/spool/NAME.lost (segments only),
 * made and removed the same way: the writer lost segment NAME before it
 * handed it off, and the catalog must record the loss (catalog.h).
 */
#ifndef QSFS_STOR_SPOOL_H
#define QSFS_STOR_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct spool;

/* Open (creating) STATE_DIR/spool. */
int spool_open(const char *state_dir, struct spool **out);
void spool_close(struct spool *s);

/* Durably add a job for object name from the file at path. */
int spool_add(struct spool *s, const char *name, const char *path);

/* Durably add a job deleting object name: the file NAME.del. Returns 0
 * once it is on disk, -EINVAL for a bad name, else -errno. Blocks on
 * fsync. */
int spool_add_delete(struct spool *s, const char *name);

/* Durably add a job recording segment name as lost: the file NAME.lost.
 * Returns 0 once it is on disk, -EINVAL for a name that is not a
 * segment's, else -errno. Blocks on fsync. */
int spool_add_lost(struct spool *s, const char *name);

/* The job is done: remove it durably (name: a job name as spool_list gives
 * it, NAME, NAME.del or NAME.lost). */
int spool_done(struct spool *s, const char *name);

/* Open the job's file for reading (fd) and give its size. */
int spool_open_job(struct spool *s, const char *name, uint64_t *size);

/* Call cb for every job present (at start: the unfinished ones): a STORE
 * job with the object's name, a DELETE job with "NAME.del", a LOST job
 * with "NAME.lost" (size 0). */
int spool_list(struct spool *s, void (*cb)(void *arg, const char *name, uint64_t size,
					   int64_t mtime),
	       void *arg);

/* Object names are "s<digits>" (segment) or "c<digits>" (checkpoint).
 * Returns 0 and the id used by the codec (checkpoints have bit 63 set). */
int object_name_parse(const char *name, uint64_t *code_id);

/* Is job name a DELETE job ("NAME.del" with a valid object name)? If so,
 * and obj is not NULL, the object's name goes to obj (OBJ name size, at
 * least 32 bytes). */
bool spool_is_delete(const char *job, char *obj);

/* Is job name a LOST job ("s<id>.lost")? obj as for spool_is_delete. */
bool spool_is_lost(const char *job, char *obj);

#endif
