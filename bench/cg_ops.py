"""Tiny per-operation workloads for callgrind: python bench/cg_ops.py CASE N.

Instructions per op = (total at 2N - total at N) / N, both runs under
`PYTHONHASHSEED=0 valgrind --tool=callgrind`; start-up and teardown cancel out.
CASE: sleep0, waiter (run_callback + Waiter.get), timer0 (hub.wait on a 0 s timer),
io (one byte over a socketpair, hub.wait on an io watcher), spawn (spawn_raw).
docs/performance.md, "Build layout", used it."""
import socket
import sys

case, n = sys.argv[1], int(sys.argv[2])
from gevent_c import hub as H
hub = H.get_hub()
if case == 'sleep0':
    def run():
        for _ in range(n): H.sleep(0)
elif case == 'waiter':
    def run():
        loop = hub.loop
        for _ in range(n):
            w = H.Waiter()
            loop.run_callback(w.switch, 1)
            w.get()
elif case == 'timer0':
    def run():
        loop = hub.loop
        for _ in range(n):
            t = loop.timer(0)
            hub.wait(t)
elif case == 'io':
    a, b = socket.socketpair(); a.setblocking(False); b.setblocking(False)
    def run():
        loop = hub.loop
        r = loop.io(b.fileno(), 1)
        for _ in range(n):
            a.send(b'x')
            hub.wait(r)
            b.recv(1)
elif case == 'spawn':
    def run():
        done = []
        for _ in range(n):
            H.spawn_raw(done.append, 1)
        H.sleep(0)
        H.sleep(0)
        assert len(done) == n, len(done)
import greenlet
g = greenlet.greenlet(run)
g.switch()
while not g.dead:
    H.sleep(0.001)
