/* zinit/cmdline.c - see cmdline.h */
#include "cmdline.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

void cmdline_free(char **argv)
{
	if (!argv)
		return;
	for (char **a = argv; *a; a++)
		free(*a);
	free(argv);
}

static bool blank(char c)
{
	return c == ' ' || c == '\t' || c == '\n';
}

int cmdline_split(const char *line, char ***argv, const char **why)
{
	*argv = NULL;
	*why = NULL;
	size_t len = strlen(line);
	/* every word fits in len + 1 bytes; at most len / 2 + 1 words */
	char *word = malloc(len + 1);
	size_t cap = len / 2 + 2, n = 0;
	char **v = calloc(cap, sizeof *v);
	if (!word || !v) {
		free(word);
		free(v);
		return -ENOMEM;
	}
	const char *p = line;
	int r = 0;
	for (;;) {
		while (blank(*p) || (p[0] == '\\' && p[1] == '\n'))
			p += blank(*p) ? 1 : 2;	/* backslash-newline is no word */
		if (!*p)
			break;
		size_t w = 0;
		while (*p && !blank(*p)) {
			if (*p == '\'') {
				const char *end = strchr(p + 1, '\'');
				if (!end) {
					*why = "unterminated single quote";
					r = -EINVAL;
					goto out;
				}
				memcpy(word + w, p + 1, (size_t)(end - p - 1));
				w += (size_t)(end - p - 1);
				p = end + 1;
			} else if (*p == '"') {
				p++;
				while (*p && *p != '"') {
					if (*p == '\\' && p[1] == '\n') {
						p += 2;
						continue;
					}
					if (*p == '\\' && p[1] && strchr("$`\"\\", p[1]))
						p++;
					word[w++] = *p++;
				}
				if (!*p) {
					*why = "unterminated double quote";
					r = -EINVAL;
					goto out;
				}
				p++;
			} else if (*p == '\\') {
				if (!p[1]) {
					*why = "backslash at the end of the command";
					r = -EINVAL;
					goto out;
				}
				if (p[1] != '\n')
					word[w++] = p[1];
				p += 2;
			} else {
				word[w++] = *p++;
			}
		}
		word[w] = 0;
		v[n] = strdup(word);
		if (!v[n]) {
			r = -ENOMEM;
			goto out;
		}
		n++;
	}
	if (!n) {
		*why = "the command is empty";
		r = -EINVAL;
	}
out:
	free(word);
	if (r) {
		cmdline_free(v);
		return r;
	}
	*argv = v;
	return 0;
}
