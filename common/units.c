/* common/units.c - see units.h */
#include "units.h"

#include <ctype.h>
#include <errno.h>
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
