/* AcidicJob::Native::Run: one run of a workflow under an idempotency key. */
#include "rb_aj.h"

#include <stdlib.h>
#include <string.h>

VALUE rb_aj_cRun;

typedef struct rb_aj_run {
    aj_run *run;
    aj_workflow *wf;   /* built from the steps at acquire; outlives the run */
    rb_aj_store *s;    /* counted in s->nruns while the run is open */
    VALUE store_obj;
    VALUE block;       /* the step block during Run#step */
    int in_step;
    rb_aj_capture cap; /* what the step block raised */
} rb_aj_run;

static void run_mark(void *p)
{
    rb_aj_run *r = p;
    rb_gc_mark(r->store_obj);
    rb_gc_mark(r->block);
    rb_gc_mark(r->cap.exc);
}

static void run_close_data(rb_aj_run *r)
{
    if (r->run) {
        aj_run_free(r->run);
        r->run = NULL;
    }
    if (r->wf) {
        aj_workflow_free(r->wf);
        r->wf = NULL;
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
        rb_raise(rb_const_get(rb_aj_mAcidicJob, rb_intern("Misuse")),
                 "the acidic_job run is closed");
    return r;
}

/* A string argument as (pointer, length); nil gives (NULL, 0). */
static const char *doc_ptr(VALUE v, size_t *len)
{
    if (NIL_P(v)) {
        *len = 0;
        return NULL;
    }
    StringValue(v);
    *len = (size_t)RSTRING_LEN(v);
    return RSTRING_PTR(v);
}

/* Build the core workflow from [[name, [awaited, ...]], ...]. */
static aj_workflow *workflow_from(VALUE steps)
{
    Check_Type(steps, T_ARRAY);
    aj_workflow *wf = NULL;
    int rc = aj_workflow_new(&wf);
    if (rc)
        rb_aj_raise(rc);
    for (long i = 0; i < RARRAY_LEN(steps); i++) {
        VALUE step = rb_ary_entry(steps, i);
        if (!RB_TYPE_P(step, T_ARRAY) || RARRAY_LEN(step) < 1 ||
            !RB_TYPE_P(rb_ary_entry(step, 0), T_STRING)) {
            aj_workflow_free(wf);
            rb_raise(rb_eTypeError, "a step is [name, [awaited job names]]");
        }
        VALUE name = rb_ary_entry(step, 0);
        VALUE awaits = RARRAY_LEN(step) > 1 ? rb_ary_entry(step, 1) : Qnil;
        long na = RB_TYPE_P(awaits, T_ARRAY) ? RARRAY_LEN(awaits) : 0;
        const char **names = ALLOCA_N(const char *, na > 0 ? na : 1);
        for (long j = 0; j < na; j++) {
            VALUE a = rb_ary_entry(awaits, j);
            if (!RB_TYPE_P(a, T_STRING) || memchr(RSTRING_PTR(a), 0, RSTRING_LEN(a))) {
                aj_workflow_free(wf);
                rb_raise(rb_eTypeError, "awaited job names must be strings");
            }
            names[j] = RSTRING_PTR(a);
        }
        if (memchr(RSTRING_PTR(name), 0, RSTRING_LEN(name))) {
            aj_workflow_free(wf);
            rb_raise(rb_const_get(rb_aj_mAcidicJob, rb_intern("InvalidArgument")),
                     "a step name must not contain a NUL byte");
        }
        rc = aj_workflow_add_step(wf, RSTRING_PTR(name), names, (size_t)na);
        if (rc) {
            aj_workflow_free(wf);
            rb_aj_raise(rc);
        }
    }
    return wf;
}

typedef struct acquire_call {
    aj_run **out;
    aj_store *store;
    aj_workflow *wf;
    aj_run_params *params;
    int rc;
} acquire_call;

static void *acquire_nogvl(void *arg)
{
    acquire_call *c = arg;
    c->rc = aj_run_acquire(c->out, c->store, c->wf, c->params);
    return NULL;
}

/* Run.acquire(store, steps, key, job_name, args_doc, attributes_doc) */
static VALUE run_s_acquire(VALUE klass, VALUE store_obj, VALUE steps, VALUE key,
                           VALUE job_name, VALUE args, VALUE attrs)
{
    rb_aj_store *s = rb_aj_store_get(store_obj);
    const char *ckey = StringValueCStr(key);
    const char *cname = StringValueCStr(job_name);
    if (!NIL_P(args))
        args = rb_str_new_frozen(StringValue(args));
    if (!NIL_P(attrs))
        attrs = rb_str_new_frozen(StringValue(attrs));
    key = rb_str_new_frozen(key);
    job_name = rb_str_new_frozen(job_name);
    ckey = RSTRING_PTR(key);
    cname = RSTRING_PTR(job_name);

    rb_aj_run *r = calloc(1, sizeof *r);
    if (!r)
        rb_raise(rb_eNoMemError, "acidic_job: out of memory");
    r->store_obj = r->block = r->cap.exc = Qnil;
    VALUE obj = TypedData_Wrap_Struct(klass, &run_type, r);
    r->wf = workflow_from(steps);

    aj_run_params p = {0};
    p.key = ckey;
    p.job_name = cname;
    p.args = doc_ptr(args, &p.args_len);
    p.attributes = doc_ptr(attrs, &p.attributes_len);
    aj_run *run = NULL;
    acquire_call c = {&run, s->store, r->wf, &p, 0};
    rb_aj_without_gvl(s->release_gvl, acquire_nogvl, &c);
    RB_GC_GUARD(key);
    RB_GC_GUARD(job_name);
    RB_GC_GUARD(args);
    RB_GC_GUARD(attrs);
    if (c.rc)
        rb_aj_raise(c.rc); /* the workflow is freed with `obj` */
    r->run = run;
    r->s = s;
    s->nruns++;
    r->store_obj = store_obj;
    return obj;
}

/* --- steps ------------------------------------------------------------------- */

typedef struct step_call {
    rb_aj_run *r;
    const char *step;
    int rc;
    aj_step_fn fn;
} step_call;

static VALUE step_invoke(VALUE arg)
{
    step_call *c = (step_call *)arg;
    return rb_funcall(c->r->block, rb_intern("call"), 1, rb_utf8_str_new_cstr(c->step));
}

static void *step_with_gvl(void *arg)
{
    step_call *c = arg;
    rb_aj_protect(&c->r->cap, step_invoke, (VALUE)c);
    c->rc = c->r->cap.state ? 1 : 0;
    return NULL;
}

static int step_cb(aj_run *run, const char *step, void *ctx)
{
    step_call c = {ctx, step, 1, NULL};
    rb_aj_with_gvl(step_with_gvl, &c);
    return c.rc;
}

static void *step_nogvl(void *arg)
{
    step_call *c = arg;
    c->rc = aj_run_step(c->r->run, step_cb, c->r);
    return NULL;
}

/* run.step { |step_name| ... } -> status: run the step at the recovery point; the block
 * makes the step's writes. What the block raises is re-raised here, after the core has
 * returned (AJ_ESTEP: the step failed and nothing of it is kept on an owned store). */
static VALUE run_step(VALUE self)
{
    rb_aj_run *r = run_get(self);
    if (r->in_step)
        rb_raise(rb_const_get(rb_aj_mAcidicJob, rb_intern("Misuse")),
                 "Run#step called from inside a step");
    r->block = rb_block_proc();
    r->in_step = 1;
    r->s->last_enqueue_error = Qnil;
    step_call c = {r, NULL, 0, NULL};
    rb_aj_without_gvl(r->s->release_gvl, step_nogvl, &c);
    r->in_step = 0;
    r->block = Qnil;
    if (r->cap.state)
        rb_aj_reraise(&r->cap);
    if (c.rc)
        rb_aj_raise(c.rc);
    return INT2NUM(aj_run_status(r->run));
}

/* Calls without their own callback: one function, an opcode. */
enum { R_FAIL, R_STAGE, R_AWAIT, R_CONT, R_FINISH, R_GOTO, R_ERROR, R_ATTRS };

typedef struct run_call {
    rb_aj_run *r;
    int op;
    const char *a, *b, *doc;
    size_t len;
    int64_t id;
    int rc;
} run_call;

static void *run_call_nogvl(void *arg)
{
    run_call *c = arg;
    aj_run *run = c->r->run;
    switch (c->op) {
    case R_FAIL:
        c->rc = aj_run_fail(run);
        break;
    case R_STAGE:
        c->rc = aj_run_stage(run, c->a, c->b, c->doc, c->len, &c->id);
        break;
    case R_AWAIT:
        c->rc = aj_run_await(run, c->a, c->b, c->doc, c->len, &c->id);
        break;
    case R_CONT:
        c->rc = aj_run_set_continuation(run, c->a, c->b, c->doc, c->len);
        break;
    case R_FINISH:
        c->rc = aj_run_finish(run);
        break;
    case R_GOTO:
        c->rc = aj_run_goto(run, c->a);
        break;
    case R_ERROR:
        c->rc = aj_run_set_error(run, c->doc, c->len);
        break;
    case R_ATTRS:
        c->rc = aj_run_set_attributes(run, c->doc, c->len);
        break;
    }
    return NULL;
}

static run_call call_run(VALUE self, int op, VALUE a, VALUE b, VALUE doc, int io)
{
    rb_aj_run *r = run_get(self);
    run_call c = {r, op, NULL, NULL, NULL, 0, 0, 0};
    if (!NIL_P(a))
        c.a = StringValueCStr(a);
    if (!NIL_P(b))
        c.b = StringValueCStr(b);
    c.doc = doc_ptr(doc, &c.len);
    /* Database I/O happens without the GVL; the strings are held by this frame. */
    rb_aj_without_gvl(io && r->s->release_gvl, run_call_nogvl, &c);
    RB_GC_GUARD(a);
    RB_GC_GUARD(b);
    RB_GC_GUARD(doc);
    if (c.rc)
        rb_aj_raise(c.rc);
    return c;
}

static VALUE frozen_str(VALUE v) { return NIL_P(v) ? v : rb_str_new_frozen(StringValue(v)); }

/* run.fail: borrowed stores, after the failed step was rolled back; in a new transaction. */
static VALUE run_fail(VALUE self)
{
    call_run(self, R_FAIL, Qnil, Qnil, Qnil, 1);
    return self;
}

/* run.stage(adapter, job_name, payload) -> staged row id (inside a step). */
static VALUE run_stage(VALUE self, VALUE adapter, VALUE job_name, VALUE payload)
{
    run_call c = call_run(self, R_STAGE, frozen_str(adapter), frozen_str(job_name),
                          frozen_str(payload), 1);
    return LL2NUM(c.id);
}

/* run.await_job(adapter, job_name, payload) -> staged row id (inside an awaits step). */
static VALUE run_await(VALUE self, VALUE adapter, VALUE job_name, VALUE payload)
{
    run_call c = call_run(self, R_AWAIT, frozen_str(adapter), frozen_str(job_name),
                          frozen_str(payload), 1);
    return LL2NUM(c.id);
}

/* run.set_continuation(adapter, job_name, payload): the job that resumes this run. */
static VALUE run_set_continuation(VALUE self, VALUE adapter, VALUE job_name, VALUE payload)
{
    call_run(self, R_CONT, frozen_str(adapter), frozen_str(job_name), frozen_str(payload), 0);
    return self;
}

static VALUE run_finish(VALUE self)
{
    call_run(self, R_FINISH, Qnil, Qnil, Qnil, 0);
    return self;
}

static VALUE run_goto(VALUE self, VALUE step)
{
    call_run(self, R_GOTO, frozen_str(step), Qnil, Qnil, 0);
    return self;
}

static VALUE run_set_error(VALUE self, VALUE doc)
{
    call_run(self, R_ERROR, Qnil, Qnil, frozen_str(doc), 0);
    return doc;
}

static VALUE run_set_attributes(VALUE self, VALUE doc)
{
    call_run(self, R_ATTRS, Qnil, Qnil, frozen_str(doc), 0);
    return doc;
}

/* --- inspection -------------------------------------------------------------- */

static VALUE opt_str(const char *s, size_t len)
{
    return s ? rb_utf8_str_new(s, (long)len) : Qnil;
}

static VALUE run_id(VALUE self) { return LL2NUM(aj_run_id(run_get(self)->run)); }
static VALUE run_status(VALUE self) { return INT2NUM(aj_run_status(run_get(self)->run)); }

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
        rb_raise(rb_const_get(rb_aj_mAcidicJob, rb_intern("Misuse")),
                 "Run#close called from inside a step");
    run_close_data(r);
    r->store_obj = Qnil;
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
    rb_define_singleton_method(rb_aj_cRun, "acquire", run_s_acquire, 6);
    rb_define_method(rb_aj_cRun, "step", run_step, 0);
    rb_define_method(rb_aj_cRun, "fail", run_fail, 0);
    rb_define_method(rb_aj_cRun, "stage", run_stage, 3);
    rb_define_method(rb_aj_cRun, "await_job", run_await, 3);
    rb_define_method(rb_aj_cRun, "set_continuation", run_set_continuation, 3);
    rb_define_method(rb_aj_cRun, "finish", run_finish, 0);
    rb_define_method(rb_aj_cRun, "goto", run_goto, 1);
    rb_define_method(rb_aj_cRun, "error=", run_set_error, 1);
    rb_define_method(rb_aj_cRun, "attributes=", run_set_attributes, 1);
    rb_define_method(rb_aj_cRun, "id", run_id, 0);
    rb_define_method(rb_aj_cRun, "status", run_status, 0);
    rb_define_method(rb_aj_cRun, "key", run_key, 0);
    rb_define_method(rb_aj_cRun, "recovery_point", run_recovery_point, 0);
    rb_define_method(rb_aj_cRun, "attributes", run_attributes, 0);
    rb_define_method(rb_aj_cRun, "error", run_error, 0);
    rb_define_method(rb_aj_cRun, "close", run_close, 0);
    rb_define_method(rb_aj_cRun, "closed?", run_closed_p, 0);
}
