"""minirpyc as an RPyC 6.x client -> tether server.

Run by CTest: python3 test_minirpyc6_client.py <path to interop_server>. Starts the server on a
kernel-chosen loopback port and runs the matrix with Python's unittest against it, speaking 6.x
through the project's independent peer (tests/interop/minirpyc, or $TETHER_MINIRPYC_DIR), so the
6.x server side is tested on every run, with or without a stock RPyC 6.x tree. Fails (never
skips) when minirpyc cannot be imported: it is part of the repository.
"""
import math
import os
import socket
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.environ.get("TETHER_MINIRPYC_DIR") or
                os.path.join(os.path.dirname(os.path.abspath(__file__)), "minirpyc"))
import minibrine as mb  # noqa: E402
import minirpyc as mr  # noqa: E402

SERVER_PATH = None
PORT = None
VERSION6 = "6.0.2"  # the _remote_version a tether server puts in 6.x exceptions


def start_server(path, *args):
    proc = subprocess.Popen([path, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if not line.startswith("PORT "):
        proc.kill()
        raise RuntimeError(f"interop server did not report its port: {line!r}")
    return proc, int(line.split()[1])


def stop_server(proc):
    proc.stdin.close()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        return False
    return proc.returncode == 0


class Conn6(mr.Conn):
    """A 6.x minirpyc connection that notes the generation of every message it receives, so
    the tests see which generation the server answered in, not just that decoding worked."""

    def __init__(self, sock):
        super().__init__(sock, None, generation=6)
        self.seen_generations = set()

    def _recv_payload(self):
        payload = super()._recv_payload()
        self.seen_generations.add(mb.detect_generation(payload))
        return payload

    def pipelined(self, handler, arg_tuples):
        """Sends every request before reading any reply (minirpyc itself only waits on one)."""
        seqs = []
        for args in arg_tuples:
            seq = next(self.seq)
            self._send_msg(mr.MSG_REQUEST, seq, (handler, self.box(args)))
            seqs.append(seq)
        out = []
        for seq in seqs:
            while seq not in self.replies:
                self.serve_one()
            is_exc, val = self.replies.pop(seq)
            if is_exc:
                raise mr.RemoteError(val)
            out.append(val)
        return out


def connect(port=None):
    # A bounded socket: a server that stops answering fails the test instead of hanging it.
    sock = socket.create_connection(("127.0.0.1", port or PORT), timeout=60)
    return Conn6(sock)


class Seq(mr.Exposed):
    """A Python sequence passed by reference: the server pulls it with __iter__ + BUFFITER."""
    NAME_PACK = "builtins.list"

    def __init__(self, items):
        self.items = items

    def rpc_iter(self):
        return Iter(self.items)

    def rpc_len(self):
        return len(self.items)

    def rpc_getitem(self, key):
        return self.items[key]


class Map(Seq):
    NAME_PACK = "builtins.dict"


class Iter(mr.Exposed):
    NAME_PACK = "builtins.list_iterator"

    def __init__(self, items):
        self.it = iter(items)

    def __iter__(self):
        return self

    def __next__(self):
        return next(self.it)

    def rpc_next(self):
        return next(self.it)


class MiniClientTest(unittest.TestCase):
    def setUp(self):
        self.conn = connect()
        self.root = self.conn.getroot()

    def tearDown(self):
        self.conn.close()

    def raises(self, name, fn, *args, **kwargs):
        with self.assertRaises(mr.RemoteError) as cm:
            fn(*args, **kwargs)
        self.assertEqual(cm.exception.name, name, cm.exception)
        return cm.exception

    def test_server_answers_in_6x(self):
        self.assertEqual(self.root.callattr("add", 1, 2), 3)
        self.assertEqual(self.conn.seen_generations, {6})
        e = self.raises("ValueError", self.root.callattr, "fail", "value", "v")
        self.assertEqual(e.attrs.get("_remote_version"), VERSION6)

    def test_add_both_spellings_kwargs_getattr_call(self):
        self.assertEqual(self.root.callattr("add", 1, 2), 3)
        self.assertEqual(self.root.callattr("exposed_add", 40, b=2), 42)
        self.assertEqual(self.root.getattr("answer"), 42)
        add = self.root.getattr("add")
        self.assertIsInstance(add, mr.RemoteProxy)
        self.assertEqual(add(20, 22), 42)
        add.release()

    def test_every_brine_type_round_trips(self):
        values = [None, True, False, 0, 1, -1, -48, -49, 159, 160, 2**63, -(2**63), 2**64 + 1, -(10**300),
                  int("7" * 4300), 1.5, -0.0, float("inf"), float("-inf"), 1e-300, complex(1.5, -2.0), b"",
                  b"x", b"abcd", b"y" * 255, b"z" * 256, "", "h\u00e9llo \u2603 \U0001F600", "s" * 300,
                  (), (1,), (1, (2, "x"), b"b"), tuple(range(300)), frozenset(), frozenset({1, "a", (2, 3)}),
                  Ellipsis, NotImplemented]
        for v in values:
            got = self.root.callattr("echo", v)
            self.assertEqual(type(got), type(v), repr(v)[:80])
            self.assertEqual(got, v, repr(v)[:80])
            if isinstance(v, float) and v == 0:
                self.assertEqual(math.copysign(1, got), math.copysign(1, v))
        self.assertTrue(math.isnan(self.root.callattr("echo", float("nan"))))
        # minibrine decodes a slice into its own stand-in type (it never relies on Python's)
        for s in (slice(1, 2, 3), slice(None, "a", b"b")):
            got = self.root.callattr("echo", s)
            self.assertIsInstance(got, mb.Slice)
            self.assertEqual((got.start, got.stop, got.step), (s.start, s.stop, s.step))

    def test_big_bytes_both_ways(self):
        for n in (1 << 20, 32 << 20):
            data = os.urandom(n)
            self.assertEqual(self.root.callattr("bytes_len", data), n)
            self.assertEqual(self.root.callattr("echo", data), data)
            compressible = b"tether" * (n // 6)
            self.assertEqual(self.root.callattr("echo", compressible), compressible)
            made = self.root.callattr("make_bytes", n)
            self.assertEqual(len(made), n)
            self.assertEqual(self.root.callattr("echo", made), made)

    def test_exceptions_map_to_builtins(self):
        for kind, name in {"value": "ValueError", "index": "IndexError", "key": "KeyError",
                           "overflow": "OverflowError", "runtime": "RuntimeError"}.items():
            e = self.raises(name, self.root.callattr, "fail", kind, f"{kind} message")
            self.assertEqual(e.module, "builtins")
            self.assertEqual(e.rargs, (f"{kind} message",))
            self.assertEqual(e.attrs.get("_remote_version"), VERSION6)
            self.assertTrue(e.tb)
        e = self.raises("CalcError", self.root.callattr, "fail", "custom", "boom")
        self.assertEqual(e.module, "calc")
        self.assertEqual(e.rargs, ("boom", 7))
        e = self.raises("TypeError", self.root.callattr, "add", "x", 1)
        self.assertIn("expected int", e.rargs[0])

    def test_missing_attribute_is_attribute_error(self):
        self.raises("AttributeError", self.root.getattr, "secret")
        self.raises("AttributeError", self.root.callattr, "nothing_here")

    def test_callbacks(self):
        self.assertEqual(self.root.callattr("call", lambda x: x * 2, 21), 42)

        def bounce(n):
            return self.root.callattr("bounce", bounce, n)
        self.assertEqual(self.root.callattr("bounce", bounce, 10), 10)

    def test_callback_exception_reaches_python(self):
        def bad(x):
            raise ValueError("from python")
        e = self.raises("ValueError", self.root.callattr, "call", bad, 1)
        self.assertIn("from python", repr(e.rargs))

    def test_arguments_by_value_and_by_reference(self):
        self.assertEqual(self.root.callattr("sum_list", (1, 2, 3, 4)), 10)
        self.assertEqual(self.root.callattr("sum_list", Seq(list(range(1000)))), sum(range(1000)))
        self.assertEqual(self.root.callattr("dict_items", Map({"b": 2, "a": 1})), (("a", 1), ("b", 2)))
        self.assertEqual(self.root.callattr("dict_items", (("a", 1), ("b", 2))), (("a", 1), ("b", 2)))

    def test_container_len_index_iterate_contains(self):
        c = self.root.callattr("container", 5)
        self.assertIsInstance(c, mr.RemoteProxy)
        self.assertEqual(c.callattr("__len__"), 5)
        self.assertEqual(c.callattr("__getitem__", 2), 20)
        self.assertEqual(c.callattr("__getitem__", -1), 40)
        self.raises("IndexError", c.callattr, "__getitem__", 5)
        self.assertTrue(c.callattr("__contains__", 20))
        self.assertFalse(c.callattr("__contains__", 25))
        # iteration as RPyC's client does it (BUFFITER batches), then one __next__ at a time
        it = c.callattr("__iter__")
        got = []
        while True:
            chunk = self.conn.sync_request(mr.H_BUFFITER, it, 2)
            if not chunk:
                break
            got.extend(chunk)
        self.assertEqual(got, [0, 10, 20, 30, 40])
        it = c.callattr("__iter__")
        self.assertEqual([it.callattr("__next__") for _ in range(5)], [0, 10, 20, 30, 40])
        e = self.raises("StopIteration", it.callattr, "__next__")
        self.assertEqual(e.payload, mr.EXC_STOP_ITERATION)

    def test_thousand_pipelined_calls(self):
        results = self.conn.pipelined(mr.H_CALLATTR, [(self.root, "add", (i, 1), ()) for i in range(1000)])
        self.assertEqual(results, [i + 1 for i in range(1000)])

    def test_ping_repr_str(self):
        data = "abcdefghijklmnopqrstuvwxyz" * 20
        self.assertEqual(self.conn.sync_request(mr.H_PING, data), data)
        self.assertIn("InteropService", self.conn.sync_request(mr.H_REPR, self.root))
        self.assertIn("InteropService", self.conn.sync_request(mr.H_STR, self.root))

    def test_pickle_and_setattr_refused(self):
        e = self.raises("ValueError", self.conn.sync_request, mr.H_PICKLE, self.root, 2)
        self.assertIn("pickling is disabled", e.rargs[0])
        self.raises("AttributeError", self.conn.sync_request, mr.H_SETATTR, self.root, "answer", 5)


class TableEmptiesAfterDisconnect(unittest.TestCase):
    def test_object_table_empty_after_disconnect(self):
        c = connect()
        root = c.getroot()
        keep = [root.callattr("container", 3), root.callattr("container", 4), root.getattr("add")]
        self.assertEqual(keep[0].callattr("__len__"), 3)
        c.close()
        deadline = time.monotonic() + 10
        while True:  # the server handles the first connection's close asynchronously
            probe = connect()
            n = probe.getroot().callattr("last_closed_exported")
            probe.close()
            if n == 0 or time.monotonic() > deadline:
                break
        self.assertEqual(n, 0)


class UncompressedServerTest(unittest.TestCase):
    """A tether server whose channels do not compress sends large bytes spliced around the
    value's own storage; minirpyc's frame parser must read them as ordinary frames."""

    @classmethod
    def setUpClass(cls):
        cls.server, cls.port = start_server(SERVER_PATH, "--no-compress")

    @classmethod
    def tearDownClass(cls):
        if not stop_server(cls.server):
            raise RuntimeError("the --no-compress interop server did not exit cleanly")

    def test_big_bytes_both_ways(self):
        conn = connect(self.port)
        try:
            root = conn.getroot()
            for n in (64 * 1024 - 1, 64 * 1024, 1 << 20, 32 << 20):
                data = os.urandom(n)
                self.assertEqual(root.callattr("echo", data), data, n)
                made = root.callattr("make_bytes", n)
                self.assertEqual(len(made), n)
                self.assertEqual(root.callattr("echo", made), made, n)
                self.assertEqual(root.callattr("add", n, 1), n + 1)  # the stream is still in step
            self.assertEqual(conn.seen_generations, {6})
        finally:
            conn.close()


if __name__ == "__main__":
    SERVER_PATH = sys.argv[1]
    server, PORT = start_server(SERVER_PATH)
    try:
        prog = unittest.main(argv=[sys.argv[0], "-v"], exit=False)
        ok = prog.result.wasSuccessful()
    finally:
        if not stop_server(server):
            print(f"interop server exited with {server.returncode}")
            ok = False
    sys.exit(0 if ok else 1)
