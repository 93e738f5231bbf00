/* AcidicJob::Native::Run: one run of a workflow under an idempotency key. */
#include "rb_aj_gvl.h"

#include <ruby/encoding.h>
#include <stdlib.h>
#include <string.h>

VALUE rb_aj_cRun;

typedef struct rb_aj_run {
    aj_run *run;
    rb_aj_store *s;    /* counted in s->nruns while the run is open */
    VALUE store_obj;
    VALUE workflow;    /* the Native::Workflow: outlives the run */
    VALUE args_equal;  /* callable(stored_args_document) -> true when equal, or nil */
    VALUE block;       /* the step block during Run#execute */
    int in_step;
    rb_aj_capture cap; /* what the step block (or args_equal) raised */
} rb_aj_run;

static void run_mark(void *p)
{
    rb_aj_run *r = p;
    rb_gc_mark(r->store_obj);
    rb_gc_mark(r->workflow);
    rb_gc_mark(r->args_equal);
    rb_gc_mark(r->block);
    rb_gc_mark(r->cap.exc);
}

static void run_close_data(rb_aj_run *r)
{
    if (r->run) {
        aj_run_free(r->run);
        r->run = NULL;
    }
    if (r->s) {
        rb_aj_store *s = r->s;
        r->s = NULL;
        rb_aj_store_release(s);
    }
}

static void run_free(void *p)
{
    rb_aj_run *r = p;
    run_close_data(r);
    free(r);
}

static const rb_data_type_t run_type = {
    "AcidicJob::Native::Run",
    {run_mark, run_free, NULL},
    NULL, NULL, 0};

static rb_aj_run *run_get(VALUE self)
{
    rb_aj_run *r = rb_check_typeddata(self, &run_type);
    if (!r->run)
        rb_raise(rb_aj_const("Misuse"), "the acidic_job run is closed");
    return r;
}

/* --- args_equal ---------------------------------------------------------------------- */

typedef struct equal_call {
    rb_aj_run *r;
    const char *stored;
    size_t len;
} equal_call;

static VALUE equal_invoke(VALUE arg)
{
    equal_call *c = (equal_call *)arg;
    return rb_funcall(c->r->args_equal, rb_intern("call"), 1,
                      rb_utf8_str_new(c->stored, (long)c->len));
}

static int args_equal_cb(void *ctx, const char *stored, size_t stored_len, const char *given,
                         size_t given_len)
{
    if (stored_len == given_len && memcmp(stored, given, given_len) == 0)
        return 1;
    rb_aj_run *r = ctx;
    equal_call c = {r, stored, stored_len};
    VALUE same = rb_aj_callback(&r->cap, equal_invoke, (VALUE)&c);
    if (r->cap.state)
        return aj_error_report(AJ_ERROR, "comparing the job arguments raised");
    return RTEST(same) ? 1 : 0;
}

/* --- construction -------------------------------------------------------------------- */

/* A macro, so that rb_intern caches each literal name's ID. */
#define param(params, name) rb_hash_aref((params), ID2SYM(rb_intern(name)))

static const char *opt_cstr(VALUE v) { return NIL_P(v) ? NULL : StringValueCStr(v); }

/* Run.new(store, workflow, key:, job_name:, args: nil, attributes: nil, run_id: nil,
 *         args_equal: nil, resume: nil)
 * Prepares the run without touching the database; the first step acquires it.
 * resume: [adapter, job_name, payload], how recovery enqueues this run again. */
static VALUE run_s_new(VALUE klass, VALUE store_obj, VALUE workflow, VALUE params)
{
    rb_aj_store *s = rb_aj_store_get(store_obj);
    const aj_workflow *wf = rb_aj_workflow_get(workflow);
    Check_Type(params, T_HASH);
    VALUE key = param(params, "key"), job_name = param(params, "job_name");
    VALUE args = param(params, "args"), attrs = param(params, "attributes");
    VALUE run_id = param(params, "run_id"), equal = param(params, "args_equal");
    VALUE resume = param(params, "resume");

    rb_aj_run *r = calloc(1, sizeof *r);
    if (!r)
        rb_raise(rb_eNoMemError, "acidic_job: out of memory");
    r->store_obj = r->workflow = r->args_equal = r->block = r->cap.exc = Qnil;
    VALUE obj = TypedData_Wrap_Struct(klass, &run_type, r);

    aj_run_params p = AJ_RUN_PARAMS_INIT;
    p.key = StringValueCStr(key);
    p.job_name = StringValueCStr(job_name);
    p.args = rb_aj_doc(args, &p.args_len);
    p.attributes = rb_aj_doc(attrs, &p.attributes_len);
    p.run_id = NIL_P(run_id) ? 0 : NUM2LL(run_id);
    if (!NIL_P(equal)) {
        p.args_equal = args_equal_cb;
        p.args_equal_ctx = r;
    }
    VALUE resume_payload = Qnil;
    if (!NIL_P(resume)) {
        Check_Type(resume, T_ARRAY);
        if (RARRAY_LEN(resume) != 3)
            rb_raise(rb_eArgError, "resume is [adapter, job_name, payload]");
        p.resume_adapter = opt_cstr(rb_ary_entry(resume, 0));
        p.resume_job_name = opt_cstr(rb_ary_entry(resume, 1));
        resume_payload = rb_ary_entry(resume, 2);
        p.resume_payload = rb_aj_doc(resume_payload, &p.resume_payload_len);
    }
    aj_run *run = NULL;
    int rc = aj_run_new(&run, s->store, wf, &p); /* no I/O: the params are copied */
    RB_GC_GUARD(key);
    RB_GC_GUARD(job_name);
    RB_GC_GUARD(args);
    RB_GC_GUARD(attrs);
    RB_GC_GUARD(resume);
    RB_GC_GUARD(resume_payload);
    if (rc)
        rb_aj_raise(rc);
    r->run = run;
    r->s = s;
    s->nruns++;
    r->store_obj = store_obj;
    r->workflow = workflow;
    r->args_equal = equal;
    return obj;
}

/* --- execution ----------------------------------------------------------------------- */

typedef struct step_call {
    rb_aj_run *r;
    const char *step;
} step_call;

static VALUE step_invoke(VALUE arg)
{
    step_call *c = (step_call *)arg;
    /* Step names are interned: one String per name, not one per step. */
    VALUE name = rb_enc_interned_str_cstr(c->step, rb_utf8_encoding());
    return rb_funcall(c->r->block, rb_intern("call"), 1, name);
}

typedef struct conflict_call {
    rb_aj_run *r;
    int conflict;
    VALUE message;
} conflict_call;

static VALUE conflict_invoke(VALUE arg)
{
    conflict_call *c = (conflict_call *)arg;
    VALUE code = rb_funcall(c->r->s->host, rb_intern("step_error_code"), 1, c->r->cap.exc);
    c->conflict = NUM2INT(code) == AJ_ECONFLICT;
    if (c->conflict)
        c->message = rb_aj_capture_message(&c->r->cap);
    return Qnil;
}

/* The block raised: a conflict of the host's database that a new transaction may not
 * meet (the host says so) is retried by the core; anything else fails the step. */
static int step_failed(rb_aj_run *r)
{
    if (NIL_P(r->s->host) || NIL_P(r->cap.exc) ||
        !rb_obj_is_kind_of(r->cap.exc, rb_eStandardError))
        return 1;
    conflict_call c = {r, 0, Qnil};
    rb_aj_capture inner = RB_AJ_CAPTURE_INIT;
    rb_aj_callback(&inner, conflict_invoke, (VALUE)&c);
    if (!c.conflict || NIL_P(c.message))
        return 1;
    char msg[512];
    snprintf(msg, sizeof msg, "%s", StringValueCStr(c.message));
    RB_GC_GUARD(c.message);
    return aj_error_report(AJ_ECONFLICT, msg);
}

static int step_cb(aj_run *run, const char *step, void *ctx)
{
    rb_aj_run *r = ctx;
    step_call c = {r, step};
    r->cap.state = 0; /* a retried step keeps only the exception of its last try */
    r->cap.exc = Qnil;
    rb_aj_callback(&r->cap, step_invoke, (VALUE)&c);
    return r->cap.state ? step_failed(r) : 0;
}

/* run.execute { |step_name| ... } -> status: acquire the run and run its steps, each in
 * one transaction with the step's writes (the block makes them). What the block raised
 * is re-raised here once the core has returned (the step was rolled back, its error
 * recorded and the run unlocked); otherwise the core's error is raised. */
static VALUE run_execute(VALUE self)
{
    rb_aj_run *r = run_get(self);
    if (r->in_step)
        rb_raise(rb_aj_const("Misuse"), "Run#execute called from inside a step");
    rb_aj_store *s = r->s;
    r->block = rb_block_proc();
    r->cap.state = 0;
    r->cap.exc = Qnil;
    r->in_step = 1;
    rb_aj_store_begin_call(s);
    int rc = rb_aj_nogvl_aj_run_execute(rb_aj_store_nogvl(s), r->run, step_cb, r);
    r->in_step = 0;
    r->block = Qnil;
    if (r->cap.state) {
        s->hook.state = 0;
        s->hook.exc = Qnil;
        aj_error_clear();
        rb_aj_reraise(&r->cap);
    }
    rb_aj_store_check(s, rc);
    return INT2NUM(aj_run_status(r->run));
}

/* --- calls inside a step (no I/O: staged jobs are inserted with the step's commit) ---- */

static void check(int rc)
{
    if (rc)
        rb_aj_raise(rc);
}

static const char *str(VALUE v) { return StringValueCStr(v); }

/* run.stage(adapter, job_name, payload) */
static VALUE run_stage(VALUE self, VALUE adapter, VALUE job_name, VALUE payload)
{
    rb_aj_run *r = run_get(self);
    size_t len;
    const char *doc = rb_aj_doc(payload, &len);
    check(aj_run_stage(r->run, str(adapter), str(job_name), doc, len, NULL));
    return Qtrue;
}

/* run.await_job(adapter, job_name, payload): stage one awaited job of this step. */
static VALUE run_await(VALUE self, VALUE adapter, VALUE job_name, VALUE payload)
{
    rb_aj_run *r = run_get(self);
    size_t len;
    const char *doc = rb_aj_doc(payload, &len);
    check(aj_run_await(r->run, str(adapter), str(job_name), doc, len, NULL));
    return Qtrue;
}

/* run.set_continuation(adapter, job_name, payload): the job that resumes this run. */
static VALUE run_set_continuation(VALUE self, VALUE adapter, VALUE job_name, VALUE payload)
{
    rb_aj_run *r = run_get(self);
    size_t len;
    const char *doc = rb_aj_doc(payload, &len);
    check(aj_run_set_continuation(r->run, str(adapter), str(job_name), doc, len));
    return self;
}

static VALUE run_finish(VALUE self)
{
    check(aj_run_finish(run_get(self)->run));
    return self;
}

/* run.release: unlock the run when this step commits; it waits for an outside batch. */
static VALUE run_release(VALUE self)
{
    check(aj_run_release(run_get(self)->run));
    return self;
}

static VALUE run_goto(VALUE self, VALUE step)
{
    check(aj_run_goto(run_get(self)->run, str(step)));
    return self;
}

static VALUE run_set_error(VALUE self, VALUE doc)
{
    size_t len;
    const char *d = rb_aj_doc(doc, &len);
    check(aj_run_set_error(run_get(self)->run, d, len));
    return doc;
}

static VALUE run_set_attributes(VALUE self, VALUE doc)
{
    size_t len;
    const char *d = rb_aj_doc(doc, &len);
    check(aj_run_set_attributes(run_get(self)->run, d, len));
    return doc;
}

/* --- inspection ---------------------------------------------------------------------- */

static VALUE opt_str(const char *s, size_t len)
{
    return s ? rb_utf8_str_new(s, (long)len) : Qnil;
}

static VALUE run_id(VALUE self) { return LL2NUM(aj_run_id(run_get(self)->run)); }
static VALUE run_status(VALUE self) { return INT2NUM(aj_run_status(run_get(self)->run)); }
static VALUE run_attempts(VALUE self) { return INT2NUM(aj_run_attempts(run_get(self)->run)); }

static VALUE run_key(VALUE self)
{
    const char *k = aj_run_key(run_get(self)->run);
    return k ? rb_utf8_str_new_cstr(k) : Qnil;
}

static VALUE run_recovery_point(VALUE self)
{
    const char *p = aj_run_recovery_point(run_get(self)->run);
    return p ? rb_utf8_str_new_cstr(p) : Qnil;
}

static VALUE run_attributes(VALUE self)
{
    size_t len = 0;
    const char *d = aj_run_attributes(run_get(self)->run, &len);
    return opt_str(d, len);
}

static VALUE run_error(VALUE self)
{
    size_t len = 0;
    const char *d = aj_run_error(run_get(self)->run, &len);
    return opt_str(d, len);
}

/* run.close: free the run (a locked run stays locked until the lock timeout). */
static VALUE run_close(VALUE self)
{
    rb_aj_run *r = rb_check_typeddata(self, &run_type);
    if (r->in_step)
        rb_raise(rb_aj_const("Misuse"), "Run#close called from inside a step");
    run_close_data(r);
    r->store_obj = r->workflow = r->args_equal = Qnil;
    return Qnil;
}

static VALUE run_closed_p(VALUE self)
{
    return ((rb_aj_run *)rb_check_typeddata(self, &run_type))->run ? Qfalse : Qtrue;
}

void rb_aj_init_run(void)
{
    rb_aj_cRun = rb_define_class_under(rb_aj_mNative, "Run", rb_cObject);
    rb_undef_alloc_func(rb_aj_cRun);
    rb_define_const(rb_aj_cRun, "READY", INT2NUM(AJ_RUN_READY));
    rb_define_const(rb_aj_cRun, "AWAITING", INT2NUM(AJ_RUN_AWAITING));
    rb_define_const(rb_aj_cRun, "SUCCEEDED", INT2NUM(AJ_RUN_SUCCEEDED));
    rb_define_const(rb_aj_cRun, "FAILED", INT2NUM(AJ_RUN_FAILED));
    rb_define_const(rb_aj_cRun, "FINISHED_FAILED", INT2NUM(AJ_RUN_FINISHED_FAILED));
    rb_define_const(rb_aj_cRun, "DEAD", INT2NUM(AJ_RUN_DEAD));
    rb_define_const(rb_aj_cRun, "NEW", INT2NUM(AJ_RUN_NEW));
    rb_define_singleton_method(rb_aj_cRun, "new", run_s_new, 3);
    rb_define_method(rb_aj_cRun, "execute", run_execute, 0);
    rb_define_method(rb_aj_cRun, "stage", run_stage, 3);
    rb_define_method(rb_aj_cRun, "await_job", run_await, 3);
    rb_define_method(rb_aj_cRun, "set_continuation", run_set_continuation, 3);
    rb_define_method(rb_aj_cRun, "finish", run_finish, 0);
    rb_define_method(rb_aj_cRun, "release", run_release, 0);
    rb_define_method(rb_aj_cRun, "goto", run_goto, 1);
    rb_define_method(rb_aj_cRun, "error=", run_set_error, 1);
    rb_define_method(rb_aj_cRun, "attributes=", run_set_attributes, 1);
    rb_define_method(rb_aj_cRun, "id", run_id, 0);
    rb_define_method(rb_aj_cRun, "status", run_status, 0);
    rb_define_method(rb_aj_cRun, "attempts", run_attempts, 0);
    rb_define_method(rb_aj_cRun, "key", run_key, 0);
    rb_define_method(rb_aj_cRun, "recovery_point", run_recovery_point, 0);
    rb_define_method(rb_aj_cRun, "attributes", run_attributes, 0);
    rb_define_method(rb_aj_cRun, "error", run_error, 0);
    rb_define_method(rb_aj_cRun, "close", run_close, 0);
    rb_define_method(rb_aj_cRun, "closed?", run_closed_p, 0);
}
