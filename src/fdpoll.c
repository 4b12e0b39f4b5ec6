/*
 * fdpoll.c -- the loop's fd-poll table: one native uv_poll_t per fd (libuv
 * allows only one), shared by every io watcher on that fd (io.c).  Its
 * interface (gevent_c.h): loop_get_fdpoll, fdpoll_mark_dirty,
 * fdpoll_stop_native, fdpoll_release, loop_flush_polls (once per iteration,
 * before uv_run), fdpoll_refuse_closing, loop_closing_fd, loop_drop_fdpolls
 * (destroy).
 *
 * Arming is lazy: start() marks the FdPoll dirty and the flush arms it
 * with the union of its active watchers' events once per iteration.
 * Stopping the last active watcher on an fd is not lazy: the fd leaves
 * epoll at once (EPOLL_CTL_DEL; the poll is parked, fdpoll_stop_native), because
 * epoll registers the open file, not the number.  The caller may close the
 * fd right after stop(); if another descriptor (a dup, a forked child's
 * copy) keeps the file open, a registration left behind could never be
 * removed (EPOLL_CTL_DEL needs an fd naming that file) and would report the
 * file ready forever, to an fd number that may name another file by then.
 *
 * libuv abort()s when epoll_ctl fails on a poll it arms.  Before every
 * uv_poll_start the fd is fstat()ed (a closed fd; a reused number that now
 * names another file gets a new native poll, uv_poll_init validating it)
 * and then probed with our own EPOLL_CTL_ADD on the loop's epoll fd
 * (uv_backend_fd): uv_poll_start deletes the probe's registration and libuv
 * adds its own at the next poll, which then cannot fail where the probe
 * did not.  An fd epoll refuses is "killed", as libev does: its watchers
 * are stopped and their callbacks run once with their events (the I/O they
 * then try reports the error).  EPERM (a regular file, a directory) is the
 * exception: such an fd is always ready, as poll(2) reports it.
 */
#include "gevent_c.h"
#include <fcntl.h>
#include <sys/stat.h>
#include <errno.h>
#include <string.h>
#ifdef __linux__
#include <sys/epoll.h>

static void fdpoll_release(FdPoll *p);
#endif

int
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
    if (status < 0 && p->armed) {
        /* libuv stopped the poll (POLLERR) but left the fd in epoll until
         * its next report: take it out now (the fd may be closed before
         * that), and re-arm it at the next flush, so that watchers still
         * active then keep hearing of the error */
#ifdef __linux__
        struct epoll_event ev;
        memset(&ev, 0, sizeof(ev));
        (void)epoll_ctl(uv_backend_fd(p->loop->uv), EPOLL_CTL_DEL, p->fd, &ev);
#endif
        p->armed = 0;
        p->parked = 0;
        fdpoll_mark_dirty(p);
    }
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
    p->parked = 0;
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
    p->armed = 0;
    p->parked = 0;
    p->always_ready = 0;
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
int
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

FdPoll *
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

void
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

/* The fd's last active watcher stopped: take it out of epoll now, while
 * the fd still names the file it was registered for (see the top).  With
 * our own EPOLL_CTL_DEL, not uv_poll_stop: the poll is "parked", libuv's
 * poll stays started with the same events, and a watcher started again in
 * the same iteration (a wait/wake/wait cycle) costs one EPOLL_CTL_ADD
 * (fdpoll_unpark) instead of libuv's DEL and ADD.  libuv never touches a
 * parked registration: it calls epoll_ctl for a poll only after
 * uv_poll_start (which begins with a DEL, ENOENT here, then ADDs) or in
 * uv_poll_stop/uv_close (DEL, ENOENT). */
void
fdpoll_stop_native(FdPoll *p)
{
    if (p->poll == NULL || !p->armed || p->parked)
        return;
#ifdef __linux__
    int epfd = uv_backend_fd(p->loop->uv);
    uv__io_t *io = &p->poll->io_watcher;
    /* only once libuv has registered what it was asked to (its ADD is made
     * at the next poll, and a uv_run that did not poll leaves it pending);
     * otherwise uv_poll_stop, which also drops the pending ADD */
    if (epfd >= 0 && p->armed > 0 && io->events == io->pevents && io->pevents != 0) {
        struct epoll_event ev;
        memset(&ev, 0, sizeof(ev));
        (void)epoll_ctl(epfd, EPOLL_CTL_DEL, p->fd, &ev);  /* ENOENT: not added yet */
        p->parked = 1;
        return;
    }
#endif
    uv_poll_stop(p->poll);
    p->armed = 0;
}

/* A parked poll wanted again with the same events: register the fd again
 * exactly as libuv had it (its poll's pevents and fd).  0, or the errno. */
static int
fdpoll_unpark(FdPoll *p)
{
#ifdef __linux__
    uv__io_t *io = &p->poll->io_watcher;
    struct epoll_event ev;
    memset(&ev, 0, sizeof(ev));
    ev.events = io->pevents;
    ev.data.fd = io->fd;
    p->parked = 0;
    if (epoll_ctl(uv_backend_fd(p->loop->uv), EPOLL_CTL_ADD, p->fd, &ev) == 0 || errno == EEXIST)
        return 0;
    return errno;
#else
    p->parked = 0;
    return 0;
#endif
}

/* A watcher just given its fd started while the poll was armed: the file
 * the fd names now may not be the one epoll registered (that one closed
 * under a watcher left active, an eventfd at the same number: fstat cannot
 * tell them apart).  Add the fd as libuv has it; EEXIST is the same file,
 * as libev's EPOLL_CTL_ADD after ev_io_set finds it.  Only once libuv has
 * made its own ADD (before, that pending ADD registers the new file).  0,
 * or the errno. */
static int
fdpoll_recheck(FdPoll *p)
{
#ifdef __linux__
    uv__io_t *io = &p->poll->io_watcher;
    int epfd = uv_backend_fd(p->loop->uv);
    if (epfd < 0 || io->events != io->pevents || io->pevents == 0)
        return 0;
    struct epoll_event ev;
    memset(&ev, 0, sizeof(ev));
    ev.events = io->pevents;
    ev.data.fd = io->fd;
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, p->fd, &ev) == 0 || errno == EEXIST)
        return 0;
    return errno;
#else
    (void)p;
    return 0;
#endif
}

/* Would epoll accept p->fd in the loop's epoll set?  0, or the errno of our
 * own EPOLL_CTL_ADD.  An added registration is removed by uv_poll_start
 * (which always begins with EPOLL_CTL_DEL); EEXIST means the file is
 * registered already (armed before). */
static int
fdpoll_probe(FdPoll *p, int want)
{
#ifdef __linux__
    int epfd = uv_backend_fd(p->loop->uv);
    if (epfd < 0)
        return 0;
    struct epoll_event ev;
    memset(&ev, 0, sizeof(ev));
    ev.events = ((want & UV_READABLE) ? EPOLLIN : 0) | ((want & UV_WRITABLE) ? EPOLLOUT : 0);
    ev.data.fd = p->fd;
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, p->fd, &ev) == 0 || errno == EEXIST)
        return 0;
    return errno;
#else
    (void)p;
    (void)want;
    return 0;
#endif
}

/* Undo a probe that succeeded when uv_poll_start then failed. */
static void
fdpoll_unprobe(FdPoll *p)
{
#ifdef __linux__
    int epfd = uv_backend_fd(p->loop->uv);
    struct epoll_event ev;
    memset(&ev, 0, sizeof(ev));
    if (epfd >= 0)
        (void)epoll_ctl(epfd, EPOLL_CTL_DEL, p->fd, &ev);
#else
    (void)p;
#endif
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

/* The fd cannot be watched (closed under its active watchers, or refused
 * by epoll): never arm it; every active watcher is woken with its events
 * and stopped at its dispatch (io.c: io_fired), as libev's fd_kill does.
 * Never active and deaf. */
static void
fdpoll_kill(FdPoll *p)
{
    if (p->poll && p->armed)
        uv_poll_stop(p->poll);
    p->armed = 0;
    p->parked = 0;
    for (IoObject *io = p->first; io; io = io->next_on_fd)
        if (((WatcherObject *)io)->active)
            io->killed = 1;
    fdpoll_wake_all(p);
}

enum { ARM_OK, ARM_READY, ARM_KILLED };

/* Arm p for `want`: the fd re-identified, probed, then uv_poll_start. */
static int
fdpoll_arm(FdPoll *p, int want)
{
    if (fdpoll_validate(p) < 0) {
        /* the fd is closed (or the file behind a reused number cannot be
         * polled): the kill below is how the watchers hear of it */
        PyErr_Clear();
        return ARM_KILLED;
    }
    if (p->always_ready)
        return ARM_READY;
    if (p->poll == NULL)
        return ARM_KILLED;
    p->parked = 0;   /* uv_poll_start re-registers from scratch */
    int err = fdpoll_probe(p, want);
    if (err == EPERM) {
        fdpoll_close_native(p);
        p->always_ready = 1;
        return ARM_READY;
    }
    if (err != 0)
        return ARM_KILLED;   /* EBADF (O_PATH), ELOOP, EINVAL, ENOSPC, ENOMEM */
    if (uv_poll_start(p->poll, want, fdpoll_cb) != 0) {
        fdpoll_unprobe(p);
        p->armed = 0;
        return ARM_KILLED;
    }
    p->armed = want;
    return ARM_OK;
}

/* Once per iteration, before polling: arm each changed poll with the union
 * of its active watchers' events, or stop it. */
/* What a probe of an armed poll (unparking it, or adding a new watcher's
 * fd again) answered: EPERM, a file epoll refuses, makes the fd always
 * ready (returns 1: the flush goes round again); any other error kills its
 * watchers. */
static int
fdpoll_probe_result(FdPoll *p, int err)
{
    if (err == EPERM) {
        fdpoll_close_native(p);
        p->always_ready = 1;
        fdpoll_wake_all(p);
        return 1;
    }
    if (err != 0)
        fdpoll_kill(p);
    return 0;
}

void
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
        int recheck = p->recheck;
        p->recheck = 0;
        if (want == 0) {
            fdpoll_stop_native(p);
            if (p->parked) {
                /* stopped for good: libuv forgets it too (its DEL finds
                 * nothing) and the handle no longer counts as active */
                uv_poll_stop(p->poll);
                p->armed = 0;
                p->parked = 0;
            }
        }
        else if (p->parked && want == p->armed)
            again |= fdpoll_probe_result(p, fdpoll_unpark(p));
        else if (recheck && p->poll && want == p->armed)
            again |= fdpoll_probe_result(p, fdpoll_recheck(p));
        else if (p->always_ready
                 || (p->poll ? want != p->armed
                             /* closed by closing_fd: once the mark is gone,
                              * watchers still active are armed again (the
                              * fd was not closed after all) or killed */
                             : !p->closing)) {
            switch (fdpoll_arm(p, want)) {
            case ARM_READY:
                /* epoll cannot watch it (a regular file): ready every pass,
                 * as poll(2) and libev report it; the pass does not block */
                fdpoll_wake_all(p);
                again = 1;
                break;
            case ARM_KILLED:
                fdpoll_kill(p);
                break;
            }
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
int
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
PyObject *
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
void
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
