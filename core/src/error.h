/* The thread-local last error. */
#ifndef AJ_ERROR_H
#define AJ_ERROR_H

#include "acidic_job.h"

/* Set this thread's last error and return `code`, so callers can `return aj_error_set(...)`.
 * The message is formatted printf-style and truncated to a fixed size. */
int aj_error_set(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Keep the current error across cleanup calls that may overwrite it (a rollback). */
typedef struct aj_saved_error {
    int code;
    char message[1024];
} aj_saved_error;
void aj_error_save(aj_saved_error *saved);
/* Make `saved` the last error again; returns its code. */
int aj_error_restore(const aj_saved_error *saved);

/* Copy `url` into `out` (size outsz) with any password replaced by "***":
 * both URI form (scheme://user:secret@host) and conninfo form (password=secret). */
void aj_redact_url(const char *url, char *out, size_t outsz);

#endif
