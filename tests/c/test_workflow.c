/* Workflow definitions. */
#include "harness.h"
#include "tests.h"

#include <stdlib.h>
#include <string.h>

void test_workflow_definition(void **state) {
    (void)state;
    assert_aj(aj_workflow_new(NULL), AJ_EINVALID);
    aj_workflow *wf = NULL;
    assert_aj(aj_workflow_new(&wf), AJ_OK);
    assert_non_null(wf);
    assert_int_equal(aj_workflow_count(wf), 0);
    assert_null(aj_workflow_step(wf, 0));

    assert_aj(aj_workflow_add_step(wf, "charge", NULL, 0), AJ_OK);
    const char *awaits[] = {"EmailJob", "SmsJob"};
    assert_aj(aj_workflow_add_step(wf, "notify", awaits, 2), AJ_OK);

    aj_error_clear();
    assert_aj(aj_workflow_add_step(wf, "charge", NULL, 0), AJ_EDUPLICATE_STEP);
    assert_last_error(AJ_EDUPLICATE_STEP);
    assert_aj(aj_workflow_add_step(wf, "FINISHED", NULL, 0), AJ_EINVALID);
    assert_last_error(AJ_EINVALID);
    assert_aj(aj_workflow_add_step(wf, AJ_RECOVERY_POINT_FINISHED, NULL, 0), AJ_EINVALID);
    assert_aj(aj_workflow_add_step(wf, "", NULL, 0), AJ_EINVALID);
    assert_aj(aj_workflow_add_step(wf, NULL, NULL, 0), AJ_EINVALID);
    assert_aj(aj_workflow_add_step(NULL, "x", NULL, 0), AJ_EINVALID);
    assert_aj(aj_workflow_add_step(wf, "x", NULL, 1), AJ_EINVALID);
    const char *bad_awaits[] = {"EmailJob", NULL};
    assert_aj(aj_workflow_add_step(wf, "y", bad_awaits, 2), AJ_EINVALID);
    const char *empty_awaits[] = {""};
    assert_aj(aj_workflow_add_step(wf, "z", empty_awaits, 1), AJ_EINVALID);

    /* failed additions changed nothing */
    assert_int_equal(aj_workflow_count(wf), 2);
    assert_string_equal(aj_workflow_step(wf, 0), "charge");
    assert_string_equal(aj_workflow_step(wf, 1), "notify");
    assert_null(aj_workflow_step(wf, 2));
    assert_int_equal(aj_workflow_awaits_count(wf, 0), 0);
    assert_int_equal(aj_workflow_awaits_count(wf, 1), 2);
    assert_int_equal(aj_workflow_awaits_count(wf, 7), 0);
    assert_string_equal(aj_workflow_await(wf, 1, 0), "EmailJob");
    assert_string_equal(aj_workflow_await(wf, 1, 1), "SmsJob");
    assert_null(aj_workflow_await(wf, 1, 2));
    assert_null(aj_workflow_await(wf, 0, 0));

    /* names are copied */
    char name[8] = "copied";
    assert_aj(aj_workflow_add_step(wf, name, NULL, 0), AJ_OK);
    strcpy(name, "XXXXXX");
    assert_string_equal(aj_workflow_step(wf, 2), "copied");

    aj_workflow_free(wf);
    aj_workflow_free(NULL);
}

void test_workflow_empty(void **state) {
    (void)state;
    aj_store *s = open_store();
    aj_workflow *wf = NULL;
    assert_aj(aj_workflow_new(&wf), AJ_OK);
    aj_run *run = (aj_run *)(uintptr_t)0x1;
    aj_error_clear();
    assert_aj(acquire(&run, s, wf, "k", NULL), AJ_ENO_STEPS);
    assert_last_error(AJ_ENO_STEPS);
    assert_ptr_equal(run, (aj_run *)(uintptr_t)0x1);
    assert_int_equal(count_rows(s, "acidic_job_keys"), 0);
    aj_workflow_free(wf);
    aj_store_free(s);
}

/* The workflow column holds 0.7.0's JSON: every step, its awaits and the next step. */
void test_workflow_column(void **state) {
    (void)state;
    aj_store *s = open_store();
    aj_workflow *wf = NULL;
    assert_aj(aj_workflow_new(&wf), AJ_OK);
    const char *awaits[] = {"ChildJob"};
    assert_aj(aj_workflow_add_step(wf, "first", NULL, 0), AJ_OK);
    assert_aj(aj_workflow_add_step(wf, "second", awaits, 1), AJ_OK);
    aj_run *run = acquire_ok(s, wf, "wk", NULL);
    char *json = q_text(s, "SELECT workflow FROM acidic_job_keys WHERE idempotency_key = ?",
                        "wk", NULL);
    assert_non_null(json);
    assert_non_null(strstr(json, "\"first\""));
    assert_non_null(strstr(json, "\"does\""));
    assert_non_null(strstr(json, "\"then\""));
    assert_non_null(strstr(json, "\"second\""));
    assert_non_null(strstr(json, "\"ChildJob\""));
    assert_non_null(strstr(json, "\"FINISHED\""));
    free(json);
    aj_run_free(run);
    aj_workflow_free(wf);
    aj_store_free(s);
}
