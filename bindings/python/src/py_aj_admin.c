/* Operator operations (aj_admin_*) as module functions over a Store: list, show, stats,
 * retry, reset, unlock, discard, bulk, prune, and the error-document reader.
 *
 * Results come back as plain dicts and lists of str, int and None (times as microseconds
 * since 1970, None for none; states and step states by name): acidic_job.admin turns
 * them into its dataclasses. Every core result is freed here, before returning.
 *
 * Progress callbacks (bulk, prune) run with the GIL re-taken; an exception they raise,
 * and a signal that arrived meanwhile (Ctrl-C), stops the core's walk after the current
 * transaction (the callback returns 1) and is raised once the core call has returned. */
#include "py_aj.h"

#include <string.h>

/* --- conversions ------------------------------------------------------------------ */

static PyObject *
opt_str(const char *s)
{
    if (s == NULL)
        Py_RETURN_NONE;
    return PyUnicode_DecodeUTF8(s, (Py_ssize_t)strlen(s), "replace");
}

/* A time or an id the core reports as 0 for none. */
static PyObject *
opt_int(int64_t v)
{
    if (v == 0)
        Py_RETURN_NONE;
    return PyLong_FromLongLong((long long)v);
}

static PyObject *
run_dict(const aj_admin_run *r)
{
    if (r == NULL)
        Py_RETURN_NONE;
    return Py_BuildValue(
        "{s:L,s:N,s:N,s:N,s:N,s:i,s:N,s:N,s:N,s:N,s:N,s:N,s:N,s:N,s:N,s:N}",
        "id", (long long)r->id, "key", opt_str(r->key), "job_name", opt_str(r->job_name),
        "state", opt_str(aj_admin_state_name(r->state)),
        "recovery_point", opt_str(r->recovery_point), "attempts", r->attempts,
        "locked_at", opt_int(r->locked_at_us), "locked_by", opt_str(r->locked_by),
        "error_class", opt_str(r->error_class), "error_message", opt_str(r->error_message),
        "updated_at", opt_int(r->updated_at_us), "created_at", opt_int(r->created_at_us),
        "last_run_at", opt_int(r->last_run_at_us), "recover_at", opt_int(r->recover_at_us),
        "dead_at", opt_int(r->dead_at_us), "awaiting_batch_id", opt_int(r->awaiting_batch_id));
}

static PyObject *
staged_dict(const aj_admin_staged *s)
{
    if (s == NULL)
        Py_RETURN_NONE;
    return Py_BuildValue("{s:L,s:N,s:N,s:N,s:N,s:N,s:N,s:N}", "id", (long long)s->id,
                         "adapter", opt_str(s->adapter), "job_name", opt_str(s->job_name),
                         "payload", py_aj_opt_text(s->payload, s->payload_len),
                         "run_id", opt_int(s->run_id), "batch_id", opt_int(s->batch_id),
                         "created_at", opt_int(s->created_at_us),
                         "delivered_at", opt_int(s->delivered_at_us));
}

static PyObject *
batch_dict(const aj_admin_batch *b)
{
    if (b == NULL)
        Py_RETURN_NONE;
    return Py_BuildValue("{s:L,s:L,s:N,s:L,s:N,s:N,s:N,s:N}", "id", (long long)b->id,
                         "run_id", (long long)b->run_id, "step", opt_str(b->step),
                         "remaining", (long long)b->remaining,
                         "continuation_adapter", opt_str(b->continuation_adapter),
                         "continuation_job_name", opt_str(b->continuation_job_name),
                         "created_at", opt_int(b->created_at_us),
                         "updated_at", opt_int(b->updated_at_us));
}

static PyObject *
str_list(const char *const *items, size_t n)
{
    PyObject *list = PyList_New((Py_ssize_t)n);
    for (size_t i = 0; list != NULL && i < n; i++) {
        PyObject *s = opt_str(items[i]);
        if (s == NULL)
            Py_CLEAR(list);
        else
            PyList_SET_ITEM(list, (Py_ssize_t)i, s);
    }
    return list;
}

static PyObject *
error_dict(const aj_admin_error *e)
{
    if (e == NULL)
        Py_RETURN_NONE;
    return Py_BuildValue("{s:N,s:N,s:N,s:N,s:N}", "format", opt_str(e->format),
                         "class_name", opt_str(e->class_name), "message", opt_str(e->message),
                         "summary", opt_str(e->summary),
                         "backtrace", str_list(e->backtrace, e->backtrace_count));
}

static const char *
step_state_name(int state)
{
    switch (state) {
    case AJ_ADMIN_STEP_DONE: return "done";
    case AJ_ADMIN_STEP_CURRENT: return "current";
    default: return "pending";
    }
}

/* A list of what `item` makes of each of the n entries of `array`. */
#define LIST_OF(array, n, item)                                                     \
    ({                                                                              \
        PyObject *list_ = PyList_New((Py_ssize_t)(n));                              \
        for (size_t i_ = 0; list_ != NULL && i_ < (n); i_++) {                      \
            PyObject *o_ = item((array)[i_]);                                       \
            if (o_ == NULL)                                                         \
                Py_CLEAR(list_);                                                    \
            else                                                                    \
                PyList_SET_ITEM(list_, (Py_ssize_t)i_, o_);                         \
        }                                                                           \
        list_;                                                                      \
    })

static PyObject *
step_dict(const aj_admin_step *s)
{
    return Py_BuildValue("{s:N,s:s,s:N}", "name", opt_str(s->name),
                         "state", step_state_name(s->state),
                         "awaits", str_list(s->awaits, s->n_awaits));
}

static PyObject *
detail_dict(const aj_admin_detail *d)
{
    PyObject *resume;
    if (d->resume_adapter == NULL) {
        resume = Py_NewRef(Py_None);
    } else {
        resume = Py_BuildValue("{s:N,s:N,s:N}", "adapter", opt_str(d->resume_adapter),
                               "job_name", opt_str(d->resume_job_name),
                               "payload", py_aj_opt_text(d->resume_payload,
                                                         d->resume_payload_len));
    }
    return Py_BuildValue(
        "{s:N,s:N,s:N,s:N,s:N,s:N,s:N,s:N,s:N,s:N}", "run", run_dict(d->run),
        "job_args", py_aj_opt_text(d->job_args, d->job_args_len),
        "attributes", py_aj_opt_text(d->attributes, d->attributes_len),
        "workflow", py_aj_opt_text(d->workflow, d->workflow_len),
        "steps", LIST_OF(d->steps, d->n_steps, step_dict),
        "error_document", py_aj_opt_text(d->error_document, d->error_document_len),
        "error", error_dict(d->error),
        "staged", LIST_OF(d->staged, d->n_staged, staged_dict),
        "batch", batch_dict(d->batch), "resume", resume);
}

static PyObject *
count_tuple(const aj_admin_count *c)
{
    return Py_BuildValue("(NNn)", opt_str(c->job_name), opt_str(aj_admin_state_name(c->state)),
                         (Py_ssize_t)c->count);
}

static PyObject *
stats_dict(const aj_admin_stats *s)
{
    return Py_BuildValue("{s:n,s:N,s:N,s:N,s:n,s:N,s:n,s:N}", "total", (Py_ssize_t)s->total,
                         "states", LIST_OF(s->states, s->n_states, count_tuple),
                         "jobs", LIST_OF(s->jobs, s->n_jobs, count_tuple),
                         "oldest_stranded", run_dict(s->oldest_stranded),
                         "staged_backlog", (Py_ssize_t)s->staged_backlog,
                         "oldest_staged", staged_dict(s->oldest_staged),
                         "open_batches", (Py_ssize_t)s->open_batches,
                         "oldest_batch", batch_dict(s->oldest_batch));
}

/* --- arguments -------------------------------------------------------------------- */

static StoreObject *
store_arg(PyObject *o)
{
    if (!PyObject_TypeCheck(o, &py_aj_StoreType)) {
        PyErr_Format(PyExc_TypeError, "expected an acidic_job._native.Store, got %.200s",
                     Py_TYPE(o)->tp_name);
        return NULL;
    }
    return (StoreObject *)o;
}

/* None: NULL; a str without NUL: its UTF-8 (owned by `o`). Returns -1 on error. */
static int
opt_text_arg(PyObject *o, const char *what, const char **out)
{
    *out = NULL;
    if (o == NULL || o == Py_None)
        return 0;
    *out = py_aj_text(o, what, NULL, 0);
    return *out == NULL ? -1 : 0;
}

/* The filter keywords every listing, bulk and prune call takes (aj_admin_filter). */
#define FILTER_KWLIST "states", "job_name", "key_prefix", "updated_before_us", \
                      "updated_since_us", "after_id", "descending", "limit"
#define FILTER_FORMAT "IOOLLLpn"

typedef struct {
    unsigned int states;
    PyObject *job_name, *key_prefix;
    long long updated_before_us, updated_since_us, after_id;
    int descending;
    Py_ssize_t limit;
} filter_args;

#define FILTER_ARGS(a) &(a).states, &(a).job_name, &(a).key_prefix, &(a).updated_before_us, \
                       &(a).updated_since_us, &(a).after_id, &(a).descending, &(a).limit

static int
to_filter(const filter_args *a, aj_admin_filter *f)
{
    aj_admin_filter init = AJ_ADMIN_FILTER_INIT;
    *f = init;
    if (a->limit < 0) {
        PyErr_SetString(PyExc_ValueError, "limit must be >= 0 (0: the core's default)");
        return -1;
    }
    if (opt_text_arg(a->job_name, "job_name", &f->job_name) < 0 ||
        opt_text_arg(a->key_prefix, "key_prefix", &f->key_prefix) < 0)
        return -1;
    f->states = a->states;
    f->updated_before_us = a->updated_before_us;
    f->updated_since_us = a->updated_since_us;
    f->after_id = a->after_id;
    f->descending = a->descending;
    f->limit = (size_t)a->limit;
    return 0;
}

/* After a core call on `store` returned rc: -1 with its error raised (what a host
 * transaction hook raised as its cause), 0 on success (py_aj_store_result). */
static int
admin_result(StoreObject *store, int rc)
{
    return py_aj_store_result(store, rc) == NULL ? -1 : 0;
}

/* --- progress ---------------------------------------------------------------------- */

typedef struct {
    PyObject *fn;                           /* callable(done, total), or NULL */
    PyObject *exc_type, *exc_value, *exc_tb; /* what stopped the walk, or NULL */
} progress_ctx;

static int
progress_trampoline(void *ctx, size_t done, size_t total)
{
    progress_ctx *p = ctx;
    int stop = 0;
    PyGILState_STATE g = PyGILState_Ensure();
    if (p->exc_type != NULL) {
        stop = 1;
    } else {
        if (p->fn != NULL) {
            PyObject *r = PyObject_CallFunction(p->fn, "nn", (Py_ssize_t)done, (Py_ssize_t)total);
            if (r == NULL)
                stop = 1;
            Py_XDECREF(r);
        }
        if (!stop && PyErr_CheckSignals() < 0)
            stop = 1;
        if (stop)
            PyErr_Fetch(&p->exc_type, &p->exc_value, &p->exc_tb);
    }
    PyGILState_Release(g);
    return stop;
}

/* Raise what stopped the walk (p->exc_type is set). */
static void
progress_raise(progress_ctx *p)
{
    PyErr_Restore(p->exc_type, p->exc_value, p->exc_tb);
    p->exc_type = p->exc_value = p->exc_tb = NULL;
}

/* --- the calls ---------------------------------------------------------------------- */

static PyObject *
admin_list(PyObject *mod, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"store", FILTER_KWLIST, NULL};
    PyObject *store_obj;
    filter_args fa = {0};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|$" FILTER_FORMAT ":admin_list", kwlist,
                                     &store_obj, FILTER_ARGS(fa)))
        return NULL;
    StoreObject *store = store_arg(store_obj);
    aj_admin_filter f;
    if (store == NULL || to_filter(&fa, &f) < 0 || py_aj_store_enter(store) < 0)
        return NULL;
    aj_admin_page *page = NULL;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = aj_admin_list(store->store, &f, &page);
    Py_END_ALLOW_THREADS
    py_aj_store_leave(store);
    if (admin_result(store, rc) < 0)
        return NULL;
    PyObject *result = Py_BuildValue("(NN)", LIST_OF(page->runs, page->count, run_dict),
                                     opt_int(page->next_cursor));
    aj_admin_page_free(page);
    return result;
}

/* The (key, run_id) every single-run call takes: a key (str or None) and an id (0: by
 * key). */
static int
run_ref(PyObject *key_obj, long long run_id, const char **key)
{
    if (opt_text_arg(key_obj, "the key", key) < 0)
        return -1;
    if (*key == NULL && run_id <= 0) {
        py_aj_raise(AJ_EINVALID, "name the run by its key or its id");
        return -1;
    }
    return 0;
}

static PyObject *
admin_show(PyObject *mod, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"store", "key", "run_id", NULL};
    PyObject *store_obj, *key_obj = Py_None;
    long long run_id = 0;
    const char *key;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|OL:admin_show", kwlist, &store_obj,
                                     &key_obj, &run_id))
        return NULL;
    StoreObject *store = store_arg(store_obj);
    if (store == NULL || run_ref(key_obj, run_id, &key) < 0 || py_aj_store_enter(store) < 0)
        return NULL;
    aj_admin_detail *detail = NULL;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = aj_admin_show(store->store, key, (int64_t)run_id, &detail);
    Py_END_ALLOW_THREADS
    py_aj_store_leave(store);
    if (admin_result(store, rc) < 0)
        return NULL;
    PyObject *result = detail_dict(detail);
    aj_admin_detail_free(detail);
    return result;
}

/* retry, unlock and discard: (store, key, run_id, flags) -> None. */
static PyObject *
single_action(PyObject *args, PyObject *kwargs, const char *format,
              int (*fn)(aj_store *, const char *, int64_t, unsigned))
{
    static char *kwlist[] = {"store", "key", "run_id", "flags", NULL};
    PyObject *store_obj, *key_obj = Py_None;
    long long run_id = 0;
    unsigned int flags = 0;
    const char *key;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, format, kwlist, &store_obj, &key_obj,
                                     &run_id, &flags))
        return NULL;
    StoreObject *store = store_arg(store_obj);
    if (store == NULL || run_ref(key_obj, run_id, &key) < 0 || py_aj_store_enter(store) < 0)
        return NULL;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = fn(store->store, key, (int64_t)run_id, flags);
    Py_END_ALLOW_THREADS
    py_aj_store_leave(store);
    if (admin_result(store, rc) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
admin_retry(PyObject *mod, PyObject *args, PyObject *kwargs)
{
    return single_action(args, kwargs, "O|OLI:admin_retry", aj_admin_retry);
}

static PyObject *
admin_unlock(PyObject *mod, PyObject *args, PyObject *kwargs)
{
    return single_action(args, kwargs, "O|OLI:admin_unlock", aj_admin_unlock);
}

static PyObject *
admin_discard(PyObject *mod, PyObject *args, PyObject *kwargs)
{
    return single_action(args, kwargs, "O|OLI:admin_discard", aj_admin_discard);
}

static PyObject *
admin_reset(PyObject *mod, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"store", "key", "run_id", "step", "flags", NULL};
    PyObject *store_obj, *key_obj = Py_None, *step_obj;
    long long run_id = 0;
    unsigned int flags = 0;
    const char *key, *step;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOLO|I:admin_reset", kwlist, &store_obj,
                                     &key_obj, &run_id, &step_obj, &flags))
        return NULL;
    StoreObject *store = store_arg(store_obj);
    if (store == NULL || run_ref(key_obj, run_id, &key) < 0 ||
        (step = py_aj_text(step_obj, "the step", NULL, 0)) == NULL ||
        py_aj_store_enter(store) < 0)
        return NULL;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = aj_admin_reset(store->store, key, (int64_t)run_id, step, flags);
    Py_END_ALLOW_THREADS
    py_aj_store_leave(store);
    if (admin_result(store, rc) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
admin_bulk(PyObject *mod, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"store", "action", "step", "flags", "progress", FILTER_KWLIST,
                             NULL};
    PyObject *store_obj, *step_obj = Py_None, *progress = Py_None;
    int action;
    unsigned int flags = 0;
    filter_args fa = {0};
    const char *step;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "Oi|OIO$" FILTER_FORMAT ":admin_bulk",
                                     kwlist, &store_obj, &action, &step_obj, &flags, &progress,
                                     FILTER_ARGS(fa)))
        return NULL;
    StoreObject *store = store_arg(store_obj);
    aj_admin_filter f;
    if (store == NULL || to_filter(&fa, &f) < 0 ||
        opt_text_arg(step_obj, "the step", &step) < 0 || py_aj_store_enter(store) < 0)
        return NULL;
    progress_ctx p = {progress == Py_None ? NULL : progress, NULL, NULL, NULL};
    size_t changed = 0, skipped = 0;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = aj_admin_bulk(store->store, action, step, &f, flags, progress_trampoline, &p,
                       &changed, &skipped);
    Py_END_ALLOW_THREADS
    py_aj_store_leave(store);
    if (p.exc_type != NULL) {  /* what stopped the walk wins over a later failure */
        if (admin_result(store, rc) < 0)
            PyErr_Clear();
        progress_raise(&p);
        return NULL;
    }
    if (admin_result(store, rc) < 0)
        return NULL;
    return Py_BuildValue("(nn)", (Py_ssize_t)changed, (Py_ssize_t)skipped);
}

static PyObject *
admin_prune(PyObject *mod, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"store", "progress", FILTER_KWLIST, NULL};
    PyObject *store_obj, *progress = Py_None;
    filter_args fa = {0};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|O$" FILTER_FORMAT ":admin_prune", kwlist,
                                     &store_obj, &progress, FILTER_ARGS(fa)))
        return NULL;
    StoreObject *store = store_arg(store_obj);
    aj_admin_filter f;
    if (store == NULL || to_filter(&fa, &f) < 0 || py_aj_store_enter(store) < 0)
        return NULL;
    progress_ctx p = {progress == Py_None ? NULL : progress, NULL, NULL, NULL};
    size_t deleted = 0;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = aj_admin_prune(store->store, &f, progress_trampoline, &p, &deleted);
    Py_END_ALLOW_THREADS
    py_aj_store_leave(store);
    if (p.exc_type != NULL) {  /* what stopped the walk wins over a later failure */
        if (admin_result(store, rc) < 0)
            PyErr_Clear();
        progress_raise(&p);
        return NULL;
    }
    if (admin_result(store, rc) < 0)
        return NULL;
    return PyLong_FromSize_t(deleted);
}

static PyObject *
admin_stats(PyObject *mod, PyObject *arg)
{
    StoreObject *store = store_arg(arg);
    if (store == NULL || py_aj_store_enter(store) < 0)
        return NULL;
    aj_admin_stats *stats = NULL;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = aj_admin_stats_read(store->store, &stats);
    Py_END_ALLOW_THREADS
    py_aj_store_leave(store);
    if (admin_result(store, rc) < 0)
        return NULL;
    PyObject *result = stats_dict(stats);
    aj_admin_stats_free(stats);
    return result;
}

/* admin_staged_list(store, after_id, limit) -> ([staged, ...], next_cursor or None): the
 * staged backlog, oldest first (aj_admin_staged_list) */
static PyObject *
admin_staged_list(PyObject *mod, PyObject *args)
{
    PyObject *store_obj;
    long long after_id, limit;
    if (!PyArg_ParseTuple(args, "OLL:admin_staged_list", &store_obj, &after_id, &limit))
        return NULL;
    if (limit < 0) {
        PyErr_SetString(PyExc_ValueError, "limit must be >= 0");
        return NULL;
    }
    StoreObject *store = store_arg(store_obj);
    if (store == NULL || py_aj_store_enter(store) < 0)
        return NULL;
    aj_admin_staged_page *page = NULL;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = aj_admin_staged_list(store->store, (int64_t)after_id, (size_t)limit, &page);
    Py_END_ALLOW_THREADS
    py_aj_store_leave(store);
    if (admin_result(store, rc) < 0) {
        aj_admin_staged_page_free(page); /* NULL unless a hook raised after the call */
        return NULL;
    }
    PyObject *list = LIST_OF(page->staged, page->count, staged_dict);
    PyObject *result = list ? Py_BuildValue("(NN)", list, opt_int(page->next_cursor)) : NULL;
    aj_admin_staged_page_free(page);
    return result;
}

static PyObject *
admin_state_parse(PyObject *mod, PyObject *arg)
{
    const char *name = py_aj_text(arg, "the state", NULL, 0);
    if (name == NULL)
        return NULL;
    unsigned states = 0;
    int rc = aj_admin_state_parse(name, &states);
    if (rc != AJ_OK)
        return py_aj_raise_last(rc);
    return PyLong_FromUnsignedLong(states);
}

static PyObject *
admin_error_parse(PyObject *mod, PyObject *arg)
{
    const char *doc;
    Py_ssize_t len;
    if (PyUnicode_Check(arg)) {
        /* a lone surrogate is the one thing that cannot reach the core as text */
        if ((doc = py_aj_text(arg, "the error document", &len, 1)) == NULL)
            return NULL;
    } else if (PyBytes_Check(arg)) {
        doc = PyBytes_AS_STRING(arg);
        len = PyBytes_GET_SIZE(arg);
    } else {
        PyErr_Format(PyExc_TypeError, "the error document must be str or bytes, got %.200s",
                     Py_TYPE(arg)->tp_name);
        return NULL;
    }
    aj_admin_error *error = NULL;
    int rc = aj_admin_error_parse(&error, doc, (size_t)len);
    if (rc != AJ_OK)
        return py_aj_raise_last(rc);
    PyObject *result = error_dict(error);
    aj_admin_error_free(error);
    return result;
}

static PyMethodDef admin_methods[] = {
    {"admin_list", (PyCFunction)(void (*)(void))admin_list, METH_VARARGS | METH_KEYWORDS,
     "admin_list(store, **filter) -> ([run dict], next_cursor or None) (aj_admin_list)"},
    {"admin_show", (PyCFunction)(void (*)(void))admin_show, METH_VARARGS | METH_KEYWORDS,
     "admin_show(store, key=None, run_id=0) -> detail dict (aj_admin_show)"},
    {"admin_retry", (PyCFunction)(void (*)(void))admin_retry, METH_VARARGS | METH_KEYWORDS,
     "admin_retry(store, key=None, run_id=0, flags=0) (aj_admin_retry)"},
    {"admin_reset", (PyCFunction)(void (*)(void))admin_reset, METH_VARARGS | METH_KEYWORDS,
     "admin_reset(store, key, run_id, step, flags=0) (aj_admin_reset)"},
    {"admin_unlock", (PyCFunction)(void (*)(void))admin_unlock, METH_VARARGS | METH_KEYWORDS,
     "admin_unlock(store, key=None, run_id=0, flags=0) (aj_admin_unlock)"},
    {"admin_discard", (PyCFunction)(void (*)(void))admin_discard, METH_VARARGS | METH_KEYWORDS,
     "admin_discard(store, key=None, run_id=0, flags=0) (aj_admin_discard)"},
    {"admin_bulk", (PyCFunction)(void (*)(void))admin_bulk, METH_VARARGS | METH_KEYWORDS,
     "admin_bulk(store, action, step=None, flags=0, progress=None, **filter) -> "
     "(changed, skipped) (aj_admin_bulk)"},
    {"admin_prune", (PyCFunction)(void (*)(void))admin_prune, METH_VARARGS | METH_KEYWORDS,
     "admin_prune(store, progress=None, **filter) -> deleted (aj_admin_prune)"},
    {"admin_stats", admin_stats, METH_O, "admin_stats(store) -> stats dict (aj_admin_stats_read)"},
    {"admin_staged_list", admin_staged_list, METH_VARARGS,
     "admin_staged_list(store, after_id, limit) -> ([staged dict, ...], next_cursor) "
     "(aj_admin_staged_list)"},
    {"admin_state_parse", admin_state_parse, METH_O,
     "admin_state_parse(name) -> state bits (aj_admin_state_parse)"},
    {"admin_error_parse", admin_error_parse, METH_O,
     "admin_error_parse(document) -> error dict (aj_admin_error_parse)"},
    {NULL}
};

int
py_aj_admin_init(PyObject *module)
{
    if (PyModule_AddFunctions(module, admin_methods) < 0)
        return -1;
    struct { const char *name; long value; } consts[] = {
        {"ESTATE", AJ_ESTATE},
        {"ADMIN_RUNNING", AJ_ADMIN_RUNNING}, {"ADMIN_STRANDED", AJ_ADMIN_STRANDED},
        {"ADMIN_FAILED", AJ_ADMIN_FAILED}, {"ADMIN_DEAD", AJ_ADMIN_DEAD},
        {"ADMIN_AWAITING", AJ_ADMIN_AWAITING}, {"ADMIN_QUEUED", AJ_ADMIN_QUEUED},
        {"ADMIN_SUCCEEDED", AJ_ADMIN_SUCCEEDED}, {"ADMIN_DISCARDED", AJ_ADMIN_DISCARDED},
        {"ADMIN_FINISHED", AJ_ADMIN_FINISHED}, {"ADMIN_ALL_STATES", AJ_ADMIN_ALL_STATES},
        {"ADMIN_FORCE", AJ_ADMIN_FORCE}, {"ADMIN_NO_ENQUEUE", AJ_ADMIN_NO_ENQUEUE},
        {"ADMIN_RETRY", AJ_ADMIN_RETRY}, {"ADMIN_RESET", AJ_ADMIN_RESET},
        {"ADMIN_UNLOCK", AJ_ADMIN_UNLOCK}, {"ADMIN_DISCARD", AJ_ADMIN_DISCARD},
    };
    for (size_t i = 0; i < sizeof consts / sizeof consts[0]; i++)
        if (PyModule_AddIntConstant(module, consts[i].name, consts[i].value) < 0)
            return -1;
    return 0;
}
