/* zinit/strbuf.h - a growable byte string for replies and messages. */
#ifndef QSFS_ZINIT_STRBUF_H
#define QSFS_ZINIT_STRBUF_H

#include <stdbool.h>
#include <stddef.h>

struct strbuf {
	char *data;	/* always 0-terminated once anything was added */
	size_t len, cap;
	bool oom;	/* an append failed for lack of memory (the text is cut) */
};

/* Append printf-style text. On failure sets sb->oom and keeps what fits. */
void sb_printf(struct strbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Append n bytes. */
void sb_add(struct strbuf *sb, const char *data, size_t n);

/* Free the buffer; it is empty and reusable afterwards. */
void sb_free(struct strbuf *sb);

#endif
