/*
 * gevent_c.h -- the one internal header of gevent_c.
 *
 * Each .c file of src/ is its own translation unit (linked with LTO).  This header
 * is the interface between them: the structs they share, and at its end the
 * prototypes of every function (and the externs of the data) that another
 * file uses, by defining file.  Everything else is static in its file.
 *
 * Ownership rules (see docs/design.md for the full map):
 *   - A loop owns its queued callbacks (one reference each) and the events
 *     recorded by libuv's C callbacks until they are dispatched.
 *   - A watcher owns a strong reference to its loop, and to itself while it
 *     is active (self_ref).  Its libuv handle is malloc'd apart from the
 *     Python object and freed only in the close callback.
 *   - handle->data points (borrowed) at the watcher; it is NULLed before the
 *     handle is closed, so libuv never calls back into a dead object.
 *   - Re-entrancy: no user object is released and no Python is called
 *     while C holds a pointer into loop, watcher or hub state that the
 *     Python could invalidate; such releases go to the loop's release list
 *     (loop_defer_release), dropped at safe points (loop_release_drain),
 *     and what C uses after a call out is re-validated.  Nothing Python
 *     inside uv_walk: collect first, then call.
 */
#ifndef GEVENT_C_H
#define GEVENT_C_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <uv.h>
/* greenlet.h defines its C-API table `static void **_PyGreenlet_API`, one
 * per translation unit, and its macros (PyGreenlet_Switch, PyGreenlet_Type,
 * PyGreenlet_Import...) name that table when they are used.  So that the
 * extension's files share one table, filled once by PyGreenlet_Import() in
 * the module's exec (_hub.c), the name is redefined after the include: the
 * macros then read gevc_greenlet_api, and greenlet.h's own static is unused. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-variable"
#include "greenlet.h"
#pragma GCC diagnostic pop
extern void **gevc_greenlet_api;
#define _PyGreenlet_API gevc_greenlet_api
#include <signal.h>
#include <sys/types.h>
#include "compat.h"

typedef struct LoopObject LoopObject;
typedef struct FdPoll FdPoll;
typedef struct WatcherObject WatcherObject;
typedef struct CallbackObject CallbackObject;
/* an entry of a loop's timer heap (timer.c): the deadline is kept beside
 * the pointer so that sifting reads no timer object */
typedef struct { uint64_t at; WatcherObject *w; } PrecEntry;
typedef struct PrecDriver PrecDriver;

/* ---- module state (PEP 489/573) --------------------------------------- */

/* Everything of gevent_c._hub that is a Python object lives here, owned by
 * the module: its types (heap types made from specs), the exception
 * classes, interned strings.  Objects reach it through a pointer cached at
 * creation (each holds its type, which holds the module), or through
 *gevc_state_by_type(), which works for subclasses too.  The module refuses
 * to load in a subinterpreter (greenlet keeps process-wide state). */
typedef struct gevc_state {
    PyTypeObject *HubType;     /* HubCore; its base, greenlet, set at run time */
    PyTypeObject *GuardType, *WaiterType, *LoopType, *CallbackType, *WatcherType;
    PyTypeObject *TimerType, *IoType, *SignalType, *ChildType, *IdleType, *CheckType;
    PyTypeObject *PrepareType, *ForkType, *AsyncType, *StatType, *PoolType;
    PyObject *LoopExit, *BlockingSwitchOutError, *InvalidSwitchError, *HubDestroyed;
    PyObject *ConcurrentObjectUseError, *InvalidThreadUseError;
    PyObject *threadlocal;         /* gevent_c._hub_local._threadlocal */
    PyObject *default_hub_class;   /* set_default_hub_class(): gevent_c.hub.Hub */
    PyObject *str_tls_hub, *str_tls_guard, *str_tls_loop, *str_switch_out;
    PyObject *str_Hub, *str_loop, *str_kill, *str_handle_error, *str_thread_ident;
    PyObject *EVENTS_sentinel;     /* gevent_c.core.EVENTS, set on io's first use */
    PyTypeObject *HandleStateType; /* loop.debug()'s struct sequence, made on first use */
} gevc_state;


#define GEVC_NOINLINE __attribute__((noinline))
/* what spawn_raw makes sure malloc can give before greenlet allocates */
#define GEVC_GREENLET_ALLOC_PROBE 4096
/* the usual hub is an instance of gevent_c.hub.Hub exactly: no MRO walk */
#define IS_HUB(gst, o) (Py_TYPE(o) == (PyTypeObject *)(gst)->default_hub_class \
                        || PyObject_TypeCheck((o), (gst)->HubType))
#define IS_LOOP(gst, o) PyObject_TypeCheck((o), (gst)->LoopType)
/* the thread state dict's key for the thread's hub */
#define GEVC_TLS_HUB_KEY "gevent_c.hub"

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

typedef struct PoolObject PoolObject;
typedef struct {
    PoolObject **items;
    Py_ssize_t n, cap;
} PoolList;

struct LoopObject {
    PyObject_HEAD
    gevc_state *gst;           /* the module's state (borrowed via the type) */
    uv_loop_t *uv;             /* NULL once destroyed */
    int is_default;
    PyObject *error_handler;
    /* run_callback FIFO: the loop owns one reference per queued callback */
    CallbackObject *cb_head, *cb_tail;
    CallbackObject *cb_spare;  /* ran, kept for reuse (owned, untracked) */
    int n_cb_spare;
    Py_ssize_t ncallbacks;     /* queued and not stopped */
    /* events recorded by libuv C callbacks, dispatched after uv_run */
    WatcherObject **pend;
    Py_ssize_t npend, pend_cap;
    /* the batch being dispatched is swapped out, so events recorded while
     * it runs (closing_fd, reinit) go to a fresh array */
    WatcherObject **spare;
    Py_ssize_t spare_cap;
    /* the batch being dispatched (NULL between batches) and the index of
     * the event being dispatched: a greenlet that switches to the hub takes
     * the next event itself when it resumes a waiting greenlet (handoff) */
    WatcherObject **disp_items;
    Py_ssize_t disp_i, disp_n;
    PyObject *handoff_last;    /* the greenlet last handed off to (owned) */
    int disp_prev_timer;       /* the batch's last event dispatched or taken was a timer */
    /* due-now timers: fired after the next poll, as libev does (owned) */
    WatcherObject **ap_items;
    Py_ssize_t ap_n, ap_cap;
    /* active one-shot timers: a 4-ary min-heap by (deadline, seq) whose
     * entries carry the deadline (borrowed pointers: they are active); the
     * poll waits for the first one with ns precision, or, when it is far,
     * one libuv timer (prec_drv) brings it close (timer.c) */
    PrecEntry *prec;
    Py_ssize_t nprec, prec_cap;
    uint64_t prec_seq;         /* start order, for ties */
    int prec_early;            /* the driver woke the poll before the first deadline */
    PrecDriver *prec_drv;      /* NULL until a first deadline is far */
    uint64_t prec_drv_due;     /* the driver's due time, libuv ms */
    Py_ssize_t nactive_ref;    /* active watchers whose ref is true */
    Py_ssize_t user_ref;       /* loop.ref()/unref() balance */
    Py_ssize_t depth;
    unsigned long run_ident;   /* the thread in run() while depth > 0 */
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
    PoolList pools;            /* thread pools posting to this loop (poolreg.c) */
    WatcherList asyncs;        /* every async_ watcher, active or not */
    uv_async_t *wake_async;    /* run_callback_threadsafe and signal delivery */
    uv_prepare_t *keepalive;   /* keeps uv_run(ONCE) blocking; see loop_uv.c */
    int sig_slot;              /* index in the process-wide signal registry */
    int uv_pinned;             /* a signal handler may still use wake_async:
                                  never free it or the native loop */
    long fork_gen;             /* fork_generation when created / last reinit */
    long native_fork_gen;      /* ... when libuv's kernel state was last made */
    int check_children;
    /* re-entrancy (docs/design.md): references C drops while it holds
     * pointers into the loop's, a watcher's or a hub's native state are
     * moved here and dropped at a safe point (loop_release_drain) */
    PyObject **rel_items;
    Py_ssize_t rel_n, rel_cap;
    int destroying;            /* inside loop_destroy_impl: no re-entry */
    PyObject *weakreflist;
};

/* ---- watchers -------------------------------------------------------- */

/* watcher priorities, libev's range (core.MAXPRI/MINPRI, loop.MAXPRI/MINPRI) */
#define GEVC_MAXPRI 2
#define GEVC_MINPRI (-2)

/* a requested priority clamped to [GEVC_MINPRI, GEVC_MAXPRI] */
static inline int
gevc_clamp_priority(long p)
{
    return p < GEVC_MINPRI ? GEVC_MINPRI : p > GEVC_MAXPRI ? GEVC_MAXPRI : (int)p;
}

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
    unsigned long direct_ident; /* the thread of the direct_switch greenlet */
};

typedef struct {
    WatcherObject base;
    double after;
    double repeat;
    uint64_t deadline;         /* one-shot: uv_hrtime() ns it may fire at, or 0 */
    uint64_t after_ns;         /* `after` in ns, rounded up (one-shot) */
    uint64_t seq;              /* its loop's prec_seq when it was (re)started */
    Py_ssize_t prec_idx;       /* index in its loop's timer heap, or -1 */
    int on_uv;                 /* its libuv timer is started (repeating, far, or
                                  the heap out of memory) */
    int start_no_update;       /* set by start()/again(update=False) around
                                  native_start: count from the loop's cached time */
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
    /* the last active watcher stopped: our own EPOLL_CTL_DEL took the fd
     * out of epoll while libuv's poll stays started with `armed` (fdpoll.c) */
    int parked;
    /* a watcher just given its fd started here while the poll was armed:
     * the flush makes sure the file the fd names now is in epoll (fdpoll.c) */
    int recheck;
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
    int drained;               /* recv_into's last receive emptied the fd */
    int killed;                /* epoll refused the fd: stopped at its dispatch */
    int fd_fresh;              /* fd given (io(), the fd setter), not started since */
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

/* defined in watcher.c: the one way a watcher leaves a loop being destroyed
 * (native stop, process-wide resources given back, self reference moved to
 * the loop's release list) */

/* ---- Waiter / Hub ---------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    gevc_state *gst;
    PyObject *hub;
    PyObject *greenlet;        /* the greenlet blocked in get(), or NULL */
    PyObject *value;
    PyObject *exc_info;        /* tuple of throw() args, or NULL */
    int has_result;
    int handoff;               /* switch() left its value in `value` for get() */
} WaiterObject;

/* HubCore: the compiled part of the hub greenlet; gevent_c.hub.Hub adds
 * the policy in Python (its attributes live in the greenlet's dict). */
typedef struct {
    PyGreenlet base;
    gevc_state *gst;
    PyObject *loop;
    int in_run;                  /* inside Hub.run's C body: started and not dead */
} HubObject;


/* fdpoll.c: the loop's fd-poll table (one native poll per fd) */
#define IO(w) ((IoObject *)(w))
#define IO_MASK (UV_READABLE | UV_WRITABLE)

/* threadpool.c and poolreg.c: the pools and the loop's registry of them */
typedef struct PoolState PoolState;
#define SPIN_MAX_POOLS 8
#include "threadpool.h"


/* ---- functions shared between files, by the file that defines them ---- */

/* _hub.c */
int is_hub_destroyed(gevc_state *gst, PyObject *type);
PyObject *get_hub_impl(gevc_state *gst);
PyObject *hub_switch_impl(gevc_state *gst, PyObject *hub);
unsigned long main_thread_ident(void);
PyObject *hub_wait_impl(gevc_state *gst, PyObject *hub, PyObject *watcher);
PyObject *hub_loop_of(gevc_state *gst, PyObject *hub);
gevc_state *gevc_state_by_type(PyTypeObject *tp);

/* loop_uv.c */
void gevc_atfork_child(void);
void free_handle_cb(uv_handle_t *h);
PyObject *call_method1(PyObject *obj, const char *name, PyObject *arg);
PyObject *gevc_uv_error(int err);
int loop_check_alive(LoopObject *self);
void loop_defer_release(LoopObject *loop, PyObject *o);
void loop_release_drain(LoopObject *loop);
int gevc_thread_alive(unsigned long ident);
void loop_record(WatcherObject *w);
int loop_report_call_error(LoopObject *loop, PyObject *callback, int switch_ctx, PyObject *dflt);
PyObject *callback_stop(CallbackObject *self, PyObject *Py_UNUSED(ignored));
CallbackObject *loop_queue_callback(LoopObject *self, PyObject *callback, PyObject *args, int kind);
int loop_reserve_callbacks(LoopObject *loop, Py_ssize_t n);
int loop_fire_soon(WatcherObject *w);
int loop_after_poll_reserve(LoopObject *loop);
int loop_fire_after_poll(WatcherObject *w);
WatcherObject *loop_take_handoff(LoopObject *self, PyObject *cur);
PyObject *loop_handoff(LoopObject *self, WatcherObject *w);
int loop_forked_away(LoopObject *self);
int loop_destroy_impl(LoopObject *self);
int loop_check_signals(LoopObject *self);
void loop_orphan_handle(LoopObject *self, uv_handle_t *h);
int loop_check_own_thread(LoopObject *self);
int loop_run_impl(LoopObject *self, int nowait, int once);
PyObject **loop_collect_watchers(LoopObject *loop, Py_ssize_t *n);

/* watcher.c */
int watcher_check_usable(WatcherObject *w);
int watcher_init_common(WatcherObject *w, LoopObject *loop, const WatcherOps *ops, PyObject *ref, PyObject *priority);
void watcher_release(WatcherObject *w, PyObject *o);
void watcher_setref(WatcherObject *w, PyObject **slot, PyObject *value);
LoopObject *watcher_op_begin(WatcherObject *w);
void watcher_op_end(LoopObject *loop);
void watcher_attach_handle(WatcherObject *w, uv_handle_t *h);
void watcher_deactivate(WatcherObject *w);
void watcher_stop_impl(WatcherObject *w);
void watcher_close_uv_handle(WatcherObject *w);
void watcher_close_impl(WatcherObject *w);
void watcher_detach(WatcherObject *w);
int check_callable(PyObject *cb);
void watcher_activate(WatcherObject *w);
int watcher_start_impl(WatcherObject *w, PyObject *callback, PyObject *args);
PyObject *watcher_start_from_args(WatcherObject *w, PyObject *args);
int parse_flag_kw(PyObject *kwds, const char *name, int dflt, int *out);
PyObject *watcher_stop(WatcherObject *w, PyObject *Py_UNUSED(ignored));
int watcher_dispatch(WatcherObject *w);
int watcher_traverse(WatcherObject *w, visitproc visit, void *arg);
int watcher_tp_clear(WatcherObject *w);
void watcher_dealloc_body(WatcherObject *w);
int wlist_add(WatcherList *l, WatcherObject *w);
void wlist_remove(WatcherList *l, WatcherObject *w);
int wlist_contains(WatcherList *l, WatcherObject *w);
void wlist_record_all(WatcherList *l);
int wlist_fire_all(WatcherList *l);
void wlist_detach_all(WatcherList *l);
void soft_native_close(WatcherObject *w);
PyObject *loop_make_watcher(PyTypeObject *type, LoopObject *loop, PyObject *args, PyObject *kwds);

/* timer.c */
void loop_prec_collect(LoopObject *loop);
void loop_prec_close_driver(LoopObject *loop);
int64_t loop_prec_wait_ns(LoopObject *loop);
void loop_prec_free(LoopObject *loop);
int timer_native_start(WatcherObject *w);
TimerObject *gevc_timer_new(LoopObject *loop, double after, double repeat, int ref);
PyObject *timer_new_from_loop(LoopObject *loop, PyObject *args, PyObject *kwds);

/* fdpoll.c */
int fd_check_open(int fd);
int fdpoll_validate(FdPoll *p);
FdPoll *loop_get_fdpoll(LoopObject *loop, int fd);
void fdpoll_mark_dirty(FdPoll *p);
void fdpoll_stop_native(FdPoll *p);
void loop_flush_polls(LoopObject *loop);
int fdpoll_refuse_closing(LoopObject *loop, int fd);
PyObject *loop_closing_fd(LoopObject *loop, PyObject *fd_o);
void loop_drop_fdpolls(LoopObject *loop);

/* io.c */
PyObject *io_new_from_loop(LoopObject *loop, PyObject *args, PyObject *kwds);

/* sigreg.c */
int sig_acquire(int signum, int take);
void sig_release(int signum, int take);
int loop_register_signals(LoopObject *loop);
void loop_unregister_signals(LoopObject *loop);
void loop_scan_signals(LoopObject *loop);
PyObject *loop_install_sigchld(LoopObject *loop, PyObject *Py_UNUSED(ignored));
PyObject *loop_reset_sigchld(LoopObject *loop, PyObject *Py_UNUSED(ignored));
int loop_signals_undelivered(LoopObject *loop);
void loop_watch_python_signals(LoopObject *loop);
void loop_unwatch_python_signals(LoopObject *loop);

/* signal.c */
PyObject *signal_new_from_loop(LoopObject *loop, PyObject *args, PyObject *kwds);
PyObject *child_new_from_loop(LoopObject *loop, PyObject *args, PyObject *kwds);

/* stat.c */
PyObject *stat_new_from_loop(LoopObject *loop, PyObject *args, PyObject *kwds);

/* waiter.c */
WaiterObject *waiter_create(gevc_state *gst, PyObject *hub);
PyObject *waiter_switch_impl(PyObject *op, PyObject *value);
PyObject *waiter_get_impl(WaiterObject *self);
PyObject *waiter_vectorcall(PyObject *type, PyObject *const *args, size_t nargsf, PyObject *kwnames);
PyObject *call_callback(PyObject *callback, PyObject *args);
PyObject *waiter_bound_switch(WaiterObject *self);

/* threadpool.c */
void state_decref(PoolState *st);
int pool_after_fork(PoolObject *self);
void pool_detach_async(PoolObject *self);

/* poolreg.c */
int loop_pools_after_fork(LoopObject *loop);
int loop_register_pool(LoopObject *loop, PoolObject *pool);
void loop_unregister_pool(LoopObject *loop, PoolObject *pool);
void loop_pools_set_blocked(LoopObject *loop, int blocked);
int loop_pools_outstanding(LoopObject *loop);
int loop_pools_pin_busy(LoopObject *loop, PoolState **out);
void pools_spin(PoolState **sts, int n);
void pools_unpin(PoolState **sts, int n);
void loop_detach_pools(LoopObject *loop);

/* misc_watchers.c: the small watcher types' factories (FACTORY there) */
PyObject *idle_new_from_loop(LoopObject *loop, PyObject *args, PyObject *kwds);
PyObject *check_new_from_loop(LoopObject *loop, PyObject *args, PyObject *kwds);
PyObject *prepare_new_from_loop(LoopObject *loop, PyObject *args, PyObject *kwds);
PyObject *fork_new_from_loop(LoopObject *loop, PyObject *args, PyObject *kwds);
PyObject *async_new_from_loop(LoopObject *loop, PyObject *args, PyObject *kwds);

/* ---- data shared between files ------------------------------------------ */

/* the type specs, each in its type's file; _hub.c's module exec makes the types */
extern PyType_Spec waiter_spec, loop_spec, callback_spec, watcher_spec, timer_spec, io_spec;
extern PyType_Spec signal_spec, child_spec, idle_spec, prepare_spec, check_spec, fork_spec;
extern PyType_Spec async_spec, stat_spec, pool_spec;
/* the watcher operations that another file names (io.c, timer.c) */
extern const WatcherOps io_ops, timer_ops;
/* loop_uv.c: bumped in the child at fork (pthread_atfork): process-wide by nature */
extern volatile long fork_generation;
/* sigreg.c: deliveries per signal, counted by the C handler (async-signal-safe) */
extern volatile unsigned long sig_counts[NSIG];

#endif /* GEVENT_C_H */
