"""LoopExit details, and LoopExit thrown into the parent by Hub.run()."""
import gevent_c.hub as H

MSG = 'This operation would block forever'


def test_hub_switch_from_main_loop_exit(check_py):
    out = check_py('''
        import gevent_c.hub as H
        hub = H.get_hub()
        try:
            hub.switch()
        except H.LoopExit as e:
            assert e.args[0] == 'This operation would block forever', e.args
            assert len(e.args) == 3, e.args
            assert e.args[1] is hub
            assert isinstance(e.args[2], list), e.args[2]
            assert e.hub is H.get_hub()
            assert str(e).splitlines()[0] == e.args[0], str(e)
            assert isinstance(e, Exception)
            print('ok')
        else:
            raise AssertionError('no LoopExit')
    ''', timeout=10)
    assert out.strip() == 'ok'


def test_loop_exit_repeatable(check_py):
    check_py('''
        import gevent_c.hub as H
        hub = H.get_hub()
        n = 0
        for i in range(2):
            try:
                hub.switch()
            except H.LoopExit:
                n += 1
        assert n == 2, n
        assert not hub.dead
        # and the hub still works
        log = []
        H.spawn_raw(log.append, 1)
        H.sleep(0.001)
        assert log == [1]
    ''', timeout=10)


def test_loop_exit_from_waiter_and_sleep(check_py):
    check_py('''
        import gevent_c.hub as H
        for fn in (lambda: H.Waiter().get(), lambda: H.sleep(10, ref=False)):
            try:
                fn()
            except H.LoopExit as e:
                assert e.args[0] == 'This operation would block forever'
                assert e.hub is H.get_hub()
            else:
                raise AssertionError('no LoopExit')
    ''', timeout=10)


def test_loop_exit_after_work_done(check_py):
    # callbacks run first, then LoopExit once nothing is left
    check_py('''
        import gevent_c.hub as H
        log = []
        H.spawn_raw(log.append, 1)
        hub = H.get_hub()
        t = hub.loop.timer(0.01)
        t.start(log.append, 2)
        try:
            H.Waiter().get()
        except H.LoopExit:
            pass
        else:
            raise AssertionError('no LoopExit')
        assert log == [1, 2], log
    ''', timeout=10)


def test_loop_exit_not_raised_while_blocked_greenlet_only(check_py):
    # A greenlet blocked forever does not keep the loop alive.
    check_py('''
        import gevent_c.hub as H
        g = H.spawn_raw(H.Waiter().get)
        try:
            H.Waiter().get()
        except H.LoopExit:
            pass
        assert not g.dead
    ''', timeout=10)


def test_loop_exit_hub_property_arg_counts(hub):
    assert H.LoopExit(MSG, hub, []).hub is hub
    assert H.LoopExit(MSG).hub is None
    assert H.LoopExit(MSG, hub).hub is None


def test_loop_exit_in_thread(hub):
    import threading
    res = []

    def target():
        try:
            H.Waiter().get()
        except H.LoopExit as e:
            res.append(e.hub is H.get_hub())
        except BaseException as e:  # noqa: BLE001
            res.append(e)

    t = threading.Thread(target=target)
    t.start()
    t.join(10)
    assert res == [True]
