/*
 * threadpool.c -- the C core of gevent_c.threadpool.ThreadPool.  Included
 * by _hub.c.
 *
 * Hand-off without Python-level queues or locks:
 *   hub thread:  spawn() appends a Task to a C queue under a pthread mutex
 *                and signals a condition variable (starting a worker thread
 *                if none is idle, up to maxsize);
 *   worker:      takes the GIL only to run the function, appends the Task to
 *                the done list, and uv_async_send()s the pool's async
 *                watcher if the done list was empty (one wake-up per batch);
 *   hub:         the async watcher's callback drains the whole done list and
 *                sets each task's AsyncResult.
 * The async watcher is active (and so keeps the loop alive) exactly while
 * tasks are outstanding.  Workers only touch the uv_async_t under the mutex
 * and only while `st->async` is set; the pool clears it before the handle
 * can go away (pool freed, loop destroyed).
 */
#include "gevent_c.h"
#include <pthread.h>
#include <time.h>
#include <errno.h>
#include <sched.h>

static int pool_set_async_active(PoolObject *self, int active);
static int pool_notify(PoolObject *self);
static PyObject *pool_drain(PoolObject *self, PyObject *Py_UNUSED(ignored));



void
state_decref(PoolState *st)
{
    pthread_mutex_lock(&st->mu);
    int left = --st->refs;
    pthread_mutex_unlock(&st->mu);
    if (left == 0) {
        pthread_mutex_destroy(&st->mu);
        pthread_cond_destroy(&st->cond);
        free(st);
    }
}

static PoolState *
state_new(double idle_timeout)
{
    PoolState *st = calloc(1, sizeof(*st));
    if (st == NULL)
        return NULL;
    pthread_mutex_init(&st->mu, NULL);
    pthread_cond_init(&st->cond, NULL);
    st->idle_timeout = idle_timeout;
    st->refs = 1;
    return st;
}

static void
task_free(Task *t)
{
    Py_XDECREF(t->func);
    Py_XDECREF(t->args);
    Py_XDECREF(t->kwargs);
    Py_XDECREF(t->result);
    Py_XDECREF(t->expected);
    Py_XDECREF(t->value);
    Py_XDECREF(t->exc_t);
    Py_XDECREF(t->exc_v);
    Py_XDECREF(t->exc_tb);
    PyMem_RawFree(t);
}

/* ---- worker threads ---- */

static void
worker_destroy_own_hub(void)
{
    PyObject *d = PyThreadState_GetDict();
    PyObject *hub = d ? PyDict_GetItemString(d, GEVC_TLS_HUB_KEY) : NULL;
    if (hub != NULL) {
        Py_INCREF(hub);
        PyObject *r = call_method1(hub, "destroy", Py_True);
        Py_XDECREF(r);
        Py_DECREF(hub);
    }
    PyErr_Clear();
}

static void
worker_run_task(Task *t)
{
    PyObject *res = PyObject_Call(t->func, t->args, t->kwargs);
    if (res != NULL)
        t->value = res;
    else {
        t->exc_v = PyErr_GetRaisedException();
        t->exc_t = Py_NewRef((PyObject *)Py_TYPE(t->exc_v));
        t->exc_tb = PyException_GetTraceback(t->exc_v);
    }
    /* the arguments die in the worker, with the GIL; the function stays
     * for the error context */
    Py_CLEAR(t->args);
    Py_CLEAR(t->kwargs);
}

static void *
worker_main(void *arg)
{
    PoolState *st = (PoolState *)arg;
    PyGILState_STATE gs = PyGILState_Ensure();
    unsigned long ident = PyThread_get_thread_ident();
    PyThreadState *ts = PyEval_SaveThread();
    pthread_mutex_lock(&st->mu);
    st->nstarting--;
    for (;;) {
        int timed_out = 0;
        if (st->q_head == NULL && st->nthreads <= st->target) {
            /* A request/response caller (apply) sends the next task a few
             * microseconds after our result: look for it briefly before
             * sleeping, which costs a wake-up on each side. */
            st->nidle++;
            pthread_mutex_unlock(&st->mu);
            uint64_t until = uv_hrtime() + IDLE_SPIN_NS;
            while (__atomic_load_n(&st->q_head, __ATOMIC_ACQUIRE) == NULL
                   && uv_hrtime() < until)
                sched_yield();
            pthread_mutex_lock(&st->mu);
            st->nidle--;
        }
        while (st->q_head == NULL && st->nthreads <= st->target && !timed_out) {
            st->nidle++;
            if (st->idle_timeout > 0) {
                struct timespec ts_abs;
                clock_gettime(CLOCK_REALTIME, &ts_abs);
                double secs = st->idle_timeout;
                ts_abs.tv_sec += (time_t)secs;
                ts_abs.tv_nsec += (long)((secs - (double)(time_t)secs) * 1e9);
                if (ts_abs.tv_nsec >= 1000000000L) {
                    ts_abs.tv_sec++;
                    ts_abs.tv_nsec -= 1000000000L;
                }
                if (pthread_cond_timedwait(&st->cond, &st->mu, &ts_abs) == ETIMEDOUT)
                    timed_out = st->q_head == NULL;
            }
            else
                pthread_cond_wait(&st->cond, &st->mu);
            st->nidle--;
        }
        /* a surplus worker leaves, but the last ones run what is queued
         * first (kill(), size = 0): a task left queued with no worker would
         * count as outstanding forever and keep the loop alive, as gevent's
         * pool does not.  The pool's dealloc empties the queue. */
        if ((st->nthreads > st->target && (st->q_head == NULL || st->target > 0)) || timed_out)
            break;
        Task *t = st->q_head;
        st->q_head = t->next;
        if (st->q_head == NULL)
            st->q_tail = NULL;
        st->qlen--;
        t->next = NULL;
        pthread_mutex_unlock(&st->mu);

        /* The hub thread queued this task holding the GIL and will release
         * it when it blocks to wait for the result.  Taking the GIL before
         * that means sleeping on CPython's GIL condition and being woken
         * again; waiting for the hub to block first saves that wake-up. */
        uint64_t until = uv_hrtime() + GIL_WAIT_NS;
        while (!__atomic_load_n(&st->hub_blocked, __ATOMIC_ACQUIRE) && uv_hrtime() < until)
            sched_yield();  /* the hub's thread may share our CPU */
        PyEval_RestoreThread(ts);
        t->worker = ident;
        worker_run_task(t);
        ts = PyEval_SaveThread();

        pthread_mutex_lock(&st->mu);
        if (st->async == NULL) {
            /* nobody will collect it: the pool or its loop is gone */
            pthread_mutex_unlock(&st->mu);
            PyEval_RestoreThread(ts);
            task_free(t);
            ts = PyEval_SaveThread();
            pthread_mutex_lock(&st->mu);
            continue;
        }
        int first = st->done_head == NULL;
        if (st->done_tail)
            st->done_tail->next = t;
        else
            st->done_head = t;
        st->done_tail = t;
        if (first)
            uv_async_send(st->async);
    }
    st->nthreads--;
    pthread_mutex_unlock(&st->mu);
    PyEval_RestoreThread(ts);
    worker_destroy_own_hub();
    PyGILState_Release(gs);
    state_decref(st);
    return NULL;
}

/* Called with the mutex held. */
static int
pool_start_worker_locked(PoolState *st)
{
    pthread_attr_t attr;
    pthread_t tid;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    st->refs++;
    st->nthreads++;
    st->nstarting++;
    int err = pthread_create(&tid, &attr, worker_main, st);
    pthread_attr_destroy(&attr);
    if (err != 0) {
        st->refs--;
        st->nthreads--;
        st->nstarting--;
        errno = err;
        return -1;
    }
    return 0;
}

/* Start workers while queued tasks outnumber idle workers (up to the
 * target).  Mutex held.  -1 with errno set if a thread cannot start. */
static int
pool_grow_locked(PoolState *st)
{
    while (st->qlen > st->nidle + st->nstarting && st->nthreads < st->target)
        if (pool_start_worker_locked(st) < 0)
            return st->nthreads > 0 ? 0 : -1;
    return 0;
}

/* ---- the hub side ---- */

static int
pool_check_thread(PoolObject *self)
{
    if (PyThread_get_thread_ident() != self->hub_ident) {
        PyErr_SetString(self->gst->InvalidThreadUseError,
                        "a ThreadPool may only be used from its hub's thread");
        return -1;
    }
    return 0;
}


/* In a forked child the workers do not exist: start afresh. */
int
pool_after_fork(PoolObject *self)
{
    PoolState *old = self->st;
    PoolState *st = state_new(old->idle_timeout);
    if (st == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    st->target = old->target;
    st->async = self->async_w ? (uv_async_t *)((WatcherObject *)self->async_w)->handle : NULL;
    /* the old state's locks may be held by threads that no longer exist:
     * leave it (and what it holds) alone */
    self->st = st;
    self->outstanding = 0;
    self->fork_gen = fork_generation;
    if (pool_set_async_active(self, 0) < 0)
        return -1;
    /* the parent's in-flight tasks will never finish here: wake join()ers
     * and greenlets waiting for a slot */
    return pool_notify(self);
}

/* Every entry point that touches the pool's state: not before __init__
 * succeeded, and in a forked child never the parent's state (one of its
 * workers, which do not exist here, may have held its mutex at fork()). */
static PoolState *
pool_ready(PoolObject *self)
{
    if (self->st == NULL) {
        PyErr_Format(PyExc_RuntimeError, "%.200s.__init__() was not called or failed",
                     Py_TYPE(self)->tp_name);
        return NULL;
    }
    if (self->fork_gen != fork_generation && pool_after_fork(self) < 0)
        return NULL;
    return self->st;
}

/* _on_fork() (gevent_c.hub.reinit() calls it): only in a process forked
 * since the pool last started afresh.  In the process whose workers exist
 * it must do nothing: abandoning a state that live workers use would leave
 * them posting to an async handle the pool no longer clears (F7). */
static PyObject *
pool_on_fork(PoolObject *self, PyObject *Py_UNUSED(ignored))
{
    if (pool_ready(self) == NULL)
        return NULL;
    Py_RETURN_NONE;
}


static int
pool_set_async_active(PoolObject *self, int active)
{
    WatcherObject *w = (WatcherObject *)self->async_w;
    if (w == NULL)
        return 0;
    if (active && !w->active) {
        PyObject *cb = PyObject_GetAttrString((PyObject *)self, "_drain");
        if (cb == NULL)
            return -1;
        int rc = watcher_start_impl(w, cb, NULL);
        Py_DECREF(cb);
        return rc;
    }
    if (!active && w->active)
        watcher_stop_impl(w);
    return 0;
}

static int
wake_all(PyObject *list, PyObject *loop, Py_ssize_t max)
{
    while (max-- > 0 && PyList_GET_SIZE(list) > 0) {
        PyObject *cb = Py_NewRef(PyList_GET_ITEM(list, 0));
        if (PySequence_DelItem(list, 0) < 0) {
            Py_DECREF(cb);
            return -1;
        }
        PyObject *r = call_method1(loop, "run_callback", cb);
        Py_DECREF(cb);
        if (r == NULL)
            return -1;
        Py_DECREF(r);
    }
    return 0;
}

static int
pool_notify(PoolObject *self)
{
    PyObject *loop = (PyObject *)self->loop;
    if (loop == NULL)
        return 0;
    Py_ssize_t free_slots = self->maxsize - self->outstanding;
    if (free_slots > 0 && PyList_GET_SIZE(self->slot_waiters) > 0
            && wake_all(self->slot_waiters, loop, free_slots) < 0)
        return -1;
    if (self->outstanding == 0 && PyList_GET_SIZE(self->join_waiters) > 0
            && wake_all(self->join_waiters, loop, PY_SSIZE_T_MAX) < 0)
        return -1;
    return 0;
}

/* Deliver one finished task's result in the hub. */
static int
pool_deliver(PoolObject *self, Task *t)
{
    PyObject *r;
    if (t->exc_t == NULL) {
        r = call_method1(t->result, "set", t->value ? t->value : Py_None);
        Py_XDECREF(r);
        return r ? 0 : -1;
    }
    PyObject *v = t->exc_v ? t->exc_v : Py_None;
    PyObject *tb = t->exc_tb ? t->exc_tb : Py_None;
    int expected = t->expected ? PyErr_GivenExceptionMatches(t->exc_t, t->expected) : 0;
    if (!expected) {
        /* the context (worker, func), as gevent's; the pool's
         * _error_context(ident, func) (gevent_c/threadpool.py) names the
         * worker as gevent does, else it is the thread id */
        PyObject *ctx = NULL;
        PyObject *hook = PyObject_GetAttrString((PyObject *)self, "_error_context");
        if (hook != NULL) {
            ctx = PyObject_CallFunction(hook, "kO", t->worker, t->func);
            Py_DECREF(hook);
        }
        else if (PyErr_ExceptionMatches(PyExc_AttributeError)) {
            PyErr_Clear();
            PyObject *worker = PyLong_FromUnsignedLong(t->worker);
            ctx = worker ? PyTuple_Pack(2, worker, t->func) : NULL;
            Py_XDECREF(worker);
        }
        if (ctx == NULL)
            return -1;
        r = PyObject_CallMethod(self->hub, "handle_error", "OOOO", ctx, t->exc_t, v, tb);
        Py_DECREF(ctx);
        if (r == NULL)
            return -1;
        Py_DECREF(r);
    }
    PyObject *info = PyTuple_Pack(3, t->exc_t, v, tb);
    r = info ? PyObject_CallMethod(t->result, "set_exception", "OO", v, info) : NULL;
    Py_XDECREF(info);
    Py_XDECREF(r);
    return r ? 0 : -1;
}

/* The async watcher's callback: drain every finished task. */
static PyObject *
pool_drain(PoolObject *self, PyObject *Py_UNUSED(ignored))
{
    /* workers never wait for the GIL while holding the mutex, so taking it
     * with the GIL held cannot deadlock */
    PoolState *st = pool_ready(self);
    if (st == NULL)
        return NULL;
    pthread_mutex_lock(&st->mu);
    Task *t = st->done_head;
    st->done_head = st->done_tail = NULL;
    pthread_mutex_unlock(&st->mu);
    int rc = 0;
    while (t) {
        Task *next = t->next;
        self->outstanding--;
        if (rc == 0 && pool_deliver(self, t) < 0)
            rc = -1;  /* keep draining; report the first error */
        task_free(t);
        t = next;
    }
    if (self->outstanding <= 0) {
        self->outstanding = 0;
        if (pool_set_async_active(self, 0) < 0)
            rc = -1;
    }
    if (pool_notify(self) < 0)
        rc = -1;
    if (rc < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
get_result_class(PoolObject *self)
{
    if (self->result_class == NULL) {
        PyObject *mod = PyImport_ImportModule("gevent_c.event");
        if (mod == NULL)
            return NULL;
        self->result_class = PyObject_GetAttrString(mod, "AsyncResult");
        Py_DECREF(mod);
    }
    return self->result_class;
}

/* Queue func(*args, **kwargs); the pool must have a free slot. */
static PyObject *
pool_submit(PoolObject *self, PyObject *func, PyObject *args, PyObject *kwargs,
            PyObject *expected)
{
    if (pool_ready(self) == NULL)
        return NULL;
    PyObject *cls = get_result_class(self);
    if (cls == NULL)
        return NULL;
    PyObject *result = PyObject_CallNoArgs(cls);
    if (result == NULL)
        return NULL;
    Task *t = PyMem_RawCalloc(1, sizeof(Task));
    if (t == NULL) {
        Py_DECREF(result);
        return PyErr_NoMemory();
    }
    t->func = Py_NewRef(func);
    t->args = Py_NewRef(args);
    t->kwargs = Py_XNewRef(kwargs);
    t->result = Py_NewRef(result);
    t->expected = Py_XNewRef(expected);
    if (pool_set_async_active(self, 1) < 0) {
        task_free(t);
        Py_DECREF(result);
        return NULL;
    }
    PoolState *st = self->st;
    int err = 0;
    pthread_mutex_lock(&st->mu);
    if (st->target < self->maxsize)
        st->target = (int)self->maxsize;
    if (st->q_tail)
        st->q_tail->next = t;
    else
        st->q_head = t;
    st->q_tail = t;
    st->qlen++;
    if (pool_grow_locked(st) < 0) {
        /* no worker exists and none can start: the task would never run,
         * yet count as outstanding and keep the loop alive.  Nobody can
         * have taken it (no worker): take it back out of the queue. */
        err = errno;
        Task **pp = &st->q_head, *prev = NULL;
        while (*pp && *pp != t) {
            prev = *pp;
            pp = &(*pp)->next;
        }
        if (*pp == t) {
            *pp = t->next;
            if (st->q_tail == t)
                st->q_tail = prev;
            st->qlen--;
            t->next = NULL;
        }
        else
            t = NULL;   /* cannot happen; never free a task a worker holds */
    }
    if (st->nidle > 0)
        pthread_cond_signal(&st->cond);
    pthread_mutex_unlock(&st->mu);
    if (err) {
        if (t != NULL)
            task_free(t);
        else
            self->outstanding++;
        if (self->outstanding == 0)
            (void)pool_set_async_active(self, 0);   /* stopping cannot fail */
        errno = err;
        PyErr_SetFromErrno(PyExc_OSError);
        Py_DECREF(result);
        return NULL;
    }
    self->outstanding++;
    return result;
}

/* _submit(func, args, kwargs, expected=None) -> AsyncResult, or None if
 * the pool is full (the Python side then waits for a slot). */
static PyObject *
pool_submit_meth(PoolObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 3 || nargs > 4) {
        PyErr_SetString(PyExc_TypeError, "_submit(func, args, kwargs[, expected])");
        return NULL;
    }
    if (pool_ready(self) == NULL || pool_check_thread(self) < 0)
        return NULL;
    if (!PyCallable_Check(args[0])) {
        PyErr_Format(PyExc_TypeError, "Expected callable, not %R", args[0]);
        return NULL;
    }
    if (!PyTuple_Check(args[1]) || (args[2] != Py_None && !PyDict_Check(args[2]))) {
        PyErr_SetString(PyExc_TypeError, "_submit: args must be a tuple, kwargs a dict or None");
        return NULL;
    }
    if (self->outstanding >= self->maxsize)
        Py_RETURN_NONE;
    return pool_submit(self, args[0], args[1], args[2] == Py_None ? NULL : args[2],
                       nargs > 3 && args[3] != Py_None ? args[3] : NULL);
}

/* spawn(func, *args, **kwargs) fast path: a free slot, our own thread. */
static PyObject *
pool_spawn(PoolObject *self, PyObject *args, PyObject *kwargs)
{
    Py_ssize_t n = PyTuple_GET_SIZE(args);
    if (n < 1) {
        PyErr_SetString(PyExc_TypeError, "spawn() missing required argument 'func'");
        return NULL;
    }
    if (pool_ready(self) == NULL || pool_check_thread(self) < 0)
        return NULL;
    PyObject *func = PyTuple_GET_ITEM(args, 0);
    if (!PyCallable_Check(func)) {
        PyErr_Format(PyExc_TypeError, "Expected callable, not %R", func);
        return NULL;
    }
    PyObject *rest = PyTuple_GetSlice(args, 1, n);
    if (rest == NULL)
        return NULL;
    PyObject *kw = (kwargs && PyDict_GET_SIZE(kwargs)) ? PyDict_Copy(kwargs) : NULL;
    PyObject *res = NULL;
    if (kwargs && PyDict_GET_SIZE(kwargs) && kw == NULL)
        goto done;
    while (self->outstanding >= self->maxsize) {
        PyObject *r = PyObject_CallMethod((PyObject *)self, "_wait_slot", NULL);
        if (r == NULL)
            goto done;
        Py_DECREF(r);
    }
    res = pool_submit(self, func, rest, kw, NULL);
done:
    Py_DECREF(rest);
    Py_XDECREF(kw);
    return res;
}

/* ---- construction ---- */

void
pool_detach_async(PoolObject *self)
{
    if (self->st == NULL)
        return;
    if (self->fork_gen != fork_generation) {
        /* a forked child: no thread uses the parent's state here, and its
         * mutex may be held for good */
        self->st->async = NULL;
        return;
    }
    pthread_mutex_lock(&self->st->mu);
    self->st->async = NULL;
    pthread_mutex_unlock(&self->st->mu);
}

/* The largest maxsize a pool accepts: it bounds the worker threads one pool
 * may start (far more than a process can run usefully; the workers' count
 * is an int). */
#define POOL_MAXSIZE_LIMIT 100000

/* maxsize from Python (constructor or setter): an int in
 * [0, POOL_MAXSIZE_LIMIT], else TypeError/ValueError. */
static int
pool_parse_maxsize(PyObject *value, Py_ssize_t *out)
{
    if (value == NULL || !PyLong_Check(value)) {
        PyErr_Format(PyExc_TypeError, "maxsize must be integer: %R", value ? value : Py_None);
        return -1;
    }
    Py_ssize_t n = PyLong_AsSsize_t(value);
    if (n == -1 && PyErr_Occurred())
        return -1;
    if (n < 0) {
        PyErr_Format(PyExc_ValueError, "maxsize must not be negative: %R", value);
        return -1;
    }
    if (n > POOL_MAXSIZE_LIMIT) {
        PyErr_Format(PyExc_ValueError, "maxsize is too large: %R", value);
        return -1;
    }
    *out = n;
    return 0;
}

static int
pool_init(PoolObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"maxsize", "hub", "idle_task_timeout", NULL};
    PyObject *maxsize_o, *hub = Py_None;
    double idle = -1;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|Od:ThreadPool", kwlist,
                                     &maxsize_o, &hub, &idle))
        return -1;
    Py_ssize_t maxsize;
    if (pool_parse_maxsize(maxsize_o, &maxsize) < 0)
        return -1;
    if (self->st != NULL || self->hub != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "ThreadPool.__init__ called twice");
        return -1;
    }
    /* everything is built in locals and stored only once all succeeded:
     * a failed __init__ leaves the pool uninitialised (every method then
     * raises), never half made */
    PyObject *async_w = NULL, *slot_waiters = NULL, *join_waiters = NULL;
    PoolState *st = NULL;
    hub = hub == Py_None ? get_hub_impl(self->gst) : Py_NewRef(hub);
    if (hub == NULL)
        return -1;
    PyObject *loop = hub_loop_of(self->gst, hub);
    if (loop == NULL)
        goto fail;
    if (!IS_LOOP(self->gst, loop)) {
        Py_DECREF(loop);
        PyErr_SetString(PyExc_TypeError, "the hub's loop is not a gevent_c.core.loop");
        goto fail;
    }
    async_w = PyObject_CallMethod(loop, "async_", NULL);
    Py_DECREF(loop);
    if (async_w == NULL)
        goto fail;
    slot_waiters = PyList_New(0);
    join_waiters = PyList_New(0);
    if (slot_waiters == NULL || join_waiters == NULL)
        goto fail;
    st = state_new(idle);
    if (st == NULL) {
        PyErr_NoMemory();
        goto fail;
    }
    LoopObject *lp = ((WatcherObject *)async_w)->loop;
    if (loop_register_pool(lp, self) < 0)
        goto fail;
    st->async = (uv_async_t *)((WatcherObject *)async_w)->handle;
    self->hub = hub;
    self->async_w = async_w;
    self->loop = lp;
    self->slot_waiters = slot_waiters;
    self->join_waiters = join_waiters;
    self->st = st;
    self->maxsize = maxsize;
    self->hub_ident = PyThread_get_thread_ident();
    self->fork_gen = fork_generation;
    return 0;
fail:
    if (st)
        state_decref(st);
    if (async_w)
        watcher_close_impl((WatcherObject *)async_w);
    Py_XDECREF(async_w);
    Py_XDECREF(slot_waiters);
    Py_XDECREF(join_waiters);
    Py_DECREF(hub);
    return -1;
}

static PyObject *
pool_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    gevc_state *gst = gevc_state_by_type(type);
    if (gst == NULL)
        return NULL;
    PoolObject *self = (PoolObject *)type->tp_alloc(type, 0);
    if (self != NULL)
        self->gst = gst;
    return (PyObject *)self;
}

static int
pool_traverse(PoolObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->hub);
    Py_VISIT(self->async_w);
    Py_VISIT(self->result_class);
    Py_VISIT(self->slot_waiters);
    Py_VISIT(self->join_waiters);
    Py_VISIT(self->dict);
    return 0;
}

static int
pool_tp_clear(PoolObject *self)
{
    pool_detach_async(self);
    if (self->loop)
        loop_unregister_pool(self->loop, self);
    self->loop = NULL;
    if (self->async_w)
        watcher_close_impl((WatcherObject *)self->async_w);
    Py_CLEAR(self->async_w);
    Py_CLEAR(self->hub);
    Py_CLEAR(self->result_class);
    Py_CLEAR(self->slot_waiters);
    Py_CLEAR(self->join_waiters);
    Py_CLEAR(self->dict);
    return 0;
}

static void
pool_dealloc(PoolObject *self)
{
    PyObject_GC_UnTrack(self);
    if (self->weakreflist)
        PyObject_ClearWeakRefs((PyObject *)self);
    pool_tp_clear(self);
    if (self->st && self->fork_gen != fork_generation)
        self->st = NULL;  /* the parent's: leave it alone (see pool_detach_async) */
    if (self->st) {
        /* idle workers exit; busy ones drop their result.  Queued tasks
         * will never run, and finished ones never be delivered: free them
         * here, with the GIL (the last worker frees only the state). */
        pthread_mutex_lock(&self->st->mu);
        self->st->target = 0;
        Task *queued = self->st->q_head, *done = self->st->done_head;
        self->st->q_head = self->st->q_tail = NULL;
        self->st->qlen = 0;
        self->st->done_head = self->st->done_tail = NULL;
        pthread_cond_broadcast(&self->st->cond);
        pthread_mutex_unlock(&self->st->mu);
        for (Task *lists[2] = {queued, done}, **l = lists; l < lists + 2; l++)
            for (Task *t = *l; t;) {
                Task *next = t->next;
                task_free(t);
                t = next;
            }
        state_decref(self->st);
        self->st = NULL;
    }
    PyTypeObject *tp = Py_TYPE(self);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

/* ---- size, maxsize, kill, adjust ---- */

static int
pool_resize(PoolObject *self, int n)
{
    PoolState *st = pool_ready(self);
    if (st == NULL)
        return -1;
    int err = 0;
    pthread_mutex_lock(&st->mu);
    st->target = n;
    while (st->nthreads < n && err == 0)
        if (pool_start_worker_locked(st) < 0)
            err = errno;
    pthread_cond_broadcast(&st->cond);  /* surplus idle workers exit */
    pthread_mutex_unlock(&st->mu);
    if (err) {
        errno = err;
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    return 0;
}

static PyObject *
pool_get_size(PoolObject *self, void *c)
{
    PoolState *st = pool_ready(self);
    if (st == NULL)
        return NULL;
    pthread_mutex_lock(&st->mu);
    int n = st->nthreads;
    int target = st->target;
    pthread_mutex_unlock(&st->mu);
    /* workers asked to exit are on their way out */
    return PyLong_FromLong(n < target ? n : target);
}

/* Workers created but not yet past their start-up (which allocates their
 * thread state without the GIL): tests fork only when this is 0. */
static PyObject *
pool_get_starting(PoolObject *self, void *c)
{
    PoolState *st = pool_ready(self);
    if (st == NULL)
        return NULL;
    pthread_mutex_lock(&st->mu);
    int n = st->nstarting;
    pthread_mutex_unlock(&st->mu);
    return PyLong_FromLong(n);
}

static int
pool_set_size(PoolObject *self, PyObject *value, void *c)
{
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete size");
        return -1;
    }
    if (pool_ready(self) == NULL || pool_check_thread(self) < 0)
        return -1;
    Py_ssize_t n = PyLong_AsSsize_t(value);
    if (n == -1 && PyErr_Occurred())
        return -1;
    if (n < 0) {
        PyErr_Format(PyExc_ValueError, "Size of the pool cannot be negative: %R", value);
        return -1;
    }
    if (n > self->maxsize) {
        PyErr_Format(PyExc_ValueError, "Size of the pool cannot be bigger than maxsize: %zd > %zd",
                     n, self->maxsize);
        return -1;
    }
    return pool_resize(self, (int)n);
}

static PyObject *
pool_get_maxsize(PoolObject *self, void *c)
{
    return PyLong_FromSsize_t(self->maxsize);
}

static int
pool_set_maxsize(PoolObject *self, PyObject *value, void *c)
{
    Py_ssize_t n;
    if (pool_parse_maxsize(value, &n) < 0)
        return -1;
    PoolState *st = pool_ready(self);
    if (st == NULL || pool_check_thread(self) < 0)
        return -1;
    self->maxsize = n;
    pthread_mutex_lock(&st->mu);
    if (st->target > n)
        st->target = (int)n;
    pthread_cond_broadcast(&st->cond);
    pthread_mutex_unlock(&st->mu);
    return pool_notify(self);
}

static PyObject *
pool_kill(PoolObject *self, PyObject *Py_UNUSED(ignored))
{
    if (pool_ready(self) == NULL || pool_check_thread(self) < 0 || pool_resize(self, 0) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
pool_adjust(PoolObject *self, PyObject *Py_UNUSED(ignored))
{
    PoolState *st = pool_ready(self);
    if (st == NULL || pool_check_thread(self) < 0)
        return NULL;
    int err = 0;
    pthread_mutex_lock(&st->mu);
    st->target = (int)self->maxsize;
    if (pool_grow_locked(st) < 0)
        err = errno;
    pthread_cond_broadcast(&st->cond);
    pthread_mutex_unlock(&st->mu);
    if (err) {
        errno = err;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    Py_RETURN_NONE;
}

static Py_ssize_t
pool_len(PoolObject *self)
{
    return self->outstanding;
}

static PyObject *
pool_get_hub(PoolObject *self, void *c)
{
    return Py_NewRef(self->hub ? self->hub : Py_None);
}

static PyObject *
pool_get_hub_ident(PoolObject *self, void *c)
{
    if (pool_ready(self) == NULL)
        return NULL;
    return PyLong_FromUnsignedLong(self->hub_ident);
}

static PyMethodDef pool_methods[] = {
    {"spawn", (PyCFunction)(void (*)(void))pool_spawn, METH_VARARGS | METH_KEYWORDS,
     "spawn(func, *args, **kwargs) -> AsyncResult: run func in a worker thread.  "
     "Blocks the calling greenlet while maxsize tasks are outstanding."},
    {"_submit", (PyCFunction)(void (*)(void))pool_submit_meth, METH_FASTCALL, NULL},
    {"_drain", (PyCFunction)pool_drain, METH_NOARGS, NULL},
    {"_on_fork", (PyCFunction)pool_on_fork, METH_NOARGS,
     "In a forked child: forget the parent's workers and queue."},
    {"kill", (PyCFunction)pool_kill, METH_NOARGS,
     "Set size to 0: workers exit after their current task.  The pool stays usable."},
    {"adjust", (PyCFunction)pool_adjust, METH_NOARGS,
     "Start workers if tasks outnumber them (up to maxsize)."},
    {NULL}
};

static PyMemberDef pool_members[] = {
    {"_slot_waiters", T_OBJECT, offsetof(PoolObject, slot_waiters), READONLY, NULL},
    {"_join_waiters", T_OBJECT, offsetof(PoolObject, join_waiters), READONLY, NULL},
    {"__dictoffset__", T_PYSSIZET, offsetof(PoolObject, dict), READONLY},
    {"__weaklistoffset__", T_PYSSIZET, offsetof(PoolObject, weakreflist), READONLY},
    {NULL}
};

static PyGetSetDef pool_getset[] = {
    {"size", (getter)pool_get_size, (setter)pool_set_size, "Running worker threads."},
    {"maxsize", (getter)pool_get_maxsize, (setter)pool_set_maxsize, NULL},
    {"hub", (getter)pool_get_hub, NULL, NULL},
    {"_hub_thread_ident", (getter)pool_get_hub_ident, NULL, NULL},
    {"_starting", (getter)pool_get_starting, NULL,
     "Workers created but not yet started (tests fork only when it is 0)."},
    {NULL}
};

static PyType_Slot pool_slots[] = {
    {Py_tp_doc, "The C core of gevent_c.threadpool.ThreadPool."},
    {Py_tp_new, pool_new},
    {Py_tp_init, pool_init},
    {Py_tp_dealloc, pool_dealloc},
    {Py_tp_traverse, pool_traverse},
    {Py_tp_clear, pool_tp_clear},
    {Py_tp_methods, pool_methods},
    {Py_tp_members, pool_members},
    {Py_tp_getset, pool_getset},
    {Py_sq_length, pool_len},
    {0, NULL}
};

PyType_Spec pool_spec = {
    .name = "gevent_c._hub.ThreadPoolBase",
    .basicsize = sizeof(PoolObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE
             | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = pool_slots,
};
