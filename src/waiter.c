/*
 * waiter.c -- Waiter: a one-shot rendezvous between the hub (switch/throw)
 * and one greenlet (get).
 */
#include "gevent_c.h"


#define WAITER_DOC \
"Waiter(hub=None)\n\n" \
"A low level communication utility for greenlets: a one-shot rendezvous\n" \
"between the hub (which calls switch() or throw()) and one greenlet (which\n" \
"calls get()).\n\n" \
"If get() runs first, the greenlet blocks until switch()/throw() is called\n" \
"from the hub:\n\n" \
">>> from gevent_c.hub import Waiter, get_hub, sleep\n" \
">>> result = Waiter()\n" \
">>> timer = get_hub().loop.timer(0.1)\n" \
">>> timer.start(result.switch, 'hello from Waiter')\n" \
">>> result.get() # blocks for 0.1 seconds\n" \
"'hello from Waiter'\n\n" \
"If switch() is called before get(), the value is stored and get()\n" \
"returns it at once:\n\n" \
">>> result = Waiter()\n" \
">>> timer = get_hub().loop.timer(0.1)\n" \
">>> timer.start(result.switch, 'hi from Waiter')\n" \
">>> sleep(0.2)\n" \
">>> result.get() # returns immediately without blocking\n" \
"'hi from Waiter'\n\n" \
"Only the hub may switch into a waiting greenlet; a second greenlet\n" \
"calling get() while one waits gets ConcurrentObjectUseError.\n"

/* Waiter(hub): hub is None (the current thread's hub) or a Hub, as in
 * compiled gevent, whose Waiter.hub is typed (a greenlet or anything else
 * raises TypeError there: switching into it would run it, not a hub). */
static int
waiter_check_hub_arg(gevc_state *gst, PyObject *hub)
{
    if (hub == Py_None || IS_HUB(gst, hub))
        return 0;
    PyErr_Format(PyExc_TypeError, "Waiter() argument 'hub' must be %s or None, not %.200s",
                 gst->HubType->tp_name, Py_TYPE(hub)->tp_name);
    return -1;
}

static PyObject *
waiter_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"hub", NULL};
    PyObject *hub = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|O:Waiter", kwlist, &hub))
        return NULL;
    gevc_state *gst = gevc_state_by_type(type);
    if (gst == NULL || waiter_check_hub_arg(gst, hub) < 0)
        return NULL;
    WaiterObject *self = (WaiterObject *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->gst = gst;
    if (hub == Py_None) {
        self->hub = get_hub_impl(gst);
        if (self->hub == NULL) {
            Py_DECREF(self);
            return NULL;
        }
    }
    else {
        self->hub = Py_NewRef(hub);
    }
    return (PyObject *)self;
}

/* A fresh Waiter without argument parsing (hot paths). */
WaiterObject *
waiter_create(gevc_state *gst, PyObject *hub)
{
    WaiterObject *self = PyObject_GC_New(WaiterObject, gst->WaiterType);
    if (self == NULL)
        return NULL;
    self->gst = gst;
    self->hub = Py_NewRef(hub);
    self->greenlet = NULL;
    self->value = NULL;
    self->exc_info = NULL;
    self->has_result = 0;
    self->handoff = 0;
    PyObject_GC_Track(self);
    return self;
}

static int
waiter_traverse(WaiterObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->hub);
    Py_VISIT(self->greenlet);
    Py_VISIT(self->value);
    Py_VISIT(self->exc_info);
    return 0;
}

static int
waiter_tp_clear(WaiterObject *self)
{
    Py_CLEAR(self->hub);
    Py_CLEAR(self->greenlet);
    Py_CLEAR(self->value);
    Py_CLEAR(self->exc_info);
    return 0;
}

static void
waiter_dealloc(WaiterObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    waiter_tp_clear(self);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

static int
waiter_check_hub(WaiterObject *self)
{
    PyGreenlet *cur = PyGreenlet_GetCurrent();
    if (cur == NULL)
        return -1;
    int ok = (PyObject *)cur == self->hub;
    Py_DECREF(cur);
    if (!ok) {
        PyErr_SetString(PyExc_AssertionError,
                        "Can only use Waiter.switch method from the Hub greenlet");
        return -1;
    }
    return 0;
}

/* Report an error that came back from switching into the waiter's greenlet
 * through hub.handle_error(<greenlet's bound `meth`>, *exc_info). */
static PyObject *
waiter_report(WaiterObject *self, PyObject *greenlet, const char *meth)
{
    PyObject *v = PyErr_GetRaisedException();
    PyObject *t = v ? Py_NewRef((PyObject *)Py_TYPE(v)) : NULL;
    PyObject *tb = v ? PyException_GetTraceback(v) : NULL;
    PyObject *ctx = PyObject_GetAttrString(greenlet, meth);
    if (ctx == NULL) {
        PyErr_Clear();
        ctx = Py_NewRef(Py_None);
    }
    PyObject *res = PyObject_CallMethod(self->hub, "handle_error", "OOOO", ctx,
                                        t ? t : Py_None, v ? v : Py_None,
                                        tb ? tb : Py_None);
    Py_DECREF(ctx);
    Py_XDECREF(t); Py_XDECREF(v); Py_XDECREF(tb);
    if (res == NULL)
        return NULL;
    Py_DECREF(res);
    Py_RETURN_NONE;
}

/* switch(value): store it, or switch into the waiting greenlet. */
PyObject *
waiter_switch_impl(PyObject *op, PyObject *value)
{
    WaiterObject *self = (WaiterObject *)op;
    if (self->greenlet == NULL) {
        Py_XSETREF(self->value, Py_NewRef(value));
        Py_CLEAR(self->exc_info);
        self->has_result = 1;
        Py_RETURN_NONE;
    }
    if (waiter_check_hub(self) < 0)
        return NULL;
    PyObject *greenlet = Py_NewRef(self->greenlet);
    /* the waiting get() takes the value from the waiter: no argument tuple
     * per wake-up (get() returns what the switch returned otherwise) */
    Py_XSETREF(self->value, Py_NewRef(value));
    self->handoff = 1;
    PyObject *res = PyGreenlet_Switch((PyGreenlet *)greenlet, NULL, NULL);
    if (self->handoff) {       /* the switch failed before get() took it */
        self->handoff = 0;
        Py_CLEAR(self->value);
    }
    if (res == NULL) {
        res = waiter_report(self, greenlet, "switch");
    }
    else {
        Py_DECREF(res);
        res = Py_NewRef(Py_None);
    }
    Py_DECREF(greenlet);
    return res;
}

static PyObject *
waiter_switch(WaiterObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs > 1) {
        PyErr_Format(PyExc_TypeError, "switch() takes at most 1 argument (%zd given)", nargs);
        return NULL;
    }
    return waiter_switch_impl((PyObject *)self, nargs ? args[0] : Py_None);
}

static PyObject *
waiter_switch_args(WaiterObject *self, PyObject *args)
{
    return waiter_switch_impl((PyObject *)self, args);
}

/* Split throw() arguments the way greenlet.throw takes them. */
static int
split_throw_args(PyObject *args, PyObject **t, PyObject **v, PyObject **tb)
{
    Py_ssize_t n = PyTuple_GET_SIZE(args);
    *t = n > 0 ? PyTuple_GET_ITEM(args, 0) : PyExc_GreenletExit;
    *v = n > 1 ? PyTuple_GET_ITEM(args, 1) : NULL;
    *tb = n > 2 ? PyTuple_GET_ITEM(args, 2) : NULL;
    if (n > 3) {
        PyErr_SetString(PyExc_TypeError, "throw() takes at most 3 arguments");
        return -1;
    }
    return 0;
}

static PyObject *
waiter_throw(WaiterObject *self, PyObject *args)
{
    if (self->greenlet == NULL) {
        Py_XSETREF(self->exc_info, Py_NewRef(args));
        Py_CLEAR(self->value);
        self->has_result = 1;
        Py_RETURN_NONE;
    }
    if (waiter_check_hub(self) < 0)
        return NULL;
    PyObject *t, *v, *tb;
    if (split_throw_args(args, &t, &v, &tb) < 0)
        return NULL;
    PyObject *greenlet = Py_NewRef(self->greenlet);
    PyObject *res = PyGreenlet_Throw((PyGreenlet *)greenlet, t, v, tb);
    if (res == NULL) {
        res = waiter_report(self, greenlet, "throw");
    }
    else {
        Py_DECREF(res);
        res = Py_NewRef(Py_None);
    }
    Py_DECREF(greenlet);
    return res;
}

/* Raise the stored exception in the current greenlet. */
static PyObject *
waiter_raise_stored(WaiterObject *self)
{
    PyObject *t, *v, *tb;
    PyObject *info = Py_NewRef(self->exc_info);
    PyObject *res = NULL;
    if (split_throw_args(info, &t, &v, &tb) == 0) {
        PyGreenlet *cur = PyGreenlet_GetCurrent();
        if (cur) {
            res = PyGreenlet_Throw(cur, t, v, tb);
            Py_DECREF(cur);
        }
    }
    Py_DECREF(info);
    return res;
}

PyObject *
waiter_get_impl(WaiterObject *self)
{
    if (self->has_result) {
        if (self->exc_info)
            return waiter_raise_stored(self);
        return Py_NewRef(self->value ? self->value : Py_None);
    }
    if (self->greenlet != NULL) {
        PyObject *msg = PyUnicode_FromFormat("This Waiter is already used by %R",
                                             self->greenlet);
        if (msg) {
            PyErr_SetObject(self->gst->ConcurrentObjectUseError, msg);
            Py_DECREF(msg);
        }
        return NULL;
    }
    PyGreenlet *cur = PyGreenlet_GetCurrent();
    if (cur == NULL)
        return NULL;
    self->greenlet = (PyObject *)cur;  /* owns the reference */
    Py_INCREF(self);
    PyObject *res = hub_switch_impl(self->gst, self->hub);
    if (self->handoff) {
        self->handoff = 0;
        Py_XDECREF(res);
        res = self->value;         /* takes the reference */
        self->value = NULL;
    }
    Py_CLEAR(self->greenlet);
    Py_DECREF(self);
    return res;
}

static PyObject *
waiter_get(WaiterObject *self, PyObject *Py_UNUSED(ignored))
{
    return waiter_get_impl(self);
}

static PyObject *
waiter_ready(WaiterObject *self, PyObject *Py_UNUSED(ignored))
{
    return PyBool_FromLong(self->has_result);
}

static PyObject *
waiter_successful(WaiterObject *self, PyObject *Py_UNUSED(ignored))
{
    return PyBool_FromLong(self->has_result && self->exc_info == NULL);
}

static PyObject *
waiter_clear(WaiterObject *self, PyObject *Py_UNUSED(ignored))
{
    Py_CLEAR(self->greenlet);
    Py_CLEAR(self->value);
    Py_CLEAR(self->exc_info);
    self->has_result = 0;
    self->handoff = 0;
    Py_RETURN_NONE;
}

/* __call__(source): the link protocol */
static PyObject *
waiter_call(WaiterObject *self, PyObject *args, PyObject *kwds)
{
    PyObject *source;
    if (!PyArg_UnpackTuple(args, "Waiter", 1, 1, &source))
        return NULL;
    if (kwds && PyDict_GET_SIZE(kwds)) {
        PyErr_SetString(PyExc_TypeError, "Waiter() takes no keyword arguments");
        return NULL;
    }
    PyObject *exc = PyObject_GetAttrString(source, "exception");
    if (exc == NULL)
        return NULL;
    PyObject *res;
    if (exc == Py_None) {
        PyObject *value = PyObject_GetAttrString(source, "value");
        res = value ? waiter_switch_impl((PyObject *)self, value) : NULL;
        Py_XDECREF(value);
    }
    else {
        PyObject *targs = PyTuple_Pack(1, exc);
        res = targs ? waiter_throw(self, targs) : NULL;
        Py_XDECREF(targs);
    }
    Py_DECREF(exc);
    return res;
}

static PyObject *
waiter_str(WaiterObject *self)
{
    PyObject *name = PyType_GetName(Py_TYPE(self));
    if (name == NULL)
        return NULL;
    PyObject *g = self->greenlet ? self->greenlet : Py_None;
    PyObject *r;
    if (self->has_result && self->exc_info)
        r = PyUnicode_FromFormat("<%U greenlet=%S exc_info=%R>", name, g, self->exc_info);
    else if (self->has_result)
        r = PyUnicode_FromFormat("<%U greenlet=%S value=%R>", name, g,
                                 self->value ? self->value : Py_None);
    else
        r = PyUnicode_FromFormat("<%U greenlet=%S>", name, g);
    Py_DECREF(name);
    return r;
}

static PyObject *
waiter_get_value(WaiterObject *self, void *c)
{
    return Py_NewRef(self->value ? self->value : Py_None);
}

static PyObject *
waiter_get_exc_info(WaiterObject *self, void *c)
{
    return Py_NewRef(self->exc_info ? self->exc_info : Py_None);
}

static PyObject *
waiter_get_greenlet(WaiterObject *self, void *c)
{
    return Py_NewRef(self->greenlet ? self->greenlet : Py_None);
}

static PyObject *
waiter_get_hub(WaiterObject *self, void *c)
{
    return Py_NewRef(self->hub ? self->hub : Py_None);
}

static PyMethodDef waiter_methods[] = {
    {"switch", (PyCFunction)(void (*)(void))waiter_switch, METH_FASTCALL,
     "switch(value=None): wake the waiting greenlet with value, or store it."},
    {"switch_args", (PyCFunction)waiter_switch_args, METH_VARARGS,
     "switch_args(*args): same as switch(args)."},
    {"throw", (PyCFunction)waiter_throw, METH_VARARGS,
     "throw(*args): raise in the waiting greenlet, or store the exception."},
    {"get", (PyCFunction)waiter_get, METH_NOARGS,
     "Return the stored value (or raise the stored exception), or block until "
     "switch()/throw() is called."},
    {"ready", (PyCFunction)waiter_ready, METH_NOARGS, NULL},
    {"successful", (PyCFunction)waiter_successful, METH_NOARGS, NULL},
    {"clear", (PyCFunction)waiter_clear, METH_NOARGS, NULL},
    {NULL}
};

static PyGetSetDef waiter_getset[] = {
    {"hub", (getter)waiter_get_hub, NULL, NULL},
    {"greenlet", (getter)waiter_get_greenlet, NULL, NULL},
    {"value", (getter)waiter_get_value, NULL, NULL},
    {"exc_info", (getter)waiter_get_exc_info, NULL, NULL},
    {NULL}
};

/* Waiter(hub=None) without building an argument tuple */
PyObject *
waiter_vectorcall(PyObject *type, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    PyObject *hub = nargs > 0 ? args[0] : Py_None;
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    if (nargs > 1 || nargs + nkw > 1
            || (nkw == 1 && PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(kwnames, 0), "hub"))) {
        PyErr_SetString(PyExc_TypeError, "Waiter() takes at most 1 argument (hub)");
        return NULL;
    }
    if (nkw == 1)
        hub = args[0];
    gevc_state *gst = gevc_state_by_type((PyTypeObject *)type);
    if (gst == NULL || waiter_check_hub_arg(gst, hub) < 0)
        return NULL;
    if (hub == Py_None) {
        hub = get_hub_impl(gst);
        if (hub == NULL)
            return NULL;
        PyObject *w = (PyObject *)waiter_create(gst, hub);
        Py_DECREF(hub);
        return w;
    }
    return (PyObject *)waiter_create(gst, hub);
}

/* Is cb a bound Waiter.switch?  Then callers may call waiter_switch_impl
 * directly instead of going through the bound method. */
static inline int
is_waiter_switch(PyObject *cb)
{
    return PyCFunction_CheckExact(cb) && ((PyCFunctionObject *)cb)->m_ml == &waiter_methods[0];
}

/* callback(*args) with the bound-Waiter.switch shortcut */
PyObject *
call_callback(PyObject *callback, PyObject *args)
{
    Py_ssize_t n = args ? PyTuple_GET_SIZE(args) : 0;
    if (n <= 1 && is_waiter_switch(callback))
        return waiter_switch_impl(PyCFunction_GET_SELF(callback),
                                  n ? PyTuple_GET_ITEM(args, 0) : Py_None);
    return args ? PyObject_Call(callback, args, NULL) : PyObject_CallNoArgs(callback);
}

/* waiter.switch as a bound method, without an attribute lookup */
PyObject *
waiter_bound_switch(WaiterObject *self)
{
    return PyCMethod_New(&waiter_methods[0], (PyObject *)self, NULL, NULL);
}

/* Calls of the type itself take waiter_vectorcall, set on the type in the
 * module's exec (Py_tp_vectorcall is a slot only from 3.14). */
static PyType_Slot waiter_slots[] = {
    {Py_tp_doc, WAITER_DOC},
    {Py_tp_new, waiter_new},
    {Py_tp_dealloc, waiter_dealloc},
    {Py_tp_traverse, waiter_traverse},
    {Py_tp_clear, waiter_tp_clear},
    {Py_tp_call, waiter_call},
    {Py_tp_str, waiter_str},
    {Py_tp_repr, waiter_str},
    {Py_tp_methods, waiter_methods},
    {Py_tp_getset, waiter_getset},
    {0, NULL}
};

PyType_Spec waiter_spec = {
    .name = "gevent_c.hub.Waiter",
    .basicsize = sizeof(WaiterObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE
             | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = waiter_slots,
};
