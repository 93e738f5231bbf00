/*
 * acidic_job: idempotent, resumable, multi-step workflows on SQLite and PostgreSQL.
 *
 * This is the one public header of the C core. Every exported name starts with
 * `aj_` (functions, types) or `AJ_` (constants).
 *
 * Conventions (after libgit2 and SQLite):
 *   - Functions return 0 (AJ_OK) on success or a negative aj_code on failure.
 *     The failure's details are in aj_error_last() (thread-local) until the next
 *     failing call on the same thread.
 *   - Results come back through out-parameters written only on success.
 *   - Every handle is opaque and has exactly one _free function. "Borrowed" means the
 *     caller keeps ownership; "owned by X" means the pointer lives as long as X and
 *     must not be freed by the caller.
 *   - Text arguments are NUL-terminated UTF-8. "Documents" (job arguments, attributes,
 *     payloads, errors) are text encoded by the language binding (JSON, YAML, ...);
 *     they must not contain a NUL byte and are stored verbatim in text columns.
 *   - A handle may be used by one thread at a time. A store opened before fork() is
 *     refused in the child (AJ_EMISUSE): open a new one there.
 *
 * The model (see README.md):
 *   store     a database connection plus the acidic_job tables on it
 *   workflow  an ordered list of uniquely named steps (a definition, no database)
 *   run       one execution of a workflow under an idempotency key: the row in
 *             `acidic_job_keys` holding its recovery point, lock, error and attributes
 *   step      one database transaction: the application's writes, the run's new
 *             recovery point and attributes, and any jobs staged in it commit together
 *   staged    a job staged in a step (transactional outbox, `staged_acidic_jobs`),
 *             handed to the binding's enqueue callback after commit and deleted
 *             (acknowledged) once the job has performed
 *   batch     the jobs a step awaits; the last one to succeed stages the parent's
 *             continuation, exactly once
 */
#ifndef ACIDIC_JOB_H
#define ACIDIC_JOB_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(AJ_BUILDING_LIBRARY) && defined(__GNUC__)
#define AJ_EXTERN __attribute__((visibility("default")))
#else
#define AJ_EXTERN
#endif

#define AJ_VERSION "0.8.0"

/* Forward declarations of the native handles a store can borrow. */
struct sqlite3;
struct pg_conn;

/* ------------------------------------------------------------------------ */
/* Errors                                                                    */
/* ------------------------------------------------------------------------ */

typedef enum aj_code {
    AJ_OK = 0,
    AJ_ERROR = -1,                  /* unclassified failure */
    AJ_EINVALID = -2,               /* bad argument: NULL, empty, NUL byte, malformed URL */
    AJ_ENOMEM = -3,                 /* allocation failed */
    AJ_EMISUSE = -4,                /* wrong call for the state: no open transaction on a
                                       borrowed handle, use after fork, stage outside a step */
    AJ_EDATABASE = -5,              /* the database or the connection failed */
    AJ_ECONFLICT = -6,              /* serialization failure, deadlock or busy database
                                       (retried a bounded number of times first) */
    AJ_EMISMATCH = -7,              /* the key exists with different job arguments */
    AJ_ELOCKED = -8,                /* the key is locked by a run within the lock timeout,
                                       or this run lost its lock to another worker */
    AJ_EUNKNOWN_RECOVERY_POINT = -9,/* the run's recovery point is not a step of the workflow */
    AJ_ENO_STEPS = -10,             /* a workflow without steps */
    AJ_EDUPLICATE_STEP = -11,       /* two steps with one name */
    AJ_ESTEP = -12,                 /* the step callback reported a failure */
    AJ_ENOTFOUND = -13              /* no such run or staged job */
} aj_code;

typedef struct aj_error {
    int code;            /* an aj_code */
    const char *message; /* never NULL; passwords in URLs are redacted */
} aj_error;

/* The last error of this thread. Owned by the library; valid until the next failing
 * call on this thread. Never NULL: without an error it reports AJ_OK, "no error". */
AJ_EXTERN const aj_error *aj_error_last(void);

/* Forget the last error of this thread. */
AJ_EXTERN void aj_error_clear(void);

/* Stable name of a code, such as "AJ_ELOCKED". Static storage. */
AJ_EXTERN const char *aj_code_name(int code);

/* ------------------------------------------------------------------------ */
/* Store                                                                     */
/* ------------------------------------------------------------------------ */

typedef struct aj_store aj_store;

typedef enum aj_synchronous {
    AJ_SYNC_FULL = 0, /* SQLite synchronous=FULL: durable at every commit (default) */
    AJ_SYNC_NORMAL = 1,
    AJ_SYNC_OFF = 2
} aj_synchronous;

typedef struct aj_options {
    int64_t lock_timeout_ms;  /* a run locked more recently than this is AJ_ELOCKED; 90000 */
    int busy_timeout_ms;      /* SQLite busy timeout; 5000 */
    int synchronous;          /* an aj_synchronous, SQLite only; AJ_SYNC_FULL */
    int conflict_retries;     /* serialization failures retried before AJ_ECONFLICT; 5 */
} aj_options;

/* Fill `opts` with the defaults above. */
AJ_EXTERN void aj_options_init(aj_options *opts);

/* A staged job handed to the enqueue callback. All pointers are owned by the library
 * and valid only during the callback. */
typedef struct aj_staged_job {
    int64_t id;            /* the row in staged_acidic_jobs: pass it to aj_staged_ack */
    const char *adapter;   /* e.g. "activejob", "sidekiq", "celery", "rq" */
    const char *job_name;
    const char *payload;   /* the document given to aj_run_stage */
    size_t payload_len;
} aj_staged_job;

/* Push a committed staged job to the queue. Return 0 when it was pushed; any other
 * value leaves the row to a later aj_store_drain. */
typedef int (*aj_enqueue_fn)(void *ctx, const aj_staged_job *job);

/* Open a store from a URL and create or upgrade its schema.
 *   sqlite:PATH, sqlite://PATH, sqlite::memory:  (WAL, busy timeout, synchronous per opts)
 *   postgres://..., postgresql://..., or any libpq conninfo string ("host=... dbname=...")
 * `opts` may be NULL for the defaults. On success *out is owned by the caller:
 * release it with aj_store_free. */
AJ_EXTERN int aj_store_open(aj_store **out, const char *url, const aj_options *opts);

/* Borrow an application's open SQLite handle or libpq connection. The core never
 * closes it and never issues BEGIN, COMMIT or ROLLBACK on it: each call that writes
 * must be made inside a transaction the application has opened (else AJ_EMISUSE),
 * and after the application commits or rolls back it calls aj_store_settle.
 * The schema is not touched until aj_store_migrate is called (inside a transaction).
 * SQLite: open the transaction with BEGIN IMMEDIATE. aj_run_acquire, aj_staged_ack and
 * aj_store_drain read before they write, and under concurrency a DEFERRED transaction
 * that has read cannot always take the write lock (AJ_ECONFLICT); a step's first
 * statement is a write, so steps are safe either way. */
AJ_EXTERN int aj_store_borrow_sqlite(aj_store **out, struct sqlite3 *db, const aj_options *opts);
AJ_EXTERN int aj_store_borrow_pg(aj_store **out, struct pg_conn *conn, const aj_options *opts);

/* A host connection reached only through the application's own database API (for
 * example an ORM whose driver links a different copy of SQLite). The core hands it
 * SQL in the given dialect with parameters; the host executes it on its connection
 * inside its open transaction and reports the result rows through aj_host_row. */
typedef enum aj_dialect { AJ_DIALECT_SQLITE = 1, AJ_DIALECT_POSTGRES = 2 } aj_dialect;

typedef enum aj_value_type { AJ_NULL = 0, AJ_INT = 1, AJ_TEXT = 2 } aj_value_type;

typedef struct aj_value {
    int type;          /* an aj_value_type */
    int64_t integer;   /* AJ_INT */
    const char *text;  /* AJ_TEXT: not necessarily NUL-terminated */
    size_t len;        /* AJ_TEXT */
} aj_value;

typedef struct aj_host_result aj_host_result;

/* Append one result row (copied) while executing a host statement. */
AJ_EXTERN int aj_host_row(aj_host_result *result, const aj_value *cells, size_t ncells);

typedef struct aj_host_ops {
    /* Execute `sql` (placeholders `?` for SQLite, `$1..$n` for PostgreSQL) with `params`.
     * Rows go to aj_host_row(result, ...). Return 0, or nonzero with a message in
     * `errbuf` (NUL-terminated, at most errlen bytes). */
    int (*exec)(void *ctx, const char *sql, const aj_value *params, size_t nparams,
                aj_host_result *result, char *errbuf, size_t errlen);
    /* 1 when the host's transaction is open, else 0. */
    int (*in_transaction)(void *ctx);
} aj_host_ops;

AJ_EXTERN int aj_store_borrow_host(aj_store **out, int dialect, const aj_host_ops *ops,
                                   void *ctx, const aj_options *opts);

/* Create or upgrade the schema (idempotent; safe when processes race). Done by
 * aj_store_open; borrowed stores call it inside an open transaction. */
AJ_EXTERN int aj_store_migrate(aj_store *store);

/* Set the callback that pushes committed staged jobs to the queue. Without one, staged
 * jobs stay in the table until a drain with a callback delivers them. */
AJ_EXTERN void aj_store_set_enqueue(aj_store *store, aj_enqueue_fn fn, void *ctx);

/* Borrowed stores only: the application has committed (committed = 1) or rolled back
 * (committed = 0) the transaction around the last calls. On commit the staged jobs of
 * that transaction go to the enqueue callback and runs take on their new state; on
 * rollback runs return to the state they had before it. */
AJ_EXTERN int aj_store_settle(aj_store *store, int committed);

/* Hand every staged job created or last handed out more than `older_than_ms` ago and
 * never acknowledged to the enqueue callback (in id order). Rows the callback accepts
 * are stamped so the next drain waits `older_than_ms` again. *delivered (may be NULL)
 * counts them. Owned stores only need no transaction; borrowed stores need one. */
AJ_EXTERN int aj_store_drain(aj_store *store, int64_t older_than_ms, size_t *delivered);

/* Acknowledge (delete) a staged job once it has performed. When it belongs to a batch
 * (an awaited job), count the batch down in the same transaction; the acknowledgement
 * that completes the batch stages the parent's continuation (exactly once).
 * *completed_batch (may be NULL) is set to 1 in that case. Acknowledging a job that
 * is already gone is not an error (*completed_batch = 0). */
AJ_EXTERN int aj_staged_ack(aj_store *store, int64_t staged_id, int *completed_batch);

/* Execute application SQL on the store's connection (`?` placeholders on both
 * databases), e.g. from a step callback of an owned store. Rows are appended to
 * `rows` when not NULL: read them with aj_rows_*, free with aj_rows_free. */
typedef struct aj_rows aj_rows;
AJ_EXTERN int aj_store_exec(aj_store *store, const char *sql, const aj_value *params,
                            size_t nparams, aj_rows **rows);
AJ_EXTERN size_t aj_rows_count(const aj_rows *rows);
AJ_EXTERN size_t aj_rows_columns(const aj_rows *rows);
/* Cell of row r, column c; owned by `rows`. */
AJ_EXTERN const aj_value *aj_rows_cell(const aj_rows *rows, size_t r, size_t c);
AJ_EXTERN void aj_rows_free(aj_rows *rows);

/* The native handle of a store (owned by the store), or NULL when it is the other kind. */
AJ_EXTERN struct sqlite3 *aj_store_sqlite(aj_store *store);
AJ_EXTERN struct pg_conn *aj_store_pg(aj_store *store);

/* "sqlite", "postgres" or "host". Static storage. */
AJ_EXTERN const char *aj_store_driver(const aj_store *store);

/* 1 when the store was borrowed (aj_store_borrow_*), else 0. */
AJ_EXTERN int aj_store_is_borrowed(const aj_store *store);

/* Close an owned connection (never a borrowed one) and free the store. Runs of the
 * store must be freed first. NULL is ignored. In a child after fork() it releases the
 * memory without touching the parent's connection. */
AJ_EXTERN void aj_store_free(aj_store *store);

/* ------------------------------------------------------------------------ */
/* Workflow                                                                  */
/* ------------------------------------------------------------------------ */

typedef struct aj_workflow aj_workflow;

AJ_EXTERN int aj_workflow_new(aj_workflow **out);

/* Append a step. `awaits` names the jobs the step waits for (may be NULL when
 * n_awaits is 0). AJ_EDUPLICATE_STEP for a name already present, AJ_EINVALID for an
 * empty name or the reserved name "FINISHED". */
AJ_EXTERN int aj_workflow_add_step(aj_workflow *wf, const char *name,
                                   const char *const *awaits, size_t n_awaits);

AJ_EXTERN size_t aj_workflow_count(const aj_workflow *wf);
/* Name of step i (owned by wf), or NULL when out of range. */
AJ_EXTERN const char *aj_workflow_step(const aj_workflow *wf, size_t i);
/* Number of awaited jobs of step i, and the j-th one (owned by wf). */
AJ_EXTERN size_t aj_workflow_awaits_count(const aj_workflow *wf, size_t i);
AJ_EXTERN const char *aj_workflow_await(const aj_workflow *wf, size_t i, size_t j);

AJ_EXTERN void aj_workflow_free(aj_workflow *wf);

/* ------------------------------------------------------------------------ */
/* Runs                                                                      */
/* ------------------------------------------------------------------------ */

typedef struct aj_run aj_run;

typedef enum aj_status {
    AJ_RUN_READY = 1,     /* locked by this process; aj_run_step runs the recovery point */
    AJ_RUN_AWAITING = 2,  /* waiting for the jobs of a step; nothing to run now */
    AJ_RUN_SUCCEEDED = 3, /* finished without error */
    AJ_RUN_FAILED = 4,    /* the last step failed: lock released, error recorded */
    AJ_RUN_FINISHED_FAILED = 5 /* finished, but with an error recorded (0.7.0 rows) */
} aj_status;

#define AJ_RECOVERY_POINT_FINISHED "FINISHED"

typedef struct aj_run_params {
    const char *key;        /* the idempotency key */
    const char *job_name;   /* e.g. the job class name */
    const char *args;       /* encoded job arguments (may be NULL: none) */
    size_t args_len;
    const char *attributes; /* the attribute document of a new run (may be NULL) */
    size_t attributes_len;
} aj_run_params;

/* Acquire the run for params->key:
 *   - new key: the run is created at the first step, locked (AJ_RUN_READY);
 *   - existing key with other args: AJ_EMISMATCH;
 *   - locked within the lock timeout: AJ_ELOCKED;
 *   - finished: nothing is locked; status AJ_RUN_SUCCEEDED or AJ_RUN_FINISHED_FAILED;
 *   - awaiting jobs that have not all succeeded: AJ_RUN_AWAITING, nothing locked;
 *   - otherwise: locked, AJ_RUN_READY at its recovery point.
 * AJ_ENO_STEPS for an empty workflow. The workflow must outlive the run.
 * On success *out is owned by the caller: aj_run_free. */
AJ_EXTERN int aj_run_acquire(aj_run **out, aj_store *store, const aj_workflow *wf,
                             const aj_run_params *params);

/* The step callback: make the step's application writes on the store's connection.
 * Return 0 for success. Any other value fails the step: everything it did is rolled
 * back, the error set with aj_run_set_error is recorded and the lock released. */
typedef int (*aj_step_fn)(aj_run *run, const char *step, void *ctx);

/* Run the step at the recovery point in one transaction: lock the run row, call `fn`,
 * persist the attributes, advance the recovery point (or finish, jump, await), commit,
 * and hand the staged jobs to the enqueue callback.
 *   AJ_OK                      the step committed; see aj_run_status
 *   AJ_ESTEP                   the callback failed; rolled back, error recorded,
 *                              lock released (status AJ_RUN_FAILED)
 *   AJ_EUNKNOWN_RECOVERY_POINT the recovery point is not a step; the run stays locked
 *   AJ_ELOCKED                 another worker took the run over (lock expired)
 * Borrowed stores: call it inside the application's open transaction; it does not
 * commit. After committing call aj_store_settle(store, 1). When it fails, roll back,
 * call aj_store_settle(store, 0), then record the error with aj_run_fail inside a new
 * transaction and commit it. */
AJ_EXTERN int aj_run_step(aj_run *run, aj_step_fn fn, void *ctx);

/* Owned stores: aj_run_step until the run is no longer AJ_RUN_READY. */
AJ_EXTERN int aj_run_execute(aj_run *run, aj_step_fn fn, void *ctx);

/* Borrowed stores, after a failed step was rolled back: record the error set with
 * aj_run_set_error and release the lock, in the application's open transaction. */
AJ_EXTERN int aj_run_fail(aj_run *run);

/* --- calls for use inside a step callback --------------------------------- */

/* Stage a job in the step's transaction. *id (may be NULL) receives its row id. */
AJ_EXTERN int aj_run_stage(aj_run *run, const char *adapter, const char *job_name,
                           const char *payload, size_t payload_len, int64_t *id);

/* Stage one awaited job of this step (only in a step that has awaits). The step then
 * waits: the run stops with AJ_RUN_AWAITING and resumes at the next step once every
 * awaited job has been acknowledged with aj_staged_ack. Requires aj_run_set_continuation
 * in the same step. */
AJ_EXTERN int aj_run_await(aj_run *run, const char *adapter, const char *job_name,
                           const char *payload, size_t payload_len, int64_t *id);

/* The job that resumes this run when its awaited jobs have all succeeded. */
AJ_EXTERN int aj_run_set_continuation(aj_run *run, const char *adapter, const char *job_name,
                                      const char *payload, size_t payload_len);

/* Finish the run successfully when this step commits (safely_finish_acidic_job). */
AJ_EXTERN int aj_run_finish(aj_run *run);

/* Continue at the named step when this step commits. AJ_EUNKNOWN_RECOVERY_POINT when
 * the workflow has no such step. */
AJ_EXTERN int aj_run_goto(aj_run *run, const char *step);

/* The error document to record when the callback fails (copied). */
AJ_EXTERN int aj_run_set_error(aj_run *run, const char *error, size_t len);

/* Replace the attribute document (copied). It commits with the step and is restored
 * when the step rolls back. Callable inside a step or between steps (then it is written
 * by the next step). */
AJ_EXTERN int aj_run_set_attributes(aj_run *run, const char *doc, size_t len);

/* --- inspection ----------------------------------------------------------- */

AJ_EXTERN int64_t aj_run_id(const aj_run *run);
AJ_EXTERN int aj_run_status(const aj_run *run);
/* Owned by the run; valid until the next call on it. */
AJ_EXTERN const char *aj_run_key(const aj_run *run);
AJ_EXTERN const char *aj_run_recovery_point(const aj_run *run);
/* The attribute document and the recorded error document; NULL/0 when none. */
AJ_EXTERN const char *aj_run_attributes(const aj_run *run, size_t *len);
AJ_EXTERN const char *aj_run_error(const aj_run *run, size_t *len);
AJ_EXTERN aj_store *aj_run_store(const aj_run *run);

/* Free the run's memory. It writes nothing: a run freed while locked stays locked
 * until the lock timeout. NULL is ignored. */
AJ_EXTERN void aj_run_free(aj_run *run);

#ifdef __cplusplus
}
#endif
#endif /* ACIDIC_JOB_H */
