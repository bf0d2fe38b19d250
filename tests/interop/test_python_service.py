"""Stock Python RPyC 5.3 client -> a tether::Service served by tether::serve().

Run by CTest: python3 test_python_service.py <path to interop_service_server>.

ServiceTest: one server (2 loop threads, port from the kernel) for typed bindings (both
spellings, keyword arguments, every converted type both ways, OverflowError/TypeError
messages), expose_async, expose_blocking, callbacks, a Class<T> object, the service's names,
and per-connection state and hooks.

CustomRootTest: service_server --custom-root, a hand-written tether::Object per connection
served as the root (tether::Service::root) with the service's hooks, drained on SIGTERM too.

DrainTest: a server per test; a slow call is started, SIGTERM (or SIGINT) is sent once the
server reports the call running, and the test checks that the call still returns its result,
that new connections are refused and idle ones closed meanwhile, and that the process exits 0.
A call longer than the grace period is cut off (EOFError for the client) instead of hanging.

Every wait has a deadline; nothing sleeps to let things settle. Fails (never skips) when rpyc
cannot be imported.
"""
import inspect
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

SERVER_PATH = None
START_TIMEOUT = 30      # s until the server prints its port
EXIT_TIMEOUT = 30       # s until a signalled server has exited
CALL_TIMEOUT = 30       # s for any single request


class ServerProcess:
    """service_server as a child; its stdout lines arrive through a queue (bounded waits)."""

    def __init__(self, *args):
        self.proc = subprocess.Popen([SERVER_PATH, *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     text=True)
        self.lines = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        line = self.expect("PORT ", START_TIMEOUT)
        self.port = int(line.split()[1])

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def expect(self, prefix, timeout):
        """The next stdout line starting with `prefix` (other lines are skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"service_server printed no {prefix!r} line within {timeout} s")
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError(f"service_server closed stdout before a {prefix!r} line "
                                     f"(exit status {self.proc.poll()})")
            if line.startswith(prefix):
                return line

    def connect(self):
        return rpyc.connect("127.0.0.1", self.port, config={"sync_request_timeout": CALL_TIMEOUT})

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=EXIT_TIMEOUT)
        self.reader.join(timeout=EXIT_TIMEOUT)
        self.proc.stdout.close()


def wait_until(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)  # polling interval of a bounded wait, not synchronisation


def connection_refused(port):
    """True once a connection attempt is refused (nothing listens). An attempt that was
    accepted, or reset because it sat in the backlog while the listener closed, is not."""
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
    except ConnectionRefusedError:
        return True
    except ConnectionResetError:
        return False
    s.close()
    return False


class ServiceTest(unittest.TestCase):
    server = None

    @classmethod
    def setUpClass(cls):
        cls.server = ServerProcess()

    @classmethod
    def tearDownClass(cls):
        server, cls.server = cls.server, None
        try:
            server.proc.send_signal(signal.SIGTERM)
            rc = server.proc.wait(timeout=EXIT_TIMEOUT)
            if rc != 0:
                raise AssertionError(f"service_server exited with {rc} after SIGTERM")
        finally:
            server.kill()

    def setUp(self):
        self.conn = self.server.connect()
        self.root = self.conn.root

    def tearDown(self):
        self.conn.close()

    # --- typed bindings -------------------------------------------------------------------

    def test_both_spellings_and_keyword_arguments(self):
        self.assertEqual(self.root.add(1, 2), 3)
        self.assertEqual(self.root.exposed_add(40, 2), 42)
        self.assertEqual(self.root.add(a=5, b=6), 11)
        self.assertEqual(self.root.exposed_add(40, b=2), 42)
        self.assertEqual(self.root.greet("bob"), "hello, bob!")
        self.assertEqual(self.root.greet("bob", greeting="hi"), "hi, bob!")
        self.assertEqual(self.root.greet(greeting="hey", name="ann"), "hey, ann!")
        self.assertEqual(self.root.add(2**62, 2**62 - 1 - 2**62), 2**62 - 1)

    def test_python_argument_errors(self):
        cases = [((1,), {}, "add() missing 1 required positional argument: 'b'"),
                 ((1, 2, 3), {}, "add() takes 2 positional arguments but 3 were given"),
                 ((1,), {"x": 2}, "add() got an unexpected keyword argument 'x'"),
                 ((1,), {"a": 2}, "add() got multiple values for argument 'a'")]
        for args, kwargs, message in cases:
            with self.assertRaises(TypeError) as cm:
                self.root.add(*args, **kwargs)
            self.assertEqual(cm.exception.args[0], message)

    def test_numbers_both_ways(self):
        self.assertEqual(self.root.narrow(32767), -32767)
        self.assertEqual(self.root.narrow(-32768), -32768)  # -(-32768) wraps in int16_t
        self.assertIs(type(self.root.narrow(5)), int)
        self.assertEqual(self.root.u8(255), 255)
        self.assertEqual(self.root.scale(1.5, 3.0), 4.5)
        got = self.root.scale(2, 3)  # an int is accepted as a double
        self.assertIs(type(got), float)
        self.assertEqual(got, 6.0)
        self.assertIs(self.root.negate(True), False)
        self.assertIs(self.root.negate(False), True)

    def test_out_of_range_narrow_int_is_overflow_error(self):
        for fn, value in ((self.root.narrow, 32768), (self.root.narrow, -32769), (self.root.narrow, 2**70),
                          (self.root.u8, 256), (self.root.u8, -1)):
            with self.assertRaises(OverflowError) as cm:
                fn(value)
            self.assertIn(f"argument 1: {value} out of range for int", cm.exception.args[0])
        with self.assertRaises(OverflowError) as cm:
            self.root.narrow(40000)
        self.assertTrue(cm.exception.args[0].startswith("narrow(x: int) -> int: "), cm.exception.args[0])

    def test_wrong_type_is_type_error_naming_the_signature(self):
        cases = [(self.root.add, ("x", 1), "add(a: int, b: int) -> int: argument 1: expected int, got str"),
                 (self.root.add, (1, 2.5), "add(a: int, b: int) -> int: argument 2: expected int, got float"),
                 (self.root.negate, (1,), "negate(flag: bool) -> bool: argument 1: expected bool, got int"),
                 (self.root.reverse_bytes, ("text",), "reverse_bytes(data: bytes) -> bytes: argument 1: "),
                 (self.root.greet, (b"bytes",), "greet(name: str, greeting: "),
                 (self.root.sorted_desc, (["a"],),
                  "sorted_desc(values: list[int]) -> list[int]: argument 1: expected int, got str"),
                 (self.root.invert, ({"a": "b"},),
                  "invert(mapping: dict[str, int]) -> dict[int, str]: argument 1: expected int, got str")]
        for fn, args, message in cases:
            with self.assertRaises(TypeError, msg=message) as cm:
                fn(*args)
            self.assertTrue(cm.exception.args[0].startswith(message), cm.exception.args[0])

    def test_text_and_bytes_both_ways(self):
        self.assertEqual(self.root.greet("h\u00e9l\u00e8ne \u2603"), "hello, h\u00e9l\u00e8ne \u2603!")
        self.assertEqual(self.root.reverse_bytes(b"abc\x00\xff"), b"\xff\x00cba")
        self.assertEqual(self.root.reverse_bytes(b""), b"")
        big = os.urandom(1 << 20)
        self.assertEqual(self.root.reverse_bytes(big), big[::-1])
        got = self.root.upper_all(["ab", "Cd", ""])
        self.assertEqual(got, ("AB", "CD", ""))

    def test_containers_both_ways(self):
        # std::vector<int64_t>: a tuple by value, a list/set/generator by reference; back a tuple.
        self.assertEqual(self.root.sorted_desc((3, 1, 2)), (3, 2, 1))
        self.assertEqual(self.root.sorted_desc([3, 1, 2]), (3, 2, 1))
        self.assertEqual(self.root.sorted_desc({5, 4, 9}), (9, 5, 4))
        self.assertEqual(self.root.sorted_desc(i * i for i in range(4)), (9, 4, 1, 0))
        self.assertEqual(self.root.sorted_desc(list(range(500))), tuple(range(499, -1, -1)))
        self.assertEqual(self.root.sorted_desc([]), ())
        # std::map<string, int64_t>: a dict by reference or a tuple of pairs; back pairs.
        self.assertEqual(dict(self.root.invert({"a": 1, "b": 2})), {1: "a", 2: "b"})
        self.assertEqual(self.root.invert((("x", 7),)), ((7, "x"),))
        self.assertEqual(self.root.invert({}), ())
        # std::optional: None both ways, an omitted parameter.
        self.assertIsNone(self.root.maybe_double(None))
        self.assertIsNone(self.root.maybe_double())
        self.assertEqual(self.root.maybe_double(21), 42)
        # std::tuple both ways.
        self.assertEqual(self.root.swap(("s", 2, 1.5)), (1.5, 2, "s"))
        with self.assertRaises(TypeError):
            self.root.swap(("s", 2))
        self.assertEqual(self.root.stats([1.0, 2.0, 6]), (9.0, 3.0, 3))

    def test_exceptions(self):
        with self.assertRaises(ValueError) as cm:
            self.root.fail("boom")
        self.assertEqual(cm.exception.args[0], "boom")
        with self.assertRaises(AttributeError):
            self.root.no_such_function
        self.assertFalse(hasattr(self.root, "no_such_function"))
        with self.assertRaises(AttributeError):
            self.root.add = 1

    # --- async, blocking, callbacks --------------------------------------------------------

    def test_async_function(self):
        self.assertEqual(self.root.slow_add(1, 2, 10), 3)
        self.assertEqual(self.root.exposed_slow_add(a=20, b=22, ms=0), 42)
        # Eight 250 ms coroutines on one connection overlap: a loop timer each, not a blocked
        # thread (one after the other they would take 2 s).
        slow_add = rpyc.async_(self.root.slow_add)
        t0 = time.monotonic()
        results = [slow_add(i, 1, 250) for i in range(8)]
        for r in results:
            r.set_expiry(CALL_TIMEOUT)
        self.assertEqual([r.value for r in results], [i + 1 for i in range(8)])
        self.assertLess(time.monotonic() - t0, 1.8)

    def test_async_function_calls_back(self):
        self.assertEqual(self.root.async_apply(lambda x: x * 3, 5), 16)

    def test_blocking_function_runs_off_the_loop_thread(self):
        on_loop, loop_tag = self.root.loop_thread()
        self.assertTrue(on_loop)
        on_loop_b, worker_tag, square = self.root.blocking_thread(7)
        self.assertFalse(on_loop_b)  # a worker thread has no EventLoop
        self.assertNotEqual(worker_tag, loop_tag)
        self.assertEqual(square, 49)
        with self.assertRaises(OverflowError):
            self.root.blocking_thread(2**64)  # converted on the loop thread, before the worker

    def test_callbacks(self):
        self.assertEqual(self.root.apply(lambda x: x + 1, 41), 42)
        self.assertEqual(self.root.map_strings(str.upper, ["a", "bc"]), ("A", "BC"))
        calls = []

        def record(x):
            calls.append(x)
            return x * 10
        self.assertEqual(self.root.blocking_apply(record, 1), 30)  # from a worker thread
        self.assertEqual(calls, [1, 2])

        def bad(x):
            raise KeyError("from python")
        with self.assertRaises(KeyError):
            self.root.apply(bad, 1)

        def wrong(x):
            return "not an int"
        with self.assertRaises(TypeError):
            self.root.apply(wrong, 1)

    # --- Class<T> --------------------------------------------------------------------------

    def test_class_object(self):
        store = self.root.new_store("mine")
        self.assertEqual(store.name, "mine")
        self.assertEqual(store.size, 0)
        self.assertEqual(len(store), 0)
        store.put("b", "2")
        store.exposed_put(key="a", value="1")
        self.assertEqual(store.size, 2)
        self.assertEqual(len(store), 2)
        self.assertEqual(store.get("a"), "1")
        self.assertIsNone(store.get("zz"))
        self.assertEqual(store["b"], "2")
        with self.assertRaises(KeyError):
            store["zz"]
        self.assertIn("a", store)
        self.assertNotIn("zz", store)
        self.assertEqual(list(store), ["a", "b"])
        self.assertEqual(sorted(k for k in store), ["a", "b"])
        self.assertEqual(store.keys(), ("a", "b"))
        self.assertEqual(repr(store), "<interop.Store mine>")
        with self.assertRaises(AttributeError):
            store.missing
        with self.assertRaises(AttributeError):
            store.missing()
        with self.assertRaises(AttributeError):
            store.size = 5  # read-only, and RPyC's default policy refuses SETATTR
        with self.assertRaises(TypeError):
            store.put("k", 1)

    def test_shared_object_is_shared_between_connections(self):
        other = self.server.connect()
        try:
            key = f"k{id(self)}"
            self.root.store.put(key, "v")
            self.assertEqual(other.root.store[key], "v")
            self.assertEqual(other.root.store.name, "shared")
            self.assertTrue(self.root.store == self.root.store)
        finally:
            other.close()

    # --- classes as objects (upstream test_netref_hierachy) --------------------------------

    def test_a_cpp_class_is_a_class_for_python(self):
        Store = self.root.Store
        made = Store("made")  # the bound constructor runs in C++
        self.assertEqual(made.name, "made")
        made.put("k", "v")
        self.assertEqual(made["k"], "v")
        self.assertTrue(isinstance(made, Store))
        self.assertTrue(isinstance(self.root.store, Store))  # made in C++, not by the call
        self.assertTrue(isinstance(self.root.new_store("x"), self.root.Store))
        self.assertFalse(isinstance(self.root.store, self.root.Opaque))  # INSTANCECHECK asked
        self.assertFalse(isinstance(Store, Store))  # the class is no instance of itself
        self.assertIn("interop.Store", repr(Store))
        with self.assertRaises(TypeError):
            self.root.Opaque()  # a class without a constructor cannot be instantiated

    # --- context managers (upstream test_context_managers) ---------------------------------

    def test_with_block_reaches_exit_with_three_arguments(self):
        g = self.root.Guard(False)
        with g as entered:
            self.assertEqual(entered, "entered")
        self.assertEqual(g.entered, 1)
        self.assertEqual(g.last_exit(), "None None None")
        # RPyC's client sends the exception type only: the value is made by calling it (a
        # proxy of the client's KeyError), and no traceback travels.
        with self.assertRaises(KeyError):
            with g:
                raise KeyError("k")
        self.assertEqual(g.last_exit(), "proxy proxy None")
        swallowing = self.root.Guard(True)
        with swallowing:
            raise ValueError("suppressed by __exit__ returning True")
        self.assertEqual(swallowing.last_exit(), "proxy proxy None")

    def test_help_shows_signatures_and_doc_strings(self):
        # IPython's `?` and inspect.getdoc read __doc__ (stock RPyC lets it through); tether
        # also answers __name__, __qualname__ and __module__. (pydoc's help() reads a proxy's
        # own class __doc__ and __func__ instead: it fails on stock RPyC's function proxies too.)
        add = self.root.add
        self.assertEqual(add.__doc__, "add(a: int, b: int) -> int\n\nAdds two integers.")
        self.assertEqual(inspect.getdoc(add), "add(a: int, b: int) -> int\n\nAdds two integers.")
        self.assertEqual(add.__name__, "add")
        self.assertEqual(add.__qualname__, "add")
        self.assertEqual(self.root.__doc__, "The interop test service.")
        put = self.root.store.put
        self.assertEqual(put.__doc__, "put(key: str, value: str) -> None\n\nStores value under key.")
        self.assertEqual(put.__name__, "put")
        self.assertEqual(put.__qualname__, "Store.put")
        self.assertEqual(self.root.store.keys.__doc__, "keys() -> list[str]")
        self.assertEqual(self.root.store.__doc__, "A thread-safe string map.")
        self.assertEqual(self.root.Store.__doc__, "A thread-safe string map.")
        with self.assertRaises(AttributeError):
            add.__globals__  # only the descriptive attributes: nothing else of the function

    def test_instancecheck_none(self):
        # RPyC issue #426: a remote NoneType is Python's own.
        self.assertTrue(isinstance(None, self.root.NoneType))
        self.assertFalse(isinstance(5, self.root.NoneType))

    # --- names and sessions ----------------------------------------------------------------

    def test_service_name_and_aliases(self):
        self.assertEqual(self.root.get_service_name(), "INTEROP")
        self.assertEqual(self.root.exposed_get_service_name(), "INTEROP")
        self.assertEqual(tuple(self.root.get_service_aliases()), ("INTEROP", "TETHERINTEROP"))

    def test_per_connection_state_and_hooks(self):
        a = self.server.connect()
        b = self.server.connect()
        try:
            self.assertEqual(a.root.incr(), 1)
            self.assertEqual(a.root.incr(), 2)
            self.assertEqual(b.root.incr(), 1)
            self.assertEqual(a.root.incr(), 3)
            id_a, id_b = a.root.session_id(), b.root.session_id()
            self.assertNotEqual(id_a, id_b)
            host, port = a._channel.stream.sock.getsockname()[:2]
            self.assertEqual(a.root.peer(), f"{host}:{port}")  # set by on_connect
            self.assertNotIn(id_a, b.root.disconnected_sessions())
            a.close()
            # on_disconnect ran for a (and not for b).
            wait_until(lambda: id_a in b.root.disconnected_sessions(), 10, "on_disconnect of the closed session")
            self.assertNotIn(id_b, b.root.disconnected_sessions())
            self.assertEqual(b.root.incr(), 2)
        finally:
            a.close()
            b.close()


class AuthTokenTest(unittest.TestCase):
    """ServeOptions::auth_token is tether-to-tether only: a stock RPyC client cannot send the
    token, so its first request is answered with PermissionError and the connection closes;
    the server goes on serving (tether clients with the token are tested in
    tests/service/security_test.cpp)."""

    def setUp(self):
        self.server = ServerProcess("--auth-token", "s3cret")

    def tearDown(self):
        self.server.kill()

    def test_stock_client_is_refused_clearly_and_the_server_keeps_serving(self):
        for _ in range(3):
            conn = self.server.connect()
            try:
                with self.assertRaises(PermissionError) as cm:
                    conn.root.add(1, 2)
                self.assertIn("requires an auth token", str(cm.exception))
                with self.assertRaises(EOFError):  # then the server closes the connection
                    for _ in range(200):
                        conn.poll(0.05)
            finally:
                conn.close()
        self.assertIsNone(self.server.proc.poll())


def drain_and_exit(test, server, signum):
    """A slow call survives `signum`, the idle connection is closed, the server exits 0 (`test`:
    the TestCase checking it)."""
    busy = server.connect()
    idle = server.connect()
    test.assertEqual(idle.root.add(1, 1), 2)
    result = rpyc.async_(busy.root.slow)(2500, "drain")
    result.set_expiry(CALL_TIMEOUT)
    server.expect("SLOW BEGIN drain", CALL_TIMEOUT)  # the call is running on the server
    t0 = time.monotonic()
    server.proc.send_signal(signum)
    # New connections are refused while the slow call is still running.
    wait_until(lambda: connection_refused(server.port), 10, "the listening socket to close")
    test.assertIsNone(server.proc.poll())
    # The idle connection is closed by the server (CLOSE, then EOF).
    def idle_closed():
        try:
            idle.poll(0.05)
        except EOFError:
            return True
        return idle.closed
    wait_until(idle_closed, 10, "the idle connection to be closed")
    test.assertFalse(result.ready)
    # The busy one gets its result, then is closed too.
    test.assertEqual(result.value, "done drain")
    test.assertGreater(time.monotonic() - t0, 1.0)  # not answered before the timer fired
    rc = server.proc.wait(timeout=EXIT_TIMEOUT)
    test.assertEqual(rc, 0)
    test.assertLess(time.monotonic() - t0, 15)
    server.expect("STOPPED", 5)
    with test.assertRaises(EOFError):
        busy.root.add(1, 2)


class CustomRootTest(unittest.TestCase):
    """service_server --custom-root: a hand-written tether::Object per connection as the root
    (tether::Service::root), with the service's on_connect/on_disconnect hooks."""

    def setUp(self):
        self.server = ServerProcess("--custom-root")

    def tearDown(self):
        self.server.kill()

    def test_each_connection_gets_its_own_root_object(self):
        a = self.server.connect()
        b = self.server.connect()
        try:
            self.server.expect("CONNECT", CALL_TIMEOUT)
            self.server.expect("CONNECT", CALL_TIMEOUT)
            self.assertEqual(a.root.write("first"), 1)
            self.assertEqual(a.root.exposed_write(line="second"), 2)
            self.assertEqual(tuple(a.root.lines()), ("first", "second"))
            self.assertEqual(len(a.root), 2)
            self.assertEqual(tuple(b.root.lines()), ())  # another connection, another root
            self.assertEqual(len(b.root), 0)
            self.assertEqual(b.root.add(40, 2), 42)
            self.assertTrue(a.root.peer().startswith("127.0.0.1:"))  # the connection's Session
            self.assertEqual(type(a.root).__name__, "interop.Notebook")
            self.assertIn("write", dir(a.root))
            # The custom root replaces the service's members: RPyC's service methods are not there.
            with self.assertRaises(AttributeError):
                a.root.get_service_name()
            with self.assertRaises(AttributeError):
                a.root.__class__
        finally:
            a.close()
        self.server.expect("DISCONNECT", CALL_TIMEOUT)
        self.assertEqual(b.root.disconnects(), 1)
        b.close()
        self.server.expect("DISCONNECT", CALL_TIMEOUT)

    def test_sigterm_drains_a_call_on_the_custom_root(self):
        drain_and_exit(self, self.server, signal.SIGTERM)


class DrainTest(unittest.TestCase):
    def setUp(self):
        self.server = None

    def tearDown(self):
        if self.server:
            self.server.kill()

    def start(self, *args):
        self.server = ServerProcess(*args)
        return self.server

    def drain(self, signum):
        drain_and_exit(self, self.start(), signum)

    def test_sigterm_drains_then_exits_0(self):
        self.drain(signal.SIGTERM)

    def test_sigint_drains_then_exits_0(self):
        self.drain(signal.SIGINT)

    def test_call_longer_than_grace_is_cut_off(self):
        server = self.start("--grace-ms", "300")
        conn = server.connect()
        result = rpyc.async_(conn.root.slow)(60000, "long")
        result.set_expiry(CALL_TIMEOUT)
        server.expect("SLOW BEGIN long", CALL_TIMEOUT)
        t0 = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        with self.assertRaises(EOFError):  # the connection is cancelled, not left hanging
            result.value
        self.assertLess(time.monotonic() - t0, 10)
        rc = server.proc.wait(timeout=EXIT_TIMEOUT)
        self.assertEqual(rc, 0)
        server.expect("STOPPED", 5)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: test_python_service.py <interop_service_server>")
    SERVER_PATH = sys.argv.pop(1)
    unittest.main(verbosity=2)
