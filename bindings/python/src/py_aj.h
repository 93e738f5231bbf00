/*
 * acidic_job._native: the CPython extension over the C core.
 *
 * Deliberately small: three types (Store, Workflow, Run) that own one core handle
 * each, the calls of the header one to one, the hooks a store gives the core (the host
 * transaction, events, error documents), and the mapping of core error codes to the
 * exception classes of acidic_job.errors (registered at import by the Python layer).
 * Everything a Python developer sees (decorators, attributes, codecs, drivers, queues,
 * logging) is written in Python on top of this. One file per type:
 *
 *   py_aj_module.c    the module: its functions, constants and PyInit__native
 *   py_aj_store.c     Store, and open / borrow_sqlite / borrow_pg
 *   py_aj_host.c      the hooks: aj_host_tx calling the Python host, events, error
 *                     documents, and the host's exception kept across the core
 *   py_aj_workflow.c  Workflow
 *   py_aj_run.c       Run, and acquire
 *   py_aj_admin.c     the operator operations (aj_admin_*) as admin_* functions
 *   py_aj_convert.c   conversions: core error codes to exceptions, Python values to
 *                     core values and back
 *
 * Threads: every core call that may touch the database runs with the GIL released.
 * The callbacks (step, host transaction, enqueue, events, error documents) re-take it
 * with PyGILState_Ensure. A Store, and the Runs on it, may be used by one thread at a
 * time (the core's rule); a second thread entering a store that is busy in another
 * thread gets MisuseError instead of undefined behaviour. Nested use from the same
 * thread (a step callback staging a job or executing SQL on its own run) is the normal
 * case and allowed.
 *
 * Exceptions never cross the core: each callback catches what Python raised, turns it
 * into a return code (and the core's last error), and keeps the exception; the call
 * that entered the core raises after the core has returned.
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
/* acidic_job.Error (borrowed), or NULL before registration. */
PyObject *py_aj_error_base(void);
/* The Python function making the error document of a core failure (borrowed), or NULL
 * before registration. */
PyObject *py_aj_error_document(void);
/* Raise the exception for `code` with `message`; returns NULL. */
PyObject *py_aj_raise(int code, const char *message);
/* The same with a printf-style message. */
PyObject *py_aj_raisef(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Raise the core's last error for this thread (after a call returned `rc`); NULL. */
PyObject *py_aj_raise_last(int rc);
/* _native._register_errors(mapping, document): the {code: class} dict of
 * acidic_job.errors and its error_document(code, message) -> str. */
PyObject *py_aj_register_errors(PyObject *mod, PyObject *args);

/* The UTF-8 of a str argument, refusing what the core cannot take: a lone surrogate
 * and (unless `nul_ok`) a NUL byte raise InvalidArgument naming `what`; not a str is
 * TypeError. `len` may be NULL. */
const char *py_aj_text(PyObject *o, const char *what, Py_ssize_t *len, int nul_ok);
/* A document argument (str, bytes, or None for none: *s NULL); a lone surrogate or a
 * NUL byte is InvalidArgument. */
int py_aj_doc_arg(PyObject *o, const char *what, const char **s, Py_ssize_t *len);
/* An int argument as a 64-bit integer; one that does not fit is InvalidArgument naming
 * `what` (not a bare OverflowError), not an int is TypeError. */
int py_aj_int64(PyObject *o, const char *what, long long *out);
/* A statement parameter as a core value; text points into `o`, which the caller keeps
 * alive. */
int py_aj_to_value(PyObject *o, aj_value *v, Py_ssize_t index);
/* A result cell as int, str (bytes when it is not UTF-8) or None. */
PyObject *py_aj_from_value(const aj_value *v);
/* Text the core returned (NULL: None), decoded with replacement. */
PyObject *py_aj_opt_text(const char *s, size_t len);

/* --- Store (py_aj_store.c) -------------------------------------------------------- */

struct RunObject;

typedef struct {
    PyObject_HEAD
    aj_store *store;
    PyObject *conn;          /* borrowed connection kept alive, or NULL */
    PyObject *atomically;    /* the host transaction: callable(body) -> committed, or NULL */
    PyObject *body;          /* the TxBody handed to it, reused while nobody else holds it */
    PyObject *host_exc;      /* what a hook raised during the current core call, or NULL */
    PyObject *enqueue;       /* Python callable or NULL */
    PyObject *events;        /* Python callable(Event) or NULL */
    unsigned long event_mask;/* bit 1 << type for each event type delivered to `events` */
    struct RunObject *current; /* the run executing on this store (events read it), or NULL */
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

/* After a core call on the store returned `rc`: clear what a hook kept on success;
 * on failure raise the core's error (the hook's exception as its cause), or the hook's
 * exception itself when it was not an Exception (KeyboardInterrupt, SystemExit).
 * Returns NULL when it raised, else Py_None (borrowed: not to be decref'd). */
PyObject *py_aj_store_result(StoreObject *self, int rc);

PyObject *py_aj_open(PyObject *mod, PyObject *args, PyObject *kwargs);
PyObject *py_aj_borrow_sqlite(PyObject *mod, PyObject *args, PyObject *kwargs);
PyObject *py_aj_borrow_pg(PyObject *mod, PyObject *args, PyObject *kwargs);

/* --- hooks (py_aj_host.c) --------------------------------------------------------- */

extern PyTypeObject py_aj_TxBodyType;
extern PyTypeObject *py_aj_EventType;

/* The aj_host_tx table of every borrowed store (ctx: the StoreObject). */
extern const aj_host_tx py_aj_host_tx;
extern const aj_host_tx py_aj_host_tx_libpq_state; /* v4 commit_in_body and begin_in_body (psycopg 3) */
/* aj_event_fn and aj_error_doc_fn of every store (ctx: the StoreObject). */
void py_aj_event_hook(void *ctx, const aj_event *event);
int py_aj_error_hook(void *ctx, aj_run *run, int code, const char *message);
/* Keep the exception being raised (a callback's) on the store; the core's last error
 * gets `code`, or the code of an acidic_job.Error, and the exception's text. Returns
 * that code (negative). Call with the GIL held and an exception set. */
int py_aj_keep_exception(StoreObject *store, int code);
/* Create the Event type (at module init). */
int py_aj_host_init(PyObject *module);

/* --- Workflow (py_aj_workflow.c) -------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    aj_workflow *wf;
    PyObject *names;         /* tuple of the step names as str, in order */
} WorkflowObject;

extern PyTypeObject py_aj_WorkflowType;

/* The str of the step `name` (a pointer the core got from this workflow), borrowed;
 * NULL with an exception when it is not one of its steps. */
PyObject *py_aj_workflow_name(WorkflowObject *wf, const char *name);

/* --- Run (py_aj_run.c) ------------------------------------------------------------ */

typedef struct RunObject {
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
