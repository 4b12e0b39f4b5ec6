"""The echo server's path in one process, counted by callgrind: instructions per round trip.

    python3 bench/echo_inproc.py [--impls gevent_c,gevent] [--conns 100] [--rounds 200,600]

N greenlets each serve one end of a socketpair with the echo server's code (wait for readable,
``recv_into``, ``send``); a driver sends one byte to every pair, then reads every answer back.
So each poll finds up to N connections ready, as a saturated server's does, and no client process
or machine load changes what is counted (``bench/echo.py --callgrind`` measures the real server,
but its count moves with how many connections each poll happens to find ready).  The same code
runs on gevent_c's hub and on gevent's (and ``gevent_c-io`` serves with the io watchers'
``recv_into()``/``send()``); each runs under callgrind for two numbers of rounds, and
the difference in instructions is divided by the difference in round trips, so start-up cancels
out.  The figure includes the driver's side (a send and a receive per round trip).

Run as ``echo_inproc.py --child IMPL CONNS ROUNDS`` it is the measured program.
"""
import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
import echo  # noqa: E402  (server_env, callgrind_total)


def child(impl, conns, rounds):
    import socket
    if impl.startswith('gevent_c'):
        import gevent_c.hub as H
    else:
        import gevent.hub as H
    hub = H.get_hub()
    loop = hub.loop
    pairs = [socket.socketpair() for _ in range(conns)]
    for a, b in pairs:
        a.setblocking(False)
        b.setblocking(False)
    buf = bytearray(64)

    def serve(a):
        w = loop.io(a.fileno(), 1)
        recv_into, send = a.recv_into, a.send
        while True:
            hub.wait(w)
            n = recv_into(buf)
            send(buf[:n])

    def serve_io(a):
        # gevent_c's io.recv_into()/send(): each waits on its watcher
        recv_into, send = loop.io(a.fileno(), 1).recv_into, loop.io(a.fileno(), 2).send
        while True:
            n = recv_into(buf)
            send(buf[:n])

    for a, _ in pairs:
        H.spawn_raw(serve_io if impl == 'gevent_c-io' else serve, a)
    H.sleep(0)
    ends = [(b, loop.io(b.fileno(), 1)) for _, b in pairs]
    for _ in range(rounds):
        for b, _ in ends:
            b.send(b'x')
        for b, w in ends:
            while True:
                try:
                    if b.recv(64) != b'x':
                        raise SystemExit('wrong echo')
                    break
                except BlockingIOError:
                    hub.wait(w)


def count(impl, conns, rounds, python):
    fd, out = tempfile.mkstemp(prefix='echo-inproc-cg-')
    os.close(fd)
    try:
        p = subprocess.run(['valgrind', '--tool=callgrind', '--callgrind-out-file=' + out, python,
                            __file__, '--child', impl, str(conns), str(rounds)],
                           env=echo.server_env(impl), capture_output=True, text=True)
        if p.returncode:
            raise SystemExit('%s: exit %d: %s' % (impl, p.returncode, p.stderr[-2000:]))
        return echo.callgrind_total(out)
    finally:
        os.unlink(out)


def main():
    if len(sys.argv) > 1 and sys.argv[1] == '--child':
        child(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
        return
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--impls', default='gevent_c,gevent_c-io,gevent')
    ap.add_argument('--conns', type=int, default=100)
    ap.add_argument('--rounds', default='200,600')
    ap.add_argument('--python', default=sys.executable)
    args = ap.parse_args()
    report(args.impls.split(','), args.conns, args.rounds, args.python)


def report(impls, conns=100, rounds='200,600', python=sys.executable):
    """Print instructions per round trip for each of impls (gevent_c, gevent)."""
    r1, r2 = (int(x) for x in rounds.split(','))
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))   # the checkout's gevent_c, as count() gives the child
    for impl in impls:
        try:
            __import__('gevent_c.hub' if impl.startswith('gevent_c') else 'gevent.hub')
        except ImportError as e:
            print('%-8s n/a (%s)' % (impl, e))
            continue
        i1 = count(impl, conns, r1, python)
        i2 = count(impl, conns, r2, python)
        per = (i2 - i1) / ((r2 - r1) * conns)
        print('%-8s %d connections: %s instructions per round trip' % (
            impl, conns, '{:,.0f}'.format(per)), flush=True)


if __name__ == '__main__':
    main()
