/*
 * signal.c -- gevent_c.core.signal and gevent_c.core.child, on the signal
 * registry of sigreg.c.
 */
#include "gevent_c.h"
#include <signal.h>
#include <errno.h>
#include <sys/wait.h>
#include <sched.h>
/* `take`: signal watchers take their signal over (Python's handler does
 * not run while one is active); child watchers leave SIGCHLD's chained. */
static int
sig_list_add(WatcherList *list, WatcherObject *w, int signum, int take)
{
    if (wlist_contains(list, w))
        return 1;
    if (loop_register_signals(w->loop) < 0)
        return -1;
    if (sig_acquire(signum, take) < 0) {
        loop_unregister_signals(w->loop);
        return -1;
    }
    if (wlist_add(list, w) < 0) {
        sig_release(signum, take);
        loop_unregister_signals(w->loop);
        return -1;
    }
    return 0;
}

static void
sig_list_remove(WatcherList *list, WatcherObject *w, int signum, int take)
{
    if (!wlist_contains(list, w))
        return;
    wlist_remove(list, w);
    sig_release(signum, take);
    loop_unregister_signals(w->loop);
}

/* ---- signal ---- */

static int
signal_native_start(WatcherObject *w)
{
    SignalObject *s = (SignalObject *)w;
    int rc = sig_list_add(&w->loop->signals, w, s->signum, 1);
    if (rc == 0)
        s->seen = __atomic_load_n(&sig_counts[s->signum], __ATOMIC_SEQ_CST);
    return rc < 0 ? -1 : 0;
}

static void
signal_native_stop(WatcherObject *w)
{
    sig_list_remove(&w->loop->signals, w, ((SignalObject *)w)->signum, 1);
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
    if (signum < 1 || signum >= NSIG) {
        PyErr_Format(PyExc_ValueError, "illegal signal number: %ld", signum);
        return NULL;
    }
    if (signum == SIGKILL || signum == SIGSTOP) {
        PyErr_Format(PyExc_ValueError,
                     "signal %ld (%s) cannot be caught: no watcher can see it",
                     signum, signum == SIGKILL ? "SIGKILL" : "SIGSTOP");
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
              "the loop after the signal is delivered.  While at least one signal watcher\n"
              "is active on a signal (on any loop), the signal goes to the watchers only,\n"
              "as on libev: Python's handler for it does not run (with SIGINT: no\n"
              "KeyboardInterrupt).  When the last one stops (or its loop is destroyed),\n"
              "the previous disposition comes back.  SIGKILL and SIGSTOP cannot be\n"
              "caught: ValueError."},
    {Py_tp_new, signal_new},
    {Py_tp_getset, signal_getset},
    {0, NULL}
};

PyType_Spec signal_spec = {
    .name = "gevent_c.core.signal",
    .basicsize = sizeof(SignalObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = signal_slots,
};

/* ---- child ---- */

static int
child_native_start(WatcherObject *w)
{
    int rc = sig_list_add(&w->loop->children, w, SIGCHLD, 0);
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
    sig_list_remove(&w->loop->children, w, SIGCHLD, 0);
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

PyType_Spec child_spec = {
    .name = "gevent_c.core.child",
    .basicsize = sizeof(ChildObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = child_slots,
};

PyObject *
signal_new_from_loop(LoopObject *loop, PyObject *args, PyObject *kwds)
{
    return loop_make_watcher(loop->gst->SignalType, loop, args, kwds);
}

PyObject *
child_new_from_loop(LoopObject *loop, PyObject *args, PyObject *kwds)
{
    return loop_make_watcher(loop->gst->ChildType, loop, args, kwds);
}

