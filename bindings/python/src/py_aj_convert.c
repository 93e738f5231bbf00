/* Conversions between Python and the core: core error codes to the exception classes
 * of acidic_job.errors, Python values to core values and back (see py_aj.h). */
#include "py_aj.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* code (int) -> exception class, and the function making error documents, both given
 * by acidic_job.errors via _register_errors. */
static PyObject *error_classes = NULL;
static PyObject *error_document = NULL;

PyObject *
py_aj_error_base(void)
{
    return error_classes ? PyDict_GetItemString(error_classes, "default") : NULL;
}

PyObject *
py_aj_error_document(void)
{
    return error_document;
}

PyObject *
py_aj_error_class(int code)
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
PyObject *
py_aj_raise(int code, const char *message)
{
    PyObject *cls = py_aj_error_class(code);
    if (cls == NULL)
        return NULL;
    PyObject *exc = PyObject_CallFunction(cls, "sis", message, code, aj_code_name(code));
    if (exc == NULL)
        return NULL;
    PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
    Py_DECREF(exc);
    return NULL;
}

PyObject *
py_aj_raisef(int code, const char *fmt, ...)
{
    char message[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    return py_aj_raise(code, message);
}

/* Raise the core's last error for this thread (after a call returned `rc`). */
PyObject *
py_aj_raise_last(int rc)
{
    const aj_error *err = aj_error_last();
    int code = err->code != AJ_OK ? err->code : rc;
    const char *msg = err->code != AJ_OK ? err->message : aj_code_name(rc);
    return py_aj_raise(code, msg);
}

PyObject *
py_aj_register_errors(PyObject *mod, PyObject *args)
{
    PyObject *mapping, *document;
    if (!PyArg_ParseTuple(args, "O!O:_register_errors", &PyDict_Type, &mapping, &document))
        return NULL;
    if (!PyCallable_Check(document)) {
        PyErr_SetString(PyExc_TypeError, "expected error_document(code, message) -> str");
        return NULL;
    }
    Py_INCREF(mapping);
    Py_XSETREF(error_classes, mapping);
    Py_INCREF(document);
    Py_XSETREF(error_document, document);
    Py_RETURN_NONE;
}

/* The UTF-8 of a str; a lone surrogate (which UTF-8 cannot hold) is InvalidArgument,
 * not a bare UnicodeEncodeError. */
static const char *
utf8_of(PyObject *o, const char *what, Py_ssize_t *len)
{
    const char *s = PyUnicode_AsUTF8AndSize(o, len);
    if (s != NULL || !PyErr_ExceptionMatches(PyExc_UnicodeEncodeError))
        return s;
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    Py_ssize_t at = -1;
    if (value == NULL || PyUnicodeEncodeError_GetStart(value, &at) < 0)
        PyErr_Clear();
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
    py_aj_raisef(AJ_EINVALID, "%s contains a lone surrogate (at index %zd), which UTF-8 "
                 "cannot encode: pass valid Unicode text", what, at);
    return NULL;
}

const char *
py_aj_text(PyObject *o, const char *what, Py_ssize_t *len, int nul_ok)
{
    if (!PyUnicode_Check(o)) {
        PyErr_Format(PyExc_TypeError, "%s must be a str, got %.200s", what,
                     Py_TYPE(o)->tp_name);
        return NULL;
    }
    Py_ssize_t n;
    const char *s = utf8_of(o, what, &n);
    if (s == NULL)
        return NULL;
    if (!nul_ok && memchr(s, 0, (size_t)n) != NULL) {
        py_aj_raisef(AJ_EINVALID, "%s contains a NUL byte", what);
        return NULL;
    }
    if (len != NULL)
        *len = n;
    return s;
}

int
py_aj_int64(PyObject *o, const char *what, long long *out)
{
    *out = PyLong_AsLongLong(o);
    if (*out != -1 || !PyErr_Occurred())
        return 0;
    if (PyErr_ExceptionMatches(PyExc_OverflowError)) {
        PyErr_Clear();
        py_aj_raisef(AJ_EINVALID, "%s does not fit in 64 bits", what);
    }
    return -1;
}

/* Convert a Python parameter to an aj_value. Text points into the object (kept alive
 * by the caller's params sequence). */
int
py_aj_to_value(PyObject *o, aj_value *v, Py_ssize_t index)
{
    memset(v, 0, sizeof *v);
    char what[48];
    snprintf(what, sizeof what, "parameter %zd", index);
    if (o == Py_None) {
        v->type = AJ_NULL;
    } else if (PyBool_Check(o) || PyLong_Check(o)) {
        long long i;
        if (py_aj_int64(o, what, &i) < 0)
            return -1;
        v->type = AJ_INT;
        v->integer = i;
    } else if (PyUnicode_Check(o)) {
        Py_ssize_t len;
        const char *s = utf8_of(o, what, &len);
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

PyObject *
py_aj_from_value(const aj_value *v)
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

int
py_aj_doc_arg(PyObject *o, const char *what, const char **s, Py_ssize_t *len)
{
    if (o == Py_None) {
        *s = NULL;
        *len = 0;
        return 0;
    }
    if (PyUnicode_Check(o)) {
        *s = utf8_of(o, what, len);
        if (*s == NULL)
            return -1;
    } else if (PyBytes_Check(o)) {
        *s = PyBytes_AS_STRING(o);
        *len = PyBytes_GET_SIZE(o);
    } else {
        PyErr_Format(PyExc_TypeError, "%s must be str, bytes or None, got %.200s", what,
                     Py_TYPE(o)->tp_name);
        return -1;
    }
    if (memchr(*s, 0, (size_t)*len) != NULL) {
        py_aj_raisef(AJ_EINVALID, "%s contains a NUL byte", what);
        return -1;
    }
    return 0;
}

PyObject *
py_aj_opt_text(const char *s, size_t len)
{
    if (s == NULL)
        Py_RETURN_NONE;
    return PyUnicode_DecodeUTF8(s, (Py_ssize_t)len, "replace");
}

