"""Ctrl-C while another library holds Python's signal wake-up fd.

asyncio, Qt, prompt_toolkit... call ``signal.set_wakeup_fd`` with their own
fd, before the hub exists or after.  The hub must still wake at once for a
signal with a Python handler (SIGINT: KeyboardInterrupt in the main
greenlet), without a polling timer, and the other library must still get
its wake-up bytes.  Every scenario runs in a fresh interpreter.
"""
import pytest

PRELUDE = '''
    import os, signal, threading, time
    r, w = os.pipe()
    os.set_blocking(w, False)
    os.set_blocking(r, False)

    def theirs():
        # what the other library finds in its wake-up fd
        try:
            return os.read(r, 100)
        except BlockingIOError:
            return b''

    def interrupted_after(signum=signal.SIGINT, wait=5):
        threading.Timer(0.2, os.kill, (os.getpid(), signum)).start()
        t0 = time.monotonic()
        try:
            H.sleep(wait)
        except KeyboardInterrupt:
            return time.monotonic() - t0
        return None
'''


@pytest.mark.parametrize('when', ['before', 'after'])
def test_sigint_interrupts_hub_while_another_holds_wakeup_fd(check_py, when):
    out = check_py(PRELUDE + '''
    when = %r
    if when == 'before':
        assert signal.set_wakeup_fd(w) == -1
    import gevent_c.hub as H
    H.sleep(0.01)                      # the hub and its loop exist
    if when == 'after':
        assert signal.set_wakeup_fd(w) not in (-1, w)   # the loop's, taken
    delay = interrupted_after()
    assert delay is not None, 'SIGINT never interrupted the hub'
    assert delay < 2, delay
    assert theirs() == bytes([signal.SIGINT]), 'the other library lost its byte'
    assert signal.set_wakeup_fd(-1) == w   # still theirs
    print('interrupted after %%.2f s' %% delay)
    ''' % when)
    assert 'interrupted after' in out


def test_python_handler_runs_promptly_with_foreign_wakeup_fd(check_py):
    # a handler installed before the hub, for a signal other than SIGINT
    check_py(PRELUDE + '''
    ran = []
    def handler(s, f):
        ran.append(time.monotonic())
        raise KeyboardInterrupt   # ends the hub's sleep, as SIGINT would
    signal.signal(signal.SIGUSR1, handler)
    signal.set_wakeup_fd(w)
    import gevent_c.hub as H
    H.sleep(0.01)
    delay = interrupted_after(signal.SIGUSR1)
    assert delay is not None and delay < 2, delay
    assert len(ran) == 1, ran
    assert theirs() == bytes([signal.SIGUSR1])
    ''')


def test_loop_gives_back_dispositions_and_wakeup_fd(check_py):
    # after the hub is destroyed: SIGINT's C-level handler is the one it
    # found (CPython's), the other library's wake-up fd untouched, and
    # SIGINT is KeyboardInterrupt
    check_py(PRELUDE + '''
    import ctypes
    class Sigaction(ctypes.Structure):
        _fields_ = [('handler', ctypes.c_void_p), ('mask', ctypes.c_ulong * 16),
                    ('flags', ctypes.c_int), ('restorer', ctypes.c_void_p)]
    libc = ctypes.CDLL(None, use_errno=True)
    def c_handler(signum):
        sa = Sigaction()
        assert libc.sigaction(signum, None, ctypes.byref(sa)) == 0
        return sa.handler
    before = c_handler(signal.SIGINT)
    signal.set_wakeup_fd(w)
    import gevent_c.hub as H
    H.sleep(0.01)
    assert c_handler(signal.SIGINT) != before   # the loop's, chaining
    H.get_hub().destroy(destroy_loop=True)
    assert c_handler(signal.SIGINT) == before
    assert signal.set_wakeup_fd(w) == w
    try:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(1)
    except KeyboardInterrupt:
        pass
    else:
        raise AssertionError('no KeyboardInterrupt')
    assert theirs() == bytes([signal.SIGINT])
    ''')


def test_no_periodic_wakeups_with_foreign_wakeup_fd(check_py):
    # signals still need no polling timer: blocked 1 s on a pipe, the loop
    # goes round only for the wake-up itself
    out = check_py(PRELUDE + '''
    import gevent_c.core as core
    signal.set_wakeup_fd(w)
    import gevent_c.hub as H
    hub = H.get_hub()
    H.sleep(0.01)
    pr, pw = os.pipe()
    iow = hub.loop.io(pr, core.READ)
    th = threading.Timer(1.0, os.write, (pw, b'x'))
    i0 = hub.loop.iteration
    th.start()
    hub.wait(iow)
    i1 = hub.loop.iteration
    th.join()
    iow.close()
    print('iterations', i1 - i0)
    assert i1 - i0 <= 3, i1 - i0
    ''')
    assert 'iterations' in out
