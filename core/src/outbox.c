/* The transactional outbox: jobs staged in a step's transaction, delivered to the
 * queue after commit, acknowledged (deleted) once performed, and drained when a
 * process died between commit and delivery. */
#include "error.h"
#include "rows.h"
#include "run.h"
#include "util.h"

#include <stdlib.h>
#include <stdio.h>
#include <string.h>

/* Insert a staged row in the open transaction and remember it for delivery. */
int aj_outbox_stage(aj_store *store, int64_t batch_id, const char *adapter,
                    const char *job_name, const char *payload, size_t payload_len,
                    int64_t *id)
{
    char now[32];
    aj_format_time(aj_now_us(), now);
    aj_value params[6] = {aj_cstr(adapter), aj_cstr(job_name),
                          aj_text(payload ? payload : "", payload_len),
                          batch_id ? aj_int(batch_id) : aj_text(NULL, 0), aj_cstr(now),
                          aj_cstr(now)};
    aj_rows rows = {0};
    int rc = aj_store_x(store, AJ_Q_STAGE, params, 6, &rows, NULL, 0);
    int64_t new_id = rc ? 0 : aj_rows_int(&rows, 0, 0);
    aj_rows_clear(&rows);
    if (rc)
        return rc;
    if ((rc = aj_store_add_pending(store, new_id, adapter, job_name, payload, payload_len)))
        return rc;
    if (id)
        *id = new_id;
    return AJ_OK;
}

int aj_outbox_check_job(const char *adapter, const char *job_name, const char *payload,
                        size_t payload_len)
{
    int rc;
    if ((rc = aj_check_name(adapter, "adapter")) || (rc = aj_check_name(job_name, "job name")))
        return rc;
    return aj_check_doc(payload, payload_len, "payload");
}

int aj_run_stage(aj_run *run, const char *adapter, const char *job_name, const char *payload,
                 size_t payload_len, int64_t *id)
{
    int rc = aj_run_in_step(run, "aj_run_stage");
    if (rc || (rc = aj_outbox_check_job(adapter, job_name, payload, payload_len)))
        return rc;
    return aj_outbox_stage(run->store, 0, adapter, job_name, payload, payload_len, id);
}

/* One acknowledgement inside the open transaction. */
static int ack_in_tx(aj_store *store, int64_t staged_id, int *completed)
{
    aj_rows rows = {0};
    aj_value id = aj_int(staged_id);
    int rc = aj_store_x(store, AJ_Q_STAGED_DELETE, &id, 1, &rows, NULL, 0);
    if (rc)
        return rc;
    int64_t batch_id = rows.nrows ? aj_rows_int(&rows, 0, 0) : 0;
    aj_rows_clear(&rows);
    /* Only the acknowledgement that really deleted the row counts the batch down, so
     * a duplicate never counts twice. */
    return batch_id ? aj_batch_countdown(store, batch_id, completed) : AJ_OK;
}

int aj_staged_ack(aj_store *store, int64_t staged_id, int *completed_batch)
{
    int rc = aj_store_usable(store, "aj_staged_ack");
    if (rc)
        return rc;
    if (staged_id <= 0)
        return aj_error_set(AJ_EINVALID, "aj_staged_ack: staged job id must be positive");
    if (store->borrowed) {
        int completed = 0;
        if ((rc = ack_in_tx(store, staged_id, &completed)))
            return rc;
        if (completed_batch)
            *completed_batch = completed;
        return AJ_OK;
    }
    for (int attempt = 0;; attempt++) {
        int completed = 0;
        if ((rc = aj_store_tx(store, AJ_TX_BEGIN_IMMEDIATE)) == AJ_OK &&
            (rc = ack_in_tx(store, staged_id, &completed)) == AJ_OK &&
            (rc = aj_store_tx(store, AJ_TX_COMMIT)) == AJ_OK) {
            aj_store_deliver_pending(store);
            if (completed_batch)
                *completed_batch = completed;
            return AJ_OK;
        }
        aj_saved_error err;
        aj_error_save(&err);
        store->drv->tx(store->conn, AJ_TX_ROLLBACK);
        aj_store_drop_pending(store);
        if (err.code != AJ_ECONFLICT || attempt >= store->opts.conflict_retries)
            return aj_error_restore(&err);
    }
}

/* One page of the drain inside the open transaction. */
static int drain_page(aj_store *store, const char *cutoff, size_t *delivered, int *more)
{
    aj_rows rows = {0};
    aj_value c = aj_cstr(cutoff);
    int rc = aj_store_x(store, AJ_Q_DRAIN_SELECT, &c, 1, &rows, NULL, 0);
    if (rc)
        return rc;
    size_t accepted = 0;
    char now[32];
    aj_format_time(aj_now_us(), now);
    for (size_t r = 0; r < rows.nrows && rc == AJ_OK; r++) {
        size_t len = 0;
        const char *payload = aj_rows_text(&rows, r, 3, &len);
        const char *adapter = aj_rows_text(&rows, r, 1, NULL);
        const char *job_name = aj_rows_text(&rows, r, 2, NULL);
        aj_staged_job job = {aj_rows_int(&rows, r, 0), adapter ? adapter : "",
                             job_name ? job_name : "", payload ? payload : "", len};
        if (store->enqueue(store->enqueue_ctx, &job) != 0)
            continue; /* stays due; the next drain tries again */
        aj_value touch[2] = {aj_cstr(now), aj_int(job.id)};
        rc = aj_store_x(store, AJ_Q_DRAIN_TOUCH, touch, 2, NULL, NULL, 0);
        accepted++;
    }
    *more = rows.nrows == 100 && accepted > 0;
    *delivered += accepted;
    aj_rows_clear(&rows);
    return rc;
}

int aj_store_drain(aj_store *store, int64_t older_than_ms, size_t *delivered)
{
    int rc = aj_store_usable(store, "aj_store_drain");
    if (rc)
        return rc;
    if (older_than_ms < 0)
        return aj_error_set(AJ_EINVALID, "aj_store_drain: the age must not be negative");
    if (!store->enqueue)
        return aj_error_set(AJ_EMISUSE, "aj_store_drain: set an enqueue callback first "
                                        "(aj_store_set_enqueue)");
    char cutoff[32];
    aj_format_time(aj_now_us() - older_than_ms * 1000, cutoff);
    size_t count = 0;
    int more = 1;
    while (more) {
        if (!store->borrowed && (rc = aj_store_tx(store, AJ_TX_BEGIN_IMMEDIATE)))
            break;
        rc = drain_page(store, cutoff, &count, &more);
        if (store->borrowed)
            break;
        if (rc == AJ_OK)
            rc = aj_store_tx(store, AJ_TX_COMMIT);
        if (rc) {
            aj_saved_error err;
            aj_error_save(&err);
            store->drv->tx(store->conn, AJ_TX_ROLLBACK);
            aj_error_restore(&err);
            break;
        }
    }
    if (delivered)
        *delivered = count;
    return rc;
}
