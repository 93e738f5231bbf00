/*
 * acidic_job._native: the CPython extension over the C core.
 *
 * Deliberately small: three types (Store, Workflow, Run) that own one core handle
 * each, the calls of the header one to one, and the mapping of core error codes to
 * the exception classes of acidic_job.errors (registered at import by the Python
 * layer). Everything a Python developer sees (decorators, attributes, codecs, host
 * transactions, queues) is written in Python on top of this.
 *
 * Threads: every core call that may touch the database runs with the GIL released.
 * The step and enqueue callbacks re-take it with PyGILState_Ensure. A Store, and the
 * Runs on it, may be used by one thread at a time (the core's rule); a second thread
 * entering a store that is busy in another thread gets MisuseError instead of
 * undefined behaviour. Nested use from the same thread (a step callback staging a
 * job or executing SQL on its own run) is the normal case and allowed.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <pythread.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>
#include <libpq-fe.h>

#include "acidic_job.h"

/* ------------------------------------------------------------------------ */
/* Errors                                                                    */
/* ------------------------------------------------------------------------ */

/* code (int) -> exception class, filled by acidic_job.errors via _register_errors. */
static PyObject *error_classes = NULL;

static PyObject *
error_class_for(int code)
{
    if (error_classes != NULL) {
        PyObject *key = PyLong_FromLong(code);
        if (key == NULL)
            return NULL;
        PyObject *cls = PyDict_GetItemWithError(error_classes, key);
        Py_DECREF(key);
        if (cls != NULL)
            return cls;
        if (PyErr_Occurred())
            return NULL;
        cls = PyDict_GetItemString(error_classes, "default");
        if (cls != NULL)
            return cls;
    }
    return PyExc_RuntimeError;
}

/* Raise the exception for `code` with `message`; returns NULL. */
static PyObject *
raise_code(int code, const char *message)
{
    PyObject *cls = error_class_for(code);
    if (cls == NULL)
        return NULL;
    PyObject *exc = PyObject_CallFunction(cls, "sis", message, code, aj_code_name(code));
    if (exc == NULL)
        return NULL;
    PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
    Py_DECREF(exc);
    return NULL;
}

/* Raise the core's last error for this thread (after a call returned `rc`). */
static PyObject *
raise_last(int rc)
{
    const aj_error *err = aj_error_last();
    int code = err->code != AJ_OK ? err->code : rc;
    const char *msg = err->code != AJ_OK ? err->message : aj_code_name(rc);
    return raise_code(code, msg);
}

/* ------------------------------------------------------------------------ */
/* Store                                                                     */
/* ------------------------------------------------------------------------ */

typedef struct {
    PyObject_HEAD
    aj_store *store;
    PyObject *host;          /* borrowed connection kept alive, or NULL */
    PyObject *enqueue;       /* Python callable or NULL */
    Py_ssize_t runs;         /* live Run objects on this store */
    unsigned long owner;     /* thread inside a core call on this store, 0 if none */
    int depth;               /* nesting depth of that thread */
    long pid;                /* process that opened or borrowed it */
} StoreObject;

static PyTypeObject StoreType;

/* Enter a store for a core call: MisuseError when another thread is inside it. */
static int
store_enter(StoreObject *self)
{
    if (self->store == NULL) {
        raise_code(AJ_EMISUSE, "the store is closed");
        return -1;
    }
    unsigned long me = PyThread_get_thread_ident();
    if (self->depth > 0 && self->owner != me) {
        raise_code(AJ_EMISUSE,
                   "the store is in use by another thread: a store (and its connection) "
                   "serves one thread at a time; open one per thread");
        return -1;
    }
    self->owner = me;
    self->depth++;
    return 0;
}

static void
store_leave(StoreObject *self)
{
    if (--self->depth == 0)
        self->owner = 0;
}

static int
parse_options(aj_options *opts, long long lock_timeout_ms, int busy_timeout_ms, int synchronous,
              int conflict_retries)
{
    aj_options_init(opts);
    if (lock_timeout_ms >= 0)
        opts->lock_timeout_ms = lock_timeout_ms;
    if (busy_timeout_ms >= 0)
        opts->busy_timeout_ms = busy_timeout_ms;
    if (synchronous >= 0) {
        if (synchronous > AJ_SYNC_OFF) {
            PyErr_SetString(PyExc_ValueError, "synchronous must be 0 (FULL), 1 (NORMAL) or 2 (OFF)");
            return -1;
        }
        opts->synchronous = synchronous;
    }
    if (conflict_retries >= 0)
        opts->conflict_retries = conflict_retries;
    return 0;
}

static StoreObject *
store_new_object(aj_store *store, PyObject *host)
{
    StoreObject *self = PyObject_GC_New(StoreObject, &StoreType);
    if (self == NULL) {
        aj_store_free(store);
        return NULL;
    }
    self->store = store;
    Py_XINCREF(host);
    self->host = host;
    self->enqueue = NULL;
    self->runs = 0;
    self->owner = 0;
    self->depth = 0;
    self->pid = (long)getpid();
    PyObject_GC_Track(self);
    return self;
}

static int
store_traverse(StoreObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->host);
    Py_VISIT(self->enqueue);
    return 0;
}

static int
store_clear(StoreObject *self)
{
    if (self->store != NULL)
        aj_store_set_enqueue(self->store, NULL, NULL);
    Py_CLEAR(self->enqueue);
    return 0;
}

static void
store_dealloc(StoreObject *self)
{
    PyObject_GC_UnTrack(self);
    store_clear(self);
    if (self->store != NULL) {
        aj_store_free(self->store);
        self->store = NULL;
    }
    Py_CLEAR(self->host);
    PyObject_GC_Del(self);
}

static char *open_kwlist[] = {"url", "lock_timeout_ms", "busy_timeout_ms", "synchronous",
                              "conflict_retries", NULL};

static PyObject *
native_open(PyObject *mod, PyObject *args, PyObject *kwargs)
{
    const char *url;
    Py_ssize_t url_len;
    long long lock_timeout_ms = -1;
    int busy = -1, sync = -1, retries = -1;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "s#|$Liii", open_kwlist, &url, &url_len,
                                     &lock_timeout_ms, &busy, &sync, &retries))
        return NULL;
    if ((size_t)url_len != strlen(url))
        return raise_code(AJ_EINVALID, "the URL contains a NUL byte");
    aj_options opts;
    if (parse_options(&opts, lock_timeout_ms, busy, sync, retries) < 0)
        return NULL;
    aj_store *store = NULL;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = aj_store_open(&store, url, &opts);
    Py_END_ALLOW_THREADS
    if (rc != AJ_OK)
        return raise_last(rc);
    return (PyObject *)store_new_object(store, NULL);
}

/* CPython's sqlite3.Connection begins with PyObject_HEAD followed by `sqlite3 *db`
 * (3.7 through 3.13); there is no public accessor. */
typedef struct {
    PyObject_HEAD
    sqlite3 *db;
} PySqliteConnectionHead;

static char *borrow_sqlite_kwlist[] = {"connection", "lock_timeout_ms", "busy_timeout_ms",
                                       "synchronous", "conflict_retries", NULL};

static PyObject *
native_borrow_sqlite(PyObject *mod, PyObject *args, PyObject *kwargs)
{
    PyObject *conn;
    long long lock_timeout_ms = -1;
    int busy = -1, sync = -1, retries = -1;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|$Liii", borrow_sqlite_kwlist, &conn,
                                     &lock_timeout_ms, &busy, &sync, &retries))
        return NULL;
    PyObject *sqlite3_mod = PyImport_ImportModule("sqlite3");
    if (sqlite3_mod == NULL)
        return NULL;
    PyObject *conn_type = PyObject_GetAttrString(sqlite3_mod, "Connection");
    PyObject *version = PyObject_GetAttrString(sqlite3_mod, "sqlite_version");
    Py_DECREF(sqlite3_mod);
    if (conn_type == NULL || version == NULL) {
        Py_XDECREF(conn_type);
        Py_XDECREF(version);
        return NULL;
    }
    int is_conn = PyObject_IsInstance(conn, conn_type);
    Py_DECREF(conn_type);
    if (is_conn <= 0) {
        Py_DECREF(version);
        if (is_conn == 0)
            PyErr_Format(PyExc_TypeError, "expected a sqlite3.Connection, got %.200s",
                         Py_TYPE(conn)->tp_name);
        return NULL;
    }
    const char *pyver = PyUnicode_AsUTF8(version);
    if (pyver == NULL) {
        Py_DECREF(version);
        return NULL;
    }
    if (strcmp(pyver, sqlite3_libversion()) != 0) {
        PyErr_Format(error_class_for(AJ_EMISUSE), "Python's sqlite3 module uses SQLite %s but "
                     "acidic_job was built against SQLite %s: a connection cannot be shared "
                     "between two copies of SQLite; pass the database URL instead",
                     pyver, sqlite3_libversion());
        Py_DECREF(version);
        return NULL;
    }
    Py_DECREF(version);
    sqlite3 *db = ((PySqliteConnectionHead *)conn)->db;
    if (db == NULL)
        return raise_code(AJ_EMISUSE, "the sqlite3.Connection is closed");
    aj_options opts;
    if (parse_options(&opts, lock_timeout_ms, busy, sync, retries) < 0)
        return NULL;
    aj_store *store = NULL;
    int rc = aj_store_borrow_sqlite(&store, (struct sqlite3 *)db, &opts);
    if (rc != AJ_OK)
        return raise_last(rc);
    return (PyObject *)store_new_object(store, conn);
}

static char *borrow_pg_kwlist[] = {"pgconn_ptr", "connection", "lock_timeout_ms",
                                   "busy_timeout_ms", "synchronous", "conflict_retries", NULL};

static PyObject *
native_borrow_pg(PyObject *mod, PyObject *args, PyObject *kwargs)
{
    PyObject *ptr_obj, *conn = Py_None;
    long long lock_timeout_ms = -1;
    int busy = -1, sync = -1, retries = -1;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|O$Liii", borrow_pg_kwlist, &ptr_obj, &conn,
                                     &lock_timeout_ms, &busy, &sync, &retries))
        return NULL;
    if (!PyLong_Check(ptr_obj)) {
        PyErr_Format(PyExc_TypeError, "pgconn_ptr must be an int (the PGconn address), got %.200s",
                     Py_TYPE(ptr_obj)->tp_name);
        return NULL;
    }
    void *ptr = PyLong_AsVoidPtr(ptr_obj);
    if (ptr == NULL) {
        if (!PyErr_Occurred())
            raise_code(AJ_EMISUSE, "the PostgreSQL connection is closed (null PGconn)");
        return NULL;
    }
    if (PQstatus((PGconn *)ptr) != CONNECTION_OK)
        return raise_code(AJ_EDATABASE, "the PostgreSQL connection is not open");
    aj_options opts;
    if (parse_options(&opts, lock_timeout_ms, busy, sync, retries) < 0)
        return NULL;
    aj_store *store = NULL;
    int rc = aj_store_borrow_pg(&store, (struct pg_conn *)ptr, &opts);
    if (rc != AJ_OK)
        return raise_last(rc);
    return (PyObject *)store_new_object(store, conn == Py_None ? NULL : conn);
}

static PyObject *
store_migrate(StoreObject *self, PyObject *unused)
{
    if (store_enter(self) < 0)
        return NULL;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = aj_store_migrate(self->store);
    Py_END_ALLOW_THREADS
    store_leave(self);
    if (rc != AJ_OK)
        return raise_last(rc);
    Py_RETURN_NONE;
}

static PyObject *
store_settle(StoreObject *self, PyObject *arg)
{
    int committed = PyObject_IsTrue(arg);
    if (committed < 0)
        return NULL;
    if (store_enter(self) < 0)
        return NULL;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = aj_store_settle(self->store, committed);
    Py_END_ALLOW_THREADS
    store_leave(self);
    if (rc != AJ_OK)
        return raise_last(rc);
    Py_RETURN_NONE;
}

/* The enqueue callback: call the store's Python callable with
 * (staged_id, adapter, job_name, payload). A true result means the job was pushed.
 * An exception is reported as unraisable (the Python layer logs its own) and leaves
 * the row for a later drain. */
static int
enqueue_trampoline(void *ctx, const aj_staged_job *job)
{
    StoreObject *self = (StoreObject *)ctx;
    int ok = 1;
    PyGILState_STATE g = PyGILState_Ensure();
    PyObject *fn = self->enqueue;
    if (fn != NULL) {
        Py_INCREF(fn);
        PyObject *res = PyObject_CallFunction(fn, "Lsss#", (long long)job->id, job->adapter,
                                              job->job_name, job->payload,
                                              (Py_ssize_t)job->payload_len);
        Py_DECREF(fn);
        if (res == NULL) {
            PyErr_WriteUnraisable((PyObject *)self);
        } else {
            int t = PyObject_IsTrue(res);
            Py_DECREF(res);
            if (t < 0)
                PyErr_WriteUnraisable((PyObject *)self);
            ok = t > 0 ? 0 : 1;
        }
    }
    PyGILState_Release(g);
    return ok;
}

static PyObject *
store_set_enqueue(StoreObject *self, PyObject *fn)
{
    if (self->store == NULL)
        return raise_code(AJ_EMISUSE, "the store is closed");
    if (fn != Py_None && !PyCallable_Check(fn)) {
        PyErr_SetString(PyExc_TypeError, "set_enqueue expects a callable or None");
        return NULL;
    }
    if (fn == Py_None) {
        aj_store_set_enqueue(self->store, NULL, NULL);
        Py_CLEAR(self->enqueue);
    } else {
        Py_INCREF(fn);
        Py_XSETREF(self->enqueue, fn);
        aj_store_set_enqueue(self->store, enqueue_trampoline, self);
    }
    Py_RETURN_NONE;
}

static PyObject *
store_drain(StoreObject *self, PyObject *arg)
{
    long long older = PyLong_AsLongLong(arg);
    if (older == -1 && PyErr_Occurred())
        return NULL;
    if (older < 0) {
        PyErr_SetString(PyExc_ValueError, "older_than_ms must be >= 0");
        return NULL;
    }
    if (store_enter(self) < 0)
        return NULL;
    size_t delivered = 0;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = aj_store_drain(self->store, (int64_t)older, &delivered);
    Py_END_ALLOW_THREADS
    store_leave(self);
    if (rc != AJ_OK)
        return raise_last(rc);
    return PyLong_FromSize_t(delivered);
}

static PyObject *
store_ack(StoreObject *self, PyObject *arg)
{
    long long id = PyLong_AsLongLong(arg);
    if (id == -1 && PyErr_Occurred())
        return NULL;
    if (store_enter(self) < 0)
        return NULL;
    int completed = 0, rc;
    Py_BEGIN_ALLOW_THREADS
    rc = aj_staged_ack(self->store, (int64_t)id, &completed);
    Py_END_ALLOW_THREADS
    store_leave(self);
    if (rc != AJ_OK)
        return raise_last(rc);
    return PyBool_FromLong(completed);
}

/* Convert a Python parameter to an aj_value. Text points into the object (kept alive
 * by the caller's params sequence). */
static int
to_value(PyObject *o, aj_value *v, Py_ssize_t index)
{
    memset(v, 0, sizeof *v);
    if (o == Py_None) {
        v->type = AJ_NULL;
    } else if (PyBool_Check(o) || PyLong_Check(o)) {
        long long i = PyLong_AsLongLong(o);
        if (i == -1 && PyErr_Occurred())
            return -1;
        v->type = AJ_INT;
        v->integer = i;
    } else if (PyUnicode_Check(o)) {
        Py_ssize_t len;
        const char *s = PyUnicode_AsUTF8AndSize(o, &len);
        if (s == NULL)
            return -1;
        v->type = AJ_TEXT;
        v->text = s;
        v->len = (size_t)len;
    } else if (PyBytes_Check(o)) {
        v->type = AJ_TEXT;
        v->text = PyBytes_AS_STRING(o);
        v->len = (size_t)PyBytes_GET_SIZE(o);
    } else {
        PyErr_Format(PyExc_TypeError,
                     "parameter %zd: expected None, int, str or bytes, got %.200s "
                     "(convert it to text first)", index, Py_TYPE(o)->tp_name);
        return -1;
    }
    return 0;
}

static PyObject *
from_value(const aj_value *v)
{
    switch (v->type) {
    case AJ_INT:
        return PyLong_FromLongLong(v->integer);
    case AJ_TEXT: {
        PyObject *s = PyUnicode_DecodeUTF8(v->text, (Py_ssize_t)v->len, "strict");
        if (s == NULL && PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
            PyErr_Clear();
            s = PyBytes_FromStringAndSize(v->text, (Py_ssize_t)v->len);
        }
        return s;
    }
    default:
        Py_RETURN_NONE;
    }
}

static PyObject *
store_exec(StoreObject *self, PyObject *args)
{
    const char *sql;
    Py_ssize_t sql_len;
    PyObject *params = NULL;
    if (!PyArg_ParseTuple(args, "s#|O:exec", &sql, &sql_len, &params))
        return NULL;
    if ((size_t)sql_len != strlen(sql))
        return raise_code(AJ_EINVALID, "the SQL contains a NUL byte");
    PyObject *seq = NULL;
    Py_ssize_t n = 0;
    if (params != NULL && params != Py_None) {
        if (PyUnicode_Check(params) || PyBytes_Check(params) || PyDict_Check(params)) {
            PyErr_SetString(PyExc_TypeError, "params must be a sequence (tuple or list)");
            return NULL;
        }
        seq = PySequence_Fast(params, "params must be a sequence (tuple or list)");
        if (seq == NULL)
            return NULL;
        n = PySequence_Fast_GET_SIZE(seq);
    }
    aj_value *values = NULL;
    if (n > 0) {
        values = PyMem_Calloc((size_t)n, sizeof *values);
        if (values == NULL) {
            Py_XDECREF(seq);
            return PyErr_NoMemory();
        }
        for (Py_ssize_t i = 0; i < n; i++) {
            if (to_value(PySequence_Fast_GET_ITEM(seq, i), &values[i], i) < 0) {
                PyMem_Free(values);
                Py_XDECREF(seq);
                return NULL;
            }
        }
    }
    if (store_enter(self) < 0) {
        PyMem_Free(values);
        Py_XDECREF(seq);
        return NULL;
    }
    aj_rows *rows = NULL;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = aj_store_exec(self->store, sql, values, (size_t)n, &rows);
    Py_END_ALLOW_THREADS
    store_leave(self);
    PyMem_Free(values);
    Py_XDECREF(seq);
    if (rc != AJ_OK) {
        aj_rows_free(rows);
        return raise_last(rc);
    }
    size_t nrows = rows ? aj_rows_count(rows) : 0, ncols = rows ? aj_rows_columns(rows) : 0;
    PyObject *out = PyList_New((Py_ssize_t)nrows);
    if (out == NULL) {
        aj_rows_free(rows);
        return NULL;
    }
    for (size_t r = 0; r < nrows; r++) {
        PyObject *row = PyTuple_New((Py_ssize_t)ncols);
        if (row == NULL)
            goto fail;
        PyList_SET_ITEM(out, (Py_ssize_t)r, row);
        for (size_t c = 0; c < ncols; c++) {
            PyObject *cell = from_value(aj_rows_cell(rows, r, c));
            if (cell == NULL)
                goto fail;
            PyTuple_SET_ITEM(row, (Py_ssize_t)c, cell);
        }
    }
    aj_rows_free(rows);
    return out;
fail:
    aj_rows_free(rows);
    Py_DECREF(out);
    return NULL;
}

/* Whether the store's native connection has a transaction open right now, read from
 * the database library itself (sqlite3_get_autocommit / PQtransactionStatus), not from
 * the Python driver's bookkeeping. */
static PyObject *
store_in_transaction(StoreObject *self, PyObject *unused)
{
    if (self->store == NULL)
        return raise_code(AJ_EMISUSE, "the store is closed");
    struct sqlite3 *db = aj_store_sqlite(self->store);
    if (db != NULL)
        return PyBool_FromLong(sqlite3_get_autocommit((sqlite3 *)db) == 0);
    struct pg_conn *pg = aj_store_pg(self->store);
    if (pg != NULL) {
        PGTransactionStatusType st = PQtransactionStatus((PGconn *)pg);
        return PyBool_FromLong(st == PQTRANS_INTRANS || st == PQTRANS_INERROR);
    }
    Py_RETURN_FALSE;
}

static PyObject *
store_close(StoreObject *self, PyObject *unused)
{
    if (self->store == NULL)
        Py_RETURN_NONE;
    if (self->runs > 0)
        return raise_code(AJ_EMISUSE, "the store still has runs: close them first");
    if (self->depth > 0)
        return raise_code(AJ_EMISUSE, "the store is in use");
    aj_store_set_enqueue(self->store, NULL, NULL);
    aj_store *s = self->store;
    self->store = NULL;
    Py_BEGIN_ALLOW_THREADS
    aj_store_free(s);
    Py_END_ALLOW_THREADS
    Py_CLEAR(self->host);
    Py_RETURN_NONE;
}

static PyObject *
store_get_driver(StoreObject *self, void *c)
{
    if (self->store == NULL)
        return raise_code(AJ_EMISUSE, "the store is closed");
    return PyUnicode_FromString(aj_store_driver(self->store));
}

static PyObject *
store_get_borrowed(StoreObject *self, void *c)
{
    if (self->store == NULL)
        return raise_code(AJ_EMISUSE, "the store is closed");
    return PyBool_FromLong(aj_store_is_borrowed(self->store));
}

static PyObject *
store_get_closed(StoreObject *self, void *c)
{
    return PyBool_FromLong(self->store == NULL);
}

static PyObject *
store_get_pid(StoreObject *self, void *c)
{
    return PyLong_FromLong(self->pid);
}

static PyMethodDef store_methods[] = {
    {"migrate", (PyCFunction)store_migrate, METH_NOARGS,
     "Create or upgrade the schema (borrowed stores: inside an open transaction)."},
    {"settle", (PyCFunction)store_settle, METH_O,
     "Borrowed stores: report that the host committed (True) or rolled back (False)."},
    {"set_enqueue", (PyCFunction)store_set_enqueue, METH_O,
     "Set the callable(staged_id, adapter, job_name, payload) -> bool that pushes "
     "committed staged jobs; None removes it."},
    {"drain", (PyCFunction)store_drain, METH_O,
     "Deliver staged jobs older than older_than_ms; returns how many were delivered."},
    {"ack", (PyCFunction)store_ack, METH_O,
     "Acknowledge (delete) a staged job; True when it completed a batch."},
    {"exec", (PyCFunction)store_exec, METH_VARARGS,
     "Execute SQL with `?` placeholders on the store's connection; returns the rows."},
    {"in_transaction", (PyCFunction)store_in_transaction, METH_NOARGS,
     "True when the native connection has an open transaction."},
    {"close", (PyCFunction)store_close, METH_NOARGS, "Free the store (idempotent)."},
    {NULL}
};

static PyGetSetDef store_getset[] = {
    {"driver", (getter)store_get_driver, NULL, "'sqlite', 'postgres' or 'host'", NULL},
    {"borrowed", (getter)store_get_borrowed, NULL, "True for a borrowed connection", NULL},
    {"closed", (getter)store_get_closed, NULL, "True after close()", NULL},
    {"pid", (getter)store_get_pid, NULL, "the process that opened the store", NULL},
    {NULL}
};

static PyTypeObject StoreType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "acidic_job._native.Store",
    .tp_basicsize = sizeof(StoreObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "A database connection with the acidic_job tables (aj_store).",
    .tp_dealloc = (destructor)store_dealloc,
    .tp_traverse = (traverseproc)store_traverse,
    .tp_clear = (inquiry)store_clear,
    .tp_methods = store_methods,
    .tp_getset = store_getset,
};

/* ------------------------------------------------------------------------ */
/* Workflow                                                                  */
/* ------------------------------------------------------------------------ */

typedef struct {
    PyObject_HEAD
    aj_workflow *wf;
} WorkflowObject;

static void
workflow_dealloc(WorkflowObject *self)
{
    aj_workflow_free(self->wf);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int
workflow_init(WorkflowObject *self, PyObject *args, PyObject *kwargs)
{
    PyObject *steps;
    static char *kwlist[] = {"steps", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O:Workflow", kwlist, &steps))
        return -1;
    if (self->wf != NULL) {
        PyErr_SetString(PyExc_TypeError, "Workflow is already initialised");
        return -1;
    }
    PyObject *seq = PySequence_Fast(steps, "steps must be a sequence of (name, awaits) pairs");
    if (seq == NULL)
        return -1;
    aj_workflow *wf = NULL;
    int rc = aj_workflow_new(&wf);
    if (rc != AJ_OK) {
        Py_DECREF(seq);
        raise_last(rc);
        return -1;
    }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(seq, i);
        const char *name;
        PyObject *awaits = NULL;
        if (PyUnicode_Check(item)) {
            name = PyUnicode_AsUTF8(item);
        } else if (PyTuple_Check(item) && PyTuple_GET_SIZE(item) == 2 &&
                   PyUnicode_Check(PyTuple_GET_ITEM(item, 0))) {
            name = PyUnicode_AsUTF8(PyTuple_GET_ITEM(item, 0));
            awaits = PyTuple_GET_ITEM(item, 1);
        } else {
            PyErr_Format(PyExc_TypeError, "step %zd: expected a name or a (name, awaits) tuple",
                         i);
            goto fail;
        }
        if (name == NULL)
            goto fail;
        PyObject *aseq = NULL;
        const char **names = NULL;
        Py_ssize_t na = 0;
        if (awaits != NULL && awaits != Py_None) {
            aseq = PySequence_Fast(awaits, "awaits must be a sequence of job names");
            if (aseq == NULL)
                goto fail;
            na = PySequence_Fast_GET_SIZE(aseq);
            names = PyMem_Calloc((size_t)(na ? na : 1), sizeof *names);
            if (names == NULL) {
                Py_DECREF(aseq);
                PyErr_NoMemory();
                goto fail;
            }
            for (Py_ssize_t j = 0; j < na; j++) {
                PyObject *a = PySequence_Fast_GET_ITEM(aseq, j);
                if (!PyUnicode_Check(a)) {
                    PyErr_Format(PyExc_TypeError, "step %s: awaited job names must be str",
                                 name);
                    PyMem_Free(names);
                    Py_DECREF(aseq);
                    goto fail;
                }
                names[j] = PyUnicode_AsUTF8(a);
                if (names[j] == NULL) {
                    PyMem_Free(names);
                    Py_DECREF(aseq);
                    goto fail;
                }
            }
        }
        rc = aj_workflow_add_step(wf, name, names, (size_t)na);
        PyMem_Free(names);
        Py_XDECREF(aseq);
        if (rc != AJ_OK) {
            raise_last(rc);
            goto fail;
        }
    }
    Py_DECREF(seq);
    self->wf = wf;
    return 0;
fail:
    Py_DECREF(seq);
    aj_workflow_free(wf);
    return -1;
}

static PyObject *
workflow_get_steps(WorkflowObject *self, void *c)
{
    if (self->wf == NULL)
        return PyList_New(0);
    size_t n = aj_workflow_count(self->wf);
    PyObject *out = PyList_New((Py_ssize_t)n);
    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        size_t na = aj_workflow_awaits_count(self->wf, i);
        PyObject *aw = PyTuple_New((Py_ssize_t)na);
        if (aw == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        for (size_t j = 0; j < na; j++) {
            PyObject *s = PyUnicode_FromString(aj_workflow_await(self->wf, i, j));
            if (s == NULL) {
                Py_DECREF(aw);
                Py_DECREF(out);
                return NULL;
            }
            PyTuple_SET_ITEM(aw, (Py_ssize_t)j, s);
        }
        PyObject *t = Py_BuildValue("(sN)", aj_workflow_step(self->wf, i), aw);
        if (t == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        PyList_SET_ITEM(out, (Py_ssize_t)i, t);
    }
    return out;
}

static PyGetSetDef workflow_getset[] = {
    {"steps", (getter)workflow_get_steps, NULL, "list of (name, awaits) tuples", NULL},
    {NULL}
};

static PyTypeObject WorkflowType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "acidic_job._native.Workflow",
    .tp_basicsize = sizeof(WorkflowObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Workflow(steps): an ordered list of uniquely named steps (aj_workflow).",
    .tp_dealloc = (destructor)workflow_dealloc,
    .tp_init = (initproc)workflow_init,
    .tp_new = PyType_GenericNew,
    .tp_getset = workflow_getset,
};

/* ------------------------------------------------------------------------ */
/* Run                                                                       */
/* ------------------------------------------------------------------------ */

typedef struct {
    PyObject_HEAD
    aj_run *run;
    StoreObject *store;
    WorkflowObject *workflow;
} RunObject;

static PyTypeObject RunType;

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

static int
text_arg(PyObject *o, const char *what, const char **s, Py_ssize_t *len)
{
    if (o == Py_None) {
        *s = NULL;
        *len = 0;
        return 0;
    }
    if (PyUnicode_Check(o)) {
        *s = PyUnicode_AsUTF8AndSize(o, len);
        return *s == NULL ? -1 : 0;
    }
    if (PyBytes_Check(o)) {
        *s = PyBytes_AS_STRING(o);
        *len = PyBytes_GET_SIZE(o);
        return 0;
    }
    PyErr_Format(PyExc_TypeError, "%s must be str, bytes or None, got %.200s", what,
                 Py_TYPE(o)->tp_name);
    return -1;
}

static char *acquire_kwlist[] = {"store", "workflow", "key", "job_name", "args", "attributes",
                                 NULL};

static PyObject *
native_acquire(PyObject *mod, PyObject *args, PyObject *kwargs)
{
    PyObject *store_obj, *wf_obj, *args_obj = Py_None, *attrs_obj = Py_None;
    const char *key, *job_name;
    Py_ssize_t key_len, name_len;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O!O!s#s#|OO", acquire_kwlist, &StoreType,
                                     &store_obj, &WorkflowType, &wf_obj, &key, &key_len,
                                     &job_name, &name_len, &args_obj, &attrs_obj))
        return NULL;
    if ((size_t)key_len != strlen(key) || (size_t)name_len != strlen(job_name))
        return raise_code(AJ_EINVALID, "the key and the job name must not contain a NUL byte");
    StoreObject *store = (StoreObject *)store_obj;
    WorkflowObject *wf = (WorkflowObject *)wf_obj;
    if (wf->wf == NULL) {
        PyErr_SetString(PyExc_TypeError, "the Workflow is not initialised");
        return NULL;
    }
    aj_run_params p;
    memset(&p, 0, sizeof p);
    Py_ssize_t alen = 0, tlen = 0;
    if (text_arg(args_obj, "args", &p.args, &alen) < 0 ||
        text_arg(attrs_obj, "attributes", &p.attributes, &tlen) < 0)
        return NULL;
    p.args_len = (size_t)alen;
    p.attributes_len = (size_t)tlen;
    p.key = key;
    p.job_name = job_name;
    RunObject *self = PyObject_New(RunObject, &RunType);
    if (self == NULL)
        return NULL;
    self->run = NULL;
    Py_INCREF(store);
    self->store = store;
    Py_INCREF(wf);
    self->workflow = wf;
    if (store_enter(store) < 0) {
        Py_DECREF(self);
        return NULL;
    }
    aj_run *run = NULL;
    int rc;
    /* args_obj / attrs_obj stay alive (borrowed from the caller's frame). */
    Py_BEGIN_ALLOW_THREADS
    rc = aj_run_acquire(&run, store->store, wf->wf, &p);
    Py_END_ALLOW_THREADS
    store_leave(store);
    if (rc != AJ_OK) {
        Py_DECREF(self);
        return raise_last(rc);
    }
    self->run = run;
    store->runs++;
    return (PyObject *)self;
}

static int
run_check(RunObject *self)
{
    if (self->run == NULL) {
        raise_code(AJ_EMISUSE, "the run is closed");
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
    if (run_check(self) < 0)
        return NULL;
    if (!PyCallable_Check(callable)) {
        PyErr_SetString(PyExc_TypeError, "step() expects a callable(step_name)");
        return NULL;
    }
    if (store_enter(self->store) < 0)
        return NULL;
    step_ctx ctx = {callable, NULL, NULL, NULL};
    int rc;
    Py_INCREF(self);
    Py_BEGIN_ALLOW_THREADS
    rc = execute ? aj_run_execute(self->run, step_trampoline, &ctx)
                 : aj_run_step(self->run, step_trampoline, &ctx);
    Py_END_ALLOW_THREADS
    store_leave(self->store);
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
        return raise_last(rc);
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
    if (run_check(self) < 0 || store_enter(self->store) < 0)
        return NULL;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = aj_run_fail(self->run);
    Py_END_ALLOW_THREADS
    store_leave(self->store);
    if (rc != AJ_OK)
        return raise_last(rc);
    Py_RETURN_NONE;
}

typedef int (*stage_fn)(aj_run *, const char *, const char *, const char *, size_t, int64_t *);

static PyObject *
run_stage_common(RunObject *self, PyObject *args, stage_fn fn, const char *fname)
{
    const char *adapter, *job_name, *payload;
    Py_ssize_t alen, jlen, plen;
    char fmt[32];
    snprintf(fmt, sizeof fmt, "s#s#s#:%s", fname);
    if (!PyArg_ParseTuple(args, fmt, &adapter, &alen, &job_name, &jlen, &payload, &plen))
        return NULL;
    if ((size_t)alen != strlen(adapter) || (size_t)jlen != strlen(job_name) ||
        memchr(payload, 0, (size_t)plen) != NULL)
        return raise_code(AJ_EINVALID, "adapter, job name and payload must not contain NUL");
    if (run_check(self) < 0 || store_enter(self->store) < 0)
        return NULL;
    int64_t id = 0;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = fn(self->run, adapter, job_name, payload, (size_t)plen, &id);
    Py_END_ALLOW_THREADS
    store_leave(self->store);
    if (rc != AJ_OK)
        return raise_last(rc);
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
    Py_ssize_t alen, jlen, plen;
    if (!PyArg_ParseTuple(args, "s#s#s#:set_continuation", &adapter, &alen, &job_name, &jlen,
                          &payload, &plen))
        return NULL;
    if ((size_t)alen != strlen(adapter) || (size_t)jlen != strlen(job_name) ||
        memchr(payload, 0, (size_t)plen) != NULL)
        return raise_code(AJ_EINVALID, "adapter, job name and payload must not contain NUL");
    if (run_check(self) < 0)
        return NULL;
    int rc = aj_run_set_continuation(self->run, adapter, job_name, payload, (size_t)plen);
    if (rc != AJ_OK)
        return raise_last(rc);
    Py_RETURN_NONE;
}

static PyObject *
run_finish(RunObject *self, PyObject *unused)
{
    if (run_check(self) < 0)
        return NULL;
    int rc = aj_run_finish(self->run);
    if (rc != AJ_OK)
        return raise_last(rc);
    Py_RETURN_NONE;
}

static PyObject *
run_goto(RunObject *self, PyObject *arg)
{
    if (!PyUnicode_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "goto expects a step name (str)");
        return NULL;
    }
    const char *name = PyUnicode_AsUTF8(arg);
    if (name == NULL || run_check(self) < 0)
        return NULL;
    int rc = aj_run_goto(self->run, name);
    if (rc != AJ_OK)
        return raise_last(rc);
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
    if (text_arg(arg, what, &s, &len) < 0)
        return NULL;
    if (memchr(s, 0, (size_t)len) != NULL)
        return raise_code(AJ_EINVALID, "a document must not contain a NUL byte");
    if (run_check(self) < 0)
        return NULL;
    int rc = fn(self->run, s, (size_t)len);
    if (rc != AJ_OK)
        return raise_last(rc);
    Py_RETURN_NONE;
}

static PyObject *
run_set_error(RunObject *self, PyObject *arg)
{
    return run_doc_common(self, arg, aj_run_set_error, "error");
}

static PyObject *
run_set_attributes(RunObject *self, PyObject *arg)
{
    return run_doc_common(self, arg, aj_run_set_attributes, "attributes");
}

static PyObject *
run_close(RunObject *self, PyObject *unused)
{
    run_release(self);
    Py_RETURN_NONE;
}

static PyObject *
opt_text(const char *s, size_t len)
{
    if (s == NULL)
        Py_RETURN_NONE;
    return PyUnicode_DecodeUTF8(s, (Py_ssize_t)len, "replace");
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
    return opt_text(k, k ? strlen(k) : 0);
}

static PyObject *
run_get_recovery_point(RunObject *self, void *c)
{
    if (run_check(self) < 0)
        return NULL;
    const char *k = aj_run_recovery_point(self->run);
    return opt_text(k, k ? strlen(k) : 0);
}

static PyObject *
run_get_attributes(RunObject *self, void *c)
{
    if (run_check(self) < 0)
        return NULL;
    size_t len = 0;
    const char *s = aj_run_attributes(self->run, &len);
    return opt_text(s, len);
}

static PyObject *
run_get_error(RunObject *self, void *c)
{
    if (run_check(self) < 0)
        return NULL;
    size_t len = 0;
    const char *s = aj_run_error(self->run, &len);
    return opt_text(s, len);
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

static PyTypeObject RunType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "acidic_job._native.Run",
    .tp_basicsize = sizeof(RunObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "One execution of a workflow under an idempotency key (aj_run).",
    .tp_dealloc = (destructor)run_dealloc,
    .tp_methods = run_methods,
    .tp_getset = run_getset,
};

/* ------------------------------------------------------------------------ */
/* Module                                                                    */
/* ------------------------------------------------------------------------ */

static PyObject *
native_register_errors(PyObject *mod, PyObject *mapping)
{
    if (!PyDict_Check(mapping)) {
        PyErr_SetString(PyExc_TypeError, "expected a dict {code: exception class}");
        return NULL;
    }
    Py_INCREF(mapping);
    Py_XSETREF(error_classes, mapping);
    Py_RETURN_NONE;
}

static PyObject *
native_sqlite_libversion(PyObject *mod, PyObject *unused)
{
    return PyUnicode_FromString(sqlite3_libversion());
}

static PyObject *
native_pq_libversion(PyObject *mod, PyObject *unused)
{
    return PyLong_FromLong(PQlibVersion());
}

static PyObject *
native_code_name(PyObject *mod, PyObject *arg)
{
    long code = PyLong_AsLong(arg);
    if (code == -1 && PyErr_Occurred())
        return NULL;
    return PyUnicode_FromString(aj_code_name((int)code));
}

static PyMethodDef module_methods[] = {
    {"open", (PyCFunction)(void (*)(void))native_open, METH_VARARGS | METH_KEYWORDS,
     "open(url, *, lock_timeout_ms, busy_timeout_ms, synchronous, conflict_retries) -> Store"},
    {"borrow_sqlite", (PyCFunction)(void (*)(void))native_borrow_sqlite,
     METH_VARARGS | METH_KEYWORDS, "borrow_sqlite(connection, **options) -> Store"},
    {"borrow_pg", (PyCFunction)(void (*)(void))native_borrow_pg, METH_VARARGS | METH_KEYWORDS,
     "borrow_pg(pgconn_ptr, connection=None, **options) -> Store"},
    {"acquire", (PyCFunction)(void (*)(void))native_acquire, METH_VARARGS | METH_KEYWORDS,
     "acquire(store, workflow, key, job_name, args=None, attributes=None) -> Run"},
    {"_register_errors", native_register_errors, METH_O,
     "Register {code: exception class} (done by acidic_job.errors)."},
    {"sqlite_libversion", native_sqlite_libversion, METH_NOARGS,
     "The SQLite version the extension runs with."},
    {"pq_libversion", native_pq_libversion, METH_NOARGS,
     "PQlibVersion() of the libpq the extension runs with."},
    {"code_name", native_code_name, METH_O, "Stable name of a core error code."},
    {NULL}
};

static struct PyModuleDef native_module = {
    PyModuleDef_HEAD_INIT, "acidic_job._native",
    "The C core of acidic_job (see acidic_job.h); use the acidic_job package instead.", -1,
    module_methods,
};

PyMODINIT_FUNC  /* Py_EXPORTED_SYMBOL: the one symbol the extension exports */
PyInit__native(void)
{
    if (PyType_Ready(&StoreType) < 0 || PyType_Ready(&WorkflowType) < 0 ||
        PyType_Ready(&RunType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&native_module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&StoreType);
    Py_INCREF(&WorkflowType);
    Py_INCREF(&RunType);
    if (PyModule_AddObject(m, "Store", (PyObject *)&StoreType) < 0 ||
        PyModule_AddObject(m, "Workflow", (PyObject *)&WorkflowType) < 0 ||
        PyModule_AddObject(m, "Run", (PyObject *)&RunType) < 0 ||
        PyModule_AddStringConstant(m, "VERSION", AJ_VERSION) < 0 ||
        PyModule_AddStringConstant(m, "RECOVERY_POINT_FINISHED", AJ_RECOVERY_POINT_FINISHED) < 0)
        goto fail;
    struct { const char *name; long value; } consts[] = {
        {"RUN_READY", AJ_RUN_READY}, {"RUN_AWAITING", AJ_RUN_AWAITING},
        {"RUN_SUCCEEDED", AJ_RUN_SUCCEEDED}, {"RUN_FAILED", AJ_RUN_FAILED},
        {"RUN_FINISHED_FAILED", AJ_RUN_FINISHED_FAILED},
        {"OK", AJ_OK}, {"ERROR", AJ_ERROR}, {"EINVALID", AJ_EINVALID}, {"ENOMEM", AJ_ENOMEM},
        {"EMISUSE", AJ_EMISUSE}, {"EDATABASE", AJ_EDATABASE}, {"ECONFLICT", AJ_ECONFLICT},
        {"EMISMATCH", AJ_EMISMATCH}, {"ELOCKED", AJ_ELOCKED},
        {"EUNKNOWN_RECOVERY_POINT", AJ_EUNKNOWN_RECOVERY_POINT},
        {"ENO_STEPS", AJ_ENO_STEPS}, {"EDUPLICATE_STEP", AJ_EDUPLICATE_STEP},
        {"ESTEP", AJ_ESTEP}, {"ENOTFOUND", AJ_ENOTFOUND},
        {"SYNC_FULL", AJ_SYNC_FULL}, {"SYNC_NORMAL", AJ_SYNC_NORMAL}, {"SYNC_OFF", AJ_SYNC_OFF},
    };
    for (size_t i = 0; i < sizeof consts / sizeof consts[0]; i++)
        if (PyModule_AddIntConstant(m, consts[i].name, consts[i].value) < 0)
            goto fail;
    return m;
fail:
    Py_DECREF(m);
    return NULL;
}
