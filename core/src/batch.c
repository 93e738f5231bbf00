/* Batches: the jobs a step awaits (fan-out), counted down by their acknowledgements
 * (fan-in). The acknowledgement that completes a batch stages the parent's
 * continuation in its own transaction, so the run resumes exactly once. */
#include "error.h"
#include "rows.h"
#include "run.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

void aj_batch_reset(aj_run *run)
{
    run->batch_id = 0;
    run->awaited = 0;
    free(run->cont_adapter);
    free(run->cont_job_name);
    free(run->cont_payload);
    run->cont_adapter = run->cont_job_name = run->cont_payload = NULL;
    run->cont_len = 0;
}

int aj_run_await(aj_run *run, const char *adapter, const char *job_name, const char *payload,
                 size_t payload_len, int64_t *id)
{
    int rc = aj_run_in_step(run, "aj_run_await");
    if (rc || (rc = aj_outbox_check_job(adapter, job_name, payload, payload_len)))
        return rc;
    const aj_step_def *step = &run->wf->steps[run->step_index];
    if (step->n_awaits == 0)
        return aj_error_set(AJ_EMISUSE, "aj_run_await: step \"%s\" declares no awaited jobs",
                            step->name);
    if (run->batch_id == 0) {
        char now[32];
        aj_format_time(aj_now_us(), now);
        aj_value params[4] = {aj_int(run->id), aj_cstr(step->name), aj_cstr(now), aj_cstr(now)};
        aj_rows rows = {0};
        if ((rc = aj_store_x(run->store, AJ_Q_BATCH_INSERT, params, 4, &rows, NULL, 0)))
            return rc;
        run->batch_id = aj_rows_int(&rows, 0, 0);
        aj_rows_clear(&rows);
    }
    if ((rc = aj_outbox_stage(run->store, run->batch_id, adapter, job_name, payload,
                              payload_len, id)))
        return rc;
    run->awaited++;
    return AJ_OK;
}

int aj_run_set_continuation(aj_run *run, const char *adapter, const char *job_name,
                            const char *payload, size_t payload_len)
{
    int rc = aj_run_in_step(run, "aj_run_set_continuation");
    if (rc || (rc = aj_outbox_check_job(adapter, job_name, payload, payload_len)))
        return rc;
    char *a = aj_strdup(adapter), *j = aj_strdup(job_name);
    char *p = aj_strndup(payload ? payload : "", payload_len);
    if (!a || !j || !p) {
        free(a);
        free(j);
        free(p);
        return aj_error_set(AJ_ENOMEM, "out of memory");
    }
    free(run->cont_adapter);
    free(run->cont_job_name);
    free(run->cont_payload);
    run->cont_adapter = a;
    run->cont_job_name = j;
    run->cont_payload = p;
    run->cont_len = payload_len;
    return AJ_OK;
}

int aj_batch_arm(aj_run *run)
{
    char now[32];
    aj_format_time(aj_now_us(), now);
    aj_value params[6] = {aj_int(run->awaited), aj_cstr(run->cont_adapter),
                          aj_cstr(run->cont_job_name), aj_text(run->cont_payload, run->cont_len),
                          aj_cstr(now), aj_int(run->batch_id)};
    return aj_store_x(run->store, AJ_Q_BATCH_ARM, params, 6, NULL, NULL, 0);
}

int aj_batch_countdown(aj_store *store, int64_t batch_id, int *completed)
{
    char now[32];
    aj_format_time(aj_now_us(), now);
    aj_value params[2] = {aj_cstr(now), aj_int(batch_id)};
    aj_rows rows = {0};
    int rc = aj_store_x(store, AJ_Q_BATCH_COUNTDOWN, params, 2, &rows, NULL, 0);
    if (rc || rows.nrows == 0 || aj_rows_int(&rows, 0, 0) != 0)
        goto out;
    /* remaining, continuation_adapter, continuation_job_name, continuation_args */
    size_t len = 0;
    const char *adapter = aj_rows_text(&rows, 0, 1, NULL);
    const char *job_name = aj_rows_text(&rows, 0, 2, NULL);
    const char *payload = aj_rows_text(&rows, 0, 3, &len);
    aj_value id = aj_int(batch_id);
    if ((rc = aj_store_x(store, AJ_Q_BATCH_DELETE, &id, 1, NULL, NULL, 0)))
        goto out;
    if (adapter && job_name &&
        (rc = aj_outbox_stage(store, 0, adapter, job_name, payload, len, NULL)))
        goto out;
    *completed = 1;
out:
    aj_rows_clear(&rows);
    return rc;
}
