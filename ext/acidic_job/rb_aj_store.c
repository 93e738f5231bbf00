/* AcidicJob::Native::Store: an owned or borrowed aj_store, its enqueue, event and error
 * document callbacks. */
#include "rb_aj_gvl.h"

#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

VALUE rb_aj_cStore;

static void store_mark(void *p)
{
    rb_aj_store *s = p;
    rb_gc_mark(s->enqueue);
    rb_gc_mark(s->events);
    rb_gc_mark(s->host);
    rb_gc_mark(s->keep);
    rb_gc_mark(s->encode_error);
    rb_gc_mark(s->hook.exc);
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

static VALUE store_alloc(VALUE klass, rb_aj_store **out)
{
    rb_aj_store *s = calloc(1, sizeof *s);
    if (!s)
        rb_raise(rb_eNoMemError, "acidic_job: out of memory");
    s->enqueue = s->events = s->host = s->keep = s->encode_error = Qnil;
    s->last_enqueue_error = s->hook.exc = Qnil;
    s->release_gvl = 1;
    *out = s;
    return TypedData_Wrap_Struct(klass, &store_type, s);
}

static rb_aj_store *store_data(VALUE self) { return rb_check_typeddata(self, &store_type); }

rb_aj_store *rb_aj_store_get(VALUE self)
{
    rb_aj_store *s = store_data(self);
    if (!s->store)
        rb_raise(rb_aj_const("Misuse"), "the acidic_job store is closed");
    return s;
}

/* The sqlite3 gem keeps the blocks it hands SQLite in these (nil when unset). */
static const char *const sqlite_callbacks[] = {"@busy_handler", "@tracefunc", "@authorizer"};
static ID sqlite_callback_ids[sizeof sqlite_callbacks / sizeof *sqlite_callbacks];

int rb_aj_store_nogvl(const rb_aj_store *s)
{
    if (!s->release_gvl)
        return 0;
    if (s->borrowed_sqlite) {
        /* checked at every call, as the application may set one at any time */
        for (size_t i = 0; i < sizeof sqlite_callback_ids / sizeof *sqlite_callback_ids; i++)
            if (!NIL_P(rb_attr_get(s->keep, sqlite_callback_ids[i])))
                return 0;
    }
    return 1;
}

void rb_aj_store_begin_call(rb_aj_store *s)
{
    s->hook.state = 0;
    s->hook.exc = Qnil;
    s->last_enqueue_error = Qnil;
}

void rb_aj_store_check(rb_aj_store *s, int rc)
{
    if (s->hook.state) {
        int interrupt = NIL_P(s->hook.exc) || !rb_obj_is_kind_of(s->hook.exc, rb_eStandardError);
        if (rc || interrupt) {
            aj_error_clear();
            rb_aj_reraise(&s->hook);
        }
        s->hook.state = 0;
        s->hook.exc = Qnil;
    }
    if (rc)
        rb_aj_raise(rc);
}

/* --- options ------------------------------------------------------------------------- */

/* The options the user set (a Hash of Integers); every other one stays AJ_UNSET so that
 * the core applies its default. */
static void options_from(VALUE opts, aj_options *o)
{
    aj_options_init(o, AJ_OPTIONS_VERSION);
    if (NIL_P(opts))
        return;
    Check_Type(opts, T_HASH);
#define OPT(field)                                                              \
    do {                                                                        \
        VALUE v = rb_hash_aref(opts, ID2SYM(rb_intern(#field)));                \
        if (!NIL_P(v))                                                          \
            o->field = NUM2LL(v);                                               \
    } while (0)
    OPT(lock_timeout_ms);
    OPT(busy_timeout_ms);
    OPT(synchronous);
    OPT(conflict_retries);
    OPT(max_attempts);
    OPT(retry_base_ms);
    OPT(match_job_name);
#undef OPT
}

/* store.options -> the effective options (the core's defaults applied). */
static VALUE store_options(VALUE self)
{
    aj_options o;
    aj_options_init(&o, AJ_OPTIONS_VERSION);
    int rc = aj_store_options(rb_aj_store_get(self)->store, &o);
    if (rc)
        rb_aj_raise(rc);
    VALUE h = rb_hash_new();
#define PUT(field) rb_hash_aset(h, ID2SYM(rb_intern(#field)), LL2NUM(o.field))
    PUT(lock_timeout_ms);
    PUT(busy_timeout_ms);
    PUT(synchronous);
    PUT(conflict_retries);
    PUT(max_attempts);
    PUT(retry_base_ms);
    PUT(match_job_name);
#undef PUT
    return h;
}

/* --- callbacks ----------------------------------------------------------------------- */

typedef struct enqueue_call {
    rb_aj_store *s;
    const aj_staged_job *job;
} enqueue_call;

static VALUE enqueue_invoke(VALUE arg)
{
    enqueue_call *c = (enqueue_call *)arg;
    const aj_staged_job *j = c->job;
    return rb_funcall(c->s->enqueue, rb_intern("call"), 4, LL2NUM(j->id),
                      rb_utf8_str_new_cstr(j->adapter), rb_utf8_str_new_cstr(j->job_name),
                      rb_utf8_str_new(j->payload, (long)j->payload_len));
}

static int enqueue_cb(void *ctx, const aj_staged_job *job)
{
    rb_aj_store *s = ctx;
    if (NIL_P(s->enqueue))
        return -1;
    enqueue_call c = {s, job};
    rb_aj_capture cap = RB_AJ_CAPTURE_INIT;
    VALUE r = rb_aj_callback(&cap, enqueue_invoke, (VALUE)&c);
    if (cap.state) {
        /* A push that raised leaves the row to a later drain; the Ruby layer logs it. */
        s->last_enqueue_error = NIL_P(cap.exc) ? Qtrue : cap.exc;
        return -1;
    }
    return RTEST(r) ? 0 : -1;
}

static const char *const event_names[] = {
    NULL, "acquired", "skipped", "step_started", "step_committed", "step_failed",
    "finished", "staged", "enqueued", "drained", "recovered"};
#define EVENT_TYPES ((int)(sizeof event_names / sizeof event_names[0]))

static VALUE opt_cstr(const char *s) { return s ? rb_utf8_str_new_cstr(s) : Qnil; }

typedef struct event_call {
    rb_aj_store *s;
    const aj_event *e;
} event_call;

/* events.call(hash): the event's fields that apply to its type (nil-valued ones left out). */
static VALUE event_invoke(VALUE arg)
{
    event_call *c = (event_call *)arg;
    const aj_event *e = c->e;
    VALUE h = rb_hash_new();
#define SET(name, value)                                         \
    do {                                                         \
        VALUE v_ = (value);                                      \
        if (!NIL_P(v_))                                          \
            rb_hash_aset(h, ID2SYM(rb_intern(name)), v_);        \
    } while (0)
    SET("type", ID2SYM(rb_intern(event_names[e->type])));
    if (e->run_id)
        SET("run_id", LL2NUM(e->run_id));
    SET("key", opt_cstr(e->key));
    SET("job_name", opt_cstr(e->job_name));
    SET("step", opt_cstr(e->step));
    if (e->status)
        SET("status", INT2NUM(e->status));
    switch (e->type) {
    case AJ_EVENT_ACQUIRED:
        SET("attempt", INT2NUM(e->attempt));
        SET("resumed", e->resumed ? Qtrue : Qfalse);
        break;
    case AJ_EVENT_STEP_COMMITTED:
        SET("duration_us", LL2NUM(e->duration_us));
        break;
    case AJ_EVENT_STEP_FAILED:
        SET("duration_us", LL2NUM(e->duration_us));
        SET("code", ID2SYM(rb_intern(aj_code_name(e->code))));
        SET("message", opt_cstr(e->message));
        break;
    case AJ_EVENT_STAGED:
    case AJ_EVENT_ENQUEUED:
        SET("staged_id", LL2NUM(e->staged_id));
        SET("adapter", opt_cstr(e->adapter));
        SET("staged_job", opt_cstr(e->staged_job));
        if (e->type == AJ_EVENT_ENQUEUED)
            SET("accepted", e->accepted ? Qtrue : Qfalse);
        break;
    case AJ_EVENT_DRAINED:
        SET("count", SIZET2NUM(e->count));
        break;
    case AJ_EVENT_RECOVERED:
        SET("adapter", opt_cstr(e->adapter));
        SET("staged_job", opt_cstr(e->staged_job));
        SET("attempt", INT2NUM(e->attempt));
        SET("dead", e->dead ? Qtrue : Qfalse);
        break;
    default:
        break;
    }
#undef SET
    return rb_funcall(c->s->events, rb_intern("call"), 1, h);
}

/* Events are only converted when Ruby listens to their type (event_mask). What a
 * subscriber raises is logged by the Ruby layer's handler, never here. */
static void event_cb(void *ctx, const aj_event *event)
{
    rb_aj_store *s = ctx;
    if (NIL_P(s->events) || event->type <= 0 || event->type >= EVENT_TYPES ||
        !(s->event_mask & (1u << event->type)))
        return;
    event_call c = {s, event};
    rb_aj_capture cap = RB_AJ_CAPTURE_INIT;
    rb_aj_callback(&cap, event_invoke, (VALUE)&c);
    if (cap.state && !s->hook.state &&
        (NIL_P(cap.exc) || !rb_obj_is_kind_of(cap.exc, rb_eStandardError)))
        s->hook = cap; /* an interrupt: raised once the core returns */
}

typedef struct encode_call {
    rb_aj_store *s;
    int code;
    const char *message;
} encode_call;

static VALUE encode_invoke(VALUE arg)
{
    encode_call *c = (encode_call *)arg;
    VALUE doc = rb_funcall(c->s->encode_error, rb_intern("call"), 2,
                           ID2SYM(rb_intern(aj_code_name(c->code))),
                           rb_utf8_str_new_cstr(c->message ? c->message : ""));
    return NIL_P(doc) ? Qnil : rb_str_new_frozen(StringValue(doc));
}

static int encode_error_cb(void *ctx, aj_run *run, int code, const char *message)
{
    rb_aj_store *s = ctx;
    encode_call c = {s, code, message};
    rb_aj_capture cap = RB_AJ_CAPTURE_INIT;
    VALUE doc = rb_aj_callback(&cap, encode_invoke, (VALUE)&c);
    if (cap.state || NIL_P(doc))
        return 0; /* the core keeps its own document */
    int rc = aj_run_set_error(run, RSTRING_PTR(doc), (size_t)RSTRING_LEN(doc));
    RB_GC_GUARD(doc);
    return rc;
}

static void store_attach(rb_aj_store *s, aj_store *store)
{
    s->store = store;
    aj_store_set_enqueue(store, enqueue_cb, s);
    aj_store_set_events(store, event_cb, s);
}

/* --- constructors -------------------------------------------------------------------- */

/* Store.open(url, opts = nil): acidic_job's own connection; its tables are created or
 * healed on first use. */
static VALUE store_s_open(int argc, VALUE *argv, VALUE klass)
{
    VALUE url, opts;
    rb_scan_args(argc, argv, "11", &url, &opts);
    aj_options o;
    options_from(opts, &o);
    rb_aj_store *s;
    VALUE obj = store_alloc(klass, &s);
    aj_store *store = NULL;
    int rc = rb_aj_nogvl_aj_store_open(1, &store, StringValueCStr(url), &o);
    RB_GC_GUARD(url);
    if (rc)
        rb_aj_raise(rc);
    store_attach(s, store);
    return obj;
}

/* AcidicJob::Native's view of a Ruby class by path, or Qnil when it is not loaded. */
static VALUE loaded_class(const char *outer, const char *inner)
{
    if (!rb_const_defined(rb_cObject, rb_intern(outer)))
        return Qnil;
    VALUE mod = rb_const_get(rb_cObject, rb_intern(outer));
    if (!RB_TYPE_P(mod, T_MODULE) && !RB_TYPE_P(mod, T_CLASS))
        return Qnil;
    if (!rb_const_defined_at(mod, rb_intern(inner)))
        return Qnil;
    return rb_const_get_at(mod, rb_intern(inner));
}

static void check_class(VALUE obj, const char *outer, const char *inner)
{
    VALUE klass = loaded_class(outer, inner);
    if (NIL_P(klass) || !RTEST(rb_obj_is_kind_of(obj, klass)) || !RB_TYPE_P(obj, T_DATA))
        rb_raise(rb_eTypeError, "expected a %s::%s, not %" PRIsVALUE, outer, inner,
                 rb_obj_class(obj));
}

/* The sqlite3 * of a SQLite3::Database: its data struct starts with the handle (sqlite3
 * gem 1.3 through 2.x). The Ruby layer checks first that the gem links the same
 * libsqlite3 as this extension. */
static struct sqlite3 *sqlite_handle(VALUE db)
{
    check_class(db, "SQLite3", "Database");
    void *data = RTYPEDDATA_P(db) ? RTYPEDDATA_DATA(db) : DATA_PTR(db);
    struct sqlite3 *handle = data ? *(struct sqlite3 **)data : NULL;
    if (!handle)
        rb_raise(rb_aj_const("Misuse"), "the SQLite3::Database is closed");
    return handle;
}

/* The PGconn * of a PG::Connection, through pg_ext's exported pg_get_pgconn, resolved at
 * call time (no link-time dependency on the pg gem). */
static struct pg_conn *pg_handle(VALUE conn)
{
    check_class(conn, "PG", "Connection");
    typedef struct pg_conn *(*get_pgconn_fn)(VALUE);
    get_pgconn_fn get = (get_pgconn_fn)dlsym(RTLD_DEFAULT, "pg_get_pgconn");
    if (!get)
        rb_raise(rb_aj_const("Misuse"), "pg_get_pgconn not found: require \"pg\" first");
    return get(conn); /* raises PG::ConnectionBad for a finished connection */
}

enum borrow_kind { BORROW_SQLITE, BORROW_PG, BORROW_HOST };

/* host.libpq_state? is true: its ORM reads the transaction state from libpq while the
 * core's body runs (see rb_aj_host_tx_libpq). */
static int host_libpq_state(VALUE host)
{
    ID id = rb_intern("libpq_state?");
    return rb_respond_to(host, id) && RTEST(rb_funcall(host, id, 0));
}

/* The one borrow constructor: `conn` is a SQLite3::Database, a PG::Connection, or (host)
 * the dialect :sqlite / :postgres of a connection reached only through `host`. The host
 * object runs the core's transactions (see rb_aj_host.c); nil lets the core begin and
 * commit on a native handle itself. */
static VALUE store_borrow(VALUE klass, enum borrow_kind kind, VALUE conn, VALUE host, VALUE opts)
{
    struct sqlite3 *db = NULL;
    struct pg_conn *pg = NULL;
    int dialect = 0;
    if (kind == BORROW_SQLITE)
        db = sqlite_handle(conn);
    else if (kind == BORROW_PG)
        pg = pg_handle(conn);
    else if (conn == ID2SYM(rb_intern("sqlite")))
        dialect = AJ_DIALECT_SQLITE;
    else if (conn == ID2SYM(rb_intern("postgres")))
        dialect = AJ_DIALECT_POSTGRES;
    else
        rb_raise(rb_eArgError, "the dialect must be :sqlite or :postgres");
    if (kind == BORROW_HOST && NIL_P(host))
        rb_raise(rb_eArgError, "a host store needs its host connection object");
    aj_options o;
    options_from(opts, &o);
    rb_aj_store *s;
    VALUE obj = store_alloc(klass, &s);
    s->host = host;
    s->keep = conn;
    s->release_gvl = kind != BORROW_HOST;
    s->borrowed_sqlite = kind == BORROW_SQLITE;
    const aj_host_tx *tx = NIL_P(host)                         ? NULL
                           : kind == BORROW_PG && host_libpq_state(host) ? &rb_aj_host_tx_libpq
                                                                         : &rb_aj_host_tx;
    aj_store *store = NULL;
    int rc = kind == BORROW_SQLITE ? aj_store_borrow_sqlite(&store, db, tx, s, &o)
             : kind == BORROW_PG   ? aj_store_borrow_pg(&store, pg, tx, s, &o)
                                   : aj_store_borrow_host(&store, dialect, &rb_aj_host_ops, tx,
                                                          s, &o);
    if (rc)
        rb_aj_raise(rc);
    store_attach(s, store);
    return obj;
}

/* Store.borrow_sqlite(sqlite3_database, host = nil, opts = nil) */
static VALUE store_s_borrow_sqlite(int argc, VALUE *argv, VALUE klass)
{
    VALUE conn, host, opts;
    rb_scan_args(argc, argv, "12", &conn, &host, &opts);
    return store_borrow(klass, BORROW_SQLITE, conn, host, opts);
}

/* Store.borrow_pg(pg_connection, host = nil, opts = nil) */
static VALUE store_s_borrow_pg(int argc, VALUE *argv, VALUE klass)
{
    VALUE conn, host, opts;
    rb_scan_args(argc, argv, "12", &conn, &host, &opts);
    return store_borrow(klass, BORROW_PG, conn, host, opts);
}

/* Store.borrow_host(dialect, host, opts = nil) */
static VALUE store_s_borrow_host(int argc, VALUE *argv, VALUE klass)
{
    VALUE dialect, host, opts;
    rb_scan_args(argc, argv, "21", &dialect, &host, &opts);
    return store_borrow(klass, BORROW_HOST, dialect, host, opts);
}

/* --- calls --------------------------------------------------------------------------- */

/* store.migrate: detect, create or heal the tables now (every store also does it by
 * itself on first use). */
static VALUE store_migrate(VALUE self)
{
    rb_aj_store *s = rb_aj_store_get(self);
    rb_aj_store_begin_call(s);
    int rc = rb_aj_nogvl_aj_store_migrate(rb_aj_store_nogvl(s), s->store);
    rb_aj_store_check(s, rc);
    return self;
}

/* store.drain(older_than_ms) -> number of staged jobs handed to the enqueue callback. */
static VALUE store_drain(VALUE self, VALUE older_than_ms)
{
    rb_aj_store *s = rb_aj_store_get(self);
    int64_t ms = NUM2LL(older_than_ms);
    size_t n = 0;
    rb_aj_store_begin_call(s);
    int rc = rb_aj_nogvl_aj_store_drain(rb_aj_store_nogvl(s), s->store, ms, &n);
    rb_aj_store_check(s, rc);
    return SIZET2NUM(n);
}

/* store.ack(staged_id) -> true when this acknowledgement completed a batch. */
static VALUE store_ack(VALUE self, VALUE id)
{
    rb_aj_store *s = rb_aj_store_get(self);
    int64_t staged = NUM2LL(id);
    int completed = 0;
    rb_aj_store_begin_call(s);
    int rc = rb_aj_nogvl_aj_staged_ack(rb_aj_store_nogvl(s), s->store, staged, &completed);
    rb_aj_store_check(s, rc);
    return completed ? Qtrue : Qfalse;
}

/* store.recover(limit = 0) -> [requeued, dead] */
static VALUE store_recover(int argc, VALUE *argv, VALUE self)
{
    VALUE limit;
    rb_scan_args(argc, argv, "01", &limit);
    rb_aj_store *s = rb_aj_store_get(self);
    size_t n = NIL_P(limit) ? 0 : NUM2SIZET(limit), requeued = 0, dead = 0;
    rb_aj_store_begin_call(s);
    int rc = rb_aj_nogvl_aj_store_recover(rb_aj_store_nogvl(s), s->store, n, &requeued, &dead);
    rb_aj_store_check(s, rc);
    return rb_assoc_new(SIZET2NUM(requeued), SIZET2NUM(dead));
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
        vals[i] = rb_aj_value_from_ruby(v);
    }
    aj_rows *rows = NULL;
    rb_aj_store_begin_call(s);
    int rc = rb_aj_nogvl_aj_store_exec(rb_aj_store_nogvl(s), s->store, csql, vals, (size_t)n, &rows);
    RB_GC_GUARD(keep);
    RB_GC_GUARD(sql);
    rb_aj_store_check(s, rc);
    VALUE out = rows ? rows_to_ruby(rows) : rb_ary_new();
    aj_rows_free(rows);
    return out;
}

/* store.enqueue = callable(id, adapter, job_name, payload) -> truthy when pushed */
static VALUE store_set_enqueue(VALUE self, VALUE callable)
{
    rb_aj_store_get(self)->enqueue = callable;
    return callable;
}

/* store.events = callable(hash), store.event_mask = bits (1 << type) of the wanted types */
static VALUE store_set_events(VALUE self, VALUE callable)
{
    rb_aj_store_get(self)->events = callable;
    return callable;
}

static VALUE store_set_event_mask(VALUE self, VALUE mask)
{
    rb_aj_store_get(self)->event_mask = NUM2UINT(mask);
    return mask;
}

/* store.error_encoder = callable(code_name, message) -> the error document the core
 * records for failures it detects itself */
static VALUE store_set_error_encoder(VALUE self, VALUE callable)
{
    rb_aj_store *s = rb_aj_store_get(self);
    s->encode_error = callable;
    aj_store_set_error_encoder(s->store, NIL_P(callable) ? NULL : encode_error_cb, s);
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

/* store.close: close an owned connection (never a borrowed one) and free the store. Runs
 * made from it must be closed first. Closing twice is a no-op. */
static VALUE store_close(VALUE self)
{
    rb_aj_store *s = store_data(self);
    if (!s->store)
        return Qnil;
    if (s->nruns > 0)
        rb_raise(rb_aj_const("Misuse"), "close the store's runs before the store");
    aj_store_free(s->store);
    s->store = NULL;
    s->keep = s->host = s->enqueue = s->events = s->encode_error = Qnil;
    return Qnil;
}

void rb_aj_init_store(void)
{
    rb_aj_cStore = rb_define_class_under(rb_aj_mNative, "Store", rb_cObject);
    rb_undef_alloc_func(rb_aj_cStore);
    for (size_t i = 0; i < sizeof sqlite_callbacks / sizeof *sqlite_callbacks; i++)
        sqlite_callback_ids[i] = rb_intern(sqlite_callbacks[i]);
    VALUE types = rb_hash_new();
    for (int i = 1; i < EVENT_TYPES; i++)
        rb_hash_aset(types, ID2SYM(rb_intern(event_names[i])), INT2NUM(i));
    rb_obj_freeze(types);
    rb_define_const(rb_aj_cStore, "EVENT_TYPES", types);
    rb_define_singleton_method(rb_aj_cStore, "open", store_s_open, -1);
    rb_define_singleton_method(rb_aj_cStore, "borrow_sqlite", store_s_borrow_sqlite, -1);
    rb_define_singleton_method(rb_aj_cStore, "borrow_pg", store_s_borrow_pg, -1);
    rb_define_singleton_method(rb_aj_cStore, "borrow_host", store_s_borrow_host, -1);
    rb_define_method(rb_aj_cStore, "migrate", store_migrate, 0);
    rb_define_method(rb_aj_cStore, "drain", store_drain, 1);
    rb_define_method(rb_aj_cStore, "ack", store_ack, 1);
    rb_define_method(rb_aj_cStore, "recover", store_recover, -1);
    rb_define_method(rb_aj_cStore, "exec", store_exec, -1);
    rb_define_method(rb_aj_cStore, "options", store_options, 0);
    rb_define_method(rb_aj_cStore, "enqueue=", store_set_enqueue, 1);
    rb_define_method(rb_aj_cStore, "events=", store_set_events, 1);
    rb_define_method(rb_aj_cStore, "event_mask=", store_set_event_mask, 1);
    rb_define_method(rb_aj_cStore, "error_encoder=", store_set_error_encoder, 1);
    rb_define_method(rb_aj_cStore, "last_enqueue_error", store_last_enqueue_error, 0);
    rb_define_method(rb_aj_cStore, "driver", store_driver, 0);
    rb_define_method(rb_aj_cStore, "borrowed?", store_borrowed_p, 0);
    rb_define_method(rb_aj_cStore, "closed?", store_closed_p, 0);
    rb_define_method(rb_aj_cStore, "close", store_close, 0);
}
