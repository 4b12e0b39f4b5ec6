/*
 * poolreg.c -- the loop's registry of the thread pools that post to it
 * (threadpool.c), so the loop can tell them it blocks (their workers spin
 * briefly before waking it), pin their states around a poll, restart them
 * in a forked child and cut them off when it is destroyed.  Its interface
 * is declared in gevent_c.h.
 */
#include "gevent_c.h"

static int
poollist_add(PoolList *l, PoolObject *pool)
{
    if (l->n == l->cap) {
        Py_ssize_t cap = l->cap ? l->cap * 2 : 4;
        PoolObject **items = PyMem_Realloc(l->items, (size_t)cap * sizeof(*items));
        if (items == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        l->items = items;
        l->cap = cap;
    }
    l->items[l->n++] = pool;
    return 0;
}

static void
poollist_remove(PoolList *l, PoolObject *pool)
{
    for (Py_ssize_t i = 0; i < l->n; i++)
        if (l->items[i] == pool) {
            l->items[i] = l->items[--l->n];
            return;
        }
}

/* The loop reinitialised in a forked child (explicitly or by its next
 * run): pools whose workers were the parent's start afresh, so their
 * in-flight tasks stop keeping the loop alive and join() returns. */
int
loop_pools_after_fork(LoopObject *loop)
{
    if (loop->pools.n == 0)
        return 0;
    PyObject *pools = PyList_New(0);
    if (pools == NULL)
        return -1;
    for (Py_ssize_t i = 0; i < loop->pools.n; i++)
        if (PyList_Append(pools, (PyObject *)loop->pools.items[i]) < 0) {
            Py_DECREF(pools);
            return -1;
        }
    int rc = 0;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(pools); i++) {
        PoolObject *pool = (PoolObject *)PyList_GET_ITEM(pools, i);
        if (pool->st && pool->fork_gen != fork_generation && pool_after_fork(pool) < 0)
            rc = -1;
    }
    Py_DECREF(pools);
    return rc;
}

int
loop_register_pool(LoopObject *loop, PoolObject *pool)
{
    return poollist_add(&loop->pools, pool);
}

void
loop_unregister_pool(LoopObject *loop, PoolObject *pool)
{
    poollist_remove(&loop->pools, pool);
}

/* Set hub_blocked on every pool of the loop (GIL held). */
void
loop_pools_set_blocked(LoopObject *loop, int blocked)
{
    for (Py_ssize_t i = 0; i < loop->pools.n; i++) {
        PoolObject *pool = loop->pools.items[i];
        if (pool->st && pool->fork_gen == fork_generation)
            __atomic_store_n(&pool->st->hub_blocked, blocked, __ATOMIC_RELEASE);
    }
}

/* Whether any pool of the loop has tasks outstanding (GIL held): then the
 * loop releases the GIL at every poll, so a worker gets it promptly. */
int
loop_pools_outstanding(LoopObject *loop)
{
    for (Py_ssize_t i = 0; i < loop->pools.n; i++) {
        PoolObject *pool = loop->pools.items[i];
        if (pool->st != NULL && pool->outstanding > 0)
            return 1;
    }
    return 0;
}

/* Before blocking in epoll while pool tasks are outstanding: wait briefly,
 * without the GIL, for a result, so a short task's completion costs no
 * sleep and wake-up of the hub's thread (measured: an apply() round trip
 * went from ~35 us and 2 context switches to ~5 us and none).  The pool
 * states are pinned first (GIL held): the pools may go away meanwhile. */
int
loop_pools_pin_busy(LoopObject *loop, PoolState **out)
{
    int n = 0;
    for (Py_ssize_t i = 0; i < loop->pools.n && n < SPIN_MAX_POOLS; i++) {
        PoolObject *pool = loop->pools.items[i];
        if (pool->st == NULL || pool->outstanding <= 0 || pool->fork_gen != fork_generation)
            continue;
        pthread_mutex_lock(&pool->st->mu);
        pool->st->refs++;
        pthread_mutex_unlock(&pool->st->mu);
        out[n++] = pool->st;
    }
    return n;
}

void
pools_spin(PoolState **sts, int n)
{
    uint64_t until = uv_hrtime() + HUB_SPIN_NS;
    do {
        for (int i = 0; i < n; i++)
            if (__atomic_load_n(&sts[i]->done_head, __ATOMIC_ACQUIRE) != NULL)
                return;
        sched_yield();
    } while (uv_hrtime() < until);
}

void
pools_unpin(PoolState **sts, int n)
{
    for (int i = 0; i < n; i++)
        state_decref(sts[i]);
}

void
loop_detach_pools(LoopObject *loop)
{
    for (Py_ssize_t i = 0; i < loop->pools.n; i++) {
        PoolObject *pool = loop->pools.items[i];
        pool_detach_async(pool);
        pool->loop = NULL;
    }
    PyMem_Free(loop->pools.items);
    loop->pools.items = NULL;
    loop->pools.n = loop->pools.cap = 0;
}
