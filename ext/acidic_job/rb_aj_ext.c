/* Entry point, error mapping, values and the GVL of the acidic_job extension, and the
 * attributes document's check for JSON's types. */
#include "rb_aj.h"

#include <math.h>
#include <ruby/encoding.h>
#include <ruby/thread.h>
#include <sqlite3.h>
#include <libpq-fe.h>

VALUE rb_aj_mAcidicJob, rb_aj_mNative;

/* Core codes and the AcidicJob classes they raise (defined in lib/acidic_job/errors.rb). */
static const struct {
    int code;
    const char *klass;
} error_map[] = {
    {AJ_ERROR, "Error"},
    {AJ_EINVALID, "InvalidArgument"},
    {AJ_ENOMEM, "OutOfMemory"},
    {AJ_EMISUSE, "Misuse"},
    {AJ_EDATABASE, "DatabaseError"},
    {AJ_ECONFLICT, "SerializedTransactionConflict"},
    {AJ_EMISMATCH, "MismatchedIdempotencyKeyAndJobArguments"},
    {AJ_ELOCKED, "LockedIdempotencyKey"},
    {AJ_EUNKNOWN_RECOVERY_POINT, "UnknownRecoveryPoint"},
    {AJ_ENO_STEPS, "NoDefinedSteps"},
    {AJ_EDUPLICATE_STEP, "DuplicateStepName"},
    {AJ_ESTEP, "StepFailed"},
    {AJ_ENOTFOUND, "NotFound"},
    {AJ_ESCHEMA, "SchemaError"},
    {AJ_ESTATE, "StateError"},
};

VALUE rb_aj_const(const char *name) { return rb_const_get(rb_aj_mAcidicJob, rb_intern(name)); }

VALUE rb_aj_error_class(int code)
{
    for (size_t i = 0; i < sizeof error_map / sizeof error_map[0]; i++)
        if (error_map[i].code == code)
            return rb_aj_const(error_map[i].klass);
    return rb_aj_const("Error");
}

void rb_aj_raise(int code)
{
    const aj_error *err = aj_error_last();
    int c = err->code != AJ_OK ? err->code : code;
    VALUE msg = rb_utf8_str_new_cstr(err->code != AJ_OK ? err->message : aj_code_name(code));
    aj_error_clear();
    VALUE exc = rb_exc_new_str(rb_aj_error_class(c), msg);
    rb_ivar_set(exc, rb_intern("@code"), ID2SYM(rb_intern(aj_code_name(c))));
    rb_exc_raise(exc);
}

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

aj_value rb_aj_value_from_ruby(VALUE v)
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
        rb_raise(rb_eTypeError, "acidic_job: a database value must be nil, an Integer, true, "
                                "false or a String, not %" PRIsVALUE, rb_obj_class(v));
    out.type = AJ_TEXT;
    out.text = RSTRING_PTR(v);
    out.len = (size_t)RSTRING_LEN(v);
    return out;
}

const char *rb_aj_doc(VALUE v, size_t *len)
{
    if (NIL_P(v)) {
        *len = 0;
        return NULL;
    }
    StringValue(v);
    *len = (size_t)RSTRING_LEN(v);
    return RSTRING_PTR(v);
}

/* --- the GVL ------------------------------------------------------------------------- */

/* 1 while this thread runs core code with the GVL released. */
static __thread int nogvl;

void *rb_aj_without_gvl(int release, void *(*fn)(void *), void *arg)
{
    if (!release || nogvl)
        return fn(arg);
    nogvl = 1;
    void *r = rb_thread_call_without_gvl(fn, arg, NULL, NULL);
    nogvl = 0;
    return r;
}

void *rb_aj_with_gvl(void *(*fn)(void *), void *arg)
{
    if (!nogvl)
        return fn(arg);
    nogvl = 0;
    void *r = rb_thread_call_with_gvl(fn, arg);
    nogvl = 1;
    return r;
}

typedef struct callback_call {
    rb_aj_capture *cap;
    VALUE (*fn)(VALUE);
    VALUE arg;
    VALUE result;
} callback_call;

static void *callback_with_gvl(void *p)
{
    callback_call *c = p;
    int state = 0;
    c->result = rb_protect(c->fn, c->arg, &state);
    if (state) {
        VALUE err = rb_errinfo();
        VALUE exc = rb_obj_is_kind_of(err, rb_eException) ? err : Qnil;
        if (!c->cap->state) {
            c->cap->state = state;
            c->cap->exc = exc;
        }
        /* A throw or break keeps its tag data in errinfo until rb_jump_tag. */
        if (!NIL_P(exc))
            rb_set_errinfo(Qnil);
        c->result = Qundef;
    }
    return NULL;
}

VALUE rb_aj_callback(rb_aj_capture *cap, VALUE (*fn)(VALUE), VALUE arg)
{
    callback_call c = {cap, fn, arg, Qnil};
    rb_aj_with_gvl(callback_with_gvl, &c);
    return c.result;
}

void rb_aj_reraise(rb_aj_capture *cap)
{
    int state = cap->state;
    VALUE exc = cap->exc;
    cap->state = 0;
    cap->exc = Qnil;
    if (!state)
        return;
    if (!NIL_P(exc))
        rb_exc_raise(exc);
    rb_jump_tag(state);
}

VALUE rb_aj_capture_message(const rb_aj_capture *cap)
{
    if (NIL_P(cap->exc))
        return rb_str_new_cstr("a non-local exit (break, throw) from a callback");
    return rb_sprintf("%" PRIsVALUE ": %" PRIsVALUE, rb_obj_class(cap->exc),
                      rb_funcall(cap->exc, rb_intern("message"), 0));
}

/* --- module functions ---------------------------------------------------------------- */

/* AcidicJob::Native.error_class(code) */
static VALUE native_error_class(VALUE mod, VALUE code) { return rb_aj_error_class(NUM2INT(code)); }

/* AcidicJob::Native.code_name(code) */
static VALUE native_code_name(VALUE mod, VALUE code)
{
    return rb_str_new_cstr(aj_code_name(NUM2INT(code)));
}

/* AcidicJob::Native.sqlite_libversion_number: the SQLite this extension links. */
static VALUE native_sqlite_version(VALUE mod) { return INT2NUM(sqlite3_libversion_number()); }

/* AcidicJob::Native.libpq_version: the libpq this extension links. */
static VALUE native_libpq_version(VALUE mod) { return INT2NUM(PQlibVersion()); }

/* --- JSON's types ------------------------------------------------------------------- */

/* Whether YAML.load reads the JSON of `obj` back as an equal object of the same classes
 * (Documents.flow, lib/acidic_job/coders.rb): nil, true, false, Integer, finite Float,
 * Strings valid in UTF-8 (or 7-bit US-ASCII), and Arrays and String-keyed Hashes of them,
 * 32 deep at most, none a subclass or holding an instance variable (Psych tags those).
 * No Ruby code runs, so nothing can change the containers while they are walked. */
#define JSON_TYPES_DEPTH 32

static int json_types(VALUE obj, int depth);

typedef struct json_pairs_walk {
    int depth;
    int ok;
} json_pairs_walk;

static int json_pair(VALUE key, VALUE value, VALUE arg)
{
    json_pairs_walk *w = (json_pairs_walk *)arg;
    if (!RB_TYPE_P(key, T_STRING) || !json_types(key, w->depth) || !json_types(value, w->depth)) {
        w->ok = 0;
        return ST_STOP;
    }
    return ST_CONTINUE;
}

/* An Array or Hash of its own class, without instance variables, within the depth limit. */
static int plain_container(VALUE obj, VALUE klass, int depth)
{
    return rb_obj_class(obj) == klass && depth < JSON_TYPES_DEPTH && rb_ivar_count(obj) == 0;
}

static int json_types(VALUE obj, int depth)
{
    switch (rb_type(obj)) {
    case T_NIL:
    case T_TRUE:
    case T_FALSE:
    case T_FIXNUM:
    case T_BIGNUM:
        return 1;
    case T_FLOAT:
        return isfinite(RFLOAT_VALUE(obj));
    case T_STRING: {
        if (rb_obj_class(obj) != rb_cString || rb_ivar_count(obj) != 0)
            return 0;
        int enc = ENCODING_GET(obj), cr = rb_enc_str_coderange(obj);
        if (enc == rb_utf8_encindex())
            return cr != ENC_CODERANGE_BROKEN;
        return enc == rb_usascii_encindex() && cr == ENC_CODERANGE_7BIT;
    }
    case T_ARRAY:
        if (!plain_container(obj, rb_cArray, depth))
            return 0;
        for (long i = 0; i < RARRAY_LEN(obj); i++)
            if (!json_types(RARRAY_AREF(obj, i), depth + 1))
                return 0;
        return 1;
    case T_HASH: {
        if (!plain_container(obj, rb_cHash, depth))
            return 0;
        json_pairs_walk w = {depth + 1, 1};
        rb_hash_foreach(obj, json_pair, (VALUE)&w);
        return w.ok;
    }
    default:
        return 0;
    }
}

/* AcidicJob::Native.json_types?(obj) */
static VALUE native_json_types_p(VALUE mod, VALUE obj) { return json_types(obj, 0) ? Qtrue : Qfalse; }

__attribute__((visibility("default"))) void Init_acidic_job_ext(void)
{
    rb_aj_mAcidicJob = rb_define_module("AcidicJob");
    rb_aj_mNative = rb_define_module_under(rb_aj_mAcidicJob, "Native");
    rb_define_const(rb_aj_mNative, "CORE_VERSION", rb_str_new_cstr(AJ_VERSION));

    VALUE codes = rb_hash_new();
    for (size_t i = 0; i < sizeof error_map / sizeof error_map[0]; i++)
        rb_hash_aset(codes, ID2SYM(rb_intern(aj_code_name(error_map[i].code))),
                     INT2NUM(error_map[i].code));
    rb_obj_freeze(codes);
    rb_define_const(rb_aj_mNative, "CODES", codes);

    rb_define_module_function(rb_aj_mNative, "error_class", native_error_class, 1);
    rb_define_module_function(rb_aj_mNative, "code_name", native_code_name, 1);
    rb_define_module_function(rb_aj_mNative, "sqlite_libversion_number", native_sqlite_version, 0);
    rb_define_module_function(rb_aj_mNative, "libpq_version", native_libpq_version, 0);
    rb_define_module_function(rb_aj_mNative, "json_types?", native_json_types_p, 1);

    rb_aj_init_store();
    rb_aj_init_workflow();
    rb_aj_init_run();
    rb_aj_init_admin();
}
