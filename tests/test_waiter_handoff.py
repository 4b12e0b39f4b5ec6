"""Waiter.switch(value) hands the value to the waiting get() without an argument tuple: the
same object arrives, no reference is left behind, and a stray switch still returns its own
value from get()."""
import sys

import gevent_c.hub as H


class Token:
    pass


def test_get_returns_the_switched_object_and_keeps_no_reference(loop):
    tok = Token()
    counts = []
    for i in range(60):
        w = H.Waiter()
        loop.run_callback(w.switch, tok)
        assert w.get() is tok
        if i in (9, 59):
            counts.append(sys.getrefcount(tok))
    assert counts[0] == counts[1]     # no reference left per wake-up


def test_waiter_is_not_ready_after_a_handed_off_switch(loop):
    w = H.Waiter()
    loop.run_callback(w.switch, 'v')
    assert w.get() == 'v'
    assert not w.ready() and w.value is None    # as gevent: a value handed over is not kept


def test_stray_switch_value_comes_back_from_get(loop):
    w = H.Waiter()
    me = H.getcurrent()
    loop.run_callback(me.switch, 'stray')
    assert w.get() == 'stray'
    assert w.value is None
