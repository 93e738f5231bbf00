/* AcidicJob::Native::Workflow: the ordered, uniquely named steps of a job (no database).
 * Built once per job class and step list, and shared by its runs. */
#include "rb_aj.h"

#include <string.h>

VALUE rb_aj_cWorkflow;

static void workflow_free(void *p) { aj_workflow_free(p); }

static const rb_data_type_t workflow_type = {
    "AcidicJob::Native::Workflow",
    {NULL, workflow_free, NULL},
    NULL, NULL, RUBY_TYPED_FREE_IMMEDIATELY};

const aj_workflow *rb_aj_workflow_get(VALUE obj)
{
    const aj_workflow *wf = rb_check_typeddata(obj, &workflow_type);
    if (!wf)
        rb_raise(rb_eTypeError, "an uninitialized AcidicJob::Native::Workflow");
    return wf;
}

static VALUE workflow_alloc(VALUE klass)
{
    return TypedData_Wrap_Struct(klass, &workflow_type, NULL);
}

static const char *name_of(VALUE v, const char *what)
{
    if (!RB_TYPE_P(v, T_STRING))
        rb_raise(rb_eTypeError, "%s must be a String, not %" PRIsVALUE, what, rb_obj_class(v));
    if (memchr(RSTRING_PTR(v), 0, (size_t)RSTRING_LEN(v)))
        rb_raise(rb_aj_const("InvalidArgument"), "%s must not contain a NUL byte", what);
    return RSTRING_PTR(v);
}

/* Workflow.new([[name, [awaited job name, ...]], ...]) */
static VALUE workflow_initialize(VALUE self, VALUE steps)
{
    Check_Type(steps, T_ARRAY);
    if (DATA_PTR(self))
        rb_raise(rb_aj_const("Misuse"), "a Workflow is initialized once");
    aj_workflow *wf = NULL;
    int rc = aj_workflow_new(&wf);
    if (rc)
        rb_aj_raise(rc);
    DATA_PTR(self) = wf; /* freed with self if a step below is refused */
    for (long i = 0; i < RARRAY_LEN(steps); i++) {
        VALUE step = rb_ary_entry(steps, i);
        if (!RB_TYPE_P(step, T_ARRAY) || RARRAY_LEN(step) < 1)
            rb_raise(rb_eTypeError, "a step is [name, [awaited job names]]");
        const char *name = name_of(rb_ary_entry(step, 0), "a step name");
        VALUE awaits = RARRAY_LEN(step) > 1 ? rb_ary_entry(step, 1) : Qnil;
        long na = RB_TYPE_P(awaits, T_ARRAY) ? RARRAY_LEN(awaits) : 0;
        const char **names = ALLOCA_N(const char *, na > 0 ? na : 1);
        for (long j = 0; j < na; j++)
            names[j] = name_of(rb_ary_entry(awaits, j), "an awaited job name");
        if ((rc = aj_workflow_add_step(wf, name, names, (size_t)na)))
            rb_aj_raise(rc);
    }
    RB_GC_GUARD(steps);
    return self;
}

/* workflow.steps -> [name, ...] */
static VALUE workflow_steps(VALUE self)
{
    const aj_workflow *wf = rb_aj_workflow_get(self);
    size_t n = aj_workflow_count(wf);
    VALUE out = rb_ary_new_capa((long)n);
    for (size_t i = 0; i < n; i++)
        rb_ary_push(out, rb_utf8_str_new_cstr(aj_workflow_step(wf, i)));
    return out;
}

void rb_aj_init_workflow(void)
{
    rb_aj_cWorkflow = rb_define_class_under(rb_aj_mNative, "Workflow", rb_cObject);
    rb_define_alloc_func(rb_aj_cWorkflow, workflow_alloc);
    rb_define_method(rb_aj_cWorkflow, "initialize", workflow_initialize, 1);
    rb_define_method(rb_aj_cWorkflow, "steps", workflow_steps, 0);
}
