/* Misuse is refused, never a duplicate or a crash; and the messages say what happened. */
#include "harness.h"
#include "tests.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>
#include <sqlite3.h>

typedef struct tx_control {
    const char *sql;
    int rc;
    int native_commit; /* commit through the native handle instead */
} tx_control;

/* When set, control_step runs it after t->sql (a savepoint's rollback). */
static const char *savepoint_rollback;

static int control_step(aj_run *run, const char *step, void *ctx) {
    tx_control *t = ctx;
    aj_store *s = aj_run_store(run);
    aj_value v = {.type = AJ_TEXT, .text = step, .len = strlen(step)};
    if (aj_store_exec(s, "INSERT INTO app_log (step) VALUES (?)", &v, 1, NULL) != AJ_OK)
        return 1;
    if (t->native_commit) {
        if (aj_store_sqlite(s)) sqlite3_exec(aj_store_sqlite(s), "COMMIT", NULL, NULL, NULL);
        else PQclear(PQexec(aj_store_pg(s), "COMMIT"));
        return 0;
    }
    t->rc = aj_store_exec(s, t->sql, NULL, 0, NULL);
    if (t->rc == AJ_OK && savepoint_rollback)
        t->rc = aj_store_exec(s, savepoint_rollback, NULL, 0, NULL);
    return 0;
}

/* A step may not end its own transaction through aj_store_exec: refused before
 * anything is sent, so the step still commits once, with the run's progress. */
void test_misuse_step_transaction_control(void **state) {
    (void)state;
    aj_store *s = open_store();
    create_app_table(s);
    const char *refused[] = {"COMMIT", "  commit;", "/* x */ ROLLBACK", "-- c\nEND",
                             "BEGIN", "START TRANSACTION", "ABORT", "rollback work"};
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        char key[16];
        snprintf(key, sizeof key, "k%zu", i);
        aj_workflow *wf = make_wf("a", NULL);
        aj_run_params p = AJ_RUN_PARAMS_INIT;
        p.key = key;
        p.job_name = "TestJob";
        aj_run *run = NULL;
        assert_aj(aj_run_new(&run, s, wf, &p), AJ_OK);
        tx_control t = {refused[i], 0, 0};
        assert_aj(aj_run_execute(run, control_step, &t), AJ_OK);
        if (t.rc != AJ_EMISUSE) fail_msg("%s was not refused", refused[i]);
        assert_int_equal(aj_run_status(run), AJ_RUN_SUCCEEDED);
        aj_run_free(run);
        aj_workflow_free(wf);
    }
    assert_int_equal(app_rows(s, NULL), (int64_t)(sizeof refused / sizeof refused[0]));
    /* a savepoint's rollback is the step's own business, however it is spelled (found by
     * tests/reliability's control fuzzer: ROLLBACK TRANSACTION TO was refused) */
    const char *allowed[] = {"ROLLBACK TO sp", "rollback to savepoint sp",
                             "/* x */ ROLLBACK TRANSACTION TO SAVEPOINT sp"};
    for (size_t i = 0; i < sizeof allowed / sizeof allowed[0]; i++) {
        char key[16];
        snprintf(key, sizeof key, "sp%zu", i);
        aj_workflow *wf = make_wf("a", NULL);
        aj_run_params p = AJ_RUN_PARAMS_INIT;
        p.key = key;
        p.job_name = "TestJob";
        aj_run *run = NULL;
        assert_aj(aj_run_new(&run, s, wf, &p), AJ_OK);
        tx_control t = {"SAVEPOINT sp", 0, 0};
        savepoint_rollback = allowed[i];
        assert_aj(aj_run_execute(run, control_step, &t), AJ_OK);
        savepoint_rollback = NULL;
        if (t.rc != AJ_OK)
            fail_msg("%s was refused: %s", allowed[i], aj_code_name(t.rc));
        assert_int_equal(aj_run_status(run), AJ_RUN_SUCCEEDED);
        aj_run_free(run);
        aj_workflow_free(wf);
    }
    /* outside a step the same statements are the application's business */
    assert_aj(aj_store_exec(s, "BEGIN", NULL, 0, NULL), AJ_OK);
    assert_aj(aj_store_exec(s, "ROLLBACK", NULL, 0, NULL), AJ_OK);
    aj_store_free(s);
}

/* A step that commits through the native handle anyway is caught before the core would
 * commit: the failure is recorded, the lock released. */
void test_misuse_step_commits_natively(void **state) {
    (void)state;
    aj_store *s = open_store();
    create_app_table(s);
    aj_workflow *wf = make_wf("a", "b", NULL);
    aj_run_params p = AJ_RUN_PARAMS_INIT;
    p.key = "k";
    p.job_name = "TestJob";
    aj_run *run = NULL;
    assert_aj(aj_run_new(&run, s, wf, &p), AJ_OK);
    script first = {0};
    assert_aj(aj_run_step(run, script_step, &first), AJ_OK);
    tx_control t = {NULL, 0, 1};
    aj_error_clear();
    assert_aj(aj_run_step(run, control_step, &t), AJ_EMISUSE);
    assert_non_null(strstr(aj_error_last()->message, "ended its transaction itself"));
    assert_int_equal(aj_run_status(run), AJ_RUN_FAILED);
    assert_int_equal(key_locked(s, "k"), 0);
    char *err = key_error(s, "k");
    assert_non_null(err);
    assert_non_null(strstr(err, "AJ_EMISUSE"));
    free(err);
    aj_run_free(run);
    aj_workflow_free(wf);
    aj_store_free(s);
}

/* A key names one run of one job. */
void test_misuse_key_of_another_job(void **state) {
    (void)state;
    aj_store *s = open_store();
    aj_workflow *wf = make_wf("a", NULL);
    aj_run_params p = AJ_RUN_PARAMS_INIT;
    p.key = "shared";
    p.job_name = "JobA";
    aj_run *run = NULL;
    assert_aj(aj_run_new(&run, s, wf, &p), AJ_OK);
    script sc = {0};
    assert_aj(aj_run_execute(run, script_step, &sc), AJ_OK);
    aj_run_free(run);
    p.job_name = "JobB";
    assert_aj(aj_run_new(&run, s, wf, &p), AJ_OK);
    sc.ncalls = 0;
    assert_aj(aj_run_execute(run, script_step, &sc), AJ_EMISMATCH);
    assert_non_null(strstr(aj_error_last()->message, "\"JobA\""));
    assert_non_null(strstr(aj_error_last()->message, "\"JobB\""));
    assert_int_equal(sc.ncalls, 0);
    aj_run_free(run);
    aj_store_free(s);
    /* 0.7.0 matched keys alone: with match_job_name = 0, JobB finds JobA's finished run */
    aj_options o = AJ_OPTIONS_INIT;
    o.match_job_name = 0;
    assert_aj(aj_store_open(&s, test_url(), &o), AJ_OK);
    assert_aj(aj_run_new(&run, s, wf, &p), AJ_OK);
    assert_aj(aj_run_execute(run, script_step, &sc), AJ_OK);
    assert_int_equal(aj_run_status(run), AJ_RUN_SUCCEEDED);
    assert_int_equal(sc.ncalls, 0);
    aj_run_free(run);
    aj_workflow_free(wf);
    aj_store_free(s);
}

/* A C step that fails without aj_run_set_error still leaves a readable error. */
void test_misuse_failed_step_without_error(void **state) {
    (void)state;
    aj_store *s = open_store();
    aj_workflow *wf = make_wf("charge", NULL);
    aj_run *run = acquire_ok(s, wf, "k", NULL);
    script sc = {.fail_at = "charge"};
    assert_aj(aj_run_step(run, script_step, &sc), AJ_ESTEP);
    char *err = key_error(s, "k");
    assert_string_equal(err, "{\"class\":\"AJ_ESTEP\",\"message\":\"step \\\"charge\\\" failed\"}");
    free(err);
    size_t len = 0;
    assert_non_null(aj_run_error(run, &len));
    aj_run_free(run);
    aj_workflow_free(wf);
    aj_store_free(s);
}

/* Time arithmetic never overflows: "never expires" and "everything" work. */
void test_misuse_huge_durations(void **state) {
    (void)state;
    aj_options o = AJ_OPTIONS_INIT;
    o.lock_timeout_ms = INT64_MAX / 2;
    aj_store *s = NULL;
    assert_aj(aj_store_open(&s, test_url(), &o), AJ_OK);
    aj_workflow *wf = make_wf("a", "b", NULL);
    aj_run *run = acquire_ok(s, wf, "k", NULL);
    aj_run *other = NULL;
    assert_aj(acquire(&other, s, wf, "k", NULL), AJ_ELOCKED); /* a fresh lock is a lock */
    recorder rec = {0};
    aj_store_set_enqueue(s, recorder_enqueue, &rec);
    script sc = {.stage_at = "a", .n_stage = 1};
    assert_aj(aj_run_step(run, script_step, &sc), AJ_OK);
    size_t n = 9;
    rec.n = 0;
    assert_aj(aj_store_drain(s, INT64_MAX, &n), AJ_OK);
    assert_int_equal(n, 0);
    assert_aj(aj_store_drain(s, 0, &n), AJ_OK);
    assert_int_equal(n, 1);
    size_t requeued = 9;
    assert_aj(aj_store_recover(s, SIZE_MAX, &requeued, NULL), AJ_OK);
    assert_int_equal(requeued, 0);
    aj_run_free(run);
    aj_workflow_free(wf);
    aj_store_free(s);
}

/* ---- events -------------------------------------------------------------------- */

typedef struct events {
    int n;
    int type[64];
    char step[64][16];
    int64_t duration[64];
    int accepted[64];
    int code[64];
    int resumed[64];
} events;

static void on_event(void *ctx, const aj_event *e) {
    events *ev = ctx;
    assert_int_equal(e->version, AJ_EVENT_VERSION);
    if (ev->n >= 64) return;
    ev->type[ev->n] = e->type;
    snprintf(ev->step[ev->n], sizeof ev->step[0], "%s", e->step ? e->step : "");
    ev->duration[ev->n] = e->duration_us;
    ev->accepted[ev->n] = e->accepted;
    ev->code[ev->n] = e->code;
    ev->resumed[ev->n] = e->resumed;
    ev->n++;
}

static const char *event_names(const events *ev) {
    static char buf[1024];
    static const char *names[] = {"", "acquired", "skipped", "started", "committed", "failed",
                                  "finished", "staged", "enqueued", "drained", "recovered"};
    size_t used = 0;
    buf[0] = 0;
    for (int i = 0; i < ev->n; i++)
        used += (size_t)snprintf(buf + used, sizeof buf - used, "%s%s%s%s", i ? "," : "",
                                 names[ev->type[i]], ev->step[i][0] ? ":" : "", ev->step[i]);
    return buf;
}

void test_events(void **state) {
    (void)state;
    aj_store *s = open_store();
    events ev = {0};
    aj_store_set_events(s, on_event, &ev);
    recorder rec = {0};
    aj_store_set_enqueue(s, recorder_enqueue, &rec);
    aj_workflow *wf = make_wf("a", "b", NULL);
    aj_run_params p = AJ_RUN_PARAMS_INIT;
    p.key = "k";
    p.job_name = "TestJob";
    aj_run *run = NULL;
    assert_aj(aj_run_new(&run, s, wf, &p), AJ_OK);
    script sc = {.stage_at = "a", .n_stage = 1};
    assert_aj(aj_run_execute(run, script_step, &sc), AJ_OK);
    assert_string_equal(event_names(&ev),
                        "acquired:a,started:a,staged,committed:a,enqueued,started:b,committed:b,"
                        "finished");
    assert_true(ev.duration[3] > 0);
    assert_int_equal(ev.accepted[4], 1);
    aj_run_free(run);

    /* a finished run is skipped; a failing step says so */
    ev.n = 0;
    assert_aj(aj_run_new(&run, s, wf, &p), AJ_OK);
    assert_aj(aj_run_execute(run, script_step, &sc), AJ_OK);
    assert_string_equal(event_names(&ev), "skipped:FINISHED");
    aj_run_free(run);
    ev.n = 0;
    p.key = "k2";
    assert_aj(aj_run_new(&run, s, wf, &p), AJ_OK);
    script bad = {.fail_at = "a"};
    assert_aj(aj_run_execute(run, script_step, &bad), AJ_ESTEP);
    assert_string_equal(event_names(&ev), "acquired:a,started:a,failed:a");
    assert_int_equal(ev.code[2], AJ_ESTEP);
    assert_int_equal(ev.resumed[0], 0); /* a new run */
    aj_run_free(run);
    /* the failed run's next attempt resumes it */
    ev.n = 0;
    assert_aj(aj_run_new(&run, s, wf, &p), AJ_OK);
    assert_aj(aj_run_execute(run, script_step, &sc), AJ_OK);
    assert_string_equal(event_names(&ev), "acquired:a,started:a,staged,committed:a,enqueued,"
                                          "started:b,committed:b,finished");
    assert_int_equal(ev.resumed[0], 1);
    aj_run_free(run);
    /* drains report their count */
    ev.n = 0;
    assert_aj(aj_store_drain(s, 0, NULL), AJ_OK);
    assert_string_equal(event_names(&ev), "enqueued,enqueued,drained"); /* both runs' jobs */
    aj_workflow_free(wf);
    aj_store_free(s);
}
