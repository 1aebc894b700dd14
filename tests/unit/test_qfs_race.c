/* tests/unit/test_qfs_race.c - the filesystem layer (fs/qfs_*.c) under
 * concurrent namespace changes, without FUSE in between (the kernel's
 * dentry cache would hide most lookups).
 *
 * A lookup does not take the namespace lock: it reads the entry, then the
 * inode. One thread creates and unlinks names while others look them up
 * and stat them; every answer must be 0 or ENOENT, never EIO (an entry
 * read just before an unlink whose inode is purged before it is read). */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "testutil.h"
#include "../../fs/qfs.h"

#define ROOT 1
#define NAMES 4
#define ROUNDS 4000

struct race {
	struct qfs *fs;
	atomic_bool stop;
	atomic_int bad;		/* answers other than 0 / ENOENT */
	atomic_long found;	/* lookups that found the file */
	atomic_int churn_errors;	/* creates/unlinks that failed (counted: cmocka's
				 * asserts must stay on the main thread) */
	int last_bad;
};

static void *churn(void *arg)
{
	struct race *r = arg;
	char name[16];
	for (int i = 0; i < ROUNDS; i++) {
		snprintf(name, sizeof name, "f%d", i % NAMES);
		struct stat st;
		int e = qfs_mknod(r->fs, ROOT, name, S_IFREG | 0644, 0, 0, 0, 0, NULL, &st);
		if (e) {
			atomic_fetch_add(&r->churn_errors, 1);
			continue;
		}
		qfs_forget(r->fs, st.st_ino, 1);	/* as the kernel would, later */
		if (qfs_unlink(r->fs, ROOT, name))
			atomic_fetch_add(&r->churn_errors, 1);
	}
	atomic_store(&r->stop, true);
	return NULL;
}

static void *look(void *arg)
{
	struct race *r = arg;
	char name[16];
	for (unsigned i = 0; !atomic_load(&r->stop); i++) {
		snprintf(name, sizeof name, "f%u", i % NAMES);
		struct stat st;
		int e = qfs_lookup(r->fs, ROOT, name, &st);
		if (e == 0) {
			atomic_fetch_add(&r->found, 1);
			if (!S_ISREG(st.st_mode))
				atomic_fetch_add(&r->bad, 1);
			qfs_forget(r->fs, st.st_ino, 1);
		} else if (e != -ENOENT) {
			atomic_fetch_add(&r->bad, 1);
			r->last_bad = e;
		}
	}
	return NULL;
}

static void test_lookup_during_unlink(void **state)
{
	(void)state;
	char *dir = tu_mkdtemp();
	struct cache *c = tu_open(dir, 4 << 20, NULL);
	struct qfs_opts o = { .cache = c, .cache_dir = dir };
	struct race r = { 0 };
	assert_int_equal(qfs_open(&o, &r.fs), 0);
	pthread_t w, l[2];
	assert_int_equal(pthread_create(&w, NULL, churn, &r), 0);
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&l[i], NULL, look, &r), 0);
	pthread_join(w, NULL);
	for (int i = 0; i < 2; i++)
		pthread_join(l[i], NULL);
	assert_int_equal(atomic_load(&r.churn_errors), 0);
	if (atomic_load(&r.bad))
		fail_msg("%d lookups failed (last: %s) while %d files were created and unlinked",
			 atomic_load(&r.bad), strerror(-r.last_bad), ROUNDS);
	/* the lookups met the files: the race was there to be lost */
	print_message("# %ld lookups found a file\n", atomic_load(&r.found));
	/* nothing is left behind */
	struct stat st;
	for (int i = 0; i < NAMES; i++) {
		char name[16];
		snprintf(name, sizeof name, "f%d", i);
		assert_int_equal(qfs_lookup(r.fs, ROOT, name, &st), -ENOENT);
	}
	qfs_close(r.fs);
	assert_int_equal(cache_close(c), 0);
	tu_rmrf(dir);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lookup_during_unlink),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
