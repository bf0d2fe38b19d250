"""Stock Python RPyC registries and registry clients against tether (wire spec §16).

Run by CTest: python3 test_python_registry.py <registry_main> <announced_server>
(PYTHONPATH may name a stock RPyC 6.x tree; the 6.x CTest entry checks that it imports as 6.x.)

TetherRegistryTest: stock UDPRegistryClient and TCPRegistryClient against tether's registry:
RPyC's own tests/test_registry.py cases (api, pruning, listing with a host filter), listing
refused by default, garbage datagrams ignored (and counted) without disturbing service.

StockRegistryTest: a tether server auto-registering with a stock UDPRegistryServer and a stock
TCPRegistryServer, found and called through rpyc.discover and rpyc.connect_by_service (and
through tether's own discover_sync / connect_by_service_sync), and unregistered when it shuts
down on SIGTERM.

TetherEverywhereTest: rpyc.discover / rpyc.connect_by_service through tether's registry to a
tether server.

Every wait has a deadline. The one sleep is in the pruning test, where time passing is what
is tested (as in RPyC's own test). Fails (never skips) when rpyc cannot be imported.
"""
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import unittest

import rpyc  # noqa: E402  (a missing rpyc must fail the test loudly)
from rpyc.utils.registry import TCPRegistryClient, TCPRegistryServer, UDPRegistryClient, UDPRegistryServer

REGISTRY_MAIN = None
ANNOUNCED_SERVER = None
START_TIMEOUT = 30
EVENT_TIMEOUT = 10
PRUNING_MS = 1000


class Child:
    """A helper program; its stdout lines arrive through a queue (bounded waits)."""

    def __init__(self, *argv):
        self.proc = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True)
        self.lines = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def expect(self, prefix, timeout=START_TIMEOUT):
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{self.proc.args[0]} printed no {prefix!r} line within {timeout} s")
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError(f"{self.proc.args[0]} exited ({self.proc.wait()}) before printing {prefix!r}")
            if line.startswith(prefix):
                return line

    def stop(self):
        """SIGTERM, then wait for a clean exit."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=START_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"{self.proc.args[0]} did not exit on SIGTERM")
        self.reader.join(timeout=START_TIMEOUT)
        self.proc.stdout.close()
        return code


class TetherRegistry(Child):
    def __init__(self, *args):
        super().__init__(REGISTRY_MAIN, *args)
        self.udp_port = int(self.expect("UDP ").split()[1])
        self.tcp_port = int(self.expect("TCP ").split()[1])


class AnnouncedServer(Child):
    def __init__(self, registry_url, ident):
        super().__init__(ANNOUNCED_SERVER, "--registry", registry_url, "--id", ident, "--host", "127.0.0.1")
        self.port = int(self.expect("PORT ").split()[1])


def udp_client(port):
    return UDPRegistryClient(ip="127.0.0.1", port=port, timeout=2)


def tcp_client(port):
    return TCPRegistryClient(ip="127.0.0.1", port=port, timeout=2)


class TetherRegistryTest(unittest.TestCase):
    """RPyC's test_registry.py cases, stock clients, tether registry."""

    def setUp(self):
        self.registry = TetherRegistry("--pruning-ms", str(PRUNING_MS), "--allow-listing")

    def tearDown(self):
        self.assertEqual(self.registry.stop(), 0)

    def clients(self):
        return [("udp", udp_client(self.registry.udp_port)), ("tcp", tcp_client(self.registry.tcp_port))]

    def test_api(self):
        for kind, c in self.clients():
            with self.subTest(kind):
                self.assertTrue(c.register(("FOO",), 12345))
                self.assertTrue(c.register(("FOO",), 45678))
                res = c.discover("FOO")
                self.assertEqual(set(p for _, p in res), {12345, 45678})
                self.assertEqual(res, (("127.0.0.1", 12345), ("127.0.0.1", 45678)))  # oldest first
                c.unregister(12345)
                deadline = time.monotonic() + EVENT_TIMEOUT  # UDP's UNREGISTER is not acknowledged
                while set(p for _, p in c.discover("FOO")) != {45678} and time.monotonic() < deadline:
                    pass
                self.assertEqual(set(p for _, p in c.discover("FOO")), {45678})
                self.assertEqual(set(c.list()), {"FOO"})
                self.assertTrue(c.register(("BAR",), 54321))
                self.assertEqual(set(c.list()), {"FOO", "BAR"})
                c.unregister(45678)
                c.unregister(54321)
                deadline = time.monotonic() + EVENT_TIMEOUT
                while c.list() and time.monotonic() < deadline:
                    pass
                self.assertEqual(c.list(), ())

    def test_pruning(self):
        for kind, c in self.clients():
            with self.subTest(kind):
                c.register(("BAR",), 17171)
                self.assertEqual(set(p for _, p in c.discover("BAR")), {17171})
                time.sleep(PRUNING_MS / 1000 + 0.5)  # time passing is what is tested here
                self.assertEqual(c.discover("BAR"), ())

    def test_listing(self):
        for kind, c in self.clients():
            with self.subTest(kind):
                c.register(("FOO",), 12345)
                c.register(("BAR",), 54321, interface="127.0.0.2")
                host_ip = c.discover("FOO")[0][0]
                self.assertEqual(c.discover("BAR")[0][0], "127.0.0.2")
                self.assertEqual(set(c.list()), {"FOO", "BAR"})
                self.assertEqual(set(c.list(filter_host=host_ip)), {"FOO"})

    def test_garbage_is_ignored_and_counted(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            for payload in (b"\xff\xfe junk", b"x" * 4000, b"\x02"):
                s.sendto(payload, ("127.0.0.1", self.registry.udp_port))
        finally:
            s.close()
        c = udp_client(self.registry.udp_port)
        self.assertTrue(c.register(("AFTER",), 1111))
        self.assertEqual(c.discover("AFTER"), (("127.0.0.1", 1111),))
        self.registry.proc.send_signal(signal.SIGTERM)
        stats = self.registry.expect("STATS ")
        self.assertIn("garbage=1", stats)  # b"\x02" is an empty tuple: brine, but not a request
        self.assertIn("oversized=1", stats)
        self.assertEqual(self.registry.proc.wait(timeout=START_TIMEOUT), 0)


class TetherRegistryDefaultsTest(unittest.TestCase):
    def test_listing_refused_by_default(self):
        reg = TetherRegistry()
        try:
            self.assertIsNone(udp_client(reg.udp_port).list())
            with self.assertRaises(rpyc.utils.factory.ForbiddenError):
                rpyc.list_services(registrar=tcp_client(reg.tcp_port))
        finally:
            self.assertEqual(reg.stop(), 0)


def recording(base):
    """A stock registry server class that signals additions and removals."""

    class Recording(base):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.added = threading.Event()
            self.removed = threading.Event()
            self.events = []

        def on_service_added(self, name, addrinfo):
            self.events.append(("added", name, addrinfo))
            self.added.set()

        def on_service_removed(self, name, addrinfo):
            self.events.append(("removed", name, addrinfo))
            self.removed.set()

    return Recording


class StockRegistryTest(unittest.TestCase):
    """A tether server announcing itself to stock Python registries."""

    def check(self, server_class, scheme, client_class):
        registry = recording(server_class)(host="127.0.0.1", port=0)
        thread = threading.Thread(target=registry.start, daemon=True)
        thread.start()
        server = None
        try:
            server = AnnouncedServer(f"{scheme}://127.0.0.1:{registry.port}", f"tether-{scheme}")
            port = server.port
            self.assertTrue(registry.added.wait(EVENT_TIMEOUT), "the tether server never registered")
            self.assertEqual(registry.events[0], ("added", "ECHO", ("127.0.0.1", server.port)))
            registrar = client_class(ip="127.0.0.1", port=registry.port)
            # tether's own client against the stock registry: QUERY, then a call.
            found = subprocess.run([REGISTRY_MAIN, "--discover", "echo", "--registry",
                                    f"{scheme}://127.0.0.1:{registry.port}"], capture_output=True, text=True,
                                   timeout=START_TIMEOUT)
            self.assertEqual(found.returncode, 0, found.stderr)
            self.assertEqual(found.stdout.splitlines(), [f"FOUND 127.0.0.1:{port}", f"CALLED tether-{scheme}"])
            self.assertEqual(tuple(rpyc.discover("ECHO", registrar=registrar)), (("127.0.0.1", server.port),))
            conn = rpyc.connect_by_service("echo", registrar=registrar)
            try:
                self.assertEqual(conn.root.whoami(), f"tether-{scheme}")
                self.assertEqual(conn.root.add(40, 2), 42)
            finally:
                conn.close()
            self.assertEqual(server.stop(), 0)
            server = None
            self.assertTrue(registry.removed.wait(EVENT_TIMEOUT), "the tether server did not unregister")
            self.assertEqual(registry.events[-1], ("removed", "ECHO", ("127.0.0.1", port)))
            with self.assertRaises(rpyc.utils.factory.DiscoveryError):
                rpyc.discover("ECHO", registrar=registrar)
        finally:
            if server:
                server.stop()
            registry.close()
            thread.join(timeout=10)

    def test_udp_registry(self):
        self.check(UDPRegistryServer, "udp", UDPRegistryClient)

    def test_tcp_registry(self):
        self.check(TCPRegistryServer, "tcp", TCPRegistryClient)


class TetherEverywhereTest(unittest.TestCase):
    """rpyc.discover / rpyc.connect_by_service through tether's registry to tether servers."""

    def test_discover_and_connect_by_service(self):
        registry = TetherRegistry()
        servers = []
        try:
            servers = [AnnouncedServer(f"udp://127.0.0.1:{registry.udp_port}", f"s{i}") for i in range(2)]
            registrar = udp_client(registry.udp_port)
            deadline = time.monotonic() + EVENT_TIMEOUT
            found = ()
            while len(found) < 2 and time.monotonic() < deadline:
                try:
                    found = rpyc.discover("ECHO", registrar=registrar)
                except rpyc.utils.factory.DiscoveryError:
                    found = ()
            self.assertEqual(set(found), {("127.0.0.1", s.port) for s in servers})
            conn = rpyc.connect_by_service("ECHO", registrar=tcp_client(registry.tcp_port))
            try:
                self.assertIn(conn.root.whoami(), {"s0", "s1"})
            finally:
                conn.close()
        finally:
            for s in servers:
                self.assertEqual(s.stop(), 0)
            self.assertEqual(registry.stop(), 0)


if __name__ == "__main__":
    REGISTRY_MAIN, ANNOUNCED_SERVER = sys.argv[1], sys.argv[2]
    del sys.argv[1:3]
    print(f"rpyc {rpyc.__version__} from {os.path.dirname(rpyc.__file__)}", flush=True)
    unittest.main(verbosity=2)
