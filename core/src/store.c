#include "store.h"
#include "error.h"
#include "rows.h"
#include "schema.h"
#include "tx.h"
#include "util.h"

#include <limits.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

aj_value aj_cstr(const char *s) { return aj_text(s, s ? strlen(s) : 0); }

/* --- options: defaults and validation, decided here only --------------------- */

int aj_options_init(aj_options *opts, unsigned int version)
{
    if (!opts)
        return aj_error_set(AJ_EINVALID, "aj_options_init: opts is NULL");
    if (version != AJ_OPTIONS_VERSION)
        return aj_error_set(AJ_EINVALID, "aj_options_init: unknown version %u (this library "
                            "knows %u)", version, AJ_OPTIONS_VERSION);
    aj_options init = AJ_OPTIONS_INIT;
    *opts = init;
    return AJ_OK;
}

static int check_ms(int64_t *v, int64_t dflt, const char *name)
{
    if (*v == AJ_UNSET) {
        *v = dflt;
        return AJ_OK;
    }
    if (*v < 0)
        return aj_error_set(AJ_EINVALID, "option %s must not be negative (got %lld); leave it "
                            "unset for the default", name, (long long)*v);
    if (*v > AJ_MAX_DURATION_MS) /* "never": no arithmetic with it can overflow */
        *v = AJ_MAX_DURATION_MS;
    return AJ_OK;
}

static int check_int(int *v, int dflt, int max, const char *name)
{
    if (*v == AJ_UNSET) {
        *v = dflt;
        return AJ_OK;
    }
    if (*v < 0 || *v > max)
        return aj_error_set(AJ_EINVALID, "option %s must be between 0 and %d (got %d); leave "
                            "it unset for the default", name, max, *v);
    return AJ_OK;
}

static int resolve_options(const aj_options *given, aj_options *out)
{
    aj_options o = AJ_OPTIONS_INIT;
    if (given) {
        if (given->version != AJ_OPTIONS_VERSION)
            return aj_error_set(AJ_EINVALID, "options: unknown version %u (initialize them "
                                "with AJ_OPTIONS_INIT or aj_options_init)", given->version);
        o = *given;
    }
    int rc;
    if ((rc = check_ms(&o.lock_timeout_ms, 90000, "lock_timeout_ms")) ||
        (rc = check_ms(&o.busy_timeout_ms, 5000, "busy_timeout_ms")) ||
        (rc = check_ms(&o.retry_base_ms, 15000, "retry_base_ms")) ||
        (rc = check_int(&o.synchronous, AJ_SYNC_FULL, AJ_SYNC_OFF, "synchronous")) ||
        (rc = check_int(&o.conflict_retries, 5, 1000, "conflict_retries")) ||
        (rc = check_int(&o.max_attempts, 25, INT_MAX - 1, "max_attempts")) ||
        (rc = check_int(&o.match_job_name, 1, 1, "match_job_name")))
        return rc;
    if (o.busy_timeout_ms > INT_MAX)
        o.busy_timeout_ms = INT_MAX;
    *out = o;
    return AJ_OK;
}

int aj_store_options(const aj_store *store, aj_options *out)
{
    if (!store || !out)
        return aj_error_set(AJ_EINVALID, "aj_store_options: NULL argument");
    *out = store->opts;
    return AJ_OK;
}

/* --- construction -------------------------------------------------------------- */

static int store_new(aj_store **out, const aj_options *opts, int owned)
{
    aj_options o;
    int rc = resolve_options(opts, &o);
    if (rc)
        return rc;
    aj_store *s = calloc(1, sizeof *s);
    if (!s)
        return aj_error_set(AJ_ENOMEM, "out of memory");
    s->opts = o;
    s->owned = owned;
    s->pid = getpid();
    aj_process_name(s->owner, sizeof s->owner);
    *out = s;
    return AJ_OK;
}

/* Hand out a new store whose driver was just set up, or free it when that failed. */
static int adopt(aj_store **out, aj_store *s, int rc)
{
    if (rc) {
        free(s);
        return rc;
    }
    *out = s;
    return AJ_OK;
}

static int set_hooks(aj_store *s, const aj_host_tx *tx, void *ctx)
{
    if (!tx)
        return AJ_OK;
    if (tx->version < 1 || !tx->atomically)
        return aj_error_set(AJ_EINVALID, "host transaction hooks: version %u or atomically "
                            "missing (initialize them with AJ_HOST_TX_INIT)", tx->version);
    s->hooks = tx;
    s->hooks_ctx = ctx;
    s->write_lock_first = tx->version >= 2 && tx->write_lock_first;
    s->commit_in_body = tx->version >= 3 && tx->commit_in_body;
    s->begin_in_body = tx->version >= 4 && tx->begin_in_body && s->commit_in_body;
    return AJ_OK;
}

static int starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

int aj_store_open(aj_store **out, const char *url, const aj_options *opts)
{
    if (!out)
        return aj_error_set(AJ_EINVALID, "aj_store_open: out is NULL");
    if (!url || !*url)
        return aj_error_set(AJ_EINVALID, "aj_store_open: the URL is empty; expected "
                                         "sqlite:PATH or postgres://...");
    int rc = aj_check_doc(url, strlen(url), "database URL");
    if (rc)
        return rc;
    aj_store *s = NULL;
    if ((rc = store_new(&s, opts, 1)))
        return rc;

    if (starts_with(url, "sqlite:")) {
        const char *path = url + 7;
        if (starts_with(path, "//"))
            path += 2;
        rc = aj_sqlite_open(&s->drv, &s->conn, path, &s->opts);
    } else if (starts_with(url, "postgres://") || starts_with(url, "postgresql://") ||
               strchr(url, '=')) {
        rc = aj_pg_open(&s->drv, &s->conn, url, &s->opts);
    } else {
        char safe[512];
        aj_redact_url(url, safe, sizeof safe);
        rc = aj_error_set(AJ_EINVALID, "unsupported database URL \"%s\": expected "
                          "sqlite:PATH, sqlite::memory: or postgres://...", safe);
    }
    if (rc == AJ_OK)
        rc = aj_store_migrate(s);
    if (rc) {
        aj_saved_error err;
        aj_error_save(&err);
        aj_store_free(s);
        return aj_error_restore(&err);
    }
    *out = s;
    return AJ_OK;
}

/* A borrowed store before its driver is set up. */
static int store_borrowed(aj_store **out, const aj_host_tx *tx, void *ctx,
                          const aj_options *opts)
{
    aj_store *s = NULL;
    int rc = store_new(&s, opts, 0);
    if (rc == AJ_OK && (rc = set_hooks(s, tx, ctx)) != AJ_OK)
        free(s);
    if (rc == AJ_OK)
        *out = s;
    return rc;
}

int aj_store_borrow_sqlite(aj_store **out, struct sqlite3 *db, const aj_host_tx *tx,
                           void *tx_ctx, const aj_options *opts)
{
    if (!out || !db)
        return aj_error_set(AJ_EINVALID, "aj_store_borrow_sqlite: NULL argument");
    aj_store *s = NULL;
    int rc = store_borrowed(&s, tx, tx_ctx, opts);
    return rc ? rc : adopt(out, s, aj_sqlite_borrow(&s->drv, &s->conn, db));
}

int aj_store_borrow_pg(aj_store **out, struct pg_conn *conn, const aj_host_tx *tx,
                       void *tx_ctx, const aj_options *opts)
{
    if (!out || !conn)
        return aj_error_set(AJ_EINVALID, "aj_store_borrow_pg: NULL argument");
    aj_store *s = NULL;
    int rc = store_borrowed(&s, tx, tx_ctx, opts);
    return rc ? rc : adopt(out, s, aj_pg_borrow(&s->drv, &s->conn, conn));
}

int aj_store_borrow_host(aj_store **out, int dialect, const aj_host_ops *ops,
                         const aj_host_tx *tx, void *ctx, const aj_options *opts)
{
    if (!out || !ops || !tx)
        return aj_error_set(AJ_EINVALID, "aj_store_borrow_host: NULL argument");
    if (ops->version < 1 || !ops->exec || !ops->in_transaction)
        return aj_error_set(AJ_EINVALID, "aj_store_borrow_host: host ops version %u or a "
                            "callback missing (initialize them with AJ_HOST_OPS_INIT)",
                            ops->version);
    if (dialect != AJ_DIALECT_SQLITE && dialect != AJ_DIALECT_POSTGRES)
        return aj_error_set(AJ_EINVALID, "aj_store_borrow_host: unknown dialect %d", dialect);
    aj_store *s = NULL;
    int rc = store_borrowed(&s, tx, ctx, opts);
    return rc ? rc : adopt(out, s, aj_host_open(&s->drv, &s->conn, dialect, ops, ctx));
}

int aj_store_usable(aj_store *store, const char *fn)
{
    if (!store)
        return aj_error_set(AJ_EINVALID, "%s: store is NULL", fn);
    if (!store->conn)
        return aj_error_set(AJ_EMISUSE, "%s: the store is closed", fn);
    if (store->pid != getpid())
        return aj_error_set(AJ_EMISUSE,
                            "%s: this store was opened in process %d and cannot be used in a "
                            "forked child (process %d); open a new store in the child",
                            fn, (int)store->pid, (int)getpid());
    return AJ_OK;
}

static int migrate_body(aj_store *s, void *arg)
{
    (void)s;
    (void)arg;
    return AJ_OK; /* aj_tx detects the tables first; AJ_ESTALE there heals them */
}

int aj_store_migrate(aj_store *store)
{
    int rc = aj_store_usable(store, "aj_store_migrate");
    if (rc)
        return rc;
    if (aj_tx_active(store))
        return aj_error_set(AJ_EMISUSE, "aj_store_migrate inside a step: heal the tables "
                                        "before running workflows");
    aj_schema_forget(store);
    return aj_tx(store, AJ_TXF_RETRY, migrate_body, NULL, NULL);
}

/* --- the core's statements ---------------------------------------------------- */

/* What an error of one of the core's own statements means (store.h). */
static int core_error(int rc)
{
    const char *state = aj_error_state();
    if (!strcmp(state, "42P01") || !strcmp(state, "42703") || !strcmp(state, "23502")) {
        aj_saved_error err;
        aj_error_save(&err);
        aj_error_set(AJ_ESTALE, "%s", err.message);
        aj_error_set_state(err.state);
        return AJ_ESTALE;
    }
    if (!strcmp(state, "54000")) {
        aj_saved_error err;
        aj_error_save(&err);
        aj_error_set(AJ_ESCHEMA, "%s: the job arguments are too large for the unique index "
                     "acidic_job 0.7.0's migration created over (idempotency_key, job_name, "
                     "job_args); replace it with one over md5(job_args) (rails generate "
                     "acidic_job:large_arguments writes that migration); retrying cannot help",
                     err.message);
        aj_error_set_state("54000");
        return AJ_ESCHEMA;
    }
    return rc;
}

int aj_store_calls(aj_store *store, const aj_call *calls, size_t ncalls, unsigned flags)
{
    if (!store->shape.known)
        return aj_error_set(AJ_ESTALE, "the tables have not been detected yet");
    int rc = store->drv->exec(store->conn, calls, ncalls, flags);
    return rc ? core_error(rc) : AJ_OK;
}

int aj_store_x(aj_store *store, aj_stmt stmt, const aj_value *params, size_t nparams,
               aj_rows *rows)
{
    aj_call call = {&store->sql[stmt], params, nparams, rows};
    return aj_store_calls(store, &call, 1, 0);
}

/* --- callbacks ------------------------------------------------------------------- */

void aj_store_set_enqueue(aj_store *store, aj_enqueue_fn fn, void *ctx)
{
    if (!store)
        return;
    store->enqueue = fn;
    store->enqueue_ctx = ctx;
}

void aj_store_set_events(aj_store *store, aj_event_fn fn, void *ctx)
{
    if (!store)
        return;
    store->events = fn;
    store->events_ctx = ctx;
}

void aj_store_set_error_encoder(aj_store *store, aj_error_doc_fn fn, void *ctx)
{
    if (!store)
        return;
    store->error_doc = fn;
    store->error_doc_ctx = ctx;
}

void aj_store_event(aj_store *store, aj_event *event)
{
    if (!store->events)
        return;
    event->version = AJ_EVENT_VERSION;
    store->events(store->events_ctx, event);
}

/* --- pending staged jobs ----------------------------------------------------------- */

int aj_store_add_pending(aj_store *store, int64_t id, int64_t batch_id, int64_t run_id,
                         const int64_t *run_ref, const char *adapter, const char *job_name,
                         const char *payload, size_t payload_len)
{
    int rc = aj_grow((void **)&store->pending, &store->cap_pending, store->npending + 1,
                     sizeof *store->pending);
    if (rc)
        return rc;
    aj_pending_job j = {id, batch_id, aj_strdup(adapter), aj_strdup(job_name),
                        aj_strndup(payload ? payload : "", payload_len), payload_len, run_id,
                        run_ref};
    if (!j.adapter || !j.job_name || !j.payload) {
        free(j.adapter);
        free(j.job_name);
        free(j.payload);
        return aj_error_set(AJ_ENOMEM, "out of memory");
    }
    store->pending[store->npending++] = j;
    return AJ_OK;
}

static void pending_free(aj_pending_job *j)
{
    free(j->adapter);
    free(j->job_name);
    free(j->payload);
}

void aj_store_drop_pending(aj_store *store)
{
    for (size_t i = 0; i < store->npending; i++)
        pending_free(&store->pending[i]);
    store->npending = 0;
}

void aj_store_deliver_pending(aj_store *store)
{
    /* Take the list first: the callback may call back into the store (run a job inline). */
    aj_pending_job *jobs = store->pending;
    size_t n = store->npending;
    store->pending = NULL;
    store->npending = store->cap_pending = 0;
    aj_saved_error err;
    aj_error_save(&err);
    for (size_t i = 0; i < n; i++) {
        if (store->enqueue && jobs[i].id > 0) {
            aj_staged_job job = {jobs[i].id, jobs[i].adapter, jobs[i].job_name,
                                 jobs[i].payload, jobs[i].payload_len};
            /* A refusal leaves the row in the table: aj_store_drain delivers it later. */
            int accepted = store->enqueue(store->enqueue_ctx, &job) == 0;
            aj_event ev = {0};
            ev.type = AJ_EVENT_ENQUEUED;
            ev.run_id = jobs[i].run_id;
            ev.staged_id = jobs[i].id;
            ev.adapter = jobs[i].adapter;
            ev.staged_job = jobs[i].job_name;
            ev.accepted = accepted;
            aj_store_event(store, &ev);
        }
        pending_free(&jobs[i]);
    }
    free(jobs);
    aj_error_restore(&err);
}

/* --- application SQL ----------------------------------------------------------------- */

int aj_store_exec(aj_store *store, const char *sql, const aj_value *params, size_t nparams,
                  aj_rows **rows)
{
    int rc = aj_store_usable(store, "aj_store_exec");
    if (rc)
        return rc;
    if (!sql || !*sql)
        return aj_error_set(AJ_EINVALID, "aj_store_exec: SQL is empty");
    if ((rc = aj_check_doc(sql, strlen(sql), "SQL")))
        return rc;
    if (nparams && !params)
        return aj_error_set(AJ_EINVALID, "aj_store_exec: params is NULL");
    for (size_t i = 0; i < nparams; i++) {
        if (params[i].type == AJ_TEXT && (rc = aj_check_doc(params[i].text, params[i].len,
                                                            "SQL parameter")))
            return rc;
        if (params[i].type != AJ_TEXT && params[i].type != AJ_INT && params[i].type != AJ_NULL)
            return aj_error_set(AJ_EINVALID, "aj_store_exec: parameter %zu has unknown type %d",
                                i + 1, params[i].type);
    }
    if (store->in_step && aj_sql_is_transaction_control(sql))
        return aj_error_set(AJ_EMISUSE, "aj_store_exec: a step must not begin, commit or roll "
                            "back the transaction (it is the step's: acidic_job commits it "
                            "with the run's progress); nothing was sent");
    aj_rows *r = NULL;
    if (rows && !(r = calloc(1, sizeof *r)))
        return aj_error_set(AJ_ENOMEM, "out of memory");
    aj_sql adhoc = {-1, sql, 0, 0, 0};
    aj_call call = {&adhoc, params, nparams, r};
    rc = store->drv->exec(store->conn, &call, 1, 0);
    if (rc) {
        aj_rows_free(r);
        return rc;
    }
    if (rows)
        *rows = r;
    return AJ_OK;
}

/* --- inspection -------------------------------------------------------------------- */

int aj_store_in_transaction(aj_store *store)
{
    int rc = aj_store_usable(store, "aj_store_in_transaction");
    if (rc)
        return rc;
    return store->drv->in_transaction(store->conn) ? 1 : 0;
}

struct sqlite3 *aj_store_sqlite(aj_store *store)
{
    if (!store || !store->conn || strcmp(store->drv->name, "sqlite") != 0)
        return NULL;
    return aj_sqlite_handle(store->conn);
}

struct pg_conn *aj_store_pg(aj_store *store)
{
    if (!store || !store->conn || strcmp(store->drv->name, "postgres") != 0)
        return NULL;
    return aj_pg_handle(store->conn);
}

const char *aj_store_driver(const aj_store *store)
{
    return store && store->drv ? store->drv->name : NULL;
}

int aj_store_is_borrowed(const aj_store *store) { return store ? !store->owned : 0; }

void aj_store_free(aj_store *store)
{
    if (!store)
        return;
    int forked = store->pid != getpid();
    if (store->conn)
        store->drv->close(store->conn, store->owned, forked);
    aj_store_drop_pending(store);
    free(store->pending);
    aj_schema_free(store);
    free(store);
}
