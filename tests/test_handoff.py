"""The handoff: while the hub dispatches a batch of events, a greenlet that waits again switches
straight to the greenlet of the batch's next event (when that event resumes a greenlet directly)
instead of to the hub.  What must not change: which greenlets run, in which order, how often, the
context named when one of them dies with an exception, and what is left for the hub."""
import socket

import greenlet
import pytest

import gevent_c.hub as H


def _switches(fn):
    """Run fn() with a greenlet trace; return the (origin, target) of every switch."""
    seen = []

    def trace(event, args):
        if event in ('switch', 'throw'):
            seen.append(args)

    old = greenlet.settrace(trace)
    try:
        fn()
    finally:
        greenlet.settrace(old)
    return seen


def _socketpairs(n):
    pairs = [socket.socketpair() for _ in range(n)]
    for a, _ in pairs:
        a.setblocking(False)
    return pairs


def _close(pairs):
    for a, b in pairs:
        a.close()
        b.close()


def test_a_batch_of_io_waits_is_handed_off_in_order(loop, hub):
    n = 6
    pairs = _socketpairs(n)
    watchers = [loop.io(a.fileno(), 1) for a, _ in pairs]
    woke = []

    def reader(i):
        while True:
            hub.wait(watchers[i])
            pairs[i][0].recv(1)
            woke.append(i)

    glets = [H.spawn_raw(reader, i) for i in range(n)]
    try:
        H.sleep(0)            # all waiting
        H.sleep(0)

        def rounds():
            for _ in range(3):
                del woke[:]
                for _, b in pairs:
                    b.send(b'x')
                while len(woke) < n:
                    H.sleep(0.001)
                # every reader once per round
                assert sorted(woke) == list(range(n))

        seen = _switches(rounds)
        direct = [(o, t) for o, t in seen if o in glets and t in glets]
        # the readers woke in one batch: after the first, each reader's wait
        # switched to the next reader, not to the hub
        assert len(direct) >= n - 1, seen
        assert not any(g.dead for g in glets)
    finally:
        for g in glets:
            H.kill(g)
        H.sleep(0)
        for w in watchers:
            w.close()
        _close(pairs)


def test_timers_due_together_wake_in_start_order_through_handoffs(loop, hub):
    order = []
    timers = [loop.timer(0.005) for _ in range(5)]

    def sleeper(i):
        hub.wait(timers[i])
        order.append(i)
        hub.wait(loop.timer(3600))   # waits again: hands off to the next

    glets = [H.spawn_raw(sleeper, i) for i in range(5)]
    try:
        seen = _switches(lambda: H.sleep(0.05))
        assert order == [0, 1, 2, 3, 4]
        assert any(o in glets and t in glets for o, t in seen)
    finally:
        for g in glets:
            H.kill(g)
        H.sleep(0)
        for t in timers:
            t.close()


def test_the_hub_finishes_a_batch_the_handoff_could_not_take(loop, hub):
    # the middle event of the batch is a plain callback: the chain goes back
    # to the hub for it, and the hub hands on to the rest
    order = []
    t0, t1, t2 = loop.timer(0.005), loop.timer(0.005), loop.timer(0.005)

    def waiter(i, t):
        hub.wait(t)
        order.append(i)
        hub.wait(loop.timer(3600))

    g0 = H.spawn_raw(waiter, 0, t0)
    H.sleep(0)
    t1.start(order.append, 1)
    g2 = H.spawn_raw(waiter, 2, t2)
    try:
        H.sleep(0.05)
        assert order == [0, 1, 2]
    finally:
        for g in (g0, g2):
            H.kill(g)
        H.sleep(0)
        for t in (t0, t1, t2):
            t.close()


def test_a_greenlet_dying_after_a_handoff_is_the_reported_context(loop, hub, stream):
    a_timer, b_timer = loop.timer(0.005), loop.timer(0.005)

    def first():
        hub.wait(a_timer)
        hub.wait(loop.timer(3600))   # hands off to `second`

    def second():
        hub.wait(b_timer)
        raise ZeroDivisionError('from second')

    g1 = H.spawn_raw(first)
    g2 = H.spawn_raw(second)
    try:
        H.sleep(0.05)
        assert g2.dead
        text = stream.getvalue()
        assert 'ZeroDivisionError: from second' in text
        # the context is the greenlet that died, not the one that handed off
        assert hex(id(g2)) in text and hex(id(g1)) not in text, text
    finally:
        H.kill(g1)
        H.sleep(0)
        a_timer.close()
        b_timer.close()


def test_an_event_stopped_earlier_in_the_batch_is_skipped(loop, hub):
    # g0 wakes first and stops g1's watcher, whose event is next in the
    # batch: nobody switches into g1, and g2 still gets its turn
    order = []
    t0, t1, t2 = loop.timer(0.005), loop.timer(0.005), loop.timer(0.005)
    glets = []

    def waiter(i, t):
        hub.wait(t)
        order.append(i)
        if i == 0:
            t1.stop()
        hub.wait(loop.timer(3600))

    for i, t in enumerate((t0, t1, t2)):
        glets.append(H.spawn_raw(waiter, i, t))
    try:
        H.sleep(0.05)
        assert order == [0, 2]
        assert not glets[1].dead
    finally:
        for g in glets:
            H.kill(g)
        H.sleep(0)
        for t in (t0, t1, t2):
            t.close()


def test_sleep_zero_inside_a_batch_runs_after_the_batch(loop, hub):
    # sleep(0) queues a callback and switches away: the handoff takes the
    # next event; the callback runs after the batch, as from the hub
    order = []
    t0, t1 = loop.timer(0.005), loop.timer(0.005)

    def first():
        hub.wait(t0)
        order.append('first woke')
        H.sleep(0)
        order.append('first after sleep(0)')

    def second():
        hub.wait(t1)
        order.append('second woke')

    g1, g2 = H.spawn_raw(first), H.spawn_raw(second)
    H.sleep(0.05)
    assert order == ['first woke', 'second woke', 'first after sleep(0)']
    assert g1.dead and g2.dead
    t0.close()
    t1.close()


@pytest.mark.parametrize('n', [1, 2, 50])
def test_echo_pattern_counts(loop, hub, n):
    # the echo server's pattern, several rounds: every message answered once
    pairs = _socketpairs(n)
    for _, b in pairs:
        b.setblocking(False)
    served = [0] * n

    def serve(i):
        a = pairs[i][0]
        w = loop.io(a.fileno(), 1)
        try:
            while True:
                hub.wait(w)
                data = a.recv(64)
                if not data:
                    return
                a.send(data)
                served[i] += 1
        finally:
            w.close()

    glets = [H.spawn_raw(serve, i) for i in range(n)]
    try:
        for r in range(20):
            for _, b in pairs:
                b.send(b'%d' % r)
            got = 0
            while got < n:
                H.sleep(0.0005)
                for _, b in pairs:
                    try:
                        got += len(b.recv(64)) > 0
                    except BlockingIOError:
                        pass
        assert served == [20] * n
    finally:
        for _, b in pairs:
            b.shutdown(socket.SHUT_WR)
        H.sleep(0.01)
        assert all(g.dead for g in glets)
        _close(pairs)


def test_handoff_stress(check_py):
    # 150 greenlets waiting on timers, io (hub.wait and io.recv_into) and
    # sleep(0), killing each other and stopping each other's watchers while
    # batches are handed off: no crash, no error, every greenlet killable
    out = check_py('''
        import gc, random, socket, time
        import greenlet
        import gevent_c.hub as H
        hub = H.get_hub()
        loop = hub.loop
        rnd = random.Random(20261203)
        N = 150
        pairs = [socket.socketpair() for _ in range(N)]
        for a, b in pairs:
            a.setblocking(False)
            b.setblocking(False)
        glets, watchers, errors, handoffs = [], {}, [], [0]

        def worker(i):
            a = pairs[i][0]
            r, t = loop.io(a.fileno(), 1), loop.timer(0)
            watchers[i] = [r, t]
            buf = bytearray(16)
            while True:
                op = rnd.random()
                try:
                    if op < 0.3:
                        t.close()
                        t = watchers[i][1] = loop.timer(rnd.choice((0, 0.001, 0.002)))
                        hub.wait(t)
                    elif op < 0.6:
                        try:
                            pairs[rnd.randrange(N)][1].send(b'x')
                        except BlockingIOError:
                            pass
                        if rnd.random() < 0.5:
                            r.recv_into(buf)
                        else:
                            hub.wait(r)
                            try:
                                a.recv(16)
                            except BlockingIOError:
                                pass
                    elif op < 0.7:
                        H.sleep(0)
                    elif op < 0.75:
                        g = glets[rnd.randrange(len(glets))]
                        if g is not greenlet.getcurrent():
                            H.kill(g)
                    elif op < 0.85:
                        j = rnd.randrange(N)
                        if j in watchers:
                            watchers[j][rnd.randrange(2)].stop()
                    elif op < 0.9:
                        gc.collect(0)
                    else:
                        H.sleep(0.0005)
                except Exception as e:
                    errors.append(repr(e))

        def trace(event, args):
            if event == 'switch' and args[0] in members and args[1] in members:
                handoffs[0] += 1

        members = set()
        greenlet.settrace(trace)
        for i in range(N):
            glets.append(H.spawn_raw(worker, i))
            members.add(glets[-1])
        deadline = time.time() + 2
        while time.time() < deadline:
            H.sleep(0.01)
            for k, g in enumerate(glets):
                if g.dead:
                    glets[k] = H.spawn_raw(worker, k)
                    members.add(glets[k])
        for g in glets:
            H.kill(g)
        H.sleep(0.05)
        greenlet.settrace(None)
        assert all(g.dead for g in glets)
        assert not errors, errors[:5]
        assert handoffs[0] > 0
        for a, b in pairs:
            a.close()
            b.close()
        print('ok')
    ''', timeout=60)
    assert out.strip() == 'ok', out
