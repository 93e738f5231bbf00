/* Entry point, error mapping and GVL helpers of the acidic_job extension. */
#include "rb_aj.h"

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
    {AJ_ESTATE, "StateError"},
};

VALUE rb_aj_error_class(int code)
{
    for (size_t i = 0; i < sizeof error_map / sizeof error_map[0]; i++)
        if (error_map[i].code == code)
            return rb_const_get(rb_aj_mAcidicJob, rb_intern(error_map[i].klass));
    return rb_const_get(rb_aj_mAcidicJob, rb_intern("Error"));
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

VALUE rb_aj_protect(rb_aj_capture *cap, VALUE (*fn)(VALUE), VALUE arg)
{
    int state = 0;
    VALUE r = rb_protect(fn, arg, &state);
    if (state) {
        VALUE err = rb_errinfo();
        cap->state = state;
        cap->exc = rb_obj_is_kind_of(err, rb_eException) ? err : Qnil;
        if (!NIL_P(cap->exc))
            rb_set_errinfo(Qnil);
        return Qundef;
    }
    return r;
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

    rb_aj_init_store();
    rb_aj_init_run();
    rb_aj_init_admin();
}
