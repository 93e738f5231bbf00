/* The reliability suites' one door to the core's public API.
 *
 * The API is being rewritten (the next header is /work/wt/NEXT_acidic_job.h): every call
 * whose shape changes goes through a helper here, so that porting the suites is a change
 * of this file and api.c only. Each helper says what the next header changes.
 */
#ifndef AJ_RELIABILITY_API_H
#define AJ_RELIABILITY_API_H

#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>
#include <sqlite3.h>

#include "acidic_job.h"

/* Open an owned store. lock_timeout_ms / busy_timeout_ms <= 0: the defaults.
 * NEXT: aj_options_init(&o, AJ_OPTIONS_VERSION) and AJ_UNSET for the defaults. */
int api_open(aj_store **out, const char *url, int64_t lock_timeout_ms, int64_t busy_timeout_ms);

/* Acquire `key` for `job_name` with `args` (may be NULL) of `args_len` bytes.
 * NEXT: AJ_RUN_PARAMS_INIT, plus resume_* so that recovery can re-enqueue the run. */
int api_acquire(aj_run **out, aj_store *store, const aj_workflow *wf, const char *key,
                const char *job_name, const char *args, size_t args_len);

/* Acquire and execute until the run is no longer ready, reacquiring after a failed step
 * (at most `attempts` acquisitions). Returns the last code; *status the last status. */
int api_run_to_end(aj_store *store, const aj_workflow *wf, const char *key,
                   const char *job_name, const char *args, size_t args_len, aj_step_fn fn,
                   void *ctx, int attempts, int *status);

/* --- borrowed connections ------------------------------------------------------------
 * Today the application opens and ends every transaction and tells the core with
 * aj_store_settle; a failed step is recorded with aj_run_fail in a transaction of its own.
 * NEXT: aj_store_borrow_* take an aj_host_tx hook table (NULL: the core begins and commits
 * on the handle itself), aj_store_settle and aj_run_fail disappear, and aj_run_execute
 * drives a whole run on a borrowed store too. */
typedef struct api_borrowed {
    aj_store *store;
    PGconn *pg;       /* one of the two */
    sqlite3 *sqlite;
} api_borrowed;

int api_borrow_pg(api_borrowed *b, PGconn *pg, int64_t lock_timeout_ms);
int api_borrow_sqlite(api_borrowed *b, sqlite3 *db, int64_t lock_timeout_ms);
void api_borrowed_free(api_borrowed *b);
/* BEGIN (SQLite: BEGIN IMMEDIATE) on the borrowed handle, COMMIT, ROLLBACK: 0 or -1.
 * Like an application's connection pool, BEGIN first resets a PostgreSQL connection that
 * was lost (the server restarted). */
int api_host_begin(api_borrowed *b);
int api_host_commit(api_borrowed *b);
int api_host_rollback(api_borrowed *b);
/* One call of the core inside a host transaction of its own: migrate, acquire, drain. */
int api_borrowed_migrate(api_borrowed *b);
int api_borrowed_acquire(api_borrowed *b, aj_run **out, const aj_workflow *wf, const char *key,
                         const char *job_name, const char *args, size_t args_len);
int api_borrowed_drain(api_borrowed *b, int64_t older_than_ms, size_t *delivered);
/* One step: begin, aj_run_step, commit (rollback on failure, then the failure recorded in
 * a transaction of its own, as the bindings do). Returns the step's code. */
int api_borrowed_step(api_borrowed *b, aj_run *run, aj_step_fn fn, void *ctx);
/* Record a failed step (today aj_run_fail) in a host transaction of its own. */
int api_borrowed_record_failure(api_borrowed *b, aj_run *run);
/* Acknowledge a staged job in a host transaction of its own. */
int api_borrowed_ack(api_borrowed *b, int64_t staged_id);

/* --- the test server ----------------------------------------------------------------- */

/* Restart the test PostgreSQL server (scripts/pg-server.sh restart DIR MODE, MODE fast or
 * immediate). 0 on success; needs AJ_TEST_PG_DIR and AJ_TEST_ROOT. */
int pg_restart(const char *mode);

#endif
