/* The store: one connection (owned or borrowed) plus what the core keeps about it. */
#ifndef AJ_STORE_H
#define AJ_STORE_H

#include "driver.h"
#include "sql.h"

#include <sys/types.h>

/* A job staged in the open transaction, handed to the enqueue callback after commit. */
typedef struct aj_pending_job {
    int64_t id;
    char *adapter;
    char *job_name;
    char *payload;
    size_t payload_len;
} aj_pending_job;

struct aj_store {
    const aj_driver *drv;
    void *conn;
    int borrowed;
    pid_t pid; /* the process that opened it: a forked child must not use it */
    aj_options opts;
    aj_enqueue_fn enqueue;
    void *enqueue_ctx;
    aj_pending_job *pending;
    size_t npending, cap_pending;
    aj_run *pending_run; /* borrowed: the run whose step waits for aj_store_settle */
};

/* NULL and fork checks shared by every entry point. 0 or an error code. */
int aj_store_usable(aj_store *store, const char *fn);

/* Execute a core statement. On a borrowed store the transaction flags are dropped and
 * an open application transaction is required (AJ_EMISUSE otherwise). On an owned
 * store a BEGIN flag first makes sure the connection is alive. */
int aj_store_x(aj_store *store, aj_stmt stmt, const aj_value *params, size_t nparams,
               aj_rows *rows, int64_t *changes, unsigned flags);

/* Transaction control on an owned store; on a borrowed store COMMIT and ROLLBACK are
 * left to the application and these return 0. */
int aj_store_tx(aj_store *store, aj_tx_op op);

/* Remember a staged job of the open transaction (copies). */
int aj_store_add_pending(aj_store *store, int64_t id, const char *adapter,
                         const char *job_name, const char *payload, size_t payload_len);
/* After commit: hand the pending jobs to the enqueue callback, then forget them. */
void aj_store_deliver_pending(aj_store *store);
/* After rollback: forget the pending jobs. */
void aj_store_drop_pending(aj_store *store);

/* Create or upgrade the schema inside the caller's transaction (migrate.c). */
int aj_migrate_in_tx(aj_store *store);

/* Run hooks for settle (run.c). */
void aj_run_settled(aj_run *run, int committed);

/* Value constructors. */
static inline aj_value aj_int(int64_t v)
{
    aj_value x = {AJ_INT, v, NULL, 0};
    return x;
}
static inline aj_value aj_text(const char *s, size_t len)
{
    aj_value x = {s ? AJ_TEXT : AJ_NULL, 0, s, s ? len : 0};
    return x;
}
aj_value aj_cstr(const char *s);

#endif
