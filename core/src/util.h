/* Small helpers shared by the core: owned strings, documents, growable arrays, UTC
 * timestamps, durations and backoff. */
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

/* The one growable array of the core: make room for `need` elements of `size` bytes in
 * *items (capacity *cap, doubling). 0 or AJ_ENOMEM (error set; *items unchanged). */
int aj_grow(void **items, size_t *cap, size_t need, size_t size);

/* A growing string (SQL, JSON): append, then take the result. Out of memory is
 * remembered and reported once, by aj_buf_take. */
typedef struct aj_buf {
    char *s;
    size_t len, cap;
    int oom;
} aj_buf;
void aj_buf_put(aj_buf *b, const char *s, size_t n);
void aj_buf_puts(aj_buf *b, const char *s);
/* `s` as a JSON string literal, quotes included. */
void aj_buf_json(aj_buf *b, const char *s);
/* The text in *out (caller frees; never NULL on success), or AJ_ENOMEM. */
int aj_buf_take(aj_buf *b, char **out);

/* An arena: allocations released all at once (the results the operator calls hand
 * out). Out of memory is remembered in `oom`. */
typedef struct aj_arena_block aj_arena_block;
typedef struct aj_arena {
    aj_arena_block *blocks;
    int oom;
} aj_arena;
/* `size` zeroed bytes, aligned for any type; NULL (and oom set) when out of memory. */
void *aj_arena_alloc(aj_arena *a, size_t size);
/* A copy of `len` bytes plus a NUL; NULL for s == NULL, or when out of memory. */
char *aj_arena_strndup(aj_arena *a, const char *s, size_t len);
char *aj_arena_strdup(aj_arena *a, const char *s);
void aj_arena_free(aj_arena *a);

/* Check a document from a binding: not NULL (unless len is 0), no NUL byte, valid
 * UTF-8. `what` names it in the error message. 0 or AJ_EINVALID. */
int aj_check_doc(const char *doc, size_t len, const char *what);
/* Same for a NUL-terminated name: non-empty, valid UTF-8, at most 255 bytes. */
int aj_check_name(const char *name, const char *what);

/* The longest duration the core computes with (100 years): larger timeouts are clamped
 * to it, so that no time arithmetic can overflow. */
#define AJ_MAX_DURATION_MS ((int64_t)100 * 366 * 24 * 3600 * 1000)

/* Microseconds since the epoch (UTC, wall clock). */
int64_t aj_now_us(void);
/* `us` plus `ms` milliseconds, saturating instead of overflowing. */
int64_t aj_add_ms(int64_t us, int64_t ms);
/* Format as "YYYY-MM-DD HH:MM:SS.ffffff" (UTC) into buf (at least 32 bytes). Times
 * outside years 1..9999 are clamped into that range. */
void aj_format_time(int64_t us, char buf[32]);
/* Parse "YYYY-MM-DD[ T]HH:MM:SS[.f...]" (UTC; a trailing zone offset or Z is honoured).
 * 0 and *us set, or -1 when malformed. */
int aj_parse_time(const char *s, int64_t *us);
/* A duration for people: "250 ms", "90 s", "15 min", "2 h", "3 days". */
void aj_format_duration(int64_t ms, char buf[32]);

/* Sleep before retry number `attempt` (0-based): 1, 2, 4 ... ms, capped at 256 ms, plus
 * jitter, so that racing workers spread out. */
void aj_backoff(int attempt);

/* "host:pid" of this process, for the lock owner column. */
void aj_process_name(char *buf, size_t cap);

#endif
