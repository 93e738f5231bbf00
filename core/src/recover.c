/* Recovery: hand runs whose worker died, and failed runs whose retry is due, back to
 * their queue (aj_store_recover in acidic_job.h). The decision is a row update in the
 * database (recover_at moves a lock timeout ahead), so each run is handed out once per
 * lock timeout whoever sweeps; on PostgreSQL, SKIP LOCKED also passes over runs whose
 * step is running right now (a step holds its run's row lock). */
#include "error.h"
#include "rows.h"
#include "run.h"
#include "tx.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RECOVER_PAGE 100

typedef struct recovered {
    int64_t id;
    char *key, *job_name, *adapter, *resume_job;
    int attempts;
    int dead;
} recovered;

typedef struct sweep {
    size_t want;      /* rows to ask for in this page */
    size_t seen;
    recovered *done;
    size_t ndone, cap;
} sweep;

static void sweep_clear(sweep *w)
{
    for (size_t i = 0; i < w->ndone; i++) {
        free(w->done[i].key);
        free(w->done[i].job_name);
        free(w->done[i].adapter);
        free(w->done[i].resume_job);
    }
    w->ndone = 0;
}

static int remember(sweep *w, int64_t id, const char *key, const char *job_name,
                    const char *adapter, const char *resume_job, int attempts, int dead)
{
    int rc = aj_grow((void **)&w->done, &w->cap, w->ndone + 1, sizeof *w->done);
    if (rc)
        return rc;
    recovered r = {id, aj_strdup(key ? key : ""), aj_strdup(job_name ? job_name : ""),
                   aj_strdup(adapter ? adapter : ""), aj_strdup(resume_job ? resume_job : ""),
                   attempts, dead};
    if (!r.key || !r.job_name || !r.adapter || !r.resume_job) {
        free(r.key);
        free(r.job_name);
        free(r.adapter);
        free(r.resume_job);
        return aj_error_set(AJ_ENOMEM, "out of memory");
    }
    w->done[w->ndone++] = r;
    return AJ_OK;
}

static int reschedule(aj_store *s, int64_t id, const char *when)
{
    aj_value p[2] = {aj_cstr(when), aj_int(id)};
    return aj_store_x(s, AJ_Q_RECOVER_SET, p, 2, NULL);
}

static int recover_body(aj_store *s, void *arg)
{
    sweep *w = arg;
    sweep_clear(w);
    int64_t now_us = aj_now_us();
    char now[32], later[32];
    aj_format_time(now_us, now);
    aj_format_time(aj_add_ms(now_us, s->opts.lock_timeout_ms), later);
    aj_rows rows = {0};
    aj_value q[2] = {aj_cstr(now), aj_int((int64_t)w->want)};
    int rc = aj_store_x(s, AJ_Q_RECOVER_PAGE, q, 2, &rows);
    w->seen = rc ? 0 : rows.nrows;
    for (size_t r = 0; r < rows.nrows && rc == AJ_OK; r++) {
        /* id, idempotency_key, job_name, locked_at, recovery_point, attempts, dead_at,
         * awaiting_batch_id, resume_adapter, resume_job_name, resume_args, has_error */
        int64_t id = aj_rows_int(&rows, r, 0);
        const char *key = aj_rows_text(&rows, r, 1, NULL);
        const char *job_name = aj_rows_text(&rows, r, 2, NULL);
        const char *locked_at = aj_rows_text(&rows, r, 3, NULL);
        const char *rp = aj_rows_text(&rows, r, 4, NULL);
        int attempts = (int)aj_rows_int(&rows, r, 5);
        const char *dead_at = aj_rows_text(&rows, r, 6, NULL);
        int64_t awaiting = aj_rows_int(&rows, r, 7);
        const char *adapter = aj_rows_text(&rows, r, 8, NULL);
        const char *resume_job = aj_rows_text(&rows, r, 9, NULL);
        size_t payload_len = 0;
        const char *payload = aj_rows_text(&rows, r, 10, &payload_len);
        int64_t locked_us = 0;
        int live = locked_at && aj_parse_time(locked_at, &locked_us) == 0 &&
                   locked_us > aj_add_ms(now_us, -s->opts.lock_timeout_ms);
        if (awaiting && !dead_at) {
            /* Its batch ends when its last job is acknowledged; that acknowledgement's
             * process may have died before looking. Look now, and again later. */
            int completed = 0;
            if ((rc = aj_batch_complete(s, awaiting, &completed)) == AJ_OK && !completed)
                rc = reschedule(s, id, later);
        } else if ((rp && !strcmp(rp, AJ_RECOVERY_POINT_FINISHED)) || dead_at || !adapter ||
                   !resume_job) {
            rc = reschedule(s, id, NULL); /* nothing recovery can do */
        } else if (live) {
            /* Its worker is alive (it refreshes the lock at every step): look again once
             * the lock it holds now would expire. */
            char expiry[32];
            aj_format_time(aj_add_ms(locked_us, s->opts.lock_timeout_ms), expiry);
            rc = reschedule(s, id, expiry);
        } else if (s->opts.max_attempts > 0 && attempts >= s->opts.max_attempts) {
            char doc[400];
            snprintf(doc, sizeof doc, "{\"class\":\"acidic_job.DeadRun\",\"message\":\"the run "
                     "did not finish in %d attempts (max_attempts): it is dead until an "
                     "operator retries it\"}", attempts);
            aj_value p[3] = {aj_cstr(now), aj_cstr(doc), aj_int(id)};
            if ((rc = aj_store_x(s, AJ_Q_RECOVER_DEAD, p, 3, NULL)) == AJ_OK)
                rc = remember(w, id, key, job_name, adapter, resume_job, attempts, 1);
        } else {
            /* Staged like any job, in this transaction: pushed after commit, drained if
             * this process dies first. */
            if ((rc = aj_outbox_stage(s, id, 0, adapter, resume_job, payload, payload_len,
                                      NULL)) == AJ_OK &&
                (rc = reschedule(s, id, later)) == AJ_OK)
                rc = remember(w, id, key, job_name, adapter, resume_job, attempts, 0);
        }
    }
    aj_rows_clear(&rows);
    return rc;
}

static void recover_settle(aj_store *s, void *arg, int committed)
{
    (void)s;
    if (!committed)
        sweep_clear(arg);
}

int aj_store_recover(aj_store *store, size_t limit, size_t *requeued, size_t *dead)
{
    int rc = aj_store_usable(store, "aj_store_recover");
    if (rc)
        return rc;
    if (aj_tx_active(store))
        return aj_error_set(AJ_EMISUSE, "aj_store_recover inside a step: recover between runs");
    size_t n_requeued = 0, n_dead = 0, handled = 0;
    sweep w = {0, 0, NULL, 0, 0};
    for (;;) {
        w.want = RECOVER_PAGE;
        if (limit && limit - handled < w.want)
            w.want = limit - handled;
        if (w.want == 0)
            break;
        if ((rc = aj_tx(store, AJ_TXF_WRITE | AJ_TXF_RETRY, recover_body, recover_settle, &w)))
            break;
        for (size_t i = 0; i < w.ndone; i++) {
            recovered *r = &w.done[i];
            aj_event ev = {0};
            ev.type = AJ_EVENT_RECOVERED;
            ev.run_id = r->id;
            ev.key = r->key;
            ev.job_name = r->job_name;
            ev.adapter = r->adapter;
            ev.staged_job = r->resume_job;
            ev.attempt = r->attempts;
            ev.dead = r->dead;
            ev.status = r->dead ? AJ_RUN_DEAD : 0;
            aj_store_event(store, &ev);
            if (r->dead)
                n_dead++;
            else
                n_requeued++;
        }
        handled += w.seen;
        sweep_clear(&w);
        if (w.seen < w.want)
            break;
    }
    sweep_clear(&w);
    free(w.done);
    if (requeued)
        *requeued = n_requeued;
    if (dead)
        *dead = n_dead;
    return rc;
}
