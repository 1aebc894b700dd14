/* fs/extent.c - planning a block write as base, extents and trims (see
 * extent.h for the layout and its invariants). */
#include <errno.h>

#include "extent.h"

uint32_t ext_block_len(const struct ext_block *b)
{
	uint32_t len = b->has_base ? b->base_len : 0;
	if (b->n) {
		const struct ext *last = &b->e[b->n - 1];
		if (last->off + last->len > len)
			len = last->off + last->len;
	}
	return len;
}

int ext_block_check(const struct ext_block *b, uint32_t blksize)
{
	if (b->n > EXT_MAX || (b->has_base && b->base_len > blksize))
		return -EIO;
	for (size_t i = 0; i < b->n; i++) {
		const struct ext *x = &b->e[i];
		if (!x->len || x->off >= blksize || x->len > blksize - x->off)
			return -EIO;
		if (i && x->off < b->e[i - 1].off + b->e[i - 1].len)
			return -EIO;	/* overlaps or out of order */
	}
	return 0;
}

static void add(struct ext_plan *p, enum ext_op_kind kind, bool base, uint32_t off,
		uint32_t len, uint32_t src)
{
	p->op[p->n++] = (struct ext_op){ kind, base, off, len, src };
}

void ext_plan(const struct ext_block *b, uint32_t s, uint32_t e, struct ext_plan *p)
{
	p->fold = false;
	p->n = 0;
	if (s == 0 && e >= ext_block_len(b)) {
		/* the write covers everything the block holds: it is the base */
		add(p, EXT_PUT_WRITE, true, 0, e, 0);
		for (size_t i = 0; i < b->n; i++)
			add(p, EXT_DEL, false, b->e[i].off, 0, 0);
		return;
	}
	size_t after = 1;	/* extents once the write is in: its own... */
	uint64_t kept = 0;	/* bytes the trims re-append */
	for (size_t i = 0; i < b->n; i++) {
		const struct ext *x = &b->e[i];
		uint32_t end = x->off + x->len;
		if (end <= s || x->off >= e) {
			after++;	/* ...those it does not touch... */
			continue;
		}
		if (x->off < s) {	/* ...the pieces it leaves of the others */
			add(p, EXT_PUT_PIECE, false, x->off, s - x->off, x->off);
			kept += s - x->off;
			after++;
		} else if (x->off > s) {
			add(p, EXT_DEL, false, x->off, 0, 0);
		}	/* x->off == s: the write's put replaces it */
		if (end > e) {
			add(p, EXT_PUT_PIECE, false, e, end - e, x->off);
			kept += end - e;
			after++;
		}
	}
	if (after > EXT_MAX || kept > EXT_TRIM_MAX) {
		p->fold = true;
		p->n = 0;
		return;
	}
	add(p, EXT_PUT_WRITE, false, s, e - s, 0);
}

uint32_t ext_fold_len(const struct ext_block *b, uint32_t e, uint32_t limit)
{
	uint32_t len = ext_block_len(b);
	if (e > len)
		len = e;
	return len < limit ? len : limit;
}
