/*
 * misc_watchers.c -- idle, check (native libuv handles), prepare and fork
 * (run by the loop itself), and async_ (thread-safe send).
 *
 * prepare runs in software just before the loop polls, so its Python
 * callback really runs before the poll (a native uv_prepare's callback could
 * only be recorded and would run after it).  fork watchers run in a forked
 * child after loop.reinit().
 */
#include "gevent_c.h"


/* ---- idle / check: native handles whose C callback records ---- */

static void
record_handle_cb(uv_handle_t *h)
{
    WatcherObject *w = (WatcherObject *)h->data;
    if (w != NULL)
        loop_record(w);
}

static void
idle_cb(uv_idle_t *h)
{
    record_handle_cb((uv_handle_t *)h);
}

static void
check_cb(uv_check_t *h)
{
    record_handle_cb((uv_handle_t *)h);
}

static int
idle_native_start(WatcherObject *w)
{
    return uv_idle_start((uv_idle_t *)w->handle, idle_cb);
}

static void
idle_native_stop(WatcherObject *w)
{
    uv_idle_stop((uv_idle_t *)w->handle);
}

static int
check_native_start(WatcherObject *w)
{
    return uv_check_start((uv_check_t *)w->handle, check_cb);
}

static void
check_native_stop(WatcherObject *w)
{
    uv_check_stop((uv_check_t *)w->handle);
}

static const WatcherOps idle_ops = {"idle", idle_native_start, idle_native_stop};
static const WatcherOps check_ops = {"check", check_native_start, check_native_stop};

/* ---- prepare / fork: listed on the loop, no libuv handle ---- */

static int
prepare_native_start(WatcherObject *w)
{
    if (wlist_contains(&w->loop->prepares, w))
        return 0;
    return wlist_add(&w->loop->prepares, w);
}

static void
prepare_native_stop(WatcherObject *w)
{
    wlist_remove(&w->loop->prepares, w);
}

static int
fork_native_start(WatcherObject *w)
{
    if (wlist_contains(&w->loop->forks, w))
        return 0;
    return wlist_add(&w->loop->forks, w);
}

static void
fork_native_stop(WatcherObject *w)
{
    wlist_remove(&w->loop->forks, w);
}

static const WatcherOps prepare_ops = {
    .name = "prepare", .native_start = prepare_native_start,
    .native_stop = prepare_native_stop, .native_close = soft_native_close,
};
static const WatcherOps fork_ops = {
    .name = "fork", .native_start = fork_native_start,
    .native_stop = fork_native_stop, .native_close = soft_native_close,
};

/* ---- async_ ---- */

static void
async_cb(uv_async_t *h)
{
    WatcherObject *w = (WatcherObject *)h->data;
    if (w != NULL)
        loop_record(w);
}

/* uv_async_init makes the handle live for good; libuv may call async_cb
 * any time, so it reaches the watcher only while it is active (an inactive
 * watcher may be freed by another thread's GC meanwhile). */
static int
async_native_start(WatcherObject *w)
{
    w->handle->data = w;
    return 0;
}

static void
async_native_stop(WatcherObject *w)
{
    if (w->handle)
        w->handle->data = NULL;
}

static void
async_fired(WatcherObject *w)
{
    ((AsyncObject *)w)->async_pending = 0;
}

/* The loop lists every async watcher it has (an inactive one's handle
 * cannot be found from the handle, whose data is NULL): loop destruction
 * closes and frees those handles too. */
static void
async_native_close(WatcherObject *w)
{
    if (w->loop)
        wlist_remove(&w->loop->asyncs, w);
    watcher_close_uv_handle(w);
}

static const WatcherOps async_ops = {
    .name = "async", .native_start = async_native_start,
    .native_stop = async_native_stop, .fired = async_fired,
    .native_close = async_native_close,
};

static PyObject *
async_send(WatcherObject *w, PyObject *Py_UNUSED(ignored))
{
    /* callable from any thread; callers hold the GIL, so close() cannot
     * race with this send */
    if (w->closed || w->detached || w->handle == NULL || w->loop == NULL
            || w->loop->uv == NULL) {
        PyErr_SetString(PyExc_ValueError, w->closed ? "operation on closed watcher"
                                                    : "operation on destroyed loop");
        return NULL;
    }
    ((AsyncObject *)w)->async_pending = 1;
    uv_async_send((uv_async_t *)w->handle);
    Py_RETURN_NONE;
}

static PyObject *
async_send_ignoring_arg(WatcherObject *w, PyObject *Py_UNUSED(arg))
{
    return async_send(w, NULL);
}

static PyObject *
async_get_pending(WatcherObject *w, void *c)
{
    return PyBool_FromLong(((AsyncObject *)w)->async_pending);
}

/* ---- constructors ---- */

/* Allocate a watcher of `type` with an optional native handle of `size`
 * bytes initialised by init(loop, handle). */
static PyObject *
simple_watcher_new(PyTypeObject *type, PyObject *args, PyObject *kwds, const char *fmt,
                   const WatcherOps *ops, size_t size,
                   int (*init)(uv_loop_t *, uv_handle_t *))
{
    static char *kwlist[] = {"loop", "ref", "priority", NULL};
    PyObject *loop, *ref = NULL, *priority = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, fmt, kwlist, &loop, &ref, &priority))
        return NULL;
    WatcherObject *w = (WatcherObject *)type->tp_alloc(type, 0);
    if (w == NULL)
        return NULL;
    if (watcher_init_common(w, (LoopObject *)loop, ops, ref, priority) < 0) {
        Py_DECREF(w);
        return NULL;
    }
    if (size) {
        uv_handle_t *h = malloc(size);
        if (h == NULL) {
            Py_DECREF(w);
            return PyErr_NoMemory();
        }
        int err = init(w->loop->uv, h);
        if (err < 0) {
            free(h);
            Py_DECREF(w);
            return gevc_uv_error(err);
        }
        watcher_attach_handle(w, h);
        if (ops == &async_ops)
            h->data = NULL;  /* see async_native_start */
    }
    return (PyObject *)w;
}

static int
idle_init(uv_loop_t *l, uv_handle_t *h)
{
    return uv_idle_init(l, (uv_idle_t *)h);
}

static int
check_init(uv_loop_t *l, uv_handle_t *h)
{
    return uv_check_init(l, (uv_check_t *)h);
}

static int
async_init(uv_loop_t *l, uv_handle_t *h)
{
    return uv_async_init(l, (uv_async_t *)h, async_cb);
}

static PyObject *
idle_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    return simple_watcher_new(type, args, kwds, "O|OO:idle", &idle_ops,
                              sizeof(uv_idle_t), idle_init);
}

static PyObject *
check_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    return simple_watcher_new(type, args, kwds, "O|OO:check", &check_ops,
                              sizeof(uv_check_t), check_init);
}

static PyObject *
prepare_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    return simple_watcher_new(type, args, kwds, "O|OO:prepare", &prepare_ops, 0, NULL);
}

static PyObject *
fork_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    return simple_watcher_new(type, args, kwds, "O|OO:fork", &fork_ops, 0, NULL);
}

static PyObject *
async_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    WatcherObject *w = (WatcherObject *)simple_watcher_new(
        type, args, kwds, "O|OO:async_", &async_ops, sizeof(uv_async_t), async_init);
    if (w != NULL && wlist_add(&w->loop->asyncs, w) < 0)
        Py_CLEAR(w);
    return (PyObject *)w;
}

static PyMethodDef async_methods[] = {
    {"send", (PyCFunction)async_send, METH_NOARGS,
     "Make the callback run once in the loop's thread; callable from any thread."},
    {"send_ignoring_arg", (PyCFunction)async_send_ignoring_arg, METH_O,
     "send(), usable as a rawlink target."},
    {NULL}
};

static PyGetSetDef async_getset[] = {
    {"pending", (getter)async_get_pending, NULL, "True after send() until the callback runs."},
    {NULL}
};

#define SIMPLE_TYPE(PREFIX, NAME, NEW, DOC, METHODS, GETSET, SIZE) \
static PyType_Slot PREFIX##_slots[] = { \
    {Py_tp_doc, DOC}, \
    {Py_tp_new, NEW}, \
    {Py_tp_methods, METHODS}, \
    {Py_tp_getset, GETSET}, \
    {0, NULL} \
}; \
PyType_Spec PREFIX##_spec = { \
    .name = "gevent_c.core." NAME, \
    .basicsize = SIZE, \
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_IMMUTABLETYPE, \
    .slots = PREFIX##_slots, \
};

static PyMethodDef no_methods[] = {{NULL}};
static PyGetSetDef no_getset[] = {{NULL}};

SIMPLE_TYPE(idle, "idle", idle_new,
            "idle(loop, ref=True, priority=None): runs on iterations with nothing else to do.",
            no_methods, no_getset, sizeof(WatcherObject))
SIMPLE_TYPE(check, "check", check_new,
            "check(loop, ref=True, priority=None): runs after each poll for IO.",
            no_methods, no_getset, sizeof(WatcherObject))
SIMPLE_TYPE(prepare, "prepare", prepare_new,
            "prepare(loop, ref=True, priority=None): runs before each poll for IO.",
            no_methods, no_getset, sizeof(WatcherObject))
SIMPLE_TYPE(fork, "fork", fork_new,
            "fork(loop, ref=True, priority=None): runs in a forked child after loop.reinit().",
            no_methods, no_getset, sizeof(WatcherObject))
SIMPLE_TYPE(async, "async_", async_new,
            "async_(loop, ref=True, priority=None): send() from any thread wakes the loop "
            "and runs the callback once (several sends coalesce).",
            async_methods, async_getset, sizeof(AsyncObject))

#define FACTORY(fname, TYPE) \
PyObject * \
fname(LoopObject *loop, PyObject *args, PyObject *kwds) \
{ \
    return loop_make_watcher(loop->gst->TYPE, loop, args, kwds); \
}

FACTORY(idle_new_from_loop, IdleType)
FACTORY(check_new_from_loop, CheckType)
FACTORY(prepare_new_from_loop, PrepareType)
FACTORY(fork_new_from_loop, ForkType)
FACTORY(async_new_from_loop, AsyncType)
