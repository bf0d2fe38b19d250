"""examples/calc_server against stock Python RPyC clients, as a careless or hostile user runs it.

    python3 test_calc_server.py PATH/TO/calc_server

Users copy the examples: the example must give right answers (no C++ overflow passed off as a
sum), must not leak the server's addresses, and must survive clients that vanish while the
server is calling back into them (os._exit in the callback; SIGKILL ten callbacks deep).
"""

import os
import re
import resource
import socket
import struct
import signal
import subprocess
import sys
import textwrap
import unittest

import rpyc

SERVER = None


def start_server(address_space=None):
    def limit():
        if address_space:
            resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))

    proc = subprocess.Popen([SERVER, "--host", "127.0.0.1", "--port", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=limit)
    line = proc.stdout.readline()
    m = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
    if not m:
        proc.kill()
        raise RuntimeError("calc_server did not start: %r %r" % (line, proc.stderr.read()))
    return proc, int(m.group(1))


def run_client(port, body, timeout=60):
    """Runs `body` in a fresh Python process with `c` connected to the server."""
    code = "import os, signal, rpyc\nc = rpyc.connect('127.0.0.1', %d)\n%s\n" % (port, textwrap.dedent(body))
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout)


class CalcServerTest(unittest.TestCase):
    def setUp(self):
        self.proc, self.port = start_server()

    def tearDown(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
        self.proc.stdout.close()
        self.proc.stderr.close()

    def alive_and_serving(self):
        self.assertIsNone(self.proc.poll(), "calc_server died (exit status %r)" % self.proc.returncode)
        c = rpyc.connect("127.0.0.1", self.port)
        try:
            self.assertEqual(c.root.add(40, 2), 42)
        finally:
            c.close()

    def test_add_is_exact_or_raises_overflow(self):
        c = rpyc.connect("127.0.0.1", self.port)
        try:
            self.assertEqual(c.root.add(2**62, 2**62 - 1), 2**63 - 1)
            self.assertEqual(c.root.add(-2**63, 0), -2**63)
            for a, b in ((2**62, 2**62), (-2**63, -1), (2**63 - 1, 1)):
                with self.assertRaises(OverflowError, msg="add(%d, %d)" % (a, b)):
                    c.root.add(a, b)
            self.assertEqual(c.root.add(2, 3), 5)
        finally:
            c.close()

    def test_repr_and_hash_do_not_leak_addresses(self):
        maps = []
        with open("/proc/%d/maps" % self.proc.pid) as f:
            for line in f:
                lo, hi = line.split()[0].split("-")
                maps.append((int(lo, 16), int(hi, 16)))

        def mapped(n):
            return any(lo <= n < hi for lo, hi in maps)

        c = rpyc.connect("127.0.0.1", self.port)
        try:
            texts = [repr(c.root), str(c.root), repr(c.root.store), str(c.root.store)]
            numbers = [int(h, 16) for t in texts for h in re.findall(r"0x([0-9a-fA-F]+)", t)]
            numbers.append(hash(c.root))
            numbers.append(hash(c.root) << 4)
            for n in numbers:
                self.assertFalse(mapped(n), "a number the server sent (%x) is an address in its memory" % n)
            self.assertTrue(repr(c.root).startswith("<tether.CalculatorService object at 0x"), repr(c.root))
        finally:
            c.close()

    def test_client_exiting_inside_a_callback_does_not_kill_the_server(self):
        # The reproduction: os._exit while the server waits for the callback's reply.
        r = run_client(self.port, "c.root.apply(lambda x: os._exit(0), 1)")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.alive_and_serving()

    def test_client_killed_ten_callbacks_deep_does_not_kill_the_server(self):
        r = run_client(self.port, """
            def f(x):
                if x >= 10:
                    os.kill(os.getpid(), signal.SIGKILL)
                return c.root.apply(f, x + 1)
            c.root.apply(f, 1)
        """)
        self.assertEqual(r.returncode, -signal.SIGKILL, r.stderr)
        self.alive_and_serving()

    def test_many_clients_leave_callbacks_unanswered_then_exit(self):
        procs = [subprocess.Popen([sys.executable, "-c", textwrap.dedent("""
            import os, sys, rpyc
            c = rpyc.connect('127.0.0.1', %d)
            def f(x):
                sys.stdout.write('in callback\\n'); sys.stdout.flush()
                sys.stdin.readline()   # hold the callback until told
                os._exit(0)
            c.root.apply(f, 1)
        """ % self.port)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for _ in range(20)]
        try:
            for p in procs:
                self.assertEqual(p.stdout.readline(), "in callback\n")
            self.alive_and_serving()  # served while 20 callbacks are pending
            for p in procs:
                p.stdin.write("go\n")
                p.stdin.flush()
            for p in procs:
                self.assertEqual(p.wait(timeout=30), 0)
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                p.stdin.close()
                p.stdout.close()
        self.alive_and_serving()

    def test_announced_frames_do_not_starve_a_legitimate_large_call(self):
        # The report: 20 peers announce 60 MiB frames and send a byte; under a 1 GiB
        # address-space limit a legitimate 32 MiB call then failed with bad_alloc.
        self.tearDown()
        self.proc, self.port = start_server(address_space=1 << 30)
        peers = []
        try:
            for _ in range(20):
                s = socket.create_connection(("127.0.0.1", self.port))
                s.sendall(struct.pack(">IB", 60 << 20, 0))
                peers.append(s)
            self.alive_and_serving()  # their headers have been read
            for s in peers:
                s.sendall(b"x")
            self.alive_and_serving()
            c = rpyc.connect("127.0.0.1", self.port, config={"sync_request_timeout": 60})
            try:
                data = os.urandom(32 << 20)
                self.assertEqual(c.root.echo_bytes(data), data)
            finally:
                c.close()
        finally:
            for s in peers:
                s.close()
        self.alive_and_serving()

    def test_callback_and_remote_exception_still_work(self):
        c = rpyc.connect("127.0.0.1", self.port)
        try:
            self.assertEqual(c.root.apply(lambda x: x * 10, 4), 40)
            with self.assertRaises(ValueError):
                c.root.fail("bad")
        finally:
            c.close()


if __name__ == "__main__":
    SERVER = sys.argv.pop(1)
    unittest.main(verbosity=2)
