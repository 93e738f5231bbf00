/* The hooks a store gives the core, each a translation between the core's C callbacks
 * and the Python layer (see py_aj.h):
 *
 *   - aj_host_tx: the core asks the borrowed connection's host for a transaction; the
 *     store's `atomically(body)` (a method of acidic_job.databases) opens it with the
 *     driver's API, calls body() (a TxBody: the core's body, run with the GIL
 *     released) and commits or rolls back;
 *   - events: each core event becomes an Event, handed to the store's Python handler
 *     when its type is in the store's mask (so a process that listens to nothing pays
 *     no GIL round trip);
 *   - error documents: a failure the core detects is recorded as the Python layer's
 *     JSON document {"class": "acidic_job.errors.X", "message": ...}.
 *
 * Whatever Python raises in a hook is caught here, kept on the store and turned into a
 * code: the call that entered the core raises after the core has returned. */
#include "py_aj.h"
#include <string.h>

/* --- the host's exception ----------------------------------------------------------- */

int
py_aj_keep_exception(StoreObject *store, int code)
{
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (value == NULL) {
        Py_XDECREF(type);
        Py_XDECREF(tb);
        return aj_error_report(code, "the host raised an exception without a value");
    }
    if (tb != NULL)
        PyException_SetTraceback(value, tb);
    Py_XDECREF(type);
    Py_XDECREF(tb);
    const char *text = NULL;
    PyObject *str = NULL;
    char buf[512];
    if (!PyObject_IsInstance(value, PyExc_Exception)) {
        /* KeyboardInterrupt, SystemExit: re-raised as they are after the core returns */
        code = AJ_ERROR;
        snprintf(buf, sizeof buf, "interrupted by %.200s", Py_TYPE(value)->tp_name);
        text = buf;
    } else {
        PyObject *base = py_aj_error_base();
        if (base != NULL && PyObject_IsInstance(value, base) == 1) {
            PyObject *c = PyObject_GetAttrString(value, "code");
            long own = c ? PyLong_AsLong(c) : 0;
            Py_XDECREF(c);
            if (own < 0)
                code = (int)own;
        }
        PyErr_Clear();
        str = PyObject_Str(value);
        text = str ? PyUnicode_AsUTF8(str) : NULL;
        if (text == NULL) {
            PyErr_Clear();
            snprintf(buf, sizeof buf, "%.200s (its message cannot be shown)",
                     Py_TYPE(value)->tp_name);
            text = buf;
        }
    }
    int rc = aj_error_report(code, text);
    Py_XDECREF(str);
    Py_XSETREF(store->host_exc, value);
    return rc;
}

PyObject *
py_aj_store_result(StoreObject *self, int rc)
{
    PyObject *host = self->host_exc;
    self->host_exc = NULL;
    if (rc == AJ_OK) {
        Py_XDECREF(host);
        return Py_None;
    }
    if (host != NULL && !PyObject_IsInstance(host, PyExc_Exception)) {
        PyErr_SetObject((PyObject *)Py_TYPE(host), host);
        Py_DECREF(host);
        return NULL;
    }
    py_aj_raise_last(rc);
    if (host == NULL)
        return NULL;
    /* The core's error, caused by what the host raised (an acidic_job error of the
     * Python layer stands for the driver's exception it was raised from). */
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    PyObject *cause = host;
    PyObject *base = py_aj_error_base();
    if (base != NULL && PyObject_IsInstance(host, base) == 1) {
        PyObject *inner = PyException_GetCause(host);
        if (inner != NULL) {
            cause = inner;
            Py_DECREF(host);
        }
    }
    if (value != NULL)
        PyException_SetCause(value, cause); /* steals cause */
    else
        Py_DECREF(cause);
    PyErr_Restore(type, value, tb);
    return NULL;
}

/* --- TxBody: the core's transaction body, callable once from Python -------------------- */

typedef struct {
    PyObject_HEAD
    aj_tx_body body;  /* NULL once called or outside its transaction */
    void *arg;
    int rc;
} TxBodyObject;

static PyObject *
tx_body_call(TxBodyObject *self, PyObject *args, PyObject *kwargs)
{
    if ((args && PyTuple_GET_SIZE(args)) || (kwargs && PyDict_GET_SIZE(kwargs))) {
        PyErr_SetString(PyExc_TypeError, "the transaction body takes no arguments");
        return NULL;
    }
    if (self->body == NULL)
        return py_aj_raise(AJ_EMISUSE, "the transaction body runs once, inside the "
                                       "transaction the core asked for");
    aj_tx_body body = self->body;
    self->body = NULL;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = body(self->arg);
    Py_END_ALLOW_THREADS
    self->rc = rc;
    return PyBool_FromLong(rc == 0);
}

PyTypeObject py_aj_TxBodyType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "acidic_job._native.TxBody",
    .tp_basicsize = sizeof(TxBodyObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "The core's work inside a host transaction: call it once; True when it "
              "succeeded (commit), False when it failed (roll back).",
    .tp_call = (ternaryfunc)tx_body_call,
};

/* The store's body object when nobody else holds it, else a new one. */
static TxBodyObject *
tx_body_for(StoreObject *store)
{
    TxBodyObject *b = (TxBodyObject *)store->body;
    if (b != NULL && Py_REFCNT(b) == 1) {
        Py_INCREF(b);
        return b;
    }
    b = PyObject_New(TxBodyObject, &py_aj_TxBodyType);
    if (b != NULL && store->body == NULL) {
        Py_INCREF(b);
        store->body = (PyObject *)b;
    }
    return b;
}

/* aj_host_tx.atomically: store->atomically(body) -> committed. */
static int
host_atomically(void *ctx, aj_tx_body body, void *arg, int *committed)
{
    StoreObject *store = ctx;
    *committed = 0;
    int rc = AJ_OK;
    PyGILState_STATE g = PyGILState_Ensure();
    TxBodyObject *b = tx_body_for(store);
    if (b == NULL) {
        rc = py_aj_keep_exception(store, AJ_ENOMEM);
        goto done;
    }
    b->body = body;
    b->arg = arg;
    b->rc = 0;
    PyObject *res = store->atomically ? PyObject_CallOneArg(store->atomically, (PyObject *)b)
                                      : NULL;
    int ran = b->body == NULL;
    b->body = NULL;
    b->arg = NULL;
    if (res == NULL) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_RuntimeError, "the store has no host transaction");
        rc = py_aj_keep_exception(store, AJ_EDATABASE);
    } else {
        int t = PyObject_IsTrue(res);
        Py_DECREF(res);
        if (t < 0)
            rc = py_aj_keep_exception(store, AJ_EDATABASE);
        else
            *committed = t && ran && b->rc == 0;
    }
    Py_DECREF(b);
done:
    PyGILState_Release(g);
    return rc;
}

const aj_host_tx py_aj_host_tx = {AJ_HOST_TX_VERSION, host_atomically, 0, 0, 0};
const aj_host_tx py_aj_host_tx_libpq_state = {AJ_HOST_TX_VERSION, host_atomically, 0, 1, 1};

/* --- events --------------------------------------------------------------------------- */

PyTypeObject *py_aj_EventType = NULL;

static PyStructSequence_Field event_fields[] = {
    {"type", "an EVENT_* constant"},
    {"run_id", "the run's row id, or 0"},
    {"key", "the run's idempotency key, or None"},
    {"job_name", "the run's job, or None"},
    {"step", "the step, or None"},
    {"status", "the run's RUN_* status after the event, or 0"},
    {"code", "STEP_FAILED: the core's error code"},
    {"message", "STEP_FAILED: the core's message"},
    {"duration_us", "STEP_COMMITTED, STEP_FAILED: microseconds since the step began"},
    {"staged_id", "STAGED, ENQUEUED: the staged job's id"},
    {"adapter", "STAGED, ENQUEUED, RECOVERED: the queue adapter"},
    {"staged_job", "STAGED, ENQUEUED, RECOVERED: the job handed to the queue"},
    {"accepted", "ENQUEUED: True when the queue took it"},
    {"count", "DRAINED: jobs delivered"},
    {"attempt", "ACQUIRED, RECOVERED: the run's attempt"},
    {"resumed", "ACQUIRED: True when the run existed before"},
    {"dead", "RECOVERED: True when the run was marked dead"},
    {"attributes", "run events: the run's attribute document at that moment, or None"},
    {NULL}
};

static PyStructSequence_Desc event_desc = {
    "acidic_job._native.Event", "One event of the core (aj_event).", event_fields, 18,
};

int
py_aj_host_init(PyObject *module)
{
    if (PyType_Ready(&py_aj_TxBodyType) < 0)
        return -1;
    py_aj_EventType = PyStructSequence_NewType(&event_desc);
    if (py_aj_EventType == NULL)
        return -1;
    Py_INCREF(py_aj_EventType);
    Py_INCREF(&py_aj_TxBodyType);
    if (PyModule_AddObject(module, "TxBody", (PyObject *)&py_aj_TxBodyType) < 0)
        return -1;
    return PyModule_AddObject(module, "Event", (PyObject *)py_aj_EventType);
}

static PyObject *
text_or_none(const char *s)
{
    if (s == NULL)
        Py_RETURN_NONE;
    return PyUnicode_DecodeUTF8(s, (Py_ssize_t)strlen(s), "replace");
}

/* The attribute document of the run the event is about, when it is the one executing. */
static PyObject *
event_attributes(StoreObject *store, const aj_event *ev)
{
    switch (ev->type) {
    case AJ_EVENT_ACQUIRED: case AJ_EVENT_SKIPPED: case AJ_EVENT_STEP_STARTED:
    case AJ_EVENT_STEP_COMMITTED: case AJ_EVENT_STEP_FAILED: case AJ_EVENT_FINISHED:
        break;
    default:
        Py_RETURN_NONE;
    }
    RunObject *run = store->current;
    if (run == NULL || run->run == NULL || aj_run_id(run->run) != ev->run_id)
        Py_RETURN_NONE;
    size_t len = 0;
    const char *doc = aj_run_attributes(run->run, &len);
    return py_aj_opt_text(doc, len);
}

void
py_aj_event_hook(void *ctx, const aj_event *ev)
{
    StoreObject *store = ctx;
    if (ev->type <= 0 || ev->type >= 32 || !(store->event_mask & (1ul << ev->type)))
        return;
    PyGILState_STATE g = PyGILState_Ensure();
    PyObject *fn = store->events;
    if (fn == NULL) {
        PyGILState_Release(g);
        return;
    }
    /* A hook must not disturb an exception already on its way out. */
    PyObject *et, *ev_, *etb;
    PyErr_Fetch(&et, &ev_, &etb);
    PyObject *e = PyStructSequence_New(py_aj_EventType);
    if (e != NULL) {
        PyObject *items[18] = {
            PyLong_FromLong(ev->type), PyLong_FromLongLong(ev->run_id), text_or_none(ev->key),
            text_or_none(ev->job_name), text_or_none(ev->step), PyLong_FromLong(ev->status),
            PyLong_FromLong(ev->code), text_or_none(ev->message),
            PyLong_FromLongLong(ev->duration_us), PyLong_FromLongLong(ev->staged_id),
            text_or_none(ev->adapter), text_or_none(ev->staged_job),
            PyBool_FromLong(ev->accepted), PyLong_FromSize_t(ev->count),
            PyLong_FromLong(ev->attempt), PyBool_FromLong(ev->resumed),
            PyBool_FromLong(ev->dead), event_attributes(store, ev),
        };
        int ok = 1;
        for (int i = 0; i < 18; i++) {
            if (items[i] == NULL) {
                ok = 0;
                Py_INCREF(Py_None);
                items[i] = Py_None;
            }
            PyStructSequence_SET_ITEM(e, i, items[i]);
        }
        if (ok) {
            Py_INCREF(fn);
            PyObject *res = PyObject_CallOneArg(fn, e);
            Py_DECREF(fn);
            if (res == NULL)
                PyErr_WriteUnraisable(fn);
            Py_XDECREF(res);
        } else {
            PyErr_WriteUnraisable((PyObject *)store);
        }
        Py_DECREF(e);
    } else {
        PyErr_WriteUnraisable((PyObject *)store);
    }
    PyErr_Restore(et, ev_, etb);
    PyGILState_Release(g);
}

/* --- error documents ----------------------------------------------------------------------- */

int
py_aj_error_hook(void *ctx, aj_run *run, int code, const char *message)
{
    (void)ctx;
    int rc = -1;
    PyGILState_STATE g = PyGILState_Ensure();
    PyObject *et, *ev, *etb;
    PyErr_Fetch(&et, &ev, &etb);
    PyObject *fn = py_aj_error_document();
    PyObject *doc = fn ? PyObject_CallFunction(fn, "is", code, message ? message : "") : NULL;
    Py_ssize_t len = 0;
    const char *s = doc && PyUnicode_Check(doc) ? PyUnicode_AsUTF8AndSize(doc, &len) : NULL;
    if (s != NULL)
        rc = aj_run_set_error(run, s, (size_t)len) == AJ_OK ? 0 : -1;
    else if (PyErr_Occurred())
        PyErr_WriteUnraisable(fn ? fn : Py_None);
    Py_XDECREF(doc);
    PyErr_Restore(et, ev, etb);
    PyGILState_Release(g);
    return rc;
}
