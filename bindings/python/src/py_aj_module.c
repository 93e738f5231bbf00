/* The module acidic_job._native: its functions, its constants and PyInit__native. */
#include "py_aj.h"
#include <sqlite3.h>
#include <libpq-fe.h>

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
    {"open", (PyCFunction)(void (*)(void))py_aj_open, METH_VARARGS | METH_KEYWORDS,
     "open(url, **options) -> Store. Options (AJ_UNSET, -1, when not given): "
     "lock_timeout_ms, busy_timeout_ms, synchronous, conflict_retries, max_attempts, "
     "retry_base_ms, match_job_name"},
    {"borrow_sqlite", (PyCFunction)(void (*)(void))py_aj_borrow_sqlite,
     METH_VARARGS | METH_KEYWORDS, "borrow_sqlite(connection, *, atomically=None, **options) -> "
     "Store: atomically(body) -> committed is the host transaction (None: the core's own "
     "BEGIN/COMMIT on the handle)"},
    {"borrow_pg", (PyCFunction)(void (*)(void))py_aj_borrow_pg, METH_VARARGS | METH_KEYWORDS,
     "borrow_pg(connection, *, atomically=None, **options) -> Store: a psycopg 3 Connection "
     "or a psycopg2 connection on the libpq the extension links"},
    {"acquire", (PyCFunction)(void (*)(void))py_aj_acquire, METH_VARARGS | METH_KEYWORDS,
     "acquire(store, workflow, key, job_name, args=None, attributes=None, *, run_id=0, "
     "resume=None) -> Run, acquired in a transaction of its own"},
    {"_register_errors", py_aj_register_errors, METH_VARARGS,
     "_register_errors({code: exception class}, error_document) (done by acidic_job.errors)."},
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
    if (PyType_Ready(&py_aj_StoreType) < 0 || PyType_Ready(&py_aj_WorkflowType) < 0 ||
        PyType_Ready(&py_aj_RunType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&native_module);
    if (m == NULL)
        return NULL;
    if (py_aj_host_init(m) < 0)
        goto fail;
    Py_INCREF(&py_aj_StoreType);
    Py_INCREF(&py_aj_WorkflowType);
    Py_INCREF(&py_aj_RunType);
    if (PyModule_AddObject(m, "Store", (PyObject *)&py_aj_StoreType) < 0 ||
        PyModule_AddObject(m, "Workflow", (PyObject *)&py_aj_WorkflowType) < 0 ||
        PyModule_AddObject(m, "Run", (PyObject *)&py_aj_RunType) < 0 ||
        PyModule_AddStringConstant(m, "VERSION", AJ_VERSION) < 0 ||
        PyModule_AddStringConstant(m, "RECOVERY_POINT_FINISHED", AJ_RECOVERY_POINT_FINISHED) < 0)
        goto fail;
    struct { const char *name; long value; } consts[] = {
        {"RUN_READY", AJ_RUN_READY}, {"RUN_AWAITING", AJ_RUN_AWAITING},
        {"RUN_SUCCEEDED", AJ_RUN_SUCCEEDED}, {"RUN_FAILED", AJ_RUN_FAILED},
        {"RUN_FINISHED_FAILED", AJ_RUN_FINISHED_FAILED}, {"RUN_DEAD", AJ_RUN_DEAD},
        {"RUN_NEW", AJ_RUN_NEW}, {"UNSET", AJ_UNSET},
        {"OK", AJ_OK}, {"ERROR", AJ_ERROR}, {"EINVALID", AJ_EINVALID}, {"ENOMEM", AJ_ENOMEM},
        {"EMISUSE", AJ_EMISUSE}, {"EDATABASE", AJ_EDATABASE}, {"ECONFLICT", AJ_ECONFLICT},
        {"EMISMATCH", AJ_EMISMATCH}, {"ELOCKED", AJ_ELOCKED},
        {"EUNKNOWN_RECOVERY_POINT", AJ_EUNKNOWN_RECOVERY_POINT},
        {"ENO_STEPS", AJ_ENO_STEPS}, {"EDUPLICATE_STEP", AJ_EDUPLICATE_STEP},
        {"ESTEP", AJ_ESTEP}, {"ENOTFOUND", AJ_ENOTFOUND}, {"ESCHEMA", AJ_ESCHEMA},
        {"EVENT_ACQUIRED", AJ_EVENT_ACQUIRED}, {"EVENT_SKIPPED", AJ_EVENT_SKIPPED},
        {"EVENT_STEP_STARTED", AJ_EVENT_STEP_STARTED},
        {"EVENT_STEP_COMMITTED", AJ_EVENT_STEP_COMMITTED},
        {"EVENT_STEP_FAILED", AJ_EVENT_STEP_FAILED}, {"EVENT_FINISHED", AJ_EVENT_FINISHED},
        {"EVENT_STAGED", AJ_EVENT_STAGED}, {"EVENT_ENQUEUED", AJ_EVENT_ENQUEUED},
        {"EVENT_DRAINED", AJ_EVENT_DRAINED}, {"EVENT_RECOVERED", AJ_EVENT_RECOVERED},
        {"SYNC_FULL", AJ_SYNC_FULL}, {"SYNC_NORMAL", AJ_SYNC_NORMAL}, {"SYNC_OFF", AJ_SYNC_OFF},
    };
    for (size_t i = 0; i < sizeof consts / sizeof consts[0]; i++)
        if (PyModule_AddIntConstant(m, consts[i].name, consts[i].value) < 0)
            goto fail;
    if (py_aj_admin_init(m) < 0)
        goto fail;
    return m;
fail:
    Py_DECREF(m);
    return NULL;
}
