/* tests/unit/test_backend.c - dir://, redis:// and zdb:// backends: redis://
 * against real redis-server processes on 127.0.0.1 started here, zdb://
 * against the 0-db double (tests/zdbd.py), and a hostile peer that answers
 * garbage in either dialect. */
#include "testutil.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <errno.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend.h"

static struct backend *open_url(const char *url)
{
	struct backend_url u;
	const char *why;
	assert_int_equal(backend_url_parse(url, &u, &why), 0);
	struct backend *b;
	assert_int_equal(backend_open(&u, 2000, &b), 0);
	backend_url_free(&u);
	return b;
}

/* The same behaviour checks for any backend. */
static void exercise(struct backend *b)
{
	uint8_t *v;
	size_t n;
	assert_int_equal(backend_get(b, "vol1/obj/1", &v, &n), -ENOENT);
	assert_int_equal(backend_put(b, "vol1/obj/1", "hello", 5), 0);
	assert_int_equal(backend_get(b, "vol1/obj/1", &v, &n), 0);
	assert_int_equal(n, 5);
	assert_memory_equal(v, "hello", 5);
	free(v);
	assert_int_equal(backend_put(b, "vol1/obj/1", "", 0), 0);	/* overwrite, empty */
	assert_int_equal(backend_get(b, "vol1/obj/1", &v, &n), 0);
	assert_int_equal(n, 0);
	free(v);
	/* binary, largest allowed */
	uint8_t *big = malloc(BACKEND_MAX_VALUE + 1);
	for (size_t i = 0; i <= BACKEND_MAX_VALUE; i++)
		big[i] = (uint8_t)(i * 31 + (i >> 13));
	assert_int_equal(backend_put(b, "vol1/big", big, BACKEND_MAX_VALUE), 0);
	assert_int_equal(backend_get(b, "vol1/big", &v, &n), 0);
	assert_int_equal(n, BACKEND_MAX_VALUE);
	assert_memory_equal(v, big, n);
	free(v);
	assert_int_equal(backend_put(b, "vol1/big", big, BACKEND_MAX_VALUE + 1), -EINVAL);
	free(big);
	assert_int_equal(backend_del(b, "vol1/obj/1"), 0);
	assert_int_equal(backend_get(b, "vol1/obj/1", &v, &n), -ENOENT);
	assert_int_equal(backend_del(b, "vol1/obj/1"), 0);	/* absent is fine */
	/* keys that could escape a directory or confuse a server */
	assert_int_equal(backend_put(b, "../x", "x", 1), -EINVAL);
	assert_int_equal(backend_put(b, "/abs", "x", 1), -EINVAL);
	assert_int_equal(backend_put(b, "a b", "x", 1), -EINVAL);
	assert_int_equal(backend_put(b, "", "x", 1), -EINVAL);
	assert_int_equal(backend_health(b).state, BACKEND_UP);
}

static void test_dir_backend(void **state)
{
	(void)state;
	char *dir = tu_mkdtemp();
	char url[600];
	snprintf(url, sizeof url, "dir://%s/b1", dir);
	struct backend *b = open_url(url);
	exercise(b);
	backend_close(b);
	tu_rmrf(dir);
	free(dir);
}

/* Two writers putting one key at once (qsfs-fs and qsfs-stor both write
 * the lease) through their own handles: every put succeeds, and a read
 * always finds one writer's whole value, never a mix or nothing. */
struct putter {
	struct backend *b;
	uint8_t fill;
	size_t len;
	int fails;
};

static void *put_loop(void *arg)
{
	struct putter *p = arg;
	uint8_t *v = malloc(p->len);
	memset(v, p->fill, p->len);
	for (int i = 0; i < 300; i++)
		if (backend_put(p->b, "vol1/lease", v, p->len))
			p->fails++;
	free(v);
	return NULL;
}

static void test_dir_concurrent_puts(void **state)
{
	(void)state;
	char *dir = tu_mkdtemp();
	char url[600];
	snprintf(url, sizeof url, "dir://%s/b1", dir);
	struct putter p[2] = { { open_url(url), 0xaa, 70000, 0 }, { open_url(url), 0x55, 3000, 0 } };
	pthread_t t[2];
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&t[i], NULL, put_loop, &p[i]), 0);
	struct backend *r = open_url(url);
	int reads = 0;
	for (int i = 0; i < 2; i++) {
		while (pthread_tryjoin_np(t[i], NULL) == EBUSY) {
			uint8_t *v;
			size_t n;
			int e = backend_get(r, "vol1/lease", &v, &n);
			if (e == -ENOENT)
				continue;	/* before the first rename */
			assert_int_equal(e, 0);
			assert_true(n == 70000 || n == 3000);
			for (size_t j = 0; j < n; j++)
				assert_int_equal(v[j], n == 70000 ? 0xaa : 0x55);
			free(v);
			reads++;
		}
	}
	assert_int_equal(p[0].fails, 0);
	assert_int_equal(p[1].fails, 0);
	assert_int_equal(backend_health(p[0].b).state, BACKEND_UP);
	print_message("# %d reads during the puts\n", reads);
	for (int i = 0; i < 2; i++)
		backend_close(p[i].b);
	backend_close(r);
	tu_rmrf(dir);
	free(dir);
}

static void test_redis_backend(void **state)
{
	(void)state;
	int port = tu_free_port();
	pid_t pid = tu_redis_start(port, "s3cret");
	char url[128];
	snprintf(url, sizeof url, "redis://:s3cret@127.0.0.1:%d/3", port);
	struct backend *b = open_url(url);
	assert_null(strstr(backend_name(b), "s3cret"));
	exercise(b);
	/* database 3 is not database 0 */
	assert_int_equal(backend_put(b, "iso", "3", 1), 0);
	snprintf(url, sizeof url, "redis://:s3cret@127.0.0.1:%d/0", port);
	struct backend *b0 = open_url(url);
	uint8_t *v;
	size_t n;
	assert_int_equal(backend_get(b0, "iso", &v, &n), -ENOENT);
	backend_close(b0);

	/* wrong password: a clear error, health down */
	snprintf(url, sizeof url, "redis://:wrong@127.0.0.1:%d", port);
	struct backend *bad = open_url(url);
	assert_int_equal(backend_put(bad, "k", "v", 1), -EIO);
	struct backend_health h = backend_health(bad);
	assert_int_equal(h.state, BACKEND_DOWN);
	assert_non_null(strstr(h.last_error, "AUTH refused"));
	backend_close(bad);

	/* the server dies: errors, then after it is back, reconnection */
	tu_redis_stop(pid);
	assert_int_equal(backend_get(b, "iso", &v, &n), -EIO);
	h = backend_health(b);
	assert_int_equal(h.state, BACKEND_DOWN);
	assert_true(h.last_error[0] != 0);
	pid = tu_redis_start(port, "s3cret");
	int r = -EIO;
	for (int i = 0; i < 100 && r; i++) {	/* backoff: a few seconds at most */
		usleep(100000);
		r = backend_put(b, "again", "ok", 2);
	}
	assert_int_equal(r, 0);
	assert_int_equal(backend_health(b).state, BACKEND_UP);

	/* the server restarts between two requests of a kept connection: the
	 * next request goes through on a new connection (no error reaches
	 * the caller: a restarted backend must not cost a read its shard) */
	tu_redis_stop(pid);
	pid = tu_redis_start(port, "s3cret");
	assert_int_equal(backend_put(b, "after", "restart", 7), 0);
	assert_int_equal(backend_get(b, "after", &v, &n), 0);
	assert_int_equal(n, 7);
	free(v);
	tu_redis_stop(pid);
	pid = tu_redis_start(port, "s3cret");
	assert_int_equal(backend_get(b, "after", &v, &n), -ENOENT);	/* no persistence here */
	assert_int_equal(backend_health(b).state, BACKEND_UP);
	backend_close(b);
	tu_redis_stop(pid);
}

/* backend_scan: what it lists, for the prefix given. */
struct listing {
	char keys[4096][64];
	uint64_t sizes[4096];
	size_t n;
	size_t stop_after;	/* 0: never stop */
};

static int list_cb(void *arg, const char *key, uint64_t size)
{
	struct listing *l = arg;
	assert_true(l->n < 4096);
	assert_true(strlen(key) < 64);
	snprintf(l->keys[l->n], 64, "%s", key);
	l->sizes[l->n++] = size;
	return l->stop_after && l->n == l->stop_after ? 7 : 0;
}

/* The size listed for key, or -1 when it was not listed (once at most). */
static long long listed(const struct listing *l, const char *key)
{
	long long size = -1;
	for (size_t i = 0; i < l->n; i++) {
		if (!strcmp(l->keys[i], key)) {
			assert_int_equal(size, -1);	/* listed twice */
			size = (long long)l->sizes[i];
		}
	}
	return size;
}

static void scan_checks(struct backend *b, size_t many)
{
	static struct listing l;
	assert_int_equal(backend_put(b, "v1/o/s1/0.0", "hello", 5), 0);
	assert_int_equal(backend_put(b, "v1/o/s1/1.0.g2", "abc", 3), 0);
	assert_int_equal(backend_put(b, "v1/m/s1", "metadat", 7), 0);
	assert_int_equal(backend_put(b, "v1/catalog", "", 0), 0);
	assert_int_equal(backend_put(b, "v1x/o/s1/0.0", "other", 5), 0);
	assert_int_equal(backend_put(b, "v2/m/s1", "other", 5), 0);
	for (size_t i = 0; i < many; i++) {
		char k[64];
		snprintf(k, sizeof k, "v1/many/%zu", i);
		assert_int_equal(backend_put(b, k, k, strlen(k)), 0);
	}
	memset(&l, 0, sizeof l);
	assert_int_equal(backend_scan(b, "v1/", list_cb, &l), 0);
	assert_int_equal(l.n, 4 + many);
	assert_int_equal(listed(&l, "v1/o/s1/0.0"), 5);
	assert_int_equal(listed(&l, "v1/o/s1/1.0.g2"), 3);
	assert_int_equal(listed(&l, "v1/m/s1"), 7);
	assert_int_equal(listed(&l, "v1/catalog"), 0);
	assert_int_equal(listed(&l, "v1/many/0"), 9);
	assert_int_equal(listed(&l, "v1x/o/s1/0.0"), -1);
	/* a prefix that ends mid-name, and one deeper down */
	memset(&l, 0, sizeof l);
	assert_int_equal(backend_scan(b, "v1", list_cb, &l), 0);
	assert_int_equal(l.n, 5 + many);
	assert_int_equal(listed(&l, "v1x/o/s1/0.0"), 5);
	memset(&l, 0, sizeof l);
	assert_int_equal(backend_scan(b, "v1/o/s1/1", list_cb, &l), 0);
	assert_int_equal(l.n, 1);
	assert_int_equal(listed(&l, "v1/o/s1/1.0.g2"), 3);
	memset(&l, 0, sizeof l);
	assert_int_equal(backend_scan(b, "nothing/", list_cb, &l), 0);
	assert_int_equal(l.n, 0);
	/* the callback stops it, and its value comes back */
	memset(&l, 0, sizeof l);
	l.stop_after = 2;
	assert_int_equal(backend_scan(b, "v1/", list_cb, &l), 7);
	assert_int_equal(l.n, 2);
	assert_int_equal(backend_scan(b, "../", list_cb, &l), -EINVAL);
	assert_int_equal(backend_scan(b, "a*", list_cb, &l), -EINVAL);
	/* removed keys are not listed */
	assert_int_equal(backend_del(b, "v1/m/s1"), 0);
	memset(&l, 0, sizeof l);
	assert_int_equal(backend_scan(b, "v1/", list_cb, &l), 0);
	assert_int_equal(l.n, 3 + many);
	assert_int_equal(listed(&l, "v1/m/s1"), -1);
	assert_int_equal(backend_health(b).state, BACKEND_UP);
}

static void test_dir_scan(void **state)
{
	(void)state;
	char *dir = tu_mkdtemp();
	char url[600], p[700];
	snprintf(url, sizeof url, "dir://%s/b1", dir);
	struct backend *b = open_url(url);
	scan_checks(b, 30);
	/* a put's temp file (in flight or killed) is no key */
	snprintf(p, sizeof p, "%s/b1/v1/o/s1/2.0.tmp-AbC123", dir);
	int fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "x", 1), 1);
	close(fd);
	static struct listing l;
	memset(&l, 0, sizeof l);
	assert_int_equal(backend_scan(b, "v1/o/", list_cb, &l), 0);
	assert_int_equal(l.n, 2);
	assert_int_equal(listed(&l, "v1/o/s1/2.0.tmp-AbC123"), -1);
	/* the backend's directory gone: an error, not an empty listing */
	snprintf(p, sizeof p, "%s/b1", dir);
	tu_rmrf(p);
	assert_int_equal(backend_scan(b, "v1/", list_cb, &l), -EIO);
	assert_int_equal(backend_health(b).state, BACKEND_DOWN);
	backend_close(b);
	tu_rmrf(dir);
	free(dir);
}

static void test_redis_scan(void **state)
{
	(void)state;
	int port = tu_free_port();
	pid_t pid = tu_redis_start(port, NULL);
	char url[128];
	snprintf(url, sizeof url, "redis://127.0.0.1:%d/2", port);
	struct backend *b = open_url(url);
	scan_checks(b, 2500);	/* several SCAN rounds (COUNT 1000) */
	tu_redis_stop(pid);
	static struct listing l;
	memset(&l, 0, sizeof l);
	assert_int_equal(backend_scan(b, "v1/", list_cb, &l), -EIO);
	assert_int_equal(backend_health(b).state, BACKEND_DOWN);
	backend_close(b);
}

/* A TCP socket listening on 127.0.0.1 at a port the kernel picks; url gets
 * the URL of the dialect scheme ("redis" or "zdb") that reaches it. */
static int listen_loopback(const char *scheme, char *url, size_t len)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
	listen(fd, 4);
	socklen_t l = sizeof a;
	getsockname(fd, (struct sockaddr *)&a, &l);
	snprintf(url, len, "%s://127.0.0.1:%d%s", scheme, ntohs(a.sin_port),
		 strcmp(scheme, "zdb") ? "" : "/vol");
	return fd;
}

/* A peer that answers every request with a fixed garbage reply. */
struct hostile {
	int lfd;
	const char *reply;
};

static void *hostile_main(void *arg)
{
	struct hostile *h = arg;
	for (;;) {
		int c = accept(h->lfd, NULL, NULL);
		if (c < 0)
			return NULL;
		char buf[65536];
		while (read(c, buf, sizeof buf) > 0)
			if (write(c, h->reply, strlen(h->reply)) < 0)
				break;
		close(c);
	}
}

static const char *const dialects[] = { "redis", "zdb" };

/* Every garbage reply fails a GET (and a SET but for "+OK") in dialect
 * scheme, with the health record down. */
static void hostile_peer(const char *scheme)
{
	const char *replies[] = {
		"+OK\r\n",			/* a status where a value is due */
		"$99999999999\r\nxx",		/* an absurd length */
		"this is not RESP at all\r\n",
		":12\r\n",			/* an integer */
		"*1\r\n$1\r\nx\r\n",		/* an array */
	};
	for (size_t i = 0; i < sizeof replies / sizeof *replies; i++) {
		struct hostile h = { .reply = replies[i] };
		char url[64];
		h.lfd = listen_loopback(scheme, url, sizeof url);
		pthread_t th;
		pthread_create(&th, NULL, hostile_main, &h);
		struct backend *b = open_url(url);
		uint8_t *v = NULL;
		size_t n;
		int r = backend_get(b, "k", &v, &n);
		assert_int_equal(r, -EIO);
		assert_null(v);
		assert_int_equal(backend_health(b).state, BACKEND_DOWN);
		if (i != 0) {	/* "+OK" is a fine answer to SET (and zdb's SELECT) */
			assert_int_equal(backend_put(b, "k", "v", 1), -EIO);
		}
		backend_close(b);
		shutdown(h.lfd, SHUT_RDWR);
		close(h.lfd);
		pthread_join(th, NULL);
	}
}

static void test_hostile_peer(void **state)
{
	(void)state;
	for (size_t d = 0; d < 2; d++)
		hostile_peer(dialects[d]);
}

/* A peer that announces a 4 GB value and then sends bytes for as long as
 * anyone reads them. */
struct flood {
	int lfd;
	size_t sent;
};

static void *flood_main(void *arg)
{
	struct flood *f = arg;
	int c = accept(f->lfd, NULL, NULL);
	if (c < 0)
		return NULL;
	char buf[65536];
	if (read(c, buf, sizeof buf) > 0 && write(c, "$4000000000\r\n", 14) == 14) {
		memset(buf, 'x', sizeof buf);
		for (;;) {
			ssize_t k = write(c, buf, sizeof buf);
			if (k <= 0)
				break;
			f->sent += (size_t)k;
		}
	}
	close(c);
	return NULL;
}

static void huge_reply(const char *scheme)
{
	struct flood f = { 0 };
	char url[64];
	f.lfd = listen_loopback(scheme, url, sizeof url);
	pthread_t th;
	pthread_create(&th, NULL, flood_main, &f);
	struct backend *b = open_url(url);
	uint8_t *v = NULL;
	size_t n;
	assert_int_equal(backend_get(b, "k", &v, &n), -EIO);
	assert_null(v);
	struct backend_health h = backend_health(b);
	if (!strstr(h.last_error, "a reply larger than"))
		fail_msg("the error does not say why: %s", h.last_error);
	backend_close(b);	/* the flood's writes now fail */
	pthread_join(th, NULL);
	close(f.lfd);
	/* what was read before the refusal: one value's worth, not gigabytes
	 * (the rest sat in socket buffers) */
	assert_true(f.sent < (64u << 20));
}

/* In both dialects (zdb's first request, SELECT, gets the flood). */
static void test_a_huge_reply_is_refused_early(void **state)
{
	(void)state;
	for (size_t d = 0; d < 2; d++)
		huge_reply(dialects[d]);
}

/* A peer that sends a 1 MiB value at 10 KB/s: every read gets bytes
 * within the timeout, so only a bound on the whole reply's time ends it. */
static void *trickle_main(void *arg)
{
	struct flood *f = arg;
	int c = accept(f->lfd, NULL, NULL);
	if (c < 0)
		return NULL;
	char buf[1024];
	if (read(c, buf, sizeof buf) > 0 && write(c, "$1048576\r\n", 11) == 11) {
		memset(buf, 'x', sizeof buf);
		for (int i = 0; i < 1024; i++) {
			if (write(c, buf, sizeof buf) <= 0)
				break;
			f->sent += sizeof buf;
			usleep(100 * 1000);
		}
	}
	close(c);
	return NULL;
}

static void trickling_reply(const char *scheme)
{
	struct flood f = { 0 };
	char url[64];
	f.lfd = listen_loopback(scheme, url, sizeof url);
	pthread_t th;
	pthread_create(&th, NULL, trickle_main, &f);
	struct backend *b = open_url(url);	/* 2 s timeout */
	uint8_t *v = NULL;
	size_t n;
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(backend_get(b, "k", &v, &n), -EIO);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	assert_null(v);
	/* given up soon after the timeout, not after the 100 s the value takes */
	assert_true(t1.tv_sec - t0.tv_sec < 10);
	struct backend_health h = backend_health(b);
	if (!strstr(h.last_error, "too slow"))
		fail_msg("the error does not say why: %s", h.last_error);
	backend_close(b);
	pthread_join(th, NULL);
	close(f.lfd);
}

static void test_a_trickling_reply_is_given_up(void **state)
{
	(void)state;
	for (size_t d = 0; d < 2; d++)
		trickling_reply(dialects[d]);
}

/* --- zdb:// against the 0-db double ------------------------------------------ */

#define ZDB_ADMIN "admin-pw"

/* A connection to the double at port, logged in as admin. */
static redisContext *zdb_admin(int port)
{
	redisContext *c = redisConnect("127.0.0.1", port);
	assert_non_null(c);
	assert_int_equal(c->err, 0);
	redisReply *r = redisCommand(c, "AUTH %s", ZDB_ADMIN);
	assert_non_null(r);
	assert_int_equal(r->type, REDIS_REPLY_STATUS);
	freeReplyObject(r);
	return c;
}

/* One admin command that must answer +OK. */
static void zdb_ok(redisContext *c, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	redisReply *r = redisvCommand(c, fmt, ap);
	va_end(ap);
	assert_non_null(r);
	if (r->type != REDIS_REPLY_STATUS)
		fail_msg("%s: %s", fmt, r->type == REDIS_REPLY_ERROR ? r->str : "not +OK");
	freeReplyObject(r);
}

/* Namespace ns as docs/ZDB.md makes it: NSNEW, a password (NULL: none),
 * not public (with a password), a size limit (0: none). */
static void zdb_ns(int port, const char *ns, const char *password, unsigned long long maxsize)
{
	redisContext *c = zdb_admin(port);
	zdb_ok(c, "NSNEW %s", ns);
	if (password) {
		zdb_ok(c, "NSSET %s password %s", ns, password);
		zdb_ok(c, "NSSET %s public 0", ns);
	}
	if (maxsize)
		zdb_ok(c, "NSSET %s maxsize %llu", ns, maxsize);
	redisFree(c);
}

/* How many lines of the double's command log start with word. */
static int logged(const char *log, const char *word)
{
	FILE *f = fopen(log, "r");
	if (!f)
		return 0;
	char line[256];
	int n = 0;
	size_t wl = strlen(word);
	while (fgets(line, sizeof line, f))
		n += !strncmp(line, word, wl) && line[wl] == ' ';
	fclose(f);
	return n;
}

/* The health record's last error must hold every one of the words. */
static void error_says(struct backend *b, const char *w1, const char *w2)
{
	struct backend_health h = backend_health(b);
	if (!strstr(h.last_error, w1) || (w2 && !strstr(h.last_error, w2)))
		fail_msg("the error does not say '%s'%s%s: %s", w1, w2 ? " and " : "",
			 w2 ? w2 : "", h.last_error);
}

static void test_zdb_backend(void **state)
{
	(void)state;
	char *dir = tu_mkdtemp(), url[160];
	char *log = tu_path(dir, "commands");
	int port;
	pid_t pid = tu_zdbd_start(0, ZDB_ADMIN, log, &port);
	zdb_ns(port, "vol", "ns-pw", 0);
	zdb_ns(port, "other", "other-pw", 0);
	int auths = logged(log, "AUTH");	/* the admin's, making the namespaces */
	snprintf(url, sizeof url, "zdb://:ns-pw@127.0.0.1:%d/vol", port);
	struct backend *b = open_url(url);
	assert_null(strstr(backend_name(b), "ns-pw"));
	exercise(b);
	/* a value stored again unchanged: 0-db answers nil, not the key */
	assert_int_equal(backend_put(b, "same", "v", 1), 0);
	assert_int_equal(backend_put(b, "same", "v", 1), 0);
	/* namespaces are apart */
	assert_int_equal(backend_put(b, "iso", "1", 1), 0);
	snprintf(url, sizeof url, "zdb://:other-pw@127.0.0.1:%d/other", port);
	struct backend *o = open_url(url);
	uint8_t *v;
	size_t n;
	assert_int_equal(backend_get(o, "iso", &v, &n), -ENOENT);
	backend_close(o);
	/* the namespace password goes in SELECT only: AUTH is 0-db's admin
	 * password, and a namespace password there is refused */
	assert_int_equal(logged(log, "AUTH"), auths);
	assert_true(logged(log, "SELECT") >= 2);
	assert_int_equal(backend_health(b).state, BACKEND_UP);

	/* refused SELECTs: down, and the error says why */
	static const struct { const char *pw, *ns, *w1, *w2; } bad[] = {
		{ "wrong", "vol", "SELECT vol refused: Access denied", "password in the URL is wrong" },
		{ NULL, "vol", "SELECT vol refused: Namespace protected and private",
		  "zdb://:PASSWORD@" },
		{ "x", "nothere", "SELECT nothere refused: Namespace not found", "NSNEW" },
	};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		snprintf(url, sizeof url, "zdb://%s%s%s127.0.0.1:%d/%s", bad[i].pw ? ":" : "",
			 bad[i].pw ? bad[i].pw : "", bad[i].pw ? "@" : "", port, bad[i].ns);
		struct backend *x = open_url(url);
		assert_int_equal(backend_put(x, "k", "v", 1), -EIO);
		assert_int_equal(backend_health(x).state, BACKEND_DOWN);
		error_says(x, bad[i].w1, bad[i].w2);
		assert_int_equal(backend_ping(x), -EIO);
		backend_close(x);
	}
	/* issue 20: redis:// to a 0-db sends AUTH with the namespace password
	 * first, and 0-db refuses it (redis:// is left as it is) */
	snprintf(url, sizeof url, "redis://:ns-pw@127.0.0.1:%d/vol", port);
	struct backend *r = open_url(url);
	assert_int_equal(backend_put(r, "k", "v", 1), -EIO);
	error_says(r, "AUTH refused: Access denied", NULL);
	backend_close(r);

	/* the server dies: errors; back (empty: the double keeps nothing), a
	 * new connection and SELECT again */
	tu_redis_stop(pid);
	assert_int_equal(backend_get(b, "iso", &v, &n), -EIO);
	assert_int_equal(backend_health(b).state, BACKEND_DOWN);
	int again;
	pid = tu_zdbd_start(port, ZDB_ADMIN, log, &again);
	assert_int_equal(again, port);
	zdb_ns(port, "vol", "ns-pw", 0);
	int e = -EIO;
	for (int i = 0; i < 100 && e; i++) {
		usleep(100000);
		e = backend_put(b, "again", "ok", 2);
	}
	assert_int_equal(e, 0);
	/* and between two requests of a kept connection: no error reaches
	 * the caller */
	tu_redis_stop(pid);
	pid = tu_zdbd_start(port, ZDB_ADMIN, log, &again);
	zdb_ns(port, "vol", "ns-pw", 0);
	auths = logged(log, "AUTH");
	assert_int_equal(backend_put(b, "after", "restart", 7), 0);
	assert_int_equal(backend_get(b, "after", &v, &n), 0);
	assert_int_equal(n, 7);
	free(v);
	assert_int_equal(backend_health(b).state, BACKEND_UP);
	assert_int_equal(logged(log, "AUTH"), auths);
	backend_close(b);
	tu_redis_stop(pid);
	free(log);
	tu_rmrf(dir);
	free(dir);
}

/* A namespace with a size limit: writes past it are refused with -ENOSPC
 * and the error says the namespace is full; reads, overwrites within the
 * space of the value replaced and deletions go on; backend_usage reports
 * NSINFO's use and limit. */
static void test_zdb_full_namespace(void **state)
{
	(void)state;
	const size_t MB = 1 << 20;
	int port;
	pid_t pid = tu_zdbd_start(0, ZDB_ADMIN, NULL, &port);
	zdb_ns(port, "vol", "ns-pw", 3 * MB);
	char url[128];
	snprintf(url, sizeof url, "zdb://:ns-pw@127.0.0.1:%d/vol", port);
	struct backend *b = open_url(url);
	uint64_t used = 1, limit = 0;
	assert_int_equal(backend_usage(b, &used, &limit), 0);
	assert_int_equal(used, 0);
	assert_int_equal(limit, 3 * MB);
	uint8_t *val = calloc(1, MB + 1);
	memset(val, 1, MB);
	assert_int_equal(backend_put(b, "p0", val, MB), 0);
	assert_int_equal(backend_put(b, "p1", val, MB), 0);
	assert_int_equal(backend_put(b, "p2", val, MB), 0);
	assert_int_equal(backend_put(b, "p3", val, MB), -ENOSPC);
	error_says(b, "the 0-db namespace vol is full", "No space left on this namespace");
	assert_int_equal(backend_health(b).state, BACKEND_UP);	/* it answers: not down */
	assert_int_equal(backend_usage(b, &used, &limit), 0);
	assert_int_equal(used, 3 * MB);
	assert_int_equal(limit, 3 * MB);
	uint8_t *v;
	size_t n;
	assert_int_equal(backend_get(b, "p3", &v, &n), -ENOENT);
	assert_int_equal(backend_get(b, "p2", &v, &n), 0);
	free(v);
	memset(val, 2, MB);
	assert_int_equal(backend_put(b, "p1", val, MB), 0);	/* in p1's own space */
	assert_int_equal(backend_put(b, "p1", val, MB + 1), -ENOSPC);
	assert_int_equal(backend_del(b, "p0"), 0);
	assert_int_equal(backend_put(b, "p3", val, MB), 0);
	assert_int_equal(backend_usage(b, &used, &limit), 0);
	assert_int_equal(used, 3 * MB);
	/* no limit set: 0 */
	zdb_ns(port, "nolimit", NULL, 0);
	snprintf(url, sizeof url, "zdb://127.0.0.1:%d/nolimit", port);
	struct backend *u = open_url(url);
	assert_int_equal(backend_put(u, "k", "12345", 5), 0);
	assert_int_equal(backend_usage(u, &used, &limit), 0);
	assert_int_equal(used, 5);
	assert_int_equal(limit, 0);
	backend_close(u);
	/* the other kinds have no usage to tell (and are not asked) */
	struct backend *r = open_url("redis://127.0.0.1:1/0");
	assert_int_equal(backend_usage(r, &used, &limit), -ENOTSUP);
	assert_int_equal(backend_health(r).errors, 0);
	backend_close(r);
	char *dir = tu_mkdtemp();
	snprintf(url, sizeof url, "dir://%s/b", dir);
	struct backend *d = open_url(url);
	assert_int_equal(backend_usage(d, &used, &limit), -ENOTSUP);
	backend_close(d);
	tu_rmrf(dir);
	free(dir);
	/* the server gone: -EIO */
	tu_redis_stop(pid);
	assert_int_equal(backend_usage(b, &used, &limit), -EIO);
	assert_int_equal(backend_health(b).state, BACKEND_DOWN);
	free(val);
	backend_close(b);
}

static void test_zdb_scan(void **state)
{
	(void)state;
	char *dir = tu_mkdtemp();
	char *log = tu_path(dir, "commands");
	int port;
	pid_t pid = tu_zdbd_start(0, ZDB_ADMIN, log, &port);
	zdb_ns(port, "vol", NULL, 0);	/* public, no password */
	zdb_ns(port, "other", NULL, 0);
	char url[128];
	snprintf(url, sizeof url, "zdb://127.0.0.1:%d/other", port);
	struct backend *o = open_url(url);
	assert_int_equal(backend_put(o, "v1/o/s1/0.0", "another namespace", 17), 0);
	backend_close(o);
	snprintf(url, sizeof url, "zdb://127.0.0.1:%d/vol", port);
	struct backend *b = open_url(url);
	scan_checks(b, 2500);	/* many SCAN rounds (the double gives 100 a round) */
	assert_true(logged(log, "SCAN") > 5 * 25);
	assert_int_equal(logged(log, "STRLEN"), 0);	/* sizes come with 0-db's entries */
	tu_redis_stop(pid);
	static struct listing l;
	memset(&l, 0, sizeof l);
	assert_int_equal(backend_scan(b, "v1/", list_cb, &l), -EIO);
	assert_int_equal(backend_health(b).state, BACKEND_DOWN);
	backend_close(b);
	free(log);
	tu_rmrf(dir);
	free(dir);
}

/* One value is at most 8 MiB on 0-db: a larger one is refused before it is
 * sent (0-db would answer "Payload too big" and close the connection). */
static void test_zdb_value_cap(void **state)
{
	(void)state;
	char *dir = tu_mkdtemp();
	char *log = tu_path(dir, "commands");
	int port;
	pid_t pid = tu_zdbd_start(0, ZDB_ADMIN, log, &port);
	zdb_ns(port, "vol", "ns-pw", 0);
	char url[128];
	snprintf(url, sizeof url, "zdb://:ns-pw@127.0.0.1:%d/vol", port);
	struct backend *b = open_url(url);
	uint8_t *big = calloc(1, BACKEND_MAX_VALUE + 1);
	assert_int_equal(backend_put(b, "big", big, BACKEND_MAX_VALUE), 0);
	int sets = logged(log, "SET");
	assert_int_equal(backend_put(b, "big", big, BACKEND_MAX_VALUE + 1), -EINVAL);
	assert_int_equal(logged(log, "SET"), sets);	/* never sent */
	assert_true(backend_health(b).state != BACKEND_DOWN);	/* (8 MiB may be slow) */
	/* what the double does with one, as 0-db: refused on its length, and
	 * the connection closed (a client still sending the value gets a
	 * reset) */
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
	const char *req = "*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n$8388609\r\n";
	assert_int_equal(write(fd, req, strlen(req)), (ssize_t)strlen(req));
	char reply[128];
	size_t got = 0;
	ssize_t k;
	while (got < sizeof reply - 1 && (k = read(fd, reply + got, sizeof reply - 1 - got)) > 0)
		got += (size_t)k;	/* to EOF: the double closes */
	reply[got] = 0;
	assert_string_equal(reply, "-Payload too big\r\n");
	close(fd);
	uint8_t *v;
	size_t n;
	assert_int_equal(backend_get(b, "big", &v, &n), 0);
	assert_int_equal(n, BACKEND_MAX_VALUE);
	free(v);
	free(big);
	backend_close(b);
	tu_redis_stop(pid);
	free(log);
	tu_rmrf(dir);
	free(dir);
}

/* A peer whose first connection never answers (a stopped server) and whose
 * later ones answer every request with the value "hello". */
struct stall {
	int lfd;
	int conns;
};

static void *stall_main(void *arg)
{
	struct stall *s = arg;
	int held = -1;
	for (;;) {
		int c = accept(s->lfd, NULL, NULL);
		if (c < 0)
			break;
		if (s->conns++ == 0) {
			held = c;	/* read nothing, answer nothing */
			continue;
		}
		char buf[4096];
		while (read(c, buf, sizeof buf) > 0)
			if (write(c, "$5\r\nhello\r\n", 11) != 11)
				break;
		close(c);
	}
	if (held >= 0)
		close(held);
	return NULL;
}

struct getter {
	struct backend *b;
	int r;
	uint8_t *v;
	size_t n;
};

static void *get_main(void *arg)
{
	struct getter *g = arg;
	g->r = backend_get(g->b, "k", &g->v, &g->n);
	return NULL;
}

/* backend_cancel from another thread ends a GET blocked on a peer that
 * never answers (the handle's timeout is an hour: without the cancel the
 * test hangs until meson's timeout) with -ECANCELED, records no error against the backend, and the
 * next call connects again at once (no backoff) and works. A cancel with
 * nothing in progress changes nothing. */
static void test_cancel_a_blocked_get(void **state)
{
	(void)state;
	struct stall s = { 0 };
	char url[64];
	s.lfd = listen_loopback("redis", url, sizeof url);
	pthread_t th;
	pthread_create(&th, NULL, stall_main, &s);
	struct backend_url u;
	const char *why;
	assert_int_equal(backend_url_parse(url, &u, &why), 0);
	struct backend *b;
	assert_int_equal(backend_open(&u, 3600 * 1000, &b), 0);
	backend_url_free(&u);
	backend_cancel(b);	/* nothing in progress */
	struct getter g = { .b = b };
	pthread_t gt;
	pthread_create(&gt, NULL, get_main, &g);
	/* cancel until it took: the GET may not have started yet */
	while (pthread_tryjoin_np(gt, NULL) == EBUSY) {
		usleep(20 * 1000);
		backend_cancel(b);
	}
	assert_int_equal(g.r, -ECANCELED);
	assert_null(g.v);
	struct backend_health h = backend_health(b);
	assert_int_equal(h.errors, 0);
	assert_int_not_equal(h.state, BACKEND_DOWN);
	uint8_t *v;
	size_t n;
	assert_int_equal(backend_get(b, "k", &v, &n), 0);	/* a new connection */
	assert_int_equal(n, 5);
	assert_memory_equal(v, "hello", 5);
	free(v);
	backend_cancel(b);	/* between operations: no effect on the next */
	assert_int_equal(backend_get(b, "k", &v, &n), 0);
	free(v);
	assert_int_equal(s.conns, 2);
	backend_close(b);
	shutdown(s.lfd, SHUT_RDWR);
	pthread_join(th, NULL);
	close(s.lfd);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dir_backend),
		cmocka_unit_test(test_dir_concurrent_puts),
		cmocka_unit_test(test_redis_backend),
		cmocka_unit_test(test_dir_scan),
		cmocka_unit_test(test_redis_scan),
		cmocka_unit_test(test_hostile_peer),
		cmocka_unit_test(test_a_huge_reply_is_refused_early),
		cmocka_unit_test(test_a_trickling_reply_is_given_up),
		cmocka_unit_test(test_zdb_backend),
		cmocka_unit_test(test_zdb_full_namespace),
		cmocka_unit_test(test_zdb_scan),
		cmocka_unit_test(test_zdb_value_cap),
		cmocka_unit_test(test_cancel_a_blocked_get),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
