#include "tx.h"
#include "error.h"
#include "schema.h"
#include "rows.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

typedef struct tx_call {
    aj_store *store;
    unsigned flags;
    aj_tx_fn body;
    void *arg;
    int ran;
    int rc;
    aj_saved_error err; /* the body's error, kept across the host's rollback */
} tx_call;

int aj_tx_active(const aj_store *store) { return store->tx_depth > 0; }

static int begin_mode(int flags)
{
    return (flags & AJ_TXF_SERIALIZABLE) ? AJ_BEGIN_SERIALIZABLE
           : (flags & AJ_TXF_WRITE)      ? AJ_BEGIN_IMMEDIATE
                                         : AJ_BEGIN_DEFERRED;
}

/* Runs inside the transaction, whoever opened it. Never unwinds. */
static int tx_body(void *p)
{
    tx_call *t = p;
    aj_store *s = t->store;
    t->ran = 1;
    s->tx_depth = 1;
    s->tx_done = 0;
    s->tx_write_locked = 0;
    int rc = AJ_OK;
    if (s->hooks && s->begin_in_body && s->tx_toplevel) {
        if (!s->drv->in_transaction(s->conn)) {
            /* the host lets the core open its top-level transaction (aj_host_tx v4) */
            if ((rc = s->drv->begin(s->conn, begin_mode(t->flags))) == AJ_OK)
                s->tx_core_began = 1;
        } else {
            /* The host opened a transaction where the connection showed none: a
             * savepoint in an application transaction that had not sent its BEGIN yet
             * (an ORM's lazy transaction). Not top-level, so the core commits nothing. */
            s->tx_toplevel = 0;
        }
    } else if (!s->drv->in_transaction(s->conn)) {
        rc = aj_error_set(AJ_EMISUSE, "the host's atomically hook ran the body outside a "
                                      "transaction: open one (BEGIN) before calling it");
    }
    if (!rc && s->drv->tx_begun)
        s->drv->tx_begun(s->conn, s->tx_toplevel);
    if (!rc && !(t->flags & AJ_TXF_NO_SCHEMA))
        rc = aj_schema_ensure(s);
    if (!rc && ((t->flags & AJ_TXF_WRITE) || s->write_lock_first) &&
        !(t->flags & AJ_TXF_NO_SCHEMA) && s->hooks && s->drv->dialect == AJ_DIALECT_SQLITE)
        s->tx_write_locked = (rc = aj_store_x(s, AJ_Q_WRITE_LOCK, NULL, 0, NULL)) == AJ_OK;
    if (!rc)
        rc = t->body(s, t->arg);
    if (!rc && !s->tx_done)
        rc = aj_tx_finish(s, NULL, 0);
    s->tx_depth = 0;
    s->tx_write_locked = 0;
    t->rc = rc;
    if (rc)
        aj_error_save(&t->err);
    return rc;
}

/* One attempt. *committed tells how the transaction ended. */
static int attempt(aj_store *s, tx_call *t, int *committed)
{
    *committed = 0;
    int rc;
    /* without hooks the driver begins (refused inside an open transaction); with them,
     * asked only of a driver that acts on it (a host driver's check is a callback) */
    s->tx_toplevel = !s->hooks || ((s->drv->features & AJ_DRV_HOST_TOPLEVEL) &&
                                   !s->drv->in_transaction(s->conn));
    s->tx_core_began = 0;
    if (!s->hooks) {
        if (s->drv->ensure_connected && (rc = s->drv->ensure_connected(s->conn)))
            return rc;
        if ((rc = s->drv->begin(s->conn, begin_mode(t->flags))))
            return rc;
        rc = tx_body(t);
        if (rc) {
            s->drv->rollback(s->conn);
            aj_error_restore(&t->err);
            return rc;
        }
        if (s->drv->in_transaction(s->conn))
            return aj_error_set(AJ_ERROR, "internal: a transaction was left open");
        *committed = 1;
        return AJ_OK;
    }
    int host_committed = 0;
    int hrc = s->hooks->atomically(s->hooks_ctx, tx_body, t, &host_committed);
    s->tx_depth = 0;
    if (s->tx_core_began && (t->rc || hrc)) {
        /* what the core began it ends: a BEGIN still unsent is forgotten, an open
         * transaction (the host's rollback found none to end, or failed) rolled back */
        aj_saved_error err;
        aj_error_save(&err);
        s->drv->rollback(s->conn);
        aj_error_restore(&err);
    }
    s->tx_core_began = 0;
    if (!t->ran) {
        if (hrc >= 0)
            hrc = aj_error_set(AJ_EMISUSE, "the host's atomically hook returned without "
                                           "running the body");
        return hrc;
    }
    if (t->rc) {
        *committed = host_committed;
        aj_error_restore(&t->err);
        return t->rc;
    }
    if (hrc) {
        if (hrc > 0 || aj_error_last()->code == AJ_OK)
            hrc = aj_error_set(hrc < 0 ? hrc : AJ_EDATABASE, "the host could not commit the "
                               "transaction");
        return hrc;
    }
    if (!host_committed)
        return aj_error_set(AJ_EMISUSE, "the host rolled back a transaction whose body "
                                        "succeeded: its atomically hook must commit then");
    *committed = 1;
    return AJ_OK;
}

/* Another try after a conflict? Serialization failures get conflict_retries tries;
 * SQLite's busy database also as long as the busy timeout has not passed (it reports
 * some conflicts at once, without waiting). */
static int may_retry(const aj_store *s, int tries, int64_t start_us)
{
    if (tries < s->opts.conflict_retries)
        return 1;
    return s->drv->dialect == AJ_DIALECT_SQLITE &&
           aj_now_us() - start_us < s->opts.busy_timeout_ms * 1000;
}

/* AJ_TXF_READ outside any transaction, on a driver whose statements are transactions of
 * their own there: the body runs without BEGIN and COMMIT (nor the host's atomically
 * hook). 1 when it did not run that way, or met tables to heal or a conflict: aj_tx's
 * transaction takes over (the body's reads changed nothing). */
static int read_alone(aj_store *s, aj_tx_fn body, aj_tx_settle_fn settle, void *arg, int *rc)
{
    if (!(s->drv->features & AJ_DRV_READS_ALONE) || !s->shape.known ||
        s->drv->in_transaction(s->conn))
        return 1;
    s->tx_depth = 1;
    s->tx_done = 1; /* nothing to finish */
    *rc = body(s, arg);
    s->tx_depth = 0;
    aj_saved_error err;
    aj_error_save(&err);
    if (settle)
        settle(s, arg, *rc == AJ_OK);
    aj_error_restore(&err);
    return *rc == AJ_ESTALE || *rc == AJ_ECONFLICT;
}

int aj_tx(aj_store *s, unsigned flags, aj_tx_fn body, aj_tx_settle_fn settle, void *arg)
{
    if (s->tx_depth > 0)
        return body(s, arg); /* joins the open transaction */
    int alone_rc;
    if ((flags & AJ_TXF_READ) && !read_alone(s, body, settle, arg, &alone_rc))
        return alone_rc;
    int healed = 0;
    int64_t start = aj_now_us();
    for (int tries = 0;;) {
        tx_call t; /* not zeroed as a whole: err is a kilobyte */
        t.store = s;
        t.flags = flags;
        t.body = body;
        t.arg = arg;
        t.ran = t.rc = 0;
        t.err.code = 0;
        t.err.state[0] = t.err.message[0] = '\0';
        int committed = 0;
        int rc = attempt(s, &t, &committed);
        aj_saved_error err;
        aj_error_save(&err);
        err.code = rc;
        if (!committed)
            aj_store_drop_pending(s);
        if (settle)
            settle(s, arg, committed);
        if (committed)
            aj_store_deliver_pending(s);
        if (rc == AJ_OK)
            return AJ_OK;
        aj_error_restore(&err);
        if (rc == AJ_ESTALE && !healed && !(flags & AJ_TXF_NO_SCHEMA)) {
            healed = 1;
            aj_schema_forget(s);
            int hrc = aj_schema_heal(s);
            if (hrc)
                return hrc;
            continue;
        }
        if (rc == AJ_ESTALE) {
            aj_schema_forget(s);
            return aj_error_set(AJ_ESCHEMA, "the tables do not have what acidic_job needs, "
                                "even after healing them: %s", err.message);
        }
        if (rc == AJ_ECONFLICT && (flags & AJ_TXF_RETRY) && may_retry(s, tries, start)) {
            aj_backoff(tries++);
            continue;
        }
        return rc;
    }
}

int aj_tx_send_begin(aj_store *s)
{
    return aj_store_calls(s, NULL, 0, 0); /* the driver sends a pending BEGIN, or nothing */
}

#define FINISH_CHUNK 8

int aj_tx_finish(aj_store *s, const aj_call *calls, size_t ncalls)
{
    if (s->tx_depth == 0 || s->tx_done)
        return aj_error_set(AJ_ERROR, "internal: aj_tx_finish outside a transaction body");
    char now[32];
    aj_format_time(aj_now_us(), now);
    /* the driver's own transaction, or a host's top-level one the host lets it end */
    int commit = s->hooks == NULL || (s->commit_in_body && s->tx_toplevel &&
                                      (s->drv->features & AJ_DRV_HOST_TOPLEVEL));
    size_t p = 0, c = 0;
    int rc = AJ_OK;
    for (;;) {
        aj_call chunk[FINISH_CHUNK];
        aj_rows rows[FINISH_CHUNK];
        aj_value params[FINISH_CHUNK][5];
        size_t owners[FINISH_CHUNK];
        size_t n = 0, nstaged = 0;
        memset(rows, 0, sizeof rows);
        for (; p < s->npending && n < FINISH_CHUNK; p++) {
            aj_pending_job *j = &s->pending[p];
            if (j->id)
                continue; /* inserted at once */
            if (j->run_ref)
                j->run_id = *j->run_ref;
            aj_value *v = params[n];
            v[0] = aj_cstr(j->adapter);
            v[1] = aj_cstr(j->job_name);
            v[2] = aj_text(j->payload, j->payload_len);
            v[3] = j->batch_id ? aj_int(j->batch_id) : aj_null();
            v[4] = j->run_id ? aj_int(j->run_id) : aj_null();
            owners[n] = p;
            chunk[n] = (aj_call){&s->sql[AJ_Q_STAGE], NULL, 6, &rows[n]};
            n++;
        }
        nstaged = n;
        /* The STAGE statement's parameters: adapter, job, payload, batch, the delivery
         * stamp, the run. */
        aj_value staged_params[FINISH_CHUNK][6];
        for (size_t i = 0; i < nstaged; i++) {
            memcpy(staged_params[i], params[i], 4 * sizeof params[i][0]);
            staged_params[i][4] = aj_cstr(now);
            staged_params[i][5] = params[i][4];
            chunk[i].params = staged_params[i];
        }
        int last = p >= s->npending && n + (ncalls - c) <= FINISH_CHUNK;
        if (last)
            for (; c < ncalls; c++)
                chunk[n++] = calls[c];
        if (n == 0 && !(last && commit))
            break;
        if (n == 0)
            rc = s->drv->commit(s->conn);
        else
            rc = aj_store_calls(s, chunk, n, last && commit ? AJ_X_COMMIT : 0);
        for (size_t i = 0; i < nstaged && rc == AJ_OK; i++) {
            aj_pending_job *j = &s->pending[owners[i]];
            j->id = aj_rows_int(&rows[i], 0, 0);
            aj_event ev = {0};
            ev.type = AJ_EVENT_STAGED;
            ev.run_id = j->run_id;
            ev.staged_id = j->id;
            ev.adapter = j->adapter;
            ev.staged_job = j->job_name;
            aj_store_event(s, &ev);
        }
        for (size_t i = 0; i < nstaged; i++)
            aj_rows_clear(&rows[i]);
        if (rc)
            return rc;
        if (last)
            break;
    }
    s->tx_done = 1;
    return AJ_OK;
}
