/* The Store type (aj_store), and the module functions that make one: open,
 * borrow_sqlite, borrow_pg. */
#include "py_aj.h"
#include <pythread.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>
#include <libpq-fe.h>

/* Enter a store for a core call: MisuseError when another thread is inside it. */
int
py_aj_store_enter(StoreObject *self)
{
    if (self->store == NULL) {
        py_aj_raise(AJ_EMISUSE, "the store is closed");
        return -1;
    }
    unsigned long me = PyThread_get_thread_ident();
    if (self->depth > 0 && self->owner != me) {
        py_aj_raise(AJ_EMISUSE,
                   "the store is in use by another thread: a store (and its connection) "
                   "serves one thread at a time; open one per thread");
        return -1;
    }
    self->owner = me;
    self->depth++;
    return 0;
}

void
py_aj_store_leave(StoreObject *self)
{
    if (--self->depth == 0)
        self->owner = 0;
}

/* The options every store constructor takes: what the user set, AJ_UNSET for the rest
 * (the core fills the defaults and validates). */
#define OPTION_KWLIST "lock_timeout_ms", "busy_timeout_ms", "synchronous", "conflict_retries", \
                      "max_attempts", "retry_base_ms", "match_job_name"
#define OPTION_FORMAT "LLiiiLi"
#define OPTION_ARGS(o) &(o).lock_timeout_ms, &(o).busy_timeout_ms, &(o).synchronous, \
                       &(o).conflict_retries, &(o).max_attempts, &(o).retry_base_ms, \
                       &(o).match_job_name

/* Options parsed into int64_t / int fields through long long / int. */
typedef struct {
    long long lock_timeout_ms, busy_timeout_ms;
    int synchronous, conflict_retries, max_attempts;
    long long retry_base_ms;
    int match_job_name;
} option_args;

#define OPTION_ARGS_INIT {AJ_UNSET, AJ_UNSET, AJ_UNSET, AJ_UNSET, AJ_UNSET, AJ_UNSET, AJ_UNSET}

static void
to_options(const option_args *a, aj_options *o)
{
    aj_options_init(o, AJ_OPTIONS_VERSION);
    o->lock_timeout_ms = a->lock_timeout_ms;
    o->busy_timeout_ms = a->busy_timeout_ms;
    o->synchronous = a->synchronous;
    o->conflict_retries = a->conflict_retries;
    o->max_attempts = a->max_attempts;
    o->retry_base_ms = a->retry_base_ms;
    o->match_job_name = a->match_job_name;
}

/* A new Store object without a core store yet (the hooks need its address first). */
static StoreObject *
store_object(PyObject *conn)
{
    StoreObject *self = PyObject_GC_New(StoreObject, &py_aj_StoreType);
    if (self == NULL)
        return NULL;
    self->store = NULL;
    Py_XINCREF(conn);
    self->conn = conn;
    self->atomically = NULL;
    self->body = NULL;
    self->host_exc = NULL;
    self->enqueue = NULL;
    self->events = NULL;
    self->event_mask = 0;
    self->current = NULL;
    self->runs = 0;
    self->owner = 0;
    self->depth = 0;
    self->pid = (long)getpid();
    PyObject_GC_Track(self);
    return self;
}

/* Give the new object its core store (rc: the constructor's result). */
static PyObject *
store_adopt(StoreObject *self, aj_store *store, int rc)
{
    if (rc != AJ_OK) {
        py_aj_store_result(self, rc);
        PyObject *type, *value, *tb;
        PyErr_Fetch(&type, &value, &tb);
        Py_DECREF(self);
        PyErr_Restore(type, value, tb);
        return NULL;
    }
    self->store = store;
    aj_store_set_events(store, py_aj_event_hook, self);
    aj_store_set_error_encoder(store, py_aj_error_hook, self);
    return (PyObject *)self;
}

static int
store_traverse(StoreObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->conn);
    Py_VISIT(self->atomically);
    Py_VISIT(self->body);
    Py_VISIT(self->host_exc);
    Py_VISIT(self->enqueue);
    Py_VISIT(self->events);
    return 0;
}

static int
store_clear(StoreObject *self)
{
    if (self->store != NULL) {
        aj_store_set_enqueue(self->store, NULL, NULL);
        self->event_mask = 0;
    }
    Py_CLEAR(self->enqueue);
    Py_CLEAR(self->events);
    Py_CLEAR(self->atomically);
    Py_CLEAR(self->body);
    Py_CLEAR(self->host_exc);
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
    Py_CLEAR(self->conn);
    PyObject_GC_Del(self);
}

static char *open_kwlist[] = {"url", OPTION_KWLIST, NULL};

PyObject *
py_aj_open(PyObject *mod, PyObject *args, PyObject *kwargs)
{
    PyObject *url_obj;
    option_args a = OPTION_ARGS_INIT;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|$" OPTION_FORMAT, open_kwlist, &url_obj,
                                     OPTION_ARGS(a)))
        return NULL;
    const char *url = py_aj_text(url_obj, "the database URL", NULL, 0);
    if (url == NULL)
        return NULL;
    aj_options opts;
    to_options(&a, &opts);
    StoreObject *self = store_object(NULL);
    if (self == NULL)
        return NULL;
    aj_store *store = NULL;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = aj_store_open(&store, url, &opts);
    Py_END_ALLOW_THREADS
    return store_adopt(self, store, rc);
}

/* The host transaction argument: a callable, or None for the core's own BEGIN/COMMIT. */
static int
check_atomically(PyObject *atomically)
{
    if (atomically == Py_None || PyCallable_Check(atomically))
        return 0;
    PyErr_Format(PyExc_TypeError, "atomically must be a callable(body) -> committed or None, "
                 "got %.200s", Py_TYPE(atomically)->tp_name);
    return -1;
}

/* A borrowed store: the object, its host transaction, then the core's borrow. */
static PyObject *
borrow(PyObject *conn, void *handle, PyObject *atomically, const aj_host_tx *table,
       const option_args *a,
       int (*fn)(aj_store **, void *, const aj_host_tx *, void *, const aj_options *))
{
    aj_options opts;
    to_options(a, &opts);
    StoreObject *self = store_object(conn);
    if (self == NULL)
        return NULL;
    const aj_host_tx *hooks = NULL;
    if (atomically != Py_None) {
        Py_INCREF(atomically);
        self->atomically = atomically;
        hooks = table;
    }
    aj_store *store = NULL;
    int rc = fn(&store, handle, hooks, self, &opts);
    return store_adopt(self, store, rc);
}

static int
borrow_sqlite_handle(aj_store **out, void *db, const aj_host_tx *tx, void *ctx,
                     const aj_options *opts)
{
    return aj_store_borrow_sqlite(out, db, tx, ctx, opts);
}

static int
borrow_pg_handle(aj_store **out, void *conn, const aj_host_tx *tx, void *ctx,
                 const aj_options *opts)
{
    return aj_store_borrow_pg(out, conn, tx, ctx, opts);
}

/* CPython's sqlite3.Connection begins with PyObject_HEAD followed by `sqlite3 *db`
 * (3.7 through 3.13); there is no public accessor. */
typedef struct {
    PyObject_HEAD
    sqlite3 *db;
} PySqliteConnectionHead;

static char *borrow_kwlist[] = {"connection", "atomically", OPTION_KWLIST, NULL};
/* libpq_state: the host's driver reads the transaction state from libpq (psycopg 3), so
 * the core may send BEGIN with its first statements and COMMIT with its last
 * (aj_host_tx v4's begin_in_body and v3's commit_in_body). */
static char *borrow_pg_kwlist[] = {"connection", "atomically", "libpq_state", OPTION_KWLIST,
                                   NULL};

PyObject *
py_aj_borrow_sqlite(PyObject *mod, PyObject *args, PyObject *kwargs)
{
    PyObject *conn, *atomically = Py_None;
    option_args a = OPTION_ARGS_INIT;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|$O" OPTION_FORMAT, borrow_kwlist, &conn,
                                     &atomically, OPTION_ARGS(a)) ||
        check_atomically(atomically) < 0)
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
        PyErr_Format(py_aj_error_class(AJ_EMISUSE), "Python's sqlite3 module uses SQLite %s but "
                     "acidic_job was built against SQLite %s: a connection cannot be shared "
                     "between two copies of SQLite; pass the database URL instead",
                     pyver, sqlite3_libversion());
        Py_DECREF(version);
        return NULL;
    }
    Py_DECREF(version);
    sqlite3 *db = ((PySqliteConnectionHead *)conn)->db;
    if (db == NULL)
        return py_aj_raise(AJ_EMISUSE, "the sqlite3.Connection is closed");
    return borrow(conn, db, atomically, &py_aj_host_tx, &a, borrow_sqlite_handle);
}

/* Attribute `name` of `obj` as a Python int, or NULL with an exception. */
static int
int_attr(PyObject *obj, const char *name, long long *out)
{
    PyObject *v = PyObject_GetAttrString(obj, name);
    if (v == NULL)
        return -1;
    *out = PyLong_AsLongLong(v);
    Py_DECREF(v);
    return *out == -1 && PyErr_Occurred() ? -1 : 0;
}

/* Whether `conn` is an instance of `module`.`cls`; 0 (no error) when the module was
 * never imported, since then no such connection can exist. */
static int
is_instance_of(PyObject *conn, const char *module, const char *cls)
{
    PyObject *name = PyUnicode_FromString(module);
    if (name == NULL)
        return -1;
    PyObject *mod = PyImport_GetModule(name);
    Py_DECREF(name);
    if (mod == NULL)
        return PyErr_Occurred() ? -1 : 0;
    PyObject *type = PyObject_GetAttrString(mod, cls);
    Py_DECREF(mod);
    if (type == NULL)
        return -1;
    int is = PyObject_IsInstance(conn, type);
    Py_DECREF(type);
    return is;
}

/* Refuse a driver on another libpq than the extension's: one PGconn must not be used
 * by two copies of libpq. */
static int
same_libpq(const char *driver, long long version)
{
    if (version == PQlibVersion())
        return 0;
    PyErr_Format(py_aj_error_class(AJ_EMISUSE),
                 "%s uses libpq %lld but acidic_job was built against libpq %d: a connection "
                 "cannot be shared between two copies of libpq (a '-binary' wheel bundles its "
                 "own); install the driver built on the system libpq or pass a URL",
                 driver, version, PQlibVersion());
    return -1;
}

/* The PGconn inside a psycopg 3 Connection or a psycopg2 connection, checked to be one
 * (by class, not by shape) and to run on this libpq; NULL with an exception otherwise. */
static PGconn *
pgconn_of(PyObject *conn)
{
    long long version = 0, address = 0;
    int is = is_instance_of(conn, "psycopg2.extensions", "connection");
    if (is < 0)
        return NULL;
    if (is) {
        PyObject *ext = PyImport_ImportModule("psycopg2.extensions");
        PyObject *v = ext ? PyObject_CallMethod(ext, "libpq_version", NULL) : NULL;
        Py_XDECREF(ext);
        if (v == NULL)
            return NULL;
        version = PyLong_AsLongLong(v);
        Py_DECREF(v);
        if ((version == -1 && PyErr_Occurred()) || same_libpq("psycopg2", version) < 0)
            return NULL;
        long long closed;
        if (int_attr(conn, "closed", &closed) < 0)
            return NULL;
        if (closed) {
            py_aj_raise(AJ_EMISUSE, "the psycopg2 connection is closed");
            return NULL;
        }
        if (int_attr(conn, "pgconn_ptr", &address) < 0)
            return NULL;
        return (PGconn *)(intptr_t)address;
    }
    is = is_instance_of(conn, "psycopg", "Connection");
    if (is < 0)
        return NULL;
    if (!is) {
        PyErr_Format(PyExc_TypeError, "expected a psycopg Connection or a psycopg2 connection, "
                     "got %.200s", Py_TYPE(conn)->tp_name);
        return NULL;
    }
    PyObject *pq = PyImport_ImportModule("psycopg.pq");
    if (pq == NULL)
        return NULL;
    PyObject *impl = PyObject_GetAttrString(pq, "__impl__");
    int binary = impl != NULL && PyUnicode_Check(impl) &&
                 PyUnicode_CompareWithASCIIString(impl, "binary") == 0;
    Py_XDECREF(impl);
    PyObject *v = binary ? NULL : PyObject_CallMethod(pq, "version", NULL);
    Py_DECREF(pq);
    if (binary) {
        py_aj_raise(AJ_EMISUSE, "psycopg[binary] bundles its own libpq: its connections cannot "
                                "be shared with acidic_job; use psycopg on the system libpq or "
                                "a URL");
        return NULL;
    }
    if (v == NULL)
        return NULL;
    version = PyLong_AsLongLong(v);
    Py_DECREF(v);
    if ((version == -1 && PyErr_Occurred()) || same_libpq("psycopg", version) < 0)
        return NULL;
    long long closed;
    if (int_attr(conn, "closed", &closed) < 0)
        return NULL;
    PyObject *handle = closed ? NULL : PyObject_GetAttrString(conn, "pgconn");
    if (closed) {
        py_aj_raise(AJ_EMISUSE, "the psycopg connection is closed");
        return NULL;
    }
    if (handle == NULL)
        return NULL;
    int rc = int_attr(handle, "pgconn_ptr", &address);
    Py_DECREF(handle);
    return rc < 0 ? NULL : (PGconn *)(intptr_t)address;
}

PyObject *
py_aj_borrow_pg(PyObject *mod, PyObject *args, PyObject *kwargs)
{
    PyObject *conn, *atomically = Py_None;
    int libpq_state = 0;
    option_args a = OPTION_ARGS_INIT;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|$Op" OPTION_FORMAT, borrow_pg_kwlist,
                                     &conn, &atomically, &libpq_state, OPTION_ARGS(a)) ||
        check_atomically(atomically) < 0)
        return NULL;
    PGconn *pg = pgconn_of(conn);
    if (pg == NULL) {
        if (!PyErr_Occurred())
            py_aj_raise(AJ_EMISUSE, "the PostgreSQL connection is closed (no PGconn)");
        return NULL;
    }
    if (PQstatus(pg) != CONNECTION_OK)
        return py_aj_raise(AJ_EDATABASE, "the PostgreSQL connection is not open");
    return borrow(conn, pg, atomically,
                  libpq_state ? &py_aj_host_tx_libpq_state : &py_aj_host_tx, &a,
                  borrow_pg_handle);
}

static PyObject *
store_migrate(StoreObject *self, PyObject *unused)
{
    if (py_aj_store_enter(self) < 0)
        return NULL;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = aj_store_migrate(self->store);
    Py_END_ALLOW_THREADS
    py_aj_store_leave(self);
    if (py_aj_store_result(self, rc) == NULL)
        return NULL;
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

/* Refuse to reconfigure a store another thread is inside. */
static int
store_check_owner(StoreObject *self)
{
    if (self->store == NULL) {
        py_aj_raise(AJ_EMISUSE, "the store is closed");
        return -1;
    }
    if (self->depth > 0 && self->owner != PyThread_get_thread_ident()) {
        py_aj_raise(AJ_EMISUSE, "the store is in use by another thread");
        return -1;
    }
    return 0;
}

static PyObject *
store_set_enqueue(StoreObject *self, PyObject *fn)
{
    if (store_check_owner(self) < 0)
        return NULL;
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
store_set_events(StoreObject *self, PyObject *args)
{
    PyObject *fn;
    unsigned long mask = 0;
    if (!PyArg_ParseTuple(args, "O|k:set_events", &fn, &mask) || store_check_owner(self) < 0)
        return NULL;
    if (fn != Py_None && !PyCallable_Check(fn)) {
        PyErr_SetString(PyExc_TypeError, "set_events expects a callable(Event) or None");
        return NULL;
    }
    if (fn == Py_None) {
        self->event_mask = 0;
        Py_CLEAR(self->events);
    } else {
        Py_INCREF(fn);
        Py_XSETREF(self->events, fn);
        self->event_mask = mask;
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
    if (py_aj_store_enter(self) < 0)
        return NULL;
    size_t delivered = 0;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = aj_store_drain(self->store, (int64_t)older, &delivered);
    Py_END_ALLOW_THREADS
    py_aj_store_leave(self);
    if (py_aj_store_result(self, rc) == NULL)
        return NULL;
    return PyLong_FromSize_t(delivered);
}

static PyObject *
store_ack(StoreObject *self, PyObject *arg)
{
    long long id;
    if (py_aj_int64(arg, "the staged id", &id) < 0)
        return NULL;
    if (py_aj_store_enter(self) < 0)
        return NULL;
    int completed = 0, rc;
    Py_BEGIN_ALLOW_THREADS
    rc = aj_staged_ack(self->store, (int64_t)id, &completed);
    Py_END_ALLOW_THREADS
    py_aj_store_leave(self);
    if (py_aj_store_result(self, rc) == NULL)
        return NULL;
    return PyBool_FromLong(completed);
}

static PyObject *
store_recover(StoreObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"limit", NULL};
    Py_ssize_t limit = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|n:recover", kwlist, &limit))
        return NULL;
    if (limit < 0) {
        PyErr_SetString(PyExc_ValueError, "limit must be >= 0 (0: no limit)");
        return NULL;
    }
    if (py_aj_store_enter(self) < 0)
        return NULL;
    size_t requeued = 0, dead = 0;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = aj_store_recover(self->store, (size_t)limit, &requeued, &dead);
    Py_END_ALLOW_THREADS
    py_aj_store_leave(self);
    if (py_aj_store_result(self, rc) == NULL)
        return NULL;
    return Py_BuildValue("(nn)", (Py_ssize_t)requeued, (Py_ssize_t)dead);
}

static PyObject *
store_exec(StoreObject *self, PyObject *args)
{
    PyObject *sql_obj, *params = NULL;
    if (!PyArg_ParseTuple(args, "O|O:exec", &sql_obj, &params))
        return NULL;
    const char *sql = py_aj_text(sql_obj, "the SQL", NULL, 0);
    if (sql == NULL)
        return NULL;
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
    aj_value stack[8];
    aj_value *values = stack;
    if (n > 8) {
        values = PyMem_Calloc((size_t)n, sizeof *values);
        if (values == NULL) {
            Py_XDECREF(seq);
            return PyErr_NoMemory();
        }
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        if (py_aj_to_value(PySequence_Fast_GET_ITEM(seq, i), &values[i], i) < 0) {
            if (values != stack)
                PyMem_Free(values);
            Py_XDECREF(seq);
            return NULL;
        }
    }
    if (py_aj_store_enter(self) < 0) {
        if (values != stack)
            PyMem_Free(values);
        Py_XDECREF(seq);
        return NULL;
    }
    aj_rows *rows = NULL;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = aj_store_exec(self->store, sql, values, (size_t)n, &rows);
    Py_END_ALLOW_THREADS
    py_aj_store_leave(self);
    if (values != stack)
        PyMem_Free(values);
    Py_XDECREF(seq);
    if (rc != AJ_OK) {
        aj_rows_free(rows);
        return py_aj_raise_last(rc);
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
            PyObject *cell = py_aj_from_value(aj_rows_cell(rows, r, c));
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
        return py_aj_raise(AJ_EMISUSE, "the store is closed");
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

/* sqlite3_last_insert_rowid of a SQLite store's connection (what sqlite3.Cursor's
 * lastrowid reads); None for PostgreSQL, where RETURNING is the way. */
static PyObject *
store_last_insert_rowid(StoreObject *self, PyObject *unused)
{
    if (self->store == NULL)
        return py_aj_raise(AJ_EMISUSE, "the store is closed");
    struct sqlite3 *db = aj_store_sqlite(self->store);
    if (db == NULL)
        Py_RETURN_NONE;
    return PyLong_FromLongLong((long long)sqlite3_last_insert_rowid((sqlite3 *)db));
}

static PyObject *
store_close(StoreObject *self, PyObject *unused)
{
    if (self->store == NULL)
        Py_RETURN_NONE;
    if (self->runs > 0)
        return py_aj_raise(AJ_EMISUSE, "the store still has runs: close them first");
    if (self->depth > 0)
        return py_aj_raise(AJ_EMISUSE, "the store is in use");
    aj_store *s = self->store;
    self->store = NULL;
    Py_BEGIN_ALLOW_THREADS
    aj_store_free(s);
    Py_END_ALLOW_THREADS
    store_clear(self);
    Py_CLEAR(self->conn);
    Py_RETURN_NONE;
}

static PyObject *
store_get_driver(StoreObject *self, void *c)
{
    if (self->store == NULL)
        return py_aj_raise(AJ_EMISUSE, "the store is closed");
    return PyUnicode_FromString(aj_store_driver(self->store));
}

static PyObject *
store_get_borrowed(StoreObject *self, void *c)
{
    if (self->store == NULL)
        return py_aj_raise(AJ_EMISUSE, "the store is closed");
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

/* The effective options (defaults applied, huge values clamped) as a dict. */
static PyObject *
store_get_options(StoreObject *self, void *c)
{
    if (self->store == NULL)
        return py_aj_raise(AJ_EMISUSE, "the store is closed");
    aj_options o;
    aj_options_init(&o, AJ_OPTIONS_VERSION);
    if (aj_store_options(self->store, &o) != AJ_OK)
        return py_aj_raise_last(AJ_ERROR);
    return Py_BuildValue("{sLsLsisisisLsi}", "lock_timeout_ms", (long long)o.lock_timeout_ms,
                         "busy_timeout_ms", (long long)o.busy_timeout_ms,
                         "synchronous", o.synchronous, "conflict_retries", o.conflict_retries,
                         "max_attempts", o.max_attempts, "retry_base_ms",
                         (long long)o.retry_base_ms, "match_job_name", o.match_job_name);
}

static PyMethodDef store_methods[] = {
    {"migrate", (PyCFunction)store_migrate, METH_NOARGS,
     "Detect, create or heal the tables now (every store also does it on first use)."},
    {"set_enqueue", (PyCFunction)store_set_enqueue, METH_O,
     "Set the callable(staged_id, adapter, job_name, payload) -> bool that pushes "
     "committed staged jobs; None removes it."},
    {"set_events", (PyCFunction)store_set_events, METH_VARARGS,
     "set_events(handler, mask): call handler(Event) for the event types whose bit "
     "(1 << EVENT_*) is in mask; None removes it."},
    {"recover", (PyCFunction)(void (*)(void))store_recover, METH_VARARGS | METH_KEYWORDS,
     "recover(limit=0) -> (requeued, dead): hand stranded and due failed runs back to "
     "their queue (aj_store_recover)."},
    {"drain", (PyCFunction)store_drain, METH_O,
     "Deliver staged jobs older than older_than_ms; returns how many were delivered."},
    {"ack", (PyCFunction)store_ack, METH_O,
     "Acknowledge (delete) a staged job; True when it completed a batch."},
    {"exec", (PyCFunction)store_exec, METH_VARARGS,
     "Execute SQL with `?` placeholders on the store's connection; returns the rows."},
    {"in_transaction", (PyCFunction)store_in_transaction, METH_NOARGS,
     "True when the native connection has an open transaction."},
    {"last_insert_rowid", (PyCFunction)store_last_insert_rowid, METH_NOARGS,
     "SQLite: the rowid of the last INSERT on the connection; None on PostgreSQL."},
    {"close", (PyCFunction)store_close, METH_NOARGS, "Free the store (idempotent)."},
    {NULL}
};

static PyGetSetDef store_getset[] = {
    {"driver", (getter)store_get_driver, NULL, "'sqlite', 'postgres' or 'host'", NULL},
    {"borrowed", (getter)store_get_borrowed, NULL, "True for a borrowed connection", NULL},
    {"closed", (getter)store_get_closed, NULL, "True after close()", NULL},
    {"pid", (getter)store_get_pid, NULL, "the process that opened the store", NULL},
    {"options", (getter)store_get_options, NULL, "the effective options (a dict)", NULL},
    {NULL}
};

PyTypeObject py_aj_StoreType = {
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
