/* The store: one connection (owned or borrowed) plus what the core keeps about it. */
#ifndef AJ_STORE_H
#define AJ_STORE_H

#include "driver.h"
#include "sql.h"

#include <sys/types.h>

/* The current version of the core's tables (acidic_job_schema): 1 is acidic_job 0.7.0's
 * two tables, 2 added batches (0.8), 3 the run and outbox columns (this version). */
#define AJ_SCHEMA_VERSION 3

/* A job staged in the open transaction: inserted at once when the caller wants its id,
 * else with the transaction's last round trip (id 0 until then); handed to the enqueue
 * callback after commit. */
typedef struct aj_pending_job {
    int64_t id;
    int64_t batch_id;
    char *adapter;
    char *job_name;
    char *payload;
    size_t payload_len;
    int64_t run_id; /* the run that staged it (its row's key_id, events), or 0 */
    const int64_t *run_ref; /* or where the run's id will be: a new run's first step on
                               SQLite writes its row at the end, before the staged rows */
} aj_pending_job;

/* What the core knows about the tables on this connection (schema.c). */
typedef struct aj_shape {
    int known;      /* detected since the last change */
    unsigned bits;  /* AJ_SHAPE_* of the application's tables */
    int version;    /* acidic_job_schema's */
} aj_shape;

struct aj_store {
    const aj_driver *drv;
    void *conn;
    int owned;                 /* the core opened the connection (closes it, reconnects) */
    const aj_host_tx *hooks;   /* the host's transactions; NULL: the core's own */
    void *hooks_ctx;
    int write_lock_first;      /* aj_host_tx v2: SQLite's write lock at the body's start */
    int commit_in_body;        /* aj_host_tx v3: PostgreSQL, the core commits a top-level body */
    int begin_in_body;         /* aj_host_tx v4: ... and begins it */
    pid_t pid;                 /* the process that opened it: a forked child must not use it */
    aj_options opts;           /* every option resolved */
    char owner[160];           /* "host:pid", written as the lock owner */
    aj_enqueue_fn enqueue;
    void *enqueue_ctx;
    aj_event_fn events;
    void *events_ctx;
    aj_error_doc_fn error_doc;
    void *error_doc_ctx;

    /* The transaction in progress (tx.c). */
    int tx_depth;              /* bodies running: > 1 when a call joins an open one */
    int tx_done;               /* aj_tx_finish committed (or, with hooks, ran) the end */
    int tx_write_locked;       /* SQLite: the body took the write lock (AJ_Q_WRITE_LOCK) */
    int tx_core_began;         /* begin_in_body: the core began the host's transaction */
    int tx_toplevel;           /* the open transaction is the core's alone (tx_begun; with
                                  hooks, known for AJ_DRV_HOST_TOPLEVEL drivers only) */
    int in_step;               /* a step callback is running */
    aj_pending_job *pending;
    size_t npending, cap_pending;

    /* The core's statements, expanded for the dialect and the tables' shape. */
    aj_shape shape;
    char *sql_text[AJ_Q_COUNT];
    aj_sql sql[AJ_Q_COUNT];
};

/* NULL and fork checks shared by every entry point. 0 or an error code. */
int aj_store_usable(aj_store *store, const char *fn);

/* Execute one of the core's statements in the open transaction. Errors that mean the
 * tables changed under the store become AJ_ESTALE (tx.c heals and retries), an index
 * row too large for 0.7.0's unique index becomes AJ_ESCHEMA with what to do. */
int aj_store_x(aj_store *store, aj_stmt stmt, const aj_value *params, size_t nparams,
               aj_rows *rows);

/* The same for several statements sent at once (one round trip on PostgreSQL). The
 * calls name the store's statements: &store->sql[AJ_Q_...]. */
int aj_store_calls(aj_store *store, const aj_call *calls, size_t ncalls, unsigned flags);

/* Report an event (fills version). */
void aj_store_event(aj_store *store, aj_event *event);

/* Pending staged jobs (store.c). The run is `run_id`, or *run_ref when run_ref is not
 * NULL (read when the row is inserted). */
int aj_store_add_pending(aj_store *store, int64_t id, int64_t batch_id, int64_t run_id,
                         const int64_t *run_ref, const char *adapter, const char *job_name,
                         const char *payload, size_t payload_len);
/* After commit: hand the pending jobs to the enqueue callback, then forget them. */
void aj_store_deliver_pending(aj_store *store);
/* After rollback: forget the pending jobs. */
void aj_store_drop_pending(aj_store *store);

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
static inline aj_value aj_null(void)
{
    aj_value x = {AJ_NULL, 0, NULL, 0};
    return x;
}
aj_value aj_cstr(const char *s);

#endif
