/* tests/unit/test_zinit_text.c - the text handling of zinit: splitting
 * `exec`/`test` command lines (shell quoting, no expansion), cutting
 * service output into lines (partial and over-long lines), and the
 * bounded ring of recent lines. */
#include "testutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../zinit/cmdline.h"
#include "../../zinit/output.h"

static const struct {
	const char *line;
	const char *words[6];	/* NULL-terminated */
} splits[] = {
	{ "sleep 10", { "sleep", "10", NULL } },
	{ "  a\t b \n c  ", { "a", "b", "c", NULL } },
	{ "sh -c 'echo $HOME; ls *'", { "sh", "-c", "echo $HOME; ls *", NULL } },
	{ "echo \"a  b\" 'c  d'", { "echo", "a  b", "c  d", NULL } },
	{ "a'b'\"c\"d", { "abcd", NULL } },
	{ "x '' \"\"", { "x", "", "", NULL } },
	{ "echo \"q\\\"x\\\\y\\$z\\n\"", { "echo", "q\"x\\y$z\\n", NULL } },
	{ "echo a\\ b c\\'d", { "echo", "a b", "c'd", NULL } },
	{ "echo 'it\\s'", { "echo", "it\\s", NULL } },
	{ "a \\\n b", { "a", "b", NULL } },
	{ "echo ~ $X `id` a|b >f &", { "echo", "~", "$X", "`id`", "a|b", NULL } },
};

static void test_split(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof splits / sizeof *splits; i++) {
		char **argv;
		const char *why;
		int r = cmdline_split(splits[i].line, &argv, &why);
		if (r) {
			print_message("# '%s': %s\n", splits[i].line, why);
			fail();
		}
		size_t k = 0;
		for (; splits[i].words[k]; k++) {
			if (!argv[k] || strcmp(argv[k], splits[i].words[k])) {
				print_message("# '%s': word %zu is '%s', want '%s'\n", splits[i].line,
					      k, argv[k] ? argv[k] : "(none)", splits[i].words[k]);
				fail();
			}
		}
		/* the redirect case keeps going: check only that no word is extra */
		if (i != sizeof splits / sizeof *splits - 1)
			assert_null(argv[k]);
		cmdline_free(argv);
	}
}

static void test_split_errors(void **state)
{
	(void)state;
	const struct {
		const char *line, *why;
	} bad[] = {
		{ "echo 'abc", "unterminated single quote" },
		{ "echo \"abc", "unterminated double quote" },
		{ "echo \"abc\\\"", "unterminated double quote" },
		{ "echo abc\\", "backslash at the end" },
		{ "", "empty" },
		{ " \t\n ", "empty" },
	};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		char **argv = (char **)1;
		const char *why = NULL;
		assert_int_equal(cmdline_split(bad[i].line, &argv, &why), -EINVAL);
		assert_null(argv);
		assert_non_null(why);
		if (!strstr(why, bad[i].why)) {
			print_message("# '%s': %s\n", bad[i].line, why);
			fail();
		}
	}
}

/* Collects emitted lines, '|'-separated. */
struct got {
	char text[4 * OUT_LINE_MAX];
	size_t lines;
	size_t longest;
};

static void collect(void *arg, const char *line, size_t len)
{
	struct got *g = arg;
	assert_int_equal(strlen(line), len);	/* 0-terminated, no newline */
	assert_null(memchr(line, '\n', len));
	size_t n = strlen(g->text);
	snprintf(g->text + n, sizeof g->text - n, "%s%.*s", g->lines ? "|" : "",
		 len > 20 ? 20 : (int)len, line);
	g->lines++;
	if (len > g->longest)
		g->longest = len;
}

static void test_lines(void **state)
{
	(void)state;
	struct linebuf lb = { .len = 0 };
	struct got g = { .lines = 0 };
	/* lines split over several reads, an empty line, a partial last one */
	const char *parts[] = { "hel", "lo\nwor", "ld\n", "\n", "a\nb\nc", "d" };
	for (size_t i = 0; i < 6; i++)
		linebuf_feed(&lb, parts[i], strlen(parts[i]), collect, &g);
	assert_string_equal(g.text, "hello|world||a|b");
	assert_int_equal(lb.len, 2);	/* "cd" waits for its newline */
	linebuf_flush(&lb, collect, &g);
	assert_string_equal(g.text, "hello|world||a|b|cd");
	linebuf_flush(&lb, collect, &g);	/* nothing more */
	assert_int_equal(g.lines, 6);
}

static void test_long_line(void **state)
{
	(void)state;
	/* 2.5 buffers of 'x' without a newline, then "\nok\n": cut into pieces
	 * of OUT_LINE_MAX - 1 bytes, nothing lost, nothing overflows */
	size_t n = OUT_LINE_MAX * 5 / 2;
	char *big = malloc(n + 4);
	memset(big, 'x', n);
	memcpy(big + n, "\nok\n", 4);
	struct linebuf lb = { .len = 0 };
	struct got g = { .lines = 0 };
	size_t total = 0;
	for (size_t off = 0; off < n + 4; off += 1000) {
		size_t k = n + 4 - off < 1000 ? n + 4 - off : 1000;
		linebuf_feed(&lb, big + off, k, collect, &g);
	}
	assert_int_equal(g.lines, 4);	/* 2 full pieces, the rest, "ok" */
	assert_int_equal(g.longest, OUT_LINE_MAX - 1);
	total = 2 * (OUT_LINE_MAX - 1);
	assert_true(total < n);
	assert_non_null(strstr(g.text, "|ok"));
	assert_int_equal(lb.len, 0);
	/* a line of exactly OUT_LINE_MAX - 1 bytes plus its newline is one line */
	struct got g2 = { .lines = 0 };
	linebuf_feed(&lb, big, OUT_LINE_MAX - 1, collect, &g2);
	linebuf_feed(&lb, "\nz\n", 3, collect, &g2);
	assert_int_equal(g2.lines, 2);
	free(big);
}

static void test_ring(void **state)
{
	(void)state;
	struct ring r = { .count = 0 };
	char line[32];
	for (int i = 0; i < OUT_RING_LINES + 250; i++) {
		int n = snprintf(line, sizeof line, "line %d", i);
		assert_int_equal(ring_push(&r, (uint64_t)i + 1, line, (size_t)n), 0);
	}
	/* bounded: the newest OUT_RING_LINES lines, oldest first */
	assert_int_equal(r.count, OUT_RING_LINES);
	assert_string_equal(ring_get(&r, 0)->text, "line 250");
	assert_int_equal(ring_get(&r, 0)->seq, 251);
	snprintf(line, sizeof line, "line %d", OUT_RING_LINES + 249);
	assert_string_equal(ring_get(&r, OUT_RING_LINES - 1)->text, line);
	for (size_t i = 1; i < r.count; i++)
		assert_true(ring_get(&r, i)->seq > ring_get(&r, i - 1)->seq);
	ring_free(&r);
	assert_int_equal(r.count, 0);
	/* reusable after free; a line may hold any bytes up to its length */
	assert_int_equal(ring_push(&r, 7, "abcdef", 3), 0);
	assert_string_equal(ring_get(&r, 0)->text, "abc");
	ring_free(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_split),
		cmocka_unit_test(test_split_errors),
		cmocka_unit_test(test_lines),
		cmocka_unit_test(test_long_line),
		cmocka_unit_test(test_ring),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
