/* tests/unit/test_index.c - the ordered index against a simple model. */
#include "testutil.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "index.h"

/* Model: a fixed universe of keys with a present flag and a location. */
#define NK 2000

struct mkey {
	uint8_t k[40];
	size_t klen;
	bool present;
	struct ix_loc loc;
};

static int mkey_cmp(const void *a, const void *b)
{
	const struct mkey *x = a, *y = b;
	return ix_keycmp(x->k, x->klen, y->k, y->klen);
}

static void test_index_random_vs_model(void **state)
{
	(void)state;
	static struct mkey m[NK];
	srand(12345);
	for (int i = 0; i < NK; i++) {
		/* binary keys, varied lengths, with shared prefixes and zero bytes */
		m[i].klen = 1 + (size_t)(rand() % 39);
		for (size_t j = 0; j < m[i].klen; j++)
			m[i].k[j] = (uint8_t)(j < 3 ? rand() % 3 : rand() % 256);
	}
	qsort(m, NK, sizeof *m, mkey_cmp);
	/* drop duplicates */
	int n = 0;
	for (int i = 0; i < NK; i++)
		if (!n || mkey_cmp(&m[n - 1], &m[i]))
			m[n++] = m[i];
	struct index *ix = ix_new();
	assert_non_null(ix);
	size_t count = 0;
	for (int step = 0; step < 60000; step++) {
		struct mkey *k = &m[rand() % n];
		int op = rand() % 10;
		if (op < 5) {
			struct ix_loc loc = { (uint32_t)rand(), (uint32_t)rand(), (uint32_t)rand() }, old;
			int r = ix_put(ix, k->k, k->klen, loc, &old);
			assert_int_equal(r, k->present ? 1 : 0);
			if (k->present)
				assert_memory_equal(&old, &k->loc, sizeof old);
			else
				count++;
			k->present = true;
			k->loc = loc;
		} else if (op < 8) {
			struct ix_loc old;
			int r = ix_del(ix, k->k, k->klen, &old);
			assert_int_equal(r, k->present ? 0 : -ENOENT);
			if (k->present) {
				assert_memory_equal(&old, &k->loc, sizeof old);
				count--;
			}
			k->present = false;
		} else {
			struct ix_loc loc;
			int r = ix_get(ix, k->k, k->klen, &loc);
			assert_int_equal(r, k->present ? 0 : -ENOENT);
			if (k->present)
				assert_memory_equal(&loc, &k->loc, sizeof loc);
		}
		assert_int_equal(ix_count(ix), count);
		if (step % 5000 == 0) {
			/* full ordered walk equals the model's present keys */
			const struct ix_node *x = ix_seek(ix, NULL, 0, false);
			for (int i = 0; i < n; i++) {
				if (!m[i].present)
					continue;
				assert_non_null(x);
				size_t kl;
				const uint8_t *kk = ix_node_key(x, &kl);
				assert_int_equal(kl, m[i].klen);
				assert_memory_equal(kk, m[i].k, kl);
				x = ix_next(x);
			}
			assert_null(x);
			/* seek: first key >= probe, and > probe with after */
			for (int t = 0; t < 200; t++) {
				struct mkey *p = &m[rand() % n];
				int first = -1, firstafter = -1;
				for (int i = 0; i < n; i++) {
					if (!m[i].present)
						continue;
					int c = mkey_cmp(&m[i], p);
					if (c >= 0 && first < 0)
						first = i;
					if (c > 0 && firstafter < 0)
						firstafter = i;
				}
				const struct ix_node *a = ix_seek(ix, p->k, p->klen, false);
				const struct ix_node *b = ix_seek(ix, p->k, p->klen, true);
				if (first < 0) {
					assert_null(a);
				} else {
					size_t kl;
					const uint8_t *kk = ix_node_key(a, &kl);
					assert_int_equal(ix_keycmp(kk, kl, m[first].k, m[first].klen), 0);
				}
				if (firstafter < 0) {
					assert_null(b);
				} else {
					size_t kl;
					const uint8_t *kk = ix_node_key(b, &kl);
					assert_int_equal(ix_keycmp(kk, kl, m[firstafter].k, m[firstafter].klen), 0);
				}
			}
		}
	}
	ix_free(ix);
}

static void test_index_memory_per_key(void **state)
{
	(void)state;
	struct index *ix = ix_new();
	size_t base = ix_bytes(ix);
	/* filesystem block keys: 'B', inode, block number: 17 bytes */
	for (uint64_t i = 0; i < 100000; i++) {
		uint8_t k[17];
		k[0] = 'B';
		for (int j = 0; j < 8; j++) {
			k[1 + j] = (uint8_t)((i / 64) >> (56 - 8 * j));
			k[9 + j] = (uint8_t)((i % 64) >> (56 - 8 * j));
		}
		struct ix_loc loc = { 1, (uint32_t)i, 100 };
		assert_int_equal(ix_put(ix, k, sizeof k, loc, NULL), 0);
	}
	double per = (double)(ix_bytes(ix) - base) / 100000.0;
	print_message("# index bytes per 17-byte key: %.1f\n", per);
	assert_true(per < 100.0);
	assert_true(per > 17.0);	/* the measure is not vacuous */
	/* deleting everything returns to the empty size */
	for (uint64_t i = 0; i < 100000; i++) {
		uint8_t k[17];
		k[0] = 'B';
		for (int j = 0; j < 8; j++) {
			k[1 + j] = (uint8_t)((i / 64) >> (56 - 8 * j));
			k[9 + j] = (uint8_t)((i % 64) >> (56 - 8 * j));
		}
		assert_int_equal(ix_del(ix, k, sizeof k, NULL), 0);
	}
	assert_int_equal(ix_bytes(ix), base);
	assert_int_equal(ix_count(ix), 0);
	ix_free(ix);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_index_random_vs_model),
		cmocka_unit_test(test_index_memory_per_key),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
