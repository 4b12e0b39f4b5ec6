/*
 * fdpoll.c -- the loop's fd-poll table: one native uv_poll_t per fd (libuv
 * allows only one), shared by every io watcher on that fd (io.c).  Its
 * interface (gevent_c.h): loop_get_fdpoll, fdpoll_mark_dirty,
 * fdpoll_release, loop_flush_polls (once per iteration, before uv_run),
 * fdpoll_refuse_closing, loop_closing_fd, loop_drop_fdpolls (destroy).
 * Included by _hub.c.
 *
 * Guards against libuv's abort()s: the fd is checked (fstat) before every
 * uv_poll_start, and its identity (st_dev, st_ino) too: if the fd number
 * now names another file, the old native poll is closed and a new one
 * initialised (uv_poll_init validates that the fd can be polled).
 * Stopping is lazy: the native poll is re-armed or stopped once per loop
 * iteration (loop_flush_polls), so a wait/wake/wait cycle on a socket costs
 * no epoll_ctl.
 *
 * (st_dev, st_ino) proves identity only for sockets (one inode per socket).
 * Every eventfd, signalfd, timerfd, epoll fd and (before Linux 6.9) pidfd
 * shares one anonymous inode, and a tty, a character device or a named
 * FIFO opened again has its old inode.  epoll registers the open file, not
 * the number: when the file is closed its registration goes, and the new
 * file behind the same number is never registered unless someone does
 * EPOLL_CTL_ADD again.  So, as libev and libuv do, an fd whose set of
 * active watchers became empty is treated as possibly a new file: the next
 * start re-registers it (uv_poll_start: DEL, then ADD at the next poll),
 * unless it is a socket whose identity is unchanged.
 */
#include "gevent_c.h"
#include <fcntl.h>
#include <sys/stat.h>
#include <errno.h>

static int
fd_check_open(int fd)
{
    if (fcntl(fd, F_GETFD) < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    return 0;
}

static void
fdpoll_cb(uv_poll_t *h, int status, int events)
{
    FdPoll *p = (FdPoll *)h->data;
    if (p == NULL)
        return;
    for (IoObject *io = p->first; io; io = io->next_on_fd) {
        WatcherObject *w = (WatcherObject *)io;
        if (!w->active)
            continue;
        int rev = status < 0 ? io->events : (events & io->events);
        if (rev) {
            io->revents |= rev;
            loop_record(w);
        }
    }
}

static void
fdpoll_close_native(FdPoll *p)
{
    if (p->poll) {
        p->poll->data = NULL;
        if (p->loop->uv && !uv_is_closing((uv_handle_t *)p->poll))
            uv_close((uv_handle_t *)p->poll, free_handle_cb);
        p->poll = NULL;
    }
    p->armed = 0;
}

static int
fd_stat(int fd, struct stat *st)
{
    if (fstat(fd, st) < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    return 0;
}

/* (Re)initialise the native poll for p->fd, whose fstat() is `st`; -1
 * with OSError set. */
static int
fdpoll_open_native(FdPoll *p, const struct stat *st)
{
    uv_poll_t *h = malloc(sizeof(*h));
    if (h == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    int err = uv_poll_init(p->loop->uv, h, p->fd);
    p->dev = st->st_dev;
    p->ino = st->st_ino;
    p->is_sock = S_ISSOCK(st->st_mode) ? 1 : 0;
    p->armed = 0;
    p->always_ready = 0;
    p->maybe_new = 0;
    p->reregister = 0;
    if (err == UV_EPERM) {
        /* epoll refuses regular files and directories: such an fd is
         * always ready (flush records its watchers every pass) */
        free(h);
        p->always_ready = 1;
        return 0;
    }
    if (err < 0) {
        free(h);
        gevc_uv_error(err);
        return -1;
    }
    h->data = p;
    p->poll = h;
    return 0;
}

/* Make sure the native poll still watches the file the fd names now. */
static int
fdpoll_validate(FdPoll *p)
{
    struct stat st;
    if (fd_stat(p->fd, &st) < 0)
        return -1;
    if ((p->poll || p->always_ready) && st.st_dev == p->dev && st.st_ino == p->ino)
        return 0;
    fdpoll_close_native(p);
    return fdpoll_open_native(p, &st);
}

static FdPoll *
loop_get_fdpoll(LoopObject *loop, int fd)
{
    if (fd >= loop->nfdpolls) {
        int n = loop->nfdpolls ? loop->nfdpolls : 64;
        while (n <= fd)
            n *= 2;
        FdPoll **arr = PyMem_Realloc(loop->fdpolls, (size_t)n * sizeof(*arr));
        if (arr == NULL) {
            PyErr_NoMemory();
            return NULL;
        }
        memset(arr + loop->nfdpolls, 0, (size_t)(n - loop->nfdpolls) * sizeof(*arr));
        loop->fdpolls = arr;
        loop->nfdpolls = n;
    }
    FdPoll *p = loop->fdpolls[fd];
    if (p != NULL) {
        if (fdpoll_validate(p) < 0)
            return NULL;
        return p;
    }
    struct stat st;
    if (fd_stat(fd, &st) < 0)
        return NULL;
    p = PyMem_Calloc(1, sizeof(*p));
    if (p == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    p->loop = loop;
    p->fd = fd;
    if (fdpoll_open_native(p, &st) < 0) {
        PyMem_Free(p);
        return NULL;
    }
    loop->fdpolls[fd] = p;
    return p;
}

static void
fdpoll_mark_dirty(FdPoll *p)
{
    if (!p->dirty) {
        p->dirty = 1;
        p->next_dirty = p->loop->dirty_polls;
        p->loop->dirty_polls = p;
    }
}

static int
fdpoll_wanted(FdPoll *p)
{
    int want = 0;
    for (IoObject *io = p->first; io; io = io->next_on_fd)
        if (((WatcherObject *)io)->active)
            want |= io->events;
    return want;
}

/* Free an FdPoll with no watchers left. */
static void
fdpoll_release(FdPoll *p)
{
    LoopObject *loop = p->loop;
    if (p->nwatchers > 0 || p->dirty)
        return;
    fdpoll_close_native(p);
    if (p->fd < loop->nfdpolls && loop->fdpolls[p->fd] == p)
        loop->fdpolls[p->fd] = NULL;
    PyMem_Free(p);
}

/* Before arming: is p->fd still the file the native poll was made for?
 * 0: yes, or it names another file now and the native poll was remade for
 * it (p->always_ready if epoll refuses that one); -1: the fd is closed (or
 * the new file cannot be polled).  libuv abort()s if epoll_ctl fails on a
 * poll it arms, so this is checked before every uv_poll_start: an fd number
 * closed and reused (by a regular file, say) between two iterations, or
 * after reinit() re-arms everything. */
static int
fdpoll_recheck(FdPoll *p)
{
    if (fdpoll_validate(p) < 0) {
        PyErr_Clear();   /* the flush reports it by waking the watchers */
        return -1;
    }
    return 0;
}

static void
fdpoll_wake_all(FdPoll *p)
{
    for (IoObject *io = p->first; io; io = io->next_on_fd)
        if (((WatcherObject *)io)->active) {
            io->revents |= io->events;
            loop_record((WatcherObject *)io);
        }
}

/* Once per iteration, before polling: arm each changed poll with the union
 * of its active watchers' events, or stop it. */
static void
loop_flush_polls(LoopObject *loop)
{
    FdPoll *p = loop->dirty_polls;
    loop->dirty_polls = NULL;
    while (p) {
        FdPoll *next = p->next_dirty;
        p->dirty = 0;
        p->next_dirty = NULL;
        if (p->closing && loop->iteration - p->closing_iter >= 2)
            p->closing = 0;
        int want = fdpoll_wanted(p);
        int again = 0;
        if (want == 0) {
            if (p->poll && p->armed) {
                uv_poll_stop(p->poll);
                p->armed = 0;
            }
            p->reregister = 0;   /* the next arm is a fresh EPOLL_CTL_ADD */
        }
        else if ((p->poll && (want != p->armed || p->reregister)) || p->always_ready) {
            /* uv_poll_start always re-registers (DEL, then ADD at the next
             * poll): that is what a possibly new file needs */
            p->reregister = 0;
            if (fdpoll_recheck(p) < 0) {
                /* closed under active watchers: wake them, never arm */
                if (p->poll)
                    uv_poll_stop(p->poll);
                p->armed = 0;
                fdpoll_wake_all(p);
            }
            else if (p->always_ready) {
                /* epoll cannot watch it (a regular file): ready every pass,
                 * as poll(2) and libev report it; the pass does not block */
                fdpoll_wake_all(p);
                again = 1;
            }
            else if (p->poll && uv_poll_start(p->poll, want, fdpoll_cb) == 0)
                p->armed = want;
        }
        if (p->closing || again)
            fdpoll_mark_dirty(p);   /* keep it (and the mark) until it expires */
        else if (p->nwatchers == 0)
            fdpoll_release(p);
        p = next;
    }
}

/* A new io watcher on an fd that loop.closing_fd() announced, and that
 * still names the same file: EBADF, as gevent's libuv loop does (its
 * select.poll() reports such an fd as POLLNVAL).  The caller is about to
 * close it; watching it now would report the dying file as ready. */
static int
fdpoll_refuse_closing(LoopObject *loop, int fd)
{
    if (fd >= loop->nfdpolls || loop->fdpolls[fd] == NULL || !loop->fdpolls[fd]->closing)
        return 0;
    FdPoll *p = loop->fdpolls[fd];
    struct stat st;
    if (fstat(fd, &st) == 0 && st.st_dev == p->closing_dev && st.st_ino == p->closing_ino) {
        PyObject *e = PyObject_CallFunction(PyExc_OSError, "is", EBADF,
                          "The file descriptor is in the process of being closed");
        if (e != NULL) {
            PyErr_SetObject(PyExc_OSError, e);
            Py_DECREF(e);
        }
        return -1;
    }
    p->closing = 0;
    return 0;
}

/* loop.closing_fd(fd): the fd is about to be closed.  Wakes the active io
 * watchers on it (their callbacks run once) and stops the native poll.
 * Returns True if there were watchers: the caller should let them run
 * before closing. */
static PyObject *
loop_closing_fd(LoopObject *loop, PyObject *fd_o)
{
    long fd = PyLong_AsLong(fd_o);
    if (fd == -1 && PyErr_Occurred())
        return NULL;
    if (loop_check_alive(loop) < 0 || loop_check_own_thread(loop) < 0)
        return NULL;
    if (fd < 0 || fd >= loop->nfdpolls || loop->fdpolls[fd] == NULL)
        Py_RETURN_FALSE;
    FdPoll *p = loop->fdpolls[fd];
    /* every wake-up it queues, or (MemoryError) none and nothing changed */
    Py_ssize_t nactive = 0;
    for (IoObject *io = p->first; io; io = io->next_on_fd)
        nactive += ((WatcherObject *)io)->active;
    if (loop_reserve_callbacks(loop, nactive) < 0)
        return NULL;
    int woke = 0;
    for (IoObject *io = p->first; io; io = io->next_on_fd)
        if (((WatcherObject *)io)->active) {
            io->revents |= io->events;
            (void)loop_fire_soon((WatcherObject *)io);   /* reserved: cannot fail */
            woke = 1;
        }
    if (woke && p->poll) {
        p->closing = 1;
        p->closing_iter = loop->iteration;
        p->closing_dev = p->dev;
        p->closing_ino = p->ino;
        fdpoll_mark_dirty(p);
    }
    fdpoll_close_native(p);
    return PyBool_FromLong(woke);
}

/* Loop destroyed: free every FdPoll and detach its watchers. */
static void
loop_drop_fdpolls(LoopObject *loop)
{
    for (int fd = 0; fd < loop->nfdpolls; fd++) {
        FdPoll *p = loop->fdpolls[fd];
        if (p == NULL)
            continue;
        for (IoObject *io = p->first; io;) {
            IoObject *next = io->next_on_fd;
            watcher_detach((WatcherObject *)io);  /* unlinks it */
            io->fdp = NULL;
            io->next_on_fd = NULL;
            io = next;
        }
        fdpoll_close_native(p);
        PyMem_Free(p);
    }
    PyMem_Free(loop->fdpolls);
    loop->fdpolls = NULL;
    loop->nfdpolls = 0;
    loop->dirty_polls = NULL;
}
