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
 *   - Public structs start with `unsigned int version` and have an `AJ_..._INIT`
 *     initializer. New fields are only ever added at the end, under a new version, so
 *     a program compiled against an older header keeps working.
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
 *   recovery  a sweep that hands runs whose worker died, and failed runs that are due
 *             for a retry, back to their queue under the same idempotency key
 *
 * Who drives transactions: the core. On a store it opened itself it issues BEGIN and
 * COMMIT; on a borrowed connection it asks the application through the aj_host_tx
 * hook table ("run this body inside a transaction of yours"). Either way aj_run_execute
 * runs a whole run: acquisition, every step, failure recording, lock release, staged
 * jobs after commit, awaits.
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

#define AJ_VERSION "0.9.0"
#define AJ_VERSION_NUMBER 9000 /* major * 1000000 + minor * 1000 + patch */

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
    AJ_EMISUSE = -4,                /* wrong call for the state: use after fork, stage
                                       outside a step, a step that ended its own transaction */
    AJ_EDATABASE = -5,              /* the database or the connection failed */
    AJ_ECONFLICT = -6,              /* serialization failure, deadlock or busy database
                                       (retried a bounded number of times first) */
    AJ_EMISMATCH = -7,              /* the key exists with different job arguments, or
                                       belongs to another job */
    AJ_ELOCKED = -8,                /* the key is locked by a run within the lock timeout,
                                       or this run lost its lock to another worker */
    AJ_EUNKNOWN_RECOVERY_POINT = -9,/* the run's recovery point is not a step of the workflow */
    AJ_ENO_STEPS = -10,             /* a workflow without steps */
    AJ_EDUPLICATE_STEP = -11,       /* two steps with one name */
    AJ_ESTEP = -12,                 /* the step callback reported a failure */
    AJ_ENOTFOUND = -13,             /* no such run or staged job */
    AJ_ESCHEMA = -14,               /* the tables cannot serve this call: written by a newer
                                       acidic_job, or an index that cannot hold the value */
    AJ_ESTATE = -15                 /* an operator action that does not apply to the run as
                                       it is (retry of a finished run, unlock of an unlocked
                                       one); nothing was changed */
} aj_code;

typedef struct aj_error {
    int code;            /* an aj_code */
    const char *message; /* never NULL; passwords are redacted */
} aj_error;

/* The last error of this thread. Owned by the library; valid until the next failing
 * call on this thread. Never NULL: without an error it reports AJ_OK, "no error". */
AJ_EXTERN const aj_error *aj_error_last(void);

/* Forget the last error of this thread. */
AJ_EXTERN void aj_error_clear(void);

/* For hooks (aj_host_tx, aj_host_ops): report why the hook failed. Sets the last error
 * of this thread to `code` and a copy of `message` (passwords redacted) and returns
 * `code`, so a hook can write `return aj_error_report(AJ_EDATABASE, msg);`. */
AJ_EXTERN int aj_error_report(int code, const char *message);

/* Stable name of a code, such as "AJ_ELOCKED". Static storage. */
AJ_EXTERN const char *aj_code_name(int code);

/* ------------------------------------------------------------------------ */
/* Options                                                                   */
/* ------------------------------------------------------------------------ */

typedef enum aj_synchronous {
    AJ_SYNC_FULL = 0, /* SQLite synchronous=FULL: durable at every commit (default) */
    AJ_SYNC_NORMAL = 1,
    AJ_SYNC_OFF = 2
} aj_synchronous;

/* An option left at AJ_UNSET takes the core's default. Bindings pass what their user
 * set and AJ_UNSET for the rest: defaults and validation live here only. */
#define AJ_UNSET (-1)

#define AJ_OPTIONS_VERSION 1
typedef struct aj_options {
    unsigned int version;     /* AJ_OPTIONS_VERSION */
    int64_t lock_timeout_ms;  /* a run locked more recently than this is AJ_ELOCKED, and a
                                 lock older than this marks its worker as dead: 90000 */
    int64_t busy_timeout_ms;  /* SQLite: how long to wait for another writer: 5000 */
    int synchronous;          /* an aj_synchronous, SQLite stores the core opens: FULL */
    int conflict_retries;     /* serialization failures retried before AJ_ECONFLICT: 5 */
    int max_attempts;         /* attempts of a run before it is dead (0: unlimited): 25 */
    int64_t retry_base_ms;    /* recovery retries a failed run after this, doubling with
                                 each attempt up to an hour: 15000 */
    int match_job_name;       /* 1: a key recorded by another job is AJ_EMISMATCH;
                                 0: keys are matched alone, as acidic_job 0.7.0 did: 1 */
} aj_options;

#define AJ_OPTIONS_INIT \
    {AJ_OPTIONS_VERSION, AJ_UNSET, AJ_UNSET, AJ_UNSET, AJ_UNSET, AJ_UNSET, AJ_UNSET, AJ_UNSET}

/* Initialize `opts` as AJ_OPTIONS_INIT does (every option unset). `version` must be
 * AJ_OPTIONS_VERSION. AJ_EINVALID for a NULL pointer or an unknown version. */
AJ_EXTERN int aj_options_init(aj_options *opts, unsigned int version);

/* ------------------------------------------------------------------------ */
/* Store                                                                     */
/* ------------------------------------------------------------------------ */

typedef struct aj_store aj_store;

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
 * value leaves the row to a later aj_store_drain. Called outside any transaction of
 * the store; it may use the store (for example to run a job inline). */
typedef int (*aj_enqueue_fn)(void *ctx, const aj_staged_job *job);

/* Open a store from a URL and create or heal its tables.
 *   sqlite:PATH, sqlite://PATH, sqlite::memory:  (WAL, busy timeout, synchronous per opts)
 *   postgres://..., postgresql://..., or any libpq conninfo string ("host=... dbname=...")
 * A SQLite file that does not exist is created. `opts` may be NULL for the defaults.
 * On success *out is owned by the caller: release it with aj_store_free. */
AJ_EXTERN int aj_store_open(aj_store **out, const char *url, const aj_options *opts);

/* --- borrowed connections: the host transaction hook table -----------------
 *
 * A borrowed store works on the application's connection, so that a step's own writes
 * (made with the application's ORM) commit with the run's progress. The application
 * keeps the connection and owns its transactions; the core asks for one whenever it
 * needs one, through `atomically`:
 *
 *   int atomically(void *ctx, aj_tx_body body, void *arg, int *committed);
 *
 * Who calls it: the core, from aj_run_execute, aj_run_step, aj_run_acquire,
 * aj_staged_ack, aj_store_drain, aj_store_recover and aj_store_migrate, on the thread
 * that called them. One call per transaction the core needs (one per step).
 *
 * What the host does, in order:
 *   1. open a transaction on the borrowed connection: BEGIN (unless begin_in_body lets
 *      the core send it), or a savepoint when the application already has a transaction
 *      open (then "commit" below means releasing the savepoint, and the work becomes
 *      durable when the application commits);
 *   2. call body(arg) exactly once, inside it;
 *   3. when body returned 0, commit (unless commit_in_body let the core commit already:
 *      then no transaction is open any more); otherwise roll back;
 *   4. set *committed to 1 when it committed, to 0 when it rolled back;
 *   5. return 0 when the transaction ended as asked (committed after 0, rolled back after
 *      a failure), or a negative aj_code, with aj_error_report, when it could not open
 *      the transaction or its commit failed (then it has rolled back: *committed = 0).
 *      Report AJ_ECONFLICT for a serialization failure, deadlock or busy database: the
 *      core retries the transaction. Any other code fails the call that needed it.
 *
 * The body never unwinds (no exceptions, no longjmp) and the host must not unwind
 * through it either: a language binding catches its exceptions before returning to the
 * core. The body may call back into the host's own API on the same connection (the
 * application's step writes do). The core checks that a transaction is really open when
 * the body starts (AJ_EMISUSE otherwise), so a lazily opened host transaction must be
 * started before calling body.
 *
 * A NULL hook table means the core begins and commits on the borrowed handle itself,
 * with the same statements it uses on its own connections.
 *
 * The table only grows at the end; `version` tells the core which fields exist.
 */
typedef int (*aj_tx_body)(void *arg);

#define AJ_HOST_TX_VERSION 4
typedef struct aj_host_tx {
    unsigned int version; /* AJ_HOST_TX_VERSION */
    int (*atomically)(void *ctx, aj_tx_body body, void *arg, int *committed);
    /* Version 2. SQLite only: 1 makes the core take the database's write lock as each
     * body starts (waiting for it itself), steps included, so that the host's own writes
     * in a step never wait for it. For hosts whose waits block the lock holder: Ruby's
     * sqlite3 gem keeps the GVL while it waits, so the thread holding the lock could not
     * run to release it. 0 (default): steps take the lock with their first write (see
     * docs/decisions/011). */
    int write_lock_first;
    /* Version 3. PostgreSQL only: 1 lets the core end a body that succeeded with COMMIT,
     * sent in the round trip of its last statements, when the host's transaction is a
     * top-level one (no transaction was open on the connection before atomically; never
     * a savepoint). atomically then finds no transaction open after body returned 0: it
     * must not commit again, and sets *committed = 1. When the core's COMMIT fails, the
     * core has rolled back and body reports the failure. For hosts whose driver reads the
     * transaction state from libpq, as psycopg 3 does; not for an ORM that tracks its
     * own transactions (ActiveRecord would send a COMMIT of its own). Ignored on SQLite
     * and for aj_store_borrow_host. 0 (default): the host commits, one round trip more
     * per transaction. */
    int commit_in_body;
    /* Version 4. PostgreSQL, with commit_in_body only: 1 lets the core also open a
     * top-level transaction, sending BEGIN in the round trip of its first statement (the
     * acquisition's, in a run's first step), or alone before a step's callback when the
     * step has no statement of the core's first. atomically then opens nothing when no
     * transaction is open (it still opens a savepoint inside the application's): a new
     * 3-step run costs the round trips of three plain transactions. When a body fails,
     * the core rolls back what it began; the host's rollback then finds nothing open. A
     * transaction the body finds open although none was before atomically (a savepoint
     * inside an ORM's lazily begun transaction) makes the body a nested one: the core
     * then neither begins nor commits. For hosts whose driver reads the transaction state
     * from libpq, as for commit_in_body, or that defer to it while the body runs. */
    int begin_in_body;
} aj_host_tx;

#define AJ_HOST_TX_INIT {AJ_HOST_TX_VERSION, NULL, 0, 0, 0}

/* Borrow an application's open SQLite handle or libpq connection. The core never
 * closes it. `tx` (may be NULL, see above) and `tx_ctx` must outlive the store.
 * The tables are detected, created or healed in the first transaction that needs them
 * (or by aj_store_migrate). */
AJ_EXTERN int aj_store_borrow_sqlite(aj_store **out, struct sqlite3 *db, const aj_host_tx *tx,
                                     void *tx_ctx, const aj_options *opts);
AJ_EXTERN int aj_store_borrow_pg(aj_store **out, struct pg_conn *conn, const aj_host_tx *tx,
                                 void *tx_ctx, const aj_options *opts);

/* A host connection reached only through the application's own database API (for
 * example an ORM whose driver links a different copy of SQLite). The core hands it
 * SQL in the given dialect with parameters; the host executes it on its connection
 * and reports the result rows through aj_host_row. */
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

#define AJ_HOST_OPS_VERSION 1
typedef struct aj_host_ops {
    unsigned int version; /* AJ_HOST_OPS_VERSION */
    /* Execute `sql` (placeholders `?` for SQLite, `$1..$n` for PostgreSQL) with `params`
     * on the host connection, inside the transaction `atomically` opened. Rows go to
     * aj_host_row(result, ...). Return 0, or a negative aj_code after aj_error_report:
     * AJ_ECONFLICT for a serialization failure, deadlock or busy database, AJ_EDATABASE
     * for other database errors. */
    int (*exec)(void *ctx, const char *sql, const aj_value *params, size_t nparams,
                aj_host_result *result);
    /* 1 when the host connection has an open transaction, else 0. */
    int (*in_transaction)(void *ctx);
} aj_host_ops;

#define AJ_HOST_OPS_INIT {AJ_HOST_OPS_VERSION, NULL, NULL}

/* `tx` is required here: the core cannot begin a transaction on a host connection. */
AJ_EXTERN int aj_store_borrow_host(aj_store **out, int dialect, const aj_host_ops *ops,
                                   const aj_host_tx *tx, void *ctx, const aj_options *opts);

/* Detect the tables, create the missing ones and heal the ones made by the application
 * (acidic_job 0.7.0's migrations, a schema.rb, `create_table force: true` in a test) by
 * adding the columns the core needs. In a transaction of its own; idempotent; safe when
 * processes race. Every store also does this by itself when a statement finds a table
 * or column missing, so calling it is never required. AJ_ESCHEMA when the tables were
 * written by a newer acidic_job. */
AJ_EXTERN int aj_store_migrate(aj_store *store);

/* Set the callback that pushes committed staged jobs to the queue. Without one, staged
 * jobs stay in the table until a drain with a callback delivers them. */
AJ_EXTERN void aj_store_set_enqueue(aj_store *store, aj_enqueue_fn fn, void *ctx);

/* --- events ------------------------------------------------------------------ */

typedef enum aj_event_type {
    AJ_EVENT_ACQUIRED = 1,       /* a run was locked for this process (step: its recovery
                                    point; attempt: its attempt number; resumed: 1 when
                                    it existed before). Inside the first step's transaction. */
    AJ_EVENT_SKIPPED = 2,        /* acquisition found nothing to run: finished, awaiting or
                                    dead (status) */
    AJ_EVENT_STEP_STARTED = 3,   /* before the step callback (step) */
    AJ_EVENT_STEP_COMMITTED = 4, /* the step committed (step, duration_us, status), before its
                                    staged jobs are pushed */
    AJ_EVENT_STEP_FAILED = 5,    /* the step failed and was rolled back (step, duration_us,
                                    code, message); the failure is recorded after this */
    AJ_EVENT_FINISHED = 6,       /* the run finished (status) */
    AJ_EVENT_STAGED = 7,         /* a job was staged in the open step (staged_id, adapter,
                                    staged_job) */
    AJ_EVENT_ENQUEUED = 8,       /* a staged job was handed to the enqueue callback, after a
                                    commit or by a drain (staged_id, adapter, staged_job,
                                    accepted) */
    AJ_EVENT_DRAINED = 9,        /* a drain ended (count) */
    AJ_EVENT_RECOVERED = 10      /* recovery handed a run back to its queue (dead = 0) or
                                    marked it dead (dead = 1); attempt: its attempts */
} aj_event_type;

#define AJ_EVENT_VERSION 1
typedef struct aj_event {
    unsigned int version;   /* AJ_EVENT_VERSION */
    int type;               /* an aj_event_type */
    int64_t run_id;         /* 0 when the event is not about a run, and while a new run's
                               row is not written yet: on SQLite until the end of its first
                               step (ACQUIRED, the first STEP_STARTED); `key` names it */
    const char *key;        /* the run's idempotency key, or NULL */
    const char *job_name;   /* the run's job, or NULL */
    const char *step;       /* the step, or NULL */
    int status;             /* the run's aj_status after the event, or 0 */
    int code;               /* STEP_FAILED: the aj_code of the failure */
    const char *message;    /* STEP_FAILED: the core's message */
    int64_t duration_us;    /* STEP_COMMITTED, STEP_FAILED: since the step began */
    int64_t staged_id;      /* STAGED, ENQUEUED */
    const char *adapter;    /* STAGED, ENQUEUED, RECOVERED */
    const char *staged_job; /* STAGED, ENQUEUED, RECOVERED: the job handed to the queue */
    int accepted;           /* ENQUEUED: 1 when the callback took it */
    size_t count;           /* DRAINED: jobs delivered */
    int attempt;            /* ACQUIRED, RECOVERED */
    int resumed;            /* ACQUIRED */
    int dead;               /* RECOVERED */
} aj_event;

/* Events are reported synchronously on the calling thread; every pointer is valid
 * only during the call. The handler must not call into the store (except to read an
 * aj_run's fields). It may end the process (the kill tests do). */
typedef void (*aj_event_fn)(void *ctx, const aj_event *event);
AJ_EXTERN void aj_store_set_events(aj_store *store, aj_event_fn fn, void *ctx);

/* --- error documents --------------------------------------------------------- */

typedef struct aj_run aj_run;

/* The core records an error on a run when something other than a step callback fails
 * it (an unknown recovery point, a lost connection, a step that failed without
 * aj_run_set_error). This callback turns the core's error into the binding's error
 * document by calling aj_run_set_error(run, ...). Without one, the document is JSON:
 * {"class":"AJ_E...","message":"..."}. */
typedef int (*aj_error_doc_fn)(void *ctx, aj_run *run, int code, const char *message);
AJ_EXTERN void aj_store_set_error_encoder(aj_store *store, aj_error_doc_fn fn, void *ctx);

/* --- outbox, recovery ----------------------------------------------------------- */

/* Hand every staged job that was staged or last handed out more than `older_than_ms`
 * ago and is not acknowledged to the enqueue callback, in id order, page by page until
 * none is left: rows the callback refuses are skipped, never hide later rows, and stay
 * due. Rows handed out are stamped, so the next drain waits `older_than_ms` again.
 * *delivered (may be NULL) counts the accepted ones. */
AJ_EXTERN int aj_store_drain(aj_store *store, int64_t older_than_ms, size_t *delivered);

/* Acknowledge (delete) a staged job once it has performed. When it belongs to a batch
 * (an awaited job), count the batch down in the same transaction; the acknowledgement
 * that completes the batch stages the parent's continuation (exactly once).
 * *completed_batch (may be NULL) is set to 1 in that case. Acknowledging a job that
 * is already gone is not an error (*completed_batch = 0). Inside a step callback the
 * acknowledgement joins the step's transaction. */
AJ_EXTERN int aj_staged_ack(aj_store *store, int64_t staged_id, int *completed_batch);

/* Recovery: hand runs back to their queue.
 *   - a run locked longer than the lock timeout (its worker died, or its queue lost the
 *     job) and not row-locked by a live transaction;
 *   - a failed run (unlocked, error recorded, not finished) whose retry is due: retries
 *     wait retry_base_ms, doubling with each attempt, up to an hour.
 * Each is staged again, in the recovery's own transaction, as the job its acquisition
 * described (aj_run_params.resume_*), under the same idempotency key; it is then pushed
 * like any staged job. A run is handed out once per lock timeout, whoever sweeps: the
 * decision is a row update in the database, safe when many processes recover at once.
 * A run that has used max_attempts attempts is marked dead instead: it is never
 * acquired again until an operator retries it. Runs without a resume description are
 * skipped. `limit` bounds the runs handled by this call (0: no bound; work is done in
 * batches of 100). *requeued and *dead (may be NULL) count them. */
AJ_EXTERN int aj_store_recover(aj_store *store, size_t limit, size_t *requeued, size_t *dead);

/* --- application SQL -------------------------------------------------------------- */

/* Execute application SQL on the store's connection (`?` placeholders on both
 * databases), e.g. from a step callback of an owned store. Rows are appended to
 * `rows` when not NULL: read them with aj_rows_*, free with aj_rows_free. Inside a step,
 * statements that end or start a transaction (COMMIT, ROLLBACK, BEGIN, END, ...) are
 * refused with AJ_EMISUSE before anything is sent. */
typedef struct aj_rows aj_rows;
AJ_EXTERN int aj_store_exec(aj_store *store, const char *sql, const aj_value *params,
                            size_t nparams, aj_rows **rows);
AJ_EXTERN size_t aj_rows_count(const aj_rows *rows);
AJ_EXTERN size_t aj_rows_columns(const aj_rows *rows);
/* Cell of row r, column c; owned by `rows`. */
AJ_EXTERN const aj_value *aj_rows_cell(const aj_rows *rows, size_t r, size_t c);
AJ_EXTERN void aj_rows_free(aj_rows *rows);

/* --- inspection --------------------------------------------------------------------- */

/* 1 when the store's connection has an open transaction, 0 when not, negative on error. */
AJ_EXTERN int aj_store_in_transaction(aj_store *store);

/* The effective options of the store (defaults applied). */
AJ_EXTERN int aj_store_options(const aj_store *store, aj_options *out);

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
 * empty name, invalid UTF-8 or the reserved name "FINISHED". */
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

typedef enum aj_status {
    AJ_RUN_READY = 1,     /* locked by this process; the next step runs the recovery point */
    AJ_RUN_AWAITING = 2,  /* waiting for the jobs of a step; nothing to run now */
    AJ_RUN_SUCCEEDED = 3, /* finished without error */
    AJ_RUN_FAILED = 4,    /* the last step failed: lock released, error recorded */
    AJ_RUN_FINISHED_FAILED = 5, /* finished, but with an error recorded (0.7.0 rows, or
                                   discarded by an operator) */
    AJ_RUN_DEAD = 6,      /* failed max_attempts times: not run again until retried */
    AJ_RUN_NEW = 7        /* aj_run_new: not acquired yet (the first step acquires it) */
} aj_status;

#define AJ_RECOVERY_POINT_FINISHED "FINISHED"

/* Compare stored job arguments with the given ones: 1 equal, 0 different, or a
 * negative aj_code after aj_error_report. For bindings whose equality is not byte
 * equality (Ruby compares ActiveRecord records by id, as acidic_job 0.7.0 did). */
typedef int (*aj_args_equal_fn)(void *ctx, const char *stored, size_t stored_len,
                                const char *given, size_t given_len);

#define AJ_RUN_PARAMS_VERSION 1
typedef struct aj_run_params {
    unsigned int version;   /* AJ_RUN_PARAMS_VERSION */
    const char *key;        /* the idempotency key */
    const char *job_name;   /* e.g. the job class name */
    const char *args;       /* encoded job arguments (may be NULL: none) */
    size_t args_len;
    const char *attributes; /* the attribute document of a new run (may be NULL) */
    size_t attributes_len;
    int64_t run_id;         /* > 0: the run is this row of acidic_job_keys (a record the
                               application looked up itself); 0: find it by key */
    aj_args_equal_fn args_equal; /* NULL: byte comparison */
    void *args_equal_ctx;
    /* How to enqueue this run again (recovery, operator retry): a staged job of this
     * adapter, name and payload. NULL adapter: the run cannot be recovered. */
    const char *resume_adapter;
    const char *resume_job_name;
    const char *resume_payload;
    size_t resume_payload_len;
} aj_run_params;

#define AJ_RUN_PARAMS_INIT {AJ_RUN_PARAMS_VERSION, NULL, NULL, NULL, 0, NULL, 0, 0, NULL, NULL, \
                            NULL, NULL, NULL, 0}

/* Prepare a run without touching the database (status AJ_RUN_NEW). The first step
 * acquires it in its own transaction, so a new run costs no transaction of its own:
 *   - new key: the row is created, locked, at the first step;
 *   - existing key with other args (or, with match_job_name, of another job):
 *     AJ_EMISMATCH, nothing written;
 *   - locked within the lock timeout: AJ_ELOCKED; the message tells when recovery
 *     would pick the run up if its worker died;
 *   - finished: status AJ_RUN_SUCCEEDED or AJ_RUN_FINISHED_FAILED, nothing runs;
 *   - awaiting jobs that have not all succeeded: AJ_RUN_AWAITING, nothing runs;
 *   - dead: AJ_RUN_DEAD, nothing runs;
 *   - otherwise: locked, AJ_RUN_READY at its recovery point.
 * AJ_ENO_STEPS for an empty workflow. The workflow must outlive the run. Params are
 * copied. On success *out is owned by the caller: aj_run_free. */
AJ_EXTERN int aj_run_new(aj_run **out, aj_store *store, const aj_workflow *wf,
                         const aj_run_params *params);

/* aj_run_new, then the acquisition alone in a transaction of its own (one more commit
 * than aj_run_execute needs), for callers that want the status before any step. */
AJ_EXTERN int aj_run_acquire(aj_run **out, aj_store *store, const aj_workflow *wf,
                             const aj_run_params *params);

/* The step callback: make the step's application writes on the store's connection.
 * Return 0 for success. AJ_ECONFLICT, after aj_error_report(AJ_ECONFLICT, ...), says
 * that one of its own writes met a serialization failure or a busy database (SQLite's
 * BUSY_SNAPSHOT when another writer committed after this step's first read): the step is
 * rolled back and retried like a conflict of the core's own statements, and when the
 * retries run out it is AJ_ECONFLICT with the run left as it was. Any other value fails
 * the step: everything it did is rolled back, the error set with aj_run_set_error (or
 * "step NAME failed") is recorded and the lock released. */
typedef int (*aj_step_fn)(aj_run *run, const char *step, void *ctx);

/* Run one step in one transaction (acquiring the run first when it is AJ_RUN_NEW):
 * lock or claim the run row, call `fn`, persist the attributes, advance the recovery
 * point (or finish, jump, await), commit, and hand the staged jobs to the enqueue
 * callback. When the run is not AJ_RUN_READY after acquisition, no step runs.
 *   AJ_OK                      the transaction committed; see aj_run_status
 *   AJ_ESTEP                   the callback failed; rolled back, error recorded,
 *                              lock released (status AJ_RUN_FAILED or AJ_RUN_DEAD)
 *   AJ_EUNKNOWN_RECOVERY_POINT the recovery point is not a step; error recorded, lock
 *                              released
 *   AJ_ELOCKED, AJ_EMISMATCH   see aj_run_new; nothing written
 *   AJ_ELOCKED                 also: another worker took the run over (lock expired)
 *   AJ_EMISUSE                 the callback ended the transaction itself; error recorded
 *   AJ_EDATABASE, AJ_ECONFLICT the transaction failed after its retries; the failure is
 *                              recorded when the connection still allows it
 * Serialization failures and busy databases met by the core's own statements are
 * retried (the step callback then runs again, in a new transaction). */
AJ_EXTERN int aj_run_step(aj_run *run, aj_step_fn fn, void *ctx);

/* aj_run_step until the run is no longer AJ_RUN_READY. */
AJ_EXTERN int aj_run_execute(aj_run *run, aj_step_fn fn, void *ctx);

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

/* Release the run's lock when this step commits, at the next step: the run then waits
 * for something outside acidic_job to perform its job again (a Sidekiq Pro batch's
 * success callback, as acidic_job 0.7.0 used for awaits). Status AJ_RUN_AWAITING;
 * recovery does not hand it out. */
AJ_EXTERN int aj_run_release(aj_run *run);

/* Write the run's row now. A new run's first step on SQLite writes its row last, with its
 * own claim, so that a step that writes nothing until late holds no write lock meanwhile;
 * call this before reading the row through another path (Ruby's AcidicJob::Key, say).
 * aj_run_await does it by itself. A no-op when the row exists. Inside a step only. */
AJ_EXTERN int aj_run_persist(aj_run *run);

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

AJ_EXTERN int64_t aj_run_id(const aj_run *run);      /* 0 until acquired */
AJ_EXTERN int aj_run_status(const aj_run *run);
/* Owned by the run; valid until the next call on it. */
AJ_EXTERN const char *aj_run_key(const aj_run *run);
AJ_EXTERN const char *aj_run_recovery_point(const aj_run *run); /* NULL until acquired */
/* The attribute document and the recorded error document; NULL/0 when none. */
AJ_EXTERN const char *aj_run_attributes(const aj_run *run, size_t *len);
AJ_EXTERN const char *aj_run_error(const aj_run *run, size_t *len);
/* The run's attempts so far (this one included once acquired). */
AJ_EXTERN int aj_run_attempts(const aj_run *run);
/* 1 while a step callback of this run is executing. */
AJ_EXTERN int aj_run_in_step(const aj_run *run);
AJ_EXTERN aj_store *aj_run_store(const aj_run *run);

/* Free the run's memory. It writes nothing: a run freed while locked stays locked
 * until the lock timeout (then recovery hands it back to its queue). AJ_EMISUSE is not
 * possible here, so freeing a run from inside its own step callback is the caller's
 * bug: bindings refuse it. NULL is ignored. */
AJ_EXTERN void aj_run_free(aj_run *run);

/* ------------------------------------------------------------------------ */
/* Operator operations                                                       */
/* ------------------------------------------------------------------------ */
/*
 * What the engineer on call needs, once, for every language layer, CLI and dashboard
 * (decision 013): see every run (aj_admin_list, aj_admin_show, aj_admin_stats_read), read
 * its error and attributes without the application's classes, and act on it
 * (aj_admin_retry, aj_admin_reset, aj_admin_unlock, aj_admin_discard, their bulk form
 * aj_admin_bulk, and aj_admin_prune) without racing a live worker.
 *
 * Reading: each call reads in one transaction of its own (through the host's
 * `atomically` hook on a borrowed store). Results are library-allocated structs that
 * start with `version` (the fields that exist) and only grow at the end; arrays of them
 * are arrays of pointers. Everything a result points to is owned by it and freed with
 * its _free function. Documents are handed out raw (as stored); what the core reads
 * out of them (error class, message, backtrace, steps) is valid UTF-8 without NUL
 * bytes or control characters other than tab and line feed.
 *
 * Acting: every change takes the run's row as a worker does. On PostgreSQL the row is
 * read FOR UPDATE NOWAIT, so a step in progress on a store the core owns (which holds
 * its run's row lock for the whole step) makes the action fail at once with
 * AJ_ELOCKED; on SQLite the action takes the database's write lock first. The update
 * itself is the claim's compare-and-set (the row must still hold the recovery point
 * and lock it was read with). A run locked within the lock timeout (AJ_ADMIN_RUNNING)
 * is refused with AJ_ELOCKED unless AJ_ADMIN_FORCE is given; a forced change makes the
 * worker's next claim miss, so its step rolls back and writes nothing. Each action is
 * one transaction; bulk actions and prune work in transactions of a bounded number of
 * runs, skipping rows another transaction holds (PostgreSQL SKIP LOCKED).
 *
 * Runs are named by `run_id` (> 0: that row of acidic_job_keys; `key` may then be NULL,
 * and must match when given) or by `key` alone. A key that names more than one run
 * (acidic_job 0.7.0 keyed runs by key, job and arguments) is refused with AJ_EINVALID
 * listing their ids; AJ_ENOTFOUND when nothing matches. Calls made inside a step are
 * refused with AJ_EMISUSE.
 *
 * Jobs that retry and reset enqueue go the way recovery's do (aj_store_recover): the
 * run's resume job (aj_run_params.resume_*) is staged in the action's transaction and
 * handed to the store's enqueue callback after commit; without a callback it waits for
 * aj_store_drain.
 */

/* The state of a run as an operator sees it, derived from its row (one bit each, so
 * filters can combine them). "Live lock" means locked more recently than the store's
 * lock_timeout_ms: open the operator's store with the workers' lock timeout. */
typedef enum aj_admin_state {
    AJ_ADMIN_RUNNING = 1 << 0,   /* locked, lock live: a worker is running it */
    AJ_ADMIN_STRANDED = 1 << 1,  /* locked, lock expired: its worker died or its queue lost
                                    the job; recovery hands it back */
    AJ_ADMIN_FAILED = 1 << 2,    /* an error recorded, unlocked, not finished: recovery or a
                                    retry resumes it at its recovery point */
    AJ_ADMIN_DEAD = 1 << 3,      /* failed max_attempts times: never run again until retried */
    AJ_ADMIN_AWAITING = 1 << 4,  /* waiting for the jobs of a step (an open batch) */
    AJ_ADMIN_QUEUED = 1 << 5,    /* unlocked, no error, not finished: waiting for its job
                                    (after a retry, reset or unlock) */
    AJ_ADMIN_SUCCEEDED = 1 << 6, /* finished without an error */
    AJ_ADMIN_DISCARDED = 1 << 7  /* finished with an error recorded: discarded by an
                                    operator (or an acidic_job 0.7.0 row that ended so) */
} aj_admin_state;

#define AJ_ADMIN_FINISHED (AJ_ADMIN_SUCCEEDED | AJ_ADMIN_DISCARDED)
#define AJ_ADMIN_ALL_STATES 0xFFu

/* The name of one state ("running", "stranded", "failed", "dead", "awaiting", "queued",
 * "succeeded", "discarded"), or NULL for anything else. Static storage. */
AJ_EXTERN const char *aj_admin_state_name(int state);

/* The states a name stands for: one of the names above, or "finished" (succeeded and
 * discarded), in any letter case. AJ_EINVALID (the message lists the names) otherwise.
 * For command lines and query parameters: one list of names for every layer. */
AJ_EXTERN int aj_admin_state_parse(const char *name, unsigned *states);

/* Which runs a call looks at. Times are microseconds since 1970-01-01 UTC; "updated"
 * is the row's updated_at (last_run_at on tables without that column). */
#define AJ_ADMIN_FILTER_VERSION 1
typedef struct aj_admin_filter {
    unsigned int version;      /* AJ_ADMIN_FILTER_VERSION */
    unsigned states;           /* aj_admin_state bits; 0: every state (bulk actions and
                                  prune: see there) */
    const char *job_name;      /* exactly this job; NULL: every job */
    const char *key_prefix;    /* keys that start with these bytes; NULL: every key */
    int64_t updated_before_us; /* updated before this time ("--older-than 1h": now - 1 h);
                                  0: no bound */
    int64_t updated_since_us;  /* updated at or after this time; 0: no bound */
    int64_t after_id;          /* the cursor: only runs past this id (see descending);
                                  0: from the first */
    int descending;            /* aj_admin_list: 1 for the newest runs (highest ids) first,
                                  runs below after_id; 0: ascending, above after_id */
    size_t limit;              /* runs per page (aj_admin_list) or per transaction (bulk
                                  actions, prune); 0: 50 for a page, 100 for a transaction;
                                  at most 1000 */
} aj_admin_filter;

#define AJ_ADMIN_FILTER_INIT {AJ_ADMIN_FILTER_VERSION, 0, NULL, NULL, 0, 0, 0, 0, 0}

/* One run, as a list shows it. Times are microseconds since 1970-01-01 UTC; 0: none. */
#define AJ_ADMIN_RUN_VERSION 1
typedef struct aj_admin_run {
    unsigned int version;       /* AJ_ADMIN_RUN_VERSION: the fields that exist */
    int64_t id;                 /* the row of acidic_job_keys */
    const char *key;            /* the idempotency key */
    const char *job_name;
    int state;                  /* one aj_admin_state */
    const char *recovery_point; /* the step it resumes at, or "FINISHED" */
    int attempts;               /* acquisitions so far (0 for rows older than acidic_job 0.9) */
    int64_t locked_at_us;       /* 0: unlocked */
    const char *locked_by;      /* "host:pid" of the lock's holder; NULL: unknown or unlocked */
    const char *error_class;    /* the recorded error's class; NULL: none or not named */
    const char *error_message;  /* its message on one line (white space folded, at most 300
                                   bytes and "…"; "" when the document names a class
                                   only); NULL: no error */
    int64_t updated_at_us;      /* its last change (updated_at, else last_run_at) */
    int64_t created_at_us;      /* 0 on tables without created_at */
    int64_t last_run_at_us;     /* its last acquisition */
    int64_t recover_at_us;      /* when recovery looks at it next; 0: never */
    int64_t dead_at_us;         /* when it was marked dead; 0: not dead */
    int64_t awaiting_batch_id;  /* the batch it awaits; 0: none */
} aj_admin_run;

/* A page of runs, in id order (descending when asked). */
#define AJ_ADMIN_PAGE_VERSION 1
typedef struct aj_admin_page {
    unsigned int version;
    size_t count;
    const aj_admin_run *const *runs;
    int64_t next_cursor; /* pass as after_id for the next page; 0: this is the last page */
} aj_admin_page;

/* List the runs `filter` selects (NULL: every run, first page), one page at a time:
 * keyset paging on the run id, so a page costs the same at any depth and runs added
 * meanwhile are neither skipped nor repeated. The error class and message of each run
 * are read from the first 16 KB of its error document. On success *out is owned by the
 * caller: aj_admin_page_free. AJ_EINVALID for a bad filter. */
AJ_EXTERN int aj_admin_list(aj_store *store, const aj_admin_filter *filter,
                            aj_admin_page **out);
AJ_EXTERN void aj_admin_page_free(aj_admin_page *page);

/* An error document as the core reads it: as text, never instantiating anything, so a
 * console without the application's classes reads it. Understood forms: YAML that
 * starts with "---" (Ruby: `--- !ruby/exception:Stripe::CardError` with `message:` and
 * `backtrace:`; any mapping with `class:` and `message:`), JSON ({"class": ...,
 * "message": ..., "backtrace" or "traceback": [...] or "..."}); anything else is the
 * message itself (format "text"). A truncated document yields what it holds. */
#define AJ_ADMIN_ERROR_VERSION 1
typedef struct aj_admin_error {
    unsigned int version;
    const char *format;            /* "yaml", "json" or "text" */
    const char *class_name;        /* NULL: the document names no class */
    const char *message;           /* the whole message (may span lines); NULL: none */
    const char *summary;           /* one line: "Class: message" (folded and cut as
                                      aj_admin_run.error_message); never NULL */
    size_t backtrace_count;
    const char *const *backtrace;  /* its first lines (at most 10) */
} aj_admin_error;

/* Read an error document (`len` bytes; it need not be valid UTF-8). On success *out is
 * owned by the caller: aj_admin_error_free. Only AJ_EINVALID (NULL with a length, NULL
 * out) or AJ_ENOMEM: any content reads. For the language layers' error summaries. */
AJ_EXTERN int aj_admin_error_parse(aj_admin_error **out, const char *doc, size_t len);
AJ_EXTERN void aj_admin_error_free(aj_admin_error *error);

/* A step of a run's recorded workflow, by its position relative to the recovery point
 * (a run that jumped with aj_run_goto may have run steps shown as pending). */
typedef enum aj_admin_step_state {
    AJ_ADMIN_STEP_DONE = 1,    /* before the recovery point (every step of a finished run) */
    AJ_ADMIN_STEP_CURRENT = 2, /* the recovery point: running, failed or next */
    AJ_ADMIN_STEP_PENDING = 3  /* after it */
} aj_admin_step_state;

#define AJ_ADMIN_STEP_VERSION 1
typedef struct aj_admin_step {
    unsigned int version;
    const char *name;
    int state;                  /* an aj_admin_step_state */
    size_t n_awaits;
    const char *const *awaits;  /* the jobs the step awaits */
} aj_admin_step;

/* A staged job (a row of staged_acidic_jobs: not acknowledged yet). */
#define AJ_ADMIN_STAGED_VERSION 1
typedef struct aj_admin_staged {
    unsigned int version;
    int64_t id;
    const char *adapter;
    const char *job_name;
    const char *payload;        /* raw */
    size_t payload_len;
    int64_t run_id;             /* the run that staged it (0: staged before acidic_job 0.9) */
    int64_t batch_id;           /* the batch it belongs to (an awaited job); 0: none */
    int64_t created_at_us;      /* 0 on tables without created_at */
    int64_t delivered_at_us;    /* last handed to the queue; 0: never */
} aj_admin_staged;

/* A batch of awaited jobs (a row of acidic_job_batches: open until its last job is
 * acknowledged). */
#define AJ_ADMIN_BATCH_VERSION 1
typedef struct aj_admin_batch {
    unsigned int version;
    int64_t id;
    int64_t run_id;              /* the run that awaits it */
    const char *step;            /* the step that staged it */
    int64_t remaining;           /* jobs not acknowledged yet */
    const char *continuation_adapter;  /* the job that resumes the run; NULL: none */
    const char *continuation_job_name;
    int64_t created_at_us;
    int64_t updated_at_us;
} aj_admin_batch;

/* One run in full. Documents are raw, as stored (pretty-printing is the bindings'). */
#define AJ_ADMIN_DETAIL_VERSION 1
typedef struct aj_admin_detail {
    unsigned int version;
    const aj_admin_run *run;       /* its row, as aj_admin_list shows it */
    const char *job_args;          /* NULL: none */
    size_t job_args_len;
    const char *attributes;        /* the attribute document; NULL: none */
    size_t attributes_len;
    const char *workflow;          /* the workflow document; NULL: not recorded */
    size_t workflow_len;
    size_t n_steps;                /* 0 when the workflow is missing or unreadable */
    const aj_admin_step *const *steps;
    const char *error_document;    /* NULL: no error */
    size_t error_document_len;
    const aj_admin_error *error;   /* the error read out of it; NULL: no error */
    size_t n_staged;               /* its staged jobs, in id order (at most 1000) */
    const aj_admin_staged *const *staged;
    const aj_admin_batch *batch;   /* the open batch it awaits; NULL: none */
    const char *resume_adapter;    /* how retry and recovery enqueue it; NULL: they cannot */
    const char *resume_job_name;
    const char *resume_payload;
    size_t resume_payload_len;
} aj_admin_detail;

/* One run in full: its row, its steps (from the recorded workflow) with which are
 * done, current and pending, its documents, its error read out, its staged jobs (those
 * it staged, its awaited jobs, the resume jobs recovery and retries staged) and its
 * open batch. On success *out is owned by the caller: aj_admin_detail_free. */
AJ_EXTERN int aj_admin_show(aj_store *store, const char *key, int64_t run_id,
                            aj_admin_detail **out);
AJ_EXTERN void aj_admin_detail_free(aj_admin_detail *detail);

/* Flags of the actions. */
enum {
    AJ_ADMIN_FORCE = 1 << 0,     /* act on a run whose lock is live (AJ_ADMIN_RUNNING):
                                    the operator knows its worker is dead */
    AJ_ADMIN_NO_ENQUEUE = 1 << 1 /* retry, reset: change the row but stage no job (the
                                    caller enqueues the run itself, e.g. a 0.7.0 row
                                    without a resume description) */
};

/* Retry a failed, dead, stranded or queued run: clear its error and dead mark, reset
 * its attempts to 0, release its lock, and enqueue its resume job (unless
 * AJ_ADMIN_NO_ENQUEUE). It resumes at its recovery point. AJ_ESTATE for a finished or
 * awaiting run, or (without AJ_ADMIN_NO_ENQUEUE) one without a resume description;
 * AJ_ELOCKED for a live lock (see AJ_ADMIN_FORCE). */
AJ_EXTERN int aj_admin_retry(aj_store *store, const char *key, int64_t run_id,
                             unsigned flags);

/* Move a run's recovery point to `step`, back or forward, and enqueue it as a retry
 * does (error, dead mark, attempts and lock cleared; a finished run runs again from
 * there; an awaiting run stops awaiting, and its batch's jobs no longer resume it).
 * Steps from `step` on run again, with their writes, exactly as on a first run; the
 * attributes stay as the last committed step left them. AJ_EUNKNOWN_RECOVERY_POINT when
 * `step` is not a step of the run's recorded workflow (or none is recorded), AJ_ELOCKED
 * for a live lock (see AJ_ADMIN_FORCE), AJ_ESTATE without a resume description (see
 * AJ_ADMIN_NO_ENQUEUE). */
AJ_EXTERN int aj_admin_reset(aj_store *store, const char *key, int64_t run_id,
                             const char *step, unsigned flags);

/* Release the lock of a run whose worker is dead (AJ_ADMIN_STRANDED). Nothing is
 * enqueued here: the run is due for recovery at once, so the next aj_store_recover
 * hands it back to its queue (or retry it). AJ_ELOCKED for a live lock unless
 * AJ_ADMIN_FORCE, AJ_ESTATE for a run that is not locked. */
AJ_EXTERN int aj_admin_unlock(aj_store *store, const char *key, int64_t run_id,
                              unsigned flags);

/* Mark a run finished and failed so that it never runs again, keeping its row: its
 * recovery point becomes "FINISHED", its lock, batch and recovery time are cleared, and
 * an error is recorded when it had none ({"class":"acidic_job.Discarded",...}).
 * AJ_ESTATE for a finished run, AJ_ELOCKED for a live lock unless AJ_ADMIN_FORCE. */
AJ_EXTERN int aj_admin_discard(aj_store *store, const char *key, int64_t run_id,
                               unsigned flags);

/* Progress of a long call: `done` runs of about `total` (counted when the call began),
 * after each committed transaction that handled runs (and at least once). Return 0 to
 * go on, anything else to stop there (the call then returns AJ_OK with what was done). */
typedef int (*aj_admin_progress_fn)(void *ctx, size_t done, size_t total);

typedef enum aj_admin_action {
    AJ_ADMIN_RETRY = 1,
    AJ_ADMIN_RESET = 2,
    AJ_ADMIN_UNLOCK = 3,
    AJ_ADMIN_DISCARD = 4
} aj_admin_action;

/* Apply an action to every run `filter` selects ("retry --all --job X --state failed"),
 * in id order, in transactions of filter->limit runs; rows a live transaction holds are
 * passed over. `step` is the target of AJ_ADMIN_RESET (else NULL). filter->states 0
 * means failed and dead runs (stranded ones for AJ_ADMIN_UNLOCK); states the action
 * never applies to are AJ_EINVALID (running ones need AJ_ADMIN_FORCE). Runs the action
 * refuses (see the single-run calls) are skipped, not errors. *changed and *skipped
 * (may be NULL) count them; `progress` (may be NULL, see aj_admin_progress_fn) gets
 * done = changed + skipped. filter->after_id starts the walk past that id; descending
 * does not apply. A failure stops the call; the transactions before it stay committed
 * (their counts are set). */
AJ_EXTERN int aj_admin_bulk(aj_store *store, int action, const char *step,
                            const aj_admin_filter *filter, unsigned flags,
                            aj_admin_progress_fn progress, void *ctx, size_t *changed,
                            size_t *skipped);

/* Delete finished runs (their rows) that `filter` selects, in transactions of
 * filter->limit rows: retention ("prune --finished-before 7d" is updated_before_us =
 * now - 7 days). filter->updated_before_us is required; filter->states must be 0
 * (finished runs) or name finished states only. Staged jobs are kept. *deleted (may be
 * NULL) counts the rows deleted, also when a later transaction fails. */
AJ_EXTERN int aj_admin_prune(aj_store *store, const aj_admin_filter *filter,
                             aj_admin_progress_fn progress, void *ctx, size_t *deleted);

/* How many runs of one job (or of every job: job_name NULL) are in one state. */
#define AJ_ADMIN_COUNT_VERSION 1
typedef struct aj_admin_count {
    unsigned int version;
    const char *job_name; /* NULL in aj_admin_stats.states */
    int state;            /* one aj_admin_state */
    size_t count;
} aj_admin_count;

#define AJ_ADMIN_STATS_VERSION 1
typedef struct aj_admin_stats {
    unsigned int version;
    size_t total;                          /* runs */
    size_t n_states;                       /* per state with runs, in aj_admin_state order */
    const aj_admin_count *const *states;
    size_t n_jobs;                         /* per job name and state with runs, by job name */
    const aj_admin_count *const *jobs;
    const aj_admin_run *oldest_stranded;   /* the run stranded longest; NULL: none */
    size_t staged_backlog;                 /* staged jobs not acknowledged */
    const aj_admin_staged *oldest_staged;  /* the oldest of them; NULL: none */
    size_t open_batches;
    const aj_admin_batch *oldest_batch;    /* the oldest open batch; NULL: none */
} aj_admin_stats;

/* Counts by state and job, the oldest stranded run, the staged backlog and its oldest
 * row, and the open batches. Each figure scans its table (no index serves a count by
 * state). On success *out is owned by the caller: aj_admin_stats_free. */
AJ_EXTERN int aj_admin_stats_read(aj_store *store, aj_admin_stats **out);
AJ_EXTERN void aj_admin_stats_free(aj_admin_stats *stats);

/* A page of the staged backlog, oldest (lowest id) first. */
#define AJ_ADMIN_STAGED_PAGE_VERSION 1
typedef struct aj_admin_staged_page {
    unsigned int version;
    size_t count;
    const aj_admin_staged *const *staged;
    int64_t next_cursor; /* pass as after_id for the next page; 0: this is the last page */
} aj_admin_staged_page;

/* The staged jobs not acknowledged yet (every run's, and those staged outside a run),
 * in id order past `after_id` (0: from the first), `limit` per page (0: 50; at most
 * 1000): keyset paging, as aj_admin_list. For a dashboard's backlog page; what one
 * run staged is in aj_admin_show. On success *out is owned by the caller:
 * aj_admin_staged_page_free. AJ_EINVALID for a negative cursor or a limit over 1000. */
AJ_EXTERN int aj_admin_staged_list(aj_store *store, int64_t after_id, size_t limit,
                                   aj_admin_staged_page **out);
AJ_EXTERN void aj_admin_staged_page_free(aj_admin_staged_page *page);

#ifdef __cplusplus
}
#endif
#endif /* ACIDIC_JOB_H */
