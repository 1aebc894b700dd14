/* cache/index.c - see index.h */
#include "index.h"

#include <errno.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#define IX_MAXLEVEL 24	/* 4^24 keys before levels saturate */

/* A node is one allocation: a 14-byte header, the key, padding to 8 bytes,
 * then `level` next pointers. Putting the key before the pointers keeps a
 * 17-byte block key with one level in a 48-byte malloc chunk. */
struct ix_node {
	uint32_t seg, off, len;
	uint8_t klen;
	uint8_t level;
	uint8_t key[];
};

#define NODE_HDR 14u

static inline size_t ptr_off(size_t klen)
{
	return (NODE_HDR + klen + 7) & ~(size_t)7;
}

static inline struct ix_node **nexts(const struct ix_node *n)
{
	return (struct ix_node **)((uint8_t *)n + ptr_off(n->klen));
}

#define NEXT(n, i) (nexts(n)[i])

struct index {
	struct ix_node *head;	/* sentinel with IX_MAXLEVEL pointers */
	int level;		/* levels in use, >= 1 */
	size_t count;
	size_t count_first[256];	/* keys by their first byte */
	size_t bytes;
	uint64_t rng;		/* xorshift state for node levels */
};

static inline uint8_t *node_key(const struct ix_node *n)
{
	return (uint8_t *)n->key;
}

static inline struct ix_loc loc_of(const struct ix_node *n)
{
	return (struct ix_loc){ n->seg, n->off, n->len };
}

static inline void set_loc(struct ix_node *n, struct ix_loc l)
{
	n->seg = l.seg;
	n->off = l.off;
	n->len = l.len;
}

/* Allocated size of a block, including glibc's per-chunk header word. */
static size_t alloc_size(void *p)
{
	return malloc_usable_size(p) + sizeof(size_t);
}

int ix_keycmp(const void *a, size_t alen, const void *b, size_t blen)
{
	size_t n = alen < blen ? alen : blen;
	int c = n ? memcmp(a, b, n) : 0;
	if (c)
		return c;
	return alen < blen ? -1 : alen > blen;
}

static inline int node_cmp(const struct ix_node *n, const void *key, size_t klen)
{
	return ix_keycmp(node_key(n), n->klen, key, klen);
}

struct index *ix_new(void)
{
	struct index *ix = calloc(1, sizeof *ix);
	if (!ix)
		return NULL;
	ix->head = calloc(1, ptr_off(0) + IX_MAXLEVEL * sizeof(void *));
	if (!ix->head) {
		free(ix);
		return NULL;
	}
	ix->head->level = IX_MAXLEVEL;
	ix->level = 1;
	ix->rng = 0x9e3779b97f4a7c15ull;
	ix->bytes = alloc_size(ix) + alloc_size(ix->head);
	return ix;
}

void ix_free(struct index *ix)
{
	if (!ix)
		return;
	struct ix_node *n = NEXT(ix->head, 0);
	while (n) {
		struct ix_node *nx = NEXT(n, 0);
		free(n);
		n = nx;
	}
	free(ix->head);
	free(ix);
}

static int random_level(struct index *ix)
{
	uint64_t x = ix->rng;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	ix->rng = x;
	int lvl = 1;
	/* p = 1/4 per level, two bits at a time */
	while (lvl < IX_MAXLEVEL && (x & 3) == 0) {
		lvl++;
		x >>= 2;
	}
	return lvl;
}

/* Fill update[] with the last node before key at each level; returns the
 * candidate node at level 0 (first node >= key) */
static struct ix_node *find(const struct index *ix, const void *key, size_t klen,
			    struct ix_node **update)
{
	struct ix_node *x = ix->head;
	for (int i = ix->level - 1; i >= 0; i--) {
		while (NEXT(x, i) && node_cmp(NEXT(x, i), key, klen) < 0)
			x = NEXT(x, i);
		if (update)
			update[i] = x;
	}
	return NEXT(x, 0);
}

int ix_put(struct index *ix, const void *key, size_t klen, struct ix_loc loc,
	   struct ix_loc *old)
{
	struct ix_node *update[IX_MAXLEVEL];
	struct ix_node *x = find(ix, key, klen, update);
	if (x && node_cmp(x, key, klen) == 0) {
		if (old)
			*old = loc_of(x);
		set_loc(x, loc);
		return 1;
	}
	int lvl = random_level(ix);
	struct ix_node *n = malloc(ptr_off(klen) + (size_t)lvl * sizeof(void *));
	if (!n)
		return -ENOMEM;
	set_loc(n, loc);
	n->klen = (uint8_t)klen;
	n->level = (uint8_t)lvl;
	memcpy(node_key(n), key, klen);
	if (lvl > ix->level) {
		for (int i = ix->level; i < lvl; i++)
			update[i] = ix->head;
		ix->level = lvl;
	}
	for (int i = 0; i < lvl; i++) {
		NEXT(n, i) = NEXT(update[i], i);
		NEXT(update[i], i) = n;
	}
	ix->count++;
	if (klen)
		ix->count_first[((const uint8_t *)key)[0]]++;
	ix->bytes += alloc_size(n);
	return 0;
}

int ix_get(const struct index *ix, const void *key, size_t klen,
	   struct ix_loc *loc)
{
	struct ix_node *x = find(ix, key, klen, NULL);
	if (!x || node_cmp(x, key, klen) != 0)
		return -ENOENT;
	*loc = loc_of(x);
	return 0;
}

int ix_del(struct index *ix, const void *key, size_t klen, struct ix_loc *old)
{
	struct ix_node *update[IX_MAXLEVEL];
	struct ix_node *x = find(ix, key, klen, update);
	if (!x || node_cmp(x, key, klen) != 0)
		return -ENOENT;
	for (int i = 0; i < x->level; i++)
		NEXT(update[i], i) = NEXT(x, i);
	while (ix->level > 1 && !NEXT(ix->head, ix->level - 1))
		ix->level--;
	if (old)
		*old = loc_of(x);
	ix->count--;
	if (x->klen)
		ix->count_first[node_key(x)[0]]--;
	ix->bytes -= alloc_size(x);
	free(x);
	return 0;
}

const struct ix_node *ix_seek(const struct index *ix, const void *key,
			      size_t klen, bool after)
{
	struct ix_node *x = find(ix, key, klen, NULL);
	if (after && x && node_cmp(x, key, klen) == 0)
		x = NEXT(x, 0);
	return x;
}

const struct ix_node *ix_next(const struct ix_node *n)
{
	return NEXT(n, 0);
}

const uint8_t *ix_node_key(const struct ix_node *n, size_t *klen)
{
	*klen = n->klen;
	return node_key(n);
}

struct ix_loc ix_node_loc(const struct ix_node *n)
{
	return loc_of(n);
}

size_t ix_count(const struct index *ix)
{
	return ix->count;
}

size_t ix_count_first(const struct index *ix, uint8_t first)
{
	return ix->count_first[first];
}

size_t ix_bytes(const struct index *ix)
{
	return ix->bytes;
}
