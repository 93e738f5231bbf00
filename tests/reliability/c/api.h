/* The reliability suites' C helpers over the core's public API (0.9): owned stores with
 * options, runs with a resume description (so that recovery can hand them back), and
 * borrowed connections whose transactions an "application" drives through the aj_host_tx
 * hook table, as the language bindings do.
 */
#ifndef AJ_RELIABILITY_API_H
#define AJ_RELIABILITY_API_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>
#include <sqlite3.h>

#include "acidic_job.h"

/* Options with lock_timeout_ms / busy_timeout_ms set when > 0 (else the core's defaults). */
aj_options api_options(int64_t lock_timeout_ms, int64_t busy_timeout_ms);

/* Open an owned store. lock_timeout_ms / busy_timeout_ms <= 0: the defaults. */
int api_open(aj_store **out, const char *url, int64_t lock_timeout_ms, int64_t busy_timeout_ms);

/* The run's parameters: `key` for `job_name` with `args` (may be NULL) of `args_len`
 * bytes, and a resume description (adapter "harness", job "resume", payload
 * "resume KEY") so that aj_store_recover can hand the run back. The strings are borrowed;
 * the payload lives in `payload_buf` (at least 64 bytes). */
aj_run_params api_params(const char *key, const char *job_name, const char *args,
                         size_t args_len, char *payload_buf, size_t payload_cap);

/* aj_run_acquire with api_params. */
int api_acquire(aj_run **out, aj_store *store, const aj_workflow *wf, const char *key,
                const char *job_name, const char *args, size_t args_len);

/* aj_run_new then aj_run_execute, again after a failed step (at most `attempts` runs).
 * Returns the last code; *status the last status. */
int api_run_to_end(aj_store *store, const aj_workflow *wf, const char *key,
                   const char *job_name, const char *args, size_t args_len, aj_step_fn fn,
                   void *ctx, int attempts, int *status);

/* --- borrowed connections --------------------------------------------------------------
 * The application's connection lent to the core with a hook table whose `atomically`
 * begins (SQLite: BEGIN IMMEDIATE), runs the core's body, and commits or rolls back on the
 * native handle, as an application's ORM would. Like a connection pool, it resets a lost
 * PostgreSQL connection before it begins. `after_rollback` (may be NULL) is SQL the host
 * sends after each rollback, as psycopg 3 sends DEALLOCATE ALL. `hold_commit` (tests of races) makes the next
 * transaction wait, after its body succeeded and before COMMIT, until api_release_commit. */
typedef struct api_borrowed {
    aj_store *store;
    PGconn *pg;       /* one of the two */
    sqlite3 *sqlite;
    aj_host_tx hooks;
    int transactions; /* `atomically` calls */
    int resets;       /* PQreset calls */
    const char *after_rollback;
    atomic_int hold_commit; /* set by the test, cleared by the hook when it starts to wait */
    atomic_int holding;     /* the body succeeded, COMMIT waits */
    atomic_int released;
} api_borrowed;

/* `opts` may be NULL (the defaults). */
int api_borrow_pg(api_borrowed *b, PGconn *pg, const aj_options *opts);
int api_borrow_sqlite(api_borrowed *b, sqlite3 *db, const aj_options *opts);
void api_borrowed_free(api_borrowed *b);
void api_release_commit(api_borrowed *b);

/* --- the test server ------------------------------------------------------------------- */

/* Restart the test PostgreSQL server (scripts/pg-server.sh restart DIR MODE, MODE fast or
 * immediate). 0 on success; needs AJ_TEST_PG_DIR and AJ_TEST_ROOT. */
int pg_restart(const char *mode);

#endif
