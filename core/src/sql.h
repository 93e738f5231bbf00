/* Every SQL statement of the core, in one place. `?` placeholders throughout; every
 * value is bound as a parameter. Statements that differ between dialects come from
 * aj_sql_for(). */
#ifndef AJ_SQL_H
#define AJ_SQL_H

#include "driver.h"

typedef enum aj_stmt {
    AJ_Q_KEY_FIND,        /* acquire: the key row and whether it awaits a batch */
    AJ_Q_KEY_INSERT,      /* acquire: a new run, locked, at the first step */
    AJ_Q_KEY_LOCK,        /* acquire: lock an existing run */
    AJ_Q_STEP_CLAIM,      /* step start: lock the run row if it still carries our lock
                             token and recovery point, and advance it to the planned next
                             step; clears the error */
    AJ_Q_STEP_AMEND,      /* step end, only when the step changed attributes or route */
    AJ_Q_KEY_EXISTS,      /* a claim that matched no row: lost lock or deleted row? */
    AJ_Q_KEY_FAIL,        /* failed step: record the error and release our lock */
    AJ_Q_STAGE,           /* stage a job (optionally in a batch) */
    AJ_Q_STAGED_DELETE,   /* acknowledge: delete, returning its batch */
    AJ_Q_BATCH_INSERT,    /* first awaited job of a step: open its batch */
    AJ_Q_BATCH_ARM,       /* end of the awaits step: count and continuation */
    AJ_Q_BATCH_COUNTDOWN, /* an awaited job succeeded */
    AJ_Q_BATCH_DELETE,    /* the batch completed */
    AJ_Q_DRAIN_SELECT,    /* staged jobs due for (re)delivery */
    AJ_Q_DRAIN_TOUCH,     /* stamp a delivered staged job */
    AJ_Q_COUNT
} aj_stmt;

/* The statement for a dialect (AJ_DIALECT_*). Static storage. */
const aj_sql *aj_sql_for(int dialect, aj_stmt stmt);

/* Schema migrations, applied in order inside one transaction by migrate.c. */
typedef struct aj_migration {
    int version;
    const char *const *sqlite;   /* NULL-terminated lists of statements */
    const char *const *postgres;
} aj_migration;

extern const aj_migration aj_migrations[];
extern const size_t aj_migrations_count;

/* Rewrite `?` placeholders as `$1..$n`, leaving quoted literals and identifiers alone.
 * Returns a heap string (caller frees) or NULL when out of memory. */
char *aj_sql_dollar_params(const char *sql);

#endif
