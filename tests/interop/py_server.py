"""The Python RPyC servers for the tether-client interop tests (stock RPyC, or minirpyc in 6.x).

usage: py_server.py [--classic] [--mini6]
  default   rpyc ThreadedServer(TestService) (stock rpyc on sys.path: Debian's 5.3, or a 6.x tree
            via PYTHONPATH)
  --classic rpyc ThreadedServer(SlaveService) (classic mode)
  --mini6   minirpyc.py (tests/interop/minirpyc, or $TETHER_MINIRPYC_DIR) speaking 6.x: the
            project's independent peer, with a root offering the same methods as the stock one
Prints "PORT <n>" then serves on 127.0.0.1 until stdin closes.
"""
import math
import os
import sys
import threading
import time

MODE = sys.argv[1] if len(sys.argv) > 1 else ""


def watch_stdin_then_exit():
    sys.stdin.read()
    os._exit(0)


class Thing:
    def __init__(self):
        self.exposed_x = 5

    def exposed_double(self, v):
        return v * 2

    def __repr__(self):
        return "<Thing x=5>"

    def __str__(self):
        return "Thing(5)"


EXCEPTIONS = {"value": ValueError, "index": IndexError, "key": KeyError, "overflow": OverflowError,
              "runtime": RuntimeError, "type": TypeError}


class Methods:
    """The root's methods, shared by the stock service and the minirpyc root so that both peers
    run the same matrix. `wrap` turns a list/dict/generator into what the peer exports by
    reference (itself for stock RPyC)."""

    wrap = staticmethod(lambda obj, type_name: obj)

    def exposed_add(self, a, b=0):
        return a + b

    def exposed_echo(self, x):
        return x

    def exposed_sign(self, x):
        # what Python itself sees, so that a lost sign is caught in the direction it is lost
        return math.copysign(1.0, x)

    def exposed_sum(self, xs):
        return (type(xs).__name__, sum(xs))

    def exposed_items(self, d):
        return (type(d).__name__, tuple(sorted(dict(d).items())))

    def exposed_fail(self, kind, msg):
        raise EXCEPTIONS[kind](msg)

    def exposed_call(self, fn, *args):
        return fn(*args)

    def exposed_bounce(self, fn, n):
        return 0 if n == 0 else fn(n - 1) + 1

    def exposed_get_list(self):
        return self.wrap([1, 2, 3], "builtins.list")

    def exposed_get_dict(self):
        return self.wrap({"a": 1, "b": 2}, "builtins.dict")

    def exposed_gen(self, n):
        return self.wrap((i * i for i in range(n)), "builtins.generator")

    def exposed_pid(self):
        return os.getpid()

    def exposed_big(self, n):
        return bytes(range(256)) * (n // 256)

    def exposed_slow(self, seconds):
        time.sleep(seconds)
        return "done"


def make_service():
    import rpyc

    class TestService(Methods, rpyc.Service):
        def exposed_thing(self):
            return Thing()

        def exposed_version(self):
            return rpyc.__version__

    return TestService


def serve_mini6():
    """minirpyc speaking 6.x. minirpyc answers CALLATTR of a dunder only on objects that define
    rpc_<name>, BUFFITER only on Python iterators, and REPR/STR with a generic text, and boxes
    its own decoded slices by reference; the classes below give it what the stock service gets
    from Python's data model, without changing minirpyc itself."""
    sys.path.insert(0, os.environ.get("TETHER_MINIRPYC_DIR") or
                    os.path.join(os.path.dirname(os.path.abspath(__file__)), "minirpyc"))
    import socket
    import minibrine as mb
    import minirpyc as mr

    class Iter(mr.Exposed):
        def __init__(self, it, type_name="builtins.iterator"):
            self.it, self.NAME_PACK = iter(it), type_name

        def __iter__(self):
            return self

        def __next__(self):
            return next(self.it)

        def rpc_iter(self):
            return self

        def rpc_next(self):
            return next(self.it)

    class Container(mr.Exposed):
        def __init__(self, obj, type_name):
            self.obj, self.NAME_PACK = obj, type_name

        def rpc_len(self):
            return len(self.obj)

        def rpc_getitem(self, key):
            return self.obj[key]

        def rpc_contains(self, item):
            return item in self.obj

        def rpc_iter(self):
            return Iter(self.obj)

    def mini_wrap(obj, type_name):
        return Iter(obj, type_name) if type_name == "builtins.generator" else Container(obj, type_name)

    class MiniThing(mr.Exposed):
        NAME_PACK = "py_server.Thing"

        def __init__(self):
            self.thing = Thing()
            self.exposed_x = self.thing.exposed_x

        def exposed_double(self, v):
            return self.thing.exposed_double(v)

        def rpc_repr(self):
            return repr(self.thing)

        def rpc_str(self):
            return str(self.thing)

    class Root(Methods, mr.Exposed):
        NAME_PACK = "minirpyc.TestService"
        wrap = staticmethod(mini_wrap)

        def exposed_thing(self):
            return MiniThing()

        def exposed_version(self):
            return "minirpyc 6.x"

    class Conn(mr.Conn):
        def box(self, obj):
            if type(obj) is mb.Slice:
                return (mr.LABEL_VALUE, obj)
            return super().box(obj)

        def _handle(self, h, args):
            if h in (mr.H_REPR, mr.H_STR) and hasattr(args[0], "rpc_repr"):
                return args[0].rpc_repr() if h == mr.H_REPR else args[0].rpc_str()
            return super()._handle(h, args)

    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(16)
    print(f"PORT {ls.getsockname()[1]}", flush=True)
    while True:
        s, _ = ls.accept()
        c = Conn(s, Root(), generation=6)
        threading.Thread(target=c.serve_forever, daemon=True).start()


def main():
    threading.Thread(target=watch_stdin_then_exit, daemon=True).start()
    if MODE == "--mini6":
        serve_mini6()
    from rpyc.utils.server import ThreadedServer
    if MODE == "--classic":
        from rpyc.core.service import SlaveService
        server = ThreadedServer(SlaveService, hostname="127.0.0.1", port=0,
                                protocol_config={"allow_all_attrs": True, "allow_pickle": False})
    else:
        server = ThreadedServer(make_service(), hostname="127.0.0.1", port=0,
                                protocol_config={"sync_request_timeout": 30})
    server._listen()  # listen before announcing the port (start() would listen later)
    print(f"PORT {server.port}", flush=True)
    server.start()


if __name__ == "__main__":
    main()
