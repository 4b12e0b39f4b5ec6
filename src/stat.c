/*
 * stat.c -- gevent_c.core.stat: a repeating uv_timer that stat()s the path
 * every period, as libev's ev_stat does.
 *
 * Not uv_fs_poll: it takes its baseline in libuv's threadpool some time
 * after start(), so a change made right after start() went unreported (CI
 * hit it under ASan), restarting one with a stat() in flight made libuv
 * 1.44 abort, and the loop had to wait for those requests when destroyed.
 * Here the baseline is the synchronous stat() in start(), each tick's
 * stat() runs on the loop's thread (without the GIL), and no request
 * outlives the watcher.  The cost, shared with libev: a stat() that blocks
 * (a hung network filesystem) blocks the loop.
 */
#include "gevent_c.h"


#define MIN_STAT_INTERVAL 0.1074891
#define STAT(w) ((StatObject *)(w))

/* stat() the path; 1 if it exists (*st filled), else 0. */
static int
stat_now(StatObject *s, uv_stat_t *st)
{
    uv_fs_t req;
    int ok = uv_fs_stat(NULL, &req, PyBytes_AS_STRING(s->fspath), NULL) == 0;
    if (ok)
        *st = req.statbuf;
    uv_fs_req_cleanup(&req);
    return ok;
}

static int
uv_timespec_eq(uv_timespec_t a, uv_timespec_t b)
{
    return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

/* Same file, same metadata (access time aside: reading is no change). */
static int
stat_same(const uv_stat_t *a, const uv_stat_t *b)
{
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino
        && a->st_mode == b->st_mode && a->st_nlink == b->st_nlink
        && a->st_uid == b->st_uid && a->st_gid == b->st_gid
        && a->st_rdev == b->st_rdev && a->st_size == b->st_size
        && uv_timespec_eq(a->st_mtim, b->st_mtim)
        && uv_timespec_eq(a->st_ctim, b->st_ctim);
}

/* Inside uv_run, maybe without the GIL: only C fields.  The watcher is
 * active (it holds itself) while its timer runs.  attr is only written at
 * dispatch (stat_fired, with the GIL), so a reader in another thread never
 * sees it half written. */
static void
stat_tick(uv_timer_t *h)
{
    WatcherObject *w = (WatcherObject *)h->data;
    if (w == NULL)
        return;
    StatObject *s = STAT(w);
    uv_stat_t st;
    int has = stat_now(s, &st);
    if (has == s->has_attr && (!has || stat_same(&st, &s->attr)))
        return;
    s->has_next = has;
    if (has)
        s->next = st;
    s->changed = 1;
    loop_record(w);
}

static void
stat_fired(WatcherObject *w)
{
    StatObject *s = STAT(w);
    if (!s->changed)
        return;
    s->changed = 0;
    s->has_prev = s->has_attr;
    s->prev = s->attr;
    s->has_attr = s->has_next;
    s->attr = s->next;
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
    /* like libev, attr holds the current result from the start, and it is
     * the baseline the ticks compare with */
    s->has_attr = stat_now(s, &s->attr);
    s->has_prev = 0;
    s->changed = 0;
    double ms = iv * 1000.0;
    uint64_t period = ms >= 1e12 ? (uint64_t)1e12 : (uint64_t)ms;
    return uv_timer_start((uv_timer_t *)w->handle, stat_tick, period, period);
}

static void
stat_native_stop(WatcherObject *w)
{
    uv_timer_stop((uv_timer_t *)w->handle);
}

static PyObject *
stat_details(WatcherObject *w)
{
    return PyUnicode_FromFormat("path=%R", STAT(w)->path);
}

static const WatcherOps stat_ops = {
    .name = "stat", .native_start = stat_native_start,
    .native_stop = stat_native_stop, .details = stat_details, .fired = stat_fired,
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
    uv_timer_t *h = malloc(sizeof(*h));
    if (h == NULL) {
        Py_DECREF(self);
        return PyErr_NoMemory();
    }
    int err = uv_timer_init(w->loop->uv, h);
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

static PyType_Slot stat_slots[] = {
    {Py_tp_doc, "stat(loop, path, interval=0.0, ref=True, priority=None): fires when\n"
              "the stat() result of path changes.  path may be str, bytes or PathLike."},
    {Py_tp_new, stat_new},
    {Py_tp_dealloc, stat_dealloc},
    {Py_tp_traverse, stat_traverse},
    {Py_tp_clear, stat_tp_clear},
    {Py_tp_getset, stat_getset},
    {0, NULL}
};

PyType_Spec stat_spec = {
    .name = "gevent_c.core.stat",
    .basicsize = sizeof(StatObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = stat_slots,
};

PyObject *
stat_new_from_loop(LoopObject *loop, PyObject *args, PyObject *kwds)
{
    return loop_make_watcher(loop->gst->StatType, loop, args, kwds);
}
