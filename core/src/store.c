#include "store.h"
#include "error.h"
#include "rows.h"
#include "util.h"

#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

aj_value aj_cstr(const char *s) { return aj_text(s, s ? strlen(s) : 0); }

void aj_options_init(aj_options *opts)
{
    if (!opts)
        return;
    opts->lock_timeout_ms = 90000;
    opts->busy_timeout_ms = 5000;
    opts->synchronous = AJ_SYNC_FULL;
    opts->conflict_retries = 5;
}

static int options_valid(const aj_options *opts)
{
    if (opts->lock_timeout_ms < 0 || opts->busy_timeout_ms < 0 || opts->conflict_retries < 0)
        return aj_error_set(AJ_EINVALID, "options: timeouts and retries must not be negative");
    if (opts->synchronous < AJ_SYNC_FULL || opts->synchronous > AJ_SYNC_OFF)
        return aj_error_set(AJ_EINVALID, "options: synchronous must be AJ_SYNC_FULL, "
                                         "AJ_SYNC_NORMAL or AJ_SYNC_OFF");
    return AJ_OK;
}

static int store_new(aj_store **out, const aj_options *opts, int borrowed)
{
    aj_options o;
    aj_options_init(&o);
    if (opts)
        o = *opts;
    int rc = options_valid(&o);
    if (rc)
        return rc;
    aj_store *s = calloc(1, sizeof *s);
    if (!s)
        return aj_error_set(AJ_ENOMEM, "out of memory");
    s->opts = o;
    s->borrowed = borrowed;
    s->pid = getpid();
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
    aj_store *s;
    if ((rc = store_new(&s, opts, 0)))
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

int aj_store_borrow_sqlite(aj_store **out, struct sqlite3 *db, const aj_options *opts)
{
    if (!out || !db)
        return aj_error_set(AJ_EINVALID, "aj_store_borrow_sqlite: NULL argument");
    aj_store *s = NULL;
    int rc = store_new(&s, opts, 1);
    return rc ? rc : adopt(out, s, aj_sqlite_borrow(&s->drv, &s->conn, db));
}

int aj_store_borrow_pg(aj_store **out, struct pg_conn *conn, const aj_options *opts)
{
    if (!out || !conn)
        return aj_error_set(AJ_EINVALID, "aj_store_borrow_pg: NULL argument");
    aj_store *s = NULL;
    int rc = store_new(&s, opts, 1);
    return rc ? rc : adopt(out, s, aj_pg_borrow(&s->drv, &s->conn, conn));
}

int aj_store_borrow_host(aj_store **out, int dialect, const aj_host_ops *ops, void *ctx,
                         const aj_options *opts)
{
    if (!out || !ops || !ops->exec || !ops->in_transaction)
        return aj_error_set(AJ_EINVALID, "aj_store_borrow_host: NULL argument or callback");
    if (dialect != AJ_DIALECT_SQLITE && dialect != AJ_DIALECT_POSTGRES)
        return aj_error_set(AJ_EINVALID, "aj_store_borrow_host: unknown dialect %d", dialect);
    aj_store *s;
    int rc = store_new(&s, opts, 1);
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

static int require_transaction(aj_store *store)
{
    if (!store->drv->in_transaction(store->conn))
        return aj_error_set(AJ_EMISUSE, "the borrowed connection has no open transaction: "
                                        "begin one before calling acidic_job, and commit it "
                                        "afterwards");
    return AJ_OK;
}

int aj_store_x(aj_store *store, aj_stmt stmt, const aj_value *params, size_t nparams,
               aj_rows *rows, int64_t *changes, unsigned flags)
{
    int rc;
    const aj_sql *sql = aj_sql_for(store->drv->dialect, stmt);
    if (store->borrowed) {
        if ((rc = require_transaction(store)))
            return rc;
        flags = 0;
    } else if ((flags & (AJ_X_BEGIN | AJ_X_BEGIN_IMMEDIATE | AJ_X_BEGIN_SERIALIZABLE)) &&
               store->drv->ensure_connected &&
               (rc = store->drv->ensure_connected(store->conn))) {
        return rc;
    }
    return store->drv->exec(store->conn, sql, params, nparams, rows, changes, flags);
}

int aj_store_tx(aj_store *store, aj_tx_op op)
{
    if (store->borrowed) {
        if (op == AJ_TX_COMMIT || op == AJ_TX_ROLLBACK)
            return AJ_OK;
        return require_transaction(store);
    }
    if (op != AJ_TX_COMMIT && op != AJ_TX_ROLLBACK && store->drv->ensure_connected) {
        int rc = store->drv->ensure_connected(store->conn);
        if (rc)
            return rc;
    }
    return store->drv->tx(store->conn, op);
}

int aj_store_migrate(aj_store *store)
{
    int rc = aj_store_usable(store, "aj_store_migrate");
    if (rc)
        return rc;
    if (store->borrowed)
        return (rc = require_transaction(store)) ? rc : aj_migrate_in_tx(store);
    for (int attempt = 0;; attempt++) {
        if ((rc = aj_store_tx(store, AJ_TX_BEGIN_IMMEDIATE)))
            return rc;
        rc = aj_migrate_in_tx(store);
        if (rc == AJ_OK)
            rc = aj_store_tx(store, AJ_TX_COMMIT);
        if (rc == AJ_OK)
            return AJ_OK;
        aj_saved_error err;
        aj_error_save(&err);
        store->drv->tx(store->conn, AJ_TX_ROLLBACK);
        if (err.code != AJ_ECONFLICT || attempt >= store->opts.conflict_retries)
            return aj_error_restore(&err);
    }
}

void aj_store_set_enqueue(aj_store *store, aj_enqueue_fn fn, void *ctx)
{
    if (!store)
        return;
    store->enqueue = fn;
    store->enqueue_ctx = ctx;
}

int aj_store_add_pending(aj_store *store, int64_t id, const char *adapter,
                         const char *job_name, const char *payload, size_t payload_len)
{
    if (store->npending == store->cap_pending) {
        size_t cap = store->cap_pending ? store->cap_pending * 2 : 4;
        aj_pending_job *grown = realloc(store->pending, cap * sizeof *grown);
        if (!grown)
            return aj_error_set(AJ_ENOMEM, "out of memory");
        store->pending = grown;
        store->cap_pending = cap;
    }
    aj_pending_job j = {id, aj_strdup(adapter), aj_strdup(job_name),
                        aj_strndup(payload ? payload : "", payload_len), payload_len};
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
    /* Take the list first: the callback may call back into the store (e.g. to stage). */
    aj_pending_job *jobs = store->pending;
    size_t n = store->npending;
    store->pending = NULL;
    store->npending = store->cap_pending = 0;
    for (size_t i = 0; i < n; i++) {
        if (store->enqueue) {
            aj_staged_job job = {jobs[i].id, jobs[i].adapter, jobs[i].job_name,
                                 jobs[i].payload, jobs[i].payload_len};
            /* A refusal leaves the row in the table: aj_store_drain delivers it later. */
            (void)store->enqueue(store->enqueue_ctx, &job);
        }
        pending_free(&jobs[i]);
    }
    free(jobs);
}

int aj_store_settle(aj_store *store, int committed)
{
    int rc = aj_store_usable(store, "aj_store_settle");
    if (rc)
        return rc;
    if (!store->borrowed)
        return aj_error_set(AJ_EMISUSE, "aj_store_settle is for borrowed stores: an owned "
                                        "store commits its own transactions");
    if (store->pending_run) {
        aj_run *run = store->pending_run;
        store->pending_run = NULL;
        aj_run_settled(run, committed);
    }
    if (committed)
        aj_store_deliver_pending(store);
    else
        aj_store_drop_pending(store);
    return AJ_OK;
}

int aj_store_exec(aj_store *store, const char *sql, const aj_value *params, size_t nparams,
                  aj_rows **rows)
{
    int rc = aj_store_usable(store, "aj_store_exec");
    if (rc)
        return rc;
    if (!sql || !*sql)
        return aj_error_set(AJ_EINVALID, "aj_store_exec: SQL is empty");
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
    aj_rows *r = NULL;
    if (rows && !(r = calloc(1, sizeof *r)))
        return aj_error_set(AJ_ENOMEM, "out of memory");
    aj_sql adhoc = {-1, sql};
    rc = store->drv->exec(store->conn, &adhoc, params, nparams, r, NULL, 0);
    if (rc) {
        aj_rows_free(r);
        return rc;
    }
    if (rows)
        *rows = r;
    return AJ_OK;
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

int aj_store_is_borrowed(const aj_store *store) { return store ? store->borrowed : 0; }

void aj_store_free(aj_store *store)
{
    if (!store)
        return;
    int forked = store->pid != getpid();
    if (store->conn)
        store->drv->close(store->conn, !store->borrowed, forked);
    aj_store_drop_pending(store);
    free(store->pending);
    free(store);
}
