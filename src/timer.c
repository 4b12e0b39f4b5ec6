/*
 * timer.c -- gevent_c.core.timer on uv_timer_t.  Included by _hub.c.
 *
 * A timer never fires before `after` seconds of wall time since start():
 * start() refreshes the loop's time (update=True) and rounds the delay up,
 * including the fraction of a millisecond libuv's clock has not counted.
 */
#include "gevent_c.h"
#include <math.h>


#define TIMER(w) ((TimerObject *)(w))

static void
timer_cb(uv_timer_t *h)
{
    WatcherObject *w = (WatcherObject *)h->data;
    if (w != NULL)
        loop_record(w);
}

static uint64_t
timer_ms(double seconds, double frac_ms)
{
    if (seconds <= 0)
        return 0;
    double ms = ceil(seconds * 1000.0 + frac_ms);
    if (ms < 1)
        ms = 1;
    if (ms > 9.0e15)
        ms = 9.0e15;
    return (uint64_t)ms;
}

static int timer_update_flag = 1;  /* set by start()/again() around native_start */

static int
timer_native_start(WatcherObject *w)
{
    uv_loop_t *uv = w->loop->uv;
    if (TIMER(w)->after <= 0 && TIMER(w)->repeat <= 0) {
        /* due now: fire after the next poll (as libev), no libuv timer.
         * The room for it first: a MemoryError leaves the timer as it was
         * (start() raises, never a success whose event is lost). */
        if (loop_after_poll_reserve(w->loop) < 0)
            return -1;
        uv_timer_stop((uv_timer_t *)w->handle);
        w->pending = 0;  /* a restart replaces an earlier firing */
        (void)loop_fire_after_poll(w);   /* reserved: cannot fail */
        return 0;
    }
    double frac = 0;
    if (timer_update_flag) {
        uv_update_time(uv);
        frac = (double)uv_hrtime() / 1e6 - (double)uv_now(uv);
        if (frac < 0 || frac > 1000)
            frac = 0;
    }
    uint64_t rep = TIMER(w)->repeat > 0 ? timer_ms(TIMER(w)->repeat, 0) : 0;
    return uv_timer_start((uv_timer_t *)w->handle, timer_cb,
                          timer_ms(TIMER(w)->after, frac), rep);
}

static void
timer_native_stop(WatcherObject *w)
{
    uv_timer_stop((uv_timer_t *)w->handle);
}

static void
timer_fired(WatcherObject *w)
{
    /* one-shot: libuv already stopped it (still armed: only fed) */
    if (TIMER(w)->repeat <= 0
            && (w->handle == NULL || !uv_is_active(w->handle)))
        watcher_deactivate(w);
}

static PyObject *
timer_details(WatcherObject *w)
{
    PyObject *a = PyFloat_FromDouble(TIMER(w)->after);
    PyObject *r = PyFloat_FromDouble(TIMER(w)->repeat);
    PyObject *res = (a && r) ? PyUnicode_FromFormat("after=%R repeat=%R", a, r) : NULL;
    Py_XDECREF(a);
    Py_XDECREF(r);
    return res;
}

static const WatcherOps timer_ops = {
    .name = "timer",
    .native_start = timer_native_start,
    .native_stop = timer_native_stop,
    .details = timer_details,
    .fired = timer_fired,
};

static int
parse_seconds(PyObject *o, const char *what, double *out)
{
    if (!PyFloat_Check(o) && !PyLong_Check(o)) {
        PyErr_Format(PyExc_TypeError, "%s must be a number, not %.200s",
                     what, Py_TYPE(o)->tp_name);
        return -1;
    }
    double v = PyFloat_AsDouble(o);
    if (v == -1.0 && PyErr_Occurred())
        return -1;
    if (isnan(v)) {
        PyErr_Format(PyExc_ValueError, "%s must not be NaN", what);
        return -1;
    }
    *out = v;
    return 0;
}

/* Allocate and initialise a timer; after/repeat already validated. */
static TimerObject *
timer_alloc(PyTypeObject *type, LoopObject *loop, double after, double repeat,
            PyObject *ref, PyObject *priority)
{
    TimerObject *self = (TimerObject *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->after = after < 0 ? 0.0 : after;
    self->repeat = repeat;
    WatcherObject *w = (WatcherObject *)self;
    if (watcher_init_common(w, loop, &timer_ops, ref, priority) < 0) {
        Py_DECREF(self);
        return NULL;
    }
    uv_timer_t *h = malloc(sizeof(*h));
    if (h == NULL) {
        Py_DECREF(self);
        PyErr_NoMemory();
        return NULL;
    }
    int err = uv_timer_init(w->loop->uv, h);
    if (err < 0) {
        free(h);
        Py_DECREF(self);
        gevc_uv_error(err);
        return NULL;
    }
    watcher_attach_handle(w, (uv_handle_t *)h);
    return self;
}

/* A one-shot or repeating timer for C callers (sleep). */
static TimerObject *
gevc_timer_new(LoopObject *loop, double after, double repeat, int ref)
{
    if (isnan(after) || isinf(after)) {
        PyErr_SetString(PyExc_ValueError, "timer values must be finite numbers");
        return NULL;
    }
    return timer_alloc(loop->gst->TimerType, loop, after, repeat, ref ? Py_True : Py_False, NULL);
}

static PyObject *
timer_parse_and_alloc(PyTypeObject *type, PyObject *loop, PyObject *after_o,
                      PyObject *repeat_o, PyObject *ref, PyObject *priority)
{
    double after, repeat = 0.0;
    if (parse_seconds(after_o, "after", &after) < 0)
        return NULL;
    if (repeat_o && parse_seconds(repeat_o, "repeat", &repeat) < 0)
        return NULL;
    if (repeat < 0) {
        PyErr_Format(PyExc_ValueError, "repeat must be positive or zero: %R", repeat_o);
        return NULL;
    }
    if (isinf(after) || isinf(repeat)) {
        PyErr_SetString(PyExc_ValueError, "timer values must be finite");
        return NULL;
    }
    return (PyObject *)timer_alloc(type, (LoopObject *)loop, after, repeat, ref, priority);
}

static PyObject *
timer_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"loop", "after", "repeat", "ref", "priority", NULL};
    PyObject *loop, *after_o, *repeat_o = NULL, *ref = NULL, *priority = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO|OOO:timer", kwlist,
                                     &loop, &after_o, &repeat_o, &ref, &priority))
        return NULL;
    return timer_parse_and_alloc(type, loop, after_o, repeat_o, ref, priority);
}

/* start(callback, *args, update=True) */
static PyObject *
timer_start(WatcherObject *w, PyObject *args, PyObject *kwds)
{
    int update;
    if (parse_flag_kw(kwds, "update", 1, &update) < 0)
        return NULL;
    timer_update_flag = update;
    PyObject *res = watcher_start_from_args(w, args);
    timer_update_flag = 1;
    return res;
}

/* again(callback, *args, update=True): restart the countdown from now using
 * `repeat`; an active one-shot timer is stopped; an inactive one starts. */
static PyObject *
timer_again(WatcherObject *w, PyObject *args, PyObject *kwds)
{
    if (!w->active || TIMER(w)->repeat > 0)
        return timer_start(w, args, kwds);
    int update;
    if (parse_flag_kw(kwds, "update", 1, &update) < 0)
        return NULL;
    if (watcher_check_usable(w) < 0)
        return NULL;
    watcher_stop_impl(w);
    Py_RETURN_NONE;
}

static PyObject *
timer_get_after(WatcherObject *w, void *c)
{
    return PyFloat_FromDouble(TIMER(w)->after);
}

static PyObject *
timer_get_repeat(WatcherObject *w, void *c)
{
    return PyFloat_FromDouble(TIMER(w)->repeat);
}

static PyObject *
timer_get_at(WatcherObject *w, void *c)
{
    if (w->handle == NULL || !w->active || w->loop == NULL || w->loop->uv == NULL)
        Py_RETURN_NONE;
    uint64_t due = uv_now(w->loop->uv) + uv_timer_get_due_in((uv_timer_t *)w->handle);
    return PyFloat_FromDouble((double)due / 1000.0);
}

static PyMethodDef timer_methods[] = {
    {"start", (PyCFunction)(void (*)(void))timer_start, METH_VARARGS | METH_KEYWORDS,
     "start(callback, *args, update=True): fire callback(*args) after `after` "
     "seconds, then every `repeat` seconds if repeat > 0."},
    {"again", (PyCFunction)(void (*)(void))timer_again, METH_VARARGS | METH_KEYWORDS,
     "again(callback, *args, update=True): restart the countdown using repeat."},
    {NULL}
};

static PyGetSetDef timer_getset[] = {
    {"after", (getter)timer_get_after, NULL, NULL},
    {"repeat", (getter)timer_get_repeat, NULL, NULL},
    {"at", (getter)timer_get_at, NULL, "Due time in loop.now() seconds, or None."},
    {NULL}
};

static PyType_Slot timer_slots[] = {
    {Py_tp_doc, "timer(loop, after, repeat=0.0, ref=True, priority=None)\n\n"
                "after < 0 fires on the next iteration; delays are rounded up to\n"
                "libuv's 1 ms resolution, silently."},
    {Py_tp_new, timer_new},
    {Py_tp_methods, timer_methods},
    {Py_tp_getset, timer_getset},
    {0, NULL}
};

/* GC is inherited from the watcher type */
static PyType_Spec timer_spec = {
    .name = "gevent_c.core.timer",
    .basicsize = sizeof(TimerObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = timer_slots,
};

/* loop.timer(after, repeat=0.0, ref=True, priority=None), without the
 * argument tuple a type call would build */
static PyObject *
timer_new_from_loop(LoopObject *loop, PyObject *args, PyObject *kwds)
{
    Py_ssize_t n = PyTuple_GET_SIZE(args);
    if ((kwds == NULL || PyDict_GET_SIZE(kwds) == 0) && n >= 1 && n <= 4) {
        if (loop_check_alive(loop) < 0)
            return NULL;
        return timer_parse_and_alloc(loop->gst->TimerType, (PyObject *)loop, PyTuple_GET_ITEM(args, 0),
                                     n > 1 ? PyTuple_GET_ITEM(args, 1) : NULL,
                                     n > 2 ? PyTuple_GET_ITEM(args, 2) : NULL,
                                     n > 3 ? PyTuple_GET_ITEM(args, 3) : NULL);
    }
    return loop_make_watcher(loop->gst->TimerType, loop, args, kwds);
}
