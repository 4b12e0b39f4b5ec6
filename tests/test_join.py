"""Hub.join(timeout=None, event=None) (docs/semantics.md, 'run, join and destroy')."""
import time


import gevent_c.hub as H


class FakeEvent:
    """A minimal object following the wait protocol (rawlink/unlink)."""

    def __init__(self, loop):
        self.loop = loop
        self.flag = False
        self.links = []

    def linkcount(self):
        return len(self.links)

    def rawlink(self, cb):
        self.links.append(cb)
        if self.flag:
            self.loop.run_callback(self._notify)

    def unlink(self, cb):
        try:
            self.links.remove(cb)
        except ValueError:
            pass

    def set(self):
        self.flag = True
        self.loop.run_callback(self._notify)

    def _notify(self):
        for cb in list(self.links):
            if cb in self.links:
                self.links.remove(cb)
                cb(self)


def test_join_nothing_pending_three_times(hub):
    H.sleep(0)
    for _ in range(3):
        t0 = time.monotonic()
        assert hub.join() is True
        assert time.monotonic() - t0 < 0.5
    assert not hub.dead
    H.sleep(0.001)  # still usable


def test_join_timeout_with_active_timer(loop, hub):
    t = loop.timer(5)
    t.start(lambda: None)
    try:
        t0 = time.monotonic()
        assert hub.join(timeout=0.05) is False
        elapsed = time.monotonic() - t0
    finally:
        t.close()
    assert 0.04 <= elapsed < 1, elapsed


def test_join_timeout_positional(loop, hub):
    t = loop.timer(5)
    t.start(lambda: None)
    try:
        assert hub.join(0.02) is False
    finally:
        t.close()


def test_join_runs_pending_greenlets(hub):
    ran = []
    H.spawn_raw(ran.append, 'f')
    assert hub.join() is True
    assert ran == ['f']


def test_join_waits_for_timers(loop, hub):
    log = []
    t = loop.timer(0.03)
    t.start(log.append, 'fired')
    t0 = time.monotonic()
    assert hub.join() is True
    assert log == ['fired']
    assert time.monotonic() - t0 >= 0.025


def test_join_unreferenced_timer_does_not_keep_waiting(loop, hub):
    t = loop.timer(5, ref=False)
    t.start(lambda: None)
    try:
        t0 = time.monotonic()
        assert hub.join() is True
        assert time.monotonic() - t0 < 0.5
    finally:
        t.close()


def test_join_greenlet_blocked_forever(hub):
    g = H.spawn_raw(H.Waiter().get)
    H.sleep(0)
    try:
        assert hub.join() is True
        assert not g.dead
    finally:
        H.kill(g)
        H.sleep(0)


def test_join_from_non_parent_greenlet(hub):
    res = []

    def f():
        try:
            hub.join()
        except AssertionError as e:
            res.append(e)

    H.spawn_raw(f)
    H.sleep(0.01)
    assert len(res) == 1
    assert str(res[0]) == 'only possible from the MAIN greenlet'


def test_join_event_set_later(loop, hub):
    t = loop.timer(5)
    t.start(lambda: None)
    e = FakeEvent(loop)

    def setter():
        H.sleep(0.02)
        e.set()

    try:
        H.spawn_raw(setter)
        t0 = time.monotonic()
        assert hub.join(event=e) is False
        assert time.monotonic() - t0 < 1
        assert e.linkcount() == 0
    finally:
        t.close()


def test_join_event_already_set(loop, hub):
    e = FakeEvent(loop)
    e.set()
    t0 = time.monotonic()
    assert hub.join(timeout=10, event=e) is False
    assert time.monotonic() - t0 < 0.5
    assert e.linkcount() == 0


def test_join_event_unlinked_on_loop_exit(loop, hub):
    e = FakeEvent(loop)
    assert hub.join(event=e) is True
    assert e.linkcount() == 0


def test_join_dead_hub_returns_true(check_py):
    check_py('''
        import gevent_c.hub as H
        hub = H.get_hub()
        H.sleep(0)
        hub.destroy()
        assert hub.dead
        assert hub.join() is True
    ''', timeout=10)
