/* tests/unit/test_zinit_service.c - zinit service files: good files give
 * the right structs and defaults, every kind of bad file gives
 * "FILE:LINE: message" naming the problem, unknown `after` entries and
 * dependency cycles are caught, and the start order is right. */
#include "testutil.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../zinit/service.h"

static char *dir;

static int setup(void **state)
{
	(void)state;
	dir = tu_mkdtemp();
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	tu_rmrf(dir);
	free(dir);
	return 0;
}

/* Write dir/name.yaml; returns its malloc'd path. */
static char *write_svc(const char *name, const char *text)
{
	char file[256];
	snprintf(file, sizeof file, "%s.yaml", name);
	char *p = tu_path(dir, file);
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	return p;
}

/* Load text as service "svc". */
static int load(const char *text, struct zsvc *s, char *err, size_t n, char **path)
{
	*path = write_svc("svc", text);
	return zsvc_load_file(*path, "svc", s, err, n);
}

static void test_good_file(void **state)
{
	(void)state;
	struct zsvc s;
	char err[512] = "", *path;
	int r = load("# a comment\n"
		     "exec: /usr/bin/stor -c \"/etc/my conf.yaml\" --name 'a b'\n"
		     "test: qsfs-ctl ready\n"
		     "oneshot: false\n"
		     "after:\n"
		     "  - format\n"
		     "  - network\n"
		     "shutdown_timeout: 120\n"
		     "signal:\n"
		     "  stop: sigint\n"
		     "env:\n"
		     "  QSFS_LOG: debug\n"
		     "  PORT: 8080\n"
		     "dir: /var/lib/qsfs\n"
		     "log: stdout\n",
		     &s, err, sizeof err, &path);
	if (r)
		print_message("# %s\n", err);
	assert_int_equal(r, 0);
	assert_string_equal(s.name, "svc");
	assert_string_equal(s.file, path);
	assert_string_equal(s.exec, "/usr/bin/stor -c \"/etc/my conf.yaml\" --name 'a b'");
	const char *want[] = { "/usr/bin/stor", "-c", "/etc/my conf.yaml", "--name", "a b" };
	for (int i = 0; i < 5; i++)
		assert_string_equal(s.exec_argv[i], want[i]);
	assert_null(s.exec_argv[5]);
	assert_string_equal(s.test, "qsfs-ctl ready");
	assert_string_equal(s.test_argv[0], "qsfs-ctl");
	assert_string_equal(s.test_argv[1], "ready");
	assert_null(s.test_argv[2]);
	assert_false(s.oneshot);
	assert_int_equal(s.nafter, 2);
	assert_string_equal(s.after[0].name, "format");
	assert_int_equal(s.after[0].line, 6);
	assert_string_equal(s.after[1].name, "network");
	assert_int_equal(s.after[1].line, 7);
	assert_int_equal(s.shutdown_timeout, 120);
	assert_int_equal(s.stop_signal, SIGINT);
	assert_int_equal(s.nenv, 2);
	assert_string_equal(s.env[0], "QSFS_LOG=debug");
	assert_string_equal(s.env[1], "PORT=8080");
	assert_null(s.env[2]);
	assert_string_equal(s.dir, "/var/lib/qsfs");
	assert_int_equal(s.log, ZSVC_LOG_STDOUT);
	zsvc_free(&s);
	free(path);
}

static void test_defaults_and_variants(void **state)
{
	(void)state;
	struct zsvc s;
	char err[512] = "", *path;
	assert_int_equal(load("exec: sleep 10\n", &s, err, sizeof err, &path), 0);
	assert_int_equal(s.shutdown_timeout, ZSVC_DEFAULT_SHUTDOWN_TIMEOUT);
	assert_int_equal(s.shutdown_timeout, 10);
	assert_int_equal(s.stop_signal, SIGTERM);
	assert_int_equal(s.log, ZSVC_LOG_RING);
	assert_null(s.test);
	assert_null(s.test_argv);
	assert_false(s.oneshot);
	assert_int_equal(s.nafter, 0);
	assert_int_equal(s.nenv, 0);
	assert_null(s.dir);
	zsvc_free(&s);
	free(path);

	/* after: one name instead of a list; null values mean "none" */
	assert_int_equal(load("exec: x\nafter: stor\ntest:\nenv:\nsignal:\noneshot: True\n"
			      "shutdown_timeout: 0\nlog: null\n", &s, err, sizeof err, &path), 0);
	assert_int_equal(s.nafter, 1);
	assert_string_equal(s.after[0].name, "stor");
	assert_null(s.test);
	assert_true(s.oneshot);
	assert_int_equal(s.shutdown_timeout, 0);
	assert_int_equal(s.log, ZSVC_LOG_NULL);
	zsvc_free(&s);
	free(path);

	const char *null_logs[] = { "log: ~\n", "log:\n", "log: none\n", "log: null\n" };
	for (int i = 0; i < 4; i++) {
		char text[64];
		snprintf(text, sizeof text, "exec: x\n%s", null_logs[i]);
		assert_int_equal(load(text, &s, err, sizeof err, &path), 0);
		assert_int_equal(s.log, ZSVC_LOG_NULL);
		zsvc_free(&s);
		free(path);
	}
	assert_int_equal(load("exec: x\nlog: ring\nafter: []\nsignal: {stop: SIGKILL}\n", &s,
			      err, sizeof err, &path), 0);
	assert_int_equal(s.log, ZSVC_LOG_RING);
	assert_int_equal(s.stop_signal, SIGKILL);
	assert_int_equal(s.nafter, 0);
	zsvc_free(&s);
	free(path);
}

/* Every bad file: the line the message must name and a word it must hold. */
static const struct bad {
	const char *text;
	int line;	/* 0: "FILE: " without a line */
	const char *says;
} bads[] = {
	{ "exec: x\noneshot: maybe\n", 2, "oneshot: expected true or false, got 'maybe'" },
	{ "exec: x\noneshot: [true]\n", 2, "oneshot: expected true or false" },
	{ "exec: x\nafter: 3\n", 2, "after: expected a list" },
	{ "exec: x\nafter: true\n", 2, "after: expected a list" },
	{ "exec: x\nafter:\n  a: b\n", 3, "after: expected a list of service names, not a mapping" },
	{ "exec: x\nafter:\n  - a\n  - [b]\n", 4, "each entry must be a service name" },
	{ "exec: x\nafter:\n  - a\n  -\n", 4, "each entry must be a service name" },
	{ "exec: x\n\nrestart: always\n", 3, "unknown key 'restart'" },
	{ "exec: x\nsignal:\n  stop: SIGFOO\n", 3, "unknown signal 'SIGFOO'" },
	{ "exec: x\nsignal:\n  stop: TERM\n", 3, "unknown signal 'TERM'" },
	{ "exec: x\nsignal:\n  stop: 15\n", 3, "unknown signal '15'" },
	{ "exec: x\nsignal:\n  reload: SIGHUP\n", 3, "unknown key 'signal.reload'" },
	{ "exec: x\nsignal: SIGTERM\n", 2, "signal: expected a mapping" },
	{ "exec: x\nsignal:\n  stop:\n", 3, "signal.stop: expected a signal name" },
	{ "exec: x\nshutdown_timeout: -1\n", 2, "shutdown_timeout: must not be negative" },
	{ "exec: x\nshutdown_timeout: ten\n", 2, "shutdown_timeout: expected a whole number" },
	{ "exec: x\nshutdown_timeout: 1.5\n", 2, "shutdown_timeout: expected a whole number" },
	{ "exec: x\nshutdown_timeout: 99999999999\n", 2, "too large" },
	{ "exec: x\nshutdown_timeout:\n", 2, "shutdown_timeout: expected a whole number" },
	{ "test: x\noneshot: true\n", 1, "missing required key 'exec'" },
	{ "exec:\n", 1, "exec: has no value" },
	{ "exec: ''\n", 1, "the command is empty" },
	{ "exec: [a, b]\n", 1, "exec: expected a string, not a list" },
	{ "exec: \"sh -c 'echo\"\n", 1, "unterminated single quote" },
	{ "exec: x\ntest: 'echo \"a'\n", 2, "test: cannot split the command" },
	{ "exec: x\nexec: y\n", 2, "'exec' is given twice" },
	{ "exec: x\nenv:\n  - A=1\n", 3, "env: expected a mapping" },
	{ "exec: x\nenv:\n  A: [1]\n", 3, "env.A: expected a string value" },
	{ "exec: x\nenv:\n  A: 1\n  A: 2\n", 4, "env.A is given twice" },
	{ "exec: x\nenv:\n  'A=B': 1\n", 3, "not a valid variable name" },
	{ "exec: x\nlog: file\n", 2, "log: expected stdout, ring or null, got 'file'" },
	{ "exec: x\ndir: [a]\n", 2, "dir: expected a string" },
	{ "exec: x\n  bad: indent\n", 2, "YAML syntax error" },
	{ "exec: x\nafter: [a, b\n", 3, "YAML syntax error" },
	{ "exec: \"x\n", 2, "YAML syntax error" },
	{ "- exec: x\n", 1, "expected a mapping of 'key: value' lines, not a list" },
	{ "", 0, "the file is empty" },
	{ "# only a comment\n", 0, "the file is empty" },
};

static void test_each_bad_file(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof bads / sizeof *bads; i++) {
		struct zsvc s;
		char err[512] = "", *path;
		int r = load(bads[i].text, &s, err, sizeof err, &path);
		char want[512];
		if (bads[i].line)
			snprintf(want, sizeof want, "%s:%d: ", path, bads[i].line);
		else
			snprintf(want, sizeof want, "%s: ", path);
		if (r != -EINVAL || strncmp(err, want, strlen(want)) || !strstr(err, bads[i].says)) {
			print_message("# file:\n%s# got %d: %s\n# want: %s...%s\n", bads[i].text, r,
				      err, want, bads[i].says);
			fail();
		}
		/* nothing is left allocated or half-filled */
		assert_null(s.name);
		assert_null(s.exec);
		free(path);
	}
}

static void test_bad_service_names(void **state)
{
	(void)state;
	struct zsvc s;
	char err[512];
	char *p = write_svc("with space", "exec: x\n");
	assert_int_equal(zsvc_load_file(p, "with space", &s, err, sizeof err), -EINVAL);
	assert_non_null(strstr(err, "must not contain blanks"));
	free(p);
	assert_int_equal(zsvc_load_file("/nonexistent/a.yaml", "a", &s, err, sizeof err), -ENOENT);
	assert_non_null(strstr(err, "/nonexistent/a.yaml: cannot read"));
}

static void test_signals(void **state)
{
	(void)state;
	assert_int_equal(zsvc_signal_parse("SIGTERM"), SIGTERM);
	assert_int_equal(zsvc_signal_parse("sigkill"), SIGKILL);
	assert_int_equal(zsvc_signal_parse("SigHup"), SIGHUP);
	assert_int_equal(zsvc_signal_parse("TERM"), -1);
	assert_int_equal(zsvc_signal_parse("SIG"), -1);
	assert_int_equal(zsvc_signal_parse(""), -1);
	assert_string_equal(zsvc_signal_name(SIGINT), "SIGINT");
	assert_string_equal(zsvc_signal_name(SIGUSR2), "SIGUSR2");
	assert_null(zsvc_signal_name(SIGRTMIN + 1));
}

static void reset_dir(void)
{
	tu_rmrf(dir);
	free(dir);
	dir = tu_mkdtemp();
}

static void assert_order(const struct zsvc_set *set, const char *const *names, size_t n)
{
	assert_int_equal(set->n, n);
	for (size_t k = 0; k < n; k++) {
		if (strcmp(set->svc[set->order[k]].name, names[k])) {
			print_message("# order[%zu] is %s, want %s\n", k,
				      set->svc[set->order[k]].name, names[k]);
			fail();
		}
	}
}

static void test_dir_and_order(void **state)
{
	(void)state;
	reset_dir();
	/* names sorted differ from the dependency order */
	free(write_svc("web", "exec: web\nafter:\n  - db\n  - cache\n"));
	free(write_svc("db", "exec: db\nafter: init\ntest: db-ping\n"));
	free(write_svc("cache", "exec: cache\n"));
	free(write_svc("init", "exec: init-db\noneshot: true\n"));
	free(write_svc("zz-late", "exec: z\nafter: [web, init]\n"));
	free(write_svc("alone", "exec: a\n"));
	/* not service files */
	char *p = tu_path(dir, "README");
	FILE *f = fopen(p, "w");
	fputs("not: [yaml\n", f);
	fclose(f);
	free(p);
	p = tu_path(dir, "old.yml");
	f = fopen(p, "w");
	fputs("bad: [yaml\n", f);
	fclose(f);
	free(p);
	p = tu_path(dir, "sub.yaml");
	assert_int_equal(mkdir(p, 0755), 0);
	free(p);

	struct zsvc_set set;
	char err[2048] = "";
	int r = zsvc_load_dir(dir, &set, err, sizeof err);
	if (r)
		print_message("# %s\n", err);
	assert_int_equal(r, 0);
	/* sorted by name */
	const char *names[] = { "alone", "cache", "db", "init", "web", "zz-late" };
	for (size_t i = 0; i < 6; i++)
		assert_string_equal(set.svc[i].name, names[i]);
	assert_int_equal(zsvc_find(&set, "web"), 4);
	assert_int_equal(zsvc_find(&set, "nope"), -1);
	/* after[] resolved to indices */
	assert_int_equal(set.svc[4].after[0].idx, 2);
	assert_int_equal(set.svc[4].after[1].idx, 1);
	/* each round takes the first service by name whose dependencies are done */
	const char *order[] = { "alone", "cache", "init", "db", "web", "zz-late" };
	assert_order(&set, order, 6);
	/* and every service comes after its dependencies */
	for (size_t k = 0; k < set.n; k++) {
		const struct zsvc *s = &set.svc[set.order[k]];
		for (size_t a = 0; a < s->nafter; a++) {
			size_t pos = 0;
			while (set.order[pos] != s->after[a].idx)
				pos++;
			assert_true(pos < k);
		}
	}
	zsvc_set_free(&set);
	assert_null(set.svc);

	/* an empty directory is fine */
	reset_dir();
	assert_int_equal(zsvc_load_dir(dir, &set, err, sizeof err), 0);
	assert_int_equal(set.n, 0);
	zsvc_set_free(&set);

	assert_int_equal(zsvc_load_dir("/nonexistent-zinit", &set, err, sizeof err), -ENOENT);
	assert_non_null(strstr(err, "/nonexistent-zinit: cannot read the service directory"));
}

/* Load dir, expect failure with err containing each of the strings. */
static void expect_dir_error(const char *const *says, size_t n)
{
	struct zsvc_set set;
	char err[4096] = "";
	int r = zsvc_load_dir(dir, &set, err, sizeof err);
	bool ok = r == -EINVAL;
	for (size_t i = 0; i < n && ok; i++)
		ok = strstr(err, says[i]) != NULL;
	if (!ok) {
		print_message("# got %d: %s\n", r, err);
		for (size_t i = 0; i < n; i++)
			print_message("# want: %s\n", says[i]);
		fail();
	}
	assert_int_equal(set.n, 0);
	assert_null(set.svc);
}

static void test_unknown_after(void **state)
{
	(void)state;
	reset_dir();
	free(write_svc("a", "exec: a\n"));
	char *b = write_svc("b", "exec: b\nafter:\n  - a\n  - stor\n");
	char want[512];
	snprintf(want, sizeof want, "%s:4: after: unknown service 'stor'", b);
	const char *says[] = { want };
	expect_dir_error(says, 1);
	free(b);
}

static void test_cycles(void **state)
{
	(void)state;
	reset_dir();
	free(write_svc("a", "exec: a\nafter: [b]\n"));
	free(write_svc("b", "exec: b\nafter:\n  - ok\n  - c\n"));
	free(write_svc("c", "exec: c\nafter: a\n"));
	free(write_svc("ok", "exec: ok\n"));
	char *a = tu_path(dir, "a.yaml");
	char want[512];
	snprintf(want, sizeof want, "%s:2: dependency cycle: a -> b -> c -> a", a);
	const char *says[] = { want };
	expect_dir_error(says, 1);
	free(a);

	/* a cycle below a service that is not part of it */
	reset_dir();
	free(write_svc("top", "exec: t\nafter: [x]\n"));
	free(write_svc("x", "exec: x\nafter: [y]\n"));
	char *y = write_svc("y", "exec: y\noneshot: true\nafter:\n  - x\n");
	snprintf(want, sizeof want, "dependency cycle: x -> y -> x");
	const char *says2[] = { want, "x.yaml:2:" };
	expect_dir_error(says2, 2);
	free(y);

	/* a service after itself */
	reset_dir();
	free(write_svc("me", "exec: me\nafter: [me]\n"));
	const char *says3[] = { "me.yaml:2: dependency cycle: me -> me" };
	expect_dir_error(says3, 1);
}

static void test_every_bad_file_reported(void **state)
{
	(void)state;
	reset_dir();
	free(write_svc("good", "exec: g\n"));
	free(write_svc("one", "exec: x\noneshot: maybe\n"));
	free(write_svc("two", "exec: x\nshutdown_timeout: -3\n"));
	const char *says[] = { "one.yaml:2: oneshot", "two.yaml:2: shutdown_timeout: must not be "
			       "negative" };
	expect_dir_error(says, 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good_file),
		cmocka_unit_test(test_defaults_and_variants),
		cmocka_unit_test(test_each_bad_file),
		cmocka_unit_test(test_bad_service_names),
		cmocka_unit_test(test_signals),
		cmocka_unit_test(test_dir_and_order),
		cmocka_unit_test(test_unknown_after),
		cmocka_unit_test(test_cycles),
		cmocka_unit_test(test_every_bad_file_reported),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
