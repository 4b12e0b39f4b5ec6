/*
 * _hub.c -- module gevent_c._hub: the Hub greenlet, get_hub and friends,
 * and the hot paths sleep/spawn_raw/wait.
 *
 * Unity build: this file #includes the other .c files of src/, so the
 * whole extension is one translation unit (greenlet's C API table is a
 * static in greenlet.h and is imported once, below).
 */
#include "gevent_c.h"

static PyTypeObject *HubType = NULL;         /* heap type, base set at run time */
static PyObject *threadlocal = NULL;         /* gevent_c._hub_local._threadlocal */
static PyObject *config_import = NULL;       /* gevent_c._config._import */
static PyObject *LoopExit, *BlockingSwitchOutError, *InvalidSwitchError, *HubDestroyed;
static PyObject *str_tls_hub, *str_tls_guard, *str_tls_loop, *str_switch_out, *str_hub, *str_Hub, *str_loop, *str_run, *str___self__, *str_kill;

#include "loop_uv.c"
#include "watcher.c"
#include "timer.c"
#include "io.c"
#include "signal.c"
#include "misc_watchers.c"
#include "stat.c"
#include "waiter.c"

#define IS_HUB(o) (HubType != NULL && PyObject_TypeCheck((o), HubType))
#define IS_LOOP(o) PyObject_TypeCheck((o), &LoopType)

/* Ours, or gevent's own HubDestroyed when gevent runs on this loop. */
static int
is_hub_destroyed(PyObject *type)
{
    if (type == NULL || HubDestroyed == NULL || !PyExceptionClass_Check(type))
        return 0;
    if (PyObject_IsSubclass(type, HubDestroyed) == 1)
        return 1;
    return strcmp(_PyType_Name((PyTypeObject *)type), "HubDestroyed") == 0
           && PyObject_IsSubclass(type, PyExc_GreenletExit) == 1;
}

static int
exc_matches_then_clear(PyObject *exc)
{
    if (PyErr_ExceptionMatches(exc)) {
        PyErr_Clear();
        return 1;
    }
    return 0;
}

/* ---------------------------------------------------------------------- */
/* Per-thread hub                                                          */
/* ---------------------------------------------------------------------- */

static PyObject *
get_hub_class_impl(void)
{
    PyObject *cls = PyObject_GetAttr(threadlocal, str_Hub);
    if (cls == NULL)
        return NULL;
    if (cls == Py_None) {
        Py_DECREF(cls);
        cls = Py_NewRef((PyObject *)HubType);
        if (PyObject_SetAttr(threadlocal, str_Hub, cls) < 0) {
            Py_DECREF(cls);
            return NULL;
        }
    }
    return cls;
}

/* The thread's hub lives in the thread state dict (strong reference,
 * released when the thread exits): one dict lookup with an interned key. */
static PyObject *
tls_hub_borrowed(void)
{
    PyObject *d = PyThreadState_GetDict();
    if (d == NULL)
        return NULL;
    return PyDict_GetItemWithError(d, str_tls_hub);
}

/* A thread's hub is destroyed when the thread exits: the thread state dict
 * holds a guard whose dealloc (run by PyThreadState_Clear, in that thread)
 * destroys the hub and its loop.  Without it the hub greenlet, suspended in
 * its own run(), would keep itself and its loop (and their fds) forever. */
typedef struct {
    PyObject_HEAD
    PyObject *hub;
} GuardObject;

static void
guard_dealloc(GuardObject *g)
{
    PyObject *hub = g->hub;
    g->hub = NULL;
    if (hub != NULL && IS_HUB(hub) && ((HubObject *)hub)->loop != NULL
            && ((HubObject *)hub)->loop != Py_None) {
        PyObject *t, *v, *tb;
        PyErr_Fetch(&t, &v, &tb);
        PyObject *r = PyObject_CallMethod(hub, "destroy", "(O)", Py_True);
        if (r == NULL)
            PyErr_WriteUnraisable(hub);
        Py_XDECREF(r);
        PyErr_Restore(t, v, tb);
    }
    Py_XDECREF(hub);
    PyObject_Free(g);
}

static PyTypeObject GuardType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "gevent_c._hub._ThreadHubGuard",
    .tp_basicsize = sizeof(GuardObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_dealloc = (destructor)guard_dealloc,
};

static int
tls_set_guard(PyObject *d, PyObject *hub)
{
    /* disarm the previous guard first: replacing it must not destroy */
    PyObject *old = PyDict_GetItemWithError(d, str_tls_guard);
    if (old != NULL)
        Py_CLEAR(((GuardObject *)old)->hub);
    else if (PyErr_Occurred())
        return -1;
    if (hub == Py_None || PyThread_get_thread_ident() == main_thread_ident()) {
        if (old != NULL && PyDict_DelItem(d, str_tls_guard) < 0)
            return -1;
        return 0;
    }
    GuardObject *g = PyObject_New(GuardObject, &GuardType);
    if (g == NULL)
        return -1;
    g->hub = Py_NewRef(hub);
    int rc = PyDict_SetItem(d, str_tls_guard, (PyObject *)g);
    Py_DECREF(g);
    return rc;
}

static PyObject *
tls_dict(void)
{
    PyObject *d = PyThreadState_GetDict();
    if (d == NULL)
        PyErr_SetString(PyExc_RuntimeError, "no thread state");
    return d;
}

/* d[key] = value, or no d[key] at all for None */
static int
tls_put(PyObject *d, PyObject *key, PyObject *value)
{
    if (value != Py_None)
        return PyDict_SetItem(d, key, value);
    if (PyDict_DelItem(d, key) < 0) {
        if (!PyErr_ExceptionMatches(PyExc_KeyError))
            return -1;
        PyErr_Clear();
    }
    return 0;
}

static int
tls_set_hub(PyObject *hub)
{
    PyObject *d = tls_dict();
    if (d == NULL || tls_set_guard(d, hub) < 0)
        return -1;
    return tls_put(d, str_tls_hub, hub);
}

/* The thread's hub, created with (args, kwds) if there is none. */
static PyObject *
get_hub_with(PyObject *args, PyObject *kwds)
{
    PyObject *hub = tls_hub_borrowed();
    if (hub != NULL)
        return Py_NewRef(hub);
    if (PyErr_Occurred())
        return NULL;
    PyObject *cls = get_hub_class_impl();
    if (cls == NULL)
        return NULL;
    hub = args ? PyObject_Call(cls, args, kwds) : PyObject_CallNoArgs(cls);
    Py_DECREF(cls);
    if (hub == NULL)
        return NULL;
    if (tls_set_hub(hub) < 0) {
        Py_DECREF(hub);
        return NULL;
    }
    return hub;
}

static PyObject *
get_hub_impl(void)
{
    return get_hub_with(NULL, NULL);
}

static PyObject *
mod_get_hub(PyObject *m, PyObject *args, PyObject *kwds)
{
    return get_hub_with(args, kwds);
}

static PyObject *
mod_get_hub_if_exists(PyObject *m, PyObject *Py_UNUSED(ignored))
{
    PyObject *hub = tls_hub_borrowed();
    if (hub == NULL && PyErr_Occurred())
        return NULL;
    return Py_NewRef(hub ? hub : Py_None);
}

static PyObject *
mod_get_hub_class(PyObject *m, PyObject *Py_UNUSED(ignored))
{
    return get_hub_class_impl();
}

static PyObject *
mod_set_hub(PyObject *m, PyObject *hub)
{
    if (tls_set_hub(hub) < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* ---------------------------------------------------------------------- */
/* Switching                                                               */
/* ---------------------------------------------------------------------- */

/* Call the current greenlet's switch_out() if it has one. */
static int
call_switch_out(PyGreenlet *cur)
{
    PyObject *so = NULL;
    if (Py_TYPE(cur) == &PyGreenlet_Type) {
        /* plain greenlet: only its instance dict can hold switch_out */
        if (cur->dict == NULL)
            return 0;
        so = PyDict_GetItemWithError(cur->dict, str_switch_out);
        if (so == NULL)
            return PyErr_Occurred() ? -1 : 0;
        Py_INCREF(so);
    }
    else if (gevc_lookup_attr((PyObject *)cur, str_switch_out, &so) < 0)
        return -1;
    if (so == NULL)
        return 0;
    PyObject *r = PyObject_CallNoArgs(so);
    Py_DECREF(so);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

/* hub.switch(): switch_out() the current greenlet, then switch to the hub. */
static PyObject *
hub_switch_from(PyObject *hub, PyGreenlet *cur)
{
    int ours = Py_IS_TYPE(hub, HubType);   /* exact: no MRO walk on the hot path */
    if (!ours && !PyGreenlet_Check(hub))
        return PyObject_CallMethod(hub, "switch", NULL);
    if (call_switch_out(cur) < 0)
        return NULL;
    if (ours && ((HubObject *)hub)->in_run)
        return PyGreenlet_Switch((PyGreenlet *)hub, NULL, NULL);
    if (PyGreenlet_STARTED((PyGreenlet *)hub) && !PyGreenlet_ACTIVE((PyGreenlet *)hub)) {
        /* greenlet would "switch" to the dead hub's parent and return ():
         * a wait that nothing can ever end must say so */
        PyObject *exc = PyObject_CallFunction(LoopExit, "sO[]",
                                              "This operation would block forever "
                                              "(the hub was destroyed)", hub);
        if (exc != NULL) {
            PyErr_SetObject(LoopExit, exc);
            Py_DECREF(exc);
        }
        return NULL;
    }
    return PyGreenlet_Switch((PyGreenlet *)hub, NULL, NULL);
}

static PyObject *
hub_switch_impl(PyObject *hub)
{
    PyGreenlet *cur = PyGreenlet_GetCurrent();
    if (cur == NULL)
        return NULL;
    PyObject *res = hub_switch_from(hub, cur);
    Py_DECREF(cur);
    return res;
}

static PyObject *
Hub_switch(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    return hub_switch_impl(self);
}

static PyObject *
Hub_switch_out(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    PyErr_SetString(BlockingSwitchOutError,
                    "Impossible to call blocking function in the event loop callback");
    return NULL;
}

/* ---------------------------------------------------------------------- */
/* Hub: construction, attributes                                           */
/* ---------------------------------------------------------------------- */

static unsigned long
main_thread_ident(void)
{
    static unsigned long main_ident = 0;
    if (main_ident == 0) {
        PyObject *t, *v, *tb;
        PyErr_Fetch(&t, &v, &tb);
        PyObject *threading = PyImport_ImportModule("threading");
        PyObject *mt = threading ? PyObject_CallMethod(threading, "main_thread", NULL) : NULL;
        PyObject *id = mt ? PyObject_GetAttrString(mt, "ident") : NULL;
        if (id)
            main_ident = PyLong_AsUnsignedLong(id);
        Py_XDECREF(id);
        Py_XDECREF(mt);
        Py_XDECREF(threading);
        PyErr_Clear();
        PyErr_Restore(t, v, tb);
    }
    return main_ident;
}

static int
is_main_thread_ident(unsigned long ident)
{
    return ident == main_thread_ident();
}

static PyObject *
import_config_object(PyObject *spec)
{
    return PyObject_CallOneArg(config_import, spec);
}


/* The loop a Hub.destroy(destroy_loop=False) kept for this thread's next
 * hub.  Like the hub, it lives in the thread state dict: destroy() may run
 * while that dict is being cleared (thread exit), when touching a
 * _thread._local would re-create its per-thread dict and leak it. */
static PyObject *
get_saved_loop(void)
{
    PyObject *d = PyThreadState_GetDict();
    PyObject *loop = d ? PyDict_GetItemWithError(d, str_tls_loop) : NULL;
    if (loop == NULL && PyErr_Occurred())
        return NULL;
    return Py_NewRef(loop ? loop : Py_None);
}

static int
set_saved_loop(PyObject *loop)
{
    PyObject *d = tls_dict();
    return d == NULL ? -1 : tls_put(d, str_tls_loop, loop);
}

static int
Hub_init(HubObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"loop", "default", NULL};
    PyObject *loop = Py_None, *dflt = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|OO:Hub", kwlist, &loop, &dflt))
        return -1;
    unsigned long ident = PyThread_get_thread_ident();
    PyObject *ident_o = PyLong_FromUnsignedLong(ident);
    if (ident_o == NULL || PyObject_SetAttrString((PyObject *)self, "thread_ident", ident_o) < 0) {
        Py_XDECREF(ident_o);
        return -1;
    }
    Py_DECREF(ident_o);

    PyObject *the_loop = NULL;
    int has_run = 0;
    if (loop != Py_None) {
        PyObject *run = NULL;
        if (gevc_lookup_attr(loop, str_run, &run) < 0)
            return -1;
        has_run = run != NULL;
        Py_XDECREF(run);
    }
    if (has_run) {
        if (dflt != Py_None) {
            PyErr_SetString(PyExc_TypeError, "Unexpected argument: default");
            return -1;
        }
        the_loop = Py_NewRef(loop);
    }
    else {
        the_loop = get_saved_loop();
        if (the_loop == NULL)
            return -1;
        if (the_loop == Py_None) {
            Py_CLEAR(the_loop);
            if (dflt == Py_None && !is_main_thread_ident(ident))
                dflt = Py_False;
            PyObject *flags = loop == Py_None
                ? PyObject_GetAttrString((PyObject *)self, "backend") : Py_NewRef(loop);
            PyObject *lc = flags ? PyObject_GetAttrString((PyObject *)self, "loop_class") : NULL;
            PyObject *cls = lc ? import_config_object(lc) : NULL;
            Py_XDECREF(lc);
            if (cls) {
                PyObject *kw = Py_BuildValue("{s:O,s:O}", "flags", flags, "default", dflt);
                PyObject *noargs = PyTuple_New(0);
                the_loop = (kw && noargs) ? PyObject_Call(cls, noargs, kw) : NULL;
                Py_XDECREF(noargs);
                Py_XDECREF(kw);
                Py_DECREF(cls);
            }
            Py_XDECREF(flags);
            if (the_loop == NULL)
                return -1;
        }
    }
    Py_XSETREF(self->loop, the_loop);
    Py_CLEAR(self->resolver);
    Py_CLEAR(self->threadpool);

    PyObject *fc = PyObject_GetAttrString((PyObject *)self, "format_context");
    PyObject *fcc = fc ? import_config_object(fc) : NULL;
    Py_XDECREF(fc);
    if (fcc == NULL)
        return -1;
    int rc = PyObject_SetAttrString((PyObject *)self, "format_context", fcc);
    Py_DECREF(fcc);
    return rc;
}

static int
Hub_traverse(HubObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->loop);
    Py_VISIT(self->resolver);
    Py_VISIT(self->threadpool);
    Py_VISIT(self->exception_stream);
    Py_VISIT(Py_TYPE(self));
    return PyGreenlet_Type.tp_traverse((PyObject *)self, visit, arg);
}

static void
Hub_clear_fields(HubObject *self)
{
    Py_CLEAR(self->loop);
    Py_CLEAR(self->resolver);
    Py_CLEAR(self->threadpool);
    Py_CLEAR(self->exception_stream);
}

static int
Hub_tp_clear(HubObject *self)
{
    Hub_clear_fields(self);
    return PyGreenlet_Type.tp_clear((PyObject *)self);
}

/* Follows subtype_dealloc's convention: the base may resurrect a started
 * greenlet (it throws GreenletExit into it) and then re-increfs our heap
 * type, which the final Py_DECREF(tp) balances. */
static void
Hub_dealloc(HubObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    Hub_clear_fields(self);
    PyGreenlet_Type.tp_dealloc((PyObject *)self);
    Py_DECREF(tp);
}

static PyObject *
Hub_get_main_hub(HubObject *self, void *c)
{
    PyObject *ident = PyObject_GetAttrString((PyObject *)self, "thread_ident");
    if (ident == NULL)
        return NULL;
    unsigned long id = PyLong_AsUnsignedLong(ident);
    Py_DECREF(ident);
    if (PyErr_Occurred()) {
        PyErr_Clear();
        Py_RETURN_FALSE;
    }
    return PyBool_FromLong(is_main_thread_ident(id));
}

static PyObject *
Hub_get_exception_stream(HubObject *self, void *c)
{
    if (self->exception_stream)
        return Py_NewRef(self->exception_stream);
    PyObject *err = PySys_GetObject("stderr");
    return Py_NewRef(err ? err : Py_None);
}

static int
Hub_set_exception_stream(HubObject *self, PyObject *value, void *c)
{
    Py_XSETREF(self->exception_stream, Py_XNewRef(value));
    return 0;
}

/* Lazy resolver/threadpool: created from the class list on first read. */
static PyObject *
hub_lazy_get(HubObject *self, PyObject **slot, const char *class_attr, PyObject *args)
{
    if (*slot != NULL && *slot != Py_None)
        return Py_NewRef(*slot);
    PyObject *spec = PyObject_GetAttrString((PyObject *)self, class_attr);
    PyObject *cls = spec ? import_config_object(spec) : NULL;
    Py_XDECREF(spec);
    if (cls == NULL)
        return NULL;
    if (PyObject_SetAttrString((PyObject *)self, class_attr, cls) < 0) {
        Py_DECREF(cls);
        return NULL;
    }
    PyObject *kw = Py_BuildValue("{s:O}", "hub", self);
    PyObject *obj = kw ? PyObject_Call(cls, args, kw) : NULL;
    Py_XDECREF(kw);
    Py_DECREF(cls);
    if (obj == NULL)
        return NULL;
    Py_XSETREF(*slot, Py_NewRef(obj));
    return obj;
}

static PyObject *
Hub_get_resolver(HubObject *self, void *c)
{
    PyObject *args = PyTuple_New(0);
    PyObject *r = args ? hub_lazy_get(self, &self->resolver, "resolver_class", args) : NULL;
    Py_XDECREF(args);
    return r;
}

static int
Hub_set_resolver(HubObject *self, PyObject *value, void *c)
{
    Py_XSETREF(self->resolver, value == Py_None ? NULL : Py_XNewRef(value));
    return 0;
}

static PyObject *
Hub_get_threadpool(HubObject *self, void *c)
{
    PyObject *size = PyObject_GetAttrString((PyObject *)self, "threadpool_size");
    PyObject *args = size ? PyTuple_Pack(1, size) : NULL;
    Py_XDECREF(size);
    PyObject *r = args ? hub_lazy_get(self, &self->threadpool, "threadpool_class", args) : NULL;
    Py_XDECREF(args);
    return r;
}

static int
Hub_set_threadpool(HubObject *self, PyObject *value, void *c)
{
    Py_XSETREF(self->threadpool, value == Py_None ? NULL : Py_XNewRef(value));
    return 0;
}

static PyObject *
Hub_repr(HubObject *self)
{
    PyObject *name = PyObject_GetAttrString((PyObject *)self, "name");
    if (name == NULL)
        return NULL;
    PyObject *fmt;
    if (self->loop == NULL || self->loop == Py_None)
        fmt = PyUnicode_FromString("destroyed");
    else {
        fmt = PyObject_CallMethod(self->loop, "_format", NULL);
        if (fmt == NULL) {
            PyObject *t, *v, *tb;
            PyErr_Fetch(&t, &v, &tb);
            fmt = v ? PyObject_Str(v) : PyUnicode_FromString("?");
            Py_XDECREF(t); Py_XDECREF(v); Py_XDECREF(tb);
        }
    }
    if (fmt == NULL) {
        Py_DECREF(name);
        return NULL;
    }
    PyObject *res = PyUnicode_FromFormat("<%s %R at %p %U", _PyType_Name(Py_TYPE(self)),
                                         name, self, fmt);
    Py_DECREF(name);
    Py_DECREF(fmt);
    if (res && self->resolver && self->resolver != Py_None)
        PyUnicode_AppendAndDel(&res, PyUnicode_FromFormat(" resolver=%R", self->resolver));
    if (res && self->threadpool && self->threadpool != Py_None)
        PyUnicode_AppendAndDel(&res, PyUnicode_FromFormat(" threadpool=%R", self->threadpool));
    if (res) {
        PyObject *ident = PyObject_GetAttrString((PyObject *)self, "thread_ident");
        if (ident == NULL) {
            Py_DECREF(res);
            return NULL;
        }
        PyObject *hex = ident == Py_None ? PyUnicode_FromString("None")
                                         : PyNumber_ToBase(ident, 16);
        Py_DECREF(ident);
        PyUnicode_AppendAndDel(&res, hex ? PyUnicode_FromFormat(" thread_ident=%U>", hex) : NULL);
        Py_XDECREF(hex);
    }
    return res;
}

/* ---------------------------------------------------------------------- */
/* Hub: running the loop                                                   */
/* ---------------------------------------------------------------------- */

static int
loop_set_handler(PyObject *loop, PyObject *handler)
{
    if (IS_LOOP(loop)) {
        Py_XSETREF(((LoopObject *)loop)->error_handler, Py_NewRef(handler));
        return 0;
    }
    return PyObject_SetAttrString(loop, "error_handler", handler);
}

static void
debug_walk_cb(uv_handle_t *h, void *arg)
{
    WatcherObject *w = (WatcherObject *)h->data;
    if (w == NULL || uv_handle_get_type(h) == UV_POLL || w->handle != h || !w->active)
        return;
    PyObject *r = PyObject_Repr((PyObject *)w);
    if (r == NULL || PyList_Append((PyObject *)arg, r) < 0)
        PyErr_Clear();
    Py_XDECREF(r);
}

/* The loop's live handles, for LoopExit's third argument. */
static PyObject *
loop_debug_list(PyObject *loop)
{
    PyObject *list = PyList_New(0);
    if (list && IS_LOOP(loop) && ((LoopObject *)loop)->uv)
        uv_walk(((LoopObject *)loop)->uv, debug_walk_cb, list);
    return list;
}

static PyObject *hub_run_body(HubObject *self);

/* While the hub greenlet is inside this C body it is started and not dead,
 * so switching into it needs no check through greenlet's API (in_run). */
static PyObject *
Hub_run(HubObject *self, PyObject *Py_UNUSED(ignored))
{
    self->in_run++;
    PyObject *res = hub_run_body(self);
    self->in_run--;
    return res;
}

static PyObject *
hub_run_body(HubObject *self)
{
    PyGreenlet *cur = PyGreenlet_GetCurrent();
    if (cur == NULL)
        return NULL;
    Py_DECREF(cur);
    if ((PyObject *)cur != (PyObject *)self) {
        PyErr_SetString(PyExc_AssertionError, "Do not call Hub.run() directly");
        return NULL;
    }
    for (;;) {
        PyObject *loop = self->loop;
        if (loop == NULL || loop == Py_None)
            Py_RETURN_NONE;
        Py_INCREF(loop);
        int rc = loop_set_handler(loop, (PyObject *)self);
        if (rc == 0) {
            if (IS_LOOP(loop))
                rc = loop_run_impl((LoopObject *)loop, 0, 0);
            else {
                PyObject *r = PyObject_CallMethod(loop, "run", NULL);
                rc = r ? 0 : -1;
                Py_XDECREF(r);
            }
        }
        PyObject *t, *v, *tb;
        PyErr_Fetch(&t, &v, &tb);
        if (loop_set_handler(loop, Py_None) < 0)
            PyErr_Clear();
        PyErr_Restore(t, v, tb);
        if (rc < 0) {
            Py_DECREF(loop);
            if (exc_matches_then_clear(HubDestroyed))
                Py_RETURN_NONE;
            return NULL;
        }
        PyObject *debug = loop_debug_list(loop);
        Py_DECREF(loop);
        if (debug == NULL)
            return NULL;
        PyObject *exc = PyObject_CallFunction(LoopExit, "sOO", "This operation would block forever",
                                              self, debug);
        Py_DECREF(debug);
        if (exc == NULL)
            return NULL;
        PyGreenlet *parent = PyGreenlet_GetParent((PyGreenlet *)self);
        if (parent == NULL) {
            Py_DECREF(exc);
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_RuntimeError, "the hub has no parent greenlet");
            return NULL;
        }
        PyObject *res = PyGreenlet_Throw(parent, LoopExit, exc, NULL);
        Py_DECREF(parent);
        Py_DECREF(exc);
        if (res == NULL) {
            if (exc_matches_then_clear(HubDestroyed))
                Py_RETURN_NONE;
            return NULL;
        }
        Py_DECREF(res);
    }
}

/* hub.wait() on one of our own watchers: the watcher switches straight
 * back into the waiting greenlet (no Waiter, bound method or argument tuple
 * per wait).  While it waits, watcher.callback reads as the greenlet's bound
 * switch, so cancel_wait() (callback.__self__.throw) works as with a Waiter;
 * a wake-up by anything but the watcher is an InvalidSwitchError. */
static PyObject *
hub_wait_direct(PyObject *hub, WatcherObject *w)
{
    if (watcher_check_usable(w) < 0)
        return NULL;
    PyGreenlet *cur = PyGreenlet_GetCurrent();
    if (cur == NULL)
        return NULL;
    if (Py_TYPE(w) == &IoType)
        ((IoObject *)w)->pass_events = 0;
    Py_XSETREF(w->callback, (PyObject *)cur);   /* takes the reference */
    Py_CLEAR(w->args);
    int err = w->ops->native_start(w);
    if (err < 0) {
        Py_CLEAR(w->callback);
        if (!PyErr_Occurred())
            gevc_uv_error(err);
        return NULL;
    }
    w->direct_switch = 1;
    w->direct_fired = 0;
    watcher_activate(w);
    Py_INCREF(cur);
    PyObject *res = hub_switch_from(hub, cur);
    int fired = w->direct_fired;
    /* stop in every case, keeping any pending exception */
    PyObject *t, *v, *tb;
    PyErr_Fetch(&t, &v, &tb);
    watcher_stop_impl(w);
    PyErr_Restore(t, v, tb);
    if (res != NULL && !fired) {
        PyErr_Format(InvalidSwitchError, "Invalid switch into %R: got %R (expected the "
                     "watcher %R)", cur, res, (PyObject *)w);
        Py_CLEAR(res);
    }
    Py_DECREF(cur);
    if (res != NULL) {
        Py_DECREF(res);
        res = Py_NewRef(Py_None);
    }
    return res;
}

/* Start `watcher` with waiter.switch(waiter) and block until it fires. */
static PyObject *
hub_wait_impl(PyObject *hub, PyObject *watcher)
{
    /* exact types first: io and timer waits skip the MRO walks */
    if ((Py_IS_TYPE(watcher, &IoType) || Py_IS_TYPE(watcher, &TimerType)
         || (PyObject_TypeCheck(watcher, &WatcherType)
             && !(Py_TYPE(watcher)->tp_flags & Py_TPFLAGS_HEAPTYPE)))
            && (Py_IS_TYPE(hub, HubType) || PyGreenlet_Check(hub)))
        return hub_wait_direct(hub, (WatcherObject *)watcher);
    WaiterObject *waiter = waiter_create(hub);
    if (waiter == NULL)
        return NULL;
    PyObject *sw = waiter_bound_switch(waiter);
    PyObject *res = NULL;
    if (sw == NULL)
        goto done;
    int rc;
    /* our own watcher types (not Python subclasses, which may override
     * start): start in C */
    if (PyObject_TypeCheck(watcher, &WatcherType)
            && !(Py_TYPE(watcher)->tp_flags & Py_TPFLAGS_HEAPTYPE)) {
        PyObject *args = PyTuple_Pack(1, (PyObject *)waiter);
        if (Py_TYPE(watcher) == &IoType)
            ((IoObject *)watcher)->pass_events = 0;
        rc = args ? watcher_start_impl((WatcherObject *)watcher, sw, args) : -1;
        Py_XDECREF(args);
    }
    else {
        PyObject *r = PyObject_CallMethod(watcher, "start", "OO", sw, (PyObject *)waiter);
        rc = r ? 0 : -1;
        Py_XDECREF(r);
    }
    Py_DECREF(sw);
    if (rc < 0)
        goto done;
    res = waiter_get_impl(waiter);
    /* stop in every case, keeping any pending exception */
    PyObject *t, *v, *tb;
    PyErr_Fetch(&t, &v, &tb);
    if (PyObject_TypeCheck(watcher, &WatcherType))
        watcher_stop_impl((WatcherObject *)watcher);
    else {
        PyObject *r = PyObject_CallMethod(watcher, "stop", NULL);
        if (r == NULL && t == NULL) {
            Py_XDECREF(res);
            res = NULL;
            goto done;
        }
        Py_XDECREF(r);
        PyErr_Clear();
    }
    PyErr_Restore(t, v, tb);
    if (res != NULL && res != (PyObject *)waiter) {
        PyGreenlet *cur = PyGreenlet_GetCurrent();
        PyErr_Format(InvalidSwitchError, "Invalid switch into %R: got %R (expected %R; waiting on %R)",
                     cur, res, (PyObject *)waiter, watcher);
        Py_XDECREF(cur);
        Py_CLEAR(res);
    }
    if (res != NULL) {
        Py_DECREF(res);
        res = Py_NewRef(Py_None);
    }
done:
    Py_DECREF(waiter);
    return res;
}

static PyObject *
Hub_wait(HubObject *self, PyObject *watcher)
{
    return hub_wait_impl((PyObject *)self, watcher);
}

static PyObject *
Hub_cancel_wait(HubObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"watcher", "error", "close_watcher", NULL};
    PyObject *watcher, *error, *close_watcher = Py_False;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO|O:cancel_wait", kwlist,
                                     &watcher, &error, &close_watcher))
        return NULL;
    if (watcher == Py_None)
        Py_RETURN_NONE;
    PyObject *cb = PyObject_GetAttrString(watcher, "callback");
    if (cb == NULL)
        return NULL;
    int has_cb = cb != Py_None;
    Py_DECREF(cb);
    if (!has_cb) {
        int c = PyObject_IsTrue(close_watcher);
        if (c < 0)
            return NULL;
        if (c)
            return PyObject_CallMethod(watcher, "close", NULL);
        Py_RETURN_NONE;
    }
    PyObject *meth = PyObject_GetAttrString((PyObject *)self, "_cancel_wait");
    if (meth == NULL)
        return NULL;
    PyObject *r = PyObject_CallMethod(self->loop, "run_callback", "OOOO",
                                      meth, watcher, error, close_watcher);
    Py_DECREF(meth);
    if (r == NULL)
        return NULL;
    Py_DECREF(r);
    Py_RETURN_NONE;
}

static PyObject *
Hub__cancel_wait(HubObject *self, PyObject *args)
{
    PyObject *watcher, *error, *close_watcher;
    if (!PyArg_ParseTuple(args, "OOO:_cancel_wait", &watcher, &error, &close_watcher))
        return NULL;
    PyObject *active = PyObject_GetAttrString(watcher, "active");
    PyObject *cb = active ? PyObject_GetAttrString(watcher, "callback") : NULL;
    int is_active = active ? PyObject_IsTrue(active) : -1;
    Py_XDECREF(active);
    if (cb == NULL || is_active < 0) {
        Py_XDECREF(cb);
        return NULL;
    }
    int c = PyObject_IsTrue(close_watcher);
    if (c > 0) {
        PyObject *r = PyObject_CallMethod(watcher, "close", NULL);
        if (r == NULL) {
            Py_DECREF(cb);
            return NULL;
        }
        Py_DECREF(r);
    }
    PyObject *res = Py_NewRef(Py_None);
    if (is_active && cb != Py_None) {
        PyObject *target = NULL;
        if (gevc_lookup_attr(cb, str___self__, &target) < 0) {
            Py_DECREF(cb);
            Py_DECREF(res);
            return NULL;
        }
        if (target != NULL && target != Py_None) {
            Py_DECREF(res);
            res = call_method1(target, "throw", error);
        }
        Py_XDECREF(target);
    }
    Py_DECREF(cb);
    return res;
}

/* ---------------------------------------------------------------------- */
/* Hub: join, destroy                                                      */
/* ---------------------------------------------------------------------- */

static PyObject *
Hub_join(HubObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"timeout", "event", NULL};
    PyObject *timeout = Py_None, *event = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|OO:join", kwlist, &timeout, &event))
        return NULL;
    PyGreenlet *cur = PyGreenlet_GetCurrent();
    PyGreenlet *parent = PyGreenlet_GetParent((PyGreenlet *)self);
    int ok = cur && (PyObject *)cur == (PyObject *)parent;
    Py_XDECREF(cur);
    Py_XDECREF(parent);
    if (PyErr_Occurred())
        return NULL;
    if (!ok) {
        PyErr_SetString(PyExc_AssertionError, "only possible from the MAIN greenlet");
        return NULL;
    }
    if (PyGreenlet_STARTED((PyGreenlet *)self) && !PyGreenlet_ACTIVE((PyGreenlet *)self))
        Py_RETURN_TRUE;  /* dead */
    WaiterObject *waiter = waiter_create((PyObject *)self);
    if (waiter == NULL)
        return NULL;
    PyObject *sw = waiter_bound_switch(waiter);
    PyObject *timer = NULL, *res = NULL;
    int linked = 0;
    if (sw == NULL)
        goto done;
    if (event != Py_None) {
        PyObject *r = call_method1(event, "rawlink", sw);
        if (r == NULL)
            goto done;
        Py_DECREF(r);
        linked = 1;
    }
    if (timeout != Py_None) {
        timer = call_method1(self->loop, "timer", timeout);
        if (timer == NULL || PyObject_SetAttrString(timer, "ref", Py_False) < 0)
            goto done;
        PyObject *r = PyObject_CallMethod(timer, "start", "OO", sw, Py_None);
        if (r == NULL)
            goto done;
        Py_DECREF(r);
    }
    PyObject *v = waiter_get_impl(waiter);
    if (v != NULL) {
        Py_DECREF(v);
        res = Py_NewRef(Py_False);
    }
    else if (exc_matches_then_clear(LoopExit))
        res = Py_NewRef(Py_True);
done:
    {
        PyObject *t, *val, *tb;
        PyErr_Fetch(&t, &val, &tb);
        if (timer) {
            PyObject *r = PyObject_CallMethod(timer, "close", NULL);
            Py_XDECREF(r);
        }
        if (linked) {
            PyObject *r = call_method1(event, "unlink", sw);
            Py_XDECREF(r);
        }
        PyErr_Clear();
        PyErr_Restore(t, val, tb);
    }
    Py_XDECREF(timer);
    Py_XDECREF(sw);
    Py_DECREF(waiter);
    return res;
}

static PyObject *
Hub_destroy(HubObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"destroy_loop", NULL};
    PyObject *destroy_loop_o = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|O:destroy", kwlist, &destroy_loop_o))
        return NULL;
    if (self->loop == NULL || self->loop == Py_None)
        Py_RETURN_NONE;  /* already destroyed */
    PyGreenlet *cur = PyGreenlet_GetCurrent();
    if (cur == NULL)
        return NULL;
    Py_DECREF(cur);
    if ((PyObject *)cur == (PyObject *)self) {
        PyErr_SetString(PyExc_RuntimeError,
                        "Hub.destroy() cannot be called from inside the hub "
                        "(a callback); call it from another greenlet");
        return NULL;
    }
    PyObject *loop = Py_NewRef(self->loop);
    int destroy_loop;
    if (destroy_loop_o == Py_None) {
        PyObject *d = PyObject_GetAttrString(loop, "default");
        destroy_loop = d ? !PyObject_IsTrue(d) : -1;
        Py_XDECREF(d);
    }
    else
        destroy_loop = PyObject_IsTrue(destroy_loop_o);
    if (destroy_loop < 0)
        goto error;
    if (self->resolver && self->resolver != Py_None) {
        PyObject *r = PyObject_CallMethod(self->resolver, "close", NULL);
        if (r == NULL)
            goto error;
        Py_DECREF(r);
    }
    Py_CLEAR(self->resolver);
    if (self->threadpool && self->threadpool != Py_None) {
        PyObject *r = PyObject_CallMethod(self->threadpool, "kill", NULL);
        if (r == NULL)
            goto error;
        Py_DECREF(r);
    }
    Py_CLEAR(self->threadpool);

    if (PyGreenlet_ACTIVE((PyGreenlet *)self) || !PyGreenlet_STARTED((PyGreenlet *)self)) {
        PyObject *exc = PyObject_CallOneArg(HubDestroyed, destroy_loop ? Py_True : Py_False);
        if (exc == NULL)
            goto error;
        PyObject *r = PyGreenlet_Throw((PyGreenlet *)self, HubDestroyed, exc, NULL);
        Py_DECREF(exc);
        if (r != NULL)
            Py_DECREF(r);
        else if (PyErr_ExceptionMatches(LoopExit) || PyErr_ExceptionMatches(HubDestroyed)
                 || PyErr_ExceptionMatches(PyExc_GreenletError))
            PyErr_Clear();
        else
            goto error;
    }
    if (destroy_loop) {
        PyObject *saved = get_saved_loop();
        if (saved == NULL)
            goto error;
        int same = saved == loop;
        Py_DECREF(saved);
        if (same && set_saved_loop(Py_None) < 0)
            goto error;
        PyObject *r = PyObject_CallMethod(loop, "destroy", NULL);
        if (r == NULL)
            goto error;
        Py_DECREF(r);
    }
    else if (set_saved_loop(loop) < 0)
        goto error;
    Py_CLEAR(self->loop);
    self->loop = Py_NewRef(Py_None);
    Py_DECREF(loop);
    PyObject *h = tls_hub_borrowed();
    if (h == NULL && PyErr_Occurred())
        return NULL;
    if (h == (PyObject *)self && tls_set_hub(Py_None) < 0)
        return NULL;
    Py_RETURN_NONE;
error:
    Py_DECREF(loop);
    return NULL;
}

/* ---------------------------------------------------------------------- */
/* Hub: errors                                                             */
/* ---------------------------------------------------------------------- */

static int
type_is_subclass_of_attr(PyObject *self, PyObject *type, const char *attr)
{
    PyObject *classes = PyObject_GetAttrString(self, attr);
    if (classes == NULL)
        return -1;
    int r = PyObject_IsSubclass(type, classes);
    Py_DECREF(classes);
    return r;
}

/* value given as a str (or None for a class): build the instance */
static PyObject *
normalize_value(PyObject *type, PyObject *value)
{
    if (PyUnicode_Check(value) && PyType_Check(type))
        return PyObject_CallOneArg(type, value);
    return Py_NewRef(value);
}

static PyObject *
Hub_handle_error(HubObject *self, PyObject *args)
{
    PyObject *context, *type, *value, *tb;
    if (!PyArg_ParseTuple(args, "OOOO:handle_error", &context, &type, &value, &tb))
        return NULL;
    PyObject *t = NULL, *v = NULL, *b = NULL, *res = NULL;
    if (type == Py_None && value == Py_None && tb == Py_None) {
        PyErr_GetExcInfo(&t, &v, &b);
        if (t == NULL)
            Py_RETURN_NONE;  /* nothing to handle */
        if (v == NULL)
            v = Py_NewRef(Py_None);
        if (b == NULL)
            b = Py_NewRef(Py_None);
    }
    else {
        t = Py_NewRef(type);
        v = normalize_value(type, value);
        b = Py_NewRef(tb);
        if (v == NULL)
            goto done;
    }
    if (!PyType_Check(t) && PyExceptionInstance_Check(v))
        Py_SETREF(t, Py_NewRef((PyObject *)Py_TYPE(v)));
    if (!PyType_Check(t)) {
        PyErr_Format(PyExc_TypeError, "handle_error: type must be an exception class, not %R", t);
        goto done;
    }
    if (is_hub_destroyed(t)) {
        PyErr_Restore(Py_NewRef(t), Py_NewRef(v), b == Py_None ? NULL : Py_NewRef(b));
        goto done;
    }
    int not_error = type_is_subclass_of_attr((PyObject *)self, t, "NOT_ERROR");
    if (not_error < 0)
        goto done;
    if (!not_error) {
        PyObject *r = PyObject_CallMethod((PyObject *)self, "print_exception", "OOOO",
                                          context, t, v, b);
        if (r == NULL)
            goto done;
        Py_DECREF(r);
    }
    int system = context == Py_None ? 1 : type_is_subclass_of_attr((PyObject *)self, t, "SYSTEM_ERROR");
    if (system < 0)
        goto done;
    if (system) {
        PyObject *r = PyObject_CallMethod((PyObject *)self, "handle_system_error", "OOO", t, v, b);
        if (r == NULL)
            goto done;
        Py_DECREF(r);
    }
    res = Py_NewRef(Py_None);
done:
    Py_XDECREF(t);
    Py_XDECREF(v);
    Py_XDECREF(b);
    return res;
}

static int
stream_write(PyObject *stream, PyObject *text)
{
    PyObject *r = call_method1(stream, "write", text);
    Py_XDECREF(r);
    return r ? 0 : -1;
}

static PyObject *
Hub_print_exception(HubObject *self, PyObject *args)
{
    PyObject *context, *type, *value, *tb;
    if (!PyArg_ParseTuple(args, "OOOO:print_exception", &context, &type, &value, &tb))
        return NULL;
    PyObject *stream = Hub_get_exception_stream(self, NULL);
    if (stream == NULL)
        return NULL;
    PyObject *res = NULL, *v = NULL, *ctx = NULL;
    int truth = PyObject_IsTrue(stream);
    if (truth <= 0) {
        res = truth < 0 ? NULL : Py_NewRef(Py_None);
        goto done;
    }
    v = normalize_value(type, value);
    if (v == NULL)
        goto done;
    PyObject *name = PyObject_GetAttrString(type, "__name__");
    if (name == NULL) {
        PyErr_Clear();
        name = PyUnicode_FromString("exception");
        if (name == NULL)
            goto done;
    }
    if (v == Py_None) {
        PyObject *line = PyUnicode_FromFormat("%U\n", name);
        int rc = line ? stream_write(stream, line) : -1;
        Py_XDECREF(line);
        if (rc < 0) {
            Py_DECREF(name);
            goto done;
        }
    }
    else {
        PyObject *tbmod = PyImport_ImportModule("traceback");
        PyObject *pe = tbmod ? PyObject_GetAttrString(tbmod, "print_exception") : NULL;
        Py_XDECREF(tbmod);
        PyObject *pargs = pe ? PyTuple_Pack(3, type, v, tb) : NULL;
        PyObject *kw = pargs ? Py_BuildValue("{s:O}", "file", stream) : NULL;
        PyObject *r = kw ? PyObject_Call(pe, pargs, kw) : NULL;
        Py_XDECREF(pe);
        Py_XDECREF(pargs);
        Py_XDECREF(kw);
        if (r == NULL) {
            Py_DECREF(name);
            goto done;
        }
        Py_DECREF(r);
    }
    if (context != Py_None) {
        if (PyUnicode_Check(context))
            ctx = Py_NewRef(context);
        else {
            PyObject *fc = PyObject_GetAttrString((PyObject *)self, "format_context");
            ctx = fc ? PyObject_CallOneArg(fc, context) : NULL;
            Py_XDECREF(fc);
            if (ctx == NULL) {
                PyErr_Print();  /* shows why formatting failed */
                ctx = PyObject_Repr(context);
            }
            else if (!PyUnicode_Check(ctx))
                Py_SETREF(ctx, PyObject_Str(ctx));
        }
        PyObject *line = ctx ? PyUnicode_FromFormat("%U failed with %U\n\n", ctx, name) : NULL;
        int rc = line ? stream_write(stream, line) : -1;
        Py_XDECREF(line);
        if (rc < 0) {
            Py_DECREF(name);
            goto done;
        }
    }
    Py_DECREF(name);
    res = Py_NewRef(Py_None);
done:
    Py_XDECREF(ctx);
    Py_XDECREF(v);
    Py_DECREF(stream);
    return res;
}

static PyObject *
Hub_handle_system_error(HubObject *self, PyObject *args)
{
    PyObject *type, *value, *tb = Py_None;
    if (!PyArg_ParseTuple(args, "OO|O:handle_system_error", &type, &value, &tb))
        return NULL;
    PyGreenlet *cur = PyGreenlet_GetCurrent();
    if (cur == NULL)
        return NULL;
    PyGreenlet *parent = PyGreenlet_GetParent((PyGreenlet *)self);
    if (parent == NULL) {
        Py_DECREF(cur);
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_RuntimeError, "the hub has no parent greenlet");
        return NULL;
    }
    PyObject *res = NULL, *cb = NULL;
    int direct = (PyObject *)cur == (PyObject *)self || cur == parent
                 || self->loop == NULL || self->loop == Py_None;
    if (!direct) {
        /* resume the calling greenlet later, if the program survives */
        PyObject *sw = PyObject_GetAttrString((PyObject *)cur, "switch");
        cb = sw ? PyObject_CallMethod(self->loop, "run_callback", "O", sw) : NULL;
        Py_XDECREF(sw);
        if (cb == NULL)
            goto done;
    }
    res = PyGreenlet_Throw(parent, type, value, tb == Py_None ? NULL : tb);
    if (cb) {
        PyObject *t, *v, *b;
        PyErr_Fetch(&t, &v, &b);
        PyObject *r = PyObject_CallMethod(cb, "stop", NULL);
        Py_XDECREF(r);
        PyErr_Clear();
        PyErr_Restore(t, v, b);
    }
    if (res) {
        Py_DECREF(res);
        res = Py_NewRef(Py_None);
    }
done:
    Py_XDECREF(cb);
    Py_DECREF(cur);
    Py_DECREF(parent);
    return res;
}

static PyMethodDef Hub_methods[] = {
    {"switch", (PyCFunction)Hub_switch, METH_NOARGS,
     "Call the current greenlet's switch_out() if any, then switch into the hub."},
    {"switch_out", (PyCFunction)Hub_switch_out, METH_NOARGS,
     "Raises BlockingSwitchOutError: blocking calls are not allowed in the hub."},
    {"run", (PyCFunction)Hub_run, METH_NOARGS,
     "The hub greenlet's body: run the loop; throw LoopExit into the parent "
     "when nothing is left to run."},
    {"wait", (PyCFunction)Hub_wait, METH_O,
     "wait(watcher): start watcher and block the current greenlet until it fires."},
    {"cancel_wait", (PyCFunction)(void (*)(void))Hub_cancel_wait, METH_VARARGS | METH_KEYWORDS,
     "cancel_wait(watcher, error, close_watcher=False): raise error in the "
     "greenlet waiting on watcher."},
    {"_cancel_wait", (PyCFunction)Hub__cancel_wait, METH_VARARGS, NULL},
    {"join", (PyCFunction)(void (*)(void))Hub_join, METH_VARARGS | METH_KEYWORDS,
     "join(timeout=None, event=None) -> bool: wait for the loop to run out of "
     "work (True), or for the timeout or the event (False)."},
    {"destroy", (PyCFunction)(void (*)(void))Hub_destroy, METH_VARARGS | METH_KEYWORDS,
     "destroy(destroy_loop=None): unwind the hub; destroy or keep its loop."},
    {"handle_error", (PyCFunction)Hub_handle_error, METH_VARARGS,
     "handle_error(context, type, value, tb): print, and raise system errors "
     "in the parent."},
    {"print_exception", (PyCFunction)Hub_print_exception, METH_VARARGS, NULL},
    {"handle_system_error", (PyCFunction)Hub_handle_system_error, METH_VARARGS, NULL},
    {NULL}
};

static PyMemberDef Hub_members[] = {
    {"loop", T_OBJECT, offsetof(HubObject, loop), 0, "The hub's event loop; None after destroy()."},
    {"_resolver", T_OBJECT, offsetof(HubObject, resolver), 0, NULL},
    {"_threadpool", T_OBJECT, offsetof(HubObject, threadpool), 0, NULL},
    {NULL}
};

static PyGetSetDef Hub_getset[] = {
    {"main_hub", (getter)Hub_get_main_hub, NULL, "True for the main thread's hub."},
    {"exception_stream", (getter)Hub_get_exception_stream, (setter)Hub_set_exception_stream,
     "Where errors are printed: sys.stderr (read each time) until assigned."},
    {"resolver", (getter)Hub_get_resolver, (setter)Hub_set_resolver, NULL},
    {"threadpool", (getter)Hub_get_threadpool, (setter)Hub_set_threadpool, NULL},
    {NULL}
};

static PyType_Slot Hub_slots[] = {
    {Py_tp_doc, "Hub(loop=None, default=None)\n\nA greenlet that runs the event loop."},
    {Py_tp_init, Hub_init},
    {Py_tp_dealloc, Hub_dealloc},
    {Py_tp_traverse, Hub_traverse},
    {Py_tp_clear, Hub_tp_clear},
    {Py_tp_repr, Hub_repr},
    {Py_tp_methods, Hub_methods},
    {Py_tp_members, Hub_members},
    {Py_tp_getset, Hub_getset},
    {0, NULL}
};

static PyType_Spec Hub_spec = {
    .name = "gevent_c.hub.Hub",
    .basicsize = sizeof(HubObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .slots = Hub_slots,
};

/* ---------------------------------------------------------------------- */
/* Module functions: sleep, spawn_raw, kill                                */
/* ---------------------------------------------------------------------- */

static PyObject *
hub_loop_of(PyObject *hub)
{
    if (IS_HUB(hub)) {
        PyObject *loop = ((HubObject *)hub)->loop;
        if (loop == NULL || loop == Py_None) {
            PyErr_SetString(PyExc_ValueError, "the hub was destroyed");
            return NULL;
        }
        return Py_NewRef(loop);
    }
    return PyObject_GetAttr(hub, str_loop);
}

/* sleep(0): queue a callback that switches back into this greenlet (the
 * callback object plays the Waiter: if anything else resumes us first, we
 * stop it, so it never switches into us later). */
static PyObject *
sleep_yield(PyObject *hub, PyObject *loop)
{
    PyGreenlet *cur = PyGreenlet_GetCurrent();
    if (cur == NULL)
        return NULL;
    CallbackObject *cb = NULL;
    PyObject *res = NULL;
    if (IS_LOOP(loop) && (Py_IS_TYPE(hub, HubType) || PyGreenlet_Check(hub))) {
        cb = loop_queue_callback((LoopObject *)loop, (PyObject *)cur, NULL, CB_SLEEP);
        if (cb != NULL) {
            res = hub_switch_from(hub, cur);
            if (cb->state == CB_PENDING)
                callback_stop(cb, NULL);
            Py_DECREF(cb);
        }
    }
    else {
        WaiterObject *waiter = waiter_create(hub);
        PyObject *sw = waiter ? PyObject_GetAttrString((PyObject *)waiter, "switch") : NULL;
        PyObject *c = sw ? PyObject_CallMethod(loop, "run_callback", "OO", sw, Py_None) : NULL;
        if (c != NULL) {
            Py_DECREF(c);
            res = waiter_get_impl(waiter);
        }
        Py_XDECREF(sw);
        Py_XDECREF(waiter);
    }
    Py_DECREF(cur);
    return res;
}

/* sleep(t) on our own hub and loop: the timer switches straight back into
 * the sleeping greenlet (no Waiter, bound method or argument tuple per
 * sleeper).  The timer is closed however the wait ends, so it can never
 * switch in later; a wake-up by anything else is an InvalidSwitchError, as
 * with hub.wait(). */
static PyObject *
sleep_direct(PyObject *hub, LoopObject *loop, double after, int ref)
{
    if (loop_check_alive(loop) < 0)
        return NULL;
    PyGreenlet *cur = PyGreenlet_GetCurrent();
    if (cur == NULL)
        return NULL;
    WatcherObject *w = (WatcherObject *)gevc_timer_new(loop, after, 0.0, ref);
    PyObject *res = NULL;
    if (w == NULL)
        goto done;
    int err = timer_native_start(w);
    if (err < 0) {
        if (!PyErr_Occurred())
            gevc_uv_error(err);
        goto done;
    }
    w->callback = Py_NewRef((PyObject *)cur);
    w->direct_switch = 1;
    watcher_activate(w);
    res = hub_switch_from(hub, cur);
    int fired = !w->active;
    PyObject *t, *v, *tb;
    PyErr_Fetch(&t, &v, &tb);
    watcher_close_impl(w);
    PyErr_Restore(t, v, tb);
    if (res != NULL && !fired) {
        PyErr_Format(InvalidSwitchError, "Invalid switch into %R: got %R (expected the timer "
                     "of sleep())", cur, res);
        Py_CLEAR(res);
    }
done:
    Py_XDECREF(w);
    Py_DECREF(cur);
    return res;
}

static PyObject *
sleep_timer(PyObject *hub, PyObject *loop, PyObject *seconds, PyObject *ref)
{
    PyObject *timer;
    if (IS_LOOP(loop) && IS_HUB(hub)) {
        double after = PyFloat_AsDouble(seconds);
        if (after == -1.0 && PyErr_Occurred())
            return NULL;
        int r = PyObject_IsTrue(ref);
        if (r < 0)
            return NULL;
        return sleep_direct(hub, (LoopObject *)loop, after, r);
    }
    else {
        PyObject *kw = Py_BuildValue("{s:O}", "ref", ref);
        PyObject *targs = PyTuple_Pack(1, seconds);
        PyObject *factory = PyObject_GetAttrString(loop, "timer");
        timer = (kw && targs && factory) ? PyObject_Call(factory, targs, kw) : NULL;
        Py_XDECREF(kw);
        Py_XDECREF(targs);
        Py_XDECREF(factory);
    }
    if (timer == NULL)
        return NULL;
    PyObject *res = hub_wait_impl(hub, timer);
    PyObject *t, *v, *tb;
    PyErr_Fetch(&t, &v, &tb);
    if (PyObject_TypeCheck(timer, &WatcherType))
        watcher_close_impl((WatcherObject *)timer);
    else {
        PyObject *r = PyObject_CallMethod(timer, "close", NULL);
        Py_XDECREF(r);
        PyErr_Clear();
    }
    PyErr_Restore(t, v, tb);
    Py_DECREF(timer);
    return res;
}

static PyObject *
mod_sleep(PyObject *m, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *seconds = NULL, *ref = Py_True;
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    if (nargs > 2) {
        PyErr_Format(PyExc_TypeError, "sleep() takes at most 2 arguments (%zd given)", nargs);
        return NULL;
    }
    if (nargs > 0)
        seconds = args[0];
    if (nargs > 1)
        ref = args[1];
    for (Py_ssize_t i = 0; i < nkw; i++) {
        PyObject *key = PyTuple_GET_ITEM(kwnames, i);
        if (PyUnicode_CompareWithASCIIString(key, "seconds") == 0 && seconds == NULL)
            seconds = args[nargs + i];
        else if (PyUnicode_CompareWithASCIIString(key, "ref") == 0 && nargs < 2)
            ref = args[nargs + i];
        else {
            PyErr_Format(PyExc_TypeError, "sleep() got an unexpected keyword argument %R", key);
            return NULL;
        }
    }
    double secs = 0;
    if (seconds) {
        if (!PyFloat_Check(seconds) && !PyLong_Check(seconds)) {
            PyErr_Format(PyExc_TypeError, "sleep() seconds must be a number, not %.200s",
                         Py_TYPE(seconds)->tp_name);
            return NULL;
        }
        /* an int (sleep(0)) without a float object on the way */
        secs = PyLong_CheckExact(seconds) ? PyLong_AsDouble(seconds)
                                          : PyFloat_AsDouble(seconds);
        if (secs == -1.0 && PyErr_Occurred())
            return NULL;
    }
    PyObject *hub = get_hub_impl();
    if (hub == NULL)
        return NULL;
    PyObject *loop = hub_loop_of(hub);
    PyObject *res = NULL;
    if (loop != NULL) {
        res = secs > 0 ? sleep_timer(hub, loop, seconds, ref) : sleep_yield(hub, loop);
        Py_DECREF(loop);
    }
    Py_DECREF(hub);
    if (res) {
        Py_DECREF(res);
        res = Py_NewRef(Py_None);
    }
    return res;
}

static PyObject *
mod_spawn_raw(PyObject *m, PyObject *args, PyObject *kwds)
{
    Py_ssize_t n = PyTuple_GET_SIZE(args);
    if (n < 1) {
        PyErr_SetString(PyExc_TypeError, "spawn_raw() missing required argument 'function'");
        return NULL;
    }
    PyObject *function = PyTuple_GET_ITEM(args, 0);
    if (!PyCallable_Check(function)) {
        PyErr_SetString(PyExc_TypeError, "function must be callable");
        return NULL;
    }
    PyObject *hub = get_hub_impl();
    if (hub == NULL)
        return NULL;
    PyObject *loop = hub_loop_of(hub);
    PyObject *rest = loop ? PyTuple_GetSlice(args, 1, n) : NULL;
    PyObject *run = NULL, *g = NULL, *cb = NULL;
    if (rest == NULL)
        goto done;
    if (kwds && PyDict_GET_SIZE(kwds)) {
        /* greenlet.switch cannot pass kwargs to run on the first switch
         * together with the loop's callback: bind them in a partial */
        PyObject *functools = PyImport_ImportModule("functools");
        PyObject *partial = functools ? PyObject_GetAttrString(functools, "partial") : NULL;
        Py_XDECREF(functools);
        run = partial ? PyObject_Call(partial, args, kwds) : NULL;
        Py_XDECREF(partial);
        Py_SETREF(rest, PyTuple_New(0));
        if (run == NULL || rest == NULL)
            goto done;
    }
    else
        run = Py_NewRef(function);
    if (!PyGreenlet_Check(hub)) {
        PyErr_SetString(PyExc_TypeError, "the current hub is not a greenlet");
        goto done;
    }
    g = (PyObject *)PyGreenlet_New(run, (PyGreenlet *)hub);
    if (g == NULL)
        goto done;
    if (PyObject_SetAttr(g, str_loop, loop) < 0)
        goto done;
    if (IS_LOOP(loop))
        cb = (PyObject *)loop_queue_callback((LoopObject *)loop, g, rest, CB_GREENLET_SWITCH);
    else {
        PyObject *sw = PyObject_GetAttrString(g, "switch");
        PyObject *head = sw ? PyTuple_Pack(1, sw) : NULL;
        PyObject *full = head ? PySequence_Concat(head, rest) : NULL;
        PyObject *rc = full ? PyObject_GetAttrString(loop, "run_callback") : NULL;
        cb = rc ? PyObject_Call(rc, full, NULL) : NULL;
        Py_XDECREF(rc);
        Py_XDECREF(sw);
        Py_XDECREF(head);
        Py_XDECREF(full);
    }
    if (cb == NULL)
        Py_CLEAR(g);
done:
    Py_XDECREF(cb);
    Py_XDECREF(run);
    Py_XDECREF(rest);
    Py_XDECREF(loop);
    Py_DECREF(hub);
    return g;
}

static PyObject *
mod_kill(PyObject *m, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"greenlet", "exception", NULL};
    PyObject *greenlet, *exception = PyExc_GreenletExit;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|O:kill", kwlist, &greenlet, &exception))
        return NULL;
    PyObject *dead = PyObject_GetAttrString(greenlet, "dead");
    if (dead == NULL)
        return NULL;
    int is_dead = PyObject_IsTrue(dead);
    Py_DECREF(dead);
    if (is_dead < 0)
        return NULL;
    if (is_dead)
        Py_RETURN_NONE;
    PyObject *kill = NULL;
    if (gevc_lookup_attr(greenlet, str_kill, &kill) < 0)
        return NULL;
    if (kill != NULL) {
        /* a gevent-style Greenlet: let it kill itself */
        PyObject *kw = Py_BuildValue("{s:O,s:O}", "exception", exception, "block", Py_False);
        PyObject *noargs = PyTuple_New(0);
        PyObject *r = (kw && noargs) ? PyObject_Call(kill, noargs, kw) : NULL;
        Py_XDECREF(kw);
        Py_XDECREF(noargs);
        Py_DECREF(kill);
        if (r == NULL)
            return NULL;
        Py_DECREF(r);
        Py_RETURN_NONE;
    }
    PyObject *hub = get_hub_impl();
    PyObject *loop = hub ? hub_loop_of(hub) : NULL;
    PyObject *throw = loop ? PyObject_GetAttrString(greenlet, "throw") : NULL;
    PyObject *cb = throw ? PyObject_CallMethod(loop, "run_callback", "OO", throw, exception) : NULL;
    Py_XDECREF(throw);
    Py_XDECREF(loop);
    Py_XDECREF(hub);
    if (cb == NULL)
        return NULL;
    Py_DECREF(cb);
    Py_RETURN_NONE;
}

#include "threadpool.c"

static PyObject *
mod_getcurrent(PyObject *m, PyObject *Py_UNUSED(ignored))
{
    return (PyObject *)PyGreenlet_GetCurrent();
}

static PyObject *
mod_get_version(PyObject *m, PyObject *Py_UNUSED(ignored))
{
    return PyUnicode_FromFormat("libuv-%s", uv_version_string());
}

static PyObject *
mod_get_header_version(PyObject *m, PyObject *Py_UNUSED(ignored))
{
    return PyUnicode_FromFormat("libuv-%d.%d.%d", UV_VERSION_MAJOR, UV_VERSION_MINOR,
                                UV_VERSION_PATCH);
}

static PyMethodDef module_methods[] = {
    {"get_hub", (PyCFunction)(void (*)(void))mod_get_hub, METH_VARARGS | METH_KEYWORDS,
     "get_hub(*args, **kwargs): this thread's hub, created (with the arguments) if needed."},
    {"_get_hub", (PyCFunction)mod_get_hub_if_exists, METH_NOARGS,
     "This thread's hub, or None.  Never creates one."},
    {"get_hub_if_exists", (PyCFunction)mod_get_hub_if_exists, METH_NOARGS,
     "This thread's hub, or None.  Never creates one."},
    {"get_hub_class", (PyCFunction)mod_get_hub_class, METH_NOARGS,
     "The hub type for this thread (_threadlocal.Hub, default Hub)."},
    {"set_hub", (PyCFunction)mod_set_hub, METH_O, "set_hub(hub): store this thread's hub."},
    {"sleep", (PyCFunction)(void (*)(void))mod_sleep, METH_FASTCALL | METH_KEYWORDS,
     "sleep(seconds=0, ref=True): block the current greenlet; seconds <= 0 only yields."},
    {"spawn_raw", (PyCFunction)(void (*)(void))mod_spawn_raw, METH_VARARGS | METH_KEYWORDS,
     "spawn_raw(function, *args, **kwargs): a raw greenlet (parent: the hub) "
     "started at the hub's next callback pass."},
    {"kill", (PyCFunction)(void (*)(void))mod_kill, METH_VARARGS | METH_KEYWORDS,
     "kill(greenlet, exception=GreenletExit): raise exception in greenlet, asynchronously."},
    {"getcurrent", (PyCFunction)mod_getcurrent, METH_NOARGS, NULL},
    {"get_version", (PyCFunction)mod_get_version, METH_NOARGS, "The runtime libuv version."},
    {"get_header_version", (PyCFunction)mod_get_header_version, METH_NOARGS,
     "The libuv version gevent_c was compiled against."},
    {NULL}
};

static struct PyModuleDef hubmodule = {
    PyModuleDef_HEAD_INIT,
    .m_name = "gevent_c._hub",
    .m_doc = "C core of gevent_c: Hub, Waiter, the libuv loop and its watchers.",
    .m_size = -1,
    .m_methods = module_methods,
};

static PyObject *
import_attr(const char *module, const char *name)
{
    PyObject *mod = PyImport_ImportModule(module);
    if (mod == NULL)
        return NULL;
    PyObject *r = PyObject_GetAttrString(mod, name);
    Py_DECREF(mod);
    return r;
}

#define INTERN(var, text) do { if (!((var) = PyUnicode_InternFromString(text))) return NULL; } while (0)

PyMODINIT_FUNC
PyInit__hub(void)
{
    PyGreenlet_Import();
    if (_PyGreenlet_API == NULL)
        return NULL;
    if (PyGreenlet_Type.tp_basicsize != (Py_ssize_t)sizeof(PyGreenlet)) {
        PyErr_Format(PyExc_ImportError,
                     "greenlet.greenlet size changed (%zd, compiled against %zd): "
                     "rebuild gevent_c against the installed greenlet",
                     PyGreenlet_Type.tp_basicsize, (Py_ssize_t)sizeof(PyGreenlet));
        return NULL;
    }
    INTERN(str_switch_out, "switch_out");
    INTERN(str_hub, "hub");
    INTERN(str_tls_hub, "gevent_c.hub");
    INTERN(str_tls_guard, "gevent_c.hub_guard");
    INTERN(str_tls_loop, "gevent_c.loop");
    INTERN(str_Hub, "Hub");
    INTERN(str_loop, "loop");
    INTERN(str_run, "run");
    INTERN(str___self__, "__self__");
    INTERN(str_kill, "kill");
    INTERN(str_handle_error, "handle_error");

    if (!(threadlocal = import_attr("gevent_c._hub_local", "_threadlocal")))
        return NULL;
    if (!(config_import = import_attr("gevent_c._config", "_import")))
        return NULL;
    if (!(LoopExit = import_attr("gevent_c.exceptions", "LoopExit"))
        || !(BlockingSwitchOutError = import_attr("gevent_c.exceptions", "BlockingSwitchOutError"))
        || !(InvalidSwitchError = import_attr("gevent_c.exceptions", "InvalidSwitchError"))
        || !(ConcurrentObjectUseError = import_attr("gevent_c.exceptions", "ConcurrentObjectUseError"))
        || !(HubDestroyed = import_attr("gevent_c.exceptions", "HubDestroyed"))
        || !(InvalidThreadUseError = import_attr("gevent_c.exceptions", "InvalidThreadUseError")))
        return NULL;

    if (PyType_Ready(&CallbackType) < 0 || PyType_Ready(&LoopType) < 0
        || PyType_Ready(&WatcherType) < 0 || PyType_Ready(&TimerType) < 0
        || PyType_Ready(&IoType) < 0 || PyType_Ready(&SignalType) < 0
        || PyType_Ready(&ChildType) < 0 || PyType_Ready(&IdleType) < 0
        || PyType_Ready(&PrepareType) < 0 || PyType_Ready(&CheckType) < 0
        || PyType_Ready(&ForkType) < 0 || PyType_Ready(&AsyncType) < 0
        || PyType_Ready(&StatType) < 0 || PyType_Ready(&PoolType) < 0
        || PyType_Ready(&GuardType) < 0
        || PyType_Ready(&WaiterType) < 0)
        return NULL;
    PyObject *bases = PyTuple_Pack(1, (PyObject *)&PyGreenlet_Type);
    if (bases == NULL)
        return NULL;
    HubType = (PyTypeObject *)PyType_FromSpecWithBases(&Hub_spec, bases);
    Py_DECREF(bases);
    if (HubType == NULL)
        return NULL;

    pthread_atfork(NULL, NULL, gevc_atfork_child);
    PyObject *configure = import_attr("gevent_c._config", "_configure_hub");
    PyObject *r = configure ? PyObject_CallOneArg(configure, (PyObject *)HubType) : NULL;
    Py_XDECREF(configure);
    if (r == NULL)
        return NULL;
    Py_DECREF(r);

    PyObject *m = PyModule_Create(&hubmodule);
    if (m == NULL)
        return NULL;
    if (PyModule_AddObjectRef(m, "Hub", (PyObject *)HubType) < 0
        || PyModule_AddObjectRef(m, "Waiter", (PyObject *)&WaiterType) < 0
        || PyModule_AddObjectRef(m, "loop", (PyObject *)&LoopType) < 0
        || PyModule_AddObjectRef(m, "callback", (PyObject *)&CallbackType) < 0
        || PyModule_AddObjectRef(m, "watcher", (PyObject *)&WatcherType) < 0
        || PyModule_AddObjectRef(m, "timer", (PyObject *)&TimerType) < 0
        || PyModule_AddObjectRef(m, "io", (PyObject *)&IoType) < 0
        || PyModule_AddObjectRef(m, "signal", (PyObject *)&SignalType) < 0
        || PyModule_AddObjectRef(m, "child", (PyObject *)&ChildType) < 0
        || PyModule_AddObjectRef(m, "idle", (PyObject *)&IdleType) < 0
        || PyModule_AddObjectRef(m, "prepare", (PyObject *)&PrepareType) < 0
        || PyModule_AddObjectRef(m, "check", (PyObject *)&CheckType) < 0
        || PyModule_AddObjectRef(m, "fork", (PyObject *)&ForkType) < 0
        || PyModule_AddObjectRef(m, "async_", (PyObject *)&AsyncType) < 0
        || PyModule_AddObjectRef(m, "stat", (PyObject *)&StatType) < 0
        || PyModule_AddObjectRef(m, "ThreadPoolBase", (PyObject *)&PoolType) < 0
        || PyModule_AddIntConstant(m, "READ", UV_READABLE) < 0
        || PyModule_AddIntConstant(m, "WRITE", UV_WRITABLE) < 0
        || PyModule_AddIntConstant(m, "READWRITE", UV_READABLE | UV_WRITABLE) < 0
        || PyModule_AddIntConstant(m, "MAXPRI", GEVC_MAXPRI) < 0
        || PyModule_AddIntConstant(m, "MINPRI", GEVC_MINPRI) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
