"""The Python RPyC servers for the tether-client interop tests (stock RPyC, or minirpyc in 6.x).

usage: py_server.py [--classic] [--mini6]
  default   rpyc ThreadedServer(TestService) (stock rpyc on sys.path: Debian's 5.3, or a 6.x tree
            via PYTHONPATH), with allow_delattr on (the root, an rpyc.Service, still refuses)
  --classic rpyc ThreadedServer(SlaveService) (classic mode)
  --mini6   minirpyc.py (tests/interop/minirpyc, or $TETHER_MINIRPYC_DIR) speaking 6.x: the
            project's independent peer, with a root offering the same methods as the stock one.
            Like stock 6.x, it answers a first message of the other generation with its own
            CLOSE and hangs up (minirpyc itself just drops the connection).
Prints "PORT <n>" then serves on 127.0.0.1 until stdin closes. root.accepted() is the number of
TCP connections the server has accepted so far (the one asking included).
"""
import math
import os
import sys
import threading
import time

MODE = sys.argv[1] if len(sys.argv) > 1 else ""


_accepted_lock = threading.Lock()
_accepted = 0


def count_accepted():
    global _accepted
    with _accepted_lock:
        _accepted += 1


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


class Version:
    """An ordered, hashable value object, compared with Python's own rules (== with a Version or a
    (major, minor) tuple, NotImplemented otherwise)."""

    def __init__(self, major, minor):
        self.key = (major, minor)

    @staticmethod
    def _other(other):
        if isinstance(other, Version):
            return other.key
        if type(other) is tuple:
            return other
        return None

    def __eq__(self, other):
        o = self._other(other)
        return NotImplemented if o is None else self.key == o

    def __ne__(self, other):
        o = self._other(other)
        return NotImplemented if o is None else self.key != o

    def __lt__(self, other):
        o = self._other(other)
        return NotImplemented if o is None else self.key < o

    def __le__(self, other):
        o = self._other(other)
        return NotImplemented if o is None else self.key <= o

    def __gt__(self, other):
        o = self._other(other)
        return NotImplemented if o is None else self.key > o

    def __ge__(self, other):
        o = self._other(other)
        return NotImplemented if o is None else self.key >= o

    def __hash__(self):
        return hash(self.key)


class Hashed:
    """hash() is whatever int the test picks (Python maps -1 to -2, and reduces big ones)."""

    def __init__(self, h):
        self.h = h

    def __hash__(self):
        return self.h


class Ctx:
    """A context manager that records what `with` did to it; __exit__ returns `suppress`."""

    def __init__(self, suppress):
        self.suppress, self.log = suppress, ()

    def __enter__(self):
        self.log += (("enter",),)
        return "resource"

    def __exit__(self, typ, value, tb):
        self.log += (("exit", typ and typ.__name__, value and value.args, tb is not None),)
        return self.suppress

    rpc_enter = __enter__  # what minirpyc calls for CALLATTR "__enter__"


CMP_OPS = ("__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__")

EXCEPTIONS = {"value": ValueError, "index": IndexError, "key": KeyError, "overflow": OverflowError,
              "runtime": RuntimeError, "type": TypeError}


class Methods:
    """The root's methods, shared by the stock service and the minirpyc root so that both peers
    run the same matrix. `wrap` turns a list/dict/generator into what the peer exports by
    reference (itself for stock RPyC)."""

    wrap = staticmethod(lambda obj, type_name: obj)

    def exposed_add(self, a, b=0):
        """Returns a + b."""
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

    def exposed_accepted(self):
        with _accepted_lock:
            return _accepted

    def exposed_hash_of(self, obj):
        # obj is the server's own object (the client passes its netref back)
        return hash(obj)

    def exposed_version_obj(self, major, minor):
        return Version(major, minor)

    def exposed_hashed(self, h):
        return Hashed(h)

    def exposed_make_error(self, kind, msg):
        return EXCEPTIONS[kind](msg)  # returned (by reference), not raised

    def exposed_ctx(self, suppress):
        return Ctx(suppress)

    def exposed_ctx_log(self, ctx):
        return ctx.log

    def exposed_get_store(self):
        # one dict per connection (the root is per connection), exported by reference
        if not hasattr(self, "_store"):
            self._store = {"keep": 0}
        return self.wrap(self._store, "builtins.dict")

    def exposed_store_items(self):
        return tuple(sorted(self._store.items()))

    def exposed_has_attr(self, obj, name):
        return hasattr(obj, name)


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

        def rpc_setitem(self, key, value):
            self.obj[key] = value

        def rpc_delitem(self, key):
            del self.obj[key]

        def __hash__(self):
            return hash(self.obj)  # TypeError for a list or dict, as for the stock peer

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

        def rpc_delattr(self, name):
            # what the stock server does with allow_delattr: `x` deletes `exposed_x`
            if not hasattr(self, "exposed_" + name):
                raise mr.WireError("AttributeError", name)
            delattr(self, "exposed_" + name)

    class Root(Methods, mr.Exposed):
        NAME_PACK = "minirpyc.TestService"
        wrap = staticmethod(mini_wrap)

        def exposed_thing(self):
            return MiniThing()

        def exposed_version(self):
            return "minirpyc 6.x"

    class Conn(mr.Conn):
        first_seen = False

        def _recv_payload(self):
            payload = super()._recv_payload()
            if not self.first_seen:
                self.first_seen = True
                if mb.detect_generation(payload) != self.generation:
                    # What stock RPyC 6.x does with a 5.x message ("invalid message type: 18"):
                    # close(), i.e. its own CLOSE request (01 11 50 11 52 11 51 02), then hang up.
                    self.close()
                    raise EOFError("the peer speaks another RPyC generation")
            return payload

        def _id_pack_for(self, obj):
            # stock RPyC names an object's type "module.name"; minirpyc says "minirpyc.Object"
            idp = super()._id_pack_for(obj)
            if idp[0] == "minirpyc.Object":
                idp = (f"{type(obj).__module__}.{type(obj).__name__}",) + idp[1:]
                self.by_obj[id(obj)] = idp
            return idp

        def box(self, obj):
            if type(obj) is mb.Slice:
                return (mr.LABEL_VALUE, obj)
            return super().box(obj)

        def _handle(self, h, args):
            if h in (mr.H_REPR, mr.H_STR) and hasattr(args[0], "rpc_repr"):
                return args[0].rpc_repr() if h == mr.H_REPR else args[0].rpc_str()
            if h == mr.H_DELATTR and hasattr(args[0], "rpc_delattr"):
                return args[0].rpc_delattr(args[1])
            # HASH, CMP and CTXEXIT as stock RPyC does them (minirpyc hashes and compares by
            # identity and has no CTXEXIT)
            if h == mr.H_HASH:
                return hash(args[0])
            if h == mr.H_CMP:
                obj, other, op = args
                if op not in CMP_OPS:
                    raise mr.WireError("AttributeError", f"cannot access {op!r}")
                return getattr(type(obj), op)(obj, other)
            if h == mr.H_CTXEXIT:
                obj, exc = args
                typ = tb = None
                if exc:
                    try:
                        raise exc
                    except Exception:
                        typ, exc, tb = sys.exc_info()
                return obj.__exit__(typ, exc, tb)
            return super()._handle(h, args)

    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(16)
    print(f"PORT {ls.getsockname()[1]}", flush=True)
    while True:
        s, _ = ls.accept()
        count_accepted()
        c = Conn(s, Root(), generation=6)
        threading.Thread(target=c.serve_forever, daemon=True).start()


def main():
    threading.Thread(target=watch_stdin_then_exit, daemon=True).start()
    if MODE == "--mini6":
        serve_mini6()
    from rpyc.utils.server import ThreadedServer as Base

    class ThreadedServer(Base):
        def _accept_method(self, sock):
            count_accepted()
            super()._accept_method(sock)

    if MODE == "--classic":
        from rpyc.core.service import SlaveService
        server = ThreadedServer(SlaveService, hostname="127.0.0.1", port=0,
                                protocol_config={"allow_all_attrs": True, "allow_pickle": False})
    else:
        server = ThreadedServer(make_service(), hostname="127.0.0.1", port=0,
                                protocol_config={"sync_request_timeout": 30, "allow_delattr": True})
    server._listen()  # listen before announcing the port (start() would listen later)
    print(f"PORT {server.port}", flush=True)
    server.start()


if __name__ == "__main__":
    main()
