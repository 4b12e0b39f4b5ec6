/*
 * signal.c -- gevent_c.core.signal and gevent_c.core.child.  Included by
 * _hub.c.
 *
 * libuv's uv_signal replaces the process-wide disposition and resets it to
 * SIG_DFL when its last handle stops, discarding Python's handler.  So
 * signal watchers use their own small mechanism instead:
 *   - the first active watcher for a signal installs a C handler with
 *     sigaction(), saving the previous action; the last one to stop
 *     restores it exactly;
 *   - the handler counts the delivery, chains to the previous handler (so
 *     Python's own handler keeps working), and wakes every loop that has
 *     signal watchers with uv_async_send (async-signal-safe);
 *   - each loop, on wake-up, records the watchers whose signal count moved.
 * child watchers ride on the same mechanism with SIGCHLD and reap with
 * waitpid(WNOHANG).
 */
#include "gevent_c.h"
#include <signal.h>
#include <errno.h>
#include <sys/wait.h>
#include <sched.h>


#define MAX_SIG_LOOPS 64

static volatile unsigned long sig_counts[NSIG];
static int sig_users[NSIG];                   /* active watchers, all loops */
/* The action each installed handler replaced, double-buffered: a handler
 * running on another thread reads the published one (sig_prev) while a
 * new installation writes the other slot, never a half-written struct. */
static struct sigaction sig_saved[2][NSIG];
static struct sigaction *sig_prev[NSIG];
static uv_async_t *sig_loops[MAX_SIG_LOOPS];
/* handlers between reading sig_loops and their last uv_async_send: a loop
 * clearing its slot waits for 0 before its async handle may be closed */
static int sig_in_flight;

/* Runs with every signal blocked (sa_mask is full), so handlers never nest
 * on the alternate stack, whatever arrives.  Async-signal-safe only:
 * atomics, uv_async_send (a write(2) on the loop's eventfd), and the
 * previous handler, which was installed to run in a signal handler. */
static void
gevc_signal_handler(int signum, siginfo_t *info, void *ctx)
{
    int saved_errno = errno;
    __atomic_add_fetch(&sig_counts[signum], 1, __ATOMIC_SEQ_CST);
    __atomic_add_fetch(&sig_in_flight, 1, __ATOMIC_SEQ_CST);
    for (int i = 0; i < MAX_SIG_LOOPS; i++) {
        uv_async_t *a = __atomic_load_n(&sig_loops[i], __ATOMIC_SEQ_CST);
        if (a != NULL)
            uv_async_send(a);
    }
    __atomic_sub_fetch(&sig_in_flight, 1, __ATOMIC_SEQ_CST);
    /* chain to the previous action, as CPython's handler would have run:
     * a Python-level handler keeps working.  SIG_DFL and SIG_IGN are not
     * functions (a watched signal does not terminate, as in libev). */
    const struct sigaction *old = __atomic_load_n(&sig_prev[signum], __ATOMIC_SEQ_CST);
    if (old != NULL) {
        if (old->sa_flags & SA_SIGINFO) {
            if (old->sa_sigaction && old->sa_sigaction != gevc_signal_handler)
                old->sa_sigaction(signum, info, ctx);
        }
        else if (old->sa_handler != SIG_DFL && old->sa_handler != SIG_IGN
                 && old->sa_handler != NULL)
            old->sa_handler(signum);
    }
    errno = saved_errno;
}

static int
is_our_action(const struct sigaction *sa)
{
    return (sa->sa_flags & SA_SIGINFO) && sa->sa_sigaction == gevc_signal_handler;
}

/* Install our handler for signum, saving the action it replaces (unless
 * it is ours already: chaining to ourselves would recurse). */
static int
sig_install(int signum)
{
    struct sigaction cur, sa;
    if (sigaction(signum, NULL, &cur) < 0)
        return -1;
    if (is_our_action(&cur))
        return 0;
    struct sigaction *slot = &sig_saved[sig_prev[signum] == &sig_saved[0][signum]][signum];
    *slot = cur;
    __atomic_store_n(&sig_prev[signum], slot, __ATOMIC_SEQ_CST);
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = gevc_signal_handler;
    sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK;
    sigfillset(&sa.sa_mask);
    return sigaction(signum, &sa, NULL);
}

static int
sig_acquire(int signum)
{
    if (sig_users[signum]++ > 0)
        return 0;
    if (sig_install(signum) < 0) {
        sig_users[signum]--;
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    return 0;
}

static void
sig_release(int signum)
{
    if (--sig_users[signum] > 0)
        return;
    sig_users[signum] = 0;
    /* give the disposition back only if ours is still installed: whoever
     * replaced it since (signal.signal()) keeps theirs */
    struct sigaction cur;
    if (sig_prev[signum] != NULL && sigaction(signum, NULL, &cur) == 0 && is_our_action(&cur))
        sigaction(signum, sig_prev[signum], NULL);
}

/* The loop's wake-up async: drains signal deliveries. */

static int
loop_register_signals(LoopObject *loop)
{
    if (loop->sig_slot >= 0)
        return 0;
    for (int i = 0; i < MAX_SIG_LOOPS; i++)
        if (sig_loops[i] == NULL) {
            __atomic_store_n(&sig_loops[i], loop->wake_async, __ATOMIC_SEQ_CST);
            loop->sig_slot = i;
            return 0;
        }
    PyErr_SetString(PyExc_RuntimeError, "too many loops with signal watchers");
    return -1;
}

/* After a slot is cleared, a handler on another thread may still hold the
 * async handle it read from it: wait until none does, so the caller may
 * close (free) the handle.  A handler holds it for a few uv_async_send
 * calls (microseconds); the wait is bounded (1 s) in case a thread was
 * stopped inside one (a debugger): then the loop keeps its handle and its
 * native loop for good (uv_pinned) rather than free what may be in use. */
static void
loop_unregister_signals(LoopObject *loop)
{
    if (loop->sig_slot >= 0 && loop->signals.n == 0 && loop->children.n == 0) {
        __atomic_store_n(&sig_loops[loop->sig_slot], NULL, __ATOMIC_SEQ_CST);
        loop->sig_slot = -1;
        uint64_t deadline = 0;
        while (__atomic_load_n(&sig_in_flight, __ATOMIC_SEQ_CST) != 0) {
            uint64_t now = uv_hrtime();
            if (deadline == 0)
                deadline = now + 1000000000ULL;
            else if (now > deadline) {
                loop->uv_pinned = 1;
                break;
            }
            sched_yield();
        }
    }
}

/* SIGCHLD deliveries already scanned (sig_pending reads it too) */
static unsigned long chld_seen = 0;

/* Called on the loop thread after a wake-up: record moved signals and
 * reap children. */
static void
loop_scan_signals(LoopObject *loop)
{
    for (Py_ssize_t i = 0; i < loop->signals.n; i++) {
        SignalObject *s = (SignalObject *)loop->signals.items[i];
        unsigned long c = __atomic_load_n(&sig_counts[s->signum], __ATOMIC_SEQ_CST);
        if (c != s->seen) {
            s->seen = c;
            loop_record((WatcherObject *)s);
        }
    }
    if (loop->children.n == 0)
        return;
    unsigned long c = __atomic_load_n(&sig_counts[SIGCHLD], __ATOMIC_SEQ_CST);
    if (c == chld_seen && !loop->check_children)
        return;
    chld_seen = c;
    loop->check_children = 0;
    /* Reap every child that changed state (as libev does: code calling
     * os.waitpid itself races with child watchers) and report it to every
     * watcher of that pid and every pid-0 watcher; stops and continues only
     * to watchers with trace. */
    int any_trace = 0;
    for (Py_ssize_t i = 0; i < loop->children.n; i++)
        any_trace |= ((ChildObject *)loop->children.items[i])->trace;
    for (;;) {
        int status = 0;
        pid_t r = waitpid(-1, &status, WNOHANG | (any_trace ? (WUNTRACED | WCONTINUED) : 0));
        if (r <= 0)
            break;
        int traced_only = WIFSTOPPED(status) || WIFCONTINUED(status);
        for (Py_ssize_t i = 0; i < loop->children.n; i++) {
            ChildObject *ch = (ChildObject *)loop->children.items[i];
            if ((ch->pid == r || ch->pid == 0) && (ch->trace || !traced_only)) {
                ch->rpid = r;
                ch->rstatus = status;
                loop_record((WatcherObject *)ch);
            }
        }
    }
}

/* loop.install_sigchld(): gevent calls it before forking a subprocess.
 * Child watchers install their SIGCHLD handler when started; this puts it
 * back if something replaced it meanwhile. */
static PyObject *
loop_install_sigchld(LoopObject *loop, PyObject *Py_UNUSED(ignored))
{
    if (sig_users[SIGCHLD] > 0)
        sig_install(SIGCHLD);  /* no-op while ours is installed */
    Py_RETURN_NONE;
}

/* loop.reset_sigchld(): nothing to undo; the last child watcher to stop
 * restores the previous SIGCHLD action. */
static PyObject *
loop_reset_sigchld(LoopObject *loop, PyObject *Py_UNUSED(ignored))
{
    Py_RETURN_NONE;
}

/* Start delivering signum to w through `list` (the loop's signal or child
 * watchers).  1 if it already was, 0 if it is now, -1 on error. */
static int
sig_list_add(WatcherList *list, WatcherObject *w, int signum)
{
    if (wlist_contains(list, w))
        return 1;
    if (loop_register_signals(w->loop) < 0 || sig_acquire(signum) < 0)
        return -1;
    if (wlist_add(list, w) < 0) {
        sig_release(signum);
        return -1;
    }
    return 0;
}

static void
sig_list_remove(WatcherList *list, WatcherObject *w, int signum)
{
    if (!wlist_contains(list, w))
        return;
    wlist_remove(list, w);
    sig_release(signum);
    loop_unregister_signals(w->loop);
}

/* ---- signal ---- */

static int
signal_native_start(WatcherObject *w)
{
    SignalObject *s = (SignalObject *)w;
    int rc = sig_list_add(&w->loop->signals, w, s->signum);
    if (rc == 0)
        s->seen = __atomic_load_n(&sig_counts[s->signum], __ATOMIC_SEQ_CST);
    return rc < 0 ? -1 : 0;
}

static void
signal_native_stop(WatcherObject *w)
{
    sig_list_remove(&w->loop->signals, w, ((SignalObject *)w)->signum);
}

static PyObject *
signal_details(WatcherObject *w)
{
    return PyUnicode_FromFormat("signum=%d", ((SignalObject *)w)->signum);
}

static const WatcherOps signal_ops = {
    .name = "signal", .native_start = signal_native_start,
    .native_stop = signal_native_stop, .details = signal_details,
    .native_close = soft_native_close,
};

static PyObject *
signal_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"loop", "signalnum", "ref", "priority", NULL};
    PyObject *loop, *ref = NULL, *priority = NULL;
    long signum;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "Ol|OO:signal", kwlist,
                                     &loop, &signum, &ref, &priority))
        return NULL;
    if (signum < 1 || signum >= NSIG || signum == SIGKILL || signum == SIGSTOP) {
        PyErr_Format(PyExc_ValueError, "illegal signal number: %ld", signum);
        return NULL;
    }
    SignalObject *self = (SignalObject *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->signum = (int)signum;
    if (watcher_init_common((WatcherObject *)self, (LoopObject *)loop, &signal_ops,
                            ref, priority) < 0) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

static PyObject *
signal_get_signum(WatcherObject *w, void *c)
{
    return PyLong_FromLong(((SignalObject *)w)->signum);
}

static PyGetSetDef signal_getset[] = {
    {"signum", (getter)signal_get_signum, NULL, NULL},
    {NULL}
};

static PyType_Slot signal_slots[] = {
    {Py_tp_doc, "signal(loop, signalnum, ref=True, priority=None): runs the callback in\n"
              "the loop after the signal is delivered.  Python's own handler for the\n"
              "signal keeps running, and is restored when the last watcher stops."},
    {Py_tp_new, signal_new},
    {Py_tp_getset, signal_getset},
    {0, NULL}
};

static PyType_Spec signal_spec = {
    .name = "gevent_c.core.signal",
    .basicsize = sizeof(SignalObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = signal_slots,
};

/* ---- child ---- */

static int
child_native_start(WatcherObject *w)
{
    int rc = sig_list_add(&w->loop->children, w, SIGCHLD);
    if (rc == 0) {
        /* the child may have changed state before we watched: look now */
        w->loop->check_children = 1;
        uv_async_send(w->loop->wake_async);
    }
    return rc < 0 ? -1 : 0;
}

static void
child_native_stop(WatcherObject *w)
{
    sig_list_remove(&w->loop->children, w, SIGCHLD);
}

static PyObject *
child_details(WatcherObject *w)
{
    ChildObject *c = (ChildObject *)w;
    return PyUnicode_FromFormat("pid=%ld rstatus=%d", c->pid, c->rstatus);
}

static const WatcherOps child_ops = {
    .name = "child", .native_start = child_native_start,
    .native_stop = child_native_stop, .details = child_details,
    .native_close = soft_native_close,
};

static PyObject *
child_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"loop", "pid", "trace", "ref", NULL};
    PyObject *loop, *ref = NULL;
    long pid;
    int trace = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "Ol|pO:child", kwlist,
                                     &loop, &pid, &trace, &ref))
        return NULL;
    gevc_state *gst = gevc_state_by_type(type);
    if (gst == NULL)
        return NULL;
    if (PyObject_TypeCheck(loop, gst->LoopType) && !((LoopObject *)loop)->is_default) {
        PyErr_SetString(PyExc_TypeError, "child watchers are only available on the default loop");
        return NULL;
    }
    if (pid < 0) {
        PyErr_Format(PyExc_ValueError, "pid must be non-negative: %ld", pid);
        return NULL;
    }
    ChildObject *self = (ChildObject *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->pid = pid;
    self->trace = trace;
    if (watcher_init_common((WatcherObject *)self, (LoopObject *)loop, &child_ops, ref, NULL) < 0) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

static PyMemberDef child_members[] = {
    {"pid", T_LONG, offsetof(ChildObject, pid), READONLY, NULL},
    {"rpid", T_LONG, offsetof(ChildObject, rpid), 0, NULL},
    {"rstatus", T_INT, offsetof(ChildObject, rstatus), 0, NULL},
    {NULL}
};

static PyType_Slot child_slots[] = {
    {Py_tp_doc, "child(loop, pid, trace=False, ref=True): fires when process pid (0: any\n"
              "child) changes state; rpid and rstatus say which and how.  Default loop\n"
              "only.  Code calling os.waitpid itself races with it."},
    {Py_tp_new, child_new},
    {Py_tp_members, child_members},
    {0, NULL}
};

static PyType_Spec child_spec = {
    .name = "gevent_c.core.child",
    .basicsize = sizeof(ChildObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = child_slots,
};

static PyObject *
signal_new_from_loop(LoopObject *loop, PyObject *args, PyObject *kwds)
{
    return loop_make_watcher(loop->gst->SignalType, loop, args, kwds);
}

static PyObject *
child_new_from_loop(LoopObject *loop, PyObject *args, PyObject *kwds)
{
    return loop_make_watcher(loop->gst->ChildType, loop, args, kwds);
}

/* loop.sig_pending: has a signal this loop watches (its signal watchers',
 * SIGCHLD for its child watchers) been delivered and not yet scanned? */
static int
loop_signals_undelivered(LoopObject *loop)
{
    for (Py_ssize_t i = 0; i < loop->signals.n; i++) {
        SignalObject *s = (SignalObject *)loop->signals.items[i];
        if (__atomic_load_n(&sig_counts[s->signum], __ATOMIC_SEQ_CST) != s->seen)
            return 1;
    }
    return loop->children.n > 0
        && (loop->check_children
            || __atomic_load_n(&sig_counts[SIGCHLD], __ATOMIC_SEQ_CST) != chld_seen);
}
