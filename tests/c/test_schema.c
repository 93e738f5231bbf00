/* The storage schema of docs/decisions/001-storage-schema.md: 0.7.0 tables upgraded in
 * place, UTC timestamps in ActiveRecord's format, the unique index, options. */
#include "harness.h"
#include "tests.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *SQLITE_070[] = {
    "CREATE TABLE acidic_job_keys (id integer PRIMARY KEY AUTOINCREMENT NOT NULL, "
    "idempotency_key varchar NOT NULL, job_name varchar NOT NULL, job_args text, "
    "last_run_at datetime DEFAULT CURRENT_TIMESTAMP NOT NULL, locked_at datetime, "
    "recovery_point varchar NOT NULL, error_object text, attr_accessors text, workflow text, "
    "created_at datetime(6) NOT NULL, updated_at datetime(6) NOT NULL)",
    "CREATE UNIQUE INDEX idx_acidic_job_keys_on_idempotency_key_n_job_name_n_job_args "
    "ON acidic_job_keys (idempotency_key, job_name, job_args)",
    "CREATE TABLE staged_acidic_jobs (id integer PRIMARY KEY AUTOINCREMENT NOT NULL, "
    "adapter varchar NOT NULL, job_name varchar NOT NULL, job_args text, "
    "created_at datetime(6) NOT NULL, updated_at datetime(6) NOT NULL)",
    NULL};

static const char *PG_070[] = {
    "CREATE TABLE acidic_job_keys (id bigserial PRIMARY KEY, "
    "idempotency_key character varying NOT NULL, job_name character varying NOT NULL, "
    "job_args text, last_run_at timestamp(6) without time zone DEFAULT CURRENT_TIMESTAMP NOT NULL, "
    "locked_at timestamp(6) without time zone, recovery_point character varying NOT NULL, "
    "error_object text, attr_accessors text, workflow text, "
    "created_at timestamp(6) without time zone NOT NULL, "
    "updated_at timestamp(6) without time zone NOT NULL)",
    "CREATE UNIQUE INDEX idx_acidic_job_keys_on_idempotency_key_n_job_name_n_job_args "
    "ON acidic_job_keys (idempotency_key, job_name, job_args)",
    "CREATE TABLE staged_acidic_jobs (id bigserial PRIMARY KEY, "
    "adapter character varying NOT NULL, job_name character varying NOT NULL, job_args text, "
    "created_at timestamp(6) without time zone NOT NULL, "
    "updated_at timestamp(6) without time zone NOT NULL)",
    NULL};

static int index_exists(aj_store *s, const char *name) {
    if (g_db == DB_SQLITE)
        return q_int(s, "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name = ?",
                     name, NULL) == 1;
    return q_int(s, "SELECT COUNT(*) FROM pg_indexes WHERE schemaname = current_schema() "
                    "AND indexname = ?",
                 name, NULL) == 1;
}

/* An application created its tables with 0.7.0's generator and has rows in them. */
void test_upgrade_from_070(void **state) {
    (void)state;
    /* the application's tables, made by 0.7.0's migrations, before the core ever ran */
    const char **ddl = g_db == DB_SQLITE ? SQLITE_070 : PG_070;
    for (int i = 0; ddl[i]; i++) raw_exec(ddl[i]);
    raw_exec("INSERT INTO acidic_job_keys (idempotency_key, job_name, job_args, last_run_at, "
             "locked_at, recovery_point, error_object, attr_accessors, workflow, created_at, "
             "updated_at) VALUES ('old-1', 'TestJob', '[1]', '2022-01-01 00:00:00.000000', NULL, "
             "'b', NULL, '--- {}\n', '---\na:\n  does: a\n  awaits: []\n  then: b\n', "
             "'2022-01-01 00:00:00.000000', '2022-01-01 00:00:00.000000')");
    raw_exec("INSERT INTO staged_acidic_jobs (adapter, job_name, job_args, created_at, updated_at) "
             "VALUES ('sidekiq', 'OldWorker', '[1, 2]', '2022-01-01 00:00:00.000000', "
             "'2022-01-01 00:00:00.000000')");

    aj_store *s = open_store();
    assert_true(table_exists(s, "acidic_job_batches"));
    assert_true(table_exists(s, "acidic_job_schema"));
    q_exec(s, "SELECT batch_id FROM staged_acidic_jobs", NULL, NULL);
    assert_true(index_exists(s, "idx_acidic_job_keys_on_idempotency_key_n_job_name_n_job_args"));
    /* the rows are untouched */
    assert_int_equal(count_rows(s, "acidic_job_keys"), 1);
    char *rp = key_recovery_point(s, "old-1");
    assert_string_equal(rp, "b");
    free(rp);
    char *attrs = key_attributes(s, "old-1");
    assert_string_equal(attrs, "--- {}\n");
    free(attrs);

    /* the 0.7.0 run resumes where it stopped */
    aj_workflow *wf = make_wf("a", "b", "c", NULL);
    aj_run *run = acquire_ok(s, wf, "old-1", "[1]");
    assert_int_equal(aj_run_status(run), AJ_RUN_READY);
    assert_string_equal(aj_run_recovery_point(run), "b");
    script sc = {0};
    assert_aj(aj_run_execute(run, script_step, &sc), AJ_OK);
    assert_string_equal(script_calls(&sc), "b,c");
    assert_int_equal(aj_run_status(run), AJ_RUN_SUCCEEDED);
    aj_run_free(run);

    /* the 0.7.0 staged job (never pushed) is delivered by a drain */
    recorder rec = {0};
    aj_store_set_enqueue(s, recorder_enqueue, &rec);
    size_t delivered = 0;
    assert_aj(aj_store_drain(s, 60000, &delivered), AJ_OK);
    assert_int_equal(delivered, 1);
    assert_string_equal(rec.adapter[0], "sidekiq");
    assert_string_equal(rec.job_name[0], "OldWorker");
    assert_string_equal(rec.payload[0], "[1, 2]");
    assert_aj(aj_staged_ack(s, rec.ids[0], NULL), AJ_OK);
    assert_int_equal(count_rows(s, "staged_acidic_jobs"), 0);

    /* opening again changes nothing */
    aj_store_free(s);
    s = open_store();
    assert_int_equal(count_rows(s, "acidic_job_schema"), 1);
    aj_workflow_free(wf);
    aj_store_free(s);
}

#define TS_GLOB                                                                            \
    "[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9] [0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9]" \
    "[0-9][0-9][0-9]"

/* Timestamps are UTC, in ActiveRecord's text format on SQLite and timestamp(6) without
 * time zone on PostgreSQL, whatever the process's or the session's time zone. */
void test_timestamps_utc(void **state) {
    (void)state;
    const char *old_tz = getenv("TZ");
    char *saved_tz = old_tz ? strdup(old_tz) : NULL;
    setenv("TZ", "Asia/Tokyo", 1); /* UTC+9, no daylight saving */
    tzset();

    char url[1200];
    if (g_db == DB_POSTGRES)
        snprintf(url, sizeof url, "%s%%20-ctimezone%%3DAsia/Tokyo", test_url());
    else
        snprintf(url, sizeof url, "%s", test_url());
    aj_store *s = NULL;
    int rc = aj_store_open(&s, url, NULL);
    if (rc != AJ_OK) fail_msg("open %s: %s", url, aj_error_last()->message);
    aj_workflow *wf = make_wf("a", "b", NULL);
    aj_run *run = acquire_ok(s, wf, "k", NULL);
    script sc = {.stage_at = "a", .n_stage = 1};
    assert_aj(aj_run_step(run, script_step, &sc), AJ_OK);

    if (g_db == DB_SQLITE) {
        assert_int_equal(q_int(s, "SELECT COUNT(*) FROM acidic_job_keys WHERE locked_at GLOB ? "
                                  "AND last_run_at GLOB ? ",
                               TS_GLOB, TS_GLOB),
                         1);
        assert_int_equal(q_int(s, "SELECT COUNT(*) FROM acidic_job_keys WHERE created_at GLOB ? "
                                  "AND updated_at GLOB ? ",
                               TS_GLOB, TS_GLOB),
                         1);
        assert_int_equal(q_int(s, "SELECT COUNT(*) FROM staged_acidic_jobs WHERE created_at GLOB ? "
                                  "AND updated_at GLOB ?",
                               TS_GLOB, TS_GLOB),
                         1);
        /* UTC: within ten minutes of SQLite's own UTC clock (Tokyo is nine hours off) */
        assert_int_equal(q_int(s, "SELECT COUNT(*) FROM acidic_job_keys WHERE "
                                  "abs(julianday(locked_at) - julianday('now')) * 1440 < 10 "
                                  "AND abs(julianday(created_at) - julianday('now')) * 1440 < 10 "
                                  "AND abs(julianday(updated_at) - julianday('now')) * 1440 < 10",
                               NULL, NULL),
                         1);
    } else {
        assert_int_equal(q_int(s, "SELECT COUNT(*) FROM information_schema.columns WHERE "
                                  "table_schema = current_schema() AND table_name = 'acidic_job_keys' "
                                  "AND column_name IN ('last_run_at', 'locked_at', 'created_at', "
                                  "'updated_at') AND data_type = 'timestamp without time zone'",
                               NULL, NULL),
                         4);
        assert_int_equal(q_int(s, "SELECT COUNT(*) FROM acidic_job_keys WHERE "
                                  "abs(extract(epoch FROM (locked_at - (now() AT TIME ZONE 'UTC')))) "
                                  "< 600 AND abs(extract(epoch FROM (created_at - (now() AT TIME "
                                  "ZONE 'UTC')))) < 600",
                               NULL, NULL),
                         1);
        assert_int_equal(q_int(s, "SELECT COUNT(*) FROM staged_acidic_jobs WHERE "
                                  "abs(extract(epoch FROM (created_at - (now() AT TIME ZONE 'UTC')))) "
                                  "< 600",
                               NULL, NULL),
                         1);
    }
    aj_run_free(run);
    aj_workflow_free(wf);
    aj_store_free(s);
    if (saved_tz) {
        setenv("TZ", saved_tz, 1);
        free(saved_tz);
    } else {
        unsetenv("TZ");
    }
    tzset();
}

void test_unique_index(void **state) {
    (void)state;
    aj_store *s = open_store();
    /* SQLite: 0.7.0's index; PostgreSQL: over md5(job_args), which takes any size */
    assert_true(index_exists(s, g_db == DB_SQLITE
                                    ? "idx_acidic_job_keys_on_idempotency_key_n_job_name_n_job_args"
                                    : "idx_acidic_job_keys_on_key_n_job_name_n_md5_job_args"));
    aj_workflow *wf = make_wf("a", NULL);
    aj_run *run = acquire_ok(s, wf, "k", "[1]");
    aj_run_free(run);
    /* the index refuses a second row for the same key, name and arguments */
    aj_rows *rows = NULL;
    int rc = aj_store_exec(s,
                           "INSERT INTO acidic_job_keys (idempotency_key, job_name, job_args, "
                           "last_run_at, recovery_point, created_at, updated_at) "
                           "SELECT idempotency_key, job_name, job_args, last_run_at, "
                           "recovery_point, created_at, updated_at FROM acidic_job_keys",
                           NULL, 0, &rows);
    assert_int_not_equal(rc, AJ_OK);
    assert_int_equal(count_rows(s, "acidic_job_keys"), 1);
    aj_workflow_free(wf);
    aj_store_free(s);
}

void test_sqlite_options(void **state) {
    (void)state;
    aj_options o = AJ_OPTIONS_INIT;
    o.synchronous = AJ_SYNC_NORMAL;
    o.busy_timeout_ms = 1234;
    aj_store *s = NULL;
    assert_aj(aj_store_open(&s, test_url(), &o), AJ_OK);
    {
        assert_int_equal(q_int(s, "PRAGMA synchronous", NULL, NULL), 1);
        assert_int_equal(q_int(s, "PRAGMA busy_timeout", NULL, NULL), 1234);
        char *mode = q_text(s, "PRAGMA journal_mode", NULL, NULL);
        assert_string_equal(mode, "wal");
        free(mode);
        aj_store_free(s);
        aj_options_init(&o, AJ_OPTIONS_VERSION);
        s = NULL;
        assert_aj(aj_store_open(&s, test_url(), &o), AJ_OK);
        assert_int_equal(q_int(s, "PRAGMA synchronous", NULL, NULL), 2); /* FULL */
        assert_int_equal(q_int(s, "PRAGMA busy_timeout", NULL, NULL), 5000);
    }
    aj_store_free(s);
}

/* The run's row disappeared (deleted by hand): the step stops with AJ_ENOTFOUND. */
void test_run_row_deleted(void **state) {
    (void)state;
    aj_store *s = open_store();
    aj_workflow *wf = make_wf("a", "b", NULL);
    aj_run *run = acquire_ok(s, wf, "k", NULL);
    q_exec(s, "DELETE FROM acidic_job_keys", NULL, NULL);
    script sc = {0};
    assert_aj(aj_run_step(run, script_step, &sc), AJ_ENOTFOUND);
    assert_int_equal(sc.ncalls, owned_claims_first() ? 0 : 1);
    assert_int_equal(count_rows(s, "acidic_job_keys"), 0);
    aj_run_free(run);
    aj_workflow_free(wf);
    aj_store_free(s);
}
