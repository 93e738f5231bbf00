/*
 * Every SQL statement of the core, in one place; every value is bound as a parameter.
 *
 * Statements are written once, as templates that read like SQL, and expanded per store
 * (aj_sql_expand) for its dialect and for the shape of the application's tables:
 *   {pg:TEXT} {sqlite:TEXT}  only on that dialect
 *   {KC:TEXT} {KU:TEXT}      only when acidic_job_keys has created_at / updated_at
 *   {SC:TEXT} {SU:TEXT}      only when staged_acidic_jobs has created_at / updated_at
 *   {R:TEXT}                 RETURNING clauses the in-process SQLite driver does without
 *                            (it reports the row id or the change itself: AJ_RESULT_*)
 *   {!FLAG:TEXT}             only when FLAG is absent
 *   @now                     the current UTC time (application timestamps): the
 *                            server's on PostgreSQL, the process's on SQLite
 *   @ts(?) @int(?) @text(?)  a timestamp / integer / text parameter (PostgreSQL casts it)
 *   @us(EXPR)                a timestamp as PostgreSQL's microseconds since the epoch;
 *                            SQLite's text as it is (the core parses it)
 *   @is                      null-safe equality (SQLite IS, PostgreSQL IS NOT DISTINCT FROM)
 * `?` placeholders throughout; PostgreSQL texts get `$1..$n` when expanded.
 */
#ifndef AJ_SQL_H
#define AJ_SQL_H

#include "driver.h"

/* Shape bits of the application's tables (schema.c detects them). */
enum {
    AJ_SHAPE_KC = 1 << 0, /* acidic_job_keys.created_at */
    AJ_SHAPE_KU = 1 << 1, /* acidic_job_keys.updated_at */
    AJ_SHAPE_SC = 1 << 2, /* staged_acidic_jobs.created_at */
    AJ_SHAPE_SU = 1 << 3, /* staged_acidic_jobs.updated_at */
    AJ_SQL_LEAN = 1 << 8  /* not a shape: expand for a driver with AJ_DRV_LEAN */
};

typedef enum aj_stmt {
    /* acquisition (run.c) */
    AJ_Q_ADVISORY,        /* PostgreSQL: serialize acquirers of one key for the transaction */
    AJ_Q_FIND_KEY,        /* the run of a key (PostgreSQL: row-locked) */
    AJ_Q_FIND_ID,         /* the run of a row id (PostgreSQL: row-locked) */
    AJ_Q_FIND_OR_CREATE,  /* PostgreSQL: find the run of a key, or create it, in one statement */
    AJ_Q_CREATE,          /* a new run's row (SQLite; and a failed first attempt's row) */
    AJ_Q_KEY_TAKEN,       /* in-process SQLite, before AJ_Q_CREATE: has the key a row? */
    /* steps (run.c) */
    AJ_Q_CLAIM,           /* the one transition of a run's row: compare-and-set on the lock
                             token and recovery point, then the new state */
    AJ_Q_CLAIM_STEP,      /* AJ_Q_CLAIM for a plain step: only the state a step changes */
    AJ_Q_FAIL,            /* record a failure and release the lock (token checked) */
    AJ_Q_KEY_EXISTS,      /* a claim matched no row: lost lock or deleted row? */
    AJ_Q_LOCK_ROW,        /* PostgreSQL: lock the run's row for a step, if it is still ours */
    AJ_Q_WRITE_LOCK,      /* SQLite: take the write lock first in a transaction that reads
                             before it writes */
    /* outbox and batches (outbox.c) */
    AJ_Q_STAGE,
    AJ_Q_STAGED_DELETE,
    AJ_Q_BATCH_INSERT,
    AJ_Q_BATCH_ARM,
    AJ_Q_BATCH_COMPLETE,  /* no awaited job of the batch is left: the run stops awaiting it
                             (a compare-and-set, so exactly one caller completes it) */
    AJ_Q_BATCH_TAKE,      /* the completed batch's continuation, deleting the batch */
    AJ_Q_DRAIN_PAGE,      /* staged jobs last handed out before the cutoff (keyset) */
    AJ_Q_DRAIN_UNSTAMPED, /* staged jobs never handed out by the core (keyset) */
    AJ_Q_DRAIN_STAMP,
    /* recovery (recover.c) */
    AJ_Q_RECOVER_PAGE,
    AJ_Q_RECOVER_SET,
    AJ_Q_RECOVER_DEAD,
    /* schema (schema.c) */
    AJ_Q_SHAPE,           /* the columns of the four tables */
    AJ_Q_SCHEMA_VERSION,
    /* operator operations (admin.c). They run once in a while, so they take no slot in
     * the drivers' caches of prepared statements (schema.c). */
    AJ_Q_ADMIN_LIST,      /* a page of runs, ascending ids */
    AJ_Q_ADMIN_LIST_DESC, /* a page of runs, descending ids */
    AJ_Q_ADMIN_COUNT,     /* how many runs a filter selects */
    AJ_Q_ADMIN_PICK,      /* a batch of runs to act on (PostgreSQL: SKIP LOCKED) */
    AJ_Q_ADMIN_FIND_KEY,  /* the runs of a key (two at most: more than one is ambiguous) */
    AJ_Q_ADMIN_GET,       /* one run in full */
    AJ_Q_ADMIN_LOCK,      /* one run in full, row-locked (PostgreSQL: NOWAIT) */
    AJ_Q_ADMIN_STAGED,    /* the staged jobs of a run */
    AJ_Q_ADMIN_BATCH,     /* one batch */
    AJ_Q_ADMIN_REQUEUE,   /* retry, reset: compare-and-set on recovery point and lock */
    AJ_Q_ADMIN_UNLOCK,
    AJ_Q_ADMIN_DISCARD,
    AJ_Q_ADMIN_PRUNE,     /* delete a batch of finished runs */
    AJ_Q_ADMIN_STATES,    /* runs by job and state */
    AJ_Q_ADMIN_STRANDED,  /* the run stranded longest */
    AJ_Q_ADMIN_BACKLOG,   /* staged jobs and open batches */
    AJ_Q_ADMIN_OLDEST_STAGED,
    AJ_Q_ADMIN_OLDEST_BATCH,
    AJ_Q_ADMIN_STAGED_PAGE, /* a page of the staged backlog */
    AJ_Q_COUNT
} aj_stmt;

/* The first operator statement: those before it have a prepared-statement slot each. */
#define AJ_Q_ADMIN_FIRST AJ_Q_ADMIN_LIST

/* The template of a statement. Static storage. */
const char *aj_sql_template(aj_stmt stmt);

/* The result a lean driver makes up for `stmt` (AJ_RESULT_*). */
int aj_sql_result(aj_stmt stmt);

/* 1 when `stmt`'s plan does not depend on its parameters' values (aj_sql.generic_plan). */
int aj_sql_generic_plan(aj_stmt stmt);

/* Expand a template for `dialect` (AJ_DIALECT_*) and the shape bits `shape`, with
 * PostgreSQL placeholders rewritten to `$n`. A heap string in *out (caller frees).
 * 0, AJ_ENOMEM, or AJ_ERROR for a malformed template. */
int aj_sql_expand(const char *tmpl, int dialect, unsigned shape, char **out);

/* The core's placeholder rewriter: `?` becomes `$1`, `$2`, ... (and `?N` becomes `$N`),
 * except inside 'literals' (with '' escapes; E'...' with backslash escapes too),
 * "identifiers", -- comments, nested block comments and $tag$ dollar-quoted strings.
 * Returns the number of placeholders; when `out` is not NULL writes the rewritten text
 * there (it needs aj_sql_dollar_size(sql) bytes). */
size_t aj_sql_dollar(const char *sql, char *out);
size_t aj_sql_dollar_size(const char *sql);
/* A heap copy of `sql` with `$n` placeholders, or NULL when out of memory. */
char *aj_sql_dollar_params(const char *sql);
/* Number of placeholders in `sql` (same lexer). */
size_t aj_sql_count_params(const char *sql);

/* 1 when the first keyword of `sql` (after spaces and comments) begins or ends a
 * transaction: BEGIN, START, COMMIT, END, ROLLBACK (not ROLLBACK TO), ABORT,
 * PREPARE TRANSACTION. */
int aj_sql_is_transaction_control(const char *sql);

/* Schema DDL (schema.c). NULL-terminated lists per dialect. */
typedef struct aj_ddl {
    const char *const *create_keys;    /* acidic_job_keys as 0.7.0's generator makes it,
                                          with the core's columns and indexes */
    const char *const *create_staged;
    const char *const *create_batches;
    const char *const *create_schema;
    const char *const *indexes;        /* the core's indexes (IF NOT EXISTS) */
} aj_ddl;
const aj_ddl *aj_sql_ddl(int dialect);

/* A column the core adds to an application table when it is missing. */
typedef struct aj_column {
    char table;            /* 'k' acidic_job_keys, 's' staged_acidic_jobs */
    const char *name;
    const char *sqlite_type;
    const char *pg_type;
} aj_column;
extern const aj_column aj_added_columns[];
extern const size_t aj_added_columns_count;

#endif
