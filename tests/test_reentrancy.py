"""Re-entrancy: Python that C runs (a finalizer of a user object C drops, a
repr, a GC pass an allocation triggers) may close a watcher, destroy a loop
or kill a hub while C is in the middle of using them.  The rule
(docs/design.md, "Re-entrancy"): C releases no user object and calls no
Python while it holds a pointer into native loop, watcher or hub state;
released objects go to the loop's release list, dropped at a safe point.

Every scenario crashed (SIGSEGV) before; each runs in a fresh interpreter.
"""

import sys
import textwrap

import pytest

PRELUDE = '''
import gc, sys
import gevent_c.hub as H
from gevent_c import core
from _util import raises

def start_dropping(w, on_del):
    # start w with a bound method of an object nothing else holds: when C
    # drops that callback (start/stop/wait replacing it), the object's
    # finalizer runs on_del()
    class Conn:
        def __del__(self):
            on_del()
        def cb(self, *a):
            pass
    w.start(Conn().cb)

class Hostile:
    # the matrices' object: runs the scenario's do() in its finalizer, its
    # repr or its call, as the scenario's `where` says (both globals of the
    # scenario, looked up when it runs)
    def __del__(self):
        if where == 'del': do()
    def __repr__(self):
        if where == 'repr': do()
        return 'Hostile'
    def __call__(self, *a):
        if where == 'call': do()
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
        start_dropping(t, lambda: t.close())
        t.start(lambda: None)     # drops Conn's bound method: __del__ closes t
        assert 'closed' in repr(t) and not t.active, repr(t)
        raises(ValueError, 'closed', t.start, lambda: None)
        loop.destroy()
        print('OK')
    ''')


def test_start_old_callback_del_destroys_loop(check_py):
    _ok(check_py, '''
        for kind in ('timer', 'idle', 'prepare', 'check', 'io'):
            loop = core.loop(default=False)
            w = loop.io(0, 1) if kind == 'io' else (
                loop.timer(10) if kind == 'timer' else getattr(loop, kind)())
            start_dropping(w, lambda: loop.destroy())
            w.start(lambda *a: None)   # __del__ destroys the loop
            assert not w.active, kind
            raises(ValueError, 'destroyed', w.start, lambda *a: None)
        print('OK')
    ''')


def test_hub_wait_old_callback_del_closes_watcher(check_py):
    _ok(check_py, '''
        hub = H.get_hub()
        for action in ('close', 'stop'):
            t = hub.loop.timer(0.001)
            start_dropping(t, lambda: getattr(t, action)())
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
        start_dropping(t, lambda: loop.destroy())
        raises(ValueError, 'destroyed', hub.wait, t)
        print('OK')
    ''')


def test_stop_callback_del_destroys_loop(check_py):
    # stop() drops the callback; its finalizer destroys the loop, which
    # must not leave the loop's counts off (activecnt < 0)
    _ok(check_py, '''
        loop = core.loop(default=False)
        t = loop.timer(10)
        start_dropping(t, lambda: loop.destroy())
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


# -- a matrix: hostile callbacks and arguments on every watcher operation ----

def test_hostile_matrix_watchers(check_py):
    # each watcher kind x what the hostile object does x where it does it
    # (its finalizer, its repr, its call): every operation of the watcher
    # and the loop goes on, or raises ValueError; nothing crashes
    _ok(check_py, '''
        import itertools, socket
        KINDS = ['timer', 'timer1', 'idle', 'prepare', 'check', 'io', 'async_',
                 'fork', 'stat', 'signal']
        ACTIONS = ['close', 'stop', 'destroy', 'start_other', 'close_all']
        a, b = socket.socketpair()
        b.send(b'x')
        def mk(loop, kind):
            if kind == 'io': return loop.io(a.fileno(), 1)
            if kind == 'timer': return loop.timer(0)
            if kind == 'timer1': return loop.timer(0.001)
            if kind == 'stat': return loop.stat('.')
            if kind == 'signal': return loop.signal(10)
            return getattr(loop, kind)()
        n = 0
        for kind, act, where in itertools.product(KINDS, ACTIONS, ['del', 'repr', 'call']):
            loop = core.loop(default=False)
            ws = [mk(loop, kind) for i in range(3)]
            w = ws[0]
            def do():
                if act == 'close': w.close()
                elif act == 'stop': w.stop()
                elif act == 'destroy': loop.destroy()
                elif act == 'start_other':
                    try: ws[1].start(lambda *a: None)
                    except ValueError: pass
                elif act == 'close_all':
                    for x in ws: x.close()
            try:
                for x in ws:
                    x.start(Hostile(), Hostile())
                w.start(Hostile())
                repr(w); repr(ws[1])
                w.callback = Hostile(); w.args = (Hostile(),)
                w.feed(1, Hostile(), Hostile())
                loop.debug()
                try:
                    loop.run(nowait=True)
                except RuntimeError:
                    pass                  # destroy() from a callback: refused
                for x in ws:
                    x.stop()
                loop.debug()
                loop.destroy()
            except ValueError as e:
                assert 'destroyed' in str(e) or 'closed' in str(e), e
            for x in ws:
                x.close()
            loop.destroy()
            n += 1
        print(n, 'OK')
    ''', timeout=60)


def test_hostile_matrix_hub(check_py):
    # greenlets waiting on watchers whose old callbacks, reprs or calls
    # close, stop, destroy the loop or the hub, kill the waiters or block
    _ok(check_py, '''
        import itertools, greenlet
        ACTS = ['close', 'stop', 'loop_destroy', 'hub_destroy', 'kill', 'sleep0',
                'switch_hub']
        for act, where in itertools.product(ACTS, ['del', 'repr', 'call']):
            hub = H.get_hub()
            loop = hub.loop
            t, t2 = loop.timer(0.001), loop.timer(0.001)
            gl = []
            def do():
                try:
                    if act == 'close': t.close()
                    elif act == 'stop': t.stop()
                    elif act == 'loop_destroy': loop.destroy()
                    elif act == 'hub_destroy': hub.destroy(destroy_loop=True)
                    elif act == 'kill':
                        for g in gl: H.kill(g)
                    elif act == 'sleep0': H.sleep(0)
                    elif act == 'switch_hub': hub.switch()
                except (ValueError, RuntimeError, H.LoopExit,
                        H.BlockingSwitchOutError, greenlet.error):
                    pass
            def waiter(w):
                try:
                    hub.wait(w)
                except (ValueError, H.LoopExit, greenlet.GreenletExit):
                    pass
            hub.exception_stream = None
            try:
                t.start(Hostile(), Hostile()); t2.start(Hostile())
                g1, g2 = greenlet.greenlet(waiter), greenlet.greenlet(waiter)
                gl[:] = [g1, g2]
                g1.switch(t); g2.switch(t2)
                u = loop.timer(10, ref=False); u.start(Hostile())
                try:
                    H.sleep(0.01)
                except (ValueError, H.LoopExit, H.InvalidSwitchError):
                    pass                  # (a kill of a finished greenlet
                                          # resumes its parent, as in gevent)
                try:
                    hub.switch()      # LoopExit, listing the hostile reprs
                except (ValueError, H.LoopExit):
                    pass
                repr(hub); repr(loop)
            except (ValueError, H.LoopExit):
                pass
            cur = H._get_hub()
            if cur is not None and cur.loop is not None:
                cur.destroy(destroy_loop=True)
            H.set_hub(None)
        print('OK')
    ''', timeout=60)


def test_constructor_arguments_destroy_loop(check_py):
    # ref's __bool__ and priority's __index__ run before the native handle
    # is made: one that destroys the loop gets ValueError, not a segfault
    _ok(check_py, '''
        args = {'timer': (0.1,), 'io': (0, 1), 'stat': ('.',), 'signal': (10,)}
        for kind in ['timer', 'io', 'idle', 'prepare', 'check', 'fork', 'async_',
                     'stat', 'signal']:
            for attr in ('ref', 'priority'):
                L = core.loop(default=False)
                class B:
                    def __bool__(self):
                        L.destroy()
                        return True
                    def __index__(self):
                        L.destroy()
                        return 0
                raises(ValueError, 'destroyed',
                       lambda: getattr(L, kind)(*args.get(kind, ()), **{attr: B()}))
        print('OK')
    ''')


@pytest.mark.skipif(sys.version_info >= (3, 12),
                    reason="CPython 3.12+ runs the GC from the eval loop's breaker, "
                           "never inside an object's allocation")
def test_run_callback_gc_destroys_loop(check_py):
    # the callback object's allocation runs a GC pass whose finalizers
    # destroy the loop: ValueError, nothing queued on a destroyed loop
    _ok(check_py, '''
        L = core.loop(default=False)
        class Cycle:
            def __del__(self):
                L.destroy()
        gc.collect()
        gc.disable()
        for i in range(100):
            a = Cycle(); a.me = a
        del a
        gc.set_threshold(1, 1, 1)
        gc.enable()
        try:
            L.run_callback(print, 'x')   # called directly: the GC pass comes from its own allocation
        except ValueError as e:
            assert 'destroyed' in str(e), e
        else:
            raise AssertionError('queued on a destroyed loop: %r' % L)
        finally:
            gc.set_threshold(700, 10, 10)
        print('OK')
    ''')
