"""handle_error, print_exception, handle_system_error (docs/semantics.md,
'The hub's handle_error')."""
import re
import sys

import pytest

import gevent_c.hub as H
from _util import last_line, untimed, TIMESTAMP

CB_RE = '^' + TIMESTAMP + r' <callback at 0x[0-9a-f]+.*> failed with %s$'


# ---- exact output of handle_error / print_exception


def test_real_traceback_output(hub, stream):
    try:
        1 / 0
    except ZeroDivisionError:
        assert hub.handle_error('my-context', *sys.exc_info()) is None
    out = stream.getvalue()
    lines = out.splitlines()
    assert lines[0] == 'Traceback (most recent call last):'
    assert untimed(out).endswith('my-context failed with ZeroDivisionError\n\n'), repr(out)
    assert lines[-1] == ''  # the trailing empty line
    assert lines[-3] == 'ZeroDivisionError: division by zero', lines
    # gevent's: the time, then the context, on one line
    assert re.match('^' + TIMESTAMP + ' my-context failed with ZeroDivisionError$', lines[-2])
    # exactly one context line, and one timestamp
    assert out.count('failed with') == 1
    assert len(re.findall(TIMESTAMP, out)) == 1


def test_dict_context_uses_pformat(hub, stream):
    hub.handle_error({'a': 1}, KeyError, KeyError('k'), None)
    assert untimed(stream).endswith("KeyError: 'k'\n{'a': 1} failed with KeyError\n\n"), \
        repr(stream.getvalue())


def test_exact_output_no_tb(hub, stream):
    hub.handle_error('ctx', KeyError, KeyError('k'), None)
    assert untimed(stream) == "KeyError: 'k'\nctx failed with KeyError\n\n"


def test_value_none(hub, stream):
    hub.handle_error('ctx', ValueError, None, None)
    assert untimed(stream) == 'ValueError\nctx failed with ValueError\n\n'


def test_value_string(hub, stream):
    hub.handle_error('ctx', ValueError, 'a string value', None)
    assert untimed(stream) == 'ValueError: a string value\nctx failed with ValueError\n\n'


def test_greenlet_exit_not_printed(hub, stream):
    assert hub.handle_error('ctx', H.GreenletExit, H.GreenletExit(), None) is None
    assert stream.getvalue() == ''


def test_system_exit_with_context_not_printed_but_raised(hub, stream):
    # SystemExit is NOT_ERROR (silent) and SYSTEM_ERROR (raised in the parent).
    # Called from main (= hub.parent), handle_system_error throws into main.
    with pytest.raises(SystemExit) as ei:
        hub.handle_error('ctx', SystemExit, SystemExit(5), None)
    assert ei.value.code == 5
    assert stream.getvalue() == ''


def test_stream_none_disables_printing(hub, capfd):
    hub.exception_stream = None
    try:
        assert hub.handle_error('ctx', ValueError, ValueError(), None) is None
    finally:
        del hub.exception_stream
    out, err = capfd.readouterr()
    assert out == '' and err == ''


def test_all_none_uses_exc_info(hub, stream):
    try:
        {}['missing']
    except KeyError:
        hub.handle_error('ctx', None, None, None)
    out = stream.getvalue()
    assert out.startswith('Traceback (most recent call last):'), out
    assert untimed(out).endswith("KeyError: 'missing'\nctx failed with KeyError\n\n"), repr(out)


def test_print_exception_direct(hub, stream):
    assert hub.print_exception('ctx', ValueError, ValueError('x'), None) is None
    assert untimed(stream) == 'ValueError: x\nctx failed with ValueError\n\n'


def test_print_exception_no_context(hub, stream):
    hub.print_exception(None, ValueError, ValueError('x'), None)
    # gevent's: the time on a line of its own
    assert re.match('^ValueError: x\n' + TIMESTAMP + '\n$', stream.getvalue()), \
        stream.getvalue()


def test_print_exception_stream_none(hub, capfd):
    hub.exception_stream = None
    try:
        hub.print_exception('ctx', ValueError, ValueError('x'), None)
    finally:
        del hub.exception_stream
    out, err = capfd.readouterr()
    assert out == '' and err == ''


def test_print_exception_goes_to_current_stderr(hub, capsys):
    hub.print_exception('ctx', ValueError, ValueError('to-stderr'), None)
    out, err = capsys.readouterr()
    assert untimed(err) == 'ValueError: to-stderr\nctx failed with ValueError\n\n'
    assert out == ''


def test_format_context_failure_uses_repr(hub, stream):
    class Ctx:
        def __repr__(self):
            return 'CTX-REPR'

    def bad_format(obj):
        raise RuntimeError('format failed')

    hub.format_context = bad_format
    hub.handle_error(Ctx(), ValueError, ValueError('v'), None)
    assert untimed(last_line(stream)) == 'CTX-REPR failed with ValueError', stream.getvalue()


def test_instance_format_context_used(hub, stream):
    hub.format_context = lambda obj: 'formatted!'
    hub.handle_error(object(), ValueError, ValueError('v'), None)
    assert untimed(last_line(stream)) == 'formatted! failed with ValueError'


def test_overridden_print_exception_used(hub, stream):
    calls = []
    hub.print_exception = lambda *a: calls.append(a)
    hub.handle_error('ctx', ValueError, ValueError('v'), None)
    assert len(calls) == 1
    assert calls[0][0] == 'ctx' and calls[0][1] is ValueError
    assert stream.getvalue() == ''


def test_not_error_instance_extension(hub, stream):
    hub.NOT_ERROR = hub.NOT_ERROR + (KeyError,)
    hub.handle_error('ctx', KeyError, KeyError('k'), None)
    assert stream.getvalue() == ''


# ---- errors raised by callbacks running in the hub


def test_callback_value_error_printed_not_raised(loop, stream):
    def bad():
        raise ValueError('cb')

    loop.run_callback(bad)
    H.sleep(0.01)  # does not raise
    assert re.match(CB_RE % 'ValueError', last_line(stream)), stream.getvalue()
    assert 'ValueError: cb' in stream.getvalue()


def test_callback_system_exit_raised_silently(loop, hub, stream):
    def f():
        raise SystemExit(3)

    loop.run_callback(f)
    with pytest.raises(SystemExit) as ei:
        H.sleep(0.01)
    assert ei.value.code == 3
    assert stream.getvalue() == ''
    H.sleep(0.001)
    assert not hub.dead


@pytest.mark.parametrize('exc', [KeyboardInterrupt, SystemError])
def test_callback_system_error_printed_and_raised(loop, hub, stream, exc):
    def f():
        raise exc('sys-err')

    loop.run_callback(f)
    with pytest.raises(exc):
        H.sleep(0.01)
    assert re.match(CB_RE % exc.__name__, last_line(stream)), stream.getvalue()
    # the hub stays usable
    H.sleep(0.001)
    assert not hub.dead
    log = []
    loop.run_callback(log.append, 1)
    H.sleep(0)
    assert log == [1]


def test_hub_resumes_after_system_error(loop, hub, stream):
    # callbacks queued after the failing one still run once main blocks again
    log = []

    def f():
        raise KeyboardInterrupt

    loop.run_callback(f)
    loop.run_callback(log.append, 'after')
    with pytest.raises(KeyboardInterrupt):
        H.sleep(0.01)
    H.sleep(0.01)
    assert log == ['after']


def test_context_none_from_callback_raised_in_main(loop, hub, stream):
    loop.run_callback(lambda: hub.handle_error(None, ValueError, ValueError('sys'), None))
    with pytest.raises(ValueError) as ei:
        H.sleep(0.01)
    assert ei.value.args == ('sys',)
    assert 'ValueError: sys' in stream.getvalue()
    assert 'failed with' not in stream.getvalue()
    H.sleep(0.001)


def test_handle_system_error_from_greenlet(loop, hub, stream):
    log = []

    def g_body():
        hub.handle_system_error(ValueError, ValueError('g'))
        log.append('past')

    g = H.spawn_raw(g_body)
    with pytest.raises(ValueError) as ei:
        H.sleep(0.01)
    assert ei.value.args == ('g',)
    H.sleep(0.01)
    assert log == ['past']
    assert g.dead


def test_handle_system_error_three_args(loop, hub, stream):
    log = []

    def g_body():
        hub.handle_system_error(ValueError, ValueError('g3'), None)
        log.append('past')

    g = H.spawn_raw(g_body)
    with pytest.raises(ValueError) as ei:
        H.sleep(0.01)
    assert ei.value.args == ('g3',)
    H.sleep(0.01)
    assert log == ['past']
    assert g.dead


def test_handle_system_error_in_main_raises(hub):
    with pytest.raises(KeyError):
        hub.handle_system_error(KeyError, KeyError('m'))
    with pytest.raises(KeyError):
        hub.handle_system_error(KeyError, KeyError('m'), None)


def test_overridden_handle_error_on_instance(loop, hub, stream):
    calls = []
    hub.handle_error = lambda *a: calls.append(a)
    loop.run_callback(lambda: 1 / 0)
    H.sleep(0.01)
    assert len(calls) == 1
    assert len(calls[0]) == 4
    assert calls[0][1] is ZeroDivisionError
    assert isinstance(calls[0][2], ZeroDivisionError)
    assert stream.getvalue() == ''


def test_raising_handle_error_does_not_crash(check_py):
    p_out = check_py('''
        import gevent_c.hub as H
        hub = H.get_hub()
        def bad_handler(*args):
            raise AttributeError('handler is broken')
        hub.handle_error = bad_handler
        log = []
        hub.loop.run_callback(lambda: 1 / 0)
        hub.loop.run_callback(log.append, 'later')
        H.sleep(0.01)
        assert log == ['later'], log
        print('survived')
    ''', timeout=10)
    assert p_out.strip() == 'survived'


def test_raising_handle_error_reported_on_stderr(run_py):
    p = run_py('''
        import gevent_c.hub as H
        hub = H.get_hub()
        def bad_handler(*args):
            raise AttributeError('handler is broken')
        hub.handle_error = bad_handler
        hub.loop.run_callback(lambda: 1 / 0)
        H.sleep(0.01)
    ''', timeout=10)
    assert p.returncode == 0, p.stderr
    assert 'AttributeError' in p.stderr and 'handler is broken' in p.stderr, p.stderr


def test_sigint_reaches_main_promptly(run_py):
    p = run_py('''
        import os, signal, threading, time
        import gevent_c.hub as H
        H.get_hub()
        def killer():
            time.sleep(0.1)
            os.kill(os.getpid(), signal.SIGINT)
        threading.Thread(target=killer, daemon=True).start()
        t0 = time.monotonic()
        try:
            H.sleep(3)
        except KeyboardInterrupt:
            print('KI %.3f' % (time.monotonic() - t0))
        else:
            print('no KI')
    ''', timeout=20)
    assert p.returncode == 0, p.stderr
    words = p.stdout.split()
    assert words[0] == 'KI', p.stdout
    assert float(words[1]) < 1, p.stdout
