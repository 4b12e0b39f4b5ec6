/*
 * gevent_c.h -- the one internal header of gevent_c.
 *
 * The extension is a unity build: _hub.c #includes every other .c file of
 * src/, so all functions can be static and greenlet's C API table (which
 * greenlet.h declares static, one per translation unit) is imported once.
 *
 * Ownership rules (see docs/design.md for the full map):
 *   - A loop owns its queued callbacks (one reference each) and the events
 *     recorded by libuv's C callbacks until they are dispatched.
 *   - A watcher owns a strong reference to its loop, and to itself while it
 *     is active (self_ref).  Its libuv handle is malloc'd apart from the
 *     Python object and freed only in the close callback.
 *   - handle->data points (borrowed) at the watcher; it is NULLed before the
 *     handle is closed, so libuv never calls back into a dead object.
 */
#ifndef GEVENT_C_H
#define GEVENT_C_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <uv.h>
#include "greenlet.h"
#include <sys/types.h>

#if PY_VERSION_HEX >= 0x030D0000
#define gevc_lookup_attr(obj, name, result) PyObject_GetOptionalAttr(obj, name, result)
#else
#define gevc_lookup_attr(obj, name, result) _PyObject_LookupAttr(obj, name, result)
#endif

typedef struct LoopObject LoopObject;
typedef struct FdPoll FdPoll;
typedef struct WatcherObject WatcherObject;
typedef struct CallbackObject CallbackObject;

/* ---- callback (loop.run_callback) ------------------------------------ */

enum { CB_PENDING = 0, CB_RUNNING = 1, CB_DONE = 2 };
/* CB_GREENLET_SWITCH: first switch of a spawn_raw greenlet (args passed);
 * CB_SLEEP: switch back into a greenlet in sleep(0); errors are reported
 * with the greenlet's bound switch as context, as after a Waiter wake-up */
/* CB_WATCHER: fire a watcher from Python context (a due-now timer,
 * closing_fd, fork watchers): the callback owns the watcher, so it stays
 * alive until dispatched, and it is not counted in activecnt */
enum { CB_CALL = 0, CB_WAITER_SWITCH = 1, CB_GREENLET_SWITCH = 2, CB_SLEEP = 3,
       CB_WATCHER = 4 };

struct CallbackObject {
    PyObject_HEAD
    PyObject *callback;        /* NULL once stopped or run */
    PyObject *args;            /* tuple, NULL once stopped or run */
    CallbackObject *next;      /* intrusive FIFO link while queued */
    LoopObject *loop;          /* borrowed, non-NULL only while pending */
    int state;
    int kind;                  /* CB_*_SWITCH: callback is a Waiter/greenlet */
};

/* ---- loop ------------------------------------------------------------ */

/* A growable array of borrowed watcher pointers (members are active, so
 * their self reference keeps them alive while listed). */
typedef struct {
    WatcherObject **items;
    Py_ssize_t n, cap;
} WatcherList;

struct LoopObject {
    PyObject_HEAD
    uv_loop_t *uv;             /* NULL once destroyed */
    int is_default;
    PyObject *error_handler;
    /* run_callback FIFO: the loop owns one reference per queued callback */
    CallbackObject *cb_head, *cb_tail;
    Py_ssize_t ncallbacks;     /* queued and not stopped */
    /* events recorded by libuv C callbacks, dispatched after uv_run */
    WatcherObject **pend;
    Py_ssize_t npend, pend_cap;
    /* the batch being dispatched is swapped out, so events recorded while
     * it runs (closing_fd, reinit) go to a fresh array */
    WatcherObject **spare;
    Py_ssize_t spare_cap, dispatch_left;
    /* due-now timers: fired after the next poll, as libev does (owned) */
    WatcherObject **ap_items;
    Py_ssize_t ap_n, ap_cap;
    Py_ssize_t nactive_ref;    /* active watchers whose ref is true */
    Py_ssize_t user_ref;       /* loop.ref()/unref() balance */
    Py_ssize_t depth;
    unsigned long iteration;
    int break_flag;
    int in_uv;                 /* inside uv_run (C callbacks may record) */
    int in_uv_nogil;           /* ... with the GIL released: hands off libuv */
    /* poll without releasing the GIL first while such polls find work:
     * skip that many blocking polls before the next try, backoff doubles */
    unsigned short gil_poll_skip, gil_poll_backoff;
    uv_handle_t **orphans;     /* handles to close on the loop's thread */
    Py_ssize_t norphans, orphans_cap;
    /* wake-up fd for Python signal handlers (main thread's default loop) */
    uv_poll_t *sig_poll;
    int sig_fds[2];
    /* io: one native poll per fd, multiplexed between io watchers */
    FdPoll **fdpolls;
    int nfdpolls;
    FdPoll *dirty_polls;       /* polls whose armed events must be recomputed */
    /* watchers run by the loop itself rather than by a libuv handle */
    WatcherList prepares, forks, children, signals;
    WatcherList pools;         /* thread pools posting to this loop (cast) */
    WatcherList asyncs;        /* every async_ watcher, active or not */
    uv_async_t *wake_async;    /* run_callback_threadsafe and signal delivery */
    uv_prepare_t *keepalive;   /* keeps uv_run(ONCE) blocking; see loop_uv.c */
    int sig_slot;              /* index in the process-wide signal registry */
    long fork_gen;             /* fork_generation when created / last reinit */
    int check_children;
    PyObject *weakreflist;
};

/* ---- watchers -------------------------------------------------------- */

typedef struct {
    const char *name;
    /* (re)arm the native handle; 0 or a libuv error (negative) */
    int (*native_start)(WatcherObject *w);
    void (*native_stop)(WatcherObject *w);
    /* repr details after the type name, may be NULL */
    PyObject *(*details)(WatcherObject *w);
    /* called before the callback runs; a one-shot timer deactivates here */
    void (*fired)(WatcherObject *w);
    int stop_on_error;         /* io: a failing callback stops the watcher */
    /* optional: call the Python callback (io passes revents) */
    PyObject *(*call)(WatcherObject *w, PyObject *callback, PyObject *args);
    /* optional: release the native resources (default: uv_close(handle)) */
    void (*native_close)(WatcherObject *w);
} WatcherOps;

struct WatcherObject {
    PyObject_HEAD
    LoopObject *loop;          /* strong; NULL after close */
    uv_handle_t *handle;       /* malloc'd; NULL after close or loop destroy */
    const WatcherOps *ops;
    PyObject *callback;
    PyObject *args;
    PyObject *weakreflist;
    int priority;
    unsigned active : 1;
    unsigned pending : 1;
    unsigned ref : 1;
    unsigned self_ref : 1;     /* we hold a reference to ourselves */
    unsigned closed : 1;
    unsigned detached : 1;     /* the loop was destroyed under it */
    unsigned direct_switch : 1; /* callback is a greenlet to switch into (sleep, hub.wait) */
    unsigned direct_fired : 1;  /* ... and the loop has switched into it */
};

typedef struct {
    WatcherObject base;
    double after;
    double repeat;
} TimerObject;

struct FdPoll {
    uv_poll_t *poll;           /* NULL while closed; replaced if the fd changes */
    LoopObject *loop;          /* borrowed: the loop frees its FdPolls */
    int fd;
    int armed;                 /* events the native poll is started with */
    int nwatchers;             /* io watchers attached (alive, not closed) */
    int dirty;
    FdPoll *next_dirty;
    dev_t dev;
    ino_t ino;
    /* loop.closing_fd() woke watchers on this fd: until the fd is closed
     * or names another file, or two iterations pass, new io watchers on it
     * raise EBADF (the close is deferred to a callback; see io.c) */
    int closing;
    int always_ready;          /* epoll refused the fd (EPERM): no native poll */
    unsigned long closing_iter;
    dev_t closing_dev;
    ino_t closing_ino;
    struct IoObject *first;    /* attached io watchers */
};

typedef struct IoObject {
    WatcherObject base;
    FdPoll *fdp;               /* NULL when detached */
    struct IoObject *next_on_fd;
    int fd;
    int events;
    int revents;
    int pass_events;
} IoObject;

typedef struct {
    WatcherObject base;
    int signum;
    unsigned long seen;        /* delivery count already reported */
} SignalObject;

typedef struct {
    WatcherObject base;
    long pid;
    int trace;
    long rpid;
    int rstatus;
} ChildObject;

typedef struct {
    WatcherObject base;
    int async_pending;
} AsyncObject;

typedef struct {
    WatcherObject base;
    PyObject *path;            /* as given: str, bytes or PathLike */
    PyObject *fspath;          /* bytes */
    double interval;
    uv_stat_t attr, prev;
    int has_attr, has_prev;
    uv_stat_t next;            /* a change seen by the timer, not yet dispatched */
    int has_next, changed;
} StatObject;

/* ---- Waiter / Hub ---------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    PyObject *hub;
    PyObject *greenlet;        /* the greenlet blocked in get(), or NULL */
    PyObject *value;
    PyObject *exc_info;        /* tuple of throw() args, or NULL */
    int has_result;
    int handoff;               /* switch() left its value in `value` for get() */
} WaiterObject;

typedef struct {
    PyGreenlet base;
    PyObject *loop;
    PyObject *resolver;
    PyObject *threadpool;
    PyObject *exception_stream;  /* NULL: sys.stderr at the time of reading */
    int in_run;                  /* inside Hub.run's C body: started and not dead */
} HubObject;

/* defined in _hub.c: the interpreter's main thread */
static unsigned long main_thread_ident(void);

#endif /* GEVENT_C_H */
