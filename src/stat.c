/*
 * stat.c -- gevent_c.core.stat on uv_fs_poll_t.  Included by _hub.c.
 *
 * uv_fs_poll runs its stat() calls on libuv's threadpool: a process that
 * used stat watchers should not rely on libuv's threadpool after fork().
 */
#include "gevent_c.h"

static PyTypeObject StatType;

#define MIN_STAT_INTERVAL 0.1074891
#define STAT(w) ((StatObject *)(w))

static void
stat_cb(uv_fs_poll_t *h, int status, const uv_stat_t *prev, const uv_stat_t *curr)
{
    WatcherObject *w = (WatcherObject *)h->data;
    if (w == NULL)
        return;
    StatObject *s = STAT(w);
    if (status < 0 && !s->has_attr)
        return;  /* still missing: libuv reports that once, it is no change */
    s->has_prev = s->has_attr;
    s->prev = s->attr;
    s->has_attr = status == 0;
    if (status == 0)
        s->attr = *curr;
    loop_record(w);
}

/* libuv 1.44 asserts (abort) if a fs_poll handle is started again while
 * the stat() of an earlier start is still in flight.  So a restart closes
 * the used handle (libuv cleans its pending request up) and uses a fresh
 * one. */
static int
stat_fresh_handle(WatcherObject *w)
{
    uv_fs_poll_t *h = malloc(sizeof(*h));
    if (h == NULL)
        return UV_ENOMEM;
    int err = uv_fs_poll_init(w->loop->uv, h);
    if (err < 0) {
        free(h);
        return err;
    }
    uv_handle_t *old = w->handle;
    old->data = NULL;
    if (!uv_is_closing(old))
        uv_close(old, (uv_close_cb)free);
    watcher_attach_handle(w, (uv_handle_t *)h);
    return 0;
}

static int
stat_native_start(WatcherObject *w)
{
    StatObject *s = STAT(w);
    double iv = s->interval > MIN_STAT_INTERVAL ? s->interval : MIN_STAT_INTERVAL;
    /* A negative interval is no period at all: once started, .interval
     * reports the one in use, as both of gevent's loops do (gevent's
     * test__core_stat relies on it).  Any other request is kept as given. */
    if (s->interval < 0)
        s->interval = MIN_STAT_INTERVAL;
    if (s->used) {
        int err = stat_fresh_handle(w);
        if (err < 0)
            return err;
    }
    s->used = 1;
    /* like libev, attr holds the current result from the start */
    uv_fs_t req;
    s->has_attr = uv_fs_stat(NULL, &req, PyBytes_AS_STRING(s->fspath), NULL) == 0;
    if (s->has_attr)
        s->attr = req.statbuf;
    uv_fs_req_cleanup(&req);
    s->has_prev = 0;
    return uv_fs_poll_start((uv_fs_poll_t *)w->handle, stat_cb,
                            PyBytes_AS_STRING(s->fspath), (unsigned int)(iv * 1000.0));
}

static void
stat_native_stop(WatcherObject *w)
{
    uv_fs_poll_stop((uv_fs_poll_t *)w->handle);
}

static PyObject *
stat_details(WatcherObject *w)
{
    return PyUnicode_FromFormat("path=%R", STAT(w)->path);
}

static const WatcherOps stat_ops = {
    .name = "stat", .native_start = stat_native_start,
    .native_stop = stat_native_stop, .details = stat_details,
};

static PyObject *
stat_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"loop", "path", "interval", "ref", "priority", NULL};
    PyObject *loop, *path, *ref = NULL, *priority = NULL;
    double interval = 0.0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO|dOO:stat", kwlist,
                                     &loop, &path, &interval, &ref, &priority))
        return NULL;
    if (interval != interval) {
        PyErr_Format(PyExc_ValueError, "interval must be a number, not NaN");
        return NULL;
    }  /* negative: "the default", the minimum period (see stat_native_start) */
    PyObject *fspath = NULL;
    if (!PyUnicode_FSConverter(path, &fspath))
        return NULL;
    StatObject *self = (StatObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        Py_DECREF(fspath);
        return NULL;
    }
    self->path = Py_NewRef(path);
    self->fspath = fspath;
    self->interval = interval;
    WatcherObject *w = (WatcherObject *)self;
    if (watcher_init_common(w, (LoopObject *)loop, &stat_ops, ref, priority) < 0) {
        Py_DECREF(self);
        return NULL;
    }
    uv_fs_poll_t *h = malloc(sizeof(*h));
    if (h == NULL) {
        Py_DECREF(self);
        return PyErr_NoMemory();
    }
    int err = uv_fs_poll_init(w->loop->uv, h);
    if (err < 0) {
        free(h);
        Py_DECREF(self);
        return gevc_uv_error(err);
    }
    watcher_attach_handle(w, (uv_handle_t *)h);
    return (PyObject *)self;
}

static PyObject *
stat_result(const uv_stat_t *st, int has)
{
    if (!has)
        Py_RETURN_NONE;
    PyObject *os = PyImport_ImportModule("os");
    if (os == NULL)
        return NULL;
    PyObject *cls = PyObject_GetAttrString(os, "stat_result");
    Py_DECREF(os);
    if (cls == NULL)
        return NULL;
    PyObject *tup = Py_BuildValue(
        "(KKKKKKKddd)",
        (unsigned long long)st->st_mode, (unsigned long long)st->st_ino,
        (unsigned long long)st->st_dev, (unsigned long long)st->st_nlink,
        (unsigned long long)st->st_uid, (unsigned long long)st->st_gid,
        (unsigned long long)st->st_size,
        st->st_atim.tv_sec + st->st_atim.tv_nsec / 1e9,
        st->st_mtim.tv_sec + st->st_mtim.tv_nsec / 1e9,
        st->st_ctim.tv_sec + st->st_ctim.tv_nsec / 1e9);
    PyObject *res = tup ? PyObject_CallOneArg(cls, tup) : NULL;
    Py_XDECREF(tup);
    Py_DECREF(cls);
    return res;
}

static PyObject *
stat_get_attr(WatcherObject *w, void *c)
{
    return stat_result(&STAT(w)->attr, STAT(w)->has_attr);
}

static PyObject *
stat_get_prev(WatcherObject *w, void *c)
{
    return stat_result(&STAT(w)->prev, STAT(w)->has_prev);
}

static PyObject *
stat_get_path(WatcherObject *w, void *c)
{
    return Py_NewRef(STAT(w)->path);
}

static PyObject *
stat_get_paths(WatcherObject *w, void *c)
{
    return Py_NewRef(STAT(w)->fspath);
}

static PyObject *
stat_get_interval(WatcherObject *w, void *c)
{
    return PyFloat_FromDouble(STAT(w)->interval);
}

static int
stat_traverse(StatObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->path);
    return watcher_traverse((WatcherObject *)self, visit, arg);
}

static int
stat_tp_clear(StatObject *self)
{
    Py_CLEAR(self->path);
    return watcher_tp_clear((WatcherObject *)self);
}

static void
stat_dealloc(StatObject *self)
{
    PyObject_GC_UnTrack(self);
    Py_CLEAR(self->path);
    Py_CLEAR(self->fspath);
    watcher_dealloc_body((WatcherObject *)self);
}

static PyGetSetDef stat_getset[] = {
    {"attr", (getter)stat_get_attr, NULL, "The current stat result, or None."},
    {"prev", (getter)stat_get_prev, NULL, "The previous stat result, or None."},
    {"path", (getter)stat_get_path, NULL, NULL},
    {"_paths", (getter)stat_get_paths, NULL, "The path as bytes (gevent's attribute)."},
    {"interval", (getter)stat_get_interval, NULL,
     "As requested; the effective period is max(interval, 0.1074891) s.\n"
     "A negative request reads back as 0.1074891 once started."},
    {NULL}
};

static PyTypeObject StatType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "gevent_c.core.stat",
    .tp_basicsize = sizeof(StatObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "stat(loop, path, interval=0.0, ref=True, priority=None): fires when\n"
              "the stat() result of path changes.  path may be str, bytes or PathLike.",
    .tp_base = &WatcherType,
    .tp_new = stat_new,
    .tp_dealloc = (destructor)stat_dealloc,
    .tp_traverse = (traverseproc)stat_traverse,
    .tp_clear = (inquiry)stat_tp_clear,
    .tp_getset = stat_getset,
};

static PyObject *
stat_new_from_loop(LoopObject *loop, PyObject *args, PyObject *kwds)
{
    return loop_make_watcher(&StatType, loop, args, kwds);
}
