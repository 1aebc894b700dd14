/* zinit/output.c - see output.h */
#include "output.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void linebuf_feed(struct linebuf *lb, const char *data, size_t n, line_fn emit, void *arg)
{
	while (n) {
		if (lb->len == OUT_LINE_MAX - 1) {
			/* full: out it goes as a piece of a longer line, or as
			 * the whole line when its newline comes next */
			if (*data == '\n') {
				data++;
				n--;
			}
			lb->buf[lb->len] = 0;
			emit(arg, lb->buf, lb->len);
			lb->len = 0;
			continue;
		}
		const char *nl = memchr(data, '\n', n);
		size_t take = nl ? (size_t)(nl - data) : n;
		size_t room = OUT_LINE_MAX - 1 - lb->len;
		if (take > room)
			take = room;
		memcpy(lb->buf + lb->len, data, take);
		lb->len += take;
		data += take;
		n -= take;
		if (n && *data == '\n' && lb->len < OUT_LINE_MAX - 1) {
			data++;
			n--;
			lb->buf[lb->len] = 0;
			emit(arg, lb->buf, lb->len);
			lb->len = 0;
		}
	}
}

void linebuf_flush(struct linebuf *lb, line_fn emit, void *arg)
{
	if (!lb->len)
		return;
	lb->buf[lb->len] = 0;
	emit(arg, lb->buf, lb->len);
	lb->len = 0;
}

int ring_push(struct ring *r, uint64_t seq, const char *line, size_t len)
{
	if (!r->lines) {
		r->lines = calloc(OUT_RING_LINES, sizeof *r->lines);
		if (!r->lines)
			return -ENOMEM;
	}
	char *copy = malloc(len + 1);
	if (!copy)
		return -ENOMEM;
	memcpy(copy, line, len);
	copy[len] = 0;
	struct ring_line *slot;
	if (r->count == OUT_RING_LINES) {
		slot = &r->lines[r->start];
		free(slot->text);
		r->start = (r->start + 1) % OUT_RING_LINES;
	} else {
		slot = &r->lines[(r->start + r->count) % OUT_RING_LINES];
		r->count++;
	}
	slot->seq = seq;
	slot->text = copy;
	return 0;
}

const struct ring_line *ring_get(const struct ring *r, size_t i)
{
	return &r->lines[(r->start + i) % OUT_RING_LINES];
}

void ring_free(struct ring *r)
{
	for (size_t i = 0; i < r->count; i++)
		free(r->lines[(r->start + i) % OUT_RING_LINES].text);
	free(r->lines);
	memset(r, 0, sizeof *r);
}
