/* test_storproto: qsfs-stor's control protocol (common/storproto.h) and its
 * client (common/storclient.h).
 *
 * The protocol: every request formats and parses back to itself; bad
 * requests are refused with the usage; CONFIRMS replies round-trip against
 * a random set. The client runs against small servers in this process
 * that misbehave on purpose: one that never answers (the call times out),
 * one that closes after every reply (the kept connection is opened again
 * and the request resent), one that keeps the connection (one connect for
 * many calls), refusals, replies of the wrong kind, two lines at once, no
 * daemon at all.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "testutil.h"
#include "../../common/ctlsock.h"
#include "../../common/fsproto.h"
#include "../../common/storclient.h"
#include "../../common/storproto.h"

/* --- the protocol ------------------------------------------------------------ */

static void roundtrip(const struct stor_req *rq)
{
	char line[STORPROTO_LINE_MAX], err[256];
	int n = storproto_format(rq, line, sizeof line);
	assert_true(n > 0);
	assert_int_equal(line[n - 1], '\n');
	line[n - 1] = 0;
	struct stor_req back;
	assert_int_equal(storproto_parse(line, &back, err, sizeof err), 0);
	assert_int_equal(back.op, rq->op);
	assert_string_equal(back.name, rq->name);
	if (rq->path)
		assert_string_equal(back.path, rq->path);
	else
		assert_null(back.path);
	assert_true(back.lo == rq->lo && back.hi == rq->hi);
	assert_int_equal(back.fix, rq->fix);
}

static void test_every_request_round_trips(void **state)
{
	(void)state;
	for (int op = 0; op < STOR_NOPS; op++) {
		struct stor_req rq = { .op = (enum stor_op)op };
		switch (op) {
		case STOR_STORE:
		case STOR_RETRIEVE:
			snprintf(rq.name, sizeof rq.name, "s42");
			rq.path = "/var/cache/qsfs/seg-000000000000002a.qseg";
			roundtrip(&rq);
			snprintf(rq.name, sizeof rq.name, "c9223372036854775807");
			break;
		case STOR_DELETE:
		case STOR_CONFIRMED:
			snprintf(rq.name, sizeof rq.name, "c7");
			break;
		case STOR_LOST:
			snprintf(rq.name, sizeof rq.name, "s7");
			break;
		case STOR_CONFIRMS:
			rq.lo = 0;
			rq.hi = STORPROTO_CONFIRMS_SPAN - 1;
			roundtrip(&rq);
			rq.lo = rq.hi = 5;
			break;
		case STOR_GCCHECK:
			roundtrip(&rq);
			rq.fix = true;
			break;
		}
		roundtrip(&rq);
		assert_string_not_equal(storproto_word(rq.op), "?");
	}
}

static void refused(const char *text, const char *want)
{
	char line[512], err[256];
	struct stor_req rq;
	snprintf(line, sizeof line, "%s", text);
	assert_int_equal(storproto_parse(line, &rq, err, sizeof err), -EINVAL);
	if (!strstr(err, want))
		fail_msg("'%s': error '%s' does not say '%s'", text, err, want);
}

static void test_bad_requests_are_refused_with_their_usage(void **state)
{
	(void)state;
	refused("", "empty request");
	refused("HELLO", "unknown request 'HELLO'");
	refused("store s1 /x", "unknown request 'store'");	/* words are upper case */
	refused("STATUS now", "usage: STATUS");
	refused("STORE s1", "usage: STORE");
	refused("STORE s1 relative/path", "usage: STORE");
	refused("STORE s0 /x", "usage: STORE");		/* ids start at 1 */
	refused("STORE s01 /x", "usage: STORE");	/* one spelling per id */
	refused("STORE x1 /x", "usage: STORE");
	refused("STORE s-1 /x", "usage: STORE");
	refused("STORE s9223372036854775808 /x", "usage: STORE");	/* 2^63 */
	refused("RETRIEVE s1", "usage: RETRIEVE");
	refused("DELETE s1 /x", "usage: DELETE");
	refused("CONFIRMED", "usage: CONFIRMED");
	refused("CONFIRMS 5", "usage: CONFIRMS");
	refused("CONFIRMS 5 4", "usage: CONFIRMS");
	refused("CONFIRMS 1 1000001", "usage: CONFIRMS");	/* one span at most */
	refused("CONFIRMS 1 2 3", "usage: CONFIRMS");
	refused("CONFIRMS a 2", "usage: CONFIRMS");
	refused("GCCHECK NOW", "usage: GCCHECK");
	refused("GCCHECK FIX FIX", "usage: GCCHECK");

	/* and the client cannot send what the daemon would refuse */
	char buf[256];
	struct stor_req rq = { .op = STOR_STORE, .path = "relative" };
	snprintf(rq.name, sizeof rq.name, "s1");
	assert_int_equal(storproto_format(&rq, buf, sizeof buf), -EINVAL);
	rq.path = "/a\nSCRUB";	/* a second request smuggled in */
	assert_int_equal(storproto_format(&rq, buf, sizeof buf), -EINVAL);
	rq.path = "/ok";
	snprintf(rq.name, sizeof rq.name, "s0");
	assert_int_equal(storproto_format(&rq, buf, sizeof buf), -EINVAL);
	struct stor_req cr = { .op = STOR_CONFIRMS, .lo = 9, .hi = 8 };
	assert_int_equal(storproto_format(&cr, buf, sizeof buf), -EINVAL);
	struct stor_req st = { .op = STOR_STATUS };
	assert_int_equal(storproto_format(&st, buf, 4), -ENAMETOOLONG);
}

static bool *model;

static bool in_model(void *arg, uint64_t id)
{
	uint64_t lo = *(uint64_t *)arg;
	return model[id - lo];
}

static bool *seen;
static uint64_t seen_lo;

static void mark(void *arg, uint64_t id)
{
	(void)arg;
	assert_false(seen[id - seen_lo]);	/* each id once */
	seen[id - seen_lo] = true;
}

static void test_confirms_text_round_trips(void **state)
{
	(void)state;
	srand(7);
	for (int round = 0; round < 500; round++) {
		uint64_t lo = (uint64_t)(rand() % 1000) + 1, n = (uint64_t)(rand() % 300) + 1;
		uint64_t hi = lo + n - 1;
		model = calloc(n, 1);
		seen = calloc(n, 1);
		seen_lo = lo;
		int density = rand() % 4;	/* none, sparse, dense, all */
		for (uint64_t i = 0; i < n; i++)
			model[i] = density == 3 || (density && rand() % (density == 1 ? 8 : 2) != 0);
		char *t = storproto_confirms_text(lo, hi, in_model, &lo);
		assert_non_null(t);
		assert_int_equal(storproto_confirms_each(t, lo, hi, mark, NULL), 0);
		for (uint64_t i = 0; i < n; i++)
			assert_int_equal(seen[i], model[i]);
		if (density == 3)
			assert_true(!strchr(t, ','));	/* one range */
		free(t);
		free(model);
		free(seen);
	}
	seen = calloc(100, 1);
	seen_lo = 1;
	/* malformed or outside what was asked: refused */
	const char *bad[] = { "x", "3-", "-3", "5-3", "3,3", "4,2", "1-200", "0", "3;4", "3,,4" };
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		memset(seen, 0, 100);
		if (storproto_confirms_each(bad[i], 1, 100, mark, NULL) != -EPROTO)
			fail_msg("'%s' was taken", bad[i]);
	}
	memset(seen, 0, 100);
	assert_int_equal(storproto_confirms_each("", 1, 100, mark, NULL), 0);
	free(seen);
}

/* qsfs-fs's socket: the words round-trip, GC carries its seconds. */
static void test_fs_requests(void **state)
{
	(void)state;
	char buf[64], err[128];
	for (int op = 0; op < FS_NOPS; op++) {
		int n = fsproto_format((enum fs_op)op, 0, buf, sizeof buf);
		assert_true(n > 0 && buf[n - 1] == '\n');
		buf[n - 1] = 0;
		enum fs_op back;
		const char *arg;
		assert_int_equal(fsproto_parse(buf, &back, &arg, err, sizeof err), 0);
		assert_int_equal(back, op);
		assert_string_equal(arg, "");
	}
	enum fs_op op;
	const char *arg;
	assert_true(fsproto_format(FS_GC, 90, buf, sizeof buf) > 0);
	assert_string_equal(buf, "GC 90\n");
	assert_int_equal(fsproto_parse("GC 90", &op, &arg, err, sizeof err), 0);
	assert_int_equal(op, FS_GC);
	assert_string_equal(arg, "90");
	assert_int_equal(fsproto_parse("SEALX", &op, &arg, err, sizeof err), -EINVAL);
	assert_non_null(strstr(err, "unknown request 'SEALX'"));
	assert_int_equal(fsproto_parse("PING now", &op, &arg, err, sizeof err), -EINVAL);
	assert_int_equal(fsproto_format(FS_STATUS, 0, buf, 4), -ENAMETOOLONG);
}

/* --- the client against servers that misbehave ---------------------------------- */

enum mode { SILENT, CLOSE_EACH, KEEP, REFUSE, WRONG_KIND, TWO_LINES };

struct server {
	char path[108];
	char *dir;
	int lfd;
	enum mode mode;
	pthread_t th;
	int accepted;
};

struct conn {
	struct server *s;
	int fd;
};

/* One connection (its own thread, as in the daemon): requests until EOF. */
static void *conn_main(void *arg)
{
	struct conn *cn = arg;
	struct server *s = cn->s;
	int c = cn->fd;
	free(cn);
	char line[STORPROTO_LINE_MAX];
	while (ctlsock_read_line(c, line, sizeof line) == 0) {
		const char *reply = s->mode == REFUSE ? "ERR no room on the backends\n"
				    : s->mode == WRONG_KIND ? "YES\n"
				    : s->mode == TWO_LINES ? "OK\nOK\n" : "OK\n";
		if (s->mode == SILENT)
			continue;	/* reads, never answers */
		if (write(c, reply, strlen(reply)) < 0)
			break;
		if (s->mode == CLOSE_EACH)
			break;
	}
	close(c);
	return NULL;
}

static void *server_main(void *arg)
{
	struct server *s = arg;
	for (;;) {
		int c = accept(s->lfd, NULL, NULL);
		if (c < 0)
			return NULL;
		__atomic_add_fetch(&s->accepted, 1, __ATOMIC_SEQ_CST);
		struct conn *cn = malloc(sizeof *cn);
		assert_non_null(cn);
		cn->s = s;
		cn->fd = c;
		pthread_t t;
		assert_int_equal(pthread_create(&t, NULL, conn_main, cn), 0);
		pthread_detach(t);
	}
}

static void server_start(struct server *s, enum mode mode)
{
	memset(s, 0, sizeof *s);
	s->mode = mode;
	s->dir = tu_mkdtemp();
	snprintf(s->path, sizeof s->path, "%s/sock", s->dir);
	char err[256];
	s->lfd = ctlsock_listen(s->path, err, sizeof err);
	assert_true(s->lfd >= 0);
	assert_int_equal(pthread_create(&s->th, NULL, server_main, s), 0);
}

static void server_stop(struct server *s)
{
	shutdown(s->lfd, SHUT_RDWR);
	close(s->lfd);
	pthread_join(s->th, NULL);
	tu_rmrf(s->dir);
	free(s->dir);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_a_daemon_that_never_answers_times_out(void **state)
{
	(void)state;
	struct server s;
	server_start(&s, SILENT);
	struct storclient *cl = storclient_new(s.path);
	storclient_set_timeout(cl, 300, 300);
	double t0 = now_s();
	assert_int_equal(storclient_ping(cl), -ETIMEDOUT);
	char why[256];
	assert_int_equal(storclient_store(cl, "s1", "/x", why, sizeof why), -ETIMEDOUT);
	assert_non_null(strstr(why, "did not answer in time"));
	assert_int_equal(storclient_retrieve(cl, "s1", "/x", 0, why, sizeof why), -ETIMEDOUT);
	double el = now_s() - t0;
	assert_true(el < 5);	/* three calls of 300 ms, not forever */
	storclient_free(cl);
	server_stop(&s);
}

static void test_one_kept_connection_for_many_calls(void **state)
{
	(void)state;
	struct server s;
	server_start(&s, KEEP);
	struct storclient *cl = storclient_new(s.path);
	for (int i = 0; i < 50; i++)
		assert_int_equal(storclient_ping(cl), 0);
	assert_int_equal(storclient_connects(cl), 1);
	/* RETRIEVE may take minutes: it never holds the kept connection */
	assert_int_equal(storclient_retrieve(cl, "s3", "/x", 0, NULL, 0), 0);
	assert_int_equal(storclient_connects(cl), 2);
	assert_int_equal(storclient_ping(cl), 0);
	assert_int_equal(storclient_connects(cl), 2);
	storclient_free(cl);
	server_stop(&s);
}

static void test_a_closed_kept_connection_is_opened_again(void **state)
{
	(void)state;
	struct server s;
	server_start(&s, CLOSE_EACH);	/* as a restarted daemon would */
	struct storclient *cl = storclient_new(s.path);
	for (int i = 0; i < 10; i++)
		assert_int_equal(storclient_ping(cl), 0);
	/* the first call connects; each later one finds the kept connection
	 * closed, connects again and sends again */
	assert_int_equal(storclient_connects(cl), 10);
	assert_int_equal(__atomic_load_n(&s.accepted, __ATOMIC_SEQ_CST), 10);
	storclient_free(cl);
	server_stop(&s);
}

static void test_refusals_and_nonsense(void **state)
{
	(void)state;
	struct server s;
	char why[512], *reply = NULL;
	server_start(&s, REFUSE);
	struct storclient *cl = storclient_new(s.path);
	assert_int_equal(storclient_store(cl, "s5", "/data/seg", why, sizeof why), -EREMOTEIO);
	assert_string_equal(why, "qsfs-stor refused STORE s5: no room on the backends");
	struct stor_req rq = { .op = STOR_STATUS };
	assert_int_equal(storclient_call(cl, &rq, 0, &reply), -EREMOTEIO);
	assert_string_equal(reply, "ERR no room on the backends");
	free(reply);
	storclient_free(cl);
	server_stop(&s);

	server_start(&s, WRONG_KIND);	/* YES to a request that gets OK */
	cl = storclient_new(s.path);
	assert_int_equal(storclient_ping(cl), -EPROTO);
	bool yes = false;
	assert_int_equal(storclient_confirmed(cl, "s1", &yes), 0);
	assert_true(yes);
	storclient_free(cl);
	server_stop(&s);

	server_start(&s, TWO_LINES);
	cl = storclient_new(s.path);
	assert_int_equal(storclient_ping(cl), -EPROTO);
	storclient_free(cl);
	server_stop(&s);

	/* no daemon at all (server_stop removed its socket) */
	cl = storclient_new(s.path);
	assert_int_equal(storclient_ping(cl), -ENOENT);
	assert_non_null(strstr(storclient_strerror(cl, -ENOENT, why, sizeof why), "not running"));
	assert_int_equal(storclient_store(cl, "bad", "/x", why, sizeof why), -EINVAL);
	storclient_free(cl);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_request_round_trips),
		cmocka_unit_test(test_bad_requests_are_refused_with_their_usage),
		cmocka_unit_test(test_confirms_text_round_trips),
		cmocka_unit_test(test_fs_requests),
		cmocka_unit_test(test_a_daemon_that_never_answers_times_out),
		cmocka_unit_test(test_one_kept_connection_for_many_calls),
		cmocka_unit_test(test_a_closed_kept_connection_is_opened_again),
		cmocka_unit_test(test_refusals_and_nonsense),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
