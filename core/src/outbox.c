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
        return aj_store_add_pending(store, 0, batch_id, run_id, NULL, adapter, job_name,
                                    payload, payload_len);
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
    if ((rc = aj_store_add_pending(store, new_id, batch_id, run_id, NULL, adapter, job_name,
                                   payload, payload_len)))
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
    if (run->id == 0 && id && (rc = aj_run_persist(run))) /* the row names the run */
        return rc;
    if (run->id == 0) /* a new run's row is written at the end of the step (SQLite) */
        return aj_store_add_pending(run->store, 0, 0, 0, &run->id, adapter, job_name, payload,
                                    payload_len);
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
    if ((rc = aj_run_persist(run))) /* the batch refers to the run's row */
        return rc;
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

/* End the batch when none of its jobs is left: the run stops awaiting it and its
 * continuation is staged, by one caller only (AJ_Q_BATCH_COMPLETE is a compare-and-set
 * on the run's row). *completed set to 1 for that caller. In the open transaction. */
int aj_batch_complete(aj_store *store, int64_t batch_id, int *completed)
{
    aj_value p[3] = {aj_int(batch_id), aj_int(batch_id), aj_int(batch_id)};
    aj_rows matched = {0}, cont = {0};
    int rc = aj_store_x(store, AJ_Q_BATCH_COMPLETE, p, 3, &matched);
    if (rc || matched.nrows == 0)
        goto out;
    int64_t key_id = aj_rows_int(&matched, 0, 0);
    aj_value id = aj_int(batch_id);
    if ((rc = aj_store_x(store, AJ_Q_BATCH_TAKE, &id, 1, &cont)))
        goto out;
    /* continuation_adapter, continuation_job_name, continuation_args */
    size_t len = 0;
    const char *adapter = aj_rows_text(&cont, 0, 0, NULL);
    const char *job_name = aj_rows_text(&cont, 0, 1, NULL);
    const char *payload = aj_rows_text(&cont, 0, 2, &len);
    if (adapter && job_name &&
        (rc = aj_outbox_stage(store, key_id, 0, adapter, job_name, payload, len, NULL)))
        goto out;
    if (completed)
        *completed = 1;
out:
    aj_rows_clear(&matched);
    aj_rows_clear(&cont);
    return rc;
}

/* --- acknowledgement -------------------------------------------------------------- */

typedef struct ack_call {
    int64_t staged_id;
    int64_t batch_id; /* of the deleted row, or 0 */
    int completed;
} ack_call;

static int ack_body(aj_store *store, void *arg)
{
    ack_call *a = arg;
    aj_rows rows = {0};
    aj_value id = aj_int(a->staged_id);
    int rc = aj_store_x(store, AJ_Q_STAGED_DELETE, &id, 1, &rows);
    a->batch_id = rc ? 0 : aj_rows_int(&rows, 0, 0);
    aj_rows_clear(&rows);
    return rc;
}

static int complete_body(aj_store *store, void *arg)
{
    ack_call *a = arg;
    return aj_batch_complete(store, a->batch_id, &a->completed);
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
    ack_call a = {staged_id, 0, 0};
    /* Inside a step this joins the step's transaction. */
    int joined = aj_tx_active(store);
    if ((rc = aj_tx(store, AJ_TXF_WRITE | AJ_TXF_RETRY, ack_body, ack_settle, &a)))
        return rc;
    /* Only the acknowledgement that deleted the row looks at its batch (a duplicate
     * changes nothing), after its delete committed, so that the last of several
     * concurrent acknowledgements sees every other one. Joined to a step, it looks in
     * the step's transaction; recovery finishes a batch whose last look was missed. */
    if (a.batch_id &&
        (rc = aj_tx(store, joined ? 0 : AJ_TXF_WRITE | AJ_TXF_RETRY, complete_body, ack_settle,
                    &a)))
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
    int unstamped;        /* phase 2: rows the core never stamped */
    char after_stamp[32]; /* keyset: the last (delivered_at, id) seen */
    int64_t after;
    size_t seen;          /* rows the page returned */
    drain_row *due;
    size_t ndue, cap;
    int restore;          /* second use: put back the stamps of refused rows */
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

static int stamp(aj_store *store, int64_t id, const char *when)
{
    aj_value p[2] = {aj_cstr(when), aj_int(id)};
    return aj_store_x(store, AJ_Q_DRAIN_STAMP, p, 2, NULL);
}

static int drain_body(aj_store *store, void *arg)
{
    drain_page *pg = arg;
    int rc;
    if (pg->restore) {
        for (size_t i = 0; i < pg->nrefused; i++) {
            drain_row *d = &pg->due[pg->refused[i]];
            if ((rc = stamp(store, d->id, d->old_stamp)))
                return rc;
        }
        return AJ_OK;
    }
    page_clear(pg);
    aj_rows rows = {0};
    if (pg->unstamped) {
        aj_value q = aj_int(pg->after);
        rc = aj_store_x(store, AJ_Q_DRAIN_UNSTAMPED, &q, 1, &rows);
    } else {
        aj_value q[4] = {aj_cstr(pg->cutoff), aj_cstr(pg->after_stamp), aj_cstr(pg->after_stamp),
                         aj_int(pg->after)};
        rc = aj_store_x(store, AJ_Q_DRAIN_PAGE, q, 4, &rows);
    }
    if (rc) {
        aj_rows_clear(&rows);
        return rc;
    }
    pg->seen = rows.nrows;
    char now[32];
    aj_format_time(aj_now_us(), now);
    for (size_t r = 0; r < rows.nrows && rc == AJ_OK; r++) {
        int64_t id = aj_rows_int(&rows, r, 0);
        pg->after = id;
        if (!pg->unstamped) {
            /* the query returned only rows stamped before the cutoff: due */
            const char *old = aj_rows_text(&rows, r, 4, NULL);
            snprintf(pg->after_stamp, sizeof pg->after_stamp, "%s", old ? old : "");
            if ((rc = stamp(store, id, now)) == AJ_OK)
                rc = take_row(pg, &rows, r);
            continue;
        }
        /* Never stamped: made outside the core (acidic_job 0.7.0's Staged model, SQL).
         * Due by its created_at; without one, stamped now and due next time. A row not
         * due yet is stamped with its created_at: from then on the (delivered_at, id)
         * index finds it when it is due, and no drain reads it again before (an
         * unstamped backlog would otherwise be read whole by every drain). */
        const char *created = aj_rows_text(&rows, r, 5, NULL);
        int64_t created_us;
        if (!created || aj_parse_time(created, &created_us) != 0) {
            rc = stamp(store, id, now);
        } else if (created_us < pg->cutoff_us) {
            if ((rc = stamp(store, id, now)) == AJ_OK)
                rc = take_row(pg, &rows, r);
        } else {
            char created_ts[32];
            aj_format_time(created_us, created_ts);
            rc = stamp(store, id, created_ts);
        }
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

#define DRAIN_PAGE_SIZE 100 /* the LIMIT of AJ_Q_DRAIN_PAGE and AJ_Q_DRAIN_UNSTAMPED */

/* Hand the page's due rows out, after its commit; refused rows get their stamps back so
 * that they stay due. */
static int deliver_page(aj_store *store, drain_page *pg, size_t *count, size_t **refused,
                        size_t *cap_refused)
{
    size_t nrefused = 0;
    int rc = AJ_OK;
    for (size_t i = 0; i < pg->ndue && rc == AJ_OK; i++) {
        drain_row *d = &pg->due[i];
        aj_staged_job job = {d->id, d->adapter, d->job_name, d->payload, d->payload_len};
        int accepted = store->enqueue(store->enqueue_ctx, &job) == 0;
        aj_event ev = {0};
        ev.type = AJ_EVENT_ENQUEUED;
        ev.staged_id = d->id;
        ev.adapter = d->adapter;
        ev.staged_job = d->job_name;
        ev.accepted = accepted;
        aj_store_event(store, &ev);
        if (accepted)
            (*count)++;
        else if ((rc = aj_grow((void **)refused, cap_refused, nrefused + 1, sizeof **refused)) ==
                 AJ_OK)
            (*refused)[nrefused++] = i;
    }
    if (rc == AJ_OK && nrefused) {
        pg->restore = 1;
        pg->refused = *refused;
        pg->nrefused = nrefused;
        rc = aj_tx(store, AJ_TXF_WRITE | AJ_TXF_RETRY, drain_body, drain_settle, pg);
        pg->restore = 0;
    }
    page_clear(pg);
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
    if (aj_tx_active(store))
        return aj_error_set(AJ_EMISUSE, "aj_store_drain inside a step: drain between runs");
    char cutoff[32];
    int64_t cutoff_us = aj_add_ms(aj_now_us(), -older_than_ms);
    aj_format_time(cutoff_us, cutoff);
    drain_page pg = {cutoff, cutoff_us, 0, "0001-01-01 00:00:00.000000", 0, 0, NULL, 0, 0, 0,
                     NULL, 0};
    size_t count = 0;
    size_t *refused = NULL, cap_refused = 0;
    for (int phase = 0; phase < 2 && rc == AJ_OK; phase++) {
        pg.unstamped = phase == 1;
        pg.after = 0;
        for (;;) {
            if ((rc = aj_tx(store, AJ_TXF_WRITE | AJ_TXF_RETRY, drain_body, drain_settle, &pg)) ||
                (rc = deliver_page(store, &pg, &count, &refused, &cap_refused)) ||
                pg.seen < DRAIN_PAGE_SIZE)
                break;
        }
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
