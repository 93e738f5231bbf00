/* The Run type (aj_run): Run(...) is aj_run_new, acquire(...) aj_run_acquire. */
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

/* Parameters of a new run, from the arguments of Run() and acquire(). The pointers
 * point into the argument objects, which the caller's frame keeps alive. */
static int
run_params(PyObject *args, PyObject *kwargs, const char *fname, StoreObject **store,
           WorkflowObject **wf, aj_run_params *p)
{
    static char *kwlist[] = {"store", "workflow", "key", "job_name", "args", "attributes",
                             "run_id", "resume", NULL};
    PyObject *key_obj, *name_obj, *args_obj = Py_None, *attrs_obj = Py_None, *resume = Py_None;
    long long run_id = 0;
    char fmt[40];
    snprintf(fmt, sizeof fmt, "O!O!OO|OO$LO:%s", fname);
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, fmt, kwlist, &py_aj_StoreType, store,
                                     &py_aj_WorkflowType, wf, &key_obj, &name_obj, &args_obj,
                                     &attrs_obj, &run_id, &resume))
        return -1;
    aj_run_params init = AJ_RUN_PARAMS_INIT;
    *p = init;
    p->key = py_aj_text(key_obj, "the idempotency key", NULL, 0);
    p->job_name = p->key ? py_aj_text(name_obj, "the job name", NULL, 0) : NULL;
    if (p->job_name == NULL)
        return -1;
    if ((*wf)->wf == NULL) {
        PyErr_SetString(PyExc_TypeError, "the Workflow is not initialised");
        return -1;
    }
    Py_ssize_t alen = 0, tlen = 0, rlen = 0;
    if (py_aj_doc_arg(args_obj, "the arguments document", &p->args, &alen) < 0 ||
        py_aj_doc_arg(attrs_obj, "the attributes document", &p->attributes, &tlen) < 0)
        return -1;
    p->args_len = (size_t)alen;
    p->attributes_len = (size_t)tlen;
    p->run_id = run_id;
    if (resume != Py_None) {
        if (!PyTuple_Check(resume) || PyTuple_GET_SIZE(resume) != 3) {
            PyErr_SetString(PyExc_TypeError, "resume must be None or a tuple "
                            "(adapter, job_name, payload)");
            return -1;
        }
        p->resume_adapter = py_aj_text(PyTuple_GET_ITEM(resume, 0), "the resume adapter",
                                       NULL, 0);
        p->resume_job_name = p->resume_adapter
            ? py_aj_text(PyTuple_GET_ITEM(resume, 1), "the resume job name", NULL, 0) : NULL;
        p->resume_payload = p->resume_job_name
            ? py_aj_text(PyTuple_GET_ITEM(resume, 2), "the resume payload", &rlen, 0) : NULL;
        if (p->resume_payload == NULL)
            return -1;
        p->resume_payload_len = (size_t)rlen;
    }
    return 0;
}

static RunObject *
run_object(StoreObject *store, WorkflowObject *wf, aj_run *run)
{
    RunObject *self = PyObject_New(RunObject, &py_aj_RunType);
    if (self == NULL) {
        aj_run_free(run);
        return NULL;
    }
    self->run = run;
    self->stepping = 0;
    Py_INCREF(store);
    self->store = store;
    Py_INCREF(wf);
    self->workflow = wf;
    store->runs++;
    return self;
}

/* Run(store, workflow, key, job_name, args=None, attributes=None, *, run_id=0,
 * resume=None): aj_run_new, no I/O. */
static PyObject *
run_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    StoreObject *store;
    WorkflowObject *wf;
    aj_run_params p;
    if (run_params(args, kwargs, "Run", &store, &wf, &p) < 0)
        return NULL;
    if (store->store == NULL)
        return py_aj_raise(AJ_EMISUSE, "the store is closed");
    aj_run *run = NULL;
    int rc = aj_run_new(&run, store->store, wf->wf, &p);
    if (rc != AJ_OK)
        return py_aj_raise_last(rc);
    return (PyObject *)run_object(store, wf, run);
}

/* acquire(...): the same, then the acquisition in a transaction of its own. */
PyObject *
py_aj_acquire(PyObject *mod, PyObject *args, PyObject *kwargs)
{
    StoreObject *store;
    WorkflowObject *wf;
    aj_run_params p;
    if (run_params(args, kwargs, "acquire", &store, &wf, &p) < 0)
        return NULL;
    if (py_aj_store_enter(store) < 0)
        return NULL;
    aj_run *run = NULL;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = aj_run_acquire(&run, store->store, wf->wf, &p);
    Py_END_ALLOW_THREADS
    py_aj_store_leave(store);
    if (py_aj_store_result(store, rc) == NULL)
        return NULL;
    return (PyObject *)run_object(store, wf, run);
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

/* Context of one aj_run_step / aj_run_execute call: the Python step callable and the
 * exception it raised (kept to be re-raised unchanged after the core has rolled back
 * and recorded it). */
typedef struct {
    RunObject *run;
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
    PyObject *name = py_aj_workflow_name(ctx->run->workflow, step);
    PyObject *res = name ? PyObject_CallOneArg(ctx->callable, name) : NULL;
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
    StoreObject *store = self->store;
    if (py_aj_store_enter(store) < 0)
        return NULL;
    step_ctx ctx = {self, callable, NULL, NULL, NULL};
    int rc;
    Py_INCREF(self);
    /* For the whole call, hooks included: a Run.close() from any callback is refused. */
    self->stepping = 1;
    RunObject *outer = store->current;
    store->current = self;
    Py_BEGIN_ALLOW_THREADS
    rc = execute ? aj_run_execute(self->run, step_trampoline, &ctx)
                 : aj_run_step(self->run, step_trampoline, &ctx);
    Py_END_ALLOW_THREADS
    store->current = outer;
    self->stepping = 0;
    py_aj_store_leave(store);
    if (ctx.exc_type != NULL && rc != AJ_OK) {
        /* The step's own exception, unchanged; the core's account of what it did with
         * the run (recorded, dead, not recorded) goes with it as a note. */
        Py_CLEAR(store->host_exc);
        PyErr_NormalizeException(&ctx.exc_type, &ctx.exc_value, &ctx.exc_tb);
        if (ctx.exc_value != NULL) {
            if (ctx.exc_tb != NULL)
                PyException_SetTraceback(ctx.exc_value, ctx.exc_tb);
            PyObject *res = PyObject_CallMethod(ctx.exc_value, "add_note", "s",
                                                aj_error_last()->message);
            /* e.g. 'step "charge" failed; the error is recorded and a retry resumes at
             * this step' */
            if (res == NULL)
                PyErr_Clear(); /* before 3.11 exceptions have no notes */
            Py_XDECREF(res);
        }
        PyErr_Restore(ctx.exc_type, ctx.exc_value, ctx.exc_tb);
        Py_DECREF(self);
        return NULL;
    }
    Py_XDECREF(ctx.exc_type);
    Py_XDECREF(ctx.exc_value);
    Py_XDECREF(ctx.exc_tb);
    PyObject *res = py_aj_store_result(store, rc);
    if (res == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    PyObject *status = PyLong_FromLong(aj_run_status(self->run));
    Py_DECREF(self);
    return status;
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

/* stage(adapter, job_name, payload, with_id=False) / await_job(...): the id when
 * asked for (the row is then inserted at once), else None (inserted with the step's
 * last round trip). */
static PyObject *
run_stage_common(RunObject *self, PyObject *args, PyObject *kwargs, int await)
{
    static char *kwlist[] = {"adapter", "job_name", "payload", "with_id", NULL};
    PyObject *a, *j, *p;
    int with_id = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, await ? "OOO|p:await_job" : "OOO|p:stage",
                                     kwlist, &a, &j, &p, &with_id))
        return NULL;
    Py_ssize_t plen;
    const char *adapter = py_aj_text(a, "the adapter", NULL, 0);
    const char *job_name = adapter ? py_aj_text(j, "the job name", NULL, 0) : NULL;
    const char *payload = job_name ? py_aj_text(p, "the payload", &plen, 0) : NULL;
    if (payload == NULL || run_check(self) < 0)
        return NULL;
    int64_t id = 0;
    int rc;
    int64_t *want = with_id ? &id : NULL;
    if (with_id || await) { /* an insert now (an await's first job inserts its batch) */
        if (py_aj_store_enter(self->store) < 0)
            return NULL;
        Py_BEGIN_ALLOW_THREADS
        rc = await ? aj_run_await(self->run, adapter, job_name, payload, (size_t)plen, want)
                   : aj_run_stage(self->run, adapter, job_name, payload, (size_t)plen, want);
        Py_END_ALLOW_THREADS
        py_aj_store_leave(self->store);
    } else { /* no I/O: the GIL stays */
        rc = aj_run_stage(self->run, adapter, job_name, payload, (size_t)plen, NULL);
    }
    if (rc != AJ_OK)
        return py_aj_raise_last(rc);
    if (!with_id)
        Py_RETURN_NONE;
    return PyLong_FromLongLong(id);
}

static PyObject *
run_stage(RunObject *self, PyObject *args, PyObject *kwargs)
{
    return run_stage_common(self, args, kwargs, 0);
}

static PyObject *
run_await_job(RunObject *self, PyObject *args, PyObject *kwargs)
{
    return run_stage_common(self, args, kwargs, 1);
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
run_get_attempts(RunObject *self, void *c)
{
    if (run_check(self) < 0)
        return NULL;
    return PyLong_FromLong(aj_run_attempts(self->run));
}

static PyObject *
run_get_store(RunObject *self, void *c)
{
    Py_INCREF(self->store);
    return (PyObject *)self->store;
}

static PyMethodDef run_methods[] = {
    {"step", (PyCFunction)run_step, METH_O,
     "Run one step in one transaction (acquiring a new run first); returns the status."},
    {"execute", (PyCFunction)run_execute, METH_O,
     "Run the run: acquire it, then step until it is no longer READY; returns the status."},
    {"stage", (PyCFunction)(void (*)(void))run_stage, METH_VARARGS | METH_KEYWORDS,
     "stage(adapter, job_name, payload, with_id=False) -> staged id or None, inside a step."},
    {"await_job", (PyCFunction)(void (*)(void))run_await_job, METH_VARARGS | METH_KEYWORDS,
     "await_job(adapter, job_name, payload, with_id=False): an awaited job of this step."},
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
    {"attempts", (getter)run_get_attempts, NULL, "attempts so far, this one included", NULL},
    {"store", (getter)run_get_store, NULL, "the Store", NULL},
    {NULL}
};

PyTypeObject py_aj_RunType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "acidic_job._native.Run",
    .tp_basicsize = sizeof(RunObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Run(store, workflow, key, job_name, args=None, attributes=None, *, run_id=0, "
              "resume=None): one execution of a workflow under an idempotency key (aj_run); "
              "resume is (adapter, job_name, payload), the job recovery enqueues.",
    .tp_new = run_new,
    .tp_dealloc = (destructor)run_dealloc,
    .tp_methods = run_methods,
    .tp_getset = run_getset,
};
