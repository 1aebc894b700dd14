/* common/yamlfile.c - see yamlfile.h */
#include "yamlfile.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

int yamlfile_load(const char *path, yaml_document_t *doc, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		int e = errno;
		snprintf(err, errlen, "%s: cannot read: %s", path, strerror(e));
		return -e;
	}
	yaml_parser_t parser;
	yaml_parser_initialize(&parser);
	yaml_parser_set_input_file(&parser, f);
	int r = 0;
	if (!yaml_parser_load(&parser, doc)) {
		char where[64] = "";
		if (parser.context && parser.context_mark.line != parser.problem_mark.line)
			snprintf(where, sizeof where, " (which began on line %zu)",
				 parser.context_mark.line + 1);
		snprintf(err, errlen, "%s:%zu: YAML syntax error: %s%s%s%s", path,
			 parser.problem_mark.line + 1, parser.problem ? parser.problem : "?",
			 parser.context ? " " : "", parser.context ? parser.context : "", where);
		r = -EINVAL;
	}
	yaml_parser_delete(&parser);	/* the document does not need it */
	fclose(f);
	return r;
}

int yamlfile_vfail(char *err, size_t errlen, const char *file, const yaml_node_t *n,
		   const char *fmt, va_list ap)
{
	int k = n ? snprintf(err, errlen, "%s:%zu: ", file, n->start_mark.line + 1)
		  : snprintf(err, errlen, "%s: ", file);
	if (k >= 0 && (size_t)k < errlen)
		vsnprintf(err + k, errlen - (size_t)k, fmt, ap);
	return -EINVAL;
}

const char *yamlfile_scalar(const yaml_node_t *n)
{
	return n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}
