/* See api.h: the reliability suites' calls of the core's API, in one place. */
#include "api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int api_open(aj_store **out, const char *url, int64_t lock_timeout_ms, int64_t busy_timeout_ms)
{
    aj_options o;
    aj_options_init(&o);
    if (lock_timeout_ms > 0)
        o.lock_timeout_ms = lock_timeout_ms;
    if (busy_timeout_ms > 0)
        o.busy_timeout_ms = busy_timeout_ms > 2000000000 ? 2000000000 : (int)busy_timeout_ms;
    return aj_store_open(out, url, &o);
}

static aj_run_params params_for(const char *key, const char *job_name, const char *args,
                                size_t args_len)
{
    aj_run_params p;
    memset(&p, 0, sizeof p);
    p.key = key;
    p.job_name = job_name;
    p.args = args;
    p.args_len = args ? args_len : 0;
    return p;
}

int api_acquire(aj_run **out, aj_store *store, const aj_workflow *wf, const char *key,
                const char *job_name, const char *args, size_t args_len)
{
    aj_run_params p = params_for(key, job_name, args, args_len);
    return aj_run_acquire(out, store, wf, &p);
}

int api_run_to_end(aj_store *store, const aj_workflow *wf, const char *key,
                   const char *job_name, const char *args, size_t args_len, aj_step_fn fn,
                   void *ctx, int attempts, int *status)
{
    int rc = AJ_OK, st = 0;
    for (int i = 0; i < attempts; i++) {
        aj_run *run = NULL;
        rc = api_acquire(&run, store, wf, key, job_name, args, args_len);
        if (rc != AJ_OK)
            break;
        rc = aj_run_execute(run, fn, ctx);
        st = aj_run_status(run);
        aj_run_free(run);
        if (rc == AJ_OK)
            break;
    }
    if (status)
        *status = st;
    return rc;
}

/* --- borrowed --------------------------------------------------------------------- */

int api_borrow_pg(api_borrowed *b, PGconn *pg, int64_t lock_timeout_ms)
{
    memset(b, 0, sizeof *b);
    b->pg = pg;
    aj_options o;
    aj_options_init(&o);
    if (lock_timeout_ms > 0)
        o.lock_timeout_ms = lock_timeout_ms;
    return aj_store_borrow_pg(&b->store, pg, &o);
}

int api_borrow_sqlite(api_borrowed *b, sqlite3 *db, int64_t lock_timeout_ms)
{
    memset(b, 0, sizeof *b);
    b->sqlite = db;
    aj_options o;
    aj_options_init(&o);
    if (lock_timeout_ms > 0)
        o.lock_timeout_ms = lock_timeout_ms;
    return aj_store_borrow_sqlite(&b->store, db, &o);
}

void api_borrowed_free(api_borrowed *b)
{
    aj_store_free(b->store);
    b->store = NULL;
}

static int host_exec(api_borrowed *b, const char *sql)
{
    if (b->sqlite)
        return sqlite3_exec(b->sqlite, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : -1;
    PGresult *r = PQexec(b->pg, sql);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    return ok ? 0 : -1;
}

int api_host_begin(api_borrowed *b)
{
    if (b->pg && PQstatus(b->pg) == CONNECTION_BAD)
        PQreset(b->pg);
    return host_exec(b, b->sqlite ? "BEGIN IMMEDIATE" : "BEGIN");
}
int api_host_commit(api_borrowed *b) { return host_exec(b, "COMMIT"); }
int api_host_rollback(api_borrowed *b) { return host_exec(b, "ROLLBACK"); }

/* Settle after the host transaction ended. NEXT: gone (the core drives the transaction). */
static void settle(api_borrowed *b, int committed) { aj_store_settle(b->store, committed); }

/* begin; rc = body; commit or roll back; settle. */
#define IN_HOST_TX(b, call)                                                                 \
    do {                                                                                    \
        if (api_host_begin(b))                                                              \
            return aj_error_set_for_tests("host BEGIN failed");                             \
        int rc_ = (call);                                                                   \
        if (rc_ == AJ_OK && api_host_commit(b) == 0) {                                      \
            settle(b, 1);                                                                   \
            return AJ_OK;                                                                   \
        }                                                                                   \
        api_host_rollback(b);                                                               \
        settle(b, 0);                                                                       \
        return rc_ ? rc_ : AJ_EDATABASE;                                                    \
    } while (0)

/* A host failure has no aj_code today. NEXT: aj_error_report(AJ_EDATABASE, message). */
static int aj_error_set_for_tests(const char *message)
{
    fprintf(stderr, "api: %s\n", message);
    return AJ_EDATABASE;
}

int api_borrowed_migrate(api_borrowed *b) { IN_HOST_TX(b, aj_store_migrate(b->store)); }

int api_borrowed_acquire(api_borrowed *b, aj_run **out, const aj_workflow *wf, const char *key,
                         const char *job_name, const char *args, size_t args_len)
{
    aj_run_params p = params_for(key, job_name, args, args_len);
    IN_HOST_TX(b, aj_run_acquire(out, b->store, wf, &p));
}

int api_borrowed_drain(api_borrowed *b, int64_t older_than_ms, size_t *delivered)
{
    IN_HOST_TX(b, aj_store_drain(b->store, older_than_ms, delivered));
}

int api_borrowed_record_failure(api_borrowed *b, aj_run *run) { IN_HOST_TX(b, aj_run_fail(run)); }

int api_borrowed_ack(api_borrowed *b, int64_t staged_id)
{
    IN_HOST_TX(b, aj_staged_ack(b->store, staged_id, NULL));
}

int api_borrowed_step(api_borrowed *b, aj_run *run, aj_step_fn fn, void *ctx)
{
    if (api_host_begin(b))
        return aj_error_set_for_tests("host BEGIN failed");
    int rc = aj_run_step(run, fn, ctx);
    if (rc == AJ_OK && api_host_commit(b) == 0) {
        settle(b, 1);
        return AJ_OK;
    }
    api_host_rollback(b);
    settle(b, 0);
    if (rc == AJ_ESTEP)
        api_borrowed_record_failure(b, run);
    return rc ? rc : AJ_EDATABASE;
}

/* --- the server -------------------------------------------------------------------- */

int pg_restart(const char *mode)
{
    const char *dir = getenv("AJ_TEST_PG_DIR");
    const char *root = getenv("AJ_TEST_ROOT");
    if (!dir || !*dir || !root || !*root) {
        fprintf(stderr, "pg_restart: AJ_TEST_PG_DIR and AJ_TEST_ROOT must be set\n");
        return -1;
    }
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "bash \"%s/scripts/pg-server.sh\" restart \"%s\" %s >/dev/null",
             root, dir, mode);
    fflush(NULL);
    return system(cmd) == 0 ? 0 : -1;
}
