/* common/yamlfile.h - YAML files read with libyaml (the qsfs configuration,
 * zinit's service files), and errors that name FILE:LINE.
 */
#ifndef QSFS_COMMON_YAMLFILE_H
#define QSFS_COMMON_YAMLFILE_H

#include <stdarg.h>
#include <stddef.h>
#include <yaml.h>

/* Load path into *doc (free it with yaml_document_delete). Returns 0 (the
 * root is NULL for an empty file); -errno when the file cannot be read
 * (err: "PATH: cannot read: why"); -EINVAL on a syntax error (err:
 * "PATH:LINE: YAML syntax error: problem[ context][ (which began on line
 * N)]"). */
int yamlfile_load(const char *path, yaml_document_t *doc, char *err, size_t errlen);

/* Write "FILE:LINE: " (n's line; "FILE: " when n is NULL) and the message
 * into err. Returns -EINVAL, for `return yamlfile_vfail(...)`. */
int yamlfile_vfail(char *err, size_t errlen, const char *file, const yaml_node_t *n,
		   const char *fmt, va_list ap) __attribute__((format(printf, 5, 0)));

/* n's text when n is a scalar, else NULL. */
const char *yamlfile_scalar(const yaml_node_t *n);

#endif
