/* Awaited jobs (fan-out / fan-in through batches). */
#include "harness.h"
#include "tests.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

aj_workflow *await_wf(void) {
    aj_workflow *wf = NULL;
    assert_aj(aj_workflow_new(&wf), AJ_OK);
    const char *awaits[] = {"ChildJob"};
    assert_aj(aj_workflow_add_step(wf, "fan_out", awaits, 1), AJ_OK);
    assert_aj(aj_workflow_add_step(wf, "fan_in", NULL, 0), AJ_OK);
    return wf;
}

static int64_t continuations(aj_store *s) {
    return q_int(s, "SELECT COUNT(*) FROM staged_acidic_jobs WHERE job_name = 'ContinueJob'",
                 NULL, NULL);
}

void test_await_countdown(void **state) {
    (void)state;
    aj_store *s = open_store();
    create_app_table(s);
    recorder rec = {0};
    aj_store_set_enqueue(s, recorder_enqueue, &rec);
    aj_workflow *wf = await_wf();
    aj_run *run = acquire_ok(s, wf, "k", NULL);
    script sc = {.write_app = 1, .await_at = "fan_out", .n_await = 3};
    assert_aj(aj_run_execute(run, script_step, &sc), AJ_OK);
    assert_int_equal(sc.api_rc, AJ_OK);
    assert_string_equal(script_calls(&sc), "fan_out");
    assert_aj(aj_run_status(run), AJ_RUN_AWAITING);
    aj_run_free(run);

    /* the children were staged with the step and handed to the queue */
    assert_int_equal(rec.n, 3);
    for (int i = 0; i < 3; i++) {
        char payload[8];
        snprintf(payload, sizeof payload, "c%d", i);
        assert_int_equal(rec.ids[i], sc.ids[i]);
        assert_string_equal(rec.adapter[i], "sidekiq");
        assert_string_equal(rec.job_name[i], "ChildJob");
        assert_string_equal(rec.payload[i], payload);
    }
    assert_int_equal(count_rows(s, "acidic_job_batches"), 1);
    assert_int_equal(q_int(s, "SELECT remaining FROM acidic_job_batches", NULL, NULL), 3);
    assert_int_equal(q_int(s, "SELECT COUNT(*) FROM staged_acidic_jobs WHERE batch_id IS NOT NULL",
                           NULL, NULL),
                     3);
    assert_int_equal(continuations(s), 0);
    assert_int_equal(key_locked(s, "k"), 0);

    /* while awaiting, acquiring runs nothing and locks nothing */
    run = acquire_ok(s, wf, "k", NULL);
    assert_aj(aj_run_status(run), AJ_RUN_AWAITING);
    script none = {.write_app = 1};
    assert_aj(aj_run_execute(run, script_step, &none), AJ_OK);
    assert_int_equal(none.ncalls, 0);
    assert_int_equal(key_locked(s, "k"), 0);
    aj_run_free(run);

    int completed = 7;
    assert_aj(aj_staged_ack(s, sc.ids[0], &completed), AJ_OK);
    assert_int_equal(completed, 0);
    /* what is left of the batch: its staged children (no counter row to queue behind) */
    const char *left = "SELECT COUNT(*) FROM staged_acidic_jobs WHERE batch_id IS NOT NULL";
    assert_int_equal(q_int(s, left, NULL, NULL), 2);
    assert_int_equal(q_int(s, "SELECT remaining FROM acidic_job_batches", NULL, NULL), 3);
    /* a duplicate acknowledgement does not count twice */
    completed = 7;
    assert_aj(aj_staged_ack(s, sc.ids[0], &completed), AJ_OK);
    assert_int_equal(completed, 0);
    assert_int_equal(q_int(s, left, NULL, NULL), 2);
    assert_aj(aj_staged_ack(s, sc.ids[1], &completed), AJ_OK);
    assert_int_equal(completed, 0);
    run = acquire_ok(s, wf, "k", NULL);
    assert_aj(aj_run_status(run), AJ_RUN_AWAITING);
    aj_run_free(run);
    assert_int_equal(continuations(s), 0);

    /* the last acknowledgement stages the continuation, exactly once */
    int before = rec.n;
    assert_aj(aj_staged_ack(s, sc.ids[2], &completed), AJ_OK);
    assert_int_equal(completed, 1);
    assert_int_equal(count_rows(s, "acidic_job_batches"), 0);
    assert_int_equal(continuations(s), 1);
    assert_int_equal(q_int(s, "SELECT COUNT(*) FROM staged_acidic_jobs WHERE job_name = "
                              "'ContinueJob' AND adapter = 'sidekiq' AND job_args = 'cont'",
                           NULL, NULL),
                     1);
    /* ... and hands it to the queue after the commit */
    assert_int_equal(rec.n, before + 1);
    assert_string_equal(rec.job_name[before], "ContinueJob");
    assert_string_equal(rec.adapter[before], "sidekiq");
    assert_string_equal(rec.payload[before], "cont");
    completed = 7;
    assert_aj(aj_staged_ack(s, sc.ids[2], &completed), AJ_OK);
    assert_int_equal(completed, 0);
    assert_int_equal(continuations(s), 1);
    assert_int_equal(rec.n, before + 1);

    /* the continuation resumes the run at the next step */
    run = acquire_ok(s, wf, "k", NULL);
    assert_aj(aj_run_status(run), AJ_RUN_READY);
    assert_string_equal(aj_run_recovery_point(run), "fan_in");
    assert_aj(aj_run_execute(run, script_step, &none), AJ_OK);
    assert_string_equal(script_calls(&none), "fan_in");
    assert_aj(aj_run_status(run), AJ_RUN_SUCCEEDED);
    assert_int_equal(app_rows(s, "fan_out"), 1);
    assert_int_equal(app_rows(s, "fan_in"), 1);
    aj_run_free(run);
    assert_aj(aj_staged_ack(s, rec.ids[before], NULL), AJ_OK);
    assert_int_equal(count_rows(s, "staged_acidic_jobs"), 0);
    aj_workflow_free(wf);
    aj_store_free(s);
}

void test_await_misuse(void **state) {
    (void)state;
    aj_store *s = open_store();
    /* awaiting in a step without awaits is refused */
    aj_workflow *plain = make_wf("a", "b", NULL);
    aj_run *run = acquire_ok(s, plain, "k1", NULL);
    script sc = {.await_at = "a", .n_await = 1};
    assert_aj(aj_run_step(run, script_step, &sc), AJ_OK);
    assert_true(sc.api_rc == AJ_EMISUSE || sc.api_rc == AJ_EINVALID);
    assert_int_equal(count_rows(s, "acidic_job_batches"), 0);
    assert_int_equal(count_rows(s, "staged_acidic_jobs"), 0);
    assert_aj(aj_run_status(run), AJ_RUN_READY);
    assert_string_equal(aj_run_recovery_point(run), "b");
    /* so is awaiting or setting a continuation outside a step */
    assert_aj(aj_run_await(run, "sidekiq", "ChildJob", "x", 1, NULL), AJ_EMISUSE);
    assert_aj(aj_run_set_continuation(run, "sidekiq", "ContinueJob", "x", 1), AJ_EMISUSE);
    aj_run_free(run);

    /* awaited jobs without a continuation: the step does not commit as awaiting */
    aj_workflow *wf = await_wf();
    run = acquire_ok(s, wf, "k2", NULL);
    script nocont = {.await_at = "fan_out", .n_await = 2, .no_continuation = 1};
    int rc = aj_run_step(run, script_step, &nocont);
    assert_int_not_equal(rc, AJ_OK);
    assert_int_not_equal(aj_run_status(run), AJ_RUN_AWAITING);
    assert_int_equal(count_rows(s, "acidic_job_batches"), 0);
    assert_int_equal(count_rows(s, "staged_acidic_jobs"), 0);
    char *rp = key_recovery_point(s, "k2");
    assert_string_equal(rp, "fan_out");
    free(rp);
    aj_run_free(run);

    /* a failed awaiting step leaves no batch and no children */
    run = acquire_ok(s, wf, "k3", NULL);
    script failing = {.await_at = "fan_out", .n_await = 2, .fail_at = "fan_out"};
    assert_aj(aj_run_step(run, script_step, &failing), AJ_ESTEP);
    assert_int_equal(count_rows(s, "acidic_job_batches"), 0);
    assert_int_equal(count_rows(s, "staged_acidic_jobs"), 0);
    assert_aj(aj_run_status(run), AJ_RUN_FAILED);
    aj_run_free(run);
    aj_workflow_free(wf);
    aj_workflow_free(plain);
    aj_store_free(s);
}

/* aj_run_release: the step commits, the run waits unlocked at the next step for an
 * outside batch (Sidekiq Pro) to perform it again; recovery leaves it alone. */
static int releasing_step(aj_run *run, const char *step, void *ctx) {
    (void)ctx;
    if (strcmp(step, "a") == 0) return aj_run_release(run);
    return 0;
}

void test_await_release(void **state) {
    (void)state;
    aj_options o = AJ_OPTIONS_INIT;
    o.lock_timeout_ms = 10;
    aj_store *s = NULL;
    assert_aj(aj_store_open(&s, test_url(), &o), AJ_OK);
    aj_workflow *wf = make_wf("a", "b", NULL);
    aj_run_params p = AJ_RUN_PARAMS_INIT;
    p.key = "pro";
    p.job_name = "TestJob";
    p.resume_adapter = "sidekiq";
    p.resume_job_name = "TestJob";
    aj_run *run = NULL;
    assert_aj(aj_run_new(&run, s, wf, &p), AJ_OK);
    assert_aj(aj_run_execute(run, releasing_step, NULL), AJ_OK);
    assert_int_equal(aj_run_status(run), AJ_RUN_AWAITING);
    assert_int_equal(key_locked(s, "pro"), 0);
    char *rp = key_recovery_point(s, "pro");
    assert_string_equal(rp, "b");
    free(rp);
    aj_run_free(run);
    sleep_ms(30);
    size_t requeued = 9;
    assert_aj(aj_store_recover(s, 0, &requeued, NULL), AJ_OK);
    assert_int_equal(requeued, 0);
    /* the batch's callback performs the job again: it resumes at b */
    assert_aj(aj_run_new(&run, s, wf, &p), AJ_OK);
    script sc = {0};
    assert_aj(aj_run_execute(run, script_step, &sc), AJ_OK);
    assert_string_equal(script_calls(&sc), "b");
    aj_run_free(run);
    /* outside a step it is a misuse */
    assert_aj(aj_run_release(NULL), AJ_EINVALID);
    aj_workflow_free(wf);
    aj_store_free(s);
}

/* The process of the last acknowledgement died before it looked at the batch: recovery
 * ends the batch, once. */
void test_await_recovered(void **state) {
    (void)state;
    aj_options o = AJ_OPTIONS_INIT;
    o.lock_timeout_ms = 50;
    aj_store *s = NULL;
    assert_aj(aj_store_open(&s, test_url(), &o), AJ_OK);
    recorder rec = {0};
    aj_store_set_enqueue(s, recorder_enqueue, &rec);
    aj_workflow *wf = await_wf();
    aj_run *run = acquire_ok(s, wf, "k", NULL);
    script sc = {.await_at = "fan_out", .n_await = 2};
    assert_aj(aj_run_execute(run, script_step, &sc), AJ_OK);
    aj_run_free(run);
    assert_aj(aj_staged_ack(s, sc.ids[0], NULL), AJ_OK);
    /* the second child's acknowledgement committed; its look at the batch never came */
    q_exec(s, "DELETE FROM staged_acidic_jobs WHERE batch_id IS NOT NULL", NULL, NULL);
    int before = rec.n;
    sleep_ms(100);
    assert_aj(aj_store_recover(s, 0, NULL, NULL), AJ_OK);
    assert_int_equal(rec.n, before + 1);
    assert_string_equal(rec.job_name[before], "ContinueJob");
    assert_aj(aj_store_recover(s, 0, NULL, NULL), AJ_OK);
    assert_int_equal(rec.n, before + 1);
    run = acquire_ok(s, wf, "k", NULL);
    assert_string_equal(aj_run_recovery_point(run), "fan_in");
    aj_run_free(run);
    aj_workflow_free(wf);
    aj_store_free(s);
}
