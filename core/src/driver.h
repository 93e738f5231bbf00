/*
 * The storage driver table. A driver executes the core's SQL on one connection; all
 * workflow logic lives above it (run.c, outbox.c, batch.c). A third database is one
 * new file that fills this table.
 */
#ifndef AJ_DRIVER_H
#define AJ_DRIVER_H

#include "acidic_job.h"
#include "rows.h"

/* One SQL statement of the core. `text` uses `?` placeholders on every dialect; a
 * driver for a `$n` dialect rewrites them once when it prepares the statement.
 * `slot` (0 <= slot < AJ_SQL_SLOTS) names the statement in the driver's prepared
 * statement cache; -1 means an ad-hoc statement that is not cached. */
typedef struct aj_sql {
    int slot;
    const char *text;
} aj_sql;

#define AJ_SQL_SLOTS 48

/* Flags for exec: transaction control fused with the statement, so that a driver
 * able to pipeline (libpq) sends them in one round trip. Owned connections only. */
enum {
    AJ_X_BEGIN = 1 << 0,              /* BEGIN before the statement */
    AJ_X_BEGIN_IMMEDIATE = 1 << 1,    /* SQLite: BEGIN IMMEDIATE; PostgreSQL: BEGIN */
    AJ_X_BEGIN_SERIALIZABLE = 1 << 2, /* PostgreSQL: BEGIN ISOLATION LEVEL SERIALIZABLE;
                                         SQLite: BEGIN IMMEDIATE */
    AJ_X_COMMIT = 1 << 3              /* COMMIT after the statement when it succeeded; when
                                         it failed the transaction is rolled back */
};

typedef enum aj_tx_op { AJ_TX_BEGIN, AJ_TX_BEGIN_IMMEDIATE, AJ_TX_BEGIN_SERIALIZABLE,
                        AJ_TX_COMMIT, AJ_TX_ROLLBACK } aj_tx_op;

typedef struct aj_driver {
    const char *name; /* "sqlite", "postgres", "host" */
    int dialect;      /* AJ_DIALECT_* */

    /* Execute one statement. `rows` may be NULL (results discarded); otherwise it is
     * reset and filled with copies of the result. `changes` (may be NULL) receives the
     * number of rows a write changed. On failure: the error is set with aj_error_set
     * (AJ_ECONFLICT for serialization failure / deadlock / busy, AJ_EDATABASE for the
     * rest) and, when a flag had opened a transaction, it has been rolled back. */
    int (*exec)(void *conn, const aj_sql *sql, const aj_value *params, size_t nparams,
                aj_rows *rows, int64_t *changes, unsigned flags);

    /* BEGIN / COMMIT / ROLLBACK on an owned connection. ROLLBACK never fails loudly:
     * it returns 0 when there was nothing to roll back. */
    int (*tx)(void *conn, aj_tx_op op);

    /* 1 when a transaction is open on the connection, else 0. */
    int (*in_transaction)(void *conn);

    /* Called before a transaction starts on an owned connection: reconnect when the
     * connection was lost (e.g. the server restarted). 0 or AJ_EDATABASE. May be NULL. */
    int (*ensure_connected)(void *conn);

    /* Release the connection. `owned` is 0 for a borrowed handle (free only the
     * driver's own memory and prepared statements), `forked` is 1 in a child process
     * after fork() (do not talk to the server or the file: just free memory). */
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
