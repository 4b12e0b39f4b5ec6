/*
 * watcher.c -- the common watcher contract (docs/semantics.md, 'Watchers') shared by every
 * watcher type: start/stop/close, callback/args/ref/priority/active/pending,
 * context manager, repr, GC, and dispatch of recorded events.
 *
 */
#include "gevent_c.h"

int
watcher_check_usable(WatcherObject *w)
{
    if (w->closed) {
        PyErr_SetString(PyExc_ValueError, "operation on closed watcher");
        return -1;
    }
    if (w->loop == NULL || w->loop->uv == NULL || w->loop->destroying || w->detached) {
        PyErr_SetString(PyExc_ValueError, "operation on destroyed loop");
        return -1;
    }
    return loop_check_own_thread(w->loop);
}

/* Common part of a constructor: the handle must be allocated and
 * initialised by the caller afterwards (watcher_attach_handle). */
int
watcher_init_common(WatcherObject *w, LoopObject *loop, const WatcherOps *ops,
                    PyObject *ref, PyObject *priority)
{
    gevc_state *gst = gevc_state_by_type(Py_TYPE(w));
    if (gst == NULL)
        return -1;
    if (!PyObject_TypeCheck((PyObject *)loop, gst->LoopType)) {
        PyErr_Format(PyExc_TypeError, "expected a gevent_c.core.loop, not %.200s",
                     Py_TYPE(loop)->tp_name);
        return -1;
    }
    /* ref's __bool__ and priority's __index__ are Python: read them first
     * (they may destroy the loop), then check the loop */
    int r = ref ? PyObject_IsTrue(ref) : 1;
    if (r < 0)
        return -1;
    long p = 0;
    if (priority && priority != Py_None) {
        p = PyLong_AsLong(priority);
        if (p == -1 && PyErr_Occurred())
            return -1;
    }
    /* creating a watcher initialises a libuv handle (the caller does it
     * next, with no Python in between): not on a destroyed loop, nor while
     * the loop polls in another thread */
    if (loop_check_alive(loop) < 0 || loop_check_own_thread(loop) < 0)
        return -1;
    w->ops = ops;
    w->loop = (LoopObject *)Py_NewRef((PyObject *)loop);
    w->ref = r ? 1 : 0;
    if (priority && priority != Py_None)
        w->priority = gevc_clamp_priority(p);
    return 0;
}

/* Re-entrancy (docs/design.md): a reference a watcher drops while C may
 * still use its or its loop's native state goes to the loop's release list;
 * without a loop (closed) there is no native state left to protect. */
void
watcher_release(WatcherObject *w, PyObject *o)
{
    if (w->loop != NULL)
        loop_defer_release(w->loop, o);
    else
        Py_XDECREF(o);
}

/* *slot = value (stolen), the old value released as above */
void
watcher_setref(WatcherObject *w, PyObject **slot, PyObject *value)
{
    PyObject *old = *slot;
    *slot = value;
    watcher_release(w, old);
}

/* The safe point of a watcher method called from Python: hold the loop
 * across the operation (watcher_op_begin), then drop what the operation
 * released (watcher_op_end), when C no longer uses any native state. */
LoopObject *
watcher_op_begin(WatcherObject *w)
{
    return (LoopObject *)Py_XNewRef((PyObject *)w->loop);
}

void
watcher_op_end(LoopObject *loop)
{
    if (loop != NULL) {
        loop_release_drain(loop);
        Py_DECREF(loop);
    }
}

void
watcher_attach_handle(WatcherObject *w, uv_handle_t *h)
{
    h->data = w;
    w->handle = h;
}

/* Mark inactive and release the self reference (may deallocate w, so the
 * caller must hold its own reference if it keeps using w). */
void
watcher_deactivate(WatcherObject *w)
{
    if (w->active) {
        w->active = 0;
        if (w->ref && w->loop)
            w->loop->nactive_ref--;
    }
    w->pending = 0;
    if (w->self_ref) {
        w->self_ref = 0;
        watcher_release(w, (PyObject *)w);
    }
}

/* Runs no Python when the watcher has a loop: callback, args and the self
 * reference go to the loop's release list. */
void
watcher_stop_impl(WatcherObject *w)
{
    Py_INCREF(w);
    if (w->active && !w->detached && w->loop && w->loop->uv)
        w->ops->native_stop(w);
    watcher_setref(w, &w->callback, NULL);
    watcher_setref(w, &w->args, NULL);
    w->direct_switch = 0;
    watcher_deactivate(w);
    Py_DECREF(w);
}

/* Close and (in its close callback) free the watcher's libuv handle. */
void
watcher_close_uv_handle(WatcherObject *w)
{
    uv_handle_t *h = w->handle;
    w->handle = NULL;
    if (h == NULL)
        return;
    h->data = NULL;
    if (w->loop == NULL || w->loop->uv == NULL)
        return;  /* the loop was destroyed and closed (and freed) the handle */
    if (w->loop->in_uv_nogil)
        loop_orphan_handle(w->loop, h);  /* GC in another thread */
    else if (!uv_is_closing(h))
        uv_close(h, free_handle_cb);
}

static void
watcher_close_handle(WatcherObject *w)
{
    if (w->ops && w->ops->native_close)
        w->ops->native_close(w);
    else
        watcher_close_uv_handle(w);
}

void
watcher_close_impl(WatcherObject *w)
{
    if (w->closed)
        return;
    Py_INCREF(w);
    watcher_stop_impl(w);
    watcher_close_handle(w);
    w->closed = 1;
    Py_CLEAR(w->loop);
    Py_DECREF(w);
}

/* The one way a watcher leaves a loop that is being destroyed (loop
 * destroy walk, the loop's watcher lists, io's fd polls): its native stop
 * runs while the loop is still whole, so process-wide resources go back (a
 * signal's or SIGCHLD's handler and disposition, the loop's signal slot);
 * then it is marked detached and inactive, and its self reference moves to
 * the loop's release list (drained once the loop is consistent, since that
 * may run arbitrary code).  Never runs Python code itself. */
void
watcher_detach(WatcherObject *w)
{
    if (w->detached)
        return;
    if (w->active && w->loop && w->loop->uv)
        w->ops->native_stop(w);
    w->detached = 1;
    if (w->active && w->ref && w->loop)
        w->loop->nactive_ref--;
    w->active = 0;
    w->pending = 0;
    if (w->self_ref) {
        w->self_ref = 0;
        watcher_release(w, (PyObject *)w);
    }
}

int
check_callable(PyObject *cb)
{
    if (cb == NULL || !PyCallable_Check(cb)) {
        PyErr_Format(PyExc_TypeError, "Expected callable, not %R", cb ? cb : Py_None);
        return -1;
    }
    return 0;
}

/* Mark active (counted in activecnt if ref) and take the self reference. */
void
watcher_activate(WatcherObject *w)
{
    if (!w->active) {
        w->active = 1;
        if (w->ref)
            w->loop->nactive_ref++;
    }
    if (!w->self_ref) {
        w->self_ref = 1;
        Py_INCREF(w);
    }
}

/* Store callback and args, (re)arm the native handle, take the self ref.
 * Runs no Python: the callback and args replaced go to the loop's release
 * list (their finalizers could close the watcher or destroy the loop
 * between the checks above and the native start). */
int
watcher_start_impl(WatcherObject *w, PyObject *callback, PyObject *args)
{
    if (watcher_check_usable(w) < 0 || check_callable(callback) < 0)
        return -1;
    /* a failed (re)start leaves the watcher as it was: an active one keeps
     * its callback, an inactive one has none */
    PyObject *old_cb = w->callback, *old_args = w->args;
    w->callback = Py_NewRef(callback);
    w->args = Py_XNewRef(args);
    /* 0, or a libuv error code, or -1 with a Python exception set */
    int err = w->ops->native_start(w);
    if (err < 0) {
        if (!PyErr_Occurred())
            gevc_uv_error(err);
        PyObject *new_cb = w->callback, *new_args = w->args;
        w->callback = w->active ? old_cb : NULL;
        w->args = w->active ? old_args : NULL;
        if (!w->active) {
            watcher_release(w, old_cb);
            watcher_release(w, old_args);
        }
        watcher_release(w, new_cb);
        watcher_release(w, new_args);
        return -1;
    }
    watcher_release(w, old_cb);
    watcher_release(w, old_args);
    w->direct_switch = 0;
    watcher_activate(w);
    return 0;
}

/* args[0] is the callback, the rest its arguments */
static PyObject *
args_tail(PyObject *args, PyObject **callback)
{
    Py_ssize_t n = PyTuple_GET_SIZE(args);
    if (n < 1) {
        PyErr_SetString(PyExc_TypeError, "start() missing required argument 'callback'");
        return NULL;
    }
    *callback = PyTuple_GET_ITEM(args, 0);
    return PyTuple_GetSlice(args, 1, n);
}

/* start(callback, *args): the common part of every start() method */
PyObject *
watcher_start_from_args(WatcherObject *w, PyObject *args)
{
    PyObject *callback;
    PyObject *tail = args_tail(args, &callback);
    if (tail == NULL)
        return NULL;
    LoopObject *loop = watcher_op_begin(w);
    int rc = watcher_start_impl(w, callback, tail);
    Py_DECREF(tail);
    watcher_op_end(loop);
    if (rc < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* kwds may hold only `name`, a flag (default dflt) */
int
parse_flag_kw(PyObject *kwds, const char *name, int dflt, int *out)
{
    *out = dflt;
    if (kwds == NULL || PyDict_GET_SIZE(kwds) == 0)
        return 0;
    PyObject *key, *value;
    Py_ssize_t pos = 0;
    while (PyDict_Next(kwds, &pos, &key, &value)) {
        if (name == NULL || !PyUnicode_Check(key) || PyUnicode_CompareWithASCIIString(key, name)) {
            PyErr_Format(PyExc_TypeError, "start() got an unexpected keyword argument %R", key);
            return -1;
        }
        int r = PyObject_IsTrue(value);
        if (r < 0)
            return -1;
        *out = r;
    }
    return 0;
}

static PyObject *
watcher_start(WatcherObject *w, PyObject *args, PyObject *kwds)
{
    int unused;
    if (parse_flag_kw(kwds, NULL, 0, &unused) < 0)
        return NULL;
    return watcher_start_from_args(w, args);
}

PyObject *
watcher_stop(WatcherObject *w, PyObject *Py_UNUSED(ignored))
{
    if (w->loop && loop_check_own_thread(w->loop) < 0)
        return NULL;
    LoopObject *loop = watcher_op_begin(w);
    watcher_stop_impl(w);
    watcher_op_end(loop);
    Py_RETURN_NONE;
}

static PyObject *
watcher_close(WatcherObject *w, PyObject *Py_UNUSED(ignored))
{
    if (w->loop && loop_check_own_thread(w->loop) < 0)
        return NULL;
    LoopObject *loop = watcher_op_begin(w);
    watcher_close_impl(w);
    watcher_op_end(loop);
    Py_RETURN_NONE;
}

static PyObject *
watcher_enter(WatcherObject *w, PyObject *Py_UNUSED(ignored))
{
    return Py_NewRef((PyObject *)w);
}

static PyObject *
watcher_exit(WatcherObject *w, PyObject *args)
{
    if (w->loop && loop_check_own_thread(w->loop) < 0)
        return NULL;
    LoopObject *loop = watcher_op_begin(w);
    watcher_close_impl(w);
    watcher_op_end(loop);
    Py_RETURN_FALSE;
}

/* Called by the loop for a recorded event; the loop holds a reference.
 * What it drops goes to the loop's release list: the loop's dispatch
 * drains it after each event (a safe point). */
int
watcher_dispatch(WatcherObject *w)
{
    LoopObject *loop = w->loop;
    if (w->callback == NULL || loop == NULL)
        return 0;
    if (loop_check_signals(loop) < 0)
        return -1;
    if (w->callback == NULL)
        return 0;
    int was_active = w->active;
    if (w->ops->fired)
        w->ops->fired(w);
    int oneshot_done = was_active && !w->active;
    PyObject *callback = Py_NewRef(w->callback);
    PyObject *args = w->args ? Py_NewRef(w->args) : NULL;
    Py_INCREF(loop);
    PyObject *res;
    int direct = w->direct_switch;
    if (direct && w->direct_ident != PyThread_get_thread_ident()) {
        /* a greenlet of another thread waits on this loop's watcher: never
         * switch across threads (greenlet would raise in whichever greenlet
         * of this thread runs next) */
        PyErr_Format(loop->gst->InvalidThreadUseError,
                     "%R waits in another thread on a watcher of this loop", callback);
        res = NULL;
    }
    else if (direct) {
        w->direct_fired = 1;
        loop_defer_release(loop, loop->handoff_last);
        loop->handoff_last = NULL;
        res = PyGreenlet_Switch((PyGreenlet *)callback, NULL, NULL);
        if (loop->handoff_last != NULL) {
            /* the greenlet handed off (loop_handoff): the last one in the
             * chain is the one that came back (or died) */
            if (res == NULL) {
                loop_defer_release(loop, callback);
                callback = loop->handoff_last;
            }
            else
                loop_defer_release(loop, loop->handoff_last);
            loop->handoff_last = NULL;
        }
    }
    else if (w->ops->call)
        res = w->ops->call(w, callback, args);
    else
        res = call_callback(callback, args);
    loop_defer_release(loop, args);
    int rc = 0;
    if (res == NULL) {
        rc = loop_report_call_error(loop, callback, direct, (PyObject *)w);
        if (w->ops->stop_on_error)
            watcher_stop_impl(w);
    }
    else {
        loop_defer_release(loop, res);
    }
    if (oneshot_done && !w->active) {
        /* a fired one-shot watcher not restarted by its callback is stopped,
         * as libev's are: callback and args go */
        watcher_setref(w, &w->callback, NULL);
        watcher_setref(w, &w->args, NULL);
        w->direct_switch = 0;
    }
    loop_defer_release(loop, callback);
    Py_DECREF(loop);
    return rc;
}

/* ---- attributes ---- */

static PyObject *
watcher_get_callback(WatcherObject *w, void *c)
{
    /* a greenlet resumed directly (hub.wait, sleep) shows as its bound
     * switch, as the callback objects of sleep(0) and spawn_raw do */
    if (w->callback && w->direct_switch) {
        /* owned across the lookup (it may run a GC pass) */
        PyObject *g = Py_NewRef(w->callback);
        PyObject *sw = PyObject_GetAttrString(g, "switch");
        Py_DECREF(g);
        return sw;
    }
    return Py_NewRef(w->callback ? w->callback : Py_None);
}

static int
watcher_set_callback(WatcherObject *w, PyObject *value, void *c)
{
    LoopObject *loop = watcher_op_begin(w);
    if (value == NULL || value == Py_None) {
        watcher_setref(w, &w->callback, NULL);
        w->direct_switch = 0;
    }
    else if (check_callable(value) < 0) {
        watcher_op_end(loop);
        return -1;
    }
    else {
        watcher_setref(w, &w->callback, Py_NewRef(value));
        w->direct_switch = 0;   /* now an ordinary callback */
    }
    watcher_op_end(loop);
    return 0;
}

static PyObject *
watcher_get_args(WatcherObject *w, void *c)
{
    return Py_NewRef(w->args ? w->args : Py_None);
}

static int
watcher_set_args(WatcherObject *w, PyObject *value, void *c)
{
    if (value != NULL && value != Py_None && !PyTuple_Check(value)) {
        PyErr_Format(PyExc_TypeError, "args must be a tuple or None, not %.200s",
                     Py_TYPE(value)->tp_name);
        return -1;
    }
    LoopObject *loop = watcher_op_begin(w);
    watcher_setref(w, &w->args, value == NULL || value == Py_None ? NULL : Py_NewRef(value));
    watcher_op_end(loop);
    return 0;
}

static PyObject *
watcher_get_active(WatcherObject *w, void *c)
{
    return PyBool_FromLong(w->active);
}

static PyObject *
watcher_get_pending(WatcherObject *w, void *c)
{
    return PyBool_FromLong(w->pending);
}

static PyObject *
watcher_get_ref(WatcherObject *w, void *c)
{
    return PyBool_FromLong(w->ref);
}

static int
watcher_set_ref(WatcherObject *w, PyObject *value, void *c)
{
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete ref");
        return -1;
    }
    int r = PyObject_IsTrue(value);
    if (r < 0)
        return -1;
    if (r == w->ref)
        return 0;
    w->ref = r;
    if (w->active && w->loop)
        w->loop->nactive_ref += r ? 1 : -1;
    return 0;
}

static PyObject *
watcher_get_priority(WatcherObject *w, void *c)
{
    return PyLong_FromLong(w->priority);
}

static int
watcher_set_priority(WatcherObject *w, PyObject *value, void *c)
{
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete priority");
        return -1;
    }
    long p = PyLong_AsLong(value);   /* __index__ first: it may start the watcher */
    if (p == -1 && PyErr_Occurred())
        return -1;
    if (w->active) {
        PyErr_SetString(PyExc_AttributeError, "Cannot set priority of an active watcher");
        return -1;
    }
    w->priority = gevc_clamp_priority(p);
    return 0;
}

static PyObject *
watcher_get_loop(WatcherObject *w, void *c)
{
    return Py_NewRef(w->loop ? (PyObject *)w->loop : Py_None);
}

/* Every attribute set on every watcher type (ref, priority, callback,
 * args, io's fd and events, child's rpid/rstatus, and any added later)
 * checks the owner thread first, as the methods do: while the loop polls
 * in another thread without the GIL, its libuv callbacks write the status
 * bits (pending) that share a word with ref and active. */
static int
watcher_setattro(PyObject *self, PyObject *name, PyObject *value)
{
    WatcherObject *w = (WatcherObject *)self;
    if (w->loop && loop_check_own_thread(w->loop) < 0)
        return -1;
    return PyObject_GenericSetAttr(self, name, value);
}

static PyObject *
watcher_repr(WatcherObject *w)
{
    PyObject *name = PyType_GetName(Py_TYPE(w));
    if (name == NULL)
        return NULL;
    PyObject *parts = PyUnicode_FromFormat("<%U at %p", name, w);
    Py_DECREF(name);
    if (parts == NULL)
        return NULL;
#define APPEND(expr) do { \
        PyObject *_piece = (expr); \
        if (_piece == NULL) { Py_DECREF(parts); return NULL; } \
        PyUnicode_AppendAndDel(&parts, _piece); \
        if (parts == NULL) return NULL; \
    } while (0)
    if (w->ops->details) {
        PyObject *d = w->ops->details(w);
        if (d == NULL) {
            Py_DECREF(parts);
            return NULL;
        }
        APPEND(PyUnicode_FromFormat(" %U", d));
        Py_DECREF(d);
    }
    if (w->closed)
        APPEND(PyUnicode_FromString(" closed"));
    if (w->active)
        APPEND(PyUnicode_FromString(" active"));
    if (w->pending)
        APPEND(PyUnicode_FromString(" pending"));
    /* the reprs run Python that may stop or close this watcher: format
     * owned references taken before, not the fields */
    PyObject *cb = Py_XNewRef(w->callback), *args = Py_XNewRef(w->args);
    PyObject *piece = cb ? PyUnicode_FromFormat(" callback=%R", cb) : PyUnicode_FromString("");
    if (piece != NULL && args != NULL)
        PyUnicode_AppendAndDel(&piece, PyUnicode_FromFormat(" args=%R", args));
    Py_XDECREF(cb);
    Py_XDECREF(args);
    APPEND(piece);
    APPEND(PyUnicode_FromString(">"));
#undef APPEND
    return parts;
}

int
watcher_traverse(WatcherObject *w, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(w));
    Py_VISIT(w->loop);
    Py_VISIT(w->callback);
    Py_VISIT(w->args);
    return 0;
}

int
watcher_tp_clear(WatcherObject *w)
{
    /* the native handle first: the finalizers the drops below may run
     * could destroy the loop the handle belongs to */
    watcher_close_handle(w);
    Py_CLEAR(w->callback);
    Py_CLEAR(w->args);
    Py_CLEAR(w->loop);
    return 0;
}

void
watcher_dealloc_body(WatcherObject *w)
{
    if (w->weakreflist)
        PyObject_ClearWeakRefs((PyObject *)w);
    /* an active watcher holds itself, so here it is inactive */
    PyTypeObject *tp = Py_TYPE(w);
    watcher_tp_clear(w);
    tp->tp_free((PyObject *)w);
    Py_DECREF(tp);
}

static void
watcher_dealloc(WatcherObject *w)
{
    PyObject_GC_UnTrack(w);
    watcher_dealloc_body(w);
}


/* feed(revents, callback, *args), libev's ev_feed_event: callback(*args)
 * runs at the loop's next callback pass as this watcher's event, whether
 * the watcher is active or not, and it stays as active as it was (an
 * active timer still fires when due).  callback and args replace the
 * watcher's, as in gevent's libev core.  An io watcher passes revents to
 * its callback as a real event does (pass_events, EVENTS); other watchers
 * do not pass revents.  Feeding a watcher whose event is already pending
 * merges into that one dispatch, as libev does. */
static PyObject *
watcher_feed(WatcherObject *w, PyObject *args)
{
    Py_ssize_t n = PyTuple_GET_SIZE(args);
    if (n < 2) {
        PyErr_SetString(PyExc_TypeError, "feed() takes revents and callback, then *args");
        return NULL;
    }
    int overflow;
    long rev = PyLong_AsLongAndOverflow(PyTuple_GET_ITEM(args, 0), &overflow);
    if (rev == -1 && PyErr_Occurred())
        return NULL;
    if (overflow || rev < INT_MIN || rev > INT_MAX) {
        PyErr_SetString(PyExc_OverflowError, "revents out of range");
        return NULL;
    }
    PyObject *callback = PyTuple_GET_ITEM(args, 1);
    if (watcher_check_usable(w) < 0 || loop_check_own_thread(w->loop) < 0
            || check_callable(callback) < 0)
        return NULL;
    PyObject *tail = PyTuple_GetSlice(args, 2, n);
    if (tail == NULL)
        return NULL;
    LoopObject *loop = watcher_op_begin(w);
    watcher_setref(w, &w->callback, Py_NewRef(callback));
    watcher_setref(w, &w->args, tail);
    w->direct_switch = 0;
    int rc = loop_fire_soon(w);
    if (rc == 0 && w->ops == &io_ops)
        ((IoObject *)w)->revents |= (int)rev;
    watcher_op_end(loop);
    if (rc < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyMethodDef watcher_methods[] = {
    {"start", (PyCFunction)(void (*)(void))watcher_start, METH_VARARGS | METH_KEYWORDS,
     "start(callback, *args): activate; an active watcher keeps itself alive."},
    {"stop", (PyCFunction)watcher_stop, METH_NOARGS,
     "Deactivate; callback and args become None.  Idempotent."},
    {"feed", (PyCFunction)watcher_feed, METH_VARARGS,
     "feed(revents, callback, *args): make this watcher pending: callback(*args) "
     "runs at the loop's next callback pass; the watcher stays as active as it was."},
    {"close", (PyCFunction)watcher_close, METH_NOARGS,
     "Stop and release the native handle.  Idempotent; start() afterwards raises."},
    {"__enter__", (PyCFunction)watcher_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)watcher_exit, METH_VARARGS, NULL},
    {NULL}
};

static PyGetSetDef watcher_getset[] = {
    {"callback", (getter)watcher_get_callback, (setter)watcher_set_callback, NULL},
    {"args", (getter)watcher_get_args, (setter)watcher_set_args, NULL},
    {"active", (getter)watcher_get_active, NULL, NULL},
    {"pending", (getter)watcher_get_pending, NULL, NULL},
    {"ref", (getter)watcher_get_ref, (setter)watcher_set_ref, NULL},
    {"priority", (getter)watcher_get_priority, (setter)watcher_set_priority,
     "Clamped to [MINPRI, MAXPRI]; of the events one loop pass dispatches, "
     "higher priorities run first."},
    {"loop", (getter)watcher_get_loop, NULL, NULL},
    {NULL}
};

static PyMemberDef watcher_members[] = {
    {"__weaklistoffset__", T_PYSSIZET, offsetof(WatcherObject, weakreflist), READONLY},
    {NULL}
};

/* Abstract: the loop's factories (or the subtypes) make watchers. */
static PyType_Slot watcher_slots[] = {
    {Py_tp_doc, "Base class of every watcher type."},
    {Py_tp_dealloc, watcher_dealloc},
    {Py_tp_traverse, watcher_traverse},
    {Py_tp_clear, watcher_tp_clear},
    {Py_tp_repr, watcher_repr},
    {Py_tp_setattro, watcher_setattro},
    {Py_tp_methods, watcher_methods},
    {Py_tp_getset, watcher_getset},
    {Py_tp_members, watcher_members},
    {0, NULL}
};

PyType_Spec watcher_spec = {
    .name = "gevent_c.core.watcher",
    .basicsize = sizeof(WatcherObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE
             | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = watcher_slots,
};

/* ---- lists of active watchers run by the loop itself ---- */

int
wlist_add(WatcherList *l, WatcherObject *w)
{
    if (l->n == l->cap) {
        Py_ssize_t cap = l->cap ? l->cap * 2 : 8;
        WatcherObject **items = PyMem_Realloc(l->items, (size_t)cap * sizeof(*items));
        if (items == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        l->items = items;
        l->cap = cap;
    }
    l->items[l->n++] = w;
    return 0;
}

void
wlist_remove(WatcherList *l, WatcherObject *w)
{
    for (Py_ssize_t i = 0; i < l->n; i++)
        if (l->items[i] == w) {
            memmove(&l->items[i], &l->items[i + 1], (size_t)(l->n - i - 1) * sizeof(*l->items));
            l->n--;
            return;
        }
}

int
wlist_contains(WatcherList *l, WatcherObject *w)
{
    for (Py_ssize_t i = 0; i < l->n; i++)
        if (l->items[i] == w)
            return 1;
    return 0;
}

/* Record every listed watcher (prepare: dispatched at once, before any
 * Python code runs). */
void
wlist_record_all(WatcherList *l)
{
    for (Py_ssize_t i = 0; i < l->n; i++)
        loop_record(l->items[i]);
}

/* Fire every listed watcher soon (fork watchers after reinit): all of
 * them, or (-1, MemoryError) none. */
int
wlist_fire_all(WatcherList *l)
{
    if (l->n == 0)
        return 0;
    if (loop_reserve_callbacks(l->items[0]->loop, l->n) < 0)
        return -1;
    for (Py_ssize_t i = 0; i < l->n; i++)
        (void)loop_fire_soon(l->items[i]);   /* reserved: cannot fail */
    return 0;
}

/* Loop destroyed: detach every listed watcher (watcher_detach).  Native
 * stops of listed watchers (signal, child, prepare, fork) remove them from
 * the list, so take them from the end; an inactive one (asyncs lists those
 * too) stays and is dropped here. */
void
wlist_detach_all(WatcherList *l)
{
    while (l->n > 0) {
        Py_ssize_t n = l->n;
        watcher_detach(l->items[n - 1]);
        if (l->n == n)
            l->n--;
    }
    PyMem_Free(l->items);
    l->items = NULL;
    l->n = l->cap = 0;
}

/* Software watchers have no libuv handle: ref counts only in activecnt. */
void
soft_native_close(WatcherObject *w)
{
    w->handle = NULL;
}

/* loop.<factory>(*args, **kw) == type(loop, *args, **kw) */
PyObject *
loop_make_watcher(PyTypeObject *type, LoopObject *loop, PyObject *args, PyObject *kwds)
{
    if (loop_check_alive(loop) < 0)
        return NULL;
    Py_ssize_t n = PyTuple_GET_SIZE(args);
    PyObject *full = PyTuple_New(n + 1);
    if (full == NULL)
        return NULL;
    PyTuple_SET_ITEM(full, 0, Py_NewRef((PyObject *)loop));
    for (Py_ssize_t i = 0; i < n; i++)
        PyTuple_SET_ITEM(full, i + 1, Py_NewRef(PyTuple_GET_ITEM(args, i)));
    PyObject *res = PyObject_Call((PyObject *)type, full, kwds);
    Py_DECREF(full);
    return res;
}
