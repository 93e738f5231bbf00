/*
 * acidic_job._native: the CPython extension over the C core.
 *
 * Deliberately small: three types (Store, Workflow, Run) that own one core handle
 * each, the calls of the header one to one, and the mapping of core error codes to
 * the exception classes of acidic_job.errors (registered at import by the Python
 * layer). Everything a Python developer sees (decorators, attributes, codecs, host
 * transactions, queues) is written in Python on top of this. One file per type:
 *
 *   py_aj_module.c    the module: its functions, constants and PyInit__native
 *   py_aj_store.c     Store, and open / borrow_sqlite / borrow_pg
 *   py_aj_workflow.c  Workflow
 *   py_aj_run.c       Run, and acquire
 *   py_aj_admin.c     the operator operations (aj_admin_*) as admin_* functions
 *   py_aj_convert.c   conversions: core error codes to exceptions, Python values to
 *                     core values and back
 *
 * Threads: every core call that may touch the database runs with the GIL released.
 * The step and enqueue callbacks re-take it with PyGILState_Ensure. A Store, and the
 * Runs on it, may be used by one thread at a time (the core's rule); a second thread
 * entering a store that is busy in another thread gets MisuseError instead of
 * undefined behaviour. Nested use from the same thread (a step callback staging a
 * job or executing SQL on its own run) is the normal case and allowed.
 *
 * Every name here is internal to the extension: it is compiled with
 * -fvisibility=hidden and exports PyInit__native alone.
 */
#ifndef PY_AJ_H
#define PY_AJ_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "acidic_job.h"

/* --- conversions (py_aj_convert.c) ------------------------------------------------ */

/* The exception class registered for `code` by acidic_job.errors (a borrowed
 * reference), acidic_job.Error for a code without its own class, RuntimeError before
 * registration; NULL with an exception set on failure. */
PyObject *py_aj_error_class(int code);
/* Raise the exception for `code` with `message`; returns NULL. */
PyObject *py_aj_raise(int code, const char *message);
/* The same with a printf-style message. */
PyObject *py_aj_raisef(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Raise the core's last error for this thread (after a call returned `rc`); NULL. */
PyObject *py_aj_raise_last(int rc);
/* _native._register_errors(mapping): the {code: class} dict of acidic_job.errors. */
PyObject *py_aj_register_errors(PyObject *mod, PyObject *mapping);

/* The UTF-8 of a str argument, refusing what the core cannot take: a lone surrogate
 * and (unless `nul_ok`) a NUL byte raise InvalidArgument naming `what`; not a str is
 * TypeError. `len` may be NULL. */
const char *py_aj_text(PyObject *o, const char *what, Py_ssize_t *len, int nul_ok);
/* A document argument (str, bytes, or None for none: *s NULL); a lone surrogate or a
 * NUL byte is InvalidArgument. */
int py_aj_doc_arg(PyObject *o, const char *what, const char **s, Py_ssize_t *len);
/* A statement parameter as a core value; text points into `o`, which the caller keeps
 * alive. */
int py_aj_to_value(PyObject *o, aj_value *v, Py_ssize_t index);
/* A result cell as int, str (bytes when it is not UTF-8) or None. */
PyObject *py_aj_from_value(const aj_value *v);
/* Text the core returned (NULL: None), decoded with replacement. */
PyObject *py_aj_opt_text(const char *s, size_t len);

/* --- Store (py_aj_store.c) -------------------------------------------------------- */

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

extern PyTypeObject py_aj_StoreType;

/* Enter a store for a core call: MisuseError when it is closed or another thread is
 * inside it. Pair with py_aj_store_leave. */
int py_aj_store_enter(StoreObject *self);
void py_aj_store_leave(StoreObject *self);

PyObject *py_aj_open(PyObject *mod, PyObject *args, PyObject *kwargs);
PyObject *py_aj_borrow_sqlite(PyObject *mod, PyObject *args, PyObject *kwargs);
PyObject *py_aj_borrow_pg(PyObject *mod, PyObject *args, PyObject *kwargs);

/* --- Workflow (py_aj_workflow.c) -------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    aj_workflow *wf;
} WorkflowObject;

extern PyTypeObject py_aj_WorkflowType;

/* --- Run (py_aj_run.c) ------------------------------------------------------------ */

typedef struct {
    PyObject_HEAD
    aj_run *run;
    StoreObject *store;
    WorkflowObject *workflow;
    int stepping;            /* inside step() or execute(): the core is using the run */
} RunObject;

extern PyTypeObject py_aj_RunType;

PyObject *py_aj_acquire(PyObject *mod, PyObject *args, PyObject *kwargs);

/* --- operator operations (py_aj_admin.c) ------------------------------------------ */

/* Add the admin_* functions and the ADMIN_* constants to the module. */
int py_aj_admin_init(PyObject *module);

#endif
