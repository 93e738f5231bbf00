/* Borrowed connections: the application owns the transaction; the core never commits. */
#include "harness.h"
#include "tests.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

static void nat_exec(native *n, const char *sql) {
    if (n->db) {
        char *err = NULL;
        if (sqlite3_exec(n->db, sql, NULL, NULL, &err) != SQLITE_OK) {
            fail_msg("%s: %s", sql, err);
        }
    } else {
        PGresult *r = PQexec(n->pg, sql);
        ExecStatusType st = PQresultStatus(r);
        if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
            fail_msg("%s: %s", sql, PQerrorMessage(n->pg));
        }
        PQclear(r);
    }
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

static aj_store *nat_borrow(native *n) {
    aj_store *s = NULL;
    int rc = n->db ? aj_store_borrow_sqlite(&s, n->db, NULL)
                   : aj_store_borrow_pg(&s, (struct pg_conn *)n->pg, NULL);
    if (rc != AJ_OK) fail_msg("borrow: %s: %s", aj_code_name(rc), aj_error_last()->message);
    assert_non_null(s);
    return s;
}

static void nat_close(native *n) {
    if (n->db) sqlite3_close(n->db);
    if (n->pg) PQfinish(n->pg);
}

void test_borrow_basics(void **state) {
    (void)state;
    aj_store *s = (aj_store *)(uintptr_t)0x1;
    assert_aj(aj_store_borrow_sqlite(&s, NULL, NULL), AJ_EINVALID);
    assert_aj(aj_store_borrow_pg(&s, NULL, NULL), AJ_EINVALID);
    assert_ptr_equal(s, (aj_store *)(uintptr_t)0x1);

    native n;
    nat_open(&n);
    s = nat_borrow(&n);
    assert_int_equal(aj_store_is_borrowed(s), 1);
    assert_string_equal(aj_store_driver(s), db_name());
    if (n.db) {
        assert_ptr_equal(aj_store_sqlite(s), n.db);
        assert_null(aj_store_pg(s));
    } else {
        assert_ptr_equal(aj_store_pg(s), (struct pg_conn *)n.pg);
        assert_null(aj_store_sqlite(s));
    }
    /* borrowing does not touch the schema */
    assert_false(nat_table_exists(&n, "acidic_job_keys"));

    /* without an open transaction every writing call is refused */
    aj_error_clear();
    assert_aj(aj_store_migrate(s), AJ_EMISUSE);
    assert_last_error(AJ_EMISUSE);
    assert_false(nat_table_exists(&n, "acidic_job_keys"));

    nat_exec(&n, "BEGIN");
    assert_aj(aj_store_migrate(s), AJ_OK);
    nat_exec(&n, "COMMIT");
    assert_aj(aj_store_settle(s, 1), AJ_OK);
    assert_true(nat_table_exists(&n, "acidic_job_keys"));
    assert_true(nat_table_exists(&n, "acidic_job_batches"));

    aj_workflow *wf = make_wf("a", "b", NULL);
    aj_run *run = (aj_run *)(uintptr_t)0x1;
    assert_aj(acquire(&run, s, wf, "k", NULL), AJ_EMISUSE);
    assert_ptr_equal(run, (aj_run *)(uintptr_t)0x1);
    assert_int_equal(nat_int(&n, "SELECT COUNT(*) FROM acidic_job_keys"), 0);
    assert_aj(aj_store_drain(s, 0, NULL), AJ_EMISUSE);
    assert_aj(aj_staged_ack(s, 1, NULL), AJ_EMISUSE);

    nat_exec(&n, "BEGIN");
    run = acquire_ok(s, wf, "k", NULL);
    nat_exec(&n, "COMMIT");
    assert_aj(aj_store_settle(s, 1), AJ_OK);
    assert_aj(aj_run_status(run), AJ_RUN_READY);

    /* aj_run_execute is for owned stores */
    script ex = {0};
    nat_exec(&n, "BEGIN");
    assert_aj(aj_run_execute(run, script_step, &ex), AJ_EMISUSE);
    nat_exec(&n, "ROLLBACK");
    assert_aj(aj_store_settle(s, 0), AJ_OK);
    assert_int_equal(ex.ncalls, 0);

    /* a step outside a transaction is refused and runs nothing */
    script sc = {0};
    assert_aj(aj_run_step(run, script_step, &sc), AJ_EMISUSE);
    assert_int_equal(sc.ncalls, 0);
    assert_string_equal(aj_run_recovery_point(run), "a");

    aj_run_free(run);
    aj_workflow_free(wf);
    aj_store_free(s);
    /* the application's connection is still open and usable */
    assert_int_equal(nat_int(&n, "SELECT COUNT(*) FROM acidic_job_keys"), 1);
    nat_close(&n);
}

/* Everything the core writes on a borrowed connection can be rolled back by the app. */
void test_borrow_never_commits(void **state) {
    (void)state;
    native n;
    nat_open(&n);
    aj_store *s = nat_borrow(&n);
    recorder rec = {0};
    aj_store_set_enqueue(s, recorder_enqueue, &rec);

    nat_exec(&n, "BEGIN");
    assert_aj(aj_store_migrate(s), AJ_OK);
    nat_exec(&n, "CREATE TABLE app_log (step TEXT NOT NULL)");
    aj_workflow *wf = make_wf("a", "b", NULL);
    aj_run *run = acquire_ok(s, wf, "k", "[1]");
    script sc = {.write_app = 1, .stage_at = "a", .n_stage = 2};
    assert_aj(aj_run_step(run, script_step, &sc), AJ_OK);
    assert_int_equal(sc.api_rc, AJ_OK);
    assert_string_equal(aj_run_recovery_point(run), "b");
    /* inside the transaction the writes are there */
    assert_int_equal(nat_int(&n, "SELECT COUNT(*) FROM app_log"), 1);
    assert_int_equal(nat_int(&n, "SELECT COUNT(*) FROM staged_acidic_jobs"), 2);
    /* nothing is handed to the queue before the application commits */
    assert_int_equal(rec.n, 0);
    nat_exec(&n, "ROLLBACK");
    assert_aj(aj_store_settle(s, 0), AJ_OK);
    assert_int_equal(rec.n, 0);
    /* the rollback undid everything, the schema included: the core committed nothing */
    assert_false(nat_table_exists(&n, "acidic_job_keys"));
    assert_false(nat_table_exists(&n, "staged_acidic_jobs"));
    assert_false(nat_table_exists(&n, "app_log"));
    assert_string_equal(aj_run_recovery_point(run), "a");

    aj_run_free(run);
    aj_workflow_free(wf);
    aj_store_free(s);
    nat_close(&n);
}

/* settle(1) hands the staged jobs to the queue; settle(0) restores the run's state. */
void test_borrow_settle(void **state) {
    (void)state;
    native n;
    nat_open(&n);
    aj_store *s = nat_borrow(&n);
    recorder rec = {0};
    aj_store_set_enqueue(s, recorder_enqueue, &rec);

    nat_exec(&n, "BEGIN");
    assert_aj(aj_store_migrate(s), AJ_OK);
    nat_exec(&n, "CREATE TABLE app_log (step TEXT NOT NULL)");
    nat_exec(&n, "COMMIT");
    assert_aj(aj_store_settle(s, 1), AJ_OK);

    aj_workflow *wf = make_wf("a", "b", "c", NULL);
    nat_exec(&n, "BEGIN");
    aj_run *run = acquire_ok(s, wf, "k", "[1]");
    nat_exec(&n, "COMMIT");
    assert_aj(aj_store_settle(s, 1), AJ_OK);

    /* step a stages a job: delivered on settle(1), after the commit */
    script sc = {.write_app = 1, .stage_at = "a", .n_stage = 1,
                 .attrs_at = "b", .attrs_doc = "{\"b\":1}"};
    nat_exec(&n, "BEGIN");
    assert_aj(aj_run_step(run, script_step, &sc), AJ_OK);
    assert_int_equal(rec.n, 0);
    nat_exec(&n, "COMMIT");
    assert_aj(aj_store_settle(s, 1), AJ_OK);
    assert_int_equal(rec.n, 1);
    assert_string_equal(rec.job_name[0], "StagedJob");
    assert_string_equal(rec.payload[0], "p0");
    assert_int_equal(rec.ids[0], sc.ids[0]);
    assert_string_equal(aj_run_recovery_point(run), "b");

    /* step b is rolled back by the application: the run returns to b */
    nat_exec(&n, "BEGIN");
    assert_aj(aj_run_step(run, script_step, &sc), AJ_OK);
    assert_string_equal(aj_run_recovery_point(run), "c");
    nat_exec(&n, "ROLLBACK");
    assert_aj(aj_store_settle(s, 0), AJ_OK);
    assert_string_equal(aj_run_recovery_point(run), "b");
    assert_aj(aj_run_status(run), AJ_RUN_READY);
    size_t len = 0;
    const char *attrs = aj_run_attributes(run, &len);
    assert_true(attrs == NULL || strncmp(attrs, "{\"b\":1}", len) != 0);
    assert_int_equal(nat_int(&n, "SELECT COUNT(*) FROM app_log WHERE step = 'b'"), 0);

    /* and runs b again, this time committed */
    nat_exec(&n, "BEGIN");
    assert_aj(aj_run_step(run, script_step, &sc), AJ_OK);
    nat_exec(&n, "COMMIT");
    assert_aj(aj_store_settle(s, 1), AJ_OK);
    assert_string_equal(aj_run_recovery_point(run), "c");
    assert_int_equal(nat_int(&n, "SELECT COUNT(*) FROM app_log WHERE step = 'b'"), 1);
    attrs = aj_run_attributes(run, &len);
    assert_non_null(attrs);
    assert_int_equal(len, strlen("{\"b\":1}"));
    assert_memory_equal(attrs, "{\"b\":1}", len);

    /* step c fails: the app rolls back, then records the failure with aj_run_fail */
    sc.fail_at = "c";
    sc.error_doc = "boom in c";
    nat_exec(&n, "BEGIN");
    assert_aj(aj_run_step(run, script_step, &sc), AJ_ESTEP);
    nat_exec(&n, "ROLLBACK");
    assert_aj(aj_store_settle(s, 0), AJ_OK);
    nat_exec(&n, "BEGIN");
    assert_aj(aj_run_fail(run), AJ_OK);
    nat_exec(&n, "COMMIT");
    assert_aj(aj_store_settle(s, 1), AJ_OK);
    assert_aj(aj_run_status(run), AJ_RUN_FAILED);
    assert_int_equal(nat_int(&n, "SELECT COUNT(*) FROM app_log WHERE step = 'c'"), 0);
    assert_int_equal(nat_int(&n, "SELECT COUNT(*) FROM acidic_job_keys "
                                 "WHERE locked_at IS NULL AND recovery_point = 'c' "
                                 "AND error_object = 'boom in c'"),
                     1);
    aj_run_free(run);

    /* a retry resumes at c */
    sc.fail_at = NULL;
    sc.ncalls = 0;
    nat_exec(&n, "BEGIN");
    run = acquire_ok(s, wf, "k", "[1]");
    assert_string_equal(aj_run_recovery_point(run), "c");
    assert_aj(aj_run_step(run, script_step, &sc), AJ_OK);
    nat_exec(&n, "COMMIT");
    assert_aj(aj_store_settle(s, 1), AJ_OK);
    assert_string_equal(script_calls(&sc), "c");
    assert_aj(aj_run_status(run), AJ_RUN_SUCCEEDED);
    assert_int_equal(nat_int(&n, "SELECT COUNT(*) FROM app_log"), 3);
    assert_int_equal(rec.n, 1);

    aj_run_free(run);
    aj_workflow_free(wf);
    aj_store_free(s);
    nat_close(&n);
}

/* aj_run_fail called outside a transaction is refused and changes nothing: the
 * application can still record the failure properly afterwards. */
void test_borrow_fail_misuse(void **state) {
    (void)state;
    native n;
    nat_open(&n);
    aj_store *s = nat_borrow(&n);
    nat_exec(&n, "BEGIN");
    assert_aj(aj_store_migrate(s), AJ_OK);
    aj_workflow *wf = make_wf("a", "b", NULL);
    aj_run *run = acquire_ok(s, wf, "k", NULL);
    nat_exec(&n, "COMMIT");
    assert_aj(aj_store_settle(s, 1), AJ_OK);

    script sc = {.fail_at = "a", .error_doc = "boom"};
    nat_exec(&n, "BEGIN");
    assert_aj(aj_run_step(run, script_step, &sc), AJ_ESTEP);
    nat_exec(&n, "ROLLBACK");
    assert_aj(aj_store_settle(s, 0), AJ_OK);

    aj_error_clear();
    assert_aj(aj_run_fail(run), AJ_EMISUSE); /* no transaction open */
    assert_last_error(AJ_EMISUSE);
    assert_int_equal(nat_int(&n, "SELECT COUNT(*) FROM acidic_job_keys WHERE locked_at IS NOT NULL "
                                 "AND error_object IS NULL"),
                     1);
    /* the refused call changed nothing: the proper call still records the failure */
    nat_exec(&n, "BEGIN");
    assert_aj(aj_run_fail(run), AJ_OK);
    nat_exec(&n, "COMMIT");
    assert_aj(aj_store_settle(s, 1), AJ_OK);
    assert_int_equal(aj_run_status(run), AJ_RUN_FAILED);
    assert_int_equal(nat_int(&n, "SELECT COUNT(*) FROM acidic_job_keys WHERE locked_at IS NULL "
                                 "AND error_object = 'boom' AND recovery_point = 'a'"),
                     1);
    aj_run_free(run);
    aj_workflow_free(wf);
    aj_store_free(s);
    nat_close(&n);
}

/* ---- a host connection: the test plays the application's database API ---------- */

typedef struct host {
    native n;
} host;

static int host_exec(void *ctx, const char *sql, const aj_value *params, size_t nparams,
                     aj_host_result *result, char *errbuf, size_t errlen) {
    host *h = ctx;
    if (h->n.db) {
        sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(h->n.db, sql, -1, &st, NULL) != SQLITE_OK) {
            snprintf(errbuf, errlen, "%s", sqlite3_errmsg(h->n.db));
            return 1;
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
                snprintf(errbuf, errlen, "aj_host_row failed");
                return 1;
            }
        }
        if (rc != SQLITE_DONE) {
            snprintf(errbuf, errlen, "%s", sqlite3_errmsg(h->n.db));
            sqlite3_finalize(st);
            return 1;
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
        snprintf(errbuf, errlen, "%s (SQLSTATE %s)", PQerrorMessage(h->n.pg), state ? state : "");
        PQclear(r);
        return 1;
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
            snprintf(errbuf, errlen, "aj_host_row failed");
            return 1;
        }
    }
    PQclear(r);
    return 0;
}

static int host_in_tx(void *ctx) {
    host *h = ctx;
    if (h->n.db) return sqlite3_get_autocommit(h->n.db) == 0;
    return PQtransactionStatus(h->n.pg) == PQTRANS_INTRANS;
}

void test_borrow_host(void **state) {
    (void)state;
    host h;
    nat_open(&h.n);
    aj_host_ops ops = {host_exec, host_in_tx};
    int dialect = g_db == DB_SQLITE ? AJ_DIALECT_SQLITE : AJ_DIALECT_POSTGRES;
    aj_store *s = NULL;
    assert_aj(aj_store_borrow_host(&s, dialect, NULL, &h, NULL), AJ_EINVALID);
    assert_aj(aj_store_borrow_host(&s, 99, &ops, &h, NULL), AJ_EINVALID);
    assert_null(s);
    assert_aj(aj_store_borrow_host(&s, dialect, &ops, &h, NULL), AJ_OK);
    assert_string_equal(aj_store_driver(s), "host");
    assert_int_equal(aj_store_is_borrowed(s), 1);
    assert_null(aj_store_sqlite(s));
    assert_null(aj_store_pg(s));
    recorder rec = {0};
    aj_store_set_enqueue(s, recorder_enqueue, &rec);

    assert_aj(aj_store_migrate(s), AJ_EMISUSE);
    nat_exec(&h.n, "BEGIN");
    assert_aj(aj_store_migrate(s), AJ_OK);
    nat_exec(&h.n, "CREATE TABLE app_log (step TEXT NOT NULL)");
    nat_exec(&h.n, "COMMIT");
    assert_aj(aj_store_settle(s, 1), AJ_OK);

    aj_workflow *wf = make_wf("a", "b", NULL);
    nat_exec(&h.n, "BEGIN");
    aj_run *run = acquire_ok(s, wf, "hk", "{\"x\":1}");
    nat_exec(&h.n, "COMMIT");
    assert_aj(aj_store_settle(s, 1), AJ_OK);
    script sc = {.write_app = 1, .stage_at = "b", .n_stage = 1};
    for (int i = 0; i < 2; i++) {
        nat_exec(&h.n, "BEGIN");
        assert_aj(aj_run_step(run, script_step, &sc), AJ_OK);
        assert_int_equal(sc.api_rc, AJ_OK);
        /* a second step before the application settled the first is refused */
        if (i == 0) assert_aj(aj_run_step(run, script_step, &sc), AJ_EMISUSE);
        nat_exec(&h.n, "COMMIT");
        assert_aj(aj_store_settle(s, 1), AJ_OK);
    }
    assert_string_equal(script_calls(&sc), "a,b");
    assert_aj(aj_run_status(run), AJ_RUN_SUCCEEDED);
    assert_int_equal(rec.n, 1);
    assert_int_equal(nat_int(&h.n, "SELECT COUNT(*) FROM app_log"), 2);
    assert_int_equal(nat_int(&h.n, "SELECT COUNT(*) FROM acidic_job_keys "
                                   "WHERE recovery_point = 'FINISHED' AND locked_at IS NULL"),
                     1);
    /* aj_store_exec goes through the host as well */
    aj_rows *rows = NULL;
    nat_exec(&h.n, "BEGIN");
    assert_int_equal(aj_store_exec(s, "SELECT step FROM app_log ORDER BY step", NULL, 0, &rows),
                     AJ_OK);
    nat_exec(&h.n, "COMMIT");
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

/* Awaited jobs on a borrowed connection: acknowledgements commit (or roll back) with the
 * application's transaction, and the continuation is handed out only after the commit. */
void test_borrow_awaits(void **state) {
    (void)state;
    native n;
    nat_open(&n);
    aj_store *s = nat_borrow(&n);
    recorder rec = {0};
    aj_store_set_enqueue(s, recorder_enqueue, &rec);
    nat_exec(&n, "BEGIN");
    assert_aj(aj_store_migrate(s), AJ_OK);
    nat_exec(&n, "COMMIT");
    assert_aj(aj_store_settle(s, 1), AJ_OK);

    aj_workflow *wf = await_wf();
    nat_exec(&n, "BEGIN");
    aj_run *run = acquire_ok(s, wf, "k", NULL);
    nat_exec(&n, "COMMIT");
    assert_aj(aj_store_settle(s, 1), AJ_OK);
    script sc = {.await_at = "fan_out", .n_await = 2};
    nat_exec(&n, "BEGIN");
    assert_aj(aj_run_step(run, script_step, &sc), AJ_OK);
    assert_int_equal(sc.api_rc, AJ_OK);
    nat_exec(&n, "COMMIT");
    assert_aj(aj_store_settle(s, 1), AJ_OK);
    assert_int_equal(aj_run_status(run), AJ_RUN_AWAITING);
    assert_int_equal(rec.n, 2);
    aj_run_free(run);

    int completed = 7;
    nat_exec(&n, "BEGIN");
    assert_aj(aj_staged_ack(s, sc.ids[0], &completed), AJ_OK);
    assert_int_equal(completed, 0);
    nat_exec(&n, "COMMIT");
    assert_aj(aj_store_settle(s, 1), AJ_OK);

    /* the completing acknowledgement is rolled back: no continuation, batch still open */
    nat_exec(&n, "BEGIN");
    assert_aj(aj_staged_ack(s, sc.ids[1], &completed), AJ_OK);
    assert_int_equal(completed, 1);
    nat_exec(&n, "ROLLBACK");
    assert_aj(aj_store_settle(s, 0), AJ_OK);
    assert_int_equal(rec.n, 2);
    assert_int_equal(nat_int(&n, "SELECT remaining FROM acidic_job_batches"), 1);
    assert_int_equal(nat_int(&n, "SELECT COUNT(*) FROM staged_acidic_jobs"), 1);

    /* again, committed: the continuation is handed out after the commit */
    nat_exec(&n, "BEGIN");
    assert_aj(aj_staged_ack(s, sc.ids[1], &completed), AJ_OK);
    assert_int_equal(completed, 1);
    assert_int_equal(rec.n, 2);
    nat_exec(&n, "COMMIT");
    assert_aj(aj_store_settle(s, 1), AJ_OK);
    assert_int_equal(rec.n, 3);
    assert_string_equal(rec.job_name[2], "ContinueJob");
    assert_string_equal(rec.payload[2], "cont");
    assert_int_equal(nat_int(&n, "SELECT COUNT(*) FROM acidic_job_batches"), 0);

    nat_exec(&n, "BEGIN");
    run = acquire_ok(s, wf, "k", NULL);
    assert_int_equal(aj_run_status(run), AJ_RUN_READY);
    assert_string_equal(aj_run_recovery_point(run), "fan_in");
    nat_exec(&n, "COMMIT");
    assert_aj(aj_store_settle(s, 1), AJ_OK);
    aj_run_free(run);
    aj_workflow_free(wf);
    aj_store_free(s);
    nat_close(&n);
}
