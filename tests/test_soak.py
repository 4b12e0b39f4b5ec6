"""Soak test, bounded: 1,000 greenlets at once -- 500 io ping-pong
pairs over socketpairs (each pair: 1 client + 1 server greenlet), with timers
(a sleep between rounds in a share of them) and thread-pool calls (every
fifth round) mixed in.  Every message must arrive, in order, and memory
(RSS, live objects, fds, loop handles) must stay flat between two halves of
the run.  Runs in a subprocess (a crash fails the test, not pytest) and
takes ~10 s here; the bound is 60 s.
"""
import pytest

import _util

CODE = r'''
import gc, os, socket, sys, time
import gevent_c.core as core
import gevent_c.hub as H

PAIRS = 500          # 1,000 greenlets
ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 200
hub = H.get_hub()
loop = hub.loop
tp = hub.threadpool

def wait_io(fd, ev):
    w = loop.io(fd, ev)
    try:
        hub.wait(w)
    finally:
        w.close()

def recv_exact(s, n):
    buf = b''
    while len(buf) < n:
        try:
            chunk = s.recv(n - len(buf))
        except BlockingIOError:
            wait_io(s.fileno(), core.READ)
            continue
        if not chunk:
            raise EOFError
        buf += chunk
    return buf

def send_all(s, data):
    while data:
        try:
            data = data[s.send(data):]
        except BlockingIOError:
            wait_io(s.fileno(), core.WRITE)

errors = []
received = [0] * PAIRS

def server(i, s, rounds):
    try:
        for r in range(rounds):
            msg = recv_exact(s, 16)
            expect = b'%08d%08d' % (i, r)
            if msg != expect:
                errors.append(('order', i, r, msg))
                return
            received[i] += 1
            send_all(s, msg[::-1])
    except BaseException as e:
        errors.append(('server', i, repr(e)))

def client(i, s, rounds, done):
    try:
        for r in range(rounds):
            send_all(s, b'%08d%08d' % (i, r))
            if recv_exact(s, 16) != (b'%08d%08d' % (i, r))[::-1]:
                errors.append(('reply', i, r))
                return
            if i % 4 == 0:
                H.sleep(0.001)                       # timers
            if r % 5 == i % 5:
                assert tp.apply(abs, (-r,)) == r     # thread pool
    except BaseException as e:
        errors.append(('client', i, repr(e)))
    finally:
        done.append(i)

def run(rounds):
    socks = [socket.socketpair() for _ in range(PAIRS)]
    for a, b in socks:
        a.setblocking(False); b.setblocking(False)
    done = []
    for i, (a, b) in enumerate(socks):
        H.spawn_raw(server, i, b, rounds)
        H.spawn_raw(client, i, a, rounds, done)
    w = H.Waiter()
    def check():
        if len(done) == PAIRS:
            w.switch(None)
        else:
            loop.run_callback(lambda: t.again(check))
    t = loop.timer(0.01, 0.01)
    t.start(check)
    w.get()
    t.close()
    for a, b in socks:
        a.close(); b.close()
    return done

def snapshot():
    H.sleep(0.01)
    gc.collect(); gc.collect()
    rss = int([l for l in open('/proc/self/status') if l.startswith('VmRSS:')][0].split()[1])
    return dict(rss=rss, objs=len(gc.get_objects()), fds=len(os.listdir('/proc/self/fd')),
                active=loop.activecnt)

t0 = time.time()
run(5)                                   # warm-up: pool threads, free lists
s0 = snapshot()
run(ROUNDS // 2)
s1 = snapshot()
run(ROUNDS // 2)
s2 = snapshot()
assert not errors, errors[:10]
assert received == [5 + 2 * (ROUNDS // 2)] * PAIRS, set(received)
print('times %.1fs' % (time.time() - t0), s0, s1, s2)
# memory flat: the second half costs no more than the first
assert s2['fds'] == s0['fds'] and s2['active'] == s0['active'], (s0, s2)
assert s2['objs'] - s1['objs'] < 200, (s1, s2)
if 'asan' not in os.environ.get('LD_PRELOAD', ''):   # ASan's quarantine holds freed memory
    assert s2['rss'] - s1['rss'] < 4096, (s1, s2)     # KiB
print('ok')
'''


@pytest.mark.timeout(90)
def test_soak_1000_greenlets_io_timers_threadpool():
    p = _util.run_py(CODE, timeout=80)
    assert p.returncode == 0 and p.stdout.strip().endswith('ok'), (
        'exit %r\n--- stdout ---\n%s\n--- stderr ---\n%s'
        % (p.returncode, p.stdout[-3000:], p.stderr[-6000:]))
