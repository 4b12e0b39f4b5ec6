/*
 * loop_uv.c -- gevent_c.core.loop on libuv, the run_callback queue and the
 * callback object.
 *
 * Flow of one loop iteration (loop_run_impl):
 *   1. run queued callbacks in FIFO order, time-boxed by the switch interval;
 *   2. uv_run(NOWAIT) if callbacks are still queued, else uv_run(ONCE),
 *      with the GIL released only when that can block;
 *   3. libuv's C callbacks only append the watcher to loop->pend;
 *   4. after uv_run returns, the recorded watchers are dispatched to Python.
 */
#include "gevent_c.h"
#include <math.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <time.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>

static int loop_dispatch_pending(LoopObject *self);
static void loop_close_orphans(LoopObject *self);
static int loop_reinit_impl(LoopObject *self);
static void loop_wake_cb(uv_async_t *h);

static LoopObject *default_loop_obj = NULL;   /* borrowed */

/* Bumped in a forked child by pthread_atfork (cheaper than getpid()). */
volatile long fork_generation = 0;

/* Every loop with a native loop (borrowed; changed with the GIL held, as
 * os.fork() holds it), so a forked child can give each its own kernel
 * state before anything else runs. */
static LoopObject **live_loops = NULL;
static Py_ssize_t n_live_loops = 0, cap_live_loops = 0;

static int
live_loops_add(LoopObject *loop)
{
    if (n_live_loops == cap_live_loops) {
        Py_ssize_t cap = cap_live_loops ? cap_live_loops * 2 : 8;
        LoopObject **items = PyMem_RawRealloc(live_loops, (size_t)cap * sizeof(*items));
        if (items == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        live_loops = items;
        cap_live_loops = cap;
    }
    live_loops[n_live_loops++] = loop;
    return 0;
}

static void
live_loops_remove(LoopObject *loop)
{
    for (Py_ssize_t i = 0; i < n_live_loops; i++)
        if (live_loops[i] == loop) {
            live_loops[i] = live_loops[--n_live_loops];
            return;
        }
}

/* In the child, right after fork(): a loop's epoll fd, async eventfd and
 * signal pipe are open file descriptions shared with the parent, so the
 * child's first uv_run() would read the parent's wake-ups (a pool worker's
 * uv_async_send, lost to the parent) and any epoll_ctl() (an io watcher
 * stopped, a handle closed) would edit the parent's interest set.
 * uv_loop_fork() replaces them before any of that can happen; the rest of
 * reinit (re-arming, fork watchers, pools) runs on the loop's next
 * iteration, with the GIL (loop_reinit_impl). */
void
gevc_atfork_child(void)
{
    fork_generation++;
    for (Py_ssize_t i = 0; i < n_live_loops; i++) {
        LoopObject *loop = live_loops[i];
        if (loop->uv != NULL && uv_loop_fork(loop->uv) == 0)
            loop->native_fork_gen = fork_generation;
    }
}


/* libuv callbacks with their exact signatures: calling free() or another
 * callback through a cast function pointer is undefined behaviour. */
void
free_handle_cb(uv_handle_t *h)
{
    free(h);
}

static void
noop_timer_cb(uv_timer_t *h)
{
    (void)h;
}

/* obj.name(arg): unlike PyObject_CallMethod(obj, name, "O", arg), a tuple
 * arg stays one argument. */
PyObject *
call_method1(PyObject *obj, const char *name, PyObject *arg)
{
    PyObject *n = PyUnicode_InternFromString(name);
    if (n == NULL)
        return NULL;
    PyObject *r = PyObject_CallMethodOneArg(obj, n, arg);
    Py_DECREF(n);
    return r;
}

/* One place maps libuv error codes to Python exceptions. */
PyObject *
gevc_uv_error(int err)
{
    PyObject *exc_type = PyExc_OSError;
    if (err == UV_EINVAL)
        exc_type = PyExc_ValueError;
    else if (err == UV_ENOMEM) {
        return PyErr_NoMemory();
    }
    /* OSError(errno, strerror) maps errno to the right subclass */
    PyObject *v = Py_BuildValue("(is)", -err, uv_strerror(err));
    if (v) {
        PyErr_SetObject(exc_type, v);
        Py_DECREF(v);
    }
    return NULL;
}

int
loop_check_alive(LoopObject *self)
{
    if (self->uv == NULL || self->destroying) {
        PyErr_SetString(PyExc_ValueError, "operation on destroyed loop");
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------------- */
/* Re-entrancy: the release list (docs/design.md, "Re-entrancy")           */
/* ---------------------------------------------------------------------- */

static GEVC_NOINLINE void
loop_defer_release_slow(LoopObject *loop, PyObject *o)
{
    if (loop->rel_n == loop->rel_cap) {
        Py_ssize_t cap = loop->rel_cap ? 2 * loop->rel_cap : 16;
        PyObject **items = PyMem_Realloc(loop->rel_items, (size_t)cap * sizeof(*items));
        if (items == NULL)
            return;
        loop->rel_items = items;
        loop->rel_cap = cap;
    }
    loop->rel_items[loop->rel_n++] = o;
}

/* Drop a reference later: `o` (stolen; NULL is fine) goes to the loop's
 * release list instead of being released here, where its finalizer (or a
 * GC pass) could run Python that closes a watcher or destroys the loop C
 * is using.  Runs no Python.  A reference that is not the last is dropped
 * at once (a decrement that does not reach zero runs nothing): the hot
 * paths defer nothing.  If the list cannot grow, the object is kept alive
 * (a leak) rather than released in the middle of an operation. */
void
loop_defer_release(LoopObject *loop, PyObject *o)
{
    if (o == NULL)
        return;
    if (Py_REFCNT(o) > 1) {
        Py_DECREF(o);
        return;
    }
    loop_defer_release_slow(loop, o);
}

/* The safe point: drop what loop_defer_release kept.  The caller holds no
 * pointer into native state it has not re-validated afterwards, and holds
 * a reference to the loop.  Re-entrant: a finalizer that defers more, or
 * drains itself, is fine (one item is taken off the list at a time).  Any
 * exception set on entry is kept. */
void
loop_release_drain(LoopObject *loop)
{
    if (loop->rel_n == 0)
        return;
    PyObject *exc = PyErr_Occurred() ? PyErr_GetRaisedException() : NULL;
    while (loop->rel_n > 0) {
        PyObject *o = loop->rel_items[--loop->rel_n];
        Py_DECREF(o);
    }
    if (exc != NULL)
        PyErr_SetRaisedException(exc);
}

/* Is a thread with this ident still alive in the interpreter?  (Its
 * thread state is unlinked when it exits, before join() returns.) */
int
gevc_thread_alive(unsigned long ident)
{
    PyInterpreterState *interp = PyInterpreterState_Get();
    for (PyThreadState *ts = PyInterpreterState_ThreadHead(interp); ts != NULL;
         ts = PyThreadState_Next(ts))
        if (ts->thread_id == ident)
            return 1;
    return 0;
}

/* ---------------------------------------------------------------------- */
/* Recording events from libuv (no Python, maybe no GIL)                   */
/* ---------------------------------------------------------------------- */

void
loop_record(WatcherObject *w)
{
    LoopObject *loop = w->loop;
    if (w->pending || loop == NULL)
        return;
    if (loop->npend == loop->pend_cap) {
        Py_ssize_t cap = loop->pend_cap ? loop->pend_cap * 2 : 64;
        WatcherObject **p = realloc(loop->pend, (size_t)cap * sizeof(*p));
        if (p == NULL)
            return;  /* the event is lost; level-triggered sources re-fire */
        loop->pend = p;
        loop->pend_cap = cap;
    }
    w->pending = 1;
    loop->pend[loop->npend++] = w;
    /* An event recorded inside uv_run must end that pass: libuv computes
     * its poll timeout after running due timers, and with the timer that
     * just fired gone it would block with the event undispatched. */
    if (loop->in_uv)
        uv_stop(loop->uv);
}

/* ---------------------------------------------------------------------- */
/* Error handling                                                          */
/* ---------------------------------------------------------------------- */


/* Report exc (traceback tb, or NULL) through loop.error_handler.  Returns
 * -1 (with exc set as the current exception) only when it must keep
 * unwinding the loop: HubDestroyed. */
static int
loop_dispatch_error(LoopObject *self, PyObject *context, PyObject *exc, PyObject *tb)
{
    PyObject *t = (PyObject *)Py_TYPE(exc);
    if (is_hub_destroyed(self->gst, t)) {
        PyErr_SetRaisedException(Py_NewRef(exc));
        return -1;
    }
    PyObject *handler = self->error_handler;
    PyObject *res = NULL;
    if (context == NULL)
        context = Py_None;
    if (handler == NULL || handler == Py_None) {
        /* default: print and make the current run() return */
        PyErr_Display(t, exc, tb);
        self->break_flag = 1;
        return 0;
    }
    Py_INCREF(handler);
    PyObject *meth = NULL;
    if (PyObject_GetOptionalAttr(handler, self->gst->str_handle_error, &meth) < 0) {
        PyErr_Clear();
        meth = NULL;
    }
    if (meth == NULL && PyCallable_Check(handler))
        meth = Py_NewRef(handler);
    if (meth != NULL) {
        res = PyObject_CallFunctionObjArgs(meth, context, t, exc, tb ? tb : Py_None, NULL);
        Py_DECREF(meth);
    }
    else {
        PyErr_Format(PyExc_TypeError,
                     "error_handler %R has no handle_error and is not callable",
                     handler);
    }
    Py_DECREF(handler);
    if (res != NULL) {
        Py_DECREF(res);
        return 0;
    }
    /* The handler itself failed. */
    PyObject *exc2 = PyErr_GetRaisedException();
    if (is_hub_destroyed(self->gst, (PyObject *)Py_TYPE(exc2))) {
        PyErr_SetRaisedException(exc2);
        return -1;
    }
    PySys_WriteStderr("Exception while handling another error:\n");
    PyObject *tb2 = PyException_GetTraceback(exc2);
    PyErr_Display((PyObject *)Py_TYPE(exc2), exc2, tb2);
    Py_XDECREF(tb2);
    Py_DECREF(exc2);
    return 0;
}

/* The same for the pending exception (none: nothing to do). */
static int
loop_handle_error(LoopObject *self, PyObject *context)
{
    PyObject *exc = PyErr_GetRaisedException();
    if (exc == NULL)
        return 0;
    PyObject *tb = PyException_GetTraceback(exc);
    int rc = loop_dispatch_error(self, context, exc, tb);
    Py_XDECREF(tb);
    Py_DECREF(exc);
    return rc;
}

/* Report the error that calling `callback` raised.  With `switch_ctx` (the
 * callback is a greenlet resumed directly, as sleep() and timers with a
 * greenlet callback do) the context is that greenlet's bound switch, as it
 * would be after a Waiter wake-up; otherwise `dflt`. */
int
loop_report_call_error(LoopObject *loop, PyObject *callback, int switch_ctx, PyObject *dflt)
{
    PyObject *ctx = NULL;
    if (switch_ctx) {
        PyObject *exc = PyErr_GetRaisedException();
        ctx = PyObject_GetAttrString(callback, "switch");
        PyErr_Clear();
        PyErr_SetRaisedException(exc);
    }
    int rc = loop_handle_error(loop, ctx ? ctx : dflt);
    Py_XDECREF(ctx);
    return rc;
}

/* ---------------------------------------------------------------------- */
/* callback object                                                         */
/* ---------------------------------------------------------------------- */

static void
callback_clear_fields(CallbackObject *self)
{
    Py_CLEAR(self->callback);
    Py_CLEAR(self->args);
}

PyObject *
callback_stop(CallbackObject *self, PyObject *Py_UNUSED(ignored))
{
    if (self->state == CB_PENDING && self->callback != NULL) {
        if (self->loop)
            self->loop->ncallbacks--;
        self->loop = NULL;
        self->state = CB_DONE;
        callback_clear_fields(self);
    }
    else if (self->state == CB_RUNNING) {
        /* stopping a running callback only drops what it will not need */
        self->loop = NULL;
    }
    Py_RETURN_NONE;
}

static int
callback_bool(CallbackObject *self)
{
    return self->state != CB_DONE;
}

static PyObject *
callback_get_pending(CallbackObject *self, void *c)
{
    return PyBool_FromLong(self->state == CB_PENDING && self->callback != NULL);
}

static PyObject *
callback_get_callback(CallbackObject *self, void *c)
{
    if (self->callback == NULL || self->state == CB_DONE)
        Py_RETURN_NONE;
    if (self->kind != CB_CALL)
        return PyObject_GetAttrString(self->callback, "switch");
    return Py_NewRef(self->callback);
}

static PyObject *
callback_get_args(CallbackObject *self, void *c)
{
    if (self->state == CB_DONE)
        Py_RETURN_NONE;
    if (self->args == NULL)
        return PyTuple_New(0);
    return Py_NewRef(self->args);
}

static PyObject *
callback_repr(CallbackObject *self)
{
    PyObject *args = callback_get_args(self, NULL);
    if (args == NULL)
        return NULL;
    PyObject *res;
    if (self->state == CB_DONE)
        res = PyUnicode_FromFormat("<callback at %p stopped>", self);
    else if (self->state == CB_RUNNING)
        res = PyUnicode_FromFormat("<callback at %p args=%R>", self, args);
    else {
        PyObject *cb = callback_get_callback(self, NULL);
        res = cb ? PyUnicode_FromFormat("<callback at %p pending callback=%R args=%R>",
                                        self, cb, args) : NULL;
        Py_XDECREF(cb);
    }
    Py_DECREF(args);
    return res;
}

static int
callback_traverse(CallbackObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->callback);
    Py_VISIT(self->args);
    return 0;
}

static int
callback_tp_clear(CallbackObject *self)
{
    if (self->state == CB_PENDING && self->callback && self->loop)
        self->loop->ncallbacks--;
    self->loop = NULL;
    self->state = CB_DONE;
    callback_clear_fields(self);
    return 0;
}

static void
callback_dealloc(CallbackObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    callback_clear_fields(self);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

/* run_callback and sleep(0) need one callback object each.  A callback the
 * queue held the last reference to is not freed but kept, alive and
 * untracked, on the loop's spare list for the next one: no allocation and
 * no GC allocation count in the hot path (and no object revived from a
 * free list). */
#define CB_SPARE_MAX 128

static CallbackObject *
callback_alloc(LoopObject *loop)
{
    CallbackObject *cb = loop->cb_spare;
    if (cb != NULL) {
        loop->cb_spare = cb->next;
        loop->n_cb_spare--;
        return cb;  /* the spare list's reference becomes the caller's */
    }
    return PyObject_GC_New(CallbackObject, loop->gst->CallbackType);
}

/* Drop the queue's reference to a callback that ran or was stopped. */
static void
loop_release_callback(LoopObject *loop, CallbackObject *cb)
{
    if (Py_REFCNT(cb) == 1 && loop->n_cb_spare < CB_SPARE_MAX && loop->uv != NULL) {
        PyObject_GC_UnTrack(cb);
        callback_clear_fields(cb);
        cb->loop = NULL;
        cb->state = CB_DONE;
        cb->next = loop->cb_spare;
        loop->cb_spare = cb;
        loop->n_cb_spare++;
        return;
    }
    Py_DECREF(cb);
}

static void
loop_free_spare_callbacks(LoopObject *loop)
{
    while (loop->cb_spare != NULL) {
        CallbackObject *cb = loop->cb_spare;
        loop->cb_spare = cb->next;
        cb->next = NULL;
        Py_DECREF(cb);
    }
    loop->n_cb_spare = 0;
}

static PyMethodDef callback_methods[] = {
    {"stop", (PyCFunction)callback_stop, METH_NOARGS, "Cancel the callback if it has not run yet.  Callable from any thread\n"
     "(it only touches state the GIL protects)."},
    {"close", (PyCFunction)callback_stop, METH_NOARGS, "Alias of stop()."},
    {NULL}
};

static PyGetSetDef callback_getset[] = {
    {"pending", (getter)callback_get_pending, NULL, "True until the callback runs or is stopped."},
    {"callback", (getter)callback_get_callback, NULL, NULL},
    {"args", (getter)callback_get_args, NULL, NULL},
    {NULL}
};

static PyType_Slot callback_slots[] = {
    {Py_tp_doc, "A function queued with loop.run_callback()."},
    {Py_tp_dealloc, callback_dealloc},
    {Py_tp_traverse, callback_traverse},
    {Py_tp_clear, callback_tp_clear},
    {Py_tp_repr, callback_repr},
    {Py_nb_bool, callback_bool},
    {Py_tp_methods, callback_methods},
    {Py_tp_getset, callback_getset},
    {0, NULL}
};

PyType_Spec callback_spec = {
    .name = "gevent_c.core.callback",
    .basicsize = sizeof(CallbackObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE
             | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = callback_slots,
};

/* Queue a callback; steals nothing.  kind CB_WAITER_SWITCH calls
 * waiter_switch_impl(callback, None) without building a bound method. */
CallbackObject *
loop_queue_callback(LoopObject *self, PyObject *callback, PyObject *args, int kind)
{
    if (loop_check_alive(self) < 0)
        return NULL;
    CallbackObject *cb = callback_alloc(self);
    if (cb == NULL)
        return NULL;
    cb->callback = NULL;
    cb->args = NULL;
    cb->next = NULL;
    cb->loop = NULL;
    cb->state = CB_DONE;
    cb->kind = kind;
    /* re-validated: the allocation may have run a GC pass whose
     * finalizers destroyed the loop */
    if (loop_check_alive(self) < 0) {
        Py_DECREF(cb);
        return NULL;
    }
    cb->callback = Py_NewRef(callback);
    cb->args = args ? Py_NewRef(args) : NULL;
    cb->loop = self;
    cb->state = CB_PENDING;
    PyObject_GC_Track(cb);
    /* the queue's reference */
    Py_INCREF(cb);
    if (self->cb_tail)
        self->cb_tail->next = cb;
    else
        self->cb_head = cb;
    self->cb_tail = cb;
    if (kind != CB_WATCHER)
        self->ncallbacks++;
    return cb;
}


/* Run queued callbacks (including those they queue) until the queue is
 * empty or a switch interval has passed.  -1 only for HubDestroyed. */
static int
loop_run_callbacks(LoopObject *self)
{
    uint64_t start = 0;
    unsigned count = 0;
    while (self->cb_head != NULL) {
        CallbackObject *cb = self->cb_head;
        self->cb_head = cb->next;
        if (self->cb_head == NULL)
            self->cb_tail = NULL;
        cb->next = NULL;
        if (cb->callback == NULL || cb->state != CB_PENDING) {
            loop_release_callback(self, cb);  /* stopped while queued */
            continue;
        }
        if (cb->kind == CB_WATCHER) {
            WatcherObject *w = (WatcherObject *)cb->callback;
            int rc = 0;
            cb->state = CB_DONE;
            if (w->pending) {
                w->pending = 0;
                Py_INCREF(w);
                rc = watcher_dispatch(w);
                Py_DECREF(w);
            }
            callback_clear_fields(cb);
            loop_release_callback(self, cb);
            if (rc < 0)
                return -1;
            continue;
        }
        self->ncallbacks--;
        cb->loop = NULL;
        cb->state = CB_RUNNING;
        PyObject *callback = Py_NewRef(cb->callback);
        PyObject *args = cb->args ? Py_NewRef(cb->args) : NULL;
        PyObject *res;
        if (cb->kind == CB_WAITER_SWITCH)
            res = waiter_switch_impl(callback, Py_None);
        else if (cb->kind == CB_GREENLET_SWITCH || cb->kind == CB_SLEEP)
            res = PyGreenlet_Switch((PyGreenlet *)callback, args, NULL);
        else
            res = call_callback(callback, args);
        Py_XDECREF(args);
        int rc = 0;
        if (res == NULL)
            rc = loop_report_call_error(self, callback, cb->kind == CB_SLEEP, (PyObject *)cb);
        else
            Py_DECREF(res);
        Py_DECREF(callback);
        cb->state = CB_DONE;
        callback_clear_fields(cb);
        loop_release_callback(self, cb);
        if (rc < 0)
            return -1;
        if ((++count & 63) == 0) {
            uint64_t now = uv_hrtime();
            if (start == 0)
                start = now;
            else {
                double interval = 0.005;
                PyObject *sw = PySys_GetObject("getswitchinterval");
                if (sw) {
                    PyObject *r = PyObject_CallNoArgs(sw);
                    if (r) {
                        interval = PyFloat_AsDouble(r);
                        Py_DECREF(r);
                    }
                    PyErr_Clear();
                }
                if ((double)(now - start) / 1e9 >= interval)
                    break;
            }
        }
    }
    return 0;
}

/* Make sure the next n callback objects come from the spare list (no
 * allocation): a caller that must fire several watchers, or none, reserves
 * first.  -1 with MemoryError, nothing queued. */
int
loop_reserve_callbacks(LoopObject *loop, Py_ssize_t n)
{
    while (loop->n_cb_spare < n) {
        CallbackObject *cb = PyObject_GC_New(CallbackObject, loop->gst->CallbackType);
        if (cb == NULL)
            return -1;
        cb->callback = cb->args = NULL;
        cb->loop = NULL;
        cb->state = CB_DONE;
        cb->kind = 0;
        cb->next = loop->cb_spare;
        loop->cb_spare = cb;
        loop->n_cb_spare++;
    }
    return 0;
}

/* Fire w from Python context: on the next callback pass.  Unlike
 * loop_record (libuv callbacks), the queue owns a reference to w.
 * -1 with an exception (MemoryError) and nothing queued: the caller
 * reports it (never a success that loses the event); 0 after
 * loop_reserve_callbacks() succeeded. */
int
loop_fire_soon(WatcherObject *w)
{
    if (w->pending || w->loop == NULL || w->loop->uv == NULL)
        return 0;
    CallbackObject *cb = loop_queue_callback(w->loop, (PyObject *)w, NULL, CB_WATCHER);
    if (cb == NULL)
        return -1;
    w->pending = 1;
    Py_DECREF(cb);
    return 0;
}

/* Room for one more after-poll watcher: -1 with MemoryError. */
int
loop_after_poll_reserve(LoopObject *loop)
{
    if (loop->ap_n < loop->ap_cap)
        return 0;
    Py_ssize_t cap = loop->ap_cap ? loop->ap_cap * 2 : 16;
    WatcherObject **items = PyMem_Realloc(loop->ap_items, (size_t)cap * sizeof(*items));
    if (items == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    loop->ap_items = items;
    loop->ap_cap = cap;
    return 0;
}

/* Fire w (a timer due now) after the next poll for IO, like libev, and
 * without a libuv timer.  The list owns a reference to w.  -1 with
 * MemoryError and nothing changed; never fails after a successful
 * loop_after_poll_reserve(). */
int
loop_fire_after_poll(WatcherObject *w)
{
    LoopObject *loop = w->loop;
    if (w->pending || loop == NULL || loop->uv == NULL)
        return 0;
    if (loop_after_poll_reserve(loop) < 0)
        return -1;
    loop->ap_items[loop->ap_n++] = (WatcherObject *)Py_NewRef((PyObject *)w);
    w->pending = 1;
    return 0;
}

/* Run the after-poll watchers that were due when the poll returned.  They
 * are taken off the loop before the poll's own events are dispatched, so a
 * due-now timer started by one of those callbacks (or by a greenlet they
 * switch to) waits for the next poll, as it would if started anywhere else:
 * io that became ready together with it is always seen first. */

static int
loop_dispatch_polled(LoopObject *self)
{
    Py_ssize_t n = self->ap_n;
    WatcherObject **items = self->ap_items;
    Py_ssize_t cap = self->ap_cap;
    if (n) {
        self->ap_items = NULL;
        self->ap_n = self->ap_cap = 0;
    }
    int rc = loop_dispatch_pending(self);
    if (n == 0)
        return rc;
    Py_ssize_t kept = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        WatcherObject *w = items[i];
        if (rc == 0 && w->pending && self->uv != NULL) {
            w->pending = 0;
            rc = watcher_dispatch(w);
        }
        else if (w->pending && self->uv != NULL) {
            /* not run (an error stopped the pass): keep it, first, for the
             * next pass, in this array (no allocation that could fail) */
            items[kept++] = w;
            continue;
        }
        Py_DECREF(w);
    }
    if (kept && self->ap_n) {
        /* due-now timers started meanwhile go after the kept ones */
        if (kept + self->ap_n > cap) {
            WatcherObject **more = PyMem_Realloc(items, (size_t)(kept + self->ap_n) * sizeof(*items));
            if (more == NULL) {
                /* (only after an error ended the pass, and out of memory)
                 * the kept timers cannot be kept: stop them, visibly, rather
                 * than leave them active and never firing */
                for (Py_ssize_t i = 0; i < kept; i++) {
                    items[i]->pending = 0;
                    watcher_stop_impl(items[i]);
                    Py_DECREF(items[i]);
                }
                PyMem_Free(items);
                return rc;
            }
            items = more;
            cap = kept + self->ap_n;
        }
        memcpy(items + kept, self->ap_items, (size_t)self->ap_n * sizeof(*items));
        kept += self->ap_n;
        PyMem_Free(self->ap_items);
        self->ap_items = NULL;
        self->ap_n = self->ap_cap = 0;
    }
    if (self->ap_items == NULL) {
        self->ap_items = items;
        self->ap_cap = cap;
        self->ap_n = kept;
    }
    else
        PyMem_Free(items);
    return rc;
}

static void
loop_drop_after_poll(LoopObject *self)
{
    Py_ssize_t n = self->ap_n;
    WatcherObject **items = self->ap_items;
    self->ap_items = NULL;
    self->ap_n = self->ap_cap = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        items[i]->pending = 0;
        loop_defer_release(self, (PyObject *)items[i]);
    }
    PyMem_Free(items);
}

static void
loop_drop_callbacks(LoopObject *self)
{
    while (self->cb_head) {
        CallbackObject *cb = self->cb_head;
        self->cb_head = cb->next;
        cb->next = NULL;
        if (cb->kind == CB_WATCHER && cb->callback)
            ((WatcherObject *)cb->callback)->pending = 0;
        if (cb->state == CB_PENDING) {
            cb->state = CB_DONE;
            cb->loop = NULL;
            loop_defer_release(self, cb->callback);
            loop_defer_release(self, cb->args);
            cb->callback = cb->args = NULL;
        }
        loop_defer_release(self, (PyObject *)cb);
    }
    self->cb_tail = NULL;
    self->ncallbacks = 0;
}

/* ---------------------------------------------------------------------- */
/* Dispatching recorded watcher events                                     */
/* ---------------------------------------------------------------------- */


/* Forget recorded events (loop destroyed): no reference is held on them. */
static void
loop_drop_pending(LoopObject *self)
{
    for (Py_ssize_t i = 0; i < self->npend; i++)
        self->pend[i]->pending = 0;
    self->npend = 0;
}

/* The order in which the events recorded in one pass are dispatched, as
 * libev does it: higher priority first (-2..2); within a priority, io and
 * every other watcher before timers, whatever order libuv reported them in
 * (libuv 1.44 runs due timers at the start of a pass, before it polls for
 * io; libev polls, then queues the expired timers, and gevent gives its
 * Timeout's timer priority -1).  So a read that is ready when its timeout
 * expires in the same pass wins, as on libev.  Stable: events of one class
 * keep the order libuv reported them in. */
#define DISPATCH_NPRI (GEVC_MAXPRI - GEVC_MINPRI + 1)
#define DISPATCH_NBUCKETS (2 * DISPATCH_NPRI)

static inline int
dispatch_bucket(WatcherObject *w)
{
    int pri = gevc_clamp_priority(w->priority);
    return 2 * (GEVC_MAXPRI - pri) + (w->ops == &timer_ops);
}

/* A counting sort by bucket: O(n), no allocation when every event is in
 * one bucket (the common case).  If memory runs out the events keep the
 * order they were recorded in. */
static void
dispatch_order(WatcherObject **items, Py_ssize_t n)
{
    if (n < 2)
        return;
    Py_ssize_t count[DISPATCH_NBUCKETS + 1] = {0};
    int b0 = dispatch_bucket(items[0]), mixed = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        int b = dispatch_bucket(items[i]);
        mixed |= b != b0;
        count[b + 1]++;
    }
    if (!mixed)
        return;
    WatcherObject *small[64];
    WatcherObject **tmp = n <= 64 ? small : PyMem_Malloc((size_t)n * sizeof(*tmp));
    if (tmp == NULL)
        return;
    for (int b = 0; b < DISPATCH_NBUCKETS; b++)
        count[b + 1] += count[b];
    for (Py_ssize_t i = 0; i < n; i++)
        tmp[count[dispatch_bucket(items[i])]++] = items[i];
    memcpy(items, tmp, (size_t)n * sizeof(*items));
    if (tmp != small)
        PyMem_Free(tmp);
}

/* items[i], not dispatched yet (so owned by the batch), is a timer that
 * follows an event of another kind in the (ordered) batch: the first
 * timer after that priority's io.  The callbacks queued so far run before
 * it.  The event before it may be freed by now: its kind was kept. */
static inline int
dispatch_after_io(LoopObject *self, WatcherObject **items, Py_ssize_t i)
{
    return i > 0 && items[i]->ops == &timer_ops && !self->disp_prev_timer;
}

static int
loop_dispatch_pending(LoopObject *self)
{
    Py_ssize_t n = self->npend;
    if (n == 0)
        return 0;
    WatcherObject **items = self->pend;
    Py_ssize_t cap = self->pend_cap;
    self->pend = self->spare;
    self->pend_cap = self->spare_cap;
    self->spare = NULL;
    self->spare_cap = 0;
    self->npend = 0;
    dispatch_order(items, n);
    /* Own every recorded watcher before any Python code can drop it. */
    for (Py_ssize_t i = 0; i < n; i++)
        Py_INCREF(items[i]);
    int rc = 0;
    /* Not re-entrant: a run() is never nested in another (loop_run_impl). */
    self->disp_items = items;
    self->disp_n = n;
    /* disp_i is read again after each dispatch: a handoff (below) may have
     * taken the events after it */
    for (self->disp_i = 0; self->disp_i < n; self->disp_i++) {
        WatcherObject *w = items[self->disp_i];
        if (rc == 0 && w->pending && self->cb_head != NULL
                && dispatch_after_io(self, items, self->disp_i)) {
            /* The pass's timers come after its io and after the callbacks
             * that io queued: a greenlet an io callback spawned has started
             * when a timer of the same pass fires, as on libev (whose
             * callbacks all ran before the poll, and whose pass runs its
             * expired timers before its io).  No handoff meanwhile: the
             * batch's next event is this timer, still to come. */
            self->disp_items = NULL;
            rc = loop_run_callbacks(self);
            self->disp_items = items;
        }
        self->disp_prev_timer = w->ops == &timer_ops;
        if (rc == 0 && w->pending) {
            w->pending = 0;
            rc = watcher_dispatch(w);
        }
        else {
            w->pending = 0;  /* stopped meanwhile, or unwinding on error */
        }
        /* a safe point: nothing of the loop is held across it (disp_i and
         * the batch are read again; destroy() refuses while run() runs) */
        loop_defer_release(self, (PyObject *)w);
        loop_release_drain(self);
    }
    self->disp_items = NULL;
    self->disp_i = self->disp_n = 0;
    /* set by a handoff from a plain callback */
    loop_defer_release(self, self->handoff_last);
    self->handoff_last = NULL;
    if (self->spare == NULL) {
        self->spare = items;
        self->spare_cap = cap;
    }
    else {
        free(items);
    }
    loop_release_drain(self);
    return rc;
}

/* Events recorded and not yet dispatched: those of the next pass and what
 * is left of the batch being dispatched (loop.pendingcnt, repr). */
static Py_ssize_t
loop_pending_count(LoopObject *self)
{
    return self->npend + (self->disp_items ? self->disp_n - self->disp_i - 1 : 0);
}

/* The handoff.  While the hub dispatches a batch, it switches to each
 * waiting greenlet in turn, and each switches back to the hub when it waits
 * again; the hub then switches to the next.  A greenlet that is about to
 * switch to the hub (hub_switch_from) can do the hub's next step itself:
 * if the next event of the batch resumes a greenlet directly (hub.wait(),
 * sleep() on our watchers), it takes that event off the batch and switches
 * there, one greenlet switch instead of two.  The order of events and what
 * each does are those of the hub's own dispatch; the last greenlet of the
 * chain switches to the hub, which goes on with what is left of the batch.
 * Returns the watcher (the batch's reference passes to the caller), or
 * NULL when the next event is not such a one; never raises. */
WatcherObject *
loop_take_handoff(LoopObject *self, PyObject *cur)
{
    Py_ssize_t j = self->disp_i + 1;
    if (self->disp_items == NULL || j >= self->disp_n || self->uv == NULL)
        return NULL;
    WatcherObject *w = self->disp_items[j];
    if (self->cb_head != NULL && dispatch_after_io(self, self->disp_items, j))
        return NULL;   /* the hub runs the queued callbacks first */
    PyObject *g = w->callback;
    unsigned long me = PyThread_get_thread_ident();
    if (!w->pending || !w->direct_switch || g == NULL || g == cur || w->loop != self
            || w->direct_ident != me || self->run_ident != me
            || !PyGreenlet_ACTIVE((PyGreenlet *)g))
        return NULL;
    self->disp_i = j;
    self->disp_prev_timer = w->ops == &timer_ops;
    w->pending = 0;
    return w;
}

/* Resume the greenlet of a watcher taken by loop_take_handoff, as
 * watcher_dispatch would from the hub (the pending signals check aside: the
 * greenlet's own bytecode makes it, and the hub makes it after the batch). */
PyObject *
loop_handoff(LoopObject *self, WatcherObject *w)
{
    int was_active = w->active;
    if (w->ops->fired)
        w->ops->fired(w);
    PyObject *g = Py_NewRef(w->callback);
    w->direct_fired = 1;
    if (was_active && !w->active) {
        /* a fired one-shot: as watcher_dispatch does after the switch (the
         * greenlet stops the watcher first thing anyway) */
        loop_defer_release(self, w->callback);
        loop_defer_release(self, w->args);
        w->callback = w->args = NULL;
        w->direct_switch = 0;
    }
    loop_defer_release(self, (PyObject *)w);
    /* if g dies, its exception reaches the hub, which names g (not the
     * greenlet it switched to) as the context of the report */
    loop_defer_release(self, self->handoff_last);
    self->handoff_last = Py_NewRef(g);
    PyObject *res = PyGreenlet_Switch((PyGreenlet *)g, NULL, NULL);
    Py_DECREF(g);
    return res;
}

/* ---------------------------------------------------------------------- */
/* Signal wake-up: Python's C-level signal handler writes to a socket the   */
/* loop polls, so a pending Python signal wakes uv_run at once.            */
/* ---------------------------------------------------------------------- */

static void
sig_poll_close_cb(uv_handle_t *h)
{
    free(h);
}

static void
sig_poll_cb(uv_poll_t *h, int status, int events)
{
    LoopObject *self = (LoopObject *)h->data;
    char buf[256];
    if (self == NULL)
        return;
    while (read(self->sig_fds[0], buf, sizeof(buf)) > 0)
        ;
    /* nothing else: the loop calls PyErr_CheckSignals after uv_run */
}

static PyObject *
call_set_wakeup_fd(int fd)
{
    PyObject *mod = PyImport_ImportModule("signal");
    if (mod == NULL)
        return NULL;
    PyObject *func = PyObject_GetAttrString(mod, "set_wakeup_fd");
    Py_DECREF(mod);
    if (func == NULL)
        return NULL;
    PyObject *args = Py_BuildValue("(i)", fd);
    PyObject *kw = Py_BuildValue("{s:O}", "warn_on_full_buffer", Py_False);
    PyObject *res = (args && kw) ? PyObject_Call(func, args, kw) : NULL;
    Py_XDECREF(args);
    Py_XDECREF(kw);
    Py_DECREF(func);
    return res;
}

/* Called for the default loop on the main thread.  Takes the wake-up fd
 * only when nobody else (asyncio, another library) holds it; in either
 * case the signals that have a Python handler now also wake the loop
 * through the signal registry (sigreg.c), which does not depend on who
 * holds the wake-up fd (another library may take it later). */
static void
loop_install_signal_wakeup(LoopObject *self)
{
    self->sig_fds[0] = self->sig_fds[1] = -1;
    int fds[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) < 0)
        return;
    /* Put ours in to learn the current owner (set_wakeup_fd has no
     * getter): a signal arriving meanwhile lands in our socket, and is
     * handed on to the owner below, never lost. */
    PyObject *old = call_set_wakeup_fd(fds[1]);
    if (old == NULL) {
        PyErr_Clear();  /* not the main thread of the main interpreter */
        close(fds[0]);
        close(fds[1]);
        return;
    }
    long oldfd = PyLong_AsLong(old);
    Py_DECREF(old);
    if (oldfd == -1 && PyErr_Occurred())
        PyErr_Clear();
    loop_watch_python_signals(self);
    if (oldfd != -1) {
        /* someone else owns it: give it back, with what arrived meanwhile */
        PyObject *r = call_set_wakeup_fd((int)oldfd);
        Py_XDECREF(r);
        PyErr_Clear();
        char buf[256];
        ssize_t n;
        while ((n = read(fds[0], buf, sizeof(buf))) > 0)
            if (write((int)oldfd, buf, (size_t)n) < 0)
                break;
        close(fds[0]);
        close(fds[1]);
        return;
    }
    /* re-validated: the Python called above may have destroyed the loop */
    uv_poll_t *p = self->uv != NULL && !self->destroying ? malloc(sizeof(*p)) : NULL;
    if (p == NULL || uv_poll_init(self->uv, p, fds[0]) != 0) {
        free(p);
        PyObject *r = call_set_wakeup_fd(-1);
        Py_XDECREF(r);
        PyErr_Clear();
        close(fds[0]);
        close(fds[1]);
        return;
    }
    p->data = self;
    uv_poll_start(p, UV_READABLE, sig_poll_cb);
    uv_unref((uv_handle_t *)p);
    self->sig_poll = p;
    self->sig_fds[0] = fds[0];
    self->sig_fds[1] = fds[1];
}

static void
loop_remove_signal_wakeup(LoopObject *self)
{
    loop_unwatch_python_signals(self);
    if (self->sig_poll == NULL)
        return;
    PyObject *exc = PyErr_GetRaisedException();
    PyObject *r = call_set_wakeup_fd(-1);
    if (r) {
        /* someone replaced ours meanwhile: put theirs back */
        long cur = PyLong_AsLong(r);
        if (cur != -1 && cur != self->sig_fds[1]) {
            PyObject *r2 = call_set_wakeup_fd((int)cur);
            Py_XDECREF(r2);
        }
        Py_DECREF(r);
    }
    PyErr_Clear();
    PyErr_SetRaisedException(exc);
    self->sig_poll->data = NULL;
    uv_close((uv_handle_t *)self->sig_poll, sig_poll_close_cb);
    self->sig_poll = NULL;
    close(self->sig_fds[0]);
    close(self->sig_fds[1]);
    self->sig_fds[0] = self->sig_fds[1] = -1;
}

/* ---------------------------------------------------------------------- */
/* loop: construction and destruction                                      */
/* ---------------------------------------------------------------------- */

static const char *const known_flags[] = {
    "noenv", "forkcheck", "noinotify", "signalfd", "nosigmask", NULL
};
static const char *const unsupported_backends[] = {
    "select", "poll", "kqueue", "port", "linux_aio", "linux_iouring", "devpoll", NULL
};

static int
check_one_flag(PyObject *word)
{
    PyObject *stripped = PyObject_CallMethod(word, "strip", NULL);
    if (stripped == NULL)
        return -1;
    PyObject *low = PyObject_CallMethod(stripped, "lower", NULL);
    Py_DECREF(stripped);
    if (low == NULL)
        return -1;
    const char *s = PyUnicode_AsUTF8(low);
    int rc = -1;
    if (s == NULL)
        goto done;
    if (*s == '\0' || strcmp(s, "default") == 0 || strcmp(s, "epoll") == 0) {
        rc = 0;
        goto done;
    }
    for (int i = 0; known_flags[i]; i++)
        if (strcmp(s, known_flags[i]) == 0) {
            rc = 0;
            goto done;
        }
    for (int i = 0; unsupported_backends[i]; i++)
        if (strcmp(s, unsupported_backends[i]) == 0) {
            PyErr_Format(PyExc_ValueError, "Unsupported backend: %s", s);
            goto done;
        }
    PyErr_Format(PyExc_ValueError,
                 "Invalid backend or flag: %R\nPossible values: default, epoll, "
                 "noenv, forkcheck, noinotify, signalfd, nosigmask", low);
done:
    Py_DECREF(low);
    return rc;
}

/* flags: None, 0, '' or a list/str of backend names and libev flags.
 * libev's tuning flags are accepted and have no effect under libuv. */
static int
loop_validate_flags(PyObject *flags)
{
    if (flags == NULL || flags == Py_None)
        return 0;
    if (PyLong_Check(flags)) {
        int overflow;
        long v = PyLong_AsLongAndOverflow(flags, &overflow);
        if (v == 0 && !overflow)
            return 0;
        if (PyErr_Occurred())
            return -1;
        PyErr_Format(PyExc_ValueError, "Invalid backend or flag: %R", flags);
        return -1;
    }
    PyObject *items;
    if (PyUnicode_Check(flags)) {
        PyObject *comma = PyUnicode_FromString(",");
        items = comma ? PyUnicode_Split(flags, comma, -1) : NULL;
        Py_XDECREF(comma);
        if (items == NULL)
            return -1;
    }
    else if (PyList_Check(flags) || PyTuple_Check(flags)) {
        items = PySequence_List(flags);
        if (items == NULL)
            return -1;
    }
    else {
        PyErr_Format(PyExc_TypeError,
                     "loop flags must be None, a string or a list of strings, not %.200s",
                     Py_TYPE(flags)->tp_name);
        return -1;
    }
    Py_ssize_t n = PyList_GET_SIZE(items);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *word = PyList_GET_ITEM(items, i);
        if (!PyUnicode_Check(word)) {
            PyErr_Format(PyExc_TypeError, "loop flags must be strings, not %.200s",
                         Py_TYPE(word)->tp_name);
            Py_DECREF(items);
            return -1;
        }
        if (check_one_flag(word) < 0) {
            Py_DECREF(items);
            return -1;
        }
    }
    Py_DECREF(items);
    return 0;
}

static void
noop_prepare_cb(uv_prepare_t *h)
{
}

/* Wake-ups from other threads (run_callback_threadsafe) and from signal
 * handlers land here. */
static void
loop_wake_cb(uv_async_t *h)
{
    LoopObject *self = (LoopObject *)h->data;
    if (self != NULL)
        loop_scan_signals(self);
}

/* Internal handles: the wake-up async, and a keep-alive prepare so that
 * uv_run(ONCE) blocks whenever we ask it to: when to stop is decided by
 * the loop's own activecnt, never by libuv's handle refcounts. */
static int
loop_init_internal(LoopObject *self)
{
    self->sig_slot = -1;
    self->fork_gen = self->native_fork_gen = fork_generation;
    self->wake_async = malloc(sizeof(uv_async_t));
    self->keepalive = malloc(sizeof(uv_prepare_t));
    if (self->wake_async == NULL || self->keepalive == NULL) {
        free(self->wake_async);
        free(self->keepalive);
        self->wake_async = NULL;
        self->keepalive = NULL;
        PyErr_NoMemory();
        return -1;
    }
    int err = uv_async_init(self->uv, self->wake_async, loop_wake_cb);
    if (err < 0) {
        free(self->wake_async);
        free(self->keepalive);
        self->wake_async = NULL;
        self->keepalive = NULL;
        gevc_uv_error(err);
        return -1;
    }
    self->wake_async->data = self;
    uv_prepare_init(self->uv, self->keepalive);
    uv_prepare_start(self->keepalive, noop_prepare_cb);
    self->keepalive->data = NULL;
    return 0;
}

static void
close_internal_handle(uv_handle_t *h)
{
    if (h != NULL && !uv_is_closing(h)) {
        h->data = NULL;
        uv_close(h, free_handle_cb);
    }
}

static PyObject *
loop_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"flags", "default", NULL};
    PyObject *flags = Py_None, *dflt = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|OO:loop", kwlist, &flags, &dflt))
        return NULL;
    if (loop_validate_flags(flags) < 0)
        return NULL;
    int want_default = (dflt == Py_None) ? 1 : PyObject_IsTrue(dflt);
    if (want_default < 0)
        return NULL;
    if (want_default && default_loop_obj != NULL && default_loop_obj->uv != NULL) {
        /* one Python object per native loop */
        if (PyObject_TypeCheck((PyObject *)default_loop_obj, type))
            return Py_NewRef((PyObject *)default_loop_obj);
        PyErr_Format(PyExc_TypeError,
                     "the default loop is already wrapped by a %.200s object; destroy it "
                     "first or use default=False", Py_TYPE(default_loop_obj)->tp_name);
        return NULL;
    }

    gevc_state *gst = gevc_state_by_type(type);
    if (gst == NULL)
        return NULL;
    LoopObject *self = (LoopObject *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->gst = gst;
    self->sig_fds[0] = self->sig_fds[1] = -1;
    self->error_handler = Py_NewRef(Py_None);
    if (want_default) {
        self->uv = uv_default_loop();
        if (self->uv == NULL) {
            Py_DECREF(self);
            return PyErr_NoMemory();
        }
        self->is_default = 1;
        self->uv->data = self;
        default_loop_obj = self;
    }
    else {
        uv_loop_t *uv = malloc(sizeof(*uv));
        if (uv == NULL) {
            Py_DECREF(self);
            return PyErr_NoMemory();
        }
        int err = uv_loop_init(uv);
        if (err < 0) {
            free(uv);
            Py_DECREF(self);
            return gevc_uv_error(err);
        }
        uv->data = self;
        self->uv = uv;
    }
    if (loop_init_internal(self) < 0 || live_loops_add(self) < 0) {
        Py_DECREF(self);
        return NULL;
    }
    /* after loop_init_internal: signals wake the loop through wake_async */
    if (self->is_default && PyThread_get_thread_ident() == main_thread_ident())
        loop_install_signal_wakeup(self);
    return (PyObject *)self;
}

static void
destroy_walk_cb(uv_handle_t *h, void *arg)
{
    if (uv_is_closing(h))
        return;
    WatcherObject *w = (WatcherObject *)h->data;
    if (w != NULL && uv_handle_get_type(h) != UV_POLL) {
        watcher_detach(w);  /* native stop while the handle is open */
        h->data = NULL;
        w->handle = NULL;
        uv_close(h, free_handle_cb);
    }
}

/* Loop destroyed: close every async watcher's handle (an inactive one's
 * handle has no data, so the destroy walk would not know it) and detach
 * the watchers. */
static void
loop_close_asyncs(LoopObject *self)
{
    for (Py_ssize_t i = 0; i < self->asyncs.n; i++) {
        watcher_detach(self->asyncs.items[i]);
        watcher_close_uv_handle(self->asyncs.items[i]);
    }
    wlist_detach_all(&self->asyncs);
}

static void
leftover_walk_cb(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h)) {
        h->data = NULL;
        uv_close(h, NULL);  /* not ours: its owner frees it */
    }
}

/* In a forked child: is this loop's run() on the stack of a thread that
 * did not survive the fork (only the forking thread does)? */
int
loop_forked_away(LoopObject *self)
{
    return self->depth > 0 && self->fork_gen != fork_generation
           && self->run_ident != PyThread_get_thread_ident();
}

/* Close every handle, wait for the close callbacks, close the native loop.
 * Runs no Python until the native loop is gone: every reference it drops
 * goes to the release list, drained last (the caller holds a reference to
 * the loop); a destroy() re-entered from there, or from any Python that
 * runs meanwhile, finds `destroying` or a destroyed loop and does nothing. */
int
loop_destroy_impl(LoopObject *self)
{
    if (self->uv == NULL || self->destroying)
        return 0;
    if (self->depth > 0) {
        int forked = loop_forked_away(self);
        /* run() on the stack of a thread that has exited (a hub greenlet
         * left suspended in run(): it can never resume) */
        int orphaned = !forked && self->run_ident != PyThread_get_thread_ident()
                       && !gevc_thread_alive(self->run_ident);
        if (!forked && !orphaned) {
            PyErr_SetString(PyExc_RuntimeError, "cannot destroy a loop while it is running");
            return -1;
        }
        /* A forked child: the run() on the stack belongs to a thread that
         * does not exist here.  Give libuv its own kernel state (the epoll,
         * eventfd and signal pipe are the parent's), then destroy as usual,
         * which closes them. */
        self->depth = 0;
        self->in_uv = self->in_uv_nogil = 0;
        if (forked && self->native_fork_gen != fork_generation) {
            int err = uv_loop_fork(self->uv);
            if (err < 0) {
                gevc_uv_error(err);
                return -1;
            }
        }
        if (forked)
            self->fork_gen = self->native_fork_gen = fork_generation;
    }
    self->destroying = 1;
    /* the one call out to Python (signal.set_wakeup_fd) first, while the
     * loop is whole; it finds the loop refusing new work (destroying) */
    loop_remove_signal_wakeup(self);
    uv_loop_t *uv = self->uv;
    loop_drop_callbacks(self);
    loop_drop_pending(self);
    loop_drop_after_poll(self);
    loop_close_orphans(self);
    PyMem_Free(self->orphans);
    self->orphans = NULL;
    self->orphans_cap = 0;
    loop_drop_fdpolls(self);
    wlist_detach_all(&self->prepares);
    wlist_detach_all(&self->forks);
    wlist_detach_all(&self->signals);
    wlist_detach_all(&self->children);
    loop_detach_pools(self);
    loop_close_asyncs(self);
    loop_unregister_signals(self);
    if (self->uv_pinned && self->wake_async) {
        self->wake_async->data = NULL;
        uv_close((uv_handle_t *)self->wake_async, NULL);  /* leaked, see uv_pinned */
    }
    else
        close_internal_handle((uv_handle_t *)self->wake_async);
    close_internal_handle((uv_handle_t *)self->keepalive);
    loop_prec_close_driver(self);
    self->wake_async = NULL;
    self->keepalive = NULL;
    uv_walk(uv, destroy_walk_cb, NULL);
    uv_walk(uv, leftover_walk_cb, NULL);
    loop_prec_free(self);
    /* Close callbacks need a pass; requests in libuv's threadpool (none of
     * ours today; another extension's handles on this loop may have some)
     * need their completion.  Wait for those with a 1 ms
     * tick so the wait is bounded (2 s): a request can never complete if
     * libuv's threadpool is gone (a forked child) or an internal fd was
     * closed by someone.  Never free a loop libuv may still use: a late
     * request would lock the freed loop's mutex; leak it instead. */
    int closed = 0;
    for (int i = 0; i < 16 && !closed; i++) {
        closed = uv_loop_close(uv) == 0;
        if (!closed)
            uv_run(uv, UV_RUN_NOWAIT);
    }
    if (!closed) {
        uv_timer_t *tick = malloc(sizeof(*tick));
        if (tick != NULL && uv_timer_init(uv, tick) == 0) {
            uv_timer_start(tick, noop_timer_cb, 1, 1);
            uint64_t deadline = uv_hrtime() + 2000000000ULL;
            /* unreferenced, the tick does not keep the loop alive:
             * only requests in flight and closing handles do */
            uv_unref((uv_handle_t *)tick);
            while (uv_loop_alive(uv) && uv_hrtime() < deadline)
                uv_run(uv, UV_RUN_ONCE);
            uv_close((uv_handle_t *)tick, free_handle_cb);
        }
        else
            free(tick);
        for (int i = 0; i < 16 && !closed; i++) {
            uv_run(uv, UV_RUN_NOWAIT);
            closed = uv_loop_close(uv) == 0;
        }
    }
    self->uv = NULL;
    live_loops_remove(self);
    self->nactive_ref = 0;
    if (self->is_default) {
        if (default_loop_obj == self)
            default_loop_obj = NULL;
        self->is_default = 0;
    }
    else if (closed && !self->uv_pinned) {
        free(uv);
    }  /* else: leaked on purpose (see above and uv_pinned) */
    free(self->pend);
    free(self->spare);
    self->pend = self->spare = NULL;
    self->pend_cap = self->spare_cap = 0;
    loop_free_spare_callbacks(self);
    self->destroying = 0;
    loop_release_drain(self);  /* may run arbitrary code: last */
    return 0;
}

static PyObject *
loop_destroy(LoopObject *self, PyObject *Py_UNUSED(ignored))
{
    if (loop_destroy_impl(self) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static int
loop_traverse(LoopObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    for (Py_ssize_t i = 0; i < self->rel_n; i++)
        Py_VISIT(self->rel_items[i]);
    Py_VISIT(self->error_handler);
    for (CallbackObject *cb = self->cb_head; cb; cb = cb->next)
        Py_VISIT(cb);
    for (Py_ssize_t i = 0; i < self->ap_n; i++)
        Py_VISIT(self->ap_items[i]);
    Py_VISIT(self->handoff_last);
    return 0;
}

static int
loop_tp_clear(LoopObject *self)
{
    Py_CLEAR(self->error_handler);
    Py_CLEAR(self->handoff_last);
    loop_drop_callbacks(self);
    loop_drop_after_poll(self);
    loop_release_drain(self);
    return 0;
}

static void
loop_dealloc(LoopObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    if (self->weakreflist)
        PyObject_ClearWeakRefs((PyObject *)self);
    self->depth = 0;
    if (loop_destroy_impl(self) < 0)
        PyErr_WriteUnraisable((PyObject *)self);
    Py_CLEAR(self->error_handler);
    Py_CLEAR(self->handoff_last);
    loop_free_spare_callbacks(self);
    if (default_loop_obj == self)
        default_loop_obj = NULL;
    loop_release_drain(self);
    PyMem_Free(self->rel_items);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

/* ---------------------------------------------------------------------- */
/* loop: running                                                           */
/* ---------------------------------------------------------------------- */

static Py_ssize_t
loop_activecnt_value(LoopObject *self)
{
    return self->nactive_ref + self->ncallbacks + self->user_ref;
}

int
loop_check_signals(LoopObject *self)
{
    if (PyErr_CheckSignals() < 0)
        return loop_handle_error(self, NULL);
    return 0;
}

/* One uv_run pass.  The GIL is released only when the pass can block.
 * uv_backend_timeout() is 0 both when nothing blocks and when io watcher
 * changes are still queued for epoll_ctl; in the second case a NOWAIT pass
 * applies them first, then we know. */
/* Handles released by another thread while this loop polled without the
 * GIL (a watcher collected by the GC in a worker thread) are closed here,
 * on the loop's thread.  The GIL protects the list. */
void
loop_orphan_handle(LoopObject *self, uv_handle_t *h)
{
    if (self->norphans == self->orphans_cap) {
        Py_ssize_t cap = self->orphans_cap ? self->orphans_cap * 2 : 16;
        uv_handle_t **arr = PyMem_Realloc(self->orphans, (size_t)cap * sizeof(*arr));
        if (arr == NULL)
            return;  /* leak the handle rather than touch libuv from here */
        self->orphans = arr;
        self->orphans_cap = cap;
    }
    self->orphans[self->norphans++] = h;
    if (self->wake_async)
        uv_async_send(self->wake_async);
}

static void
loop_close_orphans(LoopObject *self)
{
    for (Py_ssize_t i = 0; i < self->norphans; i++)
        if (!uv_is_closing(self->orphans[i]))
            uv_close(self->orphans[i], free_handle_cb);
    self->norphans = 0;
}

/* Python callers that would touch libuv: not while the loop's thread is
 * inside uv_run with the GIL released. */
int
loop_check_own_thread(LoopObject *self)
{
    if (self->in_uv_nogil) {
        PyErr_SetString(PyExc_RuntimeError,
                        "this loop is polling in another thread: use "
                        "loop.run_callback_threadsafe() or async_.send() from here");
        return -1;
    }
    return 0;
}


/* Called without the GIL, before taking it back after the poll.  A daemon
 * thread that takes the GIL once the interpreter is finalizing is ended by
 * CPython with pthread_exit(), whose forced unwind runs greenlet's C++
 * destructors (Py_DECREF without the GIL, on a stack greenlet has since
 * reused): a segfault in the exit-time GC.  A hub thread woken from its
 * poll then never takes the GIL again and waits for the process to end,
 * as CPython 3.14 does with such threads.  Not the main thread: it is the
 * one that finalizes. */
static void
gevc_hang_if_finalizing(unsigned long main_id)
{
    int fin = Py_IsFinalizing();
    if (fin && PyThread_get_thread_ident() != main_id)
        for (;;)
            pause();
}

/* The same, for a thread CPython ends while it waits for the GIL after the
 * poll (the check above came just too early): a cleanup handler that the
 * forced unwind runs before it reaches greenlet's frames, and that never
 * returns.  Registered only between the poll and the GIL: no greenlet
 * switch can happen there, so the thread's cleanup chain never points into
 * a stack greenlet has swapped out. */
static void
gevc_hang_on_exit(void *unused)
{
    (void)unused;
    for (;;)
        pause();
}

/* One libuv pass that does not block, then the precise timers due by the
 * clock read after it. */
static void
loop_uv_pass_nowait(LoopObject *self)
{
    uv_run(self->uv, UV_RUN_NOWAIT);
    loop_prec_collect(self);
}

/* The blocking pass (GIL released): uv_run(ONCE), except that it sleeps no
 * longer than until the first precise timer's deadline (timer.c), which
 * libuv's millisecond poll timeout cannot express.  Then it waits on
 * libuv's backend fd (epoll: readable when an event is ready) for that
 * long, with ns precision, and makes a pass that does not block. */
static void
loop_uv_pass_block(LoopObject *self)
{
    for (int round = 0; round < 2; round++) {
        int64_t left = loop_prec_wait_ns(self);
        int t = left > 0 ? uv_backend_timeout(self->uv) : 0;
        if (left < 0 || (t >= 0 && (int64_t)t * 1000000 + 1000000 <= left)) {
            self->prec_early = 0;
            uv_run(self->uv, UV_RUN_ONCE);   /* libuv wakes first anyway */
            /* woken by a libuv timer armed early, with nothing else: wait
             * for its deadline now, so that a pass that blocks still ends
             * with an event (run(once=True)) */
            if (self->prec_early && self->npend == 0)
                continue;
        }
        else {
            if (left > 0) {
                struct pollfd pfd = {uv_backend_fd(self->uv), POLLIN, 0};
#ifdef __linux__
                struct timespec ts = {(time_t)(left / 1000000000), (long)(left % 1000000000)};
                (void)ppoll(&pfd, 1, &ts, NULL);
#else
                (void)poll(&pfd, 1, (int)((left + 999999) / 1000000));
#endif
            }
            uv_run(self->uv, UV_RUN_NOWAIT);
        }
        break;
    }
    loop_prec_collect(self);
}

static int
loop_uv_run(LoopObject *self, uv_run_mode mode)
{
    /* a forked child: never poll before the loop is reinitialised (a run()
     * resumed in the middle of its iteration reaches here first) */
    if (self->fork_gen != fork_generation && loop_reinit_impl(self) < 0)
        return -1;
    if (self->norphans)
        loop_close_orphans(self);
    loop_flush_polls(self);
    if (self->npend > 0)
        mode = UV_RUN_NOWAIT;   /* flush recorded events: do not block */
    self->in_uv = 1;
    if (mode == UV_RUN_ONCE && uv_backend_timeout(self->uv) == 0) {
        loop_uv_pass_nowait(self);
        self->iteration++;
        if (self->npend > 0 || self->cb_head != NULL || self->break_flag
                || uv_backend_timeout(self->uv) == 0) {
            self->in_uv = 0;
            return loop_dispatch_polled(self);
        }
    }
    else if (mode == UV_RUN_ONCE && self->gil_poll_skip == 0
             && !(self->pools.n && loop_pools_outstanding(self))) {
        /* Under load most polls find an fd ready and do not block: try
         * one with the GIL held, which saves releasing and re-taking it.
         * When it finds nothing, the next tries back off (1, 2, 4 .. 64
         * blocking polls), so an idle or lightly used loop makes almost
         * no extra epoll_wait(0).  Not while pool tasks are outstanding:
         * their workers wait for the GIL (docs/design.md, "The GIL and the
         * poll") */
        loop_uv_pass_nowait(self);
        self->iteration++;
        if (self->npend > 0 || self->cb_head != NULL || self->break_flag) {
            self->gil_poll_backoff = 0;
            self->in_uv = 0;
            return loop_dispatch_polled(self);
        }
        self->gil_poll_skip = self->gil_poll_backoff ? self->gil_poll_backoff : 1;
        if (self->gil_poll_backoff < 64)
            self->gil_poll_backoff = self->gil_poll_skip * 2;
    }
    else if (mode == UV_RUN_ONCE) {
        self->gil_poll_skip--;
    }
    if (mode == UV_RUN_ONCE) {
        self->in_uv_nogil = 1;
        PoolState *busy[SPIN_MAX_POOLS];
        /* volatile: live across pthread_cleanup_push's setjmp */
        volatile int nbusy = 0;
        if (self->pools.n) {
            loop_pools_set_blocked(self, 1);
            nbusy = loop_pools_pin_busy(self, busy);
        }
        unsigned long main_id = main_thread_ident();
        PyThreadState *save = PyEval_SaveThread();
        if (nbusy)
            pools_spin(busy, nbusy);
        loop_uv_pass_block(self);
        gevc_hang_if_finalizing(main_id);
        /* finalization may begin while we wait for the GIL: CPython's
         * pthread_exit() then unwinds from here, and stops at this handler */
        pthread_cleanup_push(gevc_hang_on_exit, NULL);
        PyEval_RestoreThread(save);
        pthread_cleanup_pop(0);
        if (nbusy)
            pools_unpin(busy, nbusy);
        if (self->pools.n)
            loop_pools_set_blocked(self, 0);
        self->in_uv_nogil = 0;
    }
    else {
        loop_uv_pass_nowait(self);
    }
    self->in_uv = 0;
    self->iteration++;
    return loop_dispatch_polled(self);
}

/* The body of loop.run().  -1 with an exception set: HubDestroyed (or a
 * usage error).  The loop may be destroyed by a callback: re-check uv. */
int
loop_run_impl(LoopObject *self, int nowait, int once)
{
    if (loop_check_alive(self) < 0)
        return -1;
    if (self->depth > 0) {
        PyErr_SetString(PyExc_RuntimeError,
                        "loop.run() is already running (re-entrant run is not allowed)");
        return -1;
    }
    self->depth++;
    self->run_ident = PyThread_get_thread_ident();
    self->break_flag = 0;
    int rc = 0;
    for (;;) {
        /* in a forked child without reinit(): do it now, once */
        if (self->fork_gen != fork_generation && (rc = loop_reinit_impl(self)) < 0)
            break;
        if ((rc = loop_check_signals(self)) < 0)
            break;
        if ((rc = loop_run_callbacks(self)) < 0)
            break;
        if (self->uv == NULL || self->break_flag)
            break;
        if (!nowait && !once && loop_activecnt_value(self) <= 0)
            break;
        if (self->prepares.n) {
            wlist_record_all(&self->prepares);
            if ((rc = loop_dispatch_pending(self)) < 0)
                break;
            if (self->uv == NULL)
                break;
        }
        uv_run_mode mode = (nowait || self->cb_head || self->ap_n
                            || loop_activecnt_value(self) <= 0)
                           ? UV_RUN_NOWAIT : UV_RUN_ONCE;
        if ((rc = loop_uv_run(self, mode)) < 0)
            break;
        if (self->uv == NULL || self->break_flag || nowait || once)
            break;
    }
    if (rc == 0 && self->uv != NULL && (nowait || once))
        rc = loop_check_signals(self);
    self->depth--;
    self->break_flag = 0;
    return rc;
}

static PyObject *
loop_run(LoopObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"nowait", "once", NULL};
    int nowait = 0, once = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|pp:run", kwlist, &nowait, &once))
        return NULL;
    if (loop_run_impl(self, nowait, once) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
loop_run_callback(LoopObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 1) {
        PyErr_SetString(PyExc_TypeError, "run_callback() takes at least 1 argument (func)");
        return NULL;
    }
    if (!PyCallable_Check(args[0])) {
        PyErr_Format(PyExc_TypeError, "Expected callable, not %R", args[0]);
        return NULL;
    }
    PyObject *tuple = NULL;
    if (nargs > 1) {
        tuple = PyTuple_New(nargs - 1);
        if (tuple == NULL)
            return NULL;
        for (Py_ssize_t i = 1; i < nargs; i++)
            PyTuple_SET_ITEM(tuple, i - 1, Py_NewRef(args[i]));
    }
    CallbackObject *cb = loop_queue_callback(self, args[0], tuple, CB_CALL);
    Py_XDECREF(tuple);
    /* called from another thread while the loop polls (Event.set() in a
     * thread): the queue is only touched with the GIL held, so this is
     * safe; wake the poll, as run_callback_threadsafe does */
    if (cb != NULL && self->in_uv_nogil && self->wake_async != NULL)
        uv_async_send(self->wake_async);
    return (PyObject *)cb;
}

/* run_callback_threadsafe(func, *args): callable from any thread (the
 * queue is only touched with the GIL held); wakes the loop's poll. */
static PyObject *
loop_run_callback_threadsafe(LoopObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *cb = loop_run_callback(self, args, nargs);
    if (cb != NULL && self->wake_async != NULL)
        uv_async_send(self->wake_async);
    return cb;
}

/* After fork(), in the child: let libuv re-create its kernel state, then
 * run the fork watchers. */
static int
loop_reinit_impl(LoopObject *self)
{
    /* Python code never runs inside uv_run on the loop's own thread, so
     * this is safe even while a run() is on the stack (the hub suspended in
     * a callback); not while another thread polls it */
    if (loop_check_alive(self) < 0 || loop_check_own_thread(self) < 0)
        return -1;
    /* in a forked child the atfork handler did the native part already */
    if (self->native_fork_gen != fork_generation || self->fork_gen == fork_generation) {
        int err = uv_loop_fork(self->uv);
        if (err < 0) {
            gevc_uv_error(err);
            return -1;
        }
    }
    self->fork_gen = self->native_fork_gen = fork_generation;
    /* every native poll must be re-armed in the new epoll set */
    for (int fd = 0; fd < self->nfdpolls; fd++)
        if (self->fdpolls[fd]) {
            self->fdpolls[fd]->armed = -1;
            fdpoll_mark_dirty(self->fdpolls[fd]);
        }
    if (wlist_fire_all(&self->forks) < 0)
        return -1;
    /* thread pools whose workers were the parent's start afresh */
    if (loop_pools_after_fork(self) < 0)
        return -1;
    return 0;
}

static PyObject *
loop_reinit(LoopObject *self, PyObject *Py_UNUSED(ignored))
{
    if (loop_reinit_impl(self) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
loop_now(LoopObject *self, PyObject *Py_UNUSED(ignored))
{
    if (loop_check_alive(self) < 0)
        return NULL;
    return PyFloat_FromDouble((double)uv_now(self->uv) / 1000.0);
}

static PyObject *
loop_update_now(LoopObject *self, PyObject *Py_UNUSED(ignored))
{
    if (loop_check_alive(self) < 0 || loop_check_own_thread(self) < 0)
        return NULL;
    uv_update_time(self->uv);
    Py_RETURN_NONE;
}

static PyObject *
loop_break(LoopObject *self, PyObject *args)
{
    int how = 1;
    if (!PyArg_ParseTuple(args, "|i:break_", &how))
        return NULL;
    if (loop_check_alive(self) < 0 || loop_check_own_thread(self) < 0)
        return NULL;
    self->break_flag = 1;  /* Python never runs inside uv_run: no uv_stop */
    Py_RETURN_NONE;
}

static PyObject *
loop_ref(LoopObject *self, PyObject *Py_UNUSED(ignored))
{
    if (loop_check_alive(self) < 0 || loop_check_own_thread(self) < 0)
        return NULL;
    self->user_ref++;
    Py_RETURN_NONE;
}

static PyObject *
loop_unref(LoopObject *self, PyObject *Py_UNUSED(ignored))
{
    if (loop_check_alive(self) < 0 || loop_check_own_thread(self) < 0)
        return NULL;
    self->user_ref--;
    Py_RETURN_NONE;
}

static PyObject *
loop_verify(LoopObject *self, PyObject *Py_UNUSED(ignored))
{
    Py_RETURN_NONE;
}

static PyObject *
loop_fileno(LoopObject *self, PyObject *Py_UNUSED(ignored))
{
    if (self->uv == NULL)
        Py_RETURN_NONE;
    int fd = uv_backend_fd(self->uv);
    if (fd < 0)
        Py_RETURN_NONE;
    return PyLong_FromLong(fd);
}

static PyObject *
loop_format(LoopObject *self, PyObject *Py_UNUSED(ignored))
{
    if (self->uv == NULL)
        return PyUnicode_FromString("destroyed");
    return PyUnicode_FromFormat("epoll%s pending=%zd ref=%zd fileno=%d",
                                self->is_default ? " default" : "",
                                loop_pending_count(self),
                                loop_activecnt_value(self),
                                uv_backend_fd(self->uv));
}

static PyObject *
loop_repr(LoopObject *self)
{
    PyObject *fmt = loop_format(self, NULL);
    if (fmt == NULL)
        return NULL;
    PyObject *name = PyType_GetName(Py_TYPE(self));
    PyObject *r = name ? PyUnicode_FromFormat("<%U at %p %U>", name, self, fmt) : NULL;
    Py_XDECREF(name);
    Py_DECREF(fmt);
    return r;
}

static PyObject *
loop_get_default(LoopObject *self, void *c)
{
    return PyBool_FromLong(self->uv != NULL && self->is_default);
}

static PyObject *
loop_get_iteration(LoopObject *self, void *c)
{
    if (loop_check_alive(self) < 0)
        return NULL;
    return PyLong_FromUnsignedLong(self->iteration);
}

/* True while the loop's thread waits in the poll with the GIL released:
 * an idle loop, as opposed to one held up by a callback or a greenlet.  The
 * flag changes only under the GIL, so a reader holding it sees a settled
 * value.  The blocking monitor (gevent_c/_monitor.py) reads it with
 * `iteration` and `depth`. */
static PyObject *
loop_get_polling(LoopObject *self, void *c)
{
    if (loop_check_alive(self) < 0)
        return NULL;
    return PyBool_FromLong(self->in_uv_nogil);
}

/* loop._stall_wait(interval, timeout, ignore=None): for the blocking
 * monitor's thread.  Samples the loop every `interval` seconds with the GIL
 * released, so a healthy loop costs its owner no GIL hand-off at all, and
 * returns the pass number (`iteration`) as soon as two samples an interval
 * apart saw the loop running (depth > 0), not waiting in the poll, and on
 * the same pass: the loop has been held for at least `interval`.  A stall on
 * pass `ignore` (already reported) does not count.  Returns None after
 * `timeout` seconds without a stall, so the caller can check whether to go
 * on.
 *
 * The fields are written by the loop's thread under the GIL; here they are
 * read without it, with relaxed atomic loads of aligned words: a sample may
 * be a moment stale, never torn.  The caller's reference keeps the object
 * alive; a destroyed loop has depth 0 and never looks stalled. */
static PyObject *
loop_stall_wait(LoopObject *self, PyObject *args)
{
    double interval, timeout;
    PyObject *ignore_o = Py_None;
    if (!PyArg_ParseTuple(args, "dd|O:_stall_wait", &interval, &timeout, &ignore_o))
        return NULL;
    if (!(interval > 0) || !(interval <= 3600) || !(timeout >= 0) || !(timeout <= 86400)) {
        PyErr_SetString(PyExc_ValueError,
                        "_stall_wait: interval must be in (0, 3600] and timeout in [0, 86400]");
        return NULL;
    }
    int have_ignore = ignore_o != Py_None;
    unsigned long ignore = 0;
    if (have_ignore) {
        ignore = PyLong_AsUnsignedLong(ignore_o);
        if (ignore == (unsigned long)-1 && PyErr_Occurred())
            return NULL;
    }
    if (self->run_ident == PyThread_get_thread_ident() && self->depth > 0) {
        PyErr_SetString(PyExc_RuntimeError,
                        "_stall_wait would wait on the loop it blocks: call it from another thread");
        return NULL;
    }
    struct timespec step;
    step.tv_sec = (time_t)interval;
    step.tv_nsec = (long)((interval - (double)step.tv_sec) * 1e9);
    long nsteps = (long)(timeout / interval) + 1;
    int stalled = 0;
    unsigned long it = 0;
    Py_BEGIN_ALLOW_THREADS
    unsigned long last_it = 0;
    int last_busy = 0;
    for (long i = 0; i < nsteps && !stalled; i++) {
        if (i > 0) {
            struct timespec rem = step;
            while (nanosleep(&rem, &rem) != 0 && errno == EINTR)
                ;
        }
        it = __atomic_load_n(&self->iteration, __ATOMIC_RELAXED);
        int busy = __atomic_load_n(&self->depth, __ATOMIC_RELAXED) > 0
                   && !__atomic_load_n(&self->in_uv_nogil, __ATOMIC_RELAXED);
        if (i > 0 && busy && last_busy && it == last_it && !(have_ignore && it == ignore))
            stalled = 1;
        last_it = it;
        last_busy = busy;
    }
    Py_END_ALLOW_THREADS
    if (!stalled)
        Py_RETURN_NONE;
    return PyLong_FromUnsignedLong(it);
}

static PyObject *
loop_get_approx_timer_resolution(LoopObject *self, void *c)
{
    return PyFloat_FromDouble(0.001);
}

static PyObject *
loop_get_maxpri(LoopObject *self, void *c)
{
    return PyLong_FromLong(GEVC_MAXPRI);
}

static PyObject *
loop_get_minpri(LoopObject *self, void *c)
{
    return PyLong_FromLong(GEVC_MINPRI);
}

static PyObject *
loop_get_watcher_type(LoopObject *self, void *c)
{
    return Py_NewRef((PyObject *)self->gst->WatcherType);
}

static PyObject *
loop_get_depth(LoopObject *self, void *c)
{
    return PyLong_FromSsize_t(self->depth);
}

static PyObject *
loop_get_backend(LoopObject *self, void *c)
{
    if (loop_check_alive(self) < 0)
        return NULL;
    return PyUnicode_FromString("epoll");
}

/* libev's EVBACKEND_* number of the backend (gevent_c.core.BACKEND_*):
 * libuv polls with epoll on Linux, as `backend` says. */
#define GEVC_BACKEND_EPOLL 4

static PyObject *
loop_get_backend_int(LoopObject *self, void *c)
{
    if (loop_check_alive(self) < 0)
        return NULL;
    return PyLong_FromLong(GEVC_BACKEND_EPOLL);
}


/* libev's sig_pending: 1 while a signal this loop watches (signal or child
 * watchers) has been delivered to the process and not yet taken in by the
 * loop; the loop takes it in at its next iteration (then its watchers are
 * pending). */
static PyObject *
loop_get_sig_pending(LoopObject *self, void *c)
{
    if (loop_check_alive(self) < 0)
        return NULL;
    return PyLong_FromLong(loop_signals_undelivered(self));
}

/* loop.debug(): every libuv handle of the loop, as gevent's libuv loop
 * reports them: HandleState(handle, type, watcher, ref, active, closing).
 * watcher is the watcher object; for an fd's shared native poll, the tuple
 * of the io watchers active on it; for the loop's own handles, the loop. */

static PyStructSequence_Field handle_state_fields[] = {
    {"handle", "address of the uv_handle_t"},
    {"type", "libuv's name of the handle type (bytes)"},
    {"watcher", "the watcher; an fd's native poll: its active io watchers; "
                "the loop's own handles: the loop; closing handles: None"},
    {"ref", "uv_has_ref()"},
    {"active", "uv_is_active(), or the watcher that owns the handle is active "
               "(one-shot timers wait on the loop's own heap)"},
    {"closing", "uv_is_closing()"},
    {NULL, NULL},
};

static PyStructSequence_Desc handle_state_desc = {
    "gevent_c.core.HandleState",
    "One libuv handle of a loop (loop.debug()).",
    handle_state_fields,
    6,
};

/* Re-entrancy: no Python and no allocation of a Python object inside
 * uv_walk (an allocation may run a GC pass, whose finalizers may destroy
 * the loop being walked).  The walk only copies what it sees into a
 * PyMem array, taking references; the Python objects are made after. */
typedef struct {
    uv_handle_t *h;
    uv_handle_type type;
    int ref, active, closing;
    PyObject *owner;           /* owned: the loop, a watcher, or NULL */
    Py_ssize_t io0, nio;       /* a native poll's io watchers, in ios */
} HandleSeen;

typedef struct {
    LoopObject *loop;
    HandleSeen *hs;
    Py_ssize_t n, cap;
    PyObject **ios;            /* owned */
    Py_ssize_t nio, iocap;
    int active_watchers_only;  /* loop_collect_watchers */
    int failed;
} LoopDebugWalk;

static int
walk_grow(void **items, Py_ssize_t *cap, Py_ssize_t n, size_t size)
{
    if (n < *cap)
        return 0;
    Py_ssize_t c = *cap ? 2 * *cap : 32;
    void *p = PyMem_Realloc(*items, (size_t)c * size);
    if (p == NULL)
        return -1;
    *items = p;
    *cap = c;
    return 0;
}

static void
loop_debug_walk_cb(uv_handle_t *h, void *arg)
{
    LoopDebugWalk *ctx = (LoopDebugWalk *)arg;
    LoopObject *loop = ctx->loop;
    if (ctx->failed)
        return;
    if (ctx->active_watchers_only) {
        WatcherObject *w = (WatcherObject *)h->data;
        if (w == NULL || uv_handle_get_type(h) == UV_POLL || w->handle != h || !w->active
                || h == (uv_handle_t *)loop->wake_async || h == (uv_handle_t *)loop->keepalive
                || h == (uv_handle_t *)loop->sig_poll)
            return;
        if (walk_grow((void **)&ctx->ios, &ctx->iocap, ctx->nio, sizeof(PyObject *)) < 0) {
            ctx->failed = 1;
            return;
        }
        ctx->ios[ctx->nio++] = Py_NewRef((PyObject *)w);
        return;
    }
    if (walk_grow((void **)&ctx->hs, &ctx->cap, ctx->n, sizeof(HandleSeen)) < 0) {
        ctx->failed = 1;
        return;
    }
    HandleSeen *s = &ctx->hs[ctx->n];
    s->h = h;
    s->type = h->type;
    s->ref = uv_has_ref(h);
    s->active = uv_is_active(h);
    s->closing = uv_is_closing(h);
    s->owner = NULL;
    s->io0 = ctx->nio;
    s->nio = -1;
    if (h == (uv_handle_t *)loop->wake_async || h == (uv_handle_t *)loop->keepalive
            || h == (uv_handle_t *)loop->sig_poll)
        s->owner = Py_NewRef((PyObject *)loop);
    else if (h->data != NULL && h->type == UV_POLL) {   /* an FdPoll's native poll */
        FdPoll *p = (FdPoll *)h->data;
        s->nio = 0;
        for (IoObject *io = p->first; io; io = io->next_on_fd) {
            if (walk_grow((void **)&ctx->ios, &ctx->iocap, ctx->nio, sizeof(PyObject *)) < 0) {
                ctx->failed = 1;
                break;
            }
            ctx->ios[ctx->nio++] = Py_NewRef((PyObject *)io);
            s->nio++;
        }
    }
    else if (h->data != NULL) {
        /* a watcher's own handle; a one-shot timer waits on the loop's
         * own heap, not on its libuv timer: active is the watcher's */
        WatcherObject *w = (WatcherObject *)h->data;
        if (w->handle == h && w->active)
            s->active = 1;
        s->owner = Py_NewRef((PyObject *)w);
    }
    ctx->n++;
}

static void
loop_debug_walk_free(LoopDebugWalk *ctx)
{
    for (Py_ssize_t i = 0; i < ctx->n; i++)
        Py_XDECREF(ctx->hs[i].owner);
    for (Py_ssize_t i = 0; i < ctx->nio; i++)
        Py_DECREF(ctx->ios[i]);
    PyMem_Free(ctx->hs);
    PyMem_Free(ctx->ios);
}

/* The loop's active watchers that have a libuv handle of their own (new
 * references in a PyMem array the caller frees); for the hub's LoopExit. */
PyObject **
loop_collect_watchers(LoopObject *loop, Py_ssize_t *n)
{
    LoopDebugWalk ctx = {0};
    ctx.loop = loop;
    ctx.active_watchers_only = 1;
    if (loop->uv != NULL && !loop->destroying)
        uv_walk(loop->uv, loop_debug_walk_cb, &ctx);
    *n = ctx.nio;
    return ctx.ios;
}

static PyObject *
loop_debug(LoopObject *self, PyObject *unused)
{
    gevc_state *gst = self->gst;
    if (gst->HandleStateType == NULL) {
        PyTypeObject *t = PyStructSequence_NewType(&handle_state_desc);
        if (t == NULL)
            return NULL;
        if (gst->HandleStateType == NULL)
            gst->HandleStateType = t;
        else
            Py_DECREF(t);
    }
    /* checked after that allocation (a GC pass may have destroyed the loop) */
    if (self->uv == NULL || self->destroying)
        return Py_BuildValue("[s]", "Loop has been destroyed");
    if (loop_check_own_thread(self) < 0)
        return NULL;
    /* collect first (no Python object made inside uv_walk), then build */
    LoopDebugWalk ctx = {0};
    ctx.loop = self;
    uv_walk(self->uv, loop_debug_walk_cb, &ctx);
    if (ctx.failed) {
        loop_debug_walk_free(&ctx);
        return PyErr_NoMemory();
    }
    PyObject *list = PyList_New(0);
    for (Py_ssize_t i = 0; list != NULL && i < ctx.n; i++) {
        HandleSeen *hs = &ctx.hs[i];
        PyObject *owner;
        if (hs->nio >= 0) {
            owner = PyTuple_New(hs->nio);
            for (Py_ssize_t k = 0; owner != NULL && k < hs->nio; k++)
                PyTuple_SET_ITEM(owner, k, Py_NewRef(ctx.ios[hs->io0 + k]));
        }
        else
            owner = Py_NewRef(hs->owner ? hs->owner : Py_None);
        PyObject *st = PyStructSequence_New(gst->HandleStateType);
        PyObject *items[6] = {
            PyLong_FromVoidPtr(hs->h),
            PyBytes_FromString(uv_handle_type_name(hs->type)),
            owner,
            PyBool_FromLong(hs->ref),
            PyBool_FromLong(hs->active),
            PyBool_FromLong(hs->closing),
        };
        int failed = st == NULL;
        for (int k = 0; k < 6; k++) {
            if (items[k] == NULL)
                failed = 1;
            if (st != NULL)
                PyStructSequence_SetItem(st, k, items[k] ? items[k] : Py_NewRef(Py_None));
            else
                Py_XDECREF(items[k]);
        }
        if (failed || PyList_Append(list, st) < 0)
            Py_CLEAR(list);
        Py_XDECREF(st);
    }
    loop_debug_walk_free(&ctx);
    return list;
}

static PyObject *
loop_get_activecnt(LoopObject *self, void *c)
{
    if (loop_check_alive(self) < 0)
        return NULL;
    return PyLong_FromSsize_t(loop_activecnt_value(self));
}

static PyObject *
loop_get_pendingcnt(LoopObject *self, void *c)
{
    if (loop_check_alive(self) < 0)
        return NULL;
    return PyLong_FromSsize_t(loop_pending_count(self));
}

static PyObject *
loop_get_ptr(LoopObject *self, void *c)
{
    return PyLong_FromVoidPtr(self->uv);
}

static PyObject *
loop_get_error_handler(LoopObject *self, void *c)
{
    return Py_NewRef(self->error_handler ? self->error_handler : Py_None);
}

static int
loop_set_error_handler(LoopObject *self, PyObject *value, void *c)
{
    Py_XSETREF(self->error_handler, Py_NewRef(value ? value : Py_None));
    return 0;
}

/* loop.handle_error(context, type, value, tb): dispatch to error_handler */
static PyObject *
loop_handle_error_meth(LoopObject *self, PyObject *args)
{
    PyObject *context, *t, *v, *tb;
    if (!PyArg_ParseTuple(args, "OOOO:handle_error", &context, &t, &v, &tb))
        return NULL;
    int rc;
    if (v == Py_None || !PyExceptionInstance_Check(v)) {
        PyObject *inst = v == Py_None ? PyObject_CallNoArgs(t)
                                      : PyObject_CallOneArg(t, v);
        if (inst == NULL)
            return NULL;
        if (!PyExceptionInstance_Check(inst)) {
            PyErr_Format(PyExc_TypeError, "handle_error: %R is not an exception class", t);
            Py_DECREF(inst);
            return NULL;
        }
        rc = loop_dispatch_error(self, context, inst, NULL);
        Py_DECREF(inst);
    }
    else
        rc = loop_dispatch_error(self, context, v, tb == Py_None ? NULL : tb);
    if (rc < 0)
        return NULL;
    Py_RETURN_NONE;
}


static PyMethodDef loop_methods[] = {
    {"run", (PyCFunction)(void (*)(void))loop_run, METH_VARARGS | METH_KEYWORDS,
     "run(nowait=False, once=False): run until no active watcher or callback is left."},
    {"run_callback", (PyCFunction)(void (*)(void))loop_run_callback, METH_FASTCALL,
     "run_callback(func, *args) -> callback: call func(*args) in the loop, FIFO.\n"
     "Called from another thread while the loop polls, it also wakes the loop."},
    {"now", (PyCFunction)loop_now, METH_NOARGS, "The loop's cached monotonic time, seconds."},
    {"debug", (PyCFunction)loop_debug, METH_NOARGS,
     "debug(): every libuv handle of the loop, as gevent's libuv loop reports "
     "them: a list of HandleState named tuples (handle, type, watcher, ref, "
     "active, closing)."},
    {"update_now", (PyCFunction)loop_update_now, METH_NOARGS, "Refresh the cached time."},
    {"update", (PyCFunction)loop_update_now, METH_NOARGS, "Alias of update_now() (gevent 1.0)."},
    {"break_", (PyCFunction)loop_break, METH_VARARGS, "Make the running run() return."},
    {"ref", (PyCFunction)loop_ref, METH_NOARGS, NULL},
    {"unref", (PyCFunction)loop_unref, METH_NOARGS, NULL},
    {"verify", (PyCFunction)loop_verify, METH_NOARGS, "Does nothing (libev compatibility)."},
    {"fileno", (PyCFunction)loop_fileno, METH_NOARGS, NULL},
    {"_format", (PyCFunction)loop_format, METH_NOARGS, NULL},
    {"destroy", (PyCFunction)loop_destroy, METH_NOARGS,
     "Close every handle and the native loop.  Idempotent."},
    {"handle_error", (PyCFunction)loop_handle_error_meth, METH_VARARGS, NULL},
    {"timer", (PyCFunction)(void (*)(void))timer_new_from_loop, METH_VARARGS | METH_KEYWORDS,
     "timer(after, repeat=0.0, ref=True, priority=None)"},
    {"io", (PyCFunction)(void (*)(void))io_new_from_loop, METH_VARARGS | METH_KEYWORDS,
     "io(fd, events, ref=True, priority=None)"},
    {"signal", (PyCFunction)(void (*)(void))signal_new_from_loop, METH_VARARGS | METH_KEYWORDS,
     "signal(signalnum, ref=True, priority=None)"},
    {"idle", (PyCFunction)(void (*)(void))idle_new_from_loop, METH_VARARGS | METH_KEYWORDS,
     "idle(ref=True, priority=None)"},
    {"prepare", (PyCFunction)(void (*)(void))prepare_new_from_loop, METH_VARARGS | METH_KEYWORDS,
     "prepare(ref=True, priority=None)"},
    {"check", (PyCFunction)(void (*)(void))check_new_from_loop, METH_VARARGS | METH_KEYWORDS,
     "check(ref=True, priority=None)"},
    {"fork", (PyCFunction)(void (*)(void))fork_new_from_loop, METH_VARARGS | METH_KEYWORDS,
     "fork(ref=True, priority=None)"},
    {"async_", (PyCFunction)(void (*)(void))async_new_from_loop, METH_VARARGS | METH_KEYWORDS,
     "async_(ref=True, priority=None)"},
    {"async", (PyCFunction)(void (*)(void))async_new_from_loop, METH_VARARGS | METH_KEYWORDS,
     "Alias of async_ (gevent 1.0)."},
    {"child", (PyCFunction)(void (*)(void))child_new_from_loop, METH_VARARGS | METH_KEYWORDS,
     "child(pid, trace=False, ref=True)"},
    {"stat", (PyCFunction)(void (*)(void))stat_new_from_loop, METH_VARARGS | METH_KEYWORDS,
     "stat(path, interval=0.0, ref=True, priority=None)"},
    {"closing_fd", (PyCFunction)loop_closing_fd, METH_O,
     "closing_fd(fd) -> bool: wake the io watchers of an fd about to be closed."},
    {"run_callback_threadsafe", (PyCFunction)(void (*)(void))loop_run_callback_threadsafe,
     METH_FASTCALL, "run_callback(), callable from any thread; wakes the loop."},
    {"install_sigchld", (PyCFunction)loop_install_sigchld, METH_NOARGS,
     "Make sure child watchers' SIGCHLD handler is installed (gevent calls it before fork)."},
    {"reset_sigchld", (PyCFunction)loop_reset_sigchld, METH_NOARGS,
     "Nothing to undo: the last child watcher restores SIGCHLD's previous action."},
    {"_stall_wait", (PyCFunction)loop_stall_wait, METH_VARARGS,
     "_stall_wait(interval, timeout, ignore=None): the pass number once the loop is held\n"
     "for an interval (sampled without the GIL), or None after timeout.  For the monitor."},
    {"reinit", (PyCFunction)loop_reinit, METH_NOARGS,
     "Prepare the loop for use in a forked child (uv_loop_fork); runs fork watchers."},
    {NULL}
};

static PyGetSetDef loop_getset[] = {
    {"default", (getter)loop_get_default, NULL, NULL},
    {"iteration", (getter)loop_get_iteration, NULL, NULL},
    {"depth", (getter)loop_get_depth, NULL, NULL},
    {"polling", (getter)loop_get_polling, NULL,
     "True while the loop's thread waits for events in the poll (the GIL released)."},
    {"backend", (getter)loop_get_backend, NULL, NULL},
    {"backend_int", (getter)loop_get_backend_int, NULL,
     "The backend as libev numbers it (gevent_c.core.BACKEND_EPOLL)."},
    {"sig_pending", (getter)loop_get_sig_pending, NULL,
     "1 while a signal this loop watches was delivered and not yet taken in."},
    {"activecnt", (getter)loop_get_activecnt, NULL, NULL},
    {"pendingcnt", (getter)loop_get_pendingcnt, NULL, NULL},
    {"ptr", (getter)loop_get_ptr, NULL, NULL},
    {"approx_timer_resolution", (getter)loop_get_approx_timer_resolution, NULL,
     "libuv's timer resolution: delays are rounded up to 1 ms."},
    {"MAXPRI", (getter)loop_get_maxpri, NULL, NULL},
    {"MINPRI", (getter)loop_get_minpri, NULL, NULL},
    {"WatcherType", (getter)loop_get_watcher_type, NULL, "The base class of the watchers."},
    {"error_handler", (getter)loop_get_error_handler, (setter)loop_set_error_handler, NULL},
    {NULL}
};

static PyMemberDef loop_members[] = {
    {"__weaklistoffset__", T_PYSSIZET, offsetof(LoopObject, weakreflist), READONLY},
    {NULL}
};

static PyType_Slot loop_slots[] = {
    {Py_tp_doc, "loop(flags=None, default=None): an event loop on libuv.\n\n"
                "flags selects the backend: None/'default'/'epoll'.  libev's tuning\n"
                "flags (noenv, forkcheck, noinotify, signalfd, nosigmask) are accepted\n"
                "and have no effect under libuv.  default=True (or None) wraps libuv's\n"
                "default loop; there is one Python object per native loop."},
    {Py_tp_new, loop_new},
    {Py_tp_dealloc, loop_dealloc},
    {Py_tp_traverse, loop_traverse},
    {Py_tp_clear, loop_tp_clear},
    {Py_tp_repr, loop_repr},
    {Py_tp_methods, loop_methods},
    {Py_tp_getset, loop_getset},
    {Py_tp_members, loop_members},
    {0, NULL}
};

PyType_Spec loop_spec = {
    .name = "gevent_c.core.loop",
    .basicsize = sizeof(LoopObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE
             | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = loop_slots,
};
