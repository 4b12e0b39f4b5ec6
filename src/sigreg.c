/*
 * sigreg.c -- the process-wide signal registry behind signal and child
 * watchers (signal.c).  Its interface (gevent_c.h): sig_acquire and
 * sig_release (a signal's C handler is installed while any loop has a
 * watcher on it, and the previous action restored exactly), loop slots for
 * wake-ups (loop_register_signals/loop_unregister_signals),
 * loop_scan_signals (record the watchers whose signal was delivered) and
 * the SIGCHLD hooks.
 *
 * libuv's uv_signal replaces the process-wide disposition and resets it to
 * SIG_DFL when its last handle stops, discarding Python's handler.  So
 * signal watchers use this small mechanism instead:
 *   - the first active watcher for a signal installs a C handler with
 *     sigaction(), saving the previous action; the last one to stop
 *     restores it exactly;
 *   - the handler counts the delivery and wakes every loop that has signal
 *     watchers with uv_async_send (async-signal-safe);
 *   - while a signal watcher is active on a signal, the signal is the
 *     watchers' alone, as on libev: the previous handler (Python's) does
 *     not run.  Otherwise (child watchers on SIGCHLD, and the main loop's
 *     wake-up for Python-level handlers below) the handler chains to the
 *     previous one;
 *   - each loop, on wake-up, records the watchers whose signal count moved.
 * child watchers ride on the same mechanism with SIGCHLD and reap with
 * waitpid(WNOHANG).
 *
 * The main thread's default loop also installs the handler, chaining, on
 * every signal that has a Python-level handler when the loop is created
 * (SIGINT's default_int_handler at least): such a signal then wakes the
 * loop through its async even when another library holds Python's
 * wake-up fd (loop_watch_python_signals).
 */
#include "gevent_c.h"
#include <signal.h>
#include <errno.h>
#include <sys/wait.h>
#include <sched.h>


#define MAX_SIG_LOOPS 64

volatile unsigned long sig_counts[NSIG];
static int sig_users[NSIG];    /* active watchers, all loops */
static int sig_takers[NSIG];   /* active signal watchers: no chaining while > 0 */
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
    /* with no signal watcher on it, chain to the previous action (as
     * CPython's handler would have run).  SIG_DFL and SIG_IGN are not
     * functions (a watched signal does not terminate, as in libev). */
    const struct sigaction *old = __atomic_load_n(&sig_prev[signum], __ATOMIC_SEQ_CST);
    if (old != NULL && __atomic_load_n(&sig_takers[signum], __ATOMIC_SEQ_CST) == 0) {
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

/* Signals whose Python-level handler wakes the main loop through the
 * registry (loop_watch_python_signals), and that loop. */
static LoopObject *pywake_loop;
static unsigned char pywake[NSIG];

/* Is the action ours replaced a handler function (not SIG_DFL/SIG_IGN)? */
static int
sig_prev_is_function(int signum)
{
    const struct sigaction *old = sig_prev[signum];
    if (old == NULL)
        return 0;
    if (old->sa_flags & SA_SIGINFO)
        return old->sa_sigaction != NULL;
    return old->sa_handler != SIG_DFL && old->sa_handler != SIG_IGN && old->sa_handler != NULL;
}

/* Give the disposition back, but only if ours is still installed: whoever
 * replaced it since (signal.signal()) keeps theirs. */
static void
sig_restore(int signum)
{
    struct sigaction cur;
    if (sig_prev[signum] != NULL && sigaction(signum, NULL, &cur) == 0 && is_our_action(&cur))
        sigaction(signum, sig_prev[signum], NULL);
}

/* One more watcher on signum; `take`: a signal watcher, which takes the
 * signal over (Python's handler stops running) until the last one stops.
 * The handler is (re)installed even when the signal already has users:
 * signal.signal() may have replaced it meanwhile; a new watcher puts it
 * back, and the action it replaced is the one given back at the end. */
int
sig_acquire(int signum, int take)
{
    if (sig_install(signum) < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    sig_users[signum]++;
    if (take)
        __atomic_add_fetch(&sig_takers[signum], 1, __ATOMIC_SEQ_CST);
    return 0;
}

void
sig_release(int signum, int take)
{
    if (take && __atomic_load_n(&sig_takers[signum], __ATOMIC_SEQ_CST) > 0)
        __atomic_sub_fetch(&sig_takers[signum], 1, __ATOMIC_SEQ_CST);
    if (--sig_users[signum] > 0)
        return;
    sig_users[signum] = 0;
    __atomic_store_n(&sig_takers[signum], 0, __ATOMIC_SEQ_CST);
    /* still waking the main loop for a Python handler: ours stays, and
     * chains to it.  If what it replaced is no handler (signal.signal()
     * set SIG_DFL or SIG_IGN before a watcher came), there is nothing left
     * to wake for: that disposition comes back. */
    if (pywake[signum] && sig_prev_is_function(signum))
        return;
    pywake[signum] = 0;
    sig_restore(signum);
}

/* The loop's wake-up async: drains signal deliveries. */

int
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
void
loop_unregister_signals(LoopObject *loop)
{
    if (loop->sig_slot >= 0 && loop->signals.n == 0 && loop->children.n == 0
            && pywake_loop != loop) {
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
void
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
PyObject *
loop_install_sigchld(LoopObject *loop, PyObject *Py_UNUSED(ignored))
{
    if (sig_users[SIGCHLD] > 0)
        sig_install(SIGCHLD);  /* no-op while ours is installed */
    Py_RETURN_NONE;
}

/* loop.reset_sigchld(): nothing to undo; the last child watcher to stop
 * restores the previous SIGCHLD action. */
PyObject *
loop_reset_sigchld(LoopObject *loop, PyObject *Py_UNUSED(ignored))
{
    Py_RETURN_NONE;
}

/* Start delivering signum to w through `list` (the loop's signal or child
 * watchers).  1 if it already was, 0 if it is now, -1 on error. */
/* loop.sig_pending: has a signal this loop watches (its signal watchers',
 * SIGCHLD for its child watchers) been delivered and not yet scanned? */
int
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

/* Python-level handlers wake the main thread's default loop through
 * Python's wake-up fd, which the loop takes when it is free.  Another
 * library (asyncio, Qt...) may hold it already, or take it later: then
 * nothing would wake the loop, and Ctrl-C would wait for whatever wakes it
 * next.  So for every signal with a Python-level handler now, the registry
 * handler goes in front of CPython's: it chains to it (Python's handler
 * runs as before, writing to whoever's wake-up fd) and wakes the loop
 * through its async; the loop then runs PyErr_CheckSignals.  A handler set
 * later with signal.signal() replaces ours and is woken by the wake-up fd
 * only.  Called with the GIL on the main thread; errors are not fatal
 * (the wake-up fd still serves). */
void
loop_watch_python_signals(LoopObject *loop)
{
    if (pywake_loop != NULL)
        return;
    PyObject *mod = PyImport_ImportModule("signal");
    PyObject *getsignal = mod ? PyObject_GetAttrString(mod, "getsignal") : NULL;
    Py_XDECREF(mod);
    if (getsignal == NULL || loop_register_signals(loop) < 0) {
        Py_XDECREF(getsignal);
        PyErr_Clear();
        return;
    }
    pywake_loop = loop;
    int any = 0;
    for (int n = 1; n < NSIG; n++) {
        if (n == SIGKILL || n == SIGSTOP)
            continue;
        PyObject *h = PyObject_CallFunction(getsignal, "i", n);
        if (h == NULL) {
            PyErr_Clear();  /* not a signal Python knows */
            continue;
        }
        /* SIG_DFL and SIG_IGN are ints, None: not installed from Python */
        int python = h != Py_None && !PyLong_Check(h) && PyCallable_Check(h);
        Py_DECREF(h);
        if (python && sig_install(n) == 0) {
            pywake[n] = 1;
            any = 1;
        }
    }
    Py_DECREF(getsignal);
    if (!any) {
        pywake_loop = NULL;
        loop_unregister_signals(loop);
    }
}

/* The loop is going away: give those signals back (to Python's handler,
 * unless something replaced ours meanwhile). */
void
loop_unwatch_python_signals(LoopObject *loop)
{
    if (pywake_loop != loop)
        return;
    for (int n = 1; n < NSIG; n++)
        if (pywake[n]) {
            pywake[n] = 0;
            if (sig_users[n] == 0)
                sig_restore(n);
        }
    pywake_loop = NULL;
    loop_unregister_signals(loop);
}
