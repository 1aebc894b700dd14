/* zinit/output.h - service output: cutting a byte stream into lines, and
 * the bounded ring of recent lines kept per service for `zinit log`.
 *
 * A service's stdout and stderr are one pipe, read without blocking. Bytes
 * are gathered until a newline; a line longer than OUT_LINE_MAX - 1 bytes
 * is cut into pieces of that size (each its own line), and a last partial
 * line is emitted when the pipe ends, so neither a missing newline nor a
 * huge line can stall or overflow anything. Each ring keeps the newest
 * OUT_RING_LINES lines; every line carries a global sequence number so that
 * the rings of several services can be merged in arrival order.
 */
#ifndef QSFS_ZINIT_OUTPUT_H
#define QSFS_ZINIT_OUTPUT_H

#include <stddef.h>
#include <stdint.h>

#define OUT_LINE_MAX 4096	/* bytes per line, with its terminating 0 */
#define OUT_RING_LINES 1000	/* lines kept per service */

struct linebuf {
	char buf[OUT_LINE_MAX];
	size_t len;
};

/* Called for every whole line (without its newline; line[len] is 0). */
typedef void (*line_fn)(void *arg, const char *line, size_t len);

/* Add n bytes of output; call emit for every line they complete. */
void linebuf_feed(struct linebuf *lb, const char *data, size_t n, line_fn emit, void *arg);

/* The stream ended: emit what is left as a last line (if anything). */
void linebuf_flush(struct linebuf *lb, line_fn emit, void *arg);

struct ring_line {
	uint64_t seq;
	char *text;
};

struct ring {
	struct ring_line *lines;	/* OUT_RING_LINES slots, allocated on first use */
	size_t start, count;		/* oldest slot, number of lines held */
};

/* Keep a copy of line (len bytes) with sequence number seq, dropping the
 * oldest line when full. Returns 0 or -ENOMEM (the line is then lost). */
int ring_push(struct ring *r, uint64_t seq, const char *line, size_t len);

/* The i-th oldest line held (i < r->count). */
const struct ring_line *ring_get(const struct ring *r, size_t i);

/* Free every line; the ring is empty and reusable afterwards. */
void ring_free(struct ring *r);

#endif
