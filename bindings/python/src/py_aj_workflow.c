/* The Workflow type (aj_workflow): an ordered list of uniquely named steps. */
#include "py_aj.h"
#include <string.h>

static void
workflow_dealloc(WorkflowObject *self)
{
    aj_workflow_free(self->wf);
    Py_CLEAR(self->names);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

PyObject *
py_aj_workflow_name(WorkflowObject *wf, const char *name)
{
    /* The core passes its own copy of the name: find it by address, then by text. */
    Py_ssize_t n = wf->names ? PyTuple_GET_SIZE(wf->names) : 0;
    for (Py_ssize_t i = 0; i < n; i++)
        if (aj_workflow_step(wf->wf, (size_t)i) == name)
            return PyTuple_GET_ITEM(wf->names, i);
    for (Py_ssize_t i = 0; i < n; i++)
        if (strcmp(aj_workflow_step(wf->wf, (size_t)i), name) == 0)
            return PyTuple_GET_ITEM(wf->names, i);
    PyErr_Format(PyExc_RuntimeError, "the core ran step \"%s\", which this workflow lacks",
                 name);
    return NULL;
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
        py_aj_raise_last(rc);
        return -1;
    }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(seq, i);
        const char *name;
        PyObject *awaits = NULL;
        if (PyUnicode_Check(item)) {
            name = py_aj_text(item, "a step name", NULL, 0);
        } else if (PyTuple_Check(item) && PyTuple_GET_SIZE(item) == 2 &&
                   PyUnicode_Check(PyTuple_GET_ITEM(item, 0))) {
            name = py_aj_text(PyTuple_GET_ITEM(item, 0), "a step name", NULL, 0);
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
                names[j] = py_aj_text(PySequence_Fast_GET_ITEM(aseq, j),
                                      "an awaited job name", NULL, 0);
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
            py_aj_raise_last(rc);
            goto fail;
        }
    }
    Py_DECREF(seq);
    PyObject *names = PyTuple_New((Py_ssize_t)aj_workflow_count(wf));
    if (names == NULL)
        goto fail_wf;
    for (size_t i = 0; i < aj_workflow_count(wf); i++) {
        PyObject *s = PyUnicode_FromString(aj_workflow_step(wf, i));
        if (s == NULL) {
            Py_DECREF(names);
            goto fail_wf;
        }
        PyUnicode_InternInPlace(&s);
        PyTuple_SET_ITEM(names, (Py_ssize_t)i, s);
    }
    self->wf = wf;
    self->names = names;
    return 0;
fail_wf:
    aj_workflow_free(wf);
    return -1;
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

PyTypeObject py_aj_WorkflowType = {
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
