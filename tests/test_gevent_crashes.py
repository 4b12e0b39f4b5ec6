"""The places where gevent 22.10 crashes, hangs or is silent, and
gevent_c must not (docs/semantics.md, 'Deliberate differences').  The other
cases are asserted next to their feature."""
import pytest

import gevent_c.core as core


def test_kill_hub_with_keyboardinterrupt_then_destroy_returns(check_py):
    # 22.10: kill(hub, KeyboardInterrupt), then destroy() with an active
    # watcher hangs forever
    out = check_py('''
        import gevent_c.hub as H
        hub = H.get_hub()
        hub.exception_stream = None
        t = hub.loop.timer(10)
        t.start(lambda: None)
        H.kill(hub, KeyboardInterrupt)
        try:
            H.sleep(0.01)
        except KeyboardInterrupt:
            pass
        hub.destroy()
        print(hub.dead, hub.loop)
        H.sleep(0.001)
        print('ok')
    ''')
    assert out.split() == ['True', 'None', 'ok']


def test_feed_with_out_of_range_priority_is_safe(loop):
    # libev's feed() with an out-of-range priority segfaults 22.10; here
    # the priority is clamped and the fed callback runs once
    import gevent_c.hub as H
    t = loop.timer(1, priority=1000)
    got = []
    try:
        t.feed(0, got.append, 'fed')
        H.sleep(0.01)
        assert got == ['fed'] and t.priority == core.MAXPRI
    finally:
        t.close()


@pytest.mark.parametrize('value,expect', [(10, core.MAXPRI), (-10, core.MINPRI), (1, 1)])
def test_priority_clamped(loop, value, expect):
    t = loop.timer(1, priority=value)
    try:
        assert t.priority == expect
        t.priority = value
        assert t.priority == expect
    finally:
        t.close()


def test_events_reports_exactly_the_mask(loop, pipe):
    # 22.10 reports libev's internal 0x80 bit (129 for READ)
    w = loop.io(pipe[0], core.READ)
    try:
        assert w.events == core.READ
    finally:
        w.close()


def test_stat_accepts_bytes(loop):
    w = loop.stat(b'/tmp')
    try:
        assert w.path == b'/tmp'
    finally:
        w.close()


def test_run_callback_non_callable_raises_at_once(loop):
    with pytest.raises(TypeError):
        loop.run_callback(5)


def test_default_error_handler_prints_str_value(check_py):
    # 22.10's default handler fails on Python 3.11 when value is a str
    out = check_py('''
        import sys, io
        import gevent_c.core as core
        L = core.loop(default=False)
        sys.stderr = io.StringIO()
        L.handle_error(None, ValueError, 'a str value', None)
        err = sys.stderr.getvalue()
        sys.stderr = sys.__stderr__
        print('ValueError: a str value' in err)
    ''')
    assert out.strip() == 'True'
