"""Stock Python RPyC client -> tether server (issue 5, point 9).

Run by CTest: python3 test_python_client.py <path to interop_server>. Starts the server on a
kernel-chosen loopback port, runs the matrix with Python's unittest, stops the server.
Fails (never skips) when rpyc cannot be imported: CI installs python3-rpyc.
"""
import math
import os
import subprocess
import sys
import time
import unittest

import rpyc  # noqa: E402  (a missing rpyc must fail the test loudly)
from rpyc.core import consts

SERVER_PATH = None
SERVER = None
PORT = None


def start_server(path, *args):
    proc = subprocess.Popen([path, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if not line.startswith("PORT "):
        proc.kill()
        raise RuntimeError(f"interop server did not report its port: {line!r}")
    return proc, int(line.split()[1])


def connect():
    return rpyc.connect("127.0.0.1", PORT, config={"sync_request_timeout": 30})


class PythonClientTest(unittest.TestCase):
    def setUp(self):
        self.conn = connect()
        self.root = self.conn.root

    def tearDown(self):
        self.conn.close()

    def test_add_both_spellings_and_kwargs(self):
        self.assertEqual(self.root.add(1, 2), 3)
        self.assertEqual(self.root.exposed_add(40, b=2), 42)
        self.assertEqual(self.root.answer, 42)

    def test_every_brine_type_round_trips(self):
        values = [None, True, False, 0, 1, -1, -48, -49, 159, 160, 2**63, -(2**63), 2**64 + 1, -(10**300),
                  int("7" * 4300), 1.5, -0.0, float("inf"), float("-inf"), 1e-300, complex(1.5, -2.0), b"",
                  b"x", b"abcd", b"y" * 255, b"z" * 256, "", "h\u00e9llo \u2603 \U0001F600", "s" * 300,
                  (), (1,), (1, (2, "x"), b"b"), tuple(range(300)), frozenset(), frozenset({1, "a", (2, 3)}),
                  slice(1, 2, 3), slice(None, "a", b"b"), Ellipsis, NotImplemented]
        for v in values:
            got = self.root.echo(v)
            self.assertEqual(type(got), type(v), repr(v)[:80])
            self.assertEqual(got, v, repr(v)[:80])
            if isinstance(v, float) and v == 0:
                self.assertEqual(math.copysign(1, got), math.copysign(1, v))
        nan = self.root.echo(float("nan"))
        self.assertTrue(math.isnan(nan))

    def test_list_and_dict_arguments_arrive_by_reference(self):
        self.assertEqual(self.root.sum_list([1, 2, 3, 4]), 10)
        self.assertEqual(self.root.sum_list(list(range(1000))), sum(range(1000)))
        self.assertEqual(self.root.dict_items({"a": 1, "b": 2}), (("a", 1), ("b", 2)))

    def test_big_bytes_both_ways(self):
        for n in (1 << 20, 32 << 20):
            data = os.urandom(n)                      # incompressible: sent compressed anyway (> 3000)
            self.assertEqual(self.root.bytes_len(data), n)
            compressible = b"tether" * (n // 6)
            self.assertEqual(self.root.echo(compressible), compressible)
            made = self.root.make_bytes(n)
            self.assertEqual(len(made), n)
            self.assertEqual(self.root.echo(made), made)

    def test_exceptions_map_to_builtins(self):
        cases = {"value": ValueError, "index": IndexError, "key": KeyError, "overflow": OverflowError,
                 "runtime": RuntimeError}
        for kind, exc in cases.items():
            with self.assertRaises(exc) as cm:
                self.root.fail(kind, f"{kind} message")
            self.assertEqual(cm.exception.args[0], f"{kind} message")
        with self.assertRaises(rpyc.GenericException) as cm:
            self.root.fail("custom", "boom")
        self.assertEqual(cm.exception.args, ("boom", 7))
        with self.assertRaises(TypeError):
            self.root.add("x", 1)

    def test_missing_attribute_is_attribute_error(self):
        with self.assertRaises(AttributeError):
            self.root.secret
        self.assertFalse(hasattr(self.root, "nothing_here"))
        self.assertEqual(getattr(self.root, "nothing_here", 5), 5)

    def test_callbacks(self):
        self.assertEqual(self.root.call(lambda x: x * 2, 21), 42)

        def bounce(n):
            return self.root.bounce(bounce, n)
        self.assertEqual(self.root.bounce(bounce, 10), 10)

    def test_callback_exception_reaches_python(self):
        def bad(x):
            raise ValueError("from python")
        with self.assertRaises(ValueError) as cm:
            self.root.call(bad, 1)
        self.assertIn("from python", str(cm.exception))

    def test_thousand_pipelined_async_calls(self):
        add = rpyc.async_(self.root.add)
        results = [add(i, 1) for i in range(1000)]
        self.assertEqual(sum(r.value for r in results), sum(range(1000)) + 1000)

    def test_container_object(self):
        c = self.root.container(5)
        self.assertEqual(len(c), 5)
        self.assertEqual(c[2], 20)
        self.assertEqual(c[-1], 40)
        with self.assertRaises(IndexError):
            c[5]
        self.assertEqual(list(c), [0, 10, 20, 30, 40])
        self.assertTrue(20 in c)
        self.assertFalse(25 in c)

    def test_pickle_refused(self):
        with self.assertRaises(ValueError) as cm:
            self.conn.sync_request(consts.HANDLE_PICKLE, self.root, 2)
        self.assertIn("pickling is disabled", str(cm.exception))

    def test_setattr_refused(self):
        with self.assertRaises(AttributeError):
            self.root.answer = 5

    def test_ping_repr_str(self):
        self.conn.ping()
        self.assertIn("InteropService", repr(self.root))
        self.assertIn("InteropService", str(self.root))


class TableEmptiesAfterDisconnect(unittest.TestCase):
    def test_object_table_empty_after_disconnect(self):
        c = connect()
        keep = [c.root.container(3), c.root.container(4), c.root.add]
        self.assertEqual(len(keep[0]), 3)
        c.close()
        deadline = time.monotonic() + 10
        while True:  # the server handles the first connection's close asynchronously
            probe = connect()
            n = probe.root.last_closed_exported()
            probe.close()
            if n == 0 or time.monotonic() > deadline:
                break
        self.assertEqual(n, 0)


class UncompressedServerTest(unittest.TestCase):
    """A tether server whose channels do not compress: its large bytes replies leave framed
    around the value's own storage (docs/rpc.md, "Large payloads"); RPyC must read them as
    ordinary frames."""

    @classmethod
    def setUpClass(cls):
        cls.server, cls.port = start_server(SERVER_PATH, "--no-compress")

    @classmethod
    def tearDownClass(cls):
        cls.server.stdin.close()
        cls.server.wait(timeout=10)

    def test_big_bytes_both_ways(self):
        conn = rpyc.connect("127.0.0.1", self.port, config={"sync_request_timeout": 30})
        try:
            root = conn.root
            for n in (64 * 1024 - 1, 64 * 1024, 1 << 20, 32 << 20):
                data = os.urandom(n)
                self.assertEqual(root.echo(data), data, n)
                made = root.make_bytes(n)
                self.assertEqual(len(made), n)
                self.assertEqual(root.echo(made), made, n)
                self.assertEqual(root.add(n, 1), n + 1)  # the stream is still in step
        finally:
            conn.close()


if __name__ == "__main__":
    SERVER_PATH = sys.argv[1]
    SERVER, PORT = start_server(SERVER_PATH)
    try:
        prog = unittest.main(argv=[sys.argv[0], "-v"], exit=False)
        ok = prog.result.wasSuccessful()
    finally:
        SERVER.stdin.close()
        try:
            SERVER.wait(timeout=10)
        except subprocess.TimeoutExpired:
            SERVER.kill()
            ok = False
    if SERVER.returncode not in (0, None):
        print(f"interop server exited with {SERVER.returncode}")
        ok = False
    sys.exit(0 if ok else 1)
