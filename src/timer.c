/*
 * timer.c -- gevent_c.core.timer on uv_timer_t.
 *
 * A timer never fires before `after` seconds of wall time since start().
 *
 * libuv counts timers in whole milliseconds of a clock cached at the start
 * of each pass (a timer was about 1 ms late), and its timer heap is a tree
 * of pointers through the handles (a stop at 100,000 timers cost several
 * times libev's).  So a one-shot timer keeps its own deadline in ns of
 * CLOCK_MONOTONIC and waits on its loop's own heap (4-ary, deadlines in
 * the entries), never on libuv's.  The loop polls for at most the time
 * left until the heap's first deadline: with ns precision when it is less
 * than PREC_SPAN_NS away (loop_prec_wait_ns), through one libuv timer per
 * loop armed PREC_MARGIN_NS early when it is farther (the driver), and it
 * records the timers whose deadline has passed after each poll
 * (loop_prec_collect), with the clock read once, after the poll.
 * Repeating timers keep libuv's milliseconds (rounded up: never early
 * either).  docs/design.md, "Timers".
 */
#include "gevent_c.h"
#include <math.h>


#define TIMER(w) ((TimerObject *)(w))

/* start(update=True) refreshes the loop's now (libuv's cached
 * milliseconds) from the clock read it makes anyway.  libuv's own
 * uv_update_time() reads its "fast" clock, which is CLOCK_MONOTONIC itself
 * where the coarse clock ticks slower than 1 ms (e.g. 4 ms at HZ=250): a
 * second read of the same clock, which costs about as much as the rest of
 * start() in a VM.  There, the read made for the deadline sets libuv's
 * time (never backwards); elsewhere uv_update_time() (a coarse read). */
static int prec_uv_clock_is_mono = -1;

static inline void
prec_refresh_uv_now(uv_loop_t *uv, uint64_t now_ns)
{
#if defined(__linux__) && defined(CLOCK_MONOTONIC_COARSE)
    if (prec_uv_clock_is_mono < 0) {
        struct timespec r;
        prec_uv_clock_is_mono = clock_getres(CLOCK_MONOTONIC_COARSE, &r) != 0
                                || r.tv_sec > 0 || r.tv_nsec > 1000000;
    }
    if (prec_uv_clock_is_mono) {
        uint64_t ms = now_ns / 1000000;
        if (ms > uv->time)
            uv->time = ms;
        return;
    }
#endif
    uv_update_time(uv);
}

/* uv_hrtime()'s clock (CLOCK_MONOTONIC, ns), read without the call into
 * libuv: a timer start reads it */
static inline uint64_t
prec_clock(void)
{
#ifdef __linux__
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) == 0)
        return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
#endif
    return uv_hrtime();
}

/* libuv's timer fires at most about 1 ms late (its poll sleeps whole ms
 * from its cached clock) and at most 1 ms early (a coarse cached clock):
 * the driver is armed this much before the first deadline, and the rest
 * is waited for with ppoll().  A first deadline nearer than PREC_SPAN_NS
 * is waited for with ppoll() at once: one wake-up; a farther one costs two
 * (the driver's, early, then the deadline). */
#define PREC_MARGIN_NS 2500000ULL
#define PREC_SPAN_NS   50000000ULL
/* beyond this `after` (s), milliseconds are as good: libuv alone */
#define PREC_MAX_AFTER 1.0e6

/* The heap: 4-ary (shallower than binary, and a node's children share a
 * cache line or two), each entry holding its deadline, as libev's is.
 * Ties go by start order (seq), as libev queues timers that expire
 * together. */
#define PREC_D 4

static inline int
prec_before(const PrecEntry *a, const PrecEntry *b)
{
    return a->at < b->at
           || (a->at == b->at && TIMER(a->w)->seq < TIMER(b->w)->seq);
}

/* Put e at i, or wherever above or below i the heap order wants it
 * (the hole at i is free). */
static void
prec_place(LoopObject *loop, Py_ssize_t i, PrecEntry e)
{
    PrecEntry *h = loop->prec;
    Py_ssize_t n = loop->nprec;
    if (i > 0 && prec_before(&e, &h[(i - 1) / PREC_D])) {
        do {
            Py_ssize_t p = (i - 1) / PREC_D;
            if (!prec_before(&e, &h[p]))
                break;
            h[i] = h[p];
            TIMER(h[i].w)->prec_idx = i;
            i = p;
        } while (i > 0);
    }
    else {
        for (;;) {
            Py_ssize_t c = PREC_D * i + 1;
            if (c >= n)
                break;
            Py_ssize_t end = c + PREC_D < n ? c + PREC_D : n, best = c;
            for (Py_ssize_t k = c + 1; k < end; k++)
                if (prec_before(&h[k], &h[best]))
                    best = k;
            if (!prec_before(&h[best], &e))
                break;
            h[i] = h[best];
            TIMER(h[i].w)->prec_idx = i;
            i = best;
        }
    }
    h[i] = e;
    TIMER(e.w)->prec_idx = i;
}

/* Remove w from its loop's heap (no-op when not in it). */
static void
timer_prec_remove(WatcherObject *w)
{
    LoopObject *loop = w->loop;
    Py_ssize_t i = TIMER(w)->prec_idx;
    if (i < 0)
        return;
    TIMER(w)->prec_idx = -1;
    if (loop == NULL || i >= loop->nprec || loop->prec[i].w != w)
        return;
    PrecEntry last = loop->prec[--loop->nprec];
    if (last.w != w)
        prec_place(loop, i, last);
}

/* Add w, its deadline set, to its loop's heap, or move it there to its new
 * deadline when it is in it already (a restart: one sift, no removal).
 * On the loop's thread, with the GIL.  -1 when out of memory. */
static int
timer_prec_insert(WatcherObject *w)
{
    LoopObject *loop = w->loop;
    PrecEntry e = {TIMER(w)->deadline, w};
    TIMER(w)->seq = loop->prec_seq++;
    Py_ssize_t i = TIMER(w)->prec_idx;
    if (i >= 0 && i < loop->nprec && loop->prec[i].w == w) {
        prec_place(loop, i, e);
        return 0;
    }
    if (loop->nprec == loop->prec_cap) {
        Py_ssize_t cap = loop->prec_cap ? loop->prec_cap * 2 : 64;
        PrecEntry *p = realloc(loop->prec, (size_t)cap * sizeof(*p));
        if (p == NULL)
            return -1;
        loop->prec = p;
        loop->prec_cap = cap;
    }
    prec_place(loop, loop->nprec++, e);
    return 0;
}

/* Record the timers on the heap whose deadline has passed (after a poll),
 * earliest first (ties: in start order), as libev queues the timers that
 * expired together. */
void
loop_prec_collect(LoopObject *loop)
{
    if (loop->nprec == 0)
        return;
    uint64_t now = prec_clock();
    /* after uv_run has returned: a uv_stop() now would cut the next pass */
    int in_uv = loop->in_uv;
    loop->in_uv = 0;
    while (loop->nprec > 0 && loop->prec[0].at <= now) {
        WatcherObject *w = loop->prec[0].w;
        timer_prec_remove(w);
        loop_record(w);   /* no Python; never touches the heap */
    }
    loop->in_uv = in_uv;
}

/* The driver: one libuv timer per loop, armed PREC_MARGIN_NS before the
 * heap's first deadline when that is more than PREC_SPAN_NS away, so that
 * libuv's own poll timeout covers it (one epoll_wait, no ppoll) and the
 * timers themselves never touch libuv's heap.  Armed lazily, only before
 * a blocking poll, and only when its due time changes: starting or
 * stopping a timer costs no libuv call.  Its handle's data stays NULL
 * (the destroy walk reads data as a watcher); the loop is found by the
 * enclosing struct.  Unreferenced: the active timers keep the loop alive
 * (nactive_ref), the driver does not. */
struct PrecDriver {
    uv_timer_t t;
    LoopObject *loop;          /* borrowed; NULL once the loop closed it */
};

static void
prec_drv_cb(uv_timer_t *h)
{
    LoopObject *loop = ((PrecDriver *)h)->loop;
    if (loop != NULL && loop->nprec > 0 && loop->prec[0].at > prec_clock())
        loop->prec_early = 1;   /* the rest on the heap, in this pass */
}

static void
prec_drv_arm(LoopObject *loop, uint64_t at_ns)
{
    uv_loop_t *uv = loop->uv;
    uint64_t due = at_ns / 1000000;
    PrecDriver *d = loop->prec_drv;
    if (d == NULL) {
        d = malloc(sizeof(*d));
        if (d == NULL)
            return;   /* the poll waits with ppoll() instead */
        if (uv_timer_init(uv, &d->t) < 0) {
            free(d);
            return;
        }
        d->t.data = NULL;
        d->loop = loop;
        uv_unref((uv_handle_t *)&d->t);
        loop->prec_drv = d;
    }
    else if (loop->prec_drv_due == due && uv_is_active((uv_handle_t *)&d->t))
        return;
    uint64_t now = uv_now(uv);
    if (uv_timer_start(&d->t, prec_drv_cb, due > now ? due - now : 0, 0) == 0)
        loop->prec_drv_due = due;
}

void
loop_prec_close_driver(LoopObject *loop)
{
    PrecDriver *d = loop->prec_drv;
    loop->prec_drv = NULL;
    if (d != NULL) {
        d->loop = NULL;
        if (!uv_is_closing((uv_handle_t *)&d->t))
            uv_close((uv_handle_t *)&d->t, free_handle_cb);
    }
}

/* Before a blocking poll: ns until the heap's first deadline, -1 when it
 * is empty, 0 when it has passed.  When that deadline is far, the driver
 * is armed for it and libuv's clock brought up to date, so that libuv's
 * poll timeout (uv_backend_timeout) is the shorter one. */
int64_t
loop_prec_wait_ns(LoopObject *loop)
{
    if (loop->nprec == 0)
        return -1;
    uint64_t d = loop->prec[0].at, now = prec_clock();
    if (d <= now)
        return 0;
    if (d - now > PREC_SPAN_NS) {
        uv_update_time(loop->uv);
        prec_drv_arm(loop, d - PREC_MARGIN_NS);
    }
    return (int64_t)(d - now);
}

void
loop_prec_free(LoopObject *loop)
{
    for (Py_ssize_t i = 0; i < loop->nprec; i++)
        TIMER(loop->prec[i].w)->prec_idx = -1;
    free(loop->prec);
    loop->prec = NULL;
    loop->nprec = loop->prec_cap = 0;
    loop_prec_close_driver(loop);
}

static void
timer_cb(uv_timer_t *h)
{
    WatcherObject *w = (WatcherObject *)h->data;
    if (w == NULL)
        return;
    if (TIMER(w)->repeat <= 0)
        TIMER(w)->on_uv = 0;   /* libuv stopped it */
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

int
timer_native_start(WatcherObject *w)
{
    TimerObject *t = TIMER(w);
    uv_loop_t *uv = w->loop->uv;
    uv_timer_t *h = (uv_timer_t *)w->handle;
    if (t->after <= 0 && t->repeat <= 0) {
        /* due now: fire after the next poll (as libev), no libuv timer.
         * The room for it first: a MemoryError leaves the timer as it was
         * (start() raises, never a success whose event is lost). */
        if (loop_after_poll_reserve(w->loop) < 0)
            return -1;
        timer_prec_remove(w);
        t->deadline = 0;
        uv_timer_stop(h);
        t->on_uv = 0;
        w->pending = 0;  /* a restart replaces an earlier firing */
        (void)loop_fire_after_poll(w);   /* reserved: cannot fail */
        return 0;
    }
    if (t->repeat <= 0 && t->after < PREC_MAX_AFTER) {
        /* the loop's heap; a restart moves the timer within it */
        uint64_t now_ns;
        if (!t->start_no_update) {
            now_ns = prec_clock();
            prec_refresh_uv_now(uv, now_ns);
        }
        else   /* libev's update=False: count from the loop's cached time */
            now_ns = uv_now(uv) * 1000000ULL;
        t->deadline = now_ns + t->after_ns;
        if (t->on_uv) {   /* a restart after out of memory, below */
            uv_timer_stop(h);
            t->on_uv = 0;
        }
        if (timer_prec_insert(w) == 0)
            return 0;
        t->deadline = 0;   /* out of memory: libuv, rounded up */
    }
    double frac = 0;
    if (!t->start_no_update) {
        uv_update_time(uv);
        frac = (double)uv_hrtime() / 1e6 - (double)uv_now(uv);
        if (frac < 0 || frac > 1000)
            frac = 0;
    }
    uint64_t rep = t->repeat > 0 ? timer_ms(t->repeat, 0) : 0;
    int err = uv_timer_start(h, timer_cb, timer_ms(t->after, frac), rep);
    t->on_uv = err == 0;
    return err;
}

static void
timer_native_stop(WatcherObject *w)
{
    if (TIMER(w)->prec_idx >= 0)
        timer_prec_remove(w);
    if (TIMER(w)->on_uv) {
        TIMER(w)->on_uv = 0;
        uv_timer_stop((uv_timer_t *)w->handle);
    }
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

const WatcherOps timer_ops = {
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
    if (self->after < PREC_MAX_AFTER)
        self->after_ns = (uint64_t)ceil(self->after * 1e9);
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
TimerObject *
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

/* A reference a timer method drops.  When the object stays alive anyway
 * (another reference exists), dropping it runs no Python and it goes now;
 * otherwise to the loop's release list, drained at the method's end (the
 * re-entrancy rule: its finalizer must not run while C uses the heap). */
static inline void
timer_drop(WatcherObject *w, PyObject *o)
{
    if (o == NULL)
        return;
    if (Py_REFCNT(o) > 1)
        Py_DECREF(o);
    else
        watcher_release(w, o);
}

/* The method's end: what timer_drop deferred is dropped now (the loop,
 * held by the timer until then, is held across it). */
static inline void
timer_drain(LoopObject *loop)
{
    if (loop != NULL && loop->rel_n > 0) {
        Py_INCREF(loop);
        loop_release_drain(loop);
        Py_DECREF(loop);
    }
}

/* start(callback, *args, update=True), without the argument tuple: the
 * same steps as every watcher's start() (watcher_start_impl), with the
 * references it replaces dropped at once when that cannot run Python. */
static PyObject *
timer_start(WatcherObject *w, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    int update = 1;
    if (kwnames != NULL && PyTuple_GET_SIZE(kwnames) > 0) {
        for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(kwnames); k++) {
            PyObject *key = PyTuple_GET_ITEM(kwnames, k);
            if (!PyUnicode_Check(key) || PyUnicode_CompareWithASCIIString(key, "update")) {
                PyErr_Format(PyExc_TypeError, "start() got an unexpected keyword argument %R",
                             key);
                return NULL;
            }
            int r = PyObject_IsTrue(args[nargs + k]);
            if (r < 0)
                return NULL;
            update = r;
        }
    }
    if (nargs < 1) {
        PyErr_SetString(PyExc_TypeError, "start() missing required argument 'callback'");
        return NULL;
    }
    PyObject *callback = args[0];
    LoopObject *loop = w->loop;
    if (w->closed || loop == NULL || loop->uv == NULL || loop->destroying || w->detached
            || loop->in_uv_nogil) {
        if (watcher_check_usable(w) < 0)
            return NULL;
    }
    if (Py_TYPE(callback)->tp_call == NULL && check_callable(callback) < 0)
        return NULL;
    PyObject *tail = PyTuple_New(nargs - 1);   /* () is a singleton */
    if (tail == NULL)
        return NULL;
    for (Py_ssize_t i = 1; i < nargs; i++)
        PyTuple_SET_ITEM(tail, i - 1, Py_NewRef(args[i]));
    PyObject *old_cb = w->callback, *old_args = w->args;
    w->callback = Py_NewRef(callback);
    w->args = tail;
    TIMER(w)->start_no_update = !update;
    int err = timer_native_start(w);
    TIMER(w)->start_no_update = 0;
    if (err < 0) {
        /* as it was: an active timer keeps its callback, an inactive one
         * has none */
        if (!PyErr_Occurred())
            gevc_uv_error(err);
        w->callback = w->active ? old_cb : NULL;
        w->args = w->active ? old_args : NULL;
        if (!w->active) {
            timer_drop(w, old_cb);
            timer_drop(w, old_args);
        }
        timer_drop(w, callback);
        timer_drop(w, tail);
        timer_drain(loop);
        return NULL;
    }
    timer_drop(w, old_cb);
    timer_drop(w, old_args);
    w->direct_switch = 0;
    if (!w->active) {   /* watcher_activate() */
        w->active = 1;
        if (w->ref)
            loop->nactive_ref++;
    }
    if (!w->self_ref) {
        w->self_ref = 1;
        Py_INCREF(w);
    }
    timer_drain(loop);
    Py_RETURN_NONE;
}

/* stop(): watcher_stop_impl's steps, references dropped as in start() */
static PyObject *
timer_stop(WatcherObject *w, PyObject *Py_UNUSED(ignored))
{
    LoopObject *loop = w->loop;
    if (loop == NULL) {   /* closed: nothing native left */
        PyObject *r = watcher_stop(w, NULL);
        return r;
    }
    if (loop_check_own_thread(loop) < 0)
        return NULL;
    if (w->active && !w->detached && loop->uv)
        timer_native_stop(w);
    PyObject *cb = w->callback, *a = w->args;
    w->callback = w->args = NULL;
    w->direct_switch = 0;
    if (w->active) {
        w->active = 0;
        if (w->ref)
            loop->nactive_ref--;
    }
    w->pending = 0;
    timer_drop(w, cb);
    timer_drop(w, a);
    if (w->self_ref) {
        w->self_ref = 0;
        timer_drop(w, (PyObject *)w);   /* the caller holds w: never the last */
    }
    timer_drain(loop);
    Py_RETURN_NONE;
}

/* again(callback, *args, update=True): restart the countdown from now using
 * `repeat`; an active one-shot timer is stopped; an inactive one starts. */
static PyObject *
timer_again(WatcherObject *w, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    if (!w->active || TIMER(w)->repeat > 0)
        return timer_start(w, args, nargs, kwnames);
    if (kwnames != NULL && PyTuple_GET_SIZE(kwnames) > 0) {
        PyObject *key = PyTuple_GET_ITEM(kwnames, 0);
        if (PyTuple_GET_SIZE(kwnames) > 1 || !PyUnicode_Check(key)
                || PyUnicode_CompareWithASCIIString(key, "update")) {
            PyErr_Format(PyExc_TypeError, "start() got an unexpected keyword argument %R", key);
            return NULL;
        }
        if (PyObject_IsTrue(args[nargs]) < 0)
            return NULL;
    }
    if (watcher_check_usable(w) < 0)
        return NULL;
    LoopObject *loop = watcher_op_begin(w);
    watcher_stop_impl(w);
    watcher_op_end(loop);
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
    {"start", (PyCFunction)(void (*)(void))timer_start, METH_FASTCALL | METH_KEYWORDS,
     "start(callback, *args, update=True): fire callback(*args) after `after` "
     "seconds, then every `repeat` seconds if repeat > 0."},
    {"again", (PyCFunction)(void (*)(void))timer_again, METH_FASTCALL | METH_KEYWORDS,
     "again(callback, *args, update=True): restart the countdown using repeat."},
    {"stop", (PyCFunction)timer_stop, METH_NOARGS, "stop(): the timer will not fire."},
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
PyType_Spec timer_spec = {
    .name = "gevent_c.core.timer",
    .basicsize = sizeof(TimerObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = timer_slots,
};

/* loop.timer(after, repeat=0.0, ref=True, priority=None), without the
 * argument tuple a type call would build */
PyObject *
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
