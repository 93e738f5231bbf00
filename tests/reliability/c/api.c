/* See api.h: the reliability suites' calls of the core's API, in one place. */
#include "api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

aj_options api_options(int64_t lock_timeout_ms, int64_t busy_timeout_ms)
{
    aj_options o = AJ_OPTIONS_INIT;
    if (lock_timeout_ms > 0)
        o.lock_timeout_ms = lock_timeout_ms;
    if (busy_timeout_ms > 0)
        o.busy_timeout_ms = busy_timeout_ms;
    return o;
}

int api_open(aj_store **out, const char *url, int64_t lock_timeout_ms, int64_t busy_timeout_ms)
{
    aj_options o = api_options(lock_timeout_ms, busy_timeout_ms);
    return aj_store_open(out, url, &o);
}

aj_run_params api_params(const char *key, const char *job_name, const char *args,
                         size_t args_len, char *payload_buf, size_t payload_cap)
{
    aj_run_params p = AJ_RUN_PARAMS_INIT;
    p.key = key;
    p.job_name = job_name;
    p.args = args;
    p.args_len = args ? args_len : 0;
    int n = snprintf(payload_buf, payload_cap, "resume %s", key ? key : "");
    if (key && n > 0 && (size_t)n < payload_cap) {
        p.resume_adapter = "harness";
        p.resume_job_name = "resume";
        p.resume_payload = payload_buf;
        p.resume_payload_len = (size_t)n;
    }
    return p;
}

int api_acquire(aj_run **out, aj_store *store, const aj_workflow *wf, const char *key,
                const char *job_name, const char *args, size_t args_len)
{
    char payload[320];
    aj_run_params p = api_params(key, job_name, args, args_len, payload, sizeof payload);
    return aj_run_acquire(out, store, wf, &p);
}

int api_run_to_end(aj_store *store, const aj_workflow *wf, const char *key,
                   const char *job_name, const char *args, size_t args_len, aj_step_fn fn,
                   void *ctx, int attempts, int *status)
{
    int rc = AJ_OK, st = 0;
    char payload[320];
    aj_run_params p = api_params(key, job_name, args, args_len, payload, sizeof payload);
    for (int i = 0; i < attempts; i++) {
        aj_run *run = NULL;
        if ((rc = aj_run_new(&run, store, wf, &p)) != AJ_OK)
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

/* --- borrowed ----------------------------------------------------------------------- */

/* One statement on the native handle: 0, or a negative aj_code after aj_error_report
 * (AJ_ECONFLICT for what a retry can fix: busy SQLite, serialization failure, deadlock). */
static int native_exec(api_borrowed *b, const char *sql)
{
    char msg[600];
    if (b->sqlite) {
        int rc = sqlite3_exec(b->sqlite, sql, NULL, NULL, NULL);
        if (rc == SQLITE_OK)
            return 0;
        snprintf(msg, sizeof msg, "host %s: %s", sql, sqlite3_errmsg(b->sqlite));
        return aj_error_report((rc & 0xff) == SQLITE_BUSY ? AJ_ECONFLICT : AJ_EDATABASE, msg);
    }
    PGresult *r = PQexec(b->pg, sql);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    int conflict = state && (!strcmp(state, "40001") || !strcmp(state, "40P01"));
    if (!ok)
        snprintf(msg, sizeof msg, "host %s: %s", sql, PQerrorMessage(b->pg));
    PQclear(r);
    if (ok)
        return 0;
    return aj_error_report(conflict ? AJ_ECONFLICT : AJ_EDATABASE, msg);
}

static int in_transaction(api_borrowed *b)
{
    if (b->sqlite)
        return !sqlite3_get_autocommit(b->sqlite);
    return PQtransactionStatus(b->pg) != PQTRANS_IDLE && PQtransactionStatus(b->pg) != PQTRANS_UNKNOWN;
}

/* The application's side of aj_host_tx (see acidic_job.h): begin, body, commit or roll
 * back. */
static int host_atomically(void *ctx, aj_tx_body body, void *arg, int *committed)
{
    api_borrowed *b = ctx;
    *committed = 0;
    b->transactions++;
    if (b->pg && PQstatus(b->pg) == CONNECTION_BAD) {
        b->resets++;
        PQreset(b->pg);
        if (PQstatus(b->pg) == CONNECTION_OK)
            PQclear(PQexec(b->pg, "SET client_min_messages = warning"));
    }
    int rc = native_exec(b, "BEGIN");
    if (rc)
        return rc;
    if (body(arg) != 0) {
        if (in_transaction(b))
            native_exec(b, "ROLLBACK");
        if (b->after_rollback)
            native_exec(b, b->after_rollback);
        return 0;
    }
    if (b->hold_commit) {
        b->hold_commit = 0;
        b->holding = 1;
        while (!b->released)
            usleep(1000);
        b->holding = 0;
    }
    if ((rc = native_exec(b, "COMMIT")) != 0) {
        if (in_transaction(b))
            native_exec(b, "ROLLBACK");
        return rc;
    }
    *committed = 1;
    return 0;
}

static void borrowed_init(api_borrowed *b)
{
    memset(b, 0, sizeof *b);
    aj_host_tx hooks = AJ_HOST_TX_INIT;
    hooks.atomically = host_atomically;
    b->hooks = hooks;
}

int api_borrow_pg(api_borrowed *b, PGconn *pg, const aj_options *opts)
{
    borrowed_init(b);
    b->pg = pg;
    return aj_store_borrow_pg(&b->store, pg, &b->hooks, b, opts);
}

int api_borrow_sqlite(api_borrowed *b, sqlite3 *db, const aj_options *opts)
{
    borrowed_init(b);
    b->sqlite = db;
    return aj_store_borrow_sqlite(&b->store, db, &b->hooks, b, opts);
}

void api_borrowed_free(api_borrowed *b)
{
    aj_store_free(b->store);
    b->store = NULL;
}

void api_release_commit(api_borrowed *b) { b->released = 1; }

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
