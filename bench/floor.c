/* The floors of the hub benchmarks, in plain C: the extension module `_bench_floor`, built by
 * bench/floors.py and driven by the floor_io and floor_hub cases of bench/cases.py.
 *
 * io_pingpong(n): n one-byte round trips over a socketpair between two libuv polls that stay
 *   armed the whole time (no start/stop per wait), with no Python and no greenlet: what an io
 *   round trip costs in libuv plus its six system calls (2 epoll_wait, 2 send, 2 recv).
 *
 * sleep0(): the smallest hub that does gevent's sleep(0) on libuv through greenlet's C API.  A
 *   hub greenlet whose run function is C pops a FIFO of greenlets and switches to each one; the
 *   caller appends itself to the FIFO and switches to the hub.  When the FIFO is empty the hub
 *   makes one uv_run(UV_RUN_NOWAIT) pass.  Driven from a Python loop, one call is the floor of a
 *   `sleep(0)` for a hub whose dispatch costs nothing.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <greenlet.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

/* --- io ping-pong ------------------------------------------------------------------------ */

typedef struct {
    uv_poll_t poll;
    int fd;
    long left;           /* round trips still to start (side a) */
    int is_a;
    int failed;
} side_t;

static void on_readable(uv_poll_t *h, int status, int events)
{
    side_t *s = (side_t *)h->data;
    char c;
    if (status < 0 || recv(s->fd, &c, 1, 0) != 1) {
        s->failed = 1;
        uv_stop(h->loop);
        return;
    }
    if (s->is_a) {
        if (--s->left <= 0) {
            uv_stop(h->loop);
            return;
        }
    }
    if (send(s->fd, &c, 1, 0) != 1) {
        s->failed = 1;
        uv_stop(h->loop);
    }
}

static PyObject *io_pingpong(PyObject *mod, PyObject *arg)
{
    long n = PyLong_AsLong(arg);
    if (n == -1 && PyErr_Occurred())
        return NULL;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) < 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    uv_loop_t loop;
    uv_loop_init(&loop);
    side_t a = {.fd = sv[0], .left = n, .is_a = 1}, b = {.fd = sv[1]};
    uv_poll_init(&loop, &a.poll, a.fd);
    uv_poll_init(&loop, &b.poll, b.fd);
    a.poll.data = &a;
    b.poll.data = &b;
    uv_poll_start(&a.poll, UV_READABLE, on_readable);
    uv_poll_start(&b.poll, UV_READABLE, on_readable);
    int failed = n > 0 && send(a.fd, "x", 1, 0) != 1;
    if (n > 0 && !failed) {
        Py_BEGIN_ALLOW_THREADS
        uv_run(&loop, UV_RUN_DEFAULT);
        Py_END_ALLOW_THREADS
    }
    uv_close((uv_handle_t *)&a.poll, NULL);
    uv_close((uv_handle_t *)&b.poll, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
    uv_loop_close(&loop);
    close(sv[0]);
    close(sv[1]);
    if (failed || a.failed || b.failed)
        return PyErr_Format(PyExc_RuntimeError, "io_pingpong: a send or recv failed");
    Py_RETURN_NONE;
}

/* --- the minimal hub --------------------------------------------------------------------- */

#define RING 64
static PyGreenlet *ring[RING];   /* borrowed: each entry is blocked in sleep0() */
static int head, count;
static PyGreenlet *hub;
static uv_loop_t hub_loop;

static PyObject *hub_run(PyObject *mod, PyObject *unused)
{
    for (;;) {
        while (count) {
            PyGreenlet *g = ring[head];
            head = (head + 1) % RING;
            count--;
            PyObject *r = PyGreenlet_Switch(g, NULL, NULL);
            if (!r)
                return NULL;
            Py_DECREF(r);
        }
        uv_run(&hub_loop, UV_RUN_NOWAIT);
    }
}

static PyMethodDef hub_run_def = {"hub_run", hub_run, METH_NOARGS, NULL};

static PyObject *sleep0(PyObject *mod, PyObject *unused)
{
    if (!hub) {
        PyObject *run = PyCFunction_New(&hub_run_def, mod);
        if (!run)
            return NULL;
        hub = PyGreenlet_New(run, NULL);
        Py_DECREF(run);
        if (!hub)
            return NULL;
    }
    if (count == RING)
        return PyErr_Format(PyExc_RuntimeError, "sleep0: too many sleepers");
    ring[(head + count++) % RING] = PyGreenlet_GetCurrent();
    Py_DECREF(ring[(head + count - 1) % RING]);   /* it stays alive: it is the caller */
    PyObject *r = PyGreenlet_Switch(hub, NULL, NULL);
    if (!r)
        return NULL;
    Py_DECREF(r);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"io_pingpong", io_pingpong, METH_O, "n one-byte round trips between two libuv polls"},
    {"sleep0", sleep0, METH_NOARGS, "sleep(0) on the minimal C hub"},
    {NULL}
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_bench_floor", NULL, -1, methods};

PyMODINIT_FUNC PyInit__bench_floor(void)
{
    PyGreenlet_Import();
    if (!_PyGreenlet_API)
        return NULL;
    uv_loop_init(&hub_loop);
    return PyModule_Create(&module);
}
