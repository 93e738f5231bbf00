/*
 * The host hooks of a borrowed store (ctx: its rb_aj_store). The Ruby transaction host
 * (lib/acidic_job/connection.rb) answers:
 *   host.atomically { body }  -> true when it committed, false when it rolled back
 *                                (the block returns false when the body failed)
 *   host.error_code(error)    -> the aj_code of an exception of the host's database:
 *                                AJ_ECONFLICT for serialization failures, deadlocks and
 *                                busy databases, else AJ_EDATABASE
 *   host.exec(sql, params)    -> [[cell, ...], ...]   (host stores only)
 *   host.in_transaction?      -> true / false         (host stores only)
 * Nothing raised here unwinds through the core. A StandardError becomes a code and a
 * message for the core; anything else (Interrupt, SystemExit, throw) is kept on the store
 * and raised once the core has returned. An exception from atomically itself (the host
 * could not begin or commit) is kept as well: the caller sees the host's own error.
 */
#include "rb_aj.h"

typedef struct raised {
    rb_aj_store *s;
    rb_aj_capture *cap;
    int code;
    VALUE message;
} raised;

static VALUE error_code_invoke(VALUE p)
{
    raised *r = (raised *)p;
    r->message = rb_aj_capture_message(r->cap);
    if (!NIL_P(r->cap->exc) && rb_obj_is_kind_of(r->cap->exc, rb_eStandardError))
        r->code = NUM2INT(rb_funcall(r->s->host, rb_intern("error_code"), 1, r->cap->exc));
    return Qnil;
}

/* After a hook raised (`cap`): the code for the core, with aj_error_report. `keep`: the
 * exception is raised to the caller if the core's call fails. */
static int report_raise(rb_aj_store *s, rb_aj_capture *cap, int keep)
{
    raised r = {s, cap, AJ_EDATABASE, Qnil};
    rb_aj_capture inner = RB_AJ_CAPTURE_INIT;
    rb_aj_callback(&inner, error_code_invoke, (VALUE)&r);
    if (r.code >= 0)
        r.code = AJ_EDATABASE;
    int plain = !NIL_P(cap->exc) && rb_obj_is_kind_of(cap->exc, rb_eStandardError);
    if (((keep && r.code != AJ_ECONFLICT) || !plain) && !s->hook.state)
        s->hook = *cap;
    char msg[512];
    snprintf(msg, sizeof msg, "%s",
             NIL_P(r.message) ? "the host raised" : StringValueCStr(r.message));
    RB_GC_GUARD(r.message);
    cap->state = 0;
    cap->exc = Qnil;
    return aj_error_report(r.code, msg);
}

/* --- atomically ---------------------------------------------------------------------- */

typedef struct tx_call {
    rb_aj_store *s;
    aj_tx_body body;
    void *arg;
    int rc;
} tx_call;

static void *body_nogvl(void *p)
{
    tx_call *t = p;
    t->rc = t->body(t->arg);
    return NULL;
}

/* The block given to host.atomically: the core's body, inside the host transaction,
 * without the GVL on a native connection (its statements wait on the database). */
static VALUE body_block(RB_BLOCK_CALL_FUNC_ARGLIST(yielded, data))
{
    tx_call *t = (tx_call *)data;
    rb_aj_without_gvl(rb_aj_store_nogvl(t->s), body_nogvl, t);
    return t->rc == 0 ? Qtrue : Qfalse;
}

static VALUE atomically_invoke(VALUE p)
{
    tx_call *t = (tx_call *)p;
    return rb_block_call(t->s->host, rb_intern("atomically"), 0, NULL, body_block, p);
}

static int host_atomically(void *ctx, aj_tx_body body, void *arg, int *committed)
{
    rb_aj_store *s = ctx;
    tx_call t = {s, body, arg, 0};
    rb_aj_capture cap = RB_AJ_CAPTURE_INIT;
    *committed = 0;
    VALUE r = rb_aj_callback(&cap, atomically_invoke, (VALUE)&t);
    if (cap.state) {
        /* A conflict is the core's to retry; any other failure to begin or commit is the
         * host's error, raised to the caller. */
        return report_raise(s, &cap, 1);
    }
    *committed = RTEST(r);
    return 0;
}

/* The sqlite3 gem waits for SQLite's write lock holding the GVL, which would stop the
 * thread holding the lock: the core takes the lock first, waiting without the GVL. */
const aj_host_tx rb_aj_host_tx = {AJ_HOST_TX_VERSION, host_atomically, 1, 0, 0};

/* A PG::Connection whose ActiveRecord adapter defers to libpq's transaction state while
 * the core's body runs (TransactionHost#libpq_state?): the core sends BEGIN with its first
 * statements and COMMIT with its last, as with psycopg 3. */
const aj_host_tx rb_aj_host_tx_libpq = {AJ_HOST_TX_VERSION, host_atomically, 1, 1, 1};

/* --- exec, in_transaction (host stores) ------------------------------------------------ */

typedef struct exec_call {
    rb_aj_store *s;
    const char *sql;
    const aj_value *params;
    size_t nparams;
    aj_host_result *result;
} exec_call;

static VALUE exec_invoke(VALUE arg)
{
    exec_call *c = (exec_call *)arg;
    VALUE params = rb_ary_new_capa((long)c->nparams);
    for (size_t i = 0; i < c->nparams; i++)
        rb_ary_push(params, rb_aj_value_to_ruby(&c->params[i]));
    VALUE rows = rb_funcall(c->s->host, rb_intern("exec"), 2, rb_utf8_str_new_cstr(c->sql),
                            params);
    if (NIL_P(rows))
        return Qnil;
    Check_Type(rows, T_ARRAY);
    for (long r = 0; r < RARRAY_LEN(rows); r++) {
        VALUE row = rb_ary_entry(rows, r);
        Check_Type(row, T_ARRAY);
        long n = RARRAY_LEN(row);
        aj_value cells[64];
        if (n > 64)
            rb_raise(rb_eArgError, "acidic_job host row: too many columns");
        for (long i = 0; i < n; i++)
            cells[i] = rb_aj_value_from_ruby(rb_ary_entry(row, i));
        if (aj_host_row(c->result, cells, (size_t)n) != 0)
            rb_raise(rb_eNoMemError, "acidic_job: out of memory");
    }
    RB_GC_GUARD(rows);
    return Qnil;
}

static int host_exec(void *ctx, const char *sql, const aj_value *params, size_t nparams,
                     aj_host_result *result)
{
    rb_aj_store *s = ctx;
    exec_call c = {s, sql, params, nparams, result};
    rb_aj_capture cap = RB_AJ_CAPTURE_INIT;
    rb_aj_callback(&cap, exec_invoke, (VALUE)&c);
    /* A statement's error is the core's to judge (a missing column heals the tables):
     * only its code and message go back. */
    return cap.state ? report_raise(s, &cap, 0) : 0;
}

static VALUE in_transaction_invoke(VALUE arg)
{
    return rb_funcall(((rb_aj_store *)arg)->host, rb_intern("in_transaction?"), 0);
}

static int host_in_transaction(void *ctx)
{
    rb_aj_store *s = ctx;
    rb_aj_capture cap = RB_AJ_CAPTURE_INIT;
    VALUE r = rb_aj_callback(&cap, in_transaction_invoke, (VALUE)s);
    if (cap.state) {
        report_raise(s, &cap, 0);
        return 0;
    }
    return RTEST(r);
}

const aj_host_ops rb_aj_host_ops = {AJ_HOST_OPS_VERSION, host_exec, host_in_transaction};
