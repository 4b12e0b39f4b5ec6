"""HTTP/1.0 load on 127.0.0.1 for run_peer_suites.py's gunicorn recycling check.

    python _http_load.py PORT SECONDS CONNECTIONS

CONNECTIONS greenlets (gevent on its default loop, libev, whatever loop the
server uses) each connect, send one GET, read the whole answer and close,
again and again for SECONDS.  Prints one JSON line: requests answered with a
complete 200 response (ok), connections refused, reset or cut short (errors),
and requests with no answer within 2 s (timeouts).
"""
import json
import sys
import time

from gevent import monkey
monkey.patch_all()

import gevent  # noqa: E402
import socket  # noqa: E402

REQUEST = b'GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n'


def main():
    port, seconds, conns = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
    counts = {'ok': 0, 'errors': 0, 'timeouts': 0}
    end = time.monotonic() + seconds

    def client():
        while time.monotonic() < end:
            try:
                s = socket.create_connection(('127.0.0.1', port), timeout=2)
                try:
                    s.sendall(REQUEST)
                    data = b''
                    while True:
                        chunk = s.recv(4096)
                        if not chunk:
                            break
                        data += chunk
                finally:
                    s.close()
                ok = data.startswith(b'HTTP/1.') and b' 200 ' in data[:16] and data.endswith(b'ok')
                counts['ok' if ok else 'errors'] += 1
            except socket.timeout:
                counts['timeouts'] += 1
            except OSError:
                counts['errors'] += 1
                gevent.sleep(0.01)

    gevent.joinall([gevent.spawn(client) for _ in range(conns)])
    print(json.dumps(counts))


if __name__ == '__main__':
    main()
