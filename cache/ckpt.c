/* cache/ckpt.c - see ckpt.h */
#include "ckpt.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/fsutil.h"

#define CKPT_SEG_SIZE 32u
#define WBUF (1u << 20)

void ckpt_name(uint64_t id, char name[CKPT_NAME_LEN])
{
	snprintf(name, CKPT_NAME_LEN, "ckpt-%016" PRIx64 ".qckp", id);
}

bool ckpt_parse_name(const char *name, uint64_t *id)
{
	return fs_parse_hex_name(name, "ckpt-", ".qckp", id);
}

/* --- writing ---------------------------------------------------------- */

static void w_flush(struct ckpt_writer *w)
{
	if (w->fd < 0 || w->err || !w->len)
		return;
	w->err = fs_pwrite_all(w->fd, w->buf, w->len, (off_t)(w->total - w->len));
	w->len = 0;
}

static void w_bytes(struct ckpt_writer *w, const void *p, size_t n)
{
	if (w->err)
		return;
	sum_update(w->sum, p, n);
	if (w->len + n > w->cap) {
		if (w->fd >= 0) {
			w_flush(w);
			if (w->err)
				return;
		}
		if (w->len + n > w->cap) {
			size_t nc = w->cap ? w->cap : 4096;
			while (nc < w->len + n)
				nc *= 2;
			uint8_t *nb = realloc(w->buf, nc);
			if (!nb) {
				w->err = -ENOMEM;
				return;
			}
			w->buf = nb;
			w->cap = nc;
		}
	}
	memcpy(w->buf + w->len, p, n);
	w->len += n;
	w->total += n;
}

static void w_u64(struct ckpt_writer *w, uint64_t v)
{
	uint8_t b[8];
	put_le64(b, v);
	w_bytes(w, b, 8);
}

int ckw_begin(struct ckpt_writer *w, int fd, const struct ckpt_hdr *h,
	      uint64_t nsegs)
{
	memset(w, 0, sizeof *w);
	w->fd = fd;
	w->sum = sum_new(0);
	if (!w->sum)
		return -ENOMEM;
	if (fd >= 0) {
		w->buf = malloc(WBUF);
		w->cap = WBUF;
		if (!w->buf) {
			sum_free(w->sum);
			return -ENOMEM;
		}
	}
	uint8_t b[CKPT_HDR_SIZE] = { 0 };
	memcpy(b, CKPT_MAGIC, 8);
	put_le32(b + 8, CKPT_VERSION);
	put_le32(b + 12, h->kind);
	memcpy(b + 16, h->volume_id, VOLUME_ID_SIZE);
	put_le64(b + 32, h->id);
	put_le64(b + 40, h->from);
	put_le64(b + 48, h->upto);
	put_le64(b + 56, sum64(b, 56, 0));
	w_bytes(w, b, sizeof b);
	w_u64(w, nsegs);
	return w->err;
}

void ckw_seg(struct ckpt_writer *w, const struct ckpt_seg *s)
{
	w_u64(w, s->id);
	w_u64(w, s->size);
	w_u64(w, s->live);
	w_u64(w, s->flags);
}

void ckw_key(struct ckpt_writer *w, uint8_t op, const uint8_t *key, size_t klen,
	     const struct ix_loc *loc)
{
	if (w->err)
		return;
	if (klen == 0 || klen > KEY_MAX ||
	    (w->nkeys && ix_keycmp(w->last_key, w->last_klen, key, klen) >= 0)) {
		w->err = -EINVAL;
		return;
	}
	memcpy(w->last_key, key, klen);
	w->last_klen = klen;
	uint8_t b[2] = { op, (uint8_t)klen };
	w_bytes(w, b, 2);
	w_bytes(w, key, klen);
	if (op == CKPT_PUT) {
		uint8_t l[12];
		put_le32(l, loc->seg);
		put_le32(l + 4, loc->off);
		put_le32(l + 8, loc->len);
		w_bytes(w, l, 12);
	}
	w->nkeys++;
}

int ckw_end(struct ckpt_writer *w)
{
	uint8_t z = 0;
	w_bytes(w, &z, 1);
	w_u64(w, w->nkeys);
	if (!w->err) {
		/* the trailer sums every byte before it */
		uint8_t b[8];
		put_le64(b, sum_digest(w->sum));
		w_bytes(w, b, 8);
	}
	w_flush(w);
	sum_free(w->sum);
	w->sum = NULL;
	if (w->fd >= 0) {
		free(w->buf);
		w->buf = NULL;
	}
	return w->err;
}

void ckw_abort(struct ckpt_writer *w)
{
	if (w->sum)
		sum_free(w->sum);
	free(w->buf);
	memset(w, 0, sizeof *w);
	w->fd = -1;
}

/* --- reading ---------------------------------------------------------- */

void ckpt_close(struct ckpt_file *f)
{
	free(f->map);
	memset(f, 0, sizeof *f);
}

int ckpt_open(int dirfd, const char *name, const uint8_t volume_id[VOLUME_ID_SIZE],
	      struct ckpt_file *f, const char **why)
{
	memset(f, 0, sizeof *f);
	*why = NULL;
	/* read, not mmap: a media error must be an error, not SIGBUS */
	uint8_t *m;
	size_t len;
	int r = fs_read_file(dirfd, name, &m, &len);
	if (r)
		return r;
	f->map = m;
	f->len = len;
	if (len < CKPT_HDR_SIZE + 8 + 1 + 16) {
		*why = "file too short";
		goto bad;
	}
	if (memcmp(m, CKPT_MAGIC, 8) || get_le64(m + 56) != sum64(m, 56, 0)) {
		*why = "bad header (magic or checksum)";
		goto bad;
	}
	if (get_le32(m + 8) != CKPT_VERSION) {
		*why = "unknown checkpoint format version";
		goto bad;
	}
	if (get_le64(m + len - 8) != sum64(m, len - 8, 0)) {
		*why = "checksum mismatch";
		goto bad;
	}
	f->hdr.kind = get_le32(m + 12);
	memcpy(f->hdr.volume_id, m + 16, VOLUME_ID_SIZE);
	f->hdr.id = get_le64(m + 32);
	f->hdr.from = get_le64(m + 40);
	f->hdr.upto = get_le64(m + 48);
	if (f->hdr.kind != CKPT_FULL && f->hdr.kind != CKPT_DELTA) {
		*why = "unknown checkpoint kind";
		goto bad;
	}
	if (memcmp(f->hdr.volume_id, volume_id, VOLUME_ID_SIZE)) {
		*why = "checkpoint belongs to another volume";
		goto bad;
	}
	if (f->hdr.upto == 0 || f->hdr.upto >= UINT32_MAX ||
	    (f->hdr.kind == CKPT_DELTA ? f->hdr.from >= f->hdr.upto : f->hdr.from != 0)) {
		*why = "impossible segment range";
		goto bad;
	}
	/* structure walk: every entry in bounds, keys increasing */
	const uint8_t *p = m + CKPT_HDR_SIZE, *end = m + len - 16;
	f->nsegs = get_le64(p);
	p += 8;
	if (f->nsegs > (uint64_t)(end - p) / CKPT_SEG_SIZE) {
		*why = "segment table runs past the end";
		goto bad;
	}
	f->segs = p;
	for (uint64_t i = 0; i < f->nsegs; i++) {
		struct ckpt_seg s;
		ckpt_get_seg(f, i, &s);
		if (s.id == 0 || s.id > f->hdr.upto || s.size < SEG_HDR_SIZE ||
		    s.size > SEG_MAX_FILE_SIZE || s.live > s.size - SEG_HDR_SIZE) {
			*why = "impossible segment entry";
			goto bad;
		}
	}
	p += f->nsegs * CKPT_SEG_SIZE;
	f->keys = p;
	uint64_t n = 0;
	const uint8_t *last = NULL;
	size_t lastlen = 0;
	for (;;) {
		if (p >= end) {
			*why = "key entries run past the end";
			goto bad;
		}
		uint8_t op = *p;
		if (op == 0)
			break;
		if (op != CKPT_PUT && op != CKPT_DEL) {
			*why = "bad key entry";
			goto bad;
		}
		if (end - p < 2) {
			*why = "key entries run past the end";
			goto bad;
		}
		size_t klen = p[1];
		size_t elen = 2 + klen + (op == CKPT_PUT ? 12 : 0);
		if (klen == 0 || (size_t)(end - p) < elen) {
			*why = "bad key entry";
			goto bad;
		}
		if (last && ix_keycmp(last, lastlen, p + 2, klen) >= 0) {
			*why = "keys out of order";
			goto bad;
		}
		if (op == CKPT_PUT) {
			const uint8_t *l = p + 2 + klen;
			uint64_t seg = get_le32(l), off = get_le32(l + 4), rlen = get_le32(l + 8);
			if (seg == 0 || seg > f->hdr.upto || off < SEG_HDR_SIZE ||
			    rlen < REC_HDR_SIZE + klen || off + rlen > SEG_MAX_FILE_SIZE) {
				*why = "impossible record location";
				goto bad;
			}
		}
		last = p + 2;
		lastlen = klen;
		p += elen;
		n++;
	}
	p++;
	if (p != end || get_le64(p) != n) {
		*why = "entry count mismatch";
		goto bad;
	}
	f->nkeys = n;
	return 0;
bad:
	ckpt_close(f);
	return -EBADMSG;
}

void ckpt_get_seg(const struct ckpt_file *f, uint64_t i, struct ckpt_seg *s)
{
	const uint8_t *p = f->segs + i * CKPT_SEG_SIZE;
	s->id = get_le64(p);
	s->size = get_le64(p + 8);
	s->live = get_le64(p + 16);
	s->flags = get_le64(p + 24);
}

int ckpt_next(const struct ckpt_file *f, const uint8_t **pos, struct ckpt_ent *e)
{
	(void)f;
	const uint8_t *p = *pos;
	if (*p == 0)
		return 0;
	e->op = p[0];
	e->klen = p[1];
	e->key = p + 2;
	p += 2 + e->klen;
	if (e->op == CKPT_PUT) {
		e->loc.seg = get_le32(p);
		e->loc.off = get_le32(p + 4);
		e->loc.len = get_le32(p + 8);
		p += 12;
	} else {
		memset(&e->loc, 0, sizeof e->loc);
	}
	*pos = p;
	return 1;
}

/* --- merging ---------------------------------------------------------- */

struct cursor {
	const struct ckpt_file *f;
	const uint8_t *pos;
	struct ckpt_ent e;
	size_t rank;	/* higher rank = newer input, wins on equal keys */
};

static bool cur_less(const struct cursor *a, const struct cursor *b)
{
	int c = ix_keycmp(a->e.key, a->e.klen, b->e.key, b->e.klen);
	return c < 0 || (c == 0 && a->rank > b->rank);
}

static void heap_down(struct cursor **h, size_t n, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < n && cur_less(h[l], h[m])) m = l;
		if (r < n && cur_less(h[r], h[m])) m = r;
		if (m == i)
			return;
		struct cursor *t = h[i];
		h[i] = h[m];
		h[m] = t;
		i = m;
	}
}

int ckpt_merge(int fd, const struct ckpt_hdr *h, const struct ckpt_file *base,
	       const struct ckpt_file *const *deltas, size_t ndeltas)
{
	size_t nin = ndeltas + (base ? 1 : 0);
	struct cursor *cs = calloc(nin ? nin : 1, sizeof *cs);
	struct cursor **heap = calloc(nin ? nin : 1, sizeof *heap);
	struct ckpt_seg *segs = calloc(h->upto + 1, sizeof *segs);
	int r = -ENOMEM;
	if (!cs || !heap || !segs)
		goto out;

	/* segment table: base first, then each delta overrides */
	for (size_t i = 0; i < nin; i++) {
		const struct ckpt_file *f = base ? (i == 0 ? base : deltas[i - 1]) : deltas[i];
		for (uint64_t j = 0; j < f->nsegs; j++) {
			struct ckpt_seg s;
			ckpt_get_seg(f, j, &s);
			if (s.id == 0 || s.id > h->upto) {
				r = -EBADMSG;
				goto out;
			}
			segs[s.id] = s;
		}
	}
	/* a segment a delta says was removed is no longer listed at all */
	uint64_t nsegs = 0;
	for (uint64_t i = 1; i <= h->upto; i++) {
		if (segs[i].flags & CKPT_SEG_REMOVED)
			segs[i].id = 0;
		nsegs += segs[i].id != 0;
	}

	struct ckpt_writer w;
	r = ckw_begin(&w, fd, h, nsegs);
	if (r)
		goto out;
	for (uint64_t i = 1; i <= h->upto; i++)
		if (segs[i].id)
			ckw_seg(&w, &segs[i]);

	size_t hn = 0;
	for (size_t i = 0; i < nin; i++) {
		cs[i].f = base ? (i == 0 ? base : deltas[i - 1]) : deltas[i];
		cs[i].pos = cs[i].f->keys;
		cs[i].rank = i;
		if (ckpt_next(cs[i].f, &cs[i].pos, &cs[i].e))
			heap[hn++] = &cs[i];
	}
	for (size_t i = hn; i-- > 0;)
		heap_down(heap, hn, i);
	while (hn) {
		struct cursor *top = heap[0];
		struct ckpt_ent win = top->e;
		if (win.op == CKPT_PUT)
			ckw_key(&w, CKPT_PUT, win.key, win.klen, &win.loc);
		/* advance every cursor sitting on this key */
		while (hn && ix_keycmp(heap[0]->e.key, heap[0]->e.klen, win.key, win.klen) == 0) {
			struct cursor *c = heap[0];
			if (ckpt_next(c->f, &c->pos, &c->e)) {
				heap_down(heap, hn, 0);
			} else {
				heap[0] = heap[--hn];
				heap_down(heap, hn, 0);
			}
		}
	}
	r = ckw_end(&w);
out:
	free(cs);
	free(heap);
	free(segs);
	return r;
}
