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


def connect(port=None):
    return rpyc.connect("127.0.0.1", PORT if port is None else port, config={"sync_request_timeout": 30})


def server_stats(root):
    """The server's ChannelStats of this connection (channel.hpp), as a dict."""
    return dict(root.channel_stats())


def delta(before, after):
    return {k: after[k] - before[k] for k in after}


def client_channel(conn):
    """The stock client's Channel; `compress` decides whether it compresses frames over
    COMPRESSION_THRESHOLD (3000 bytes) -- the same attribute in RPyC 5.3 and 6.x."""
    ch = conn._channel
    if not hasattr(ch, "compress"):
        raise AssertionError(f"rpyc {rpyc.__version__}: {type(ch).__name__} has no 'compress' attribute")
    return ch


def wait_for(condition, timeout, what):
    """Polls condition() until it returns something other than None, at most `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        got = condition()
        if got is not None:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.005)  # a poll interval, not a synchronisation: the deadline bounds the wait


# fail(kind, message) -> (Python class, expected args, the text after "builtins.<Class>: " in
# the remote traceback). src/rpc/vinegar.cpp does the mapping.
FAIL_CASES = {
    "value": (ValueError, ("value message",), "value message"),                  # std::invalid_argument
    "domain": (ValueError, ("domain message",), "domain message"),               # std::domain_error
    "index": (IndexError, ("index message",), "index message"),                  # std::out_of_range
    "key": (KeyError, ("key message",), "key message"),                          # PyError("KeyError")
    "type": (TypeError, ("type message",), "type message"),                      # PyError("TypeError")
    "overflow": (OverflowError, ("overflow message",), "overflow message"),      # std::overflow_error
    "underflow": (ArithmeticError, ("underflow message",), "underflow message"),  # std::underflow_error
    "bad_alloc": (MemoryError, (), ""),                                          # std::bad_alloc
    "timeout": (TimeoutError, ("timeout message",), "timeout message"),          # tether::Timeout
    "disconnected": (ConnectionError, ("disconnected message",), "disconnected message"),  # tether::Disconnected
    "limit": (RuntimeError, ("LimitExceeded: limit message",), "LimitExceeded: limit message"),
    "protocol": (RuntimeError, ("ProtocolError: protocol message",), "ProtocolError: protocol message"),
    "cancelled": (RuntimeError, ("Cancelled: cancelled message",), "Cancelled: cancelled message"),
    "usage": (RuntimeError, ("UsageError: usage message",), "UsageError: usage message"),
    "io": (RuntimeError, ("IoError: io message: Broken pipe",), "IoError: io message: Broken pipe"),
    "runtime": (RuntimeError, ("runtime message",), "runtime message"),           # std::runtime_error
    "logic": (RuntimeError, ("logic message",), "logic message"),                 # other std::exception
    "not_std": (RuntimeError, ("unknown C++ exception",), "unknown C++ exception"),  # throw 42
}


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
        # The stock client compresses every frame over 3000 bytes, and so does this server:
        # the server's channel counters show each large request arrived compressed and each
        # large reply left compressed.
        for n in (1 << 20, 32 << 20):
            data = os.urandom(n)                      # incompressible: sent compressed anyway (> 3000)
            s0 = server_stats(self.root)
            self.assertEqual(self.root.bytes_len(data), n)
            d = delta(s0, server_stats(self.root))
            self.assertEqual(d["compressed_in"], 1, d)
            self.assertGreaterEqual(d["payload_bytes_in"], n, d)
            compressible = b"tether" * (n // 6)
            s0 = server_stats(self.root)
            self.assertEqual(self.root.echo(compressible), compressible)
            d = delta(s0, server_stats(self.root))
            self.assertEqual(d["compressed_in"], 1, d)
            self.assertEqual(d["compressed_out"], 1, d)
            self.assertLess(d["wire_bytes_in"], n // 20, d)   # it really was deflated on the wire
            self.assertGreaterEqual(d["payload_bytes_in"], n, d)
            made = self.root.make_bytes(n)
            self.assertEqual(len(made), n)
            self.assertEqual(self.root.echo(made), made)

    def test_uncompressed_client_big_bytes_both_ways(self):
        # The client's channel with compression off: its large frames must reach the server
        # raw (compressed_in unchanged, the whole payload on the wire) and still round-trip;
        # the server (compressing) answers with compressed frames.
        ch = client_channel(self.conn)
        self.assertTrue(ch.compress)
        ch.compress = False
        for n in (1 << 20, 32 << 20):
            for data in (os.urandom(n), b"tether" * (n // 6)):
                s0 = server_stats(self.root)
                self.assertEqual(self.root.echo(data), data, n)
                d = delta(s0, server_stats(self.root))
                self.assertEqual(d["compressed_in"], 0, d)
                self.assertGreaterEqual(d["wire_bytes_in"], len(data), d)
                self.assertEqual(d["compressed_out"], 1, d)
            made = self.root.make_bytes(n)
            self.assertEqual(len(made), n)
            self.assertEqual(self.root.echo(made), made)
        # control: with compression back on, the same counter moves
        ch.compress = True
        data = b"tether" * ((1 << 20) // 6)
        s0 = server_stats(self.root)
        self.assertEqual(self.root.echo(data), data)
        d = delta(s0, server_stats(self.root))
        self.assertEqual(d["compressed_in"], 1, d)
        self.assertLess(d["wire_bytes_in"], len(data) // 20, d)

    def test_exceptions_map_to_builtins(self):
        # every kind the server can throw is covered here
        self.assertEqual(set(self.root.fail_kinds()), set(FAIL_CASES) | {"stop", "custom"})
        for kind, (exc, args, text) in FAIL_CASES.items():
            with self.subTest(kind=kind):
                with self.assertRaises(exc) as cm:
                    self.root.fail(kind, f"{kind} message")
                e = cm.exception
                # the builtin itself (RPyC raises a subclass of it with the same name), not a
                # GenericException nor a subclass such as OverflowError for ArithmeticError
                self.assertEqual(type(e).__name__, exc.__name__)
                self.assertIs(type(e).__mro__[1], exc)
                self.assertEqual(e.args, args)
                tb = getattr(e, "_remote_tb", None)
                if tb is None:  # a client without _remote_tb: the text is in str(e)
                    tb = str(e)
                self.assertIn("<C++ exception in tether CALL handler>", tb)
                self.assertIn(f"builtins.{exc.__name__}: {text}".rstrip(), tb)
                self.assertNotIn(".cpp", tb)  # a description, never file paths
                self.assertEqual(self.root.add(1, 2), 3)  # the connection is still usable
        with self.assertRaises(StopIteration):
            self.root.fail("stop", "ignored")
        with self.assertRaises(rpyc.GenericException) as cm:
            self.root.fail("custom", "boom")
        self.assertEqual(cm.exception.args, ("boom", 7))
        self.assertEqual(type(cm.exception).__name__, "calc.CalcError")
        with self.assertRaises(TypeError) as cm:
            self.root.add("x", 1)
        self.assertIn("argument 1: expected int", cm.exception.args[0])

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

    def test_attribute_routes_are_checked(self):
        # CVE-2019-16328 was one handler reaching an attribute without the policy check. Every
        # handler that reaches an attribute is sent raw here, on the root and on a Class<T>
        # object, and must be refused by the policy; the connection keeps serving afterwards.
        container = self.root.container(3)
        routes = []
        for obj in (self.root, container):
            routes += [
                ("getattr __class__", consts.HANDLE_GETATTR, (obj, "__class__"), "__class__"),
                ("getattr __dict__", consts.HANDLE_GETATTR, (obj, "__dict__"), "__dict__"),
                ("callattr __init__", consts.HANDLE_CALLATTR, (obj, "__init__", (), ()), "__init__"),
                ("callattr __getattribute__", consts.HANDLE_CALLATTR,
                 (obj, "__getattribute__", ("__class__",), ()), "__getattribute__"),
                ("cmp __add__", consts.HANDLE_CMP, (obj, 1, "__add__"), "__add__"),
                ("cmp __init__", consts.HANDLE_CMP, (obj, 1, "__init__"), "__init__"),
                ("ctxexit", consts.HANDLE_CTXEXIT, (obj, None), "__exit__"),
            ]
        # names that exist: the refusal is the policy (no allow_setattr / allow_delattr), not a
        # missing attribute
        self.assertEqual(self.root.answer, 42)
        routes += [
            ("delattr answer", consts.HANDLE_DELATTR, (self.root, "answer"), "answer"),
            ("setattr answer", consts.HANDLE_SETATTR, (self.root, "answer", 5), "answer"),
        ]
        for what, handler, args, name in routes:
            with self.subTest(route=what, obj=repr(args[0])):
                with self.assertRaises(AttributeError) as cm:
                    self.conn.sync_request(handler, *args)
                self.assertIn(f"cannot access '{name}'", str(cm.exception))
        self.assertEqual(self.root.answer, 42)  # neither deleted nor overwritten
        self.assertEqual(self.root.add(1, 2), 3)
        self.assertEqual(len(container), 3)

    def test_rpyc_cve_classes_are_refused(self):
        # The names RPyC's CVEs went through (CVE-2019-16328: attribute-check bypass;
        # CVE-2024-27758: __array__ / __reduce__ dunders reached through a netref) against
        # every handler that takes a name or an object, on the root and on a Class<T> object,
        # under the default policy. Each is refused and the connection keeps serving.
        names = ["__class__", "__dict__", "__globals__", "__subclasses__", "__init__", "__reduce__",
                 "__reduce_ex__", "__array__", "__getattribute__", "_rpyc_getattr", "__code__", "__mro__"]
        container = self.root.container(3)
        for obj in (self.root, container):
            for name in names:
                for what, handler, args in [
                    ("getattr", consts.HANDLE_GETATTR, (obj, name)),
                    ("getattr bytes", consts.HANDLE_GETATTR, (obj, name.encode())),
                    ("setattr", consts.HANDLE_SETATTR, (obj, name, 1)),
                    ("delattr", consts.HANDLE_DELATTR, (obj, name)),
                    ("callattr", consts.HANDLE_CALLATTR, (obj, name, (), ())),
                    ("cmp", consts.HANDLE_CMP, (obj, 1, name)),
                ]:
                    with self.subTest(route=what, name=name, obj=repr(obj)):
                        with self.assertRaises(AttributeError) as cm:
                            self.conn.sync_request(handler, *args)
                        self.assertIn(f"cannot access '{name}'", str(cm.exception))
                        self.assertEqual(self.root.add(1, 2), 3)
            # DIR and INSPECT list none of them
            listed = set(self.conn.sync_request(consts.HANDLE_DIR, obj))
            self.assertFalse(listed & set(names), listed)
            id_pack = object.__getattribute__(obj, "____id_pack__")
            methods = {m for m, _ in self.conn.sync_request(consts.HANDLE_INSPECT, id_pack)}
            self.assertFalse(methods & set(names), methods)
            # INSTANCECHECK answers a bool and reaches nothing
            self.assertFalse(self.conn.sync_request(consts.HANDLE_INSTANCECHECK, obj, ("builtins.object", 0, 0)))
            # PICKLE never, whatever the protocol
            for proto in (-1, 0, 2, 5):
                with self.assertRaises(ValueError) as cm:
                    self.conn.sync_request(consts.HANDLE_PICKLE, obj, proto)
                self.assertIn("pickling is disabled", str(cm.exception))
        # BUFFITER on a non-iterator is refused; CTXEXIT on a non-context-manager too
        with self.assertRaises(TypeError):
            self.conn.sync_request(consts.HANDLE_BUFFITER, self.root, 3)
        with self.assertRaises(AttributeError):
            self.conn.sync_request(consts.HANDLE_CTXEXIT, self.root, None)
        self.assertEqual(self.root.add(1, 2), 3)
        self.assertEqual(len(container), 3)

    def test_ping_repr_str(self):
        self.conn.ping()
        self.assertIn("InteropService", repr(self.root))
        self.assertIn("InteropService", str(self.root))


class TableEmptiesAfterDisconnect(unittest.TestCase):
    def test_object_table_empty_after_disconnect(self):
        probe = connect()
        try:
            c = connect()
            cid = c.root.connection_id()
            self.assertNotEqual(cid, probe.root.connection_id())
            keep = [c.root.container(3), c.root.container(4), c.root.add]
            self.assertEqual(len(keep[0]), 3)
            self.assertEqual(list(keep[1]), [0, 10, 20, 30])  # its iterator is dropped again
            # while the client holds netrefs the server holds their objects: the root and
            # both containers at least, and exactly the two containers alive
            self.assertGreaterEqual(c.root.exported_count(), 3)
            wait_for(lambda: True if probe.root.live_objects(cid) == 2 else None, 10,
                     "the iterator's DEL to be handled")
            self.assertIsNone(probe.root.exported_at_close(cid))  # still open
            closed_before = probe.root.closed_connections()
            c.close()
            # the server handles the close asynchronously: wait for *this* connection's close
            n = wait_for(lambda: probe.root.exported_at_close(cid), 10, f"connection {cid}'s close")
            self.assertEqual(n, 0)
            self.assertGreaterEqual(probe.root.closed_connections(), closed_before + 1)
            # and the objects it held were destroyed, not only dropped from the table
            self.assertEqual(probe.root.live_objects(cid), 0)
            del keep
        finally:
            probe.close()


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
        conn = connect(self.port)
        try:
            root = conn.root
            for n in (64 * 1024 - 1, 64 * 1024, 1 << 20, 32 << 20):
                data = os.urandom(n)
                s0 = server_stats(root)
                self.assertEqual(root.echo(data), data, n)
                d = delta(s0, server_stats(root))
                self.assertEqual(d["compressed_in"], 1, d)   # the client still compresses
                self.assertEqual(d["compressed_out"], 0, d)  # this server does not
                made = root.make_bytes(n)
                self.assertEqual(len(made), n)
                self.assertEqual(root.echo(made), made, n)
                self.assertEqual(root.add(n, 1), n + 1)  # the stream is still in step
        finally:
            conn.close()

    def test_raw_both_ways(self):
        # neither side compresses: every frame travels raw in both directions
        conn = connect(self.port)
        try:
            root = conn.root
            client_channel(conn).compress = False
            for n in (1 << 20, 32 << 20):
                for data in (os.urandom(n), b"tether" * (n // 6)):
                    s0 = server_stats(root)
                    self.assertEqual(root.echo(data), data, n)
                    d = delta(s0, server_stats(root))
                    self.assertEqual(d["compressed_in"], 0, d)
                    self.assertEqual(d["compressed_out"], 0, d)
                    self.assertGreaterEqual(d["wire_bytes_in"], len(data), d)
                    self.assertGreaterEqual(d["wire_bytes_out"], len(data), d)
                self.assertEqual(root.add(n, 1), n + 1)
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
