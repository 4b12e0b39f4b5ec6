/*
 * timer.c -- gevent_c.core.timer on uv_timer_t.  Included by _hub.c.
 *
 * A timer never fires before `after` seconds of wall time since start().
 *
 * libuv counts timers in whole milliseconds of a clock cached at the start
 * of each pass, and its poll sleeps whole milliseconds from that cached
 * time: rounded up at both ends, a 1 ms sleep took about 2 ms.  So a
 * one-shot timer keeps its own deadline in nanoseconds of uv_hrtime()
 * (CLOCK_MONOTONIC) and libuv only brings it close: its libuv timer is
 * armed PREC_MARGIN_NS early, and a timer whose deadline is less than
 * PREC_SPAN_NS away waits on the loop's precise heap instead (a binary
 * min-heap by deadline).  The loop polls for at most the time left until
 * the heap's first deadline, with ns precision (loop_prec_wait_ns), and
 * records the timers whose deadline has passed after each poll
 * (loop_prec_collect), with the clock read once, after the poll.  Repeating timers keep libuv's
 * milliseconds (rounded up: never early either).
 */
#include "gevent_c.h"
#include <math.h>


#define TIMER(w) ((TimerObject *)(w))

/* libuv's timer fires at most about 1 ms late (its poll sleeps whole ms
 * from its cached clock) and at most 1 ms early (a coarse cached clock):
 * arm it this much before the deadline, and leave the rest to the heap.
 * Deadlines nearer than PREC_SPAN_NS go on the heap at once: one wake-up;
 * a farther one costs two (libuv's, early, then the deadline). */
#define PREC_MARGIN_NS 2500000ULL
#define PREC_SPAN_NS   50000000ULL
/* beyond this `after` (s), milliseconds are as good: libuv alone */
#define PREC_MAX_AFTER 1.0e6

static inline int
prec_before(WatcherObject *a, WatcherObject *b)
{
    uint64_t da = TIMER(a)->deadline, db = TIMER(b)->deadline;
    return da < db || (da == db && TIMER(a)->seq < TIMER(b)->seq);
}

static inline void
prec_put(LoopObject *loop, Py_ssize_t i, WatcherObject *w)
{
    loop->prec[i] = w;
    TIMER(w)->prec_idx = i;
}

/* Move the entry at i up or down until the heap is in order again. */
static void
prec_fix(LoopObject *loop, Py_ssize_t i)
{
    WatcherObject **h = loop->prec, *w = h[i];
    while (i > 0 && prec_before(w, h[(i - 1) / 2])) {
        prec_put(loop, i, h[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
    for (;;) {
        Py_ssize_t c = 2 * i + 1;
        if (c >= loop->nprec)
            break;
        if (c + 1 < loop->nprec && prec_before(h[c + 1], h[c]))
            c++;
        if (!prec_before(h[c], w))
            break;
        prec_put(loop, i, h[c]);
        i = c;
    }
    prec_put(loop, i, w);
}

/* Remove w from its loop's precise heap (no-op when not in it). */
static void
timer_prec_remove(WatcherObject *w)
{
    LoopObject *loop = w->loop;
    Py_ssize_t i = TIMER(w)->prec_idx;
    if (i < 0)
        return;
    TIMER(w)->prec_idx = -1;
    if (loop == NULL || i >= loop->nprec || loop->prec[i] != w)
        return;
    WatcherObject *last = loop->prec[--loop->nprec];
    if (last != w) {
        loop->prec[i] = last;
        prec_fix(loop, i);
    }
}

/* Add w to its loop's precise heap.  Called with or without the GIL, on
 * the loop's thread (the heap is only touched there: other threads may
 * not start or stop a watcher while its loop polls).  -1 when out of
 * memory. */
static int
timer_prec_insert(WatcherObject *w)
{
    LoopObject *loop = w->loop;
    if (TIMER(w)->prec_idx >= 0)
        return 0;
    if (loop->nprec == loop->prec_cap) {
        Py_ssize_t cap = loop->prec_cap ? loop->prec_cap * 2 : 16;
        WatcherObject **p = realloc(loop->prec, (size_t)cap * sizeof(*p));
        if (p == NULL)
            return -1;
        loop->prec = p;
        loop->prec_cap = cap;
    }
    TIMER(w)->seq = loop->prec_seq++;
    Py_ssize_t i = loop->nprec++;
    loop->prec[i] = w;
    prec_fix(loop, i);
    return 0;
}

/* Record the timers on the heap whose deadline has passed (after a poll),
 * earliest first (ties: in start order), as libev queues the timers that
 * expired together. */
static void
loop_prec_collect(LoopObject *loop)
{
    if (loop->nprec == 0)
        return;
    uint64_t now = uv_hrtime();
    /* after uv_run has returned: a uv_stop() now would cut the next pass */
    int in_uv = loop->in_uv;
    loop->in_uv = 0;
    while (loop->nprec > 0 && TIMER(loop->prec[0])->deadline <= now) {
        WatcherObject *w = loop->prec[0];
        timer_prec_remove(w);
        loop_record(w);   /* no Python; never touches the heap */
    }
    loop->in_uv = in_uv;
}

/* ns until the heap's first deadline: -1 when it is empty, 0 when
 * it has passed. */
static int64_t
loop_prec_wait_ns(LoopObject *loop)
{
    if (loop->nprec == 0)
        return -1;
    uint64_t d = TIMER(loop->prec[0])->deadline, now = uv_hrtime();
    return d > now ? (int64_t)(d - now) : 0;
}

static void
loop_prec_free(LoopObject *loop)
{
    for (Py_ssize_t i = 0; i < loop->nprec; i++)
        TIMER(loop->prec[i])->prec_idx = -1;
    free(loop->prec);
    loop->prec = NULL;
    loop->nprec = loop->prec_cap = 0;
}

static void
timer_cb(uv_timer_t *h)
{
    WatcherObject *w = (WatcherObject *)h->data;
    if (w == NULL)
        return;
    uint64_t d = TIMER(w)->deadline;
    if (d != 0 && TIMER(w)->repeat <= 0) {
        /* brought close by libuv: wait the rest on the precise heap, which
         * the loop collects after this pass (in deadline order, as libev
         * dispatches timers that expire together) */
        uint64_t now = uv_hrtime();
        if (timer_prec_insert(w) == 0) {
            if (now < d)
                w->loop->prec_early = 1;
            return;
        }
        if (now < d) {
            /* out of memory: libuv again, rounded up */
            uv_timer_start(h, timer_cb, (d - now + 999999) / 1000000 + 1, 0);
            return;
        }
    }
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
    uv_timer_t *h = (uv_timer_t *)w->handle;
    if (TIMER(w)->after <= 0 && TIMER(w)->repeat <= 0) {
        /* due now: fire after the next poll (as libev), no libuv timer.
         * The room for it first: a MemoryError leaves the timer as it was
         * (start() raises, never a success whose event is lost). */
        if (loop_after_poll_reserve(w->loop) < 0)
            return -1;
        timer_prec_remove(w);
        TIMER(w)->deadline = 0;
        uv_timer_stop(h);
        w->pending = 0;  /* a restart replaces an earlier firing */
        (void)loop_fire_after_poll(w);   /* reserved: cannot fail */
        return 0;
    }
    timer_prec_remove(w);   /* a restart replaces the earlier countdown */
    TIMER(w)->deadline = 0;
    double frac = 0;
    uint64_t now_ns;
    if (timer_update_flag) {
        uv_update_time(uv);
        now_ns = uv_hrtime();
        frac = (double)now_ns / 1e6 - (double)uv_now(uv);
        if (frac < 0 || frac > 1000)
            frac = 0;
    }
    else {
        /* libev's update=False: count from the loop's cached time */
        now_ns = uv_now(uv) * 1000000ULL;
    }
    if (TIMER(w)->repeat <= 0 && TIMER(w)->after < PREC_MAX_AFTER) {
        uint64_t d = now_ns + (uint64_t)ceil(TIMER(w)->after * 1e9);
        uint64_t hr = timer_update_flag ? now_ns : uv_hrtime();
        uint64_t left = d > hr ? d - hr : 0;
        TIMER(w)->deadline = d;
        if (left <= PREC_SPAN_NS) {
            uv_timer_stop(h);
            if (timer_prec_insert(w) == 0)
                return 0;
            TIMER(w)->deadline = 0;   /* out of memory: libuv, rounded up */
        }
        else {
            /* libuv's due time counts from its cached clock, which is at
             * most `frac` ms behind hr: its timer fires early, never late */
            return uv_timer_start(h, timer_cb, (left - PREC_MARGIN_NS) / 1000000, 0);
        }
    }
    uint64_t rep = TIMER(w)->repeat > 0 ? timer_ms(TIMER(w)->repeat, 0) : 0;
    return uv_timer_start(h, timer_cb, timer_ms(TIMER(w)->after, frac), rep);
}

static void
timer_native_stop(WatcherObject *w)
{
    uv_timer_stop((uv_timer_t *)w->handle);
    timer_prec_remove(w);
}

static void
timer_fired(WatcherObject *w)
{
    /* one-shot: libuv already stopped it (still armed: only fed) */
    if (TIMER(w)->repeat <= 0 && TIMER(w)->prec_idx < 0
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
    self->prec_idx = -1;
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
    if (TIMER(w)->deadline != 0)
        return PyFloat_FromDouble((double)TIMER(w)->deadline / 1e9);
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
                "after <= 0 fires after the next poll; a one-shot timer fires within\n"
                "a fraction of a millisecond after `after` seconds, never before;\n"
                "a repeating one counts whole milliseconds, rounded up."},
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
