/* AcidicJob::Native::Store: an owned or borrowed aj_store. */
#include "rb_aj.h"

#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

VALUE rb_aj_cStore;

static void store_mark(void *p)
{
    rb_aj_store *s = p;
    rb_gc_mark(s->enqueue);
    rb_gc_mark(s->host);
    rb_gc_mark(s->keep);
    rb_gc_mark(s->last_enqueue_error);
}

static void store_destroy(rb_aj_store *s)
{
    aj_store_free(s->store);
    s->store = NULL;
    free(s);
}

static void store_free(void *p)
{
    rb_aj_store *s = p;
    s->collected = 1;
    if (s->nruns == 0)
        store_destroy(s);
}

void rb_aj_store_release(rb_aj_store *s)
{
    if (--s->nruns == 0 && s->collected)
        store_destroy(s);
}

static const rb_data_type_t store_type = {
    "AcidicJob::Native::Store",
    {store_mark, store_free, NULL},
    NULL, NULL, 0};

static VALUE store_alloc(VALUE klass)
{
    rb_aj_store *s = calloc(1, sizeof *s);
    if (!s)
        rb_raise(rb_eNoMemError, "acidic_job: out of memory");
    s->enqueue = s->host = s->keep = s->last_enqueue_error = Qnil;
    s->release_gvl = 1;
    return TypedData_Wrap_Struct(klass, &store_type, s);
}

static rb_aj_store *store_data(VALUE self)
{
    return rb_check_typeddata(self, &store_type);
}

rb_aj_store *rb_aj_store_get(VALUE self)
{
    rb_aj_store *s = store_data(self);
    if (!s->store)
        rb_raise(rb_const_get(rb_aj_mAcidicJob, rb_intern("Misuse")),
                 "the acidic_job store is closed");
    return s;
}

static int64_t opt_int(VALUE opts, const char *name, int64_t dflt)
{
    if (NIL_P(opts))
        return dflt;
    VALUE v = rb_hash_aref(opts, ID2SYM(rb_intern(name)));
    return NIL_P(v) ? dflt : NUM2LL(v);
}

static void options_from(VALUE opts, aj_options *o)
{
    aj_options_init(o);
    if (!NIL_P(opts))
        Check_Type(opts, T_HASH);
    o->lock_timeout_ms = opt_int(opts, "lock_timeout_ms", o->lock_timeout_ms);
    o->busy_timeout_ms = (int)opt_int(opts, "busy_timeout_ms", o->busy_timeout_ms);
    o->synchronous = (int)opt_int(opts, "synchronous", o->synchronous);
    o->conflict_retries = (int)opt_int(opts, "conflict_retries", o->conflict_retries);
}

/* --- enqueue callback ------------------------------------------------------ */

typedef struct enqueue_call {
    rb_aj_store *s;
    const aj_staged_job *job;
    int rc;
} enqueue_call;

static VALUE enqueue_invoke(VALUE arg)
{
    enqueue_call *c = (enqueue_call *)arg;
    const aj_staged_job *j = c->job;
    VALUE r = rb_funcall(c->s->enqueue, rb_intern("call"), 4, LL2NUM(j->id),
                         rb_utf8_str_new_cstr(j->adapter), rb_utf8_str_new_cstr(j->job_name),
                         rb_utf8_str_new(j->payload, (long)j->payload_len));
    return RTEST(r) ? Qtrue : Qfalse;
}

static void *enqueue_with_gvl(void *arg)
{
    enqueue_call *c = arg;
    rb_aj_capture cap = {0, Qnil};
    VALUE r = rb_aj_protect(&cap, enqueue_invoke, (VALUE)c);
    if (cap.state) {
        /* A push that raised leaves the row to aj_store_drain; the Ruby layer reports it. */
        c->s->last_enqueue_error = NIL_P(cap.exc) ? Qtrue : cap.exc;
        c->rc = -1;
    } else {
        c->rc = r == Qtrue ? 0 : -1;
    }
    return NULL;
}

static int enqueue_cb(void *ctx, const aj_staged_job *job)
{
    rb_aj_store *s = ctx;
    if (NIL_P(s->enqueue))
        return -1;
    enqueue_call c = {s, job, -1};
    rb_aj_with_gvl(enqueue_with_gvl, &c);
    return c.rc;
}

/* --- host connection callbacks ------------------------------------------- */

typedef struct host_exec_call {
    rb_aj_store *s;
    const char *sql;
    const aj_value *params;
    size_t nparams;
    aj_host_result *result;
    char *errbuf;
    size_t errlen;
    int rc;
} host_exec_call;

VALUE rb_aj_value_to_ruby(const aj_value *v)
{
    switch (v->type) {
    case AJ_INT:
        return LL2NUM(v->integer);
    case AJ_TEXT:
        return rb_utf8_str_new(v->text, (long)v->len);
    default:
        return Qnil;
    }
}

/* Convert a Ruby cell (nil, Integer, String; the host layer normalises the rest). */
static aj_value value_from_ruby(VALUE v)
{
    aj_value out = {AJ_NULL, 0, NULL, 0};
    if (NIL_P(v))
        return out;
    if (RB_INTEGER_TYPE_P(v)) {
        out.type = AJ_INT;
        out.integer = NUM2LL(v);
        return out;
    }
    if (v == Qtrue || v == Qfalse) {
        out.type = AJ_INT;
        out.integer = v == Qtrue;
        return out;
    }
    if (!RB_TYPE_P(v, T_STRING))
        rb_raise(rb_eTypeError, "acidic_job host row: unsupported cell %" PRIsVALUE,
                 rb_obj_class(v));
    out.type = AJ_TEXT;
    out.text = RSTRING_PTR(v);
    out.len = (size_t)RSTRING_LEN(v);
    return out;
}

static VALUE host_exec_invoke(VALUE arg)
{
    host_exec_call *c = (host_exec_call *)arg;
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
            cells[i] = value_from_ruby(rb_ary_entry(row, i));
        if (aj_host_row(c->result, cells, (size_t)n) != 0)
            rb_raise(rb_eNoMemError, "acidic_job: out of memory");
    }
    RB_GC_GUARD(rows);
    return Qnil;
}

static void *host_exec_with_gvl(void *arg)
{
    host_exec_call *c = arg;
    rb_aj_capture cap = {0, Qnil};
    rb_aj_protect(&cap, host_exec_invoke, (VALUE)c);
    if (cap.state) {
        VALUE msg = NIL_P(cap.exc)
                        ? rb_str_new_cstr("non-local exit from the host connection")
                        : rb_sprintf("%" PRIsVALUE ": %" PRIsVALUE, rb_obj_class(cap.exc),
                                     rb_funcall(cap.exc, rb_intern("message"), 0));
        snprintf(c->errbuf, c->errlen, "%s", StringValueCStr(msg));
        c->rc = 1;
    } else {
        c->rc = 0;
    }
    return NULL;
}

static int host_exec(void *ctx, const char *sql, const aj_value *params, size_t nparams,
                     aj_host_result *result, char *errbuf, size_t errlen)
{
    host_exec_call c = {ctx, sql, params, nparams, result, errbuf, errlen, 1};
    rb_aj_with_gvl(host_exec_with_gvl, &c);
    return c.rc;
}

typedef struct host_tx_call {
    rb_aj_store *s;
    int open;
} host_tx_call;

static VALUE host_tx_invoke(VALUE arg)
{
    host_tx_call *c = (host_tx_call *)arg;
    return rb_funcall(c->s->host, rb_intern("in_transaction?"), 0);
}

static void *host_tx_with_gvl(void *arg)
{
    host_tx_call *c = arg;
    rb_aj_capture cap = {0, Qnil};
    VALUE r = rb_aj_protect(&cap, host_tx_invoke, (VALUE)c);
    c->open = !cap.state && RTEST(r);
    return NULL;
}

static int host_in_transaction(void *ctx)
{
    host_tx_call c = {ctx, 0};
    rb_aj_with_gvl(host_tx_with_gvl, &c);
    return c.open;
}

static const aj_host_ops host_ops = {host_exec, host_in_transaction};

/* --- constructors ---------------------------------------------------------- */

typedef struct open_call {
    aj_store **out;
    const char *url;
    aj_options *opts;
    int rc;
} open_call;

static void *open_nogvl(void *arg)
{
    open_call *c = arg;
    c->rc = aj_store_open(c->out, c->url, c->opts);
    return NULL;
}

static VALUE store_wrap(VALUE obj, rb_aj_store *s, aj_store *store)
{
    s->store = store;
    aj_store_set_enqueue(store, enqueue_cb, s);
    return obj;
}

/* Store.open(url, opts = nil): an owned connection; creates or upgrades the schema. */
static VALUE store_s_open(int argc, VALUE *argv, VALUE klass)
{
    VALUE url, opts;
    rb_scan_args(argc, argv, "11", &url, &opts);
    aj_options o;
    options_from(opts, &o);
    VALUE obj = store_alloc(klass);
    rb_aj_store *s = store_data(obj);
    aj_store *store = NULL;
    open_call c = {&store, StringValueCStr(url), &o, 0};
    rb_aj_without_gvl(1, open_nogvl, &c);
    RB_GC_GUARD(url);
    if (c.rc)
        rb_aj_raise(c.rc);
    return store_wrap(obj, s, store);
}

/* Store.borrow_sqlite(sqlite3_database, opts = nil): borrow the sqlite3 * of a
 * SQLite3::Database (its data struct starts with the handle). The Ruby layer checks
 * first that the gem links the same libsqlite3 as this extension. */
static VALUE store_s_borrow_sqlite(int argc, VALUE *argv, VALUE klass)
{
    VALUE db, opts;
    rb_scan_args(argc, argv, "11", &db, &opts);
    if (!RB_TYPE_P(db, T_DATA))
        rb_raise(rb_eTypeError, "expected a SQLite3::Database");
    void *data = RTYPEDDATA_P(db) ? RTYPEDDATA_DATA(db) : DATA_PTR(db);
    struct sqlite3 *handle = data ? *(struct sqlite3 **)data : NULL;
    if (!handle)
        rb_raise(rb_const_get(rb_aj_mAcidicJob, rb_intern("Misuse")),
                 "the SQLite3::Database is closed");
    aj_options o;
    options_from(opts, &o);
    VALUE obj = store_alloc(klass);
    rb_aj_store *s = store_data(obj);
    aj_store *store = NULL;
    int rc = aj_store_borrow_sqlite(&store, handle, &o);
    if (rc)
        rb_aj_raise(rc);
    s->keep = db;
    return store_wrap(obj, s, store);
}

/* Store.borrow_pg(pg_connection, opts = nil): borrow the PGconn * of a PG::Connection
 * through pg_ext's exported pg_get_pgconn, resolved at call time (no link-time
 * dependency on the pg gem). */
static VALUE store_s_borrow_pg(int argc, VALUE *argv, VALUE klass)
{
    VALUE conn, opts;
    rb_scan_args(argc, argv, "11", &conn, &opts);
    typedef struct pg_conn *(*get_pgconn_fn)(VALUE);
    get_pgconn_fn get = (get_pgconn_fn)dlsym(RTLD_DEFAULT, "pg_get_pgconn");
    if (!get)
        rb_raise(rb_const_get(rb_aj_mAcidicJob, rb_intern("Misuse")),
                 "pg_get_pgconn not found: require \"pg\" first");
    struct pg_conn *pg = get(conn); /* raises for a finished connection */
    aj_options o;
    options_from(opts, &o);
    VALUE obj = store_alloc(klass);
    rb_aj_store *s = store_data(obj);
    aj_store *store = NULL;
    int rc = aj_store_borrow_pg(&store, pg, &o);
    if (rc)
        rb_aj_raise(rc);
    s->keep = conn;
    return store_wrap(obj, s, store);
}

/* Store.borrow_host(dialect, host, opts = nil): execute through the host object:
 * host.exec(sql, params) -> [[cell, ...], ...] and host.in_transaction? -> bool.
 * dialect is :sqlite or :postgres. */
static VALUE store_s_borrow_host(int argc, VALUE *argv, VALUE klass)
{
    VALUE dialect, host, opts;
    rb_scan_args(argc, argv, "21", &dialect, &host, &opts);
    int d;
    if (dialect == ID2SYM(rb_intern("sqlite")))
        d = AJ_DIALECT_SQLITE;
    else if (dialect == ID2SYM(rb_intern("postgres")))
        d = AJ_DIALECT_POSTGRES;
    else
        rb_raise(rb_eArgError, "dialect must be :sqlite or :postgres");
    aj_options o;
    options_from(opts, &o);
    VALUE obj = store_alloc(klass);
    rb_aj_store *s = store_data(obj);
    s->host = host;
    s->release_gvl = 0;
    aj_store *store = NULL;
    int rc = aj_store_borrow_host(&store, d, &host_ops, s, &o);
    if (rc)
        rb_aj_raise(rc);
    return store_wrap(obj, s, store);
}

/* --- calls ------------------------------------------------------------------ */

typedef struct store_call {
    rb_aj_store *s;
    int op;
    int64_t i;
    size_t n;
    int flag;
    const char *sql;
    const aj_value *params;
    aj_rows *rows;
    int rc;
} store_call;

enum { OP_MIGRATE, OP_SETTLE, OP_DRAIN, OP_ACK, OP_EXEC };

static void *store_call_nogvl(void *arg)
{
    store_call *c = arg;
    aj_store *st = c->s->store;
    switch (c->op) {
    case OP_MIGRATE:
        c->rc = aj_store_migrate(st);
        break;
    case OP_SETTLE:
        c->rc = aj_store_settle(st, c->flag);
        break;
    case OP_DRAIN:
        c->rc = aj_store_drain(st, c->i, &c->n);
        break;
    case OP_ACK:
        c->rc = aj_staged_ack(st, c->i, &c->flag);
        break;
    case OP_EXEC:
        c->rc = aj_store_exec(st, c->sql, c->params, c->n, &c->rows);
        break;
    }
    return NULL;
}

static store_call call_store(VALUE self, int op, int64_t i, int flag)
{
    rb_aj_store *s = rb_aj_store_get(self);
    store_call c = {s, op, i, 0, flag, NULL, NULL, NULL, 0};
    s->last_enqueue_error = Qnil;
    rb_aj_without_gvl(s->release_gvl, store_call_nogvl, &c);
    if (c.rc)
        rb_aj_raise(c.rc);
    return c;
}

/* store.migrate: create or upgrade the schema (borrowed: inside a transaction). */
static VALUE store_migrate(VALUE self)
{
    call_store(self, OP_MIGRATE, 0, 0);
    return self;
}

/* store.settle(committed): after the application's commit (true) or rollback (false). */
static VALUE store_settle(VALUE self, VALUE committed)
{
    call_store(self, OP_SETTLE, 0, RTEST(committed));
    return self;
}

/* store.drain(older_than_ms) -> number of staged jobs handed to the enqueue callback. */
static VALUE store_drain(VALUE self, VALUE older_than_ms)
{
    store_call c = call_store(self, OP_DRAIN, NUM2LL(older_than_ms), 0);
    return SIZET2NUM(c.n);
}

/* store.ack(staged_id) -> true when this acknowledgement completed a batch. */
static VALUE store_ack(VALUE self, VALUE id)
{
    store_call c = call_store(self, OP_ACK, NUM2LL(id), 0);
    return c.flag ? Qtrue : Qfalse;
}

static VALUE rows_to_ruby(aj_rows *rows)
{
    size_t nr = aj_rows_count(rows), nc = aj_rows_columns(rows);
    VALUE out = rb_ary_new_capa((long)nr);
    for (size_t r = 0; r < nr; r++) {
        VALUE row = rb_ary_new_capa((long)nc);
        for (size_t c = 0; c < nc; c++)
            rb_ary_push(row, rb_aj_value_to_ruby(aj_rows_cell(rows, r, c)));
        rb_ary_push(out, row);
    }
    return out;
}

typedef struct exec_state {
    store_call *c;
    aj_value *params;
} exec_state;

/* store.exec(sql, params = []) -> [[cell, ...], ...] (`?` placeholders, Integer, String
 * or nil parameters). */
static VALUE store_exec(int argc, VALUE *argv, VALUE self)
{
    VALUE sql, params;
    rb_scan_args(argc, argv, "11", &sql, &params);
    rb_aj_store *s = rb_aj_store_get(self);
    const char *csql = StringValueCStr(sql);
    if (NIL_P(params))
        params = rb_ary_new();
    Check_Type(params, T_ARRAY);
    long n = RARRAY_LEN(params);
    /* Strings are frozen copies kept in `keep` so their bytes stay put while the GVL is
     * released. */
    VALUE keep = rb_ary_new_capa(n);
    aj_value *vals = ALLOCA_N(aj_value, n > 0 ? n : 1);
    for (long i = 0; i < n; i++) {
        VALUE v = rb_ary_entry(params, i);
        if (RB_TYPE_P(v, T_STRING)) {
            v = rb_str_new_frozen(v);
            rb_ary_push(keep, v);
        }
        vals[i] = value_from_ruby(v);
    }
    store_call c = {s, OP_EXEC, 0, (size_t)n, 0, csql, vals, NULL, 0};
    s->last_enqueue_error = Qnil;
    rb_aj_without_gvl(s->release_gvl, store_call_nogvl, &c);
    RB_GC_GUARD(keep);
    RB_GC_GUARD(sql);
    if (c.rc)
        rb_aj_raise(c.rc);
    VALUE out = c.rows ? rows_to_ruby(c.rows) : rb_ary_new();
    aj_rows_free(c.rows);
    return out;
}

/* store.enqueue = callable(id, adapter, job_name, payload) -> truthy when pushed */
static VALUE store_set_enqueue(VALUE self, VALUE callable)
{
    rb_aj_store *s = rb_aj_store_get(self);
    s->enqueue = callable;
    return callable;
}

/* store.last_enqueue_error: the exception the last enqueue callback raised, or nil. */
static VALUE store_last_enqueue_error(VALUE self) { return store_data(self)->last_enqueue_error; }

static VALUE store_driver(VALUE self)
{
    return rb_str_new_cstr(aj_store_driver(rb_aj_store_get(self)->store));
}

static VALUE store_borrowed_p(VALUE self)
{
    return aj_store_is_borrowed(rb_aj_store_get(self)->store) ? Qtrue : Qfalse;
}

static VALUE store_closed_p(VALUE self) { return store_data(self)->store ? Qfalse : Qtrue; }

/* store.close: close an owned connection (never a borrowed one) and free the store.
 * Runs made from it must be closed first. Closing twice is a no-op. */
static VALUE store_close(VALUE self)
{
    rb_aj_store *s = store_data(self);
    if (!s->store)
        return Qnil;
    if (s->nruns > 0)
        rb_raise(rb_const_get(rb_aj_mAcidicJob, rb_intern("Misuse")),
                 "close the store's runs before the store");
    aj_store_free(s->store);
    s->store = NULL;
    s->keep = s->host = s->enqueue = Qnil;
    return Qnil;
}

void rb_aj_init_store(void)
{
    rb_aj_cStore = rb_define_class_under(rb_aj_mNative, "Store", rb_cObject);
    rb_undef_alloc_func(rb_aj_cStore);
    rb_define_singleton_method(rb_aj_cStore, "open", store_s_open, -1);
    rb_define_singleton_method(rb_aj_cStore, "borrow_sqlite", store_s_borrow_sqlite, -1);
    rb_define_singleton_method(rb_aj_cStore, "borrow_pg", store_s_borrow_pg, -1);
    rb_define_singleton_method(rb_aj_cStore, "borrow_host", store_s_borrow_host, -1);
    rb_define_method(rb_aj_cStore, "migrate", store_migrate, 0);
    rb_define_method(rb_aj_cStore, "settle", store_settle, 1);
    rb_define_method(rb_aj_cStore, "drain", store_drain, 1);
    rb_define_method(rb_aj_cStore, "ack", store_ack, 1);
    rb_define_method(rb_aj_cStore, "exec", store_exec, -1);
    rb_define_method(rb_aj_cStore, "enqueue=", store_set_enqueue, 1);
    rb_define_method(rb_aj_cStore, "last_enqueue_error", store_last_enqueue_error, 0);
    rb_define_method(rb_aj_cStore, "driver", store_driver, 0);
    rb_define_method(rb_aj_cStore, "borrowed?", store_borrowed_p, 0);
    rb_define_method(rb_aj_cStore, "closed?", store_closed_p, 0);
    rb_define_method(rb_aj_cStore, "close", store_close, 0);
}
