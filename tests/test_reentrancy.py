"""Re-entrancy: Python that C runs (a finalizer of a user object C drops, a
repr, a GC pass an allocation triggers) may close a watcher, destroy a loop
or kill a hub while C is in the middle of using them.  The rule
(docs/design.md, "Re-entrancy"): C releases no user object and calls no
Python while it holds a pointer into native loop, watcher or hub state;
released objects go to the loop's release list, dropped at a safe point.

Every scenario crashed (SIGSEGV) before; each runs in a fresh interpreter.
"""

import textwrap

PRELUDE = '''
import gc, sys
import gevent_c.hub as H
from gevent_c import core
'''


def _ok(check_py, code, timeout=20):
    out = check_py(PRELUDE + textwrap.dedent(code), timeout=timeout)
    assert out.strip().endswith('OK'), out
    return out


# -- 1. a callback's finalizer while start() replaces it ---------------------

def test_start_old_callback_del_closes_watcher(check_py):
    _ok(check_py, '''
        loop = core.loop(default=False)
        t = loop.timer(10)
        class Conn:
            def __del__(self):
                t.close()
            def cb(self):
                pass
        c = Conn(); t.start(c.cb); del c
        t.start(lambda: None)     # drops Conn's bound method: __del__ closes t
        assert 'closed' in repr(t) and not t.active, repr(t)
        try:
            t.start(lambda: None)
        except ValueError as e:
            assert 'closed' in str(e)
        else:
            raise AssertionError('start on a closed watcher')
        loop.destroy()
        print('OK')
    ''')


def test_start_old_callback_del_destroys_loop(check_py):
    _ok(check_py, '''
        for kind in ('timer', 'idle', 'prepare', 'check', 'io'):
            loop = core.loop(default=False)
            w = loop.io(0, 1) if kind == 'io' else (
                loop.timer(10) if kind == 'timer' else getattr(loop, kind)())
            class Conn:
                def __del__(self):
                    loop.destroy()
                def cb(self, *a):
                    pass
            c = Conn(); w.start(c.cb); del c
            w.start(lambda *a: None)   # __del__ destroys the loop
            assert not w.active, kind
            try:
                w.start(lambda *a: None)
            except ValueError as e:
                assert 'destroyed' in str(e), e
            else:
                raise AssertionError('start on a destroyed loop')
        print('OK')
    ''')


def test_hub_wait_old_callback_del_closes_watcher(check_py):
    _ok(check_py, '''
        hub = H.get_hub()
        for action in ('close', 'stop'):
            t = hub.loop.timer(0.001)
            class Conn:
                def __del__(self):
                    getattr(t, action)()
                def cb(self):
                    pass
            c = Conn(); t.start(c.cb); del c
            try:
                hub.wait(t)            # replaces Conn.cb: __del__ runs
            except ValueError as e:
                assert action == 'close' and 'closed' in str(e), (action, e)
            except H.LoopExit:
                assert action == 'stop'   # nothing left to wake it
            else:
                raise AssertionError(action)
            assert not t.active
        H.sleep(0.001)
        print('OK')
    ''')


def test_hub_wait_old_callback_del_destroys_loop(check_py):
    _ok(check_py, '''
        loop = core.loop(default=False)
        hub = H.Hub(loop=loop)
        H.set_hub(hub)
        t = loop.timer(0.001)
        class Conn:
            def __del__(self):
                loop.destroy()
            def cb(self):
                pass
        c = Conn(); t.start(c.cb); del c
        try:
            hub.wait(t)
        except ValueError as e:
            assert 'destroyed' in str(e), e
        else:
            raise AssertionError('wait on a destroyed loop returned')
        print('OK')
    ''')


def test_stop_callback_del_destroys_loop(check_py):
    # stop() drops the callback; its finalizer destroys the loop, which
    # must not leave the loop's counts off (activecnt < 0)
    _ok(check_py, '''
        loop = core.loop(default=False)
        t = loop.timer(10)
        class Conn:
            def __del__(self):
                loop.destroy()
            def cb(self):
                pass
        c = Conn(); t.start(c.cb); del c
        t.stop()
        assert 'destroyed' in repr(loop)
        print('OK')
    ''')


# -- 2. loop.destroy() re-entered while C uses the native loop ---------------

def test_destroy_reentered_from_dropped_callback(check_py):
    _ok(check_py, '''
        for how in ('run_callback', 'watcher', 'after_poll', 'idle'):
            loop = core.loop(default=False)
            class C:
                def __del__(self):
                    loop.destroy()
                def __call__(self, *a):
                    pass
            if how == 'run_callback':
                loop.run_callback(C())
            elif how == 'watcher':
                loop.timer(10).start(C())
            elif how == 'idle':
                loop.idle().start(C())
            else:
                t = loop.timer(0)
                t.start(C())
                del t
            loop.destroy()
            assert 'destroyed' in repr(loop), how
            try:
                loop.run_callback(print)
            except ValueError:
                pass
            else:
                raise AssertionError(how)
        print('OK')
    ''')


def test_destroy_reentered_from_repr_in_loopexit_listing(check_py):
    _ok(check_py, '''
        hub = H.get_hub()
        loop = hub.loop
        class Cb:
            def __call__(self):
                pass
            def __repr__(self):
                loop.destroy()
                return 'Cb()'
        ws = [loop.timer(10, ref=False) for i in range(5)]
        for w in ws:
            w.start(Cb())
        try:
            hub.switch()               # nothing keeps the loop alive: LoopExit
        except H.LoopExit as e:
            pass
        else:
            raise AssertionError('no LoopExit')
        assert 'destroyed' in repr(loop)
        print('OK')
    ''')


def test_destroy_reentered_from_gc_in_debug_walk(check_py):
    _ok(check_py, '''
        loop = core.loop(default=False)
        ws = [loop.timer(10) for i in range(50)]
        for w in ws:
            w.start(print)
        class Cycle:
            def __del__(self):
                loop.destroy()
        def garbage():
            for i in range(200):
                a = Cycle(); a.me = a
        gc.collect()
        gc.disable()
        garbage()
        gc.set_threshold(1, 1, 1)
        gc.enable()
        out = loop.debug()           # allocations inside: a GC pass runs
        gc.set_threshold(700, 10, 10)
        gc.collect()
        assert isinstance(out, list)
        assert 'destroyed' in repr(loop)
        print('OK')
    ''')


def test_debug_lists_handles(check_py):
    # the collect-then-build form of debug() still reports every handle
    _ok(check_py, '''
        import socket
        loop = core.loop(default=False)
        a, b = socket.socketpair()
        t = loop.timer(10); t.start(print)
        io1 = loop.io(a.fileno(), 1); io1.start(print)
        io2 = loop.io(a.fileno(), 2); io2.start(print)
        st = loop.debug()
        owners = [s.watcher for s in st]
        assert t in owners, st
        polls = [s for s in st if s.type == b'poll' and isinstance(s.watcher, tuple)]
        assert any(set(p.watcher) == {io1, io2} for p in polls), st
        assert any(s.watcher is loop for s in st), st
        loop.destroy()
        assert loop.debug() == ['Loop has been destroyed']
        print('OK')
    ''')
