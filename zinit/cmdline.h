/* zinit/cmdline.h - split an `exec` or `test` command line into argv.
 *
 * zinit runs commands without a shell, like upstream zinit. The line is
 * split into words with the quoting rules of a POSIX shell, and nothing
 * else: no variable, tilde, glob or command expansion, no redirection or
 * pipes ($, *, ~, |, ;, > and & are ordinary characters). Write
 * `sh -c '...'` to get a shell.
 *
 *   - blanks (space, tab, newline) separate words;
 *   - '...' keeps everything up to the next ' literally;
 *   - "..." keeps everything literally except that a backslash before
 *     $ ` " \ or a newline quotes that character (backslash-newline is
 *     removed), as in sh;
 *   - outside quotes a backslash quotes the next character
 *     (backslash-newline is removed);
 *   - quoted and unquoted parts next to each other make one word, and
 *     '' or "" is an empty word.
 */
#ifndef QSFS_ZINIT_CMDLINE_H
#define QSFS_ZINIT_CMDLINE_H

/* Split line into a NULL-terminated vector of malloc'd words (free it with
 * cmdline_free). Returns 0, -EINVAL with *why set to a static explanation
 * (unterminated quote, trailing backslash, no words at all), or -ENOMEM. */
int cmdline_split(const char *line, char ***argv, const char **why);

/* Free a vector from cmdline_split (NULL is fine). */
void cmdline_free(char **argv);

#endif
