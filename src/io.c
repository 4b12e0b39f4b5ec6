/*
 * io.c -- gevent_c.core.io: any number of io watchers per fd, multiplexed
 * on one native poll per fd by the loop's fd-poll table (fdpoll.c).
 *
 */
#include "gevent_c.h"
#include <fcntl.h>
#include <sys/stat.h>
#include <errno.h>
#include <sys/socket.h>



static void
io_detach(IoObject *io)
{
    FdPoll *p = io->fdp;
    if (p == NULL)
        return;
    for (IoObject **pp = &p->first; *pp; pp = &(*pp)->next_on_fd)
        if (*pp == io) {
            *pp = io->next_on_fd;
            break;
        }
    io->next_on_fd = NULL;
    io->fdp = NULL;
    p->nwatchers--;
    if (p->loop->uv) {
        if (p->first == NULL)
            fdpoll_stop_native(p);   /* now, while the fd is surely open */
        fdpoll_mark_dirty(p);
    }
}

static int
io_attach(IoObject *io, LoopObject *loop, int fd)
{
    FdPoll *p = loop_get_fdpoll(loop, fd);
    if (p == NULL)
        return -1;
    io->fdp = p;
    io->fd = fd;
    io->next_on_fd = p->first;
    p->first = io;
    p->nwatchers++;
    return 0;
}

/* Only active io watchers are linked into their fd's FdPoll: an inactive
 * one is referenced by nothing the loop reads, so it may be freed from any
 * thread (the GC). */
static int
io_native_start(WatcherObject *w)
{
    IoObject *io = IO(w);
    if (io->fdp == NULL) {
        if (io_attach(io, w->loop, io->fd) < 0)
            return -1;
    }
    else if (fdpoll_validate(io->fdp) < 0)
        return -1;
    FdPoll *p = io->fdp;
    if (io->fd_fresh) {
        /* the first start since the fd was given: another watcher left
         * active on this fd after its file was closed keeps the poll armed,
         * and a new file at the number (an eventfd looks the same to fstat)
         * would never be added to epoll (libev's ev_io_set forces the same
         * re-registration) */
        io->fd_fresh = 0;
        if (p->poll && p->armed && !p->parked)
            p->recheck = 1;
    }
    io->revents = 0;
    io->killed = 0;
    fdpoll_mark_dirty(p);
    return 0;
}

static void
io_native_stop(WatcherObject *w)
{
    io_detach(IO(w));
}

static void
io_native_close(WatcherObject *w)
{
    io_detach(IO(w));
}

static PyObject *
events_str(int events)
{
    if (events == UV_READABLE)
        return PyUnicode_FromString("READ");
    if (events == UV_WRITABLE)
        return PyUnicode_FromString("WRITE");
    if (events == IO_MASK)
        return PyUnicode_FromString("READ|WRITE");
    return PyUnicode_FromString("");
}

static PyObject *
io_details(WatcherObject *w)
{
    PyObject *es = events_str(IO(w)->events);
    PyObject *r = es ? PyUnicode_FromFormat("fd=%d events=%U", IO(w)->fd, es) : NULL;
    Py_XDECREF(es);
    return r;
}

/* gevent_c.core.EVENTS, borrowed from the module state (set on first use) */
static PyObject *
get_events_sentinel(WatcherObject *w)
{
    gevc_state *gst = w->loop != NULL ? w->loop->gst : gevc_state_by_type(Py_TYPE(w));
    if (gst == NULL)
        return NULL;
    if (gst->EVENTS_sentinel == NULL) {
        PyObject *core = PyImport_ImportModule("gevent_c.core");
        if (core == NULL)
            return NULL;
        PyObject *ev = PyObject_GetAttrString(core, "EVENTS");
        Py_DECREF(core);
        if (ev == NULL)
            return NULL;
        if (gst->EVENTS_sentinel == NULL)
            gst->EVENTS_sentinel = ev;
        else
            Py_DECREF(ev);
    }
    return gst->EVENTS_sentinel;
}

/* callback(revents, *args) with pass_events; args[0] is EVENTS → revents */
static PyObject *
io_call(WatcherObject *w, PyObject *callback, PyObject *args)
{
    IoObject *io = IO(w);
    int rev = io->revents;
    io->revents = 0;
    Py_ssize_t n = args ? PyTuple_GET_SIZE(args) : 0;
    PyObject *sentinel = n ? get_events_sentinel(w) : NULL;
    if (n && sentinel == NULL)
        return NULL;
    int replace = n && PyTuple_GET_ITEM(args, 0) == sentinel;
    if (!io->pass_events && !replace)
        return call_callback(callback, args);   /* a bound Waiter.switch: the C switch */
    PyObject *revo = PyLong_FromLong(rev);
    if (revo == NULL)
        return NULL;
    Py_ssize_t extra = io->pass_events ? 1 : 0;
    PyObject *full = PyTuple_New(n + extra);
    if (full == NULL) {
        Py_DECREF(revo);
        return NULL;
    }
    if (extra)
        PyTuple_SET_ITEM(full, 0, Py_NewRef(revo));
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = (i == 0 && replace) ? revo : PyTuple_GET_ITEM(args, i);
        PyTuple_SET_ITEM(full, i + extra, Py_NewRef(item));
    }
    Py_DECREF(revo);
    PyObject *res = PyObject_Call(callback, full, NULL);
    Py_DECREF(full);
    return res;
}

/* Before its callback: a watcher whose fd epoll refused (fdpoll_kill) is
 * stopped, as libev's fd_kill stops it; the callback runs once and may
 * start it again (which reports a closed fd as OSError). */
static void
io_fired(WatcherObject *w)
{
    if (IO(w)->killed && w->active) {
        IO(w)->killed = 0;
        io_detach(IO(w));
        watcher_deactivate(w);
    }
}

const WatcherOps io_ops = {
    .name = "io",
    .native_start = io_native_start,
    .native_stop = io_native_stop,
    .fired = io_fired,
    .details = io_details,
    .stop_on_error = 1,
    .call = io_call,
    .native_close = io_native_close,
};

static int
io_check_fd(PyObject *fd_o, int *fd)
{
    long v = PyLong_AsLong(fd_o);
    if (v == -1 && PyErr_Occurred())
        return -1;
    if (v < 0) {
        PyErr_Format(PyExc_ValueError, "fd must be non-negative: %ld", v);
        return -1;
    }
    if (v > INT_MAX) {
        errno = EBADF;
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    *fd = (int)v;
    return fd_check_open(*fd);
}

static int
io_check_events(PyObject *ev_o, int *events)
{
    long v = PyLong_AsLong(ev_o);
    if (v == -1 && PyErr_Occurred())
        return -1;
    if (v & ~(long)IO_MASK || v < 0) {
        PyErr_Format(PyExc_ValueError, "illegal event mask: %ld", v);
        return -1;
    }
    *events = (int)v;
    return 0;
}

static PyObject *
io_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"loop", "fd", "events", "ref", "priority", NULL};
    PyObject *loop, *fd_o, *ev_o, *ref = NULL, *priority = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOO|OO:io", kwlist,
                                     &loop, &fd_o, &ev_o, &ref, &priority))
        return NULL;
    int fd, events;
    if (io_check_fd(fd_o, &fd) < 0 || io_check_events(ev_o, &events) < 0)
        return NULL;
    IoObject *self = (IoObject *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->fd = fd;
    self->fd_fresh = 1;
    self->events = events;
    WatcherObject *w = (WatcherObject *)self;
    if (watcher_init_common(w, (LoopObject *)loop, &io_ops, ref, priority) < 0
            || loop_check_own_thread(w->loop) < 0) {
        Py_DECREF(self);
        return NULL;
    }
    if (fdpoll_refuse_closing(w->loop, fd) < 0) {
        Py_DECREF(self);
        return NULL;
    }
    /* validate now (uv_poll_init refuses fds epoll cannot watch); the
     * FdPoll is released at the next iteration if nothing starts on it */
    FdPoll *p = loop_get_fdpoll(w->loop, fd);
    if (p == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    fdpoll_mark_dirty(p);
    return (PyObject *)self;
}

/* start(callback, *args, pass_events=False) */
static PyObject *
io_start(WatcherObject *w, PyObject *args, PyObject *kwds)
{
    int pass_events;
    if (parse_flag_kw(kwds, "pass_events", 0, &pass_events) < 0)
        return NULL;
    /* a closed fd raises EBADF from the fstat() in io_native_start */
    IO(w)->pass_events = pass_events;
    return watcher_start_from_args(w, args);
}

static PyObject *
io_get_fd(WatcherObject *w, void *c)
{
    return PyLong_FromLong(IO(w)->fd);
}

static int
io_readonly_while_active(WatcherObject *w, const char *name)
{
    if (w->active) {
        PyErr_Format(PyExc_AttributeError,
                     "'io' watcher attribute '%s' is read-only while watcher is active", name);
        return -1;
    }
    if (w->closed || w->detached || w->loop == NULL || w->loop->uv == NULL) {
        PyErr_SetString(PyExc_ValueError, "operation on closed watcher");
        return -1;
    }
    return loop_check_own_thread(w->loop);
}

static int
io_set_fd(WatcherObject *w, PyObject *value, void *c)
{
    int fd;
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete fd");
        return -1;
    }
    if (io_readonly_while_active(w, "fd") < 0 || io_check_fd(value, &fd) < 0)
        return -1;
    IO(w)->fd = fd;  /* inactive: not linked to any FdPoll */
    IO(w)->fd_fresh = 1;
    return 0;
}

static PyObject *
io_get_events(WatcherObject *w, void *c)
{
    return PyLong_FromLong(IO(w)->events);
}

static int
io_set_events(WatcherObject *w, PyObject *value, void *c)
{
    int events;
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete events");
        return -1;
    }
    if (io_readonly_while_active(w, "events") < 0 || io_check_events(value, &events) < 0)
        return -1;
    IO(w)->events = events;
    return 0;
}

static PyObject *
io_get_events_str(WatcherObject *w, void *c)
{
    return events_str(IO(w)->events);
}

/* ---- recv_into() and send(): the server path in C ----
 *
 * What a greenlet-per-connection server does around every wait, done in one
 * C call on the connection's io watcher: the system call with MSG_DONTWAIT
 * (so the fd's own blocking mode does not matter) and the GIL held (it
 * cannot block), and, when it would block, hub.wait() on the watcher.  The
 * socket module's recv_into/send parse their arguments into a tuple and
 * release and re-take the GIL around each call; here neither happens. */

/* hub.wait(w) on this thread's hub, for recv_into/send, for the one
 * direction `event` that the call needs: a READ|WRITE watcher waits only
 * for READ in recv_into() (an idle connection is always writable, and a
 * wait for either would return at once, forever) and only for WRITE in
 * send().  The watcher's events are narrowed for the wait and put back
 * after it; nothing else can change them meanwhile (they are read-only
 * while the watcher is started), and the caller's reference keeps `w`. */
static int
io_wait_ready(WatcherObject *w, int event, const char *what)
{
    gevc_state *gst = w->loop->gst;
    if (w->active) {
        PyErr_Format(gst->ConcurrentObjectUseError,
                     "%s(): the watcher is already started (another greenlet waits on it, "
                     "or it has a callback)", what);
        return -1;
    }
    PyObject *hub = get_hub_impl(gst);
    if (hub == NULL)
        return -1;
    if (IS_HUB(gst, hub) && ((HubObject *)hub)->loop != (PyObject *)w->loop) {
        Py_DECREF(hub);
        PyErr_Format(PyExc_ValueError, "%s(): the watcher's loop is not this thread's hub's loop",
                     what);
        return -1;
    }
    int events = IO(w)->events;
    IO(w)->events = events & event;
    PyObject *r = hub_wait_impl(gst, hub, (PyObject *)w);
    IO(w)->events = events;
    Py_DECREF(hub);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

static int
io_check_direction(WatcherObject *w, int event, const char *what)
{
    if (watcher_check_usable(w) < 0)
        return -1;
    if (!(IO(w)->events & event)) {
        PyErr_Format(PyExc_ValueError, "%s() needs an io watcher with %s in its events",
                     what, event == UV_READABLE ? "READ" : "WRITE");
        return -1;
    }
    return 0;
}

/* The loop of recv_into() and send(): the system call (MSG_DONTWAIT: it
 * cannot block, so the GIL stays), retried after EINTR, and after a wait on
 * the watcher when it would block.  `wait_first` waits before the first
 * call.  Returns the byte count, or -1 with an exception set. */
static ssize_t
io_transfer(WatcherObject *w, int event, const char *what, void *buf, size_t len,
            int wait_first)
{
    for (;;) {
        if (wait_first) {
            wait_first = 0;
            if (io_wait_ready(w, event, what) < 0 || io_check_direction(w, event, what) < 0)
                return -1;
        }
        ssize_t n = event == UV_READABLE
                  ? recv(IO(w)->fd, buf, len, MSG_DONTWAIT)
                  : send(IO(w)->fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n >= 0)
            return n;
        if (errno == EINTR) {
            if (PyErr_CheckSignals() < 0)
                return -1;
            continue;
        }
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            PyErr_SetFromErrno(PyExc_OSError);
            return -1;
        }
        wait_first = 1;
    }
}

/* The buffer protocol's errors for a wrong type read as TypeErrors, as
 * with the socket module's "w*"/"y*" arguments. */
static int
io_get_buffer(PyObject *o, Py_buffer *view, int flags, const char *what)
{
    if (PyObject_GetBuffer(o, view, flags) == 0)
        return 0;
    if (PyErr_ExceptionMatches(PyExc_BufferError) || PyErr_ExceptionMatches(PyExc_TypeError)) {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError, "%s, not %.200s", what, Py_TYPE(o)->tp_name);
    }
    return -1;
}

/* recv_into(buffer, nbytes=0), parsed by hand: METH_FASTCALL, no argument
 * tuple (this is called once per message). */
static PyObject *
io_recv_into(WatcherObject *w, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *bufobj = nargs > 0 ? args[0] : NULL, *nbytes_o = nargs > 1 ? args[1] : NULL;
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    if (nargs > 2) {
        PyErr_Format(PyExc_TypeError, "recv_into() takes at most 2 arguments (%zd given)",
                     nargs + nkw);
        return NULL;
    }
    for (Py_ssize_t i = 0; i < nkw; i++) {
        PyObject *key = PyTuple_GET_ITEM(kwnames, i);
        PyObject **slot = PyUnicode_CompareWithASCIIString(key, "buffer") == 0 ? &bufobj
                        : PyUnicode_CompareWithASCIIString(key, "nbytes") == 0 ? &nbytes_o
                        : NULL;
        if (slot == NULL || *slot != NULL) {
            PyErr_Format(PyExc_TypeError, slot ? "recv_into() got multiple values for "
                         "argument '%U'" : "recv_into() got an unexpected keyword argument '%U'",
                         key);
            return NULL;
        }
        *slot = args[nargs + i];
    }
    if (bufobj == NULL) {
        PyErr_SetString(PyExc_TypeError, "recv_into() missing required argument 'buffer'");
        return NULL;
    }
    Py_ssize_t nbytes = 0;
    if (nbytes_o != NULL) {
        nbytes = PyNumber_AsSsize_t(nbytes_o, PyExc_OverflowError);
        if (nbytes == -1 && PyErr_Occurred())
            return NULL;
    }
    Py_buffer view;
    if (io_get_buffer(bufobj, &view, PyBUF_WRITABLE,
                      "recv_into() argument 'buffer' must be a writable bytes-like object") < 0)
        return NULL;
    PyObject *res = NULL;
    if (nbytes < 0) {
        PyErr_SetString(PyExc_ValueError, "negative buffersize in recv_into");
        goto done;
    }
    if (nbytes == 0 || nbytes > view.len)
        nbytes = view.len;
    if (io_check_direction(w, UV_READABLE, "recv_into") < 0)
        goto done;
    if (nbytes == 0) {
        res = PyLong_FromLong(0);   /* an empty buffer: nothing to wait for */
        goto done;
    }
    IoObject *io = IO(w);
    /* After a short read the fd is most likely empty (as libuv assumes):
     * wait before the next receive rather than make one that fails with
     * EAGAIN.  The wait returns at once if data is there (level-triggered). */
    ssize_t n = io_transfer(w, UV_READABLE, "recv_into", view.buf, (size_t)nbytes, io->drained);
    if (n >= 0) {
        io->drained = n < nbytes;
        res = PyLong_FromSsize_t(n);
    }
done:
    PyBuffer_Release(&view);
    return res;
}

static PyObject *
io_send(WatcherObject *w, PyObject *data)
{
    Py_buffer view;
    if (io_get_buffer(data, &view, PyBUF_SIMPLE,
                      "send() argument must be a contiguous bytes-like object") < 0)
        return NULL;
    PyObject *res = NULL;
    if (io_check_direction(w, UV_WRITABLE, "send") == 0) {
        ssize_t n = io_transfer(w, UV_WRITABLE, "send", view.buf, (size_t)view.len, 0);
        if (n >= 0)
            res = PyLong_FromSsize_t(n);
    }
    PyBuffer_Release(&view);
    return res;
}

static PyMethodDef io_methods[] = {
    {"start", (PyCFunction)(void (*)(void))io_start, METH_VARARGS | METH_KEYWORDS,
     "start(callback, *args, pass_events=False): call callback when the fd is "
     "ready (level-triggered)."},
    {"recv_into", (PyCFunction)(void (*)(void))io_recv_into, METH_FASTCALL | METH_KEYWORDS,
     "recv_into(buffer, nbytes=0) -> int: receive up to nbytes (0: len(buffer)) from the\n"
     "socket fd into buffer, waiting on this watcher (hub.wait) while nothing is there;\n"
     "0 at end of file (and at once for an empty buffer).  The watcher's events must include READ, and it must not be\n"
     "started; while it waits, its events are READ only (a READ|WRITE watcher's are put back after).  A gevent_c extension: what socket.recv_into plus hub.wait do in a\n"
     "greenlet server, in one C call."},
    {"send", (PyCFunction)io_send, METH_O,
     "send(data) -> int: send bytes-like data on the socket fd, waiting on this watcher\n"
     "(hub.wait) while the socket's buffer is full; returns the number of bytes sent\n"
     "(may be fewer than len(data)).  The watcher's events must include WRITE, and it\n"
     "must not be started; while it waits, its events are WRITE only (put back after).  A gevent_c extension, like recv_into()."},
    {NULL}
};

static PyGetSetDef io_getset[] = {
    {"fd", (getter)io_get_fd, (setter)io_set_fd, NULL},
    {"events", (getter)io_get_events, (setter)io_set_events, NULL},
    {"events_str", (getter)io_get_events_str, NULL, NULL},
    {NULL}
};

static PyType_Slot io_slots[] = {
    {Py_tp_doc, "io(loop, fd, events, ref=True, priority=None): READ (1) / WRITE (2)\n"
              "readiness of fd.  Any number of io watchers may watch one fd."},
    {Py_tp_new, io_new},
    {Py_tp_methods, io_methods},
    {Py_tp_getset, io_getset},
    {0, NULL}
};

PyType_Spec io_spec = {
    .name = "gevent_c.core.io",
    .basicsize = sizeof(IoObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = io_slots,
};

PyObject *
io_new_from_loop(LoopObject *loop, PyObject *args, PyObject *kwds)
{
    return loop_make_watcher(loop->gst->IoType, loop, args, kwds);
}
