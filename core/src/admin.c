/*
 * Operator operations (acidic_job.h, decision 013): list, show, stats, and the actions
 * retry, reset, unlock, discard (one run or in bulk) and prune; the staged backlog.
 *
 * A run's operator state is computed in SQL (sql.c ADMIN_STATE), so that filters select
 * in the database and every caller classifies a row the same way. Actions read the row
 * as a worker does (PostgreSQL: FOR UPDATE NOWAIT, or SKIP LOCKED in bulk; SQLite: under
 * the write lock) and change it with the claim's compare-and-set (sql.c ADMIN_CAS) on
 * the recovery point and the lock it was read with, so a worker that still believes it
 * holds the run fails its next claim and writes nothing. Retries and resets stage the
 * run's resume job in the same transaction, as recovery does (recover.c).
 *
 * Results live in an arena each (util.h), freed at once by their _free function.
 */
#include "documents.h"
#include "error.h"
#include "rows.h"
#include "run.h"
#include "tx.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Columns of sql.c ADMIN_COLUMNS, then those ADMIN_FULL_COLUMNS adds. */
enum { C_ID, C_KEY, C_JOB, C_STATE, C_RP, C_ATTEMPTS, C_LOCKED_AT, C_LOCKED_BY, C_ERROR,
       C_UPDATED, C_CREATED, C_LAST_RUN, C_RECOVER, C_DEAD, C_AWAITING,
       C_ARGS, C_ATTRS, C_WORKFLOW, C_ERROR_FULL, C_RESUME_ADAPTER, C_RESUME_JOB,
       C_RESUME_ARGS, C_LOCK_TOKEN };
/* Columns of sql.c STAGED_COLUMNS and BATCH_COLUMNS. */
enum { S_ID, S_ADAPTER, S_JOB, S_PAYLOAD, S_KEY_ID, S_BATCH_ID, S_CREATED, S_DELIVERED };
enum { B_ID, B_KEY_ID, B_STEP, B_REMAINING, B_CONT_ADAPTER, B_CONT_JOB, B_CREATED, B_UPDATED };

#define PAGE_DEFAULT 50
#define BATCH_DEFAULT 100
#define LIMIT_MAX 1000

/* --- states -------------------------------------------------------------------------- */

static const struct {
    int state;
    const char *name;
} state_names[] = {
    {AJ_ADMIN_RUNNING, "running"},     {AJ_ADMIN_STRANDED, "stranded"},
    {AJ_ADMIN_FAILED, "failed"},       {AJ_ADMIN_DEAD, "dead"},
    {AJ_ADMIN_AWAITING, "awaiting"},   {AJ_ADMIN_QUEUED, "queued"},
    {AJ_ADMIN_SUCCEEDED, "succeeded"}, {AJ_ADMIN_DISCARDED, "discarded"},
};
#define N_STATES (sizeof state_names / sizeof state_names[0])

const char *aj_admin_state_name(int state)
{
    for (size_t i = 0; i < N_STATES; i++)
        if (state_names[i].state == state)
            return state_names[i].name;
    return NULL;
}

static int same_name(const char *a, const char *b)
{
    for (; *a && *b; a++, b++)
        if ((*a | 0x20) != (*b | 0x20))
            return 0;
    return *a == *b;
}

int aj_admin_state_parse(const char *name, unsigned *states)
{
    if (!name || !states)
        return aj_error_set(AJ_EINVALID, "aj_admin_state_parse: NULL argument");
    if (same_name(name, "finished")) {
        *states = AJ_ADMIN_FINISHED;
        return AJ_OK;
    }
    for (size_t i = 0; i < N_STATES; i++) {
        if (same_name(name, state_names[i].name)) {
            *states = (unsigned)state_names[i].state;
            return AJ_OK;
        }
    }
    char shown[64];
    snprintf(shown, sizeof shown, "%s", name);
    return aj_error_set(AJ_EINVALID, "unknown run state \"%s\": expected running, stranded, "
                        "failed, dead, awaiting, queued, succeeded, discarded or finished",
                        shown);
}

/* "failed, dead" for a set of states. */
static void states_text(unsigned states, char *buf, size_t cap)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < N_STATES; i++)
        if (states & (unsigned)state_names[i].state)
            used += (size_t)snprintf(buf + used, used < cap ? cap - used : 0, "%s%s",
                                     used ? ", " : "", state_names[i].name);
}

/* --- common ---------------------------------------------------------------------------- */

static int admin_usable(aj_store *store, const char *fn)
{
    int rc = aj_store_usable(store, fn);
    if (rc)
        return rc;
    if (aj_tx_active(store))
        return aj_error_set(AJ_EMISUSE, "%s inside a step: operator calls run between runs",
                            fn);
    return AJ_OK;
}

/* Locks taken after this time are live. */
static void lock_cutoff(const aj_store *s, char buf[32])
{
    aj_format_time(aj_add_ms(aj_now_us(), -s->opts.lock_timeout_ms), buf);
}

/* A time column: microseconds (PostgreSQL's @us, which a host may hand back as text)
 * or a timestamp's text (SQLite's); 0 for NULL. */
static int64_t cell_us(const aj_rows *rows, size_t r, size_t c)
{
    const aj_value *v = aj_rows_cell(rows, r, c);
    if (!v || v->type == AJ_NULL)
        return 0;
    if (v->type == AJ_INT)
        return v->integer;
    const char *text = aj_rows_text(rows, r, c, NULL);
    int64_t us = 0;
    if (text && aj_parse_time(text, &us) == 0)
        return us;
    return text && strspn(text + (*text == '-'), "0123456789") == strlen(text + (*text == '-'))
               ? strtoll(text, NULL, 10)
               : 0;
}

static char *cell_copy(aj_arena *a, const aj_rows *rows, size_t r, size_t c, size_t *len)
{
    size_t n = 0;
    const char *t = aj_rows_text(rows, r, c, &n);
    if (len)
        *len = t ? n : 0;
    return aj_arena_strndup(a, t, n);
}

/* PostgreSQL's "could not obtain lock" (NOWAIT) is an operator's AJ_ELOCKED. */
static int row_held(int rc, int64_t id)
{
    if (rc == AJ_EDATABASE && !strcmp(aj_error_state(), "55P03"))
        return aj_error_set(AJ_ELOCKED, "run %lld is held by a transaction right now (a step "
                            "in progress, or a recovery sweep): try again when it ends",
                            (long long)id);
    return rc;
}

/* --- filters ----------------------------------------------------------------------------- */

static int check_filter(const aj_admin_filter *f, const char *fn)
{
    int rc;
    if (f->version < 1)
        return aj_error_set(AJ_EINVALID, "%s: filter version %u (initialize it with "
                            "AJ_ADMIN_FILTER_INIT)", fn, f->version);
    if (f->states & ~AJ_ADMIN_ALL_STATES)
        return aj_error_set(AJ_EINVALID, "%s: unknown state bits 0x%x in the filter", fn,
                            f->states & ~AJ_ADMIN_ALL_STATES);
    if (f->job_name && (rc = aj_check_name(f->job_name, "the filter's job name")))
        return rc;
    if (f->key_prefix && (rc = aj_check_doc(f->key_prefix, strlen(f->key_prefix),
                                            "the filter's key prefix")))
        return rc;
    if (f->updated_before_us < 0 || f->updated_since_us < 0 || f->after_id < 0)
        return aj_error_set(AJ_EINVALID, "%s: the filter's times and cursor must not be "
                            "negative", fn);
    if (f->limit > LIMIT_MAX)
        return aj_error_set(AJ_EINVALID, "%s: the filter's limit is at most %d (got %zu)", fn,
                            LIMIT_MAX, f->limit);
    return AJ_OK;
}

/* The 12 parameters of sql.c ADMIN_FILTER. */
typedef struct filter_values {
    aj_value v[12];
    char before[32], since[32];
} filter_values;

static void bind_filter(const aj_admin_filter *f, unsigned states, const char *cutoff,
                        filter_values *fv)
{
    aj_value job = aj_cstr(f->job_name), prefix = aj_cstr(f->key_prefix);
    aj_value before = aj_null(), since = aj_null();
    if (f->updated_before_us) {
        aj_format_time(f->updated_before_us, fv->before);
        before = aj_cstr(fv->before);
    }
    if (f->updated_since_us) {
        aj_format_time(f->updated_since_us, fv->since);
        since = aj_cstr(fv->since);
    }
    aj_value *v = fv->v;
    v[0] = v[1] = job;
    v[2] = v[3] = v[4] = prefix;
    v[5] = v[6] = before;
    v[7] = v[8] = since;
    v[9] = aj_int(states);
    v[10] = aj_cstr(cutoff);
    v[11] = aj_int(states);
}

/* --- rows ---------------------------------------------------------------------------------- */

/* A run's row (ADMIN_COLUMNS from `rows` row r) in arena a. */
static aj_admin_run *read_run(aj_arena *a, const aj_rows *rows, size_t r)
{
    aj_admin_run *run = aj_arena_alloc(a, sizeof *run);
    if (!run)
        return NULL;
    run->version = AJ_ADMIN_RUN_VERSION;
    run->id = aj_rows_int(rows, r, C_ID);
    run->key = cell_copy(a, rows, r, C_KEY, NULL);
    run->job_name = cell_copy(a, rows, r, C_JOB, NULL);
    run->state = (int)aj_rows_int(rows, r, C_STATE);
    run->recovery_point = cell_copy(a, rows, r, C_RP, NULL);
    run->attempts = (int)aj_rows_int(rows, r, C_ATTEMPTS);
    run->locked_at_us = cell_us(rows, r, C_LOCKED_AT);
    run->locked_by = run->locked_at_us ? cell_copy(a, rows, r, C_LOCKED_BY, NULL) : NULL;
    run->updated_at_us = cell_us(rows, r, C_UPDATED);
    run->created_at_us = cell_us(rows, r, C_CREATED);
    run->last_run_at_us = cell_us(rows, r, C_LAST_RUN);
    run->recover_at_us = cell_us(rows, r, C_RECOVER);
    run->dead_at_us = cell_us(rows, r, C_DEAD);
    run->awaiting_batch_id = aj_rows_int(rows, r, C_AWAITING);
    size_t len = 0;
    const char *doc = aj_rows_text(rows, r, C_ERROR, &len);
    if (doc && len) {
        aj_admin_error *err = NULL;
        if (aj_doc_error(doc, len, &err))
            return a->oom = 1, NULL;
        run->error_class = aj_arena_strdup(a, err->class_name);
        run->error_message = aj_doc_one_line(a, err->message ? err->message : "");
        aj_admin_error_free(err);
    }
    return a->oom ? NULL : run;
}

static aj_admin_staged *read_staged(aj_arena *a, const aj_rows *rows, size_t r)
{
    aj_admin_staged *st = aj_arena_alloc(a, sizeof *st);
    if (!st)
        return NULL;
    st->version = AJ_ADMIN_STAGED_VERSION;
    st->id = aj_rows_int(rows, r, S_ID);
    st->adapter = cell_copy(a, rows, r, S_ADAPTER, NULL);
    st->job_name = cell_copy(a, rows, r, S_JOB, NULL);
    st->payload = cell_copy(a, rows, r, S_PAYLOAD, &st->payload_len);
    st->run_id = aj_rows_int(rows, r, S_KEY_ID);
    st->batch_id = aj_rows_int(rows, r, S_BATCH_ID);
    st->created_at_us = cell_us(rows, r, S_CREATED);
    st->delivered_at_us = cell_us(rows, r, S_DELIVERED);
    return a->oom ? NULL : st;
}

static aj_admin_batch *read_batch(aj_arena *a, const aj_rows *rows, size_t r)
{
    aj_admin_batch *b = aj_arena_alloc(a, sizeof *b);
    if (!b)
        return NULL;
    b->version = AJ_ADMIN_BATCH_VERSION;
    b->id = aj_rows_int(rows, r, B_ID);
    b->run_id = aj_rows_int(rows, r, B_KEY_ID);
    b->step = cell_copy(a, rows, r, B_STEP, NULL);
    b->remaining = aj_rows_int(rows, r, B_REMAINING);
    b->continuation_adapter = cell_copy(a, rows, r, B_CONT_ADAPTER, NULL);
    b->continuation_job_name = cell_copy(a, rows, r, B_CONT_JOB, NULL);
    b->created_at_us = cell_us(rows, r, B_CREATED);
    b->updated_at_us = cell_us(rows, r, B_UPDATED);
    return a->oom ? NULL : b;
}

/* The row id a key or id names (inside a transaction). */
static int resolve_run(aj_store *s, const char *key, int64_t run_id, int64_t *id)
{
    if (run_id > 0) {
        *id = run_id;
        return AJ_OK;
    }
    aj_rows rows = {0};
    aj_value k = aj_cstr(key);
    int rc = aj_store_x(s, AJ_Q_ADMIN_FIND_KEY, &k, 1, &rows);
    if (rc == AJ_OK && rows.nrows == 0)
        rc = aj_error_set(AJ_ENOTFOUND, "no run has the idempotency key \"%s\"", key);
    else if (rc == AJ_OK && rows.nrows > 1) {
        const char *job0 = aj_rows_text(&rows, 0, 1, NULL), *job1 = aj_rows_text(&rows, 1, 1, NULL);
        rc = aj_error_set(AJ_EINVALID, "the idempotency key \"%s\" names more than one run "
                          "(id %lld of job %s, id %lld of job %s, ...): name the run by its id",
                          key, (long long)aj_rows_int(&rows, 0, 0), job0 ? job0 : "?",
                          (long long)aj_rows_int(&rows, 1, 0), job1 ? job1 : "?");
    }
    else if (rc == AJ_OK)
        *id = aj_rows_int(&rows, 0, 0);
    aj_rows_clear(&rows);
    return rc;
}

/* Read the full row `id` (AJ_Q_ADMIN_GET or _LOCK) into rows; AJ_ENOTFOUND when it is
 * gone or when `key` (if given) is not its key. */
static int read_row(aj_store *s, aj_stmt stmt, int64_t id, const char *key, aj_rows *rows)
{
    char cutoff[32];
    lock_cutoff(s, cutoff);
    aj_value p[2] = {aj_cstr(cutoff), aj_int(id)};
    int rc = row_held(aj_store_x(s, stmt, p, 2, rows), id);
    if (rc)
        return rc;
    if (rows->nrows == 0)
        return aj_error_set(AJ_ENOTFOUND, "no run with id %lld in acidic_job_keys",
                            (long long)id);
    const char *stored = aj_rows_text(rows, 0, C_KEY, NULL);
    if (key && (!stored || strcmp(stored, key) != 0))
        return aj_error_set(AJ_ENOTFOUND, "run %lld has the idempotency key \"%s\", not \"%s\"",
                            (long long)id, stored ? stored : "", key);
    return AJ_OK;
}

static int check_target(const char *key, int64_t run_id, const char *fn)
{
    if (run_id < 0)
        return aj_error_set(AJ_EINVALID, "%s: run_id must not be negative", fn);
    if (run_id == 0 && !key)
        return aj_error_set(AJ_EINVALID, "%s: name the run by its key or its id", fn);
    return key ? aj_check_name(key, "idempotency key") : AJ_OK;
}

/* --- list ----------------------------------------------------------------------------------- */

typedef struct page_box {
    aj_admin_page pub;
    aj_arena mem;
} page_box;

void aj_admin_page_free(aj_admin_page *page)
{
    if (!page)
        return;
    page_box *box = (page_box *)page;
    aj_arena_free(&box->mem);
    free(box);
}

typedef struct list_call {
    const aj_admin_filter *f;
    page_box *box;
} list_call;

static int list_body(aj_store *s, void *arg)
{
    list_call *lc = arg;
    const aj_admin_filter *f = lc->f;
    page_box *box = lc->box;
    aj_arena_free(&box->mem); /* a retried transaction starts over */
    memset(&box->pub, 0, sizeof box->pub);
    box->pub.version = AJ_ADMIN_PAGE_VERSION;
    size_t limit = f->limit ? f->limit : PAGE_DEFAULT;
    char cutoff[32];
    lock_cutoff(s, cutoff);
    filter_values fv;
    bind_filter(f, f->states, cutoff, &fv);
    aj_value p[15];
    p[0] = aj_cstr(cutoff);
    p[1] = aj_int(f->descending && !f->after_id ? INT64_MAX : f->after_id);
    memcpy(p + 2, fv.v, sizeof fv.v);
    p[14] = aj_int((int64_t)limit + 1); /* one more: is there a next page? */
    aj_rows rows = {0};
    int rc = aj_store_x(s, f->descending ? AJ_Q_ADMIN_LIST_DESC : AJ_Q_ADMIN_LIST, p, 15, &rows);
    if (rc)
        return rc;
    size_t n = rows.nrows > limit ? limit : rows.nrows;
    const aj_admin_run **runs = aj_arena_alloc(&box->mem, (n ? n : 1) * sizeof *runs);
    for (size_t r = 0; runs && r < n; r++)
        if (!(runs[r] = read_run(&box->mem, &rows, r)))
            break;
    box->pub.runs = runs;
    box->pub.count = n;
    box->pub.next_cursor = rows.nrows > limit && !box->mem.oom ? runs[n - 1]->id : 0;
    aj_rows_clear(&rows);
    return box->mem.oom ? aj_error_set(AJ_ENOMEM, "out of memory") : AJ_OK;
}

int aj_admin_list(aj_store *store, const aj_admin_filter *filter, aj_admin_page **out)
{
    int rc = admin_usable(store, "aj_admin_list");
    if (rc)
        return rc;
    if (!out)
        return aj_error_set(AJ_EINVALID, "aj_admin_list: out is NULL");
    aj_admin_filter all = AJ_ADMIN_FILTER_INIT;
    if (!filter)
        filter = &all;
    if ((rc = check_filter(filter, "aj_admin_list")))
        return rc;
    page_box *box = calloc(1, sizeof *box);
    if (!box)
        return aj_error_set(AJ_ENOMEM, "out of memory");
    list_call lc = {filter, box};
    if ((rc = aj_tx(store, AJ_TXF_RETRY, list_body, NULL, &lc))) {
        aj_admin_page_free(&box->pub);
        return rc;
    }
    *out = &box->pub;
    return AJ_OK;
}

/* --- show ------------------------------------------------------------------------------------- */

typedef struct detail_box {
    aj_admin_detail pub;
    aj_arena mem;
    aj_admin_error *error; /* documents.c's, freed with it */
} detail_box;

void aj_admin_detail_free(aj_admin_detail *detail)
{
    if (!detail)
        return;
    detail_box *box = (detail_box *)detail;
    aj_admin_error_free(box->error);
    aj_arena_free(&box->mem);
    free(box);
}

typedef struct show_call {
    const char *key;
    int64_t run_id;
    detail_box *box;
} show_call;

/* The steps of the recorded workflow, placed against the recovery point. */
static void read_steps(detail_box *box, const char *rp)
{
    aj_arena *a = &box->mem;
    aj_doc_workflow wf;
    if (aj_doc_workflow_read(a, box->pub.workflow, box->pub.workflow_len, &wf))
        return;
    const aj_admin_step **steps = aj_arena_alloc(a, (wf.count ? wf.count : 1) * sizeof *steps);
    if (!steps)
        return;
    int finished = rp && !strcmp(rp, AJ_RECOVERY_POINT_FINISHED);
    long current = rp ? aj_doc_workflow_find(&wf, rp) : -1;
    for (size_t i = 0; i < wf.count; i++) {
        aj_admin_step *st = aj_arena_alloc(a, sizeof *st);
        if (!st)
            return;
        st->version = AJ_ADMIN_STEP_VERSION;
        st->name = wf.steps[i].name;
        st->awaits = wf.steps[i].awaits;
        st->n_awaits = wf.steps[i].n_awaits;
        st->state = finished || (current >= 0 && (long)i < current) ? AJ_ADMIN_STEP_DONE
                    : (long)i == current                             ? AJ_ADMIN_STEP_CURRENT
                                                                     : AJ_ADMIN_STEP_PENDING;
        steps[i] = st;
    }
    box->pub.steps = steps;
    box->pub.n_steps = wf.count;
}

static int show_body(aj_store *s, void *arg)
{
    show_call *sc = arg;
    detail_box *box = sc->box;
    aj_admin_error_free(box->error); /* a retried transaction starts over */
    box->error = NULL;
    aj_arena_free(&box->mem);
    memset(&box->pub, 0, sizeof box->pub);
    box->pub.version = AJ_ADMIN_DETAIL_VERSION;
    aj_arena *a = &box->mem;
    int64_t id = 0;
    aj_rows rows = {0}, staged = {0}, batch = {0};
    int rc = resolve_run(s, sc->key, sc->run_id, &id);
    if (rc == AJ_OK)
        rc = read_row(s, AJ_Q_ADMIN_GET, id, sc->run_id > 0 ? sc->key : NULL, &rows);
    if (rc)
        goto out;
    aj_admin_detail *d = &box->pub;
    const aj_admin_run *run = read_run(a, &rows, 0);
    d->run = run;
    d->job_args = cell_copy(a, &rows, 0, C_ARGS, &d->job_args_len);
    d->attributes = cell_copy(a, &rows, 0, C_ATTRS, &d->attributes_len);
    d->workflow = cell_copy(a, &rows, 0, C_WORKFLOW, &d->workflow_len);
    d->error_document = cell_copy(a, &rows, 0, C_ERROR_FULL, &d->error_document_len);
    d->resume_adapter = cell_copy(a, &rows, 0, C_RESUME_ADAPTER, NULL);
    d->resume_job_name = cell_copy(a, &rows, 0, C_RESUME_JOB, NULL);
    d->resume_payload = cell_copy(a, &rows, 0, C_RESUME_ARGS, &d->resume_payload_len);
    if (!run || a->oom)
        goto oom;
    read_steps(box, run->recovery_point);
    if (d->error_document && d->error_document_len) {
        if ((rc = aj_doc_error(d->error_document, d->error_document_len, &box->error)))
            goto out;
        d->error = box->error;
    }
    aj_value sp[2] = {aj_int(id), run->awaiting_batch_id ? aj_int(run->awaiting_batch_id)
                                                         : aj_null()};
    if ((rc = aj_store_x(s, AJ_Q_ADMIN_STAGED, sp, 2, &staged)))
        goto out;
    const aj_admin_staged **list = aj_arena_alloc(a, (staged.nrows ? staged.nrows : 1) *
                                                         sizeof *list);
    for (size_t r = 0; list && r < staged.nrows; r++)
        if (!(list[r] = read_staged(a, &staged, r)))
            goto oom;
    d->staged = list;
    d->n_staged = list ? staged.nrows : 0;
    if (run->awaiting_batch_id) {
        aj_value bp = aj_int(run->awaiting_batch_id);
        if ((rc = aj_store_x(s, AJ_Q_ADMIN_BATCH, &bp, 1, &batch)))
            goto out;
        if (batch.nrows)
            d->batch = read_batch(a, &batch, 0);
    }
    if (a->oom)
        goto oom;
out:
    aj_rows_clear(&rows);
    aj_rows_clear(&staged);
    aj_rows_clear(&batch);
    return rc;
oom:
    rc = aj_error_set(AJ_ENOMEM, "out of memory");
    goto out;
}

int aj_admin_show(aj_store *store, const char *key, int64_t run_id, aj_admin_detail **out)
{
    int rc = admin_usable(store, "aj_admin_show");
    if (rc)
        return rc;
    if (!out)
        return aj_error_set(AJ_EINVALID, "aj_admin_show: out is NULL");
    if ((rc = check_target(key, run_id, "aj_admin_show")))
        return rc;
    detail_box *box = calloc(1, sizeof *box);
    if (!box)
        return aj_error_set(AJ_ENOMEM, "out of memory");
    show_call sc = {key, run_id, box};
    if ((rc = aj_tx(store, AJ_TXF_RETRY, show_body, NULL, &sc))) {
        aj_admin_detail_free(&box->pub);
        return rc;
    }
    *out = &box->pub;
    return AJ_OK;
}

/* --- actions ---------------------------------------------------------------------------------- */

static const char *action_name(int action)
{
    switch (action) {
    case AJ_ADMIN_RETRY: return "retry";
    case AJ_ADMIN_RESET: return "reset";
    case AJ_ADMIN_UNLOCK: return "unlock";
    case AJ_ADMIN_DISCARD: return "discard";
    default: return NULL;
    }
}

/* The states an action applies to (a live lock needs AJ_ADMIN_FORCE besides). */
static unsigned action_states(int action)
{
    switch (action) {
    case AJ_ADMIN_RETRY:
        return AJ_ADMIN_RUNNING | AJ_ADMIN_STRANDED | AJ_ADMIN_FAILED | AJ_ADMIN_DEAD |
               AJ_ADMIN_QUEUED;
    case AJ_ADMIN_RESET:
        return AJ_ADMIN_ALL_STATES;
    case AJ_ADMIN_UNLOCK:
        return AJ_ADMIN_RUNNING | AJ_ADMIN_STRANDED;
    default: /* discard */
        return AJ_ADMIN_ALL_STATES & ~AJ_ADMIN_FINISHED;
    }
}

/* Why an action does not apply to a run in `state` (AJ_ESTATE). */
static int refuse_state(int action, int64_t id, const char *key, int state)
{
    const char *what = aj_admin_state_name(state);
    const char *hint =
        state & AJ_ADMIN_FINISHED ? "; reset it to a step to run steps of it again"
        : state == AJ_ADMIN_AWAITING ? ": it resumes when its awaited jobs are done (reset it "
                                       "to a step to stop waiting, or discard it)"
        : action == AJ_ADMIN_UNLOCK ? ": it is not locked"
                                    : "";
    return aj_error_set(AJ_ESTATE, "cannot %s run %lld (key \"%s\"): it is %s%s",
                        action_name(action), (long long)id, key, what ? what : "in no known state",
                        hint);
}

typedef struct action {
    int action;
    const char *step;
    unsigned flags;
} action;

/* Apply `a` to the row r of `rows` (ADMIN_FULL_COLUMNS), read in this transaction with
 * the row lock a worker takes. AJ_ELOCKED, AJ_ESTATE and AJ_EUNKNOWN_RECOVERY_POINT are
 * refusals (nothing written); AJ_ECONFLICT means the row changed since it was read. */
static int act_on_row(aj_store *s, const action *a, const aj_rows *rows, size_t r)
{
    int64_t id = aj_rows_int(rows, r, C_ID);
    const char *key = aj_rows_text(rows, r, C_KEY, NULL);
    int state = (int)aj_rows_int(rows, r, C_STATE);
    const char *rp = aj_rows_text(rows, r, C_RP, NULL);
    const char *token = aj_rows_text(rows, r, C_LOCK_TOKEN, NULL);
    key = key ? key : "";
    rp = rp ? rp : "";
    if (state == AJ_ADMIN_RUNNING && !(a->flags & AJ_ADMIN_FORCE)) {
        const char *by = aj_rows_text(rows, r, C_LOCKED_BY, NULL);
        char since[32], timeout[32];
        aj_format_time(cell_us(rows, r, C_LOCKED_AT), since);
        aj_format_duration(s->opts.lock_timeout_ms, timeout);
        return aj_error_set(AJ_ELOCKED, "cannot %s run %lld (key \"%s\"): it is locked by %s "
                            "since %.19s UTC, within the lock timeout (%s), so its worker may be "
                            "running it now. Wait for it; if that worker is dead, %s with force",
                            action_name(a->action), (long long)id, key, by ? by : "a worker",
                            since, timeout, a->action == AJ_ADMIN_UNLOCK ? "unlock it" : "act");
    }
    if (!(action_states(a->action) & (unsigned)state))
        return refuse_state(a->action, id, key, state);
    char later[32];
    aj_format_time(aj_add_ms(aj_now_us(), s->opts.lock_timeout_ms), later);
    aj_value cas[3] = {aj_int(id), aj_cstr(rp), aj_cstr(token)};
    aj_rows matched = {0};
    int rc;
    if (a->action == AJ_ADMIN_RETRY || a->action == AJ_ADMIN_RESET) {
        const char *target = rp;
        if (a->action == AJ_ADMIN_RESET) {
            aj_arena tmp = {0};
            aj_doc_workflow wf;
            size_t wlen = 0;
            const char *doc = aj_rows_text(rows, r, C_WORKFLOW, &wlen);
            rc = aj_doc_workflow_read(&tmp, doc, wlen, &wf);
            long at = rc ? -1 : aj_doc_workflow_find(&wf, a->step);
            if (rc == AJ_OK && at < 0) {
                aj_buf names = {0};
                for (size_t i = 0; i < wf.count; i++) {
                    aj_buf_puts(&names, i ? ", " : "");
                    aj_buf_puts(&names, wf.steps[i].name);
                }
                char *list = NULL;
                if (aj_buf_take(&names, &list) == AJ_OK) {
                    rc = wf.count ? aj_error_set(AJ_EUNKNOWN_RECOVERY_POINT, "cannot reset run "
                                                 "%lld (key \"%s\") to \"%s\": its workflow has "
                                                 "no such step (its steps: %s)", (long long)id,
                                                 key, a->step, list)
                                  : aj_error_set(AJ_EUNKNOWN_RECOVERY_POINT, "cannot reset run "
                                                 "%lld (key \"%s\") to \"%s\": no workflow is "
                                                 "recorded on it to check the step against",
                                                 (long long)id, key, a->step);
                    free(list);
                } else {
                    rc = AJ_ENOMEM;
                }
            }
            aj_arena_free(&tmp);
            if (rc)
                return rc;
            target = a->step;
        }
        const char *adapter = aj_rows_text(rows, r, C_RESUME_ADAPTER, NULL);
        const char *job = aj_rows_text(rows, r, C_RESUME_JOB, NULL);
        size_t plen = 0;
        const char *payload = aj_rows_text(rows, r, C_RESUME_ARGS, &plen);
        int enqueue = !(a->flags & AJ_ADMIN_NO_ENQUEUE);
        if (enqueue && (!adapter || !job))
            return aj_error_set(AJ_ESTATE, "cannot %s run %lld (key \"%s\"): it has no resume "
                                "description (written by acidic_job 0.7.0, or by a binding that "
                                "gave none), so the core cannot enqueue it: %s it without "
                                "enqueueing (AJ_ADMIN_NO_ENQUEUE) and enqueue its job yourself",
                                action_name(a->action), (long long)id, key,
                                action_name(a->action));
        aj_value p[5] = {aj_cstr(target), aj_cstr(later), cas[0], cas[1], cas[2]};
        if ((rc = aj_store_x(s, AJ_Q_ADMIN_REQUEUE, p, 5, &matched)) == AJ_OK && matched.nrows &&
            enqueue)
            rc = aj_outbox_stage(s, id, 0, adapter, job, payload ? payload : "", plen, NULL);
    } else if (a->action == AJ_ADMIN_UNLOCK) {
        char now[32];
        aj_format_time(aj_now_us(), now);
        aj_value p[4] = {aj_cstr(now), cas[0], cas[1], cas[2]};
        rc = aj_store_x(s, AJ_Q_ADMIN_UNLOCK, p, 4, &matched);
    } else {
        static const char discarded[] =
            "{\"class\":\"acidic_job.Discarded\",\"message\":\"discarded by an operator\"}";
        aj_value p[4] = {aj_cstr(discarded), cas[0], cas[1], cas[2]};
        rc = aj_store_x(s, AJ_Q_ADMIN_DISCARD, p, 4, &matched);
    }
    size_t n = matched.nrows;
    aj_rows_clear(&matched);
    if (rc == AJ_OK && n != 1)
        rc = aj_error_set(AJ_ECONFLICT, "run %lld changed while the operator's %s read it",
                          (long long)id, action_name(a->action));
    return rc;
}

typedef struct one_call {
    action a;
    const char *key;
    int64_t run_id;
} one_call;

static int one_body(aj_store *s, void *arg)
{
    one_call *oc = arg;
    int64_t id = 0;
    aj_rows rows = {0};
    int rc = resolve_run(s, oc->key, oc->run_id, &id);
    if (rc == AJ_OK)
        rc = read_row(s, AJ_Q_ADMIN_LOCK, id, oc->run_id > 0 ? oc->key : NULL, &rows);
    if (rc == AJ_OK)
        rc = act_on_row(s, &oc->a, &rows, 0);
    aj_rows_clear(&rows);
    return rc;
}

static int check_action(int action, const char *step, unsigned flags, const char *fn)
{
    if (!action_name(action))
        return aj_error_set(AJ_EINVALID, "%s: unknown action %d", fn, action);
    if (flags & ~(unsigned)(AJ_ADMIN_FORCE | AJ_ADMIN_NO_ENQUEUE))
        return aj_error_set(AJ_EINVALID, "%s: unknown flags 0x%x", fn,
                            flags & ~(unsigned)(AJ_ADMIN_FORCE | AJ_ADMIN_NO_ENQUEUE));
    if (action == AJ_ADMIN_RESET)
        return aj_check_name(step, "the step to reset to");
    if (step)
        return aj_error_set(AJ_EINVALID, "%s: a step is the target of a reset only", fn);
    return AJ_OK;
}

static int act_one(aj_store *s, const char *fn, int action, const char *key, int64_t run_id,
                   const char *step, unsigned flags)
{
    int rc = admin_usable(s, fn);
    if (rc || (rc = check_target(key, run_id, fn)) || (rc = check_action(action, step, flags, fn)))
        return rc;
    one_call oc = {{action, step, flags}, key, run_id};
    return aj_tx(s, AJ_TXF_WRITE | AJ_TXF_RETRY, one_body, NULL, &oc);
}

int aj_admin_retry(aj_store *store, const char *key, int64_t run_id, unsigned flags)
{
    return act_one(store, "aj_admin_retry", AJ_ADMIN_RETRY, key, run_id, NULL, flags);
}

int aj_admin_reset(aj_store *store, const char *key, int64_t run_id, const char *step,
                   unsigned flags)
{
    return act_one(store, "aj_admin_reset", AJ_ADMIN_RESET, key, run_id, step, flags);
}

int aj_admin_unlock(aj_store *store, const char *key, int64_t run_id, unsigned flags)
{
    return act_one(store, "aj_admin_unlock", AJ_ADMIN_UNLOCK, key, run_id, NULL, flags);
}

int aj_admin_discard(aj_store *store, const char *key, int64_t run_id, unsigned flags)
{
    return act_one(store, "aj_admin_discard", AJ_ADMIN_DISCARD, key, run_id, NULL, flags);
}

/* --- bulk ------------------------------------------------------------------------------------- */

/* How many runs the filter selects (its own transaction). */
typedef struct count_call {
    const aj_admin_filter *f;
    unsigned states;
    size_t count;
} count_call;

static int count_body(aj_store *s, void *arg)
{
    count_call *cc = arg;
    char cutoff[32];
    lock_cutoff(s, cutoff);
    filter_values fv;
    bind_filter(cc->f, cc->states, cutoff, &fv);
    aj_rows rows = {0};
    int rc = aj_store_x(s, AJ_Q_ADMIN_COUNT, fv.v, 12, &rows);
    cc->count = rc ? 0 : (size_t)aj_rows_int(&rows, 0, 0);
    aj_rows_clear(&rows);
    return rc;
}

typedef struct bulk_call {
    const aj_admin_filter *f;
    unsigned states;
    action a;
    size_t limit;
    int64_t after;  /* the cursor */
    size_t seen;    /* rows of the last page */
    size_t changed, skipped;
    int64_t last_id;
} bulk_call;

static int bulk_body(aj_store *s, void *arg)
{
    bulk_call *bc = arg;
    bc->seen = bc->changed = bc->skipped = 0;
    bc->last_id = bc->after;
    char cutoff[32];
    lock_cutoff(s, cutoff);
    filter_values fv;
    bind_filter(bc->f, bc->states, cutoff, &fv);
    aj_value p[15];
    p[0] = aj_cstr(cutoff);
    p[1] = aj_int(bc->after);
    memcpy(p + 2, fv.v, sizeof fv.v);
    p[14] = aj_int((int64_t)bc->limit);
    aj_rows rows = {0};
    int rc = aj_store_x(s, AJ_Q_ADMIN_PICK, p, 15, &rows);
    bc->seen = rc ? 0 : rows.nrows;
    for (size_t r = 0; rc == AJ_OK && r < rows.nrows; r++) {
        bc->last_id = aj_rows_int(&rows, r, C_ID);
        rc = act_on_row(s, &bc->a, &rows, r);
        if (rc == AJ_OK) {
            bc->changed++;
        } else if (rc == AJ_ELOCKED || rc == AJ_ESTATE || rc == AJ_EUNKNOWN_RECOVERY_POINT) {
            bc->skipped++; /* refused: nothing written for it */
            aj_error_clear();
            rc = AJ_OK;
        }
    }
    aj_rows_clear(&rows);
    return rc;
}

int aj_admin_bulk(aj_store *store, int act, const char *step, const aj_admin_filter *filter,
                  unsigned flags, aj_admin_progress_fn progress, void *ctx, size_t *changed,
                  size_t *skipped)
{
    const char *fn = "aj_admin_bulk";
    size_t n_changed = 0, n_skipped = 0;
    int rc = admin_usable(store, fn);
    if (rc || (rc = check_action(act, step, flags, fn)))
        return rc;
    if (!filter)
        return aj_error_set(AJ_EINVALID, "%s: filter is NULL (select the runs to act on)", fn);
    if ((rc = check_filter(filter, fn)))
        return rc;
    unsigned states = filter->states;
    if (!states)
        states = act == AJ_ADMIN_UNLOCK ? AJ_ADMIN_STRANDED : AJ_ADMIN_FAILED | AJ_ADMIN_DEAD;
    unsigned allowed = action_states(act);
    if (!(flags & AJ_ADMIN_FORCE))
        allowed &= ~(unsigned)AJ_ADMIN_RUNNING;
    if (states & ~allowed) {
        char names[128];
        states_text(states & ~allowed, names, sizeof names);
        return aj_error_set(AJ_EINVALID, "%s: %s does not apply to %s runs%s: leave them out of "
                            "the filter's states", fn, action_name(act), names,
                            (states & ~allowed) == AJ_ADMIN_RUNNING ? " without force" : "");
    }
    count_call cc = {filter, states, 0};
    if ((rc = aj_tx(store, AJ_TXF_RETRY, count_body, NULL, &cc)))
        return rc;
    bulk_call bc = {filter, states, {act, step, flags}, filter->limit ? filter->limit
                                                                      : BATCH_DEFAULT,
                    filter->after_id, 0, 0, 0, 0};
    int first = 1;
    for (;;) {
        if ((rc = aj_tx(store, AJ_TXF_WRITE | AJ_TXF_RETRY, bulk_body, NULL, &bc)))
            break;
        n_changed += bc.changed;
        n_skipped += bc.skipped;
        bc.after = bc.last_id;
        /* reported after each transaction that saw runs, and at least once */
        if (progress && (bc.seen || first) && progress(ctx, n_changed + n_skipped, cc.count))
            break;
        first = 0;
        if (bc.seen < bc.limit)
            break; /* the page reached the end */
    }
    if (changed)
        *changed = n_changed;
    if (skipped)
        *skipped = n_skipped;
    return rc;
}

/* --- prune ------------------------------------------------------------------------------------ */

typedef struct prune_call {
    const aj_admin_filter *f;
    unsigned states;
    size_t limit;
    int64_t after;
    size_t deleted;
    int64_t last_id;
} prune_call;

static int prune_body(aj_store *s, void *arg)
{
    prune_call *pc = arg;
    pc->deleted = 0;
    pc->last_id = pc->after;
    char cutoff[32];
    lock_cutoff(s, cutoff);
    filter_values fv;
    bind_filter(pc->f, pc->states, cutoff, &fv);
    aj_value p[14];
    p[0] = aj_int(pc->after);
    memcpy(p + 1, fv.v, sizeof fv.v);
    p[13] = aj_int((int64_t)pc->limit);
    aj_rows rows = {0};
    int rc = aj_store_x(s, AJ_Q_ADMIN_PRUNE, p, 14, &rows);
    if (rc == AJ_OK) {
        pc->deleted = rows.nrows;
        for (size_t r = 0; r < rows.nrows; r++) /* RETURNING has no order */
            if (aj_rows_int(&rows, r, 0) > pc->last_id)
                pc->last_id = aj_rows_int(&rows, r, 0);
    }
    aj_rows_clear(&rows);
    return rc;
}

int aj_admin_prune(aj_store *store, const aj_admin_filter *filter,
                   aj_admin_progress_fn progress, void *ctx, size_t *deleted)
{
    const char *fn = "aj_admin_prune";
    size_t total = 0;
    int rc = admin_usable(store, fn);
    if (rc)
        return rc;
    if (!filter)
        return aj_error_set(AJ_EINVALID, "%s: filter is NULL (give at least the age: "
                            "updated_before_us)", fn);
    if ((rc = check_filter(filter, fn)))
        return rc;
    if (!filter->updated_before_us)
        return aj_error_set(AJ_EINVALID, "%s: give the age of the runs to delete "
                            "(updated_before_us, e.g. now - 7 days)", fn);
    unsigned states = filter->states ? filter->states : AJ_ADMIN_FINISHED;
    if (states & ~(unsigned)AJ_ADMIN_FINISHED) {
        char names[128];
        states_text(states & ~(unsigned)AJ_ADMIN_FINISHED, names, sizeof names);
        return aj_error_set(AJ_EINVALID, "%s: only finished runs are pruned, not %s ones", fn,
                            names);
    }
    count_call cc = {filter, states, 0};
    if ((rc = aj_tx(store, AJ_TXF_RETRY, count_body, NULL, &cc)))
        return rc;
    prune_call pc = {filter, states, filter->limit ? filter->limit : BATCH_DEFAULT,
                     filter->after_id, 0, 0};
    int first = 1;
    for (;;) {
        if ((rc = aj_tx(store, AJ_TXF_WRITE | AJ_TXF_RETRY, prune_body, NULL, &pc)))
            break;
        total += pc.deleted;
        pc.after = pc.last_id;
        if (progress && (pc.deleted || first) && progress(ctx, total, cc.count))
            break;
        first = 0;
        if (pc.deleted < pc.limit)
            break;
    }
    if (deleted)
        *deleted = total;
    return rc;
}

/* --- stats ------------------------------------------------------------------------------------ */

typedef struct stats_box {
    aj_admin_stats pub;
    aj_arena mem;
} stats_box;

void aj_admin_stats_free(aj_admin_stats *stats)
{
    if (!stats)
        return;
    stats_box *box = (stats_box *)stats;
    aj_arena_free(&box->mem);
    free(box);
}

static aj_admin_count *new_count(aj_arena *a, const char *job, int state, size_t count)
{
    aj_admin_count *c = aj_arena_alloc(a, sizeof *c);
    if (c) {
        c->version = AJ_ADMIN_COUNT_VERSION;
        c->job_name = job;
        c->state = state;
        c->count = count;
    }
    return c;
}

static int stats_body(aj_store *s, void *arg)
{
    stats_box *box = arg;
    aj_arena_free(&box->mem); /* a retried transaction starts over */
    memset(&box->pub, 0, sizeof box->pub);
    box->pub.version = AJ_ADMIN_STATS_VERSION;
    aj_admin_stats *st = &box->pub;
    aj_arena *a = &box->mem;
    char cutoff[32];
    lock_cutoff(s, cutoff);
    aj_value c1 = aj_cstr(cutoff), c2[2] = {aj_cstr(cutoff), aj_cstr(cutoff)};
    aj_rows states = {0}, stranded = {0}, backlog = {0}, staged = {0}, batch = {0};
    int rc;
    if ((rc = aj_store_x(s, AJ_Q_ADMIN_STATES, &c1, 1, &states)) ||
        (rc = aj_store_x(s, AJ_Q_ADMIN_STRANDED, c2, 2, &stranded)) ||
        (rc = aj_store_x(s, AJ_Q_ADMIN_BACKLOG, NULL, 0, &backlog)) ||
        (rc = aj_store_x(s, AJ_Q_ADMIN_OLDEST_STAGED, NULL, 0, &staged)) ||
        (rc = aj_store_x(s, AJ_Q_ADMIN_OLDEST_BATCH, NULL, 0, &batch)))
        goto out;
    /* job_name, state, count: by job, then state */
    const aj_admin_count **jobs = aj_arena_alloc(a, (states.nrows ? states.nrows : 1) *
                                                        sizeof *jobs);
    const aj_admin_count **totals = aj_arena_alloc(a, N_STATES * sizeof *totals);
    size_t by_state[N_STATES] = {0};
    for (size_t r = 0; jobs && totals && r < states.nrows; r++) {
        int state = (int)aj_rows_int(&states, r, 1);
        size_t count = (size_t)aj_rows_int(&states, r, 2);
        jobs[r] = new_count(a, cell_copy(a, &states, r, 0, NULL), state, count);
        st->total += count;
        for (size_t i = 0; i < N_STATES; i++)
            if (state_names[i].state == state)
                by_state[i] += count;
    }
    st->jobs = jobs;
    st->n_jobs = jobs ? states.nrows : 0;
    for (size_t i = 0; totals && i < N_STATES; i++)
        if (by_state[i])
            totals[st->n_states++] = new_count(a, NULL, state_names[i].state, by_state[i]);
    st->states = totals;
    if (stranded.nrows)
        st->oldest_stranded = read_run(a, &stranded, 0);
    st->staged_backlog = (size_t)aj_rows_int(&backlog, 0, 0);
    st->open_batches = (size_t)aj_rows_int(&backlog, 0, 1);
    if (staged.nrows)
        st->oldest_staged = read_staged(a, &staged, 0);
    if (batch.nrows)
        st->oldest_batch = read_batch(a, &batch, 0);
    if (a->oom)
        rc = aj_error_set(AJ_ENOMEM, "out of memory");
out:
    aj_rows_clear(&states);
    aj_rows_clear(&stranded);
    aj_rows_clear(&backlog);
    aj_rows_clear(&staged);
    aj_rows_clear(&batch);
    return rc;
}

int aj_admin_stats_read(aj_store *store, aj_admin_stats **out)
{
    int rc = admin_usable(store, "aj_admin_stats_read");
    if (rc)
        return rc;
    if (!out)
        return aj_error_set(AJ_EINVALID, "aj_admin_stats_read: out is NULL");
    stats_box *box = calloc(1, sizeof *box);
    if (!box)
        return aj_error_set(AJ_ENOMEM, "out of memory");
    if ((rc = aj_tx(store, AJ_TXF_RETRY, stats_body, NULL, box))) {
        aj_admin_stats_free(&box->pub);
        return rc;
    }
    *out = &box->pub;
    return AJ_OK;
}

/* --- the staged backlog ------------------------------------------------------------------------ */

typedef struct staged_page_box {
    aj_admin_staged_page pub;
    aj_arena mem;
} staged_page_box;

void aj_admin_staged_page_free(aj_admin_staged_page *page)
{
    if (!page)
        return;
    staged_page_box *box = (staged_page_box *)page;
    aj_arena_free(&box->mem);
    free(box);
}

typedef struct staged_list_call {
    int64_t after_id;
    size_t limit;
    staged_page_box *box;
} staged_list_call;

static int staged_list_body(aj_store *s, void *arg)
{
    staged_list_call *lc = arg;
    staged_page_box *box = lc->box;
    aj_arena_free(&box->mem); /* a retried transaction starts over */
    memset(&box->pub, 0, sizeof box->pub);
    box->pub.version = AJ_ADMIN_STAGED_PAGE_VERSION;
    aj_value p[2] = {aj_int(lc->after_id), aj_int((int64_t)lc->limit + 1)}; /* one more:
                                                                           a next page? */
    aj_rows rows = {0};
    int rc = aj_store_x(s, AJ_Q_ADMIN_STAGED_PAGE, p, 2, &rows);
    if (rc)
        return rc;
    size_t n = rows.nrows > lc->limit ? lc->limit : rows.nrows;
    const aj_admin_staged **list = aj_arena_alloc(&box->mem, (n ? n : 1) * sizeof *list);
    for (size_t r = 0; list && r < n; r++)
        if (!(list[r] = read_staged(&box->mem, &rows, r)))
            break;
    box->pub.staged = list;
    box->pub.count = n;
    box->pub.next_cursor = rows.nrows > lc->limit && !box->mem.oom ? list[n - 1]->id : 0;
    aj_rows_clear(&rows);
    return box->mem.oom ? aj_error_set(AJ_ENOMEM, "out of memory") : AJ_OK;
}

int aj_admin_staged_list(aj_store *store, int64_t after_id, size_t limit,
                         aj_admin_staged_page **out)
{
    int rc = admin_usable(store, "aj_admin_staged_list");
    if (rc)
        return rc;
    if (!out)
        return aj_error_set(AJ_EINVALID, "aj_admin_staged_list: out is NULL");
    if (after_id < 0)
        return aj_error_set(AJ_EINVALID, "aj_admin_staged_list: the cursor must not be "
                            "negative");
    if (limit > LIMIT_MAX)
        return aj_error_set(AJ_EINVALID, "aj_admin_staged_list: the limit is at most %d "
                            "(got %zu)", LIMIT_MAX, limit);
    staged_page_box *box = calloc(1, sizeof *box);
    if (!box)
        return aj_error_set(AJ_ENOMEM, "out of memory");
    staged_list_call lc = {after_id, limit ? limit : PAGE_DEFAULT, box};
    if ((rc = aj_tx(store, AJ_TXF_RETRY, staged_list_body, NULL, &lc))) {
        aj_admin_staged_page_free(&box->pub);
        return rc;
    }
    *out = &box->pub;
    return AJ_OK;
}
