/*
 * Runs: acquiring an idempotency key and executing steps, each in one transaction
 * (decisions 002 and 008).
 *
 * A step's transaction, on either database:
 *   1. the first step of an execution acquires the run first, in the same transaction:
 *      it finds the row (PostgreSQL: row-locked, after an advisory lock on the key that
 *      serializes racing creators) or creates it, and decides (mismatch, locked,
 *      finished, awaiting, dead, ready) before anything is written;
 *   2. PostgreSQL claims the row at once (the claim: a compare-and-set on the lock token
 *      and the recovery point that advances the row), which holds its row lock for the
 *      whole step, so recovery (SKIP LOCKED) never takes a run whose step is running;
 *      SQLite claims it last, just before COMMIT, because there the first write takes
 *      the database-wide write lock, and a step that calls a payment provider before
 *      writing must not block every other workflow meanwhile;
 *   3. the step callback (the application's writes);
 *   4. the claim (SQLite), or an amendment of it when the step changed attributes or
 *      route (PostgreSQL, sent with the COMMIT and the staged jobs in one round trip).
 * Anything that fails after the run was decided ready is recorded on the run, and the
 * lock released, in a transaction of its own.
 */
#include "run.h"
#include "error.h"
#include "rows.h"
#include "tx.h"
#include "util.h"

#include <stdlib.h>
#include <stdio.h>
#include <string.h>

/* Columns of AJ_Q_FIND_* (sql.c RUN_COLUMNS). */
enum { C_ID, C_JOB_NAME, C_ARGS, C_LOCKED_AT, C_RP, C_ATTRS, C_ERROR, C_ATTEMPTS, C_DEAD_AT,
       C_AWAITING, C_LOCKED_BY };

/* --- state bookkeeping ------------------------------------------------------ */

static void state_free(aj_run_state *s)
{
    free(s->recovery_point);
    free(s->attrs);
    s->recovery_point = NULL;
    s->attrs = NULL;
}

static void save_state(aj_run *run)
{
    run->saved = run->cur;
    run->has_saved = 1;
}

/* The transaction committed: release what only the saved state still holds. */
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

/* The transaction rolled back: return to the saved state. */
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

/* Replace cur's recovery point (the old one may be the saved one). */
static int set_recovery_point(aj_run *run, const char *rp)
{
    char *copy = aj_strdup(rp);
    if (!copy)
        return aj_error_set(AJ_ENOMEM, "out of memory");
    if (!(run->has_saved && run->cur.recovery_point == run->saved.recovery_point))
        free(run->cur.recovery_point);
    run->cur.recovery_point = copy;
    return AJ_OK;
}

static int set_attrs(aj_run *run, const char *doc, size_t len, int dirty)
{
    char *copy = doc ? aj_strndup(doc, len) : NULL;
    if (doc && !copy)
        return aj_error_set(AJ_ENOMEM, "out of memory");
    if (!(run->has_saved && run->cur.attrs == run->saved.attrs))
        free(run->cur.attrs);
    run->cur.attrs = copy;
    run->cur.attrs_len = doc ? len : 0;
    run->cur.attrs_dirty = dirty;
    return AJ_OK;
}

int aj_run_check_in_step(aj_run *run, const char *fn)
{
    if (!run)
        return aj_error_set(AJ_EINVALID, "%s: run is NULL", fn);
    if (!run->in_step)
        return aj_error_set(AJ_EMISUSE, "%s may only be called inside a step callback", fn);
    return AJ_OK;
}

/* --- events ------------------------------------------------------------------ */

static void run_event_resumed(aj_run *run, int type, const char *step, int resumed)
{
    aj_event ev = {0};
    ev.type = type;
    ev.run_id = run->id;
    ev.key = run->key;
    ev.job_name = run->job_name;
    ev.step = step;
    ev.status = run->cur.status;
    ev.attempt = run->cur.attempts;
    ev.resumed = resumed;
    aj_store_event(run->store, &ev);
}

static void run_event(aj_run *run, int type, const char *step)
{
    run_event_resumed(run, type, step, 0);
}

/* --- new runs ------------------------------------------------------------------ */

static int check_params(aj_store *store, const aj_workflow *wf, const aj_run_params *p,
                        const char *fn)
{
    int rc;
    if ((rc = aj_store_usable(store, fn)))
        return rc;
    if (!wf || !p)
        return aj_error_set(AJ_EINVALID, "%s: workflow or params is NULL", fn);
    if (p->version < 1)
        return aj_error_set(AJ_EINVALID, "%s: params version %u (initialize them with "
                            "AJ_RUN_PARAMS_INIT)", fn, p->version);
    if ((rc = aj_check_name(p->key, "idempotency key")) ||
        (rc = aj_check_name(p->job_name, "job name")) ||
        (rc = aj_check_doc(p->args, p->args_len, "job arguments")) ||
        (rc = aj_check_doc(p->attributes, p->attributes_len, "attributes")))
        return rc;
    if (p->run_id < 0)
        return aj_error_set(AJ_EINVALID, "%s: run_id must not be negative", fn);
    if (p->resume_adapter &&
        ((rc = aj_check_name(p->resume_adapter, "resume adapter")) ||
         (rc = aj_check_name(p->resume_job_name, "resume job name")) ||
         (rc = aj_check_doc(p->resume_payload, p->resume_payload_len, "resume payload"))))
        return rc;
    if (wf->count == 0)
        return aj_error_set(AJ_ENO_STEPS, "the workflow defines no steps: add at least one");
    return AJ_OK;
}

static char *dup_or_null(const char *s, size_t len, int *oom)
{
    if (!s)
        return NULL;
    char *copy = aj_strndup(s, len);
    if (!copy)
        *oom = 1;
    return copy;
}

int aj_run_new(aj_run **out, aj_store *store, const aj_workflow *wf, const aj_run_params *p)
{
    if (!out)
        return aj_error_set(AJ_EINVALID, "aj_run_new: out is NULL");
    int rc = check_params(store, wf, p, "aj_run_new");
    if (rc)
        return rc;
    aj_run *run = calloc(1, sizeof *run);
    if (!run)
        return aj_error_set(AJ_ENOMEM, "out of memory");
    int oom = 0;
    run->store = store;
    run->wf = wf;
    run->goto_index = -1;
    run->key = dup_or_null(p->key, strlen(p->key), &oom);
    run->job_name = dup_or_null(p->job_name, strlen(p->job_name), &oom);
    run->args = dup_or_null(p->args ? p->args : "", p->args ? p->args_len : 0, &oom);
    run->args_len = p->args ? p->args_len : 0;
    run->has_args = p->args != NULL;
    run->init_attrs = dup_or_null(p->attributes, p->attributes_len, &oom);
    run->init_attrs_len = p->attributes ? p->attributes_len : 0;
    run->want_id = p->run_id;
    run->args_equal = p->args_equal;
    run->args_equal_ctx = p->args_equal_ctx;
    if (p->resume_adapter) {
        run->resume_adapter = dup_or_null(p->resume_adapter, strlen(p->resume_adapter), &oom);
        run->resume_job_name = dup_or_null(p->resume_job_name, strlen(p->resume_job_name), &oom);
        run->resume_payload = dup_or_null(p->resume_payload ? p->resume_payload : "",
                                          p->resume_payload ? p->resume_payload_len : 0, &oom);
        run->resume_len = p->resume_payload ? p->resume_payload_len : 0;
    }
    run->cur.status = AJ_RUN_NEW;
    if (oom) {
        aj_run_free(run);
        return aj_error_set(AJ_ENOMEM, "out of memory");
    }
    *out = run;
    return AJ_OK;
}

/* --- error documents ------------------------------------------------------------- */

/* The document recorded when the core, not a step callback, fails a run (or a
 * callback failed without aj_run_set_error). */
static int set_core_error(aj_run *run, int code, const char *message)
{
    aj_store *s = run->store;
    free(run->error);
    run->error = NULL;
    run->error_len = 0;
    if (s->error_doc && s->error_doc(s->error_doc_ctx, run, code, message) == 0 && run->error)
        return AJ_OK;
    aj_buf b = {0};
    aj_buf_puts(&b, "{\"class\":");
    aj_buf_json(&b, aj_code_name(code));
    aj_buf_puts(&b, ",\"message\":");
    aj_buf_json(&b, message);
    aj_buf_puts(&b, "}");
    char *doc = NULL;
    int rc = aj_buf_take(&b, &doc);
    if (rc)
        return rc;
    free(run->error);
    run->error = doc;
    run->error_len = strlen(doc);
    return AJ_OK;
}

/* --- the claim -------------------------------------------------------------------- */

/* Insert a new run's row unless its key has one: AJ_Q_CREATE with its 17 parameters.
 * No row in `rows` when the key was taken. In-process SQLite checks first, under the
 * write lock (taken here unless the body took it as it began), and inserts with the
 * statement's first 16. */
static int insert_run_row(aj_store *s, const aj_value cr[17], aj_rows *rows)
{
    if (!(s->drv->features & AJ_DRV_LEAN))
        return aj_store_x(s, AJ_Q_CREATE, cr, 17, rows);
    aj_rows taken = {0};
    int rc = s->tx_write_locked ? AJ_OK : aj_store_x(s, AJ_Q_WRITE_LOCK, NULL, 0, NULL);
    if (rc == AJ_OK)
        rc = aj_store_x(s, AJ_Q_KEY_TAKEN, &cr[16], 1, &taken);
    int free_key = rc == AJ_OK && aj_rows_int(&taken, 0, 0) == 0;
    aj_rows_clear(&taken);
    if (rc == AJ_OK && free_key)
        return aj_store_x(s, AJ_Q_CREATE, cr, 16, rows);
    aj_rows_reset(rows);
    return rc;
}

/* One transition of the run's row (AJ_Q_CLAIM). */
typedef struct claim {
    const char *expect_rp;
    const char *expect_lock; /* NULL: the row is expected unlocked */
    const char *rp;
    const char *lock;        /* NULL: release the lock */
    int write_attrs;
    int acquiring;           /* count the attempt, stamp last_run_at */
    int recover;             /* RECOVER_* */
    int64_t awaiting_batch;
} claim;

/* What a claim does to recover_at (the time recovery looks at the run next). */
enum {
    RECOVER_KEEP,     /* a plain step: no write to the indexed column */
    RECOVER_SCHEDULE, /* an attempt starts, or a batch is awaited: look after a lock timeout */
    RECOVER_CLEAR     /* finished, or released to an outside batch: nothing to look at */
};

typedef struct claim_call {
    aj_value p[15];
    char now[32], recover_at[32];
    aj_rows rows;
    aj_call call;
} claim_call;

static void build_claim(aj_run *run, const claim *c, claim_call *cc)
{
    aj_store *s = run->store;
    int64_t now = aj_now_us();
    aj_format_time(now, cc->now);
    aj_format_time(aj_add_ms(now, s->opts.lock_timeout_ms), cc->recover_at);
    /* a plain step leaves attempts, last_run_at, recover_at and the resume description
     * as they are: AJ_Q_CLAIM_STEP, which takes none of their parameters */
    int plain = c->recover == RECOVER_KEEP && !c->acquiring;
    aj_value *p = cc->p;
    size_t n = 0;
    p[n++] = aj_cstr(c->rp);
    p[n++] = aj_cstr(c->lock);
    p[n++] = c->lock ? aj_cstr(s->owner) : aj_null();
    p[n++] = c->write_attrs ? aj_text(run->cur.attrs ? run->cur.attrs : "", run->cur.attrs_len)
                            : aj_null();
    if (!plain) {
        p[n++] = aj_int(c->acquiring ? 1 : 0);
        p[n++] = c->acquiring ? aj_cstr(cc->now) : aj_null();
        p[n++] = aj_int(c->recover != RECOVER_KEEP ? 1 : 0);
        p[n++] = c->recover == RECOVER_CLEAR ? aj_null() : aj_cstr(cc->recover_at);
    }
    p[n++] = c->awaiting_batch ? aj_int(c->awaiting_batch) : aj_null();
    if (!plain) {
        p[n++] = c->acquiring ? aj_cstr(run->resume_adapter) : aj_null();
        p[n++] = c->acquiring ? aj_cstr(run->resume_job_name) : aj_null();
        p[n++] = c->acquiring && run->resume_adapter
                     ? aj_text(run->resume_payload, run->resume_len)
                     : aj_null();
    }
    p[n++] = aj_int(run->id);
    p[n++] = aj_cstr(c->expect_rp);
    p[n++] = aj_cstr(c->expect_lock);
    memset(&cc->rows, 0, sizeof cc->rows);
    cc->call = (aj_call){&s->sql[plain ? AJ_Q_CLAIM_STEP : AJ_Q_CLAIM], cc->p, n, &cc->rows};
}

/* A claim that matched no row: the lock was lost to another worker, or the row is gone. */
static int claim_missed(aj_run *run)
{
    aj_rows rows = {0};
    aj_value id = aj_int(run->id);
    int exists = aj_store_x(run->store, AJ_Q_KEY_EXISTS, &id, 1, &rows) == AJ_OK &&
                 aj_rows_int(&rows, 0, 0) > 0;
    aj_rows_clear(&rows);
    if (!exists)
        return aj_error_set(AJ_ENOTFOUND, "the run's row (id %lld, key \"%s\") no longer exists",
                            (long long)run->id, run->key);
    return aj_error_set(AJ_ELOCKED, "this run lost its lock on key \"%s\" to another worker "
                        "(its lock timeout passed); stopping without writing", run->key);
}

/* Send a claim now and check that it matched. */
static int claim_now(aj_run *run, const claim *c)
{
    claim_call cc;
    build_claim(run, c, &cc);
    int rc = aj_store_calls(run->store, &cc.call, 1, 0);
    size_t matched = cc.rows.nrows;
    aj_rows_clear(&cc.rows);
    if (rc)
        return rc;
    return matched == 1 ? AJ_OK : claim_missed(run);
}

/* Does this store lock a run's row at the start of a step? On PostgreSQL when the core
 * sends BEGIN itself: the lock (AJ_Q_LOCK_ROW, or the acquisition's FOR UPDATE) then
 * rides in BEGIN's round trip, checks that the run is still ours before the callback
 * runs, and holds the row for the whole step; the step's one claim rides with its COMMIT.
 * On SQLite never (the database-wide write lock would be held for the whole step). On a
 * borrowed PostgreSQL connection the host's transactions hold no row lock during a step,
 * so that a racing worker meets the run's lock token at once: the claim goes last, with
 * the staged jobs. */
static int claims_first(const aj_store *s)
{
    return s->drv->dialect == AJ_DIALECT_POSTGRES && !s->hooks;
}

/* Lock the run's row for the step if it still holds the recovery point and the lock
 * this process expects (the claim's compare-and-set, without writing). */
static int lock_row(aj_run *run)
{
    aj_value p[3] = {aj_int(run->id), aj_cstr(run->cur.recovery_point),
                     aj_cstr(run->tx_locked ? run->tx_lock : NULL)};
    aj_rows rows = {0};
    int rc = aj_store_x(run->store, AJ_Q_LOCK_ROW, p, 3, &rows);
    size_t matched = rows.nrows;
    aj_rows_clear(&rows);
    if (rc)
        return rc;
    if (matched != 1)
        return claim_missed(run);
    run->row_locked = 1;
    return AJ_OK;
}

/* --- acquisition ------------------------------------------------------------------ */


static void message_locked(aj_run *run, const char *locked_at, int64_t locked_us,
                           const char *locked_by)
{
    aj_store *s = run->store;
    char timeout[32], recover[32];
    aj_format_duration(s->opts.lock_timeout_ms, timeout);
    aj_format_time(aj_add_ms(locked_us, s->opts.lock_timeout_ms), recover);
    aj_error_set(AJ_ELOCKED,
                 "idempotency key \"%s\" is locked by another worker%s%s since %.23s UTC: it is "
                 "running the job now (lock timeout %s). If that worker died, recovery hands "
                 "the run back to its queue after %.19s UTC", run->key,
                 locked_by ? " " : "", locked_by ? locked_by : "", locked_at, timeout, recover);
}

/* Decide about an existing row (columns from `off`). READY: the run's state is taken
 * from the row. */
static int decide(aj_run *run, const aj_rows *rows, size_t off)
{
    aj_store *s = run->store;
    size_t args_len = 0, attrs_len = 0, err_len = 0;
    run->id = aj_rows_int(rows, 0, off + C_ID);
    const char *job_name = aj_rows_text(rows, 0, off + C_JOB_NAME, NULL);
    const char *args = aj_rows_text(rows, 0, off + C_ARGS, &args_len);
    const char *locked_at = aj_rows_text(rows, 0, off + C_LOCKED_AT, NULL);
    const char *rp = aj_rows_text(rows, 0, off + C_RP, NULL);
    const char *attrs = aj_rows_text(rows, 0, off + C_ATTRS, &attrs_len);
    const char *err = aj_rows_text(rows, 0, off + C_ERROR, &err_len);
    int64_t attempts = aj_rows_int(rows, 0, off + C_ATTEMPTS);
    const char *dead_at = aj_rows_text(rows, 0, off + C_DEAD_AT, NULL);
    int64_t awaiting = aj_rows_int(rows, 0, off + C_AWAITING);
    const char *locked_by = aj_rows_text(rows, 0, off + C_LOCKED_BY, NULL);

    if (s->opts.match_job_name && job_name && strcmp(job_name, run->job_name) != 0)
        return aj_error_set(AJ_EMISMATCH, "idempotency key \"%s\" belongs to a run of job "
                            "\"%s\", not \"%s\": a key names one run of one job, so give this "
                            "job a key of its own", run->key, job_name, run->job_name);
    int same;
    if (run->args_equal) {
        same = run->args_equal(run->args_equal_ctx, args ? args : "", args ? args_len : 0,
                               run->args, run->args_len);
        if (same < 0)
            return same;
    } else {
        same = (args ? args_len : 0) == run->args_len &&
               memcmp(args ? args : "", run->args, run->args_len) == 0;
    }
    if (!same)
        return aj_error_set(AJ_EMISMATCH, "idempotency key \"%s\" already belongs to a run of "
                            "%s with different job arguments: use a new key for new arguments",
                            run->key, job_name ? job_name : run->job_name);
    int64_t locked_us = 0;
    int now_locked = locked_at && aj_parse_time(locked_at, &locked_us) == 0 &&
                     locked_us > aj_add_ms(aj_now_us(), -s->opts.lock_timeout_ms);
    int finished = rp && strcmp(rp, AJ_RECOVERY_POINT_FINISHED) == 0;
    if (now_locked && !finished) {
        message_locked(run, locked_at, locked_us, locked_by);
        return AJ_ELOCKED;
    }
    int rc;
    if ((rc = set_recovery_point(run, rp ? rp : "")) ||
        (rc = set_attrs(run, attrs, attrs_len, 0)) ||
        (rc = aj_set_str(&run->error, &run->error_len, err, err_len)))
        return rc;
    run->cur.attempts = (int)attempts;
    run->seen_attempts = (int)attempts;
    snprintf(run->seen_lock, sizeof run->seen_lock, "%s", locked_at ? locked_at : "");
    run->seen_locked = locked_at != NULL;
    if (finished)
        run->cur.status = err && err_len ? AJ_RUN_FINISHED_FAILED : AJ_RUN_SUCCEEDED;
    else if (dead_at)
        run->cur.status = AJ_RUN_DEAD;
    else if (awaiting)
        run->cur.status = AJ_RUN_AWAITING;
    else
        run->cur.status = AJ_RUN_READY;
    return AJ_OK;
}

typedef struct acquire_out {
    int created; /* the row was created, locked, at rp_written */
    int missing; /* no row, and the caller creates it later (`defer`) */
} acquire_out;

/* recover_at of a new run's row: `recover` (a lock timeout ahead) while it is locked and
 * recovery could hand it back, that is when it has a resume description. Without one
 * recovery would only clear it (recover.c), so it costs the index nothing. */
static const char *new_recover_at(const aj_run *run, const char *lock, const char *recover)
{
    return lock && run->resume_adapter ? recover : NULL;
}

/* Find or create the run's row in the open transaction and decide. `rp_new` is the
 * recovery point a created row gets (the step after the first when a step follows in
 * this transaction: the row is then claimed already). */
static int find_or_create(aj_run *run, const char *rp_new, const char *token, int defer,
                          acquire_out *o)
{
    aj_store *s = run->store;
    int pg = s->drv->dialect == AJ_DIALECT_POSTGRES;
    char now[32], recover[32];
    int64_t now_us = aj_now_us();
    aj_format_time(now_us, now);
    aj_format_time(aj_add_ms(now_us, s->opts.lock_timeout_ms), recover);
    const char *workflow = aj_workflow_json(run->wf);
    int rc;
    aj_value key = aj_cstr(run->key);
    aj_value args = run->has_args ? aj_text(run->args, run->args_len) : aj_null();
    aj_value attrs = aj_text(run->init_attrs, run->init_attrs_len);
    aj_value resume[3] = {aj_cstr(run->resume_adapter), aj_cstr(run->resume_job_name),
                          run->resume_adapter ? aj_text(run->resume_payload, run->resume_len)
                                              : aj_null()};
    aj_rows rows = {0};
    size_t off = 0;
    o->created = 0;
    o->missing = 0;
    if (run->want_id) {
        aj_value id = aj_int(run->want_id);
        rc = aj_store_x(s, AJ_Q_FIND_ID, &id, 1, &rows);
    } else if (pg) {
        aj_value fc[14] = {key, key, aj_cstr(run->job_name), args, aj_cstr(now),
                           aj_cstr(token), aj_cstr(rp_new), attrs, aj_cstr(workflow),
                           aj_cstr(token ? s->owner : NULL),
                           aj_cstr(new_recover_at(run, token, recover)), resume[0], resume[1],
                           resume[2]};
        aj_call calls[2] = {{&s->sql[AJ_Q_ADVISORY], &key, 1, NULL},
                            {&s->sql[AJ_Q_FIND_OR_CREATE], fc, 14, &rows}};
        rc = aj_store_calls(s, calls, 2, 0);
        off = 1;
        if (rc == AJ_OK && rows.nrows && aj_rows_int(&rows, 0, 0) == 1) {
            o->created = 1;
            run->id = aj_rows_int(&rows, 0, 1);
        }
    } else {
        rc = aj_store_x(s, AJ_Q_FIND_KEY, &key, 1, &rows);
        if (rc == AJ_OK && rows.nrows == 0 && defer) {
            o->missing = 1;
        } else if (rc == AJ_OK && rows.nrows == 0) {
            aj_value cr[17] = {key, aj_cstr(run->job_name), args, aj_cstr(now), aj_cstr(token),
                               aj_cstr(rp_new), attrs, aj_cstr(workflow), aj_null(), aj_int(1),
                               aj_cstr(token ? s->owner : NULL),
                               aj_cstr(new_recover_at(run, token, recover)), aj_null(), resume[0],
                               resume[1], resume[2], key};
            rc = insert_run_row(s, cr, &rows);
            if (rc == AJ_OK && rows.nrows == 0)
                rc = aj_error_set(AJ_ELOCKED, "idempotency key \"%s\" was created by another "
                                  "worker at the same moment: that worker runs the job now",
                                  run->key);
            if (rc == AJ_OK) {
                o->created = 1;
                run->id = aj_rows_int(&rows, 0, 0);
            }
        }
    }
    if (rc == AJ_EDATABASE && !strcmp(aj_error_state(), "23505"))
        rc = aj_error_set(AJ_ELOCKED, "idempotency key \"%s\" was created by another worker at "
                          "the same moment: that worker runs the job now", run->key);
    if (rc == AJ_OK && !o->created && !o->missing) {
        if (rows.nrows == 0)
            rc = run->want_id ? aj_error_set(AJ_ENOTFOUND, "no run with id %lld in "
                                             "acidic_job_keys", (long long)run->want_id)
                              : aj_error_set(AJ_ERROR, "internal: the run was neither found "
                                             "nor created");
        else
            rc = decide(run, &rows, off);
    }
    aj_rows_clear(&rows);
    return rc;
}

/* Acquisition inside a transaction. `for_step`: a step follows in this transaction.
 * On READY the row is locked (claimed) except on SQLite with a step following, where
 * the step's last statement claims it (compare-and-set on what was read here). */
static int acquire_in_tx(aj_run *run, int for_step)
{
    aj_store *s = run->store;
    const char *first = run->wf->steps[0].name;
    const char *first_next = aj_workflow_next(run->wf, 0);
    int first_keeps = strcmp(first_next, AJ_RECOVERY_POINT_FINISHED) != 0;
    char token[32];
    aj_format_time(aj_now_us(), token);
    acquire_out o;
    int rc;
    /* A created row holds the planned next step when a step follows (claimed at once);
     * the last step of a one-step workflow leaves it unlocked (finished on commit). */
    const char *rp_new = for_step ? first_next : first;
    int new_locked = !for_step || first_keeps;
    /* SQLite, with a step to follow: a new run's row is written last, by the step, so that
     * the step takes the database's write lock only when it writes. */
    int defer = for_step && s->drv->dialect == AJ_DIALECT_SQLITE && !run->want_id;
    if ((rc = find_or_create(run, rp_new, new_locked ? token : NULL, defer, &o)))
        return rc;
    run->acquiring = 1;
    if (o.created || o.missing) {
        run->new_row = o.created;
        run->pending_create = o.missing;
        run->claimed = for_step && o.created;
        if ((rc = set_recovery_point(run, first)) ||
            (rc = set_attrs(run, run->init_attrs, run->init_attrs_len, 0)))
            return rc;
        free(run->error);
        run->error = NULL;
        run->error_len = 0;
        run->cur.attempts = 1;
        run->seen_attempts = 0;
        run->cur.status = AJ_RUN_READY;
        run->seen_locked = 0;
        run->tx_locked = o.created && new_locked;
        snprintf(run->tx_lock, sizeof run->tx_lock, "%s", token);
        run_event(run, AJ_EVENT_ACQUIRED, first);
        return AJ_OK;
    }
    if (run->cur.status != AJ_RUN_READY) {
        run->acquiring = 0;
        run_event(run, AJ_EVENT_SKIPPED, run->cur.recovery_point);
        return AJ_OK;
    }
    run->cur.attempts++;
    long idx = aj_workflow_find(run->wf, run->cur.recovery_point);
    if (idx < 0)
        return aj_error_set(AJ_EUNKNOWN_RECOVERY_POINT, "the run of key \"%s\" is at recovery "
                            "point \"%s\", which is not a step of the workflow", run->key,
                            run->cur.recovery_point);
    run->tx_locked = run->seen_locked;
    snprintf(run->tx_lock, sizeof run->tx_lock, "%s", run->seen_lock);
    if (for_step) {
        /* The step's last statement claims it; on PostgreSQL the read locked it. */
        run->claimed = 0;
        run->row_locked = claims_first(s);
    } else {
        /* Lock it now (claiming and advancing at once when a step follows). */
        const char *to = for_step ? aj_workflow_next(run->wf, (size_t)idx)
                                  : run->cur.recovery_point;
        int keeps = !for_step || strcmp(to, AJ_RECOVERY_POINT_FINISHED) != 0;
        claim c = {run->cur.recovery_point, run->tx_locked ? run->tx_lock : NULL, to,
                   keeps ? token : NULL, 0, 1, keeps ? RECOVER_SCHEDULE : RECOVER_CLEAR, 0};
        if ((rc = claim_now(run, &c)))
            return rc;
        run->claimed = for_step;
        run->tx_locked = keeps;
        snprintf(run->tx_lock, sizeof run->tx_lock, "%s", token);
    }
    run_event_resumed(run, AJ_EVENT_ACQUIRED, run->cur.recovery_point, 1); /* its row existed */
    return AJ_OK;
}

/* Write the row of a run whose creation was deferred (SQLite), at `rp` with `lock`. */
static int create_row(aj_run *run, const char *rp, const char *lock)
{
    aj_store *s = run->store;
    char now[32], recover[32];
    const char *workflow = aj_workflow_json(run->wf);
    int64_t now_us = aj_now_us();
    aj_format_time(now_us, now);
    aj_format_time(aj_add_ms(now_us, s->opts.lock_timeout_ms), recover);
    int rc;
    aj_rows rows = {0};
    aj_value cr[17] = {aj_cstr(run->key), aj_cstr(run->job_name),
                       run->has_args ? aj_text(run->args, run->args_len) : aj_null(),
                       aj_cstr(now), aj_cstr(lock), aj_cstr(rp),
                       aj_text(run->cur.attrs, run->cur.attrs_len), aj_cstr(workflow), aj_null(),
                       aj_int(1), aj_cstr(lock ? s->owner : NULL),
                       aj_cstr(new_recover_at(run, lock, recover)),
                       aj_null(), aj_cstr(run->resume_adapter), aj_cstr(run->resume_job_name),
                       run->resume_adapter ? aj_text(run->resume_payload, run->resume_len)
                                           : aj_null(),
                       aj_cstr(run->key)};
    rc = insert_run_row(s, cr, &rows);
    if (rc == AJ_OK && rows.nrows == 0)
        rc = aj_error_set(AJ_ELOCKED, "idempotency key \"%s\" was created by another worker "
                          "at the same moment: that worker runs the job now", run->key);
    if (rc == AJ_OK) {
        run->id = aj_rows_int(&rows, 0, 0);
        run->new_row = 1;
        run->pending_create = 0;
        run->cur.attrs_dirty = 0;
    } else if (rc == AJ_EDATABASE && !strcmp(aj_error_state(), "23505")) {
        rc = aj_error_set(AJ_ELOCKED, "idempotency key \"%s\" was created by another worker at "
                          "the same moment: that worker runs the job now", run->key);
    }
    aj_rows_clear(&rows);
    return rc;
}

int aj_run_persist(aj_run *run)
{
    int rc = aj_run_check_in_step(run, "aj_run_persist");
    if (rc || !run->pending_create)
        return rc;
    int keeps = strcmp(run->step_planned, AJ_RECOVERY_POINT_FINISHED) != 0;
    if ((rc = create_row(run, run->step_planned, keeps ? run->step_token : NULL)))
        return rc;
    /* From here the step goes on as one whose row was claimed by its acquisition. */
    run->claimed = 1;
    run->tx_locked = keeps;
    memcpy(run->tx_lock, run->step_token, sizeof run->tx_lock);
    return AJ_OK;
}

/* --- failure records ----------------------------------------------------------------- */

typedef struct fail_call {
    aj_run *run;
    int inc;              /* attempts to add: 1 when this attempt was never committed */
    int dead;
    char recover_at[32], dead_at[32];
    int recorded;
} fail_call;

static int fail_body(aj_store *s, void *arg)
{
    fail_call *f = arg;
    aj_run *run = f->run;
    aj_rows rows = {0};
    int rc;
    f->recorded = 0;
    if (run->id) {
        /* The lock as the database holds it: our token once an attempt committed, else
         * what the acquisition read. */
        const char *lock = run->attempt_counted ? (run->cur.locked ? run->cur.lock : NULL)
                                                : (run->seen_locked ? run->seen_lock : NULL);
        aj_value p[6] = {aj_text(run->error, run->error_len), aj_int(f->inc),
                         f->dead ? aj_null() : aj_cstr(f->recover_at),
                         f->dead ? aj_cstr(f->dead_at) : aj_null(), aj_int(run->id),
                         aj_cstr(lock)};
        rc = aj_store_x(s, AJ_Q_FAIL, p, 6, &rows);
        f->recorded = rc == AJ_OK && rows.nrows == 1;
        aj_rows_clear(&rows);
        return rc;
    }
    /* A new run whose first step failed: its row was rolled back with the step; write
     * it now, failed, unless a racing worker created the key meanwhile. */
    aj_value key = aj_cstr(run->key);
    if (s->drv->dialect == AJ_DIALECT_POSTGRES &&
        (rc = aj_store_x(s, AJ_Q_ADVISORY, &key, 1, NULL)))
        return rc;
    if ((rc = aj_store_x(s, AJ_Q_FIND_KEY, &key, 1, &rows)) || rows.nrows) {
        aj_rows_clear(&rows);
        return rc;
    }
    char now[32];
    const char *workflow = aj_workflow_json(run->wf);
    aj_format_time(aj_now_us(), now);
    aj_value cr[17] = {key, aj_cstr(run->job_name),
                       run->has_args ? aj_text(run->args, run->args_len) : aj_null(),
                       aj_cstr(now), aj_null(), aj_cstr(run->wf->steps[0].name),
                       aj_text(run->init_attrs, run->init_attrs_len), aj_cstr(workflow),
                       aj_text(run->error, run->error_len), aj_int(1), aj_null(),
                       f->dead ? aj_null() : aj_cstr(f->recover_at),
                       f->dead ? aj_cstr(f->dead_at) : aj_null(), aj_cstr(run->resume_adapter),
                       aj_cstr(run->resume_job_name),
                       run->resume_adapter ? aj_text(run->resume_payload, run->resume_len)
                                           : aj_null(),
                       key};
    rc = insert_run_row(s, cr, &rows);
    if (rc == AJ_OK && rows.nrows == 1) {
        run->id = aj_rows_int(&rows, 0, 0);
        f->recorded = 1;
    }
    aj_rows_clear(&rows);
    return rc;
}

/* Record the failure `code` (its message is the last error) and release the lock, in
 * a transaction of its own. Returns the code the caller reports. */
static int record_failure(aj_run *run, int code, const char *step)
{
    aj_store *s = run->store;
    aj_saved_error cause;
    aj_error_save(&cause);
    if (!run->error_from_step || !run->error) {
        char message[1100];
        if (code == AJ_ESTEP)
            snprintf(message, sizeof message, "step \"%s\" failed", step ? step : "?");
        else
            snprintf(message, sizeof message, "%s", cause.message);
        int rc = set_core_error(run, code == AJ_ESTEP ? AJ_ESTEP : code, message);
        if (rc)
            return rc;
    }
    fail_call f = {run, run->attempt_counted ? 0 : 1, 0, "", "", 0};
    /* This attempt included: counted in the database already, or counted now. */
    int attempts = run->attempt_counted ? run->cur.attempts : run->seen_attempts + 1;
    int64_t now = aj_now_us();
    f.dead = s->opts.max_attempts > 0 && attempts >= s->opts.max_attempts;
    /* Retries wait retry_base, doubling with each attempt, up to an hour. */
    int64_t wait = s->opts.retry_base_ms;
    for (int i = 1; i < attempts && wait < 3600 * 1000; i++)
        wait *= 2;
    if (wait > 3600 * 1000)
        wait = 3600 * 1000;
    aj_format_time(aj_add_ms(now, wait), f.recover_at);
    aj_format_time(now, f.dead_at);
    int rc = aj_tx(s, AJ_TXF_WRITE | AJ_TXF_RETRY, fail_body, NULL, &f);
    run->cur.locked = 0;
    run->cur.status = f.dead && f.recorded ? AJ_RUN_DEAD : AJ_RUN_FAILED;
    if (f.recorded) {
        run->attempt_counted = 1;
        run->cur.attempts = attempts;
    }
    if (code == AJ_ESTEP) {
        if (rc)
            return aj_error_set(AJ_ESTEP, "step \"%s\" failed, and recording the failure failed "
                                "too (%s); the lock expires after the lock timeout, then "
                                "recovery retries the run", step, aj_error_last()->message);
        if (!f.recorded)
            return aj_error_set(AJ_ESTEP, "step \"%s\" failed; the failure was not recorded: "
                                "another worker holds the run now", step);
        if (f.dead)
            return aj_error_set(AJ_ESTEP, "step \"%s\" failed for the %d%s time, the most "
                                "allowed (max_attempts): the run is dead until an operator "
                                "retries it", step, attempts,
                                attempts == 1 ? "st" : attempts == 2 ? "nd" : attempts == 3 ? "rd" : "th");
        return aj_error_set(AJ_ESTEP, "step \"%s\" failed; the error is recorded and a retry "
                            "resumes at this step", step);
    }
    /* Not the step's own failure: report the cause, saying what happened to the run. */
    char tail[300];
    snprintf(tail, sizeof tail, rc ? " (recording this on the run failed too: its lock "
                                     "expires after the lock timeout)"
                               : f.recorded ? " (recorded on the run; its lock is released)" : "");
    aj_error_set(code, "%s%s", cause.message, tail);
    aj_error_set_state(cause.state);
    return code;
}

/* --- steps ------------------------------------------------------------------------- */

typedef struct step_call {
    aj_run *run;
    aj_step_fn fn;
    void *ctx;
    int record;      /* a failure from here on is recorded on the run */
    int stepped;     /* the callback ran and the transaction was completed */
    const char *step;
    int64_t started;
    /* The callback ended the transaction itself: what it committed of the run's row. */
    int ended_by_step;
    char ended_rp[256];
    char ended_lock[32];
    int ended_locked;
} step_call;

/* Forget the transaction's plan (both at its start and after it ended). */
static void reset_plan(aj_run *run)
{
    run->acquiring = run->new_row = run->claimed = run->row_locked = run->pending_create = 0;
    run->finish = 0;
    run->release = 0;
    run->goto_index = -1;
    aj_batch_reset(run);
    free(run->plan_rp);
    run->plan_rp = NULL;
}

static void reset_step(aj_run *run)
{
    reset_plan(run);
    run->error_from_step = 0;
}

static int step_body(aj_store *s, void *arg)
{
    step_call *sc = arg;
    aj_run *run = sc->run;
    int rc;
    save_state(run);
    int was_new = run->cur.status == AJ_RUN_NEW;
    reset_step(run);
    sc->record = !was_new;
    sc->stepped = 0;
    if (run->peeked) {
        /* acquired by a read of its own (SQLite): this step claims or creates the row */
        run->acquiring = 1;
        run->pending_create = run->peek_missing;
        run->tx_locked = run->seen_locked;
        memcpy(run->tx_lock, run->seen_lock, sizeof run->tx_lock);
        sc->record = 1;
    } else if (was_new) {
        if ((rc = acquire_in_tx(run, 1))) {
            /* Locked, mismatched, missing: not ours to record. An unknown recovery
             * point of a run we may take is. */
            sc->record = rc == AJ_EUNKNOWN_RECOVERY_POINT;
            return rc;
        }
        if (run->cur.status != AJ_RUN_READY)
            return AJ_OK; /* nothing to run: the read-only transaction commits */
        sc->record = 1;
    } else {
        run->tx_locked = run->cur.locked;
        memcpy(run->tx_lock, run->cur.lock, sizeof run->tx_lock);
    }
    long idx = aj_workflow_find(run->wf, run->cur.recovery_point);
    if (idx < 0)
        return aj_error_set(AJ_EUNKNOWN_RECOVERY_POINT, "the run of key \"%s\" is at recovery "
                            "point \"%s\", which is not a step of the workflow", run->key,
                            run->cur.recovery_point);
    const char *step = run->wf->steps[idx].name;
    sc->step = step;
    const char *planned = aj_workflow_next(run->wf, (size_t)idx);
    int planned_keeps = strcmp(planned, AJ_RECOVERY_POINT_FINISHED) != 0;
    char token[32];
    if (run->claimed) /* the acquisition wrote its token into the row */
        memcpy(token, run->tx_lock, sizeof token);
    else
        aj_format_time(aj_now_us(), token);

    /* 1. Lock the row first where that is free (for the whole step). A row claimed by
     * the acquisition holds `planned` and the token it wrote. */
    if (claims_first(s) && !run->claimed && !run->row_locked && (rc = lock_row(run))) {
        sc->record = rc != AJ_ELOCKED && rc != AJ_ENOTFOUND;
        return rc;
    }

    /* 2. The application's writes, in the transaction (a BEGIN the core still holds
     * under begin_in_body goes first). */
    if (s->tx_core_began && (rc = aj_tx_send_begin(s)))
        return rc;
    memcpy(run->step_token, token, sizeof token);
    run->step_planned = planned;
    run->in_step = 1;
    s->in_step = 1;
    run->step_index = (size_t)idx;
    run_event(run, AJ_EVENT_STEP_STARTED, step);
    aj_error_clear(); /* so that an AJ_ECONFLICT it returns is its own report */
    int cb = sc->fn(run, step, sc->ctx);
    run->in_step = 0;
    s->in_step = 0;
    if (cb == AJ_ECONFLICT && aj_error_last()->code == AJ_ECONFLICT)
        return AJ_ECONFLICT; /* the application's own write met a conflict: retried */
    if (cb != 0)
        return aj_error_set(AJ_ESTEP, "step \"%s\" failed", step);
    if (!s->drv->in_transaction(s->conn)) {
        /* Whatever the core had written in this transaction is committed now (a first
         * claim): the failure record must match that row. */
        sc->ended_by_step = run->claimed;
        snprintf(sc->ended_rp, sizeof sc->ended_rp, "%s", planned);
        memcpy(sc->ended_lock, run->tx_lock, sizeof run->tx_lock);
        sc->ended_locked = run->tx_locked;
        return aj_error_set(AJ_EMISUSE, "step \"%s\" ended its transaction itself (COMMIT or "
                            "ROLLBACK on the connection): its later writes were not part of "
                            "the step; a step must leave the transaction to acidic_job", step);
    }

    /* 3. Where the run goes. */
    int awaiting = run->batch_id != 0 && run->awaited > 0;
    const char *next = run->finish ? AJ_RECOVERY_POINT_FINISHED
                       : run->goto_index >= 0 ? run->wf->steps[run->goto_index].name
                                              : planned;
    if (awaiting && run->finish)
        return aj_error_set(AJ_EMISUSE, "step \"%s\" both awaits jobs and finishes the run",
                            step);
    if (awaiting && !run->cont_job_name)
        return aj_error_set(AJ_EMISUSE, "step \"%s\" awaits jobs but set no continuation "
                            "(aj_run_set_continuation)", step);
    if (awaiting && (rc = aj_batch_arm(run)))
        return rc;
    int finished = strcmp(next, AJ_RECOVERY_POINT_FINISHED) == 0;
    if (run->release && (awaiting || run->finish))
        return aj_error_set(AJ_EMISUSE, "step \"%s\" releases the run and also %s", step,
                            awaiting ? "awaits jobs" : "finishes it");
    awaiting = awaiting || (run->release && !finished);
    int keeps_lock = !finished && !awaiting;
    if (!(run->plan_rp = aj_strdup(next)))
        return aj_error_set(AJ_ENOMEM, "out of memory");
    run->plan_locked = keeps_lock;
    memcpy(run->plan_lock, token, sizeof token);
    run->plan_status = finished ? AJ_RUN_SUCCEEDED : awaiting ? AJ_RUN_AWAITING : AJ_RUN_READY;

    /* 4. The claim (or the amendment of the acquisition's), then COMMIT. */
    int core_batch = run->batch_id != 0 && run->awaited > 0;
    int acquiring = run->acquiring && !run->claimed;
    claim c = {NULL, run->tx_locked ? run->tx_lock : NULL, next, keeps_lock ? token : NULL,
               run->cur.attrs_dirty, acquiring,
               core_batch || (keeps_lock && acquiring) ? RECOVER_SCHEDULE
               : keeps_lock                           ? RECOVER_KEEP
                                                      : RECOVER_CLEAR,
               core_batch ? run->batch_id : 0};
    if (run->pending_create) {
        /* a new run on SQLite: its row, written now, is its claim */
        if ((rc = create_row(run, next, keeps_lock ? token : NULL)) == AJ_OK)
            rc = aj_tx_finish(s, NULL, 0);
        if (rc == AJ_ELOCKED)
            sc->record = 0;
    } else if (!run->claimed && !run->row_locked) {
        c.expect_rp = run->cur.recovery_point;
        if (s->hooks) {
            /* With the staged jobs, in one round trip; the host commits after. */
            claim_call cc;
            build_claim(run, &c, &cc);
            rc = aj_tx_finish(s, &cc.call, 1);
            size_t matched = cc.rows.nrows;
            aj_rows_clear(&cc.rows);
            if (rc == AJ_OK && matched != 1)
                rc = claim_missed(run);
        } else if ((rc = claim_now(run, &c)) == AJ_OK) {
            rc = aj_tx_finish(s, NULL, 0);
        }
        if (rc == AJ_ELOCKED || rc == AJ_ENOTFOUND)
            sc->record = 0;
    } else if (run->row_locked || run->cur.attrs_dirty || strcmp(next, planned) != 0 ||
               keeps_lock != planned_keeps || awaiting) {
        /* The claim, or the amendment of the acquisition's, with the COMMIT: the row is
         * ours, locked since the step's first statement. */
        c.expect_rp = run->claimed ? planned : run->cur.recovery_point;
        claim_call cc;
        build_claim(run, &c, &cc);
        rc = aj_tx_finish(s, &cc.call, 1);
        aj_rows_clear(&cc.rows);
    } else {
        rc = aj_tx_finish(s, NULL, 0);
    }
    sc->stepped = rc == AJ_OK;
    return rc;
}

static void step_settle(aj_store *s, void *arg, int committed)
{
    (void)s;
    step_call *sc = arg;
    aj_run *run = sc->run;
    if (!committed) {
        int64_t new_row = run->new_row;
        restore_saved(run);
        if (new_row)
            run->id = 0;
        reset_plan(run); /* the error the callback set is still to be recorded */
        return;
    }
    if (run->acquiring)
        run->attempt_counted = 1;
    if (sc->stepped) {
        char *old = run->cur.recovery_point;
        run->cur.recovery_point = run->plan_rp; /* the old one may still be the saved one */
        run->plan_rp = NULL;
        if (!(run->has_saved && run->saved.recovery_point == old))
            free(old);
        run->cur.locked = run->plan_locked;
        memcpy(run->cur.lock, run->plan_lock, sizeof run->cur.lock);
        run->cur.status = run->plan_status;
        run->cur.attrs_dirty = 0;
        free(run->error);
        run->error = NULL;
        run->error_len = 0;
    } else if (run->cur.status == AJ_RUN_READY) {
        /* acquisition alone (aj_run_acquire) */
        run->cur.locked = run->seen_locked;
        memcpy(run->cur.lock, run->seen_lock, sizeof run->cur.lock);
    }
    drop_saved(run);
    aj_batch_reset(run);
    run->acquiring = run->new_row = run->claimed = run->row_locked = run->pending_create = 0;
    run->peeked = 0;
    if (sc->stepped) {
        aj_event ev = {0};
        ev.type = AJ_EVENT_STEP_COMMITTED;
        ev.run_id = run->id;
        ev.key = run->key;
        ev.job_name = run->job_name;
        ev.step = sc->step;
        ev.status = run->cur.status;
        ev.attempt = run->cur.attempts;
        ev.duration_us = aj_now_us() - sc->started;
        aj_store_event(run->store, &ev);
        if (run->cur.status == AJ_RUN_SUCCEEDED)
            run_event(run, AJ_EVENT_FINISHED, NULL);
    }
}

static int peek_body(aj_store *s, void *arg)
{
    (void)s;
    step_call *sc = arg;
    aj_run *run = sc->run;
    save_state(run);
    reset_step(run);
    int rc = acquire_in_tx(run, 1);
    sc->record = rc == AJ_EUNKNOWN_RECOVERY_POINT;
    if (rc == AJ_OK && run->cur.status == AJ_RUN_READY) {
        run->peeked = 1;
        run->peek_missing = run->pending_create;
    }
    return rc;
}

static void peek_settle(aj_store *s, void *arg, int committed)
{
    (void)s;
    aj_run *run = ((step_call *)arg)->run;
    if (committed) {
        drop_saved(run);
    } else {
        restore_saved(run);
        run->peeked = 0;
    }
    reset_plan(run);
}

static int check_runnable(aj_run *run, const char *fn)
{
    if (!run)
        return aj_error_set(AJ_EINVALID, "%s: run is NULL", fn);
    int rc = aj_store_usable(run->store, fn);
    if (rc)
        return rc;
    if (run->in_step)
        return aj_error_set(AJ_EMISUSE, "%s: a step of this run is already running", fn);
    if (aj_tx_active(run->store))
        return aj_error_set(AJ_EMISUSE, "%s: a step of another run of this store is running; "
                            "a step cannot run another workflow's steps in its transaction", fn);
    return AJ_OK;
}

int aj_run_step(aj_run *run, aj_step_fn fn, void *ctx)
{
    int rc = check_runnable(run, "aj_run_step");
    if (rc)
        return rc;
    if (!fn)
        return aj_error_set(AJ_EINVALID, "aj_run_step: callback is NULL");
    if (run->cur.status != AJ_RUN_NEW && (run->cur.status != AJ_RUN_READY || !run->cur.locked))
        return aj_error_set(AJ_EMISUSE, "aj_run_step: the run is not ready to run a step "
                                        "(status %d); make a new run to try again",
                            run->cur.status);
    step_call sc = {run, fn, ctx, 0, 0, NULL, aj_now_us(), 0, "", "", 0};
    /* SQLite: a new run is acquired by a read of its own (a read commits nothing; in
     * process, outside a transaction, without one), so that the step's transaction begins
     * with the step's own first write: a snapshot taken before a long step would make that
     * write fail against any other writer that committed meanwhile (SQLITE_BUSY_SNAPSHOT).
     * The step's claim checks what the read saw. */
    if (run->cur.status == AJ_RUN_NEW && run->store->drv->dialect == AJ_DIALECT_SQLITE) {
        rc = aj_tx(run->store, AJ_TXF_RETRY | AJ_TXF_READ, peek_body, peek_settle, &sc);
        if (rc)
            return sc.record ? record_failure(run, rc, NULL) : rc;
        if (run->cur.status != AJ_RUN_READY)
            return AJ_OK;
    }
    rc = aj_tx(run->store, AJ_TXF_RETRY, step_body, step_settle, &sc);
    if (rc == AJ_OK)
        return AJ_OK;
    /* A busy database or a serialization conflict that outlived the retries is not the
     * run's failure: the run stays as it was (locked by this process when it was), and
     * the caller may try the step again. */
    if (!sc.record || rc == AJ_ECONFLICT)
        return rc;
    if (rc == AJ_ESTEP || rc == AJ_EMISUSE || rc == AJ_EUNKNOWN_RECOVERY_POINT ||
        rc == AJ_EDATABASE || rc == AJ_ESCHEMA || rc == AJ_ENOMEM ||
        rc == AJ_ERROR) {
        aj_event ev = {0};
        ev.type = AJ_EVENT_STEP_FAILED;
        ev.run_id = run->id;
        ev.key = run->key;
        ev.job_name = run->job_name;
        ev.step = sc.step;
        ev.code = rc;
        ev.message = aj_error_last()->message;
        ev.duration_us = aj_now_us() - sc.started;
        ev.status = AJ_RUN_FAILED;
        aj_store_event(run->store, &ev);
        if (sc.ended_by_step) {
            if (set_recovery_point(run, sc.ended_rp) == AJ_OK) {
                run->cur.locked = sc.ended_locked;
                memcpy(run->cur.lock, sc.ended_lock, sizeof run->cur.lock);
                run->attempt_counted = run->attempt_counted || run->cur.status == AJ_RUN_READY;
            }
        }
        return record_failure(run, rc, sc.step);
    }
    return rc;
}

int aj_run_execute(aj_run *run, aj_step_fn fn, void *ctx)
{
    int rc = check_runnable(run, "aj_run_execute");
    if (rc)
        return rc;
    while (run->cur.status == AJ_RUN_NEW || run->cur.status == AJ_RUN_READY) {
        if ((rc = aj_run_step(run, fn, ctx)))
            return rc;
    }
    return AJ_OK;
}

/* --- acquisition in a transaction of its own ------------------------------------------ */

static int acquire_body(aj_store *s, void *arg)
{
    (void)s;
    step_call *sc = arg;
    aj_run *run = sc->run;
    save_state(run);
    reset_step(run);
    int rc = acquire_in_tx(run, 0);
    sc->record = rc == AJ_EUNKNOWN_RECOVERY_POINT;
    if (rc == AJ_OK && run->cur.status == AJ_RUN_READY) {
        /* the new token becomes the committed lock (step_settle copies seen_lock) */
        memcpy(run->seen_lock, run->tx_lock, sizeof run->tx_lock);
        run->seen_locked = run->tx_locked;
    }
    return rc;
}

int aj_run_acquire(aj_run **out, aj_store *store, const aj_workflow *wf,
                   const aj_run_params *p)
{
    if (!out)
        return aj_error_set(AJ_EINVALID, "aj_run_acquire: out is NULL");
    aj_run *run = NULL;
    int rc = aj_run_new(&run, store, wf, p);
    if (rc)
        return rc;
    if ((rc = check_runnable(run, "aj_run_acquire"))) {
        aj_run_free(run);
        return rc;
    }
    step_call sc = {run, NULL, NULL, 0, 0, NULL, aj_now_us(), 0, "", "", 0};
    rc = aj_tx(store, AJ_TXF_WRITE | AJ_TXF_RETRY, acquire_body, step_settle, &sc);
    if (rc && sc.record)
        rc = record_failure(run, rc, NULL);
    if (rc) {
        aj_saved_error err;
        aj_error_save(&err);
        aj_run_free(run);
        return aj_error_restore(&err);
    }
    *out = run;
    return AJ_OK;
}

/* --- inside a step --------------------------------------------------------------- */

int aj_run_finish(aj_run *run)
{
    int rc = aj_run_check_in_step(run, "aj_run_finish");
    if (rc)
        return rc;
    run->finish = 1;
    return AJ_OK;
}

int aj_run_release(aj_run *run)
{
    int rc = aj_run_check_in_step(run, "aj_run_release");
    if (rc)
        return rc;
    run->release = 1;
    return AJ_OK;
}

int aj_run_goto(aj_run *run, const char *step)
{
    int rc = aj_run_check_in_step(run, "aj_run_goto");
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
    if ((rc = aj_set_str(&run->error, &run->error_len, error, len)))
        return rc;
    run->error_from_step = run->in_step || run->error_from_step;
    return AJ_OK;
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
    return set_attrs(run, doc, len, 1);
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
int aj_run_attempts(const aj_run *run) { return run ? run->cur.attempts : 0; }
int aj_run_in_step(const aj_run *run) { return run ? run->in_step : 0; }

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
    restore_saved(run);
    state_free(&run->cur);
    aj_batch_reset(run);
    free(run->plan_rp);
    free(run->error);
    free(run->key);
    free(run->job_name);
    free(run->args);
    free(run->init_attrs);
    free(run->resume_adapter);
    free(run->resume_job_name);
    free(run->resume_payload);
    free(run);
}
