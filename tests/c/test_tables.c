/* The tables as the application made them, and as it remakes them: detected, healed in
 * place, with no error reaching the job. */
#include "harness.h"
#include "tests.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* acidic_job 0.7.0's generator, with the variations applications have. */
static void create_070(int staged_timestamps, int last_run_at_nullable) {
    char keys[2048];
    int pg = g_db == DB_POSTGRES;
    snprintf(keys, sizeof keys,
             "CREATE TABLE acidic_job_keys (id %s, idempotency_key varchar NOT NULL,"
             " job_name varchar NOT NULL, job_args text, last_run_at %s%s,"
             " locked_at %s, recovery_point varchar NOT NULL, error_object text,"
             " attr_accessors text, workflow text, created_at %s NOT NULL, updated_at %s NOT NULL)",
             pg ? "bigserial PRIMARY KEY" : "INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL",
             pg ? "timestamp(6)" : "datetime(6)",
             last_run_at_nullable ? "" : " DEFAULT CURRENT_TIMESTAMP NOT NULL",
             pg ? "timestamp(6)" : "datetime(6)", pg ? "timestamp(6)" : "datetime(6)",
             pg ? "timestamp(6)" : "datetime(6)");
    raw_exec(keys);
    raw_exec("CREATE UNIQUE INDEX idx_acidic_job_keys_on_idempotency_key_n_job_name_n_job_args"
             " ON acidic_job_keys (idempotency_key, job_name, job_args)");
    char staged[1024];
    snprintf(staged, sizeof staged,
             "CREATE TABLE staged_acidic_jobs (id %s, adapter varchar NOT NULL,"
             " job_name varchar NOT NULL, job_args text%s)",
             pg ? "bigserial PRIMARY KEY" : "INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL",
             staged_timestamps ? (pg ? ", created_at timestamp(6) NOT NULL, updated_at "
                                       "timestamp(6) NOT NULL"
                                     : ", created_at datetime(6) NOT NULL, updated_at "
                                       "datetime(6) NOT NULL")
                               : "");
    raw_exec(staged);
}

static void drop_app_tables(void) {
    raw_exec("DROP TABLE staged_acidic_jobs");
    raw_exec("DROP TABLE acidic_job_keys");
}

static int run_once(aj_store *s, const char *key, recorder *rec) {
    aj_workflow *wf = make_wf("a", "b", NULL);
    aj_run_params p = AJ_RUN_PARAMS_INIT;
    p.key = key;
    p.job_name = "TestJob";
    p.args = "[1]";
    p.args_len = 3;
    aj_run *run = NULL;
    assert_aj(aj_run_new(&run, s, wf, &p), AJ_OK);
    int before = rec ? rec->n : 0;
    script sc = {.stage_at = "b", .n_stage = 1};
    int rc = aj_run_execute(run, script_step, &sc);
    if (rc == AJ_OK) {
        assert_int_equal(aj_run_status(run), AJ_RUN_SUCCEEDED);
        assert_string_equal(script_calls(&sc), "a,b");
        if (rec) assert_int_equal(rec->n, before + 1);
    }
    aj_run_free(run);
    aj_workflow_free(wf);
    return rc;
}

void test_tables_070_shapes(void **state) {
    (void)state;
    for (int shape = 0; shape < 4; shape++) {
        int timestamps = shape & 1, nullable = (shape & 2) != 0;
        create_070(timestamps, nullable);
        aj_store *s = open_store();
        recorder rec = {0};
        aj_store_set_enqueue(s, recorder_enqueue, &rec);
        char key[16];
        snprintf(key, sizeof key, "shape-%d", shape);
        assert_aj(run_once(s, key, &rec), AJ_OK);
        /* the staged row went into the application's shape */
        assert_int_equal(count_rows(s, "staged_acidic_jobs"), 1);
        if (timestamps)
            assert_int_equal(q_int(s, "SELECT COUNT(*) FROM staged_acidic_jobs WHERE created_at"
                                      " IS NOT NULL AND updated_at IS NOT NULL", NULL, NULL), 1);
        /* the core's columns were added to the application's tables */
        q_exec(s, "SELECT attempts, locked_by, recover_at, dead_at, awaiting_batch_id, "
                  "resume_adapter, resume_job_name, resume_args FROM acidic_job_keys", NULL, NULL);
        q_exec(s, "SELECT batch_id, delivered_at FROM staged_acidic_jobs", NULL, NULL);
        aj_store_free(s);
        drop_app_tables();
    }
}

/* SQLite's column names are case-insensitive: tables written by hand with CREATED_AT or
 * Workflow are the same shape (found by tests/reliability's tables fuzzer: the core did
 * not see them and added "workflow" again, "duplicate column name"). PostgreSQL's quoted
 * mixed-case names are other columns, so this is SQLite's only. */
void test_tables_column_case(void **state) {
    (void)state;
    if (g_db != DB_SQLITE) return;
    raw_exec("CREATE TABLE acidic_job_keys (id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,"
             " idempotency_key varchar NOT NULL, job_name varchar NOT NULL, job_args text,"
             " last_run_at datetime(6), locked_at datetime(6), recovery_point varchar NOT NULL,"
             " error_object text, attr_accessors text, WORKFLOW text,"
             " Created_At datetime(6) NOT NULL, UPDATED_AT datetime(6) NOT NULL,"
             " Attempts integer, RECOVER_AT datetime(6))");
    raw_exec("CREATE TABLE staged_acidic_jobs (id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,"
             " adapter varchar NOT NULL, job_name varchar NOT NULL, job_args text,"
             " CREATED_AT datetime(6) NOT NULL, Updated_At datetime(6) NOT NULL, Key_Id integer)");
    aj_store *s = open_store();
    recorder rec = {0};
    aj_store_set_enqueue(s, recorder_enqueue, &rec);
    assert_aj(run_once(s, "cased", &rec), AJ_OK);
    assert_int_equal(q_int(s, "SELECT COUNT(*) FROM acidic_job_keys WHERE created_at IS NOT NULL"
                              " AND attempts = 1", NULL, NULL), 1);
    assert_int_equal(q_int(s, "SELECT COUNT(*) FROM staged_acidic_jobs WHERE created_at IS NOT"
                              " NULL AND key_id IS NOT NULL", NULL, NULL), 1);
    assert_aj(aj_store_migrate(s), AJ_OK);
    aj_store_free(s);
}

/* The application drops and recreates the tables between two jobs of a store that knew
 * them (a test's `create_table ..., force: true`): healed, no error reaches the job. */
void test_tables_recreated(void **state) {
    (void)state;
    aj_store *s = open_store();
    recorder rec = {0};
    aj_store_set_enqueue(s, recorder_enqueue, &rec);
    assert_aj(run_once(s, "first", &rec), AJ_OK);
    for (int shape = 0; shape < 4; shape++) {
        drop_app_tables();
        create_070(shape & 1, (shape & 2) != 0);
        char key[16];
        snprintf(key, sizeof key, "again-%d", shape);
        assert_aj(run_once(s, key, &rec), AJ_OK);
        assert_int_equal(count_rows(s, "acidic_job_keys"), 1);
    }
    /* and when everything is dropped, the version row included */
    raw_exec("DROP TABLE staged_acidic_jobs");
    raw_exec("DROP TABLE acidic_job_keys");
    raw_exec("DROP TABLE acidic_job_batches");
    raw_exec("DROP TABLE acidic_job_schema");
    assert_aj(run_once(s, "from-nothing", &rec), AJ_OK);
    assert_true(table_exists(s, "acidic_job_batches"));
    assert_int_equal(q_int(s, "SELECT MAX(version) FROM acidic_job_schema", NULL, NULL), 3);
    aj_store_free(s);
}

/* DatabaseCleaner's deletion empties every table, acidic_job_schema included. */
void test_tables_cleaned(void **state) {
    (void)state;
    aj_store *s = open_store();
    assert_aj(run_once(s, "k", NULL), AJ_OK);
    raw_exec("DELETE FROM acidic_job_keys");
    raw_exec("DELETE FROM staged_acidic_jobs");
    raw_exec("DELETE FROM acidic_job_batches");
    raw_exec("DELETE FROM acidic_job_schema");
    assert_aj(run_once(s, "k", NULL), AJ_OK);
    aj_store_free(s);
    aj_store *again = open_store(); /* a new process heals the version row back */
    assert_int_equal(q_int(again, "SELECT MAX(version) FROM acidic_job_schema", NULL, NULL), 3);
    aj_store_free(again);
}

/* Tables a newer acidic_job healed are refused, with what to do. */
void test_tables_newer_refused(void **state) {
    (void)state;
    aj_store *s = open_store();
    q_exec(s, "UPDATE acidic_job_schema SET version = 99", NULL, NULL);
    aj_store_free(s);
    s = NULL;
    assert_aj(aj_store_open(&s, test_url(), NULL), AJ_ESCHEMA);
    assert_null(s);
    assert_non_null(strstr(aj_error_last()->message, "newer acidic_job"));
    assert_non_null(strstr(aj_error_last()->message, "99"));
}

/* Arguments of any size on the core's own tables (PostgreSQL: md5 index), and the
 * 0.7.0 index's limit explained instead of "retry". */
static void run_with_args(aj_store *s, const char *key, size_t size, int expect) {
    char *args = malloc(size + 1);
    assert_non_null(args);
    /* incompressible-ish: an LCG over letters */
    unsigned x = 12345;
    for (size_t i = 0; i < size; i++) {
        x = x * 1103515245u + 12345u;
        args[i] = (char)('a' + (x >> 16) % 26);
    }
    args[size] = 0;
    aj_workflow *wf = make_wf("a", NULL);
    aj_run_params p = AJ_RUN_PARAMS_INIT;
    p.key = key;
    p.job_name = "TestJob";
    p.args = args;
    p.args_len = size;
    aj_run *run = NULL;
    assert_aj(aj_run_new(&run, s, wf, &p), AJ_OK);
    script sc = {0};
    assert_aj(aj_run_execute(run, script_step, &sc), expect);
    aj_run_free(run);
    if (expect == AJ_OK) {
        /* the same arguments again: found, finished (compared in full) */
        assert_aj(aj_run_new(&run, s, wf, &p), AJ_OK);
        script again = {0};
        assert_aj(aj_run_execute(run, script_step, &again), AJ_OK);
        assert_int_equal(again.ncalls, 0);
        assert_int_equal(aj_run_status(run), AJ_RUN_SUCCEEDED);
        aj_run_free(run);
    }
    aj_workflow_free(wf);
    free(args);
}

void test_tables_large_arguments(void **state) {
    (void)state;
    aj_store *s = open_store();
    run_with_args(s, "one-mb", 1 << 20, AJ_OK);
    run_with_args(s, "fifty-mb", (size_t)50 << 20, AJ_OK);
    aj_store_free(s);
    if (g_db == DB_POSTGRES) {
        /* 0.7.0's own index cannot hold the row: the error says so */
        drop_app_tables();
        create_070(1, 0);
        s = open_store();
        run_with_args(s, "too-big", 8192, AJ_ESCHEMA);
        assert_non_null(strstr(aj_error_last()->message, "md5(job_args)"));
        assert_null(strstr(aj_error_last()->message, "can be retried"));
        assert_int_equal(key_locked(s, "too-big"), -1); /* nothing written */
        aj_store_free(s);
    }
}

/* 0.7.0's unique index is on (key, job name, arguments), so its tables can hold several
 * rows of one key. The oldest is the key's run, whatever the index order says. */
void test_tables_oldest_row_of_key(void **state) {
    (void)state;
    create_070(1, 0);
    raw_exec("INSERT INTO acidic_job_keys (idempotency_key, job_name, job_args, last_run_at, "
             "recovery_point, workflow, created_at, updated_at) VALUES ('twice', 'TestJob', "
             "'[1]', '2022-01-01 00:00:00', 'FINISHED', NULL, '2022-01-01 00:00:00', "
             "'2022-01-01 00:00:00')");
    raw_exec("INSERT INTO acidic_job_keys (idempotency_key, job_name, job_args, last_run_at, "
             "recovery_point, workflow, created_at, updated_at) VALUES ('twice', 'TestJob', "
             "'[0]', '2022-01-02 00:00:00', 'a', NULL, '2022-01-02 00:00:00', "
             "'2022-01-02 00:00:00')");
    aj_store *s = open_store();
    /* the first row ([1], finished) is the run: nothing to do; the second ([0], sorted
     * first by the index) would have been a mismatch */
    aj_workflow *wf = make_wf("a", "b", NULL);
    aj_run_params p = AJ_RUN_PARAMS_INIT;
    p.key = "twice";
    p.job_name = "TestJob";
    p.args = "[1]";
    p.args_len = 3;
    aj_run *run = NULL;
    assert_aj(aj_run_new(&run, s, wf, &p), AJ_OK);
    script sc = {0};
    assert_aj(aj_run_execute(run, script_step, &sc), AJ_OK);
    assert_int_equal(aj_run_status(run), AJ_RUN_SUCCEEDED);
    assert_string_equal(script_calls(&sc), "");
    aj_run_free(run);
    aj_workflow_free(wf);
    aj_store_free(s);
}
