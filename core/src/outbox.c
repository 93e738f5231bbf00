/* The transactional outbox: jobs staged in a step's transaction, delivered to the
 * queue after commit, acknowledged (deleted) once performed, drained when a process
 * died between commit and delivery; and the batches of awaited jobs, which the
 * acknowledgements count down (the last one resumes the parent, exactly once). */
#include "error.h"
#include "rows.h"
#include "run.h"
#include "tx.h"
#include "util.h"

#include <stdlib.h>
#include <stdio.h>
#include <string.h>

/* --- staging ------------------------------------------------------------------ */

int aj_outbox_check_job(const char *adapter, const char *job_name, const char *payload,
                        size_t payload_len)
{
    int rc;
    if ((rc = aj_check_name(adapter, "adapter")) || (rc = aj_check_name(job_name, "job name")))
        return rc;
    return aj_check_doc(payload, payload_len, "payload");
}

int aj_outbox_stage(aj_store *store, int64_t run_id, int64_t batch_id, const char *adapter,
                    const char *job_name, const char *payload, size_t payload_len, int64_t *id)
{
    if (!id) /* inserted with the transaction's last round trip */
        return aj_store_add_pending(store, 0, batch_id, run_id, adapter, job_name, payload,
                                    payload_len);
    char now[32];
    aj_format_time(aj_now_us(), now);
    aj_value params[6] = {aj_cstr(adapter), aj_cstr(job_name),
                          aj_text(payload ? payload : "", payload_len),
                          batch_id ? aj_int(batch_id) : aj_null(), aj_cstr(now),
                          run_id ? aj_int(run_id) : aj_null()};
    aj_rows rows = {0};
    int rc = aj_store_x(store, AJ_Q_STAGE, params, 6, &rows);
    int64_t new_id = rc ? 0 : aj_rows_int(&rows, 0, 0);
    aj_rows_clear(&rows);
    if (rc)
        return rc;
    if ((rc = aj_store_add_pending(store, new_id, batch_id, run_id, adapter, job_name, payload,
                                   payload_len)))
        return rc;
    aj_event ev = {0};
    ev.type = AJ_EVENT_STAGED;
    ev.run_id = run_id;
    ev.staged_id = new_id;
    ev.adapter = adapter;
    ev.staged_job = job_name;
    aj_store_event(store, &ev);
    *id = new_id;
    return AJ_OK;
}

int aj_run_stage(aj_run *run, const char *adapter, const char *job_name, const char *payload,
                 size_t payload_len, int64_t *id)
{
    int rc = aj_run_check_in_step(run, "aj_run_stage");
    if (rc || (rc = aj_outbox_check_job(adapter, job_name, payload, payload_len)))
        return rc;
    return aj_outbox_stage(run->store, run->id, 0, adapter, job_name, payload, payload_len, id);
}

/* --- batches ---------------------------------------------------------------------- */

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
    int rc = aj_run_check_in_step(run, "aj_run_await");
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
        if ((rc = aj_store_x(run->store, AJ_Q_BATCH_INSERT, params, 4, &rows)))
            return rc;
        run->batch_id = aj_rows_int(&rows, 0, 0);
        aj_rows_clear(&rows);
    }
    if ((rc = aj_outbox_stage(run->store, run->id, run->batch_id, adapter, job_name, payload,
                              payload_len, id)))
        return rc;
    run->awaited++;
    return AJ_OK;
}

int aj_run_set_continuation(aj_run *run, const char *adapter, const char *job_name,
                            const char *payload, size_t payload_len)
{
    int rc = aj_run_check_in_step(run, "aj_run_set_continuation");
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
    return aj_store_x(run->store, AJ_Q_BATCH_ARM, params, 6, NULL);
}

/* An awaited job succeeded: count its batch down. The acknowledgement that completes
 * it stages the continuation, once: only while the run still awaits this batch. */
static int countdown(aj_store *store, int64_t batch_id, int *completed)
{
    char now[32];
    aj_format_time(aj_now_us(), now);
    aj_value params[2] = {aj_cstr(now), aj_int(batch_id)};
    aj_rows rows = {0}, matched = {0};
    int rc = aj_store_x(store, AJ_Q_BATCH_COUNTDOWN, params, 2, &rows);
    if (rc || rows.nrows == 0 || aj_rows_int(&rows, 0, 0) != 0)
        goto out;
    /* remaining, key_id, continuation_adapter, continuation_job_name, continuation_args */
    int64_t key_id = aj_rows_int(&rows, 0, 1);
    size_t len = 0;
    const char *adapter = aj_rows_text(&rows, 0, 2, NULL);
    const char *job_name = aj_rows_text(&rows, 0, 3, NULL);
    const char *payload = aj_rows_text(&rows, 0, 4, &len);
    aj_value unawait[2] = {aj_int(key_id), aj_int(batch_id)};
    aj_value id = aj_int(batch_id);
    if ((rc = aj_store_x(store, AJ_Q_KEY_UNAWAIT, unawait, 2, &matched)) ||
        (rc = aj_store_x(store, AJ_Q_BATCH_DELETE, &id, 1, NULL)))
        goto out;
    if (matched.nrows && adapter && job_name &&
        (rc = aj_outbox_stage(store, key_id, 0, adapter, job_name, payload, len, NULL)))
        goto out;
    *completed = matched.nrows > 0;
out:
    aj_rows_clear(&rows);
    aj_rows_clear(&matched);
    return rc;
}

/* --- acknowledgement -------------------------------------------------------------- */

typedef struct ack_call {
    int64_t staged_id;
    int completed;
} ack_call;

static int ack_body(aj_store *store, void *arg)
{
    ack_call *a = arg;
    aj_rows rows = {0};
    aj_value id = aj_int(a->staged_id);
    int rc = aj_store_x(store, AJ_Q_STAGED_DELETE, &id, 1, &rows);
    int64_t batch_id = rc ? 0 : aj_rows_int(&rows, 0, 0);
    aj_rows_clear(&rows);
    /* Only the acknowledgement that really deleted the row counts the batch down, so a
     * duplicate never counts twice. */
    if (rc == AJ_OK && batch_id)
        rc = countdown(store, batch_id, &a->completed);
    return rc;
}

static void ack_settle(aj_store *store, void *arg, int committed)
{
    (void)store;
    if (!committed)
        ((ack_call *)arg)->completed = 0;
}

int aj_staged_ack(aj_store *store, int64_t staged_id, int *completed_batch)
{
    int rc = aj_store_usable(store, "aj_staged_ack");
    if (rc)
        return rc;
    if (staged_id <= 0)
        return aj_error_set(AJ_EINVALID, "aj_staged_ack: staged job id must be positive");
    ack_call a = {staged_id, 0};
    /* Inside a step this joins the step's transaction. */
    if ((rc = aj_tx(store, AJ_TXF_WRITE | AJ_TXF_RETRY, ack_body, ack_settle, &a)))
        return rc;
    if (completed_batch)
        *completed_batch = a.completed;
    return AJ_OK;
}

/* --- drain -------------------------------------------------------------------------- */

typedef struct drain_row {
    int64_t id;
    char *adapter, *job_name, *payload, *old_stamp;
    size_t payload_len;
} drain_row;

typedef struct drain_page {
    const char *cutoff;
    int64_t cutoff_us;
    int64_t after;    /* keyset: the last id seen */
    size_t seen;      /* rows the page returned */
    drain_row *due;
    size_t ndue, cap;
    int restore;      /* second use: put back the stamps of refused rows */
    const size_t *refused;
    size_t nrefused;
} drain_page;

static void page_clear(drain_page *pg)
{
    for (size_t i = 0; i < pg->ndue; i++) {
        free(pg->due[i].adapter);
        free(pg->due[i].job_name);
        free(pg->due[i].payload);
        free(pg->due[i].old_stamp);
    }
    pg->ndue = 0;
}

static int take_row(drain_page *pg, const aj_rows *rows, size_t r)
{
    int rc = aj_grow((void **)&pg->due, &pg->cap, pg->ndue + 1, sizeof *pg->due);
    if (rc)
        return rc;
    size_t len = 0;
    const char *adapter = aj_rows_text(rows, r, 1, NULL);
    const char *job_name = aj_rows_text(rows, r, 2, NULL);
    const char *payload = aj_rows_text(rows, r, 3, &len);
    const char *stamp = aj_rows_text(rows, r, 4, NULL);
    drain_row d = {aj_rows_int(rows, r, 0), aj_strdup(adapter ? adapter : ""),
                   aj_strdup(job_name ? job_name : ""), aj_strndup(payload ? payload : "", len),
                   stamp ? aj_strdup(stamp) : NULL, len};
    if (!d.adapter || !d.job_name || !d.payload || (stamp && !d.old_stamp)) {
        free(d.adapter);
        free(d.job_name);
        free(d.payload);
        free(d.old_stamp);
        return aj_error_set(AJ_ENOMEM, "out of memory");
    }
    pg->due[pg->ndue++] = d;
    return AJ_OK;
}

static int drain_body(aj_store *store, void *arg)
{
    drain_page *pg = arg;
    int rc;
    if (pg->restore) {
        for (size_t i = 0; i < pg->nrefused; i++) {
            drain_row *d = &pg->due[pg->refused[i]];
            aj_value p[2] = {aj_cstr(d->old_stamp), aj_int(d->id)};
            if ((rc = aj_store_x(store, AJ_Q_DRAIN_STAMP, p, 2, NULL)))
                return rc;
        }
        return AJ_OK;
    }
    page_clear(pg);
    aj_rows rows = {0};
    aj_value q[2] = {aj_int(pg->after), aj_cstr(pg->cutoff)};
    if ((rc = aj_store_x(store, AJ_Q_DRAIN_PAGE, q, 2, &rows)))
        return rc;
    pg->seen = rows.nrows;
    char now[32];
    aj_format_time(aj_now_us(), now);
    aj_value stamp_now = aj_cstr(now);
    for (size_t r = 0; r < rows.nrows && rc == AJ_OK; r++) {
        int64_t id = aj_rows_int(&rows, r, 0);
        pg->after = id;
        const char *stamp = aj_rows_text(&rows, r, 4, NULL);
        const char *created = aj_rows_text(&rows, r, 5, NULL);
        int due = stamp != NULL; /* the query returned only stamps older than the cutoff */
        if (!stamp) {
            /* Never stamped: made outside the core (acidic_job 0.7.0's Staged model, or
             * SQL). Due by its created_at; without one, stamped now and due next time. */
            int64_t created_us;
            if (created && aj_parse_time(created, &created_us) == 0)
                due = created_us < pg->cutoff_us;
            else if (!(store->shape.bits & AJ_SHAPE_SC) || !created) {
                aj_value p[2] = {stamp_now, aj_int(id)};
                rc = aj_store_x(store, AJ_Q_DRAIN_STAMP, p, 2, NULL);
                continue;
            }
        }
        if (!due)
            continue;
        aj_value p[2] = {stamp_now, aj_int(id)};
        if ((rc = aj_store_x(store, AJ_Q_DRAIN_STAMP, p, 2, NULL)) == AJ_OK)
            rc = take_row(pg, &rows, r);
    }
    aj_rows_clear(&rows);
    return rc;
}

static void drain_settle(aj_store *store, void *arg, int committed)
{
    (void)store;
    drain_page *pg = arg;
    if (!committed && !pg->restore)
        page_clear(pg);
}

#define DRAIN_PAGE_SIZE 100 /* the LIMIT of AJ_Q_DRAIN_PAGE */

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
    if (aj_tx_active(store))
        return aj_error_set(AJ_EMISUSE, "aj_store_drain inside a step: drain between runs");
    char cutoff[32];
    int64_t cutoff_us = aj_add_ms(aj_now_us(), -older_than_ms);
    aj_format_time(cutoff_us, cutoff);
    drain_page pg = {cutoff, cutoff_us, 0, 0, NULL, 0, 0, 0, NULL, 0};
    size_t count = 0;
    size_t *refused = NULL, cap_refused = 0;
    for (;;) {
        pg.restore = 0;
        if ((rc = aj_tx(store, AJ_TXF_WRITE | AJ_TXF_RETRY, drain_body, drain_settle, &pg)))
            break;
        /* Committed: the rows are stamped as handed out. Now hand them out. */
        size_t nrefused = 0;
        for (size_t i = 0; i < pg.ndue; i++) {
            drain_row *d = &pg.due[i];
            aj_staged_job job = {d->id, d->adapter, d->job_name, d->payload, d->payload_len};
            int accepted = store->enqueue(store->enqueue_ctx, &job) == 0;
            aj_event ev = {0};
            ev.type = AJ_EVENT_ENQUEUED;
            ev.staged_id = d->id;
            ev.adapter = d->adapter;
            ev.staged_job = d->job_name;
            ev.accepted = accepted;
            aj_store_event(store, &ev);
            if (accepted) {
                count++;
            } else if ((rc = aj_grow((void **)&refused, &cap_refused, nrefused + 1,
                                     sizeof *refused)) == AJ_OK) {
                refused[nrefused++] = i;
            }
        }
        if (rc)
            break;
        if (nrefused) { /* refused rows stay due */
            pg.restore = 1;
            pg.refused = refused;
            pg.nrefused = nrefused;
            if ((rc = aj_tx(store, AJ_TXF_WRITE | AJ_TXF_RETRY, drain_body, drain_settle, &pg)))
                break;
        }
        page_clear(&pg);
        if (pg.seen < DRAIN_PAGE_SIZE)
            break;
    }
    page_clear(&pg);
    free(pg.due);
    free(refused);
    aj_event ev = {0};
    ev.type = AJ_EVENT_DRAINED;
    ev.count = count;
    if (rc == AJ_OK)
        aj_store_event(store, &ev);
    if (delivered)
        *delivered = count;
    return rc;
}
