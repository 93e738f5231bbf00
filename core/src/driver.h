/*
 * The storage driver table. A driver executes the core's SQL on one connection and
 * controls transactions on it when the core owns them; all workflow logic lives above
 * it (run.c, outbox.c, recover.c). A third database is one new file that fills this
 * table.
 */
#ifndef AJ_DRIVER_H
#define AJ_DRIVER_H

#include "acidic_job.h"
#include "rows.h"

/* One SQL statement. `text` is in the driver's dialect; `native` is 1 when its
 * placeholders are already the dialect's own ($n on PostgreSQL: the core's expanded
 * statements), 0 when they are `?` (application SQL; the driver rewrites them).
 * `slot` (0 <= slot < AJ_SQL_SLOTS) names the statement in the driver's cache of
 * prepared statements; -1 is an ad-hoc statement that is not cached. */
typedef struct aj_sql {
    int slot;
    const char *text;
    int native;
    int result; /* AJ_RESULT_*: a result the driver makes up for a statement whose
                   RETURNING clause was left out for it (drivers with AJ_DRV_LEAN) */
    int generic_plan; /* 1: the statement's plan does not depend on its parameters' values
                         (see aj_sql_generic_plan); a driver may plan it once */
} aj_sql;

enum {
    AJ_RESULT_RETURNED = 0, /* the statement's own rows */
    AJ_RESULT_ROWID = 1,    /* an INSERT: one row, the new row's id, when it inserted one */
    AJ_RESULT_CHANGED = 2   /* an UPDATE: one row (1) when it changed a row, else none */
};

#define AJ_SQL_SLOTS 32

/* One statement of a batch, with its parameters and where its rows go (NULL: the rows
 * are discarded). */
typedef struct aj_call {
    const aj_sql *sql;
    const aj_value *params;
    size_t nparams;
    aj_rows *rows;
} aj_call;

/* Flags of exec. */
enum {
    AJ_X_COMMIT = 1 << 0 /* commit after the last call, in the same round trip (only in a
                            transaction the driver began, or a host's top-level one with
                            aj_host_tx.commit_in_body); on failure it rolls back */
};

/* Transaction modes of begin. */
enum {
    AJ_BEGIN_DEFERRED = 0,    /* SQLite BEGIN (the first write takes the lock); PostgreSQL BEGIN */
    AJ_BEGIN_IMMEDIATE = 1,   /* SQLite BEGIN IMMEDIATE; PostgreSQL BEGIN */
    AJ_BEGIN_SERIALIZABLE = 2 /* PostgreSQL BEGIN ISOLATION LEVEL SERIALIZABLE; SQLite IMMEDIATE */
};

/* Features of a driver (aj_driver.features). */
enum {
    /* SQLite in process: the core's statements drop RETURNING where a row id or a
     * changed-row count says the same (AJ_RESULT_*), and read the time from
     * acidic_job_now() rather than strftime(): both cost SQLite more than the statement. */
    AJ_DRV_LEAN = 1 << 0,
    /* A statement outside a transaction is a transaction of its own (SQLite in process; a
     * host's exec may begin one). */
    AJ_DRV_READS_ALONE = 1 << 1,
    /* The driver acts on whether a host's transaction is top-level (tx_begun's
     * `toplevel`): it may ask for generic plans there, and exec's AJ_X_COMMIT works in it
     * (libpq: the COMMIT rides in the pipeline; aj_host_tx's commit_in_body). */
    AJ_DRV_HOST_TOPLEVEL = 1 << 2
};

typedef struct aj_driver {
    const char *name; /* "sqlite", "postgres", "host" */
    int dialect;      /* AJ_DIALECT_* */
    unsigned features; /* AJ_DRV_* */

    /* Execute `ncalls` statements in order, stopping at the first failure; a driver that
     * can pipeline (libpq) sends them, with a pending BEGIN and the COMMIT of
     * AJ_X_COMMIT, in one round trip. Each call's rows are reset and filled with copies
     * of its result. On failure: the error is set with aj_error_set (AJ_ECONFLICT for a
     * serialization failure, deadlock or busy database; AJ_ESTALE for a missing table or
     * column; AJ_EDATABASE for the rest) and its SQLSTATE with aj_error_set_state. */
    int (*exec)(void *conn, const aj_call *calls, size_t ncalls, unsigned flags);

    /* Transaction control, used only when the core owns the transactions of the
     * connection (its own connections; borrowed ones without a host hook table).
     * begin may defer sending BEGIN to the next exec (PostgreSQL does, to save a round
     * trip). rollback never fails loudly: nothing to roll back is success. NULL for the
     * host driver. */
    int (*begin)(void *conn, int mode);
    int (*commit)(void *conn);
    void (*rollback)(void *conn);

    /* 1 when a transaction is open on the connection (a deferred BEGIN counts), else 0. */
    int (*in_transaction)(void *conn);

    /* At the start of every transaction body, owned or the host's, before its first
     * statement. `toplevel` is 1 when the transaction is the core's alone: the driver's
     * own, or one a host opened on a connection that had none open (not a savepoint in
     * the application's transaction). May be NULL. */
    void (*tx_begun)(void *conn, int toplevel);

    /* Before a transaction on a connection the driver opened: reconnect when it was
     * lost (the server restarted, a pipeline was cut). 0 or AJ_EDATABASE. May be NULL. */
    int (*ensure_connected)(void *conn);

    /* Release the connection. `owned` is 0 for a borrowed handle (free only the
     * driver's own memory), `forked` is 1 in a child process after fork() (do not talk
     * to the server or the file: just free memory). */
    void (*close)(void *conn, int owned, int forked);
} aj_driver;

/* Constructors, one per driver file. Each returns 0 and sets *driver / *conn, or an
 * error code with aj_error_set called. */
int aj_sqlite_open(const aj_driver **driver, void **conn, const char *path,
                   const aj_options *opts);
int aj_sqlite_borrow(const aj_driver **driver, void **conn, struct sqlite3 *db);
int aj_pg_open(const aj_driver **driver, void **conn, const char *conninfo,
               const aj_options *opts);
int aj_pg_borrow(const aj_driver **driver, void **conn, struct pg_conn *pg);
int aj_host_open(const aj_driver **driver, void **conn, int dialect, const aj_host_ops *ops,
                 void *ctx);

/* Native handles (NULL when the connection is not of that kind). */
struct sqlite3 *aj_sqlite_handle(void *conn);
struct pg_conn *aj_pg_handle(void *conn);

#endif
