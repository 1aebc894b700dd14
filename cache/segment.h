/* cache/segment.h - segment files: naming, creation and sequential scans.
 *
 * Used by the log (replay, fetch validation) and by the inspector (verify).
 * Nothing here holds state between calls.
 */
#ifndef QSFS_CACHE_SEGMENT_H
#define QSFS_CACHE_SEGMENT_H

#include <stdbool.h>
#include <stdint.h>

#include "format.h"

#define SEG_NAME_LEN 32

/* "seg-%016llx.qseg" into name (SEG_NAME_LEN bytes). */
void seg_name(uint64_t id, char name[SEG_NAME_LEN]);

/* Parse a segment file name. Returns true and *id for a valid name. */
bool seg_parse_name(const char *name, uint64_t *id);

/* Create segment id in dirfd: O_EXCL, header written and fdatasync'd, then
 * the directory fsync'd. The header bytes are copied to hdr_out. Returns an
 * O_RDWR fd or -errno. */
int seg_create(int dirfd, uint64_t id, const uint8_t volume_id[VOLUME_ID_SIZE],
	       uint8_t hdr_out[SEG_HDR_SIZE]);

/* One record seen by seg_scan. val is NULL unless the scan was asked for
 * values. */
struct seg_rec {
	uint8_t type;
	const uint8_t *key;
	uint8_t klen;
	const uint8_t *val;
	uint32_t vlen;
	uint64_t off;	/* offset of the record header */
	uint64_t len;	/* whole record length */
};

/* Called for every valid PUT/DEL record before the seal record (the records
 * of a batch only once the whole batch is known to be valid; BATCH records
 * themselves are not reported). Non-zero stops the scan and is returned by
 * seg_scan. */
typedef int (*seg_rec_cb)(void *arg, const struct seg_rec *r);

struct seg_scan_result {
	uint32_t version;	/* segment format version of the header */
	uint64_t end;		/* offset just after the last valid record */
	uint64_t file_size;
	uint64_t nrecords;	/* valid records before any seal (BATCH ones too) */
	bool sealed;		/* a valid seal record closes the file */
	struct seal_info seal;
	uint64_t bad_off;	/* when !clean: offset of the first bad byte */
	const char *why;	/* when !clean: what is wrong there */
	bool clean;		/* nothing after end, or sealed and consistent */
};

/* Read the whole segment file fd sequentially, checking the header (volume
 * id and segment id must match), every record checksum, and for a sealed
 * segment the seal record (record count, offset, content checksum) and that
 * nothing follows it. Stops at the first bad record: res->end is then where
 * the valid prefix ends and res->clean is false. A batch with any record
 * missing or bad is bad as a whole: the valid prefix ends before it.
 * If content is not NULL it must be a fresh sum_new(0) state: the scan feeds
 * it every byte of the valid prefix (header and records, not the seal), so
 * the caller can go on appending to an active segment.
 * Returns 0 (look at res), a callback's non-zero value, -EBADMSG if the
 * header itself is bad (res->why says how), or -errno on I/O error. */
int seg_scan(int fd, uint64_t id, const uint8_t volume_id[VOLUME_ID_SIZE],
	     bool with_values, seg_rec_cb cb, void *arg,
	     struct sum_state *content, struct seg_scan_result *res);

#endif
