"""gevent_c.timeout.Timeout, minimal (docs/semantics.md, 'Event, AsyncResult and Timeout')."""
import re

import pytest

from gevent_c.timeout import Timeout


def test_is_base_exception_not_exception():
    assert issubclass(Timeout, BaseException)
    assert not issubclass(Timeout, Exception)


def test_reexported_from_event():
    import gevent_c.event as E
    assert E.Timeout is Timeout


def test_str_forms():
    assert str(Timeout(0.01)) == '0.01 seconds'
    assert str(Timeout()) == ''
    assert str(Timeout(1)) == '1 second'
    assert str(Timeout(2, False)) == '2 seconds (silent)'
    assert str(Timeout(2, ValueError('x'))) == '2 seconds: x'


def test_attributes():
    t = Timeout(0.5, KeyError)
    assert t.seconds == 0.5
    assert t.exception is KeyError
    t2 = Timeout()
    assert t2.seconds is None and t2.exception is None


def test_raise_and_catch():
    with pytest.raises(Timeout) as ei:
        raise Timeout(3)
    assert ei.value.seconds == 3


def test_repr():
    assert re.match(r'^<Timeout at 0x[0-9a-f]+ seconds=0\.01>$', repr(Timeout(0.01)))
    assert re.match(r"^<Timeout at 0x[0-9a-f]+ seconds=1 exception=ValueError\('x'\)>$",
                    repr(Timeout(1, ValueError('x'))))


def test_no_hub_created(check_py):
    out = check_py('''
        import gevent_c.hub as H
        from gevent_c.timeout import Timeout
        Timeout(5)
        print(H._get_hub())
    ''', timeout=10)
    assert out.strip() == 'None'


def test_scheduling_api_absent():
    # MAY items that are left out are absent, never stubs.
    t = Timeout(1)
    for name in ('start', 'cancel'):
        assert not hasattr(t, name)
    assert not hasattr(Timeout, 'start_new')
