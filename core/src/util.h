/* Small helpers shared by the core: owned strings, documents, UTC timestamps. */
#ifndef AJ_UTIL_H
#define AJ_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* A heap copy of `len` bytes plus a NUL, or NULL when out of memory. */
char *aj_strndup(const char *s, size_t len);
char *aj_strdup(const char *s);

/* Replace *slot with a copy of (s, len); frees the old value. 0 or AJ_ENOMEM.
 * s == NULL stores NULL. */
int aj_set_str(char **slot, size_t *slot_len, const char *s, size_t len);

/* Check a document from a binding: not NULL (unless len is 0), no NUL byte, valid
 * UTF-8. `what` names it in the error message. 0 or AJ_EINVALID. */
int aj_check_doc(const char *doc, size_t len, const char *what);
/* Same for a NUL-terminated name: non-empty, valid UTF-8, at most 255 bytes. */
int aj_check_name(const char *name, const char *what);

/* Microseconds since the epoch (UTC, wall clock). */
int64_t aj_now_us(void);
/* Format as "YYYY-MM-DD HH:MM:SS.ffffff" (UTC) into buf (at least 32 bytes). */
void aj_format_time(int64_t us, char buf[32]);
/* Parse "YYYY-MM-DD[ T]HH:MM:SS[.f...]" (UTC; a trailing zone offset or Z is honoured).
 * 0 and *us set, or -1 when malformed. */
int aj_parse_time(const char *s, int64_t *us);

#endif
