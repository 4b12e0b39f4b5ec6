"""A forked child must not touch the kernel objects its loop shares with the
parent: the epoll fd, the async eventfd and the signal pipe are open file
descriptions both processes hold after fork().  The child gets its own
(uv_loop_fork) in the fork handler, before any libuv call can run."""


def test_child_stopping_io_watcher_keeps_parent_watching(check_py):
    # An epoll_ctl(DEL) by the child on the shared epoll fd would remove
    # the parent's registration: the parent's read would then never wake.
    # (A guard: the io watcher's lazy re-arming already kept this one safe.)
    out = check_py('''
import os, socket
import gevent_c.hub as H
hub = H.get_hub()
a, b = socket.socketpair()
w = hub.loop.io(a.fileno(), 1)
w.start(lambda: None)
H.sleep(0.01)  # armed in the epoll set
pid = os.fork()
if pid == 0:
    w.stop()
    w.close()
    H.sleep(0.01)  # the child polls too
    os._exit(0)
assert os.waitpid(pid, 0)[1] == 0
waiter = H.Waiter()
w.start(waiter.switch, 'ready')
timer = hub.loop.timer(3.0)
timer.start(waiter.switch, 'timeout')
b.send(b'x')
print(waiter.get())
''', timeout=30)
    assert out.strip() == 'ready', out


def test_child_running_its_loop_leaves_parent_wakeups(check_py):
    # The child's first poll must not read the parent's async eventfd: a
    # pool worker's wake-up would be lost to the parent, whose result then
    # waits forever.
    out = check_py('''
import os, threading, time
import gevent_c.hub as H
hub = H.get_hub()
pool = hub.threadpool
started = threading.Semaphore(0)

def task(secs):
    started.release()
    time.sleep(secs)

results = [pool.spawn(task, 0.2 + 0.05 * i) for i in range(8)]
# Fork only once every worker runs its task: a thread that is still
# starting allocates its thread state without the GIL, and under the ASan
# runtime of GCC 12 (whose allocator does not take its locks around fork)
# a child forked in that instant inherits a held allocator lock and hangs
# in its first malloc.  glibc's malloc is fork-safe; what this test checks
# (the child leaves the parent's wake-ups alone) is the same either way.
for _ in range(8):
    started.acquire()
H.sleep(0)  # the hub is now suspended in the middle of an iteration
pid = os.fork()
if pid == 0:
    hub.join(timeout=1)
    os._exit(0)
time.sleep(0.8)  # only the child polls while the workers finish
for r in results:
    r.get(timeout=5)
os.waitpid(pid, 0)
print('delivered')
''', timeout=30)
    assert out.strip() == 'delivered', out
