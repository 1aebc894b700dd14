/* fs/txn.c - see txn.h. */
#include "txn.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void txn_init(struct txn *t)
{
	memset(t, 0, sizeof *t);
}

/* Copy len bytes into t->buf; returns their offset, or sets t->err. */
static size_t keep(struct txn *t, const void *p, size_t len)
{
	if (t->used + len > t->cap) {
		size_t nc = t->cap ? t->cap : 512;
		while (nc < t->used + len)
			nc *= 2;
		uint8_t *nb = realloc(t->buf, nc);
		if (!nb) {
			t->err = -ENOMEM;
			return 0;
		}
		t->buf = nb;
		t->cap = nc;
	}
	size_t off = t->used;
	if (len)
		memcpy(t->buf + off, p, len);
	t->used += len;
	return off;
}

static void add(struct txn *t, bool del, const void *key, size_t klen, const void *val,
		size_t vlen)
{
	if (t->err)
		return;
	if (t->n == TXN_MAX_OPS) {
		t->err = -E2BIG;
		return;
	}
	size_t i = t->n;
	t->koff[i] = keep(t, key, klen);
	t->voff[i] = keep(t, val, vlen);
	if (t->err)
		return;
	t->op[i] = (struct cache_op){ .del = del, .klen = klen, .vlen = vlen };
	t->n++;
}

void txn_put(struct txn *t, const void *key, size_t klen, const void *val, size_t vlen)
{
	add(t, false, key, klen, val, vlen);
}

void txn_del(struct txn *t, const void *key, size_t klen)
{
	add(t, true, key, klen, NULL, 0);
}

int txn_commit(struct txn *t, struct cache *c)
{
	int e = t->err;
	if (!e && t->n) {
		/* buf no longer moves: point the ops at it */
		for (size_t i = 0; i < t->n; i++) {
			t->op[i].key = t->buf + t->koff[i];
			t->op[i].val = t->buf + t->voff[i];
		}
		e = cache_apply(c, t->op, t->n);
	}
	txn_free(t);
	return e;
}

void txn_free(struct txn *t)
{
	free(t->buf);
	txn_init(t);
}
