/* cache/segment.c - see segment.h */
#include "segment.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../common/fsutil.h"

void seg_name(uint64_t id, char name[SEG_NAME_LEN])
{
	snprintf(name, SEG_NAME_LEN, "seg-%016" PRIx64 ".qseg", id);
}

bool seg_parse_name(const char *name, uint64_t *id)
{
	return fs_parse_hex_name(name, "seg-", ".qseg", id);
}

int seg_create(int dirfd, uint64_t id, const uint8_t volume_id[VOLUME_ID_SIZE],
	       uint8_t hdr_out[SEG_HDR_SIZE])
{
	/* written as a temp file and renamed: a crash never leaves a segment
	 * without its header under the real name (open removes *.tmp) */
	char name[SEG_NAME_LEN], tmp[SEG_NAME_LEN + 8];
	seg_name(id, name);
	snprintf(tmp, sizeof tmp, "%s.tmp", name);
	if (faccessat(dirfd, name, F_OK, 0) == 0)
		return -EEXIST;
	int fd = openat(dirfd, tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	struct seg_hdr h = { .seg_id = id, .created = (uint64_t)time(NULL) };
	memcpy(h.volume_id, volume_id, VOLUME_ID_SIZE);
	uint8_t buf[SEG_HDR_SIZE];
	seg_hdr_encode(&h, buf);
	memcpy(hdr_out, buf, SEG_HDR_SIZE);
	int r = fs_pwrite_all(fd, buf, sizeof buf, 0);
	if (!r && fdatasync(fd) < 0)
		r = -errno;
	if (!r && renameat(dirfd, tmp, dirfd, name) < 0)
		r = -errno;
	if (!r)
		r = fs_fsync_dir(dirfd);
	if (r) {
		close(fd);
		unlinkat(dirfd, tmp, 0);
		return r;
	}
	return fd;
}

/* A forward-only buffered reader that can hand out any record contiguously. */
struct reader {
	int fd;
	uint8_t *buf;
	size_t cap;
	uint64_t buf_off;	/* file offset of buf[0] */
	size_t have;		/* valid bytes in buf */
	uint64_t fsize;
};

/* Make [off, off+n) available in buf. Returns a pointer into buf, NULL at end
 * of file (fewer bytes exist), or sets *err on I/O error. */
static const uint8_t *rd_need(struct reader *r, uint64_t off, size_t n, int *err)
{
	if (off + n > r->fsize)
		return NULL;
	if (off >= r->buf_off && off + n <= r->buf_off + r->have)
		return r->buf + (off - r->buf_off);
	if (n > r->cap) {
		size_t nc = r->cap;
		while (nc < n)
			nc *= 2;
		uint8_t *nb = realloc(r->buf, nc);
		if (!nb) {
			*err = -ENOMEM;
			return NULL;
		}
		r->buf = nb;
		r->cap = nc;
	}
	/* keep what we already have of the range, read the rest */
	size_t keep = 0;
	if (off >= r->buf_off && off < r->buf_off + r->have) {
		keep = r->buf_off + r->have - off;
		memmove(r->buf, r->buf + (off - r->buf_off), keep);
	}
	r->buf_off = off;
	size_t want = r->cap - keep;
	if (want > r->fsize - off - keep)
		want = r->fsize - off - keep;
	ssize_t got = fs_pread_full(r->fd, r->buf + keep, want, (off_t)(off + keep));
	if (got < 0) {
		*err = (int)got;
		return NULL;
	}
	r->have = keep + (size_t)got;
	if (r->have < n)
		return NULL;
	return r->buf;
}

/* Check the batch whose BATCH record (len bytes, already verified) is at off:
 * every one of its records must be in the file, well formed and verify.
 * Returns 1 (*b filled, the whole batch now in r's buffer), 0 when it is
 * torn or bad (*why says how), or a negative errno on I/O error. */
static int check_batch(struct reader *r, uint64_t off, uint64_t len, uint64_t id,
		       const struct seg_hdr *h, const struct rec_hdr *rh,
		       struct batch_info *b, const char **why)
{
	if (h->version < 2) {
		*why = "batch record in a version 1 segment";
		return 0;
	}
	const uint8_t *p = rd_need(r, off, len, &(int){ 0 });
	if (rh->klen || rh->vlen != BATCH_VAL_SIZE || !p ||
	    batch_decode(p + REC_HDR_SIZE, b)) {
		*why = "malformed batch record";
		return 0;
	}
	if (b->bytes > r->fsize - off - len) {
		*why = "batch runs past the end of the file (torn append)";
		return 0;
	}
	int err = 0;
	p = rd_need(r, off, len + b->bytes, &err);
	if (!p)
		return err ? err : -EIO;
	uint64_t pos = len, end = len + b->bytes;
	for (uint32_t i = 0; i < b->count; i++) {
		struct rec_hdr ih;
		if (end - pos < REC_HDR_SIZE || rec_decode_hdr(p + pos, &ih) ||
		    (ih.type != REC_PUT && ih.type != REC_DEL) || !ih.klen ||
		    rec_len(ih.klen, ih.vlen) > end - pos) {
			*why = "batch holds a bad or cut record (torn append)";
			return 0;
		}
		if (!rec_verify(p + pos, id)) {
			*why = "record checksum mismatch inside a batch";
			return 0;
		}
		pos += rec_len(ih.klen, ih.vlen);
	}
	if (pos != end) {
		*why = "batch length does not match its records";
		return 0;
	}
	return 1;
}

/* Count, sum and report one valid PUT/DEL record held at p. */
static int emit(struct seg_scan_result *res, struct sum_state *content, bool with_values,
		seg_rec_cb cb, void *arg, const uint8_t *p, uint64_t off)
{
	struct rec_hdr rh;
	rec_decode_hdr(p, &rh);
	uint64_t len = rec_len(rh.klen, rh.vlen);
	struct seg_rec rec = {
		.type = rh.type, .key = p + REC_HDR_SIZE, .klen = rh.klen,
		.val = with_values ? p + REC_HDR_SIZE + rh.klen : NULL,
		.vlen = rh.vlen, .off = off, .len = len,
	};
	res->nrecords++;
	sum_update(content, p, len);
	return cb ? cb(arg, &rec) : 0;
}

int seg_scan(int fd, uint64_t id, const uint8_t volume_id[VOLUME_ID_SIZE],
	     bool with_values, seg_rec_cb cb, void *arg,
	     struct sum_state *content_in, struct seg_scan_result *res)
{
	memset(res, 0, sizeof *res);
	struct stat st;
	if (fstat(fd, &st) < 0)
		return -errno;
	struct reader r = { .fd = fd, .cap = 1 << 20, .fsize = (uint64_t)st.st_size };
	res->file_size = r.fsize;
	if (r.fsize > SEG_MAX_FILE_SIZE) {
		res->why = "file larger than any segment can be (4 GiB)";
		return -EBADMSG;
	}
	r.buf = malloc(r.cap);
	if (!r.buf)
		return -ENOMEM;
	int err = 0, ret = 0;
	struct sum_state *content = content_in ? content_in : sum_new(0);
	if (!content) {
		free(r.buf);
		return -ENOMEM;
	}
	const uint8_t *p = rd_need(&r, 0, SEG_HDR_SIZE, &err);
	struct seg_hdr h;
	if (!p) {
		ret = err ? err : -EBADMSG;
		res->why = "file shorter than a segment header";
		goto out;
	}
	int hr = seg_hdr_decode(p, &h);
	if (hr) {
		ret = -EBADMSG;
		res->why = hr == -EPROTONOSUPPORT ? "unknown segment format version"
						  : "bad segment header (magic or checksum)";
		goto out;
	}
	if (h.seg_id != id) {
		ret = -EBADMSG;
		res->why = "header names another segment id";
		goto out;
	}
	if (memcmp(h.volume_id, volume_id, VOLUME_ID_SIZE)) {
		ret = -EBADMSG;
		res->why = "segment belongs to another volume";
		goto out;
	}
	res->version = h.version;
	sum_update(content, p, SEG_HDR_SIZE);
	uint64_t off = SEG_HDR_SIZE;
	for (;;) {
		res->end = off;
		if (off == r.fsize) {
			res->clean = true;
			break;
		}
		p = rd_need(&r, off, REC_HDR_SIZE, &err);
		if (!p) {
			if (err) {
				ret = err;
				goto out;
			}
			res->bad_off = off;
			res->why = "truncated record header";
			break;
		}
		struct rec_hdr rh;
		if (rec_decode_hdr(p, &rh) ||
		    (rh.type != REC_SEAL && rh.type != REC_BATCH && rh.klen == 0)) {
			res->bad_off = off;
			res->why = "bad record header";
			break;
		}
		uint64_t len = rec_len(rh.klen, rh.vlen);
		p = rd_need(&r, off, len, &err);
		if (!p) {
			if (err) {
				ret = err;
				goto out;
			}
			res->bad_off = off;
			res->why = "record runs past the end of the file";
			break;
		}
		if (!rec_verify(p, id)) {
			res->bad_off = off;
			res->why = "record checksum mismatch";
			break;
		}
		if (rh.type == REC_SEAL) {
			struct seal_info si;
			if (rh.klen || rh.vlen != SEAL_VAL_SIZE) {
				res->bad_off = off;
				res->why = "malformed seal record";
				break;
			}
			seal_decode(p + REC_HDR_SIZE, &si);
			if (si.nrecords != res->nrecords || si.seal_off != off ||
			    si.content_sum != sum_digest(content)) {
				res->bad_off = off;
				res->why = "seal record does not match the segment contents";
				break;
			}
			res->sealed = true;
			res->seal = si;
			res->end = off + len;
			if (res->end != r.fsize) {
				res->bad_off = res->end;
				res->why = "data after the seal record";
			} else {
				res->clean = true;
			}
			break;
		}
		if (rh.type == REC_BATCH) {
			struct batch_info b;
			const char *why = NULL;
			int ok = check_batch(&r, off, len, id, &h, &rh, &b, &why);
			if (ok < 0) {
				ret = ok;
				goto out;
			}
			if (!ok) {
				res->bad_off = off;
				res->why = why;
				break;
			}
			p = rd_need(&r, off, len + b.bytes, &err);	/* in the buffer already */
			res->nrecords++;
			sum_update(content, p, len);
			for (uint64_t pos = len; pos < len + b.bytes;) {
				int c = emit(res, content, with_values, cb, arg, p + pos, off + pos);
				if (c) {
					ret = c;
					goto out;
				}
				pos += rec_len(p[pos + 9], get_le32(p + pos + 12));
			}
			off += len + b.bytes;
			continue;
		}
		int c = emit(res, content, with_values, cb, arg, p, off);
		if (c) {
			ret = c;
			goto out;
		}
		off += len;
	}
out:
	if (!content_in)
		sum_free(content);
	free(r.buf);
	return ret;
}
