/* Edge cases: re-entrant calls, SQL errors inside a step, inline queues, busy databases. */
#include "harness.h"
#include "tests.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

aj_workflow *await_wf(void);

typedef struct reentry {
    int inner_step_rc;
    int inner_execute_rc;
} reentry;

static int reentrant_step(aj_run *run, const char *step, void *ctx) {
    (void)step;
    reentry *r = ctx;
    script sc = {0};
    r->inner_step_rc = aj_run_step(run, script_step, &sc);
    r->inner_execute_rc = aj_run_execute(run, script_step, &sc);
    return sc.ncalls; /* fails the step if the inner calls ran anything */
}

void test_step_reentrant(void **state) {
    (void)state;
    aj_store *s = open_store();
    aj_workflow *wf = make_wf("a", "b", NULL);
    aj_run *run = acquire_ok(s, wf, "k", NULL);
    reentry r = {0};
    assert_aj(aj_run_step(run, reentrant_step, &r), AJ_OK);
    assert_int_equal(r.inner_step_rc, AJ_EMISUSE);
    assert_int_equal(r.inner_execute_rc, AJ_EMISUSE);
    assert_string_equal(aj_run_recovery_point(run), "b");
    aj_run_free(run);
    aj_workflow_free(wf);
    aj_store_free(s);
}

static int bad_sql_step(aj_run *run, const char *step, void *ctx) {
    (void)step;
    int *rc = ctx;
    *rc = aj_store_exec(aj_run_store(run), "INSERT INTO no_such_table VALUES (1)", NULL, 0, NULL);
    return 0; /* the callback ignores the error */
}

/* A statement of the step failed but the callback reported success. On PostgreSQL the
 * transaction is aborted: the step must not claim success, and the run must be usable. */
void test_step_sql_error(void **state) {
    (void)state;
    aj_store *s = open_store();
    create_app_table(s);
    aj_workflow *wf = make_wf("a", "b", NULL);
    aj_run *run = acquire_ok(s, wf, "k", NULL);
    int inner = 0;
    int rc = aj_run_step(run, bad_sql_step, &inner);
    assert_int_equal(inner, AJ_EDATABASE);
    char *rp = key_recovery_point(s, "k");
    if (g_db == DB_POSTGRES) {
        /* the commit cannot succeed in an aborted transaction */
        assert_int_not_equal(rc, AJ_OK);
        assert_string_equal(rp, "a");
        assert_string_equal(aj_run_recovery_point(run), "a");
    } else {
        /* SQLite keeps the transaction: the step commits */
        assert_aj(rc, AJ_OK);
        assert_string_equal(rp, "b");
    }
    free(rp);
    /* either way the store and the run go on working */
    script sc = {.write_app = 1};
    if (aj_run_status(run) == AJ_RUN_READY) {
        assert_aj(aj_run_execute(run, script_step, &sc), AJ_OK);
    } else {
        aj_run_free(run);
        run = acquire_ok(s, wf, "k", NULL);
        assert_aj(aj_run_execute(run, script_step, &sc), AJ_OK);
    }
    assert_int_equal(aj_run_status(run), AJ_RUN_SUCCEEDED);
    assert_int_equal(app_rows(s, "b"), 1);
    aj_run_free(run);
    aj_workflow_free(wf);
    aj_store_free(s);
}

/* An inline queue (ActiveJob's :inline adapter, Sidekiq::Testing.inline!) performs the
 * job inside the enqueue callback, and so acknowledges it from there. */
typedef struct inline_queue {
    aj_store *store;
    int pushed;
    int ack_failures;
    int completed;
    char last_job[64];
} inline_queue;

static int inline_enqueue(void *ctx, const aj_staged_job *job) {
    inline_queue *q = ctx;
    q->pushed++;
    snprintf(q->last_job, sizeof q->last_job, "%s", job->job_name);
    int completed = 0;
    if (aj_staged_ack(q->store, job->id, &completed) != AJ_OK) q->ack_failures++;
    q->completed += completed;
    return 0;
}

void test_inline_queue(void **state) {
    (void)state;
    aj_store *s = open_store();
    inline_queue q = {.store = s};
    aj_store_set_enqueue(s, inline_enqueue, &q);
    aj_workflow *wf = await_wf();
    aj_run *run = acquire_ok(s, wf, "k", NULL);
    script sc = {.await_at = "fan_out", .n_await = 3};
    assert_aj(aj_run_step(run, script_step, &sc), AJ_OK);
    assert_int_equal(sc.api_rc, AJ_OK);
    /* three children, then the continuation they completed */
    assert_int_equal(q.ack_failures, 0);
    assert_int_equal(q.completed, 1);
    assert_int_equal(q.pushed, 4);
    assert_string_equal(q.last_job, "ContinueJob");
    assert_int_equal(count_rows(s, "staged_acidic_jobs"), 0);
    assert_int_equal(count_rows(s, "acidic_job_batches"), 0);
    aj_run_free(run);
    run = acquire_ok(s, wf, "k", NULL);
    assert_int_equal(aj_run_status(run), AJ_RUN_READY);
    assert_string_equal(aj_run_recovery_point(run), "fan_in");
    aj_run_free(run);
    aj_workflow_free(wf);
    aj_store_free(s);
}

/* SQLite: another connection holds the write lock longer than the busy timeout. */
void test_sqlite_busy(void **state) {
    (void)state;
    aj_options o = AJ_OPTIONS_INIT;
    o.busy_timeout_ms = 20;
    o.conflict_retries = 2;
    aj_store *s = NULL;
    assert_aj(aj_store_open(&s, test_url(), &o), AJ_OK);
    aj_workflow *wf = make_wf("a", "b", NULL);

    sqlite3 *other = NULL;
    assert_int_equal(sqlite3_open(test_sqlite_path(), &other), SQLITE_OK);
    assert_int_equal(sqlite3_exec(other, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    aj_run *run = (aj_run *)(uintptr_t)0x1;
    aj_error_clear();
    assert_aj(acquire(&run, s, wf, "k", NULL), AJ_ECONFLICT);
    assert_last_error(AJ_ECONFLICT);
    /* it waited out its busy timeout, and says so */
    if (!strstr(aj_error_last()->message, "gave up after waiting"))
        fail_msg("no wait reported: %s", aj_error_last()->message);
    assert_ptr_equal(run, (aj_run *)(uintptr_t)0x1);
    assert_int_equal(sqlite3_exec(other, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);

    /* the lock is gone: the same calls work, and a step blocked the same way fails
     * without committing anything (SQLite takes the lock last, so the callback ran
     * once per try) and leaves the run ready for another try */
    run = acquire_ok(s, wf, "k", NULL);
    assert_int_equal(sqlite3_exec(other, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    script sc = {0};
    assert_aj(aj_run_step(run, script_step, &sc), AJ_ECONFLICT);
    assert_non_null(strstr(aj_error_last()->message, "one writer at a time"));
    assert_true(sc.ncalls >= 1);
    assert_int_equal(sqlite3_exec(other, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    assert_string_equal(aj_run_recovery_point(run), "a");
    assert_int_equal(aj_run_status(run), AJ_RUN_READY);
    script again = {0};
    assert_aj(aj_run_execute(run, script_step, &again), AJ_OK);
    assert_string_equal(script_calls(&again), "a,b");
    sqlite3_close(other);
    aj_run_free(run);
    aj_workflow_free(wf);
    aj_store_free(s);
}

/* A failure after another worker took the run over records nothing and says so. */
void test_fail_after_takeover(void **state)
{
    (void)state;
    aj_store *s = open_store();
    aj_workflow *wf = make_wf("a", "b", NULL);
    aj_run *run = acquire_ok(s, wf, "takeover", "[1]");
    /* Another worker's acquisition after the lock timeout writes its own lock token. */
    q_exec(s, "UPDATE acidic_job_keys SET locked_at = ? WHERE idempotency_key = ?",
           "2001-02-03 04:05:06.000000", "takeover");
    script sc = {.fail_at = "a", .error_doc = "{\"e\":1}"};
    int rc = aj_run_step(run, script_step, &sc);
    if (g_db == DB_POSTGRES) {
        /* PostgreSQL claims first: it stops before the callback */
        assert_aj(rc, AJ_ELOCKED);
        assert_int_equal(sc.ncalls, 0);
    } else {
        /* SQLite claims last: the callback ran and failed, the failure was not recorded */
        assert_aj(rc, AJ_ESTEP);
        assert_non_null(strstr(aj_error_last()->message, "not recorded"));
    }
    assert_null(key_error(s, "takeover"));
    assert_int_equal(key_locked(s, "takeover"), 1);
    char *rp = key_recovery_point(s, "takeover");
    assert_string_equal(rp, "a");
    free(rp);
    aj_run_free(run);
    aj_workflow_free(wf);
    aj_store_free(s);
}
