/* Borrowed connections: the application owns the connection and its transactions; the
 * core asks for each transaction through the host hook table (aj_host_tx) and drives
 * the whole run itself with aj_run_execute. */
#include "harness.h"
#include "tests.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>
#include <sqlite3.h>

static void quiet_notice(void *arg, const char *message) {
    (void)arg;
    (void)message;
}

typedef struct native {
    sqlite3 *db;
    PGconn *pg;
} native;

static void nat_open(native *n) {
    memset(n, 0, sizeof *n);
    if (g_db == DB_SQLITE) {
        assert_int_equal(sqlite3_open(test_sqlite_path(), &n->db), SQLITE_OK);
        sqlite3_busy_timeout(n->db, 5000);
    } else {
        n->pg = PQconnectdb(test_url());
        if (PQstatus(n->pg) != CONNECTION_OK) fail_msg("connect: %s", PQerrorMessage(n->pg));
        PQsetNoticeProcessor(n->pg, quiet_notice, NULL);
    }
}

/* 0, or the database's message in msg. */
static int nat_try(native *n, const char *sql, char *msg, size_t cap) {
    if (n->db) {
        char *err = NULL;
        int rc = sqlite3_exec(n->db, sql, NULL, NULL, &err);
        if (rc != SQLITE_OK) {
            snprintf(msg, cap, "%s", err ? err : "error");
            sqlite3_free(err);
            return rc;
        }
        return 0;
    }
    PGresult *r = PQexec(n->pg, sql);
    ExecStatusType st = PQresultStatus(r);
    int failed = st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK;
    if (failed) snprintf(msg, cap, "%s", PQerrorMessage(n->pg));
    PQclear(r);
    return failed;
}

static void nat_exec(native *n, const char *sql) {
    char msg[512];
    if (nat_try(n, sql, msg, sizeof msg)) fail_msg("%s: %s", sql, msg);
}

static int64_t nat_int(native *n, const char *sql) {
    int64_t v = -1;
    if (n->db) {
        sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(n->db, sql, -1, &st, NULL) != SQLITE_OK)
            fail_msg("%s: %s", sql, sqlite3_errmsg(n->db));
        if (sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
    } else {
        PGresult *r = PQexec(n->pg, sql);
        if (PQresultStatus(r) != PGRES_TUPLES_OK) fail_msg("%s: %s", sql, PQerrorMessage(n->pg));
        if (PQntuples(r) > 0) v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        PQclear(r);
    }
    return v;
}

static int nat_in_tx(native *n) {
    if (n->db) return sqlite3_get_autocommit(n->db) == 0;
    PGTransactionStatusType st = PQtransactionStatus(n->pg);
    return st == PQTRANS_INTRANS || st == PQTRANS_INERROR;
}

static int nat_table_exists(native *n, const char *table) {
    char sql[256];
    if (n->db)
        snprintf(sql, sizeof sql,
                 "SELECT COUNT(*) FROM sqlite_master WHERE type='table' AND name='%s'", table);
    else
        snprintf(sql, sizeof sql,
                 "SELECT COUNT(*) FROM information_schema.tables "
                 "WHERE table_schema = current_schema() AND table_name = '%s'",
                 table);
    return nat_int(n, sql) == 1;
}

static void nat_close(native *n) {
    if (n->db) sqlite3_close(n->db);
    if (n->pg) PQfinish(n->pg);
}

/* ---- the application's side of the hook table -------------------------------- */

enum app_mode {
    APP_NORMAL,
    APP_NO_BEGIN,        /* calls the body without opening a transaction */
    APP_NO_BODY,         /* returns without calling the body */
    APP_COMMIT_CONFLICT, /* the commit reports a serialization failure (after rolling back) */
    APP_ROLLBACK_ALWAYS  /* rolls back even when the body succeeded */
};

typedef struct app {
    native *n;
    int mode;       /* an app_mode */
    int mode_calls; /* how many calls the mode applies to (then back to normal) */
    int mode_skip;  /* calls to let pass before the mode applies */
    int calls, commits, rollbacks, savepoints;
} app;

static int app_atomically(void *ctx, aj_tx_body body, void *arg, int *committed) {
    app *a = ctx;
    a->calls++;
    *committed = 0;
    int mode = a->mode;
    if (mode != APP_NORMAL && a->mode_skip > 0) {
        a->mode_skip--;
        mode = APP_NORMAL;
    } else if (mode != APP_NORMAL && a->mode_calls > 0 && --a->mode_calls == 0) {
        a->mode = APP_NORMAL;
    }
    if (mode == APP_NO_BODY) return 0;
    /* An application with a transaction of its own open nests in a savepoint. */
    int nested = nat_in_tx(a->n);
    if (nested) {
        nat_exec(a->n, "SAVEPOINT app_sp");
        a->savepoints++;
    } else if (mode != APP_NO_BEGIN) {
        nat_exec(a->n, "BEGIN");
    }
    int rc = body(arg);
    if (rc == 0 && mode == APP_COMMIT_CONFLICT) {
        nat_exec(a->n, nested ? "ROLLBACK TO SAVEPOINT app_sp" : "ROLLBACK");
        a->rollbacks++;
        return aj_error_report(AJ_ECONFLICT, "the application's commit failed: could not "
                                             "serialize access (test host)");
    }
    if (rc == 0 && mode != APP_ROLLBACK_ALWAYS) {
        if (nested) nat_exec(a->n, "RELEASE SAVEPOINT app_sp");
        else if (nat_in_tx(a->n)) nat_exec(a->n, "COMMIT");
        a->commits++;
        *committed = 1;
        return 0;
    }
    if (nested) {
        nat_exec(a->n, "ROLLBACK TO SAVEPOINT app_sp");
        nat_exec(a->n, "RELEASE SAVEPOINT app_sp");
    } else if (nat_in_tx(a->n)) {
        nat_exec(a->n, "ROLLBACK");
    }
    a->rollbacks++;
    return 0;
}

static const aj_host_tx app_hooks = {AJ_HOST_TX_VERSION, app_atomically, 0, 0, 0};

/* On SQLite a new run is acquired by a read of its own before its first step's
 * transaction (which then starts with the step's first write). Outside a transaction
 * that read is a statement alone, with no host transaction; inside the application's
 * open transaction it is a savepoint of its own. */
static int acquisition_savepoints(void) { return g_db == DB_SQLITE ? 1 : 0; }

static aj_store *app_borrow(native *n, app *a) {
    memset(a, 0, sizeof *a);
    a->n = n;
    aj_store *s = NULL;
    int rc = n->db ? aj_store_borrow_sqlite(&s, n->db, &app_hooks, a, NULL)
                   : aj_store_borrow_pg(&s, (struct pg_conn *)n->pg, &app_hooks, a, NULL);
    if (rc != AJ_OK) fail_msg("borrow: %s: %s", aj_code_name(rc), aj_error_last()->message);
    assert_non_null(s);
    return s;
}

static aj_run *new_run(aj_store *s, aj_workflow *wf, const char *key) {
    aj_run_params p = AJ_RUN_PARAMS_INIT;
    p.key = key;
    p.job_name = "TestJob";
    p.args = "[1]";
    p.args_len = 3;
    aj_run *run = NULL;
    assert_aj(aj_run_new(&run, s, wf, &p), AJ_OK);
    assert_int_equal(aj_run_status(run), AJ_RUN_NEW);
    return run;
}

void test_borrow_basics(void **state) {
    (void)state;
    aj_store *s = (aj_store *)(uintptr_t)0x1;
    assert_aj(aj_store_borrow_sqlite(&s, NULL, NULL, NULL, NULL), AJ_EINVALID);
    assert_aj(aj_store_borrow_pg(&s, NULL, NULL, NULL, NULL), AJ_EINVALID);
    assert_ptr_equal(s, (aj_store *)(uintptr_t)0x1);

    native n;
    nat_open(&n);
    /* a hook table that is not initialised is refused */
    aj_host_tx bad = {0, app_atomically, 0, 0, 0};
    aj_host_tx no_fn = AJ_HOST_TX_INIT;
    app a = {0};
    assert_aj(n.db ? aj_store_borrow_sqlite(&s, n.db, &bad, &a, NULL)
                   : aj_store_borrow_pg(&s, (struct pg_conn *)n.pg, &bad, &a, NULL),
              AJ_EINVALID);
    assert_aj(n.db ? aj_store_borrow_sqlite(&s, n.db, &no_fn, &a, NULL)
                   : aj_store_borrow_pg(&s, (struct pg_conn *)n.pg, &no_fn, &a, NULL),
              AJ_EINVALID);

    s = app_borrow(&n, &a);
    assert_int_equal(aj_store_is_borrowed(s), 1);
    assert_string_equal(aj_store_driver(s), db_name());
    if (n.db) {
        assert_ptr_equal(aj_store_sqlite(s), n.db);
        assert_null(aj_store_pg(s));
    } else {
        assert_ptr_equal(aj_store_pg(s), (struct pg_conn *)n.pg);
        assert_null(aj_store_sqlite(s));
    }
    /* borrowing touches nothing; the first transaction detects and creates the tables */
    assert_false(nat_table_exists(&n, "acidic_job_keys"));
    assert_int_equal(a.calls, 0);
    assert_aj(aj_store_in_transaction(s), 0);
    assert_aj(aj_store_migrate(s), AJ_OK);
    assert_true(a.calls >= 1);
    assert_true(nat_table_exists(&n, "acidic_job_keys"));
    assert_true(nat_table_exists(&n, "staged_acidic_jobs"));
    assert_true(nat_table_exists(&n, "acidic_job_batches"));
    assert_false(nat_in_tx(&n));

    aj_store_free(s);
    /* the application's connection is still open and usable */
    assert_int_equal(nat_int(&n, "SELECT COUNT(*) FROM acidic_job_keys"), 0);
    nat_close(&n);
}

/* aj_run_execute alone drives a whole run on a borrowed connection: one host
 * transaction per step, the acquisition folded into the first; the step's own writes
 * on the application's connection commit with it; staged jobs reach the queue only
 * after the commit. */
void test_borrow_hooks_execute(void **state) {
    (void)state;
    native n;
    nat_open(&n);
    app a;
    aj_store *s = app_borrow(&n, &a);
    assert_aj(aj_store_migrate(s), AJ_OK);
    nat_exec(&n, "CREATE TABLE app_log (step TEXT NOT NULL)");
    aj_store *observer = open_store(); /* another connection: what is committed */
    recorder rec = {.check = observer};
    aj_store_set_enqueue(s, recorder_enqueue, &rec);

    aj_workflow *wf = make_wf("a", "b", "c", NULL);
    aj_run *run = new_run(s, wf, "k");
    script sc = {.write_app = 1, .stage_at = "c", .n_stage = 1,
                 .attrs_at = "b", .attrs_doc = "{\"b\":1}"};
    a.calls = a.commits = a.rollbacks = 0;
    assert_aj(aj_run_execute(run, script_step, &sc), AJ_OK);
    assert_int_equal(sc.api_rc, AJ_OK);
    assert_string_equal(script_calls(&sc), "a,b,c");
    assert_int_equal(aj_run_status(run), AJ_RUN_SUCCEEDED);
    /* one transaction per step, nothing else (on SQLite the acquisition's read is alone) */
    assert_int_equal(a.calls, 3);
    assert_int_equal(a.commits, 3);
    assert_int_equal(a.rollbacks, 0);
    assert_false(nat_in_tx(&n));
    /* the staged job was handed out once, after its row was committed */
    assert_int_equal(rec.n, 1);
    assert_int_equal(rec.visible[0], 1);
    assert_int_equal(app_rows(observer, NULL), 3);
    assert_int_equal(nat_int(&n, "SELECT COUNT(*) FROM acidic_job_keys WHERE recovery_point ="
                                 " 'FINISHED' AND locked_at IS NULL AND attempts = 1"),
                     1);
    char *attrs = key_attributes(observer, "k");
    assert_string_equal(attrs, "{\"b\":1}");
    free(attrs);
    aj_run_free(run);

    /* a finished run runs nothing: one read (on PostgreSQL in a transaction) */
    run = new_run(s, wf, "k");
    script again = {.write_app = 1};
    a.calls = 0;
    assert_aj(aj_run_execute(run, script_step, &again), AJ_OK);
    assert_int_equal(again.ncalls, 0);
    assert_int_equal(aj_run_status(run), AJ_RUN_SUCCEEDED);
    assert_int_equal(a.calls, g_db == DB_SQLITE ? 0 : 1);
    assert_int_equal(app_rows(observer, NULL), 3);

    aj_run_free(run);
    aj_workflow_free(wf);
    aj_store_free(observer);
    aj_store_free(s);
    nat_close(&n);
}

/* A failed step: the host rolls it back; the core records the error and releases the
 * lock in a transaction of its own; a retry resumes at the failed step. */
void test_borrow_step_failure(void **state) {
    (void)state;
    native n;
    nat_open(&n);
    app a;
    aj_store *s = app_borrow(&n, &a);
    assert_aj(aj_store_migrate(s), AJ_OK);
    nat_exec(&n, "CREATE TABLE app_log (step TEXT NOT NULL)");
    aj_workflow *wf = make_wf("a", "b", "c", NULL);

    aj_run *run = new_run(s, wf, "k");
    script sc = {.write_app = 1, .fail_at = "b", .error_doc = "boom in b"};
    a.calls = a.commits = a.rollbacks = 0;
    assert_aj(aj_run_execute(run, script_step, &sc), AJ_ESTEP);
    assert_int_equal(aj_run_status(run), AJ_RUN_FAILED);
    /* a committed, b rolled back, then the failure record committed */
    assert_int_equal(a.calls, 3);
    assert_int_equal(a.rollbacks, 1);
    assert_int_equal(a.commits, 2);
    assert_int_equal(nat_int(&n, "SELECT COUNT(*) FROM app_log WHERE step = 'b'"), 0);
    assert_int_equal(nat_int(&n, "SELECT COUNT(*) FROM acidic_job_keys WHERE locked_at IS NULL "
                                 "AND recovery_point = 'b' AND error_object = 'boom in b'"),
                     1);
    aj_run_free(run);

    /* the retry resumes at b and clears the error */
    sc.fail_at = NULL;
    sc.ncalls = 0;
    run = new_run(s, wf, "k");
    assert_aj(aj_run_execute(run, script_step, &sc), AJ_OK);
    assert_string_equal(script_calls(&sc), "b,c");
    assert_int_equal(aj_run_status(run), AJ_RUN_SUCCEEDED);
    assert_int_equal(nat_int(&n, "SELECT COUNT(*) FROM app_log"), 3);
    assert_int_equal(nat_int(&n, "SELECT COUNT(*) FROM acidic_job_keys WHERE error_object IS NULL"
                                 " AND attempts = 2"),
                     1);
    aj_run_free(run);

    /* a new run whose first step fails still leaves a failed, unlocked row */
    script first = {.fail_at = "a"};
    run = new_run(s, wf, "k2");
    assert_aj(aj_run_execute(run, script_step, &first), AJ_ESTEP);
    assert_int_equal(nat_int(&n, "SELECT COUNT(*) FROM acidic_job_keys WHERE idempotency_key ="
                                 " 'k2' AND locked_at IS NULL AND recovery_point = 'a' AND "
                                 "error_object LIKE '%AJ_ESTEP%' AND attempts = 1"),
                     1);
    aj_run_free(run);
    aj_workflow_free(wf);
    aj_store_free(s);
    nat_close(&n);
}

/* Without a hook table the core begins and commits on the borrowed handle itself, and
 * never closes it. */
void test_borrow_native_transactions(void **state) {
    (void)state;
    native n;
    nat_open(&n);
    aj_store *s = NULL;
    assert_aj(n.db ? aj_store_borrow_sqlite(&s, n.db, NULL, NULL, NULL)
                   : aj_store_borrow_pg(&s, (struct pg_conn *)n.pg, NULL, NULL, NULL),
              AJ_OK);
    create_app_table(s);
    aj_workflow *wf = make_wf("a", "b", NULL);
    aj_run *run = new_run(s, wf, "k");
    script sc = {.write_app = 1};
    assert_aj(aj_run_execute(run, script_step, &sc), AJ_OK);
    assert_int_equal(aj_run_status(run), AJ_RUN_SUCCEEDED);
    assert_false(nat_in_tx(&n));
    assert_int_equal(nat_int(&n, "SELECT COUNT(*) FROM app_log"), 2);
    aj_run_free(run);
    aj_workflow_free(wf);
    aj_store_free(s);
    assert_int_equal(nat_int(&n, "SELECT COUNT(*) FROM acidic_job_keys"), 1);
    nat_close(&n);
}

/* Hooks that break the contract are caught; a commit conflict is retried. */
void test_borrow_hook_contract(void **state) {
    (void)state;
    native n;
    nat_open(&n);
    app a;
    aj_store *s = app_borrow(&n, &a);
    assert_aj(aj_store_migrate(s), AJ_OK);
    nat_exec(&n, "CREATE TABLE app_log (step TEXT NOT NULL)");
    aj_workflow *wf = make_wf("a", "b", NULL);

    /* no transaction opened: refused before anything is written */
    a.mode = APP_NO_BEGIN;
    a.mode_calls = 1;
    aj_run *run = new_run(s, wf, "k");
    script sc = {.write_app = 1};
    aj_error_clear();
    assert_aj(aj_run_execute(run, script_step, &sc), AJ_EMISUSE);
    assert_int_equal(sc.ncalls, 0);
    assert_int_equal(nat_int(&n, "SELECT COUNT(*) FROM acidic_job_keys"), 0);
    /* (on SQLite the acquisition's read ran alone, before the host's first call) */
    assert_int_equal(aj_run_status(run), g_db == DB_SQLITE ? AJ_RUN_READY : AJ_RUN_NEW);
    aj_run_free(run);

    /* the body never called */
    a.mode = APP_NO_BODY;
    a.mode_calls = 1;
    run = new_run(s, wf, "k");
    assert_aj(aj_run_execute(run, script_step, &sc), AJ_EMISUSE);
    assert_int_equal(sc.ncalls, 0);
    aj_run_free(run);

    /* the commit of step a reports a conflict: the step runs again, commits once */
    a.mode = APP_COMMIT_CONFLICT;
    a.mode_calls = 1;
    run = new_run(s, wf, "k");
    assert_aj(aj_run_execute(run, script_step, &sc), AJ_OK);
    assert_string_equal(script_calls(&sc), "a,a,b");
    assert_int_equal(nat_int(&n, "SELECT COUNT(*) FROM app_log WHERE step = 'a'"), 1);
    assert_int_equal(aj_run_status(run), AJ_RUN_SUCCEEDED);
    aj_run_free(run);

    /* a host that rolls back a successful body: reported, nothing committed */
    a.mode = APP_ROLLBACK_ALWAYS;
    a.mode_calls = 1;
    sc.ncalls = 0;
    run = new_run(s, wf, "k3");
    assert_aj(aj_run_execute(run, script_step, &sc), AJ_EMISUSE);
    assert_int_equal(nat_int(&n, "SELECT COUNT(*) FROM app_log"), 2);
    /* the failure was recorded by the next (normal) transaction, unlocked */
    assert_int_equal(nat_int(&n, "SELECT COUNT(*) FROM acidic_job_keys WHERE idempotency_key ="
                                 " 'k3' AND locked_at IS NULL AND error_object IS NOT NULL"),
                     1);
    aj_run_free(run);
    aj_workflow_free(wf);
    aj_store_free(s);
    nat_close(&n);
}

/* An application that runs a workflow inside a transaction of its own: each step is a
 * savepoint, and the application's rollback undoes the whole run. */
void test_borrow_inside_app_transaction(void **state) {
    (void)state;
    native n;
    nat_open(&n);
    app a;
    aj_store *s = app_borrow(&n, &a);
    assert_aj(aj_store_migrate(s), AJ_OK);
    nat_exec(&n, "CREATE TABLE app_log (step TEXT NOT NULL)");
    aj_workflow *wf = make_wf("a", "b", NULL);
    nat_exec(&n, "BEGIN");
    aj_run *run = new_run(s, wf, "k");
    script sc = {.write_app = 1};
    assert_aj(aj_run_execute(run, script_step, &sc), AJ_OK);
    assert_int_equal(a.savepoints, 2 + acquisition_savepoints());
    assert_true(nat_in_tx(&n));
    assert_int_equal(nat_int(&n, "SELECT COUNT(*) FROM app_log"), 2);
    nat_exec(&n, "ROLLBACK");
    assert_int_equal(nat_int(&n, "SELECT COUNT(*) FROM app_log"), 0);
    assert_int_equal(nat_int(&n, "SELECT COUNT(*) FROM acidic_job_keys"), 0);
    aj_run_free(run);
    aj_workflow_free(wf);
    aj_store_free(s);
    nat_close(&n);
}

/* ---- a host connection: the test plays the application's database API ---------- */

typedef struct host {
    native n;
    app a;
} host;

static int host_exec(void *ctx, const char *sql, const aj_value *params, size_t nparams,
                     aj_host_result *result) {
    host *h = ctx;
    char msg[512];
    if (h->n.db) {
        sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(h->n.db, sql, -1, &st, NULL) != SQLITE_OK) {
            snprintf(msg, sizeof msg, "%s", sqlite3_errmsg(h->n.db));
            return aj_error_report(AJ_EDATABASE, msg);
        }
        for (size_t i = 0; i < nparams; i++) {
            int col = (int)i + 1;
            if (params[i].type == AJ_INT) sqlite3_bind_int64(st, col, params[i].integer);
            else if (params[i].type == AJ_TEXT)
                sqlite3_bind_text(st, col, params[i].text, (int)params[i].len, SQLITE_TRANSIENT);
            else sqlite3_bind_null(st, col);
        }
        int rc;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            int nc = sqlite3_column_count(st);
            aj_value cells[32];
            for (int c = 0; c < nc && c < 32; c++) {
                memset(&cells[c], 0, sizeof cells[c]);
                switch (sqlite3_column_type(st, c)) {
                case SQLITE_NULL: cells[c].type = AJ_NULL; break;
                case SQLITE_INTEGER:
                    cells[c].type = AJ_INT;
                    cells[c].integer = sqlite3_column_int64(st, c);
                    break;
                default:
                    cells[c].type = AJ_TEXT;
                    cells[c].text = (const char *)sqlite3_column_text(st, c);
                    cells[c].len = (size_t)sqlite3_column_bytes(st, c);
                }
            }
            if (aj_host_row(result, cells, (size_t)nc) != AJ_OK) {
                sqlite3_finalize(st);
                return aj_error_report(AJ_ERROR, "aj_host_row failed");
            }
        }
        if (rc != SQLITE_DONE) {
            snprintf(msg, sizeof msg, "%s", sqlite3_errmsg(h->n.db));
            sqlite3_finalize(st);
            return aj_error_report(rc == SQLITE_BUSY ? AJ_ECONFLICT : AJ_EDATABASE, msg);
        }
        sqlite3_finalize(st);
        return 0;
    }
    /* PostgreSQL: parameters as text, integers typed back from the column type */
    const char *vals[32] = {0};
    char ints[32][24];
    for (size_t i = 0; i < nparams && i < 32; i++) {
        if (params[i].type == AJ_INT) {
            snprintf(ints[i], sizeof ints[i], "%lld", (long long)params[i].integer);
            vals[i] = ints[i];
        } else if (params[i].type == AJ_TEXT) {
            char *copy = malloc(params[i].len + 1);
            memcpy(copy, params[i].text, params[i].len);
            copy[params[i].len] = 0;
            vals[i] = copy;
        } else {
            vals[i] = NULL;
        }
    }
    PGresult *r = PQexecParams(h->n.pg, sql, (int)nparams, NULL, vals, NULL, NULL, 0);
    for (size_t i = 0; i < nparams && i < 32; i++)
        if (params[i].type == AJ_TEXT) free((char *)vals[i]);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        snprintf(msg, sizeof msg, "%s (SQLSTATE %s)", PQerrorMessage(h->n.pg),
                 state ? state : "");
        PQclear(r);
        return aj_error_report(state && !strcmp(state, "40001") ? AJ_ECONFLICT : AJ_EDATABASE,
                               msg);
    }
    int nc = PQnfields(r);
    for (int row = 0; row < PQntuples(r); row++) {
        aj_value cells[32];
        for (int c = 0; c < nc && c < 32; c++) {
            memset(&cells[c], 0, sizeof cells[c]);
            if (PQgetisnull(r, row, c)) {
                cells[c].type = AJ_NULL;
            } else if (PQftype(r, c) == 20 || PQftype(r, c) == 23 || PQftype(r, c) == 21) {
                cells[c].type = AJ_INT;
                cells[c].integer = strtoll(PQgetvalue(r, row, c), NULL, 10);
            } else {
                cells[c].type = AJ_TEXT;
                cells[c].text = PQgetvalue(r, row, c);
                cells[c].len = (size_t)PQgetlength(r, row, c);
            }
        }
        if (aj_host_row(result, cells, (size_t)nc) != AJ_OK) {
            PQclear(r);
            return aj_error_report(AJ_ERROR, "aj_host_row failed");
        }
    }
    PQclear(r);
    return 0;
}

static int host_in_tx(void *ctx) {
    host *h = ctx;
    return nat_in_tx(&h->n);
}

static int host_atomically(void *ctx, aj_tx_body body, void *arg, int *committed) {
    host *h = ctx;
    return app_atomically(&h->a, body, arg, committed);
}

void test_borrow_host(void **state) {
    (void)state;
    host h;
    memset(&h, 0, sizeof h);
    nat_open(&h.n);
    h.a.n = &h.n;
    aj_host_ops ops = {AJ_HOST_OPS_VERSION, host_exec, host_in_tx};
    /* commit_in_body is ignored for host connections: the host commits */
    aj_host_tx tx = {AJ_HOST_TX_VERSION, host_atomically, 0, 1, 0};
    aj_host_ops old = {0, host_exec, host_in_tx};
    int dialect = g_db == DB_SQLITE ? AJ_DIALECT_SQLITE : AJ_DIALECT_POSTGRES;
    aj_store *s = NULL;
    assert_aj(aj_store_borrow_host(&s, dialect, NULL, &tx, &h, NULL), AJ_EINVALID);
    assert_aj(aj_store_borrow_host(&s, dialect, &ops, NULL, &h, NULL), AJ_EINVALID);
    assert_aj(aj_store_borrow_host(&s, dialect, &old, &tx, &h, NULL), AJ_EINVALID);
    assert_aj(aj_store_borrow_host(&s, 99, &ops, &tx, &h, NULL), AJ_EINVALID);
    assert_null(s);
    assert_aj(aj_store_borrow_host(&s, dialect, &ops, &tx, &h, NULL), AJ_OK);
    assert_string_equal(aj_store_driver(s), "host");
    assert_int_equal(aj_store_is_borrowed(s), 1);
    assert_null(aj_store_sqlite(s));
    assert_null(aj_store_pg(s));
    recorder rec = {0};
    aj_store_set_enqueue(s, recorder_enqueue, &rec);
    assert_aj(aj_store_migrate(s), AJ_OK);
    nat_exec(&h.n, "CREATE TABLE app_log (step TEXT NOT NULL)");

    aj_workflow *wf = make_wf("a", "b", NULL);
    aj_run *run = new_run(s, wf, "hk");
    script sc = {.write_app = 1, .stage_at = "b", .n_stage = 1};
    assert_aj(aj_run_execute(run, script_step, &sc), AJ_OK);
    assert_int_equal(sc.api_rc, AJ_OK);
    assert_string_equal(script_calls(&sc), "a,b");
    assert_aj(aj_run_status(run), AJ_RUN_SUCCEEDED);
    assert_int_equal(rec.n, 1);
    assert_int_equal(nat_int(&h.n, "SELECT COUNT(*) FROM app_log"), 2);
    assert_int_equal(nat_int(&h.n, "SELECT COUNT(*) FROM acidic_job_keys "
                                   "WHERE recovery_point = 'FINISHED' AND locked_at IS NULL"),
                     1);
    /* aj_store_exec goes through the host as well */
    aj_rows *rows = NULL;
    assert_int_equal(aj_store_exec(s, "SELECT step FROM app_log ORDER BY step", NULL, 0, &rows),
                     AJ_OK);
    assert_int_equal(aj_rows_count(rows), 2);
    assert_int_equal(aj_rows_columns(rows), 1);
    const aj_value *c = aj_rows_cell(rows, 1, 0);
    assert_int_equal(c->type, AJ_TEXT);
    assert_int_equal(c->len, 1);
    assert_memory_equal(c->text, "b", 1);
    aj_rows_free(rows);

    aj_run_free(run);
    aj_workflow_free(wf);
    aj_store_free(s);
    nat_close(&h.n);
}

aj_workflow *await_wf(void);

/* Awaited jobs on a borrowed connection: acknowledgements go through the hooks, and
 * the continuation is handed out only after the completing one commits, once. */
void test_borrow_awaits(void **state) {
    (void)state;
    native n;
    nat_open(&n);
    app a;
    aj_store *s = app_borrow(&n, &a);
    recorder rec = {0};
    aj_store_set_enqueue(s, recorder_enqueue, &rec);
    assert_aj(aj_store_migrate(s), AJ_OK);

    aj_workflow *wf = await_wf();
    aj_run *run = new_run(s, wf, "k");
    script sc = {.await_at = "fan_out", .n_await = 2};
    assert_aj(aj_run_execute(run, script_step, &sc), AJ_OK);
    assert_int_equal(sc.api_rc, AJ_OK);
    assert_int_equal(aj_run_status(run), AJ_RUN_AWAITING);
    assert_int_equal(rec.n, 2);
    aj_run_free(run);

    int completed = 7;
    assert_aj(aj_staged_ack(s, sc.ids[0], &completed), AJ_OK);
    assert_int_equal(completed, 0);
    /* the completing acknowledgement is rolled back by the host: no continuation */
    a.mode = APP_COMMIT_CONFLICT;
    a.mode_calls = 1;
    assert_aj(aj_staged_ack(s, sc.ids[1], &completed), AJ_OK); /* retried after the conflict */
    assert_int_equal(completed, 1);
    assert_int_equal(rec.n, 3);
    assert_string_equal(rec.job_name[2], "ContinueJob");
    assert_string_equal(rec.payload[2], "cont");
    assert_int_equal(nat_int(&n, "SELECT COUNT(*) FROM acidic_job_batches"), 0);
    /* a duplicate acknowledgement counts nothing */
    assert_aj(aj_staged_ack(s, sc.ids[1], &completed), AJ_OK);
    assert_int_equal(completed, 0);
    assert_int_equal(rec.n, 3);

    run = new_run(s, wf, "k");
    script rest = {0};
    assert_aj(aj_run_execute(run, script_step, &rest), AJ_OK);
    assert_string_equal(script_calls(&rest), "fan_in");
    assert_int_equal(aj_run_status(run), AJ_RUN_SUCCEEDED);
    aj_run_free(run);
    aj_workflow_free(wf);
    aj_store_free(s);
    nat_close(&n);
}

/* An acknowledgement made inside a step joins the step's transaction: it is undone when
 * the step fails, and no second transaction is opened. */
typedef struct ack_in_step {
    aj_store *store;
    int64_t staged_id;
    int fail;
    int rc;
} ack_in_step;

static int ack_step(aj_run *run, const char *step, void *ctx) {
    (void)run;
    (void)step;
    ack_in_step *x = ctx;
    x->rc = aj_staged_ack(x->store, x->staged_id, NULL);
    return x->fail;
}

void test_borrow_ack_joins_step(void **state) {
    (void)state;
    native n;
    nat_open(&n);
    app a;
    aj_store *s = app_borrow(&n, &a);
    assert_aj(aj_store_migrate(s), AJ_OK);
    nat_exec(&n, "INSERT INTO staged_acidic_jobs (adapter, job_name, job_args, created_at,"
                 " updated_at) VALUES ('sidekiq', 'Job', '[]', '2026-01-01 00:00:00',"
                 " '2026-01-01 00:00:00')");
    int64_t id = nat_int(&n, "SELECT max(id) FROM staged_acidic_jobs");
    aj_workflow *wf = make_wf("only", NULL);
    ack_in_step x = {s, id, 1, -1};
    aj_run *run = new_run(s, wf, "k");
    a.calls = 0;
    assert_aj(aj_run_execute(run, ack_step, &x), AJ_ESTEP);
    assert_int_equal(x.rc, AJ_OK);
    /* the step, then the failure record: no other */
    assert_int_equal(a.calls, 2);
    assert_int_equal(nat_int(&n, "SELECT COUNT(*) FROM staged_acidic_jobs"), 1);
    aj_run_free(run);
    x.fail = 0;
    run = new_run(s, wf, "k");
    assert_aj(aj_run_execute(run, ack_step, &x), AJ_OK);
    assert_int_equal(nat_int(&n, "SELECT COUNT(*) FROM staged_acidic_jobs"), 0);
    aj_run_free(run);
    aj_workflow_free(wf);
    aj_store_free(s);
    nat_close(&n);
}

/* Operator calls on a borrowed store take the host's transactions like every other call
 * (one `atomically` per read or action), read the tables through its driver, and hand a
 * retry's resume job to the queue only after the host committed. */
static void admin_through(aj_store *s, app *a, aj_store *check) {
    aj_workflow *wf = make_wf("a", "b", NULL);
    aj_run_params p = AJ_RUN_PARAMS_INIT;
    p.key = "adm";
    p.job_name = "AdminJob";
    p.resume_adapter = "sidekiq";
    p.resume_job_name = "AdminJob";
    p.resume_payload = "{\"jid\":\"j1\"}";
    p.resume_payload_len = strlen(p.resume_payload);
    aj_run *run = NULL;
    assert_aj(aj_run_new(&run, s, wf, &p), AJ_OK);
    script fail = {.fail_at = "b"};
    assert_aj(aj_run_execute(run, script_step, &fail), AJ_ESTEP);
    aj_run_free(run);
    recorder rec = {.check = check};
    aj_store_set_enqueue(s, recorder_enqueue, &rec);

    int calls = a->calls;
    aj_admin_filter f = AJ_ADMIN_FILTER_INIT;
    f.states = AJ_ADMIN_FAILED;
    aj_admin_page *page = NULL;
    assert_aj(aj_admin_list(s, &f, &page), AJ_OK);
    assert_int_equal(page->count, 1);
    assert_string_equal(page->runs[0]->key, "adm");
    assert_string_equal(page->runs[0]->recovery_point, "b");
    assert_string_equal(page->runs[0]->error_message, "step \"b\" failed");
    int64_t now = (int64_t)time(NULL) * 1000000;
    assert_true(page->runs[0]->updated_at_us > now - 3600000000 &&
                page->runs[0]->updated_at_us < now + 3600000000);
    aj_admin_page_free(page);
    aj_admin_detail *d = NULL;
    assert_aj(aj_admin_show(s, "adm", 0, &d), AJ_OK);
    assert_int_equal(d->n_steps, 2);
    assert_int_equal(d->steps[1]->state, AJ_ADMIN_STEP_CURRENT);
    aj_admin_detail_free(d);
    assert_int_equal(a->calls, calls + 2);
    int commits = a->commits;
    assert_aj(aj_admin_retry(s, "adm", 0, 0), AJ_OK);
    assert_int_equal(a->calls, calls + 3);
    assert_int_equal(a->commits, commits + 1);
    assert_int_equal(rec.n, 1);
    assert_string_equal(rec.payload[0], "{\"jid\":\"j1\"}");
    assert_int_equal(rec.visible[0], 1); /* committed before it was handed out */
    aj_admin_stats *st = NULL;
    assert_aj(aj_admin_stats_read(s, &st), AJ_OK);
    assert_int_equal(st->total, 1);
    assert_int_equal(st->n_states, 1);
    assert_int_equal(st->states[0]->state, AJ_ADMIN_QUEUED);
    assert_int_equal(st->staged_backlog, 1);
    aj_admin_stats_free(st);
    aj_admin_staged_page *backlog = NULL; /* the retry's resume job, read through the host */
    assert_aj(aj_admin_staged_list(s, 0, 0, &backlog), AJ_OK);
    assert_int_equal(backlog->count, 1);
    assert_string_equal(backlog->staged[0]->adapter, "sidekiq");
    assert_string_equal(backlog->staged[0]->job_name, "AdminJob");
    assert_true(backlog->staged[0]->run_id > 0);
    assert_true(backlog->staged[0]->created_at_us > now - 3600000000);
    aj_admin_staged_page_free(backlog);
    assert_aj(aj_admin_discard(s, "adm", 0, 0), AJ_OK);
    f.states = 0;
    f.updated_before_us = now + 3600000000;
    size_t deleted = 0;
    assert_aj(aj_admin_prune(s, &f, NULL, NULL, &deleted), AJ_OK);
    assert_int_equal(deleted, 1);
    aj_store_set_enqueue(s, NULL, NULL);
    aj_workflow_free(wf);
}

void test_borrow_admin(void **state) {
    (void)state;
    aj_store *check = open_store();
    native n;
    nat_open(&n);
    app a;
    aj_store *s = app_borrow(&n, &a);
    admin_through(s, &a, check);
    aj_store_free(s);
    /* through the host's own database API */
    nat_exec(&n, "DELETE FROM staged_acidic_jobs");
    host h;
    memset(&h, 0, sizeof h);
    h.n = n;
    h.a.n = &h.n;
    aj_host_ops ops = {AJ_HOST_OPS_VERSION, host_exec, host_in_tx};
    aj_host_tx tx = {AJ_HOST_TX_VERSION, host_atomically, 0, 0, 0};
    assert_aj(aj_store_borrow_host(&s, g_db == DB_SQLITE ? AJ_DIALECT_SQLITE : AJ_DIALECT_POSTGRES,
                                   &ops, &tx, &h, NULL), AJ_OK);
    admin_through(s, &h.a, check);
    aj_store_free(s);
    nat_close(&n);
    aj_store_free(check);
}

/* A probe from another connection, while a step's callback runs: can it take SQLite's
 * write lock? */
typedef struct lock_probe {
    int could_write; /* 1: yes, 0: busy, -1: not probed */
} lock_probe;

static int probing_step(aj_run *run, const char *step, void *ctx) {
    lock_probe *p = ctx;
    sqlite3 *other = NULL;
    if (sqlite3_open(test_sqlite_path(), &other) != SQLITE_OK) return 1;
    sqlite3_busy_timeout(other, 0);
    int rc = sqlite3_exec(other, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    p->could_write = rc == SQLITE_OK;
    if (rc == SQLITE_OK) sqlite3_exec(other, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_close(other);
    aj_value v = {.type = AJ_TEXT, .text = step, .len = strlen(step)};
    return aj_store_exec(aj_run_store(run), "INSERT INTO app_log (step) VALUES (?)", &v, 1, NULL);
}

/* aj_host_tx version 2, write_lock_first: the step's transaction holds SQLite's write lock
 * before its callback runs (for hosts whose lock waits block the holder); without it the
 * callback runs before the first write takes the lock. */
/* Counts the core's write-lock statements (AJ_Q_WRITE_LOCK) run on a handle. */
static int count_write_locks(unsigned type, void *ctx, void *stmt, void *sql) {
    (void)type;
    (void)sql;
    if (strstr(sqlite3_sql(stmt), "WHERE 0 = 1"))
        ++*(int *)ctx;
    return 0;
}

void test_borrow_write_lock_first(void **state) {
    (void)state;
    for (int first = 0; first < 2; first++) {
        native n;
        nat_open(&n);
        app a = {0};
        a.n = &n;
        aj_host_tx hooks = AJ_HOST_TX_INIT;
        hooks.atomically = app_atomically;
        hooks.write_lock_first = first;
        aj_store *s = NULL;
        assert_aj(aj_store_borrow_sqlite(&s, n.db, &hooks, &a, NULL), AJ_OK);
        if (!first)
            create_app_table(s);
        else /* the tables known, as in a store's later runs */
            assert_aj(aj_store_migrate(s), AJ_OK);
        aj_workflow *wf = make_wf("a", "b", NULL);
        aj_run *run = new_run(s, wf, first ? "locked-first" : "locked-late");
        lock_probe p = {-1};
        int write_locks = 0;
        sqlite3_trace_v2(n.db, SQLITE_TRACE_STMT, count_write_locks, &write_locks);
        assert_aj(aj_run_execute(run, probing_step, &p), AJ_OK);
        sqlite3_trace_v2(n.db, 0, NULL, NULL);
        assert_int_equal(aj_run_status(run), AJ_RUN_SUCCEEDED);
        assert_int_equal(p.could_write, first ? 0 : 1);
        /* taken once per step as it begins; late, only by the new run's row (its key is
         * checked under the lock) */
        assert_int_equal(write_locks, first ? 2 : 1);
        assert_int_equal(app_rows(s, "a"), first + 1);
        assert_int_equal(app_rows(s, "b"), first + 1);
        aj_run_free(run);
        aj_workflow_free(wf);
        aj_store_free(s);
        nat_close(&n);
    }
}

typedef struct conflicting {
    int calls;
    int report; /* set the last error to AJ_ECONFLICT before returning it */
} conflicting;

static int conflicting_step(aj_run *run, const char *step, void *ctx) {
    conflicting *c = ctx;
    aj_value v = {.type = AJ_TEXT, .text = step, .len = strlen(step)};
    if (aj_store_exec(aj_run_store(run), "INSERT INTO app_log (step) VALUES (?)", &v, 1, NULL))
        return 1;
    if (c->calls++ == 0) {
        if (c->report) return aj_error_report(AJ_ECONFLICT, "the application's write met a "
                                                            "serialization failure (test)");
        return AJ_ECONFLICT;
    }
    return 0;
}

/* A step callback whose own write met a conflict says so (AJ_ECONFLICT after
 * aj_error_report): the step is rolled back and tried again. The bare code without the
 * report is a failure like any other. */
void test_step_conflict_retried(void **state) {
    (void)state;
    aj_store *s = open_store();
    create_app_table(s);
    aj_workflow *wf = make_wf("a", "b", NULL);
    conflicting c = {0, 1};
    aj_run *run = acquire_ok(s, wf, "conflict", NULL);
    assert_aj(aj_run_execute(run, conflicting_step, &c), AJ_OK);
    assert_int_equal(c.calls, 3); /* a twice, b once */
    assert_int_equal(app_rows(s, "a"), 1);
    assert_int_equal(app_rows(s, "b"), 1);
    aj_run_free(run);

    conflicting bare = {0, 0};
    run = acquire_ok(s, wf, "bare", NULL);
    assert_aj(aj_run_execute(run, conflicting_step, &bare), AJ_ESTEP);
    assert_int_equal(bare.calls, 1);
    assert_int_equal(key_locked(s, "bare"), 0);
    char *err = key_error(s, "bare");
    assert_non_null(err);
    free(err);
    aj_run_free(run);
    aj_workflow_free(wf);
    aj_store_free(s);
}

/* The plans of a session's prepared statement that reads `table` `filter`: generic and
 * custom plans made so far (pg_prepared_statements). */
static void nat_plans(native *n, const char *filter, int64_t *generic, int64_t *custom) {
    char sql[512];
    snprintf(sql, sizeof sql, "SELECT COALESCE(SUM(generic_plans), -1) FROM pg_prepared_statements"
                              " WHERE statement LIKE '%s'", filter);
    *generic = nat_int(n, sql);
    snprintf(sql, sizeof sql, "SELECT COALESCE(SUM(custom_plans), -1) FROM pg_prepared_statements"
                              " WHERE statement LIKE '%s'", filter);
    *custom = nat_int(n, sql);
}

/* Drains and recoveries of `s`, `times` each, finding nothing due. */
static void sweep_nothing(aj_store *s, int times) {
    for (int i = 0; i < times; i++) {
        size_t delivered = 0, requeued = 0;
        assert_aj(aj_store_drain(s, 3600 * 1000, &delivered), AJ_OK);
        assert_int_equal(delivered, 0);
        assert_aj(aj_store_recover(s, 0, &requeued, NULL), AJ_OK);
    }
}

static const char *const sweep_statements[3] = {
    "%FROM staged_acidic_jobs WHERE delivered_at < %",
    "%FROM staged_acidic_jobs WHERE delivered_at IS NULL%",
    "%FROM acidic_job_keys WHERE recover_at <= %"};

/* Every sweep statement of the session made `generic` generic plans at least, and
 * `custom` custom plans exactly (-1: some). */
static void assert_sweep_plans(native *n, int64_t generic, int64_t custom) {
    for (int i = 0; i < 3; i++) {
        int64_t g, c;
        nat_plans(n, sweep_statements[i], &g, &c);
        if (custom >= 0 && c != custom)
            fail_msg("%s: %lld custom plans, expected %lld", sweep_statements[i], (long long)c,
                     (long long)custom);
        if (custom < 0 && c <= 0)
            fail_msg("%s: no custom plan", sweep_statements[i]);
        if (g < generic)
            fail_msg("%s: %lld generic plans, expected %lld or more", sweep_statements[i],
                     (long long)g, (long long)generic);
    }
}

static int64_t plan_mode_is_auto(native *n) {
    return nat_int(n, "SELECT COUNT(*) FROM pg_settings WHERE name = 'plan_cache_mode'"
                      " AND setting = 'auto'");
}

/* The sweeps' page queries (drain, recovery) are planned once, generically, in
 * transactions that are the core's alone (its own, or a host's top-level one): a custom
 * plan of their ranges costs the planner a probe of the index for every call on a large
 * table (decision 020), and PostgreSQL's plan cache keeps making custom ones. The
 * setting ends with the transaction: it never reaches the application's session, nor
 * the application's open transaction, where the core does not set it. */
void test_borrow_pg_sweeps_plan_once(void **state) {
    (void)state;
    if (g_db != DB_POSTGRES) skip();
    /* no hook table: the core begins and commits */
    native n;
    nat_open(&n);
    aj_store *s = NULL;
    assert_aj(aj_store_borrow_pg(&s, (struct pg_conn *)n.pg, NULL, NULL, NULL), AJ_OK);
    recorder rec = {0};
    aj_store_set_enqueue(s, recorder_enqueue, &rec);
    assert_aj(aj_store_migrate(s), AJ_OK);
    nat_exec(&n, "INSERT INTO staged_acidic_jobs (adapter, job_name, job_args, delivered_at,"
                 " created_at, updated_at) SELECT 'test', 'Job', '[]', now() AT TIME ZONE 'UTC',"
                 " now() AT TIME ZONE 'UTC', now() AT TIME ZONE 'UTC' FROM generate_series(1, 50)");
    sweep_nothing(s, 8);
    assert_sweep_plans(&n, 8, 0);
    assert_false(nat_in_tx(&n));
    assert_int_equal(plan_mode_is_auto(&n), 1);
    aj_store_free(s);
    nat_close(&n);

    /* a host's transactions, on a connection with none open: the same */
    nat_open(&n);
    app a;
    s = app_borrow(&n, &a);
    aj_store_set_enqueue(s, recorder_enqueue, &rec);
    sweep_nothing(s, 8);
    assert_sweep_plans(&n, 8, 0);
    assert_int_equal(plan_mode_is_auto(&n), 1);
    aj_store_free(s);
    nat_close(&n);

    /* inside the application's transaction (the host's savepoints): PostgreSQL's own
     * choice (its first five plans are custom), and nothing of the core's is left in it */
    nat_open(&n);
    s = app_borrow(&n, &a);
    aj_store_set_enqueue(s, recorder_enqueue, &rec);
    nat_exec(&n, "BEGIN");
    sweep_nothing(s, 3);
    assert_true(a.savepoints >= 6);
    assert_true(nat_in_tx(&n));
    assert_int_equal(plan_mode_is_auto(&n), 1);
    assert_sweep_plans(&n, 0, -1);
    nat_exec(&n, "COMMIT");

    /* the drain still delivers what is due */
    nat_exec(&n, "UPDATE staged_acidic_jobs SET delivered_at = delivered_at - interval '2 hours'");
    size_t delivered = 0;
    assert_aj(aj_store_drain(s, 3600 * 1000, &delivered), AJ_OK);
    assert_int_equal(delivered, 50);
    assert_int_equal(rec.n, 50);
    aj_store_free(s);
    nat_close(&n);
}
