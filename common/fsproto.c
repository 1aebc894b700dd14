/* common/fsproto.c - see fsproto.h. */
#include "fsproto.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static const char *const words[FS_NOPS] = {
	[FS_PING] = "PING", [FS_SEAL] = "SEAL", [FS_STATUS] = "STATUS",
	[FS_WARMUP] = "WARMUP", [FS_GC] = "GC",
};

const char *fsproto_word(enum fs_op op)
{
	return op < FS_NOPS ? words[op] : "?";
}

int fsproto_parse(const char *line, enum fs_op *op, const char **arg, char *err, size_t errlen)
{
	*arg = "";
	for (int i = 0; i < FS_NOPS; i++) {
		size_t n = strlen(words[i]);
		if (strncmp(line, words[i], n))
			continue;
		if (!line[n]) {
			*op = (enum fs_op)i;
			return 0;
		}
		if (i == FS_GC && line[n] == ' ') {	/* the only request with an argument */
			*op = FS_GC;
			*arg = line + n + 1;
			return 0;
		}
	}
	snprintf(err, errlen, "unknown request '%.64s' (PING, SEAL, STATUS, WARMUP, GC)", line);
	return -EINVAL;
}

int fsproto_format(enum fs_op op, unsigned seconds, char *buf, size_t cap)
{
	if (op >= FS_NOPS)
		return -EINVAL;
	int n = op == FS_GC && seconds ? snprintf(buf, cap, "GC %u\n", seconds)
				       : snprintf(buf, cap, "%s\n", words[op]);
	return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : n;
}
