"""A throw-away DNS server for the resolver tests: dnsmasq on 127.0.0.1.

``DnsServer(records)`` writes ``records`` (name -> list of IPv4/IPv6
addresses) to a hosts file and starts ``dnsmasq`` on a free port serving
only that zone: every other name gets NXDOMAIN (``--local=/test/`` and
``--local=/#/``), nothing is forwarded, and
neither /etc/hosts nor /etc/resolv.conf is read.  Reverse (PTR) lookups of
the zone's addresses work too.  Use it as a context manager, or through a
pytest fixture that calls ``start()``/``stop()``.

``find_dnsmasq()`` returns the binary's path or None (Debian package
``dnsmasq-base``, installed by ``make deps``).
"""
import os
import random
import shutil
import socket
import struct
import subprocess
import tempfile
import time

__all__ = ['DnsServer', 'find_dnsmasq', 'silent_udp_server']


def find_dnsmasq():
    path = shutil.which('dnsmasq')
    if path:
        return path
    for d in ('/usr/sbin', '/sbin', '/usr/local/sbin'):
        p = os.path.join(d, 'dnsmasq')
        if os.access(p, os.X_OK):
            return p
    return None


def _free_port():
    """A port free for both UDP and TCP on 127.0.0.1 (dnsmasq binds both)."""
    for _ in range(50):
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            u.bind(('127.0.0.1', 0))
            port = u.getsockname()[1]
            t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                t.bind(('127.0.0.1', port))
            except OSError:
                continue
            finally:
                t.close()
            return port
        finally:
            u.close()
    raise RuntimeError('no free port')


def _query_packet(name, qtype=1):
    qid = random.randrange(1, 65535)
    header = struct.pack('!HHHHHH', qid, 0x0100, 1, 0, 0, 0)
    qname = b''.join(bytes([len(label)]) + label.encode('ascii')
                     for label in name.split('.') if label) + b'\0'
    return qid, header + qname + struct.pack('!HH', qtype, 1)


def dns_query_ok(port, name='ready.test', timeout=0.2):
    """True if a DNS server on 127.0.0.1:port answers a query for name."""
    qid, pkt = _query_packet(name)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.settimeout(timeout)
        s.sendto(pkt, ('127.0.0.1', port))
        data = s.recv(512)
        return len(data) >= 12 and struct.unpack('!H', data[:2])[0] == qid
    except OSError:
        return False
    finally:
        s.close()


class DnsServer(object):
    """dnsmasq serving ``records`` ({name: [address, ...]}) on 127.0.0.1."""

    def __init__(self, records, nxdomain_zones=('test',)):
        self.records = dict(records)
        self.records.setdefault('ready.test', ['10.255.255.254'])
        self.nxdomain_zones = tuple(nxdomain_zones)
        self.port = None
        self.proc = None
        self.tmpdir = None

    @property
    def server(self):
        """The 'ip:port' string to give a resolver's ``servers`` option."""
        return '127.0.0.1:%d' % self.port

    def start(self, timeout=10.0):
        binary = find_dnsmasq()
        if binary is None:
            raise RuntimeError('dnsmasq not found (Debian package dnsmasq-base)')
        self.tmpdir = tempfile.mkdtemp(prefix='gevent_c-dns-')
        hosts = os.path.join(self.tmpdir, 'hosts')
        with open(hosts, 'w') as f:
            for name, addrs in self.records.items():
                for addr in addrs:
                    f.write('%s %s\n' % (addr, name))
        os.chmod(self.tmpdir, 0o755)
        os.chmod(hosts, 0o644)
        deadline = time.monotonic() + timeout
        last_err = ''
        while time.monotonic() < deadline:
            self.port = _free_port()
            args = [binary, '--no-daemon', '--conf-file=/dev/null', '--pid-file=',
                    '--no-resolv', '--no-hosts', '--no-poll',
                    '--port=%d' % self.port, '--listen-address=127.0.0.1',
                    '--bind-interfaces', '--addn-hosts=' + hosts,
                    '--cache-size=0', '--log-facility=-', '--quiet-dhcp']
            args += ['--local=/%s/' % z for z in self.nxdomain_zones]
            # Every other name (search-domain variants, unknown reverse
            # lookups) gets NXDOMAIN too, not REFUSED.
            args.append('--local=/#/')
            if hasattr(os, 'getuid') and os.getuid() == 0:
                args.append('--user=root')   # do not drop to an account that may not exist
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    last_err = self.proc.stderr.read().decode('utf-8', 'replace')
                    break
                if dns_query_ok(self.port):
                    return self
                time.sleep(0.02)
            else:
                break
            # dnsmasq exited (a port race?): try another port.
        self.stop()
        raise RuntimeError('dnsmasq did not start: %s' % last_err.strip())

    def stop(self):
        proc, self.proc = self.proc, None
        if proc is not None:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            if proc.stderr is not None:
                proc.stderr.close()
        if self.tmpdir is not None:
            shutil.rmtree(self.tmpdir, ignore_errors=True)
            self.tmpdir = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class silent_udp_server(object):
    """A UDP socket bound on 127.0.0.1 that never answers (for timeouts)."""

    def __enter__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(('127.0.0.1', 0))
        self.port = self.sock.getsockname()[1]
        self.server = '127.0.0.1:%d' % self.port
        return self

    def __exit__(self, *exc):
        self.sock.close()
