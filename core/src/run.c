/* Runs: acquiring an idempotency key and executing steps, each in one transaction. */
/* nanosleep() is POSIX, outside strict C11. */
#ifndef _DEFAULT_SOURCE
#define _DEFAULT_SOURCE
#endif
#include "run.h"
#include "error.h"
#include "rows.h"
#include "util.h"

#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* --- state bookkeeping ------------------------------------------------------ */

static void state_free(aj_run_state *s)
{
    free(s->recovery_point);
    free(s->attrs);
    s->recovery_point = NULL;
    s->attrs = NULL;
}

/* Begin a step: remember the state so that a rollback can restore it. The saved
 * state shares the pointers; whoever replaces a field of `cur` must not free it while
 * it is also the saved one. */
static void save_state(aj_run *run)
{
    run->saved = run->cur;
    run->has_saved = 1;
}

/* The step committed: release what only the saved state still holds. */
static void drop_saved(aj_run *run)
{
    if (!run->has_saved)
        return;
    if (run->saved.recovery_point != run->cur.recovery_point)
        free(run->saved.recovery_point);
    if (run->saved.attrs != run->cur.attrs)
        free(run->saved.attrs);
    run->has_saved = 0;
}

/* The step rolled back: return to the saved state. */
static void restore_saved(aj_run *run)
{
    if (!run->has_saved)
        return;
    if (run->cur.recovery_point != run->saved.recovery_point)
        free(run->cur.recovery_point);
    if (run->cur.attrs != run->saved.attrs)
        free(run->cur.attrs);
    run->cur = run->saved;
    run->has_saved = 0;
}

void aj_run_settled(aj_run *run, int committed)
{
    if (committed)
        drop_saved(run);
    else
        restore_saved(run);
}

int aj_run_in_step(aj_run *run, const char *fn)
{
    if (!run)
        return aj_error_set(AJ_EINVALID, "%s: run is NULL", fn);
    if (!run->in_step)
        return aj_error_set(AJ_EMISUSE, "%s may only be called inside a step callback", fn);
    return AJ_OK;
}

static void now_text(char buf[32]) { aj_format_time(aj_now_us(), buf); }

static void backoff(int attempt)
{
    /* 1, 2, 4 ... ms plus jitter, so that racing workers spread out. */
    long ms = (1L << (attempt < 8 ? attempt : 8)) + (rand() % 5);
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* --- acquire ------------------------------------------------------------------ */

static int check_params(aj_store *store, const aj_workflow *wf, const aj_run_params *p)
{
    int rc;
    if ((rc = aj_store_usable(store, "aj_run_acquire")))
        return rc;
    if (!wf || !p)
        return aj_error_set(AJ_EINVALID, "aj_run_acquire: workflow or params is NULL");
    if ((rc = aj_check_name(p->key, "idempotency key")) ||
        (rc = aj_check_name(p->job_name, "job name")) ||
        (rc = aj_check_doc(p->args, p->args_len, "job arguments")) ||
        (rc = aj_check_doc(p->attributes, p->attributes_len, "attributes")))
        return rc;
    if (wf->count == 0)
        return aj_error_set(AJ_ENO_STEPS, "the workflow defines no steps: add at least one");
    if (store->pending_run)
        return aj_error_set(AJ_EMISUSE, "a step on this borrowed store waits for "
                                        "aj_store_settle: settle it first");
    return AJ_OK;
}

static int same_args(const char *stored, size_t stored_len, const aj_run_params *p)
{
    const char *given = p->args ? p->args : "";
    size_t given_len = p->args ? p->args_len : 0;
    if (!stored) {
        stored = "";
        stored_len = 0;
    }
    return stored_len == given_len && memcmp(stored, given, given_len) == 0;
}

static aj_run *run_new(aj_store *store, const aj_workflow *wf, const char *key)
{
    aj_run *run = calloc(1, sizeof *run);
    if (!run)
        return NULL;
    run->store = store;
    run->wf = wf;
    run->goto_index = -1;
    if (!(run->key = aj_strdup(key))) {
        free(run);
        return NULL;
    }
    return run;
}

/* One attempt: find or create the key row in one transaction. */
static int acquire_once(aj_run *run, const aj_run_params *p)
{
    aj_store *store = run->store;
    char lock[32];
    int rc;
    int64_t now = aj_now_us();
    aj_format_time(now, lock);
    aj_rows rows = {0};
    aj_value key = aj_cstr(p->key);

    if ((rc = aj_store_x(store, AJ_Q_KEY_FIND, &key, 1, &rows, NULL, AJ_X_BEGIN_SERIALIZABLE)))
        goto out;

    if (rows.nrows == 0) {
        char *wf_json = NULL;
        if ((rc = aj_workflow_json(run->wf, &wf_json)))
            goto rollback;
        const char *first = run->wf->steps[0].name;
        aj_value ins[10] = {key, aj_cstr(p->job_name), aj_text(p->args, p->args_len),
                            aj_cstr(lock), aj_cstr(lock), aj_cstr(first),
                            aj_text(p->attributes, p->attributes_len), aj_cstr(wf_json),
                            aj_cstr(lock), aj_cstr(lock)};
        rc = aj_store_x(store, AJ_Q_KEY_INSERT, ins, 10, &rows, NULL, AJ_X_COMMIT);
        free(wf_json);
        if (rc)
            goto out;
        run->id = aj_rows_int(&rows, 0, 0);
        if (!(run->cur.recovery_point = aj_strdup(first)))
            goto oom;
        if (p->attributes &&
            !(run->cur.attrs = aj_strndup(p->attributes, p->attributes_len)))
            goto oom;
        run->cur.attrs_len = p->attributes ? p->attributes_len : 0;
        memcpy(run->cur.lock, lock, sizeof lock);
        run->cur.locked = 1;
        run->cur.status = AJ_RUN_READY;
        goto out;
    }

    /* Existing key: id, job_args, locked_at, recovery_point, attr_accessors,
     * error_object, open batches. */
    size_t args_len = 0, attrs_len = 0, err_len = 0;
    const char *args = aj_rows_text(&rows, 0, 1, &args_len);
    const char *locked_at = aj_rows_text(&rows, 0, 2, NULL);
    const char *rp = aj_rows_text(&rows, 0, 3, NULL);
    const char *attrs = aj_rows_text(&rows, 0, 4, &attrs_len);
    const char *err = aj_rows_text(&rows, 0, 5, &err_len);
    int64_t batches = aj_rows_int(&rows, 0, 6);
    run->id = aj_rows_int(&rows, 0, 0);

    if (!same_args(args, args_len, p)) {
        rc = aj_error_set(AJ_EMISMATCH,
                          "idempotency key \"%s\" already belongs to a run with different job "
                          "arguments; use a new key for new arguments", p->key);
        goto rollback;
    }
    int64_t locked_us;
    if (locked_at && aj_parse_time(locked_at, &locked_us) == 0 &&
        locked_us > now - store->opts.lock_timeout_ms * 1000) {
        rc = aj_error_set(AJ_ELOCKED,
                          "idempotency key \"%s\" is locked by another run (locked at %s UTC, "
                          "lock timeout %lld ms); retry later", p->key, locked_at,
                          (long long)store->opts.lock_timeout_ms);
        goto rollback;
    }
    if (!(run->cur.recovery_point = aj_strdup(rp ? rp : "")))
        goto oom;
    if (attrs && !(run->cur.attrs = aj_strndup(attrs, attrs_len)))
        goto oom;
    run->cur.attrs_len = attrs ? attrs_len : 0;
    if (err && !(run->error = aj_strndup(err, err_len)))
        goto oom;
    run->error_len = err ? err_len : 0;

    if (rp && strcmp(rp, AJ_RECOVERY_POINT_FINISHED) == 0) {
        run->cur.status = err && err_len ? AJ_RUN_FINISHED_FAILED : AJ_RUN_SUCCEEDED;
        rc = aj_store_tx(store, AJ_TX_COMMIT);
        goto out;
    }
    if (batches > 0) {
        run->cur.status = AJ_RUN_AWAITING;
        rc = aj_store_tx(store, AJ_TX_COMMIT);
        goto out;
    }
    aj_value lk[4] = {aj_cstr(lock), aj_cstr(lock), aj_cstr(lock), aj_int(run->id)};
    if ((rc = aj_store_x(store, AJ_Q_KEY_LOCK, lk, 4, NULL, NULL, AJ_X_COMMIT)))
        goto out;
    memcpy(run->cur.lock, lock, sizeof lock);
    run->cur.locked = 1;
    run->cur.status = AJ_RUN_READY;
    goto out;

oom:
    rc = aj_error_set(AJ_ENOMEM, "out of memory");
rollback:
    {
        aj_saved_error err;
        aj_error_save(&err);
        aj_store_tx(store, AJ_TX_ROLLBACK);
        aj_error_restore(&err);
    }
out:
    aj_rows_clear(&rows);
    return rc;
}

int aj_run_acquire(aj_run **out, aj_store *store, const aj_workflow *wf,
                   const aj_run_params *p)
{
    if (!out)
        return aj_error_set(AJ_EINVALID, "aj_run_acquire: out is NULL");
    int rc = check_params(store, wf, p);
    if (rc)
        return rc;
    for (int attempt = 0;; attempt++) {
        aj_run *run = run_new(store, wf, p->key);
        if (!run)
            return aj_error_set(AJ_ENOMEM, "out of memory");
        rc = acquire_once(run, p);
        if (rc == AJ_OK) {
            *out = run;
            return AJ_OK;
        }
        run->store = NULL;
        aj_run_free(run);
        /* Two workers creating one key: the loser's serializable transaction fails and
         * its retry finds the winner's row, locked. A borrowed transaction is the
         * application's to retry. */
        if (rc != AJ_ECONFLICT || store->borrowed || attempt >= store->opts.conflict_retries)
            return rc;
        backoff(attempt);
    }
}

/* --- steps ------------------------------------------------------------------- */

/* Undo a step after its claim: roll back (owned stores; a borrowed one is rolled back
 * by the application), restore the run in memory, forget its staged jobs and batch. */
static void undo_step(aj_run *run)
{
    aj_store_tx(run->store, AJ_TX_ROLLBACK);
    restore_saved(run);
    aj_store_drop_pending(run->store);
    aj_batch_reset(run);
}

/* A step whose transaction failed for the core's own reasons: undo it, keeping the
 * error that made it fail under code `rc`. */
static int abort_step(aj_run *run, int rc)
{
    aj_saved_error err;
    aj_error_save(&err);
    undo_step(run);
    err.code = rc;
    return aj_error_restore(&err);
}

static int record_failure(aj_run *run)
{
    char now[32];
    now_text(now);
    aj_value params[4] = {aj_text(run->error, run->error_len), aj_cstr(now), aj_int(run->id),
                          aj_cstr(run->cur.lock)};
    aj_rows rows = {0};
    int rc = aj_store_x(run->store, AJ_Q_KEY_FAIL, params, 4, &rows, NULL, 0);
    size_t matched = rows.nrows;
    aj_rows_clear(&rows);
    if (rc == AJ_OK && matched == 0)
        rc = aj_error_set(AJ_ELOCKED, "the run's row no longer carries this process's lock "
                          "(another worker took it over, or a step committed the "
                          "connection itself); the failure was not recorded");
    if (rc == AJ_OK) {
        run->cur.locked = 0;
        run->cur.status = AJ_RUN_FAILED;
    }
    return rc;
}

/* The step callback failed: undo the step, then (owned stores) record the error and
 * release the lock in a short transaction of its own. */
static int step_failed(aj_run *run, const char *step)
{
    undo_step(run);
    if (run->store->borrowed) /* the application rolls back, then calls aj_run_fail */
        return aj_error_set(AJ_ESTEP, "step \"%s\" failed", step);
    int rc = record_failure(run);
    if (rc) {
        /* The run stays locked in the database until the lock timeout; this process
         * gives it up all the same. */
        run->cur.locked = 0;
        run->cur.status = AJ_RUN_FAILED;
        char msg[900];
        snprintf(msg, sizeof msg, "%s", aj_error_last()->message);
        return aj_error_set(AJ_ESTEP, "step \"%s\" failed, and recording the failure failed "
                            "too (%s); the lock expires after the lock timeout", step, msg);
    }
    return aj_error_set(AJ_ESTEP, "step \"%s\" failed; the error is recorded and a retry "
                        "resumes at this step", step);
}

/* Claim the run for this step: one UPDATE that locks the row, checks it is still ours
 * and advances it to the planned next step (refreshing the lock, or releasing it when
 * the run finishes). 0, or AJ_ELOCKED / AJ_ENOTFOUND with the transaction ended. */
static int claim(aj_run *run, const char *planned, int keeps_lock, const char *now)
{
    aj_store *store = run->store;
    aj_rows rows = {0};
    aj_value p[6] = {aj_cstr(planned), keeps_lock ? aj_cstr(now) : aj_text(NULL, 0),
                     aj_cstr(now), aj_int(run->id), aj_cstr(run->cur.recovery_point),
                     aj_cstr(run->cur.lock)};
    int rc = aj_store_x(store, AJ_Q_STEP_CLAIM, p, 6, &rows, NULL, AJ_X_BEGIN_IMMEDIATE);
    size_t matched = rows.nrows;
    aj_rows_clear(&rows);
    if (rc || matched == 1)
        return rc;

    /* Rare: tell a lost lock from a deleted row, then end the transaction. */
    aj_value id = aj_int(run->id);
    int exists = aj_store_x(store, AJ_Q_KEY_EXISTS, &id, 1, &rows, NULL, 0) == AJ_OK &&
                 aj_rows_int(&rows, 0, 0) > 0;
    aj_rows_clear(&rows);
    aj_store_tx(store, AJ_TX_ROLLBACK);
    if (!exists)
        return aj_error_set(AJ_ENOTFOUND, "the run's row (id %lld) no longer exists",
                            (long long)run->id);
    run->cur.locked = 0;
    return aj_error_set(AJ_ELOCKED, "this run lost its lock on key \"%s\" to another worker "
                        "(the lock timeout passed); stopping", run->key);
}

int aj_run_step(aj_run *run, aj_step_fn fn, void *ctx)
{
    if (!run || !fn)
        return aj_error_set(AJ_EINVALID, "aj_run_step: run or callback is NULL");
    aj_store *store = run->store;
    int rc = aj_store_usable(store, "aj_run_step");
    if (rc)
        return rc;
    if (run->in_step)
        return aj_error_set(AJ_EMISUSE, "aj_run_step: a step of this run is already running");
    if (store->pending_run)
        return aj_error_set(AJ_EMISUSE, "a step on this borrowed store waits for "
                                        "aj_store_settle: settle it first");
    if (run->cur.status != AJ_RUN_READY || !run->cur.locked)
        return aj_error_set(AJ_EMISUSE, "aj_run_step: the run is not ready to run a step "
                                        "(status %d); acquire it again", run->cur.status);
    long idx = aj_workflow_find(run->wf, run->cur.recovery_point);
    if (idx < 0)
        return aj_error_set(AJ_EUNKNOWN_RECOVERY_POINT,
                            "the run's recovery point \"%s\" is not a step of the workflow",
                            run->cur.recovery_point);
    const char *step = run->wf->steps[idx].name;

    /* 1. Claim the row and advance it to the step that normally follows. The lock is
     * refreshed at every step, so a long workflow keeps it as long as each step is
     * shorter than the lock timeout. */
    char now[32];
    aj_format_time(aj_now_us(), now);
    const char *planned = aj_workflow_next(run->wf, (size_t)idx);
    int planned_keeps_lock = strcmp(planned, AJ_RECOVERY_POINT_FINISHED) != 0;
    if ((rc = claim(run, planned, planned_keeps_lock, now)))
        return rc;

    /* 2. The application's writes. */
    save_state(run);
    run->in_step = 1;
    run->step_index = (size_t)idx;
    run->finish = 0;
    run->goto_index = -1;
    aj_batch_reset(run);
    int cb = fn(run, step, ctx);
    run->in_step = 0;
    if (cb != 0)
        return step_failed(run, step);

    /* 3. Where the run goes instead, if the step said so. */
    int awaiting = run->batch_id != 0 && run->awaited > 0;
    const char *next = run->finish ? AJ_RECOVERY_POINT_FINISHED
                       : run->goto_index >= 0 ? run->wf->steps[run->goto_index].name
                                              : planned;
    if (awaiting && run->finish)
        return abort_step(run, aj_error_set(AJ_EMISUSE, "step \"%s\" both awaits jobs and "
                                            "finishes the run", step));
    if (awaiting && !run->cont_job_name)
        return abort_step(run, aj_error_set(AJ_EMISUSE, "step \"%s\" awaits jobs but set no "
                                            "continuation (aj_run_set_continuation)", step));
    if (awaiting && (rc = aj_batch_arm(run)))
        return abort_step(run, rc);
    int finished = strcmp(next, AJ_RECOVERY_POINT_FINISHED) == 0;
    int keeps_lock = !finished && !awaiting;
    char *next_copy = aj_strdup(next);
    if (!next_copy)
        return abort_step(run, aj_error_set(AJ_ENOMEM, "out of memory"));

    /* 4. Amend the claim only when needed, then commit. */
    int amend = run->cur.attrs_dirty || strcmp(next, planned) != 0 ||
                keeps_lock != planned_keeps_lock;
    if (amend) {
        aj_value am[4] = {aj_cstr(next_copy), keeps_lock ? aj_cstr(now) : aj_text(NULL, 0),
                          run->cur.attrs_dirty
                              ? aj_text(run->cur.attrs ? run->cur.attrs : "", run->cur.attrs_len)
                              : aj_text(NULL, 0),
                          aj_int(run->id)};
        rc = aj_store_x(store, AJ_Q_STEP_AMEND, am, 4, NULL, NULL, AJ_X_COMMIT);
    } else {
        rc = aj_store_tx(store, AJ_TX_COMMIT);
    }
    if (rc) {
        free(next_copy);
        return abort_step(run, rc);
    }

    /* 5. Committed (or, borrowed, waiting for the application's commit). */
    run->cur.recovery_point = next_copy; /* the old one stays in `saved` until settled */
    run->cur.locked = keeps_lock;
    if (keeps_lock)
        memcpy(run->cur.lock, now, sizeof now);
    run->cur.status = finished ? AJ_RUN_SUCCEEDED : awaiting ? AJ_RUN_AWAITING : AJ_RUN_READY;
    run->cur.attrs_dirty = 0;
    free(run->error);
    run->error = NULL;
    run->error_len = 0;
    aj_batch_reset(run);
    if (store->borrowed) {
        store->pending_run = run;
    } else {
        drop_saved(run);
        aj_store_deliver_pending(store);
    }
    return AJ_OK;
}

int aj_run_execute(aj_run *run, aj_step_fn fn, void *ctx)
{
    if (!run || !fn)
        return aj_error_set(AJ_EINVALID, "aj_run_execute: run or callback is NULL");
    if (run->store && run->store->borrowed)
        return aj_error_set(AJ_EMISUSE, "aj_run_execute needs an owned store: with a borrowed "
                                        "one, commit each aj_run_step yourself");
    while (run->cur.status == AJ_RUN_READY) {
        int rc = aj_run_step(run, fn, ctx);
        if (rc)
            return rc;
    }
    return AJ_OK;
}

int aj_run_fail(aj_run *run)
{
    if (!run)
        return aj_error_set(AJ_EINVALID, "aj_run_fail: run is NULL");
    int rc = aj_store_usable(run->store, "aj_run_fail");
    if (rc)
        return rc;
    if (run->in_step)
        return aj_error_set(AJ_EMISUSE, "aj_run_fail is not allowed inside a step "
                                        "callback; return nonzero from the callback instead");
    if (!run->cur.locked)
        return aj_error_set(AJ_EMISUSE, "aj_run_fail: the run is not locked by this process");
    return record_failure(run);
}

/* --- inside a step --------------------------------------------------------------- */

int aj_run_finish(aj_run *run)
{
    int rc = aj_run_in_step(run, "aj_run_finish");
    if (rc)
        return rc;
    run->finish = 1;
    return AJ_OK;
}

int aj_run_goto(aj_run *run, const char *step)
{
    int rc = aj_run_in_step(run, "aj_run_goto");
    if (rc || (rc = aj_check_name(step, "step name")))
        return rc;
    long idx = aj_workflow_find(run->wf, step);
    if (idx < 0)
        return aj_error_set(AJ_EUNKNOWN_RECOVERY_POINT,
                            "aj_run_goto: the workflow has no step named \"%s\"", step);
    run->goto_index = idx;
    return AJ_OK;
}

int aj_run_set_error(aj_run *run, const char *error, size_t len)
{
    if (!run)
        return aj_error_set(AJ_EINVALID, "aj_run_set_error: run is NULL");
    int rc = aj_check_doc(error, len, "error document");
    if (rc)
        return rc;
    return aj_set_str(&run->error, &run->error_len, error, len);
}

int aj_run_set_attributes(aj_run *run, const char *doc, size_t len)
{
    if (!run)
        return aj_error_set(AJ_EINVALID, "aj_run_set_attributes: run is NULL");
    int rc = aj_check_doc(doc, len, "attributes");
    if (rc)
        return rc;
    if (!doc)
        return aj_error_set(AJ_EINVALID, "aj_run_set_attributes: document is NULL");
    /* The same document again changes nothing and costs no write. */
    if (run->cur.attrs && run->cur.attrs_len == len && memcmp(run->cur.attrs, doc, len) == 0)
        return AJ_OK;
    char *copy = aj_strndup(doc, len);
    if (!copy)
        return aj_error_set(AJ_ENOMEM, "out of memory");
    if (!(run->has_saved && run->cur.attrs == run->saved.attrs))
        free(run->cur.attrs);
    run->cur.attrs = copy;
    run->cur.attrs_len = len;
    run->cur.attrs_dirty = 1;
    return AJ_OK;
}

/* --- inspection ------------------------------------------------------------------- */

int64_t aj_run_id(const aj_run *run) { return run ? run->id : 0; }
int aj_run_status(const aj_run *run) { return run ? run->cur.status : 0; }
const char *aj_run_key(const aj_run *run) { return run ? run->key : NULL; }
const char *aj_run_recovery_point(const aj_run *run)
{
    return run ? run->cur.recovery_point : NULL;
}
aj_store *aj_run_store(const aj_run *run) { return run ? run->store : NULL; }

const char *aj_run_attributes(const aj_run *run, size_t *len)
{
    if (len)
        *len = run && run->cur.attrs ? run->cur.attrs_len : 0;
    return run ? run->cur.attrs : NULL;
}

const char *aj_run_error(const aj_run *run, size_t *len)
{
    if (len)
        *len = run && run->error ? run->error_len : 0;
    return run ? run->error : NULL;
}

void aj_run_free(aj_run *run)
{
    if (!run)
        return;
    if (run->store && run->store->pending_run == run)
        run->store->pending_run = NULL;
    restore_saved(run);
    state_free(&run->cur);
    aj_batch_reset(run);
    free(run->error);
    free(run->key);
    free(run);
}
