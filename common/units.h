/* common/units.h - sizes as users write them ("64MiB", "512k", "4096"). */
#ifndef QSFS_UNITS_H
#define QSFS_UNITS_H

#include <stddef.h>
#include <stdint.h>

/* Parse a byte size: digits, then optionally K/M/G/T with an optional "iB"
 * or "B" (all powers of 1024, case-insensitive). Returns 0 or -EINVAL for
 * anything else, including overflow and an empty string. */
int parse_size(const char *s, uint64_t *out);

/* Write n bytes as people read them: "512 bytes", "4.0 KiB", "1.5 GiB"
 * (powers of 1024, one decimal). Returns buf. */
const char *format_size(uint64_t n, char *buf, size_t len);

#endif
