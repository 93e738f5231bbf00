/* The Run type (aj_run), and acquire, the module function that makes one. */
#include "py_aj.h"
#include <stdio.h>
#include <string.h>

static void
run_release(RunObject *self)
{
    if (self->run != NULL) {
        aj_run_free(self->run);
        self->run = NULL;
        self->store->runs--;
    }
}

static void
run_dealloc(RunObject *self)
{
    run_release(self);
    Py_CLEAR(self->store);
    Py_CLEAR(self->workflow);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static char *acquire_kwlist[] = {"store", "workflow", "key", "job_name", "args", "attributes",
                                 NULL};

PyObject *
py_aj_acquire(PyObject *mod, PyObject *args, PyObject *kwargs)
{
    PyObject *store_obj, *wf_obj, *key_obj, *name_obj, *args_obj = Py_None, *attrs_obj = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O!O!OO|OO", acquire_kwlist,
                                     &py_aj_StoreType, &store_obj, &py_aj_WorkflowType, &wf_obj,
                                     &key_obj, &name_obj, &args_obj, &attrs_obj))
        return NULL;
    const char *key = py_aj_text(key_obj, "the idempotency key", NULL, 0);
    const char *job_name = key ? py_aj_text(name_obj, "the job name", NULL, 0) : NULL;
    if (job_name == NULL)
        return NULL;
    StoreObject *store = (StoreObject *)store_obj;
    WorkflowObject *wf = (WorkflowObject *)wf_obj;
    if (wf->wf == NULL) {
        PyErr_SetString(PyExc_TypeError, "the Workflow is not initialised");
        return NULL;
    }
    aj_run_params p;
    memset(&p, 0, sizeof p);
    Py_ssize_t alen = 0, tlen = 0;
    if (py_aj_doc_arg(args_obj, "the arguments document", &p.args, &alen) < 0 ||
        py_aj_doc_arg(attrs_obj, "the attributes document", &p.attributes, &tlen) < 0)
        return NULL;
    p.args_len = (size_t)alen;
    p.attributes_len = (size_t)tlen;
    p.key = key;
    p.job_name = job_name;
    RunObject *self = PyObject_New(RunObject, &py_aj_RunType);
    if (self == NULL)
        return NULL;
    self->run = NULL;
    self->stepping = 0;
    Py_INCREF(store);
    self->store = store;
    Py_INCREF(wf);
    self->workflow = wf;
    if (py_aj_store_enter(store) < 0) {
        Py_DECREF(self);
        return NULL;
    }
    aj_run *run = NULL;
    int rc;
    /* args_obj / attrs_obj stay alive (borrowed from the caller's frame). */
    Py_BEGIN_ALLOW_THREADS
    rc = aj_run_acquire(&run, store->store, wf->wf, &p);
    Py_END_ALLOW_THREADS
    py_aj_store_leave(store);
    if (rc != AJ_OK) {
        Py_DECREF(self);
        return py_aj_raise_last(rc);
    }
    self->run = run;
    store->runs++;
    return (PyObject *)self;
}

static int
run_check(RunObject *self)
{
    if (self->run == NULL) {
        py_aj_raise(AJ_EMISUSE, "the run is closed");
        return -1;
    }
    return 0;
}

/* Refuse what would free or re-enter the run while the core is inside one of its
 * steps (the step callback calling back into its own run). */
static int
run_check_idle(RunObject *self, const char *what)
{
    if (run_check(self) < 0)
        return -1;
    if (self->stepping) {
        py_aj_raisef(AJ_EMISUSE, "Run.%s() inside a step of the same run: the core is still "
                     "executing that step; call it after step() has returned", what);
        return -1;
    }
    return 0;
}

/* Context of one aj_run_step call: the Python step callable and the exception it
 * raised (kept to be re-raised unchanged after the core has rolled back). */
typedef struct {
    PyObject *callable;
    PyObject *exc_type, *exc_value, *exc_tb;
} step_ctx;

static int
step_trampoline(aj_run *run, const char *step, void *vctx)
{
    (void)run;
    step_ctx *ctx = vctx;
    int rc = 0;
    PyGILState_STATE g = PyGILState_Ensure();
    PyObject *res = PyObject_CallFunction(ctx->callable, "s", step);
    if (res == NULL) {
        Py_CLEAR(ctx->exc_type);
        Py_CLEAR(ctx->exc_value);
        Py_CLEAR(ctx->exc_tb);
        PyErr_Fetch(&ctx->exc_type, &ctx->exc_value, &ctx->exc_tb);
        rc = 1;
    } else {
        Py_DECREF(res);
    }
    PyGILState_Release(g);
    return rc;
}

static PyObject *
run_step_common(RunObject *self, PyObject *callable, int execute)
{
    if (run_check_idle(self, execute ? "execute" : "step") < 0)
        return NULL;
    if (!PyCallable_Check(callable)) {
        PyErr_SetString(PyExc_TypeError, "step() expects a callable(step_name)");
        return NULL;
    }
    if (py_aj_store_enter(self->store) < 0)
        return NULL;
    step_ctx ctx = {callable, NULL, NULL, NULL};
    int rc;
    Py_INCREF(self);
    self->stepping = 1;
    Py_BEGIN_ALLOW_THREADS
    rc = execute ? aj_run_execute(self->run, step_trampoline, &ctx)
                 : aj_run_step(self->run, step_trampoline, &ctx);
    Py_END_ALLOW_THREADS
    self->stepping = 0;
    py_aj_store_leave(self->store);
    Py_DECREF(self);
    if (ctx.exc_type != NULL) {
        if (rc == AJ_OK) {
            /* The core ignored the failure: should not happen; do not lose it. */
            Py_XDECREF(ctx.exc_type);
            Py_XDECREF(ctx.exc_value);
            Py_XDECREF(ctx.exc_tb);
        } else {
            PyErr_Restore(ctx.exc_type, ctx.exc_value, ctx.exc_tb);
            return NULL;
        }
    }
    if (rc != AJ_OK)
        return py_aj_raise_last(rc);
    return PyLong_FromLong(aj_run_status(self->run));
}

static PyObject *
run_step(RunObject *self, PyObject *callable)
{
    return run_step_common(self, callable, 0);
}

static PyObject *
run_execute(RunObject *self, PyObject *callable)
{
    return run_step_common(self, callable, 1);
}

static PyObject *
run_fail(RunObject *self, PyObject *unused)
{
    if (run_check_idle(self, "fail") < 0 || py_aj_store_enter(self->store) < 0)
        return NULL;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = aj_run_fail(self->run);
    Py_END_ALLOW_THREADS
    py_aj_store_leave(self->store);
    if (rc != AJ_OK)
        return py_aj_raise_last(rc);
    Py_RETURN_NONE;
}

/* (adapter, job_name, payload) of a staged job, each a str without NUL bytes. */
static int
staged_job_args(PyObject *args, const char *fname, const char **adapter, const char **job_name,
                const char **payload, Py_ssize_t *plen)
{
    PyObject *a, *j, *p;
    char fmt[32];
    snprintf(fmt, sizeof fmt, "OOO:%s", fname);
    if (!PyArg_ParseTuple(args, fmt, &a, &j, &p))
        return -1;
    *adapter = py_aj_text(a, "the adapter", NULL, 0);
    *job_name = *adapter ? py_aj_text(j, "the job name", NULL, 0) : NULL;
    *payload = *job_name ? py_aj_text(p, "the payload", plen, 0) : NULL;
    return *payload ? 0 : -1;
}

typedef int (*stage_fn)(aj_run *, const char *, const char *, const char *, size_t, int64_t *);

static PyObject *
run_stage_common(RunObject *self, PyObject *args, stage_fn fn, const char *fname)
{
    const char *adapter, *job_name, *payload;
    Py_ssize_t plen;
    if (staged_job_args(args, fname, &adapter, &job_name, &payload, &plen) < 0)
        return NULL;
    if (run_check(self) < 0 || py_aj_store_enter(self->store) < 0)
        return NULL;
    int64_t id = 0;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = fn(self->run, adapter, job_name, payload, (size_t)plen, &id);
    Py_END_ALLOW_THREADS
    py_aj_store_leave(self->store);
    if (rc != AJ_OK)
        return py_aj_raise_last(rc);
    return PyLong_FromLongLong(id);
}

static PyObject *
run_stage(RunObject *self, PyObject *args)
{
    return run_stage_common(self, args, aj_run_stage, "stage");
}

static PyObject *
run_await_job(RunObject *self, PyObject *args)
{
    return run_stage_common(self, args, aj_run_await, "await_job");
}

static PyObject *
run_set_continuation(RunObject *self, PyObject *args)
{
    const char *adapter, *job_name, *payload;
    Py_ssize_t plen;
    if (staged_job_args(args, "set_continuation", &adapter, &job_name, &payload, &plen) < 0)
        return NULL;
    if (run_check(self) < 0)
        return NULL;
    int rc = aj_run_set_continuation(self->run, adapter, job_name, payload, (size_t)plen);
    if (rc != AJ_OK)
        return py_aj_raise_last(rc);
    Py_RETURN_NONE;
}

static PyObject *
run_finish(RunObject *self, PyObject *unused)
{
    if (run_check(self) < 0)
        return NULL;
    int rc = aj_run_finish(self->run);
    if (rc != AJ_OK)
        return py_aj_raise_last(rc);
    Py_RETURN_NONE;
}

static PyObject *
run_goto(RunObject *self, PyObject *arg)
{
    const char *name = py_aj_text(arg, "the step name of goto", NULL, 0);
    if (name == NULL || run_check(self) < 0)
        return NULL;
    int rc = aj_run_goto(self->run, name);
    if (rc != AJ_OK)
        return py_aj_raise_last(rc);
    Py_RETURN_NONE;
}

typedef int (*doc_fn)(aj_run *, const char *, size_t);

static PyObject *
run_doc_common(RunObject *self, PyObject *arg, doc_fn fn, const char *what)
{
    const char *s;
    Py_ssize_t len;
    if (arg == Py_None) {
        PyErr_Format(PyExc_TypeError, "%s must be str or bytes", what);
        return NULL;
    }
    if (py_aj_doc_arg(arg, what, &s, &len) < 0)
        return NULL;
    if (run_check(self) < 0)
        return NULL;
    int rc = fn(self->run, s, (size_t)len);
    if (rc != AJ_OK)
        return py_aj_raise_last(rc);
    Py_RETURN_NONE;
}

static PyObject *
run_set_error(RunObject *self, PyObject *arg)
{
    return run_doc_common(self, arg, aj_run_set_error, "the error document");
}

static PyObject *
run_set_attributes(RunObject *self, PyObject *arg)
{
    return run_doc_common(self, arg, aj_run_set_attributes, "the attributes document");
}

static PyObject *
run_close(RunObject *self, PyObject *unused)
{
    if (self->run != NULL && run_check_idle(self, "close") < 0)
        return NULL;
    run_release(self);
    Py_RETURN_NONE;
}

static PyObject *
run_get_id(RunObject *self, void *c)
{
    if (run_check(self) < 0)
        return NULL;
    return PyLong_FromLongLong(aj_run_id(self->run));
}

static PyObject *
run_get_status(RunObject *self, void *c)
{
    if (run_check(self) < 0)
        return NULL;
    return PyLong_FromLong(aj_run_status(self->run));
}

static PyObject *
run_get_key(RunObject *self, void *c)
{
    if (run_check(self) < 0)
        return NULL;
    const char *k = aj_run_key(self->run);
    return py_aj_opt_text(k, k ? strlen(k) : 0);
}

static PyObject *
run_get_recovery_point(RunObject *self, void *c)
{
    if (run_check(self) < 0)
        return NULL;
    const char *k = aj_run_recovery_point(self->run);
    return py_aj_opt_text(k, k ? strlen(k) : 0);
}

static PyObject *
run_get_attributes(RunObject *self, void *c)
{
    if (run_check(self) < 0)
        return NULL;
    size_t len = 0;
    const char *s = aj_run_attributes(self->run, &len);
    return py_aj_opt_text(s, len);
}

static PyObject *
run_get_error(RunObject *self, void *c)
{
    if (run_check(self) < 0)
        return NULL;
    size_t len = 0;
    const char *s = aj_run_error(self->run, &len);
    return py_aj_opt_text(s, len);
}

static PyObject *
run_get_store(RunObject *self, void *c)
{
    Py_INCREF(self->store);
    return (PyObject *)self->store;
}

static PyMethodDef run_methods[] = {
    {"step", (PyCFunction)run_step, METH_O,
     "Run the step at the recovery point in one transaction; returns the new status."},
    {"execute", (PyCFunction)run_execute, METH_O,
     "Owned stores: step until the run is no longer READY; returns the status."},
    {"fail", (PyCFunction)run_fail, METH_NOARGS,
     "Borrowed stores: record the error and release the lock (inside a transaction)."},
    {"stage", (PyCFunction)run_stage, METH_VARARGS,
     "stage(adapter, job_name, payload) -> staged id, inside a step."},
    {"await_job", (PyCFunction)run_await_job, METH_VARARGS,
     "await_job(adapter, job_name, payload) -> staged id of an awaited job."},
    {"set_continuation", (PyCFunction)run_set_continuation, METH_VARARGS,
     "set_continuation(adapter, job_name, payload): the job that resumes this run."},
    {"finish", (PyCFunction)run_finish, METH_NOARGS, "Finish the run when this step commits."},
    {"goto", (PyCFunction)run_goto, METH_O, "Continue at the named step."},
    {"set_error", (PyCFunction)run_set_error, METH_O, "The error document to record."},
    {"set_attributes", (PyCFunction)run_set_attributes, METH_O,
     "Replace the attribute document (commits with the step)."},
    {"close", (PyCFunction)run_close, METH_NOARGS, "Free the run (writes nothing)."},
    {NULL}
};

static PyGetSetDef run_getset[] = {
    {"id", (getter)run_get_id, NULL, "row id in acidic_job_keys", NULL},
    {"status", (getter)run_get_status, NULL, "an AJ_RUN_* status", NULL},
    {"key", (getter)run_get_key, NULL, "the idempotency key", NULL},
    {"recovery_point", (getter)run_get_recovery_point, NULL, "the step to run next", NULL},
    {"attributes", (getter)run_get_attributes, NULL, "the attribute document or None", NULL},
    {"error", (getter)run_get_error, NULL, "the recorded error document or None", NULL},
    {"store", (getter)run_get_store, NULL, "the Store", NULL},
    {NULL}
};

PyTypeObject py_aj_RunType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "acidic_job._native.Run",
    .tp_basicsize = sizeof(RunObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "One execution of a workflow under an idempotency key (aj_run).",
    .tp_dealloc = (destructor)run_dealloc,
    .tp_methods = run_methods,
    .tp_getset = run_getset,
};
