/* The thread-local last error. */
#ifndef AJ_ERROR_H
#define AJ_ERROR_H

#include "acidic_job.h"

/* Set this thread's last error and return `code`, so callers can `return aj_error_set(...)`.
 * The message is formatted printf-style and truncated to a fixed size. */
int aj_error_set(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Copy `url` into `out` (size outsz) with any password replaced by "***":
 * both URI form (scheme://user:secret@host) and conninfo form (password=secret). */
void aj_redact_url(const char *url, char *out, size_t outsz);

#endif
