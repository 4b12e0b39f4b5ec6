/*
 * threadpool.h -- the thread pool's shared structures: the native state
 * its workers and the hub share (PoolState), the pool object (PoolObject), and
 * the spin constants; used by threadpool.c and the loop's registry of pools
 * (poolreg.c).  Included by gevent_c.h.
 */
#ifndef GEVENT_C_THREADPOOL_H
#define GEVENT_C_THREADPOOL_H

#include <pthread.h>

typedef struct Task {
    struct Task *next;
    PyObject *func, *args, *kwargs;
    PyObject *result;          /* the AsyncResult */
    PyObject *expected;        /* apply_e: errors not reported, or NULL */
    PyObject *value;
    PyObject *exc_t, *exc_v, *exc_tb;
    unsigned long worker;
} Task;

struct PoolState {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    Task *q_head, *q_tail;
    Py_ssize_t qlen;
    Task *done_head, *done_tail;
    int nthreads;              /* running worker threads */
    int nidle;                 /* of which waiting for a task */
    int nstarting;             /* of which not yet waiting for the first time */
    int target;                /* workers above this exit */
    double idle_timeout;       /* seconds; < 0: never */
    uv_async_t *async;         /* NULL: results are dropped */
    int refs;                  /* the pool object + each worker */
    int hub_blocked;           /* the hub's thread polls without the GIL */
};

struct PoolObject {
    PyObject_HEAD
    gevc_state *gst;
    PyObject *hub;
    PyObject *async_w;         /* the async watcher (AsyncObject) */
    PyObject *result_class;
    PyObject *slot_waiters;    /* list of callables: wake when a slot frees */
    PyObject *join_waiters;    /* list of callables: wake when idle */
    PyObject *dict;
    PyObject *weakreflist;
    PoolState *st;
    LoopObject *loop;          /* borrowed through async_w */
    Py_ssize_t maxsize;
    Py_ssize_t outstanding;    /* spawned, result not yet delivered */
    unsigned long hub_ident;
    long fork_gen;
};


#define GIL_WAIT_NS 100000
#define IDLE_SPIN_NS 50000
#define HUB_SPIN_NS 50000
#if defined(__x86_64__) || defined(__i386__)
#define cpu_relax() __builtin_ia32_pause()
#else
#define cpu_relax() ((void)0)
#endif

#endif /* GEVENT_C_THREADPOOL_H */
