/*
 * compat.h -- the public CPython API gevent_c uses that not every supported
 * version (3.10-3.13) has, defined here for the versions without it, in
 * terms of public API those versions do have.  The rest of src/ calls the
 * newest form only.
 */
#ifndef GEVC_COMPAT_H
#define GEVC_COMPAT_H

#include <Python.h>
#include <string.h>

#if PY_VERSION_HEX < 0x030B0000
/* PyType_GetName (3.11): the type's __name__ as a new str reference. */
static inline PyObject *
PyType_GetName(PyTypeObject *tp)
{
    if (tp->tp_flags & Py_TPFLAGS_HEAPTYPE)
        return Py_NewRef(((PyHeapTypeObject *)tp)->ht_name);
    const char *dot = strrchr(tp->tp_name, '.');
    return PyUnicode_FromString(dot != NULL ? dot + 1 : tp->tp_name);
}
#endif

#if PY_VERSION_HEX < 0x030C0000
/* PyErr_GetRaisedException (3.12): take the pending exception, as one
 * normalised instance with its traceback attached; NULL if none. */
static inline PyObject *
PyErr_GetRaisedException(void)
{
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    if (type == NULL)
        return NULL;
    PyErr_NormalizeException(&type, &value, &tb);
    if (value == NULL) {   /* not after a normalisation; keep an instance anyway */
        value = PyObject_CallNoArgs(PyExc_SystemError);
        if (value == NULL) {
            Py_XDECREF(tb);
            PyErr_Fetch(&type, &value, &tb);   /* whatever that call raised */
            PyErr_NormalizeException(&type, &value, &tb);
        }
    }
    if (tb != NULL && value != NULL)
        PyException_SetTraceback(value, tb);
    Py_XDECREF(type);
    Py_XDECREF(tb);
    return value;
}

/* PyErr_SetRaisedException (3.12): make `exc` (stolen) the pending
 * exception; NULL clears it. */
static inline void
PyErr_SetRaisedException(PyObject *exc)
{
    if (exc == NULL) {
        PyErr_Clear();
        return;
    }
    PyErr_Restore(Py_NewRef((PyObject *)Py_TYPE(exc)), exc, PyException_GetTraceback(exc));
}
#endif

#if PY_VERSION_HEX < 0x030D0000
/* PyObject_GetOptionalAttr and Py_IsFinalizing (3.13) have no public
 * equivalent before 3.13 with the same cost and conditions: the lookup
 * runs on every hub switch (a missing attribute must not build an
 * AttributeError each time), and the finalization check runs without the
 * GIL.  Before 3.13 they are the same functions under a private name. */
#define PyObject_GetOptionalAttr(obj, name, result) _PyObject_LookupAttr(obj, name, result)
#define Py_IsFinalizing() _Py_IsFinalizing()
#endif

#endif /* GEVC_COMPAT_H */
