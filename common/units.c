/* common/units.c - see units.h */
#include "units.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

int parse_size(const char *s, uint64_t *out)
{
	if (!s || !isdigit((unsigned char)*s))
		return -EINVAL;
	uint64_t v = 0;
	for (; isdigit((unsigned char)*s); s++) {
		if (v > (UINT64_MAX - 9) / 10)
			return -EINVAL;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	int shift = 0;
	char u = (char)tolower((unsigned char)*s);
	if (u == 'k') shift = 10;
	else if (u == 'm') shift = 20;
	else if (u == 'g') shift = 30;
	else if (u == 't') shift = 40;
	if (shift) {
		s++;
		if (!strcasecmp(s, "ib") || !strcasecmp(s, "b"))
			s += strlen(s);
	} else if (!strcasecmp(s, "b")) {
		s++;
	}
	if (*s)
		return -EINVAL;
	if (shift && v > (UINT64_MAX >> shift))
		return -EINVAL;
	*out = v << shift;
	return 0;
}

const char *format_size(uint64_t n, char *buf, size_t len)
{
	static const char *unit[] = { "KiB", "MiB", "GiB", "TiB", "PiB" };
	if (n < 1024) {
		snprintf(buf, len, "%llu bytes", (unsigned long long)n);
		return buf;
	}
	double v = (double)n / 1024;
	size_t u = 0;
	while (v >= 1024 && u + 1 < sizeof unit / sizeof *unit) {
		v /= 1024;
		u++;
	}
	snprintf(buf, len, "%.1f %s", v, unit[u]);
	return buf;
}
