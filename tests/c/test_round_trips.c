/* The round-trip budget of a step on PostgreSQL, counted from libpq's own protocol trace
 * (deterministic, unlike a timing): every round trip ends with a frontend Sync (extended
 * protocol, pipelines included) or a simple Query message.
 *
 * Owned store: a new 3-step run whose steps each make one INSERT and change the
 * attributes costs 9 round trips, as three plain BEGIN; INSERT; COMMIT do: BEGIN and the
 * row lock (or, in the first step, the acquisition) share one, the claim rides with the
 * COMMIT. Borrowed connection: the host sends BEGIN and COMMIT, so the core adds
 * one statement per step (two in the first); with aj_host_tx's commit_in_body the core's
 * last statements carry the COMMIT, and only the first step's acquisition is extra. */
#include "harness.h"
#include "tests.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct trace {
    char *buf;
    size_t len;
    FILE *f;
} trace;

static void trace_start(trace *t, PGconn *pg)
{
    t->buf = NULL;
    t->len = 0;
    t->f = open_memstream(&t->buf, &t->len);
    assert_non_null(t->f);
    PQtrace(pg, t->f);
    PQsetTraceFlags(pg, PQTRACE_SUPPRESS_TIMESTAMPS);
}

/* Stop tracing and count the round trips seen. */
static int trace_stop(trace *t, PGconn *pg)
{
    PQuntrace(pg);
    fclose(t->f);
    int trips = 0;
    for (char *line = strtok(t->buf, "\n"); line; line = strtok(NULL, "\n")) {
        if (strncmp(line, "F\t", 2) != 0)
            continue;
        const char *msg = strchr(line + 2, '\t');
        if (msg && (strncmp(msg + 1, "Sync", 4) == 0 || strncmp(msg + 1, "Query", 5) == 0))
            trips++;
    }
    free(t->buf);
    return trips;
}

static void app_insert(PGconn *pg)
{
    PGresult *r = PQexecParams(pg, "INSERT INTO rt_rides (name) VALUES ($1)", 1, NULL,
                               (const char *const[]){"ride"}, NULL, NULL, 0);
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
}

static int insert_step(aj_run *run, const char *step, void *ctx)
{
    (void)step;
    (void)ctx;
    app_insert(aj_store_pg(aj_run_store(run)));
    return 0;
}

static int insert_and_set_attributes(aj_run *run, const char *step, void *ctx)
{
    (void)ctx;
    if (strcmp(step, "b") == 0)
        assert_int_equal(aj_run_set_attributes(run, "{\"ride\": 1}", 11), AJ_OK);
    return insert_step(run, step, ctx);
}

static int insert_and_set_attributes_every_step(aj_run *run, const char *step, void *ctx)
{
    char doc[32];
    int len = snprintf(doc, sizeof doc, "{\"step\": \"%s\"}", step);
    assert_int_equal(aj_run_set_attributes(run, doc, (size_t)len), AJ_OK);
    return insert_step(run, step, ctx);
}

static aj_workflow *three_steps(void)
{
    aj_workflow *wf;
    assert_int_equal(aj_workflow_new(&wf), AJ_OK);
    assert_int_equal(aj_workflow_add_step(wf, "a", NULL, 0), AJ_OK);
    assert_int_equal(aj_workflow_add_step(wf, "b", NULL, 0), AJ_OK);
    assert_int_equal(aj_workflow_add_step(wf, "c", NULL, 0), AJ_OK);
    return wf;
}

static void exec_ok(PGconn *pg, const char *sql)
{
    PGresult *r = PQexec(pg, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
        fail_msg("%s: %s", sql, PQerrorMessage(pg));
    PQclear(r);
}

void test_pg_step_round_trips(void **state)
{
    (void)state;
    aj_store *store = open_store();
    PGconn *pg = aj_store_pg(store);
    assert_non_null(pg);
    exec_ok(pg, "CREATE TABLE rt_rides (id bigserial PRIMARY KEY, name text NOT NULL)");
    aj_workflow *wf = three_steps();

    /* The yardstick, measured the same way: three plain transactions. */
    trace t;
    trace_start(&t, pg);
    for (int i = 0; i < 3; i++) {
        exec_ok(pg, "BEGIN");
        app_insert(pg);
        exec_ok(pg, "COMMIT");
    }
    int plain = trace_stop(&t, pg);
    assert_int_equal(plain, 9);

    /* Warm: the first run also prepares the core's statements (in the same pipelines). */
    aj_run_params p = AJ_RUN_PARAMS_INIT;
    p.key = "rt-warm";
    p.job_name = "RoundTrips";
    p.args = "[]";
    p.args_len = 2;
    p.attributes = "{}";
    p.attributes_len = 2;
    aj_run *run;
    assert_int_equal(aj_run_new(&run, store, wf, &p), AJ_OK);
    assert_int_equal(aj_run_execute(run, insert_and_set_attributes, NULL), AJ_OK);
    aj_run_free(run);

    /* A new 3-step run: acquisition folded into the first step, each step inserting a row
     * and changing the attributes, costs the round trips of the three plain ones. */
    p.key = "rt-owned";
    assert_int_equal(aj_run_new(&run, store, wf, &p), AJ_OK);
    trace_start(&t, pg);
    assert_int_equal(aj_run_execute(run, insert_and_set_attributes_every_step, NULL), AJ_OK);
    int trips = trace_stop(&t, pg);
    print_message("owned 3-step run: %d round trips (3 plain transactions: %d)\n", trips, plain);
    assert_int_equal(trips, plain);
    assert_int_equal(aj_run_status(run), AJ_RUN_SUCCEEDED);
    aj_run_free(run);
    aj_workflow_free(wf);
    aj_store_free(store);
}

/* The host's hooks send BEGIN and COMMIT on the borrowed connection. */
static int rt_atomically(void *ctx, aj_tx_body body, void *arg, int *committed)
{
    PGconn *pg = ctx;
    exec_ok(pg, "BEGIN");
    int rc = body(arg);
    exec_ok(pg, rc == 0 ? "COMMIT" : "ROLLBACK");
    *committed = rc == 0;
    return 0;
}

/* A host as ActiveRecord's requires_new: a transaction of its own on an idle
 * connection, else a savepoint in the application's. */
static int rt_atomically_commit_in_body(void *ctx, aj_tx_body body, void *arg, int *committed);

static int rt_nested_commit_in_body(void *ctx, aj_tx_body body, void *arg, int *committed)
{
    PGconn *pg = ctx;
    if (PQtransactionStatus(pg) == PQTRANS_IDLE)
        return rt_atomically_commit_in_body(ctx, body, arg, committed);
    exec_ok(pg, "SAVEPOINT host");
    int rc = body(arg);
    exec_ok(pg, rc == 0 ? "RELEASE SAVEPOINT host" : "ROLLBACK TO SAVEPOINT host");
    *committed = rc == 0;
    return 0;
}

/* commit_in_body: the core may have committed already; commit what is still open. */
static int rt_atomically_commit_in_body(void *ctx, aj_tx_body body, void *arg, int *committed)
{
    PGconn *pg = ctx;
    exec_ok(pg, "BEGIN");
    int rc = body(arg);
    if (PQtransactionStatus(pg) != PQTRANS_IDLE)
        exec_ok(pg, rc == 0 ? "COMMIT" : "ROLLBACK");
    *committed = rc == 0;
    return 0;
}

/* begin_in_body: the core opens a top-level transaction itself; the host opens only
 * savepoints, and ends what is still open after the body. */
static int rt_atomically_begin_in_body(void *ctx, aj_tx_body body, void *arg, int *committed)
{
    PGconn *pg = ctx;
    int nested = PQtransactionStatus(pg) != PQTRANS_IDLE;
    if (nested)
        exec_ok(pg, "SAVEPOINT host");
    int rc = body(arg);
    if (nested)
        exec_ok(pg, rc == 0 ? "RELEASE SAVEPOINT host" : "ROLLBACK TO SAVEPOINT host");
    else if (PQtransactionStatus(pg) != PQTRANS_IDLE)
        exec_ok(pg, rc == 0 ? "COMMIT" : "ROLLBACK");
    *committed = rc == 0;
    return 0;
}

/* A borrowed connection with the test's table, under `hooks` (the caller frees both). */
static aj_store *borrow_with(const aj_host_tx *hooks, PGconn **pg_out)
{
    PGconn *pg = PQconnectdb(test_pg_conninfo());
    assert_int_equal(PQstatus(pg), CONNECTION_OK);
    exec_ok(pg, "SET client_min_messages = warning");
    exec_ok(pg, "CREATE TABLE IF NOT EXISTS rt_rides (id bigserial PRIMARY KEY, name text NOT NULL)");
    aj_store *store;
    assert_int_equal(aj_store_borrow_pg(&store, pg, hooks, pg, NULL), AJ_OK);
    assert_int_equal(aj_store_migrate(store), AJ_OK);
    *pg_out = pg;
    return store;
}

/* A new 3-step run on a borrowed connection whose host opens each transaction:
 * `expected_extra` round trips per step beyond the application's BEGIN, INSERT, COMMIT. */
static void borrowed_round_trips(const aj_host_tx *hooks, const char *key,
                                 const int expected_extra[3])
{
    aj_store *owner = open_store(); /* creates the schema on this test's database */
    PGconn *pg;
    aj_store *store = borrow_with(hooks, &pg);
    aj_workflow *wf = three_steps();
    aj_run_params p = AJ_RUN_PARAMS_INIT;
    p.key = key;
    p.job_name = "RoundTrips";
    p.args = "[]";
    p.args_len = 2;
    p.attributes = "{}";
    p.attributes_len = 2;
    aj_run *run;
    assert_int_equal(aj_run_new(&run, store, wf, &p), AJ_OK);
    for (int i = 0; i < 3; i++) {
        trace t;
        trace_start(&t, pg);
        assert_int_equal(aj_run_step(run, insert_and_set_attributes_every_step, NULL), AJ_OK);
        int trips = trace_stop(&t, pg);
        print_message("borrowed step %d (%s): %d round trips\n", i + 1, key, trips);
        assert_int_equal(trips - 3, expected_extra[i]);
        assert_int_equal(PQtransactionStatus(pg), PQTRANS_IDLE);
    }
    assert_int_equal(aj_run_status(run), AJ_RUN_SUCCEEDED);
    aj_run_free(run);
    aj_workflow_free(wf);
    aj_store_free(store);
    PQfinish(pg);
    aj_store_free(owner);
}

void test_pg_borrowed_step_round_trips(void **state)
{
    (void)state;
    /* BEGIN, INSERT, COMMIT are the application's; the rest is the core's: the first
     * step finds or creates the run (one statement, after an advisory lock in the same
     * pipeline) and writes its attributes; the others claim the row with their last
     * statement. */
    static const aj_host_tx hooks = {AJ_HOST_TX_VERSION, rt_atomically, 0, 0, 0};
    borrowed_round_trips(&hooks, "rt-borrowed", (const int[3]){2, 1, 1});
    /* the core's last statements carry the COMMIT: the claims cost nothing more */
    static const aj_host_tx commit_in_body = {AJ_HOST_TX_VERSION, rt_atomically_commit_in_body,
                                              0, 1, 0};
    borrowed_round_trips(&commit_in_body, "rt-commit-in-body", (const int[3]){1, 0, 0});
    /* and its first statements carry the BEGIN: the round trips of three plain
     * transactions, as on a connection the core owns */
    static const aj_host_tx begin_in_body = {AJ_HOST_TX_VERSION, rt_atomically_begin_in_body,
                                             0, 1, 1};
    borrowed_round_trips(&begin_in_body, "rt-begin-in-body", (const int[3]){0, 0, 0});
}

static int fail_step_b(aj_run *run, const char *step, void *ctx)
{
    int *fail = ctx;
    if (*fail && strcmp(step, "b") == 0)
        return 1;
    return insert_and_set_attributes_every_step(run, step, NULL);
}

/* begin_in_body: a failed step leaves nothing open (the core rolls back what it began),
 * its failure is recorded, and the run resumes at it (inside the application's
 * transaction: test_pg_commit_in_body_inside_app_transaction). */
void test_pg_begin_in_body(void **state)
{
    (void)state;
    aj_store *owner = open_store();
    static const aj_host_tx hooks = {AJ_HOST_TX_VERSION, rt_atomically_begin_in_body, 0, 1, 1};
    PGconn *pg;
    aj_store *store = borrow_with(&hooks, &pg);
    aj_workflow *wf = three_steps();
    aj_run_params p = AJ_RUN_PARAMS_INIT;
    p.key = "rt-begin-fail";
    p.job_name = "RoundTrips";
    aj_run *run;
    int fail = 1;
    assert_int_equal(aj_run_new(&run, store, wf, &p), AJ_OK);
    assert_int_equal(aj_run_execute(run, fail_step_b, &fail), AJ_ESTEP);
    assert_int_equal(PQtransactionStatus(pg), PQTRANS_IDLE);
    aj_run_free(run);
    PGresult *r = PQexec(pg, "SELECT recovery_point, locked_at IS NULL, error_object IS NOT NULL,"
                             " (SELECT count(*) FROM rt_rides) FROM acidic_job_keys"
                             " WHERE idempotency_key = 'rt-begin-fail'");
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_int_equal(PQntuples(r), 1);
    assert_string_equal(PQgetvalue(r, 0, 0), "b");
    assert_string_equal(PQgetvalue(r, 0, 1), "t");
    assert_string_equal(PQgetvalue(r, 0, 2), "t");
    long rides = atol(PQgetvalue(r, 0, 3));
    PQclear(r);
    fail = 0;
    assert_int_equal(aj_run_new(&run, store, wf, &p), AJ_OK);
    assert_int_equal(aj_run_execute(run, fail_step_b, &fail), AJ_OK);
    assert_int_equal(aj_run_status(run), AJ_RUN_SUCCEEDED);
    assert_int_equal(PQtransactionStatus(pg), PQTRANS_IDLE);
    aj_run_free(run);
    r = PQexec(pg, "SELECT count(*) FROM rt_rides");
    assert_int_equal(atol(PQgetvalue(r, 0, 0)), rides + 2); /* b and c, once each */
    PQclear(r);

    aj_workflow_free(wf);
    aj_store_free(store);
    PQfinish(pg);
    aj_store_free(owner);
}

/* commit_in_body (and begin_in_body) never commit inside the application's open
 * transaction: the host's savepoint stays the host's to release, and a rollback of the
 * application's transaction takes the run with it. */
static void run_inside_app_transaction(const aj_host_tx *hooks, const char *key)
{
    aj_store *owner = open_store();
    PGconn *pg;
    aj_store *store = borrow_with(hooks, &pg);
    aj_workflow *wf = three_steps();
    aj_run_params p = AJ_RUN_PARAMS_INIT;
    p.key = key;
    p.job_name = "RoundTrips";
    p.args = "[]";
    p.args_len = 2;
    aj_run *run;
    exec_ok(pg, "BEGIN");
    assert_int_equal(aj_run_new(&run, store, wf, &p), AJ_OK);
    assert_int_equal(aj_run_execute(run, insert_and_set_attributes_every_step, NULL), AJ_OK);
    assert_int_equal(aj_run_status(run), AJ_RUN_SUCCEEDED);
    assert_int_equal(PQtransactionStatus(pg), PQTRANS_INTRANS);
    exec_ok(pg, "ROLLBACK");
    const char *param[1] = {key};
    PGresult *r = PQexecParams(pg, "SELECT COUNT(*) FROM acidic_job_keys WHERE idempotency_key = $1",
                               1, NULL, param, NULL, NULL, 0);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_string_equal(PQgetvalue(r, 0, 0), "0");
    PQclear(r);
    aj_run_free(run);
    aj_workflow_free(wf);
    aj_store_free(store);
    PQfinish(pg);
    aj_store_free(owner);
}

void test_pg_commit_in_body_inside_app_transaction(void **state)
{
    (void)state;
    static const aj_host_tx commit_in_body = {AJ_HOST_TX_VERSION, rt_nested_commit_in_body,
                                              0, 1, 0};
    run_inside_app_transaction(&commit_in_body, "rt-in-app");
    static const aj_host_tx begin_in_body = {AJ_HOST_TX_VERSION, rt_atomically_begin_in_body,
                                             0, 1, 1};
    run_inside_app_transaction(&begin_in_body, "rt-begin-in-app");
}

/* An application transaction that has not sent its BEGIN yet (ActiveRecord opens its
 * transactions lazily): the connection is idle when the core asks for a transaction, and
 * the host then sends the application's BEGIN and its own savepoint. The core must see a
 * nested body there, and commit nothing: the application's rollback takes the run. */
static long long query_int(PGconn *pg, const char *sql);

typedef struct lazy_app_host {
    PGconn *pg;
    int savepoints;
} lazy_app_host;

static int rt_atomically_in_lazy_app_transaction(void *ctx, aj_tx_body body, void *arg,
                                                 int *committed)
{
    lazy_app_host *h = ctx;
    if (PQtransactionStatus(h->pg) == PQTRANS_IDLE)
        exec_ok(h->pg, "BEGIN"); /* the application's, sent when first needed */
    exec_ok(h->pg, "SAVEPOINT host");
    h->savepoints++;
    int rc = body(arg);
    if (PQtransactionStatus(h->pg) == PQTRANS_IDLE) { /* the core committed the application's */
        *committed = 0;
        return aj_error_report(AJ_EDATABASE, "the savepoint's transaction was committed");
    }
    exec_ok(h->pg, rc == 0 ? "RELEASE SAVEPOINT host" : "ROLLBACK TO SAVEPOINT host");
    *committed = rc == 0;
    return 0;
}

void test_pg_begin_in_body_inside_lazy_app_transaction(void **state)
{
    (void)state;
    aj_store *owner = open_store();
    PGconn *pg = PQconnectdb(test_pg_conninfo());
    assert_int_equal(PQstatus(pg), CONNECTION_OK);
    exec_ok(pg, "SET client_min_messages = warning");
    exec_ok(pg, "CREATE TABLE IF NOT EXISTS rt_rides (id bigserial PRIMARY KEY, name text NOT NULL)");
    static const aj_host_tx hooks = {AJ_HOST_TX_VERSION, rt_atomically_in_lazy_app_transaction,
                                     0, 1, 1};
    lazy_app_host host = {pg, 0};
    aj_store *store;
    assert_int_equal(aj_store_borrow_pg(&store, pg, &hooks, &host, NULL), AJ_OK);
    aj_workflow *wf = three_steps();
    aj_run_params p = AJ_RUN_PARAMS_INIT;
    p.key = "rt-lazy-app";
    p.job_name = "RoundTrips";
    p.args = "[]";
    p.args_len = 2;
    aj_run *run;
    assert_int_equal(aj_run_new(&run, store, wf, &p), AJ_OK);
    assert_int_equal(aj_run_execute(run, insert_and_set_attributes_every_step, NULL), AJ_OK);
    assert_int_equal(aj_run_status(run), AJ_RUN_SUCCEEDED);
    assert_true(host.savepoints >= 3);
    assert_int_equal(PQtransactionStatus(pg), PQTRANS_INTRANS); /* still the application's */
    exec_ok(pg, "ROLLBACK");
    assert_int_equal(query_int(pg, "SELECT count(*) FROM acidic_job_keys"
                                   " WHERE idempotency_key = 'rt-lazy-app'"), 0);
    aj_run_free(run);
    aj_workflow_free(wf);
    aj_store_free(store);
    PQfinish(pg);
    aj_store_free(owner);
}

/* Acquisition on a table the planner knows nothing about (never analyzed: a fresh
 * deployment, a table growing faster than autovacuum looks at it) with 20,000 finished
 * runs: finding the key must go through the key's index. With "ORDER BY id LIMIT 1" the
 * planner walked the primary key in id order, filtering every row, for a key that is not
 * there: a cost growing with the history (4 ms at 10,000 rows). Counted, not timed: the
 * index scans of the first step's transaction (pg_stat_get_xact_numscans), where the
 * acquisition runs. Owned (named statements, generic plans after five runs) and borrowed. */
static int count_pkey_scans(aj_run *run, const char *step, void *ctx)
{
    (void)step;
    aj_rows *rows = NULL;
    int rc = aj_store_exec(aj_run_store(run),
                           "SELECT pg_stat_get_xact_numscans('acidic_job_keys_pkey'::regclass),"
                           " pg_stat_get_xact_numscans(CAST((SELECT indexrelid FROM pg_index"
                           " WHERE indrelid = 'acidic_job_keys'::regclass AND NOT indisprimary"
                           " LIMIT 1) AS regclass))", NULL, 0, &rows);
    if (rc == AJ_OK) {
        int64_t *scans = ctx;
        scans[0] += aj_rows_cell(rows, 0, 0)->integer;
        scans[1] += aj_rows_cell(rows, 0, 1)->integer;
    }
    aj_rows_free(rows);
    return rc != AJ_OK;
}

void test_pg_acquisition_uses_the_key_index(void **state)
{
    (void)state;
    aj_store *store = open_store();
    PGconn *pg = aj_store_pg(store);
    /* the core makes its tables on first use */
    aj_workflow *wf = NULL;
    assert_int_equal(aj_workflow_new(&wf), AJ_OK);
    assert_int_equal(aj_workflow_add_step(wf, "only", NULL, 0), AJ_OK);
    int64_t scans[2] = {0, 0};
    aj_run_params p = AJ_RUN_PARAMS_INIT;
    p.key = "first";
    p.job_name = "Plans";
    aj_run *run;
    assert_int_equal(aj_run_new(&run, store, wf, &p), AJ_OK);
    assert_int_equal(aj_run_execute(run, count_pkey_scans, scans), AJ_OK);
    aj_run_free(run);
    exec_ok(pg, "ALTER TABLE acidic_job_keys SET (autovacuum_enabled = false)");
    exec_ok(pg, "INSERT INTO acidic_job_keys (idempotency_key, job_name, job_args, recovery_point,"
                " created_at, updated_at) SELECT 'old-' || g, 'Plans', '[]', 'FINISHED', now(),"
                " now() FROM generate_series(1, 20000) g");
    PGconn *app = PQconnectdb(test_pg_conninfo());
    assert_int_equal(PQstatus(app), CONNECTION_OK);
    static const aj_host_tx hooks = {AJ_HOST_TX_VERSION, rt_atomically, 0, 0, 0};
    aj_store *borrowed = NULL;
    assert_int_equal(aj_store_borrow_pg(&borrowed, app, &hooks, app, NULL), AJ_OK);
    for (int s = 0; s < 2; s++) {
        scans[0] = scans[1] = 0;
        for (int i = 0; i < 8; i++) { /* past the five custom plans of a named statement */
            char key[32];
            snprintf(key, sizeof key, "new-%d-%d", s, i);
            p.key = key;
            assert_int_equal(aj_run_new(&run, s ? borrowed : store, wf, &p), AJ_OK);
            assert_int_equal(aj_run_execute(run, count_pkey_scans, scans), AJ_OK);
            aj_run_free(run);
        }
        assert_int_equal(scans[0], 0); /* the primary key was never walked */
        assert_true(scans[1] >= 8);    /* the key's index found (or not) each key */
    }
    aj_store_free(borrowed);
    PQfinish(app);
    aj_workflow_free(wf);
    aj_store_free(store);
}

/* What a step writes, counted by the server (pg_stat_user_tables, after this backend's
 * statistics are flushed): the run's row gets one new version per step, the claim at the
 * step's end. The step's first statement only locks the row (AJ_Q_LOCK_ROW, or the
 * acquisition's FOR UPDATE), so a step that changes the attributes writes no second
 * version to amend its first (5 versions for these 3 steps before). */
/* The one integer `sql` reads. */
static long long query_int(PGconn *pg, const char *sql)
{
    PGresult *r = PQexec(pg, sql);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    long long n = atoll(PQgetvalue(r, 0, 0));
    PQclear(r);
    return n;
}

static long long keys_updated(PGconn *pg)
{
    exec_ok(pg, "SELECT pg_stat_force_next_flush()"); /* flushed as the backend goes idle */
    return query_int(pg, "SELECT n_tup_upd FROM pg_stat_user_tables"
                         " WHERE relid = 'acidic_job_keys'::regclass");
}

/* A run of `job_name` under `key` whose attributes start as an empty document. */
static aj_run_params params_with_attributes(const char *key, const char *job_name)
{
    aj_run_params p = AJ_RUN_PARAMS_INIT;
    p.key = key;
    p.job_name = job_name;
    p.attributes = "{}";
    p.attributes_len = 2;
    return p;
}

static int fail_b_once(aj_run *run, const char *step, void *ctx)
{
    int *failed = ctx;
    if (strcmp(step, "b") == 0 && !*failed) {
        *failed = 1;
        return 1;
    }
    return insert_and_set_attributes_every_step(run, step, NULL);
}

void test_pg_step_writes_one_row_version(void **state)
{
    (void)state;
    aj_store *store = open_store();
    PGconn *pg = aj_store_pg(store);
    exec_ok(pg, "CREATE TABLE rt_rides (id bigserial PRIMARY KEY, name text NOT NULL)");
    aj_workflow *wf = three_steps();
    aj_run_params p = params_with_attributes("versions-new", "RowVersions");
    aj_run *run;
    assert_int_equal(aj_run_new(&run, store, wf, &p), AJ_OK);
    long long before = keys_updated(pg);
    assert_int_equal(aj_run_execute(run, insert_and_set_attributes_every_step, NULL), AJ_OK);
    long long versions = keys_updated(pg) - before;
    print_message("new 3-step run: %lld row versions after the insert\n", versions);
    assert_int_equal(aj_run_status(run), AJ_RUN_SUCCEEDED);
    assert_int_equal(versions, 3); /* the first step's claim amends its insert */
    aj_run_free(run);

    /* A resumed run: its acquisition's claim (the attempt counted, last_run_at) is the
     * resumed step's one claim. */
    int failed = 0;
    p.key = "versions-resumed";
    assert_int_equal(aj_run_new(&run, store, wf, &p), AJ_OK);
    assert_int_equal(aj_run_execute(run, fail_b_once, &failed), AJ_ESTEP);
    aj_run_free(run);
    assert_int_equal(aj_run_new(&run, store, wf, &p), AJ_OK);
    before = keys_updated(pg);
    assert_int_equal(aj_run_execute(run, fail_b_once, &failed), AJ_OK);
    versions = keys_updated(pg) - before;
    print_message("resumed run, 2 steps: %lld row versions\n", versions);
    assert_int_equal(aj_run_status(run), AJ_RUN_SUCCEEDED);
    assert_int_equal(versions, 2);
    assert_int_equal(aj_run_attempts(run), 2);
    aj_run_free(run);
    aj_workflow_free(wf);
    aj_store_free(store);
}

/* What a step's claim logs: on the tables the core makes, the columns a plain step
 * changes (locked_at to updated_at) lie together after the ones it never changes, so the
 * claim's HOT update logs only them: PostgreSQL leaves the unchanged prefix and suffix of
 * the row out of the WAL record. With 0.7.0's order the workflow document lay between
 * them and went into the WAL at every step (152 of the 279 bytes of a 3-step run's
 * update; decision 019). Measured as the WAL between two steps' starts, the least over
 * the steps after the first (whose claim amends the row its own transaction inserted);
 * the least, because a version that no longer fits its page is logged whole, and a
 * checkpoint's full-page image or another backend's record can land in any one. */
static int wal_at_step(aj_run *run, const char *step, void *ctx)
{
    (void)step;
    int64_t *wal = ctx;
    aj_rows *rows = NULL;
    assert_int_equal(aj_store_exec(aj_run_store(run),
                                   "SELECT CAST(pg_current_wal_insert_lsn() - '0/0' AS bigint)",
                                   NULL, 0, &rows), AJ_OK);
    wal[++wal[0]] = aj_rows_cell(rows, 0, 0)->integer;
    aj_rows_free(rows);
    char doc[32];
    int len = snprintf(doc, sizeof doc, "{\"at\": %lld}", (long long)wal[0]);
    assert_int_equal(aj_run_set_attributes(run, doc, (size_t)len), AJ_OK);
    return 0;
}

void test_pg_step_wal_leaves_out_the_workflow(void **state)
{
    (void)state;
    aj_store *store = open_store();
    aj_workflow *wf;
    assert_int_equal(aj_workflow_new(&wf), AJ_OK);
    enum { STEPS = 8 };
    for (int i = 0; i < STEPS; i++) {
        char name[64];
        snprintf(name, sizeof name, "a_step_whose_name_says_what_it_does_%02d", i);
        assert_int_equal(aj_workflow_add_step(wf, name, NULL, 0), AJ_OK);
    }
    aj_run_params p = params_with_attributes("wal-per-step", "WalPerStep");
    aj_run *run;
    int64_t wal[STEPS + 1] = {0};
    assert_int_equal(aj_run_new(&run, store, wf, &p), AJ_OK);
    assert_int_equal(aj_run_execute(run, wal_at_step, wal), AJ_OK);
    assert_int_equal(aj_run_status(run), AJ_RUN_SUCCEEDED);
    aj_run_free(run);
    assert_int_equal(wal[0], STEPS);
    int64_t least = INT64_MAX;
    for (int i = 3; i <= STEPS; i++) /* step i-1's claim and COMMIT, step i's row lock */
        if (wal[i] - wal[i - 1] < least)
            least = wal[i] - wal[i - 1];
    long long doc = query_int(aj_store_pg(store), "SELECT length(workflow) FROM acidic_job_keys"
                                                  " WHERE idempotency_key = 'wal-per-step'");
    print_message("a step logs %lld bytes of WAL; the workflow document is %lld bytes\n",
                  (long long)least, doc);
    assert_true(doc > 900);      /* stored inline: the row is below TOAST's 2 KB */
    assert_true(least < doc / 2); /* 240 bytes; 1,488 with 0.7.0's order */
    aj_workflow_free(wf);
    aj_store_free(store);
}
