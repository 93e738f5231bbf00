/* The thread-local last error, and keeping secrets out of it. */
#ifndef AJ_ERROR_H
#define AJ_ERROR_H

#include "acidic_job.h"

#include <stddef.h>

/* Internal codes: never returned by a public function. */
enum {
    /* A statement found a table or column missing, or a NOT NULL timestamp the core did
     * not fill: the tables changed under the store. The transaction is retried once
     * after the tables are detected and healed again (tx.c). */
    AJ_ESTALE = -100
};

/* Set this thread's last error and return `code`, so callers can `return aj_error_set(...)`.
 * The message is formatted printf-style, truncated to a fixed size, and scrubbed of
 * anything that looks like a password (aj_scrub_secrets). Clears the SQLSTATE. */
int aj_error_set(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The SQLSTATE of the database error behind the last error ("" when none). Drivers set
 * it right after aj_error_set; SQLite errors get the PostgreSQL state of the same
 * condition (23505 unique violation, 23502 not null, 42P01 / 42703 missing table or
 * column), so that the layers above test one code. */
void aj_error_set_state(const char *sqlstate);
const char *aj_error_state(void);

/* Keep the current error across cleanup calls that may overwrite it (a rollback). */
typedef struct aj_saved_error {
    int code;
    char state[6];
    char message[1024];
} aj_saved_error;
void aj_error_save(aj_saved_error *saved);
/* Make `saved` the last error again; returns its code. */
int aj_error_restore(const aj_saved_error *saved);

/* Copy `conninfo` (a URL or a libpq conninfo string) into `out` with every password
 * replaced by "***": the password of URI userinfo (scheme://user:secret@host, where the
 * userinfo ends at the last '@' of the authority, so a '/' in an unencoded password does
 * not hide it), and the value of every key that looks like one (password, passwd, pwd,
 * PASSWORD ...), in conninfo and in URI query parameters. */
void aj_redact_url(const char *conninfo, char *out, size_t outsz);

/* Scrub a message in place: every password-like "key = value" and URI userinfo
 * password becomes "***" (aj_error_set does this to every message). */
void aj_scrub_secrets(char *msg, size_t cap);

/* Scrub a message in place of everything `conninfo` holds secret: the values
 * aj_redact_url removes, the password libpq itself parses out of it, and any quoted
 * piece of the message that libpq copied from the secret part of `conninfo`. */
void aj_scrub_conninfo(char *msg, size_t cap, const char *conninfo);

#endif
