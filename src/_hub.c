/*
 * _hub.c -- module gevent_c._hub: the Hub greenlet, get_hub and friends,
 * and the hot paths sleep/spawn_raw/wait.
 *
 * Also the module's state and exec (the types of every file are made here),
 * and the greenlet C-API table that every file's greenlet macros read.
 */
#include "gevent_c.h"


static gevc_state *gevc_get_state(PyObject *module);
static struct PyModuleDef hubmodule;
/* greenlet's C-API table, shared by every file (see gevent_c.h) */
void **gevc_greenlet_api = NULL;

/* Ours, or gevent's own HubDestroyed when gevent runs on this loop. */
int
is_hub_destroyed(gevc_state *gst, PyObject *type)
{
    if (type == NULL || !PyExceptionClass_Check(type))
        return 0;
    if (PyObject_IsSubclass(type, gst->HubDestroyed) == 1)
        return 1;
    PyObject *name = PyType_GetName((PyTypeObject *)type);
    if (name == NULL) {
        PyErr_Clear();
        return 0;
    }
    int same = PyUnicode_CompareWithASCIIString(name, "HubDestroyed") == 0;
    Py_DECREF(name);
    return same && PyObject_IsSubclass(type, PyExc_GreenletExit) == 1;
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

/* The default hub class: gevent_c.hub.Hub (the policy, in Python, over
 * HubCore), registered by that module when it is imported. */
static PyObject *
default_hub_class_get(gevc_state *gst)
{
    if (gst->default_hub_class == NULL) {
        PyObject *mod = PyImport_ImportModule("gevent_c.hub");
        Py_XDECREF(mod);
        if (mod == NULL)
            return NULL;
        if (gst->default_hub_class == NULL) {
            PyErr_SetString(PyExc_RuntimeError, "gevent_c.hub did not set the default hub class");
            return NULL;
        }
    }
    return Py_NewRef(gst->default_hub_class);
}

static PyObject *
get_hub_class_impl(gevc_state *gst)
{
    PyObject *cls = PyObject_GetAttr(gst->threadlocal, gst->str_Hub);
    if (cls == NULL)
        return NULL;
    if (cls == Py_None) {
        Py_DECREF(cls);
        cls = default_hub_class_get(gst);
        if (cls == NULL)
            return NULL;
        if (PyObject_SetAttr(gst->threadlocal, gst->str_Hub, cls) < 0) {
            Py_DECREF(cls);
            return NULL;
        }
    }
    return cls;
}

/* The thread's hub lives in the thread state dict (strong reference,
 * released when the thread exits): one dict lookup with an interned key. */
static PyObject *
tls_hub_borrowed(gevc_state *gst)
{
    PyObject *d = PyThreadState_GetDict();
    if (d == NULL)
        return NULL;
    return PyDict_GetItemWithError(d, gst->str_tls_hub);
}

/* A thread's hub is destroyed when the thread exits: the thread state dict
 * holds a guard whose dealloc (run by PyThreadState_Clear, in that thread)
 * destroys the hub and its loop.  Without it the hub greenlet, suspended in
 * its own run(), would keep itself and its loop (and their fds) forever. */
typedef struct {
    PyObject_HEAD
    gevc_state *gst;
    PyObject *hub;
} GuardObject;

/* The thread that owns a hub, from its thread_ident attribute; 0 if unknown. */
static unsigned long
hub_owner_ident(gevc_state *gst, PyObject *hub)
{
    PyObject *ident = PyObject_GetAttr(hub, gst->str_thread_ident);
    unsigned long id = 0;
    if (ident != NULL && PyLong_Check(ident))
        id = PyLong_AsUnsignedLong(ident);
    Py_XDECREF(ident);
    PyErr_Clear();
    return id;
}

/* Usually run by the owning thread as it exits.  In a forked child, the
 * other threads' states are cleared by the thread that forked: their hubs
 * can never run again (their greenlets belong to threads that do not exist
 * here), so their loops are released without switching into them (loop
 * destroy gives such a loop its own kernel state first). */
static int
guard_traverse(GuardObject *g, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(g));
    Py_VISIT(g->hub);
    return 0;
}

/* only when the GC finds the guard in unreachable garbage: the hub is then
 * garbage too, and is not destroyed from here */
static int
guard_clear(GuardObject *g)
{
    Py_CLEAR(g->hub);
    return 0;
}

static void
guard_dealloc(GuardObject *g)
{
    PyTypeObject *tp = Py_TYPE(g);
    PyObject_GC_UnTrack(g);
    gevc_state *gst = g->gst;
    PyObject *hub = g->hub;
    g->hub = NULL;
    if (hub != NULL && IS_HUB(gst, hub) && ((HubObject *)hub)->loop != NULL
            && ((HubObject *)hub)->loop != Py_None) {
        PyObject *exc = PyErr_GetRaisedException();
        PyObject *loop = ((HubObject *)hub)->loop;
        if (hub_owner_ident(gst, hub) == PyThread_get_thread_ident()) {
            /* destroy_loop=None: the hub destroys the loop only if it owns
             * it (not the default loop, nor one lent by Hub(loop=) or
             * set_loop()) */
            PyObject *r = PyObject_CallMethod(hub, "destroy", NULL);
            if (r == NULL)
                PyErr_WriteUnraisable(hub);
            Py_XDECREF(r);
        }
        else if (IS_LOOP(gst, loop) && loop_forked_away((LoopObject *)loop)) {
            if (loop_destroy_impl((LoopObject *)loop) < 0)
                PyErr_WriteUnraisable(loop);
            ((HubObject *)hub)->loop = Py_NewRef(Py_None);
            Py_DECREF(loop);
        }
        /* else: another thread's state cleared at interpreter shutdown;
         * that thread may still be polling its loop: leave it alone */
        PyErr_SetRaisedException(exc);
    }
    Py_XDECREF(hub);
    PyObject_GC_Del(g);
    Py_DECREF(tp);
}

static PyType_Slot guard_slots[] = {
    {Py_tp_dealloc, guard_dealloc},
    {Py_tp_traverse, guard_traverse},
    {Py_tp_clear, guard_clear},
    {0, NULL}
};

static PyType_Spec guard_spec = {
    .name = "gevent_c._hub._ThreadHubGuard",
    .basicsize = sizeof(GuardObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_DISALLOW_INSTANTIATION
             | Py_TPFLAGS_HAVE_GC,
    .slots = guard_slots,
};

static int
tls_set_guard(gevc_state *gst, PyObject *d, PyObject *hub)
{
    /* disarm the previous guard first: replacing it must not destroy */
    PyObject *old = PyDict_GetItemWithError(d, gst->str_tls_guard);
    if (old != NULL)
        Py_CLEAR(((GuardObject *)old)->hub);
    else if (PyErr_Occurred())
        return -1;
    if (hub == Py_None || PyThread_get_thread_ident() == main_thread_ident()) {
        if (old != NULL && PyDict_DelItem(d, gst->str_tls_guard) < 0)
            return -1;
        return 0;
    }
    GuardObject *g = PyObject_GC_New(GuardObject, gst->GuardType);
    if (g == NULL)
        return -1;
    g->gst = gst;
    g->hub = Py_NewRef(hub);
    PyObject_GC_Track(g);
    int rc = PyDict_SetItem(d, gst->str_tls_guard, (PyObject *)g);
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
tls_set_hub(gevc_state *gst, PyObject *hub)
{
    PyObject *d = tls_dict();
    if (d == NULL || tls_set_guard(gst, d, hub) < 0)
        return -1;
    return tls_put(d, gst->str_tls_hub, hub);
}

/* The thread's hub, created with (args, kwds) if there is none. */
static PyObject *
get_hub_with(gevc_state *gst, PyObject *args, PyObject *kwds)
{
    PyObject *hub = tls_hub_borrowed(gst);
    if (hub != NULL)
        return Py_NewRef(hub);
    if (PyErr_Occurred())
        return NULL;
    PyObject *cls = get_hub_class_impl(gst);
    if (cls == NULL)
        return NULL;
    hub = args ? PyObject_Call(cls, args, kwds) : PyObject_CallNoArgs(cls);
    Py_DECREF(cls);
    if (hub == NULL)
        return NULL;
    if (tls_set_hub(gst, hub) < 0) {
        Py_DECREF(hub);
        return NULL;
    }
    return hub;
}

PyObject *
get_hub_impl(gevc_state *gst)
{
    return get_hub_with(gst, NULL, NULL);
}

static PyObject *
mod_get_hub(PyObject *m, PyObject *args, PyObject *kwds)
{
    return get_hub_with(gevc_get_state(m), args, kwds);
}

static PyObject *
mod_get_hub_if_exists(PyObject *m, PyObject *Py_UNUSED(ignored))
{
    PyObject *hub = tls_hub_borrowed(gevc_get_state(m));
    if (hub == NULL && PyErr_Occurred())
        return NULL;
    return Py_NewRef(hub ? hub : Py_None);
}

static PyObject *
mod_get_hub_class(PyObject *m, PyObject *Py_UNUSED(ignored))
{
    return get_hub_class_impl(gevc_get_state(m));
}

/* set_hub(hub): None or a greenlet (gevent wants its hub type, a greenlet
 * subclass); anything else fails here, not at the next sleep or wait. */
static PyObject *
mod_set_hub(PyObject *m, PyObject *hub)
{
    if (hub != Py_None && !PyGreenlet_Check(hub)) {
        PyErr_Format(PyExc_TypeError, "set_hub() takes a hub (a greenlet) or None, not %.200s",
                     Py_TYPE(hub)->tp_name);
        return NULL;
    }
    if (tls_set_hub(gevc_get_state(m), hub) < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* ---------------------------------------------------------------------- */
/* Switching                                                               */
/* ---------------------------------------------------------------------- */

/* Call the current greenlet's switch_out() if it has one. */
static int
call_switch_out(gevc_state *gst, PyGreenlet *cur)
{
    PyObject *so = NULL;
    if (Py_TYPE(cur) == &PyGreenlet_Type) {
        /* plain greenlet: only its instance dict can hold switch_out */
        if (cur->dict == NULL)
            return 0;
        so = PyDict_GetItemWithError(cur->dict, gst->str_switch_out);
        if (so == NULL)
            return PyErr_Occurred() ? -1 : 0;
        Py_INCREF(so);
    }
    else if (PyObject_GetOptionalAttr((PyObject *)cur, gst->str_switch_out, &so) < 0)
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
hub_switch_from(gevc_state *gst, PyObject *hub, PyGreenlet *cur)
{
    int ours = IS_HUB(gst, hub);   /* the usual Hub class first: no MRO walk */
    if (!ours && !PyGreenlet_Check(hub))
        return PyObject_CallMethod(hub, "switch", NULL);
    if (call_switch_out(gst, cur) < 0)
        return NULL;
    if (ours && ((HubObject *)hub)->in_run) {
        /* the hub is suspended in a batch it dispatches: maybe do its
         * next step here (loop_take_handoff) */
        PyObject *lp = ((HubObject *)hub)->loop;
        if (lp != NULL && (PyObject *)cur != hub && IS_LOOP(gst, lp)
                && ((LoopObject *)lp)->disp_items != NULL) {
            LoopObject *loop = (LoopObject *)lp;
            WatcherObject *w = loop_take_handoff(loop, (PyObject *)cur);
            if (w != NULL)
                return loop_handoff(loop, w);
        }
        return PyGreenlet_Switch((PyGreenlet *)hub, NULL, NULL);
    }
    if (PyGreenlet_STARTED((PyGreenlet *)hub) && !PyGreenlet_ACTIVE((PyGreenlet *)hub)) {
        /* greenlet would "switch" to the dead hub's parent and return ():
         * a wait that nothing can ever end must say so */
        PyObject *exc = PyObject_CallFunction(gst->LoopExit, "sO[]",
                                              "This operation would block forever "
                                              "(the hub was destroyed)", hub);
        if (exc != NULL) {
            PyErr_SetObject(gst->LoopExit, exc);
            Py_DECREF(exc);
        }
        return NULL;
    }
    return PyGreenlet_Switch((PyGreenlet *)hub, NULL, NULL);
}

PyObject *
hub_switch_impl(gevc_state *gst, PyObject *hub)
{
    PyGreenlet *cur = PyGreenlet_GetCurrent();
    if (cur == NULL)
        return NULL;
    PyObject *res = hub_switch_from(gst, hub, cur);
    Py_DECREF(cur);
    return res;
}

static PyObject *
Hub_switch(HubObject *self, PyObject *Py_UNUSED(ignored))
{
    return hub_switch_impl(self->gst, (PyObject *)self);
}

static PyObject *
Hub_switch_out(HubObject *self, PyObject *Py_UNUSED(ignored))
{
    PyErr_SetString(self->gst->BlockingSwitchOutError,
                    "Impossible to call blocking function in the event loop callback");
    return NULL;
}

/* ---------------------------------------------------------------------- */
/* Hub: construction, attributes                                           */
/* ---------------------------------------------------------------------- */

/* The interpreter's main thread (the one CPython runs signal handlers in),
 * taken from the interpreter itself, never from `threading`: gevent's
 * monkey.patch_all() replaces threading's main thread and _thread.get_ident
 * (whose idents become greenlets'), so after patching threading's answer is
 * a number no PyThread_get_thread_ident() equals, and the main thread would
 * get neither the default loop nor the signal wake-up fd.
 *
 * CPython's main thread (_PyRuntime.main_thread, what the signal module
 * checks) is the thread that initialised the runtime, which is the thread
 * that created the main interpreter's first thread state; after fork() it
 * is the forking thread, whose thread state is then the only one left.
 * Thread states are linked newest first, so the main thread's is the last
 * of PyInterpreterState_Main()'s list, and its thread_id is the main
 * thread's ident.  That is public API from 3.8 to 3.13 (the walk functions
 * and the thread_id field of PyThreadState); _PyOS_IsMainThread() says the
 * same but is private and left the public headers in 3.13, and probing
 * signal.signal() for ValueError has side effects and answers only for the
 * calling thread.  The caller holds the GIL, as does every thread state
 * deletion.  Cached, and recomputed in a forked child. */
unsigned long
main_thread_ident(void)
{
    static unsigned long main_ident = 0;
    static long main_ident_gen = -1;
    if (main_ident == 0 || main_ident_gen != fork_generation) {
        PyThreadState *last = NULL;
        PyInterpreterState *interp = PyInterpreterState_Main();
        for (PyThreadState *ts = interp ? PyInterpreterState_ThreadHead(interp) : NULL;
             ts != NULL; ts = PyThreadState_Next(ts))
            last = ts;
        if (last != NULL) {
            main_ident = last->thread_id;
            main_ident_gen = fork_generation;
        }
    }
    return main_ident;
}



/* The loop a Hub.destroy(destroy_loop=False) kept for this thread's next
 * hub.  Like the hub, it lives in the thread state dict: destroy() may run
 * while that dict is being cleared (thread exit), when touching a
 * _thread._local would re-create its per-thread dict and leak it. */
static PyObject *
get_saved_loop(gevc_state *gst)
{
    PyObject *d = PyThreadState_GetDict();
    PyObject *loop = d ? PyDict_GetItemWithError(d, gst->str_tls_loop) : NULL;
    if (loop == NULL && PyErr_Occurred())
        return NULL;
    return Py_NewRef(loop ? loop : Py_None);
}

/* Whether the saved loop is owned by the thread (kept by a hub that owned
 * it) or only lent (set_loop()): a hub destroys only a loop it owns.  Kept
 * beside the loop in the thread state dict. */
#define GEVC_TLS_LOOP_OWNED_KEY "gevent_c.loop_owned"

static int
set_saved_loop(gevc_state *gst, PyObject *loop, int owned)
{
    PyObject *d = tls_dict();
    if (d == NULL || tls_put(d, gst->str_tls_loop, loop) < 0)
        return -1;
    PyObject *key = PyUnicode_InternFromString(GEVC_TLS_LOOP_OWNED_KEY);
    if (key == NULL)
        return -1;
    int rc = tls_put(d, key, owned && loop != Py_None ? Py_True : Py_None);
    Py_DECREF(key);
    return rc;
}

static int
saved_loop_owned(void)
{
    PyObject *d = PyThreadState_GetDict();
    PyObject *v = d ? PyDict_GetItemString(d, GEVC_TLS_LOOP_OWNED_KEY) : NULL;
    return v == Py_True;
}

/* greenlet's tp_new, then the module state for the hot paths */
static PyObject *
Hub_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    gevc_state *gst = gevc_state_by_type(type);
    if (gst == NULL)
        return NULL;
    PyObject *self = PyGreenlet_Type.tp_new(type, args, kwds);
    if (self != NULL)
        ((HubObject *)self)->gst = gst;
    return self;
}

static int
Hub_traverse(HubObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->loop);
    Py_VISIT(Py_TYPE(self));
    return PyGreenlet_Type.tp_traverse((PyObject *)self, visit, arg);
}

static void
Hub_clear_fields(HubObject *self)
{
    Py_CLEAR(self->loop);
}

static int
Hub_tp_clear(HubObject *self)
{
    Hub_clear_fields(self);
    return PyGreenlet_Type.tp_clear((PyObject *)self);
}

/* Untracked first (bpo-31095): clearing the loop can run arbitrary code,
 * a GC pass among it, which must not find this half-freed object.  Then
 * subtype_dealloc's convention: the base may resurrect a started greenlet
 * (it throws GreenletExit into it, tracking it again) and then re-increfs
 * our heap type, which the final Py_DECREF(tp) balances. */
static void
Hub_dealloc(HubObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    Hub_clear_fields(self);
    PyGreenlet_Type.tp_dealloc((PyObject *)self);
    Py_DECREF(tp);
}

/* ---------------------------------------------------------------------- */
/* Hub: running the loop                                                   */
/* ---------------------------------------------------------------------- */

static int
loop_set_handler(gevc_state *gst, PyObject *loop, PyObject *handler)
{
    if (IS_LOOP(gst, loop)) {
        Py_XSETREF(((LoopObject *)loop)->error_handler, Py_NewRef(handler));
        return 0;
    }
    return PyObject_SetAttrString(loop, "error_handler", handler);
}

/* The loop's live handles, for LoopExit's third argument: the active
 * watchers are collected first (loop_collect_watchers: no Python inside
 * uv_walk), then their reprs are made, which may run any Python. */
static PyObject *
loop_debug_list(gevc_state *gst, PyObject *loop)
{
    PyObject *list = PyList_New(0);
    if (list == NULL || !IS_LOOP(gst, loop))
        return list;
    Py_ssize_t n = 0;
    PyObject **ws = loop_collect_watchers((LoopObject *)loop, &n);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *r = list ? PyObject_Repr(ws[i]) : NULL;
        if (list != NULL && (r == NULL || PyList_Append(list, r) < 0))
            PyErr_Clear();
        Py_XDECREF(r);
        Py_DECREF(ws[i]);
    }
    PyMem_Free(ws);
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
    gevc_state *gst = self->gst;
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
        int rc = loop_set_handler(gst, loop, (PyObject *)self);
        if (rc == 0) {
            if (IS_LOOP(gst, loop))
                rc = loop_run_impl((LoopObject *)loop, 0, 0);
            else {
                PyObject *r = PyObject_CallMethod(loop, "run", NULL);
                rc = r ? 0 : -1;
                Py_XDECREF(r);
            }
        }
        PyObject *pending = PyErr_GetRaisedException();
        if (loop_set_handler(gst, loop, Py_None) < 0)
            PyErr_Clear();
        PyErr_SetRaisedException(pending);
        if (rc < 0) {
            Py_DECREF(loop);
            if (exc_matches_then_clear(gst->HubDestroyed))
                Py_RETURN_NONE;
            return NULL;
        }
        PyObject *debug = loop_debug_list(gst, loop);
        Py_DECREF(loop);
        if (debug == NULL)
            return NULL;
        PyObject *exc = PyObject_CallFunction(gst->LoopExit, "sOO", "This operation would block forever",
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
        PyObject *res = PyGreenlet_Throw(parent, gst->LoopExit, exc, NULL);
        Py_DECREF(parent);
        Py_DECREF(exc);
        if (res == NULL) {
            if (exc_matches_then_clear(gst->HubDestroyed))
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
hub_wait_direct(gevc_state *gst, PyObject *hub, WatcherObject *w)
{
    if (watcher_check_usable(w) < 0)
        return NULL;
    PyGreenlet *cur = PyGreenlet_GetCurrent();
    if (cur == NULL)
        return NULL;
    LoopObject *loop = watcher_op_begin(w);
    if (Py_TYPE(w) == gst->IoType)
        ((IoObject *)w)->pass_events = 0;
    /* the callback replaced is released, not dropped (re-entrancy) */
    watcher_setref(w, &w->callback, (PyObject *)cur);   /* takes the reference */
    watcher_setref(w, &w->args, NULL);
    int err = w->ops->native_start(w);
    if (err < 0) {
        watcher_setref(w, &w->callback, NULL);
        if (!PyErr_Occurred())
            gevc_uv_error(err);
        watcher_op_end(loop);
        return NULL;
    }
    w->direct_switch = 1;
    w->direct_fired = 0;
    w->direct_ident = PyThread_get_thread_ident();
    watcher_activate(w);
    Py_INCREF(cur);
    /* the safe point before blocking; then re-validate: the finalizers
     * that ran may have closed the watcher or destroyed its loop */
    watcher_op_end(loop);
    PyObject *res = NULL;
    int fired = 0;
    if (watcher_check_usable(w) == 0) {
        res = hub_switch_from(gst, hub, cur);
        fired = w->direct_fired;
    }
    /* stop in every case, keeping any pending exception */
    loop = watcher_op_begin(w);
    PyObject *exc = PyErr_GetRaisedException();
    watcher_stop_impl(w);
    PyErr_SetRaisedException(exc);
    watcher_op_end(loop);
    if (res != NULL && !fired) {
        PyErr_Format(gst->InvalidSwitchError, "Invalid switch into %R: got %R (expected the "
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
PyObject *
hub_wait_impl(gevc_state *gst, PyObject *hub, PyObject *watcher)
{
    /* our own watcher types (not Python subclasses, which may override
     * start), on a hub greenlet: switch straight back, no Waiter.  Ours are
     * the direct subtypes of the abstract watcher type, which Python code
     * cannot instantiate. */
    if (PyObject_TypeCheck(watcher, gst->WatcherType)) {
        /* the dispatch of a loop running in another thread would switch
         * into this thread's greenlet: never (greenlet cannot), say so */
        LoopObject *wl = ((WatcherObject *)watcher)->loop;
        if (wl != NULL && wl->depth > 0 && wl->run_ident != PyThread_get_thread_ident()) {
            PyErr_Format(gst->InvalidThreadUseError,
                         "cannot wait on %R: its loop runs in another thread", watcher);
            return NULL;
        }
    }
    if (Py_TYPE(watcher)->tp_base == gst->WatcherType
            && (Py_TYPE(hub) == (PyTypeObject *)gst->default_hub_class || PyGreenlet_Check(hub)))
        return hub_wait_direct(gst, hub, (WatcherObject *)watcher);
    WaiterObject *waiter = waiter_create(gst, hub);
    if (waiter == NULL)
        return NULL;
    PyObject *sw = waiter_bound_switch(waiter);
    PyObject *res = NULL;
    if (sw == NULL)
        goto done;
    int rc;
    /* our own watcher types (not Python subclasses, which may override
     * start): start in C.  Ours are the direct subtypes of the abstract
     * watcher type, which Python code cannot instantiate. */
    if (Py_TYPE(watcher)->tp_base == gst->WatcherType) {
        PyObject *args = PyTuple_Pack(1, (PyObject *)waiter);
        if (Py_TYPE(watcher) == gst->IoType)
            ((IoObject *)watcher)->pass_events = 0;
        LoopObject *loop = watcher_op_begin((WatcherObject *)watcher);
        rc = args ? watcher_start_impl((WatcherObject *)watcher, sw, args) : -1;
        Py_XDECREF(args);
        watcher_op_end(loop);   /* the safe point; then re-validate */
        if (rc == 0 && watcher_check_usable((WatcherObject *)watcher) < 0)
            rc = -1;
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
    PyObject *exc = PyErr_GetRaisedException();
    if (PyObject_TypeCheck(watcher, gst->WatcherType)) {
        LoopObject *loop = watcher_op_begin((WatcherObject *)watcher);
        watcher_stop_impl((WatcherObject *)watcher);
        watcher_op_end(loop);
    }
    else {
        PyObject *r = PyObject_CallMethod(watcher, "stop", NULL);
        if (r == NULL && exc == NULL) {
            Py_XDECREF(res);
            res = NULL;
            goto done;
        }
        Py_XDECREF(r);
        PyErr_Clear();
    }
    PyErr_SetRaisedException(exc);
    if (res != NULL && res != (PyObject *)waiter) {
        PyGreenlet *cur = PyGreenlet_GetCurrent();
        PyErr_Format(gst->InvalidSwitchError, "Invalid switch into %R: got %R (expected %R; waiting on %R)",
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
    return hub_wait_impl(self->gst, (PyObject *)self, watcher);
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
    {NULL}
};

static PyMemberDef Hub_members[] = {
    {"loop", T_OBJECT, offsetof(HubObject, loop), 0, "The hub's event loop; None after destroy()."},
    {NULL}
};

static PyType_Slot Hub_slots[] = {
    {Py_tp_doc, "HubCore: the compiled core of the hub greenlet (switch, run, wait).\n\n"
                "gevent_c.hub.Hub subclasses it with the policy (construction, errors, "
                "join, destroy)."},
    {Py_tp_new, Hub_new},
    {Py_tp_dealloc, Hub_dealloc},
    {Py_tp_traverse, Hub_traverse},
    {Py_tp_clear, Hub_tp_clear},
    {Py_tp_methods, Hub_methods},
    {Py_tp_members, Hub_members},
    {0, NULL}
};

static PyType_Spec Hub_spec = {
    .name = "gevent_c._hub.HubCore",
    .basicsize = sizeof(HubObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC
             | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = Hub_slots,
};

/* ---------------------------------------------------------------------- */
/* Module functions: sleep, spawn_raw, kill                                */
/* ---------------------------------------------------------------------- */

PyObject *
hub_loop_of(gevc_state *gst, PyObject *hub)
{
    if (IS_HUB(gst, hub)) {
        PyObject *loop = ((HubObject *)hub)->loop;
        if (loop == NULL || loop == Py_None) {
            PyErr_SetString(PyExc_ValueError, "the hub was destroyed");
            return NULL;
        }
        return Py_NewRef(loop);
    }
    return PyObject_GetAttr(hub, gst->str_loop);
}

/* sleep(0): queue a callback that switches back into this greenlet (the
 * callback object plays the Waiter: if anything else resumes us first, we
 * stop it, so it never switches into us later). */
static PyObject *
sleep_yield(gevc_state *gst, PyObject *hub, PyObject *loop)
{
    PyGreenlet *cur = PyGreenlet_GetCurrent();
    if (cur == NULL)
        return NULL;
    CallbackObject *cb = NULL;
    PyObject *res = NULL;
    if (IS_LOOP(gst, loop) && (Py_TYPE(hub) == (PyTypeObject *)gst->default_hub_class
                               || PyGreenlet_Check(hub))) {
        cb = loop_queue_callback((LoopObject *)loop, (PyObject *)cur, NULL, CB_SLEEP);
        if (cb != NULL) {
            res = hub_switch_from(gst, hub, cur);
            if (cb->state == CB_PENDING)
                callback_stop(cb, NULL);
            Py_DECREF(cb);
        }
    }
    else {
        WaiterObject *waiter = waiter_create(gst, hub);
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
sleep_direct(gevc_state *gst, PyObject *hub, LoopObject *loop, double after, int ref)
{
    if (loop_check_alive(loop) < 0)
        return NULL;
    PyGreenlet *cur = PyGreenlet_GetCurrent();
    if (cur == NULL)
        return NULL;
    Py_INCREF(loop);
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
    w->direct_ident = PyThread_get_thread_ident();
    watcher_activate(w);
    res = hub_switch_from(gst, hub, cur);
    int fired = !w->active;
    PyObject *exc = PyErr_GetRaisedException();
    watcher_close_impl(w);
    PyErr_SetRaisedException(exc);
    if (res != NULL && !fired) {
        PyErr_Format(gst->InvalidSwitchError, "Invalid switch into %R: got %R (expected the timer "
                     "of sleep())", cur, res);
        Py_CLEAR(res);
    }
done:
    Py_XDECREF(w);
    loop_release_drain(loop);   /* the safe point: the sleep is over */
    Py_DECREF(loop);
    Py_DECREF(cur);
    return res;
}

/* Not inlined into mod_sleep: its locals would enlarge the stack that every
 * sleep(0) saves when it switches to the hub (greenlet copies it to the
 * heap, with a malloc once it passes pymalloc's 512 bytes). */
static GEVC_NOINLINE PyObject *
sleep_timer(gevc_state *gst, PyObject *hub, PyObject *loop, PyObject *seconds, PyObject *ref)
{
    PyObject *timer;
    if (IS_LOOP(gst, loop) && IS_HUB(gst, hub)) {
        double after = PyFloat_AsDouble(seconds);
        if (after == -1.0 && PyErr_Occurred())
            return NULL;
        int r = PyObject_IsTrue(ref);
        if (r < 0)
            return NULL;
        return sleep_direct(gst, hub, (LoopObject *)loop, after, r);
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
    PyObject *res = hub_wait_impl(gst, hub, timer);
    PyObject *exc = PyErr_GetRaisedException();
    if (PyObject_TypeCheck(timer, gst->WatcherType))
        watcher_close_impl((WatcherObject *)timer);
    else {
        PyObject *r = PyObject_CallMethod(timer, "close", NULL);
        Py_XDECREF(r);
        PyErr_Clear();
    }
    PyErr_SetRaisedException(exc);
    Py_DECREF(timer);
    return res;
}

#define GEVC_SLEEP_FOREVER 1e12

static PyObject *
mod_sleep(PyObject *m, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    gevc_state *gst = gevc_get_state(m);
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
        if (secs == -1.0 && PyErr_Occurred()) {
            /* an int too large for a float: as long as infinity, either way */
            if (!PyLong_Check(seconds) || !PyErr_ExceptionMatches(PyExc_OverflowError))
                return NULL;
            PyErr_Clear();
            PyObject *zero = PyLong_FromLong(0);
            int neg = zero ? PyObject_RichCompareBool(seconds, zero, Py_LT) : -1;
            Py_XDECREF(zero);
            if (neg < 0)
                return NULL;
            secs = neg ? -INFINITY : INFINITY;
        }
        if (isnan(secs)) {
            PyErr_SetString(PyExc_ValueError, "sleep() seconds must not be NaN");
            return NULL;
        }
        if (isinf(secs) && secs > 0)
            seconds = NULL;   /* until woken: sleep_timer takes the longest timer */
    }
    PyObject *hub = get_hub_impl(gst);
    if (hub == NULL)
        return NULL;
    PyObject *loop = hub_loop_of(gst, hub);
    PyObject *res = NULL;
    if (loop != NULL) {
        if (secs <= 0)
            res = sleep_yield(gst, hub, loop);
        else if (seconds != NULL)
            res = sleep_timer(gst, hub, loop, seconds, ref);
        else {
            /* sleep(inf), as gevent: until something wakes the greenlet
             * (kill(), a timeout, a throw()); a timer of GEVC_SLEEP_FOREVER
             * seconds, ~31,700 years (timers take finite times). */
            PyObject *forever = PyFloat_FromDouble(GEVC_SLEEP_FOREVER);
            res = forever ? sleep_timer(gst, hub, loop, forever, ref) : NULL;
            Py_XDECREF(forever);
        }
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
    gevc_state *gst = gevc_get_state(m);
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
    PyObject *hub = get_hub_impl(gst);
    if (hub == NULL)
        return NULL;
    PyObject *loop = hub_loop_of(gst, hub);
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
    /* greenlet crashes when its own allocation fails (it builds its
     * UserGreenlet at NULL: docs/reliability.md F10); make sure the memory
     * it is about to take is there, so running out of memory here is a
     * MemoryError.  A freed block this size serves its next allocations. */
    void *probe = malloc(GEVC_GREENLET_ALLOC_PROBE);
    if (probe == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    free(probe);
    g = (PyObject *)PyGreenlet_New(run, (PyGreenlet *)hub);
    if (g == NULL)
        goto done;
    if (PyObject_SetAttr(g, gst->str_loop, loop) < 0)
        goto done;
    if (IS_LOOP(gst, loop))
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
    gevc_state *gst = gevc_get_state(m);
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
    if (PyObject_GetOptionalAttr(greenlet, gst->str_kill, &kill) < 0)
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
    PyObject *hub = get_hub_impl(gst);
    PyObject *loop = hub ? hub_loop_of(gst, hub) : NULL;
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

static PyObject *
mod_set_default_hub_class(PyObject *m, PyObject *cls)
{
    gevc_state *gst = gevc_get_state(m);
    if (!PyType_Check(cls) || !PyType_IsSubtype((PyTypeObject *)cls, gst->HubType)) {
        PyErr_Format(PyExc_TypeError, "the hub class must be a subclass of %s, not %R",
                     gst->HubType->tp_name, cls);
        return NULL;
    }
    Py_XSETREF(gst->default_hub_class, Py_NewRef(cls));
    Py_RETURN_NONE;
}

static PyObject *
mod_main_thread_ident(PyObject *m, PyObject *Py_UNUSED(ignored))
{
    unsigned long id = main_thread_ident();
    if (id == 0 && PyErr_Occurred())
        return NULL;
    return PyLong_FromUnsignedLong(id);
}

static PyObject *
mod_get_saved_loop(PyObject *m, PyObject *Py_UNUSED(ignored))
{
    return get_saved_loop(gevc_get_state(m));
}

static PyObject *
mod_set_saved_loop(PyObject *m, PyObject *args)
{
    PyObject *loop;
    int owned = 0;
    if (!PyArg_ParseTuple(args, "O|p:_set_saved_loop", &loop, &owned))
        return NULL;
    if (set_saved_loop(gevc_get_state(m), loop, owned) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
mod_saved_loop_owned(PyObject *m, PyObject *Py_UNUSED(ignored))
{
    return PyBool_FromLong(saved_loop_owned());
}

static PyObject *
mod_thread_alive(PyObject *m, PyObject *ident)
{
    unsigned long id = PyLong_AsUnsignedLong(ident);
    if (id == (unsigned long)-1 && PyErr_Occurred())
        return NULL;
    return PyBool_FromLong(gevc_thread_alive(id));
}

static PyMethodDef module_methods[] = {
    {"set_default_hub_class", (PyCFunction)mod_set_default_hub_class, METH_O,
     "set_default_hub_class(cls): the hub class of threads that did not choose one."},
    {"_main_thread_ident", (PyCFunction)mod_main_thread_ident, METH_NOARGS,
     "The interpreter's main thread (not threading's, which monkey-patching replaces)."},
    {"_get_saved_loop", (PyCFunction)mod_get_saved_loop, METH_NOARGS,
     "The loop Hub.destroy(destroy_loop=False) kept for this thread's next hub, or None."},
    {"_set_saved_loop", (PyCFunction)mod_set_saved_loop, METH_VARARGS,
     "_set_saved_loop(loop, owned=False): the loop this thread's next hub uses; "
     "owned: that hub owns it (may destroy it)."},
    {"_saved_loop_owned", (PyCFunction)mod_saved_loop_owned, METH_NOARGS,
     "Whether this thread's saved loop is owned by the thread (not lent by set_loop())."},
    {"_thread_alive", (PyCFunction)mod_thread_alive, METH_O,
     "_thread_alive(ident): whether the thread is still alive in this interpreter."},
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
     "sleep(seconds=0, ref=True): block the current greenlet; seconds <= 0 only yields,\n"
     "inf sleeps until the greenlet is woken (kill, timeout), NaN raises ValueError."},
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

/* ---------------------------------------------------------------------- */
/* Module: state, exec, GC                                                 */
/* ---------------------------------------------------------------------- */

static gevc_state *
gevc_get_state(PyObject *module)
{
    return (gevc_state *)PyModule_GetState(module);
}

/* The state of the module that defined type (or a base of it): works for
 * Python subclasses of our types. */
gevc_state *
gevc_state_by_type(PyTypeObject *tp)
{
#if PY_VERSION_HEX >= 0x030B0000
    PyObject *m = PyType_GetModuleByDef(tp, &hubmodule);
#else
    PyObject *m = NULL;
    PyObject *mro = tp->tp_mro;
    for (Py_ssize_t i = 0; mro && i < PyTuple_GET_SIZE(mro) && m == NULL; i++) {
        PyTypeObject *base = (PyTypeObject *)PyTuple_GET_ITEM(mro, i);
        if (!(base->tp_flags & Py_TPFLAGS_HEAPTYPE))
            continue;
        PyObject *bm = PyType_GetModule(base);
        if (bm == NULL)
            PyErr_Clear();
        else if (PyModule_GetDef(bm) == &hubmodule)
            m = bm;
    }
    if (m == NULL)
        PyErr_Format(PyExc_TypeError, "PyType_GetModuleByDef: No superclass of '%s' has "
                     "the given module", tp->tp_name);
#endif
    return m == NULL ? NULL : gevc_get_state(m);
}

#define GEVC_STATE_OBJECTS(X) \
    X(HubType) X(GuardType) X(WaiterType) X(LoopType) X(CallbackType) X(WatcherType) \
    X(TimerType) X(IoType) X(SignalType) X(ChildType) X(IdleType) X(CheckType) \
    X(PrepareType) X(ForkType) X(AsyncType) X(StatType) X(PoolType) \
    X(LoopExit) X(BlockingSwitchOutError) X(InvalidSwitchError) X(HubDestroyed) \
    X(ConcurrentObjectUseError) X(InvalidThreadUseError) X(threadlocal) \
    X(default_hub_class) X(str_tls_hub) X(str_tls_guard) X(str_tls_loop) \
    X(str_switch_out) X(str_Hub) X(str_loop) \
    X(str_kill) X(str_handle_error) X(str_thread_ident) X(EVENTS_sentinel) \
    X(HandleStateType)

static int
hubmodule_traverse(PyObject *m, visitproc visit, void *arg)
{
    gevc_state *gst = gevc_get_state(m);
#define VISIT(name) Py_VISIT(gst->name);
    GEVC_STATE_OBJECTS(VISIT)
#undef VISIT
    return 0;
}

static int
hubmodule_clear(PyObject *m)
{
    gevc_state *gst = gevc_get_state(m);
#define CLEAR(name) Py_CLEAR(gst->name);
    GEVC_STATE_OBJECTS(CLEAR)
#undef CLEAR
    return 0;
}

static void
hubmodule_free(void *m)
{
    hubmodule_clear((PyObject *)m);
}

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

static PyTypeObject *
add_type(PyObject *m, const char *name, PyType_Spec *spec, PyTypeObject *base)
{
    PyTypeObject *tp = (PyTypeObject *)PyType_FromModuleAndSpec(m, spec, (PyObject *)base);
    if (tp == NULL)
        return NULL;
    if (name != NULL && PyModule_AddObjectRef(m, name, (PyObject *)tp) < 0) {
        Py_DECREF(tp);
        return NULL;
    }
    return tp;
}

static int
hubmodule_exec(PyObject *m)
{
    gevc_state *gst = gevc_get_state(m);
    /* greenlet keeps process-wide state and the libuv default loop, the
     * signal registry and the fork hooks are process-wide: one interpreter */
    if (PyInterpreterState_Get() != PyInterpreterState_Main()) {
        PyErr_SetString(PyExc_ImportError,
                        "gevent_c._hub cannot be loaded in a subinterpreter "
                        "(greenlet and libuv's default loop are process-wide)");
        return -1;
    }
    PyGreenlet_Import();
    if (_PyGreenlet_API == NULL)
        return -1;
    if (PyGreenlet_Type.tp_basicsize != (Py_ssize_t)sizeof(PyGreenlet)) {
        PyErr_Format(PyExc_ImportError,
                     "greenlet.greenlet size changed (%zd, compiled against %zd): "
                     "rebuild gevent_c against the installed greenlet",
                     PyGreenlet_Type.tp_basicsize, (Py_ssize_t)sizeof(PyGreenlet));
        return -1;
    }
#define INTERN(field, text) \
    if (!(gst->field = PyUnicode_InternFromString(text))) return -1;
    INTERN(str_switch_out, "switch_out")
    INTERN(str_tls_hub, GEVC_TLS_HUB_KEY)
    INTERN(str_tls_guard, "gevent_c.hub_guard")
    INTERN(str_tls_loop, "gevent_c.loop")
    INTERN(str_Hub, "Hub")
    INTERN(str_loop, "loop")
    INTERN(str_kill, "kill")
    INTERN(str_handle_error, "handle_error")
    INTERN(str_thread_ident, "thread_ident")
#undef INTERN
#define IMPORT(field, module, name) \
    if (!(gst->field = import_attr(module, name))) return -1;
    IMPORT(threadlocal, "gevent_c._hub_local", "_threadlocal")
    IMPORT(LoopExit, "gevent_c.exceptions", "LoopExit")
    IMPORT(BlockingSwitchOutError, "gevent_c.exceptions", "BlockingSwitchOutError")
    IMPORT(InvalidSwitchError, "gevent_c.exceptions", "InvalidSwitchError")
    IMPORT(ConcurrentObjectUseError, "gevent_c.exceptions", "ConcurrentObjectUseError")
    IMPORT(HubDestroyed, "gevent_c.exceptions", "HubDestroyed")
    IMPORT(InvalidThreadUseError, "gevent_c.exceptions", "InvalidThreadUseError")
#undef IMPORT
    if (!(gst->HubType = add_type(m, "HubCore", &Hub_spec, &PyGreenlet_Type))
        || !(gst->GuardType = add_type(m, NULL, &guard_spec, NULL))
        || !(gst->WaiterType = add_type(m, "Waiter", &waiter_spec, NULL))
        || !(gst->LoopType = add_type(m, "loop", &loop_spec, NULL))
        || !(gst->CallbackType = add_type(m, "callback", &callback_spec, NULL))
        || !(gst->WatcherType = add_type(m, "watcher", &watcher_spec, NULL))
        || !(gst->TimerType = add_type(m, "timer", &timer_spec, gst->WatcherType))
        || !(gst->IoType = add_type(m, "io", &io_spec, gst->WatcherType))
        || !(gst->SignalType = add_type(m, "signal", &signal_spec, gst->WatcherType))
        || !(gst->ChildType = add_type(m, "child", &child_spec, gst->WatcherType))
        || !(gst->IdleType = add_type(m, "idle", &idle_spec, gst->WatcherType))
        || !(gst->PrepareType = add_type(m, "prepare", &prepare_spec, gst->WatcherType))
        || !(gst->CheckType = add_type(m, "check", &check_spec, gst->WatcherType))
        || !(gst->ForkType = add_type(m, "fork", &fork_spec, gst->WatcherType))
        || !(gst->AsyncType = add_type(m, "async_", &async_spec, gst->WatcherType))
        || !(gst->StatType = add_type(m, "stat", &stat_spec, gst->WatcherType))
        || !(gst->PoolType = add_type(m, "ThreadPoolBase", &pool_spec, NULL)))
        return -1;
    /* Waiter(hub) without an argument tuple (Py_tp_vectorcall: 3.14+) */
    gst->WaiterType->tp_vectorcall = waiter_vectorcall;

    static int atfork_installed = 0;
    if (!atfork_installed) {
        pthread_atfork(NULL, NULL, gevc_atfork_child);
        atfork_installed = 1;
    }
    if (PyModule_AddIntConstant(m, "READ", UV_READABLE) < 0
        || PyModule_AddIntConstant(m, "WRITE", UV_WRITABLE) < 0
        || PyModule_AddIntConstant(m, "READWRITE", UV_READABLE | UV_WRITABLE) < 0
        || PyModule_AddIntConstant(m, "MAXPRI", GEVC_MAXPRI) < 0
        || PyModule_AddIntConstant(m, "MINPRI", GEVC_MINPRI) < 0)
        return -1;
    return 0;
}

static PyModuleDef_Slot hubmodule_slots[] = {
    {Py_mod_exec, hubmodule_exec},
#if PY_VERSION_HEX >= 0x030C0000
    {Py_mod_multiple_interpreters, Py_MOD_MULTIPLE_INTERPRETERS_NOT_SUPPORTED},
#endif
    {0, NULL}
};

static struct PyModuleDef hubmodule = {
    PyModuleDef_HEAD_INIT,
    .m_name = "gevent_c._hub",
    .m_doc = "C core of gevent_c: HubCore, Waiter, the libuv loop and its watchers.",
    .m_size = sizeof(gevc_state),
    .m_methods = module_methods,
    .m_slots = hubmodule_slots,
    .m_traverse = hubmodule_traverse,
    .m_clear = hubmodule_clear,
    .m_free = hubmodule_free,
};

PyMODINIT_FUNC PyInit__hub(void);

PyMODINIT_FUNC
PyInit__hub(void)
{
    return PyModuleDef_Init(&hubmodule);
}
